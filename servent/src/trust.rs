//! Pinned publisher keys, and the verdict on a result or a file.
//!
//! A user pins the publisher's minisign public key (`--trust`), optionally
//! with a *scope*: the release names or keywords that key may publish
//! (`SEBLINUX`). Every signature met later is judged against those keys:
//!
//! - `verified`: signed by a pinned key, within its scope, and the signed
//!   `sha256:` and `size:` are those of the content (of the hit before a
//!   download; of the bytes, with the file signature too, after one);
//! - `fake`: a signature that fails: unreadable, forged or altered under a
//!   pinned key, or release metadata that contradicts the content (a
//!   genuine signature copied beside other bytes);
//! - `untrusted`: a signature by a key we do not pin (or outside its scope,
//!   or without release metadata to bind it to content), whose metadata
//!   does not contradict the content;
//! - `unsigned`: no signature at all.
//!
//! The store is a small JSON file in the data directory, replaced whole and
//! atomically. Judging is pure: no I/O, no clock. The signature formats
//! themselves are `signing-tool`'s.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use signing_tool::{FileCheck, FileVerifier, KeyId, Minisig, PublicKey, Release, VerifyError};

/// Keys a store holds at most.
pub const MAX_TRUSTED_KEYS: usize = 64;
/// Scope entries per key at most, and the longest one.
pub const MAX_SCOPE_ENTRIES: usize = 32;
const MAX_SCOPE_LEN: usize = 128;
/// Largest trust file read.
const MAX_TRUST_FILE: u64 = 256 * 1024;
/// The trust file, in the data directory.
pub const TRUST_FILE: &str = "trust.json";

/// What we think of a result or a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A signature that fails, or that signs other content.
    Fake,
    /// No signature.
    Unsigned,
    /// A signature we cannot vouch for: its key is not pinned (for this).
    Untrusted,
    /// Signed by a pinned key, for this very content.
    Verified,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Fake => "fake",
            Verdict::Unsigned => "unsigned",
            Verdict::Untrusted => "untrusted",
            Verdict::Verified => "verified",
        })
    }
}

/// A verdict with what it rests on, as results and files show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// One sentence saying why.
    pub reason: String,
    /// The id of the key that signed (or claims to have signed), as minisign prints it.
    #[serde(serialize_with = "key_id_text")]
    pub publisher: Option<KeyId>,
    /// The signed release, when its trusted comment has one (verified or not: see `verdict`).
    #[serde(skip)]
    pub release: Option<Release>,
    /// The release's version, for display.
    pub version: Option<String>,
}

fn key_id_text<S: serde::Serializer>(id: &Option<KeyId>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&id.to_string()),
        None => s.serialize_none(),
    }
}

impl Judgement {
    fn new(verdict: Verdict, reason: String, minisig: Option<&Minisig>, release: Option<Release>) -> Judgement {
        let version = release.as_ref().map(|r| r.version.clone());
        Judgement { verdict, reason, publisher: minisig.map(Minisig::key_id), release, version }
    }

    /// The verdict on content that carries no signature.
    pub fn unsigned() -> Judgement {
        Judgement::new(Verdict::Unsigned, "no signature".into(), None, None)
    }

    /// The verdict on a signature that cannot even be read.
    pub fn unreadable(why: &str) -> Judgement {
        Judgement::new(Verdict::Fake, format!("its signature cannot be read: {why}"), None, None)
    }
}

/// What is known of some content when it is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, when known (a hit may lack it).
    pub sha256: Option<[u8; 32]>,
    /// Its Tiger tree root, when known (a hit's bitprint).
    pub tth: Option<search::thex::Root>,
}

/// A pinned key and what it may publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key.
    pub key: PublicKey,
    /// Release names or keywords it may sign, compared without case; empty: anything.
    pub scope: Vec<String>,
}

impl TrustedKey {
    /// Whether `release` is within this key's scope.
    fn covers(&self, release: &Release) -> bool {
        self.scope.is_empty()
            || self.scope.iter().any(|s| {
                s.eq_ignore_ascii_case(&release.name) || release.keywords.iter().any(|k| s.eq_ignore_ascii_case(k))
            })
    }
}

