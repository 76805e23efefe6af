use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::testing::Net;
use super::*;
use crate::requery::{Phase, REQUERY_INTERVAL};
use crate::routing::PING_INTERVAL;
use crate::trust::TrustStore;
use crate::wire::{Ping, QueryResult};

fn addr(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 6346)
}

pub(super) fn node_with(config: Config, now: Instant) -> Node {
    Node::new(config, StdRng::seed_from_u64(7), SharedTrust::new(TrustStore::in_memory()), (0, 0), now)
}

/// A node that listens on a known address, so it may answer queries.
fn node(now: Instant) -> Node {
    node_with(Config { listen: SocketAddr::V4(addr(100)), ..Config::default() }, now)
}

pub(super) fn actions(node: &mut Node) -> Vec<Action> {
    std::iter::from_fn(|| node.poll_action()).collect()
}

fn dials(actions: &[Action]) -> Vec<SocketAddrV4> {
    actions.iter().filter_map(|a| if let Action::Dial(addr) = a { Some(*addr) } else { None }).collect()
}

/// A node that may answer (see [`node`]) with one neighbour, peer 1 at
/// `addr(1)`, whose greeting has been taken.
fn node_with_a_neighbour(now: Instant) -> Node {
    let mut node = node(now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    actions(&mut node);
    node
}

/// A QueryHit from the servent at `addr(n)` (GUID all `n`) offering one
/// file by its SHA-1.
fn hit_of_one_file(n: u8, name: &str, sha1: Urn) -> QueryHit {
    let result = QueryResult { index: 1, size: 10, name: name.into(), urns: vec![sha1], ggep: Default::default() };
    QueryHit {
        port: 6346,
        ip: *addr(n).ip(),
        speed: 1,
        results: vec![result],
        trailer: None,
        servent_guid: Guid([n; 16]),
        original: Default::default(),
    }
}

pub(super) fn connect(node: &mut Node, peer: u64, remote: SocketAddr, now: Instant) {
    let connected = Connected {
        peer: PeerId(peer),
        addr: remote,
        local: SocketAddr::V4(addr(100)),
        info: PeerInfo::default(),
        direction: Direction::Incoming,
        dialed: None,
    };
    node.handle(Event::Connected(Box::new(connected)), now);
}

fn query(criteria: &str, urns: Vec<Urn>) -> Message {
    let query = Query {
        flags: QueryFlags::default(),
        criteria: criteria.into(),
        urns,
        ggep: Default::default(),
        original: Default::default(),
    };
    Message { guid: Guid([9; 16]), ttl: 3, hops: 1, payload: Payload::Query(query) }
}

/// A query that asks for partial results (GGEP `PR`), as ours and gtk-gnutella's do.
fn query_wanting_partials(criteria: &str) -> Message {
    let mut message = query(criteria, vec![]);
    let Payload::Query(query) = &mut message.payload else { unreachable!() };
    query.ggep = super::partial::wanted();
    message
}

pub(super) fn shared_file(name: &str) -> search::SharedFile {
    search::SharedFile {
        index: 3,
        name: name.into(),
        path: name.into(),
        size: 1234,
        sha1: Urn::Sha1([1; 20]),
        sha256: Urn::Sha256([2; 32]),
        tth: search::thex::Root([3; 24]),
        signature: None,
    }
}

#[test]
fn admission_refuses_a_full_node_and_a_second_link_from_one_address() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 2, ..Config::default() }, now);
    let remote = SocketAddr::V4(addr(1));
    assert_eq!(node.admit(remote).0, Admission::Accept);
    connect(&mut node, 1, remote, now);
    assert!(matches!(node.admit(SocketAddr::V4(SocketAddrV4::new(*addr(1).ip(), 9))).0, Admission::Full { .. }));
    // Loopback is exempt, so that test networks run on one machine.
    let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
    connect(&mut node, 2, local, now);
    assert_eq!(node.peers().count(), 2);
    assert!(matches!(node.admit(SocketAddr::V4(addr(3))).0, Admission::Full { .. }));
}

#[test]
fn a_stalled_handshake_gives_way_and_its_link_cannot_stay() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 2, discover: false, ..Config::default() }, now);
    let (stalled, slow, late) = (SocketAddr::V4(addr(1)), SocketAddr::V4(addr(2)), SocketAddr::V4(addr(3)));
    assert_eq!(node.admit_incoming(stalled, now).0, Admission::Accept);
    assert_eq!(node.admit_incoming(slow, now + STALLED_HANDSHAKE / 2).0, Admission::Accept);
    assert!(matches!(node.admit_incoming(late, now + STALLED_HANDSHAKE / 2).0, Admission::Full { .. }));
    assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::GiveWay(_))), "nobody has stalled yet");

    // The oldest gives way; the one still within its time keeps its place.
    assert_eq!(node.admit_incoming(late, now + STALLED_HANDSHAKE).0, Admission::Accept);
    let cut: Vec<_> = actions(&mut node).into_iter().filter(|a| matches!(a, Action::GiveWay(_))).collect();
    assert!(matches!(cut[..], [Action::GiveWay(remote)] if remote == stalled), "{cut:?}");
    let another = SocketAddr::V4(addr(4));
    assert!(matches!(node.admit_incoming(another, now + STALLED_HANDSHAKE).0, Admission::Full { .. }));

    // The one that gave way wins its race all the same: its link is closed,
    // and the two counted handshakes still both become peers.
    connect(&mut node, 1, stalled, now + STALLED_HANDSHAKE);
    assert!(actions(&mut node).iter().any(|a| matches!(a, Action::Close { peer: PeerId(1), .. })));
    node.handle(Event::Closed { peer: PeerId(1), reason: "cut".into() }, now + STALLED_HANDSHAKE);
    connect(&mut node, 2, slow, now + STALLED_HANDSHAKE);
    connect(&mut node, 3, late, now + STALLED_HANDSHAKE);
    assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::Close { .. })));
    assert_eq!(node.peers().count(), 2);
    // Peers never give way to handshakes.
    let much_later = now + 10 * STALLED_HANDSHAKE;
    assert!(matches!(node.admit_incoming(another, much_later).0, Admission::Full { .. }));
    assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::GiveWay(_))));
}

