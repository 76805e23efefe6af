//! The node core: every decision a servent takes, without I/O.
//!
//! [`Node`] owns the [`Router`], the peer table, the host cache, our
//! searches and the re-queries of downloads, and the policy around them:
//! which incoming connection is admitted, when and whom to dial, when to ask
//! the GWebCaches, which queries the library answers and with what, which
//! address we advertise, and the timers (pings, the host cache's saving).
//!
//! It is driven the way quinn-proto drives a connection: whatever happens
//! outside is fed to [`Node::handle`] with the time it happened, the timer
//! fires through [`Node::handle_timeout`] at [`Node::poll_timeout`], and
//! what the outside must do is drained with [`Node::poll_action`]. Nothing
//! here reads a clock, opens a socket, touches a file or draws from a
//! thread-local RNG: GUIDs and choices come from the seeded generator given
//! to [`Node::new`], so the same seed and the same events give the same
//! actions. The servent's async pump carries events in and actions out; a
//! simulator can run thousands of nodes in one thread.
//!
//! Work that may be slow never runs here: looking up the library is an
//! [`Action::LookUp`] out and an [`Event::LocalResults`] back, so routing
//! never waits for the index.

mod admission;
mod answer;
pub mod dynamic;
pub mod guess;
pub mod guess_relay;
mod hammering;
mod junk;
pub mod names;
pub mod oob;
pub mod partial;
pub mod promotion;
mod query_routing;
mod querying;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub mod udp;
pub mod vendor;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::RngCore;
use serde::Serialize;

pub use self::admission::{
    shared_address, Doorway, Ticket, INCOMING_HANDSHAKE_TIMEOUT, MAX_UNCLASSIFIED, MAX_UNCLASSIFIED_PER_ADDRESS,
    MAX_UNCLASSIFIED_PER_PREFIX, STALLED_HANDSHAKE,
};
use self::admission::{Ended, Handshakes};
pub use self::answer::{query_hit, query_hits};
use self::guess::Guess;
pub use self::hammering::{Hammering, HAMMER_TABLE, MAX_CONNECTS_PER_MINUTE};
pub use self::junk::{JUNK_MIN_MESSAGES, JUNK_PERCENT};
pub use self::names::NameUse;
use self::names::Names;
use self::oob::Oob;
use self::promotion::{Facts, Promotion};
use self::query_routing::QueryRouting;
use self::querying::Querying;
use self::udp::Udp;
use crate::address::{self, prefix};
use crate::handshake::{Admission, PeerInfo, Role};
use crate::hostcache::{DialPace, HostCache, Origin, HOST_CACHE_CAPACITY};
pub use crate::push::Arrival;
use crate::push::{self, ConnectBackProbes, ConnectBacks, ProxyAsks, PushProxies, Reachability};
use crate::requery::{Phase, Requeries};
use crate::routing::{self, Counters, LocalHost, PeerId, Router};
use crate::searches::{Search, SearchResult, Searches};
use crate::trust::SharedTrust;
use crate::wire::vendor::connect_back::TcpConnectBack;
use crate::wire::vendor::{push_proxy, Kind, Vendor};
use crate::wire::{self, Bye, Guid, Message, Payload, Push, Query, QueryFlags, QueryHit, Urn};

/// Outgoing connection attempts under way at once.
pub const MAX_DIALS: usize = 4;
/// How often the node's timer fires by default.
pub const TICK: Duration = Duration::from_millis(500);
/// How often the host cache is handed out to be saved.
pub const HOST_CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long to wait between two GWebCache rounds.
pub const GWEBCACHE_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Results one local search returns at most.
pub const MAX_LOCAL_RESULTS: usize = 200;
/// Library lookups under way at once; a query beyond them goes unanswered.
pub const MAX_PENDING_LOOKUPS: usize = 256;
/// Addresses handed out in X-Try-Ultrapeers.
pub const TRY_ULTRAPEERS: usize = 10;
/// Ultrapeer links a leaf keeps at most.
pub const LEAF_LINKS: usize = 4;
/// Leaves an ultrapeer shelters, as deployed ultrapeers do.
pub const MAX_LEAVES: usize = 30;
/// Links (and handshakes under way) kept at most with one /24: an attacker
/// with one network block cannot take every slot.
pub const MAX_LINKS_PER_PREFIX: usize = 3;

/// The node's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address the Gnutella port listens on.
    pub listen: SocketAddr,
    /// Ultrapeer links kept at most, and sought (a leaf keeps at most [`LEAF_LINKS`]).
    pub max_peers: usize,
    /// Leaves an ultrapeer shelters besides its ultrapeer links; with none,
    /// every peer counts against `max_peers` alike, as in a flat network.
    pub max_leaves: usize,
    /// The highest TTL + hops accepted and given to our queries.
    pub max_ttl: u8,
    /// Whether hosts learned from the network are dialed, or only `peers`.
    pub discover: bool,
    /// Whether addresses heard from the network that are loopback or
    /// private ([`address::local`]) or on our own IP are kept and dialed
    /// (connect-backs included), and connections from them count for the
    /// firewall check; a test network on one machine says so. `peers` are
    /// dialed regardless.
    pub dial_local: bool,
    /// Servents the user asked to connect to, kept trying.
    pub peers: Vec<SocketAddrV4>,
    /// GWebCaches asked for hosts when there is nobody left to dial.
    pub gwebcaches: Vec<String>,
    /// Whether the host cache is handed out to be saved now and then.
    pub persist_hosts: bool,
    /// How often the timer fires (pings, dialing, expiry).
    pub tick: Duration,
    /// The part the node plays: an ultrapeer routes queries to its leaves
    /// by their QRP tables, a leaf sends its table to its ultrapeers.
    pub role: Role,
    /// Addresses the host cache keeps at most; a simulation of many nodes
    /// that never discover keeps it small.
    pub host_cache_capacity: usize,
    /// How often each neighbour gets a keep-alive Ping.
    pub ping_interval: Duration,
    /// `--mode auto`: switch between leaf and ultrapeer as [`promotion`] decides.
    pub auto_role: bool,
    /// UDP host caches asked for hosts when there is nobody left to dial.
    pub uhcs: Vec<SocketAddrV4>,
    /// Whether the Gnutella port takes UDP: our searches ask for
    /// out-of-band hits, and we give ours out of band, only then.
    pub udp: bool,
    /// Host names (host, port, what for) looked up now and again ([`names`]).
    pub names: Vec<(String, u16, NameUse)>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6346)),
            max_peers: 16,
            max_leaves: 0,
            max_ttl: routing::DEFAULT_MAX_TTL,
            discover: true,
            dial_local: false,
            peers: Vec::new(),
            gwebcaches: Vec::new(),
            persist_hosts: false,
            tick: TICK,
            role: Role::Ultrapeer,
            host_cache_capacity: HOST_CACHE_CAPACITY,
            ping_interval: routing::PING_INTERVAL,
            auto_role: false,
            uhcs: Vec::new(),
            udp: false,
            names: Vec::new(),
        }
    }
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The peer connected to us.
    Incoming,
    /// We connected to the peer.
    Outgoing,
}

/// A connection whose handshake has just ended.
#[derive(Clone, Debug)]
pub struct Connected {
    /// The number the pump gave the link.
    pub peer: PeerId,
    /// The address of the other end.
    pub addr: SocketAddr,
    /// Our end's address: it shows which interface we are reached on.
    pub local: SocketAddr,
    /// What the peer said in its handshake.
    pub info: PeerInfo,
    /// Who opened it.
    pub direction: Direction,
    /// The address we dialed, for an outgoing connection.
    pub dialed: Option<SocketAddrV4>,
}

