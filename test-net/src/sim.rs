//! The simulator: the same experiment on the servent's node core, with
//! in-memory links and a virtual clock, so that it reaches internet scale.
//!
//! Each node is a [`servent_core::node::Node`], the very core the servent
//! runs under its sockets: the same routing, admission, dialing, answering
//! and timers. What the servent's pump does with sockets and the index is
//! done here in memory, on one thread, with no thread or socket per node:
//! - a **link** carries a descriptor from one core to the other after its
//!   latency, and after the sender's upload has put it on the wire (its
//!   encoded size at the sender's bandwidth, one descriptor after the other);
//!   latency and bandwidth come from a seeded model ([`LATENCY_US`],
//!   [`UPLOAD_KBITS`]);
//! - a **dial** reaches the node listening on that address, which admits or
//!   refuses it as the servent does ([`Node::admit`]);
//! - a **library lookup** is answered from the catalog (a keyword → items
//!   map, as the index matches: any URN, else every word), through the
//!   core's lookup action and event, so the core's own answering rules run;
//! - **time** is a queue of events ordered by (time, sequence number), with
//!   each core's timer beside it; nothing reads the wall clock.
//!
//! The plan (graph, catalog, queries) is [`Plan::new`]'s, the one the real
//! network is built from, and the measurement is [`crate::experiment`]'s:
//! messages are the Query descriptors the cores sent over links, duplicates
//! the Queries their routers dropped as seen, a query is over once no Query
//! or QueryHit is on its way, plus the quiet period, and latencies are in
//! virtual milliseconds. The same settings give byte-identical output.
//!
//! Not simulated: churn, fakers, the flooder and downloads (those need the
//! servent's transfers and signatures); files are unsigned.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as Atomic};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use search::{SharedFile, Urn};
use servent_core::handshake::{Admission, PeerInfo, Role};
use servent_core::node::{dynamic, Action, Config, Connected, Direction, Event, Node};
use servent_core::qrp::RouteTable;
use servent_core::routing::{self, Drop as DropReason, PeerId};
use servent_core::trust::{SharedTrust, TrustStore};
use servent_core::wire::{Guid, Message, Payload};

use crate::catalog::{Catalog, Item};
use crate::experiment::{self, Outcome, Plan, PlannedQuery, QueryRecord, Strategy, Summary, SweepPoint};
use crate::experiment::{SweepSummary, SETTLE_LIMIT};
use crate::net::check_cancel;
use crate::topology::Topology;
use crate::{Error, Settings};

/// The most nodes a simulation may have.
pub const MAX_NODES: usize = 1_000_000;
/// How often each core's timer fires (the servent's is half a second): a
/// hundred thousand timers cost ten times less, and Pings go out a little
/// later at most.
pub const TICK: Duration = Duration::from_secs(5);
/// One-way latency of a link in microseconds, drawn uniformly per link.
/// A flood's cost depends on the order Queries arrive in (a node first
/// reached over more hops forwards with less TTL left), so the spread
/// matters: checked against real servents at 1,000 nodes (seed 7), 5 to
/// 50 ms sent a quarter fewer Queries per flood than they did, 20 to 25 ms
/// (hop by hop) 14 % more, 10 to 30 ms 3.5 % fewer.
pub const LATENCY_US: RangeInclusive<u64> = 10_000..=30_000;
/// Upload bandwidths in kbit/s, one drawn per node: DSL, cable, fibre.
pub const UPLOAD_KBITS: [u64; 3] = [1_000, 10_000, 100_000];
/// How often each core pings each neighbour to keep the link alive (the
/// servent: every 30 s). In-memory links never go stale, and at a hundred
/// thousand nodes the keep-alive Pings and their Pongs would be thirty
/// times the Queries measured.
pub const PING_INTERVAL: Duration = Duration::from_secs(300);
/// Addresses each core's host cache keeps (the servent's keeps 4,096). No
/// simulated node discovers (each dials only its neighbours, as in the real
/// network), so what Pongs teach is never dialed; a hundred thousand full
/// caches would be most of the memory.
pub const HOST_CACHE_CAPACITY: usize = 100;
/// How long, in virtual time, the whole graph may take to link up.
pub const LINK_LIMIT: Duration = Duration::from_secs(120);
/// Virtual time let pass once every link is up, for the greeting Pings.
pub const SETTLE_AFTER_LINKING: Duration = Duration::from_secs(1);

/// Nodes per third and fourth octet, as [`crate::net::node_addr`] numbers them.
const HOSTS_PER_OCTET: usize = 254;

/// The address node `index` listens on: the real network's `127.0.x.y`
/// for the first [`crate::net::MAX_NODES`], then `127.1.x.y` and so on.
pub fn node_addr(index: usize, port: u16) -> Option<SocketAddrV4> {
    if index >= MAX_NODES {
        return None;
    }
    let block = HOSTS_PER_OCTET * HOSTS_PER_OCTET;
    let (a, rest) = (index / block, index % block);
    let (x, y) = (1 + rest / HOSTS_PER_OCTET, 1 + rest % HOSTS_PER_OCTET);
    Some(SocketAddrV4::new(Ipv4Addr::new(127, a as u8, x as u8, y as u8), port))
}

/// The node listening on `addr`, the inverse of [`node_addr`].
fn node_index(addr: SocketAddrV4, port: u16) -> Option<usize> {
    let [first, a, x, y] = addr.ip().octets();
    let in_range = |o: u8| (1..=HOSTS_PER_OCTET).contains(&usize::from(o));
    if first != 127 || addr.port() != port || !in_range(x) || !in_range(y) {
        return None;
    }
    let index = usize::from(a) * HOSTS_PER_OCTET * HOSTS_PER_OCTET
        + (usize::from(x) - 1) * HOSTS_PER_OCTET
        + (usize::from(y) - 1);
    (index < MAX_NODES).then_some(index)
}

/// A global allocator that counts the bytes in use and their peak, so a
/// simulation can report its memory per node the same way every run.
/// Install it in a binary with `#[global_allocator]`.
pub struct CountingAllocator;

