//! The download mesh: other places known to serve the same content.
//!
//! Gnutella servents tell each other where else a file can be fetched, in
//! the `X-Alt` header of HTTP requests and responses: an uploader lists
//! other sources it knows for the URN it serves, and a downloader lists the
//! sources it is using. Each servent remembers what it hears in
//! [`AltLocations`], so that a swarm of downloaders soon knows every
//! source, not only the one a search found ("the download mesh").
//!
//! `X-Alt` (gtk-gnutella's `doc/gnutella/x-alt`) is a comma-separated list
//! of `ip[:port]`, the port 6346 when omitted; entries naming a firewalled
//! host by GUID and push proxies (`GUID;ip:port;…`) are skipped, as this
//! servent does not push. The older HUGE headers
//! (`X-Gnutella-Alternate-Location`, `Alt-Location`) list full URLs, each
//! maybe followed by a timestamp; [`parse_alternate_locations`] keeps the
//! addresses of those that name a host by IPv4 address.
//!
//! The table holds only sources this servent has seen serve the right
//! bytes: a download adds its sources once the whole file hashed to its
//! URNs, and removes those that failed or served wrong bytes. What a
//! request names is never added (the uploader does not read `X-Alt` at
//! all): anyone can send a `HEAD` with a liar's address, and everything in
//! the table is passed on to every downloader of the URN. What a source's
//! answer names is a hint for that one download only, bounded by the
//! download's plan ([`MAX_KNOWN_SOURCES`](super::download::plan::MAX_KNOWN_SOURCES)
//! per download), tried, and checked against the URN like any source; it
//! joins this table only if the download then verifies. The table is
//! bounded as well, per URN and in URNs.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Mutex, MutexGuard, PoisonError};

use search::Urn;

/// Sources remembered per URN; the oldest heard is forgotten first.
pub const MAX_SOURCES_PER_URN: usize = 32;
/// URNs remembered; the one heard of least recently is forgotten first.
pub const MAX_URNS: usize = 10_000;
/// Addresses taken from one header value at most; the rest are ignored.
pub const MAX_PARSED: usize = 64;
/// The port an `X-Alt` entry without one means.
pub const DEFAULT_PORT: u16 = 6346;

/// Known sources per URN, shared by uploads and downloads.
#[derive(Default)]
pub struct AltLocations {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    urns: HashMap<Urn, Sources>,
    /// Counts changes, to tell which URN was heard of least recently.
    clock: u64,
}

struct Sources {
    /// Oldest first.
    addrs: VecDeque<SocketAddrV4>,
    touched: u64,
}

impl AltLocations {
    /// An empty mesh.
    pub fn new() -> AltLocations {
        AltLocations::default()
    }

    /// Remembers `addr` as a source of `urn` (again: it becomes the
    /// freshest): only for a source that served bytes a download verified.
    /// Addresses nobody can connect to are ignored.
    pub fn add(&self, urn: Urn, addr: SocketAddrV4) {
        if !is_usable(addr) {
            return;
        }
        let mut table = self.lock();
        table.clock += 1;
        let clock = table.clock;
        if !table.urns.contains_key(&urn) && table.urns.len() >= MAX_URNS {
            let stalest = table.urns.iter().min_by_key(|(_, sources)| sources.touched).map(|(urn, _)| *urn);
            if let Some(stalest) = stalest {
                table.urns.remove(&stalest);
            }
        }
        let sources = table.urns.entry(urn).or_insert_with(|| Sources { addrs: VecDeque::new(), touched: clock });
        sources.touched = clock;
        sources.addrs.retain(|a| *a != addr);
        if sources.addrs.len() >= MAX_SOURCES_PER_URN {
            sources.addrs.pop_front();
        }
        sources.addrs.push_back(addr);
    }

    /// Forgets `addr` as a source of `urn` (it failed or served wrong bytes).
    pub fn remove(&self, urn: &Urn, addr: SocketAddrV4) {
        let mut table = self.lock();
        if let Some(sources) = table.urns.get_mut(urn) {
            sources.addrs.retain(|a| *a != addr);
            if sources.addrs.is_empty() {
                table.urns.remove(urn);
            }
        }
    }

