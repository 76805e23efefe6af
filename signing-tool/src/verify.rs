//! Verification, in two depths.
//!
//! *The trusted comment alone* ([`verify_trusted_comment`], [`verify_release`]): is this
//! comment genuinely signed by key K? It needs no file, so a search result that carries a
//! signature can be judged before anything is downloaded; the signed `sha256:` and `size:` then
//! say what the file must be.
//!
//! *The whole file* ([`FileVerifier`], [`verify_reader`]): the same check, plus the content
//! signature through `minisign-verify`'s streaming verifier, plus the SHA-256 and size compared
//! with the signed ones, all in the one read pass. [`FileVerifier::update`] takes chunks, so a
//! caller can compute other digests (the servent's SHA-1) in the same pass.
//!
//! Only prehashed (`ED`) signatures are accepted. A signature is checked against one given
//! key: whether that key is trusted is the caller's decision.

use std::io::{self, Read};

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::VerifyError;
use crate::key::PublicKey;
use crate::minisig::{Algorithm, Minisig};
use crate::release::Release;

/// How much is read at a time by [`verify_reader`].
const CHUNK_BYTES: usize = 256 * 1024;

/// Checks that `minisig` was made by `key` and that its trusted comment is the one signed.
///
/// This is the global signature only: it says nothing about any file's content. minisign-verify
/// has no call for the global signature alone, so this one uses ed25519-dalek's strict check,
/// which refuses everything minisign-verify refuses (and non-canonical points besides).
pub fn verify_trusted_comment(key: &PublicKey, minisig: &Minisig) -> Result<(), VerifyError> {
    if minisig.algorithm() == Algorithm::Legacy {
        return Err(VerifyError::Legacy);
    }
    if minisig.key_id() != key.key_id() {
        return Err(VerifyError::KeyIdMismatch { signature: minisig.key_id(), key: key.key_id() });
    }
    let forged = VerifyError::TrustedComment { key: key.key_id() };
    let verifying = VerifyingKey::from_bytes(key.ed25519_bytes()).map_err(|_| forged.clone())?;
    let mut signed = Vec::with_capacity(64 + minisig.trusted_comment().len());
    signed.extend_from_slice(minisig.signature());
    signed.extend_from_slice(minisig.trusted_comment().as_bytes());
    verifying.verify_strict(&signed, &Signature::from_bytes(minisig.global_signature())).map_err(|_| forged)
}

/// Checks the trusted comment as [`verify_trusted_comment`] does and reads the release from it.
pub fn verify_release(key: &PublicKey, minisig: &Minisig) -> Result<Release, VerifyError> {
    verify_trusted_comment(key, minisig)?;
    Release::parse(minisig.trusted_comment()).map_err(VerifyError::NotARelease)
}

/// What one pass over a file learned about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub size: u64,
}

/// The result of [`FileVerifier::finish`]: the digests, always, and the verdict.
#[derive(Debug, Clone)]
pub struct FileCheck {
    /// The content's digests, computed whatever the verdict.
    pub digests: Digests,
    /// The signed release when the signature holds for this key and content and its signed
    /// `sha256:` and `size:` match the content; otherwise what failed.
    pub verdict: Result<Release, VerifyError>,
}

/// Verifies a file fed to it in chunks, computing its SHA-256 on the way
/// (unless made with [`FileVerifier::without_sha256`]).
pub struct FileVerifier<'a> {
    minisig: &'a Minisig,
    /// minisign-verify's verifier, or why the signature was refused before any content.
    stream: Result<minisign_verify::StreamVerifier<'a>, VerifyError>,
    sha256: Option<Sha256>,
    /// The Tiger tree, computed along with the SHA-256.
    tth: Option<thex::TreeHasher>,
    size: u64,
}

