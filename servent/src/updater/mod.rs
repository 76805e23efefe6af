//! The auto-updater: newer signed releases of what is installed, found on
//! the network, verified, installed atomically, and shared on.
//!
//! One *pass* looks at every installed package: it searches the network by
//! the package's name, keeps only results `verified` under a pinned key
//! whose signed name is the package's ([`choose`]), downloads the newest
//! acceptable one from all its sources (kept only if the bytes verify),
//! stages it, runs the post-install hook on the staged file if there is
//! one (a failure or a hang drops it, the installed version untouched),
//! installs it ([`install`]: staged, synced, renamed, with the previous
//! version kept), and reports a [`Decision`] per package. The install
//! directory is one of the servent's shared folders: every installed
//! release is shared on, signature beside it.
//!
//! Passes run one at a time; a second one asked for meanwhile is refused
//! with [`UpdateError::Busy`]. This module is the async edge (it drives the
//! [`NodeHandle`]); the decisions and the file handling it calls are plain
//! functions, tested without sockets.

pub mod choose;
pub mod install;
pub use signing_tool::version;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_std::task;
use serde::Serialize;

use signing_tool::rotation::{Rotation, MAX_ROTATION_FILE_BYTES, ROTATION_KEYWORD};
use signing_tool::{KeyId, PublicKey};

use self::choose::{choose, other_key_offers_newer, Candidate, Choice};
use self::install::{hex, InstallDir, InstallError, Installed, Package};
use self::version::Version;
use crate::node::{NodeError, NodeHandle};
use crate::transfer::download::{DownloadState, Keep};
use crate::trust::Verdict;
use crate::wire::Guid;

/// How long a post-install hook may run by default.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a pass gathers search results for each package by default.
pub const SEARCH_WAIT: Duration = Duration::from_secs(10);
/// How long a pass waits for one download by default.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);
/// Rotation records of one key tried per package and pass at most.
const MAX_ROTATION_RECORDS: usize = 4;
/// How long fetching one rotation record (a file of a few hundred bytes) may take.
const ROTATION_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// How the updater works.
#[derive(Clone, Debug)]
pub struct UpdaterConfig {
    /// Where releases are installed (and shared from).
    pub install_dir: PathBuf,
    /// A shell command run after each install, with `SERVENT_NAME`,
    /// `SERVENT_VERSION`, `SERVENT_PATH` and `SERVENT_PREVIOUS_VERSION` set.
    pub post_install: Option<String>,
    /// How long the hook may run before it counts as failed.
    pub hook_timeout: Duration,
    /// How long each search gathers results.
    pub search_wait: Duration,
    /// How long one download may take.
    pub download_timeout: Duration,
}

impl UpdaterConfig {
    /// The defaults, installing into `install_dir`.
    pub fn new(install_dir: PathBuf) -> UpdaterConfig {
        UpdaterConfig {
            install_dir,
            post_install: None,
            hook_timeout: HOOK_TIMEOUT,
            search_wait: SEARCH_WAIT,
            download_timeout: DOWNLOAD_TIMEOUT,
        }
    }
}

/// What a pass did, or would do, about one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The package.
    pub name: String,
    /// The version installed before, if any.
    pub from: Option<String>,
    /// The version installed (or that would be), if any.
    pub to: Option<String>,
    /// What happened.
    pub action: Action,
    /// Why, in a sentence.
    pub reason: String,
    /// The newest verified version seen on the network.
    pub newest_seen: Option<String>,
    /// When that one was signed (seconds since the Unix epoch).
    pub newest_signed_at: Option<u64>,
    /// How old that signature is, in seconds: a network that only ever shows
    /// old releases may be hiding new ones (a freeze attack).
    pub newest_age_secs: Option<u64>,
}

/// What happened to a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new version is installed.
    Installed,
    /// A new version would be installed (dry run).
    WouldInstall,
    /// Nothing to do.
    UpToDate,
    /// Nothing installed of that name, and no verified release of it found.
    NotFound,
    /// A newer release was seen and refused.
    Refused,
    /// A newer release is signed by another key than the installed one's,
    /// and no rotation record of the installed one's key allows it.
    KeyChanged,
    /// The new version failed to arrive or to install; the old one stays.
    Failed,
    /// The previous version is back.
    RolledBack,
    /// A rollback of a rollback: the newer version is back.
    RolledForward,
    /// The package is removed, and no longer shared.
    Uninstalled,
}

