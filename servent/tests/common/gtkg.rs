//! gtk-gnutella 1.2.3, the living reference servent, as a test counterpart:
//! built once from `shared/counterparts/gtk-gnutella/` with its loopback
//! patch and ours (`tests/counterpart/build.sh`, which adds a `search browse
//! IP:PORT` shell command), or taken from `GTKG_BIN`, which `.ci/run` sets
//! to that build; started headless on 127.0.0.1 with the helpers beside its
//! source, and driven through its remote shell.
//!
//! Outside CI a test that cannot have it prints why and returns early;
//! with `CI` set, not having it fails the test.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the counterpart's source, build and run helpers are.
fn counterpart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/counterparts/gtk-gnutella")
}

/// The gtk-gnutella binary, built on first use; `Err` says why there is none.
fn binary() -> Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("GTKG_BIN") {
                return Ok(PathBuf::from(bin));
            }
            let shared = counterpart_dir().join("build.sh");
            if !shared.exists() {
                return Err(format!("{} is missing", shared.display()));
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/counterpart/build.sh");
            // Below the system temp dir: its system user must traverse it.
            let out = std::env::temp_dir().join("gtkg-browse-build");
            let output = Command::new("bash")
                .arg(&script)
                .arg(&out)
                .env("GTKG_COUNTERPART", counterpart_dir())
                .output()
                .map_err(|e| e.to_string())?;
            if !output.status.success() {
                return Err(format!("build.sh failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            Ok(PathBuf::from(stdout.lines().last().unwrap_or_default().trim()))
        })
        .clone()
}

/// The binary, or `None` after printing why the test is skipped; in CI a
/// missing counterpart fails the test instead.
pub fn available() -> Option<PathBuf> {
    match binary() {
        Ok(bin) => Some(bin),
        Err(why) if std::env::var_os("CI").is_some() => panic!("gtk-gnutella is required in CI: {why}"),
        Err(why) => {
            eprintln!("skipped: gtk-gnutella cannot be built here: {why}");
            None
        }
    }
}

/// How a gtk-gnutella is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// `ultra`, `leaf` or `auto`.
    pub mode: &'static str,
    /// Refuse leaves that do not offer deflate (its default).
    pub compress: bool,
    /// Gnutella over UDP on the same port.
    pub udp: bool,
    /// Peers it keeps dialling.
    pub peers: Vec<SocketAddr>,
}

impl Default for Options {
    fn default() -> Options {
        Options { mode: "ultra", compress: true, udp: false, peers: Vec::new() }
    }
}

/// A running gtk-gnutella, stopped when dropped.
pub struct Gtkg {
    bin: PathBuf,
    pid: u32,
    /// Its Gnutella and HTTP address.
    pub addr: SocketAddr,
    /// Holds `home/` (its settings and log) and `share/`.
    root: tempfile::TempDir,
}

