//! UDP against the real thing: gtk-gnutella 1.2.3 started with UDP on (see
//! `common::gtkg`). Skipped with a printed reason where gtk-gnutella cannot
//! be built, except in CI. Out-of-band hits need public-looking addresses:
//! that test runs in a network namespace of its own (`common::netns`, root).

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use async_std::net::UdpSocket;
use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::netns;
use common::{share, start_with, wait_connected, wait_for, wait_for_within, wait_indexed};
use servent::config::Mode;
use servent::handshake::Role;
use servent::node::NodeHandle;
use servent::peeraddr::PeerAddr;
use servent::wire::{self, ipp, Guid, Message, Payload};
use servent_core::node::guess;
use servent_core::node::udp::host_cache_ping;

/// gtk-gnutella's address in the out-of-band test: public range, no bogon
/// (its `bogons.txt`, `ipv4_addr_is_routable`, `is_private_addr`).
const THEIRS: Ipv4Addr = Ipv4Addr::new(23, 1, 0, 1);
/// Our servents' there, one each (one link per address) in /24s of their own.
const HUB: Ipv4Addr = Ipv4Addr::new(23, 2, 0, 2);
const LEAF: Ipv4Addr = Ipv4Addr::new(23, 3, 0, 3);
const ANSWERER: Ipv4Addr = Ipv4Addr::new(23, 4, 0, 4);

/// How long gtk-gnutella may take to start, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(90);

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("servents listen on IPv4"),
    }
}

