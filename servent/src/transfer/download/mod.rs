//! Downloads: one file from every source at once, resumable, verified.
//!
//! A download is asked for by content ([`DownloadRequest`]: URNs, size,
//! name, first sources) and runs as its own task (a *driver*) that fetches
//! chunks of the file from up to [`DownloadsConfig::max_sources_per_download`]
//! sources in parallel, each on one kept-alive HTTP/1.1 connection. The
//! parts:
//!
//! - [`plan`]: which chunk each source fetches, slow sources losing chunks
//!   to fast ones, failing sources dropped, busy ones parked (pure);
//! - `state`: the `.part` and `.state` files that let a download survive
//!   a crash or a restart (pure file handling, no async);
//! - `finish`: one read pass for every digest, then a safe final name;
//! - `fetch`: a source's worker, the HTTP client side;
//! - [`stall`]: why a download that fetches nothing is stalled (pure);
//! - `driver`: one download's task, the only writer of its files.
//!
//! [`Downloads`] is the handle the node, the API and the tests use. Behind
//! it a manager task owns the table of downloads: it queues them (at most
//! [`DownloadsConfig::max_active`] run at once), passes on sources learnt
//! elsewhere ([`Downloads::add_sources`]), answers [`Downloads::list`] from
//! what each driver publishes, and wakes [`Downloads::wait`]ers when a
//! download ends. A finished file lands in the downloads directory only
//! after its SHA-1 and SHA-256 matched and its signature, if it has one,
//! was judged against the trusted keys ([`Keep`] says what may be kept);
//! the completion hook then lets the node share it at once.
//!
//! ```no_run
//! # async fn example() -> Result<(), servent::transfer::download::DownloadError> {
//! use std::sync::Arc;
//! use servent::transfer::alt::AltLocations;
//! use servent::transfer::download::{DownloadRequest, Downloads, DownloadsConfig, Keep};
//! use servent::trust::SharedTrust;
//! let config = DownloadsConfig::new("/data/partial".into(), "/data/downloads".into());
//! let downloads = Downloads::spawn(config, Arc::new(AltLocations::new()), SharedTrust::default(), |_| {});
//! let id = downloads
//!     .start(DownloadRequest {
//!         urns: vec!["urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap()],
//!         name: "SEBLINUX-iso-2.0.img".into(),
//!         size: 25_165_824,
//!         sources: vec!["10.0.0.1:6346".parse().unwrap()],
//!         signature: None,
//!         keep: Keep::NotFake,
//!     })
//!     .await?;
//! let finished = downloads.wait(id).await?;
//! println!("{:?} {:?}", finished.state, finished.path);
//! # Ok(())
//! # }
//! ```

mod driver;
mod fetch;
mod finish;
pub mod plan;
pub mod stall;
mod state;
mod tree;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_std::channel::{self, Receiver, Sender};
use async_std::task::{self, JoinHandle};
use serde::Serialize;

use search::Urn;
use servent_core::address::DialRule;
use signing_tool::Minisig;

use self::driver::{Control, Driver, Outcome, Start, Stop};
pub use self::finish::{check as check_file, safe_name as safe_file_name};
use self::plan::{Tuning, MAX_FILE_SIZE, MAX_KNOWN_SOURCES};
use self::state::{key_urn, PartialDir, PartialDownload};
use crate::transfer::alt::AltLocations;
use crate::transfer::partial::PartialShares;
use crate::transfer::push::{is_push_only, Pushes};
use crate::transfer::rate::RateLimit;
use crate::trust::{Judgement, SharedTrust};

/// Sources fetched from at once per download, by default.
pub const MAX_SOURCES_PER_DOWNLOAD: usize = 8;
/// Downloads running at once, by default; the others wait their turn.
pub const MAX_ACTIVE_DOWNLOADS: usize = 4;
/// Downloads remembered (running, queued and finished); the oldest
/// finished ones are forgotten first.
pub const MAX_DOWNLOADS: usize = 1000;
/// Full downloads of a file whose bytes fail verification before it fails.
pub const MAX_VERIFY_ATTEMPTS: u32 = 3;
/// Callers waiting on downloads at once.
const MAX_WAITERS: usize = 1024;
/// Commands waiting for the manager.
const COMMAND_QUEUE: usize = 256;
/// Source batches waiting for one driver; more are dropped (they are hints,
/// and the next search brings them again).
const CONTROL_QUEUE: usize = 16;

