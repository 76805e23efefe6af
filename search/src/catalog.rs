//! The catalog: every shared file with its index number, size, modification
//! time and hashes, and the hash cache that keeps it on disk.
//!
//! The catalog is the library's truth; the Tantivy index is derived from it.
//! A file whose path, size and modification time match its catalog entry is
//! not hashed again, on a rescan or after a restart, and keeps its index
//! number.
//!
//! The hash cache is a JSON-lines file: a header line
//! `{"format":"servent-hash-cache","version":3,"generation":G,"next_index":N}`
//! then one line per file
//! `{"index":3,"path":"/abs/name","size":1,"mtime_ns":1700000000000000000,"sha1":"urn:sha1:…","sha256":"urn:sha256:…","tth":"…"}`
//! (`tth` the Tiger tree root in base32; a cache of an older version has
//! none, so it is read as empty and every file is hashed again),
//! with `"signature":{"stamp":{"size":…,"mtime_ns":…},"saved":{"text":"…"}}`
//! when a `FILE.minisig` lies beside the file (`"error"` instead of `"text"`
//! when it could not be read).
//! It is replaced whole and atomically (written beside, synced, renamed), so
//! a crash leaves either the old file or the new one. `next_index` is saved
//! so that numbers are never handed out twice; `generation` counts saves and
//! ties the Tantivy index to the catalog it reflects.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scan::Stamp;
use crate::signature::Saved;
use crate::{Error, SharedFile, Sidecar, Urn};

const FORMAT: &str = "servent-hash-cache";
const VERSION: u32 = 3;

/// A shared file and the modification time it had when it was hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) file: SharedFile,
    /// Nanoseconds since the Unix epoch (negative before it).
    pub(crate) mtime_ns: i64,
    /// The size and time of its `FILE.minisig` when it was read.
    pub(crate) signature_stamp: Option<Stamp>,
}

/// What a scan learnt, to be applied to the catalog in one go.
pub(crate) enum Change {
    /// A file was hashed: new (with a freshly reserved index) or changed.
    Hashed(Box<Entry>),
    /// File number `index` is gone.
    Removed(u32),
}

/// All shared files, by index number and by path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Catalog {
    entries: HashMap<u32, Entry>,
    by_path: HashMap<PathBuf, u32>,
    next_index: u32,
    generation: u64,
    total_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    generation: u64,
    next_index: u32,
}

#[derive(Serialize, Deserialize)]
struct Line {
    index: u32,
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
    sha1: Urn,
    sha256: Urn,
    tth: thex::Root,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<SavedSignature>,
}

#[derive(Serialize, Deserialize)]
struct SavedSignature {
    stamp: Stamp,
    saved: Saved,
}

