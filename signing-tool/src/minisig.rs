//! The `.minisig` signature file, parsed from untrusted bytes with every length bounded.
//!
//! Four lines, as minisign writes them:
//!
//! ```text
//! untrusted comment: <free text, not signed>
//! base64("ED" ‖ key id (8) ‖ Ed25519 signature of BLAKE2b-512(file) (64))
//! trusted comment: <one line, signed by the global signature>
//! base64(Ed25519 signature of (the signature above ‖ trusted comment) (64))
//! ```
//!
//! minisign reads each line with a fixed buffer (1024 bytes for the untrusted comment line,
//! 8192 for the trusted one, both counting the newline and C's terminating zero); longer lines
//! break its parsing, so they are refused here too rather than accepted by one tool only.

use std::{fmt, str};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::error::FormatError;
use crate::key::{decode_base64, KeyId};

/// The longest untrusted comment (after `untrusted comment: `) that minisign reads whole.
pub const MAX_UNTRUSTED_COMMENT_BYTES: usize = 1024 - 2 - UNTRUSTED_PREFIX.len();
/// The longest trusted comment (after `trusted comment: `) that minisign reads whole: its
/// 8 KiB line buffer less the prefix, the newline and C's terminating zero.
pub const MAX_TRUSTED_COMMENT_BYTES: usize = 8192 - 2 - TRUSTED_PREFIX.len();
/// The longest `.minisig` accepted: both comments at their limits, the two base64 lines, and
/// room for `\r\n` line ends.
pub const MAX_MINISIG_BYTES: usize = 10 * 1024;

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// What minisign writes as the untrusted comment of a signature.
pub(crate) const DEFAULT_UNTRUSTED_COMMENT: &str = "signature from minisign secret key";
const SIGNATURE_BYTES: usize = 2 + 8 + 64;
/// The compact form's fixed part: the signature line's bytes and the global signature.
const COMPACT_FIXED_BYTES: usize = SIGNATURE_BYTES + 64;

/// How the file was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `ED`: the Ed25519 signature covers BLAKE2b-512 of the file (minisign's default since 0.8).
    Prehashed,
    /// `Ed`: the signature covers the file itself. Parsed so it can be named, never verified.
    Legacy,
}

impl Algorithm {
    fn tag(self) -> &'static [u8; 2] {
        match self {
            Algorithm::Prehashed => b"ED",
            Algorithm::Legacy => b"Ed",
        }
    }

    fn from_tag(tag: [u8; 2]) -> Result<Algorithm, FormatError> {
        match &tag {
            b"ED" => Ok(Algorithm::Prehashed),
            b"Ed" => Ok(Algorithm::Legacy),
            _ => Err(FormatError::UnsupportedAlgorithm { what: "the signature", found: tag }),
        }
    }
}

/// A parsed `.minisig`.
///
/// Deliberately neither `PartialEq` nor `Hash`: Ed25519 signatures are malleable, so two
/// signatures of one release may differ in bytes. Identify releases by key id and SHA-256.
#[derive(Clone)]
pub struct Minisig {
    untrusted_comment: String,
    algorithm: Algorithm,
    key_id: KeyId,
    signature: [u8; 64],
    trusted_comment: String,
    global_signature: [u8; 64],
    /// The same signature as `minisign-verify` holds it, which does the file verification.
    verifier: minisign_verify::Signature,
}

