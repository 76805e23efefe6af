//! The auto-updater against a real network: a publisher, a faker, a user
//! and a third servent on loopback, real signatures, real downloads,
//! real installs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_std::task;
use common::{share, start_with, stingy, varied_bytes, wait_connected, wait_for, wait_indexed};
use servent::node::NodeHandle;
use servent::transfer::download::plan::CHUNK_SIZE;
use servent::transfer::download::{DownloadRequest, Keep};
use servent::trust::TrustedKey;
use servent::updater::{Action, UpdateError, Updater, UpdaterConfig};
use signing_tool::files::{minisig_path, write_rotation};
use signing_tool::{Minisig, ReleaseMeta, SecretKey, Signer};

const NAME: &str = "SEBLINUX-base";

fn bytes_of(version: &str) -> Vec<u8> {
    format!("SEBLINUX base system {version}, genuine").into_bytes()
}

/// Writes `file` with `content` into `dir`, signed by `key` as `version`.
fn publish(dir: &Path, key: &SecretKey, version: &str, file: &str, content: &[u8]) {
    publish_as(dir, key, NAME, version, file, content);
}

/// [`publish`] for the package `name`.
fn publish_as(dir: &Path, key: &SecretKey, name: &str, version: &str, file: &str, content: &[u8]) {
    let minisig = sign(key, name, version, file, content);
    // The signature first: a rescan between the two writes would otherwise
    // index the release unsigned, and a search could see it so.
    std::fs::write(dir.join(format!("{file}.minisig")), minisig.to_text()).unwrap();
    std::fs::write(dir.join(file), content).unwrap();
}

/// `content`'s signature as release `version` of package `name`, in `file`.
fn sign(key: &SecretKey, name: &str, version: &str, file: &str, content: &[u8]) -> Minisig {
    let mut signer = Signer::new();
    signer.update(content);
    let meta = ReleaseMeta { name: name.into(), version: version.into(), keywords: vec!["SEBLINUX".into()] };
    // Later versions are signed later, as a publisher does.
    let timestamp = 1_700_000_000 + version.replace('.', "").parse::<u64>().unwrap();
    signer.finish(key, file, Some(&meta), timestamp).unwrap()
}

/// A publisher servent sharing release `version` signed by `key`, indexed,
/// and the folder it shares.
async fn publisher_of(key: &SecretKey, version: &str) -> (tempfile::TempDir, NodeHandle) {
    let published = share(&[]);
    publish(published.path(), key, version, &format!("SEBLINUX-base-{version}.tar"), &bytes_of(version));
    let publisher = start_with(&[], Some(published.path()), |_| {}).await;
    wait_indexed(&publisher, "seblinux base", 1).await;
    (published, publisher)
}

struct User {
    node: NodeHandle,
    updater: Updater,
    install: tempfile::TempDir,
    _data: tempfile::TempDir,
}

/// A user servent trusting `publisher`, with its updater on `install`.
async fn user(
    publisher: &SecretKey,
    peers: &[&NodeHandle],
    install: tempfile::TempDir,
    post_install: Option<&str>,
) -> User {
    user_trusting(&[publisher], peers, install, post_install).await
}

/// A user servent trusting each of `publishers` for `SEBLINUX*`, with its updater on `install`.
async fn user_trusting(
    publishers: &[&SecretKey],
    peers: &[&NodeHandle],
    install: tempfile::TempDir,
    post_install: Option<&str>,
) -> User {
    let data = tempfile::tempdir().unwrap();
    let pinned: Vec<TrustedKey> =
        publishers.iter().map(|k| TrustedKey { key: k.public_key(), scope: vec!["SEBLINUX*".into()] }).collect();
    let addrs: Vec<_> = peers.iter().map(|p| p.listen_addr()).collect();
    let node = start_with(&addrs, None, |config| {
        config.data_dir = Some(data.path().to_path_buf());
        config.shares = vec![install.path().to_path_buf()];
        config.trust = pinned;
    })
    .await;
    for peer in peers {
        wait_connected(&node, peer).await;
    }
    let config = UpdaterConfig {
        post_install: post_install.map(str::to_owned),
        hook_timeout: Duration::from_millis(500),
        search_wait: Duration::from_millis(1500),
        ..UpdaterConfig::new(install.path().to_path_buf())
    };
    let updater = Updater::open(node.clone(), config).unwrap();
    User { node, updater, install, _data: data }
}

