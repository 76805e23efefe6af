//! Transfers and verification of one large file, next to the machine's own
//! ceilings measured in the same run.
//!
//! - Downloads: a servent's download manager (a node with a data
//!   directory, as `servent run` starts it) fetching the file from one and
//!   from four sharing servents (and from three and a source that answers
//!   every range with 512 KiB, as gtk-gnutella may), timed to three marks: every chunk on disk
//!   and synced, verified and in the downloads folder (what `servent get
//!   --wait` waits for), and indexed by the downloader's library (shared
//!   on). Next to it `curl -o` fetching the same file from nginx (sendfile
//!   on), the ceiling for one HTTP stream, and from our own upload server
//!   (`/uri-res/N2R?urn:sha1:…`), which isolates the upload side.
//! - Verification: `search::hash_file`, the one read pass for SHA-1 and
//!   SHA-256 a download ends with, against `sha1sum` then `sha256sum` on the
//!   same file, with `openssl speed` as the per-core ceiling of each digest.
//!
//! Everything runs on 127.0.0.1 with the source file in the page cache, and
//! our servents share one process (and its executor): no network, no disk
//! reads, so every figure is an upper bound of what real peers see. Files
//! are written under `$TMPDIR`; `TMPDIR=/dev/shm` takes the disk (our
//! downloads sync every 16 MiB, curl never does) out of the figures.
//!
//! `BENCH_MIB` sets the file size (default 1024), `BENCH_RUNS` the rounds
//! (default 3); contenders take turns within each round, so that noise from
//! other work on the machine is shared out, and the table shows the best
//! and the median of the rounds. A missing `curl`, `nginx`, `sha1sum` or
//! `openssl` skips its rows, saying why.

use std::fs::{self, File};
use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_std::task;
use search::Digests;
use servent::config::Config;
use servent::node::{self, NodeHandle};
use servent::transfer::download::{DownloadRequest, DownloadState, Keep};

/// The shared file's name.
const NAME: &str = "SEBLINUX-bench-1.0.img";
/// Sharing servents in the many-sources case.
const SOURCES: usize = 4;
/// How often a download's state is looked at.
const POLL: Duration = Duration::from_millis(5);
/// Longest any one step may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(600);

fn main() {
    let mib: u64 = env_number("BENCH_MIB", 1024);
    let runs: usize = env_number("BENCH_RUNS", 3);
    assert!(mib > 0 && runs > 0, "BENCH_MIB and BENCH_RUNS must be at least 1");
    let size = mib << 20;
    let dir = tempfile::tempdir().expect("temporary folder");
    let share = dir.path().join("share");
    fs::create_dir(&share).expect("share folder");
    let path = share.join(NAME);
    write_noise(&path, size);
    println!("a {mib} MiB file in {}, {runs} rounds; loopback and page cache: upper bounds", dir.path().display());

    let digests = verification(&path, size, runs);
    task::block_on(transfers(dir.path(), &share, size, &digests, runs));
}

/// A number from the environment, or `default` when it is not set.
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Incompressible content, the same on every run.
fn write_noise(path: &Path, size: u64) {
    let mut file = File::create(path).expect("create the shared file");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() as u64 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk).expect("write the shared file");
    }
}

/// The times of one contender, one per round.
struct Times(Vec<Duration>);