/// Where downloads go and how hard they try.
#[derive(Clone, Debug)]
pub struct DownloadsConfig {
    /// Where `.part` and `.state` files live: `<data-dir>/partial`, outside
    /// the (shared) downloads directory, on the same file system so that a
    /// finished file is moved, not copied.
    pub partial_dir: PathBuf,
    /// Where finished files land (`--downloads`, shared).
    pub downloads_dir: PathBuf,
    /// Downloads running at once.
    pub max_active: usize,
    /// Sources fetched from at once per download.
    pub max_sources_per_download: usize,
    /// The chunk plan's rules.
    pub tuning: Tuning,
    /// Connect, answer and per-read timeout: a source silent this long has
    /// stalled and its chunk fails.
    pub io_timeout: Duration,
    /// A download no source has served for this long shows `stalled`,
    /// with the reason (it goes on, and fails after `give_up_after`).
    pub stall_after: Duration,
    /// A download with no usable source for this long fails.
    pub give_up_after: Duration,
    /// Our `User-Agent`.
    pub user_agent: String,
    /// How firewalled sources are reached, by PUSH; without it they are
    /// connected to as any other.
    pub pushes: Option<Arc<Pushes>>,
    /// The cap all downloads share (`--max-download-rate`).
    pub rate: Arc<RateLimit>,
    /// Where downloads holding a signed tree offer their checked chunks
    /// (shared with the uploads).
    pub partial: Arc<PartialShares>,
    /// The address connections to sources leave from, when we listen on a
    /// particular one (so a source sees the address we listen on).
    pub local: Option<std::net::Ipv4Addr>,
    /// The node's dial rule, as it stands now: sources others name (hits,
    /// `X-Alt`) that it refuses (our machine, our LAN, outside a test
    /// network) are never taken. Those the user names here always are (a
    /// magnet's passed the rule before: `NodeHandle::download`).
    pub dial: Arc<RwLock<DialRule>>,
}

impl DownloadsConfig {
    /// The node's dial rule now ([`DownloadsConfig::dial`]).
    pub fn dial_rule(&self) -> DialRule {
        *self.dial.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The defaults, with these directories.
    pub fn new(partial_dir: PathBuf, downloads_dir: PathBuf) -> DownloadsConfig {
        DownloadsConfig {
            partial_dir,
            downloads_dir,
            max_active: MAX_ACTIVE_DOWNLOADS,
            max_sources_per_download: MAX_SOURCES_PER_DOWNLOAD,
            tuning: Tuning::default(),
            io_timeout: Duration::from_secs(30),
            stall_after: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
            user_agent: crate::config::USER_AGENT.to_string(),
            pushes: None,
            rate: Arc::new(RateLimit::default()),
            partial: Arc::default(),
            local: None,
            dial: Arc::new(RwLock::new(DialRule::new(false))),
        }
    }
}

/// What a finished download must be to be kept, beyond matching its URNs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Anything but a fake (`unsigned` and `untrusted` files are kept).
    #[default]
    NotFake,
    /// Only content verified under a trusted key (`get --require-verified`, the updater).
    Verified,
}

/// A file to download.
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    /// Its URNs: a `urn:sha1:` (what servents serve by) and/or a
    /// `urn:sha256:`; every one given is checked at the end.
    pub urns: Vec<Urn>,
    /// The name to give it (made safe; a name already taken gets a number).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Servents known to have it.
    pub sources: Vec<SocketAddrV4>,
    /// The signature a search found for it, checked against the bytes at the end.
    pub signature: Option<Arc<Minisig>>,
    /// What it must be to be kept.
    pub keep: Keep,
}

/// A download's number, unique while the servent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DownloadId(pub u64);

impl fmt::Display for DownloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DownloadId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<DownloadId, Self::Err> {
        text.parse().map(DownloadId)
    }
}

/// Where a download stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DownloadState {
    /// Waiting for a free slot.
    Queued,
    /// Fetching chunks.
    Downloading,
    /// Running, but no source has served for a while; it goes on, and
    /// fetches again as soon as a source serves.
    Stalled {
        /// One sentence: why nothing comes (no source, all dropped, queued
        /// everywhere…), with each source's last word.
        reason: String,
    },
    /// Every chunk is in; the hashes are being checked.
    Verifying,
    /// Stopped by the user, its partial data kept; it waits for a resume
    /// (or the next start of the servent, which resumes it).
    Paused,
    /// Verified and in the downloads directory.
    Complete,
    /// Given up, for this reason.
    Failed {
        /// One sentence: what went wrong, with the path or source.
        reason: String,
    },
    /// Cancelled by the user; its partial data is gone.
    Cancelled,
}

