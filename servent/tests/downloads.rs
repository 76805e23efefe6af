//! Downloads over real HTTP on 127.0.0.1: from real servents sharing a
//! file, and from hostile sources written here as small TCP servers that
//! lie, overflow, corrupt, stall or hang up. Every download must end with
//! exactly the shared bytes, or fail with a clear reason.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_std::io::prelude::BufReadExt;
use async_std::io::{BufReader, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use common::{share, start, start_with, wait_connected, wait_for, wait_indexed, PATIENCE};
use servent::address::DialRule;
use servent::node::NodeHandle;
use servent::transfer::alt::AltLocations;
use servent::transfer::download::plan::CHUNK_SIZE;
use servent::transfer::download::{
    DownloadRequest, DownloadSnapshot, DownloadState, Downloads, DownloadsConfig, Keep, SourceSnapshot, SourceState,
};
use servent::transfer::magnet::Magnet;
use servent::transfer::push::push_only_key;
use servent::trust::SharedTrust;
use servent::wire::Guid;

const NAME: &str = "SEBLINUX-test-1.0.img";

/// Bytes that differ from chunk to chunk, so a chunk written at the wrong
/// place cannot go unnoticed.
fn content(len: u64) -> Arc<Vec<u8>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    Arc::new(bytes)
}

fn request(bytes: &[u8], sources: Vec<SocketAddrV4>) -> DownloadRequest {
    let (digests, _) = search::hash_reader(bytes).unwrap();
    DownloadRequest {
        urns: vec![digests.sha1_urn(), digests.sha256_urn()],
        name: NAME.into(),
        size: bytes.len() as u64,
        sources,
        signature: None,
        keep: Keep::NotFake,
    }
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("tests listen on IPv4"),
    }
}

/// A download manager on its own data directory, its settings adjusted,
/// counting the completions it reports.
struct Downloader {
    downloads: Downloads,
    alt: Arc<AltLocations>,
    completed: Arc<AtomicUsize>,
    dir: PathBuf,
}

fn downloader(dir: &Path, adjust: impl FnOnce(&mut DownloadsConfig)) -> Downloader {
    let mut config = DownloadsConfig::new(dir.join("partial"), dir.join("downloads"));
    config.io_timeout = Duration::from_secs(5);
    // A test network on loopback: the sources answers name are local.
    config.dial = Arc::new(RwLock::new(DialRule::new(true)));
    adjust(&mut config);
    let alt = Arc::new(AltLocations::new());
    let completed = Arc::new(AtomicUsize::new(0));
    let counter = completed.clone();
    let downloads = Downloads::spawn(config, alt.clone(), SharedTrust::default(), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    Downloader { downloads, alt, completed, dir: dir.to_path_buf() }
}

impl Downloader {
    /// Starts a download and waits for its end.
    async fn fetch(&self, request: DownloadRequest) -> DownloadSnapshot {
        let id = self.downloads.start(request).await.unwrap();
        async_std::future::timeout(PATIENCE, self.downloads.wait(id)).await.expect("download ended in time").unwrap()
    }

    /// Files left in the partial directory.
    fn partial_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.join("partial")) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn source(snapshot: &DownloadSnapshot, addr: SocketAddrV4) -> &SourceSnapshot {
    snapshot.sources.iter().find(|s| s.addr == addr).unwrap_or_else(|| panic!("{addr} not among {snapshot:#?}"))
}

/// Checks that the download completed with exactly `bytes`.
fn assert_complete(snapshot: &DownloadSnapshot, bytes: &[u8]) -> PathBuf {
    assert_eq!(snapshot.state, DownloadState::Complete, "{snapshot:#?}");
    let path = snapshot.path.clone().expect("a complete download has a path");
    assert!(std::fs::read(&path).unwrap() == bytes, "{} differs from the shared bytes", path.display());
    assert_eq!(snapshot.bytes_done, bytes.len() as u64);
    path
}

async fn sharing_servent(bytes: &[u8]) -> (NodeHandle, tempfile::TempDir) {
    let folder = share(&[(NAME, bytes)]);
    let node = start(&[], Some(folder.path())).await;
    wait_indexed(&node, "seblinux", 1).await;
    (node, folder)
}

#[test]
fn two_servents_serve_one_download_together() {
    task::block_on(async {
        let bytes = content(6 * CHUNK_SIZE + 123);
        let (a, _a_files) = sharing_servent(&bytes).await;
        let (b, _b_files) = sharing_servent(&bytes).await;
        let dir = tempfile::tempdir().unwrap();
        // No stealing, no end game: each chunk must travel once, whatever the timing.
        let downloader = downloader(dir.path(), |c| {
            c.tuning.steal_ratio = 0.0;
            c.tuning.end_game = false;
        });
        let sources = vec![v4(a.listen_addr()), v4(b.listen_addr())];

        let done = downloader.fetch(request(&bytes, sources.clone())).await;

        let path = assert_complete(&done, &bytes);
        assert_eq!(path, dir.path().join("downloads").join(NAME));
        for &addr in &sources {
            assert!(source(&done, addr).bytes > 0, "both sources served chunks: {done:#?}");
        }
        let served: u64 = [&a, &b].iter().map(|n| n.uploads().snapshot().bytes_sent).sum();
        assert_eq!(served, bytes.len() as u64, "no chunk fetched twice");
        assert_eq!(downloader.completed.load(Ordering::SeqCst), 1, "the completion hook ran");
        assert!(downloader.partial_files().is_empty(), "{:?}", downloader.partial_files());
        let sha1 = done.sha1.unwrap();
        let mut mesh = downloader.alt.get(&sha1, 10);
        mesh.sort();
        let mut expected = sources.clone();
        expected.sort();
        assert_eq!(mesh, expected, "good sources join the download mesh");
        for node in [a, b] {
            node.shutdown().await;
        }
    });
}

#[test]
fn magnet_with_a_source_downloads_and_a_second_copy_gets_a_new_name() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE / 2);
        let (node, _files) = sharing_servent(&bytes).await;
        let dir = tempfile::tempdir().unwrap();
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        std::fs::write(downloads.join(NAME), b"someone else's file").unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let (digests, _) = search::hash_reader(&bytes[..]).unwrap();
        let magnet = Magnet {
            sha1: Some(digests.sha1_urn()),
            sha256: None,
            name: Some(NAME.into()),
            size: Some(bytes.len() as u64),
            sources: vec![v4(node.listen_addr())],
        };
        let magnet = Magnet::parse(&magnet.to_uri()).unwrap();

        let done = downloader
            .fetch(DownloadRequest {
                urns: magnet.sha1.into_iter().collect(),
                name: magnet.name.unwrap(),
                size: magnet.size.unwrap(),
                sources: magnet.sources,
                signature: None,
                keep: Keep::NotFake,
            })
            .await;

        let path = assert_complete(&done, &bytes);
        assert_eq!(path, downloads.join("SEBLINUX-test-1.0 (1).img"));
        assert_eq!(std::fs::read(downloads.join(NAME)).unwrap(), b"someone else's file");
        node.shutdown().await;
    });
}

