//! The end of a download: check the bytes, then give them a name.
//!
//! [`check`] reads the finished `.part` once and returns every digest the
//! decision needs (SHA-1, SHA-256, and the signature's BLAKE2b prehash when
//! the signing key is trusted) with the verdict on the bytes. Only a file
//! whose digests match its URNs, and that is not a fake, is [`place`]d into
//! the downloads directory, and placing never overwrites:
//! the name a peer suggested is made safe ([`safe_name`]), and if another
//! file already has it, the download becomes `name (1).ext`, `name (2).ext`…
//! unless that file already holds the very same bytes.
//!
//! A bare name belongs to verified files first: a verified download whose
//! name is held by a file that is not verified (unsigned, or signed by a
//! key not trusted) takes the name, and that file moves to the first free
//! `name (n).ext`, its signature with it. An unverified download never
//! displaces anything, so whichever arrives first, an unsigned file never
//! wears the name of a verified release.
//!
//! The file appears under its final name in one step (a hard link, or a
//! rename, of a complete and synced file), so the library never indexes
//! half a file. When the downloads directory is on another file system the
//! data is first copied to a hidden file beside its final name (the library
//! skips names starting with `.`).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use search::{Digests, Urn};
use signing_tool::Minisig;

use super::state::DiskError;
use crate::trust::{Content, Judgement, TrustStore, Verdict};

/// Longest file name given to a download, in bytes (most file systems allow 255).
const MAX_NAME_BYTES: usize = 200;
/// `name (1).ext` … `name (N).ext` tried before giving up.
const MAX_NUMBERED_NAMES: u32 = 1000;
/// `errno` for "cross-device link" on Linux and the BSDs.
const EXDEV: i32 = 18;
/// The largest signature file read beside a file (minisign's are under 1 KiB).
const MAX_SIGNATURE_BYTES: u64 = 16 * 1024;

/// Reads `path` once: its digests, its length, and the verdict on its
/// bytes under `signature`.
pub fn check(
    path: &Path,
    trust: &TrustStore,
    signature: Option<&Minisig>,
) -> Result<(Digests, u64, Judgement), DiskError> {
    let file = File::open(path).map_err(|e| DiskError::new("opening", path, e))?;
    let mut verifier = signature.and_then(|minisig| trust.file_verifier(minisig));
    let hashed = match verifier.as_mut() {
        Some(verifier) => {
            let mut feed = |chunk: &[u8]| verifier.update(chunk);
            search::hash_reader_with(file, Some(&mut feed))
        }
        None => search::hash_reader(file),
    };
    let (digests, len) = hashed.map_err(|e| DiskError::new("reading", path, e))?;
    let content = Content { size: len, sha256: Some(digests.sha256), tth: Some(digests.tth) };
    let check = verifier.map(|verifier| verifier.finish_with_tth(digests.sha256, Some(digests.tth)));
    let judgement = trust.judge_file(signature, content, check);
    Ok((digests, len, judgement))
}

/// Whether the file at `path` is verified: its signature beside it signs
/// these bytes under a key `trust` pins for its name.
pub fn is_verified(path: &Path, trust: &TrustStore) -> bool {
    let signature = signing_tool::files::minisig_path(path);
    let mut text = Vec::new();
    let read = File::open(&signature).and_then(|f| f.take(MAX_SIGNATURE_BYTES).read_to_end(&mut text));
    let Some(minisig) = read.ok().and_then(|_| Minisig::parse(&text).ok()) else { return false };
    check(path, trust, Some(&minisig)).is_ok_and(|(_, _, judgement)| judgement.verdict == Verdict::Verified)
}

/// Writes `text` as the signature beside the placed file `path`.
pub fn place_signature(path: &Path, text: &str) -> Result<(), DiskError> {
    let signature = signing_tool::files::minisig_path(path);
    crate::config::write_atomically(&signature, text.as_bytes()).map_err(|e| DiskError::new("writing", &signature, e))
}

/// Why the digests do not match the URNs, if they do not.
pub fn mismatch(urns: &[Urn], digests: &Digests, len: u64, size: u64) -> Option<String> {
    if len != size {
        return Some(format!("{len} bytes on disk, {size} expected"));
    }
    urns.iter().find_map(|urn| {
        let actual = match urn {
            Urn::Sha1(_) => digests.sha1_urn(),
            Urn::Sha256(_) => digests.sha256_urn(),
        };
        (actual != *urn).then(|| format!("content is {actual}, not {urn}"))
    })
}

/// A file name that is safe to create in the downloads directory: one
/// path component, no control characters, not hidden, not too long.
/// `fallback` (the URN's base32) is used when nothing usable is left.
pub fn safe_name(name: &str, fallback: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_control() || matches!(c, '/' | '\\') { '_' } else { c }).collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        return fallback.to_string();
    }
    if trimmed.len() <= MAX_NAME_BYTES {
        return trimmed.to_string();
    }
    let (stem, ext) = split_extension(trimmed);
    let budget = MAX_NAME_BYTES.saturating_sub(ext.len());
    let mut cut = budget.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

