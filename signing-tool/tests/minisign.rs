//! Compatibility with the real `minisign` command line (Debian's 0.11), in every direction.
//!
//! Without `minisign` installed these tests print why and pass, except under CI (`CI` set),
//! where a missing `minisign` is a failure: CI installs it, and silence there would hide a gap.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::{release_bytes, Scratch};
use signing_tool::{Minisig, ReleaseMeta, SecretKeyFile, Signer, MAX_TRUSTED_COMMENT_BYTES};

const TAR: &str = "SEBLINUX-base-1.1.tar";
const SIGN_RELEASE: &[&str] = &["--name", "SEBLINUX-base", "--version", "1.1", "--keywords", "SEBLINUX"];

/// A scratch directory, or `None` (after saying so) when minisign is not installed.
fn with_minisign() -> Option<Scratch> {
    let installed = std::process::Command::new("minisign").arg("-v").output().is_ok_and(|out| out.status.success());
    if installed {
        return Some(Scratch::new());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "minisign is not installed; CI must install it (apt-get install minisign)"
    );
    eprintln!("skipping: minisign is not installed (apt-get install minisign)");
    None
}

/// The key id in a public key file's comment, as 16 hex digits: minisign 0.11 writes it without
/// leading zeros (`%PRIX64`), signing-tool always with 16 digits, as minisign shows ids elsewhere.
fn key_id_in(scratch: &Scratch, pub_file: &str) -> String {
    let text = scratch.read(pub_file);
    let hex = text.lines().next().unwrap().strip_prefix("untrusted comment: minisign public key ").unwrap();
    format!("{:016X}", u64::from_str_radix(hex, 16).unwrap())
}

/// Public key files that hold the same key and name the same key id.
fn assert_same_public_key_file(scratch: &Scratch, ours: &str, theirs: &str) {
    assert_eq!(scratch.read(ours).lines().nth(1), scratch.read(theirs).lines().nth(1));
    assert_eq!(key_id_in(scratch, ours), key_id_in(scratch, theirs));
}

#[test]
fn minisign_verifies_our_release_signature() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.tool(&["keygen", "-p", "our.pub", "-s", "our.key", "-W"], "").ok);
    scratch.write(TAR, &release_bytes(100_000));
    let run = scratch.tool(&[&["sign", "-s", "our.key"], SIGN_RELEASE, &[TAR]].concat(), "");
    assert!(run.ok, "{}", run.stderr);
    let run = scratch.minisign(&["-V", "-p", "our.pub", "-m", TAR], "");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Signature and comment signature verified"), "{}", run.stdout);
    assert!(run.stdout.contains("\tname:SEBLINUX-base\tversion:1.1\tsha256:"), "{}", run.stdout);
}

#[test]
fn we_verify_minisigns_signatures_plain_and_with_release_metadata() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], "").ok);
    let bytes = release_bytes(5000);
    scratch.write(TAR, &bytes);
    let id = key_id_in(&scratch, "m.pub");

    assert!(scratch.minisign(&["-S", "-s", "m.key", "-m", TAR], "").ok);
    let run = scratch.tool(&["verify", "-p", "m.pub", TAR], "");
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.starts_with(&format!("{TAR}: verified by key {id}: no release metadata")), "{}", run.stdout);

    let sha256 = sha256_hex(&bytes);
    let comment = format!(
        "timestamp:1\tfile:{TAR}\tname:SEBLINUX-base\tversion:1.1\tsha256:{sha256}\tsize:5000\tkeywords:SEBLINUX"
    );
    assert!(scratch.minisign(&["-S", "-s", "m.key", "-m", TAR, "-t", &comment], "").ok);
    let run = scratch.tool(&["verify", "-p", "m.pub", TAR], "");
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("{TAR}: verified by key {id}: name SEBLINUX-base version 1.1 size 5000 keywords SEBLINUX\n")
    );

    // minisign's signature replayed on other bytes of the same size.
    let mut other = bytes.clone();
    other[100] ^= 0xff;
    scratch.write(TAR, &other);
    let run = scratch.tool(&["verify", "-p", "m.pub", TAR], "");
    assert!(!run.ok);
    assert!(run.stderr.contains("not verified: sha256 is "), "{}", run.stderr);
}

