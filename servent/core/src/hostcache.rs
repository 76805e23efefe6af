//! The host cache: addresses of servents to connect to, learned from
//! `--peer`, Pongs, `X-Try-Ultrapeers` headers and GWebCaches, and kept on
//! disk between runs.
//!
//! It is bounded, remembers when each address last worked or failed, and
//! picks candidates that are neither connected nor backing off after a
//! failure. No I/O here: it reads and writes the text of its file
//! ([`HostCache::restore`], [`HostCache::saved`]); the node stores it. The
//! file keeps which addresses worked (`ADDR worked`), so the reserve
//! outlives a restart.
//!
//! The network may lie to it, so:
//! - what one source (a neighbour's Pongs, a handshake's
//!   `X-Try-Ultrapeers`, a UDP sender) adds is bounded by its own allowance
//!   ([`HostCache::learn`]: [`LEARN_BURST`], then [`LEARN_PER_MINUTE`]);
//! - addresses that worked are a reserve newly learned ones never evict,
//!   and they are tried and handed out first;
//! - addresses that cannot be a distant servent ([`address::local`]) are
//!   left to the node to refuse unless it is told they may be dialed;
//! - dialing addresses learned from the network is paced ([`DialPace`]);
//! - the saved file is input too: at most [`MAX_SAVED_BYTES`] of it are
//!   read, one address a line, lines that are not exactly `ADDR` or
//!   `ADDR worked` skipped, addresses the node would not dial skipped, and
//!   at most a quarter of the cache ([`HostCache::restore`]) enters the
//!   reserve from it, so a forged file cannot fill the cache with hosts
//!   that take no new one.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::address;

/// Addresses the cache holds at most.
pub const HOST_CACHE_CAPACITY: usize = 4096;
/// The wait after a first failed attempt; it doubles with each failure.
pub const RETRY_BASE: Duration = Duration::from_secs(10);
/// The longest wait between attempts to the same address.
pub const RETRY_MAX: Duration = Duration::from_secs(30 * 60);
/// Consecutive failures after which an address learned from others is forgotten.
pub const MAX_FAILURES: u32 = 8;
/// Addresses one source may add at once.
pub const LEARN_BURST: u32 = 32;
/// Addresses one source may add per minute once its burst is spent: a
/// neighbour's Pongs every 30 s (ours ask for 10 cached ones) fit.
pub const LEARN_PER_MINUTE: u32 = 30;
/// Sources whose allowance is remembered.
pub const MAX_SOURCES: usize = 4096;
/// Addresses learned from the network dialed per minute at most.
pub const DIALS_PER_MINUTE: usize = 20;
/// Bytes of the saved host cache read at most: a full cache's lines.
pub const MAX_SAVED_BYTES: usize = HOST_CACHE_CAPACITY * 32;
/// The mark after an address of the saved file that worked.
const WORKED: &str = "worked";

/// Where an address came from: the user's own are never forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Given with `--peer`.
    User,
    /// Heard from the network (Pongs, X-Try-Ultrapeers, GWebCaches, the saved cache).
    Network,
}

#[derive(Clone, Debug)]
struct Entry {
    origin: Origin,
    failures: u32,
    retry_at: Option<Instant>,
    learned: u64,
    /// A connection to it has worked: it is in the reserve.
    worked: bool,
}

/// A source's allowance of new addresses.
#[derive(Clone, Copy, Debug)]
struct Allowance {
    tokens: f64,
    at: Instant,
}

/// A bounded set of servent addresses with their connection history.
#[derive(Debug)]
pub struct HostCache {
    hosts: HashMap<SocketAddrV4, Entry>,
    clock: u64,
    capacity: usize,
    sources: HashMap<IpAddr, Allowance>,
}

impl Default for HostCache {
    fn default() -> HostCache {
        HostCache::with_capacity(HOST_CACHE_CAPACITY)
    }
}

impl HostCache {
    /// An empty cache of [`HOST_CACHE_CAPACITY`] addresses.
    pub fn new() -> HostCache {
        HostCache::default()
    }

    /// An empty cache of `capacity` addresses at most.
    pub fn with_capacity(capacity: usize) -> HostCache {
        HostCache { hosts: HashMap::new(), clock: 0, capacity, sources: HashMap::new() }
    }

