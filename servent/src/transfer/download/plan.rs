//! The chunk plan of one download: which part of the file each source
//! fetches next, and what the sources have earned.
//!
//! A file of known size is cut into chunks of [`chunk_size`] bytes (the last
//! one shorter). Each chunk is *missing*, *claimed* by one or two sources
//! fetching it, or *done*. A source may have only part of the file (partial
//! file sharing: it said which bytes in `X-Available-Ranges`,
//! [`Plan::set_available`]) and is only ever asked for chunks it has; one
//! with nothing we need is parked for [`PARTIAL_RECHECK`]. A source that
//! asks for work ([`Plan::next_for`]) gets the *rarest* missing chunk it
//! has, the one the fewest other sources have (among the first
//! [`RAREST_WINDOW`] missing ones), at random among equals once the plan is
//! [seeded](Plan::seed): so a crowd downloading a new file fetches
//! different chunks and can serve each other. Unseeded, ties go to the
//! lowest chunk and a download grows from the front. When nothing is
//! missing, a source may *steal* a chunk still in flight at another one: if
//! that one made no progress for [`Tuning::stall`], or if the newcomer, at
//! its measured rate, would fetch the whole chunk in well under the time
//! the holder needs for the rest; and in the *end game*
//! ([`Tuning::end_game`]) any idle source joins the chunk with the most
//! bytes left. Both then fetch the chunk; the first to finish (and, with a
//! tree, to verify) wins and the other's claim is revoked, its bytes thrown
//! away. That is how the last chunks of a download never wait on the
//! slowest source.
//!
//! Sources are scored by the rate at which they delivered chunks. Each
//! failure (a lie, a stall, a broken connection) costs the source one error
//! and releases its chunk; each chunk delivered pays one error back, so a
//! source that fails [`Tuning::max_errors`] times more often than it
//! succeeds is dropped. A busy source (`503` with `Retry-After`) is parked
//! until then, without blame. A source that served part of a file that then
//! failed verification is dropped for good ([`Plan::discard_all`]); when
//! several did and there is no tree to tell which lied, the chunks of one
//! suspect are fetched again from the others ([`Plan::refetch_elsewhere`]),
//! never from it, until the file verifies.
//!
//! This is a pure state machine in the style of `routing`: no I/O, no
//! clock. Time is an argument, so every rule is tested without sleeping.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use search::thex;

use crate::transfer::partial::RangeSet;

/// Bytes per chunk of a file up to 256 MiB: large enough that request
/// overhead is noise on a fast link, small enough that a lost chunk costs
/// little, the end game is short, and a crowd passes a new chunk on within
/// a second of upload at 256 KiB/s (a downloader offers a chunk once it is
/// whole and checked, so the chunk is how fast a new file spreads).
pub const CHUNK_SIZE: u64 = 256 << 10;
/// Bytes per chunk of the largest files.
pub const MAX_CHUNK_SIZE: u64 = 1 << 20;
/// Largest file downloaded (1 TiB); bigger announced sizes are lies or mistakes.
pub const MAX_FILE_SIZE: u64 = 1 << 40;
/// Sources remembered per download, dropped ones included (so that a source
/// known to be bad is not taken back when a search names it again).
pub const MAX_KNOWN_SOURCES: usize = 64;
/// Sources fetching the same chunk at once: its holder and one thief.
const MAX_CLAIMS_PER_CHUNK: usize = 2;
/// Weight of the newest chunk in a source's rate (an exponential average).
const RATE_WEIGHT: f64 = 0.5;
/// Missing chunks weighed for rarity at each choice, from the lowest: the
/// choice stays cheap on a file of a million chunks, and done chunks still
/// form few runs in the state file.
const RAREST_WINDOW: usize = 256;
/// How long a partial source with nothing we need is left alone before it
/// is asked again (it is downloading too, and will have more).
pub const PARTIAL_RECHECK: Duration = Duration::from_secs(1);

/// Bytes per chunk of a file of `size` bytes: [`CHUNK_SIZE`], or for a large
/// file the segment of the Tiger tree gtk-gnutella serves for it (each
/// chunk must cover whole segments to be checked on arrival), at most
/// [`MAX_CHUNK_SIZE`]. Our own trees have segments no larger.
pub fn chunk_size(size: u64) -> u64 {
    let segment_height = thex::full_depth(size).saturating_sub(thex::good_depth(size));
    thex::BLOCK_SIZE.checked_shl(segment_height).unwrap_or(u64::MAX).clamp(CHUNK_SIZE, MAX_CHUNK_SIZE)
}

/// The knobs of a plan, with defaults fit for the Internet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    /// A claim without progress for this long may be taken over by anyone.
    pub stall: Duration,
    /// Errors, net of chunks delivered, after which a source is dropped.
    pub max_errors: u32,
    /// A source takes over a chunk when its time for the whole chunk is
    /// below this fraction of the holder's time for the rest.
    pub steal_ratio: f64,
    /// Longest `Retry-After` honoured; longer ones are cut to this.
    pub max_park: Duration,
    /// Whether, once no chunk is missing, an idle source fetches a chunk
    /// another is fetching too (the end game).
    pub end_game: bool,
    /// Whether equally rare chunks are taken at random (the download's
    /// task then seeds the plan), so that a crowd fetches different chunks,
    /// rather than the lowest first.
    pub shuffle: bool,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            stall: Duration::from_secs(15),
            max_errors: 3,
            steal_ratio: 0.5,
            max_park: Duration::from_secs(3600),
            end_game: true,
            shuffle: true,
        }
    }
}

/// One chunk of the file: bytes `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRange {
    /// Its number, from 0.
    pub index: usize,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just past its last byte.
    pub end: u64,
}

impl ChunkRange {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it holds no bytes (never, for a chunk of a plan).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// What a source should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Fetch this chunk.
    Fetch(ChunkRange),
    /// Nothing to do now; ask again when something changes.
    Idle,
    /// The source is busy; ask again at this time.
    Parked(Instant),
    /// The source is dropped (or unknown): stop using it.
    Dropped,
    /// Every chunk is done.
    Complete,
}

