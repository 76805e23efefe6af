//! A flash crowd: one publisher shares a new signed release, and a crowd of
//! servents starts downloading it at once, as their update passes would.
//!
//! Every servent is a real one in this process on its own loopback address,
//! with its upload and download bandwidth capped by its own
//! `--max-upload-rate` and `--max-download-rate`, so the experiment means
//! what it would on the Internet. Each download is given the publisher and
//! the fakers as sources (what a search for the release returns); everything
//! else the crowd finds by itself, through partial file sharing: the
//! publisher names its downloaders to each other (`X-Alt`), and each serves
//! the chunks it has checked against the signed tree. The fakers claim the
//! whole file and serve junk for any range.
//!
//! The measurement: the time of one download alone from the publisher at
//! the same caps, measured first in the same run; then each crowd member's
//! completion time over it (p50, p95, max), the publisher's share of all
//! the bytes honest servents uploaded during the crowd, how many copies
//! were verified against the signature and the bytes, and how many fakes
//! were kept (a copy whose bytes are not the release's).

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::{BufReader, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures::future::join_all;
use serde::Serialize;
use servent::config::Config;
use servent::node::{self, NodeHandle};
use servent::transfer::download::{DownloadRequest, DownloadSnapshot, DownloadState, Keep};
use servent::transfer::http::{self, ContentRange, ResponseHead};
use servent::transfer::rate::{format_rate, Rates};
use servent::transfer::upload::UploadStats;
use servent::trust::{TrustedKey, Verdict};
use signing_tool::{Minisig, ReleaseMeta, SecretKey};

use crate::net::node_addr;
use crate::Error;

/// The largest crowd: each member is a servent with its own index.
pub const MAX_CROWD: usize = 1000;
/// The largest release, in MiB.
pub const MAX_FILE_MIB: u64 = 1024;
/// The release's name.
const NAME: &str = "SEBLINUX-flash-1.0.img";
/// How long the crowd may take, in single-download times, before the run
/// gives up on the rest (they count as failed, at this time).
pub const GIVE_UP_RATIO: u32 = 20;
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(50);
/// How long the publisher's file may take to be indexed.
const INDEX_TIMEOUT: Duration = Duration::from_secs(120);

/// What a flash crowd run is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlashSettings {
    /// Servents that download the release at once.
    pub crowd: usize,
    /// The release's size in MiB.
    pub file_mib: u64,
    /// Sources that claim the release and serve junk.
    pub fakers: usize,
    /// Every servent's upload cap, in bytes per second (the publisher's too).
    pub upload_rate: u64,
    /// Every servent's download cap, in bytes per second.
    pub download_rate: u64,
    /// The port every servent listens on, each on its own address.
    pub port: u16,
    /// Seeds the release's bytes.
    pub seed: u64,
    /// Whether the publisher serves the release as a seed (`--seed-release`).
    pub seed_release: bool,
}

impl FlashSettings {
    /// Checks the bounds of the run.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |message: String| Err(Error::Settings(message));
        if self.crowd == 0 || self.crowd > MAX_CROWD {
            return bad(format!("--flash-crowd must be from 1 to {MAX_CROWD}, not {}", self.crowd));
        }
        if self.file_mib == 0 || self.file_mib > MAX_FILE_MIB {
            return bad(format!("--file-mib must be from 1 to {MAX_FILE_MIB}, not {}", self.file_mib));
        }
        if self.upload_rate == 0 || self.download_rate == 0 {
            return bad("a flash crowd needs both caps: --max-upload-rate and --max-download-rate above 0".into());
        }
        if self.port == 0 {
            return bad("--port must not be 0: every node needs the same, known port".into());
        }
        Ok(())
    }
}