/// One pass over every installed package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// When it ended (seconds since the Unix epoch).
    pub at: u64,
    /// Whether it changed nothing by design.
    pub dry_run: bool,
    /// One per package.
    pub decisions: Vec<Decision>,
}

/// The updater as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct UpdaterStatus {
    /// The install directory.
    pub install_dir: PathBuf,
    /// What is installed.
    pub installed: Vec<Installed>,
    /// The last pass, if any since start.
    pub last_pass: Option<PassReport>,
    /// Whether a pass is running now.
    pub running: bool,
    /// Minutes between periodic passes, when they are on.
    pub every_minutes: Option<u64>,
}

/// Why the updater could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Another pass (or install, or rollback) is under way.
    #[error("an update pass is already running; try again when it is over")]
    Busy,
    /// The install directory refused.
    #[error("{0}")]
    Install(#[from] InstallError),
    /// The servent refused or has stopped.
    #[error("{0}")]
    Node(#[from] NodeError),
}

/// The updater of a running servent: cheap to clone.
#[derive(Clone)]
pub struct Updater {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeHandle,
    config: UpdaterConfig,
    /// Held for whole installs: read it only within a pass.
    install: Mutex<InstallDir>,
    /// What is installed, as of the last change: what status shows.
    installed: Mutex<Vec<Installed>>,
    busy: Mutex<bool>,
    last: Mutex<Option<PassReport>>,
    every: Mutex<Option<Duration>>,
}

/// Clears the busy flag when a pass ends, however it ends.
struct BusyGuard<'a>(&'a Mutex<bool>);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }
}

impl Updater {
    /// Opens the install directory (recovering from a crash mid-install) and
    /// makes the updater of `node`, which should share that directory.
    pub fn open(node: NodeHandle, config: UpdaterConfig) -> Result<Updater, UpdateError> {
        let install = InstallDir::open(&config.install_dir)?;
        let inner = Inner {
            node,
            config,
            installed: Mutex::new(install.packages().to_vec()),
            install: Mutex::new(install),
            busy: Mutex::new(false),
            last: Mutex::new(None),
            every: Mutex::new(None),
        };
        Ok(Updater { inner: Arc::new(inner) })
    }

    /// What is installed and what the last pass did.
    pub fn status(&self) -> UpdaterStatus {
        let inner = &self.inner;
        UpdaterStatus {
            install_dir: inner.config.install_dir.clone(),
            installed: lock(&inner.installed).clone(),
            last_pass: lock(&inner.last).clone(),
            running: *lock(&inner.busy),
            every_minutes: lock(&inner.every).map(|d| d.as_secs() / 60),
        }
    }

