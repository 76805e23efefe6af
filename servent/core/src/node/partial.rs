//! Partial results (PFSP): a servent downloading a file answers Queries for
//! it with the chunks it has checked, as gtk-gnutella does, each such
//! result flagged with GGEP `PRU` ("partial result, unverified"). Its
//! payload is gtk-gnutella's since 0.98.4: the file's last modification
//! time (4 bytes, big-endian, seconds since 1970) and the bytes available,
//! little-endian with trailing zero bytes left out (its `vlint`), so 4 to
//! 12 bytes. A downloader reads it as one more source of the file, which
//! says what it has in `X-Available-Ranges`; every chunk it serves is
//! checked against the tree anyway.

use search::SharedFile;

use crate::wire::ggep::GgepId;
use crate::wire::{Ggep, Query, QueryHit, QueryResult};

/// `"PRU"`: the result is a file still being downloaded.
pub const PARTIAL_RESULT: GgepId = GgepId::from_static("PRU");

/// `"PR"` (empty) in a Query: partial results are wanted. gtk-gnutella
/// answers with the files it is downloading only when the query says so
/// (`search.c`, `shared_files_match` in `share.c`), and says so in its own.
pub const PARTIAL_WANTED: GgepId = GgepId::from_static("PR");

/// Whether `query` asks for partial results: only then are files being
/// downloaded offered, as gtk-gnutella and LimeWire do (a servent that
/// did not ask may not know a source can hold part of a file).
pub fn wanted_by(query: &Query) -> bool {
    query.ggep.get(PARTIAL_WANTED).is_some()
}

/// The GGEP block of our Queries: partial results wanted ([`PARTIAL_WANTED`]).
pub fn wanted() -> Ggep {
    let mut ggep = Ggep::default();
    ggep.insert(PARTIAL_WANTED, Vec::new());
    ggep
}

/// A file being downloaded that answers a Query: the shell looks it up
/// with the library's files ([`super::Event::LocalPartialResults`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialResult {
    /// What it is, named as a shared file is.
    pub file: SharedFile,
    /// Its bytes checked and written so far.
    pub available: u64,
    /// Its last modification, seconds since 1970.
    pub modified: u32,
}

/// What a partial result's `PRU` holds: when it changed and the bytes it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Its last modification, seconds since 1970 (0 when not said).
    pub modified: u32,
    /// Bytes available at the source (0 when not said).
    pub available: u64,
}

impl Partial {
    /// The `PRU` payload.
    pub fn encode(self) -> Vec<u8> {
        let mut payload = self.modified.to_be_bytes().to_vec();
        let available = self.available.to_le_bytes();
        let used = available.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        payload.extend_from_slice(&available[..used]);
        payload
    }

    /// Reads a `PRU` payload: empty (gtk-gnutella before 0.98.4: nothing
    /// said), or 4 to 12 bytes; anything else is `None`.
    pub fn decode(payload: &[u8]) -> Option<Partial> {
        match payload.len() {
            0 => Some(Partial { modified: 0, available: 0 }),
            4..=12 => {
                let modified = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let mut available = [0u8; 8];
                let rest = &payload[4..];
                // Bytes past the eighth would overflow; gtk-gnutella reads
                // such a value as 0, and so do we.
                if rest.len() <= 8 {
                    available[..rest.len()].copy_from_slice(rest);
                }
                Some(Partial { modified, available: u64::from_le_bytes(available) })
            }
            _ => None,
        }
    }
}

/// Whether a result is a partial file whose `PRU` says it has no byte yet:
/// asking it would only be answered with nothing. An empty or unreadable
/// `PRU` says nothing, and every chunk fetched is checked anyway.
pub fn offers_nothing(result: &QueryResult) -> bool {
    let said = result.ggep.get(PARTIAL_RESULT).filter(|payload| payload.len() >= 4).and_then(Partial::decode);
    said.is_some_and(|partial| partial.available == 0)
}

/// Flags the results of `hit` that are partial files with their `PRU`.
pub fn flag_partial(hit: &mut QueryHit, partials: &[PartialResult]) {
    for result in &mut hit.results {
        let partial = partials.iter().find(|p| result.urns.contains(&p.file.sha1));
        if let Some(partial) = partial {
            let pru = Partial { modified: partial.modified, available: partial.available };
            result.ggep.insert(PARTIAL_RESULT, pru.encode());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pru_is_a_big_endian_time_then_the_available_bytes_without_trailing_zeros() {
        let pru = Partial { modified: 0x5F00_0001, available: 0x0001_0000 };
        assert_eq!(pru.encode(), [0x5F, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01]);
        assert_eq!(Partial::decode(&pru.encode()), Some(pru));
        let none = Partial { modified: 7, available: 0 };
        assert_eq!(none.encode(), [0, 0, 0, 7]);
        assert_eq!(Partial::decode(&none.encode()), Some(none));
        let most = Partial { modified: u32::MAX, available: u64::MAX };
        assert_eq!(most.encode().len(), 12);
        assert_eq!(Partial::decode(&most.encode()), Some(most));
    }

    #[test]
    fn our_queries_ask_for_partial_results_as_gtk_gnutella_reads_them() {
        for text in ["seblinux next", "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB"] {
            let query = crate::node::build_query(text).unwrap();
            let message = crate::wire::Message {
                guid: crate::wire::Guid([1; 16]),
                ttl: 3,
                hops: 0,
                payload: crate::wire::Payload::Query(query),
            };
            let crate::wire::Payload::Query(read) = crate::wire::decode(&message.encode()).unwrap().payload else {
                panic!("not a query")
            };
            assert_eq!(read.ggep.get(PARTIAL_WANTED), Some(&[][..]), "{text}");
        }
    }

    #[test]
    fn hostile_pru_payloads_are_refused_or_read_as_gtk_gnutella_reads_them() {
        assert_eq!(Partial::decode(&[]), Some(Partial { modified: 0, available: 0 }));
        for bad in [&[1u8][..], &[1, 2, 3], &[0; 13], &[0xFF; 200]] {
            assert_eq!(Partial::decode(bad), None, "{bad:?}");
        }
    }
}
