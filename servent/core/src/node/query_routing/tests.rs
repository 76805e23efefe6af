//! QRP through the whole node: tables received from leaves, queries
//! routed by them, our table sent as a leaf, TTL capped per peer.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::handshake::{PeerInfo, Role};
use crate::node::{Action, Config, Connected, Direction, Event, Node};
use crate::qrp::{RouteTable, RouteTableUpdate, TableReceiver};
use crate::routing::PeerId;
use crate::trust::{SharedTrust, TrustStore};
use crate::wire::{decode, samples, Guid, Header, Message, Payload, Query};

const ULTRAPEER: u64 = 1;
const LEAF: u64 = 2;

fn node(role: Role, now: Instant) -> Node {
    let listen = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 100), 6346));
    let config = Config { listen, role, ..Config::default() };
    Node::new(config, StdRng::seed_from_u64(7), SharedTrust::new(TrustStore::in_memory()), (0, 0), now)
}

fn info(headers: &[(&str, &str)]) -> PeerInfo {
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let ultrapeer = headers.iter().any(|(n, v)| n == "X-Ultrapeer" && v == "True");
    PeerInfo { ultrapeer, headers, ..PeerInfo::default() }
}

fn connect(node: &mut Node, peer: u64, info: PeerInfo, now: Instant) {
    let connected = Connected {
        peer: PeerId(peer),
        addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 51, peer as u8, 1), 6346)),
        local: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 100), 6346)),
        info,
        direction: Direction::Incoming,
        dialed: None,
    };
    node.handle(Event::Connected(Box::new(connected)), now);
}

fn gtkg_leaf() -> PeerInfo {
    info(&[("X-Ultrapeer", "False"), ("X-Query-Routing", "0.2"), ("X-Max-TTL", "4")])
}

fn ultrapeer() -> PeerInfo {
    info(&[("X-Ultrapeer", "True"), ("X-Query-Routing", "0.2"), ("X-Degree", "32"), ("X-Max-TTL", "4")])
}

fn drain(node: &mut Node) -> Vec<Action> {
    std::iter::from_fn(|| node.poll_action()).collect()
}

fn sent_to(actions: &[Action], peer: u64) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, message } if *to == PeerId(peer) => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn queries(messages: &[Message]) -> Vec<&Message> {
    messages.iter().filter(|m| matches!(m.payload, Payload::Query(_))).collect()
}

fn query(guid: u8, criteria: &str, ttl: u8) -> Message {
    let query = Query::words(criteria);
    Message { guid: Guid([guid; 16]), ttl, hops: 1, payload: Payload::Query(query) }
}

fn update_messages(table: &RouteTable) -> Vec<Message> {
    table
        .updates_from(None)
        .into_iter()
        .map(|u| Message {
            guid: Guid([0x30; 16]),
            ttl: 1,
            hops: 0,
            payload: Payload::Opaque { payload_type: 0x30, bytes: u.encode() },
        })
        .collect()
}

#[test]
fn an_ultrapeer_routes_queries_to_a_leaf_only_by_its_table() {
    let now = Instant::now();
    let mut node = node(Role::Ultrapeer, now);
    connect(&mut node, ULTRAPEER, ultrapeer(), now);
    connect(&mut node, LEAF, gtkg_leaf(), now);
    drain(&mut node);

    node.handle(Event::Message { peer: PeerId(ULTRAPEER), message: query(1, "free software song", 4) }, now);
    assert!(queries(&sent_to(&drain(&mut node), LEAF)).is_empty(), "no table yet: nothing is flooded to a leaf");
    assert!(!node.qrp_in_force(PeerId(LEAF)));

    let table = RouteTable::from_library(["Free Software Song.ogg"], []);
    for message in update_messages(&table) {
        node.handle(Event::Message { peer: PeerId(LEAF), message }, now);
    }
    assert!(node.qrp_in_force(PeerId(LEAF)));
    node.handle(Event::Message { peer: PeerId(ULTRAPEER), message: query(2, "free software", 4) }, now);
    let to_leaf = sent_to(&drain(&mut node), LEAF);
    assert_eq!(queries(&to_leaf).len(), 1, "a query for its words reaches it");
    node.handle(Event::Message { peer: PeerId(ULTRAPEER), message: query(3, "linux kernel", 4) }, now);
    assert!(queries(&sent_to(&drain(&mut node), LEAF)).is_empty(), "a query for other words does not");
}

