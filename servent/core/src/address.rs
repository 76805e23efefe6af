//! Which addresses a servent may use: one set of rules for the host cache,
//! dialing, UDP (pongs, out-of-band replies, GUESS), the GWebCache client
//! and the diversity of links.
//!
//! The network hands out addresses the servent should never reach for: no
//! port, the unspecified or a broadcast address, multicast ([`usable`]);
//! loopback, private, link-local, shared (carrier-grade NAT) or reserved
//! ones, which cannot be a distant servent ([`local`]); our own. A test
//! network lives on exactly those addresses, so it says so: `--dial-local`
//! ([`may_dial`]), or, for UDP, our own address shows it ([`routable`]:
//! loopback reaches loopback, a LAN its LAN).
//!
//! Links are counted by network block for diversity ([`prefix`]: the /24),
//! so that one block cannot take every slot (an IPv6 address by its /64,
//! an IPv4-mapped one as IPv4); loopback stands for itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Whether `addr` can name a servent at all: a port, and an IP that is
/// neither unspecified, broadcast nor multicast.
pub fn usable(addr: SocketAddrV4) -> bool {
    let ip = addr.ip();
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

/// Whether `ip` is behind a NAT or firewall: private, link-local or shared (RFC 6598).
pub fn is_hidden(ip: Ipv4Addr) -> bool {
    let shared = ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]);
    ip.is_private() || ip.is_link_local() || shared
}

/// Whether `ip` cannot be a servent on the Internet: loopback, private,
/// link-local, shared (carrier-grade NAT) or reserved.
pub fn local(ip: Ipv4Addr) -> bool {
    let [a, ..] = ip.octets();
    ip.is_loopback()
        || is_hidden(ip)
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || a >= 240
}

/// Whether a servent whose own IPs are `own` may keep and dial `addr`,
/// heard from the network: never a [`local`] address or its own, unless
/// it is part of a test network (`dial_local`, `--dial-local`).
pub fn may_dial(addr: SocketAddrV4, own: &[Ipv4Addr], dial_local: bool) -> bool {
    dial_local || !(local(*addr.ip()) || own.contains(addr.ip()))
}

/// One servent's dial rule, to carry where it is needed (the downloads):
/// [`may_dial`] with its own IPs (advertised, listening) and whether it is
/// part of a test network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialRule {
    /// Our IPs: the one we advertise and the one we listen on (unspecified when unknown).
    pub own: [Ipv4Addr; 2],
    /// `--dial-local`: a test network, where local addresses are servents.
    pub dial_local: bool,
}

impl DialRule {
    /// The rule of a servent whose IPs are not known yet.
    pub fn new(dial_local: bool) -> DialRule {
        DialRule { own: [Ipv4Addr::UNSPECIFIED; 2], dial_local }
    }

    /// Whether `addr`, heard from the network, may be kept and dialed ([`may_dial`]).
    pub fn allows(&self, addr: SocketAddrV4) -> bool {
        may_dial(addr, &self.own, self.dial_local)
    }

    /// Whether `addr` is on one of our own IPs outside a test network: what
    /// we send there goes to another program of our machine, whatever port
    /// it names (the part of [`may_dial`] that [`routable`] lacks).
    pub fn is_ours(&self, addr: SocketAddrV4) -> bool {
        !self.dial_local && self.own.contains(addr.ip())
    }
}

/// Whether a servent at `ours` can reach `addr`: [`usable`], loopback only
/// from loopback (a network on one machine), and behind a NAT only from
/// behind one (a network on one LAN, as in tests).
pub fn routable(addr: SocketAddrV4, ours: SocketAddrV4) -> bool {
    let (ip, our_ip) = (*addr.ip(), *ours.ip());
    usable(addr) && ip.is_loopback() == our_ip.is_loopback() && (!is_hidden(ip) || is_hidden(our_ip))
}

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:a.b.c.d]:port`, as a
/// socket listening on `[::]` sees an IPv4 peer) written as the IPv4 address
/// it is, so that every rule reads one form: `::ffff:127.0.0.1` is loopback.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// A network block links are counted in ([`prefix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Block {
    /// An IPv4 /24.
    V4([u8; 3]),
    /// An IPv6 /64.
    V6([u16; 4]),
}

