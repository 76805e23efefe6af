//! The Query Routing Protocol (QRP): which queries are worth sending to a leaf.
//!
//! # Route tables
//! A leaf tells its ultrapeer which keywords its shared files hold, not by
//! listing them but as a *route table*: a bitmap of 2^bits slots where the
//! slot of each keyword's hash is set. The ultrapeer hashes the words of a
//! query the same way and forwards the query to the leaf only when the
//! words' slots are set ([`RouteTable::routes`]). Ultrapeers also send each
//! other the union of their leaves' tables and their own
//! ([`RouteTable::merge`]), so that the last hop can be filtered too.
//!
//! # The hash
//! Everyone must hash alike (`doc/gnutella/QRP`, appendix A): the keyword,
//! lowercased, is folded into 32 bits by XOR-ing it as little-endian 4-byte
//! chunks, multiplied by `0x4F1BBCDC` modulo 2^32, and the table's slot is
//! the top `bits` bits of the product ([`hash_code`], [`hash`]). Deployed
//! servents fold characters, not UTF-8 bytes: LimeWire takes the low byte
//! of each UTF-16 unit of the lowercased string, gtk-gnutella
//! (`qrp_hashcode` in `src/core/qrp.c`) the same from decoded UTF-8; so do
//! we. Because the slot is the top bits of one 32-bit code, a code is
//! computed once and read at any table size.
//!
//! # Words, as deployed
//! File names and queries are cut into words at every character that is
//! not a letter or a digit, and lowercased (gtk-gnutella's canonic form).
//! A query word shorter than [`MIN_WORD_LEN`] bytes is not looked up. A
//! table holds each word of a name and, as gtk-gnutella's `unique_substr`
//! does, its prefixes losing up to [`MAX_CUT_CHARS`] characters while longer
//! than [`MIN_WORD_LEN`] bytes, so that "test" finds "testing". A query of
//! one or two words routes when all are present, of three or more when two
//! thirds are (gtk-gnutella's `qrp_can_route`, after LimeWire). A query
//! URN routes when its `urn:sha1:` text is in the table.
//!
//! # Route table updates (message 0x30)
//! A table travels as a RESET (variant 0: table length, a power of two, and
//! "infinity") followed by a sequence of PATCH messages (variant 1: number,
//! count, compressor 0 or 1 for zlib, bits per entry, data). The patch,
//! once reassembled and inflated, is one signed entry per slot, the first
//! slot in the high bits of the first byte. As gtk-gnutella reads it
//! (`qrt_patch_slot`): an entry of 2, 4 or 8 bits that is negative marks
//! the slot present, positive absent, zero unchanged; a 1-bit entry that is
//! set flips the slot (QRP 0.2, `X-Query-Routing: 0.2`). A PATCH sequence
//! not preceded by a RESET patches the table in force. We send 4-bit
//! patches with infinity 2, as gtk-gnutella leaves do, because its 1-bit
//! reader does not index past the first byte correctly (`qrt_apply_patch1`).
//!
//! # Limits
//! Tables hold between [`MIN_TABLE_SLOTS`] and [`MAX_TABLE_SLOTS`] slots
//! (gtk-gnutella's bounds), kept as bitmaps (at most 256 KiB each); a patch
//! may not inflate past its table, a sequence may not change its size or
//! entry width, and a PATCH must follow a RESET. Each such error is a
//! [`QrpError`], and the peer that sent it is dropped. How many tables are
//! kept is bounded by the number of peers that may send one.

#[cfg(test)]
mod tests;

use std::io::Write;

use flate2::{Decompress, FlushDecompress, Status};

use crate::wire::Urn;