/// A user servent trusting `key`, linked to `publisher`, that has installed
/// the release `publisher` shares.
async fn user_installed(key: &SecretKey, publisher: &NodeHandle) -> User {
    let user = user(key, &[publisher], tempfile::tempdir().unwrap(), None).await;
    let installed = user.updater.install(NAME, false).await.unwrap();
    assert_eq!(installed.action, Action::Installed, "{installed:?}");
    user
}

fn installed_version(user: &User) -> Option<String> {
    user.updater.status().installed.iter().find(|p| p.current.name == NAME).map(|p| p.current.version.clone())
}

#[test]
fn install_gets_the_genuine_newest_release_and_an_update_pass_brings_the_next_one_shared_on() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let rival_key = SecretKey::generate().unwrap();
        let published = share(&[]);
        publish(published.path(), &publisher_key, "1.0", "SEBLINUX-base-1.0.tar", &bytes_of("1.0"));
        publish(published.path(), &publisher_key, "1.1", "SEBLINUX-base-1.1.tar", &bytes_of("1.1"));
        let faked = share(&[]);
        publish(faked.path(), &rival_key, "1.2", "SEBLINUX-base-1.2.tar", b"SEBLINUX base 1.2 from a rival");
        // 1.1's genuine signature copied beside other bytes.
        publish(faked.path(), &publisher_key, "1.1", "SEBLINUX-base-1.1-fast.tar", &bytes_of("1.1"));
        std::fs::write(faked.path().join("SEBLINUX-base-1.1-fast.tar"), b"SEBLINUX base system 1.1, rootkit").unwrap();

        let publisher = start_with(&[], Some(published.path()), |_| {}).await;
        let faker = start_with(&[], Some(faked.path()), |_| {}).await;
        wait_indexed(&publisher, "seblinux base", 2).await;
        wait_indexed(&faker, "seblinux base", 2).await;
        let user = user(&publisher_key, &[&publisher, &faker], tempfile::tempdir().unwrap(), None).await;

        let looked = user.updater.install(NAME, true).await.unwrap();
        assert_eq!((looked.action, looked.to.as_deref()), (Action::WouldInstall, Some("1.1")), "{looked:?}");
        assert_eq!(installed_version(&user), None, "a dry run changes nothing");

        let installed = user.updater.install(NAME, false).await.unwrap();
        assert_eq!((installed.action, installed.to.as_deref()), (Action::Installed, Some("1.1")), "{installed:?}");
        assert_eq!(installed.newest_seen.as_deref(), Some("1.1"));
        assert!(installed.newest_age_secs.is_some());
        let file = user.install.path().join("SEBLINUX-base-1.1.tar");
        assert_eq!(std::fs::read(&file).unwrap(), bytes_of("1.1"));
        assert!(user.install.path().join("SEBLINUX-base-1.1.tar.minisig").exists());
        let status = user.updater.status();
        assert_eq!(status.installed.len(), 1);
        assert_eq!(status.installed[0].current.key_id, Some(publisher_key.key_id()));

        let nothing = user.updater.pass(false).await.unwrap();
        assert_eq!(nothing.decisions.len(), 1);
        assert_eq!(nothing.decisions[0].action, Action::UpToDate, "{nothing:?}");

        publish(published.path(), &publisher_key, "1.2", "SEBLINUX-base-1.2.tar", &bytes_of("1.2"));
        wait_indexed(&publisher, "seblinux base", 3).await;
        let dry = user.updater.pass(true).await.unwrap();
        assert_eq!(dry.decisions[0].action, Action::WouldInstall, "{dry:?}");
        let pass = user.updater.pass(false).await.unwrap();
        let decision = &pass.decisions[0];
        assert_eq!(
            (decision.action, decision.from.as_deref(), decision.to.as_deref()),
            (Action::Installed, Some("1.1"), Some("1.2")),
            "{decision:?}"
        );
        assert_eq!(std::fs::read(user.install.path().join("SEBLINUX-base-1.2.tar")).unwrap(), bytes_of("1.2"));
        assert!(!file.exists(), "1.1 is kept aside for rollback, not shared");
        assert_eq!(user.updater.status().last_pass.unwrap(), pass);

        // Older versions are seen again and never installed over 1.2.
        let again = user.updater.pass(false).await.unwrap();
        assert_eq!(again.decisions[0].action, Action::UpToDate, "{again:?}");
        assert_eq!(installed_version(&user).as_deref(), Some("1.2"));

        // A third servent that knows only the user finds it among 1.2's sources.
        let third = start_with(&[user.node.listen_addr()], None, |_| {}).await;
        wait_connected(&third, &user.node).await;
        let id = third.search("SEBLINUX base 1.2", 3).await.unwrap();
        let user_addr = user.node.listen_addr().to_string();
        wait_for("the user among 1.2's sources", || async {
            let snapshot = third.search_results(id).await.unwrap().unwrap();
            snapshot.results.iter().any(|r| r.sources.iter().any(|s| s.to_string() == user_addr))
        })
        .await;

        // A rollback brings 1.1 back; a second one goes forward to 1.2 and says so.
        let back = user.updater.rollback(NAME).await.unwrap();
        assert_eq!((back.action, back.to.as_deref()), (Action::RolledBack, Some("1.1")), "{back:?}");
        assert!(back.reason.starts_with("rolled back to 1.1; 1.2 is held back"), "{}", back.reason);
        let forth = user.updater.rollback(NAME).await.unwrap();
        assert_eq!((forth.action, forth.to.as_deref()), (Action::RolledForward, Some("1.2")), "{forth:?}");
        assert!(forth.reason.starts_with("rolled forward to 1.2"), "{}", forth.reason);
        assert_eq!(installed_version(&user).as_deref(), Some("1.2"));

        for node in [third, user.node, faker, publisher] {
            node.shutdown().await;
        }
    });
}

