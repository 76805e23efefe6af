//! UDP on the Gnutella port between real servents on 127.0.0.1: UDP host
//! caches, and what a spoofed or malformed datagram gets.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use async_std::net::UdpSocket;
use async_std::task;
use common::{share, start, start_with, wait_for, wait_indexed};
use servent::node::NodeHandle;
use servent::peeraddr::PeerAddr;
use servent::wire::{self, ipp, Guid, Message, Payload, Ping};
use servent_core::node::udp::{host_cache_ping, ADDRESS_BURST, ADDRESS_REFILL, ANSWER_SLACK};

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("servents listen on IPv4"),
    }
}

/// Receives datagrams until one decodes to what `wanted` accepts.
async fn receive_until(socket: &UdpSocket, wanted: impl Fn(&Message) -> bool) -> Message {
    let mut buffer = vec![0; 65_536];
    let wait = async {
        loop {
            let (len, _) = socket.recv_from(&mut buffer).await.unwrap();
            if let Ok(message) = wire::decode(&buffer[..len]) {
                if wanted(&message) {
                    return message;
                }
            }
        }
    };
    async_std::future::timeout(common::PATIENCE, wait).await.expect("an answer over UDP")
}

/// Ten servents, each linked to the first and to the one before it.
async fn network_of_ten(files: &std::path::Path) -> Vec<NodeHandle> {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..10 {
        let mut peers = Vec::new();
        if i > 0 {
            peers.push(nodes[0].listen_addr());
        }
        if i > 1 {
            peers.push(nodes[i - 1].listen_addr());
        }
        nodes.push(start(&peers, (i == 9).then_some(files)).await);
    }
    for node in &nodes {
        wait_for("the ten to link up", || async { !node.peers().await.unwrap().is_empty() }).await;
    }
    nodes
}

#[test]
fn a_servent_given_only_a_udp_host_cache_joins_a_network_of_ten_and_finds_a_file_there() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let nodes = network_of_ten(files.path()).await;
        wait_indexed(&nodes[9], "seblinux", 1).await;
        wait_for("the cache to know its neighbours", || async { nodes[0].peers().await.unwrap().len() >= 9 }).await;
        let uhc = v4(nodes[0].listen_addr());
        let newcomer = start_with(&[], None, |config| {
            config.discover = true;
            config.uhcs = vec![PeerAddr::Ip(uhc)];
        })
        .await;
        wait_for("the newcomer to link to the ten", || async { newcomer.peers().await.unwrap().len() >= 2 }).await;
        let id = newcomer.search("seblinux", 7).await.unwrap();
        wait_for("a result from the far end", || async {
            !newcomer.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        let results = newcomer.search_results(id).await.unwrap().unwrap().results;
        assert_eq!(results[0].sources[0].to_string(), nodes[9].listen_addr().to_string());
        newcomer.shutdown().await;
        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn host_names_given_as_peer_and_udp_host_cache_are_looked_up_by_the_node() {
    task::block_on(async {
        let cache = start(&[], None).await;
        let peer = start(&[], None).await;
        let named = |node: &NodeHandle| PeerAddr::Name("localhost".into(), node.listen_addr().port());
        let (cache_name, peer_name) = (named(&cache), named(&peer));
        let newcomer = start_with(&[], None, |config| {
            config.discover = true;
            config.peer_names = vec![peer_name];
            config.uhcs = vec![cache_name];
        })
        .await;
        common::wait_connected(&newcomer, &peer).await;
        // The cache's Pong, answering the newcomer's Ping, taught its address.
        common::wait_connected(&newcomer, &cache).await;
        for node in [newcomer, peer, cache] {
            node.shutdown().await;
        }
    });
}

#[test]
fn attack_a_udp_flood_does_not_delay_what_comes_from_the_links_and_the_api() {
    task::block_on(async {
        let a = start(&[], None).await;
        let b = start(&[a.listen_addr()], None).await;
        common::wait_connected(&a, &b).await;
        // The API's commands wait in the queue the links' messages wait in.
        async fn median_status_ms(node: &NodeHandle) -> f64 {
            let mut times = Vec::new();
            for _ in 0..21 {
                let started = std::time::Instant::now();
                node.status().await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        }
        let idle = median_status_ms(&a).await;
        // Four senders of SCP pings, each from many ports (budgets per
        // port on loopback: every ping is decoded and budgeted).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target = a.listen_addr();
        let flooders: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let ping = host_cache_ping(Guid([1; 16]), servent::handshake::Role::Leaf).encode();
                    let sockets: Vec<_> = (0..16).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
                    let mut sent = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for socket in &sockets {
                            sent += u64::from(socket.send_to(&ping, target).is_ok());
                        }
                    }
                    sent
                })
            })
            .collect();
        task::sleep(Duration::from_millis(500)).await;
        let flooded = median_status_ms(&a).await;
        // A search over the link still crosses at once.
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        let id = {
            let c = start(&[a.listen_addr()], Some(files.path())).await;
            common::wait_connected(&a, &c).await;
            wait_indexed(&c, "seblinux", 1).await;
            let id = b.search("seblinux", 3).await.unwrap();
            wait_for("the result through the flooded servent", || async {
                !b.search_results(id).await.unwrap().unwrap().results.is_empty()
            })
            .await;
            c.shutdown().await;
            id
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent: u64 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
        println!("flood: {sent} pings; status idle {idle:.2} ms, flooded {flooded:.2} ms; search {id} answered");
        assert!(sent > 10_000, "a flood: {sent} datagrams");
        // The times are printed, not bounded: which queue the pump takes
        // first is the pump's unit test (node::pump); here the search
        // crossing the flooded servent is what must hold.
        for node in [a, b] {
            node.shutdown().await;
        }
    });
}