/// The network block an address is counted in for diversity: its /24, or
/// its /64 for IPv6 (an IPv4-mapped address is its IPv4 one); none for
/// loopback, which stands for itself.
pub fn prefix(ip: IpAddr) -> Option<Block> {
    match ip.to_canonical() {
        IpAddr::V4(v4) if !v4.is_loopback() => {
            let [a, b, c, _] = v4.octets();
            Some(Block::V4([a, b, c]))
        }
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let [a, b, c, d, ..] = v6.segments();
            Some(Block::V6([a, b, c, d]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddrV4 {
        text.parse().unwrap()
    }

    #[test]
    fn local_addresses_are_known() {
        for local_ip in
            ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.5", "169.254.1.1", "100.64.0.1", "0.1.2.3", "240.0.0.1"]
        {
            assert!(local(local_ip.parse().unwrap()), "{local_ip}");
        }
        for distant in ["8.8.8.8", "81.2.69.160", "100.128.0.1"] {
            assert!(!local(distant.parse().unwrap()), "{distant}");
        }
    }

    #[test]
    fn a_test_network_may_dial_what_the_internet_may_not() {
        let own = [Ipv4Addr::new(81, 2, 69, 160)];
        for refused in ["127.0.0.1:6346", "10.0.0.1:6346", "81.2.69.160:7000"] {
            assert!(!may_dial(at(refused), &own, false), "{refused}");
            assert!(may_dial(at(refused), &own, true), "{refused}");
        }
        assert!(may_dial(at("8.8.8.8:6346"), &own, false));
    }

    #[test]
    fn a_dial_rule_carries_our_own_addresses_and_the_test_network_switch() {
        let ours = DialRule { own: [Ipv4Addr::new(81, 2, 69, 160), Ipv4Addr::UNSPECIFIED], dial_local: false };
        assert!(!ours.allows(at("81.2.69.160:7000")), "our own public address (our API's port, say)");
        assert!(!ours.allows(at("127.0.0.1:22")) && !ours.allows(at("192.168.1.1:80")));
        assert!(ours.allows(at("8.8.8.8:6346")));
        assert!(DialRule::new(true).allows(at("127.0.0.1:22")), "a test network");
        assert!(ours.is_ours(at("81.2.69.160:22")) && !ours.is_ours(at("8.8.8.8:6346")));
        assert!(!DialRule { dial_local: true, ..ours }.is_ours(at("81.2.69.160:22")), "a test network");
    }

    #[test]
    fn addresses_are_routable_from_where_we_are() {
        let (loopback, lan, internet) = (at("127.0.0.1:6346"), at("10.0.0.2:6346"), at("81.2.69.160:6346"));
        assert!(routable(at("127.0.0.5:1"), loopback));
        assert!(!routable(at("127.0.0.5:1"), internet));
        assert!(routable(at("10.0.0.9:1"), lan));
        assert!(!routable(at("10.0.0.9:1"), internet));
        assert!(routable(at("8.8.8.8:1"), lan));
        assert!(!routable(at("8.8.8.8:0"), internet), "no port");
        assert!(!routable(at("224.0.0.1:6346"), internet), "multicast");
    }

    #[test]
    fn an_ipv4_mapped_address_is_read_as_ipv4() {
        let canonical = |text: &str| canonical(text.parse().unwrap()).to_string();
        assert_eq!(canonical("[::ffff:127.0.0.1]:6346"), "127.0.0.1:6346");
        assert_eq!(canonical("[::ffff:192.0.2.7]:1"), "192.0.2.7:1");
        assert_eq!(canonical("[::1]:6346"), "[::1]:6346");
        assert_eq!(canonical("[2001:db8::1]:6346"), "[2001:db8::1]:6346");
        assert_eq!(canonical("10.0.0.1:80"), "10.0.0.1:80");
    }

    #[test]
    fn links_are_counted_by_slash_24_but_loopback_stands_alone() {
        let prefix = |ip: &str| prefix(ip.parse().unwrap());
        assert_eq!(prefix("192.0.2.7"), Some(Block::V4([192, 0, 2])));
        assert_eq!(prefix("192.0.2.200"), prefix("192.0.2.1"));
        assert_eq!(prefix("127.0.0.1"), None);
        assert_eq!(prefix("::1"), None);
        assert_eq!(prefix("::ffff:127.0.0.1"), None);
        // Listening on [::], IPv4 peers come as mapped addresses: the same /24.
        assert_eq!(prefix("::ffff:192.0.2.7"), prefix("192.0.2.9"));
        assert_eq!(prefix("2001:db8::1"), Some(Block::V6([0x2001, 0xdb8, 0, 0])));
        assert_eq!(prefix("2001:db8::1"), prefix("2001:db8::ffff:2"));
        assert_ne!(prefix("2001:db8::1"), prefix("2001:db8:0:1::1"));
    }
}
