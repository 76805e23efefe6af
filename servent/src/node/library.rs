//! The shared library's side of the pump: rescanning the shared folders,
//! sharing a finished download, looking the index up for the core off the
//! decision loop, and the verdicts on our own files for the library view.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_std::channel::{Receiver, Sender};
use async_std::task;
use servent_core::node::{Event as CoreEvent, LookupId};
use signing_tool::Minisig;

use super::{log, Event};
use crate::transfer::download::DownloadSnapshot;
use crate::trust::{Content, Judgement, TrustStore};
use crate::wire::Urn;

/// Looks the index up on the blocking pool and hands the files found back
/// to the core; a failed lookup answers with nothing, so that the core
/// forgets the query.
pub(super) fn look_up(library: &Arc<search::Library>, lookup: LookupId, query: search::Query, events: &Sender<Event>) {
    let (library, events) = (library.clone(), events.clone());
    task::spawn(async move {
        let files = task::spawn_blocking(move || library.search(&query)).await.unwrap_or_else(|e| {
            log(format_args!("local search failed: {e}"));
            Vec::new()
        });
        let _ = events.send(Event::Core(CoreEvent::LocalResults { lookup, files })).await;
    });
}

/// Verdicts on our own shared files, kept while the file, its signature and
/// the trusted keys stay the same: each is an Ed25519 check, and the page
/// asks for the library again and again.
#[derive(Default)]
pub(super) struct LibraryVerdicts {
    trust_generation: u64,
    by_file: HashMap<(u32, Urn, Option<Vec<u8>>), Judgement>,
}

impl LibraryVerdicts {
    /// Forgets everything when the keys changed or the library shrank a lot.
    pub(super) fn refresh(&mut self, trust_generation: u64, files: usize) {
        if trust_generation != self.trust_generation || self.by_file.len() > 2 * files + 64 {
            self.by_file.clear();
            self.trust_generation = trust_generation;
        }
    }

    /// The verdict on one of our shared files, from its signature and its bytes' digests.
    pub(super) fn judge(&mut self, trust: &TrustStore, file: &search::SharedFile) -> Judgement {
        let minisig = match &file.signature {
            Some(search::Sidecar::Signed(signed)) => Some(&*signed.minisig),
            Some(search::Sidecar::Unreadable(why)) => return Judgement::unreadable(why),
            None => None,
        };
        let key = (file.index, file.sha256, minisig.map(Minisig::to_compact));
        if let Some(judgement) = self.by_file.get(&key) {
            return judgement.clone();
        }
        let sha256 = match file.sha256 {
            Urn::Sha256(digest) => Some(digest),
            Urn::Sha1(_) => None,
        };
        let judgement = trust.judge(minisig, Content { size: file.size, sha256 });
        self.by_file.insert(key, judgement.clone());
        judgement
    }
}

/// Shares a verified download at once with the digests its check computed,
/// rather than hashing it again at the next rescan, then wakes the rescan
/// (which finds it known).
pub(super) fn share_downloaded(library: &Arc<search::Library>, done: &DownloadSnapshot, rescan: Sender<()>) {
    let known = match (&done.path, done.sha1, done.sha256) {
        (Some(path), Some(Urn::Sha1(sha1)), Some(Urn::Sha256(sha256))) => Some((path.clone(), sha1, sha256)),
        _ => None,
    };
    let (library, size) = (library.clone(), done.size);
    task::spawn_blocking(move || {
        if let Some((path, sha1, sha256)) = known {
            if let Err(e) = library.add_hashed(&path, search::Digests { sha1, sha256 }, size) {
                log(format_args!("cannot share {}: {e}", path.display()));
            }
        }
        let _ = rescan.try_send(());
    });
}

/// Rescans the shared folders every `interval`, or at once when woken.
pub(super) async fn rescan_loop(
    library: Arc<search::Library>,
    shares: Vec<PathBuf>,
    interval: Duration,
    wake: Receiver<()>,
    events: Sender<Event>,
) {
    loop {
        let (lib, folders) = (library.clone(), shares.clone());
        match task::spawn_blocking(move || lib.rescan(&folders)).await {
            Ok(report) => {
                for error in &report.errors {
                    log(format_args!("{error}"));
                }
                if report.added + report.changed + report.removed > 0 {
                    let (files, bytes) = library.totals();
                    if events.send(Event::Core(CoreEvent::LibraryChanged { files, bytes })).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => log(format_args!("rescan failed: {e}")),
        }
        if events.is_closed() {
            return;
        }
        // Without downloads nothing wakes the rescan and the channel is
        // closed: wait the interval out rather than rescan without pause.
        if let Ok(Err(_)) = async_std::future::timeout(interval, wake.recv()).await {
            task::sleep(interval).await;
        }
    }
}