#[test]
fn an_scp_ping_gets_a_pong_packing_the_neighbours_in_ipp() {
    task::block_on(async {
        let a = start(&[], None).await;
        let b = start(&[a.listen_addr()], None).await;
        common::wait_connected(&a, &b).await;
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ping = host_cache_ping(Guid([7; 16]), servent::handshake::Role::Leaf);
        socket.send_to(&ping.encode(), a.listen_addr()).await.unwrap();
        let pong = receive_until(&socket, |m| m.guid == ping.guid).await;
        let Payload::Pong(pong) = &pong.payload else { panic!("a pong answers a ping: {pong:?}") };
        assert_eq!(SocketAddr::from(SocketAddrV4::new(pong.ip, pong.port)), a.listen_addr());
        let hosts = ipp::unpack(pong.ggep.get(ipp::IPP).expect("IPP")).unwrap();
        assert_eq!(hosts, vec![v4(b.listen_addr())]);
        for node in [a, b] {
            node.shutdown().await;
        }
    });
}

#[test]
fn attack_a_udp_flood_from_one_address_gets_a_few_small_answers_and_junk_gets_none() {
    task::block_on(async {
        let a = start(&[], None).await;
        let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ping = host_cache_ping(Guid([1; 16]), servent::handshake::Role::Leaf).encode();
        let flooded = std::time::Instant::now();
        for _ in 0..2_000 {
            flooder.send_to(&ping, a.listen_addr()).await.unwrap();
        }
        // Junk of every kind, then one honest ping from elsewhere, which is
        // answered: the servent is still there, and junk got nothing.
        let mut lying = ping.clone();
        lying[19..23].copy_from_slice(&60_000u32.to_le_bytes());
        for junk in [vec![0u8; 3], lying, vec![0xFF; 60_000]] {
            flooder.send_to(&junk, a.listen_addr()).await.unwrap();
        }
        // (Sent again until answered: the kernel may drop it while the
        // flood fills the socket's buffer.)
        let honest = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let probe = Message::new(Guid([2; 16]), 1, Payload::Ping(Ping::default()));
        let mut buffer = vec![0; 65_536];
        let answered = async {
            loop {
                honest.send_to(&probe.encode(), a.listen_addr()).await.unwrap();
                let wait = async_std::future::timeout(Duration::from_millis(500), honest.recv_from(&mut buffer));
                if let Ok(Ok((len, _))) = wait.await {
                    if wire::decode(&buffer[..len]).is_ok_and(|m| m.guid == probe.guid) {
                        return;
                    }
                }
            }
        };
        async_std::future::timeout(common::PATIENCE, answered).await.expect("an answer to the honest ping");
        // Everything the flooder was sent, counted until a second of silence.
        let mut buffer = vec![0; 65_536];
        let (mut answers, mut bytes) = (0, 0);
        while let Ok(Ok((len, _))) =
            async_std::future::timeout(Duration::from_secs(1), flooder.recv_from(&mut buffer)).await
        {
            answers += 1;
            bytes += len;
        }
        // Its burst and a refill, and one more for each refill a slow run may
        // have let in: the answers all came within the time since the flood began.
        let refills = 1 + (flooded.elapsed().as_secs_f64() / ADDRESS_REFILL.as_secs_f64()) as usize;
        println!("2000 pings ({} bytes) from one address: {answers} answers ({bytes} bytes)", 2000 * ping.len());
        assert!(
            (1..=ADDRESS_BURST as usize + refills).contains(&answers),
            "{answers} answers to 2,000 pings in {:?}",
            flooded.elapsed()
        );
        assert!(
            bytes <= answers * (ping.len() + ANSWER_SLACK),
            "no answer larger than the ping by more than the slack"
        );
        a.shutdown().await;
    });
}