impl Gtkg {
    /// Starts one sharing `files` (name, bytes); `None` (after saying why)
    /// when gtk-gnutella is not available outside CI.
    pub fn start(files: &[(&str, &[u8])], options: Options) -> Option<Gtkg> {
        let bin = available()?;
        let root = tempfile::tempdir().unwrap();
        // Its system user must reach home/ and share/ below this folder.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let share = root.path().join("share");
        std::fs::create_dir(&share).unwrap();
        for (name, bytes) in files {
            std::fs::write(share.join(name), bytes).unwrap();
        }
        let peers: Vec<String> = options.peers.iter().map(|p| p.to_string()).collect();
        // Now and then it hangs during its start-up (its log stops after
        // "vsort() will use…", seen in CI and in loaded runs) and never
        // listens: then it is stopped and started once more.
        for attempt in 1..=STARTS {
            let port = free_port();
            let pid = launch(&bin, &share, root.path(), port, &options, &peers);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if listens(addr, LISTEN_PATIENCE) || attempt == STARTS {
                return Some(Gtkg { bin, pid, addr, root });
            }
            eprintln!("gtk-gnutella (pid {pid}) did not listen within {LISTEN_PATIENCE:?}: starting it again");
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        unreachable!("the last start is returned")
    }

    /// Moves it from 127.0.0.1 to `ip` (one of this machine's addresses,
    /// in a test's network namespace): it binds its Gnutella port there and
    /// gives `ip` as its own in GUIDs, Pongs and QueryHits.
    pub fn move_to(&mut self, ip: Ipv4Addr) {
        // Changing the forced address makes it open its sockets anew there.
        self.set("forced_local_ip", &ip.to_string());
        let addr = SocketAddr::from((ip, self.addr.port()));
        self.wait_until(&format!("it to listen on {addr}"), Duration::from_secs(30), || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
        self.addr = addr;
    }

    /// The folder it shares.
    pub fn share_dir(&self) -> PathBuf {
        self.root.path().join("share")
    }

    /// One command of its remote shell; the whole answer.
    pub fn shell(&self, command: &str) -> String {
        let output = Command::new("bash")
            .arg(counterpart_dir().join("shell.sh"))
            .arg(self.addr.port().to_string())
            .arg(command)
            .env("GTKG_BIN", &self.bin)
            .env("GHOME", self.root.path().join("home"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Makes it browse `host` with its own `search_browse()` (the `search
    /// browse IP:PORT` shell command of `tests/counterpart/browse-shell.patch`);
    /// `Err` with its answer when it refuses (`400 …`), as one built without
    /// that patch does (`Unknown operation "browse"`).
    pub fn browse(&self, host: SocketAddr) -> Result<(), String> {
        let answer = self.shell(&format!("search browse {host}"));
        if answer.lines().any(|line| line.starts_with("400")) || !answer.contains("900") {
            Err(answer)
        } else {
            Ok(())
        }
    }

    /// Sets one of its properties, again until `print` reads it back so (on
    /// a loaded machine a set just after its start can be lost: it stayed
    /// firewalled and never sent its PUSH); fails the test if it refuses.
    pub fn set(&self, property: &str, value: &str) {
        self.wait_until(&format!("{property} to read {value}"), Duration::from_secs(60), || {
            let answer = self.shell(&format!("set {property} {value}"));
            assert!(!answer.contains("\n400"), "set {property} {value}: {answer}");
            let now = self.shell(&format!("print {property}"));
            // `Value: FALSE`, `Value: 1`, an address as `Value: < 10.0.0.1 >`.
            let read = now.lines().next().and_then(|l| l.strip_prefix("Value: "));
            read.map(|v| v.trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace())) == Some(value)
        });
    }

    /// Where a download it finished lands (its default `move_file_path`).
    pub fn completed(&self, name: &str) -> PathBuf {
        self.root.path().join("home/gtk-gnutella-downloads/complete").join(name)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("home/gtkg.log")).unwrap_or_default()
    }

    /// What a failing test should show: its peers, its drops, its log's end.
    pub fn diagnose(&self) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!(
            "gtk-gnutella nodes:\n{}\nstats drop:\n{}\nlog tail:\n{}",
            self.shell("nodes"),
            self.shell("stats drop"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Waits until it shares `count` files, hashed (its status line says
    /// "Shares N file"), at most `patience`.
    pub fn wait_shared(&self, count: usize, patience: Duration) {
        let wanted = if count == 1 { "Shares 1 file ".to_string() } else { format!("Shares {count} files ") };
        self.wait_until(&format!("{count} shared files"), patience, || self.shell("status").contains(&wanted));
    }

    /// Polls `condition` every 200 ms until it holds; fails with its state
    /// after `patience`.
    pub fn wait_until(&self, what: &str, patience: Duration, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + patience;
        while !condition() {
            assert!(Instant::now() < deadline, "gave up waiting for gtk-gnutella: {what}\n{}", self.diagnose());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Gtkg {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        // It saves its settings on the way out; wait so the folder can go.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if Path::new(&format!("/proc/{}", self.pid)).exists() {
            let _ = Command::new("kill").args(["-9", &self.pid.to_string()]).status();
        }
    }
}

/// A port no one listens on now (gtk-gnutella needs one given), below the
/// kernel's ephemeral range (32768 and up by default): a socket another test
/// binds to port 0 meanwhile cannot take it before gtk-gnutella binds it,
/// and then `run.sh` would take that socket for gtk-gnutella's.
/// How many times [`Gtkg::start`] starts it before giving up.
const STARTS: usize = 2;
/// How long a start may take before it counts as hung.
const LISTEN_PATIENCE: Duration = Duration::from_secs(60);

/// Starts it on `port` with `run.sh`; its PID.
fn launch(bin: &Path, share: &Path, root: &Path, port: u16, options: &Options, peers: &[String]) -> u32 {
    let output = Command::new("bash")
        .arg(counterpart_dir().join("run.sh"))
        .arg(port.to_string())
        .arg(share)
        .arg(root.join("home"))
        .env("GTKG_BIN", bin)
        .env("MODE", options.mode)
        .env("COMPRESS", if options.compress { "1" } else { "0" })
        .env("UDP", if options.udp { "1" } else { "0" })
        .env("PEERS", peers.join(" "))
        .env("FRESH", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "gtk-gnutella did not start: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("run.sh prints the PID")
}

/// Whether something accepts connections at `addr` within `patience`.
fn listens(addr: SocketAddr, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id() ^ SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    for _ in 0..1_000 {
        // 7919 is prime to 12,000: the tries of one process never repeat a port.
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 on 127.0.0.1");
}
