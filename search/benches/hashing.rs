//! Hashing throughput of `hash_file` on a 256 MiB file, next to its ceilings
//! measured in the same run: the `sha1` and `sha2` crates alone (the bound
//! for one thread doing both is 1/(1/sha1 + 1/sha256)), and coreutils'
//! `sha1sum` and `sha256sum` run one after the other, which is what a user
//! would otherwise do. The file is read from the page cache.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use sha1::{Digest, Sha1};
use sha2::Sha256;

const FILE_SIZE: usize = 256 << 20;
const RUNS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("256MiB.bin");
    write_noise(&path);
    // Warm the page cache so that every contender reads from memory.
    search::hash_file(&path).expect("hash");

    let sha1 = best_of(|| digest_file::<Sha1>(&path));
    let sha256 = best_of(|| digest_file::<Sha256>(&path));
    let ours = best_of(|| {
        search::hash_file(&path).expect("hash");
    });
    let sha1sum = best_of(|| run("sha1sum", &path));
    let sha256sum = best_of(|| run("sha256sum", &path));
    let rate = |time: Duration| FILE_SIZE as f64 / time.as_secs_f64() / 1e9;
    let one_thread_bound = 1.0 / (1.0 / rate(sha1) + 1.0 / rate(sha256));
    println!("hashing a 256 MiB file from the page cache, best of {RUNS}:");
    println!("  sha1 crate alone        {:6.2} GB/s", rate(sha1));
    println!("  sha256 crate alone      {:6.2} GB/s", rate(sha256));
    println!("  both on one thread      {one_thread_bound:6.2} GB/s (bound: 1/(1/sha1+1/sha256))");
    println!(
        "  search::hash_file       {:6.2} GB/s = {:.2} x the one-thread bound, {:.2} x sha256 alone",
        rate(ours),
        rate(ours) / one_thread_bound,
        rate(ours) / rate(sha256)
    );
    println!(
        "  sha1sum {:.3} s + sha256sum {:.3} s = {:.3} s; hash_file {:.3} s: {:.2} x faster",
        sha1sum.as_secs_f64(),
        sha256sum.as_secs_f64(),
        (sha1sum + sha256sum).as_secs_f64(),
        ours.as_secs_f64(),
        (sha1sum + sha256sum).as_secs_f64() / ours.as_secs_f64()
    );

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut group = criterion.benchmark_group("hash_256MiB");
    group.throughput(Throughput::Bytes(FILE_SIZE as u64));
    group.bench_function("hash_file", |b| b.iter(|| search::hash_file(&path).expect("hash")));
    group.finish();
    criterion.final_summary();
}

/// Incompressible content, the same on every run.
fn write_noise(path: &Path) {
    let mut file = File::create(path).expect("create");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..FILE_SIZE / chunk.len() {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk).expect("write");
    }
}

fn digest_file<D: Digest>(path: &Path) {
    let mut file = File::open(path).expect("open");
    let mut digest = D::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        digest.update(&chunk[..n]);
    }
    std::hint::black_box(digest.finalize());
}

fn run(program: &str, path: &Path) {
    let status =
        Command::new(program).arg(path).stdout(Stdio::null()).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} failed");
}

fn best_of(mut task: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            task();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}
