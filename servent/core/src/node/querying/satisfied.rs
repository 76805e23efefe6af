//! When a search of ours has found enough, and what a leaf tells the
//! ultrapeers running it dynamically.
//!
//! Deployed leaves count what they kept and stop their ultrapeers only
//! late: gtk-gnutella's leaf answers a Query Status Request with the
//! results it kept (`search.c`, `search_get_kept_results`; 0xFFFF only
//! once the search is closed or GUESS took over), LimeWire's sends 0xFFFF
//! past 150 results (`SearchResultHandler`). Their ultrapeers want 50
//! results for a leaf (gtk-gnutella's `DQ_LEAF_RESULTS`), so a search for
//! one file held by a few servents is widened to the whole horizon.
//!
//! The same ultrapeers want 25 times fewer for a query by hash
//! (`DQ_SHA1_DECIMATOR`): two sources per ultrapeer, [`SATISFIED_SOURCES`]
//! for a leaf asking three, is what they deem enough to download one file
//! (swarming and the download mesh find the rest). Our leaf holds its
//! keyword searches to the same measure: a search is **satisfied** once
//! every file it found has that many sources. A narrow search (one release,
//! `SEBLINUX base 1.0`) then stops as soon as its file can be fetched; a
//! broad one keeps meeting new files with one source and goes on widening,
//! as before. A satisfied search answers Query Status with 0xFFFF, and the
//! leaf says so unsolicited, once, to its ultrapeers (gtk-gnutella's
//! `dq_got_query_status` honours an unsolicited 0xFFFF); an ultrapeer's own
//! dynamic query ends there too.
//!
//! An answerer forging sources can make a search look satisfied sooner, as
//! it can already push a deployed leaf's count past the target with junk
//! results: stopping early costs the searcher only the widening.
//!
//! Pure: a function of the search's results.

use super::super::dynamic::{LEAF_RESULTS, ULTRAPEERS_PER_LEAF, URN_DECIMATOR};
use crate::searches::Search;
use crate::wire::vendor::query_status::QueryStatus;

/// Sources of one file that make it found: what deployed ultrapeers seek
/// for a leaf's query by hash, over the ultrapeers a leaf asks.
pub const SATISFIED_SOURCES: usize = LEAF_RESULTS / URN_DECIMATOR * ULTRAPEERS_PER_LEAF;

/// Whether `search` found something and every file it found has
/// [`SATISFIED_SOURCES`] sources.
pub fn is_satisfied(search: &Search) -> bool {
    let results = search.results();
    !results.is_empty() && results.iter().all(|r| r.sources.len() >= SATISFIED_SOURCES)
}

/// What a leaf answers a Query Status Request for `search`: stop once it
/// is satisfied, else the results kept, as deployed leaves count them
/// (each source of each file).
pub fn status(search: &Search) -> QueryStatus {
    if is_satisfied(search) {
        QueryStatus::STOP
    } else {
        QueryStatus::kept(search.results().iter().map(|r| r.sources.len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::*;
    use crate::searches::Searches;
    use crate::trust::TrustStore;
    use crate::wire::{Guid, QueryHit, QueryResult, Urn};

    /// A search that got, for each `(file, sources)`, that many hits from
    /// distinct servents.
    fn search(found: &[(u8, u8)]) -> Searches {
        let (guid, now, trust) = (Guid([1; 16]), Instant::now(), TrustStore::in_memory());
        let mut searches = Searches::default();
        searches.start(guid, "seblinux".into(), now);
        for &(file, sources) in found {
            for source in 0..sources {
                let result = QueryResult {
                    index: 1,
                    size: 10,
                    name: format!("SEBLINUX-{file}.tar"),
                    urns: vec![Urn::Sha1([file; 20])],
                    ggep: Default::default(),
                };
                let hit = QueryHit {
                    port: 6346,
                    ip: Ipv4Addr::new(192, 0, file, source),
                    speed: 0,
                    results: vec![result],
                    trailer: None,
                    servent_guid: Guid([source; 16]),
                    original: Default::default(),
                };
                searches.add(guid, &hit, now, &trust);
            }
        }
        searches
    }

    fn status_of(found: &[(u8, u8)]) -> QueryStatus {
        status(search(found).get(&Guid([1; 16])).unwrap())
    }

    #[test]
    fn a_file_is_found_with_the_sources_deployed_ultrapeers_seek_for_a_leafs_query_by_hash() {
        assert_eq!(SATISFIED_SOURCES, 6, "50 / 25 per ultrapeer, three ultrapeers");
    }

    #[test]
    fn a_narrow_search_stops_once_its_file_has_enough_sources() {
        assert_eq!(status_of(&[]), QueryStatus(0), "nothing found: go on");
        assert_eq!(status_of(&[(1, 5)]), QueryStatus(5), "the sources kept, as deployed leaves count");
        assert_eq!(status_of(&[(1, 6)]), QueryStatus::STOP);
        assert_eq!(status_of(&[(1, 9), (2, 6)]), QueryStatus::STOP);
    }

    #[test]
    fn a_broad_search_meeting_a_file_with_few_sources_goes_on() {
        assert_eq!(status_of(&[(1, 30), (2, 1)]), QueryStatus(31));
        assert!(!is_satisfied(search(&[(1, 30), (2, 1)]).get(&Guid([1; 16])).unwrap()));
    }
}