impl DownloadState {
    /// Whether the download has ended, one way or another.
    pub fn is_finished(&self) -> bool {
        matches!(self, DownloadState::Complete | DownloadState::Failed { .. } | DownloadState::Cancelled)
    }
}

/// What one source is doing for a download.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Known, not in use now (all worker slots taken, or not tried yet).
    Waiting,
    /// Fetching a chunk.
    Downloading,
    /// Connected, waiting for a chunk to free up.
    Idle,
    /// Said it is busy (or failed); tried again later.
    Busy,
    /// Holds a place for us in its upload queue; the worker asks again
    /// when its turn comes.
    Queued,
    /// Dropped: failed too often, or does not have the file.
    Dropped,
    /// Dropped for good: served data that failed verification.
    Corrupt,
}

/// One source of a download, for people.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceSnapshot {
    /// Its address.
    pub addr: SocketAddrV4,
    /// What it is doing.
    pub state: SourceState,
    /// The rate at which it delivered chunks, once it delivered one.
    pub rate_bytes_per_sec: Option<f64>,
    /// Bytes of accepted chunks it delivered.
    pub bytes: u64,
    /// Errors, net of chunks delivered.
    pub errors: u32,
    /// Why it last failed or was dropped.
    pub note: Option<String>,
}

/// A download as the API and the command line show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DownloadSnapshot {
    /// Its number.
    pub id: DownloadId,
    /// The file name it gets.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-1 URN, if known.
    pub sha1: Option<Urn>,
    /// Its SHA-256 URN, if known.
    pub sha256: Option<Urn>,
    /// Its Tiger tree root, once known (base32).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tth: Option<search::thex::Root>,
    /// Where it stands (flattened: `"state": "failed", "reason": "…"`).
    #[serde(flatten)]
    pub state: DownloadState,
    /// Bytes of chunks written and synced.
    pub bytes_done: u64,
    /// Bytes received of the chunks in flight.
    pub bytes_in_flight: u64,
    /// Bytes received per second, over the last seconds.
    pub rate_bytes_per_sec: f64,
    /// Its sources.
    pub sources: Vec<SourceSnapshot>,
    /// The finished file, once complete.
    pub path: Option<PathBuf>,
    /// The verdict on its bytes, once verified (flattened: `verdict`,
    /// `reason`, `publisher`, `version`).
    #[serde(flatten)]
    pub judgement: Option<Judgement>,
}

/// Why a download could not be started or followed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// Neither a SHA-1 nor a SHA-256 URN.
    #[error("a download needs a urn:sha1: or urn:sha256:")]
    NoUrn,
    /// A size over [`MAX_FILE_SIZE`].
    #[error("{0} bytes is more than the {MAX_FILE_SIZE}-byte limit")]
    TooLarge(u64),
    /// [`MAX_DOWNLOADS`] unfinished downloads already.
    #[error("too many unfinished downloads ({MAX_DOWNLOADS})")]
    TooMany,
    /// No download has this id.
    #[error("no download {0}")]
    Unknown(DownloadId),
    /// The download has ended already, so it cannot be paused or resumed.
    #[error("download {0} has already ended")]
    Ended(DownloadId),
    /// Too many callers wait on downloads already.
    #[error("too many callers waiting on downloads")]
    TooManyWaiters,
    /// The manager has stopped.
    #[error("downloads have stopped")]
    Stopped,
}

/// What [`Downloads::resume_all`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resumed {
    /// The downloads resumed.
    pub ids: Vec<DownloadId>,
    /// Partial downloads that could not be read, one sentence each.
    pub problems: Vec<String>,
}

/// Called with each download that completes (the node rescans its library
/// so that the file is shared at once). Runs on the manager task: be quick.
pub type CompletionHook = Arc<dyn Fn(&DownloadSnapshot) + Send + Sync>;

enum Command {
    Start {
        request: DownloadRequest,
        reply: Sender<Result<DownloadId, DownloadError>>,
    },
    AddSources {
        urn: Urn,
        sources: Vec<SocketAddrV4>,
    },
    AddSignature {
        urn: Urn,
        signature: Arc<Minisig>,
    },
    List {
        reply: Sender<Vec<DownloadSnapshot>>,
    },
    Get {
        id: DownloadId,
        reply: Sender<Option<DownloadSnapshot>>,
    },
    Wait {
        id: DownloadId,
        reply: Sender<Result<DownloadSnapshot, DownloadError>>,
    },
    Cancel {
        id: DownloadId,
        reply: Sender<Result<(), DownloadError>>,
    },
    Pause {
        id: DownloadId,
        reply: Sender<Result<(), DownloadError>>,
    },
    Resume {
        id: DownloadId,
        reply: Sender<Result<(), DownloadError>>,
    },
    ResumeAll {
        reply: Sender<Resumed>,
    },
    Shutdown {
        reply: Sender<()>,
    },
    /// From a driver's task: it ended.
    Ended {
        id: DownloadId,
        outcome: Outcome,
    },
}

