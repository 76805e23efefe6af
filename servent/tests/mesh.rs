//! The download mesh under a liar, over real TCP: an `X-Alt` sent in a
//! request to an honest uploader reaches no downloader.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_std::io::{BufReader, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::stream::StreamExt;
use async_std::task;
use common::{share, start, wait_indexed, PATIENCE};
use servent::transfer::alt::{self, AltLocations};
use servent::transfer::download::{DownloadRequest, DownloadState, Downloads, DownloadsConfig, Keep};
use servent::transfer::http;
use servent::trust::SharedTrust;

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(addr) => addr,
        SocketAddr::V6(_) => panic!("tests listen on IPv4"),
    }
}

/// Sends one request with `headers` on a new connection; the answer's head.
async fn ask(to: SocketAddr, method: &str, target: &str, headers: &str) -> http::ResponseHead {
    let mut stream = TcpStream::connect(to).await.unwrap();
    let text = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    async_std::future::timeout(PATIENCE, http::read_response_head(&mut BufReader::new(stream)))
        .await
        .expect("an answer in time")
        .unwrap()
}

#[async_std::test]
async fn head_with_a_liars_x_alt_puts_the_liar_in_no_download() {
    let bytes: Vec<u8> = (0..(2 << 20) + 7).map(|i: u32| (i % 251) as u8 ^ (i >> 12) as u8).collect();
    let folder = share(&[("SEBLINUX-mesh-1.0.img", &bytes)]);
    let uploader = start(&[], Some(folder.path())).await;
    wait_indexed(&uploader, "seblinux", 1).await;
    let file = uploader.library().files().remove(0);
    let target = format!("/uri-res/N2R?{}", file.sha1);

    // The liar: a listener on another loopback address that counts who dials it.
    let liar = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let liar_addr = v4(liar.local_addr().unwrap());
    let dialled = Arc::new(AtomicUsize::new(0));
    let counter = dialled.clone();
    task::spawn(async move {
        let mut incoming = liar.incoming();
        while let Some(Ok(_held)) = incoming.next().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    let head = ask(uploader.listen_addr(), "HEAD", &target, &format!("X-Alt: {liar_addr}\r\n")).await;
    assert_eq!(head.status, 200);

    // Any downloader asking the uploader now hears of no liar.
    let head = ask(uploader.listen_addr(), "GET", &target, "Range: bytes=0-0\r\nX-Node: 127.0.0.1:1\r\n").await;
    let named = head.headers.get_all("X-Alt").flat_map(alt::parse_x_alt).collect::<Vec<_>>();
    assert!(!named.contains(&liar_addr), "the uploader passes on {named:?}");

    // And an honest download completes, from the uploader alone.
    let dir = tempfile::tempdir().unwrap();
    let mut config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
    config.io_timeout = Duration::from_secs(5);
    let mesh = Arc::new(AltLocations::new());
    let downloads = Downloads::spawn(config, mesh.clone(), SharedTrust::default(), |_| {});
    let id = downloads
        .start(DownloadRequest {
            urns: vec![file.sha1],
            name: "SEBLINUX-mesh-1.0.img".into(),
            size: bytes.len() as u64,
            sources: vec![v4(uploader.listen_addr())],
            signature: None,
            keep: Keep::NotFake,
        })
        .await
        .unwrap();
    let done = async_std::future::timeout(PATIENCE, downloads.wait(id)).await.expect("download ended in time").unwrap();
    assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
    assert!(done.sources.iter().all(|s| s.addr != liar_addr), "the liar became a source: {done:#?}");
    assert_eq!(dialled.load(Ordering::SeqCst), 0, "the downloader dialled the liar");
    assert_eq!(mesh.get(&file.sha1, 10), [v4(uploader.listen_addr())], "the verified source joins the mesh");
    uploader.shutdown().await;
}
