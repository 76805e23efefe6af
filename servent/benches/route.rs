//! Descriptor decode + route rate: how many Queries per second one servent
//! core can take off the wire and decide about, with no I/O in the way.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use servent::routing::{Config, LocalHost, PeerId, Rate, Router};
use servent::wire::{self, Guid, Message, Payload, Query, QueryFlags, HEADER_LEN};

/// A stream of distinct Queries as a neighbour would send them.
fn encoded_queries(count: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..count {
        let mut guid = [0x5A; 16];
        guid[..4].copy_from_slice(&i.to_le_bytes());
        let query = Query {
            flags: QueryFlags::default(),
            criteria: format!("seblinux package {i}"),
            urns: Vec::new(),
            ggep: Default::default(),
            original: Default::default(),
        };
        Message { guid: Guid(guid), ttl: 4, hops: 1, payload: Payload::Query(query) }.encode_into(&mut bytes);
    }
    bytes
}

fn decode_and_route(c: &mut Criterion) {
    const COUNT: u32 = 10_000;
    let stream = encoded_queries(COUNT);
    let mut group = c.benchmark_group("descriptors");
    group.throughput(Throughput::Elements(u64::from(COUNT)));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut rest = &stream[..];
            while rest.len() >= HEADER_LEN {
                let header = wire::decode_header(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
                let end = HEADER_LEN + header.payload_len as usize;
                criterion::black_box(wire::decode_payload(&header, &rest[HEADER_LEN..end]).unwrap());
                rest = &rest[end..];
            }
        })
    });
    group.bench_function("decode_and_route_to_6_peers", |b| {
        b.iter_batched(
            || {
                let local = LocalHost { addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6346), files: 0, kbytes: 0 };
                let unlimited = Rate { burst: u32::MAX, per_second: u32::MAX };
                let config = Config { own_queries: unlimited, forwarded_queries: unlimited, ..Config::default() };
                let mut router = Router::new(config, local);
                let now = Instant::now();
                for peer in 0..6 {
                    router.connected(PeerId(peer), None, now);
                }
                (router, now)
            },
            |(mut router, now)| {
                let mut rest = &stream[..];
                while rest.len() >= HEADER_LEN {
                    let header = wire::decode_header(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
                    let end = HEADER_LEN + header.payload_len as usize;
                    let message = wire::decode_payload(&header, &rest[HEADER_LEN..end]).unwrap();
                    criterion::black_box(router.handle(PeerId(0), message, now));
                    rest = &rest[end..];
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, decode_and_route);
criterion_main!(benches);
