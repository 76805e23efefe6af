//! Vendor messages at the node: what each peer understands, and the Hops
//! Flow it asked for.
//!
//! Right after a handshake we send the peer our Messages Supported
//! ([`ANNOUNCED`]) and remember the list it sends back: a kind is sent only
//! to a peer that announced it. A peer's Hops Flow bounds the hop count of
//! the queries it gets (none when 0). Kinds we do not know, and malformed
//! bodies of the ones we do, are counted and ignored: a vendor message
//! never drops a peer.
//!
//! Memory: per peer, its announced list (at most
//! [`crate::wire::vendor::MAX_SUPPORTED`] kinds) and one byte of Hops Flow.

use std::collections::BTreeMap;

use rand::RngCore;

use crate::routing::PeerId;
use crate::wire::vendor::hops_flow::HopsFlow;
use crate::wire::vendor::query_status::QueryStatus;
use crate::wire::vendor::{Kind, MessagesSupported, Vendor};
use crate::wire::{Guid, Message, PayloadType};

/// The kinds we announce in Messages Supported: every kind the node handles.
pub const ANNOUNCED: &[Kind] = &[
    Kind::HOPS_FLOW,
    Kind::QUERY_STATUS_REQUEST,
    Kind::QUERY_STATUS_RESPONSE,
    Kind::OOB_REPLY_NUMBER,
    Kind::OOB_REPLY_ACK,
    Kind::PUSH_PROXY_REQUEST,
    Kind::PUSH_PROXY_ACK,
    Kind::TCP_CONNECT_BACK,
];

/// A vendor message that asks something of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Nothing more to do (an announced list or a Hops Flow, now kept; or
    /// a kind we do not handle).
    Noted,
    /// Our ultrapeer asks how many results our search `guid` kept.
    StatusRequest(Guid),
    /// A leaf tells how many results its query `guid` kept.
    Status(Guid, QueryStatus),
    /// The body did not parse: counted, ignored.
    Malformed,
}

#[derive(Default)]
struct Link {
    supported: MessagesSupported,
    hops_flow: Option<HopsFlow>,
    /// The Hops Flow we last sent it, if any.
    told: Option<HopsFlow>,
}

/// Per-link vendor state; see the module documentation.
#[derive(Default)]
pub struct VendorLinks {
    links: BTreeMap<PeerId, Link>,
}

impl VendorLinks {
    /// A link is up: returns our Messages Supported for it.
    pub fn connected(&mut self, peer: PeerId, rng: &mut impl RngCore) -> Message {
        self.links.insert(peer, Link::default());
        let ours = MessagesSupported { kinds: ANNOUNCED.to_vec() };
        message(Guid::from_rng(rng), ours.to_vendor())
    }

    /// A link is gone.
    pub fn closed(&mut self, peer: PeerId) {
        self.links.remove(&peer);
    }

    /// Takes a vendor message from `peer`, whose descriptor GUID is `guid`.
    pub fn receive(&mut self, peer: PeerId, guid: Guid, received: Vendor) -> Received {
        let Some(link) = self.links.get_mut(&peer) else { return Received::Noted };
        let kind = received.kind;
        let outcome = if kind == Kind::MESSAGES_SUPPORTED {
            MessagesSupported::decode(&received.body).map(|list| {
                link.supported = list;
                Received::Noted
            })
        } else if kind.same_message(&Kind::HOPS_FLOW) && kind.version <= Kind::HOPS_FLOW.version {
            HopsFlow::decode(&received.body).map(|flow| {
                link.hops_flow = Some(flow);
                Received::Noted
            })
        } else if kind.same_message(&Kind::QUERY_STATUS_REQUEST) {
            Ok(Received::StatusRequest(guid))
        } else if kind.same_message(&Kind::QUERY_STATUS_RESPONSE) {
            QueryStatus::decode(&received.body).map(|status| Received::Status(guid, status))
        } else {
            Ok(Received::Noted)
        };
        outcome.unwrap_or(Received::Malformed)
    }

    /// The kinds `peer` announced in its Messages Supported.
    pub fn announced(&self, peer: PeerId) -> &[Kind] {
        self.links.get(&peer).map_or(&[], |link| &link.supported.kinds)
    }

    /// Whether `peer` announced `kind`.
    pub fn supports(&self, peer: PeerId, kind: Kind) -> bool {
        self.links.get(&peer).is_some_and(|link| link.supported.version_of(kind).is_some())
    }

    /// Whether a query sent with `hops` hops may go to `peer`, by its Hops Flow.
    pub fn admits_query(&self, peer: PeerId, hops: u8) -> bool {
        self.links.get(&peer).and_then(|link| link.hops_flow).is_none_or(|flow| flow.admits(hops))
    }

