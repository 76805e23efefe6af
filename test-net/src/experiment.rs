//! The experiment: the plan a seed makes, and the measurement of every
//! query on the running network.
//!
//! A [`Plan`] is everything decided in advance from the seed: the graph,
//! the catalog and its holders, which node asks for which item at each
//! step, which nodes leave and rejoin at which step, and which node floods.
//! The same seed gives the same plan, whatever the machine does.
//!
//! Each query is then measured twice on the same network:
//! - **flooding** with the run's TTL, the baseline;
//! - **expanding ring**: TTL 1, then 2, 3… up to the run's TTL, each ring a
//!   new Query, until a ring brings the genuine item.
//!
//! For each, the counters of every servent are read before and after:
//! messages are the Query descriptors written to sockets, duplicates the
//! Queries dropped as already seen, both summed over all nodes. A query is
//! over when no servent has sent a Query, and no QueryHit has reached the
//! asking node, for [`Settings::quiet`] (checked every [`POLL`]): the hits
//! of the farthest holders travel back after the flood has died out. That
//! quiet period is the measurement's only timing
//! assumption, and a query that never goes quiet gives up after
//! [`SETTLE_LIMIT`] and is counted as unsettled. The expanding ring's
//! first-hit latency is the time its unsuccessful rings took (each until
//! quiet, as a real servent would wait a timeout) plus the first hit of the
//! ring that succeeded.
//!
//! Success means the genuine item was found: a result with its SHA-256,
//! not merely its name, which fakers answer with too.
//!
//! When the network has fakers ([`Settings::fakes`]), the asking node, once
//! its flood is quiet, picks its best result for the item (the highest
//! verdict: verified, untrusted, unsigned, fake) and downloads it as a
//! SEBLINUX user does, keeping only verified content
//! ([`Keep::Verified`]); the harness then compares the kept bytes with the
//! genuine item's ([`Fetch`]). A servent re-queries the network by URN for
//! a download only after its re-query interval when a search found the
//! sources, and these downloads end long before it; the harness still
//! waits for the network to go quiet again before it measures anything
//! else, so that no download traffic is counted against a query.
//!
//! Churn happens on the query clock: nodes due back rejoin before a step's
//! query; nodes due to leave are stopped right after the step's flood is
//! sent, so they vanish with the query under way.
//!
//! The flooder gets a phase of its own after the queries, because its
//! traffic would otherwise be counted against the honest queries: one node
//! starts searches as fast as it can (at least [`FLOOD_MINIMUM`]) while the
//! first queries are asked again by flooding, each given [`ATTACK_WAIT`] to
//! find its item.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::task;
use rand::rngs::StdRng;
use rand::seq::{index, SliceRandom};
use rand::SeedableRng;
use serde::Serialize;
use servent::node::{NodeError, NodeHandle, SearchSnapshot};
use servent::searches::SearchResult;
use servent::transfer::download::{DownloadState, Keep};
use servent::trust::Verdict;

use crate::catalog::{Catalog, Distribution, Item};
use crate::churn::Schedule;
use crate::content::Content;
use crate::net::{check_cancel, Net, NetConfig, NodeCounts, Snapshot};
use crate::topology::{Shape, Topology};
use crate::{rss_mb, Error, Settings};

/// How often the counters are read while waiting for quiet.
pub const POLL: Duration = Duration::from_millis(20);
/// The longest a query may take to go quiet.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// Queries asked again while the flooder floods.
pub const ATTACK_QUERIES: usize = 50;
/// How long a query under attack may take to find its item.
pub const ATTACK_WAIT: Duration = Duration::from_secs(5);
/// Searches the flooder starts at least, however soon the honest queries
/// are over. Each search is one Query to every neighbour, so each gets six
/// times the burst of own queries it allows; its allowance refills at
/// [`QUERIES_PER_SECOND`](servent::routing::QUERIES_PER_SECOND) and would
/// catch up only if these searches took 50 s (they take about one). It is
/// also more than a neighbour reads before it judges a link's traffic
/// ([`JUNK_MIN_MESSAGES`](servent_core::node::JUNK_MIN_MESSAGES)), so in
/// every run the neighbours cut the flooder as useless, and the count of
/// its limited queries must outlive its links.
pub const FLOOD_MINIMUM: u64 = 6 * servent::routing::QUERY_BURST as u64;
const _: () = assert!(
    FLOOD_MINIMUM > (servent::routing::QUERY_BURST + 10 * servent::routing::QUERIES_PER_SECOND) as u64
        && FLOOD_MINIMUM > servent_core::node::JUNK_MIN_MESSAGES,
    "the flooder's minimum must outrun a neighbour's burst, ten seconds of its refill, and its junk rule's minimum"
);
/// The longest a download may take before it is cancelled and counted as
/// failed (the servent itself waits minutes for a source to come back).
pub const DOWNLOAD_LIMIT: Duration = Duration::from_secs(30);

/// One query to ask: who asks, for what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedQuery {
    /// The asking node.
    pub node: usize,
    /// The catalog item asked for.
    pub item: usize,
}

/// Everything a seed decides.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The graph.
    pub topology: Topology,
    /// The files and their holders.
    pub catalog: Catalog,
    /// One query per step.
    pub queries: Vec<PlannedQuery>,
    /// Who leaves and rejoins at which step.
    pub churn: Schedule,
    /// The node that floods, if any.
    pub flooder: Option<usize>,
    /// The nodes that answer with fakes, in increasing order; they hold no
    /// genuine file, never ask and never churn.
    pub fakers: Vec<usize>,
}

