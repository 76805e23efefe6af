//! The running servent on async-std: sockets, tasks, and the broker that
//! owns all routing state.
//!
//! One listening port takes both Gnutella and HTTP; the first line decides.
//! Every Gnutella connection has a reader task, which decodes descriptors and
//! hands them to the broker, and a writer task, which drains that peer's
//! bounded [`OutQueue`]. The broker is the single owner of the [`Router`],
//! the peer table, the host cache and our searches: it receives [`Event`]s
//! from readers, timers and the API, and decides everything in one place, so
//! there is no lock around routing state. A slow peer fills only its own
//! queue, where the least valuable messages are dropped first.

mod connection;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_std::channel::{self, Receiver, Sender};
use async_std::net::{TcpListener, TcpStream};
use async_std::task::{self, JoinHandle};
use serde::Serialize;

use signing_tool::Minisig;

use crate::config::Config;
use crate::flow::OutQueue;
use crate::handshake::{self, Admission, PeerInfo};
use crate::hostcache::{self, HostCache, Origin};
use crate::routing::{self, Action, Counters, LocalHost, PeerId, Router};
use crate::searches::{SearchResult, Searches};
use crate::transfer::alt::AltLocations;
use crate::transfer::download::{
    DownloadError, DownloadId, DownloadRequest, DownloadSnapshot, Downloads, DownloadsConfig, Keep,
};
use crate::transfer::magnet::Magnet;
use crate::transfer::upload::Uploads;
use crate::trust::{self, Content, Judgement, KeyEntry, SharedTrust, TrustError, TrustStore, Verdict};
use crate::wire::{
    self, Bye, GgepId, Guid, Message, Payload, Query, QueryFlags, QueryHit, QueryResult, Trailer, TrailerFlags, Urn,
};

/// Events waiting for the broker, at most; readers wait when it is full.
const EVENT_QUEUE: usize = 4096;
/// Outgoing connection attempts under way at once.
const MAX_DIALS: usize = 4;
/// A peer silent for this long is gone (we ping every 30 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the broker's clock ticks.
const TICK: Duration = Duration::from_millis(500);
/// How often the host cache is saved.
const HOST_CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long to wait between two GWebCache rounds.
const GWEBCACHE_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Results one local search returns at most.
const MAX_LOCAL_RESULTS: usize = 200;
/// Addresses handed out in X-Try-Ultrapeers.
const TRY_ULTRAPEERS: usize = 10;
/// The speed we claim in QueryHits, in kbit/s.
const ADVERTISED_SPEED: u32 = 10_000;
/// How long a shutdown waits for peers to receive their Bye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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
    /// Messages written to its socket.
    pub messages_out: u64,
    /// Messages dropped from its full queue.
    pub queue_dropped: u64,
    /// What the router counted for it.
    pub counters: Counters,
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

/// What the broker knows of a live peer and how to reach its writer.
struct Link {
    addr: SocketAddr,
    info: PeerInfo,
    direction: Direction,
    since: Instant,
    queue: Arc<Mutex<OutQueue>>,
    wake: Sender<()>,
    stream: TcpStream,
    counters: Arc<LinkCounters>,
    writer: JoinHandle<()>,
}

impl Link {
    fn send(&self, message: Message) -> u64 {
        let dropped = match self.queue.lock() {
            Ok(mut queue) => queue.push(message),
            Err(_) => return 0,
        };
        self.counters.queue_dropped.fetch_add(dropped, Ordering::Relaxed);
        // A full wake channel already means "there is work": nothing to add.
        let _ = self.wake.try_send(());
        dropped
    }
}

/// Requests from the API and the CLI.
enum Command {
    Search { text: String, ttl: u8, reply: Sender<Result<Guid, NodeError>> },
    Results { id: Guid, reply: Sender<Option<SearchSnapshot>> },
    Peers { reply: Sender<Vec<PeerSnapshot>> },
    Status { reply: Sender<Status> },
    Connect { addr: SocketAddrV4 },
    Admit { remote: SocketAddr, reply: Sender<(Admission, Vec<SocketAddr>)> },
    Known { urns: Vec<Urn>, reply: Sender<Option<SearchResult>> },
    TrustChanged,
    Shutdown { reply: Sender<()> },
}

