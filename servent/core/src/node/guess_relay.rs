//! GUESS queries passed on to our leaves, as gtk-gnutella's ultrapeer does
//! (its leaves share what it answers for): a valid GUESS query that
//! reaches an ultrapeer over UDP goes, TTL 1, to each leaf whose QRP table
//! matches it, and the hits the leaves send back go to the querier over
//! UDP: ours and theirs together at most [`MAX_HIT_DATAGRAMS`], theirs
//! within the UDP budget of all addresses too.
//! The querier's address is proven by its query key, so these hits cannot
//! be aimed at a third party. At most [`MAX_RELAYED`] queries are
//! remembered, each for [`RELAY_LIFETIME`].
//!
//! A UDP query is checked for size as a TCP one is (gtk-gnutella's
//! `search_queries_forward_size` and `search_queries_kick_size`): over
//! [`MAX_QUERY_SIZE`] bytes it is dropped unanswered; over
//! [`KICK_QUERY_SIZE`] there is no link to kick, and it counts as junk.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::guess::{MAX_HIT_DATAGRAMS, QK};
use super::{Action, Node};
use crate::handshake::Role;
use crate::routing::{self, KICK_QUERY_SIZE, MAX_QUERY_SIZE};
use crate::wire::vendor::oob;
use crate::wire::{self, ipp, Guid, Message, Original, Payload, Query, QueryFlags, QueryHit};

/// GUESS queries passed to leaves remembered at once, at most.
pub const MAX_RELAYED: usize = 64;
/// How long the hits of a query passed to leaves are sent on.
pub const RELAY_LIFETIME: Duration = Duration::from_secs(60);

/// GUESS queries passed to our leaves: GUID, querier, hit datagrams left, when.
#[derive(Debug, Default)]
pub(super) struct Relayed(VecDeque<(Guid, SocketAddrV4, u8, Instant)>);

impl Relayed {
    fn remember(&mut self, guid: Guid, querier: SocketAddrV4, now: Instant) {
        while self.0.len() >= MAX_RELAYED || self.0.front().is_some_and(|r| now >= r.3 + RELAY_LIFETIME) {
            self.0.pop_front();
        }
        self.0.push_back((guid, querier, MAX_HIT_DATAGRAMS, now));
    }

    /// For a hit answering `guid`: `None` when it is no query passed on;
    /// else where it goes, if the querier may have one more (spent then).
    pub(super) fn querier(&mut self, guid: Guid, now: Instant) -> Option<Option<SocketAddrV4>> {
        let relayed = self.0.iter_mut().find(|r| r.0 == guid && now < r.3 + RELAY_LIFETIME)?;
        if relayed.2 == 0 {
            return Some(None);
        }
        relayed.2 -= 1;
        Some(Some(relayed.1))
    }
}

/// Why a UDP query of `len` bytes (header included) is refused for its
/// size: `Some(true)` when it is past the size a TCP sender is kicked for.
pub(super) fn oversized(len: usize) -> Option<bool> {
    let size = len.saturating_sub(wire::HEADER_LEN);
    (size > MAX_QUERY_SIZE).then_some(size > KICK_QUERY_SIZE)
}

/// The query a leaf gets: encoded anew from its fields (not the bytes it
/// arrived with), without the querier's key (a leaf could query "from"
/// the querier with it), without asking for out-of-band hits (its GUID
/// may name a third party) and without asking for hosts.
fn for_leaves(query: &Query) -> Query {
    let mut ggep = query.ggep.clone();
    for id in [QK, ipp::SCP, oob::SO] {
        ggep.remove(id);
    }
    let flags = QueryFlags::from_raw(query.flags.raw() & !QueryFlags::OOB_REPLY);
    Query { flags, ggep, original: Original::default(), ..query.clone() }
}

