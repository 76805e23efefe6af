//! `servent demo`: the whole SEBLINUX story, on loopback, in one process,
//! narrated step by step.
//!
//! Five real servents start on `127.0.0.1` with ephemeral ports, each with
//! its files under one temporary folder that is removed at the end:
//!
//! - the *publisher* makes a key (no password) and signs a few SEBLINUX
//!   packages, real files with real signatures, and shares them;
//! - two *members* share parts of them, as users who installed them do;
//! - a *faker* shares the three kinds of fakes of the base package
//!   ([`crate::fakes`]);
//! - *you*: a servent with the publisher's key pinned for SEBLINUX
//!   packages, its page and API on an ephemeral port, and an updater.
//!
//! Then the story is told through their handles, as a user would live it:
//! search SEBLINUX, judge the results, download the genuine package (kept,
//! verified), be refused the fake, see the publisher sign 1.1, let the
//! updater install it, and see another member fetch 1.1 from you. Every
//! step waits on a condition with a bound, never on luck, and says whether
//! it happened.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_std::future::timeout;
use async_std::net::TcpListener;
use async_std::task;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::Serialize;
use signing_tool::{ReleaseMeta, SecretKey};

use crate::api;
use crate::cli::{self, plural, verdict_rank};
use crate::config::Config;
use crate::fakes::{self, FakeKind, Genuine};
use crate::node::{self, NodeError, NodeHandle};
use crate::searches::SearchResult;
use crate::transfer::download::{DownloadId, DownloadSnapshot, DownloadState, Keep};
use crate::trust::{TrustedKey, Verdict};
use crate::updater::{Action, Updater, UpdaterConfig};

/// The package the story follows.
const PACKAGE: &str = "SEBLINUX-base";
/// The keyword every package carries, and what is searched for.
const KEYWORD: &str = "SEBLINUX";
/// The publisher's key is pinned for the packages whose names start so.
const SCOPE: &str = "SEBLINUX*";
/// The packages the publisher signs at first: name, size.
const PACKAGES: [(&str, usize); 3] =
    [(PACKAGE, 1536 * 1024), ("SEBLINUX-docs", 200 * 1024), ("SEBLINUX-extras", 300 * 1024)];
/// The bound on every step: on loopback each takes well under a second
/// but the updater's, which gather results for [`SEARCH_WAIT`].
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the updater gathers search results: all servents are a link
/// away on loopback.
const SEARCH_WAIT: Duration = Duration::from_millis(2500);
/// How often a condition is checked while waiting for it.
const POLL: Duration = Duration::from_millis(25);

/// One step of the story, as it is narrated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Its name: `network`, `page`, `search`, `verdicts`, `download`,
    /// `fake_refused`, `install`, `publish`, `update`, `share_on`.
    pub step: &'static str,
    /// Whether it happened as it should.
    pub ok: bool,
    /// What happened, for people (lines after the first are details).
    pub detail: String,
}

impl Step {
    fn done(step: &'static str, detail: String) -> Step {
        Step { step, ok: true, detail }
    }

    fn failed(step: &'static str, detail: String) -> Step {
        Step { step, ok: false, detail }
    }
}

/// Tells the story, narrating each step on standard output (one JSON
/// object a step with `json`); with `once`, returns when it is told,
/// otherwise keeps the servents up until Ctrl-C. Fails unless every step
/// happened.
pub async fn run(once: bool, json: bool) -> Result<(), String> {
    // Five servents in one process: only their warnings, unless RUST_LOG asks for more.
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            crate::logging::Filter::parse(&spec).map_err(|e| format!("RUST_LOG: {e}"))?
        }
        _ => crate::logging::Filter::new(log::LevelFilter::Warn),
    };
    crate::logging::init(filter);
    let (stop, stopped) = async_std::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop.try_send(());
    })
    .map_err(|e| format!("cannot catch signals: {e}"))?;
    let narrate = |step: &Step| print_step(step, json);
    let cast = Cast::start().await?;
    let story = tell(&cast, narrate);
    let interrupted = async { stopped.recv().await.ok() };
    let told = futures::select! {
        failed = story.fuse() => Some(failed),
        _ = interrupted.fuse() => None,
    };
    let result = match told {
        None => Err("interrupted".to_owned()),
        Some(None) => Ok(()),
        Some(Some(step)) => Err(format!("the story stopped at `{step}`")),
    };
    if !once && told.is_some() {
        if !json {
            let page = cast.page();
            let _ = writeln!(std::io::stdout(), "The servents stay up: explore the page at {page}. Ctrl-C stops them.");
        }
        let _ = stopped.recv().await;
    }
    cast.stop().await;
    result
}

