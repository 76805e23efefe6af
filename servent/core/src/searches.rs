//! Our own searches and the results they gathered, grouped by content.
//!
//! Many servents answer with the same file; a person wants one line per
//! file with every source listed. Results are found by SHA-256 and by SHA-1
//! (a file one source names by SHA-1 only and another by both is one
//! result, as long as no hash contradicts), else by name and size. Each result is judged
//! ([`crate::trust`]) from the signature its hits carry, before anything is
//! downloaded: a result keeps the best verdict any of its sources earned,
//! since the content is the same whoever sends it and a rival must not be
//! able to mark genuine content fake by sending a bad signature with it.
//! Everything here is bounded: the number of searches kept, results per
//! search, sources and signatures per result.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use signing_tool::Minisig;

use crate::address::DialRule;
use crate::push::push_only_key;
use crate::trust::{Content, Judgement, TrustStore};
use crate::wire::{GgepId, Guid, QueryHit, QueryResult, Urn};

/// Searches remembered; older ones are forgotten.
pub const MAX_SEARCHES: usize = 64;
/// Distinct results kept per search.
pub const MAX_RESULTS_PER_SEARCH: usize = 1000;
/// Sources kept per result.
pub const MAX_SOURCES: usize = 100;
/// Servents kept per source address of a result: enough for a few behind
/// one NAT, too few for one host under many GUIDs to crowd others out.
pub const MAX_SERVENTS_PER_ADDRESS: usize = 4;
/// Distinct signatures kept per result, to judge again when the trusted keys change.
pub const MAX_SIGNATURES: usize = 4;

/// The signature a result carried, as it arrived: its bytes (what tells
/// two apart) and what they parse to.
#[derive(Clone, Debug)]
pub struct Carried {
    bytes: Vec<u8>,
    /// The signature, or why the extension could not be read.
    signature: Result<Arc<Minisig>, String>,
}

impl Carried {
    /// The signature in a result's GGEP block, if it has one.
    pub fn of(result: &QueryResult) -> Option<Carried> {
        let bytes = result.ggep.get(GgepId::RELEASE_SIGNATURE)?.to_vec();
        let signature = Minisig::from_compact(&bytes).map(Arc::new).map_err(|e| e.to_string());
        Some(Carried { bytes, signature })
    }

    /// The signature, or why the extension could not be read.
    pub fn signature(&self) -> Result<Arc<Minisig>, &str> {
        self.signature.as_ref().map(Arc::clone).map_err(String::as_str)
    }

    fn judge(carried: Option<&Carried>, content: Content, trust: &TrustStore) -> Judgement {
        match carried.map(|c| &c.signature) {
            None => trust.judge(None, content),
            Some(Ok(minisig)) => trust.judge(Some(minisig), content),
            Some(Err(why)) => Judgement::unreadable(why),
        }
    }
}

/// The same bytes: Ed25519 signatures are malleable, so this says "the same
/// extension", never "the same release".
impl PartialEq for Carried {
    fn eq(&self, other: &Carried) -> bool {
        self.bytes == other.bytes
    }
}

/// One file found by a search, with all the servents that have it.
#[derive(Clone, Debug, Serialize)]
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
    /// Its Tiger tree root (base32), when a source gave one (a bitprint).
    pub tth: Option<search::thex::Root>,
    /// Servents that have it, as `ip:port`: the addresses their hits named.
    pub sources: Vec<SocketAddrV4>,
    /// The servent GUID each of `sources` gave, in the same order: what a
    /// PUSH to it needs.
    #[serde(skip)]
    servents: Vec<Guid>,
    /// Those of `sources` the user named (a browsed host): dialled as
    /// named, whatever the dial rule says ([`Self::dialable`]).
    #[serde(skip)]
    named: Vec<SocketAddrV4>,
    /// The source a Browse of this result connects to, as the page offers
    /// it ([`Self::with_browse`]); none when the dial rule refuses every
    /// source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browse: Option<SocketAddrV4>,
    /// Whether it is genuine, as far as can be told before downloading:
    /// `verdict`, `reason`, `publisher`, `version`.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// The signature the verdict rests on, passed on to the download.
    #[serde(skip)]
    pub signature: Option<Arc<Minisig>>,
    /// Every distinct signature its sources sent (a few), for judging again.
    #[serde(skip)]
    carried: Vec<Option<Carried>>,
}

