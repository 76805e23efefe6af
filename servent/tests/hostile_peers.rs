//! Neighbours that lie in their descriptors, over real TCP: a QueryHit
//! dropped for want of a route cannot steal another servent's Pushes, and
//! a leaf that claims hops on its own queries gets no relay's allowance,
//! a flood of Pongs neither fills the host cache nor drives dialing, and
//! neighbours sending junk or deflate bombs are cut off.

mod common;

use std::net::Ipv4Addr;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_std::net::TcpListener;
use async_std::task;
use common::{raw_peer, share, start, start_with, wait_connected, wait_for, wait_indexed, RawPeer};
use futures::StreamExt;
use servent::compression::Deflater;
use servent::hostcache::{DIALS_PER_MINUTE, LEARN_BURST, LEARN_PER_MINUTE};
use servent::routing::{Drop, QUERIES_PER_SECOND, QUERY_BURST};
use servent::wire::{Guid, Message, Payload, Ping, Pong, Push, Query, QueryFlags, QueryHit, QueryResult};

fn hit(guid: Guid, servent_guid: Guid) -> Message {
    let result = QueryResult {
        index: 1,
        size: 11,
        name: "SEBLINUX-base-1.0.tar".into(),
        urns: Vec::new(),
        ggep: Default::default(),
    };
    let hit = QueryHit {
        port: 6346,
        ip: Ipv4Addr::new(192, 0, 2, 9),
        speed: 1000,
        results: vec![result],
        trailer: None,
        servent_guid,
        original: Default::default(),
    };
    Message { guid, ttl: 3, hops: 0, payload: Payload::QueryHit(hit) }
}

/// Sends a Ping and waits for its Pong: everything sent before is judged.
async fn round_trip(peer: &mut RawPeer) {
    let ping = Message { guid: Guid::random(), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) };
    peer.send(&ping).await;
    peer.receive_until(|m| matches!(m.payload, Payload::Pong(_)) && m.guid == ping.guid).await;
}

#[async_std::test]
async fn hit_without_a_route_cannot_hijack_the_push_route() {
    let victim = start(&[], None).await;
    let mut honest = raw_peer(victim.listen_addr()).await;
    let mut hijacker = raw_peer(victim.listen_addr()).await;
    round_trip(&mut honest).await;
    round_trip(&mut hijacker).await;

    // The honest servent answers the victim's search: its GUID's route is learned.
    let servent = Guid::random();
    let search = victim.search("seblinux", 7).await.unwrap();
    let query = honest.receive_until(|m| matches!(m.payload, Payload::Query(_))).await;
    assert_eq!(query.guid, search);
    honest.send(&hit(query.guid, servent)).await;
    wait_for("the honest hit", || async { victim.search_results(search).await.unwrap().unwrap().hits_received == 1 })
        .await;

    // A hit for a query nobody routed, naming the honest servent.
    hijacker.send(&hit(Guid::random(), servent)).await;
    round_trip(&mut hijacker).await;
    assert_eq!(victim.status().await.unwrap().totals.dropped[&Drop::NoRoute], 1);

    // A Push for the honest servent still reaches it.
    let push =
        Push { servent_guid: servent, index: 1, ip: Ipv4Addr::new(192, 0, 2, 2), port: 6346, ggep: Default::default() };
    hijacker.send(&Message { guid: Guid::random(), ttl: 3, hops: 0, payload: Payload::Push(push.clone()) }).await;
    let delivered = honest.receive_until(|m| matches!(m.payload, Payload::Push(_))).await;
    assert_eq!(delivered.payload, Payload::Push(push));
    victim.shutdown().await;
}

