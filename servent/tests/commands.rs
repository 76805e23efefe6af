//! The everyday commands as a user types them, through the binary: numbered
//! search results taken by number or name, pause, resume and cancel, flag
//! values checked, help texts, the peers table, `peer add`, `share add`, `trust add` and one-line errors.

mod common;

use std::process::{Command, Output};

use common::process::{Running, SERVENT};
use common::sign_beside;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn search_numbers_its_results_and_get_takes_one_by_number_or_by_verified_name() {
    let key = signing_tool::SecretKey::generate().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("seblinux.pub");
    std::fs::write(&public, key.public_key().to_file_text()).unwrap();
    let share = tempfile::tempdir().unwrap();
    sign_beside(&key, share.path(), "SEBLINUX-base-1.0.tar", b"the genuine base release");
    std::fs::write(share.path().join("SEBLINUX-base-1.0-extra.tar"), b"an unsigned neighbour").unwrap();
    let sharer = Running::start(Some(share.path()), None);
    let trust = format!("{}#SEBLINUX*", public.display());
    let user = Running::start_with(None, Some(&sharer.listen), &["--trust", &trust]);
    sharer.wait_until(&["library", "--json"], |files| files.len() == 2);
    user.wait_until(&["peers", "--json"], |peers| peers.len() == 1);

    let before = user.client(&["get", "1"]);
    assert!(!before.status.success());
    assert!(stderr(&before).contains("run `servent search` first"), "{}", stderr(&before));

    let table = user.client(&["search", "--wait", "3", "SEBLINUX", "base"]);
    let table = stdout(&table);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("#  NAME") && lines[0].ends_with("URN"), "{table}");
    for (n, line) in lines[1..].iter().enumerate() {
        assert!(line.starts_with(&format!("{}  SEBLINUX-base-1.0", n + 1)), "{table}");
        let urn = line.split_whitespace().last().unwrap();
        assert!(urn.starts_with("sha1:") && urn.len() == 13, "{table}");
    }
    let unsigned = lines.iter().position(|l| l.contains("unsigned")).unwrap();

    // By number: the unsigned one, kept since nothing more was asked.
    let got = user.client(&["get", "--wait", &unsigned.to_string()]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(std::fs::read(stdout(&got).trim()).unwrap(), b"an unsigned neighbour");
    // By name: both names begin so, but only one result is verified.
    let got = user.client(&["get", "--wait", "--require-verified", "SEBLINUX-base"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(std::fs::read(stdout(&got).trim()).unwrap(), b"the genuine base release");

    // Each download with the verdict on its bytes.
    let table = stdout(&user.client(&["downloads"]));
    let verdicts: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[1], cells[3])
        })
        .collect();
    assert!(table.starts_with("ID  NAME"), "{table}");
    assert!(verdicts.contains(&("SEBLINUX-base-1.0.tar", "verified")), "{table}");
    assert!(verdicts.contains(&("SEBLINUX-base-1.0-extra.tar", "unsigned")), "{table}");

    for (target, said) in [("7", "has no result 7: it has 2 results"), ("nosuchname", "no verified result")] {
        let refused = user.client(&["get", target]);
        assert!(!refused.status.success(), "{target}");
        assert_eq!(stderr(&refused).lines().count(), 1, "{}", stderr(&refused));
        assert!(stderr(&refused).contains(said), "{}", stderr(&refused));
    }
}

#[test]
fn pause_resume_and_cancel_a_download_by_its_id() {
    let user = Running::start(None, None);
    // A source nobody answers at: the download waits, and can be paused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sha1 = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
    let magnet =
        format!("magnet:?xt={sha1}&dn=SEBLINUX-base-1.0.tar&xl=4096&xs=http://127.0.0.1:{port}/uri-res/N2R?{sha1}");
    let queued = user.json_lines(&["get", "--json", &magnet]);
    let id = queued[0]["id"].to_string();
    for (command, said) in [("pause", "paused"), ("resume", "resumed"), ("cancel", "cancelled")] {
        let output = user.client(&[command, &id]);
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        assert_eq!(stdout(&output).trim(), format!("{said} download {id}"));
        // The download's task takes the order in its own time.
        user.wait_until(&["downloads", "--json"], |downloads| match command {
            "resume" => downloads[0]["state"] != "paused",
            _ => downloads[0]["state"] == said,
        });
    }
    let unknown = user.client(&["pause", "99"]);
    assert!(!unknown.status.success());
    assert_eq!(stderr(&unknown).lines().count(), 1, "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no download 99"), "{}", stderr(&unknown));
}

