//! Push: how a servent that cannot be connected to still uploads.
//!
//! A firewalled servent marks its QueryHits with the push flag. A
//! downloader then sends a PUSH descriptor (payload 0x40) naming the
//! servent's GUID, the file's index and the downloader's own address; the
//! PUSH travels back along the path the QueryHit came by (every servent
//! routes it by servent GUID), or is handed to one of the servent's push
//! proxies. The firewalled servent connects out to the address it names and
//! opens the connection with a `GIV` line:
//!
//! ```text
//! GIV <index>:<servent GUID, 32 hex digits>/<file name>\n\n
//! ```
//!
//! after which the roles are the usual ones: the downloader sends its HTTP
//! request on that connection and the servent answers it as any upload.
//! gtk-gnutella's `downloads.c` (`parse_giv`) reads the index and the GUID
//! and ignores the name; `uploads.c` writes `GIV %lu:%s/file`.
//!
//! What is decided here, without I/O:
//! - the `GIV` line, written and read ([`giv_line`], [`parse_giv`]);
//! - whether a PUSH may make us connect out ([`ConnectBacks`]): a PUSH
//!   names any address, so a flood of them would turn us into a tool to
//!   open connections to a victim; connecting back is bounded per target
//!   and in total, and a PUSH naming an unusable address is refused;
//! - whether we are reachable ([`Reachability`]), the firewall check that
//!   sets our QueryHits' push flag honestly and lets `--mode auto` promote:
//!   incoming connections, and connect-backs we ask neighbours for (TCP
//!   Connect Back, [`crate::wire::vendor::connect_back`]); those we make for
//!   others are bounded ([`ConnectBackProbes`]);
//! - push proxies ([`PushProxies`]): a firewalled leaf's ultrapeers that
//!   accepted (vendor messages LIME/21 and LIME/22, [`crate::wire::vendor::push_proxy`])
//!   to pass PUSHes on to it. The leaf lists them in its QueryHits' trailer
//!   (GGEP `PUSH`: 6 bytes each, the IPv4 address in network order and the
//!   port little-endian, as gtk-gnutella's `ggept_push_pack` writes); a
//!   downloader asks one with `GET /gnutella/push-proxy?ServerId=<base32
//!   GUID>` and `X-Node: ip:port` (gtk-gnutella's `pproxy.c`), and the proxy
//!   sends the PUSH to its leaf and answers `202`, or `410` when it has no
//!   such leaf.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::address;
use crate::routing::PeerId;
use crate::wire::{Ggep, GgepId, Guid, QueryHit};

/// The GGEP extension of a QueryHit trailer that lists push proxies.
pub const GGEP_PUSH: GgepId = GgepId::from_static("PUSH");
/// Push proxies listed in our QueryHits, and read from others', at most.
pub const MAX_PROXIES: usize = 4;
/// Leaves we are push proxy for, at most.
pub const MAX_PROXIED_LEAVES: usize = 512;

/// Longest `GIV` line read: index, GUID and a file name of gtk-gnutella's length.
pub const MAX_GIV_LINE: usize = 1024;
/// Connections back (for PUSHes) opened within [`CONNECT_BACK_WINDOW`], in total.
pub const MAX_CONNECT_BACKS: usize = 32;
/// Connections back to one address within [`CONNECT_BACK_WINDOW`].
pub const MAX_CONNECT_BACKS_PER_TARGET: usize = 4;
/// Connect-backs (TCP Connect Back) made to one address within [`CONNECT_BACK_WINDOW`].
pub const MAX_PROBES_PER_ADDRESS: usize = 2;
/// Connect-backs (TCP Connect Back) made within [`CONNECT_BACK_WINDOW`], in total.
pub const MAX_PROBES: usize = 16;
/// Push-proxy requests from one address passed on within [`CONNECT_BACK_WINDOW`].
pub const MAX_PROXY_REQUESTS_PER_ADDRESS: usize = 8;
/// Push-proxy requests passed on within [`CONNECT_BACK_WINDOW`], in total.
pub const MAX_PROXY_REQUESTS: usize = 256;
/// Push-proxy requests we send to one proxy's IP within [`CONNECT_BACK_WINDOW`].
pub const MAX_PROXY_ASKS_PER_ADDRESS: usize = 8;
/// Push-proxy requests we send within [`CONNECT_BACK_WINDOW`], in total.
pub const MAX_PROXY_ASKS: usize = 64;
/// Push-proxy requests we send within [`CONNECT_BACK_WINDOW`] for the
/// proxies one servent named (in its hits or its `X-Falt`): so that one
/// hostile answer cannot spend [`MAX_PROXY_ASKS`] for every other source.
pub const MAX_PROXY_ASKS_PER_NAMER: usize = 8;
/// Push proxies kept for one firewalled source, from all who named them
/// (earlier ones first), and considered for one PUSH.
pub const MAX_NAMED_PROXIES: usize = 8;
/// The window over which connections back (and other per-address budgets) are counted.
pub const CONNECT_BACK_WINDOW: Duration = Duration::from_secs(60);

/// The line that opens a connection made for a PUSH: `GIV index:GUID/name` and an empty line.
///
/// Bytes of the name that would break the line (control characters, `/`)
/// are replaced: the name is only informative, and the receiver ignores it.
pub fn giv_line(index: u32, servent: Guid, name: &str) -> Vec<u8> {
    let name: String = name.chars().map(|c| if c.is_control() || c == '/' { '_' } else { c }).collect();
    let mut name = if name.is_empty() { "file".to_string() } else { name };
    // Keep the whole line within what a reader accepts.
    while name.len() > MAX_GIV_LINE - 64 {
        name.pop();
    }
    format!("GIV {index}:{servent}/{name}\n\n").into_bytes()
}

/// Reads the first line of a `GIV` connection (without its line end):
/// the file index and the servent GUID, or `None` if it is no `GIV` line.
pub fn parse_giv(line: &[u8]) -> Option<(u32, Guid)> {
    if line.len() > MAX_GIV_LINE {
        return None;
    }
    let rest = line.strip_prefix(b"GIV ")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let index = &rest[..colon];
    if index.is_empty() || index.len() > 10 || !index.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let index: u32 = std::str::from_utf8(index).ok()?.parse().ok()?;
    let after = &rest[colon + 1..];
    let guid = std::str::from_utf8(after.get(..32)?).ok()?.parse().ok()?;
    (after.get(32) == Some(&b'/')).then_some((index, guid))
}

