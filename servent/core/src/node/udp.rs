//! UDP on the Gnutella port: one datagram is one descriptor, in the same
//! codec as the TCP links.
//!
//! What the node does with datagrams, as gtk-gnutella's `pcache.c` does:
//! - A UDP Ping is answered with a Pong about us; when it carries GGEP
//!   `SCP`, the Pong also carries up to [`UHC_HOSTS`] hosts in GGEP `IPP`
//!   (our neighbours first, then the host cache): every servent is a UDP
//!   host cache.
//! - UDP sources are spoofable, so an answer never goes out unbudgeted:
//!   each IPv4 address (on loopback, where nothing is spoofed and a test
//!   network shares one address, each port) gets [`ADDRESS_BURST`] answers, then one every
//!   [`ADDRESS_REFILL`], and all addresses together [`GLOBAL_BURST`], then
//!   one every [`GLOBAL_REFILL`]. A Pong of ours is at most
//!   [`MAX_ANSWER_LEN`] bytes and no more than [`ANSWER_SLACK`] bytes
//!   larger than the Ping it answers (it packs fewer hosts in `IPP` to fit),
//!   so a flood under a victim's address brings it a few dozen bytes a
//!   second, whatever the flood's size, and a spoofed Ping is no lever.
//!   When the table of addresses is full, a new address is refused without
//!   a look at the table, which is swept of addresses back to a full
//!   budget at most once every [`ADDRESS_REFILL`].
//! - A UDP Pong is read only when it answers a Ping we sent, from the
//!   address we sent it to, with its GUID, once: a forged or replayed Pong
//!   full of addresses teaches the host cache nothing, and a genuine one
//!   teaches it at most [`MAX_LEARNED`] hosts.
//! - When the node has nobody left to dial, it asks the UDP host caches
//!   (`--uhc`, the bootstrap list) with an `SCP` Ping, a few at a time, each
//!   cache backing off while it does not answer.
//!
//! It also tells the user, once per change, whether it has joined the
//! network or finds nobody ([`Action::Notice`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::{Action, Node};
use crate::handshake::Role;
use crate::hostcache::Origin;
use crate::wire::vendor::Vendor;
use crate::wire::{self, ipp, Ggep, Guid, Message, Payload, Ping, Pong};

/// Hosts one of our Pongs packs in `IPP` at most.
pub const UHC_HOSTS: usize = 10;
/// The largest Pong we send over UDP: header, pong, one `IPP` of [`UHC_HOSTS`].
pub const MAX_ANSWER_LEN: usize = wire::HEADER_LEN + 14 + 6 + UHC_HOSTS * ipp::PACKED_LEN;
/// Bytes a Pong of ours may exceed the Ping it answers by: an `SCP` Ping
/// as gtk-gnutella sends it (30 bytes) gets 8 hosts.
pub const ANSWER_SLACK: usize = 64;
/// Answers one address may have at once.
pub const ADDRESS_BURST: u32 = 8;
/// One more answer for an address after this long.
pub const ADDRESS_REFILL: Duration = Duration::from_secs(2);
/// Answers all addresses together may have at once.
pub const GLOBAL_BURST: u32 = 200;
/// One more answer for all after this long (50 a second).
pub const GLOBAL_REFILL: Duration = Duration::from_millis(20);
/// Addresses whose budget is remembered.
pub const ADDRESS_TABLE: usize = 10_000;
/// Pings of ours awaiting their Pong at most.
pub const PINGS_OUT: usize = 64;
/// How long a Pong to our Ping is awaited.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// Hosts learned from one Pong at most (gtk-gnutella packs 30).
pub const MAX_LEARNED: usize = 30;
/// UDP host caches asked in one round.
pub const CACHES_PER_ROUND: usize = 2;
/// The wait before asking a UDP host cache again; it doubles while it does not answer.
pub const CACHE_RETRY_BASE: Duration = Duration::from_secs(30);
/// The longest wait before asking a UDP host cache again.
pub const CACHE_RETRY_MAX: Duration = Duration::from_secs(30 * 60);
/// UDP host caches remembered at most.
pub const MAX_CACHES: usize = 64;
/// How long the node looks for peers before saying it finds none.
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(60);

/// What arrived over UDP, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams that were no descriptor.
    pub malformed: u64,
    /// Pings answered.
    pub answered: u64,
    /// Answers not sent: over an address's or the global budget.
    pub throttled: u64,
    /// Pongs that answered no Ping of ours.
    pub unsolicited: u64,
    /// Hosts learned from Pongs.
    pub learned: u64,
    /// Other descriptors and vendor messages, ignored.
    pub ignored: u64,
    /// Queries over the size a TCP query may have, dropped unanswered.
    pub too_large: u64,
}