#[test]
fn each_signs_with_the_others_unencrypted_key() {
    let Some(scratch) = with_minisign() else { return };
    scratch.write(TAR, &release_bytes(70_000));

    // minisign signs with our key; both tools verify with our public key.
    assert!(scratch.tool(&["keygen", "-p", "our.pub", "-s", "our.key", "-W"], "").ok);
    let run = scratch.minisign(&["-S", "-s", "our.key", "-m", TAR], "");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(scratch.minisign(&["-V", "-p", "our.pub", "-m", TAR], "").ok);
    assert!(scratch.tool(&["verify", "-p", "our.pub", TAR], "").ok);

    // We sign with minisign's key; both tools verify with minisign's public key.
    assert!(scratch.minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], "").ok);
    let run = scratch.tool(&[&["sign", "-s", "m.key"], SIGN_RELEASE, &[TAR]].concat(), "");
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("signed by key {}", key_id_in(&scratch, "m.pub"))), "{}", run.stdout);
    let run = scratch.minisign(&["-V", "-p", "m.pub", "-m", TAR], "");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(scratch.tool(&["verify", "-p", "m.pub", TAR], "").ok);
}

#[test]
fn keys_show_the_same_key_id_and_recreate_the_same_public_key() {
    let Some(scratch) = with_minisign() else { return };
    let run = scratch.tool(&["keygen", "-p", "our.pub", "-s", "our.key", "-W"], "");
    assert!(run.ok);
    let id = key_id_in(&scratch, "our.pub");
    assert!(run.stdout.starts_with(&format!("key {id}: ")), "{}", run.stdout);
    assert!(scratch.read("our.pub").starts_with(&format!("untrusted comment: minisign public key {id}\n")));
    // minisign recreates our public key file from our secret key.
    assert!(scratch.minisign(&["-R", "-s", "our.key", "-p", "recreated.pub"], "").ok);
    assert_same_public_key_file(&scratch, "our.pub", "recreated.pub");
    // The key id minisign reports for our signature is the one we print.
    assert!(scratch.minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], "").ok);
    scratch.write(TAR, b"x");
    assert!(scratch.tool(&["sign", "-s", "our.key", TAR], "").ok);
    let run = scratch.minisign(&["-V", "-p", "m.pub", "-m", TAR], "");
    assert!(!run.ok);
    let reported = run.stderr.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert_eq!(u64::from_str_radix(reported, 16).unwrap(), u64::from_str_radix(&id, 16).unwrap(), "{}", run.stderr);
}

#[test]
fn our_unencrypted_key_is_laid_out_as_minisigns() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.tool(&["keygen", "-p", "our.pub", "-s", "our.key", "-W"], "").ok);
    assert!(scratch.minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], "").ok);
    let decode = |name: &str| {
        let text = scratch.read(name);
        let mut lines = text.lines();
        (lines.next().unwrap().to_owned(), BASE64.decode(lines.next().unwrap()).unwrap())
    };
    let (our_comment, ours) = decode("our.key");
    let (their_comment, theirs) = decode("m.key");
    assert_eq!(our_comment, their_comment);
    assert_eq!(ours.len(), theirs.len());
    // Algorithms, zero salt and limits, then key id and secret (which differ), then zero checksum.
    assert_eq!(ours[..54], theirs[..54]);
    assert_eq!(ours[126..], theirs[126..]);
}

#[test]
fn encrypted_keys_open_in_both_tools_with_the_password_on_stdin() {
    let Some(scratch) = with_minisign() else { return };
    scratch.write(TAR, &release_bytes(3000));

    // Our encrypted key: minisign decrypts it and recreates our public key.
    assert!(scratch.tool(&["keygen", "-p", "our.pub", "-s", "our.key"], "pass one\npass one\n").ok);
    let run = scratch.minisign(&["-R", "-s", "our.key", "-p", "recreated.pub"], "pass one\n");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert_same_public_key_file(&scratch, "our.pub", "recreated.pub");

    // minisign's encrypted key: we sign with it, minisign verifies.
    let run = scratch.minisign(&["-G", "-p", "m.pub", "-s", "m.key"], "pass two\npass two\n");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(SecretKeyFile::parse(&scratch.read("m.key")).unwrap().is_encrypted());
    let run = scratch.tool(&[&["sign", "-s", "m.key"], SIGN_RELEASE, &[TAR]].concat(), "pass two\n");
    assert!(run.ok, "{}", run.stderr);
    assert!(scratch.minisign(&["-V", "-p", "m.pub", "-m", TAR], "").ok);
}

