//! Vendor messages (payload types 0x31 and 0x32): one envelope, many kinds.
//!
//! Every vendor message payload starts with the same eight bytes:
//!
//! ```text
//! offset size field
//!      0    4 vendor code ("BEAR", "LIME", "GTKG", or four NULs)
//!      4    2 selector, little-endian
//!      6    2 version, little-endian
//!      8    … the kind's own body
//! ```
//!
//! A servent announces the kinds it understands with *Messages Supported*
//! (vendor `\0\0\0\0`, selector 0, version 0) right after the handshake,
//! and sends a kind only to a peer that announced it. Kinds we do not know
//! are kept as their bytes ([`Vendor::body`]) and ignored safely; each kind
//! we do know has its body codec in a submodule of this one.

pub mod connect_back;
pub mod hops_flow;
pub mod oob;
pub mod push_proxy;
pub mod query_status;

use super::{Payload, PayloadType, Reader, WireError};

/// Which vendor message: vendor code, selector and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    /// Four-byte vendor code.
    pub vendor: [u8; 4],
    /// Message selector within the vendor's space.
    pub selector: u16,
    /// Version of the message's format.
    pub version: u16,
}

impl Kind {
    /// Messages Supported: the list of kinds a servent understands.
    pub const MESSAGES_SUPPORTED: Kind = Kind::new(*b"\0\0\0\0", 0, 0);
    /// Hops Flow: the highest hop count of queries the sender still wants (1-byte body).
    pub const HOPS_FLOW: Kind = Kind::new(*b"BEAR", 4, 1);
    /// TCP Connect Back: "connect to me on this port" (2-byte port, little-endian).
    pub const TCP_CONNECT_BACK: Kind = Kind::new(*b"BEAR", 7, 1);
    /// Query Status Request: an ultrapeer asks a leaf how many hits it kept.
    pub const QUERY_STATUS_REQUEST: Kind = Kind::new(*b"BEAR", 11, 1);
    /// Query Status Response: a leaf's count of kept hits (u16, 0xFFFF: stop).
    pub const QUERY_STATUS_RESPONSE: Kind = Kind::new(*b"BEAR", 12, 1);
    /// OOB reply acknowledgement (LIME/11 version 3, carries a security token).
    pub const OOB_REPLY_ACK: Kind = Kind::new(*b"LIME", 11, 3);
    /// OOB reply number: "I have hits for your query" (LIME/12 version 3).
    pub const OOB_REPLY_NUMBER: Kind = Kind::new(*b"LIME", 12, 3);
    /// Push Proxy Request: a leaf asks its ultrapeer to be its push proxy.
    pub const PUSH_PROXY_REQUEST: Kind = Kind::new(*b"LIME", 21, 2);
    /// Push Proxy Acknowledgement: the ultrapeer's address, as a push proxy.
    pub const PUSH_PROXY_ACK: Kind = Kind::new(*b"LIME", 22, 2);

    /// A kind from its three fields.
    pub const fn new(vendor: [u8; 4], selector: u16, version: u16) -> Kind {
        Kind { vendor, selector, version }
    }

    /// The same message in any version: versions differ in body format only.
    pub fn same_message(&self, other: &Kind) -> bool {
        self.vendor == other.vendor && self.selector == other.selector
    }
}

/// Bytes of the envelope before a kind's body.
pub const ENVELOPE_LEN: usize = 8;
/// Most entries a Messages Supported we accept may list.
pub const MAX_SUPPORTED: usize = 256;

/// One vendor message: its kind and its body, not yet interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vendor {
    /// Which message.
    pub kind: Kind,
    /// The kind's body, after the envelope.
    pub body: Vec<u8>,
}

impl Vendor {
    /// Reads a vendor message from a 0x31 or 0x32 payload; `None` for any other payload.
    pub fn from_payload(payload: &Payload) -> Option<Result<Vendor, WireError>> {
        match payload {
            Payload::Opaque { payload_type, bytes }
                if matches!(PayloadType::from(*payload_type), PayloadType::Vendor | PayloadType::StandardVendor) =>
            {
                Some(Vendor::decode(bytes))
            }
            _ => None,
        }
    }

    /// Reads the envelope of a vendor payload.
    pub fn decode(bytes: &[u8]) -> Result<Vendor, WireError> {
        let mut r = Reader::new(bytes);
        let vendor = r.array("vendor code")?;
        let selector = r.u16_le("vendor selector")?;
        let version = r.u16_le("vendor version")?;
        Ok(Vendor { kind: Kind { vendor, selector, version }, body: r.rest().to_vec() })
    }