#[test]
fn a_malformed_route_table_drops_the_leaf() {
    let now = Instant::now();
    let mut node = node(Role::Ultrapeer, now);
    connect(&mut node, LEAF, gtkg_leaf(), now);
    drain(&mut node);
    let bad = Message {
        guid: Guid([1; 16]),
        ttl: 1,
        hops: 0,
        payload: Payload::Opaque { payload_type: 0x30, bytes: vec![0, 12, 0, 0, 0, 7] },
    };
    node.handle(Event::Message { peer: PeerId(LEAF), message: bad }, now);
    let actions = drain(&mut node);
    assert!(actions.iter().any(|a| matches!(a, Action::Close { peer, .. } if *peer == PeerId(LEAF))), "{actions:?}");
    assert_eq!(node.peers().count(), 0);
}

#[test]
fn queries_are_capped_at_the_ttl_each_peer_advertises() {
    let now = Instant::now();
    let mut node = node(Role::Ultrapeer, now);
    connect(&mut node, ULTRAPEER, info(&[("X-Ultrapeer", "True")]), now);
    connect(&mut node, 3, ultrapeer(), now);
    drain(&mut node);
    node.handle(Event::Message { peer: PeerId(ULTRAPEER), message: query(4, "free software", 7) }, now);
    let sent = sent_to(&drain(&mut node), 3);
    assert_eq!(queries(&sent)[0].ttl, 4, "X-Max-TTL: 4");
    node.search("free software", 7, now).unwrap();
    let sent = sent_to(&drain(&mut node), 3);
    assert_eq!(queries(&sent)[0].ttl, 4);
}

#[test]
fn a_leaf_sends_its_table_after_the_handshake_and_patches_on_library_change() {
    let now = Instant::now();
    let mut node = node(Role::Leaf, now);
    let first = RouteTable::from_library(["Free Software Song.ogg"], []);
    node.handle(Event::LibraryTable(first.clone()), now);
    connect(&mut node, ULTRAPEER, ultrapeer(), now);
    connect(&mut node, 3, info(&[("X-Ultrapeer", "True")]), now);
    let actions = drain(&mut node);
    assert!(sent_to(&actions, 3).iter().all(|m| !super::QueryRouting::is_update(m)), "no table for a peer without QRP");
    let mut receiver = TableReceiver::default();
    let apply = |receiver: &mut TableReceiver, messages: Vec<Message>| {
        for message in messages.into_iter().filter(super::QueryRouting::is_update) {
            assert_eq!((message.ttl, message.hops), (1, 0));
            let Payload::Opaque { bytes, .. } = &message.payload else { unreachable!() };
            receiver.receive(RouteTableUpdate::decode(bytes).unwrap()).unwrap();
        }
    };
    apply(&mut receiver, sent_to(&actions, ULTRAPEER));
    assert_eq!(receiver.table(), Some(&first));

    let second = RouteTable::from_library(["Free Software Song.ogg", "gnu-manifesto.txt"], []);
    node.handle(Event::LibraryTable(second.clone()), now);
    let patch = sent_to(&drain(&mut node), ULTRAPEER);
    assert!(
        patch.iter().all(|m| matches!(&m.payload, Payload::Opaque { bytes, .. } if bytes[0] == 1)),
        "a patch, no reset"
    );
    apply(&mut receiver, patch);
    assert_eq!(receiver.table(), Some(&second));
}

#[test]
fn a_leaf_forwards_no_one_elses_queries() {
    let now = Instant::now();
    let mut node = node(Role::Leaf, now);
    connect(&mut node, ULTRAPEER, ultrapeer(), now);
    connect(&mut node, 3, ultrapeer(), now);
    drain(&mut node);
    node.handle(Event::Message { peer: PeerId(ULTRAPEER), message: query(5, "free software", 4) }, now);
    assert!(queries(&sent_to(&drain(&mut node), 3)).is_empty());
    node.search("free software", 4, now).unwrap();
    assert_eq!(queries(&sent_to(&drain(&mut node), 3)).len(), 1, "its own searches go to its ultrapeers");
}

