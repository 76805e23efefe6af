//! Admission under a burst of handshakes, over real TCP from many loopback
//! addresses: a connection counts against the limits from its acceptance,
//! so handshakes started together cannot pass `--max-peers` or the
//! one-link-per-address rule, and honest servents still join and search;
//! attackers holding every slot cannot keep out a peer the user asks for;
//! stalled handshakes, however many addresses keep them up, give way to an
//! honest one; and one address cannot hold the connections waiting for
//! their first line.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::ReadExt;
use async_std::net::TcpStream;
use async_std::task;
use common::{share, start_with, wait_connected, wait_for, wait_indexed, RawPeer, PATIENCE};
use futures::AsyncWriteExt;
use servent::config::Mode;
use servent::handshake::Role;
use servent::node::NodeHandle;
use servent::wire::{Guid, Message, Payload, Ping};
use servent_core::node::{INCOMING_HANDSHAKE_TIMEOUT, MAX_UNCLASSIFIED_PER_ADDRESS};
use socket2::{Domain, SockAddr, Socket, Type};

const MAX_PEERS: usize = 16;
/// Handshakes started at once.
const ATTACKERS: usize = 200;
/// Addresses they come from, more than the victim has ultrapeer slots.
const ADDRESSES: usize = 40;

/// A connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> RawPeer {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(from), 0))).unwrap();
    socket.connect(&SockAddr::from(to)).unwrap();
    RawPeer::from_stream(TcpStream::from(std::net::TcpStream::from(socket)))
}

async fn leaf(peers: &[SocketAddr], share: Option<&std::path::Path>) -> NodeHandle {
    start_with(peers, share, |config| config.mode = Mode::Leaf).await
}

#[async_std::test]
async fn burst_of_handshakes_is_held_to_max_peers_and_one_link_per_address() {
    let victim = start_with(&[], None, |config| {
        config.mode = Mode::Ultrapeer;
        config.max_peers = MAX_PEERS;
    })
    .await;
    let started = std::time::Instant::now();

    // Every connection is open and has sent its whole request before the
    // first answer is read: all 200 handshakes are under way at once.
    let mut attackers: Vec<(Ipv4Addr, RawPeer)> = (0..ATTACKERS)
        .map(|i| {
            let from = Ipv4Addr::new(127, 0, 1, 1 + (i % ADDRESSES) as u8);
            (from, connect_from(from, victim.listen_addr()))
        })
        .collect();
    // Five connections from one address wait for their first line at once:
    // the victim may drop the oldest before it speaks.
    for (_, attacker) in &mut attackers {
        attacker.try_send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: Burst/1.0\r\nX-Ultrapeer: True\r\n\r\n").await;
    }
    let mut welcomed = Vec::new();
    for (from, mut attacker) in attackers {
        if attacker.try_read_headers().await.is_some_and(|head| head.starts_with("GNUTELLA/0.6 200"))
            && attacker.try_send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await
        {
            welcomed.push((from, attacker));
        }
    }
    // A link is a peer if its Ping is answered: the victim learns of a link
    // before any of its descriptors, and forgets one it refuses.
    let mut peers: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut held = Vec::new();
    for (from, mut attacker) in welcomed {
        attacker
            .send(&Message { guid: Guid::random(), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) })
            .await;
        loop {
            match attacker.try_receive().await.map(|m| m.payload) {
                Some(Payload::Pong(_)) => {
                    *peers.entry(from).or_default() += 1;
                    held.push(attacker);
                    break;
                }
                Some(Payload::Bye(_)) | None => break,
                Some(_) => {}
            }
        }
    }
    assert!(held.len() <= MAX_PEERS, "{} of {ATTACKERS} handshakes became peers", held.len());
    assert!(peers.values().all(|&links| links == 1), "two links from one address: {peers:?}");
    let ultrapeers = victim.peers().await.unwrap().iter().filter(|p| p.role == Role::Ultrapeer).count();
    assert!(ultrapeers <= MAX_PEERS, "{ultrapeers} ultrapeer links");

    // With the attackers' links held, honest servents still join (in the
    // leaf slots the attack did not take) and a search goes through.
    // The sharer joins once its file is indexed.
    let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
    let sharer = leaf(&[], Some(files.path())).await;
    wait_indexed(&sharer, "seblinux", 1).await;
    let std::net::SocketAddr::V4(victim_addr) = victim.listen_addr() else { unreachable!("listens on 127.0.0.1") };
    sharer.connect(victim_addr).await.unwrap();
    let searcher = leaf(&[victim.listen_addr()], None).await;
    wait_connected(&victim, &sharer).await;
    wait_connected(&victim, &searcher).await;
    wait_connected(&searcher, &victim).await;
    let sharer_addr = sharer.listen_addr().to_string();
    wait_for("the sharer's QRP table to be in force", || async {
        victim
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.qrp && p.listen.map(|l| l.to_string()) == Some(sharer_addr.clone()))
    })
    .await;
    // The table in force may still be one sent before the file was in it:
    // search again until its update has reached the victim, each time with
    // other words (a leaf's repeated query is dropped as a re-query).
    let mut found = false;
    for words in ["seblinux base", "base", "seblinux", "base tar", "seblinux tar", "seblinux base tar"] {
        let id = searcher.search(words, 7).await.unwrap();
        for _ in 0..150 {
            found = !searcher.search_results(id).await.unwrap().unwrap().results.is_empty();
            if found {
                break;
            }
            async_std::task::sleep(std::time::Duration::from_millis(20)).await;
        }
        if found {
            break;
        }
    }
    assert!(found, "the honest search found nothing");
    assert!(victim.peers().await.unwrap().len() <= held.len() + 2);
    assert!(started.elapsed() < PATIENCE, "took {:?}", started.elapsed());
    drop(held);
    for node in [searcher, sharer, victim] {
        node.shutdown().await;
    }
}

