//! Browse host between our servents over real TCP: `GET /` accepting
//! QueryHit descriptors lists what a servent shares, plain or deflated;
//! `servent browse IP:PORT` shows them with their verdicts and `get N`
//! downloads one. Hostile answers (endless, oversized, malformed, silent,
//! naming other hosts) are refused within their bounds.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::process::Running;
use common::{share, sign_beside, start, varied_bytes, wait_indexed};
use servent::compression::Inflater;
use servent::transfer::browse::{self, read_hits, MAX_BROWSE_BYTES};
use servent::trust::Verdict;
use servent::wire::{Guid, Message, Payload, QueryHit, QueryResult};

#[test]
fn a_servent_browses_another_and_sees_its_files_judged() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-one-1.0.tar", b"one".as_slice()), ("SEBLINUX-two-1.0.tar", b"two two")]);
        let browsed = start(&[], Some(files.path())).await;
        wait_indexed(&browsed, "seblinux", 2).await;
        let browser = start(&[], None).await;
        let results = browser.browse(browsed.listen_addr()).await.unwrap();
        let mut names: Vec<(&str, u64)> = results.iter().map(|r| (r.name.as_str(), r.size)).collect();
        names.sort();
        assert_eq!(names, [("SEBLINUX-one-1.0.tar", 3), ("SEBLINUX-two-1.0.tar", 7)]);
        assert!(results.iter().all(|r| r.judgement.verdict == Verdict::Unsigned && r.sha256.is_some()));
        assert_eq!(
            results[0].sources.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            [browsed.listen_addr().to_string()]
        );
        for node in [browser, browsed] {
            node.shutdown().await;
        }
    });
}

#[test]
fn gtk_gnutellas_browse_request_gets_the_descriptors_deflated() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-zip-1.0.tar", b"compress me".as_slice())]);
        let browsed = start(&[], Some(files.path())).await;
        wait_indexed(&browsed, "seblinux", 1).await;
        let mut stream = TcpStream::connect(browsed.listen_addr()).await.unwrap();
        // gtk-gnutella 1.2.3's browse request as `download_send_request`
        // (downloads.c) writes it, TLS upgrade offer included.
        let request = format!(
            "GET / HTTP/1.1\r\nUser-Agent: gtk-gnutella/1.2.3 (2022-02-25; GTK1; Linux x86_64)\r\nHost: {}\r\n\
             X-Features: browse/1.0, fwalt/0.1\r\nX-Token: x\r\nAccept: application/x-gnutella-packets\r\n\
             Accept-Encoding: deflate\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\nX-Queue: 1.0\r\n\r\n",
            browsed.listen_addr()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // Kept alive, as HTTP/1.1 allows: the body is Content-Length long.
        let (mut answer, mut buffer) = (Vec::new(), [0u8; 4096]);
        let end = loop {
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection ended inside the head");
            answer.extend_from_slice(&buffer[..n]);
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "no TLS upgrade, a plain answer: {head}");
        assert!(head.contains("Content-Type: application/x-gnutella-packets"), "{head}");
        assert!(head.contains("Content-Encoding: deflate"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length: {head}"));
        let mut deflated = answer[end..].to_vec();
        while deflated.len() < length {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection ended inside the body");
            deflated.extend_from_slice(&buffer[..n]);
        }
        assert_eq!(deflated.len(), length);
        let mut inflater = Inflater::default();
        let (mut input, mut body) = (&deflated[..], Vec::new());
        while !input.is_empty() {
            let used = inflater.inflate(input, &mut body).unwrap();
            input = &input[used..];
        }
        let hits = read_hits(&mut &body[..]).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].results[0].name, "SEBLINUX-zip-1.0.tar");
        browsed.shutdown().await;
    });
}