/// The handle on the download manager: cheap to clone.
#[derive(Clone)]
pub struct Downloads {
    commands: Sender<Command>,
}

impl Downloads {
    /// Starts the manager task. `alt` is the mesh shared with uploads: good
    /// sources are recorded there, bad ones removed. `on_complete` is
    /// called with each download that completes.
    pub fn spawn(
        config: DownloadsConfig,
        alt: Arc<AltLocations>,
        trust: SharedTrust,
        on_complete: impl Fn(&DownloadSnapshot) + Send + Sync + 'static,
    ) -> Downloads {
        let (commands, inbox) = channel::bounded(COMMAND_QUEUE);
        let manager = Manager {
            config: Arc::new(config),
            alt,
            trust,
            on_complete: Arc::new(on_complete),
            entries: BTreeMap::new(),
            next_id: 1,
            waiters: Vec::new(),
            commands: commands.clone(),
            stopping: None,
        };
        task::spawn(manager.run(inbox));
        Downloads { commands }
    }

    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, DownloadError> {
        let (reply, answer) = channel::bounded(1);
        self.commands.send(make(reply)).await.map_err(|_| DownloadError::Stopped)?;
        answer.recv().await.map_err(|_| DownloadError::Stopped)
    }

    /// Queues a download, or returns the id of the unfinished one of the
    /// same content (giving it the new sources).
    pub async fn start(&self, request: DownloadRequest) -> Result<DownloadId, DownloadError> {
        self.ask(|reply| Command::Start { request, reply }).await?
    }

    /// Adds sources to the unfinished downloads of `urn` (search results,
    /// re-queries by URN, magnets).
    pub async fn add_sources(&self, urn: &Urn, sources: Vec<SocketAddrV4>) -> Result<(), DownloadError> {
        let command = Command::AddSources { urn: *urn, sources };
        self.commands.send(command).await.map_err(|_| DownloadError::Stopped)
    }

    /// Like [`Downloads::add_sources`], for callers that must not wait (the
    /// node's broker): if the manager is busy the hint is dropped, and the
    /// next search brings it again.
    pub fn offer_sources(&self, urn: &Urn, sources: Vec<SocketAddrV4>) {
        let _ = self.commands.try_send(Command::AddSources { urn: *urn, sources });
    }

    /// Offers the downloads of `urn` a signature a hit for it carried (the
    /// node calls it for every signed hit): a download that has none, or a
    /// worse one under the keys trusted now, takes it, judges its bytes
    /// with it and places it beside the file. Never waits: a hint dropped
    /// when the manager is busy comes again with the next hit.
    pub fn offer_signature(&self, urn: &Urn, signature: Arc<Minisig>) {
        let _ = self.commands.try_send(Command::AddSignature { urn: *urn, signature });
    }

    /// Every download, oldest first.
    pub async fn list(&self) -> Result<Vec<DownloadSnapshot>, DownloadError> {
        self.ask(|reply| Command::List { reply }).await
    }

    /// One download.
    pub async fn get(&self, id: DownloadId) -> Result<DownloadSnapshot, DownloadError> {
        self.ask(|reply| Command::Get { id, reply }).await?.ok_or(DownloadError::Unknown(id))
    }

    /// Waits until download `id` has ended (complete, failed or cancelled)
    /// and returns how.
    pub async fn wait(&self, id: DownloadId) -> Result<DownloadSnapshot, DownloadError> {
        self.ask(|reply| Command::Wait { id, reply }).await?
    }

    /// Cancels a download and deletes its partial data.
    pub async fn cancel(&self, id: DownloadId) -> Result<(), DownloadError> {
        self.ask(|reply| Command::Cancel { id, reply }).await?
    }

    /// Pauses a download: its sources are let go and its partial data stays
    /// on disk until [`Downloads::resume`]. Pausing a paused download does
    /// nothing. A pause lasts while the servent runs: after a restart,
    /// [`Downloads::resume_all`] resumes it with the others.
    pub async fn pause(&self, id: DownloadId) -> Result<(), DownloadError> {
        self.ask(|reply| Command::Pause { id, reply }).await?
    }

