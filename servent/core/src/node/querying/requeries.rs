//! `X-Requeries: False`: the pledge not to repeat one's queries, as
//! gtk-gnutella keeps and enforces it.
//!
//! LimeWire introduced the header: a leaf saying `X-Requeries: False`
//! promises it does not re-send its queries by itself (its
//! `HandshakeResponse` calls such a leaf "good"). gtk-gnutella 1.2 sends it
//! in every handshake (`nodes.c`) and never reads it: it holds every leaf
//! to it instead. As an ultrapeer it drops a leaf's query whose words (or
//! SHA-1, for a query by hash) the leaf sent less than
//! `node_requery_threshold` ([`REQUERY_THRESHOLD`], 1700 s) ago, counted as
//! throttled (`search.c`); as a leaf it re-issues a search no sooner than
//! `SEARCH_MIN_RETRY` ([`OWN_REQUERY_SPACING`], 1800 s). We do the same:
//! - [`LeafQueries`]: a leaf's repeated query is dropped before the router
//!   sees it, so a leaf, with a pledge or without, cannot make us run the
//!   same dynamic query again and again (each would cost a probe and more).
//!   What a pledge buys is nothing a leaf without one does not get.
//! - [`OwnRequeries`]: as a leaf, the downloads' re-queries of one URN go
//!   out at most once per [`OWN_REQUERY_SPACING`], so we keep the pledge we
//!   send and a gtk-gnutella ultrapeer does not drop them.
//! - [`OwnSearches`]: as a leaf, a user's search repeating one sent less
//!   than [`REQUERY_THRESHOLD`] ago would be dropped by every ultrapeer
//!   and find nothing; the earlier search, with the results it gathered
//!   and still gathers, is the answer instead, and nothing is sent.
//!
//! Pure: time is passed in; both tables are bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::routing::PeerId;
use crate::searches::MAX_SEARCHES;
use crate::wire::{Guid, Query, Urn};

/// A leaf's query repeated sooner than this is dropped (gtk-gnutella's
/// `node_requery_threshold` default).
pub const REQUERY_THRESHOLD: Duration = Duration::from_secs(1700);
/// Our re-queries of one URN as a leaf are at least this far apart
/// (gtk-gnutella's `SEARCH_MIN_RETRY`).
pub const OWN_REQUERY_SPACING: Duration = Duration::from_secs(1800);
/// Queries remembered per leaf; beyond, the oldest is forgotten.
pub const MAX_REMEMBERED_PER_LEAF: usize = 256;
/// Our own re-queried URNs remembered; beyond, the oldest is forgotten.
pub const MAX_OWN_REMEMBERED: usize = 4096;

/// What makes two queries the same: the first SHA-1 asked for, or the words.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::node) enum Key {
    Urn(Urn),
    Words(String),
}

impl Key {
    pub(in crate::node) fn of(query: &Query) -> Key {
        match query.urns.iter().find(|u| matches!(u, Urn::Sha1(_))).or(query.urns.first()) {
            Some(urn) => Key::Urn(*urn),
            None => Key::Words(query.criteria.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()),
        }
    }
}

/// Remembers `key` at `now` in `seen`, forgetting what is past `keep` and,
/// when still full, the oldest.
fn remember<K: Ord + Clone>(seen: &mut BTreeMap<K, Instant>, key: K, now: Instant, keep: Duration, max: usize) {
    if seen.len() >= max && !seen.contains_key(&key) {
        seen.retain(|_, at| now.saturating_duration_since(*at) < keep);
        if seen.len() >= max {
            if let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone()) {
                seen.remove(&oldest);
            }
        }
    }
    seen.insert(key, now);
}

/// The queries each leaf sent us lately.
#[derive(Debug, Default)]
pub(in crate::node) struct LeafQueries {
    seen: BTreeMap<PeerId, BTreeMap<Key, Instant>>,
}

impl LeafQueries {
    /// Whether `leaf`'s `query` may go on: not a repeat within
    /// [`REQUERY_THRESHOLD`]. One that may is remembered; a dropped one is
    /// not, so repeating does not push the time back.
    pub(in crate::node) fn admit(&mut self, leaf: PeerId, query: &Query, now: Instant) -> bool {
        let key = Key::of(query);
        let seen = self.seen.entry(leaf).or_default();
        if seen.get(&key).is_some_and(|at| now.saturating_duration_since(*at) < REQUERY_THRESHOLD) {
            return false;
        }
        remember(seen, key, now, REQUERY_THRESHOLD, MAX_REMEMBERED_PER_LEAF);
        true
    }

