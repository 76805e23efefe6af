//! QRP at the node: the route tables our leaves sent us, the one we send
//! our ultrapeers, and which queries go down to a leaf.
//!
//! A peer that declared itself a leaf (`X-Ultrapeer: False`) gets a query
//! only when the route table it sent matches it; until a table is in
//! force it gets none: queries are never flooded to leaves. A leaf sends
//! each ultrapeer that speaks QRP its table of the library's words right
//! after the handshake and again, as a patch, when the library changes.
//! An ultrapeer sends each ultrapeer that reads last-hop tables
//! (`X-Ultrapeer-Query-Routing`) the union of its library's and its leaves'
//! tables, again when one of them changes, and sends a query that would
//! end its travel at an ultrapeer (TTL 1 on arrival) only when that
//! ultrapeer's table, if it sent one, matches it.
//! A leaf forwards no one else's queries. Every query sent to a peer is capped at the TTL it advertised
//! (`X-Max-TTL`). A peer whose route table update is malformed is dropped
//! (the caller closes the link on [`QueryRouting::receive`]'s error).
//!
//! The union sent to ultrapeers is built once and shared by every link
//! that reads it (one `Arc`, one patch per distinct previous table), and
//! rebuilt for the leaves' tables at most once per node tick
//! ([`QueryRouting::tick`]), when one came or went since: as gtk-gnutella
//! merges its leaves' tables once in a while (`qrp_monitor`), not once per
//! leaf and reader, which made an ultrapeer with 30 leaves and 30
//! ultrapeers build 900 unions while its leaves connected.
//!
//! Memory: at most one table in force and one being received per peer,
//! each at most [`crate::qrp::MAX_TABLE_SLOTS`] bits; the number of peers
//! is bounded by the node's admission. The tables we sent are shared, not
//! copied per link.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::RngCore;

use crate::handshake::{PeerInfo, Role};
use crate::qrp::{QrpError, QueryKeys, RouteTable, RouteTableUpdate, TableReceiver};
use crate::routing::PeerId;
use crate::wire::{Guid, Message, Payload, PayloadType, Query};

/// What we know of one link's query routing.
#[derive(Default)]
struct Link {
    /// The peer declared itself a leaf: it gets only the queries its table matches.
    leaf: bool,
    /// The peer reads our route table: an ultrapeer that speaks QRP when
    /// we are its leaf, or one that reads last-hop tables when we are an ultrapeer.
    reads_our_table: bool,
    /// The peer is an ultrapeer: its table, if any, filters the last hop.
    ultrapeer: bool,
    /// The TTL it advertised, if it did.
    max_ttl: Option<u8>,
    /// Its route table, as far as received.
    receiver: TableReceiver,
    /// The last table we sent it, shared with the other links that got it.
    sent: Option<Arc<RouteTable>>,
}

impl Link {
    /// Whether it gets the union of our and our leaves' tables.
    fn reads_union(&self) -> bool {
        self.reads_our_table && self.ultrapeer && !self.leaf
    }
}

/// Per-link QRP state; see the module documentation.
#[derive(Default)]
pub struct QueryRouting {
    links: BTreeMap<PeerId, Link>,
    /// Our library's table, once the library gave it.
    own: Option<Arc<RouteTable>>,
    /// The union of `own` and the leaves' tables, as last built.
    union: Option<Arc<RouteTable>>,
    /// A leaf's table came or went since `union` was built.
    leaves_changed: bool,
    /// The updates that bring a new link from nothing to each table we
    /// send, computed once per table (gtk-gnutella's `routing_patch`).
    from_nothing: Vec<Patch>,
}