#[test]
fn run_refuses_flag_values_that_make_no_sense_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    for (flag, value, said) in [
        ("--upload-slots", "0", "--upload-slots 0 would serve no upload"),
        ("--max-peers", "0", "--max-peers 0 would keep no connection"),
        ("--gwebcache", "notaurl", "is not an http:// or https:// address"),
        ("--update-every", "0", "--update-every 0 is out of range"),
        ("--max-ttl", "0", "--max-ttl 0 is out of range"),
    ] {
        let output = Command::new(SERVENT)
            .args(["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data-dir", data, flag, value])
            .env("XDG_CONFIG_HOME", data)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flag} {value}");
        assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
        assert!(stderr(&output).contains(said), "{flag} {value}: {}", stderr(&output));
    }
    for ttl in ["0", "8"] {
        let output = Command::new(SERVENT).args(["search", "--ttl", ttl, "SEBLINUX"]).output().unwrap();
        assert!(!output.status.success());
        let first = stderr(&output).lines().next().unwrap_or_default().to_owned();
        assert!(first.contains("is not a TTL: a number of hops from 1 to 7"), "{}", stderr(&output));
    }
}

#[test]
fn every_command_says_in_its_help_what_it_does() {
    let commands: [&[&str]; 21] = [
        &["demo"],
        &["run"],
        &["search"],
        &["get"],
        &["pause"],
        &["resume"],
        &["cancel"],
        &["downloads"],
        &["peers"],
        &["peer", "add"],
        &["library"],
        &["status"],
        &["install"],
        &["update"],
        &["rollback"],
        &["uninstall"],
        &["share", "add"],
        &["share", "list"],
        &["trust", "add"],
        &["trust", "list"],
        &["trust", "remove"],
    ];
    let mut seen = std::collections::HashSet::new();
    for command in commands {
        let output = Command::new(SERVENT).args(command).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command:?}");
        let help = stdout(&output);
        // The second line is what the command does.
        let about = help.lines().nth(1).unwrap_or_default().to_owned();
        assert!(!about.is_empty() && !about.contains("API is"), "{command:?}: {help}");
        assert!(seen.insert(about.clone()), "{command:?} says what another says: {about}");
    }
}

#[test]
fn the_peers_table_shows_what_its_columns_say_and_incoming_peers_by_their_listen_address() {
    let b = Running::start(None, None);
    let a = Running::start(None, Some(&b.listen));
    b.wait_until(&["peers", "--json"], |peers| peers.len() == 1);
    // The link is live (pings, the route table): compare the table with the
    // JSON read on both sides of it while the counters stood still.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (table, peer) = loop {
        let before = b.json_lines(&["peers", "--json"]).remove(0);
        let table = stdout(&b.client(&["peers"]));
        let after = b.json_lines(&["peers", "--json"]).remove(0);
        if before["counters"] == after["counters"] && before["queue_dropped"] == after["queue_dropped"] {
            break (table, after);
        }
        assert!(std::time::Instant::now() < deadline, "the counters never stood still");
    };
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ADDRESS", "DIRECTION", "ROLE", "USER_AGENT", "CONNECTED", "RECEIVED", "DROPPED", "SENT", "UNSENT"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[0], row[1]), (a.listen.as_str(), "incoming"), "{table}");
    let last = row.len() - 1;
    assert_eq!(row[last - 3], peer["counters"]["received"].to_string(), "{table}");
    assert_eq!(row[last], peer["queue_dropped"].to_string(), "{table}");
}