#[async_std::test]
async fn attackers_holding_every_slot_cannot_keep_out_the_users_peer() {
    const SLOTS: usize = 4;
    let victim = start_with(&[], None, |config| {
        config.mode = Mode::Ultrapeer;
        config.max_peers = SLOTS;
        config.max_leaves = 0;
    })
    .await;
    let mut attackers = Vec::new();
    for n in 0..SLOTS {
        let mut attacker = connect_from(Ipv4Addr::new(127, 0, 2 + n as u8, 1), victim.listen_addr());
        attacker.send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: Eclipse/1.0\r\nX-Ultrapeer: True\r\n\r\n").await;
        assert!(attacker.read_headers().await.starts_with("GNUTELLA/0.6 200"));
        attacker.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
        attackers.push(attacker);
    }
    wait_for("the attackers to hold every slot", || async { victim.peers().await.unwrap().len() == SLOTS }).await;

    let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
    let honest = start_with(&[], Some(files.path()), |_| {}).await;
    wait_indexed(&honest, "seblinux", 1).await;
    let SocketAddr::V4(honest_addr) = honest.listen_addr() else { unreachable!() };
    victim.connect(honest_addr).await.unwrap();
    wait_connected(&victim, &honest).await;
    wait_connected(&honest, &victim).await;
    assert_eq!(victim.peers().await.unwrap().len(), SLOTS);

    let id = victim.search("seblinux base", 7).await.unwrap();
    wait_for("the search through the user's peer", || async {
        !victim.search_results(id).await.unwrap().unwrap().results.is_empty()
    })
    .await;
    drop(attackers);
    for node in [honest, victim] {
        node.shutdown().await;
    }
}

/// Keeps a stalled handshake up from `from` until `stop`: its first line
/// and nothing more, opened again as soon as the victim closes it.
async fn stall_from(from: Ipv4Addr, to: SocketAddr, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(from), 0))).unwrap();
        if socket.connect(&SockAddr::from(to)).is_err() {
            return;
        }
        let mut stream = TcpStream::from(std::net::TcpStream::from(socket));
        if stream.write_all(b"GNUTELLA CONNECT/0.6\r\n").await.is_err() {
            continue;
        }
        let mut chunk = [0u8; 512];
        loop {
            match async_std::io::timeout(Duration::from_millis(50), stream.read(&mut chunk)).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        // A refused attacker comes back at once, faster than anyone honest.
        task::sleep(Duration::from_millis(10)).await;
    }
}