#[test]
fn installing_what_was_downloaded_fetches_it_once_and_keeps_one_copy() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let (_published, publisher) = publisher_of(&publisher_key, "1.0").await;
        let user = user(&publisher_key, &[&publisher], tempfile::tempdir().unwrap(), None).await;

        let search = user.node.search("SEBLINUX base", 3).await.unwrap();
        wait_for("the release found", || {
            let node = user.node.clone();
            async move { node.search_results(search).await.unwrap().is_some_and(|s| !s.results.is_empty()) }
        })
        .await;
        let sha1 = user.node.search_results(search).await.unwrap().unwrap().results[0].sha1.unwrap();
        let downloads = user.node.downloads().unwrap().clone();
        let id = user.node.download(&sha1.to_string(), Keep::Verified).await.unwrap();
        let downloaded = downloads.wait(id).await.unwrap().path.expect("a downloaded file");
        assert_eq!(std::fs::read(&downloaded).unwrap(), bytes_of("1.0"));

        let installed = user.updater.install(NAME, false).await.unwrap();
        assert_eq!((installed.action, installed.to.as_deref()), (Action::Installed, Some("1.0")), "{installed:?}");
        assert_eq!(downloads.list().await.unwrap().len(), 1, "the release was fetched once");
        assert_eq!(std::fs::read(user.install.path().join("SEBLINUX-base-1.0.tar")).unwrap(), bytes_of("1.0"));
        assert!(!downloaded.exists(), "the downloads folder keeps no second copy");
        assert!(!minisig_path(&downloaded).exists());
    });
}

