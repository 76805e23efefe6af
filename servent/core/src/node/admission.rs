//! Admitting incoming connections before their handshake ends.
//!
//! A connection counts against the servent's limits from the moment it is
//! accepted, not from the end of its handshake: otherwise a burst of
//! handshakes started together is admitted whole, past `--max-peers` and
//! past the one-link-per-address rule, since none of them is a peer yet
//! when each is judged.
//!
//! Two stages are bounded. A connection whose first line has not come yet
//! (Gnutella or HTTP, nobody knows) waits in the [`Doorway`], which holds
//! at most [`MAX_UNCLASSIFIED`], at most [`MAX_UNCLASSIFIED_PER_ADDRESS`]
//! from one address and [`MAX_UNCLASSIFIED_PER_PREFIX`] from one /24; when
//! one is full the connection waiting longest (of that address, of that
//! /24, or of all) gives way, so that silent connections cannot keep out
//! clients that speak at once, and one address or one block of addresses
//! only ever pushes out its own. Hammering (see [`super::Hammering`]) bounds how often one
//! address connects. A Gnutella handshake under way is then a
//! [`Handshakes`] entry of the node, counted as a peer by every admission
//! rule until it ends, and forgotten after [`INCOMING_HANDSHAKE_TIMEOUT`]
//! even if its end is never reported.
//!
//! Handshakes that stall would still hold every free slot for their whole
//! timeout, again and again, from enough addresses. So when a new
//! handshake would not be accepted outright (no room, or room for one
//! role only), the oldest one under way for
//! [`STALLED_HANDSHAKE`] or more gives way: its count passes to the new
//! one at once (the limits never see both), the shell is told to cut it,
//! and should it end in a link all the same, that link is closed. An
//! honest handshake takes a round trip or two; a stalled one loses its
//! place to the next newcomer.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::address::prefix;

/// Accepted connections whose first line has not arrived, at most.
pub const MAX_UNCLASSIFIED: usize = 256;
/// How long an incoming connection has, from its acceptance, to finish
/// its Gnutella handshake (its first line included).
pub const INCOMING_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections from one address that may wait for their first line at
/// once ([`shared_address`] excepted): a downloader opening a few
/// connections to one uploader speaks on each at once.
pub const MAX_UNCLASSIFIED_PER_ADDRESS: usize = 4;
/// Connections from one /24 ([`prefix`]) that may wait for their first
/// line at once: an eighth of the doorway.
pub const MAX_UNCLASSIFIED_PER_PREFIX: usize = MAX_UNCLASSIFIED / 8;
/// How long a handshake under way must have lasted before it gives way to
/// a new one when there is no room: far more than the round trips an
/// honest handshake takes.
pub const STALLED_HANDSHAKE: Duration = Duration::from_secs(2);

