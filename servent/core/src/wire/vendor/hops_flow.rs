//! Hops Flow (BEAR/4 version 1): "send me no query whose hops reach this".
//!
//! The body is one byte. A servent under flow control sends 0 (no query at
//! all) and 255 when it recovers (gtk-gnutella's `nodes.c`); a leaf with
//! nothing to offer sends 0 and, once it has, 5 (LimeWire's
//! `HopsFlowManager`). A query whose hop count, as sent, is at least the
//! value is not sent to that peer (gtk-gnutella's `qrp.c`).

use super::{Kind, Vendor};
use crate::wire::WireError;

/// The body of a Hops Flow message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HopsFlow(pub u8);

impl HopsFlow {
    /// No query at all.
    pub const NONE: HopsFlow = HopsFlow(0);
    /// What a leaf sends once it wants queries again, as LimeWire's leaves do.
    pub const LEAF_OPEN: HopsFlow = HopsFlow(5);
    /// Every query: what a peer that never sent one gets.
    pub const ALL: HopsFlow = HopsFlow(u8::MAX);

    /// Reads the body; bytes after the first are ignored.
    pub fn decode(body: &[u8]) -> Result<HopsFlow, WireError> {
        body.first().map(|&hops| HopsFlow(hops)).ok_or(WireError::Truncated { what: "hops flow" })
    }

    /// The message to send.
    pub fn to_vendor(self) -> Vendor {
        Vendor { kind: Kind::HOPS_FLOW, body: vec![self.0] }
    }

    /// Whether a query sent with `hops` hops may go to the peer that asked for this.
    pub fn admits(self, hops: u8) -> bool {
        hops < self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_flow_is_one_byte_and_bounds_the_hops_sent() {
        let vendor = HopsFlow(2).to_vendor();
        assert_eq!(vendor.body, [2]);
        assert_eq!(HopsFlow::decode(&vendor.body), Ok(HopsFlow(2)));
        assert!(HopsFlow(2).admits(1));
        assert!(!HopsFlow(2).admits(2));
        assert!(!HopsFlow::NONE.admits(0));
        assert!(matches!(HopsFlow::decode(&[]), Err(WireError::Truncated { .. })));
    }
}