#[test]
fn our_udp_host_cache_ping_gets_its_ipp_pong_and_a_newcomer_joins_through_it() {
    task::block_on(async {
        // Two of ours: it packs only neighbours whose listening address it
        // knows, which for an incoming loopback peer it learns from its Pong
        // (a Listen-IP on loopback is not routable); and an ultrapeer short of
        // leaves puts itself in its IPP in place of one of them (pcache.c).
        let Some(gtkg) = Gtkg::start(&[], Options { udp: true, ..Options::default() }) else { return };
        let mut ours = Vec::new();
        for _ in 0..2 {
            ours.push(start_with(&[gtkg.addr], None, |c| c.mode = Mode::Ultrapeer).await);
        }
        for node in &ours {
            let known = format!("127.0.0.1:{} ", node.listen_addr().port());
            gtkg.wait_until("it to know our listening address", GTKG_PATIENCE, || gtkg.shell("nodes").contains(&known));
        }
        let ours_listen: Vec<SocketAddrV4> = ours.iter().map(|n| v4(n.listen_addr())).collect();

        // A ping as our servent sends it, answered with its IPP naming us.
        // From 127.0.0.2: it answers one ping a minute per address, and the
        // newcomer below pings from 127.0.0.1.
        let socket = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let ping = host_cache_ping(Guid::random(), Role::Leaf);
        let mut buffer = vec![0; 65_536];
        let pong = async_std::future::timeout(GTKG_PATIENCE, async {
            loop {
                socket.send_to(&ping.encode(), gtkg.addr).await.unwrap();
                let answer = async_std::future::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer)).await;
                if let Ok(Ok((len, _))) = answer {
                    let message = wire::decode(&buffer[..len]).unwrap();
                    if message.guid == ping.guid {
                        return message;
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no pong from it\n{}", gtkg.diagnose()));
        let Payload::Pong(pong) = &pong.payload else { panic!("a pong answers a ping: {pong:?}") };
        assert_eq!(SocketAddr::from(SocketAddrV4::new(pong.ip, pong.port)), gtkg.addr);
        let hosts =
            ipp::unpack(pong.ggep.get(ipp::IPP).unwrap_or_else(|| panic!("no IPP in {pong:?}\n{}", gtkg.diagnose())))
                .unwrap();
        assert!(hosts.iter().any(|h| ours_listen.contains(h)), "{hosts:?} names none of {ours_listen:?}");

        // A servent that knows only it, as a UDP host cache, finds us.
        let newcomer = start_with(&[], None, |c| {
            c.discover = true;
            c.uhcs = vec![PeerAddr::Ip(v4(gtkg.addr))];
        })
        .await;
        // It answers one ping a minute per address, and the newcomer asks a
        // silent cache again 30 s, then 90 s after its first ping.
        let (what, patience) = ("the newcomer to find one of ours through it", Duration::from_secs(150));
        wait_for_within(what, patience, || async {
            newcomer.peers().await.unwrap().iter().any(|p| p.listen.is_some_and(|l| ours_listen.contains(&l)))
        })
        .await;
        newcomer.shutdown().await;
        for node in ours {
            node.shutdown().await;
        }
    });
}

#[test]
fn its_guess_server_gives_our_key_request_a_key_and_answers_our_guess_query_over_udp() {
    task::block_on(async {
        let rare = b"a release only gtk-gnutella has".as_slice();
        let Some(gtkg) = Gtkg::start(&[("SEBLINUX-rare-1.0.tar", rare)], Options { udp: true, ..Options::default() })
        else {
            return;
        };
        gtkg.set("is_firewalled", "FALSE");
        gtkg.wait_shared(1, GTKG_PATIENCE);
        let socket = UdpSocket::bind("127.0.0.3:0").await.unwrap();
        // The key Ping our GUESS client sends, and the query with the key.
        let mut ggep = wire::Ggep::new();
        ggep.insert(guess::QK, Vec::new());
        ggep.insert(ipp::SCP, vec![1]);
        let ping = Message::new(Guid::random(), 1, Payload::Ping(wire::Ping { ggep }));
        let pong = exchange(&socket, gtkg.addr, &ping, |m| m.guid == ping.guid).await;
        let Payload::Pong(pong) = &pong.payload else { panic!("a pong answers a ping: {pong:?}") };
        let key = pong.ggep.get(guess::QK).unwrap_or_else(|| panic!("no QK in {pong:?}\n{}", gtkg.diagnose()));
        assert!(pong.ggep.get(guess::GUE).is_some(), "it speaks GUESS: {pong:?}");
        let mut query = servent_core::node::build_query("SEBLINUX rare").unwrap();
        query.ggep.insert(guess::QK, key.to_vec());
        query.ggep.insert(ipp::SCP, Vec::new());
        let query = Message::new(Guid::random(), 1, Payload::Query(query));
        let hit =
            exchange(&socket, gtkg.addr, &query, |m| m.guid == query.guid && matches!(m.payload, Payload::QueryHit(_)))
                .await;
        let Payload::QueryHit(hit) = &hit.payload else { unreachable!() };
        assert_eq!(hit.results[0].name, "SEBLINUX-rare-1.0.tar");
    });
}

#[test]
fn out_of_band_hits_both_ways_with_gtk_gnutella_on_public_addresses() {
    // Who dials whom: the hub dials it and the answerer, the leaf the hub.
    let addresses = [(THEIRS, Some(HUB)), (ANSWERER, Some(HUB)), (HUB, Some(LEAF)), (LEAF, None)];
    if !netns::enter("out_of_band_hits_both_ways_with_gtk_gnutella_on_public_addresses", &addresses) {
        return;
    }
    task::block_on(async {
        let theirs = b"a release only gtk-gnutella has".as_slice();
        let Some(mut gtkg) =
            Gtkg::start(&[("SEBLINUX-theirs-1.0.tar", theirs)], Options { udp: true, ..Options::default() })
        else {
            return;
        };
        // It asks for and gives hits out of band only on an address that
        // can be reached from the Internet, and only while it believes UDP
        // gets through to it.
        gtkg.move_to(THEIRS);
        gtkg.set("is_firewalled", "FALSE");
        gtkg.set("is_udp_firewalled", "FALSE");
        gtkg.wait_shared(1, GTKG_PATIENCE);

        // Both it and our answerer are two hops from the querier, as
        // out-of-band delivery wants (a neighbour's query is answered over
        // its link): it and our answerer are dialled by our ultrapeer, so
        // both are reachable; our querier is a leaf of that ultrapeer.
        let files = share(&[("SEBLINUX-ours-1.0.tar", b"a release only we have".as_slice())]);
        let answerer = start_on(ANSWERER, &[], Some(files.path()), Mode::Ultrapeer).await;
        let hub = start_on(HUB, &[gtkg.addr, answerer.listen_addr()], None, Mode::Ultrapeer).await;
        let leaf = start_on(LEAF, &[hub.listen_addr()], None, Mode::Leaf).await;
        wait_connected(&hub, &answerer).await;
        wait_connected(&hub, &leaf).await;
        let hub_listen = format!("{}:{} ", hub.listen_addr().ip(), hub.listen_addr().port());
        gtkg.wait_until("it to know our ultrapeer", GTKG_PATIENCE, || gtkg.shell("nodes").contains(&hub_listen));
        wait_indexed(&answerer, "seblinux", 1).await;
        // It gives hits out of band only once a UDP answer of someone's has
        // reached it: it pings our hub over UDP when it connects.
        gtkg.wait_until("our hub's UDP pong to reach it", GTKG_PATIENCE, || {
            gtkg.shell("print recv_solicited_udp").contains("Value: TRUE")
        });

        // Our leaf gets its hits out of band.
        let id = leaf.search("seblinux theirs", None).await.unwrap();
        wait_for("its hit at our leaf", || async {
            !leaf.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        let results = leaf.search_results(id).await.unwrap().unwrap().results;
        assert_eq!(results[0].name, "SEBLINUX-theirs-1.0.tar");
        assert_eq!(results[0].sources[0].to_string(), gtkg.addr.to_string());
        assert!(
            leaf.status().await.unwrap().oob_hits >= 1,
            "its hit came over UDP, not through our hub\n{}",
            gtkg.diagnose()
        );

        // It gets ours out of band.
        gtkg.shell("search add seblinux ours");
        let from_answerer = format!("({}", answerer.listen_addr());
        gtkg.wait_until("our hit to reach it over UDP", GTKG_PATIENCE, || {
            gtkg.log().lines().any(|l| l.contains("SEARCH UDP QHIT") && l.contains(&from_answerer))
        });
        for node in [leaf, hub, answerer] {
            node.shutdown().await;
        }
    });
}

/// One of ours on `ip`, an ephemeral port, taking UDP.
async fn start_on(ip: Ipv4Addr, peers: &[SocketAddr], share: Option<&Path>, mode: Mode) -> NodeHandle {
    start_with(peers, share, |c| {
        c.listen = SocketAddr::from((ip, 0));
        c.mode = mode;
    })
    .await
}

/// Sends `message` every 2 s until an answer `wanted` accepts arrives.
async fn exchange(socket: &UdpSocket, to: SocketAddr, message: &Message, wanted: impl Fn(&Message) -> bool) -> Message {
    let mut buffer = vec![0; 65_536];
    let answer = async {
        loop {
            socket.send_to(&message.encode(), to).await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok((len, _))) = async_std::future::timeout(
                deadline.saturating_duration_since(std::time::Instant::now()),
                socket.recv_from(&mut buffer),
            )
            .await
            {
                match wire::decode(&buffer[..len]) {
                    Ok(answer) if wanted(&answer) => return answer,
                    _ => {}
                }
            }
        }
    };
    async_std::future::timeout(GTKG_PATIENCE, answer).await.expect("its answer over UDP")
}