#[test]
fn malformed_magnets_get_one_clear_line() {
    for (magnet, message) in [
        ("magnet:?dn=x.img", "magnet link has no urn:sha1: or urn:sha256: exact topic (xt=…)"),
        ("magnet:?xt=urn:sha1:TOOSHORT", "magnet link has a malformed exact topic: xt=urn:sha1:TOOSHORT"),
        (
            "magnet:?xt=urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB&xl=big",
            "magnet link has a malformed exact length: xl=big",
        ),
        ("https://example.org/x.img", "not a magnet link: it must start with \"magnet:?\""),
    ] {
        assert_eq!(Magnet::parse(magnet).unwrap_err().to_string(), message);
    }
}

#[test]
fn empty_file_completes_without_a_source() {
    task::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let done = downloader.fetch(request(b"", vec![])).await;
        assert_eq!(std::fs::metadata(assert_complete(&done, b"")).unwrap().len(), 0);
    });
}

#[test]
fn absurd_requests_are_refused_and_a_repeated_one_is_the_same_download() {
    task::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let bytes = content(CHUNK_SIZE);
        let too_large = DownloadRequest { size: (1 << 40) + 1, ..request(&bytes, vec![]) };
        let error = downloader.downloads.start(too_large).await.unwrap_err();
        assert_eq!(error.to_string(), "1099511627777 bytes is more than the 1099511627776-byte limit");
        let no_urn = DownloadRequest { urns: vec![], ..request(&bytes, vec![]) };
        let error = downloader.downloads.start(no_urn).await.unwrap_err();
        assert_eq!(error.to_string(), "a download needs a urn:sha1: or urn:sha256:");

        let id = downloader.downloads.start(request(&bytes, vec![])).await.unwrap();
        let again = downloader.downloads.start(request(&bytes, vec!["10.0.0.1:6346".parse().unwrap()])).await;
        assert_eq!(again.unwrap(), id);
        assert_eq!(downloader.downloads.list().await.unwrap().len(), 1);
        downloader.downloads.cancel(id).await.unwrap();
    });
}

#[test]
fn a_second_get_naming_the_file_by_another_kind_of_urn_joins_the_running_download() {
    task::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let bytes = content(CHUNK_SIZE);
        let both = request(&bytes, vec![]);
        let (sha1, sha256) = (both.urns[0], both.urns[1]);
        // A magnet naming it by SHA-256 alone, then a `get` by SHA-1 that a
        // search completed with both names: one download.
        let by_sha256 = DownloadRequest { urns: vec![sha256], ..request(&bytes, vec![]) };
        let id = downloader.downloads.start(by_sha256).await.unwrap();
        let by_sha1 =
            DownloadRequest { urns: vec![sha1, sha256], ..request(&bytes, vec!["10.0.0.1:6346".parse().unwrap()]) };
        assert_eq!(downloader.downloads.start(by_sha1).await.unwrap(), id);
        // The other way round, as a bitprint magnet (its SHA-1) then a `get` by SHA-256.
        let other = content(CHUNK_SIZE + 1);
        let other_both = request(&other, vec![]);
        let by_bitprint = DownloadRequest { urns: vec![other_both.urns[0]], ..request(&other, vec![]) };
        let other_id = downloader.downloads.start(by_bitprint).await.unwrap();
        assert_ne!(other_id, id);
        assert_eq!(downloader.downloads.start(other_both).await.unwrap(), other_id);
        // Its SHA-256 paired with another SHA-1 is another claim, not this download.
        let third = content(CHUNK_SIZE + 2);
        let third_both = request(&third, vec![]);
        let third_sha256 = third_both.urns[1];
        let third_id = downloader.downloads.start(third_both).await.unwrap();
        let contradicting = DownloadRequest { urns: vec![sha1, third_sha256], ..request(&third, vec![]) };
        assert_ne!(downloader.downloads.start(contradicting).await.unwrap(), third_id);
        assert_eq!(downloader.downloads.list().await.unwrap().len(), 4);
        for download in downloader.downloads.list().await.unwrap() {
            downloader.downloads.cancel(download.id).await.unwrap();
        }
    });
}

#[test]
fn download_without_a_usable_source_fails_with_the_reasons() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE);
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |c| c.give_up_after = Duration::from_millis(200));
        // Nothing listens there: connections are refused, three times.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nobody = v4(closed.local_addr().unwrap());
        drop(closed);

        let done = downloader.fetch(request(&bytes, vec![nobody])).await;

        let DownloadState::Failed { reason } = &done.state else { panic!("{done:#?}") };
        assert!(reason.starts_with("no usable source left"), "{reason}");
        assert!(reason.contains(&nobody.to_string()) && reason.contains("cannot connect"), "{reason}");
        assert_eq!(source(&done, nobody).state, SourceState::Dropped);
    });
}

// ---- Hostile sources ------------------------------------------------------

/// How a test source answers a range request.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// As a servent should.
    Honest,
    /// Announces and sends another range than the one asked for.
    WrongRange,
    /// Announces the right range, then sends more bytes than it.
    MoreThanAsked,
    /// Announces a longer body than the range asked for.
    LongerLength,
    /// The right range with one byte changed.
    WrongBytes,
    /// Half the chunk, then silence with the connection open.
    StallMidChunk,
    /// Half the chunk, then closes the connection.
    CloseEarly,
    /// Honest for this many requests, then silent.
    StallAfter(usize),
    /// `503` with `Retry-After: 1` for the first request, then honest.
    BusyOnce,
    /// At most this many bytes per answer (a shorter `206`), on the same
    /// kept-alive connection, as gtk-gnutella does.
    ShortRanges(u64),
    /// Queues the first requests (PARQ, `Retry-After: 1`, the connection
    /// kept), moving one place up each time, then serves; counts requests
    /// that came back without the queue ID or before the `Retry-After`.
    Queues { places: usize },
    /// `409 Already downloading this file` for the first request, then honest.
    ConflictOnce,
    /// `404 Not Found`, always.
    NotFound,
}

/// The queue ID a [`Behaviour::Queues`] source gives.
const QUEUE_ID: &str = "6a074979f3201edbf323b6425fef4a53";

/// A source written by hand: it serves `bytes` for any target, behaving
/// as told, and counts the body bytes it sent and the requests it got.
struct TestSource {
    addr: SocketAddrV4,
    sent: Arc<AtomicU64>,
    requests: Arc<AtomicUsize>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Requests that broke the rules it set (see [`Behaviour::Queues`]).
    violations: Arc<AtomicUsize>,
}

async fn test_source(bytes: Arc<Vec<u8>>, behaviour: Behaviour) -> TestSource {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = v4(listener.local_addr().unwrap());
    let source = TestSource {
        addr,
        sent: Arc::new(AtomicU64::new(0)),
        requests: Arc::new(AtomicUsize::new(0)),
        connections: Arc::new(AtomicUsize::new(0)),
        violations: Arc::new(AtomicUsize::new(0)),
    };
    let counters = Counters {
        sent: source.sent.clone(),
        requests: source.requests.clone(),
        violations: source.violations.clone(),
        last_refusal: Arc::new(std::sync::Mutex::new(None)),
    };
    let connections = source.connections.clone();
    task::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            connections.fetch_add(1, Ordering::SeqCst);
            task::spawn(serve_test_connection(stream, bytes.clone(), behaviour, counters.clone()));
        }
    });
    source
}

