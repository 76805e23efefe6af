//! Walking the shared folders: which files are shared, with their size and
//! modification time. Nothing is read or hashed here.
//!
//! Rules: folders are walked recursively but symbolic links to folders are
//! not followed (no loops, no escaping the shared tree); symbolic links to
//! files are shared. Names starting with `.` are hidden and skipped, as are
//! partial downloads (`.part`) and signatures (`.minisig`), which travel
//! with the file they sign rather than as files of their own: a file's
//! `FILE.minisig` is noted with it (its size and modification time), from
//! the same folder listing, so a changed signature is seen without an extra
//! look at the disk per file. Only regular files are shared: opening a FIFO
//! would block the scan.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::MAX_SHARED_FILES;

/// A file to share, as the folder walk saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    /// Its `FILE.minisig`, if there is one.
    pub(crate) signature: Option<Stamp>,
}

/// The size and modification time of a file: what tells a scan it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamp {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
}

/// The suffix of a signature beside the file it signs.
pub(crate) const SIGNATURE_SUFFIX: &str = ".minisig";

/// Every shareable file under `folders`, sorted by path (as
/// [`Found::sort_key`]) without duplicates when folders overlap, and the
/// problems met on the way as `path: what went wrong`. The folder `skip`
/// (the library's own data, which changes at every commit) is not entered.
pub(crate) fn walk(folders: &[PathBuf], skip: Option<&Path>) -> (Vec<(PathBuf, Found)>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut pending: Vec<PathBuf> = Vec::new();
    for folder in folders {
        // The shared folder itself may be hidden or reached through a link:
        // the user named it.
        match fs::canonicalize(folder) {
            Ok(folder) if folder.to_str().is_some() => pending.push(folder),
            Ok(_) => errors.push(format!("{}: path is not UTF-8, not shared", folder.display())),
            Err(e) => errors.push(format!("{}: {e}", folder.display())),
        }
    }
    'walk: while let Some(folder) = pending.pop() {
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(format!("{}: {e}", folder.display()));
                continue;
            }
        };
        // This folder's files and signatures, matched up once it is listed.
        let mut files: Vec<(PathBuf, Found)> = Vec::new();
        let mut signatures: HashMap<String, Stamp> = HashMap::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    errors.push(format!("{}: {e}", folder.display()));
                    continue;
                }
            };
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                errors.push(format!("{}: name is not UTF-8, not shared", path.display()));
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(e) => {
                    errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            if file_type.is_dir() {
                if Some(path.as_path()) != skip {
                    pending.push(path);
                }
                continue;
            }
            let signed = name.strip_suffix(SIGNATURE_SUFFIX);
            if signed.is_none() && name.ends_with(".part") {
                continue;
            }
            // Follows a link to a file; a link to a folder is left alone.
            let metadata = if file_type.is_symlink() { fs::metadata(&path) } else { entry.metadata() };
            match (metadata.and_then(|metadata| found_file(&metadata)), signed) {
                (Ok(Some(file)), Some(signed)) => {
                    signatures.insert(signed.to_owned(), Stamp { size: file.size, mtime_ns: file.mtime_ns });
                }
                (Ok(Some(_)), None) if found.len() + files.len() >= MAX_SHARED_FILES => {
                    errors.push(format!("{}: more than {MAX_SHARED_FILES} files, not shared", path.display()));
                    found.append(&mut files);
                    break 'walk;
                }
                (Ok(Some(file)), None) => files.push((path, file)),
                (Ok(None), _) => {}
                (Err(e), _) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        for (path, file) in &mut files {
            file.signature = file_name(path).and_then(|name| signatures.get(name)).copied();
        }
        found.append(&mut files);
    }
    // Any fixed order will do; byte order is several times faster than
    // `Path`'s component order, which matters on a rescan of 100,000 files.
    found.sort_unstable_by(|(a, _), (b, _)| Found::sort_key(a).cmp(Found::sort_key(b)));
    found.dedup_by(|(a, _), (b, _)| Found::sort_key(a) == Found::sort_key(b));
    (found, errors)
}

impl Found {
    /// The order of [`walk`]'s list, for binary searches in it.
    pub(crate) fn sort_key(path: &Path) -> &[u8] {
        path.as_os_str().as_encoded_bytes()
    }
}