impl QueryRouting {
    /// A link is up: note the peer's role and capabilities; returns our
    /// table's messages for it if it should read them.
    pub fn connected(&mut self, peer: PeerId, info: &PeerInfo, role: Role, rng: &mut impl RngCore) -> Vec<Message> {
        let link = Link {
            leaf: info.role() == Role::Leaf && role == Role::Ultrapeer,
            reads_our_table: match role {
                Role::Leaf => info.ultrapeer && info.query_routing().is_some(),
                Role::Ultrapeer => info.ultrapeer_query_routing(),
            },
            ultrapeer: info.role() == Role::Ultrapeer,
            max_ttl: info.max_ttl(),
            ..Link::default()
        };
        self.links.insert(peer, link);
        self.send_table(peer, rng)
    }

    /// A link is gone; a leaf's table leaves the union at the next tick.
    pub fn closed(&mut self, peer: PeerId) {
        if self.links.remove(&peer).is_some_and(|link| link.leaf && link.receiver.table().is_some()) {
            self.leaves_changed = true;
        }
    }

    /// Whether `message` is a route table update, which [`QueryRouting::receive`] takes.
    pub fn is_update(message: &Message) -> bool {
        matches!(message.payload, Payload::Opaque { payload_type, .. } if PayloadType::from(payload_type) == PayloadType::RouteTable)
    }

    /// Applies a route table update from `peer`; a leaf's completed table
    /// joins the union at the next [`QueryRouting::tick`]. An error means
    /// the peer is to be dropped.
    pub fn receive(&mut self, peer: PeerId, message: &Message) -> Result<(), QrpError> {
        let (Payload::Opaque { bytes, .. }, Some(link)) = (&message.payload, self.links.get_mut(&peer)) else {
            return Ok(());
        };
        if link.receiver.receive(RouteTableUpdate::decode(bytes)?)? && link.leaf {
            self.leaves_changed = true;
        }
        Ok(())
    }

    /// The library's table changed: returns the patches for every peer that reads it.
    pub fn library_changed(&mut self, mut table: RouteTable, rng: &mut impl RngCore) -> Vec<(PeerId, Message)> {
        table.compact();
        self.own = Some(Arc::new(table));
        self.union = None;
        self.leaves_changed = false;
        self.send_to(self.readers(|link| link.reads_our_table), rng)
    }

    /// Whether our own table names anything (shared files, or files being
    /// downloaded): a leaf whose table names nothing wants no queries.
    pub fn own_names_anything(&self) -> bool {
        self.own.as_ref().is_some_and(|table| table.set_count() > 0)
    }

    /// Once per node tick: if a leaf's table came or went, the union is
    /// built again and its patches go to the ultrapeers that read it.
    pub fn tick(&mut self, rng: &mut impl RngCore) -> Vec<(PeerId, Message)> {
        if !std::mem::take(&mut self.leaves_changed) {
            return Vec::new();
        }
        self.union = None;
        self.send_to(self.readers(Link::reads_union), rng)
    }

    fn readers(&self, which: impl Fn(&Link) -> bool) -> Vec<PeerId> {
        self.links.iter().filter(|(_, link)| which(link)).map(|(&peer, _)| peer).collect()
    }

    /// Sends `readers` what they lack of the table for them; one patch is
    /// computed per distinct table they last got.
    fn send_to(&mut self, readers: Vec<PeerId>, rng: &mut impl RngCore) -> Vec<(PeerId, Message)> {
        let current = [self.own.as_ref(), self.union.as_ref()];
        self.from_nothing.retain(|patch| current.iter().flatten().any(|table| Arc::ptr_eq(table, &patch.to)));
        let mut patches = std::mem::take(&mut self.from_nothing);
        let mut out = Vec::new();
        for peer in readers {
            let Some(table) = self.table_for(peer) else { continue };
            let Some(link) = self.links.get_mut(&peer) else { continue };
            let same = |patch: &&Patch| {
                Arc::ptr_eq(&patch.to, &table)
                    && patch.from.as_ref().map(Arc::as_ptr) == link.sent.as_ref().map(Arc::as_ptr)
            };
            let bytes = match patches.iter().find(same) {
                Some(patch) => patch.updates.clone(),
                None => {
                    let updates: Vec<Vec<u8>> =
                        table.updates_from(link.sent.as_deref()).iter().map(RouteTableUpdate::encode).collect();
                    patches.push(Patch { from: link.sent.clone(), to: table.clone(), updates: updates.clone() });
                    updates
                }
            };
            link.sent = Some(table);
            out.extend(bytes.into_iter().map(|bytes| (peer, update_message(bytes, rng))));
        }
        patches.retain(|patch| patch.from.is_none());
        self.from_nothing = patches;
        out
    }

