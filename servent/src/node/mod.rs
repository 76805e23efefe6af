//! The running servent on async-std: sockets, tasks, and the pump that
//! carries events to the node core and its actions back out.
//!
//! One listening port takes both Gnutella and HTTP; the first line decides
//! ([`connection`]). Every Gnutella connection has a reader task, which
//! decodes descriptors and hands them to the pump, and a writer task, which
//! drains that peer's bounded [`OutQueue`]. The pump ([`pump`]) is the single
//! owner of the [`servent_core::node::Node`], which holds the router, the
//! peer table, the host cache and our searches and decides everything; the
//! pump only carries: events from readers, the library ([`library`]), the
//! downloads ([`download`]), the GWebCaches ([`gwebcache`]), the API and the
//! clock in; messages, dials, lookups and saves out. There is no lock around
//! routing state. A slow peer fills only its own queue, where the least
//! valuable messages are dropped first.

mod connection;
mod descriptors;
mod download;
mod gwebcache;
mod library;
mod pump;
mod udp;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_std::channel::{self, Sender};
use async_std::net::{TcpListener, TcpStream, UdpSocket};
use async_std::task::{self, JoinHandle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
pub use servent_core::node::Direction;
use servent_core::node::{self as core, Event as CoreEvent};

use self::download::DownloadTarget;
use self::library::LibraryVerdicts;
use crate::config::Config;
use crate::flow::OutQueue;
use crate::handshake::{self, Admission, PeerInfo};
use crate::peeraddr::PeerAddr;
use crate::routing::{Counters, PeerId};
use crate::searches::SearchResult;
use crate::transfer::alt::AltLocations;
use crate::transfer::download::{DownloadError, DownloadId, Downloads, DownloadsConfig, Keep};
use crate::transfer::partial::PartialShares;
use crate::transfer::push::Pushes;
use crate::transfer::rate::{RateLimit, Rates};
use crate::transfer::upload::Uploads;
use crate::trust::{self, Judgement, KeyEntry, SharedTrust, TrustError, TrustStore, Verdict};
use crate::wire::{Guid, QueryHit, Urn};

/// Events waiting for the pump, at most; readers wait when it is full.
const EVENT_QUEUE: usize = 4096;
/// A peer silent for this long is gone (we ping every 30 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Why a servent could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listening port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// The shared-library index could not be opened.
    #[error("cannot open the library index: {0}")]
    Library(#[from] search::Error),
    /// The data directory could not be made.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The servent is shutting down or gone.
    #[error("the servent has stopped")]
    Stopped,
    /// A search that cannot be sent.
    #[error("{0}")]
    BadSearch(String),
    /// Downloads need a data directory.
    #[error("this servent has no data directory, so it cannot download")]
    NoDownloads,
    /// What to download is not a URN or magnet we understand.
    #[error("{0}")]
    BadTarget(String),
    /// Nothing is known of that content: no size, no source.
    #[error("no source found for {0}: search for it first, or give a magnet with xl= and xs=")]
    NotFound(String),
    /// The download manager refused.
    #[error("{0}")]
    Download(#[from] DownloadError),
    /// The content is a fake: it is never downloaded.
    #[error("refusing to download {target}: fake: {reason}")]
    Fake {
        /// What was asked for.
        target: String,
        /// Why it is a fake.
        reason: String,
    },
    /// Browsing another servent failed.
    #[error("{0}")]
    Browse(String),
    /// Only verified content was asked for, and this is not.
    #[error("refusing to download {target}: {verdict}, not verified: {reason}")]
    NotVerified {
        /// What was asked for.
        target: String,
        /// Its verdict.
        verdict: Verdict,
        /// Why.
        reason: String,
    },
    /// The trust store refused or failed.
    #[error("{0}")]
    Trust(#[from] TrustError),
}

/// A shared file as the library view shows it: the file and its verdict.
#[derive(Clone, Debug, Serialize)]
pub struct LibraryEntry {
    /// The file.
    #[serde(flatten)]
    pub file: search::SharedFile,
    /// What its signature says: `verdict`, `reason`, `publisher`, `version`.
    #[serde(flatten)]
    pub judgement: Judgement,
}

/// One connected neighbour, as the peer list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerSnapshot {
    /// The address of the connection's other end.
    pub addr: SocketAddr,
    /// The address it listens on, when it said so.
    pub listen: Option<SocketAddrV4>,
    /// Its User-Agent.
    pub user_agent: Option<String>,
    /// `incoming` or `outgoing`.
    pub direction: Direction,
    /// Seconds since the handshake ended.
    pub connected_secs: u64,
    /// Whether the link is deflate-compressed (in, out).
    pub compressed: (bool, bool),
    /// `ultrapeer` or `leaf`, as it said in the handshake.
    pub role: handshake::Role,
    /// Whether its QRP table is in force: it gets only the queries it matches.
    pub qrp: bool,
    /// The vendor messages it announced (Messages Supported), e.g. `BEAR/4v1`.
    pub vendor_messages: Vec<String>,
    /// Messages written to its socket.
    pub messages_out: u64,
    /// Of those, Queries.
    pub queries_out: u64,
    /// Messages dropped from its full queue.
    pub queue_dropped: u64,
    /// What the router counted for it.
    pub counters: Counters,
}

/// What the servent is, in a few numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Our servent GUID.
    pub guid: String,
    /// The Gnutella/HTTP listening address.
    pub listen: SocketAddr,
    /// The address we give others in Pongs and QueryHits.
    pub advertised: SocketAddrV4,
    /// Connected peers.
    pub peers: usize,
    /// Addresses in the host cache.
    pub host_cache: usize,
    /// Shared files.
    pub files: u32,
    /// Shared bytes.
    pub bytes: u64,
    /// Counters of all traffic received.
    pub totals: Counters,
    /// Messages written to all sockets since start.
    pub messages_sent: u64,
    /// Query messages written to all sockets since start.
    pub queries_sent: u64,
    /// QueryHits received out of band (over UDP, claimed with our token).
    pub oob_hits: u64,
    /// Whether the firewall check finds us unreachable (no connection has
    /// come in from outside yet): our QueryHits then ask for a PUSH.
    pub firewalled: bool,
    /// Download connections that came with a `GIV` after our PUSH.
    pub givs_taken: u64,
}

/// The results of one of our searches so far.
#[derive(Clone, Debug, Serialize)]
pub struct SearchSnapshot {
    /// The search's id (its Query GUID).
    pub id: String,
    /// What was searched for.
    pub query: String,
    /// QueryHit messages received.
    pub hits_received: u64,
    /// Milliseconds from sending the query to its first QueryHit.
    pub first_hit_ms: Option<f64>,
    /// Results grouped by content.
    pub results: Vec<SearchResult>,
}

/// Messages written to each peer's socket, by payload type (counted by the
/// writer, so they are what really left).
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Every message written.
    pub messages: AtomicU64,
    /// Queries written.
    pub queries: AtomicU64,
    /// Messages dropped from the full queue.
    pub queue_dropped: AtomicU64,
}

