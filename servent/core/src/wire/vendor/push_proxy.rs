//! Push Proxy Request (LIME/21) and Acknowledgement (LIME/22).
//!
//! A firewalled leaf asks each of its ultrapeers to be its push proxy with
//! an empty Request whose message GUID is the leaf's servent GUID. An
//! ultrapeer that accepts answers with an Acknowledgement carrying the same
//! GUID and, from version 2 on, the address downloaders reach it at: the
//! IPv4 address in network order, then the port little-endian (version 1
//! has only the port). The leaf then lists its proxies in its QueryHits
//! (GGEP `PUSH`), and a downloader asks a proxy over HTTP to pass a PUSH on.
//!
//! As gtk-gnutella's `vmsg.c` notes, LimeWire understands only version 1
//! of the Request but answers with a version 2 Acknowledgement: we send the
//! Request as version 1 and the Acknowledgement as version 2, and read both
//! versions of each.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{Kind, Vendor};
use crate::wire::{Reader, WireError};

/// The Request we send: version 1, which every servent reads.
pub const REQUEST: Kind = Kind::new(*b"LIME", 21, 1);

/// The Request: an empty body (the message GUID names the leaf).
pub fn request() -> Vendor {
    Vendor { kind: REQUEST, body: Vec::new() }
}

/// The Acknowledgement: where the proxy is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushProxyAck {
    /// The proxy's address; a version 1 ack has no IP (unspecified here:
    /// the receiver takes the link's address).
    pub addr: SocketAddrV4,
}

impl PushProxyAck {
    /// Reads the body of an Acknowledgement of `version`.
    pub fn decode(version: u16, body: &[u8]) -> Result<PushProxyAck, WireError> {
        let mut r = Reader::new(body);
        let ip = if version >= 2 { r.ipv4("push proxy IP")? } else { Ipv4Addr::UNSPECIFIED };
        let port = r.u16_le("push proxy port")?;
        Ok(PushProxyAck { addr: SocketAddrV4::new(ip, port) })
    }

    /// The message to send, version 2.
    pub fn to_vendor(&self) -> Vendor {
        let mut body = self.addr.ip().octets().to_vec();
        body.extend_from_slice(&self.addr.port().to_le_bytes());
        Vendor { kind: Kind::PUSH_PROXY_ACK, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_carries_the_ip_in_network_order_and_the_port_little_endian() {
        let ack = PushProxyAck { addr: SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 6346) };
        let vendor = ack.to_vendor();
        assert_eq!(vendor.kind, Kind::PUSH_PROXY_ACK);
        assert_eq!(vendor.body, vec![1, 2, 3, 4, 0xCA, 0x18]);
        assert_eq!(PushProxyAck::decode(2, &vendor.body), Ok(ack));
        let v1 = PushProxyAck::decode(1, &[0xCA, 0x18]).unwrap();
        assert_eq!(v1.addr, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6346));
    }

    #[test]
    fn a_short_ack_is_an_error_and_the_request_is_empty_version_1() {
        assert!(matches!(PushProxyAck::decode(2, &[1, 2, 3, 4, 5]), Err(WireError::Truncated { .. })));
        assert_eq!(request().body, Vec::<u8>::new());
        assert!(request().kind.same_message(&Kind::PUSH_PROXY_REQUEST));
        assert_eq!(request().kind.version, 1);
    }
}