#[test]
fn stalled_handshakes_holding_the_ultrapeer_slots_give_way_too() {
    let now = Instant::now();
    let config = Config { max_peers: 2, max_leaves: 4, discover: false, ..Config::default() };
    let mut node = node_with(config, now);
    for n in 1..=2 {
        assert_eq!(node.admit_incoming(SocketAddr::V4(addr(n)), now).0, Admission::Accept);
    }
    // Leaves could still come; an ultrapeer could not.
    assert!(matches!(node.admit_incoming(SocketAddr::V4(addr(3)), now).0, Admission::LeavesOnly { .. }));
    node.handle(Event::HandshakeFailed { remote: SocketAddr::V4(addr(3)) }, now);
    assert_eq!(node.admit_incoming(SocketAddr::V4(addr(3)), now + STALLED_HANDSHAKE).0, Admission::Accept);
    assert!(actions(&mut node)
        .iter()
        .any(|a| matches!(a, Action::GiveWay(remote) if *remote == SocketAddr::V4(addr(1)))));
}

#[test]
fn refused_peer_is_offered_other_hosts() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 0, ..Config::default() }, now);
    node.handle(Event::HostsLearned(vec![addr(7), addr(8)]), now);
    match node.admit(SocketAddr::V4(addr(1))) {
        (Admission::Full { try_ultrapeers }, suggested) => {
            assert_eq!(try_ultrapeers.len(), 2);
            assert_eq!(try_ultrapeers, suggested);
        }
        (other, _) => panic!("admitted: {other:?}"),
    }
}

#[test]
fn users_peers_are_dialed_at_the_first_timer_a_few_at_a_time() {
    let now = Instant::now();
    let peers: Vec<SocketAddrV4> = (1..=6).map(addr).collect();
    let mut node = node_with(Config { peers: peers.clone(), ..Config::default() }, now);
    assert_eq!(node.poll_timeout(), Some(now));
    node.handle_timeout(now);
    let first = dials(&actions(&mut node));
    assert_eq!(first.len(), MAX_DIALS);
    // Nothing more while those are under way.
    node.handle_timeout(now + TICK);
    assert!(dials(&actions(&mut node)).is_empty());
    node.handle(Event::DialFailed { addr: first[0], try_hosts: vec![] }, now + TICK);
    node.handle_timeout(now + 2 * TICK);
    let next = dials(&actions(&mut node));
    assert_eq!(next.len(), 1);
    assert!(!first.contains(&next[0]), "a failed host backs off");
}

#[test]
fn failed_dial_learns_the_hosts_the_peer_suggested() {
    let now = Instant::now();
    let mut node = node_with(Config { peers: vec![addr(1)], ..Config::default() }, now);
    node.handle_timeout(now);
    assert_eq!(dials(&actions(&mut node)), vec![addr(1)]);
    node.handle(Event::DialFailed { addr: addr(1), try_hosts: vec![SocketAddr::V4(addr(2))] }, now);
    node.handle_timeout(now + TICK);
    assert_eq!(dials(&actions(&mut node)), vec![addr(2)]);
}

#[test]
fn without_discovery_only_the_users_peers_are_dialed() {
    let now = Instant::now();
    let config =
        Config { discover: false, peers: vec![addr(1)], gwebcaches: vec!["http://gwc".into()], ..Config::default() };
    let mut node = node_with(config, now);
    node.handle(Event::HostsLearned(vec![addr(2), addr(3)]), now);
    node.handle_timeout(now);
    let taken = actions(&mut node);
    assert_eq!(dials(&taken), vec![addr(1)]);
    assert!(!taken.iter().any(|a| matches!(a, Action::AskGWebCaches(_))));
}

#[test]
fn gwebcaches_are_asked_when_nobody_is_left_to_dial_at_most_every_ten_minutes() {
    let now = Instant::now();
    let mut node = node_with(Config { gwebcaches: vec!["http://gwc".into()], ..Config::default() }, now);
    node.handle_timeout(now);
    assert_eq!(actions(&mut node), vec![Action::AskGWebCaches(vec!["http://gwc".into()])]);
    node.handle_timeout(now + Duration::from_secs(60));
    assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::AskGWebCaches(_))));
    node.handle_timeout(now + GWEBCACHE_INTERVAL);
    assert_eq!(actions(&mut node).len(), 1);
    node.handle(Event::HostsLearned(vec![addr(5)]), now + GWEBCACHE_INTERVAL);
    node.handle_timeout(now + GWEBCACHE_INTERVAL + TICK);
    assert_eq!(dials(&actions(&mut node)), vec![addr(5)]);
}

#[test]
fn our_own_address_is_never_dialed() {
    let now = Instant::now();
    let mut node = node(now);
    node.handle(Event::HostsLearned(vec![addr(100)]), now);
    node.handle_timeout(now);
    assert!(dials(&actions(&mut node)).is_empty());
}