/// How a pinned key is listed and saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Its key id, 16 hex digits.
    pub key_id: String,
    /// The `RW…` line.
    pub key: String,
    /// What it may publish; empty: anything.
    pub scope: Vec<String>,
}

impl From<&TrustedKey> for KeyEntry {
    fn from(trusted: &TrustedKey) -> KeyEntry {
        KeyEntry {
            key_id: trusted.key.key_id().to_string(),
            key: trusted.key.to_base64(),
            scope: trusted.scope.clone(),
        }
    }
}

/// Why the trust store refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The trust file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The trust file is not one this servent wrote.
    #[error("{} is not a trust file: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A key or scope that cannot be pinned.
    #[error("{0}")]
    Refused(String),
}

/// The trust store as the parts of a running servent share it: the broker
/// and the downloads read it, the API changes it.
#[derive(Clone, Debug, Default)]
pub struct SharedTrust(Arc<RwLock<TrustStore>>);

impl SharedTrust {
    /// Shares `store`.
    pub fn new(store: TrustStore) -> SharedTrust {
        SharedTrust(Arc::new(RwLock::new(store)))
    }

    /// The store, to judge with.
    pub fn read(&self) -> RwLockReadGuard<'_, TrustStore> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store, to change.
    pub fn write(&self) -> RwLockWriteGuard<'_, TrustStore> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The keys this servent trusts.
#[derive(Debug, Default)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
    /// Counts changes, so that verdicts kept elsewhere know when they are stale.
    generation: u64,
    /// Where the store is saved; `None` in memory.
    path: Option<PathBuf>,
}

impl TrustStore {
    /// An empty store that is never saved.
    pub fn in_memory() -> TrustStore {
        TrustStore::default()
    }

