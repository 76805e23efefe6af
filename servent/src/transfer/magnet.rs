//! Magnet links: what to download, named by content rather than by place.
//!
//! A magnet is a URI whose query parameters describe a file:
//! `magnet:?xt=urn:sha1:…&dn=SEBLINUX-iso-2.0.img&xl=25165824&xs=http://1.2.3.4:6346/uri-res/N2R?urn:sha1:…`.
//! `xt` ("exact topic") is the content's URN and may appear several times
//! (also as `xt.1`, `xt.2`); `dn` is a display name; `xl` the exact length;
//! `xs` ("exact source") and `as` ("acceptable source") are places that serve
//! it. Only the URNs matter for correctness: the name is a suggestion, the
//! sources are hints, and the downloaded bytes are checked against the URNs.
//!
//! Parsing is bounded (length and parameter count) and strict where a
//! mistake would mislead (a malformed `urn:sha1:` or `xl` is an error, not
//! something to skip) and lenient where the magnet only carries what we
//! cannot use (BitTorrent or eDonkey topics, tracker URLs, sources named by
//! host name): those are ignored, as every magnet consumer does.

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::str::FromStr;

use search::Urn;

/// Longest magnet accepted, in bytes.
pub const MAX_MAGNET_LEN: usize = 4096;
/// Most `key=value` parameters accepted in one magnet.
pub const MAX_PARAMS: usize = 32;
/// Most sources kept from one magnet (at most one per parameter anyway).
pub const MAX_SOURCES: usize = MAX_PARAMS;

/// A parsed magnet link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// The content's `urn:sha1:`, if the magnet names it.
    pub sha1: Option<Urn>,
    /// The content's `urn:sha256:`, if the magnet names it.
    pub sha256: Option<Urn>,
    /// The suggested file name (`dn`), percent-decoded.
    pub name: Option<String>,
    /// The exact size in bytes (`xl`).
    pub size: Option<u64>,
    /// Servents serving the content (`xs` and `as`), in order, without repeats.
    pub sources: Vec<SocketAddrV4>,
}

/// Why a text is not a magnet we can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The text does not start with `magnet:?`.
    #[error("not a magnet link: it must start with \"magnet:?\"")]
    NotAMagnet,
    /// Longer than [`MAX_MAGNET_LEN`].
    #[error("magnet link too long: {0} bytes, at most {MAX_MAGNET_LEN}")]
    TooLong(usize),
    /// More than [`MAX_PARAMS`] parameters.
    #[error("magnet link has more than {MAX_PARAMS} parameters")]
    TooManyParams,
    /// No `xt` names a `urn:sha1:` or `urn:sha256:`.
    #[error("magnet link has no urn:sha1: or urn:sha256: exact topic (xt=…)")]
    NoUrn,
    /// An `xt` that claims to be a SHA-1, bitprint or SHA-256 URN but is not one.
    #[error("magnet link has a malformed exact topic: xt={0}")]
    BadUrn(String),
    /// Two `xt` of the same kind that disagree.
    #[error("magnet link names two different {0} contents")]
    ConflictingUrns(&'static str),
    /// An `xl` that is not a decimal number of bytes.
    #[error("magnet link has a malformed exact length: xl={0}")]
    BadSize(String),
    /// Percent-encoding that is broken or does not decode to UTF-8.
    #[error("magnet link has malformed percent-encoding in {0}")]
    BadEncoding(String),
}

