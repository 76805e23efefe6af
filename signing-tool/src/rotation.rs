//! Key rotation records: a publisher's old key hands some packages over to a new key.
//!
//! A user's servent binds each installed package to the key that signed it and refuses a
//! release by any other key. When a publisher changes keys, it says so with a *rotation
//! record*, TUF's root rotation for a network without servers: a small file that is the new
//! public key itself (minisign's `.pub` text), signed by the **old** key, whose trusted comment
//! names the old key, the new key and the packages handed over:
//!
//! ```text
//! KEYROTATION-<OLD KEY ID>-<NEW KEY ID>.pub           the new key, as minisign -G writes it
//! KEYROTATION-<OLD KEY ID>-<NEW KEY ID>.pub.minisig   signed by the old key:
//! trusted comment: timestamp:1700000000⇥file:KEYROTATION-….pub⇥rotation:<OLD KEY ID>⇥new-key:RW…⇥names:SEBLINUX-base,SEBLINUX-extras*
//! ```
//!
//! (`⇥` is a TAB.) `minisign -Vm KEYROTATION-….pub -p old.pub` checks it. Names are exact
//! package names or prefixes ending in `*`, as in a servent's key scopes. The record is shared
//! like any file; its name carries the word [`ROTATION_KEYWORD`] and the old key id, so a
//! servent finds the records of a key by searching for both.
//!
//! A record is honoured only if ([`Rotation::verify`]): the signature is the old key's (a
//! record signed by the new key alone proves nothing), it holds for the trusted comment and the
//! file, its `rotation:` field names that same old key, its `new-key:` is the key in the file
//! and differs from the old one, and its names are well formed. Whether it covers a package is
//! [`Rotation::covers`]: a record for `SEBLINUX-doc` replayed for `SEBLINUX-base` does not.

use blake2::{Blake2b512, Digest};

use crate::error::{FormatError, VerifyError};
use crate::key::{KeyId, PublicKey, SecretKey};
use crate::minisig::Minisig;
use crate::sign::sign_prehashed;
use crate::verify::FileVerifier;

/// The word every rotation record's file name starts with: what a servent searches for.
pub const ROTATION_KEYWORD: &str = "KEYROTATION";
/// Names one record hands over at most, and the longest one.
pub const MAX_ROTATION_NAMES: usize = 32;
const MAX_NAME_LEN: usize = 128;
/// The largest rotation record file read (a `.pub` file is under 200 bytes).
pub const MAX_ROTATION_FILE_BYTES: u64 = 1024;

/// A verified rotation: `from` hands `names` over to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The old key, which signed the record.
    pub from: KeyId,
    /// The new key.
    pub to: PublicKey,
    /// The package names handed over: exact, or prefixes ending in `*`.
    pub names: Vec<String>,
    /// When the record was signed (seconds since the Unix epoch).
    pub timestamp: u64,
}

/// Why a rotation record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// It is signed by another key than the one it must come from.
    #[error("signed by key {signer}, not by key {expected}: only the old key can hand its packages over")]
    WrongSigner {
        /// The key that signed it.
        signer: KeyId,
        /// The old key it had to be signed by.
        expected: KeyId,
    },
    /// The signature does not hold.
    #[error("its signature does not hold: {0}")]
    Signature(VerifyError),
    /// The record is not well formed.
    #[error("not a rotation record: {0}")]
    Format(String),
    /// It does not name the package.
    #[error("it hands over {names}, not {name}")]
    NotCovered {
        /// What it names.
        names: String,
        /// The package asked about.
        name: String,
    },
}

impl Rotation {
    /// The file name of the record handing `from`'s packages to `to`.
    pub fn file_name(from: KeyId, to: KeyId) -> String {
        format!("{ROTATION_KEYWORD}-{from}-{to}.pub")
    }

    /// The query that finds the records of key `from`.
    pub fn query(from: KeyId) -> String {
        format!("{ROTATION_KEYWORD} {from}")
    }

    /// Makes the record by which `old` hands `names` to `new`, signed at `timestamp`: the
    /// file's name, its text (the new public key) and its signature.
    pub fn sign(
        old: &SecretKey,
        new: &PublicKey,
        names: &[String],
        timestamp: u64,
    ) -> Result<(String, String, Minisig), FormatError> {
        let bad = |reason: &'static str| FormatError::BadField { field: "names", reason };
        if names.is_empty() {
            return Err(bad("a rotation hands over at least one package name"));
        }
        if names.len() > MAX_ROTATION_NAMES {
            return Err(bad("a rotation hands over at most 32 package names"));
        }
        for name in names {
            check_name(name).map_err(bad)?;
        }
        if new.key_id() == old.key_id() {
            return Err(FormatError::BadField { field: "new-key", reason: "it is the old key" });
        }
        let file = Rotation::file_name(old.key_id(), new.key_id());
        let text = new.to_file_text();
        let comment = format!(
            "timestamp:{timestamp}\tfile:{file}\trotation:{}\tnew-key:{}\tnames:{}",
            old.key_id(),
            new.to_base64(),
            names.join(",")
        );
        let minisig = sign_prehashed(old, &Blake2b512::digest(text.as_bytes()).into(), &comment)?;
        Ok((file, text, minisig))
    }