#[async_std::test]
async fn leaf_claiming_hops_is_held_to_its_own_allowance() {
    let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
    let victim = start(&[], None).await;
    let sharer = start(&[victim.listen_addr()], Some(files.path())).await;
    let searcher = start(&[victim.listen_addr()], None).await;
    wait_connected(&victim, &sharer).await;
    wait_connected(&victim, &searcher).await;
    wait_connected(&searcher, &victim).await;
    wait_indexed(&sharer, "seblinux", 1).await;

    let mut leaf = RawPeer::connect(victim.listen_addr()).await;
    leaf.send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: Liar/1.0\r\nX-Ultrapeer: False\r\n\r\n").await;
    assert!(leaf.read_headers().await.starts_with("GNUTELLA/0.6 200"));
    leaf.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
    const FLOOD: u64 = 10_000;
    let mut burst = Vec::new();
    for i in 0..FLOOD as u32 {
        let mut guid = [0xCD; 16];
        guid[..4].copy_from_slice(&i.to_le_bytes());
        let query = Query {
            flags: QueryFlags::default(),
            criteria: "nothing matches this".into(),
            urns: vec![],
            ggep: Default::default(),
            original: Default::default(),
        };
        // Its own queries, claiming to relay them from others.
        Message { guid: Guid(guid), ttl: 3, hops: 2, payload: Payload::Query(query) }.encode_into(&mut burst);
    }
    let accepted_before = victim.status().await.unwrap().totals.accepted;
    let flooded = std::time::Instant::now();
    let _ = leaf.try_send_bytes(&burst).await;
    // Held to its own allowance, it is soon all junk, and dropped.
    leaf.expect_closed().await;
    let accepted = victim.status().await.unwrap().totals.accepted - accepted_before;
    // Its burst, and what its allowance regained while a slow run read the flood.
    let regained = flooded.elapsed().as_secs() * u64::from(QUERIES_PER_SECOND);
    assert!(accepted <= u64::from(QUERY_BURST) + 20 + regained, "{accepted} of its {FLOOD} queries taken");

    let id = searcher.search("SEBLINUX", 7).await.unwrap();
    wait_for("the honest search's result", || async {
        !searcher.search_results(id).await.unwrap().unwrap().results.is_empty()
    })
    .await;
    for node in [searcher, sharer, victim] {
        node.shutdown().await;
    }
}

#[async_std::test]
async fn pong_flood_neither_poisons_the_host_cache_nor_drives_dialing() {
    // Where the poisoned addresses lead: a port on every loopback address
    // that counts the victim's attempts.
    let trap = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let dialed = Arc::new(AtomicUsize::new(0));
    let counter = dialed.clone();
    task::spawn(async move {
        let mut incoming = trap.incoming();
        while let Some(stream) = incoming.next().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });

    let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
    let honest = start(&[], Some(files.path())).await;
    let victim = start_with(&[honest.listen_addr()], None, |config| {
        config.discover = true;
    })
    .await;
    wait_connected(&victim, &honest).await;
    wait_indexed(&honest, "seblinux", 1).await;
    let before = victim.status().await.unwrap().host_cache;

    let mut poisoner = raw_peer(victim.listen_addr()).await;
    let ping = poisoner.receive_until(|m| matches!(m.payload, Payload::Ping(_))).await;
    const FLOOD: usize = 5000;
    let mut pongs = Vec::new();
    for i in 0..FLOOD {
        let ip = Ipv4Addr::new(127, 3, (i / 250) as u8, (i % 250 + 1) as u8);
        let pong = Pong { port: trap_port, ip, files: 1000, kbytes: 1 << 20, ggep: Default::default() };
        Message { guid: ping.guid, ttl: 2, hops: 0, payload: Payload::Pong(pong) }.encode_into(&mut pongs);
    }
    let flooded = std::time::Instant::now();
    poisoner.send_bytes(&pongs).await;
    round_trip(&mut poisoner).await;
    let learned = victim.status().await.unwrap().host_cache - before;
    // Its burst, and what its allowance regained while a slow run read the flood.
    let regained = (flooded.elapsed().as_secs_f64() * f64::from(LEARN_PER_MINUTE) / 60.0) as usize;
    assert!(learned <= LEARN_BURST as usize + regained, "{learned} of {FLOOD} poisoned addresses kept");

    // The victim dials what it learned, but at its own pace.
    wait_for("the victim to dial a poisoned address", || async { dialed.load(Ordering::Relaxed) > 0 }).await;
    task::sleep(Duration::from_secs(3)).await;
    let attempts = dialed.load(Ordering::Relaxed);
    assert!(attempts <= DIALS_PER_MINUTE, "{attempts} dials in 3 s");

    // And an honest servent still joins and finds the honest peer's file.
    let searcher = start(&[victim.listen_addr()], None).await;
    wait_connected(&searcher, &victim).await;
    wait_connected(&victim, &searcher).await;
    let id = searcher.search("SEBLINUX", 7).await.unwrap();
    wait_for("the honest search's result", || async {
        !searcher.search_results(id).await.unwrap().unwrap().results.is_empty()
    })
    .await;
    for node in [searcher, victim, honest] {
        node.shutdown().await;
    }
}