/// The multiplier of the QRP hash: the golden ratio as a 32-bit fraction.
pub const GOLDEN_RATIO_32: u32 = 0x4F1B_BCDC;
/// Bits of the tables we build: 64 Ki slots, as deployed servents use.
pub const TABLE_BITS: u8 = 16;
/// Smallest table accepted (gtk-gnutella sends 8 slots when it shares nothing).
pub const MIN_TABLE_SLOTS: u32 = 8;
/// Largest table accepted (gtk-gnutella's `MAX_TABLE_SIZE`, 2 Mi slots).
pub const MAX_TABLE_SLOTS: u32 = 1 << 21;
/// Shortest query word, in bytes, that is looked up in a table.
pub const MIN_WORD_LEN: usize = 3;
/// Most characters cut from the end of a word to add its prefixes.
pub const MAX_CUT_CHARS: usize = 5;
/// Infinity in the RESET we send: present slots are 1 hop away.
pub const LOCAL_INFINITY: u8 = 2;
/// Most patch data bytes we put in one PATCH message.
pub const PATCH_CHUNK: usize = 4096;
/// Most words of one query hashed for routing.
pub const MAX_QUERY_KEYS: usize = 32;

/// Payload variant of a RESET.
const VARIANT_RESET: u8 = 0;
/// Payload variant of a PATCH.
const VARIANT_PATCH: u8 = 1;
/// Bytes of a RESET payload.
const RESET_LEN: usize = 6;
/// Bytes of a PATCH payload before its data.
const PATCH_HEADER_LEN: usize = 5;

/// Why a route table update is refused; the peer that sent it is dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QrpError {
    /// The payload stops before its fixed fields end.
    #[error("truncated route table update")]
    Truncated,
    /// The first byte is neither RESET nor PATCH.
    #[error("unknown route table update variant {0}")]
    UnknownVariant(u8),
    /// The RESET's table length is not a power of two within our bounds.
    #[error("route table length {0} is not a power of two from {min} to {max}", min = MIN_TABLE_SLOTS, max = MAX_TABLE_SLOTS)]
    TableLength(u32),
    /// The RESET's infinity is zero.
    #[error("route table infinity is zero")]
    Infinity,
    /// A PATCH came with no table to patch.
    #[error("route table PATCH before any RESET")]
    PatchBeforeReset,
    /// A PATCH is out of sequence.
    #[error("route table PATCH {got} where {expected} was expected")]
    Sequence {
        /// The number expected.
        expected: u8,
        /// The number received.
        got: u8,
    },
    /// A PATCH's count, compressor or entry width differs from its sequence's.
    #[error("route table PATCH changed its sequence's parameters")]
    SequenceChanged,
    /// A PATCH's sequence count is zero or smaller than its number.
    #[error("route table PATCH {seq_no} of {seq_size}")]
    SequenceSize {
        /// The message's number.
        seq_no: u8,
        /// The sequence's announced count.
        seq_size: u8,
    },
    /// The compressor is neither none nor zlib.
    #[error("unknown route table compressor {0}")]
    Compressor(u8),
    /// The entry width is not 1, 2, 4 or 8 bits.
    #[error("route table entries of {0} bits")]
    EntryBits(u8),
    /// The patch holds more entries than the table has slots.
    #[error("route table patch overflows its table of {0} slots")]
    Overflow(u32),
    /// The zlib stream is corrupt or ended before the sequence did.
    #[error("route table patch does not inflate: {0}")]
    Inflate(String),
}

/// Folds a word into the 32-bit QRP hash code; the slot in a table of
/// 2^bits slots is the code's top `bits` bits.
pub fn hash_code(word: &str) -> u32 {
    let mut folded = 0u32;
    let mut units = 0u32;
    for c in word.chars().flat_map(char::to_lowercase) {
        let mut buf = [0u16; 2];
        for unit in c.encode_utf16(&mut buf) {
            folded ^= u32::from(*unit & 0xFF) << (8 * (units % 4));
            units += 1;
        }
    }
    folded.wrapping_mul(GOLDEN_RATIO_32)
}

/// The slot of `word` in a table of 2^bits slots (`bits` from 1 to 32).
pub fn hash(word: &str, bits: u8) -> u32 {
    slot_of(hash_code(word), bits)
}

fn slot_of(code: u32, bits: u8) -> u32 {
    code >> (32 - u32::from(bits))
}