impl SearchResult {
    /// A result from no search, for tests of what uses results.
    pub fn judged(name: &str, size: u64, judgement: Judgement) -> SearchResult {
        let (sha1, sha256, sources, servents, named, signature, carried) =
            (None, None, Vec::new(), Vec::new(), Vec::new(), None, Vec::new());
        SearchResult {
            name: name.into(),
            size,
            sha1,
            sha256,
            tth: None,
            sources,
            servents,
            named,
            browse: None,
            judgement,
            signature,
            carried,
        }
    }

    /// The result as a download may use it under `rule`: a source the rule
    /// refuses (our machine, our LAN, our own IP) and the user did not name
    /// is named by its push-only key instead ([`push_only_key`]), reached by PUSH or not at all, as a
    /// hit naming it is offered ([`crate::node::Action::PushSource`]).
    /// Each servent keeps its own key, however many named the same refused
    /// address; an allowed address is listed once.
    pub fn dialable(mut self, rule: &DialRule) -> SearchResult {
        let named = std::mem::take(&mut self.sources);
        for (source, servent) in named.into_iter().zip(std::mem::take(&mut self.servents)) {
            let source = if self.dials(source, rule) { source } else { push_only_key(servent) };
            if !self.sources.contains(&source) {
                self.sources.push(source);
                self.servents.push(servent);
            }
        }
        self
    }

    /// The result as the page shows it under `rule`: [`Self::browse`] is
    /// its first source the user named or the rule allows. A hit may name
    /// any address, our router's among them: one click on Browse must not
    /// send a request there because a stranger said so.
    pub fn with_browse(mut self, rule: &DialRule) -> SearchResult {
        self.browse = self.sources.iter().copied().find(|&s| self.dials(s, rule));
        self
    }

    /// Whether `source` is connected to as named: the user named it, or
    /// `rule` allows it.
    fn dials(&self, source: SocketAddrV4, rule: &DialRule) -> bool {
        self.named.contains(&source) || rule.allows(source)
    }

    /// Adds a source with the servent GUID its hit gave (`named` when the
    /// user named its address), unless that servent is known at that
    /// address, the address has [`MAX_SERVENTS_PER_ADDRESS`] or the result
    /// has [`MAX_SOURCES`].
    /// Servents behind different NATs may name one private address: each
    /// is a source of its own, reached by PUSH to its GUID ([`Self::dialable`]).
    fn add_source(&mut self, source: SocketAddrV4, servent: Guid, named: bool) {
        let known = self.sources.iter().zip(&self.servents).any(|(s, g)| *s == source && *g == servent);
        let at_address = self.sources.iter().filter(|s| **s == source).count();
        if self.sources.len() < MAX_SOURCES && at_address < MAX_SERVENTS_PER_ADDRESS && !known {
            self.sources.push(source);
            self.servents.push(servent);
        }
        if named && self.sources.contains(&source) && !self.named.contains(&source) {
            self.named.push(source);
        }
    }

    fn content(&self) -> Content {
        let sha256 = match self.sha256 {
            Some(Urn::Sha256(digest)) => Some(digest),
            _ => None,
        };
        Content { size: self.size, sha256, tth: self.tth }
    }

    /// Takes a signature a source sent into account: judged, kept if new,
    /// and the result's verdict if it is better than the one it had.
    fn offer(&mut self, carried: Option<Carried>, trust: &TrustStore) {
        if self.carried.contains(&carried) || self.carried.len() >= MAX_SIGNATURES {
            return;
        }
        let judgement = Carried::judge(carried.as_ref(), self.content(), trust);
        if self.carried.is_empty() || judgement.verdict > self.judgement.verdict {
            self.judgement = judgement;
            self.signature = carried.as_ref().and_then(|c| c.signature.as_ref().ok()).cloned();
        }
        self.carried.push(carried);
    }

    /// Whether content named by these hashes may be this result's: no hash
    /// both sides name differs. One source may name a file by SHA-1 only,
    /// another by SHA-1 and SHA-256; the same SHA-1 with another SHA-256
    /// is other content (or a lie) and stays apart.
    fn agrees(&self, sha1: Option<Urn>, sha256: Option<Urn>) -> bool {
        let same = |ours: Option<Urn>, theirs: Option<Urn>| ours.zip(theirs).is_none_or(|(a, b)| a == b);
        same(self.sha1, sha1) && same(self.sha256, sha256)
    }