impl Times {
    fn best(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

/// Prints one table row: best and median times, the best rate, and the
/// median time of `reference` over this row's median (> 1: faster).
fn row(name: &str, times: &Times, size: u64, reference: Option<&Times>) {
    let (best, median) = (times.best().as_secs_f64(), times.median().as_secs_f64());
    let ratio = reference.map_or(String::new(), |r| format!("{:8.2}", r.median().as_secs_f64() / median));
    println!("  {name:<44} {best:8.3} {median:8.3} {:9.0} {ratio}", size as f64 / best / 1e6);
}

fn header(title: &str, reference: &str) {
    println!("\n{title}");
    println!("  {:<44} {:>8} {:>8} {:>9} {:>8}", "", "best s", "median s", "MB/s", reference);
}

/// Whether `program` runs here; if not, says which rows are skipped.
fn available(program: &str, version_flag: &str, skipped: &str) -> bool {
    let runs = Command::new(program).arg(version_flag).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !runs {
        println!("  skipped {skipped}: `{program}` is not installed");
    }
    runs
}

fn run_tool(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).stdout(Stdio::null()).status().expect(program);
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

fn time(task: impl FnOnce()) -> Duration {
    let start = Instant::now();
    task();
    start.elapsed()
}

/// Times `search::hash_file` against `sha1sum` + `sha256sum`; returns the
/// file's digests.
fn verification(path: &Path, size: u64, runs: usize) -> Digests {
    let digests = search::hash_file(path).expect("hash the shared file"); // also warms the page cache
    let text = path.to_str().expect("a UTF-8 temporary path");
    let coreutils = available("sha1sum", "--version", "sha1sum + sha256sum");
    let (mut ours, mut sha1sum, mut sha256sum, mut both) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        ours.push(time(|| assert_eq!(search::hash_file(path).expect("hash"), digests)));
        if coreutils {
            sha1sum.push(time(|| run_tool("sha1sum", &[text])));
            sha256sum.push(time(|| run_tool("sha256sum", &[text])));
            both.push(sha1sum[sha1sum.len() - 1] + sha256sum[sha256sum.len() - 1]);
        }
    }
    let (ours, both) = (Times(ours), Times(both));
    header(&format!("verifying {} MiB, SHA-1 and SHA-256 (page cache)", size >> 20), "x ours");
    row("search::hash_file (one pass, two threads)", &ours, size, Some(&ours));
    if coreutils {
        row("sha1sum", &Times(sha1sum), size, Some(&ours));
        row("sha256sum", &Times(sha256sum), size, Some(&ours));
        row("sha1sum then sha256sum", &both, size, Some(&ours));
        let faster = both.median().as_secs_f64() / ours.median().as_secs_f64();
        println!("  search::hash_file vs sha1sum then sha256sum: {faster:.2} x faster");
    }
    if available("openssl", "version", "the openssl speed ceilings") {
        for digest in ["sha1", "sha256"] {
            match openssl_speed(digest) {
                Some(rate) => println!("  ceiling: openssl speed -elapsed -evp {digest:<6} {:9.0} MB/s", rate / 1e6),
                None => println!("  ceiling: openssl speed -evp {digest} gave no figure"),
            }
        }
    }
    digests
}

/// OpenSSL's rate for `digest` on 1 MiB buffers, in bytes per second of
/// wall-clock time, on one core.
fn openssl_speed(digest: &str) -> Option<f64> {
    let args = ["speed", "-mr", "-elapsed", "-seconds", "2", "-bytes", "1048576", "-evp", digest];
    let output = Command::new("openssl").args(args).stderr(Stdio::null()).output().ok()?;
    // Machine-readable result: `+F:<n>:<digest>:<bytes per second>`.
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().find(|l| l.starts_with("+F:"))?.rsplit(':').next()?.trim().parse().ok()
}

/// What every transfer fetches, and where its copies go.
struct Target<'a> {
    size: u64,
    digests: &'a Digests,
    /// Where the temporary downloads go.
    scratch: &'a Path,
}

