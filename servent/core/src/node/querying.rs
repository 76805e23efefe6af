//! The node's side of dynamic querying and vendor messages: which queries
//! run dynamically, to which neighbours, and what the vendor messages
//! change.
//!
//! An ultrapeer runs dynamically ([`super::dynamic`]) its own searches and
//! the queries its leaves send it: the router still records the route,
//! drops duplicates and sends the query to the leaves whose QRP tables
//! match, but the copies for the ultrapeers are held back and the dynamic
//! query sends them one neighbour at a time. A search with an explicit TTL
//! (`--ttl`, an expert's override) is flooded as before, capped by what
//! each peer advertised. A leaf sends its searches to its ultrapeers
//! marked leaf-guided, answers their Query Status Requests with the
//! results its search kept, and tells them Hops Flow 0 while it shares
//! nothing. Every query sent honours the receiver's Hops Flow.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use super::dynamic::{self, DynamicQuery, Neighbour, Origin, Step};
use super::vendor::{self, Received};
use super::{Action, Node};
use crate::handshake::{PeerInfo, Role};
use crate::routing::{self, PeerId};
use crate::wire::vendor::hops_flow::HopsFlow;
use crate::wire::vendor::oob::oob_address;
use crate::wire::vendor::query_status::QueryStatus;
use crate::wire::vendor::{Kind, Vendor};
use crate::wire::{Guid, Message, Payload, Query, QueryFlags, Urn};

pub mod requeries;
pub mod satisfied;
pub mod similar;

/// Dynamic queries running at once; the oldest of a leaf's gives way (ours
/// are bounded by the search slots and the downloads, and never do).
pub const MAX_DYNAMIC_QUERIES: usize = 1024;
/// Dynamic queries of one leaf running at once; its oldest gives way.
pub const MAX_DYNAMIC_QUERIES_PER_LEAF: usize = 8;
/// Re-queries of ours whose results are counted, at most; the oldest gives way.
pub const MAX_REQUERIES_COUNTED: usize = 64;
/// The degree assumed of an ultrapeer that did not say (`X-Degree`).
pub const DEFAULT_DEGREE: u32 = 30;

/// What the dynamic queries need to know of a link.
#[derive(Clone, Copy, Debug)]
pub(super) struct Capacity {
    degree: u32,
    max_ttl: u8,
}

/// Dynamic queries under way and the links' capacities.
#[derive(Default)]
pub(super) struct Querying {
    pub(super) vendor: vendor::VendorLinks,
    running: BTreeMap<Guid, DynamicQuery>,
    capacity: BTreeMap<PeerId, Capacity>,
    /// Our re-queries and the results each brought, for a leaf's Query Status.
    requeries: VecDeque<(Guid, usize)>,
    /// The queries our leaves sent lately, so a repeat is dropped.
    leaf_queries: requeries::LeafQueries,
    /// When we, as a leaf, last re-queried each URN.
    own_requeries: requeries::OwnRequeries,
    /// Our searches as a leaf, so that a repeat shows the earlier one.
    own_searches: requeries::OwnSearches,
    /// Our searches found satisfied, so that it is said once.
    satisfied: VecDeque<Guid>,
    /// The queries our ultrapeer neighbours relayed lately.
    similar: similar::SimilarQueries,
}

impl Querying {
    /// When the next dynamic query step is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.running.values().map(DynamicQuery::next_due).min()
    }

    /// The leaves' dynamic queries (of `leaf` only, if given): GUID and start.
    fn leaf_queries(&self, leaf: Option<PeerId>) -> impl Iterator<Item = (Guid, Instant)> + '_ {
        self.running.iter().filter_map(move |(guid, dq)| match dq.origin() {
            Origin::Leaf { peer, .. } if leaf.is_none_or(|l| l == peer) => Some((*guid, dq.started())),
            _ => None,
        })
    }

    /// Ends the oldest of the leaves' dynamic queries (of `leaf` only, if given).
    fn end_oldest(&mut self, leaf: Option<PeerId>) {
        if let Some((oldest, _)) = self.leaf_queries(leaf).min_by_key(|&(_, started)| started) {
            self.running.remove(&oldest);
        }
    }

    /// Counts the results of a re-query of ours from now on.
    pub(super) fn requeried(&mut self, guid: Guid) {
        if self.requeries.len() >= MAX_REQUERIES_COUNTED {
            self.requeries.pop_front();
        }
        self.requeries.push_back((guid, 0));
    }

    fn requery_results(&mut self, guid: Guid) -> Option<&mut usize> {
        self.requeries.iter_mut().find(|(g, _)| *g == guid).map(|(_, results)| results)
    }
}