    /// Opens the store saved at `path`; a missing file is an empty store.
    pub fn open(path: &Path) -> Result<TrustStore, TrustError> {
        let mut store = TrustStore { path: Some(path.to_owned()), ..TrustStore::default() };
        let io = |action, source| TrustError::Io { action, path: path.to_owned(), source };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(io("read", e)),
        };
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(file, MAX_TRUST_FILE), &mut text).map_err(|e| io("read", e))?;
        let corrupt = |why: String| TrustError::Corrupt { path: path.to_owned(), why };
        let entries: Vec<KeyEntry> = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        for entry in entries {
            let key = PublicKey::from_base64(&entry.key).map_err(|e| corrupt(format!("key {}: {e}", entry.key_id)))?;
            store.insert(TrustedKey { key, scope: entry.scope }).map_err(|e| corrupt(e.to_string()))?;
        }
        Ok(store)
    }

    /// Pins `key` with `scope` (replacing the scope of a key pinned before)
    /// and saves the store.
    pub fn add(&mut self, key: PublicKey, scope: Vec<String>) -> Result<KeyEntry, TrustError> {
        let scope: Vec<String> = scope.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        let entry = self.insert(TrustedKey { key, scope })?;
        self.save()?;
        Ok(entry)
    }

    fn insert(&mut self, trusted: TrustedKey) -> Result<KeyEntry, TrustError> {
        if trusted.scope.len() > MAX_SCOPE_ENTRIES || trusted.scope.iter().any(|s| s.len() > MAX_SCOPE_LEN) {
            return Err(TrustError::Refused(format!(
                "a scope has at most {MAX_SCOPE_ENTRIES} entries of at most {MAX_SCOPE_LEN} bytes"
            )));
        }
        let entry = KeyEntry::from(&trusted);
        self.generation += 1;
        let full = self.keys.len() >= MAX_TRUSTED_KEYS;
        match self.keys.iter_mut().find(|k| k.key.key_id() == trusted.key.key_id()) {
            Some(existing) => *existing = trusted,
            None if full => return Err(TrustError::Refused(format!("at most {MAX_TRUSTED_KEYS} keys can be trusted"))),
            None => self.keys.push(trusted),
        }
        Ok(entry)
    }

    /// Unpins the key with this id and saves the store; whether it was pinned.
    pub fn remove(&mut self, id: KeyId) -> Result<bool, TrustError> {
        let before = self.keys.len();
        self.keys.retain(|k| k.key.key_id() != id);
        let removed = self.keys.len() != before;
        if removed {
            self.generation += 1;
            self.save()?;
        }
        Ok(removed)
    }

    /// Changes with every key pinned, unpinned or rescoped.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The pinned keys, as listed.
    pub fn list(&self) -> Vec<KeyEntry> {
        self.keys.iter().map(KeyEntry::from).collect()
    }

    fn save(&self) -> Result<(), TrustError> {
        let Some(path) = &self.path else { return Ok(()) };
        let text = serde_json::to_vec_pretty(&self.list()).map_err(|e| TrustError::Refused(e.to_string()))?;
        crate::config::write_atomically(path, &text).map_err(|source| TrustError::Io {
            action: "write",
            path: path.clone(),
            source,
        })
    }

    fn get(&self, id: KeyId) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key.key_id() == id)
    }

    /// Judges a signature against what is claimed of the content (a search
    /// result, before any download): only the trusted comment is checked.
    pub fn judge(&self, minisig: Option<&Minisig>, content: Content) -> Judgement {
        let Some(minisig) = minisig else { return Judgement::unsigned() };
        self.judge_with(minisig, content, |key| signing_tool::verify_release(key, minisig))
    }

    /// A verifier for the whole file, when its signature's key is pinned:
    /// feed it the bytes, then pass its [`FileCheck`] to [`TrustStore::judge_file`].
    /// It leaves the SHA-256 to the caller, who computes it in the same pass
    /// anyway: give it to [`FileVerifier::finish_with`].
    pub fn file_verifier<'a>(&'a self, minisig: &'a Minisig) -> Option<FileVerifier<'a>> {
        self.get(minisig.key_id()).map(|trusted| FileVerifier::without_sha256(&trusted.key, minisig))
    }

    /// Judges downloaded bytes: `content` is what was hashed, and `check`
    /// the file verification when the key is pinned.
    pub fn judge_file(&self, minisig: Option<&Minisig>, content: Content, check: Option<FileCheck>) -> Judgement {
        let Some(minisig) = minisig else { return Judgement::unsigned() };
        // No check with a pinned key: it was pinned after the bytes were read.
        self.judge_with(minisig, content, |_| check.map_or(Err(VerifyError::Content), |check| check.verdict))
    }

    /// The common rules; `verify` checks the signature under a pinned key.
    fn judge_with(
        &self,
        minisig: &Minisig,
        content: Content,
        verify: impl FnOnce(&PublicKey) -> Result<Release, VerifyError>,
    ) -> Judgement {
        let claimed = Release::parse(minisig.trusted_comment()).ok();
        let fake = |reason: String, release| Judgement::new(Verdict::Fake, reason, Some(minisig), release);
        let untrusted = |reason: String, release| Judgement::new(Verdict::Untrusted, reason, Some(minisig), release);
        if let Some(release) = &claimed {
            if let Some(why) = contradiction(release, content) {
                return fake(why, claimed);
            }
        }
        let id = minisig.key_id();
        let Some(trusted) = self.get(id) else {
            return untrusted(format!("signed by key {id}, which is not trusted"), claimed);
        };
        let release = match verify(&trusted.key) {
            Ok(release) => release,
            Err(VerifyError::NotARelease(_)) => {
                return untrusted(format!("signed by trusted key {id} but without release metadata"), None);
            }
            Err(e) => return fake(format!("does not verify with trusted key {id}: {e}"), claimed),
        };
        if !trusted.covers(&release) {
            let scope = trusted.scope.join(", ");
            return untrusted(format!("key {id} is trusted only for {scope}, not for {}", release.name), Some(release));
        }
        if content.sha256.is_none() {
            return untrusted("the result gives no urn:sha256 to check its signature against".into(), Some(release));
        }
        let reason = format!("{} {} signed by trusted key {id}", release.name, release.version);
        Judgement::new(Verdict::Verified, reason, Some(minisig), Some(release))
    }
}

