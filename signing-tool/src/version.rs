//! Release versions, compared the way people number releases: the one rule
//! `signing-tool sign` checks a `--version` against and a servent's updater
//! orders releases by.
//!
//! A version is dotted numbers (`1`, `1.2`, `2.10.3`), optionally followed
//! by `-` and a pre-release tag (`1.2-rc1`, `2.0-beta.2`). Numbers compare
//! as numbers (`1.10` > `1.9`), missing ones count as zero (`1.2` =
//! `1.2.0`), and a pre-release comes before its release (`1.2-rc1` <
//! `1.2`). Tags compare part by part, numbers as numbers and words as text
//! (`rc.2` < `rc.10`), as Semantic Versioning orders them. Anything else
//! (empty, letters in the numbers, white space, absurd lengths) is not a
//! version: it is never signed, and a release without one is never installed.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The longest version text accepted.
const MAX_VERSION_LEN: usize = 64;

/// A parsed release version.
#[derive(Clone, Debug)]
pub struct Version {
    numbers: Vec<u64>,
    pre: Option<Vec<Part>>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    // Numbers before words, as Semantic Versioning has it.
    Number(u64),
    Word(String),
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Version, String> {
        let bad = || format!("{text:?} is not a version (dotted numbers, optionally -tag)");
        if text.is_empty() || text.len() > MAX_VERSION_LEN {
            return Err(bad());
        }
        let (release, pre) = match text.split_once('-') {
            Some((release, pre)) => (release, Some(pre)),
            None => (text, None),
        };
        let numbers = release
            .split('.')
            .map(|n| if n.bytes().all(|b| b.is_ascii_digit()) { n.parse::<u64>().ok() } else { None })
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(bad)?;
        let pre = match pre {
            None => None,
            Some(tag) => Some(
                tag.split('.')
                    .map(|part| match part {
                        "" => None,
                        p if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok().map(Part::Number),
                        p if p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                            Some(Part::Word(p.to_owned()))
                        }
                        _ => None,
                    })
                    .collect::<Option<Vec<Part>>>()
                    .ok_or_else(bad)?,
            ),
        };
        Ok(Version { numbers, pre, text: text.to_owned() })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        let number = |v: &Version, i: usize| v.numbers.get(i).copied().unwrap_or(0);
        (0..len).map(|i| number(self, i).cmp(&number(other, i))).find(|o| o.is_ne()).unwrap_or_else(|| {
            match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn numbers_compare_as_numbers_and_missing_ones_are_zero() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("2") > v("1.99.99"));
        assert_eq!(v("1.2"), v("1.2.0"));
        assert!(v("1.2.1") > v("1.2"));
    }

    #[test]
    fn pre_releases_come_before_their_release() {
        assert!(v("1.2-rc1") < v("1.2"));
        assert!(v("1.2-rc1") > v("1.1"));
        assert!(v("1.2-alpha") < v("1.2-beta"));
        assert!(v("1.2-rc.2") < v("1.2-rc.10"));
        assert!(v("1.2-rc.2") < v("1.2-rc.2.1"));
        assert!(v("1.2-1") < v("1.2-alpha"));
    }

    #[test]
    fn anything_else_is_not_a_version() {
        for bad in ["", "v1.2", "1..2", "1.2-", "1.2-rc..1", "1.x", "1.2 ", &"9".repeat(100), "1.2-rc_1"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
        assert!("99999999999999999999999".parse::<Version>().is_err(), "overflows u64");
    }
}