#[test]
fn the_api_lists_a_browsed_servents_files() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-api-1.0.tar", b"by the api".as_slice())]);
        let browsed = start(&[], Some(files.path())).await;
        wait_indexed(&browsed, "seblinux", 1).await;
        let browser = start(&[], None).await;
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        task::spawn(servent::api::serve(browser, None, listener, None));
        let mut stream = TcpStream::connect(api).await.unwrap();
        // A GET, as a page elsewhere could make the user's browser send, is refused.
        let mut probe = TcpStream::connect(api).await.unwrap();
        let get =
            format!("GET /api/browse/{} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n", browsed.listen_addr());
        probe.write_all(get.as_bytes()).await.unwrap();
        let mut refused = String::new();
        probe.read_to_string(&mut refused).await.unwrap();
        assert!(!refused.starts_with("HTTP/1.1 200"), "{refused}");
        let body = format!(r#"{{"addr":"{}"}}"#, browsed.listen_addr());
        let request = format!(
            "POST /api/browse HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""name":"SEBLINUX-api-1.0.tar""#), "{answer}");
        assert!(answer.contains(r#""verdict":"unsigned""#), "{answer}");
        browsed.shutdown().await;
    });
}

/// `servent browse` on the command line: another servent's files, a signed
/// one `verified` under the browser's trusted key and an unsigned one, by
/// their browsed address (the two servents are not peers); `get N` then
/// downloads the Nth, byte-identical, keeping its verdict.
#[test]
fn servent_browse_lists_files_with_verdicts_and_get_n_downloads_one() {
    let key = signing_tool::SecretKey::generate().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let signed = varied_bytes(300_000);
    sign_beside(&key, folder.path(), "SEBLINUX-base-1.0.tar", &signed);
    std::fs::write(folder.path().join("SEBLINUX-notes-1.0.tar"), b"notes").unwrap();
    let browsed = Running::start(Some(folder.path()), None);
    browsed.wait_until(&["library", "--json"], |files| files.len() == 2);
    let user = Running::start_with(None, None, &["--trust", &key.public_key().to_base64()]);

    let table = user.client(&["browse", &browsed.listen]);
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let table = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("#  NAME"), "{table}");
    assert!(lines[1].starts_with("1  SEBLINUX-base-1.0.tar") && lines[1].contains("verified  1.0"), "{table}");
    assert!(lines[2].starts_with("2  SEBLINUX-notes-1.0.tar") && lines[2].contains("unsigned"), "{table}");

    let listed = user.json_lines(&["browse", "--json", &browsed.listen]);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["name"], "SEBLINUX-base-1.0.tar");
    assert_eq!(listed[0]["verdict"], "verified");
    assert_eq!(listed[0]["n"], 1);
    assert_eq!(listed[0]["size"], signed.len());
    assert_eq!(listed[1]["verdict"], "unsigned");
    for file in &listed {
        assert_eq!(file["sources"], serde_json::json!([browsed.listen]), "{file}");
    }

    let got = user.client(&["get", "--wait", "--json", "1"]);
    assert!(got.status.success(), "{}\n{}", String::from_utf8_lossy(&got.stderr), user.log());
    let fetched = std::fs::read(user.data.path().join("downloads").join("SEBLINUX-base-1.0.tar")).unwrap();
    assert!(fetched == signed, "the browsed file arrives byte-identical");
    let downloads = user.json_lines(&["downloads", "--json"]);
    assert_eq!(downloads[0]["verdict"], "verified", "{downloads:?}");
}

/// A browse of a servent that is not there, or answers with nothing,
/// fails in one line.
#[test]
fn servent_browse_of_nobody_says_so_in_one_line() {
    let user = Running::start(None, None);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = user.client(&["browse", &format!("127.0.0.1:{port}")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let empty = Running::start(None, None);
    let output = user.client(&["browse", &empty.listen]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("shares no files"));
}

/// What a hostile browsed servent sends after reading the request.
#[derive(Clone, Copy)]
enum Hostile {
    /// A 200 with descriptors' type, then bytes without end.
    Endless,
    /// A 200 announcing a body larger than anyone reads.
    Oversized,
    /// A valid hit, then a header claiming a 4 GiB payload.
    Malformed,
    /// The head, then silence with the connection open.
    Silent,
    /// Valid hits naming another host as their source.
    Elsewhere,
}

/// A servent at the returned address answering every browse as `how`.
fn hostile_servent(how: Hostile) -> SocketAddr {
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
                let mut stream = stream;
                let _ = answer_as(how, &mut stream);
                // Held open, so that only our bounds end the browse.
                std::thread::sleep(Duration::from_secs(120));
            });
        }
    });
    addr
}