impl Plan {
    /// The plan of `settings`, the same for the same settings.
    pub fn new(settings: &Settings) -> Result<Plan, Error> {
        settings.validate()?;
        let rng = &mut StdRng::seed_from_u64(settings.seed);
        let topology =
            Topology::generate(settings.topology, settings.nodes, settings.degree, rng).map_err(Error::Settings)?;
        let mut fakers = match settings.fakes {
            0 => Vec::new(),
            fakes => index::sample(rng, settings.nodes, fakes).into_vec(),
        };
        fakers.sort_unstable();
        let honest: Vec<usize> = (0..settings.nodes).filter(|n| fakers.binary_search(n).is_err()).collect();
        let catalog = Catalog::generate(
            settings.catalog,
            settings.nodes,
            &honest,
            settings.replication,
            settings.distribution,
            rng,
        )
        .map_err(Error::Settings)?;
        let flooder = if settings.flooder { honest.choose(rng).copied() } else { None };
        let candidates: Vec<usize> = honest.iter().copied().filter(|&n| Some(n) != flooder).collect();
        let churn = Schedule::generate(&candidates, settings.churn, settings.queries, rng).map_err(Error::Settings)?;
        let mut live = vec![true; settings.nodes];
        let mut queries = Vec::with_capacity(settings.queries);
        for step in 0..settings.queries {
            let events = churn.step(step).cloned().unwrap_or_default();
            for &node in &events.rejoin {
                live[node] = true;
            }
            let askers: Vec<usize> =
                candidates.iter().copied().filter(|&n| live[n] && !events.leave.contains(&n)).collect();
            let node = *askers
                .choose(rng)
                .ok_or_else(|| Error::Settings(format!("no node is left to ask at query {step}: churn is too high")))?;
            queries.push(PlannedQuery { node, item: catalog.draw(rng) });
            for &node in &events.leave {
                live[node] = false;
            }
        }
        Ok(Plan { topology, catalog, queries, churn, flooder, fakers })
    }

    /// The items asked for, each once, in catalog order: what fakers fake.
    pub fn asked_items(&self) -> Vec<usize> {
        self.queries.iter().map(|q| q.item).collect::<BTreeSet<_>>().into_iter().collect()
    }
}

/// How one strategy did on one query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// The TTL of the flood, or of the ring that ended the expanding ring.
    pub ttl: u8,
    /// Whether a result was the genuine item (its SHA-256, not just its name).
    pub success: bool,
    /// Query descriptors written to sockets, all nodes together.
    pub messages: u64,
    /// Queries dropped as duplicates, all nodes together.
    pub duplicates: u64,
    /// Milliseconds until the first QueryHit (for the expanding ring, plus
    /// the time its earlier rings took); none without a hit.
    pub first_hit_ms: Option<f64>,
    /// QueryHit messages that reached the asking node.
    pub hits: u64,
    /// Nodes named as sources of the genuine item.
    pub sources: usize,
    /// Queries dropped anywhere as over a neighbour's allowance (0 unless
    /// the run asks faster than the servents' rate limits allow).
    pub rate_limited: u64,
    /// Messages dropped anywhere from full outgoing queues.
    pub queue_full: u64,
    /// Milliseconds from the first Query until the network was quiet.
    pub elapsed_ms: f64,
    /// Whether the network went quiet within [`SETTLE_LIMIT`].
    pub settled: bool,
}

/// One measured query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryRecord {
    /// Its step in the run (its number).
    pub step: usize,
    /// The asking node's address.
    pub node: SocketAddrV4,
    /// The file asked for.
    pub item: String,
    /// What was typed.
    pub query: String,
    /// Nodes planned to hold the item (in runs with fakers, askers that
    /// downloaded it share it too).
    pub copies: usize,
    /// Whether one of them was up when the query started.
    pub available: bool,
    /// Flooding with the run's TTL.
    pub flood: Outcome,
    /// The expanding ring; absent in a TTL sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<Outcome>,
    /// The download of the best result after the flood, in runs with fakers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Fetch>,
}

/// What an asking node made of its flood's results in a run with fakers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fetch {
    /// Results for the item whose SHA-256 is not the genuine one's.
    pub fakes_seen: u64,
    /// Of those, the ones judged anything but verified before any download.
    pub fakes_flagged: u64,
    /// The verdict of the best result, the one asked for.
    pub best: Option<Verdict>,
    /// What came of it.
    pub download: Download,
    /// Why it was refused or failed, as the servent said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Milliseconds from asking for the download until it ended.
    pub download_ms: Option<f64>,
}

/// How the download of the best result ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Download {
    /// There was no result for the item to download.
    NoResult,
    /// The servent refused before fetching a byte: the best result was not verified.
    Refused,
    /// Kept, and its bytes are the genuine item's.
    KeptGenuine,
    /// Kept, and its bytes are not the genuine item's: a fake accepted.
    KeptFake,
    /// Started and not kept: it failed its checks, lost its sources, or took
    /// longer than [`DOWNLOAD_LIMIT`].
    Failed,
}

/// A strategy's results over many queries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Strategy {
    /// Queries that found their item, as a fraction.
    pub success_rate: f64,
    /// Mean Query descriptors sent per query.
    pub messages_per_query: f64,
    /// Mean duplicate Queries dropped per query.
    pub duplicates_per_query: f64,
    /// Median first-hit latency of the successful queries.
    pub median_first_hit_ms: Option<f64>,
    /// 95th percentile of the same.
    pub p95_first_hit_ms: Option<f64>,
    /// Mean QueryHits received per query.
    pub hits_per_query: f64,
    /// Queries that did not go quiet in time.
    pub unsettled: usize,
    /// Queries dropped as rate-limited, over all queries.
    pub rate_limited: u64,
    /// Messages dropped from full queues, over all queries.
    pub queue_full: u64,
}

