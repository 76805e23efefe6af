//! Dynamic querying and vendor messages through whole nodes, on the
//! in-memory net in virtual time.

use std::time::Duration;

use super::super::testing::Net;
use super::*;
use crate::node::{Config, Event};
use crate::wire::vendor::MessagesSupported;

fn ultrapeer() -> Config {
    // X-Max-TTL 4, as deployed ultrapeers say.
    Config { max_peers: 30, max_leaves: 30, max_ttl: 4, discover: false, ..Config::default() }
}

fn leaf() -> Config {
    Config { role: Role::Leaf, discover: false, ..Config::default() }
}

/// Makes node `i` of `net` a leaf.
fn make_leaf(net: &mut Net, i: usize) {
    let config = Config { listen: std::net::SocketAddr::V4(Net::addr(i)), ..leaf() };
    let trust = crate::trust::SharedTrust::new(crate::trust::TrustStore::in_memory());
    net.nodes[i] = Node::new(config, rand::SeedableRng::seed_from_u64(11), trust, (0, 0), net.now);
}

/// Node 0 with ultrapeers 1..`count` around it, linked up.
fn star(count: usize) -> Net {
    let mut net = Net::new(count, ultrapeer(), 3);
    for i in 1..count {
        net.nodes[0].connect(Net::addr(i), net.now);
    }
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.nodes[0].peers().count(), count - 1);
    net
}

fn queries_received(net: &Net, i: usize) -> usize {
    net.received[i].iter().filter(|(_, m)| matches!(m.payload, Payload::Query(_))).count()
}

fn vendor_received(net: &Net, i: usize, kind: Kind) -> Vec<Vendor> {
    net.received[i]
        .iter()
        .filter_map(|(_, m)| Vendor::from_payload(&m.payload).and_then(Result::ok))
        .filter(|v| v.kind == kind)
        .collect()
}

#[test]
fn every_link_starts_with_our_messages_supported() {
    let net = star(3);
    for i in 1..3 {
        let first = net.received[i].first().map(|(_, m)| Vendor::from_payload(&m.payload));
        let Some(Some(Ok(vendor))) = first else { panic!("node {i} got no vendor message first") };
        assert_eq!(vendor.kind, Kind::MESSAGES_SUPPORTED);
        assert_eq!(MessagesSupported::decode(&vendor.body).unwrap().kinds, vendor::ANNOUNCED);
    }
}

