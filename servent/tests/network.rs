//! Real servents on 127.0.0.1 with ephemeral ports, talking Gnutella 0.6
//! over real TCP connections.

mod common;

use std::time::Duration;

use async_std::task;
use common::{raw_peer, share, start, start_with, wait_connected, wait_for, wait_indexed, RawPeer};
use servent::node::NodeHandle;
use servent::routing::Drop;
use servent::searches::SearchResult;
use servent::wire::{Guid, Message, Payload, Ping, Query, QueryFlags};
use servent_core::node::{JUNK_MIN_MESSAGES, JUNK_PERCENT};

#[test]
fn chain_of_three_finds_a_file_two_hops_away() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice()), ("notes.txt", b"other")]);
        let b = start(&[], None).await;
        let c = start(&[b.listen_addr()], Some(files.path())).await;
        let a = start(&[b.listen_addr()], None).await;
        wait_connected(&b, &a).await;
        wait_connected(&b, &c).await;
        wait_indexed(&c, "seblinux", 1).await;

        let id = a.search("seblinux base", 7).await.unwrap();
        let results = wait_for_results(&a, id, 1).await;
        assert_eq!(results.len(), 1, "one result per content: {results:?}");
        let result = &results[0];
        assert_eq!(result.name, "SEBLINUX-base-1.0.tar");
        assert_eq!(result.size, 11);
        assert_eq!(result.sha1.unwrap().to_string(), "urn:sha1:H6NOMJMVHXK34TM3QVUNVQP2UZ6M5GQX");
        assert!(result.sha256.unwrap().to_string().starts_with("urn:sha256:"));
        assert_eq!(result.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>(), vec![c.listen_addr().to_string()]);

        let id = a.search("nosuchword", 7).await.unwrap();
        task::sleep(Duration::from_millis(300)).await;
        assert!(a.search_results(id).await.unwrap().unwrap().results.is_empty());

        for node in [a, b, c] {
            node.shutdown().await;
        }
    });
}

async fn wait_for_results(node: &NodeHandle, id: Guid, count: usize) -> Vec<SearchResult> {
    let snapshot = || async { node.search_results(id).await.unwrap().unwrap().results };
    wait_for("search results", || async { snapshot().await.len() >= count }).await;
    snapshot().await
}

#[test]
fn raw_connection_gets_a_pong_and_a_query_hit_routed_back() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let b = start(&[], None).await;
        let c = start(&[b.listen_addr()], Some(files.path())).await;
        wait_connected(&b, &c).await;
        wait_indexed(&c, "seblinux", 1).await;

        let mut raw = raw_peer(b.listen_addr()).await;
        let ping = Message { guid: Guid([1; 16]), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) };
        raw.send(&ping).await;
        let pong = raw.receive_until(|m| matches!(m.payload, Payload::Pong(_)) && m.guid == ping.guid).await;
        let Payload::Pong(pong) = pong.payload else { unreachable!() };
        assert_eq!(pong.port, b.listen_addr().port());

        let query = Query {
            flags: QueryFlags::default(),
            criteria: "SEBLINUX".into(),
            urns: vec![],
            ggep: Default::default(),
            original: Default::default(),
        };
        let query = Message { guid: Guid([2; 16]), ttl: 3, hops: 0, payload: Payload::Query(query) };
        raw.send(&query).await;
        let hit = raw.receive_until(|m| matches!(m.payload, Payload::QueryHit(_)) && m.guid == query.guid).await;
        let Payload::QueryHit(hit) = hit.payload else { unreachable!() };
        assert_eq!(hit.port, c.listen_addr().port());
        assert_eq!(hit.results[0].name, "SEBLINUX-base-1.0.tar");
        assert_eq!(hit.trailer.unwrap().vendor, *b"SEBL");

        for node in [b, c] {
            node.shutdown().await;
        }
    });
}

