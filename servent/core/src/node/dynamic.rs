//! Dynamic querying: an ultrapeer's search widened step by step until
//! enough results came, instead of flooded at once.
//!
//! Flooding a query at TTL 7 reaches everyone and costs a message per link
//! of the whole horizon, even for content one hop away. An ultrapeer runs
//! each of its own searches and each of its leaves' queries this way, as
//! gtk-gnutella's `dq.c` and LimeWire's `QueryHandler` do (gtk-gnutella's
//! `doc/gnutella/dynamic_query`):
//!
//! 1. **Probe**: the query goes to [`PROBE_ULTRAPEERS`] neighbours, those
//!    whose last-hop QRP table matches it first, at TTL 1 when at least
//!    that many tables match (the content is one hop away), else TTL 2.
//! 2. **Widen**: after each wait ([`RESULT_TIMEOUT`], shortened down to
//!    [`MIN_TIMEOUT`] while results are scarce) one more neighbour gets it,
//!    at the highest TTL whose theoretical horizon, `Σ (degree−1)^i` damped
//!    by [`FUZZY`] per hop, stays within its share of the hosts still
//!    needed at the rate of results per host seen so far (gtk-gnutella's
//!    `dq_select_ttl`, which rounds down to be conservative). A neighbour
//!    whose table does not match never gets it at TTL 1.
//! 3. **Stop** when the results reach the target ([`OWN_RESULTS`] for ours,
//!    [`LEAF_RESULTS`] for a leaf's, which also asks its other
//!    ultrapeers), when every neighbour had it, when the horizon passes
//!    [`MAX_HORIZON`], after [`LIFETIME`], or when the leaf says stop.
//!
//! **Leaf guidance**: for a leaf-guided query of a leaf that announced
//! Query Status, the leaf is asked how many results it kept once
//! [`STATUS_EVERY`] neighbours were queried since its last answer (while
//! its hits come through us, only once [`MIN_NEW_FOR_GUIDANCE`] new ones
//! came: we count those ourselves); its answer replaces our count
//! (divided by [`ULTRAPEERS_PER_LEAF`], as it counts hits from all its
//! ultrapeers, plus what came since), and 0xFFFF stops the query. The
//! query waits for the answer at most [`STATUS_TIMEOUT`], then queries the
//! next neighbour before asking again. A leaf that never answered, after
//! [`MAX_STATUS_TIMEOUTS`] silences, guides the query no more: it goes on
//! unguided, counting the hits that come through us, and ends at once if
//! they go out of band (we could count none), as gtk-gnutella's `dq.c`
//! (`dq_results_expired`). An unsolicited answer makes it guided again.
//!
//! Pure: time is passed in, and what to send comes back as [`Step`]s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::routing::PeerId;
use crate::wire::vendor::query_status::QueryStatus;
use crate::wire::{Guid, Message, Payload, Query};

/// Neighbours the probe goes to.
pub const PROBE_ULTRAPEERS: usize = 3;
/// Results our own search wants (gtk-gnutella's `SEARCH_MAX_RESULTS`).
pub const OWN_RESULTS: usize = 150;
/// Results a leaf's query wants from us: a leaf asks about three ultrapeers.
pub const LEAF_RESULTS: usize = OWN_RESULTS / ULTRAPEERS_PER_LEAF;
/// Ultrapeers a leaf is assumed to query at once.
pub const ULTRAPEERS_PER_LEAF: usize = 3;
/// A query by hash wants this many times fewer results (gtk-gnutella's
/// `DQ_SHA1_DECIMATOR`).
pub const URN_DECIMATOR: usize = 25;
/// The highest TTL a dynamic query uses.
pub const MAX_TTL: u8 = 5;
/// Wait for results after each neighbour queried.
pub const RESULT_TIMEOUT: Duration = Duration::from_millis(3700);
/// Extra wait per neighbour probed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// The shortest wait between two neighbours.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1500);
/// How much the wait shortens at each step while results are scarce.
pub const TIMEOUT_ADJUST: Duration = Duration::from_millis(100);
/// A dynamic query ends after this long, whatever happened.
pub const LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Hosts reached after which a query stops widening.
pub const MAX_HORIZON: u64 = 500_000;
/// Horizon from which scarce results shorten the wait.
pub const MIN_HORIZON: u64 = 3000;
/// Results per [`MIN_HORIZON`] hosts under which results are scarce.
pub const LOW_RESULTS: u64 = 10;
/// The leaf is asked for its count every this many neighbours queried.
pub const STATUS_EVERY: usize = 3;
/// How long a leaf's answer is waited for.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(40);
/// Unanswered status requests after which a leaf that never answered
/// guides the query no more.
pub const MAX_STATUS_TIMEOUTS: u32 = 2;
/// New results routed through us below which the leaf is not asked: we
/// counted them ourselves (gtk-gnutella's `DQ_MIN_FOR_GUIDANCE`).
pub const MIN_NEW_FOR_GUIDANCE: usize = 20;
/// Each hop reaches this share of the hosts the degree promises (cycles, flow control).
pub const FUZZY: f64 = 0.8;

