//! The simulator end to end: two hundred node cores on in-memory links
//! find what they look for, flood as the routing rules allow, and give the
//! same records and summary for the same seed, and other ones for another.

use std::sync::atomic::AtomicBool;

use test_net::experiment::{QueryRecord, Summary};
use test_net::{sim, Settings};

/// Two hundred nodes of degree 6, twenty files on four nodes each.
fn settings(seed: u64) -> Settings {
    Settings {
        nodes: 200,
        degree: 6,
        ttl: 5,
        catalog: 20,
        replication: 0.02,
        queries: 20,
        seed,
        sim: true,
        ..Settings::default()
    }
}

fn run(settings: &Settings) -> (Vec<QueryRecord>, Summary) {
    let mut records = Vec::new();
    let summary = sim::run(settings, &AtomicBool::new(false), |r| records.push(r.clone())).unwrap();
    (records, summary)
}

#[test]
fn a_small_simulation_finds_the_content_and_repeats_itself_exactly() {
    let settings = settings(5);
    let (records, summary) = run(&settings);
    assert_eq!(records.len(), 20);
    assert_eq!(summary.success_rate, 1.0, "{summary}");
    assert_eq!(summary.ring.success_rate, 1.0, "{summary}");
    assert_eq!((summary.flood.unsettled, summary.ring.unsettled), (0, 0), "{summary}");
    // Each node forwards a Query at most once to each neighbour but its sender.
    let links = summary.network.links as f64;
    assert!(summary.messages_per_query > links && summary.messages_per_query <= 2.0 * links, "{summary}");
    assert!(summary.duplicates_per_query > 0.0, "{summary}");
    assert!(summary.ring.messages_per_query < summary.flood.messages_per_query, "{summary}");
    // The first hit takes at least a round trip over the fastest links.
    let first = summary.median_first_hit_ms.unwrap();
    assert!((10.0..1000.0).contains(&first), "{summary}");
    for record in &records {
        assert!(record.flood.sources >= 1 && record.flood.sources <= record.copies, "{record:?}");
        assert_eq!(record.flood.rate_limited + record.flood.queue_full, 0, "{record:?}");
    }

    let (again, same) = run(&settings);
    assert_eq!(again, records);
    assert_eq!(serde_json::to_string(&same).unwrap(), serde_json::to_string(&summary).unwrap());

    let (other, _) = run(&Settings { seed: 6, ..settings });
    assert_ne!(other, records);
}

#[test]
fn the_simulation_refuses_what_it_does_not_simulate() {
    for settings in [
        Settings { churn: 0.1, ..settings(1) },
        Settings { fakes: 2, ..settings(1) },
        Settings { flooder: true, ..settings(1) },
    ] {
        assert!(sim::run(&settings, &AtomicBool::new(false), |_| {}).is_err());
    }
}

#[test]
fn a_two_tier_network_finds_as_much_as_flooding_with_fewer_messages_and_repeats_itself() {
    let settings = Settings { nodes: 100, queries: 3, catalog: 10, replication: 0.2, ..settings(3) };
    let run = || sim::tiers(&settings, &AtomicBool::new(false), |_, _| {}).unwrap();
    let summary = run();
    assert_eq!(summary.ultrapeers, 10);
    let dynamic = summary.dynamic.as_ref().expect("a simulation runs without UDP too");
    assert_eq!((summary.flood.success, dynamic.success), (1.0, 1.0), "{summary}");
    assert!(dynamic.messages_per_query * 3.0 < summary.flood.messages_per_query, "{summary}");
    let split = dynamic.up_up_per_query + dynamic.up_leaf_per_query;
    assert!((split - dynamic.messages_per_query).abs() < 1e-9, "{summary}");
    assert!(dynamic.up_leaf_per_query > 0.0 && summary.qrp_bytes > Some(0), "{summary}");
    let oob = &summary.out_of_band;
    assert_eq!(oob.success, 1.0, "{summary}");
    assert!(oob.messages_per_query * 3.0 < summary.flood.messages_per_query, "{summary}");
    assert!(summary.oob_hits > 0, "hits offered, claimed and taken out of band: {summary}");
    let split = oob.up_up_per_query + oob.up_leaf_per_query + oob.udp_per_query;
    assert!((split - oob.messages_per_query).abs() < 1e-9, "{summary}");
    assert_eq!(dynamic.datagrams_per_query, 0.0, "{summary}");
    assert_eq!(run().to_string(), summary.to_string(), "the same seed, the same figures");
}