impl Node {
    /// Passes a valid GUESS query from `querier` to our leaves whose QRP
    /// tables match it; their hits come back to [`Node::relayed_guess_hit`].
    pub(super) fn relay_guess_to_leaves(&mut self, guid: Guid, querier: SocketAddrV4, query: &Query, now: Instant) {
        if self.config.role != Role::Ultrapeer || !self.peers.values().any(|p| p.role == Role::Leaf) {
            return;
        }
        // A GUID already in use would take that query's hits from its searcher.
        if self.router.knows_guid(&guid, now) {
            return;
        }
        let message = Message { guid, ttl: 1, hops: 1, payload: Payload::Query(for_leaves(query)) };
        let leaves: Vec<routing::Action> = self
            .peers
            .iter()
            .filter(|(_, p)| p.role == Role::Leaf)
            .map(|(&to, _)| routing::Action::Send { to, message: message.clone() })
            .collect();
        let queued = self.actions.len();
        self.apply(leaves, now);
        if self.actions.len() > queued {
            // The leaves' hits come back to us rather than along a route.
            self.router.relaying(guid, now);
            self.guess.relayed.remember(guid, querier, now);
        }
    }

    /// Sends a leaf's hit for a GUESS query we passed on to its querier
    /// over UDP (or drops it past the querier's share); `false` when
    /// `search` is no such query.
    pub(super) fn relayed_guess_hit(&mut self, search: Guid, hit: &QueryHit, now: Instant) -> bool {
        let Some(to) = self.guess.relayed.querier(search, now) else {
            return false;
        };
        if let Some(to) = to {
            if self.udp_global_budget_allows(now) {
                let message = Message::new(search, 1, Payload::QueryHit(hit.clone()));
                self.actions.push_back(Action::SendDatagram { to, message });
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::node::testing::Net;
    use crate::node::{build_query, Config, Event};
    use crate::trust::{SharedTrust, TrustStore};
    use crate::wire::{Ggep, Ping};

    /// Outside the net's 10/8, as a GUESS querier on the Internet.
    const QUERIER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 200, 0, 9), 6346);

    /// Ultrapeer 0 with leaves 1 (sharing a rare file) and 2 (sharing another).
    fn ultrapeer_with_two_leaves() -> Net {
        let ultrapeer = Config { max_leaves: 8, discover: false, udp: true, ..Config::default() };
        let mut net = Net::new(3, ultrapeer, 3);
        for i in 1..3 {
            let config =
                Config { listen: SocketAddr::V4(Net::addr(i)), role: Role::Leaf, discover: false, ..Config::default() };
            let trust = SharedTrust::new(TrustStore::in_memory());
            net.nodes[i] = Node::new(config, rand::SeedableRng::seed_from_u64(11), trust, (0, 0), net.now);
            net.nodes[i].connect(Net::addr(0), net.now);
        }
        net.share(1, "SEBLINUX-rare-1.0.tar", 1);
        net.share(2, "holiday-photos.iso", 2);
        net.run_for(Duration::from_secs(2));
        assert!(net.nodes[0].qrp_in_force(leaf(&net, 1)) && net.nodes[0].qrp_in_force(leaf(&net, 2)));
        net
    }

    /// The link at the ultrapeer to leaf `i`.
    fn leaf(net: &Net, i: usize) -> crate::routing::PeerId {
        let listen = Net::addr(i);
        net.nodes[0].peers().find(|(_, p)| p.listen == Some(listen)).map(|(id, _)| id).expect("the leaf")
    }

    /// Datagrams node 0 sent to the querier so far (taken).
    fn to_querier(net: &mut Net) -> Vec<Message> {
        let (sent, rest) = std::mem::take(&mut net.other[0])
            .into_iter()
            .partition(|a| matches!(a, Action::SendDatagram { to, .. } if *to == QUERIER));
        net.other[0] = rest;
        sent.into_iter()
            .filter_map(|a| match a {
                Action::SendDatagram { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    }

    /// A GUESS query from the querier, with its key from node 0, `pad` bytes of GGEP more.
    fn guess_query(net: &mut Net, guid: u8, pad: usize) -> Message {
        let mut ggep = Ggep::new();
        ggep.insert(QK, Vec::new());
        let ping = Message::new(Guid([guid; 16]), 1, Payload::Ping(Ping { ggep }));
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: ping.encode() }, net.now);
        net.run_for(Duration::from_millis(100));
        let pong = to_querier(net).pop().expect("the key pong");
        let Payload::Pong(pong) = pong.payload else { panic!("a pong answers a ping") };
        let mut query = build_query("seblinux rare").unwrap();
        query.ggep.insert(QK, pong.ggep.get(QK).expect("a key").to_vec());
        if pad > 0 {
            query.ggep.insert(crate::wire::GgepId::from_static("XX"), vec![b'x'; pad]);
        }
        Message::new(Guid([guid.wrapping_add(1); 16]), 1, Payload::Query(query))
    }

    fn queries_at(net: &Net, i: usize, guid: Guid) -> usize {
        net.received[i].iter().filter(|(_, m)| m.guid == guid && matches!(m.payload, Payload::Query(_))).count()
    }

    #[test]
    fn a_guess_query_reaches_the_leaves_whose_tables_match_and_their_hits_go_back_over_udp() {
        let mut net = ultrapeer_with_two_leaves();
        let query = guess_query(&mut net, 1, 0);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        assert_eq!((queries_at(&net, 1, query.guid), queries_at(&net, 2, query.guid)), (1, 0), "by QRP");
        let answers = to_querier(&mut net);
        let hits: Vec<&QueryHit> = answers
            .iter()
            .filter_map(|m| match &m.payload {
                Payload::QueryHit(hit) if m.guid == query.guid => Some(hit),
                _ => None,
            })
            .collect();
        assert_eq!(hits.len(), 1, "{answers:?}");
        assert_eq!(hits[0].results[0].name, "SEBLINUX-rare-1.0.tar");
        assert_eq!(SocketAddrV4::new(hits[0].ip, hits[0].port), Net::addr(1), "the leaf's own hit");
        let offered = net.other[0].iter().any(|a| matches!(a, Action::OfferSource { .. }));
        assert!(!offered, "a hit for someone else's query is not ours");
    }

    #[test]
    fn attack_a_leaf_cannot_send_more_hits_through_us_than_a_guess_query_gets() {
        let mut net = ultrapeer_with_two_leaves();
        let query = guess_query(&mut net, 1, 0);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        let first = to_querier(&mut net).into_iter().find(|m| matches!(m.payload, Payload::QueryHit(_))).unwrap();
        let peer = leaf(&net, 1);
        for _ in 0..100 {
            net.nodes[0].handle(Event::Message { peer, message: first.clone() }, net.now);
        }
        net.run_for(Duration::from_millis(100));
        let more = to_querier(&mut net).into_iter().filter(|m| matches!(m.payload, Payload::QueryHit(_))).count();
        assert_eq!(more, usize::from(MAX_HIT_DATAGRAMS) - 1);
    }

    #[test]
    fn attack_an_oversized_udp_query_is_dropped_unanswered_as_over_tcp() {
        let mut net = ultrapeer_with_two_leaves();
        for (guid, pad, junk) in [(1, MAX_QUERY_SIZE, 0), (3, KICK_QUERY_SIZE, 1)] {
            let query = guess_query(&mut net, guid, pad);
            assert!(query.encoded_len() - wire::HEADER_LEN > MAX_QUERY_SIZE);
            let malformed = net.nodes[0].udp_counters().malformed;
            net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
            net.run_for(Duration::from_secs(1));
            assert!(to_querier(&mut net).is_empty(), "no acknowledgement, no hit");
            assert_eq!(queries_at(&net, 1, query.guid), 0, "not passed on");
            assert_eq!(net.nodes[0].udp_counters().malformed - malformed, junk);
        }
        assert_eq!(net.nodes[0].udp_counters().too_large, 2);
        // At the limit, the same query is taken.
        let query = guess_query(&mut net, 5, 0);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        assert!(!to_querier(&mut net).is_empty());
    }

    #[test]
    fn attack_the_relayed_query_never_carries_the_queriers_key_to_the_leaves() {
        let mut net = ultrapeer_with_two_leaves();
        let query = guess_query(&mut net, 1, 0);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        let got: Vec<&Message> = net.received[1].iter().filter(|(_, m)| m.guid == query.guid).map(|(_, m)| m).collect();
        assert_eq!(got.len(), 1);
        let on_the_wire = wire::decode(&got[0].encode()).unwrap();
        let Payload::Query(q) = on_the_wire.payload else { panic!() };
        assert!(q.ggep.get(QK).is_none(), "the querier's key reached the leaf");
    }

    #[test]
    fn attack_a_guess_query_reusing_a_routed_guid_cannot_take_its_hits() {
        let mut net = ultrapeer_with_two_leaves();
        let guess = guess_query(&mut net, 1, 0);
        // Leaf 2 searches through the ultrapeer with the same GUID the attacker then uses.
        let from_leaf = Message::new(guess.guid, 3, Payload::Query(build_query("seblinux rare").unwrap()));
        let peer2 = leaf(&net, 2);
        net.nodes[0].handle(Event::Message { peer: peer2, message: from_leaf }, net.now);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: guess.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        let at_leaf2 = net.hits_received(2).iter().filter(|m| m.guid == guess.guid).count();
        assert_eq!(at_leaf2, 1, "the searching leaf lost its hit");
    }

    #[test]
    fn a_leaf_that_searched_gets_its_hit_through_us() {
        let mut net = ultrapeer_with_two_leaves();
        let guid = Guid([77; 16]);
        let from_leaf = Message::new(guid, 3, Payload::Query(build_query("seblinux rare").unwrap()));
        let peer2 = leaf(&net, 2);
        net.nodes[0].handle(Event::Message { peer: peer2, message: from_leaf }, net.now);
        net.run_for(Duration::from_secs(1));
        assert_eq!(net.hits_received(2).iter().filter(|m| m.guid == guid).count(), 1);
    }

    #[test]
    fn attack_the_relayed_query_drops_the_oob_flag_naming_a_third_party() {
        let mut net = ultrapeer_with_two_leaves();
        let mut query = guess_query(&mut net, 1, 0);
        if let Payload::Query(q) = &mut query.payload {
            q.flags = crate::wire::QueryFlags::from_raw(q.flags.raw() | crate::wire::QueryFlags::OOB_REPLY | 0x8000);
            q.ggep.insert(crate::wire::vendor::oob::SO, Vec::new());
        }
        let query = wire::decode(&query.encode()).unwrap();
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        let got: Vec<&Message> = net.received[1].iter().filter(|(_, m)| m.guid == query.guid).map(|(_, m)| m).collect();
        assert_eq!(got.len(), 1, "relayed");
        let Payload::Query(q) = wire::decode(&got[0].encode()).unwrap().payload else { panic!() };
        assert!(!q.flags.wants_oob_reply());
        assert!(q.ggep.get(crate::wire::vendor::oob::SO).is_none());
    }

    #[test]
    fn attack_a_leafs_hit_for_a_forgotten_guess_query_is_dropped_not_taken_as_ours() {
        let mut net = ultrapeer_with_two_leaves();
        let query = guess_query(&mut net, 1, 0);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        let hit = to_querier(&mut net).into_iter().find(|m| matches!(m.payload, Payload::QueryHit(_))).unwrap();
        net.run_for(RELAY_LIFETIME);
        net.other[0].clear();
        let peer = leaf(&net, 1);
        net.nodes[0].handle(Event::Message { peer, message: hit }, net.now);
        net.run_for(Duration::from_millis(100));
        let taken = net.other[0].iter().any(|a| matches!(a, Action::OfferSource { .. } | Action::SendDatagram { .. }));
        assert!(!taken, "a hit for someone else's query, past its time: {:?}", net.other[0]);
    }

    #[test]
    fn attack_our_hits_and_the_leaves_together_stay_within_a_guess_querys_count() {
        let mut net = ultrapeer_with_two_leaves();
        net.share(0, "SEBLINUX-rare-2.0.tar", 3);
        let query = guess_query(&mut net, 1, 0);
        net.nodes[0].handle(Event::Datagram { from: QUERIER, bytes: query.encode() }, net.now);
        net.run_for(Duration::from_secs(1));
        let hits = |messages: Vec<Message>| messages.into_iter().filter(|m| matches!(m.payload, Payload::QueryHit(_)));
        let first: Vec<Message> = hits(to_querier(&mut net)).collect();
        assert_eq!(first.len(), 2, "ours and the leaf's");
        let leafs = first
            .iter()
            .find(|m| matches!(&m.payload, Payload::QueryHit(h) if SocketAddrV4::new(h.ip, h.port) == Net::addr(1)));
        let peer = leaf(&net, 1);
        for _ in 0..100 {
            net.nodes[0].handle(Event::Message { peer, message: leafs.expect("the leaf's hit").clone() }, net.now);
        }
        net.run_for(Duration::from_millis(100));
        assert_eq!(first.len() + hits(to_querier(&mut net)).count(), usize::from(MAX_HIT_DATAGRAMS));
    }
}
