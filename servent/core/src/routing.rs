//! Message routing: the rules of a Gnutella 0.6 ultrapeer, as a pure state
//! machine.
//!
//! Queries are flooded: each one is forwarded to every neighbour but the one
//! it came from, its TTL decremented and its hops incremented, until the TTL
//! runs out. Every servent remembers which neighbour each Query GUID came
//! from (the *reverse route*), so QueryHits travel back along the path the
//! Query took and nowhere else; a GUID seen twice is a duplicate and dropped,
//! which is what keeps flooding from looping. Pings are not flooded: with
//! pong caching a servent answers a Ping itself, with its own Pong and the
//! freshest Pongs it has cached from its neighbours.
//!
//! [`Router::handle`] takes a message, the neighbour it came from and the
//! current time, and returns the [`Action`]s the I/O layer must carry out.
//! There is no I/O and no clock in here, so the same rules run under real
//! sockets and in tests, deterministically.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::handshake::{Role, MODERN_DEGREE};
use crate::wire::{Bye, Guid, Message, Payload, Ping, Pong, Push, Query, QueryHit};

/// The highest TTL + hops a message may have; more is trimmed (7, as deployed servents).
pub const DEFAULT_MAX_TTL: u8 = 7;
/// The largest query payload handled and relayed, in bytes: larger ones
/// are dropped (gtk-gnutella's `search_queries_forward_size`, 256).
pub const MAX_QUERY_SIZE: usize = 256;
/// A query payload larger than this gets its sender disconnected
/// (gtk-gnutella's `search_queries_kick_size`, 1024).
pub const KICK_QUERY_SIZE: usize = 1024;
/// How many GUIDs each routing table remembers at most.
pub const ROUTE_TABLE_CAPACITY: usize = 100_000;
/// How long a reverse route (and the memory of a GUID) lasts.
pub const ROUTE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How many Pongs the pong cache keeps.
pub const PONG_CACHE_CAPACITY: usize = 100;
/// How many cached Pongs answer one Ping.
pub const PONGS_PER_PING: usize = 10;
/// How long a cached Pong is worth giving out.
pub const PONG_CACHE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How often each neighbour is pinged (keep-alive and host discovery).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Queries of its own (hops 0) a neighbour may send in a burst.
pub const QUERY_BURST: u32 = 100;
/// Queries of its own per second a neighbour may send once its burst is spent.
pub const QUERIES_PER_SECOND: u32 = 10;
/// Queries an ultrapeer neighbour of [`MODERN_DEGREE`] may forward from
/// others in a burst: they add up the searches of many servents behind it,
/// so the allowance is larger. It grows and shrinks with the neighbour's
/// degree (see [`Router::set_relaying`]); a leaf relays nothing and has none.
pub const FORWARDED_QUERY_BURST: u32 = 2000;
/// Forwarded queries per second once that burst is spent.
pub const FORWARDED_QUERIES_PER_SECOND: u32 = 200;

/// A neighbour, as numbered by the I/O layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PeerId(pub u64);

/// What the I/O layer must do after the router has seen a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue this message to that neighbour.
    Send {
        /// The neighbour.
        to: PeerId,
        /// The message, TTL and hops already adjusted.
        message: Message,
    },
    /// Look the query up in the local library and answer with QueryHits
    /// (GUID `guid`, TTL `reply_ttl`) sent to `from`.
    SearchLocal {
        /// The neighbour the query came from.
        from: PeerId,
        /// The query's GUID, which the hits must carry.
        guid: Guid,
        /// The TTL the hits need to reach the querying servent.
        reply_ttl: u8,
        /// The query itself.
        query: Query,
    },
    /// A QueryHit for one of our own searches.
    Hit {
        /// The search's GUID.
        search: Guid,
        /// The hit.
        hit: QueryHit,
    },
    /// A host heard of in a Pong, for the host cache.
    LearnHost(SocketAddrV4),
    /// Close the connection to this neighbour.
    Disconnect {
        /// The neighbour.
        peer: PeerId,
        /// Why, for the log and the peer list.
        reason: String,
    },
}

/// Why a message was not routed on; counted per neighbour and overall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drop {
    /// Its GUID was seen before.
    Duplicate,
    /// A reply (QueryHit, Pong, Push) with no route back.
    NoRoute,
    /// A TTL of zero on arrival.
    TtlExpired,
    /// It had travelled the maximum number of hops already.
    HopsExceeded,
    /// The neighbour sent queries faster than allowed.
    RateLimited,
    /// A message type we do not route (vendor messages, route tables, unknown).
    Unsupported,
    /// A descriptor that could not be decoded (counted by the I/O layer).
    Malformed,
    /// The outgoing queue was full (counted by the I/O layer).
    QueueFull,
    /// A leaf's query asking for hits out of band to an address not its own.
    BadReturnAddress,
    /// A query larger than [`MAX_QUERY_SIZE`].
    TooLarge,
    /// A leaf's query it sent lately (`node::querying::requeries`).
    Requery,
    /// An ultrapeer's query it relayed lately under another GUID
    /// (`node::querying::similar`).
    Similar,
}

/// Counters of one neighbour, or of the whole servent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Messages received.
    pub received: u64,
    /// Messages routed on or answered.
    pub accepted: u64,
    /// Messages whose TTL was cut down to the maximum.
    pub ttl_trimmed: u64,
    /// Messages dropped, by reason.
    pub dropped: BTreeMap<Drop, u64>,
}