    /// Queues a paused download again, to go on where it stopped; resuming
    /// one that is not paused does nothing.
    pub async fn resume(&self, id: DownloadId) -> Result<(), DownloadError> {
        self.ask(|reply| Command::Resume { id, reply }).await?
    }

    /// Resumes every unfinished download found in the partial directory:
    /// what the node calls once at start.
    pub async fn resume_all(&self) -> Result<Resumed, DownloadError> {
        self.ask(|reply| Command::ResumeAll { reply }).await
    }

    /// Stops every download (their partial data stays, to resume) and the
    /// manager; returns once their files are closed.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}

/// Logs an event of a download (see [`crate::logging`]).
fn log(message: &str) {
    log::info!("{message}");
}

/// Logs a failure of a download or a source; repeats of its kind are summarised.
fn warn(message: &str) {
    log::warn!("{message}");
}

struct Entry {
    urns: Vec<Urn>,
    key: Urn,
    signature: Option<Arc<Minisig>>,
    keep: Keep,
    phase: Phase,
    /// What the driver publishes; the final state once finished.
    snapshot: Arc<Mutex<DownloadSnapshot>>,
}

enum Phase {
    Queued {
        sources: Vec<SocketAddrV4>,
        resumed: Option<PartialDownload>,
    },
    Running {
        control: Sender<Control>,
        stop: Sender<Stop>,
        task: JoinHandle<()>,
        /// A pause was asked for and not taken back: once the driver has
        /// stopped, the download is paused rather than queued again.
        pausing: bool,
    },
    /// As `Queued`, but not started until resumed.
    Paused {
        sources: Vec<SocketAddrV4>,
        resumed: Option<PartialDownload>,
    },
    Finished,
}

impl Entry {
    fn snapshot(&self) -> DownloadSnapshot {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_state(&self, state: DownloadState, path: Option<PathBuf>) {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        snapshot.state = state;
        snapshot.path = path;
        if !matches!(
            snapshot.state,
            DownloadState::Downloading | DownloadState::Stalled { .. } | DownloadState::Verifying
        ) {
            snapshot.bytes_in_flight = 0;
            snapshot.rate_bytes_per_sec = 0.0;
        }
    }
}

struct Manager {
    config: Arc<DownloadsConfig>,
    alt: Arc<AltLocations>,
    trust: SharedTrust,
    on_complete: CompletionHook,
    entries: BTreeMap<DownloadId, Entry>,
    next_id: u64,
    waiters: Vec<(DownloadId, Sender<Result<DownloadSnapshot, DownloadError>>)>,
    /// For drivers' tasks to report their end.
    commands: Sender<Command>,
    /// Set once a shutdown is under way: who to tell when it is done.
    stopping: Option<Sender<()>>,
}

/// Whether two lists of URNs name the same content: they share one, and
/// no kind of URN both have differs (a SHA-1 named with another SHA-256 is
/// another claim, not the same file). A download named by SHA-1 and one
/// named by SHA-256 are one when a search found both names for it.
fn same_content(ours: &[Urn], theirs: &[Urn]) -> bool {
    let shared = ours.iter().any(|u| theirs.contains(u));
    let kind = |u: &Urn| std::mem::discriminant(u);
    let contradicts = ours.iter().any(|u| theirs.iter().any(|t| kind(t) == kind(u) && t != u));
    shared && !contradicts
}

impl Manager {
    async fn run(mut self, inbox: Receiver<Command>) {
        while let Ok(command) = inbox.recv().await {
            self.handle(command).await;
            if let Some(done) = &self.stopping {
                if !self.entries.values().any(|e| matches!(e.phase, Phase::Running { .. })) {
                    let _ = done.send(()).await;
                    return;
                }
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Start { request, reply } => {
                let _ = reply.send(self.start(request, None)).await;
            }
            Command::AddSources { urn, mut sources } => {
                // A push-only key stands for a source others named that we
                // may not dial: it is reached by PUSH, never connected to.
                let dial = self.config.dial_rule();
                sources.retain(|source| is_push_only(*source) || dial.allows(*source));
                self.add_sources(&urn, sources)
            }
            Command::AddSignature { urn, signature } => self.add_signature(&urn, signature),
            Command::List { reply } => {
                let _ = reply.send(self.entries.values().map(Entry::snapshot).collect()).await;
            }
            Command::Get { id, reply } => {
                let _ = reply.send(self.entries.get(&id).map(Entry::snapshot)).await;
            }
            Command::Wait { id, reply } => match self.entries.get(&id) {
                None => {
                    let _ = reply.send(Err(DownloadError::Unknown(id))).await;
                }
                Some(entry) if matches!(entry.phase, Phase::Finished) => {
                    let _ = reply.send(Ok(entry.snapshot())).await;
                }
                Some(_) if self.waiters.len() >= MAX_WAITERS => {
                    let _ = reply.send(Err(DownloadError::TooManyWaiters)).await;
                }
                Some(_) => self.waiters.push((id, reply)),
            },
            Command::Cancel { id, reply } => {
                let _ = reply.send(self.cancel(id).await).await;
            }
            Command::Pause { id, reply } => {
                let _ = reply.send(self.pause(id)).await;
            }
            Command::Resume { id, reply } => {
                let _ = reply.send(self.resume(id)).await;
            }
            Command::ResumeAll { reply } => {
                let _ = reply.send(self.resume_all().await).await;
            }
            Command::Shutdown { reply } => {
                for entry in self.entries.values() {
                    if let Phase::Running { stop, .. } = &entry.phase {
                        let _ = stop.try_send(Stop::Shutdown);
                    }
                }
                self.stopping = Some(reply);
            }
            Command::Ended { id, outcome } => self.ended(id, outcome).await,
        }
    }

    fn start(
        &mut self,
        request: DownloadRequest,
        resumed: Option<PartialDownload>,
    ) -> Result<DownloadId, DownloadError> {
        if self.stopping.is_some() {
            return Err(DownloadError::Stopped);
        }
        let key = key_urn(&request.urns).ok_or(DownloadError::NoUrn)?;
        if request.size > MAX_FILE_SIZE {
            return Err(DownloadError::TooLarge(request.size));
        }
        let unfinished = self.entries.iter().find(|(_, e)| {
            !matches!(e.phase, Phase::Finished) && (e.key == key || same_content(&e.urns, &request.urns))
        });
        if let Some((&id, entry)) = unfinished {
            let key = entry.key;
            self.add_sources(&key, request.sources);
            return Ok(id);
        }
        if self.entries.len() >= MAX_DOWNLOADS {
            let oldest_finished =
                self.entries.iter().find(|(_, e)| matches!(e.phase, Phase::Finished)).map(|(&id, _)| id);
            self.entries.remove(&oldest_finished.ok_or(DownloadError::TooMany)?);
        }
        let id = DownloadId(self.next_id);
        self.next_id += 1;
        let mut urns: Vec<Urn> = Vec::new();
        for urn in request.urns {
            if !urns.contains(&urn) {
                urns.push(urn);
            }
        }
        let mut sources = request.sources;
        sources.truncate(MAX_KNOWN_SOURCES);
        let snapshot = DownloadSnapshot {
            id,
            name: request.name,
            size: request.size,
            sha1: urns.iter().find(|u| matches!(u, Urn::Sha1(_))).copied(),
            sha256: urns.iter().find(|u| matches!(u, Urn::Sha256(_))).copied(),
            tth: None,
            state: DownloadState::Queued,
            bytes_done: 0,
            bytes_in_flight: 0,
            rate_bytes_per_sec: 0.0,
            sources: Vec::new(),
            path: None,
            judgement: None,
        };
        let phase = Phase::Queued { sources, resumed };
        let (signature, keep) = (request.signature, request.keep);
        let snapshot = Arc::new(Mutex::new(snapshot));
        self.entries.insert(id, Entry { urns, key, signature, keep, phase, snapshot });
        self.run_queued();
        Ok(id)
    }

    /// Starts queued downloads while there are free slots.
    fn run_queued(&mut self) {
        let running = self.entries.values().filter(|e| matches!(e.phase, Phase::Running { .. })).count();
        let free = self.config.max_active.saturating_sub(running);
        let queued: Vec<DownloadId> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Queued { .. }))
            .map(|(&id, _)| id)
            .take(free)
            .collect();
        for id in queued {
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            let Phase::Queued { sources, resumed } = std::mem::replace(&mut entry.phase, Phase::Finished) else {
                continue;
            };
            let snapshot = entry.snapshot();
            let start = Start {
                id,
                urns: entry.urns.clone(),
                name: snapshot.name,
                size: snapshot.size,
                sources,
                signature: entry.signature.clone(),
                keep: entry.keep,
                resumed,
            };
            let (config, alt, published) = (self.config.clone(), self.alt.clone(), entry.snapshot.clone());
            let trust = self.trust.clone();
            let (control, control_rx) = channel::bounded(CONTROL_QUEUE);
            let (stop, stop_rx) = channel::bounded(1);
            let commands = self.commands.clone();
            let task = task::spawn(async move {
                let outcome = match Driver::open(start, config, alt, trust, published).await {
                    Ok(driver) => driver.run(control_rx, stop_rx).await,
                    Err(reason) => Outcome::Failed(reason),
                };
                let _ = commands.send(Command::Ended { id, outcome }).await;
            });
            entry.phase = Phase::Running { control, stop, task, pausing: false };
            log(&format!("download {id} ({}) started", entry.snapshot().name));
        }
    }

