//! The three kinds of failure: bad bytes ([`FormatError`]), a signature that does not hold
//! ([`VerifyError`]), and the file-level [`Error`] that adds the path and I/O to either.
//!
//! The first two carry no path because the servent meets them on bytes from the network;
//! [`crate::files`] wraps them with the path so the command line can say which file was bad.

use std::io;
use std::path::PathBuf;

use crate::key::KeyId;
use crate::release::hex;

/// Bytes that are not a well-formed key, signature or trusted comment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input is longer than minisign (or this crate) allows for it.
    #[error("{what} is {len} bytes, over the limit of {limit}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The input is not UTF-8 text.
    #[error("{what} is not UTF-8 text")]
    NotUtf8 {
        /// What was not text.
        what: &'static str,
    },
    /// The input ends before a required line.
    #[error("{what} is missing")]
    MissingLine {
        /// The missing line.
        what: &'static str,
    },
    /// A line lacks the prefix minisign requires (`untrusted comment: `, `trusted comment: `).
    #[error("{what} does not start with {prefix:?}")]
    MissingPrefix {
        /// The line.
        what: &'static str,
        /// The prefix it should start with.
        prefix: &'static str,
    },
    /// A line is not valid base64.
    #[error("{what} is not valid base64")]
    Base64 {
        /// The line.
        what: &'static str,
    },
    /// Decoded bytes of the wrong length (a truncated key, a signature cut short).
    #[error("{what} is {len} bytes, expected {expected}")]
    WrongLength {
        /// What was decoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length minisign uses.
        expected: usize,
    },
    /// An algorithm identifier this crate does not know.
    #[error("{what} uses unsupported algorithm {:?}", String::from_utf8_lossy(found))]
    UnsupportedAlgorithm {
        /// Whose algorithm.
        what: &'static str,
        /// The two identifier bytes found.
        found: [u8; 2],
    },
    /// A comment holds a control character other than TAB (a stray `\r`, a NUL...).
    #[error("{what} contains a control character")]
    ControlCharacter {
        /// Which comment.
        what: &'static str,
    },
    /// minisign-verify refuses a signature this crate parsed; they should agree on everything.
    #[error("the signature is refused by minisign-verify")]
    RefusedByVerifier,
    /// Something follows the last line of the format.
    #[error("unexpected data after {what}")]
    TrailingData {
        /// The last line that was expected.
        what: &'static str,
    },
    /// The trusted comment lacks a field a release needs.
    #[error("the trusted comment has no {field}: field")]
    MissingField {
        /// The field's key.
        field: &'static str,
    },
    /// A field appears twice in the trusted comment; readers could disagree on which one counts.
    #[error("the trusted comment has {field}: more than once")]
    DuplicateField {
        /// The field's key.
        field: String,
    },
    /// A field's value is malformed (in a trusted comment, or given to sign).
    #[error("invalid {field}: value: {reason}")]
    BadField {
        /// The field's key.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The secret key's scrypt limits are outside what minisign uses (too costly, or too weak).
    #[error("the secret key's scrypt limits (opslimit {opslimit}, memlimit {memlimit}) are outside minisign's range")]
    KdfLimits {
        /// The file's opslimit.
        opslimit: u64,
        /// The file's memlimit.
        memlimit: u64,
    },
    /// The decrypted secret key's checksum does not match.
    #[error("wrong password for that key")]
    WrongPassword,
    /// An unencrypted secret key whose checksum or public half does not match its secret.
    #[error("the secret key is damaged: its checksum or public half does not match its secret")]
    CorruptSecretKey,
}

/// A signature that does not hold for the given key, trusted comment or content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A legacy non-prehashed (`Ed`) signature: refused, only prehashed `ED` is accepted.
    #[error("legacy non-prehashed signature (Ed) refused; re-sign with minisign -H or signing-tool")]
    Legacy,
    /// The signature names another key than the one it is checked with.
    #[error("signed by key {signature}, not by key {key}")]
    KeyIdMismatch {
        /// The key id in the signature.
        signature: KeyId,
        /// The key id of the key given.
        key: KeyId,
    },
    /// The global signature does not cover this trusted comment with this key.
    #[error("the trusted comment is not signed by key {key}: it was altered or the signature is forged")]
    TrustedComment {
        /// The key it was checked with.
        key: KeyId,
    },
    /// The trusted comment is genuine but the content is not what was signed.
    #[error("the content does not match its signature")]
    Content,
    /// The signature holds but its trusted comment is not release metadata.
    #[error("not a release signature: {0}")]
    NotARelease(FormatError),
    /// The content's size differs from the signed `size:`.
    #[error("size is {actual} bytes but the signed size is {signed} bytes")]
    Size {
        /// The signed size.
        signed: u64,
        /// The content's size.
        actual: u64,
    },
    /// The content's SHA-256 differs from the signed `sha256:`.
    #[error("sha256 is {} but the signed sha256 is {}", hex(actual), hex(signed))]
    Sha256 {
        /// The signed digest.
        signed: [u8; 32],
        /// The content's digest.
        actual: [u8; 32],
    },
    /// The content's Tiger tree root differs from the signed `tth:`.
    #[error("tth is {actual} but the signed tth is {signed}")]
    Tth {
        /// The signed root.
        signed: thex::Root,
        /// The content's root.
        actual: thex::Root,
    },
}

/// A failure of a file-level operation: the path (or key argument) and what went wrong there.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file failed.
    #[error("failed to read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing a file failed.
    #[error("failed to write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file that would be overwritten already exists.
    #[error("{} already exists; use --force to overwrite it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file (or a key given inline) is not well formed.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file, or the key argument.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
    /// A file's signature does not hold.
    #[error("{}: not verified: {source}", path.display())]
    Verify {
        /// The signed file.
        path: PathBuf,
        /// What did not match.
        source: VerifyError,
    },
    /// Reading the password failed.
    #[error("failed to read the password: {0}")]
    Password(io::Error),
    /// The two passwords typed at key generation differ.
    #[error("the passwords do not match")]
    PasswordMismatch,
    /// An empty password was given for a new key.
    #[error("empty password refused; use -W for a key without a password")]
    EmptyPassword,
    /// Encrypting a new secret key failed.
    #[error("failed to encrypt the secret key: {0}")]
    Encrypt(FormatError),
    /// The operating system's random generator failed.
    #[error("failed to get random bytes: {0}")]
    Random(getrandom::Error),
}
