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
//! of `ip[:port]`, the port 6346 when omitted. The older HUGE headers
//! (`X-Gnutella-Alternate-Location`, `Alt-Location`) list full URLs, each
//! maybe followed by a timestamp; [`parse_alternate_locations`] keeps the
//! addresses of those that name a host by IPv4 address.
//!
//! Firewalled sources travel apart, in `X-Falt`, and only to a peer whose
//! `X-Features` announced `fwalt/0.1` (gtk-gnutella's `dmesh.c`,
//! `dmesh_fwalt_string` and `dmesh_collect_fw_host`): each entry is the
//! servent's GUID in hex, maybe its address written `port:ip`, then its
//! push proxies as `ip:port`, separated by `;` (`GUID;6346:1.2.3.4;5.6.7.8:6346`);
//! options written `word/x.y` and `pptls=` are skipped. `X-Nalt` lists, as
//! `X-Alt` does, locations that failed ([`Locations`] writes all three),
//! those we could not connect to among them, as gtk-gnutella does (its
//! `download_bad_source()` after a failed connection puts the source in the
//! banned mesh its `X-Nalt` is written from); it forgets a location only
//! once three reporters from different /16 networks named it
//! (`dmesh_negative_alt`, `MIN_BAD_REPORT`), so one servent's network
//! trouble cannot make it drop a good source.
//!
//! `X-Features` says what a servent's HTTP side understands, as
//! comma-separated `name/major.minor`; we send [`OUR_FEATURES`] and read a
//! peer's with [`announces`]. As gtk-gnutella (`dmesh_can_use_fwalt`), a
//! downloader announces `fwalt` only while it can use firewalled sources:
//! it sends PUSHes, and is reachable for the `GIV` connections they bring.
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
//! bounded as well, per URN and in URNs. The same holds for firewalled
//! sources (a download's PUSH source that served verified bytes) and for
//! `X-Nalt`: it removes a location only when it comes from a source of
//! that URN in this table ([`AltLocations::apply_nalt`]), never from
//! anyone else.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Mutex, MutexGuard, PoisonError};

use search::Urn;
use servent_core::push::MAX_PROXIES;
use servent_core::wire::Guid;

use super::http::Headers;

/// Sources remembered per URN; the oldest heard is forgotten first.
pub const MAX_SOURCES_PER_URN: usize = 32;
/// URNs remembered; the one heard of least recently is forgotten first.
pub const MAX_URNS: usize = 10_000;
/// Addresses taken from one header value at most; the rest are ignored.
pub const MAX_PARSED: usize = 64;
/// The port an `X-Alt` entry without one means.
pub const DEFAULT_PORT: u16 = 6346;
/// Firewalled sources remembered per URN; the oldest heard is forgotten first.
pub const MAX_FIREWALLED_PER_URN: usize = 16;
/// Failed locations remembered per URN, passed on in `X-Nalt`.
pub const MAX_FAILED_PER_URN: usize = 16;
/// Entries taken from one `X-Falt` value at most.
pub const MAX_PARSED_FIREWALLED: usize = 16;
/// What our HTTP side understands, as `X-Features` says it: browse host
/// and firewalled alternate locations (gtk-gnutella's versions).
pub const OUR_FEATURES: &str = "browse/1.0, fwalt/0.1";
/// The same without `fwalt`: what a downloader that cannot use firewalled
/// sources announces.
pub const OUR_FEATURES_WITHOUT_FWALT: &str = "browse/1.0";
/// The feature a peer announces to be sent `X-Falt`.
pub const FWALT: &str = "fwalt";

/// A firewalled source: a servent reached only by PUSH, through its push proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewalledLocation {
    /// Its servent GUID, which a PUSH names.
    pub servent: Guid,
    /// The address its hit gave, if known (often private or unreachable).
    pub address: Option<SocketAddrV4>,
    /// Its push proxies, at most [`MAX_PROXIES`].
    pub proxies: Vec<SocketAddrV4>,
}

