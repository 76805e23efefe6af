//! Browse host between our servents over real TCP: `GET /` accepting
//! QueryHit descriptors lists what a servent shares, plain or deflated.

mod common;

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::{share, start, wait_indexed};
use servent::compression::Inflater;
use servent::transfer::browse::read_hits;
use servent::trust::Verdict;

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
fn a_browse_that_accepts_deflate_gets_the_descriptors_deflated() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-zip-1.0.tar", b"compress me".as_slice())]);
        let browsed = start(&[], Some(files.path())).await;
        wait_indexed(&browsed, "seblinux", 1).await;
        let mut stream = TcpStream::connect(browsed.listen_addr()).await.unwrap();
        let request = "GET / HTTP/1.1\r\nAccept: application/x-gnutella-packets\r\nAccept-Encoding: deflate\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&answer[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Type: application/x-gnutella-packets"), "{head}");
        assert!(head.contains("Content-Encoding: deflate"), "{head}");
        let mut inflater = Inflater::default();
        let (mut input, mut body) = (&answer[end..], Vec::new());
        while !input.is_empty() {
            let used = inflater.inflate(input, &mut body).unwrap();
            input = &input[used..];
        }
        let hits = read_hits(&body).unwrap();
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
        let request =
            format!("GET /api/browse/{} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n", browsed.listen_addr());
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""name":"SEBLINUX-api-1.0.tar""#), "{answer}");
        assert!(answer.contains(r#""verdict":"unsigned""#), "{answer}");
        browsed.shutdown().await;
    });
}