    /// Checks the record `file` (its bytes) with its signature `minisig` as coming from the
    /// old key `from`, and reads it.
    pub fn verify(from: &PublicKey, minisig: &Minisig, file: &[u8]) -> Result<Rotation, RotationError> {
        if minisig.key_id() != from.key_id() {
            return Err(RotationError::WrongSigner { signer: minisig.key_id(), expected: from.key_id() });
        }
        let mut verifier = FileVerifier::new(from, minisig);
        verifier.update(file);
        match verifier.finish().verdict {
            Ok(_) | Err(VerifyError::NotARelease(_)) => {}
            Err(e) => return Err(RotationError::Signature(e)),
        }
        let rotation = Rotation::parse(minisig.trusted_comment()).map_err(RotationError::Format)?;
        if rotation.from != from.key_id() {
            return Err(RotationError::Format(format!("it names key {} as the old key", rotation.from)));
        }
        let in_file = std::str::from_utf8(file)
            .ok()
            .and_then(|text| PublicKey::parse(text).ok())
            .ok_or_else(|| RotationError::Format("its file is not a public key".into()))?;
        if in_file != rotation.to {
            return Err(RotationError::Format("its file holds another key than its new-key:".into()));
        }
        Ok(rotation)
    }

    /// Reads the fields of a rotation record's trusted comment (not verified: see [`Rotation::verify`]).
    pub fn parse(comment: &str) -> Result<Rotation, String> {
        let (mut timestamp, mut from, mut to, mut names) = (None, None, None, None);
        for item in comment.split('\t') {
            let Some((key, value)) = item.split_once(':') else { continue };
            let slot = match key {
                "timestamp" => &mut timestamp,
                "rotation" => &mut from,
                "new-key" => &mut to,
                "names" => &mut names,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(format!("{key}: given twice"));
            }
        }
        let missing = |field: &str| format!("no {field}: field");
        let from: KeyId = from.ok_or_else(|| missing("rotation"))?.parse().map_err(|e| format!("rotation: {e}"))?;
        let to = PublicKey::from_base64(to.ok_or_else(|| missing("new-key"))?).map_err(|e| format!("new-key: {e}"))?;
        if to.key_id() == from {
            return Err("its new key is the old key".into());
        }
        let names: Vec<String> = names.ok_or_else(|| missing("names"))?.split(',').map(str::to_owned).collect();
        if names.len() > MAX_ROTATION_NAMES {
            return Err(format!("names: more than {MAX_ROTATION_NAMES}"));
        }
        for name in &names {
            check_name(name).map_err(|why| format!("names: {name:?}: {why}"))?;
        }
        let timestamp = timestamp.ok_or_else(|| missing("timestamp"))?;
        let timestamp = match timestamp.bytes().all(|b| b.is_ascii_digit()) {
            true => timestamp.parse().map_err(|_| "timestamp: too large".to_owned())?,
            false => return Err("timestamp: not a decimal number".into()),
        };
        Ok(Rotation { from, to, names, timestamp })
    }

    /// Whether this rotation hands over the package `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|pattern| name_matches(pattern, name))
    }

    /// [`Rotation::covers`], as a refusal saying what it does cover.
    pub fn check_covers(&self, name: &str) -> Result<(), RotationError> {
        match self.covers(name) {
            true => Ok(()),
            false => Err(RotationError::NotCovered { names: self.names.join(", "), name: name.to_owned() }),
        }
    }
}