impl Strategy {
    /// Sums up `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Strategy {
        let outcomes: Vec<&Outcome> = outcomes.into_iter().collect();
        let count = outcomes.len().max(1) as f64;
        let mean = |f: fn(&Outcome) -> f64| outcomes.iter().map(|o| f(o)).sum::<f64>() / count;
        let mut latencies: Vec<f64> = outcomes.iter().filter(|o| o.success).filter_map(|o| o.first_hit_ms).collect();
        latencies.sort_by(f64::total_cmp);
        Strategy {
            success_rate: mean(|o| f64::from(u8::from(o.success))),
            messages_per_query: mean(|o| o.messages as f64),
            duplicates_per_query: mean(|o| o.duplicates as f64),
            median_first_hit_ms: percentile(&latencies, 0.5),
            p95_first_hit_ms: percentile(&latencies, 0.95),
            hits_per_query: mean(|o| o.hits as f64),
            unsettled: outcomes.iter().filter(|o| !o.settled).count(),
            rate_limited: outcomes.iter().map(|o| o.rate_limited).sum(),
            queue_full: outcomes.iter().map(|o| o.queue_full).sum(),
        }
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// The network a run was made on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkFacts {
    /// Servents.
    pub nodes: usize,
    /// Links between them.
    pub links: usize,
    /// The graph's shape.
    pub topology: Shape,
    /// The degree asked for.
    pub degree: usize,
    /// The most neighbours one node has.
    pub max_degree: usize,
    /// Files in the catalog.
    pub catalog: usize,
    /// Mean fraction of nodes holding a file.
    pub replication: f64,
    /// How copies and queries spread over files.
    pub distribution: Distribution,
    /// Queries asked (per TTL, in a sweep).
    pub queries: usize,
    /// The seed.
    pub seed: u64,
    /// Seconds to start every servent, index its files and link it up.
    pub setup_s: f64,
    /// Resident memory after setup, divided by the nodes (the whole
    /// process: the harness is a small part of it).
    pub rss_mb_per_node: Option<f64>,
    /// In a simulation: the heap the whole run used at its peak, divided by
    /// the nodes (the node cores, their links and the event queue), counted
    /// by the binary's allocator, in whole KiB, so the same seed gives the
    /// same figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_node: Option<u64>,
    /// Milliseconds of quiet that end a query.
    pub quiet_ms: u64,
}

/// What the flooder did and what it cost the others.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlooderReport {
    /// The flooding node.
    pub node: SocketAddrV4,
    /// Searches it started.
    pub searches: u64,
    /// Query descriptors it wrote to its sockets.
    pub queries_sent: u64,
    /// Queries its neighbours dropped meanwhile as over a sender's
    /// allowance, counted by each neighbour node (a link cut for useless
    /// traffic keeps its count).
    pub rate_limited: u64,
    /// `rate_limited / queries_sent`.
    pub rate_limited_share: f64,
    /// Messages dropped network-wide from full outgoing queues meanwhile.
    pub queue_full: u64,
    /// Honest queries asked again during the flood.
    pub queries: usize,
    /// Their success rate under attack (a result within [`ATTACK_WAIT`]).
    pub success_rate: f64,
    /// The same queries' success rate in the run without the flooder.
    pub success_rate_without: f64,
    /// First-hit latency under attack.
    pub median_first_hit_ms: Option<f64>,
    /// 95th percentile of the same.
    pub p95_first_hit_ms: Option<f64>,
    /// How long the attack lasted, in seconds.
    pub duration_s: f64,
}

/// A run's results: flooding against the expanding ring.
///
/// The top-level `success_rate` … `p95_first_hit_ms` are flooding's, the
/// baseline; `flood` and `ring` have both strategies in full.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The network.
    #[serde(flatten)]
    pub network: NetworkFacts,
    /// The flood's TTL.
    pub ttl: u8,
    /// Fraction of nodes that churned.
    pub churn: f64,
    /// Seconds from start to the last query.
    pub wall_s: f64,
    /// Flooding's success rate.
    pub success_rate: f64,
    /// Flooding's messages per query.
    pub messages_per_query: f64,
    /// Flooding's duplicates per query.
    pub duplicates_per_query: f64,
    /// Flooding's median first-hit latency.
    pub median_first_hit_ms: Option<f64>,
    /// Flooding's 95th-percentile first-hit latency.
    pub p95_first_hit_ms: Option<f64>,
    /// Nodes that answered with fakes.
    pub fakers: usize,
    /// Fake results the askers saw after their floods (results for the
    /// item whose SHA-256 is not the genuine one), summed over queries.
    pub fakes_seen: u64,
    /// Of those, the ones judged anything but verified before any download.
    pub fakes_flagged: u64,
    /// Downloads kept whose bytes are not the genuine item's: must be 0.
    pub fakes_accepted: u64,
    /// Downloads asked for (one per query that found any result for its item).
    pub downloads_attempted: u64,
    /// Of those, kept as verified with the genuine bytes.
    pub downloads_verified: u64,
    /// Of those, refused by the servent before fetching: the best result was not verified.
    pub downloads_refused: u64,
    /// Of those, started and not kept.
    pub downloads_failed: u64,
    /// Queries whose item had a holder up when asked, as a fraction.
    pub available_rate: f64,
    /// Flooding with the run's TTL.
    pub flood: Strategy,
    /// The expanding ring.
    pub ring: Strategy,
    /// Flooding's messages per query over the ring's, at the success rates above.
    pub message_saving_ratio: Option<f64>,
    /// Nodes that left during the run.
    pub departures: usize,
    /// Nodes that came back.
    pub returns: usize,
    /// The flooder phase, if there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flooder: Option<FlooderReport>,
}