static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only
// the counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_NOW.fetch_sub(layout.size(), Atomic::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            HEAP_NOW.fetch_sub(layout.size(), Atomic::Relaxed);
            grew(new_size);
        }
        new
    }
}

fn grew(size: usize) {
    let now = HEAP_NOW.fetch_add(size, Atomic::Relaxed) + size;
    HEAP_PEAK.fetch_max(now, Atomic::Relaxed);
}

/// The most heap bytes in use at once so far, if [`CountingAllocator`] is
/// the process's allocator.
pub fn heap_peak() -> Option<usize> {
    Some(HEAP_PEAK.load(Atomic::Relaxed)).filter(|&peak| peak > 0)
}

/// The peak resident memory of this process in MB (VmHWM), where Linux tells.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `settings` on simulated nodes: every query by flooding and by
/// expanding ring. Calls `on_query` after each query.
pub fn run(settings: &Settings, cancel: &AtomicBool, mut on_query: impl FnMut(&QueryRecord)) -> Result<Summary, Error> {
    let plan = Plan::new(&Settings { sim: true, ..settings.clone() })?;
    let mut sim = Sim::start(settings, &plan, 0, false)?;
    let setup = sim.elapsed();
    let mut records = Vec::with_capacity(plan.queries.len());
    for (step, planned) in plan.queries.iter().enumerate() {
        check_cancel(cancel)?;
        let item = &plan.catalog.items()[planned.item];
        let flood = sim.flood(planned.node, item, settings.ttl)?;
        let ring = sim.ring(planned.node, item)?;
        let record = record(settings, &plan, step, *planned, flood, Some(ring));
        on_query(&record);
        records.push(record);
    }
    let network = sim.facts(setup);
    let wall_s = sim.elapsed().as_secs_f64();
    Ok(experiment::summarize(settings, &plan, network, &records, wall_s, None))
}

/// Runs the plan's queries by flooding once per TTL in `ttls`, on one
/// simulated network.
pub fn sweep(
    settings: &Settings,
    ttls: RangeInclusive<u8>,
    cancel: &AtomicBool,
    mut on_query: impl FnMut(u8, &QueryRecord),
) -> Result<SweepSummary, Error> {
    experiment::check_sweep(settings, &ttls)?;
    let plan = Plan::new(&Settings { sim: true, ..settings.clone() })?;
    let mut sim = Sim::start(settings, &plan, 0, false)?;
    let setup = sim.elapsed();
    let mut points = Vec::new();
    for ttl in ttls {
        let mut outcomes = Vec::with_capacity(plan.queries.len());
        for (step, planned) in plan.queries.iter().enumerate() {
            check_cancel(cancel)?;
            let item = &plan.catalog.items()[planned.item];
            let record = record(settings, &plan, step, *planned, sim.flood(planned.node, item, ttl)?, None);
            on_query(ttl, &record);
            outcomes.push(record.flood);
        }
        points.push(SweepPoint { ttl, flood: Strategy::of(&outcomes) });
    }
    let network = sim.facts(setup);
    Ok(SweepSummary { network, wall_s: sim.elapsed().as_secs_f64(), points })
}

/// Share of the nodes that are ultrapeers in [`tiers`].
pub const ULTRAPEER_SHARE: f64 = 0.1;
/// Ultrapeer links each ultrapeer keeps in [`tiers`] (gtk-gnutella's 32, LimeWire's 30).
pub const ULTRAPEER_DEGREE: usize = 30;
/// Ultrapeer links each leaf keeps in [`tiers`].
pub const LEAF_LINKS: usize = 3;

/// Success and cost of one way of searching, over the run's queries.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TierFigures {
    /// Share of queries that found their item.
    pub success: f64,
    /// Query descriptors sent per query, over every link.
    pub messages_per_query: f64,
    /// Of those, between two ultrapeers.
    pub up_up_per_query: f64,
    /// Of those, between an ultrapeer and a leaf.
    pub up_leaf_per_query: f64,
    /// Of those, over UDP (GUESS).
    pub udp_per_query: f64,
    /// Datagrams sent per query, whatever they carried (GUESS, out-of-band
    /// hits, their offers and claims).
    pub datagrams_per_query: f64,
    /// Virtual milliseconds a query lasted, on average.
    pub elapsed_ms: f64,
}

/// The same queries flooded on a flat network and asked dynamically on a
/// two-tier network of the same size, in one run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TierSummary {
    /// Servents in each network.
    pub nodes: usize,
    /// Ultrapeers of the two-tier network.
    pub ultrapeers: usize,
    /// Queries asked on each.
    pub queries: usize,
    /// TTL of the flood.
    pub ttl: u8,
    /// Degree of the flat network.
    pub flat_degree: usize,
    /// Flooding on the flat network.
    pub flood: TierFigures,
    /// The most Query descriptors per query a flood of the same queries
    /// can send on the flat network's graph: each node first reached over
    /// a shortest path ([`Topology::flood_bound`]). A flood sends less when
    /// a node is first reached over a longer path, or when it drops a
    /// query as similar to one relayed lately.
    pub flood_bound: f64,
    /// Dynamic querying on the two-tier network, without UDP: every hit
    /// comes back along the query's path (simulated runs only).
    pub dynamic: Option<TierFigures>,
    /// The same with UDP: hits go out of band to the leaves (offered,
    /// claimed with a token, sent), so only the leaf counts them and
    /// guides its ultrapeers with Query Status.
    pub out_of_band: TierFigures,
    /// QueryHits the queriers took out of band (claimed with their token), all queries together.
    pub oob_hits: u64,
    /// Bytes of QRP tables in force, all nodes together, at the end
    /// (simulated runs only).
    pub qrp_bytes: Option<usize>,
}