async fn transfers(dir: &Path, share: &Path, size: u64, digests: &Digests, runs: usize) {
    let mut sharing = Vec::new();
    for _ in 0..SOURCES {
        sharing.push(sharing_servent(share, digests).await);
    }
    let sources: Vec<SocketAddrV4> = sharing.iter().map(|n| v4(n.listen_addr())).collect();
    let target = Target { size, digests, scratch: dir };
    let curl = available("curl", "--version", "curl -o");
    let nginx = if curl && available("nginx", "-v", "curl -o from nginx") { Nginx::start(dir, share) } else { None };
    let ours_url = format!("http://{}/uri-res/N2R?{}", sources[0], digests.sha1_urn());

    let curl_out = dir.join("curl.out");
    let (mut disk, mut to_null, mut from_nginx, mut from_ours) = (vec![], vec![], vec![], vec![]);
    let (mut one, mut many, mut mixed) = (vec![], vec![], vec![]);
    // Three of our servents and one that answers 512 KiB of each range, as
    // gtk-gnutella answers a connection's first request.
    let short = short_range_source(share.join(NAME), size).await;
    let mut with_short = sources[..SOURCES - 1].to_vec();
    with_short.push(short);
    for _ in 0..runs {
        if let Some(nginx) = &nginx {
            let url = format!("http://{}/{NAME}", nginx.addr);
            to_null.push(curl_time(&url, Path::new("/dev/null"), size));
            from_nginx.push(curl_time(&url, &curl_out, size));
        }
        if curl {
            from_ours.push(curl_time(&ours_url, &curl_out, size));
        }
        one.push(download(&sources[..1], &target).await);
        many.push(download(&sources, &target).await);
        mixed.push(download(&with_short, &target).await);
        disk.push(synced_copy_time(&share.join(NAME), &target));
    }

    let (from_nginx, from_ours) = (Times(from_nginx), Times(from_ours));
    let reference = match (nginx.is_some(), curl) {
        (true, _) => Some(&from_nginx),
        (false, true) => Some(&from_ours),
        (false, false) => None,
    };
    let column = if nginx.is_some() { "x nginx" } else { "x ours" };
    header(&format!("transferring {} MiB on 127.0.0.1", size >> 20), column);
    row("ceiling: copy into $TMPDIR, then fdatasync", &Times(disk), size, reference);
    if nginx.is_some() {
        row("ceiling: curl -o /dev/null from nginx", &Times(to_null), size, reference);
        row("curl -o from nginx (sendfile)", &from_nginx, size, reference);
    }
    if curl {
        row("curl -o from our upload server", &from_ours, size, reference);
    }
    let cases = [
        ("1 source".to_string(), &one),
        (format!("{SOURCES} sources"), &many),
        (format!("{SOURCES} sources, one answering 512 KiB ranges"), &mixed),
    ];
    for (sources, phases) in cases {
        let label = |mark: &str| format!("download, {sources}: {mark}");
        row(&label("all chunks synced"), &Times(phases.iter().map(|p| p.fetched).collect()), size, reference);
        row(&label("verified, placed"), &Times(phases.iter().map(|p| p.complete).collect()), size, reference);
        row(&label("indexed, shared on"), &Times(phases.iter().map(|p| p.indexed).collect()), size, reference);
    }
    let median = |phases: &[Phases], mark: fn(&Phases) -> Duration| {
        Times(phases.iter().map(mark).collect()).median().as_secs_f64()
    };
    let fetched = median(&one, |p| p.fetched) / median(&many, |p| p.fetched);
    let complete = median(&one, |p| p.complete) / median(&many, |p| p.complete);
    println!("  {SOURCES} sources vs 1: {fetched:.2} x faster to all chunks synced, {complete:.2} x to verified");

    drop(nginx);
    for node in sharing {
        node.shutdown().await;
    }
}

/// A source that serves `path` answering every range request with at most
/// 512 KiB from its start (a shorter `206`), on kept-alive connections.
async fn short_range_source(path: std::path::PathBuf, size: u64) -> SocketAddrV4 {
    use async_std::io::prelude::{BufReadExt, WriteExt};
    const MOST: u64 = 512 * 1024;
    let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let addr = v4(listener.local_addr().expect("address"));
    task::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let path = path.clone();
            task::spawn(async move {
                let file = File::open(&path).expect("the shared file");
                let mut reader = async_std::io::BufReader::new(stream.clone());
                let mut writer = stream;
                loop {
                    let (mut start, mut end) = (0, size);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                        let lower = line.trim_end().to_ascii_lowercase();
                        if let Some((a, b)) = lower.strip_prefix("range: bytes=").and_then(|r| r.split_once('-')) {
                            start = a.parse().unwrap_or(0);
                            end = b.parse::<u64>().map_or(size, |b| b + 1);
                        }
                    }
                    let end = end.min(start + MOST).min(size);
                    let mut body = vec![0; (end - start) as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&file, &mut body, start).expect("read the shared file");
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Length: {}\r\n\r\n",
                        end - 1,
                        end - start
                    );
                    if writer.write_all(head.as_bytes()).await.is_err() || writer.write_all(&body).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => unreachable!("the servents listen on 127.0.0.1"),
    }
}

/// A servent sharing `share`, once it has indexed the file.
async fn sharing_servent(share: &Path, digests: &Digests) -> NodeHandle {
    let node = node::start(Config {
        data_dir: None,
        listen: "127.0.0.1:0".parse().expect("address"),
        shares: vec![share.to_path_buf()],
        discover: false,
        ..Config::default()
    })
    .await
    .expect("a sharing servent starts");
    let urn = digests.sha1_urn();
    wait_until("a sharing servent to index the file", || node.library().by_urn(&urn).is_some()).await;
    node
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        task::sleep(POLL).await;
    }
}

