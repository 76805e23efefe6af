//! Out-of-band QueryHits, version 3, as deployed (see
//! [`crate::wire::vendor::oob`] for the messages).
//!
//! Both sides live here:
//! - **As querier.** When the node takes UDP and knows its address, its
//!   searches and re-queries ask for out-of-band hits: flag `0x0400`, GGEP `SO`, a GUID
//!   naming our address. A *Reply Number* for one of our queries is
//!   claimed with a *Reply Ack* carrying a fresh 4-byte token for that
//!   answerer, as the Reply Number may be spoofed: within a budget of the
//!   same rates as [`super::udp`]'s but of their own (a flood of Pings
//!   cannot spend it), and at most [`MAX_CLAIMS_PER_QUERY`] per query (a
//!   flood for one query replaces only that query's claims); a QueryHit over UDP counts only if it comes from an
//!   address we claimed from, for that search, with that token, and no
//!   more of them than claimed. A servent that does not take UDP, or does
//!   not know its address (behind a firewall), asks for hits over TCP as
//!   before.
//! - **As answerer.** A query asking for out-of-band hits (flag, `SO`, a
//!   usable address in its GUID, not on our own IP outside a test network:
//!   the dial rule's [`crate::address::DialRule::is_ours`]) that came from further than a neighbour
//!   (as gtk-gnutella, which answers a neighbour's own query over its link)
//!   is answered with a Reply Number to that address instead of hits over
//!   TCP; the hits wait [`OFFER_LIFETIME`] for the claim, which must come
//!   from the IP address the GUID names, and are sent once, with the
//!   claim's token, to where the claim came from. The claim's source is
//!   spoofable like any UDP source, so a forged claim can send our hits to
//!   the address the GUID names: the delivery spends that address's UDP
//!   budget of [`super::udp`] and at most [`DELIVERY_BURST`] bytes, then
//!   [`DELIVERY_RATE`] bytes a second, per address. An ultrapeer drops a
//!   leaf's query asking for hits out of band to an address other than
//!   the leaf's own ([`Node::on_leaf_query`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::udp::{budget_key, is_hidden, routable, usable, Bucket, Budget};
use super::{Action, Node};
use crate::wire::vendor::oob::{oob_address, oob_guid, ReplyAck, ReplyNumber, MAX_TOKEN, SO};
use crate::wire::vendor::{Kind, Vendor};
use crate::wire::{Guid, Message, Payload, Query, QueryFlags, QueryHit};

/// Offers of hits awaiting their claim, at most.
pub const MAX_OFFERS: usize = 64;
/// How long offered hits wait for their claim.
pub const OFFER_LIFETIME: Duration = Duration::from_secs(30);
/// Claims of ours awaiting hits, at most.
pub const MAX_CLAIMS: usize = 256;
/// Claims of ours awaiting hits for one query, at most.
pub const MAX_CLAIMS_PER_QUERY: usize = 32;
/// How long hits are awaited after a claim.
pub const CLAIM_LIFETIME: Duration = Duration::from_secs(60);
/// QueryHit messages taken for one claim at most.
pub const MAX_HITS_PER_CLAIM: u8 = 32;
/// Bytes of our tokens (gtk-gnutella reads 4).
pub const TOKEN_LEN: usize = 4;
/// Bytes of hits one address may be sent at once, out of band.
pub const DELIVERY_BURST: u32 = 16 * 1024;
/// Bytes of hits one address may be sent a second, out of band, once its burst is spent.
pub const DELIVERY_RATE: u32 = 2 * 1024;
/// Addresses whose delivery budget is remembered.
const DELIVERY_TABLE: usize = MAX_OFFERS * 4;

/// What out-of-band delivery counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OobCounters {
    /// Reply Numbers we sent (hits offered).
    pub offered: u64,
    /// Offers claimed, and their hits sent.
    pub delivered: u64,
    /// Claims of ours sent.
    pub claimed: u64,
    /// QueryHits received out of band and taken.
    pub hits: u64,
    /// Out-of-band messages refused: forged, unclaimed, wrong token, or late.
    pub refused: u64,
    /// Reply Numbers left unclaimed: over our budget for claims.
    pub throttled: u64,
}

