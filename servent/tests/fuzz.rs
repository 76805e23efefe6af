//! Fuzzing at scale with the workspace's own toolchain: every parser that
//! reads bytes from the network or from disk is fed [`DEBUG_INPUTS`]
//! generated and mutated inputs by the ordinary debug `cargo test`, and
//! 1,000,000 in CI (`.ci/run` sets `SERVENT_FUZZ_INPUTS`; about 150 s of CPU
//! for all parsers in the debug build), from a seeded RNG so a run is
//! reproducible, with no nightly compiler and no libFuzzer.
//!
//! The inputs start from a small corpus of real samples kept in
//! `tests/corpus/<parser>/` (descriptors as gtk-gnutella sends them,
//! datagrams of UDP host caches, out-of-band delivery and GUESS, handshakes, HTTP heads, magnets, minisign files and keys written by
//! `signing-tool`); one input in eight is generated from nothing, the rest
//! are one to four mutations of a sample (bit flips, interesting bytes,
//! inserted, deleted and repeated runs, splices of two samples).
//!
//! Each parser must hold three properties on every input:
//! - it never panics;
//! - it allocates a bounded amount: the peak of live heap bytes while it
//!   runs stays under [`allocation_bound`] of the input's length, so no
//!   length field read from the input can make it reserve more;
//! - where the codec can write what it read, reading it back gives the
//!   same value: `decode(encode(x)) == x`.
//!
//! A failure names the parser, the input's number and its bytes in hex,
//! which is enough to add it to the corpus and reproduce it.
//! `SERVENT_FUZZ_INPUTS` changes the number of inputs (CI's longer run, or
//! one by hand).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use futures::executor::block_on;
use futures::io::Cursor;
use search::thex::{self, dime};
use servent::handshake::{self, Admission, Handshake, Step};
use servent::hostcache::{HostCache, MAX_SAVED_BYTES};
use servent::qrp::{RouteTable, RouteTableUpdate, TableReceiver, MAX_TABLE_SLOTS};
use servent::transfer::alt;
use servent::transfer::http;
use servent::transfer::magnet::{Magnet, MAX_MAGNET_LEN};
use servent::wire::vendor::oob::{ReplyAck, ReplyNumber};
use servent::wire::vendor::Vendor;
use servent::wire::{self, ipp, Ggep, Payload, HEADER_LEN, MAX_PAYLOAD};
use signing_tool::{Minisig, PublicKey, Release};

/// Inputs fed to each parser by `cargo test --release`.
const INPUTS: usize = 1_000_000;

/// Inputs fed to each parser by a debug `cargo test`: about 15 s of CPU
/// for all parsers, what keeps the local test run short (CI asks for
/// 1,000,000 through `SERVENT_FUZZ_INPUTS`).
const DEBUG_INPUTS: usize = 100_000;

/// Longest generated input.
const MAX_GENERATED: usize = 600;

/// The most live heap one parse may hold: a few copies of its input plus a
/// fixed allowance, never anything proportional to a length it read.
fn allocation_bound(input_len: usize) -> usize {
    16 * input_len + 256 * 1024
}

thread_local! {
    /// Heap bytes live on this thread (allocations freed elsewhere make it wrap; only differences are read).
    static LIVE: Cell<usize> = const { Cell::new(0) };
    /// The highest value `LIVE` reached since the last reset.
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting live bytes per thread so that each
/// campaign (one test thread) measures only its own parser.
struct Counting;

fn allocated(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(size);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn freed(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(size)));
}