#[test]
fn an_ultrapeer_shelters_leaves_besides_its_ultrapeer_links() {
    let now = Instant::now();
    let listen = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 100), 6346));
    let config = Config { listen, max_peers: 1, max_leaves: 2, ..Config::default() };
    let mut node = Node::new(config, StdRng::seed_from_u64(7), SharedTrust::new(TrustStore::in_memory()), (0, 0), now);
    let remote = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
    assert_eq!(node.admit(remote).0, crate::handshake::Admission::Accept);
    connect(&mut node, ULTRAPEER, ultrapeer(), now);
    assert!(matches!(node.admit(remote).0, crate::handshake::Admission::LeavesOnly { .. }));
    connect(&mut node, LEAF, gtkg_leaf(), now);
    connect(&mut node, 3, gtkg_leaf(), now);
    assert!(matches!(node.admit(remote).0, crate::handshake::Admission::Full { .. }));
    let roles: Vec<Role> = node.peers().map(|(_, p)| p.role).collect();
    assert_eq!(roles, [Role::Ultrapeer, Role::Leaf, Role::Leaf]);
}

#[test]
fn a_leaf_keeps_a_few_ultrapeer_links_and_no_leaves() {
    let now = Instant::now();
    let mut node = node(Role::Leaf, now);
    let remote = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
    for peer in 1..=crate::node::LEAF_LINKS as u64 {
        assert_eq!(node.admit(remote).0, crate::handshake::Admission::Accept);
        connect(&mut node, peer, ultrapeer(), now);
    }
    assert!(matches!(node.admit(remote).0, crate::handshake::Admission::Full { .. }));
}

fn ultrapeer_with_last_hop_tables() -> PeerInfo {
    info(&[("X-Ultrapeer", "True"), ("X-Query-Routing", "0.2"), ("X-Ultrapeer-Query-Routing", "0.1")])
}

#[test]
fn ultrapeers_exchange_their_leaves_tables_and_filter_the_last_hop() {
    let now = Instant::now();
    let mut node = node(Role::Ultrapeer, now);
    node.handle(Event::LibraryTable(RouteTable::from_library(["gnu-manifesto.txt"], [])), now);
    connect(&mut node, ULTRAPEER, ultrapeer_with_last_hop_tables(), now);
    connect(&mut node, LEAF, gtkg_leaf(), now);
    let mut receiver = TableReceiver::default();
    let apply = |receiver: &mut TableReceiver, messages: Vec<Message>| {
        for message in messages.into_iter().filter(super::QueryRouting::is_update) {
            let Payload::Opaque { bytes, .. } = &message.payload else { unreachable!() };
            receiver.receive(RouteTableUpdate::decode(bytes).unwrap()).unwrap();
        }
    };
    apply(&mut receiver, sent_to(&drain(&mut node), ULTRAPEER));
    let routes = |receiver: &TableReceiver, words: &str| {
        receiver.table().unwrap().routes(&crate::qrp::QueryKeys::new(words, &[]))
    };
    assert!(routes(&receiver, "manifesto") && !routes(&receiver, "software"), "our own words first");
    for message in update_messages(&RouteTable::from_library(["Free Software Song.ogg"], [])) {
        node.handle(Event::Message { peer: PeerId(LEAF), message }, now);
    }
    assert!(sent_to(&drain(&mut node), ULTRAPEER).is_empty(), "the union waits for the tick");
    let tick = now + crate::node::TICK;
    node.handle_timeout(tick);
    apply(&mut receiver, sent_to(&drain(&mut node), ULTRAPEER));
    assert!(routes(&receiver, "manifesto") && routes(&receiver, "software"), "then with our leaf's");
    node.handle_timeout(tick + crate::node::TICK);
    assert!(sent_to(&drain(&mut node), ULTRAPEER).iter().all(|m| !super::QueryRouting::is_update(m)), "once");

    // Its own table filters what would end at it.
    for message in update_messages(&RouteTable::from_library(["kernel.tar"], [])) {
        node.handle(Event::Message { peer: PeerId(ULTRAPEER), message }, now);
    }
    node.search("linux", 1, now).unwrap();
    assert!(queries(&sent_to(&drain(&mut node), ULTRAPEER)).is_empty(), "last hop, no match");
    node.search("kernel", 1, now).unwrap();
    assert_eq!(queries(&sent_to(&drain(&mut node), ULTRAPEER)).len(), 1);
    node.search("linux", 3, now).unwrap();
    assert_eq!(queries(&sent_to(&drain(&mut node), ULTRAPEER)).len(), 1, "not the last hop: it goes on");
}

