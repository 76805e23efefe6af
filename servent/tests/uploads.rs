//! The upload side over real TCP: a servent sharing files, and requests
//! typed by hand as a downloader (or an attacker) would send them.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::{start_with, wait_for, PATIENCE};
use search::SharedFile;
use servent::node::NodeHandle;
use servent::transfer::http::{self, ResponseHead};
use servent::transfer::upload::UploadConfig;

/// `len` bytes that differ from one offset to the next, so that a range
/// off by one shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

/// A servent sharing `files` from `<root>/share`, with `adjust` applied to
/// its upload limits; waits until every file is indexed. `<root>` is left
/// for files that must not be shared.
async fn sharing(
    root: &Path,
    files: &[(&str, &[u8])],
    adjust: impl FnOnce(&mut UploadConfig),
) -> (NodeHandle, Vec<SharedFile>) {
    let share = root.join("share");
    std::fs::create_dir_all(&share).unwrap();
    for (name, contents) in files {
        std::fs::write(share.join(name), contents).unwrap();
    }
    let node = start_with(&[], Some(&share), |config| adjust(&mut config.uploads)).await;
    // The catalog lists a file before the index can find it by URN.
    wait_for("the shared files to be indexed", || async {
        let shared = node.library().files();
        shared.len() == files.len()
            && shared
                .iter()
                .all(|f| node.library().by_urn(&f.sha1).is_some() && node.library().by_urn(&f.sha256).is_some())
    })
    .await;
    let files = node.library().files();
    (node, files)
}

/// One HTTP connection typed by hand.
struct Client {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        Client { reader: BufReader::new(stream.clone()), stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends `GET`/`HEAD` `target` over HTTP/1.1 with extra header lines.
    async fn request(&mut self, method: &str, target: &str, headers: &[&str]) {
        let mut text = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        self.send(text.as_bytes()).await;
    }

    async fn head(&mut self) -> ResponseHead {
        async_std::future::timeout(PATIENCE, http::read_response_head(&mut self.reader))
            .await
            .expect("an answer in time")
            .expect("a well-formed response head")
    }

    /// Reads a response and its `Content-Length` bytes of body.
    async fn response(&mut self) -> (ResponseHead, Vec<u8>) {
        let head = self.head().await;
        let length = head.headers.content_length().unwrap().expect("a Content-Length");
        let mut body = vec![0; length as usize];
        self.reader.read_exact(&mut body).await.unwrap();
        (head, body)
    }

    /// Everything until the server closes.
    async fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = async_std::io::timeout(PATIENCE, self.reader.read_to_end(&mut rest)).await;
        rest
    }

    /// Fails unless the server closes the connection (after whatever it
    /// still sends).
    async fn expect_closed(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match async_std::io::timeout(PATIENCE, self.reader.read(&mut chunk)).await {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => panic!("the connection stayed open"),
                Err(_) => return,
            }
        }
    }
}

/// One request on a new connection: the response head and body.
async fn fetch(addr: SocketAddr, method: &str, target: &str, headers: &[&str]) -> (ResponseHead, Vec<u8>) {
    let mut client = Client::connect(addr).await;
    client.request(method, target, headers).await;
    if method == "HEAD" {
        return (client.head().await, Vec::new());
    }
    client.response().await
}

fn n2r(urn: impl std::fmt::Display) -> String {
    format!("/uri-res/N2R?{urn}")
}

fn header<'a>(head: &'a ResponseHead, name: &str) -> &'a str {
    head.headers.get(name).unwrap_or_else(|| panic!("no {name} in {head:?}"))
}

#[test]
fn full_get_by_sha1_returns_the_exact_bytes_and_every_header() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let contents = pattern(100_000);
        let (node, files) = sharing(root.path(), &[("SEBLINUX-iso-2.0.img", &contents)], |_| {}).await;
        let file = &files[0];
        let (head, body) = fetch(node.listen_addr(), "GET", &n2r(file.sha1), &[]).await;
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(body, contents);
        assert_eq!(header(&head, "Content-Length"), "100000");
        assert_eq!(header(&head, "Content-Type"), "application/binary");
        assert_eq!(header(&head, "Server"), servent::config::USER_AGENT);
        assert_eq!(header(&head, "X-Gnutella-Content-URN"), file.sha1.to_string());
        assert_eq!(header(&head, "X-Content-URN"), file.sha256.to_string());
        assert!(head.headers.get("Content-Range").is_none());
        // The counter moves once the write returns, maybe after the client read.
        wait_for("the bytes to be counted", || async { node.uploads().snapshot().bytes_sent == 100_000 }).await;
        assert_eq!(node.uploads().snapshot().requests, 1);
        node.shutdown().await;
    });
}

