//! Cutting off neighbours whose traffic is mostly useless: descriptors
//! that arrive dead (TTL 0), past the hops limit, or over the query
//! allowance cost us reading and judging and help nobody.
//!
//! Duplicates are not counted: in a flooded mesh most copies of a query
//! reach us from every neighbour but the first, so an honest neighbour's
//! share of duplicates grows with our degree.

use crate::routing::{Counters, Drop};

/// Descriptors a neighbour sends before its share is judged.
pub const JUNK_MIN_MESSAGES: u64 = 500;
/// The share of useless descriptors (in percent) past which it is dropped.
pub const JUNK_PERCENT: u64 = 50;

/// Why a neighbour with these counters should be dropped, if it should.
pub fn verdict(counters: &Counters) -> Option<String> {
    if counters.received < JUNK_MIN_MESSAGES {
        return None;
    }
    let useless: u64 = [Drop::TtlExpired, Drop::HopsExceeded, Drop::RateLimited]
        .iter()
        .map(|reason| counters.dropped.get(reason).copied().unwrap_or(0))
        .sum();
    (useless * 100 >= counters.received * JUNK_PERCENT)
        .then(|| format!("{useless} of {} descriptors useless", counters.received))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(received: u64, dropped: &[(Drop, u64)]) -> Counters {
        Counters { received, dropped: dropped.iter().copied().collect(), ..Counters::default() }
    }

    #[test]
    fn a_neighbour_sending_mostly_dead_descriptors_is_dropped() {
        assert!(verdict(&counters(600, &[(Drop::TtlExpired, 400)])).is_some());
        assert!(verdict(&counters(600, &[(Drop::RateLimited, 200), (Drop::HopsExceeded, 100)])).is_some());
    }

    #[test]
    fn duplicates_and_a_short_history_are_not_judged() {
        assert!(verdict(&counters(100, &[(Drop::TtlExpired, 100)])).is_none());
        assert!(verdict(&counters(10_000, &[(Drop::Duplicate, 9_500), (Drop::TtlExpired, 100)])).is_none());
    }
}
