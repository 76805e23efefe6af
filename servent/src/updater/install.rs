//! The install directory: which releases are installed, and installing,
//! rolling back and recovering so that a crash at any moment leaves either
//! the old version or the new one, never a mix.
//!
//! ```text
//! <install-dir>/SEBLINUX-base-1.1.tar            the installed file (its signed `file:` name)
//! <install-dir>/SEBLINUX-base-1.1.tar.minisig    its signature: the folder is shared, signed
//! <install-dir>/.servent/installed.json          the record (replaced atomically)
//! <install-dir>/.servent/previous/<name>/…       the version before, for rollback
//! <install-dir>/.servent/incoming/…              a version being installed
//! ```
//!
//! An install stages the new file (moved out of the downloads folder, so
//! one copy of a release is kept and shared, or copied across file
//! systems; its SHA-256 checked, then synced), keeps the current one as the previous version, writes the
//! record with the change *pending*, renames the new file into place,
//! removes the old one, and writes the record again without the pending
//! change. [`InstallDir::open`] finishes or undoes a pending change it
//! finds: forward if the new file is whole in place (or whole in staging
//! with nothing left to wait for), back otherwise. The hidden `.servent`
//! folder is never shared.
//!
//! With a post-install hook the change waits for it:
//! [`InstallDir::stage_for_hook`] stages the new file and writes the record
//! with the change pending *and awaiting its hook*; the hook runs on the
//! staged file, which is hidden and so not shared; only
//! [`InstallDir::hook_passed`] keeps the previous version and moves the new
//! one into place, and [`InstallDir::hook_failed`] drops it, the version
//! held back. A crash while the hook runs counts as its failure: opening
//! rolls back. Opening also removes whatever else is left in
//! `.servent/incoming` (a copy a crash cut short).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use signing_tool::files::minisig_path;
use signing_tool::{KeyId, Minisig};

use crate::config::write_atomically;

/// The servent's own folder inside the install directory.
const STATE_DIR: &str = ".servent";
const RECORD_FILE: &str = "installed.json";
/// Largest record read.
const MAX_RECORD_BYTES: u64 = 4 << 20;
/// Packages one install directory holds at most.
pub const MAX_PACKAGES: usize = 1000;
/// Versions remembered as rolled back from, per package.
const MAX_HELD_BACK: usize = 32;

/// One installed release, as its signature describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The signed `name:`.
    pub name: String,
    /// The signed `version:`.
    pub version: String,
    /// The content's SHA-256, hex.
    pub sha256: String,
    /// The key that signed it, as minisign prints key ids: the key the
    /// package is bound to. A record written before it was kept gets it
    /// from the installed signature when the directory is opened. Written
    /// as text (`""` for none), compared as a value.
    #[serde(default, with = "key_id_text")]
    pub key_id: Option<KeyId>,
    /// When it was signed (minisign's `timestamp:`).
    pub timestamp: u64,
    /// Its file name in the install directory.
    pub file: String,
}

/// A [`Package`]'s key id in the record: the 16 hex digits minisign prints
/// (any case read), `""` for a package not yet bound to a key.
mod key_id_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use signing_tool::KeyId;

    pub fn serialize<S: Serializer>(id: &Option<KeyId>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.map(|id| id.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KeyId>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|e| serde::de::Error::custom(format!("key id {text}: {e}")))
    }
}

/// What is installed of one package name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The version in place.
    pub current: Package,
    /// The version before it, kept for rollback.
    pub previous: Option<Package>,
    /// Versions rolled back from: never installed again by an update pass.
    #[serde(default)]
    pub held_back: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    packages: Vec<Installed>,
    /// A change under way: written before the files move.
    pending: Option<Pending>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    new: Package,
    old: Option<Package>,
    held_back: Vec<String>,
    /// Staged, its post-install hook not yet passed: the old version stays.
    #[serde(default)]
    awaiting_hook: bool,
}