/// What a test source counts, shared by its connections.
#[derive(Clone)]
struct Counters {
    sent: Arc<AtomicU64>,
    requests: Arc<AtomicUsize>,
    violations: Arc<AtomicUsize>,
    /// When it last refused with `Retry-After: 1`.
    last_refusal: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

async fn serve_test_connection(stream: TcpStream, bytes: Arc<Vec<u8>>, behaviour: Behaviour, counters: Counters) {
    let Counters { sent, requests, violations, last_refusal } = counters;
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream;
    let size = bytes.len() as u64;
    while let Some(((start, end), x_queued)) = read_range_request(&mut reader).await {
        let (start, end) = (start.min(size), end.min(size));
        let nth = requests.fetch_add(1, Ordering::SeqCst);
        let refused_at = last_refusal.lock().unwrap().take();
        if refused_at.is_some_and(|at| at.elapsed() < Duration::from_millis(950)) {
            violations.fetch_add(1, Ordering::SeqCst);
        }
        let len = end - start;
        let head = |from: u64, to: u64, length: u64| {
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{size}\r\nContent-Length: {length}\r\n\r\n",
                to - 1
            )
        };
        let body = &bytes[start as usize..end as usize];
        let half = &body[..body.len() / 2];
        let mut reply = Vec::new();
        let mut hang = false;
        match behaviour {
            Behaviour::Honest => reply = [head(start, end, len).as_bytes(), body].concat(),
            Behaviour::StallAfter(n) if nth < n => reply = [head(start, end, len).as_bytes(), body].concat(),
            Behaviour::StallAfter(_) => hang = true,
            Behaviour::BusyOnce if nth == 0 => {
                reply =
                    b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
            }
            Behaviour::BusyOnce => reply = [head(start, end, len).as_bytes(), body].concat(),
            Behaviour::ConflictOnce if nth == 0 => {
                reply = b"HTTP/1.1 409 Already downloading this file\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            Behaviour::ConflictOnce => reply = [head(start, end, len).as_bytes(), body].concat(),
            Behaviour::NotFound => reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Behaviour::ShortRanges(most) => {
                let end = end.min(start + most);
                reply = [head(start, end, end - start).as_bytes(), &bytes[start as usize..end as usize]].concat();
            }
            Behaviour::Queues { places } if nth < places => {
                if nth > 0 && !x_queued.is_some_and(|v| v.contains(&format!("ID={QUEUE_ID}"))) {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                let position = places - nth;
                reply = format!(
                    "HTTP/1.1 503 Queued\r\nRetry-After: 1\r\nX-Queued: position={position}; length={places}; \
                     lifetime=30; ID={QUEUE_ID}\r\nContent-Length: 5\r\n\r\nwait!"
                )
                .into_bytes();
            }
            Behaviour::Queues { .. } => reply = [head(start, end, len).as_bytes(), body].concat(),
            Behaviour::WrongRange => {
                let other = if start == 0 { len } else { 0 };
                let other_body = &bytes[other as usize..(other + len) as usize];
                reply = [head(other, other + len, len).as_bytes(), other_body].concat();
            }
            Behaviour::MoreThanAsked => reply = [head(start, end, len).as_bytes(), body, &[0xAB; 1000]].concat(),
            Behaviour::LongerLength => reply = [head(start, end, len + 1000).as_bytes(), body, &[0; 1000]].concat(),
            Behaviour::WrongBytes => {
                let mut corrupt = body.to_vec();
                corrupt[0] ^= 0xFF;
                reply = [head(start, end, len).as_bytes(), &corrupt].concat();
            }
            Behaviour::StallMidChunk => {
                reply = [head(start, end, len).as_bytes(), half].concat();
                hang = true;
            }
            Behaviour::CloseEarly => reply = [head(start, end, len).as_bytes(), half].concat(),
        }
        // Taken before the refusal is written: a clock read after it could
        // lag the downloader's, which reads the refusal meanwhile.
        if reply.starts_with(b"HTTP/1.1 503") {
            *last_refusal.lock().unwrap() = Some(std::time::Instant::now());
        }
        if writer.write_all(&reply).await.is_err() {
            return;
        }
        let head_len = reply.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
        if reply.starts_with(b"HTTP/1.1 206") {
            sent.fetch_add((reply.len() - head_len) as u64, Ordering::SeqCst);
        }
        if hang {
            task::sleep(PATIENCE).await;
            return;
        }
        let closes = matches!(behaviour, Behaviour::CloseEarly) || matches!(behaviour, Behaviour::BusyOnce) && nth == 0;
        if closes {
            return;
        }
    }
}

/// Reads one request head; the byte range its `Range` asks for, as
/// `start..end` (the whole file when there is none), and its `X-Queued`.
/// `None` once the connection is closed.
async fn read_range_request(reader: &mut BufReader<TcpStream>) -> Option<((u64, u64), Option<String>)> {
    let mut range = (0, u64::MAX);
    let mut x_queued = None;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() && !first {
            return Some((range, x_queued));
        }
        first = false;
        if let Some(value) = line.strip_prefix("X-Queued: ") {
            x_queued = Some(value.to_string());
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = value.split_once('-')?;
            range = (a.parse().ok()?, b.parse::<u64>().ok()? + 1);
        }
    }
}

/// Downloads a four-chunk file from a hostile source and a good servent
/// together; the download must complete verified, the hostile source must
/// have been charged with `expected` in its note, and the good servent
/// must have sent each chunk at most once more than needed.
async fn hostile_costs_only_its_chunks(behaviour: Behaviour, expected: &str) {
    let bytes = content(4 * CHUNK_SIZE);
    let (good, _files) = sharing_servent(&bytes).await;
    let hostile = test_source(bytes.clone(), behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    let downloader = downloader(dir.path(), |c| {
        c.io_timeout = Duration::from_secs(2);
        // No stealing: the hostile source's chunk must fail, not be overtaken.
        c.tuning.stall = Duration::from_secs(60);
        c.tuning.steal_ratio = 0.0;
        c.tuning.end_game = false;
    });

    // The hostile source first, so that it gets a chunk before the good
    // one is done with everything.
    let done = downloader.fetch(request(&bytes, vec![hostile.addr, v4(good.listen_addr())])).await;

    assert_complete(&done, &bytes);
    assert!(hostile.requests.load(Ordering::SeqCst) > 0, "the hostile source was asked");
    let charged = source(&done, hostile.addr);
    assert_eq!(charged.bytes, 0, "nothing from it was kept: {charged:#?}");
    assert!(charged.note.as_deref().is_some_and(|n| n.contains(expected)), "{behaviour:?}: {charged:#?}");
    assert_eq!(source(&done, v4(good.listen_addr())).bytes, bytes.len() as u64);
    assert_eq!(good.uploads().snapshot().bytes_sent, bytes.len() as u64, "good chunks fetched once");
    good.shutdown().await;
}

#[test]
fn source_lying_about_the_range_costs_only_its_chunks() {
    task::block_on(hostile_costs_only_its_chunks(Behaviour::WrongRange, "sent Content-Range"));
}

#[test]
fn source_sending_more_than_asked_costs_only_its_chunks() {
    task::block_on(hostile_costs_only_its_chunks(Behaviour::MoreThanAsked, "sent more than"));
}

#[test]
fn source_announcing_a_longer_body_costs_only_its_chunks() {
    task::block_on(hostile_costs_only_its_chunks(Behaviour::LongerLength, "announced"));
}

#[test]
fn source_stalling_mid_chunk_costs_only_its_chunks() {
    task::block_on(hostile_costs_only_its_chunks(Behaviour::StallMidChunk, "stalled after"));
}

#[test]
fn source_closing_early_costs_only_its_chunks() {
    task::block_on(hostile_costs_only_its_chunks(Behaviour::CloseEarly, "closed the connection after"));
}

#[test]
fn stalled_chunk_is_taken_over_before_the_timeout() {
    task::block_on(async {
        let bytes = content(2 * CHUNK_SIZE);
        let (good, _files) = sharing_servent(&bytes).await;
        let stalling = test_source(bytes.clone(), Behaviour::StallMidChunk).await;
        let dir = tempfile::tempdir().unwrap();
        // The stalled read would only fail after a minute: the chunk must
        // be stolen long before.
        let downloader = downloader(dir.path(), |c| {
            c.io_timeout = PATIENCE * 2;
            c.tuning.stall = Duration::from_millis(300);
            // From the front: the first source serves the first two.
            c.tuning.shuffle = false;
        });
        let done = downloader.fetch(request(&bytes, vec![stalling.addr, v4(good.listen_addr())])).await;
        assert_complete(&done, &bytes);
        assert_eq!(source(&done, stalling.addr).bytes, 0);
        good.shutdown().await;
    });
}

#[test]
fn busy_source_is_retried_after_retry_after() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE + 1);
        let busy = test_source(bytes.clone(), Behaviour::BusyOnce).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let done = downloader.fetch(request(&bytes, vec![busy.addr])).await;
        assert_complete(&done, &bytes);
        assert_eq!(source(&done, busy.addr).errors, 0, "busy is no fault");
        assert_eq!(busy.requests.load(Ordering::SeqCst), 3, "one refused, then both chunks");
    });
}

