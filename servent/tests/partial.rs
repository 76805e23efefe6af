//! Partial file sharing (PFSP) over real TCP on 127.0.0.1: a servent
//! downloading a signed release serves the chunks it checked against the
//! signed tree, says which in `X-Available-Ranges`, answers `416` for the
//! rest, and passes its downloaders on to each other; downloaders ask a
//! partial source only for what it has, and a partial source that lies
//! about its ranges, or serves a bad chunk inside them, costs only itself.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::prelude::BufReadExt;
use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use common::{start_with, stingy, varied_bytes, wait_for, wait_indexed, PATIENCE};
use search::thex::{dime, Tree};
use search::Digests;
use servent::config::Mode;
use servent::node::NodeHandle;
use servent::transfer::download::plan::{Tuning, CHUNK_SIZE};
use servent::transfer::download::{DownloadRequest, DownloadSnapshot, DownloadState, Downloads, DownloadsConfig, Keep};
use servent::transfer::http::{self, ResponseHead};
use servent::transfer::partial::RangeSet;
use servent::transfer::rate::Rates;
use servent::trust::{SharedTrust, TrustStore, TrustedKey};
use signing_tool::{Minisig, ReleaseMeta, SecretKey, Signer};
use socket2::{Domain, SockAddr, Socket, Type};

const NAME: &str = "SEBLINUX-swarm-1.0.img";
const KIB: u64 = 1024;

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("tests listen on IPv4"),
    }
}

/// A release signature of `bytes`, with its `tth:`.
fn signature(key: &SecretKey, bytes: &[u8]) -> Arc<Minisig> {
    let mut signer = Signer::new();
    signer.update(bytes);
    let meta = ReleaseMeta { name: "SEBLINUX-swarm".into(), version: "1.0".into(), keywords: vec![] };
    Arc::new(signer.finish(key, NAME, Some(&meta), 1_700_000_000).unwrap())
}

/// A release of varied bytes signed by a key of its own: what the tests
/// share, fetch and check.
struct Release {
    key: SecretKey,
    bytes: Arc<Vec<u8>>,
    digests: Digests,
    /// Its SHA-1 URN, as requests name it.
    urn: String,
}