fn answer_as(how: Hostile, stream: &mut std::net::TcpStream) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-gnutella-packets\r\n";
    match how {
        Hostile::Endless => {
            stream.write_all(format!("{head}\r\n").as_bytes())?;
            let hits: Vec<u8> = (0..200).flat_map(|n| hit_naming(n, Ipv4Addr::LOCALHOST)).collect();
            loop {
                stream.write_all(&hits)?;
            }
        }
        Hostile::Oversized => {
            stream.write_all(format!("{head}Content-Length: {}\r\n\r\n", 1u64 << 40).as_bytes())?;
            stream.write_all(&hit_naming(1, Ipv4Addr::LOCALHOST))
        }
        Hostile::Malformed => {
            let mut body = hit_naming(1, Ipv4Addr::LOCALHOST);
            let mut lying = hit_naming(2, Ipv4Addr::LOCALHOST);
            lying[19..23].copy_from_slice(&u32::MAX.to_le_bytes());
            body.extend(lying);
            stream.write_all(format!("{head}\r\n").as_bytes())?;
            stream.write_all(&body)
        }
        Hostile::Silent => stream.write_all(format!("{head}\r\n").as_bytes()),
        Hostile::Elsewhere => {
            stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())?;
            stream.write_all(&hit_naming(1, Ipv4Addr::new(10, 9, 8, 7)))?;
            stream.shutdown(std::net::Shutdown::Write)
        }
    }
}

/// An encoded QueryHit of one file, `hostile-N.tar`, saying it is at `ip`.
fn hit_naming(n: u32, ip: Ipv4Addr) -> Vec<u8> {
    let result = QueryResult {
        index: n,
        size: 1000,
        name: format!("hostile-{n}.tar"),
        urns: Vec::new(),
        ggep: Default::default(),
    };
    let hit = QueryHit {
        port: 6346,
        ip,
        speed: 1,
        results: vec![result],
        trailer: None,
        servent_guid: Guid([7; 16]),
        original: Default::default(),
    };
    Message { guid: Guid::random(), ttl: 1, hops: 0, payload: Payload::QueryHit(hit) }.encode()
}

/// Attack: endless, oversized and malformed browse answers are refused
/// by `servent browse` in one line, well before the client's own
/// timeout, and the servent goes on answering.
#[test]
fn servent_browse_refuses_endless_oversized_and_malformed_answers() {
    let user = Running::start(None, None);
    let cases = [
        (Hostile::Endless, format!("more than {} MiB", MAX_BROWSE_BYTES >> 20)),
        (Hostile::Oversized, format!("more than {} MiB", MAX_BROWSE_BYTES >> 20)),
        (Hostile::Malformed, "malformed descriptors".to_string()),
    ];
    for (how, why) in cases {
        let hostile = hostile_servent(how);
        let started = Instant::now();
        let output = user.client(&["browse", &hostile.to_string()]);
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&why) && stderr.contains(&hostile.to_string()), "{stderr}");
        assert!(started.elapsed() < browse::BROWSE_TIMEOUT, "refused by its bound, not by a timeout");
    }
    assert!(user.client(&["status"]).status.success(), "the servent still answers");
}

/// Attack: a browsed servent that sends its head and then nothing is
/// given up on at the timeout, with the connection still open.
#[test]
fn a_silent_browsed_servent_is_given_up_on_at_the_timeout() {
    task::block_on(async {
        let hostile = hostile_servent(Hostile::Silent);
        let started = Instant::now();
        let refused = browse::browse(hostile, Duration::from_secs(2)).await.unwrap_err();
        assert!(refused.contains("timed out"), "{refused}");
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

/// Attack: hits naming another host as their source are listed with the
/// servent browsed as their source, so that a browse cannot send our
/// downloads to a third host.
#[test]
fn browsed_files_are_sourced_at_the_servent_browsed_whatever_its_hits_say() {
    task::block_on(async {
        let hostile = hostile_servent(Hostile::Elsewhere);
        let browser = start(&[], None).await;
        let results = browser.browse(hostile).await.unwrap();
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(results[0].name, "hostile-1.tar");
        assert_eq!(results[0].sources.iter().map(|s| s.to_string()).collect::<Vec<_>>(), [hostile.to_string()]);
        browser.shutdown().await;
    });
}