#[test]
fn shorter_ranges_are_progress_on_the_same_connection() {
    task::block_on(async {
        // gtk-gnutella answers a 1 MiB request with 512 KiB; this one with
        // 100,000 bytes, so that pieces straddle chunk boundaries.
        let bytes = content(3 * CHUNK_SIZE + 77);
        let short = test_source(bytes.clone(), Behaviour::ShortRanges(100_000)).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let done = downloader.fetch(request(&bytes, vec![short.addr])).await;
        assert_complete(&done, &bytes);
        let served = source(&done, short.addr);
        assert_eq!((served.bytes, served.errors), (bytes.len() as u64, 0), "{served:#?}");
        assert_eq!(short.sent.load(Ordering::SeqCst), bytes.len() as u64, "no byte fetched twice");
        assert_eq!(short.connections.load(Ordering::SeqCst), 1, "one kept-alive connection");
        // Four chunks, each in ⌈256 KiB / 100,000⌉ = 3 pieces, the last one in one.
        assert_eq!(short.requests.load(Ordering::SeqCst), 3 * 3 + 1);
    });
}

#[test]
fn source_answering_tiny_ranges_costs_only_its_chunks() {
    task::block_on(async {
        let bytes = content(3 * CHUNK_SIZE);
        let (good, _files) = sharing_servent(&bytes).await;
        let tiny = test_source(bytes.clone(), Behaviour::ShortRanges(1000)).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |c| {
            c.tuning.steal_ratio = 0.0;
            c.tuning.end_game = false;
        });
        let done = downloader.fetch(request(&bytes, vec![tiny.addr, v4(good.listen_addr())])).await;
        assert_complete(&done, &bytes);
        let charged = source(&done, tiny.addr);
        assert!(charged.note.as_deref().is_some_and(|n| n.contains("ranges for one chunk")), "{charged:#?}");
        assert!(tiny.requests.load(Ordering::SeqCst) <= 3 * 64, "bounded requests per chunk");
        good.shutdown().await;
    });
}

#[test]
fn queued_source_keeps_our_place_and_serves_in_turn() {
    task::block_on(async {
        let bytes = content(2 * CHUNK_SIZE + 5);
        let queue = test_source(bytes.clone(), Behaviour::Queues { places: 3 }).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let id = downloader.downloads.start(request(&bytes, vec![queue.addr])).await.unwrap();
        let downloads = &downloader.downloads;
        wait_for("the source to queue us", || async move {
            let snapshot = downloads.get(id).await.unwrap();
            snapshot.sources.iter().any(|s| {
                s.state == SourceState::Queued && s.note.as_deref().is_some_and(|n| n.contains("position 2 of 3"))
            })
        })
        .await;
        let done = async_std::future::timeout(PATIENCE, downloads.wait(id)).await.unwrap().unwrap();
        assert_complete(&done, &bytes);
        assert_eq!(source(&done, queue.addr).errors, 0, "a queue is no fault");
        assert_eq!(queue.violations.load(Ordering::SeqCst), 0, "came back after Retry-After, with the queue ID");
        assert_eq!(queue.connections.load(Ordering::SeqCst), 1, "the queued connection was kept");
        assert_eq!(queue.requests.load(Ordering::SeqCst), 3 + 3, "three queued answers, then the three chunks");
    });
}

#[test]
fn conflict_from_gtk_gnutella_waits_instead_of_dropping_the_source() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE + 1);
        let conflicting = test_source(bytes.clone(), Behaviour::ConflictOnce).await;
        let dir = tempfile::tempdir().unwrap();
        // The 409 gives no Retry-After: the default is a minute, too long for a test.
        let downloader = downloader(dir.path(), |_| {});
        let id = downloader.downloads.start(request(&bytes, vec![conflicting.addr])).await.unwrap();
        let downloads = &downloader.downloads;
        wait_for("the source to be parked", || async move {
            let snapshot = downloads.get(id).await.unwrap();
            snapshot.sources.iter().any(|s| {
                s.state == SourceState::Busy
                    && s.errors == 0
                    && s.note.as_deref().is_some_and(|n| n.contains("409 Already downloading this file"))
            })
        })
        .await;
        task::sleep(Duration::from_millis(500)).await;
        assert_eq!(conflicting.requests.load(Ordering::SeqCst), 1, "not asked again at once");
        downloads.cancel(id).await.unwrap();
    });
}

/// Waits until download `id` shows `stalled`; its reason.
async fn stalled_reason(downloads: &Downloads, id: servent::transfer::download::DownloadId) -> String {
    let mut reason = String::new();
    wait_for("the download to say it is stalled", || {
        let found = task::block_on(downloads.get(id)).unwrap();
        let stalled = match found.state {
            DownloadState::Stalled { reason: why } => {
                reason = why;
                true
            }
            _ => false,
        };
        async move { stalled }
    })
    .await;
    reason
}

#[test]
fn download_whose_sources_are_all_dropped_says_stalled_and_why_then_recovers() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE + 3);
        let gone = test_source(bytes.clone(), Behaviour::NotFound).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |c| c.stall_after = Duration::from_millis(300));
        let id = downloader.downloads.start(request(&bytes, vec![gone.addr])).await.unwrap();
        let reason = stalled_reason(&downloader.downloads, id).await;
        assert_eq!(reason, format!("every source dropped ({}: does not have the file: 404 Not Found)", gone.addr));

        // A source that serves brings it back to life.
        let good = test_source(bytes.clone(), Behaviour::Honest).await;
        downloader.downloads.add_sources(&request(&bytes, vec![]).urns[0], vec![good.addr]).await.unwrap();
        let done = async_std::future::timeout(PATIENCE, downloader.downloads.wait(id)).await.unwrap().unwrap();
        assert_complete(&done, &bytes);
    });
}

