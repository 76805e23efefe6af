//! Round trips of keygen, sign and verify through the `signing-tool` binary.

mod common;

use common::{release_bytes, Scratch};

const TAR: &str = "SEBLINUX-base-1.1.tar";

fn keygen_unencrypted(scratch: &Scratch) {
    let run = scratch.tool(&["keygen", "-p", "seblinux.pub", "-s", "seblinux.key", "-W"], "");
    assert!(run.ok, "{}", run.stderr);
}

fn key_id(scratch: &Scratch) -> String {
    scratch.read("seblinux.pub").lines().next().unwrap().rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn signed_release_verifies_and_prints_its_metadata() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    scratch.write(TAR, &release_bytes(1234));
    let sign = &["sign", "-s", "seblinux.key", "--name", "SEBLINUX-base", "--version", "1.1"];
    let run = scratch.tool(&[&sign[..], &["--keywords", "SEBLINUX,base", TAR]].concat(), "");
    assert!(run.ok, "{}", run.stderr);
    assert!(scratch.path("SEBLINUX-base-1.1.tar.minisig").exists());

    let run = scratch.tool(&["verify", "-p", "seblinux.pub", TAR], "");
    assert!(run.ok, "{}", run.stderr);
    let expected = format!(
        "{TAR}: verified by key {}: name SEBLINUX-base version 1.1 size 1234 keywords SEBLINUX,base\n",
        key_id(&scratch)
    );
    assert_eq!(run.stdout, expected);
}

#[test]
fn public_key_is_accepted_as_its_bare_line() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    scratch.write(TAR, b"content");
    assert!(scratch.tool(&["sign", "-s", "seblinux.key", TAR], "").ok);
    let line = scratch.read("seblinux.pub").lines().nth(1).unwrap().to_owned();
    assert!(line.starts_with("RW"));
    let run = scratch.tool(&["verify", "-p", &line, TAR], "");
    assert!(run.ok, "{}", run.stderr);
}

#[test]
fn encrypted_key_takes_its_password_on_stdin() {
    let scratch = Scratch::new();
    let run = scratch.tool(&["keygen", "-p", "seblinux.pub", "-s", "seblinux.key"], "hunter2\nhunter2\n");
    assert!(run.ok, "{}", run.stderr);
    assert!(scratch.read("seblinux.key").lines().nth(1).unwrap().starts_with("RWRTY0Iy"), "kdf Sc, checksum B2");
    scratch.write(TAR, b"content");

    let wrong = scratch.tool(&["sign", "-s", "seblinux.key", TAR], "hunter3\n");
    assert!(!wrong.ok);
    assert!(wrong.stderr.contains("seblinux.key: wrong password for that key"), "{}", wrong.stderr);

    let run = scratch.tool(&["sign", "-s", "seblinux.key", "--name", "N", "--version", "1", TAR], "hunter2\n");
    assert!(run.ok, "{}", run.stderr);
    assert!(scratch.tool(&["verify", "-p", "seblinux.pub", TAR], "").ok);
}

#[test]
fn mismatched_passwords_write_no_key() {
    let scratch = Scratch::new();
    let run = scratch.tool(&["keygen", "-p", "k.pub", "-s", "k.key"], "one\ntwo\n");
    assert!(!run.ok);
    assert_eq!(run.stderr, "signing-tool: the passwords do not match\n");
    assert!(!scratch.path("k.key").exists() && !scratch.path("k.pub").exists());
}

#[test]
fn keygen_keeps_existing_keys_unless_forced() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    let before = scratch.read("seblinux.key");
    let run = scratch.tool(&["keygen", "-p", "seblinux.pub", "-s", "seblinux.key", "-W"], "");
    assert!(!run.ok);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(scratch.read("seblinux.key"), before);
    assert!(scratch.tool(&["keygen", "-p", "seblinux.pub", "-s", "seblinux.key", "-W", "-f"], "").ok);
    assert_ne!(scratch.read("seblinux.key"), before);
}

#[test]
fn each_failing_file_gets_its_line_and_the_others_still_go_through() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    scratch.write("a.tar", b"a");
    scratch.write("b.tar", b"b");
    let run = scratch.tool(&["sign", "-s", "seblinux.key", "a.tar", "missing.tar", "b.tar"], "");
    assert!(!run.ok);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("signing-tool: failed to read missing.tar: "), "{}", run.stderr);
    assert!(scratch.path("a.tar.minisig").exists() && scratch.path("b.tar.minisig").exists());

    let run = scratch.tool(&["verify", "-p", "seblinux.pub", "a.tar", "missing.tar", "b.tar"], "");
    assert!(!run.ok);
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    assert!(run.stderr.starts_with("signing-tool: failed to read missing.tar.minisig: "), "{}", run.stderr);
}