#[derive(Debug)]
struct Offer {
    guid: Guid,
    querier: SocketAddrV4,
    hits: Vec<QueryHit>,
    at: Instant,
}

#[derive(Debug)]
struct Claim {
    guid: Guid,
    answerer: SocketAddrV4,
    token: Vec<u8>,
    remaining: u8,
    at: Instant,
}

/// The node's out-of-band state.
#[derive(Debug, Default)]
pub(super) struct Oob {
    offers: VecDeque<Offer>,
    claims: VecDeque<Claim>,
    /// Bytes of hits each address may still be sent.
    delivery: HashMap<SocketAddrV4, Bucket>,
    /// The claims we may still send, per address and in all (made at the first).
    claim_budget: Option<Budget>,
    counters: OobCounters,
}

impl Oob {
    fn expire(&mut self, now: Instant) {
        self.offers.retain(|o| now < o.at + OFFER_LIFETIME);
        self.claims.retain(|c| now < c.at + CLAIM_LIFETIME);
    }

    /// Whether a claim may go to `answerer` at `now`; spends it.
    fn may_claim(&mut self, answerer: SocketAddrV4, now: Instant) -> bool {
        let allowed = self.claim_budget.get_or_insert_with(|| Budget::new(now)).allow(answerer, now);
        if !allowed {
            self.counters.throttled += 1;
        }
        allowed
    }

    /// Makes room for one more claim for `guid`: that query's oldest gives
    /// way when it has its share, else, when all are taken, the oldest of
    /// the query holding the most.
    fn make_room(&mut self, guid: Guid) {
        let mut held: HashMap<Guid, usize> = HashMap::new();
        for claim in &self.claims {
            *held.entry(claim.guid).or_default() += 1;
        }
        let crowded = if held.get(&guid).copied().unwrap_or(0) >= MAX_CLAIMS_PER_QUERY {
            Some(guid)
        } else if self.claims.len() >= MAX_CLAIMS {
            held.into_iter().max_by_key(|&(_, count)| count).map(|(g, _)| g)
        } else {
            None
        };
        if let Some(at) = crowded.and_then(|g| self.claims.iter().position(|c| c.guid == g)) {
            self.claims.remove(at);
        }
    }

    /// Whether `len` more bytes of hits may go to `to`; spends them.
    fn spend(&mut self, to: SocketAddrV4, len: usize, now: Instant) -> bool {
        let refill = Duration::from_secs(1) / DELIVERY_RATE;
        let key = budget_key(to);
        if self.delivery.len() >= DELIVERY_TABLE && !self.delivery.contains_key(&key) {
            self.delivery.retain(|_, b| !b.is_full(DELIVERY_BURST, refill, now));
            if self.delivery.len() >= DELIVERY_TABLE {
                return false;
            }
        }
        let bucket = self.delivery.entry(key).or_insert_with(|| Bucket::full(DELIVERY_BURST, now));
        u32::try_from(len).is_ok_and(|len| bucket.take_many(len, DELIVERY_BURST, refill, now))
    }
}

/// Whether a query asks for its hits out of band: flag and `SO`.
pub(super) fn wants_oob(query: &Query) -> bool {
    query.flags.wants_oob_reply() && query.ggep.get(SO).is_some()
}

/// Whether datagrams to `addr` can arrive from a servent at `ours`: a
/// private or link-local address is behind a NAT or firewall, so its hits
/// go by TCP (as gtk-gnutella strips the flag of such queries); loopback
/// reaches loopback, for networks on one machine.
fn reachable(addr: SocketAddrV4, ours: SocketAddrV4) -> bool {
    routable(addr, ours) && !is_hidden(*addr.ip())
}

