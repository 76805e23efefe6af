//! Transfers with firewalled servents, over real TCP on 127.0.0.1: a PUSH
//! makes the uploader connect to the downloader and open with `GIV`, and
//! the download goes over that connection.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::prelude::FutureExt;
use async_std::task;
use common::{raw_peer, share, varied_bytes, wait_connected, wait_for, wait_indexed, PATIENCE};
use futures::AsyncBufReadExt;
use servent::config::Mode;
use servent::node::NodeHandle;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

use servent::transfer::alt::{self, AltLocations};
use servent::transfer::download::{DownloadRequest, DownloadState, Downloads, DownloadsConfig, Keep};
use servent::transfer::http;
use servent::transfer::push::{push_only_key, Pushes};
use servent::transfer::rate::RateLimit;
use servent::trust::SharedTrust;
use servent::wire::{
    Ggep, GgepId, Guid, Message, Payload, Push, Query, QueryFlags, QueryHit, QueryResult, Trailer, TrailerFlags, Urn,
};

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
        let uploader = common::start(&[], Some(files.path())).await;
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
        // A test network (--dial-local): its push proxy is on loopback.
        let downloader = common::start_with(&[], None, |c| {
            c.data_dir = Some(downloads.path().to_path_buf());
        })
        .await;
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
        // It lists a push proxy too (GGEP PUSH: IP, then port little-endian).
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(proxy_addr) = proxy.local_addr().unwrap() else { unreachable!() };
        let mut trailer_ggep = Ggep::default();
        let mut entry = proxy_addr.ip().octets().to_vec();
        entry.extend_from_slice(&proxy_addr.port().to_le_bytes());
        trailer_ggep.insert(GgepId::from_static("PUSH"), entry);
        let hit = QueryHit {
            port: 1,
            ip: Ipv4Addr::new(127, 0, 0, 1),
            speed: 100,
            results: vec![result],
            trailer: Some(Trailer { vendor: *b"TEST", flags, ggep: trailer_ggep }),
            servent_guid: servent,
            original: Default::default(),
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
        // The same request goes to its push proxy, over HTTP.
        let (asked, _) = proxy.accept().timeout(PATIENCE).await.expect("the proxy is asked").unwrap();
        let mut proxy_reader = BufReader::new(asked.clone());
        let proxy_request = head(&mut proxy_reader).await;
        let server_id = servent::push::server_id(servent);
        assert_eq!(proxy_request[0], format!("GET /gnutella/push-proxy?ServerId={server_id}&file=42 HTTP/1.1"));
        assert!(proxy_request.contains(&format!("X-Node: {back}")), "{proxy_request:?}");
        (&asked)
            .write_all(b"HTTP/1.1 202 Push-proxy: message sent to node\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();

        let stream = TcpStream::connect(back).await.unwrap();
        (&stream).write_all(format!("GIV 42:{servent}/SEBLINUX-firewalled-1.0.tar\n\n").as_bytes()).await.unwrap();
        // Every chunk is asked on the connection the GIV opened.
        let mut reader = BufReader::new(stream.clone());
        let mut served = 0;
        while served < content.len() {
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
            served += end + 1 - start;
        }

        let done = downloader.downloads().unwrap().wait(download).timeout(PATIENCE).await.expect("done").unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert!(std::fs::read(done.path.unwrap()).unwrap() == content);
        assert_eq!(downloader.status().await.unwrap().givs_taken, 1);
        downloader.shutdown().await;
    });
}

