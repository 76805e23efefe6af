//! Tiger trees on real HTTP over 127.0.0.1: a servent serves the THEX tree
//! of what it shares, and a download whose signature carries a trusted
//! `tth:` checks every chunk against the tree as it lands, so that a source
//! serving zeros is caught by its first chunk and is the only one blamed.

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
use common::{share, start, wait_indexed, PATIENCE};
use search::thex::{dime, Root, Tree};
use servent::node::NodeHandle;
use servent::transfer::alt::AltLocations;
use servent::transfer::download::plan::CHUNK_SIZE;
use servent::transfer::download::{
    DownloadRequest, DownloadSnapshot, DownloadState, Downloads, DownloadsConfig, Keep, SourceState,
};
use servent::trust::{SharedTrust, TrustStore};
use signing_tool::{Minisig, ReleaseMeta, SecretKey, Signer};

const NAME: &str = "SEBLINUX-tree-1.0.img";

fn content(len: u64) -> Arc<Vec<u8>> {
    Arc::new(common::varied_bytes(len as usize))
}

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
    let meta = ReleaseMeta { name: "SEBLINUX-tree".into(), version: "1.0".into(), keywords: vec![] };
    Arc::new(signer.finish(key, NAME, Some(&meta), 1_700_000_000).unwrap())
}

fn request(bytes: &[u8], sources: Vec<SocketAddrV4>, signature: Option<Arc<Minisig>>) -> DownloadRequest {
    let (digests, _) = search::hash_reader(bytes).unwrap();
    DownloadRequest {
        urns: vec![digests.sha1_urn(), digests.sha256_urn()],
        name: NAME.into(),
        size: bytes.len() as u64,
        sources,
        signature,
        keep: Keep::Verified,
    }
}

fn downloads(dir: &Path, trust: SharedTrust) -> Downloads {
    let mut config = DownloadsConfig::new(dir.join("partial"), dir.join("downloads"));
    config.io_timeout = Duration::from_secs(5);
    Downloads::spawn(config, Arc::new(AltLocations::new()), trust, |_| {})
}

fn trusting(key: &SecretKey) -> SharedTrust {
    let mut trust = TrustStore::in_memory();
    trust.add(key.public_key(), vec![]).unwrap();
    SharedTrust::new(trust)
}

async fn sharing_servent(bytes: &[u8]) -> (NodeHandle, tempfile::TempDir) {
    let folder = share(&[(NAME, bytes)]);
    let node = start(&[], Some(folder.path())).await;
    wait_indexed(&node, "seblinux tree", 1).await;
    (node, folder)
}

async fn fetch(downloads: &Downloads, request: DownloadRequest) -> DownloadSnapshot {
    let id = downloads.start(request).await.unwrap();
    async_std::future::timeout(PATIENCE, downloads.wait(id)).await.expect("download ended in time").unwrap()
}

/// A liar: it answers every `/uri-res/N2R` range with as many zeros, and
/// anything else (a tree) with `404`. It counts the chunks it was asked for.
async fn zero_source(size: u64) -> (SocketAddrV4, Arc<AtomicUsize>) {
    let (addr, asked, _) = raw_source(Arc::new(vec![0; size as usize]), None).await;
    (addr, asked)
}

/// A source written by hand: it answers `/uri-res/N2R` ranges from `bytes`,
/// `/uri-res/N2X` with `thex` if given, anything else with `404`; it counts
/// the chunks and the trees it sent.
async fn raw_source(bytes: Arc<Vec<u8>>, thex: Option<Vec<u8>>) -> (SocketAddrV4, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = v4(listener.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let trees = Arc::new(AtomicUsize::new(0));
    let counters = (asked.clone(), trees.clone());
    let thex = Arc::new(thex);
    task::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            task::spawn(serve_raw(stream, bytes.clone(), thex.clone(), counters.clone()));
        }
    });
    (addr, asked, trees)
}

async fn serve_raw(
    stream: TcpStream,
    bytes: Arc<Vec<u8>>,
    thex: Arc<Option<Vec<u8>>>,
    (asked, trees): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let size = bytes.len() as u64;
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream;
    loop {
        let (mut target, mut range) = (String::new(), None);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if target.is_empty() {
                target = line.to_string();
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                let (a, b) = value.split_once('-').unwrap();
                range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap() + 1));
            }
        }
        let reply = match range.filter(|_| target.contains("/uri-res/N2R")) {
            Some((start, end)) => {
                asked.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Length: {}\r\n\r\n",
                    end - 1,
                    end - start
                );
                [head.into_bytes(), bytes[start as usize..end as usize].to_vec()].concat()
            }
            None => match thex.as_ref().as_ref().filter(|_| target.contains("/uri-res/N2X")) {
                Some(body) => {
                    trees.fetch_add(1, Ordering::SeqCst);
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    [head.as_bytes(), body].concat()
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            },
        };
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}

