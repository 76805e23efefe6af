//! Host names the user gave: UDP host caches (the bootstrap list, `--uhc`)
//! and `--peer HOST:PORT`. The node keeps the names, not only what they
//! resolved to once: a name that could not be looked up (no network yet, a
//! DNS failure) is asked again, less and less often ([`RETRY_BASE`]
//! doubling up to [`RETRY_MAX`]), and one that was is asked again every
//! [`REFRESH`], since the host behind it may move.
//!
//! A lookup answers with every address the name has ([`MAX_ADDRS`] kept):
//! round-robin DNS gives them in another order each time, so a peer's
//! address we are linked to (a host cache's address in use) stays as long
//! as the name still gives it; a peer's address we are not linked to gives
//! way to the next one the name gives, and an address the name no longer
//! gives to its first. A name given while running (`servent peer
//! add HOST:PORT`, [`Node::connect_name`]) joins the same list.
//!
//! The node asks the outside to look a name up ([`Action::Resolve`]) and
//! is told the result ([`Event::Resolved`]); one lookup per name is under
//! way at a time, and one never answered counts as failed after
//! [`LOOKUP_TIMEOUT`]. The user is told once, after the first round, how
//! many names could not be looked up; later rounds are silent.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::{Action, Node};
use crate::address;
use crate::hostcache::Origin;

/// Names kept at most; more given are ignored.
pub const MAX_NAMES: usize = 64;
/// The wait after a name's first failed lookup; it doubles with each failure.
pub const RETRY_BASE: Duration = Duration::from_secs(60);
/// The longest wait between lookups of a name that keeps failing.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);
/// How long a name that was looked up is taken to stay where it is.
pub const REFRESH: Duration = Duration::from_secs(3600);
/// How long a lookup may stay unanswered before it counts as failed.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Addresses of one lookup's answer looked at, at most; the rest are ignored.
pub const MAX_ADDRS: usize = 32;

/// What a name is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameUse {
    /// A UDP host cache, pinged for hosts.
    HostCache,
    /// A servent the user asked to stay connected to.
    Peer,
}

/// One name and how its lookups went.
#[derive(Clone, Debug)]
struct Entry {
    host: String,
    port: u16,
    purpose: NameUse,
    /// The address in use: one of what it last resolved to.
    addr: Option<SocketAddrV4>,
    /// Failed lookups in a row.
    failures: u32,
    /// When the lookup under way was asked for.
    asked: Option<Instant>,
    /// When to look it up next.
    next: Instant,
    /// Whether it was ever answered (for the first round's notice).
    answered: bool,
    /// Why its first failed lookup failed (for the first round's notice).
    first_error: Option<String>,
}

/// The host names the node keeps looking up.
#[derive(Debug, Default)]
pub(super) struct Names {
    entries: Vec<Entry>,
    /// Addresses the user gave as they are (peers and host caches): a
    /// name that moved away from one of them leaves it in place.
    literals: Vec<SocketAddrV4>,
    /// Whether the first round's notice was given.
    reported: bool,
}

impl Names {
    /// Keeps `names` (host, port, purpose), all due at `now`; duplicates
    /// and those beyond [`MAX_NAMES`] are dropped. `literals` are the
    /// addresses the user gave as they are.
    pub(super) fn new(names: &[(String, u16, NameUse)], literals: Vec<SocketAddrV4>, now: Instant) -> Names {
        let mut kept = Names { entries: Vec::new(), literals, reported: false };
        for (host, port, purpose) in names {
            kept.add(host, *port, *purpose, now);
        }
        kept
    }

    /// Keeps one more name, due at `now`; false when it cannot (the list
    /// is full). A name kept already stays as it is.
    fn add(&mut self, host: &str, port: u16, purpose: NameUse, now: Instant) -> bool {
        if self.entry(host, port, purpose).is_some() {
            return true;
        }
        if self.entries.len() >= MAX_NAMES {
            return false;
        }
        self.entries.push(Entry {
            host: host.to_string(),
            port,
            purpose,
            addr: None,
            failures: 0,
            asked: None,
            next: now,
            answered: false,
            first_error: None,
        });
        true
    }