    fn add_sources(&mut self, urn: &Urn, sources: Vec<SocketAddrV4>) {
        for entry in self.entries.values_mut().filter(|e| e.urns.contains(urn)) {
            match &mut entry.phase {
                Phase::Queued { sources: known, .. } | Phase::Paused { sources: known, .. } => {
                    for source in &sources {
                        if known.len() < MAX_KNOWN_SOURCES && !known.contains(source) {
                            known.push(*source);
                        }
                    }
                }
                Phase::Running { control, .. } => {
                    let _ = control.try_send(Control::AddSources(sources.clone()));
                }
                Phase::Finished => {}
            }
        }
    }

    fn add_signature(&mut self, urn: &Urn, signature: Arc<Minisig>) {
        for entry in self.entries.values_mut().filter(|e| e.urns.contains(urn)) {
            match &entry.phase {
                // Its driver starts from the entry's signature.
                Phase::Queued { .. } | Phase::Paused { .. } => {
                    entry.signature.get_or_insert_with(|| signature.clone());
                }
                Phase::Running { control, .. } => {
                    let _ = control.try_send(Control::AddSignature(signature.clone()));
                }
                Phase::Finished => {}
            }
        }
    }

    async fn cancel(&mut self, id: DownloadId) -> Result<(), DownloadError> {
        let entry = self.entries.get_mut(&id).ok_or(DownloadError::Unknown(id))?;
        match &entry.phase {
            Phase::Running { stop, .. } => {
                let _ = stop.try_send(Stop::Cancel);
            }
            Phase::Queued { .. } | Phase::Paused { .. } => {
                let (partial, key) = (PartialDir::new(self.config.partial_dir.clone()), entry.key);
                let _ = task::spawn_blocking(move || partial.remove(&key)).await;
                entry.phase = Phase::Finished;
                entry.set_state(DownloadState::Cancelled, None);
                self.wake_waiters(id);
            }
            Phase::Finished => {}
        }
        Ok(())
    }