/// Whether `pattern` (an exact package name, or a prefix ending in `*`) names `name`, without
/// case: the rule of rotation records and of a servent's key scopes.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// A package name or prefix: no white space, commas, `#` or control characters, `*` only at
/// the end and never alone.
pub fn check_name(pattern: &str) -> Result<(), &'static str> {
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    if pattern.len() > MAX_NAME_LEN {
        Err("longer than 128 bytes")
    } else if prefix.is_empty() {
        Err("a pattern of every name")
    } else if prefix.contains('*') {
        Err("`*` may only end a prefix (SEBLINUX-extras*)")
    } else if prefix.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '#') {
        Err("a package name has no white space, commas or `#`")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_record_signed_by_the_old_key_verifies_and_reads_back() {
        let (old, new) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        let (file, text, minisig) =
            Rotation::sign(&old, &new.public_key(), &names(&["SEBLINUX-base", "SEBLINUX-extras*"]), 7).unwrap();
        assert_eq!(file, format!("KEYROTATION-{}-{}.pub", old.key_id(), new.key_id()));
        let rotation = Rotation::verify(&old.public_key(), &minisig, text.as_bytes()).unwrap();
        assert_eq!((rotation.from, &rotation.to, rotation.timestamp), (old.key_id(), &new.public_key(), 7));
        assert!(rotation.covers("seblinux-base") && rotation.covers("SEBLINUX-extras-games"));
        assert!(!rotation.covers("SEBLINUX-doc"));
        // It survives the trip through minisign's text format.
        let reparsed = Minisig::parse(minisig.to_text().as_bytes()).unwrap();
        assert_eq!(Rotation::verify(&old.public_key(), &reparsed, text.as_bytes()).unwrap(), rotation);
    }

    #[test]
    fn a_record_signed_by_the_new_key_only_is_refused() {
        let (old, new) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        // The new key signs a record claiming to come from the old one.
        let (_, text, forged) = Rotation::sign(&new, &old.public_key(), &names(&["SEBLINUX-base"]), 7).unwrap();
        let err = Rotation::verify(&old.public_key(), &forged, text.as_bytes()).unwrap_err();
        assert!(matches!(err, RotationError::WrongSigner { .. }), "{err}");
        // Its comment edited to say otherwise: the global signature tells.
        let (_, text, genuine) = Rotation::sign(&old, &new.public_key(), &names(&["SEBLINUX-doc"]), 7).unwrap();
        let edited = genuine.to_text().replace("names:SEBLINUX-doc", "names:SEBLINUX-base");
        let edited = Minisig::parse(edited.as_bytes()).unwrap();
        let err = Rotation::verify(&old.public_key(), &edited, text.as_bytes()).unwrap_err();
        assert!(matches!(err, RotationError::Signature(_)), "{err}");
        // Another key in the file than in the comment.
        let other = SecretKey::generate().unwrap().public_key().to_file_text();
        let err = Rotation::verify(&old.public_key(), &genuine, other.as_bytes()).unwrap_err();
        assert!(matches!(err, RotationError::Signature(_)), "{err}");
    }

    #[test]
    fn a_record_for_one_package_does_not_cover_another() {
        let (old, new) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        let (_, text, minisig) = Rotation::sign(&old, &new.public_key(), &names(&["SEBLINUX-doc"]), 7).unwrap();
        let rotation = Rotation::verify(&old.public_key(), &minisig, text.as_bytes()).unwrap();
        let err = rotation.check_covers("SEBLINUX-base").unwrap_err();
        assert_eq!(err.to_string(), "it hands over SEBLINUX-doc, not SEBLINUX-base");
    }

    #[test]
    fn malformed_records_and_names_are_refused() {
        let (old, new) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        for bad in [vec![], names(&["*"]), names(&["a b"]), names(&["a,b"]), names(&["S*B"])] {
            assert!(Rotation::sign(&old, &new.public_key(), &bad, 7).is_err(), "{bad:?}");
        }
        assert!(Rotation::sign(&old, &old.public_key(), &names(&["a"]), 7).is_err());
        let key = new.public_key().to_base64();
        let id = old.key_id();
        for comment in [
            format!("timestamp:1\trotation:{id}\tnew-key:{key}"),
            format!("timestamp:1\trotation:{id}\tnew-key:RWnotakey\tnames:a"),
            format!("timestamp:1\trotation:nothex\tnew-key:{key}\tnames:a"),
            format!("timestamp:+1\trotation:{id}\tnew-key:{key}\tnames:a"),
            format!("timestamp:1\trotation:{id}\tnew-key:{key}\tnames:a\tnames:b"),
            format!("timestamp:1\trotation:{id}\tnew-key:{key}\tnames:a,,b"),
            format!("timestamp:1\trotation:{}\tnew-key:{key}\tnames:a", new.key_id()),
        ] {
            assert!(Rotation::parse(&comment).is_err(), "{comment}");
        }
        let fine = Rotation::parse(&format!("timestamp:1\tfile:x\trotation:{id}\tnew-key:{key}\tnames:a")).unwrap();
        assert_eq!(fine.names, ["a"]);
    }

    #[test]
    fn names_match_exactly_or_by_prefix_without_case() {
        assert!(name_matches("SEBLINUX-extras*", "SEBLINUX-extras"));
        assert!(name_matches("SEBLINUX-extras*", "seblinux-extras-games"));
        assert!(!name_matches("SEBLINUX-extras*", "SEBLINUX-extra"));
        assert!(name_matches("SEBLINUX-base", "seblinux-BASE"));
        assert!(!name_matches("SEBLINUX-base", "SEBLINUX-base-dev"));
        assert!(!name_matches("é*", "e"));
        assert!(!name_matches("ab*", "aé"));
    }
}
