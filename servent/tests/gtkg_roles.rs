//! Ultrapeers and leaves against the real thing: gtk-gnutella 1.2.3 as a
//! leaf under our ultrapeer, and our leaf under it as an ultrapeer (see
//! `common::gtkg`). Skipped with a printed reason where gtk-gnutella cannot
//! be built, except in CI.

mod common;

use std::time::Duration;

use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start_with, wait_for, wait_indexed};
use servent::config::Mode;
use servent::handshake::Role;
use servent::node::NodeHandle;

/// How long gtk-gnutella may take to hash, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(90);

/// One of its general counters (`stats`: "name value" lines).
fn counter(gtkg: &Gtkg, name: &str) -> u64 {
    let stats = gtkg.shell("stats");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in its stats:\n{stats}"))
}

async fn found(node: &NodeHandle, words: &str, name: &str) -> bool {
    let id = node.search(words, 4).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if node.search_results(id).await.unwrap().unwrap().results.iter().any(|r| r.name == name) {
            return true;
        }
        task::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn a_gtk_gnutella_leaf_under_our_ultrapeer_gets_our_queries_only_through_qrp() {
    task::block_on(async {
        let ours = start_with(&[], None, |c| c.mode = Mode::Ultrapeer).await;
        let options = Options { mode: "leaf", peers: vec![ours.listen_addr()], ..Options::default() };
        let theirs = b"a release shared by a gtk-gnutella leaf".as_slice();
        let Some(gtkg) = Gtkg::start(&[("SEBLINUX-gtkgleaf-1.0.tar", theirs)], options) else { return };
        gtkg.set("is_firewalled", "FALSE");
        gtkg.wait_shared(1, GTKG_PATIENCE);

        // It accepts us (no more "403 High Outdegree and Dynamic Querying
        // Required") and sends its route table.
        wait_for(&format!("it to link to us as a leaf with its table\n{}", gtkg.diagnose()), || async {
            ours.peers().await.unwrap().iter().any(|p| p.role == Role::Leaf && p.qrp)
        })
        .await;

        // A query for a word it shares reaches it and its hit comes back (its
        // first table may predate its hashing: the patch follows).
        wait_for(&format!("its hit\n{}", gtkg.diagnose()), || {
            found(&ours, "SEBLINUX gtkgleaf", "SEBLINUX-gtkgleaf-1.0.tar")
        })
        .await;

        // One for another word does not reach it: its count of queries
        // searched locally grows by one for the two queries below, sent in
        // order on the one link, the second of which it answers.
        let before = counter(&gtkg, "local_searches");
        ours.search("linux kernel", 4).await.unwrap();
        let fence = ours.search("SEBLINUX gtkgleaf", 4).await.unwrap();
        wait_for(&format!("its hit to the second query\n{}", gtkg.diagnose()), || async {
            !ours.search_results(fence).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        assert_eq!(counter(&gtkg, "local_searches"), before + 1, "{}", gtkg.diagnose());
        ours.shutdown().await;
    });
}

#[test]
fn our_leaf_under_a_gtk_gnutella_ultrapeer_is_found_by_its_search() {
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    // It holds its own searches while it lacks a third of its ultrapeer
    // links (`sq_process`): ask for one, which our ultrapeer fills.
    gtkg.set("up_connections", "1");
    task::block_on(async {
        let files = share(&[("SEBLINUX-ourleaf-1.0.tar", b"a release shared by our leaf".as_slice())]);
        let up = start_with(&[gtkg.addr], None, |c| c.mode = Mode::Ultrapeer).await;
        let leaf = start_with(&[gtkg.addr], Some(files.path()), |c| c.mode = Mode::Leaf).await;
        wait_indexed(&leaf, "seblinux", 1).await;
        for (ours, what) in [(&leaf, "our leaf"), (&up, "our ultrapeer")] {
            wait_for(&format!("it to take {what}\n{}", gtkg.diagnose()), || async {
                ours.peers().await.unwrap().iter().any(|p| p.addr == gtkg.addr && p.role == Role::Ultrapeer)
            })
            .await;
        }
        // Only our leaf shares the file, and only through it can it be reached.
        gtkg.shell("search add ourleaf");
        gtkg.wait_until("our leaf's hit in its log", GTKG_PATIENCE, || gtkg.log().contains("QHIT [SEBL]"));
        for node in [leaf, up] {
            node.shutdown().await;
        }
    });
}