#[test]
fn uninstall_removes_the_release_and_the_network_no_longer_finds_it_here() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let (_published, publisher) = publisher_of(&publisher_key, "1.0").await;
        let user = user_installed(&publisher_key, &publisher).await;
        let file = user.install.path().join("SEBLINUX-base-1.0.tar");
        let shared = |node: &NodeHandle| {
            let wanted = file.canonicalize().unwrap_or_else(|_| file.clone());
            node.library().files().iter().any(|f| f.path == wanted)
        };
        wait_for("the installed file shared", || async { shared(&user.node) }).await;
        let member = start_with(&[user.node.listen_addr()], None, |_| {}).await;
        wait_connected(&member, &user.node).await;

        let removed = user.updater.uninstall(NAME).await.unwrap();
        assert_eq!((removed.action, removed.from.as_deref()), (Action::Uninstalled, Some("1.0")), "{removed:?}");
        assert_eq!(installed_version(&user), None);
        assert!(!file.exists() && !minisig_path(&file).exists());
        wait_for("the installed file no longer shared", || async { !shared(&user.node) }).await;
        // Asked over the network, the user has nothing of it left to offer:
        // the publisher's hit, which comes through the user, arrives alone.
        let search = member.search("SEBLINUX base", 2).await.unwrap();
        let source = |node: &NodeHandle| match node.listen_addr() {
            std::net::SocketAddr::V4(addr) => addr,
            other => panic!("{other} is not IPv4"),
        };
        let (from_publisher, from_user) = (source(&publisher), source(&user.node));
        let results = || async { member.search_results(search).await.unwrap().map(|s| s.results).unwrap_or_default() };
        wait_for("the publisher's hit", || async {
            results().await.iter().any(|r| r.sources.contains(&from_publisher))
        })
        .await;
        assert!(results().await.iter().all(|r| !r.sources.contains(&from_user)), "{:?}", results().await);
        let again = user.updater.uninstall(NAME).await.unwrap_err();
        assert!(again.to_string().contains("is not installed"), "{again}");
    });
}

#[test]
fn a_failing_or_hanging_hook_rolls_back_and_two_passes_never_run_at_once() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let (published, publisher) = publisher_of(&publisher_key, "1.0").await;

        let first = user_installed(&publisher_key, &publisher).await;
        let mut install = first.install;
        first.node.shutdown().await;

        publish(published.path(), &publisher_key, "1.1", "SEBLINUX-base-1.1.tar", &bytes_of("1.1"));
        wait_indexed(&publisher, "seblinux base", 2).await;
        for hook in ["exit 7", "sleep 60"] {
            let user = user(&publisher_key, &[&publisher], install, Some(hook)).await;
            let updater = &user.updater;

            // Both polled at once: the pass finds the install under way. An
            // explicit install brings even a held-back version (the second time).
            let (one, two) = futures::join!(updater.install(NAME, false), updater.pass(false));
            assert!(matches!(two, Err(UpdateError::Busy)), "{two:?}");
            let decision = one.unwrap();
            assert_eq!(decision.action, Action::Failed, "{hook}: {decision:?}");
            assert!(decision.reason.contains("rolled back to 1.0"), "{hook}: {}", decision.reason);
            let status = updater.status();
            assert_eq!(status.installed[0].current.version, "1.0");
            assert_eq!(status.installed[0].held_back, ["1.1"]);
            assert_eq!(std::fs::read(user.install.path().join("SEBLINUX-base-1.0.tar")).unwrap(), bytes_of("1.0"));

            // Held back: later passes leave it alone.
            let later = updater.pass(false).await.unwrap();
            assert!(later.decisions[0].reason.contains("held back"), "{later:?}");
            user.node.shutdown().await;
            install = user.install;
        }
        publisher.shutdown().await;
    });
}