/// A TTL sweep's results: flooding at each TTL on the same queries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepSummary {
    /// The network.
    #[serde(flatten)]
    pub network: NetworkFacts,
    /// Seconds from start to the last query.
    pub wall_s: f64,
    /// One point per TTL.
    pub points: Vec<SweepPoint>,
}

/// Flooding at one TTL.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The TTL.
    pub ttl: u8,
    /// How flooding did.
    #[serde(flatten)]
    pub flood: Strategy,
}

/// Runs `settings`: every query by flooding and by expanding ring, then the
/// flooder's phase if asked. Calls `on_query` after each query. Stops every
/// servent before returning, also on error or when `cancel` is set.
pub async fn run(
    settings: &Settings,
    cancel: &AtomicBool,
    mut on_query: impl FnMut(&QueryRecord),
) -> Result<Summary, Error> {
    let plan = Plan::new(settings)?;
    let began = Instant::now();
    let content = Content::new(&plan.catalog, &plan.fakers, &plan.asked_items())?;
    let config = NetConfig {
        port: settings.port,
        trust: vec![content.trusted()],
        downloads: !plan.fakers.is_empty(),
        ultrapeers: 0,
    };
    let mut net = Net::start(&plan.topology, &plan.catalog, &content, config, cancel).await?;
    let network = facts(settings, &plan, began.elapsed());
    let mut session = Session { settings, plan: &plan, net: &mut net, cancel };
    let result = session.queries(&mut on_query).await;
    let result = match result {
        Ok(records) => session.summary(network, records, began).await,
        Err(e) => Err(e),
    };
    net.shutdown().await;
    result
}

