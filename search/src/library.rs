//! [`Library`]: the catalog, its hash cache and its index, kept in step by
//! rescans.
//!
//! A rescan walks the folders, compares what it sees with the catalog by
//! path, size and modification time, hashes only new and changed files, and
//! applies the changes in batches: catalog first, then the hash cache on
//! disk, then a Tantivy commit. An unchanged rescan touches neither the cache
//! nor the index. The index writer exists only during a batch.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::catalog::{Catalog, Change, Entry};
use crate::index::{IndexUpdate, NameIndex};
use crate::scan::{self, Found};
use signing_tool::files::minisig_path;

use crate::{hash_reader, Digests, Error, Query, ScanReport, SharedFile, Sidecar, Signed, Urn};

/// The hash cache, in the data folder.
const CACHE_FILE: &str = "hashes.jsonl";
/// The Tantivy index, in the data folder.
const INDEX_FOLDER: &str = "index";
/// How long a large scan hashes before committing what it has, so that the
/// first files become searchable while the rest are hashed.
const COMMIT_EVERY: Duration = Duration::from_secs(2);

/// The user's shared files: what they are, and which match a query.
///
/// Shared between threads by `Arc`: searches run while a rescan hashes;
/// rescans run one at a time.
pub struct Library {
    catalog: RwLock<Catalog>,
    index: NameIndex,
    /// Where the hash cache is saved; `None` for a library in memory.
    cache_file: Option<PathBuf>,
    /// The data folder, never shared even when inside a shared folder: its
    /// files change at every commit, which would make every scan a change.
    data_dir: Option<PathBuf>,
    /// Held for a whole rescan, so that two never interleave.
    scanning: Mutex<ScanState>,
}

#[derive(Default)]
struct ScanState {
    /// Problems met outside a scan (an unreadable cache), for the next report.
    notes: Vec<String>,
    /// A batch failed half-way: the index or the cache may lag the catalog.
    out_of_step: bool,
}

/// A file to hash: new, or changed with its old number.
struct ToHash {
    path: PathBuf,
    found: Found,
    known_as: Option<u32>,
    /// Its URNs and size when only its signature changed: no need to hash.
    digests: Option<(Urn, Urn, thex::Root, u64)>,
}

impl Library {
    /// Opens the library kept in `data_dir`: the hash cache
    /// `data_dir/hashes.jsonl` and the index `data_dir/index`, which is
    /// rebuilt from the cache if it is missing, damaged, of an older schema
    /// or out of step with the cache.
    pub fn open(data_dir: &Path) -> Result<Library, Error> {
        fs::create_dir_all(data_dir).map_err(Error::io("create", data_dir))?;
        let cache_file = data_dir.join(CACHE_FILE);
        let (catalog, note) = Catalog::load(&cache_file)?;
        let files = catalog.entries().map(|entry| &entry.file);
        let index = NameIndex::open_in_dir(&data_dir.join(INDEX_FOLDER), catalog.generation(), files)?;
        Ok(Library {
            catalog: RwLock::new(catalog),
            index,
            cache_file: Some(cache_file),
            // Canonical, as the paths the walk meets are.
            data_dir: fs::canonicalize(data_dir).ok(),
            scanning: Mutex::new(ScanState { notes: note.into_iter().collect(), out_of_step: false }),
        })
    }

    /// An empty library held in memory only, forgotten when dropped.
    pub fn in_memory() -> Result<Library, Error> {
        Ok(Library {
            catalog: RwLock::default(),
            index: NameIndex::in_memory()?,
            cache_file: None,
            data_dir: None,
            scanning: Mutex::default(),
        })
    }