/// The push proxies a QueryHit lists (GGEP `PUSH` in its trailer), usable ones only.
pub fn hit_proxies(hit: &QueryHit) -> Vec<SocketAddrV4> {
    let Some(bytes) = hit.trailer.as_ref().and_then(|t| t.ggep.get(GGEP_PUSH)) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(6)
        .map(|entry| {
            let ip = Ipv4Addr::new(entry[0], entry[1], entry[2], entry[3]);
            SocketAddrV4::new(ip, u16::from_le_bytes([entry[4], entry[5]]))
        })
        .filter(|addr| address::usable(*addr))
        .take(MAX_PROXIES)
        .collect()
}

/// Adds GGEP `PUSH` listing `proxies` to a trailer's GGEP (nothing if there are none).
pub fn add_proxies(ggep: &mut Ggep, proxies: &[SocketAddrV4]) {
    if proxies.is_empty() {
        return;
    }
    let mut bytes = Vec::with_capacity(6 * proxies.len().min(MAX_PROXIES));
    for proxy in proxies.iter().take(MAX_PROXIES) {
        bytes.extend_from_slice(&proxy.ip().octets());
        bytes.extend_from_slice(&proxy.port().to_le_bytes());
    }
    ggep.insert(GGEP_PUSH, bytes);
}

/// A servent GUID as a push-proxy request names it (`ServerId=`): base32, no padding.
pub fn server_id(guid: Guid) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &guid.0)
}

/// Reads a `ServerId=` value: 26 base32 characters, or 32 with padding.
pub fn parse_server_id(text: &str) -> Option<Guid> {
    if text.len() != 26 && text.len() != 32 {
        return None;
    }
    let bytes =
        base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &text.trim_end_matches('=').to_ascii_uppercase())?;
    Some(Guid(bytes.try_into().ok()?))
}

/// Push proxies in both roles: the ultrapeers that are ours, the leaves we serve.
#[derive(Debug, Default)]
pub struct PushProxies {
    ours: BTreeMap<PeerId, SocketAddrV4>,
    leaves: BTreeMap<Guid, PeerId>,
}

impl PushProxies {
    /// An ultrapeer acknowledged being our proxy at `addr`.
    pub fn acknowledged(&mut self, peer: PeerId, addr: SocketAddrV4) {
        if address::usable(addr) {
            self.ours.insert(peer, addr);
        }
    }

    /// Our push proxies now, to list in our QueryHits.
    pub fn ours(&self) -> Vec<SocketAddrV4> {
        self.ours.values().copied().take(MAX_PROXIES).collect()
    }

    /// A leaf on `peer` asked us to be its proxy; `false` when we serve too many.
    pub fn serve(&mut self, leaf: Guid, peer: PeerId) -> bool {
        if self.leaves.len() >= MAX_PROXIED_LEAVES && !self.leaves.contains_key(&leaf) {
            return false;
        }
        self.leaves.insert(leaf, peer);
        true
    }

    /// The link to the leaf with servent GUID `leaf`, if we are its proxy.
    pub fn leaf(&self, leaf: &Guid) -> Option<PeerId> {
        self.leaves.get(leaf).copied()
    }

    /// A link closed: it is no proxy of ours, nor a leaf we serve.
    pub fn closed(&mut self, peer: PeerId) {
        self.ours.remove(&peer);
        self.leaves.retain(|_, p| *p != peer);
    }
}

/// The download key of a firewalled source known only by its GUID (from
/// `X-Falt`, or a hit naming an address we may not dial): an address in
/// 0.0.0.0/8, which names no host, so that it is never taken for a real
/// source, nor connected to.
pub fn push_only_key(servent: Guid) -> SocketAddrV4 {
    let g = servent.0;
    SocketAddrV4::new(Ipv4Addr::new(0, g[0], g[1], g[2]), u16::from_be_bytes([g[3], g[4]]).max(1))
}

/// Whether `source` is a [`push_only_key`]: reached by PUSH or not at all.
pub fn is_push_only(source: SocketAddrV4) -> bool {
    source.ip().octets()[0] == 0
}

/// What a push-proxy request for one of our leaves comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyPush {
    /// The PUSH is on its way to the leaf (`202`).
    Sent,
    /// That servent is no leaf of ours (`410`).
    NoLeaf,
    /// The `X-Node` names an address the leaf must not be sent to: unusable,
    /// or local outside a test network (`400`, as gtk-gnutella's `pproxy.c`).
    BadNode,
}

/// Whether a QueryHit's servent must be reached with a PUSH: it says it is
/// firewalled, or gives an address nobody can connect to.
pub fn needs_push(hit: &QueryHit) -> bool {
    let flagged = hit.trailer.as_ref().is_some_and(|t| t.flags.push == Some(true));
    flagged || !address::usable(SocketAddrV4::new(hit.ip, hit.port))
}

/// A sliding-minute budget of things done for (or to) addresses: at most
/// `per_address` for one IP and `total` in all within [`CONNECT_BACK_WINDOW`].
/// What the window holds is bounded by `total`.
#[derive(Debug)]
pub struct AddressBudget {
    recent: VecDeque<(Instant, IpAddr)>,
    per_address: usize,
    total: usize,
}

impl AddressBudget {
    /// A budget of `per_address` for one IP and `total` in all, per window.
    pub fn new(per_address: usize, total: usize) -> AddressBudget {
        AddressBudget { recent: VecDeque::new(), per_address, total }
    }

    /// Whether one more for `ip` at `now` fits; if so, it is counted.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let fits = self.fits(ip, now);
        if fits {
            self.recent.push_back((now, ip));
        }
        fits
    }

    /// Whether one more for `ip` at `now` fits, without counting it.
    fn fits(&mut self, ip: IpAddr, now: Instant) -> bool {
        while self.recent.front().is_some_and(|(at, _)| now.duration_since(*at) >= CONNECT_BACK_WINDOW) {
            self.recent.pop_front();
        }
        let for_ip = self.recent.iter().filter(|(_, seen)| *seen == ip).count();
        self.recent.len() < self.total && for_ip < self.per_address
    }
}

