//! Release metadata, carried in a signature's trusted comment.
//!
//! minisign signs a free-form one-line *trusted comment* along with each file (its default is
//! `timestamp:<unix>` TAB `file:<basename>`). A release signature keeps those two fields and
//! appends, TAB-separated, `name:`, `version:`, `sha256:` (hex of the file), `size:` (bytes)
//! and `keywords:` (comma-separated, omitted when empty):
//!
//! ```text
//! timestamp:1700000000⇥file:SEBLINUX-base-1.1.tar⇥name:SEBLINUX-base⇥version:1.1⇥sha256:9f86…⇥size:1234⇥keywords:SEBLINUX
//! ```
//!
//! (`⇥` is a TAB.)
//!
//! Because the global signature covers the trusted comment, a verified comment tells what the
//! file must be (its SHA-256 and size) before a single byte of it is fetched. Fields are parsed
//! in any order; unknown fields and bare words (minisign's `hashed`) are ignored so the format
//! can grow, but a field given twice is refused: two readers must never disagree on its value.

use std::fmt;

use crate::error::FormatError;

/// Release metadata from a signature's trusted comment: what a signed file is.
///
/// Identify a release by the signer's key id and `sha256`, never by its signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The product, e.g. `SEBLINUX-base`.
    pub name: String,
    /// Its version, e.g. `1.1`.
    pub version: String,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// Size of the file in bytes.
    pub size: u64,
    /// Search keywords, e.g. `SEBLINUX`.
    pub keywords: Vec<String>,
    /// When it was signed (seconds since the Unix epoch), minisign's `timestamp:`.
    pub timestamp: u64,
    /// The file's name when it was signed, minisign's `file:`.
    pub file: String,
}

/// What a publisher says about a release when signing it; the digests come from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMeta {
    /// The product name.
    pub name: String,
    /// The version.
    pub version: String,
    /// Search keywords (each without commas).
    pub keywords: Vec<String>,
}

impl Release {
    /// Parses release metadata from a trusted comment (without its `trusted comment: ` prefix).
    ///
    /// A comment without `name:` or `version:` (such as minisign's default) is not a release.
    pub fn parse(comment: &str) -> Result<Release, FormatError> {
        let mut fields = Fields::default();
        for item in comment.split('\t') {
            let Some((key, value)) = item.split_once(':') else { continue };
            let slot = match key {
                "timestamp" => &mut fields.timestamp,
                "file" => &mut fields.file,
                "name" => &mut fields.name,
                "version" => &mut fields.version,
                "sha256" => &mut fields.sha256,
                "size" => &mut fields.size,
                "keywords" => &mut fields.keywords,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(FormatError::DuplicateField { field: key.to_owned() });
            }
        }
        let name = required("name", fields.name)?;
        let version = required("version", fields.version)?;
        check_value("name", name)?;
        check_value("version", version)?;
        let file = required("file", fields.file)?;
        let keywords = match fields.keywords {
            Some(list) => parse_keywords(list)?,
            None => Vec::new(),
        };
        Ok(Release {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256: parse_sha256(required("sha256", fields.sha256)?)?,
            size: parse_decimal("size", required("size", fields.size)?)?,
            keywords,
            timestamp: parse_decimal("timestamp", required("timestamp", fields.timestamp)?)?,
            file: file.to_owned(),
        })
    }
}

impl fmt::Display for Release {
    /// `name SEBLINUX-base version 1.1 size 1234 keywords SEBLINUX`, as `verify` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name {} version {} size {}", self.name, self.version, self.size)?;
        if !self.keywords.is_empty() {
            write!(f, " keywords {}", self.keywords.join(","))?;
        }
        Ok(())
    }
}

