//! Seeding a release: the publisher serves each chunk once to the swarm
//! before it serves any chunk twice (BitTorrent's *super-seeding* idea).
//!
//! A new release has one source, its publisher, and a crowd that wants it.
//! Served the usual way, the crowd all asks the publisher for the same first
//! chunks and the publisher uploads copy after copy. A seed instead acts as
//! a partial source (PFSP) that offers only its least-served chunks
//! (`X-Available-Ranges`): the crowd's downloaders, which ask a partial
//! source only for what it offers, each take a different chunk, and get the
//! others from each other. Once every chunk went out once, all are offered
//! again, and so on, so the publisher never refuses a chunk that nobody
//! else could have.
//!
//! [`SuperSeed`] is the rule, pure: chunk counts in, offered ranges out.

use super::download::plan::chunk_size;
use super::partial::RangeSet;

/// How many times each chunk of a seeded file was served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperSeed {
    size: u64,
    chunk_size: u64,
    served: Vec<u32>,
}

impl SuperSeed {
    /// A file of `size` bytes, nothing served yet, in the chunks its
    /// downloaders fetch.
    pub fn new(size: u64) -> SuperSeed {
        let chunk_size = chunk_size(size);
        let chunks = usize::try_from(size.div_ceil(chunk_size)).unwrap_or(usize::MAX);
        SuperSeed { size, chunk_size, served: vec![0; chunks] }
    }

    /// The bytes offered now: the chunks served the fewest times.
    pub fn offered(&self) -> RangeSet {
        let mut offered = RangeSet::new();
        let Some(&fewest) = self.served.iter().min() else { return offered };
        for (index, _) in self.served.iter().enumerate().filter(|(_, &count)| count == fewest) {
            let start = index as u64 * self.chunk_size;
            offered.insert(start, (start + self.chunk_size).min(self.size));
        }
        offered
    }

    /// Bytes `start..end` are being served: each chunk they touch counts once more.
    pub fn record(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let first = usize::try_from(start / self.chunk_size).unwrap_or(usize::MAX);
        let last = usize::try_from((end - 1) / self.chunk_size).unwrap_or(usize::MAX);
        for count in self.served.iter_mut().take(last.saturating_add(1)).skip(first) {
            *count = count.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::download::plan::CHUNK_SIZE;

    fn chunk(index: u64) -> (u64, u64) {
        (index * CHUNK_SIZE, (index + 1) * CHUNK_SIZE)
    }

    #[test]
    fn every_chunk_is_served_once_before_any_is_served_twice() {
        let mut seed = SuperSeed::new(4 * CHUNK_SIZE);
        assert_eq!(seed.offered().ranges(), [(0, 4 * CHUNK_SIZE)]);
        let (start, end) = chunk(1);
        seed.record(start, end);
        // Chunk 1 is not offered again until the others went out.
        assert_eq!(seed.offered().ranges(), [chunk(0), (2 * CHUNK_SIZE, 4 * CHUNK_SIZE)]);
        for index in [0, 3] {
            let (start, end) = chunk(index);
            seed.record(start, end);
        }
        assert_eq!(seed.offered().ranges(), [chunk(2)]);
        seed.record(chunk(2).0, chunk(2).1);
        // All once: all offered again.
        assert_eq!(seed.offered().ranges(), [(0, 4 * CHUNK_SIZE)]);
    }

    #[test]
    fn a_range_counts_every_chunk_it_touches_and_the_last_chunk_is_short() {
        let mut seed = SuperSeed::new(2 * CHUNK_SIZE + 10);
        seed.record(CHUNK_SIZE - 1, CHUNK_SIZE + 1);
        assert_eq!(seed.offered().ranges(), [(2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 10)]);
        seed.record(5, 5);
        assert_eq!(seed.offered().ranges(), [(2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 10)]);
        seed.record(2 * CHUNK_SIZE, u64::MAX);
        assert_eq!(seed.offered().ranges(), [(0, 2 * CHUNK_SIZE + 10)]);
        assert!(SuperSeed::new(0).offered().is_empty());
    }

    #[test]
    fn a_large_file_is_seeded_in_the_chunks_its_downloaders_fetch() {
        let size = 1 << 30;
        let mut seed = SuperSeed::new(size);
        seed.record(0, 1);
        assert_eq!(seed.offered().ranges(), [(chunk_size(size), size)]);
        assert!(chunk_size(size) > CHUNK_SIZE);
    }
}
