//! A real flash crowd, end to end: real servents on their own loopback
//! addresses download a new signed release from one publisher that shares
//! it as any user would (no `--seed-release`), and from each other.

use std::sync::atomic::AtomicBool;

use async_std::task;
use test_net::flash::{self, FlashSettings};

/// Eight servents, a release of four chunks, the default caps. The run
/// waits for every download (at most twenty single-download times, and at
/// least a minute) and counts a download not done then as failed.
#[test]
fn a_crowd_gets_every_chunk_of_a_release_its_publisher_only_shares() {
    let settings = FlashSettings {
        crowd: 8,
        file_mib: 1,
        fakers: 0,
        upload_rate: 1 << 20,
        download_rate: 2 << 20,
        port: 26421,
        seed: 1,
        seed_release: false,
    };
    let summary = task::block_on(flash::run(&settings, &AtomicBool::new(false))).unwrap();
    assert_eq!((summary.copies_verified, summary.fakes_accepted, summary.downloads_failed), (8, 0, 0), "{summary}");
    assert!(summary.served_bytes >= 8 << 20, "{summary}");
}