/// The words of a file name or query: runs of letters and digits, lowercased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// What a table holds for one word: the word, then its prefixes losing up
/// to [`MAX_CUT_CHARS`] characters while longer than [`MIN_WORD_LEN`] bytes.
fn word_and_prefixes(word: &str) -> impl Iterator<Item = &str> {
    let mut ends: Vec<usize> = word.char_indices().map(|(i, _)| i).skip(1).collect();
    ends.push(word.len());
    ends.into_iter()
        .rev()
        .take(MAX_CUT_CHARS + 1)
        .enumerate()
        .take_while(|&(cut, end)| cut == 0 || end > MIN_WORD_LEN)
        .map(move |(_, end)| &word[..end])
}

/// The hash codes of a query, ready to be looked up in any table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryKeys {
    words: Vec<u32>,
    urns: Vec<u32>,
}

impl QueryKeys {
    /// Hashes the words of `criteria` (at most [`MAX_QUERY_KEYS`] distinct
    /// ones of [`MIN_WORD_LEN`] bytes or more) and the query's SHA-1 URNs.
    pub fn new(criteria: &str, urns: &[Urn]) -> QueryKeys {
        let mut words: Vec<u32> = Vec::new();
        for word in self::words(criteria).filter(|w| w.len() >= MIN_WORD_LEN) {
            let code = hash_code(&word);
            if !words.contains(&code) && words.len() < MAX_QUERY_KEYS {
                words.push(code);
            }
        }
        let urns = urns.iter().filter(|u| matches!(u, Urn::Sha1(_))).map(|u| hash_code(&u.to_string())).collect();
        QueryKeys { words, urns }
    }

    /// Whether the query has nothing a table can be asked about.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.urns.is_empty()
    }
}

/// A route table: one presence bit per slot.
#[derive(Clone)]
pub struct RouteTable {
    bits: u8,
    slots: Slots,
}

/// How a table holds its slots: a bitmap, or, once [`RouteTable::compact`]
/// found it sparse (a leaf's few words in 64 Ki slots), the sorted list of
/// the slots set, which an ultrapeer keeps for each of its leaves.
#[derive(Clone)]
enum Slots {
    Bitmap(Vec<u8>),
    Set(Vec<u32>),
}

impl PartialEq for RouteTable {
    fn eq(&self, other: &RouteTable) -> bool {
        match (&self.slots, &other.slots) {
            (Slots::Bitmap(a), Slots::Bitmap(b)) => self.bits == other.bits && a == b,
            _ => self.bits == other.bits && self.set_slots().eq(other.set_slots()),
        }
    }
}

impl Eq for RouteTable {}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteTable({} slots, {} set)", self.slots(), self.set_count())
    }
}

impl Default for RouteTable {
    fn default() -> RouteTable {
        RouteTable::new(TABLE_BITS)
    }
}

impl RouteTable {
    /// An empty table of 2^bits slots (`bits` at least 3: 8 slots, a byte).
    pub fn new(bits: u8) -> RouteTable {
        let bits = bits.clamp(3, 21);
        RouteTable { bits, slots: Slots::Bitmap(vec![0; (1usize << bits) / 8]) }
    }

