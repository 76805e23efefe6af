//! Pinned publisher keys, and the verdict on a result or a file.
//!
//! A user pins the publisher's minisign public key (`--trust`), optionally
//! with a *scope*: the package names that key may publish. A scope entry is
//! an exact name (`SEBLINUX-base`) or a prefix ending in `*`
//! (`SEBLINUX-extras*`), compared without case against the **signed**
//! `name:` of a release, never against its keywords, which the signer
//! chooses freely and which only help search. A key with no scope may sign
//! any name that no other pinned key's scope claims: pinning a second key for
//! `SEBLINUX-extras*` takes those names away from every unscoped key, and
//! gives that key nothing else. Scoped keys whose scopes overlap may both
//! sign the names they share: the user pinned both for them.
//!
//! Every signature met later is judged against those keys:
//!
//! - `verified`: signed by a pinned key, within its scope, and the signed
//!   `sha256:` and `size:` are those of the content (of the hit before a
//!   download; of the bytes, with the file signature too, after one);
//! - `fake`: a signature that fails: unreadable, forged or altered under a
//!   pinned key, or release metadata that contradicts the content (a
//!   genuine signature copied beside other bytes);
//! - `untrusted`: a signature by a key we do not pin (or outside its scope,
//!   or for a name another key's scope claims, or without release metadata
//!   to bind it to content), whose metadata
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
use signing_tool::{FileCheck, FileVerifier, KeyId, Minisig, PublicKey, Release, Rotation, VerifyError};

/// Keys a store holds at most.
pub const MAX_TRUSTED_KEYS: usize = 64;
/// Scope entries per key at most.
pub const MAX_SCOPE_ENTRIES: usize = 32;
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
}

/// A pinned key and what it may publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key.
    pub key: PublicKey,
    /// Package names it may sign: exact names or prefixes ending in `*`,
    /// compared without case (see the module documentation); empty: any
    /// name no other key's scope claims.
    pub scope: Vec<String>,
}

impl TrustedKey {
    /// Whether this key's scope names the package `name` (never true for an empty scope).
    pub fn claims(&self, name: &str) -> bool {
        self.scope.iter().any(|entry| scope_matches(entry, name))
    }
}

/// Whether the scope entry `entry` (an exact name, or a prefix ending in
/// `*`) names the package `name`, without case: the rule rotation records
/// use too ([`signing_tool::rotation::name_matches`]). An entry that is not
/// a name pattern (a trust file written before scopes were names may hold
/// one, such as `*`) names nothing: an old scope never widens.
pub fn scope_matches(entry: &str, name: &str) -> bool {
    check_scope_entry(entry).is_ok() && signing_tool::rotation::name_matches(entry, name)
}

/// Checks one scope entry: a package name, or a prefix of one followed by
/// a single final `*`; no white space, commas, `#` or control characters.
pub fn check_scope_entry(entry: &str) -> Result<(), String> {
    signing_tool::rotation::check_name(entry).map_err(|why| match entry {
        "*" => format!("scope {entry:?}: a scope of every name is no scope: pin the key without one"),
        _ => format!("scope {entry:?}: {why}"),
    })
}