/// A library lookup under way, named so that its answer finds its query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// What happened outside, fed to [`Node::handle`].
#[derive(Debug)]
pub enum Event {
    /// A handshake ended in a link.
    Connected(Box<Connected>),
    /// A descriptor arrived on a link.
    Message {
        /// The link.
        peer: PeerId,
        /// The descriptor.
        message: Message,
    },
    /// A link closed or broke.
    Closed {
        /// The link.
        peer: PeerId,
        /// Why, for the log.
        reason: String,
    },
    /// A link sent bytes that are no descriptor.
    Malformed {
        /// The link.
        peer: PeerId,
        /// What was wrong.
        error: String,
    },
    /// Messages to a peer were dropped from its full queue.
    QueueDropped {
        /// The link.
        peer: PeerId,
        /// How many.
        count: u64,
    },
    /// An [`Action::Dial`] failed.
    DialFailed {
        /// The address dialed.
        addr: SocketAddrV4,
        /// The hosts the peer suggested instead, if it answered.
        try_hosts: Vec<SocketAddr>,
    },
    /// An incoming handshake that [`Node::admit_incoming`] counted ended
    /// without a link (refused, broken or timed out).
    HandshakeFailed {
        /// The address it came from.
        remote: SocketAddr,
    },
    /// Hosts heard of outside the network (the GWebCaches).
    HostsLearned(Vec<SocketAddrV4>),
    /// What the library shares now.
    LibraryChanged {
        /// Files shared.
        files: u32,
        /// Bytes shared.
        bytes: u64,
    },
    /// The answer to an [`Action::LookUp`].
    LocalResults {
        /// Which lookup.
        lookup: LookupId,
        /// The files found, at most the limit asked.
        files: Vec<search::SharedFile>,
    },
    /// The library's QRP table, from its files' names and release
    /// metadata: a leaf sends it to its ultrapeers.
    LibraryTable(crate::qrp::RouteTable),
    /// The trusted keys changed: results are judged again.
    TrustChanged,
    /// A download was started; `searched` says a search just found its sources.
    DownloadStarted {
        /// The download's number.
        id: u64,
        /// The content it fetches.
        urn: Urn,
        /// Whether a search has just asked the network for it.
        searched: bool,
    },
    /// Where a download stands now (reported again and again; only changes matter).
    DownloadPhase {
        /// The download's number.
        id: u64,
        /// The content it fetches.
        urn: Urn,
        /// Fetching, waiting or finished.
        phase: Phase,
    },
    /// A datagram arrived on the Gnutella port.
    Datagram {
        /// Its source (spoofable).
        from: SocketAddrV4,
        /// Its bytes: one descriptor, header included.
        bytes: Vec<u8>,
    },
    /// A host name asked for with [`Action::Resolve`] was looked up.
    Resolved {
        /// The name.
        host: String,
        /// Its port.
        port: u16,
        /// Its IPv4 addresses, in the order given, or why there are none.
        result: Result<Vec<SocketAddrV4>, String>,
    },
    /// A connection came in on our Gnutella port (whatever came of it):
    /// the firewall check ([`push::Reachability`]) may find us reachable.
    Incoming {
        /// Where it came from.
        remote: IpAddr,
        /// On its own, or as the connect-back we asked for.
        arrival: Arrival,
    },
    /// The answer to an [`Action::LookUp`] that found files being
    /// downloaded too: they are answered as partial results (`PRU`).
    LocalPartialResults {
        /// Which lookup.
        lookup: LookupId,
        /// The shared files found, at most the limit asked.
        files: Vec<search::SharedFile>,
        /// The files being downloaded found.
        partials: Vec<partial::PartialResult>,
    },
}

/// What the outside must do, drained with [`Node::poll_action`].
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Queue a descriptor on a link.
    Send {
        /// The link.
        to: PeerId,
        /// The descriptor.
        message: Message,
    },
    /// Let a link go: write `bye` if there is one, then close once its
    /// queue is drained. The node has already forgotten it.
    Close {
        /// The link.
        peer: PeerId,
        /// A Bye to send last.
        bye: Option<Message>,
        /// Why, for the log.
        reason: String,
    },
    /// Connect to a servent; the answer is [`Event::Connected`] or [`Event::DialFailed`].
    Dial(SocketAddrV4),
    /// Ask these GWebCaches for hosts; the answer is [`Event::HostsLearned`].
    AskGWebCaches(Vec<String>),
    /// Look the library up; the answer is [`Event::LocalResults`].
    LookUp {
        /// Its name, for the answer.
        lookup: LookupId,
        /// What to look for.
        query: search::Query,
    },
    /// Store the host cache's text, to be given back to [`Node::restore_hosts`] at the next start.
    SaveHosts(String),
    /// We are reached at this address now: give it in handshakes.
    Advertise(SocketAddrV4),
    /// Play this role from now on: the handshake says so, and offers to
    /// become a leaf (`may_become_leaf`) when an ultrapeer asks.
    Role {
        /// The role.
        role: Role,
        /// Whether an ultrapeer asking us to be its leaf is obeyed.
        may_become_leaf: bool,
    },
    /// A QueryHit named a source of this content: tell the downloads.
    OfferSource {
        /// The content's URNs.
        urns: Vec<Urn>,
        /// The servent that has it.
        source: SocketAddrV4,
        /// The signature the hit carried for it (GGEP `SEBL.SIG`, as it
        /// came): a download started without one takes it.
        signature: Option<Vec<u8>>,
    },
    /// Send a descriptor as one datagram from the Gnutella port.
    SendDatagram {
        /// Where to.
        to: SocketAddrV4,
        /// The descriptor.
        message: Message,
    },
    /// Tell the user what the node is doing (one line for the log).
    Notice(String),
    /// A PUSH named us: connect to `to`, open with a `GIV` for file
    /// `index`, then serve the upload asked on that connection.
    ConnectBack {
        /// The downloader's address, from the PUSH.
        to: SocketAddrV4,
        /// The file it wants, from the PUSH.
        index: u32,
    },
    /// A QueryHit named a firewalled source: reach it with a PUSH
    /// ([`Node::push`]) rather than by connecting to its address.
    PushSource {
        /// The address the hit gave, which names the source in the downloads.
        source: SocketAddrV4,
        /// The servent's GUID, which PUSHes are routed by.
        servent: Guid,
        /// Its push proxies, from the hit's GGEP `PUSH`.
        proxies: Vec<SocketAddrV4>,
        /// The file's index in that servent's library, for each of the hit's URNs.
        files: Vec<(Vec<Urn>, u32)>,
        /// The IP the hit gave: who named those proxies, for the per-namer
        /// budget of [`Node::proxies_to_ask`].
        namer: Ipv4Addr,
    },
    /// Cut the incoming handshake from this address: it stalled and gave
    /// its place to a newer one. Its end is reported all the same
    /// ([`Event::HandshakeFailed`], or [`Event::Connected`] if it won the race).
    GiveWay(SocketAddr),
    /// Look a host name up; answer with [`Event::Resolved`].
    Resolve {
        /// The name.
        host: String,
        /// Its port.
        port: u16,
    },
    /// A neighbour asked us to connect back (TCP Connect Back): connect
    /// to `to`, write [`crate::wire::vendor::connect_back::GREETING`] and close.
    ProbeBack {
        /// The neighbour's IP and the port it asked for.
        to: SocketAddrV4,
    },
}

/// A search that cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSearch(pub String);

