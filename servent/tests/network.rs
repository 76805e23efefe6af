//! Real servents on 127.0.0.1 with ephemeral ports, talking Gnutella 0.6
//! over real TCP connections.

mod common;

use std::time::Duration;

use async_std::task;
use common::{raw_peer, share, start, wait_for, RawPeer};
use servent::node::NodeHandle;
use servent::routing::Drop;
use servent::searches::SearchResult;
use servent::wire::{Guid, Message, Payload, Ping, Query, QueryFlags};

#[test]
fn chain_of_three_finds_a_file_two_hops_away() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice()), ("notes.txt", b"other")]);
        let b = start(&[], None).await;
        let c = start(&[b.listen_addr()], Some(files.path())).await;
        let a = start(&[b.listen_addr()], None).await;
        wait_for("b to have two peers", || async { b.peers().await.unwrap().len() == 2 }).await;
        wait_for("c to index its files", || async { c.library().totals().0 == 2 }).await;

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
        wait_for("c to connect to b", || async { b.peers().await.unwrap().len() == 1 }).await;
        wait_for("c to index its files", || async { c.library().totals().0 == 1 }).await;

        let mut raw = raw_peer(b.listen_addr()).await;
        let ping = Message { guid: Guid([1; 16]), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) };
        raw.send(&ping).await;
        let pong = raw.receive_until(|m| matches!(m.payload, Payload::Pong(_)) && m.guid == ping.guid).await;
        let Payload::Pong(pong) = pong.payload else { unreachable!() };
        assert_eq!(pong.port, b.listen_addr().port());

        let query = Query { flags: QueryFlags::default(), criteria: "SEBLINUX".into(), urns: vec![], ggep: Default::default() };
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
        wait_for("b to have two peers", || async { b.peers().await.unwrap().len() == 2 }).await;
        wait_for("c to index its files", || async { c.library().totals().0 == 1 }).await;

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
        wait_for("b to have two peers", || async { b.peers().await.unwrap().len() == 2 }).await;
        wait_for("c to index its files", || async { c.library().totals().0 == 1 }).await;

        let mut flooder = raw_peer(b.listen_addr()).await;
        let mut burst = Vec::new();
        for i in 0..10_000u32 {
            let mut guid = [0xAB; 16];
            guid[..4].copy_from_slice(&i.to_le_bytes());
            let query = Query { flags: QueryFlags::default(), criteria: "nothing matches this".into(), urns: vec![], ggep: Default::default() };
            Message { guid: Guid(guid), ttl: 2, hops: 0, payload: Payload::Query(query) }.encode_into(&mut burst);
        }
        flooder.send_bytes(&burst).await;
        wait_for("b to judge the whole burst", || async {
            let totals = b.status().await.unwrap().totals;
            totals.received >= 10_000
        })
        .await;
        let totals = b.status().await.unwrap().totals;
        assert!(totals.dropped[&Drop::RateLimited] >= 9_000, "{totals:?}");

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
        http.send_bytes(b"GET /uri-res/N2R?urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(http.read_to_end().await.starts_with(b"HTTP/1.1 404 Not Found\r\n"));

        let mut post = RawPeer::connect(b.listen_addr()).await;
        post.send_bytes(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").await;
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
        wait_for("b to have two peers", || async { b.peers().await.unwrap().len() == 2 }).await;
        wait_for("c to index its files", || async { c.library().totals().0 == 1 }).await;
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