#[test]
fn a_search_stops_widening_once_the_probe_brought_enough() {
    let mut net = star(9);
    for i in 1..=3 {
        for n in 0..60 {
            net.share(i, &format!("linux-{i}-{n}.tar"), (i * 60 + n) as u8);
        }
    }
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    let id = net.nodes[0].search("linux", None, now).unwrap();
    net.run_for(Duration::from_secs(120));
    assert!(net.nodes[0].search_results(&id).unwrap().results().len() >= dynamic::OWN_RESULTS);
    assert_eq!((1..=3).map(|i| queries_received(&net, i)).sum::<usize>(), 3, "the probe: the three matching tables");
    assert_eq!((4..9).map(|i| queries_received(&net, i)).sum::<usize>(), 0, "enough results: no one else asked");
    // The expert's --ttl floods it to every neighbour at once.
    let now = net.now;
    net.nodes[0].search("linux", Some(2), now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!((4..9).map(|i| queries_received(&net, i)).sum::<usize>(), 5);
}

#[test]
fn without_results_a_search_reaches_one_more_neighbour_per_wait() {
    let mut net = star(9);
    let now = net.now;
    net.nodes[0].search("nothing", None, now).unwrap();
    net.run_for(Duration::from_secs(1));
    let asked = |net: &Net| (1..9).filter(|&i| queries_received(net, i) > 0).count();
    assert_eq!(asked(&net), 3, "the probe");
    net.run_for(dynamic::PROBE_TIMEOUT * 3 + dynamic::RESULT_TIMEOUT * 3);
    assert_eq!(asked(&net), 4, "one more after the probe's wait");
    net.run_for(dynamic::RESULT_TIMEOUT * 6);
    assert_eq!(asked(&net), 8, "then one per wait, until every neighbour had it");
    let ttls: Vec<u8> =
        net.received[8].iter().filter(|(_, m)| matches!(m.payload, Payload::Query(_))).map(|(_, m)| m.ttl).collect();
    assert_eq!(ttls, vec![4], "no results: as far as the neighbour takes");
}

#[test]
fn a_leafs_query_is_run_dynamically_under_its_guidance() {
    let mut net = Net::new(8, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.share(1, "some-file.tar", 1);
    for n in 0..25 {
        net.share(7, &format!("nowhere-{n}.tar"), 100 + n);
    }
    for i in 2..8 {
        net.nodes[0].connect(Net::addr(i), net.now);
    }
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.nodes[0].peers().filter(|(_, p)| p.role == Role::Leaf).count(), 1);
    let now = net.now;
    let id = net.nodes[1].search("nowhere", None, now).unwrap();
    net.run_for(Duration::from_secs(1));
    let (_, sent) = net.received[0].iter().find(|(_, m)| m.guid == id).expect("the leaf's query");
    let Payload::Query(query) = &sent.payload else { panic!("not a query") };
    assert!(query.flags.is_leaf_guided());
    assert_eq!((2..8).filter(|&i| queries_received(&net, i) > 0).count(), 3, "the probe, not a flood");
    net.run_for(Duration::from_secs(60));
    // Asked once three ultrapeers had it and twenty results came through us
    // (fewer we count ourselves), and no more: nothing new came since.
    assert_eq!(vendor_received(&net, 1, Kind::QUERY_STATUS_REQUEST).len(), 1);
    let answers = vendor_received(&net, 0, Kind::QUERY_STATUS_RESPONSE);
    assert_eq!(answers.len(), 1);
    assert_eq!(QueryStatus::decode(&answers[0].body), Ok(QueryStatus(25)), "the sources it kept");
    assert_eq!((2..8).filter(|&i| queries_received(&net, i) > 0).count(), 6, "guided on to every ultrapeer");
}

#[test]
fn a_leaf_that_shares_nothing_asks_for_no_queries_and_is_sent_none() {
    let mut net = Net::new(2, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    let told = vendor_received(&net, 0, Kind::HOPS_FLOW);
    assert_eq!(told, vec![HopsFlow::NONE.to_vendor()]);
    net.share(1, "linux.tar", 1);
    net.run_for(Duration::from_secs(2));
    assert_eq!(vendor_received(&net, 0, Kind::HOPS_FLOW).last(), Some(&HopsFlow::LEAF_OPEN.to_vendor()));
}

#[test]
fn a_leaf_downloading_a_file_asks_for_queries_though_it_shares_nothing() {
    let mut net = Net::new(2, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    assert_eq!(vendor_received(&net, 0, Kind::HOPS_FLOW), vec![HopsFlow::NONE.to_vendor()]);
    // Its table names the file it is downloading (its partial results).
    let table = crate::qrp::RouteTable::from_library(["seblinux-2.0.img"], [&Urn::Sha1([5; 20])]);
    let now = net.now;
    net.nodes[1].handle(Event::LibraryTable(table), now);
    net.run_for(Duration::from_secs(2));
    assert_eq!(vendor_received(&net, 0, Kind::HOPS_FLOW).last(), Some(&HopsFlow::LEAF_OPEN.to_vendor()));
}

#[test]
fn a_peers_hops_flow_holds_back_the_queries_it_refused() {
    let mut net = star(3);
    let flow = vendor::message(Guid([1; 16]), HopsFlow::NONE.to_vendor());
    let peer = net.nodes[0].peers().map(|(id, _)| id).next().unwrap();
    net.nodes[0].handle(crate::node::Event::Message { peer, message: flow }, net.now);
    let now = net.now;
    net.nodes[0].search("anything", Some(3), now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!((1..3).map(|i| queries_received(&net, i)).sum::<usize>(), 1, "one of two peers said Hops Flow 0");
}

#[test]
fn attack_a_leafs_query_asking_for_hits_out_of_band_to_another_address_is_dropped() {
    let mut net = Net::new(4, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    for i in 2..4 {
        net.nodes[0].connect(Net::addr(i), net.now);
    }
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    let leaf = net.nodes[0].peers().find(|(_, p)| p.role == Role::Leaf).map(|(id, _)| id).expect("the leaf");
    let query = |victim| {
        let mut query = crate::node::build_query("seblinux").unwrap();
        query.flags = query.flags.with(QueryFlags::OOB_REPLY, true);
        query.ggep.insert(crate::wire::vendor::oob::SO, Vec::new());
        let guid = crate::wire::vendor::oob::oob_guid(victim, Guid([victim.ip().octets()[3]; 16]));
        Message { guid, ttl: 3, hops: 0, payload: Payload::Query(query) }
    };
    let now = net.now;
    net.nodes[0].handle(super::super::Event::Message { peer: leaf, message: query(Net::addr(3)) }, now);
    net.run_for(Duration::from_secs(1));
    assert_eq!(queries_received(&net, 2) + queries_received(&net, 3), 0);
    assert_eq!(net.nodes[0].counters(leaf).unwrap().dropped.get(&routing::Drop::BadReturnAddress), Some(&1));
    // Its own address is fine.
    let now = net.now;
    net.nodes[0].handle(super::super::Event::Message { peer: leaf, message: query(Net::addr(1)) }, now);
    net.run_for(Duration::from_secs(1));
    assert!(queries_received(&net, 2) + queries_received(&net, 3) > 0);
}

#[test]
fn a_leaf_answers_a_status_request_for_its_requery_with_the_sources_it_brought() {
    use crate::node::tests::{actions, connect, node_with, shared_file};
    let now = std::time::Instant::now();
    let listen = std::net::SocketAddr::V4(Net::addr(1));
    let mut node = node_with(Config { listen, ..leaf() }, now);
    connect(&mut node, 1, std::net::SocketAddr::V4(Net::addr(2)), now);
    actions(&mut node);
    node.handle(
        super::super::Event::DownloadStarted { id: 1, urn: crate::wire::Urn::Sha1([5; 20]), searched: false },
        now,
    );
    node.handle_timeout(now);
    let Some(Action::Send { message, .. }) = actions(&mut node).into_iter().find(|a| matches!(a, Action::Send { .. }))
    else {
        panic!("the re-query goes out")
    };
    let guid = message.guid;
    let status = |node: &mut Node| {
        let message = vendor::message(guid, QueryStatus::request());
        node.handle(super::super::Event::Message { peer: PeerId(1), message }, now);
        let sent = actions(node);
        let answer = sent.iter().find_map(|a| match a {
            Action::Send { message, .. } => Vendor::from_payload(&message.payload).and_then(Result::ok),
            _ => None,
        });
        QueryStatus::decode(&answer.expect("an answer").body).unwrap()
    };
    assert_eq!(status(&mut node), QueryStatus(0), "not STOP: it goes on");
    let hit =
        crate::node::query_hits(vec![shared_file("SEBLINUX.tar")], Net::addr(3), Guid([3; 16]), false, &[]).remove(0);
    let message = Message { guid, ttl: 3, hops: 0, payload: Payload::QueryHit(hit) };
    node.handle(super::super::Event::Message { peer: PeerId(1), message }, now);
    actions(&mut node);
    assert_eq!(status(&mut node), QueryStatus(1));
}

#[test]
fn attack_one_leaf_runs_at_most_eight_dynamic_queries_and_ends_none_of_ours() {
    let mut net = Net::new(5, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    for i in 2..5 {
        net.nodes[0].connect(Net::addr(i), net.now);
    }
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    let leaf = net.nodes[0].peers().find(|(_, p)| p.role == Role::Leaf).map(|(id, _)| id).expect("the leaf");
    let now = net.now;
    let ours = net.nodes[0].search("nowhere", None, now).unwrap();
    for n in 0..20u8 {
        let query = crate::node::build_query(&format!("flood{n}")).unwrap();
        let message = Message { guid: Guid([n; 16]), ttl: 3, hops: 0, payload: Payload::Query(query) };
        net.nodes[0].handle(super::super::Event::Message { peer: leaf, message }, now);
    }
    assert_eq!(net.nodes[0].dynamic_queries(), 1 + MAX_DYNAMIC_QUERIES_PER_LEAF);
    assert!(net.nodes[0].querying.running.contains_key(&ours));
    assert!(net.nodes[0].querying.running.contains_key(&Guid([19; 16])), "the leaf's newest run");
}

#[test]
fn a_dynamic_query_skips_the_ultrapeers_whose_hops_flow_refuses_it() {
    let mut net = star(5);
    let peers: Vec<PeerId> = net.nodes[0].peers().map(|(id, _)| id).collect();
    for &peer in &peers[..3] {
        let flow = vendor::message(Guid([1; 16]), HopsFlow::NONE.to_vendor());
        net.nodes[0].handle(crate::node::Event::Message { peer, message: flow }, net.now);
    }
    let now = net.now;
    net.nodes[0].search("anything", None, now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!((1..5).map(|i| queries_received(&net, i)).sum::<usize>(), 1, "the probe went to the one that takes it");
}

#[test]
fn a_query_ending_its_travel_at_an_ultrapeer_still_reaches_its_matching_leaf() {
    let mut net = Net::new(3, ultrapeer(), 5);
    make_leaf(&mut net, 2);
    net.share(2, "linux-kernel.tar", 1);
    net.nodes[1].connect(Net::addr(0), net.now);
    net.nodes[2].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    let id = net.nodes[1].search("linux kernel", Some(1), now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(queries_received(&net, 2), 1, "TTL 1 at the ultrapeer, and on to its leaf");
    assert_eq!(net.nodes[1].search_results(&id).unwrap().results().len(), 1);
    let now = net.now;
    net.nodes[1].search("other words", Some(1), now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(queries_received(&net, 2), 1, "not what its table holds");
}

#[test]
fn attack_a_leaf_repeating_its_query_cannot_make_us_run_it_again() {
    let mut net = Net::new(8, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.share(1, "some-file.tar", 1);
    for i in 2..8 {
        net.nodes[0].connect(Net::addr(i), net.now);
    }
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    // Our leaf repeats nothing (it shows its earlier search): a hostile
    // leaf is played by the expert's TTL, which always goes out.
    for _ in 0..20 {
        let now = net.now;
        net.nodes[1].search("nowhere", Some(4), now).unwrap();
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(1));
    let sent_on = |net: &Net| (2..8).map(|i| queries_received(net, i)).sum::<usize>();
    assert_eq!(sent_on(&net), dynamic::PROBE_ULTRAPEERS, "one probe, not twenty (old code: 60)");
    assert_eq!(net.nodes[0].totals().dropped[&routing::Drop::Requery], 19);
    assert_eq!(net.nodes[0].dynamic_queries(), 1);
    // Another query of the same leaf goes on.
    let now = net.now;
    net.nodes[1].search("elsewhere", Some(4), now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(sent_on(&net), 2 * dynamic::PROBE_ULTRAPEERS);
}

#[test]
fn a_leaf_re_queries_one_urn_at_most_once_per_spacing() {
    let mut net = Net::new(2, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    let urn = crate::wire::Urn::Sha1([5; 20]);
    let now = net.now;
    net.nodes[1].handle(Event::DownloadStarted { id: 1, urn, searched: false }, now);
    net.run_for(crate::requery::REQUERY_INTERVAL * 5);
    assert_eq!(queries_received(&net, 0), 1, "every two minutes due, once sent: the pledge of X-Requeries: False");
    net.run_for(requeries::OWN_REQUERY_SPACING);
    assert_eq!(queries_received(&net, 0), 2);
    assert_eq!(net.nodes[0].totals().dropped.get(&routing::Drop::Requery), None, "none the ultrapeer had to drop");
}

/// Ultrapeer 0 with leaf 1 and ultrapeers 2..10 around it; ultrapeers
/// 2..=7 share one file (six sources), 8 and 9 nothing.
fn six_sources_around_a_leaf() -> Net {
    let mut net = Net::new(10, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.share(1, "some-file.tar", 1);
    for i in 2..=7 {
        net.share(i, "SEBLINUX-base-1.0.tar", 42);
    }
    for i in 2..10 {
        net.nodes[0].connect(Net::addr(i), net.now);
    }
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    net
}

#[test]
fn a_leaf_tells_its_ultrapeer_to_stop_once_its_file_has_enough_sources() {
    let mut net = six_sources_around_a_leaf();
    let now = net.now;
    let id = net.nodes[1].search("seblinux base", None, now).unwrap();
    net.run_for(Duration::from_secs(120));
    let results = net.nodes[1].search_results(&id).unwrap().results();
    assert_eq!((results.len(), results[0].sources.len()), (1, satisfied::SATISFIED_SOURCES));
    let told: Vec<QueryStatus> = vendor_received(&net, 0, Kind::QUERY_STATUS_RESPONSE)
        .iter()
        .map(|v| QueryStatus::decode(&v.body).unwrap())
        .collect();
    assert_eq!(told, [QueryStatus::STOP], "said once, unasked (gtk-gnutella's leaf would say 6 and go on)");
    assert_eq!(net.nodes[0].dynamic_queries(), 0, "the dynamic query ended there");
    assert_eq!((8..10).map(|i| queries_received(&net, i)).sum::<usize>(), 0, "no one asked past the file's sources");
}

#[test]
fn an_ultrapeers_own_search_ends_once_its_file_has_enough_sources() {
    let mut net = six_sources_around_a_leaf();
    let now = net.now;
    let id = net.nodes[0].search("seblinux base", None, now).unwrap();
    net.run_for(Duration::from_secs(120));
    assert_eq!(net.nodes[0].search_results(&id).unwrap().results()[0].sources.len(), satisfied::SATISFIED_SOURCES);
    assert_eq!(net.nodes[0].dynamic_queries(), 0);
    assert_eq!((8..10).map(|i| queries_received(&net, i)).sum::<usize>(), 0);
}

#[test]
fn a_leaf_repeating_a_search_is_shown_the_earlier_one_and_sends_nothing() {
    let mut net = six_sources_around_a_leaf();
    let now = net.now;
    let first = net.nodes[1].search("SEBLINUX base", None, now).unwrap();
    net.run_for(Duration::from_secs(120));
    let sent = queries_received(&net, 0);
    let now = net.now;
    let again = net.nodes[1].search("seblinux  BASE", None, now).unwrap();
    net.run_for(Duration::from_secs(10));
    assert_eq!(again, first, "the earlier search, with its results (old code: a new one that found nothing)");
    assert_eq!(net.nodes[1].search_results(&again).unwrap().results().len(), 1);
    assert_eq!(queries_received(&net, 0), sent, "nothing sent: every ultrapeer would drop it");
    assert_eq!(net.nodes[0].totals().dropped.get(&routing::Drop::Requery), None);
    net.run_for(requeries::REQUERY_THRESHOLD);
    let now = net.now;
    let later = net.nodes[1].search("SEBLINUX base", None, now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_ne!(later, first, "past the threshold a search goes out again");
    assert_eq!(queries_received(&net, 0), sent + 1);
}

#[test]
fn a_leafs_search_repeated_once_linked_goes_out_though_the_first_went_nowhere() {
    let mut net = Net::new(2, ultrapeer(), 5);
    make_leaf(&mut net, 1);
    net.share(1, "some-file.tar", 1);
    let now = net.now;
    let alone = net.nodes[1].search("SEBLINUX base", None, now).unwrap();
    net.nodes[1].connect(Net::addr(0), net.now);
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    let linked = net.nodes[1].search("SEBLINUX base", None, now).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_ne!(linked, alone, "no ultrapeer saw the first");
    assert_eq!(queries_received(&net, 0), 1);
}

#[test]
fn attack_an_ultrapeer_relaying_one_query_under_fresh_guids_gets_it_relayed_once_per_half_life() {
    use crate::handshake::PeerInfo;
    use crate::node::tests::{actions, node_with};
    use crate::node::{Connected, Direction};
    let t0 = std::time::Instant::now();
    let mut node = node_with(Config { listen: std::net::SocketAddr::V4(Net::addr(0)), ..ultrapeer() }, t0);
    for peer in 1..=2 {
        let connected = Connected {
            peer: PeerId(peer),
            addr: std::net::SocketAddr::V4(Net::addr(peer as usize)),
            local: std::net::SocketAddr::V4(Net::addr(0)),
            info: PeerInfo::stated(Role::Ultrapeer, 30, 4),
            direction: Direction::Incoming,
            dialed: None,
        };
        node.handle(Event::Connected(Box::new(connected)), t0);
    }
    actions(&mut node);
    let relay = |node: &mut Node, n: u8, ttl: u8, at: std::time::Instant| {
        let query = Payload::Query(crate::wire::Query::words("SEBLINUX base"));
        let message = Message { guid: Guid([n; 16]), ttl, hops: 2, payload: query };
        node.handle(Event::Message { peer: PeerId(1), message }, at);
        let sent = actions(node);
        sent.iter()
            .filter(|a| matches!(a, Action::Send { to: PeerId(2), message } if message.guid == Guid([n; 16])))
            .count()
    };
    let relayed: usize = (0..20).map(|n| relay(&mut node, n, 3, t0 + Duration::from_millis(100 * u64::from(n)))).sum();
    assert_eq!(relayed, 1, "old code: 20");
    assert_eq!(node.totals().dropped[&routing::Drop::Similar], 19);
    assert_eq!(relay(&mut node, 20, 4, t0 + Duration::from_secs(2)), 1, "another TTL is another query");
    assert_eq!(relay(&mut node, 21, 3, t0 + 3 * similar::HALF_LIFE), 1, "forgotten after two half-lives");
}