#[test]
fn query_is_answered_through_a_library_lookup() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::Message { peer: PeerId(1), message: query("seblinux base", vec![]) }, now);
    let taken = actions(&mut node);
    let [Action::LookUp { lookup, query }] = taken.as_slice() else { panic!("{taken:?}") };
    assert_eq!(query.words, "seblinux base");
    assert_eq!(query.limit, MAX_LOCAL_RESULTS);
    node.handle(Event::LocalResults { lookup: *lookup, files: vec![shared_file("seblinux-base.tar")] }, now);
    let taken = actions(&mut node);
    let [Action::Send { to: PeerId(1), message }] = taken.as_slice() else { panic!("{taken:?}") };
    assert_eq!(message.guid, Guid([9; 16]));
    assert_eq!((message.ttl, message.hops), (2, 0), "a reply travels as far as its query came");
    let Payload::QueryHit(hit) = &message.payload else { panic!("not a hit") };
    assert_eq!((hit.ip, hit.port), (*addr(100).ip(), 6346));
    assert_eq!(hit.servent_guid, node.guid());
    assert_eq!(hit.results[0].urns, vec![Urn::Sha1([1; 20]), Urn::Sha256([2; 32])]);
}

#[test]
fn nothing_found_is_not_answered() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::Message { peer: PeerId(1), message: query("nothing", vec![]) }, now);
    let Some(Action::LookUp { lookup, .. }) = node.poll_action() else { panic!("no lookup") };
    node.handle(Event::LocalResults { lookup, files: vec![] }, now);
    assert!(actions(&mut node).is_empty());
}

#[test]
fn answer_for_a_peer_gone_meanwhile_is_dropped() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::Message { peer: PeerId(1), message: query("seblinux", vec![]) }, now);
    let Some(Action::LookUp { lookup, .. }) = node.poll_action() else { panic!("no lookup") };
    node.handle(Event::Closed { peer: PeerId(1), reason: "gone".into() }, now);
    actions(&mut node);
    node.handle(Event::LocalResults { lookup, files: vec![shared_file("seblinux.tar")] }, now);
    assert!(actions(&mut node).is_empty());
}

#[test]
fn no_lookup_before_we_know_the_address_a_hit_must_name() {
    let now = Instant::now();
    let mut node = node_with(Config::default(), now);
    assert!(node.advertised().ip().is_unspecified());
    let connected = Connected {
        peer: PeerId(1),
        addr: SocketAddr::V4(addr(1)),
        local: SocketAddr::V6("[::1]:6346".parse().unwrap()),
        info: PeerInfo::default(),
        direction: Direction::Incoming,
        dialed: None,
    };
    node.handle(Event::Connected(Box::new(connected)), now);
    actions(&mut node);
    node.handle(Event::Message { peer: PeerId(1), message: query("seblinux", vec![]) }, now);
    assert!(actions(&mut node).is_empty());
}

#[test]
fn lookups_under_way_are_bounded() {
    let now = Instant::now();
    let mut node = node(now);
    connect(&mut node, 1, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1)), now);
    actions(&mut node);
    let mut lookups = 0;
    for n in 0..MAX_PENDING_LOOKUPS + 10 {
        let mut message = query(&format!("seblinux {n}"), vec![]);
        message.guid = Guid::from_rng(&mut StdRng::seed_from_u64(n as u64));
        node.handle(Event::Message { peer: PeerId(1), message }, now + Duration::from_secs(n as u64));
        lookups += actions(&mut node).iter().filter(|a| matches!(a, Action::LookUp { .. })).count();
    }
    assert_eq!(lookups, MAX_PENDING_LOOKUPS);
}

#[test]
fn advertised_address_is_learned_from_the_first_connection() {
    let now = Instant::now();
    let mut node = node_with(Config::default(), now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    let taken = actions(&mut node);
    assert_eq!(taken[0], Action::Advertise(addr(100)));
    assert_eq!(node.advertised(), addr(100));
    // The first Ping's Pongs name us there from now on.
    let ping = Message { guid: Guid([4; 16]), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) };
    node.handle(Event::Message { peer: PeerId(1), message: ping }, now);
    let pong = actions(&mut node).into_iter().find_map(|a| match a {
        Action::Send { message: Message { payload: Payload::Pong(pong), .. }, .. } => Some(pong),
        _ => None,
    });
    assert_eq!(pong.map(|p| p.ip), Some(*addr(100).ip()));
}

#[test]
fn malformed_link_gets_a_bye_and_is_let_go() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::Malformed { peer: PeerId(1), error: "bad header".into() }, now);
    let taken = actions(&mut node);
    let [Action::Close { peer: PeerId(1), bye: Some(bye), .. }] = taken.as_slice() else { panic!("{taken:?}") };
    assert!(matches!(&bye.payload, Payload::Bye(b) if b.code == 400));
    assert_eq!(node.peers().count(), 0);
    assert_eq!(node.totals().dropped_total(), 1);
}