/// The other places of one file named in one request or answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    /// Sources one can connect to (`X-Alt`).
    pub direct: Vec<SocketAddrV4>,
    /// Firewalled sources (`X-Falt`), sent only to a peer announcing `fwalt`.
    pub firewalled: Vec<FirewalledLocation>,
    /// Locations that failed (`X-Nalt`).
    pub failed: Vec<SocketAddrV4>,
}

impl Locations {
    /// Writes the non-empty lists into `headers`; `X-Falt` only when the
    /// peer announced `fwalt`.
    pub fn insert_into(&self, headers: &mut Headers, fwalt: bool) {
        if !self.direct.is_empty() {
            headers.insert("X-Alt", format_x_alt(&self.direct));
        }
        if fwalt && !self.firewalled.is_empty() {
            headers.insert("X-Falt", format_x_falt(&self.firewalled));
        }
        if !self.failed.is_empty() {
            headers.insert("X-Nalt", format_x_alt(&self.failed));
        }
    }
}

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

#[derive(Default)]
struct Sources {
    /// Oldest first.
    addrs: VecDeque<SocketAddrV4>,
    /// Oldest first.
    firewalled: VecDeque<FirewalledLocation>,
    /// Oldest first.
    failed: VecDeque<SocketAddrV4>,
    touched: u64,
}

