//! Signed releases against fakes, end to end: a publisher, a faker and a
//! user servent on loopback, real signatures, real downloads.

mod common;

use std::path::Path;

use async_std::task;
use common::{share, start_with, wait_connected, wait_for, wait_indexed};
use servent::node::{NodeError, NodeHandle, SearchSnapshot};
use servent::searches::SearchResult;
use servent::transfer::download::{DownloadState, Keep};
use servent::trust::{TrustedKey, Verdict};
use signing_tool::{Minisig, ReleaseMeta, SecretKey, Signer};

const NAME: &str = "SEBLINUX-base-1.0.tar";
const GENUINE: &[u8] = b"SEBLINUX base system 1.0, the real one";

fn sign(key: &SecretKey, content: &[u8], name: &str) -> Minisig {
    let mut signer = Signer::new();
    signer.update(content);
    let meta = ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.0".into(), keywords: vec!["SEBLINUX".into()] };
    signer.finish(key, name, Some(&meta), 1_700_000_000).unwrap()
}

fn write_signature(dir: &Path, name: &str, minisig: &Minisig) {
    std::fs::write(dir.join(format!("{name}.minisig")), minisig.to_text()).unwrap();
}

/// Everything under `dir`, as relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

async fn results(node: &NodeHandle, query: &str, count: usize) -> SearchSnapshot {
    let id = node.search(query, 3).await.unwrap();
    wait_for(&format!("{count} results for {query}"), || async {
        node.search_results(id).await.unwrap().is_some_and(|s| s.results.len() >= count)
    })
    .await;
    node.search_results(id).await.unwrap().unwrap()
}

fn by_verdict(snapshot: &SearchSnapshot, verdict: Verdict) -> &SearchResult {
    let found = snapshot.results.iter().find(|r| r.judgement.verdict == verdict);
    found.unwrap_or_else(|| panic!("no {verdict} result among {:#?}", snapshot.results))
}

fn target(result: &SearchResult) -> String {
    result.sha1.unwrap().to_string()
}

#[test]
fn user_sees_every_verdict_never_keeps_the_fake_and_gets_the_genuine_file() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let rival_key = SecretKey::generate().unwrap();
        let genuine_signature = sign(&publisher_key, GENUINE, NAME);

        let published = share(&[(NAME, GENUINE)]);
        write_signature(published.path(), NAME, &genuine_signature);
        let fake_bytes: &[u8] = b"SEBLINUX base system 1.0 with a rootkit";
        let rival_bytes: &[u8] = b"SEBLINUX base, the rival's build";
        let faked = share(&[
            (NAME, fake_bytes),
            ("SEBLINUX-base-1.0-rival.tar", rival_bytes),
            ("SEBLINUX-base-1.0-unsigned.tar", b"SEBLINUX base, nobody signed this"),
        ]);
        // The publisher's signature copied beside other bytes, and the rival's own.
        write_signature(faked.path(), NAME, &genuine_signature);
        write_signature(faked.path(), "SEBLINUX-base-1.0-rival.tar", &sign(&rival_key, rival_bytes, "r.tar"));

        let publisher = start_with(&[], Some(published.path()), |_| {}).await;
        let faker = start_with(&[], Some(faked.path()), |_| {}).await;
        let data = tempfile::tempdir().unwrap();
        let pinned = TrustedKey { key: publisher_key.public_key(), scope: vec!["SEBLINUX*".into()] };
        let peers = [publisher.listen_addr(), faker.listen_addr()];
        let user = start_with(&peers, None, |config| {
            config.data_dir = Some(data.path().to_path_buf());
            config.trust = vec![pinned];
        })
        .await;
        wait_indexed(&publisher, "seblinux", 1).await;
        wait_indexed(&faker, "seblinux", 3).await;
        wait_connected(&user, &publisher).await;
        wait_connected(&user, &faker).await;

        let found = results(&user, "SEBLINUX", 4).await;
        assert_eq!(found.results.len(), 4, "{:#?}", found.results);
        let verified = by_verdict(&found, Verdict::Verified);
        assert_eq!((verified.name.as_str(), verified.sources.len()), (NAME, 1));
        assert_eq!(verified.judgement.publisher, Some(publisher_key.key_id()));
        assert_eq!(verified.judgement.version.as_deref(), Some("1.0"));
        let fake = by_verdict(&found, Verdict::Fake);
        assert_eq!(fake.name, NAME);
        assert!(fake.judgement.reason.contains("signed for"), "{}", fake.judgement.reason);
        let untrusted = by_verdict(&found, Verdict::Untrusted);
        assert_eq!(untrusted.judgement.publisher, Some(rival_key.key_id()));
        let unsigned = by_verdict(&found, Verdict::Unsigned);

        // The fake is refused before a byte of it is fetched, and leaves nothing.
        let before = tree(data.path());
        let refused = user.download(&target(fake), Keep::NotFake).await.unwrap_err();
        assert!(matches!(refused, NodeError::Fake { .. }), "{refused}");
        let refused = user.download(&target(unsigned), Keep::Verified).await.unwrap_err();
        assert!(matches!(refused, NodeError::NotVerified { verdict: Verdict::Unsigned, .. }), "{refused}");
        assert_eq!(tree(data.path()), before);

        // The genuine file arrives verified, with its signature beside it, and is shared on.
        let downloads = user.downloads().unwrap();
        let id = user.download(&target(verified), Keep::Verified).await.unwrap();
        let done = downloads.wait(id).await.unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        assert_eq!(done.judgement.as_ref().map(|j| j.verdict), Some(Verdict::Verified));
        let path = done.path.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), GENUINE);
        let signature = std::fs::read_to_string(format!("{}.minisig", path.display())).unwrap();
        assert_eq!(signature, genuine_signature.to_text());
        wait_indexed(&user, "seblinux", 1).await;
        let library = user.library_entries();
        assert_eq!(library.len(), 1);
        assert_eq!((library[0].file.name.as_str(), library[0].judgement.verdict), (NAME, Verdict::Verified));
        assert!(!tree(data.path()).iter().any(|p| p.starts_with("partial/")), "{:?}", tree(data.path()));

        for node in [user, faker, publisher] {
            node.shutdown().await;
        }
    });
}