impl TierSummary {
    /// The figures of `plan` asked on `settings`' networks: flooded, and
    /// dynamically with hits out of band (`oob_hits` taken so); the run
    /// with hits routed and the QRP tables' memory, where measured, are
    /// set after.
    pub(crate) fn new(
        settings: &Settings,
        plan: &Plan,
        ultrapeers: usize,
        flood: TierFigures,
        out_of_band: TierFigures,
        oob_hits: u64,
    ) -> TierSummary {
        let bound: u64 = plan.queries.iter().map(|q| plan.topology.flood_bound(q.node, settings.ttl)).sum();
        TierSummary {
            nodes: settings.nodes,
            ultrapeers,
            queries: plan.queries.len(),
            ttl: settings.ttl,
            flat_degree: settings.degree,
            flood,
            flood_bound: bound as f64 / plan.queries.len().max(1) as f64,
            dynamic: None,
            out_of_band,
            oob_hits,
            qrp_bytes: None,
        }
    }
}

impl fmt::Display for TierSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flood = &self.flood;
        writeln!(f, "{} servents, {} queries, one run", self.nodes, self.queries)?;
        writeln!(
            f,
            "flat (degree {}), flood TTL {}: success {:.1} %, {:.0} messages/query (at most {:.0} on this graph), \
             {:.0} ms/query",
            self.flat_degree,
            self.ttl,
            100.0 * flood.success,
            flood.messages_per_query,
            self.flood_bound,
            flood.elapsed_ms
        )?;
        let runs = [("hits routed", self.dynamic.as_ref()), ("hits out of band", Some(&self.out_of_band))];
        for (how, dq) in runs.into_iter().filter_map(|(how, dq)| Some((how, dq?))) {
            writeln!(
                f,
                "two-tier ({} ultrapeers of degree {ULTRAPEER_DEGREE}, leaves with {LEAF_LINKS} links), dynamic, \
                 {how}: success {:.1} %, {:.0} messages/query ({:.0} ultrapeer-ultrapeer, {:.0} ultrapeer-leaf, \
                 {:.0} over UDP), {:.0} datagrams/query, {:.0} ms/query",
                self.ultrapeers,
                100.0 * dq.success,
                dq.messages_per_query,
                dq.up_up_per_query,
                dq.up_leaf_per_query,
                dq.udp_per_query,
                dq.datagrams_per_query,
                dq.elapsed_ms
            )?;
            let ratio = dq.messages_per_query / flood.messages_per_query.max(f64::MIN_POSITIVE);
            writeln!(
                f,
                "dynamic ({how}) / flood messages per query: {ratio:.4} (1/{:.1})",
                1.0 / ratio.max(f64::MIN_POSITIVE)
            )?;
        }
        write!(f, "QueryHits taken out of band (offered, claimed with a token, sent): {}", self.oob_hits)?;
        match self.qrp_bytes {
            Some(bytes) => {
                write!(f, "\nQRP tables in force: {bytes} bytes, {} per ultrapeer", bytes / self.ultrapeers.max(1))
            }
            None => Ok(()),
        }
    }
}

/// Floods the plan's queries at the run's TTL on its flat network, then
/// asks the same queries, from the same servents for the same items,
/// dynamically on a two-tier network of as many servents
/// ([`ULTRAPEER_SHARE`] ultrapeers of [`ULTRAPEER_DEGREE`], leaves with
/// [`LEAF_LINKS`] links). Calls `on_query` after each query of each.
pub fn tiers(
    settings: &Settings,
    cancel: &AtomicBool,
    mut on_query: impl FnMut(&str, &QueryRecord),
) -> Result<TierSummary, Error> {
    let plan = Plan::new(&Settings { sim: true, ..settings.clone() })?;
    let mut flood = Vec::with_capacity(plan.queries.len());
    {
        let mut sim = Sim::start(settings, &plan, 0, false)?;
        for (step, planned) in plan.queries.iter().enumerate() {
            check_cancel(cancel)?;
            let item = &routable(&plan.catalog.items()[planned.item]);
            let record = record(settings, &plan, step, *planned, sim.flood(planned.node, item, settings.ttl)?, None);
            on_query("flood", &record);
            flood.push((record.flood, Counts::default()));
        }
    }
    let (ultrapeers, two_tier) = two_tier(settings, &plan)?;
    let routed = ask_dynamically(settings, &two_tier, ultrapeers, false, cancel, &mut on_query)?;
    let out_of_band = ask_dynamically(settings, &two_tier, ultrapeers, true, cancel, &mut on_query)?;
    let (flood, oob) = (TierFigures::of(&flood), TierFigures::of(&out_of_band.outcomes));
    Ok(TierSummary {
        dynamic: Some(TierFigures::of(&routed.outcomes)),
        qrp_bytes: Some(routed.qrp_bytes),
        ..TierSummary::new(settings, &plan, ultrapeers, flood, oob, out_of_band.oob_hits)
    })
}

/// The two-tier network of as many nodes as `plan`'s, with the same
/// catalog and queries: its first [`ULTRAPEER_SHARE`] nodes are
/// ultrapeers of [`ULTRAPEER_DEGREE`], the others leaves with
/// [`LEAF_LINKS`] links. Returns the number of ultrapeers too.
pub(crate) fn two_tier(settings: &Settings, plan: &Plan) -> Result<(usize, Plan), Error> {
    let ultrapeers = ((settings.nodes as f64 * ULTRAPEER_SHARE).round() as usize).max(LEAF_LINKS);
    let rng = &mut StdRng::seed_from_u64(settings.seed);
    let topology =
        Topology::two_tier(settings.nodes, ultrapeers, ULTRAPEER_DEGREE, LEAF_LINKS, rng).map_err(Error::Settings)?;
    Ok((ultrapeers, Plan { topology, ..plan.clone() }))
}

/// Asks the plan's queries dynamically on its two-tier network; with
/// `udp`, the cores take datagrams, so the hits go out of band to a
/// querier that can take them.
fn ask_dynamically(
    settings: &Settings,
    two_tier: &Plan,
    ultrapeers: usize,
    udp: bool,
    cancel: &AtomicBool,
    on_query: &mut impl FnMut(&str, &QueryRecord),
) -> Result<DynamicRun, Error> {
    let mut sim = Sim::start(settings, two_tier, ultrapeers, udp)?;
    let mut outcomes = Vec::with_capacity(two_tier.queries.len());
    for (step, planned) in two_tier.queries.iter().enumerate() {
        check_cancel(cancel)?;
        let item = &routable(&two_tier.catalog.items()[planned.item]);
        let (outcome, counts) = sim.dynamic(planned.node, item)?;
        let record = record(settings, two_tier, step, *planned, outcome, None);
        on_query(if udp { "dynamic-oob" } else { "dynamic" }, &record);
        outcomes.push((record.flood, counts));
    }
    Ok(DynamicRun {
        outcomes,
        qrp_bytes: sim.nodes.iter().map(Node::qrp_memory).sum(),
        oob_hits: sim.nodes.iter().map(|n| n.oob_counters().hits).sum(),
    })
}

