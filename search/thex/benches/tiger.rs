//! Tiger tree hashing against SHA-256 over the same buffer, in the same run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};
use thex::TreeHasher;

fn hashing(c: &mut Criterion) {
    let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut group = c.benchmark_group("8 MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("tiger tree", |b| {
        b.iter(|| {
            let mut hasher = TreeHasher::root_only();
            hasher.update(&data);
            hasher.finish_root()
        })
    });
    group.bench_function("sha256", |b| b.iter(|| Sha256::digest(&data)));
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