    /// The leaf is gone.
    pub(in crate::node) fn closed(&mut self, leaf: PeerId) {
        self.seen.remove(&leaf);
    }
}

/// When we last re-queried each URN as a leaf.
#[derive(Debug, Default)]
pub(in crate::node) struct OwnRequeries {
    sent: BTreeMap<Urn, Instant>,
}

impl OwnRequeries {
    /// Whether a re-query of `urn` may go out now; one that may is remembered.
    pub(in crate::node) fn may_send(&mut self, urn: Urn, now: Instant) -> bool {
        if self.sent.get(&urn).is_some_and(|at| now.saturating_duration_since(*at) < OWN_REQUERY_SPACING) {
            return false;
        }
        remember(&mut self.sent, urn, now, OWN_REQUERY_SPACING, MAX_OWN_REMEMBERED);
        true
    }
}

/// Our own searches as a leaf, by what they asked, with the ultrapeers
/// each went to: at most [`MAX_SEARCHES`], as many as we keep the results
/// of.
#[derive(Debug, Default)]
pub(in crate::node) struct OwnSearches {
    sent: BTreeMap<Key, (Guid, Instant, Vec<PeerId>)>,
}

impl OwnSearches {
    /// The search that asked what `query` asks less than
    /// [`REQUERY_THRESHOLD`] before `now` and went to every one of our
    /// ultrapeers now (`ultrapeers`, at least one), which would drop
    /// `query` as a repeat. A search that went nowhere, or not to an
    /// ultrapeer we have now, is no answer: that one never saw it.
    pub(in crate::node) fn earlier(&self, query: &Query, ultrapeers: &[PeerId], now: Instant) -> Option<Guid> {
        let (guid, at, sent_to) = self.sent.get(&Key::of(query))?;
        let recent = now.saturating_duration_since(*at) < REQUERY_THRESHOLD;
        let seen_by_all = !ultrapeers.is_empty() && ultrapeers.iter().all(|u| sent_to.contains(u));
        (recent && seen_by_all).then_some(*guid)
    }

