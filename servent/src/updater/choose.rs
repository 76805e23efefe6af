//! Which release to install, from what a search found: the rules against
//! The Update Framework's attacks, as a pure function.
//!
//! - *arbitrary software*: only results `verified` under a pinned key count;
//! - *mix-and-match*: name and version are the signed ones, never the file
//!   name in the hit, and the signed name must be the package's;
//! - *rollback*: never a version at or below the installed one, nor one
//!   signed before the installed one was;
//! - *key continuity*: an installed package is bound to the key that signed
//!   it; a release signed by any other key is refused (`key_changed`), even
//!   when that key is pinned, unless a rotation record signed by the bound
//!   key names the new key for this package (the caller checks the record
//!   and passes the keys it allows);
//! - *held back*: a version the user rolled back from is skipped by passes
//!   (an explicit `install` of it is the user's call);
//! - *freeze* cannot be ruled out without a signed heartbeat: the newest
//!   release seen and its age are reported so a user can tell.

use signing_tool::{KeyId, Release};

use super::install::Installed;
use super::version::Version;
use crate::searches::SearchResult;
use crate::trust::Verdict;

/// A verified release of the package, as a search found it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The result: sources, URNs, signature.
    pub result: SearchResult,
    /// Its signed metadata.
    pub release: Release,
    /// Its signed version.
    pub version: Version,
}

impl Candidate {
    /// The key that signed it.
    pub fn signer(&self) -> Option<KeyId> {
        self.result.judgement.publisher
    }
}

/// What to do about one package.
#[derive(Clone, Debug)]
pub enum Choice {
    /// Install this one.
    Install(Box<Candidate>),
    /// Nothing to install, and why.
    Keep(String),
    /// Nothing installed and no verified release of that name found, and why.
    NotFound(String),
    /// A newer release was seen but must not be installed, and why.
    Refuse(String),
    /// The newer releases seen are signed by another key than the installed
    /// one's, and no rotation allows it: why, and the keys that signed them.
    KeyChanged(String, Vec<KeyId>),
}

/// The choice for package `name`, and the newest verified release seen;
/// `rotated_to` are the keys that honoured rotation records of the bound
/// key let sign it too.
pub fn choose(
    name: &str,
    installed: Option<&Installed>,
    results: &[SearchResult],
    explicit: bool,
    rotated_to: &[KeyId],
) -> (Choice, Option<Candidate>) {
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut ignored = 0;
    for result in results {
        let signed =
            (result.judgement.verdict == Verdict::Verified).then_some(()).and(result.judgement.release.as_ref());
        let Some(release) = signed.filter(|r| r.name == name) else {
            ignored += usize::from(result.name.to_lowercase().contains(&name.to_lowercase()));
            continue;
        };
        match release.version.parse::<Version>() {
            Ok(version) => candidates.push(Candidate { result: result.clone(), release: release.clone(), version }),
            Err(_) => ignored += 1,
        }
    }
    let newest_first =
        |a: &Candidate, b: &Candidate| b.version.cmp(&a.version).then(b.release.timestamp.cmp(&a.release.timestamp));
    candidates.sort_by(newest_first);
    let newest = candidates.first().cloned();
    let also = if ignored > 0 { format!(" ({ignored} other results not verified, ignored)") } else { String::new() };
    let Some(newest_candidate) = &newest else {
        let why = format!("no verified release of {name} found{also}");
        return (if installed.is_some() { Choice::Keep(why) } else { Choice::NotFound(why) }, None);
    };
    let Some(installed) = installed else {
        return (Choice::Install(Box::new(newest_candidate.clone())), newest);
    };
    let current: Version = match installed.current.version.parse() {
        Ok(version) => version,
        Err(e) => return (Choice::Refuse(format!("the installed version cannot be compared: {e}")), newest),
    };
    let newer: Vec<&Candidate> = candidates.iter().filter(|c| c.version > current).collect();
    if newer.is_empty() {
        let why = format!("{} {current} is the newest verified release seen{also}", installed.current.name);
        return (Choice::Keep(why), newest);
    }
    let bound = installed.current.key_id;
    let (newer, other_keys): (Vec<&Candidate>, Vec<&Candidate>) =
        newer.into_iter().partition(|c| c.signer().is_some_and(|k| Some(k) == bound || rotated_to.contains(&k)));
    if newer.is_empty() {
        let mut keys: Vec<KeyId> = Vec::new();
        for key in other_keys.iter().filter_map(|c| c.signer()) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let listed: Vec<String> = keys.iter().map(KeyId::to_string).collect();
        let bound = bound.map_or_else(|| "unknown".to_owned(), |k| k.to_string());
        let why = format!(
            "{} {} is signed by key {}, but the installed {current} by key {bound}, and no rotation record of key \
             {bound} names the new key for {name}",
            name,
            other_keys[0].version,
            listed.join(", ")
        );
        return (Choice::KeyChanged(why, keys), newest);
    }
    let allowed = newer.iter().find(|c| explicit || !installed.held_back.contains(&c.release.version));
    let Some(best) = allowed else {
        let held = newer[0].version.to_string();
        return (Choice::Keep(format!("{held} is held back after a rollback")), newest);
    };
    if best.release.timestamp < installed.current.timestamp {
        return (
            Choice::Refuse(format!(
                "{} was signed before the installed {current}: refusing what may be a replayed old release",
                best.version
            )),
            newest,
        );
    }
    (Choice::Install(Box::new((*best).clone())), newest)
}