impl Sources {
    fn is_empty(&self) -> bool {
        self.addrs.is_empty() && self.firewalled.is_empty() && self.failed.is_empty()
    }
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
        self.change(urn, |sources| {
            sources.failed.retain(|a| *a != addr);
            push_bounded(&mut sources.addrs, addr, MAX_SOURCES_PER_URN, |a| *a == addr);
        });
    }

    /// Remembers a firewalled source of `urn` (again: it becomes the
    /// freshest): only for one that served bytes a download verified.
    pub fn add_firewalled(&self, urn: Urn, location: FirewalledLocation) {
        self.change(urn, |sources| {
            let servent = location.servent;
            push_bounded(&mut sources.firewalled, location, MAX_FIREWALLED_PER_URN, |l| l.servent == servent);
        });
    }

    /// Forgets `addr` as a source of `urn` (it served wrong bytes, or
    /// bytes of a file that must not be kept).
    pub fn remove(&self, urn: &Urn, addr: SocketAddrV4) {
        let mut table = self.lock();
        if let Some(sources) = table.urns.get_mut(urn) {
            sources.addrs.retain(|a| *a != addr);
            if sources.is_empty() {
                table.urns.remove(urn);
            }
        }
    }

    /// Forgets `addr` as a source of `urn` because it failed for good, and
    /// remembers it among the failed ones passed on in `X-Nalt`.
    pub fn failed(&self, urn: Urn, addr: SocketAddrV4) {
        if !is_usable(addr) {
            return;
        }
        self.change(urn, |sources| {
            sources.addrs.retain(|a| *a != addr);
            push_bounded(&mut sources.failed, addr, MAX_FAILED_PER_URN, |a| *a == addr);
        });
    }

    /// Up to `limit` failed locations of `urn`, freshest first.
    pub fn failed_sources(&self, urn: &Urn, limit: usize) -> Vec<SocketAddrV4> {
        let table = self.lock();
        table.urns.get(urn).map(|s| s.failed.iter().rev().take(limit).copied().collect()).unwrap_or_default()
    }

    /// Up to `limit` firewalled sources of `urn`, freshest first.
    pub fn firewalled(&self, urn: &Urn, limit: usize) -> Vec<FirewalledLocation> {
        let table = self.lock();
        table.urns.get(urn).map(|s| s.firewalled.iter().rev().take(limit).cloned().collect()).unwrap_or_default()
    }

    /// Reads an `X-Nalt` about `urn` from `reporter`: the locations it names
    /// are forgotten only when the reporter is itself a source of `urn`
    /// here (one that served verified bytes); anyone else is ignored, as
    /// anyone can name any address. How many were forgotten.
    pub fn apply_nalt(&self, urn: &Urn, reporter: Ipv4Addr, failed: &[SocketAddrV4]) -> usize {
        let mut table = self.lock();
        let Some(sources) = table.urns.get_mut(urn) else { return 0 };
        if !sources.addrs.iter().any(|a| *a.ip() == reporter) {
            return 0;
        }
        let before = sources.addrs.len();
        sources.addrs.retain(|a| !failed.contains(a));
        let forgotten = before - sources.addrs.len();
        if sources.is_empty() {
            table.urns.remove(urn);
        }
        forgotten
    }

    /// Up to `limit` sources of `urn`, freshest first.
    pub fn get(&self, urn: &Urn, limit: usize) -> Vec<SocketAddrV4> {
        let table = self.lock();
        table.urns.get(urn).map(|s| s.addrs.iter().rev().take(limit).copied().collect()).unwrap_or_default()
    }

    /// Applies `change` to the entry of `urn`, made if need be (the URN
    /// heard of least recently giving way when the table is full).
    fn change(&self, urn: Urn, change: impl FnOnce(&mut Sources)) {
        let mut table = self.lock();
        table.clock += 1;
        let clock = table.clock;
        if !table.urns.contains_key(&urn) && table.urns.len() >= MAX_URNS {
            let stalest = table.urns.iter().min_by_key(|(_, sources)| sources.touched).map(|(urn, _)| *urn);
            if let Some(stalest) = stalest {
                table.urns.remove(&stalest);
            }
        }
        let sources = table.urns.entry(urn).or_default();
        sources.touched = clock;
        change(sources);
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after every statement: a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Appends `item` as the freshest of `list`, dropping an equal one and,
/// past `limit`, the oldest.
fn push_bounded<T>(list: &mut VecDeque<T>, item: T, limit: usize, same: impl Fn(&T) -> bool) {
    list.retain(|old| !same(old));
    if list.len() >= limit {
        list.pop_front();
    }
    list.push_back(item);
}

/// Whether a peer could connect to `addr` at all (0.0.0.0/8 names no
/// host: it also keys the sources known only by GUID, see
/// [`super::push::push_only_key`]).
fn is_usable(addr: SocketAddrV4) -> bool {
    servent_core::address::usable(addr) && addr.ip().octets()[0] != 0
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

/// The value of an `X-Falt` header listing `locations`, as gtk-gnutella
/// writes it: `GUID;port:ip;proxy-ip:port;…`, entries separated by `, `.
pub fn format_x_falt(locations: &[FirewalledLocation]) -> String {
    let entries: Vec<String> = locations
        .iter()
        .map(|location| {
            let mut entry = location.servent.to_string();
            if let Some(address) = location.address {
                entry.push_str(&format!(";{}:{}", address.port(), address.ip()));
            }
            for proxy in location.proxies.iter().take(MAX_PROXIES) {
                entry.push_str(&format!(";{proxy}"));
            }
            entry
        })
        .collect();
    entries.join(", ")
}

/// The firewalled sources of an `X-Falt` header value, at most
/// [`MAX_PARSED_FIREWALLED`], each with at most [`MAX_PROXIES`] usable
/// proxies; an entry that does not start with a GUID is skipped, as are
/// options (`fwt/1`, `pptls=…`) and whatever is not an address.
pub fn parse_x_falt(value: &str) -> Vec<FirewalledLocation> {
    let mut locations: Vec<FirewalledLocation> = Vec::new();
    for entry in value.split(',').take(MAX_PARSED_FIREWALLED * 4) {
        let mut items = entry.split(';').map(str::trim).take(4 * MAX_PROXIES + 4);
        let Some(Ok(servent)) = items.next().map(str::parse::<Guid>) else { continue };
        let mut location = FirewalledLocation { servent, address: None, proxies: Vec::new() };
        for item in items {
            if item.contains('/') || item.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("pptls=")) {
                continue;
            }
            // The servent's own address comes first, written port:ip.
            if location.address.is_none() && location.proxies.is_empty() {
                if let Some((port, ip)) = item.split_once(':') {
                    if let (Ok(port), Ok(ip)) = (port.parse::<u16>(), ip.parse::<Ipv4Addr>()) {
                        location.address = Some(SocketAddrV4::new(ip, port)).filter(|a| is_usable(*a));
                        continue;
                    }
                }
            }
            let proxy = parse_host_port(item, DEFAULT_PORT).filter(|a| is_usable(*a));
            if let Some(proxy) = proxy.filter(|p| !location.proxies.contains(p)) {
                if location.proxies.len() < MAX_PROXIES {
                    location.proxies.push(proxy);
                }
            }
        }
        if !locations.iter().any(|l| l.servent == servent) {
            locations.push(location);
            if locations.len() == MAX_PARSED_FIREWALLED {
                break;
            }
        }
    }
    locations
}

/// Whether an `X-Features` value announces `feature` (`name/x.y`, the
/// name whole and in any case: `fwalt` is not announced by `nofwalt/1.0`).
pub fn announces(value: Option<&str>, feature: &str) -> bool {
    value.is_some_and(|value| {
        value.split(',').take(MAX_PARSED).any(|item| {
            let name = item.trim().split('/').next().unwrap_or("");
            name.eq_ignore_ascii_case(feature) && item.contains('/')
        })
    })
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

    fn guid(n: u8) -> Guid {
        Guid([n; 16])
    }

    #[test]
    fn x_falt_reads_gtk_gnutellas_example_and_round_trips() {
        let value = "9DBC52EEEBCA2C8A79036D626B959900;fwt/1;26252:85.182.49.3;pptls=E;69.12.88.95:1085;\
                     64.53.20.48:804;66.17.23.159:343, 0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A";
        let parsed = parse_x_falt(value);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].servent.to_string(), "9DBC52EEEBCA2C8A79036D626B959900");
        assert_eq!(parsed[0].address, Some(addr("85.182.49.3:26252")));
        assert_eq!(parsed[0].proxies, [addr("69.12.88.95:1085"), addr("64.53.20.48:804"), addr("66.17.23.159:343")]);
        assert_eq!(parsed[1], FirewalledLocation { servent: guid(10), address: None, proxies: vec![] });
        let written = format_x_falt(&parsed);
        assert_eq!(
            written,
            "9DBC52EEEBCA2C8A79036D626B959900;26252:85.182.49.3;69.12.88.95:1085;64.53.20.48:804;66.17.23.159:343, \
             0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A"
        );
        assert_eq!(parse_x_falt(&written), parsed);
    }

    #[test]
    fn attack_x_falt_junk_and_floods_are_bounded() {
        assert!(parse_x_falt("1.2.3.4:5, nothex;1.2.3.4:5, ;;;, 9DBC52EEEBCA2C8A79036D626B95990").is_empty());
        let proxies: Vec<String> = (1..200u32).map(|i| format!("10.0.{}.{}:1", i / 256, i % 256)).collect();
        let one = format!("{};0.0.0.0:0;{}", guid(1), proxies.join(";"));
        let parsed = parse_x_falt(&one);
        assert_eq!(parsed[0].proxies.len(), MAX_PROXIES);
        let many: Vec<String> = (0..=255u8).map(|n| format!("{};1.2.3.4:5", guid(n))).collect();
        assert_eq!(parse_x_falt(&many.join(",")).len(), MAX_PARSED_FIREWALLED);
        let same = vec![guid(7).to_string(); 50].join(",");
        assert_eq!(parse_x_falt(&same).len(), 1);
    }

    #[test]
    fn features_are_matched_whole_as_gtk_gnutella_does() {
        assert!(announces(Some("browse/1.0, fwalt/0.1, IP/6.0"), FWALT));
        assert!(announces(Some("FWALT/0.1"), FWALT));
        assert!(!announces(Some("nofwalt/0.1, fwaltx/1.0, fwalt"), FWALT));
        assert!(!announces(None, FWALT));
        assert!(announces(Some(OUR_FEATURES), FWALT) && announces(Some(OUR_FEATURES), "browse"));
    }

    #[test]
    fn x_falt_is_written_only_for_a_peer_announcing_fwalt() {
        let locations = Locations {
            direct: vec![addr("1.2.3.4:5")],
            firewalled: vec![FirewalledLocation { servent: guid(1), address: None, proxies: vec![addr("2.3.4.5:6")] }],
            failed: vec![addr("3.4.5.6:6346")],
        };
        let mut without = Headers::default();
        locations.insert_into(&mut without, false);
        assert_eq!(
            (without.get("X-Alt"), without.get("X-Falt"), without.get("X-Nalt")),
            (Some("1.2.3.4:5"), None, Some("3.4.5.6"))
        );
        let mut with = Headers::default();
        locations.insert_into(&mut with, true);
        assert_eq!(with.get("X-Falt"), Some("01010101010101010101010101010101;2.3.4.5:6"));
    }

    #[test]
    fn firewalled_and_failed_sources_are_bounded_and_freshest_first() {
        let mesh = AltLocations::new();
        for n in 0..(MAX_FIREWALLED_PER_URN as u8 + 3) {
            mesh.add_firewalled(urn(1), FirewalledLocation { servent: guid(n), address: None, proxies: vec![] });
        }
        mesh.add_firewalled(urn(1), FirewalledLocation { servent: guid(5), address: None, proxies: vec![] });
        let firewalled = mesh.firewalled(&urn(1), usize::MAX);
        assert_eq!(firewalled.len(), MAX_FIREWALLED_PER_URN);
        assert_eq!(firewalled[0].servent, guid(5));
        assert!(!firewalled.iter().any(|l| l.servent == guid(0)));
        mesh.add(urn(1), addr("1.1.1.1:1"));
        for port in 1..=(MAX_FAILED_PER_URN as u16 + 3) {
            mesh.failed(urn(1), SocketAddrV4::new(Ipv4Addr::new(9, 9, 9, 9), port));
        }
        mesh.failed(urn(1), addr("1.1.1.1:1"));
        assert!(mesh.get(&urn(1), 10).is_empty());
        let failed = mesh.failed_sources(&urn(1), usize::MAX);
        assert_eq!((failed.len(), failed[0]), (MAX_FAILED_PER_URN, addr("1.1.1.1:1")));
        mesh.add(urn(1), addr("1.1.1.1:1"));
        assert!(!mesh.failed_sources(&urn(1), usize::MAX).contains(&addr("1.1.1.1:1")));
    }

    #[test]
    fn attack_x_nalt_from_anyone_but_a_verified_source_removes_nothing() {
        let mesh = AltLocations::new();
        mesh.add(urn(1), addr("1.1.1.1:1"));
        mesh.add(urn(1), addr("2.2.2.2:2"));
        let nalt = [addr("1.1.1.1:1"), addr("2.2.2.2:2")];
        assert_eq!(mesh.apply_nalt(&urn(1), Ipv4Addr::new(6, 6, 6, 6), &nalt), 0);
        assert_eq!(mesh.apply_nalt(&urn(2), Ipv4Addr::new(1, 1, 1, 1), &nalt), 0);
        assert_eq!(mesh.get(&urn(1), 10).len(), 2);
        assert_eq!(mesh.apply_nalt(&urn(1), Ipv4Addr::new(1, 1, 1, 1), &nalt[1..]), 1);
        assert_eq!(mesh.get(&urn(1), 10), [addr("1.1.1.1:1")]);
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