#[test]
fn download_queued_everywhere_or_without_sources_says_stalled() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE);
        let queue = test_source(bytes.clone(), Behaviour::Queues { places: 1000 }).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |c| c.stall_after = Duration::from_millis(300));
        let id = downloader.downloads.start(request(&bytes, vec![queue.addr])).await.unwrap();
        let reason = stalled_reason(&downloader.downloads, id).await;
        assert!(reason.starts_with("queued at every source for "), "{reason}");
        assert!(reason.contains(&format!("{}: queued at position ", queue.addr)), "{reason}");
        downloader.downloads.cancel(id).await.unwrap();

        let nothing = content(CHUNK_SIZE / 2);
        let id = downloader.downloads.start(request(&nothing, vec![])).await.unwrap();
        let reason = stalled_reason(&downloader.downloads, id).await;
        assert!(reason.starts_with("no source known for "), "{reason}");
        downloader.downloads.cancel(id).await.unwrap();
    });
}

#[test]
fn corrupt_data_is_discarded_its_source_marked_and_the_file_fetched_again() {
    task::block_on(async {
        let bytes = content(3 * CHUNK_SIZE);
        let corrupt = test_source(bytes.clone(), Behaviour::WrongBytes).await;
        let (good, _files) = sharing_servent(&bytes).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let id = downloader.downloads.start(request(&bytes, vec![corrupt.addr])).await.unwrap();
        // Every chunk came from the corrupt source; verification fails, it
        // is marked, and the download waits for another source.
        let downloads = &downloader.downloads;
        wait_for("the corrupt source to be marked", || async move {
            let snapshot = downloads.get(id).await.unwrap();
            snapshot.sources.iter().any(|s| s.addr == corrupt.addr && s.state == SourceState::Corrupt)
        })
        .await;
        assert!(!downloads_dir_has_files(dir.path()), "nothing unverified reaches the downloads directory");
        let sha1 = request(&bytes, vec![]).urns[0];
        downloader.downloads.add_sources(&sha1, vec![corrupt.addr, v4(good.listen_addr())]).await.unwrap();

        let done = downloader.downloads.wait(id).await.unwrap();

        assert_complete(&done, &bytes);
        let marked = source(&done, corrupt.addr);
        assert_eq!(marked.state, SourceState::Corrupt, "not taken back: {marked:#?}");
        assert!(marked.note.as_deref().is_some_and(|n| n.contains("failed verification")), "{marked:#?}");
        assert_eq!(corrupt.sent.load(Ordering::SeqCst), bytes.len() as u64, "asked once per chunk, never again");
        assert_eq!(good.uploads().snapshot().bytes_sent, bytes.len() as u64);
        assert!(downloader.alt.get(&sha1, 10).iter().all(|&a| a != corrupt.addr));
        good.shutdown().await;
    });
}

fn downloads_dir_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("downloads")).is_ok_and(|mut entries| entries.next().is_some())
}

#[test]
fn stopped_download_resumes_without_fetching_done_chunks_again() {
    task::block_on(async {
        let bytes = content(5 * CHUNK_SIZE + 7);
        let dir = tempfile::tempdir().unwrap();
        let first = test_source(bytes.clone(), Behaviour::StallAfter(2)).await;
        // From the front: the two chunks it serves are whole ones.
        let downloader = downloader(dir.path(), |c| {
            c.io_timeout = PATIENCE * 2;
            c.tuning.shuffle = false;
        });
        let id = downloader.downloads.start(request(&bytes, vec![first.addr])).await.unwrap();
        let downloads = &downloader.downloads;
        wait_for("two chunks on disk", || async move { downloads.get(id).await.unwrap().bytes_done == 2 * CHUNK_SIZE })
            .await;
        downloader.downloads.shutdown().await;
        assert_eq!(first.sent.load(Ordering::SeqCst), 2 * CHUNK_SIZE);

        // A new servent on the same data directory, and the file now at
        // an honest source: only the three missing chunks travel.
        let second = test_source(bytes.clone(), Behaviour::Honest).await;
        let restarted = downloader_with_sources_replaced(dir.path(), first.addr, second.addr);
        let resumed = restarted.downloads.resume_all().await.unwrap();
        assert!(resumed.problems.is_empty(), "{:?}", resumed.problems);
        assert_eq!(resumed.ids.len(), 1);
        let done = restarted.downloads.wait(resumed.ids[0]).await.unwrap();

        assert_complete(&done, &bytes);
        assert_eq!(second.sent.load(Ordering::SeqCst), bytes.len() as u64 - 2 * CHUNK_SIZE);
        assert!(restarted.partial_files().is_empty());
    });
}

/// A downloader on `dir` whose saved state names `new` where it said `old`
/// (the old source has gone away; the state file is rewritten as a user
/// cannot, but the chunks on disk are untouched).
fn downloader_with_sources_replaced(dir: &Path, old: SocketAddrV4, new: SocketAddrV4) -> Downloader {
    for entry in std::fs::read_dir(dir.join("partial")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "state") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace(&old.to_string(), &new.to_string())).unwrap();
        }
    }
    downloader(dir, |_| {})
}

/// Environment of the child process that [`killed_download_resumes_from_its_state_file`]
/// kills: the data directory, the source and the size.
const CHILD_ENV: &str = "SERVENT_TEST_KILLED_DOWNLOAD";

#[test]
fn killed_download_resumes_from_its_state_file() {
    task::block_on(async {
        let size = 5 * CHUNK_SIZE + 7;
        let bytes = content(size);
        let dir = tempfile::tempdir().unwrap();
        let first = test_source(bytes.clone(), Behaviour::StallAfter(2)).await;
        let mut child = Killed(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "download_until_killed", "--ignored", "--nocapture"])
                .env(CHILD_ENV, format!("{} {} {size}", dir.path().display(), first.addr))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let sha1 = request(&bytes, vec![]).urns[0];
        let state = dir.path().join("partial").join(format!("{}.state", sha1.base32()));
        let two_chunks = serde_json::json!([[0, 2 * CHUNK_SIZE]]);
        wait_for("the state file to count two chunks", || {
            let text = std::fs::read(&state).unwrap_or_default();
            let done = serde_json::from_slice::<serde_json::Value>(&text).is_ok_and(|v| v["done"] == two_chunks);
            async move { done }
        })
        .await;
        child.0.kill().unwrap();
        child.0.wait().unwrap();

        let second = test_source(bytes.clone(), Behaviour::Honest).await;
        let restarted = downloader_with_sources_replaced(dir.path(), first.addr, second.addr);
        let resumed = restarted.downloads.resume_all().await.unwrap();
        assert_eq!(resumed.ids.len(), 1, "{:?}", resumed.problems);
        let done = restarted.downloads.wait(resumed.ids[0]).await.unwrap();

        assert_complete(&done, &bytes);
        assert_eq!(second.sent.load(Ordering::SeqCst), size - 2 * CHUNK_SIZE, "done chunks are not fetched again");
    });
}