/// A stranger's hit names a service on our own machine (a loopback port
/// standing for `127.0.0.1:22`); the user picks that result. Outside a test
/// network the download never connects to it: the source is its push-only
/// key, asked by a PUSH along the hit's path.
#[test]
fn attack_a_search_result_naming_a_local_service_is_not_connected_to_when_the_user_downloads_it() {
    task::block_on(async {
        let downloads = tempfile::tempdir().unwrap();
        let downloader = common::start_with(&[], None, |c| {
            c.data_dir = Some(downloads.path().to_path_buf());
            c.dial_local = false;
        })
        .await;
        let mut link = raw_peer(downloader.listen_addr()).await;
        wait_for("the link", || async { downloader.peers().await.unwrap().len() == 1 }).await;
        let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(service_addr) = service.local_addr().unwrap() else { unreachable!() };
        let connected = Arc::new(Mutex::new(false));
        let seen = Arc::clone(&connected);
        task::spawn(async move {
            if service.accept().await.is_ok() {
                *seen.lock().unwrap() = true;
            }
        });

        let id = downloader.search("SEBLINUX local", 4).await.unwrap();
        let query = link.receive_until(|m| matches!(m.payload, Payload::Query(_))).await;
        let servent = Guid([0x10; 16]);
        let sha1 = Urn::Sha1([0x22; 20]);
        let result = QueryResult {
            index: 7,
            size: 1000,
            name: "SEBLINUX-local-1.0.tar".into(),
            urns: vec![sha1],
            ggep: Ggep::default(),
        };
        let hit = QueryHit {
            port: service_addr.port(),
            ip: *service_addr.ip(),
            speed: 100,
            results: vec![result],
            trailer: None,
            servent_guid: servent,
            original: Default::default(),
        };
        link.send(&Message { guid: query.guid, ttl: query.hops + 1, hops: 0, payload: Payload::QueryHit(hit) }).await;
        wait_for("the hit", || async { !downloader.search_results(id).await.unwrap().unwrap().results.is_empty() })
            .await;

        let download = downloader.download(&sha1.to_string(), Keep::NotFake).await.unwrap();
        let sources = || async {
            let snapshot = downloader.downloads().unwrap().get(download).await.unwrap();
            snapshot.sources.iter().map(|s| s.addr).collect::<Vec<SocketAddrV4>>()
        };
        wait_for("the download's sources", || async { !sources().await.is_empty() }).await;
        assert_eq!(sources().await, [push_only_key(servent)], "the local service is no source to connect to");
        let push = link.receive_until(|m| matches!(m.payload, Payload::Push(_))).await;
        let Payload::Push(push) = push.payload else { unreachable!() };
        assert_eq!((push.servent_guid, push.index), (servent, 7), "asked by PUSH along the hit's path");
        assert!(!*connected.lock().unwrap(), "the local service was connected to");
        downloader.shutdown().await;
    });
}

/// A hub outside a test network (it connects back to no loopback address),
/// an uploader sharing `files` that only dials the hub (firewalled: nobody
/// connects to it, so its hits ask for a PUSH), and a downloader keeping
/// its downloads in `downloads` that the hub dials (reachable: a `GIV` can
/// come to it, and a firewalled servent sends no PUSH, as gtk-gnutella),
/// linked, the file indexed.
async fn firewalled_uploader_and_reachable_downloader(files: &TempDir, downloads: &TempDir) -> [NodeHandle; 3] {
    let downloader = common::start_with(&[], None, |c| c.data_dir = Some(downloads.path().to_path_buf())).await;
    let hub = common::start_with(&[downloader.listen_addr()], None, |c| c.dial_local = false).await;
    let uploader = common::start(&[hub.listen_addr()], Some(files.path())).await;
    wait_connected(&hub, &uploader).await;
    wait_connected(&hub, &downloader).await;
    wait_indexed(&uploader, "seblinux", 1).await;
    assert!(uploader.status().await.unwrap().firewalled);
    wait_for("the hub's link to make the downloader reachable", || async {
        !downloader.status().await.unwrap().firewalled
    })
    .await;
    [hub, uploader, downloader]
}

