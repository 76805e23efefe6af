//! Tiger trees against gtk-gnutella 1.2.3 (see `common::gtkg`): the root
//! its hits carry (a bitprint in GGEP "H") is the one we compute for the
//! same bytes, and the THEX tree it serves at `/uri-res/N2X` is, byte for
//! byte, the one we serve. Skipped with a printed reason where gtk-gnutella
//! cannot be built, except in CI.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use async_std::io::prelude::BufReadExt;
use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start_with, wait_for, wait_indexed};
use search::thex::{dime, Tree};
use servent::transfer::alt::AltLocations;
use servent::transfer::download::{DownloadRequest, DownloadState, Downloads, DownloadsConfig, Keep, SourceState};
use servent::trust::{SharedTrust, TrustStore, Verdict};
use signing_tool::{ReleaseMeta, SecretKey, Signer};

/// How long gtk-gnutella may take to hash, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(60);

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("tests listen on IPv4"),
    }
}

/// A liar answering every ranged request with as many zeros (and a tree
/// request, which has no range, with `404`).
async fn zero_source(size: u64) -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = v4(listener.local_addr().unwrap());
    task::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            task::spawn(async move {
                let (mut reader, mut writer) = (BufReader::new(stream.clone()), stream);
                loop {
                    let mut range = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                        if let Some(value) = line.trim_end().to_ascii_lowercase().strip_prefix("range: bytes=") {
                            let (a, b) = value.split_once('-').unwrap();
                            range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap() + 1));
                        }
                    }
                    let reply = match range {
                        Some((start, end)) => [
                            format!(
                                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Length: {}\r\n\r\n",
                                end - 1,
                                end - start
                            )
                            .into_bytes(),
                            vec![0; (end - start) as usize],
                        ]
                        .concat(),
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                    };
                    if writer.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// `GET target` from `addr`, `Connection: close`; the head and the body.
async fn get(addr: std::net::SocketAddr, target: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = async_std::io::timeout(GTKG_PATIENCE, stream.read_to_end(&mut answer)).await;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |p| p + 4);
    (String::from_utf8_lossy(&answer[..split]).into_owned(), answer[split..].to_vec())
}

#[test]
fn gtk_gnutellas_tiger_tree_is_ours_in_its_hits_and_its_thex() {
    // 3 MiB and a bit: a tree of several levels, and a short last block.
    let theirs: Vec<u8> = (0..(3 << 20) + 1234u32).map(|i| (i * 31 % 253) as u8).collect();
    // Under 512 KiB, which it serves in one range: a one-chunk download.
    let small: Vec<u8> = (0..400_000u32).map(|i| (i * 17 % 251) as u8).collect();
    let files: [(&str, &[u8]); 2] = [("SEBLINUX-tiger-1.0.tar", &theirs), ("SEBLINUX-small-1.0.tar", &small)];
    let Some(gtkg) = Gtkg::start(&files, Options::default()) else { return };
    gtkg.set("is_firewalled", "FALSE");
    gtkg.wait_shared(2, GTKG_PATIENCE);
    let digests = search::hash_reader(&theirs[..]).unwrap().0;
    task::block_on(async {
        let ours = share(&[("SEBLINUX-ours-1.0.tar", b"our release".as_slice())]);
        let data = tempfile::tempdir().unwrap();
        let node = start_with(&[gtkg.addr], Some(ours.path()), |c| c.data_dir = Some(data.path().to_path_buf())).await;
        wait_indexed(&node, "seblinux", 1).await;
        wait_for("gtk-gnutella to list us as a peer", || async {
            node.peers().await.unwrap().iter().any(|p| p.addr == gtkg.addr)
        })
        .await;

        // Its hit names the file by its bitprint: SHA-1 and our Tiger tree root.
        // (It computes the tree after the SHA-1: search again until it has it.)
        let mut found = None;
        for _ in 0..6 {
            let id = node.search("SEBLINUX tiger", 4).await.unwrap();
            let hit = async {
                loop {
                    let results = node.search_results(id).await.unwrap().unwrap().results;
                    if let Some(r) = results.into_iter().find(|r| r.name == "SEBLINUX-tiger-1.0.tar") {
                        return r;
                    }
                    task::sleep(Duration::from_millis(50)).await;
                }
            };
            let Ok(result) = async_std::future::timeout(Duration::from_secs(20), hit).await else { continue };
            if result.tth.is_some() {
                found = Some(result);
                break;
            }
        }
        let result = found.unwrap_or_else(|| panic!("no hit with a bitprint from it\n{}", gtkg.diagnose()));
        assert_eq!(result.sha1, Some(digests.sha1_urn()));
        assert_eq!(result.tth, Some(digests.tth), "its TTH is ours for the same bytes");

        // Its THEX tree reads as ours and is byte for byte what we serve.
        let target = format!("/uri-res/N2X?{}", digests.sha1_urn());
        let (head, body) = get(gtkg.addr, &target).await;
        assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{head}\n{}", gtkg.diagnose());
        let tree = dime::parse(&body, theirs.len() as u64, &digests.tth).expect("its THEX body parses");
        assert!(tree.check(0, &theirs).is_ok());
        assert_eq!(body, dime::serialize(&Tree::of(&theirs)), "our serialization is gtk-gnutella's");

        // A download signed with a trusted tth: from a zero-serving liar and
        // from it: its tree (the liar has none) catches the liar's chunk.
        let digests = search::hash_reader(&small[..]).unwrap().0;
        let publisher = SecretKey::generate().unwrap();
        let mut signer = Signer::new();
        signer.update(&small);
        let meta = ReleaseMeta { name: "SEBLINUX-tiger".into(), version: "1.0".into(), keywords: vec![] };
        let signature = Arc::new(signer.finish(&publisher, "SEBLINUX-small-1.0.tar", Some(&meta), 1).unwrap());
        let mut trust = TrustStore::in_memory();
        trust.add(publisher.public_key(), vec![]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
        let downloads = Downloads::spawn(config, Arc::new(AltLocations::new()), SharedTrust::new(trust), |_| {});
        let liar = zero_source(small.len() as u64).await;
        let request = DownloadRequest {
            urns: vec![digests.sha1_urn(), digests.sha256_urn()],
            name: "SEBLINUX-small-1.0.tar".into(),
            size: small.len() as u64,
            sources: vec![liar, v4(gtkg.addr)],
            signature: Some(signature),
            keep: Keep::Verified,
        };
        let id = downloads.start(request).await.unwrap();
        let done = async_std::future::timeout(GTKG_PATIENCE, downloads.wait(id)).await;
        let Ok(done) = done else {
            let snapshot = downloads.get(id).await;
            panic!("the download did not end: {snapshot:#?}\n{}", gtkg.diagnose());
        };
        let done = done.unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}\n{}", gtkg.diagnose());
        assert_eq!(done.judgement.as_ref().unwrap().verdict, Verdict::Verified);
        assert_eq!(std::fs::read(done.path.clone().unwrap()).unwrap(), small);
        let liar_seen = done.sources.iter().find(|s| s.addr == liar).unwrap();
        assert_eq!(liar_seen.state, SourceState::Corrupt, "{liar_seen:#?}");
        assert!(liar_seen.note.as_deref().unwrap().contains("Tiger tree"), "caught by the tree: {liar_seen:#?}");
        node.shutdown().await;
    });
}