/// Key continuity: a newer release signed by another key, even one the
/// user pins for the same names, does not replace what the publisher's key
/// installed.
#[test]
fn a_newer_release_signed_by_another_pinned_key_is_refused_as_a_key_change() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let other_key = SecretKey::generate().unwrap();
        let published = share(&[]);
        publish(published.path(), &publisher_key, "1.2", "SEBLINUX-base-1.2.tar", &bytes_of("1.2"));
        let elsewhere = share(&[]);
        let publisher = start_with(&[], Some(published.path()), |_| {}).await;
        let other = start_with(&[], Some(elsewhere.path()), |_| {}).await;
        wait_indexed(&publisher, "seblinux base", 1).await;
        let keys = [&publisher_key, &other_key];
        let user = user_trusting(&keys, &[&publisher, &other], tempfile::tempdir().unwrap(), None).await;
        assert_eq!(user.updater.install(NAME, false).await.unwrap().action, Action::Installed);

        publish(elsewhere.path(), &other_key, "9.9", "SEBLINUX-base-9.9.tar", b"SEBLINUX base 9.9, another key");
        wait_indexed(&other, "seblinux base", 1).await;
        let pass = user.updater.pass(false).await.unwrap();
        let decision = &pass.decisions[0];
        assert_eq!((decision.action, decision.to.as_deref()), (Action::KeyChanged, None), "{decision:?}");
        let expected =
            format!("signed by key {}, but the installed 1.2 by key {}", other_key.key_id(), publisher_key.key_id());
        assert!(decision.reason.contains(&expected), "{}", decision.reason);
        assert_eq!(serde_json::to_value(decision).unwrap()["action"], "key_changed");
        assert_eq!(installed_version(&user).as_deref(), Some("1.2"));
        assert_eq!(std::fs::read(user.install.path().join("SEBLINUX-base-1.2.tar")).unwrap(), bytes_of("1.2"));

        for node in [user.node, other, publisher] {
            node.shutdown().await;
        }
    });
}

/// The publisher changes keys: it writes a rotation record with its old
/// key, shares it, and signs 1.1 with the new key. The user's next pass
/// finds the record, checks it against the key 1.0 is bound to, pins the
/// new key for SEBLINUX-base, installs 1.1 and binds it to the new key.
#[test]
fn a_rotation_record_by_the_bound_key_lets_the_new_key_publish_the_next_release() {
    task::block_on(async {
        let old_key = SecretKey::generate().unwrap();
        let new_key = SecretKey::generate().unwrap();
        let (published, publisher) = publisher_of(&old_key, "1.0").await;
        let user = user_installed(&old_key, &publisher).await;

        let names = [NAME.to_string()];
        let (record, _) =
            write_rotation(&old_key, &new_key.public_key(), &names, published.path(), 1_700_000_050).unwrap();
        publish(published.path(), &new_key, "1.1", "SEBLINUX-base-1.1.tar", &bytes_of("1.1"));
        wait_indexed(&publisher, "keyrotation", 1).await;
        wait_indexed(&publisher, "seblinux base", 2).await;

        let dry = user.updater.pass(true).await.unwrap();
        assert_eq!(dry.decisions[0].action, Action::WouldInstall, "{dry:?}");
        assert!(dry.decisions[0].reason.contains("a pass would pin that key"), "{dry:?}");
        assert_eq!(user.node.trusted_keys().len(), 1, "a dry run pins nothing");
        let pass = user.updater.pass(false).await.unwrap();
        let decision = &pass.decisions[0];
        assert_eq!((decision.action, decision.to.as_deref()), (Action::Installed, Some("1.1")), "{decision:?}");
        assert!(decision.reason.contains("by a rotation record"), "{}", decision.reason);
        assert_eq!(std::fs::read(user.install.path().join("SEBLINUX-base-1.1.tar")).unwrap(), bytes_of("1.1"));
        assert_eq!(user.updater.status().installed[0].current.key_id, Some(new_key.key_id()));
        let pinned = user.node.trusted_keys();
        let new_entry = pinned.iter().find(|k| k.key_id == new_key.key_id().to_string()).expect("the new key pinned");
        assert_eq!(new_entry.scope, [NAME]);
        assert!(new_entry.note.as_deref().unwrap().contains(&old_key.key_id().to_string()), "{new_entry:?}");
        // The record itself arrived whole and is shared on.
        let downloaded = user.node.library_entries();
        let file_name = record.file_name().unwrap().to_str().unwrap();
        assert!(downloaded.iter().any(|e| e.file.name == file_name), "{downloaded:#?}");

        for node in [user.node, publisher] {
            node.shutdown().await;
        }
    });
}