#[test]
fn peer_sending_a_malformed_descriptor_is_dropped_while_searches_go_on() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let b = start(&[], None).await;
        let c = start(&[b.listen_addr()], Some(files.path())).await;
        let a = start(&[b.listen_addr()], None).await;
        wait_connected(&b, &a).await;
        wait_connected(&b, &c).await;
        wait_indexed(&c, "seblinux", 1).await;

        // A header announcing a payload far over the limit.
        let mut bad = raw_peer(b.listen_addr()).await;
        let mut header = vec![7u8; 16];
        header.extend_from_slice(&[0x80, 3, 0]);
        header.extend_from_slice(&(1u32 << 20).to_le_bytes());
        bad.send_bytes(&header).await;
        bad.expect_closed().await;

        // A Pong too short to be one.
        let mut short = raw_peer(b.listen_addr()).await;
        let mut pong = vec![8u8; 16];
        pong.extend_from_slice(&[0x01, 1, 0, 3, 0, 0, 0, 1, 2, 3]);
        short.send_bytes(&pong).await;
        short.expect_closed().await;

        let status = b.status().await.unwrap();
        assert_eq!(status.totals.dropped[&Drop::Malformed], 2);
        let id = a.search("SEBLINUX", 7).await.unwrap();
        assert_eq!(wait_for_results(&a, id, 1).await[0].name, "SEBLINUX-base-1.0.tar");

        for node in [a, b, c] {
            node.shutdown().await;
        }
    });
}

#[test]
fn garbage_and_endless_handshakes_are_cut_off() {
    task::block_on(async {
        let b = start(&[], None).await;
        let mut binary = RawPeer::connect(b.listen_addr()).await;
        binary.send_bytes(&[0u8, 0xFF, 0x13, 0x37, b'\n']).await;
        binary.expect_closed().await;

        let mut endless = RawPeer::connect(b.listen_addr()).await;
        endless.send_bytes(b"GNUTELLA CONNECT/0.6\r\n").await;
        for i in 0..10_000 {
            if !endless.try_send_bytes(format!("X-Header-{i}: yes\r\n").as_bytes()).await {
                break;
            }
        }
        endless.expect_closed().await;

        let mut long_line = RawPeer::connect(b.listen_addr()).await;
        let _ = long_line.try_send_bytes(&vec![b'G'; 100_000]).await;
        long_line.expect_closed().await;

        // Still serving.
        let raw = raw_peer(b.listen_addr()).await;
        drop(raw);
        b.shutdown().await;
    });
}

#[test]
fn burst_of_ten_thousand_queries_is_rate_limited_and_others_are_still_served() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let b = start(&[], None).await;
        let c = start(&[b.listen_addr()], Some(files.path())).await;
        let a = start(&[b.listen_addr()], None).await;
        wait_connected(&b, &a).await;
        wait_connected(&b, &c).await;
        wait_indexed(&c, "seblinux", 1).await;

        let mut flooder = raw_peer(b.listen_addr()).await;
        let mut burst = Vec::new();
        for i in 0..10_000u32 {
            let mut guid = [0xAB; 16];
            guid[..4].copy_from_slice(&i.to_le_bytes());
            let query = Query {
                flags: QueryFlags::default(),
                criteria: "nothing matches this".into(),
                urns: vec![],
                ggep: Default::default(),
                original: Default::default(),
            };
            Message { guid: Guid(guid), ttl: 2, hops: 0, payload: Payload::Query(query) }.encode_into(&mut burst);
        }
        let _ = flooder.try_send_bytes(&burst).await;
        // Past its allowance the flood is all junk, and the flooder is dropped.
        flooder.expect_closed().await;
        let totals = b.status().await.unwrap().totals;
        let limited = totals.dropped[&Drop::RateLimited];
        assert!(limited * 100 >= JUNK_MIN_MESSAGES * JUNK_PERCENT, "{totals:?}");
        assert!(totals.accepted <= limited, "{totals:?}");

        let id = a.search("SEBLINUX", 7).await.unwrap();
        assert_eq!(wait_for_results(&a, id, 1).await[0].name, "SEBLINUX-base-1.0.tar");
        for node in [a, b, c] {
            node.shutdown().await;
        }
    });
}

