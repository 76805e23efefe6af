//! One download's task: it owns the plan, the `.part` file and the workers.
//!
//! The driver is the only place where the download's decisions are made
//! and the only writer of its files, in the manner of the node's broker: its
//! workers ([`super::fetch`]) and the manager send it events, and it answers
//! them one at a time. A worker asking for work gets a chunk from the
//! [`Plan`], or waits (its answer kept) until one frees up. A finished chunk
//! the plan accepts is written at its offset at once; every few chunks, and
//! every second, the `.part` is synced and only then are the chunks written
//! so far counted in the state file (the sync runs in the background while
//! the next chunks arrive). When every chunk is done, the driver stops the
//! workers, verifies the file in one read pass (its hashes, and its
//! signature against the trusted keys) and moves it into the downloads
//! directory, its signature beside it; on a hash mismatch it throws the
//! data away, drops every source that served it, and starts over with the
//! others.
//!
//! When the download knows the file's Tiger tree root from a source it
//! trusts (the `tth:` signed by a trusted publisher), it first fetches the
//! tree from a source that offers one ([`super::tree`]), checked against
//! that root, and then checks every chunk against the tree before the plan
//! counts it: a chunk that fails costs only the source that sent it, which
//! is dropped as corrupt (a log line says so), and the chunk goes to
//! another source. The publisher is never blamed for a liar's bytes. A fake (or, when only verified files are kept, anything else)
//! ends the download and leaves nothing behind: every source of those
//! URNs has the same bytes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_std::channel::{self, Receiver, Sender};
use async_std::task::{self, JoinHandle};
use futures::channel::oneshot;
use futures::stream::{self, BoxStream, StreamExt};

use search::thex::{Root, Tree};
use search::Urn;
use signing_tool::{Minisig, Release};

use super::fetch::{self, Assignment, Job, Reporter, WorkerEnd, WorkerEvent};
use super::plan::{Completion, DropReason, Next, Plan, Standing};
use super::state::{DiskError, PartFile, PartialDir, PartialDownload};
use super::{finish, stall};
use super::{
    DownloadId, DownloadSnapshot, DownloadState, DownloadsConfig, Keep, SourceSnapshot, SourceState,
    MAX_VERIFY_ATTEMPTS,
};
use crate::transfer::alt::{AltLocations, FirewalledLocation, Locations};
use crate::transfer::parq::{self, QueueTicket};
use crate::transfer::push::is_push_only;
use crate::trust::{Content, Judgement, SharedTrust, Verdict};

/// How often time-based rules (stalls, parked sources, rates) are looked at.
const TICK: Duration = Duration::from_millis(250);
/// Events from workers waiting for the driver.
const WORKER_QUEUE: usize = 64;
/// Rate samples kept: the rate shown is over the last 4 seconds.
const RATE_SAMPLES: usize = 16;
/// Other sources a request names in `X-Alt`.
const ALT_IN_REQUEST: usize = 10;
/// Chunks written between two syncs of the `.part` and its state at most:
/// a system crash loses at most these, besides the chunks in flight.
const SYNC_EVERY_CHUNKS: usize = 16;
/// Longest time a written chunk waits for its sync.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Chunks from before a restart checked against the tree at a time, between
/// the driver's other work: a large file's are checked over many turns.
const RESUMED_CHECK_BATCH: usize = 16;

/// What the manager tells a running download.
#[derive(Debug)]
pub(super) enum Control {
    /// More places to fetch from.
    AddSources(Vec<SocketAddrV4>),
    /// A signature a later hit carried for this content.
    AddSignature(Arc<Minisig>),
}

/// Why the manager stops a download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The user gave up on it: its partial data goes too.
    Cancel,
    /// The servent stops: its partial data stays, to resume.
    Shutdown,
    /// The user paused it: its partial data stays, to resume.
    Pause,
}

/// How a download ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Verified and in the downloads directory at this path.
    Complete(PathBuf),
    /// Failed for good, with the reason.
    Failed(String),
    /// Stopped by [`Stop`].
    Stopped(Stop),
}

/// Everything a download starts from.
pub(super) struct Start {
    pub id: DownloadId,
    pub urns: Vec<Urn>,
    pub name: String,
    pub size: u64,
    pub sources: Vec<SocketAddrV4>,
    pub signature: Option<Arc<Minisig>>,
    pub keep: Keep,
    /// A state read at start-up, if this is a resumed download.
    pub resumed: Option<PartialDownload>,
}

struct Worker {
    /// Tells this worker's events from those of an earlier one for the same
    /// source that was stopped and may still have events queued.
    serial: u64,
    handle: JoinHandle<()>,
}