#[test]
fn a_client_error_says_the_cause_without_the_http_librarys_words() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(SERVENT).args(["status", "--api", &format!("127.0.0.1:{port}")]).output().unwrap();
    assert!(!output.status.success());
    let said = stderr(&output);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("Connection refused") && !said.contains("occured"), "{said}");
}

#[test]
fn trust_add_reads_its_file_where_the_user_is_and_key_ids_take_any_case() {
    let servent = Running::start(None, None);
    let key = signing_tool::SecretKey::generate().unwrap();
    let here = tempfile::tempdir().unwrap();
    std::fs::write(here.path().join("seblinux.pub"), key.public_key().to_file_text()).unwrap();
    // The servent runs elsewhere: the relative name means the user's file.
    let added = Command::new(SERVENT)
        .args(["trust", "add", "seblinux.pub#SEBLINUX-base", "--scope", "SEBLINUX-extras*", "--api", &servent.api])
        .current_dir(here.path())
        .env_remove("SERVENT_API_TOKEN")
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let id = key.key_id().to_string();
    assert_eq!(stdout(&added).trim(), format!("trusting key {id} (SEBLINUX-base, SEBLINUX-extras*)"));
    let keys = servent.json_lines(&["trust", "list", "--json"]);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["key_id"], id.as_str());

    let missing = servent.client(&["trust", "add", "no-such-key.pub"]);
    assert!(!missing.status.success());
    assert_eq!(stderr(&missing).lines().count(), 1, "{}", stderr(&missing));

    let removed = servent.client(&["trust", "remove", &id.to_ascii_lowercase()]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(servent.json_lines(&["trust", "list", "--json"]).is_empty());
}

#[test]
fn an_unsigned_download_never_keeps_the_name_of_the_verified_release() {
    let key = signing_tool::SecretKey::generate().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("seblinux.pub");
    std::fs::write(&public, key.public_key().to_file_text()).unwrap();
    let published = tempfile::tempdir().unwrap();
    sign_beside(&key, published.path(), "SEBLINUX-base-1.0.tar", b"genuine release");
    let lookalike = tempfile::tempdir().unwrap();
    std::fs::write(lookalike.path().join("SEBLINUX-base-1.0.tar"), b"unsigned lookalike").unwrap();
    let hub = Running::start(None, None);
    let publisher = Running::start(Some(published.path()), Some(&hub.listen));
    let other = Running::start(Some(lookalike.path()), Some(&hub.listen));
    let user = Running::start_with(None, Some(&hub.listen), &["--trust", &format!("{}#SEBLINUX*", public.display())]);
    hub.wait_until(&["peers", "--json"], |peers| peers.len() == 3);
    for sharing in [&publisher, &other] {
        sharing.wait_until(&["library", "--json"], |files| files.len() == 1);
    }
    let results = user.json_lines(&["search", "--wait", "3", "--json", "SEBLINUX"]);
    let urn_of = |verdict: &str| {
        let result = results.iter().find(|r| r["verdict"] == verdict).unwrap_or_else(|| panic!("{results:?}"));
        result["sha1"].as_str().unwrap().to_owned()
    };

    // The unsigned one first: it takes the free name for now.
    let got = user.client(&["get", "--wait", &urn_of("unsigned")]);
    assert!(got.status.success(), "{}", stderr(&got));
    let unsigned = std::path::PathBuf::from(stdout(&got).trim());
    assert!(unsigned.ends_with("SEBLINUX-base-1.0.tar"), "{}", unsigned.display());
    let got = user.client(&["get", "--wait", "--require-verified", &urn_of("verified")]);
    assert!(got.status.success(), "{}", stderr(&got));
    let verified = std::path::PathBuf::from(stdout(&got).trim());
    assert_eq!(verified, unsigned, "the verified release takes its name");
    assert_eq!(std::fs::read(&verified).unwrap(), b"genuine release");
    let aside = verified.with_file_name("SEBLINUX-base-1.0 (1).tar");
    assert_eq!(std::fs::read(aside).unwrap(), b"unsigned lookalike");

    // And the other way round: an unsigned download after the verified one takes a number.
    std::fs::remove_file(verified.with_file_name("SEBLINUX-base-1.0 (1).tar")).unwrap();
    let again = user.client(&["get", "--wait", &urn_of("unsigned")]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).trim().ends_with("SEBLINUX-base-1.0 (1).tar"), "{}", stdout(&again));
    assert_eq!(std::fs::read(&verified).unwrap(), b"genuine release");
}

