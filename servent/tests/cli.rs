//! The `servent` binary as a user runs it: three `servent run` processes in
//! a chain a–b–c, and the client commands against a's API.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use common::process::{Running, SERVENT};
use common::{sign_beside, varied_bytes};

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
    assert!(table.starts_with("#  NAME"), "{table}");
    assert!(table.contains("1  SEBLINUX-base-1.0.tar  4.0 KiB  1"), "{table}");
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

#[test]
fn four_servents_download_by_urn_and_by_magnet_from_both_sources() {
    const NAME: &str = "SEBLINUX-iso-2.0.img";
    let bytes = varied_bytes(24 << 20);
    let (share_c, share_d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(share_c.path().join(NAME), &bytes).unwrap();
    std::fs::write(share_d.path().join(NAME), &bytes).unwrap();
    let b = Running::start(None, None);
    let c = Running::start(Some(share_c.path()), Some(&b.listen));
    let d = Running::start(Some(share_d.path()), Some(&b.listen));
    let a = Running::start(None, Some(&b.listen));
    b.wait_until(&["peers", "--json"], |peers| peers.len() == 3);
    for sharer in [&c, &d] {
        sharer.wait_until(&["library", "--json"], |files| files.len() == 1);
    }

    let results = a.json_lines(&["search", "--wait", "3", "--json", "SEBLINUX", "iso"]);
    assert_eq!(results.len(), 1, "{results:?}");
    let mut sources: Vec<String> = serde_json::from_value(results[0]["sources"].clone()).unwrap();
    sources.sort();
    let mut expected = vec![c.listen.clone(), d.listen.clone()];
    expected.sort();
    assert_eq!(sources, expected);

    // By URN, from the sources the search found.
    let sha1 = results[0]["sha1"].as_str().unwrap();
    let done = a.json_lines(&["get", "--wait", "--json", sha1]);
    let (done, progress) = done.split_last().unwrap();
    assert_eq!(done["state"], "complete", "{done:?}");
    // Progress lines before it, as it moved on, never backwards.
    assert!(progress.iter().all(|p| p["state"] != "complete" && p["size"] == bytes.len()), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0]["bytes_done"].as_u64() <= w[1]["bytes_done"].as_u64()), "{progress:?}");
    let path = PathBuf::from(done["path"].as_str().unwrap());
    assert!(path.starts_with(a.data.path().join("downloads")), "{path:?}");
    assert!(std::fs::read(&path).unwrap() == bytes, "downloaded bytes differ");
    a.wait_until(&["library", "--json"], |files| files.iter().any(|f| f["sha1"] == sha1));

    // By magnet, with only the magnet's xs source to go on.
    let magnet = format!("magnet:?xt={sha1}&dn={NAME}&xl={}&xs=http://{}/uri-res/N2R?{sha1}", bytes.len(), c.listen);
    let done = b.json_lines(&["get", "--wait", "--json", &magnet]);
    let done = done.last().unwrap();
    assert_eq!(done["state"], "complete", "{done:?}");
    assert!(std::fs::read(done["path"].as_str().unwrap()).unwrap() == bytes);

    let listed = b.json_lines(&["downloads", "--json"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["bytes_done"], bytes.len());
}

