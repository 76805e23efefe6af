//! QueryHit payloads: the fixed part, the results, the trailer and the
//! servent GUID.
//!
//! ```text
//! count 1 | port 2 LE | IPv4 4 | speed 4 LE
//! result*count: index 4 LE | size 4 LE | name | NUL | extension area | NUL
//! trailer (optional): vendor 4 | open-data size 1 | open data | private area
//! servent GUID 16 (always the last 16 bytes)
//! ```
//!
//! Whatever lies between the last result and the GUID is the trailer; when
//! it is too short to be one (under 5 bytes, or an open-data size running past
//! it) it is ignored, as gtk-gnutella does.

use super::{
    ggep, parse_extensions, text, until_nul, write_extensions, Count, Ggep, GgepExtension, GgepId, Original, Out,
    QueryHit, QueryResult, Reader, Terminator, Trailer, TrailerFlags, WireError, GUID_LEN, HIT_HEADER_LEN, HIT_RESULTS,
    MAX_NAME, MAX_RESULTS,
};

const PUSH: u8 = 0x01;
const BUSY: u8 = 0x04;
const UPLOADED: u8 = 0x08;
const SPEED: u8 = 0x10;
const GGEP: u8 = 0x20;
/// Sizes from here on travel in GGEP "LF"; the 32-bit field then says 0xFFFFFFFF.
const LARGE_SIZE: u64 = 1 << 32;

impl QueryHit {
    pub(super) fn decode(payload: &[u8]) -> Result<QueryHit, WireError> {
        let guid_at = payload.len().checked_sub(GUID_LEN).ok_or(WireError::Truncated { what: "query hit" })?;
        let (body, guid) = payload.split_at(guid_at);
        let mut r = Reader::new(body);
        let count = r.u8("query hit count")?;
        let port = r.u16_le("query hit port")?;
        let ip = r.ipv4("query hit IP")?;
        let speed = r.u32_le("query hit speed")?;
        let results = (0..count).map(|_| QueryResult::decode(&mut r)).collect::<Result<Vec<_>, _>>()?;
        let trailer = Trailer::decode(r.rest());
        let servent_guid = Reader::new(guid).guid("servent GUID")?;
        Ok(QueryHit { port, ip, speed, results, trailer, servent_guid, original: Original::of(payload) })
    }

    pub(super) fn write<O: Out>(&self, out: &mut O) {
        if let Some(bytes) = self.original.bytes() {
            out.put(bytes);
            return;
        }
        let results = self.results.get(..MAX_RESULTS).unwrap_or(&self.results);
        out.put_u8(results.len() as u8);
        out.put(&self.port.to_le_bytes());
        out.put(&self.ip.octets());
        out.put(&self.speed.to_le_bytes());
        results.iter().for_each(|result| result.write(out));
        if let Some(trailer) = &self.trailer {
            trailer.write(out);
        }
        out.put(&self.servent_guid.0);
    }

    /// Splits into hits of at most [`HIT_RESULTS`] results each, each under
    /// `max_payload` bytes unless a single result is larger; every piece keeps
    /// this hit's address, trailer and GUID. No results, no hits.
    pub fn split(self, max_payload: usize) -> Vec<QueryHit> {
        let mut trailer_len = Count(0);
        if let Some(trailer) = &self.trailer {
            trailer.write(&mut trailer_len);
        }
        let budget = max_payload.saturating_sub(HIT_HEADER_LEN + trailer_len.0 + GUID_LEN);
        let QueryHit { port, ip, speed, results, trailer, servent_guid, .. } = self;
        split_results(results, budget)
            .into_iter()
            .map(|results| QueryHit {
                port,
                ip,
                speed,
                results,
                trailer: trailer.clone(),
                servent_guid,
                original: Original::default(),
            })
            .collect()
    }
}

/// Groups results, in order, so that each group has at most [`HIT_RESULTS`]
/// results whose encoding takes at most `budget` bytes (a larger result goes
/// alone). See [`QueryHit::split`] for the budget of a whole hit.
pub fn split_results(results: Vec<QueryResult>, budget: usize) -> Vec<Vec<QueryResult>> {
    let mut groups: Vec<Vec<QueryResult>> = Vec::new();
    let mut used = 0;
    for result in results {
        let mut len = Count(0);
        result.write(&mut len);
        match groups.last_mut() {
            Some(group) if group.len() < HIT_RESULTS && used + len.0 <= budget => {
                used += len.0;
                group.push(result);
            }
            _ => {
                used = len.0;
                groups.push(vec![result]);
            }
        }
    }
    groups
}