// SAFETY: every call is passed unchanged to `System`; the counters are
// thread-local cells, which neither allocate nor lock.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = System.alloc(layout);
        if !block.is_null() {
            allocated(layout.size());
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = System.alloc_zeroed(layout);
        if !block.is_null() {
            allocated(layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        System.dealloc(block, layout);
        freed(layout.size());
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(block, layout, new_size);
        if !moved.is_null() {
            freed(layout.size());
            allocated(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// xorshift64*: small, fast in a debug build, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound` (which must not be 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Bytes that sit on the edges of the formats: separators, GGEP's magic
/// and flags, length extremes, UTF-8 lead bytes.
const INTERESTING: [u8; 20] = [
    0, 1, 0x7f, 0x80, 0xff, 0xfe, 0xc3, 0x40, 0x20, 0x1c, b'\r', b'\n', b' ', b'\t', b':', b'=', b'&', b'%', b',', b'/',
];

/// One mutated or generated input.
fn next_input(rng: &mut Rng, corpus: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    if rng.below(8) == 0 {
        let len = rng.below(MAX_GENERATED);
        let ascii = rng.below(2) == 0;
        out.extend((0..len).map(|_| if ascii { 0x20 + rng.below(0x5f) as u8 } else { rng.byte() }));
        return;
    }
    out.extend_from_slice(&corpus[rng.below(corpus.len())]);
    for _ in 0..=rng.below(4) {
        mutate(rng, corpus, out);
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    let at = |rng: &mut Rng, input: &Vec<u8>| rng.below(input.len() + 1);
    match rng.below(9) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] = rng.byte();
        }
        2 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        3 => {
            let i = at(rng, input);
            let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| INTERESTING[rng.below(INTERESTING.len())]).collect();
            input.splice(i..i, run);
        }
        4 if !input.is_empty() => {
            let start = rng.below(input.len());
            let end = (start + 1 + rng.below(32)).min(input.len());
            input.drain(start..end);
        }
        5 if !input.is_empty() => {
            // Repeats a run, up to a few hundred times: long lists, many headers.
            let start = rng.below(input.len());
            let end = (start + 1 + rng.below(64)).min(input.len());
            let run = input[start..end].to_vec();
            let most = if rng.below(8) == 0 { 300 } else { 4 };
            let times = 1 + rng.below(most);
            let i = at(rng, input);
            input.splice(i..i, run.iter().copied().cycle().take(run.len() * times));
        }
        6 => {
            let other = &corpus[rng.below(corpus.len())];
            let from = rng.below(other.len() + 1);
            let i = at(rng, input);
            input.truncate(i);
            input.extend_from_slice(&other[from..]);
        }
        7 if input.len() >= 4 => {
            // A 32-bit field, either byte order, set to an extreme.
            let value: u32 = [0, 1, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 0x1_0000][rng.below(7)];
            let bytes = if rng.below(2) == 0 { value.to_le_bytes() } else { value.to_be_bytes() };
            let i = rng.below(input.len() - 3);
            input[i..i + 4].copy_from_slice(&bytes);
        }
        _ => {
            let keep = at(rng, input);
            input.truncate(keep);
        }
    }
}

/// The samples of `tests/corpus/<name>/`, in file-name order.
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    paths.sort();
    let samples: Vec<Vec<u8>> = paths.iter().map(|path| std::fs::read(path).expect("corpus file")).collect();
    assert!(!samples.is_empty(), "the corpus {} is empty", dir.display());
    samples
}

fn inputs() -> usize {
    let default = if cfg!(debug_assertions) { DEBUG_INPUTS } else { INPUTS };
    std::env::var("SERVENT_FUZZ_INPUTS").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// Feeds `check` the campaign's inputs, failing on a panic or on an
/// allocation over [`allocation_bound`]; `prepare` may adjust each input first.
fn campaign(name: &str, samples: Vec<Vec<u8>>, prepare: impl Fn(&mut Rng, &mut Vec<u8>), check: impl Fn(&[u8])) {
    campaign_within(name, samples, allocation_bound, prepare, check);
}

/// As [`campaign`], for a parser whose own bounded tables add to what an
/// input may make it hold: `bound` of the input's length.
fn campaign_within(
    name: &str,
    samples: Vec<Vec<u8>>,
    bound: impl Fn(usize) -> usize,
    prepare: impl Fn(&mut Rng, &mut Vec<u8>),
    check: impl Fn(&[u8]),
) {
    let seed = name.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3));
    let mut rng = Rng(seed);
    let mut input = Vec::with_capacity(64 * 1024);
    let count = inputs();
    let started = Instant::now();
    for n in 0..count {
        next_input(&mut rng, &samples, &mut input);
        prepare(&mut rng, &mut input);
        let before = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(before));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
        let peak = PEAK.with(Cell::get).wrapping_sub(before);
        if let Err(cause) = outcome {
            let cause = cause.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!("{name}: input {n} panicked ({cause}): {}", hex(&input));
        }
        assert!(
            peak <= bound(input.len()),
            "{name}: input {n} of {} bytes held {peak} heap bytes at once: {}",
            input.len(),
            hex(&input)
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{name}: {count} inputs in {seconds:.1} s, {:.0} inputs/s", count as f64 / seconds);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn descriptors_decode_without_panic_and_round_trip() {
    // Half the inputs get a payload length that matches, so the payload
    // decoders are reached rather than the length check.
    let fix_length = |rng: &mut Rng, input: &mut Vec<u8>| {
        if input.len() >= HEADER_LEN && rng.below(2) == 0 {
            let len = (input.len() - HEADER_LEN) as u32;
            input[19..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
        }
    };
    campaign("descriptor", corpus("wire"), fix_length, |bytes| {
        if let Ok(message) = wire::decode(bytes) {
            let again = message.encode();
            assert_eq!(again.len(), message.encoded_len());
            if again.len() - HEADER_LEN <= MAX_PAYLOAD {
                assert_eq!(wire::decode(&again), Ok(message));
            }
        }
    });
}

#[test]
fn udp_messages_decode_without_panic_and_round_trip() {
    // Datagrams: packed hosts in Pongs, out-of-band Reply Numbers and Acks.
    let fix_length = |rng: &mut Rng, input: &mut Vec<u8>| {
        if input.len() >= HEADER_LEN && rng.below(4) != 0 {
            let len = (input.len() - HEADER_LEN) as u32;
            input[19..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
        }
    };
    campaign("udp", corpus("udp"), fix_length, |bytes| {
        let Ok(message) = wire::decode(bytes) else { return };
        if let Payload::Pong(pong) = &message.payload {
            if let Some(Ok(hosts)) = pong.ggep.get(ipp::IPP).map(ipp::unpack) {
                assert_eq!(ipp::unpack(&ipp::pack(&hosts)), Ok(hosts));
            }
        }
        if let Some(Ok(vendor)) = Vendor::from_payload(&message.payload) {
            if let Ok(number) = ReplyNumber::decode(&vendor.body) {
                assert_eq!(ReplyNumber::decode(&number.to_vendor().body), Ok(number));
            }
            if let Ok(ack) = ReplyAck::decode(&vendor.body) {
                assert_eq!(ReplyAck::decode(&ack.to_vendor().body), Ok(ack));
            }
        }
    });
}

#[test]
fn ggep_blocks_decode_without_panic_and_round_trip() {
    campaign(
        "ggep",
        corpus("ggep"),
        |_, _| {},
        |bytes| {
            if let Ok((ggep, used)) = Ggep::decode(bytes) {
                assert!(used <= bytes.len());
                if !ggep.is_empty() {
                    assert_eq!(Ggep::decode(&ggep.encode()).map(|(again, _)| again), Ok(ggep));
                }
            }
        },
    );
}

/// Feeds the lines of `bytes` to a handshake until it ends.
fn feed(mut machine: Handshake, bytes: &[u8]) {
    for line in bytes.split(|&b| b == b'\n') {
        match machine.on_line(line) {
            Ok(Step::Continue | Step::Write(_)) => {}
            Ok(Step::Established { peer, .. }) => {
                assert!(peer.try_ultrapeers.len() <= handshake::MAX_TRY_RECEIVED);
                // The responder keeps the initiator's two header blocks.
                assert!(peer.headers.len() <= 2 * handshake::MAX_HEADERS);
                return;
            }
            Ok(Step::Refused { try_ultrapeers, .. }) => {
                assert!(try_ultrapeers.len() <= handshake::MAX_TRY_RECEIVED);
                return;
            }
            Err(_) => return,
        }
    }
}

#[test]
fn handshakes_never_panic_on_either_side() {
    let config = handshake::Config {
        user_agent: "Seblinux/fuzz".into(),
        listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 6346))),
        max_ttl: 4,
        deflate: true,
        role: handshake::Role::Ultrapeer,
        degree: 16,
        may_become_leaf: true,
        ultrapeer_query_routing: true,
        guid: None,
        live_since: Some(0),
    };
    let remote = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6346));
    let others = vec![SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 6346))];
    campaign(
        "handshake",
        corpus("handshake"),
        |_, _| {},
        |bytes| {
            let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
            handshake::classify_first_line(first);
            feed(Handshake::accept(&config, remote, Admission::Accept, others.clone()), bytes);
            let full = Admission::Full { try_ultrapeers: others.clone() };
            feed(Handshake::accept(&config, remote, full, Vec::new()), bytes);
            feed(Handshake::connect(&config, remote).0, bytes);
        },
    );
}