#[test]
fn sha256_urn_finds_the_file_too() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"sha256 content")], |_| {}).await;
        let lowercase = files[0].sha256.to_string().to_lowercase();
        let (head, body) = fetch(node.listen_addr(), "GET", &n2r(lowercase), &[]).await;
        assert_eq!((head.status, body.as_slice()), (200, b"sha256 content".as_slice()));
        node.shutdown().await;
    });
}

#[test]
fn ranges_return_the_exact_bytes_with_content_range() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let contents = pattern(10_000);
        let (node, files) = sharing(root.path(), &[("a.bin", &contents)], |_| {}).await;
        let target = n2r(files[0].sha1);
        for (range, start, end) in [
            ("bytes=100-199", 100, 200),
            ("bytes=9990-20000", 9990, 10_000),
            ("bytes=9000-", 9000, 10_000),
            ("bytes=-10", 9990, 10_000),
            ("bytes=-20000", 0, 10_000),
            ("bytes=0-0", 0, 1),
        ] {
            let (head, body) = fetch(node.listen_addr(), "GET", &target, &[&format!("Range: {range}")]).await;
            assert_eq!(head.status, 206, "{range}");
            assert_eq!(body, contents[start..end], "{range}");
            assert_eq!(header(&head, "Content-Range"), format!("bytes {start}-{}/10000", end - 1), "{range}");
            assert_eq!(header(&head, "Content-Length"), (end - start).to_string(), "{range}");
            assert_eq!(header(&head, "X-Gnutella-Content-URN"), files[0].sha1.to_string());
        }
        node.shutdown().await;
    });
}

#[test]
fn unsatisfiable_range_is_416_with_the_length_and_bad_range_is_400() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", &pattern(1000))], |_| {}).await;
        let target = n2r(files[0].sha1);
        for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
            let (head, body) = fetch(node.listen_addr(), "GET", &target, &[&format!("Range: {range}")]).await;
            assert_eq!(head.status, 416, "{range}");
            assert_eq!(header(&head, "Content-Range"), "bytes */1000");
            assert!(body.is_empty());
        }
        for range in ["bytes=9-1", "lines=1-2", "bytes=x-"] {
            let (head, body) = fetch(node.listen_addr(), "GET", &target, &[&format!("Range: {range}")]).await;
            assert_eq!((head.status, body.len()), (400, 0), "{range}");
        }
        node.shutdown().await;
    });
}

#[test]
fn head_has_the_headers_and_no_body() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let contents = pattern(5000);
        let (node, files) = sharing(root.path(), &[("a.bin", &contents)], |_| {}).await;
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("HEAD", &n2r(files[0].sha1), &["Range: bytes=10-19"]).await;
        let head = client.head().await;
        assert_eq!(head.status, 206);
        assert_eq!(header(&head, "Content-Length"), "10");
        assert_eq!(header(&head, "Content-Range"), "bytes 10-19/5000");
        assert_eq!(header(&head, "X-Content-URN"), files[0].sha256.to_string());
        // Had the HEAD carried a body, this answer would not parse.
        client.request("GET", &n2r(files[0].sha1), &["Range: bytes=0-3"]).await;
        let (head, body) = client.response().await;
        assert_eq!((head.status, body.as_slice()), (206, &contents[..4]));
        wait_for("the bytes to be counted", || async { node.uploads().snapshot().bytes_sent == 4 }).await;
        node.shutdown().await;
    });
}

#[test]
fn unknown_urn_and_unknown_paths_are_404() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, _) = sharing(root.path(), &[("a.bin", b"x")], |_| {}).await;
        for target in [
            n2r("urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB"),
            n2r(format!("urn:sha256:{}", "A".repeat(52))),
            n2r("urn:sha1:tooshort"),
            "/".to_string(),
            "/index.html".to_string(),
        ] {
            let (head, body) = fetch(node.listen_addr(), "GET", &target, &[]).await;
            assert_eq!((head.status, body.len()), (404, 0), "{target}");
            assert_eq!(header(&head, "Server"), servent::config::USER_AGENT);
        }
        node.shutdown().await;
    });
}