impl<'a> FileVerifier<'a> {
    /// Starts verifying content against `minisig` and `key`.
    ///
    /// The key id, the algorithm and the trusted comment are checked at once; if they fail, the
    /// content is still hashed (the digests are wanted anyway) and the verdict is that failure.
    pub fn new(key: &'a PublicKey, minisig: &'a Minisig) -> FileVerifier<'a> {
        let stream = verify_trusted_comment(key, minisig).and_then(|()| {
            key.verifier().verify_stream(minisig.verifier()).map_err(|err| match err {
                minisign_verify::Error::UnexpectedKeyId => {
                    VerifyError::KeyIdMismatch { signature: minisig.key_id(), key: key.key_id() }
                }
                minisign_verify::Error::UnsupportedLegacyMode => VerifyError::Legacy,
                _ => VerifyError::Content,
            })
        });
        FileVerifier { minisig, stream, sha256: Some(Sha256::new()), tth: Some(thex::TreeHasher::root_only()), size: 0 }
    }

    /// Like [`FileVerifier::new`], for a caller that computes the content's
    /// SHA-256 and Tiger tree root itself in the same pass: chunks feed the
    /// signature's prehash only, and the digests are given to
    /// [`FileVerifier::finish_with_tth`].
    pub fn without_sha256(key: &'a PublicKey, minisig: &'a Minisig) -> FileVerifier<'a> {
        FileVerifier { sha256: None, tth: None, ..FileVerifier::new(key, minisig) }
    }

    /// Feeds the next chunk of content.
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(sha256) = &mut self.sha256 {
            sha256.update(chunk);
        }
        if let Some(tth) = &mut self.tth {
            tth.update(chunk);
        }
        self.size += chunk.len() as u64;
        if let Ok(stream) = &mut self.stream {
            stream.update(chunk);
        }
    }

    /// Ends the content and gives the verdict.
    ///
    /// When both fail, a mismatch of the signed size or SHA-256 is reported rather than the
    /// bare signature failure, because it says what is wrong (a truncated file, other bytes).
    /// A verifier made [`FileVerifier::without_sha256`] knows no digest: its
    /// check fails; use [`FileVerifier::finish_with`].
    pub fn finish(mut self) -> FileCheck {
        let sha256 = self.sha256.take().map_or([0; 32], |sha256| sha256.finalize().into());
        let tth = self.tth.take().map(thex::TreeHasher::finish_root);
        self.finish_with_tth(sha256, tth)
    }

    /// Ends the content whose SHA-256 the caller computed, and gives the
    /// verdict; a signed `tth:` is not checked (see [`FileVerifier::finish_with_tth`]).
    pub fn finish_with(self, sha256: [u8; 32]) -> FileCheck {
        self.finish_with_tth(sha256, None)
    }

    /// Ends the content whose SHA-256 and Tiger tree root (when computed) the
    /// caller computed, and gives the verdict: a signed `tth:` must match the root.
    pub fn finish_with_tth(self, sha256: [u8; 32], tth: Option<thex::Root>) -> FileCheck {
        let digests = Digests { sha256, size: self.size };
        let verdict = self.stream.and_then(|mut stream| {
            let signature = stream.finalize();
            let release = Release::parse(self.minisig.trusted_comment());
            if let Ok(release) = &release {
                if release.size != digests.size {
                    return Err(VerifyError::Size { signed: release.size, actual: digests.size });
                }
                if release.sha256 != digests.sha256 {
                    return Err(VerifyError::Sha256 { signed: release.sha256, actual: digests.sha256 });
                }
                if let Some((signed, actual)) = release.tth.zip(tth).filter(|(signed, actual)| signed != actual) {
                    return Err(VerifyError::Tth { signed, actual });
                }
            }
            signature.map_err(|_| VerifyError::Content)?;
            release.map_err(VerifyError::NotARelease)
        });
        FileCheck { digests, verdict }
    }
}