/// How signed metadata contradicts the content, if it does.
fn contradiction(release: &Release, content: Content) -> Option<String> {
    if release.size != content.size {
        return Some(format!("signed for {} bytes, but this is {} bytes", release.size, content.size));
    }
    if let Some(sha256) = content.sha256.filter(|sha256| *sha256 != release.sha256) {
        return Some(format!(
            "signed for other content ({}), not this one ({})",
            search::Urn::Sha256(release.sha256),
            search::Urn::Sha256(sha256)
        ));
    }
    let tth = release.tth.zip(content.tth).filter(|(signed, tth)| signed != tth);
    tth.map(|(signed, tth)| format!("signed for Tiger tree {signed}, not this one ({tth})"))
}

#[cfg(test)]
mod tests {
    use signing_tool::{ReleaseMeta, SecretKey, Signer};

    use super::*;

    const GENUINE: &[u8] = b"SEBLINUX base system 1.0";

    struct Publisher {
        key: SecretKey,
    }

    impl Publisher {
        fn new() -> Publisher {
            Publisher { key: SecretKey::generate().unwrap() }
        }

        fn sign(&self, content: &[u8], name: &str, keywords: &[&str]) -> Minisig {
            let mut signer = Signer::new();
            signer.update(content);
            let meta = ReleaseMeta {
                name: name.into(),
                version: "1.0".into(),
                keywords: keywords.iter().map(|k| k.to_string()).collect(),
            };
            signer.finish(&self.key, "SEBLINUX-base-1.0.tar", Some(&meta), 1_700_000_000).unwrap()
        }

        fn public(&self) -> PublicKey {
            self.key.public_key()
        }
    }

    fn content(bytes: &[u8]) -> Content {
        use sha2::Digest;
        let tth = search::hash_reader(bytes).unwrap().0.tth;
        Content { size: bytes.len() as u64, sha256: Some(sha2::Sha256::digest(bytes).into()), tth: Some(tth) }
    }

    fn store(publisher: &Publisher, scope: &[&str]) -> TrustStore {
        let mut store = TrustStore::in_memory();
        store.add(publisher.public(), scope.iter().map(|s| s.to_string()).collect()).unwrap();
        store
    }

    #[test]
    fn genuine_release_by_a_trusted_key_is_verified() {
        let publisher = Publisher::new();
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX"]);
        let judgement = store(&publisher, &[]).judge(Some(&minisig), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Verified, "{judgement:?}");
        assert_eq!(judgement.publisher, Some(publisher.key.key_id()));
        assert_eq!(judgement.version.as_deref(), Some("1.0"));
        assert_eq!(judgement.release.unwrap().name, "SEBLINUX-base");
    }

