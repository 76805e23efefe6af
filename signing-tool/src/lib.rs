//! Release signatures in minisign's format: keys, signing, release metadata and verification.
//!
//! A publisher signs each release file once; the signature travels beside the file as
//! `FILE.minisig` and inside QueryHits. Every file this crate reads or writes is minisign's own
//! (public key, secret key, prehashed `ED` signature), byte-compatible with the `minisign`
//! command line in both directions, so a user can check a release with `minisign -V` alone.
//!
//! What this crate adds to minisign is the *release metadata* in the trusted comment (see
//! [`release`]): name, version, SHA-256, size and keywords, covered by the global signature so
//! that a search result can be judged before its file is downloaded.
//!
//! A publisher that changes keys hands its packages over with a *rotation record* signed by
//! the old key ([`rotation`]).
//!
//! It is for: parsing keys and signatures from untrusted bytes (every length bounded, no panic),
//! verifying the trusted comment alone ([`verify_trusted_comment`], [`verify_release`]),
//! verifying a whole file in one streaming pass that also yields its SHA-256 ([`FileVerifier`],
//! [`verify_reader`]), and the publisher's side ([`SecretKey`], [`Signer`], [`files`]).
//!
//! It is not for: deciding whom to trust (the servent's `trust` module pins keys and turns these
//! results into verdicts), networking, or legacy non-prehashed (`Ed`) signatures, which are
//! refused. Signature bytes are never an identity (Ed25519 signatures are malleable): a release
//! is identified by its signer's [`KeyId`] and its SHA-256.
#![warn(missing_docs)]

mod error;
pub mod files;
mod key;
mod minisig;
pub mod password;
pub mod release;
pub mod rotation;
mod sign;
mod verify;
pub mod version;

pub use error::{Error, FormatError, VerifyError};
pub use key::{KeyId, PublicKey, SecretKey, SecretKeyFile};
pub use minisig::{Algorithm, Minisig, MAX_MINISIG_BYTES, MAX_TRUSTED_COMMENT_BYTES, MAX_UNTRUSTED_COMMENT_BYTES};
pub use release::{Release, ReleaseMeta};
pub use rotation::{Rotation, RotationError};
pub use sign::Signer;
pub use verify::{verify_reader, verify_release, verify_trusted_comment, Digests, FileCheck, FileVerifier};
