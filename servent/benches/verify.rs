//! What judging signatures costs, next to the machine's own ceilings
//! measured in the same run:
//!
//! - verdicts per second on QueryHits: signed results decoded off the wire
//!   and judged against a pinned key, against bare Ed25519 checks of the
//!   same trusted comments;
//! - the end of a download: one read pass over a file computing SHA-1,
//!   SHA-256 and the signature's BLAKE2b prehash and verifying it
//!   (`transfer::download::check_file`), against `sha1sum`, `sha256sum`
//!   and `b2sum` run one after the other on the same file.
//!
//! The file is 1 GiB (`BENCH_MIB` sets another size) in the system's
//! temporary folder, read from the page cache by both sides.
//! Run: `cargo bench -p servent --bench verify`.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use servent::searches::Searches;
use servent::transfer::download::check_file;
use servent::trust::{TrustStore, Verdict};
use servent::wire::{self, GgepId, Guid, Message, Payload, QueryHit, QueryResult, Urn};
use sha2::Digest;
use signing_tool::{Minisig, ReleaseMeta, SecretKey, Signer};

/// Signed results per QueryHit, and QueryHits per round.
const RESULTS_PER_HIT: usize = 10;
const HITS: usize = 100;

fn sign(key: &SecretKey, content: &[u8], name: &str) -> Minisig {
    let mut signer = Signer::new();
    signer.update(content);
    let meta = ReleaseMeta { name: "SEBLINUX-base".into(), version: "1.0".into(), keywords: vec!["SEBLINUX".into()] };
    signer.finish(key, name, Some(&meta), 1_700_000_000).unwrap()
}

/// QueryHits as they arrive, each result a distinct signed file.
fn encoded_hits(key: &SecretKey) -> (Vec<Vec<u8>>, Vec<Minisig>) {
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    for h in 0..HITS {
        let results = (0..RESULTS_PER_HIT)
            .map(|r| {
                let content = format!("SEBLINUX package {h}-{r}");
                let name = format!("SEBLINUX-{h}-{r}.tar");
                let minisig = sign(key, content.as_bytes(), &name);
                let sha256: [u8; 32] = sha2::Sha256::digest(content.as_bytes()).into();
                let mut result = QueryResult {
                    index: r as u32,
                    size: content.len() as u64,
                    name,
                    urns: vec![Urn::Sha256(sha256)],
                    ggep: Default::default(),
                };
                result.ggep.insert(GgepId::RELEASE_SIGNATURE, minisig.to_compact());
                signatures.push(minisig);
                result
            })
            .collect();
        let hit = QueryHit {
            port: 6346,
            ip: Ipv4Addr::new(192, 0, 2, 1),
            speed: 0,
            results,
            trailer: None,
            servent_guid: Guid([7; 16]),
            original: Default::default(),
        };
        messages.push(Message { guid: Guid([1; 16]), ttl: 3, hops: 0, payload: Payload::QueryHit(hit) }.encode());
    }
    (messages, signatures)
}

fn verdicts_per_second() {
    let key = SecretKey::generate().unwrap();
    let mut trust = TrustStore::in_memory();
    trust.add(key.public_key(), vec![]).unwrap();
    let (messages, signatures) = encoded_hits(&key);
    let judged = (HITS * RESULTS_PER_HIT) as f64;

    let best = |mut round: Box<dyn FnMut()>| {
        (0..5)
            .map(|_| {
                let started = Instant::now();
                round();
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let ours = best(Box::new(|| {
        let mut searches = Searches::default();
        let guid = Guid([1; 16]);
        searches.start(guid, "SEBLINUX".into(), Instant::now());
        for bytes in &messages {
            let Payload::QueryHit(hit) = wire::decode(bytes).unwrap().payload else { panic!("not a hit") };
            searches.add(guid, &hit, Instant::now(), &trust);
        }
        let results = searches.get(&guid).unwrap().results();
        assert!(results.iter().all(|r| r.judgement.verdict == Verdict::Verified));
        assert_eq!(results.len(), HITS * RESULTS_PER_HIT);
    }));
    let public = key.public_key();
    let bare = best(Box::new(|| {
        for minisig in &signatures {
            signing_tool::verify_trusted_comment(&public, minisig).unwrap();
        }
    }));
    let rate = |d: Duration| judged / d.as_secs_f64();
    println!("verdicts on QueryHits: {:.0}/s (decode + judge + group)", rate(ours));
    println!("bare Ed25519 trusted-comment checks: {:.0}/s", rate(bare));
    println!("ratio: {:.2} × the bare signature checks", rate(ours) / rate(bare));
}

fn timed(command: &str, path: &Path) -> Option<Duration> {
    let started = Instant::now();
    let status = Command::new(command).arg(path).stdout(std::process::Stdio::null()).status().ok()?;
    status.success().then(|| started.elapsed())
}

fn file_verification() {
    let mib: u64 = std::env::var("BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SEBLINUX-iso-2.0.img");
    let key = SecretKey::generate().unwrap();
    let mut signer = Signer::new();
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut block = vec![0u8; 1 << 20];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..mib {
            for byte in block.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            signer.update(&block);
            file.write_all(&block).unwrap();
        }
        file.flush().unwrap();
    }
    let meta = ReleaseMeta { name: "SEBLINUX-iso".into(), version: "2.0".into(), keywords: vec![] };
    let minisig = signer.finish(&key, "SEBLINUX-iso-2.0.img", Some(&meta), 1_700_000_000).unwrap();
    let mut trust = TrustStore::in_memory();
    trust.add(key.public_key(), vec![]).unwrap();
    let bytes = (mib << 20) as f64;
    let rate = |d: Duration| bytes / d.as_secs_f64() / 1e9;

    // Warm the page cache, then keep the best of three for each side.
    let _ = std::fs::read(&path).map(|b| b.len());
    let ours = (0..3)
        .map(|_| {
            let started = Instant::now();
            let (_, len, judgement) = check_file(&path, &trust, Some(&minisig)).unwrap();
            assert_eq!((len, judgement.verdict), (mib << 20, Verdict::Verified));
            started.elapsed()
        })
        .min()
        .unwrap();
    println!(
        "{mib} MiB: SHA-1 + SHA-256 + BLAKE2b + signature in one pass: {:.2} s, {:.2} GB/s",
        ours.as_secs_f64(),
        rate(ours)
    );
    let tools: Option<Vec<Duration>> =
        ["sha1sum", "sha256sum", "b2sum"].iter().map(|tool| (0..3).filter_map(|_| timed(tool, &path)).min()).collect();
    match tools {
        Some(times) => {
            for (tool, time) in ["sha1sum", "sha256sum", "b2sum"].iter().zip(&times) {
                println!("  {tool}: {:.2} s, {:.2} GB/s", time.as_secs_f64(), rate(*time));
            }
            let total: Duration = times.iter().sum();
            println!("  the three in a row: {:.2} s", total.as_secs_f64());
            println!(
                "ratio: one pass takes {:.2} × the time of sha1sum + sha256sum + b2sum",
                ours.as_secs_f64() / total.as_secs_f64()
            );
        }
        None => println!("  sha1sum, sha256sum or b2sum is missing: no reference"),
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter given on the command line picks one part.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if wanted("verdicts") {
        verdicts_per_second();
    }
    if wanted("file") {
        file_verification();
    }
}