#[test]
fn malformed_download_targets_get_one_clear_line() {
    let b = Running::start(None, None);
    for target in ["magnet:?dn=nothing", "urn:sha1:TOOSHORT", "http://example.com/file"] {
        let output = b.client(&["get", target]);
        assert!(!output.status.success(), "{target}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn trusted_key_file_gives_verdicts_and_a_fake_get_fails_in_one_line() {
    let key = signing_tool::SecretKey::generate().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("seblinux.pub");
    std::fs::write(&public, key.public_key().to_file_text()).unwrap();
    let published = tempfile::tempdir().unwrap();
    sign_beside(&key, published.path(), "SEBLINUX-base-1.0.tar", b"genuine release");
    let faked = tempfile::tempdir().unwrap();
    sign_beside(&key, faked.path(), "SEBLINUX-base-1.0.tar", b"genuine release");
    std::fs::write(faked.path().join("SEBLINUX-base-1.0.tar"), b"a fake, same name").unwrap();

    let hub = Running::start(None, None);
    let publisher = Running::start(Some(published.path()), Some(&hub.listen));
    let faker = Running::start(Some(faked.path()), Some(&hub.listen));
    let trust = format!("{}#SEBLINUX*", public.display());
    let user = Running::start_with(None, Some(&hub.listen), &["--trust", &trust]);
    hub.wait_until(&["peers", "--json"], |peers| peers.len() == 3);
    for sharing in [&publisher, &faker] {
        sharing.wait_until(&["library", "--json"], |files| files.len() == 1);
    }
    let library = faker.json_lines(&["library", "--json"]);
    // Its own servent tells the faker that file does not match its signature.
    assert_eq!(library[0]["verdict"], "fake", "{library:?}");
    assert!(library[0]["reason"].as_str().unwrap().starts_with("signed for 15 bytes"), "{library:?}");

    let keys = user.json_lines(&["trust", "list", "--json"]);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["key_id"], key.key_id().to_string());
    assert_eq!(keys[0]["scope"], serde_json::json!(["SEBLINUX*"]));

    let results = user.json_lines(&["search", "--wait", "3", "--json", "SEBLINUX"]);
    assert_eq!(results.len(), 2, "{results:?}");
    let verified = results.iter().find(|r| r["verdict"] == "verified").expect("a verified result");
    assert_eq!(verified["publisher"], key.key_id().to_string());
    assert_eq!(verified["version"], "1.0");
    assert_eq!(verified["sources"], serde_json::json!([publisher.listen]));
    let fake = results.iter().find(|r| r["verdict"] == "fake").expect("a fake result");

    let refused = user.client(&["get", "--wait", fake["sha1"].as_str().unwrap()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("fake"), "{stderr}");

    let got = user.client(&["get", "--wait", "--require-verified", verified["sha1"].as_str().unwrap()]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let path = String::from_utf8(got.stdout).unwrap();
    assert_eq!(std::fs::read(path.trim()).unwrap(), b"genuine release");
    assert!(path.trim().starts_with(&user.data.path().display().to_string()));

    let removed = user.client(&["trust", "remove", &key.key_id().to_string()]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    assert!(user.json_lines(&["trust", "list", "--json"]).is_empty());
}

#[test]
fn updater_commands_answer_and_refuse_in_one_line() {
    let servent = Running::start_with(None, None, &["--update-search-wait", "1"]);
    let status = servent.json_lines(&["update", "--json"]);
    assert_eq!(status.len(), 1);
    assert_eq!(status[0]["installed"], serde_json::json!([]));
    assert!(status[0]["install_dir"].as_str().unwrap().starts_with(&servent.data.path().display().to_string()));
    // Nothing installed: a pass has nothing to look for.
    assert!(servent.json_lines(&["update", "--once", "--json"]).is_empty());
    let refused = servent.client(&["rollback", "SEBLINUX-base"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SEBLINUX-base is not installed"), "{stderr}");
    // Nothing of that name anywhere: not "up to date", and a failure.
    let missing = servent.client(&["install", "SEBLINUX-base"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SEBLINUX-base: not found"), "{stderr}");
    assert!(String::from_utf8(missing.stdout).unwrap().starts_with("SEBLINUX-base not found: "));

    // A secret key given to `trust add` is refused without a byte of it shown.
    let secret = signing_tool::SecretKey::generate().unwrap().to_file_text(None).unwrap();
    let line = secret.lines().nth(1).unwrap();
    let refused = servent.client(&["trust", "add", line]);
    assert!(!refused.status.success());
    let (stdout, stderr) = (String::from_utf8(refused.stdout).unwrap(), String::from_utf8(refused.stderr).unwrap());
    assert!(stderr.contains("secret* key"), "{stderr}");
    for shown in [&stdout, &stderr, &servent.log()] {
        assert!(!shown.contains(&line[..16]), "key material shown: {shown}");
    }
}

#[test]
fn get_wait_ends_with_the_reason_when_a_download_stalls() {
    let a = Running::start(None, None);
    // Nothing listens there: the source fails, is left alone longer each
    // time, and is dropped; then the download stalls (after 30 s).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let sha1 = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
    let magnet = format!("magnet:?xt={sha1}&dn=SEBLINUX-gone.img&xl=4096&xs=http://{closed}/uri-res/N2R?{sha1}");

    let output = a.client(&["get", "--wait", &magnet]);

    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("download 1 stalled: every source dropped"), "{stderr}");
    assert!(stderr.contains(&format!("{closed}: too many errors: cannot connect")), "{stderr}");
    let listed = a.json_lines(&["downloads", "--json"]);
    assert_eq!(listed[0]["state"], "stalled", "{listed:?}");
    let table = String::from_utf8(a.client(&["downloads"]).stdout).unwrap();
    assert!(table.contains("stalled: every source dropped"), "{table}");
    // Every change of the source's standing is a line of the log.
    let log = a.log();
    for delay in [1, 2] {
        let line = format!(
            "source {closed} failed: cannot connect: Connection refused (os error 111); trying again in {delay} s"
        );
        assert!(log.contains(&line), "{line}\n{log}");
    }
    assert!(log.contains(&format!("source {closed} dropped: cannot connect")), "{log}");
    assert!(log.contains("(SEBLINUX-gone.img) stalled: every source dropped"), "{log}");
}

#[test]
fn a_second_servent_on_the_same_data_directory_fails_naming_the_first() {
    let first = Running::start(None, None);
    let output = Command::new(SERVENT)
        .args(["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--no-discovery", "--data-dir"])
        .arg(first.data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!("the data directory {} is in use by process {}", first.data.path().display(), first.pid());
    assert!(stderr.contains(&expected), "{stderr}");
    // The first one goes on as before.
    first.wait_until(&["peers", "--json"], |_| true);
}

#[test]
fn a_damaged_index_is_rebuilt_from_the_catalog_at_start() {
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("SEBLINUX-base-1.0.tar"), vec![7u8; 4096]).unwrap();
    std::fs::write(share.path().join("SEBLINUX-extras-1.0.tar"), vec![8u8; 4096]).unwrap();
    let mut a = Running::start(Some(share.path()), None);
    a.wait_until(&["library", "--json"], |files| files.len() == 2);

    // A crash, then its index's segments damaged behind an intact meta.json.
    let index = a.data.path().join("index");
    a.stop();
    for entry in std::fs::read_dir(&index).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") && !name.starts_with('.') {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(&path, vec![0xA5; len]).unwrap();
        }
    }
    a.restart();

    let b = Running::start(None, Some(&a.listen));
    b.wait_until(&["peers", "--json"], |peers| peers.len() == 1);
    let results = b.json_lines(&["search", "--wait", "3", "--json", "SEBLINUX"]);
    let mut names: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["SEBLINUX-base-1.0.tar", "SEBLINUX-extras-1.0.tar"], "{}", a.log());
}
