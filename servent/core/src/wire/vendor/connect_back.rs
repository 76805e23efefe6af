//! TCP Connect Back (BEAR/7 version 1): "connect to me on this port".
//!
//! A servent that does not know whether others can reach it asks a
//! neighbour to open a TCP connection to the address of their link at the
//! port in the body (2 bytes, little-endian). The neighbour connects, writes
//! `\n\n` and closes (gtk-gnutella's `node_connect_back`); the asker, seeing
//! a connection come in, knows it is reachable. gtk-gnutella reads
//! versions 0 and 1 (the same body) and ignores port 0 (`vmsg.c`,
//! `handle_tcp_connect_back`: `version > 1` is dropped).

use super::{Kind, Vendor};
use crate::wire::{Reader, WireError};

/// What the connecting side writes before closing.
pub const GREETING: &[u8] = b"\n\n";

/// The request: connect back to this port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConnectBack {
    /// Where we listen (never 0).
    pub port: u16,
}

impl TcpConnectBack {
    /// Reads the body of a request of `version`: version 1 or before, a port other than 0.
    pub fn decode(version: u16, body: &[u8]) -> Result<TcpConnectBack, WireError> {
        if version > Kind::TCP_CONNECT_BACK.version {
            return Err(WireError::Malformed { what: "TCP connect back version" });
        }
        let port = Reader::new(body).u16_le("connect back port")?;
        if port == 0 {
            return Err(WireError::Malformed { what: "connect back port 0" });
        }
        Ok(TcpConnectBack { port })
    }

    /// The message to send.
    pub fn to_vendor(&self) -> Vendor {
        Vendor { kind: Kind::TCP_CONNECT_BACK, body: self.port.to_le_bytes().to_vec() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_travels_little_endian_in_bear_7_version_1() {
        let vendor = TcpConnectBack { port: 6346 }.to_vendor();
        assert_eq!((vendor.kind.vendor, vendor.kind.selector, vendor.kind.version), (*b"BEAR", 7, 1));
        assert_eq!(vendor.body, [0xCA, 0x18]);
        assert_eq!(TcpConnectBack::decode(1, &vendor.body), Ok(TcpConnectBack { port: 6346 }));
    }

    #[test]
    fn version_0_is_read_as_gtk_gnutella_reads_it() {
        assert_eq!(TcpConnectBack::decode(0, &[0xCA, 0x18]), Ok(TcpConnectBack { port: 6346 }));
    }

    #[test]
    fn port_zero_short_bodies_and_later_versions_are_refused() {
        assert!(TcpConnectBack::decode(1, &[0, 0]).is_err());
        assert!(TcpConnectBack::decode(1, &[1]).is_err());
        assert!(TcpConnectBack::decode(2, &[0xCA, 0x18]).is_err());
    }
}