/// Prints a step; a closed standard output (`servent demo | head`) ends
/// nothing: the story goes on, unheard.
fn print_step(step: &Step, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string(step).unwrap_or_default());
        return;
    }
    let mark = if step.ok { "✓" } else { "✗" };
    let mut lines = step.detail.lines();
    let _ = writeln!(out, "{mark} {}: {}", step.step, lines.next().unwrap_or_default());
    for line in lines {
        let _ = writeln!(out, "    {line}");
    }
}

/// Tells the story; the name of the step where it stopped, if it did.
async fn tell(cast: &Cast, mut narrate: impl FnMut(&Step)) -> Option<&'static str> {
    let mut say = |step: Step| {
        narrate(&step);
        step.ok.then_some(()).ok_or(step.step)
    };
    let told: Result<(), &'static str> = async {
        say(cast.network().await)?;
        say(Step::done("page", format!("your servent's page: {} (the demo opens nothing)", cast.page())))?;
        let results = match cast.search().await {
            Ok((step, results)) => {
                say(step)?;
                results
            }
            Err(step) => return say(step),
        };
        say(verdicts(&results, cast))?;
        say(cast.download(&results).await)?;
        say(cast.refuse_fakes(&results).await)?;
        say(cast.install().await)?;
        let (step, release) = cast.publish_next();
        say(step)?;
        let Some(release) = release else { return Ok(()) };
        say(cast.update(&release).await)?;
        say(cast.share_on(&release).await)
    }
    .await;
    told.err()
}

/// A file the publisher signed.
struct Release {
    file: String,
    bytes: Vec<u8>,
    meta: ReleaseMeta,
    signature: String,
    sha1: search::Urn,
    sha256: search::Urn,
}

impl Release {
    /// Makes `name`-`version`.tar of `size` bytes of its own, signed by `key` at `signed_at`.
    fn sign(key: &SecretKey, name: &str, version: &str, size: usize, signed_at: u64) -> Result<Release, String> {
        let file = format!("{name}-{version}.tar");
        let mut bytes = vec![0u8; size];
        StdRng::seed_from_u64(size as u64 ^ signed_at).fill_bytes(&mut bytes);
        let title = format!("{file}: the {name} package of Seblinux, version {version}\n");
        let len = title.len().min(size);
        bytes[..len].copy_from_slice(&title.as_bytes()[..len]);
        let meta = ReleaseMeta { name: name.into(), version: version.into(), keywords: vec![KEYWORD.into()] };
        let signature = fakes::sign_release(key, &file, &bytes, &meta, signed_at)
            .map_err(|e| format!("cannot sign {file}: {e}"))?
            .to_text();
        let (digests, _) = search::hash_reader(&bytes[..]).map_err(|e| e.to_string())?;
        Ok(Release { file, sha1: digests.sha1_urn(), sha256: digests.sha256_urn(), bytes, meta, signature })
    }

    /// Writes it and its `.minisig` into `dir`.
    fn write(&self, dir: &Path) -> Result<(), String> {
        write(dir, &self.file, &self.bytes, Some(&self.signature))
    }
}

/// Writes `dir/file`, and `dir/file.minisig` when there is a signature.
fn write(dir: &Path, file: &str, bytes: &[u8], signature: Option<&str>) -> Result<(), String> {
    let failed = |path: &Path, e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let path = dir.join(file);
    std::fs::write(&path, bytes).map_err(|e| failed(&path, e))?;
    if let Some(signature) = signature {
        let path = signing_tool::files::minisig_path(&dir.join(file));
        std::fs::write(&path, signature).map_err(|e| failed(&path, e))?;
    }
    Ok(())
}

