//! Browse host with gtk-gnutella 1.2.3 (see `common::gtkg`), both ways: we
//! list its shared files as it answers `GET /` with QueryHit descriptors,
//! and it browses us. Skipped with a printed reason where gtk-gnutella
//! cannot be built, except in CI.
//!
//! A headless gtk-gnutella starts a browse only through our test patch:
//! the browse is `search_browse()` (`src/core/search.c`, which calls
//! `download_browse_start()`), whose one caller is the GTK interface
//! (`search_gui_new_browse_host()`), compiled out by `--topless`; the shell
//! has no browse command of its own. `tests/counterpart/browse-shell.patch`
//! adds `search browse IP:PORT`, which makes a browse search and calls
//! `search_browse()` as the interface does; a binary built without it (a
//! `GTKG_BIN` naming another build) skips that test with the reason.

mod common;

use std::time::Duration;

use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start_with, varied_bytes, wait_indexed};
use servent::trust::Verdict;

/// How long gtk-gnutella may take to hash its files on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(120);

#[test]
fn we_browse_gtk_gnutella_and_see_its_files_with_their_verdicts() {
    let first = varied_bytes(70_000);
    let second = varied_bytes(5_000);
    let files = [("SEBLINUX-browsed-1.0.tar", &first[..]), ("SEBLINUX-browsed-2.0.iso", &second[..])];
    let Some(gtkg) = Gtkg::start(&files, Options::default()) else { return };
    // Off by default (gnet_property.c: browse_host_enabled = FALSE).
    gtkg.set("browse_host_enabled", "TRUE");
    gtkg.wait_shared(2, GTKG_PATIENCE);
    task::block_on(async {
        let node = start_with(&[], None, |_| {}).await;
        let results = node.browse(gtkg.addr).await.unwrap_or_else(|e| panic!("{e}\n{}", gtkg.diagnose()));
        let mut names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["SEBLINUX-browsed-1.0.tar", "SEBLINUX-browsed-2.0.iso"], "{results:#?}");
        let tar = results.iter().find(|r| r.name.ends_with(".tar")).unwrap();
        assert_eq!(tar.size, first.len() as u64);
        let (digests, _) = search::hash_reader(&first[..]).unwrap();
        assert_eq!(tar.sha1, Some(digests.sha1_urn()));
        assert!(results.iter().all(|r| r.judgement.verdict == Verdict::Unsigned));
        node.shutdown().await;
    });
}

#[test]
fn gtk_gnutella_browses_us_and_lists_our_shared_files() {
    let files = share(&[("SEBLINUX-base-1.0.tar", &varied_bytes(30_000)), ("SEBLINUX-notes-1.0.tar", b"notes\n")]);
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    task::block_on(async {
        let node = start_with(&[], Some(files.path()), |_| {}).await;
        wait_indexed(&node, "seblinux", 2).await;
        if let Err(answer) = gtkg.browse(node.listen_addr()) {
            assert!(std::env::var_os("CI").is_none(), "gtk-gnutella cannot browse in CI: {answer}");
            eprintln!(
                "skipped: this gtk-gnutella has no `search browse` (built without tests/counterpart/browse-shell.patch): {answer}"
            );
            node.shutdown().await;
            return;
        }
        // No Gnutella link joins us: our hits can reach it only by its browse.
        // It logs each hit of the answer (log_query_hits) with our vendor
        // code, our address, its records and its flags, BROWSE among them:
        // `SEARCH TCP QHIT [SEBL] (127.0.0.1:PORT …): 2 recs {BROWSE, BH, …}`.
        let ours = format!("QHIT [SEBL] (127.0.0.1:{}", node.listen_addr().port());
        let records = || -> u32 {
            gtkg.log()
                .lines()
                .filter(|line| line.contains(&ours) && line.contains("{BROWSE"))
                .filter_map(|line| line.rsplit_once(" rec")?.0.rsplit(' ').next()?.parse::<u32>().ok())
                .sum()
        };
        gtkg.wait_until("our files in its browse", GTKG_PATIENCE, || records() >= 2);
        assert_eq!(records(), 2, "{}", gtkg.diagnose());
        assert!(node.peers().await.unwrap().is_empty(), "no Gnutella link");
        node.shutdown().await;
    });
}