/// The task of one download.
pub(super) struct Driver {
    id: DownloadId,
    urns: Vec<Urn>,
    key: Urn,
    name: String,
    plan: Plan,
    partial: PartialDir,
    part: Arc<PartFile>,
    config: Arc<DownloadsConfig>,
    alt: Arc<AltLocations>,
    trust: SharedTrust,
    signature: Option<Arc<Minisig>>,
    /// Whether `signature` came from a hit after the download started.
    signature_from_hit: bool,
    keep: Keep,
    published: Arc<Mutex<DownloadSnapshot>>,
    worker_tx: Sender<(u64, WorkerEvent)>,
    worker_rx: Receiver<(u64, WorkerEvent)>,
    workers: HashMap<SocketAddrV4, Worker>,
    next_serial: u64,
    /// Workers waiting for a chunk, with the answer they wait on.
    idle: Vec<(SocketAddrV4, oneshot::Sender<Assignment>)>,
    /// Why each source last failed, for people.
    notes: HashMap<SocketAddrV4, String>,
    /// Sources whose worker waits in their upload queue: the place, and
    /// since when we wait.
    queued: HashMap<SocketAddrV4, (QueueTicket, Instant)>,
    /// Bytes received from every source, ever: the rate's numerator.
    received: u64,
    rate_samples: VecDeque<(Instant, u64)>,
    /// Since when no source could be used.
    sourceless_since: Option<Instant>,
    /// Since when no source holds a chunk, and whether the download was
    /// published as stalled for it.
    idle_since: Option<Instant>,
    stalled: bool,
    verify_attempts: u32,
    /// Chunks written but not yet synced and counted in the state file,
    /// and since when the oldest of them waits.
    unsynced: usize,
    unsynced_since: Option<Instant>,
    /// The sync and state save running in the background, if any.
    committing: Option<JoinHandle<Result<(), DiskError>>>,
    /// The Tiger tree root signed by a trusted publisher, if any.
    root: Option<Root>,
    /// The tree every chunk is checked against, once fetched.
    tree: Option<Arc<Tree>>,
    /// Sources already asked for the tree.
    tree_asked: Vec<SocketAddrV4>,
    /// Chunks from before a restart not yet checked against the tree (and
    /// so not yet offered to others).
    unchecked: Vec<usize>,
    /// Without a tree, after a failed verification: the sources whose
    /// chunks were fetched again from others, and what each source had
    /// delivered for each chunk then (its SHA-256), to be compared with
    /// the file once it verifies.
    suspected: Vec<SocketAddrV4>,
    delivered: Vec<(usize, SocketAddrV4, [u8; 32])>,
}

enum Input {
    Worker(u64, WorkerEvent),
    Control(Control),
    Stop(Stop),
    Tick,
}

impl Driver {
    /// Opens (or reopens) the download's files and plan.
    pub(super) async fn open(
        start: Start,
        config: Arc<DownloadsConfig>,
        alt: Arc<AltLocations>,
        trust: SharedTrust,
        published: Arc<Mutex<DownloadSnapshot>>,
    ) -> Result<Driver, String> {
        let key = super::state::key_urn(&start.urns).ok_or("no urn:sha1: or urn:sha256:")?;
        let partial = PartialDir::new(config.partial_dir.clone());
        let (part, saved, problem) = {
            let partial = partial.clone();
            let resumed = start.resumed.clone();
            task::spawn_blocking(move || -> Result<_, DiskError> {
                let part = partial.open_part(&key)?;
                let (saved, problem) = match resumed {
                    Some(state) => (Some(state), None),
                    None => match partial.load(&key) {
                        Ok(saved) => (saved, None),
                        Err(problem) => (None, Some(problem)),
                    },
                };
                Ok((part, saved, problem))
            })
            .await
            .map_err(|e| e.to_string())?
        };
        let mut plan = Plan::new(start.size, config.tuning);
        if config.tuning.shuffle {
            plan.seed(rand::random());
        }
        let mut name = start.name.clone();
        let mut sources = start.sources.clone();
        let mut urns = start.urns.clone();
        match saved {
            Some(saved) if saved.size == start.size => {
                for &(from, to) in &saved.done {
                    plan.mark_done_range(from, to);
                }
                if name.is_empty() {
                    name = saved.name;
                }
                sources.extend(saved.sources);
                // A URN of a kind the request lacks is one more check.
                for urn in saved.urns {
                    if !urns.iter().any(|u| std::mem::discriminant(u) == std::mem::discriminant(&urn)) {
                        urns.push(urn);
                    }
                }
            }
            // Another size for the same URN: one of the two is wrong, and
            // the bytes on disk cannot be told apart, so start over.
            Some(_) => part.clear().map_err(|e| e.to_string())?,
            None => {}
        }
        for source in sources {
            plan.add_source(source);
        }
        if let Some(problem) = problem {
            super::log(&problem);
        }
        let (worker_tx, worker_rx) = channel::bounded(WORKER_QUEUE);
        let sha256 = urns.iter().find_map(|urn| match urn {
            Urn::Sha256(digest) => Some(*digest),
            _ => None,
        });
        let content = Content { size: start.size, sha256, tth: None };
        let root = start.signature.as_deref().and_then(|signature| signed_root(&trust, signature, content));
        let driver = Driver {
            id: start.id,
            urns,
            key,
            name,
            plan,
            partial,
            part: Arc::new(part),
            config,
            alt,
            trust,
            signature: start.signature,
            signature_from_hit: false,
            keep: start.keep,
            published,
            worker_tx,
            worker_rx,
            workers: HashMap::new(),
            next_serial: 0,
            idle: Vec::new(),
            notes: HashMap::new(),
            queued: HashMap::new(),
            received: 0,
            rate_samples: VecDeque::new(),
            sourceless_since: None,
            idle_since: None,
            stalled: false,
            verify_attempts: 0,
            unsynced: 0,
            unsynced_since: None,
            committing: None,
            root,
            tree: None,
            tree_asked: Vec::new(),
            unchecked: Vec::new(),
            suspected: Vec::new(),
            delivered: Vec::new(),
        };
        driver.save_state().await.map_err(|e| e.to_string())?;
        Ok(driver)
    }

