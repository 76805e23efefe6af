//! The web page as a person uses it: headless Chromium, driven by Selenium
//! from `web-ui/tests/browser.py`, on the page of a real `servent run`
//! process that is connected to a publisher. A screenshot of every view
//! lands in `target/browser-screenshots/`. The security rules are checked
//! beside it with plain HTTP.
//!
//! Chromium, ChromeDriver and Python's Selenium come from Debian (packages
//! `chromium`, `chromium-driver`, `python3-selenium`; `.ci/run` installs
//! them). Without them the browser tests say why and pass, except under
//! CI (`CI` set), where they fail.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{Running, SERVENT};

/// The Selenium scenarios.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web-ui/tests/browser.py");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Pythons to try, Debian's first: that is where `python3-selenium` goes.
const PYTHONS: [&str; 2] = ["/usr/bin/python3", "python3"];

/// The user's servent is started with a token, so the page's `?token=` is
/// exercised too.
const TOKEN: &str = "browser-test-token-0123456789";
const NAME: &str = "SEBLINUX-base-1.0.tar";
/// A download that stops half-way: its only source stalls.
const STALLED_NAME: &str = "SEBLINUX-iso-2.0.img";
const STALLED_SIZE: u64 = 4 << 20;

/// The browser tools, when this machine has them.
struct Browser {
    python: String,
}

impl Browser {
    /// Finds Chromium, ChromeDriver and Selenium; when one is missing, says
    /// so and returns `None`, or fails the test under CI.
    fn find() -> Option<Browser> {
        let mut missing: Vec<String> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|tool| !Path::new(tool).exists())
            .map(|tool| tool.to_string())
            .collect();
        let python = PYTHONS.into_iter().find(|python| {
            Command::new(python).args(["-c", "import selenium"]).output().is_ok_and(|o| o.status.success())
        });
        if python.is_none() {
            missing.push("Python's selenium module".into());
        }
        if missing.is_empty() {
            return python.map(|python| Browser { python: python.to_string() });
        }
        let why = format!(
            "missing {}: `apt-get install chromium chromium-driver python3-selenium` (as .ci/run does)",
            missing.join(", ")
        );
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("CI is set but the browser tests cannot run: {why}");
        }
        eprintln!("skipping the browser test: {why}");
        None
    }

    /// Runs one scenario of the script against the page at `url`; fails
    /// the test, with the script's account and what `servent` says of its
    /// downloads, its updater and in its log, unless it passes.
    fn run(&self, scenario: &str, url: &str, args: &[&str], servent: &Running) {
        let shots = screenshots_dir();
        std::fs::create_dir_all(&shots).unwrap();
        let output = Command::new(&self.python)
            .arg(SCRIPT)
            .arg(scenario)
            .args(["--url", url, "--chromium", CHROMIUM, "--chromedriver", CHROMEDRIVER, "--screenshots"])
            .arg(&shots)
            .args(args)
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            let downloads = servent.client(&["downloads", "--json"]);
            eprintln!("servent downloads --json:\n{}", String::from_utf8_lossy(&downloads.stdout));
            let updates = servent.client(&["update", "--json"]);
            eprintln!("servent update --json:\n{}", String::from_utf8_lossy(&updates.stdout));
            eprintln!("servent's log:\n{}", servent.log());
            panic!("browser scenario {scenario:?} failed; screenshots in {}", shots.display());
        }
    }
}

/// `target/browser-screenshots`.
fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("browser-screenshots")
}

/// Bytes that are not all alike.
fn content(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

/// A source that answers the first `honest` range requests (with zeros)
/// and then never again: a download from it stays part-way.
fn stalling_source(size: u64, honest: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let served = served.clone();
            std::thread::spawn(move || serve_until_stalled(stream, size, honest, &served));
        }
    });
    addr
}

fn serve_until_stalled(stream: TcpStream, size: u64, honest: usize, served: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut range = (0, size - 1);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some((from, to)) = line.strip_prefix("range: bytes=").and_then(|r| r.split_once('-')) {
                range = (from.parse().unwrap_or(0), to.parse().unwrap_or(size - 1));
            }
        }
        if served.fetch_add(1, Ordering::SeqCst) >= honest {
            // Silent with the connection open, until the test process ends.
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        let (from, to) = (range.0, range.1.min(size - 1));
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{to}/{size}\r\nContent-Length: {}\r\n\r\n",
            to - from + 1
        );
        let body = vec![0u8; (to - from + 1) as usize];
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&body)).is_err() {
            return;
        }
    }
}