/// Requests from the API and the CLI.
enum Command {
    Search { text: String, ttl: Option<u8>, reply: Sender<Result<Guid, NodeError>> },
    Results { id: Guid, reply: Sender<Option<SearchSnapshot>> },
    Peers { reply: Sender<Vec<PeerSnapshot>> },
    Status { reply: Sender<Status> },
    Connect { addr: SocketAddrV4 },
    ConnectName { host: String, port: u16, addrs: Vec<SocketAddrV4> },
    Admit { remote: SocketAddr, reply: Sender<(Admission, Vec<SocketAddr>)> },
    Known { urns: Vec<Urn>, reply: Sender<Option<SearchResult>> },
    Push { servent: Guid, index: u32, proxies: Vec<(SocketAddrV4, Ipv4Addr)> },
    ProxyPush { servent: Guid, index: u32, to: SocketAddrV4, reply: Sender<servent_core::push::ProxyPush> },
    Identity { reply: Sender<crate::transfer::browse::Identity> },
    Shutdown { reply: Sender<()> },
    Browsed { label: String, hits: Vec<QueryHit>, reply: Sender<Vec<SearchResult>> },
}

/// What the pump carries to the core.
enum Event {
    /// Something the core reacts to as it is.
    Core(CoreEvent),
    /// A handshake ended: the pump keeps the link, the core learns the peer.
    Connected(Box<ConnectedPeer>),
    /// A request from the API.
    Command(Command),
}