impl Magnet {
    /// Parses a `magnet:?…` link.
    ///
    /// ```
    /// use servent::transfer::magnet::Magnet;
    /// let magnet = Magnet::parse("magnet:?xt=urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB&dn=a%20b.img&xl=42").unwrap();
    /// assert_eq!(magnet.name.as_deref(), Some("a b.img"));
    /// assert_eq!(magnet.size, Some(42));
    /// ```
    pub fn parse(text: &str) -> Result<Magnet, MagnetError> {
        let text = text.trim();
        if text.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong(text.len()));
        }
        let query = match text.get(..8) {
            Some(prefix) if prefix.eq_ignore_ascii_case("magnet:?") => &text[8..],
            _ => return Err(MagnetError::NotAMagnet),
        };
        let mut magnet = Magnet { sha1: None, sha256: None, name: None, size: None, sources: Vec::new() };
        let params = query.split('&').filter(|p| !p.is_empty());
        if params.clone().count() > MAX_PARAMS {
            return Err(MagnetError::TooManyParams);
        }
        for param in params {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            // `xt.1`, `xt.2`… number repeated parameters.
            let key = key.split('.').next().unwrap_or(key).to_ascii_lowercase();
            match key.as_str() {
                "xt" => magnet.add_topic(&decode(value, "xt", false)?)?,
                "dn" => magnet.name = Some(decode(value, "dn", true)?).filter(|n| !n.is_empty()),
                "xl" => {
                    let size = decode(value, "xl", false)?;
                    let parsed = size.parse().map_err(|_| MagnetError::BadSize(size.clone()))?;
                    magnet.size = Some(parsed);
                }
                "xs" | "as" => {
                    if let Some(source) = parse_source(&decode(value, &key, false)?) {
                        if !magnet.sources.contains(&source) && magnet.sources.len() < MAX_SOURCES {
                            magnet.sources.push(source);
                        }
                    }
                }
                _ => {}
            }
        }
        if magnet.sha1.is_none() && magnet.sha256.is_none() {
            return Err(MagnetError::NoUrn);
        }
        Ok(magnet)
    }

    /// Records one exact topic: ours are kept, other kinds ignored.
    fn add_topic(&mut self, topic: &str) -> Result<(), MagnetError> {
        let lower = topic.to_ascii_lowercase();
        let ours = ["urn:sha1:", "urn:sha256:", "urn:bitprint:", "urn:bp:"];
        if !ours.iter().any(|prefix| lower.starts_with(prefix)) {
            // urn:btih:, urn:ed2k:, urn:tree:tiger:… name the same content
            // in other networks; nothing here can check them.
            return if lower.starts_with("urn:") { Ok(()) } else { Err(MagnetError::BadUrn(topic.into())) };
        }
        let urn: Urn = topic.parse().map_err(|_| MagnetError::BadUrn(topic.into()))?;
        let (slot, kind) = match urn {
            Urn::Sha1(_) => (&mut self.sha1, "urn:sha1:"),
            Urn::Sha256(_) => (&mut self.sha256, "urn:sha256:"),
        };
        match slot {
            Some(known) if *known != urn => Err(MagnetError::ConflictingUrns(kind)),
            _ => {
                *slot = Some(urn);
                Ok(())
            }
        }
    }

    /// The magnet as a URI, with a `/uri-res/N2R` source for each known
    /// servent; [`Magnet::parse`] reads it back unchanged when it fits in
    /// [`MAX_MAGNET_LEN`] and [`MAX_PARAMS`]. When it would not, the last sources are left
    /// out, then the name (percent-encoding can triple it): the URNs and
    /// the size always fit.
    pub fn to_uri(&self) -> String {
        let topics: Vec<String> = self.sha1.iter().chain(&self.sha256).map(|urn| format!("xt={urn}")).collect();
        let size = self.size.map(|size| format!("xl={size}"));
        let mut name = self.name.as_ref().map(|name| format!("dn={}", encode(name)));
        let mut sources: Vec<String> = match self.sha1.or(self.sha256) {
            Some(urn) => self.sources.iter().map(|source| format!("xs=http://{source}/uri-res/N2R?{urn}")).collect(),
            None => Vec::new(),
        };
        loop {
            let params: Vec<&str> =
                topics.iter().chain(&name).chain(&size).chain(&sources).map(String::as_str).collect();
            let fits = params.len() <= MAX_PARAMS;
            let uri = format!("magnet:?{}", params.join("&"));
            if (fits && uri.len() <= MAX_MAGNET_LEN) || (sources.is_empty() && name.is_none()) {
                return uri;
            }
            if sources.pop().is_none() {
                name = None;
            }
        }
    }
}

