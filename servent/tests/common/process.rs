//! `servent run` as a user runs it: a child process of the built binary,
//! on 127.0.0.1 with ephemeral ports, and its client commands.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const SERVENT: &str = env!("CARGO_BIN_EXE_servent");
/// Where in its data directory a servent's standard error goes.
const LOG: &str = "servent.log";

/// A `servent run` process, stopped when dropped.
pub struct Running {
    child: Child,
    /// Its Gnutella/HTTP address, `127.0.0.1:P`.
    pub listen: String,
    /// Its API and page address, `127.0.0.1:Q`.
    pub api: String,
    /// The `--api-token` it was started with.
    pub token: Option<String>,
    /// Kept open: the servent writes more lines there.
    _stdout: BufReader<std::process::ChildStdout>,
    /// Its data directory, removed when dropped.
    pub data: tempfile::TempDir,
    /// Its `run` arguments, to start it again.
    args: Vec<OsString>,
}

/// Starts `servent` with `args`, its standard error appended to the log in
/// `data`; the child, its standard output (kept open), and its Gnutella
/// and API addresses from its first line.
fn spawn(args: &[OsString], data: &Path) -> (Child, BufReader<std::process::ChildStdout>, String, String) {
    let mut command = Command::new(SERVENT);
    command.args(args);
    command.env_remove("SERVENT_API_TOKEN");
    // No servent.toml but the test's own.
    command.env("XDG_CONFIG_HOME", data);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data.join(LOG)).unwrap();
    let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    // "servent: listening on 127.0.0.1:P (Gnutella, HTTP), API on http://127.0.0.1:Q"
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let listen = line.split_whitespace().nth(3).expect("listen address").to_string();
    let api = line.rsplit("http://").next().expect("api address").trim().to_string();
    (child, stdout, listen, api)
}

impl Running {
    /// A servent sharing `share`, connecting only to `peer`, of a test
    /// network on loopback (`--dial-local`).
    pub fn start(share: Option<&Path>, peer: Option<&str>) -> Running {
        Running::start_with(share, peer, &[])
    }

    /// As [`Running::start`], with more `run` arguments; an `--api-token`
    /// among them is given to its client commands too.
    pub fn start_with(share: Option<&Path>, peer: Option<&str>, extra: &[&str]) -> Running {
        let data = tempfile::tempdir().unwrap();
        let mut args: Vec<OsString> =
            ["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--no-discovery", "--dial-local"]
                .iter()
                .map(OsString::from)
                .collect();
        args.push("--data-dir".into());
        args.push(data.path().into());
        if let Some(share) = share {
            args.push("--share".into());
            args.push(share.into());
        }
        if let Some(peer) = peer {
            args.push("--peer".into());
            args.push(peer.into());
        }
        args.extend(extra.iter().map(OsString::from));
        // A fixed ultrapeer unless told otherwise: in auto mode two fresh
        // servents would first wait to find that no ultrapeer is about.
        if !extra.contains(&"--mode") {
            args.extend(["--mode", "ultrapeer"].map(OsString::from));
        }
        let token = extra.iter().position(|a| *a == "--api-token").and_then(|i| extra.get(i + 1));
        let (child, stdout, listen, api) = spawn(&args, data.path());
        Running { child, listen, api, token: token.map(|t| t.to_string()), _stdout: stdout, data, args }
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it, as a crash would.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it if it runs and starts it again with the same arguments and
    /// data directory; its addresses change.
    pub fn restart(&mut self) {
        self.stop();
        let (child, stdout, listen, api) = spawn(&self.args, self.data.path());
        (self.child, self._stdout, self.listen, self.api) = (child, stdout, listen, api);
    }

    /// Runs a client command (`args`, then `--api` and the token) against
    /// this servent; what the client remembers (the last search) it keeps
    /// in this servent's data directory.
    pub fn client(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SERVENT);
        command.args(args).args(["--api", &self.api]).env("XDG_STATE_HOME", self.data.path());
        if let Some(token) = &self.token {
            command.args(["--api-token", token]);
        }
        command.env_remove("SERVENT_API_TOKEN");
        command.output().unwrap()
    }

    /// What it wrote on standard error so far, for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join(LOG)).unwrap_or_default()
    }

    /// A client command's `--json` output, one value a line.
    pub fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let output = self.client(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Polls a listing until it satisfies `done`.
    pub fn wait_until(&self, args: &[&str], done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.json_lines(args)) {
            assert!(Instant::now() < deadline, "gave up waiting on {args:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
