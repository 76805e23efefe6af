//! Partial downloads on disk, written so that a crash loses little.
//!
//! Each unfinished download is two files in the partial directory, named
//! after its content's URN (`<base32>`, SHA-1 when known, else SHA-256):
//!
//! - `<base32>.part`: the data, each chunk written at its own offset (a
//!   positioned write), so chunks may arrive in any order;
//! - `<base32>.state`: JSON saying what the download is (URNs, name, size),
//!   which byte ranges of the `.part` are done, and the sources known.
//!
//! The order of writes is the whole crash story: chunks' bytes are written
//! and the `.part` synced to disk *before* a new `.state` that counts them
//! done replaces the old one (temporary file, sync, rename, sync of the
//! directory: [`crate::config::write_atomically`]). Killed at any moment,
//! the servent finds a `.state` that only claims bytes that are on disk;
//! what it loses are the chunks that were in flight, and those written
//! since the last sync (the driver syncs every few chunks and every second,
//! since three syncs per chunk would cap a download at the disk's sync rate).
//!
//! [`load_all`] reads every state file at start. A state file that cannot be
//! understood is reported and renamed aside (`.state.corrupt`), never
//! deleted, and its `.part` is left where it is: losing a user's data
//! silently is worse than keeping some bytes too many. Nothing read back is
//! trusted further than the network: sizes, ranges and counts are checked
//! and bounded.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::SocketAddrV4;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use search::Urn;
use serde::{Deserialize, Serialize};

use super::plan::{MAX_FILE_SIZE, MAX_KNOWN_SOURCES};
use super::Keep;

/// The format of state files written by this version.
const STATE_VERSION: u32 = 1;
/// Largest state file read; a real one is a few kilobytes.
const MAX_STATE_FILE: u64 = 1 << 20;
/// Most unfinished downloads resumed at start; the rest are reported.
pub const MAX_RESUMED: usize = 1000;
/// Most done ranges a state file may list (runs of done chunks; a download
/// with more gaps than this is not one this servent wrote).
const MAX_DONE_RANGES: usize = 1 << 16;
/// Longest file name kept in a state file, in bytes.
const MAX_NAME_LEN: usize = 1024;
/// `errno` for "no space left on device" on Linux and the BSDs.
const ENOSPC: i32 = 28;

/// What an unfinished download is and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialDownload {
    /// Format version, for later changes.
    pub version: u32,
    /// The content's URNs; at least one SHA-1 or SHA-256.
    pub urns: Vec<Urn>,
    /// The file name it will get.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Byte ranges `[start, end)` of the `.part` that are done and synced.
    pub done: Vec<(u64, u64)>,
    /// Sources known when the state was written.
    pub sources: Vec<SocketAddrV4>,
    /// The `.minisig` text it is checked against at the end, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// What it must be to be kept.
    #[serde(default)]
    pub keep: Keep,
}

impl PartialDownload {
    /// A download with nothing done yet.
    pub fn new(urns: Vec<Urn>, name: String, size: u64, sources: Vec<SocketAddrV4>) -> PartialDownload {
        let (signature, keep) = (None, Keep::default());
        PartialDownload { version: STATE_VERSION, urns, name, size, done: Vec::new(), sources, signature, keep }
    }

    /// The URN that names its files and its requests: SHA-1 (what every
    /// Gnutella servent serves by), else SHA-256.
    pub fn key(&self) -> Option<Urn> {
        key_urn(&self.urns)
    }
}

/// The URN a download is known by: SHA-1 first, else SHA-256.
pub fn key_urn(urns: &[Urn]) -> Option<Urn> {
    let sha1 = urns.iter().find(|u| matches!(u, Urn::Sha1(_)));
    sha1.or_else(|| urns.iter().find(|u| matches!(u, Urn::Sha256(_)))).copied()
}

/// A file system operation that failed, with the path: the reason a
/// download fails when the disk does.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.action, .path, .source))]
pub struct DiskError {
    /// What was being done: "writing", "syncing", "reading", …
    pub action: &'static str,
    /// On which file.
    pub path: PathBuf,
    /// What the system said.
    pub source: io::Error,
}