/// A token bucket: `burst` tokens, one more every `refill`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    tokens: u32,
    at: Instant,
}

impl Bucket {
    pub(super) fn full(burst: u32, now: Instant) -> Bucket {
        Bucket { tokens: burst, at: now }
    }

    /// Takes a token if there is one.
    fn take(&mut self, burst: u32, refill: Duration, now: Instant) -> bool {
        self.take_many(1, burst, refill, now)
    }

    /// Takes `count` tokens if there are as many.
    pub(super) fn take_many(&mut self, count: u32, burst: u32, refill: Duration, now: Instant) -> bool {
        self.refill(burst, refill, now);
        if self.tokens < count {
            return false;
        }
        self.tokens -= count;
        true
    }

    fn refill(&mut self, burst: u32, refill: Duration, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        let gained = u32::try_from(elapsed / refill.as_nanos().max(1)).unwrap_or(u32::MAX);
        if gained == 0 {
            return;
        }
        self.tokens = self.tokens.saturating_add(gained).min(burst);
        self.at = match refill.checked_mul(gained) {
            Some(spent) if self.tokens < burst => self.at + spent,
            _ => now,
        };
    }

    pub(super) fn is_full(&mut self, burst: u32, refill: Duration, now: Instant) -> bool {
        self.refill(burst, refill, now);
        self.tokens >= burst
    }
}

/// The answers UDP senders may still get, per address and in all.
#[derive(Debug)]
pub(super) struct Budget {
    addresses: HashMap<SocketAddrV4, Bucket>,
    global: Bucket,
    /// When the full table was last swept.
    swept: Instant,
    /// Sweeps of the full table so far.
    sweeps: u64,
}

/// Whose budget an answer to `addr` spends: its IP address's, or on
/// loopback (never spoofed from outside, shared by servents on one
/// machine) its own.
pub(super) fn budget_key(addr: SocketAddrV4) -> SocketAddrV4 {
    if addr.ip().is_loopback() {
        addr
    } else {
        SocketAddrV4::new(*addr.ip(), 0)
    }
}

impl Budget {
    pub(super) fn new(now: Instant) -> Budget {
        Budget { addresses: HashMap::new(), global: Bucket::full(GLOBAL_BURST, now), swept: now, sweeps: 0 }
    }

    /// Whether `to` may be answered at `now`; spends the answer.
    pub(super) fn allow(&mut self, to: SocketAddrV4, now: Instant) -> bool {
        let key = budget_key(to);
        if self.addresses.len() >= ADDRESS_TABLE && !self.addresses.contains_key(&key) {
            if now < self.swept + ADDRESS_REFILL {
                return false;
            }
            // Addresses back to a full budget are as good as unknown.
            self.swept = now;
            self.sweeps += 1;
            self.addresses.retain(|_, b| !b.is_full(ADDRESS_BURST, ADDRESS_REFILL, now));
            if self.addresses.len() >= ADDRESS_TABLE {
                return false;
            }
        }
        let bucket = self.addresses.entry(key).or_insert_with(|| Bucket::full(ADDRESS_BURST, now));
        bucket.take(ADDRESS_BURST, ADDRESS_REFILL, now) && self.global.take(GLOBAL_BURST, GLOBAL_REFILL, now)
    }

    /// Whether one more datagram may go at `now`, within the budget of
    /// all addresses together; spends it.
    pub(super) fn allow_global(&mut self, now: Instant) -> bool {
        self.global.take(GLOBAL_BURST, GLOBAL_REFILL, now)
    }
}

pub(super) use crate::address::{is_hidden, routable, usable};

/// A UDP host cache and how it has answered.
#[derive(Clone, Debug)]
struct HostCacheServer {
    addr: SocketAddrV4,
    /// Rounds in a row it left unanswered.
    failures: u32,
    /// Whether the last Ping to it is still unanswered.
    awaiting: bool,
    next: Instant,
}

/// Where the node stands in finding the network, for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bootstrap {
    /// Looking for peers since then.
    Looking(Instant),
    /// Said that nobody is reachable.
    Unreachable,
    /// Has peers.
    Joined,
}

/// The node's UDP state.
#[derive(Debug)]
pub(super) struct Udp {
    budget: Budget,
    /// Our Pings awaiting a Pong: GUID, to whom, when.
    pings: VecDeque<(Guid, SocketAddrV4, Instant)>,
    caches: Vec<HostCacheServer>,
    bootstrap: Bootstrap,
    counters: UdpCounters,
}