impl QueryResult {
    /// The file's Tiger tree root, when the result carries one (GGEP "TT",
    /// or a bitprint in "H").
    pub fn tth(&self) -> Option<search::thex::Root> {
        Some(search::thex::Root(self.ggep.get(GgepId::TIGER_TREE)?.try_into().ok()?))
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<QueryResult, WireError> {
        let index = r.u32_le("result index")?;
        let size = r.u32_le("result size")?;
        let name = text(r.nul_terminated(MAX_NAME, "result name")?, MAX_NAME, "result name")?;
        let (mut ext, used) = parse_extensions(r.bytes, Terminator::Nul)?;
        r.skip(used);
        ext.absorb_hashes()?;
        let size = ext.take_large_size().unwrap_or(u64::from(size));
        Ok(QueryResult { index, size, name, urns: ext.urns, ggep: ext.ggep })
    }

    pub(super) fn write<O: Out>(&self, out: &mut O) {
        out.put(&self.index.to_le_bytes());
        out.put(&u32::try_from(self.size).unwrap_or(u32::MAX).to_le_bytes());
        out.put(until_nul(&self.name));
        out.put_u8(0);
        let large_file;
        let mut ggep: Vec<&GgepExtension> =
            self.ggep.extensions.iter().filter(|e| e.id != GgepId::HASH && e.id != GgepId::LARGE_FILE).collect();
        if self.size >= LARGE_SIZE {
            let bytes = self.size.to_le_bytes();
            let used = bytes.iter().rposition(|&b| b != 0).map_or(1, |at| at + 1);
            large_file = GgepExtension::new(GgepId::LARGE_FILE, bytes.get(..used).unwrap_or(&bytes).to_vec());
            ggep.push(&large_file);
        }
        write_extensions(out, &self.urns, &ggep);
        out.put_u8(0);
    }
}

impl Trailer {
    /// Reads the bytes between the last result and the GUID; `None` when they are no trailer.
    fn decode(bytes: &[u8]) -> Option<Trailer> {
        let (vendor, rest) = bytes.split_first_chunk::<4>()?;
        let (&open_len, rest) = rest.split_first()?;
        let (open, private) = rest.split_at_checked(usize::from(open_len))?;
        let (flags, has_ggep) = match open {
            [first, second, ..] => TrailerFlags::decode(*first, *second),
            // NapShare's one byte, or nothing: no flags we can read.
            _ => (TrailerFlags::default(), false),
        };
        let mut ggep = Ggep::new();
        if has_ggep {
            // The GGEP spec: look for the first magic byte, for the sake of
            // servents that put their own data before the block.
            if let Some(at) = private.iter().position(|&b| b == ggep::GGEP_MAGIC) {
                if ggep::decode_block_into(private.get(at..).unwrap_or(&[]), &mut ggep).is_err() {
                    ggep = Ggep::new();
                }
            }
        }
        Some(Trailer { vendor: *vendor, flags, ggep })
    }

    pub(super) fn write<O: Out>(&self, out: &mut O) {
        out.put(&self.vendor);
        out.put_u8(2);
        out.put(&self.flags.encode(!self.ggep.is_empty()));
        self.ggep.write(out, ggep::Style::Raw);
    }
}

impl TrailerFlags {
    /// Reads the two open-data bytes; also returns whether a GGEP block is announced.
    fn decode(first: u8, second: u8) -> (TrailerFlags, bool) {
        // Push's value is in the first byte and its "meaningful" bit in the
        // second; the others are the other way round.
        let stated = |meaningful: u8, value: u8, bit: u8| (meaningful & bit != 0).then_some(value & bit != 0);
        let flags = TrailerFlags {
            push: stated(second, first, PUSH),
            busy: stated(first, second, BUSY),
            uploaded: stated(first, second, UPLOADED),
            speed_measured: stated(first, second, SPEED),
        };
        (flags, stated(first, second, GGEP) == Some(true))
    }

    /// The two open-data bytes; GGEP is always stated, as present or not.
    fn encode(&self, has_ggep: bool) -> [u8; 2] {
        let mut first = GGEP;
        let mut second = if has_ggep { GGEP } else { 0 };
        let put = |flag: Option<bool>, bit: u8, meaningful: &mut u8, value: &mut u8| {
            if let Some(on) = flag {
                *meaningful |= bit;
                if on {
                    *value |= bit;
                }
            }
        };
        put(self.push, PUSH, &mut second, &mut first);
        put(self.busy, BUSY, &mut first, &mut second);
        put(self.uploaded, UPLOADED, &mut first, &mut second);
        put(self.speed_measured, SPEED, &mut first, &mut second);
        [first, second]
    }
}
