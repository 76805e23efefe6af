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
//! Sources are counted by host (IP address), not by `ip:port`, and files
//! judged fake do not count: one servent naming itself on six ports is one
//! source, and a forged file neither satisfies a search nor holds it open.
//! An answerer forging six addresses can still make a search look satisfied
//! sooner, as it can already push a deployed leaf's count past the target
//! with junk results: stopping early costs the searcher only the widening.
//!
//! Pure: a function of the search's results.

use std::collections::HashSet;

use super::super::dynamic::{LEAF_RESULTS, ULTRAPEERS_PER_LEAF, URN_DECIMATOR};
use crate::searches::{Search, SearchResult};
use crate::trust::Verdict;
use crate::wire::vendor::query_status::QueryStatus;

/// Sources of one file that make it found: what deployed ultrapeers seek
/// for a leaf's query by hash, over the ultrapeers a leaf asks.
pub const SATISFIED_SOURCES: usize = LEAF_RESULTS / URN_DECIMATOR * ULTRAPEERS_PER_LEAF;

/// Whether `search` found something not fake and every such file has
/// [`SATISFIED_SOURCES`] sources on distinct hosts.
pub fn is_satisfied(search: &Search) -> bool {
    let mut genuine = search.results().iter().filter(|r| r.judgement.verdict != Verdict::Fake).peekable();
    genuine.peek().is_some() && genuine.all(|r| hosts(r) >= SATISFIED_SOURCES)
}

/// How many distinct hosts `result`'s sources are on.
fn hosts(result: &SearchResult) -> usize {
    result.sources.iter().map(|s| s.ip()).collect::<HashSet<_>>().len()
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
    use crate::wire::{GgepId, Guid, QueryHit, QueryResult, Urn};

    /// A search that got one hit for each `(file, ip, port)`; file 0
    /// carries an unreadable signature (judged fake).
    fn search_from(hits: &[(u8, Ipv4Addr, u16)]) -> Searches {
        let (guid, now, trust) = (Guid([1; 16]), Instant::now(), TrustStore::in_memory());
        let mut searches = Searches::default();
        searches.start(guid, "seblinux".into(), now);
        for &(file, ip, port) in hits {
            let mut result = QueryResult {
                index: 1,
                size: 10,
                name: format!("SEBLINUX-{file}.tar"),
                urns: vec![Urn::Sha1([file; 20])],
                ggep: Default::default(),
            };
            if file == 0 {
                result.ggep.insert(GgepId::RELEASE_SIGNATURE, b"forged".to_vec());
            }
            let hit = QueryHit {
                port,
                ip,
                speed: 0,
                results: vec![result],
                trailer: None,
                servent_guid: Guid(ip.octets().repeat(4).try_into().unwrap()),
                original: Default::default(),
            };
            searches.add(guid, &hit, now, &trust);
        }
        searches
    }

    /// A search that got, for each `(file, sources)`, that many hits from
    /// servents on distinct hosts.
    fn search(found: &[(u8, u8)]) -> Searches {
        let hits: Vec<_> = found
            .iter()
            .flat_map(|&(file, sources)| (0..sources).map(move |s| (file, Ipv4Addr::new(192, 0, file, s), 6346)))
            .collect();
        search_from(&hits)
    }

    fn the_search(searches: &Searches) -> &Search {
        searches.get(&Guid([1; 16])).unwrap()
    }

    fn status_of(found: &[(u8, u8)]) -> QueryStatus {
        status(the_search(&search(found)))
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
        assert!(!is_satisfied(the_search(&search(&[(1, 30), (2, 1)]))));
    }

    #[test]
    fn attack_one_servent_naming_itself_on_six_ports_does_not_satisfy_a_search() {
        let one = Ipv4Addr::new(203, 0, 113, 66);
        let ports: Vec<_> = (1..=6).map(|port| (1, one, port)).collect();
        let searches = search_from(&ports);
        assert_eq!(the_search(&searches).results()[0].sources.len(), 6, "six sources listed");
        assert!(!is_satisfied(the_search(&searches)), "one servent on six ports is one source");
        let hosts: Vec<_> = (1..=6).map(|n| (1, Ipv4Addr::new(203, 0, 113, n), 6346)).collect();
        assert!(is_satisfied(the_search(&search_from(&hosts))), "six hosts are six sources");
    }

    #[test]
    fn attack_a_fake_file_from_six_hosts_neither_satisfies_a_search_nor_holds_it_open() {
        let fake: Vec<_> = (1..=6).map(|n| (0, Ipv4Addr::new(203, 0, 113, n), 6346)).collect();
        let searches = search_from(&fake);
        assert_eq!(the_search(&searches).results()[0].judgement.verdict, Verdict::Fake);
        assert!(!is_satisfied(the_search(&searches)), "a search that found only a fake goes on");
        let mut both = fake.clone();
        both.extend((1..=6).map(|n| (1, Ipv4Addr::new(198, 51, 100, n), 6346)));
        assert!(is_satisfied(the_search(&search_from(&both))), "the genuine file has its sources");
        both.push((0, Ipv4Addr::new(203, 0, 114, 1), 6346));
        assert!(is_satisfied(the_search(&search_from(&both))), "a fake with one source holds nothing open");
    }
}