    /// Brings the library in line with the files now under `folders`:
    /// hashes new and changed files, forgets removed ones. Problems with
    /// single files are lines of the report, not failures of the scan.
    pub fn rescan(&self, folders: &[PathBuf]) -> Result<ScanReport, Error> {
        let mut state = self.scanning.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = ScanReport { errors: std::mem::take(&mut state.notes), ..ScanReport::default() };
        if state.out_of_step {
            self.resync()?;
            state.out_of_step = false;
        }
        let (found, walk_errors) = scan::walk(folders, self.data_dir.as_deref());
        report.errors.extend(walk_errors);

        let (to_hash, removed) = {
            let catalog = self.read_catalog();
            let removed: Vec<u32> = catalog
                .entries()
                .filter(|entry| {
                    let key = Found::sort_key(&entry.file.path);
                    found.binary_search_by(|(path, _)| Found::sort_key(path).cmp(key)).is_err()
                })
                .map(|entry| entry.file.index)
                .collect();
            let mut to_hash = Vec::new();
            for (path, found) in found {
                let known = catalog.by_path(&path);
                let same_bytes = known.filter(|e| e.file.size == found.size && e.mtime_ns == found.mtime_ns);
                match same_bytes {
                    Some(entry) if entry.signature_stamp == found.signature => report.unchanged += 1,
                    _ => to_hash.push(ToHash {
                        path,
                        found,
                        known_as: known.map(|entry| entry.file.index),
                        digests: same_bytes
                            .map(|entry| (entry.file.sha1, entry.file.sha256, entry.file.tth, entry.file.size)),
                    }),
                }
            }
            (to_hash, removed)
        };
        if to_hash.is_empty() && removed.is_empty() {
            return Ok(report);
        }
        let result = self.update(to_hash, removed, &mut report);
        state.out_of_step = result.is_err();
        result.map(|()| report)
    }

    /// Shares the file at `path` whose digests are already known (a download
    /// that was just verified), without reading it again; its signature
    /// beside it is read. The file must lie in a folder the rescans share,
    /// or the next rescan forgets it. A file that is not as described (its
    /// size differs) is left to the next rescan, which hashes it.
    pub fn add_hashed(&self, path: &Path, digests: Digests, size: u64) -> Result<ScanReport, Error> {
        let mut state = self.scanning.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = ScanReport { errors: std::mem::take(&mut state.notes), ..ScanReport::default() };
        let path = fs::canonicalize(path).map_err(Error::io("find", path))?;
        let Some(found) = scan::found(&path) else { return Ok(report) };
        if found.size != size {
            return Ok(report);
        }
        let known_as = self.read_catalog().by_path(&path).map(|entry| entry.file.index);
        let digests = Some((digests.sha1_urn(), digests.sha256_urn(), digests.tth, size));
        let result = self.update(vec![ToHash { path, found, known_as, digests }], Vec::new(), &mut report);
        state.out_of_step = result.is_err();
        result.map(|()| report)
    }

    /// Hashes `to_hash`, forgets `removed`, and commits progressively.
    fn update(&self, to_hash: Vec<ToHash>, removed: Vec<u32>, report: &mut ScanReport) -> Result<(), Error> {
        report.removed = removed.len();
        let mut changes: Vec<Change> = removed.into_iter().map(Change::Removed).collect();
        // Created at the first commit: a scan whose every file fails to hash needs none.
        let mut writer = None;
        let mut last_commit = Instant::now();
        for file in to_hash {
            match self.hash(file) {
                Ok((entry, known_as)) => {
                    if let Some(problem) = signature_problem(&entry.file) {
                        report.errors.push(format!("{}: {problem}", entry.file.path.display()));
                    }
                    if let Some(index) = known_as {
                        report.changed += 1;
                        changes.push(Change::Removed(index));
                    } else {
                        report.added += 1;
                    }
                    changes.push(Change::Hashed(Box::new(entry)));
                }
                Err(line) => report.errors.push(line),
            }
            if last_commit.elapsed() >= COMMIT_EVERY {
                self.commit(&mut writer, &mut changes)?;
                last_commit = Instant::now();
            }
        }
        self.commit(&mut writer, &mut changes)?;
        writer.map_or(Ok(()), IndexUpdate::finish)
    }