/// What the broker reacts to.
enum Event {
    Connected(Box<ConnectedPeer>),
    Message { id: PeerId, message: Message },
    Closed { id: PeerId, reason: String },
    Malformed { id: PeerId, error: String },
    DialFailed { addr: SocketAddrV4, try_hosts: Vec<SocketAddr> },
    Learned(Vec<SocketAddrV4>),
    LibraryChanged,
    Tick,
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
    /// Our servent GUID, which QueryHits and Pushes name us by.
    guid: Guid,
    events: Sender<Event>,
    handshake: handshake::Config,
    /// The address we tell others to reach us at; its IP is unspecified
    /// until the first connection shows which interface we use.
    advertised: Mutex<SocketAddrV4>,
    next_id: AtomicU64,
    /// What all writers have written, counted at the sockets.
    sent: LinkCounters,
    /// What HTTP requests on our port are served with.
    uploads: Arc<Uploads>,
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
        handshake::Config { listen: Some(SocketAddr::V4(listen)), ..self.handshake.clone() }
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
    /// Wakes the rescan of the shared folders.
    rescan: Sender<()>,
    broker: Arc<Mutex<Option<JoinHandle<()>>>>,
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

    /// Rescans the shared folders now rather than at the next interval, so
    /// that a file just put there is shared at once.
    pub fn rescan(&self) {
        // A full channel already means "rescan soon".
        let _ = self.rescan.try_send(());
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

    /// Pins a publisher key, for the names or keywords of `scope` (all when empty).
    pub async fn trust_key(&self, key: signing_tool::PublicKey, scope: Vec<String>) -> Result<KeyEntry, NodeError> {
        let entry = self.trust.write().add(key, scope)?;
        self.events.send(Event::Command(Command::TrustChanged)).await.map_err(|_| NodeError::Stopped)?;
        Ok(entry)
    }

    /// Unpins a key; whether it was pinned.
    pub async fn distrust_key(&self, id: signing_tool::KeyId) -> Result<bool, NodeError> {
        let removed = self.trust.write().remove(id)?;
        self.events.send(Event::Command(Command::TrustChanged)).await.map_err(|_| NodeError::Stopped)?;
        Ok(removed)
    }

    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, NodeError> {
        let (reply, answer) = channel::bounded(1);
        self.events.send(Event::Command(make(reply))).await.map_err(|_| NodeError::Stopped)?;
        answer.recv().await.map_err(|_| NodeError::Stopped)
    }

    /// Floods a search through the network; the text is keywords or a
    /// `urn:sha1:`/`urn:sha256:`. Returns its id.
    pub async fn search(&self, text: &str, ttl: u8) -> Result<Guid, NodeError> {
        let text = text.to_string();
        self.ask(|reply| Command::Search { text, ttl, reply }).await?
    }

    /// The results of a search so far.
    pub async fn search_results(&self, id: Guid) -> Result<Option<SearchSnapshot>, NodeError> {
        self.ask(|reply| Command::Results { id, reply }).await
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
            let deadline = Instant::now() + FIND_TIMEOUT;
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
        let request = wanted.request(known, keep).ok_or(NodeError::NotFound(shown))?;
        let urn = request.urns[0];
        let id = downloads.start(request).await.map_err(NodeError::Download)?;
        task::spawn(requery(self.clone(), id, urn, searched));
        Ok(id)
    }

    /// Says Bye to every peer, closes every connection and stops the tasks.
    pub async fn shutdown(&self) {
        if let Some(downloads) = &self.downloads {
            downloads.shutdown().await;
        }
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
        let broker = self.broker.lock().ok().and_then(|mut b| b.take());
        if let Some(broker) = broker {
            broker.await;
        }
    }
}

/// Starts a servent: opens its library and port, then runs until shutdown.
pub async fn start(config: Config) -> Result<NodeHandle, NodeError> {
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
    let uploads = Arc::new(Uploads::new(config.uploads.clone(), library.clone(), alt.clone()));
    // A finished download is shared at once: its hook wakes the rescan.
    let (rescan_now, rescan_wake) = channel::bounded(1);
    let mut shares = config.shares.clone();
    let downloads = match config.download_dirs() {
        Some((finished, partial)) => {
            for dir in [&finished, &partial] {
                std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
            }
            if !shares.contains(&finished) {
                shares.push(finished.clone());
            }
            let config = DownloadsConfig::new(partial, finished);
            let (rescan_now, library) = (rescan_now.clone(), library.clone());
            let downloads = Downloads::spawn(config, alt, trust.clone(), move |done| {
                share_downloaded(&library, done, rescan_now.clone());
            });
            let resumed = downloads.resume_all().await.unwrap_or_default();
            for problem in &resumed.problems {
                log(format_args!("cannot resume a download: {problem}"));
            }
            if !resumed.ids.is_empty() {
                log(format_args!("resuming {} unfinished downloads", resumed.ids.len()));
            }
            Some(downloads)
        }
        None => None,
    };
    let advertised = match listen {
        SocketAddr::V4(v4) if !v4.ip().is_unspecified() => v4,
        _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, listen.port()),
    };
    let shared = Arc::new(Shared {
        guid: Guid::random(),
        events: events.clone(),
        handshake: handshake::Config {
            user_agent: crate::config::USER_AGENT.to_string(),
            listen: None,
            max_ttl: config.max_ttl,
            deflate: config.deflate,
        },
        advertised: Mutex::new(advertised),
        next_id: AtomicU64::new(1),
        sent: LinkCounters::default(),
        uploads: uploads.clone(),
    });