    #[test]
    fn genuine_signature_copied_beside_other_bytes_is_fake_trusted_or_not() {
        let publisher = Publisher::new();
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &[]);
        let other = b"SEBLINUX base system 1.0 with malware";
        for store in [store(&publisher, &[]), TrustStore::in_memory()] {
            let judgement = store.judge(Some(&minisig), content(other));
            assert_eq!(judgement.verdict, Verdict::Fake, "{judgement:?}");
            assert!(judgement.reason.contains("signed for"), "{}", judgement.reason);
        }
        // Same size, other bytes: the SHA-256 tells.
        let same_size = b"SEBLINUX base system 9.9";
        let judgement = store(&publisher, &[]).judge(Some(&minisig), content(same_size));
        assert!(judgement.verdict == Verdict::Fake && judgement.reason.contains("other content"), "{judgement:?}");
    }

    #[test]
    fn signature_by_another_key_is_untrusted() {
        let (publisher, rival) = (Publisher::new(), Publisher::new());
        let minisig = rival.sign(GENUINE, "SEBLINUX-base", &[]);
        let judgement = store(&publisher, &[]).judge(Some(&minisig), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Untrusted);
        assert_eq!(judgement.publisher, Some(rival.key.key_id()));
        assert!(judgement.reason.contains("not trusted"), "{}", judgement.reason);
    }

    #[test]
    fn tampered_trusted_comment_under_a_trusted_key_is_fake() {
        let publisher = Publisher::new();
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &[]);
        let text = minisig.to_text().replace("version:1.0", "version:9.0");
        let tampered = Minisig::parse(text.as_bytes()).unwrap();
        let judgement = store(&publisher, &[]).judge(Some(&tampered), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Fake, "{judgement:?}");
        assert!(judgement.reason.contains("does not verify"), "{}", judgement.reason);
    }

    #[test]
    fn legacy_signature_under_a_trusted_key_is_fake_and_never_verified() {
        let publisher = Publisher::new();
        let mut compact = publisher.sign(GENUINE, "SEBLINUX-base", &[]).to_compact();
        compact[1] = b'd';
        let legacy = Minisig::from_compact(&compact).unwrap();
        let judgement = store(&publisher, &[]).judge(Some(&legacy), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Fake, "{judgement:?}");
        assert!(judgement.reason.contains("legacy"), "{}", judgement.reason);
        let check =
            store(&publisher, &[]).file_verifier(&legacy).map(|v| v.finish_with(content(GENUINE).sha256.unwrap()));
        assert!(check.is_some_and(|c| c.verdict.is_err()));
    }

    #[test]
    fn no_signature_is_unsigned_and_a_hit_without_sha256_cannot_be_verified() {
        let publisher = Publisher::new();
        let store = store(&publisher, &[]);
        assert_eq!(store.judge(None, content(GENUINE)).verdict, Verdict::Unsigned);
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &[]);
        let without = Content { sha256: None, ..content(GENUINE) };
        assert_eq!(store.judge(Some(&minisig), without).verdict, Verdict::Untrusted);
    }

    #[test]
    fn a_hit_whose_tiger_tree_contradicts_the_signed_tth_is_fake() {
        let publisher = Publisher::new();
        let store = store(&publisher, &[]);
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &[]);
        assert_eq!(store.judge(Some(&minisig), content(GENUINE)).verdict, Verdict::Verified);
        let lying = Content { tth: Some(search::thex::Root([3; 24])), ..content(GENUINE) };
        let judgement = store.judge(Some(&minisig), lying);
        assert_eq!(judgement.verdict, Verdict::Fake);
        assert!(judgement.reason.contains("Tiger tree"), "{}", judgement.reason);
    }

    #[test]
    fn scope_limits_what_a_key_may_publish() {
        let publisher = Publisher::new();
        let store = store(&publisher, &["seblinux"]);
        let inside = publisher.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX"]);
        assert_eq!(store.judge(Some(&inside), content(GENUINE)).verdict, Verdict::Verified);
        let outside = publisher.sign(GENUINE, "other-distro", &["OTHER"]);
        let judgement = store.judge(Some(&outside), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Untrusted);
        assert!(judgement.reason.contains("trusted only for seblinux"), "{}", judgement.reason);
    }

    #[test]
    fn whole_file_check_verifies_genuine_bytes_and_flags_others() {
        let publisher = Publisher::new();
        let store = store(&publisher, &[]);
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &[]);
        let check = |bytes: &[u8]| {
            let mut verifier = store.file_verifier(&minisig).unwrap();
            verifier.update(bytes);
            let check = verifier.finish_with(content(bytes).sha256.unwrap());
            store.judge_file(Some(&minisig), content(bytes), Some(check))
        };
        assert_eq!(check(GENUINE).verdict, Verdict::Verified);
        assert_eq!(check(&GENUINE[..10]).verdict, Verdict::Fake);
        assert!(TrustStore::in_memory().file_verifier(&minisig).is_none());
    }

    #[test]
    fn store_survives_a_reopen_and_refuses_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUST_FILE);
        let publisher = Publisher::new();
        let mut store = TrustStore::open(&path).unwrap();
        let entry = store.add(publisher.public(), vec!["SEBLINUX".into(), " ".into()]).unwrap();
        assert_eq!(entry.scope, ["SEBLINUX"]);
        assert_eq!(entry.key_id, publisher.key.key_id().to_string());
        let reopened = TrustStore::open(&path).unwrap();
        assert_eq!(reopened.list(), [entry]);
        let mut reopened = reopened;
        assert!(reopened.remove(publisher.key.key_id()).unwrap());
        assert!(!reopened.remove(publisher.key.key_id()).unwrap());
        assert!(TrustStore::open(&path).unwrap().list().is_empty());
        std::fs::write(&path, "[{\"key_id\":\"x\",\"key\":\"RWnotakey\",\"scope\":[]}]").unwrap();
        assert!(matches!(TrustStore::open(&path), Err(TrustError::Corrupt { .. })));
    }
}