impl Counters {
    /// Counts one dropped message.
    pub fn drop(&mut self, reason: Drop) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    /// All dropped messages.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Settings of the routing rules.
#[derive(Clone, Debug)]
pub struct Config {
    /// The highest TTL + hops accepted.
    pub max_ttl: u8,
    /// GUIDs remembered per table.
    pub route_capacity: usize,
    /// Lifetime of a reverse route.
    pub route_lifetime: Duration,
    /// Queries of its own (hops 0) a neighbour may send: burst, then per second.
    pub own_queries: Rate,
    /// Queries an ultrapeer neighbour of [`MODERN_DEGREE`] forwards from
    /// others: burst, then per second.
    pub forwarded_queries: Rate,
    /// Seeds the GUIDs of our own Pings and Queries: the same seed, the same GUIDs.
    pub seed: u64,
    /// How often each neighbour gets a keep-alive Ping.
    pub ping_interval: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_ttl: DEFAULT_MAX_TTL,
            route_capacity: ROUTE_TABLE_CAPACITY,
            route_lifetime: ROUTE_LIFETIME,
            own_queries: Rate { burst: QUERY_BURST, per_second: QUERIES_PER_SECOND },
            forwarded_queries: Rate { burst: FORWARDED_QUERY_BURST, per_second: FORWARDED_QUERIES_PER_SECOND },
            seed: 0,
            ping_interval: PING_INTERVAL,
        }
    }
}

/// An allowance: so many in a burst, then so many per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// How many at once, after a quiet spell.
    pub burst: u32,
    /// How many per second, sustained.
    pub per_second: u32,
}