/// How a pinned key is listed and saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Its key id, 16 hex digits.
    pub key_id: String,
    /// The `RW…` line.
    pub key: String,
    /// The package names it may publish (exact, or prefixes ending in `*`);
    /// empty: any name no other key's scope claims.
    pub scope: Vec<String>,
    /// How it came to be pinned, when not by the user: the rotation record
    /// that handed packages over to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&TrustedKey> for KeyEntry {
    fn from(trusted: &TrustedKey) -> KeyEntry {
        KeyEntry {
            key_id: trusted.key.key_id().to_string(),
            key: trusted.key.to_base64(),
            scope: trusted.scope.clone(),
            note: None,
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
    /// Notes on keys pinned by a rotation record, by key.
    notes: Vec<(KeyId, String)>,
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
            if let Some(note) = entry.note {
                store.notes.push((key.key_id(), note));
            }
            store.insert(TrustedKey { key, scope: entry.scope }).map_err(|e| corrupt(e.to_string()))?;
        }
        Ok(store)
    }

    /// Pins `key` with `scope` (replacing the scope of a key pinned before)
    /// and saves the store.
    pub fn add(&mut self, key: PublicKey, scope: Vec<String>) -> Result<KeyEntry, TrustError> {
        let scope: Vec<String> = scope.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        for entry in &scope {
            check_scope_entry(entry).map_err(TrustError::Refused)?;
        }
        let id = key.key_id();
        let entry = self.insert(TrustedKey { key, scope })?;
        self.notes.retain(|(key, _)| *key != id);
        self.save()?;
        Ok(entry)
    }

    fn insert(&mut self, trusted: TrustedKey) -> Result<KeyEntry, TrustError> {
        if trusted.scope.len() > MAX_SCOPE_ENTRIES {
            return Err(TrustError::Refused(format!("a scope has at most {MAX_SCOPE_ENTRIES} entries")));
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

    /// Pins the new key of a verified rotation for the names it hands over
    /// (added to the key's scope if it is pinned with one already; a key
    /// pinned without a scope keeps none), notes the rotation, and saves.
    pub fn honour_rotation(&mut self, rotation: &Rotation) -> Result<KeyEntry, TrustError> {
        let id = rotation.to.key_id();
        let scope = match self.get(id) {
            Some(pinned) if pinned.scope.is_empty() => Vec::new(),
            pinned => {
                let mut scope = pinned.map(|p| p.scope.clone()).unwrap_or_default();
                for name in &rotation.names {
                    if !scope.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                        scope.push(name.clone());
                    }
                }
                scope
            }
        };
        let note = format!(
            "pinned by a rotation record of key {} for {} (signed at {})",
            rotation.from,
            rotation.names.join(", "),
            rotation.timestamp
        );
        self.insert(TrustedKey { key: rotation.to.clone(), scope })?;
        self.notes.retain(|(key, _)| *key != id);
        self.notes.push((id, note));
        self.save()?;
        Ok(self.entry(id).expect("just pinned"))
    }

    /// Unpins the key with this id and saves the store; whether it was pinned.
    pub fn remove(&mut self, id: KeyId) -> Result<bool, TrustError> {
        let before = self.keys.len();
        self.keys.retain(|k| k.key.key_id() != id);
        self.notes.retain(|(key, _)| *key != id);
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
        self.keys.iter().filter_map(|k| self.entry(k.key.key_id())).collect()
    }

    fn entry(&self, id: KeyId) -> Option<KeyEntry> {
        let note = self.notes.iter().find(|(key, _)| *key == id).map(|(_, note)| note.clone());
        self.get(id).map(|trusted| KeyEntry { note, ..KeyEntry::from(trusted) })
    }

    fn save(&self) -> Result<(), TrustError> {
        let Some(path) = &self.path else { return Ok(()) };
        let text = serde_json::to_vec_pretty(&self.list()).map_err(|e| TrustError::Refused(e.to_string()))?;
        crate::disk::write_atomically(path, &text).map_err(|source| TrustError::Io {
            action: "write",
            path: path.clone(),
            source,
        })
    }

    /// The pinned key with this id, if any.
    pub fn pinned(&self, id: KeyId) -> Option<&PublicKey> {
        self.get(id).map(|trusted| &trusted.key)
    }

    /// Which other pinned key's scope claims the package `name`, said for a reason.
    fn owner_text(&self, name: &str, signer: KeyId) -> Option<String> {
        let owner = self.keys.iter().find(|k| k.key.key_id() != signer && k.claims(name))?;
        Some(format!("{name} is in the scope of key {} ({})", owner.key.key_id(), owner.scope.join(", ")))
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
            let owner = claimed.as_ref().and_then(|release| self.owner_text(&release.name, id));
            let owner = owner.map(|o| format!("; {o}")).unwrap_or_default();
            return untrusted(format!("signed by key {id}, which is not trusted{owner}"), claimed);
        };
        let release = match verify(&trusted.key) {
            Ok(release) => release,
            Err(VerifyError::NotARelease(_)) => {
                return untrusted(format!("signed by trusted key {id} but without release metadata"), None);
            }
            Err(e) => return fake(format!("does not verify with trusted key {id}: {e}"), claimed),
        };
        if !trusted.scope.is_empty() && !trusted.claims(&release.name) {
            let scope = trusted.scope.join(", ");
            return untrusted(format!("key {id} is trusted only for {scope}, not for {}", release.name), Some(release));
        }
        if trusted.scope.is_empty() {
            if let Some(owner) = self.owner_text(&release.name, id) {
                return untrusted(format!("{owner}, not of key {id} that signed it"), Some(release));
            }
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
    match content.sha256 {
        Some(sha256) if sha256 != release.sha256 => Some(format!(
            "signed for other content ({}), not this one ({})",
            search::Urn::Sha256(release.sha256),
            search::Urn::Sha256(sha256)
        )),
        _ => None,
    }
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
        Content { size: bytes.len() as u64, sha256: Some(sha2::Sha256::digest(bytes).into()) }
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
    fn scope_limits_what_a_key_may_publish() {
        let publisher = Publisher::new();
        let store = store(&publisher, &["seblinux*"]);
        let inside = publisher.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX"]);
        assert_eq!(store.judge(Some(&inside), content(GENUINE)).verdict, Verdict::Verified);
        let outside = publisher.sign(GENUINE, "other-distro", &["OTHER"]);
        let judgement = store.judge(Some(&outside), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Untrusted);
        assert!(judgement.reason.contains("trusted only for seblinux*"), "{}", judgement.reason);
    }

    #[test]
    fn scope_is_matched_against_the_signed_name_never_the_keywords() {
        let publisher = Publisher::new();
        let store = store(&publisher, &["SEBLINUX"]);
        // An old keyword scope: the keyword no longer lets anything in.
        let by_keyword = publisher.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX"]);
        let judgement = store.judge(Some(&by_keyword), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Untrusted, "{judgement:?}");
        let exact = publisher.sign(GENUINE, "seblinux", &[]);
        assert_eq!(store.judge(Some(&exact), content(GENUINE)).verdict, Verdict::Verified);
    }

    /// The issue's repro: a second key pinned only for `SEBLINUX-extras*`
    /// signs `SEBLINUX-base` with the keyword `SEBLINUX-extras`.
    #[test]
    fn key_pinned_for_extras_cannot_sign_base_whatever_its_keywords() {
        let (publisher, extras) = (Publisher::new(), Publisher::new());
        let mut store = store(&publisher, &[]);
        store.add(extras.public(), vec!["SEBLINUX-extras*".into()]).unwrap();
        let escape = extras.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX-extras"]);
        let judgement = store.judge(Some(&escape), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Untrusted, "{judgement:?}");
        assert!(judgement.reason.contains("trusted only for SEBLINUX-extras*"), "{}", judgement.reason);
        let genuine = publisher.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX"]);
        assert_eq!(store.judge(Some(&genuine), content(GENUINE)).verdict, Verdict::Verified);
        let games = extras.sign(GENUINE, "SEBLINUX-extras-games", &[]);
        assert_eq!(store.judge(Some(&games), content(GENUINE)).verdict, Verdict::Verified);
    }

    #[test]
    fn unscoped_key_cannot_sign_a_name_another_keys_scope_claims() {
        let (publisher, extras) = (Publisher::new(), Publisher::new());
        let mut store = store(&publisher, &[]);
        store.add(extras.public(), vec!["SEBLINUX-extras*".into()]).unwrap();
        let taken = publisher.sign(GENUINE, "seblinux-EXTRAS-games", &[]);
        let judgement = store.judge(Some(&taken), content(GENUINE));
        assert_eq!(judgement.verdict, Verdict::Untrusted, "{judgement:?}");
        let expected = format!("in the scope of key {} (SEBLINUX-extras*)", extras.key.key_id());
        assert!(judgement.reason.contains(&expected), "{}", judgement.reason);
        // An unpinned key signing a claimed name is told whose it is, too.
        let stranger = Publisher::new().sign(GENUINE, "SEBLINUX-extras-games", &[]);
        let judgement = store.judge(Some(&stranger), content(GENUINE));
        assert!(judgement.reason.contains(&expected), "{}", judgement.reason);
    }

    #[test]
    fn scope_entries_are_names_or_prefixes_and_nothing_else() {
        assert!(scope_matches("SEBLINUX-extras*", "SEBLINUX-extras"));
        assert!(scope_matches("SEBLINUX-extras*", "seblinux-extras-games"));
        assert!(!scope_matches("SEBLINUX-extras*", "SEBLINUX-extra"));
        assert!(scope_matches("SEBLINUX-base", "seblinux-BASE"));
        assert!(!scope_matches("SEBLINUX-base", "SEBLINUX-base-dev"));
        assert!(!scope_matches("é*", "e"));
        for good in ["SEBLINUX-base", "SEBLINUX-extras*", "a*"] {
            assert!(check_scope_entry(good).is_ok(), "{good}");
        }
        for bad in ["*", "SEB*LINUX", "SEB**", "two words", "a,b", "a#b", "tab\t", &"x".repeat(200)] {
            assert!(check_scope_entry(bad).is_err(), "{bad:?}");
        }
        let refused = TrustStore::in_memory().add(Publisher::new().public(), vec!["SEB*LINUX".into()]);
        assert!(matches!(refused, Err(TrustError::Refused(why)) if why.contains("SEB*LINUX")));
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
    fn an_honoured_rotation_pins_the_new_key_for_its_names_with_a_note_that_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUST_FILE);
        let (old, new) = (Publisher::new(), Publisher::new());
        let mut store = TrustStore::open(&path).unwrap();
        store.add(old.public(), vec!["SEBLINUX*".into()]).unwrap();
        let names = vec!["SEBLINUX-base".to_string()];
        let (_, text, minisig) = Rotation::sign(&old.key, &new.public(), &names, 7).unwrap();
        let rotation = Rotation::verify(&old.public(), &minisig, text.as_bytes()).unwrap();
        let entry = store.honour_rotation(&rotation).unwrap();
        assert_eq!(entry.scope, ["SEBLINUX-base"]);
        assert!(entry.note.as_deref().unwrap().contains(&format!("rotation record of key {}", old.key.key_id())));
        assert_eq!(TrustStore::open(&path).unwrap().list(), store.list());
        let release = new.sign(GENUINE, "SEBLINUX-base", &[]);
        assert_eq!(store.judge(Some(&release), content(GENUINE)).verdict, Verdict::Verified);
        let other = new.sign(GENUINE, "SEBLINUX-doc", &[]);
        assert_eq!(store.judge(Some(&other), content(GENUINE)).verdict, Verdict::Untrusted);
        // The user pinning the key himself drops the note.
        assert_eq!(store.add(new.public(), vec![]).unwrap().note, None);
        assert_eq!(store.list()[1].note, None);
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
        // A file from before scopes were names opens; its odd entries name nothing.
        let old =
            format!(r#"[{{"key_id":"x","key":"{}","scope":["*","SEBLINUX base"]}}]"#, publisher.public().to_base64());
        std::fs::write(&path, old).unwrap();
        let opened = TrustStore::open(&path).unwrap();
        let minisig = publisher.sign(GENUINE, "SEBLINUX-base", &["SEBLINUX"]);
        assert_eq!(opened.judge(Some(&minisig), content(GENUINE)).verdict, Verdict::Untrusted);
        std::fs::write(&path, "[{\"key_id\":\"x\",\"key\":\"RWnotakey\",\"scope\":[]}]").unwrap();
        assert!(matches!(TrustStore::open(&path), Err(TrustError::Corrupt { .. })));
    }
}