/// A faker holding only the new key forges the old key's record (signed by
/// the new key), and replays a genuine record that hands over only
/// SEBLINUX-doc: neither lets the new key's SEBLINUX-base in.
#[test]
fn a_forged_rotation_and_one_replayed_for_another_package_are_refused() {
    task::block_on(async {
        let old_key = SecretKey::generate().unwrap();
        let new_key = SecretKey::generate().unwrap();
        let (published, publisher) = publisher_of(&old_key, "1.0").await;
        let user = user_installed(&old_key, &publisher).await;

        let faked = share(&[]);
        // Forged: the new key signs a record, named as if the old key had.
        let forged_dir = tempfile::tempdir().unwrap();
        let (forged, _) = write_rotation(
            &new_key,
            &SecretKey::generate().unwrap().public_key(),
            &[NAME.to_string()],
            forged_dir.path(),
            1_700_000_050,
        )
        .unwrap();
        let posing = faked.path().join(format!("KEYROTATION-{}-{}.pub", old_key.key_id(), new_key.key_id()));
        std::fs::copy(&forged, &posing).unwrap();
        std::fs::copy(minisig_path(&forged), minisig_path(&posing)).unwrap();
        // Replayed: a genuine record of the old key, for SEBLINUX-doc only.
        write_rotation(&old_key, &new_key.public_key(), &["SEBLINUX-doc".to_string()], published.path(), 1_700_000_050)
            .unwrap();
        publish_as(faked.path(), &new_key, NAME, "1.1", "SEBLINUX-base-1.1.tar", b"SEBLINUX base 1.1, new key");
        let faker = start_with(&[user.node.listen_addr()], Some(faked.path()), |_| {}).await;
        wait_connected(&user.node, &faker).await;
        wait_indexed(&faker, "keyrotation", 1).await;
        wait_indexed(&publisher, "keyrotation", 1).await;

        let pass = user.updater.pass(false).await.unwrap();
        let decision = &pass.decisions[0];
        // The new key is not pinned, so its 1.1 is not even a candidate: the
        // pass installs nothing and says why the records were refused.
        assert_eq!(decision.action, Action::UpToDate, "{decision:?}");
        let reason = &decision.reason;
        assert!(
            reason.contains(&format!("signed by key {}, not by key {}", new_key.key_id(), old_key.key_id())),
            "{reason}"
        );
        assert!(reason.contains("it hands over SEBLINUX-doc, not SEBLINUX-base"), "{reason}");
        assert_eq!(installed_version(&user).as_deref(), Some("1.0"));
        assert_eq!(user.node.trusted_keys().len(), 1, "the new key is not pinned");

        for node in [faker, user.node, publisher] {
            node.shutdown().await;
        }
    });
}