/// How soon a junk sender must lose its link: an idle one goes after two minutes.
const CUT_OFF: Duration = Duration::from_secs(30);

#[async_std::test]
async fn junk_senders_and_deflate_bombs_are_cut_off_while_searches_go_on() {
    let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
    let victim = start(&[], None).await;
    let sharer = start(&[victim.listen_addr()], Some(files.path())).await;
    let searcher = start(&[victim.listen_addr()], None).await;
    wait_connected(&victim, &sharer).await;
    wait_connected(&searcher, &victim).await;
    wait_indexed(&sharer, "seblinux", 1).await;

    // Dead descriptors only: TTL 0 Pings, each with a new GUID.
    let mut junk = raw_peer(victim.listen_addr()).await;
    let mut flood = Vec::new();
    for i in 0..2000u32 {
        let mut guid = [0x70; 16];
        guid[..4].copy_from_slice(&i.to_le_bytes());
        Message { guid: Guid(guid), ttl: 0, hops: 0, payload: Payload::Ping(Ping::default()) }.encode_into(&mut flood);
    }
    let started = std::time::Instant::now();
    let _ = junk.try_send_bytes(&flood).await;
    junk.expect_closed().await;
    // Well before an idle link would be dropped.
    assert!(started.elapsed() < CUT_OFF, "the junk sender kept its link {:?}", started.elapsed());

    // 32 MiB of one Query again and again, deflated to a few kilobytes.
    let mut bomber = RawPeer::connect(victim.listen_addr()).await;
    bomber.send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: Bomb/1.0\r\nX-Ultrapeer: True\r\n\r\n").await;
    let answer = bomber.read_headers().await;
    assert!(answer.contains("Accept-Encoding: deflate"), "{answer}");
    bomber.send_bytes(b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n").await;
    let query = Query {
        flags: QueryFlags::default(),
        criteria: "bomb".into(),
        urns: vec![],
        ggep: Default::default(),
        original: Default::default(),
    };
    let one = Message { guid: Guid([0x42; 16]), ttl: 2, hops: 0, payload: Payload::Query(query) }.encode();
    let plain: Vec<u8> = one.iter().copied().cycle().take(32 << 20).collect();
    let mut bomb = Vec::new();
    Deflater::default().deflate(&plain, &mut bomb).unwrap();
    let started = std::time::Instant::now();
    let _ = bomber.try_send_bytes(&bomb).await;
    bomber.expect_closed().await;
    assert!(started.elapsed() < CUT_OFF, "the bomber kept its link {:?}", started.elapsed());

    let id = searcher.search("SEBLINUX", 7).await.unwrap();
    wait_for("the honest search's result", || async {
        !searcher.search_results(id).await.unwrap().unwrap().results.is_empty()
    })
    .await;
    for node in [searcher, sharer, victim] {
        node.shutdown().await;
    }
}