/// The connections back opened lately, to bound those a PUSH flood may cause.
#[derive(Debug)]
pub struct ConnectBacks {
    budget: AddressBudget,
}

impl Default for ConnectBacks {
    fn default() -> ConnectBacks {
        ConnectBacks { budget: AddressBudget::new(MAX_CONNECT_BACKS_PER_TARGET, MAX_CONNECT_BACKS) }
    }
}

impl ConnectBacks {
    /// Whether a PUSH asking us to connect to `target` at `now` is carried
    /// out; if so, it is counted.
    pub fn allow(&mut self, target: SocketAddrV4, now: Instant) -> bool {
        address::usable(target) && self.budget.allow(IpAddr::V4(*target.ip()), now)
    }
}

/// The push-proxy requests (`/gnutella/push-proxy`) we pass on to our
/// leaves, bounded per requester and in all: each costs a PUSH to a leaf
/// and a connection from it, so one address hammering the endpoint is
/// refused while others are still served.
#[derive(Debug)]
pub struct ProxyRequests {
    budget: AddressBudget,
}

impl Default for ProxyRequests {
    fn default() -> ProxyRequests {
        ProxyRequests { budget: AddressBudget::new(MAX_PROXY_REQUESTS_PER_ADDRESS, MAX_PROXY_REQUESTS) }
    }
}

impl ProxyRequests {
    /// Whether a push-proxy request from `requester` at `now` is answered; if so, it is counted.
    pub fn allow(&mut self, requester: IpAddr, now: Instant) -> bool {
        self.budget.allow(requester, now)
    }
}

/// The push-proxy requests we send (`GET /gnutella/push-proxy` to the
/// proxies a firewalled source's hit or an `X-Falt` named), bounded per
/// proxy IP and in all: each is a connection we open to an address a
/// stranger gave us, so no answer can aim a stream of them at one host.
/// Bounded too per namer (the servent whose hit or `X-Falt` named the
/// proxies), so that one answer naming many cannot spend the whole budget.
#[derive(Debug)]
pub struct ProxyAsks {
    budget: AddressBudget,
    namers: AddressBudget,
}

impl Default for ProxyAsks {
    fn default() -> ProxyAsks {
        ProxyAsks {
            budget: AddressBudget::new(MAX_PROXY_ASKS_PER_ADDRESS, MAX_PROXY_ASKS),
            namers: AddressBudget::new(MAX_PROXY_ASKS_PER_NAMER, MAX_PROXY_ASKS),
        }
    }
}

impl ProxyAsks {
    /// Whether to ask push proxy `proxy`, named by `namer`, at `now`: `None`
    /// for an unusable address, else whether the budgets allow it (if so,
    /// it is counted).
    pub fn allow(&mut self, proxy: SocketAddrV4, namer: Ipv4Addr, now: Instant) -> Option<bool> {
        if !address::usable(proxy) {
            return None;
        }
        let (ip, namer) = (IpAddr::V4(*proxy.ip()), IpAddr::V4(namer));
        let fits = self.budget.fits(ip, now) && self.namers.fits(namer, now);
        if fits {
            self.budget.allow(ip, now);
            self.namers.allow(namer, now);
        }
        Some(fits)
    }
}

/// The push proxies to ask for one PUSH ([`crate::node::Node::proxies_to_ask`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxiesToAsk {
    /// Ask these now.
    pub asked: Vec<SocketAddrV4>,
    /// Some were left unasked only for the budget: the source may still be
    /// reached later, and is not to be given up for it.
    pub over_budget: bool,
}

/// How a connection to our port came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A servent connected on its own (a handshake, whatever came of it).
    Unasked,
    /// A neighbour connected back because we asked (TCP Connect Back).
    ConnectBack,
}

/// The firewall check: whether others can connect to us, the one rule that
/// sets our QueryHits' push flag and lets `--mode auto` promote.
///
/// We start firewalled, and become reachable once a connection comes in
/// from outside. As gtk-gnutella's `inet_got_incoming`, a connection from
/// our own machine or a private network (`is_local_addr`) proves nothing
/// about the outside and is not counted, unless this is a test network
/// (`--dial-local`). Two cases on a loopback test network without that
/// switch: a servent that advertises a loopback address can only ever be
/// reached from this machine, so a servent connecting to it on its own
/// counts; a connect-back it asked for does not (the servent answering is
/// on our side of any firewall), so such a servent is unreachable by what it
/// advertises until someone connects to it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reachability {
    reached: bool,
}

impl Reachability {
    /// Records a connection that came in from `remote`, how it came, while
    /// we advertise `advertised`; `test_network` is `--dial-local`.
    pub fn incoming(&mut self, remote: IpAddr, arrival: Arrival, advertised: Ipv4Addr, test_network: bool) {
        let local = match remote {
            IpAddr::V4(ip) => address::local(ip),
            IpAddr::V6(ip) => ip.is_loopback() || ip.is_unspecified(),
        };
        let loopback_only = advertised.is_loopback() && arrival == Arrival::Unasked;
        if !local || test_network || loopback_only {
            self.reached = true;
        }
    }

    /// Whether our QueryHits must ask for a PUSH.
    pub fn firewalled(&self) -> bool {
        !self.reached
    }
}

/// The connect-backs we make for neighbours' TCP Connect Back requests,
/// bounded per address and in all (each is a connection we open). Only to
/// the address of the link the request came by, never a local one outside a
/// test network (as the host cache dials none).
#[derive(Debug)]
pub struct ConnectBackProbes {
    budget: AddressBudget,
}

impl Default for ConnectBackProbes {
    fn default() -> ConnectBackProbes {
        ConnectBackProbes { budget: AddressBudget::new(MAX_PROBES_PER_ADDRESS, MAX_PROBES) }
    }
}

