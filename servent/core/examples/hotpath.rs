//! Measures the copies on the descriptor hot path against the work around
//! them, in one run: decoding a Query and a QueryHit against copying their
//! payloads (what `wire::Original` costs), cloning a decoded TTL-1 Query
//! (what an ultrapeer with leaves does before the router decides) against
//! decoding and routing a duplicate, a vendor message's body copy, and
//! framing a 16 KiB read of Queries as the shell's reader does (taking
//! each descriptor off the front of the buffer) against taking them all
//! and cutting the buffer once.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use servent_core::routing::{Config, LocalHost, PeerId, Rate, Router};
use servent_core::wire::vendor::{Kind, MessagesSupported, Vendor};
use servent_core::wire::{self, Guid, Message, Payload, QueryHit, QueryResult, HEADER_LEN};

const ROUNDS: u32 = 200_000;

fn ns_per(rounds: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..rounds / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..rounds {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds)
}

fn query_bytes() -> Vec<u8> {
    let mut p = vec![0x60, 0x00];
    p.extend_from_slice(b"seblinux base 1.0 tar\0urn:\0");
    let mut m = vec![0; HEADER_LEN];
    m[16] = 0x80;
    m[17] = 1;
    m[19..23].copy_from_slice(&(p.len() as u32).to_le_bytes());
    m.extend_from_slice(&p);
    m
}

fn hit_bytes() -> Vec<u8> {
    let results = (0..5)
        .map(|i| QueryResult {
            index: i,
            size: 123_456_789,
            name: format!("SEBLINUX-base-1.{i}-x86_64-with-a-longer-name.tar"),
            urns: vec![wire::Urn::Sha1([i as u8; 20])],
            ggep: Default::default(),
        })
        .collect();
    let hit = QueryHit {
        port: 6346,
        ip: Ipv4Addr::new(198, 51, 100, 7),
        speed: 1000,
        results,
        trailer: None,
        servent_guid: Guid([7; 16]),
        original: Default::default(),
    };
    Message { guid: Guid([3; 16]), ttl: 3, hops: 2, payload: Payload::QueryHit(hit) }.encode()
}

fn decode(bytes: &[u8]) -> Message {
    let header = wire::decode_header(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
    wire::decode_payload(&header, &bytes[HEADER_LEN..]).unwrap()
}

/// Frames every descriptor of `read`, decoding each; with `drain_each`,
/// the buffer is cut after each one (`Vec::drain(..end)`), otherwise once.
fn frame(read: &[u8], drain_each: bool) -> usize {
    let mut plain = read.to_vec();
    let mut start = 0;
    let mut count = 0;
    loop {
        let rest = &plain[start..];
        let Some(header) = rest.first_chunk::<HEADER_LEN>() else { break };
        let head = wire::decode_header(header).unwrap();
        let end = HEADER_LEN + head.payload_len as usize;
        if rest.len() < end {
            break;
        }
        black_box(wire::decode_payload(&head, &rest[HEADER_LEN..end]).unwrap());
        count += 1;
        if drain_each {
            plain.drain(..end);
        } else {
            start += end;
        }
    }
    plain.drain(..start);
    count
}

fn main() {
    let query = query_bytes();
    let hit = hit_bytes();
    println!("payloads: Query {} bytes, QueryHit {} bytes", query.len() - HEADER_LEN, hit.len() - HEADER_LEN);

    let decode_query = ns_per(ROUNDS, |_| drop(black_box(decode(black_box(&query)))));
    let copy_query = ns_per(ROUNDS, |_| drop(black_box(Arc::<[u8]>::from(black_box(&query[HEADER_LEN..])))));
    println!(
        "Query: decode {decode_query:.0} ns, payload copy {copy_query:.0} ns ({:.1} %)",
        100.0 * copy_query / decode_query
    );

    let decode_hit = ns_per(ROUNDS, |_| drop(black_box(decode(black_box(&hit)))));
    let copy_hit = ns_per(ROUNDS, |_| drop(black_box(Arc::<[u8]>::from(black_box(&hit[HEADER_LEN..])))));
    println!(
        "QueryHit: decode {decode_hit:.0} ns, payload copy {copy_hit:.0} ns ({:.1} %)",
        100.0 * copy_hit / decode_hit
    );

    // A duplicate TTL-1 Query: decoded, then dropped by the router.
    let local = LocalHost { addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346), files: 0, kbytes: 0 };
    let unlimited = Rate { burst: u32::MAX, per_second: u32::MAX };
    let mut router =
        Router::new(Config { own_queries: unlimited, forwarded_queries: unlimited, ..Config::default() }, local);
    let now = Instant::now();
    for peer in 0..6 {
        router.connected(PeerId(peer), None, now);
    }
    router.handle(PeerId(0), decode(&query), now);
    let duplicate = ns_per(ROUNDS, |_| drop(black_box(router.handle(PeerId(1), decode(black_box(&query)), now))));
    let decoded = decode(&query);
    let clone = ns_per(ROUNDS, |_| drop(black_box(black_box(&decoded).clone())));
    println!(
        "duplicate Query: decode and drop {duplicate:.0} ns, the clone before deciding {clone:.0} ns ({:.1} %)",
        100.0 * clone / duplicate
    );

    let supported =
        MessagesSupported { kinds: vec![Kind::HOPS_FLOW, Kind::TCP_CONNECT_BACK, Kind::QUERY_STATUS_REQUEST] };
    let payload = supported.to_vendor().into_payload();
    let from_payload = ns_per(ROUNDS, |_| drop(black_box(Vendor::from_payload(black_box(&payload)))));
    let Payload::Opaque { bytes, .. } = &payload else { unreachable!() };
    let body_copy = ns_per(ROUNDS, |_| drop(black_box(black_box(&bytes[8..]).to_vec())));
    println!(
        "vendor message ({} bytes): from_payload {from_payload:.0} ns, body copy {body_copy:.0} ns ({:.1} %)",
        bytes.len(),
        100.0 * body_copy / from_payload
    );

    let mut read = Vec::new();
    while read.len() + query.len() <= 16 * 1024 {
        read.extend_from_slice(&query);
    }
    let count = frame(&read, true);
    let each = ns_per(ROUNDS / 100, |_| {
        black_box(frame(black_box(&read), true));
    });
    let once = ns_per(ROUNDS / 100, |_| {
        black_box(frame(black_box(&read), false));
    });
    println!(
        "framing a 16 KiB read of {count} Queries: cut after each {:.0} ns/descriptor, cut once {:.0} ns/descriptor ({:.2}x)",
        each / count as f64,
        once / count as f64,
        each / once
    );
}