/// `a.tar.gz` → (`a.tar`, `.gz`); an extension is short and not the whole name.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => name.split_at(dot),
        _ => (name, ""),
    }
}

/// `name (n).ext`.
fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// Moves the checked `part` into `dir` under `name` (already safe), never
/// replacing a different file: the holder of the name gives it up (and
/// takes a number) only if `displaces` says so of it. Returns the final
/// path. On error the downloads directory is as it was and `part` is still there.
pub fn place(
    part: &Path,
    dir: &Path,
    name: &str,
    digests: &Digests,
    size: u64,
    displaces: impl Fn(&Path) -> bool,
) -> Result<PathBuf, DiskError> {
    fs::create_dir_all(dir).map_err(|e| DiskError::new("creating", dir, e))?;
    let staged = dir.join(format!(".{}.incoming", digests.sha1_urn().base32()));
    let copied = match fs::rename(part, &staged) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(EXDEV) => {
            copy_synced(part, &staged)?;
            true
        }
        Err(e) => return Err(DiskError::new("moving", part, e)),
    };
    let target = dir.join(name);
    let placed = match displace(&target, digests, size, displaces) {
        Ok(true) => fs::rename(&staged, &target).map(|()| target).map_err(|e| DiskError::new("moving", dir, e)),
        Ok(false) => link_without_replacing(&staged, dir, name, digests, size),
        Err(e) => Err(e),
    };
    match placed {
        Ok(path) => {
            if copied {
                let _ = fs::remove_file(part);
            }
            sync_dir(dir)?;
            Ok(path)
        }
        Err(e) => {
            // Give the data back to the partial directory.
            if copied {
                let _ = fs::remove_file(&staged);
            } else {
                let _ = fs::rename(&staged, part);
            }
            Err(e)
        }
    }
}