/// Verifies everything `reader` yields against `minisig` and `key`, in one pass.
///
/// Only reading can fail here; a signature that does not hold is in the [`FileCheck`].
pub fn verify_reader(key: &PublicKey, minisig: &Minisig, mut reader: impl Read) -> io::Result<FileCheck> {
    let mut verifier = FileVerifier::new(key, minisig);
    let mut buffer = vec![0; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(verifier.finish()),
            Ok(read) => verifier.update(&buffer[..read]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

    use super::*;
    use crate::key::SecretKey;
    use crate::minisig::MAX_TRUSTED_COMMENT_BYTES;
    use crate::release::{hex, ReleaseMeta};
    use crate::sign::Signer;
    use crate::FormatError;

    const CONTENT: &[u8] = b"SEBLINUX base system, release 1.1\n";

    fn publisher() -> SecretKey {
        SecretKey::from_seed(*b"pubkeyid", [7; 32])
    }

    fn rival() -> SecretKey {
        SecretKey::from_seed(*b"rivalkey", [9; 32])
    }

    fn meta() -> ReleaseMeta {
        ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.1".into(), keywords: vec!["SEBLINUX".into()] }
    }

    fn sign(key: &SecretKey, content: &[u8]) -> Minisig {
        let mut signer = Signer::new();
        signer.update(content);
        signer.finish(key, "SEBLINUX-base-1.1.tar", Some(&meta()), 1_700_000_000).unwrap()
    }

    fn check(key: &SecretKey, minisig: &Minisig, content: &[u8]) -> FileCheck {
        verify_reader(&key.public_key(), minisig, content).unwrap()
    }

    #[test]
    fn a_verifier_without_its_own_sha256_takes_the_callers() {
        let minisig = sign(&publisher(), CONTENT);
        let key = publisher().public_key();
        let mut verifier = FileVerifier::without_sha256(&key, &minisig);
        verifier.update(CONTENT);
        assert!(verifier.finish_with(Sha256::digest(CONTENT).into()).verdict.is_ok());
        let mut verifier = FileVerifier::without_sha256(&key, &minisig);
        verifier.update(CONTENT);
        assert!(matches!(verifier.finish().verdict, Err(VerifyError::Sha256 { .. })), "no digest, no verdict");
    }

    #[test]
    fn signed_release_verifies_in_one_pass() {
        let minisig = sign(&publisher(), CONTENT);
        let check = check(&publisher(), &minisig, CONTENT);
        let release = check.verdict.unwrap();
        assert_eq!(
            release.to_string(),
            format!("name SEBLINUX-base version 1.1 size {} keywords SEBLINUX", CONTENT.len())
        );
        assert_eq!(check.digests.sha256, <[u8; 32]>::from(Sha256::digest(CONTENT)));
        assert_eq!(check.digests.size, CONTENT.len() as u64);
        assert_eq!(verify_release(&publisher().public_key(), &minisig).unwrap(), release);
    }

    #[test]
    fn chunks_of_any_size_give_the_same_verdict() {
        let minisig = sign(&publisher(), CONTENT);
        let key = publisher().public_key();
        for size in [1, 3, 7, 64] {
            let mut verifier = FileVerifier::new(&key, &minisig);
            CONTENT.chunks(size).for_each(|chunk| verifier.update(chunk));
            assert!(verifier.finish().verdict.is_ok(), "chunks of {size}");
        }
    }

    #[test]
    fn signature_survives_its_text_round_trip() {
        let minisig = sign(&publisher(), CONTENT);
        let reparsed = Minisig::parse(minisig.to_text().as_bytes()).unwrap();
        assert!(check(&publisher(), &reparsed, CONTENT).verdict.is_ok());
    }

    #[test]
    fn tampered_trusted_comment_is_refused() {
        let text = sign(&publisher(), CONTENT).to_text().replace("version:1.1", "version:9.9");
        let tampered = Minisig::parse(text.as_bytes()).unwrap();
        let expected = VerifyError::TrustedComment { key: publisher().key_id() };
        assert_eq!(verify_trusted_comment(&publisher().public_key(), &tampered), Err(expected.clone()));
        assert_eq!(check(&publisher(), &tampered, CONTENT).verdict.unwrap_err(), expected);
    }

    #[test]
    fn signature_by_another_key_is_refused() {
        let minisig = sign(&rival(), CONTENT);
        let expected = VerifyError::KeyIdMismatch { signature: rival().key_id(), key: publisher().key_id() };
        assert_eq!(verify_release(&publisher().public_key(), &minisig), Err(expected.clone()));
        assert_eq!(check(&publisher(), &minisig, CONTENT).verdict.unwrap_err(), expected);
    }

    #[test]
    fn rivals_signature_relabelled_with_the_publishers_key_id_is_refused() {
        let text = sign(&rival(), CONTENT).to_text();
        // The key id sits in the signature line's bytes 2..10: swap it for the publisher's.
        let line = text.lines().nth(1).unwrap();
        let mut bytes = crate::key::decode_base64("test", line).unwrap();
        assert_eq!(bytes[2..10], rival().key_id().0);
        bytes[2..10].copy_from_slice(&publisher().key_id().0);
        let relabelled = text.replace(line, &BASE64.encode(bytes));
        let minisig = Minisig::parse(relabelled.as_bytes()).unwrap();
        let expected = VerifyError::TrustedComment { key: publisher().key_id() };
        assert_eq!(check(&publisher(), &minisig, CONTENT).verdict.unwrap_err(), expected);
    }

    #[test]
    fn legacy_signature_is_refused_with_a_clear_message() {
        let key = publisher();
        let comment = "timestamp:1\tfile:f";
        let signature = key.sign(CONTENT);
        let global = key.sign(&[&signature[..], comment.as_bytes()].concat());
        let legacy =
            Minisig::from_parts("legacy", Algorithm::Legacy, key.key_id(), signature, comment, global).unwrap();
        let legacy = Minisig::parse(legacy.to_text().as_bytes()).unwrap();
        assert_eq!(legacy.algorithm(), Algorithm::Legacy);
        assert_eq!(verify_trusted_comment(&key.public_key(), &legacy), Err(VerifyError::Legacy));
        let err = check(&key, &legacy, CONTENT).verdict.unwrap_err();
        assert_eq!(err, VerifyError::Legacy);
        assert_eq!(
            err.to_string(),
            "legacy non-prehashed signature (Ed) refused; re-sign with minisign -H or signing-tool"
        );
    }

    #[test]
    fn genuine_signature_replayed_on_other_bytes_is_refused() {
        let minisig = sign(&publisher(), CONTENT);
        let mut other = CONTENT.to_vec();
        other[0] ^= 1;
        let err = check(&publisher(), &minisig, &other).verdict.unwrap_err();
        assert!(matches!(err, VerifyError::Sha256 { .. }), "{err:?}");
        assert!(err.to_string().starts_with("sha256 is "), "{err}");
        let longer = [CONTENT, b"malware"].concat();
        assert!(matches!(check(&publisher(), &minisig, &longer).verdict, Err(VerifyError::Size { .. })));
    }

    #[test]
    fn correct_signature_on_a_truncated_file_says_what_did_not_match() {
        let minisig = sign(&publisher(), CONTENT);
        let cut = &CONTENT[..10];
        let err = check(&publisher(), &minisig, cut).verdict.unwrap_err();
        assert_eq!(err, VerifyError::Size { signed: CONTENT.len() as u64, actual: 10 });
        assert_eq!(err.to_string(), format!("size is 10 bytes but the signed size is {} bytes", CONTENT.len()));
    }

    #[test]
    fn signed_metadata_contradicting_the_content_is_refused_though_the_signature_holds() {
        let key = publisher();
        let comment = format!(
            "timestamp:1\tfile:f\tname:SEBLINUX-base\tversion:1.1\tsha256:{}\tsize:{}",
            "00".repeat(32),
            CONTENT.len()
        );
        let signature = key.sign(&blake2::Blake2b512::digest(CONTENT));
        let global = key.sign(&[&signature[..], comment.as_bytes()].concat());
        let lying = Minisig::from_parts("x", Algorithm::Prehashed, key.key_id(), signature, &comment, global).unwrap();
        assert!(matches!(check(&key, &lying, CONTENT).verdict, Err(VerifyError::Sha256 { .. })));
    }

    #[test]
    fn signed_tth_is_checked_when_the_tree_was_computed() {
        let minisig = sign(&publisher(), CONTENT);
        let tth = Release::parse(minisig.trusted_comment()).unwrap().tth.expect("signed with a tth");
        let mut tree = thex::TreeHasher::root_only();
        tree.update(CONTENT);
        assert_eq!(tth, tree.finish_root());

        let key = publisher();
        let comment = format!(
            "timestamp:1\tfile:f\tname:SEBLINUX-base\tversion:1.1\tsha256:{}\ttth:{}\tsize:{}",
            hex(&Sha256::digest(CONTENT)),
            thex::Root([7; 24]),
            CONTENT.len()
        );
        let signature = key.sign(&blake2::Blake2b512::digest(CONTENT));
        let global = key.sign(&[&signature[..], comment.as_bytes()].concat());
        let lying = Minisig::from_parts("x", Algorithm::Prehashed, key.key_id(), signature, &comment, global).unwrap();
        assert!(matches!(check(&key, &lying, CONTENT).verdict, Err(VerifyError::Tth { .. })));
        let public = key.public_key();
        let mut verifier = FileVerifier::without_sha256(&public, &lying);
        verifier.update(CONTENT);
        let verdict = verifier.finish_with_tth(Sha256::digest(CONTENT).into(), Some(tth)).verdict;
        assert!(matches!(verdict, Err(VerifyError::Tth { .. })));
    }

    #[test]
    fn plain_minisign_signature_holds_but_is_not_a_release() {
        let key = PublicKey::parse("RWQvjScuXlSPOnOTOOripR/yeZ83uiGGLvSdMT3S0RUB3OubfK6h1P3T").unwrap();
        let minisig = Minisig::parse(crate::minisig::tests::MINISIGN_SIG.as_bytes()).unwrap();
        assert_eq!(verify_trusted_comment(&key, &minisig), Ok(()));
        let check = verify_reader(&key, &minisig, &b"hello\n"[..]).unwrap();
        assert_eq!(check.verdict.unwrap_err(), VerifyError::NotARelease(FormatError::MissingField { field: "name" }));
        let other = verify_reader(&key, &minisig, &b"hellO\n"[..]).unwrap();
        assert_eq!(other.verdict.unwrap_err(), VerifyError::Content);
    }

    #[test]
    fn metadata_too_long_for_minisign_is_refused_at_signing() {
        let mut meta = meta();
        meta.keywords = vec!["k".repeat(MAX_TRUSTED_COMMENT_BYTES)];
        let mut signer = Signer::new();
        signer.update(CONTENT);
        let err = signer.finish(&publisher(), "f", Some(&meta), 1).unwrap_err();
        assert!(matches!(err, FormatError::TooLong { what: "the trusted comment", .. }), "{err:?}");
    }
}