/// A child process, killed when the test ends however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The process [`killed_download_resumes_from_its_state_file`] kills with
/// SIGKILL in the middle of a download; does nothing on its own.
#[test]
#[ignore = "run in a child process by killed_download_resumes_from_its_state_file"]
fn download_until_killed() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.split(' ');
    let (Some(dir), Some(source), Some(size)) = (parts.next(), parts.next(), parts.next()) else { return };
    let bytes = content(size.parse().unwrap());
    task::block_on(async {
        // Chunks from the front, so that the state file's two are known.
        let downloader = downloader(Path::new(dir), |c| {
            c.io_timeout = PATIENCE * 2;
            c.tuning.shuffle = false;
        });
        let id = downloader.downloads.start(request(&bytes, vec![source.parse().unwrap()])).await.unwrap();
        downloader.downloads.wait(id).await.unwrap();
        unreachable!("the source stalls: the download cannot end before the kill");
    });
}

#[test]
fn corrupt_state_file_is_reported_and_others_resume() {
    task::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("partial");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB.state"), b"{ not json").unwrap();
        std::fs::write(partial.join("PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB.part"), b"kept").unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let resumed = downloader.downloads.resume_all().await.unwrap();
        assert!(resumed.ids.is_empty());
        assert_eq!(resumed.problems.len(), 1);
        assert!(resumed.problems[0].contains("not a download state"), "{:?}", resumed.problems);
        assert_eq!(std::fs::read(partial.join("PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB.part")).unwrap(), b"kept");
        assert!(partial.join("PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB.state.corrupt").exists());
    });
}

#[test]
fn cancelled_download_leaves_nothing_behind() {
    task::block_on(async {
        let bytes = content(3 * CHUNK_SIZE);
        let dir = tempfile::tempdir().unwrap();
        let source = test_source(bytes.clone(), Behaviour::StallAfter(1)).await;
        let downloader = downloader(dir.path(), |c| c.io_timeout = PATIENCE * 2);
        let id = downloader.downloads.start(request(&bytes, vec![source.addr])).await.unwrap();
        let downloads = &downloader.downloads;
        wait_for("a chunk on disk", || async move { downloads.get(id).await.unwrap().bytes_done > 0 }).await;
        downloader.downloads.cancel(id).await.unwrap();
        let done = downloader.downloads.wait(id).await.unwrap();
        assert_eq!(done.state, DownloadState::Cancelled);
        assert!(downloader.partial_files().is_empty(), "{:?}", downloader.partial_files());
        assert!(!downloads_dir_has_files(dir.path()));
    });
}

#[test]
fn paused_download_keeps_its_chunks_and_resumes_where_it_stopped() {
    task::block_on(async {
        let bytes = content(4 * CHUNK_SIZE + 11);
        let dir = tempfile::tempdir().unwrap();
        let first = test_source(bytes.clone(), Behaviour::StallAfter(2)).await;
        // The first source still stalls after the resume: its chunk goes to
        // the second soon.
        let downloader = downloader(dir.path(), |c| {
            c.io_timeout = PATIENCE * 2;
            c.tuning.stall = Duration::from_millis(300);
            // From the front: the first source serves the first two.
            c.tuning.shuffle = false;
        });
        let downloads = &downloader.downloads;
        let id = downloads.start(request(&bytes, vec![first.addr])).await.unwrap();
        wait_for("two chunks on disk", || async move { downloads.get(id).await.unwrap().bytes_done == 2 * CHUNK_SIZE })
            .await;

        downloads.pause(id).await.unwrap();
        wait_for(
            "the download to pause",
            || async move { downloads.get(id).await.unwrap().state == DownloadState::Paused },
        )
        .await;
        let paused = downloads.get(id).await.unwrap();
        assert_eq!((paused.bytes_done, paused.bytes_in_flight, paused.rate_bytes_per_sec), (2 * CHUNK_SIZE, 0, 0.0));
        assert_eq!(downloader.partial_files().len(), 2, "the .part and .state stay: {:?}", downloader.partial_files());
        downloads.pause(id).await.unwrap();
        assert_eq!(downloads.get(id).await.unwrap().state, DownloadState::Paused, "pausing twice is pausing");

        // A source learnt while paused is used once resumed; the chunks
        // already on disk do not travel again.
        let second = test_source(bytes.clone(), Behaviour::Honest).await;
        downloads.add_sources(&request(&bytes, vec![]).urns[0], vec![second.addr]).await.unwrap();
        downloads.resume(id).await.unwrap();
        let done =
            async_std::future::timeout(PATIENCE, downloads.wait(id)).await.expect("resumed download ends").unwrap();

        assert_complete(&done, &bytes);
        assert_eq!(second.sent.load(Ordering::SeqCst), bytes.len() as u64 - 2 * CHUNK_SIZE);
        assert_eq!(downloads.pause(id).await.unwrap_err().to_string(), format!("download {id} has already ended"));
        assert_eq!(downloads.resume(id).await.unwrap_err().to_string(), format!("download {id} has already ended"));
    });
}

#[test]
fn queued_download_paused_waits_for_its_resume() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE / 4);
        let (node, _files) = sharing_servent(&bytes).await;
        let dir = tempfile::tempdir().unwrap();
        let stalled = test_source(content(CHUNK_SIZE), Behaviour::StallAfter(0)).await;
        // One slot, taken by a download that never ends: the next one queues.
        let downloader = downloader(dir.path(), |c| {
            c.max_active = 1;
            c.io_timeout = PATIENCE * 2;
        });
        let downloads = &downloader.downloads;
        let blocker = downloads.start(request(&content(CHUNK_SIZE), vec![stalled.addr])).await.unwrap();
        let id = downloads.start(request(&bytes, vec![v4(node.listen_addr())])).await.unwrap();
        assert_eq!(downloads.get(id).await.unwrap().state, DownloadState::Queued);

        downloads.pause(id).await.unwrap();
        assert_eq!(downloads.get(id).await.unwrap().state, DownloadState::Paused);
        downloads.cancel(blocker).await.unwrap();
        downloads.wait(blocker).await.unwrap();
        assert_eq!(downloads.get(id).await.unwrap().state, DownloadState::Paused, "a free slot does not start it");

        downloads.resume(id).await.unwrap();
        assert_complete(&downloads.wait(id).await.unwrap(), &bytes);
        node.shutdown().await;
    });
}

// ---- A full disk ----------------------------------------------------------

