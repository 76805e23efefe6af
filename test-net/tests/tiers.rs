//! `--tiers` on real servents: the same queries flooded on a flat network
//! and asked dynamically from a two-tier network of as many servents.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_std::task;
use test_net::{sim, tiers, Settings};

/// Forty servents, four of them ultrapeers: every query finds its file on
/// both networks, the two-tier one with fewer messages, counted per link
/// by the servents themselves.
#[test]
fn a_two_tier_network_of_real_servents_finds_as_much_as_flooding_with_fewer_messages() {
    let settings = Settings {
        nodes: 40,
        degree: 4,
        ttl: 5,
        catalog: 10,
        replication: 0.1,
        queries: 4,
        seed: 3,
        port: 26411,
        quiet: Duration::from_millis(300),
        ..Settings::default()
    };
    let mut asked = Vec::new();
    let summary =
        task::block_on(tiers::run(&settings, &AtomicBool::new(false), |how, _| asked.push(how.to_string()))).unwrap();
    assert_eq!(asked.iter().filter(|how| *how == "flood").count(), 4);
    assert_eq!(asked.iter().filter(|how| *how == "dynamic").count(), 4);
    assert_eq!(summary.ultrapeers, 4);
    let tiered = &summary.out_of_band;
    assert_eq!((summary.flood.success, tiered.success), (1.0, 1.0), "{summary}");
    assert!(tiered.messages_per_query < summary.flood.messages_per_query, "{summary}");
    assert!(tiered.up_up_per_query > 0.0 && tiered.up_leaf_per_query > 0.0, "{summary}");
    let split = tiered.up_up_per_query + tiered.up_leaf_per_query;
    assert!((split - tiered.messages_per_query).abs() < 1e-9, "{summary}");
    assert!(summary.dynamic.is_none() && summary.qrp_bytes.is_none(), "{summary}");
}

/// A flat network of real servents floods to the end of the TTL, as the
/// simulator does: on a ring of thirty (degree 2, so no node is reached
/// over two paths within the TTL) every query sends exactly what its graph
/// allows, one Query per hop each way, the last hop included, whatever
/// the servents there share.
#[test]
fn a_flat_network_of_real_servents_floods_to_the_end_of_the_ttl_as_the_simulator_counts() {
    let settings = Settings {
        nodes: 30,
        degree: 2,
        ttl: 5,
        catalog: 10,
        replication: 0.1,
        queries: 3,
        seed: 3,
        port: 26412,
        quiet: Duration::from_secs(2),
        ..Settings::default()
    };
    let real = task::block_on(tiers::run(&settings, &AtomicBool::new(false), |_, _| {})).unwrap();
    assert_eq!(real.flood_bound, 10.0, "{real}");
    assert_eq!(real.flood.messages_per_query, real.flood_bound, "{real}");
    let simulated = sim::tiers(&Settings { sim: true, ..settings }, &AtomicBool::new(false), |_, _| {}).unwrap();
    assert_eq!(simulated.flood.messages_per_query, real.flood.messages_per_query, "{simulated}");
}