impl Catalog {
    /// Reads the hash cache at `path`. A missing cache is an empty catalog;
    /// so is an unreadable one, with a note saying why (the files will be
    /// hashed again, which costs time but loses nothing).
    pub(crate) fn load(path: &Path) -> Result<(Catalog, Option<String>), Error> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Catalog::default(), None)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let note = format!("{}: not UTF-8, hashing everything again", path.display());
                return Ok((Catalog::default(), Some(note)));
            }
            Err(e) => return Err(Error::io("read", path)(e)),
        };
        match Catalog::parse(&text) {
            Ok(catalog) => Ok((catalog, None)),
            Err(why) => {
                let note = format!("{}: {why}, hashing everything again", path.display());
                Ok((Catalog::default(), Some(note)))
            }
        }
    }

    fn parse(text: &str) -> Result<Catalog, String> {
        let mut lines = text.lines().enumerate();
        let header: Header = match lines.next() {
            Some((_, line)) => serde_json::from_str(line).map_err(|e| format!("line 1: {e}"))?,
            None => return Err("empty".into()),
        };
        if header.format != FORMAT || header.version != VERSION {
            return Err(format!("unknown format {} version {}", header.format, header.version));
        }
        let mut catalog =
            Catalog { next_index: header.next_index, generation: header.generation, ..Catalog::default() };
        for (number, line) in lines {
            let bad = |why: &dyn std::fmt::Display| format!("line {}: {why}", number + 1);
            let line: Line = serde_json::from_str(line).map_err(|e| bad(&e))?;
            let name = line.path.file_name().and_then(|name| name.to_str());
            let (Some(name), Urn::Sha1(_), Urn::Sha256(_)) = (name, line.sha1, line.sha256) else {
                return Err(bad(&"not a file entry"));
            };
            if catalog.entries.contains_key(&line.index) || catalog.by_path.contains_key(&line.path) {
                return Err(bad(&"duplicate entry"));
            }
            // Whatever the header says, a number in use is never handed out again.
            catalog.next_index = catalog.next_index.max(line.index.saturating_add(1));
            catalog.insert(Entry {
                file: SharedFile {
                    index: line.index,
                    name: name.to_owned(),
                    path: line.path,
                    size: line.size,
                    sha1: line.sha1,
                    sha256: line.sha256,
                    tth: line.tth,
                    signature: line.signature.as_ref().map(|s| Sidecar::from_saved(&s.saved)),
                },
                mtime_ns: line.mtime_ns,
                signature_stamp: line.signature.map(|s| s.stamp),
            });
        }
        Ok(catalog)
    }

    /// Replaces the hash cache at `path` with this catalog, atomically.
    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        self.write(&temporary).map_err(Error::io("write", &temporary))?;
        fs::rename(&temporary, path).map_err(Error::io("replace", path))?;
        // The rename itself is durable only once the folder is synced.
        if let Some(folder) = path.parent() {
            File::open(folder).and_then(|folder| folder.sync_all()).map_err(Error::io("sync", folder))?;
        }
        Ok(())
    }

    fn write(&self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            generation: self.generation,
            next_index: self.next_index,
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        let mut indexes: Vec<u32> = self.entries.keys().copied().collect();
        indexes.sort_unstable();
        for entry in indexes.iter().filter_map(|index| self.entries.get(index)) {
            let line = Line {
                index: entry.file.index,
                path: entry.file.path.clone(),
                size: entry.file.size,
                mtime_ns: entry.mtime_ns,
                sha1: entry.file.sha1,
                sha256: entry.file.sha256,
                tth: entry.file.tth,
                signature: entry
                    .signature_stamp
                    .zip(entry.file.signature.as_ref())
                    .map(|(stamp, sidecar)| SavedSignature { stamp, saved: sidecar.to_saved() }),
            };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    fn insert(&mut self, entry: Entry) {
        self.remove(entry.file.index);
        self.total_bytes += entry.file.size;
        self.by_path.insert(entry.file.path.clone(), entry.file.index);
        self.entries.insert(entry.file.index, entry);
    }

    fn remove(&mut self, index: u32) {
        if let Some(old) = self.entries.remove(&index) {
            self.total_bytes -= old.file.size;
            self.by_path.remove(&old.file.path);
        }
    }

    /// Applies what a scan learnt, as one new generation.
    pub(crate) fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Hashed(entry) => self.insert((**entry).clone()),
                Change::Removed(index) => self.remove(*index),
            }
        }
        self.generation += 1;
    }

    /// A number for a new path, never handed out before; `None` once all
    /// 2³² are spent.
    pub(crate) fn reserve_index(&mut self) -> Option<u32> {
        let index = self.next_index;
        self.next_index = index.checked_add(1)?;
        Some(index)
    }

    pub(crate) fn get(&self, index: u32) -> Option<&Entry> {
        self.entries.get(&index)
    }

    pub(crate) fn by_path(&self, path: &Path) -> Option<&Entry> {
        self.by_path.get(path).and_then(|index| self.entries.get(index))
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Files and bytes shared.
    pub(crate) fn totals(&self) -> (u32, u64) {
        (u32::try_from(self.entries.len()).unwrap_or(u32::MAX), self.total_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u32, path: &str) -> Entry {
        Entry {
            file: SharedFile {
                index,
                name: Path::new(path).file_name().unwrap().to_str().unwrap().into(),
                path: path.into(),
                size: 10 + u64::from(index),
                sha1: Urn::Sha1([index as u8; 20]),
                sha256: Urn::Sha256([index as u8; 32]),
                tth: thex::Root([index as u8; 24]),
                signature: None,
            },
            mtime_ns: -5,
            signature_stamp: None,
        }
    }

    #[test]
    fn signatures_are_saved_with_their_stamp_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes.jsonl");
        let mut catalog = Catalog::default();
        let (a, b) = (catalog.reserve_index().unwrap(), catalog.reserve_index().unwrap());
        let stamp = Some(Stamp { size: 3, mtime_ns: 7 });
        let unreadable = Entry {
            file: SharedFile { signature: Some(Sidecar::Unreadable("garbage".into())), ..entry(a, "/s/a").file },
            signature_stamp: stamp,
            ..entry(a, "/s/a")
        };
        let signed = Sidecar::parse(SIGNATURE.as_bytes());
        assert!(matches!(signed, Sidecar::Signed(_)));
        let signed = Entry {
            file: SharedFile { signature: Some(signed), ..entry(b, "/s/b").file },
            signature_stamp: stamp,
            ..entry(b, "/s/b")
        };
        catalog.apply(&[Change::Hashed(Box::new(unreadable.clone())), Change::Hashed(Box::new(signed.clone()))]);
        catalog.save(&path).unwrap();
        let (loaded, note) = Catalog::load(&path).unwrap();
        assert_eq!(note, None);
        assert_eq!(loaded.get(a), Some(&unreadable));
        assert_eq!(loaded.get(b), Some(&signed));
    }

    /// `minisign -S` output for the file "hello\n" (minisign 0.11).
    const SIGNATURE: &str = "untrusted comment: signature from minisign secret key\nRUQvjScuXlSPOiAy1Y61Kl7RE84uU4yyShHFsRIdI1Dv8xcJASx8F21Lpiz81Bk+Pir9ubdzA0o6o7KMQvGfvx2NcQn4SNQPxw4=\ntrusted comment: timestamp:1795629243\tfile:f.txt\thashed\ntBQ1hT5zOGQtcntuRq7d0SuCYWeuPIsQmh/T/wIbGqmU+tbv0lBjKBXP7XHdEeuqWGWDa2J/BbGJUpNqN6uiCw==\n";

    #[test]
    fn saved_catalog_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes.jsonl");
        let mut catalog = Catalog::default();
        let a = catalog.reserve_index().unwrap();
        let b = catalog.reserve_index().unwrap();
        catalog
            .apply(&[Change::Hashed(Box::new(entry(a, "/s/a.txt"))), Change::Hashed(Box::new(entry(b, "/s/b é.txt")))]);
        catalog.save(&path).unwrap();

        let (loaded, note) = Catalog::load(&path).unwrap();
        assert_eq!(note, None);
        assert_eq!(loaded.get(b), Some(&entry(b, "/s/b é.txt")));
        assert_eq!(loaded.by_path(Path::new("/s/a.txt")), Some(&entry(a, "/s/a.txt")));
        assert_eq!(loaded.totals(), (2, 21));
        assert_eq!(loaded.generation(), 1);
        assert!(!dir.path().join("hashes.jsonl.tmp").exists());
    }

    #[test]
    fn numbers_of_removed_files_are_not_handed_out_again_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes.jsonl");
        let mut catalog = Catalog::default();
        let a = catalog.reserve_index().unwrap();
        catalog.apply(&[Change::Hashed(Box::new(entry(a, "/s/a")))]);
        catalog.apply(&[Change::Removed(a)]);
        catalog.save(&path).unwrap();
        let (mut loaded, _) = Catalog::load(&path).unwrap();
        assert_eq!(loaded.totals(), (0, 0));
        assert_ne!(loaded.reserve_index(), Some(a));
    }

    #[test]
    fn missing_cache_is_an_empty_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, note) = Catalog::load(&dir.path().join("none")).unwrap();
        assert_eq!((catalog.totals(), note), ((0, 0), None));
    }

    #[test]
    fn corrupt_cache_is_an_empty_catalog_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes.jsonl");
        for bad in [
            "",
            "{\"format\":\"other\",\"version\":1,\"generation\":1,\"next_index\":0}",
            "{\"format\":\"servent-hash-cache\",\"version\":1,\"generation\":1,\"next_index\":0}\n{\"index\":",
        ] {
            fs::write(&path, bad).unwrap();
            let (catalog, note) = Catalog::load(&path).unwrap();
            assert_eq!(catalog.totals(), (0, 0));
            assert!(note.unwrap().starts_with(&path.display().to_string()), "{bad}");
        }
    }
}