/// Why the install directory could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The record is not one this servent wrote.
    #[error("{} is not an install record: {why}", path.display())]
    Corrupt {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// What was asked cannot be done.
    #[error("{0}")]
    Refused(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_owned();
    move |source| InstallError::Io { action, path, source }
}

/// An install directory and its record.
#[derive(Debug)]
pub struct InstallDir {
    dir: PathBuf,
    record: Record,
}

impl InstallDir {
    /// Opens (creating it if needed) the install directory `dir`, and
    /// finishes or undoes a change a crash interrupted.
    pub fn open(dir: &Path) -> Result<InstallDir, InstallError> {
        fs::create_dir_all(dir.join(STATE_DIR)).map_err(io_error("create", dir))?;
        let path = dir.join(STATE_DIR).join(RECORD_FILE);
        let record = match File::open(&path) {
            Ok(file) => {
                let mut text = String::new();
                file.take(MAX_RECORD_BYTES).read_to_string(&mut text).map_err(io_error("read", &path))?;
                serde_json::from_str(&text)
                    .map_err(|e| InstallError::Corrupt { path: path.clone(), why: e.to_string() })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Record::default(),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        let mut install = InstallDir { dir: dir.to_owned(), record };
        install.recover()?;
        install.clean_incoming()?;
        install.bind_to_signers();
        Ok(install)
    }

    /// Binds each package recorded without its key to the key of its
    /// installed signature (one that cannot be read leaves it unbound, and
    /// the updater then refuses every release of it as a key change).
    fn bind_to_signers(&mut self) {
        let dir = self.dir.clone();
        let packages =
            self.record.packages.iter_mut().flat_map(|i| std::iter::once(&mut i.current).chain(&mut i.previous));
        for package in packages.filter(|p| p.key_id.is_none()) {
            let signature = fs::read(minisig_path(&dir.join(&package.file)));
            if let Ok(minisig) =
                signature.map_err(|e| e.to_string()).and_then(|b| Minisig::parse(&b).map_err(|e| e.to_string()))
            {
                package.key_id = Some(minisig.key_id());
            }
        }
    }

    /// The install directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What is installed.
    pub fn packages(&self) -> &[Installed] {
        &self.record.packages
    }

    /// What is installed under `name`.
    pub fn get(&self, name: &str) -> Option<&Installed> {
        self.record.packages.iter().find(|p| p.current.name == name)
    }

    /// Where the installed file of `package` is.
    pub fn file_path(&self, package: &Package) -> PathBuf {
        self.dir.join(&package.file)
    }

    /// Installs `new` from the verified file `source` (moved, with the
    /// signature beside it, if any: see [`take_checked`]) with its signature
    /// text, keeping what was installed under that name as the previous
    /// version. On error the installed state is as it was.
    pub fn install(&mut self, new: Package, source: &Path, signature: &str) -> Result<(), InstallError> {
        self.install_as(new, source, signature, Vec::new(), None)
    }

    /// Stages `new` as [`InstallDir::install`] does, but leaves the
    /// installed version in place until its post-install hook passes;
    /// returns the staged file, for the hook. Then call
    /// [`InstallDir::hook_passed`] or [`InstallDir::hook_failed`].
    pub fn stage_for_hook(&mut self, new: Package, source: &Path, signature: &str) -> Result<PathBuf, InstallError> {
        let staged = self.state_dir().join("incoming").join(&new.file);
        let mut held_back = self.get(&new.name).map(|i| i.held_back.clone()).unwrap_or_default();
        held_back.retain(|v| *v != new.version);
        self.stage(new, source, signature, held_back, None, true)?;
        Ok(staged)
    }

    /// The hook of the staged change passed: it is installed.
    pub fn hook_passed(&mut self) -> Result<(), InstallError> {
        let Some(pending) = self.record.pending.as_mut().filter(|p| p.awaiting_hook) else {
            return Err(InstallError::Refused("no install is waiting for its hook".into()));
        };
        pending.awaiting_hook = false;
        let old = pending.old.clone();
        self.save()?;
        if let Some(old) = &old {
            self.keep_as_previous(old)?;
        }
        self.move_into_place(None)
    }

    /// The hook of the staged change failed: the staged version is dropped
    /// and held back; the installed one never moved.
    pub fn hook_failed(&mut self) -> Result<(), InstallError> {
        if !self.record.pending.as_ref().is_some_and(|p| p.awaiting_hook) {
            return Err(InstallError::Refused("no install is waiting for its hook".into()));
        }
        self.roll_back_pending()
    }

    fn install_as(
        &mut self,
        new: Package,
        source: &Path,
        signature: &str,
        held_back: Vec<String>,
        crash_after: Option<Step>,
    ) -> Result<(), InstallError> {
        self.stage(new, source, signature, held_back, crash_after, false)?;
        self.move_into_place(crash_after)
    }

    /// Copies `new` into `.servent/incoming` and records the change as
    /// pending (keeping the installed version as the previous one first,
    /// unless the change waits for a hook).
    fn stage(
        &mut self,
        new: Package,
        source: &Path,
        signature: &str,
        held_back: Vec<String>,
        crash_after: Option<Step>,
        awaiting_hook: bool,
    ) -> Result<(), InstallError> {
        check_file_name(&new.file)?;
        let old = self.get(&new.name).map(|i| i.current.clone());
        if let Some(other) =
            self.record.packages.iter().find(|p| p.current.file == new.file && p.current.name != new.name)
        {
            return Err(InstallError::Refused(format!(
                "{} would replace {}'s file {}",
                new.name, other.current.name, new.file
            )));
        }
        if old.is_none() && self.record.packages.len() >= MAX_PACKAGES {
            return Err(InstallError::Refused(format!("at most {MAX_PACKAGES} packages can be installed")));
        }
        let incoming = self.state_dir().join("incoming");
        fs::create_dir_all(&incoming).map_err(io_error("create", &incoming))?;
        let staged = incoming.join(&new.file);
        let staged_signature = minisig_path(&staged);
        // A download is moved in; the previous version this directory keeps
        // (a rollback's source) is copied, so that a crash cannot lose it.
        let take = !source.starts_with(self.state_dir());
        let staging =
            if take { take_checked(source, &staged, &new.sha256) } else { copy_checked(source, &staged, &new.sha256) }
                .and_then(|()| write_synced(&staged_signature, signature.as_bytes()));
        if let Err(e) = staging {
            if !take || fs::rename(&staged, source).is_err() {
                let _ = fs::remove_file(&staged);
            }
            let _ = fs::remove_file(&staged_signature);
            return Err(e);
        }
        if take {
            // The download's own signature goes with the file it signed.
            let _ = fs::remove_file(minisig_path(source));
        }
        stop_here(crash_after, Step::Staged)?;
        if let Some(old) = old.as_ref().filter(|_| !awaiting_hook) {
            self.keep_as_previous(old)?;
        }
        stop_here(crash_after, Step::PreviousKept)?;
        self.record.pending = Some(Pending { new, old, held_back, awaiting_hook });
        self.save()?;
        stop_here(crash_after, Step::Pending)
    }

    /// Renames the staged file of the pending change into place, then its
    /// signature, and finishes the change.
    fn move_into_place(&mut self, crash_after: Option<Step>) -> Result<(), InstallError> {
        let Some(pending) = self.record.pending.clone() else { return Ok(()) };
        let staged = self.state_dir().join("incoming").join(&pending.new.file);
        let target = self.dir.join(&pending.new.file);
        fs::rename(&staged, &target).map_err(io_error("move into place", &target))?;
        stop_here(crash_after, Step::Renamed)?;
        fs::rename(minisig_path(&staged), minisig_path(&target)).map_err(io_error("move into place", &target))?;
        self.roll_forward()
    }

    /// Removes what is left in `.servent/incoming` once no change is pending.
    fn clean_incoming(&self) -> Result<(), InstallError> {
        let incoming = self.state_dir().join("incoming");
        let entries = match fs::read_dir(&incoming) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("list", &incoming)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io_error("list", &incoming))?.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(io_error("remove", &path))?;
        }
        Ok(())
    }

    /// Puts the previous version of `name` back in place; the version rolled
    /// back from is held back from later update passes.
    pub fn rollback(&mut self, name: &str) -> Result<(Package, Package), InstallError> {
        let installed =
            self.get(name).cloned().ok_or_else(|| InstallError::Refused(format!("{name} is not installed")))?;
        let previous = installed
            .previous
            .clone()
            .ok_or_else(|| InstallError::Refused(format!("{name} has no previous version to roll back to")))?;
        let kept = self.previous_dir(name).join(&previous.file);
        let signature = fs::read_to_string(minisig_path(&kept)).map_err(io_error("read", &kept))?;
        // The version brought back is wanted again; the one left is not.
        let mut held_back = installed.held_back.clone();
        held_back.retain(|v| *v != installed.current.version && *v != previous.version);
        held_back.push(installed.current.version.clone());
        let first = held_back.len().saturating_sub(MAX_HELD_BACK);
        held_back.drain(..first);
        self.install_as(previous.clone(), &kept, &signature, held_back, None)?;
        Ok((installed.current, previous))
    }

    /// Uninstalls `name`: its record goes first (so a crash leaves at worst
    /// a stray file, never a record of a file that is gone), then its file,
    /// its signature and the previous version kept for it. Returns what was
    /// installed.
    pub fn uninstall(&mut self, name: &str) -> Result<Installed, InstallError> {
        let installed =
            self.get(name).cloned().ok_or_else(|| InstallError::Refused(format!("{name} is not installed")))?;
        if let Some(pending) = &self.record.pending {
            return Err(InstallError::Refused(format!("an install of {} is under way", pending.new.name)));
        }
        self.record.packages.retain(|p| p.current.name != name);
        self.save()?;
        let file = self.file_path(&installed.current);
        for path in [minisig_path(&file), file] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &path)(e)),
            }
        }
        let previous = self.previous_dir(name);
        match fs::remove_dir_all(&previous) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &previous)(e)),
        }
        sync_dir(&self.dir)?;
        Ok(installed)
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join(STATE_DIR)
    }

    fn previous_dir(&self, name: &str) -> PathBuf {
        // Names come from signed metadata but are still made one safe component.
        let safe: String =
            name.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        self.state_dir().join("previous").join(safe.trim_start_matches('.'))
    }

    /// Copies the installed `old` into the previous folder of its name,
    /// replacing what was kept there.
    fn keep_as_previous(&self, old: &Package) -> Result<(), InstallError> {
        let dir = self.previous_dir(&old.name);
        let fresh = dir.with_extension("new");
        let _ = fs::remove_dir_all(&fresh);
        fs::create_dir_all(&fresh).map_err(io_error("create", &fresh))?;
        let current = self.file_path(old);
        copy_checked(&current, &fresh.join(&old.file), &old.sha256)?;
        let signature = fs::read(minisig_path(&current)).map_err(io_error("read", &current))?;
        write_synced(&minisig_path(&fresh.join(&old.file)), &signature)?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&fresh, &dir).map_err(io_error("replace", &dir))?;
        sync_dir(dir.parent().unwrap_or(&dir))
    }

    /// Finishes a pending change whose new file is in place.
    fn roll_forward(&mut self) -> Result<(), InstallError> {
        let Some(pending) = self.record.pending.clone() else { return Ok(()) };
        if let Some(old) = &pending.old {
            if old.file != pending.new.file {
                let old_path = self.file_path(old);
                for path in [minisig_path(&old_path), old_path] {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_error("remove", &path)(e)),
                    }
                }
            }
        }
        sync_dir(&self.dir)?;
        let installed =
            Installed { current: pending.new.clone(), previous: pending.old.clone(), held_back: pending.held_back };
        self.record.packages.retain(|p| p.current.name != pending.new.name);
        self.record.packages.push(installed);
        self.record.packages.sort_by(|a, b| a.current.name.cmp(&b.current.name));
        self.record.pending = None;
        self.save()
    }

    /// After a crash: on with a pending change whose new file is whole in
    /// place (or whole in staging, its hook passed), back to the old
    /// version otherwise; a change still awaiting its hook always goes back.
    fn recover(&mut self) -> Result<(), InstallError> {
        let Some(pending) = self.record.pending.clone() else { return Ok(()) };
        if pending.awaiting_hook {
            return self.roll_back_pending();
        }
        let target = self.dir.join(&pending.new.file);
        let staged = self.state_dir().join("incoming").join(&pending.new.file);
        let whole = |path: &Path| sha256_hex(path).ok().as_deref() == Some(pending.new.sha256.as_str());
        if !whole(&target) && whole(&staged) && minisig_path(&staged).exists() {
            // Its hook passed; the old version may not be kept yet.
            if let Some(old) = &pending.old {
                self.keep_as_previous(old)?;
            }
            return self.move_into_place(None);
        }
        if whole(&target) {
            let staged_signature = minisig_path(&staged);
            if staged_signature.exists() {
                // Renamed into place, its signature not yet.
                fs::rename(&staged_signature, minisig_path(&target)).map_err(io_error("move into place", &target))?;
            }
            return self.roll_forward();
        }
        self.roll_back_pending()
    }

    /// Undoes the pending change: the old version whole in place (restored
    /// from its kept copy if need be), the staged files removed. A change
    /// that waited for its hook leaves its version held back.
    fn roll_back_pending(&mut self) -> Result<(), InstallError> {
        let Some(pending) = self.record.pending.clone() else { return Ok(()) };
        let staged = self.state_dir().join("incoming").join(&pending.new.file);
        if let Some(old) = &pending.old {
            let current = self.file_path(old);
            if sha256_hex(&current).ok().as_deref() != Some(old.sha256.as_str()) {
                let kept = self.previous_dir(&old.name).join(&old.file);
                copy_checked(&kept, &current, &old.sha256)?;
                let signature = fs::read(minisig_path(&kept)).map_err(io_error("read", &kept))?;
                write_synced(&minisig_path(&current), &signature)?;
            }
        }
        let _ = fs::remove_file(&staged);
        let _ = fs::remove_file(minisig_path(&staged));
        if pending.awaiting_hook {
            if let Some(installed) = self.record.packages.iter_mut().find(|p| p.current.name == pending.new.name) {
                installed.held_back.retain(|v| *v != pending.new.version);
                installed.held_back.push(pending.new.version.clone());
                let first = installed.held_back.len().saturating_sub(MAX_HELD_BACK);
                installed.held_back.drain(..first);
            }
        }
        self.record.pending = None;
        self.save()
    }

    fn save(&self) -> Result<(), InstallError> {
        let path = self.state_dir().join(RECORD_FILE);
        let text = serde_json::to_vec_pretty(&self.record).map_err(|e| InstallError::Refused(e.to_string()))?;
        write_atomically(&path, &text).map_err(io_error("write", &path))
    }
}

