//! Keys in minisign's files.
//!
//! A public key is the base64 line `RW…` of `"Ed" ‖ key id (8) ‖ Ed25519 public key (32)`,
//! alone or under an `untrusted comment:` line in a `.pub` file. The key id is 8 random bytes
//! chosen at key generation; minisign shows it as the 16 uppercase hex digits of those bytes
//! read as a little-endian number, and so does [`KeyId`]'s `Display`.
//!
//! A secret key file holds 158 bytes: `"Ed"`, the key derivation (`"Sc"` for scrypt, or two
//! zero bytes when unencrypted), `"B2"`, a 32-byte salt, scrypt's opslimit and memlimit (little
//! endian u64), then key id (8), Ed25519 secret (64, libsodium's seed ‖ public key) and a
//! BLAKE2b-256 checksum of `"Ed" ‖ key id ‖ secret` (32). When encrypted, those last 104 bytes
//! are XORed with scrypt's output for the password. minisign 0.11 writes an unencrypted key
//! (`-W`) with salt, limits *and checksum* all zero, and does not check the checksum of such a
//! key; this module writes the same bytes and accepts a zero or a correct checksum there.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, FormatError};

/// The longest key file read: a 1 KiB untrusted comment (minisign's limit) and the key line.
pub(crate) const MAX_KEY_FILE_BYTES: usize = 4096;

const SIGNATURE_ALGORITHM: [u8; 2] = *b"Ed";
const KDF_SCRYPT: [u8; 2] = *b"Sc";
const KDF_NONE: [u8; 2] = [0, 0];
const CHECKSUM_ALGORITHM: [u8; 2] = *b"B2";
const PUBLIC_KEY_BYTES: usize = 2 + 8 + 32;
const SECRET_KEY_BYTES: usize = 2 + 2 + 2 + 32 + 8 + 8 + KEYNUM_SK_BYTES;
/// Key id, Ed25519 secret and checksum: the part of a secret key file that is encrypted.
const KEYNUM_SK_BYTES: usize = 8 + 64 + 32;
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
/// minisign writes this comment on every secret key, encrypted or not.
const SECRET_KEY_COMMENT: &str = "minisign encrypted secret key";

/// The 8-byte id that ties a signature to the key that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    /// 16 uppercase hex digits, exactly as minisign prints key ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl std::str::FromStr for KeyId {
    type Err = FormatError;

    /// Reads the 16 hex digits [`KeyId`]'s `Display` writes (case does not matter).
    fn from_str(text: &str) -> Result<KeyId, FormatError> {
        let wrong = FormatError::WrongLength { what: "the key id", len: text.len(), expected: 16 };
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(wrong);
        }
        u64::from_str_radix(text, 16).map(|id| KeyId(id.to_le_bytes())).map_err(|_| wrong)
    }
}

/// A minisign public key: the key id and the Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    key: [u8; 32],
    /// The same key as `minisign-verify` holds it, which does the file verification.
    verifier: minisign_verify::PublicKey,
}

impl PublicKey {
    /// Parses the base64 key line (`RW…`), as given to `minisign -P`.
    pub fn from_base64(line: &str) -> Result<PublicKey, FormatError> {
        let bytes = decode_base64("the public key", line.trim())?;
        let bytes: [u8; PUBLIC_KEY_BYTES] = bytes.try_into().map_err(|bytes: Vec<u8>| FormatError::WrongLength {
            what: "the public key",
            len: bytes.len(),
            expected: PUBLIC_KEY_BYTES,
        })?;
        let algorithm = [bytes[0], bytes[1]];
        if algorithm != SIGNATURE_ALGORITHM {
            return Err(FormatError::UnsupportedAlgorithm { what: "the public key", found: algorithm });
        }
        let mut key_id = [0; 8];
        key_id.copy_from_slice(&bytes[2..10]);
        let mut key = [0; 32];
        key.copy_from_slice(&bytes[10..]);
        Ok(PublicKey::from_parts(KeyId(key_id), key))
    }

    /// Parses a `.pub` file's text, or a bare key line.
    pub fn parse(text: &str) -> Result<PublicKey, FormatError> {
        if text.len() > MAX_KEY_FILE_BYTES {
            return Err(FormatError::TooLong {
                what: "the public key file",
                len: text.len(),
                limit: MAX_KEY_FILE_BYTES,
            });
        }
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let first = lines.next().ok_or(FormatError::MissingLine { what: "the public key line" })?;
        let key_line = if first.starts_with(UNTRUSTED_PREFIX) {
            lines.next().ok_or(FormatError::MissingLine { what: "the public key line" })?
        } else {
            first
        };
        if lines.next().is_some() {
            return Err(FormatError::TrailingData { what: "the public key line" });
        }
        PublicKey::from_base64(key_line)
    }