/// What one run of dynamic queries gave.
struct DynamicRun {
    /// Each query's outcome and counts.
    outcomes: Vec<(Outcome, Counts)>,
    /// Bytes of QRP tables in force at the end.
    qrp_bytes: usize,
    /// QueryHits the cores took out of band.
    oob_hits: u64,
}

/// The item asked for without the catalog's first word (`pkg 007`, not
/// `SEBLINUX pkg 007`): every file's name has `SEBLINUX` and `pkg`, and of
/// three words QRP routes on two (gtk-gnutella's rule), so every table would
/// match; real names share fewer words. Both ways of searching ask this.
pub(crate) fn routable(item: &Item) -> Item {
    let words: Vec<&str> = item.query.split_whitespace().collect();
    Item { query: words.get(1..).unwrap_or(&words).join(" "), ..item.clone() }
}

impl TierFigures {
    pub(crate) fn of(outcomes: &[(Outcome, Counts)]) -> TierFigures {
        let n = outcomes.len().max(1) as f64;
        let mean = |f: &dyn Fn(&(Outcome, Counts)) -> f64| outcomes.iter().map(f).sum::<f64>() / n;
        TierFigures {
            success: mean(&|(o, _)| f64::from(u8::from(o.success))),
            messages_per_query: mean(&|(o, _)| o.messages as f64),
            up_up_per_query: mean(&|(_, c)| c.up_up as f64),
            up_leaf_per_query: mean(&|(_, c)| c.up_leaf as f64),
            udp_per_query: mean(&|(_, c)| c.udp_queries as f64),
            datagrams_per_query: mean(&|(_, c)| c.datagrams as f64),
            elapsed_ms: mean(&|(o, _)| o.elapsed_ms),
        }
    }
}

fn record(
    settings: &Settings,
    plan: &Plan,
    step: usize,
    planned: PlannedQuery,
    flood: Outcome,
    ring: Option<Outcome>,
) -> QueryRecord {
    let item = &plan.catalog.items()[planned.item];
    QueryRecord {
        step,
        node: node_addr(planned.node, settings.port).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        item: item.name.clone(),
        query: item.query.clone(),
        copies: item.holders.len(),
        available: true,
        flood,
        ring,
        fetch: None,
    }
}

/// Virtual time: nanoseconds since the simulation began.
type Nanos = u64;

fn nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One end of a link, as its node sees it.
struct Link {
    /// The number this node knows the link by.
    peer: PeerId,
    /// The node at the other end, and its number for the link.
    remote: usize,
    remote_peer: PeerId,
    /// One-way delay.
    latency: Nanos,
    /// When this end's upload is done with what it was given to send.
    busy_until: Nanos,
}

/// An event on its way to a node.
struct Scheduled {
    at: Nanos,
    seq: u64,
    to: usize,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What all cores counted together since the start.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    queries_sent: u64,
    /// Of those, between two ultrapeers and between an ultrapeer and a leaf
    /// (a two-tier network only).
    pub(crate) up_up: u64,
    pub(crate) up_leaf: u64,
    /// Of those, sent over UDP (GUESS).
    udp_queries: u64,
    /// Datagrams sent, whatever they carried.
    datagrams: u64,
    duplicates: u64,
    rate_limited: u64,
}

impl Counts {
    pub(crate) fn since(self, earlier: Counts) -> Counts {
        Counts {
            queries_sent: self.queries_sent - earlier.queries_sent,
            up_up: self.up_up - earlier.up_up,
            up_leaf: self.up_leaf - earlier.up_leaf,
            udp_queries: self.udp_queries - earlier.udp_queries,
            datagrams: self.datagrams - earlier.datagrams,
            duplicates: self.duplicates - earlier.duplicates,
            rate_limited: self.rate_limited - earlier.rate_limited,
        }
    }
}

/// The catalog as each node's library: what a lookup finds on a node.
struct Library<'a> {
    catalog: &'a Catalog,
    /// Keyword → the items whose name has it, in increasing order.
    by_keyword: BTreeMap<String, Vec<usize>>,
    by_urn: BTreeMap<Urn, usize>,
    /// The items matching each query text met so far, so that each text is
    /// split into keywords once.
    matching: BTreeMap<String, Vec<usize>>,
}