#[test]
fn get_by_index_and_name_works_and_any_other_name_is_404() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("SEBLINUX iso 2.0.img", b"classic get")], |_| {}).await;
        let index = files[0].index;
        let (head, body) =
            fetch(node.listen_addr(), "GET", &format!("/get/{index}/SEBLINUX%20iso%202.0.img"), &[]).await;
        assert_eq!((head.status, body.as_slice()), (200, b"classic get".as_slice()));
        assert_eq!(header(&head, "X-Gnutella-Content-URN"), files[0].sha1.to_string());
        for target in [
            format!("/get/{index}/other.img"),
            format!("/get/{index}/seblinux%20iso%202.0.img"),
            format!("/get/{}/SEBLINUX%20iso%202.0.img", index + 1),
        ] {
            let (head, _) = fetch(node.listen_addr(), "GET", &target, &[]).await;
            assert_eq!(head.status, 404, "{target}");
        }
        // The downloader names other content: not served in its place.
        let other = "X-Gnutella-Content-URN: urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
        let (head, _) =
            fetch(node.listen_addr(), "GET", &format!("/get/{index}/SEBLINUX%20iso%202.0.img"), &[other]).await;
        assert_eq!(head.status, 404);
        node.shutdown().await;
    });
}

#[test]
fn path_traversal_in_any_form_gets_nothing() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let secret = b"TOP-SECRET-BYTES-NEVER-SERVED";
        std::fs::write(root.path().join("secret.txt"), secret).unwrap();
        let (node, files) = sharing(root.path(), &[("public.txt", b"public")], |_| {}).await;
        let index = files[0].index;
        let absolute = root.path().join("secret.txt").display().to_string();
        let encoded_absolute = http::percent_encode(&absolute);
        let targets = [
            format!("/get/{index}/../secret.txt"),
            format!("/get/{index}/public.txt/../../secret.txt"),
            format!("/get/{index}/..%2fsecret.txt"),
            format!("/get/{index}/%2e%2e/secret.txt"),
            format!("/get/{index}/%2E%2E%2Fsecret.txt"),
            format!("/get/{index}/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
            format!("/get/{index}/{absolute}"),
            format!("/get/{index}/{encoded_absolute}"),
            format!("/get/{index}/public.txt%00"),
            format!("/get/{index}/public.txt%00/../../secret.txt"),
            format!("/get/{index}/..\\secret.txt"),
            format!("/get/{index}/..%5c..%5csecret.txt"),
            format!("/get/{index}/C:%5csecret.txt"),
            format!("/get/../{index}/secret.txt"),
            "/../secret.txt".to_string(),
            "/%2e%2e/secret.txt".to_string(),
            "/secret.txt".to_string(),
            absolute.clone(),
            format!("http://127.0.0.1/{absolute}"),
            "/uri-res/N2R?../secret.txt".to_string(),
            format!("/uri-res/N2R?{encoded_absolute}"),
            "/uri-res/N2R?urn:sha1:..%2f..%2fsecret.txt".to_string(),
        ];
        for target in &targets {
            let mut client = Client::connect(node.listen_addr()).await;
            client.request("GET", target, &["Connection: close"]).await;
            let answer = client.rest().await;
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with("HTTP/1.1 404 ") || text.starts_with("HTTP/1.1 400 "), "{target}: {text}");
            assert!(!answer.windows(secret.len()).any(|w| w == secret), "{target} leaked the secret");
            assert!(text.contains("Content-Length: 0\r\n"), "{target}: {text}");
        }
        // A NUL byte as such is not even a request.
        let mut client = Client::connect(node.listen_addr()).await;
        client.send(format!("GET /get/{index}/public.txt\0 HTTP/1.1\r\n\r\n").as_bytes()).await;
        let answer = client.rest().await;
        assert!(answer.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&answer));
        node.shutdown().await;
    });
}