#[test]
fn timer_fires_every_tick_and_hands_out_the_host_cache_every_minute() {
    let now = Instant::now();
    let mut node = node_with(Config { persist_hosts: true, ..Config::default() }, now);
    node.handle(Event::HostsLearned(vec![addr(1), addr(2)]), now);
    node.handle(Event::DialFailed { addr: addr(1), try_hosts: vec![] }, now);
    node.handle_timeout(now);
    assert_eq!(node.poll_timeout(), Some(now + TICK));
    actions(&mut node);
    node.handle_timeout(now + HOST_CACHE_SAVE_INTERVAL);
    let saved: Vec<String> = actions(&mut node)
        .into_iter()
        .filter_map(|a| if let Action::SaveHosts(t) = a { Some(t) } else { None })
        .collect();
    assert_eq!(saved.len(), 1);
    let mut restored = node_with(Config::default(), now);
    restored.restore_hosts(&saved[0]);
    assert_eq!(restored.known_hosts(), 1, "a host that failed is not kept");
}

#[test]
fn a_restored_host_cache_keeps_the_hosts_that_worked_and_refuses_what_it_would_not_dial() {
    let now = Instant::now();
    let mut node = node_with(Config { persist_hosts: true, discover: false, ..Config::default() }, now);
    node.restore_hosts(&format!("127.0.0.1:6346 worked\n10.1.1.1:6346\n{} worked\n{}\n", addr(1), addr(2)));
    assert_eq!(node.known_hosts(), 2, "loopback and private addresses from the file are not kept");
    node.shutdown();
    let saved: Vec<String> = actions(&mut node)
        .into_iter()
        .filter_map(|a| if let Action::SaveHosts(t) = a { Some(t) } else { None })
        .collect();
    assert_eq!(saved, vec![format!("{} worked\n{}\n", addr(1), addr(2))]);
}

#[test]
fn host_cache_is_not_handed_out_without_a_place_to_keep_it() {
    let now = Instant::now();
    let mut node = node_with(Config::default(), now);
    node.handle_timeout(now + HOST_CACHE_SAVE_INTERVAL);
    node.shutdown();
    assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::SaveHosts(_))));
}

#[test]
fn shutdown_says_bye_to_every_neighbour() {
    let now = Instant::now();
    let mut node = node_with(Config { persist_hosts: true, ..Config::default() }, now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    connect(&mut node, 2, SocketAddr::V4(addr(2)), now);
    actions(&mut node);
    node.shutdown();
    let taken = actions(&mut node);
    let byes = taken.iter().filter(|a| matches!(a, Action::Close { bye: Some(_), .. })).count();
    assert_eq!(byes, 2);
    assert!(matches!(taken.last(), Some(Action::SaveHosts(_))));
}

#[test]
fn a_partial_result_whose_pru_says_it_has_nothing_is_offered_to_no_download() {
    use super::partial::{Partial, PARTIAL_RESULT};
    let now = Instant::now();
    let mut node = node(now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    actions(&mut node);
    let id = node.search("seblinux", 4, now).unwrap();
    actions(&mut node);
    let result = |n: u8, pru: Option<Vec<u8>>| {
        let mut result = QueryResult {
            index: 1,
            size: 10,
            name: "seblinux.tar".into(),
            urns: vec![Urn::Sha1([n; 20])],
            ggep: Default::default(),
        };
        if let Some(pru) = pru {
            result.ggep.insert(PARTIAL_RESULT, pru);
        }
        result
    };
    let results = vec![
        result(1, None),
        result(2, Some(Partial { modified: 1_700_000_000, available: 0 }.encode())),
        result(3, Some(Partial { modified: 1_700_000_000, available: 1 << 20 }.encode())),
        result(4, Some(Vec::new())),
        result(5, Some(vec![0xFF; 30])),
    ];
    let hit = QueryHit {
        port: 6346,
        ip: *addr(1).ip(),
        speed: 1,
        results,
        trailer: None,
        servent_guid: Guid([1; 16]),
        original: Default::default(),
    };
    let message = Message { guid: id, ttl: 3, hops: 1, payload: Payload::QueryHit(hit) };
    node.handle(Event::Message { peer: PeerId(1), message }, now);
    let offered: Vec<Urn> = actions(&mut node)
        .into_iter()
        .filter_map(|a| match a {
            Action::OfferSource { urns, .. } => Some(urns[0]),
            _ => None,
        })
        .collect();
    assert_eq!(offered, [1, 3, 4, 5].map(|n| Urn::Sha1([n; 20])), "all but the one with nothing");
}

#[test]
fn search_floods_a_query_and_collects_its_hits() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    let id = node.search("seblinux", 4, now).unwrap();
    let taken = actions(&mut node);
    assert!(matches!(&taken[..], [Action::Send { to: PeerId(1), message }] if message.guid == id && message.ttl == 4));
    let hit = hit_of_one_file(1, "seblinux.tar", Urn::Sha1([5; 20]));
    let message = Message { guid: id, ttl: 3, hops: 1, payload: Payload::QueryHit(hit) };
    node.handle(Event::Message { peer: PeerId(1), message }, now);
    assert_eq!(
        actions(&mut node),
        vec![Action::OfferSource { urns: vec![Urn::Sha1([5; 20])], source: addr(1), signature: None }]
    );
    assert_eq!(node.search_results(&id).unwrap().results().len(), 1);
    assert!(node.known(&[Urn::Sha1([5; 20])]).is_some());
}

#[test]
fn a_browsed_listing_is_kept_as_a_search_whose_files_are_known_and_nothing_is_sent() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    let hit = hit_of_one_file(2, "browsed.tar", Urn::Sha1([6; 20]));
    let id = node.browsed("browse 192.0.2.2:6346".into(), &[hit], now);
    assert_eq!(actions(&mut node), Vec::new(), "a browse sends nothing to the network");
    let listing = node.search_results(&id).unwrap();
    assert_eq!((listing.text.as_str(), listing.results().len()), ("browse 192.0.2.2:6346", 1));
    assert_eq!(node.known(&[Urn::Sha1([6; 20])]).unwrap().sources, vec![addr(2)]);
}