impl Udp {
    pub(super) fn new(caches: &[SocketAddrV4], now: Instant) -> Udp {
        let mut udp = Udp {
            budget: Budget::new(now),
            pings: VecDeque::new(),
            caches: Vec::new(),
            bootstrap: Bootstrap::Looking(now),
            counters: UdpCounters::default(),
        };
        udp.add_caches(caches.iter().copied(), now);
        udp
    }

    /// Adds UDP host caches to ask; duplicates and unusable addresses are skipped.
    pub(super) fn add_caches(&mut self, caches: impl IntoIterator<Item = SocketAddrV4>, now: Instant) {
        for addr in caches {
            if usable(addr) && self.caches.len() < MAX_CACHES && !self.caches.iter().any(|c| c.addr == addr) {
                self.caches.push(HostCacheServer { addr, failures: 0, awaiting: false, next: now });
            }
        }
    }

    /// Stops asking the cache at `addr`, if any (its name moved elsewhere).
    pub(super) fn forget_cache(&mut self, addr: Option<SocketAddrV4>) {
        self.caches.retain(|c| Some(c.addr) != addr);
    }

    /// The caches' addresses, in order.
    #[cfg(test)]
    pub(super) fn cache_addrs(&self) -> Vec<SocketAddrV4> {
        self.caches.iter().map(|c| c.addr).collect()
    }

    /// Up to `count` caches due at `now`, the least failing first; each is
    /// marked asked and backs off if the last ask went unanswered.
    fn due_caches(&mut self, count: usize, now: Instant) -> Vec<SocketAddrV4> {
        let mut due: Vec<usize> = (0..self.caches.len()).filter(|&i| self.caches[i].next <= now).collect();
        due.sort_by_key(|&i| (self.caches[i].failures, self.caches[i].next));
        due.truncate(count);
        due.into_iter()
            .map(|i| {
                let cache = &mut self.caches[i];
                if cache.awaiting {
                    cache.failures = cache.failures.saturating_add(1);
                }
                cache.awaiting = true;
                let wait = CACHE_RETRY_BASE.saturating_mul(1 << cache.failures.min(16)).min(CACHE_RETRY_MAX);
                cache.next = now + wait;
                cache.addr
            })
            .collect()
    }

    fn expect_pong(&mut self, guid: Guid, to: SocketAddrV4, now: Instant) {
        while self.pings.len() >= PINGS_OUT || self.pings.front().is_some_and(|p| now >= p.2 + PONG_TIMEOUT) {
            self.pings.pop_front();
        }
        self.pings.push_back((guid, to, now));
    }

    /// Whether a Pong with this GUID from `from` answers a Ping of ours; the
    /// Ping is answered then, and a second Pong is not.
    fn solicited(&mut self, guid: Guid, from: SocketAddrV4, now: Instant) -> bool {
        let Some(at) = self.pings.iter().position(|p| p.0 == guid && p.1 == from && now < p.2 + PONG_TIMEOUT) else {
            return false;
        };
        self.pings.remove(at);
        if let Some(cache) = self.caches.iter_mut().find(|c| c.addr == from) {
            cache.failures = 0;
            cache.awaiting = false;
        }
        true
    }
}

/// The Ping that asks a host cache for hosts: GGEP `SCP`, its byte saying
/// whether we are an ultrapeer.
pub fn host_cache_ping(guid: Guid, role: Role) -> Message {
    let mut ggep = Ggep::new();
    ggep.insert(ipp::SCP, vec![u8::from(role == Role::Ultrapeer)]);
    Message::new(guid, 1, Payload::Ping(Ping { ggep }))
}

impl Node {
    /// Reacts to a datagram received on the Gnutella port.
    pub(super) fn on_datagram(&mut self, from: SocketAddrV4, bytes: &[u8], now: Instant) {
        self.udp.counters.received += 1;
        let Ok(message) = wire::decode(bytes) else {
            self.udp.counters.malformed += 1;
            return;
        };
        match message.payload {
            Payload::Ping(ping) => self.on_udp_ping(from, message.guid, &ping, bytes.len(), now),
            Payload::Pong(pong) => self.on_udp_pong(from, message.guid, &pong, now),
            Payload::Query(query) => self.on_udp_query(from, message.guid, query, bytes.len(), now),
            Payload::QueryHit(hit) => {
                if !self.on_guess_hit(from, message.guid, &hit, now) {
                    self.on_udp_hit(from, message.guid, hit, now);
                }
            }
            payload => match Vendor::from_payload(&payload) {
                Some(Ok(vendor)) => self.on_udp_vendor(from, message.guid, vendor, now),
                Some(Err(_)) => self.udp.counters.malformed += 1,
                None => self.udp_ignored(),
            },
        }
    }