impl<'a> Library<'a> {
    fn new(catalog: &'a Catalog) -> Library<'a> {
        let mut by_keyword: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut by_urn = BTreeMap::new();
        for (i, item) in catalog.items().iter().enumerate() {
            for word in search::keywords(&item.name).into_iter().collect::<BTreeSet<_>>() {
                by_keyword.entry(word).or_default().push(i);
            }
            by_urn.insert(item.sha1, i);
            by_urn.insert(item.sha256, i);
        }
        Library { catalog, by_keyword, by_urn, matching: BTreeMap::new() }
    }

    /// What node `node`'s index would find: any of the URNs if there are
    /// some, else every word (as `search`'s index matches), at most `limit`.
    fn look_up(&mut self, node: usize, query: &search::Query) -> Vec<SharedFile> {
        let limit = query.limit.min(search::MAX_RESULTS);
        let urn_items: Vec<usize>;
        let matching: &[usize] = if query.urns.is_empty() {
            if !self.matching.contains_key(&query.words) {
                let items = items_with_words(&self.by_keyword, &query.words);
                self.matching.insert(query.words.clone(), items);
            }
            self.matching.get(&query.words).map_or(&[][..], Vec::as_slice)
        } else {
            let found: BTreeSet<usize> =
                query.urns.iter().take(search::MAX_QUERY_URNS).filter_map(|u| self.by_urn.get(u)).copied().collect();
            urn_items = found.into_iter().collect();
            &urn_items
        };
        let shared = self.catalog.shared_by(node);
        shared
            .iter()
            .enumerate()
            .filter(|(_, item)| matching.binary_search(item).is_ok())
            .take(limit)
            .map(|(index, &item)| shared_file(index, &self.catalog.items()[item]))
            .collect()
    }
}

/// The items whose names hold every keyword of `words`; none without keywords.
fn items_with_words(by_keyword: &BTreeMap<String, Vec<usize>>, words: &str) -> Vec<usize> {
    let mut keywords: Vec<String> = Vec::new();
    for word in search::keywords(words) {
        if keywords.len() == search::MAX_QUERY_WORDS {
            break;
        }
        if !keywords.contains(&word) {
            keywords.push(word);
        }
    }
    let Some((first, rest)) = keywords.split_first() else { return Vec::new() };
    let mut items = by_keyword.get(first).cloned().unwrap_or_default();
    for word in rest {
        let with = by_keyword.get(word).map_or(&[][..], Vec::as_slice);
        items.retain(|i| with.binary_search(i).is_ok());
    }
    items
}

fn shared_file(index: usize, item: &Item) -> SharedFile {
    SharedFile {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        name: item.name.clone(),
        path: PathBuf::from(&item.name),
        size: item.contents.len() as u64,
        sha1: item.sha1,
        sha256: item.sha256,
        tth: item.tth,
        signature: None,
    }
}

/// SplitMix64: a well-mixed number from a seed, for the link model, which
/// must not depend on the order links come up in.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The simulated network under way.
struct Sim<'a> {
    settings: &'a Settings,
    plan: &'a Plan,
    /// The first this many nodes are ultrapeers and the others leaves; 0
    /// for a flat network.
    ultrapeers: usize,
    nodes: Vec<Node>,
    /// Each node's links.
    links: Vec<Vec<Link>>,
    library: Library<'a>,
    /// The instant virtual time 0 stands for, which the cores count from.
    base: Instant,
    now: Nanos,
    /// Events on their way, the earliest first.
    events: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
    /// Core timers, the earliest first; an entry is live only while it
    /// matches `timer_at` for its node.
    timers: BinaryHeap<Reverse<(Nanos, usize)>>,
    timer_at: Vec<Nanos>,
    next_peer: u64,
    /// Link ends up.
    linked: usize,
    /// Queries and QueryHits on their way.
    searching: u64,
    /// When the last Query or QueryHit arrived.
    last_search_message: Nanos,
    counts: Counts,
}