    /// The key id, which signatures made with this key carry.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The base64 key line (`RW…`).
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_BYTES);
        bytes.extend_from_slice(&SIGNATURE_ALGORITHM);
        bytes.extend_from_slice(&self.key_id.0);
        bytes.extend_from_slice(&self.key);
        BASE64.encode(bytes)
    }

    /// The `.pub` file's text, as `minisign -G` writes it.
    pub fn to_file_text(&self) -> String {
        format!("{UNTRUSTED_PREFIX}minisign public key {}\n{}\n", self.key_id, self.to_base64())
    }

    pub(crate) fn ed25519_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub(crate) fn verifier(&self) -> &minisign_verify::PublicKey {
        &self.verifier
    }

    fn from_parts(key_id: KeyId, key: [u8; 32]) -> PublicKey {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_BYTES);
        bytes.extend_from_slice(&SIGNATURE_ALGORITHM);
        bytes.extend_from_slice(&key_id.0);
        bytes.extend_from_slice(&key);
        // minisign-verify checks only the length and the algorithm, both fixed above.
        let verifier = minisign_verify::PublicKey::from_base64(&BASE64.encode(bytes))
            .expect("a 42-byte Ed key is always accepted by minisign-verify");
        PublicKey { key_id, key, verifier }
    }
}

/// How much work and memory scrypt spends protecting a secret key, in libsodium's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KdfLimits {
    opslimit: u64,
    memlimit: u64,
}

impl KdfLimits {
    /// What minisign uses (libsodium's "sensitive" limits: scrypt with N = 2^20, r = 8, p = 1,
    /// 1 GiB of memory). Keys with larger limits are refused rather than spend unbounded effort.
    const MINISIGN: KdfLimits = KdfLimits { opslimit: 1 << 25, memlimit: 1 << 30 };
    /// The smallest limits libsodium accepts.
    const LEAST: KdfLimits = KdfLimits { opslimit: 1 << 15, memlimit: 1 << 24 };

    fn check(self) -> Result<KdfLimits, FormatError> {
        let within = |value: u64, least: u64, most: u64| (least..=most).contains(&value);
        if within(self.opslimit, Self::LEAST.opslimit, Self::MINISIGN.opslimit)
            && within(self.memlimit, Self::LEAST.memlimit, Self::MINISIGN.memlimit)
        {
            Ok(self)
        } else {
            Err(FormatError::KdfLimits { opslimit: self.opslimit, memlimit: self.memlimit })
        }
    }

    /// scrypt's (log2 N, r, p) for these limits, as libsodium's
    /// `crypto_pwhash_scryptsalsa208sha256` derives them, so that keys decrypt the same here.
    fn scrypt_params(self) -> Result<scrypt::Params, FormatError> {
        let invalid = FormatError::KdfLimits { opslimit: self.opslimit, memlimit: self.memlimit };
        let r: u64 = 8;
        let log2_fitting = |max_n: u64| (1..63u8).find(|&log_n| 1u64 << log_n > max_n / 2).unwrap_or(63);
        let (log_n, p) = if self.opslimit < self.memlimit / 32 {
            (log2_fitting(self.opslimit / (r * 4)), 1)
        } else {
            let log_n = log2_fitting(self.memlimit / (r * 128));
            let max_rp = ((self.opslimit / 4) >> log_n).min(0x3fff_ffff);
            (log_n, max_rp / r)
        };
        let p = u32::try_from(p).map_err(|_| invalid.clone())?;
        scrypt::Params::new(log_n, r as u32, p, scrypt::Params::RECOMMENDED_LEN).map_err(|_| invalid)
    }
}

/// A secret key file as read, possibly still encrypted.
pub struct SecretKeyFile {
    /// The scrypt salt and limits, or `None` for an unencrypted key.
    kdf: Option<([u8; 32], KdfLimits)>,
    keynum_sk: Zeroizing<[u8; KEYNUM_SK_BYTES]>,
}

