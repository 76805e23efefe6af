//! Out-of-band QueryHit delivery, version 3 (gtk-gnutella's
//! `doc/gnutella/out-of-band` and `out-of-band-v3`, `vmsg.c`).
//!
//! A query asking for out-of-band hits has the `0x0400` flag, GGEP `SO`
//! (empty) in its extensions, and a GUID naming the querier: bytes 0–3 its
//! IPv4 address, bytes 13–14 its port little-endian ([`oob_guid`]). An
//! answerer with hits sends *Reply Number* (LIME/12 v3, UDP, the query's
//! GUID) to that address; the querier claims with *Reply Ack* (LIME/11 v3)
//! carrying a security token in GGEP `SO`; the answerer then sends the hits
//! over UDP to where the claim came from, each with the token in GGEP `SO`
//! of its trailer, so that hits from anyone who never saw the claim are
//! told apart.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::super::{Ggep, GgepId, Guid, Reader, WireError, GGEP_MAGIC};
use super::{Kind, Vendor};

/// `"SO"`: in a query, "out-of-band v3 understood"; in a Reply Ack and the
/// hits it claims, the security token.
pub const SO: GgepId = GgepId::from_static("SO");
/// The longest token accepted.
pub const MAX_TOKEN: usize = 16;
/// Bit of Reply Number's second byte: the answerer takes unsolicited UDP.
const UNSOLICITED: u8 = 0x01;

/// LIME/12 v3: "I have hits for your query".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyNumber {
    /// Hits on offer (255: 255 or more); never 0.
    pub hits: u8,
    /// Whether the answerer takes unsolicited UDP.
    pub unsolicited: bool,
}

impl ReplyNumber {
    /// Reads the body; bytes after the first two are ignored, as v3 asks.
    pub fn decode(body: &[u8]) -> Result<ReplyNumber, WireError> {
        let mut r = Reader::new(body);
        let hits = r.u8("reply number hits")?;
        let flags = r.u8("reply number flags")?;
        if hits == 0 {
            return Err(WireError::Truncated { what: "reply number hits" });
        }
        Ok(ReplyNumber { hits, unsolicited: flags & UNSOLICITED != 0 })
    }

    /// The message to send.
    pub fn to_vendor(self) -> Vendor {
        Vendor { kind: Kind::OOB_REPLY_NUMBER, body: vec![self.hits, if self.unsolicited { UNSOLICITED } else { 0 }] }
    }
}

/// LIME/11 v3: "send me that many hits, with this token".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyAck {
    /// Hits wanted (255: all).
    pub wanted: u8,
    /// The security token: 1 to [`MAX_TOKEN`] bytes.
    pub token: Vec<u8>,
}

impl ReplyAck {
    /// Reads the body: a byte, then a GGEP block holding `SO`.
    pub fn decode(body: &[u8]) -> Result<ReplyAck, WireError> {
        let mut r = Reader::new(body);
        let wanted = r.u8("reply ack count")?;
        let rest = r.rest();
        if rest.first() != Some(&GGEP_MAGIC) {
            return Err(WireError::Truncated { what: "reply ack token" });
        }
        let (ggep, _) = Ggep::decode(rest)?;
        match ggep.get(SO) {
            Some(token) if (1..=MAX_TOKEN).contains(&token.len()) => Ok(ReplyAck { wanted, token: token.to_vec() }),
            _ => Err(WireError::Truncated { what: "reply ack token" }),
        }
    }

    /// The message to send.
    pub fn to_vendor(&self) -> Vendor {
        let mut ggep = Ggep::new();
        ggep.insert(SO, self.token.clone());
        let mut body = vec![self.wanted];
        body.extend_from_slice(&ggep.encode());
        Vendor { kind: Kind::OOB_REPLY_ACK, body }
    }
}

/// A query GUID naming `addr` as where out-of-band hits are offered;
/// `random` fills the other bytes.
pub fn oob_guid(addr: SocketAddrV4, random: Guid) -> Guid {
    let mut bytes = random.0;
    bytes[..4].copy_from_slice(&addr.ip().octets());
    bytes[13..15].copy_from_slice(&addr.port().to_le_bytes());
    Guid(bytes)
}

/// The address an out-of-band query's GUID names.
pub fn oob_address(guid: &Guid) -> SocketAddrV4 {
    let b = guid.0;
    SocketAddrV4::new(Ipv4Addr::new(b[0], b[1], b[2], b[3]), u16::from_le_bytes([b[13], b[14]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_number_and_ack_round_trip_as_gtk_gnutella_writes_them() {
        let number = ReplyNumber { hits: 3, unsolicited: true };
        let vendor = number.to_vendor();
        assert_eq!(vendor.body, vec![3, 1]);
        assert_eq!(ReplyNumber::decode(&[3, 1, 9, 9]).unwrap(), number);
        let ack = ReplyAck { wanted: 3, token: vec![1, 2, 3, 4] };
        let vendor = ack.to_vendor();
        // wanted, then GGEP: magic, last + ID length 2, "SO", length 4, token.
        assert_eq!(vendor.body, vec![3, 0xC3, 0x82, b'S', b'O', 0x44, 1, 2, 3, 4]);
        assert_eq!(ReplyAck::decode(&vendor.body).unwrap(), ack);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(ReplyNumber::decode(&[3]).is_err());
        assert!(ReplyNumber::decode(&[0, 1]).is_err());
        assert!(ReplyAck::decode(&[3]).is_err());
        assert!(ReplyAck::decode(&[3, 0xC3, 0x82, b'S', b'O', 0x40]).is_err(), "an empty token");
        let long = ReplyAck { wanted: 1, token: vec![7; MAX_TOKEN + 1] }.to_vendor();
        assert!(ReplyAck::decode(&long.body).is_err());
    }

    #[test]
    fn the_guid_names_the_querier() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), 6346);
        let guid = oob_guid(addr, Guid([0xAB; 16]));
        assert_eq!(&guid.0[..4], &[192, 0, 2, 7]);
        assert_eq!(&guid.0[13..15], &[0xCA, 0x18]);
        assert_eq!(oob_address(&guid), addr);
    }
}
