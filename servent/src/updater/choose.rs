//! Which release to install, from what a search found: the rules against
//! The Update Framework's attacks, as a pure function.
//!
//! - *arbitrary software*: only results `verified` under a pinned key count;
//! - *mix-and-match*: name and version are the signed ones, never the file
//!   name in the hit, and the signed name must be the package's;
//! - *rollback*: never a version at or below the installed one, nor one
//!   signed before the installed one was;
//! - *held back*: a version the user rolled back from is skipped by passes
//!   (an explicit `install` of it is the user's call);
//! - *freeze* cannot be ruled out without a signed heartbeat: the newest
//!   release seen and its age are reported so a user can tell.

use signing_tool::Release;

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

/// What to do about one package.
#[derive(Clone, Debug)]
pub enum Choice {
    /// Install this one.
    Install(Box<Candidate>),
    /// Nothing to install, and why.
    Keep(String),
    /// A newer release was seen but must not be installed, and why.
    Refuse(String),
}

/// The choice for package `name`, and the newest verified release seen.
pub fn choose(
    name: &str,
    installed: Option<&Installed>,
    results: &[SearchResult],
    explicit: bool,
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
        return (Choice::Keep(format!("no verified release of {name} found{also}")), None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::searches::SearchResult;
    use crate::trust::Judgement;
    use crate::updater::install::Package;

    fn result(name: &str, version: &str, timestamp: u64, verdict: Verdict) -> SearchResult {
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
            publisher: None,
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
                key_id: String::new(),
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
        let (choice, newest) = choose("SEBLINUX-base", None, &results, true);
        assert_eq!(chosen(&choice).as_deref(), Some("1.1"));
        assert_eq!(newest.unwrap().release.version, "1.1");
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.0", 10, &[])), &results, false);
        assert_eq!(chosen(&choice).as_deref(), Some("1.1"));
    }

    #[test]
    fn nothing_newer_keeps_what_is_installed() {
        let results = [result("SEBLINUX-base", "1.0", 10, Verdict::Verified)];
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.1", 20, &[])), &results, false);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("1.1 is the newest")));
        let (choice, _) = choose("SEBLINUX-base", None, &[], false);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("no verified release")));
    }

    #[test]
    fn a_newer_version_signed_before_the_installed_one_is_refused() {
        let results = [result("SEBLINUX-base", "1.2", 5, Verdict::Verified)];
        let (choice, _) = choose("SEBLINUX-base", Some(&installed("1.1", 20, &[])), &results, false);
        assert!(matches!(choice, Choice::Refuse(why) if why.contains("signed before")));
    }

    #[test]
    fn a_version_rolled_back_from_is_skipped_by_passes_but_not_by_install() {
        let results = [
            result("SEBLINUX-base", "1.2", 30, Verdict::Verified),
            result("SEBLINUX-base", "1.1", 20, Verdict::Verified),
        ];
        let held = installed("1.0", 10, &["1.2"]);
        let (choice, _) = choose("SEBLINUX-base", Some(&held), &results, false);
        assert_eq!(chosen(&choice).as_deref(), Some("1.1"));
        let (choice, _) = choose("SEBLINUX-base", Some(&held), &results[..1], false);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("held back")));
        let (choice, _) = choose("SEBLINUX-base", Some(&held), &results, true);
        assert_eq!(chosen(&choice).as_deref(), Some("1.2"));
    }

    #[test]
    fn a_release_whose_version_is_not_a_version_is_ignored() {
        let results = [result("SEBLINUX-base", "latest", 30, Verdict::Verified)];
        let (choice, newest) = choose("SEBLINUX-base", None, &results, false);
        assert!(matches!(choice, Choice::Keep(why) if why.contains("1 other results not verified")));
        assert!(newest.is_none());
    }
}