#[test]
fn hits_two_hops_away_come_out_of_band_over_udp_claimed_with_our_token() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-base-1.0.tar", b"base system".as_slice())]);
        // b dials c, so c is reachable (not firewalled) and may answer out of band.
        let c = start(&[], Some(files.path())).await;
        let b = start(&[c.listen_addr()], None).await;
        let a = start(&[b.listen_addr()], None).await;
        common::wait_connected(&b, &a).await;
        common::wait_connected(&b, &c).await;
        wait_indexed(&c, "seblinux", 1).await;
        let id = a.search("seblinux", 7).await.unwrap();
        wait_for("the result", || async { !a.search_results(id).await.unwrap().unwrap().results.is_empty() }).await;
        let results = a.search_results(id).await.unwrap().unwrap().results;
        assert_eq!(results[0].sources[0].to_string(), c.listen_addr().to_string());
        assert_eq!(a.status().await.unwrap().oob_hits, 1, "the hit came over UDP, not through b");
        for node in [a, b, c] {
            node.shutdown().await;
        }
    });
}

#[test]
fn guess_finds_a_rare_file_that_flooding_does_not_reach() {
    task::block_on(async {
        let files = share(&[("SEBLINUX-rare-1.0.tar", b"one copy in the world".as_slice())]);
        let hub = start(&[], None).await;
        let holder = start(&[hub.listen_addr()], Some(files.path())).await;
        let seeker = start(&[hub.listen_addr()], None).await;
        common::wait_connected(&hub, &holder).await;
        common::wait_connected(&hub, &seeker).await;
        wait_indexed(&holder, "seblinux", 1).await;
        wait_for("the seeker to hear of the holder", || async { seeker.status().await.unwrap().host_cache >= 2 }).await;
        // TTL 1: the flood stops at the hub, which has nothing.
        let id = seeker.search("seblinux rare", 1).await.unwrap();
        wait_for("GUESS to find it", || async {
            !seeker.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        let results = seeker.search_results(id).await.unwrap().unwrap().results;
        assert_eq!(results[0].sources[0].to_string(), holder.listen_addr().to_string());
        for node in [seeker, holder, hub] {
            node.shutdown().await;
        }
    });
}