impl ReleaseMeta {
    /// Checks that the values can be written into a trusted comment and read back unchanged.
    pub fn check(&self) -> Result<(), FormatError> {
        check_value("name", &self.name)?;
        check_value("version", &self.version)?;
        if self.version.parse::<crate::version::Version>().is_err() {
            return Err(FormatError::BadField {
                field: "version",
                reason: "it is not dotted numbers with an optional -pre-release (1.2, 2.0-rc1)",
            });
        }
        for keyword in &self.keywords {
            check_keyword(keyword)?;
        }
        Ok(())
    }
}

/// The trusted comment of a signature on `file` made at `timestamp`, with the file's digests
/// and, for a release, its metadata.
pub(crate) fn trusted_comment(
    timestamp: u64,
    file: &str,
    meta: Option<&ReleaseMeta>,
    sha256: &[u8; 32],
    size: u64,
) -> Result<String, FormatError> {
    check_value("file", file)?;
    let mut comment = format!("timestamp:{timestamp}\tfile:{file}");
    if let Some(meta) = meta {
        meta.check()?;
        comment.push_str(&format!("\tname:{}\tversion:{}", meta.name, meta.version));
    }
    comment.push_str(&format!("\tsha256:{}\tsize:{size}", hex(sha256)));
    if let Some(meta) = meta.filter(|meta| !meta.keywords.is_empty()) {
        comment.push_str(&format!("\tkeywords:{}", meta.keywords.join(",")));
    }
    Ok(comment)
}

/// Lowercase hex, as `sha256sum` prints digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct Fields<'a> {
    timestamp: Option<&'a str>,
    file: Option<&'a str>,
    name: Option<&'a str>,
    version: Option<&'a str>,
    sha256: Option<&'a str>,
    size: Option<&'a str>,
    keywords: Option<&'a str>,
}

fn required<'a>(field: &'static str, value: Option<&'a str>) -> Result<&'a str, FormatError> {
    value.ok_or(FormatError::MissingField { field })
}

/// A value must survive the trip through a one-line, TAB-separated comment that minisign trims.
fn check_value(field: &'static str, value: &str) -> Result<(), FormatError> {
    if value.is_empty() {
        return Err(FormatError::BadField { field, reason: "it is empty" });
    }
    if value.chars().any(char::is_control) {
        return Err(FormatError::BadField { field, reason: "it contains a control character (tab, newline...)" });
    }
    if value.trim() != value {
        return Err(FormatError::BadField { field, reason: "it starts or ends with white space" });
    }
    Ok(())
}

fn check_keyword(keyword: &str) -> Result<(), FormatError> {
    check_value("keywords", keyword)?;
    if keyword.contains(',') {
        return Err(FormatError::BadField { field: "keywords", reason: "a keyword contains a comma" });
    }
    Ok(())
}

fn parse_keywords(list: &str) -> Result<Vec<String>, FormatError> {
    list.split(',')
        .map(|keyword| {
            check_keyword(keyword)?;
            Ok(keyword.to_owned())
        })
        .collect()
}

fn parse_decimal(field: &'static str, value: &str) -> Result<u64, FormatError> {
    // u64::from_str accepts a leading '+'; a signed field has one spelling only.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FormatError::BadField { field, reason: "not a decimal number" });
    }
    value.parse().map_err(|_| FormatError::BadField { field, reason: "too large" })
}

