//! Packed host addresses in Pings and Pongs, as UDP host caches use them.
//!
//! A Ping carrying GGEP `SCP` ("supports cached pongs") asks for hosts; the
//! Pong that answers carries them in GGEP `IPP`: 6 bytes per host, the IPv4
//! address in network order then the port little-endian (gtk-gnutella's
//! `ggept_ipp_pack`, `doc/gnutella/UDP-host-cache`). `SCP`'s optional data
//! byte holds flags; bit 0 says the sender is an ultrapeer.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{GgepId, WireError};

/// `"SCP"` in a Ping: send me hosts packed in `IPP`.
pub const SCP: GgepId = GgepId::from_static("SCP");
/// `"IPP"` in a Pong: packed IPv4 hosts.
pub const IPP: GgepId = GgepId::from_static("IPP");
/// Bytes of one packed host.
pub const PACKED_LEN: usize = 6;
/// Hosts read from one `IPP` at most; the rest are ignored.
pub const MAX_UNPACKED: usize = 64;

/// Packs hosts for `IPP`.
pub fn pack(hosts: &[SocketAddrV4]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(hosts.len() * PACKED_LEN);
    for host in hosts {
        bytes.extend_from_slice(&host.ip().octets());
        bytes.extend_from_slice(&host.port().to_le_bytes());
    }
    bytes
}

/// Reads an `IPP`: at most [`MAX_UNPACKED`] hosts; a length that is no
/// multiple of 6 is malformed.
pub fn unpack(bytes: &[u8]) -> Result<Vec<SocketAddrV4>, WireError> {
    if !bytes.len().is_multiple_of(PACKED_LEN) {
        return Err(WireError::Truncated { what: "packed host" });
    }
    Ok(bytes
        .chunks_exact(PACKED_LEN)
        .take(MAX_UNPACKED)
        .map(|c| SocketAddrV4::new(Ipv4Addr::new(c[0], c[1], c[2], c[3]), u16::from_le_bytes([c[4], c[5]])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_packed_ip_big_endian_port_little_endian() {
        let host = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), 6346);
        assert_eq!(pack(&[host]), vec![192, 0, 2, 7, 0xCA, 0x18]);
        assert_eq!(unpack(&pack(&[host, host])).unwrap(), vec![host, host]);
    }

    #[test]
    fn a_ragged_or_huge_ipp_is_refused_or_cut() {
        assert!(unpack(&[1, 2, 3, 4, 5]).is_err());
        assert_eq!(unpack(&vec![1; PACKED_LEN * 1000]).unwrap().len(), MAX_UNPACKED);
    }
}