    /// Remembers that search `guid` asked `query` of `sent_to` at `now`;
    /// the oldest is forgotten when full.
    pub(in crate::node) fn sent(&mut self, query: &Query, guid: Guid, sent_to: Vec<PeerId>, now: Instant) {
        let key = Key::of(query);
        if self.sent.len() >= MAX_SEARCHES && !self.sent.contains_key(&key) {
            if let Some(oldest) = self.sent.iter().min_by_key(|(_, (_, at, _))| *at).map(|(k, _)| k.clone()) {
                self.sent.remove(&oldest);
            }
        }
        self.sent.insert(key, (guid, now, sent_to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::QueryFlags;

    fn query(words: &str, urns: Vec<Urn>) -> Query {
        Query {
            flags: QueryFlags::default(),
            criteria: words.into(),
            urns,
            ggep: Default::default(),
            original: Default::default(),
        }
    }

    #[test]
    fn a_leafs_repeated_words_are_dropped_until_the_threshold() {
        let t0 = Instant::now();
        let mut leaves = LeafQueries::default();
        assert!(leaves.admit(PeerId(1), &query("SEBLINUX pkg", vec![]), t0));
        let later = t0 + REQUERY_THRESHOLD - Duration::from_secs(1);
        assert!(!leaves.admit(PeerId(1), &query("seblinux  PKG", vec![]), later), "case and spacing do not matter");
        assert!(leaves.admit(PeerId(2), &query("SEBLINUX pkg", vec![]), later), "another leaf's query is its own");
        assert!(leaves.admit(PeerId(1), &query("SEBLINUX other", vec![]), later));
        assert!(leaves.admit(PeerId(1), &query("SEBLINUX pkg", vec![]), t0 + REQUERY_THRESHOLD));
    }

    #[test]
    fn a_search_asking_again_what_one_asked_lately_of_the_same_ultrapeers_is_that_search() {
        let t0 = Instant::now();
        let (one, two) = (PeerId(1), PeerId(2));
        let mut searches = OwnSearches::default();
        let base = query("SEBLINUX base", vec![]);
        assert_eq!(searches.earlier(&base, &[one], t0), None);
        searches.sent(&base, Guid([1; 16]), vec![one, two], t0);
        let later = t0 + REQUERY_THRESHOLD - Duration::from_secs(1);
        assert_eq!(searches.earlier(&query("seblinux  BASE", vec![]), &[two, one], later), Some(Guid([1; 16])));
        assert_eq!(searches.earlier(&base, &[one], later), Some(Guid([1; 16])), "one of them left");
        assert_eq!(searches.earlier(&base, &[one, PeerId(3)], later), None, "a new ultrapeer never saw it");
        assert_eq!(searches.earlier(&base, &[], later), None);
        assert_eq!(searches.earlier(&query("SEBLINUX docs", vec![]), &[one], later), None);
        assert_eq!(searches.earlier(&base, &[one], t0 + REQUERY_THRESHOLD), None, "past the threshold");
        searches.sent(&query("offline", vec![]), Guid([2; 16]), Vec::new(), t0);
        assert_eq!(searches.earlier(&query("offline", vec![]), &[one], t0), None, "it went nowhere");
        for n in 0..MAX_SEARCHES {
            searches.sent(&query(&format!("other {n}"), vec![]), Guid([2; 16]), vec![one], later);
        }
        assert_eq!(searches.sent.len(), MAX_SEARCHES, "bounded: the oldest is forgotten");
        assert_eq!(searches.earlier(&base, &[one], later), None);
    }

    #[test]
    fn a_query_by_hash_is_the_same_query_whatever_its_words() {
        let t0 = Instant::now();
        let mut leaves = LeafQueries::default();
        let urn = Urn::Sha1([3; 20]);
        assert!(leaves.admit(PeerId(1), &query("", vec![urn]), t0));
        assert!(!leaves.admit(PeerId(1), &query("file.iso", vec![urn]), t0 + Duration::from_secs(60)));
        assert!(leaves.admit(PeerId(1), &query("", vec![Urn::Sha1([4; 20])]), t0));
    }

    #[test]
    fn repeating_early_does_not_push_the_time_back_and_a_new_link_starts_afresh() {
        let t0 = Instant::now();
        let mut leaves = LeafQueries::default();
        let q = query("linux", vec![]);
        assert!(leaves.admit(PeerId(1), &q, t0));
        assert!(!leaves.admit(PeerId(1), &q, t0 + REQUERY_THRESHOLD / 2));
        assert!(leaves.admit(PeerId(1), &q, t0 + REQUERY_THRESHOLD));
        leaves.closed(PeerId(1));
        assert!(leaves.admit(PeerId(1), &q, t0 + REQUERY_THRESHOLD));
    }

    #[test]
    fn attack_a_leaf_cannot_grow_its_table_past_the_bound() {
        let t0 = Instant::now();
        let mut leaves = LeafQueries::default();
        for n in 0..MAX_REMEMBERED_PER_LEAF * 4 {
            assert!(leaves.admit(PeerId(1), &query(&format!("word{n}"), vec![]), t0 + Duration::from_millis(n as u64)));
        }
        assert_eq!(leaves.seen[&PeerId(1)].len(), MAX_REMEMBERED_PER_LEAF);
        let last = query(&format!("word{}", MAX_REMEMBERED_PER_LEAF * 4 - 1), vec![]);
        assert!(!leaves.admit(PeerId(1), &last, t0 + Duration::from_secs(60)), "the newest are the ones kept");
    }

    #[test]
    fn our_requeries_of_one_urn_as_a_leaf_are_spaced() {
        let t0 = Instant::now();
        let mut own = OwnRequeries::default();
        let urn = Urn::Sha1([9; 20]);
        assert!(own.may_send(urn, t0));
        assert!(!own.may_send(urn, t0 + Duration::from_secs(120)));
        assert!(own.may_send(Urn::Sha1([8; 20]), t0 + Duration::from_secs(120)));
        assert!(own.may_send(urn, t0 + OWN_REQUERY_SPACING));
        assert!(OWN_REQUERY_SPACING > REQUERY_THRESHOLD, "a gtk-gnutella ultrapeer takes them");
    }
}
