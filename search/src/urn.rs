//! Content identities: `urn:sha1:` (HUGE, for Gnutella interoperability) and
//! `urn:sha256:` (ours, for every security decision), both in RFC 4648 base32.

use std::fmt;
use std::str::FromStr;

use base32::Alphabet;

const BASE32: Alphabet = Alphabet::Rfc4648 { padding: false };

/// A content URN as carried in Gnutella's HUGE extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Urn {
    /// `urn:sha1:` followed by 32 base32 characters.
    Sha1([u8; 20]),
    /// `urn:sha256:` followed by 52 base32 characters.
    Sha256([u8; 32]),
}

/// Why a text is not a URN we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a urn:sha1: or urn:sha256: URN: {0:?}")]
pub struct UrnError(String);

impl Urn {
    /// The raw digest bytes.
    pub fn digest(&self) -> &[u8] {
        match self {
            Urn::Sha1(d) => d,
            Urn::Sha256(d) => d,
        }
    }

    /// The digest in base32, without the `urn:…:` prefix.
    pub fn base32(&self) -> String {
        base32::encode(BASE32, self.digest())
    }
}

impl fmt::Display for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Urn::Sha1(_) => write!(f, "urn:sha1:{}", self.base32()),
            Urn::Sha256(_) => write!(f, "urn:sha256:{}", self.base32()),
        }
    }
}

impl fmt::Debug for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Urn {
    type Err = UrnError;

    /// Parses `urn:sha1:BASE32` or `urn:sha256:BASE32`, case-insensitively
    /// (also the `urn:bitprint:SHA1.TIGER` form, keeping its SHA-1 part).
    fn from_str(text: &str) -> Result<Urn, UrnError> {
        let err = || UrnError(text.chars().take(100).collect());
        let lower = text.trim().to_ascii_lowercase();
        let (kind, body) = lower.strip_prefix("urn:").and_then(|rest| rest.split_once(':')).ok_or_else(err)?;
        let body = match kind {
            "bitprint" | "bp" => body.split('.').next().unwrap_or(""),
            _ => body,
        };
        let decoded = decode_base32(body).ok_or_else(err)?;
        match (kind, decoded.len()) {
            ("sha1" | "bitprint" | "bp", 20) => Ok(Urn::Sha1(decoded.try_into().map_err(|_| err())?)),
            ("sha256", 32) => Ok(Urn::Sha256(decoded.try_into().map_err(|_| err())?)),
            _ => Err(err()),
        }
    }
}

/// URNs travel in JSON (the API, the hash cache) as their text form.
impl serde::Serialize for Urn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Urn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Urn, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn decode_base32(body: &str) -> Option<Vec<u8>> {
    if body.is_empty() || body.len() > 64 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    base32::decode(BASE32, &body.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_urn_round_trips_through_text() {
        let text = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
        let urn: Urn = text.parse().unwrap();
        assert!(matches!(urn, Urn::Sha1(_)));
        assert_eq!(urn.to_string(), text);
    }

    #[test]
    fn sha256_urn_round_trips_through_text() {
        let urn = Urn::Sha256([7; 32]);
        assert_eq!(urn.to_string().parse::<Urn>().unwrap(), urn);
    }

    #[test]
    fn urn_parsing_ignores_case() {
        let urn: Urn = "URN:SHA1:plsthipqgsszts5fjupakuzwugyqypfb".parse().unwrap();
        assert_eq!(urn.to_string(), "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB");
    }

    #[test]
    fn bitprint_keeps_its_sha1_part() {
        let urn: Urn =
            "urn:bitprint:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
        assert_eq!(urn.to_string(), "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB");
    }

    #[test]
    fn urn_serializes_as_its_text() {
        let urn: Urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap();
        let json = serde_json::to_string(&urn).unwrap();
        assert_eq!(json, "\"urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB\"");
        assert_eq!(serde_json::from_str::<Urn>(&json).unwrap(), urn);
    }

    #[test]
    fn malformed_urns_are_refused() {
        for bad in [
            "",
            "urn:",
            "urn:sha1:",
            "urn:sha1:AAAA",
            "urn:md5:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB",
            "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPF!",
            "sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB",
        ] {
            assert!(bad.parse::<Urn>().is_err(), "{bad}");
        }
    }
}
