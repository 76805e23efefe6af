//! Our ultrapeer between gtk-gnutella 1.2.3 servents (see `common::gtkg`):
//! its vendor messages reach us, and one finds the other's file through
//! us. Skipped with a printed reason where gtk-gnutella cannot be built,
//! except in CI.

mod common;

use std::time::Duration;

use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{start_with, wait_for_within};
use servent::config::Mode;
use servent::handshake::Role;

/// How long gtk-gnutella may take to hash, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(90);

#[test]
fn gtk_gnutellas_messages_supported_reaches_us_and_shows_in_the_peer_list() {
    task::block_on(async {
        let ours = start_with(&[], None, |c| c.mode = Mode::Ultrapeer).await;
        let options = Options { peers: vec![ours.listen_addr()], ..Options::default() };
        let Some(gtkg) = Gtkg::start(&[], options) else { return };
        wait_for_within(&format!("its Messages Supported\n{}", gtkg.diagnose()), GTKG_PATIENCE, || async {
            ours.peers().await.unwrap().iter().any(|p| !p.vendor_messages.is_empty())
        })
        .await;
        // As `peers --json` and the API show it.
        let peers = serde_json::to_value(ours.peers().await.unwrap()).unwrap();
        let announced: Vec<&str> =
            peers[0]["vendor_messages"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
        // What its vmsg.c lists: Hops Flow, Query Status, OOB v3, its own.
        for kind in ["BEAR/4v1", "BEAR/11v1", "BEAR/12v1", "LIME/12v3", "LIME/21v2"] {
            assert!(announced.contains(&kind), "{kind} missing from {announced:?}");
        }
        assert!(announced.iter().any(|k| k.starts_with("GTKG/")), "{announced:?}");
        ours.shutdown().await;
    });
}

#[test]
fn a_gtk_gnutella_finds_another_ones_file_through_our_ultrapeer() {
    task::block_on(async {
        let ours = start_with(&[], None, |c| c.mode = Mode::Ultrapeer).await;
        // A: a leaf of ours sharing the file; B: an ultrapeer linked to us only.
        let leaf = Options { mode: "leaf", peers: vec![ours.listen_addr()], ..Options::default() };
        let file = b"a release shared by one gtk-gnutella, found by another".as_slice();
        let Some(a) = Gtkg::start(&[("SEBLINUX-relayed-1.0.tar", file)], leaf) else { return };
        a.set("is_firewalled", "FALSE");
        a.wait_shared(1, GTKG_PATIENCE);
        let Some(b) = Gtkg::start(&[], Options { peers: vec![ours.listen_addr()], ..Options::default() }) else {
            return;
        };
        wait_for_within(&format!("both to link to us\n{}\n{}", a.diagnose(), b.diagnose()), GTKG_PATIENCE, || async {
            let peers = ours.peers().await.unwrap();
            let a_with_its_table = peers.iter().any(|p| p.role == Role::Leaf && p.qrp);
            let b = peers.iter().any(|p| p.role == Role::Ultrapeer);
            a_with_its_table && b
        })
        .await;
        b.shell("search add relayed");
        b.wait_until("A's hit in B's log", GTKG_PATIENCE, || b.log().contains("QHIT"));
        // Through us: B has no link to A.
        let a_addr = a.addr.to_string();
        assert!(!b.shell("nodes").contains(&a_addr), "B linked to A directly:\n{}", b.diagnose());
        ours.shutdown().await;
    });
}