impl SecretKeyFile {
    /// Parses a secret key file's text.
    pub fn parse(text: &str) -> Result<SecretKeyFile, FormatError> {
        if text.len() > MAX_KEY_FILE_BYTES {
            return Err(FormatError::TooLong {
                what: "the secret key file",
                len: text.len(),
                limit: MAX_KEY_FILE_BYTES,
            });
        }
        let mut lines = text.lines();
        let comment = lines.next().ok_or(FormatError::MissingLine { what: "the untrusted comment line" })?;
        if !comment.starts_with(UNTRUSTED_PREFIX) {
            return Err(FormatError::MissingPrefix { what: "the secret key's first line", prefix: UNTRUSTED_PREFIX });
        }
        let line = lines.next().ok_or(FormatError::MissingLine { what: "the secret key line" })?;
        if lines.any(|line| !line.trim().is_empty()) {
            return Err(FormatError::TrailingData { what: "the secret key line" });
        }
        let bytes = Zeroizing::new(decode_base64("the secret key", line.trim())?);
        if bytes.len() != SECRET_KEY_BYTES {
            return Err(FormatError::WrongLength {
                what: "the secret key",
                len: bytes.len(),
                expected: SECRET_KEY_BYTES,
            });
        }
        let field = |at: usize| [bytes[at], bytes[at + 1]];
        if field(0) != SIGNATURE_ALGORITHM {
            return Err(FormatError::UnsupportedAlgorithm { what: "the secret key", found: field(0) });
        }
        if field(4) != CHECKSUM_ALGORITHM {
            return Err(FormatError::UnsupportedAlgorithm { what: "the secret key's checksum", found: field(4) });
        }
        let le64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let kdf = match field(2) {
            KDF_NONE => None,
            KDF_SCRYPT => {
                let limits = KdfLimits { opslimit: le64(38), memlimit: le64(46) }.check()?;
                let mut salt = [0; 32];
                salt.copy_from_slice(&bytes[6..38]);
                Some((salt, limits))
            }
            other => {
                return Err(FormatError::UnsupportedAlgorithm { what: "the secret key's encryption", found: other })
            }
        };
        let mut keynum_sk = Zeroizing::new([0; KEYNUM_SK_BYTES]);
        keynum_sk.copy_from_slice(&bytes[54..]);
        Ok(SecretKeyFile { kdf, keynum_sk })
    }

    /// Whether [`open`](Self::open) needs the password.
    pub fn is_encrypted(&self) -> bool {
        self.kdf.is_some()
    }

    /// Decrypts the key with `password`, which is not used for an unencrypted key.
    ///
    /// This runs scrypt with the file's limits: a second or more, and 1 GiB, for minisign's.
    pub fn open(&self, password: &str) -> Result<SecretKey, FormatError> {
        let mut keynum_sk = self.keynum_sk.clone();
        if let Some((salt, limits)) = &self.kdf {
            let mut stream = Zeroizing::new([0; KEYNUM_SK_BYTES]);
            scrypt_stream(password, salt, *limits, &mut stream[..])?;
            keynum_sk.iter_mut().zip(stream.iter()).for_each(|(byte, key)| *byte ^= key);
        }
        let mut key_id = KeyId([0; 8]);
        key_id.0.copy_from_slice(&keynum_sk[..8]);
        let mut secret = Zeroizing::new([0; 64]);
        secret.copy_from_slice(&keynum_sk[8..72]);
        let stored = &keynum_sk[72..];
        let computed = checksum(key_id, &secret);
        let checksum_holds = stored == computed.as_slice() || (!self.is_encrypted() && stored.iter().all(|&b| b == 0));
        if !checksum_holds {
            return Err(if self.is_encrypted() { FormatError::WrongPassword } else { FormatError::CorruptSecretKey });
        }
        // from_keypair_bytes also checks that the public half matches the seed: a key that
        // passed the checksum but would make signatures no verifier accepts is refused here.
        let signing = SigningKey::from_keypair_bytes(&secret).map_err(|_| FormatError::CorruptSecretKey)?;
        Ok(SecretKey { key_id, signing })
    }
}

/// A decrypted secret key, able to sign.
pub struct SecretKey {
    key_id: KeyId,
    signing: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl SecretKey {
    /// Generates a new key pair from the operating system's random generator.
    pub fn generate() -> Result<SecretKey, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut key_id = [0u8; 8];
        getrandom::getrandom(seed.as_mut()).map_err(Error::Random)?;
        getrandom::getrandom(&mut key_id).map_err(Error::Random)?;
        Ok(SecretKey { key_id: KeyId(key_id), signing: SigningKey::from_bytes(&seed) })
    }

    /// A key from a fixed seed, so tests are deterministic.
    #[cfg(test)]
    pub(crate) fn from_seed(key_id: [u8; 8], seed: [u8; 32]) -> SecretKey {
        SecretKey { key_id: KeyId(key_id), signing: SigningKey::from_bytes(&seed) }
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_parts(self.key_id, self.signing.verifying_key().to_bytes())
    }