/// The user browses a servent on their own LAN by its address (the
/// browse's listing names it as every file's source: `NodeHandle::browse`)
/// and downloads a file of it. The user named that address: the download
/// should dial it, as a magnet's or `--peer`'s are. The dial rule turns it
/// into a push-only key that no PUSH target backs (a browse teaches none),
/// so the download has no source it can reach; before the rule it dialed.
#[test]
fn a_file_of_a_browsed_lan_servent_is_downloaded_from_the_address_the_user_named() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    let mut hit = hit_of_one_file(2, "browsed.tar", Urn::Sha1([6; 20]));
    let lan = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 20), 6346);
    hit.ip = *lan.ip();
    node.browsed(format!("browse {lan}"), &[hit], now);
    assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::PushSource { .. })), "no PUSH target taught");
    assert_eq!(node.known(&[Urn::Sha1([6; 20])]).unwrap().sources, vec![lan]);
}

#[test]
fn empty_or_long_search_is_refused() {
    let now = Instant::now();
    let mut node = node(now);
    assert!(node.search("  ", 4, now).is_err());
    assert!(node.search(&"a".repeat(wire::MAX_CRITERIA + 1), 4, now).is_err());
}

fn requeries_sent(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Send { message: Message { payload: Payload::Query(q), .. }, .. } if q.urns == vec![Urn::Sha1([5; 20])]))
        .count()
}

#[test]
fn fetching_download_requeries_without_taking_a_search_slot_and_a_paused_one_does_not() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    let urn = Urn::Sha1([5; 20]);
    node.handle(Event::DownloadStarted { id: 1, urn, searched: true }, now);
    node.handle_timeout(now);
    assert_eq!(requeries_sent(&actions(&mut node)), 0, "its search has just asked");
    assert!(node.poll_timeout() <= Some(now + REQUERY_INTERVAL));
    let later = now + REQUERY_INTERVAL;
    node.handle_timeout(later);
    let taken = actions(&mut node);
    assert_eq!(requeries_sent(&taken), 1);
    let Some(Action::Send { message, .. }) = taken.iter().find(|a| matches!(a, Action::Send { .. })) else { panic!() };
    assert!(node.search_results(&message.guid).is_none(), "a re-query is no search of the user's");
    node.handle(Event::DownloadPhase { id: 1, urn, phase: Phase::Waiting }, later);
    node.handle_timeout(later + 3 * REQUERY_INTERVAL);
    assert_eq!(requeries_sent(&actions(&mut node)), 0);
    node.handle(Event::DownloadPhase { id: 1, urn, phase: Phase::Fetching }, later + 3 * REQUERY_INTERVAL);
    node.handle_timeout(later + 3 * REQUERY_INTERVAL);
    assert_eq!(requeries_sent(&actions(&mut node)), 1, "a resumed download asks at once");
}

#[test]
fn download_resumed_at_start_requeries_at_once() {
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::DownloadPhase { id: 3, urn: Urn::Sha1([5; 20]), phase: Phase::Fetching }, now);
    node.handle_timeout(now);
    assert_eq!(requeries_sent(&actions(&mut node)), 1);
}

#[test]
fn same_seed_and_events_give_the_same_actions() {
    let run = |seed: u64| {
        let mut net = Net::new(4, Config::default(), seed);
        net.nodes[0].connect(Net::addr(1), net.now);
        net.nodes[1].connect(Net::addr(2), net.now);
        net.nodes[2].connect(Net::addr(3), net.now);
        net.run_for(Duration::from_secs(5));
        let now = net.now;
        net.nodes[0].search("anything", 4, now).unwrap();
        net.run_for(Duration::from_secs(40));
        format!("{:?}", net.received)
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn search_crosses_a_chain_of_nodes_and_hits_come_back() {
    let mut net = Net::new(4, Config::default(), 1);
    for i in 0..3 {
        net.nodes[i].connect(Net::addr(i + 1), net.now);
    }
    net.share(3, "seblinux-base-1.0.tar", 9);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.nodes[1].peers().count(), 2);
    let now = net.now;
    let id = net.nodes[0].search("seblinux base", 4, now).unwrap();
    net.run_for(Duration::from_secs(1));
    let search = net.nodes[0].search_results(&id).unwrap();
    assert_eq!(search.results().len(), 1);
    assert_eq!(search.results()[0].sources, vec![Net::addr(3)]);
    // 3 hops there and back at 20 ms each.
    assert_eq!(search.first_hit_after, Some(Duration::from_millis(120)));
}

#[test]
fn neighbours_are_pinged_every_thirty_seconds() {
    let mut net = Net::new(2, Config::default(), 1);
    net.nodes[0].connect(Net::addr(1), net.now);
    net.run_for(Duration::from_secs(1));
    let pings = |net: &Net| net.received[1].iter().filter(|(_, m)| matches!(m.payload, Payload::Ping(_))).count();
    let first = pings(&net);
    assert_eq!(first, 1, "a new neighbour is pinged at once");
    net.run_for(PING_INTERVAL + Duration::from_secs(1));
    assert_eq!(pings(&net), 2);
}

#[test]
fn a_full_node_sends_the_dialer_elsewhere() {
    let mut net = Net::new(3, Config { max_peers: 1, ..Config::default() }, 1);
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(1));
    net.nodes[2].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.nodes[0].peers().count(), 1);
    assert_eq!(net.nodes[2].peers().count(), 0);
    assert!(net.hits_received(2).is_empty());
}