    /// Runs the download until it ends or is stopped.
    pub(super) async fn run(mut self, control: Receiver<Control>, stop: Receiver<Stop>) -> Outcome {
        let outcome = self.drive(control, stop).await;
        // Offered in part no longer: a finished file is served from where
        // it landed until the library has indexed it.
        match &outcome {
            Outcome::Complete(path) => self.config.partial.complete(&self.key, path.clone()),
            _ => self.config.partial.withdraw(&self.key),
        }
        outcome
    }

    async fn drive(&mut self, control: Receiver<Control>, stop: Receiver<Stop>) -> Outcome {
        let mut inputs: BoxStream<'static, Input> = stream::select_all([
            self.worker_rx.clone().map(|(serial, event)| Input::Worker(serial, event)).boxed(),
            control.map(Input::Control).boxed(),
            // The manager never closes the stop channel before sending on
            // it, except when it is gone itself: that is a shutdown too.
            stop.chain(stream::once(async { Stop::Shutdown })).map(Input::Stop).boxed(),
            async_std::stream::interval(TICK).map(|()| Input::Tick).boxed(),
        ])
        .boxed();
        loop {
            let now = Instant::now();
            if self.plan.is_complete() {
                self.stop_workers().await;
                if let Err(e) = self.commit(true).await {
                    return Outcome::Failed(e.to_string());
                }
                match self.finish().await {
                    Some(outcome) => return outcome,
                    None => continue,
                }
            }
            self.serve_idle(now);
            self.fetch_tree(now).await;
            if let Err(e) = self.check_resumed().await {
                self.stop_workers().await;
                return Outcome::Failed(e.to_string());
            }
            self.spawn_workers(now);
            if let Some(reason) = self.given_up(now) {
                self.stop_workers().await;
                return Outcome::Failed(reason);
            }
            self.publish(DownloadState::Downloading, now);
            let Some(input) = inputs.next().await else { return Outcome::Stopped(Stop::Shutdown) };
            let result = match input {
                Input::Worker(serial, event) => self.on_worker_event(serial, event).await,
                Input::Control(Control::AddSources(addrs)) => {
                    for addr in addrs {
                        self.plan.add_source(addr);
                    }
                    Ok(())
                }
                Input::Control(Control::AddSignature(signature)) => self.offer_signature(signature).await,
                Input::Stop(stop) => {
                    self.stop_workers().await;
                    if stop == Stop::Cancel {
                        // A sync still running would write the state again.
                        if let Some(commit) = self.committing.take() {
                            let _ = commit.await;
                        }
                        let (partial, key) = (self.partial.clone(), self.key);
                        let _ = task::spawn_blocking(move || partial.remove(&key)).await;
                    } else if let Err(e) = self.commit(true).await {
                        return Outcome::Failed(e.to_string());
                    }
                    return Outcome::Stopped(stop);
                }
                Input::Tick => {
                    let now = Instant::now();
                    self.sample_rate(now);
                    match self.unsynced_since {
                        Some(since) if now.saturating_duration_since(since) >= SYNC_INTERVAL => {
                            self.commit(false).await
                        }
                        _ => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                self.stop_workers().await;
                return Outcome::Failed(e.to_string());
            }
        }
    }

    async fn on_worker_event(&mut self, serial: u64, event: WorkerEvent) -> Result<(), DiskError> {
        let now = Instant::now();
        let source = match &event {
            WorkerEvent::Ask { source, .. }
            | WorkerEvent::Progress { source, .. }
            | WorkerEvent::Chunk { source, .. }
            | WorkerEvent::Queued { source, .. }
            | WorkerEvent::Available { source, .. }
            | WorkerEvent::Ended { source, .. } => Some(*source),
            WorkerEvent::Learned { .. } | WorkerEvent::Failed { .. } => None,
        };
        if let Some(source) = source {
            if self.workers.get(&source).map(|w| w.serial) != Some(serial) {
                return Ok(()); // from a worker already stopped
            }
        }
        match event {
            WorkerEvent::Ask { source, reply } => self.idle.push((source, reply)),
            WorkerEvent::Progress { source, index, received } => {
                self.received += self.plan.progress(source, index, received, now);
            }
            WorkerEvent::Chunk { source, index, data, next } => {
                let (data, verdict) = self.check_chunk(index, data).await;
                if let Err(why) = verdict {
                    super::log(&format!("download {}: source {source} is corrupt: {why}", self.name));
                    self.plan.drop_source(source, DropReason::Corrupt);
                    self.stop_worker(source).await;
                    self.forget_source(source);
                    self.notes.insert(source, why);
                    return Ok(());
                }
                self.idle.push((source, next));
                if self.queued.remove(&source).is_some() {
                    self.note(source, "serving", "served us after a wait in its queue".into());
                }
                match self.plan.complete(source, index, now) {
                    Completion::Accepted { revoked } => {
                        for loser in revoked {
                            self.stop_worker(loser).await;
                        }
                        // The worker's next request goes out while this chunk is written.
                        self.serve_idle(now);
                        self.write_chunk(index, data).await?;
                    }
                    Completion::Discarded => {}
                }
            }
            WorkerEvent::Queued { source, ticket } => {
                // Its chunk goes to others while it waits for its turn.
                self.plan.release(source);
                let since = self.queued.get(&source).map_or(now, |(_, since)| *since);
                let length = ticket.length.map(|l| format!(" of {l}")).unwrap_or_default();
                let why = format!(
                    "queued at position {}{length}, asking again in {} s",
                    ticket.position,
                    ticket.retry.as_secs()
                );
                self.queued.insert(source, (ticket, since));
                self.note(source, "queued", why);
            }
            WorkerEvent::Learned { addrs } => {
                for addr in addrs {
                    self.plan.add_source(addr);
                }
            }
            WorkerEvent::Failed { source, addrs } => {
                for urn in &self.urns {
                    self.alt.apply_nalt(urn, *source.ip(), &addrs);
                }
            }
            WorkerEvent::Available { source, ranges } => self.plan.set_available(source, ranges),
            WorkerEvent::Ended { source, end } => {
                self.workers.remove(&source);
                self.idle.retain(|(s, _)| *s != source);
                self.queued.remove(&source);
                match end {
                    WorkerEnd::Stopped => self.plan.release(source),
                    WorkerEnd::Failed(why) => {
                        if self.plan.failed(source) {
                            self.forget_source(source);
                            self.note(source, "dropped", why);
                        } else {
                            // Never again at once: a source that fails is
                            // left alone longer each time.
                            let errors = self.plan.source(source).map_or(1, |s| s.errors);
                            let delay = parq::retry_delay(errors);
                            self.plan.busy(source, now + delay, now);
                            self.note(source, "failed", format!("{why}; trying again in {} s", delay.as_secs()));
                        }
                    }
                    WorkerEnd::Busy(after, why) => {
                        self.plan.busy(source, now + after, now);
                        self.note(source, "busy", format!("{why}, asking again in {} s", after.as_secs()));
                    }
                    WorkerEnd::NotFound(why) => {
                        self.plan.drop_source(source, DropReason::NotFound);
                        self.forget_source(source);
                        self.note(source, "dropped", why);
                    }
                }
            }
        }
        Ok(())
    }

    /// Fetches the tree of a download whose root is trusted, asking the
    /// sources not yet asked one after the other until one gives it, before
    /// any chunk is fetched; a tree whose segments do not divide the chunks
    /// cannot check them and is not kept.
    async fn fetch_tree(&mut self, now: Instant) {
        let Some(root) = self.root.filter(|_| self.tree.is_none()) else { return };
        let untried: Vec<SocketAddrV4> =
            self.plan.candidates(now).into_iter().filter(|s| !self.tree_asked.contains(s)).collect();
        for source in untried {
            self.tree_asked.push(source);
            let (size, timeout) = (self.plan.size(), self.config.io_timeout);
            let (local, agent) = (self.config.local, &self.config.user_agent);
            match super::tree::fetch(source, self.key, size, root, (timeout, local), agent).await {
                Ok(tree) if self.plan.chunk_size().is_multiple_of(tree.segment_size()) => {
                    self.offer_partial(root, &tree);
                    self.unchecked = self.plan.resumed_chunks();
                    self.tree = Some(Arc::new(tree));
                    self.published.lock().unwrap_or_else(PoisonError::into_inner).tth = Some(root);
                    return;
                }
                Ok(tree) => super::log(&format!(
                    "download {}: the tree from {source} has segments of {} bytes, too coarse to check chunks",
                    self.name,
                    tree.segment_size()
                )),
                Err(why) => super::log(&format!("download {}: no tree from {source}: {why}", self.name)),
            }
        }
    }

    /// Offers the chunks checked against the tree from now on to other
    /// downloaders of the file (partial file sharing), when it is named by
    /// both URNs, as uploads name every file.
    fn offer_partial(&self, root: Root, tree: &Tree) {
        let sha1 = self.urns.iter().find(|u| matches!(u, Urn::Sha1(_)));
        let sha256 = self.urns.iter().find(|u| matches!(u, Urn::Sha256(_)));
        if let (Some(&sha1), Some(&sha256)) = (sha1, sha256) {
            let path = self.part.path().to_path_buf();
            let thex = Arc::new(search::thex::dime::serialize(tree));
            // Its signature goes with it, so that partial results carry it.
            let signature = self.signature.as_deref().map(|s| search::Sidecar::parse(s.to_text().as_bytes()));
            self.config.partial.offer(&self.name, path, self.plan.size(), (sha1, sha256), (root, thex), signature);
        }
    }

    /// Checks a batch of the chunks from before a restart against the tree
    /// (read back from the `.part`): those that match are offered to
    /// others, as if fetched now; one that does not (the disk lost it) is
    /// fetched again.
    async fn check_resumed(&mut self) -> Result<(), DiskError> {
        let Some(tree) = self.tree.clone().filter(|_| !self.unchecked.is_empty()) else { return Ok(()) };
        let batch: Vec<(usize, u64, u64)> = self
            .unchecked
            .drain(..self.unchecked.len().min(RESUMED_CHECK_BATCH))
            .map(|index| (index, self.plan.chunk(index).start, self.plan.chunk(index).len()))
            .collect();
        let path = self.part.path().to_path_buf();
        let verdicts = task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let file = std::fs::File::open(&path).map_err(|e| DiskError::new("read", &path, e))?;
            let mut buffer = Vec::new();
            batch
                .into_iter()
                .map(|(index, start, len)| {
                    buffer.resize(len as usize, 0);
                    file.read_exact_at(&mut buffer, start).map_err(|e| DiskError::new("read", &path, e))?;
                    Ok((index, tree.check(start, &buffer).is_ok()))
                })
                .collect::<Result<Vec<_>, DiskError>>()
        })
        .await?;
        let mut lost = 0;
        for (index, good) in verdicts {
            let chunk = self.plan.chunk(index);
            if good {
                self.config.partial.add_verified(&self.key, chunk.start, chunk.end);
            } else {
                self.plan.mark_missing(index);
                lost += 1;
            }
        }
        if lost > 0 {
            super::log(&format!(
                "download {}: {} from before the restart did not match the tree, fetched again",
                self.name,
                crate::cli::plural(lost, "chunk")
            ));
            // The state file stops claiming them at the next commit.
            self.unsynced += 1;
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Checks a chunk against the tree, if there is one (off the driver's
    /// thread: hashing a chunk takes a few milliseconds).
    async fn check_chunk(&self, index: usize, data: Vec<u8>) -> (Vec<u8>, Result<(), String>) {
        let Some(tree) = self.tree.clone() else { return (data, Ok(())) };
        let chunk = self.plan.chunk(index);
        task::spawn_blocking(move || {
            let verdict = tree.check(chunk.start, &data).map_err(|bad| {
                format!("bytes {}..{} do not match the Tiger tree of the signed root", bad.start, bad.end)
            });
            (data, verdict)
        })
        .await
    }

    /// Several sources delivered a file that failed verification and no
    /// tree tells which lied: remembers what each delivered, and has the
    /// chunks of one not yet suspected fetched again from the others. False
    /// when one source (or none new) is left to suspect.
    async fn refetch_a_suspect(&mut self, why: &str) -> Result<bool, DiskError> {
        let mut by: Vec<SocketAddrV4> = Vec::new();
        for index in 0..self.plan.chunk_count() {
            if let Some(source) = self.plan.deliverer(index).filter(|s| !by.contains(s)) {
                by.push(source);
            }
        }
        let Some(suspect) = by.iter().copied().find(|s| !self.suspected.contains(s)).filter(|_| by.len() > 1) else {
            return Ok(false);
        };
        let chunks: Vec<(usize, SocketAddrV4)> =
            (0..self.plan.chunk_count()).filter_map(|i| self.plan.deliverer(i).map(|s| (i, s))).collect();
        let digests = self.chunk_digests(chunks.iter().map(|&(index, _)| index).collect()).await?;
        self.delivered.extend(chunks.iter().zip(digests).map(|(&(index, source), digest)| (index, source, digest)));
        self.suspected.push(suspect);
        let refetched = self.plan.refetch_elsewhere(suspect);
        super::log(&format!(
            "download {}: verification failed ({why}); fetching the {} chunks {suspect} sent again from other sources",
            self.name,
            refetched.len()
        ));
        self.save_state().await?;
        Ok(true)
    }

    /// The file verified: every source that had delivered other bytes for a
    /// chunk than the verified ones lied, and is dropped as corrupt.
    async fn blame_liars(&mut self) -> Result<(), DiskError> {
        let delivered = std::mem::take(&mut self.delivered);
        let genuine = self.chunk_digests(delivered.iter().map(|&(index, _, _)| index).collect()).await?;
        for (&(index, source, digest), genuine) in delivered.iter().zip(genuine) {
            let known = self.plan.source(source).map(|s| s.standing);
            if digest == genuine || known == Some(Standing::Dropped(DropReason::Corrupt)) {
                continue;
            }
            let range = self.plan.chunk(index);
            let why = format!("bytes {}..{} differ from the verified file", range.start, range.end);
            super::log(&format!("download {}: source {source} is corrupt: {why}", self.name));
            self.plan.drop_source(source, DropReason::Corrupt);
            self.forget_source(source);
            self.notes.insert(source, why);
        }
        Ok(())
    }

    /// The SHA-256 of each of these chunks of the `.part`.
    async fn chunk_digests(&self, chunks: Vec<usize>) -> Result<Vec<[u8; 32]>, DiskError> {
        use sha2::Digest;
        use std::os::unix::fs::FileExt;
        let ranges: Vec<(u64, u64)> =
            chunks.iter().map(|&i| (self.plan.chunk(i).start, self.plan.chunk(i).len())).collect();
        let (path, chunk_size) = (self.part.path().to_path_buf(), self.plan.chunk_size());
        task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| DiskError::new("read", &path, e))?;
            let mut buffer = vec![0; chunk_size as usize];
            ranges
                .into_iter()
                .map(|(start, len)| {
                    let bytes = &mut buffer[..len as usize];
                    file.read_exact_at(bytes, start).map_err(|e| DiskError::new("read", &path, e))?;
                    Ok(sha2::Sha256::digest(bytes).into())
                })
                .collect()
        })
        .await
    }

    /// Answers the workers waiting for a chunk, where the plan has one.
    fn serve_idle(&mut self, now: Instant) {
        let waiting = std::mem::take(&mut self.idle);
        for (source, reply) in waiting {
            let assignment = match self.plan.next_for(source, now) {
                Next::Idle => {
                    self.idle.push((source, reply));
                    continue;
                }
                Next::Fetch(chunk) => Assignment::Fetch { chunk, alt: self.alt_for(source) },
                Next::Parked(_) | Next::Dropped | Next::Complete => Assignment::Stop,
            };
            if reply.send(assignment).is_err() {
                self.plan.release(source);
            }
        }
    }

    /// Other sources to name in a request to `source`: good ones (those
    /// reached by PUSH apart), and failed ones.
    fn alt_for(&self, source: SocketAddrV4) -> Locations {
        let mut locations = Locations::default();
        let others = self.plan.sources().iter().filter(|s| s.addr != source);
        for other in others {
            match other.standing {
                Standing::Usable if other.delivered > 0 => match self.firewalled_location(other.addr) {
                    Some(location) if locations.firewalled.len() < ALT_IN_REQUEST => {
                        locations.firewalled.push(location)
                    }
                    Some(_) => {}
                    None if locations.direct.len() < ALT_IN_REQUEST => locations.direct.push(other.addr),
                    None => {}
                },
                Standing::Dropped(_) if locations.failed.len() < ALT_IN_REQUEST && !is_push_only(other.addr) => {
                    locations.failed.push(other.addr)
                }
                _ => {}
            }
        }
        locations
    }

    /// `source` as a firewalled location, when it is reached by PUSH.
    fn firewalled_location(&self, source: SocketAddrV4) -> Option<FirewalledLocation> {
        self.config.pushes.as_ref().and_then(|pushes| pushes.location(source))
    }

    /// Starts workers for the best usable sources, up to the limit.
    fn spawn_workers(&mut self, now: Instant) {
        for source in self.plan.candidates(now) {
            if self.workers.len() >= self.config.max_sources_per_download {
                break;
            }
            if self.workers.contains_key(&source) {
                continue;
            }
            self.next_serial += 1;
            let serial = self.next_serial;
            let job = Job {
                urn: self.key,
                size: self.plan.size(),
                io_timeout: self.config.io_timeout,
                user_agent: self.config.user_agent.clone(),
                pushes: self.config.pushes.clone(),
                rate: self.config.rate.clone(),
                // Our address as advertised now, so that sources pass us on.
                x_node: self.config.partial.x_node().map(|addr| addr.to_string()),
                local: self.config.local,
                dial: self.config.dial_rule(),
            };
            let reporter = Reporter { serial, events: self.worker_tx.clone() };
            let handle = task::spawn(fetch::run(source, job, reporter));
            self.workers.insert(source, Worker { serial, handle });
        }
    }

    async fn stop_worker(&mut self, source: SocketAddrV4) {
        self.idle.retain(|(s, _)| *s != source);
        if let Some(worker) = self.workers.remove(&source) {
            worker.handle.cancel().await;
        }
        self.plan.release(source);
    }

    async fn stop_workers(&mut self) {
        let sources: Vec<SocketAddrV4> = self.workers.keys().copied().collect();
        for source in sources {
            self.stop_worker(source).await;
        }
    }

    /// Records why `source` stands where it does now, for people, and logs it.
    fn note(&mut self, source: SocketAddrV4, state: &str, why: String) {
        super::log(&format!("download {} ({}): source {source} {state}: {why}", self.id, self.name));
        self.notes.insert(source, why);
    }

    /// A source that failed for good leaves the mesh we tell others about,
    /// and is told as failed (`X-Nalt`).
    fn forget_source(&self, source: SocketAddrV4) {
        for urn in &self.urns {
            self.alt.failed(*urn, source);
        }
    }

    /// Writes an accepted chunk; it is counted in the state file at the
    /// next [`Driver::commit`].
    async fn write_chunk(&mut self, index: usize, data: Vec<u8>) -> Result<(), DiskError> {
        let part = self.part.clone();
        let chunk = self.plan.chunk(index);
        task::spawn_blocking(move || part.write(chunk.start, &data)).await?;
        // With a tree, every chunk was checked against it before it was
        // accepted (the tree is never dropped once held): offer it.
        if self.tree.is_some() {
            self.config.partial.add_verified(&self.key, chunk.start, chunk.end);
        }
        self.unsynced += 1;
        self.unsynced_since.get_or_insert_with(Instant::now);
        if self.unsynced >= SYNC_EVERY_CHUNKS {
            self.commit(false).await?;
        }
        Ok(())
    }

    /// Syncs the written chunks to disk, then counts them in the state
    /// file: in this order, the state never claims bytes a crash could
    /// lose. The sync runs in the background while chunks keep arriving,
    /// one at a time (the previous one is awaited first), unless `wait`.
    async fn commit(&mut self, wait: bool) -> Result<(), DiskError> {
        if let Some(previous) = self.committing.take() {
            previous.await?;
        }
        if self.unsynced == 0 {
            return Ok(());
        }
        // Every chunk the plan counts done has been written by now (chunks
        // are written as soon as they are accepted), so this sync covers
        // all that this state claims; chunks written during the sync wait
        // for the next one.
        let (part, partial, state) = (self.part.clone(), self.partial.clone(), self.state());
        let commit = task::spawn_blocking(move || {
            part.sync()?;
            partial.save(&state)
        });
        self.unsynced = 0;
        self.unsynced_since = None;
        if wait {
            commit.await
        } else {
            self.committing = Some(commit);
            Ok(())
        }
    }

    /// Takes a signature a hit carried when the download has none, or when
    /// it judges better than the one it has against what is known of the
    /// content (a fake or worse one offered is ignored, so a stranger's
    /// hit cannot make a genuine file fake). Saved at once: a restart keeps it.
    async fn offer_signature(&mut self, offered: Arc<Minisig>) -> Result<(), DiskError> {
        let sha256 = self.urns.iter().find_map(|u| match u {
            Urn::Sha256(digest) => Some(*digest),
            Urn::Sha1(_) => None,
        });
        let content = Content { size: self.plan.size(), sha256, tth: None };
        let better = {
            let trust = self.trust.read();
            let current = trust.judge(self.signature.as_deref(), content).verdict;
            let judged = trust.judge(Some(&offered), content);
            (judged.verdict > current).then_some(judged)
        };
        let Some(judged) = better else { return Ok(()) };
        super::log(&format!(
            "download {} ({}): takes the signature a hit carried ({}{})",
            self.id,
            self.name,
            judged.verdict,
            judged.publisher.map(|k| format!(" by {k}")).unwrap_or_default()
        ));
        self.signature = Some(offered);
        self.signature_from_hit = true;
        self.save_state().await
    }

    /// What the state file says now.
    fn state(&self) -> PartialDownload {
        let sources = self.plan.sources().iter().filter(|s| !matches!(s.standing, Standing::Dropped(_)));
        let sources = sources.map(|s| s.addr).collect();
        let mut state = PartialDownload::new(self.urns.clone(), self.name.clone(), self.plan.size(), sources);
        state.done = self.plan.done_ranges();
        state.signature = self.signature.as_ref().map(|s| s.to_text());
        state.keep = self.keep;
        state
    }

    async fn save_state(&self) -> Result<(), DiskError> {
        let (partial, state) = (self.partial.clone(), self.state());
        task::spawn_blocking(move || partial.save(&state)).await
    }

    /// Verifies the complete file and moves it into place; `None` when it
    /// failed verification and the download goes on from other sources.
    async fn finish(&mut self) -> Option<Outcome> {
        self.publish(DownloadState::Verifying, Instant::now());
        let (part, trust, signature) = (self.part.clone(), self.trust.clone(), self.signature.clone());
        let sync_and_check = move || {
            part.sync()?;
            finish::check(part.path(), &trust.read(), signature.as_deref())
        };
        let (digests, len, judgement) = match task::spawn_blocking(sync_and_check).await {
            Ok(result) => result,
            Err(e) => return Some(Outcome::Failed(e.to_string())),
        };
        if let Some(why) = finish::mismatch(&self.urns, &digests, len, self.plan.size()) {
            return self.discard(why).await;
        }
        if let Err(e) = self.blame_liars().await {
            return Some(Outcome::Failed(e.to_string()));
        }
        self.publish(DownloadState::Verifying, Instant::now());
        // A signature a stranger's hit brought that does not sign these
        // bytes says nothing about them: they stand as if unsigned, rather
        // than a genuine file being thrown away as a fake.
        let judgement = if judgement.verdict == Verdict::Fake && self.signature_from_hit {
            let why = &judgement.reason;
            super::log(&format!(
                "download {} ({}): the signature a hit carried is not this file's: {why}",
                self.id, self.name
            ));
            self.signature = None;
            Judgement::unsigned()
        } else {
            judgement
        };
        if let Some(why) = refusal(&judgement, self.keep) {
            return Some(self.reject(why).await);
        }
        {
            let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
            published.judgement = Some(judgement.clone());
            // Both are known now, whichever the request named.
            published.sha1 = Some(digests.sha1_urn());
            published.sha256 = Some(digests.sha256_urn());
            published.tth = Some(digests.tth);
        }
        let (part_path, dir) = (self.part.path().to_path_buf(), self.config.downloads_dir.clone());
        let name = finish::safe_name(&self.name, &self.key.base32());
        let size = self.plan.size();
        let signature = self.signature.as_ref().filter(|_| judgement.verdict != Verdict::Fake).map(|s| s.to_text());
        let (verified, trust) = (judgement.verdict == Verdict::Verified, self.trust.clone());
        let placed = task::spawn_blocking(move || {
            // A verified file takes its name from one that is not verified.
            let displaces = |holder: &Path| verified && !finish::is_verified(holder, &trust.read());
            let path = finish::place(&part_path, &dir, &name, &digests, size, displaces)?;
            // The signature travels on with the file it signs.
            if let Some(text) = signature {
                finish::place_signature(&path, &text)?;
            }
            Ok::<_, DiskError>(path)
        })
        .await;
        let path = match placed {
            Ok(path) => path,
            Err(e) => return Some(Outcome::Failed(e.to_string())),
        };
        let (partial, key) = (self.partial.clone(), self.key);
        if let Err(e) = task::spawn_blocking(move || partial.remove(&key)).await {
            return Some(Outcome::Failed(format!("{} is complete, but {e}", path.display())));
        }
        let urns = [digests.sha1_urn(), digests.sha256_urn()];
        let good = self.plan.sources().iter().filter(|s| s.delivered > 0 && s.standing == Standing::Usable);
        for source in good {
            let firewalled = self.firewalled_location(source.addr);
            for urn in urns {
                match &firewalled {
                    Some(location) => self.alt.add_firewalled(urn, location.clone()),
                    None => self.alt.add(urn, source.addr),
                }
            }
        }
        Some(Outcome::Complete(path))
    }

    /// The bytes are what their URNs say but must not be kept (a fake, or
    /// not verified when only verified files are): every other source has
    /// the same bytes, so the download ends, and nothing of it is left.
    async fn reject(&mut self, why: String) -> Outcome {
        let sources: Vec<SocketAddrV4> = self.plan.sources().iter().map(|s| s.addr).collect();
        for urn in &self.urns {
            for &source in &sources {
                self.alt.remove(urn, source);
            }
        }
        let (partial, key) = (self.partial.clone(), self.key);
        if let Err(e) = task::spawn_blocking(move || partial.remove(&key)).await {
            return Outcome::Failed(format!("{why}; and {e}"));
        }
        Outcome::Failed(why)
    }

    /// The bytes do not match the URNs: throw them away, drop whoever
    /// served them, and go on with the others (a few times at most).
    async fn discard(&mut self, why: String) -> Option<Outcome> {
        // What was offered is in doubt now.
        self.config.partial.withdraw(&self.key);
        self.verify_attempts += 1;
        if self.verify_attempts < MAX_VERIFY_ATTEMPTS {
            match self.refetch_a_suspect(&why).await {
                Ok(true) => return None,
                Ok(false) => {}
                Err(e) => return Some(Outcome::Failed(e.to_string())),
            }
        }
        let culprits = self.plan.discard_all();
        for &source in &culprits {
            self.forget_source(source);
            self.note(source, "corrupt", format!("served data that failed verification: {why}"));
        }
        let part = self.part.clone();
        if let Err(e) = task::spawn_blocking(move || part.clear()).await {
            return Some(Outcome::Failed(e.to_string()));
        }
        if let Err(e) = self.save_state().await {
            return Some(Outcome::Failed(e.to_string()));
        }
        if self.verify_attempts >= MAX_VERIFY_ATTEMPTS {
            return Some(Outcome::Failed(format!("verification failed {} times, last: {why}", self.verify_attempts)));
        }
        None
    }

    /// A reason to fail, once no source has been usable for too long.
    fn given_up(&mut self, now: Instant) -> Option<String> {
        let stuck = self.workers.is_empty() && self.plan.next_unpark().is_none();
        if !stuck {
            self.sourceless_since = None;
            return None;
        }
        let since = *self.sourceless_since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.config.give_up_after {
            return None;
        }
        let fates: Vec<String> = self
            .plan
            .sources()
            .iter()
            .map(|s| match self.notes.get(&s.addr) {
                Some(note) => format!("{}: {note}", s.addr),
                None => s.addr.to_string(),
            })
            .collect();
        Some(if fates.is_empty() {
            "no source to download from".to_string()
        } else {
            format!("no usable source left ({})", fates.join("; "))
        })
    }

    fn sample_rate(&mut self, now: Instant) {
        self.rate_samples.push_back((now, self.received));
        while self.rate_samples.len() > RATE_SAMPLES {
            self.rate_samples.pop_front();
        }
    }

    fn rate(&self) -> f64 {
        match (self.rate_samples.front(), self.rate_samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0).as_secs_f64(),
            _ => 0.0,
        }
    }

    fn publish(&mut self, state: DownloadState, now: Instant) {
        let sources: Vec<SourceSnapshot> = self
            .plan
            .sources()
            .iter()
            .map(|s| {
                let running = self.workers.contains_key(&s.addr);
                let state = match s.standing {
                    Standing::Dropped(DropReason::Corrupt) => SourceState::Corrupt,
                    Standing::Dropped(_) => SourceState::Dropped,
                    Standing::Parked(until) if until > now => SourceState::Busy,
                    _ if self.queued.contains_key(&s.addr) => SourceState::Queued,
                    _ if running && self.plan.claim_of(s.addr).is_some() => SourceState::Downloading,
                    _ if running => SourceState::Idle,
                    _ => SourceState::Waiting,
                };
                let note = match s.standing {
                    Standing::Dropped(reason) => {
                        Some(self.notes.get(&s.addr).map_or_else(|| reason.to_string(), |n| format!("{reason}: {n}")))
                    }
                    _ => self.notes.get(&s.addr).cloned(),
                };
                SourceSnapshot {
                    addr: s.addr,
                    state,
                    rate_bytes_per_sec: s.rate,
                    bytes: s.delivered,
                    errors: s.errors,
                    note,
                }
            })
            .collect();
        let state = match state {
            DownloadState::Downloading => self.stalled_or_downloading(&sources, now),
            state => state,
        };
        let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
        published.id = self.id;
        published.name = self.name.clone();
        published.state = state;
        published.bytes_done = self.plan.bytes_done();
        published.bytes_in_flight = self.plan.bytes_in_flight();
        published.rate_bytes_per_sec = self.rate();
        published.sources = sources;
    }
}

