//! Against the real thing: gtk-gnutella 1.2.3 on 127.0.0.1 (see
//! `common::gtkg`), our servent in-process. Skipped with a printed reason
//! where gtk-gnutella cannot be built, except in CI.

mod common;

use std::time::Duration;

use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start_with, wait_for, wait_indexed};
use servent::transfer::download::Keep;

/// How long gtk-gnutella may take to hash, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn gtk_gnutella_ultrapeer_and_we_search_each_other_and_we_download_from_it() {
    let theirs: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let Some(gtkg) = Gtkg::start(&[("SEBLINUX-gtkg-1.0.tar", &theirs)], Options::default()) else { return };
    // On loopback it believes it is firewalled and would not answer us.
    gtkg.set("is_firewalled", "FALSE");
    gtkg.wait_shared(1, GTKG_PATIENCE);
    task::block_on(async {
        let ours = share(&[("SEBLINUX-ours-1.0.tar", b"our release".as_slice())]);
        let data = tempfile::tempdir().unwrap();
        let node = start_with(&[gtkg.addr], Some(ours.path()), |c| c.data_dir = Some(data.path().to_path_buf())).await;
        wait_indexed(&node, "seblinux", 1).await;
        wait_for("gtk-gnutella to list us as a peer", || async {
            node.peers().await.unwrap().iter().any(|p| p.addr == gtkg.addr)
        })
        .await;
        gtkg.wait_until("its link to us", GTKG_PATIENCE, || {
            gtkg.shell("nodes").contains(&node.listen_addr().ip().to_string())
        });

        // Our search finds its file, with its address as the source.
        let id = node.search("SEBLINUX gtkg", 4).await.unwrap();
        wait_for(&format!("its hit\n{}", gtkg.diagnose()), || async {
            node.search_results(id).await.unwrap().unwrap().results.iter().any(|r| r.name == "SEBLINUX-gtkg-1.0.tar")
        })
        .await;
        let results = node.search_results(id).await.unwrap().unwrap().results;
        let result = results.iter().find(|r| r.name == "SEBLINUX-gtkg-1.0.tar").unwrap();
        assert_eq!(result.size, theirs.len() as u64);

        // Its search finds ours: it logs each hit as a QHIT line with the
        // vendor code (its queue sends a search's query within ~10 s).
        gtkg.shell("search add SEBLINUX");
        gtkg.wait_until("our hit in its log", GTKG_PATIENCE, || gtkg.log().contains("QHIT [SEBL]"));

        // The file comes from it byte for byte (under 512 KiB: one range).
        let urn = result.sha1.unwrap().to_string();
        let id = node.download(&urn, Keep::NotFake).await.unwrap();
        let done = async_std::future::timeout(GTKG_PATIENCE, node.downloads().unwrap().wait(id)).await;
        let done = done.unwrap_or_else(|_| panic!("the download from it did not end\n{}", gtkg.diagnose())).unwrap();
        let path = done.path.clone().unwrap_or_else(|| panic!("the download from it failed: {done:?}"));
        assert_eq!(std::fs::read(path).unwrap(), theirs);
        node.shutdown().await;
    });
}