#[test]
fn requery_waits_for_a_neighbour_to_hear_it() {
    let now = Instant::now();
    let mut node = node(now);
    node.handle(Event::DownloadPhase { id: 3, urn: Urn::Sha1([5; 20]), phase: Phase::Fetching }, now);
    assert_eq!(node.poll_timeout(), Some(now), "only the first tick is due");
    node.handle_timeout(now);
    assert_eq!(node.poll_timeout(), Some(now + TICK), "no re-query is due without a neighbour");
    let later = now + Duration::from_secs(5);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), later);
    assert_eq!(node.poll_timeout(), Some(now), "the held re-query is due at once");
    actions(&mut node);
    node.handle_timeout(later);
    assert_eq!(requeries_sent(&actions(&mut node)), 1);
}

#[test]
fn two_servents_in_auto_mode_start_as_leaves_and_the_reachable_one_becomes_their_ultrapeer() {
    // The in-memory net's addresses are private: a test network, where a
    // connection from one counts for the firewall check (--dial-local).
    let auto = Config { role: Role::Leaf, auto_role: true, discover: false, dial_local: true, ..Config::default() };
    let mut net = Net::new(2, auto, 1);
    net.nodes[0].connect(Net::addr(1), net.now);
    net.run_for(Duration::from_secs(2));
    let roles = |net: &Net, i: usize| net.nodes[i].peers().map(|(_, p)| p.role).collect::<Vec<_>>();
    assert_eq!(roles(&net, 1), [], "two leaves do not link");
    net.run_for(promotion::SHORTAGE_WAIT + Duration::from_secs(60));
    assert_eq!(roles(&net, 0), [Role::Ultrapeer], "node 1 was reached, so it became the ultrapeer");
    assert_eq!(roles(&net, 1), [Role::Leaf]);
    let announced: Vec<&Action> = net.other[1].iter().filter(|a| matches!(a, Action::Role { .. })).collect();
    assert_eq!(announced.last(), Some(&&Action::Role { role: Role::Ultrapeer, may_become_leaf: false }));
}

#[test]
fn an_auto_ultrapeer_asked_to_be_a_leaf_becomes_one() {
    let now = Instant::now();
    let config = Config { listen: SocketAddr::V4(addr(100)), auto_role: true, ..Config::default() };
    let mut node = node_with(config, now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    node.handle_timeout(now);
    assert!(actions(&mut node).contains(&Action::Role { role: Role::Ultrapeer, may_become_leaf: true }));
    let headers = vec![("X-Ultrapeer".to_string(), "True".to_string())];
    let info = PeerInfo { ultrapeer: true, demoted: true, headers, ..PeerInfo::default() };
    let connected = Connected {
        peer: PeerId(2),
        addr: SocketAddr::V4(addr(2)),
        local: SocketAddr::V4(addr(100)),
        info,
        direction: Direction::Outgoing,
        dialed: None,
    };
    node.handle(Event::Connected(Box::new(connected)), now);
    let taken = actions(&mut node);
    assert!(taken.contains(&Action::Role { role: Role::Leaf, may_become_leaf: false }));
    assert!(taken.iter().any(|a| matches!(a, Action::Close { peer: PeerId(1), .. })), "the links of the old role go");
    assert_eq!(node.peers().map(|(id, _)| id).collect::<Vec<_>>(), [PeerId(2)]);
}

#[test]
fn handshakes_under_way_count_against_max_peers_and_one_link_per_address() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 16, discover: false, ..Config::default() }, now);
    let admitted: Vec<SocketAddr> = (0..200u16)
        .map(|i| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, (i % 40) as u8, 1), 1000 + i)))
        .filter(|remote| !matches!(node.admit_incoming(*remote, now).0, Admission::Full { .. }))
        .collect();
    assert_eq!(admitted.len(), 16);
    let ips: BTreeSet<_> = admitted.iter().map(SocketAddr::ip).collect();
    assert_eq!(ips.len(), 16, "one handshake per address");
    // A failed handshake gives its room back.
    node.handle(Event::HandshakeFailed { remote: admitted[0] }, now);
    assert_eq!(node.admit(SocketAddr::V4(addr(200))).0, Admission::Accept);
    // So does one whose end never came, once it has timed out.
    node.handle_timeout(now + 3 * INCOMING_HANDSHAKE_TIMEOUT);
    assert_eq!(node.admit(SocketAddr::V4(addr(201))).0, Admission::Accept);
}

#[test]
fn ultrapeer_asked_to_be_a_leaf_that_links_as_an_ultrapeer_is_closed() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 1, max_leaves: 5, ..Config::default() }, now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    let remote = SocketAddr::V4(addr(2));
    assert!(matches!(node.admit_incoming(remote, now).0, Admission::LeavesOnly { .. }));
    actions(&mut node);
    let info = PeerInfo { ultrapeer: true, ..PeerInfo::default() };
    let connected =
        Connected { peer: PeerId(2), addr: remote, local: remote, info, direction: Direction::Incoming, dialed: None };
    node.handle(Event::Connected(Box::new(connected)), now);
    assert_eq!(node.peers().count(), 1);
    assert!(actions(&mut node).iter().any(|a| matches!(a, Action::Close { peer: PeerId(2), bye: Some(_), .. })));
}