    fn start_work(&self) -> Result<BusyGuard<'_>, UpdateError> {
        let mut busy = lock(&self.inner.busy);
        if *busy {
            return Err(UpdateError::Busy);
        }
        *busy = true;
        Ok(BusyGuard(&self.inner.busy))
    }

    /// One pass over every installed package; `dry_run` changes nothing.
    pub async fn pass(&self, dry_run: bool) -> Result<PassReport, UpdateError> {
        let _busy = self.start_work()?;
        let names: Vec<String> = lock(&self.inner.install).packages().iter().map(|p| p.current.name.clone()).collect();
        let mut decisions = Vec::with_capacity(names.len());
        for name in names {
            decisions.push(self.update(&name, dry_run, false).await);
        }
        let report = PassReport { at: unix_now(), dry_run, decisions };
        *lock(&self.inner.last) = Some(report.clone());
        Ok(report)
    }

    /// Installs the newest verified release of `name` (installed or not,
    /// held back or not).
    pub async fn install(&self, name: &str, dry_run: bool) -> Result<Decision, UpdateError> {
        let _busy = self.start_work()?;
        Ok(self.update(name, dry_run, true).await)
    }

    /// Puts the previous version of `name` back.
    pub async fn rollback(&self, name: &str) -> Result<Decision, UpdateError> {
        let _busy = self.start_work()?;
        let inner = self.inner.clone();
        let owned = name.to_owned();
        let (from, to) = task::spawn_blocking(move || lock(&inner.install).rollback(&owned)).await?;
        self.changed();
        let forward =
            matches!((from.version.parse::<Version>(), to.version.parse::<Version>()), (Ok(f), Ok(t)) if t > f);
        let (action, what) = match forward {
            true => (Action::RolledForward, format!("rolled forward to {}, the version rolled back from", to.version)),
            false => (Action::RolledBack, format!("rolled back to {}", to.version)),
        };
        Ok(Decision {
            action,
            reason: format!("{what}; {} is held back from now on; `install {name}` brings it back", from.version),
            ..decision(name, Some(&from), Some(to.version))
        })
    }

    /// Removes the installed package `name` (its file, its signature, the
    /// previous version kept) and stops sharing it.
    pub async fn uninstall(&self, name: &str) -> Result<Decision, UpdateError> {
        let _busy = self.start_work()?;
        let inner = self.inner.clone();
        let owned = name.to_owned();
        let removed = task::spawn_blocking(move || lock(&inner.install).uninstall(&owned)).await?;
        self.changed();
        Ok(Decision {
            action: Action::Uninstalled,
            reason: format!("{name} {} removed; it is no longer shared", removed.current.version),
            ..decision(name, Some(&removed.current), None)
        })
    }

    /// Runs a pass every `every` (a tenth more or less, so that servents
    /// started together do not search together), for as long as the servent runs.
    pub fn spawn_every(&self, every: Duration) -> task::JoinHandle<()> {
        *lock(&self.inner.every) = Some(every);
        let updater = self.clone();
        task::spawn(async move {
            loop {
                let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0.9..1.1);
                task::sleep(every.mul_f64(jitter)).await;
                match updater.pass(false).await {
                    Ok(report) => {
                        for d in report.decisions.iter().filter(|d| d.action != Action::UpToDate) {
                            log(&format!("update {}: {:?}: {}", d.name, d.action, d.reason));
                        }
                    }
                    Err(UpdateError::Node(NodeError::Stopped)) => return,
                    Err(e) => log::warn!("update pass: {e}"),
                }
            }
        })
    }

    /// The decision for one package, carried out unless `dry_run`.
    async fn update(&self, name: &str, dry_run: bool, explicit: bool) -> Decision {
        let installed = lock(&self.inner.install).get(name).cloned();
        let current = installed.as_ref().map(|i| &i.current);
        let (search, results) = match self.search(name).await {
            Ok(found) => found,
            Err(e) => return failed(name, current, format!("cannot search the network: {e}")),
        };
        let (mut choice, mut newest) = choose(name, installed.as_ref(), &results, explicit, &[]);
        let mut rotated = None;
        if let Some(bound) = installed.as_ref().filter(|i| other_key_offers_newer(name, i, &results)) {
            match self.find_rotation(name, bound.current.key_id, !dry_run).await {
                // A dry run changes nothing, the pinned keys included.
                Ok(rotation) if dry_run => {
                    let to = rotation.to.key_id();
                    return Decision {
                        action: Action::WouldInstall,
                        reason: format!("a rotation record of key {} hands {name} over to key {to}: a pass would pin that key and install its newest release", rotation.from),
                        ..decision(name, current, None)
                    };
                }
                Ok(rotation) => {
                    // The node judged the same results again when the new key was pinned.
                    let results = match self.results(search).await {
                        Ok(results) => results,
                        Err(e) => return failed(name, current, format!("cannot read the search's results: {e}")),
                    };
                    let new = rotation.to.key_id();
                    (choice, newest) = choose(name, installed.as_ref(), &results, explicit, &[new]);
                    rotated = Some(rotation);
                }
                Err(why) => {
                    choice = match choice {
                        Choice::KeyChanged(reason, keys) => Choice::KeyChanged(format!("{reason}; {why}"), keys),
                        // Not verified: no update was refused, but the user may want to know.
                        Choice::Keep(reason) => {
                            Choice::Keep(format!("{reason}; a newer {name} is signed by another key: {why}"))
                        }
                        other => other,
                    };
                }
            }
        }
        let mut decision = match choice {
            Choice::Keep(reason) => Decision { action: Action::UpToDate, reason, ..decision(name, current, None) },
            Choice::NotFound(reason) => Decision { action: Action::NotFound, reason, ..decision(name, current, None) },
            Choice::Refuse(reason) => Decision { action: Action::Refused, reason, ..decision(name, current, None) },
            Choice::KeyChanged(reason, _) => {
                Decision { action: Action::KeyChanged, reason, ..decision(name, current, None) }
            }
            Choice::Install(candidate) if dry_run => Decision {
                action: Action::WouldInstall,
                reason: format!("{} {} is verified and newer", candidate.release.name, candidate.version),
                ..decision(name, current, Some(candidate.release.version.clone()))
            },
            Choice::Install(candidate) => self.fetch_and_install(name, current, &candidate).await,
        };
        if let Some(rotation) = rotated {
            decision.reason = format!(
                "{} (key {} handed {name} over to key {} by a rotation record)",
                decision.reason,
                rotation.from,
                rotation.to.key_id()
            );
        }
        if let Some(newest) = newest {
            decision.newest_seen = Some(newest.release.version.clone());
            decision.newest_signed_at = Some(newest.release.timestamp);
            decision.newest_age_secs = Some(unix_now().saturating_sub(newest.release.timestamp));
        }
        decision
    }

    /// Looks on the network for a rotation record of key `bound` that hands
    /// `name` over, and, if `honour`, honours the first that verifies against
    /// that key (the new key is pinned for the names it hands over); or why none.
    async fn find_rotation(&self, name: &str, bound: Option<KeyId>, honour: bool) -> Result<Rotation, String> {
        let node = &self.inner.node;
        let from = bound.ok_or_else(|| format!("the installed {name} is bound to no readable key"))?;
        let Some(old) = node.pinned_key(from) else {
            return Err(format!("key {from} is not pinned any more, so no rotation record of it can be checked"));
        };
        let (_, results) = self.search(&Rotation::query(from)).await.map_err(|e| format!("cannot search: {e}"))?;
        let prefix = format!("{ROTATION_KEYWORD}-{from}-").to_ascii_lowercase();
        let records = results
            .iter()
            .filter(|r| r.name.to_ascii_lowercase().starts_with(&prefix) && r.size <= MAX_ROTATION_FILE_BYTES)
            .take(MAX_ROTATION_RECORDS);
        let mut refused = Vec::new();
        for record in records {
            match self.fetch_rotation(record, &old, name).await {
                Ok(rotation) if !honour => return Ok(rotation),
                Ok(rotation) => {
                    let entry = node.honour_rotation(&rotation).await.map_err(|e| e.to_string())?;
                    log(&format!("{}: key {} pinned for {}", record.name, entry.key_id, entry.scope.join(", ")));
                    return Ok(rotation);
                }
                Err(why) => {
                    log::warn!("rotation record {} refused: {why}", record.name);
                    refused.push(format!("{}: {why}", record.name));
                }
            }
        }
        Err(match refused.is_empty() {
            true => format!("no rotation record of key {from} found"),
            false => format!("rotation records refused: {}", refused.join("; ")),
        })
    }

    /// Downloads a rotation record and checks it against the old key `old` and the package `name`.
    async fn fetch_rotation(
        &self,
        record: &crate::searches::SearchResult,
        old: &PublicKey,
        name: &str,
    ) -> Result<Rotation, String> {
        let (Some(sha1), Some(signature)) = (record.sha1, record.signature.as_ref()) else {
            return Err("it carries no urn:sha1: or no signature".into());
        };
        // A record another key signed proves nothing: refused before a byte is fetched.
        if signature.key_id() != old.key_id() {
            let wrong = signing_tool::RotationError::WrongSigner { signer: signature.key_id(), expected: old.key_id() };
            return Err(wrong.to_string());
        }
        let node = &self.inner.node;
        let downloads = node.downloads().map_err(|e| e.to_string())?.clone();
        let id = node.download(&sha1.to_string(), Keep::NotFake).await.map_err(|e| e.to_string())?;
        let done = match async_std::future::timeout(ROTATION_DOWNLOAD_TIMEOUT, downloads.wait(id)).await {
            Ok(done) => done.map_err(|e| e.to_string())?,
            Err(_) => {
                let _ = downloads.cancel(id).await;
                return Err("its download took too long".into());
            }
        };
        let path = match (&done.state, done.path) {
            (DownloadState::Complete, Some(path)) => path,
            (state, _) => return Err(format!("its download ended {state:?}")),
        };
        let bytes = task::spawn_blocking(move || {
            let file = std::fs::File::open(path)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_ROTATION_FILE_BYTES + 1), &mut bytes)?;
            Ok::<_, std::io::Error>(bytes)
        })
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
        let rotation = Rotation::verify(old, signature, &bytes).map_err(|e| e.to_string())?;
        rotation.check_covers(name).map_err(|e| e.to_string())?;
        Ok(rotation)
    }

    /// Searches the network for `name` for the configured time: the search's id and its results.
    async fn search(&self, name: &str) -> Result<(Guid, Vec<crate::searches::SearchResult>), NodeError> {
        let id = self.inner.node.search(name, crate::routing::DEFAULT_MAX_TTL).await?;
        task::sleep(self.inner.config.search_wait).await;
        Ok((id, self.results(id).await?))
    }

    /// The results of search `id`, as the node judges them now.
    async fn results(&self, id: Guid) -> Result<Vec<crate::searches::SearchResult>, NodeError> {
        Ok(self.inner.node.search_results(id).await?.map(|s| s.results).unwrap_or_default())
    }

    async fn fetch_and_install(&self, name: &str, current: Option<&Package>, candidate: &Candidate) -> Decision {
        let to = candidate.release.version.clone();
        let fail = |why: String| failed(name, current, why);
        let (Some(sha1), Some(signature)) = (candidate.result.sha1, candidate.result.signature.as_ref()) else {
            return fail(format!("{to} has no urn:sha1: or signature to fetch it by"));
        };
        let node = &self.inner.node;
        let downloads = match node.downloads() {
            Ok(downloads) => downloads.clone(),
            Err(e) => return fail(e.to_string()),
        };
        // A verified download of these bytes still in the downloads folder
        // is installed as it is, not fetched a second time.
        let finished = downloads.list().await.unwrap_or_default().into_iter().rev().find(|d| {
            d.sha1 == Some(sha1)
                && d.state == DownloadState::Complete
                && d.judgement.as_ref().is_some_and(|j| j.verdict == Verdict::Verified)
                && d.path.as_ref().is_some_and(|p| p.is_file())
        });
        let done = match finished {
            Some(done) => done,
            None => {
                let id = match node.download(&sha1.to_string(), Keep::Verified).await {
                    Ok(id) => id,
                    Err(e) => return fail(format!("cannot download {to}: {e}")),
                };
                match async_std::future::timeout(self.inner.config.download_timeout, downloads.wait(id)).await {
                    Ok(Ok(done)) => done,
                    Ok(Err(e)) => return fail(format!("download of {to}: {e}")),
                    Err(_) => {
                        let _ = downloads.cancel(id).await;
                        return fail(format!("download of {to} took too long"));
                    }
                }
            }
        };
        let path = match (&done.state, &done.path) {
            (DownloadState::Complete, Some(path)) => path.clone(),
            (DownloadState::Failed { reason }, _) => return fail(format!("download of {to} failed: {reason}")),
            (state, _) => return fail(format!("download of {to} ended {state:?}")),
        };
        // The bytes themselves were verified: their signed release must be the one chosen.
        let kept = done.judgement.as_ref().filter(|j| j.verdict == Verdict::Verified).and_then(|j| j.release.as_ref());
        if kept
            .is_none_or(|r| r.name != candidate.release.name || r.version != to || r.sha256 != candidate.release.sha256)
        {
            return fail(format!("the downloaded {to} is not the verified release chosen"));
        }
        let signer = signature.key_id();
        let package = Package {
            name: candidate.release.name.clone(),
            version: to.clone(),
            sha256: hex(&candidate.release.sha256),
            key_id: Some(signer),
            timestamp: candidate.release.timestamp,
            file: crate::transfer::download::safe_file_name(&candidate.release.file, &hex(&candidate.release.sha256)),
        };
        let signature = signature.to_text();
        let (inner, staged) = (self.inner.clone(), package.clone());
        if let Some(command) = self.inner.config.post_install.clone() {
            // The release waits, staged and not shared, until its hook passes.
            let staged =
                task::spawn_blocking(move || lock(&inner.install).stage_for_hook(staged, &path, &signature)).await;
            let staged = match staged {
                Ok(staged) => staged,
                Err(e) => return fail(format!("cannot install {to}: {e}")),
            };
            let hook = self.run_hook(&command, &package, &staged, current).await;
            let (inner, passed) = (self.inner.clone(), hook.is_ok());
            let ended = task::spawn_blocking(move || {
                let mut install = lock(&inner.install);
                if passed {
                    install.hook_passed()
                } else {
                    install.hook_failed()
                }
            })
            .await;
            self.changed();
            if let Err(why) = hook {
                let kept = match (current, ended) {
                    (_, Err(e)) => format!("could not roll back: {e}"),
                    (Some(current), Ok(())) => format!("rolled back to {}; {to} is held back", current.version),
                    (None, Ok(())) => "nothing was installed".to_string(),
                };
                return Decision {
                    action: Action::Failed,
                    reason: format!("{why}; {kept}"),
                    ..decision(name, current, None)
                };
            }
            if let Err(e) = ended {
                return fail(format!("cannot install {to}: {e}"));
            }
        } else {
            let installed = task::spawn_blocking(move || lock(&inner.install).install(staged, &path, &signature)).await;
            if let Err(e) = installed {
                return fail(format!("cannot install {to}: {e}"));
            }
            self.changed();
        }
        Decision {
            action: Action::Installed,
            reason: format!("{name} {to} verified under key {signer} and installed"),
            ..decision(name, current, Some(to))
        }
    }

    /// After an install or a rollback: the new state is shown and shared at once.
    fn changed(&self) {
        *lock(&self.inner.installed) = lock(&self.inner.install).packages().to_vec();
        self.inner.node.rescan();
    }

    /// Runs the post-install hook `command` on the staged file of `package`.
    async fn run_hook(
        &self,
        command: &str,
        package: &Package,
        staged: &std::path::Path,
        previous: Option<&Package>,
    ) -> Result<(), String> {
        let env = [
            ("SERVENT_NAME", package.name.clone()),
            ("SERVENT_VERSION", package.version.clone()),
            ("SERVENT_PATH", staged.display().to_string()),
            ("SERVENT_PREVIOUS_VERSION", previous.map(|p| p.version.clone()).unwrap_or_default()),
        ];
        let (command, timeout) = (command.to_owned(), self.inner.config.hook_timeout);
        task::spawn_blocking(move || run_hook(&command, &env, timeout)).await
    }
}