/// The servents of the story and what they share.
struct Cast {
    /// Everything on disk; removed when dropped.
    root: tempfile::TempDir,
    publisher_key: SecretKey,
    releases: Vec<Release>,
    publisher: NodeHandle,
    members: [NodeHandle; 2],
    faker: NodeHandle,
    you: NodeHandle,
    updater: Updater,
    api: SocketAddr,
    server: task::JoinHandle<std::io::Result<()>>,
}

/// A servent's configuration in the demo: loopback, an ephemeral port, no
/// discovery (the demo's links are the only ones), a test network whose
/// hits name 127.0.0.1 (`--dial-local`), the publisher's key pinned.
fn config(data_dir: Option<PathBuf>, shares: Vec<PathBuf>, peers: Vec<SocketAddr>, pinned: &TrustedKey) -> Config {
    Config {
        data_dir,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        shares,
        peers,
        discover: false,
        dial_local: true,
        rescan_interval: Duration::from_millis(500),
        trust: vec![pinned.clone()],
        ..Config::default()
    }
}

impl Cast {
    /// Writes every share, starts the five servents and your page.
    async fn start() -> Result<Cast, String> {
        let root = tempfile::Builder::new()
            .prefix("servent-demo-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
        let dir = |name: &str| root.path().join(name);
        let publisher_key = SecretKey::generate().map_err(|e| format!("cannot make the publisher's key: {e}"))?;
        let signed_at = signing_tool::files::unix_now().saturating_sub(24 * 3600);
        let releases = PACKAGES
            .iter()
            .map(|(name, size)| Release::sign(&publisher_key, name, "1.0", *size, signed_at))
            .collect::<Result<Vec<_>, _>>()?;
        for release in &releases {
            release.write(&dir("publisher"))?;
        }
        // Each member shares the base package and one other.
        for (member, other) in [("member-1", 1), ("member-2", 2)] {
            releases[0].write(&dir(member))?;
            releases[other].write(&dir(member))?;
        }
        let faker_key = SecretKey::generate().map_err(|e| format!("cannot make the faker's key: {e}"))?;
        let base = &releases[0];
        let genuine = Genuine { file: &base.file, bytes: &base.bytes, signature: &base.signature, meta: &base.meta };
        for kind in FakeKind::ALL {
            let fake = fakes::fake(&genuine, kind, "the faker", &faker_key, signed_at)
                .map_err(|e| format!("cannot sign a fake: {e}"))?;
            write(&dir("faker").join(kind.folder()), &base.file, &fake.bytes, fake.signature.as_deref())?;
        }

        let pinned = TrustedKey { key: publisher_key.public_key(), scope: vec![SCOPE.to_owned()] };
        let start = |config: Config| async move { node::start(config).await.map_err(|e| e.to_string()) };
        let publisher = start(config(None, vec![dir("publisher")], vec![], &pinned)).await?;
        let member_1 = start(config(None, vec![dir("member-1")], vec![publisher.listen_addr()], &pinned)).await?;
        let member_2 = start(config(Some(dir("member-2-data")), vec![dir("member-2")], vec![], &pinned)).await?;
        let faker = start(config(None, vec![dir("faker")], vec![], &pinned)).await?;
        let install_dir = dir("you-installed");
        std::fs::create_dir_all(&install_dir).map_err(|e| format!("cannot create {}: {e}", install_dir.display()))?;
        let peers = [&publisher, &member_1, &faker].map(NodeHandle::listen_addr).to_vec();
        let you = start(config(Some(dir("you")), vec![install_dir.clone()], peers, &pinned)).await?;
        // Member 2 dials you: a connection that came in is what tells your
        // servent it is reachable, so its hits are not flagged firewalled
        // and member 2 may fetch from you directly (a firewalled "you" would
        // be reached by PUSH, slower than the publisher member 2 also finds).
        let SocketAddr::V4(you_addr) = you.listen_addr() else { unreachable!("listens on 127.0.0.1") };
        member_2.connect(you_addr).await.map_err(|e| e.to_string())?;
        let updater_config = UpdaterConfig { search_wait: SEARCH_WAIT, ..UpdaterConfig::new(install_dir) };
        let updater = Updater::open(you.clone(), updater_config).map_err(|e| e.to_string())?;
        let listener =
            TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen for the page: {e}"))?;
        let api = listener.local_addr().map_err(|e| e.to_string())?;
        let server = task::spawn(api::serve(you.clone(), Some(updater.clone()), listener, None));
        Ok(Cast {
            root,
            publisher_key,
            releases,
            publisher,
            members: [member_1, member_2],
            faker,
            you,
            updater,
            api,
            server,
        })
    }

    fn page(&self) -> String {
        format!("http://{}/", self.api)
    }

    /// Every servent, with its part.
    fn servents(&self) -> [(&'static str, &NodeHandle); 5] {
        [
            ("publisher", &self.publisher),
            ("member 1", &self.members[0]),
            ("member 2", &self.members[1]),
            ("faker", &self.faker),
            ("you", &self.you),
        ]
    }

    /// Who listens at `addr`, for people.
    fn who(&self, addr: impl ToString) -> String {
        let addr = addr.to_string();
        match self.servents().iter().find(|(_, n)| n.listen_addr().to_string() == addr) {
            Some((name, _)) => format!("{name} ({addr})"),
            None => addr,
        }
    }

    /// Waits until every servent has indexed its files and you are linked
    /// to the four others (member 1 to the publisher too).
    async fn network(&self) -> Step {
        let shared = [("publisher", 3), ("member 1", 2), ("member 2", 2), ("faker", 3)];
        // Searchable, not only listed: a Query answered before its files
        // are in the index would miss them, and is not asked again.
        let ready = wait_until(|| async {
            for ((_, count), (_, node)) in shared.iter().zip(self.servents()) {
                if searchable(node, KEYWORD, &[]) != *count {
                    return false;
                }
            }
            let Ok(peers) = self.you.peers().await else { return false };
            peers.len() == 4
        })
        .await;
        let lines = self.servents().map(|(name, node)| {
            let files = node.library().files().len();
            format!("{name:<9} {}  sharing {}", node.listen_addr(), plural(files, "file"))
        });
        let detail = format!(
            "a publisher, two members, a faker and you, real servents on 127.0.0.1 (files in {})\n{}",
            self.root.path().display(),
            lines.join("\n")
        );
        match ready {
            true => Step::done("network", detail),
            false => Step::failed("network", format!("{detail}\nnot every servent was ready in {STEP_TIMEOUT:?}")),
        }
    }

    /// Searches SEBLINUX from your servent until every file of the others
    /// has answered: the three packages and the three fakes.
    async fn search(&self) -> Result<(Step, Vec<SearchResult>), Step> {
        let started = Instant::now();
        let id = self.you.search(KEYWORD, 7).await.map_err(|e| Step::failed("search", e.to_string()))?;
        let (mut results, mut hits) = (Vec::new(), 0);
        let deadline = Deadline::new();
        let complete = loop {
            if let Ok(Some(snapshot)) = self.you.search_results(id).await {
                (results, hits) = (snapshot.results, snapshot.hits_received);
            }
            let base = results.iter().find(|r| r.sha256 == Some(self.releases[0].sha256));
            if results.len() == PACKAGES.len() + FakeKind::ALL.len() && base.is_some_and(|b| b.sources.len() == 3) {
                break true;
            }
            if !deadline.pause().await {
                break false;
            }
        };
        let detail = format!(
            "`servent search SEBLINUX`: {} from {} in {} ms",
            plural(results.len(), "result"),
            plural(hits as usize, "answer"),
            started.elapsed().as_millis()
        );
        results.sort_by_key(|r| (verdict_rank(&r.judgement.verdict.to_string()), std::cmp::Reverse(r.sources.len())));
        match complete {
            true => Ok((Step::done("search", detail), results)),
            false => Err(Step::failed("search", format!("{detail}; expected 6, the base package from 3 sources"))),
        }
    }

    /// Downloads the genuine base package, keeping it only if verified.
    async fn download(&self, results: &[SearchResult]) -> Step {
        let Some(genuine) = results.iter().find(|r| r.sha256 == Some(self.releases[0].sha256)) else {
            return Step::failed("download", "the genuine package was not among the results".into());
        };
        let target = urn_of(genuine);
        let snapshot = match self.you.download(&target, Keep::Verified).await {
            Ok(id) => self.finished(&self.you, id).await,
            Err(e) => Err(e.to_string()),
        };
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(why) => return Step::failed("download", format!("{} did not arrive: {why}", genuine.name)),
        };
        let verdict = snapshot.judgement.as_ref().map(|j| (j.verdict, j.reason.clone()));
        let from: Vec<String> = snapshot
            .sources
            .iter()
            .filter(|s| s.bytes > 0)
            .map(|s| format!("{} {}", self.who(s.addr), cli::human_size(s.bytes)))
            .collect();
        let path = snapshot.path.as_deref().map(Path::display).map(|p| p.to_string()).unwrap_or_default();
        let detail = format!(
            "`servent get --require-verified {target}`: {} ({}) from {}\nSHA-1, SHA-256 and the signature checked: {}\nkept at {path}, its .minisig beside it",
            snapshot.name,
            cli::human_size(snapshot.size),
            from.join(", "),
            verdict.as_ref().map(|(v, r)| format!("{v}, {r}")).unwrap_or_default(),
        );
        let kept = snapshot.state == DownloadState::Complete
            && verdict.is_some_and(|(v, _)| v == Verdict::Verified)
            && std::fs::read(&path).is_ok_and(|bytes| bytes == self.releases[0].bytes);
        match kept {
            true => Step::done("download", detail),
            false => Step::failed("download", detail),
        }
    }

    /// Asks for the fake and for the faker's own signed file: both refused
    /// before a byte is fetched.
    async fn refuse_fakes(&self, results: &[SearchResult]) -> Step {
        let judged = |verdict| results.iter().find(|r| r.judgement.verdict == verdict);
        let (Some(fake), Some(untrusted)) = (judged(Verdict::Fake), judged(Verdict::Untrusted)) else {
            return Step::failed(
                "fake_refused",
                "the fake or the faker's signed file was not among the results".into(),
            );
        };
        let fake_refusal = self.you.download(&urn_of(fake), Keep::NotFake).await;
        let untrusted_refusal = self.you.download(&urn_of(untrusted), Keep::Verified).await;
        let refused = matches!(fake_refusal, Err(NodeError::Fake { .. }))
            && matches!(untrusted_refusal, Err(NodeError::NotVerified { .. }));
        let said = |outcome: Result<DownloadId, NodeError>| match outcome {
            Ok(id) => format!("accepted as download {id}"),
            Err(e) => format!("refused: {e}"),
        };
        let detail = format!(
            "nothing downloaded:\n`servent get` the fake: {}\n`servent get --require-verified` the faker's own signed file: {}",
            said(fake_refusal),
            said(untrusted_refusal)
        );
        match refused {
            true => Step::done("fake_refused", detail),
            false => Step::failed("fake_refused", detail),
        }
    }

    /// Installs the base package with your updater.
    async fn install(&self) -> Step {
        let decision = match timeout(STEP_TIMEOUT, self.updater.install(PACKAGE, false)).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(e)) => return Step::failed("install", e.to_string()),
            Err(_) => return Step::failed("install", format!("no answer in {STEP_TIMEOUT:?}")),
        };
        // The verified download of the step before is what goes in: fetched
        // once, moved out of the downloads folder, one copy kept.
        let downloads = self.you.downloads().map_err(|e| e.to_string());
        let listed = match downloads {
            Ok(downloads) => downloads.list().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let genuine: Vec<_> = listed.iter().filter(|d| d.sha256 == Some(self.releases[0].sha256)).collect();
        let fetched = genuine.len();
        let left = genuine.iter().filter_map(|d| d.path.as_deref()).filter(|p| p.exists()).count();
        let detail = format!(
            "`servent install {PACKAGE}`: {} {}: {}\nthe download above, fetched {}, moved into the install directory: {left} left in the downloads folder",
            PACKAGE,
            decision.to.as_deref().unwrap_or("-"),
            decision.reason,
            if fetched == 1 { "once".to_owned() } else { format!("{fetched} times") },
        );
        match (decision.action, decision.to.as_deref()) {
            (Action::Installed, Some("1.0")) if fetched == 1 && left == 0 => Step::done("install", detail),
            _ => Step::failed("install", detail),
        }
    }