    fn pause(&mut self, id: DownloadId) -> Result<(), DownloadError> {
        let entry = self.entries.get_mut(&id).ok_or(DownloadError::Unknown(id))?;
        match std::mem::replace(&mut entry.phase, Phase::Finished) {
            Phase::Queued { sources, resumed } => {
                entry.phase = Phase::Paused { sources, resumed };
                entry.set_state(DownloadState::Paused, None);
            }
            Phase::Running { control, stop, task, pausing } => {
                if !pausing {
                    let _ = stop.try_send(Stop::Pause);
                }
                entry.phase = Phase::Running { control, stop, task, pausing: true };
            }
            phase @ Phase::Paused { .. } => entry.phase = phase,
            Phase::Finished => return Err(DownloadError::Ended(id)),
        }
        Ok(())
    }

    fn resume(&mut self, id: DownloadId) -> Result<(), DownloadError> {
        let entry = self.entries.get_mut(&id).ok_or(DownloadError::Unknown(id))?;
        match &mut entry.phase {
            Phase::Paused { sources, resumed } => {
                let (sources, resumed) = (std::mem::take(sources), resumed.take());
                entry.phase = Phase::Queued { sources, resumed };
                entry.set_state(DownloadState::Queued, None);
                self.run_queued();
            }
            // Its driver is stopping: it is queued again once it has.
            Phase::Running { pausing, .. } => *pausing = false,
            Phase::Queued { .. } => {}
            Phase::Finished => return Err(DownloadError::Ended(id)),
        }
        Ok(())
    }