    /// What we tell `peer` of ourselves: our library's table, or the union
    /// with our leaves' when we are an ultrapeer telling an ultrapeer.
    fn table_for(&mut self, peer: PeerId) -> Option<Arc<RouteTable>> {
        let own = self.own.as_ref()?;
        if !self.links.get(&peer).is_some_and(|link| link.ultrapeer && !link.leaf) {
            return Some(own.clone());
        }
        if self.union.is_none() {
            let mut union = RouteTable::clone(own);
            for table in self.links.values().filter(|link| link.leaf).filter_map(|link| link.receiver.table()) {
                union.merge(table);
            }
            self.union = Some(Arc::new(union));
        }
        self.union.clone()
    }

    /// Whether `message` may go to `to`, capping a query's TTL at what
    /// `to` advertised; a query goes to a leaf only when its table matches,
    /// and a leaf (`role`) sends only its own queries.
    pub fn admits(&self, role: Role, to: PeerId, message: &mut Message) -> bool {
        let (Payload::Query(query), Some(link)) = (&message.payload, self.links.get(&to)) else {
            return true;
        };
        if role == Role::Leaf && message.hops > 0 {
            return false;
        }
        let keys = || QueryKeys::new(&query.criteria, &query.urns);
        if link.leaf && !link.receiver.table().is_some_and(|table| table.routes(&keys())) {
            return false;
        }
        if let Some(max) = link.max_ttl {
            message.ttl = message.ttl.min(max);
        }
        let last_hop = link.ultrapeer && message.ttl == 1;
        if last_hop && link.receiver.table().is_some_and(|table| !table.routes(&keys())) {
            return false;
        }
        true
    }

    /// Whether the last-hop table of the ultrapeer `peer` matches `query`;
    /// `None` when it sent none.
    pub fn last_hop_match(&self, peer: PeerId, query: &Query) -> Option<bool> {
        let link = self.links.get(&peer).filter(|link| link.ultrapeer)?;
        let table = link.receiver.table()?;
        Some(table.routes(&QueryKeys::new(&query.criteria, &query.urns)))
    }

    /// Whether a route table from `peer` is in force (its queries are filtered by it).
    pub fn table_in_force(&self, peer: PeerId) -> bool {
        self.links.get(&peer).is_some_and(|link| link.receiver.table().is_some())
    }

    /// Memory held by the tables in force, in bytes.
    pub fn memory(&self) -> usize {
        self.links.values().filter_map(|link| link.receiver.table()).map(RouteTable::memory).sum()
    }

    fn send_table(&mut self, peer: PeerId, rng: &mut impl RngCore) -> Vec<Message> {
        if !self.links.get(&peer).is_some_and(|link| link.reads_our_table) {
            return Vec::new();
        }
        self.send_to(vec![peer], rng).into_iter().map(|(_, message)| message).collect()
    }
}

/// The encoded updates from one table we sent to the next.
struct Patch {
    from: Option<Arc<RouteTable>>,
    to: Arc<RouteTable>,
    updates: Vec<Vec<u8>>,
}

/// A route table update as the descriptor it travels in.
fn update_message(bytes: Vec<u8>, rng: &mut impl RngCore) -> Message {
    Message {
        guid: Guid::from_rng(rng),
        ttl: 1,
        hops: 0,
        payload: Payload::Opaque { payload_type: PayloadType::RouteTable.into(), bytes },
    }
}