    /// Hashes one file (unless only its signature changed) and reads its
    /// signature; an error is a report line.
    fn hash(&self, file: ToHash) -> Result<(Entry, Option<u32>), String> {
        let ToHash { path, found, known_as, digests } = file;
        let failed = |why: &dyn std::fmt::Display| format!("{}: {why}", path.display());
        let (sha1, sha256, tth, size) = match digests {
            Some(known) => known,
            None => {
                let (digests, size) = File::open(&path).and_then(hash_reader).map_err(|e| failed(&e))?;
                (digests.sha1_urn(), digests.sha256_urn(), digests.tth, size)
            }
        };
        let name = scan::file_name(&path).ok_or_else(|| failed(&"no file name"))?.to_owned();
        let signature = found.signature.map(|_| Sidecar::read(&minisig_path(&path)));
        let index = match known_as {
            Some(index) => index,
            None => self.write_catalog().reserve_index().ok_or_else(|| failed(&"no file numbers left"))?,
        };
        let file = SharedFile {
            index,
            name,
            path,
            // What was hashed; if the file grew meanwhile, its new size or
            // time makes the next scan hash it again.
            size,
            sha1,
            sha256,
            tth,
            signature,
        };
        Ok((Entry { file, mtime_ns: found.mtime_ns, signature_stamp: found.signature }, known_as))
    }

