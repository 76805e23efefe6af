//! The shared library's side of the pump: rescanning the shared folders,
//! sharing a finished download, looking the index up for the core off the
//! decision loop, and the verdicts on our own files for the library view.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_std::channel::{Receiver, Sender};
use async_std::task;
use servent_core::node::{Event as CoreEvent, LookupId};
use servent_core::qrp::RouteTable;
use signing_tool::Minisig;

use super::{warn, Event};
use crate::transfer::download::DownloadSnapshot;
use crate::transfer::partial::PartialShares;
use crate::trust::{Content, Judgement, TrustStore};
use crate::wire::Urn;

/// Looks the index up on the blocking pool and hands the files found back
/// to the core; a failed lookup answers with nothing, so that the core
/// forgets the query.
/// Files being downloaded (offered in part) answer too, as partial results.
pub(super) fn look_up(
    library: &Arc<search::Library>,
    partial: &Arc<PartialShares>,
    lookup: LookupId,
    query: search::Query,
    events: &Sender<Event>,
) {
    let (library, partial, events) = (library.clone(), partial.clone(), events.clone());
    task::spawn(async move {
        let (files, partials) = task::spawn_blocking(move || {
            let files = library.search(&query).unwrap_or_else(|e| {
                warn(format_args!("local search failed: {e}"));
                Vec::new()
            });
            let room = query.limit.saturating_sub(files.len());
            (files, partial.search(&query, room))
        })
        .await;
        let event = match partials.is_empty() {
            true => CoreEvent::LocalResults { lookup, files },
            false => CoreEvent::LocalPartialResults { lookup, files, partials },
        };
        let _ = events.send(Event::Core(event)).await;
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
        let judgement = trust.judge(minisig, Content { size: file.size, sha256, tth: Some(file.tth) });
        self.by_file.insert(key, judgement.clone());
        judgement
    }
}

/// Shares a verified download at once with the digests its check computed,
/// rather than hashing it again at the next rescan, then wakes the rescan
/// (which finds it known).
pub(super) fn share_downloaded(library: &Arc<search::Library>, done: &DownloadSnapshot, rescan: Sender<()>) {
    let known = match (&done.path, done.sha1, done.sha256, done.tth) {
        (Some(path), Some(Urn::Sha1(sha1)), Some(Urn::Sha256(sha256)), Some(tth)) => {
            Some((path.clone(), search::Digests { sha1, sha256, tth }))
        }
        _ => None,
    };
    let (library, size) = (library.clone(), done.size);
    task::spawn_blocking(move || {
        if let Some((path, digests)) = known {
            match library.add_hashed(&path, digests, size) {
                // Moved away meanwhile (installed): the rescan shares it where it went.
                Err(_) if !path.exists() => {}
                Err(e) => warn(format_args!("cannot share {}: {e}", path.display())),
                Ok(_) => {}
            }
        }
        let _ = rescan.try_send(());
    });
}

/// The library's QRP table: the words of its files' names and of their
/// signed release metadata (name, version, keywords), and their SHA-1s;
/// the same of the files being downloaded (`partials`), as gtk-gnutella
/// does, so that a leaf is sent the queries its partial results answer.
pub(super) fn route_table(library: &search::Library, partials: &[search::SharedFile]) -> RouteTable {
    let mut table = RouteTable::default();
    for file in library.files().iter().chain(partials) {
        table.insert_name(&file.name);
        table.insert_urn(&file.sha1);
        if let Some(search::Sidecar::Signed(search::Signed { release: Some(release), .. })) = &file.signature {
            table.insert_name(&release.name);
            table.insert_name(&release.version);
            for keyword in &release.keywords {
                table.insert_name(keyword);
            }
        }
    }
    table
}

/// The most folders shared at once (`--share` and `share add` together).
pub(super) const MAX_SHARED_FOLDERS: usize = 256;

/// The shared folders, which `share add` may extend while the servent runs.
#[derive(Clone, Default)]
pub(super) struct SharedFolders(Arc<Mutex<Vec<PathBuf>>>);

impl SharedFolders {
    pub(super) fn new(folders: Vec<PathBuf>) -> SharedFolders {
        SharedFolders(Arc::new(Mutex::new(folders)))
    }

    /// The folders, as given.
    pub(super) fn list(&self) -> Vec<PathBuf> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Shares the existing folder `dir` too (an absolute path, resolved);
    /// whether it was not shared yet. Refused: a relative path, what is not
    /// a folder, a folder beyond [`MAX_SHARED_FOLDERS`].
    pub(super) fn add(&self, dir: &Path) -> Result<bool, String> {
        if !dir.is_absolute() {
            return Err(format!("{}: give the folder's absolute path", dir.display()));
        }
        let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
        if !dir.is_dir() {
            return Err(format!("{}: not a folder", dir.display()));
        }
        let mut folders = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let resolved: Vec<PathBuf> = folders.iter().map(|f| f.canonicalize().unwrap_or_else(|_| f.clone())).collect();
        match with_folder(&resolved, dir) {
            None => Ok(false),
            Some(merged) if merged.len() > MAX_SHARED_FOLDERS => {
                Err(format!("at most {MAX_SHARED_FOLDERS} folders can be shared"))
            }
            Some(merged) => {
                *folders = merged;
                Ok(true)
            }
        }
    }
}

/// `folders` with `new` shared too: `None` when a folder already covers it;
/// folders inside `new` give way to it, so no file is scanned twice.
fn with_folder(folders: &[PathBuf], new: PathBuf) -> Option<Vec<PathBuf>> {
    if folders.iter().any(|f| new.starts_with(f)) {
        return None;
    }
    let mut merged: Vec<PathBuf> = folders.iter().filter(|f| !f.starts_with(&new)).cloned().collect();
    merged.push(new);
    Some(merged)
}

/// Rescans the shared folders every `interval`, or at once when woken (a
/// download finished, or the files offered in part changed). A finished
/// download the library indexes is no longer offered in part.
pub(super) async fn rescan_loop(
    library: Arc<search::Library>,
    partial: Arc<PartialShares>,
    shares: SharedFolders,
    interval: Duration,
    wake: Receiver<()>,
    events: Sender<Event>,
) {
    let mut table_version = partial.version();
    loop {
        let (lib, folders) = (library.clone(), shares.list());
        match task::spawn_blocking(move || lib.rescan(&folders)).await {
            Ok(report) => {
                for error in &report.errors {
                    warn(format_args!("{error}"));
                }
                // A download shared at once (`share_downloaded`) is no change
                // to the rescan: the files offered whole are checked each time.
                partial.forget_indexed(|urn| library.by_urn(urn).is_some());
                let library_changed = report.added + report.changed + report.removed > 0;
                if library_changed {
                    let (files, bytes) = library.totals();
                    if events.send(Event::Core(CoreEvent::LibraryChanged { files, bytes })).await.is_err() {
                        return;
                    }
                }
                if library_changed || partial.version() != table_version {
                    table_version = partial.version();
                    let (lib, partials) = (library.clone(), partial.files());
                    let table = task::spawn_blocking(move || route_table(&lib, &partials)).await;
                    if events.send(Event::Core(CoreEvent::LibraryTable(table))).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => warn(format_args!("rescan failed: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_folder_is_shared_once_and_folders_inside_it_give_way() {
        let shared = paths(&["/srv/music", "/home/a/downloads", "/home/a/docs/old"]);
        assert_eq!(with_folder(&shared, "/srv/music/jazz".into()), None, "already covered");
        assert_eq!(with_folder(&shared, "/srv/music".into()), None, "already shared");
        assert_eq!(
            with_folder(&shared, "/home/a/docs".into()),
            Some(paths(&["/srv/music", "/home/a/downloads", "/home/a/docs"]))
        );
        assert_eq!(
            with_folder(&shared, "/srv/musical".into()),
            Some(paths(&["/srv/music", "/home/a/downloads", "/home/a/docs/old", "/srv/musical"])),
            "a prefix of the text is not a parent folder"
        );
    }

    #[test]
    fn only_an_existing_absolute_folder_is_shared_and_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let folders = SharedFolders::new(Vec::new());
        assert!(folders.add(Path::new("relative/dir")).unwrap_err().contains("absolute"));
        assert!(folders.add(&dir.path().join("missing")).is_err());
        let file = dir.path().join("file.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(folders.add(&file).unwrap_err().contains("not a folder"));
        for n in 0..MAX_SHARED_FOLDERS {
            let sub = dir.path().join(n.to_string());
            std::fs::create_dir(&sub).unwrap();
            assert!(folders.add(&sub).unwrap());
        }
        let one_more = dir.path().join("one-more");
        std::fs::create_dir(&one_more).unwrap();
        assert!(folders.add(&one_more).unwrap_err().contains("at most"));
        // Their parent takes their place.
        assert!(folders.add(dir.path()).unwrap());
        assert_eq!(folders.list(), [dir.path().canonicalize().unwrap()]);
    }
}