#[test]
fn http_on_the_gnutella_port_is_answered() {
    task::block_on(async {
        let b = start(&[], None).await;
        let mut http = RawPeer::connect(b.listen_addr()).await;
        http.send_bytes(
            b"GET /uri-res/N2R?urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(http.read_to_end().await.starts_with(b"HTTP/1.1 404 Not Found\r\n"));

        let mut post = RawPeer::connect(b.listen_addr()).await;
        post.send_bytes(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(post.read_to_end().await.starts_with(b"HTTP/1.1 501 Not Implemented\r\n"));
        b.shutdown().await;
    });
}

#[test]
fn compressed_and_plain_links_both_carry_searches() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let b = start(&[], None).await;
        let c = common::start_with(&[b.listen_addr()], Some(files.path()), |config| config.deflate = false).await;
        let a = start(&[b.listen_addr()], None).await;
        wait_connected(&b, &a).await;
        wait_connected(&b, &c).await;
        wait_indexed(&c, "seblinux", 1).await;
        let peers = b.peers().await.unwrap();
        let mut compression: Vec<(bool, bool)> = peers.iter().map(|p| p.compressed).collect();
        compression.sort();
        assert_eq!(compression, vec![(false, false), (true, true)]);

        let id = a.search("SEBLINUX", 7).await.unwrap();
        assert_eq!(wait_for_results(&a, id, 1).await[0].name, "SEBLINUX-base-1.0.tar");
        for node in [a, b, c] {
            node.shutdown().await;
        }
    });
}

#[test]
fn unknown_descriptor_type_is_dropped_and_counted_but_the_peer_stays() {
    task::block_on(async {
        let b = start(&[], None).await;
        let mut raw = raw_peer(b.listen_addr()).await;
        let mut unknown = vec![9u8; 16];
        unknown.extend_from_slice(&[0x99, 1, 0, 2, 0, 0, 0, 0xAA, 0xBB]);
        raw.send_bytes(&unknown).await;
        let ping = Message { guid: Guid([1; 16]), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) };
        raw.send(&ping).await;
        raw.receive_until(|m| matches!(m.payload, Payload::Pong(_)) && m.guid == ping.guid).await;
        let totals = b.status().await.unwrap().totals;
        assert_eq!(totals.dropped[&Drop::Unsupported], 1);
        let peers = b.peers().await.unwrap();
        assert!(peers.iter().any(|p| p.user_agent.as_deref() == Some("RawTest/1.0")), "{peers:?}");
        b.shutdown().await;
    });
}

#[test]
fn shutdown_says_bye_to_every_peer() {
    task::block_on(async {
        let b = start(&[], None).await;
        let mut raw = raw_peer(b.listen_addr()).await;
        wait_for("b to register the peer", || async { !b.peers().await.unwrap().is_empty() }).await;
        b.shutdown().await;
        let bye = raw.receive_until(|m| matches!(m.payload, Payload::Bye(_))).await;
        let Payload::Bye(bye) = bye.payload else { unreachable!() };
        assert_eq!(bye.code, 200);
        raw.expect_closed().await;
    });
}

#[test]
fn full_servent_refuses_with_x_try_ultrapeers_and_the_dialer_goes_there() {
    task::block_on(async {
        let a = start(&[], None).await;
        let b = common::start_with(&[a.listen_addr()], None, |config| config.max_peers = 1).await;
        wait_connected(&a, &b).await;
        // c knows only b, which is full and points it to a.
        let c = common::start_with(&[b.listen_addr()], None, |config| {
            config.discover = true;
        })
        .await;
        wait_connected(&a, &c).await;
        assert_eq!(b.peers().await.unwrap().len(), 1);
        for node in [a, b, c] {
            node.shutdown().await;
        }
    });
}