/// Why a source is no longer used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// It failed too often.
    TooManyErrors,
    /// It does not have the file (`404`, or another size or URN).
    NotFound,
    /// It served part of a file that failed verification.
    Corrupt,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DropReason::TooManyErrors => "too many errors",
            DropReason::NotFound => "does not have the file",
            DropReason::Corrupt => "served data that failed verification",
        })
    }
}

/// Whether a source may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It may be asked for chunks.
    Usable,
    /// It said it is busy; not before this time.
    Parked(Instant),
    /// Not any more.
    Dropped(DropReason),
}

/// What the plan knows of one source.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// Where it listens.
    pub addr: SocketAddrV4,
    /// Whether it may be used.
    pub standing: Standing,
    /// Its delivery rate in bytes per second, once it delivered a chunk.
    pub rate: Option<f64>,
    /// Errors, net of chunks delivered.
    pub errors: u32,
    /// Bytes of done chunks it delivered.
    pub delivered: u64,
    /// What it said it has (`X-Available-Ranges`); `None`: the whole file.
    pub available: Option<RangeSet>,
    /// Whether its last answer offered nothing we need (a partial source
    /// parked for [`PARTIAL_RECHECK`]): while it has delivered nothing
    /// either, a newly named source may take its place.
    pub had_nothing: bool,
}

impl Source {
    /// Whether it has every byte of `chunk`, as far as it said.
    fn has(&self, chunk: ChunkRange) -> bool {
        self.available.as_ref().is_none_or(|ranges| ranges.contains(chunk.start, chunk.end))
    }
}

/// A source fetching a chunk.
#[derive(Clone, Copy, Debug)]
struct Claim {
    source: SocketAddrV4,
    chunk: usize,
    since: Instant,
    received: u64,
    last_progress: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Missing,
    Claimed,
    /// Done; by whom, when this run of the servent knows it.
    Done(Option<SocketAddrV4>),
}

/// What became of a chunk a source says it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Its bytes are the chunk's: keep them. The sources listed were
    /// fetching the same chunk and must stop.
    Accepted {
        /// Sources whose claim on the chunk is revoked.
        revoked: Vec<SocketAddrV4>,
    },
    /// Someone else finished it first (or the claim was revoked): discard
    /// the bytes.
    Discarded,
}

/// The chunk plan of one file.
#[derive(Clone, Debug)]
pub struct Plan {
    size: u64,
    chunk_size: u64,
    chunks: Vec<Chunk>,
    /// No chunk below this index is missing.
    first_missing: usize,
    /// Done chunks and their bytes, counted as they change rather than
    /// recounted: a 1 TiB file has a million chunks.
    done_chunks: usize,
    done_bytes: u64,
    claims: Vec<Claim>,
    sources: Vec<Source>,
    tuning: Tuning,
    /// Chunks a source may not fetch (it is suspected of lying about them).
    avoid: Vec<(usize, SocketAddrV4)>,
    /// The state of the random choice among equally rare chunks; 0 until
    /// [`Plan::seed`], and then the lowest of them is taken.
    random: u64,
}

impl Plan {
    /// A plan for a file of `size` bytes with nothing done. Sizes above
    /// [`MAX_FILE_SIZE`] are the caller's to refuse.
    pub fn new(size: u64, tuning: Tuning) -> Plan {
        let chunk_size = chunk_size(size);
        let count = usize::try_from(size.div_ceil(chunk_size)).unwrap_or(usize::MAX);
        Plan {
            size,
            chunk_size,
            chunks: vec![Chunk::Missing; count],
            first_missing: 0,
            done_chunks: 0,
            done_bytes: 0,
            claims: Vec::new(),
            sources: Vec::new(),
            tuning,
            avoid: Vec::new(),
            random: 0,
        }
    }

    /// Breaks ties between equally rare chunks at random from now on, with
    /// this seed (without one, the lowest chunk is taken).
    pub fn seed(&mut self, seed: u64) {
        self.random = seed | 1;
    }

    /// What `source` says it has, `None` for the whole file.
    pub fn set_available(&mut self, source: SocketAddrV4, ranges: Option<RangeSet>) {
        if let Some(s) = self.source_mut(source) {
            s.available = ranges;
        }
    }