/// `curl -o` into `out`; the time it took.
fn curl_time(url: &str, out: &Path, size: u64) -> Duration {
    let out_text = out.to_str().expect("a UTF-8 temporary path");
    let start = Instant::now();
    let output = Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--write-out", "%{size_download}", "-o", out_text, url])
        .output()
        .expect("curl");
    let took = start.elapsed();
    let got = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && got == size.to_string(), "curl {url} got {got} bytes: {}", output.status);
    if out.is_file() {
        fs::remove_file(out).expect("remove curl's file");
    }
    took
}

/// Copies the shared file into the scratch folder and syncs the copy: how
/// fast a download, which syncs what it writes, can land on this disk.
fn synced_copy_time(path: &Path, target: &Target) -> Duration {
    let out = target.scratch.join("copy.out");
    let took = time(|| {
        let mut copy = File::create(&out).expect("create the copy");
        std::io::copy(&mut File::open(path).expect("open the shared file"), &mut copy).expect("copy");
        copy.sync_data().expect("sync the copy");
    });
    fs::remove_file(&out).expect("remove the copy");
    took
}

/// When a download reached each mark, from its start.
struct Phases {
    /// Every chunk written and synced; verification begins.
    fetched: Duration,
    /// Verified and in the downloads folder.
    complete: Duration,
    /// In the downloader's library, so shared on.
    indexed: Duration,
}

/// Downloads the file from `sources` with a fresh servent of its own.
async fn download(sources: &[SocketAddrV4], target: &Target<'_>) -> Phases {
    let data = tempfile::tempdir_in(target.scratch).expect("data folder");
    let node = node::start(Config {
        data_dir: Some(data.path().to_path_buf()),
        listen: "127.0.0.1:0".parse().expect("address"),
        discover: false,
        ..Config::default()
    })
    .await
    .expect("a downloading servent starts");
    let downloads = node.downloads().expect("a servent with a data folder downloads");
    let request = DownloadRequest {
        urns: vec![target.digests.sha1_urn(), target.digests.sha256_urn()],
        name: NAME.into(),
        size: target.size,
        sources: sources.to_vec(),
        signature: None,
        keep: Keep::NotFake,
    };

    let start = Instant::now();
    let id = downloads.start(request).await.expect("the download starts");
    let mut fetched = None;
    loop {
        let snapshot = downloads.get(id).await.expect("the download is known");
        if snapshot.state == DownloadState::Verifying || snapshot.state.is_finished() {
            fetched.get_or_insert(start.elapsed());
        }
        if snapshot.state.is_finished() {
            assert_eq!(snapshot.state, DownloadState::Complete, "{snapshot:#?}");
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the download took too long: {snapshot:#?}");
        task::sleep(POLL).await;
    }
    let complete = start.elapsed();
    let urn = target.digests.sha1_urn();
    wait_until("the downloader to index the file", || node.library().by_urn(&urn).is_some()).await;
    let indexed = start.elapsed();
    node.shutdown().await;
    Phases { fetched: fetched.unwrap_or(complete), complete, indexed }
}

/// nginx serving the share folder on a free loopback port, stopped on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with a minimal configuration; `None` (saying why) if it
    /// does not answer.
    fn start(dir: &Path, share: &Path) -> Option<Nginx> {
        let prefix = dir.join("nginx");
        fs::create_dir_all(prefix.join("body")).expect("nginx folder");
        // A port free a moment ago; nginx takes it right after.
        let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
        let log = prefix.join("error.log");
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\nerror_log {log};\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  client_body_temp_path {body};\n  \
             server {{ listen {addr}; root {root}; }}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            log = log.display(),
            body = prefix.join("body").display(),
            root = share.display(),
        );
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, config).expect("nginx configuration");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx { child, addr };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || nginx.child.try_wait().ok().flatten().is_some() {
                let why = fs::read_to_string(&log).unwrap_or_default();
                println!("  skipped curl -o from nginx: nginx did not answer on {addr}: {}", why.trim());
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
