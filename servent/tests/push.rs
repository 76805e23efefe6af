//! Transfers with firewalled servents, over real TCP on 127.0.0.1: a PUSH
//! makes the uploader connect to the downloader and open with `GIV`, and
//! the download goes over that connection.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::prelude::FutureExt;
use async_std::task;
use common::{raw_peer, share, start, varied_bytes, wait_connected, wait_for, wait_indexed, PATIENCE};
use futures::AsyncBufReadExt;
use servent::transfer::download::{DownloadState, Keep};
use servent::wire::{Guid, Message, Payload, Push, QueryHit, QueryResult, Trailer, TrailerFlags, Urn};

/// Reads one line ending in LF, without it.
async fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).timeout(PATIENCE).await.expect("a line in time").unwrap();
    line.trim_end_matches(['\r', '\n']).to_string()
}

/// Reads an HTTP head up to its empty line.
async fn head(reader: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = line(reader).await;
        if line.is_empty() {
            return lines;
        }
        lines.push(line);
    }
}

#[test]
fn a_push_for_our_guid_makes_us_connect_back_with_giv_and_serve_the_file() {
    task::block_on(async {
        let content = varied_bytes(200_000);
        let files = share(&[("SEBLINUX-push-1.0.tar", &content)]);
        let uploader = start(&[], Some(files.path())).await;
        wait_indexed(&uploader, "seblinux", 1).await;
        let query = search::Query { words: "seblinux".into(), urns: Vec::new(), limit: 1 };
        let file = uploader.library().search(&query).unwrap().remove(0);
        let guid: Guid = uploader.status().await.unwrap().guid.parse().unwrap();

        let downloader = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(back) = downloader.local_addr().unwrap() else { unreachable!() };
        let mut link = raw_peer(uploader.listen_addr()).await;
        let push =
            Push { servent_guid: guid, index: file.index, ip: *back.ip(), port: back.port(), ggep: Default::default() };
        link.send(&Message { guid: Guid([9; 16]), ttl: 7, hops: 0, payload: Payload::Push(push) }).await;

        let (stream, _) = downloader.accept().timeout(PATIENCE).await.expect("the uploader connects back").unwrap();
        let mut reader = BufReader::new(stream.clone());
        assert_eq!(line(&mut reader).await, format!("GIV {}:{guid}/SEBLINUX-push-1.0.tar", file.index));
        assert_eq!(line(&mut reader).await, "", "the GIV line ends with an empty line");
        let request = format!("GET /uri-res/N2R?{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", file.sha1, back);
        (&stream).write_all(request.as_bytes()).await.unwrap();
        let answer = head(&mut reader).await;
        assert!(answer[0].starts_with("HTTP/1.1 200"), "{answer:?}");
        let mut body = Vec::new();
        reader.read_to_end(&mut body).timeout(PATIENCE).await.expect("the body in time").unwrap();
        assert!(body == content, "the file came back whole over the GIV connection");
        assert_eq!(uploader.uploads().snapshot().pushed, 1);
        uploader.shutdown().await;
    });
}