impl Minisig {
    /// Parses a `.minisig` from untrusted bytes (a file, a QueryHit extension).
    pub fn parse(bytes: &[u8]) -> Result<Minisig, FormatError> {
        if bytes.len() > MAX_MINISIG_BYTES {
            return Err(FormatError::TooLong {
                what: "the signature file",
                len: bytes.len(),
                limit: MAX_MINISIG_BYTES,
            });
        }
        let mut rest = str::from_utf8(bytes).map_err(|_| FormatError::NotUtf8 { what: "the signature file" })?;
        let untrusted = next_line(&mut rest, "the untrusted comment line")?;
        let untrusted = untrusted
            .strip_prefix(UNTRUSTED_PREFIX)
            .ok_or(FormatError::MissingPrefix { what: "the first line", prefix: UNTRUSTED_PREFIX })?;
        let signature_line = next_line(&mut rest, "the signature line")?;
        let trusted = next_line(&mut rest, "the trusted comment line")?;
        let trusted = trusted
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or(FormatError::MissingPrefix { what: "the third line", prefix: TRUSTED_PREFIX })?;
        let global_line = next_line(&mut rest, "the global signature line")?;
        if !rest.trim().is_empty() {
            return Err(FormatError::TrailingData { what: "the global signature line" });
        }

        let signature = decode_base64("the signature line", signature_line)?;
        if signature.len() != SIGNATURE_BYTES {
            return Err(FormatError::WrongLength {
                what: "the signature",
                len: signature.len(),
                expected: SIGNATURE_BYTES,
            });
        }
        let algorithm = Algorithm::from_tag([signature[0], signature[1]])?;
        let global = decode_base64("the global signature line", global_line)?;
        let global: [u8; 64] = global.try_into().map_err(|global: Vec<u8>| FormatError::WrongLength {
            what: "the global signature",
            len: global.len(),
            expected: 64,
        })?;
        let mut key_id = [0; 8];
        key_id.copy_from_slice(&signature[2..10]);
        let mut signature_bytes = [0; 64];
        signature_bytes.copy_from_slice(&signature[10..]);
        Minisig::from_parts(untrusted, algorithm, KeyId(key_id), signature_bytes, trusted, global)
    }

    /// The `.minisig` text, as minisign writes it.
    pub fn to_text(&self) -> String {
        encode(
            &self.untrusted_comment,
            self.algorithm,
            self.key_id,
            &self.signature,
            &self.trusted_comment,
            &self.global_signature,
        )
    }

    /// The compact binary form that travels inside QueryHits: the 74 bytes of the signature
    /// line (`ED`, key id, signature), the 64-byte global signature, then the trusted comment.
    /// The untrusted comment is left out: nothing checks it, and anyone may change it.
    pub fn to_compact(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMPACT_FIXED_BYTES + self.trusted_comment.len());
        out.extend_from_slice(self.algorithm.tag());
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.global_signature);
        out.extend_from_slice(self.trusted_comment.as_bytes());
        out
    }

    /// Parses [`Minisig::to_compact`]'s form from untrusted bytes, with the same limits as
    /// [`Minisig::parse`]; the untrusted comment becomes minisign's default.
    pub fn from_compact(bytes: &[u8]) -> Result<Minisig, FormatError> {
        let limit = COMPACT_FIXED_BYTES + MAX_TRUSTED_COMMENT_BYTES;
        if bytes.len() > limit {
            return Err(FormatError::TooLong { what: "the compact signature", len: bytes.len(), limit });
        }
        if bytes.len() < COMPACT_FIXED_BYTES {
            return Err(FormatError::WrongLength {
                what: "the compact signature",
                len: bytes.len(),
                expected: COMPACT_FIXED_BYTES,
            });
        }
        let (fixed, comment) = bytes.split_at(COMPACT_FIXED_BYTES);
        let algorithm = Algorithm::from_tag([fixed[0], fixed[1]])?;
        let mut key_id = [0; 8];
        key_id.copy_from_slice(&fixed[2..10]);
        let mut signature = [0; 64];
        signature.copy_from_slice(&fixed[10..74]);
        let mut global = [0; 64];
        global.copy_from_slice(&fixed[74..]);
        let comment = str::from_utf8(comment).map_err(|_| FormatError::NotUtf8 { what: "the trusted comment" })?;
        Minisig::from_parts(DEFAULT_UNTRUSTED_COMMENT, algorithm, KeyId(key_id), signature, comment, global)
    }

    /// The id of the key that made (or claims to have made) this signature.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// How the file was signed.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The trusted comment, without its `trusted comment: ` prefix. Not yet verified: see
    /// [`crate::verify_trusted_comment`].
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// The untrusted comment, without its prefix: anyone may have changed it.
    pub fn untrusted_comment(&self) -> &str {
        &self.untrusted_comment
    }

    pub(crate) fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    pub(crate) fn global_signature(&self) -> &[u8; 64] {
        &self.global_signature
    }

    pub(crate) fn verifier(&self) -> &minisign_verify::Signature {
        &self.verifier
    }

    /// Builds a signature from its fields, holding it to the same limits as a parsed one.
    pub(crate) fn from_parts(
        untrusted_comment: &str,
        algorithm: Algorithm,
        key_id: KeyId,
        signature: [u8; 64],
        trusted_comment: &str,
        global_signature: [u8; 64],
    ) -> Result<Minisig, FormatError> {
        check_comment("the untrusted comment", untrusted_comment, MAX_UNTRUSTED_COMMENT_BYTES)?;
        check_comment("the trusted comment", trusted_comment, MAX_TRUSTED_COMMENT_BYTES)?;
        let text = encode(untrusted_comment, algorithm, key_id, &signature, trusted_comment, &global_signature);
        let verifier = minisign_verify::Signature::decode(&text).map_err(|_| FormatError::RefusedByVerifier)?;
        Ok(Minisig {
            untrusted_comment: untrusted_comment.to_owned(),
            algorithm,
            key_id,
            signature,
            trusted_comment: trusted_comment.to_owned(),
            global_signature,
            verifier,
        })
    }
}

