//! gtk-gnutella's second query throttle, `node_watch_similar_queries` (on
//! by default; `search.c`, `nodes.c`): an ultrapeer remembers, per
//! ultrapeer neighbour, the queries it relayed to us by hops, TTL and
//! words (or SHA-1), and drops one it relays again within
//! [`HALF_LIFE`] to twice that, whatever its GUID (counted as throttled).
//! A neighbour re-sending a query under fresh GUIDs, its own or its
//! leaves', cannot make us route and answer it again and again: the
//! router's GUID table stops only exact duplicates. Hops and TTL are part
//! of what is remembered so that a dynamic query reaching us again at a
//! wider TTL goes on. Duplicates by GUID are the router's, and not
//! remembered here.
//!
//! gtk-gnutella keeps two sets per neighbour and rotates them every
//! `node_queries_half_life` (5 s); we rotate on use, with the same
//! lifetime, and bound each set at [`MAX_REMEMBERED`].
//!
//! Pure: time is passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::mem;
use std::time::{Duration, Instant};

use super::requeries::Key;
use crate::routing::PeerId;
use crate::wire::Query;

/// How long a relayed query is remembered, at least (gtk-gnutella's
/// `node_queries_half_life`); at most twice that.
pub const HALF_LIFE: Duration = Duration::from_secs(5);
/// Queries remembered per neighbour and half-life; beyond, new ones pass
/// unremembered.
pub const MAX_REMEMBERED: usize = 4096;

/// What makes two relayed queries similar.
type Similar = (u8, u8, Key);

/// One neighbour's queries of this half-life and of the one before.
#[derive(Debug)]
struct Relayed {
    current: BTreeSet<Similar>,
    previous: BTreeSet<Similar>,
    since: Instant,
}

/// The queries each ultrapeer neighbour relayed lately.
#[derive(Debug, Default)]
pub(in crate::node) struct SimilarQueries {
    peers: BTreeMap<PeerId, Relayed>,
}

impl SimilarQueries {
    /// Whether `query`, relayed by `peer` with `hops` and `ttl`, may go on:
    /// not one it relayed lately. One that may is remembered.
    pub(in crate::node) fn admit(&mut self, peer: PeerId, hops: u8, ttl: u8, query: &Query, now: Instant) -> bool {
        let relayed = self.peers.entry(peer).or_insert_with(|| Relayed {
            current: BTreeSet::new(),
            previous: BTreeSet::new(),
            since: now,
        });
        let age = now.saturating_duration_since(relayed.since);
        if age >= 2 * HALF_LIFE {
            relayed.previous.clear();
            relayed.current.clear();
            relayed.since = now;
        } else if age >= HALF_LIFE {
            relayed.previous = mem::take(&mut relayed.current);
            relayed.since = now;
        }
        let similar = (hops, ttl, Key::of(query));
        if relayed.current.contains(&similar) || relayed.previous.contains(&similar) {
            return false;
        }
        if relayed.current.len() < MAX_REMEMBERED {
            relayed.current.insert(similar);
        }
        true
    }

    /// The neighbour is gone.
    pub(in crate::node) fn closed(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Urn;

    fn query(words: &str) -> Query {
        Query::words(words)
    }

    #[test]
    fn a_query_relayed_again_under_another_guid_is_dropped_for_one_to_two_half_lives() {
        let t0 = Instant::now();
        let mut similar = SimilarQueries::default();
        assert!(similar.admit(PeerId(1), 2, 3, &query("SEBLINUX base"), t0));
        assert!(!similar.admit(PeerId(1), 2, 3, &query("seblinux  BASE"), t0 + Duration::from_secs(1)));
        assert!(!similar.admit(PeerId(1), 2, 3, &query("SEBLINUX base"), t0 + HALF_LIFE + Duration::from_secs(4)));
        assert!(similar.admit(PeerId(1), 2, 3, &query("SEBLINUX base"), t0 + 3 * HALF_LIFE));
    }

    #[test]
    fn another_neighbour_hop_count_ttl_or_words_is_another_query() {
        let t0 = Instant::now();
        let mut similar = SimilarQueries::default();
        assert!(similar.admit(PeerId(1), 2, 3, &query("SEBLINUX base"), t0));
        assert!(similar.admit(PeerId(2), 2, 3, &query("SEBLINUX base"), t0));
        assert!(similar.admit(PeerId(1), 3, 3, &query("SEBLINUX base"), t0));
        assert!(similar.admit(PeerId(1), 2, 4, &query("SEBLINUX base"), t0), "a dynamic query widening");
        assert!(similar.admit(PeerId(1), 2, 3, &query("SEBLINUX docs"), t0));
        let mut by_hash = query("whatever");
        by_hash.urns = vec![Urn::Sha1([7; 20])];
        assert!(similar.admit(PeerId(1), 2, 3, &by_hash, t0));
        by_hash.criteria = "other words".into();
        assert!(!similar.admit(PeerId(1), 2, 3, &by_hash, t0), "by hash, the SHA-1 is the query");
        similar.closed(PeerId(1));
        assert!(similar.admit(PeerId(1), 2, 3, &query("SEBLINUX base"), t0), "forgotten with its link");
    }

    #[test]
    fn attack_a_flood_of_distinct_queries_is_remembered_only_up_to_the_bound() {
        let t0 = Instant::now();
        let mut similar = SimilarQueries::default();
        for n in 0..2 * MAX_REMEMBERED {
            assert!(similar.admit(PeerId(1), 2, 3, &query(&format!("junk {n}")), t0));
        }
        assert_eq!(similar.peers[&PeerId(1)].current.len(), MAX_REMEMBERED);
        assert!(!similar.admit(PeerId(1), 2, 3, &query("junk 0"), t0));
    }
}