    /// Counts a datagram that carries nothing we act on.
    pub(super) fn udp_ignored(&mut self) {
        self.udp.counters.ignored += 1;
    }

    /// Counts a query dropped for its size; past the kick size, as junk too.
    pub(super) fn udp_oversized(&mut self, junk: bool) {
        self.udp.counters.too_large += 1;
        if junk {
            self.udp.counters.malformed += 1;
        }
    }

    /// Whether `to` may get one more answer of ours; spends it.
    pub(super) fn udp_budget_allows(&mut self, to: SocketAddrV4, now: Instant) -> bool {
        let allowed = self.udp.budget.allow(to, now);
        if !allowed {
            self.udp.counters.throttled += 1;
        }
        allowed
    }

    /// Whether one more datagram may go, within the budget of all
    /// addresses together; spends it.
    pub(super) fn udp_global_budget_allows(&mut self, now: Instant) -> bool {
        let allowed = self.udp.budget.allow_global(now);
        if !allowed {
            self.udp.counters.throttled += 1;
        }
        allowed
    }

    /// Answers a Ping of `request` bytes: our Pong, with hosts if it asks
    /// (as many as keep the Pong within [`ANSWER_SLACK`] of the Ping).
    fn on_udp_ping(&mut self, from: SocketAddrV4, guid: Guid, ping: &Ping, request: usize, now: Instant) {
        if !usable(from) {
            self.udp.counters.malformed += 1;
            return;
        }
        if !self.udp_budget_allows(from, now) {
            return;
        }
        let mut ggep = Ggep::new();
        self.guess_pong_extensions(from, ping, &mut ggep, now);
        let (files, bytes) = self.library;
        let pong =
            Pong { port: self.advertised.port(), ip: *self.advertised.ip(), files, kbytes: super::kbytes(bytes), ggep };
        let mut message = Message::new(guid, 1, Payload::Pong(pong));
        if ping.ggep.get(ipp::SCP).is_some() {
            let mut hosts = self.hosts_to_share(from);
            while !hosts.is_empty() {
                let mut answer = message.clone();
                if let Payload::Pong(pong) = &mut answer.payload {
                    pong.ggep.insert(ipp::IPP, ipp::pack(&hosts));
                }
                if answer.encoded_len() <= request + ANSWER_SLACK {
                    message = answer;
                    break;
                }
                hosts.pop();
            }
        }
        self.udp.counters.answered += 1;
        self.actions.push_back(Action::SendDatagram { to: from, message });
    }

    /// Hosts for an `IPP`: our neighbours' listening addresses, then the
    /// host cache's good ones; never the asker nor ourselves, and only
    /// those the asker can reach ([`routable`] from it): a LAN's or this
    /// machine's addresses go to an asker there, never to the Internet.
    pub(super) fn hosts_to_share(&self, asker: SocketAddrV4) -> Vec<SocketAddrV4> {
        let neighbours = self.peers.values().filter(|p| p.role == Role::Ultrapeer).filter_map(|p| p.listen);
        let cached = self.hosts.good(UHC_HOSTS * 2).into_iter().filter_map(super::v4);
        let mut hosts = Vec::with_capacity(UHC_HOSTS);
        for host in neighbours.chain(cached) {
            let fit = host != asker && host != self.advertised && routable(host, asker);
            if fit && !hosts.contains(&host) && hosts.len() < UHC_HOSTS {
                hosts.push(host);
            }
        }
        hosts
    }

    fn on_udp_pong(&mut self, from: SocketAddrV4, guid: Guid, pong: &Pong, now: Instant) {
        if self.on_guess_pong(from, guid, pong, now) {
            return;
        }
        if !self.udp.solicited(guid, from, now) {
            self.udp.counters.unsolicited += 1;
            return;
        }
        let mut learned = vec![SocketAddrV4::new(pong.ip, pong.port)];
        if let Some(packed) = pong.ggep.get(ipp::IPP) {
            learned.extend(ipp::unpack(packed).unwrap_or_default());
        }
        let rule = self.dial_rule();
        learned.retain(|a| routable(*a, self.advertised) && *a != self.advertised && !rule.is_ours(*a));
        learned.truncate(MAX_LEARNED);
        self.udp.counters.learned += learned.len() as u64;
        for addr in learned {
            self.hosts.add(addr, Origin::Network);
        }
    }