#[test]
fn local_and_own_addresses_from_the_network_are_not_kept_unless_allowed() {
    let now = Instant::now();
    let listen = SocketAddrV4::new(Ipv4Addr::new(81, 2, 69, 160), 6346);
    let local = [
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346),
        SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 2), 6346),
        SocketAddrV4::new(*listen.ip(), 8080),
    ];
    let mut node = node_with(Config { listen: SocketAddr::V4(listen), ..Config::default() }, now);
    node.handle(Event::HostsLearned(local.to_vec()), now);
    assert_eq!(node.known_hosts(), 0);
    let mut node = node_with(Config { listen: SocketAddr::V4(listen), dial_local: true, ..Config::default() }, now);
    node.handle(Event::HostsLearned(local.to_vec()), now);
    assert_eq!(node.known_hosts(), 3);
}

#[test]
fn one_network_block_gets_a_few_links_at_most() {
    let now = Instant::now();
    let mut node = node_with(Config { discover: false, ..Config::default() }, now);
    for n in 1..=MAX_LINKS_PER_PREFIX as u8 {
        let remote = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, n), 6346));
        assert_eq!(node.admit_incoming(remote, now).0, Admission::Accept);
    }
    let next = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 200), 6346));
    assert!(matches!(node.admit(next).0, Admission::Full { .. }));
    assert_eq!(node.admit(SocketAddr::V4(addr(1))).0, Admission::Accept);
}

#[test]
fn an_ultrapeer_that_discovers_keeps_slots_for_links_it_opens() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 8, ..Config::default() }, now);
    let admitted = (1..=8u8)
        .map(|n| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, n, 1), 6346)))
        .filter(|remote| node.admit_incoming(*remote, now).0 == Admission::Accept)
        .count();
    assert_eq!(admitted, 6);
}

#[test]
fn the_users_peer_takes_the_slot_of_the_least_useful_incoming_link() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 2, discover: false, ..Config::default() }, now);
    connect(&mut node, 1, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 6346)), now);
    connect(&mut node, 2, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 1), 6346)), now);
    node.handle_timeout(now);
    actions(&mut node);
    // Peer 1 has been useful: it sent a QueryHit.
    let hit = QueryHit {
        port: 6346,
        ip: Ipv4Addr::new(198, 18, 9, 9),
        speed: 0,
        results: vec![],
        trailer: None,
        servent_guid: Guid([3; 16]),
        original: Default::default(),
    };
    node.handle(
        Event::Message {
            peer: PeerId(1),
            message: Message { guid: Guid([4; 16]), ttl: 2, hops: 0, payload: Payload::QueryHit(hit) },
        },
        now,
    );
    let later = now + Duration::from_secs(1);
    node.connect(addr(50), later);
    let done = actions(&mut node);
    assert_eq!(dials(&done), vec![addr(50)]);
    assert!(!done.iter().any(|a| matches!(a, Action::Close { .. })), "nobody gives way before the link is up");
    let linked = Connected {
        peer: PeerId(3),
        addr: SocketAddr::V4(addr(50)),
        local: SocketAddr::V4(addr(100)),
        info: PeerInfo::default(),
        direction: Direction::Outgoing,
        dialed: Some(addr(50)),
    };
    node.handle(Event::Connected(Box::new(linked)), later);
    let done = actions(&mut node);
    assert!(done.iter().any(|a| matches!(a, Action::Close { peer: PeerId(2), .. })), "{done:?}");
    assert_eq!(node.peers().map(|(id, _)| id).collect::<Vec<_>>(), vec![PeerId(1), PeerId(3)]);
}

#[test]
fn a_dead_users_peer_evicts_nobody_at_its_retries() {
    let now = Instant::now();
    let mut node = node_with(Config { max_peers: 2, discover: false, ..Config::default() }, now);
    connect(&mut node, 1, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 6346)), now);
    connect(&mut node, 2, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 1), 6346)), now);
    node.connect(addr(50), now);
    let mut retries = 0;
    let mut at = now;
    for _ in 0..2000 {
        let done = actions(&mut node);
        assert!(!done.iter().any(|a| matches!(a, Action::Close { .. })), "an incoming link was evicted: {done:?}");
        for dead in dials(&done) {
            retries += 1;
            node.handle(Event::DialFailed { addr: dead, try_hosts: vec![] }, at);
        }
        at += TICK;
        node.handle_timeout(at);
    }
    assert!(retries >= 3, "the user's peer is retried ({retries} times)");
    assert_eq!(node.peers().count(), 2);
}

#[test]
fn a_file_being_downloaded_is_answered_as_a_partial_result() {
    use super::partial::{Partial, PartialResult, PARTIAL_RESULT};
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::Message { peer: PeerId(1), message: query_wanting_partials("seblinux") }, now);
    let Some(Action::LookUp { lookup, .. }) = node.poll_action() else { panic!("no lookup") };
    let shared = search::SharedFile { sha1: Urn::Sha1([7; 20]), ..shared_file("seblinux-base.tar") };
    let downloading =
        PartialResult { file: shared_file("seblinux-next.tar"), available: 3 << 20, modified: 1_700_000_000 };
    node.handle(Event::LocalPartialResults { lookup, files: vec![shared], partials: vec![downloading] }, now);
    let taken = actions(&mut node);
    let [Action::Send { message, .. }] = taken.as_slice() else { panic!("{taken:?}") };
    let Payload::QueryHit(hit) = &message.payload else { panic!("not a hit") };
    let names: Vec<&str> = hit.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["seblinux-base.tar", "seblinux-next.tar"]);
    assert_eq!(hit.results[0].ggep.get(PARTIAL_RESULT), None, "a shared file is whole");
    let pru = hit.results[1].ggep.get(PARTIAL_RESULT).expect("the partial file is flagged");
    assert_eq!(Partial::decode(pru), Some(Partial { modified: 1_700_000_000, available: 3 << 20 }));
    // On the wire and back, as a downloader reads it.
    let decoded = crate::wire::decode(&message.encode()).unwrap();
    let Payload::QueryHit(hit) = decoded.payload else { panic!("not a hit") };
    assert!(hit.results[1].ggep.get("PRU").is_some());
}