impl Node {
    /// A link is up: note its capacity and send it our Messages Supported.
    pub(super) fn querying_connected(&mut self, peer: PeerId, info: &PeerInfo) {
        let capacity = Capacity {
            degree: info.degree().unwrap_or(DEFAULT_DEGREE),
            max_ttl: info.max_ttl().unwrap_or(self.config.max_ttl),
        };
        self.querying.capacity.insert(peer, capacity);
        let message = self.querying.vendor.connected(peer, &mut self.rng);
        self.actions.push_back(Action::Send { to: peer, message });
    }

    /// A link is gone: its leaf's dynamic queries end.
    pub(super) fn querying_closed(&mut self, peer: PeerId) {
        self.querying.vendor.closed(peer);
        self.querying.capacity.remove(&peer);
        self.querying.leaf_queries.closed(peer);
        self.querying.similar.closed(peer);
        self.querying.running.retain(|_, dq| !matches!(dq.origin(), Origin::Leaf { peer: leaf, .. } if leaf == peer));
    }

    /// A vendor message arrived from `peer`.
    pub(super) fn on_vendor(&mut self, peer: PeerId, message: &Message, now: Instant) {
        let Some(Ok(received)) = Vendor::from_payload(&message.payload) else {
            self.router.count_drop(peer, routing::Drop::Malformed);
            return;
        };
        let announced = received.kind == Kind::MESSAGES_SUPPORTED;
        match self.querying.vendor.receive(peer, message.guid, received) {
            Received::Noted if announced => self.tell_hops_flow(peer),
            Received::Noted => {}
            Received::Malformed => self.router.count_drop(peer, routing::Drop::Malformed),
            Received::StatusRequest(guid) => {
                let status = match self.searches.get(&guid) {
                    Some(search) if self.config.role == Role::Leaf => satisfied::status(search),
                    // A re-query goes on while it brings too few sources.
                    None if self.config.role == Role::Leaf => match self.querying.requery_results(guid) {
                        Some(results) => QueryStatus::kept(*results),
                        None => QueryStatus::STOP,
                    },
                    _ => QueryStatus::STOP,
                };
                let message = vendor::message(guid, status.to_vendor());
                self.actions.push_back(Action::Send { to: peer, message });
            }
            Received::Status(guid, status) => {
                if let Some(dq) = self.querying.running.get_mut(&guid) {
                    if matches!(dq.origin(), Origin::Leaf { peer: leaf, .. } if leaf == peer) {
                        dq.on_status(status, now);
                    }
                }
            }
        }
    }

    /// As a leaf, tells `peer` whether we want queries: none while we share
    /// nothing and download nothing (our QRP table names nothing).
    pub(super) fn tell_hops_flow(&mut self, peer: PeerId) {
        if self.config.role != Role::Leaf {
            return;
        }
        let wanted = self.library.0 > 0 || self.qrp.own_names_anything();
        let flow = if wanted { HopsFlow::LEAF_OPEN } else { HopsFlow::NONE };
        if let Some(message) = self.querying.vendor.tell_hops_flow(peer, flow, &mut self.rng) {
            self.actions.push_back(Action::Send { to: peer, message });
        }
    }