impl Node {
    /// Marks a query of ours for out-of-band hits when we can take them:
    /// the GUID to send it under, or `None` to send it as it is.
    pub(super) fn mark_oob(&mut self, query: &mut Query) -> Option<Guid> {
        if !self.config.udp || !reachable(self.advertised, self.advertised) {
            return None;
        }
        query.flags = query.flags.with(QueryFlags::OOB_REPLY, true);
        query.ggep.insert(SO, Vec::new());
        Some(oob_guid(self.advertised, Guid::from_rng(&mut self.rng)))
    }

    /// Where a query wants its hits out of band, if it does, came from
    /// further than the neighbour that sent it (`hops` counted with the
    /// hop to us, as gtk-gnutella's `hops > 1`), and we can.
    pub(super) fn oob_querier(&self, guid: &Guid, query: &Query, hops: u8) -> Option<SocketAddrV4> {
        let querier = oob_address(guid);
        let wanted = wants_oob(query) && hops > 1;
        // Never another port of our own IP, outside a test network.
        let reachable =
            reachable(querier, self.advertised) && querier != self.advertised && !self.dial_rule().is_ours(querier);
        // A firewalled servent answers along the query's path, so that the
        // querier learns the push route its PUSH will need.
        let firewalled = self.reachability.firewalled();
        (self.config.udp && wanted && reachable && !firewalled).then_some(querier)
    }

    /// Offers `hits` for the query `guid` to its querier.
    pub(super) fn offer_oob(&mut self, guid: Guid, querier: SocketAddrV4, hits: Vec<QueryHit>, now: Instant) {
        self.oob.expire(now);
        let count: usize = hits.iter().map(|h| h.results.len()).sum();
        let Ok(count) = u8::try_from(count.clamp(1, 255)) else { return };
        if self.oob.offers.len() >= MAX_OFFERS {
            self.oob.offers.pop_front();
        }
        self.oob.offers.push_back(Offer { guid, querier, hits, at: now });
        self.oob.counters.offered += 1;
        let number = ReplyNumber { hits: count, unsolicited: true }.to_vendor();
        self.actions
            .push_back(Action::SendDatagram { to: querier, message: Message::new(guid, 1, number.into_payload()) });
    }

    /// A vendor message over UDP: a Reply Number or a Reply Ack, v3.
    pub(super) fn on_udp_vendor(&mut self, from: SocketAddrV4, guid: Guid, vendor: Vendor, now: Instant) {
        self.oob.expire(now);
        let v3 = |kind: Kind| vendor.kind.same_message(&kind) && vendor.kind.version >= 3;
        if v3(Kind::OOB_REPLY_NUMBER) {
            match ReplyNumber::decode(&vendor.body) {
                Ok(number) => self.claim(from, guid, number, now),
                Err(_) => self.oob.counters.refused += 1,
            }
        } else if v3(Kind::OOB_REPLY_ACK) {
            match ReplyAck::decode(&vendor.body) {
                Ok(ack) => self.deliver(from, guid, ack, now),
                Err(_) => self.oob.counters.refused += 1,
            }
        } else {
            self.udp_ignored();
        }
    }

    /// Claims the hits an answerer offers for one of our searches.
    fn claim(&mut self, from: SocketAddrV4, guid: Guid, number: ReplyNumber, now: Instant) {
        // A search of the user's or a download's re-query.
        let asked = self.searches.get(&guid).is_some() || self.router.is_own_query(&guid, now);
        let ours = asked && oob_address(&guid) == self.advertised;
        let claimed = self.oob.claims.iter().any(|c| c.guid == guid && c.answerer == from);
        if !ours || claimed || !usable(from) {
            self.oob.counters.refused += 1;
            return;
        }
        if !self.oob.may_claim(from, now) {
            return;
        }
        let mut token = vec![0; TOKEN_LEN];
        self.rng.fill_bytes(&mut token);
        let wanted = number.hits.min(MAX_HITS_PER_CLAIM);
        self.oob.make_room(guid);
        self.oob.claims.push_back(Claim { guid, answerer: from, token: token.clone(), remaining: wanted, at: now });
        self.oob.counters.claimed += 1;
        let ack = ReplyAck { wanted, token }.to_vendor();
        self.actions.push_back(Action::SendDatagram { to: from, message: Message::new(guid, 1, ack.into_payload()) });
    }