#[test]
fn share_add_on_a_running_servent_answers_searches_for_the_new_files_at_once() {
    let a = Running::start(None, None);
    let b = Running::start(None, Some(&a.listen));
    a.wait_until(&["peers", "--json"], |peers| peers.len() == 1);
    let here = tempfile::tempdir().unwrap();
    std::fs::create_dir(here.path().join("music")).unwrap();
    std::fs::write(here.path().join("music").join("SEBLINUX-extras-1.0.tar"), vec![5u8; 2048]).unwrap();
    let share_add = |dir: &str| {
        Command::new(SERVENT)
            .args(["share", "add", dir, "--api", &a.api])
            .current_dir(here.path())
            .env_remove("SERVENT_API_TOKEN")
            .output()
            .unwrap()
    };
    let added = share_add("music");
    assert!(added.status.success(), "{}", stderr(&added));
    let folder = here.path().join("music");
    assert_eq!(stdout(&added).trim(), format!("sharing {}", folder.display()));
    a.wait_until(&["library", "--json"], |files| files.iter().any(|f| f["name"] == "SEBLINUX-extras-1.0.tar"));
    let results = b.json_lines(&["search", "--wait", "2", "--json", "extras"]);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["sources"], serde_json::json!([a.listen]));
    let folders = a.json_lines(&["share", "list", "--json"]);
    assert!(folders.iter().any(|f| f.as_str().is_some_and(|f| f.ends_with("/music"))), "{folders:?}");

    let again = share_add("music");
    assert!(stdout(&again).contains("is shared already"), "{}", stdout(&again));
    for (dir, said) in [("no-such-folder", "No such file"), ("music/SEBLINUX-extras-1.0.tar", "not a folder")] {
        let refused = share_add(dir);
        assert!(!refused.status.success(), "{dir}");
        assert_eq!(stderr(&refused).lines().count(), 1, "{}", stderr(&refused));
        assert!(stderr(&refused).contains(said), "{dir}: {}", stderr(&refused));
    }
    let uninstall = a.client(&["uninstall", "SEBLINUX-base"]);
    assert!(!uninstall.status.success());
    assert_eq!(stderr(&uninstall).lines().count(), 1, "{}", stderr(&uninstall));
    assert!(stderr(&uninstall).contains("SEBLINUX-base is not installed"), "{}", stderr(&uninstall));
}

