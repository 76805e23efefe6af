//! QRP at the node: the route tables our leaves sent us, the one we send
//! our ultrapeers, and which queries go down to a leaf.
//!
//! A peer that declared itself a leaf (`X-Ultrapeer: False`) gets a query
//! only when the route table it sent matches it; until a table is in
//! force it gets none: queries are never flooded to leaves. A leaf sends
//! each ultrapeer that speaks QRP its table of the library's words right
//! after the handshake and again, as a patch, when the library changes.
//! A leaf forwards no one else's queries. Every query sent to a peer is capped at the TTL it advertised
//! (`X-Max-TTL`). A peer whose route table update is malformed is dropped
//! (the caller closes the link on [`QueryRouting::receive`]'s error).
//!
//! Memory: at most one table in force and one being received per peer,
//! each at most [`crate::qrp::MAX_TABLE_SLOTS`] bits; the number of peers
//! is bounded by the node's admission.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rand::RngCore;

use crate::handshake::{PeerInfo, Role};
use crate::qrp::{QrpError, QueryKeys, RouteTable, RouteTableUpdate, TableReceiver};
use crate::routing::PeerId;
use crate::wire::{Guid, Message, Payload, PayloadType};

/// The route table update payload type.
const ROUTE_TABLE_UPDATE: u8 = 0x30;

/// What we know of one link's query routing.
#[derive(Default)]
struct Link {
    /// The peer declared itself a leaf: it gets only the queries its table matches.
    leaf: bool,
    /// The peer reads our route table: it is an ultrapeer that speaks QRP and we are its leaf.
    reads_our_table: bool,
    /// The TTL it advertised, if it did.
    max_ttl: Option<u8>,
    /// Its route table, as far as received.
    receiver: TableReceiver,
    /// The last table we sent it.
    sent: Option<RouteTable>,
}

/// Per-link QRP state; see the module documentation.
#[derive(Default)]
pub struct QueryRouting {
    links: BTreeMap<PeerId, Link>,
    /// Our library's table, once the library gave it.
    own: Option<RouteTable>,
}

impl QueryRouting {
    /// A link is up: note the peer's role and capabilities; returns our
    /// table's messages for it if it should read them.
    pub fn connected(&mut self, peer: PeerId, info: &PeerInfo, role: Role, rng: &mut impl RngCore) -> Vec<Message> {
        let link = Link {
            leaf: info.role() == Role::Leaf && role == Role::Ultrapeer,
            reads_our_table: role == Role::Leaf && info.ultrapeer && info.query_routing().is_some(),
            max_ttl: info.max_ttl(),
            ..Link::default()
        };
        self.links.insert(peer, link);
        self.send_table(peer, rng)
    }

    /// A link is gone.
    pub fn closed(&mut self, peer: PeerId) {
        self.links.remove(&peer);
    }

    /// Whether `message` is a route table update, which [`QueryRouting::receive`] takes.
    pub fn is_update(message: &Message) -> bool {
        matches!(message.payload, Payload::Opaque { payload_type: ROUTE_TABLE_UPDATE, .. })
    }

    /// Applies a route table update from `peer`; an error means the peer is to be dropped.
    pub fn receive(&mut self, peer: PeerId, message: &Message) -> Result<(), QrpError> {
        let (Payload::Opaque { bytes, .. }, Some(link)) = (&message.payload, self.links.get_mut(&peer)) else {
            return Ok(());
        };
        link.receiver.receive(RouteTableUpdate::decode(bytes)?)?;
        Ok(())
    }

    /// The library's table changed: returns the patches for every peer that reads it.
    pub fn library_changed(&mut self, table: RouteTable, rng: &mut impl RngCore) -> Vec<(PeerId, Message)> {
        self.own = Some(table);
        let readers: Vec<PeerId> =
            self.links.iter().filter(|(_, link)| link.reads_our_table).map(|(&peer, _)| peer).collect();
        readers.into_iter().flat_map(|peer| self.send_table(peer, rng).into_iter().map(move |m| (peer, m))).collect()
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
        if link.leaf {
            let routed =
                link.receiver.table().is_some_and(|table| table.routes(&QueryKeys::new(&query.criteria, &query.urns)));
            if !routed {
                return false;
            }
        }
        if let Some(max) = link.max_ttl {
            message.ttl = message.ttl.min(max);
        }
        true
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
        let (Some(own), Some(link)) = (&self.own, self.links.get_mut(&peer)) else {
            return Vec::new();
        };
        if !link.reads_our_table {
            return Vec::new();
        }
        let updates = own.updates_from(link.sent.as_ref());
        link.sent = Some(own.clone());
        updates
            .into_iter()
            .map(|update| Message {
                guid: Guid::from_rng(rng),
                ttl: 1,
                hops: 0,
                payload: Payload::Opaque { payload_type: PayloadType::RouteTable.into(), bytes: update.encode() },
            })
            .collect()
    }
}
