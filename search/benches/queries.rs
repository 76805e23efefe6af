//! Query latency, first scan and unchanged rescan on libraries of 10,000 and
//! 100,000 real (tiny) files with generated, realistic names, kept in a data
//! folder on disk as the servent keeps them. The ceiling of a rescan is
//! `find` listing the same files with their size and time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use search::{Library, Query, Urn};

const SIZES: [usize; 2] = [10_000, 100_000];
const FILES_PER_FOLDER: usize = 1_000;
const LIMIT: usize = 100;

const ARTISTS: &[&str] = &[
    "Daft Punk",
    "Björk",
    "Édith Piaf",
    "Miles Davis",
    "Radiohead",
    "Sigur Rós",
    "Nina Simone",
    "Aphex Twin",
    "Beyoncé",
    "The Beatles",
    "Motörhead",
    "Mötley Crüe",
    "Stromae",
    "Khruangbin",
];
const WORDS: &[&str] = &[
    "love", "night", "city", "dream", "blue", "fire", "river", "home", "road", "summer", "été", "rain", "light",
    "heart", "storm", "gold", "ghost", "mirror", "paradise", "silence", "echo", "midnight", "ocean", "garden",
    "shadow", "wild", "electric", "velvet", "stone", "winter",
];
const DISTROS: &[&str] = &["SEBLINUX", "debian", "ubuntu", "fedora", "arch", "alpine", "gentoo"];
const PARTS: &[&str] = &["base", "extra", "kernel", "desktop", "server", "minimal", "live", "netinst"];
const VIDEO_TAGS: &[&str] = &["720p", "1080p", "2160p", "x264", "x265", "HDR", "WEB-DL", "BluRay"];

/// xorshift64: the same names on every run.
struct Names(u64);

impl Names {
    fn number(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.number(list.len() as u64) as usize]
    }

    fn next(&mut self, n: usize) -> String {
        match n % 4 {
            0 | 1 => format!(
                "{} - {} {} ({}).{}",
                self.pick(ARTISTS),
                self.pick(WORDS),
                self.pick(WORDS),
                1960 + self.number(65),
                self.pick(&["mp3", "flac", "ogg"])
            ),
            2 => format!(
                "{}-{}-{}.{}.{}-{}.{}",
                self.pick(DISTROS),
                self.pick(PARTS),
                self.number(20),
                self.number(10),
                self.number(30),
                self.pick(&["amd64", "arm64", "i386"]),
                self.pick(&["tar.gz", "iso", "tar.xz"])
            ),
            _ => format!(
                "{}.{}.{}.{}.{}.mkv",
                self.pick(WORDS),
                self.pick(WORDS),
                1960 + self.number(65),
                self.pick(VIDEO_TAGS),
                self.pick(VIDEO_TAGS)
            ),
        }
    }
}

/// `count` files spread over folders; each holds its own number, so that
/// every file has its own hashes.
fn make_files(root: &Path, count: usize) {
    let mut names = Names(0x2545_F491_4F6C_DD1D);
    for n in 0..count {
        let folder = root.join(format!("folder{:03}", n / FILES_PER_FOLDER));
        if n % FILES_PER_FOLDER == 0 {
            fs::create_dir_all(&folder).expect("create folder");
        }
        let name = format!("{} {n}", names.next(n));
        fs::write(folder.join(name), n.to_string()).expect("write file");
    }
}

/// Resident memory of this process, from `/proc/self/statm` (Linux only).
fn resident_bytes() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What a test network of many nodes in one process costs: libraries in
/// memory sharing a few files each.
fn many_small_libraries(count: usize) {
    let dir = tempfile::tempdir().expect("temporary folder");
    make_files(dir.path(), 5);
    let folders = vec![dir.path().to_owned()];
    let before = resident_bytes().unwrap_or_default();
    let started = Instant::now();
    let libraries: Vec<Library> = (0..count)
        .map(|_| {
            let library = Library::in_memory().expect("library");
            library.rescan(&folders).expect("scan");
            library
        })
        .collect();
    let elapsed = started.elapsed();
    let grown = resident_bytes().unwrap_or_default().saturating_sub(before);
    println!(
        "{count} in-memory libraries of 5 files: made and scanned in {:.2} s, {:.0} KiB resident each",
        elapsed.as_secs_f64(),
        grown as f64 / 1024.0 / count as f64
    );
    drop(libraries);
}

fn main() {
    many_small_libraries(1_000);
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for count in SIZES {
        let dir = tempfile::tempdir().expect("temporary folder");
        let shared = dir.path().join("shared");
        let started = Instant::now();
        make_files(&shared, count);
        let made = started.elapsed();

        let library = Library::open(&dir.path().join("data")).expect("open");
        let folders: Vec<PathBuf> = vec![shared];
        let started = Instant::now();
        let report = library.rescan(&folders).expect("first scan");
        let first_scan = started.elapsed();
        assert_eq!(report.added, count, "{:?}", report.errors.first());
        let started = Instant::now();
        let report = library.rescan(&folders).expect("rescan");
        let rescan = started.elapsed();
        assert_eq!(report.unchanged, count);
        let started = Instant::now();
        let status = Command::new("find")
            .arg(&folders[0])
            .args(["-type", "f", "-printf", "%s %T@\\n"])
            .stdout(Stdio::null())
            .status()
            .expect("find");
        assert!(status.success());
        let find = started.elapsed();
        drop(library);
        let started = Instant::now();
        let library = Library::open(&dir.path().join("data")).expect("reopen");
        let reopen = started.elapsed();
        println!(
            "{count} files: made in {:.2} s; first scan (hash + index) {:.2} s; \
             unchanged rescan {:.1} ms (find -printf size and time: {:.1} ms); reopen {:.1} ms",
            made.as_secs_f64(),
            first_scan.as_secs_f64(),
            rescan.as_secs_f64() * 1e3,
            find.as_secs_f64() * 1e3,
            reopen.as_secs_f64() * 1e3,
        );

        let some_file = library.files().swap_remove(count / 2);
        let mut group = criterion.benchmark_group(format!("library_{count}"));
        let queries: [(&str, Query); 5] = [
            ("one_common_word", words("love")),
            ("two_words", words("seblinux base")),
            ("four_words_rare", words("daft punk night summer")),
            ("no_match", words("nonexistentword")),
            ("urn", urn(some_file.sha256)),
        ];
        for (label, query) in &queries {
            let found = library.search(query).expect("search").len();
            group.bench_with_input(BenchmarkId::new(*label, found), query, |b, query| {
                b.iter(|| library.search(query).expect("search"))
            });
        }
        group.sample_size(10);
        group.bench_function("rescan_unchanged", |b| b.iter(|| library.rescan(&folders).expect("rescan")));
        group.finish();
    }
    criterion.final_summary();
}

fn words(text: &str) -> Query {
    Query { words: text.into(), urns: Vec::new(), limit: LIMIT }
}

fn urn(urn: Urn) -> Query {
    Query { words: String::new(), urns: vec![urn], limit: LIMIT }
}
