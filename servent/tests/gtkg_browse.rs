//! Browse host with gtk-gnutella 1.2.3 (see `common::gtkg`): we list its
//! shared files as it answers `GET /` with QueryHit descriptors. Skipped
//! with a printed reason where gtk-gnutella cannot be built, except in CI.
//!
//! The other direction, gtk-gnutella browsing us, cannot be driven in the
//! headless build: a browse starts only in `search_browse()`
//! (`src/core/search.c`, which calls `download_browse_start()`), whose one
//! caller is the GTK interface (`search_gui_new_browse_host()` in
//! `src/ui/gtk/search_common.c`, through `guc_search_browse()`), compiled
//! out by `--topless`; the shell (`src/shell/`) has no browse command;
//! `download add` takes `http://` URLs (`download_handle_http()`) and
//! magnets (`download_handle_magnet()`: file downloads;
//! `search_handle_magnet()`: searches through
//! `gcu_search_gui_new_search()`, which returns FALSE when topless); no
//! property starts one. `browse.rs` sends its request as
//! `download_send_request()` (`src/core/downloads.c`) writes it instead.

mod common;

use std::time::Duration;

use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{start_with, varied_bytes};
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
