//! One servent per data directory: an OS file lock on `<data-dir>/lock`.
//!
//! Two servents on the same data directory would write the same index,
//! hash cache and partial downloads and break each other silently. `servent
//! run` takes an exclusive lock (`flock` on Unix) on the file `lock` in
//! its data directory for as long as it runs, and writes its process ID
//! there; a second one fails at start with one line naming the process that
//! holds it. The OS drops the lock when the process ends, however it ends,
//! so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "lock";
/// Bytes of the lock file read to name its holder.
const MAX_LOCK_FILE: u64 = 64;

/// The data directory, held while this value lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `dir` (creating it if needed) for this process, or says which
    /// process holds it, in one sentence.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file).map_or_else(|| "another process".into(), |pid| format!("process {pid}"));
                return Err(format!(
                    "the data directory {} is in use by {holder} (another servent holds {})",
                    dir.display(),
                    path.display()
                ));
            }
            Err(TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all());
        written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The process ID the holder wrote, if it reads as one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(MAX_LOCK_FILE).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_the_first_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        assert_eq!(std::fs::read_to_string(first.path()).unwrap(), format!("{}\n", std::process::id()));
        // flock locks belong to an open file: a second open in the same
        // process is refused like another process would be.
        let refused = DataDirLock::acquire(&data).unwrap_err();
        assert_eq!(
            refused,
            format!(
                "the data directory {} is in use by process {} (another servent holds {})",
                data.display(),
                std::process::id(),
                data.join(LOCK_FILE).display()
            )
        );
        drop(first);
        DataDirLock::acquire(&data).unwrap();
    }

    #[test]
    fn a_lock_file_of_garbage_still_locks_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), vec![b'x'; 10_000]).unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(lock.path()).unwrap(), format!("{}\n", std::process::id()));
        let refused = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(refused.contains(&format!("in use by process {}", std::process::id())), "{refused}");
    }
}