    /// Asks the UDP host caches that are due for hosts.
    pub(super) fn ask_host_caches(&mut self, now: Instant) {
        let due = self.udp.due_caches(CACHES_PER_ROUND, now);
        if due.is_empty() {
            return;
        }
        if matches!(self.udp.bootstrap, Bootstrap::Looking(_)) {
            let names: Vec<String> = due.iter().map(SocketAddrV4::to_string).collect();
            self.actions.push_back(Action::Notice(format!("asking UDP host caches {} for peers", names.join(", "))));
        }
        for to in due {
            let guid = Guid::from_rng(&mut self.rng);
            self.udp.expect_pong(guid, to, now);
            self.actions.push_back(Action::SendDatagram { to, message: host_cache_ping(guid, self.config.role) });
        }
    }

    /// Tells the user, once per change, that the node has joined the
    /// network, or that it has found nobody for a while and keeps trying.
    pub(super) fn report_bootstrap(&mut self, now: Instant) {
        let notice = match (self.udp.bootstrap, self.peers.len()) {
            (Bootstrap::Joined, 0) => {
                self.udp.bootstrap = Bootstrap::Looking(now);
                None
            }
            (Bootstrap::Joined, _) => None,
            (_, count) if count > 0 => {
                self.udp.bootstrap = Bootstrap::Joined;
                let plural = if count == 1 { "" } else { "s" };
                Some(format!("joined the network: {count} peer{plural}"))
            }
            (Bootstrap::Looking(since), _) if now.duration_since(since) >= UNREACHABLE_AFTER => {
                self.udp.bootstrap = Bootstrap::Unreachable;
                Some(format!(
                    "no peer reachable after {} s ({} hosts known, {} UDP host caches, {} GWebCaches, \
                     {} host names not looked up): is this machine offline? Still trying, less and less often",
                    UNREACHABLE_AFTER.as_secs(),
                    self.hosts.len(),
                    self.udp.caches.len(),
                    self.config.gwebcaches.len(),
                    self.names.unresolved()
                ))
            }
            _ => None,
        };
        if let Some(notice) = notice {
            self.actions.push_back(Action::Notice(notice));
        }
    }