    /// Adds an address heard from `source` at `now`, within that source's
    /// allowance; returns whether it was taken.
    pub fn learn(&mut self, addr: SocketAddrV4, source: IpAddr, now: Instant) -> bool {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            let minute = Duration::from_secs(60);
            self.sources.retain(|_, a| now.saturating_duration_since(a.at) < minute);
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let burst = f64::from(LEARN_BURST);
        let allowance = self.sources.entry(source).or_insert(Allowance { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(allowance.at).as_secs_f64();
        allowance.tokens = (allowance.tokens + elapsed * f64::from(LEARN_PER_MINUTE) / 60.0).min(burst);
        allowance.at = now;
        if allowance.tokens < 1.0 {
            return false;
        }
        allowance.tokens -= 1.0;
        self.add(addr, Origin::Network);
        true
    }

    /// Takes `addr` off the user's list: from now on it is an address
    /// like those heard from the network (a name the user gave moved).
    pub fn forget_user(&mut self, addr: SocketAddrV4) {
        if let Some(entry) = self.hosts.get_mut(&addr) {
            entry.origin = Origin::Network;
        }
    }

    /// Adds an address (or refreshes it). A full cache forgets the oldest
    /// address learned from the network that never worked; when every one
    /// has worked, the new address is not taken.
    pub fn add(&mut self, addr: SocketAddrV4, origin: Origin) {
        if !address::usable(addr) {
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        if let Some(entry) = self.hosts.get_mut(&addr) {
            entry.learned = clock;
            if origin == Origin::User {
                entry.origin = Origin::User;
            }
            return;
        }
        if self.hosts.len() >= self.capacity {
            let oldest = self
                .hosts
                .iter()
                .filter(|(_, e)| e.origin == Origin::Network && !e.worked)
                .min_by_key(|(_, e)| e.learned)
                .map(|(a, _)| *a);
            match oldest {
                Some(oldest) => self.hosts.remove(&oldest),
                None => return,
            };
        }
        self.hosts.insert(addr, Entry { origin, failures: 0, retry_at: None, learned: clock, worked: false });
    }

    /// A connection to `addr` worked: its failures are forgotten and it
    /// joins the reserve.
    pub fn succeeded(&mut self, addr: SocketAddrV4) {
        if let Some(entry) = self.hosts.get_mut(&addr) {
            entry.failures = 0;
            entry.retry_at = None;
            entry.worked = true;
        }
    }

    /// A connection to `addr` failed: back off, and forget addresses from
    /// the network that keep failing.
    pub fn failed(&mut self, addr: SocketAddrV4, now: Instant) {
        let Some(entry) = self.hosts.get_mut(&addr) else { return };
        entry.failures += 1;
        if entry.origin == Origin::Network && entry.failures >= MAX_FAILURES {
            self.hosts.remove(&addr);
            return;
        }
        let wait = RETRY_BASE.saturating_mul(1 << entry.failures.min(16)).min(RETRY_MAX);
        entry.retry_at = Some(now + wait);
    }

    /// Up to `count` addresses worth trying now, skipping those `excluded`
    /// returns true for; the user's first, then those that worked, then the
    /// most recently learned.
    pub fn candidates(&self, count: usize, now: Instant, excluded: impl Fn(SocketAddrV4) -> bool) -> Vec<SocketAddrV4> {
        let mut ready: Vec<(&SocketAddrV4, &Entry)> =
            self.hosts.iter().filter(|(addr, e)| e.retry_at.is_none_or(|t| t <= now) && !excluded(**addr)).collect();
        ready.sort_by_key(|(addr, e)| {
            (e.origin == Origin::Network, !e.worked, e.failures, std::cmp::Reverse(e.learned), **addr)
        });
        ready.into_iter().take(count).map(|(addr, _)| *addr).collect()
    }

    /// Addresses to hand out in `X-Try-Ultrapeers`: those that have not
    /// failed, those that worked first.
    pub fn good(&self, count: usize) -> Vec<SocketAddr> {
        let mut good: Vec<(&SocketAddrV4, &Entry)> = self.hosts.iter().filter(|(_, e)| e.failures == 0).collect();
        good.sort_by_key(|(addr, e)| (!e.worked, std::cmp::Reverse(e.learned), **addr));
        good.into_iter().take(count).map(|(addr, _)| SocketAddr::V4(*addr)).collect()
    }

    /// How many addresses are known.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no address is known.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Adds the addresses of a text written by [`HostCache::saved`] that
    /// `usable` accepts, those marked as having worked into the reserve (a
    /// quarter of the cache at most); other lines are skipped, and no more
    /// lines are read than the cache holds.
    pub fn restore(&mut self, text: &str, usable: impl Fn(SocketAddrV4) -> bool) {
        let mut reserve = self.capacity.div_ceil(4);
        let entries: Vec<(SocketAddrV4, bool)> = text
            .lines()
            .take(self.capacity)
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let addr: SocketAddrV4 = fields.next()?.parse().ok()?;
                match (fields.next(), fields.next()) {
                    (None, _) => Some((addr, false)),
                    (Some(WORKED), None) => Some((addr, true)),
                    _ => None,
                }
            })
            .filter(|(addr, _)| usable(*addr))
            .map(|(addr, worked)| {
                let kept = worked && reserve > 0;
                reserve -= usize::from(kept);
                (addr, kept)
            })
            .collect();
        // The file lists the newest first: they are learned last, so they stay the newest.
        for (addr, worked) in entries.into_iter().rev() {
            self.add(addr, Origin::Network);
            if worked {
                self.succeeded(addr);
            }
        }
    }

    /// The addresses that have not failed, one per line, those that worked
    /// first and marked so: what to keep on disk.
    pub fn saved(&self) -> String {
        let mut kept: Vec<(&SocketAddrV4, &Entry)> = self.hosts.iter().filter(|(_, e)| e.failures == 0).collect();
        kept.sort_by_key(|(addr, e)| (!e.worked, std::cmp::Reverse(e.learned), **addr));
        let mut text = String::new();
        for (addr, entry) in kept {
            text.push_str(&addr.to_string());
            if entry.worked {
                text.push(' ');
                text.push_str(WORKED);
            }
            text.push('\n');
        }
        text
    }
}

/// The text of a saved host cache from the bytes read of it (at most
/// [`MAX_SAVED_BYTES`] and one more, to know whether it went on): what is
/// not UTF-8 is replaced, and when the file went on, its last line, cut
/// mid-address, is dropped rather than read as another address.
pub fn saved_text(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_SAVED_BYTES)]).into_owned();
    if bytes.len() > MAX_SAVED_BYTES {
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
    }
    text
}

