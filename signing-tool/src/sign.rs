//! Signing: one pass over the file computes minisign's BLAKE2b-512 prehash, the SHA-256, the
//! Tiger tree root and the size that the release metadata records; then two Ed25519 signatures, as minisign makes.

use blake2::{Blake2b512, Digest};
use sha2::Sha256;

use crate::error::FormatError;
use crate::key::SecretKey;
use crate::minisig::{Algorithm, Minisig, DEFAULT_UNTRUSTED_COMMENT};
use crate::release::{trusted_comment, ReleaseMeta};

/// Signs content fed to it in chunks, as `minisign -S` does (prehashed, `ED`).
#[derive(Default)]
pub struct Signer {
    prehash: Blake2b512,
    sha256: Sha256,
    tth: thex::TreeHasher,
    size: u64,
}

impl Signer {
    /// A signer that has seen no content yet.
    pub fn new() -> Signer {
        Signer::default()
    }

    /// Feeds the next chunk of content.
    pub fn update(&mut self, chunk: &[u8]) {
        self.prehash.update(chunk);
        self.sha256.update(chunk);
        self.tth.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Signs the content fed so far, recording `file` (the file's base name), `timestamp`
    /// (seconds since the Unix epoch), its SHA-256, Tiger tree root and size, and the release
    /// metadata if any.
    pub fn finish(
        self,
        key: &SecretKey,
        file: &str,
        meta: Option<&ReleaseMeta>,
        timestamp: u64,
    ) -> Result<Minisig, FormatError> {
        let tth = self.tth.finish_root();
        let comment = trusted_comment(timestamp, file, meta, &self.sha256.finalize().into(), &tth, self.size)?;
        sign_prehashed(key, &self.prehash.finalize().into(), &comment)
    }
}

/// A prehashed minisign signature of `prehash` (the BLAKE2b-512 of the
/// content) with `comment` as its trusted comment, covered by the global signature.
pub(crate) fn sign_prehashed(key: &SecretKey, prehash: &[u8; 64], comment: &str) -> Result<Minisig, FormatError> {
    let signature = key.sign(prehash);
    let mut global = Vec::with_capacity(signature.len() + comment.len());
    global.extend_from_slice(&signature);
    global.extend_from_slice(comment.as_bytes());
    let global_signature = key.sign(&global);
    Minisig::from_parts(
        DEFAULT_UNTRUSTED_COMMENT,
        Algorithm::Prehashed,
        key.key_id(),
        signature,
        comment,
        global_signature,
    )
}