    /// Sends the hits offered for `guid` to a claim from the querier's
    /// address, within its UDP budget and its delivery bytes.
    fn deliver(&mut self, from: SocketAddrV4, guid: Guid, ack: ReplyAck, now: Instant) {
        let Some(at) = self.oob.offers.iter().position(|o| o.guid == guid && o.querier.ip() == from.ip()) else {
            self.oob.counters.refused += 1;
            return;
        };
        if !self.udp_budget_allows(from, now) {
            return;
        }
        let Some(offer) = self.oob.offers.remove(at) else { return };
        self.oob.counters.delivered += 1;
        for mut hit in offer.hits.into_iter().take(usize::from(ack.wanted)) {
            if let Some(trailer) = &mut hit.trailer {
                trailer.ggep.insert(SO, ack.token.clone());
            }
            let message = Message::new(guid, 1, Payload::QueryHit(hit));
            if !self.oob.spend(from, message.encoded_len(), now) {
                break;
            }
            self.actions.push_back(Action::SendDatagram { to: from, message });
        }
    }

    /// A QueryHit over UDP: taken only as a claim of ours allows.
    pub(super) fn on_udp_hit(&mut self, from: SocketAddrV4, guid: Guid, hit: QueryHit, now: Instant) {
        self.oob.expire(now);
        let token = hit.trailer.as_ref().and_then(|t| t.ggep.get(SO)).filter(|t| t.len() <= MAX_TOKEN);
        let claim = self
            .oob
            .claims
            .iter_mut()
            .find(|c| c.guid == guid && c.answerer == from && c.remaining > 0 && Some(c.token.as_slice()) == token);
        let Some(claim) = claim else {
            self.oob.counters.refused += 1;
            return;
        };
        claim.remaining -= 1;
        self.oob.counters.hits += 1;
        self.on_hit(guid, hit, now);
    }