    /// The publisher signs 1.1 of the base package and shares it.
    fn publish_next(&self) -> (Step, Option<Release>) {
        let published =
            Release::sign(&self.publisher_key, PACKAGE, "1.1", PACKAGES[0].1, signing_tool::files::unix_now())
                .and_then(|release| release.write(&self.root.path().join("publisher")).map(|()| release));
        match published {
            Ok(release) => {
                self.publisher.rescan();
                let detail = format!(
                    "`signing-tool sign --name {PACKAGE} --version 1.1 --keywords {KEYWORD} {}`: key {}, shared by the publisher",
                    release.file,
                    self.publisher_key.key_id()
                );
                (Step::done("publish", detail), Some(release))
            }
            Err(why) => (Step::failed("publish", why), None),
        }
    }

    /// Runs an update pass once the publisher shares `release`.
    async fn update(&self, release: &Release) -> Step {
        let indexed = wait_until(|| async { shares_verified(&self.publisher, release.sha1) }).await;
        if !indexed {
            return Step::failed("update", format!("the publisher never shared {}", release.file));
        }
        let report = match timeout(STEP_TIMEOUT, self.updater.pass(false)).await {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return Step::failed("update", e.to_string()),
            Err(_) => return Step::failed("update", format!("no answer in {STEP_TIMEOUT:?}")),
        };
        let Some(decision) = report.decisions.iter().find(|d| d.name == PACKAGE) else {
            return Step::failed("update", format!("the pass said nothing of {PACKAGE}"));
        };
        let detail = format!(
            "`servent update --once`: {PACKAGE} {} → {}: {}\n1.0 kept aside for `servent rollback {PACKAGE}`; 1.1 shared from {}",
            decision.from.as_deref().unwrap_or("-"),
            decision.to.as_deref().unwrap_or("-"),
            decision.reason,
            self.updater.status().install_dir.display()
        );
        match (decision.action, decision.to.as_deref()) {
            (Action::Installed, Some("1.1")) => Step::done("update", detail),
            _ => Step::failed("update", detail),
        }
    }