    /// Judges every signature seen again, with the keys trusted now.
    fn rejudge(&mut self, trust: &TrustStore) {
        let carried = std::mem::take(&mut self.carried);
        for c in carried {
            self.offer(c, trust);
        }
    }
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
    /// Whether the user named its sources (a browse of the host they typed).
    browse: bool,
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
            browse: false,
        }
    }

    /// The results so far, in the order they first arrived.
    pub fn results(&self) -> &[SearchResult] {
        &self.results
    }

    /// Adds every result of a QueryHit that arrived at `now`, merging with
    /// what we have and judging the signatures they carry.
    pub fn add(&mut self, hit: &QueryHit, now: Instant, trust: &TrustStore) {
        self.hits_received += 1;
        self.first_hit_after.get_or_insert(now.duration_since(self.started));
        let source = SocketAddrV4::new(hit.ip, hit.port);
        for result in &hit.results {
            let sha1 = result.urns.iter().find(|u| matches!(u, Urn::Sha1(_))).copied();
            let sha256 = result.urns.iter().find(|u| matches!(u, Urn::Sha256(_))).copied();
            let keys: Vec<ContentKey> = match (sha256, sha1) {
                (None, None) => vec![ContentKey::NameSize(result.name.to_lowercase(), result.size)],
                _ => sha256.map(ContentKey::Sha256).into_iter().chain(sha1.map(ContentKey::Sha1)).collect(),
            };
            let carried = Carried::of(result);
            let known = keys.iter().filter_map(|key| self.by_key.get(key)).copied();
            if let Some(i) = known.into_iter().find(|&i| self.results[i].agrees(sha1, sha256)) {
                let existing = &mut self.results[i];
                if existing.size == result.size {
                    existing.add_source(source, hit.servent_guid, self.browse);
                    existing.sha1 = existing.sha1.or(sha1);
                    existing.sha256 = existing.sha256.or(sha256);
                    existing.tth = existing.tth.or(result.tth());
                    existing.offer(carried, trust);
                    for key in keys {
                        self.by_key.entry(key).or_insert(i);
                    }
                }
                continue;
            }
            if self.results.len() >= MAX_RESULTS_PER_SEARCH {
                continue;
            }
            for key in keys {
                self.by_key.entry(key).or_insert(self.results.len());
            }
            let mut found = SearchResult {
                name: result.name.clone(),
                size: result.size,
                sha1,
                sha256,
                tth: result.tth(),
                sources: vec![source],
                servents: vec![hit.servent_guid],
                named: if self.browse { vec![source] } else { Vec::new() },
                browse: None,
                judgement: Judgement::unsigned(),
                signature: None,
                carried: Vec::new(),
            };
            found.offer(carried, trust);
            self.results.push(found);
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
        self.remember(guid, Search::new(text, now));
    }

    /// Starts remembering the listing of a host the user browsed at `now`:
    /// the user named the address its files come from.
    pub fn start_browse(&mut self, guid: Guid, label: String, now: Instant) {
        self.remember(guid, Search { browse: true, ..Search::new(label, now) });
    }

    fn remember(&mut self, guid: Guid, search: Search) {
        if self.order.len() >= MAX_SEARCHES {
            if let Some(oldest) = self.order.pop_front() {
                self.searches.remove(&oldest);
            }
        }
        self.searches.insert(guid, search);
        self.order.push_back(guid);
    }

    /// Adds a QueryHit to its search, if we still remember it.
    pub fn add(&mut self, guid: Guid, hit: &QueryHit, now: Instant, trust: &TrustStore) {
        if let Some(search) = self.searches.get_mut(&guid) {
            search.add(hit, now, trust);
        }
    }

    /// Judges every result again, after the trusted keys changed.
    pub fn rejudge(&mut self, trust: &TrustStore) {
        for search in self.searches.values_mut() {
            search.results.iter_mut().for_each(|r| r.rejudge(trust));
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
                    for (source, servent) in result.sources.iter().zip(&result.servents) {
                        found.add_source(*source, *servent, result.named.contains(source));
                    }
                    found.sha1 = found.sha1.or(result.sha1);
                    found.sha256 = found.sha256.or(result.sha256);
                    if result.judgement.verdict > found.judgement.verdict {
                        found.judgement = result.judgement.clone();
                        found.signature = result.signature.clone();
                    }
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

    use signing_tool::SecretKey;

    use super::*;
    use crate::trust::Verdict;

    fn hit(ip: u8, results: Vec<QueryResult>) -> QueryHit {
        QueryHit {
            port: 6346,
            ip: Ipv4Addr::new(192, 0, 2, ip),
            speed: 0,
            results,
            trailer: None,
            servent_guid: Guid([ip; 16]),
            original: Default::default(),
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
        search.add(
            &hit(1, vec![result("SEBLINUX-base-1.0.tar", 10, urns.clone())]),
            now + Duration::from_millis(5),
            &TrustStore::in_memory(),
        );
        search.add(
            &hit(2, vec![result("seblinux-base.tar", 10, urns)]),
            now + Duration::from_millis(9),
            &TrustStore::in_memory(),
        );
        search.add(&hit(2, vec![result("other.tar", 10, vec![Urn::Sha1([3; 20])])]), now, &TrustStore::in_memory());
        let results = search.results();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].name, "SEBLINUX-base-1.0.tar");
        assert_eq!(results[0].sources.len(), 2);
        assert_eq!(search.hits_received, 3);
        assert_eq!(search.first_hit_after, Some(Duration::from_millis(5)));
    }

    #[test]
    fn a_file_named_by_sha1_only_and_by_sha1_and_sha256_is_one_result() {
        let (sha1, sha256) = (Urn::Sha1([1; 20]), Urn::Sha256([2; 32]));
        let trust = TrustStore::in_memory();
        for (first, second) in [(vec![sha1], vec![sha1, sha256]), (vec![sha1, sha256], vec![sha1])] {
            let now = Instant::now();
            let mut search = Search::new("seblinux".into(), now);
            search.add(&hit(1, vec![result("seblinux.tar", 10, first)]), now, &trust);
            search.add(&hit(2, vec![result("seblinux.tar", 10, second)]), now, &trust);
            search.add(&hit(3, vec![result("seblinux.tar", 10, vec![sha256])]), now, &trust);
            let results = search.results();
            assert_eq!(results.len(), 1, "{results:?}");
            assert_eq!(results[0].sources.len(), 3);
            assert_eq!((results[0].sha1, results[0].sha256), (Some(sha1), Some(sha256)));
        }
    }

    #[test]
    fn the_same_sha1_with_another_sha256_stays_apart() {
        let trust = TrustStore::in_memory();
        let now = Instant::now();
        let mut search = Search::new("seblinux".into(), now);
        let named = |sha256: u8| vec![Urn::Sha1([1; 20]), Urn::Sha256([sha256; 32])];
        search.add(&hit(1, vec![result("seblinux.tar", 10, named(2))]), now, &trust);
        search.add(&hit(2, vec![result("seblinux.tar", 10, named(3))]), now, &trust);
        search.add(&hit(3, vec![result("seblinux.tar", 10, vec![Urn::Sha1([1; 20])])]), now, &trust);
        let results = search.results();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].sources.len(), 2, "the SHA-1-only source joins the first it agrees with");
    }

    #[test]
    fn same_source_is_listed_once() {
        let mut search = Search::new("x".into(), Instant::now());
        let r = result("a", 1, vec![Urn::Sha1([1; 20])]);
        search.add(&hit(1, vec![r.clone()]), Instant::now(), &TrustStore::in_memory());
        search.add(&hit(1, vec![r]), Instant::now(), &TrustStore::in_memory());
        assert_eq!(search.results()[0].sources.len(), 1);
    }

    /// One host answering from its one public address under a new servent
    /// GUID each time must not fill the result's [`MAX_SOURCES`] with that
    /// address (the download would have one address to dial, as
    /// [`SearchResult::dialable`] lists it once): an address keeps
    /// [`MAX_SERVENTS_PER_ADDRESS`] servents, and an honest servent
    /// answering after it is still a source.
    #[test]
    fn attack_one_address_under_many_guids_does_not_crowd_out_an_honest_source() {
        let now = Instant::now();
        let mut search = Search::new("x".into(), now);
        let r = result("a", 1, vec![Urn::Sha1([1; 20])]);
        for n in 0..=u8::try_from(MAX_SOURCES).unwrap() {
            let mut flood = hit(1, vec![r.clone()]);
            flood.servent_guid = Guid([n; 16]);
            search.add(&flood, now, &TrustStore::in_memory());
        }
        search.add(&hit(2, vec![r]), now, &TrustStore::in_memory());
        let dialable = search.results()[0].clone().dialable(&DialRule::new(false));
        let honest = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 6346);
        assert!(dialable.sources.contains(&honest), "sources: {:?}", dialable.sources);
    }

    #[test]
    fn attack_servents_flooding_one_address_under_new_guids_stay_within_the_bound_of_sources() {
        let now = Instant::now();
        let mut search = Search::new("x".into(), now);
        let r = result("a", 1, vec![Urn::Sha1([1; 20])]);
        for n in 0..=u8::try_from(MAX_SOURCES + 5).unwrap() {
            let mut hit = hit(1, vec![r.clone()]);
            hit.servent_guid = Guid([n; 16]);
            search.add(&hit, now, &TrustStore::in_memory());
        }
        let found = &search.results()[0];
        assert_eq!(found.sources.len(), MAX_SERVENTS_PER_ADDRESS);
        let dialable = found.clone().dialable(&DialRule::new(false));
        assert_eq!(dialable.sources, [SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 6346)], "a public address once");
    }

    /// A browse names its host's address as the user typed it: that source
    /// is dialled as named, while a LAN address a stranger's hit named for
    /// the same file is still given as its push-only key.
    #[test]
    fn a_browsed_address_is_dialled_as_named_and_a_strangers_is_not() {
        let now = Instant::now();
        let mut searches = Searches::default();
        let r = result("a", 1, vec![Urn::Sha1([1; 20])]);
        let (browsed, searched) = (Guid([1; 16]), Guid([2; 16]));
        let mut listed = hit(1, vec![r.clone()]);
        listed.ip = Ipv4Addr::new(192, 168, 1, 20);
        searches.start_browse(browsed, "browse 192.168.1.20:6346".into(), now);
        searches.add(browsed, &listed, now, &TrustStore::in_memory());
        let mut stranger = hit(2, vec![r]);
        stranger.ip = Ipv4Addr::new(192, 168, 1, 21);
        searches.start(searched, "a".into(), now);
        searches.add(searched, &stranger, now, &TrustStore::in_memory());
        let found = searches.find(&[Urn::Sha1([1; 20])]).unwrap().dialable(&DialRule::new(false));
        let named = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 20), 6346);
        let mut sources = found.sources;
        sources.sort();
        assert_eq!(sources, [push_only_key(stranger.servent_guid), named], "in any order");
    }

    /// A stranger's hit naming a LAN address (a router's web page, say)
    /// offers no Browse of it; a public source, or the LAN host the user
    /// browsed himself, is offered.
    #[test]
    fn attack_a_hit_naming_a_lan_address_offers_no_browse_of_it() {
        let now = Instant::now();
        let mut searches = Searches::default();
        let rule = DialRule::new(false);
        let (browsed, searched) = (Guid([1; 16]), Guid([2; 16]));
        let mut router = hit(1, vec![result("a", 1, vec![Urn::Sha1([1; 20])])]);
        router.ip = Ipv4Addr::new(192, 168, 1, 1);
        router.port = 80;
        searches.start(searched, "a".into(), now);
        searches.add(searched, &router, now, &TrustStore::in_memory());
        let found = searches.find(&[Urn::Sha1([1; 20])]).unwrap();
        assert_eq!(found.clone().with_browse(&rule).browse, None);
        let json = serde_json::to_value(found.clone().with_browse(&rule)).unwrap();
        assert!(json.get("browse").is_none(), "{json}");

        searches.add(searched, &hit(2, vec![result("a", 1, vec![Urn::Sha1([1; 20])])]), now, &TrustStore::in_memory());
        let public = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 6346);
        assert_eq!(searches.find(&[Urn::Sha1([1; 20])]).unwrap().with_browse(&rule).browse, Some(public));

        let mut listed = hit(3, vec![result("b", 1, vec![Urn::Sha1([2; 20])])]);
        listed.ip = Ipv4Addr::new(192, 168, 1, 20);
        searches.start_browse(browsed, "browse 192.168.1.20:6346".into(), now);
        searches.add(browsed, &listed, now, &TrustStore::in_memory());
        let named = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 20), 6346);
        assert_eq!(searches.find(&[Urn::Sha1([2; 20])]).unwrap().with_browse(&rule).browse, Some(named));
    }

    #[test]
    fn result_serializes_with_urn_text() {
        let mut search = Search::new("x".into(), Instant::now());
        search.add(&hit(1, vec![result("a", 1, vec![Urn::Sha1([0; 20])])]), Instant::now(), &TrustStore::in_memory());
        let json = serde_json::to_value(&search.results()[0]).unwrap();
        assert_eq!(json["sha1"], "urn:sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(json["sha256"], serde_json::Value::Null);
        assert_eq!(json["sources"][0], "192.0.2.1:6346");
        assert_eq!(json["verdict"], "unsigned");
    }

    fn signed_result(publisher: &SecretKey, content: &[u8], name: &str) -> QueryResult {
        use sha2::Digest;
        let mut signer = signing_tool::Signer::new();
        signer.update(content);
        let meta = signing_tool::ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.0".into(), keywords: vec![] };
        let minisig = signer.finish(publisher, name, Some(&meta), 1_700_000_000).unwrap();
        let urns = vec![Urn::Sha256(sha2::Sha256::digest(content).into())];
        let mut result = result(name, content.len() as u64, urns);
        result.ggep.insert(GgepId::RELEASE_SIGNATURE, minisig.to_compact());
        result
    }

    #[test]
    fn result_keeps_the_best_verdict_its_sources_earned_and_is_judged_again_when_keys_change() {
        let publisher = SecretKey::generate().unwrap();
        let mut trust = TrustStore::in_memory();
        let genuine = signed_result(&publisher, b"genuine", "SEBLINUX-base-1.0.tar");
        let mut tampered = genuine.clone();
        let mut compact = tampered.ggep.get(GgepId::RELEASE_SIGNATURE).unwrap().to_vec();
        let last = compact.len() - 1;
        compact[last] ^= 1;
        tampered.ggep.insert(GgepId::RELEASE_SIGNATURE, compact);
        let mut unsigned = genuine.clone();
        unsigned.ggep = Default::default();

        let mut search = Search::new("seblinux".into(), Instant::now());
        search.add(&hit(1, vec![unsigned]), Instant::now(), &trust);
        assert_eq!(search.results()[0].judgement.verdict, Verdict::Unsigned);
        search.add(&hit(2, vec![genuine]), Instant::now(), &trust);
        assert_eq!(search.results()[0].judgement.verdict, Verdict::Untrusted);

        trust.add(publisher.public_key(), vec![]).unwrap();
        let mut searches = Searches::default();
        searches.searches.insert(Guid([0; 16]), search);
        searches.rejudge(&trust);
        let search = searches.searches.get_mut(&Guid([0; 16])).unwrap();
        assert_eq!(search.results()[0].judgement.verdict, Verdict::Verified);
        // A rival's bad signature on the same content does not make it fake.
        search.add(&hit(3, vec![tampered.clone()]), Instant::now(), &trust);
        let result = &search.results()[0];
        assert_eq!((result.judgement.verdict, result.sources.len()), (Verdict::Verified, 3));
        assert!(result.signature.is_some());

        let mut alone = Search::new("seblinux".into(), Instant::now());
        alone.add(&hit(3, vec![tampered]), Instant::now(), &trust);
        assert_eq!(alone.results()[0].judgement.verdict, Verdict::Fake);
    }

    #[test]
    fn signature_cut_short_is_fake_with_its_reason() {
        let publisher = SecretKey::generate().unwrap();
        let mut cut = signed_result(&publisher, b"genuine", "a.tar");
        let compact = cut.ggep.get(GgepId::RELEASE_SIGNATURE).unwrap()[..100].to_vec();
        cut.ggep.insert(GgepId::RELEASE_SIGNATURE, compact);
        let mut search = Search::new("a".into(), Instant::now());
        search.add(&hit(1, vec![cut]), Instant::now(), &TrustStore::in_memory());
        let judgement = &search.results()[0].judgement;
        assert_eq!(judgement.verdict, Verdict::Fake);
        assert!(judgement.reason.contains("cannot be read"), "{}", judgement.reason);
    }

    #[test]
    fn results_per_search_are_bounded() {
        let mut search = Search::new("x".into(), Instant::now());
        for i in 0..(MAX_RESULTS_PER_SEARCH as u64 + 10) {
            search.add(&hit(1, vec![result("f", i, vec![])]), Instant::now(), &TrustStore::in_memory());
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