/// Whether links from `ip` are exempt from the one-link-per-address rule:
/// only `127.0.0.1` and `::1`, where every servent of a test network on
/// one machine connects from. Other loopback addresses (`127.0.0.2`…) are
/// hosts of their own, as tests use them.
pub fn shared_address(ip: IpAddr) -> bool {
    ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

/// A place in the [`Doorway`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// Accepted connections waiting for their first line, oldest first, each
/// with its address and what the shell needs to drop it (`T`).
#[derive(Debug)]
pub struct Doorway<T> {
    capacity: usize,
    next: u64,
    waiting: VecDeque<(Ticket, IpAddr, T)>,
}

impl<T> Doorway<T> {
    /// A doorway holding at most `capacity` connections.
    pub fn with_capacity(capacity: usize) -> Doorway<T> {
        Doorway { capacity: capacity.max(1), next: 0, waiting: VecDeque::new() }
    }

    /// Lets a new connection from `ip` wait; returns its ticket and, when
    /// the doorway or that address's or that /24's share of it was full,
    /// the connection that waited longest there, which must be dropped.
    pub fn enter(&mut self, ip: IpAddr, connection: T) -> (Ticket, Option<T>) {
        let same_address = |from: IpAddr| from == ip && !shared_address(ip);
        let same_prefix = |from: IpAddr| prefix(from).is_some() && prefix(from) == prefix(ip);
        let crowded = |same: &dyn Fn(IpAddr) -> bool, most: usize| {
            self.waiting.iter().filter(|(_, from, _)| same(*from)).count() >= most
        };
        let evicted = if crowded(&same_address, MAX_UNCLASSIFIED_PER_ADDRESS) {
            self.remove_oldest(same_address)
        } else if crowded(&same_prefix, MAX_UNCLASSIFIED_PER_PREFIX) {
            self.remove_oldest(same_prefix)
        } else if self.waiting.len() >= self.capacity {
            self.waiting.pop_front().map(|(_, _, t)| t)
        } else {
            None
        };
        self.next += 1;
        let ticket = Ticket(self.next);
        self.waiting.push_back((ticket, ip, connection));
        (ticket, evicted)
    }

    /// Takes out the connection waiting longest among those from addresses `from` picks.
    fn remove_oldest(&mut self, from: impl Fn(IpAddr) -> bool) -> Option<T> {
        let at = self.waiting.iter().position(|(_, ip, _)| from(*ip))?;
        self.waiting.remove(at).map(|(_, _, t)| t)
    }

    /// The connection with this ticket has spoken (or is gone): it leaves.
    pub fn leave(&mut self, ticket: Ticket) -> Option<T> {
        let at = self.waiting.iter().position(|(t, _, _)| *t == ticket)?;
        self.waiting.remove(at).map(|(_, _, t)| t)
    }

    /// Connections waiting now.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Incoming Gnutella handshakes under way, by remote address: those
/// counted against the limits, and those that gave way to a newer one.
#[derive(Debug, Default)]
pub(super) struct Handshakes {
    started: BTreeMap<SocketAddr, Instant>,
    gave_way: BTreeMap<SocketAddr, Instant>,
}

/// How a handshake that ended in a link had been counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Counted until now: the link takes its place.
    Counted,
    /// It gave way to a newer handshake: the link may not stay.
    GaveWay,
    /// Forgotten (its count expired): the limits must be checked again.
    Unknown,
}

impl Handshakes {
    /// Counts a handshake from `remote` as under way since `now`.
    pub(super) fn start(&mut self, remote: SocketAddr, now: Instant) {
        self.started.insert(remote, now);
    }

    /// The handshake from `remote` ended, in a link or not.
    pub(super) fn end(&mut self, remote: SocketAddr) -> Ended {
        if self.gave_way.remove(&remote).is_some() {
            Ended::GaveWay
        } else if self.started.remove(&remote).is_some() {
            Ended::Counted
        } else {
            Ended::Unknown
        }
    }

    /// The oldest handshake under way since [`STALLED_HANDSHAKE`] before
    /// `now` or longer stops being counted, and is returned so that it can
    /// be cut; its place is free for a new one.
    pub(super) fn give_way(&mut self, now: Instant) -> Option<SocketAddr> {
        let (&remote, _) = self
            .started
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= STALLED_HANDSHAKE)
            .min_by_key(|(remote, since)| (**since, **remote))?;
        let since = self.started.remove(&remote)?;
        self.gave_way.insert(remote, since);
        Some(remote)
    }

    /// Undoes [`Handshakes::give_way`] for `remote`: it was not cut after all.
    pub(super) fn keep(&mut self, remote: SocketAddr) {
        if let Some(since) = self.gave_way.remove(&remote) {
            self.started.insert(remote, since);
        }
    }

    /// Forgets handshakes that outlived their timeout (their end was lost).
    pub(super) fn expire(&mut self, now: Instant) {
        let live = |since: &Instant| now.saturating_duration_since(*since) <= 2 * INCOMING_HANDSHAKE_TIMEOUT;
        self.started.retain(|_, since| live(since));
        self.gave_way.retain(|_, since| live(since));
    }

    /// Handshakes under way.
    pub(super) fn len(&self) -> usize {
        self.started.len()
    }

    /// Handshakes under way from addresses `counted` picks.
    pub(super) fn count_where(&self, counted: impl Fn(IpAddr) -> bool) -> usize {
        self.started.keys().filter(|remote| counted(remote.ip())).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_doorway_drops_the_connection_that_waited_longest() {
        let mut doorway = Doorway::with_capacity(2);
        let ip = |n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n));
        let (first, none) = doorway.enter(ip(1), "first");
        assert!(none.is_none());
        let (second, _) = doorway.enter(ip(2), "second");
        let (_, evicted) = doorway.enter(ip(3), "third");
        assert_eq!(evicted, Some("first"));
        assert_eq!(doorway.leave(first), None, "already gone");
        assert_eq!(doorway.leave(second), Some("second"));
        assert_eq!(doorway.len(), 1);
    }

    #[test]
    fn one_address_gives_way_to_itself_in_the_doorway() {
        let mut doorway = Doorway::with_capacity(100);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let honest: IpAddr = "192.0.2.2".parse().unwrap();
        let (kept, _) = doorway.enter(honest, 0);
        for n in 1..=MAX_UNCLASSIFIED_PER_ADDRESS {
            assert_eq!(doorway.enter(attacker, n).1, None);
        }
        assert_eq!(doorway.enter(attacker, 99).1, Some(1), "the address's own oldest goes");
        assert_eq!(doorway.len(), 1 + MAX_UNCLASSIFIED_PER_ADDRESS);
        assert_eq!(doorway.leave(kept), Some(0), "another address keeps its place");
        // Many connections from the address a test network shares all wait.
        let mut doorway = Doorway::with_capacity(100);
        for n in 0..20 {
            assert_eq!(doorway.enter(IpAddr::V4(Ipv4Addr::LOCALHOST), n).1, None);
        }
    }

    #[test]
    fn one_slash_24_gives_way_to_itself_in_the_doorway() {
        let mut doorway = Doorway::with_capacity(MAX_UNCLASSIFIED);
        let (kept, _) = doorway.enter(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 0);
        let block = |n: usize| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n as u8));
        for n in 1..=MAX_UNCLASSIFIED_PER_PREFIX {
            assert_eq!(doorway.enter(block(n), n).1, None);
        }
        assert_eq!(doorway.enter(block(200), 999).1, Some(1), "the block's own oldest goes");
        assert_eq!(doorway.leave(kept), Some(0), "another block keeps its place");
        // Loopback addresses stand alone, as test networks use them.
        let mut doorway = Doorway::with_capacity(MAX_UNCLASSIFIED);
        for n in 0..MAX_UNCLASSIFIED {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, (n / 250) as u8, (n % 250 + 1) as u8));
            assert_eq!(doorway.enter(ip, n).1, None);
        }
    }

    #[test]
    fn only_a_stalled_handshake_gives_way_and_its_end_says_so() {
        let now = Instant::now();
        let mut handshakes = Handshakes::default();
        let stalled: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let fresh: SocketAddr = "192.0.2.2:5000".parse().unwrap();
        handshakes.start(stalled, now);
        handshakes.start(fresh, now + STALLED_HANDSHAKE);
        assert_eq!(handshakes.give_way(now + STALLED_HANDSHAKE / 2), None, "nobody stalled yet");
        assert_eq!(handshakes.give_way(now + STALLED_HANDSHAKE), Some(stalled));
        assert_eq!(handshakes.len(), 1, "its count is gone at once");
        assert_eq!(handshakes.give_way(now + STALLED_HANDSHAKE), None, "the fresh one stays");
        assert_eq!(handshakes.end(stalled), Ended::GaveWay);
        assert_eq!(handshakes.end(fresh), Ended::Counted);
        assert_eq!(handshakes.end(fresh), Ended::Unknown);
    }

    #[test]
    fn handshakes_whose_end_is_lost_are_forgotten() {
        let now = Instant::now();
        let mut handshakes = Handshakes::default();
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        handshakes.start(remote, now);
        assert_eq!(handshakes.count_where(|ip| ip == remote.ip()), 1);
        handshakes.expire(now + INCOMING_HANDSHAKE_TIMEOUT);
        assert_eq!(handshakes.len(), 1);
        assert_eq!(handshakes.give_way(now + 2 * INCOMING_HANDSHAKE_TIMEOUT), Some(remote));
        handshakes.expire(now + 3 * INCOMING_HANDSHAKE_TIMEOUT);
        assert_eq!(handshakes.len(), 0);
        assert_eq!(handshakes.end(remote), Ended::Unknown, "the one that gave way is forgotten too");
    }

    #[test]
    fn only_the_loopback_address_itself_is_shared() {
        assert!(shared_address("127.0.0.1".parse().unwrap()));
        assert!(shared_address("::1".parse().unwrap()));
        assert!(!shared_address("127.0.0.2".parse().unwrap()));
        assert!(!shared_address("192.0.2.1".parse().unwrap()));
    }
}