/// A peer whose handshake has just ended.
struct ConnectedPeer {
    id: PeerId,
    addr: SocketAddr,
    local: SocketAddr,
    info: PeerInfo,
    direction: Direction,
    dialed: Option<SocketAddrV4>,
    stream: TcpStream,
    queue: Arc<Mutex<OutQueue>>,
    wake: Sender<()>,
    counters: Arc<LinkCounters>,
    writer: JoinHandle<()>,
}

/// What the connection tasks share.
struct Shared {
    events: Sender<Event>,
    handshake: handshake::Config,
    /// The role the handshake states now and whether we may become a
    /// leaf, as the core last said (`--mode auto` switches them).
    role: Mutex<(handshake::Role, bool)>,
    /// The address we tell others to reach us at; its IP is unspecified
    /// until the first connection shows which interface we use.
    advertised: Mutex<SocketAddrV4>,
    next_id: AtomicU64,
    /// What all writers have written, counted at the sockets.
    sent: LinkCounters,
    /// What HTTP requests on our port are served with.
    uploads: Arc<Uploads>,
    /// Firewalled sources, and the downloads waiting for their `GIV`.
    pushes: Arc<Pushes>,
    /// Incoming handshakes under way, which the core may cut.
    handshakes: connection::InFlight,
    /// The core's dial rule, as the downloads apply it to the sources others name.
    dial: Arc<RwLock<servent_core::address::DialRule>>,
}

impl Shared {
    /// The handshake settings for a connection whose local end is `local`:
    /// `Listen-IP` is our advertised address, or that interface's address
    /// with our port while we know no better.
    fn handshake_config(&self, local: SocketAddr) -> handshake::Config {
        let advertised = self.advertised.lock().map(|a| *a).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let listen = match local {
            SocketAddr::V4(local) if advertised.ip().is_unspecified() => {
                SocketAddrV4::new(*local.ip(), advertised.port())
            }
            _ => advertised,
        };
        let (role, may_become_leaf) = self.role.lock().map(|r| *r).unwrap_or((self.handshake.role, false));
        handshake::Config { listen: Some(SocketAddr::V4(listen)), role, may_become_leaf, ..self.handshake.clone() }
    }