    /// The message that tells `peer` our Hops Flow is now `flow`, if it
    /// understands Hops Flow and was told otherwise (never told counts as
    /// [`HopsFlow::ALL`]).
    pub fn tell_hops_flow(&mut self, peer: PeerId, flow: HopsFlow, rng: &mut impl RngCore) -> Option<Message> {
        let supports = self.supports(peer, Kind::HOPS_FLOW);
        let link = self.links.get_mut(&peer).filter(|_| supports)?;
        if link.told.unwrap_or(HopsFlow::ALL) == flow {
            return None;
        }
        link.told = Some(flow);
        Some(message(Guid::from_rng(rng), flow.to_vendor()))
    }
}

/// Whether `message` is a vendor message (payload type 0x31 or 0x32).
pub fn is_vendor(message: &Message) -> bool {
    matches!(message.payload_type(), PayloadType::Vendor | PayloadType::StandardVendor)
}

/// A vendor message to a neighbour: TTL 1, hops 0. A Query Status
/// message carries its query's GUID.
pub fn message(guid: Guid, vendor: Vendor) -> Message {
    Message { guid, ttl: 1, hops: 0, payload: vendor.into_payload() }
}

/// A kind as people write it, `BEAR/4v1`; a vendor code byte that is not
/// a printable ASCII character shows as `?` (the code comes from the network).
pub fn label(kind: &Kind) -> String {
    let vendor: String = kind.vendor.iter().map(|&b| if b.is_ascii_graphic() { char::from(b) } else { '?' }).collect();
    format!("{vendor}/{}v{}", kind.selector, kind.version)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn vendor_of(message: &Message) -> Vendor {
        Vendor::from_payload(&message.payload).unwrap().unwrap()
    }

    #[test]
    fn a_peer_gets_our_list_and_only_the_kinds_it_announced() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut links = VendorLinks::default();
        let ours = links.connected(PeerId(1), &mut rng);
        let list = MessagesSupported::decode(&vendor_of(&ours).body).unwrap();
        assert_eq!(list.kinds, ANNOUNCED);
        assert_eq!((ours.ttl, ours.hops), (1, 0));
        assert!(!links.supports(PeerId(1), Kind::HOPS_FLOW));
        assert_eq!(links.tell_hops_flow(PeerId(1), HopsFlow::NONE, &mut rng), None, "not announced");
        let theirs = MessagesSupported { kinds: vec![Kind::HOPS_FLOW] }.to_vendor();
        assert_eq!(links.receive(PeerId(1), Guid([1; 16]), theirs), Received::Noted);
        assert!(links.supports(PeerId(1), Kind::HOPS_FLOW));
        assert!(!links.supports(PeerId(1), Kind::QUERY_STATUS_REQUEST));
        let told = links.tell_hops_flow(PeerId(1), HopsFlow::NONE, &mut rng).unwrap();
        assert_eq!(vendor_of(&told), HopsFlow::NONE.to_vendor());
        assert_eq!(links.tell_hops_flow(PeerId(1), HopsFlow::NONE, &mut rng), None, "told already");
        let labels: Vec<String> = links.announced(PeerId(1)).iter().map(label).collect();
        assert_eq!(labels, ["BEAR/4v1"]);
        assert!(links.announced(PeerId(2)).is_empty());
    }

    #[test]
    fn a_vendor_code_from_the_network_cannot_inject_characters_into_its_label() {
        assert_eq!(label(&Kind::new(*b"G\n\x1b[", 7, 2)), "G??[/7v2");
    }

    #[test]
    fn hops_flow_bounds_the_queries_a_peer_gets() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut links = VendorLinks::default();
        links.connected(PeerId(1), &mut rng);
        assert!(links.admits_query(PeerId(1), 6));
        links.receive(PeerId(1), Guid([1; 16]), HopsFlow(2).to_vendor());
        assert!(links.admits_query(PeerId(1), 1));
        assert!(!links.admits_query(PeerId(1), 2));
        links.receive(PeerId(1), Guid([1; 16]), HopsFlow::NONE.to_vendor());
        assert!(!links.admits_query(PeerId(1), 0));
    }

    #[test]
    fn hostile_or_unknown_vendor_messages_are_ignored_safely() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut links = VendorLinks::default();
        links.connected(PeerId(1), &mut rng);
        let hostile = Vendor { kind: Kind::MESSAGES_SUPPORTED, body: vec![0xFF, 0xFF] };
        assert_eq!(links.receive(PeerId(1), Guid([1; 16]), hostile), Received::Malformed);
        let empty_flow = Vendor { kind: Kind::HOPS_FLOW, body: vec![] };
        assert_eq!(links.receive(PeerId(1), Guid([1; 16]), empty_flow), Received::Malformed);
        let unknown = Vendor { kind: Kind::new(*b"ZZZZ", 9, 9), body: vec![1; 100] };
        assert_eq!(links.receive(PeerId(1), Guid([1; 16]), unknown), Received::Noted);
        let status = QueryStatus(7).to_vendor();
        assert_eq!(links.receive(PeerId(1), Guid([4; 16]), status), Received::Status(Guid([4; 16]), QueryStatus(7)));
        assert_eq!(links.receive(PeerId(9), Guid([4; 16]), QueryStatus::request()), Received::Noted, "unknown link");
        assert!(links.admits_query(PeerId(1), 6));
    }
}
