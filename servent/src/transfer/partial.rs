//! Partial file sharing (PFSP 1.0, as gtk-gnutella, LimeWire and Shareaza
//! do it): a servent serves the parts of a file it is still downloading.
//!
//! Only bytes checked against the file's Tiger tree (whose root a trusted
//! publisher signed) are ever offered: a download registers itself in
//! [`PartialShares`] once it holds that tree, and adds each chunk after the
//! chunk matched the tree and was written. The tree itself is served too,
//! so that a crowd need not fetch it from the publisher. Uploads then find the file by
//! URN as if it were shared, answer `X-Available-Ranges: bytes a-b,c-d`
//! (inclusive, as PFSP writes them) in every response about it, serve a
//! range only from the start of an available run (a shorter `206` when the
//! run ends first), and answer `416` with the ranges for anything else.
//!
//! Downloaders learn what a source has from the same header
//! ([`RangeSet::parse_available`], bounded: a hostile header of any size,
//! overlapping or out of the file's bounds gives at most
//! [`MAX_PARSED_RANGES`] ranges inside the file) and ask it only for chunks
//! it has.
//!
//! How partial sources are found: each download request names the
//! downloader's own address (`X-Node`), and the uploader keeps it as a
//! *swarm* source of that file when it is the address the request came from
//! ([`PartialShares::note_downloader`], [`MAX_SWARM_PER_URN`] per file, the
//! newest kept). No other address a request names is learnt, so a liar can
//! only name itself, and every chunk it serves is checked by the tree
//! anyway. The uploads pass the swarm on in `X-Alt`
//! with the sources downloads verified, so the downloaders of a new file
//! find each other through its publisher.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_std::channel::Sender;

use search::thex::Root;
use search::{SharedFile, Sidecar, Urn};

use servent_core::node::partial::PartialResult;

use super::http::{ContentRange, ResponseHead};
use super::seed::SuperSeed;

/// Ranges read from one `X-Available-Ranges` at most; the rest is ignored.
pub const MAX_PARSED_RANGES: usize = 512;
/// Ranges a set keeps at most: past it, new ranges are not added (a
/// download's ranges are whole chunks; a 1 TiB file would need more only
/// if every other chunk were missing).
pub const MAX_RANGES: usize = 4096;
/// Files being downloaded that are offered at once.
pub const MAX_PARTIAL_FILES: usize = 64;
/// Downloaders remembered per file as swarm sources.
pub const MAX_SWARM_PER_URN: usize = 32;
/// Files whose swarm is remembered.
pub const MAX_SWARM_FILES: usize = 1024;
/// Shared files seeded at once.
pub const MAX_SEEDED: usize = 64;
/// The longest `Retry-After` of a busy upload of a file offered in part:
/// its `503` closes the connection, so no shorter than a queue place's
/// whose connection closes (a downloader obeying less would be cut off as
/// hammering).
pub const SWARM_RETRY_AFTER: Duration = super::upload_queue::MIN_RETRY;

/// A set of byte ranges `start..end` (end exclusive), sorted, disjoint and
/// not touching.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// No range.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Whether there is no byte at all.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(start, end)| end - start).sum()
    }

    /// Adds `start..end`, merged with what it overlaps or touches. Past
    /// [`MAX_RANGES`] separate ranges, a range that would add one more is
    /// left out.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // The first range that ends at or after `start` and the first that
        // starts after `end`: everything between merges.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        if first == last {
            if self.ranges.len() < MAX_RANGES {
                self.ranges.insert(first, (start, end));
            }
            return;
        }
        let merged = (start.min(self.ranges[first].0), end.max(self.ranges[last - 1].1));
        self.ranges.splice(first..last, [merged]);
    }

    /// Whether every byte of `start..end` is in the set.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let at = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges.get(at).is_some_and(|&(s, e)| s <= start && end <= e)
    }

    /// The end of the run that holds byte `at`, if any.
    pub fn run_end(&self, at: u64) -> Option<u64> {
        let index = self.ranges.partition_point(|&(_, e)| e <= at);
        self.ranges.get(index).filter(|&&(s, _)| s <= at).map(|&(_, e)| e)
    }

    /// The value of an `X-Available-Ranges` header: `bytes 0-1023,2048-4095`
    /// (inclusive ends, as HTTP writes ranges).
    pub fn to_header(&self) -> String {
        let ranges: Vec<String> = self.ranges.iter().map(|(s, e)| format!("{s}-{}", e - 1)).collect();
        format!("bytes {}", ranges.join(","))
    }

    /// Reads an `X-Available-Ranges` value about a file of `size` bytes.
    /// Hostile input gives a bounded set inside the file: only the first
    /// [`MAX_PARSED_RANGES`] ranges are read, malformed ones and those
    /// outside the file are skipped, overlaps merge, and ends past the file
    /// are cut to it. `None` if the value is not a byte-range list at all.
    pub fn parse_available(value: &str, size: u64) -> Option<RangeSet> {
        let list = value.trim().strip_prefix("bytes")?;
        let list = list.strip_prefix('=').or_else(|| list.strip_prefix(' ')).unwrap_or(list);
        let mut set = RangeSet::new();
        for item in list.split(',').take(MAX_PARSED_RANGES) {
            let Some((first, last)) = item.trim().split_once('-') else { continue };
            let (Ok(first), Ok(last)) = (first.trim().parse::<u64>(), last.trim().parse::<u64>()) else { continue };
            if first > last || first >= size {
                continue;
            }
            set.insert(first, last.saturating_add(1).min(size));
        }
        Some(set)
    }
}