/// A publisher sharing `share`, and a user connected to it whose API needs
/// [`TOKEN`], once the publisher's files are indexed.
fn publisher_and_user(share: &Path, files: usize) -> (Running, Running) {
    let publisher = Running::start(Some(share), None);
    let user = Running::start_with(None, Some(&publisher.listen), &["--api-token", TOKEN]);
    user.wait_until(&["peers", "--json"], |peers| peers.len() == 1);
    publisher.wait_until(&["library", "--json"], |shared| shared.len() == files);
    (publisher, user)
}

#[test]
fn in_the_browser_a_search_result_is_downloaded_and_lands_in_the_library() {
    let Some(browser) = Browser::find() else { return };
    let share = tempfile::tempdir().unwrap();
    let bytes = content(3 << 20);
    std::fs::write(share.path().join(NAME), &bytes).unwrap();
    let (_publisher, user) = publisher_and_user(share.path(), 1);
    // A second download, stuck half-way (its source answers the first
    // half's chunks, then stalls), for the progress bar and the pause,
    // resume and cancel buttons.
    let half = STALLED_SIZE / 2 / servent::transfer::download::plan::chunk_size(STALLED_SIZE);
    let stalled = stalling_source(STALLED_SIZE, half as usize);
    let sha1 = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
    let magnet =
        format!("magnet:?xt={sha1}&dn={STALLED_NAME}&xl={STALLED_SIZE}&xs=http://{stalled}/uri-res/N2R?{sha1}");
    let queued = user.client(&["get", &magnet]);
    assert!(queued.status.success(), "{}", String::from_utf8_lossy(&queued.stderr));
    user.wait_until(&["downloads", "--json"], |d| d.iter().any(|d| d["bytes_done"] == STALLED_SIZE / 2));

    browser.run(
        "download",
        &format!("http://{}/?token={TOKEN}", user.api),
        &["--name", NAME, "--stalled", STALLED_NAME],
        &user,
    );

    let library = user.json_lines(&["library", "--json"]);
    assert!(library.iter().any(|f| f["name"] == NAME), "{library:?}");
    assert!(std::fs::read(user.data.path().join("downloads").join(NAME)).unwrap() == bytes);
}

/// A servent answering every browse with descriptors without end (empty
/// Pings, which a browse skips): the page must show it refused.
fn endless_browse_answer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let mut writer = stream;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-gnutella-packets\r\n\r\n";
                let mut ping = [0u8; 23];
                ping[17] = 1;
                let pings: Vec<u8> = ping.iter().copied().cycle().take(23 * 4096).collect();
                if writer.write_all(head.as_bytes()).is_ok() {
                    while writer.write_all(&pings).is_ok() {}
                }
            });
        }
    });
    addr
}

/// Browse host in the browser: the user browses the publisher from the
/// Peers view, sees its files with their verdicts and downloads one; a
/// search result's Browse button lists its source's files too; a hostile
/// servent's endless answer is refused with a line saying so.
#[test]
fn in_the_browser_a_peer_is_browsed_and_one_of_its_files_downloaded() {
    let Some(browser) = Browser::find() else { return };
    let share = tempfile::tempdir().unwrap();
    let bytes = content(256 << 10);
    std::fs::write(share.path().join(NAME), &bytes).unwrap();
    std::fs::write(share.path().join("SEBLINUX-docs-1.0.tar"), content(1000)).unwrap();
    let (publisher, user) = publisher_and_user(share.path(), 2);
    let hostile = endless_browse_answer().to_string();

    browser.run(
        "browse",
        &format!("http://{}/?token={TOKEN}", user.api),
        &["--name", NAME, "--peer", &publisher.listen, "--files", "2", "--hostile", &hostile],
        &user,
    );

    assert!(std::fs::read(user.data.path().join("downloads").join(NAME)).unwrap() == bytes);
}

