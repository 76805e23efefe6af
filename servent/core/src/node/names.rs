//! Host names the user gave: UDP host caches (the bootstrap list, `--uhc`)
//! and `--peer HOST:PORT`. The node keeps the names, not only what they
//! resolved to once: a name that could not be looked up (no network yet, a
//! DNS failure) is asked again, less and less often ([`RETRY_BASE`]
//! doubling up to [`RETRY_MAX`]), and one that was is asked again every
//! [`REFRESH`], since the host behind it may move.
//!
//! The node asks the outside to look a name up ([`Action::Resolve`]) and
//! is told the result ([`Event::Resolved`]); one lookup per name is under
//! way at a time, and one never answered counts as failed after
//! [`LOOKUP_TIMEOUT`]. The user is told once, after the first round, how
//! many names could not be looked up; later rounds are silent.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::{Action, Node};
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
    /// What it last resolved to.
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
        let mut entries: Vec<Entry> = Vec::new();
        for (host, port, purpose) in names {
            let known = entries.iter().any(|e| e.host == *host && e.port == *port && e.purpose == *purpose);
            if !known && entries.len() < MAX_NAMES {
                entries.push(Entry {
                    host: host.clone(),
                    port: *port,
                    purpose: *purpose,
                    addr: None,
                    failures: 0,
                    asked: None,
                    next: now,
                    answered: false,
                    first_error: None,
                });
            }
        }
        Names { entries, literals, reported: false }
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
    /// its new address, and the address it replaces, when it changed.
    fn resolved(
        &mut self,
        host: &str,
        port: u16,
        result: &Result<SocketAddrV4, String>,
        now: Instant,
    ) -> Vec<(NameUse, SocketAddrV4, Option<SocketAddrV4>)> {
        let mut changed = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| e.host == host && e.port == port && e.asked.is_some()) {
            entry.answered = true;
            match result {
                Ok(addr) => {
                    entry.asked = None;
                    entry.failures = 0;
                    entry.next = now + REFRESH;
                    if entry.addr != Some(*addr) {
                        changed.push((entry.purpose, *addr, entry.addr.replace(*addr)));
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

    /// A lookup's result: a host cache to ask, or a peer to keep dialing,
    /// in place of the address the name had before.
    pub(super) fn on_resolved(&mut self, host: &str, port: u16, result: Result<SocketAddrV4, String>, now: Instant) {
        for (purpose, addr, before) in self.names.resolved(host, port, &result, now) {
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
    use std::net::Ipv4Addr;

    use super::*;
    use crate::node::tests::{actions, node_with};
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