#[test]
fn zero_serving_liar_is_caught_at_its_first_chunk_and_only_it_is_blamed() {
    task::block_on(async {
        let bytes = content(4 * CHUNK_SIZE + 1000);
        let publisher = SecretKey::generate().unwrap();
        let signed = signature(&publisher, &bytes);
        let (honest, _files) = sharing_servent(&bytes).await;
        let (liar, asked) = zero_source(bytes.len() as u64).await;
        let dir = tempfile::tempdir().unwrap();
        let downloads = downloads(dir.path(), trusting(&publisher));

        // The liar first, so that it gets a chunk before the honest one is done.
        let started = Instant::now();
        let done = fetch(&downloads, request(&bytes, vec![liar, v4(honest.listen_addr())], Some(signed.clone()))).await;
        let took = started.elapsed();

        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        let path = done.path.clone().unwrap();
        assert!(std::fs::read(&path).unwrap() == *bytes, "the downloaded file is the genuine one");
        assert_eq!(std::fs::read_to_string(format!("{}.minisig", path.display())).unwrap(), signed.to_text());
        assert_eq!(done.judgement.as_ref().unwrap().verdict, servent::trust::Verdict::Verified);
        assert_eq!(done.tth, Some(search::hash_reader(&bytes[..]).unwrap().0.tth), "checked against the tree");

        let liar_seen = done.sources.iter().find(|s| s.addr == liar).unwrap();
        assert_eq!(liar_seen.state, SourceState::Corrupt, "{liar_seen:#?}");
        assert!(liar_seen.note.as_deref().unwrap().contains("Tiger tree"), "{liar_seen:#?}");
        assert_eq!(liar_seen.bytes, 0);
        assert_eq!(asked.load(Ordering::SeqCst), 1, "the liar was dropped at its first chunk");
        let honest_seen = done.sources.iter().find(|s| s.addr == v4(honest.listen_addr())).unwrap();
        assert_ne!(honest_seen.state, SourceState::Corrupt, "{honest_seen:#?}");
        assert_eq!(honest_seen.bytes, bytes.len() as u64);
        assert!(took < Duration::from_secs(20), "took {took:?}");
        honest.shutdown().await;
    });
}

#[test]
fn without_a_tree_a_failed_file_is_fetched_again_elsewhere_and_only_the_liar_is_blamed() {
    task::block_on(async {
        let bytes = content(4 * CHUNK_SIZE + 1000);
        let (honest, _files) = sharing_servent(&bytes).await;
        let (liar, asked) = zero_source(bytes.len() as u64).await;
        let dir = tempfile::tempdir().unwrap();
        let downloads = downloads(dir.path(), SharedTrust::default());

        let request =
            DownloadRequest { keep: Keep::NotFake, ..request(&bytes, vec![liar, v4(honest.listen_addr())], None) };
        let done = fetch(&downloads, request).await;

        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert!(std::fs::read(done.path.clone().unwrap()).unwrap() == *bytes);
        assert!(asked.load(Ordering::SeqCst) > 0, "the liar served chunks");
        let liar_seen = done.sources.iter().find(|s| s.addr == liar).unwrap();
        assert_eq!(liar_seen.state, SourceState::Corrupt, "{liar_seen:#?}");
        let honest_seen = done.sources.iter().find(|s| s.addr == v4(honest.listen_addr())).unwrap();
        assert_ne!(honest_seen.state, SourceState::Corrupt, "the honest source is not blamed: {honest_seen:#?}");
        honest.shutdown().await;
    });
}

#[test]
fn fifty_mib_download_is_verified_chunk_by_chunk_against_the_signed_tth() {
    task::block_on(async {
        let bytes = content(50 << 20);
        let publisher = SecretKey::generate().unwrap();
        let signed = signature(&publisher, &bytes);
        let tree = Tree::of(&bytes);
        // The same signed, trusted download from the same kind of source:
        // once without a tree offered (the whole-file check only), once with.
        let mut times = Vec::new();
        for thex in [None, Some(dime::serialize(&tree))] {
            let checked = thex.is_some();
            let (source, _, trees) = raw_source(bytes.clone(), thex).await;
            let dir = tempfile::tempdir().unwrap();
            let downloads = downloads(dir.path(), trusting(&publisher));
            let started = Instant::now();
            let done = fetch(&downloads, request(&bytes, vec![source], Some(signed.clone()))).await;
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
            assert_eq!(done.judgement.as_ref().unwrap().verdict, servent::trust::Verdict::Verified);
            assert_eq!(trees.load(Ordering::SeqCst), usize::from(checked), "the tree was fetched when offered");
            assert_eq!(done.tth, Some(tree.root()));
            assert!(std::fs::read(done.path.unwrap()).unwrap() == *bytes);
        }
        eprintln!(
            "50 MiB, signed: whole-file check only {:.2} s, every chunk checked against the tree {:.2} s: {:.2} x",
            times[0],
            times[1],
            times[1] / times[0]
        );
    });
}

#[test]
fn shared_files_name_their_tree_and_serve_it() {
    task::block_on(async {
        let bytes = content(3 * CHUNK_SIZE + 77);
        let (node, _files) = sharing_servent(&bytes).await;
        let digests = search::hash_reader(&bytes[..]).unwrap().0;
        let mut stream = TcpStream::connect(node.listen_addr()).await.unwrap();
        let head = format!("HEAD /uri-res/N2R?{} HTTP/1.1\r\nConnection: close\r\n\r\n", digests.sha1_urn());
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let thex_uri = format!("X-Thex-URI: /uri-res/N2X?{};{}", digests.sha1_urn(), digests.tth);
        assert!(answer.contains(&thex_uri), "{answer}");

        let mut stream = TcpStream::connect(node.listen_addr()).await.unwrap();
        let get =
            format!("GET /uri-res/N2X?{};{} HTTP/1.1\r\nConnection: close\r\n\r\n", digests.sha1_urn(), digests.tth);
        stream.write_all(get.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&answer[..split]);
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("application/dime"), "{head}");
        let tree = dime::parse(&answer[split..], bytes.len() as u64, &digests.tth).unwrap();
        assert_eq!(tree.root(), digests.tth);
        assert!(tree.check(0, &bytes).is_ok());
        assert_eq!(Root::from_urn(&digests.tth.urn()), Some(digests.tth));
        node.shutdown().await;
    });
}