/// A file being downloaded, as uploads offer it.
#[derive(Clone, Debug)]
struct PartialFile {
    /// What it is and where its `.part` is, as a shared file would be.
    file: SharedFile,
    /// Its bytes checked against the tree and written.
    available: RangeSet,
    /// Its tree in THEX form, served to other downloaders.
    thex: Arc<Vec<u8>>,
}

/// The files this servent is downloading and offers in part, the
/// downloaders of each file that offer theirs, and the shared files it
/// seeds ([`SuperSeed`]).
#[derive(Debug, Default)]
pub struct PartialShares {
    files: Mutex<Vec<PartialFile>>,
    swarm: Mutex<Swarm>,
    seeded: Mutex<Vec<Seeded>>,
    /// The address our downloads name (`X-Node`), once we know one.
    x_node: Mutex<Option<SocketAddrV4>>,
    /// Counts the changes to the files offered (the QRP table names them).
    version: AtomicU64,
    /// Woken at each such change: the library's rescan, which rebuilds the table.
    on_change: Mutex<Option<Sender<()>>>,
}

/// A shared file served as a seed (`--seed-release`).
#[derive(Debug)]
struct Seeded {
    /// Its path, canonical.
    path: PathBuf,
    /// The rule, once the file is asked for (its size known then).
    rule: Option<SuperSeed>,
}

/// Downloaders by URN, the oldest file first.
#[derive(Debug, Default)]
struct Swarm {
    order: VecDeque<Urn>,
    by_urn: HashMap<Urn, VecDeque<SocketAddrV4>>,
}

impl PartialShares {
    /// None yet.
    pub fn new() -> PartialShares {
        PartialShares::default()
    }

    /// We advertise `addr` now (the node learns it): our downloads name it
    /// to their sources, if a source could reach it ([`x_node`]).
    pub fn set_advertised(&self, addr: SocketAddrV4) {
        *self.x_node.lock().unwrap_or_else(PoisonError::into_inner) = x_node(addr);
    }