#[test]
fn keep_alive_serves_request_after_request_on_one_connection() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let contents = pattern(3000);
        let (node, files) = sharing(root.path(), &[("a.bin", &contents)], |_| {}).await;
        let target = n2r(files[0].sha1);
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("GET", &target, &["Range: bytes=0-999"]).await;
        let (first, body) = client.response().await;
        assert_eq!((first.status, body.as_slice()), (206, &contents[..1000]));
        assert!(first.keep_alive());
        // A 404 does not end the connection either.
        client.request("GET", &n2r("urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB"), &[]).await;
        assert_eq!(client.response().await.0.status, 404);
        client.request("GET", &target, &["Range: bytes=1000-2999", "Connection: close"]).await;
        let (last, body) = client.response().await;
        assert_eq!((last.status, body.as_slice()), (206, &contents[1000..]));
        assert!(!last.keep_alive());
        client.expect_closed().await;
        node.shutdown().await;
    });
}

#[test]
fn http_1_0_without_keep_alive_is_closed_after_the_answer() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"old client")], |_| {}).await;
        let mut client = Client::connect(node.listen_addr()).await;
        client.send(format!("GET {} HTTP/1.0\r\n\r\n", n2r(files[0].sha1)).as_bytes()).await;
        let (head, body) = client.response().await;
        assert_eq!((head.status, body.as_slice()), (200, b"old client".as_slice()));
        client.expect_closed().await;
        node.shutdown().await;
    });
}

#[test]
fn idle_connection_is_closed() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) =
            sharing(root.path(), &[("a.bin", b"x")], |c| c.idle_timeout = Duration::from_millis(100)).await;
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("HEAD", &n2r(files[0].sha1), &[]).await;
        assert_eq!(client.head().await.status, 200);
        client.expect_closed().await;
        node.shutdown().await;
    });
}

/// Big enough that the socket buffers of a client that does not read fill
/// long before the body is sent, so its upload holds its slot.
const LARGE: usize = 16 << 20;

#[test]
fn past_the_slots_requests_get_503_with_retry_after() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("big.bin", &pattern(LARGE))], |c| {
            c.slots = 1;
            c.per_address = 10;
            c.retry_after = Duration::from_secs(17);
        })
        .await;
        let target = n2r(files[0].sha1);
        let mut holder = Client::connect(node.listen_addr()).await;
        holder.request("GET", &target, &[]).await;
        assert_eq!(holder.head().await.status, 200);

        let (head, body) = fetch(node.listen_addr(), "GET", &target, &[]).await;
        assert_eq!((head.status, body.len()), (503, 0));
        assert_eq!(header(&head, "Retry-After"), "17");
        assert_eq!(header(&head, "X-Gnutella-Content-URN"), files[0].sha1.to_string());
        assert!(head.keep_alive(), "the head of the queue asks again on its connection");
        // HEAD needs no slot.
        assert_eq!(fetch(node.listen_addr(), "HEAD", &target, &[]).await.0.status, 200);
        assert_eq!(node.uploads().snapshot().refused_busy, 1);

        drop(holder);
        wait_for("the slot to be freed", || async { node.uploads().snapshot().uploading == 0 }).await;
        let (head, body) = fetch(node.listen_addr(), "GET", &target, &["Range: bytes=0-9"]).await;
        assert_eq!((head.status, body.len()), (206, 10));
        node.shutdown().await;
    });
}

#[test]
fn stalled_reader_loses_its_slot() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("big.bin", &pattern(LARGE))], |c| {
            c.slots = 1;
            c.stall_timeout = Duration::from_millis(100);
        })
        .await;
        let mut staller = Client::connect(node.listen_addr()).await;
        staller.request("GET", &n2r(files[0].sha1), &[]).await;
        assert_eq!(staller.head().await.status, 200);
        wait_for("the stalled upload to be dropped", || async { node.uploads().snapshot().uploading == 0 }).await;
        let received = staller.rest().await;
        assert!(received.len() < LARGE, "the whole body arrived though the reader stalled");
        node.shutdown().await;
    });
}