/// Runs every parser of header values on the headers of a head.
fn parse_values(headers: &http::Headers) {
    let _ = headers.content_length();
    for (name, value) in headers.iter() {
        match name.to_ascii_lowercase().as_str() {
            "range" => {
                let _ = http::parse_range(value).map(|range| range.resolve(1 << 20));
            }
            "content-range" => {
                let _ = http::parse_content_range(value);
            }
            "x-alt" => assert!(alt::parse_x_alt(value).len() <= value.len()),
            "alt-location" | "x-gnutella-alternate-location" => {
                assert!(alt::parse_alternate_locations(value).len() <= value.len())
            }
            _ => {}
        }
    }
}

#[test]
fn http_request_heads_never_panic_and_round_trip() {
    campaign(
        "http request",
        corpus("http-request"),
        |_, _| {},
        |bytes| {
            if let Ok(request) = block_on(http::read_request(&mut Cursor::new(bytes))) {
                parse_values(&request.headers);
                let _ = http::percent_decode(&request.target);
                let again = block_on(http::read_request(&mut Cursor::new(request.encode())));
                assert_eq!(again.ok(), Some(request));
            }
        },
    );
}

#[test]
fn http_response_heads_never_panic_and_round_trip() {
    campaign(
        "http response",
        corpus("http-response"),
        |_, _| {},
        |bytes| {
            if let Ok(response) = block_on(http::read_response_head(&mut Cursor::new(bytes))) {
                parse_values(&response.headers);
                let again = block_on(http::read_response_head(&mut Cursor::new(response.encode())));
                assert_eq!(again.ok(), Some(response));
            }
        },
    );
}

