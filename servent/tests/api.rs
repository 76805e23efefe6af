//! The local API under hostile request bodies, over real TCP: a body over
//! [`api::MAX_BODY`] is refused before it is read, five at once too, one
//! that trickles is cut, and an honest call is answered throughout; the API
//! on `[::]` answers a browser that came over IPv4.
//!
//! Alone in its test binary, so that the process's resident memory is the
//! servent's and this test's only.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_std::io::{BufReader, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use common::{start, PATIENCE};
use futures::future::join_all;
use servent::api;
use servent::transfer::http::{self, ResponseHead};

/// What the attackers claim to send.
const HUGE: usize = 100 << 20;

/// The resident memory of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS value");
    kib * 1024
}

fn post_head(api: SocketAddr, path: &str, framing: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\n{framing}\r\n")
}

/// Sends the head, then up to `HUGE` bytes of body (as one chunked stream
/// when `chunked`) while reading the answer; returns it and how many body
/// bytes the servent let through before closing.
async fn send_huge(api: SocketAddr, path: &str, chunked: bool) -> (ResponseHead, usize) {
    let stream = TcpStream::connect(api).await.unwrap();
    let framing =
        if chunked { "Transfer-Encoding: chunked\r\n".to_string() } else { format!("Content-Length: {HUGE}\r\n") };
    let mut writer = stream.clone();
    writer.write_all(post_head(api, path, &framing).as_bytes()).await.unwrap();
    let sender = task::spawn(async move {
        let block = vec![b' '; 1 << 20];
        let mut sent = 0;
        while sent < HUGE {
            let chunk_head = if chunked { format!("{:x}\r\n", block.len()) } else { String::new() };
            let written = async {
                writer.write_all(chunk_head.as_bytes()).await?;
                writer.write_all(&block).await?;
                writer.write_all(if chunked { b"\r\n" } else { b"" }).await
            };
            if written.await.is_err() {
                break;
            }
            sent += block.len();
        }
        sent
    });
    let head = http::read_response_head(&mut BufReader::new(stream)).await.expect("an answer");
    let sent = async_std::future::timeout(PATIENCE, sender).await.expect("the servent closes the connection");
    (head, sent)
}

/// An honest search request on a new connection; its status.
async fn honest_search(api: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(api).await.unwrap();
    let body = r#"{"query": "SEBLINUX"}"#;
    let head = post_head(api, "/api/searches", &format!("Content-Length: {}\r\nConnection: close\r\n", body.len()));
    stream.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
    http::read_response_head(&mut BufReader::new(stream)).await.expect("an answer").status
}

async fn serving_api() -> SocketAddr {
    let node = start(&[], None).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    task::spawn(api::serve(node, None, listener, None));
    api
}

#[async_std::test]
async fn huge_bodies_are_refused_unread_and_honest_calls_go_on() {
    let api = serving_api().await;
    assert_eq!(honest_search(api).await, 200);
    let before = rss();

    let (head, sent) = send_huge(api, "/api/searches", false).await;
    assert_eq!(head.status, 413);
    assert!(sent < HUGE / 4, "the servent read {sent} bytes of a body it refused");

    // Five at once, one of them chunked (no length announced).
    let attacks = join_all((0..5).map(|i| send_huge(api, "/api/searches", i == 0))).await;
    for (head, sent) in &attacks {
        assert_eq!(head.status, 413);
        assert!(*sent < HUGE / 4, "the servent read {sent} bytes of a body it refused");
    }
    let grown = rss().saturating_sub(before);
    assert!(grown < 32 << 20, "resident memory grew by {grown} bytes under the attack");
    assert_eq!(honest_search(api).await, 200);
}

#[async_std::test]
async fn huge_body_to_peer_add_is_refused_unread_too() {
    let api = serving_api().await;
    let (head, sent) = send_huge(api, "/api/peers", false).await;
    assert_eq!(head.status, 413);
    assert!(sent < HUGE / 4, "the servent read {sent} bytes of a body it refused");
    assert_eq!(honest_search(api).await, 200);
}

#[async_std::test]
async fn trickling_body_is_cut_and_honest_calls_go_on() {
    let api = serving_api().await;
    let stream = TcpStream::connect(api).await.unwrap();
    let mut writer = stream.clone();
    writer.write_all(post_head(api, "/api/searches", "Content-Length: 100\r\n").as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = task::spawn(async move {
        // A byte every half second: 50 s for the body, were it allowed.
        while writer.write_all(b" ").await.is_ok() && started.elapsed() < PATIENCE {
            task::sleep(Duration::from_millis(500)).await;
        }
    });
    assert_eq!(honest_search(api).await, 200);
    let head = http::read_response_head(&mut BufReader::new(stream)).await.expect("an answer");
    assert_eq!(head.status, 408);
    let waited = started.elapsed();
    assert!(waited < api::BODY_TIMEOUT * 2, "cut after {waited:?}");
    async_std::future::timeout(PATIENCE, trickle).await.expect("the servent closes the connection");
    assert_eq!(honest_search(api).await, 200);
}

/// The API on `[::]` (`--api [::]:PORT`, its token required): a browser
/// opening `http://127.0.0.1:PORT/` comes over IPv4, so the connection's
/// ends are IPv4-mapped (`[::ffff:127.0.0.1]`); read as the IPv4 addresses
/// they are, its `Host: 127.0.0.1:PORT` is ours and it is answered, not
/// refused as another host's (403).
#[async_std::test]
async fn the_api_on_ipv6_any_answers_a_browser_that_came_over_ipv4() {
    let node = start(&[], None).await;
    let listener = TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let token = api::guard::ApiToken::new("ipv6-any-token-0123456789").unwrap();
    task::spawn(api::serve(node.clone(), None, listener, Some(token)));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer ipv6-any-token-0123456789\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = http::read_response_head(&mut BufReader::new(stream)).await.expect("an answer");
    node.shutdown().await;
    assert_eq!(head.status, 200, "{head:?}");
}
