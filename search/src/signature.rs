//! A shared file's signature: the `FILE.minisig` beside it.
//!
//! The library reads each signature once, when the file or its signature
//! changes, and keeps it parsed, so that every QueryHit can carry it and
//! the index can make its release metadata (name, version, keywords)
//! searchable. It does not judge it: whether the signature holds, and for
//! whom, is for the servent's trusted keys to say. A signature that cannot
//! be read is kept as the reason why, so the user can be told.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use signing_tool::{Minisig, Release, MAX_MINISIG_BYTES};

/// The signature found beside a shared file.
#[derive(Clone, Debug)]
pub enum Sidecar {
    /// A well-formed signature, not yet judged.
    Signed(Signed),
    /// A `.minisig` that could not be read or parsed, and why.
    Unreadable(String),
}

/// A well-formed signature and the release its trusted comment describes.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The signature.
    pub minisig: Arc<Minisig>,
    /// The release metadata of its trusted comment, if it has some; not
    /// verified (anyone can write a trusted comment, only a key signs it).
    pub release: Option<Release>,
}

impl Sidecar {
    /// Reads and parses the signature at `path`, refusing one over
    /// minisign's size limit before reading it all.
    pub fn read(path: &Path) -> Sidecar {
        let mut bytes = Vec::new();
        let read = File::open(path).and_then(|file| file.take(MAX_MINISIG_BYTES as u64 + 1).read_to_end(&mut bytes));
        match read {
            Ok(_) => Sidecar::parse(&bytes),
            Err(e) => Sidecar::Unreadable(e.to_string()),
        }
    }

    /// Parses a signature's text.
    pub fn parse(bytes: &[u8]) -> Sidecar {
        match Minisig::parse(bytes) {
            Ok(minisig) => Sidecar::Signed(Signed::new(minisig)),
            Err(e) => Sidecar::Unreadable(e.to_string()),
        }
    }

    /// The text this sidecar is saved as in the hash cache: the signature
    /// itself, or the reason it is unreadable.
    pub(crate) fn to_saved(&self) -> Saved {
        match self {
            Sidecar::Signed(signed) => Saved::Text(signed.minisig.to_text()),
            Sidecar::Unreadable(why) => Saved::Error(why.clone()),
        }
    }

    pub(crate) fn from_saved(saved: &Saved) -> Sidecar {
        match saved {
            Saved::Text(text) => Sidecar::parse(text.as_bytes()),
            Saved::Error(why) => Sidecar::Unreadable(why.clone()),
        }
    }

    /// Words of its release metadata worth finding the file by.
    pub(crate) fn search_text(&self) -> Option<String> {
        let Sidecar::Signed(Signed { release: Some(release), .. }) = self else { return None };
        Some(format!("{} {} {}", release.name, release.version, release.keywords.join(" ")))
    }
}

impl Signed {
    /// A signature and the release it describes, if any.
    pub fn new(minisig: Minisig) -> Signed {
        let release = Release::parse(minisig.trusted_comment()).ok();
        Signed { minisig: Arc::new(minisig), release }
    }
}

/// Ed25519 signatures are malleable, so two signatures are the same only
/// byte for byte: this equality says "the same sidecar", never "the same
/// release".
impl PartialEq for Sidecar {
    fn eq(&self, other: &Sidecar) -> bool {
        self.to_saved() == other.to_saved()
    }
}

impl Eq for Sidecar {}

/// A sidecar as the hash cache keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Saved {
    Text(String),
    Error(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_oversized_signatures_are_unreadable_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("a.minisig");
        std::fs::write(&garbage, "not a signature").unwrap();
        assert!(matches!(Sidecar::read(&garbage), Sidecar::Unreadable(why) if why.contains("untrusted comment")));
        let huge = dir.path().join("b.minisig");
        std::fs::write(&huge, vec![b'x'; MAX_MINISIG_BYTES * 4]).unwrap();
        assert!(matches!(Sidecar::read(&huge), Sidecar::Unreadable(why) if why.contains("over the limit")));
        let missing = dir.path().join("c.minisig");
        assert!(matches!(Sidecar::read(&missing), Sidecar::Unreadable(_)));
    }
}