    /// A number below `bound` (xorshift64), or 0 without a seed.
    fn random_below(&mut self, bound: usize) -> usize {
        if self.random == 0 || bound == 0 {
            return 0;
        }
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random % bound as u64) as usize
    }

    /// Who delivered chunk `index`, when this run knows it.
    pub fn deliverer(&self, index: usize) -> Option<SocketAddrV4> {
        match self.chunks.get(index) {
            Some(Chunk::Done(by)) => *by,
            _ => None,
        }
    }

    /// The done chunks `suspect` delivered become missing again, and only
    /// other sources may fetch them; returns them.
    pub fn refetch_elsewhere(&mut self, suspect: SocketAddrV4) -> Vec<usize> {
        let chunks: Vec<usize> = (0..self.chunks.len()).filter(|&i| self.deliverer(i) == Some(suspect)).collect();
        for &index in &chunks {
            self.mark_missing(index);
            self.avoid.push((index, suspect));
        }
        chunks
    }

    /// The done chunks nobody in this run delivered: those on disk from
    /// before a restart, not yet checked again.
    pub fn resumed_chunks(&self) -> Vec<usize> {
        (0..self.chunks.len()).filter(|&i| self.chunks[i] == Chunk::Done(None)).collect()
    }

    /// A done chunk is missing after all (its bytes on disk are not the
    /// file's): it is fetched again.
    pub fn mark_missing(&mut self, index: usize) {
        if self.is_done(index) {
            self.chunks[index] = Chunk::Missing;
            self.done_chunks -= 1;
            self.done_bytes -= self.chunk(index).len();
            self.first_missing = self.first_missing.min(index);
        }
    }

    /// The file size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes per chunk (the last one may be shorter).
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Chunk `index`'s byte range.
    pub fn chunk(&self, index: usize) -> ChunkRange {
        let start = index as u64 * self.chunk_size;
        ChunkRange { index, start, end: (start + self.chunk_size).min(self.size) }
    }

    /// Marks a chunk done whose bytes are already on disk (a resumed download).
    pub fn mark_done(&mut self, index: usize) {
        if index < self.chunks.len() {
            self.set_done(index, None);
        }
    }

    /// Marks done every chunk wholly inside bytes `start..end`.
    pub fn mark_done_range(&mut self, start: u64, end: u64) {
        let first = usize::try_from(start.div_ceil(self.chunk_size)).unwrap_or(usize::MAX);
        for index in first..self.chunks.len() {
            if self.chunk(index).end > end {
                break;
            }
            self.set_done(index, None);
        }
    }

    fn set_done(&mut self, index: usize, by: Option<SocketAddrV4>) {
        if !self.is_done(index) {
            self.done_chunks += 1;
            self.done_bytes += self.chunk(index).len();
        }
        self.chunks[index] = Chunk::Done(by);
    }

    /// Whether chunk `index` is done.
    pub fn is_done(&self, index: usize) -> bool {
        matches!(self.chunks.get(index), Some(Chunk::Done(_)))
    }

    /// Bytes in done chunks.
    pub fn bytes_done(&self) -> u64 {
        self.done_bytes
    }

    /// Whether every chunk is done.
    pub fn is_complete(&self) -> bool {
        self.done_chunks == self.chunks.len()
    }

    /// The done chunks as byte ranges `start..end`, merged: what the state
    /// file records.
    pub fn done_ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for index in (0..self.chunks.len()).filter(|&i| self.is_done(i)) {
            let chunk = self.chunk(index);
            match ranges.last_mut() {
                Some(last) if last.1 == chunk.start => last.1 = chunk.end,
                _ => ranges.push((chunk.start, chunk.end)),
            }
        }
        ranges
    }

    /// Bytes received so far of the chunks in flight (for progress bars).
    pub fn bytes_in_flight(&self) -> u64 {
        self.claims.iter().map(|c| c.received).sum()
    }

    /// Learns a source; false if it was known already or the table is full
    /// of sources that are useful or known to serve corrupt data. Sources
    /// dropped for failing make room (otherwise a peer naming junk
    /// addresses in `X-Alt` could fill the table before good ones arrive),
    /// and so do partial sources that never delivered a chunk and offered
    /// nothing we need when last asked: in a crowd downloading a new file,
    /// the first names learnt are of downloaders as new as we are, and the
    /// ones named later have more.
    pub fn add_source(&mut self, addr: SocketAddrV4) -> bool {
        if self.source(addr).is_some() {
            return false;
        }
        if self.sources.len() >= MAX_KNOWN_SOURCES {
            let failed = |s: &Source| matches!(s.standing, Standing::Dropped(r) if r != DropReason::Corrupt);
            let useless = |s: &Source| s.had_nothing && s.delivered == 0 && !matches!(s.standing, Standing::Dropped(_));
            match self.sources.iter().position(failed).or_else(|| self.sources.iter().position(useless)) {
                Some(position) => {
                    self.sources.remove(position);
                }
                None => return false,
            }
        }
        let source = Source {
            addr,
            standing: Standing::Usable,
            rate: None,
            errors: 0,
            delivered: 0,
            available: None,
            had_nothing: false,
        };
        self.sources.push(source);
        true
    }

    /// Every known source, in the order they were learnt.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The source at `addr`, if known.
    pub fn source(&self, addr: SocketAddrV4) -> Option<&Source> {
        self.sources.iter().find(|s| s.addr == addr)
    }

    /// The chunk `source` is fetching, if any.
    pub fn claim_of(&self, source: SocketAddrV4) -> Option<ChunkRange> {
        self.claims.iter().find(|c| c.source == source).map(|c| self.chunk(c.chunk))
    }

    /// The sources that may be used now, best first: by measured rate, then
    /// the untried ones in the order they were learnt.
    pub fn candidates(&mut self, now: Instant) -> Vec<SocketAddrV4> {
        self.unpark(now);
        let mut usable: Vec<&Source> = self.sources.iter().filter(|s| s.standing == Standing::Usable).collect();
        // A stable sort keeps untried sources (rate None) in learning order.
        usable.sort_by(|a, b| b.rate.unwrap_or(-1.0).total_cmp(&a.rate.unwrap_or(-1.0)));
        usable.into_iter().map(|s| s.addr).collect()
    }

    /// The earliest time a parked source may be used again.
    pub fn next_unpark(&self) -> Option<Instant> {
        self.sources
            .iter()
            .filter_map(|s| match s.standing {
                Standing::Parked(until) => Some(until),
                _ => None,
            })
            .min()
    }

    /// Hands `source` its next chunk: the lowest missing one, else one it
    /// may steal (see the module documentation).
    pub fn next_for(&mut self, source: SocketAddrV4, now: Instant) -> Next {
        self.unpark(now);
        match self.source(source).map(|s| s.standing) {
            None | Some(Standing::Dropped(_)) => return Next::Dropped,
            Some(Standing::Parked(until)) => return Next::Parked(until),
            Some(Standing::Usable) => {}
        }
        self.release(source);
        if self.is_complete() {
            return Next::Complete;
        }
        let index = match self.missing_for(source).or_else(|| self.chunk_to_steal(source, now)) {
            Some(index) => index,
            // A partial source has more later: ask again after a while,
            // without presuming what it will have then (its next answer says).
            None if self.source(source).is_some_and(|s| s.available.is_some()) => {
                let until = now + PARTIAL_RECHECK;
                if let Some(s) = self.source_mut(source) {
                    s.standing = Standing::Parked(until);
                    s.available = None;
                    s.had_nothing = true;
                }
                return Next::Parked(until);
            }
            None => return Next::Idle,
        };
        self.chunks[index] = Chunk::Claimed;
        if let Some(s) = self.source_mut(source) {
            s.had_nothing = false;
        }
        self.claims.push(Claim { source, chunk: index, since: now, received: 0, last_progress: now });
        Next::Fetch(self.chunk(index))
    }

    /// The missing chunk `source` fetches next: among those it has (and is
    /// not suspected of lying about), within the first [`RAREST_WINDOW`],
    /// the one the fewest other sources have, at random among equals once
    /// seeded. Rarest first spreads a new file fastest: what few have is
    /// fetched while they are there, and downloaders that fetch different
    /// chunks can serve each other.
    fn missing_for(&mut self, source: SocketAddrV4) -> Option<usize> {
        while self.first_missing < self.chunks.len() && self.chunks[self.first_missing] != Chunk::Missing {
            self.first_missing += 1;
        }
        let me = self.source(source)?;
        let avoided = |index: usize| self.avoid.iter().any(|&(chunk, suspect)| chunk == index && suspect == source);
        let others: Vec<&Source> =
            self.sources.iter().filter(|s| s.addr != source && s.standing == Standing::Usable).collect();
        let mut rarest: Vec<usize> = Vec::new();
        let mut fewest = usize::MAX;
        let candidates = (self.first_missing..self.chunks.len())
            .filter(|&index| self.chunks[index] == Chunk::Missing && !avoided(index) && me.has(self.chunk(index)))
            .take(RAREST_WINDOW);
        for index in candidates {
            let holders = others.iter().filter(|s| s.has(self.chunk(index))).count();
            if holders < fewest {
                fewest = holders;
                rarest.clear();
            }
            if holders == fewest {
                rarest.push(index);
            }
        }
        let pick = self.random_below(rarest.len());
        rarest.get(pick).copied()
    }

    /// The claimed chunk `thief` gains most by taking over, if any: a
    /// stalled one first, else the one whose holder is slowest next to it;
    /// in the end game (nothing missing), else the one with the most bytes
    /// left. Only chunks the thief has.
    fn chunk_to_steal(&self, thief: SocketAddrV4, now: Instant) -> Option<usize> {
        let thief_source = self.source(thief)?;
        let thief_rate = thief_source.rate;
        let mut best: Option<(f64, usize)> = None;
        let mut end_game: Option<(u64, usize)> = None;
        let nothing_missing = !self.chunks.contains(&Chunk::Missing);
        for claim in &self.claims {
            if self.claims.iter().filter(|c| c.chunk == claim.chunk).count() >= MAX_CLAIMS_PER_CHUNK {
                continue;
            }
            if self.avoid.contains(&(claim.chunk, thief)) || !thief_source.has(self.chunk(claim.chunk)) {
                continue;
            }
            let chunk = self.chunk(claim.chunk);
            let left = chunk.len() - claim.received.min(chunk.len());
            if self.tuning.end_game && nothing_missing && end_game.is_none_or(|(most, _)| left > most) {
                end_game = Some((left, claim.chunk));
            }
            let gain = if now.saturating_duration_since(claim.last_progress) >= self.tuning.stall {
                f64::INFINITY
            } else {
                let (Some(thief_rate), Some(holder_rate)) = (thief_rate, self.claim_rate(claim, now)) else {
                    continue;
                };
                let holder_time = (chunk.len() - claim.received.min(chunk.len())) as f64 / holder_rate;
                let thief_time = chunk.len() as f64 / thief_rate;
                if thief_time >= self.tuning.steal_ratio * holder_time {
                    continue;
                }
                holder_time - thief_time
            };
            if best.is_none_or(|(best_gain, _)| gain > best_gain) {
                best = Some((gain, claim.chunk));
            }
        }
        best.map(|(_, index)| index).or(end_game.map(|(_, index)| index))
    }

    /// A holder's rate on its current chunk, else its record.
    fn claim_rate(&self, claim: &Claim, now: Instant) -> Option<f64> {
        let elapsed = now.saturating_duration_since(claim.since).as_secs_f64();
        if claim.received > 0 && elapsed > 0.0 {
            return Some(claim.received as f64 / elapsed);
        }
        self.source(claim.source).and_then(|s| s.rate)
    }

    /// `source` has received `received` bytes of chunk `index` so far.
    /// Returns how many of them are new.
    pub fn progress(&mut self, source: SocketAddrV4, index: usize, received: u64, now: Instant) -> u64 {
        match self.claims.iter_mut().find(|c| c.source == source && c.chunk == index) {
            Some(claim) if received > claim.received => {
                let new = received - claim.received;
                claim.received = received;
                claim.last_progress = now;
                new
            }
            _ => 0,
        }
    }

    /// `source` has all the bytes of chunk `index`. The first claim to
    /// finish wins; the others are revoked.
    pub fn complete(&mut self, source: SocketAddrV4, index: usize, now: Instant) -> Completion {
        let Some(position) = self.claims.iter().position(|c| c.source == source && c.chunk == index) else {
            return Completion::Discarded;
        };
        let claim = self.claims.swap_remove(position);
        let revoked: Vec<SocketAddrV4> = self.claims.iter().filter(|c| c.chunk == index).map(|c| c.source).collect();
        self.claims.retain(|c| c.chunk != index);
        self.set_done(index, Some(source));
        let len = self.chunk(index).len();
        let seconds = now.saturating_duration_since(claim.since).as_secs_f64().max(1e-3);
        let sample = len as f64 / seconds;
        if let Some(s) = self.source_mut(source) {
            s.rate = Some(s.rate.map_or(sample, |old| RATE_WEIGHT * sample + (1.0 - RATE_WEIGHT) * old));
            s.errors = s.errors.saturating_sub(1);
            s.delivered += len;
        }
        Completion::Accepted { revoked }
    }

    /// `source` failed (its chunk, if any, goes back to the others). True if
    /// that was one error too many and the source is now dropped.
    pub fn failed(&mut self, source: SocketAddrV4) -> bool {
        self.release(source);
        let max_errors = self.tuning.max_errors;
        match self.source_mut(source) {
            Some(s) if s.standing == Standing::Usable => {
                s.errors += 1;
                if s.errors >= max_errors {
                    s.standing = Standing::Dropped(DropReason::TooManyErrors);
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// `source` is busy until `until` (cut to [`Tuning::max_park`] from now).
    pub fn busy(&mut self, source: SocketAddrV4, until: Instant, now: Instant) {
        self.release(source);
        let until = until.min(now + self.tuning.max_park);
        if let Some(s) = self.source_mut(source).filter(|s| !matches!(s.standing, Standing::Dropped(_))) {
            s.standing = Standing::Parked(until);
        }
    }

    /// Stops using `source` for good.
    pub fn drop_source(&mut self, source: SocketAddrV4, reason: DropReason) {
        self.release(source);
        if let Some(s) = self.source_mut(source) {
            s.standing = Standing::Dropped(reason);
        }
    }

    /// Gives back the chunk `source` was fetching, without blame (its
    /// worker stops, or asks for new work).
    pub fn release(&mut self, source: SocketAddrV4) {
        let Some(position) = self.claims.iter().position(|c| c.source == source) else { return };
        let claim = self.claims.swap_remove(position);
        if !self.claims.iter().any(|c| c.chunk == claim.chunk) {
            self.chunks[claim.chunk] = Chunk::Missing;
            self.first_missing = self.first_missing.min(claim.chunk);
        }
    }

    /// The whole file failed verification: every chunk is missing again and
    /// every source known to have served one is dropped as corrupt. Returns
    /// those sources. (Chunks done before a restart have no known source.)
    pub fn discard_all(&mut self) -> Vec<SocketAddrV4> {
        let mut culprits: Vec<SocketAddrV4> = Vec::new();
        for chunk in &mut self.chunks {
            if let Chunk::Done(Some(source)) = *chunk {
                if !culprits.contains(&source) {
                    culprits.push(source);
                }
            }
            *chunk = Chunk::Missing;
        }
        self.claims.clear();
        self.avoid.clear();
        self.first_missing = 0;
        self.done_chunks = 0;
        self.done_bytes = 0;
        for &source in &culprits {
            self.drop_source(source, DropReason::Corrupt);
        }
        culprits
    }

    fn unpark(&mut self, now: Instant) {
        for s in &mut self.sources {
            if matches!(s.standing, Standing::Parked(until) if until <= now) {
                s.standing = Standing::Usable;
            }
        }
    }

    fn source_mut(&mut self, addr: SocketAddrV4) -> Option<&mut Source> {
        self.sources.iter_mut().find(|s| s.addr == addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new([10, 0, 0, n].into(), 6346)
    }

    /// A plan without the end game, whose other rules these tests check.
    fn plan(size: u64, sources: &[SocketAddrV4]) -> Plan {
        let mut plan = Plan::new(size, Tuning { end_game: false, ..Tuning::default() });
        for &s in sources {
            assert!(plan.add_source(s));
        }
        plan
    }

    fn fetch(next: Next) -> ChunkRange {
        match next {
            Next::Fetch(chunk) => chunk,
            other => panic!("expected a chunk, got {other:?}"),
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn file_is_cut_into_chunks_with_a_short_last_one() {
        let plan = plan(2 * CHUNK_SIZE + 10, &[]);
        assert_eq!(plan.chunk_count(), 3);
        assert_eq!(plan.chunk(2), ChunkRange { index: 2, start: 2 * CHUNK_SIZE, end: 2 * CHUNK_SIZE + 10 });
        assert_eq!(Plan::new(CHUNK_SIZE, Tuning::default()).chunk_count(), 1);
    }

    #[test]
    fn large_files_have_chunks_that_hold_whole_segments_of_their_tree() {
        assert_eq!(chunk_size(0), CHUNK_SIZE);
        assert_eq!(chunk_size(8 << 20), CHUNK_SIZE);
        assert_eq!(chunk_size(64 << 20), CHUNK_SIZE);
        assert_eq!(chunk_size(1 << 30), 512 << 10);
        assert_eq!(chunk_size(4 << 30), MAX_CHUNK_SIZE);
        assert_eq!(chunk_size(MAX_FILE_SIZE), MAX_CHUNK_SIZE);
        for size in [1, 300_000, 8 << 20, 100 << 20, 1 << 30, 3 << 30] {
            let segment = thex::BLOCK_SIZE << (thex::full_depth(size) - thex::good_depth(size));
            assert!(segment > MAX_CHUNK_SIZE || chunk_size(size).is_multiple_of(segment), "{size}");
            let ours = thex::BLOCK_SIZE << (thex::full_depth(size) - thex::served_depth(size));
            assert!(chunk_size(size).is_multiple_of(ours), "{size}");
        }
        let plan = Plan::new(1 << 30, Tuning::default());
        assert_eq!((plan.chunk_size(), plan.chunk_count()), (512 << 10, 2048));
    }

    #[test]
    fn chunks_from_before_a_restart_are_told_apart_and_a_bad_one_is_fetched_again() {
        let mut plan = plan(4 * CHUNK_SIZE, &[addr(1)]);
        plan.mark_done_range(0, 2 * CHUNK_SIZE);
        let now = Instant::now();
        let chunk = fetch(plan.next_for(addr(1), now));
        plan.complete(addr(1), chunk.index, now + secs(1.0));
        assert_eq!(plan.resumed_chunks(), [0, 1], "the chunk delivered in this run is not one of them");
        plan.mark_missing(1);
        plan.mark_missing(1);
        assert_eq!((plan.resumed_chunks(), plan.bytes_done()), (vec![0], 2 * CHUNK_SIZE));
        assert_eq!(fetch(plan.next_for(addr(1), now + secs(1.0))).index, 1);
    }

    #[test]
    fn empty_file_is_complete_from_the_start() {
        let mut plan = plan(0, &[addr(1)]);
        assert!(plan.is_complete());
        assert_eq!(plan.next_for(addr(1), Instant::now()), Next::Complete);
    }

    #[test]
    fn sources_get_the_lowest_missing_chunks_in_turn() {
        let now = Instant::now();
        let mut plan = plan(3 * CHUNK_SIZE, &[addr(1), addr(2)]);
        plan.mark_done(0);
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 1);
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 2);
    }

    #[test]
    fn completed_chunk_is_done_and_its_source_scored() {
        let now = Instant::now();
        let mut plan = plan(2 * CHUNK_SIZE, &[addr(1)]);
        let chunk = fetch(plan.next_for(addr(1), now));
        assert_eq!(plan.complete(addr(1), chunk.index, now + secs(2.0)), Completion::Accepted { revoked: vec![] });
        assert!(plan.is_done(0));
        assert_eq!(plan.bytes_done(), CHUNK_SIZE);
        let source = plan.source(addr(1)).unwrap();
        assert_eq!(source.rate, Some(CHUNK_SIZE as f64 / 2.0));
        assert_eq!(source.delivered, CHUNK_SIZE);
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 1);
    }

    #[test]
    fn failed_chunk_goes_back_to_the_others() {
        let now = Instant::now();
        let mut plan = plan(2 * CHUNK_SIZE, &[addr(1), addr(2)]);
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 0);
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 1);
        assert!(!plan.failed(addr(1)));
        assert_eq!(plan.source(addr(1)).unwrap().errors, 1);
        assert_eq!(plan.claim_of(addr(1)), None);
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 0, "asking again gives back the old claim too");
    }

    #[test]
    fn source_is_dropped_after_max_errors_net_of_successes() {
        let now = Instant::now();
        let mut plan = plan(10 * CHUNK_SIZE, &[addr(1)]);
        plan.failed(addr(1));
        plan.failed(addr(1));
        let chunk = fetch(plan.next_for(addr(1), now));
        plan.complete(addr(1), chunk.index, now);
        assert_eq!(plan.source(addr(1)).unwrap().errors, 1, "a delivered chunk pays back one error");
        assert!(!plan.failed(addr(1)));
        assert!(plan.failed(addr(1)), "third net error drops it");
        assert_eq!(plan.source(addr(1)).unwrap().standing, Standing::Dropped(DropReason::TooManyErrors));
        assert_eq!(plan.next_for(addr(1), now), Next::Dropped);
        assert!(plan.candidates(now).is_empty());
    }

    #[test]
    fn busy_source_is_parked_until_retry_after() {
        let now = Instant::now();
        let mut plan = plan(2 * CHUNK_SIZE, &[addr(1), addr(2)]);
        fetch(plan.next_for(addr(1), now));
        plan.busy(addr(1), now + secs(10.0), now);
        assert_eq!(plan.source(addr(1)).unwrap().errors, 0, "busy is no fault");
        assert_eq!(plan.next_for(addr(1), now + secs(9.0)), Next::Parked(now + secs(10.0)));
        assert_eq!(plan.candidates(now + secs(9.0)), vec![addr(2)]);
        assert_eq!(plan.next_unpark(), Some(now + secs(10.0)));
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 0, "its chunk went back");
        assert_eq!(fetch(plan.next_for(addr(1), now + secs(10.0))).index, 1);
    }

    #[test]
    fn retry_after_is_capped() {
        let now = Instant::now();
        let mut plan = plan(CHUNK_SIZE, &[addr(1)]);
        plan.busy(addr(1), now + secs(1e6), now);
        assert_eq!(plan.next_for(addr(1), now), Next::Parked(now + Tuning::default().max_park));
    }

    #[test]
    fn idle_when_everything_is_claimed_by_healthy_sources() {
        let now = Instant::now();
        let mut plan = plan(CHUNK_SIZE, &[addr(1), addr(2)]);
        fetch(plan.next_for(addr(1), now));
        assert_eq!(plan.next_for(addr(2), now + secs(1.0)), Next::Idle);
    }

    #[test]
    fn stalled_chunk_is_taken_over_by_an_untried_source() {
        let now = Instant::now();
        let mut plan = plan(CHUNK_SIZE, &[addr(1), addr(2)]);
        fetch(plan.next_for(addr(1), now));
        plan.progress(addr(1), 0, 1000, now + secs(1.0));
        let stall = Tuning::default().stall;
        assert_eq!(plan.next_for(addr(2), now + secs(1.0) + stall - secs(0.1)), Next::Idle);
        assert_eq!(fetch(plan.next_for(addr(2), now + secs(1.0) + stall)).index, 0);
    }

    #[test]
    fn fast_source_steals_from_a_much_slower_one() {
        let now = Instant::now();
        let mut plan = plan(3 * CHUNK_SIZE, &[addr(1), addr(2)]);
        // addr(2) proves fast: a whole chunk in one second.
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 0);
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 1);
        plan.complete(addr(2), 0, now + secs(1.0));
        assert_eq!(fetch(plan.next_for(addr(2), now + secs(1.0))).index, 2);
        plan.complete(addr(2), 2, now + secs(2.0));
        // addr(1) got a tenth of its chunk in 2 s: 18 s more to go, against
        // 1 s for addr(2) to fetch it whole.
        plan.progress(addr(1), 1, CHUNK_SIZE / 10, now + secs(2.0));
        assert_eq!(fetch(plan.next_for(addr(2), now + secs(2.0))).index, 1);
        // The thief finishes first: the holder's claim is revoked and its
        // late completion discarded.
        assert_eq!(plan.complete(addr(2), 1, now + secs(3.0)), Completion::Accepted { revoked: vec![addr(1)] });
        assert_eq!(plan.complete(addr(1), 1, now + secs(4.0)), Completion::Discarded);
        assert!(plan.is_complete());
        assert_eq!(plan.source(addr(2)).unwrap().delivered, 3 * CHUNK_SIZE);
    }

    #[test]
    fn holder_that_finishes_first_wins_over_the_thief() {
        let now = Instant::now();
        let mut plan = plan(CHUNK_SIZE, &[addr(1), addr(2)]);
        fetch(plan.next_for(addr(1), now));
        let later = now + Tuning::default().stall;
        fetch(plan.next_for(addr(2), later));
        assert_eq!(plan.complete(addr(1), 0, later), Completion::Accepted { revoked: vec![addr(2)] });
        assert_eq!(plan.complete(addr(2), 0, later), Completion::Discarded);
    }

    #[test]
    fn comparable_sources_do_not_steal_from_each_other() {
        let now = Instant::now();
        let mut plan = plan(3 * CHUNK_SIZE, &[addr(1), addr(2)]);
        fetch(plan.next_for(addr(2), now));
        fetch(plan.next_for(addr(1), now));
        plan.complete(addr(2), 0, now + secs(1.0));
        fetch(plan.next_for(addr(2), now + secs(1.0)));
        plan.complete(addr(2), 2, now + secs(2.0));
        // addr(1) is half as fast: 2 s for the rest, against 1 s for the
        // whole chunk at addr(2): not worth a second download of it.
        plan.progress(addr(1), 1, CHUNK_SIZE / 2, now + secs(2.0));
        assert_eq!(plan.next_for(addr(2), now + secs(2.0)), Next::Idle);
    }

    #[test]
    fn a_chunk_is_never_fetched_by_more_than_two() {
        let now = Instant::now();
        let mut plan = plan(CHUNK_SIZE, &[addr(1), addr(2), addr(3)]);
        fetch(plan.next_for(addr(1), now));
        let later = now + Tuning::default().stall;
        fetch(plan.next_for(addr(2), later));
        assert_eq!(plan.next_for(addr(3), later), Next::Idle);
    }

    #[test]
    fn thief_failing_leaves_the_holder_claim_alone() {
        let now = Instant::now();
        let mut plan = plan(CHUNK_SIZE, &[addr(1), addr(2)]);
        fetch(plan.next_for(addr(1), now));
        fetch(plan.next_for(addr(2), now + Tuning::default().stall));
        plan.failed(addr(2));
        assert_eq!(plan.claim_of(addr(1)).map(|c| c.index), Some(0));
        assert_eq!(plan.complete(addr(1), 0, now), Completion::Accepted { revoked: vec![] });
    }

    #[test]
    fn verification_failure_discards_everything_and_drops_who_served_it() {
        let now = Instant::now();
        let mut plan = plan(3 * CHUNK_SIZE, &[addr(1), addr(2), addr(3)]);
        plan.mark_done(0);
        fetch(plan.next_for(addr(1), now));
        fetch(plan.next_for(addr(2), now));
        plan.complete(addr(1), 1, now);
        plan.complete(addr(2), 2, now);
        assert!(plan.is_complete());
        assert_eq!(plan.discard_all(), vec![addr(1), addr(2)]);
        assert_eq!(plan.bytes_done(), 0);
        assert_eq!(plan.source(addr(1)).unwrap().standing, Standing::Dropped(DropReason::Corrupt));
        assert_eq!(plan.candidates(now), vec![addr(3)]);
        assert_eq!(fetch(plan.next_for(addr(3), now)).index, 0);
    }

    #[test]
    fn dropped_sources_are_remembered_and_not_relearnt() {
        let mut plan = plan(CHUNK_SIZE, &[addr(1)]);
        plan.drop_source(addr(1), DropReason::NotFound);
        assert!(!plan.add_source(addr(1)));
        assert_eq!(plan.next_for(addr(1), Instant::now()), Next::Dropped);
    }

    #[test]
    fn known_sources_are_bounded() {
        let mut plan = Plan::new(CHUNK_SIZE, Tuning::default());
        for i in 0..MAX_KNOWN_SOURCES + 5 {
            plan.add_source(SocketAddrV4::new([10, 0, (i / 256) as u8, i as u8].into(), 1));
        }
        assert_eq!(plan.sources().len(), MAX_KNOWN_SOURCES);
    }

    #[test]
    fn a_suspects_chunks_are_fetched_again_only_by_the_others() {
        let (honest, suspect) = (addr(1), addr(2));
        let now = Instant::now();
        let mut plan = plan(3 * CHUNK_SIZE, &[honest, suspect]);
        for (source, index) in [(suspect, 0), (honest, 1), (suspect, 2)] {
            assert_eq!(fetch(plan.next_for(source, now)).index, index);
            assert_eq!(plan.complete(source, index, now), Completion::Accepted { revoked: vec![] });
        }
        assert!(plan.is_complete());
        assert_eq!(plan.deliverer(1), Some(honest));

        assert_eq!(plan.refetch_elsewhere(suspect), [0, 2]);
        assert_eq!(plan.bytes_done(), CHUNK_SIZE);
        assert_eq!(plan.next_for(suspect, now), Next::Idle, "not its own chunks again, not even by stealing");
        assert_eq!(fetch(plan.next_for(honest, now)).index, 0);
        assert_eq!(plan.next_for(suspect, now), Next::Idle);
        assert_eq!(plan.source(suspect).unwrap().standing, Standing::Usable, "suspected, not condemned");
        plan.discard_all();
        assert_eq!(fetch(plan.next_for(suspect, now)).index, 0, "a fresh start forgets the suspicion");
    }

    #[test]
    fn failed_sources_make_room_but_corrupt_ones_are_remembered() {
        let mut plan = Plan::new(CHUNK_SIZE, Tuning::default());
        let many: Vec<SocketAddrV4> =
            (0..MAX_KNOWN_SOURCES).map(|i| SocketAddrV4::new([10, 1, 0, i as u8].into(), 1)).collect();
        for &s in &many {
            plan.add_source(s);
        }
        plan.drop_source(many[0], DropReason::Corrupt);
        assert!(!plan.add_source(addr(1)), "full of usable and corrupt sources");
        plan.drop_source(many[1], DropReason::TooManyErrors);
        assert!(plan.add_source(addr(1)));
        assert_eq!(plan.sources().len(), MAX_KNOWN_SOURCES);
        assert!(plan.source(many[1]).is_none());
        assert!(!plan.add_source(many[0]), "still known as corrupt");
    }

    #[test]
    fn a_partial_source_that_had_nothing_for_us_makes_room_for_a_newly_named_one() {
        let now = Instant::now();
        let mut plan = Plan::new(2 * CHUNK_SIZE, Tuning::default());
        let many: Vec<SocketAddrV4> =
            (0..MAX_KNOWN_SOURCES).map(|i| SocketAddrV4::new([10, 1, 0, i as u8].into(), 1)).collect();
        for &s in &many {
            plan.add_source(s);
        }
        assert!(!plan.add_source(addr(1)), "full of sources not yet asked");
        // One offers nothing, another delivers a chunk and then has nothing more.
        plan.set_available(many[0], Some(RangeSet::new()));
        assert!(matches!(plan.next_for(many[0], now), Next::Parked(_)));
        let mut first = RangeSet::new();
        first.insert(0, CHUNK_SIZE);
        plan.set_available(many[1], Some(first.clone()));
        assert_eq!(fetch(plan.next_for(many[1], now)).index, 0);
        plan.complete(many[1], 0, now);
        plan.set_available(many[1], Some(first));
        assert!(matches!(plan.next_for(many[1], now), Next::Parked(_)));
        assert!(plan.add_source(addr(1)), "the one that gave nothing makes room");
        assert!(plan.source(many[0]).is_none());
        assert!(!plan.add_source(addr(2)), "one that delivered stays");
        assert!(plan.source(many[1]).is_some());
    }

    #[test]
    fn candidates_put_the_fastest_first_then_the_untried() {
        let now = Instant::now();
        let mut plan = plan(4 * CHUNK_SIZE, &[addr(1), addr(2), addr(3)]);
        fetch(plan.next_for(addr(2), now));
        fetch(plan.next_for(addr(3), now));
        plan.complete(addr(2), 0, now + secs(4.0));
        plan.complete(addr(3), 1, now + secs(1.0));
        assert_eq!(plan.candidates(now), vec![addr(3), addr(2), addr(1)]);
    }

    #[test]
    fn done_byte_ranges_mark_only_whole_chunks() {
        let mut plan = plan(4 * CHUNK_SIZE + 5, &[]);
        plan.mark_done_range(1, 3 * CHUNK_SIZE - 1);
        assert_eq!((0..5).map(|i| plan.is_done(i)).collect::<Vec<_>>(), [false, true, false, false, false]);
        plan.mark_done_range(3 * CHUNK_SIZE, 4 * CHUNK_SIZE + 5);
        assert_eq!(plan.done_ranges(), vec![(CHUNK_SIZE, 2 * CHUNK_SIZE), (3 * CHUNK_SIZE, 4 * CHUNK_SIZE + 5)]);
        plan.mark_done_range(0, u64::MAX);
        assert!(plan.is_complete());
        assert_eq!(plan.bytes_done(), 4 * CHUNK_SIZE + 5);
    }

    #[test]
    fn done_ranges_are_merged_runs_of_bytes() {
        let mut plan = plan(5 * CHUNK_SIZE - 1, &[]);
        for index in [0, 1, 3, 4] {
            plan.mark_done(index);
        }
        assert_eq!(plan.done_ranges(), vec![(0, 2 * CHUNK_SIZE), (3 * CHUNK_SIZE, 5 * CHUNK_SIZE - 1)]);
    }

    #[test]
    fn stale_reports_are_ignored() {
        let now = Instant::now();
        let mut plan = plan(2 * CHUNK_SIZE, &[addr(1)]);
        plan.progress(addr(1), 0, 5, now);
        assert_eq!(plan.complete(addr(1), 0, now), Completion::Discarded);
        assert_eq!(plan.bytes_in_flight(), 0);
        assert!(!plan.is_done(0));
    }

    fn chunks(plan: &Plan, indices: &[usize]) -> RangeSet {
        let mut set = RangeSet::new();
        for &i in indices {
            set.insert(plan.chunk(i).start, plan.chunk(i).end);
        }
        set
    }

    #[test]
    fn a_partial_source_is_asked_only_for_chunks_it_has() {
        let now = Instant::now();
        let mut plan = plan(4 * CHUNK_SIZE, &[addr(1)]);
        let has = chunks(&plan, &[2, 3]);
        plan.set_available(addr(1), Some(has));
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 2);
        plan.complete(addr(1), 2, now);
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 3);
        plan.complete(addr(1), 3, now);
        // Nothing else it has is missing: it is left alone for a while, not idle forever.
        assert_eq!(plan.next_for(addr(1), now), Next::Parked(now + PARTIAL_RECHECK));
        assert!(plan.candidates(now).is_empty());
        assert_eq!(plan.candidates(now + PARTIAL_RECHECK), [addr(1)]);
        // Then it is asked again without presuming what it has: its answer says.
        assert_eq!(plan.source(addr(1)).unwrap().available, None);
        assert_eq!(fetch(plan.next_for(addr(1), now + PARTIAL_RECHECK)).index, 0);
    }

    #[test]
    fn rarest_chunks_go_first() {
        let now = Instant::now();
        let mut plan = plan(4 * CHUNK_SIZE, &[addr(1), addr(2), addr(3)]);
        plan.seed(7);
        // addr(1) has everything; chunk 2 only addr(1) has, chunks 0 and 1 all three.
        let common = chunks(&plan, &[0, 1, 3]);
        plan.set_available(addr(2), Some(common.clone()));
        plan.set_available(addr(3), Some(chunks(&plan, &[0, 1])));
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 2, "only it has chunk 2");
        // For addr(2): chunk 3 (two holders) before chunks 0 and 1 (three).
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 3);
    }

    #[test]
    fn equally_rare_chunks_are_chosen_at_random_so_downloaders_differ() {
        let now = Instant::now();
        let firsts: std::collections::HashSet<usize> = (1..=20u64)
            .map(|seed| {
                let mut plan = plan(64 * CHUNK_SIZE, &[addr(1)]);
                plan.seed(seed);
                fetch(plan.next_for(addr(1), now)).index
            })
            .collect();
        assert!(firsts.len() > 10, "20 downloaders began with only {} different chunks", firsts.len());
        // Unseeded, the download grows from the front.
        let mut plan = plan(64 * CHUNK_SIZE, &[addr(1)]);
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 0);
    }

    #[test]
    fn in_the_end_game_the_last_chunks_are_asked_of_two_sources_and_the_first_wins() {
        let now = Instant::now();
        let mut plan = Plan::new(2 * CHUNK_SIZE, Tuning::default());
        for n in 1..=3 {
            plan.add_source(addr(n));
        }
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 0);
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 1);
        plan.progress(addr(2), 1, CHUNK_SIZE / 2, now);
        // Nothing is missing: addr(3) joins the chunk with the most left.
        assert_eq!(fetch(plan.next_for(addr(3), now)).index, 0);
        assert_eq!(plan.complete(addr(3), 0, now + secs(1.0)), Completion::Accepted { revoked: vec![addr(1)] });
        // Never a third on one chunk.
        let mut plan2 = Plan::new(CHUNK_SIZE, Tuning::default());
        for n in 1..=3 {
            plan2.add_source(addr(n));
        }
        fetch(plan2.next_for(addr(1), now));
        fetch(plan2.next_for(addr(2), now));
        assert_eq!(plan2.next_for(addr(3), now), Next::Idle);
    }

    #[test]
    fn the_end_game_never_asks_a_partial_source_for_what_it_lacks() {
        let now = Instant::now();
        let mut plan = Plan::new(2 * CHUNK_SIZE, Tuning::default());
        plan.add_source(addr(1));
        plan.add_source(addr(2));
        plan.set_available(addr(2), Some(chunks(&plan, &[1])));
        assert_eq!(fetch(plan.next_for(addr(1), now)).index, 0);
        assert_eq!(fetch(plan.next_for(addr(2), now)).index, 1);
        plan.complete(addr(2), 1, now);
        assert!(matches!(plan.next_for(addr(2), now), Next::Parked(_)));
    }
}