#[test]
fn magnets_never_panic_and_round_trip() {
    campaign(
        "magnet",
        corpus("magnet"),
        |_, _| {},
        |bytes| {
            if let Ok(magnet) = Magnet::parse(&text(bytes)) {
                // A magnet whose name percent-encodes past the limit loses
                // sources, then its name; its URNs and size always stay.
                let uri = magnet.to_uri();
                assert!(uri.len() <= MAX_MAGNET_LEN, "{} bytes", uri.len());
                let parsed = Magnet::parse(&uri).expect("our own URI parses");
                assert_eq!((parsed.sha1, parsed.sha256, parsed.size), (magnet.sha1, magnet.sha256, magnet.size));
                if parsed.name == magnet.name && parsed.sources.len() == magnet.sources.len() {
                    assert_eq!(parsed, magnet);
                }
            }
        },
    );
}

#[test]
fn minisig_files_never_panic_and_round_trip() {
    campaign(
        "minisig",
        corpus("minisig"),
        |_, _| {},
        |bytes| {
            if let Ok(minisig) = Minisig::parse(bytes) {
                let again = Minisig::parse(minisig.to_text().as_bytes()).expect("written minisig reads back");
                assert_eq!(again.to_text(), minisig.to_text());
                let compact = Minisig::from_compact(&minisig.to_compact()).expect("compact form reads back");
                assert_eq!(compact.to_compact(), minisig.to_compact());
                let _ = Release::parse(minisig.trusted_comment());
            }
            let _ = Minisig::from_compact(bytes);
        },
    );
}