/// How a walk would see the file at `path`, its signature included; `None`
/// when it is not a regular file (or is gone).
pub(crate) fn found(path: &Path) -> Option<Found> {
    let mut found = fs::metadata(path).ok().and_then(|metadata| found_file(&metadata).ok().flatten())?;
    found.signature = fs::metadata(signing_tool::files::minisig_path(path))
        .ok()
        .and_then(|metadata| found_file(&metadata).ok().flatten())
        .map(|sig| Stamp { size: sig.size, mtime_ns: sig.mtime_ns });
    Some(found)
}

/// The file's size and modification time, if it is a regular file.
fn found_file(metadata: &Metadata) -> std::io::Result<Option<Found>> {
    if !metadata.is_file() {
        return Ok(None);
    }
    Ok(Some(Found { size: metadata.len(), mtime_ns: nanos_since_epoch(metadata.modified()?), signature: None }))
}

fn nanos_since_epoch(time: SystemTime) -> i64 {
    let clamp = |nanos: u128| i64::try_from(nanos).unwrap_or(i64::MAX);
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => clamp(after.as_nanos()),
        Err(before) => -clamp(before.duration().as_nanos()),
    }
}

/// The name a shared file is known by: its last path component.
pub(crate) fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|name| name.to_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[(PathBuf, Found)], root: &Path) -> Vec<String> {
        found.iter().map(|(path, _)| path.strip_prefix(root).unwrap().display().to_string()).collect()
    }

    #[test]
    fn walk_skips_hidden_partial_and_signature_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::create_dir_all(root.join(".hidden")).unwrap();
        for name in [
            "a.txt",
            ".secret",
            "movie.avi.part",
            "release.tar",
            "release.tar.minisig",
            "sub/b.txt",
            "sub/deeper/c.txt",
            ".hidden/d.txt",
        ] {
            fs::write(root.join(name), name).unwrap();
        }
        let (found, errors) = walk(std::slice::from_ref(&root), None);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(names(&found, &root), ["a.txt", "release.tar", "sub/b.txt", "sub/deeper/c.txt"]);
        assert_eq!(found[0], (root.join("a.txt"), Found { size: 5, mtime_ns: found[0].1.mtime_ns, signature: None }));
        let signature = found[1].1.signature.expect("release.tar's signature is noted with it");
        assert_eq!(signature.size, "release.tar.minisig".len() as u64);
        assert!(found.iter().filter(|(path, _)| !path.ends_with("release.tar")).all(|(_, f)| f.signature.is_none()));
    }

    #[test]
    fn signature_without_its_file_is_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::write(root.join("orphan.tar.minisig"), "x").unwrap();
        fs::write(root.join(".minisig"), "x").unwrap();
        let (found, errors) = walk(std::slice::from_ref(&root), None);
        assert!(found.is_empty() && errors.is_empty(), "{found:?} {errors:?}");
    }

    #[cfg(unix)]
    #[test]
    fn walk_shares_linked_files_but_does_not_follow_linked_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/file.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&root, root.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/file.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling.txt")).unwrap();
        let (found, errors) = walk(std::slice::from_ref(&root), None);
        assert_eq!(names(&found, &root), ["link.txt", "sub/file.txt"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(&root.join("dangling.txt").display().to_string()));
    }

    #[test]
    fn skipped_folder_is_not_entered_unless_shared_itself() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("data/downloads")).unwrap();
        fs::write(root.join("data/hashes.jsonl"), "x").unwrap();
        fs::write(root.join("data/downloads/song.mp3"), "x").unwrap();
        fs::write(root.join("mine.txt"), "x").unwrap();
        let data = root.join("data");
        let (found, _) = walk(std::slice::from_ref(&root), Some(&data));
        assert_eq!(names(&found, &root), ["mine.txt"]);
        let (found, _) = walk(&[root.clone(), data.join("downloads")], Some(&data));
        assert_eq!(names(&found, &root), ["data/downloads/song.mp3", "mine.txt"]);
    }

    #[test]
    fn overlapping_and_missing_folders_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/file.txt"), "x").unwrap();
        let missing = root.join("missing");
        let (found, errors) = walk(&[root.clone(), root.join("sub"), missing.clone()], None);
        assert_eq!(names(&found, &root), ["sub/file.txt"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(&format!("{}: ", missing.display())));
    }

    #[test]
    fn times_before_the_epoch_are_negative() {
        let before = UNIX_EPOCH - std::time::Duration::from_secs(2);
        assert_eq!(nanos_since_epoch(before), -2_000_000_000);
        assert_eq!(nanos_since_epoch(UNIX_EPOCH), 0);
    }
}
