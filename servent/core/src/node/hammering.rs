//! Refusing an address that hammers the listening port: more connection
//! attempts in a minute than a servent has reason to make are cut off
//! before a byte is read.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Connection attempts one address may make per minute before it is cut
/// off at once (gtk-gnutella bans after two); loopback is exempt.
pub const MAX_CONNECTS_PER_MINUTE: usize = 6;
/// Addresses whose recent attempts are remembered.
pub const HAMMER_TABLE: usize = 10_000;

/// Remembers recent connection attempts per address, to refuse hammering.
#[derive(Default)]
pub struct Hammering {
    attempts: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Hammering {
    /// Whether a connection from `ip` at `now` may be served; counts it.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if ip.is_loopback() {
            return true;
        }
        let minute = Duration::from_secs(60);
        if self.attempts.len() >= HAMMER_TABLE {
            self.attempts.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < minute));
            if self.attempts.len() >= HAMMER_TABLE {
                self.attempts.clear();
            }
        }
        let times = self.attempts.entry(ip).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= minute) {
            times.pop_front();
        }
        if times.len() >= MAX_CONNECTS_PER_MINUTE {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hammering_address_is_refused_but_loopback_is_not() {
        let now = Instant::now();
        let mut hammering = Hammering::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_CONNECTS_PER_MINUTE {
            assert!(hammering.allow(ip, now));
        }
        assert!(!hammering.allow(ip, now));
        assert!(hammering.allow(ip, now + Duration::from_secs(61)));
        for _ in 0..100 {
            assert!(hammering.allow("127.0.0.1".parse().unwrap(), now));
        }
    }
}