/// Runs the plan's queries by flooding once per TTL in `ttls`, on one
/// network. Churn, fakers and the flooder are not part of a sweep.
pub async fn sweep(
    settings: &Settings,
    ttls: std::ops::RangeInclusive<u8>,
    cancel: &AtomicBool,
    mut on_query: impl FnMut(u8, &QueryRecord),
) -> Result<SweepSummary, Error> {
    check_sweep(settings, &ttls)?;
    let plan = Plan::new(settings)?;
    let began = Instant::now();
    let content = Content::new(&plan.catalog, &[], &[])?;
    let config = NetConfig { port: settings.port, trust: vec![content.trusted()], downloads: false, ultrapeers: 0 };
    let mut net = Net::start(&plan.topology, &plan.catalog, &content, config, cancel).await?;
    let network = facts(settings, &plan, began.elapsed());
    let mut session = Session { settings, plan: &plan, net: &mut net, cancel };
    let mut points = Vec::new();
    let mut result = Ok(());
    for ttl in ttls {
        let mut outcomes = Vec::new();
        for (step, planned) in plan.queries.iter().enumerate() {
            match session.flood_record(step, *planned, ttl).await {
                Ok(record) => {
                    on_query(ttl, &record);
                    outcomes.push(record.flood);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_err() {
            break;
        }
        points.push(SweepPoint { ttl, flood: Strategy::of(&outcomes) });
    }
    net.shutdown().await;
    result.map(|()| SweepSummary { network, wall_s: began.elapsed().as_secs_f64(), points })
}

/// Refuses a sweep with churn, fakes or the flooder, or TTLs out of range.
pub(crate) fn check_sweep(settings: &Settings, ttls: &std::ops::RangeInclusive<u8>) -> Result<(), Error> {
    if settings.churn > 0.0 || settings.flooder || settings.fakes > 0 {
        return Err(Error::Settings("a TTL sweep runs without churn, fakes and the flooder".into()));
    }
    if ttls.is_empty() || *ttls.start() == 0 || *ttls.end() > crate::MAX_TTL {
        return Err(Error::Settings(format!(
            "the TTLs of a sweep run from 1 to {}, not {}..{}",
            crate::MAX_TTL,
            ttls.start(),
            ttls.end()
        )));
    }
    Ok(())
}

pub(crate) fn facts(settings: &Settings, plan: &Plan, setup: Duration) -> NetworkFacts {
    let nodes = settings.nodes;
    NetworkFacts {
        nodes,
        links: plan.topology.edges(),
        topology: settings.topology,
        degree: settings.degree,
        max_degree: plan.topology.max_degree(),
        catalog: settings.catalog,
        replication: settings.replication,
        distribution: settings.distribution,
        queries: settings.queries,
        seed: settings.seed,
        setup_s: setup.as_secs_f64(),
        rss_mb_per_node: rss_mb().map(|mb| mb / nodes.max(1) as f64),
        bytes_per_node: None,
        quiet_ms: settings.quiet.as_millis() as u64,
    }
}

/// A run under way.
pub(crate) struct Session<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) plan: &'a Plan,
    pub(crate) net: &'a mut Net,
    pub(crate) cancel: &'a AtomicBool,
}

/// One search from one node, until the network went quiet.
struct Round {
    results: SearchSnapshot,
    after: Snapshot,
    elapsed: Duration,
    settled: bool,
}

impl Session<'_> {
    /// Every planned query, with churn, by both strategies.
    async fn queries(&mut self, on_query: &mut impl FnMut(&QueryRecord)) -> Result<Vec<QueryRecord>, Error> {
        let mut records = Vec::with_capacity(self.plan.queries.len());
        for (step, planned) in self.plan.queries.iter().enumerate() {
            let events = self.plan.churn.step(step).cloned().unwrap_or_default();
            for &node in &events.rejoin {
                self.net.rejoin(node).await?;
            }
            let item = &self.plan.catalog.items()[planned.item];
            let available = item.holders.iter().any(|&h| self.net.is_live(h));
            let (flood, results) = self.flood(planned.node, item, self.settings.ttl, &events.leave).await?;
            let fetch =
                if self.plan.fakers.is_empty() { None } else { Some(self.fetch(planned.node, item, &results).await?) };
            let ring = self.ring(planned.node, item).await?;
            let mut record = self.record(step, *planned, available, flood, Some(ring));
            record.fetch = fetch;
            on_query(&record);
            records.push(record);
        }
        Ok(records)
    }

    /// One query by flooding alone, for a sweep.
    async fn flood_record(&mut self, step: usize, planned: PlannedQuery, ttl: u8) -> Result<QueryRecord, Error> {
        let item = &self.plan.catalog.items()[planned.item];
        let (flood, _) = self.flood(planned.node, item, ttl, &[]).await?;
        Ok(self.record(step, planned, true, flood, None))
    }

    pub(crate) fn record(
        &self,
        step: usize,
        planned: PlannedQuery,
        available: bool,
        flood: Outcome,
        ring: Option<Outcome>,
    ) -> QueryRecord {
        let item = &self.plan.catalog.items()[planned.item];
        QueryRecord {
            step,
            node: self.net.addr(planned.node),
            item: item.name.clone(),
            query: item.query.clone(),
            copies: item.holders.len(),
            available,
            flood,
            ring,
            fetch: None,
        }
    }

    /// Floods a query for `item` from `origin` with `ttl`; `leave` stop
    /// while it is under way. Returns the results too.
    pub(crate) async fn flood(
        &mut self,
        origin: usize,
        item: &Item,
        ttl: u8,
        leave: &[usize],
    ) -> Result<(Outcome, SearchSnapshot), Error> {
        let before = self.net.snapshot().await?;
        let node = self.asker(origin)?;
        let sent = Instant::now();
        let guid = node.search(&item.query, ttl).await.map_err(|source| self.node_error(origin, source))?;
        let mut left = Vec::with_capacity(leave.len());
        for &gone in leave {
            left.push((gone, self.net.leave(gone).await?));
        }
        let round = self.finish(origin, &node, guid, sent).await?;
        let counts = round.after.since(&before, &left);
        let outcome = outcome(ttl, item, &round, counts, Duration::ZERO);
        Ok((outcome, round.results))
    }

    /// Asks for `item` from `origin` through the servent's own search,
    /// without a TTL: a leaf's ultrapeers query for it dynamically.
    pub(crate) async fn dynamic(&mut self, origin: usize, item: &Item) -> Result<Outcome, Error> {
        let before = self.net.snapshot().await?;
        let node = self.asker(origin)?;
        let sent = Instant::now();
        let guid = node.search(&item.query, None).await.map_err(|source| self.node_error(origin, source))?;
        let round = self.finish(origin, &node, guid, sent).await?;
        Ok(outcome(0, item, &round, round.after.since(&before, &[]), Duration::ZERO))
    }

    /// Picks `origin`'s best result for `item` and downloads it, keeping
    /// only verified content, then checks what was kept against the
    /// genuine bytes; waits until the download's traffic is over.
    async fn fetch(&mut self, origin: usize, item: &Item, results: &SearchSnapshot) -> Result<Fetch, Error> {
        let for_item: Vec<&SearchResult> = results.results.iter().filter(|r| r.name == item.name).collect();
        let fakes: Vec<&&SearchResult> = for_item.iter().filter(|r| !is_genuine(r, item)).collect();
        let flagged = fakes.iter().filter(|r| r.judgement.verdict != Verdict::Verified).count();
        let mut fetch = Fetch {
            fakes_seen: fakes.len() as u64,
            fakes_flagged: flagged as u64,
            best: None,
            download: Download::NoResult,
            note: None,
            download_ms: None,
        };
        // The highest verdict; among equals the most sources, then the first to arrive.
        let best = for_item.iter().enumerate().max_by_key(|(i, r)| (r.judgement.verdict, r.sources.len(), Reverse(*i)));
        let Some((_, best)) = best else { return Ok(fetch) };
        fetch.best = Some(best.judgement.verdict);
        let Some(target) = best.sha1.or(best.sha256) else {
            fetch.note = Some("the best result has no URN to download it by".into());
            return Ok(fetch);
        };
        let node = self.asker(origin)?;
        let asked = Instant::now();
        match node.download(&target.to_string(), Keep::Verified).await {
            Ok(id) => {
                let (download, note) = self.kept(origin, &node, id, item).await?;
                fetch.download = download;
                fetch.note = note;
                fetch.download_ms = Some(asked.elapsed().as_secs_f64() * 1000.0);
            }
            Err(NodeError::Fake { reason, .. } | NodeError::NotVerified { reason, .. }) => {
                fetch.download = Download::Refused;
                fetch.note = Some(reason);
            }
            Err(e @ (NodeError::NotFound(_) | NodeError::Download(_))) => {
                fetch.download = Download::Failed;
                fetch.note = Some(e.to_string());
            }
            Err(source) => return Err(self.node_error(origin, source)),
        }
        self.settle(Instant::now(), None).await?;
        Ok(fetch)
    }

    /// Waits for download `id` of `origin` to end (cancelling it after
    /// [`DOWNLOAD_LIMIT`]) and says whether what it kept is `item`; a kept
    /// file is awaited in the node's index, so the next query meets it shared.
    async fn kept(
        &self,
        origin: usize,
        node: &NodeHandle,
        id: servent::transfer::download::DownloadId,
        item: &Item,
    ) -> Result<(Download, Option<String>), Error> {
        let downloads = node.downloads().map_err(|source| self.node_error(origin, source))?;
        let done = match async_std::future::timeout(DOWNLOAD_LIMIT, downloads.wait(id)).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Ok((Download::Failed, Some(e.to_string()))),
            Err(_) => {
                let _ = downloads.cancel(id).await;
                let why = format!("not done within {} s: cancelled", DOWNLOAD_LIMIT.as_secs());
                return Ok((Download::Failed, Some(why)));
            }
        };
        let path = match (&done.state, &done.path) {
            (DownloadState::Complete, Some(path)) => path.clone(),
            (DownloadState::Failed { reason }, _) => return Ok((Download::Failed, Some(reason.clone()))),
            (state, _) => return Ok((Download::Failed, Some(format!("ended {state:?} without a file")))),
        };
        let bytes = std::fs::read(&path).map_err(|source| Error::Files { path: path.clone(), source })?;
        let deadline = Instant::now() + SETTLE_LIMIT;
        let lookup = search::Query { words: String::new(), urns: vec![done.sha1.unwrap_or(item.sha1)], limit: 10 };
        while !node.library().search(&lookup).unwrap_or_default().iter().any(|f| f.path == path) {
            check_cancel(self.cancel)?;
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "node {origin} did not share its download {} in time",
                    path.display()
                )));
            }
            task::sleep(POLL).await;
        }
        let download = if bytes == item.contents { Download::KeptGenuine } else { Download::KeptFake };
        Ok((download, None))
    }

    /// Asks for `item` from `origin` in rings of TTL 1, 2, … up to the
    /// run's TTL, until one finds it.
    async fn ring(&mut self, origin: usize, item: &Item) -> Result<Outcome, Error> {
        let before = self.net.snapshot().await?;
        let node = self.asker(origin)?;
        let mut waited = Duration::ZERO;
        let mut ttl = 1;
        loop {
            let sent = Instant::now();
            let guid = node.search(&item.query, ttl).await.map_err(|source| self.node_error(origin, source))?;
            let round = self.finish(origin, &node, guid, sent).await?;
            if found(&round.results, item) || ttl >= self.settings.ttl {
                let counts = round.after.since(&before, &[]);
                return Ok(outcome(ttl, item, &round, counts, waited));
            }
            waited += round.elapsed;
            ttl += 1;
        }
    }

    fn asker(&self, origin: usize) -> Result<NodeHandle, Error> {
        self.net.node(origin).cloned().ok_or_else(|| {
            Error::Settings(format!("node {origin} was planned to ask but is down: the plan and the run disagree"))
        })
    }

    /// Waits until no servent has sent a Query and no QueryHit has reached
    /// `origin` for the quiet period, then reads the search's results.
    async fn finish(
        &self,
        origin: usize,
        node: &NodeHandle,
        guid: servent::wire::Guid,
        sent: Instant,
    ) -> Result<Round, Error> {
        let (after, settled) = self.settle(sent, Some((origin, node, guid))).await?;
        let elapsed = sent.elapsed();
        let results = node
            .search_results(guid)
            .await
            .map_err(|source| self.node_error(origin, source))?
            .ok_or_else(|| Error::Timeout(format!("node {origin} forgot its search for {guid}")))?;
        Ok(Round { results, after, elapsed, settled })
    }

    /// Waits until no servent has sent a Query (and, given a search as
    /// `(node index, node, id)`, no QueryHit has reached it) for the quiet
    /// period, or until [`SETTLE_LIMIT`] after `since`; returns the counters
    /// then, and whether the network went quiet.
    async fn settle(
        &self,
        since: Instant,
        search: Option<(usize, &NodeHandle, servent::wire::Guid)>,
    ) -> Result<(Snapshot, bool), Error> {
        let mut after = self.net.snapshot().await?;
        let mut received = self.hits_received(search).await?;
        let mut changed = Instant::now();
        loop {
            check_cancel(self.cancel)?;
            task::sleep(POLL).await;
            let now = self.net.snapshot().await?;
            let now_received = self.hits_received(search).await?;
            if now.total().queries_sent != after.total().queries_sent || now_received != received {
                changed = Instant::now();
            }
            after = now;
            received = now_received;
            if changed.elapsed() >= self.settings.quiet {
                return Ok((after, true));
            }
            if since.elapsed() >= SETTLE_LIMIT {
                return Ok((after, false));
            }
        }
    }

    /// QueryHits a search has received so far; 0 without a search.
    async fn hits_received(&self, search: Option<(usize, &NodeHandle, servent::wire::Guid)>) -> Result<u64, Error> {
        let Some((index, node, id)) = search else { return Ok(0) };
        let results = node.search_results(id).await.map_err(|source| self.node_error(index, source))?;
        Ok(results.map_or(0, |r| r.hits_received))
    }

    fn node_error(&self, index: usize, source: NodeError) -> Error {
        Error::Node { index, addr: self.net.addr(index), source }
    }

    async fn summary(
        &mut self,
        network: NetworkFacts,
        records: Vec<QueryRecord>,
        began: Instant,
    ) -> Result<Summary, Error> {
        let flooder = match self.plan.flooder {
            Some(node) => Some(self.attack(node, &records).await?),
            None => None,
        };
        Ok(summarize(self.settings, self.plan, network, &records, began.elapsed().as_secs_f64(), flooder))
    }

    /// The flooder's phase: `flooder` starts searches without pause while
    /// the first queries of the run are asked again by flooding. The counts
    /// are read once the network is quiet again, so that every neighbour
    /// has read what the flooder wrote; they are the nodes' own, which a
    /// link cut meanwhile does not reset (a neighbour cuts the flooder once
    /// most of what it sent was over its allowance, [`servent_core::node::JUNK_PERCENT`]).
    async fn attack(&mut self, flooder: usize, records: &[QueryRecord]) -> Result<FlooderReport, Error> {
        let node = self.asker(flooder)?;
        let before = self.net.snapshot().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let began = Instant::now();
        let flooding = task::spawn(flood_as_fast_as_possible(node.clone(), self.settings.ttl, stop.clone()));
        let asked = self.asked_under_attack(records).await;
        stop.store(true, Ordering::Relaxed);
        let searches = flooding.await;
        let duration = began.elapsed();
        let (outcomes, without) = asked?;
        let (after, _) = self.settle(Instant::now(), None).await?;
        let rate_limited = after.since_at(&before, self.plan.topology.neighbours(flooder)).rate_limited;
        let queue_full = after.since(&before, &[]).queue_full;
        let queries_sent = after.since_at(&before, &[flooder]).queries_sent;
        let mut latencies: Vec<f64> = outcomes.iter().flatten().copied().collect();
        latencies.sort_by(f64::total_cmp);
        let count = outcomes.len().max(1) as f64;
        Ok(FlooderReport {
            node: self.net.addr(flooder),
            searches,
            queries_sent,
            rate_limited,
            rate_limited_share: rate_limited as f64 / queries_sent.max(1) as f64,
            queue_full,
            queries: outcomes.len(),
            success_rate: outcomes.iter().filter(|o| o.is_some()).count() as f64 / count,
            success_rate_without: without as f64 / count,
            median_first_hit_ms: percentile(&latencies, 0.5),
            p95_first_hit_ms: percentile(&latencies, 0.95),
            duration_s: duration.as_secs_f64(),
        })
    }

    /// Asks the run's first queries again (those whose asker is up), each
    /// until its item is found or [`ATTACK_WAIT`] is over. Returns each
    /// query's first-hit latency if it succeeded, and how many of the same
    /// queries had succeeded in the run.
    async fn asked_under_attack(&self, records: &[QueryRecord]) -> Result<(Vec<Option<f64>>, usize), Error> {
        let mut outcomes = Vec::new();
        let mut without = 0;
        for (planned, record) in self.plan.queries.iter().zip(records).take(ATTACK_QUERIES) {
            check_cancel(self.cancel)?;
            let Some(node) = self.net.node(planned.node) else { continue };
            let item = &self.plan.catalog.items()[planned.item];
            let guid =
                node.search(&item.query, self.settings.ttl).await.map_err(|e| self.node_error(planned.node, e))?;
            let sent = Instant::now();
            let latency = loop {
                task::sleep(POLL).await;
                let results = node.search_results(guid).await.map_err(|e| self.node_error(planned.node, e))?;
                match results {
                    Some(results) if found(&results, item) => break results.first_hit_ms,
                    _ if sent.elapsed() >= ATTACK_WAIT => break None,
                    _ => {}
                }
            };
            outcomes.push(latency);
            without += usize::from(record.flood.success);
        }
        Ok((outcomes, without))
    }
}