impl DiskError {
    /// Wraps an error of `action` on `path`.
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> DiskError {
        DiskError { action, path: path.to_path_buf(), source }
    }
}

fn describe(action: &str, path: &Path, source: &io::Error) -> String {
    if source.raw_os_error() == Some(ENOSPC) {
        format!("no space left on device {action} {}", path.display())
    } else {
        format!("{action} {}: {source}", path.display())
    }
}

/// The partial directory: where `.part` and `.state` files live.
#[derive(Clone, Debug)]
pub struct PartialDir {
    dir: PathBuf,
}

impl PartialDir {
    /// The partial directory at `dir` (created when first written).
    pub fn new(dir: PathBuf) -> PartialDir {
        PartialDir { dir }
    }

    /// The `.part` file of the download known by `key`.
    pub fn part_path(&self, key: &Urn) -> PathBuf {
        self.dir.join(format!("{}.part", key.base32()))
    }

    /// The `.state` file of the download known by `key`.
    pub fn state_path(&self, key: &Urn) -> PathBuf {
        self.dir.join(format!("{}.state", key.base32()))
    }

    /// Opens (creating if needed) the `.part` of `key` for positioned writes.
    pub fn open_part(&self, key: &Urn) -> Result<PartFile, DiskError> {
        fs::create_dir_all(&self.dir).map_err(|e| DiskError::new("creating", &self.dir, e))?;
        let path = self.part_path(key);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| DiskError::new("opening", &path, e))?;
        Ok(PartFile { file, path })
    }

    /// Replaces the `.state` of `state` atomically.
    pub fn save(&self, state: &PartialDownload) -> Result<(), DiskError> {
        let key = state.key().ok_or_else(|| {
            DiskError::new("saving", &self.dir, io::Error::new(io::ErrorKind::InvalidInput, "download without a URN"))
        })?;
        let path = self.state_path(&key);
        let json = serde_json::to_vec_pretty(state).map_err(|e| DiskError::new("encoding", &path, e.into()))?;
        crate::config::write_atomically(&path, &json).map_err(|e| DiskError::new("writing", &path, e))
    }

    /// The saved state of `key`, if there is a readable one; a corrupt one
    /// is renamed aside and reported as an error.
    pub fn load(&self, key: &Urn) -> Result<Option<PartialDownload>, String> {
        let path = self.state_path(key);
        if !path.exists() {
            return Ok(None);
        }
        load_checked(&path).map(Some).map_err(|reason| set_aside(&path, &reason))
    }

    /// Removes both files of `key` (a finished or cancelled download).
    pub fn remove(&self, key: &Urn) -> Result<(), DiskError> {
        for path in [self.state_path(key), self.part_path(key)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(DiskError::new("removing", &path, e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The data file of one download.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
}

impl PartFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `data` at `offset`. It survives a crash of the servent at
    /// once, and a crash of the system after the next [`PartFile::sync`].
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.file.write_all_at(data, offset).map_err(|e| DiskError::new("writing", &self.path, e))
    }

    /// Syncs the data to disk.
    pub fn sync(&self) -> Result<(), DiskError> {
        self.file.sync_data().map_err(|e| DiskError::new("syncing", &self.path, e))
    }

    /// Throws every byte away (after a failed verification).
    pub fn clear(&self) -> Result<(), DiskError> {
        self.file.set_len(0).map_err(|e| DiskError::new("truncating", &self.path, e))?;
        self.sync()
    }
}

/// What [`load_all`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Unfinished downloads to resume, in file name order.
    pub downloads: Vec<PartialDownload>,
    /// Problems met, one sentence each with the path.
    pub problems: Vec<String>,
}

