//! The command line's operations on paths: key files, `FILE.minisig` beside `FILE`.
//!
//! Each error names the file it is about. Reads of key and signature files are bounded, and a
//! `.minisig` is written under a temporary name and renamed, so a crash never leaves half a
//! signature for a servent to share.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::error::{Error, FormatError, VerifyError};
use crate::key::{KeyId, PublicKey, SecretKey, SecretKeyFile, MAX_KEY_FILE_BYTES};
use crate::minisig::{Minisig, MAX_MINISIG_BYTES};
use crate::release::{Release, ReleaseMeta};
use crate::rotation::Rotation;
use crate::sign::Signer;
use crate::verify::verify_reader;

/// How much is read at a time when signing.
const CHUNK_BYTES: usize = 256 * 1024;

/// A file whose signature holds for the given key.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The key that signed it.
    pub key_id: KeyId,
    /// The signed release, or `None` for a plain minisign signature without release metadata
    /// (which still proves the content: minisign's signature covers it).
    pub release: Option<Release>,
    /// The verified trusted comment.
    pub trusted_comment: String,
}

impl fmt::Display for Verified {
    /// `verified by key 0123456789ABCDEF: name SEBLINUX-base version 1.1 size 1234 keywords SEBLINUX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verified by key {}: ", self.key_id)?;
        match &self.release {
            Some(release) => write!(f, "{release}"),
            None => write!(f, "no release metadata; trusted comment: {:?}", self.trusted_comment),
        }
    }
}

/// `FILE.minisig`: where a file's signature lives.
pub fn minisig_path(file: &Path) -> PathBuf {
    let mut path = file.as_os_str().to_owned();
    path.push(".minisig");
    PathBuf::from(path)
}

/// Reads and parses a `.minisig`.
pub fn read_minisig(path: &Path) -> Result<Minisig, Error> {
    let bytes = read_bounded(path, MAX_MINISIG_BYTES, "the signature file")?;
    Minisig::parse(&bytes).map_err(|source| Error::Format { path: path.to_owned(), source })
}

/// Loads a public key given as a `.pub` file or as its bare `RW…` line.
pub fn load_public_key(arg: &str) -> Result<PublicKey, Error> {
    let path = Path::new(arg);
    // A key line starts "RW" (base64 of "Ed"); a file of that name still wins.
    if arg.starts_with("RW") && !path.exists() {
        return PublicKey::from_base64(arg).map_err(|source| Error::Format { path: path.to_owned(), source });
    }
    let text = read_text(path, "the public key file")?;
    PublicKey::parse(&text).map_err(|source| Error::Format { path: path.to_owned(), source })
}

/// Loads a secret key, calling `password` only if the key is encrypted.
pub fn load_secret_key(
    path: &Path,
    password: impl FnOnce() -> Result<Zeroizing<String>, Error>,
) -> Result<SecretKey, Error> {
    let text = Zeroizing::new(read_text(path, "the secret key file")?);
    let file = SecretKeyFile::parse(&text).map_err(|source| Error::Format { path: path.to_owned(), source })?;
    let password = if file.is_encrypted() { password()? } else { Zeroizing::new(String::new()) };
    file.open(&password).map_err(|source| Error::Format { path: path.to_owned(), source })
}

/// Generates a key pair and writes both files, the secret one readable by its owner only;
/// `password` `None` writes it unencrypted. Existing files are kept unless `force`.
pub fn keygen(public: &Path, secret: &Path, password: Option<&str>, force: bool) -> Result<PublicKey, Error> {
    if !force {
        for path in [secret, public] {
            if path.exists() {
                return Err(Error::Exists { path: path.to_owned() });
            }
        }
    }
    let key = SecretKey::generate()?;
    let secret_text = key.to_file_text(password)?;
    write_new(secret, secret_text.as_bytes(), 0o600)?;
    let public_key = key.public_key();
    write_new(public, public_key.to_file_text().as_bytes(), 0o644)?;
    Ok(public_key)
}