fn parse_sha256(value: &str) -> Result<[u8; 32], FormatError> {
    let bad = FormatError::BadField { field: "sha256", reason: "not 64 hex digits" };
    let digits = value.as_bytes();
    if digits.len() != 64 {
        return Err(bad);
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16).ok_or_else(|| bad.clone())?;
        let low = (pair[1] as char).to_digit(16).ok_or_else(|| bad.clone())?;
        *byte = (high * 16 + low) as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn comment(extra: &str) -> String {
        format!("timestamp:1700000000\tfile:SEBLINUX-base-1.1.tar\tname:SEBLINUX-base\tversion:1.1\tsha256:{SHA}\tsize:1234{extra}")
    }

    #[test]
    fn release_comment_parses_into_its_fields() {
        let release = Release::parse(&comment("\tkeywords:SEBLINUX,base")).unwrap();
        assert_eq!(release.name, "SEBLINUX-base");
        assert_eq!(release.version, "1.1");
        assert_eq!(hex(&release.sha256), SHA);
        assert_eq!(release.size, 1234);
        assert_eq!(release.keywords, ["SEBLINUX", "base"]);
        assert_eq!(release.timestamp, 1_700_000_000);
        assert_eq!(release.file, "SEBLINUX-base-1.1.tar");
        assert_eq!(release.to_string(), "name SEBLINUX-base version 1.1 size 1234 keywords SEBLINUX,base");
    }

    #[test]
    fn written_comment_reads_back_the_same() {
        let meta =
            ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.1".into(), keywords: vec!["SEBLINUX".into()] };
        let text = trusted_comment(7, "a:b.tar", Some(&meta), &[0xab; 32], 99).unwrap();
        let release = Release::parse(&text).unwrap();
        assert_eq!((release.name.as_str(), release.version.as_str()), ("SEBLINUX-base", "1.1"));
        assert_eq!((release.sha256, release.size, release.timestamp), ([0xab; 32], 99, 7));
        assert_eq!(release.keywords, ["SEBLINUX"]);
        assert_eq!(release.file, "a:b.tar");
    }

    #[test]
    fn minisigns_default_comment_is_not_a_release() {
        let err = Release::parse("timestamp:1795629243\tfile:f.txt\thashed").unwrap_err();
        assert_eq!(err, FormatError::MissingField { field: "name" });
        let no_version = comment("").replace("\tversion:1.1", "");
        assert_eq!(Release::parse(&no_version).unwrap_err(), FormatError::MissingField { field: "version" });
    }

    #[test]
    fn duplicated_field_is_refused() {
        let err = Release::parse(&comment("\tsize:1")).unwrap_err();
        assert_eq!(err, FormatError::DuplicateField { field: "size".into() });
    }

    #[test]
    fn unknown_fields_and_bare_words_are_ignored() {
        assert!(Release::parse(&comment("\thashed\tlicense:GPL")).is_ok());
    }

    #[test]
    fn malformed_values_are_refused() {
        for (bad, field) in [
            (comment("").replace("size:1234", "size:+1234"), "size"),
            (comment("").replace("size:1234", "size:99999999999999999999"), "size"),
            (comment("").replace("timestamp:1700000000", "timestamp:"), "timestamp"),
            (comment("").replace(SHA, &SHA[..63]), "sha256"),
            (comment("").replace(SHA, &SHA.replace('9', "g")), "sha256"),
            (comment("").replace(SHA, &format!("{}é", &SHA[..62])), "sha256"),
            (comment("").replace("name:SEBLINUX-base", "name:"), "name"),
            (comment("\tkeywords:a,,b"), "keywords"),
        ] {
            match Release::parse(&bad) {
                Err(FormatError::BadField { field: f, .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn metadata_that_would_not_read_back_is_refused_at_signing() {
        for meta in [
            ReleaseMeta { name: "a\tb".into(), version: "1".into(), keywords: vec![] },
            ReleaseMeta { name: "a".into(), version: " 1".into(), keywords: vec![] },
            ReleaseMeta { name: "a".into(), version: "1".into(), keywords: vec!["x,y".into()] },
            ReleaseMeta { name: "a".into(), version: "1".into(), keywords: vec!["".into()] },
            ReleaseMeta { name: "a".into(), version: "1 0".into(), keywords: vec![] },
            ReleaseMeta { name: "a".into(), version: "latest".into(), keywords: vec![] },
            ReleaseMeta { name: "a".into(), version: "1..2".into(), keywords: vec![] },
        ] {
            assert!(trusted_comment(1, "f", Some(&meta), &[0; 32], 1).is_err(), "{meta:?}");
        }
        assert!(trusted_comment(1, "new\nline", None, &[0; 32], 1).is_err());
    }
}
