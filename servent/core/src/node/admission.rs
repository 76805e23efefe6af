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
//! at most [`MAX_UNCLASSIFIED`]; when it is full the connection waiting
//! longest gives way, so that silent connections cannot keep out clients
//! that speak at once. Hammering (see [`super::Hammering`]) already bounds
//! how many one address opens. A Gnutella handshake under way is then a
//! [`Handshakes`] entry of the node, counted as a peer by every admission
//! rule until it ends, and forgotten after [`INCOMING_HANDSHAKE_TIMEOUT`]
//! even if its end is never reported.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Accepted connections whose first line has not arrived, at most.
pub const MAX_UNCLASSIFIED: usize = 256;
/// How long an incoming connection has, from its acceptance, to finish
/// its Gnutella handshake (its first line included).
pub const INCOMING_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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
/// with what the shell needs to drop it (`T`).
#[derive(Debug)]
pub struct Doorway<T> {
    capacity: usize,
    next: u64,
    waiting: VecDeque<(Ticket, T)>,
}

impl<T> Doorway<T> {
    /// A doorway holding at most `capacity` connections.
    pub fn with_capacity(capacity: usize) -> Doorway<T> {
        Doorway { capacity: capacity.max(1), next: 0, waiting: VecDeque::new() }
    }

    /// Lets a new connection wait; returns its ticket and, when the doorway
    /// was full, the connection that waited longest, which must be dropped.
    pub fn enter(&mut self, connection: T) -> (Ticket, Option<T>) {
        let evicted = if self.waiting.len() >= self.capacity { self.waiting.pop_front().map(|(_, t)| t) } else { None };
        self.next += 1;
        let ticket = Ticket(self.next);
        self.waiting.push_back((ticket, connection));
        (ticket, evicted)
    }

    /// The connection with this ticket has spoken (or is gone): it leaves.
    pub fn leave(&mut self, ticket: Ticket) -> Option<T> {
        let at = self.waiting.iter().position(|(t, _)| *t == ticket)?;
        self.waiting.remove(at).map(|(_, t)| t)
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

/// Incoming Gnutella handshakes under way, by remote address.
#[derive(Debug, Default)]
pub(super) struct Handshakes {
    started: BTreeMap<SocketAddr, Instant>,
}

impl Handshakes {
    /// Counts a handshake from `remote` as under way since `now`.
    pub(super) fn start(&mut self, remote: SocketAddr, now: Instant) {
        self.started.insert(remote, now);
    }

    /// The handshake from `remote` ended, in a link or not.
    pub(super) fn end(&mut self, remote: SocketAddr) {
        self.started.remove(&remote);
    }

    /// Forgets handshakes that outlived their timeout (their end was lost).
    pub(super) fn expire(&mut self, now: Instant) {
        self.started.retain(|_, since| now.saturating_duration_since(*since) <= 2 * INCOMING_HANDSHAKE_TIMEOUT);
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
        let (first, none) = doorway.enter("first");
        assert!(none.is_none());
        let (second, _) = doorway.enter("second");
        let (_, evicted) = doorway.enter("third");
        assert_eq!(evicted, Some("first"));
        assert_eq!(doorway.leave(first), None, "already gone");
        assert_eq!(doorway.leave(second), Some("second"));
        assert_eq!(doorway.len(), 1);
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
        handshakes.expire(now + 3 * INCOMING_HANDSHAKE_TIMEOUT);
        assert_eq!(handshakes.len(), 0);
    }

    #[test]
    fn only_the_loopback_address_itself_is_shared() {
        assert!(shared_address("127.0.0.1".parse().unwrap()));
        assert!(shared_address("::1".parse().unwrap()));
        assert!(!shared_address("127.0.0.2".parse().unwrap()));
        assert!(!shared_address("192.0.2.1".parse().unwrap()));
    }
}