/// Paces dialing addresses learned from the network: at most
/// [`DIALS_PER_MINUTE`], so that a cache full of dead addresses is not
/// dialed several times a second.
#[derive(Debug, Default)]
pub struct DialPace {
    recent: VecDeque<Instant>,
}

impl DialPace {
    /// Whether one more dial may start at `now`; counts it.
    pub fn allow(&mut self, now: Instant) -> bool {
        let minute = Duration::from_secs(60);
        while self.recent.front().is_some_and(|t| now.saturating_duration_since(*t) >= minute) {
            self.recent.pop_front();
        }
        if self.recent.len() >= DIALS_PER_MINUTE {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

/// Reads the host list a GWebCache returns: version 2 lines `H|ip:port|…`
/// and version 1 bare `ip:port` lines; everything else is ignored.
pub fn parse_gwebcache(body: &str) -> Vec<SocketAddrV4> {
    body.lines()
        .take(1000)
        .filter_map(|line| {
            let line = line.trim();
            let addr = match line.split_once('|') {
                Some((kind, rest)) if kind.eq_ignore_ascii_case("h") => rest.split('|').next()?,
                Some(_) => return None,
                None => line,
            };
            addr.trim().parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n), 6346)
    }

    #[test]
    fn user_peers_come_first_then_the_newest() {
        let mut cache = HostCache::new();
        cache.add(addr(1), Origin::Network);
        cache.add(addr(2), Origin::User);
        cache.add(addr(3), Origin::Network);
        assert_eq!(cache.candidates(3, Instant::now(), |_| false), vec![addr(2), addr(3), addr(1)]);
    }

    #[test]
    fn failed_host_backs_off_and_is_retried_later() {
        let now = Instant::now();
        let mut cache = HostCache::new();
        cache.add(addr(1), Origin::Network);
        cache.failed(addr(1), now);
        assert!(cache.candidates(5, now, |_| false).is_empty());
        assert_eq!(cache.candidates(5, now + RETRY_MAX, |_| false), vec![addr(1)]);
    }

    #[test]
    fn network_host_failing_again_and_again_is_forgotten_but_user_host_is_not() {
        let now = Instant::now();
        let mut cache = HostCache::new();
        cache.add(addr(1), Origin::Network);
        cache.add(addr(2), Origin::User);
        for _ in 0..MAX_FAILURES {
            cache.failed(addr(1), now);
            cache.failed(addr(2), now);
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.candidates(5, now + RETRY_MAX, |_| false), vec![addr(2)]);
    }

    #[test]
    fn connected_hosts_are_excluded() {
        let mut cache = HostCache::new();
        cache.add(addr(1), Origin::Network);
        cache.add(addr(2), Origin::Network);
        assert_eq!(cache.candidates(5, Instant::now(), |a| a == addr(2)), vec![addr(1)]);
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache = HostCache::new();
        for i in 0..(HOST_CACHE_CAPACITY as u32 + 100) {
            cache.add(SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + i), 6346), Origin::Network);
        }
        assert_eq!(cache.len(), HOST_CACHE_CAPACITY);
    }

