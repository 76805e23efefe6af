//! `servent demo --once --json` as a new user runs it: the whole story on
//! loopback, every step reported and done, nothing left behind.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::SERVENT;
use serde_json::Value;

/// Far more than the story needs (a few seconds), far less than CI allows.
const BOUND: Duration = Duration::from_secs(90);

#[test]
fn demo_tells_the_whole_story_with_every_step_done_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(SERVENT)
        .args(["demo", "--once", "--json"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            child.kill().unwrap();
            panic!("`servent demo --once` still ran after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let steps: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "network",
            "page",
            "search",
            "verdicts",
            "download",
            "fake_refused",
            "install",
            "publish",
            "update",
            "share_on"
        ],
        "{stdout}\n{stderr}"
    );
    for step in &steps {
        assert_eq!(step["ok"], true, "{step}\n{stderr}");
        assert!(!step["detail"].as_str().unwrap().is_empty(), "{step}");
    }
    assert!(status.success(), "{status}\n{stderr}");
    let page = steps[1]["detail"].as_str().unwrap();
    assert!(page.contains("http://127.0.0.1:"), "{page}");
    let verdicts = steps[3]["detail"].as_str().unwrap();
    for verdict in ["verified", "fake", "untrusted", "unsigned"] {
        assert!(verdicts.contains(verdict), "{verdicts}");
    }
    assert!(steps[5]["detail"].as_str().unwrap().contains("refused"), "{}", steps[5]);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}