impl Driver {
    /// `Stalled` once no source has held a chunk for the configured time
    /// (logged once each time it stalls), else `Downloading`.
    fn stalled_or_downloading(&mut self, sources: &[SourceSnapshot], now: Instant) -> DownloadState {
        let fetching = self.workers.keys().any(|&source| self.plan.claim_of(source).is_some());
        if fetching {
            self.idle_since = None;
        }
        let idle = now.saturating_duration_since(*self.idle_since.get_or_insert(now));
        if fetching || idle < self.config.stall_after {
            if self.stalled {
                self.stalled = false;
                super::log(&format!("download {} ({}): fetching again", self.id, self.name));
            }
            return DownloadState::Downloading;
        }
        let reason = stall::reason(sources, idle);
        if !self.stalled {
            self.stalled = true;
            super::warn(&format!("download {} ({}) stalled: {reason}", self.id, self.name));
        }
        DownloadState::Stalled { reason }
    }
}

/// Why verified bytes must still not be kept, if they must not.
fn refusal(judgement: &Judgement, keep: Keep) -> Option<String> {
    match judgement.verdict {
        Verdict::Fake => Some(format!("fake: {}", judgement.reason)),
        Verdict::Verified => None,
        verdict if keep == Keep::Verified => Some(format!("{verdict}, not verified: {}", judgement.reason)),
        _ => None,
    }
}

/// The Tiger tree root in `signature`'s trusted comment, if a trusted
/// publisher signed it for this content (its size and `urn:sha256:`): only
/// such a root may condemn a source's chunks.
fn signed_root(trust: &SharedTrust, signature: &Minisig, content: Content) -> Option<Root> {
    let judgement = trust.read().judge(Some(signature), content);
    if judgement.verdict != Verdict::Verified {
        return None;
    }
    Release::parse(signature.trusted_comment()).ok()?.tth
}