/// Runs `command` with `sh -c`, for at most `timeout`, in a process group
/// of its own: stopped, it is stopped with everything it started.
fn run_hook(command: &str, env: &[(&str, String)], timeout: Duration) -> Result<(), String> {
    let mut hook = Command::new("sh");
    hook.arg("-c").arg(command).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).stdin(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut hook, 0);
    let mut child = hook.spawn().map_err(|e| format!("the post-install hook could not start: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("the post-install hook failed ({status})")),
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                return Err(format!("the post-install hook ran over {} s and was stopped", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("the post-install hook: {e}")),
        }
    }
}

/// Kills a hook and every process of its group.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(group) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill only sends a signal; the group is the hook's own.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn decision(name: &str, from: Option<&Package>, to: Option<String>) -> Decision {
    Decision {
        name: name.to_owned(),
        from: from.map(|p| p.version.clone()),
        to,
        action: Action::UpToDate,
        reason: String::new(),
        newest_seen: None,
        newest_signed_at: None,
        newest_age_secs: None,
    }
}

fn failed(name: &str, from: Option<&Package>, reason: String) -> Decision {
    Decision { action: Action::Failed, reason, ..decision(name, from, None) }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn log(message: &str) {
    log::info!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_gets_its_environment_and_failures_and_hangs_are_reported() {
        let env = [("SERVENT_VERSION", "1.2".to_string())];
        assert!(run_hook("test \"$SERVENT_VERSION\" = 1.2", &env, Duration::from_secs(10)).is_ok());
        let failed = run_hook("exit 3", &env, Duration::from_secs(10)).unwrap_err();
        assert!(failed.contains("failed"), "{failed}");
        let started = Instant::now();
        let hung = run_hook("sleep 30", &env, Duration::from_millis(200)).unwrap_err();
        assert!(hung.contains("was stopped"), "{hung}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_hook_stopped_for_running_over_takes_its_children_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child");
        let command = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        // Time enough for a loaded machine to start the shell and its child.
        assert!(run_hook(&command, &[], Duration::from_secs(5)).is_err());
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
        // Gone, or a zombie waiting for whoever reaps orphans here.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive() {
            assert!(Instant::now() < deadline, "the hook's child {pid} is still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