impl ConnectBackProbes {
    /// Whether to connect back to `to` (the link's IP and the asked port)
    /// at `now`; if so, it is counted.
    pub fn allow(&mut self, to: SocketAddrV4, test_network: bool, now: Instant) -> bool {
        address::usable(to)
            && (test_network || !address::local(*to.ip()))
            && self.budget.allow(IpAddr::V4(*to.ip()), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid() -> Guid {
        Guid([0xAB; 16])
    }

    #[test]
    fn giv_line_is_written_as_gtk_gnutella_reads_it() {
        let line = giv_line(7, guid(), "SEBLINUX-1.0.tar");
        assert_eq!(line, b"GIV 7:ABABABABABABABABABABABABABABABAB/SEBLINUX-1.0.tar\n\n".to_vec());
        assert_eq!(parse_giv(&line[..line.len() - 2]), Some((7, guid())));
    }

    #[test]
    fn a_name_cannot_break_the_giv_line() {
        let line = giv_line(1, guid(), "a\r\n/b");
        assert_eq!(line, b"GIV 1:ABABABABABABABABABABABABABABABAB/a___b\n\n".to_vec());
        let long = giv_line(1, guid(), &"x".repeat(10_000));
        assert!(long.len() <= MAX_GIV_LINE);
        assert!(parse_giv(&long[..long.len() - 2]).is_some());
        assert_eq!(giv_line(2, guid(), ""), b"GIV 2:ABABABABABABABABABABABABABABABAB/file\n\n".to_vec());
    }

    #[test]
    fn giv_lines_in_either_case_are_read_and_malformed_ones_refused() {
        assert_eq!(parse_giv(b"GIV 0:abababababababababababababababab/"), Some((0, guid())));
        for bad in [
            &b"GIV :ABABABABABABABABABABABABABABABAB/x"[..],
            b"GIV 99999999999:ABABABABABABABABABABABABABABABAB/x",
            b"GIV 1:ABABABABABABABABABABABABABABAB/x",
            b"GIV 1:ABABABABABABABABABABABABABABABAB",
            b"GIV 1:ZZABABABABABABABABABABABABABABAB/x",
            b"GET / HTTP/1.1",
            b"GIV 1 ABABABABABABABABABABABABABABABAB/x",
        ] {
            assert_eq!(parse_giv(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let mut huge = b"GIV 1:ABABABABABABABABABABABABABABABAB/".to_vec();
        huge.resize(MAX_GIV_LINE + 1, b'x');
        assert_eq!(parse_giv(&huge), None);
    }

    #[test]
    fn a_hit_needs_a_push_when_flagged_firewalled_or_unreachable() {
        use crate::wire::{Trailer, TrailerFlags};
        let flagged = |push| Some(Trailer::ours(TrailerFlags { push, ..Default::default() }, Default::default()));
        let hit = |ip: [u8; 4], port, trailer| QueryHit {
            port,
            ip: Ipv4Addr::from(ip),
            speed: 0,
            results: Vec::new(),
            trailer,
            servent_guid: guid(),
            original: Default::default(),
        };
        assert!(!needs_push(&hit([127, 0, 0, 1], 6346, flagged(Some(false)))));
        assert!(!needs_push(&hit([127, 0, 0, 1], 6346, None)));
        assert!(needs_push(&hit([127, 0, 0, 1], 6346, flagged(Some(true)))));
        assert!(needs_push(&hit([0, 0, 0, 0], 6346, None)));
        assert!(needs_push(&hit([10, 0, 0, 1], 0, flagged(Some(false)))));
    }

    #[test]
    fn a_push_flood_opens_few_connections_back_and_none_to_unusable_addresses() {
        let now = Instant::now();
        let mut backs = ConnectBacks::default();
        let victim = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80);
        let allowed = (0..1000).filter(|_| backs.allow(victim, now)).count();
        assert_eq!(allowed, MAX_CONNECT_BACKS_PER_TARGET);
        let many =
            (0..1000u32).filter(|i| backs.allow(SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + i), 6346), now)).count();
        assert_eq!(many, MAX_CONNECT_BACKS - MAX_CONNECT_BACKS_PER_TARGET);
        let later = now + CONNECT_BACK_WINDOW;
        assert!(backs.allow(victim, later), "the window slides");
        for unusable in [
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6346),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 0),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 6346),
            SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 6346),
        ] {
            assert!(!ConnectBacks::default().allow(unusable, later), "{unusable}");
        }
    }

    #[test]
    fn attack_one_address_hammering_the_push_proxy_is_refused_and_others_still_served() {
        let now = Instant::now();
        let mut requests = ProxyRequests::default();
        let hammer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66));
        let served = (0..10_000).filter(|_| requests.allow(hammer, now)).count();
        assert_eq!(served, MAX_PROXY_REQUESTS_PER_ADDRESS);
        assert!(requests.allow(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), now), "another requester");
        assert!(requests.allow(hammer, now + CONNECT_BACK_WINDOW), "the window slides");
        let many = (0..10_000u32).filter(|i| requests.allow(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)), now)).count();
        assert!(many < MAX_PROXY_REQUESTS, "bounded in all");
    }

    #[test]
    fn push_proxies_travel_in_ggep_push_and_server_ids_in_base32() {
        let proxies = [SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 6346), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1)];
        let mut ggep = Ggep::default();
        add_proxies(&mut ggep, &proxies);
        assert_eq!(ggep.get(GGEP_PUSH), Some(&[1, 2, 3, 4, 0xCA, 0x18, 0, 0, 0, 0, 1, 0][..]));
        let hit = QueryHit {
            port: 1,
            ip: Ipv4Addr::LOCALHOST,
            speed: 0,
            results: Vec::new(),
            trailer: Some(crate::wire::Trailer::ours(Default::default(), ggep)),
            servent_guid: guid(),
            original: Default::default(),
        };
        assert_eq!(hit_proxies(&hit), vec![proxies[0]], "an unusable proxy is left out");
        let id = server_id(guid());
        assert_eq!(id.len(), 26);
        assert_eq!(parse_server_id(&id), Some(guid()));
        assert_eq!(parse_server_id(&id.to_ascii_lowercase()), Some(guid()));
        assert_eq!(parse_server_id(&format!("{id}======")), Some(guid()));
        assert_eq!(parse_server_id("ABC"), None);
        assert_eq!(parse_server_id(&"1".repeat(26)), None);
    }

    #[test]
    fn proxied_leaves_are_bounded_and_forgotten_with_their_link() {
        let mut proxies = PushProxies::default();
        for n in 0..MAX_PROXIED_LEAVES as u64 + 10 {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&n.to_le_bytes());
            proxies.serve(Guid(id), PeerId(n % 3));
        }
        assert_eq!(proxies.leaves.len(), MAX_PROXIED_LEAVES);
        proxies.closed(PeerId(1));
        assert!(proxies.leaves.values().all(|p| *p != PeerId(1)));
        proxies.acknowledged(PeerId(7), SocketAddrV4::new(Ipv4Addr::new(5, 5, 5, 5), 6346));
        proxies.acknowledged(PeerId(8), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6346));
        assert_eq!(proxies.ours(), vec![SocketAddrV4::new(Ipv4Addr::new(5, 5, 5, 5), 6346)]);
        proxies.closed(PeerId(7));
        assert!(proxies.ours().is_empty());
    }

    #[test]
    fn we_are_firewalled_until_someone_connects_from_outside() {
        let public = Ipv4Addr::new(203, 0, 113, 5);
        let outside = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let mut reach = Reachability::default();
        assert!(reach.firewalled());
        for local in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(10, 0, 0, 1)] {
            for arrival in [Arrival::Unasked, Arrival::ConnectBack] {
                reach.incoming(IpAddr::V4(local), arrival, public, false);
            }
        }
        assert!(reach.firewalled(), "a connection from our own machine or network proves nothing");
        reach.incoming(outside, Arrival::ConnectBack, public, false);
        assert!(!reach.firewalled(), "a connect-back from outside counts");
        let mut test_network = Reachability::default();
        test_network.incoming(IpAddr::V4(Ipv4Addr::LOCALHOST), Arrival::ConnectBack, Ipv4Addr::LOCALHOST, true);
        assert!(!test_network.firewalled(), "on a test network (--dial-local) local connections count");
    }

    #[test]
    fn on_loopback_a_link_counts_but_a_connect_back_we_asked_for_does_not() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut reach = Reachability::default();
        reach.incoming(loopback, Arrival::ConnectBack, Ipv4Addr::LOCALHOST, false);
        assert!(reach.firewalled(), "unreachable by what it advertises");
        reach.incoming(loopback, Arrival::Unasked, Ipv4Addr::LOCALHOST, false);
        assert!(!reach.firewalled(), "a servent that listens on loopback can only be reached from it");
    }

    #[test]
    fn attack_connect_back_requests_open_few_connections_and_none_to_local_addresses() {
        let now = Instant::now();
        let mut probes = ConnectBackProbes::default();
        let asker = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 6346);
        assert_eq!((0..1000).filter(|_| probes.allow(asker, false, now)).count(), MAX_PROBES_PER_ADDRESS);
        let many = (0..1000u32)
            .filter(|i| probes.allow(SocketAddrV4::new(Ipv4Addr::from(0xC633_6400 + i), 6346), false, now))
            .count();
        assert_eq!(many, MAX_PROBES - MAX_PROBES_PER_ADDRESS);
        let later = now + CONNECT_BACK_WINDOW;
        let mut fresh = ConnectBackProbes::default();
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346);
        assert!(!fresh.allow(local, false, later), "no local address outside a test network");
        assert!(fresh.allow(local, true, later), "a test network connects back locally");
        assert!(!fresh.allow(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 8), 0), true, later), "port 0");
    }
}