#[test]
fn what_we_relay_leaves_as_it_came_but_for_ttl_and_hops() {
    let now = Instant::now();
    let mut node = node(Role::Ultrapeer, now);
    connect(&mut node, ULTRAPEER, ultrapeer(), now);
    connect(&mut node, 3, ultrapeer(), now);
    drain(&mut node);
    let descriptor = |payload_type: u8, ttl: u8, payload: &[u8]| {
        let header = Header {
            guid: Guid([0x51; 16]),
            payload_type: payload_type.into(),
            ttl,
            hops: 1,
            payload_len: payload.len() as u32,
        };
        [&header.encode()[..], payload].concat()
    };
    let query = descriptor(0x80, 3, &samples::unusual_query());
    node.handle(Event::Message { peer: PeerId(ULTRAPEER), message: decode(&query).unwrap() }, now);
    let relayed = sent_to(&drain(&mut node), 3);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].encode(), [&query[..17], &[2, 2], &query[19..]].concat());
    let hit = descriptor(0x81, 2, &samples::gtk_gnutella_hit());
    node.handle(Event::Message { peer: PeerId(3), message: decode(&hit).unwrap() }, now);
    let relayed = sent_to(&drain(&mut node), ULTRAPEER);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].encode(), [&hit[..17], &[1, 2], &hit[19..]].concat());
}

#[test]
fn the_union_is_built_once_per_tick_for_every_reader_and_forgets_a_leaf_that_left() {
    let now = Instant::now();
    let mut node = node(Role::Ultrapeer, now);
    node.handle(Event::LibraryTable(RouteTable::from_library(["gnu-manifesto.txt"], [])), now);
    let readers = [1, 2, 3];
    for peer in readers {
        connect(&mut node, peer, ultrapeer_with_last_hop_tables(), now);
    }
    let leaves = 10..19;
    for peer in leaves.clone() {
        connect(&mut node, peer, gtkg_leaf(), now);
    }
    let mut receivers: Vec<TableReceiver> = readers.iter().map(|_| TableReceiver::default()).collect();
    let apply = |receivers: &mut [TableReceiver], actions: &[Action]| {
        let mut sequences = Vec::new();
        for (receiver, peer) in receivers.iter_mut().zip(readers) {
            let updates: Vec<Vec<u8>> = sent_to(actions, peer)
                .into_iter()
                .filter(super::QueryRouting::is_update)
                .map(|m| match m.payload {
                    Payload::Opaque { bytes, .. } => bytes,
                    _ => unreachable!(),
                })
                .collect();
            for bytes in &updates {
                receiver.receive(RouteTableUpdate::decode(bytes).unwrap()).unwrap();
            }
            sequences.push(updates);
        }
        sequences
    };
    apply(&mut receivers, &drain(&mut node));
    for peer in leaves.clone() {
        for message in update_messages(&RouteTable::from_library([format!("song{peer}z.ogg").as_str()], [])) {
            node.handle(Event::Message { peer: PeerId(peer), message }, now);
        }
    }
    node.handle_timeout(now + crate::node::TICK);
    let sequences = apply(&mut receivers, &drain(&mut node));
    assert!(!sequences[0].is_empty());
    assert!(sequences.iter().all(|s| *s == sequences[0]), "one patch for every reader, and one, not one per leaf");
    let routes = |receiver: &TableReceiver, words: &str| {
        receiver.table().unwrap().routes(&crate::qrp::QueryKeys::new(words, &[]))
    };
    assert!(receivers.iter().all(|r| routes(r, "song10z") && routes(r, "song18z") && routes(r, "manifesto")));
    node.handle(Event::Closed { peer: PeerId(10), reason: "gone".into() }, now);
    node.handle_timeout(now + crate::node::TICK * 2);
    apply(&mut receivers, &drain(&mut node));
    assert!(receivers.iter().all(|r| !routes(r, "song10z") && routes(r, "song11z")), "a leaf gone leaves the union");
}
