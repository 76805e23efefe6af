//! The dynamic query's rules, in virtual time.

use std::time::{Duration, Instant};

use super::*;
use crate::wire::{Guid, Payload, Query, QueryFlags};

fn message() -> Message {
    let query = Query::words("linux");
    Message { guid: Guid([7; 16]), ttl: 0, hops: 0, payload: Payload::Query(query) }
}

fn neighbours(count: u64, matches: Option<bool>) -> Vec<Neighbour> {
    (1..=count).map(|n| Neighbour { peer: PeerId(n), degree: 30, max_ttl: 4, matches }).collect()
}

fn sent(steps: &[Step]) -> Vec<(PeerId, u8)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Send { to, message } => Some((*to, message.ttl)),
            Step::AskStatus(_) => None,
        })
        .collect()
}

#[test]
fn horizon_is_the_damped_sum_of_the_fan_out() {
    assert_eq!(horizon(30, 1), 1);
    assert_eq!(horizon(30, 2), 24); // (1 + 29) × 0.8
    assert_eq!(horizon(30, 3), 557); // (1 + 29 + 841) × 0.64
    assert_eq!(horizon(6, 5), 319); // 781 × 0.4096, rounded down
}

#[test]
fn the_probe_goes_to_three_neighbours_matching_tables_first() {
    let now = Instant::now();
    let mut around = neighbours(6, Some(false));
    around[4].matches = Some(true);
    around[1].matches = None;
    let mut dq = DynamicQuery::new(message(), Origin::Own, 5, now);
    let probe = sent(&dq.start(&around, now));
    assert_eq!(probe, vec![(PeerId(5), 2), (PeerId(2), 2)], "non-matching tables are skipped; TTL 2 with few matches");
    let mut dq = DynamicQuery::new(message(), Origin::Own, 5, now);
    let probe = sent(&dq.start(&neighbours(6, Some(true)), now));
    assert_eq!(probe, vec![(PeerId(1), 1), (PeerId(2), 1), (PeerId(3), 1)], "TTL 1 when enough tables match");
    assert_eq!(dq.next_due(), now + (RESULT_TIMEOUT + PROBE_TIMEOUT) * 3);
}

#[test]
fn without_results_it_widens_one_neighbour_at_a_time_then_ends() {
    let now = Instant::now();
    let around = neighbours(5, None);
    let mut dq = DynamicQuery::new(message(), Origin::Own, 5, now);
    assert_eq!(sent(&dq.start(&around, now)).len(), 3);
    assert!(dq.step(&around, now + Duration::from_secs(1)).is_empty(), "not due yet");
    let mut at = dq.next_due();
    let step = sent(&dq.step(&around, at));
    assert_eq!(step, vec![(PeerId(4), 4)], "no results yet: as far as the neighbour takes");
    assert_eq!(dq.next_due(), at + RESULT_TIMEOUT - TIMEOUT_ADJUST, "a horizon of thousands and no results: wait less");
    at = dq.next_due();
    assert_eq!(sent(&dq.step(&around, at)), vec![(PeerId(5), 4)]);
    at = dq.next_due();
    assert!(dq.step(&around, at).is_empty());
    assert!(dq.is_done(), "every neighbour had it");
}

#[test]
fn enough_results_end_it_and_some_results_lower_the_ttl() {
    let now = Instant::now();
    let around = neighbours(20, None);
    let mut dq = DynamicQuery::new(message(), Origin::Own, 5, now);
    dq.start(&around, now);
    // 60 results from a horizon of 72: 90 more need about 108 hosts, 6 per neighbour left.
    dq.on_results(60);
    let at = dq.next_due();
    assert_eq!(sent(&dq.step(&around, at)), vec![(PeerId(4), 1)]);
    dq.on_results(OWN_RESULTS);
    assert!(dq.step(&around, dq.next_due()).is_empty());
    assert!(dq.is_done());
}

fn out_of_band(mut message: Message) -> Message {
    let Payload::Query(query) = &mut message.payload else { unreachable!() };
    query.flags = query.flags.with(QueryFlags::OOB_REPLY, true);
    message
}

/// Steps `dq` until it ends: the status requests and the sends it made.
fn run_out(dq: &mut DynamicQuery, around: &[Neighbour]) -> (usize, usize) {
    let (mut asks, mut sends) = (0, 0);
    while !dq.is_done() {
        for step in dq.step(around, dq.next_due()) {
            match step {
                Step::AskStatus(_) => asks += 1,
                Step::Send { .. } => sends += 1,
            }
        }
    }
    (asks, sends)
}

#[test]
fn a_guided_leaf_query_asks_the_leaf_and_stops_when_told() {
    let now = Instant::now();
    let leaf = PeerId(99);
    let around = neighbours(10, None);
    let mut dq = DynamicQuery::new(out_of_band(message()), Origin::Leaf { peer: leaf, guided: true }, 4, now);
    dq.start(&around, now);
    let steps = dq.step(&around, dq.next_due());
    assert_eq!(steps, vec![Step::AskStatus(leaf)], "three neighbours queried: ask the leaf");
    let asked = dq.next_due() - STATUS_TIMEOUT;
    dq.on_status(QueryStatus(30), asked + Duration::from_secs(1));
    assert_eq!(dq.kept(), 10, "30 kept over three ultrapeers, nothing new since");
    assert_eq!(sent(&dq.step(&around, dq.next_due())).len(), 1, "the answer resumes it");
    dq.on_status(QueryStatus::STOP, dq.next_due());
    assert!(dq.is_done());
    assert!(dq.step(&around, dq.next_due() + LIFETIME).is_empty());
}