/// Hosts a query sent at `ttl` to a neighbour of `degree` reaches, in theory.
pub fn horizon(degree: u32, ttl: u8) -> u64 {
    let fan = f64::from(degree.clamp(1, 50).saturating_sub(1));
    let ttl = i32::from(ttl.clamp(1, MAX_TTL));
    let hosts: f64 = (0..ttl).map(|i| fan.powi(i)).sum();
    (hosts * FUZZY.powi(ttl - 1)) as u64
}

/// A neighbour a dynamic query may go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The link.
    pub peer: PeerId,
    /// Its `X-Degree`, or what a deployed ultrapeer has.
    pub degree: u32,
    /// The highest TTL it takes (`X-Max-TTL`).
    pub max_ttl: u8,
    /// Whether its last-hop QRP table matches the query; `None` without a table.
    pub matches: Option<bool>,
}

/// Whose query it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Our own search.
    Own,
    /// A leaf's query.
    Leaf {
        /// The leaf.
        peer: PeerId,
        /// Whether it asked for guidance and understands Query Status.
        guided: bool,
    },
}

/// What a dynamic query wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Send the query to this neighbour.
    Send {
        /// The neighbour.
        to: PeerId,
        /// The query, at the TTL chosen.
        message: Message,
    },
    /// Ask the leaf how many results it kept.
    AskStatus(PeerId),
}

/// One query run dynamically; see the module documentation.
#[derive(Debug)]
pub struct DynamicQuery {
    message: Message,
    origin: Origin,
    target: usize,
    ttl: u8,
    queried: BTreeMap<PeerId, u8>,
    horizon: u64,
    results: usize,
    guidance: Option<usize>,
    since_guidance: usize,
    since_status: usize,
    status_timeouts: u32,
    waiting_status: Option<Instant>,
    timeout: Duration,
    started: Instant,
    next: Instant,
    deadline: Instant,
    done: bool,
}

impl DynamicQuery {
    /// A query to run: `message` as it is to be sent (hops included), at
    /// most at `ttl` (capped at [`MAX_TTL`]).
    pub fn new(message: Message, origin: Origin, ttl: u8, now: Instant) -> DynamicQuery {
        let target = match origin {
            Origin::Own => OWN_RESULTS,
            Origin::Leaf { .. } => LEAF_RESULTS,
        };
        // A query by hash wants one file: its sources come sooner and fewer.
        let by_hash = matches!(&message.payload, Payload::Query(q) if !q.urns.is_empty());
        let target = if by_hash { (target / URN_DECIMATOR).max(1) } else { target };
        DynamicQuery {
            message,
            origin,
            target,
            ttl: ttl.clamp(1, MAX_TTL),
            queried: BTreeMap::new(),
            horizon: 0,
            results: 0,
            guidance: None,
            since_guidance: 0,
            since_status: 0,
            status_timeouts: 0,
            waiting_status: None,
            timeout: RESULT_TIMEOUT,
            started: now,
            next: now,
            deadline: now + LIFETIME,
            done: false,
        }
    }

    /// Whose query it is.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The query's GUID.
    pub fn guid(&self) -> Guid {
        self.message.guid
    }

    /// The query.
    pub fn query(&self) -> Option<&Query> {
        match &self.message.payload {
            Payload::Query(query) => Some(query),
            _ => None,
        }
    }

    /// The hops its copies go out with.
    pub fn hops(&self) -> u8 {
        self.message.hops
    }

    /// When it started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether it has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// When [`DynamicQuery::step`] is due.
    pub fn next_due(&self) -> Instant {
        match self.waiting_status {
            Some(asked) => (asked + STATUS_TIMEOUT).min(self.deadline),
            None => self.next.min(self.deadline),
        }
    }

    /// Hosts reached so far, in theory.
    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// Results counted so far: the leaf's guidance when it gave some.
    pub fn kept(&self) -> usize {
        match self.guidance {
            Some(kept) => kept / ULTRAPEERS_PER_LEAF + self.since_guidance,
            None => self.results,
        }
    }

    /// A hit with `results` results came back for it.
    pub fn on_results(&mut self, results: usize) {
        self.results += results;
        self.since_guidance += results;
    }

    /// Whether its leaf guides it now.
    pub fn is_guided(&self) -> bool {
        matches!(self.origin, Origin::Leaf { guided: true, .. })
    }

    /// The leaf's answer to a status request, or its unsolicited word,
    /// which makes the query guided again.
    pub fn on_status(&mut self, status: QueryStatus, now: Instant) {
        if status.is_stop() {
            self.done = true;
            return;
        }
        self.set_guided(true);
        self.guidance = Some(usize::from(status.0));
        self.since_guidance = 0;
        self.since_status = 0;
        if self.waiting_status.take().is_some() {
            self.next = self.next.min(now);
        }
    }

    fn set_guided(&mut self, now_guided: bool) {
        if let Origin::Leaf { guided, .. } = &mut self.origin {
            *guided = now_guided;
        }
    }