    /// The secret key file's text: encrypted with `password` as minisign does (scrypt, 1 GiB,
    /// a second or more), or, with `None`, unencrypted exactly as `minisign -G -W` writes it.
    pub fn to_file_text(&self, password: Option<&str>) -> Result<Zeroizing<String>, Error> {
        self.to_file_text_with(password.map(|password| (password, KdfLimits::MINISIGN)))
    }

    fn to_file_text_with(&self, encryption: Option<(&str, KdfLimits)>) -> Result<Zeroizing<String>, Error> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(SECRET_KEY_BYTES));
        let secret = Zeroizing::new(self.signing.to_keypair_bytes());
        let mut keynum_sk = Zeroizing::new([0u8; KEYNUM_SK_BYTES]);
        keynum_sk[..8].copy_from_slice(&self.key_id.0);
        keynum_sk[8..72].copy_from_slice(secret.as_ref());
        bytes.extend_from_slice(&SIGNATURE_ALGORITHM);
        match encryption {
            None => {
                // Salt, limits and checksum all zero: byte for byte what minisign 0.11 writes.
                bytes.extend_from_slice(&KDF_NONE);
                bytes.extend_from_slice(&CHECKSUM_ALGORITHM);
                bytes.extend_from_slice(&[0; 48]);
            }
            Some((password, limits)) => {
                keynum_sk[72..].copy_from_slice(&checksum(self.key_id, &secret));
                let mut salt = [0u8; 32];
                getrandom::getrandom(&mut salt).map_err(Error::Random)?;
                let mut stream = Zeroizing::new([0; KEYNUM_SK_BYTES]);
                scrypt_stream(password, &salt, limits, &mut stream[..]).map_err(Error::Encrypt)?;
                keynum_sk.iter_mut().zip(stream.iter()).for_each(|(byte, key)| *byte ^= key);
                bytes.extend_from_slice(&KDF_SCRYPT);
                bytes.extend_from_slice(&CHECKSUM_ALGORITHM);
                bytes.extend_from_slice(&salt);
                bytes.extend_from_slice(&limits.opslimit.to_le_bytes());
                bytes.extend_from_slice(&limits.memlimit.to_le_bytes());
            }
        }
        bytes.extend_from_slice(keynum_sk.as_ref());
        let mut line = BASE64.encode(bytes.as_slice());
        let text = format!("{UNTRUSTED_PREFIX}{SECRET_KEY_COMMENT}\n{line}\n");
        line.zeroize();
        Ok(Zeroizing::new(text))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

fn checksum(key_id: KeyId, secret: &[u8; 64]) -> [u8; 32] {
    let mut hasher = Blake2b::<U32>::new();
    hasher.update(SIGNATURE_ALGORITHM);
    hasher.update(key_id.0);
    hasher.update(secret);
    hasher.finalize().into()
}

fn scrypt_stream(password: &str, salt: &[u8; 32], limits: KdfLimits, out: &mut [u8]) -> Result<(), FormatError> {
    let params = limits.check()?.scrypt_params()?;
    scrypt::scrypt(password.as_bytes(), salt, &params, out)
        .map_err(|_| FormatError::KdfLimits { opslimit: limits.opslimit, memlimit: limits.memlimit })
}