#[test]
fn a_leaf_whose_hits_come_through_us_is_asked_only_once_twenty_new_came() {
    let now = Instant::now();
    let leaf = PeerId(99);
    let around = neighbours(10, None);
    let mut dq = DynamicQuery::new(message(), Origin::Leaf { peer: leaf, guided: true }, 4, now);
    dq.start(&around, now);
    dq.on_results(MIN_NEW_FOR_GUIDANCE - 1);
    assert_eq!(sent(&dq.step(&around, dq.next_due())).len(), 1, "we counted them ourselves: no need to ask");
    dq.on_results(1);
    assert_eq!(dq.step(&around, dq.next_due()), vec![Step::AskStatus(leaf)]);
}

#[test]
fn attack_a_silent_leaf_cannot_make_us_query_every_neighbour_for_its_out_of_band_query() {
    let now = Instant::now();
    let around = neighbours(12, None);
    let mut dq = DynamicQuery::new(out_of_band(message()), Origin::Leaf { peer: PeerId(99), guided: true }, 4, now);
    dq.start(&around, now);
    let (asks, sends) = run_out(&mut dq, &around);
    assert_eq!(asks, MAX_STATUS_TIMEOUTS as usize, "asked, queried one more, asked again");
    assert_eq!(sends, 1, "then no longer guided, its hits out of band: it ends (old code: all 12)");
    assert!(!dq.is_guided());
}

#[test]
fn a_silent_leaf_is_waited_for_then_its_query_goes_on_unguided() {
    let now = Instant::now();
    let around = neighbours(12, None);
    let mut dq = DynamicQuery::new(message(), Origin::Leaf { peer: PeerId(99), guided: true }, 4, now);
    dq.start(&around, now);
    dq.on_results(MIN_NEW_FOR_GUIDANCE);
    let (asks, sends) = run_out(&mut dq, &around);
    assert_eq!(asks, MAX_STATUS_TIMEOUTS as usize);
    assert!(!dq.is_guided());
    assert_eq!(sends + 3, 12, "its hits come through us: counted here, it went on to every neighbour");
}

#[test]
fn a_leaf_that_answered_once_stays_guiding_after_a_silence() {
    let now = Instant::now();
    let leaf = PeerId(99);
    let around = neighbours(12, None);
    let mut dq = DynamicQuery::new(out_of_band(message()), Origin::Leaf { peer: leaf, guided: true }, 4, now);
    dq.start(&around, now);
    assert_eq!(dq.step(&around, dq.next_due()), vec![Step::AskStatus(leaf)]);
    dq.on_status(QueryStatus(3), dq.next_due() - STATUS_TIMEOUT);
    for _ in 0..STATUS_EVERY {
        assert_eq!(sent(&dq.step(&around, dq.next_due())).len(), 1);
    }
    for _ in 0..MAX_STATUS_TIMEOUTS {
        assert_eq!(dq.step(&around, dq.next_due()), vec![Step::AskStatus(leaf)]);
        assert_eq!(sent(&dq.step(&around, dq.next_due())).len(), 1, "the silence timed out: the next neighbour");
    }
    assert!(dq.is_guided() && !dq.is_done());
}

#[test]
fn unsolicited_guidance_makes_a_query_guided() {
    let now = Instant::now();
    let around = neighbours(6, None);
    let mut dq = DynamicQuery::new(out_of_band(message()), Origin::Leaf { peer: PeerId(9), guided: false }, 5, now);
    dq.start(&around, now);
    dq.on_status(QueryStatus(0), now);
    assert!(dq.is_guided());
    assert_eq!(sent(&dq.step(&around, dq.next_due())).len(), 1, "guided, it goes on");
}

#[test]
fn it_ends_after_its_lifetime_whatever_happens() {
    let now = Instant::now();
    let around = neighbours(200, None);
    let mut dq = DynamicQuery::new(message(), Origin::Own, 5, now);
    dq.start(&around, now);
    assert!(dq.step(&around, now + LIFETIME).is_empty());
    assert!(dq.is_done());
}

#[test]
fn an_unguided_leaf_query_whose_hits_go_out_of_band_ends_after_the_probe() {
    let now = Instant::now();
    let around = neighbours(6, None);
    let oob = out_of_band(message());
    let leaf = Origin::Leaf { peer: PeerId(9), guided: false };
    let mut dq = DynamicQuery::new(oob.clone(), leaf, 5, now);
    assert_eq!(sent(&dq.start(&around, now)).len(), PROBE_ULTRAPEERS);
    let later = dq.next_due();
    assert!(dq.step(&around, later).is_empty() && dq.is_done(), "we count none of its hits: it ends");
    // Guided (its leaf asked first), or with its hits routed through us, it goes on.
    for (query, origin) in [(oob, Origin::Leaf { peer: PeerId(9), guided: true }), (message(), leaf)] {
        let mut dq = DynamicQuery::new(query, origin, 5, now);
        dq.start(&around, now);
        let later = dq.next_due();
        assert_eq!(dq.step(&around, later).len(), 1);
        assert!(!dq.is_done());
    }
}

#[test]
fn a_query_by_hash_wants_twenty_five_times_fewer_results() {
    let now = Instant::now();
    let around = neighbours(6, None);
    let mut by_hash = message();
    let Payload::Query(query) = &mut by_hash.payload else { unreachable!() };
    query.urns.push(crate::wire::Urn::Sha1([1; 20]));
    let enough = OWN_RESULTS / URN_DECIMATOR;
    for (message, ends) in [(by_hash, true), (message(), false)] {
        let mut dq = DynamicQuery::new(message, Origin::Own, 5, now);
        dq.start(&around, now);
        dq.on_results(enough);
        let later = dq.next_due();
        dq.step(&around, later);
        assert_eq!(dq.is_done(), ends);
    }
}