/// A token bucket spending a [`Rate`].
#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn full(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket { tokens: f64::from(rate.burst), at: now }
    }

    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate.per_second)).min(f64::from(rate.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What this servent says about itself in its Pongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalHost {
    /// The address others can connect to.
    pub addr: SocketAddrV4,
    /// Files shared.
    pub files: u32,
    /// Kilobytes shared.
    pub kbytes: u32,
}

/// The routing state of one servent.
pub struct Router {
    config: Config,
    local: LocalHost,
    peers: HashMap<PeerId, PeerState>,
    /// Query GUID → the neighbour it came from.
    query_routes: ExpiringMap<Guid, PeerId>,
    /// Ping GUID → the neighbour it came from (for the rare forwarded Pong).
    ping_routes: ExpiringMap<Guid, PeerId>,
    /// Servent GUID → the neighbour its QueryHits came through, for Pushes.
    push_routes: ExpiringMap<Guid, PeerId>,
    /// GUIDs of our own queries and pings.
    own: ExpiringMap<Guid, Own>,
    pong_cache: VecDeque<(Instant, Pong)>,
    totals: Counters,
    guids: StdRng,
}

/// The routing fields of a message, TTL already checked and trimmed.
#[derive(Clone, Copy, Debug)]
struct Route {
    guid: Guid,
    ttl: u8,
    hops: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Own {
    Query,
    Ping,
    /// Someone else's query we passed on (a GUESS query to our leaves).
    Relayed,
}

struct PeerState {
    listen: Option<SocketAddrV4>,
    last_ping: Instant,
    own_queries: TokenBucket,
    forwarded_queries: TokenBucket,
    /// What it may forward from others: nothing until it is known to relay.
    forwarded_rate: Option<Rate>,
    counters: Counters,
}

impl Router {
    /// A router with no neighbours yet.
    pub fn new(config: Config, local: LocalHost) -> Router {
        let capacity = config.route_capacity;
        let guids = StdRng::seed_from_u64(config.seed);
        let lifetime = config.route_lifetime;
        Router {
            config,
            local,
            peers: HashMap::new(),
            query_routes: ExpiringMap::new(capacity, lifetime),
            ping_routes: ExpiringMap::new(capacity, lifetime),
            push_routes: ExpiringMap::new(capacity, lifetime),
            own: ExpiringMap::new(capacity, lifetime),
            pong_cache: VecDeque::new(),
            totals: Counters::default(),
            guids,
        }
    }

    /// Updates what our own Pongs say.
    pub fn set_local(&mut self, local: LocalHost) {
        self.local = local;
    }

    /// A new neighbour: it gets a Ping at once, as gtk-gnutella sends nothing
    /// to a new peer before it has heard from it.
    /// `listen` is the address it listens on, when it said so.
    pub fn connected(&mut self, peer: PeerId, listen: Option<SocketAddrV4>, now: Instant) -> Vec<Action> {
        self.peers.insert(
            peer,
            PeerState {
                listen,
                last_ping: now,
                own_queries: TokenBucket::full(self.config.own_queries, now),
                forwarded_queries: TokenBucket { tokens: 0.0, at: now },
                forwarded_rate: None,
                counters: Counters::default(),
            },
        );
        vec![self.ping(peer, now)]
    }

    /// What a neighbour can relay, from its handshake: a leaf relays
    /// nothing, so every query it sends spends its own allowance whatever
    /// hops it claims; an ultrapeer may forward others' queries at
    /// [`Config::forwarded_queries`] scaled by its degree (8 when it does
    /// not say, as gtk-gnutella assumes) against [`MODERN_DEGREE`], at most
    /// twice that.
    pub fn set_relaying(&mut self, peer: PeerId, role: Role, degree: Option<u32>, now: Instant) {
        let base = self.config.forwarded_queries;
        let Some(state) = self.peers.get_mut(&peer) else { return };
        state.forwarded_rate = (role == Role::Ultrapeer).then(|| {
            let degree = degree.unwrap_or(8).min(2 * MODERN_DEGREE);
            let scale = |n: u32| (u64::from(n) * u64::from(degree) / u64::from(MODERN_DEGREE)) as u32;
            Rate { burst: scale(base.burst), per_second: scale(base.per_second) }
        });
        if let Some(rate) = state.forwarded_rate {
            state.forwarded_queries = TokenBucket::full(rate, now);
        }
    }

    /// A neighbour is gone; replies routed to it will be dropped from now on.
    pub fn disconnected(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// The neighbours, in no particular order.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// The counters of one neighbour.
    pub fn counters(&self, peer: PeerId) -> Option<&Counters> {
        self.peers.get(&peer).map(|p| &p.counters)
    }

    /// The counters of all traffic since start.
    pub fn totals(&self) -> &Counters {
        &self.totals
    }

    /// Counts a message the I/O layer dropped (malformed, queue full).
    pub fn count_drop(&mut self, peer: PeerId, reason: Drop) {
        self.totals.drop(reason);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.counters.drop(reason);
        }
    }

    /// Starts one of our own searches: a Query with `ttl` to every neighbour.
    pub fn start_query(&mut self, query: Query, ttl: u8, now: Instant) -> (Guid, Vec<Action>) {
        let guid = Guid::from_rng(&mut self.guids);
        self.start_query_as(guid, query, ttl, now)
    }

    /// As [`Router::start_query`], under a GUID of the caller's (an
    /// out-of-band query's names our address).
    pub fn start_query_as(&mut self, guid: Guid, query: Query, ttl: u8, now: Instant) -> (Guid, Vec<Action>) {
        self.own.insert(guid, Own::Query, now);
        let message = Message { guid, ttl: ttl.clamp(1, self.config.max_ttl), hops: 0, payload: Payload::Query(query) };
        let actions = self.sorted_peers().into_iter().map(|to| Action::Send { to, message: message.clone() }).collect();
        (guid, actions)
    }

    /// Whether `guid` is a query of ours still remembered.
    pub fn is_own_query(&self, guid: &Guid, now: Instant) -> bool {
        self.own.get(guid, now) == Some(Own::Query)
    }

    /// Takes `guid` for a query we pass on to our leaves for someone
    /// else: its hits come back to us as [`Action::Hit`], though it is no
    /// query of ours ([`Router::is_own_query`]).
    pub fn relaying(&mut self, guid: Guid, now: Instant) {
        self.own.insert(guid, Own::Relayed, now);
    }

    /// Whether `guid` is taken: a query or ping of ours, or a query routed
    /// through us, still remembered. Another query under it would take
    /// the hits (or pongs) meant for the first.
    pub fn knows_guid(&self, guid: &Guid, now: Instant) -> bool {
        self.own.get(guid, now).is_some() || self.query_routes.get(guid, now).is_some()
    }

    /// Time passes: pings neighbours that have not been pinged for a while,
    /// and forgets what has expired.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        self.query_routes.expire(now);
        self.ping_routes.expire(now);
        self.push_routes.expire(now);
        self.own.expire(now);
        while self.pong_cache.front().is_some_and(|(at, _)| now.duration_since(*at) > PONG_CACHE_LIFETIME) {
            self.pong_cache.pop_front();
        }
        let due: Vec<PeerId> = self
            .sorted_peers()
            .into_iter()
            .filter(|p| now.duration_since(self.peers[p].last_ping) >= self.config.ping_interval)
            .collect();
        due.into_iter().map(|peer| self.ping(peer, now)).collect()
    }

    /// Routes one message that arrived from `from`.
    pub fn handle(&mut self, from: PeerId, message: Message, now: Instant) -> Vec<Action> {
        if !self.peers.contains_key(&from) {
            return Vec::new();
        }
        self.count(from, |c| c.received += 1);
        if let Payload::Bye(Bye { code, reason }) = &message.payload {
            self.count(from, |c| c.accepted += 1);
            return vec![Action::Disconnect { peer: from, reason: format!("Bye {code} {reason}") }];
        }
        if let Some(actions) = self.check_query_size(from, &message) {
            return actions;
        }
        let Some(route) = self.check_ttl(from, &message) else {
            return Vec::new();
        };
        let actions = match message.payload {
            Payload::Ping(_) => self.on_ping(from, route, now),
            Payload::Pong(pong) => self.on_pong(from, route, pong, now),
            Payload::Query(query) => self.on_query(from, route, query, now),
            Payload::QueryHit(hit) => self.on_query_hit(from, route, hit, now),
            Payload::Push(push) => self.on_push(from, route, push),
            Payload::Bye(_) | Payload::Opaque { .. } => Err(Drop::Unsupported),
        };
        match actions {
            Ok(actions) => {
                self.count(from, |c| c.accepted += 1);
                actions
            }
            Err(reason) => {
                self.count_drop(from, reason);
                Vec::new()
            }
        }
    }

    /// Drops a query over [`MAX_QUERY_SIZE`] bytes, and disconnects its
    /// sender over [`KICK_QUERY_SIZE`], as gtk-gnutella's `node_parse`.
    fn check_query_size(&mut self, from: PeerId, message: &Message) -> Option<Vec<Action>> {
        if !matches!(message.payload, Payload::Query(_)) {
            return None;
        }
        let size = message.encoded_len() - crate::wire::HEADER_LEN;
        if size <= MAX_QUERY_SIZE {
            return None;
        }
        self.count_drop(from, Drop::TooLarge);
        let kick = Action::Disconnect { peer: from, reason: format!("Kicked: Query message too big ({size} bytes)") };
        Some(if size > KICK_QUERY_SIZE { vec![kick] } else { Vec::new() })
    }

    /// Applies the TTL and hops rules: a message that has travelled too far
    /// is dropped, one whose TTL + hops exceeds the maximum is trimmed.
    fn check_ttl(&mut self, from: PeerId, message: &Message) -> Option<Route> {
        let max = self.config.max_ttl;
        if message.hops >= max {
            self.count_drop(from, Drop::HopsExceeded);
            return None;
        }
        if message.ttl == 0 {
            self.count_drop(from, Drop::TtlExpired);
            return None;
        }
        let mut ttl = message.ttl;
        if u16::from(ttl) + u16::from(message.hops) > u16::from(max) {
            ttl = max - message.hops;
            self.count(from, |c| c.ttl_trimmed += 1);
        }
        Some(Route { guid: message.guid, ttl, hops: message.hops })
    }

    fn on_ping(&mut self, from: PeerId, route: Route, now: Instant) -> Result<Vec<Action>, Drop> {
        if self.ping_routes.get(&route.guid, now).is_some() || self.own.get(&route.guid, now).is_some() {
            return Err(Drop::Duplicate);
        }
        self.ping_routes.insert(route.guid, from, now);
        let mut pongs = vec![self.local_pong()];
        // A keep-alive Ping (TTL 1) only asks whether we are there; others
        // get the freshest cached Pongs, but never the asker's own.
        if route.ttl > 1 {
            let asker = self.peers.get(&from).and_then(|p| p.listen);
            pongs.extend(
                self.pong_cache
                    .iter()
                    .rev()
                    .map(|(_, pong)| pong)
                    .filter(|pong| Some(SocketAddrV4::new(pong.ip, pong.port)) != asker)
                    .take(PONGS_PER_PING)
                    .cloned(),
            );
        }
        let reply = |pong| Message { guid: route.guid, ttl: route.hops + 1, hops: 0, payload: Payload::Pong(pong) };
        Ok(pongs.into_iter().map(|pong| Action::Send { to: from, message: reply(pong) }).collect())
    }

    fn on_pong(&mut self, from: PeerId, route: Route, pong: Pong, now: Instant) -> Result<Vec<Action>, Drop> {
        let addr = SocketAddrV4::new(pong.ip, pong.port);
        let usable = crate::address::usable(addr);
        let mut actions = Vec::new();
        if usable {
            actions.push(Action::LearnHost(addr));
        }
        if self.own.get(&route.guid, now) == Some(Own::Ping) {
            if usable {
                self.remember_pong(pong, now);
            }
            return Ok(actions);
        }
        let to = self.ping_routes.get(&route.guid, now).ok_or(Drop::NoRoute)?;
        actions.extend(self.route_back(to, from, route, Payload::Pong(pong))?);
        Ok(actions)
    }

    fn on_query(&mut self, from: PeerId, route: Route, query: Query, now: Instant) -> Result<Vec<Action>, Drop> {
        if self.query_routes.get(&route.guid, now).is_some() || self.own.get(&route.guid, now).is_some() {
            return Err(Drop::Duplicate);
        }
        if !self.take_query_token(from, route.hops, now) {
            return Err(Drop::RateLimited);
        }
        self.query_routes.insert(route.guid, from, now);
        let mut actions = Vec::new();
        if route.ttl > 1 {
            let forwarded = Message {
                guid: route.guid,
                ttl: route.ttl - 1,
                hops: route.hops + 1,
                payload: Payload::Query(query.clone()),
            };
            actions.extend(
                self.sorted_peers()
                    .into_iter()
                    .filter(|&p| p != from)
                    .map(|to| Action::Send { to, message: forwarded.clone() }),
            );
        }
        actions.push(Action::SearchLocal { from, guid: route.guid, reply_ttl: route.hops + 1, query });
        Ok(actions)
    }

    /// A hit for our query or one routed through us; only such a hit
    /// teaches the push route of its servent GUID, so that a hit dropped
    /// for having no route cannot steal the Pushes of a servent it names.
    fn on_query_hit(&mut self, from: PeerId, route: Route, hit: QueryHit, now: Instant) -> Result<Vec<Action>, Drop> {
        if matches!(self.own.get(&route.guid, now), Some(Own::Query | Own::Relayed)) {
            self.push_routes.insert(hit.servent_guid, from, now);
            return Ok(vec![Action::Hit { search: route.guid, hit }]);
        }
        let to = self.query_routes.get(&route.guid, now).ok_or(Drop::NoRoute)?;
        if to == from || !self.peers.contains_key(&to) {
            return Err(Drop::NoRoute);
        }
        self.push_routes.insert(hit.servent_guid, from, now);
        self.route_back(to, from, route, Payload::QueryHit(hit))
    }

    /// The neighbour a PUSH for `servent` goes to: the one its QueryHits
    /// came through, if it is still connected.
    pub fn push_route(&self, servent: &Guid) -> Option<PeerId> {
        self.push_routes.peek(servent).filter(|peer| self.peers.contains_key(peer))
    }

    fn on_push(&mut self, from: PeerId, route: Route, push: Push) -> Result<Vec<Action>, Drop> {
        // Looked up without refreshing: a Push does not prove the target is
        // still behind that neighbour.
        let to = self.push_routes.peek(&push.servent_guid).ok_or(Drop::NoRoute)?;
        self.route_back(to, from, route, Payload::Push(push))
    }

    /// Sends a reply one hop further back along its route, if it may still
    /// travel and the route leads to a live neighbour other than its sender.
    fn route_back(&mut self, to: PeerId, from: PeerId, route: Route, payload: Payload) -> Result<Vec<Action>, Drop> {
        if to == from || !self.peers.contains_key(&to) {
            return Err(Drop::NoRoute);
        }
        if route.ttl <= 1 {
            return Err(Drop::TtlExpired);
        }
        let message = Message { guid: route.guid, ttl: route.ttl - 1, hops: route.hops + 1, payload };
        Ok(vec![Action::Send { to, message }])
    }

    fn ping(&mut self, peer: PeerId, now: Instant) -> Action {
        let guid = Guid::from_rng(&mut self.guids);
        self.own.insert(guid, Own::Ping, now);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.last_ping = now;
        }
        // TTL 2 asks the neighbour for its cached Pongs as well as its own.
        let message = Message { guid, ttl: 2, hops: 0, payload: Payload::Ping(Ping::default()) };
        Action::Send { to: peer, message }
    }

    fn local_pong(&self) -> Pong {
        Pong {
            port: self.local.addr.port(),
            ip: *self.local.addr.ip(),
            files: self.local.files,
            kbytes: self.local.kbytes,
            ggep: Default::default(),
        }
    }

    fn remember_pong(&mut self, pong: Pong, now: Instant) {
        self.pong_cache.retain(|(_, p)| (p.ip, p.port) != (pong.ip, pong.port));
        if self.pong_cache.len() >= PONG_CACHE_CAPACITY {
            self.pong_cache.pop_front();
        }
        self.pong_cache.push_back((now, pong));
    }

    /// Whether `peer` may send this query now: queries it originated
    /// (hops 0) and queries it forwards have separate allowances, so that a
    /// flooder is cut down by its own neighbour and cannot use up the
    /// allowance of everyone behind that neighbour.
    /// What a neighbour claims in hops buys nothing more than it can relay:
    /// one that relays nothing spends its own allowance on every query.
    fn take_query_token(&mut self, peer: PeerId, hops: u8, now: Instant) -> bool {
        let own = self.config.own_queries;
        let Some(state) = self.peers.get_mut(&peer) else { return false };
        match state.forwarded_rate {
            Some(forwarded) if hops > 0 => state.forwarded_queries.take(forwarded, now),
            _ => state.own_queries.take(own, now),
        }
    }

    fn count(&mut self, peer: PeerId, f: impl Fn(&mut Counters)) {
        f(&mut self.totals);
        if let Some(state) = self.peers.get_mut(&peer) {
            f(&mut state.counters);
        }
    }

    /// Neighbours in a stable order, so that actions are deterministic.
    fn sorted_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.peers.keys().copied().collect();
        peers.sort_unstable();
        peers
    }
}