    /// A table of [`TABLE_BITS`] holding the words of `names` and `urns`:
    /// what a leaf tells its ultrapeers about its library.
    pub fn from_library<'a>(
        names: impl IntoIterator<Item = &'a str>,
        urns: impl IntoIterator<Item = &'a Urn>,
    ) -> RouteTable {
        let mut table = RouteTable::default();
        for name in names {
            table.insert_name(name);
        }
        for urn in urns {
            table.insert_urn(urn);
        }
        table
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        1 << self.bits
    }

    /// Slots set.
    pub fn set_count(&self) -> u32 {
        match &self.slots {
            Slots::Bitmap(bitmap) => bitmap.iter().map(|b| b.count_ones()).sum(),
            Slots::Set(set) => set.len() as u32,
        }
    }

    /// Bytes this table occupies.
    pub fn memory(&self) -> usize {
        match &self.slots {
            Slots::Bitmap(bitmap) => bitmap.len(),
            Slots::Set(set) => set.len() * std::mem::size_of::<u32>(),
        }
    }

    /// Keeps the table as the list of its slots set when that is smaller
    /// than its bitmap; it answers the same, and turns back into a bitmap
    /// when changed.
    pub fn compact(&mut self) {
        if let Slots::Bitmap(bitmap) = &self.slots {
            if (self.set_count() as usize) * std::mem::size_of::<u32>() < bitmap.len() {
                self.slots = Slots::Set(self.set_slots().collect());
            }
        }
    }

    /// The bitmap, made from the list if the table is compact.
    fn bitmap(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.slots {
            Slots::Bitmap(bitmap) => std::borrow::Cow::Borrowed(bitmap),
            Slots::Set(set) => {
                let mut bitmap = vec![0; (1usize << self.bits) / 8];
                for &slot in set {
                    bitmap[(slot / 8) as usize] |= 0x80 >> (slot % 8);
                }
                std::borrow::Cow::Owned(bitmap)
            }
        }
    }

    /// The bitmap to change, made from the list if the table is compact.
    fn bitmap_mut(&mut self) -> &mut Vec<u8> {
        if let Slots::Set(_) = self.slots {
            self.slots = Slots::Bitmap(self.bitmap().into_owned());
        }
        match &mut self.slots {
            Slots::Bitmap(bitmap) => bitmap,
            Slots::Set(_) => unreachable!("just made a bitmap"),
        }
    }

    /// Adds the words of a file name, with their prefixes.
    pub fn insert_name(&mut self, name: &str) {
        for word in words(name) {
            for key in word_and_prefixes(&word) {
                self.set(slot_of(hash_code(key), self.bits));
            }
        }
    }

    /// Adds a URN, as its `urn:sha1:` text (other URNs are not routed on).
    pub fn insert_urn(&mut self, urn: &Urn) {
        if matches!(urn, Urn::Sha1(_)) {
            self.set(slot_of(hash_code(&urn.to_string()), self.bits));
        }
    }

    /// Whether a query with these keys should be sent where this table came from.
    pub fn routes(&self, keys: &QueryKeys) -> bool {
        if keys.urns.iter().any(|&code| self.contains(code)) {
            return true;
        }
        if keys.words.is_empty() {
            return keys.urns.is_empty();
        }
        let hits = keys.words.iter().filter(|&&code| self.contains(code)).count();
        let total = keys.words.len();
        if total < 3 {
            hits == total
        } else {
            3 * hits / total >= 2
        }
    }

    /// Whether the slot of a hash code is set.
    fn contains(&self, code: u32) -> bool {
        self.get(slot_of(code, self.bits))
    }

    /// Adds every word of `other` to this table, whatever their sizes: a
    /// slot of a larger table falls in one slot here, a slot of a smaller
    /// one covers several (the scaling of `doc/gnutella/QRP`).
    pub fn merge(&mut self, other: &RouteTable) {
        if let (true, Slots::Bitmap(theirs)) = (other.bits == self.bits, &other.slots) {
            self.bitmap_mut().iter_mut().zip(theirs).for_each(|(ours, theirs)| *ours |= theirs);
        } else if other.bits == self.bits {
            for slot in other.set_slots() {
                self.set(slot);
            }
        } else if other.bits > self.bits {
            let shift = other.bits - self.bits;
            for slot in other.set_slots() {
                self.set(slot >> shift);
            }
        } else {
            let shift = self.bits - other.bits;
            for slot in other.set_slots() {
                for fine in (slot << shift)..((slot + 1) << shift) {
                    self.set(fine);
                }
            }
        }
    }

    fn set_slots(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match &self.slots {
            Slots::Bitmap(bitmap) => {
                let bytes = bitmap.iter().enumerate().filter(|(_, byte)| **byte != 0);
                Box::new(bytes.flat_map(|(i, byte)| {
                    (0..8).filter(move |bit| byte & (0x80 >> bit) != 0).map(move |bit| i as u32 * 8 + bit)
                }))
            }
            Slots::Set(set) => Box::new(set.iter().copied()),
        }
    }

    fn get(&self, slot: u32) -> bool {
        match &self.slots {
            Slots::Bitmap(bitmap) => bitmap[(slot / 8) as usize] & (0x80 >> (slot % 8)) != 0,
            Slots::Set(set) => set.binary_search(&slot).is_ok(),
        }
    }

    fn set(&mut self, slot: u32) {
        self.bitmap_mut()[(slot / 8) as usize] |= 0x80 >> (slot % 8);
    }

    fn clear(&mut self, slot: u32) {
        self.bitmap_mut()[(slot / 8) as usize] &= !(0x80 >> (slot % 8));
    }

    fn flip(&mut self, slot: u32) {
        self.bitmap_mut()[(slot / 8) as usize] ^= 0x80 >> (slot % 8);
    }

    /// The messages that bring a peer from `sent` (the table it last got,
    /// `None` at first) to this table: a RESET when the peer has none or
    /// its size differs, then a zlib-compressed 4-bit PATCH sequence; none
    /// when nothing changed.
    pub fn updates_from(&self, sent: Option<&RouteTable>) -> Vec<RouteTableUpdate> {
        let base = sent.filter(|old| old.bits == self.bits);
        if base == Some(self) {
            return Vec::new();
        }
        let mut messages = Vec::new();
        if base.is_none() {
            messages.push(RouteTableUpdate::Reset { table_length: self.slots(), infinity: LOCAL_INFINITY });
        }
        // Two slots per byte of the patch, so four per byte of the bitmap.
        let (bitmap, old) = (self.bitmap(), base.map(RouteTable::bitmap));
        let mut patch = Vec::with_capacity(bitmap.len() * 4);
        for (i, &now) in bitmap.iter().enumerate() {
            let was = old.as_ref().map_or(0, |old| old[i]);
            if now == was {
                patch.extend_from_slice(&[0; 4]);
                continue;
            }
            let nibble = |bit: u8| -> u8 {
                match (was & bit != 0, now & bit != 0) {
                    (false, true) => 0xF,
                    (true, false) => 0x1,
                    _ => 0,
                }
            };
            for pair in 0..4 {
                patch.push(nibble(0x80 >> (2 * pair)) << 4 | nibble(0x40 >> (2 * pair)));
            }
        }
        // The fastest level: a patch is mostly runs of zeros, which it
        // still shrinks about 30 times (a 300-file table: 1.1 KB of 32 KiB,
        // against 0.5 KB at the default level, in a third of the time).
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&patch).expect("writing to a Vec cannot fail");
        let compressed = encoder.finish().expect("writing to a Vec cannot fail");
        let chunks: Vec<&[u8]> = compressed.chunks(PATCH_CHUNK).collect();
        // A 64 Ki-slot 4-bit patch is 32 KiB before compression: always
        // fewer than 255 chunks.
        let seq_size = u8::try_from(chunks.len()).expect("a patch of our own tables fits 255 messages");
        for (i, chunk) in chunks.into_iter().enumerate() {
            messages.push(RouteTableUpdate::Patch {
                seq_no: i as u8 + 1,
                seq_size,
                compressor: Compressor::Zlib,
                entry_bits: 4,
                data: chunk.to_vec(),
            });
        }
        messages
    }
}