#[cfg(test)]
mod node_tests {
    //! The node core's side of push: answering a PUSH, flagging our hits,
    //! sending a PUSH along a hit's path.

    use std::net::SocketAddr;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::handshake::PeerInfo;
    use crate::node::{Action, Config, Connected, Direction, Event, Node};
    use crate::routing::PeerId;
    use crate::trust::{SharedTrust, TrustStore};
    use crate::wire::vendor::{Kind, MessagesSupported, Vendor};
    use crate::wire::{Message, Payload, Push, Query, QueryResult, Trailer, TrailerFlags, Urn};

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 6346)
    }

    fn node(now: Instant) -> Node {
        let config = Config { listen: SocketAddr::V4(addr(100)), ..Config::default() };
        Node::new(config, StdRng::seed_from_u64(3), SharedTrust::new(TrustStore::in_memory()), (1, 10), now)
    }

    fn connect(node: &mut Node, peer: u64, direction: Direction, now: Instant) {
        let connected = Connected {
            peer: PeerId(peer),
            addr: SocketAddr::V4(addr(peer as u8)),
            local: SocketAddr::V4(addr(100)),
            info: PeerInfo::default(),
            direction,
            dialed: None,
        };
        node.handle(Event::Connected(Box::new(connected)), now);
    }

    fn actions(node: &mut Node) -> Vec<Action> {
        std::iter::from_fn(|| node.poll_action()).collect()
    }

    fn push_to(servent: Guid, n: u8, to: SocketAddrV4) -> Message {
        let push = Push { servent_guid: servent, index: 5, ip: *to.ip(), port: to.port(), ggep: Default::default() };
        Message { guid: Guid([n; 16]), ttl: 7, hops: 2, payload: Payload::Push(push) }
    }

    fn connect_back_request(n: u8, port: u16) -> Message {
        let request = crate::wire::vendor::connect_back::TcpConnectBack { port }.to_vendor();
        crate::node::vendor::message(Guid([n; 16]), request)
    }

    #[test]
    fn while_firewalled_we_ask_each_neighbour_announcing_it_to_connect_back_to_our_port() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Outgoing, now);
        actions(&mut node);
        let theirs = MessagesSupported { kinds: vec![Kind::TCP_CONNECT_BACK] }.to_vendor();
        node.handle(
            Event::Message { peer: PeerId(1), message: crate::node::vendor::message(Guid([1; 16]), theirs) },
            now,
        );
        let asked: Vec<Vendor> = actions(&mut node)
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { to: PeerId(1), message } => Vendor::from_payload(&message.payload)?.ok(),
                _ => None,
            })
            .filter(|v| v.kind == Kind::TCP_CONNECT_BACK)
            .collect();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].body, addr(100).port().to_le_bytes());
    }

    #[test]
    fn attack_a_neighbour_flooding_connect_back_requests_gets_two_and_only_to_its_own_address() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Incoming, now);
        actions(&mut node);
        for n in 0..100u8 {
            node.handle(Event::Message { peer: PeerId(1), message: connect_back_request(n, 1000 + u16::from(n)) }, now);
        }
        node.handle(Event::Message { peer: PeerId(1), message: connect_back_request(200, 0) }, now);
        let probes: Vec<SocketAddrV4> = actions(&mut node)
            .into_iter()
            .filter_map(|a| match a {
                Action::ProbeBack { to } => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(probes.len(), MAX_PROBES_PER_ADDRESS);
        assert!(probes.iter().all(|to| to.ip() == addr(1).ip()), "{probes:?}");
    }

    #[test]
    fn a_push_for_us_connects_back_and_a_flood_of_them_does_not_open_more() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Incoming, now);
        actions(&mut node);
        let target = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 6346);
        for n in 0..100 {
            node.handle(Event::Message { peer: PeerId(1), message: push_to(node.guid(), n, target) }, now);
        }
        let backs: Vec<Action> =
            actions(&mut node).into_iter().filter(|a| matches!(a, Action::ConnectBack { .. })).collect();
        assert_eq!(backs.len(), MAX_CONNECT_BACKS_PER_TARGET);
        assert_eq!(backs[0], Action::ConnectBack { to: target, index: 5 });
        // A PUSH for someone else is routed, not answered.
        node.handle(Event::Message { peer: PeerId(1), message: push_to(Guid([1; 16]), 200, target) }, now);
        assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::ConnectBack { .. })));
    }

    /// `proxies` as servent `namer` (an index: one IP each) named them.
    fn named_by(namer: u32, proxies: &[SocketAddrV4]) -> Vec<(SocketAddrV4, Ipv4Addr)> {
        proxies.iter().map(|proxy| (*proxy, Ipv4Addr::from(0xCB00_7100 + namer))).collect()
    }

    fn asked(node: &mut Node, namer: u32, proxies: &[SocketAddrV4], now: Instant) -> Vec<SocketAddrV4> {
        node.proxies_to_ask(&named_by(namer, proxies), now).asked
    }

    #[test]
    fn attack_push_proxies_a_stranger_names_are_asked_only_if_we_may_dial_them_and_within_a_budget() {
        let now = Instant::now();
        let mut node = node(now);
        let distant = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), 22);
        assert!(asked(&mut node, 0, &[distant], now).is_empty(), "while firewalled no GIV could reach us");
        node.handle(Event::Incoming { remote: IpAddr::V4(*addr(2).ip()), arrival: Arrival::Unasked }, now);
        // An answer names 16 servents with 4 proxies each, all on our machine or LAN.
        let local: Vec<SocketAddrV4> = (0..64u16)
            .map(|i| match i % 4 {
                0 => SocketAddrV4::new(Ipv4Addr::LOCALHOST, 22 + i),
                1 => SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 80 + i),
                2 => SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 445),
                _ => SocketAddrV4::new(*addr(100).ip(), 6347),
            })
            .collect();
        for four in local.chunks(MAX_PROXIES) {
            let asks = node.proxies_to_ask(&named_by(1, four), now);
            assert_eq!(asks, ProxiesToAsk::default(), "{four:?}: refused by the dial rule, not the budget");
        }
        // A distant victim named again and again (by many) is asked within its budget.
        let victim: usize = (0..100).map(|n| asked(&mut node, 100 + n, &[distant, distant], now).len()).sum();
        assert_eq!(victim, MAX_PROXY_ASKS_PER_ADDRESS);
        let many: usize = (0..1000u32)
            .map(|i| asked(&mut node, 1000 + i, &[SocketAddrV4::new(Ipv4Addr::from(0xC633_6500 + i), 6346)], now).len())
            .sum();
        assert_eq!(many, MAX_PROXY_ASKS - MAX_PROXY_ASKS_PER_ADDRESS, "bounded in all");
        assert_eq!(asked(&mut node, 0, &[distant], now + CONNECT_BACK_WINDOW), vec![distant], "the window slides");
    }

    #[test]
    fn attack_one_hostile_answer_cannot_spend_the_push_proxy_budget_of_every_other_source() {
        let now = Instant::now();
        let mut node = node(now);
        node.handle(Event::Incoming { remote: IpAddr::V4(*addr(2).ip()), arrival: Arrival::Unasked }, now);
        assert!(!node.firewalled());
        // One answer names 16 firewalled servents with 4 distinct public proxies each.
        let hostile: Vec<SocketAddrV4> =
            (0..64u32).map(|i| SocketAddrV4::new(Ipv4Addr::from(0xC612_0000 + i), 6346)).collect();
        let asks: Vec<ProxiesToAsk> =
            hostile.chunks(4).map(|four| node.proxies_to_ask(&named_by(1, four), now)).collect();
        let spent: usize = asks.iter().map(|a| a.asked.len()).sum();
        assert_eq!(spent, MAX_PROXY_ASKS_PER_NAMER, "only its namer's budget is spent");
        assert!(asks.last().unwrap().over_budget, "the rest wait for the budget, not given up");
        let legitimate = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 6346);
        assert_eq!(asked(&mut node, 2, &[legitimate], now), [legitimate], "another source's proxy is still asked");
    }

    #[test]
    fn a_test_network_asks_local_proxies_but_never_while_our_address_is_unknown() {
        let now = Instant::now();
        let proxy = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000);
        let unknown = Config { listen: "0.0.0.0:6346".parse().unwrap(), dial_local: true, ..Config::default() };
        let mut node =
            Node::new(unknown, StdRng::seed_from_u64(3), SharedTrust::new(TrustStore::in_memory()), (1, 10), now);
        node.handle(Event::Incoming { remote: IpAddr::V4(Ipv4Addr::LOCALHOST), arrival: Arrival::Unasked }, now);
        assert!(!node.firewalled());
        assert!(asked(&mut node, 1, &[proxy], now).is_empty(), "no X-Node: 0.0.0.0");
        let test_network = Config { listen: SocketAddr::V4(addr(100)), dial_local: true, ..Config::default() };
        let mut node =
            Node::new(test_network, StdRng::seed_from_u64(3), SharedTrust::new(TrustStore::in_memory()), (1, 10), now);
        node.handle(Event::Incoming { remote: IpAddr::V4(Ipv4Addr::LOCALHOST), arrival: Arrival::Unasked }, now);
        assert_eq!(asked(&mut node, 1, &[proxy, proxy], now), vec![proxy]);
    }

    fn our_hit_flag(node: &mut Node, n: u8, now: Instant) -> Option<bool> {
        let query = Query::words(&format!("seblinux {n}"));
        let message = Message { guid: Guid([n; 16]), ttl: 3, hops: 1, payload: Payload::Query(query) };
        node.handle(Event::Message { peer: PeerId(1), message }, now);
        let lookup = actions(node)
            .into_iter()
            .find_map(|a| if let Action::LookUp { lookup, .. } = a { Some(lookup) } else { None })
            .expect("the library is asked");
        let file = search::SharedFile {
            index: 3,
            name: "SEBLINUX-1.0.tar".into(),
            path: "SEBLINUX-1.0.tar".into(),
            size: 10,
            sha1: Urn::Sha1([1; 20]),
            sha256: Urn::Sha256([2; 32]),
            tth: search::thex::Root([3; 24]),
            signature: None,
        };
        node.handle(Event::LocalResults { lookup, files: vec![file] }, now);
        actions(node).into_iter().find_map(|a| match a {
            Action::Send { message: Message { payload: Payload::QueryHit(hit), .. }, .. } => hit.trailer?.flags.push,
            _ => None,
        })
    }

    #[test]
    fn our_hits_ask_for_a_push_until_someone_connects_to_us() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Outgoing, now);
        assert!(node.firewalled());
        assert_eq!(our_hit_flag(&mut node, 1, now), Some(true));
        let remote = IpAddr::V4(*addr(2).ip());
        node.handle(Event::Incoming { remote, arrival: Arrival::Unasked }, now);
        assert!(!node.firewalled());
        assert_eq!(our_hit_flag(&mut node, 2, now), Some(false));
    }

    #[test]
    fn a_firewalled_hit_names_a_push_source_and_our_push_goes_back_along_its_path_once_we_are_reachable() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Outgoing, now);
        connect(&mut node, 2, Direction::Outgoing, now);
        let search = node.search("seblinux", 4, now).unwrap();
        actions(&mut node);
        let servent = Guid([0x77; 16]);
        assert!(!node.push(servent, 8), "no hit of it seen: no route");
        let urns = vec![Urn::Sha1([4; 20])];
        let hit = QueryHit {
            port: 6346,
            ip: Ipv4Addr::new(198, 51, 100, 9),
            speed: 0,
            results: vec![QueryResult {
                index: 8,
                size: 5,
                name: "SEBLINUX.tar".into(),
                urns: urns.clone(),
                ggep: Default::default(),
            }],
            trailer: Some(Trailer::ours(TrailerFlags { push: Some(true), ..Default::default() }, Default::default())),
            servent_guid: servent,
            original: Default::default(),
        };
        let message = Message { guid: search, ttl: 3, hops: 2, payload: Payload::QueryHit(hit) };
        node.handle(Event::Message { peer: PeerId(2), message }, now);
        let source = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), 6346);
        let expected =
            Action::PushSource { source, servent, files: vec![(urns, 8)], proxies: Vec::new(), namer: *source.ip() };
        assert!(actions(&mut node).contains(&expected));
        // Both ends firewalled: its GIV could not reach us (gtk-gnutella's `download_push`).
        assert!(node.firewalled());
        assert!(!node.push(servent, 8), "a PUSH sent while we are firewalled");
        assert_eq!(actions(&mut node), []);
        connect(&mut node, 3, Direction::Incoming, now);
        actions(&mut node);
        assert!(node.push(servent, 8));
        let sent = actions(&mut node);
        let [Action::Send { to, message: Message { payload: Payload::Push(push), ttl, hops: 0, .. } }] = &sent[..]
        else {
            panic!("one PUSH: {sent:?}")
        };
        assert_eq!((*to, *ttl), (PeerId(2), crate::routing::DEFAULT_MAX_TTL));
        assert_eq!((push.servent_guid, push.index, push.ip, push.port), (servent, 8, *addr(100).ip(), 6346));
    }

    /// Our machine and LAN, as a stranger may name them.
    fn local_services() -> [SocketAddrV4; 4] {
        [
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 22),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 445),
            SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80),
        ]
    }

    fn connected_backs(node: &mut Node) -> Vec<SocketAddrV4> {
        actions(node)
            .into_iter()
            .filter_map(|a| match a {
                Action::ConnectBack { to, .. } => Some(to),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn attack_a_routed_push_cannot_make_us_connect_to_our_own_machine_or_lan() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Incoming, now);
        actions(&mut node);
        for (n, to) in local_services().into_iter().enumerate() {
            node.handle(Event::Message { peer: PeerId(1), message: push_to(node.guid(), n as u8 + 1, to) }, now);
        }
        let ours = SocketAddrV4::new(*addr(100).ip(), 9000);
        node.handle(Event::Message { peer: PeerId(1), message: push_to(node.guid(), 10, ours) }, now);
        assert_eq!(connected_backs(&mut node), [], "a PUSH made us connect to a local service");
    }

    #[test]
    fn a_test_network_connects_back_to_the_loopback_address_a_push_names() {
        let now = Instant::now();
        let config = Config { listen: SocketAddr::V4(addr(100)), dial_local: true, ..Config::default() };
        let mut node =
            Node::new(config, StdRng::seed_from_u64(3), SharedTrust::new(TrustStore::in_memory()), (1, 10), now);
        connect(&mut node, 1, Direction::Incoming, now);
        actions(&mut node);
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000);
        node.handle(Event::Message { peer: PeerId(1), message: push_to(node.guid(), 1, to) }, now);
        assert_eq!(connected_backs(&mut node), [to]);
    }

    #[test]
    fn attack_a_push_proxy_request_naming_a_local_x_node_is_refused_as_bad() {
        let now = Instant::now();
        let mut node = node(now);
        connect(&mut node, 1, Direction::Incoming, now);
        actions(&mut node);
        let leaf = Guid([0x42; 16]);
        for to in local_services() {
            assert_eq!(node.proxy_push(leaf, 1, to), ProxyPush::BadNode, "{to}");
        }
        assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::Send { .. })), "no PUSH passed on");
        let distant = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), 6346);
        assert_eq!(node.proxy_push(Guid([1; 16]), 1, distant), ProxyPush::NoLeaf);
    }

    /// A hit for `search` from servent `n` naming `ip` (no push flag).
    fn hit_naming(search: Guid, n: u8, ip: Ipv4Addr) -> Message {
        let result = QueryResult {
            index: 1,
            size: 10,
            name: "SEBLINUX.tar".into(),
            urns: vec![Urn::Sha1([5; 20])],
            ggep: Default::default(),
        };
        let hit = QueryHit {
            port: 22,
            ip,
            speed: 1,
            results: vec![result],
            trailer: None,
            servent_guid: Guid([n; 16]),
            original: Default::default(),
        };
        Message { guid: search, ttl: 3, hops: 1, payload: Payload::QueryHit(hit) }
    }

    /// A node linked to one peer (peer 1, which came to us), searching
    /// `seblinux` through it; what it did so far taken.
    fn searching_through_one_peer(now: Instant) -> (Node, Guid) {
        let mut node = node(now);
        connect(&mut node, 1, Direction::Incoming, now);
        let search = node.search("seblinux", 4, now).unwrap();
        actions(&mut node);
        (node, search)
    }

    #[test]
    fn attack_a_hit_naming_a_local_address_is_offered_only_as_a_push_source() {
        let now = Instant::now();
        let (mut node, search) = searching_through_one_peer(now);
        for (n, ip) in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 168, 1, 1)].into_iter().enumerate() {
            node.handle(Event::Message { peer: PeerId(1), message: hit_naming(search, n as u8 + 1, ip) }, now);
        }
        let done = actions(&mut node);
        let offered: Vec<SocketAddrV4> = done
            .iter()
            .filter_map(|a| match a {
                Action::OfferSource { source, .. } => Some(*source),
                _ => None,
            })
            .collect();
        let keys = [push_only_key(Guid([1; 16])), push_only_key(Guid([2; 16]))];
        assert_eq!(offered, keys, "offered as sources to connect to");
        for key in keys {
            assert!(done.iter().any(|a| matches!(a, Action::PushSource { source, .. } if *source == key)), "{key}");
        }
    }

    #[test]
    fn attack_a_search_result_naming_a_local_address_or_ours_is_given_to_downloads_only_by_its_push_key() {
        let now = Instant::now();
        let (mut node, search) = searching_through_one_peer(now);
        let refused = [
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(169, 254, 169, 254),
            *addr(100).ip(), // our own IP, another port
        ];
        let distant = Ipv4Addr::new(8, 8, 8, 8);
        for (n, ip) in refused.into_iter().chain([distant]).enumerate() {
            node.handle(Event::Message { peer: PeerId(1), message: hit_naming(search, n as u8 + 1, ip) }, now);
        }
        let done = actions(&mut node);
        let known = node.known(&[Urn::Sha1([5; 20])]).expect("the search found it");
        let mut expected: Vec<SocketAddrV4> = (1..=4).map(|n| push_only_key(Guid([n; 16]))).collect();
        expected.push(SocketAddrV4::new(distant, 22));
        assert_eq!(known.sources, expected, "the sources a download would connect to");
        for key in &expected[..4] {
            assert!(done.iter().any(|a| matches!(a, Action::PushSource { source, .. } if source == key)), "{key}");
        }
        let shown = &node.search_results(&search).unwrap().results()[0].sources;
        assert_eq!(shown[0], SocketAddrV4::new(Ipv4Addr::LOCALHOST, 22), "the search shows what the hits named");
    }

    /// Firewalled servents behind different NATs often name the same
    /// private address (a DHCP lease and the default port): each is a push
    /// source of its own, and a download must be given each one's push key,
    /// as the hits offered them, not only the first servent's.
    #[test]
    fn attack_servents_naming_the_same_private_address_are_each_given_to_downloads() {
        let now = Instant::now();
        let (mut node, search) = searching_through_one_peer(now);
        let lan = Ipv4Addr::new(192, 168, 1, 100);
        for n in 1..=2 {
            node.handle(Event::Message { peer: PeerId(1), message: hit_naming(search, n, lan) }, now);
        }
        let keys = [push_only_key(Guid([1; 16])), push_only_key(Guid([2; 16]))];
        let done = actions(&mut node);
        for key in keys {
            assert!(done.iter().any(|a| matches!(a, Action::PushSource { source, .. } if *source == key)), "{key}");
        }
        let known = node.known(&[Urn::Sha1([5; 20])]).expect("the search found it");
        assert_eq!(known.sources, keys, "the second servent's push key was lost");
    }

    #[test]
    fn a_test_network_offers_a_loopback_hit_as_a_source_to_connect_to() {
        let now = Instant::now();
        let config = Config { listen: SocketAddr::V4(addr(100)), dial_local: true, ..Config::default() };
        let mut node =
            Node::new(config, StdRng::seed_from_u64(3), SharedTrust::new(TrustStore::in_memory()), (1, 10), now);
        connect(&mut node, 1, Direction::Incoming, now);
        let search = node.search("seblinux", 4, now).unwrap();
        actions(&mut node);
        node.handle(Event::Message { peer: PeerId(1), message: hit_naming(search, 1, Ipv4Addr::LOCALHOST) }, now);
        let done = actions(&mut node);
        let direct = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 22);
        assert!(done.iter().any(|a| matches!(a, Action::OfferSource { source, .. } if *source == direct)));
        assert!(!done.iter().any(|a| matches!(a, Action::PushSource { .. })));
    }
}
