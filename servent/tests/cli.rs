//! The `servent` binary as a user runs it: three `servent run` processes in
//! a chain a–b–c, and the client commands against a's API.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVENT: &str = env!("CARGO_BIN_EXE_servent");

/// A `servent run` process, stopped when dropped.
struct Running {
    child: Child,
    listen: String,
    api: String,
    /// Kept open: the servent writes more lines there.
    _stdout: BufReader<std::process::ChildStdout>,
    _data: tempfile::TempDir,
}

impl Running {
    fn start(share: Option<&Path>, peer: Option<&str>) -> Running {
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(SERVENT);
        command.args(["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--no-discovery", "--data-dir"]);
        command.arg(data.path());
        if let Some(share) = share {
            command.arg("--share").arg(share);
        }
        if let Some(peer) = peer {
            command.args(["--peer", peer]);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        // "servent: listening on 127.0.0.1:P (Gnutella, HTTP), API on http://127.0.0.1:Q"
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let listen = line.split_whitespace().nth(3).expect("listen address").to_string();
        let api = line.rsplit("http://").next().expect("api address").trim().to_string();
        Running { child, listen, api, _stdout: stdout, _data: data }
    }

    fn client(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SERVENT);
        command.arg(args[0]).args(["--api", &self.api]).args(&args[1..]);
        command.output().unwrap()
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let output = self.client(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Polls a listing until it satisfies `done`.
    fn wait_until(&self, args: &[&str], done: impl Fn(&[Value]) -> bool) {
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

#[test]
fn search_across_a_chain_of_three_servent_processes() {
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("SEBLINUX-base-1.0.tar"), vec![7u8; 4096]).unwrap();
    let b = Running::start(None, None);
    let c = Running::start(Some(share.path()), Some(&b.listen));
    let a = Running::start(None, Some(&b.listen));
    b.wait_until(&["peers", "--json"], |peers| peers.len() == 2);
    c.wait_until(&["library", "--json"], |files| files.len() == 1);

    let results = a.json_lines(&["search", "--wait", "3", "--json", "SEBLINUX"]);
    assert_eq!(results.len(), 1, "{results:?}");
    let result = &results[0];
    assert_eq!(result["name"], "SEBLINUX-base-1.0.tar");
    assert_eq!(result["size"], 4096);
    assert!(result["sha1"].as_str().unwrap().starts_with("urn:sha1:"));
    assert!(result["sha256"].as_str().unwrap().starts_with("urn:sha256:"));
    assert_eq!(result["sources"], serde_json::json!([c.listen]));
    assert_eq!(result["verdict"], "unsigned");

    let by_hash = a.json_lines(&["search", "--wait", "2", "--json", result["sha1"].as_str().unwrap()]);
    assert_eq!(by_hash.len(), 1);
    assert_eq!(by_hash[0]["name"], "SEBLINUX-base-1.0.tar");

    let nothing = a.client(&["search", "--wait", "1", "nosuchword"]);
    assert!(nothing.status.success());
    assert!(nothing.stdout.is_empty());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no results"));

    let table = a.client(&["search", "--wait", "2", "seblinux", "base"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("SEBLINUX-base-1.0.tar  4.0 KiB  1"), "{table}");
}

#[test]
fn client_without_a_servent_says_so_in_one_line() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(SERVENT).args(["peers", "--api", &format!("127.0.0.1:{port}")]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no servent answers"), "{stderr}");
}

#[test]
fn api_refuses_a_foreign_host_header() {
    let b = Running::start(None, None);
    let mut stream = TcpStream::connect(&b.api).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"GET /api/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}