    /// The address our downloads name to their sources (`X-Node`), if any.
    pub fn x_node(&self) -> Option<SocketAddrV4> {
        *self.x_node.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes `wake` whenever a file is offered or no longer offered.
    pub fn on_change(&self, wake: Sender<()>) {
        *self.on_change.lock().unwrap_or_else(PoisonError::into_inner) = Some(wake);
    }

    /// Counts the changes to the files offered: a new value means the QRP
    /// table must be built again.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
        if let Some(wake) = &*self.on_change.lock().unwrap_or_else(PoisonError::into_inner) {
            let _ = wake.try_send(());
        }
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, Vec<PartialFile>> {
        // Each change is one statement: nothing is half-done.
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offers a file being downloaded, named by both its URNs and its
    /// checked Tiger tree root, its bytes in the `.part` at `path`, its
    /// tree (`thex`, served as it is) and its signature (partial results
    /// carry it); nothing of it is available yet. Past
    /// [`MAX_PARTIAL_FILES`], not offered.
    pub fn offer(
        &self,
        name: &str,
        path: PathBuf,
        size: u64,
        (sha1, sha256): (Urn, Urn),
        (tth, thex): (Root, Arc<Vec<u8>>),
        signature: Option<Sidecar>,
    ) {
        let mut files = self.lock_files();
        if files.len() >= MAX_PARTIAL_FILES {
            // Finished files give way first: the library serves them.
            files.retain(|f| !f.available.contains(0, f.file.size));
        }
        if files.iter().any(|f| f.file.sha1 == sha1) || files.len() >= MAX_PARTIAL_FILES {
            return;
        }
        let file = SharedFile { index: 0, name: name.to_string(), path, size, sha1, sha256, tth, signature };
        files.push(PartialFile { file, available: RangeSet::new(), thex });
        drop(files);
        self.changed();
    }

    /// Bytes `start..end` of the file named `urn` matched its tree and are written.
    pub fn add_verified(&self, urn: &Urn, start: u64, end: u64) {
        if let Some(partial) = self.lock_files().iter_mut().find(|f| f.file.sha1 == *urn || f.file.sha256 == *urn) {
            partial.available.insert(start, end.min(partial.file.size));
        }
    }

    /// The file named `urn` is whole and verified at `path` now: all of it
    /// is offered from there until the library indexes it
    /// ([`PartialShares::forget_indexed`]).
    pub fn complete(&self, urn: &Urn, path: PathBuf) {
        if let Some(partial) = self.lock_files().iter_mut().find(|f| f.file.sha1 == *urn || f.file.sha256 == *urn) {
            partial.file.path = path;
            partial.available = RangeSet::new();
            partial.available.insert(0, partial.file.size);
        }
    }

    /// Stops offering the file named `urn` (cancelled or failed); a change
    /// (a library rescan) only if it was offered.
    pub fn withdraw(&self, urn: &Urn) {
        let mut files = self.lock_files();
        let before = files.len();
        files.retain(|f| f.file.sha1 != *urn && f.file.sha256 != *urn);
        let removed = files.len() < before;
        drop(files);
        if removed {
            self.changed();
        }
    }

    /// Stops offering the whole files that the library indexes now
    /// (`indexed` says which SHA-1s it has): the library serves them from
    /// here on, and stops when they are no longer shared.
    pub fn forget_indexed(&self, indexed: impl Fn(&Urn) -> bool) {
        let whole: Vec<Urn> =
            self.lock_files().iter().filter(|f| f.available.contains(0, f.file.size)).map(|f| f.file.sha1).collect();
        // The index is asked without holding the lock uploads take.
        let indexed: Vec<Urn> = whole.into_iter().filter(|urn| indexed(urn)).collect();
        if !indexed.is_empty() {
            self.lock_files().retain(|f| !indexed.contains(&f.file.sha1));
            self.changed();
        }
    }

    /// The files offered, named as shared files are: the QRP table names
    /// them, so that queries for them reach a leaf.
    pub fn files(&self) -> Vec<SharedFile> {
        self.lock_files().iter().map(|f| f.file.clone()).collect()
    }

    /// The file named `urn` and its available bytes, if it is offered.
    pub fn find(&self, urn: &Urn) -> Option<(SharedFile, RangeSet)> {
        let files = self.lock_files();
        let partial = files.iter().find(|f| f.file.sha1 == *urn || f.file.sha256 == *urn)?;
        Some((partial.file.clone(), partial.available.clone()))
    }

    /// The files offered in part that answer `query` (at most `limit`),
    /// as partial results: by URN when it names any, else when every one
    /// of its words is a word of the file's name. Only files with some
    /// bytes checked, and not all, answer: a whole file is answered by the
    /// library when it is shared, and not at all once it is not (installed
    /// elsewhere, then uninstalled).
    pub fn search(&self, query: &search::Query, limit: usize) -> Vec<PartialResult> {
        let wanted = search::keywords(&query.words);
        let answers = |f: &PartialFile| match query.urns.is_empty() {
            false => query.urns.iter().any(|urn| *urn == f.file.sha1 || *urn == f.file.sha256),
            true => {
                let words = search::keywords(&f.file.name);
                !wanted.is_empty() && wanted.iter().all(|w| words.contains(w))
            }
        };
        let found: Vec<(SharedFile, u64)> = self
            .lock_files()
            .iter()
            .filter(|f| !f.available.is_empty() && f.available.len() < f.file.size && answers(f))
            .take(limit)
            .map(|f| (f.file.clone(), f.available.len()))
            .collect();
        found
            .into_iter()
            .map(|(file, available)| {
                let modified = std::fs::metadata(&file.path).and_then(|m| m.modified()).ok();
                let since_1970 = modified.and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
                let modified = since_1970.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
                PartialResult { file, available, modified }
            })
            .collect()
    }

    /// Serves the shared file at `path` as a seed: each chunk once to the
    /// swarm before any twice. Past [`MAX_SEEDED`] files, or for a path
    /// that does not exist, an error saying so.
    pub fn seed_release(&self, path: &Path) -> Result<(), String> {
        let canonical = path.canonicalize().map_err(|e| format!("--seed-release {}: {e}", path.display()))?;
        let mut seeded = self.seeded.lock().unwrap_or_else(PoisonError::into_inner);
        if seeded.len() >= MAX_SEEDED {
            return Err(format!("--seed-release: at most {MAX_SEEDED} files"));
        }
        if !seeded.iter().any(|s| s.path == canonical) {
            seeded.push(Seeded { path: canonical, rule: None });
        }
        Ok(())
    }

    /// The bytes a seeded shared file offers now (its least-served chunks);
    /// `None` for a file not seeded.
    pub fn seeding(&self, file: &SharedFile) -> Option<RangeSet> {
        let mut seeded = self.seeded.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = seeded.iter_mut().find(|s| is_same_file(&s.path, &file.path))?;
        Some(entry.rule.get_or_insert_with(|| SuperSeed::new(file.size)).offered())
    }

    /// Bytes `start..end` of `file` are being served: counted if it is seeded.
    pub fn served(&self, file: &SharedFile, start: u64, end: u64) {
        let mut seeded = self.seeded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rule) = seeded.iter_mut().find(|s| is_same_file(&s.path, &file.path)).and_then(|s| s.rule.as_mut())
        {
            rule.record(start, end);
        }
    }

    /// The THEX body of the offered file whose root is `root`.
    pub fn tree_body(&self, root: &Root) -> Option<Arc<Vec<u8>>> {
        self.lock_files().iter().find(|f| f.file.tth == *root).map(|f| f.thex.clone())
    }

    /// Remembers the downloader of `file` as a swarm source of the file,
    /// when its `X-Node` (`x_node`, the header's value) names the very
    /// address its request came from (`ip`) and a port.
    pub fn note_downloader(&self, file: &SharedFile, ip: IpAddr, x_node: Option<&str>) {
        let Some(addr) = x_node.and_then(|value| value.trim().parse::<SocketAddrV4>().ok()) else { return };
        if IpAddr::V4(*addr.ip()) != ip || addr.port() == 0 {
            return;
        }
        let mut swarm = self.swarm.lock().unwrap_or_else(PoisonError::into_inner);
        let Swarm { order, by_urn } = &mut *swarm;
        if !by_urn.contains_key(&file.sha1) {
            if order.len() >= MAX_SWARM_FILES {
                if let Some(oldest) = order.pop_front() {
                    by_urn.remove(&oldest);
                }
            }
            order.push_back(file.sha1);
        }
        let addrs = by_urn.entry(file.sha1).or_default();
        addrs.retain(|a| *a != addr);
        if addrs.len() >= MAX_SWARM_PER_URN {
            addrs.pop_front();
        }
        addrs.push_back(addr);
    }

    /// The downloaders of `file` known as swarm sources, the newest first.
    pub fn swarm(&self, file: &SharedFile) -> Vec<SocketAddrV4> {
        let swarm = self.swarm.lock().unwrap_or_else(PoisonError::into_inner);
        swarm.by_urn.get(&file.sha1).map(|addrs| addrs.iter().rev().copied().collect()).unwrap_or_default()
    }
}

/// Whether the shared file at `path` is the file at `canonical`: the same
/// path, or the same once made canonical (looked up only when the names agree).
fn is_same_file(canonical: &Path, path: &Path) -> bool {
    canonical == path
        || (canonical.file_name() == path.file_name() && path.canonicalize().is_ok_and(|p| p == canonical))
}

/// The address a download names in `X-Node` when we advertise `advertised`:
/// that one, unless a source could not reach it (`0.0.0.0`, while a servent
/// listening on every interface has not yet learnt which one others reach,
/// or port 0): then none, and the source does not pass us on.
pub fn x_node(advertised: SocketAddrV4) -> Option<SocketAddrV4> {
    (!advertised.ip().is_unspecified() && advertised.port() != 0).then_some(advertised)
}

/// The `Retry-After` of a busy upload: for a file offered in part (being
/// downloaded, or seeded), at most [`SWARM_RETRY_AFTER`], since a crowd's
/// slots free up chunk by chunk and a downloader sent away for a minute
/// could have fetched from us and served others meanwhile.
pub fn retry_after(configured: Duration, partial: bool) -> Duration {
    match partial {
        true => configured.min(SWARM_RETRY_AFTER),
        false => configured,
    }
}

/// What an upload of a partial file answers to a range request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialAnswer {
    /// Serve bytes `start..end` (from the start asked for, perhaps shorter).
    Serve(u64, u64),
    /// `416`: none of it is available from its start.
    Unavailable,
}