#[test]
fn connections_past_the_per_address_limit_get_503() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"x")], |c| c.per_address = 1).await;
        let target = n2r(files[0].sha1);
        let mut first = Client::connect(node.listen_addr()).await;
        first.request("HEAD", &target, &[]).await;
        assert_eq!(first.head().await.status, 200);

        let (head, _) = fetch(node.listen_addr(), "HEAD", &target, &[]).await;
        assert_eq!(head.status, 503);
        assert!(head.headers.get("Retry-After").is_some());

        drop(first);
        wait_for("the first connection to be forgotten", || async { node.uploads().snapshot().connections == 0 }).await;
        assert_eq!(fetch(node.listen_addr(), "HEAD", &target, &[]).await.0.status, 200);
        node.shutdown().await;
    });
}

#[test]
fn x_alt_names_verified_sources_but_never_the_requester_nor_what_requests_claim() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"x")], |_| {}).await;
        let target = n2r(files[0].sha1);
        // What downloads verified joins the mesh.
        for source in ["10.0.0.1:7000", "10.0.0.2:6346"] {
            node.uploads().alt_locations().add(files[0].sha1, source.parse().unwrap());
        }
        // What requests claim does not, whatever the header or method.
        let old_style = "X-Gnutella-Alternate-Location: http://10.0.0.3:6348/get/1/a.bin 2002-04-30T08:30Z";
        for method in ["HEAD", "GET"] {
            let (head, _) =
                fetch(node.listen_addr(), method, &target, &["X-Alt: 10.0.0.66:6346, 10.0.0.67", old_style]).await;
            assert_eq!(head.status, 200);
        }
        let (head, _) = fetch(node.listen_addr(), "HEAD", &target, &["X-Node: 10.0.0.1:7000"]).await;
        assert_eq!(header(&head, "X-Alt"), "10.0.0.2");
        let (head, _) = fetch(node.listen_addr(), "HEAD", &target, &["X-Node: 10.0.0.9:1"]).await;
        let mut sources: Vec<&str> = header(&head, "X-Alt").split(',').collect();
        sources.sort_unstable();
        assert_eq!(sources, ["10.0.0.1:7000", "10.0.0.2"]);
        node.shutdown().await;
    });
}

#[test]
fn oversized_request_line_is_414_then_closed() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"x")], |_| {}).await;
        let long = format!("/get/1/{}", "a".repeat(http::MAX_REQUEST_LINE));
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("GET", &long, &[]).await;
        assert_eq!(client.head().await.status, 414);
        client.expect_closed().await;
        // The same on a kept-alive connection's second request.
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("HEAD", &n2r(files[0].sha1), &[]).await;
        assert_eq!(client.head().await.status, 200);
        client.request("GET", &long, &[]).await;
        assert_eq!(client.head().await.status, 414);
        client.expect_closed().await;
        node.shutdown().await;
    });
}

#[test]
fn too_many_headers_is_431_then_closed() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"x")], |_| {}).await;
        let headers: Vec<String> = (0..=http::MAX_HEADER_LINES).map(|i| format!("X-Filler-{i}: {i}")).collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("GET", &n2r(files[0].sha1), &headers).await;
        assert_eq!(client.head().await.status, 431);
        client.expect_closed().await;
        let huge = format!("X-Huge: {}", "h".repeat(http::MAX_HEADER_BYTES));
        let mut client = Client::connect(node.listen_addr()).await;
        client.request("GET", &n2r(files[0].sha1), &[&huge]).await;
        assert_eq!(client.head().await.status, 431);
        client.expect_closed().await;
        node.shutdown().await;
    });
}

#[test]
fn malformed_requests_are_400_and_other_methods_501() {
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let (node, files) = sharing(root.path(), &[("a.bin", b"x")], |_| {}).await;
        let mut client = Client::connect(node.listen_addr()).await;
        client.send(b"GET / HTTP/1.1\r\nthis is no header\r\n\r\n").await;
        assert_eq!(client.head().await.status, 400);
        client.expect_closed().await;
        let mut client = Client::connect(node.listen_addr()).await;
        client.send(format!("DELETE {} HTTP/1.1\r\n\r\n", n2r(files[0].sha1)).as_bytes()).await;
        assert_eq!(client.head().await.status, 501);
        client.expect_closed().await;
        node.shutdown().await;
    });
}