/// Where a test stops an install, as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Staged,
    PreviousKept,
    Pending,
    Renamed,
}

fn stop_here(crash_after: Option<Step>, step: Step) -> Result<(), InstallError> {
    match crash_after {
        Some(at) if at == step => Err(InstallError::Refused(format!("stopped after {step:?}"))),
        _ => Ok(()),
    }
}

/// A file name from signed metadata: one plain component, or refused.
fn check_file_name(name: &str) -> Result<(), InstallError> {
    let plain = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.ends_with(".minisig")
        && !name.chars().any(|c| c.is_control() || c == '/' || c == '\\');
    if plain {
        Ok(())
    } else {
        Err(InstallError::Refused(format!("{name:?} is not a file name that can be installed")))
    }
}

/// Moves `from` to `to` (copies it when they are on different file
/// systems, then removes it), synced, checking that the bytes have SHA-256
/// `sha256`; on a mismatch `from` is left where it was.
fn take_checked(from: &Path, to: &Path, sha256: &str) -> Result<(), InstallError> {
    if fs::rename(from, to).is_err() {
        copy_checked(from, to, sha256)?;
        return fs::remove_file(from).map_err(io_error("remove", from));
    }
    let matches = sha256_hex(to).map_err(io_error("read", to))? == sha256;
    let synced = File::open(to).and_then(|f| f.sync_all()).map_err(io_error("sync", to));
    if !matches {
        fs::rename(to, from).map_err(io_error("move back", from))?;
        return Err(changed(from));
    }
    synced
}