    /// What out-of-band delivery counted so far.
    pub fn oob_counters(&self) -> &OobCounters {
        &self.oob.counters
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::node::tests::{actions, connect, node_with, shared_file};
    use crate::node::{Config, Event};
    use crate::routing::PeerId;

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 6346)
    }

    fn node(n: u8, udp: bool, now: Instant) -> Node {
        node_with(Config { listen: SocketAddr::V4(addr(n)), udp, ..Config::default() }, now)
    }

    fn datagrams(node: &mut Node) -> Vec<(SocketAddrV4, Message)> {
        actions(node)
            .into_iter()
            .filter_map(|a| match a {
                Action::SendDatagram { to, message } => Some((to, message)),
                _ => None,
            })
            .collect()
    }

    /// A querier at .1 and an answerer at .2 sharing one file, the query
    /// carried to the answerer over a link of its (hops 2); returns the
    /// search and the answerer's Reply Number.
    fn offered(now: Instant) -> (Node, Node, Guid, Message) {
        let mut querier = node(1, true, now);
        connect(&mut querier, 1, SocketAddr::V4(addr(3)), now);
        actions(&mut querier);
        let guid = querier.search("seblinux", 3, now).unwrap();
        let sent = actions(&mut querier);
        let Some(Action::Send { mut message, .. }) = sent.into_iter().find(|a| matches!(a, Action::Send { .. })) else {
            panic!("the query goes out")
        };
        let Payload::Query(query) = &message.payload else { panic!("a query") };
        assert!(query.flags.wants_oob_reply() && query.ggep.get(SO).is_some());
        assert_eq!(oob_address(&message.guid), addr(1));
        let mut answerer = node(2, true, now);
        connect(&mut answerer, 1, SocketAddr::V4(addr(3)), now);
        actions(&mut answerer);
        (message.ttl, message.hops) = (2, 1);
        answerer.handle(Event::Message { peer: PeerId(1), message }, now);
        let Some(Action::LookUp { lookup, .. }) =
            actions(&mut answerer).into_iter().find(|a| matches!(a, Action::LookUp { .. }))
        else {
            panic!("the answerer looks its library up")
        };
        answerer.handle(Event::LocalResults { lookup, files: vec![shared_file("SEBLINUX-base.tar")] }, now);
        let taken = actions(&mut answerer);
        assert!(!taken.iter().any(|a| matches!(a, Action::Send { .. })), "no hit over TCP: {taken:?}");
        let [Action::SendDatagram { to, message: number }] = taken.as_slice() else { panic!("{taken:?}") };
        assert_eq!((*to, number.guid), (addr(1), guid));
        (querier, answerer, guid, number.clone())
    }

    #[test]
    fn hits_offered_out_of_band_are_claimed_with_a_token_and_come_with_it() {
        let now = Instant::now();
        let (mut querier, mut answerer, guid, number) = offered(now);
        querier.handle(Event::Datagram { from: addr(2), bytes: number.encode() }, now);
        let [(to, ack)] = datagrams(&mut querier).try_into().unwrap();
        assert_eq!((to, ack.guid), (addr(2), guid));
        answerer.handle(Event::Datagram { from: addr(1), bytes: ack.encode() }, now);
        let hits = datagrams(&mut answerer);
        assert_eq!(hits.len(), 1);
        let (to, hit) = &hits[0];
        assert_eq!(*to, addr(1));
        let Payload::QueryHit(body) = &hit.payload else { panic!("a hit") };
        let token = body.trailer.as_ref().unwrap().ggep.get(SO).unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        querier.handle(Event::Datagram { from: addr(2), bytes: hit.encode() }, now);
        assert_eq!(querier.search_results(&guid).unwrap().results().len(), 1);
        assert_eq!((querier.oob_counters().hits, answerer.oob_counters().delivered), (1, 1));
        // A second claim gets nothing: the offer went once.
        answerer.handle(Event::Datagram { from: addr(1), bytes: ack.encode() }, now);
        assert!(datagrams(&mut answerer).is_empty());
    }

    #[test]
    fn attack_forged_hits_without_the_token_from_elsewhere_or_beyond_the_claim_are_ignored() {
        let now = Instant::now();
        let (mut querier, mut answerer, guid, number) = offered(now);
        querier.handle(Event::Datagram { from: addr(2), bytes: number.encode() }, now);
        let [(_, ack)] = datagrams(&mut querier).try_into().unwrap();
        answerer.handle(Event::Datagram { from: addr(1), bytes: ack.encode() }, now);
        let [(_, genuine)] = datagrams(&mut answerer).try_into().unwrap();
        let Payload::QueryHit(body) = &genuine.payload else { panic!("a hit") };
        let mut forged = body.clone();
        forged.trailer.as_mut().unwrap().ggep.insert(SO, vec![0; TOKEN_LEN]);
        let mut bare = body.clone();
        bare.trailer.as_mut().unwrap().ggep.remove(SO);
        let as_message = |hit: QueryHit| Message::new(guid, 1, Payload::QueryHit(hit)).encode();
        // Wrong token, no token, the right token from another address.
        querier.handle(Event::Datagram { from: addr(2), bytes: as_message(forged) }, now);
        querier.handle(Event::Datagram { from: addr(2), bytes: as_message(bare) }, now);
        querier.handle(Event::Datagram { from: addr(9), bytes: genuine.encode() }, now);
        assert!(querier.search_results(&guid).unwrap().results().is_empty());
        assert_eq!(querier.oob_counters().refused, 3);
        // The genuine hit, then its replay beyond what was claimed.
        querier.handle(Event::Datagram { from: addr(2), bytes: genuine.encode() }, now);
        querier.handle(Event::Datagram { from: addr(2), bytes: genuine.encode() }, now);
        assert_eq!((querier.oob_counters().hits, querier.oob_counters().refused), (1, 4));
    }

    #[test]
    fn attack_a_claim_from_anyone_but_the_querier_gets_no_hit_and_a_reply_number_for_no_search_of_ours_no_claim() {
        let now = Instant::now();
        let (mut querier, mut answerer, _, number) = offered(now);
        querier.handle(Event::Datagram { from: addr(2), bytes: number.encode() }, now);
        let [(_, ack)] = datagrams(&mut querier).try_into().unwrap();
        // A claim from a third address would send our hits to it.
        answerer.handle(Event::Datagram { from: addr(9), bytes: ack.encode() }, now);
        assert!(datagrams(&mut answerer).is_empty());
        assert_eq!(answerer.oob_counters().refused, 1);
        let stranger =
            Message::new(Guid([5; 16]), 1, ReplyNumber { hits: 9, unsolicited: true }.to_vendor().into_payload());
        querier.handle(Event::Datagram { from: addr(9), bytes: stranger.encode() }, now);
        assert!(datagrams(&mut querier).is_empty());
    }

    /// What an answerer at `addr(2)` does with a query from two hops away
    /// asking for its hits out of band at `querier`: whether it offers them
    /// there, and whether it sent them over the query's link instead.
    fn answered_out_of_band(answerer: &mut Node, querier: SocketAddrV4, now: Instant) -> (bool, bool) {
        connect(answerer, 1, SocketAddr::V4(addr(3)), now);
        actions(answerer);
        let mut query = crate::node::build_query("seblinux").unwrap();
        query.flags = query.flags.with(QueryFlags::OOB_REPLY, true);
        query.ggep.insert(SO, Vec::new());
        let message =
            Message { guid: oob_guid(querier, Guid([3; 16])), ttl: 2, hops: 1, payload: Payload::Query(query) };
        answerer.handle(Event::Message { peer: PeerId(1), message }, now);
        let Some(Action::LookUp { lookup, .. }) =
            actions(answerer).into_iter().find(|a| matches!(a, Action::LookUp { .. }))
        else {
            panic!("the answerer looks its library up")
        };
        answerer.handle(Event::LocalResults { lookup, files: vec![shared_file("SEBLINUX-base.tar")] }, now);
        let done = actions(answerer);
        let offered = done.iter().any(|a| matches!(a, Action::SendDatagram { to, .. } if *to == querier));
        (offered, done.iter().any(|a| matches!(a, Action::Send { .. })))
    }

    #[test]
    fn attack_a_query_naming_another_port_of_our_own_ip_for_its_hits_gets_them_over_its_link() {
        let now = Instant::now();
        let our_other_port = SocketAddrV4::new(*addr(2).ip(), 22);
        assert_eq!(answered_out_of_band(&mut node(2, true, now), our_other_port, now), (false, true));
        assert_eq!(answered_out_of_band(&mut node(2, true, now), addr(1), now), (true, false), "another servent's");
        let config = Config { listen: SocketAddr::V4(addr(2)), udp: true, dial_local: true, ..Config::default() };
        let mut test_network = node_with(config, now);
        assert_eq!(answered_out_of_band(&mut test_network, our_other_port, now), (true, false), "a test network");
    }

    #[test]
    fn a_neighbours_own_query_is_answered_over_its_link_not_out_of_band() {
        let now = Instant::now();
        let mut answerer = node(2, true, now);
        connect(&mut answerer, 1, SocketAddr::V4(addr(3)), now);
        actions(&mut answerer);
        let mut query = crate::node::build_query("seblinux").unwrap();
        query.flags = query.flags.with(QueryFlags::OOB_REPLY, true);
        query.ggep.insert(SO, Vec::new());
        // Sent by the neighbour itself: hops 0 on arrival.
        let message =
            Message { guid: oob_guid(addr(3), Guid([3; 16])), ttl: 2, hops: 0, payload: Payload::Query(query) };
        answerer.handle(Event::Message { peer: PeerId(1), message }, now);
        let Some(Action::LookUp { lookup, .. }) =
            actions(&mut answerer).into_iter().find(|a| matches!(a, Action::LookUp { .. }))
        else {
            panic!("the answerer looks its library up")
        };
        answerer.handle(Event::LocalResults { lookup, files: vec![shared_file("SEBLINUX-base.tar")] }, now);
        assert!(matches!(actions(&mut answerer).as_slice(), [Action::Send { .. }]));
        assert_eq!(answerer.oob_counters().offered, 0);
    }

    #[test]
    fn attack_spoofed_claims_bring_the_named_address_a_bounded_burst_then_a_trickle() {
        let now = Instant::now();
        let mut answerer = node(2, true, now);
        let victim = addr(1);
        let big = || {
            let files = vec![shared_file(&format!("{}.tar", "x".repeat(1000)))];
            crate::node::query_hits(files, addr(2), Guid([2; 16]), false, &[]).remove(0)
        };
        let claim = |answerer: &mut Node, guid: Guid, now: Instant| {
            answerer.offer_oob(guid, victim, (0..40).map(|_| big()).collect(), now);
            datagrams(answerer);
            let ack = ReplyAck { wanted: 255, token: vec![7; TOKEN_LEN] }.to_vendor();
            let bytes = Message::new(guid, 1, ack.into_payload()).encode();
            answerer.handle(Event::Datagram { from: victim, bytes }, now);
            datagrams(answerer).iter().map(|(_, m)| m.encoded_len()).sum::<usize>()
        };
        // Some 44 KB offered: the claim gets the burst's worth, not all.
        let first = claim(&mut answerer, Guid([1; 16]), now);
        assert!(first > 0 && first <= DELIVERY_BURST as usize, "{first} bytes");
        assert_eq!(claim(&mut answerer, Guid([2; 16]), now), 0, "the burst is spent");
        let later = claim(&mut answerer, Guid([3; 16]), now + Duration::from_secs(2));
        assert!(later > 0 && later <= 2 * DELIVERY_RATE as usize, "{later} bytes in two seconds");
    }

    #[test]
    fn a_downloads_requery_gets_its_out_of_band_hits_claimed_and_takes_no_guess_slot() {
        let now = Instant::now();
        let mut client = node(1, true, now);
        connect(&mut client, 1, SocketAddr::V4(addr(3)), now);
        client.handle(Event::HostsLearned(vec![addr(2)]), now);
        actions(&mut client);
        client.handle(Event::DownloadStarted { id: 1, urn: crate::wire::Urn::Sha1([5; 20]), searched: false }, now);
        client.handle_timeout(now);
        let sent = actions(&mut client);
        let Some(Action::Send { message, .. }) = sent.iter().find(|a| matches!(a, Action::Send { .. })) else {
            panic!("the re-query goes out: {sent:?}")
        };
        let guid = message.guid;
        assert_eq!(oob_address(&guid), addr(1));
        let number = Message::new(guid, 1, ReplyNumber { hits: 2, unsolicited: true }.to_vendor().into_payload());
        client.handle(Event::Datagram { from: addr(2), bytes: number.encode() }, now);
        let [(to, ack)] = datagrams(&mut client).try_into().unwrap();
        assert_eq!((to, ack.guid), (addr(2), guid));
        client.handle_timeout(now + crate::node::guess::GUESS_AFTER);
        let pinged = datagrams(&mut client).into_iter().any(|(_, m)| matches!(m.payload, Payload::Ping(_)));
        assert!(!pinged, "a re-query is no rare search to iterate over GUESS");
    }

    #[test]
    fn attack_a_ping_flood_or_a_reply_number_flood_for_one_query_leaves_our_other_claims_alone() {
        let now = Instant::now();
        let mut client = node(1, true, now);
        connect(&mut client, 1, SocketAddr::V4(addr(3)), now);
        actions(&mut client);
        let flooded = client.search("seblinux", 3, now).unwrap();
        let other = client.search("debian", 3, now).unwrap();
        actions(&mut client);
        // A flood of Pings under many addresses spends the answers' budget.
        for n in 0..1000u32 {
            let [_, _, a, b] = n.to_be_bytes();
            let from = SocketAddrV4::new(Ipv4Addr::new(198, 51, a, b), 6346);
            let ping = Message::new(Guid([9; 16]), 1, Payload::Ping(crate::wire::Ping::default()));
            client.handle(Event::Datagram { from, bytes: ping.encode() }, now);
        }
        assert!(client.udp_counters().throttled > 0);
        datagrams(&mut client);
        let number =
            |guid| Message::new(guid, 1, ReplyNumber { hits: 2, unsolicited: true }.to_vendor().into_payload());
        // Reply Numbers for one query from a hundred addresses.
        for n in 0..100 {
            let from = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, n), 6346);
            client.handle(Event::Datagram { from, bytes: number(flooded).encode() }, now);
        }
        datagrams(&mut client);
        assert_eq!(client.oob.claims.iter().filter(|c| c.guid == flooded).count(), MAX_CLAIMS_PER_QUERY);
        client.handle(Event::Datagram { from: addr(2), bytes: number(other).encode() }, now);
        let [(to, ack)] = datagrams(&mut client).try_into().unwrap();
        assert_eq!((to, ack.guid), (addr(2), other));
    }

    #[test]
    fn a_servent_behind_a_nat_asks_for_hits_over_tcp_and_hits_for_one_go_by_tcp() {
        let now = Instant::now();
        let private = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 5), 6346);
        let ours = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 6346);
        assert!(!reachable(private, addr(2)) && !reachable(ours, ours));
        let shared = SocketAddrV4::new(Ipv4Addr::new(100, 64, 0, 1), 6346);
        assert!(!reachable(shared, addr(2)));
        let loopback = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346);
        assert!(reachable(loopback, loopback) && !reachable(loopback, addr(2)) && reachable(addr(1), addr(2)));
        let mut natted = node_with(Config { listen: SocketAddr::V4(ours), udp: true, ..Config::default() }, now);
        let mut query = crate::node::build_query("seblinux").unwrap();
        assert_eq!(natted.mark_oob(&mut query), None);
        assert!(!query.flags.wants_oob_reply());
    }

    #[test]
    fn without_udp_a_search_asks_for_hits_over_tcp_and_an_oob_query_is_answered_over_tcp() {
        let now = Instant::now();
        let mut querier = node(1, false, now);
        connect(&mut querier, 1, SocketAddr::V4(addr(3)), now);
        actions(&mut querier);
        querier.search("seblinux", 3, now).unwrap();
        let sent = actions(&mut querier);
        let Some(Action::Send { message, .. }) = sent.into_iter().find(|a| matches!(a, Action::Send { .. })) else {
            panic!("the query goes out")
        };
        let Payload::Query(query) = &message.payload else { panic!("a query") };
        assert!(!query.flags.wants_oob_reply());
        let mut answerer = node(2, false, now);
        connect(&mut answerer, 1, SocketAddr::V4(addr(3)), now);
        actions(&mut answerer);
        let mut query = query.clone();
        query.flags = query.flags.with(QueryFlags::OOB_REPLY, true);
        query.ggep.insert(SO, Vec::new());
        let message =
            Message { guid: oob_guid(addr(1), Guid([3; 16])), ttl: 2, hops: 1, payload: Payload::Query(query) };
        answerer.handle(Event::Message { peer: PeerId(1), message }, now);
        let Some(Action::LookUp { lookup, .. }) = answerer.poll_action() else { panic!("no lookup") };
        answerer.handle(Event::LocalResults { lookup, files: vec![shared_file("SEBLINUX-base.tar")] }, now);
        assert!(matches!(actions(&mut answerer).as_slice(), [Action::Send { .. }]));
    }
}