    let mut hosts = HostCache::new();
    if let Some(dir) = &config.data_dir {
        if let Err(e) = hosts.load(&dir.join(HOST_CACHE_FILE)) {
            log(format_args!("cannot read the host cache: {e}"));
        }
    }
    for peer in &config.peers {
        if let SocketAddr::V4(v4) = peer {
            hosts.add(*v4, Origin::User);
        }
    }
    let (files, bytes) = library.totals();
    let router = Router::new(
        routing::Config { max_ttl: config.max_ttl, ..routing::Config::default() },
        LocalHost { addr: advertised, files, kbytes: kbytes(bytes) },
    );
    let tasks = vec![
        task::spawn(connection::accept_loop(listener, shared.clone())),
        task::spawn(ticker(events.clone())),
        task::spawn(rescan_loop(library.clone(), shares, config.rescan_interval, rescan_wake, events.clone())),
    ];
    let broker = Broker {
        config,
        shared,
        library: library.clone(),
        trust: trust.clone(),
        router,
        links: HashMap::new(),
        dialing: HashSet::new(),
        hosts,
        searches: Searches::default(),
        listen,
        advertised,
        last_host_save: Instant::now(),
        last_gwebcache: None,
        downloads: downloads.clone(),
        tasks,
        inbox,
    };
    let broker = task::spawn(broker.run());
    let broker = Arc::new(Mutex::new(Some(broker)));
    let library_verdicts = Arc::default();
    Ok(NodeHandle { events, listen, library, trust, library_verdicts, uploads, downloads, rescan: rescan_now, broker })
}

const HOST_CACHE_FILE: &str = "hosts";

/// Verdicts on our own shared files, kept while the file, its signature and
/// the trusted keys stay the same: each is an Ed25519 check, and the page
/// asks for the library again and again.
#[derive(Default)]
struct LibraryVerdicts {
    trust_generation: u64,
    by_file: HashMap<(u32, Urn, Option<Vec<u8>>), Judgement>,
}

impl LibraryVerdicts {
    /// Forgets everything when the keys changed or the library shrank a lot.
    fn refresh(&mut self, trust_generation: u64, files: usize) {
        if trust_generation != self.trust_generation || self.by_file.len() > 2 * files + 64 {
            self.by_file.clear();
            self.trust_generation = trust_generation;
        }
    }

    /// The verdict on one of our shared files, from its signature and its bytes' digests.
    fn judge(&mut self, trust: &TrustStore, file: &search::SharedFile) -> Judgement {
        let minisig = match &file.signature {
            Some(search::Sidecar::Signed(signed)) => Some(&*signed.minisig),
            Some(search::Sidecar::Unreadable(why)) => return Judgement::unreadable(why),
            None => None,
        };
        let key = (file.index, file.sha256, minisig.map(Minisig::to_compact));
        if let Some(judgement) = self.by_file.get(&key) {
            return judgement.clone();
        }
        let sha256 = match file.sha256 {
            Urn::Sha256(digest) => Some(digest),
            Urn::Sha1(_) => None,
        };
        let judgement = trust.judge(minisig, Content { size: file.size, sha256 });
        self.by_file.insert(key, judgement.clone());
        judgement
    }
}