#[test]
fn correct_signature_on_a_truncated_file_fails_saying_what_did_not_match() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    let bytes = release_bytes(4096);
    scratch.write(TAR, &bytes);
    assert!(scratch.tool(&["sign", "-s", "seblinux.key", "--name", "N", "--version", "1", TAR], "").ok);
    scratch.write(TAR, &bytes[..4000]);
    let run = scratch.tool(&["verify", "-p", "seblinux.pub", TAR], "");
    assert!(!run.ok);
    assert!(run.stdout.is_empty());
    assert_eq!(
        run.stderr,
        format!("signing-tool: {TAR}: not verified: size is 4000 bytes but the signed size is 4096 bytes\n")
    );
}

#[test]
fn signature_from_another_key_fails() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    let run = scratch.tool(&["keygen", "-p", "rival.pub", "-s", "rival.key", "-W"], "");
    assert!(run.ok);
    scratch.write(TAR, b"fake");
    assert!(scratch.tool(&["sign", "-s", "rival.key", "--name", "SEBLINUX-base", "--version", "1.1", TAR], "").ok);
    let run = scratch.tool(&["verify", "-p", "seblinux.pub", TAR], "");
    assert!(!run.ok);
    assert!(run.stderr.contains(&format!("not by key {}", key_id(&scratch))), "{}", run.stderr);
}

#[test]
fn garbage_signature_file_fails_with_its_path() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    scratch.write(TAR, b"content");
    scratch.write("SEBLINUX-base-1.1.tar.minisig", b"untrusted comment: x\nnot base64\ntrusted comment: t\nAAAA\n");
    let run = scratch.tool(&["verify", "-p", "seblinux.pub", TAR], "");
    assert!(!run.ok);
    assert_eq!(run.stderr, "signing-tool: SEBLINUX-base-1.1.tar.minisig: the signature line is not valid base64\n");
}

#[test]
fn version_without_name_is_a_usage_error() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    scratch.write(TAR, b"content");
    let run = scratch.tool(&["sign", "-s", "seblinux.key", "--version", "1.1", TAR], "");
    assert!(!run.ok);
    assert!(!scratch.path("SEBLINUX-base-1.1.tar.minisig").exists());
}

#[test]
fn rotate_writes_a_record_the_old_key_verifies_naming_the_new_key_and_packages() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    let old_id = key_id(&scratch);
    assert!(scratch.tool(&["keygen", "-p", "new.pub", "-s", "new.key", "-W"], "").ok);
    let new_id = scratch.read("new.pub").lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    let rotate =
        ["rotate", "-s", "seblinux.key", "-p", "new.pub", "--name", "SEBLINUX-base", "--name", "SEBLINUX-extras*"];
    let run = scratch.tool(&rotate, "");
    assert!(run.ok, "{}", run.stderr);
    let record = format!("KEYROTATION-{old_id}-{new_id}.pub");
    assert!(
        run.stdout.contains(&format!("key {old_id} hands SEBLINUX-base, SEBLINUX-extras* over to key {new_id}")),
        "{}",
        run.stdout
    );
    assert_eq!(scratch.read(&record), scratch.read("new.pub").replace("\r", ""));

    let run = scratch.tool(&["verify", "-p", "seblinux.pub", &record], "");
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("rotation:{old_id}\\tnew-key:")), "{}", run.stdout);
    assert!(run.stdout.contains("names:SEBLINUX-base,SEBLINUX-extras*"), "{}", run.stdout);
    // Only the old key's signature holds.
    assert!(!scratch.tool(&["verify", "-p", "new.pub", &record], "").ok);
    // A pattern that is not a package name is refused, and nothing is written.
    let run = scratch.tool(&["rotate", "-s", "seblinux.key", "-p", "new.pub", "--name", "*", "-o", "elsewhere"], "");
    assert!(!run.ok && run.stderr.lines().count() == 1, "{}", run.stderr);
}

#[test]
fn only_regular_files_are_signed_and_only_with_a_version_the_updater_can_order() {
    let scratch = Scratch::new();
    keygen_unencrypted(&scratch);
    std::fs::create_dir(scratch.path("folder")).unwrap();
    for target in ["/dev/null", scratch.path("folder").to_str().unwrap()] {
        let run = scratch.tool(&["sign", "-s", "seblinux.key", target], "");
        assert!(!run.ok, "{target} was signed");
        assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    }
    assert!(!scratch.path("folder.minisig").exists());
    scratch.write(TAR, &release_bytes(10));
    for version in ["1 0", "latest", "1.2-", "v1.2"] {
        let run = scratch.tool(&["sign", "-s", "seblinux.key", "--name", "N", "--version", version, TAR], "");
        assert!(!run.ok, "version {version:?} was signed");
        assert!(run.stderr.contains("dotted numbers"), "{}", run.stderr);
        assert!(!scratch.path(&format!("{TAR}.minisig")).exists());
    }
    for version in ["1", "2.10.3", "1.2-rc.1"] {
        let run = scratch.tool(&["sign", "-s", "seblinux.key", "--name", "N", "--version", version, TAR], "");
        assert!(run.ok, "{version}: {}", run.stderr);
    }
}