impl fmt::Debug for Minisig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // minisign-verify's copy is the same signature and has no Debug of its own.
        f.debug_struct("Minisig")
            .field("untrusted_comment", &self.untrusted_comment)
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("trusted_comment", &self.trusted_comment)
            .finish_non_exhaustive()
    }
}

fn encode(
    untrusted_comment: &str,
    algorithm: Algorithm,
    key_id: KeyId,
    signature: &[u8; 64],
    trusted_comment: &str,
    global_signature: &[u8; 64],
) -> String {
    let mut line = Vec::with_capacity(SIGNATURE_BYTES);
    line.extend_from_slice(algorithm.tag());
    line.extend_from_slice(&key_id.0);
    line.extend_from_slice(signature);
    format!(
        "{UNTRUSTED_PREFIX}{untrusted_comment}\n{}\n{TRUSTED_PREFIX}{trusted_comment}\n{}\n",
        BASE64.encode(line),
        BASE64.encode(global_signature)
    )
}

/// Takes the next line off `rest`, without its `\n` or `\r\n`.
fn next_line<'a>(rest: &mut &'a str, what: &'static str) -> Result<&'a str, FormatError> {
    if rest.is_empty() {
        return Err(FormatError::MissingLine { what });
    }
    let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
    *rest = after;
    Ok(line.strip_suffix('\r').unwrap_or(line))
}