#[test]
fn trusted_comments_never_panic() {
    let comments = corpus("minisig")
        .iter()
        .filter_map(|file| text(file).lines().find_map(|l| l.strip_prefix("trusted comment: ").map(String::from)))
        .map(String::into_bytes)
        .collect();
    campaign(
        "trusted comment",
        comments,
        |_, _| {},
        |bytes| {
            if let Ok(release) = Release::parse(&text(bytes)) {
                assert!(release.name.len() + release.version.len() <= bytes.len());
            }
        },
    );
}

#[test]
fn public_keys_never_panic_and_round_trip() {
    campaign(
        "public key",
        corpus("public-key"),
        |_, _| {},
        |bytes| {
            let text = text(bytes);
            if let Ok(key) = PublicKey::parse(&text) {
                assert_eq!(PublicKey::parse(&key.to_file_text()), Ok(key.clone()));
                assert_eq!(PublicKey::from_base64(&key.to_base64()), Ok(key));
            }
            let _ = PublicKey::from_base64(text.trim());
        },
    );
}

/// QRP messages framed for the fuzzer: each payload after its length (two
/// bytes, little-endian).
fn frames(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        Some(frame)
    })
}

#[test]
fn qrp_table_sequences_never_panic_and_round_trip() {
    // Real sequences (RESET then PATCHes, zlib) of small tables with a few
    // names, as a leaf sends them; the fuzzer reaches larger ones.
    let samples = [(8, &["SEBLINUX-base-1.0.tar"][..]), (10, &["a.iso", "pkg-007.tar", "notes.txt"][..])]
        .iter()
        .map(|(bits, names)| {
            let mut table = RouteTable::new(*bits);
            names.iter().for_each(|name| table.insert_name(name));
            let mut framed = Vec::new();
            for update in table.updates_from(None) {
                let payload = update.encode();
                framed.extend_from_slice(&(payload.len() as u16).to_le_bytes());
                framed.extend_from_slice(&payload);
            }
            framed
        })
        .collect();
    // The receiver may hold three tables of the largest size accepted (in
    // force, reset, being patched) and an inflater, whatever the input says.
    let tables = 3 * MAX_TABLE_SLOTS as usize / 8 + 64 * 1024;
    campaign_within(
        "qrp",
        samples,
        |len| allocation_bound(len) + tables,
        |_, _| {},
        |bytes| {
            let mut receiver = TableReceiver::default();
            for payload in frames(bytes) {
                let Ok(update) = RouteTableUpdate::decode(payload) else { break };
                assert_eq!(RouteTableUpdate::decode(&update.encode()).as_ref(), Ok(&update));
                if receiver.receive(update).is_err() {
                    break;
                }
            }
            if let Some(table) = receiver.table() {
                assert!(table.slots() <= MAX_TABLE_SLOTS);
            }
        },
    );
}

/// A file of `size` bytes that differ along it.
fn file_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn thex_trees_never_panic_and_round_trip() {
    // Every sample describes the one file the campaign asks about, so that
    // mutations reach the tree itself, past the envelope's checks.
    const SIZE: usize = 40 * 1024 + 17;
    let tree = thex::Tree::of(&file_of(SIZE));
    let root = tree.root();
    let samples = vec![dime::serialize(&tree)];
    campaign(
        "thex",
        samples,
        |_, _| {},
        |bytes| {
            if let Ok(parsed) = dime::parse(bytes, SIZE as u64, &root) {
                assert_eq!(parsed.root(), root);
                assert_eq!(dime::parse(&dime::serialize(&parsed), SIZE as u64, &root), Ok(parsed));
            }
        },
    );
}

#[test]
fn saved_host_caches_never_panic_and_stay_bounded() {
    // A host cache file is read at start: as hostile as the network.
    campaign(
        "host cache",
        corpus("hostcache"),
        |_, _| {},
        |bytes| {
            let text = text(&bytes[..bytes.len().min(MAX_SAVED_BYTES)]);
            let mut cache = HostCache::with_capacity(64);
            cache.restore(&text, |_| true);
            assert!(cache.len() <= 64);
            let saved = cache.saved();
            let mut again = HostCache::with_capacity(64);
            again.restore(&saved, |_| true);
            assert_eq!(again.saved(), saved);
        },
    );
}