/// A connected neighbour, as the node knows it.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The address of the other end.
    pub addr: SocketAddr,
    /// The address it listens on, when it said so.
    pub listen: Option<SocketAddrV4>,
    /// Its User-Agent.
    pub user_agent: Option<String>,
    /// Who opened the connection.
    pub direction: Direction,
    /// When the handshake ended.
    pub since: Instant,
    /// Whether the link is deflate-compressed (in, out).
    pub compressed: (bool, bool),
    /// The part it plays, as it said in the handshake.
    pub role: Role,
    /// QueryHits it sent us: what makes a link worth keeping.
    pub hits: u64,
}

/// A query waiting for the library's answer.
#[derive(Clone, Copy, Debug)]
struct PendingAnswer {
    guid: Guid,
    reply_ttl: u8,
    reply: Reply,
    /// Whether the query asked for partial results ([`partial::wanted_by`]).
    partials: bool,
}

/// Where the hits of a query go.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// Back along the query's path, on the link it came by.
    Link(PeerId),
    /// Offered out of band to the querier at this address.
    OutOfBand(SocketAddrV4),
    /// Straight back over UDP to the sender of a GUESS query.
    Datagram(SocketAddrV4),
}

/// One servent's state and policy; see the module documentation.
pub struct Node {
    config: Config,
    rng: StdRng,
    guid: Guid,
    router: Router,
    peers: BTreeMap<PeerId, Peer>,
    dialing: BTreeSet<SocketAddrV4>,
    dial_pace: DialPace,
    handshakes: Handshakes,
    hosts: HostCache,
    searches: Searches,
    requeries: Requeries,
    trust: SharedTrust,
    advertised: SocketAddrV4,
    library: (u32, u64),
    lookups: BTreeMap<LookupId, PendingAnswer>,
    next_lookup: u64,
    next_tick: Instant,
    last_host_save: Instant,
    last_gwebcache: Option<Instant>,
    actions: VecDeque<Action>,
    qrp: QueryRouting,
    querying: Querying,
    promotion: Option<Promotion>,
    /// The role last handed out with [`Action::Role`].
    announced: Option<(Role, bool)>,
    udp: Udp,
    names: Names,
    oob: Oob,
    guess: Guess,
    connect_backs: ConnectBacks,
    probes: ConnectBackProbes,
    reachability: Reachability,
    proxies: PushProxies,
    proxy_asks: ProxyAsks,
}

