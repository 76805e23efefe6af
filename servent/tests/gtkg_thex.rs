//! Tiger trees against gtk-gnutella 1.2.3 (see `common::gtkg`): the root
//! its hits carry (a bitprint in GGEP "H") is the one we compute for the
//! same bytes, and the THEX tree it serves at `/uri-res/N2X` is, byte for
//! byte, the one we serve. Skipped with a printed reason where gtk-gnutella
//! cannot be built, except in CI.

mod common;

use std::time::Duration;

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start_with, wait_for, wait_indexed};
use search::thex::{dime, Tree};

/// How long gtk-gnutella may take to hash, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(60);

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
    let Some(gtkg) = Gtkg::start(&[("SEBLINUX-tiger-1.0.tar", &theirs)], Options::default()) else { return };
    gtkg.set("is_firewalled", "FALSE");
    gtkg.wait_shared(1, GTKG_PATIENCE);
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
        node.shutdown().await;
    });
}