/// How a PATCH's data is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressor {
    /// Entries as they are.
    None,
    /// A zlib stream across the sequence's messages.
    Zlib,
}

/// A route table update message (payload type 0x30).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTableUpdate {
    /// Start again from an empty table of `table_length` slots.
    Reset {
        /// Slots in the table: a power of two.
        table_length: u32,
        /// The value meaning "absent"; presence is all we keep.
        infinity: u8,
    },
    /// One message of a patch sequence.
    Patch {
        /// Position in the sequence, from 1.
        seq_no: u8,
        /// Messages in the sequence.
        seq_size: u8,
        /// How `data` is compressed.
        compressor: Compressor,
        /// Bits per entry: 1, 2, 4 or 8.
        entry_bits: u8,
        /// This message's part of the (compressed) patch.
        data: Vec<u8>,
    },
}

impl RouteTableUpdate {
    /// Reads a route table update payload. Checks its fields' own bounds;
    /// [`TableReceiver`] checks how it fits the sequence.
    pub fn decode(payload: &[u8]) -> Result<RouteTableUpdate, QrpError> {
        match payload.first() {
            None => Err(QrpError::Truncated),
            Some(&VARIANT_RESET) => {
                let fields = payload.get(1..RESET_LEN).ok_or(QrpError::Truncated)?;
                let table_length = u32::from_le_bytes([fields[0], fields[1], fields[2], fields[3]]);
                if !table_length.is_power_of_two() || !(MIN_TABLE_SLOTS..=MAX_TABLE_SLOTS).contains(&table_length) {
                    return Err(QrpError::TableLength(table_length));
                }
                if fields[4] == 0 {
                    return Err(QrpError::Infinity);
                }
                Ok(RouteTableUpdate::Reset { table_length, infinity: fields[4] })
            }
            Some(&VARIANT_PATCH) => {
                let fields = payload.get(1..PATCH_HEADER_LEN).ok_or(QrpError::Truncated)?;
                let (seq_no, seq_size) = (fields[0], fields[1]);
                if seq_no == 0 || seq_size < seq_no {
                    return Err(QrpError::SequenceSize { seq_no, seq_size });
                }
                let compressor = match fields[2] {
                    0 => Compressor::None,
                    1 => Compressor::Zlib,
                    other => return Err(QrpError::Compressor(other)),
                };
                let entry_bits = fields[3];
                if ![1, 2, 4, 8].contains(&entry_bits) {
                    return Err(QrpError::EntryBits(entry_bits));
                }
                Ok(RouteTableUpdate::Patch {
                    seq_no,
                    seq_size,
                    compressor,
                    entry_bits,
                    data: payload[PATCH_HEADER_LEN..].to_vec(),
                })
            }
            Some(&other) => Err(QrpError::UnknownVariant(other)),
        }
    }