    /// Up to `limit` sources of `urn`, freshest first.
    pub fn get(&self, urn: &Urn, limit: usize) -> Vec<SocketAddrV4> {
        let table = self.lock();
        table.urns.get(urn).map(|s| s.addrs.iter().rev().take(limit).copied().collect()).unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after every statement: a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a peer could connect to `addr` at all.
fn is_usable(addr: SocketAddrV4) -> bool {
    let ip = addr.ip();
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

/// The value of an `X-Alt` header listing `addrs`: `1.2.3.4:6347,5.6.7.8`.
pub fn format_x_alt(addrs: &[SocketAddrV4]) -> String {
    let entries: Vec<String> =
        addrs.iter().map(|a| if a.port() == DEFAULT_PORT { a.ip().to_string() } else { a.to_string() }).collect();
    entries.join(",")
}

/// The addresses of an `X-Alt` header value, at most [`MAX_PARSED`],
/// without duplicates; entries that are not `ip[:port]` are skipped.
pub fn parse_x_alt(value: &str) -> Vec<SocketAddrV4> {
    collect(value.split(',').take(MAX_PARSED * 4).filter_map(|entry| parse_host_port(entry.trim(), DEFAULT_PORT)))
}

/// The addresses of an `X-Gnutella-Alternate-Location` or `Alt-Location`
/// value: comma-separated `http://ip[:port]/…` URLs, each maybe followed by
/// a timestamp. URLs naming a host by name are skipped.
pub fn parse_alternate_locations(value: &str) -> Vec<SocketAddrV4> {
    collect(value.split(',').take(MAX_PARSED * 4).filter_map(|entry| {
        let url = entry.split_whitespace().next()?;
        let rest = url.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("http://")).and(url.get(7..))?;
        let authority = rest.split('/').next()?;
        parse_host_port(authority, 80)
    }))
}

fn collect(addrs: impl Iterator<Item = SocketAddrV4>) -> Vec<SocketAddrV4> {
    let mut unique = Vec::new();
    for addr in addrs.filter(|a| is_usable(*a)) {
        if !unique.contains(&addr) {
            unique.push(addr);
            if unique.len() == MAX_PARSED {
                break;
            }
        }
    }
    unique
}

/// `1.2.3.4` or `1.2.3.4:5678`, nothing else.
fn parse_host_port(text: &str, default_port: u16) -> Option<SocketAddrV4> {
    let (ip, port) = match text.split_once(':') {
        Some((ip, port)) => (ip, port.parse().ok()?),
        None => (text, default_port),
    };
    Some(SocketAddrV4::new(ip.parse::<Ipv4Addr>().ok()?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddrV4 {
        text.parse().unwrap()
    }

    fn urn(n: u32) -> Urn {
        let mut digest = [0; 20];
        digest[..4].copy_from_slice(&n.to_be_bytes());
        Urn::Sha1(digest)
    }

    #[test]
    fn x_alt_round_trips_and_omits_the_default_port() {
        let addrs = [addr("1.2.3.4:6346"), addr("5.6.7.8:6347")];
        let value = format_x_alt(&addrs);
        assert_eq!(value, "1.2.3.4,5.6.7.8:6347");
        assert_eq!(parse_x_alt(&value), addrs);
    }

    #[test]
    fn x_alt_junk_is_skipped() {
        let value = "tls=C0, 1.2.3.4:1 , host.example:6346, 1.2.3.4:1, 0.0.0.0:5, 9.9.9.9:0, 9.9.9.9:99999, \
                     AAAAAAAAAAAAAAAAAAAAAAAAAA;8.8.8.8:80, [::1]:6346, 255.255.255.255, 224.0.0.1, 2.3.4.5";
        assert_eq!(parse_x_alt(value), [addr("1.2.3.4:1"), addr("2.3.4.5:6346")]);
    }

    #[test]
    fn x_alt_parsing_is_bounded() {
        let value: Vec<String> = (0..1000u32).map(|i| format!("10.0.{}.{}:1", i / 256, i % 256)).collect();
        assert_eq!(parse_x_alt(&value.join(",")).len(), MAX_PARSED);
    }

    #[test]
    fn alternate_location_urls_give_their_addresses() {
        let value = "http://10.0.0.10:6346/get/2468/GnutellaProtocol04.pdf, \
                     HTTP://10.0.0.25/uri-res/N2R?urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB 2002-04-30T08:30Z, \
                     http://www.clip2.com/GnutellaProtocol04.pdf, ftp://1.2.3.4/x";
        assert_eq!(parse_alternate_locations(value), [addr("10.0.0.10:6346"), addr("10.0.0.25:80")]);
    }

    #[test]
    fn sources_come_freshest_first_and_re_adding_refreshes() {
        let mesh = AltLocations::new();
        mesh.add(urn(1), addr("1.1.1.1:1"));
        mesh.add(urn(1), addr("2.2.2.2:2"));
        mesh.add(urn(1), addr("1.1.1.1:1"));
        assert_eq!(mesh.get(&urn(1), 10), [addr("1.1.1.1:1"), addr("2.2.2.2:2")]);
        assert_eq!(mesh.get(&urn(1), 1), [addr("1.1.1.1:1")]);
        assert!(mesh.get(&urn(2), 10).is_empty());
    }

    #[test]
    fn removed_sources_are_gone() {
        let mesh = AltLocations::new();
        mesh.add(urn(1), addr("1.1.1.1:1"));
        mesh.remove(&urn(1), addr("1.1.1.1:1"));
        assert!(mesh.get(&urn(1), 10).is_empty());
        mesh.remove(&urn(3), addr("1.1.1.1:1"));
    }

    #[test]
    fn unusable_addresses_are_not_remembered() {
        let mesh = AltLocations::new();
        mesh.add(urn(1), addr("0.0.0.0:6346"));
        mesh.add(urn(1), addr("1.2.3.4:0"));
        assert!(mesh.get(&urn(1), 10).is_empty());
    }

    #[test]
    fn sources_per_urn_are_bounded_oldest_forgotten() {
        let mesh = AltLocations::new();
        for port in 1..=(MAX_SOURCES_PER_URN as u16 + 5) {
            mesh.add(urn(1), SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), port));
        }
        let sources = mesh.get(&urn(1), usize::MAX);
        assert_eq!(sources.len(), MAX_SOURCES_PER_URN);
        assert_eq!(sources[0].port(), MAX_SOURCES_PER_URN as u16 + 5);
        assert!(!sources.iter().any(|a| a.port() <= 5));
    }

    #[test]
    fn urns_are_bounded_least_recently_heard_forgotten() {
        let mesh = AltLocations::new();
        let source = addr("1.2.3.4:5");
        for n in 0..MAX_URNS as u32 {
            mesh.add(urn(n), source);
        }
        mesh.add(urn(0), source);
        mesh.add(urn(MAX_URNS as u32), source);
        assert_eq!(mesh.get(&urn(0), 1), [source]);
        assert!(mesh.get(&urn(1), 1).is_empty());
        assert_eq!(mesh.get(&urn(MAX_URNS as u32), 1), [source]);
    }
}