impl Node {
    /// A node with no neighbours, sharing `library` (files, bytes), judging
    /// signatures with `trust`, drawing every GUID and choice from `rng`.
    /// The user's peers are in the host cache and dialed at the first timer.
    pub fn new(config: Config, mut rng: StdRng, trust: SharedTrust, library: (u32, u64), now: Instant) -> Node {
        let advertised = match config.listen {
            SocketAddr::V4(v4) if !v4.ip().is_unspecified() => v4,
            _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, config.listen.port()),
        };
        let guid = Guid::from_rng(&mut rng);
        let routing = routing::Config {
            max_ttl: config.max_ttl,
            seed: rng.next_u64(),
            ping_interval: config.ping_interval,
            ..routing::Config::default()
        };
        let local = LocalHost { addr: advertised, files: library.0, kbytes: kbytes(library.1) };
        let promotion = config.auto_role.then(|| Promotion::new(now));
        let mut hosts = HostCache::with_capacity(config.host_cache_capacity);
        for peer in &config.peers {
            hosts.add(*peer, Origin::User);
        }
        let guess = Guess::new(&mut rng);
        Node {
            router: Router::new(routing, local),
            udp: Udp::new(&config.uhcs, now),
            names: Names::new(&config.names, [&config.peers[..], &config.uhcs[..]].concat(), now),
            oob: Oob::default(),
            guess,
            config,
            rng,
            guid,
            peers: BTreeMap::new(),
            dialing: BTreeSet::new(),
            dial_pace: DialPace::default(),
            handshakes: Handshakes::default(),
            hosts,
            searches: Searches::default(),
            requeries: Requeries::default(),
            trust,
            advertised,
            library,
            lookups: BTreeMap::new(),
            next_lookup: 0,
            next_tick: now,
            last_host_save: now,
            last_gwebcache: None,
            actions: VecDeque::new(),
            qrp: QueryRouting::default(),
            querying: Querying::default(),
            promotion,
            announced: None,
            connect_backs: ConnectBacks::default(),
            probes: ConnectBackProbes::default(),
            reachability: Reachability::default(),
            proxies: PushProxies::default(),
            proxy_asks: ProxyAsks::default(),
        }
    }

    /// Adds the hosts of a text an earlier [`Action::SaveHosts`] handed out.
    /// Addresses it would not dial are left out, and only so many enter the
    /// reserve of hosts that worked (the file is input like any other).
    pub fn restore_hosts(&mut self, text: &str) {
        let mut hosts = std::mem::take(&mut self.hosts);
        hosts.restore(text, |addr| self.may_dial(addr));
        self.hosts = hosts;
    }

    /// Reacts to something that happened at `now`.
    pub fn handle(&mut self, event: Event, now: Instant) {
        match event {
            Event::Connected(connected) => self.on_connected(*connected, now),
            Event::Message { peer, message } if QueryRouting::is_update(&message) => {
                if let Err(error) = self.qrp.receive(peer, &message) {
                    self.router.count_drop(peer, routing::Drop::Malformed);
                    self.disconnect(peer, 413, format!("bad route table update: {error}"));
                }
            }
            Event::Message { message: Message { payload: Payload::Push(push), .. }, .. }
                if push.servent_guid == self.guid =>
            {
                self.on_push_to_us(push, now)
            }
            Event::Message { peer, message } if is_push_proxy_message(&message) => self.on_push_proxy(peer, message),
            Event::Message { peer, message } if is_connect_back_request(&message) => {
                self.on_connect_back_request(peer, &message, now)
            }
            Event::Message { peer, message } if vendor::is_vendor(&message) => {
                self.on_vendor(peer, &message, now);
                self.ask_connect_back(peer, &message);
            }
            Event::Message { peer, message } if self.is_leaf_query(peer, &message) => {
                self.on_leaf_query(peer, message, now)
            }
            Event::Message { peer, message } if self.is_similar_query(peer, &message, now) => {
                self.router.count_drop(peer, routing::Drop::Similar);
            }
            Event::Message { peer, message } => {
                if let (Payload::QueryHit(_), Some(neighbour)) = (&message.payload, self.peers.get_mut(&peer)) {
                    neighbour.hits += 1;
                }
                // Copied for our leaves, unless the router will drop it as seen.
                let last_hop =
                    (self.ends_here(&message) && !self.router.knows_guid(&message.guid, now)).then(|| message.clone());
                let (pongs, actions): (Vec<_>, Vec<_>) = self
                    .router
                    .handle(peer, message, now)
                    .into_iter()
                    .partition(|action| matches!(action, routing::Action::LearnHost(_)));
                if let Some(source) = self.peers.get(&peer).map(|p| p.addr.ip()) {
                    let addrs = pongs.into_iter().filter_map(|a| match a {
                        routing::Action::LearnHost(addr) => Some(addr),
                        _ => None,
                    });
                    self.learn_from(source, addrs, now);
                }
                let actions = self.down_to_leaves(actions, last_hop, peer);
                self.apply(actions, now);
                if let Some(reason) = self.router.counters(peer).and_then(junk::verdict) {
                    self.disconnect(peer, 400, format!("too much useless traffic: {reason}"));
                }
            }
            Event::Closed { peer, reason } => self.remove(peer, reason),
            Event::Malformed { peer, error } => {
                self.router.count_drop(peer, routing::Drop::Malformed);
                self.disconnect(peer, 400, format!("malformed descriptor: {error}"));
            }
            Event::QueueDropped { peer, count } => {
                for _ in 0..count {
                    self.router.count_drop(peer, routing::Drop::QueueFull);
                }
            }
            Event::DialFailed { addr, try_hosts } => {
                self.dialing.remove(&addr);
                self.hosts.failed(addr, now);
                self.learn_from(IpAddr::V4(*addr.ip()), try_hosts.into_iter().filter_map(v4), now);
            }
            Event::HandshakeFailed { remote } => {
                self.handshakes.end(remote);
            }
            Event::HostsLearned(addrs) => self.learn(addrs),
            Event::LibraryChanged { files, bytes } => {
                self.library = (files, bytes);
                self.update_local();
                let peers: Vec<PeerId> = self.peers.keys().copied().collect();
                peers.into_iter().for_each(|peer| self.tell_hops_flow(peer));
            }
            Event::LocalResults { lookup, files } => self.answer(lookup, files, &[], now),
            Event::LocalPartialResults { lookup, mut files, mut partials } => {
                if !self.lookups.get(&lookup).is_some_and(|pending| pending.partials) {
                    partials.clear();
                }
                files.extend(partials.iter().map(|p| p.file.clone()));
                self.answer(lookup, files, &partials, now)
            }
            Event::LibraryTable(table) => {
                for (to, message) in self.qrp.library_changed(table, &mut self.rng) {
                    self.actions.push_back(Action::Send { to, message });
                }
                // It may name files being downloaded: a leaf wants queries then.
                let peers: Vec<PeerId> = self.peers.keys().copied().collect();
                peers.into_iter().for_each(|peer| self.tell_hops_flow(peer));
            }
            Event::TrustChanged => self.searches.rejudge(&self.trust.read()),
            Event::Incoming { remote, arrival } => {
                self.reachability.incoming(remote, arrival, *self.advertised.ip(), self.config.dial_local)
            }
            Event::DownloadStarted { id, urn, searched } => self.requeries.start(id, urn, searched, now),
            Event::DownloadPhase { id, urn, phase } => self.requeries.observe(id, urn, phase, now),
            Event::Datagram { from, bytes } => self.on_datagram(from, &bytes, now),
            Event::Resolved { host, port, result } => self.on_resolved(&host, port, result, now),
        }
    }

    /// When [`Node::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = [self.requery_due(), self.querying.next_due()].into_iter().flatten().min();
        Some(due.map_or(self.next_tick, |due| due.min(self.next_tick)))
    }

    /// When a download's re-query is due: never while nobody would hear it.
    fn requery_due(&self) -> Option<Instant> {
        self.requeries.next_due().filter(|_| !self.peers.is_empty())
    }

    /// Runs what is due at `now`: pings and expiry, dialing, saving the
    /// host cache, the downloads' re-queries (held while we have no
    /// neighbour, so that one due at start waits for the first link).
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.next_tick = now + self.config.tick;
            self.handshakes.expire(now);
            let actions = self.router.tick(now);
            self.apply(actions, now);
            for (to, message) in self.qrp.tick(&mut self.rng) {
                self.actions.push_back(Action::Send { to, message });
            }
            self.promote(now);
            self.dial_more(now);
            self.report_bootstrap(now);
            self.guess_tick(now);
            self.look_up_names(now);
            if self.config.persist_hosts && now.duration_since(self.last_host_save) >= HOST_CACHE_SAVE_INTERVAL {
                self.last_host_save = now;
                self.actions.push_back(Action::SaveHosts(self.hosts.saved()));
            }
        }
        self.step_dynamic(now);
        if self.requery_due().is_none_or(|due| due > now) {
            return;
        }
        for urn in self.requeries.due(now).into_iter().filter(|urn| self.may_requery(*urn, now)).collect::<Vec<_>>() {
            // A re-query is a Query of ours, but no search of the user's:
            // its hits only offer sources to the downloads.
            let guid = self.start_own_query(urn_query(urn), None, now);
            self.querying.requeried(guid);
        }
    }

    /// Whether `peer`'s QRP table is in force: it gets only the queries it matches.
    pub fn qrp_in_force(&self, peer: PeerId) -> bool {
        self.qrp.table_in_force(peer)
    }

    /// Bytes held by the QRP tables in force.
    pub fn qrp_memory(&self) -> usize {
        self.qrp.memory()
    }

    /// The next thing the outside must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Sends a search through the network: keywords, or a
    /// `urn:sha1:`/`urn:sha256:`. An ultrapeer runs it dynamically; `ttl`
    /// floods it at that TTL instead (capped by what each peer advertised).
    /// Returns its id (its Query GUID); a leaf repeating lately asked words
    /// gets the earlier search's id, and sends nothing.
    pub fn search(&mut self, text: &str, ttl: impl Into<Option<u8>>, now: Instant) -> Result<Guid, BadSearch> {
        let query = build_query(text)?;
        let ttl = ttl.into();
        if let Some(earlier) = self.earlier_search(&query, ttl, now) {
            return Ok(earlier);
        }
        let guid = self.start_own_query(query.clone(), ttl, now);
        self.guess_later(guid, &query, now);
        self.searches.start(guid, text.to_string(), now);
        self.own_search_sent(&query, guid, now);
        Ok(guid)
    }

    /// Keeps the files another servent listed when browsed (`label` says
    /// which) as one of our searches, judged: its results can then be
    /// downloaded by URN as a search's are. Sends nothing. Returns its id.
    pub fn browsed(&mut self, label: String, hits: &[QueryHit], now: Instant) -> Guid {
        let guid = Guid::from_rng(&mut self.rng);
        self.searches.start_browse(guid, label, now);
        let trust = self.trust.read();
        for hit in hits {
            self.searches.add(guid, hit, now, &trust);
        }
        guid
    }

    /// Adds an address to connect to and keep trying, as `--peer` does.
    pub fn connect(&mut self, addr: SocketAddrV4, now: Instant) {
        self.hosts.add(addr, Origin::User);
        self.config.peers.push(addr);
        self.names.add_literal(addr);
        self.dial_more(now);
    }

    /// Whether an incoming Gnutella connection from `remote` may go on to
    /// the handshake, and the hosts to suggest in either case. Handshakes
    /// under way count as peers.
    pub fn admit(&self, remote: SocketAddr) -> (Admission, Vec<SocketAddr>) {
        let (ultrapeer_room, leaf_room) = self.room();
        let full = !ultrapeer_room && !leaf_room;
        let try_hosts = self.hosts.good(TRY_ULTRAPEERS);
        let admission = match (ultrapeer_room, leaf_room) {
            _ if full || self.linked_from(remote.ip()) => Admission::Full { try_ultrapeers: try_hosts.clone() },
            (true, false) if self.config.role == Role::Ultrapeer => {
                Admission::UltrapeersOnly { try_ultrapeers: try_hosts.clone() }
            }
            (false, true) => Admission::LeavesOnly { try_ultrapeers: try_hosts.clone() },
            _ => Admission::Accept,
        };
        (admission, try_hosts)
    }

    /// As [`Node::admit`], and an admitted handshake counts against every
    /// limit from `now` until it ends: in a link ([`Event::Connected`]) or
    /// not ([`Event::HandshakeFailed`]).
    /// When it would not be accepted outright, the oldest stalled handshake
    /// gives way to it ([`Action::GiveWay`]), if that changes its answer.
    pub fn admit_incoming(&mut self, remote: SocketAddr, now: Instant) -> (Admission, Vec<SocketAddr>) {
        let mut answer = self.admit(remote);
        if answer.0 != Admission::Accept && !self.linked_from(remote.ip()) {
            if let Some(stalled) = self.handshakes.give_way(now) {
                let after = self.admit(remote);
                if after.0 == answer.0 {
                    // Cutting it makes no room for this one: it goes on.
                    self.handshakes.keep(stalled);
                } else {
                    self.actions.push_back(Action::GiveWay(stalled));
                    answer = after;
                }
            }
        }
        if !matches!(answer.0, Admission::Full { .. }) {
            self.handshakes.start(remote, now);
        }
        answer
    }

    /// Whether `ip` already has a link or a handshake under way (one per
    /// address, as gtk-gnutella holds), or its /24 has
    /// [`MAX_LINKS_PER_PREFIX`]; [`shared_address`] is exempt, and loopback
    /// from the /24 rule (a test network on one machine is one block).
    fn linked_from(&self, ip: IpAddr) -> bool {
        if shared_address(ip) {
            return false;
        }
        let same_prefix = |other: IpAddr| prefix(other).is_some() && prefix(other) == prefix(ip);
        let links =
            self.peers.values().filter(|p| same_prefix(p.addr.ip())).count() + self.handshakes.count_where(same_prefix);
        links >= MAX_LINKS_PER_PREFIX
            || self.peers.values().any(|p| p.addr.ip() == ip)
            || self.handshakes.count_where(|other| other == ip) > 0
    }

    /// Ultrapeer slots an ultrapeer keeps for links it opens: a quarter
    /// when it discovers hosts, less those it has; incoming connections
    /// cannot take them.
    fn outgoing_reserve(&self) -> usize {
        if !self.config.discover || self.config.role != Role::Ultrapeer {
            return 0;
        }
        let outgoing = self.peers.values().filter(|p| p.direction == Direction::Outgoing && p.role == Role::Ultrapeer);
        (self.ultrapeer_links() / 4).saturating_sub(outgoing.count())
    }

    /// Says Bye to every neighbour and hands out the host cache to save.
    pub fn shutdown(&mut self) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.disconnect(peer, 200, "servent shutting down".into());
        }
        if self.config.persist_hosts {
            self.actions.push_back(Action::SaveHosts(self.hosts.saved()));
        }
    }

    /// Our servent GUID, which QueryHits and Pushes name us by.
    pub fn guid(&self) -> Guid {
        self.guid
    }

    /// Whether the firewall check still finds us unreachable: our QueryHits
    /// then carry the push flag.
    pub fn firewalled(&self) -> bool {
        self.reachability.firewalled()
    }

    /// Sends a PUSH asking `servent` to connect to us and upload file
    /// `index`, along the path its QueryHits came by; `false` when no
    /// route to it is known, we do not know our own address yet, or we are
    /// firewalled (its `GIV` could not reach us: gtk-gnutella's
    /// `download_push` sends none then).
    pub fn push(&mut self, servent: Guid, index: u32) -> bool {
        let Some(to) = self.router.push_route(&servent) else { return false };
        if self.advertised.ip().is_unspecified() || self.reachability.firewalled() {
            return false;
        }
        let push = Push {
            servent_guid: servent,
            index,
            ip: *self.advertised.ip(),
            port: self.advertised.port(),
            ggep: Default::default(),
        };
        let message = Message {
            guid: Guid::from_rng(&mut self.rng),
            ttl: self.config.max_ttl,
            hops: 0,
            payload: Payload::Push(push),
        };
        self.actions.push_back(Action::Send { to, message });
        true
    }

    /// Of the push proxies `named` for a firewalled source (by its hit or an
    /// `X-Falt`), those to ask for a PUSH to it now: none while our address
    /// is unknown or we are firewalled (its `GIV` could not reach us, and
    /// gtk-gnutella sends no PUSH then), only addresses we may dial (no
    /// loopback or LAN host outside a test network), each counted against a
    /// per-proxy and a per-namer budget ([`ProxyAsks`]). `named` pairs each
    /// proxy with the IP of who named it (the hit's servent, the `X-Falt` sender).
    pub fn proxies_to_ask(&mut self, named: &[(SocketAddrV4, Ipv4Addr)], now: Instant) -> push::ProxiesToAsk {
        let mut asks = push::ProxiesToAsk::default();
        if !address::usable(self.advertised) || self.reachability.firewalled() {
            return asks;
        }
        for (proxy, namer) in named.iter().take(push::MAX_NAMED_PROXIES) {
            if asks.asked.contains(proxy) || !self.may_dial(*proxy) {
                continue;
            }
            match self.proxy_asks.allow(*proxy, *namer, now) {
                Some(true) => asks.asked.push(*proxy),
                Some(false) => asks.over_budget = true,
                None => {}
            }
        }
        asks
    }

    /// Our push proxies, as our QueryHits list them (none while reachable).
    pub fn push_proxies(&self) -> Vec<SocketAddrV4> {
        if self.reachability.firewalled() {
            self.proxies.ours()
        } else {
            Vec::new()
        }
    }

    /// As a push proxy: sends the leaf `servent` a PUSH for file `index`
    /// naming `to` (a downloader's `X-Node`), unless it is no leaf of ours
    /// or `to` is an address we may not dial (our leaf would connect to it:
    /// gtk-gnutella's `pproxy.c` answers `400` for such an `X-Node`).
    pub fn proxy_push(&mut self, servent: Guid, index: u32, to: SocketAddrV4) -> push::ProxyPush {
        if !address::usable(to) || !self.may_dial(to) {
            return push::ProxyPush::BadNode;
        }
        let Some(leaf) = self.proxies.leaf(&servent).filter(|p| self.peers.contains_key(p)) else {
            return push::ProxyPush::NoLeaf;
        };
        let push = Push { servent_guid: servent, index, ip: *to.ip(), port: to.port(), ggep: Default::default() };
        let message = Message { guid: Guid::from_rng(&mut self.rng), ttl: 1, hops: 0, payload: Payload::Push(push) };
        self.actions.push_back(Action::Send { to: leaf, message });
        push::ProxyPush::Sent
    }

    /// The address we give others in Pongs, QueryHits and handshakes.
    pub fn advertised(&self) -> SocketAddrV4 {
        self.advertised
    }

    /// The connected neighbours, by link number.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &Peer)> + '_ {
        self.peers.iter().map(|(id, peer)| (*id, peer))
    }

    /// What the router counted for one neighbour.
    pub fn counters(&self, peer: PeerId) -> Option<&Counters> {
        self.router.counters(peer)
    }

    /// What the router counted for all traffic received.
    pub fn totals(&self) -> &Counters {
        self.router.totals()
    }

    /// Addresses in the host cache.
    pub fn known_hosts(&self) -> usize {
        self.hosts.len()
    }

    /// One of our searches, by its id.
    pub fn search_results(&self, id: &Guid) -> Option<&Search> {
        self.searches.get(id)
    }

    /// What our searches know of the content with any of these URNs, for a
    /// download: a source the dial rule refuses is given as its push-only
    /// key ([`SearchResult::dialable`]), as a hit naming it is offered,
    /// unless the user named it (a browsed host).
    pub fn known(&self, urns: &[Urn]) -> Option<SearchResult> {
        self.searches.find(urns).map(|found| found.dialable(&self.dial_rule()))
    }

    fn on_connected(&mut self, connected: Connected, now: Instant) {
        if connected.direction == Direction::Incoming {
            let refusal = match self.handshakes.end(connected.addr) {
                Ended::GaveWay => Some("its stalled handshake gave way".to_string()),
                Ended::Counted | Ended::Unknown => self.over_limits(&connected),
            };
            if let Some(reason) = refusal {
                let bye = self.bye(503, reason.clone());
                self.actions.push_back(Action::Close { peer: connected.peer, bye: Some(bye), reason });
                return;
            }
        }
        if connected.info.demoted && self.config.role == Role::Ultrapeer {
            self.switch_role(Role::Leaf, "became an ultrapeer's leaf");
        }
        if let Some(dialed) = connected.dialed {
            self.dialing.remove(&dialed);
            self.hosts.succeeded(dialed);
        }
        self.learn_from(connected.addr.ip(), connected.info.try_ultrapeers.iter().copied().filter_map(v4), now);
        if self.advertised.ip().is_unspecified() {
            if let SocketAddr::V4(local) = connected.local {
                self.advertised = SocketAddrV4::new(*local.ip(), self.advertised.port());
                self.actions.push_back(Action::Advertise(self.advertised));
                self.update_local();
            }
        }
        if connected.direction == Direction::Incoming {
            let (remote, advertised) = (connected.addr.ip(), *self.advertised.ip());
            self.reachability.incoming(remote, Arrival::Unasked, advertised, self.config.dial_local);
        }
        let info = connected.info;
        let table_messages = self.qrp.connected(connected.peer, &info, self.config.role, &mut self.rng);
        self.querying_connected(connected.peer, &info);
        let listen = info.listen.and_then(v4);
        let role = info.role();
        let degree = info.degree();
        let peer = Peer {
            addr: connected.addr,
            listen,
            user_agent: info.user_agent,
            direction: connected.direction,
            since: now,
            compressed: (info.deflate_in, info.deflate_out),
            role,
            hits: 0,
        };
        self.peers.insert(connected.peer, peer);
        if connected.dialed.is_some_and(|dialed| self.config.peers.contains(&dialed)) {
            self.make_room_for(connected.peer);
        }
        let actions = self.router.connected(connected.peer, listen, now);
        self.router.set_relaying(connected.peer, role, degree, now);
        self.apply(actions, now);
        for message in table_messages {
            self.actions.push_back(Action::Send { to: connected.peer, message });
        }
        // A leaf asks each ultrapeer to be its push proxy (the request's
        // GUID is ours); only a firewalled leaf lists them, but whether we
        // are firewalled may change.
        if self.config.role == Role::Leaf && role == Role::Ultrapeer {
            let payload = push_proxy::request().into_payload();
            let message = Message { guid: self.guid, ttl: 1, hops: 0, payload };
            self.actions.push_back(Action::Send { to: connected.peer, message });
        }
    }

    /// A Push Proxy Request or Acknowledgement from a neighbour.
    fn on_push_proxy(&mut self, peer: PeerId, message: Message) {
        let Some(Ok(vendor)) = Vendor::from_payload(&message.payload) else { return };
        let Some(from) = self.peers.get(&peer) else { return };
        if vendor.kind.same_message(&Kind::PUSH_PROXY_REQUEST) {
            // The request's GUID is the leaf's servent GUID.
            let addressed = !self.advertised.ip().is_unspecified();
            if self.config.role == Role::Ultrapeer && addressed && self.proxies.serve(message.guid, peer) {
                let ack = push_proxy::PushProxyAck { addr: self.advertised }.to_vendor();
                let message = Message { guid: message.guid, ttl: 1, hops: 0, payload: ack.into_payload() };
                self.actions.push_back(Action::Send { to: peer, message });
            }
        } else if let Ok(ack) = push_proxy::PushProxyAck::decode(vendor.kind.version, &vendor.body) {
            let ip = match (ack.addr.ip().is_unspecified(), from.addr) {
                (true, SocketAddr::V4(link)) => *link.ip(),
                _ => *ack.addr.ip(),
            };
            self.proxies.acknowledged(peer, SocketAddrV4::new(ip, ack.addr.port()));
        }
    }

    /// After a neighbour's Messages Supported: while the firewall check
    /// finds us unreachable, ask it to connect back to us (TCP Connect
    /// Back), as gtk-gnutella does with each new neighbour while firewalled.
    fn ask_connect_back(&mut self, peer: PeerId, message: &Message) {
        let announced =
            matches!(Vendor::from_payload(&message.payload), Some(Ok(v)) if v.kind == Kind::MESSAGES_SUPPORTED);
        let port = self.advertised.port();
        if announced
            && port != 0
            && self.reachability.firewalled()
            && self.querying.vendor.supports(peer, Kind::TCP_CONNECT_BACK)
        {
            let request = TcpConnectBack { port }.to_vendor();
            self.actions
                .push_back(Action::Send { to: peer, message: vendor::message(Guid::from_rng(&mut self.rng), request) });
        }
    }

    /// A neighbour's TCP Connect Back: connect to its link's IP at the
    /// port it names, within [`push::ConnectBackProbes`].
    fn on_connect_back_request(&mut self, peer: PeerId, message: &Message, now: Instant) {
        let Some(Ok(vendor)) = Vendor::from_payload(&message.payload) else { return };
        let Some(SocketAddr::V4(link)) = self.peers.get(&peer).map(|p| p.addr) else { return };
        let Ok(request) = TcpConnectBack::decode(vendor.kind.version, &vendor.body) else {
            self.router.count_drop(peer, routing::Drop::Malformed);
            return;
        };
        let to = SocketAddrV4::new(*link.ip(), request.port);
        if self.probes.allow(to, self.config.dial_local, now) {
            self.actions.push_back(Action::ProbeBack { to });
        }
    }

    /// A PUSH for us: connect back, within the bounds a PUSH flood must not
    /// pass, and only to an address we may dial (anyone who saw one of our
    /// hits can route us a PUSH naming a service on our machine or LAN;
    /// gtk-gnutella's `handle_push_request` refuses an invalid address).
    fn on_push_to_us(&mut self, push: Push, now: Instant) {
        let to = SocketAddrV4::new(push.ip, push.port);
        if self.may_dial(to) && self.connect_backs.allow(to, now) {
            self.actions.push_back(Action::ConnectBack { to, index: push.index });
        }
    }

    fn apply(&mut self, actions: Vec<routing::Action>, now: Instant) {
        for action in actions {
            match action {
                routing::Action::Send { to, mut message } => {
                    if let Payload::QueryHit(hit) = &message.payload {
                        self.count_results(message.guid, hit.results.len());
                    }
                    let query = matches!(message.payload, Payload::Query(_));
                    let flow = !query || self.querying.vendor.admits_query(to, message.hops);
                    if flow && self.qrp.admits(self.config.role, to, &mut message) {
                        self.actions.push_back(Action::Send { to, message });
                    }
                }
                routing::Action::SearchLocal { from, guid, reply_ttl, query } => {
                    let reply = self.oob_querier(&guid, &query, reply_ttl).map_or(Reply::Link(from), Reply::OutOfBand);
                    let partials = partial::wanted_by(&query);
                    self.look_up(PendingAnswer { guid, reply_ttl, reply, partials }, query)
                }
                routing::Action::Hit { search, hit } => {
                    if !self.relayed_guess_hit(search, &hit, now) && self.router.is_own_query(&search, now) {
                        self.on_hit(search, hit, now);
                    }
                }
                // Learned where the Pong came in, within its sender's allowance.
                routing::Action::LearnHost(_) => {}
                routing::Action::Disconnect { peer, reason } => self.remove(peer, reason),
            }
        }
    }

    fn on_hit(&mut self, search: Guid, hit: QueryHit, now: Instant) {
        self.count_results(search, hit.results.len());
        // A hit naming an address we may not dial (our machine, our LAN) is
        // reached by PUSH only, under a key that names no host, as
        // gtk-gnutella's `search.c` takes a hit with an invalid address.
        let named = SocketAddrV4::new(hit.ip, hit.port);
        let direct = self.may_dial(named);
        let source = if direct { named } else { push::push_only_key(hit.servent_guid) };
        if !direct || push::needs_push(&hit) {
            let files = hit.results.iter().filter(|r| !r.urns.is_empty()).map(|r| (r.urns.clone(), r.index)).collect();
            let proxies = push::hit_proxies(&hit);
            let namer = hit.ip;
            self.actions.push_back(Action::PushSource { source, servent: hit.servent_guid, files, proxies, namer });
        }
        // A partial source's PRU says how much it has: one with nothing is no source yet.
        for result in hit.results.iter().filter(|r| !r.urns.is_empty() && !partial::offers_nothing(r)) {
            let signature = result.ggep.get(wire::GgepId::RELEASE_SIGNATURE).map(<[u8]>::to_vec);
            self.actions.push_back(Action::OfferSource { urns: result.urns.clone(), source, signature });
        }
        if self.searches.get(&search).is_some() {
            self.searches.add(search, &hit, now, &self.trust.read());
            self.check_satisfied(search);
        }
    }

    /// Asks the library for what a neighbour's query wants; nothing is
    /// asked while we do not know our own address, as no hit could name it.
    fn look_up(&mut self, pending: PendingAnswer, query: Query) {
        if self.advertised.ip().is_unspecified() || self.lookups.len() >= MAX_PENDING_LOOKUPS {
            return;
        }
        let lookup = LookupId(self.next_lookup);
        self.next_lookup += 1;
        self.lookups.insert(lookup, pending);
        let query = search::Query { words: query.criteria, urns: query.urns, limit: MAX_LOCAL_RESULTS };
        self.actions.push_back(Action::LookUp { lookup, query });
    }

    /// Answers a neighbour's query with the files the library found.
    fn answer(
        &mut self,
        lookup: LookupId,
        files: Vec<search::SharedFile>,
        partials: &[partial::PartialResult],
        now: Instant,
    ) {
        let Some(pending) = self.lookups.remove(&lookup) else { return };
        if files.is_empty() {
            return;
        }
        let proxies = self.push_proxies();
        let mut hit = query_hit(files, self.advertised, self.guid, self.reachability.firewalled(), &proxies);
        // Flagged before splitting: each piece, PRU included, fits the target.
        partial::flag_partial(&mut hit, partials);
        let hits = hit.split(wire::HIT_PAYLOAD);
        match pending.reply {
            Reply::Link(to) if self.peers.contains_key(&to) => {
                for hit in hits {
                    let (guid, ttl) = (pending.guid, pending.reply_ttl);
                    let message = Message { guid, ttl, hops: 0, payload: Payload::QueryHit(hit) };
                    self.actions.push_back(Action::Send { to, message });
                }
            }
            Reply::Link(_) => {}
            Reply::OutOfBand(querier) => self.offer_oob(pending.guid, querier, hits, now),
            Reply::Datagram(to) => self.answer_guess(pending.guid, to, hits, now),
        }
    }

    /// Keeps the number of connections up, from the host cache, and asks the
    /// GWebCaches for hosts when the cache has nothing left to try.
    /// Ultrapeer links sought: a leaf keeps a few.
    fn ultrapeer_links(&self) -> usize {
        match self.config.role {
            Role::Ultrapeer => self.config.max_peers,
            Role::Leaf => self.config.max_peers.min(LEAF_LINKS),
        }
    }

    /// Whether there is room for one more incoming ultrapeer link, and for
    /// one more leaf; a handshake under way may end in either, so it takes
    /// room in both, and the outgoing reserve is kept.
    fn room(&self) -> (bool, bool) {
        let pending = self.handshakes.len() + self.outgoing_reserve();
        if self.config.role == Role::Ultrapeer && self.config.max_leaves == 0 {
            let room = self.peers.len() + pending < self.config.max_peers;
            return (room, room);
        }
        let leaves = self.peers.values().filter(|p| p.role == Role::Leaf).count();
        let ultrapeers = self.peers.len() - leaves;
        let leaf_room = self.config.role == Role::Ultrapeer && leaves + pending < self.config.max_leaves;
        (ultrapeers + pending < self.ultrapeer_links(), leaf_room)
    }

    /// Why an incoming link whose handshake just ended may not stay, if it
    /// may not: the last check, for a handshake whose count expired.
    fn over_limits(&self, connected: &Connected) -> Option<String> {
        if self.linked_from(connected.addr.ip()) {
            return Some(format!("already linked to {}", connected.addr.ip()));
        }
        // An ultrapeer asked to become our leaf may answer as an ultrapeer
        // all the same: its role, not the admission, says which room it takes.
        let (ultrapeer_room, leaf_room) = self.room();
        let room = match connected.info.role() {
            Role::Ultrapeer => ultrapeer_room,
            Role::Leaf => leaf_room,
        };
        (!room).then(|| "no room for another peer".to_string())
    }

    fn dial_more(&mut self, now: Instant) {
        self.dial_users_past_full(now);
        let ultrapeers = self.peers.values().filter(|p| p.role == Role::Ultrapeer).count();
        let wanted = self.ultrapeer_links().saturating_sub(ultrapeers + self.dialing.len());
        let slots = wanted.min(MAX_DIALS.saturating_sub(self.dialing.len()));
        if slots == 0 {
            return;
        }
        let connected: BTreeSet<SocketAddrV4> =
            self.peers.values().flat_map(|p| [v4(p.addr), p.listen]).flatten().collect();
        let own = [self.advertised, v4(self.config.listen).unwrap_or(self.advertised)];
        let user: BTreeSet<SocketAddrV4> = self.config.peers.iter().copied().collect();
        let discover = self.config.discover;
        let full_prefixes: BTreeSet<address::Block> = self
            .peers
            .values()
            .filter_map(|p| prefix(p.addr.ip()))
            .fold(BTreeMap::new(), |mut counts, p| {
                *counts.entry(p).or_insert(0) += 1;
                counts
            })
            .into_iter()
            .filter(|(_, n)| *n >= MAX_LINKS_PER_PREFIX)
            .map(|(p, _)| p)
            .collect();
        let candidates = self.hosts.candidates(slots, now, |addr| {
            prefix(IpAddr::V4(*addr.ip())).is_some_and(|p| full_prefixes.contains(&p)) && !user.contains(&addr)
                || connected.contains(&addr)
                || self.dialing.contains(&addr)
                || own.contains(&addr)
                || (!user.contains(&addr) && (!discover || !self.may_dial(addr)))
        });
        let cache_due = self.last_gwebcache.is_none_or(|t| now.duration_since(t) >= GWEBCACHE_INTERVAL);
        if candidates.is_empty() && discover {
            self.ask_host_caches(now);
        }
        if candidates.is_empty() && discover && !self.config.gwebcaches.is_empty() && cache_due {
            self.last_gwebcache = Some(now);
            self.actions.push_back(Action::AskGWebCaches(self.config.gwebcaches.clone()));
        }
        for addr in candidates {
            if !user.contains(&addr) && !self.dial_pace.allow(now) {
                break;
            }
            self.dialing.insert(addr);
            self.actions.push_back(Action::Dial(addr));
        }
    }

    /// A peer the user asked for always gets a slot: when the ultrapeer
    /// slots are full and one of them is due to be dialed, it is dialed all
    /// the same, and only once its link is up ([`Node::make_room_for`])
    /// does an incoming link give way, so a `--peer` that is down evicts
    /// nobody at its retries.
    fn dial_users_past_full(&mut self, now: Instant) {
        let ultrapeers = self.peers.values().filter(|p| p.role == Role::Ultrapeer).count();
        if ultrapeers + self.dialing.len() < self.ultrapeer_links() {
            return;
        }
        let connected: BTreeSet<SocketAddrV4> =
            self.peers.values().flat_map(|p| [v4(p.addr), p.listen]).flatten().collect();
        let user: BTreeSet<SocketAddrV4> = self.config.peers.iter().copied().collect();
        let due = self.hosts.candidates(1, now, |addr| {
            !user.contains(&addr) || connected.contains(&addr) || self.dialing.contains(&addr)
        });
        for addr in due {
            self.dialing.insert(addr);
            self.actions.push_back(Action::Dial(addr));
        }
    }

    /// The user's peer `kept` is linked past the ultrapeer slots: the least
    /// useful incoming link (fewest QueryHits, then the newest) gives way,
    /// as gtk-gnutella drops useless peers.
    fn make_room_for(&mut self, kept: PeerId) {
        let ultrapeers = self.peers.values().filter(|p| p.role == Role::Ultrapeer).count();
        if ultrapeers <= self.ultrapeer_links() {
            return;
        }
        let user: BTreeSet<SocketAddrV4> = self.config.peers.iter().copied().collect();
        let useless = self
            .peers
            .iter()
            .filter(|(id, p)| **id != kept && p.direction == Direction::Incoming && p.role == Role::Ultrapeer)
            .filter(|(_, p)| !p.listen.is_some_and(|l| user.contains(&l)))
            .min_by_key(|(_, p)| (p.hits, std::cmp::Reverse(p.since)))
            .map(|(id, _)| *id);
        if let Some(peer) = useless {
            self.disconnect(peer, 503, "making room for a configured peer".into());
        }
    }

    /// Adds hosts heard of outside the network (the GWebCaches).
    fn learn(&mut self, addrs: impl IntoIterator<Item = SocketAddrV4>) {
        for addr in addrs {
            if self.may_dial(addr) {
                self.hosts.add(addr, Origin::Network);
            }
        }
    }

    /// Adds hosts a neighbour or a handshake named, within the allowance of
    /// the address they came from.
    fn learn_from(&mut self, source: IpAddr, addrs: impl IntoIterator<Item = SocketAddrV4>, now: Instant) {
        for addr in addrs {
            if self.may_dial(addr) && !self.hosts.learn(addr, source, now) {
                return;
            }
        }
    }

    /// Whether an address heard from the network may be kept and dialed:
    /// not loopback, private or on our own IP (our API's port, say), unless
    /// the configuration allows local addresses.
    fn may_dial(&self, addr: SocketAddrV4) -> bool {
        self.dial_rule().allows(addr)
    }

    /// The rule for addresses heard from the network, as it stands now (our
    /// advertised address may change it): for the shell to carry to the
    /// downloads, which dial the sources answers name.
    pub fn dial_rule(&self) -> address::DialRule {
        let own = [*self.advertised.ip(), v4(self.config.listen).map_or(Ipv4Addr::UNSPECIFIED, |l| *l.ip())];
        address::DialRule { own, ..address::DialRule::new(self.config.dial_local) }
    }

    fn update_local(&mut self) {
        let (files, bytes) = self.library;
        self.router.set_local(LocalHost { addr: self.advertised, files, kbytes: kbytes(bytes) });
    }

    /// `--mode auto`: switches roles when [`promotion`] says so, and hands
    /// out the role the handshake must state.
    fn promote(&mut self, now: Instant) {
        let Some(promotion) = self.promotion.as_mut() else { return };
        let leaves = self.peers.values().filter(|p| p.role == Role::Leaf).count();
        let facts = Facts {
            role: self.config.role,
            reachable: !self.reachability.firewalled(),
            ultrapeers: self.peers.len() - leaves,
            leaves,
        };
        if let Some(role) = promotion.decide(facts, now) {
            self.switch_role(role, "switching roles");
        }
        let may_become_leaf = self.config.role == Role::Ultrapeer && leaves == 0;
        let state = (self.config.role, may_become_leaf);
        if self.announced != Some(state) {
            self.announced = Some(state);
            self.actions.push_back(Action::Role { role: state.0, may_become_leaf });
        }
    }

    /// Plays `role` from now on: the links made in the other role go (a
    /// peer took us for what we were), and new ones are dialed.
    fn switch_role(&mut self, role: Role, why: &str) {
        self.config.role = role;
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.disconnect(
                peer,
                200,
                format!("{why}: now a {}", if role == Role::Leaf { "leaf" } else { "ultrapeer" }),
            );
        }
        let may_become_leaf = role == Role::Ultrapeer;
        self.announced = Some((role, may_become_leaf));
        self.actions.push_back(Action::Role { role, may_become_leaf });
    }

    /// Sends a Bye, then lets the link go once it is written.
    fn disconnect(&mut self, peer: PeerId, code: u16, reason: String) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        let bye = self.bye(code, reason.clone());
        self.forget(peer);
        self.actions.push_back(Action::Close { peer, bye: Some(bye), reason });
    }

    fn bye(&mut self, code: u16, reason: String) -> Message {
        Message { guid: Guid::from_rng(&mut self.rng), ttl: 1, hops: 0, payload: Payload::Bye(Bye { code, reason }) }
    }

    /// Forgets a neighbour and lets its link go.
    fn remove(&mut self, peer: PeerId, reason: String) {
        if self.forget(peer) {
            self.actions.push_back(Action::Close { peer, bye: None, reason });
        }
    }

    fn forget(&mut self, peer: PeerId) -> bool {
        self.router.disconnected(peer);
        self.qrp.closed(peer);
        self.querying_closed(peer);
        self.proxies.closed(peer);
        self.peers.remove(&peer).is_some()
    }
}