    /// Starts a query of ours: dynamically as an ultrapeer unless `ttl`
    /// overrides it; a leaf's go to its ultrapeers marked leaf-guided.
    pub(super) fn start_own_query(&mut self, mut query: Query, ttl: Option<u8>, now: Instant) -> Guid {
        let dynamic = ttl.is_none() && self.config.role == Role::Ultrapeer;
        if self.config.role == Role::Leaf {
            query.flags = query.flags.with(QueryFlags::LEAF_GUIDED, true);
        }
        let ttl = ttl.unwrap_or(self.config.max_ttl.min(dynamic::MAX_TTL));
        let (guid, actions) = match self.mark_oob(&mut query) {
            Some(guid) => self.router.start_query_as(guid, query.clone(), ttl, now),
            None => self.router.start_query(query.clone(), ttl, now),
        };
        if !dynamic {
            self.apply(actions, now);
            return guid;
        }
        let actions = self.hold_for_ultrapeers(actions, guid);
        self.apply(actions, now);
        let message = Message { guid, ttl, hops: 0, payload: Payload::Query(query) };
        self.run_dynamic(DynamicQuery::new(message, Origin::Own, ttl, now), now);
        guid
    }

    /// Routes a query a leaf sent us: to the matching leaves at once, to
    /// the ultrapeers dynamically. One asking for hits out of band to an
    /// address other than the leaf's own is dropped, as gtk-gnutella does:
    /// it would aim every answerer's hits at a third party; so is one the
    /// leaf sent lately ([`requeries`]).
    pub(super) fn on_leaf_query(&mut self, peer: PeerId, message: Message, now: Instant) {
        let guid = message.guid;
        if let Payload::Query(query) = &message.payload {
            if query.flags.wants_oob_reply() && !self.is_own_address(peer, *oob_address(&guid).ip()) {
                self.router.count_drop(peer, routing::Drop::BadReturnAddress);
                return;
            }
            if !self.querying.leaf_queries.admit(peer, query, now) {
                self.router.count_drop(peer, routing::Drop::Requery);
                return;
            }
        }
        let held = message.clone();
        let actions = self.router.handle(peer, message, now);
        let accepted = actions.iter().any(|a| matches!(a, routing::Action::SearchLocal { guid: g, .. } if *g == guid));
        let actions = self.hold_for_ultrapeers(actions, guid);
        self.apply(actions, now);
        let Payload::Query(query) = &held.payload else { return };
        if !accepted || held.ttl <= 1 {
            return;
        }
        let guided = query.flags.is_leaf_guided() && self.querying.vendor.supports(peer, Kind::QUERY_STATUS_REQUEST);
        let ttl = (held.ttl - 1).min(self.config.max_ttl);
        let message = Message { hops: held.hops + 1, ..held };
        self.run_dynamic(DynamicQuery::new(message, Origin::Leaf { peer, guided }, ttl, now), now);
    }