    /// The payload to send (type 0x31), envelope included.
    pub fn into_payload(self) -> Payload {
        let mut bytes = Vec::with_capacity(ENVELOPE_LEN + self.body.len());
        bytes.extend_from_slice(&self.kind.vendor);
        bytes.extend_from_slice(&self.kind.selector.to_le_bytes());
        bytes.extend_from_slice(&self.kind.version.to_le_bytes());
        bytes.extend_from_slice(&self.body);
        Payload::Opaque { payload_type: PayloadType::Vendor.into(), bytes }
    }
}

/// The body of Messages Supported: the kinds a servent understands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessagesSupported {
    /// Each kind, with its highest version understood.
    pub kinds: Vec<Kind>,
}

impl MessagesSupported {
    /// Reads the body: a u16 count, then 8 bytes per kind. Over [`MAX_SUPPORTED`] is refused.
    pub fn decode(body: &[u8]) -> Result<MessagesSupported, WireError> {
        let mut r = Reader::new(body);
        let count = usize::from(r.u16_le("supported count")?);
        if count > MAX_SUPPORTED {
            return Err(WireError::TooMany { what: "supported vendor messages", limit: MAX_SUPPORTED });
        }
        let mut kinds = Vec::with_capacity(count);
        for _ in 0..count {
            let vendor = r.array("supported vendor")?;
            let selector = r.u16_le("supported selector")?;
            let version = r.u16_le("supported version")?;
            kinds.push(Kind { vendor, selector, version });
        }
        Ok(MessagesSupported { kinds })
    }

    /// The message to send.
    pub fn to_vendor(&self) -> Vendor {
        let count = u16::try_from(self.kinds.len().min(MAX_SUPPORTED)).unwrap_or(0);
        let mut body = Vec::with_capacity(2 + 8 * usize::from(count));
        body.extend_from_slice(&count.to_le_bytes());
        for kind in self.kinds.iter().take(usize::from(count)) {
            body.extend_from_slice(&kind.vendor);
            body.extend_from_slice(&kind.selector.to_le_bytes());
            body.extend_from_slice(&kind.version.to_le_bytes());
        }
        Vendor { kind: Kind::MESSAGES_SUPPORTED, body }
    }

    /// The version of `kind`'s message the sender understands, if any.
    pub fn version_of(&self, kind: Kind) -> Option<u16> {
        self.kinds.iter().filter(|k| k.same_message(&kind)).map(|k| k.version).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_through_an_opaque_payload() {
        let sent = Vendor { kind: Kind::HOPS_FLOW, body: vec![2] };
        let payload = sent.clone().into_payload();
        assert_eq!(payload.payload_type(), PayloadType::Vendor);
        let Payload::Opaque { bytes, .. } = &payload else { panic!("vendor messages travel as opaque payloads") };
        assert_eq!(bytes, &[b'B', b'E', b'A', b'R', 4, 0, 1, 0, 2]);
        assert_eq!(Vendor::from_payload(&payload), Some(Ok(sent)));
    }

    #[test]
    fn a_truncated_envelope_is_an_error_and_other_payloads_are_not_vendor_messages() {
        let short = Payload::Opaque { payload_type: 0x31, bytes: b"BEAR\x04".to_vec() };
        assert!(matches!(Vendor::from_payload(&short), Some(Err(WireError::Truncated { .. }))));
        let table = Payload::Opaque { payload_type: 0x30, bytes: vec![0; 10] };
        assert_eq!(Vendor::from_payload(&table), None);
    }

    #[test]
    fn messages_supported_round_trips_and_tells_versions() {
        let ours =
            MessagesSupported { kinds: vec![Kind::HOPS_FLOW, Kind::new(*b"LIME", 12, 2), Kind::OOB_REPLY_NUMBER] };
        let vendor = ours.to_vendor();
        assert_eq!(&vendor.body[..2], &[3, 0]);
        let read = MessagesSupported::decode(&vendor.body).unwrap();
        assert_eq!(read, ours);
        assert_eq!(read.version_of(Kind::OOB_REPLY_NUMBER), Some(3));
        assert_eq!(read.version_of(Kind::QUERY_STATUS_REQUEST), None);
    }

    #[test]
    fn a_hostile_supported_count_is_refused_before_allocating() {
        assert!(matches!(
            MessagesSupported::decode(&[0xFF, 0xFF]),
            Err(WireError::TooMany { what: "supported vendor messages", .. })
        ));
        assert!(matches!(MessagesSupported::decode(&[2, 0, b'B', b'E']), Err(WireError::Truncated { .. })));
    }
}