/// What a flash crowd run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlashSummary {
    /// Servents in the crowd.
    pub crowd: usize,
    /// The release's size in MiB.
    pub file_mib: u64,
    /// Junk-serving sources given to every download.
    pub fakers: usize,
    /// Whether the publisher served the release as a seed.
    pub seed_release: bool,
    /// Every servent's upload cap, bytes per second.
    pub upload_rate: u64,
    /// Every servent's download cap, bytes per second.
    pub download_rate: u64,
    /// One download alone from the publisher, at the same caps, in seconds.
    pub single_download_secs: f64,
    /// The median crowd member's completion time over the single download's.
    pub completion_p50_ratio: f64,
    /// The 95th percentile's.
    pub completion_p95_ratio: f64,
    /// The last one's (a failed download counts at the time the run gave up).
    pub completion_max_ratio: f64,
    /// Bytes the publisher uploaded during the crowd over all bytes honest
    /// servents uploaded then.
    pub publisher_upload_share: f64,
    /// Bytes the publisher uploaded during the crowd.
    pub publisher_bytes: u64,
    /// Bytes all honest servents uploaded during the crowd.
    pub served_bytes: u64,
    /// Junk bytes the fakers sent.
    pub faker_bytes: u64,
    /// Copies kept that are the release, byte for byte, verified.
    pub copies_verified: usize,
    /// Copies kept that are not the release.
    pub fakes_accepted: usize,
    /// Downloads that did not complete, or not in time.
    pub downloads_failed: usize,
    /// Requests honest servents answered during the crowd.
    pub requests: u64,
    /// Of them, refused as busy (`503`, queued or not): asked again later.
    pub requests_busy: u64,
    /// Of them, asking a partial source for bytes it does not offer
    /// (`416`): it had nothing the asker needed.
    pub requests_unavailable: u64,
}

impl std::fmt::Display for FlashSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "flash crowd: {} servents, a {} MiB release{}, {} fakers; caps up {}/s, down {}/s",
            self.crowd,
            self.file_mib,
            if self.seed_release { " seeded" } else { "" },
            self.fakers,
            format_rate(self.upload_rate),
            format_rate(self.download_rate)
        )?;
        writeln!(f, "one download alone:        {:.1} s", self.single_download_secs)?;
        writeln!(
            f,
            "completion / alone:        p50 {:.2}, p95 {:.2}, max {:.2}",
            self.completion_p50_ratio, self.completion_p95_ratio, self.completion_max_ratio
        )?;
        writeln!(
            f,
            "publisher's upload share:  {:.1} % ({} of {} bytes; fakers sent {} junk bytes)",
            self.publisher_upload_share * 100.0,
            self.publisher_bytes,
            self.served_bytes,
            self.faker_bytes
        )?;
        writeln!(
            f,
            "requests answered:         {} ({} busy, {} for bytes not offered)",
            self.requests, self.requests_busy, self.requests_unavailable
        )?;
        write!(
            f,
            "copies verified:           {} of {}; fakes accepted {}; failed {}",
            self.copies_verified, self.crowd, self.fakes_accepted, self.downloads_failed
        )
    }
}

/// The nearest-rank percentile `p` (0 to 100) of sorted `values`.
pub fn percentile(sorted: &[f64], p: usize) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n * p).div_ceil(100)).clamp(1, n) - 1],
    }
}

/// The release: its bytes (seeded), its signature and what a download of it is asked.
struct Release {
    bytes: Arc<Vec<u8>>,
    signature: Arc<Minisig>,
    key: SecretKey,
    urns: Vec<search::Urn>,
}

impl Release {
    fn new(settings: &FlashSettings) -> Result<Release, Error> {
        let len =
            usize::try_from(settings.file_mib << 20).map_err(|_| Error::Settings("--file-mib too large".into()))?;
        let mut state = settings.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let key = SecretKey::generate().map_err(|e| Error::Sign(e.to_string()))?;
        let meta =
            ReleaseMeta { name: "SEBLINUX-flash".into(), version: "1.0".into(), keywords: vec!["SEBLINUX".into()] };
        let signature = servent::fakes::sign_release(&key, NAME, &bytes, &meta, 1_700_000_000)
            .map_err(|e| Error::Sign(e.to_string()))?;
        let (digests, _) = search::hash_reader(&bytes[..]).map_err(|e| Error::Sign(e.to_string()))?;
        Ok(Release {
            bytes: Arc::new(bytes),
            signature: Arc::new(signature),
            key,
            urns: vec![digests.sha1_urn(), digests.sha256_urn()],
        })
    }

    fn request(&self, sources: Vec<SocketAddrV4>) -> DownloadRequest {
        DownloadRequest {
            urns: self.urns.clone(),
            name: NAME.into(),
            size: self.bytes.len() as u64,
            sources,
            signature: Some(self.signature.clone()),
            keep: Keep::Verified,
        }
    }
}