fn kbytes(bytes: u64) -> u32 {
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX)
}

/// Shares a verified download at once with the digests its check computed,
/// rather than hashing it again at the next rescan, then wakes the rescan
/// (which finds it known).
fn share_downloaded(library: &Arc<search::Library>, done: &DownloadSnapshot, rescan: Sender<()>) {
    let known = match (&done.path, done.sha1, done.sha256) {
        (Some(path), Some(Urn::Sha1(sha1)), Some(Urn::Sha256(sha256))) => Some((path.clone(), sha1, sha256)),
        _ => None,
    };
    let (library, size) = (library.clone(), done.size);
    task::spawn_blocking(move || {
        if let Some((path, sha1, sha256)) = known {
            if let Err(e) = library.add_hashed(&path, search::Digests { sha1, sha256 }, size) {
                log(format_args!("cannot share {}: {e}", path.display()));
            }
        }
        let _ = rescan.try_send(());
    });
}

/// Writes one line to the log (standard error).
fn log(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // A closed standard error must not stop the servent.
    let _ = writeln!(std::io::stderr(), "servent: {args}");
}

async fn ticker(events: Sender<Event>) {
    while events.send(Event::Tick).await.is_ok() {
        task::sleep(TICK).await;
    }
}

/// Rescans the shared folders every `interval`, or at once when woken.
async fn rescan_loop(
    library: Arc<search::Library>,
    shares: Vec<PathBuf>,
    interval: Duration,
    wake: Receiver<()>,
    events: Sender<Event>,
) {
    loop {
        let (lib, folders) = (library.clone(), shares.clone());
        match task::spawn_blocking(move || lib.rescan(&folders)).await {
            Ok(report) => {
                for error in &report.errors {
                    log(format_args!("{error}"));
                }
                if report.added + report.changed + report.removed > 0
                    && events.send(Event::LibraryChanged).await.is_err()
                {
                    return;
                }
            }
            Err(e) => log(format_args!("rescan failed: {e}")),
        }
        if events.is_closed() {
            return;
        }
        // Without downloads nothing wakes the rescan and the channel is
        // closed: wait the interval out rather than rescan without pause.
        if let Ok(Err(_)) = async_std::future::timeout(interval, wake.recv()).await {
            task::sleep(interval).await;
        }
    }
}

struct Broker {
    config: Config,
    shared: Arc<Shared>,
    library: Arc<search::Library>,
    trust: SharedTrust,
    router: Router,
    links: HashMap<PeerId, Link>,
    dialing: HashSet<SocketAddrV4>,
    hosts: HostCache,
    searches: Searches,
    listen: SocketAddr,
    advertised: SocketAddrV4,
    last_host_save: Instant,
    last_gwebcache: Option<Instant>,
    downloads: Option<Downloads>,
    tasks: Vec<JoinHandle<()>>,
    inbox: Receiver<Event>,
}