impl Release {
    fn new(len: usize) -> Release {
        let bytes = Arc::new(varied_bytes(len));
        let (digests, _) = search::hash_reader(&bytes[..]).unwrap();
        let urn = digests.sha1_urn().to_string();
        Release { key: SecretKey::generate().unwrap(), bytes, digests, urn }
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn signature(&self) -> Arc<Minisig> {
        signature(&self.key, &self.bytes)
    }

    /// Its download, from `sources`, kept once verified.
    fn request(&self, sources: Vec<SocketAddrV4>) -> DownloadRequest {
        DownloadRequest {
            urns: vec![self.digests.sha1_urn(), self.digests.sha256_urn()],
            name: NAME.into(),
            size: self.size(),
            sources,
            signature: Some(self.signature()),
            keep: Keep::Verified,
        }
    }
}

fn trusting(key: &SecretKey) -> SharedTrust {
    let mut trust = TrustStore::in_memory();
    trust.add(key.public_key(), vec![]).unwrap();
    SharedTrust::new(trust)
}

/// Writes the release and its signature into `folder`, to be shared.
fn write_release(folder: &Path, release: &Release) {
    std::fs::write(folder.join(NAME), &release.bytes[..]).unwrap();
    std::fs::write(folder.join(format!("{NAME}.minisig")), release.signature().to_text()).unwrap();
}

/// A servent sharing the release from `folder`, its uploads capped at `rate`.
async fn publisher(folder: &Path, release: &Release, rate: u64) -> NodeHandle {
    write_release(folder, release);
    let node = start_with(&[], Some(folder), |config| {
        config.rates = Rates { max_upload_rate: rate, max_download_rate: 0 };
    })
    .await;
    wait_indexed(&node, "seblinux swarm", 1).await;
    node
}

/// A servent with a data directory (so it downloads), trusting `key`, its
/// downloads capped at `rate`; of a test network (`--dial-local`), so that
/// it takes the loopback sources it is offered.
async fn downloader(dir: &Path, key: &SecretKey, rate: u64) -> NodeHandle {
    start_with(&[], None, |config| {
        config.data_dir = Some(dir.to_path_buf());
        config.trust = vec![TrustedKey { key: key.public_key(), scope: vec![] }];
        config.rates = Rates { max_upload_rate: 0, max_download_rate: rate };
    })
    .await
}

/// Sends one request for `range` (inclusive) of the file on a new connection.
async fn ask(addr: SocketAddr, urn: &str, method: &str, range: Option<(u64, u64)>) -> (ResponseHead, Vec<u8>) {
    ask_with(addr, urn, method, range, "").await
}

/// As [`ask`], with `extra` header lines.
async fn ask_with(
    addr: SocketAddr,
    urn: &str,
    method: &str,
    range: Option<(u64, u64)>,
    extra: &str,
) -> (ResponseHead, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let range = range.map(|(a, b)| format!("Range: bytes={a}-{b}\r\n")).unwrap_or_default();
    let request =
        format!("{method} /uri-res/N2R?{urn} HTTP/1.1\r\nHost: test\r\n{range}{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let head = async_std::future::timeout(PATIENCE, http::read_response_head(&mut reader)).await.unwrap().unwrap();
    let mut body = Vec::new();
    if method == "GET" {
        let length = head.headers.content_length().unwrap().unwrap_or(0);
        body.resize(length as usize, 0);
        reader.read_exact(&mut body).await.unwrap();
    }
    (head, body)
}

/// What `addr` says it has of the file, once it says it has at least
/// `chunks` chunks.
async fn available_at_least(addr: SocketAddr, urn: &str, size: u64, chunks: u64) -> RangeSet {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (head, _) = ask(addr, urn, "HEAD", Some((0, 0))).await;
        let ranges = head.headers.get("X-Available-Ranges").and_then(|v| RangeSet::parse_available(v, size));
        let ranges = ranges.unwrap_or_default();
        if ranges.len() >= chunks * CHUNK_SIZE {
            return ranges;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {addr} to offer {chunks} chunks");
        task::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_done(downloads: &Downloads, id: servent::transfer::download::DownloadId) -> DownloadSnapshot {
    async_std::future::timeout(PATIENCE * 2, downloads.wait(id)).await.expect("download ended in time").unwrap()
}

#[test]
fn a_downloading_servent_serves_its_checked_chunks_and_others_fetch_from_it() {
    task::block_on(async {
        let release = Release::new(8 * CHUNK_SIZE as usize + 1234);
        let (bytes, size, urn, key) = (&release.bytes, release.size(), &release.urn, &release.key);
        // B can get only the first three chunks, from a partial source: it
        // stays a partial source itself.
        let stingy = stingy::source(bytes.clone(), 0..3).await;
        let b_dir = tempfile::tempdir().unwrap();
        let b = downloader(b_dir.path(), key, 0).await;
        let b_addr = b.listen_addr();
        let b_id = b.downloads().unwrap().start(release.request(vec![stingy])).await.unwrap();
        let has = available_at_least(b_addr, urn, size, 3).await;
        assert_eq!(has.ranges(), [(0, 3 * CHUNK_SIZE)]);
        let (head, body) = ask(b_addr, urn, "GET", Some((CHUNK_SIZE, 2 * CHUNK_SIZE - 1))).await;
        assert_eq!(head.status, 206);
        assert_eq!(head.headers.get("X-Available-Ranges"), Some(format!("bytes 0-{}", 3 * CHUNK_SIZE - 1).as_str()));
        assert!(body == bytes[CHUNK_SIZE as usize..2 * CHUNK_SIZE as usize], "B served bytes other than the file's");
        // A range that runs past what it has: from the start asked, up to the run's end.
        let (head, body) = ask(b_addr, urn, "GET", Some((2 * CHUNK_SIZE, size - 1))).await;
        assert_eq!((head.status, body.len() as u64), (206, CHUNK_SIZE));
        assert_eq!(
            head.headers.get("Content-Range"),
            Some(format!("bytes {}-{}/{size}", 2 * CHUNK_SIZE, 3 * CHUNK_SIZE - 1).as_str())
        );
        // Bytes it lacks: 416, its ranges named, the file's size given.
        let (head, _) = ask(b_addr, urn, "GET", Some((3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 10))).await;
        assert_eq!(head.status, 416);
        assert_eq!(head.headers.get("X-Available-Ranges"), Some(has.to_header().as_str()));
        assert_eq!(head.headers.get("Content-Range"), Some(format!("bytes */{size}").as_str()));
        // B serves the tree too, so a crowd need not ask the publisher for it.
        let mut stream = TcpStream::connect(b_addr).await.unwrap();
        let tree_request = format!("GET /uri-res/N2X?{urn} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(tree_request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let head = http::read_response_head(&mut reader).await.unwrap();
        assert_eq!(head.status, 200);
        let mut thex = Vec::new();
        reader.read_to_end(&mut thex).await.unwrap();
        assert!(dime::parse(&thex, size, &Tree::of(bytes).root()).is_ok(), "B's tree is not the file's");
        // C knows only B and a publisher capped at 256 KiB/s: it gets what B
        // has from B (only that: B is asked for nothing else), the rest from
        // the publisher, and verifies it all.
        let shared = tempfile::tempdir().unwrap();
        let publisher = publisher(shared.path(), &release, 256 * KIB).await;
        let c_dir = tempfile::tempdir().unwrap();
        let c = downloader(c_dir.path(), key, 0).await;
        let sources = vec![v4(b_addr), v4(publisher.listen_addr())];
        let c_id = c.downloads().unwrap().start(release.request(sources)).await.unwrap();
        let done = wait_done(c.downloads().unwrap(), c_id).await;
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert!(std::fs::read(done.path.as_ref().unwrap()).unwrap() == **bytes);
        let from_b = done.sources.iter().find(|s| s.addr == v4(b_addr)).unwrap();
        assert!(from_b.bytes > 0, "nothing came from the partial source: {done:#?}");
        assert!(from_b.bytes <= 3 * CHUNK_SIZE, "more came from B than it has: {done:#?}");
        assert_eq!(from_b.errors, 0, "B was asked only for what it has, or blindly once: {done:#?}");
        // The publisher names its downloaders to others (here to a third,
        // on another port of the same address): they find each other.
        let (head, _) = ask_with(publisher.listen_addr(), urn, "HEAD", None, "X-Node: 127.0.0.1:9\r\n").await;
        let x_alt = head.headers.get("X-Alt").unwrap_or_default().to_string();
        assert!(x_alt.contains(&c.listen_addr().port().to_string()), "X-Alt {x_alt:?} lacks C");
        // B completes once given the publisher too; once its library
        // indexes the file, the file is no longer offered in part (the
        // library serves it while it is shared, and nobody after).
        let sha1 = release.digests.sha1_urn();
        b.downloads().unwrap().add_sources(&sha1, vec![v4(publisher.listen_addr())]).await.unwrap();
        let done = wait_done(b.downloads().unwrap(), b_id).await;
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        wait_for("B's library to index the file", || async { b.library().by_urn(&sha1).is_some() }).await;
        wait_for("B to stop offering it in part", || async { b.uploads().partial_shares().find(&sha1).is_none() })
            .await;
        for node in [b, c, publisher] {
            node.shutdown().await;
        }
    });
}

/// What a hand-written partial source does wrong.
#[derive(Clone, Copy)]
enum Lie {
    /// Says it has every byte (in a hostile, overlapping header running
    /// past the file), then answers 416 to everything.
    RangesItHasNot,
    /// Says it has the first half, and serves zeros for it.
    BadBytesInItsRange,
}

/// A partial source that lies; counts the requests for file bytes.
async fn liar(size: u64, lie: Lie) -> (SocketAddrV4, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = v4(listener.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    task::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            task::spawn(serve_lies(stream, size, lie, counter.clone()));
        }
    });
    (addr, asked)
}

async fn serve_lies(stream: TcpStream, size: u64, lie: Lie, asked: Arc<AtomicUsize>) {
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream;
    let half = size / 2 / CHUNK_SIZE * CHUNK_SIZE;
    let claim = match lie {
        Lie::RangesItHasNot => format!("bytes 0-{},5-10,{}-{},junk,9-3", size * 4, size, size * 100),
        Lie::BadBytesInItsRange => format!("bytes 0-{}", half - 1),
    };
    loop {
        let Some((target, range)) = stingy::read_request(&mut reader).await else { return };
        let reply = match (range.filter(|_| target.contains("/uri-res/N2R")), lie) {
            (Some((start, end)), Lie::BadBytesInItsRange) if end <= half => {
                asked.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Length: {}\r\n\
                     X-Available-Ranges: {claim}\r\n\r\n",
                    end - 1,
                    end - start
                );
                [head.into_bytes(), vec![0; (end - start) as usize]].concat()
            }
            (Some(_), _) => {
                asked.fetch_add(1, Ordering::SeqCst);
                format!(
                    "HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\n\
                     Content-Length: 0\r\nX-Available-Ranges: {claim}\r\n\r\n"
                )
                .into_bytes()
            }
            (None, _) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        };
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Downloads the release from an honest publisher capped at 1 MiB/s and
/// `liar`; the finished download.
async fn download_beside(lie: Lie) -> (DownloadSnapshot, SocketAddrV4, usize) {
    let release = Release::new(4 * CHUNK_SIZE as usize + 99);
    let shared = tempfile::tempdir().unwrap();
    let honest = publisher(shared.path(), &release, 1024 * KIB).await;
    let (liar, asked) = liar(release.size(), lie).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
    config.io_timeout = Duration::from_secs(5);
    let downloads = Downloads::spawn(config, Arc::default(), trusting(&release.key), |_| {});
    let sources = vec![liar, v4(honest.listen_addr())];
    let id = downloads.start(release.request(sources)).await.unwrap();
    let done = wait_done(&downloads, id).await;
    assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
    assert!(std::fs::read(done.path.as_ref().unwrap()).unwrap() == *release.bytes);
    honest.shutdown().await;
    (done, liar, asked.load(Ordering::SeqCst))
}

#[test]
fn a_partial_source_lying_about_its_ranges_is_caught_by_its_own_416() {
    task::block_on(async {
        let (done, liar, asked) = download_beside(Lie::RangesItHasNot).await;
        let source = done.sources.iter().find(|s| s.addr == liar).unwrap();
        assert_eq!(source.bytes, 0);
        let note = source.note.clone().unwrap_or_default();
        assert!(note.contains("416 for bytes") && note.contains("says it has"), "{done:#?}");
        // Each refusal that claims the refused bytes costs it an error.
        assert!(asked <= Tuning::default().max_errors as usize, "the liar was asked {asked} times");
    });
}

#[test]
fn a_partial_source_serving_a_bad_chunk_in_its_range_is_dropped_and_the_file_verifies() {
    task::block_on(async {
        let (done, liar, asked) = download_beside(Lie::BadBytesInItsRange).await;
        let source = done.sources.iter().find(|s| s.addr == liar).unwrap();
        assert_eq!(source.bytes, 0, "{done:#?}");
        assert!(asked >= 1, "the liar was never asked for the chunks it claimed");
        let note = source.note.clone().unwrap_or_default();
        assert!(note.contains("Tiger tree"), "{done:#?}");
    });
}

#[test]
fn a_seed_serves_each_chunk_once_before_any_twice() {
    task::block_on(async {
        let release = Release::new(3 * CHUNK_SIZE as usize);
        let (bytes, urn) = (&release.bytes, &release.urn);
        let folder = tempfile::tempdir().unwrap();
        write_release(folder.path(), &release);
        let seed = start_with(&[], Some(folder.path()), |config| {
            config.seed_releases = vec![folder.path().join(NAME)];
        })
        .await;
        wait_indexed(&seed, "seblinux swarm", 1).await;
        let addr = seed.listen_addr();
        let chunk = |i: u64| Some((i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE - 1));
        let (head, body) = ask(addr, urn, "GET", chunk(0)).await;
        assert_eq!(head.status, 206);
        assert!(body == bytes[..CHUNK_SIZE as usize]);
        assert_eq!(head.headers.get("X-Available-Ranges"), Some(format!("bytes 0-{}", 3 * CHUNK_SIZE - 1).as_str()));
        // Chunk 0 again, before the others went out once: refused, the others offered.
        let (head, _) = ask(addr, urn, "GET", chunk(0)).await;
        assert_eq!(head.status, 416);
        let others = format!("bytes {}-{}", CHUNK_SIZE, 3 * CHUNK_SIZE - 1);
        assert_eq!(head.headers.get("X-Available-Ranges"), Some(others.as_str()));
        // Nor by its index and name, as a QueryHit names it.
        let index = seed.library().by_urn(&release.digests.sha1_urn()).unwrap().index;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let by_index = format!(
            "GET /get/{index}/{NAME} HTTP/1.1\r\nHost: test\r\nRange: bytes=0-{}\r\nConnection: close\r\n\r\n",
            CHUNK_SIZE - 1
        );
        stream.write_all(by_index.as_bytes()).await.unwrap();
        let head = http::read_response_head(&mut BufReader::new(stream)).await.unwrap();
        assert_eq!(head.status, 416, "{head:?}");
        assert_eq!(head.headers.get("X-Available-Ranges"), Some(others.as_str()));
        // A HEAD costs nothing.
        assert_eq!(ask(addr, urn, "HEAD", chunk(1)).await.0.status, 206);
        for i in [1, 2] {
            let (head, body) = ask(addr, urn, "GET", chunk(i)).await;
            assert_eq!(head.status, 206);
            assert!(body == bytes[(i * CHUNK_SIZE) as usize..((i + 1) * CHUNK_SIZE) as usize]);
        }
        // Every chunk went out once: all are offered again.
        let (head, _) = ask(addr, urn, "GET", chunk(0)).await;
        assert_eq!(head.status, 206);
        seed.shutdown().await;
    });
}

#[test]
fn a_capped_seed_serves_a_few_at_a_useful_rate_and_sends_the_rest_to_the_swarm_without_queue_places() {
    task::block_on(async {
        let release = Release::new(3 * CHUNK_SIZE as usize);
        let urn = &release.urn;
        let folder = tempfile::tempdir().unwrap();
        write_release(folder.path(), &release);
        // 64 KiB/s feeds two slots (the least kept), not the eight configured.
        let seed = start_with(&[], Some(folder.path()), |config| {
            config.seed_releases = vec![folder.path().join(NAME)];
            config.rates = Rates { max_upload_rate: 64 * KIB, max_download_rate: 0 };
        })
        .await;
        wait_indexed(&seed, "seblinux swarm", 1).await;
        let addr = seed.listen_addr();
        // Two downloaders (each from its own address) take a chunk each
        // (seconds at this rate) and hold their slots while they read slowly.
        let mut holding = Vec::new();
        for i in 0..2u8 {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let from = SocketAddr::from(([127, 0, 0, 2 + i], 0));
            socket.bind(&SockAddr::from(from)).unwrap();
            socket.connect(&SockAddr::from(addr)).unwrap();
            let mut stream = TcpStream::from(std::net::TcpStream::from(socket));
            let i = u64::from(i);
            let range = format!("bytes={}-{}", i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE - 1);
            let request = format!("GET /uri-res/N2R?{urn} HTTP/1.1\r\nHost: test\r\nRange: {range}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut reader = BufReader::new(stream);
            let head = async_std::future::timeout(PATIENCE, http::read_response_head(&mut reader)).await;
            assert_eq!(head.unwrap().unwrap().status, 206);
            holding.push(reader);
        }
        // A third is sent to the swarm: busy, back in the least wait that is
        // not hammering (its connection closes), and no queue place that
        // would hold a slot for it once it went elsewhere.
        let (head, _) = ask(addr, urn, "GET", Some((2 * CHUNK_SIZE, 3 * CHUNK_SIZE - 1))).await;
        assert_eq!(head.status, 503, "{head:?}");
        let retry: u64 = head.headers.get("Retry-After").unwrap().parse().unwrap();
        assert_eq!(retry, 10, "{head:?}");
        assert_eq!(head.headers.get("X-Queued"), None, "{head:?}");
        drop(holding);
        seed.shutdown().await;
    });
}

/// Answers every request busy for a second, after passing on the `X-Node`
/// it named (`None` without one).
async fn record_x_node(listener: TcpListener, seen: async_std::channel::Sender<Option<String>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let mut reader = BufReader::new(stream.clone());
        let mut x_node = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim_end().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("X-Node") {
                    x_node = Some(value.trim().to_string());
                }
            }
        }
        let busy = "HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let _ = (&stream).write_all(busy.as_bytes()).await;
        if seen.send(x_node).await.is_err() {
            return;
        }
    }
}

#[test]
fn a_servent_listening_on_every_interface_names_the_address_it_advertises_never_0_0_0_0() {
    task::block_on(async {
        let recorder = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = v4(recorder.local_addr().unwrap());
        let (seen_tx, seen) = async_std::channel::unbounded();
        task::spawn(record_x_node(recorder, seen_tx));
        let release = Release::new(CHUNK_SIZE as usize);
        let dir = tempfile::tempdir().unwrap();
        let everywhere = start_with(&[], None, |config| {
            config.listen = "0.0.0.0:0".parse().unwrap();
            config.data_dir = Some(dir.path().to_path_buf());
        })
        .await;
        let downloads = everywhere.downloads().unwrap();
        downloads.start(release.request(vec![source])).await.unwrap();
        let next = || async { async_std::future::timeout(PATIENCE, seen.recv()).await.unwrap().unwrap() };
        // No link yet shows which interface others reach: no X-Node at all.
        assert_eq!(next().await, None);
        // A link does: the address it advertises from then on is named.
        let peer = start_with(&[], None, |_| {}).await;
        everywhere.connect(v4(peer.listen_addr())).await.unwrap();
        let advertised = format!("127.0.0.1:{}", everywhere.listen_addr().port());
        loop {
            match next().await {
                Some(named) if named == advertised => break,
                Some(named) => panic!("X-Node: {named}, not the advertised {advertised}"),
                None => {}
            }
        }
        everywhere.shutdown().await;
        peer.shutdown().await;
    });
}

#[test]
fn chunks_from_before_a_restart_are_offered_once_checked_and_a_damaged_one_is_fetched_again() {
    task::block_on(async {
        let release = Release::new(4 * CHUNK_SIZE as usize);
        let (bytes, size, urn, key) = (&release.bytes, release.size(), &release.urn, &release.key);
        let stingy = stingy::source(bytes.clone(), 0..2).await;
        let dir = tempfile::tempdir().unwrap();
        let first = downloader(dir.path(), key, 0).await;
        first.downloads().unwrap().start(release.request(vec![stingy])).await.unwrap();
        available_at_least(first.listen_addr(), urn, size, 2).await;
        first.shutdown().await;
        // While the servent is down, the disk loses chunk 1.
        let part = std::fs::read_dir(dir.path().join("partial"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "part"))
            .expect("a .part file");
        let file = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &vec![0xA5; CHUNK_SIZE as usize], CHUNK_SIZE).unwrap();
        drop(file);
        // Restarted, it checks them against the tree: chunk 0 is offered at
        // once, chunk 1 once fetched again (the source has only these two).
        let second = downloader(dir.path(), key, 0).await;
        let has = available_at_least(second.listen_addr(), urn, size, 2).await;
        assert_eq!(has.ranges(), [(0, 2 * CHUNK_SIZE)]);
        let downloads = second.downloads().unwrap();
        wait_for("chunk 1 fetched again", || async {
            let list = downloads.list().await.unwrap();
            list[0].sources.iter().any(|s| s.addr == stingy && s.bytes == CHUNK_SIZE)
        })
        .await;
        let (head, body) = ask(second.listen_addr(), urn, "GET", Some((CHUNK_SIZE, 2 * CHUNK_SIZE - 1))).await;
        assert_eq!(head.status, 206);
        assert!(body == bytes[CHUNK_SIZE as usize..2 * CHUNK_SIZE as usize], "a damaged chunk was offered");
        second.shutdown().await;
    });
}

#[test]
fn a_servent_finds_a_partial_source_by_search_and_fetches_its_checked_chunks_from_it() {
    task::block_on(async {
        let release = Release::new(4 * CHUNK_SIZE as usize);
        let (bytes, size, urn, key) = (&release.bytes, release.size(), &release.urn, &release.key);
        // B, a leaf of ultrapeer U, holds the first two chunks, checked: a
        // partial source, sharing nothing.
        let u = start_with(&[], None, |config| config.mode = Mode::Ultrapeer).await;
        let stingy = stingy::source(bytes.clone(), 0..2).await;
        let b_dir = tempfile::tempdir().unwrap();
        let b = start_with(&[u.listen_addr()], None, |config| {
            config.mode = Mode::Leaf;
            config.data_dir = Some(b_dir.path().to_path_buf());
            config.trust = vec![TrustedKey { key: key.public_key(), scope: vec![] }];
        })
        .await;
        b.downloads().unwrap().start(release.request(vec![stingy])).await.unwrap();
        available_at_least(b.listen_addr(), urn, size, 2).await;
        assert_eq!(b.library().files().len(), 0, "B shares nothing but its partial file");
        wait_for("B linked to U", || async { !u.peers().await.unwrap().is_empty() }).await;
        // C, another leaf of U, asks the network for the release by URN, knowing
        // no source: U passes the query to B (B's QRP table names its
        // partial file), B answers with a partial result, and C fetches from it.
        let c_dir = tempfile::tempdir().unwrap();
        let c = start_with(&[u.listen_addr()], None, |config| {
            config.mode = Mode::Leaf;
            config.data_dir = Some(c_dir.path().to_path_buf());
            config.trust = vec![TrustedKey { key: key.public_key(), scope: vec![] }];
        })
        .await;
        wait_for("C linked to U", || async { u.peers().await.unwrap().len() == 2 }).await;
        let id = c.download(urn, Keep::Verified).await.expect("C finds the release by search");
        let downloads = c.downloads().unwrap();
        wait_for("C to fetch B's two chunks", || async {
            let done = downloads.get(id).await.unwrap();
            done.sources.iter().any(|s| s.addr == v4(b.listen_addr()) && s.bytes == 2 * CHUNK_SIZE)
        })
        .await;
        let done = downloads.get(id).await.unwrap();
        assert_eq!(done.tth, Some(Tree::of(bytes).root()), "C checks B's chunks against the signed tree");
        assert_eq!(done.bytes_done, 2 * CHUNK_SIZE, "{done:#?}");
        for node in [c, b, u] {
            node.shutdown().await;
        }
    });
}

#[test]
fn gtk_gnutella_finds_our_partial_file_by_search() {
    use common::gtkg::{Gtkg, Options};
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    // On loopback it believes it is firewalled and would not answer us.
    gtkg.set("is_firewalled", "FALSE");
    task::block_on(async {
        let release = Release::new(4 * CHUNK_SIZE as usize);
        let key = &release.key;
        // We hold the first two chunks, checked, and share nothing else.
        let stingy = stingy::source(release.bytes.clone(), 0..2).await;
        let dir = tempfile::tempdir().unwrap();
        let node = start_with(&[gtkg.addr], None, |config| {
            config.data_dir = Some(dir.path().to_path_buf());
            config.trust = vec![TrustedKey { key: key.public_key(), scope: vec![] }];
        })
        .await;
        node.downloads().unwrap().start(release.request(vec![stingy])).await.unwrap();
        available_at_least(node.listen_addr(), &release.urn, release.size(), 2).await;
        gtkg.wait_until("its link to us", Duration::from_secs(60), || {
            gtkg.shell("nodes").contains(&node.listen_addr().ip().to_string())
        });
        // Its search is answered with our partial result (GGEP PRU), which
        // it takes as a hit of one record: it logs it as a QHIT line with
        // our vendor code (its log does not show whether it read the PRU).
        gtkg.shell("search add SEBLINUX swarm");
        gtkg.wait_until("our partial hit in its log", Duration::from_secs(60), || gtkg.log().contains("QHIT [SEBL]"));
        let log = gtkg.log();
        let qhit = log.lines().find(|line| line.contains("QHIT [SEBL]")).unwrap_or_default();
        assert!(qhit.contains(": 1 rec "), "it kept no record of our hit: {qhit}");
        node.shutdown().await;
    });
}

#[test]
fn our_search_finds_gtk_gnutellas_partial_file_and_fetches_the_chunks_it_has() {
    use common::gtkg::{Gtkg, Options};
    // gtk-gnutella is slow: its search and download schedulers tick by seconds.
    const GTKG_PATIENCE: Duration = Duration::from_secs(90);
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    // On loopback it believes it is firewalled and would not answer us.
    gtkg.set("is_firewalled", "FALSE");
    task::block_on(async {
        let release = Release::new(8 * CHUNK_SIZE as usize);
        let (bytes, sha1) = (&release.bytes, release.digests.sha1_urn());
        // It downloads the release (under a name it shares: .iso) from a
        // source that has only the first half: 1 MiB, its PFSP minimum
        // (`pfsp_minimum_filesize`), so it holds a partial file it serves.
        let half = stingy::source(bytes.clone(), 0..4).await;
        let name = "SEBLINUX-swarm-1.0.iso";
        let magnet = format!("magnet:?xt={sha1}&dn={name}&xl={}&xs=http://{half}/uri-res/N2R?{sha1}", release.size());
        let answer = gtkg.shell(&format!("download add \"{magnet}\""));
        assert!(!answer.contains("could not"), "{answer}");
        let deadline = Instant::now() + GTKG_PATIENCE;
        loop {
            let downloads = gtkg.shell("downloads");
            if downloads.contains("Done: 50%") {
                break;
            }
            assert!(Instant::now() < deadline, "its download of the first half:\n{downloads}\n{}", gtkg.diagnose());
            task::sleep(Duration::from_millis(500)).await;
        }
        // We link to it and search by name; our Query asks for partial
        // results (GGEP PR), and it shares nothing else: a result naming it
        // is its partial file.
        let dir = tempfile::tempdir().unwrap();
        let node = start_with(&[gtkg.addr], None, |config| {
            config.data_dir = Some(dir.path().to_path_buf());
            config.trust = vec![TrustedKey { key: release.key.public_key(), scope: vec![] }];
        })
        .await;
        gtkg.wait_until("its link to us", GTKG_PATIENCE, || {
            gtkg.shell("nodes").contains(&node.listen_addr().ip().to_string())
        });
        let gtk = v4(gtkg.addr);
        let id = node.search("SEBLINUX swarm", None).await.unwrap();
        let deadline = Instant::now() + GTKG_PATIENCE;
        let result = loop {
            let results = node.search_results(id).await.unwrap().unwrap().results;
            if let Some(result) = results.into_iter().find(|r| r.sources.contains(&gtk)) {
                break result;
            }
            assert!(Instant::now() < deadline, "no partial result from gtk-gnutella\n{}", gtkg.diagnose());
            task::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!((result.name.as_str(), result.size, result.sha1), (name, release.size(), Some(sha1)));
        // It matched our Query on its partial files (it does only for a
        // Query with GGEP PR: `shared_files_match`), and a hit on a partial
        // file is flagged with GGEP PRU (`qhit.c`).
        let stats = gtkg.shell("stats");
        let partial_hits = stats.lines().find_map(|line| line.strip_prefix("local_partial_hits "));
        let partial_hits: u64 = partial_hits.and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        assert!(partial_hits >= 1, "it counted no hit on its partial files:\n{stats}");
        // It says which ranges it has, as a partial source does (on a
        // connection kept alive only: `http.c`, `HTTP_CBF_SHOW_RANGES`).
        let mut stream = TcpStream::connect(gtkg.addr).await.unwrap();
        let urn = &release.urn;
        let request = format!(
            "HEAD /uri-res/N2R?{urn} HTTP/1.1\r\nHost: test\r\nUser-Agent: SEBLINUX/0.1\r\nRange: bytes=0-0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let head = async_std::future::timeout(PATIENCE, http::read_response_head(&mut reader)).await.unwrap().unwrap();
        let has = format!("bytes 0-{}", 4 * CHUNK_SIZE - 1);
        assert_eq!(head.headers.get("X-Available-Ranges"), Some(has.as_str()), "{head:?}");
        // Closed, so that it holds no upload slot of gtk-gnutella's.
        drop(reader);
        // We fetch from it, and from a source that has only the last chunk
        // and the tree (gtk-gnutella has no tree to give): the first half
        // can come from gtk-gnutella alone, checked against the signed tree.
        let last = stingy::source(bytes.clone(), 7..8).await;
        let downloads = node.downloads().unwrap();
        let id = downloads.start(release.request(vec![gtk, last])).await.unwrap();
        let deadline = Instant::now() + GTKG_PATIENCE;
        let done = loop {
            let done = downloads.get(id).await.unwrap();
            if done.bytes_done == 5 * CHUNK_SIZE {
                break done;
            }
            assert!(Instant::now() < deadline, "{done:#?}\n{}", gtkg.diagnose());
            task::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(done.tth, Some(Tree::of(bytes).root()), "{done:#?}");
        let from_gtk = done.sources.iter().find(|s| s.addr == gtk).unwrap();
        assert_eq!(from_gtk.bytes, 4 * CHUNK_SIZE, "{done:#?}");
        let part = std::fs::read_dir(dir.path().join("partial"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "part"))
            .expect("a .part file");
        let held = std::fs::read(part).unwrap();
        assert!(
            held[..4 * CHUNK_SIZE as usize] == bytes[..4 * CHUNK_SIZE as usize],
            "its chunks differ from the file's"
        );
        node.shutdown().await;
    });
}