    async fn resume_all(&mut self) -> Resumed {
        let dir = self.config.partial_dir.clone();
        let loaded = task::spawn_blocking(move || state::load_all(&dir)).await;
        let mut resumed = Resumed { ids: Vec::new(), problems: loaded.problems };
        for partial in loaded.downloads {
            let signature = match partial.signature.as_deref().map(|text| Minisig::parse(text.as_bytes())) {
                Some(Ok(minisig)) => Some(Arc::new(minisig)),
                Some(Err(e)) => {
                    resumed.problems.push(format!("{}: its signature cannot be read: {e}", partial.name));
                    continue;
                }
                None => None,
            };
            let request = DownloadRequest {
                urns: partial.urns.clone(),
                name: partial.name.clone(),
                size: partial.size,
                sources: partial.sources.clone(),
                signature,
                keep: partial.keep,
            };
            match self.start(request, Some(partial)) {
                Ok(id) => resumed.ids.push(id),
                Err(e) => resumed.problems.push(e.to_string()),
            }
        }
        resumed
    }

    async fn ended(&mut self, id: DownloadId, outcome: Outcome) {
        let Some(entry) = self.entries.get_mut(&id) else { return };
        let mut paused = false;
        if let Phase::Running { task, pausing, .. } = std::mem::replace(&mut entry.phase, Phase::Finished) {
            task.await;
            paused = pausing;
        }
        match outcome {
            Outcome::Complete(path) => {
                let verdict = entry.snapshot().judgement.map_or_else(|| "no verdict".into(), |j| j.verdict.to_string());
                log(&format!("download {id} finished ({verdict}): {}", path.display()));
                entry.set_state(DownloadState::Complete, Some(path));
                (self.on_complete)(&entry.snapshot());
            }
            Outcome::Failed(reason) => {
                warn(&format!("download {id} ({}) failed: {reason}", entry.snapshot().name));
                entry.set_state(DownloadState::Failed { reason }, None);
            }
            Outcome::Stopped(Stop::Cancel) => entry.set_state(DownloadState::Cancelled, None),
            // Shutting down: it resumes at the next start.
            Outcome::Stopped(Stop::Shutdown) => entry.set_state(DownloadState::Queued, None),
            // The driver reads its state file again when it restarts.
            Outcome::Stopped(Stop::Pause) if paused => {
                entry.phase = Phase::Paused { sources: Vec::new(), resumed: None };
                entry.set_state(DownloadState::Paused, None);
            }
            Outcome::Stopped(Stop::Pause) => {
                entry.phase = Phase::Queued { sources: Vec::new(), resumed: None };
                entry.set_state(DownloadState::Queued, None);
            }
        }
        self.wake_waiters(id);
        if self.stopping.is_none() {
            self.run_queued();
        }
    }

    fn wake_waiters(&mut self, id: DownloadId) {
        let Some(snapshot) = self.entries.get(&id).map(Entry::snapshot) else { return };
        self.waiters.retain(|(waited, reply)| {
            if *waited != id {
                return true;
            }
            let _ = reply.try_send(Ok(snapshot.clone()));
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_serializes_with_its_state_inline() {
        let snapshot = DownloadSnapshot {
            id: DownloadId(7),
            name: "a.img".into(),
            size: 10,
            sha1: Some("urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap()),
            sha256: None,
            tth: None,
            state: DownloadState::Failed { reason: "no usable source left".into() },
            bytes_done: 4,
            bytes_in_flight: 0,
            rate_bytes_per_sec: 0.0,
            sources: vec![SourceSnapshot {
                addr: "10.0.0.1:6346".parse().unwrap(),
                state: SourceState::Dropped,
                rate_bytes_per_sec: None,
                bytes: 4,
                errors: 3,
                note: Some("too many errors: stalled after 0 of 10 bytes".into()),
            }],
            path: None,
            judgement: None,
        };
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": 7, "name": "a.img", "size": 10,
                "sha1": "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB", "sha256": null,
                "state": "failed", "reason": "no usable source left",
                "bytes_done": 4, "bytes_in_flight": 0, "rate_bytes_per_sec": 0.0,
                "sources": [{
                    "addr": "10.0.0.1:6346", "state": "dropped", "rate_bytes_per_sec": null,
                    "bytes": 4, "errors": 3, "note": "too many errors: stalled after 0 of 10 bytes"
                }],
                "path": null
            })
        );
        let queued = serde_json::to_value(DownloadState::Queued).unwrap();
        assert_eq!(queued, serde_json::json!({ "state": "queued" }));
    }

    #[test]
    fn download_ids_read_back_from_their_text() {
        assert_eq!("42".parse::<DownloadId>().unwrap(), DownloadId(42));
        assert_eq!(DownloadId(42).to_string(), "42");
        assert!("x".parse::<DownloadId>().is_err());
    }
}