    /// Whether `ip` is `peer`'s: the link's or the one it listens on.
    fn is_own_address(&self, peer: PeerId, ip: Ipv4Addr) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.addr.ip() == IpAddr::V4(ip) || p.listen.is_some_and(|l| *l.ip() == ip))
    }

    /// Whether `message` is a query whose travel ends at us (TTL 1) while
    /// we have leaves: it still goes down to them.
    pub(super) fn ends_here(&self, message: &Message) -> bool {
        self.config.role == Role::Ultrapeer
            && message.ttl == 1
            && matches!(message.payload, Payload::Query(_))
            && self.peers.values().any(|p| p.role == Role::Leaf)
    }

    /// A query that ended its travel at us goes on to our leaves, whose QRP
    /// tables filter it: they are part of us, as deployed ultrapeers hold,
    /// and what our last-hop table promised. Only once the router took it
    /// (not a duplicate, not over the rate).
    pub(super) fn down_to_leaves(
        &self,
        mut actions: Vec<routing::Action>,
        last_hop: Option<Message>,
        from: PeerId,
    ) -> Vec<routing::Action> {
        let Some(message) = last_hop else { return actions };
        let taken =
            actions.iter().any(|a| matches!(a, routing::Action::SearchLocal { guid, .. } if *guid == message.guid));
        if !taken {
            return actions;
        }
        let message = Message { hops: message.hops.saturating_add(1), ..message };
        let leaves = self.peers.iter().filter(|(id, p)| p.role == Role::Leaf && **id != from).map(|(id, _)| *id);
        actions.extend(leaves.map(|to| routing::Action::Send { to, message: message.clone() }));
        actions
    }

    /// Whether a query the ultrapeer `peer` relayed (hops > 0, not its
    /// own, as gtk-gnutella's property says) is one it relayed lately
    /// under another GUID ([`similar`]), which we drop as an ultrapeer.
    /// A duplicate GUID is left to the router.
    pub(super) fn is_similar_query(&mut self, peer: PeerId, message: &Message, now: Instant) -> bool {
        let Payload::Query(query) = &message.payload else { return false };
        let from_ultrapeer = self.peers.get(&peer).is_some_and(|p| p.role == Role::Ultrapeer);
        let relayed = message.hops > 0;
        if self.config.role != Role::Ultrapeer
            || !from_ultrapeer
            || !relayed
            || self.router.knows_guid(&message.guid, now)
        {
            return false;
        }
        !self.querying.similar.admit(peer, message.hops, message.ttl, query, now)
    }

    /// Whether a query from `peer` is a leaf's own, which we run dynamically.
    pub(super) fn is_leaf_query(&self, peer: PeerId, message: &Message) -> bool {
        self.config.role == Role::Ultrapeer
            && message.hops == 0
            && matches!(message.payload, Payload::Query(_))
            && self.peers.get(&peer).is_some_and(|p| p.role == Role::Leaf)
    }

    /// As a leaf, the search of ours that asked what `query` asks lately
    /// of every ultrapeer we have, and is still kept: they would all drop
    /// `query` as a repeat ([`requeries`]), so it is the answer. An
    /// expert's TTL floods anyway.
    pub(super) fn earlier_search(&self, query: &Query, ttl: Option<u8>, now: Instant) -> Option<Guid> {
        if self.config.role != Role::Leaf || ttl.is_some() {
            return None;
        }
        let ultrapeers: Vec<PeerId> =
            self.peers.iter().filter(|(_, p)| p.role == Role::Ultrapeer).map(|(id, _)| *id).collect();
        self.querying.own_searches.earlier(query, &ultrapeers, now).filter(|guid| self.searches.get(guid).is_some())
    }

    /// Remembers, as a leaf, that our search `guid` asked `query` of the
    /// peers it is about to be sent to.
    pub(super) fn own_search_sent(&mut self, query: &Query, guid: Guid, now: Instant) {
        if self.config.role != Role::Leaf {
            return;
        }
        let sent_to = self
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, message } if message.guid == guid => Some(*to),
                _ => None,
            })
            .collect();
        self.querying.own_searches.sent(query, guid, sent_to, now);
    }

    /// Our search `guid` got results: once it is satisfied
    /// ([`satisfied`]), its dynamic query here ends and, as a leaf, our
    /// ultrapeers that take Query Status are told to stop it, once.
    pub(super) fn check_satisfied(&mut self, guid: Guid) {
        let Some(search) = self.searches.get(&guid) else { return };
        if !satisfied::is_satisfied(search) || self.querying.satisfied.contains(&guid) {
            return;
        }
        if self.querying.satisfied.len() >= crate::searches::MAX_SEARCHES {
            self.querying.satisfied.pop_front();
        }
        self.querying.satisfied.push_back(guid);
        if matches!(self.querying.running.get(&guid).map(DynamicQuery::origin), Some(Origin::Own)) {
            self.querying.running.remove(&guid);
        }
        if self.config.role != Role::Leaf {
            return;
        }
        let ultrapeers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                p.role == Role::Ultrapeer && self.querying.vendor.supports(**id, Kind::QUERY_STATUS_RESPONSE)
            })
            .map(|(id, _)| *id)
            .collect();
        for to in ultrapeers {
            let message = vendor::message(guid, QueryStatus::STOP.to_vendor());
            self.actions.push_back(Action::Send { to, message });
        }
    }

    /// Whether a download's re-query of `urn` may go out now: as a leaf,
    /// at most once per [`requeries::OWN_REQUERY_SPACING`], the pledge our
    /// `X-Requeries: False` makes.
    pub(super) fn may_requery(&mut self, urn: Urn, now: Instant) -> bool {
        self.config.role != Role::Leaf || self.querying.own_requeries.may_send(urn, now)
    }

    /// The vendor messages `peer` announced in its Messages Supported, as
    /// [`vendor::label`] writes them.
    pub fn vendor_messages(&self, peer: PeerId) -> Vec<String> {
        self.querying.vendor.announced(peer).iter().map(vendor::label).collect()
    }

    /// Dynamic queries running here.
    pub fn dynamic_queries(&self) -> usize {
        self.querying.running.len()
    }

    /// Counts the results of a hit for the dynamic query it answers.
    pub(super) fn count_results(&mut self, guid: Guid, results: usize) {
        if let Some(counted) = self.querying.requery_results(guid) {
            *counted += results;
        }
        if let Some(dq) = self.querying.running.get_mut(&guid) {
            dq.on_results(results);
        }
    }

    /// Runs the dynamic queries' steps due at `now`.
    pub(super) fn step_dynamic(&mut self, now: Instant) {
        let due: Vec<Guid> =
            self.querying.running.iter().filter(|(_, dq)| dq.next_due() <= now).map(|(guid, _)| *guid).collect();
        for guid in due {
            let Some(mut dq) = self.querying.running.remove(&guid) else { continue };
            let neighbours = self.neighbours(&dq);
            let steps = dq.step(&neighbours, now);
            self.carry_out(guid, steps, now);
            if !dq.is_done() {
                self.querying.running.insert(guid, dq);
            }
        }
    }

    fn run_dynamic(&mut self, mut dq: DynamicQuery, now: Instant) {
        let guid = dq.guid();
        let neighbours = self.neighbours(&dq);
        let steps = dq.start(&neighbours, now);
        self.carry_out(guid, steps, now);
        if dq.is_done() {
            return;
        }
        if let Origin::Leaf { peer, .. } = dq.origin() {
            if self.querying.leaf_queries(Some(peer)).count() >= MAX_DYNAMIC_QUERIES_PER_LEAF {
                self.querying.end_oldest(Some(peer));
            }
        }
        if self.querying.running.len() >= MAX_DYNAMIC_QUERIES {
            self.querying.end_oldest(None);
        }
        self.querying.running.insert(guid, dq);
    }

    fn carry_out(&mut self, guid: Guid, steps: Vec<Step>, now: Instant) {
        for step in steps {
            match step {
                Step::Send { to, message } => self.apply(vec![routing::Action::Send { to, message }], now),
                Step::AskStatus(leaf) => {
                    let message = vendor::message(guid, QueryStatus::request());
                    self.actions.push_back(Action::Send { to: leaf, message });
                }
            }
        }
    }

    /// The ultrapeers a dynamic query may go to, with what we know of them.
    fn neighbours(&self, dq: &DynamicQuery) -> Vec<Neighbour> {
        let Some(query) = dq.query() else { return Vec::new() };
        self.peers
            .iter()
            .filter(|(_, p)| p.role == Role::Ultrapeer)
            .filter(|(id, _)| !matches!(dq.origin(), Origin::Leaf { peer, .. } if peer == **id))
            // One whose Hops Flow refuses the query is no neighbour for it (dq.c).
            .filter(|(id, _)| self.querying.vendor.admits_query(**id, dq.hops()))
            .filter_map(|(&peer, _)| {
                let capacity = self.querying.capacity.get(&peer)?;
                Some(Neighbour {
                    peer,
                    degree: capacity.degree,
                    max_ttl: capacity.max_ttl,
                    matches: self.qrp.last_hop_match(peer, query),
                })
            })
            .collect()
    }

    /// Keeps, of the router's actions for query `guid`, the copies for
    /// leaves and drops those for ultrapeers: the dynamic query sends those.
    fn hold_for_ultrapeers(&self, actions: Vec<routing::Action>, guid: Guid) -> Vec<routing::Action> {
        actions
            .into_iter()
            .filter(|action| match action {
                routing::Action::Send { to, message } if message.guid == guid => {
                    self.peers.get(to).is_some_and(|p| p.role == Role::Leaf)
                }
                _ => true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