/// The `ID=` of an answer's `X-Queued`.
fn queue_id(head: &ResponseHead) -> String {
    let queued = header(head, "X-Queued");
    queued
        .split(';')
        .find_map(|part| part.trim().strip_prefix("ID="))
        .unwrap_or_else(|| panic!("no ID in {queued}"))
        .to_string()
}

/// The `position=` of an answer's `X-Queued`.
fn queue_position(head: &ResponseHead) -> usize {
    let queued = header(head, "X-Queued");
    queued.split(';').find_map(|part| part.trim().strip_prefix("position=")?.parse().ok()).unwrap()
}

/// Timing: every wait is on a condition, and the margins are the
/// protocol's own. `Retry-After` is the configured longest, 10 s (the
/// holder's 16 MiB body takes longer at a slot's least rate), so coming
/// back at once is early by 10 s less three requests; the third comes back
/// by polling until it is no longer early; the places ahead of it are
/// expected back 30 s and 60 s after they queued (a new place waits on
/// the deployed downloader's timer, position × 30 s), so a slot is kept
/// for them with 20 s to spare past the 10 s wait.
#[test]
fn more_requesters_than_slots_are_queued_in_order_and_all_served() {
    const RETRY: Duration = Duration::from_secs(10);
    task::block_on(async {
        let root = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..4).map(|n| format!("file{n}.bin")).collect();
        let contents: Vec<Vec<u8>> = (0..4).map(|n| pattern(if n == 0 { LARGE } else { 1000 + n })).collect();
        let shared: Vec<(&str, &[u8])> =
            names.iter().map(String::as_str).zip(contents.iter().map(Vec::as_slice)).collect();
        let (node, files) = sharing(root.path(), &shared, |c| {
            c.slots = 1;
            c.per_address = 10;
            c.retry_after = RETRY;
        })
        .await;
        let file = |name: &str| files.iter().find(|f| f.name == name).unwrap().sha1;
        // One requester holds the only slot with a body it does not read.
        let mut holder = Client::connect(node.listen_addr()).await;
        holder.request("GET", &n2r(file("file0.bin")), &[]).await;
        assert_eq!(holder.head().await.status, 200);

        // Three more queue, in the order they came, each told its place.
        let mut ids = Vec::new();
        for (n, name) in names[1..].iter().enumerate() {
            let (head, _) = fetch(node.listen_addr(), "GET", &n2r(file(name)), &["X-Queue: 1.0"]).await;
            assert_eq!(head.status, 503);
            assert_eq!(header(&head, "Retry-After"), RETRY.as_secs().to_string());
            assert_eq!(queue_position(&head), n + 1, "{}", header(&head, "X-Queued"));
            assert!(header(&head, "X-Queued").contains(&format!("length={}", n + 1)));
            ids.push(queue_id(&head));
        }
        let addr = node.listen_addr();
        let again = |n: usize| {
            let (target, id) = (n2r(file(&names[n])), ids[n - 1].clone());
            async move {
                let queued = format!("X-Queued: position=1; ID={id}");
                fetch(addr, "GET", &target, &["X-Queue: 1.0", &queued]).await
            }
        };
        // Coming back before Retry-After is refused, the place kept.
        let (early, _) = again(2).await;
        assert_eq!(early.status, 503);
        assert!(early.headers.get("X-Queued").is_none(), "a request too early is refused");

        drop(holder);
        wait_for("the slot to be freed", || async { node.uploads().snapshot().uploading == 0 }).await;
        // The third comes back first, as soon as it may: it is not served
        // before the head of the queue.
        let third = std::cell::RefCell::new(None);
        let (third_ref, again_ref) = (&third, &again);
        wait_for("the third's Retry-After to pass", || async move {
            let (head, _) = again_ref(3).await;
            let answered = head.status == 200 || head.headers.get("X-Queued").is_some();
            *third_ref.borrow_mut() = Some(head);
            answered
        })
        .await;
        let third = third.into_inner().unwrap();
        assert_eq!((third.status, queue_position(&third)), (503, 3));
        for (n, content) in contents.iter().enumerate().skip(1) {
            let (head, body) = again(n).await;
            assert_eq!(head.status, 200, "requester {n} in its turn");
            assert!(body == *content);
            wait_for("the slot to be freed", || async { node.uploads().snapshot().uploading == 0 }).await;
        }
        node.shutdown().await;
    });
}