    #[test]
    fn a_smaller_cache_forgets_the_oldest_network_host_but_keeps_the_users() {
        let mut cache = HostCache::with_capacity(2);
        cache.add(addr(1), Origin::User);
        cache.add(addr(2), Origin::Network);
        cache.add(addr(3), Origin::Network);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.candidates(5, Instant::now(), |_| false), vec![addr(1), addr(3)]);
        assert_eq!(cache.saved().lines().count(), 2);
    }

    #[test]
    fn unusable_addresses_are_ignored() {
        let mut cache = HostCache::new();
        cache.add(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6346), Origin::Network);
        cache.add(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 0), Origin::Network);
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_survives_a_save_and_restore() {
        let mut cache = HostCache::new();
        cache.add(addr(1), Origin::Network);
        cache.add(addr(2), Origin::User);
        let mut loaded = HostCache::new();
        loaded.restore(&format!("{}garbage\n", cache.saved()), |_| true);
        let mut hosts = loaded.candidates(5, Instant::now(), |_| false);
        hosts.sort();
        assert_eq!(hosts, vec![addr(1), addr(2)]);
    }

    #[test]
    fn which_hosts_worked_survives_a_save_and_restore() {
        let now = Instant::now();
        let mut cache = HostCache::new();
        cache.add(addr(1), Origin::Network);
        cache.succeeded(addr(1));
        cache.add(addr(2), Origin::Network);
        let saved = cache.saved();
        assert_eq!(saved, format!("{} worked\n{}\n", addr(1), addr(2)));
        let mut loaded = HostCache::with_capacity(2);
        loaded.restore(&saved, |_| true);
        // The host that worked is in the reserve again: a flood cannot evict it.
        for n in 3..100 {
            loaded.add(addr(n), Origin::Network);
        }
        assert_eq!(loaded.candidates(1, now, |_| false), vec![addr(1)]);
        assert_eq!(loaded.saved().lines().next(), Some(format!("{} worked", addr(1)).as_str()));
        // Saved again unchanged, the newest first.
        let mut cache = HostCache::new();
        for n in 1..=5 {
            cache.add(addr(n), Origin::Network);
        }
        cache.succeeded(addr(2));
        let mut loaded = HostCache::new();
        loaded.restore(&cache.saved(), |_| true);
        assert_eq!(loaded.saved(), cache.saved());
    }

    #[test]
    fn a_forged_saved_cache_is_bounded_and_checked() {
        let now = Instant::now();
        let mut text = String::new();
        text.push_str("192.0.2.200:6346 worked trailing\n192.0.2.201:6346 good\n10.0.0.1:6346 worked\n");
        text.push_str(&"x".repeat(10_000));
        text.push('\n');
        for i in 0..10_000u32 {
            text.push_str(&format!("{} worked\n", SocketAddrV4::new(Ipv4Addr::from(0x0B00_0000 + i), 6346)));
        }
        let mut cache = HostCache::with_capacity(100);
        cache.restore(&text, |addr| !address::local(*addr.ip()));
        assert!(cache.len() <= 100);
        let listed = cache.candidates(200, now, |_| false);
        for refused in ["192.0.2.200:6346", "192.0.2.201:6346", "10.0.0.1:6346"] {
            assert!(!listed.contains(&refused.parse().unwrap()), "{refused} was taken");
        }
        // A quarter at most entered the reserve: new addresses still come in.
        let reserve = cache.saved().lines().filter(|l| l.ends_with(WORKED)).count();
        assert_eq!(reserve, 25);
        for n in 1..=10 {
            cache.add(addr(n), Origin::Network);
        }
        assert_eq!(cache.len(), 100);
        let listed = cache.candidates(200, now, |_| false);
        assert!((1..=10).all(|n| listed.contains(&addr(n))));
    }

    #[test]
    fn one_source_adds_at_most_its_allowance() {
        let now = Instant::now();
        let mut cache = HostCache::new();
        let liar: IpAddr = "198.51.100.7".parse().unwrap();
        let taken = (0..5000u32)
            .filter(|i| cache.learn(SocketAddrV4::new(Ipv4Addr::from(0x0B00_0000 + i), 6346), liar, now))
            .count();
        assert_eq!(taken, LEARN_BURST as usize);
        // Another source still has its own.
        assert!(cache.learn(addr(1), "198.51.100.8".parse().unwrap(), now));
        // And the liar's comes back slowly.
        let later = now + Duration::from_secs(60);
        let taken = (0..5000u32)
            .filter(|i| cache.learn(SocketAddrV4::new(Ipv4Addr::from(0x0C00_0000 + i), 6346), liar, later))
            .count();
        assert_eq!(taken, LEARN_PER_MINUTE as usize);
    }

    #[test]
    fn hosts_that_worked_are_never_evicted_by_new_ones_and_come_first() {
        let now = Instant::now();
        let mut cache = HostCache::with_capacity(3);
        cache.add(addr(1), Origin::Network);
        cache.succeeded(addr(1));
        for n in 2..200 {
            cache.add(addr(n), Origin::Network);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.candidates(1, now, |_| false), vec![addr(1)]);
        assert_eq!(cache.good(1), vec![SocketAddr::V4(addr(1))]);
        assert!(cache.saved().starts_with(&addr(1).to_string()));
        // A cache whose every address worked takes no new one.
        let mut cache = HostCache::with_capacity(1);
        cache.add(addr(1), Origin::Network);
        cache.succeeded(addr(1));
        cache.add(addr(2), Origin::Network);
        assert_eq!(cache.candidates(5, now, |_| false), vec![addr(1)]);
    }

    #[test]
    fn dialing_is_paced() {
        let now = Instant::now();
        let mut pace = DialPace::default();
        assert_eq!((0..100).filter(|_| pace.allow(now)).count(), DIALS_PER_MINUTE);
        assert!(pace.allow(now + Duration::from_secs(60)));
    }

    #[test]
    fn gwebcache_answers_of_both_versions_are_read() {
        let body =
            "I|pong|GWC 1.0\nH|192.0.2.1:6346|300\nU|http://x.example/|12\n192.0.2.2:6347\nERROR junk\nH|bad|1\n";
        assert_eq!(parse_gwebcache(body), vec![addr(1), SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 6347)]);
    }

    #[test]
    fn attack_an_oversized_saved_cache_loses_its_cut_line_not_the_whole_cache() {
        // Lines long enough that the cache holds more of them than the limit lets in.
        let lines_up_to = |end: usize| {
            let line = format!("1.2.3.4:6346{}\n", " ".repeat(20));
            let mut bytes = line.repeat(end / line.len()).into_bytes();
            bytes.resize(end, b'\n');
            bytes
        };
        // Cut at the limit, "1.2.3.45:6346" read as another address, "1.2.3.45:63".
        let mut bytes = lines_up_to(MAX_SAVED_BYTES - 11);
        bytes.extend_from_slice(b"1.2.3.45:6346\n");
        // A cut in a UTF-8 character made the whole read fail.
        let mut accented = lines_up_to(MAX_SAVED_BYTES - 1);
        accented.extend_from_slice("é\n".as_bytes());
        for bytes in [bytes, accented] {
            let mut cache = HostCache::new();
            cache.restore(&saved_text(&bytes[..bytes.len().min(MAX_SAVED_BYTES + 1)]), |_| true);
            assert_eq!(cache.saved(), "1.2.3.4:6346\n");
        }
        // A file within the limit is read whole.
        assert_eq!(saved_text(b"1.2.3.4:6346\n1.2.3.5:6346"), "1.2.3.4:6346\n1.2.3.5:6346");
    }
}