impl<'a> Sim<'a> {
    /// Builds a core per node, lets each dial its older neighbours as the
    /// real network does, and waits until every link of the graph is up.
    /// With `udp`, the cores take datagrams, which the simulator carries
    /// between them as it carries links.
    fn start(settings: &'a Settings, plan: &'a Plan, ultrapeers: usize, udp: bool) -> Result<Sim<'a>, Error> {
        let base = Instant::now();
        let count = plan.topology.nodes();
        let trust = SharedTrust::new(TrustStore::in_memory());
        let addr = |i: usize| node_addr(i, settings.port).ok_or(Error::Settings(format!("at most {MAX_NODES} nodes")));
        let mut nodes = Vec::with_capacity(count);
        for i in 0..count {
            let peers = plan.topology.dials(i).map(addr).collect::<Result<Vec<_>, _>>()?;
            let up_links = plan.topology.neighbours(i).iter().filter(|&&n| n < ultrapeers).count();
            let (role, max_peers, max_leaves) = match ultrapeers {
                0 => (Role::Ultrapeer, plan.topology.neighbours(i).len(), 0),
                _ if i < ultrapeers => {
                    (Role::Ultrapeer, up_links, (plan.topology.neighbours(i).len() - up_links).max(1))
                }
                _ => (Role::Leaf, up_links, 0),
            };
            let config = Config {
                listen: SocketAddr::V4(addr(i)?),
                max_peers,
                max_leaves,
                role,
                discover: false,
                peers,
                tick: TICK,
                host_cache_capacity: HOST_CACHE_CAPACITY,
                ping_interval: PING_INTERVAL,
                udp,
                ..Config::default()
            };
            let shared = plan.catalog.shared_by(i);
            let bytes = shared.iter().map(|&item| plan.catalog.items()[item].contents.len() as u64).sum();
            let library = (u32::try_from(shared.len()).unwrap_or(u32::MAX), bytes);
            let rng = StdRng::seed_from_u64(mix(settings.seed ^ mix(i as u64)));
            // Timers start spread over one tick, as servents are not started in step.
            let start = base + Duration::from_nanos(mix(settings.seed ^ mix(!(i as u64))) % nanos(TICK));
            nodes.push(Node::new(config, rng, trust.clone(), library, start));
        }
        if ultrapeers > 0 {
            // What each library's QRP table holds, as the servent builds it.
            for (i, node) in nodes.iter_mut().enumerate() {
                let files: Vec<SharedFile> = plan
                    .catalog
                    .shared_by(i)
                    .iter()
                    .map(|&item| shared_file(item, &plan.catalog.items()[item]))
                    .collect();
                let table =
                    RouteTable::from_library(files.iter().map(|f| f.name.as_str()), files.iter().map(|f| &f.sha1));
                node.handle(Event::LibraryTable(table), base);
            }
        }
        let mut sim = Sim {
            settings,
            plan,
            ultrapeers,
            nodes,
            links: (0..count).map(|_| Vec::new()).collect(),
            library: Library::new(&plan.catalog),
            base,
            now: 0,
            events: BinaryHeap::new(),
            next_seq: 0,
            timers: BinaryHeap::new(),
            timer_at: vec![Nanos::MAX; count],
            next_peer: 1,
            linked: 0,
            searching: 0,
            last_search_message: 0,
            counts: Counts::default(),
        };
        for i in 0..count {
            sim.reschedule(i);
        }
        sim.link_up()?;
        Ok(sim)
    }

    fn link_up(&mut self) -> Result<(), Error> {
        let wanted = 2 * self.plan.topology.edges();
        let limit = nanos(LINK_LIMIT);
        while self.linked < wanted {
            if self.next_at().is_none_or(|at| at > limit) {
                return Err(Error::Timeout(format!(
                    "after {} virtual seconds, {} of {wanted} link ends are up",
                    LINK_LIMIT.as_secs(),
                    self.linked
                )));
            }
            self.step();
        }
        self.advance_to(self.now + nanos(SETTLE_AFTER_LINKING));
        Ok(())
    }

    /// Whether node `i` is a leaf of the two-tier network.
    fn is_leaf(&self, i: usize) -> bool {
        self.ultrapeers > 0 && i >= self.ultrapeers
    }

    /// Whether a dynamic query for `origin`'s search still runs at it or
    /// at one of its neighbours (a leaf's ultrapeers run its queries).
    fn querying(&self, origin: usize) -> bool {
        std::iter::once(origin)
            .chain(self.plan.topology.neighbours(origin).iter().copied())
            .any(|i| self.nodes[i].dynamic_queries() > 0)
    }

    /// Virtual time since the start.
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    /// The time of the next event or live timer.
    fn next_at(&mut self) -> Option<Nanos> {
        while let Some(&Reverse((at, node))) = self.timers.peek() {
            if self.timer_at[node] == at {
                break;
            }
            self.timers.pop();
        }
        let event = self.events.peek().map(|Reverse(s)| s.at);
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        match (event, timer) {
            (Some(e), Some(t)) => Some(e.min(t)),
            (e, t) => e.or(t),
        }
    }

    /// Delivers the earliest event, or fires the earliest timer (events
    /// first at the same time).
    fn step(&mut self) {
        let Some(at) = self.next_at() else { return };
        self.now = self.now.max(at);
        if self.events.peek().is_some_and(|Reverse(s)| s.at == at) {
            if let Some(Reverse(scheduled)) = self.events.pop() {
                self.deliver(scheduled.to, scheduled.event);
            }
        } else if let Some(Reverse((_, node))) = self.timers.pop() {
            self.timer_at[node] = Nanos::MAX;
            let now = self.instant();
            self.nodes[node].handle_timeout(now);
            self.drain(node);
        }
    }

    /// Runs everything due until `until`, and sets the clock there.
    fn advance_to(&mut self, until: Nanos) {
        while self.next_at().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    fn deliver(&mut self, to: usize, event: Event) {
        match &event {
            Event::Message { message, .. } if is_search(message) => {
                self.searching -= 1;
                self.last_search_message = self.now;
            }
            Event::Datagram { .. } => {
                self.searching -= 1;
                self.last_search_message = self.now;
            }
            Event::Connected(_) => self.linked += 1,
            Event::Closed { .. } => self.linked = self.linked.saturating_sub(1),
            _ => {}
        }
        let before = drops(&self.nodes[to]);
        let now = self.instant();
        self.nodes[to].handle(event, now);
        let after = drops(&self.nodes[to]);
        self.counts.duplicates += after.0 - before.0;
        self.counts.rate_limited += after.1 - before.1;
        self.drain(to);
    }

    /// Carries out everything node `i` asked for, then sets its timer.
    fn drain(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].poll_action() {
            self.carry(i, action);
        }
        self.reschedule(i);
    }

    fn reschedule(&mut self, i: usize) {
        let at = self.nodes[i].poll_timeout().map_or(Nanos::MAX, |t| nanos(t.saturating_duration_since(self.base)));
        if at != self.timer_at[i] {
            self.timer_at[i] = at;
            if at != Nanos::MAX {
                self.timers.push(Reverse((at, i)));
            }
        }
    }

    fn schedule(&mut self, at: Nanos, to: usize, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push(Reverse(Scheduled { at, seq, to, event }));
    }

    fn carry(&mut self, from: usize, action: Action) {
        match action {
            Action::Send { to, message } => self.send(from, to, message),
            Action::Close { peer, bye, reason } => self.close(from, peer, bye, reason),
            Action::Dial(addr) => self.dial(from, addr),
            Action::LookUp { lookup, query } => {
                let files = self.library.look_up(from, &query);
                let now = self.instant();
                self.nodes[from].handle(Event::LocalResults { lookup, files }, now);
            }
            Action::SendDatagram { to, message } => self.send_datagram(from, to, &message),
            // Nothing here asks GWebCaches, saves hosts, downloads, switches roles,
            // pushes or looks names up.
            Action::AskGWebCaches(_)
            | Action::SaveHosts(_)
            | Action::Advertise(_)
            | Action::OfferSource { .. }
            | Action::Role { .. }
            | Action::Notice(_)
            | Action::ConnectBack { .. }
            | Action::ProbeBack { .. }
            | Action::PushSource { .. }
            | Action::GiveWay(_)
            | Action::Resolve { .. } => {}
        }
    }

    /// Puts a descriptor on a link: it leaves once the sender's upload has
    /// sent what was queued before it and itself, and arrives `latency` later.
    fn send(&mut self, from: usize, peer: PeerId, message: Message) {
        let upload = UPLOAD_KBITS[(mix(self.settings.seed ^ mix(from as u64) ^ 0x55) % 3) as usize];
        let Some(link) = self.links[from].iter_mut().find(|l| l.peer == peer) else { return };
        let transmit = message.encoded_len() as u64 * 8 * 1_000_000 / upload;
        let leaves = link.busy_until.max(self.now) + transmit;
        link.busy_until = leaves;
        let (at, to, remote_peer) = (leaves + link.latency, link.remote, link.remote_peer);
        if matches!(message.payload, Payload::Query(_)) {
            self.counts.queries_sent += 1;
            if self.ultrapeers > 0 {
                if from < self.ultrapeers && to < self.ultrapeers {
                    self.counts.up_up += 1;
                } else {
                    self.counts.up_leaf += 1;
                }
            }
        }
        if is_search(&message) {
            self.searching += 1;
        }
        self.schedule(at, to, Event::Message { peer: remote_peer, message });
    }

    /// Sends a datagram: it arrives at the node listening on `to` (as its
    /// bytes, from `from`'s address) after the pair's latency, and is lost
    /// if nobody listens there. Datagrams are all a search's (GUESS,
    /// out-of-band hits and their claims), so a round waits for them too.
    fn send_datagram(&mut self, from: usize, to: SocketAddrV4, message: &Message) {
        let port = self.settings.port;
        let (Some(to), Some(source)) =
            (node_index(to, port).filter(|&to| to < self.nodes.len()), node_addr(from, port))
        else {
            return;
        };
        self.counts.datagrams += 1;
        if matches!(message.payload, Payload::Query(_)) {
            self.counts.queries_sent += 1;
            self.counts.udp_queries += 1;
        }
        self.searching += 1;
        let at = self.now + self.latency(from, to);
        self.schedule(at, to, Event::Datagram { from: source, bytes: message.encode() });
    }

    /// The one-way latency between two nodes, drawn once per pair.
    fn latency(&self, one: usize, other: usize) -> Nanos {
        let (a, b) = (one.min(other) as u64, one.max(other) as u64);
        let spread = LATENCY_US.end() - LATENCY_US.start() + 1;
        1_000 * (LATENCY_US.start() + mix(self.settings.seed ^ mix(a << 32 | b)) % spread)
    }

    fn close(&mut self, from: usize, peer: PeerId, bye: Option<Message>, reason: String) {
        let Some(position) = self.links[from].iter().position(|l| l.peer == peer) else { return };
        if let Some(bye) = bye {
            self.send(from, peer, bye);
        }
        let link = self.links[from].remove(position);
        self.linked = self.linked.saturating_sub(1);
        self.links[link.remote].retain(|l| l.peer != link.remote_peer);
        let at = link.busy_until.max(self.now) + link.latency;
        self.schedule(at, link.remote, Event::Closed { peer: link.remote_peer, reason });
    }

    /// A connection attempt: the node at `addr` admits or refuses it now;
    /// the dialer learns the answer a round trip later, the listener has the
    /// link after the handshake's third step.
    fn dial(&mut self, from: usize, addr: SocketAddrV4) {
        let port = self.settings.port;
        let Some(to) = node_index(addr, port).filter(|&to| to < self.nodes.len() && to != from) else {
            self.schedule(self.now, from, Event::DialFailed { addr, try_hosts: Vec::new() });
            return;
        };
        let latency = self.latency(from, to);
        let Some(from_addr) = node_addr(from, port) else { return };
        let leaf = self.is_leaf(from);
        match self.nodes[to].admit(SocketAddr::V4(from_addr)) {
            // In a flat network of ultrapeers with no leaf slots any refusal is "full".
            (Admission::LeavesOnly { try_ultrapeers }, _) if !leaf => {
                self.schedule(self.now + 2 * latency, from, Event::DialFailed { addr, try_hosts: try_ultrapeers });
            }
            (Admission::UltrapeersOnly { try_ultrapeers }, _) if leaf => {
                self.schedule(self.now + 2 * latency, from, Event::DialFailed { addr, try_hosts: try_ultrapeers });
            }
            (Admission::Full { try_ultrapeers }, _) => {
                self.schedule(self.now + 2 * latency, from, Event::DialFailed { addr, try_hosts: try_ultrapeers });
            }
            (Admission::Accept | Admission::LeavesOnly { .. } | Admission::UltrapeersOnly { .. }, _) => {
                let (dialer, listener) = (PeerId(self.next_peer), PeerId(self.next_peer + 1));
                self.next_peer += 2;
                let link = |peer, remote, remote_peer| Link { peer, remote, remote_peer, latency, busy_until: 0 };
                self.links[from].push(link(dialer, to, listener));
                self.links[to].push(link(listener, from, dialer));
                let stated = |i: usize| match self.ultrapeers {
                    0 => PeerInfo::default(),
                    _ if self.is_leaf(i) => PeerInfo::stated(Role::Leaf, 0, routing::DEFAULT_MAX_TTL),
                    _ => {
                        let degree = self.plan.topology.neighbours(i).iter().filter(|&&n| n < self.ultrapeers).count();
                        PeerInfo::stated(Role::Ultrapeer, degree as u32, routing::DEFAULT_MAX_TTL)
                    }
                };
                let (to_info, from_info) = (stated(to), stated(from));
                let info = |listen: SocketAddrV4, stated: PeerInfo| PeerInfo {
                    listen: Some(SocketAddr::V4(listen)),
                    ..stated
                };
                let outgoing = Connected {
                    peer: dialer,
                    addr: SocketAddr::V4(addr),
                    local: SocketAddr::V4(from_addr),
                    info: info(addr, to_info),
                    direction: Direction::Outgoing,
                    dialed: Some(addr),
                };
                let incoming = Connected {
                    peer: listener,
                    addr: SocketAddr::V4(SocketAddrV4::new(*from_addr.ip(), 40_000)),
                    local: SocketAddr::V4(addr),
                    info: info(from_addr, from_info),
                    direction: Direction::Incoming,
                    dialed: None,
                };
                self.schedule(self.now + 2 * latency, from, Event::Connected(Box::new(outgoing)));
                self.schedule(self.now + 3 * latency, to, Event::Connected(Box::new(incoming)));
            }
        }
    }

    /// One search from `origin` until no Query or QueryHit is on its way,
    /// then the quiet period. Returns its id, how long it took and whether
    /// it ended within [`SETTLE_LIMIT`].
    /// Without a TTL the search runs dynamically, and the round lasts
    /// until its dynamic queries end too (at most [`dynamic::LIFETIME`]).
    fn round(&mut self, origin: usize, text: &str, ttl: Option<u8>) -> Result<(Guid, Nanos, bool), Error> {
        let sent = self.now;
        let now = self.instant();
        let guid = self.nodes[origin]
            .search(text, ttl, now)
            .map_err(|e| Error::Settings(format!("node {origin} refused the search {text:?}: {e}")))?;
        self.drain(origin);
        self.last_search_message = sent;
        let limit = sent + nanos(if ttl.is_some() { SETTLE_LIMIT } else { dynamic::LIFETIME });
        let mut settled = true;
        while self.searching > 0 || (ttl.is_none() && self.querying(origin)) {
            if self.next_at().is_none_or(|at| at > limit) {
                settled = false;
                break;
            }
            self.step();
        }
        let end = if settled { self.last_search_message + nanos(self.settings.quiet) } else { limit };
        self.advance_to(end);
        Ok((guid, end - sent, settled))
    }

    /// Floods a query for `item` from `origin` with `ttl`.
    fn flood(&mut self, origin: usize, item: &Item, ttl: u8) -> Result<Outcome, Error> {
        let before = self.counts;
        let (guid, elapsed, settled) = self.round(origin, &item.query, Some(ttl))?;
        Ok(self.outcome(origin, guid, ttl, item, before, elapsed, settled, 0))
    }

    /// Asks for `item` from `origin` dynamically: the ultrapeers widen it.
    fn dynamic(&mut self, origin: usize, item: &Item) -> Result<(Outcome, Counts), Error> {
        let before = self.counts;
        let (guid, elapsed, settled) = self.round(origin, &item.query, None)?;
        Ok((self.outcome(origin, guid, 0, item, before, elapsed, settled, 0), self.counts.since(before)))
    }

    /// Asks for `item` from `origin` in rings of TTL 1, 2, … up to the
    /// run's TTL, until one finds it.
    fn ring(&mut self, origin: usize, item: &Item) -> Result<Outcome, Error> {
        let before = self.counts;
        let mut waited = 0;
        let mut ttl = 1;
        loop {
            let (guid, elapsed, settled) = self.round(origin, &item.query, Some(ttl))?;
            let found = self.nodes[origin]
                .search_results(&guid)
                .is_some_and(|s| s.results().iter().any(|r| experiment::is_genuine(r, item)));
            if found || ttl >= self.settings.ttl {
                return Ok(self.outcome(origin, guid, ttl, item, before, elapsed, settled, waited));
            }
            waited += elapsed;
            ttl += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        origin: usize,
        guid: Guid,
        ttl: u8,
        item: &Item,
        before: Counts,
        elapsed: Nanos,
        settled: bool,
        waited: Nanos,
    ) -> Outcome {
        let counts = self.counts.since(before);
        let ms = |nanos: Nanos| nanos as f64 / 1e6;
        let search = self.nodes[origin].search_results(&guid);
        let genuine: Vec<_> = search
            .map(|s| s.results().iter().filter(|r| experiment::is_genuine(r, item)).collect())
            .unwrap_or_default();
        Outcome {
            ttl,
            success: !genuine.is_empty(),
            messages: counts.queries_sent,
            duplicates: counts.duplicates,
            first_hit_ms: search.and_then(|s| s.first_hit_after).map(|d| ms(nanos(d) + waited)),
            hits: search.map_or(0, |s| s.hits_received),
            sources: genuine.iter().map(|r| r.sources.len()).sum(),
            rate_limited: counts.rate_limited,
            queue_full: 0,
            elapsed_ms: ms(elapsed + waited),
            settled,
        }
    }

    /// The network's facts; times are virtual, memory is the heap's peak.
    fn facts(&self, setup: Duration) -> experiment::NetworkFacts {
        let mut facts = experiment::facts(self.settings, self.plan, setup);
        facts.rss_mb_per_node = None;
        // Whole KiB: the core's hash tables grow by their per-process hash
        // seeds, which moves the peak by a few bytes per node between runs.
        let per_node = |bytes: usize| ((bytes / self.nodes.len().max(1) + 512) / 1024 * 1024) as u64;
        facts.bytes_per_node = heap_peak().map(per_node);
        facts
    }
}