/// Runs the flash crowd; stops every servent before returning.
pub async fn run(settings: &FlashSettings, cancel: &AtomicBool) -> Result<FlashSummary, Error> {
    settings.validate()?;
    let files = tempfile::Builder::new()
        .prefix("test-net-flash-")
        .tempdir()
        .map_err(|source| Error::Files { path: std::env::temp_dir(), source })?;
    let release = Release::new(settings)?;
    let rates = Rates { max_upload_rate: settings.upload_rate, max_download_rate: settings.download_rate };
    let trusted = TrustedKey { key: release.key.public_key(), scope: vec![] };
    let addr = |index: usize| node_addr(index, settings.port).ok_or(Error::Settings("too many servents".into()));

    let share = files.path().join("publisher");
    write(&share, NAME, &release.bytes)?;
    write(&share, &format!("{NAME}.minisig"), release.signature.to_text().as_bytes())?;
    let seed_releases = if settings.seed_release { vec![share.join(NAME)] } else { Vec::new() };
    let config = Config { shares: vec![share], seed_releases, ..servent_config(addr(0)?, rates) };
    let publisher = start(0, addr(0)?, config).await?;
    wait_indexed(&publisher, &release).await?;
    let publisher_addr = addr(0)?;

    let faker_bytes = Arc::new(AtomicU64::new(0));
    let mut fakers = Vec::with_capacity(settings.fakers);
    for index in 0..settings.fakers {
        let at = addr(2 + index)?;
        let listener =
            TcpListener::bind(at).await.map_err(|e| Error::Files { path: PathBuf::from(at.to_string()), source: e })?;
        fakers.push(at);
        task::spawn(serve_junk(listener, release.bytes.len() as u64, faker_bytes.clone()));
    }
    let mut sources = vec![publisher_addr];
    sources.extend(&fakers);

    // One download alone, at the same caps: the reference.
    let alone_dir = files.path().join("alone");
    let alone = start(1, addr(1)?, downloader_config(addr(1)?, rates, &alone_dir, &trusted)).await?;
    let began = Instant::now();
    let id = alone
        .downloads()
        .map_err(|source| node_error(1, addr(1).ok(), source))?
        .start(release.request(vec![publisher_addr]))
        .await;
    let id = id.map_err(|e| Error::Timeout(format!("the single download did not start: {e}")))?;
    let single = alone.downloads().map_err(|source| node_error(1, addr(1).ok(), source))?.wait(id).await;
    let single_secs = began.elapsed().as_secs_f64();
    match single {
        Ok(done) if done.state == DownloadState::Complete => {}
        other => return Err(Error::Timeout(format!("the single download did not complete: {other:?}"))),
    }
    alone.shutdown().await;
    check(cancel)?;

    // The crowd.
    let first = 2 + settings.fakers;
    let mut crowd = Vec::with_capacity(settings.crowd);
    for n in 0..settings.crowd {
        check(cancel)?;
        let at = addr(first + n)?;
        let dir = files.path().join(format!("crowd-{n}"));
        crowd.push(start(first + n, at, downloader_config(at, rates, &dir, &trusted)).await?);
    }
    let publisher_before = publisher.uploads().snapshot();
    let give_up = Duration::from_secs_f64(single_secs * f64::from(GIVE_UP_RATIO)).max(Duration::from_secs(60));
    let began = Instant::now();
    let mut started = Vec::with_capacity(crowd.len());
    for (n, node) in crowd.iter().enumerate() {
        let downloads = node.downloads().map_err(|source| node_error(first + n, addr(first + n).ok(), source))?;
        started.push(downloads.start(release.request(sources.clone())).await.ok());
    }
    let outcomes = join_all(crowd.iter().zip(&started).map(|(node, id)| async move {
        let (Ok(downloads), Some(id)) = (node.downloads(), id) else { return None };
        let done = async_std::future::timeout(give_up, downloads.wait(*id)).await.ok()?.ok()?;
        Some((done, began.elapsed()))
    }))
    .await;
    let publisher_after = publisher.uploads().snapshot();
    let publisher_bytes = publisher_after.bytes_sent - publisher_before.bytes_sent;
    let crowd_stats: Vec<UploadStats> = crowd.iter().map(|node| node.uploads().snapshot()).collect();
    let crowd_bytes: u64 = crowd_stats.iter().map(|s| s.bytes_sent).sum();
    let requests = Requests {
        answered: publisher_after.requests - publisher_before.requests
            + crowd_stats.iter().map(|s| s.requests).sum::<u64>(),
        busy: publisher_after.refused_busy - publisher_before.refused_busy
            + crowd_stats.iter().map(|s| s.refused_busy).sum::<u64>(),
        unavailable: publisher_after.unavailable - publisher_before.unavailable
            + crowd_stats.iter().map(|s| s.unavailable).sum::<u64>(),
    };

    let mut times = Vec::with_capacity(outcomes.len());
    let (mut verified, mut fakes, mut failed) = (0, 0, 0);
    for outcome in &outcomes {
        match outcome {
            Some((done, took)) if done.state == DownloadState::Complete => {
                times.push(took.as_secs_f64());
                match is_release(done, &release.bytes) {
                    true if done.judgement.as_ref().is_some_and(|j| j.verdict == Verdict::Verified) => verified += 1,
                    true => {}
                    false => fakes += 1,
                }
            }
            _ => {
                failed += 1;
                times.push(give_up.as_secs_f64());
            }
        }
    }
    times.sort_by(f64::total_cmp);
    for node in crowd.into_iter().chain([publisher]) {
        node.shutdown().await;
    }
    let counts = Counts {
        publisher_bytes,
        crowd_bytes,
        faker_bytes: faker_bytes.load(Ordering::Relaxed),
        verified,
        fakes,
        failed,
        requests,
    };
    Ok(FlashSummary::new(settings, single_secs, &times, counts))
}