#[test]
fn servent_with_no_peers_bootstraps_from_a_gwebcache() {
    task::block_on(async {
        let a = start(&[], None).await;
        // A GWebCache answering in version 2 syntax with a's address.
        let cache = async_std::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/gwc.php", cache.local_addr().unwrap());
        let answer = format!("I|pong|TestCache 1.0\nH|{}|10\n", a.listen_addr());
        let server = task::spawn(async move {
            use async_std::io::{ReadExt, WriteExt};
            let (mut stream, _) = cache.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let n = stream.read(&mut request).await.unwrap();
            let response = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len());
            stream.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let b = common::start_with(&[], None, |config| {
            config.discover = true;
            config.gwebcaches = vec![url];
        })
        .await;
        let request = server.await;
        assert!(request.starts_with("GET /gwc.php?get=1&hostfile=1&net=gnutella&client=SEBL"), "{request}");
        wait_connected(&a, &b).await;
        for node in [a, b] {
            node.shutdown().await;
        }
    });
}

#[test]
fn host_cache_survives_a_restart() {
    task::block_on(async {
        let a = start(&[], None).await;
        let data = tempfile::tempdir().unwrap();
        let with_data = |config: &mut servent::config::Config| {
            config.data_dir = Some(data.path().to_path_buf());
            config.discover = true;
        };
        let b = common::start_with(&[a.listen_addr()], None, with_data).await;
        wait_connected(&a, &b).await;
        let b_addr = b.listen_addr();
        b.shutdown().await;
        wait_for("a to see b leave", || async {
            a.peers().await.unwrap().iter().all(|p| p.listen != Some(b_addr.to_string().parse().unwrap()))
        })
        .await;

        // It is kept as a host that worked, so it stays in the reserve.
        let saved = std::fs::read_to_string(data.path().join("hosts")).unwrap();
        assert!(saved.lines().any(|l| l == format!("{} worked", a.listen_addr())), "{saved}");

        // No --peer this time: a's address comes from the saved host cache.
        let b = common::start_with(&[], None, with_data).await;
        wait_connected(&a, &b).await;
        for node in [a, b] {
            node.shutdown().await;
        }
    });
}

#[test]
fn servent_without_a_data_dir_rescans_only_at_its_interval() {
    task::block_on(async {
        let shared = share(&[("alpha.txt", b"alpha")]);
        let node =
            start_with(&[], Some(shared.path()), |config| config.rescan_interval = Duration::from_secs(3600)).await;
        wait_indexed(&node, "alpha", 1).await;
        // A rescan without pause would share this within milliseconds; the
        // next one is an hour away.
        std::fs::write(shared.path().join("beta.txt"), b"beta").unwrap();
        task::sleep(Duration::from_secs(1)).await;
        let query = search::Query { words: "beta".into(), urns: Vec::new(), limit: 10 };
        assert!(node.library().search(&query).unwrap().is_empty());
        node.shutdown().await;
    });
}

/// A download that is fetching asks the network for sources at once, and so
/// does the same download resumed after a restart, as soon as a neighbour
/// is there to hear it.
#[test]
fn download_resumed_after_a_restart_asks_the_network_for_sources_again() {
    task::block_on(async {
        let data = tempfile::tempdir().unwrap();
        let with_data = |config: &mut servent::config::Config| config.data_dir = Some(data.path().to_path_buf());
        let urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
        // Its only source refuses every connection: the download keeps looking.
        let magnet = format!("magnet:?xt={urn}&dn=wanted.img&xl=5000&xs=http://127.0.0.1:1/uri-res/N2R?{urn}");
        let is_requery =
            |m: &Message| matches!(&m.payload, Payload::Query(q) if q.urns.iter().any(|u| u.to_string() == urn));

        let b = start_with(&[], None, with_data).await;
        let mut raw = raw_peer(b.listen_addr()).await;
        b.download(&magnet, servent::transfer::download::Keep::NotFake).await.unwrap();
        async_std::future::timeout(common::PATIENCE, raw.receive_until(is_requery)).await.expect("a re-query");
        b.shutdown().await;

        let b = start_with(&[], None, with_data).await;
        let mut raw = raw_peer(b.listen_addr()).await;
        async_std::future::timeout(common::PATIENCE, raw.receive_until(is_requery))
            .await
            .expect("a re-query after the restart");
        b.shutdown().await;
    });
}