/// Signs `file` into `FILE.minisig`, with the release metadata if any, and returns its path.
pub fn sign_file(key: &SecretKey, file: &Path, meta: Option<&ReleaseMeta>, timestamp: u64) -> Result<PathBuf, Error> {
    let name = file
        .file_name()
        .ok_or(FormatError::BadField { field: "file", reason: "the path has no file name" })
        .and_then(|name| name.to_str().ok_or(FormatError::NotUtf8 { what: "the file name" }))
        .map_err(|source| Error::Format { path: file.to_owned(), source })?;
    let read_error = |source| Error::Read { path: file.to_owned(), source };
    // A device or a FIFO would be signed as whatever it yields today, and
    // its `.minisig` written beside it (as /dev/null.minisig).
    if !fs::metadata(file).map_err(read_error)?.is_file() {
        let kind = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file: only files are signed");
        return Err(read_error(kind));
    }
    let mut reader = File::open(file).map_err(read_error)?;
    let mut signer = Signer::new();
    let mut buffer = vec![0; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => signer.update(&buffer[..read]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(read_error(err)),
        }
    }
    let minisig =
        signer.finish(key, name, meta, timestamp).map_err(|source| Error::Format { path: file.to_owned(), source })?;
    let path = minisig_path(file);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = fs::write(&temporary, minisig.to_text()).and_then(|()| fs::rename(&temporary, &path));
    if let Err(source) = written {
        // Best effort: the error that matters is the write's, reported below.
        let _ = fs::remove_file(&temporary);
        return Err(Error::Write { path, source });
    }
    Ok(path)
}

/// Writes into `dir` the rotation record by which `old` hands `names` over to `new`, and its
/// `.minisig`; returns the record's path and what it says.
pub fn write_rotation(
    old: &SecretKey,
    new: &PublicKey,
    names: &[String],
    dir: &Path,
    timestamp: u64,
) -> Result<(PathBuf, Rotation), Error> {
    let (name, text, minisig) =
        Rotation::sign(old, new, names, timestamp).map_err(|source| Error::Format { path: dir.to_owned(), source })?;
    let path = dir.join(name);
    write_new(&path, text.as_bytes(), 0o644)?;
    write_new(&minisig_path(&path), minisig.to_text().as_bytes(), 0o644)?;
    Ok((path, Rotation { from: old.key_id(), to: new.clone(), names: names.to_vec(), timestamp }))
}

/// Verifies `file` against `FILE.minisig` and `key`, reading the file once.
///
/// A release signature must also match the file's SHA-256 and size. A plain minisign
/// signature (no release metadata) is accepted with `release: None`.
pub fn verify_file(key: &PublicKey, file: &Path) -> Result<Verified, Error> {
    let minisig = read_minisig(&minisig_path(file))?;
    let reader = File::open(file).map_err(|source| Error::Read { path: file.to_owned(), source })?;
    let check = verify_reader(key, &minisig, reader).map_err(|source| Error::Read { path: file.to_owned(), source })?;
    let release = match check.verdict {
        Ok(release) => Some(release),
        // Only reported once the content and the trusted comment are both verified.
        Err(VerifyError::NotARelease(_)) => None,
        Err(source) => return Err(Error::Verify { path: file.to_owned(), source }),
    };
    Ok(Verified { key_id: key.key_id(), release, trusted_comment: minisig.trusted_comment().to_owned() })
}

/// Seconds since the Unix epoch, for minisign's `timestamp:`.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

fn read_bounded(path: &Path, limit: usize, what: &'static str) -> Result<Vec<u8>, Error> {
    let read_error = |source| Error::Read { path: path.to_owned(), source };
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() > limit {
        let len = fs::metadata(path).map_or(bytes.len(), |meta| meta.len().try_into().unwrap_or(usize::MAX));
        return Err(Error::Format { path: path.to_owned(), source: FormatError::TooLong { what, len, limit } });
    }
    Ok(bytes)
}

fn read_text(path: &Path, what: &'static str) -> Result<String, Error> {
    let bytes = read_bounded(path, MAX_KEY_FILE_BYTES, what)?;
    String::from_utf8(bytes).map_err(|_| Error::Format { path: path.to_owned(), source: FormatError::NotUtf8 { what } })
}

/// Writes a fresh file (replacing any old one) with the given Unix permissions.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let write_error = |source| Error::Write { path: path.to_owned(), source };
    // Removed first so the permissions apply: they are only set when a file is created.
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(write_error(err)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(write_error)
}
