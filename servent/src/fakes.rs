//! The fakes a faker shares under a genuine release's name, as `servent
//! demo` and test-net's fakers serve them, from real files with real
//! signatures.
//!
//! A faker answers a search for a release with three files of its exact
//! name and size, each with bytes of its own:
//!
//! - [`FakeKind::CopiedSignature`]: the publisher's genuine `.minisig`
//!   copied beside other bytes (the signature is real, the content is not:
//!   judged `fake`);
//! - [`FakeKind::OwnKey`]: other bytes signed by the faker's own key, with
//!   the release metadata of the genuine one (judged `untrusted`);
//! - [`FakeKind::Unsigned`]: junk without a signature (judged `unsigned`).
//!
//! Pure: the caller writes the files, and passes the time of signing in.

use signing_tool::{FormatError, Minisig, ReleaseMeta, SecretKey, Signer};

/// The three fakes a faker shares for each release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeKind {
    /// Other bytes beside a copy of the publisher's genuine signature.
    CopiedSignature,
    /// Other bytes signed by the faker's own key.
    OwnKey,
    /// Other bytes, unsigned.
    Unsigned,
}

impl FakeKind {
    /// Every kind, in the order they are written.
    pub const ALL: [FakeKind; 3] = [FakeKind::CopiedSignature, FakeKind::OwnKey, FakeKind::Unsigned];

    /// The folder of a faker's share that holds this kind (the names of
    /// the three fakes are the same, so each lives in a folder of its own).
    pub fn folder(self) -> &'static str {
        match self {
            FakeKind::CopiedSignature => "copied-signature",
            FakeKind::OwnKey => "own-key",
            FakeKind::Unsigned => "unsigned",
        }
    }
}

/// A genuine release, as a faker copies it.
#[derive(Clone, Copy, Debug)]
pub struct Genuine<'a> {
    /// Its file name.
    pub file: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// The publisher's `.minisig`, as text.
    pub signature: &'a str,
    /// The release it is signed as.
    pub meta: &'a ReleaseMeta,
}

/// One fake: the bytes to write under the genuine file's name, and the
/// `.minisig` to write beside them, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fake {
    /// Which fake this is.
    pub kind: FakeKind,
    /// Its bytes: the genuine size, other content.
    pub bytes: Vec<u8>,
    /// The signature beside it.
    pub signature: Option<String>,
}

/// The fake of `kind` of `genuine` made by the faker called `faker` (its
/// bytes differ from every other faker's), signing with `key` at `signed_at`
/// (Unix seconds) when it signs.
pub fn fake(
    genuine: &Genuine<'_>,
    kind: FakeKind,
    faker: &str,
    key: &SecretKey,
    signed_at: u64,
) -> Result<Fake, FormatError> {
    let bytes = fake_bytes(genuine.bytes, faker, kind);
    let signature = match kind {
        FakeKind::CopiedSignature => Some(genuine.signature.to_owned()),
        FakeKind::OwnKey => Some(sign_release(key, genuine.file, &bytes, genuine.meta, signed_at)?.to_text()),
        FakeKind::Unsigned => None,
    };
    Ok(Fake { kind, bytes, signature })
}

/// Bytes of the same size as `genuine` that are neither its own nor any
/// other fake's: a tag naming the faker and the kind over its first bytes.
pub fn fake_bytes(genuine: &[u8], faker: &str, kind: FakeKind) -> Vec<u8> {
    let tag = format!("fake {} by {faker}: ", kind.folder());
    let mut bytes = genuine.to_vec();
    let len = tag.len().min(bytes.len());
    bytes[..len].copy_from_slice(&tag.as_bytes()[..len]);
    bytes
}

/// A release signature of `bytes`, the file `file`, as `meta`, by `key`, at
/// `signed_at` (Unix seconds): what `signing-tool sign` writes.
pub fn sign_release(
    key: &SecretKey,
    file: &str,
    bytes: &[u8],
    meta: &ReleaseMeta,
    signed_at: u64,
) -> Result<Minisig, FormatError> {
    let mut signer = Signer::new();
    signer.update(bytes);
    signer.finish(key, file, Some(meta), signed_at)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::trust::{Content, TrustStore, Verdict};

    fn meta() -> ReleaseMeta {
        ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.0".into(), keywords: vec!["SEBLINUX".into()] }
    }

    #[test]
    fn fakes_have_the_genuine_size_and_bytes_of_their_own() {
        let genuine = b"SEBLINUX base system 1.0, the genuine bytes".to_vec();
        let mut seen = HashSet::from([genuine.clone()]);
        for faker in ["node 0", "node 9", "node 64515"] {
            for kind in FakeKind::ALL {
                let bytes = fake_bytes(&genuine, faker, kind);
                assert_eq!(bytes.len(), genuine.len());
                assert!(seen.insert(bytes), "{kind:?} by {faker} repeats another file");
            }
        }
    }

    #[test]
    fn each_fake_earns_its_verdict_under_the_publishers_key() {
        let (publisher, faker) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        let bytes = vec![7u8; 5000];
        let meta = meta();
        let signature = sign_release(&publisher, "SEBLINUX-base-1.0.tar", &bytes, &meta, 1_700_000_000).unwrap();
        let signature = signature.to_text();
        let genuine = Genuine { file: "SEBLINUX-base-1.0.tar", bytes: &bytes, signature: &signature, meta: &meta };
        let mut trust = TrustStore::in_memory();
        trust.add(publisher.public_key(), vec!["SEBLINUX".into()]).unwrap();
        let verdict = |bytes: &[u8], signature: Option<&str>| {
            let (digests, size) = search::hash_reader(bytes).unwrap();
            let search::Urn::Sha256(sha256) = digests.sha256_urn() else { unreachable!() };
            let minisig = signature.map(|s| Minisig::parse(s.as_bytes()).unwrap());
            trust.judge(minisig.as_ref(), Content { size, sha256: Some(sha256) }).verdict
        };
        assert_eq!(verdict(&bytes, Some(&signature)), Verdict::Verified);
        let expected = [Verdict::Fake, Verdict::Untrusted, Verdict::Unsigned];
        for (kind, wanted) in FakeKind::ALL.into_iter().zip(expected) {
            let fake = fake(&genuine, kind, "the faker", &faker, 1_700_000_000).unwrap();
            assert_eq!(fake.kind, kind);
            assert_eq!(verdict(&fake.bytes, fake.signature.as_deref()), wanted, "{kind:?}");
        }
    }
}