/// Whether a descriptor is a search's: a Query or a QueryHit.
fn is_search(message: &Message) -> bool {
    matches!(message.payload, Payload::Query(_) | Payload::QueryHit(_))
}

/// A core's duplicates and rate-limited Queries so far.
fn drops(node: &Node) -> (u64, u64) {
    let dropped = &node.totals().dropped;
    let count = |reason| dropped.get(&reason).copied().unwrap_or(0);
    (count(DropReason::Duplicate), count(DropReason::RateLimited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_extend_the_real_networks_and_invert() {
        for index in [0, 253, 254, crate::net::MAX_NODES - 1] {
            assert_eq!(node_addr(index, 6346), crate::net::node_addr(index, 6346));
        }
        assert_eq!(node_addr(crate::net::MAX_NODES, 1).unwrap().to_string(), "127.1.1.1:1");
        for index in [0, 1, 253, 254, 64_515, 64_516, 99_999, MAX_NODES - 1] {
            assert_eq!(node_index(node_addr(index, 7).unwrap(), 7), Some(index));
        }
        assert_eq!(node_index(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 7), 7), None);
        assert_eq!(node_index(node_addr(5, 7).unwrap(), 8), None);
    }

    #[test]
    fn library_finds_by_every_word_or_any_urn_only_what_the_node_holds() {
        let all: Vec<usize> = (0..20).collect();
        let catalog =
            Catalog::generate(30, 20, &all, 0.2, crate::Distribution::Uniform, &mut StdRng::seed_from_u64(1)).unwrap();
        let mut library = Library::new(&catalog);
        let item = &catalog.items()[7];
        let holder = item.holders[0];
        let stranger = (0..20).find(|n| !item.holders.contains(n)).unwrap();
        let words = |text: &str| search::Query { words: text.into(), urns: Vec::new(), limit: 10 };
        let found = library.look_up(holder, &words(&item.query));
        assert_eq!(found.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), [item.name.as_str()]);
        assert!(library.look_up(stranger, &words(&item.query)).is_empty());
        assert!(library.look_up(holder, &words("SEBLINUX pkg 007 absent")).is_empty());
        assert!(library.look_up(holder, &words("\\")).is_empty());
        let by_urn = search::Query { words: "\\".into(), urns: vec![item.sha256], limit: 10 };
        assert_eq!(library.look_up(holder, &by_urn)[0].sha1, item.sha1);
        let everything = library.look_up(holder, &words("seblinux"));
        assert_eq!(everything.len(), catalog.shared_by(holder).len());
        assert_eq!(library.look_up(holder, &search::Query { limit: 1, ..words("seblinux") }).len(), 1);
    }
}
