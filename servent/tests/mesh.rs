//! The download mesh under a liar, over real TCP: an `X-Alt` sent in a
//! request to an honest uploader reaches no downloader, and an `X-Nalt`
//! from anyone but a verified source removes nothing.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
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

/// As [`ask`], from the local address `from`.
async fn ask_from(from: Ipv4Addr, to: SocketAddr, method: &str, target: &str, headers: &str) -> http::ResponseHead {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let mut stream = TcpStream::from(std::net::TcpStream::from(socket));
    let text = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    async_std::future::timeout(PATIENCE, http::read_response_head(&mut BufReader::new(stream)))
        .await
        .expect("an answer in time")
        .unwrap()
}

#[async_std::test]
async fn x_nalt_removes_a_verified_source_only_when_another_verified_source_sends_it() {
    let bytes: Vec<u8> = (0..(1 << 20) + 3).map(|i: u32| (i % 241) as u8 ^ (i >> 11) as u8).collect();
    let folder = share(&[("SEBLINUX-nalt-1.0.img", &bytes)]);
    let source = start(&[], Some(folder.path())).await;
    wait_indexed(&source, "seblinux", 1).await;
    let file = source.library().files().remove(0);
    let data = tempfile::tempdir().unwrap();
    let downloader = common::start_with(&[], None, |c| c.data_dir = Some(data.path().to_path_buf())).await;
    let magnet = format!(
        "magnet:?xt={}&dn=SEBLINUX-nalt-1.0.img&xl={}&xs=http://{}/uri-res/N2R?{}",
        file.sha1,
        bytes.len(),
        source.listen_addr(),
        file.sha1
    );
    let id = downloader.download(&magnet, Keep::NotFake).await.unwrap();
    let done = async_std::future::timeout(PATIENCE, downloader.downloads().unwrap().wait(id)).await.unwrap().unwrap();
    assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
    wait_indexed(&downloader, "seblinux", 1).await;
    let verified = v4(source.listen_addr());
    let mesh = downloader.uploads().alt_locations().clone();
    assert_eq!(mesh.get(&file.sha1, 10), [verified]);
    let target = format!("/uri-res/N2R?{}", file.sha1);
    let nalt = format!("X-Nalt: {verified}\r\nX-Node: 127.0.0.1:1\r\n");

    // Anyone else naming it as failed changes nothing.
    let liar = Ipv4Addr::new(127, 0, 0, 2);
    assert_eq!(ask_from(liar, downloader.listen_addr(), "HEAD", &target, &nalt).await.status, 200);
    assert_eq!(mesh.get(&file.sha1, 10), [verified], "a stranger's X-Nalt removed a verified source");
    let told = ask(downloader.listen_addr(), "HEAD", &target, "X-Node: 127.0.0.1:1\r\n").await;
    assert!(told.headers.get_all("X-Alt").flat_map(alt::parse_x_alt).any(|a| a == verified), "{told:?}");

    // From the address of a source that served verified bytes, it is heard.
    assert_eq!(ask_from(*verified.ip(), downloader.listen_addr(), "HEAD", &target, &nalt).await.status, 200);
    assert!(mesh.get(&file.sha1, 10).is_empty());
    for node in [downloader, source] {
        node.shutdown().await;
    }
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
