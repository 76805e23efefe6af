//! Firewalled transfers with gtk-gnutella 1.2.3 (see `common::gtkg`), in
//! each direction: the side that only connects out is unreachable by what
//! it advertises (its hits carry the push flag), so the other side sends a
//! PUSH along the link and the firewalled side connects back with `GIV`.
//! Skipped with a printed reason where gtk-gnutella cannot be built, except
//! in CI.

mod common;

use std::time::Duration;

use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start, start_with, varied_bytes, wait_connected, wait_for, wait_indexed};
use servent::transfer::download::{DownloadState, Keep};

/// How long gtk-gnutella may take to hash, connect or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(120);

#[test]
fn gtk_gnutella_downloads_from_us_by_push_when_we_are_firewalled() {
    let ours = varied_bytes(3 * 1024 * 1024 + 777);
    let name = "SEBLINUX-pushed-1.0.tar";
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    // It sends PUSHes only while it believes itself reachable.
    gtkg.set("is_firewalled", "FALSE");
    task::block_on(async {
        let files = share(&[(name, &ours)]);
        // A test network (`--dial-local`: its PUSH names 127.0.0.1); we
        // listen on 127.0.0.2 but dial from 127.0.0.1, so its connect-back
        // (to our link's IP) misses us and we stay firewalled.
        let node = start_with(&[gtkg.addr], Some(files.path()), |c| {
            c.listen = "127.0.0.2:0".parse().unwrap();
        })
        .await;
        wait_indexed(&node, "seblinux", 1).await;
        wait_for("our link to it", || async { node.peers().await.unwrap().iter().any(|p| p.addr == gtkg.addr) }).await;
        // We only connected out: the firewall check finds us unreachable.
        let status = node.status().await.unwrap();
        assert!(status.firewalled);

        // Its search brings our firewalled hit, which teaches it the route
        // back to our servent GUID.
        gtkg.shell("search add SEBLINUX");
        gtkg.wait_until("our hit in its log", GTKG_PATIENCE, || gtkg.log().contains("QHIT [SEBL]"));
        let query = search::Query { words: "seblinux".into(), urns: Vec::new(), limit: 1 };
        let file = node.library().search(&query).unwrap().remove(0);
        // A push:// source names only our GUID: no address to connect to.
        let magnet = format!(
            "magnet:?xt={}&dn={name}&xl={}&xs=push://{}/uri-res/N2R?{}",
            file.sha1,
            ours.len(),
            status.guid,
            file.sha1
        );
        let answer = gtkg.shell(&format!("download add \"{magnet}\""));
        assert!(!answer.contains("could not"), "{answer}");
        let done = gtkg.completed(name);
        gtkg.wait_until(&format!("its download from us ({answer})"), GTKG_PATIENCE, || done.exists());
        assert!(std::fs::read(&done).unwrap() == ours, "its copy differs from ours");
        assert!(node.uploads().snapshot().pushed >= 1, "we connected back for its PUSH");
        // Reachable and sending PUSHes, it announces firewalled alt-locs (`X-Features: …fwalt/0.1`).
        assert!(node.uploads().snapshot().fwalt_requesters >= 1, "its requests announced fwalt");
        node.shutdown().await;
    });
}

#[test]
fn gtk_gnutella_connects_back_when_we_ask_and_we_find_ourselves_reachable() {
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    task::block_on(async {
        // On loopback its connect-back comes from a local address, which
        // counts only on a test network (--dial-local).
        let node = start(&[gtkg.addr], None).await;
        wait_for("our link to it", || async { node.peers().await.unwrap().iter().any(|p| p.addr == gtkg.addr) }).await;
        // We only connected out: its answer to our TCP Connect Back (BEAR/7)
        // is the only connection that can reach us.
        wait_for(&format!("its connect-back\n{}", gtkg.diagnose()), || async {
            !node.status().await.unwrap().firewalled
        })
        .await;
        node.shutdown().await;
    });
}