/// The repro, end to end: a second key pinned only for
/// `SEBLINUX-extras*` signs `SEBLINUX-base 9.9` with the keyword
/// `SEBLINUX-extras`; the update pass keeps the publisher's 1.2.
#[test]
fn a_key_scoped_to_extras_cannot_update_base_by_choosing_its_keywords() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let extras_key = SecretKey::generate().unwrap();
        let published = share(&[]);
        publish(published.path(), &publisher_key, "1.2", "SEBLINUX-base-1.2.tar", &bytes_of("1.2"));
        let extras = share(&[]);
        let escaped: &[u8] = b"SEBLINUX base 9.9 from the extras key";
        std::fs::write(extras.path().join("SEBLINUX-base-9.9.tar"), escaped).unwrap();
        let mut signer = Signer::new();
        signer.update(escaped);
        let meta = ReleaseMeta { name: NAME.into(), version: "9.9".into(), keywords: vec!["SEBLINUX-extras".into()] };
        let minisig = signer.finish(&extras_key, "SEBLINUX-base-9.9.tar", Some(&meta), 1_700_000_999).unwrap();
        std::fs::write(extras.path().join("SEBLINUX-base-9.9.tar.minisig"), minisig.to_text()).unwrap();
        let publisher = start_with(&[], Some(published.path()), |_| {}).await;
        let extras = start_with(&[], Some(extras.path()), |_| {}).await;
        wait_indexed(&publisher, "seblinux base", 1).await;
        wait_indexed(&extras, "seblinux base", 1).await;

        let data = tempfile::tempdir().unwrap();
        let install = tempfile::tempdir().unwrap();
        let node = start_with(&[publisher.listen_addr(), extras.listen_addr()], None, |config| {
            config.data_dir = Some(data.path().to_path_buf());
            config.shares = vec![install.path().to_path_buf()];
            config.trust = vec![
                TrustedKey { key: publisher_key.public_key(), scope: vec![] },
                TrustedKey { key: extras_key.public_key(), scope: vec!["SEBLINUX-extras*".into()] },
            ];
        })
        .await;
        wait_connected(&node, &publisher).await;
        wait_connected(&node, &extras).await;
        let config =
            UpdaterConfig { search_wait: Duration::from_millis(1500), ..UpdaterConfig::new(install.path().into()) };
        let updater = Updater::open(node.clone(), config).unwrap();

        let installed = updater.install(NAME, false).await.unwrap();
        assert_eq!((installed.action, installed.to.as_deref()), (Action::Installed, Some("1.2")), "{installed:?}");
        let pass = updater.pass(false).await.unwrap();
        let decision = &pass.decisions[0];
        assert_eq!(decision.action, Action::UpToDate, "{decision:?}");
        assert_eq!(decision.newest_seen.as_deref(), Some("1.2"), "9.9 is never a verified release: {decision:?}");
        assert!(decision.reason.contains("a newer SEBLINUX-base is signed by another key"), "{}", decision.reason);
        assert_eq!(std::fs::read(install.path().join("SEBLINUX-base-1.2.tar")).unwrap(), bytes_of("1.2"));

        for node in [node, extras, publisher] {
            node.shutdown().await;
        }
    });
}

/// Release 1.2 is nowhere whole: one servent downloading it holds its
/// first half, checked, another its second half. The update pass finds
/// both by search (partial results, signed) and installs 1.2 from them.
#[test]
fn an_update_pass_installs_a_release_that_only_partial_sources_hold() {
    task::block_on(async {
        let publisher_key = SecretKey::generate().unwrap();
        let (_published, publisher) = publisher_of(&publisher_key, "1.1").await;
        let user = user_installed(&publisher_key, &publisher).await;
        assert_eq!(installed_version(&user).as_deref(), Some("1.1"));

        let next = Arc::new(varied_bytes(4 * CHUNK_SIZE as usize));
        let file = "SEBLINUX-base-1.2.tar";
        let signature = Arc::new(sign(&publisher_key, NAME, "1.2", file, &next));
        let (digests, _) = search::hash_reader(&next[..]).unwrap();
        let mut holders = Vec::new();
        for chunks in [0..2, 2..4] {
            let source = stingy::source(next.clone(), chunks).await;
            let data = tempfile::tempdir().unwrap();
            let holder = start_with(&[publisher.listen_addr()], None, |config| {
                config.data_dir = Some(data.path().to_path_buf());
                config.trust = vec![TrustedKey { key: publisher_key.public_key(), scope: vec![] }];
            })
            .await;
            wait_connected(&holder, &publisher).await;
            let request = DownloadRequest {
                urns: vec![digests.sha1_urn(), digests.sha256_urn()],
                name: file.into(),
                size: next.len() as u64,
                sources: vec![source],
                signature: Some(signature.clone()),
                keep: Keep::Verified,
            };
            let id = holder.downloads().unwrap().start(request).await.unwrap();
            wait_for("half of 1.2 checked", || async {
                holder.downloads().unwrap().get(id).await.unwrap().bytes_done == 2 * CHUNK_SIZE
            })
            .await;
            holders.push((holder, data));
        }

        let pass = user.updater.pass(false).await.unwrap();
        let decision = &pass.decisions[0];
        assert_eq!(
            (decision.action, decision.from.as_deref(), decision.to.as_deref()),
            (Action::Installed, Some("1.1"), Some("1.2")),
            "{decision:?}"
        );
        assert_eq!(std::fs::read(user.install.path().join(file)).unwrap(), *next);

        for (holder, _data) in holders {
            holder.shutdown().await;
        }
        for node in [user.node, publisher] {
            node.shutdown().await;
        }
    });
}
