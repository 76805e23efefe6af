//! A small network of real servents, end to end: every query finds its
//! file, duplicate suppression keeps floods below one message per link
//! direction, flooding's duplicates grow with the TTL, and no fake is ever
//! kept.
//!
//! Each test listens on its own port, so the tests of this file can run at
//! once on the same addresses.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_std::task;
use servent::trust::Verdict;
use test_net::experiment::{self, Download};
use test_net::Settings;

/// Twenty nodes of degree 4, ten files each on two nodes. A query counts
/// as over after 300 ms of quiet, not the default 60 ms: under a loaded CI
/// machine a starved servent can hold a genuine hit longer than 60 ms, and
/// the test would then count a found item as missed.
fn small(port: u16) -> Settings {
    Settings {
        nodes: 20,
        degree: 4,
        ttl: 5,
        catalog: 10,
        replication: 0.1,
        queries: 6,
        seed: 3,
        port,
        quiet: Duration::from_millis(300),
        ..Settings::default()
    }
}

#[test]
fn every_query_succeeds_and_floods_stay_below_nodes_times_degree() {
    let settings = small(26401);
    let mut seen = 0;
    let summary = task::block_on(experiment::run(&settings, &AtomicBool::new(false), |_| seen += 1)).unwrap();
    assert_eq!(seen, 6);
    assert_eq!(summary.success_rate, 1.0, "{summary}");
    assert_eq!(summary.ring.success_rate, 1.0, "{summary}");
    let bound = (settings.nodes * settings.degree) as f64;
    assert!(summary.messages_per_query < bound, "{summary}");
    assert!(summary.messages_per_query > 0.0, "{summary}");
    assert!(summary.ring.messages_per_query <= summary.flood.messages_per_query, "{summary}");
    assert_eq!(summary.fakes_accepted, 0);
    assert_eq!((summary.flood.unsettled, summary.ring.unsettled), (0, 0), "{summary}");
}

#[test]
fn fakes_are_flagged_before_download_and_never_kept() {
    let settings = Settings { fakes: 3, ..small(26406) };
    let mut records = Vec::new();
    let summary =
        task::block_on(experiment::run(&settings, &AtomicBool::new(false), |r| records.push(r.clone()))).unwrap();
    assert_eq!(summary.fakers, 3, "{summary}");
    assert_eq!(summary.success_rate, 1.0, "{summary}");
    assert_eq!(summary.ring.success_rate, 1.0, "{summary}");
    // Each faker answers every query with three fakes (at most 6 × 3 × 3
    // results); each is judged before download, none verified.
    assert!(summary.fakes_seen > 0 && summary.fakes_seen <= 6 * 3 * 3, "{summary}");
    assert_eq!(summary.fakes_flagged, summary.fakes_seen, "{summary}");
    assert_eq!(summary.fakes_accepted, 0, "{summary}");
    assert_eq!((summary.downloads_attempted, summary.downloads_verified), (6, 6), "{summary}");
    assert_eq!((summary.downloads_refused, summary.downloads_failed), (0, 0), "{summary}");
    // A flood of TTL k sends at most d + d(d-1) + … + d(d-1)^(k-1) Queries.
    let degree = settings.degree as u64;
    let flood_bound = |ttl: u8| (0..u32::from(ttl)).map(|j| degree * (degree - 1).pow(j)).sum::<u64>();
    for record in &records {
        let fetch = record.fetch.as_ref().unwrap();
        assert_eq!(fetch.best, Some(Verdict::Verified), "{record:?}");
        assert_eq!(fetch.download, Download::KeptGenuine, "{record:?}");
        // Each download re-queries the whole network by URN before the
        // ring starts (some 60 Queries here): none of them is counted.
        let ring = record.ring.as_ref().unwrap();
        assert!(ring.messages <= (1..=ring.ttl).map(flood_bound).sum(), "{record:?}");
    }
    let bound = (settings.nodes * settings.degree) as f64;
    assert!(summary.messages_per_query < bound, "{summary}");
    assert_eq!((summary.flood.unsettled, summary.ring.unsettled), (0, 0), "{summary}");
}

#[test]
fn flooding_duplicates_grow_with_ttl() {
    let settings = small(26402);
    let sweep = task::block_on(experiment::sweep(&settings, 1..=4, &AtomicBool::new(false), |_, _| {})).unwrap();
    let duplicates: Vec<f64> = sweep.points.iter().map(|p| p.flood.duplicates_per_query).collect();
    let messages: Vec<f64> = sweep.points.iter().map(|p| p.flood.messages_per_query).collect();
    // TTL 1 reaches the neighbours only, who forward nothing: no duplicates.
    assert_eq!(duplicates[0], 0.0, "{sweep}");
    assert!(duplicates[0] < duplicates[1] && duplicates[1] < duplicates[2], "{sweep}");
    assert!(duplicates[2] <= duplicates[3], "{sweep}");
    assert!(messages.windows(2).all(|w| w[0] <= w[1]), "{sweep}");
    assert!(messages.iter().all(|&m| m < 80.0), "{sweep}");
    assert_eq!(sweep.points.last().unwrap().flood.success_rate, 1.0, "{sweep}");
}

#[test]
fn churn_and_a_flooder_do_not_stop_the_others() {
    let settings = Settings { churn: 0.3, flooder: true, queries: 8, ..small(26403) };
    let summary = task::block_on(experiment::run(&settings, &AtomicBool::new(false), |_| {})).unwrap();
    assert!(summary.departures >= 6, "{summary}");
    let flooder = summary.flooder.as_ref().unwrap();
    assert!(flooder.queries > 0, "{summary}");
    assert!(flooder.rate_limited > 0, "{summary}");
    assert!(flooder.success_rate > 0.0, "{summary}");
}

#[test]
fn a_cancelled_run_stops_its_nodes_and_frees_its_port() {
    let settings = small(26404);
    let result = task::block_on(experiment::run(&settings, &AtomicBool::new(true), |_| {}));
    assert!(matches!(result, Err(test_net::Error::Interrupted)), "{result:?}");
    // Every address is free again: a second run on the same port starts.
    let summary = task::block_on(experiment::run(&settings, &AtomicBool::new(false), |_| {})).unwrap();
    assert_eq!(summary.success_rate, 1.0, "{summary}");
}

#[test]
fn impossible_settings_are_refused_before_any_node_starts() {
    let cancel = AtomicBool::new(false);
    for settings in [
        Settings { nodes: 2, ..small(26405) },
        Settings { degree: 40, ..small(26405) },
        Settings { ttl: 0, ..small(26405) },
        Settings { ttl: 8, ..small(26405) },
        Settings { replication: 2.0, ..small(26405) },
        Settings { churn: -0.1, ..small(26405) },
        Settings { fakes: 19, ..small(26405) },
    ] {
        let result = task::block_on(experiment::run(&settings, &cancel, |_| {}));
        assert!(matches!(result, Err(test_net::Error::Settings(_))), "{settings:?}: {result:?}");
    }
}