/// One handshake from `from`, as an ultrapeer: the link when welcomed.
async fn try_handshake(from: Ipv4Addr, to: SocketAddr) -> Option<RawPeer> {
    let mut peer = connect_from(from, to);
    peer.send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: Honest/1.0\r\nX-Ultrapeer: True\r\n\r\n").await;
    if !peer.read_headers().await.starts_with("GNUTELLA/0.6 200") {
        return None;
    }
    peer.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
    Some(peer)
}

#[async_std::test]
async fn stalled_handshakes_from_many_addresses_give_way_to_an_honest_one() {
    const SLOTS: usize = 8;
    let victim = start_with(&[], None, |config| {
        config.mode = Mode::Ultrapeer;
        config.max_peers = SLOTS;
        config.max_leaves = 0;
    })
    .await;
    // More stalling addresses than slots, each coming back as soon as it
    // is dropped or refused: every slot is always held by a handshake.
    let stop = Arc::new(AtomicBool::new(false));
    let stallers: Vec<_> = (0..SLOTS + 4)
        .map(|n| task::spawn(stall_from(Ipv4Addr::new(127, 0, 3, 1 + n as u8), victim.listen_addr(), stop.clone())))
        .collect();
    wait_for("the stalled handshakes to hold every slot", || async {
        try_handshake(Ipv4Addr::new(127, 0, 4, 1), victim.listen_addr()).await.is_none()
    })
    .await;

    // An honest servent retries as a refused servent does; it gets in well
    // before the attackers' handshakes would time out, again and again.
    let started = Instant::now();
    let mut refused = 0;
    let mut honest = loop {
        if let Some(link) = try_handshake(Ipv4Addr::new(127, 0, 5, 1), victim.listen_addr()).await {
            break link;
        }
        refused += 1;
        assert!(
            started.elapsed() < 3 * INCOMING_HANDSHAKE_TIMEOUT,
            "refused {refused} times in {:?} under the attack",
            started.elapsed()
        );
        task::sleep(Duration::from_millis(250)).await;
    };
    honest.send(&Message { guid: Guid::random(), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) }).await;
    honest.receive_until(|m| matches!(m.payload, Payload::Pong(_))).await;
    let peers = victim.peers().await.unwrap();
    assert_eq!(peers.len(), 1, "only the honest link: {peers:?}");

    stop.store(true, Ordering::Relaxed);
    for staller in stallers {
        staller.await;
    }
    victim.shutdown().await;
}

#[async_std::test]
async fn one_address_cannot_hold_the_connections_waiting_for_a_first_line() {
    let victim = start_with(&[], None, |_| {}).await;
    // Someone else's connection, open before the flood and silent so far.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 6, 2), victim.listen_addr());
    let flooder = Ipv4Addr::new(127, 0, 6, 1);
    let mut silent: Vec<RawPeer> =
        (0..3 * MAX_UNCLASSIFIED_PER_ADDRESS).map(|_| connect_from(flooder, victim.listen_addr())).collect();
    // The flooder's oldest connections are dropped at once, not at their
    // timeout: the other address's connection, older than all of them, is
    // still waiting and is served when it speaks.
    let started = Instant::now();
    for peer in &mut silent[..2 * MAX_UNCLASSIFIED_PER_ADDRESS] {
        peer.expect_closed().await;
    }
    assert!(started.elapsed() < INCOMING_HANDSHAKE_TIMEOUT, "closed only at their timeout");
    other.send_bytes(b"GET /get/1/none HTTP/1.1\r\nHost: victim\r\n\r\n").await;
    assert!(other.read_headers().await.starts_with("HTTP/1.1 "));
    // So are the flooder's newest.
    for peer in &mut silent[2 * MAX_UNCLASSIFIED_PER_ADDRESS..] {
        peer.send_bytes(b"GET /get/1/none HTTP/1.1\r\nHost: victim\r\n\r\n").await;
        assert!(peer.read_headers().await.starts_with("HTTP/1.1 "));
    }
    victim.shutdown().await;
}