/// The part of `wanted` (`start..end`, resolved against the file) that a
/// partial file with `available` bytes serves: from its start to the end
/// of the available run holding it, never past what was asked.
pub fn serve_range(wanted: (u64, u64), available: &RangeSet) -> PartialAnswer {
    let (start, end) = wanted;
    match available.run_end(start) {
        Some(run_end) if start < end => PartialAnswer::Serve(start, end.min(run_end)),
        _ => PartialAnswer::Unavailable,
    }
}

/// Narrows the answer `head` to a request for bytes `wanted` of a partial
/// file of `size` bytes: the bytes to send (a `206` from the start asked
/// for), or `None` with `head` made a `416` that names the file's size.
pub(super) fn restrict(
    head: &mut ResponseHead,
    wanted: (u64, u64),
    available: &RangeSet,
    size: u64,
) -> Option<(u64, u64)> {
    match serve_range(wanted, available) {
        PartialAnswer::Serve(start, end) => {
            head.set_status(206);
            head.headers.insert("Content-Range", ContentRange { range: Some((start, end)), total: Some(size) });
            Some((start, end))
        }
        PartialAnswer::Unavailable => {
            head.set_status(416);
            head.headers.insert("Content-Range", ContentRange { range: None, total: Some(size) });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_name_the_advertised_address_never_an_unreachable_one() {
        let shares = PartialShares::new();
        assert_eq!(shares.x_node(), None);
        shares.set_advertised("0.0.0.0:6346".parse().unwrap());
        assert_eq!(shares.x_node(), None, "listening on every interface, the address is not known yet");
        shares.set_advertised("203.0.113.7:6346".parse().unwrap());
        assert_eq!(shares.x_node(), Some("203.0.113.7:6346".parse().unwrap()));
        assert_eq!(x_node("203.0.113.7:0".parse().unwrap()), None);
    }

    fn set(ranges: &[(u64, u64)]) -> RangeSet {
        let mut set = RangeSet::new();
        for &(s, e) in ranges {
            set.insert(s, e);
        }
        set
    }

    #[test]
    fn ranges_merge_when_they_overlap_or_touch_and_stay_sorted() {
        let mut ranges = set(&[(10, 20), (30, 40), (0, 5)]);
        assert_eq!(ranges.ranges(), [(0, 5), (10, 20), (30, 40)]);
        ranges.insert(20, 30);
        assert_eq!(ranges.ranges(), [(0, 5), (10, 40)]);
        ranges.insert(3, 12);
        assert_eq!(ranges.ranges(), [(0, 40)]);
        ranges.insert(50, 50);
        assert_eq!(ranges.ranges(), [(0, 40)]);
        assert_eq!(ranges.len(), 40);
        assert!(ranges.contains(0, 40) && ranges.contains(5, 6) && !ranges.contains(39, 41));
        assert_eq!(ranges.run_end(12), Some(40));
        assert_eq!(ranges.run_end(40), None);
    }

    #[test]
    fn the_header_is_pfsp_s_inclusive_byte_list_and_reads_back() {
        let ranges = set(&[(0, 1024), (2048, 4096)]);
        assert_eq!(ranges.to_header(), "bytes 0-1023,2048-4095");
        assert_eq!(RangeSet::parse_available(&ranges.to_header(), 10_000), Some(ranges.clone()));
        assert_eq!(RangeSet::parse_available("bytes=0-1023, 2048-4095", 10_000), Some(ranges));
        assert_eq!(RangeSet::parse_available("bytes ", 10).map(|r| r.is_empty()), Some(true));
        assert_eq!(RangeSet::parse_available("lines 0-3", 10), None);
    }

    #[test]
    fn a_hostile_available_ranges_header_gives_a_bounded_set_inside_the_file() {
        let size = 1000;
        // Overlapping, reversed, out of bounds, malformed.
        let value = "bytes 0-99,50-149,300-200,990-5000,2000-3000,x-y,-5,7-,18446744073709551615-18446744073709551615";
        let ranges = RangeSet::parse_available(value, size).unwrap();
        assert_eq!(ranges.ranges(), [(0, 150), (990, 1000)]);
        // Huge: a million ranges are cut to the first MAX_PARSED_RANGES.
        let many: Vec<String> = (0..1_000_000u64).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let ranges = RangeSet::parse_available(&format!("bytes {}", many.join(",")), u64::MAX).unwrap();
        assert_eq!(ranges.ranges().len(), MAX_PARSED_RANGES);
        // Ranges never outgrow MAX_RANGES however they are inserted.
        let mut ranges = RangeSet::new();
        for i in 0..(MAX_RANGES as u64 + 100) {
            ranges.insert(i * 2, i * 2 + 1);
        }
        assert_eq!(ranges.ranges().len(), MAX_RANGES);
    }

    #[test]
    fn a_busy_upload_of_a_file_offered_in_part_asks_to_come_back_sooner() {
        let minute = Duration::from_secs(60);
        assert_eq!(retry_after(minute, false), minute);
        assert_eq!(retry_after(minute, true), SWARM_RETRY_AFTER);
        assert_eq!(retry_after(Duration::from_secs(2), true), Duration::from_secs(2));
    }

    #[test]
    fn a_partial_upload_serves_from_the_start_asked_to_the_end_of_its_run_or_416() {
        let available = set(&[(0, 100), (200, 300)]);
        assert_eq!(serve_range((0, 50), &available), PartialAnswer::Serve(0, 50));
        assert_eq!(serve_range((50, 250), &available), PartialAnswer::Serve(50, 100));
        assert_eq!(serve_range((220, 1000), &available), PartialAnswer::Serve(220, 300));
        assert_eq!(serve_range((100, 200), &available), PartialAnswer::Unavailable);
        assert_eq!(serve_range((150, 250), &available), PartialAnswer::Unavailable);
        assert_eq!(serve_range((0, 10), &RangeSet::new()), PartialAnswer::Unavailable);
    }

    fn shared(sha1: Urn) -> SharedFile {
        SharedFile {
            index: 1,
            name: "a".into(),
            path: PathBuf::from("/nonexistent"),
            size: 10,
            sha1,
            sha256: sha1,
            tth: Root([0; 24]),
            signature: None,
        }
    }

    #[test]
    fn only_the_requesters_own_ip_is_learnt_and_the_swarm_is_bounded() {
        let shares = PartialShares::new();
        let urn: Urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap();
        let file = shared(urn);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        // Only the address the request came from, named by the request itself.
        shares.note_downloader(&file, ip, Some("203.0.113.9:6346"));
        assert!(shares.swarm(&file).is_empty());
        shares.note_downloader(&file, ip, Some(" 192.0.2.7:6346"));
        assert_eq!(shares.swarm(&file), ["192.0.2.7:6346".parse().unwrap()]);
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for junk in [None, Some("nonsense"), Some("192.0.2.8:0"), Some("192.0.2.8:99999"), Some("192.0.2.8")] {
            shares.note_downloader(&file, other, junk);
        }
        assert_eq!(shares.swarm(&file).len(), 1);
        for port in 1..=(MAX_SWARM_PER_URN as u16 + 10) {
            shares.note_downloader(&file, ip, Some(&format!("192.0.2.7:{port}")));
        }
        let swarm = shares.swarm(&file);
        assert_eq!(swarm.len(), MAX_SWARM_PER_URN);
        assert_eq!(swarm[0].port(), MAX_SWARM_PER_URN as u16 + 10, "the newest first");
    }

    #[test]
    fn a_seeded_file_offers_its_least_served_chunks_and_others_offer_all() {
        use crate::transfer::download::plan::CHUNK_SIZE;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.img");
        std::fs::write(&path, b"x").unwrap();
        let shares = PartialShares::new();
        assert!(shares.seed_release(&dir.path().join("missing.img")).is_err());
        shares.seed_release(&dir.path().join(".").join("release.img")).unwrap();
        let urn: Urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap();
        let file = SharedFile { path: path.clone(), size: 2 * CHUNK_SIZE, ..shared(urn) };
        assert_eq!(shares.seeding(&file).unwrap().ranges(), [(0, 2 * CHUNK_SIZE)]);
        shares.served(&file, 0, CHUNK_SIZE);
        assert_eq!(shares.seeding(&file).unwrap().ranges(), [(CHUNK_SIZE, 2 * CHUNK_SIZE)]);
        assert!(shares.seeding(&shared(urn)).is_none(), "another file is served whole");
    }

    #[test]
    fn a_file_is_answered_as_partial_only_while_part_of_it_is_missing() {
        let shares = PartialShares::new();
        let sha1: Urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap();
        let sha256: Urn = "urn:sha256:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQTCQKRMFYYDENBWHA5DYPQ".parse().unwrap();
        shares.offer("SEBLINUX-base-1.0.tar", PathBuf::from("/p"), 3000, (sha1, sha256), tree(), None);
        let query = search::Query { words: "seblinux base".into(), urns: vec![], limit: 10 };
        assert!(shares.search(&query, 10).is_empty(), "nothing checked yet");
        shares.add_verified(&sha1, 0, 1000);
        assert_eq!(shares.search(&query, 10).len(), 1);
        // Whole now: the library answers for it while it is shared, and
        // nobody once it is uninstalled.
        shares.complete(&sha1, PathBuf::from("/done"));
        assert!(shares.search(&query, 10).is_empty());
        assert!(shares.find(&sha1).is_some(), "still served while the library catches up");
        let version = shares.version();
        shares.forget_indexed(|urn| *urn != sha1);
        assert!(shares.find(&sha1).is_some(), "not indexed yet");
        assert_eq!(shares.version(), version);
        shares.forget_indexed(|urn| *urn == sha1);
        assert!(shares.find(&sha1).is_none(), "the library serves it now");
        assert_ne!(shares.version(), version, "the QRP table is built again");
        // A file still being downloaded stays, whatever the library holds.
        shares.offer("SEBLINUX-base-1.0.tar", PathBuf::from("/p"), 3000, (sha1, sha256), tree(), None);
        shares.add_verified(&sha1, 0, 1000);
        shares.forget_indexed(|_| true);
        assert_eq!(shares.files().len(), 1);
    }

    fn tree() -> (Root, Arc<Vec<u8>>) {
        (Root([1; 24]), Arc::new(b"tree".to_vec()))
    }

    #[test]
    fn a_partial_file_is_found_by_either_urn_with_its_verified_bytes_only() {
        let shares = PartialShares::new();
        let sha1: Urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap();
        let sha256: Urn = "urn:sha256:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQTCQKRMFYYDENBWHA5DYPQ".parse().unwrap();
        shares.offer(
            "a.img",
            PathBuf::from("/p"),
            3000,
            (sha1, sha256),
            (Root([1; 24]), Arc::new(b"tree".to_vec())),
            None,
        );
        assert_eq!(shares.tree_body(&Root([1; 24])).as_deref().map(Vec::as_slice), Some(&b"tree"[..]));
        let (file, available) = shares.find(&sha256).unwrap();
        assert_eq!((file.size, available.is_empty()), (3000, true));
        shares.add_verified(&sha1, 1000, 2000);
        shares.add_verified(&sha1, 2000, 9000);
        assert_eq!(shares.find(&sha1).unwrap().1.ranges(), [(1000, 3000)]);
        let version = shares.version();
        shares.withdraw(&sha1);
        assert!(shares.find(&sha1).is_none());
        assert_ne!(shares.version(), version, "the QRP table is built again");
        let version = shares.version();
        shares.withdraw(&sha1);
        assert_eq!(shares.version(), version, "nothing withdrawn, nothing to rebuild");
    }
}