    fn next_peer_id(&self) -> PeerId {
        PeerId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A handle on a running servent: cheap to clone, used by the API and tests.
#[derive(Clone)]
pub struct NodeHandle {
    events: Sender<Event>,
    listen: SocketAddr,
    library: Arc<search::Library>,
    trust: SharedTrust,
    library_verdicts: Arc<Mutex<LibraryVerdicts>>,
    uploads: Arc<Uploads>,
    downloads: Option<Downloads>,
    /// The cap all downloads share.
    download_rate: Arc<RateLimit>,
    /// Wakes the rescan of the shared folders.
    rescan: Sender<()>,
    /// The shared folders, which `share add` extends.
    folders: library::SharedFolders,
    pump: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The core's dial rule, which a magnet's sources pass.
    dial: Arc<RwLock<servent_core::address::DialRule>>,
}

impl NodeHandle {
    /// The address the Gnutella/HTTP port listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The shared-library index.
    pub fn library(&self) -> &Arc<search::Library> {
        &self.library
    }

    /// The upload side: its counters and the download mesh.
    pub fn uploads(&self) -> &Arc<Uploads> {
        &self.uploads
    }

    /// The upload and download caps now.
    pub fn rates(&self) -> Rates {
        Rates { max_upload_rate: self.uploads.rate_limit().rate(), max_download_rate: self.download_rate.rate() }
    }

    /// Sets the upload and download caps, from now on.
    pub fn set_rates(&self, rates: Rates) {
        self.uploads.rate_limit().set_rate(rates.max_upload_rate);
        self.download_rate.set_rate(rates.max_download_rate);
    }

    /// Rescans the shared folders now rather than at the next interval, so
    /// that a file just put there is shared at once.
    pub fn rescan(&self) {
        // A full channel already means "rescan soon".
        let _ = self.rescan.try_send(());
    }

    /// The shared folders.
    pub fn shared_folders(&self) -> Vec<PathBuf> {
        self.folders.list()
    }

    /// Shares the folder `dir` (an absolute path) too, from now on, and
    /// rescans at once; whether it was not shared yet, or why it is refused.
    pub fn share_folder(&self, dir: &std::path::Path) -> Result<bool, String> {
        let added = self.folders.add(dir)?;
        self.rescan();
        Ok(added)
    }

    /// Everything shared, each file with its verdict under the keys trusted now.
    pub fn library_entries(&self) -> Vec<LibraryEntry> {
        let trust = self.trust.read();
        let files = self.library.files();
        let mut verdicts = self.library_verdicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        verdicts.refresh(trust.generation(), files.len());
        files.into_iter().map(|file| LibraryEntry { judgement: verdicts.judge(&trust, &file), file }).collect()
    }

    /// The pinned publisher keys.
    pub fn trusted_keys(&self) -> Vec<KeyEntry> {
        self.trust.read().list()
    }

    /// Pins a publisher key, for the package names of `scope` (see [`crate::trust`]).
    pub async fn trust_key(&self, key: signing_tool::PublicKey, scope: Vec<String>) -> Result<KeyEntry, NodeError> {
        let entry = self.trust.write().add(key, scope)?;
        self.events.send(Event::Core(CoreEvent::TrustChanged)).await.map_err(|_| NodeError::Stopped)?;
        Ok(entry)
    }

    /// Pins the new key of a verified rotation record for the packages it
    /// hands over (see [`crate::trust::TrustStore::honour_rotation`]).
    pub async fn honour_rotation(&self, rotation: &signing_tool::Rotation) -> Result<KeyEntry, NodeError> {
        let entry = self.trust.write().honour_rotation(rotation)?;
        self.events.send(Event::Core(CoreEvent::TrustChanged)).await.map_err(|_| NodeError::Stopped)?;
        Ok(entry)
    }

    /// The pinned key with this id, if any.
    pub fn pinned_key(&self, id: signing_tool::KeyId) -> Option<signing_tool::PublicKey> {
        self.trust.read().pinned(id).cloned()
    }

    /// Unpins a key; whether it was pinned.
    pub async fn distrust_key(&self, id: signing_tool::KeyId) -> Result<bool, NodeError> {
        let removed = self.trust.write().remove(id)?;
        self.events.send(Event::Core(CoreEvent::TrustChanged)).await.map_err(|_| NodeError::Stopped)?;
        Ok(removed)
    }

    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, NodeError> {
        let (reply, answer) = channel::bounded(1);
        self.events.send(Event::Command(make(reply))).await.map_err(|_| NodeError::Stopped)?;
        answer.recv().await.map_err(|_| NodeError::Stopped)
    }

    /// Sends a search through the network; the text is keywords or a
    /// `urn:sha1:`/`urn:sha256:`. As an ultrapeer it runs dynamically, unless
    /// a TTL is given: then it is flooded at that TTL. Returns its id.
    pub async fn search(&self, text: &str, ttl: impl Into<Option<u8>>) -> Result<Guid, NodeError> {
        let (text, ttl) = (text.to_string(), ttl.into());
        self.ask(|reply| Command::Search { text, ttl, reply }).await?
    }

    /// The results of a search so far.
    pub async fn search_results(&self, id: Guid) -> Result<Option<SearchSnapshot>, NodeError> {
        self.ask(|reply| Command::Results { id, reply }).await
    }

    /// Another servent's shared files (browse host), grouped and judged
    /// as search results are, and kept as a search so that they can be
    /// downloaded by URN; their source is the servent browsed, whatever
    /// address its hits name.
    pub async fn browse(&self, addr: SocketAddr) -> Result<Vec<SearchResult>, NodeError> {
        use crate::transfer::browse;
        let mut hits = browse::browse(addr, browse::BROWSE_TIMEOUT).await.map_err(NodeError::Browse)?;
        if let SocketAddr::V4(v4) = addr {
            for hit in &mut hits {
                (hit.ip, hit.port) = (*v4.ip(), v4.port());
            }
        }
        let label = format!("browse {addr}");
        self.ask(|reply| Command::Browsed { label, hits, reply }).await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerSnapshot>, NodeError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// A summary of the servent.
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Adds an address to connect to, as `--peer` does.
    pub async fn connect(&self, addr: SocketAddrV4) -> Result<(), NodeError> {
        self.events.send(Event::Command(Command::Connect { addr })).await.map_err(|_| NodeError::Stopped)
    }

    /// Adds a host name to connect to, found now at `addrs`, and to look
    /// up again as a `--peer` name is.
    pub async fn connect_name(&self, host: String, port: u16, addrs: Vec<SocketAddrV4>) -> Result<(), NodeError> {
        let command = Command::ConnectName { host, port, addrs };
        self.events.send(Event::Command(command)).await.map_err(|_| NodeError::Stopped)
    }

    /// The download manager, when this servent keeps state on disk.
    pub fn downloads(&self) -> Result<&Downloads, NodeError> {
        self.downloads.as_ref().ok_or(NodeError::NoDownloads)
    }

    /// Starts downloading a `urn:sha1:`/`urn:sha256:` or a magnet link from
    /// every source known for it, and keeps asking the network for more
    /// while it runs. A URN no search has shown yet is searched for first.
    /// Content known to be fake is refused, and so is anything but verified
    /// content when `keep` says so; the download checks again at the end.
    pub async fn download(&self, target: &str, keep: Keep) -> Result<DownloadId, NodeError> {
        let downloads = self.downloads()?;
        let wanted = DownloadTarget::parse(target)?;
        let mut known = self.ask(|reply| Command::Known { urns: wanted.urns.clone(), reply }).await?;
        if known.is_none() && wanted.size.is_none() {
            let search = self.search(&wanted.urns[0].to_string(), crate::routing::DEFAULT_MAX_TTL).await?;
            let deadline = Instant::now() + download::FIND_TIMEOUT;
            while known.is_none() && Instant::now() < deadline {
                task::sleep(Duration::from_millis(100)).await;
                let _ = self.search_results(search).await?;
                known = self.ask(|reply| Command::Known { urns: wanted.urns.clone(), reply }).await?;
            }
        }
        let shown: String = target.chars().take(200).collect();
        if let Some(known) = &known {
            let judgement = &known.judgement;
            if judgement.verdict == Verdict::Fake {
                return Err(NodeError::Fake { target: shown, reason: judgement.reason.clone() });
            }
            if keep == Keep::Verified && judgement.verdict != Verdict::Verified {
                let (verdict, reason) = (judgement.verdict, judgement.reason.clone());
                return Err(NodeError::NotVerified { target: shown, verdict, reason });
            }
        }
        let searched = known.is_some();
        let rule = *self.dial.read().unwrap_or_else(PoisonError::into_inner);
        let request = wanted.request(known, keep, &rule).ok_or(NodeError::NotFound(shown))?;
        let urn = request.urns[0];
        let id = downloads.start(request).await.map_err(NodeError::Download)?;
        let started = CoreEvent::DownloadStarted { id: id.0, urn, searched };
        self.events.send(Event::Core(started)).await.map_err(|_| NodeError::Stopped)?;
        Ok(id)
    }

    /// Says Bye to every peer, closes every connection and stops the tasks.
    pub async fn shutdown(&self) {
        if let Some(downloads) = &self.downloads {
            downloads.shutdown().await;
        }
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
        let pump = self.pump.lock().ok().and_then(|mut p| p.take());
        if let Some(pump) = pump {
            pump.await;
        }
    }
}

/// Starts a servent: opens its library and port, then runs until shutdown.
pub async fn start(config: Config) -> Result<NodeHandle, NodeError> {
    descriptors::raise_limit();
    let library = match &config.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
            search::Library::open(dir)?
        }
        None => search::Library::in_memory()?,
    };
    let library = Arc::new(library);
    let mut trust = match &config.data_dir {
        Some(dir) => TrustStore::open(&dir.join(trust::TRUST_FILE))?,
        None => TrustStore::in_memory(),
    };
    for pinned in &config.trust {
        trust.add(pinned.key.clone(), pinned.scope.clone())?;
    }
    let trust = SharedTrust::new(trust);
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| NodeError::Listen { addr: config.listen, source })?;
    let listen = listener.local_addr().map_err(|source| NodeError::Listen { addr: config.listen, source })?;
    let (events, inbox) = channel::bounded(EVENT_QUEUE);
    let alt = Arc::new(AltLocations::new());
    let partial = Arc::new(PartialShares::new());
    for path in &config.seed_releases {
        if let Err(why) = partial.seed_release(path) {
            log(format_args!("{why}"));
        }
    }
    let uploads = Arc::new(
        Uploads::new(config.uploads.clone(), library.clone(), alt.clone()).with_partial_shares(partial.clone()),
    );
    uploads.rate_limit().set_rate(config.rates.max_upload_rate);
    let download_rate = Arc::new(RateLimit::new(config.rates.max_download_rate));
    // Replaced by the core's own rule (our IPs too) once the core exists.
    let dial = Arc::new(RwLock::new(servent_core::address::DialRule::new(config.dial_local)));
    let push_events = events.clone();
    let pushes = Arc::new(Pushes::new(move |servent, index, proxies| {
        // A full queue loses this PUSH; the download tries again later.
        let _ = push_events.try_send(Event::Command(Command::Push { servent, index, proxies }));
    }));
    let identity_events = events.clone();
    uploads.set_identity(Box::new(move || {
        let (reply, answer) = channel::bounded(1);
        let _ = identity_events.try_send(Event::Command(Command::Identity { reply }));
        answer
    }));
    let proxy_events = events.clone();
    uploads.set_push_proxy(Box::new(move |servent, index, to| {
        let (reply, answer) = channel::bounded(1);
        let _ = proxy_events.try_send(Event::Command(Command::ProxyPush { servent, index, to, reply }));
        answer
    }));
    // A finished download is shared at once: its hook wakes the rescan.
    let (rescan_now, rescan_wake) = channel::bounded(1);
    partial.on_change(rescan_now.clone());
    let mut shares = config.shares.clone();
    let downloads = match config.download_dirs() {
        Some((finished, partial_dir)) => {
            for dir in [&finished, &partial_dir] {
                std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
            }
            if !shares.contains(&finished) {
                shares.push(finished.clone());
            }
            let config = DownloadsConfig {
                pushes: Some(pushes.clone()),
                rate: download_rate.clone(),
                partial: partial.clone(),
                dial: dial.clone(),
                local: match listen.ip() {
                    std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                    _ => None,
                },
                ..DownloadsConfig::new(partial_dir, finished)
            };
            let (rescan_now, library) = (rescan_now.clone(), library.clone());
            let downloads = Downloads::spawn(config, alt, trust.clone(), move |done| {
                library::share_downloaded(&library, done, rescan_now.clone());
            });
            let resumed = downloads.resume_all().await.unwrap_or_default();
            for problem in &resumed.problems {
                warn(format_args!("cannot resume a download: {problem}"));
            }
            if !resumed.ids.is_empty() {
                log(format_args!("resuming {}", crate::cli::plural(resumed.ids.len(), "unfinished download")));
            }
            Some(downloads)
        }
        None => None,
    };
    // UDP on the same port as TCP; without it the servent still runs.
    let udp_socket = match UdpSocket::bind(listen).await {
        Ok(socket) => Some(Arc::new(socket)),
        Err(e) => {
            log(format_args!("cannot open UDP port {listen}: {e}; going on without UDP"));
            None
        }
    };
    let (mut uhcs, mut gwebcaches) = (config.uhcs.clone(), config.gwebcaches.clone());
    if let (true, true, Some(dir)) = (config.bootstrap, config.discover, &config.data_dir) {
        match crate::bootstrap::Bootstrap::load(dir) {
            Ok((list, problems)) => {
                for problem in problems {
                    log(format_args!("{}: {problem}", dir.join(crate::bootstrap::FILE).display()));
                }
                uhcs.extend(list.uhcs);
                gwebcaches.extend(list.gwebcaches);
            }
            Err(e) => log(format_args!("cannot read the bootstrap list in {}: {e}", dir.display())),
        }
    }
    let (mut uhc_addrs, mut names) = (Vec::new(), Vec::new());
    for uhc in uhcs {
        match uhc {
            PeerAddr::Ip(addr) => uhc_addrs.push(addr),
            PeerAddr::Name(host, port) => names.push((host, port, core::NameUse::HostCache)),
        }
    }
    for peer in &config.peer_names {
        if let PeerAddr::Name(host, port) = peer {
            names.push((host.clone(), *port, core::NameUse::Peer));
        }
    }
    let core_config = core::Config {
        listen,
        max_peers: config.max_peers,
        max_leaves: config.max_leaves,
        role: config.mode.role(),
        auto_role: config.mode == crate::config::Mode::Auto,
        max_ttl: config.max_ttl,
        discover: config.discover,
        dial_local: config.dial_local,
        peers: config.peers.iter().filter_map(|p| if let SocketAddr::V4(v4) = p { Some(*v4) } else { None }).collect(),
        gwebcaches,
        uhcs: uhc_addrs,
        names,
        udp: udp_socket.is_some(),
        persist_hosts: config.data_dir.is_some(),
        ..core::Config::default()
    };
    let rng = StdRng::from_entropy();
    let mut node = core::Node::new(core_config, rng, trust.clone(), library.totals(), Instant::now());
    let table = library::route_table(&library, &uploads.partial_shares().files());
    node.handle(core::Event::LibraryTable(table), Instant::now());
    if let Some(dir) = &config.data_dir {
        let mut bytes = Vec::new();
        let read = std::fs::File::open(dir.join(HOST_CACHE_FILE)).and_then(|file| {
            let limit = crate::hostcache::MAX_SAVED_BYTES as u64 + 1;
            io::Read::read_to_end(&mut io::Read::take(file, limit), &mut bytes)
        });
        match read {
            Ok(_) => node.restore_hosts(&crate::hostcache::saved_text(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn(format_args!("cannot read the host cache: {e}")),
        }
    }
    uploads.partial_shares().set_advertised(node.advertised());
    *dial.write().unwrap_or_else(PoisonError::into_inner) = node.dial_rule();
    let shared = Arc::new(Shared {
        events: events.clone(),
        handshake: handshake::Config {
            user_agent: crate::config::USER_AGENT.to_string(),
            listen: None,
            max_ttl: config.max_ttl,
            deflate: config.deflate,
            role: config.mode.role(),
            degree: u32::try_from(config.max_peers).unwrap_or(u32::MAX),
            may_become_leaf: false,
            ultrapeer_query_routing: config.ultrapeer_query_routing,
            guid: Some(node.guid()),
            live_since: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs()),
        },
        role: Mutex::new((config.mode.role(), false)),
        advertised: Mutex::new(node.advertised()),
        next_id: AtomicU64::new(1),
        sent: LinkCounters::default(),
        uploads: uploads.clone(),
        pushes,
        handshakes: connection::InFlight::default(),
        dial: dial.clone(),
    });
    let folders = library::SharedFolders::new(shares);
    let mut tasks = vec![
        task::spawn(connection::accept_loop(listener, shared.clone())),
        task::spawn(library::rescan_loop(
            library.clone(),
            uploads.partial_shares().clone(),
            folders.clone(),
            config.rescan_interval,
            rescan_wake,
            events.clone(),
        )),
    ];
    if let Some(downloads) = &downloads {
        tasks.push(task::spawn(download::watch(downloads.clone(), events.clone())));
    }
    let (udp_out, datagrams) = match udp_socket {
        Some(socket) => {
            let (out, outbox) = channel::bounded(udp::OUT_QUEUE);
            let (received, datagrams) = udp::inbound();
            tasks.push(task::spawn(udp::receive(socket.clone(), received)));
            tasks.push(task::spawn(udp::send(socket, outbox)));
            (Some(out), Some(datagrams))
        }
        None => (None, None),
    };
    let pump = pump::Pump {
        core: node,
        shared,
        library: library.clone(),
        links: HashMap::new(),
        data_dir: config.data_dir.clone(),
        listen,
        downloads: downloads.clone(),
        tasks,
        inbox,
        saving: None,
        udp_out,
        datagrams,
        events_in_a_row: 0,
    };
    let pump = Arc::new(Mutex::new(Some(task::spawn(pump.run()))));
    let library_verdicts = Arc::default();
    Ok(NodeHandle {
        events,
        listen,
        library,
        trust,
        library_verdicts,
        uploads,
        downloads,
        download_rate,
        rescan: rescan_now,
        folders,
        pump,
        dial,
    })
}

const HOST_CACHE_FILE: &str = "hosts";

/// Logs an event people look for (see [`crate::logging`]).
fn log(args: std::fmt::Arguments<'_>) {
    log::info!("{args}");
}

/// Logs a failure; repeats of its kind are summarised (see [`crate::logging`]).
fn warn(args: std::fmt::Arguments<'_>) {
    log::warn!("{args}");
}