pub(crate) fn decode_base64(what: &'static str, line: &str) -> Result<Vec<u8>, FormatError> {
    BASE64.decode(line).map_err(|_| FormatError::Base64 { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap limits so unit tests do not spend 1 GiB per key; minisign reads them from the file.
    const CHEAP: KdfLimits = KdfLimits { opslimit: 1 << 15, memlimit: 1 << 24 };

    /// `minisign -G -W` output, captured from minisign 0.11.
    const MINISIGN_PUB: &str = "untrusted comment: minisign public key 3A8F545E2E278D2F\nRWQvjScuXlSPOnOTOOripR/yeZ83uiGGLvSdMT3S0RUB3OubfK6h1P3T\n";
    const MINISIGN_KEY: &str = "untrusted comment: minisign encrypted secret key\nRWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAL40nLl5UjzpDAGCc09L0cq1br+/pGwnD3iLwWvgicg/W1yurSdtuh3OTOOripR/yeZ83uiGGLvSdMT3S0RUB3OubfK6h1P3TAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    #[test]
    fn key_id_prints_as_minisign_does() {
        let key = PublicKey::parse(MINISIGN_PUB).unwrap();
        assert_eq!(key.key_id().to_string(), "3A8F545E2E278D2F");
        assert_eq!(key.to_file_text(), MINISIGN_PUB);
        assert_eq!("3a8f545e2e278d2f".parse::<KeyId>().unwrap(), key.key_id());
        for bad in ["3A8F545E2E278D2", "3A8F545E2E278D2FF", "+A8F545E2E278D2F", ""] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bare_key_line_and_file_give_the_same_key() {
        let line = "RWQvjScuXlSPOnOTOOripR/yeZ83uiGGLvSdMT3S0RUB3OubfK6h1P3T";
        assert_eq!(PublicKey::parse(line).unwrap(), PublicKey::parse(MINISIGN_PUB).unwrap());
        assert_eq!(PublicKey::from_base64(line).unwrap().to_base64(), line);
    }

    #[test]
    fn minisigns_unencrypted_key_opens_and_rewrites_identically() {
        let file = SecretKeyFile::parse(MINISIGN_KEY).unwrap();
        assert!(!file.is_encrypted());
        let key = file.open("").unwrap();
        assert_eq!(key.public_key(), PublicKey::parse(MINISIGN_PUB).unwrap());
        assert_eq!(key.to_file_text(None).unwrap().as_str(), MINISIGN_KEY);
    }

    #[test]
    fn encrypted_key_opens_with_its_password_only() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_file_text_with(Some(("correct horse", CHEAP))).unwrap();
        let file = SecretKeyFile::parse(&text).unwrap();
        assert!(file.is_encrypted());
        assert_eq!(file.open("correct horse").unwrap().public_key(), key.public_key());
        assert_eq!(file.open("wrong").unwrap_err(), FormatError::WrongPassword);
    }

    #[test]
    fn minisign_limits_map_to_scrypt_n_2_20_r_8_p_1() {
        let params = KdfLimits::MINISIGN.scrypt_params().unwrap();
        assert_eq!((params.log_n(), params.r(), params.p()), (20, 8, 1));
        let params = CHEAP.scrypt_params().unwrap();
        assert_eq!((params.log_n(), params.r(), params.p()), (10, 8, 1));
    }

    #[test]
    fn costlier_limits_than_minisigns_are_refused() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_file_text_with(Some(("pw", CHEAP))).unwrap();
        let mut bytes = BASE64.decode(text.lines().nth(1).unwrap()).unwrap();
        bytes[46..54].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let tampered = format!("untrusted comment: x\n{}\n", BASE64.encode(&bytes));
        assert!(matches!(SecretKeyFile::parse(&tampered), Err(FormatError::KdfLimits { .. })));
    }

    #[test]
    fn damaged_unencrypted_key_is_refused() {
        let mut bytes = BASE64.decode(MINISIGN_KEY.lines().nth(1).unwrap()).unwrap();
        // Flip a bit of the stored public half: it no longer matches the seed.
        bytes[54 + 8 + 40] ^= 1;
        let damaged = format!("untrusted comment: x\n{}\n", BASE64.encode(&bytes));
        let err = SecretKeyFile::parse(&damaged).unwrap().open("").unwrap_err();
        assert_eq!(err, FormatError::CorruptSecretKey);
    }

    #[test]
    fn key_of_the_wrong_length_is_refused() {
        let short = &"RWQvjScuXlSPOnOTOOripR/yeZ83uiGGLvSdMT3S0RUB3OubfK6h1P3T"[..52];
        assert_eq!(
            PublicKey::from_base64(short).unwrap_err(),
            FormatError::WrongLength { what: "the public key", len: 39, expected: 42 }
        );
        let long = BASE64.encode([b'E', b'd'].iter().chain(&[7u8; 41]).copied().collect::<Vec<_>>());
        assert!(matches!(PublicKey::from_base64(&long), Err(FormatError::WrongLength { len: 43, .. })));
        let secret = format!("untrusted comment: x\n{}\n", BASE64.encode([0u8; 100]));
        assert!(matches!(SecretKeyFile::parse(&secret), Err(FormatError::WrongLength { len: 100, .. })));
    }

    #[test]
    fn garbage_keys_are_refused_without_panic() {
        for text in ["", "\n\n", "untrusted comment: x", "RW!!", "untrusted comment: x\nRWQ\nmore", "é"] {
            assert!(PublicKey::parse(text).is_err(), "{text:?}");
            assert!(SecretKeyFile::parse(text).is_err(), "{text:?}");
        }
        let not_ed = BASE64.encode([b'X', b'x'].iter().chain(&[7u8; 40]).copied().collect::<Vec<_>>());
        assert!(matches!(PublicKey::from_base64(&not_ed), Err(FormatError::UnsupportedAlgorithm { .. })));
    }
}