#[test]
fn a_firewalled_hit_is_fetched_by_push_along_the_hits_path() {
    task::block_on(async {
        let content = varied_bytes(300_000);
        let (digests, _) = search::hash_reader(&content[..]).unwrap();
        let (sha1, sha256) = (digests.sha1_urn(), digests.sha256_urn());
        let downloads = tempfile::tempdir().unwrap();
        let downloader = common::start_with(&[], None, |c| c.data_dir = Some(downloads.path().to_path_buf())).await;
        let mut link = raw_peer(downloader.listen_addr()).await;
        wait_for("the link", || async { downloader.peers().await.unwrap().len() == 1 }).await;

        let id = downloader.search("SEBLINUX firewalled", 4).await.unwrap();
        let query = link.receive_until(|m| matches!(m.payload, Payload::Query(_))).await;
        // A firewalled servent: its hit gives an address nobody listens on
        // and sets the push flag; only its servent GUID reaches it.
        let servent = Guid([0x5E; 16]);
        let result = QueryResult {
            index: 42,
            size: content.len() as u64,
            name: "SEBLINUX-firewalled-1.0.tar".into(),
            urns: vec![sha1, sha256],
            ggep: Default::default(),
        };
        let flags = TrailerFlags { push: Some(true), ..Default::default() };
        let hit = QueryHit {
            port: 1,
            ip: Ipv4Addr::new(127, 0, 0, 1),
            speed: 100,
            results: vec![result],
            trailer: Some(Trailer { vendor: *b"TEST", flags, ggep: Default::default() }),
            servent_guid: servent,
        };
        link.send(&Message { guid: query.guid, ttl: query.hops + 1, hops: 0, payload: Payload::QueryHit(hit) }).await;
        wait_for("the firewalled hit", || async {
            !downloader.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;

        let download = downloader.download(&sha1.to_string(), Keep::NotFake).await.unwrap();
        let push = link.receive_until(|m| matches!(m.payload, Payload::Push(_))).await;
        let Payload::Push(push) = push.payload else { unreachable!() };
        assert_eq!((push.servent_guid, push.index), (servent, 42));
        let back = SocketAddrV4::new(push.ip, push.port);
        assert_eq!(SocketAddr::V4(back), downloader.listen_addr(), "the PUSH names the downloader's address");

        let stream = TcpStream::connect(back).await.unwrap();
        (&stream).write_all(format!("GIV 42:{servent}/SEBLINUX-firewalled-1.0.tar\n\n").as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream.clone());
        let request = head(&mut reader).await;
        assert!(request[0].starts_with(&format!("GET /uri-res/N2R?{sha1} ")), "{request:?}");
        let range = request.iter().find_map(|h| h.strip_prefix("Range: bytes=")).expect("a range request");
        let (start, end) = range.split_once('-').unwrap();
        let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
        let answer = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{}\r\nContent-Length: {}\r\nX-Content-URN: {sha1}\r\n\r\n",
            content.len(),
            end + 1 - start
        );
        (&stream).write_all(answer.as_bytes()).await.unwrap();
        (&stream).write_all(&content[start..=end]).await.unwrap();

        let done = downloader.downloads().unwrap().wait(download).timeout(PATIENCE).await.expect("done").unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert!(std::fs::read(done.path.unwrap()).unwrap() == content);
        assert_eq!(downloader.status().await.unwrap().givs_taken, 1);
        downloader.shutdown().await;
    });
}

#[test]
fn two_servents_transfer_by_push_when_the_uploader_is_firewalled() {
    task::block_on(async {
        let content = varied_bytes(1_500_000);
        let files = share(&[("SEBLINUX-behind-1.0.tar", &content)]);
        let hub = start(&[], None).await;
        // The uploader only dials out: nobody connects to it, so the firewall
        // check finds it unreachable and its hits ask for a PUSH.
        let uploader = start(&[hub.listen_addr()], Some(files.path())).await;
        let downloads = tempfile::tempdir().unwrap();
        let downloader =
            common::start_with(&[hub.listen_addr()], None, |c| c.data_dir = Some(downloads.path().to_path_buf())).await;
        wait_connected(&hub, &uploader).await;
        wait_connected(&hub, &downloader).await;
        wait_indexed(&uploader, "seblinux", 1).await;
        assert!(uploader.status().await.unwrap().firewalled);
        assert!(!hub.status().await.unwrap().firewalled, "others connected to the hub");

        let id = downloader.search("SEBLINUX behind", 4).await.unwrap();
        wait_for("the uploader's hit", || async {
            !downloader.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        let urn: Urn = downloader.search_results(id).await.unwrap().unwrap().results[0].sha1.unwrap();
        let download = downloader.download(&urn.to_string(), Keep::NotFake).await.unwrap();
        let done = downloader.downloads().unwrap().wait(download).timeout(PATIENCE).await.expect("done").unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert!(std::fs::read(done.path.unwrap()).unwrap() == content);
        assert!(uploader.uploads().snapshot().pushed >= 1, "the uploader connected back for a PUSH");
        assert!(downloader.status().await.unwrap().givs_taken >= 1, "the download went over its GIV connection");
        for node in [downloader, uploader, hub] {
            node.shutdown().await;
        }
    });
}
