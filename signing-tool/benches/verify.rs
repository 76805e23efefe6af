//! Verifying a 1 GiB release in one pass (SHA-256, BLAKE2b-512 prehash, both signatures),
//! against the machine's own ceiling measured in the same run: `sha256sum` then `b2sum` on the
//! same file, which read it twice where the verifier reads it once. The file sits in the page
//! cache, so both sides measure hashing, not the disk. Debian's `sha256sum` does not use the
//! CPU's SHA instructions, so `openssl dgst -sha256` + `b2sum` is printed too when openssl is
//! installed: the harder ceiling.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use signing_tool::{verify_reader, Minisig, ReleaseMeta, SecretKey, Signer};

const FILE_BYTES: usize = 1 << 30;
/// Runs of each external tool; the median is kept.
const TOOL_RUNS: usize = 3;

fn verify_one_gib(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("create a scratch directory");
    let path = dir.path().join("SEBLINUX-base-1.1.tar");
    let key = SecretKey::generate().expect("generate a key");
    let minisig = write_signed_release(&path, &key);
    let public_key = key.public_key();

    let ours = RefCell::new(Vec::new());
    let mut group = c.benchmark_group("verify");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Bytes(FILE_BYTES as u64));
    group.bench_function("1GiB_file", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let file = File::open(&path).expect("open the release");
                let check = verify_reader(&public_key, &minisig, file).expect("read the release");
                let took = started.elapsed();
                assert!(check.verdict.is_ok(), "{:?}", check.verdict);
                ours.borrow_mut().push(took);
                total += took;
            }
            total
        })
    });
    group.finish();

    let sha256sum = median((0..TOOL_RUNS).map(|_| time_tool(&["sha256sum"], &path)).collect());
    let b2sum = median((0..TOOL_RUNS).map(|_| time_tool(&["b2sum"], &path)).collect());
    let ours = median(ours.into_inner());
    let ceiling = sha256sum + b2sum;
    let gb_per_s = |took: Duration| FILE_BYTES as f64 / took.as_secs_f64() / 1e9;
    println!(
        "verify 1 GiB (sha256 + blake2b prehash + signatures, one pass): {:.2} s = {:.2} GB/s; \
         sha256sum {:.2} s + b2sum {:.2} s = {:.2} s ({:.2} GB/s); ratio {:.2} (ours / tools' time; < 1 is faster)",
        ours.as_secs_f64(),
        gb_per_s(ours),
        sha256sum.as_secs_f64(),
        b2sum.as_secs_f64(),
        ceiling.as_secs_f64(),
        gb_per_s(ceiling),
        ours.as_secs_f64() / ceiling.as_secs_f64(),
    );
    if Command::new("openssl").arg("version").output().is_ok_and(|out| out.status.success()) {
        let openssl = median((0..TOOL_RUNS).map(|_| time_tool(&["openssl", "dgst", "-sha256"], &path)).collect());
        let ceiling = openssl + b2sum;
        println!(
            "openssl dgst -sha256 {:.2} s + b2sum {:.2} s = {:.2} s ({:.2} GB/s); ratio {:.2}",
            openssl.as_secs_f64(),
            b2sum.as_secs_f64(),
            ceiling.as_secs_f64(),
            gb_per_s(ceiling),
            ours.as_secs_f64() / ceiling.as_secs_f64(),
        );
    }
}

/// Writes 1 GiB of varied bytes and signs it, in one pass.
fn write_signed_release(path: &Path, key: &SecretKey) -> Minisig {
    let mut out = BufWriter::new(File::create(path).expect("create the release"));
    let mut signer = Signer::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..FILE_BYTES / chunk.len() {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        out.write_all(&chunk).expect("write the release");
        signer.update(&chunk);
    }
    out.flush().expect("write the release");
    let meta = ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.1".into(), keywords: vec!["SEBLINUX".into()] };
    signer.finish(key, "SEBLINUX-base-1.1.tar", Some(&meta), 1_700_000_000).expect("sign the release")
}

fn time_tool(command: &[&str], path: &Path) -> Duration {
    let started = Instant::now();
    let output = Command::new(command[0])
        .args(&command[1..])
        .arg(path)
        .output()
        .unwrap_or_else(|err| panic!("failed to run {command:?}: {err}"));
    assert!(output.status.success(), "{command:?} failed");
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

criterion_group!(benches, verify_one_gib);
criterion_main!(benches);