    fn entry(&mut self, host: &str, port: u16, purpose: NameUse) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.host == host && e.port == port && e.purpose == purpose)
    }

    /// The names to look up at `now`, each marked as under way; a lookup
    /// left unanswered past [`LOOKUP_TIMEOUT`] fails first.
    fn due(&mut self, now: Instant) -> Vec<(String, u16)> {
        let mut due = Vec::new();
        for entry in &mut self.entries {
            if let Some(timed_out) = entry.asked.map(|at| at + LOOKUP_TIMEOUT).filter(|t| now >= *t) {
                entry.fail(timed_out, "no answer");
            }
            if entry.asked.is_none() && now >= entry.next {
                entry.asked = Some(now);
                due.push((entry.host.clone(), entry.port));
            }
        }
        due
    }

    /// Takes a lookup's result: what each entry of that name is for and
    /// its new address, and the address it replaces, when it changed. The
    /// address in use stays while the answer holds it, for a peer only if
    /// it is `linked`; a peer's unlinked one gives way to the answer's next;
    /// otherwise the answer's first usable address is taken. An answer
    /// without one fails.
    fn resolved(
        &mut self,
        host: &str,
        port: u16,
        result: &Result<Vec<SocketAddrV4>, String>,
        linked: &[SocketAddrV4],
        now: Instant,
    ) -> Vec<(NameUse, SocketAddrV4, Option<SocketAddrV4>)> {
        let usable = result.as_ref().map_err(String::clone).and_then(|addrs| {
            let usable: Vec<SocketAddrV4> =
                addrs.iter().take(MAX_ADDRS).copied().filter(|a| address::usable(*a)).collect();
            if usable.is_empty() {
                return Err(format!("{host} has no address a servent may have"));
            }
            Ok(usable)
        });
        let mut changed = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| e.host == host && e.port == port && e.asked.is_some()) {
            entry.answered = true;
            match &usable {
                Ok(addrs) => {
                    entry.asked = None;
                    entry.failures = 0;
                    entry.next = now + REFRESH;
                    let in_use = entry.addr.and_then(|a| addrs.iter().position(|b| *b == a));
                    let next = match in_use {
                        Some(i) if entry.purpose == NameUse::HostCache || linked.contains(&addrs[i]) => addrs[i],
                        Some(i) => addrs[(i + 1) % addrs.len()],
                        None => addrs[0],
                    };
                    if entry.addr != Some(next) {
                        changed.push((entry.purpose, next, entry.addr.replace(next)));
                    }
                }
                Err(e) => entry.fail(now, e),
            }
        }
        changed
    }

    /// Adds an address the user gave as it is.
    pub(super) fn add_literal(&mut self, addr: SocketAddrV4) {
        if !self.literals.contains(&addr) {
            self.literals.push(addr);
        }
    }

    /// Whether `addr` is one the user gave, or one a name resolves to.
    fn holds(&self, addr: SocketAddrV4) -> bool {
        self.literals.contains(&addr) || self.entries.iter().any(|e| e.addr == Some(addr))
    }

    /// Names that have not resolved yet.
    pub(super) fn unresolved(&self) -> usize {
        self.entries.iter().filter(|e| e.addr.is_none()).count()
    }

    /// Once every name was answered (or timed out): how many of them
    /// could not be looked up, if any, how many there are, and why the
    /// first of them failed; `None` before, and after once.
    fn first_round(&mut self) -> Option<(usize, usize, String)> {
        if self.reported || self.entries.iter().any(|e| !e.answered) {
            return None;
        }
        self.reported = true;
        let failed = self.unresolved();
        let why = self.entries.iter().filter(|e| e.addr.is_none()).find_map(|e| e.first_error.clone());
        (failed > 0).then(|| (failed, self.entries.len(), why.unwrap_or_default()))
    }
}