/// Verdicts in the browser: a trusted key added on the trust view, a
/// release it signed shown `verified`, another file carrying that
/// signature shown `fake`, struck through, with no Download button.
#[test]
fn in_the_browser_a_trusted_release_is_verified_and_a_replayed_signature_is_fake() {
    let Some(browser) = Browser::find() else { return };
    let share = tempfile::tempdir().unwrap();
    let genuine = share.path().join(NAME);
    std::fs::write(&genuine, content(64 << 10)).unwrap();
    let key = signing_tool::SecretKey::generate().unwrap();
    let meta = signing_tool::ReleaseMeta {
        name: "SEBLINUX-base".into(),
        version: "1.0".into(),
        keywords: vec!["SEBLINUX".into()],
    };
    let signature = signing_tool::files::sign_file(&key, &genuine, Some(&meta), 1_700_000_000).unwrap();
    // The same signature beside other bytes: what a forger can do.
    let fake = "SEBLINUX-base-1.1.tar";
    std::fs::write(share.path().join(fake), content(65 << 10)).unwrap();
    std::fs::copy(&signature, share.path().join(format!("{fake}.minisig"))).unwrap();
    let (_publisher, user) = publisher_and_user(share.path(), 2);

    browser.run(
        "verdicts",
        &format!("http://{}/?token={TOKEN}", user.api),
        &[
            "--key",
            &key.public_key().to_base64(),
            "--key-id",
            &key.key_id().to_string(),
            "--genuine",
            NAME,
            "--fake",
            fake,
        ],
        &user,
    );
}

const PACKAGE: &str = "SEBLINUX-base";
const DAY: u64 = 86_400;

/// Writes `SEBLINUX-base-VERSION.tar` into `dir`, signed by `key` as
/// released `days_ago`.
fn sign_release(key: &signing_tool::SecretKey, dir: &Path, version: &str, days_ago: u64) -> Vec<u8> {
    let bytes = format!("SEBLINUX base system {version}").into_bytes();
    let file = dir.join(format!("{PACKAGE}-{version}.tar"));
    std::fs::write(&file, &bytes).unwrap();
    let meta =
        signing_tool::ReleaseMeta { name: PACKAGE.into(), version: version.into(), keywords: vec!["SEBLINUX".into()] };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    signing_tool::files::sign_file(key, &file, Some(&meta), now - days_ago * DAY).unwrap();
    bytes
}

/// The updater in the browser: a publisher shares signed SEBLINUX-base 1.0
/// (signed 40 days ago: the page flags it as old), the page installs it
/// with its form, the publisher shares 1.1, "Update now" installs it, and
/// Rollback brings 1.0 back with 1.1 held back. The user's post-install
/// hook waits for a gate file the script opens, so that each install stays
/// under way while the page's busy state, and another page's refused
/// pass, are looked at.
#[test]
fn in_the_browser_a_package_is_installed_updated_and_rolled_back() {
    let Some(browser) = Browser::find() else { return };
    let publisher_dir = tempfile::tempdir().unwrap();
    let (share, next) = (publisher_dir.path().join("share"), publisher_dir.path().join("next"));
    std::fs::create_dir(&share).unwrap();
    std::fs::create_dir(&next).unwrap();
    let key = signing_tool::SecretKey::generate().unwrap();
    let first = sign_release(&key, &share, "1.0", 40);
    // 1.1 waits beside the share until the script moves it in.
    sign_release(&key, &next, "1.1", 3);
    let gate = tempfile::tempdir().unwrap();
    let gate = gate.path().join("open");
    // Bounded, so that a failed test leaves no hook behind for long.
    let hook = format!(
        "for i in $(seq 3000); do if [ -e '{0}' ]; then rm '{0}'; exit 0; fi; sleep 0.05; done; exit 1",
        gate.display()
    );
    let publisher = Running::start(Some(&share), None);
    publisher.wait_until(&["library", "--json"], |shared| shared.len() == 1);
    let trust = format!("{}#SEBLINUX*", key.public_key().to_base64());
    let user = Running::start_with(
        None,
        Some(&publisher.listen),
        &[
            "--api-token",
            TOKEN,
            "--trust",
            &trust,
            "--update-every",
            "60",
            "--update-search-wait",
            "2",
            "--post-install",
            &hook,
        ],
    );
    user.wait_until(&["peers", "--json"], |peers| peers.len() == 1);

    let (gate, next, share) = (gate.display().to_string(), next.display().to_string(), share.display().to_string());
    browser.run(
        "updates",
        &format!("http://{}/?token={TOKEN}", user.api),
        &[
            "--package",
            PACKAGE,
            "--key-id",
            &key.key_id().to_string(),
            "--gate",
            &gate,
            "--next",
            &next,
            "--share",
            &share,
            "--publisher-api",
            &publisher.api,
        ],
        &user,
    );

    let status = user.json_lines(&["update", "--json"]);
    let installed = &status[0]["installed"][0];
    assert_eq!(installed["current"]["version"], "1.0", "{status:?}");
    assert_eq!(installed["held_back"], serde_json::json!(["1.1"]), "{status:?}");
    let file = user.data.path().join("installed").join(format!("{PACKAGE}-1.0.tar"));
    assert!(std::fs::read(file).unwrap() == first);
}