#[test]
fn the_log_has_times_and_levels_and_log_level_or_rust_log_chooses_what_it_shows() {
    let quiet = Running::start_with(None, None, &["--log-level", "warn"]);
    let chatty = Running::start(None, Some(&quiet.listen));
    chatty.wait_until(&["peers", "--json"], |peers| peers.len() == 1);
    quiet.wait_until(&["peers", "--json"], |peers| peers.len() == 1);
    let log = chatty.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{} connected (outgoing", quiet.listen)))
        .unwrap_or_else(|| panic!("{log}"));
    // `2026-12-06T22:51:10Z INFO  127.0.0.1:P connected (outgoing, ultrapeer, servent/…)`
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
    assert!(rest.starts_with("INFO  "), "{line}");
    assert!(!quiet.log().contains("INFO"), "{}", quiet.log());

    let refused = Command::new(SERVENT)
        .args(["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--no-discovery"])
        .env("RUST_LOG", "servent=loud")
        .env("XDG_CONFIG_HOME", quiet.data.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(stderr(&refused).lines().count(), 1, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("RUST_LOG: \"loud\" is not a log level"), "{}", stderr(&refused));
}

#[test]
fn counts_of_one_are_singular() {
    let servent = Running::start_with(None, None, &["--update-every", "1"]);
    let update = servent.client(&["update"]);
    assert!(update.status.success(), "{}", stderr(&update));
    assert!(stdout(&update).lines().any(|l| l.ends_with("every 1 minute")), "{}", stdout(&update));
}

#[test]
fn peer_add_and_run_peer_connect_by_ip_or_host_name() {
    let (a, b, c) = (Running::start(None, None), Running::start(None, None), Running::start(None, None));
    let added = a.client(&["peer", "add", &b.listen]);
    assert!(added.status.success(), "{}", stderr(&added));
    assert_eq!(stdout(&added).trim(), format!("connecting to {}", b.listen));
    let port = c.listen.rsplit_once(':').unwrap().1;
    let added = a.client(&["peer", "add", &format!("localhost:{port}")]);
    assert!(added.status.success(), "{}", stderr(&added));
    a.wait_until(&["peers", "--json"], |peers| {
        let mut listening: Vec<String> = peers.iter().map(|p| p["listen"].as_str().unwrap_or("").to_owned()).collect();
        listening.sort();
        let mut wanted = vec![b.listen.clone(), c.listen.clone()];
        wanted.sort();
        listening == wanted
    });

    // `run --peer HOST:PORT` too.
    let port = b.listen.rsplit_once(':').unwrap().1;
    let d = Running::start(None, Some(&format!("localhost:{port}")));
    d.wait_until(&["peers", "--json"], |peers| peers.iter().any(|p| p["listen"] == b.listen.as_str()));

    for (addr, said) in [("nonsense", "is not IP:PORT or HOST:PORT"), ("0.0.0.0:6346", "is no servent's address")] {
        let refused = a.client(&["peer", "add", addr]);
        assert!(!refused.status.success(), "{addr}");
        assert_eq!(stderr(&refused).lines().count(), 1, "{}", stderr(&refused));
        assert!(stderr(&refused).contains(said), "{addr}: {}", stderr(&refused));
    }
}

#[test]
fn run_takes_its_flags_from_servent_toml_and_the_command_line_overrides_them() {
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("servent");
    std::fs::create_dir_all(&dir).unwrap();
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("SEBLINUX-base-1.0.tar"), b"shared as the file says").unwrap();
    let toml = format!("share = [{:?}]\nupload-slots = 3\nmax-peers = 0\n", share.path().display().to_string());
    std::fs::write(dir.join("servent.toml"), &toml).unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(SERVENT);
        command.args(["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data-dir"]).arg(data.path());
        command.args(extra).env("XDG_CONFIG_HOME", config.path()).output().unwrap()
    };
    // The file's `max-peers = 0` is refused as the flag would be, naming it.
    let refused = run(&[]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--max-peers 0"), "{}", stderr(&refused));
    // `--config` names another file; an unknown key is refused with its name.
    let other = config.path().join("other.toml");
    std::fs::write(&other, "max_peers = 3\n").unwrap();
    let refused = run(&["--config", other.to_str().unwrap()]);
    assert_eq!(stderr(&refused).lines().count(), 1, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("other.toml: unknown key \"max_peers\""), "{}", stderr(&refused));

    // The command line's --max-peers overrides the file's; its share is taken.
    std::fs::write(dir.join("servent.toml"), toml.replace("max-peers = 0", "max-peers = 0\nno-discovery = true"))
        .unwrap();
    let mut command = Command::new(SERVENT);
    command.args(["run", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--max-peers", "4", "--data-dir"]);
    command.arg(data.path()).env("XDG_CONFIG_HOME", config.path()).stdout(std::process::Stdio::piped());
    let mut child = command.stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    let api = line.rsplit("http://").next().unwrap().trim().to_owned();
    let library = || {
        let output = Command::new(SERVENT).args(["library", "--json", "--api", &api]).output().unwrap();
        stdout(&output)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !library().contains("SEBLINUX-base-1.0.tar") {
        assert!(std::time::Instant::now() < deadline, "the file's share was never shared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