#[test]
fn two_servents_transfer_by_push_when_the_uploader_is_firewalled() {
    task::block_on(async {
        let content = varied_bytes(1_500_000);
        let files = share(&[("SEBLINUX-behind-1.0.tar", &content)]);
        let downloads = tempfile::tempdir().unwrap();
        let [hub, uploader, downloader] = firewalled_uploader_and_reachable_downloader(&files, &downloads).await;
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

/// Sends one request with `headers` on a new connection; the answer's head.
async fn ask(to: SocketAddr, method: &str, target: &str, headers: &str) -> http::ResponseHead {
    let mut stream = TcpStream::connect(to).await.unwrap();
    let text = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    http::read_response_head(&mut BufReader::new(stream)).timeout(PATIENCE).await.expect("an answer in time").unwrap()
}

#[test]
fn a_firewalled_source_that_served_verified_bytes_is_passed_on_in_x_falt_to_those_announcing_fwalt() {
    task::block_on(async {
        let content = varied_bytes(2_500_000);
        let files = share(&[("SEBLINUX-falt-1.0.tar", &content)]);
        let downloads = tempfile::tempdir().unwrap();
        let [hub, uploader, downloader] = firewalled_uploader_and_reachable_downloader(&files, &downloads).await;
        let uploader_guid: Guid = uploader.status().await.unwrap().guid.parse().unwrap();
        let id = downloader.search("SEBLINUX falt", 4).await.unwrap();
        wait_for("the uploader's hit", || async {
            !downloader.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        let urn: Urn = downloader.search_results(id).await.unwrap().unwrap().results[0].sha1.unwrap();
        let download = downloader.download(&urn.to_string(), Keep::NotFake).await.unwrap();
        let done = downloader.downloads().unwrap().wait(download).timeout(PATIENCE).await.expect("done").unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        wait_indexed(&downloader, "seblinux", 1).await;

        // The verified firewalled source goes in X-Falt, only to a peer announcing fwalt; never in X-Alt.
        let target = format!("/uri-res/N2R?{urn}");
        let told = ask(downloader.listen_addr(), "HEAD", &target, "X-Features: browse/1.0, fwalt/0.1\r\n").await;
        assert_eq!(told.status, 200);
        assert!(alt::announces(told.headers.get("X-Features"), alt::FWALT), "{told:?}");
        let falt: Vec<_> = told.headers.get_all("X-Falt").flat_map(alt::parse_x_falt).collect();
        assert!(falt.iter().any(|l| l.servent == uploader_guid), "{told:?}");
        let SocketAddr::V4(uploader_addr) = uploader.listen_addr() else { unreachable!() };
        assert!(!told.headers.get_all("X-Alt").flat_map(alt::parse_x_alt).any(|a| a == uploader_addr), "{told:?}");
        let untold = ask(downloader.listen_addr(), "HEAD", &target, "").await;
        assert_eq!((untold.status, untold.headers.get("X-Falt")), (200, None), "{untold:?}");

        // A third downloader announcing fwalt reads it and sends that servent a PUSH.
        let (pushed, push_sent) = async_std::channel::unbounded();
        let pushes = Arc::new(Pushes::new(move |servent, _, _| {
            let _ = pushed.try_send(servent);
        }));
        // It can take GIV connections (no node here to run the firewall check).
        pushes.set_reachable(true);
        let dir = tempfile::tempdir().unwrap();
        let mut config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
        config.pushes = Some(pushes);
        // Slow enough that the learned source is tried before the end.
        config.rate = Arc::new(RateLimit::new(500_000));
        let third = Downloads::spawn(config, Arc::new(AltLocations::new()), SharedTrust::default(), |_| {});
        let SocketAddr::V4(from) = downloader.listen_addr() else { unreachable!() };
        let request = DownloadRequest {
            urns: vec![urn],
            name: "SEBLINUX-falt-1.0.tar".into(),
            size: content.len() as u64,
            sources: vec![from],
            signature: None,
            keep: Keep::NotFake,
        };
        let id = third.start(request).await.unwrap();
        let servent = push_sent.recv().timeout(PATIENCE).await.expect("a PUSH in time").unwrap();
        assert_eq!(servent, uploader_guid);
        let done = third.wait(id).timeout(PATIENCE).await.expect("done").unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert!(done.sources.iter().any(|s| s.addr == push_only_key(uploader_guid)), "{done:#?}");
        for node in [downloader, uploader, hub] {
            node.shutdown().await;
        }
    });
}

#[test]
fn a_neighbour_connects_back_when_asked_and_the_firewall_check_then_finds_us_reachable() {
    task::block_on(async {
        // A test network (--dial-local): local connections count, and local
        // addresses are connected back to.
        let answerer = common::start(&[], None).await;
        let asker = common::start(&[answerer.listen_addr()], None).await;
        wait_connected(&answerer, &asker).await;
        // Nobody dials the asker (no discovery): only the connect-back it
        // asked for (TCP Connect Back) can reach it.
        wait_for("the connect-back", || async { !asker.status().await.unwrap().firewalled }).await;
        for node in [asker, answerer] {
            node.shutdown().await;
        }
    });
}

/// The status line of a push-proxy request for `servent` sent from `from`,
/// naming `x_node` as the downloader.
async fn ask_proxy_from(from: Ipv4Addr, proxy: SocketAddr, servent: Guid, x_node: &str) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&proxy.into()).unwrap();
    let stream = TcpStream::from(std::net::TcpStream::from(socket));
    let request = format!(
        "GET /gnutella/push-proxy?ServerId={} HTTP/1.1\r\nX-Node: {x_node}\r\nConnection: close\r\n\r\n",
        servent::push::server_id(servent)
    );
    (&stream).write_all(request.as_bytes()).await.unwrap();
    head(&mut BufReader::new(stream)).await[0].clone()
}

/// A downloader's address on the Internet, as an `X-Node` names it.
const DISTANT: &str = "198.51.100.9:6346";

#[test]
fn attack_a_push_proxy_request_naming_a_local_x_node_is_refused_with_400_outside_a_test_network() {
    task::block_on(async {
        let ultrapeer = common::start_with(&[], None, |c| {
            c.mode = Mode::Ultrapeer;
            c.dial_local = false;
        })
        .await;
        let test_network = common::start_with(&[], None, |c| {
            c.mode = Mode::Ultrapeer;
            c.dial_local = true;
        })
        .await;
        let nobody = Guid([3; 16]);
        for local in ["127.0.0.1:22", "192.168.1.1:80", "10.0.0.1:445"] {
            let answer = ask_proxy_from(Ipv4Addr::LOCALHOST, ultrapeer.listen_addr(), nobody, local).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{local}: {answer}");
        }
        let distant = ask_proxy_from(Ipv4Addr::LOCALHOST, ultrapeer.listen_addr(), nobody, DISTANT).await;
        assert!(distant.starts_with("HTTP/1.1 410"), "{distant}");
        let local = ask_proxy_from(Ipv4Addr::LOCALHOST, test_network.listen_addr(), nobody, "127.0.0.1:22").await;
        assert!(local.starts_with("HTTP/1.1 410"), "a test network passes it on: {local}");
        for node in [ultrapeer, test_network] {
            node.shutdown().await;
        }
    });
}

#[test]
fn attack_one_address_hammering_the_push_proxy_endpoint_is_refused_and_others_still_served() {
    task::block_on(async {
        let ultrapeer = common::start_with(&[], None, |c| c.mode = Mode::Ultrapeer).await;
        let nobody = Guid([3; 16]);
        let hammer = Ipv4Addr::new(127, 0, 0, 2);
        let mut answers = Vec::new();
        for _ in 0..40 {
            answers.push(ask_proxy_from(hammer, ultrapeer.listen_addr(), nobody, DISTANT).await);
        }
        let passed_on = answers.iter().filter(|a| a.starts_with("HTTP/1.1 410")).count();
        let refused = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).count();
        assert_eq!(
            (passed_on, refused),
            (servent::push::MAX_PROXY_REQUESTS_PER_ADDRESS, 40 - passed_on),
            "{answers:?}"
        );
        let other = ask_proxy_from(Ipv4Addr::LOCALHOST, ultrapeer.listen_addr(), nobody, DISTANT).await;
        assert!(other.starts_with("HTTP/1.1 410"), "another requester is still served: {other}");
        assert_eq!(ultrapeer.uploads().snapshot().proxy_refused, 40 - passed_on as u64);
        ultrapeer.shutdown().await;
    });
}

#[test]
fn a_leafs_ultrapeer_is_its_push_proxy_and_passes_a_push_on_from_http() {
    task::block_on(async {
        let content = varied_bytes(100_000);
        let files = share(&[("SEBLINUX-leaf-1.0.tar", &content)]);
        let ultrapeer = common::start_with(&[], None, |c| {
            c.mode = Mode::Ultrapeer;
        })
        .await;
        // A test network (both `--dial-local`, so the leaf may connect back
        // to a loopback X-Node); the leaf listens on 127.0.0.2 but dials
        // from 127.0.0.1, so its ultrapeer's connect-back (to the link's IP)
        // misses it and it stays firewalled.
        let leaf = common::start_with(&[ultrapeer.listen_addr()], Some(files.path()), |c| {
            c.mode = Mode::Leaf;
            c.listen = "127.0.0.2:0".parse().unwrap();
        })
        .await;
        wait_indexed(&leaf, "seblinux", 1).await;
        wait_for("the leaf's table at its ultrapeer", || async {
            ultrapeer.peers().await.unwrap().iter().any(|p| p.qrp)
        })
        .await;
        let leaf_guid: Guid = leaf.status().await.unwrap().guid.parse().unwrap();
        let mut link = raw_peer(ultrapeer.listen_addr()).await;
        wait_for("the raw link", || async { ultrapeer.peers().await.unwrap().len() == 2 }).await;

        // The leaf's hit is firewalled and names its ultrapeer as push proxy.
        let mut hit = None;
        for n in 1..=50u8 {
            let query = Query {
                flags: QueryFlags::default(),
                criteria: "SEBLINUX leaf".into(),
                urns: vec![],
                ggep: Default::default(),
                original: Default::default(),
            };
            link.send(&Message { guid: Guid([n; 16]), ttl: 2, hops: 0, payload: Payload::Query(query) }).await;
            let answer = link
                .receive_until(|m| matches!(m.payload, Payload::QueryHit(_)))
                .timeout(Duration::from_millis(500))
                .await;
            if let Ok(Message { payload: Payload::QueryHit(found), .. }) = answer {
                if found.trailer.as_ref().is_some_and(|t| t.ggep.get(GgepId::from_static("PUSH")).is_some()) {
                    hit = Some(found);
                    break;
                }
            }
        }
        let hit = hit.expect("a firewalled hit listing a push proxy");
        assert_eq!(hit.servent_guid, leaf_guid);
        assert_eq!(hit.trailer.as_ref().unwrap().flags.push, Some(true));
        let SocketAddr::V4(proxy) = ultrapeer.listen_addr() else { unreachable!() };
        let mut entry = proxy.ip().octets().to_vec();
        entry.extend_from_slice(&proxy.port().to_le_bytes());
        assert_eq!(hit.trailer.as_ref().unwrap().ggep.get(GgepId::from_static("PUSH")), Some(&entry[..]));

        // A downloader asks the proxy over HTTP; the leaf connects back with GIV.
        let downloader = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let back = downloader.local_addr().unwrap();
        let ask = |server_id: String| async move {
            let stream = TcpStream::connect(proxy).await.unwrap();
            let request = format!(
                "GET /gnutella/push-proxy?ServerId={server_id} HTTP/1.1\r\nX-Node: {back}\r\nConnection: close\r\n\r\n"
            );
            (&stream).write_all(request.as_bytes()).await.unwrap();
            head(&mut BufReader::new(stream)).await[0].clone()
        };
        assert!(ask(servent::push::server_id(Guid([1; 16]))).await.starts_with("HTTP/1.1 410"), "no such leaf");
        assert!(ask("NOTBASE32".into()).await.starts_with("HTTP/1.1 400"));
        assert!(ask(servent::push::server_id(leaf_guid)).await.starts_with("HTTP/1.1 202"));
        let (stream, _) = downloader.accept().timeout(PATIENCE).await.expect("the leaf connects back").unwrap();
        let mut reader = BufReader::new(stream.clone());
        assert!(line(&mut reader).await.starts_with(&format!("GIV 0:{leaf_guid}/")));
        assert_eq!(line(&mut reader).await, "");
        let sha1 = hit.results[0].urns[0];
        let request = format!("GET /uri-res/N2R?{sha1} HTTP/1.1\r\nConnection: close\r\n\r\n");
        (&stream).write_all(request.as_bytes()).await.unwrap();
        assert!(head(&mut reader).await[0].starts_with("HTTP/1.1 200"));
        let mut body = Vec::new();
        reader.read_to_end(&mut body).timeout(PATIENCE).await.expect("the body").unwrap();
        assert!(body == content);
        for node in [leaf, ultrapeer] {
            node.shutdown().await;
        }
    });
}

/// A servent (`--dial-local` or not), reachable on loopback, downloads from
/// a source whose every answer names 16 firewalled servents with 4 push
/// proxies each (`X-Falt`), all on this machine; when it asked any of the 64
/// proxies (each closes at once), once it has tried half of those servents
/// (32 proxies named, four times one address's budget): half a minute in,
/// the GIVs it waited for the first eight, well before the budget refills.
async fn proxies_asked_for_a_hostile_x_falt(dial_local: bool) -> Vec<Instant> {
    let mut proxies = Vec::new();
    for _ in 0..64 {
        proxies.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let entries: Vec<String> = proxies
        .chunks(4)
        .enumerate()
        .map(|(n, four)| {
            let addrs: Vec<String> = four.iter().map(|p| p.local_addr().unwrap().to_string()).collect();
            format!("{};{}", Guid([0x40 + n as u8; 16]), addrs.join(";"))
        })
        .collect();
    let x_falt = entries.join(", ");
    let source = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(source_addr) = source.local_addr().unwrap() else { unreachable!() };
    let answering = task::spawn(async move {
        loop {
            let Ok((stream, _)) = source.accept().await else { return };
            let answer =
                format!("HTTP/1.1 503 Busy\r\nRetry-After: 600\r\nContent-Length: 0\r\nX-Falt: {x_falt}\r\n\r\n");
            task::spawn(async move {
                let _ = head(&mut BufReader::new(stream.clone())).await;
                let _ = (&stream).write_all(answer.as_bytes()).await;
            });
        }
    });
    let data = tempfile::tempdir().unwrap();
    let node = common::start_with(&[], None, |c| {
        c.dial_local = dial_local;
        c.data_dir = Some(data.path().to_path_buf());
    })
    .await;
    // A servent connecting to it makes it reachable: firewalled sources are of use to it.
    let _link = raw_peer(node.listen_addr()).await;
    wait_for("reachable", || async { !node.status().await.unwrap().firewalled }).await;
    let request = DownloadRequest {
        urns: vec![Urn::Sha1([0x33; 20])],
        name: "SEBLINUX-falt-attack-1.0.tar".into(),
        size: 1_000_000,
        sources: vec![source_addr],
        signature: None,
        keep: Keep::NotFake,
    };
    let asked = Arc::new(Mutex::new(Vec::new()));
    let listening: Vec<_> = proxies
        .into_iter()
        .map(|proxy| {
            let asked = asked.clone();
            task::spawn(async move {
                while proxy.accept().await.is_ok() {
                    asked.lock().unwrap().push(Instant::now());
                }
            })
        })
        .collect();
    let id = node.downloads().unwrap().start(request).await.unwrap();
    let named: Vec<SocketAddrV4> = (0..16).map(|n| push_only_key(Guid([0x40 + n; 16]))).collect();
    wait_for("half the firewalled sources named tried", || async {
        let sources = node.downloads().unwrap().get(id).await.unwrap().sources;
        let tried = |key: &&SocketAddrV4| sources.iter().any(|s| s.addr == **key && (s.errors > 0 || s.note.is_some()));
        named.iter().filter(tried).count() >= named.len() / 2
    })
    .await;
    node.shutdown().await;
    answering.cancel().await;
    for proxy in listening {
        proxy.cancel().await;
    }
    let asked = asked.lock().unwrap().clone();
    asked
}

/// The most of `times` that fall within half a minute: a budget's refill
/// comes a minute after what it refills, which no such window holds both of
/// (a minute's window may, by the few milliseconds between the servent's
/// clock and the proxies' accepts).
fn most_in_half_a_minute(times: &[Instant]) -> usize {
    let within =
        |start: &Instant| times.iter().filter(|t| **t >= *start && **t - *start < Duration::from_secs(30)).count();
    times.iter().map(within).max().unwrap_or(0)
}

#[test]
fn attack_an_answer_naming_64_local_push_proxies_gets_none_asked_and_a_test_network_only_a_budget() {
    task::block_on(async {
        assert!(proxies_asked_for_a_hostile_x_falt(false).await.is_empty(), "local addresses are never dialled");
        // The budget is a minute's: however long the run, no half minute holds more.
        let asked = most_in_half_a_minute(&proxies_asked_for_a_hostile_x_falt(true).await);
        assert_eq!(asked, servent::push::MAX_PROXY_ASKS_PER_ADDRESS, "all on 127.0.0.1: one address's budget a minute");
    });
}

#[test]
fn listening_on_ipv6_any_an_ipv4_peer_is_read_as_the_ipv4_address_it_is() {
    task::block_on(async {
        let node = common::start_with(&[], None, |c| {
            c.listen = "[::]:0".parse().unwrap();
            c.dial_local = false;
        })
        .await;
        let at = SocketAddr::from((Ipv4Addr::LOCALHOST, node.listen_addr().port()));
        // A connect-back greeting from our own machine (::ffff:127.0.0.1 on
        // this socket) proves nothing about the outside.
        let greeting = TcpStream::connect(at).await.unwrap();
        (&greeting).write_all(b"\n\n").await.unwrap();
        let mut rest = Vec::new();
        greeting.clone().read_to_end(&mut rest).timeout(PATIENCE).await.expect("closed after the greeting").unwrap();
        assert!(node.status().await.unwrap().firewalled, "a greeting from loopback made us reachable");
        // A link from 127.0.0.1 is listed as IPv4, and our address is learned from our end of it.
        let _link = raw_peer(at).await;
        wait_for("the link", || async { node.peers().await.unwrap().len() == 1 }).await;
        let peer = node.peers().await.unwrap().remove(0);
        assert_eq!(peer.addr.ip(), Ipv4Addr::LOCALHOST, "{peer:?}");
        let SocketAddr::V4(expected) = at else { unreachable!() };
        assert_eq!(node.status().await.unwrap().advertised, expected);
        // Its UDP port on [::] answers an IPv4 ping too.
        let socket = async_std::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ping = servent_core::node::udp::host_cache_ping(Guid([7; 16]), servent::handshake::Role::Leaf);
        socket.send_to(&ping.encode(), at).await.unwrap();
        let mut buffer = vec![0; 65_536];
        let (len, from) = socket.recv_from(&mut buffer).timeout(PATIENCE).await.expect("a pong over UDP").unwrap();
        assert_eq!(from, at);
        let pong = servent::wire::decode(&buffer[..len]).unwrap();
        assert!(pong.guid == ping.guid && matches!(pong.payload, Payload::Pong(_)), "{pong:?}");
        node.shutdown().await;
    });
}