/// One HTTP/1.1 request on a new connection; the status and the whole
/// answer.
fn http(addr: &str, head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn the_api_refuses_other_hosts_other_sites_and_changes_that_are_not_json_posts() {
    let servent = Running::start(None, None);
    let api = servent.api.as_str();
    let port = api.rsplit(':').next().unwrap();
    let search = r#"{"query": "SEBLINUX"}"#;

    let (status, page) = http(api, &format!("GET / HTTP/1.1\r\nHost: {api}"), "");
    assert_eq!(status, 200, "{page}");
    assert!(page.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{page}");
    let (status, _) = http(api, &format!("GET /api/status HTTP/1.1\r\nHost: localhost:{port}"), "");
    assert_eq!(status, 200);

    for path in ["/", "/api/status", "/assets/app.js"] {
        let (status, answer) = http(api, &format!("GET {path} HTTP/1.1\r\nHost: evil.example"), "");
        assert_eq!(status, 403, "{path}: {answer}");
    }
    let (status, answer) = http(api, "GET /api/status HTTP/1.1\r\nHost: evil.example", "");
    assert!(answer.ends_with(r#"{"error":"request for another host refused"}"#), "{status} {answer}");
    let (status, _) = http(api, &format!("GET http://evil.example/api/status HTTP/1.1\r\nHost: {api}"), "");
    assert_eq!(status, 403, "an absolute request target names the host, whatever Host says");

    let post = |headers: &[&str]| {
        let head: String = headers.iter().map(|h| format!("\r\n{h}")).collect();
        http(api, &format!("POST /api/searches HTTP/1.1\r\nHost: {api}{head}"), search)
    };
    let json = "Content-Type: application/json";
    let (status, answer) = post(&[json, "Origin: http://evil.example"]);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("another site"), "{answer}");
    let (status, answer) = post(&[json, &format!("Origin: http://{api}")]);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(&[json]);
    assert_eq!(status, 200, "the command line sends no Origin: {answer}");
    for form in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let (status, answer) = post(&[&format!("Content-Type: {form}"), &format!("Origin: http://{api}")]);
        assert_eq!(status, 403, "{form}: {answer}");
    }
    let (status, _) = post(&[]);
    assert_eq!(status, 403, "a POST without Content-Type");

    // No change by any other method, nor by a GET of a change's route.
    let (status, _) = http(api, &format!("DELETE /api/downloads/1 HTTP/1.1\r\nHost: {api}"), "");
    assert_eq!(status, 405);
    let (status, _) = http(api, &format!("GET /api/downloads/1/cancel HTTP/1.1\r\nHost: {api}"), "");
    assert_eq!(status, 405);
}

#[test]
fn with_a_token_every_api_request_needs_it_and_the_page_loads_without() {
    let servent = Running::start_with(None, None, &["--api-token", TOKEN]);
    let api = servent.api.as_str();

    let (status, answer) = http(api, &format!("GET /api/status HTTP/1.1\r\nHost: {api}"), "");
    assert_eq!(status, 401, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("www-authenticate: bearer"), "{answer}");
    let (status, _) = http(api, &format!("GET /api/status HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer wrong"), "");
    assert_eq!(status, 401);
    let (status, _) =
        http(api, &format!("GET /api/status HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {TOKEN}"), "");
    assert_eq!(status, 200);
    for path in ["/", "/assets/app.js", "/assets/style.css"] {
        let (status, _) = http(api, &format!("GET {path} HTTP/1.1\r\nHost: {api}"), "");
        assert_eq!(status, 200, "{path} loads without the token");
    }

    assert!(servent.client(&["status", "--json"]).status.success(), "the command line with --api-token");
    let without =
        Command::new(SERVENT).args(["status", "--api", api]).env_remove("SERVENT_API_TOKEN").output().unwrap();
    assert!(!without.status.success());
    let stderr = String::from_utf8(without.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("token"), "{stderr}");
}

#[test]
fn api_off_loopback_needs_a_token_to_start() {
    let output = Command::new(SERVENT)
        .args(["run", "--api", "0.0.0.0:0", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .env_remove("SERVENT_API_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--api-token"), "{stderr}");
}
