//! Admission under a burst of handshakes, over real TCP from many loopback
//! addresses: a connection counts against the limits from its acceptance,
//! so handshakes started together cannot pass `--max-peers` or the
//! one-link-per-address rule, and honest servents still join and search;
//! and attackers holding every slot cannot keep out a peer the user asks for.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use async_std::net::TcpStream;
use common::{share, start_with, wait_connected, wait_for, wait_indexed, RawPeer, PATIENCE};
use servent::config::Mode;
use servent::handshake::Role;
use servent::node::NodeHandle;
use servent::wire::{Guid, Message, Payload, Ping};
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
    for (_, attacker) in &mut attackers {
        attacker.send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: Burst/1.0\r\nX-Ultrapeer: True\r\n\r\n").await;
    }
    let mut welcomed = Vec::new();
    for (from, mut attacker) in attackers {
        if attacker.read_headers().await.starts_with("GNUTELLA/0.6 200") {
            attacker.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
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
    let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
    let sharer = leaf(&[victim.listen_addr()], Some(files.path())).await;
    let searcher = leaf(&[victim.listen_addr()], None).await;
    wait_connected(&victim, &sharer).await;
    wait_connected(&victim, &searcher).await;
    wait_connected(&searcher, &victim).await;
    wait_indexed(&sharer, "seblinux", 1).await;
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
    // The table in force may still be the one sent before the file was
    // indexed: search again until the update has reached the victim.
    let mut found = false;
    for _ in 0..30 {
        let id = searcher.search("seblinux base", 7).await.unwrap();
        for _ in 0..100 {
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