impl Entry {
    fn fail(&mut self, now: Instant, why: &str) {
        self.first_error.get_or_insert_with(|| why.to_string());
        self.asked = None;
        self.answered = true;
        let wait = RETRY_BASE.saturating_mul(1 << self.failures.min(16)).min(RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.next = now + wait;
    }
}

impl Node {
    /// Asks for the lookups that are due.
    pub(super) fn look_up_names(&mut self, now: Instant) {
        for (host, port) in self.names.due(now) {
            self.actions.push_back(Action::Resolve { host, port });
        }
        self.tell_first_round();
    }

    /// Tells the user, once, after every name was answered or timed out,
    /// how many could not be looked up.
    fn tell_first_round(&mut self) {
        if let Some((failed, all, why)) = self.names.first_round() {
            self.actions.push_back(Action::Notice(format!(
                "{failed} of {all} host names could not be looked up ({why}); trying again less and less often"
            )));
        }
    }

    /// Adds a peer's name the user gave while running (`servent peer add
    /// HOST:PORT`), with the addresses the lookup that checked it found:
    /// dialed as a `--peer` name is, and looked up again as it is. Past
    /// [`MAX_NAMES`] only the first address is kept, as an address given.
    pub fn connect_name(&mut self, host: &str, port: u16, addrs: Vec<SocketAddrV4>, now: Instant) {
        if !self.names.add(host, port, NameUse::Peer, now) {
            if let Some(&addr) = addrs.iter().find(|a| address::usable(**a)) {
                self.connect(addr, now);
            }
            return;
        }
        if let Some(entry) = self.names.entry(host, port, NameUse::Peer) {
            entry.asked = Some(now);
        }
        self.on_resolved(host, port, Ok(addrs), now);
        self.dial_more(now);
    }