#[test]
fn gtk_gnutella_takes_the_firewalled_source_we_name_in_x_falt() {
    let ours = varied_bytes(3 * 1024 * 1024 + 5);
    let name = "SEBLINUX-falt-1.0.tar";
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    // It announces fwalt only while it believes itself reachable; its
    // mesh says what it learns at this debug level (`dmesh.c`).
    gtkg.set("is_firewalled", "FALSE");
    gtkg.set("dmesh_debug", "2");
    task::block_on(async {
        // Our firewalled servent, and ours that fetches from it by push and
        // so knows it as a verified firewalled source.
        let files = share(&[(name, &ours)]);
        // Of a test network (`--dial-local`) but the hub, which so answers
        // no connect-back on loopback: the firewalled servent stays so. The
        // hub dials ours, which so is reachable: a firewalled servent sends
        // no PUSH, as gtk-gnutella.
        let data = tempfile::tempdir().unwrap();
        let node = start_with(&[], None, |c| c.data_dir = Some(data.path().to_path_buf())).await;
        let hub = start_with(&[node.listen_addr()], None, |c| c.dial_local = false).await;
        let firewalled = start_with(&[hub.listen_addr()], Some(files.path()), |_| {}).await;
        wait_connected(&hub, &firewalled).await;
        wait_connected(&hub, &node).await;
        wait_indexed(&firewalled, "seblinux", 1).await;
        wait_for("the hub's link to make ours reachable", || async { !node.status().await.unwrap().firewalled }).await;
        let firewalled_guid = firewalled.status().await.unwrap().guid;
        let id = node.search("SEBLINUX falt", 4).await.unwrap();
        wait_for("the firewalled servent's hit", || async {
            !node.search_results(id).await.unwrap().unwrap().results.is_empty()
        })
        .await;
        let sha1 = node.search_results(id).await.unwrap().unwrap().results[0].sha1.unwrap();
        let download = node.download(&sha1.to_string(), Keep::NotFake).await.unwrap();
        let done = node.downloads().unwrap().wait(download).await.unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        wait_indexed(&node, "seblinux", 1).await;

        // gtk-gnutella fetches it from us, announcing fwalt; our answer names
        // the firewalled servent in X-Falt, and its mesh takes it.
        let magnet = format!(
            "magnet:?xt={sha1}&dn={name}&xl={}&xs=http://{}/uri-res/N2R?{sha1}",
            ours.len(),
            node.listen_addr()
        );
        let answer = gtkg.shell(&format!("download add \"{magnet}\""));
        assert!(!answer.contains("could not"), "{answer}");
        let learned = format!("dmesh entry created for {sha1} for {firewalled_guid}").to_lowercase();
        gtkg.wait_until("its mesh to take our X-Falt", GTKG_PATIENCE, || gtkg.log().to_lowercase().contains(&learned));
        assert!(node.uploads().snapshot().fwalt_requesters >= 1);
        for servent in [node, firewalled, hub] {
            servent.shutdown().await;
        }
    });
}

#[test]
fn we_download_from_a_firewalled_gtk_gnutella_by_push() {
    let theirs = varied_bytes(2 * 1024 * 1024 + 99);
    let name = "SEBLINUX-behindgtkg-1.0.tar";
    task::block_on(async {
        let data = tempfile::tempdir().unwrap();
        // A test network (`--dial-local`): its hit names 127.0.0.1.
        let node = start_with(&[], None, |c| {
            c.data_dir = Some(data.path().to_path_buf());
        })
        .await;
        // It connects to us and nobody connects to it: on loopback it
        // believes itself firewalled, and its hits say so.
        let options = Options { peers: vec![node.listen_addr()], ..Options::default() };
        let Some(gtkg) = Gtkg::start(&[(name, &theirs)], options) else { return };
        gtkg.wait_shared(1, GTKG_PATIENCE);
        wait_for(&format!("its link to us\n{}", gtkg.diagnose()), || async { !node.peers().await.unwrap().is_empty() })
            .await;
        assert!(gtkg.shell("status").contains(" FW "), "it believes itself firewalled: {}", gtkg.shell("status"));

        // Its share may be hashed after its first query table: ask again until it answers.
        let deadline = std::time::Instant::now() + GTKG_PATIENCE;
        let result = loop {
            let id = node.search("SEBLINUX behindgtkg", 4).await.unwrap();
            task::sleep(Duration::from_secs(2)).await;
            let results = node.search_results(id).await.unwrap().unwrap().results;
            if let Some(result) = results.into_iter().find(|r| r.name == name) {
                break result;
            }
            assert!(std::time::Instant::now() < deadline, "no hit from it\n{}", gtkg.diagnose());
        };
        let urn = result.sha1.unwrap();
        let id = node.download(&urn.to_string(), Keep::NotFake).await.unwrap();
        let done = async_std::future::timeout(GTKG_PATIENCE, node.downloads().unwrap().wait(id)).await;
        let done = done.unwrap_or_else(|_| panic!("the download by push did not end\n{}", gtkg.diagnose())).unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}\n{}", gtkg.diagnose());
        assert!(std::fs::read(done.path.unwrap()).unwrap() == theirs, "our copy differs from its file");
        assert!(node.status().await.unwrap().givs_taken >= 1, "it connected to us with GIV after our PUSH");
        node.shutdown().await;
    });
}
