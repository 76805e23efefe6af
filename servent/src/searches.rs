//! Our own searches and the results they gathered, grouped by content.
//!
//! Many servents answer with the same file; a person wants one line per
//! file with every source listed. Results are keyed by SHA-256 when the hit
//! carries it, else by SHA-1, else by name and size. Everything here is
//! bounded: the number of searches kept, results per search, sources per
//! result.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::wire::{Guid, QueryHit, Urn};

/// Searches remembered; older ones are forgotten.
pub const MAX_SEARCHES: usize = 64;
/// Distinct results kept per search.
pub const MAX_RESULTS_PER_SEARCH: usize = 1000;
/// Sources kept per result.
pub const MAX_SOURCES: usize = 100;

/// What we think of a result before downloading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The hit carries no signature.
    Unsigned,
}

/// One file found by a search, with all the servents that have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchResult {
    /// The name the first source gave it.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-1 URN, when a source gave one.
    #[serde(serialize_with = "urn_text")]
    pub sha1: Option<Urn>,
    /// Its SHA-256 URN, when a source gave one.
    #[serde(serialize_with = "urn_text")]
    pub sha256: Option<Urn>,
    /// Servents that have it, as `ip:port`.
    pub sources: Vec<SocketAddrV4>,
    /// Whether it is genuine, as far as can be told before downloading.
    pub verdict: Verdict,
}