    /// Member 2, linked to you alone, searches one hop away and fetches
    /// 1.1 from you.
    async fn share_on(&self, release: &Release) -> Step {
        let member = &self.members[1];
        let you = self.you.listen_addr().to_string();
        // The updater shares what it installs at its next rescan: ask once it has.
        if !wait_until(|| async { shares_verified(&self.you, release.sha1) }).await {
            return Step::failed("share_on", format!("you never shared {}", release.file));
        }
        let id = match member.search(&format!("{PACKAGE} 1.1"), 1).await {
            Ok(id) => id,
            Err(e) => return Step::failed("share_on", e.to_string()),
        };
        let deadline = Deadline::new();
        let found = loop {
            if let Ok(Some(snapshot)) = member.search_results(id).await {
                let found = snapshot.results.into_iter().find(|r| r.sha256 == Some(release.sha256));
                if found.as_ref().is_some_and(|r| r.sources.iter().any(|s| s.to_string() == you)) {
                    break found;
                }
            }
            if !deadline.pause().await {
                break None;
            }
        };
        let Some(result) = found else {
            return Step::failed("share_on", format!("member 2 never found {} at you ({you})", release.file));
        };
        let snapshot = match member.download(&urn_of(&result), Keep::Verified).await {
            Ok(id) => self.finished(member, id).await,
            Err(e) => Err(e.to_string()),
        };
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(why) => return Step::failed("share_on", format!("member 2 did not get {}: {why}", release.file)),
        };
        let from_you = snapshot.sources.iter().find(|s| s.addr.to_string() == you).map_or(0, |s| s.bytes);
        let verified = snapshot.judgement.as_ref().is_some_and(|j| j.verdict == Verdict::Verified);
        let detail = format!(
            "member 2 (linked to you alone) searched `{PACKAGE} 1.1` one hop away and fetched {} from you: {} of {}, {}",
            release.file,
            cli::human_size(from_you),
            cli::human_size(snapshot.size),
            snapshot.judgement.as_ref().map(|j| j.verdict.to_string()).unwrap_or_default()
        );
        match snapshot.state == DownloadState::Complete && verified && from_you > 0 {
            true => Step::done("share_on", detail),
            false => Step::failed("share_on", detail),
        }
    }

    /// Waits, within the step's bound, for download `id` of `node` to end.
    async fn finished(&self, node: &NodeHandle, id: DownloadId) -> Result<DownloadSnapshot, String> {
        let downloads = node.downloads().map_err(|e| e.to_string())?;
        let snapshot = timeout(STEP_TIMEOUT, downloads.wait(id))
            .await
            .map_err(|_| format!("not finished in {STEP_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        match &snapshot.state {
            DownloadState::Failed { reason } => Err(reason.clone()),
            _ => Ok(snapshot),
        }
    }

    /// Stops every servent and the page, then removes the temporary folder.
    async fn stop(self) {
        let Cast { root, publisher, members, faker, you, updater, server, .. } = self;
        let servents = [publisher, members[0].clone(), members[1].clone(), faker, you];
        for node in &servents {
            node.shutdown().await;
        }
        server.cancel().await;
        drop((servents, members, updater));
        // A rescan that was under way may still write an index file while
        // the folder is removed: remove it until it is gone, within a bound.
        let deadline = Deadline::new();
        while root.path().exists() {
            let _ = std::fs::remove_dir_all(root.path());
            if !deadline.pause().await {
                log::warn!("cannot remove {}", root.path().display());
                break;
            }
        }
    }
}