/// A servent that did not ask for partial results (no `PR`: LimeWire and
/// gtk-gnutella answer it with whole files only) is not offered a file we
/// are still downloading: it would take us for a whole source.
#[test]
fn a_query_without_pr_is_answered_with_whole_files_only() {
    use super::partial::{PartialResult, PARTIAL_RESULT};
    let now = Instant::now();
    let mut node = node_with_a_neighbour(now);
    node.handle(Event::Message { peer: PeerId(1), message: query("seblinux", vec![]) }, now);
    let Some(Action::LookUp { lookup, .. }) = node.poll_action() else { panic!("no lookup") };
    let shared = search::SharedFile { sha1: Urn::Sha1([7; 20]), ..shared_file("seblinux-base.tar") };
    let downloading =
        PartialResult { file: shared_file("seblinux-next.tar"), available: 3 << 20, modified: 1_700_000_000 };
    node.handle(Event::LocalPartialResults { lookup, files: vec![shared], partials: vec![downloading.clone()] }, now);
    let taken = actions(&mut node);
    let [Action::Send { message, .. }] = taken.as_slice() else { panic!("{taken:?}") };
    let Payload::QueryHit(hit) = &message.payload else { panic!("not a hit") };
    let names: Vec<&str> = hit.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["seblinux-base.tar"]);
    assert!(hit.results.iter().all(|r| r.ggep.get(PARTIAL_RESULT).is_none()));

    // Only a file being downloaded: no hit at all.
    let another = Message { guid: Guid([10; 16]), ..query("seblinux next", vec![]) };
    node.handle(Event::Message { peer: PeerId(1), message: another }, now);
    let Some(Action::LookUp { lookup, .. }) = node.poll_action() else { panic!("no lookup") };
    node.handle(Event::LocalPartialResults { lookup, files: vec![], partials: vec![downloading] }, now);
    assert_eq!(actions(&mut node), []);
}

#[test]
fn partial_results_fit_the_hit_payload_target_with_their_pru() {
    use super::partial::{PartialResult, PARTIAL_RESULT};
    let file = |n: u8, len: usize| search::SharedFile {
        sha1: Urn::Sha1([n; 20]),
        ..shared_file(&format!("seblinux-{n}-{}.tar", "x".repeat(len)))
    };
    // The longest names with which two whole files still share one hit:
    // their PRU then takes the pair past the target.
    let shares_one_hit =
        |len: usize| super::query_hits(vec![file(1, len), file(2, len)], addr(1), Guid([1; 16]), false, &[]).len() == 1;
    let len = (100..3000).take_while(|&len| shares_one_hit(len)).last().expect("two short names share a hit");
    let now = Instant::now();
    let mut node = node(now);
    connect(&mut node, 1, SocketAddr::V4(addr(1)), now);
    actions(&mut node);
    node.handle(Event::Message { peer: PeerId(1), message: query_wanting_partials("seblinux") }, now);
    let Some(Action::LookUp { lookup, .. }) = node.poll_action() else { panic!("no lookup") };
    let partials: Vec<PartialResult> =
        (1..=2).map(|n| PartialResult { file: file(n, len), available: u64::MAX >> 8, modified: u32::MAX }).collect();
    node.handle(Event::LocalPartialResults { lookup, files: vec![], partials }, now);
    let mut flagged = 0;
    for action in actions(&mut node) {
        let Action::Send { message, .. } = action else { continue };
        let payload = message.encode().len() - crate::wire::HEADER_LEN;
        assert!(payload <= crate::wire::HIT_PAYLOAD, "a hit of {payload} bytes");
        let Payload::QueryHit(hit) = &message.payload else { panic!("not a hit") };
        flagged += hit.results.iter().filter(|r| r.ggep.get(PARTIAL_RESULT).is_some()).count();
    }
    assert_eq!(flagged, 2);
}

#[test]
fn attack_a_stalled_handshake_is_not_cut_for_a_newcomer_it_makes_no_room_for() {
    let now = Instant::now();
    let config = Config { max_peers: 2, max_leaves: 4, discover: false, ..Config::default() };
    let mut node = node_with(config, now);
    for n in 1..=2 {
        connect(&mut node, n as u64, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 51, n as u8, 1), 6346)), now);
    }
    actions(&mut node);
    let slow = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 6346));
    assert!(matches!(node.admit_incoming(slow, now).0, Admission::LeavesOnly { .. }));
    let newcomer = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 77), 6346));
    let answer = node.admit_incoming(newcomer, now + STALLED_HANDSHAKE).0;
    let cut: Vec<_> = actions(&mut node).into_iter().filter(|a| matches!(a, Action::GiveWay(_))).collect();
    assert!(cut.is_empty(), "cut for nothing: the newcomer's answer ({answer:?}) is the same");
}