fn urn_text<S: serde::Serializer>(urn: &Option<Urn>, s: S) -> Result<S::Ok, S::Error> {
    match urn {
        Some(urn) => s.serialize_str(&urn.to_string()),
        None => s.serialize_none(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ContentKey {
    Sha256(Urn),
    Sha1(Urn),
    NameSize(String, u64),
}

/// One of our searches.
#[derive(Debug)]
pub struct Search {
    /// What was asked, as the user typed it.
    pub text: String,
    results: Vec<SearchResult>,
    by_key: HashMap<ContentKey, usize>,
    /// QueryHit messages received for it.
    pub hits_received: u64,
    started: Instant,
    /// How long the first QueryHit took to arrive.
    pub first_hit_after: Option<Duration>,
}

impl Search {
    fn new(text: String, now: Instant) -> Search {
        Search {
            text,
            results: Vec::new(),
            by_key: HashMap::new(),
            hits_received: 0,
            started: now,
            first_hit_after: None,
        }
    }

    /// The results so far, in the order they first arrived.
    pub fn results(&self) -> &[SearchResult] {
        &self.results
    }

    /// Adds every result of a QueryHit that arrived at `now`, merging with
    /// what we have.
    pub fn add(&mut self, hit: &QueryHit, now: Instant) {
        self.hits_received += 1;
        self.first_hit_after.get_or_insert(now.duration_since(self.started));
        let source = SocketAddrV4::new(hit.ip, hit.port);
        for result in &hit.results {
            let sha1 = result.urns.iter().find(|u| matches!(u, Urn::Sha1(_))).copied();
            let sha256 = result.urns.iter().find(|u| matches!(u, Urn::Sha256(_))).copied();
            let key = match (sha256, sha1) {
                (Some(urn), _) => ContentKey::Sha256(urn),
                (None, Some(urn)) => ContentKey::Sha1(urn),
                (None, None) => ContentKey::NameSize(result.name.to_lowercase(), result.size),
            };
            if let Some(&i) = self.by_key.get(&key) {
                let existing = &mut self.results[i];
                if existing.size == result.size
                    && existing.sources.len() < MAX_SOURCES
                    && !existing.sources.contains(&source)
                {
                    existing.sources.push(source);
                }
                continue;
            }
            if self.results.len() >= MAX_RESULTS_PER_SEARCH {
                continue;
            }
            self.by_key.insert(key, self.results.len());
            self.results.push(SearchResult {
                name: result.name.clone(),
                size: result.size,
                sha1,
                sha256,
                sources: vec![source],
                verdict: Verdict::Unsigned,
            });
        }
    }
}

/// The searches we remember, the oldest forgotten first.
#[derive(Debug, Default)]
pub struct Searches {
    searches: HashMap<Guid, Search>,
    order: VecDeque<Guid>,
}

impl Searches {
    /// Starts remembering a search sent at `now`.
    pub fn start(&mut self, guid: Guid, text: String, now: Instant) {
        if self.order.len() >= MAX_SEARCHES {
            if let Some(oldest) = self.order.pop_front() {
                self.searches.remove(&oldest);
            }
        }
        self.searches.insert(guid, Search::new(text, now));
        self.order.push_back(guid);
    }

    /// Adds a QueryHit to its search, if we still remember it.
    pub fn add(&mut self, guid: Guid, hit: &QueryHit, now: Instant) {
        if let Some(search) = self.searches.get_mut(&guid) {
            search.add(hit, now);
        }
    }

    /// What our searches found of content with any of these URNs: its name
    /// and size, and every source that offered it.
    pub fn find(&self, urns: &[Urn]) -> Option<SearchResult> {
        let mut found: Option<SearchResult> = None;
        let matching = self
            .searches
            .values()
            .flat_map(|s| s.results())
            .filter(|r| urns.iter().any(|u| r.sha1.as_ref() == Some(u) || r.sha256.as_ref() == Some(u)));
        for result in matching {
            match &mut found {
                None => found = Some(result.clone()),
                Some(found) if found.size == result.size => {
                    for source in &result.sources {
                        if found.sources.len() < MAX_SOURCES && !found.sources.contains(source) {
                            found.sources.push(*source);
                        }
                    }
                    found.sha1 = found.sha1.or(result.sha1);
                    found.sha256 = found.sha256.or(result.sha256);
                }
                Some(_) => {}
            }
        }
        found
    }

    /// A search by its GUID.
    pub fn get(&self, guid: &Guid) -> Option<&Search> {
        self.searches.get(guid)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::QueryResult;

    fn hit(ip: u8, results: Vec<QueryResult>) -> QueryHit {
        QueryHit {
            port: 6346,
            ip: Ipv4Addr::new(192, 0, 2, ip),
            speed: 0,
            results,
            trailer: None,
            servent_guid: Guid([ip; 16]),
        }
    }

    fn result(name: &str, size: u64, urns: Vec<Urn>) -> QueryResult {
        QueryResult { index: 1, size, name: name.into(), urns, ggep: Default::default() }
    }

    #[test]
    fn same_content_from_two_servents_is_one_result_with_two_sources() {
        let urns = vec![Urn::Sha1([1; 20]), Urn::Sha256([2; 32])];
        let now = Instant::now();
        let mut search = Search::new("seblinux".into(), now);
        search.add(&hit(1, vec![result("SEBLINUX-base-1.0.tar", 10, urns.clone())]), now + Duration::from_millis(5));
        search.add(&hit(2, vec![result("seblinux-base.tar", 10, urns)]), now + Duration::from_millis(9));
        search.add(&hit(2, vec![result("other.tar", 10, vec![Urn::Sha1([3; 20])])]), now);
        let results = search.results();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].name, "SEBLINUX-base-1.0.tar");
        assert_eq!(results[0].sources.len(), 2);
        assert_eq!(search.hits_received, 3);
        assert_eq!(search.first_hit_after, Some(Duration::from_millis(5)));
    }

    #[test]
    fn same_source_is_listed_once() {
        let mut search = Search::new("x".into(), Instant::now());
        let r = result("a", 1, vec![Urn::Sha1([1; 20])]);
        search.add(&hit(1, vec![r.clone()]), Instant::now());
        search.add(&hit(1, vec![r]), Instant::now());
        assert_eq!(search.results()[0].sources.len(), 1);
    }

    #[test]
    fn result_serializes_with_urn_text() {
        let mut search = Search::new("x".into(), Instant::now());
        search.add(&hit(1, vec![result("a", 1, vec![Urn::Sha1([0; 20])])]), Instant::now());
        let json = serde_json::to_value(&search.results()[0]).unwrap();
        assert_eq!(json["sha1"], "urn:sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(json["sha256"], serde_json::Value::Null);
        assert_eq!(json["sources"][0], "192.0.2.1:6346");
        assert_eq!(json["verdict"], "unsigned");
    }

    #[test]
    fn results_per_search_are_bounded() {
        let mut search = Search::new("x".into(), Instant::now());
        for i in 0..(MAX_RESULTS_PER_SEARCH as u64 + 10) {
            search.add(&hit(1, vec![result("f", i, vec![])]), Instant::now());
        }
        assert_eq!(search.results().len(), MAX_RESULTS_PER_SEARCH);
    }

    #[test]
    fn oldest_search_is_forgotten() {
        let mut searches = Searches::default();
        for i in 0..=MAX_SEARCHES {
            searches.start(Guid([i as u8; 16]), format!("{i}"), Instant::now());
        }
        assert!(searches.get(&Guid([0; 16])).is_none());
        assert!(searches.get(&Guid([1; 16])).is_some());
    }
}
