//! When a download asks the network again for more sources of its content.
//!
//! A download that is fetching asks every [`REQUERY_INTERVAL`]; one that is
//! paused or queued for a slot asks nothing (it would only fill routing
//! tables with a query nobody waits for), and asks when it runs again: at
//! once if its interval ran out meanwhile, else when it does. A download whose sources a search has just found waits one
//! interval first: that search asked the whole network the same. A download
//! resumed after a restart is started again here, with no search behind it,
//! so it asks at once. Finished and cancelled downloads are forgotten.
//!
//! The schedule is pure: time is passed in, and [`Requeries::due`] hands out
//! the URNs to ask for; the node sends them as Queries of its own, which
//! take none of the user's search slots.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::wire::Urn;

/// How often a running download asks the network for more sources.
pub const REQUERY_INTERVAL: Duration = Duration::from_secs(120);
/// Downloads followed at most; a start beyond it is ignored.
pub const MAX_FOLLOWED: usize = 4096;

/// Where a download stands, as far as its re-queries care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Fetching: it wants more sources.
    Fetching,
    /// Paused by the user, or queued for a free slot: it asks nothing.
    Waiting,
    /// Complete, failed or cancelled: it is forgotten.
    Finished,
}

#[derive(Clone, Copy, Debug)]
struct Followed {
    urn: Urn,
    /// When it asks next, if it is fetching then.
    next: Instant,
    /// Paused or queued: it asks nothing.
    waiting: bool,
}

/// The re-query schedule of every download, by the download's number.
#[derive(Debug, Default)]
pub struct Requeries {
    followed: BTreeMap<u64, Followed>,
}

impl Requeries {
    /// Follows a new download of `urn`; `searched` says a search has just
    /// found its sources, so the first re-query waits one interval.
    pub fn start(&mut self, id: u64, urn: Urn, searched: bool, now: Instant) {
        if self.followed.len() >= MAX_FOLLOWED && !self.followed.contains_key(&id) {
            return;
        }
        let next = if searched { now + REQUERY_INTERVAL } else { now };
        self.followed.insert(id, Followed { urn, next, waiting: false });
    }

    /// What the download manager says of a download now. A download not
    /// followed yet that is fetching (resumed after a restart) is started
    /// with no search behind it, so it asks at once.
    pub fn observe(&mut self, id: u64, urn: Urn, phase: Phase, now: Instant) {
        match (phase, self.followed.get_mut(&id)) {
            (Phase::Finished, _) => {
                self.followed.remove(&id);
            }
            (Phase::Waiting, Some(followed)) => followed.waiting = true,
            (Phase::Waiting, None) => {
                if self.followed.len() < MAX_FOLLOWED {
                    self.followed.insert(id, Followed { urn, next: now, waiting: true });
                }
            }
            (Phase::Fetching, Some(followed)) => followed.waiting = false,
            (Phase::Fetching, None) => self.start(id, urn, false, now),
        }
    }

    /// When the next re-query is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.followed.values().filter(|f| !f.waiting).map(|f| f.next).min()
    }

    /// The URNs to ask for now, each rescheduled one interval later.
    pub fn due(&mut self, now: Instant) -> Vec<Urn> {
        let mut urns = Vec::new();
        for followed in self.followed.values_mut() {
            if !followed.waiting && followed.next <= now {
                followed.next = now + REQUERY_INTERVAL;
                urns.push(followed.urn);
            }
        }
        urns
    }

    /// Downloads followed.
    pub fn len(&self) -> usize {
        self.followed.len()
    }

    /// Whether no download is followed.
    pub fn is_empty(&self) -> bool {
        self.followed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urn(n: u8) -> Urn {
        Urn::Sha1([n; 20])
    }

    #[test]
    fn download_found_by_a_search_asks_only_after_an_interval() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.start(1, urn(1), true, t0);
        assert!(requeries.due(t0).is_empty());
        assert_eq!(requeries.next_due(), Some(t0 + REQUERY_INTERVAL));
        assert_eq!(requeries.due(t0 + REQUERY_INTERVAL), vec![urn(1)]);
        assert_eq!(requeries.next_due(), Some(t0 + 2 * REQUERY_INTERVAL));
    }

    #[test]
    fn download_started_without_a_search_asks_at_once_then_every_interval() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.start(1, urn(1), false, t0);
        assert_eq!(requeries.due(t0), vec![urn(1)]);
        assert!(requeries.due(t0 + REQUERY_INTERVAL / 2).is_empty());
        assert_eq!(requeries.due(t0 + REQUERY_INTERVAL), vec![urn(1)]);
    }

    #[test]
    fn paused_or_queued_download_asks_nothing_until_it_runs_again() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.start(1, urn(1), true, t0);
        requeries.observe(1, urn(1), Phase::Waiting, t0 + Duration::from_secs(1));
        assert_eq!(requeries.next_due(), None);
        assert!(requeries.due(t0 + 10 * REQUERY_INTERVAL).is_empty());
        let resumed = t0 + 11 * REQUERY_INTERVAL;
        requeries.observe(1, urn(1), Phase::Fetching, resumed);
        assert_eq!(requeries.due(resumed), vec![urn(1)]);
        requeries.observe(1, urn(1), Phase::Fetching, resumed + Duration::from_secs(1));
        assert_eq!(requeries.next_due(), Some(resumed + REQUERY_INTERVAL));
    }

    #[test]
    fn queued_download_found_by_a_search_waits_its_interval_when_it_starts() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.start(1, urn(1), true, t0);
        requeries.observe(1, urn(1), Phase::Waiting, t0);
        let started = t0 + Duration::from_secs(5);
        requeries.observe(1, urn(1), Phase::Fetching, started);
        assert!(requeries.due(started).is_empty());
        assert_eq!(requeries.next_due(), Some(t0 + REQUERY_INTERVAL));
    }

    #[test]
    fn cancelled_or_finished_download_is_forgotten() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.start(1, urn(1), false, t0);
        requeries.start(2, urn(2), false, t0);
        requeries.observe(1, urn(1), Phase::Finished, t0);
        requeries.observe(2, urn(2), Phase::Finished, t0);
        assert!(requeries.is_empty());
        assert!(requeries.due(t0).is_empty());
    }

    #[test]
    fn download_resumed_after_a_restart_asks_at_once() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.observe(7, urn(7), Phase::Fetching, t0);
        assert_eq!(requeries.due(t0), vec![urn(7)]);
        requeries.observe(8, urn(8), Phase::Waiting, t0);
        assert_eq!(requeries.len(), 2);
        assert!(requeries.due(t0 + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn late_wakeup_does_not_make_a_burst_of_requeries() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        requeries.start(1, urn(1), false, t0);
        assert_eq!(requeries.due(t0 + 10 * REQUERY_INTERVAL), vec![urn(1)]);
        assert!(requeries.due(t0 + 10 * REQUERY_INTERVAL + Duration::from_secs(1)).is_empty());
        assert_eq!(requeries.next_due(), Some(t0 + 11 * REQUERY_INTERVAL));
    }

    #[test]
    fn followed_downloads_are_bounded() {
        let t0 = Instant::now();
        let mut requeries = Requeries::default();
        for id in 0..MAX_FOLLOWED as u64 + 10 {
            requeries.start(id, urn(1), false, t0);
        }
        assert_eq!(requeries.len(), MAX_FOLLOWED);
    }
}