/// Sums up a run's `records` into its summary; `wall_s` is the run's
/// length in seconds (virtual ones in a simulation).
pub(crate) fn summarize(
    settings: &Settings,
    plan: &Plan,
    network: NetworkFacts,
    records: &[QueryRecord],
    wall_s: f64,
    flooder: Option<FlooderReport>,
) -> Summary {
    let flood = Strategy::of(records.iter().map(|r| &r.flood));
    let ring = Strategy::of(records.iter().filter_map(|r| r.ring.as_ref()));
    let count = records.len().max(1) as f64;
    let fetches: Vec<&Fetch> = records.iter().filter_map(|r| r.fetch.as_ref()).collect();
    let ended = |how: Download| fetches.iter().filter(|f| f.download == how).count() as u64;
    Summary {
        network,
        ttl: settings.ttl,
        churn: settings.churn,
        wall_s,
        success_rate: flood.success_rate,
        messages_per_query: flood.messages_per_query,
        duplicates_per_query: flood.duplicates_per_query,
        median_first_hit_ms: flood.median_first_hit_ms,
        p95_first_hit_ms: flood.p95_first_hit_ms,
        fakers: plan.fakers.len(),
        fakes_seen: fetches.iter().map(|f| f.fakes_seen).sum(),
        fakes_flagged: fetches.iter().map(|f| f.fakes_flagged).sum(),
        fakes_accepted: ended(Download::KeptFake),
        downloads_attempted: fetches.len() as u64 - ended(Download::NoResult),
        downloads_verified: ended(Download::KeptGenuine),
        downloads_refused: ended(Download::Refused),
        downloads_failed: ended(Download::Failed),
        available_rate: records.iter().filter(|r| r.available).count() as f64 / count,
        message_saving_ratio: (ring.messages_per_query > 0.0)
            .then(|| flood.messages_per_query / ring.messages_per_query),
        flood,
        ring,
        departures: plan.churn.departures(),
        returns: plan.churn.returns(),
        flooder,
    }
}