/// Reads every `.state` file in `dir`. A missing directory is no download.
pub fn load_all(dir: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return loaded,
        Err(e) => {
            loaded.problems.push(format!("cannot read partial downloads in {}: {e}", dir.display()));
            return loaded;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "state"))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    if paths.len() > MAX_RESUMED {
        loaded.problems.push(format!(
            "{} partial downloads in {}, resuming the first {MAX_RESUMED}",
            paths.len(),
            dir.display()
        ));
        paths.truncate(MAX_RESUMED);
    }
    for path in paths {
        match load_checked(&path) {
            Ok(download) => loaded.downloads.push(download),
            Err(reason) => loaded.problems.push(set_aside(&path, &reason)),
        }
    }
    loaded
}

/// Renames a state file that cannot be used to `….state.corrupt`, and says so.
fn set_aside(path: &Path, reason: &str) -> String {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let aside = PathBuf::from(aside);
    match fs::rename(path, &aside) {
        Ok(()) => format!("ignoring download state {}: {reason} (kept as {})", path.display(), aside.display()),
        Err(e) => format!("ignoring download state {}: {reason} (and cannot set it aside: {e})", path.display()),
    }
}

/// Reads one state file and checks everything in it against its bounds,
/// its own name and its `.part`.
fn load_checked(path: &Path) -> Result<PartialDownload, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let length = file.metadata().map_err(|e| e.to_string())?.len();
    if length > MAX_STATE_FILE {
        return Err(format!("{length} bytes is too large for a state file"));
    }
    let mut state: PartialDownload =
        serde_json::from_reader(io::BufReader::new(file)).map_err(|e| format!("not a download state: {e}"))?;
    if state.version != STATE_VERSION {
        return Err(format!("unknown state version {}", state.version));
    }
    let key = state.key().ok_or("no urn:sha1: or urn:sha256:")?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(key.base32().as_str()) {
        return Err(format!("it is the state of {key}, not of its file name"));
    }
    if state.size > MAX_FILE_SIZE {
        return Err(format!("size {} is above the {MAX_FILE_SIZE}-byte limit", state.size));
    }
    if state.name.len() > MAX_NAME_LEN {
        return Err("file name too long".into());
    }
    if state.done.len() > MAX_DONE_RANGES {
        return Err(format!("{} done ranges is too many", state.done.len()));
    }
    let mut previous_end = 0;
    for &(start, end) in &state.done {
        if start < previous_end || start >= end || end > state.size {
            return Err(format!("done range {start}..{end} is out of order or outside the file"));
        }
        previous_end = end;
    }
    state.sources.truncate(MAX_KNOWN_SOURCES);
    // Only what the .part really holds is done: a .part that is missing or
    // shorter (lost, or truncated by hand) takes the claim with it.
    let part_len = fs::metadata(path.with_extension("part")).map(|m| m.len()).unwrap_or(0);
    state.done.retain(|&(_, end)| end <= part_len);
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";

    fn sample() -> PartialDownload {
        let mut state = PartialDownload::new(
            vec![SHA1.parse().unwrap(), Urn::Sha256([9; 32])],
            "SEBLINUX.img".into(),
            3000,
            vec!["10.0.0.1:6346".parse().unwrap()],
        );
        state.done = vec![(0, 1000), (2000, 3000)];
        state
    }

    fn key() -> Urn {
        SHA1.parse().unwrap()
    }

    #[test]
    fn key_is_sha1_when_known_else_sha256() {
        assert_eq!(sample().key(), Some(key()));
        assert_eq!(key_urn(&[Urn::Sha256([1; 32])]), Some(Urn::Sha256([1; 32])));
        assert_eq!(key_urn(&[]), None);
    }

    #[test]
    fn saved_state_loads_back_with_its_part() {
        let dir = tempfile::tempdir().unwrap();
        let partial = PartialDir::new(dir.path().join("partial"));
        let part = partial.open_part(&key()).unwrap();
        part.write(2000, &[7; 1000]).unwrap();
        partial.save(&sample()).unwrap();
        assert_eq!(partial.load(&key()).unwrap(), Some(sample()));
        let loaded = load_all(&dir.path().join("partial"));
        assert_eq!(loaded.downloads, vec![sample()]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(fs::read(partial.part_path(&key())).unwrap()[2000..], [7; 1000]);
    }

    #[test]
    fn done_ranges_beyond_the_part_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let partial = PartialDir::new(dir.path().to_path_buf());
        partial.open_part(&key()).unwrap().write(0, &[1; 1500]).unwrap();
        partial.save(&sample()).unwrap();
        assert_eq!(load_all(dir.path()).downloads[0].done, vec![(0, 1000)]);
    }

    #[test]
    fn missing_directory_is_no_download() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_all(&dir.path().join("nothing"));
        assert!(loaded.downloads.is_empty() && loaded.problems.is_empty());
    }

    #[test]
    fn corrupt_states_are_reported_and_set_aside_with_their_data_kept() {
        let dir = tempfile::tempdir().unwrap();
        let partial = PartialDir::new(dir.path().to_path_buf());
        partial.open_part(&key()).unwrap().write(0, b"precious").unwrap();
        let bad_states: Vec<(String, Vec<u8>)> = vec![
            ("garbage".into(), b"\x00\xff not json".to_vec()),
            ("truncated".into(), br#"{"version":1,"urns":["#.to_vec()),
            ("wrong_version".into(), serde_json::to_vec(&PartialDownload { version: 9, ..sample() }).unwrap()),
            ("no_urn".into(), serde_json::to_vec(&PartialDownload { urns: vec![], ..sample() }).unwrap()),
            ("huge".into(), serde_json::to_vec(&PartialDownload { size: MAX_FILE_SIZE + 1, ..sample() }).unwrap()),
            ("ranges".into(), serde_json::to_vec(&PartialDownload { done: vec![(5, 3)], ..sample() }).unwrap()),
            ("outside".into(), serde_json::to_vec(&PartialDownload { done: vec![(0, 4000)], ..sample() }).unwrap()),
            (
                "overlap".into(),
                serde_json::to_vec(&PartialDownload { done: vec![(0, 10), (5, 20)], ..sample() }).unwrap(),
            ),
        ];
        for (name, contents) in &bad_states {
            fs::write(dir.path().join(format!("{name}.state")), contents).unwrap();
        }
        // A well-formed state under another content's name is not this one.
        fs::write(dir.path().join("AAAA.state"), serde_json::to_vec(&sample()).unwrap()).unwrap();
        let loaded = load_all(dir.path());
        assert!(loaded.downloads.is_empty());
        assert_eq!(loaded.problems.len(), bad_states.len() + 1, "{:#?}", loaded.problems);
        for (name, _) in &bad_states {
            assert!(dir.path().join(format!("{name}.state.corrupt")).exists(), "{name} set aside");
            assert!(!dir.path().join(format!("{name}.state")).exists());
        }
        assert!(loaded.problems.iter().all(|p| p.contains("ignoring download state")));
        assert_eq!(fs::read(partial.part_path(&key())).unwrap(), b"precious");
        assert!(load_all(dir.path()).problems.is_empty(), "set aside once, not reported again");
    }

    #[test]
    fn oversized_state_file_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.state", key().base32()));
        File::create(&path).unwrap().set_len(MAX_STATE_FILE + 1).unwrap();
        let loaded = load_all(dir.path());
        assert!(loaded.problems[0].contains("too large"), "{:?}", loaded.problems);
    }

    #[test]
    fn remove_deletes_both_files_and_tolerates_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let partial = PartialDir::new(dir.path().to_path_buf());
        partial.open_part(&key()).unwrap();
        partial.save(&sample()).unwrap();
        partial.remove(&key()).unwrap();
        partial.remove(&key()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn disk_full_reads_as_such() {
        let full = DiskError::new("writing", Path::new("/d/x.part"), io::Error::from_raw_os_error(ENOSPC));
        assert_eq!(full.to_string(), "no space left on device writing /d/x.part");
        let other = DiskError::new("opening", Path::new("/d/x.part"), io::ErrorKind::PermissionDenied.into());
        assert_eq!(other.to_string(), "opening /d/x.part: permission denied");
    }
}