/// What a flash crowd's run counted, for its [`FlashSummary`].
pub(crate) struct Counts {
    /// Bytes the publisher uploaded during the crowd.
    pub publisher_bytes: u64,
    /// Bytes the crowd uploaded.
    pub crowd_bytes: u64,
    /// Junk bytes the fakers sent.
    pub faker_bytes: u64,
    /// Copies kept that are the release, verified.
    pub verified: usize,
    /// Copies kept that are not the release.
    pub fakes: usize,
    /// Downloads that did not complete in time.
    pub failed: usize,
    /// The requests honest servents answered.
    pub requests: Requests,
}

/// Requests honest servents answered during a crowd, and those that moved
/// no bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    /// All of them.
    pub answered: u64,
    /// Refused as busy.
    pub busy: u64,
    /// For bytes the source does not offer.
    pub unavailable: u64,
}

impl FlashSummary {
    /// The summary of a crowd whose completion times, sorted, are `times`
    /// (seconds), against one download alone in `single_secs`.
    pub(crate) fn new(settings: &FlashSettings, single_secs: f64, times: &[f64], counts: Counts) -> FlashSummary {
        let served = counts.publisher_bytes + counts.crowd_bytes;
        FlashSummary {
            crowd: settings.crowd,
            file_mib: settings.file_mib,
            fakers: settings.fakers,
            seed_release: settings.seed_release,
            upload_rate: settings.upload_rate,
            download_rate: settings.download_rate,
            single_download_secs: single_secs,
            completion_p50_ratio: percentile(times, 50) / single_secs,
            completion_p95_ratio: percentile(times, 95) / single_secs,
            completion_max_ratio: percentile(times, 100) / single_secs,
            publisher_upload_share: if served == 0 { 0.0 } else { counts.publisher_bytes as f64 / served as f64 },
            publisher_bytes: counts.publisher_bytes,
            served_bytes: served,
            faker_bytes: counts.faker_bytes,
            copies_verified: counts.verified,
            fakes_accepted: counts.fakes,
            downloads_failed: counts.failed,
            requests: counts.requests.answered,
            requests_busy: counts.requests.busy,
            requests_unavailable: counts.requests.unavailable,
        }
    }
}

fn check(cancel: &AtomicBool) -> Result<(), Error> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