    /// The payload of this message (the header is the caller's: TTL 1, hops 0).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RouteTableUpdate::Reset { table_length, infinity } => {
                let mut out = vec![VARIANT_RESET];
                out.extend_from_slice(&table_length.to_le_bytes());
                out.push(*infinity);
                out
            }
            RouteTableUpdate::Patch { seq_no, seq_size, compressor, entry_bits, data } => {
                let compressor = match compressor {
                    Compressor::None => 0,
                    Compressor::Zlib => 1,
                };
                let mut out = vec![VARIANT_PATCH, *seq_no, *seq_size, compressor, *entry_bits];
                out.extend_from_slice(data);
                out
            }
        }
    }
}

/// A patch sequence being applied.
struct Sequence {
    table: RouteTable,
    next: u8,
    size: u8,
    compressor: Compressor,
    entry_bits: u8,
    /// Next slot the patch's entries apply to.
    slot: u32,
    inflater: Decompress,
    inflated_end: bool,
}

/// What one peer has told us of its route table, message by message.
///
/// The table in force changes only when a sequence completes: until then
/// the previous one, or none, stays in force.
#[derive(Default)]
pub struct TableReceiver {
    in_force: Option<RouteTable>,
    /// The table a RESET started, before its patch begins.
    reset: Option<RouteTable>,
    sequence: Option<Sequence>,
}

impl TableReceiver {
    /// The peer's complete table, once a sequence has completed.
    pub fn table(&self) -> Option<&RouteTable> {
        self.in_force.as_ref()
    }