    /// The query's first step: the probe.
    pub fn start(&mut self, neighbours: &[Neighbour], now: Instant) -> Vec<Step> {
        let mut candidates: Vec<&Neighbour> = neighbours.iter().filter(|n| n.matches != Some(false)).collect();
        if candidates.is_empty() {
            return self.step(neighbours, now);
        }
        candidates.sort_by_key(|n| n.matches != Some(true));
        let matching = candidates.iter().filter(|n| n.matches == Some(true)).count();
        let ttl = if matching >= PROBE_ULTRAPEERS { 1 } else { 2.min(self.ttl) };
        let probed: Vec<Neighbour> = candidates.into_iter().take(PROBE_ULTRAPEERS).copied().collect();
        let steps = probed.iter().map(|n| self.send(n, ttl.min(n.max_ttl.max(1)))).collect();
        self.next = now + (self.timeout + PROBE_TIMEOUT) * probed.len() as u32;
        steps
    }

    /// Runs what is due at `now`: the next neighbour, a status request, or the end.
    pub fn step(&mut self, neighbours: &[Neighbour], now: Instant) -> Vec<Step> {
        if self.done || now < self.next_due() {
            return Vec::new();
        }
        if now >= self.deadline {
            self.done = true;
            return Vec::new();
        }
        let was_waiting = self.waiting_status.take().is_some();
        if was_waiting {
            self.status_timeouts += 1;
            if self.guidance.is_none() && self.status_timeouts >= MAX_STATUS_TIMEOUTS {
                self.set_guided(false);
            }
        }
        if self.kept() >= self.target || self.horizon >= MAX_HORIZON {
            self.done = true;
            return Vec::new();
        }
        if !self.followed() {
            self.done = true;
            return Vec::new();
        }
        if let Origin::Leaf { peer, guided: true } = self.origin {
            let counted_here = self.routes_hits() && self.since_guidance < MIN_NEW_FOR_GUIDANCE;
            if !was_waiting && self.since_status >= STATUS_EVERY && !counted_here {
                self.waiting_status = Some(now);
                return vec![Step::AskStatus(peer)];
            }
        }
        let left: Vec<&Neighbour> = neighbours.iter().filter(|n| !self.queried.contains_key(&n.peer)).collect();
        let mut order = left.clone();
        order.sort_by_key(|n| n.matches != Some(true));
        let chosen = order.into_iter().find_map(|n| {
            let ttl = self.select_ttl(n, left.len());
            (ttl > 1 || n.matches != Some(false)).then_some((*n, ttl))
        });
        let Some((neighbour, ttl)) = chosen else {
            self.done = true;
            return Vec::new();
        };
        let step = self.send(&neighbour, ttl);
        if self.horizon > MIN_HORIZON && (self.kept() as u64) < LOW_RESULTS * self.horizon / MIN_HORIZON {
            self.timeout = self.timeout.saturating_sub(TIMEOUT_ADJUST).max(MIN_TIMEOUT);
        }
        self.next = now + self.timeout;
        vec![step]
    }

    /// Whether we can tell how the query fares: its leaf guides it, or its
    /// hits come through us. A leaf's unguided query wanting its hits out
    /// of band counts none here, so it ends after the probe (or once its
    /// leaf stopped guiding it), as in gtk-gnutella's `dq.c` (neither
    /// `LEAF_GUIDED` nor `ROUTING_HITS`).
    fn followed(&self) -> bool {
        match self.origin {
            Origin::Own | Origin::Leaf { guided: true, .. } => true,
            Origin::Leaf { guided: false, .. } => self.routes_hits(),
        }
    }

    /// Whether its hits come back through us rather than out of band.
    fn routes_hits(&self) -> bool {
        !self.query().is_some_and(|q| q.flags.wants_oob_reply())
    }

    /// The highest TTL whose horizon through `n` stays within its share of
    /// the hosts still needed, spread over the `left` neighbours not
    /// queried yet; 1 when even that is too many.
    fn select_ttl(&self, n: &Neighbour, left: usize) -> u8 {
        let max = self.ttl.min(n.max_ttl).max(1);
        let needed = self.target.saturating_sub(self.kept()) as f64;
        // With the leaf's guidance, the rate counts what it kept through all
        // its ultrapeers (our share of it): hits routed back through another
        // of its ultrapeers were found within our horizon too.
        let found = match self.guidance {
            Some(kept) => kept as f64 / ULTRAPEERS_PER_LEAF as f64 + self.since_guidance as f64,
            None => self.results as f64,
        };
        let per_host = found / self.horizon.max(1) as f64;
        let hosts = needed / per_host.max(0.000_001) / left.max(1) as f64;
        (1..=max).rev().find(|&ttl| horizon(n.degree, ttl) as f64 <= hosts).unwrap_or(1)
    }

    fn send(&mut self, n: &Neighbour, ttl: u8) -> Step {
        self.queried.insert(n.peer, ttl);
        self.horizon += horizon(n.degree, ttl);
        self.since_status += 1;
        let mut message = self.message.clone();
        message.ttl = ttl;
        Step::Send { to: n.peer, message }
    }
}

#[cfg(test)]
mod tests;