impl FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(text: &str) -> Result<Magnet, MagnetError> {
        Magnet::parse(text)
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// A source we can dial: `http://ip:port/…` or a bare `ip:port`. Host
/// names, other schemes and unusable addresses are not sources for us.
fn parse_source(text: &str) -> Option<SocketAddrV4> {
    let rest = match text.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &text[7..],
        _ => text,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    match authority.parse::<SocketAddr>().ok()? {
        SocketAddr::V4(addr) if addr.port() != 0 && !addr.ip().is_unspecified() => Some(addr),
        _ => None,
    }
}

/// Percent-decodes a parameter value; `+` means a space in names, where
/// browsers put it, and nowhere else.
fn decode(value: &str, key: &str, plus_is_space: bool) -> Result<String, MagnetError> {
    let bad = || MagnetError::BadEncoding(key.to_string());
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
    const SHA256: &str = "urn:sha256:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQTCQKRMFYYDENBWHA5DYPQ";

    fn sha1() -> Urn {
        SHA1.parse().unwrap()
    }

    #[test]
    fn full_magnet_is_parsed() {
        let text = format!(
            "magnet:?xt={SHA1}&xt.2={SHA256}&dn=SEBLINUX%20iso+2.0.img&xl=25165824\
             &xs=http://10.0.0.1:6346/uri-res/N2R?{SHA1}&as=10.0.0.2:6347&tr=udp://tracker:80"
        );
        let magnet = Magnet::parse(&text).unwrap();
        assert_eq!(magnet.sha1, Some(sha1()));
        assert_eq!(magnet.sha256, Some(SHA256.parse().unwrap()));
        assert_eq!(magnet.name.as_deref(), Some("SEBLINUX iso 2.0.img"));
        assert_eq!(magnet.size, Some(25_165_824));
        let sources: Vec<String> = magnet.sources.iter().map(ToString::to_string).collect();
        assert_eq!(sources, ["10.0.0.1:6346", "10.0.0.2:6347"]);
    }

    #[test]
    fn bitprint_topic_gives_its_sha1() {
        let text = "magnet:?xt=urn:bitprint:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(Magnet::parse(text).unwrap().sha1, Some(sha1()));
    }

    #[test]
    fn to_uri_never_exceeds_the_limit_it_parses() {
        let mut magnet = Magnet::parse(&format!("magnet:?xt={SHA1}&xl=5")).unwrap();
        magnet.name = Some("é".repeat(MAX_MAGNET_LEN / 2));
        magnet.sources =
            (1..=MAX_SOURCES as u8).map(|n| SocketAddrV4::new(std::net::Ipv4Addr::new(192, 0, 2, n), 6346)).collect();
        let uri = magnet.to_uri();
        assert!(uri.len() <= MAX_MAGNET_LEN, "{} bytes", uri.len());
        let parsed = Magnet::parse(&uri).unwrap();
        assert_eq!((parsed.sha1, parsed.size, parsed.name), (magnet.sha1, Some(5), None));
        magnet.name = Some("short".into());
        let parsed = Magnet::parse(&magnet.to_uri()).unwrap();
        assert_eq!(parsed.name.as_deref(), Some("short"));
        assert_eq!(parsed.sources, magnet.sources[..MAX_PARAMS - 3], "as many sources as parameters allow");
    }

    #[test]
    fn to_uri_round_trips() {
        let magnet = Magnet {
            sha1: Some(sha1()),
            sha256: Some(SHA256.parse().unwrap()),
            name: Some("a b&c=d/é.img".into()),
            size: Some(7),
            sources: vec!["1.2.3.4:6346".parse().unwrap()],
        };
        let uri = magnet.to_uri();
        assert!(uri.starts_with(&format!("magnet:?xt={SHA1}&xt={SHA256}&dn=a%20b%26c%3Dd%2F%C3%A9.img&xl=7")), "{uri}");
        assert_eq!(Magnet::parse(&uri).unwrap(), magnet);
    }

    #[test]
    fn unusable_sources_and_foreign_topics_are_ignored() {
        let text = format!(
            "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&xt={SHA1}\
             &xs=http://example.org:80/file&xs=https://1.2.3.4/x&xs=0.0.0.0:6346&xs=1.2.3.4:0&xs=[::1]:6346"
        );
        let magnet = Magnet::parse(&text).unwrap();
        assert_eq!(magnet.sha1, Some(sha1()));
        assert!(magnet.sources.is_empty(), "{:?}", magnet.sources);
    }

    #[test]
    fn repeated_sources_are_kept_once() {
        let text = format!("magnet:?xt={SHA1}&xs=1.2.3.4:5&as=http://1.2.3.4:5/");
        assert_eq!(Magnet::parse(&text).unwrap().sources.len(), 1);
    }

    #[test]
    fn malformed_magnets_get_clear_errors() {
        let cases = [
            ("http://example.org/", MagnetError::NotAMagnet),
            (SHA1, MagnetError::NotAMagnet),
            ("magnet:", MagnetError::NotAMagnet),
            ("magnet:?dn=x", MagnetError::NoUrn),
            ("magnet:?xt=urn:btih:abc", MagnetError::NoUrn),
            ("magnet:?xt=urn:sha1:AAAA", MagnetError::BadUrn("urn:sha1:AAAA".into())),
            ("magnet:?xt=sha1:AAAA", MagnetError::BadUrn("sha1:AAAA".into())),
            (&format!("magnet:?xt={SHA1}&xl=12kb"), MagnetError::BadSize("12kb".into())),
            (&format!("magnet:?xt={SHA1}&xl=-1"), MagnetError::BadSize("-1".into())),
            (&format!("magnet:?xt={SHA1}&dn=%zz"), MagnetError::BadEncoding("dn".into())),
            (&format!("magnet:?xt={SHA1}&dn=%ff"), MagnetError::BadEncoding("dn".into())),
            (&format!("magnet:?xt={SHA1}&dn=%f"), MagnetError::BadEncoding("dn".into())),
            (
                &format!("magnet:?xt={SHA1}&xt=urn:sha1:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT"),
                MagnetError::ConflictingUrns("urn:sha1:"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Magnet::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn oversized_magnets_are_refused_before_parsing() {
        let long = format!("magnet:?xt={SHA1}&dn={}", "a".repeat(MAX_MAGNET_LEN));
        assert!(matches!(Magnet::parse(&long), Err(MagnetError::TooLong(_))));
        let many = format!("magnet:?xt={SHA1}{}", "&x=1".repeat(MAX_PARAMS));
        assert_eq!(Magnet::parse(&many), Err(MagnetError::TooManyParams));
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(MagnetError::NoUrn.to_string(), "magnet link has no urn:sha1: or urn:sha256: exact topic (xt=…)");
    }
}