/// Turns what the user typed into a Query: keywords, or a URN to look up
/// by hash (sent, as Gnutella servents do, with `\` as criteria).
pub fn build_query(text: &str) -> Result<Query, BadSearch> {
    let text = text.trim();
    if let Ok(urn) = text.parse::<Urn>() {
        return Ok(urn_query(urn));
    }
    if search::keywords(text).is_empty() {
        return Err(BadSearch(format!("nothing to search for in {text:?}")));
    }
    if text.len() > wire::MAX_CRITERIA {
        return Err(BadSearch(format!("search too long: {} bytes, at most {}", text.len(), wire::MAX_CRITERIA)));
    }
    Ok(Query {
        flags: QueryFlags::default(),
        criteria: text.to_string(),
        urns: Vec::new(),
        ggep: partial::wanted(),
        original: Default::default(),
    })
}

fn urn_query(urn: Urn) -> Query {
    Query {
        flags: QueryFlags::default(),
        criteria: "\\".into(),
        urns: vec![urn],
        ggep: partial::wanted(),
        original: Default::default(),
    }
}

/// Whether a descriptor is a TCP Connect Back request.
fn is_connect_back_request(message: &Message) -> bool {
    matches!(Vendor::from_payload(&message.payload), Some(Ok(v)) if v.kind.same_message(&Kind::TCP_CONNECT_BACK))
}

/// Whether a descriptor is a Push Proxy Request or Acknowledgement.
fn is_push_proxy_message(message: &Message) -> bool {
    matches!(Vendor::from_payload(&message.payload), Some(Ok(v))
        if v.kind.same_message(&Kind::PUSH_PROXY_REQUEST) || v.kind.same_message(&Kind::PUSH_PROXY_ACK))
}

fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(_) => None,
    }
}

fn kbytes(bytes: u64) -> u32 {
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX)
}
