//! A network namespace of its own for a test that needs addresses that look
//! routable: gtk-gnutella gives and takes out-of-band hits only for public
//! addresses, never on loopback. The test runs its own binary again, only
//! itself, under `unshare --net` (root only, as CI runs), and inside, before
//! its body, brings `lo` up with the addresses it asks for (only when its
//! namespace is not its parent's), within [`INSIDE_TIME_LIMIT`].
//!
//! Outside root it prints why and is skipped; with `CI` set it must run.

use std::net::Ipv4Addr;
use std::process::Command;

/// Set in the run of the test inside the namespace.
const INSIDE: &str = "SERVENT_TEST_NETNS";
/// How long the run inside may take, in seconds, before it is ended.
const INSIDE_TIME_LIMIT: &str = "900";

/// Whether the calling test `name` should run its body here: `true` inside
/// the namespace, set up with `addresses` on `lo` (each with the address
/// that connections to it leave from, if not its own); `false` outside,
/// after its run inside passed (or after saying why it is skipped).
pub fn enter(name: &str, addresses: &[(Ipv4Addr, Option<Ipv4Addr>)]) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        assert_ne!(
            namespace("self"),
            namespace(&std::os::unix::process::parent_id().to_string()),
            "{INSIDE} is set outside a namespace of its own: the host's network is left alone"
        );
        set_up(addresses);
        return true;
    }
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "{name} needs root (a network namespace) in CI");
        eprintln!("skipped: {name} needs root for a network namespace of its own");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    // A run that hangs inside is ended, and fails.
    let output = Command::new("timeout")
        .args(["--kill-after=10", INSIDE_TIME_LIMIT, "unshare", "--net", "--"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} failed in its namespace:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run in its namespace:\n{stdout}\n{stderr}");
    println!("{stdout}\n{stderr}");
    false
}

/// The network namespace of process `pid` ("self" for this one).
fn namespace(pid: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("the network namespace is readable")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `lo` up with `addresses`. A connection to an address of this machine
/// leaves from that address itself (the kernel's source for a local
/// route): the route to each says where connections to it leave from.
fn set_up(addresses: &[(Ipv4Addr, Option<Ipv4Addr>)]) {
    let ip = |args: &str| {
        let status = Command::new("ip").args(args.split(' ')).status().expect("ip runs");
        assert!(status.success(), "ip {args}");
    };
    ip("link set lo up");
    for (address, _) in addresses {
        ip(&format!("addr add {address}/32 dev lo"));
    }
    for (address, from) in addresses {
        if let Some(from) = from {
            ip(&format!("route replace local {address} dev lo table local proto kernel scope host src {from}"));
        }
    }
}