/// How many of `node`'s shared files a search for `words` or `urns` finds
/// in its own index now.
fn searchable(node: &NodeHandle, words: &str, urns: &[search::Urn]) -> usize {
    let query = search::Query { words: words.to_owned(), urns: urns.to_vec(), limit: 100 };
    node.library().search(&query).map_or(0, |files| files.len())
}

/// Whether `node` answers a search for `urn` with its file signed: in its
/// index, and with the signature beside it noted (a rescan may see the
/// file before its `.minisig`).
fn shares_verified(node: &NodeHandle, urn: search::Urn) -> bool {
    let signed = node.library_entries().iter().any(|e| e.file.sha1 == urn && e.judgement.verdict == Verdict::Verified);
    signed && searchable(node, "", &[urn]) == 1
}

/// What to download a result by: its SHA-1 URN, else its SHA-256.
fn urn_of(result: &SearchResult) -> String {
    result.sha1.or(result.sha256).map(|u| u.to_string()).unwrap_or_default()
}

/// Each result on a line, with its verdict and why: the step is done when
/// the genuine packages are verified and each fake is judged for what it is.
fn verdicts(results: &[SearchResult], cast: &Cast) -> Step {
    let genuine: Vec<_> = cast.releases.iter().map(|r| r.sha256).collect();
    let lines: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{:<9} {:<24} {}  ({})",
                r.judgement.verdict.to_string(),
                r.name,
                plural(r.sources.len(), "source"),
                r.judgement.reason
            )
        })
        .collect();
    let count = |verdict| results.iter().filter(|r| r.judgement.verdict == verdict).count();
    let judged_right = results.iter().all(|r| {
        let is_genuine = r.sha256.is_some_and(|s| genuine.contains(&s));
        is_genuine == (r.judgement.verdict == Verdict::Verified)
    }) && [Verdict::Fake, Verdict::Untrusted, Verdict::Unsigned].iter().all(|v| count(*v) == 1);
    let detail = format!("judged before any download, from the signatures the results carry:\n{}", lines.join("\n"));
    match judged_right {
        true => Step::done("verdicts", detail),
        false => Step::failed("verdicts", detail),
    }
}

/// The end of a step's bound.
struct Deadline(Instant);

impl Deadline {
    /// [`STEP_TIMEOUT`] from now.
    fn new() -> Deadline {
        Deadline(Instant::now() + STEP_TIMEOUT)
    }

    /// Waits [`POLL`] before a condition is checked again; false once the
    /// bound is past.
    async fn pause(&self) -> bool {
        if Instant::now() >= self.0 {
            return false;
        }
        task::sleep(POLL).await;
        true
    }
}

/// Waits for `condition`, checking every [`POLL`], at most [`STEP_TIMEOUT`];
/// whether it held.
async fn wait_until<F, Fut>(mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Deadline::new();
    loop {
        if condition().await {
            return true;
        }
        if !deadline.pause().await {
            return false;
        }
    }
}