/// Whether a result (verified or not, fake aside) offers a version of the
/// installed package `name` newer than the installed one, signed by another
/// key than the one it is bound to: then a rotation record is worth looking for.
pub fn other_key_offers_newer(name: &str, installed: &Installed, results: &[SearchResult]) -> bool {
    let Ok(current) = installed.current.version.parse::<Version>() else { return false };
    let bound = installed.current.key_id;
    results.iter().any(|result| {
        let judgement = &result.judgement;
        let release = judgement.release.as_ref().filter(|r| r.name == name && judgement.verdict != Verdict::Fake);
        let newer = release.and_then(|r| r.version.parse::<Version>().ok()).is_some_and(|v| v > current);
        newer && judgement.publisher.is_some_and(|key| Some(key) != bound)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::searches::SearchResult;
    use crate::trust::Judgement;
    use crate::updater::install::Package;

    const PUBLISHER: KeyId = KeyId([1; 8]);
    const OTHER: KeyId = KeyId([2; 8]);

    fn result(name: &str, version: &str, timestamp: u64, verdict: Verdict) -> SearchResult {
        signed_by(name, version, timestamp, verdict, PUBLISHER)
    }

    fn signed_by(name: &str, version: &str, timestamp: u64, verdict: Verdict, key: KeyId) -> SearchResult {
        let release = Release {
            name: name.into(),
            version: version.into(),
            sha256: [1; 32],
            tth: None,
            size: 10,
            keywords: vec![],
            timestamp,
            file: format!("{name}-{version}.tar"),
        };
        let judgement = Judgement {
            verdict,
            reason: String::new(),
            publisher: Some(key),
            release: Some(release),
            version: Some(version.into()),
        };
        SearchResult::judged(&format!("{name}-{version}.tar"), 10, judgement)
    }

    fn installed(version: &str, timestamp: u64, held_back: &[&str]) -> Installed {
        Installed {
            current: Package {
                name: "SEBLINUX-base".into(),
                version: version.into(),
                sha256: String::new(),
                key_id: Some(PUBLISHER),
                timestamp,
                file: String::new(),
            },
            previous: None,
            held_back: held_back.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn chosen(choice: &Choice) -> Option<String> {
        match choice {
            Choice::Install(c) => Some(c.release.version.clone()),
            _ => None,
        }
    }

    #[test]
    fn the_highest_verified_version_of_that_very_name_is_chosen() {
        let results = [
            result("SEBLINUX-base", "1.0", 10, Verdict::Verified),
            result("SEBLINUX-base", "1.1", 20, Verdict::Verified),
            result("SEBLINUX-base", "1.2", 30, Verdict::Untrusted),
            result("SEBLINUX-base", "9.0", 30, Verdict::Fake),
            result("SEBLINUX-base-extra", "5.0", 30, Verdict::Verified),
            result("SEBLINUX-base", "1.1-rc1", 15, Verdict::Verified),
        ];
        let (choice, newest) = choose("SEBLINUX-base", None, &results, true, &[]);
        assert_eq!(chosen(&choice).as_deref(), Some("1.1"));
        assert_eq!(newest.unwrap().release.version, "1.1");
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.0", 10, &[])), &results, false, &[]);
        assert_eq!(chosen(&choice).as_deref(), Some("1.1"));
    }

    #[test]
    fn nothing_newer_keeps_what_is_installed() {
        let results = [result("SEBLINUX-base", "1.0", 10, Verdict::Verified)];
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.1", 20, &[])), &results, false, &[]);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("1.1 is the newest")));
        let (choice, _) = choose("SEBLINUX-base", None, &[], false, &[]);
        assert!(matches!(choice, Choice::NotFound(why) if why.contains("no verified release")));
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.1", 20, &[])), &[], false, &[]);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("no verified release")));
    }

    #[test]
    fn a_newer_version_signed_before_the_installed_one_is_refused() {
        let results = [result("SEBLINUX-base", "1.2", 5, Verdict::Verified)];
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.1", 20, &[])), &results, false, &[]);
        assert!(matches!(choice, Choice::Refuse(why) if why.contains("signed before")));
    }

    #[test]
    fn a_version_rolled_back_from_is_skipped_by_passes_but_not_by_install() {
        let results = [
            result("SEBLINUX-base", "1.2", 30, Verdict::Verified),
            result("SEBLINUX-base", "1.1", 20, Verdict::Verified),
        ];
        let held = installed("1.0", 10, &["1.2"]);
        let (choice, _) = choose("SEBLINUX-base", Some(&held), &results, false, &[]);
        assert_eq!(chosen(&choice).as_deref(), Some("1.1"));
        let (choice, _) = choose("SEBLINUX-base", Some(&held), &results[..1], false, &[]);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("held back")));
        let (choice, _) = choose("SEBLINUX-base", Some(&held), &results, true, &[]);
        assert_eq!(chosen(&choice).as_deref(), Some("1.2"));
    }

    #[test]
    fn a_release_whose_version_is_not_a_version_is_ignored() {
        let results = [result("SEBLINUX-base", "latest", 30, Verdict::Verified)];
        let (choice, newest) = choose("SEBLINUX-base", None, &results, false, &[]);
        assert!(matches!(choice, Choice::NotFound(why) if why.contains("1 other results not verified")));
        assert!(newest.is_none());
    }

    #[test]
    fn a_newer_release_by_another_key_is_refused_as_a_key_change() {
        let results = [
            signed_by("SEBLINUX-base", "9.9", 30, Verdict::Verified, OTHER),
            result("SEBLINUX-base", "1.2", 20, Verdict::Verified),
        ];
        let installed = installed("1.2", 20, &[]);
        let (choice, _) = choose("SEBLINUX-base", Some(&installed), &results, true, &[]);
        match choice {
            Choice::KeyChanged(why, keys) => {
                assert_eq!(keys, [OTHER]);
                assert!(why.contains(&format!("9.9 is signed by key {OTHER}")), "{why}");
                assert!(why.contains(&format!("installed 1.2 by key {PUBLISHER}")), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // A newer release by the bound key is still taken, the other key's ignored.
        let with_own = [results[0].clone(), result("SEBLINUX-base", "1.3", 25, Verdict::Verified)];
        let (choice, _) = choose("SEBLINUX-base", Some(&installed), &with_own, false, &[]);
        assert_eq!(chosen(&choice).as_deref(), Some("1.3"));
        // A rotation of the bound key to the other key lets it in.
        let (choice, _) = choose("SEBLINUX-base", Some(&installed), &results, false, &[OTHER]);
        assert_eq!(chosen(&choice).as_deref(), Some("9.9"));
        assert!(other_key_offers_newer("SEBLINUX-base", &installed, &results));
        let untrusted = [signed_by("SEBLINUX-base", "9.9", 30, Verdict::Untrusted, OTHER)];
        assert!(other_key_offers_newer("SEBLINUX-base", &installed, &untrusted));
        let older = [signed_by("SEBLINUX-base", "1.0", 30, Verdict::Verified, OTHER)];
        assert!(!other_key_offers_newer("SEBLINUX-base", &installed, &older));
        let fake = [signed_by("SEBLINUX-base", "9.9", 30, Verdict::Fake, OTHER)];
        assert!(!other_key_offers_newer("SEBLINUX-base", &installed, &fake));
        assert!(!other_key_offers_newer("SEBLINUX-base", &installed, &with_own[1..]));
        // Nothing installed: nothing is bound yet.
        let (choice, _) = choose("SEBLINUX-base", None, &results[..1], false, &[]);
        assert_eq!(chosen(&choice).as_deref(), Some("9.9"));
    }
}