    /// A lookup's result: a host cache to ask, or a peer to keep dialing,
    /// in place of the address the name had before.
    pub(super) fn on_resolved(
        &mut self,
        host: &str,
        port: u16,
        result: Result<Vec<SocketAddrV4>, String>,
        now: Instant,
    ) {
        let linked: Vec<SocketAddrV4> =
            self.peers.values().flat_map(|p| [super::v4(p.addr), p.listen]).flatten().collect();
        for (purpose, addr, before) in self.names.resolved(host, port, &result, &linked, now) {
            // The old address goes only if nothing else the user gave holds it.
            let gone = before.filter(|b| !self.names.holds(*b));
            match purpose {
                NameUse::HostCache => {
                    self.udp.forget_cache(gone);
                    self.udp.add_caches([addr], now);
                }
                NameUse::Peer => {
                    if let Some(gone) = gone {
                        self.config.peers.retain(|p| *p != gone);
                        self.hosts.forget_user(gone);
                    }
                    if !self.config.peers.contains(&addr) {
                        self.config.peers.push(addr);
                        self.hosts.add(addr, Origin::User);
                    }
                }
            }
        }
        self.tell_first_round();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::node::tests::{actions, connect, node_with};
    use crate::node::{Config, Event};

    fn lookups(node: &mut Node) -> Vec<(String, u16)> {
        actions(node)
            .into_iter()
            .filter_map(|a| match a {
                Action::Resolve { host, port } => Some((host, port)),
                _ => None,
            })
            .collect()
    }

    fn named(names: &[(&str, NameUse)]) -> Config {
        let names = names.iter().map(|(h, u)| (h.to_string(), 6346, *u)).collect();
        Config { names, discover: true, ..Config::default() }
    }

    fn resolved(host: &str, result: Result<SocketAddrV4, String>) -> Event {
        resolved_all(host, result.map(|addr| vec![addr]))
    }

    fn resolved_all(host: &str, result: Result<Vec<SocketAddrV4>, String>) -> Event {
        Event::Resolved { host: host.into(), port: 6346, result }
    }

    fn at(ip: [u8; 4]) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), 6346)
    }

    #[test]
    fn a_name_that_cannot_be_looked_up_is_asked_again_less_and_less_often() {
        let now = Instant::now();
        let mut node = node_with(named(&[("uhc.example", NameUse::HostCache)]), now);
        node.handle_timeout(now);
        assert_eq!(lookups(&mut node), vec![("uhc.example".to_string(), 6346)]);
        // Under way: not asked twice.
        node.handle_timeout(now + Duration::from_secs(10));
        assert!(lookups(&mut node).is_empty());
        let mut t = now + Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..9 {
            node.handle(resolved("uhc.example", Err("no network".into())), t);
            let failed_at = t;
            loop {
                t += Duration::from_secs(10);
                node.handle_timeout(t);
                if !lookups(&mut node).is_empty() {
                    break;
                }
            }
            waits.push((t - failed_at).as_secs() / 60);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60], "minutes between lookups");
    }

    #[test]
    fn the_user_is_told_once_which_names_failed_after_the_first_round() {
        let now = Instant::now();
        let names = [("a.example", NameUse::HostCache), ("b.example", NameUse::Peer)];
        let mut node = node_with(named(&names), now);
        node.handle_timeout(now);
        assert_eq!(lookups(&mut node).len(), 2);
        node.handle(resolved("a.example", Err("no such host".into())), now);
        assert!(actions(&mut node).is_empty(), "nothing said before every name was answered");
        node.handle(resolved("b.example", Ok(at([1, 2, 3, 4]))), now);
        let said: Vec<Action> = actions(&mut node).into_iter().filter(|a| matches!(a, Action::Notice(_))).collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            matches!(&said[0], Action::Notice(n) if n.contains("(no such host)")),
            "the failure's reason: {said:?}"
        );
        // Later failures are silent.
        let later = now + RETRY_MAX;
        node.handle_timeout(later);
        actions(&mut node);
        node.handle(resolved("a.example", Err("no such host".into())), later);
        assert!(!actions(&mut node).iter().any(|a| matches!(a, Action::Notice(_))));
    }

    #[test]
    fn a_peer_name_is_dialed_where_it_resolves_and_followed_when_it_moves() {
        let now = Instant::now();
        let mut node = node_with(named(&[("peer.example", NameUse::Peer)]), now);
        node.handle_timeout(now);
        lookups(&mut node);
        node.handle(resolved("peer.example", Ok(at([1, 2, 3, 4]))), now);
        assert_eq!(node.config.peers, vec![at([1, 2, 3, 4])]);
        // Not asked again before the refresh; then it has moved.
        node.handle_timeout(now + REFRESH - Duration::from_secs(1));
        assert!(lookups(&mut node).is_empty());
        node.handle_timeout(now + REFRESH);
        assert_eq!(lookups(&mut node).len(), 1);
        node.handle(resolved("peer.example", Ok(at([5, 6, 7, 8]))), now + REFRESH);
        assert_eq!(node.config.peers, vec![at([5, 6, 7, 8])]);
    }

    #[test]
    fn a_host_cache_name_becomes_a_cache_to_ask_and_a_lost_lookup_times_out() {
        let now = Instant::now();
        let mut node = node_with(named(&[("uhc.example", NameUse::HostCache)]), now);
        node.handle_timeout(now);
        lookups(&mut node);
        // The answer never comes: asked again after the timeout and a retry.
        node.handle_timeout(now + LOOKUP_TIMEOUT + RETRY_BASE);
        assert_eq!(lookups(&mut node).len(), 1);
        node.handle(resolved("uhc.example", Ok(at([1, 2, 3, 4]))), now + LOOKUP_TIMEOUT + RETRY_BASE);
        assert_eq!(node.udp.cache_addrs(), vec![at([1, 2, 3, 4])]);
        // An answer nobody asked for is ignored.
        node.handle(resolved("other.example", Ok(at([9, 9, 9, 9]))), now + LOOKUP_TIMEOUT + RETRY_BASE);
        assert_eq!(node.udp.cache_addrs(), vec![at([1, 2, 3, 4])]);
    }

    #[test]
    fn attack_a_flood_of_names_is_kept_to_a_bound() {
        let now = Instant::now();
        let names: Vec<(String, u16, NameUse)> =
            (0..10_000).map(|i| (format!("h{i}.example"), 6346, NameUse::HostCache)).collect();
        let mut node = node_with(Config { names, ..Config::default() }, now);
        node.handle_timeout(now);
        assert_eq!(lookups(&mut node).len(), MAX_NAMES);
    }

    #[test]
    fn a_name_moving_away_leaves_an_address_the_user_or_another_name_gave() {
        let now = Instant::now();
        let names = [("a.example", NameUse::Peer), ("b.example", NameUse::Peer), ("c.example", NameUse::Peer)];
        let mut node = node_with(Config { peers: vec![at([9, 9, 9, 9])], ..named(&names) }, now);
        node.handle_timeout(now);
        lookups(&mut node);
        node.handle(resolved("a.example", Ok(at([1, 2, 3, 4]))), now);
        node.handle(resolved("b.example", Ok(at([1, 2, 3, 4]))), now);
        node.handle(resolved("c.example", Ok(at([9, 9, 9, 9]))), now);
        node.handle_timeout(now + REFRESH);
        lookups(&mut node);
        node.handle(resolved("a.example", Ok(at([5, 6, 7, 8]))), now + REFRESH);
        node.handle(resolved("c.example", Ok(at([5, 6, 7, 8]))), now + REFRESH);
        assert_eq!(node.config.peers, vec![at([9, 9, 9, 9]), at([1, 2, 3, 4]), at([5, 6, 7, 8])]);
        // Once no name holds it, the old address goes, from the host cache's user list too.
        node.handle(resolved("b.example", Ok(at([5, 6, 7, 8]))), now + REFRESH);
        assert_eq!(node.config.peers, vec![at([9, 9, 9, 9]), at([5, 6, 7, 8])]);
        let cached = node.hosts.len();
        for _ in 0..crate::hostcache::MAX_FAILURES {
            node.hosts.failed(at([1, 2, 3, 4]), now + REFRESH);
        }
        assert_eq!(node.hosts.len(), cached - 1, "no longer the user's: forgotten once it keeps failing");
    }

    #[test]
    fn a_round_robin_name_keeps_its_address_while_the_name_still_gives_it() {
        let now = Instant::now();
        let names = [("peers.example", NameUse::Peer), ("uhc.example", NameUse::HostCache)];
        let mut node = node_with(named(&names), now);
        // The host cache's name gives the same hosts on another port.
        let cache = |ip: [u8; 4]| SocketAddrV4::new(Ipv4Addr::from(ip), 6347);
        let mut t = now;
        let mut answer = |node: &mut Node, ips: &[[u8; 4]]| {
            node.handle_timeout(t);
            assert_eq!(lookups(node).len(), 2, "looked up again at each refresh");
            node.handle(resolved_all("peers.example", Ok(ips.iter().map(|ip| at(*ip)).collect())), t);
            node.handle(resolved_all("uhc.example", Ok(ips.iter().map(|ip| cache(*ip)).collect())), t);
            t += REFRESH;
        };
        let in_use = |node: &Node| (node.config.peers.clone(), node.udp.cache_addrs());
        answer(&mut node, &[[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]);
        assert_eq!(in_use(&node), (vec![at([1, 1, 1, 1])], vec![cache([1, 1, 1, 1])]));
        connect(&mut node, 1, SocketAddr::V4(at([1, 1, 1, 1])), now);
        // The DNS server turns the list round: nothing moves.
        answer(&mut node, &[[2, 2, 2, 2], [3, 3, 3, 3], [1, 1, 1, 1]]);
        answer(&mut node, &[[3, 3, 3, 3], [1, 1, 1, 1], [2, 2, 2, 2]]);
        assert_eq!(in_use(&node), (vec![at([1, 1, 1, 1])], vec![cache([1, 1, 1, 1])]));
        // Once the name no longer gives it, it moves to what it gives first.
        answer(&mut node, &[[3, 3, 3, 3], [2, 2, 2, 2]]);
        assert_eq!(in_use(&node), (vec![at([3, 3, 3, 3])], vec![cache([3, 3, 3, 3])]));
    }

    #[test]
    fn a_peer_name_whose_address_is_not_linked_moves_on_to_the_next_it_gives() {
        let now = Instant::now();
        let mut node = node_with(named(&[("peers.example", NameUse::Peer)]), now);
        let pool = vec![at([1, 1, 1, 1]), at([2, 2, 2, 2]), at([3, 3, 3, 3])];
        let mut seen = Vec::new();
        for round in 0..4 {
            let t = now + REFRESH * round;
            node.handle_timeout(t);
            assert_eq!(lookups(&mut node).len(), 1);
            // Each answer turned round, as round-robin DNS does.
            let mut answer = pool.clone();
            answer.rotate_left(round as usize % pool.len());
            node.handle(resolved_all("peers.example", Ok(answer)), t);
            seen.push(node.config.peers.clone());
        }
        let tried: Vec<Vec<SocketAddrV4>> =
            [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3], [1, 1, 1, 1]].iter().map(|ip| vec![at(*ip)]).collect();
        assert_eq!(seen, tried, "a dead address gives way, one at a time, to the others the name gives");
    }

    #[test]
    fn a_peer_named_while_running_is_dialed_and_looked_up_again() {
        let now = Instant::now();
        let mut node = node_with(Config { discover: true, ..Config::default() }, now);
        node.connect_name("peer.example", 6346, vec![at([1, 2, 3, 4]), at([5, 6, 7, 8])], now);
        assert_eq!(node.config.peers, vec![at([1, 2, 3, 4])]);
        assert!(actions(&mut node).iter().any(|a| matches!(a, Action::Dial(addr) if *addr == at([1, 2, 3, 4]))));
        node.handle_timeout(now + REFRESH - Duration::from_secs(1));
        assert!(lookups(&mut node).is_empty());
        node.handle_timeout(now + REFRESH);
        assert_eq!(lookups(&mut node), vec![("peer.example".to_string(), 6346)]);
        node.handle(resolved("peer.example", Ok(at([9, 9, 9, 9]))), now + REFRESH);
        assert_eq!(node.config.peers, vec![at([9, 9, 9, 9])]);
        // Named again: still one name, one address.
        node.connect_name("peer.example", 6346, vec![at([9, 9, 9, 9])], now + REFRESH);
        assert_eq!(node.config.peers, vec![at([9, 9, 9, 9])]);
        assert_eq!(node.names.entries.len(), 1);
    }

    #[test]
    fn attack_a_lookup_answering_thousands_of_addresses_and_unusable_ones() {
        let now = Instant::now();
        let mut node = node_with(named(&[("peer.example", NameUse::Peer)]), now);
        node.handle_timeout(now);
        lookups(&mut node);
        // Only unusable addresses: a failure, asked again later.
        let unusable = vec![at([0, 0, 0, 0]), at([255, 255, 255, 255]), at([224, 0, 0, 1])];
        node.handle(resolved_all("peer.example", Ok(unusable)), now);
        assert!(node.config.peers.is_empty());
        let retry = now + RETRY_BASE;
        node.handle_timeout(retry);
        assert_eq!(lookups(&mut node).len(), 1);
        // 100,000 addresses: only the first MAX_ADDRS are looked at, the
        // usable one among them is taken, the one past them never.
        let mut many = vec![at([0, 0, 0, 0]); 100_000];
        many[MAX_ADDRS - 1] = at([1, 2, 3, 4]);
        many[MAX_ADDRS] = at([5, 6, 7, 8]);
        node.handle(resolved_all("peer.example", Ok(many)), retry);
        assert_eq!(node.config.peers, vec![at([1, 2, 3, 4])]);
    }

    #[test]
    fn a_lookup_that_never_comes_back_still_ends_the_first_round() {
        let now = Instant::now();
        let names = [("a.example", NameUse::HostCache), ("b.example", NameUse::Peer)];
        let mut node = node_with(named(&names), now);
        node.handle_timeout(now);
        lookups(&mut node);
        node.handle(resolved("b.example", Ok(at([1, 2, 3, 4]))), now);
        node.handle_timeout(now + LOOKUP_TIMEOUT);
        let said: Vec<Action> = actions(&mut node).into_iter().filter(|a| matches!(a, Action::Notice(_))).collect();
        assert!(
            matches!(&said[..], [Action::Notice(n)] if n.starts_with("1 of 2") && n.contains("no answer")),
            "{said:?}"
        );
    }
}