/// Moves the file holding `target` (when it holds other bytes and
/// `displaces` says so of it) to the first free `name (n).ext`, its
/// signature with it; whether the name is free for a rename now. The file
/// is linked under its new name before its old one is taken, so it is
/// never without a name.
fn displace(target: &Path, digests: &Digests, size: u64, displaces: impl Fn(&Path) -> bool) -> Result<bool, DiskError> {
    let holder = fs::symlink_metadata(target);
    if !holder.is_ok_and(|m| m.is_file()) || same_content(target, digests, size) || !displaces(target) {
        return Ok(false);
    }
    let (dir, name) = (target.parent().unwrap_or(Path::new(".")), target.file_name().unwrap_or_default());
    for n in 1..=MAX_NUMBERED_NAMES {
        let aside = dir.join(numbered(&name.to_string_lossy(), n));
        match fs::hard_link(target, &aside) {
            Ok(()) => {
                let signature = signing_tool::files::minisig_path(target);
                if signature.exists() {
                    fs::rename(&signature, signing_tool::files::minisig_path(&aside))
                        .map_err(|e| DiskError::new("moving", &signature, e))?;
                }
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // File systems without hard links: the newcomer takes a number.
            Err(_) => return Ok(false),
        }
    }
    Ok(false)
}

/// Gives `staged` its final name in `dir`: `name`, or the first free
/// `name (n)`, or an existing file with the same content.
fn link_without_replacing(
    staged: &Path,
    dir: &Path,
    name: &str,
    digests: &Digests,
    size: u64,
) -> Result<PathBuf, DiskError> {
    for n in 0..=MAX_NUMBERED_NAMES {
        let target = dir.join(if n == 0 { name.to_string() } else { numbered(name, n) });
        // A hard link fails when the target exists: no window in which
        // another file could be replaced.
        match fs::hard_link(staged, &target) {
            Ok(()) => {
                fs::remove_file(staged).map_err(|e| DiskError::new("removing", staged, e))?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if same_content(&target, digests, size) {
                    fs::remove_file(staged).map_err(|e| DiskError::new("removing", staged, e))?;
                    return Ok(target);
                }
            }
            // File systems without hard links: check, then rename.
            Err(_) if !target.exists() => {
                fs::rename(staged, &target).map_err(|e| DiskError::new("moving", &target, e))?;
                return Ok(target);
            }
            Err(_) => {}
        }
    }
    Err(DiskError::new(
        "naming",
        &dir.join(name),
        io::Error::new(io::ErrorKind::AlreadyExists, format!("{MAX_NUMBERED_NAMES} files of that name exist")),
    ))
}

fn same_content(path: &Path, digests: &Digests, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
        && search::hash_file(path).is_ok_and(|d| d == *digests)
}

/// Copies `from` to `to` and syncs the copy; removes the copy on failure.
fn copy_synced(from: &Path, to: &Path) -> Result<(), DiskError> {
    let result = (|| {
        let mut source = File::open(from).map_err(|e| DiskError::new("reading", from, e))?;
        let mut target = File::create(to).map_err(|e| DiskError::new("creating", to, e))?;
        copy(&mut source, &mut target, from, to)?;
        target.sync_all().map_err(|e| DiskError::new("syncing", to, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(to);
    }
    result
}

/// `io::copy`, telling reading errors from writing ones.
fn copy(source: &mut File, target: &mut File, from: &Path, to: &Path) -> Result<(), DiskError> {
    use std::io::Write;
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DiskError::new("reading", from, e)),
        };
        target.write_all(&buffer[..n]).map_err(|e| DiskError::new("writing", to, e))?;
    }
}

fn sync_dir(dir: &Path) -> Result<(), DiskError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| DiskError::new("syncing", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests_of(bytes: &[u8]) -> Digests {
        search::hash_reader(bytes).unwrap().0
    }

    #[test]
    fn names_from_peers_cannot_leave_the_directory_or_hide() {
        for (given, safe) in [
            ("SEBLINUX.img", "SEBLINUX.img"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("/etc/passwd", "_etc_passwd"),
            ("..", "URN"),
            (".", "URN"),
            ("", "URN"),
            ("  ", "URN"),
            (".bashrc", "bashrc"),
            ("a\\b", "a_b"),
            ("nul\0byte\n.txt", "nul_byte_.txt"),
            ("été.iso", "été.iso"),
        ] {
            assert_eq!(safe_name(given, "URN"), safe, "{given:?}");
        }
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension_and_utf8() {
        let name = format!("{}.iso", "é".repeat(300));
        let safe = safe_name(&name, "URN");
        assert!(safe.len() <= MAX_NAME_BYTES, "{}", safe.len());
        assert!(safe.ends_with("é.iso"));
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("a.tar.gz", 1), "a.tar (1).gz");
        assert_eq!(numbered("README", 2), "README (2)");
        assert_eq!(numbered(".x", 3), ".x (3)");
    }

    #[test]
    fn mismatch_names_the_wrong_content() {
        let digests = digests_of(b"abc");
        let right = [digests.sha1_urn(), digests.sha256_urn()];
        assert_eq!(mismatch(&right, &digests, 3, 3), None);
        assert!(mismatch(&right, &digests, 3, 4).unwrap().contains("4 expected"));
        let wrong = [Urn::Sha256([0; 32])];
        assert!(mismatch(&wrong, &digests, 3, 3).unwrap().starts_with("content is urn:sha256:"));
    }

    #[test]
    fn placing_never_replaces_a_different_file() {
        let dir = tempfile::tempdir().unwrap();
        let (partial, downloads) = (dir.path().join("partial"), dir.path().join("downloads"));
        fs::create_dir_all(&partial).unwrap();
        fs::create_dir_all(&downloads).unwrap();
        fs::write(downloads.join("a.img"), b"other").unwrap();
        let part = partial.join("X.part");
        fs::write(&part, b"ours").unwrap();
        let path = place(&part, &downloads, "a.img", &digests_of(b"ours"), 4, |_| false).unwrap();
        assert_eq!(path, downloads.join("a (1).img"));
        assert_eq!(fs::read(&path).unwrap(), b"ours");
        assert_eq!(fs::read(downloads.join("a.img")).unwrap(), b"other");
        assert!(!part.exists());
        let names: Vec<_> = fs::read_dir(&downloads).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no staging file left: {names:?}");

        // The same bytes again: the existing copy is the result.
        fs::write(&part, b"ours").unwrap();
        assert_eq!(place(&part, &downloads, "a.img", &digests_of(b"ours"), 4, |_| false).unwrap(), path);
        assert!(!part.exists());
    }

    #[test]
    fn a_file_that_yields_its_name_moves_aside_with_its_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (partial, downloads) = (dir.path().join("partial"), dir.path().join("downloads"));
        fs::create_dir_all(&partial).unwrap();
        fs::create_dir_all(&downloads).unwrap();
        fs::write(downloads.join("a.img"), b"unsigned").unwrap();
        fs::write(downloads.join("a.img.minisig"), b"its signature").unwrap();
        fs::write(downloads.join("a (1).img"), b"an older one").unwrap();
        let part = partial.join("X.part");
        fs::write(&part, b"verified").unwrap();
        let asked = std::cell::RefCell::new(Vec::new());
        let displaces = |holder: &Path| {
            asked.borrow_mut().push(holder.to_path_buf());
            true
        };
        let path = place(&part, &downloads, "a.img", &digests_of(b"verified"), 8, displaces).unwrap();
        assert_eq!(path, downloads.join("a.img"));
        assert_eq!(*asked.borrow(), [downloads.join("a.img")]);
        assert_eq!(fs::read(&path).unwrap(), b"verified");
        assert_eq!(fs::read(downloads.join("a (2).img")).unwrap(), b"unsigned");
        assert_eq!(fs::read(downloads.join("a (2).img.minisig")).unwrap(), b"its signature");
        assert!(!downloads.join("a.img.minisig").exists());
        assert_eq!(fs::read(downloads.join("a (1).img")).unwrap(), b"an older one");
    }
}