    /// Applies `changes` to the cache file, the index, and then the catalog
    /// everyone reads: a crash in between leaves the index behind the cache,
    /// and the next open rebuilds it; and a file is listed (`files`,
    /// `by_urn`) only once a search can find it too.
    fn commit<'a>(&'a self, writer: &mut Option<IndexUpdate<'a>>, changes: &mut Vec<Change>) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let update = match writer {
            Some(update) => update,
            None => writer.insert(self.index.update()?),
        };
        // Only the scan changes the catalog, so this copy stays current.
        let mut next = self.read_catalog().clone();
        next.apply(changes);
        if let Some(cache_file) = &self.cache_file {
            next.save(cache_file)?;
        }
        for change in changes.drain(..) {
            match change {
                Change::Hashed(entry) => update.add(&entry.file)?,
                Change::Removed(index) => update.remove(index),
            }
        }
        update.commit(next.generation())?;
        *self.write_catalog() = next;
        Ok(())
    }

    /// After a failed batch: saves the catalog and rebuilds the index from it.
    fn resync(&self) -> Result<(), Error> {
        let catalog = self.read_catalog();
        if let Some(cache_file) = &self.cache_file {
            catalog.save(cache_file)?;
        }
        let files = catalog.entries().map(|entry| &entry.file);
        self.index.rebuild(files, catalog.generation())
    }

    /// The files matching `query`, best first, then by name.
    pub fn search(&self, query: &Query) -> Result<Vec<SharedFile>, Error> {
        let hits = self.index.search(query)?;
        let catalog = self.read_catalog();
        // A file removed since the last commit may still be in the index: skip it.
        let mut results: Vec<(f32, &SharedFile)> = hits
            .into_iter()
            .filter_map(|(score, index)| catalog.get(index).map(|entry| (score, &entry.file)))
            .collect();
        results.sort_by(|(score_a, a), (score_b, b)| {
            score_b.total_cmp(score_a).then_with(|| a.name.cmp(&b.name)).then(a.index.cmp(&b.index))
        });
        Ok(results.into_iter().map(|(_, file)| file.clone()).collect())
    }

    /// Everything shared, sorted by name.
    pub fn files(&self) -> Vec<SharedFile> {
        let mut files: Vec<SharedFile> = self.read_catalog().entries().map(|entry| entry.file.clone()).collect();
        files.sort_by(|a, b| a.name.cmp(&b.name).then(a.index.cmp(&b.index)));
        files
    }

    /// The file shared under number `index`.
    pub fn by_index(&self, index: u32) -> Option<SharedFile> {
        self.read_catalog().get(index).map(|entry| entry.file.clone())
    }

    /// A file with this content, if any is shared.
    pub fn by_urn(&self, urn: &Urn) -> Option<SharedFile> {
        let query = Query { urns: vec![*urn], limit: 1, ..Query::default() };
        self.search(&query).ok()?.into_iter().next()
    }

    /// How many files are shared, and how many bytes they make.
    pub fn totals(&self) -> (u32, u64) {
        self.read_catalog().totals()
    }

    #[cfg(test)]
    fn index_opstamp(&self) -> u64 {
        self.index.opstamp()
    }

    fn read_catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_catalog(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What is wrong with a file's signature that can be seen without keys:
/// unreadable, or signing other content (another SHA-256 or size).
fn signature_problem(file: &SharedFile) -> Option<String> {
    match file.signature.as_ref()? {
        Sidecar::Unreadable(why) => Some(format!("its signature cannot be read: {why}")),
        Sidecar::Signed(Signed { release: Some(release), .. }) => {
            if release.size != file.size {
                Some(format!("does not match its signature: {} bytes signed, {} shared", release.size, file.size))
            } else if Urn::Sha256(release.sha256) != file.sha256 {
                Some(format!("does not match its signature: other content signed ({})", Urn::Sha256(release.sha256)))
            } else {
                None
            }
        }
        Sidecar::Signed(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn share(folder: &Path, name: &str, content: &str) -> PathBuf {
        let path = folder.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn names(library: &Library, words: &str) -> Vec<String> {
        let query = Query { words: words.into(), limit: 100, ..Query::default() };
        library.search(&query).unwrap().into_iter().map(|file| file.name).collect()
    }

    fn scanned(library: &Library, folder: &Path) -> ScanReport {
        let report = library.rescan(&[folder.to_owned()]).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report
    }

    fn set_mtime(path: &Path, time: SystemTime) {
        File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
    }

    fn library_with(names: &[&str]) -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            share(dir.path(), name, name);
        }
        let library = Library::in_memory().unwrap();
        scanned(&library, dir.path());
        (dir, library)
    }

    #[test]
    fn library_is_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Library>();
    }

    #[test]
    fn multi_word_query_needs_every_word() {
        let (_dir, library) = library_with(&["SEBLINUX-base-1.0.tar", "SEBLINUX-extra-1.0.tar", "base-notes.txt"]);
        assert_eq!(names(&library, "seblinux base"), ["SEBLINUX-base-1.0.tar"]);
        assert_eq!(names(&library, "base seblinux tar"), ["SEBLINUX-base-1.0.tar"]);
        assert_eq!(names(&library, "seblinux").len(), 2);
        assert_eq!(names(&library, "1.0 base"), ["SEBLINUX-base-1.0.tar"]);
    }

    #[test]
    fn case_accents_and_punctuation_do_not_matter() {
        let (_dir, library) = library_with(&["Été à Paris.mp3", "report_FINAL(v2).PDF"]);
        assert_eq!(names(&library, "ete"), ["Été à Paris.mp3"]);
        assert_eq!(names(&library, "ÉTÉ paris"), ["Été à Paris.mp3"]);
        assert_eq!(names(&library, "Final, V2!"), ["report_FINAL(v2).PDF"]);
        assert_eq!(names(&library, "pdf REPORT"), ["report_FINAL(v2).PDF"]);
    }

    #[test]
    fn word_that_no_file_has_finds_nothing() {
        let (_dir, library) = library_with(&["SEBLINUX-base-1.0.tar"]);
        assert!(names(&library, "seblinux windows").is_empty());
        assert!(names(&library, "seblin").is_empty());
    }

    #[test]
    fn query_without_words_or_urns_finds_nothing() {
        let (_dir, library) = library_with(&["a.txt"]);
        assert!(names(&library, "\\").is_empty());
        assert!(names(&library, "").is_empty());
        assert!(names(&library, " .-. ").is_empty());
    }

    #[test]
    fn limit_caps_the_results_in_name_order_among_equal_scores() {
        let (_dir, library) = library_with(&["song c.mp3", "song a.mp3", "song b.mp3"]);
        let query = |limit| Query { words: "song".into(), limit, ..Query::default() };
        assert_eq!(library.search(&query(3)).unwrap().len(), 3);
        let names: Vec<String> = library.search(&query(3)).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["song a.mp3", "song b.mp3", "song c.mp3"]);
        assert_eq!(library.search(&query(2)).unwrap().len(), 2);
        assert!(library.search(&query(0)).unwrap().is_empty());
    }

    #[test]
    fn urns_find_files_by_sha1_or_sha256_and_win_over_words() {
        let (_dir, library) = library_with(&["abc", "other.txt"]);
        let abc = crate::hash_reader(&b"abc"[..]).unwrap().0;
        let by_sha1 = library.by_urn(&abc.sha1_urn()).unwrap();
        assert_eq!(by_sha1.name, "abc");
        assert_eq!(by_sha1.sha256, abc.sha256_urn());
        assert_eq!(library.by_urn(&abc.sha256_urn()), Some(by_sha1.clone()));
        assert_eq!(library.by_urn(&Urn::Sha256([0; 32])), None);

        // Requeries carry "\" as words: the URNs decide, and any of them may match.
        let query = Query { words: "other".into(), urns: vec![Urn::Sha1([9; 20]), abc.sha1_urn()], limit: 10 };
        assert_eq!(library.search(&query).unwrap(), [by_sha1]);
    }

    #[test]
    fn rescan_sees_new_changed_and_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::in_memory().unwrap();
        let kept = share(dir.path(), "kept.txt", "kept");
        let changing = share(dir.path(), "changing.txt", "before");
        let leaving = share(dir.path(), "sub/leaving.txt", "leaving");
        let report = scanned(&library, dir.path());
        assert_eq!((report.added, report.changed, report.removed, report.unchanged), (3, 0, 0, 0));
        assert_eq!(library.totals(), (3, 4 + 6 + 7));
        let old = library.by_urn(&crate::hash_reader(&b"before"[..]).unwrap().0.sha1_urn()).unwrap();

        fs::write(&changing, "after, longer").unwrap();
        fs::remove_file(&leaving).unwrap();
        share(dir.path(), "new.txt", "new");
        let report = scanned(&library, dir.path());
        assert_eq!((report.added, report.changed, report.removed, report.unchanged), (1, 1, 1, 1));

        assert_eq!(names(&library, "leaving"), Vec::<String>::new());
        assert_eq!(names(&library, "new"), ["new.txt"]);
        let new = library.by_index(old.index).unwrap();
        assert_eq!((new.path.as_path(), new.size), (fs::canonicalize(&changing).unwrap().as_path(), 13));
        assert_ne!(new.sha256, old.sha256);
        assert_eq!(library.by_urn(&old.sha1), None);
        let files: Vec<String> = library.files().into_iter().map(|file| file.name).collect();
        assert_eq!(files, ["changing.txt", "kept.txt", "new.txt"]);
        assert_eq!(library.totals(), (3, 4 + 13 + 3));
        assert!(kept.exists());
    }

    #[test]
    fn unchanged_rescan_commits_nothing() {
        let (dir, library) = library_with(&["a.txt", "b.txt"]);
        let opstamp = library.index_opstamp();
        let report = scanned(&library, dir.path());
        assert_eq!((report.added, report.changed, report.removed, report.unchanged), (0, 0, 0, 2));
        assert_eq!(library.index_opstamp(), opstamp);
    }

    #[test]
    fn hidden_partial_and_signature_files_are_not_shared() {
        let (_dir, library) = library_with(&[
            "release.tar",
            "orphan.tar.minisig",
            ".hidden.tar",
            "download.tar.part",
            ".cache/inside.tar",
        ]);
        let files: Vec<String> = library.files().into_iter().map(|file| file.name).collect();
        assert_eq!(files, ["release.tar"]);
    }

    fn sign(path: &Path, name: &str, keywords: &[&str]) {
        let key = signing_tool::SecretKey::generate().unwrap();
        let mut signer = signing_tool::Signer::new();
        signer.update(&fs::read(path).unwrap());
        let meta = signing_tool::ReleaseMeta {
            name: name.into(),
            version: "1.1".into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        let minisig = signer.finish(&key, "x", Some(&meta), 1_700_000_000).unwrap();
        fs::write(minisig_path(path), minisig.to_text()).unwrap();
    }

    #[test]
    fn signed_release_metadata_is_searchable_and_a_new_signature_is_read_without_rehashing() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::in_memory().unwrap();
        let path = share(dir.path(), "base.tar", "base system");
        sign(&path, "SEBLINUX-base", &["SEBLINUX", "distribution"]);
        scanned(&library, dir.path());
        assert_eq!(names(&library, "seblinux"), ["base.tar"]);
        assert_eq!(names(&library, "distribution base 1.1"), ["base.tar"]);
        let file = library.files().remove(0);
        let Some(Sidecar::Signed(signed)) = &file.signature else { panic!("{:?}", file.signature) };
        assert_eq!(signed.release.as_ref().unwrap().name, "SEBLINUX-base");

        // Only the signature changes: read again, the file keeps its number and hashes.
        sign(&path, "SEBLINUX-extra", &["other"]);
        let report = scanned(&library, dir.path());
        assert_eq!((report.changed, report.unchanged), (1, 0));
        assert_eq!(names(&library, "other"), ["base.tar"]);
        assert!(names(&library, "distribution").is_empty());
        let again = library.files().remove(0);
        assert_eq!((again.index, again.sha256), (file.index, file.sha256));

        fs::write(dir.path().join("base.tar.minisig"), "garbage").unwrap();
        let report = library.rescan(&[dir.path().to_owned()]).unwrap();
        assert!(report.errors[0].contains("base.tar: its signature cannot be read"), "{:?}", report.errors);
        assert!(matches!(library.files()[0].signature, Some(Sidecar::Unreadable(_))));

        // A genuine signature copied beside other bytes.
        let other = share(dir.path(), "fake.tar", "other bytes!");
        sign(&path, "SEBLINUX-base", &[]);
        fs::copy(dir.path().join("base.tar.minisig"), dir.path().join("fake.tar.minisig")).unwrap();
        let report = library.rescan(&[dir.path().to_owned()]).unwrap();
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(report.errors[0]
            .starts_with(&format!("{}: does not match its signature", fs::canonicalize(&other).unwrap().display())));
        fs::remove_file(&other).unwrap();
        fs::remove_file(dir.path().join("base.tar.minisig")).unwrap();
        scanned(&library, dir.path());
        assert_eq!(library.files()[0].signature, None);
        assert_eq!(scanned(&library, dir.path()).unchanged, 1);
    }

    #[test]
    fn a_file_added_with_its_digests_is_shared_and_not_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::in_memory().unwrap();
        let path = share(dir.path(), "SEBLINUX-base-1.0.tar", "verified bytes");
        sign(&path, "SEBLINUX-base", &["SEBLINUX"]);
        let (digests, size) = crate::hash_reader(&b"verified bytes"[..]).unwrap();
        let report = library.add_hashed(&path, digests, size).unwrap();
        assert_eq!(report.added, 1);
        assert_eq!(names(&library, "seblinux base"), ["SEBLINUX-base-1.0.tar"]);
        assert!(matches!(library.files()[0].signature, Some(Sidecar::Signed(_))));
        assert_eq!(scanned(&library, dir.path()).unchanged, 1);

        // Digests given for bytes that are not there: the file is left to the rescan.
        let other = share(dir.path(), "other.tar", "other");
        assert_eq!(library.add_hashed(&other, digests, size).unwrap().added, 0);
        assert_eq!(scanned(&library, dir.path()).added, 1);
        assert_eq!(library.by_urn(&digests.sha256_urn()).unwrap().name, "SEBLINUX-base-1.0.tar");
    }

    #[test]
    fn data_folder_inside_a_shared_folder_is_not_shared() {
        let shared = tempfile::tempdir().unwrap();
        share(shared.path(), "mine.txt", "mine");
        let library = Library::open(&shared.path().join("data")).unwrap();
        scanned(&library, shared.path());
        let files: Vec<String> = library.files().into_iter().map(|file| file.name).collect();
        assert_eq!(files, ["mine.txt"]);
        assert_eq!(scanned(&library, shared.path()).unchanged, 1);
    }

    #[test]
    fn file_that_vanishes_before_hashing_is_a_report_line() {
        let library = Library::in_memory().unwrap();
        let path = PathBuf::from("/nonexistent/gone.txt");
        let found = Found { size: 1, mtime_ns: 0, signature: None };
        let line = library.hash(ToHash { path, found, known_as: None, digests: None }).unwrap_err();
        assert!(line.starts_with("/nonexistent/gone.txt: "), "{line}");
    }

    #[test]
    fn missing_folder_is_a_report_line_and_the_rest_is_scanned() {
        let dir = tempfile::tempdir().unwrap();
        share(dir.path(), "here.txt", "here");
        let library = Library::in_memory().unwrap();
        let missing = dir.path().join("missing");
        let report = library.rescan(&[missing.clone(), dir.path().to_owned()]).unwrap();
        assert_eq!(report.added, 1);
        assert_eq!(report.errors.len(), 1);
        assert!(report.errors[0].starts_with(&missing.display().to_string()));
    }

    #[test]
    fn restart_keeps_hashes_of_files_with_the_same_size_and_time() {
        let data = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        let path = share(shared.path(), "doc.txt", "first");
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        set_mtime(&path, mtime);
        let before = {
            let library = Library::open(data.path()).unwrap();
            scanned(&library, shared.path());
            library.files().remove(0)
        };

        // Same size and time, other bytes: only a rehash could notice.
        fs::write(&path, "other").unwrap();
        set_mtime(&path, mtime);
        let library = Library::open(data.path()).unwrap();
        assert_eq!(library.files(), std::slice::from_ref(&before), "known before any scan");
        let report = scanned(&library, shared.path());
        assert_eq!((report.added, report.changed, report.unchanged), (0, 0, 1));
        assert_eq!(library.files(), [before]);
    }

    #[test]
    fn index_numbers_survive_a_restart_and_are_never_reused() {
        let data = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        for name in ["a.txt", "b.txt", "c.txt"] {
            share(shared.path(), name, name);
        }
        let numbers = |library: &Library| -> Vec<(String, u32)> {
            library.files().into_iter().map(|file| (file.name, file.index)).collect()
        };
        let first = {
            let library = Library::open(data.path()).unwrap();
            scanned(&library, shared.path());
            numbers(&library)
        };
        let library = Library::open(data.path()).unwrap();
        scanned(&library, shared.path());
        assert_eq!(numbers(&library), first);

        fs::remove_file(shared.path().join("c.txt")).unwrap();
        share(shared.path(), "d.txt", "d.txt");
        scanned(&library, shared.path());
        drop(library);
        let library = Library::open(data.path()).unwrap();
        let now = numbers(&library);
        assert_eq!(now[..2], first[..2]);
        let (_, d) = &now[2];
        assert!(first.iter().all(|(_, number)| number != d), "{first:?} {now:?}");
        assert_eq!(names(&library, "d"), ["d.txt"]);
    }

    #[test]
    fn index_of_an_older_schema_is_rebuilt_from_the_cache() {
        let data = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        share(shared.path(), "SEBLINUX-base-1.0.tar", "x");
        scanned(&Library::open(data.path()).unwrap(), shared.path());

        // Mark the index as written by schema 0 (empty it too, so a search
        // can only succeed if it was rebuilt).
        let old = tantivy::Index::open_in_dir(data.path().join(INDEX_FOLDER)).unwrap();
        let mut writer: tantivy::IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.delete_all_documents().unwrap();
        let mut commit = writer.prepare_commit().unwrap();
        commit.set_payload("search schema 0 generation 1");
        commit.commit().unwrap();
        drop(writer);

        let library = Library::open(data.path()).unwrap();
        assert_eq!(names(&library, "seblinux"), ["SEBLINUX-base-1.0.tar"]);
        assert_eq!(scanned(&library, shared.path()).unchanged, 1);
    }

    #[test]
    fn missing_or_damaged_index_is_rebuilt_from_the_cache() {
        let data = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        share(shared.path(), "song.mp3", "x");
        scanned(&Library::open(data.path()).unwrap(), shared.path());

        fs::remove_dir_all(data.path().join(INDEX_FOLDER)).unwrap();
        assert_eq!(names(&Library::open(data.path()).unwrap(), "song"), ["song.mp3"]);

        fs::write(data.path().join(INDEX_FOLDER).join("meta.json"), "{broken").unwrap();
        assert_eq!(names(&Library::open(data.path()).unwrap(), "song"), ["song.mp3"]);

        // Its segments damaged behind an intact meta.json.
        for entry in fs::read_dir(data.path().join(INDEX_FOLDER)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e != "json") && !path.ends_with(".tantivy-meta.lock") {
                let len = fs::metadata(&path).unwrap().len();
                fs::write(&path, vec![0xA5; len as usize]).unwrap();
            }
        }
        assert_eq!(names(&Library::open(data.path()).unwrap(), "song"), ["song.mp3"]);
    }

    #[test]
    fn index_missing_files_of_the_catalog_is_rebuilt() {
        let data = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        share(shared.path(), "song.mp3", "x");
        share(shared.path(), "tune.mp3", "y");
        scanned(&Library::open(data.path()).unwrap(), shared.path());
        // What another writer leaves: the same payload, fewer documents.
        let index = tantivy::Index::open_in_dir(data.path().join(INDEX_FOLDER)).unwrap();
        let payload = index.load_metas().unwrap().payload;
        let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        writer.delete_all_documents().unwrap();
        let mut commit = writer.prepare_commit().unwrap();
        commit.set_payload(&payload.unwrap());
        commit.commit().unwrap();
        drop(writer);

        let library = Library::open(data.path()).unwrap();
        assert_eq!(names(&library, "song"), ["song.mp3"]);
        assert_eq!(names(&library, "tune"), ["tune.mp3"]);
    }

    #[test]
    fn corrupt_cache_is_reported_and_files_are_hashed_again() {
        let data = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        share(shared.path(), "song.mp3", "x");
        scanned(&Library::open(data.path()).unwrap(), shared.path());
        fs::write(data.path().join(CACHE_FILE), "garbage").unwrap();

        let library = Library::open(data.path()).unwrap();
        let report = library.rescan(&[shared.path().to_owned()]).unwrap();
        assert_eq!(report.added, 1);
        assert_eq!(report.errors.len(), 1);
        assert!(report.errors[0].contains(CACHE_FILE), "{:?}", report.errors);
        assert_eq!(names(&library, "song"), ["song.mp3"]);
        assert!(scanned(&library, shared.path()).errors.is_empty());
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = share(dir.path(), "not-a-folder", "x");
        let message = Library::open(&file.join("data")).err().unwrap().to_string();
        assert!(message.starts_with(&format!("failed to create {}", file.join("data").display())), "{message}");
    }
}