    /// What arrived over UDP so far.
    pub fn udp_counters(&self) -> &UdpCounters {
        &self.udp.counters
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::handshake::PeerInfo;
    use crate::node::{Config, Connected, Direction, Event};
    use crate::routing::PeerId;
    use crate::trust::{SharedTrust, TrustStore};

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 6346)
    }

    fn node_with(config: Config, now: Instant) -> Node {
        let config = Config { listen: SocketAddr::V4(addr(100)), ..config };
        Node::new(config, StdRng::seed_from_u64(7), SharedTrust::new(TrustStore::in_memory()), (3, 4096), now)
    }

    fn datagrams(node: &mut Node) -> Vec<(SocketAddrV4, Message)> {
        std::iter::from_fn(|| node.poll_action())
            .filter_map(|a| match a {
                Action::SendDatagram { to, message } => Some((to, message)),
                _ => None,
            })
            .collect()
    }

    fn scp_ping(guid: u8) -> Vec<u8> {
        host_cache_ping(Guid([guid; 16]), Role::Leaf).encode()
    }

    fn pong(guid: Guid, from: SocketAddrV4, hosts: &[SocketAddrV4]) -> Vec<u8> {
        let mut ggep = Ggep::new();
        ggep.insert(ipp::IPP, ipp::pack(hosts));
        let pong = Pong { port: from.port(), ip: *from.ip(), files: 0, kbytes: 0, ggep };
        Message::new(guid, 1, Payload::Pong(pong)).encode()
    }

    #[test]
    fn an_scp_ping_is_answered_with_our_pong_and_hosts_packed_in_ipp() {
        let now = Instant::now();
        let mut node = node_with(Config::default(), now);
        node.handle(Event::HostsLearned((1..=20).map(addr).collect()), now);
        node.handle(Event::Datagram { from: addr(1), bytes: scp_ping(5) }, now);
        let sent = datagrams(&mut node);
        assert_eq!(sent.len(), 1);
        let (to, message) = &sent[0];
        assert_eq!((*to, message.guid, message.ttl), (addr(1), Guid([5; 16]), 1));
        assert!(message.encoded_len() <= MAX_ANSWER_LEN, "{} bytes", message.encoded_len());
        let Payload::Pong(pong) = &message.payload else { panic!("a pong answers a ping") };
        assert_eq!((SocketAddrV4::new(pong.ip, pong.port), pong.files, pong.kbytes), (addr(100), 3, 4));
        let hosts = ipp::unpack(pong.ggep.get(ipp::IPP).expect("IPP")).unwrap();
        // gtk-gnutella's SCP Ping is 30 bytes, ours too: 8 hosts keep the Pong within the slack.
        assert_eq!(scp_ping(5).len(), 30);
        assert_eq!(hosts.len(), 8);
        assert!(message.encoded_len() <= scp_ping(5).len() + ANSWER_SLACK);
        assert!(!hosts.contains(&addr(1)), "the asker is not told about itself");
        // The bytes are what gtk-gnutella reads: decoding ours gives the same.
        assert_eq!(wire::decode(&message.encode()).unwrap(), *message);
    }

    #[test]
    fn attack_an_ipp_never_hands_a_lan_or_loopback_address_to_an_asker_outside() {
        let now = Instant::now();
        // A servent on a LAN (a test network) keeps its neighbours' LAN and
        // loopback addresses; the Internet must not learn them from it.
        let mut node = node_with(Config { dial_local: true, ..Config::default() }, now);
        let lan = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 5), 6346);
        let loopback = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000);
        let public = SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 6346);
        node.handle(Event::HostsLearned(vec![lan, loopback, public]), now);
        let told = |node: &mut Node, asker: SocketAddrV4, guid: u8| {
            node.handle(Event::Datagram { from: asker, bytes: scp_ping(guid) }, now);
            let [(_, message)] = datagrams(node).try_into().unwrap();
            let Payload::Pong(pong) = message.payload else { panic!("a pong answers a ping") };
            ipp::unpack(pong.ggep.get(ipp::IPP).expect("IPP")).unwrap()
        };
        assert_eq!(told(&mut node, SocketAddrV4::new(Ipv4Addr::new(5, 6, 7, 8), 6346), 1), vec![public]);
        let neighbour = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 9), 6346);
        assert!(!told(&mut node, neighbour, 2).contains(&loopback), "loopback only to this machine");
        assert!(told(&mut node, neighbour, 3).contains(&lan), "a LAN's address to the LAN");
        assert!(told(&mut node, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7001), 4).contains(&loopback));
    }

    #[test]
    fn a_ping_without_scp_gets_our_pong_alone() {
        let now = Instant::now();
        let mut node = node_with(Config::default(), now);
        node.handle(Event::HostsLearned(vec![addr(2)]), now);
        let ping = Message::new(Guid([1; 16]), 1, Payload::Ping(Ping::default())).encode();
        node.handle(Event::Datagram { from: addr(1), bytes: ping }, now);
        let sent = datagrams(&mut node);
        let Payload::Pong(pong) = &sent[0].1.payload else { panic!("a pong answers a ping") };
        assert!(pong.ggep.is_empty());
    }

    #[test]
    fn attack_a_spoofed_source_flood_is_rate_limited_per_address_and_in_all() {
        let now = Instant::now();
        let mut node = node_with(Config::default(), now);
        node.handle(Event::HostsLearned((1..=20).map(addr).collect()), now);
        // One victim's address, 10,000 pings in a second.
        for i in 0..10_000u32 {
            let at = now + Duration::from_micros(u64::from(i) * 100);
            node.handle(Event::Datagram { from: addr(1), bytes: scp_ping(1) }, at);
        }
        let to_victim = datagrams(&mut node);
        assert_eq!(to_victim.len(), ADDRESS_BURST as usize);
        let bytes: usize = to_victim.iter().map(|(_, m)| m.encoded_len()).sum();
        assert!(bytes <= ADDRESS_BURST as usize * (scp_ping(1).len() + ANSWER_SLACK));
        assert_eq!(node.udp_counters().throttled, 10_000 - u64::from(ADDRESS_BURST));
        // Later, the victim's budget comes back one answer at a time.
        node.handle(
            Event::Datagram { from: addr(1), bytes: scp_ping(1) },
            now + Duration::from_secs(1) + ADDRESS_REFILL,
        );
        assert_eq!(datagrams(&mut node).len(), 1);
        // Many forged sources at once: the global budget holds.
        let later = now + Duration::from_secs(60);
        for i in 0..5_000u32 {
            let from = SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + i), 6346);
            node.handle(Event::Datagram { from, bytes: scp_ping(2) }, later);
        }
        assert_eq!(datagrams(&mut node).len(), GLOBAL_BURST as usize);
    }

    #[test]
    fn attack_a_full_address_table_refuses_new_addresses_and_is_swept_at_most_once_a_refill() {
        let now = Instant::now();
        let mut budget = Budget::new(now);
        let spoofed = |i: u32| SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + i), 6346);
        // Every address spends its whole burst: none is back to full for a while.
        for i in 0..ADDRESS_TABLE as u32 {
            for _ in 0..ADDRESS_BURST {
                budget.allow(spoofed(i), now);
            }
        }
        let later = now + ADDRESS_REFILL * 2;
        for i in 0..5_000u32 {
            assert!(!budget.allow(spoofed(ADDRESS_TABLE as u32 + i), later));
        }
        assert!(budget.sweeps <= 1, "{} sweeps", budget.sweeps);
        // Once its addresses are back to a full budget, a sweep frees the table.
        let much_later = later + ADDRESS_REFILL * (ADDRESS_BURST + 1);
        assert!(budget.allow(spoofed(0x00FF_0000), much_later));
        assert!(budget.sweeps <= 2);
    }

    #[test]
    fn servents_on_one_machine_have_a_budget_each_but_one_address_elsewhere_has_one() {
        let now = Instant::now();
        let mut budget = Budget::new(now);
        let local = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        for _ in 0..ADDRESS_BURST {
            assert!(budget.allow(local(1), now) && budget.allow(SocketAddrV4::new(*addr(1).ip(), 1), now));
        }
        assert!(!budget.allow(local(1), now) && budget.allow(local(2), now));
        assert!(!budget.allow(SocketAddrV4::new(*addr(1).ip(), 2), now), "another port of a spoofable address");
    }

    #[test]
    fn attack_oversized_truncated_and_malformed_datagrams_are_dropped_unanswered() {
        let now = Instant::now();
        let mut node = node_with(Config::default(), now);
        let mut long = scp_ping(1);
        long.extend_from_slice(&[0; 100]);
        let mut lying = scp_ping(1);
        lying[19..23].copy_from_slice(&60_000u32.to_le_bytes());
        let mut huge = scp_ping(1);
        huge[19..23].copy_from_slice(&u32::MAX.to_le_bytes());
        let garbage = vec![0xC3; 65_507];
        for bytes in [Vec::new(), vec![0; 5], long, lying, huge, garbage] {
            node.handle(Event::Datagram { from: addr(1), bytes }, now);
        }
        for from in [SocketAddrV4::new(Ipv4Addr::BROADCAST, 6346), SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 0)] {
            node.handle(Event::Datagram { from, bytes: scp_ping(1) }, now);
        }
        assert!(datagrams(&mut node).is_empty());
        assert_eq!(node.udp_counters().malformed, 8);
    }

    #[test]
    fn the_node_asks_its_host_caches_when_nobody_is_left_to_dial_and_learns_from_the_answer() {
        let now = Instant::now();
        let mut node = node_with(Config { uhcs: vec![addr(50)], ..Config::default() }, now);
        node.handle_timeout(now);
        let sent = datagrams(&mut node);
        assert_eq!(sent.len(), 1);
        let (to, ping) = &sent[0];
        assert_eq!(*to, addr(50));
        let Payload::Ping(body) = &ping.payload else { panic!("a ping asks a host cache") };
        assert_eq!(body.ggep.get(ipp::SCP), Some(&[1u8][..]));
        node.handle(Event::Datagram { from: addr(50), bytes: pong(ping.guid, addr(50), &[addr(1), addr(2)]) }, now);
        assert_eq!(node.known_hosts(), 3);
        node.handle_timeout(now + Duration::from_secs(1));
        let dialed: Vec<Action> = std::iter::from_fn(|| node.poll_action()).collect();
        assert!(dialed.contains(&Action::Dial(addr(1))) && dialed.contains(&Action::Dial(addr(2))), "{dialed:?}");
    }

    #[test]
    fn attack_a_pong_full_of_addresses_teaches_nothing_unless_it_answers_our_ping_and_then_little() {
        let now = Instant::now();
        let mut node = node_with(Config { uhcs: vec![addr(50)], ..Config::default() }, now);
        let fakes: Vec<SocketAddrV4> =
            (0..1000u32).map(|i| SocketAddrV4::new(Ipv4Addr::from(0x0B00_0000 + i), 1)).collect();
        // Unsolicited: from anyone, or from the cache with another GUID.
        node.handle(Event::Datagram { from: addr(9), bytes: pong(Guid([1; 16]), addr(9), &fakes) }, now);
        node.handle_timeout(now);
        let ping = datagrams(&mut node).remove(0).1;
        node.handle(Event::Datagram { from: addr(50), bytes: pong(Guid([2; 16]), addr(50), &fakes) }, now);
        // Our GUID, but from another address: a spoofer who guessed nothing.
        node.handle(Event::Datagram { from: addr(51), bytes: pong(ping.guid, addr(51), &fakes) }, now);
        assert_eq!(node.known_hosts(), 0);
        assert_eq!(node.udp_counters().unsolicited, 3);
        // The real answer, bloated: a bounded part of it is taken, once.
        node.handle(Event::Datagram { from: addr(50), bytes: pong(ping.guid, addr(50), &fakes) }, now);
        assert_eq!(node.known_hosts(), MAX_LEARNED);
        node.handle(Event::Datagram { from: addr(50), bytes: pong(ping.guid, addr(50), &fakes[500..]) }, now);
        assert_eq!(node.known_hosts(), MAX_LEARNED);
    }

    #[test]
    fn attack_a_host_cache_answer_naming_loopback_private_or_multicast_hosts_teaches_only_the_routable() {
        let now = Instant::now();
        let mut node = node_with(Config { uhcs: vec![addr(50)], ..Config::default() }, now);
        node.handle_timeout(now);
        let ping = datagrams(&mut node).remove(0).1;
        let unroutable = [
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 6346),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 22),
            SocketAddrV4::new(Ipv4Addr::new(169, 254, 0, 1), 6346),
            SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 6346),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 6346),
        ];
        let hosts: Vec<SocketAddrV4> = unroutable.iter().copied().chain([addr(7)]).collect();
        node.handle(Event::Datagram { from: addr(50), bytes: pong(ping.guid, addr(50), &hosts) }, now);
        // The cache itself and the one routable host.
        assert_eq!(node.known_hosts(), 2);
        // Servents on one machine or one LAN do learn each other.
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000);
        assert!(routable(local, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346)));
        assert!(routable(unroutable[1], SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 6346)));
        assert!(!routable(unroutable[4], unroutable[4]));
    }

    #[test]
    fn attack_a_host_cache_answer_naming_another_port_of_our_own_ip_teaches_nothing_of_it() {
        let now = Instant::now();
        let config = Config { uhcs: vec![addr(50)], listen: SocketAddr::V4(addr(100)), ..Config::default() };
        let mut node = node_with(config, now);
        node.handle_timeout(now);
        let ping = datagrams(&mut node).remove(0).1;
        let ours = SocketAddrV4::new(*addr(100).ip(), 22);
        node.handle(Event::Datagram { from: addr(50), bytes: pong(ping.guid, addr(50), &[ours, addr(7)]) }, now);
        // The cache itself and the other host.
        assert_eq!(node.known_hosts(), 2);
    }

    #[test]
    fn a_silent_host_cache_is_asked_less_and_less_often() {
        let now = Instant::now();
        let mut node = node_with(Config { uhcs: vec![addr(50)], ..Config::default() }, now);
        let mut asked = Vec::new();
        for s in 0..3600 {
            let at = now + Duration::from_secs(s);
            node.handle_timeout(at);
            if !datagrams(&mut node).is_empty() {
                asked.push(s);
            }
        }
        assert_eq!(asked, vec![0, 30, 90, 210, 450, 930, 1890]);
    }

    #[test]
    fn the_user_is_told_once_that_nobody_is_reachable_and_once_that_the_node_joined() {
        let now = Instant::now();
        let mut node = node_with(Config { uhcs: vec![addr(50)], ..Config::default() }, now);
        let mut notices = Vec::new();
        for s in 0..1200 {
            if s == 600 {
                let connected = Connected {
                    peer: PeerId(1),
                    addr: SocketAddr::V4(addr(1)),
                    local: SocketAddr::V4(addr(100)),
                    info: PeerInfo::default(),
                    direction: Direction::Incoming,
                    dialed: None,
                };
                node.handle(Event::Connected(Box::new(connected)), now + Duration::from_secs(s));
            }
            node.handle_timeout(now + Duration::from_secs(s));
            notices.extend(std::iter::from_fn(|| node.poll_action()).filter_map(|a| match a {
                Action::Notice(text) => Some(text),
                _ => None,
            }));
        }
        assert_eq!(notices.len(), 4, "{notices:?}");
        assert!(notices[0].starts_with("asking UDP host caches 192.0.2.50:6346"), "{notices:?}");
        assert!(notices[1].starts_with("asking UDP host caches"), "{notices:?}");
        assert!(notices[2].starts_with("no peer reachable after 60 s"), "{notices:?}");
        assert_eq!(notices[3], "joined the network: 1 peer");
    }

    #[test]
    fn a_host_cache_on_an_address_no_servent_has_is_not_asked() {
        let now = Instant::now();
        let caches = ["0.0.0.0:6346", "255.255.255.255:6346", "224.0.0.1:6346", "192.0.2.1:0", "192.0.2.1:6346"];
        let udp = Udp::new(&caches.map(|c| c.parse().unwrap()), now);
        assert_eq!(udp.cache_addrs(), vec!["192.0.2.1:6346".parse().unwrap()]);
    }
}