#[test]
fn minisigns_legacy_signature_is_refused() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], "").ok);
    scratch.write(TAR, b"legacy");
    assert!(scratch.minisign(&["-S", "-l", "-s", "m.key", "-m", TAR], "").ok);
    let run = scratch.tool(&["verify", "-p", "m.pub", TAR], "");
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        format!("signing-tool: {TAR}: not verified: legacy non-prehashed signature (Ed) refused; re-sign with minisign -H or signing-tool\n")
    );
}

#[test]
fn tampered_trusted_comment_fails_in_both_tools() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.tool(&["keygen", "-p", "our.pub", "-s", "our.key", "-W"], "").ok);
    scratch.write(TAR, b"release");
    assert!(scratch.tool(&[&["sign", "-s", "our.key"], SIGN_RELEASE, &[TAR]].concat(), "").ok);
    let signature = scratch.read("SEBLINUX-base-1.1.tar.minisig").replace("version:1.1", "version:2.0");
    scratch.write("SEBLINUX-base-1.1.tar.minisig", signature.as_bytes());
    assert!(!scratch.minisign(&["-V", "-p", "our.pub", "-m", TAR], "").ok);
    let run = scratch.tool(&["verify", "-p", "our.pub", TAR], "");
    assert!(!run.ok);
    assert!(run.stderr.contains("the trusted comment is not signed by key"), "{}", run.stderr);
}

#[test]
fn trusted_comment_at_minisigns_limit_verifies_in_minisign() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.minisign(&["-G", "-W", "-p", "m.pub", "-s", "m.key"], "").ok);
    let key = SecretKeyFile::parse(&scratch.read("m.key")).unwrap().open("").unwrap();
    let content = b"limit";
    scratch.write(TAR, content);
    let sign = |keyword_len: usize| {
        let meta = ReleaseMeta { name: "N".into(), version: "1".into(), keywords: vec!["k".repeat(keyword_len)] };
        let mut signer = Signer::new();
        signer.update(content);
        signer.finish(&key, TAR, Some(&meta), 1)
    };
    let short = sign(1).unwrap();
    let longest = MAX_TRUSTED_COMMENT_BYTES - short.trusted_comment().len() + 1;
    let at_limit: Minisig = sign(longest).unwrap();
    assert_eq!(at_limit.trusted_comment().len(), MAX_TRUSTED_COMMENT_BYTES);
    assert!(sign(longest + 1).is_err());
    scratch.write("SEBLINUX-base-1.1.tar.minisig", at_limit.to_text().as_bytes());
    let run = scratch.minisign(&["-V", "-q", "-p", "m.pub", "-m", TAR], "");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(scratch.tool(&["verify", "-p", "m.pub", TAR], "").ok);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn minisign_verifies_our_rotation_record() {
    let Some(scratch) = with_minisign() else { return };
    assert!(scratch.tool(&["keygen", "-p", "old.pub", "-s", "old.key", "-W"], "").ok);
    assert!(scratch.tool(&["keygen", "-p", "new.pub", "-s", "new.key", "-W"], "").ok);
    let run = scratch.tool(&["rotate", "-s", "old.key", "-p", "new.pub", "--name", "SEBLINUX-base"], "");
    assert!(run.ok, "{}", run.stderr);
    let record = format!("KEYROTATION-{}-{}.pub", key_id_in(&scratch, "old.pub"), key_id_in(&scratch, "new.pub"));
    let run = scratch.minisign(&["-V", "-p", "old.pub", "-m", &record], "");
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("\tnames:SEBLINUX-base"), "{}", run.stdout);
}