/// A map whose entries expire after a fixed lifetime, and which never holds
/// more than its capacity (the oldest entries go first).
struct ExpiringMap<K, V> {
    capacity: usize,
    lifetime: Duration,
    entries: HashMap<K, (V, Instant)>,
    order: VecDeque<(Instant, K)>,
}

impl<K: Copy + Eq + Hash, V: Copy> ExpiringMap<K, V> {
    fn new(capacity: usize, lifetime: Duration) -> Self {
        ExpiringMap { capacity, lifetime, entries: HashMap::new(), order: VecDeque::new() }
    }

    fn insert(&mut self, key: K, value: V, now: Instant) {
        self.entries.insert(key, (value, now));
        self.order.push_back((now, key));
        self.expire(now);
    }

    /// The live value of `key`, if any.
    fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries.get(key).filter(|(_, at)| now.duration_since(*at) < self.lifetime).map(|(value, _)| *value)
    }

    fn peek(&self, key: &K) -> Option<V> {
        self.entries.get(key).map(|(value, _)| *value)
    }

    /// Forgets expired entries, then the oldest ones while over capacity.
    /// `order` may hold stale duplicates of re-inserted keys; it is kept
    /// within twice the capacity too, so memory stays bounded.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            let over = self.entries.len() > self.capacity || self.order.len() > 2 * self.capacity;
            if !over && now.duration_since(at) < self.lifetime {
                break;
            }
            self.order.pop_front();
            // A key inserted again later has a newer entry: keep that one.
            if self.entries.get(&key).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: PeerId = PeerId(1);
    const B: PeerId = PeerId(2);
    const C: PeerId = PeerId(3);

    fn local() -> LocalHost {
        LocalHost { addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6346), files: 3, kbytes: 42 }
    }

    /// A router with neighbours A, B and C, the greeting Pings discarded.
    fn router_with_peers(now: Instant) -> Router {
        let mut router = Router::new(Config::default(), local());
        for peer in [A, B, C] {
            router.connected(peer, None, now);
            router.set_relaying(peer, Role::Ultrapeer, Some(MODERN_DEGREE), now);
        }
        router
    }

    fn query(guid: Guid, ttl: u8, hops: u8) -> Message {
        let query = Query::words("seblinux");
        Message { guid, ttl, hops, payload: Payload::Query(query) }
    }

    fn hit(guid: Guid, ttl: u8, hops: u8) -> Message {
        let hit = QueryHit {
            port: 6346,
            ip: Ipv4Addr::new(192, 0, 2, 9),
            speed: 1000,
            results: vec![],
            trailer: None,
            servent_guid: Guid([9; 16]),
            original: Default::default(),
        };
        Message { guid, ttl, hops, payload: Payload::QueryHit(hit) }
    }

    fn sends(actions: &[Action]) -> Vec<(PeerId, u8, u8)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, message } => Some((*to, message.ttl, message.hops)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn new_neighbour_is_pinged_at_once() {
        let now = Instant::now();
        let mut router = Router::new(Config::default(), local());
        let actions = router.connected(A, None, now);
        assert!(matches!(&actions[..], [Action::Send { to: A, message: Message { payload: Payload::Ping(_), .. } }]));
    }

    #[test]
    fn query_is_flooded_to_all_but_its_sender_with_ttl_decremented() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let actions = router.handle(A, query(Guid([1; 16]), 3, 0), now);
        assert_eq!(sends(&actions), vec![(B, 2, 1), (C, 2, 1)]);
        assert!(actions.iter().any(|a| matches!(a, Action::SearchLocal { from: A, reply_ttl: 1, .. })));
    }

    #[test]
    fn query_with_ttl_one_is_answered_but_not_forwarded() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let actions = router.handle(A, query(Guid([1; 16]), 1, 2), now);
        assert!(sends(&actions).is_empty());
        assert!(matches!(&actions[..], [Action::SearchLocal { reply_ttl: 3, .. }]));
    }

    #[test]
    fn attack_a_query_over_256_bytes_is_dropped_unrelayed_and_over_1024_its_sender_kicked() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let sized = |guid: u8, size: usize| {
            let mut message = query(Guid([guid; 16]), 3, 0);
            let Payload::Query(q) = &mut message.payload else { unreachable!() };
            // Flags (2), criteria, NUL; then a GGEP block for the rest.
            q.criteria = "s".repeat(size.min(MAX_QUERY_SIZE + 1) - 3);
            if size > MAX_QUERY_SIZE + 1 {
                q.ggep.insert(crate::wire::vendor::oob::SO, vec![0; size - MAX_QUERY_SIZE]);
            }
            let encoded = message.encoded_len() - crate::wire::HEADER_LEN;
            assert!(encoded >= size && encoded < size + 16, "{encoded} for {size}");
            message
        };
        assert_eq!(sends(&router.handle(A, sized(1, MAX_QUERY_SIZE), now)).len(), 2);
        let actions = router.handle(A, sized(2, MAX_QUERY_SIZE + 1), now);
        assert!(actions.is_empty(), "neither relayed nor answered: {actions:?}");
        assert_eq!(router.totals().dropped[&Drop::TooLarge], 1);
        let actions = router.handle(A, sized(3, KICK_QUERY_SIZE + 1), now);
        assert!(matches!(&actions[..], [Action::Disconnect { peer: A, .. }]), "{actions:?}");
        assert_eq!(router.totals().dropped[&Drop::TooLarge], 2);
    }

    #[test]
    fn query_with_seen_guid_is_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        router.handle(A, query(Guid([1; 16]), 3, 0), now);
        assert!(router.handle(B, query(Guid([1; 16]), 3, 0), now).is_empty());
        assert_eq!(router.totals().dropped[&Drop::Duplicate], 1);
        assert_eq!(router.counters(B).unwrap().dropped[&Drop::Duplicate], 1);
    }

    #[test]
    fn ttl_255_is_trimmed_to_the_maximum() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let actions = router.handle(A, query(Guid([1; 16]), 255, 1), now);
        assert_eq!(sends(&actions), vec![(B, 5, 2), (C, 5, 2)]);
        assert_eq!(router.totals().ttl_trimmed, 1);
    }

    #[test]
    fn message_with_hops_at_the_maximum_is_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        assert!(router.handle(A, query(Guid([1; 16]), 1, 7), now).is_empty());
        assert_eq!(router.totals().dropped[&Drop::HopsExceeded], 1);
    }

    #[test]
    fn message_with_ttl_zero_is_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        assert!(router.handle(A, query(Guid([1; 16]), 0, 1), now).is_empty());
        assert_eq!(router.totals().dropped[&Drop::TtlExpired], 1);
    }

    #[test]
    fn query_hit_goes_back_only_along_the_query_route() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        router.handle(A, query(Guid([1; 16]), 3, 0), now);
        let actions = router.handle(B, hit(Guid([1; 16]), 2, 0), now);
        assert_eq!(sends(&actions), vec![(A, 1, 1)]);
    }

    #[test]
    fn query_hit_for_a_query_never_routed_through_us_is_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        assert!(router.handle(B, hit(Guid([5; 16]), 3, 0), now).is_empty());
        assert_eq!(router.totals().dropped[&Drop::NoRoute], 1);
    }

    #[test]
    fn query_hit_is_never_echoed_to_its_sender() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        router.handle(A, query(Guid([1; 16]), 3, 0), now);
        assert!(router.handle(A, hit(Guid([1; 16]), 3, 0), now).is_empty());
    }

    #[test]
    fn query_hit_to_a_departed_neighbour_is_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        router.handle(A, query(Guid([1; 16]), 3, 0), now);
        router.disconnected(A);
        assert!(router.handle(B, hit(Guid([1; 16]), 3, 0), now).is_empty());
    }

    #[test]
    fn reverse_route_expires() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        router.handle(A, query(Guid([1; 16]), 3, 0), now);
        let later = now + ROUTE_LIFETIME + Duration::from_secs(1);
        router.tick(later);
        assert!(router.handle(B, hit(Guid([1; 16]), 3, 0), later).is_empty());
    }

    #[test]
    fn own_query_goes_to_every_neighbour_and_its_hits_come_home() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let query = Query::words("x");
        let (guid, actions) = router.start_query(query, 4, now);
        assert_eq!(sends(&actions), vec![(A, 4, 0), (B, 4, 0), (C, 4, 0)]);
        let actions = router.handle(B, hit(guid, 4, 2), now);
        assert!(matches!(&actions[..], [Action::Hit { search, .. }] if *search == guid));
        // Our own query coming back to us through a loop is a duplicate.
        let looped = Message { guid, ..self::query(guid, 2, 2) };
        assert!(router.handle(C, looped, now).is_empty());
    }

    #[test]
    fn burst_of_queries_from_one_peer_is_rate_limited() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let mut forwarded = 0;
        for i in 0..10_000u32 {
            let mut guid = [0; 16];
            guid[..4].copy_from_slice(&i.to_le_bytes());
            forwarded += sends(&router.handle(A, query(Guid(guid), 3, 0), now)).len();
        }
        assert_eq!(forwarded, 2 * QUERY_BURST as usize);
        assert_eq!(router.totals().dropped[&Drop::RateLimited], 10_000 - u64::from(QUERY_BURST));
        // Forwarded queries from the same neighbour have their own allowance.
        assert_eq!(sends(&router.handle(A, query(Guid([8; 16]), 3, 1), now)).len(), 2);
        // Other neighbours are still served.
        assert_eq!(sends(&router.handle(B, query(Guid([7; 16]), 3, 0), now)).len(), 2);
        // And the flooder recovers at the sustained rate.
        let later = now + Duration::from_secs(1);
        let mut guid = [0xEE; 16];
        guid[0] = 1;
        assert_eq!(sends(&router.handle(A, query(Guid(guid), 3, 0), later)).len(), 2);
    }

    #[test]
    fn seen_table_stays_within_its_capacity() {
        let now = Instant::now();
        let config = Config { route_capacity: 100, ..Config::default() };
        let mut router = Router::new(config, local());
        router.connected(A, None, now);
        router.connected(B, None, now);
        for i in 0..1000u32 {
            let mut guid = [0; 16];
            guid[..4].copy_from_slice(&i.to_le_bytes());
            router.handle(A, query(Guid(guid), 2, 0), now);
        }
        assert!(router.query_routes.entries.len() <= 100);
        assert!(router.query_routes.order.len() <= 200);
    }

    #[test]
    fn keep_alive_pings_follow_the_configured_interval() {
        let now = Instant::now();
        let interval = Duration::from_secs(300);
        let mut router = Router::new(Config { ping_interval: interval, ..Config::default() }, local());
        router.connected(A, None, now);
        assert!(router.tick(now + PING_INTERVAL).is_empty());
        assert_eq!(router.tick(now + interval).len(), 1);
    }

    #[test]
    fn ping_is_answered_from_the_pong_cache_not_flooded() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        // B answers our greeting Ping with a Pong about a far host.
        let (guid, _) = match &router.tick(now + PING_INTERVAL)[..] {
            [Action::Send { message, .. }, ..] => (message.guid, ()),
            other => panic!("expected pings, got {other:?}"),
        };
        let far = Pong { port: 7000, ip: Ipv4Addr::new(192, 0, 2, 50), files: 1, kbytes: 1, ggep: Default::default() };
        let pong = Message { guid, ttl: 1, hops: 1, payload: Payload::Pong(far.clone()) };
        let learned = router.handle(A, pong, now);
        assert_eq!(learned, vec![Action::LearnHost(SocketAddrV4::new(far.ip, far.port))]);

        let ping = Message { guid: Guid([3; 16]), ttl: 3, hops: 0, payload: Payload::Ping(Ping::default()) };
        let actions = router.handle(C, ping, now);
        let pongs: Vec<&Pong> = actions
            .iter()
            .map(|a| match a {
                Action::Send { to: C, message: Message { payload: Payload::Pong(p), ttl: 1, hops: 0, .. } } => p,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(pongs.len(), 2, "our own Pong and the cached one");
        assert_eq!((pongs[0].port, pongs[0].files), (6346, 3));
        assert_eq!(pongs[1], &far);
    }

    #[test]
    fn keep_alive_ping_gets_only_our_own_pong() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let ping = Message { guid: Guid([3; 16]), ttl: 1, hops: 0, payload: Payload::Ping(Ping::default()) };
        assert_eq!(sends(&router.handle(A, ping, now)), vec![(A, 1, 0)]);
    }

    #[test]
    fn pong_without_route_is_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let pong = Pong { port: 1, ip: Ipv4Addr::new(192, 0, 2, 1), files: 0, kbytes: 0, ggep: Default::default() };
        let message = Message { guid: Guid([4; 16]), ttl: 2, hops: 0, payload: Payload::Pong(pong) };
        let actions = router.handle(A, message, now);
        assert!(sends(&actions).is_empty());
        assert_eq!(router.totals().dropped[&Drop::NoRoute], 1);
    }

    #[test]
    fn bye_disconnects_the_peer() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let bye = Message {
            guid: Guid([4; 16]),
            ttl: 1,
            hops: 0,
            payload: Payload::Bye(Bye { code: 200, reason: "done".into() }),
        };
        assert!(matches!(&router.handle(A, bye, now)[..], [Action::Disconnect { peer: A, .. }]));
    }

    #[test]
    fn vendor_message_is_counted_and_dropped() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        let vendor = Message {
            guid: Guid([4; 16]),
            ttl: 1,
            hops: 0,
            payload: Payload::Opaque { payload_type: 0x31, bytes: vec![1, 2] },
        };
        assert!(router.handle(A, vendor, now).is_empty());
        assert_eq!(router.totals().dropped[&Drop::Unsupported], 1);
    }

    #[test]
    fn push_follows_the_route_of_the_servents_query_hits() {
        let now = Instant::now();
        let mut router = router_with_peers(now);
        router.handle(A, query(Guid([1; 16]), 3, 0), now);
        router.handle(B, hit(Guid([1; 16]), 3, 0), now);
        let push = Push {
            servent_guid: Guid([9; 16]),
            index: 1,
            ip: Ipv4Addr::new(192, 0, 2, 2),
            port: 6346,
            ggep: Default::default(),
        };
        let message = Message { guid: Guid([6; 16]), ttl: 3, hops: 0, payload: Payload::Push(push) };
        assert_eq!(sends(&router.handle(A, message, now)), vec![(B, 2, 1)]);
    }
}