/// A 1 MiB tmpfs mounted for the test's duration, when this machine lets
/// us mount one (as root); unmounted on drop, even when the test fails.
struct TinyDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl TinyDisk {
    fn mount() -> Option<TinyDisk> {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("tiny");
        std::fs::create_dir(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root); the full-disk path is not tested");
            return None;
        }
        Some(TinyDisk { path, _parent: parent })
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn full_disk_fails_the_download_clearly_and_leaves_the_library_alone() {
    let Some(disk) = TinyDisk::mount() else { return };
    task::block_on(async {
        let bytes = content(4 * CHUNK_SIZE);
        let source = test_source(bytes.clone(), Behaviour::Honest).await;
        let dir = tempfile::tempdir().unwrap();

        // Partial data on the tiny disk: writing the second chunk fails.
        let cramped = downloader(dir.path(), |c| c.partial_dir = disk.path.join("partial"));
        let done = cramped.fetch(request(&bytes, vec![source.addr])).await;
        let DownloadState::Failed { reason } = &done.state else { panic!("{done:#?}") };
        assert!(reason.starts_with("no space left on device writing "), "{reason}");
        assert!(reason.contains(&disk.path.display().to_string()), "{reason}");
        assert!(!downloads_dir_has_files(dir.path()));
        std::fs::remove_dir_all(disk.path.join("partial")).unwrap();

        // The downloads directory on the tiny disk: the verified file
        // cannot be placed, and nothing half-written stays there.
        let library = disk.path.join("library");
        std::fs::create_dir_all(&library).unwrap();
        std::fs::write(library.join("already.txt"), b"mine").unwrap();
        let other = tempfile::tempdir().unwrap();
        let cramped = downloader(other.path(), |c| c.downloads_dir = library.clone());
        let done = cramped.fetch(request(&bytes, vec![source.addr])).await;
        let DownloadState::Failed { reason } = &done.state else { panic!("{done:#?}") };
        assert!(reason.starts_with("no space left on device writing "), "{reason}");
        let names: Vec<_> = std::fs::read_dir(&library).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["already.txt"], "the library is as it was");
        assert!(!cramped.partial_files().is_empty(), "the verified data is kept to retry");
    });
}

/// A release signature of `content` by `key`.
fn release_signature(key: &signing_tool::SecretKey, content: &[u8]) -> Arc<signing_tool::Minisig> {
    let mut signer = signing_tool::Signer::new();
    signer.update(content);
    let meta = signing_tool::ReleaseMeta { name: "SEBLINUX-test".into(), version: "1.0".into(), keywords: vec![] };
    Arc::new(signer.finish(key, NAME, Some(&meta), 1_700_000_000).unwrap())
}

#[test]
fn bytes_that_contradict_their_signature_are_rejected_and_leave_nothing() {
    task::block_on(async {
        let publisher = signing_tool::SecretKey::generate().unwrap();
        let genuine = content(3 * CHUNK_SIZE);
        let signature = release_signature(&publisher, &genuine);
        let truncated = genuine[..2 * CHUNK_SIZE as usize + 10].to_vec();
        let tampered: Vec<u8> = genuine.iter().map(|b| b ^ 1).collect();
        let mut trust = servent::trust::TrustStore::in_memory();
        trust.add(publisher.public_key(), vec![]).unwrap();
        let trust = SharedTrust::new(trust);

        for (bytes, expected) in [(&truncated, "signed for"), (&tampered, "other content")] {
            let source = test_source(Arc::new(bytes.clone()), Behaviour::Honest).await;
            let dir = tempfile::tempdir().unwrap();
            let config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
            let downloads = Downloads::spawn(config, Arc::new(AltLocations::new()), trust.clone(), |_| {});
            let request = DownloadRequest { signature: Some(signature.clone()), ..request(bytes, vec![source.addr]) };
            let id = downloads.start(request).await.unwrap();
            let done = downloads.wait(id).await.unwrap();
            let DownloadState::Failed { reason } = &done.state else { panic!("{done:#?}") };
            assert!(reason.starts_with("fake: ") && reason.contains(expected), "{reason}");
            assert!(!downloads_dir_has_files(dir.path()));
            let left: Vec<_> = std::fs::read_dir(dir.path().join("partial")).unwrap().collect();
            assert!(left.is_empty(), "{left:?}");
        }

        // The genuine bytes under the same signature are kept, signature beside them.
        let source = test_source(genuine.clone(), Behaviour::Honest).await;
        let dir = tempfile::tempdir().unwrap();
        let config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
        let downloads = Downloads::spawn(config, Arc::new(AltLocations::new()), trust, |_| {});
        let request = DownloadRequest {
            signature: Some(signature.clone()),
            keep: Keep::Verified,
            ..request(&genuine, vec![source.addr])
        };
        let id = downloads.start(request).await.unwrap();
        let done = downloads.wait(id).await.unwrap();
        let path = assert_complete(&done, &genuine);
        let beside = std::fs::read_to_string(format!("{}.minisig", path.display())).unwrap();
        assert_eq!(beside, signature.to_text());
    });
}

#[test]
fn unsigned_bytes_are_not_kept_when_only_verified_ones_are() {
    task::block_on(async {
        let bytes = content(CHUNK_SIZE + 5);
        let source = test_source(bytes.clone(), Behaviour::Honest).await;
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |_| {});
        let done =
            downloader.fetch(DownloadRequest { keep: Keep::Verified, ..request(&bytes, vec![source.addr]) }).await;
        let DownloadState::Failed { reason } = &done.state else { panic!("{done:#?}") };
        assert!(reason.starts_with("unsigned, not verified"), "{reason}");
        assert!(!downloads_dir_has_files(dir.path()));
        assert!(downloader.partial_files().is_empty(), "{:?}", downloader.partial_files());
    });
}

#[test]
fn a_download_started_without_a_signature_takes_the_one_a_later_hit_carries() {
    task::block_on(async {
        let publisher_key = signing_tool::SecretKey::generate().unwrap();
        let bytes = content(2 * CHUNK_SIZE + 9);
        let signature = release_signature(&publisher_key, &bytes);
        let folder = share(&[(NAME, &bytes)]);
        std::fs::write(folder.path().join(format!("{NAME}.minisig")), signature.to_text()).unwrap();
        // A test network on loopback (`--dial-local`): the hit names 127.0.0.1.
        let publisher = start(&[], Some(folder.path())).await;
        wait_indexed(&publisher, "seblinux", 1).await;
        let data = tempfile::tempdir().unwrap();
        let pinned = servent::trust::TrustedKey { key: publisher_key.public_key(), scope: vec![] };
        let user = start_with(&[publisher.listen_addr()], None, |c| {
            c.data_dir = Some(data.path().to_path_buf());
            c.trust = vec![pinned];
        })
        .await;
        wait_connected(&user, &publisher).await;

        // A magnet with neither source nor signature: the download starts
        // bare, and its query by URN brings the publisher's signed hit.
        let (digests, _) = search::hash_reader(&bytes[..]).unwrap();
        let magnet = Magnet {
            sha1: Some(digests.sha1_urn()),
            sha256: None,
            name: Some(NAME.into()),
            size: Some(bytes.len() as u64),
            sources: vec![],
        };
        // Only verified content is kept: it completes only if it was judged
        // with the signature the hit carried.
        let id = user.download(&magnet.to_uri(), Keep::Verified).await.unwrap();
        let downloads = user.downloads().unwrap();
        let done = async_std::future::timeout(PATIENCE, downloads.wait(id)).await.unwrap().unwrap();

        let path = assert_complete(&done, &bytes);
        assert_eq!(done.judgement.as_ref().map(|j| j.verdict), Some(servent::trust::Verdict::Verified), "{done:#?}");
        let beside = std::fs::read_to_string(format!("{}.minisig", path.display())).unwrap();
        assert_eq!(beside, signature.to_text());
        for node in [user, publisher] {
            node.shutdown().await;
        }
    });
}