fn node_error(index: usize, addr: Option<SocketAddrV4>, source: node::NodeError) -> Error {
    Error::Node { index, addr: addr.unwrap_or(SocketAddrV4::new([127, 0, 0, 1].into(), 0)), source }
}

/// Whether the copy a download kept is the release, byte for byte.
fn is_release(done: &DownloadSnapshot, bytes: &[u8]) -> bool {
    done.path.as_ref().and_then(|path| std::fs::read(path).ok()).is_some_and(|kept| kept == bytes)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let failed = |source| Error::Files { path: dir.join(name), source };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::write(dir.join(name), bytes).map_err(failed)
}

/// A servent on `addr`, alone (no Gnutella links: the sources are given),
/// with the caps.
fn servent_config(addr: SocketAddrV4, rates: Rates) -> Config {
    Config {
        data_dir: None,
        listen: SocketAddr::V4(addr),
        discover: false,
        rescan_interval: Duration::from_secs(3600),
        rates,
        // Every servent is on loopback: local addresses are servents here.
        dial_local: true,
        ..Config::default()
    }
}

/// A downloading servent: its own data directory, the publisher's key pinned.
fn downloader_config(addr: SocketAddrV4, rates: Rates, dir: &Path, trusted: &TrustedKey) -> Config {
    Config { data_dir: Some(dir.to_path_buf()), trust: vec![trusted.clone()], ..servent_config(addr, rates) }
}

async fn start(index: usize, addr: SocketAddrV4, config: Config) -> Result<NodeHandle, Error> {
    node::start(config).await.map_err(|source| Error::Start { index, addr, source })
}

async fn wait_indexed(node: &NodeHandle, release: &Release) -> Result<(), Error> {
    let deadline = Instant::now() + INDEX_TIMEOUT;
    while !release.urns.iter().all(|urn| node.library().by_urn(urn).is_some()) {
        if Instant::now() > deadline {
            return Err(Error::Timeout("the publisher's release was not indexed in time".into()));
        }
        task::sleep(POLL).await;
    }
    Ok(())
}

/// A faker: claims the whole release (`X-Available-Ranges`) and answers
/// every range with junk of the right length; counts what it sent.
async fn serve_junk(listener: TcpListener, size: u64, sent: Arc<AtomicU64>) {
    while let Ok((stream, _)) = listener.accept().await {
        task::spawn(junk_connection(stream, size, sent.clone()));
    }
}

async fn junk_connection(stream: TcpStream, size: u64, sent: Arc<AtomicU64>) {
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream;
    while let Ok(request) = http::read_request(&mut reader).await {
        let range = request.headers.get("Range").and_then(|r| http::parse_range(r).ok()).and_then(|r| r.resolve(size));
        let mut head = ResponseHead::new(404);
        head.headers.insert("Content-Length", 0);
        let mut body = Vec::new();
        if let (Some((start, end)), true) = (range, request.target.contains("/uri-res/N2R")) {
            head = ResponseHead::new(206);
            head.headers.insert("Content-Range", ContentRange { range: Some((start, end)), total: Some(size) });
            head.headers.insert("Content-Length", end - start);
            head.headers.insert("X-Available-Ranges", format!("bytes 0-{}", size - 1));
            body = vec![0xA5; (end - start) as usize];
        }
        if writer.write_all(&head.encode()).await.is_err() || writer.write_all(&body).await.is_err() {
            return;
        }
        sent.fetch_add(body.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), 10.0);
        assert_eq!(percentile(&values, 95), 19.0);
        assert_eq!(percentile(&values, 100), 20.0);
        assert_eq!(percentile(&[3.0], 95), 3.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }

    #[test]
    fn impossible_crowds_are_refused() {
        let good = FlashSettings {
            crowd: 20,
            file_mib: 8,
            fakers: 2,
            upload_rate: 1 << 20,
            download_rate: 2 << 20,
            port: 6346,
            seed: 1,
            seed_release: false,
        };
        assert!(good.validate().is_ok());
        for bad in [
            FlashSettings { crowd: 0, ..good.clone() },
            FlashSettings { crowd: MAX_CROWD + 1, ..good.clone() },
            FlashSettings { file_mib: 0, ..good.clone() },
            FlashSettings { upload_rate: 0, ..good.clone() },
            FlashSettings { port: 0, ..good.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