    /// Applies one update; `Ok(true)` when it completed a sequence and a
    /// new table is in force.
    pub fn receive(&mut self, update: RouteTableUpdate) -> Result<bool, QrpError> {
        match update {
            RouteTableUpdate::Reset { table_length, .. } => {
                let bits = table_length.trailing_zeros() as u8;
                self.reset = Some(RouteTable::new(bits));
                self.sequence = None;
                Ok(false)
            }
            RouteTableUpdate::Patch { seq_no, seq_size, compressor, entry_bits, data } => {
                if seq_no == 1 {
                    let table =
                        self.reset.take().or_else(|| self.in_force.clone()).ok_or(QrpError::PatchBeforeReset)?;
                    self.sequence = Some(Sequence {
                        table,
                        next: 1,
                        size: seq_size,
                        compressor,
                        entry_bits,
                        slot: 0,
                        inflater: Decompress::new(true),
                        inflated_end: false,
                    });
                }
                let has_table = self.reset.is_some() || self.in_force.is_some();
                let sequence = self.sequence.as_mut().ok_or(if has_table {
                    QrpError::Sequence { expected: 1, got: seq_no }
                } else {
                    QrpError::PatchBeforeReset
                })?;
                if seq_no != sequence.next {
                    return Err(QrpError::Sequence { expected: sequence.next, got: seq_no });
                }
                if (seq_size, compressor, entry_bits) != (sequence.size, sequence.compressor, sequence.entry_bits) {
                    return Err(QrpError::SequenceChanged);
                }
                sequence.next = seq_no.wrapping_add(1);
                match compressor {
                    Compressor::None => sequence.apply(&data)?,
                    Compressor::Zlib => sequence.inflate(&data)?,
                }
                if seq_no < seq_size {
                    return Ok(false);
                }
                let done = self.sequence.take().expect("a sequence is being applied");
                if done.compressor == Compressor::Zlib && !done.inflated_end {
                    return Err(QrpError::Inflate("the zlib stream does not end with its sequence".into()));
                }
                let mut table = done.table;
                table.compact();
                self.in_force = Some(table);
                Ok(true)
            }
        }
    }
}

impl Sequence {
    /// Inflates a part of the zlib stream and applies what comes out,
    /// refusing a stream that goes on past the end or past the table.
    fn inflate(&mut self, mut input: &[u8]) -> Result<(), QrpError> {
        let mut out = [0u8; 4096];
        while !input.is_empty() || !self.inflated_end {
            if self.inflated_end {
                return Err(QrpError::Inflate("data after the end of the zlib stream".into()));
            }
            let (in_before, out_before) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress(input, &mut out, FlushDecompress::None)
                .map_err(|e| QrpError::Inflate(e.to_string()))?;
            let used = (self.inflater.total_in() - in_before) as usize;
            let made = (self.inflater.total_out() - out_before) as usize;
            input = &input[used..];
            self.apply(&out[..made])?;
            if status == Status::StreamEnd {
                self.inflated_end = true;
            } else if used == 0 && made == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Applies patch entries to the next slots.
    fn apply(&mut self, data: &[u8]) -> Result<(), QrpError> {
        let per_byte = u32::from(8 / self.entry_bits);
        let slots = self.table.slots();
        if u64::from(self.slot) + data.len() as u64 * u64::from(per_byte) > u64::from(slots) {
            return Err(QrpError::Overflow(slots));
        }
        let bits = self.entry_bits;
        let mask = ((1u16 << bits) - 1) as u8;
        let sign = 1u8 << (bits - 1);
        for &byte in data {
            if byte == 0 {
                // Most of a patch changes nothing.
                self.slot += per_byte;
                continue;
            }
            for k in 0..per_byte as u8 {
                let entry = (byte >> (8 - bits * (k + 1))) & mask;
                let slot = self.slot;
                self.slot += 1;
                if entry == 0 {
                    continue;
                }
                if bits == 1 {
                    self.table.flip(slot);
                } else if entry & sign != 0 {
                    self.table.set(slot);
                } else {
                    self.table.clear(slot);
                }
            }
        }
        Ok(())
    }
}