/// Starts searches from `node` one after the other until `stop`, and at
/// least [`FLOOD_MINIMUM`]; returns how many it started.
async fn flood_as_fast_as_possible(node: NodeHandle, ttl: u8, stop: Arc<AtomicBool>) -> u64 {
    let mut started = 0;
    while started < FLOOD_MINIMUM || !stop.load(Ordering::Relaxed) {
        if node.search(&format!("flooder junk {started}"), ttl).await.is_err() {
            break;
        }
        started += 1;
        // Lets the other tasks on this thread run between two searches.
        task::yield_now().await;
    }
    started
}

/// Whether a search's results hold the genuine `item`.
fn found(results: &SearchSnapshot, item: &Item) -> bool {
    results.results.iter().any(|r| is_genuine(r, item))
}

/// Whether a result is the genuine `item`: its SHA-256, whatever its name.
pub(crate) fn is_genuine(result: &SearchResult, item: &Item) -> bool {
    result.sha256 == Some(item.sha256)
}

fn outcome(ttl: u8, item: &Item, round: &Round, counts: NodeCounts, waited: Duration) -> Outcome {
    let success = found(&round.results, item);
    let sources = round.results.results.iter().filter(|r| is_genuine(r, item)).map(|r| r.sources.len()).sum();
    let waited_ms = waited.as_secs_f64() * 1000.0;
    Outcome {
        ttl,
        success,
        messages: counts.queries_sent,
        duplicates: counts.duplicates,
        first_hit_ms: round.results.first_hit_ms.map(|ms| ms + waited_ms),
        hits: round.results.hits_received,
        sources,
        rate_limited: counts.rate_limited,
        queue_full: counts.queue_full,
        elapsed_ms: round.elapsed.as_secs_f64() * 1000.0 + waited_ms,
        settled: round.settled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(success: bool, messages: u64, first_hit_ms: Option<f64>) -> Outcome {
        Outcome {
            ttl: 3,
            success,
            messages,
            duplicates: messages / 2,
            first_hit_ms,
            hits: u64::from(success),
            sources: usize::from(success),
            rate_limited: 0,
            queue_full: 1,
            elapsed_ms: 100.0,
            settled: true,
        }
    }

    #[test]
    fn strategy_sums_up_success_messages_and_latency() {
        let outcomes: Vec<Outcome> =
            (1..=20).map(|i| outcome(i != 20, 10 * i, (i != 20).then_some(i as f64))).collect();
        let strategy = Strategy::of(&outcomes);
        assert_eq!(strategy.success_rate, 0.95);
        assert_eq!(strategy.messages_per_query, 105.0);
        assert_eq!(strategy.median_first_hit_ms, Some(10.0));
        assert_eq!(strategy.p95_first_hit_ms, Some(19.0));
        assert_eq!((strategy.rate_limited, strategy.queue_full), (0, 20));
        assert_eq!(Strategy::of(&[]).median_first_hit_ms, None);
    }

    #[test]
    fn same_seed_same_plan() {
        let settings = Settings { nodes: 60, churn: 0.3, queries: 40, seed: 9, ..Settings::default() };
        let one = Plan::new(&settings).unwrap();
        let two = Plan::new(&settings).unwrap();
        assert_eq!(one.queries, two.queries);
        assert_eq!(one.topology, two.topology);
        assert_eq!(one.churn, two.churn);
        let other = Plan::new(&Settings { seed: 10, ..settings }).unwrap();
        assert_ne!(one.queries, other.queries);
    }

    #[test]
    fn fakers_hold_nothing_never_ask_never_churn_and_fake_every_asked_item() {
        let settings = Settings { nodes: 40, fakes: 5, churn: 0.5, queries: 60, seed: 4, ..Settings::default() };
        let plan = Plan::new(&settings).unwrap();
        assert_eq!(plan.fakers.len(), 5);
        assert!(plan.fakers.windows(2).all(|w| w[0] < w[1]));
        for &faker in &plan.fakers {
            assert!(plan.catalog.shared_by(faker).is_empty());
            assert!(plan.queries.iter().all(|q| q.node != faker));
            assert!((0..60).all(|step| !plan.churn.step(step).unwrap().leave.contains(&faker)));
        }
        let asked = plan.asked_items();
        assert!(plan.queries.iter().all(|q| asked.binary_search(&q.item).is_ok()));
        assert!(asked.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Plan::new(&settings).unwrap().fakers, plan.fakers);
    }

    #[test]
    fn planned_askers_are_up_and_never_the_flooder() {
        let settings = Settings { nodes: 30, churn: 0.5, queries: 200, flooder: true, ..Settings::default() };
        let plan = Plan::new(&settings).unwrap();
        let flooder = plan.flooder.unwrap();
        let mut live = [true; 30];
        for (step, query) in plan.queries.iter().enumerate() {
            let events = plan.churn.step(step).unwrap();
            for &n in &events.rejoin {
                live[n] = true;
            }
            assert!(live[query.node] && query.node != flooder && !events.leave.contains(&query.node));
            for &n in &events.leave {
                assert_ne!(n, flooder);
                live[n] = false;
            }
        }
    }
}