#[test]
fn a_signature_a_hit_brings_for_other_bytes_does_not_make_a_genuine_file_fake() {
    task::block_on(async {
        let publisher = signing_tool::SecretKey::generate().unwrap();
        let bytes = content(CHUNK_SIZE + 1);
        // The publisher's genuine signature of another file of the same size, replayed.
        let other: Vec<u8> = bytes.iter().map(|b| b ^ 0x55).collect();
        let replayed = release_signature(&publisher, &other);
        let mut trust = servent::trust::TrustStore::in_memory();
        trust.add(publisher.public_key(), vec![]).unwrap();
        // The source queues us for a second first: the signature arrives meanwhile.
        let source = test_source(bytes.clone(), Behaviour::Queues { places: 1 }).await;
        let dir = tempfile::tempdir().unwrap();
        let config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
        let downloads = Downloads::spawn(config, Arc::new(AltLocations::new()), SharedTrust::new(trust), |_| {});
        // Known by its SHA-1 only, as a magnet may name it: the replayed
        // signature's SHA-256 cannot be compared before the bytes are in.
        let sha1 = request(&bytes, vec![]).urns[0];
        let id =
            downloads.start(DownloadRequest { urns: vec![sha1], ..request(&bytes, vec![source.addr]) }).await.unwrap();
        wait_for("the source to queue us", || async {
            downloads.get(id).await.unwrap().sources.iter().any(|s| s.state == SourceState::Queued)
        })
        .await;
        downloads.offer_signature(&sha1, replayed);

        let done = async_std::future::timeout(PATIENCE, downloads.wait(id)).await.unwrap().unwrap();

        let path = assert_complete(&done, &bytes);
        assert_eq!(done.judgement.as_ref().map(|j| j.verdict), Some(servent::trust::Verdict::Unsigned), "{done:#?}");
        assert!(!signing_tool::files::minisig_path(&path).exists(), "no signature of other bytes beside it");
    });
}

/// A hit naming an address we may not dial (our LAN, say) offers the
/// downloads of its file the servent's push-only key instead: a running
/// download outside a test network takes the key (reached by PUSH), and
/// never the local address itself.
#[test]
fn a_push_only_key_offered_to_a_running_download_is_taken_outside_a_test_network() {
    task::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let downloader = downloader(dir.path(), |c| c.dial = Arc::new(RwLock::new(DialRule::new(false))));
        let request = request(&content(1000), vec![]);
        let urn = request.urns[0];
        let id = downloader.downloads.start(request).await.unwrap();
        let key = push_only_key(Guid([7; 16]));
        let local = SocketAddrV4::new(std::net::Ipv4Addr::new(192, 168, 1, 1), 80);
        let listed = || async { downloader.downloads.get(id).await.unwrap().sources };
        wait_for("the push-only key among its sources", || async {
            downloader.downloads.add_sources(&urn, vec![local, key]).await.unwrap();
            listed().await.iter().any(|s| s.addr == key)
        })
        .await;
        assert!(!listed().await.iter().any(|s| s.addr == local), "a local address others named");
    });
}

/// A magnet link on a web page names a service of our own machine as a
/// source (`xs=`, `as=`) beside a distant one: a servent on the Internet
/// (no `--dial-local`) takes the distant one only, as it dials no local
/// address others name, and never connects to the service; a test network
/// (`--dial-local`) takes and dials both.
#[test]
fn attack_a_magnet_naming_a_local_service_gets_it_connected_to_only_on_a_test_network() {
    use async_std::prelude::FutureExt;
    const SHA1: &str = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
    task::block_on(async {
        for dial_local in [false, true] {
            let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = v4(service.local_addr().unwrap());
            let distant = SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, 1), 6346);
            let magnet = format!(
                "magnet:?xt={SHA1}&dn=SEBLINUX-1.0.tar&xl=4096&xs=http://{at}/uri-res/N2R?{SHA1}&as=http://{at}/\
                 &xs=http://{distant}/uri-res/N2R?{SHA1}"
            );
            let data = tempfile::tempdir().unwrap();
            let node = start_with(&[], None, |c| {
                c.dial_local = dial_local;
                c.data_dir = Some(data.path().to_path_buf());
            })
            .await;
            let id = node.download(&magnet, Keep::NotFake).await.unwrap();
            let downloads = node.downloads().unwrap();
            let listed =
                || async { downloads.get(id).await.unwrap().sources.iter().map(|s| s.addr).collect::<Vec<_>>() };
            wait_for("the download working from its sources", || async { listed().await.contains(&distant) }).await;
            let taken = listed().await.contains(&at);
            // Dialed at once when taken; a connection never comes otherwise.
            let bound = if dial_local { PATIENCE } else { Duration::from_millis(200) };
            let connected = service.accept().timeout(bound).await.is_ok();
            node.shutdown().await;
            assert_eq!((taken, connected), (dial_local, dial_local), "dial_local = {dial_local}");
        }
    });
}

/// A source the user named answers every request with `X-Alt` naming 8
/// servents on our own machine (any local service: an SSH daemon, a
/// router's admin page, our own API): a servent on the Internet (no
/// `--dial-local`) takes none of them as a source and connects to none,
/// as it keeps and dials no local address heard from the network
/// (`address::may_dial`), and as gtk-gnutella's mesh takes no invalid
/// (private, loopback) alt-loc (`dmesh.c`, `dmesh_add`: `!host_is_valid`).
#[test]
fn attack_x_alt_naming_local_services_gets_none_of_them_connected_to() {
    use async_std::prelude::FutureExt;
    task::block_on(async {
        let mut locals = Vec::new();
        for _ in 0..8 {
            locals.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let named: Vec<SocketAddrV4> = locals.iter().map(|l| v4(l.local_addr().unwrap())).collect();
        let x_alt = named.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let source = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source_addr = v4(source.local_addr().unwrap());
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let answering = task::spawn(async move {
            loop {
                let Ok((stream, _)) = source.accept().await else { return };
                let answer =
                    format!("HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\nX-Alt: {x_alt}\r\n\r\n");
                let counted = counted.clone();
                task::spawn(async move {
                    let mut reader = BufReader::new(stream.clone());
                    let mut line = String::new();
                    while reader.read_line(&mut line).await.is_ok_and(|n| n > 0) && line.trim_end() != "" {
                        line.clear();
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = (&stream).write_all(answer.as_bytes()).await;
                });
            }
        });
        let data = tempfile::tempdir().unwrap();
        let node = start_with(&[], None, |c| {
            c.dial_local = false;
            c.data_dir = Some(data.path().to_path_buf());
        })
        .await;
        let request = DownloadRequest {
            urns: vec![servent::wire::Urn::Sha1([0x44; 20])],
            name: "SEBLINUX-xalt-attack-1.0.tar".into(),
            size: 1_000_000,
            sources: vec![source_addr],
            signature: None,
            keep: Keep::NotFake,
        };
        let id = node.downloads().unwrap().start(request).await.unwrap();
        // Its X-Alt was read at least twice: any source it named was learned.
        wait_for("the source asked twice", || async { asked.load(Ordering::SeqCst) >= 2 }).await;
        let sources = node.downloads().unwrap().get(id).await.unwrap().sources;
        let learned: Vec<SocketAddrV4> = sources.iter().map(|s| s.addr).filter(|addr| named.contains(addr)).collect();
        let mut connected = 0;
        for local in &locals {
            if local.accept().timeout(Duration::from_millis(50)).await.is_ok() {
                connected += 1;
            }
        }
        node.shutdown().await;
        answering.cancel().await;
        assert_eq!(learned, [], "local addresses from X-Alt taken as sources");
        assert_eq!(connected, 0, "local services connected to");
    });
}