#[test]
fn pinning_a_key_later_changes_the_verdicts_already_shown() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let published = share(&[(NAME, GENUINE)]);
        write_signature(published.path(), NAME, &sign(&publisher_key, GENUINE, NAME));
        let publisher = start_with(&[], Some(published.path()), |_| {}).await;
        let data = tempfile::tempdir().unwrap();
        let user = start_with(&[publisher.listen_addr()], None, |config| {
            config.data_dir = Some(data.path().to_path_buf());
        })
        .await;
        wait_indexed(&publisher, "seblinux", 1).await;
        wait_connected(&user, &publisher).await;
        let found = results(&user, "SEBLINUX", 1).await;
        assert_eq!(found.results[0].judgement.verdict, Verdict::Untrusted);
        let id: servent::wire::Guid = found.id.parse().unwrap();

        let entry = user.trust_key(publisher_key.public_key(), vec![]).await.unwrap();
        assert_eq!(entry.key_id, publisher_key.key_id().to_string());
        wait_for("the result to be judged again", || async {
            let snapshot = user.search_results(id).await.unwrap().unwrap();
            snapshot.results[0].judgement.verdict == Verdict::Verified
        })
        .await;
        // Pinned keys survive a restart.
        user.shutdown().await;
        let user = start_with(&[], None, |config| config.data_dir = Some(data.path().to_path_buf())).await;
        assert_eq!(user.trusted_keys(), [entry]);
        assert!(user.distrust_key(publisher_key.key_id()).await.unwrap());
        assert!(user.trusted_keys().is_empty());
        user.shutdown().await;
        publisher.shutdown().await;
    });
}

/// The repro: a second key pinned only for `SEBLINUX-extras*` signs
/// `SEBLINUX-base 9.9` with the keyword `SEBLINUX-extras`; the user sees it
/// `untrusted`, never `verified`, and the publisher's 1.2 stays verified.
#[test]
fn a_key_scoped_to_extras_cannot_publish_base_by_choosing_its_keywords() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let extras_key = SecretKey::generate().unwrap();
        let release = |key: &SecretKey, content: &[u8], file: &str, version: &str, keyword: &str| {
            let mut signer = Signer::new();
            signer.update(content);
            let meta =
                ReleaseMeta { name: "SEBLINUX-base".into(), version: version.into(), keywords: vec![keyword.into()] };
            signer.finish(key, file, Some(&meta), 1_700_000_000).unwrap()
        };
        let (genuine, escaped): (&[u8], &[u8]) = (b"SEBLINUX base 1.2", b"SEBLINUX base 9.9 from the extras key");
        let published = share(&[("SEBLINUX-base-1.2.tar", genuine)]);
        let genuine_signature = release(&publisher_key, genuine, "SEBLINUX-base-1.2.tar", "1.2", "SEBLINUX");
        write_signature(published.path(), "SEBLINUX-base-1.2.tar", &genuine_signature);
        let extras = share(&[("SEBLINUX-base-9.9.tar", escaped)]);
        let escape = release(&extras_key, escaped, "SEBLINUX-base-9.9.tar", "9.9", "SEBLINUX-extras");
        write_signature(extras.path(), "SEBLINUX-base-9.9.tar", &escape);

        let publisher = start_with(&[], Some(published.path()), |_| {}).await;
        let extras = start_with(&[], Some(extras.path()), |_| {}).await;
        let data = tempfile::tempdir().unwrap();
        let user = start_with(&[publisher.listen_addr(), extras.listen_addr()], None, |config| {
            config.data_dir = Some(data.path().to_path_buf());
            config.trust = vec![
                TrustedKey { key: publisher_key.public_key(), scope: vec![] },
                TrustedKey { key: extras_key.public_key(), scope: vec!["SEBLINUX-extras*".into()] },
            ];
        })
        .await;
        wait_indexed(&publisher, "seblinux", 1).await;
        wait_indexed(&extras, "seblinux", 1).await;
        wait_connected(&user, &publisher).await;
        wait_connected(&user, &extras).await;

        let found = results(&user, "SEBLINUX base", 2).await;
        let verified = by_verdict(&found, Verdict::Verified);
        assert_eq!(verified.judgement.version.as_deref(), Some("1.2"));
        assert_eq!(verified.judgement.publisher, Some(publisher_key.key_id()));
        let untrusted = by_verdict(&found, Verdict::Untrusted);
        assert_eq!(untrusted.judgement.version.as_deref(), Some("9.9"));
        assert_eq!(untrusted.judgement.publisher, Some(extras_key.key_id()));
        let reason = &untrusted.judgement.reason;
        assert!(reason.contains("trusted only for SEBLINUX-extras*, not for SEBLINUX-base"), "{reason}");
        // Nothing signed by the extras key for base can be kept as verified.
        let refused = user.download(&target(untrusted), Keep::Verified).await.unwrap_err();
        assert!(matches!(refused, NodeError::NotVerified { verdict: Verdict::Untrusted, .. }), "{refused}");

        for node in [user, extras, publisher] {
            node.shutdown().await;
        }
    });
}