fn changed(path: &Path) -> InstallError {
    InstallError::Refused(format!("{} changed: it no longer has the verified content", path.display()))
}

/// Copies `from` to `to`, synced, checking on the way that the bytes have
/// SHA-256 `sha256`; a mismatch removes the copy.
fn copy_checked(from: &Path, to: &Path, sha256: &str) -> Result<(), InstallError> {
    let mut input = File::open(from).map_err(io_error("open", from))?;
    let mut output = File::create(to).map_err(io_error("create", to))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = input.read(&mut buffer).map_err(io_error("read", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n]).map_err(io_error("write", to))?;
    }
    output.sync_all().map_err(io_error("sync", to))?;
    if hex(&hasher.finalize()) != sha256 {
        let _ = fs::remove_file(to);
        return Err(changed(from));
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    let mut file = File::create(path).map_err(io_error("create", path))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_error("write", path))
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync", dir))
}

fn sha256_hex(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _root: tempfile::TempDir,
        dir: PathBuf,
        sources: PathBuf,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("opt");
        let sources = root.path().join("downloads");
        fs::create_dir_all(&sources).unwrap();
        Fixture { dir, sources, _root: root }
    }

    impl Fixture {
        fn release(&self, version: &str, file: &str) -> (Package, PathBuf) {
            let content = format!("SEBLINUX-base {version}");
            let path = self.sources.join(format!("{version}-{file}"));
            fs::write(&path, &content).unwrap();
            let package = Package {
                name: "SEBLINUX-base".into(),
                version: version.into(),
                sha256: hex(&Sha256::digest(content.as_bytes())),
                key_id: Some("3A8F545E2E278D2F".parse().unwrap()),
                timestamp: 1_700_000_000,
                file: file.into(),
            };
            (package, path)
        }
    }

    fn installed_bytes(dir: &Path, file: &str) -> String {
        fs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn a_record_without_its_key_is_bound_to_the_key_of_the_installed_signature() {
        let f = fixture();
        let key = signing_tool::SecretKey::generate().unwrap();
        let (mut v10, source) = f.release("1.0", "SEBLINUX-base-1.0.tar");
        let mut signer = signing_tool::Signer::new();
        signer.update(&fs::read(&source).unwrap());
        let signature = signer.finish(&key, "SEBLINUX-base-1.0.tar", None, 1_700_000_000).unwrap().to_text();
        v10.key_id = None;
        InstallDir::open(&f.dir).unwrap().install(v10, &source, &signature).unwrap();
        let record = f.dir.join(STATE_DIR).join(RECORD_FILE);
        let old: String = fs::read_to_string(&record).unwrap().lines().filter(|l| !l.contains("\"key_id\"")).collect();
        fs::write(&record, old).unwrap();
        let reopened = InstallDir::open(&f.dir).unwrap();
        assert_eq!(reopened.get("SEBLINUX-base").unwrap().current.key_id, Some(key.key_id()));
    }

    #[test]
    fn install_then_update_keeps_the_previous_version_and_rollback_restores_it() {
        let f = fixture();
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (v10, source) = f.release("1.0", "SEBLINUX-base-1.0.tar");
        install.install(v10.clone(), &source, "sig 1.0").unwrap();
        assert_eq!(installed_bytes(&f.dir, "SEBLINUX-base-1.0.tar"), "SEBLINUX-base 1.0");
        assert_eq!(fs::read_to_string(f.dir.join("SEBLINUX-base-1.0.tar.minisig")).unwrap(), "sig 1.0");

        let (v11, source) = f.release("1.1", "SEBLINUX-base-1.1.tar");
        install.install(v11.clone(), &source, "sig 1.1").unwrap();
        assert!(!f.dir.join("SEBLINUX-base-1.0.tar").exists());
        assert_eq!(install.get("SEBLINUX-base").unwrap().previous, Some(v10.clone()));
        let reopened = InstallDir::open(&f.dir).unwrap();
        assert_eq!(reopened.packages(), install.packages());

        let (from, to) = install.rollback("SEBLINUX-base").unwrap();
        assert_eq!((from.version.as_str(), to.version.as_str()), ("1.1", "1.0"));
        assert_eq!(installed_bytes(&f.dir, "SEBLINUX-base-1.0.tar"), "SEBLINUX-base 1.0");
        assert!(!f.dir.join("SEBLINUX-base-1.1.tar").exists());
        let now = install.get("SEBLINUX-base").unwrap();
        assert_eq!((&now.current, now.held_back.as_slice()), (&v10, ["1.1".to_string()].as_slice()));
        // Rolling "back" again returns to 1.1, which is then wanted, and 1.0 is not.
        install.rollback("SEBLINUX-base").unwrap();
        let now = install.get("SEBLINUX-base").unwrap();
        assert_eq!((&now.current, now.held_back.as_slice()), (&v11, ["1.0".to_string()].as_slice()));
        install.rollback("SEBLINUX-base").unwrap();
        let listed: Vec<String> =
            fs::read_dir(&f.dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(listed.len(), 3, "the file, its signature and .servent: {listed:?}");
    }

    #[test]
    fn a_crash_at_any_step_leaves_the_old_version_or_the_new_one() {
        for step in [Step::Staged, Step::PreviousKept, Step::Pending, Step::Renamed] {
            for same_name in [false, true] {
                let f = fixture();
                let mut install = InstallDir::open(&f.dir).unwrap();
                let (v10, source) = f.release("1.0", if same_name { "base.tar" } else { "base-1.0.tar" });
                install.install(v10.clone(), &source, "sig 1.0").unwrap();
                let (v11, source) = f.release("1.1", if same_name { "base.tar" } else { "base-1.1.tar" });
                let crashed = install.install_as(v11.clone(), &source, "sig 1.1", Vec::new(), Some(step));
                assert!(crashed.is_err());

                let recovered = InstallDir::open(&f.dir).unwrap();
                let current = &recovered.get("SEBLINUX-base").unwrap().current;
                // From a pending record on, the staged file is whole: it goes forward.
                let expected = if matches!(step, Step::Pending | Step::Renamed) { &v11 } else { &v10 };
                assert_eq!(current, expected, "{step:?} same name {same_name}");
                let content = installed_bytes(&f.dir, &current.file);
                assert_eq!(content, format!("SEBLINUX-base {}", current.version), "{step:?} {same_name}");
                let signature = fs::read_to_string(minisig_path(&f.dir.join(&current.file))).unwrap();
                assert_eq!(signature, format!("sig {}", current.version), "{step:?} {same_name}");
                let other = if current == &v11 { &v10 } else { &v11 };
                if other.file != current.file {
                    assert!(!f.dir.join(&other.file).exists(), "{step:?}: a mix of both versions");
                }
                assert!(recovered.record.pending.is_none());
            }
        }
    }

    /// Everything in the install directory but `.servent`: what is shared.
    fn shared_view(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != STATE_DIR)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_release_waiting_for_its_hook_is_not_shared_and_goes_in_only_when_it_passes() {
        let f = fixture();
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (v10, source) = f.release("1.0", "base-1.0.tar");
        install.install(v10.clone(), &source, "sig 1.0").unwrap();
        let (v11, source) = f.release("1.1", "base-1.1.tar");

        let staged = install.stage_for_hook(v11.clone(), &source, "sig 1.1").unwrap();
        assert_eq!(fs::read_to_string(&staged).unwrap(), "SEBLINUX-base 1.1", "the hook sees the new release");
        assert_eq!(shared_view(&f.dir), ["base-1.0.tar", "base-1.0.tar.minisig"]);
        install.hook_passed().unwrap();
        assert_eq!(shared_view(&f.dir), ["base-1.1.tar", "base-1.1.tar.minisig"]);
        let now = install.get("SEBLINUX-base").unwrap();
        assert_eq!((&now.current, now.previous.as_ref()), (&v11, Some(&v10)));
        install.rollback("SEBLINUX-base").unwrap();
        assert_eq!(installed_bytes(&f.dir, "base-1.0.tar"), "SEBLINUX-base 1.0", "the previous version was kept");
    }

    #[test]
    fn a_failing_hook_or_a_crash_while_it_runs_leaves_the_old_version_and_holds_the_new_back() {
        for crash in [false, true] {
            let f = fixture();
            let mut install = InstallDir::open(&f.dir).unwrap();
            let (v09, source) = f.release("0.9", "base-0.9.tar");
            install.install(v09.clone(), &source, "sig 0.9").unwrap();
            let (v10, source) = f.release("1.0", "base-1.0.tar");
            install.install(v10.clone(), &source, "sig 1.0").unwrap();
            let (v11, source) = f.release("1.1", "base-1.1.tar");
            install.stage_for_hook(v11.clone(), &source, "sig 1.1").unwrap();
            let install = if crash {
                // The servent dies while the hook runs: the record says so.
                drop(install);
                let record = fs::read_to_string(f.dir.join(".servent/installed.json")).unwrap();
                assert!(record.contains("\"awaiting_hook\": true"), "{record}");
                InstallDir::open(&f.dir).unwrap()
            } else {
                install.hook_failed().unwrap();
                install
            };
            let now = install.get("SEBLINUX-base").unwrap();
            assert_eq!(now.current, v10, "crash {crash}");
            assert_eq!(now.previous.as_ref(), Some(&v09), "crash {crash}: the previous version is still kept");
            assert_eq!(now.held_back, ["1.1"], "crash {crash}");
            assert_eq!(shared_view(&f.dir), ["base-1.0.tar", "base-1.0.tar.minisig"], "crash {crash}");
            assert!(fs::read_dir(f.dir.join(".servent/incoming")).unwrap().next().is_none(), "crash {crash}");
            let kept = f.dir.join(".servent/previous/SEBLINUX-base/base-0.9.tar");
            assert_eq!(fs::read_to_string(kept).unwrap(), "SEBLINUX-base 0.9", "crash {crash}");
        }
    }

    #[test]
    fn a_copy_cut_short_in_incoming_is_gone_after_open() {
        let f = fixture();
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (v10, source) = f.release("1.0", "base-1.0.tar");
        install.install(v10.clone(), &source, "sig 1.0").unwrap();
        // A crash while copying, before the change was recorded.
        let incoming = f.dir.join(".servent/incoming");
        fs::write(incoming.join("base-1.1.tar"), "SEBLINUX-ba").unwrap();
        fs::create_dir_all(incoming.join("odd")).unwrap();
        let reopened = InstallDir::open(&f.dir).unwrap();
        assert!(fs::read_dir(&incoming).unwrap().next().is_none());
        assert_eq!(reopened.get("SEBLINUX-base").unwrap().current, v10);
    }

    #[test]
    fn an_install_moves_the_download_and_its_signature_so_one_copy_is_kept() {
        let f = fixture();
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (v10, source) = f.release("1.0", "SEBLINUX-base-1.0.tar");
        fs::write(minisig_path(&source), "sig 1.0").unwrap();
        install.install(v10, &source, "sig 1.0").unwrap();
        assert_eq!(installed_bytes(&f.dir, "SEBLINUX-base-1.0.tar"), "SEBLINUX-base 1.0");
        assert!(!source.exists() && !minisig_path(&source).exists());
        assert!(fs::read_dir(&f.sources).unwrap().next().is_none(), "the downloads folder keeps no copy");
    }

    #[test]
    fn uninstall_removes_the_file_its_signature_its_previous_version_and_its_record() {
        let f = fixture();
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (v10, source) = f.release("1.0", "SEBLINUX-base-1.0.tar");
        install.install(v10, &source, "sig 1.0").unwrap();
        let (v11, source) = f.release("1.1", "SEBLINUX-base-1.1.tar");
        install.install(v11.clone(), &source, "sig 1.1").unwrap();
        let (other, source) = f.release("2.0", "other-2.0.tar");
        let other = Package { name: "other".into(), ..other };
        install.install(other.clone(), &source, "sig other").unwrap();

        let removed = install.uninstall("SEBLINUX-base").unwrap();
        assert_eq!(removed.current, v11);
        let listed: Vec<_> = fs::read_dir(&f.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert!(!install.previous_dir("SEBLINUX-base").exists());
        assert_eq!(InstallDir::open(&f.dir).unwrap().packages(), install.packages());
        assert_eq!(install.packages().len(), 1);
        assert_eq!(installed_bytes(&f.dir, "other-2.0.tar"), "SEBLINUX-base 2.0");
        let again = install.uninstall("SEBLINUX-base").unwrap_err();
        assert!(again.to_string().contains("SEBLINUX-base is not installed"), "{again}");
    }

    #[test]
    fn a_source_that_changed_or_a_bad_name_is_refused_and_nothing_changes() {
        let f = fixture();
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (mut v10, source) = f.release("1.0", "base-1.0.tar");
        let good = v10.clone();
        v10.sha256 = hex(&[0; 32]);
        let err = install.install(v10, &source, "sig").unwrap_err();
        assert!(err.to_string().contains("no longer has the verified content"), "{err}");
        assert_eq!(fs::read_to_string(&source).unwrap(), "SEBLINUX-base 1.0", "the download is left as it was");
        for bad in ["../escape.tar", ".hidden", "a/b", "x.minisig", ""] {
            let package = Package { file: bad.into(), ..good.clone() };
            assert!(install.install(package, &source, "sig").is_err(), "{bad:?}");
        }
        assert!(install.packages().is_empty());
        let listed: Vec<_> = fs::read_dir(&f.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(listed, [".servent"]);
        assert!(fs::read_dir(f.dir.join(".servent/incoming")).unwrap().next().is_none());
        assert!(install.rollback("SEBLINUX-base").is_err());
    }

    #[test]
    fn an_install_directory_that_cannot_be_made_is_a_clear_error() {
        // Beneath a file: refused even to root, unlike permissions.
        let f = fixture();
        let file = f.sources.join("plain-file");
        fs::write(&file, "x").unwrap();
        let err = InstallDir::open(&file.join("opt")).unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot create {}", file.join("opt").display())), "{err}");
    }

    #[test]
    fn a_disk_that_fills_during_an_install_leaves_the_installed_version() {
        let f = fixture();
        fs::create_dir_all(&f.dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&f.dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root); the full-disk path is not tested");
            return;
        }
        let mut install = InstallDir::open(&f.dir).unwrap();
        let (v10, source) = f.release("1.0", "base-1.0.tar");
        install.install(v10.clone(), &source, "sig 1.0").unwrap();
        let big = vec![7u8; 256 * 1024];
        let path = f.sources.join("big.tar");
        fs::write(&path, &big).unwrap();
        let v11 = Package {
            version: "1.1".into(),
            sha256: hex(&Sha256::digest(&big)),
            file: "base-1.1.tar".into(),
            ..v10.clone()
        };
        let err = install.install(v11, &path, "sig 1.1").unwrap_err();
        let on_disk = InstallDir::open(&f.dir).map(|i| i.get("SEBLINUX-base").map(|p| p.current.clone()));
        let content = fs::read_to_string(f.dir.join("base-1.0.tar"));
        let unmounted = std::process::Command::new("umount").arg(&f.dir).status();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(install.get("SEBLINUX-base").unwrap().current, v10);
        assert_eq!(on_disk.unwrap(), Some(v10));
        assert_eq!(content.unwrap(), "SEBLINUX-base 1.0");
        assert!(unmounted.is_ok_and(|s| s.success()));
    }
}