#[cfg(test)]
mod attack_tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: PeerId = PeerId(1);
    const B: PeerId = PeerId(2);
    const C: PeerId = PeerId(3);

    fn router(now: Instant) -> Router {
        let local = LocalHost { addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6346), files: 0, kbytes: 0 };
        let mut router = Router::new(Config::default(), local);
        for peer in [A, B, C] {
            router.connected(peer, None, now);
        }
        router
    }

    fn query(i: u32, hops: u8) -> Message {
        let mut guid = [0x51; 16];
        guid[..4].copy_from_slice(&i.to_le_bytes());
        let query = Query::words("seblinux");
        Message { guid: Guid(guid), ttl: 3, hops, payload: Payload::Query(query) }
    }

    fn hit(guid: Guid, servent_guid: Guid) -> Message {
        let hit = QueryHit {
            port: 6346,
            ip: Ipv4Addr::new(192, 0, 2, 9),
            speed: 1000,
            results: vec![],
            trailer: None,
            servent_guid,
            original: Default::default(),
        };
        Message { guid, ttl: 3, hops: 0, payload: Payload::QueryHit(hit) }
    }

    fn push_to(servent_guid: Guid) -> Message {
        let push =
            Push { servent_guid, index: 1, ip: Ipv4Addr::new(192, 0, 2, 2), port: 6346, ggep: Default::default() };
        Message { guid: Guid([6; 16]), ttl: 3, hops: 0, payload: Payload::Push(push) }
    }

    fn sent_to(actions: &[Action]) -> Vec<PeerId> {
        actions.iter().filter_map(|a| if let Action::Send { to, .. } = a { Some(*to) } else { None }).collect()
    }

    #[test]
    fn hit_dropped_for_want_of_a_route_does_not_steal_pushes() {
        let now = Instant::now();
        let mut router = router(now);
        let target = Guid([9; 16]);
        router.handle(A, query(1, 0), now);
        assert_eq!(sent_to(&router.handle(B, hit(query(1, 0).guid, target), now)), vec![A]);
        // C names the same servent in a hit for a query nobody routed.
        assert!(router.handle(C, hit(Guid([0xEE; 16]), target), now).is_empty());
        assert_eq!(router.totals().dropped[&Drop::NoRoute], 1);
        assert_eq!(sent_to(&router.handle(A, push_to(target), now)), vec![B]);
    }

    #[test]
    fn a_leaf_claiming_hops_gets_no_forwarding_allowance() {
        let now = Instant::now();
        let mut router = router(now);
        router.set_relaying(A, Role::Leaf, None, now);
        router.set_relaying(B, Role::Ultrapeer, Some(MODERN_DEGREE), now);
        let passed = |router: &mut Router, peer: PeerId, from: u32| {
            (from..from + 10_000).filter(|&i| !router.handle(peer, query(i, 3), now).is_empty()).count() as u32
        };
        assert_eq!(passed(&mut router, A, 0), QUERY_BURST);
        assert_eq!(passed(&mut router, B, 100_000), FORWARDED_QUERY_BURST);
        // A liar's degree buys at most twice the allowance.
        router.set_relaying(C, Role::Ultrapeer, Some(1000), now);
        assert_eq!(passed(&mut router, C, 200_000), 2 * FORWARDED_QUERY_BURST);
    }
}
