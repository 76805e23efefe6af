//! The address of a servent as people write it: `IP:PORT` or `HOST:PORT`
//! (`--peer`, `servent peer add`), checked, and looked up to the IPv4
//! address Gnutella 0.6 servents are reached at.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The longest `HOST:PORT` taken: a DNS name is at most 253 bytes.
const MAX_LEN: usize = 260;
/// How long a host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A servent's address as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    /// An IPv4 address and port.
    Ip(SocketAddrV4),
    /// A host name and port, to look up.
    Name(String, u16),
}

impl PeerAddr {
    /// Parses `IP:PORT` or `HOST:PORT`; refuses port 0, IPv6 and addresses
    /// that are no servent's (unspecified, broadcast, multicast).
    pub fn parse(text: &str) -> Result<PeerAddr, String> {
        let text = text.trim();
        let shown: String = text.chars().take(80).collect();
        let not_an_address = || format!("{shown:?} is not IP:PORT or HOST:PORT");
        if text.len() > MAX_LEN {
            return Err(not_an_address());
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return match addr {
                SocketAddr::V4(v4) => check(v4).map(PeerAddr::Ip),
                SocketAddr::V6(_) => Err(format!("{shown}: servents are reached over IPv4")),
            };
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(not_an_address)?;
        let port: u16 = port.parse().map_err(|_| not_an_address())?;
        let label_ok =
            |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        // A name's last label is never all digits: `300.1.1.1` is a wrong IP, not a name.
        let numeric = host.rsplit('.').next().is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()));
        if port == 0 || numeric || host.parse::<IpAddr>().is_ok() || !host.split('.').all(label_ok) {
            return Err(not_an_address());
        }
        Ok(PeerAddr::Name(host.to_ascii_lowercase(), port))
    }

    /// The IPv4 addresses: this one as is, or every servent's address a
    /// lookup of the name gives, in its order (round-robin DNS turns it).
    pub async fn resolve(&self) -> Result<Vec<SocketAddrV4>, String> {
        let (host, port) = match self {
            PeerAddr::Ip(addr) => return Ok(vec![*addr]),
            PeerAddr::Name(host, port) => (host, *port),
        };
        let lookup = async_std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port));
        let found: Vec<SocketAddr> = match async_std::future::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(format!("cannot find {host}: {e}")),
            Err(_) => return Err(format!("cannot find {host}: no answer in {} s", RESOLVE_TIMEOUT.as_secs())),
        };
        let v4: Vec<SocketAddrV4> = found
            .into_iter()
            .filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(v4),
                SocketAddr::V6(_) => None,
            })
            .collect();
        let first = *v4.first().ok_or_else(|| format!("{host} has no IPv4 address"))?;
        let usable: Vec<SocketAddrV4> = v4.into_iter().filter(|a| check(*a).is_ok()).collect();
        if usable.is_empty() {
            // None is usable: the first says why.
            check(first)?;
        }
        Ok(usable)
    }
}

/// Refuses port 0 and addresses that are no servent's.
fn check(addr: SocketAddrV4) -> Result<SocketAddrV4, String> {
    if !servent_core::address::usable(addr) {
        return Err(format!("{addr} is no servent's address"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_port_or_host_name_and_port_are_taken() {
        assert_eq!(PeerAddr::parse("192.0.2.7:6346"), Ok(PeerAddr::Ip("192.0.2.7:6346".parse().unwrap())));
        assert_eq!(PeerAddr::parse(" Seblinux.example:6346 "), Ok(PeerAddr::Name("seblinux.example".into(), 6346)));
        assert_eq!(PeerAddr::parse("localhost:1"), Ok(PeerAddr::Name("localhost".into(), 1)));
    }

    #[test]
    fn what_is_no_servents_address_is_refused() {
        for wrong in [
            "nonsense",
            "host:",
            "host:0",
            "host:65536",
            ":6346",
            "a..b:6346",
            "under_score.example:6346",
            "300.1.1.1:6346",
            &format!("{}:6346", "a".repeat(300)),
        ] {
            assert!(PeerAddr::parse(wrong).unwrap_err().contains("is not IP:PORT or HOST:PORT"), "{wrong}");
        }
        for wrong in ["0.0.0.0:6346", "255.255.255.255:6346", "224.0.0.1:6346", "192.0.2.7:0"] {
            assert!(PeerAddr::parse(wrong).unwrap_err().contains("is no servent's address"), "{wrong}");
        }
        assert!(PeerAddr::parse("[::1]:6346").unwrap_err().contains("IPv4"));
    }

    #[test]
    fn an_ip_address_needs_no_lookup() {
        let addr = async_std::task::block_on(PeerAddr::parse("127.0.0.1:6346").unwrap().resolve());
        assert_eq!(addr, Ok(vec!["127.0.0.1:6346".parse().unwrap()]));
    }
}