impl Broker {
    async fn run(mut self) {
        while let Ok(event) = self.inbox.recv().await {
            let now = Instant::now();
            match event {
                Event::Command(Command::Shutdown { reply }) => {
                    self.shutdown().await;
                    let _ = reply.send(()).await;
                    return;
                }
                event => self.on_event(event, now),
            }
        }
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Connected(peer) => self.on_connected(*peer, now),
            Event::Message { id, message } => {
                let actions = self.router.handle(id, message, now);
                self.apply(actions);
            }
            Event::Closed { id, reason } => {
                self.remove(id, &reason);
            }
            Event::Malformed { id, error } => {
                self.router.count_drop(id, routing::Drop::Malformed);
                self.disconnect(id, 400, &format!("malformed descriptor: {error}"));
            }
            Event::DialFailed { addr, try_hosts } => {
                self.dialing.remove(&addr);
                self.hosts.failed(addr, now);
                self.learn(try_hosts.into_iter().filter_map(v4));
            }
            Event::Learned(addrs) => self.learn(addrs),
            Event::LibraryChanged => self.update_local(),
            Event::Tick => self.on_tick(now),
            Event::Command(command) => self.on_command(command, now),
        }
    }

    fn on_connected(&mut self, peer: ConnectedPeer, now: Instant) {
        if let Some(dialed) = peer.dialed {
            self.dialing.remove(&dialed);
            self.hosts.succeeded(dialed);
        }
        self.learn(peer.info.try_ultrapeers.iter().copied().filter_map(v4));
        if self.advertised.ip().is_unspecified() {
            if let SocketAddr::V4(local) = peer.local {
                self.advertised = SocketAddrV4::new(*local.ip(), self.advertised.port());
                if let Ok(mut shared) = self.shared.advertised.lock() {
                    *shared = self.advertised;
                }
                self.update_local();
            }
        }
        let listen = peer.info.listen.and_then(v4);
        let link = Link {
            addr: peer.addr,
            info: peer.info,
            direction: peer.direction,
            since: now,
            queue: peer.queue,
            wake: peer.wake,
            stream: peer.stream,
            counters: peer.counters,
            writer: peer.writer,
        };
        self.links.insert(peer.id, link);
        let actions = self.router.connected(peer.id, listen, now);
        self.apply(actions);
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => self.send(to, message),
                Action::SearchLocal { from, guid, reply_ttl, query } => self.answer(from, guid, reply_ttl, &query),
                Action::Hit { search, hit } => {
                    self.offer_sources(&hit);
                    self.searches.add(search, &hit, Instant::now(), &self.trust.read());
                }
                Action::LearnHost(addr) => self.learn([addr]),
                Action::Disconnect { peer, reason } => {
                    self.remove(peer, &reason);
                }
            }
        }
    }

    /// Tells the download manager where content is to be had, and the
    /// signatures hits carry for it.
    fn offer_sources(&self, hit: &QueryHit) {
        let Some(downloads) = &self.downloads else { return };
        let source = SocketAddrV4::new(hit.ip, hit.port);
        for result in &hit.results {
            let signature = crate::searches::Carried::of(result).and_then(|c| c.signature().ok());
            for urn in &result.urns {
                downloads.offer_sources(urn, vec![source]);
                if let Some(signature) = &signature {
                    downloads.offer_signature(urn, signature.clone());
                }
            }
        }
    }

    fn send(&mut self, to: PeerId, message: Message) {
        if let Some(link) = self.links.get(&to) {
            for _ in 0..link.send(message) {
                self.router.count_drop(to, routing::Drop::QueueFull);
            }
        }
    }

    /// Answers a query from the local library with QueryHits to `from`.
    fn answer(&mut self, from: PeerId, guid: Guid, reply_ttl: u8, query: &Query) {
        let lookup =
            search::Query { words: query.criteria.clone(), urns: query.urns.clone(), limit: MAX_LOCAL_RESULTS };
        let files = match self.library.search(&lookup) {
            Ok(files) => files,
            Err(e) => {
                log(format_args!("local search failed: {e}"));
                return;
            }
        };
        if files.is_empty() || self.advertised.ip().is_unspecified() {
            return;
        }
        // A signature goes out as it is: whoever receives it judges it.
        let results: Vec<QueryResult> = files
            .into_iter()
            .map(|f| {
                let mut result = QueryResult {
                    index: f.index,
                    size: f.size,
                    name: f.name,
                    urns: vec![f.sha1, f.sha256],
                    ggep: Default::default(),
                };
                if let Some(search::Sidecar::Signed(signed)) = &f.signature {
                    result.ggep.insert(GgepId::RELEASE_SIGNATURE, signed.minisig.to_compact());
                }
                result
            })
            .collect();
        let hit = QueryHit {
            port: self.advertised.port(),
            ip: *self.advertised.ip(),
            speed: ADVERTISED_SPEED,
            results,
            trailer: Some(Trailer::ours(
                TrailerFlags { push: Some(false), busy: Some(false), ..Default::default() },
                Default::default(),
            )),
            servent_guid: self.servent_guid(),
        };
        for hit in hit.split(wire::HIT_PAYLOAD) {
            let message = Message { guid, ttl: reply_ttl, hops: 0, payload: Payload::QueryHit(hit) };
            self.send(from, message);
        }
    }

    fn servent_guid(&self) -> Guid {
        self.shared.guid
    }

    fn on_tick(&mut self, now: Instant) {
        let actions = self.router.tick(now);
        self.apply(actions);
        self.dial_more(now);
        if now.duration_since(self.last_host_save) >= HOST_CACHE_SAVE_INTERVAL {
            self.last_host_save = now;
            self.save_hosts();
        }
    }

    /// Keeps the number of connections up, from the host cache, and asks the
    /// GWebCaches for hosts when the cache has nothing left to try.
    fn dial_more(&mut self, now: Instant) {
        let wanted = self.config.max_peers.saturating_sub(self.links.len() + self.dialing.len());
        let slots = wanted.min(MAX_DIALS.saturating_sub(self.dialing.len()));
        if slots == 0 {
            return;
        }
        let connected: HashSet<SocketAddrV4> =
            self.links.values().flat_map(|l| [v4(l.addr), l.info.listen.and_then(v4)]).flatten().collect();
        let own = [self.advertised, v4(self.listen).unwrap_or(self.advertised)];
        let user: HashSet<SocketAddrV4> = self.config.peers.iter().copied().filter_map(v4).collect();
        let discover = self.config.discover;
        let candidates = self.hosts.candidates(slots, now, |addr| {
            connected.contains(&addr)
                || self.dialing.contains(&addr)
                || own.contains(&addr)
                || (!discover && !user.contains(&addr))
        });
        let cache_due = self.last_gwebcache.is_none_or(|t| now.duration_since(t) >= GWEBCACHE_INTERVAL);
        if candidates.is_empty() && discover && !self.config.gwebcaches.is_empty() && cache_due {
            self.last_gwebcache = Some(now);
            task::spawn(ask_gwebcaches(self.config.gwebcaches.clone(), self.shared.events.clone()));
        }
        for addr in candidates {
            self.dialing.insert(addr);
            task::spawn(connection::dial(addr, self.shared.clone()));
        }
    }

    fn learn(&mut self, addrs: impl IntoIterator<Item = SocketAddrV4>) {
        for addr in addrs {
            self.hosts.add(addr, Origin::Network);
        }
    }

    fn update_local(&mut self) {
        let (files, bytes) = self.library.totals();
        self.router.set_local(LocalHost { addr: self.advertised, files, kbytes: kbytes(bytes) });
    }

    fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Search { text, ttl, reply } => {
                let result = self.start_search(text, ttl, now);
                let _ = reply.try_send(result);
            }
            Command::Results { id, reply } => {
                let snapshot = self.searches.get(&id).map(|s| SearchSnapshot {
                    id: id.to_string(),
                    query: s.text.clone(),
                    hits_received: s.hits_received,
                    first_hit_ms: s.first_hit_after.map(|d| d.as_secs_f64() * 1000.0),
                    results: s.results().to_vec(),
                });
                let _ = reply.try_send(snapshot);
            }
            Command::Peers { reply } => {
                let _ = reply.try_send(self.peer_snapshots(now));
            }
            Command::Status { reply } => {
                let (files, bytes) = self.library.totals();
                let status = Status {
                    guid: self.servent_guid().to_string(),
                    listen: self.listen,
                    advertised: self.advertised,
                    peers: self.links.len(),
                    host_cache: self.hosts.len(),
                    files,
                    bytes,
                    totals: self.router.totals().clone(),
                    messages_sent: self.shared.sent.messages.load(Ordering::Relaxed),
                    queries_sent: self.shared.sent.queries.load(Ordering::Relaxed),
                };
                let _ = reply.try_send(status);
            }
            Command::Connect { addr } => {
                self.hosts.add(addr, Origin::User);
                self.config.peers.push(SocketAddr::V4(addr));
                self.dial_more(now);
            }
            Command::Admit { remote, reply } => {
                let admission = self.admit(remote, now);
                let _ = reply.try_send((admission, self.hosts.good(TRY_ULTRAPEERS)));
            }
            Command::Known { urns, reply } => {
                let _ = reply.try_send(self.searches.find(&urns));
            }
            Command::TrustChanged => self.searches.rejudge(&self.trust.read()),
            Command::Shutdown { .. } => {}
        }
    }

    fn start_search(&mut self, text: String, ttl: u8, now: Instant) -> Result<Guid, NodeError> {
        let query = build_query(&text)?;
        let (guid, actions) = self.router.start_query(query, ttl, now);
        self.searches.start(guid, text, now);
        self.apply(actions);
        Ok(guid)
    }

    /// Whether an incoming Gnutella connection may go on to the handshake.
    fn admit(&mut self, remote: SocketAddr, _now: Instant) -> Admission {
        let full = self.links.len() >= self.config.max_peers;
        // One connection per address, as gtk-gnutella holds; loopback is
        // exempt so that test networks can run on one machine.
        let duplicate = !remote.ip().is_loopback() && self.links.values().any(|l| l.addr.ip() == remote.ip());
        if full || duplicate {
            Admission::Full { try_ultrapeers: self.hosts.good(TRY_ULTRAPEERS) }
        } else {
            Admission::Accept
        }
    }

    fn peer_snapshots(&self, now: Instant) -> Vec<PeerSnapshot> {
        let mut peers: Vec<(&PeerId, &Link)> = self.links.iter().collect();
        peers.sort_by_key(|(id, _)| **id);
        peers
            .into_iter()
            .map(|(id, link)| PeerSnapshot {
                addr: link.addr,
                listen: link.info.listen.and_then(v4),
                user_agent: link.info.user_agent.clone(),
                direction: link.direction,
                connected_secs: now.duration_since(link.since).as_secs(),
                compressed: (link.info.deflate_in, link.info.deflate_out),
                messages_out: link.counters.messages.load(Ordering::Relaxed),
                queue_dropped: link.counters.queue_dropped.load(Ordering::Relaxed),
                counters: self.router.counters(*id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Sends a Bye, then closes the link once the writer has drained it.
    fn disconnect(&mut self, id: PeerId, code: u16, reason: &str) -> Option<Link> {
        let bye = Message {
            guid: Guid::random(),
            ttl: 1,
            hops: 0,
            payload: Payload::Bye(Bye { code, reason: reason.to_string() }),
        };
        self.links.get(&id)?.send(bye);
        self.remove(id, reason)
    }

    /// Forgets a peer; its writer ends once its queue is empty.
    fn remove(&mut self, id: PeerId, reason: &str) -> Option<Link> {
        self.router.disconnected(id);
        let link = self.links.remove(&id)?;
        log(format_args!("{} gone: {reason}", link.addr));
        link.wake.close();
        Some(link)
    }

    fn save_hosts(&self) {
        if let Some(dir) = &self.config.data_dir {
            if let Err(e) = self.hosts.save(&dir.join(HOST_CACHE_FILE)) {
                log(format_args!("cannot save the host cache: {e}"));
            }
        }
    }

    async fn shutdown(&mut self) {
        for task in self.tasks.drain(..) {
            task.cancel().await;
        }
        let ids: Vec<PeerId> = self.links.keys().copied().collect();
        let links: Vec<Link> =
            ids.into_iter().filter_map(|id| self.disconnect(id, 200, "servent shutting down")).collect();
        // Writers close their sockets once the Bye is out; a stuck peer is
        // cut off after a grace period.
        for link in links {
            if async_std::future::timeout(SHUTDOWN_GRACE, link.writer).await.is_err() {
                let _ = link.stream.shutdown(std::net::Shutdown::Both);
            }
        }
        self.save_hosts();
    }
}

/// How long `download` searches for a URN nobody has shown yet.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running download asks the network for more sources.
const REQUERY_INTERVAL: Duration = Duration::from_secs(120);

/// What the user asked to download, before sources are known.
struct DownloadTarget {
    urns: Vec<Urn>,
    name: Option<String>,
    size: Option<u64>,
    sources: Vec<SocketAddrV4>,
}

impl DownloadTarget {
    fn parse(text: &str) -> Result<DownloadTarget, NodeError> {
        let text = text.trim();
        if text.starts_with("magnet:") {
            let magnet = Magnet::parse(text).map_err(|e| NodeError::BadTarget(e.to_string()))?;
            let urns = magnet.sha1.into_iter().chain(magnet.sha256).collect();
            return Ok(DownloadTarget { urns, name: magnet.name, size: magnet.size, sources: magnet.sources });
        }
        let urn =
            text.parse::<Urn>().map_err(|e| NodeError::BadTarget(format!("expected a URN or a magnet link: {e}")))?;
        Ok(DownloadTarget { urns: vec![urn], name: None, size: None, sources: Vec::new() })
    }

    /// The request, completed with what a search found, if enough is known.
    fn request(self, known: Option<SearchResult>, keep: Keep) -> Option<DownloadRequest> {
        let mut urns = self.urns;
        let mut sources = self.sources;
        let (mut name, mut size) = (self.name, self.size);
        let mut signature = None;
        if let Some(found) = known {
            signature = found.signature;
            urns.extend(found.sha1.into_iter().chain(found.sha256).filter(|u| !urns.contains(u)).collect::<Vec<_>>());
            sources.extend(found.sources.into_iter().filter(|s| !sources.contains(s)).collect::<Vec<_>>());
            name.get_or_insert(found.name);
            size.get_or_insert(found.size);
        }
        // N2R requests need the SHA-1; keep it first.
        urns.sort_by_key(|u| !matches!(u, Urn::Sha1(_)));
        let name = name.unwrap_or_else(|| urns[0].base32());
        Some(DownloadRequest { urns, name, size: size?, sources, signature, keep })
    }
}

/// Asks the network for more sources of a running download, now and then.
/// A download whose sources a search found waits one interval first: that
/// search has just asked the whole network the same.
async fn requery(node: NodeHandle, id: DownloadId, urn: Urn, searched: bool) {
    let Ok(downloads) = node.downloads().cloned() else { return };
    let mut wait_first = searched;
    loop {
        if wait_first {
            task::sleep(REQUERY_INTERVAL).await;
            match downloads.get(id).await {
                Ok(snapshot) if !snapshot.state.is_finished() => {}
                _ => return,
            }
        }
        wait_first = true;
        if node.search(&urn.to_string(), crate::routing::DEFAULT_MAX_TTL).await.is_err() {
            return;
        }
    }
}

/// Turns what the user typed into a Query: keywords, or a URN to look up
/// by hash (sent, as Gnutella servents do, with `\` as criteria).
fn build_query(text: &str) -> Result<Query, NodeError> {
    let text = text.trim();
    if let Ok(urn) = text.parse::<Urn>() {
        return Ok(Query {
            flags: QueryFlags::default(),
            criteria: "\\".into(),
            urns: vec![urn],
            ggep: Default::default(),
        });
    }
    if search::keywords(text).is_empty() {
        return Err(NodeError::BadSearch(format!("nothing to search for in {text:?}")));
    }
    if text.len() > wire::MAX_CRITERIA {
        return Err(NodeError::BadSearch(format!(
            "search too long: {} bytes, at most {}",
            text.len(),
            wire::MAX_CRITERIA
        )));
    }
    Ok(Query { flags: QueryFlags::default(), criteria: text.to_string(), urns: Vec::new(), ggep: Default::default() })
}

fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(_) => None,
    }
}

/// Asks each GWebCache for hosts (version 2, then version 1 syntax).
async fn ask_gwebcaches(urls: Vec<String>, events: Sender<Event>) {
    for url in urls {
        let separator = if url.contains('?') { '&' } else { '?' };
        let request =
            format!("{url}{separator}get=1&hostfile=1&net=gnutella&client=SEBL&version={}", env!("CARGO_PKG_VERSION"));
        let body = async {
            let mut response = surf::get(&request).await?;
            response.take_body().into_string().await
        };
        match async_std::future::timeout(Duration::from_secs(20), body).await {
            Ok(Ok(body)) => {
                let hosts: Vec<SocketAddrV4> =
                    hostcache::parse_gwebcache(&body).into_iter().filter(|a| routing_ok(a.ip())).collect();
                log(format_args!("GWebCache {url}: {} hosts", hosts.len()));
                if events.send(Event::Learned(hosts)).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => log(format_args!("GWebCache {url}: {e}")),
            Err(_) => log(format_args!("GWebCache {url}: timed out")),
        }
    }
}

fn routing_ok(ip: &Ipv4Addr) -> bool {
    !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}