/// A comment must fit minisign's line buffer, and hold no control character but TAB: minisign
/// and minisign-verify strip line ends differently, so a stray `\r` could make them disagree.
fn check_comment(what: &'static str, comment: &str, limit: usize) -> Result<(), FormatError> {
    if comment.len() > limit {
        return Err(FormatError::TooLong { what, len: comment.len(), limit });
    }
    if comment.chars().any(|c| c.is_control() && c != '\t') {
        return Err(FormatError::ControlCharacter { what });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `minisign -S` output for the file "hello\n", captured from minisign 0.11.
    pub(crate) const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key\nRUQvjScuXlSPOiAy1Y61Kl7RE84uU4yyShHFsRIdI1Dv8xcJASx8F21Lpiz81Bk+Pir9ubdzA0o6o7KMQvGfvx2NcQn4SNQPxw4=\ntrusted comment: timestamp:1795629243\tfile:f.txt\thashed\ntBQ1hT5zOGQtcntuRq7d0SuCYWeuPIsQmh/T/wIbGqmU+tbv0lBjKBXP7XHdEeuqWGWDa2J/BbGJUpNqN6uiCw==\n";

    #[test]
    fn minisigns_signature_parses_and_reencodes_identically() {
        let minisig = Minisig::parse(MINISIGN_SIG.as_bytes()).unwrap();
        assert_eq!(minisig.key_id().to_string(), "3A8F545E2E278D2F");
        assert_eq!(minisig.algorithm(), Algorithm::Prehashed);
        assert_eq!(minisig.trusted_comment(), "timestamp:1795629243\tfile:f.txt\thashed");
        assert_eq!(minisig.untrusted_comment(), DEFAULT_UNTRUSTED_COMMENT);
        assert_eq!(minisig.to_text(), MINISIGN_SIG);
    }

    #[test]
    fn crlf_line_ends_are_accepted() {
        let crlf = MINISIGN_SIG.replace('\n', "\r\n");
        assert_eq!(Minisig::parse(crlf.as_bytes()).unwrap().to_text(), MINISIGN_SIG);
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let bytes = MINISIGN_SIG.as_bytes();
        // Cutting only the final newline leaves a complete signature.
        for len in 0..bytes.len() - 1 {
            assert!(Minisig::parse(&bytes[..len]).is_err(), "accepted {len} bytes");
        }
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in [0, 1, 17, 100, 300, 5000] {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            assert!(Minisig::parse(&garbage).is_err());
        }
        for text in ["\n\n\n\n", "untrusted comment: \n\ntrusted comment: \n\n", "é"] {
            assert!(Minisig::parse(text.as_bytes()).is_err(), "{text:?}");
        }
    }

    #[test]
    fn each_line_is_checked() {
        let cases = [
            (MINISIGN_SIG.replace("untrusted comment: ", "untrusted: "), "prefix"),
            (MINISIGN_SIG.replace("trusted comment: timestamp", "comment: timestamp"), "prefix"),
            (MINISIGN_SIG.replace("RUQvjScu", "RUQvj!cu"), "base64"),
            (MINISIGN_SIG.replace("SNQPxw4=", "SNQ="), "length"),
            (MINISIGN_SIG.replace("pNqN6uiCw==", "pNqN6uiC="), "base64"),
            (MINISIGN_SIG.replace("pNqN6uiCw==", "pNqN6ui"), "length"),
            (MINISIGN_SIG.replace("RUQvjScu", "RUFvjScu"), "algorithm"),
            (format!("{MINISIGN_SIG}more\n"), "trailing"),
            (MINISIGN_SIG.replace("hashed", "has\rhed"), "control"),
            (MINISIGN_SIG.replace("hashed", "has\0hed"), "control"),
        ];
        for (text, expected) in cases {
            let err = Minisig::parse(text.as_bytes()).unwrap_err();
            let matched = match expected {
                "prefix" => matches!(err, FormatError::MissingPrefix { .. }),
                "base64" => matches!(err, FormatError::Base64 { .. }),
                "length" => matches!(err, FormatError::WrongLength { .. }),
                "algorithm" => matches!(err, FormatError::UnsupportedAlgorithm { .. }),
                "trailing" => matches!(err, FormatError::TrailingData { .. }),
                _ => matches!(err, FormatError::ControlCharacter { .. }),
            };
            assert!(matched, "{expected}: got {err:?}");
        }
    }

    #[test]
    fn compact_form_round_trips_and_refuses_every_truncation() {
        let minisig = Minisig::parse(MINISIGN_SIG.as_bytes()).unwrap();
        let compact = minisig.to_compact();
        assert_eq!(compact.len(), COMPACT_FIXED_BYTES + minisig.trusted_comment().len());
        assert_eq!(Minisig::from_compact(&compact).unwrap().to_text(), MINISIGN_SIG);
        for len in 0..COMPACT_FIXED_BYTES {
            assert!(Minisig::from_compact(&compact[..len]).is_err(), "accepted {len} bytes");
        }
        let mut bad = compact.clone();
        bad[1] = b'X';
        assert!(matches!(Minisig::from_compact(&bad), Err(FormatError::UnsupportedAlgorithm { .. })));
        let mut control = compact.clone();
        control.push(b'\n');
        assert!(matches!(Minisig::from_compact(&control), Err(FormatError::ControlCharacter { .. })));
        let mut long = compact;
        long.extend(std::iter::repeat_n(b'x', MAX_TRUSTED_COMMENT_BYTES));
        assert!(matches!(Minisig::from_compact(&long), Err(FormatError::TooLong { .. })));
    }

    #[test]
    fn trusted_comment_over_minisigns_limit_is_refused() {
        let at_limit = "x".repeat(MAX_TRUSTED_COMMENT_BYTES);
        let text = MINISIGN_SIG.replace("timestamp:1795629243\tfile:f.txt\thashed", &at_limit);
        assert!(Minisig::parse(text.as_bytes()).is_ok());
        let over = MINISIGN_SIG.replace("timestamp:1795629243\tfile:f.txt\thashed", &format!("{at_limit}x"));
        assert_eq!(
            Minisig::parse(over.as_bytes()).unwrap_err(),
            FormatError::TooLong { what: "the trusted comment", len: 8174, limit: 8173 }
        );
        let huge = MINISIGN_SIG.replace("hashed", &"x".repeat(MAX_MINISIG_BYTES));
        assert!(matches!(
            Minisig::parse(huge.as_bytes()),
            Err(FormatError::TooLong { what: "the signature file", .. })
        ));
    }
}
