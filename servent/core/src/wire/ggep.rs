//! GGEP, the Gnutella Generic Extension Protocol (version 0.5).
//!
//! A GGEP *block* is the magic byte `0xC3` followed by one or more
//! *extensions*. Each extension is:
//!
//! ```text
//! flags   1 byte   0x80 last extension of the block
//!                  0x40 data is COBS-encoded (escapes NUL bytes)
//!                  0x20 data is deflated (a zlib stream)
//!                  0x10 reserved, must be 0
//!                  0x0F length of the ID, 1..=15
//! ID      1..15    bytes, none of them NUL (e.g. "H", "LF", "GTKGV")
//! length  1..3     bytes of 6 bits each, most significant first:
//!                  0x80 = another length byte follows, 0x40 = last byte
//! data    length   bytes (after encoding: deflate first, then COBS)
//! ```
//!
//! The length encoding is built so that no header byte is ever NUL, and COBS
//! removes NUL bytes from the data: together they let a GGEP block sit in the
//! NUL-terminated extension area of a QueryHit result. The spec is
//! gtk-gnutella's `doc/gnutella/GGEP`; COBS and deflate follow gtk-gnutella's
//! `src/lib/cobs.c` and `src/core/extensions.c` (a zlib stream, as zlib's
//! `inflateInit` reads it).
//!
//! Decoding undoes COBS and deflate and refuses more than
//! [`MAX_GGEP_EXTENSIONS`](super::MAX_GGEP_EXTENSIONS) extensions or
//! [`MAX_GGEP_DATA`](super::MAX_GGEP_DATA) bytes of decoded data in one
//! extension area. Encoding writes data as it is, deflated only when the
//! extension asks for it, and COBS-encoded only where the context forbids NUL
//! bytes and the data holds one (as gtk-gnutella does).

use std::fmt;
use std::io::Write;

use flate2::{Decompress, FlushDecompress, Status};

use super::{Out, WireError, MAX_GGEP_DATA, MAX_GGEP_EXTENSIONS};

/// The byte that opens every GGEP block.
pub const GGEP_MAGIC: u8 = 0xC3;
/// Longest extension ID, in bytes (the ID length has 4 bits).
pub const MAX_ID_LEN: usize = 15;
/// Largest data length the 3-byte length field can express.
pub const MAX_DATA_LEN: usize = (1 << 18) - 1;

const FLAG_LAST: u8 = 0x80;
const FLAG_COBS: u8 = 0x40;
const FLAG_DEFLATE: u8 = 0x20;
const FLAG_RESERVED: u8 = 0x10;
const FLAG_ID_LEN: u8 = 0x0F;
const LEN_MORE: u8 = 0x80;
const LEN_LAST: u8 = 0x40;
const LEN_VALUE: u8 = 0x3F;

/// The ID of a GGEP extension: 1 to 15 bytes, none of them NUL.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GgepId {
    len: u8,
    bytes: [u8; MAX_ID_LEN],
}

impl GgepId {
    /// `"H"`: binary hashes of a file (0x01 + SHA-1, or 0x02 + bitprint).
    pub const HASH: GgepId = GgepId::from_static("H");
    /// `"TT"`: a file's Tiger tree root, 24 bytes (LimeWire's, read by
    /// gtk-gnutella; a bitprint in `"H"` is kept here too).
    pub const TIGER_TREE: GgepId = GgepId::from_static("TT");
    /// `"LF"`: the size of a file of 4 GiB or more, little-endian.
    pub const LARGE_FILE: GgepId = GgepId::from_static("LF");
    /// `"SEBL.SIG"`, our own (vendor-prefixed, as gtk-gnutella's `GTKG.*`):
    /// a result's release signature, a minisign signature in compact form.
    /// Servents that do not know it skip it, as GGEP intends.
    pub const RELEASE_SIGNATURE: GgepId = GgepId::from_static("SEBL.SIG");

    /// An ID from its bytes, or `None` when empty, longer than 15 bytes or holding a NUL.
    pub const fn new(id: &[u8]) -> Option<GgepId> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_ID_LEN];
        let mut i = 0;
        while i < id.len() {
            if id[i] == 0 {
                return None;
            }
            bytes[i] = id[i];
            i += 1;
        }
        Some(GgepId { len: id.len() as u8, bytes })
    }

    /// An ID written in the source; an invalid one fails at compile time in a `const`.
    pub const fn from_static(id: &'static str) -> GgepId {
        match GgepId::new(id.as_bytes()) {
            Some(id) => id,
            None => panic!("a GGEP ID is 1 to 15 bytes, none of them NUL"),
        }
    }

    /// The ID's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl AsRef<[u8]> for GgepId {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Display for GgepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            if b.is_ascii_graphic() {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for GgepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GgepId(\"{self}\")")
    }
}

/// One extension of a GGEP block, with its data decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgepExtension {
    /// What the data means, e.g. `"H"`.
    pub id: GgepId,
    /// The data after COBS and deflate were undone.
    pub data: Vec<u8>,
    /// Whether the data travels deflated: set when decoded from a deflated
    /// extension, so that a forwarded message keeps its size.
    pub compressed: bool,
}

impl GgepExtension {
    /// An extension sent as it is, not deflated.
    pub fn new(id: GgepId, data: Vec<u8>) -> GgepExtension {
        GgepExtension { id, data, compressed: false }
    }
}

/// The GGEP extensions of one extension area, in the order they appeared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ggep {
    /// The extensions; an ID may appear more than once.
    pub extensions: Vec<GgepExtension>,
}

/// How data is laid out when encoding: as it is, or with no NUL byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    /// Data written as it is (Ping, Pong, Push, QueryHit trailer).
    Raw,
    /// Data holding a NUL is COBS-encoded (Query and result extension areas,
    /// which servents cut at the first NUL).
    NulFree,
}

impl Ggep {
    /// No extensions.
    pub fn new() -> Ggep {
        Ggep::default()
    }

    /// Whether there are no extensions (an empty Ggep encodes to nothing).
    pub fn is_empty(&self) -> bool {
        self.extensions.is_empty()
    }

    /// The data of the first extension with this ID.
    pub fn get(&self, id: impl AsRef<[u8]>) -> Option<&[u8]> {
        let id = id.as_ref();
        self.extensions.iter().find(|e| e.id.as_bytes() == id).map(|e| e.data.as_slice())
    }

    /// Sets the data of the extension with this ID, replacing the first one there is.
    pub fn insert(&mut self, id: GgepId, data: Vec<u8>) {
        match self.extensions.iter_mut().find(|e| e.id == id) {
            Some(existing) => existing.data = data,
            None => self.extensions.push(GgepExtension::new(id, data)),
        }
    }

    /// Removes and returns the first extension with this ID.
    pub fn remove(&mut self, id: impl AsRef<[u8]>) -> Option<GgepExtension> {
        let id = id.as_ref();
        let at = self.extensions.iter().position(|e| e.id.as_bytes() == id)?;
        Some(self.extensions.remove(at))
    }

    /// Parses one GGEP block starting at its magic byte; returns it and the bytes it used.
    pub fn decode(bytes: &[u8]) -> Result<(Ggep, usize), WireError> {
        let mut ggep = Ggep::new();
        let used = decode_block_into(bytes, &mut ggep)?;
        Ok((ggep, used))
    }

    /// The block as it goes on the wire (nothing at all when empty).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out, Style::Raw);
        out
    }

    pub(super) fn write<O: Out>(&self, out: &mut O, style: Style) {
        let all: Vec<&GgepExtension> = self.extensions.iter().collect();
        write_block(out, &all, style);
    }
}

/// Writes `extensions` as one block: magic, then each extension, the last one flagged.
pub(super) fn write_block<O: Out>(out: &mut O, extensions: &[&GgepExtension], style: Style) {
    if extensions.is_empty() {
        return;
    }
    out.put_u8(GGEP_MAGIC);
    let last = extensions.len() - 1;
    for (i, ext) in extensions.iter().enumerate() {
        let id = ext.id.as_bytes();
        let mut flags = id.len() as u8 & FLAG_ID_LEN;
        if i == last {
            flags |= FLAG_LAST;
        }
        let deflated;
        let mut data: &[u8] = &ext.data;
        if ext.compressed {
            flags |= FLAG_DEFLATE;
            deflated = deflate(data);
            data = &deflated;
        }
        let cobsed;
        if style == Style::NulFree && data.contains(&0) {
            flags |= FLAG_COBS;
            cobsed = cobs_encode(data);
            data = &cobsed;
        }
        out.put_u8(flags);
        out.put(id);
        write_len(out, data.len());
        out.put(data);
    }
}

/// Writes a data length in 6-bit chunks, most significant first, so no byte is NUL.
fn write_len<O: Out>(out: &mut O, len: usize) {
    // Longer data cannot be expressed; it only happens in payloads far over
    // MAX_PAYLOAD, which no peer accepts anyway.
    let len = len.min(MAX_DATA_LEN);
    let chunk = |shift: u32| ((len >> shift) & usize::from(LEN_VALUE)) as u8;
    if len < 1 << 6 {
        out.put_u8(LEN_LAST | chunk(0));
    } else if len < 1 << 12 {
        out.put(&[LEN_MORE | chunk(6), LEN_LAST | chunk(0)]);
    } else {
        out.put(&[LEN_MORE | chunk(12), LEN_MORE | chunk(6), LEN_LAST | chunk(0)]);
    }
}

/// Parses the block at the start of `bytes` into `ggep`, which may already hold
/// extensions of the same extension area (they count against the limits).
/// Returns how many bytes the block used.
pub(super) fn decode_block_into(bytes: &[u8], ggep: &mut Ggep) -> Result<usize, WireError> {
    if bytes.first() != Some(&GGEP_MAGIC) {
        return Err(WireError::Malformed { what: "GGEP magic byte" });
    }
    let mut decoded: usize = ggep.extensions.iter().map(|e| e.data.len()).sum();
    let mut pos = 1;
    loop {
        if ggep.extensions.len() >= MAX_GGEP_EXTENSIONS {
            return Err(WireError::TooMany { what: "GGEP extensions", limit: MAX_GGEP_EXTENSIONS });
        }
        let flags = *bytes.get(pos).ok_or(WireError::Truncated { what: "GGEP extension flags" })?;
        pos += 1;
        if flags & FLAG_RESERVED != 0 {
            return Err(WireError::Malformed { what: "GGEP flags (reserved bit set)" });
        }
        let id_len = usize::from(flags & FLAG_ID_LEN);
        let id_bytes = bytes.get(pos..pos + id_len).ok_or(WireError::Truncated { what: "GGEP extension ID" })?;
        let id = GgepId::new(id_bytes).ok_or(WireError::Malformed { what: "GGEP extension ID" })?;
        pos += id_len;
        let (len, len_bytes) = read_len(bytes.get(pos..).unwrap_or(&[]))?;
        pos += len_bytes;
        let raw = bytes.get(pos..pos + len).ok_or(WireError::Truncated { what: "GGEP extension data" })?;
        pos += len;

        let budget = MAX_GGEP_DATA.saturating_sub(decoded);
        let uncobsed;
        let mut data = raw;
        if flags & FLAG_COBS != 0 {
            uncobsed = cobs_decode(raw)?;
            data = &uncobsed;
        }
        let data = if flags & FLAG_DEFLATE != 0 { inflate(data, budget)? } else { data.to_vec() };
        if data.len() > budget {
            return Err(WireError::TooLong { what: "GGEP data", limit: MAX_GGEP_DATA });
        }
        decoded += data.len();
        ggep.extensions.push(GgepExtension { id, data, compressed: flags & FLAG_DEFLATE != 0 });
        if flags & FLAG_LAST != 0 {
            return Ok(pos);
        }
    }
}

/// Reads a 1–3 byte length; returns it and how many bytes it took.
fn read_len(bytes: &[u8]) -> Result<(usize, usize), WireError> {
    let mut len = 0usize;
    for (i, &b) in bytes.iter().take(3).enumerate() {
        len = (len << 6) | usize::from(b & LEN_VALUE);
        match b & (LEN_MORE | LEN_LAST) {
            LEN_LAST => return Ok((len, i + 1)),
            LEN_MORE => continue,
            _ => return Err(WireError::Malformed { what: "GGEP data length" }),
        }
    }
    if bytes.len() < 3 {
        Err(WireError::Truncated { what: "GGEP data length" })
    } else {
        Err(WireError::Malformed { what: "GGEP data length (over 3 bytes)" })
    }
}

/// COBS-encodes `data` the way gtk-gnutella does: no NUL in the output, and
/// no final code byte when the data ends on a full 254-byte block.
fn cobs_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 254 + 2);
    let mut code_at = 0;
    let mut code: u8 = 1;
    let mut last_code: u8 = 0;
    out.push(0);
    let mut finish = |out: &mut Vec<u8>, code: &mut u8, code_at: &mut usize| {
        if let Some(slot) = out.get_mut(*code_at) {
            *slot = *code;
        }
        last_code = *code;
        *code_at = out.len();
        out.push(0);
        *code = 1;
    };
    for &b in data {
        if b == 0 {
            finish(&mut out, &mut code, &mut code_at);
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                finish(&mut out, &mut code, &mut code_at);
            }
        }
    }
    if last_code == 0xFF && code == 1 {
        out.pop();
    } else if let Some(slot) = out.get_mut(code_at) {
        *slot = code;
    }
    out
}

/// Undoes COBS: each code byte `n` is followed by `n - 1` data bytes and
/// stands for a NUL after them, except 0xFF; the final implied NUL is dropped.
fn cobs_decode(data: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    let mut last_code = 0xFF;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            return Err(WireError::Malformed { what: "COBS data (NUL code byte)" });
        }
        let run = usize::from(code) - 1;
        let block = tail.get(..run).ok_or(WireError::Truncated { what: "COBS data" })?;
        if block.contains(&0) {
            return Err(WireError::Malformed { what: "COBS data (NUL in a block)" });
        }
        out.extend_from_slice(block);
        if code != 0xFF {
            out.push(0);
        }
        last_code = code;
        rest = tail.get(run..).unwrap_or(&[]);
    }
    if last_code != 0xFF {
        out.pop();
    }
    Ok(out)
}

/// Deflates into a zlib stream, as gtk-gnutella's `zlib_deflater` does.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).and_then(|()| encoder.finish()).expect("deflating into memory cannot fail")
}

/// Inflates a zlib stream, refusing more than `limit` bytes of output or a stream that stops short.
fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let too_long = WireError::TooLong { what: "GGEP data", limit: MAX_GGEP_DATA };
    let mut z = Decompress::new(true);
    let mut out = Vec::with_capacity(limit.saturating_add(1).min(4096));
    loop {
        let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or(&[]);
        let before = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|_| WireError::Malformed { what: "GGEP deflated data" })?;
        if out.len() > limit {
            return Err(too_long);
        }
        if status == Status::StreamEnd {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            // One byte over the limit is enough to tell the data is too long.
            let room = (limit + 1 - out.len()).min(out.len().max(4096));
            out.reserve_exact(room);
        } else if before == (z.total_in(), z.total_out()) {
            return Err(WireError::Truncated { what: "GGEP deflated data" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(id: &'static str, data: &[u8]) -> GgepExtension {
        GgepExtension::new(GgepId::from_static(id), data.to_vec())
    }

    fn encoded_len_field(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_len(&mut out, len);
        out
    }

    #[test]
    fn length_encoding_matches_the_spec_boundary_cases() {
        // The table in doc/gnutella/GGEP, "Boundary Cases".
        assert_eq!(encoded_len_field(0), [0x40]);
        assert_eq!(encoded_len_field(63), [0x7f]);
        assert_eq!(encoded_len_field(64), [0x81, 0x40]);
        assert_eq!(encoded_len_field(4095), [0xbf, 0x7f]);
        assert_eq!(encoded_len_field(4096), [0x81, 0x80, 0x40]);
        assert_eq!(encoded_len_field(262_143), [0xbf, 0xbf, 0x7f]);
    }

    #[test]
    fn length_decoding_reads_one_two_and_three_bytes() {
        assert_eq!(read_len(&[0x45, 0xff]).unwrap(), (5, 1));
        assert_eq!(read_len(&[0x81, 0x40]).unwrap(), (64, 2));
        assert_eq!(read_len(&[0x81, 0x80, 0x40]).unwrap(), (4096, 3));
        assert_eq!(read_len(&[0xbf, 0xbf, 0x7f]).unwrap(), (262_143, 3));
    }

    #[test]
    fn length_with_a_fourth_byte_or_bad_marks_is_refused() {
        assert!(matches!(read_len(&[0x81, 0x81, 0x81, 0x40]), Err(WireError::Malformed { .. })));
        assert!(matches!(read_len(&[0x05]), Err(WireError::Malformed { .. })));
        assert!(matches!(read_len(&[0xc5]), Err(WireError::Malformed { .. })));
        assert!(matches!(read_len(&[0x81]), Err(WireError::Truncated { .. })));
        assert!(matches!(read_len(&[]), Err(WireError::Truncated { .. })));
    }

    #[test]
    fn block_decodes_byte_for_byte() {
        // magic, "H" (not last) with 2 bytes, "GTKGV" (last) with no data.
        let bytes = [0xC3, 0x01, b'H', 0x42, 0xAA, 0xBB, 0x85, b'G', b'T', b'K', b'G', b'V', 0x40, 0x99];
        let (ggep, used) = Ggep::decode(&bytes).unwrap();
        assert_eq!(used, 13);
        assert_eq!(ggep.extensions, vec![ext("H", &[0xAA, 0xBB]), ext("GTKGV", &[])]);
    }

    #[test]
    fn block_encodes_byte_for_byte() {
        let ggep = Ggep { extensions: vec![ext("H", &[0xAA, 0xBB]), ext("GTKGV", &[])] };
        assert_eq!(ggep.encode(), [0xC3, 0x01, b'H', 0x42, 0xAA, 0xBB, 0x85, b'G', b'T', b'K', b'G', b'V', 0x40]);
        assert_eq!(Ggep::new().encode(), Vec::<u8>::new());
    }

    #[test]
    fn long_data_uses_a_two_byte_length() {
        let ggep = Ggep { extensions: vec![ext("X", &[7; 100])] };
        let bytes = ggep.encode();
        assert_eq!(&bytes[..5], &[0xC3, 0x81, b'X', 0x81, 0x64]);
        assert_eq!(Ggep::decode(&bytes).unwrap(), (ggep, 105));
    }

    #[test]
    fn cobs_matches_the_paper_examples() {
        assert_eq!(cobs_encode(&[]), [0x01]);
        assert_eq!(cobs_encode(&[0x00]), [0x01, 0x01]);
        assert_eq!(cobs_encode(&[0x11, 0x22, 0x00, 0x33]), [0x03, 0x11, 0x22, 0x02, 0x33]);
        assert_eq!(cobs_encode(&[0x11, 0x00, 0x00]), [0x02, 0x11, 0x01, 0x01]);
        assert_eq!(cobs_decode(&[0x03, 0x11, 0x22, 0x02, 0x33]).unwrap(), [0x11, 0x22, 0x00, 0x33]);
        assert_eq!(cobs_decode(&[0x02, 0x11, 0x01, 0x01]).unwrap(), [0x11, 0x00, 0x00]);
    }

    #[test]
    fn cobs_full_block_has_no_trailing_code() {
        let data = [0x55; 254];
        let encoded = cobs_encode(&data);
        assert_eq!(encoded.len(), 255);
        assert_eq!(encoded[0], 0xFF);
        assert_eq!(cobs_decode(&encoded).unwrap(), data);
        let mut with_nul = data.to_vec();
        with_nul.push(0);
        assert_eq!(cobs_decode(&cobs_encode(&with_nul)).unwrap(), with_nul);
    }

    #[test]
    fn cobs_refuses_nul_and_short_blocks() {
        assert!(cobs_decode(&[0x03, 0x11, 0x00]).is_err());
        assert!(cobs_decode(&[0x00]).is_err());
        assert!(cobs_decode(&[0x05, 0x11]).is_err());
    }

    #[test]
    fn cobs_encoded_extension_is_decoded() {
        // "LF" = 5 GiB = 00 00 00 40 01, COBS-encoded: 01 01 01 03 40 01.
        let bytes = [0xC3, 0xC2, b'L', b'F', 0x46, 0x01, 0x01, 0x01, 0x03, 0x40, 0x01];
        let (ggep, _) = Ggep::decode(&bytes).unwrap();
        assert_eq!(ggep.get("LF"), Some(&[0x00, 0x00, 0x00, 0x40, 0x01][..]));
    }

    #[test]
    fn nul_free_style_cobs_encodes_only_data_holding_a_nul() {
        let ggep = Ggep { extensions: vec![ext("A", &[1, 0, 2]), ext("B", &[1, 2])] };
        let mut out = Vec::new();
        ggep.write(&mut out, Style::NulFree);
        assert!(!out.contains(&0));
        assert_eq!(out, [0xC3, 0x41, b'A', 0x44, 0x02, 0x01, 0x02, 0x02, 0x81, b'B', 0x42, 1, 2]);
        assert_eq!(Ggep::decode(&out).unwrap().0, ggep);
    }

    #[test]
    fn deflated_extension_is_inflated() {
        let text = b"a text that repeats, a text that repeats, a text that repeats";
        let z = deflate(text);
        assert_eq!(z[0], 0x78, "a zlib stream header");
        let mut bytes = vec![0xC3, 0xA1, b'T'];
        write_len(&mut bytes, z.len());
        bytes.extend_from_slice(&z);
        let (ggep, used) = Ggep::decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(
            ggep.extensions,
            vec![GgepExtension { id: GgepId::from_static("T"), data: text.to_vec(), compressed: true }]
        );
        assert_eq!(Ggep::decode(&ggep.encode()).unwrap().0, ggep);
    }

    #[test]
    fn deflated_and_cobs_encoded_extension_is_decoded() {
        let data = vec![0u8; 300];
        let ggep = Ggep { extensions: vec![GgepExtension { id: GgepId::from_static("Z"), data, compressed: true }] };
        let mut out = Vec::new();
        ggep.write(&mut out, Style::NulFree);
        assert_eq!(out[1], 0x80 | 0x40 | 0x20 | 1);
        assert!(!out.contains(&0));
        assert_eq!(Ggep::decode(&out).unwrap().0, ggep);
    }

    #[test]
    fn inflating_past_the_limit_is_refused() {
        let bomb = deflate(&vec![0u8; MAX_GGEP_DATA + 1]);
        let mut bytes = vec![0xC3, 0xA1, b'Z'];
        write_len(&mut bytes, bomb.len());
        bytes.extend_from_slice(&bomb);
        assert!(matches!(Ggep::decode(&bytes), Err(WireError::TooLong { .. })));
        let fits = deflate(&vec![0u8; MAX_GGEP_DATA]);
        assert_eq!(inflate(&fits, MAX_GGEP_DATA).unwrap().len(), MAX_GGEP_DATA);
    }

    #[test]
    fn truncated_or_corrupt_deflate_is_refused() {
        let z = deflate(b"some text to compress, some text to compress");
        assert!(matches!(inflate(&z[..z.len() - 5], 1000), Err(WireError::Truncated { .. })));
        assert!(matches!(inflate(&[0x12, 0x34, 0x56], 1000), Err(WireError::Malformed { .. })));
        assert!(inflate(&[], 1000).is_err());
    }

    #[test]
    fn reserved_bit_nul_id_and_missing_last_flag_are_refused() {
        assert!(matches!(Ggep::decode(&[0xC3, 0x91, b'A', 0x40]), Err(WireError::Malformed { .. })));
        assert!(matches!(Ggep::decode(&[0xC3, 0x82, b'A', 0, 0x40]), Err(WireError::Malformed { .. })));
        assert!(matches!(Ggep::decode(&[0xC3, 0x80, 0x40]), Err(WireError::Malformed { .. })));
        assert!(matches!(Ggep::decode(&[0xC3, 0x01, b'A', 0x40]), Err(WireError::Truncated { .. })));
        assert!(matches!(Ggep::decode(&[0xC3, 0x81, b'A', 0x45, 1, 2]), Err(WireError::Truncated { .. })));
        assert!(matches!(Ggep::decode(&[0x00]), Err(WireError::Malformed { .. })));
    }

    #[test]
    fn too_many_extensions_are_refused() {
        let mut bytes = vec![0xC3];
        for _ in 0..=MAX_GGEP_EXTENSIONS {
            bytes.extend_from_slice(&[0x01, b'A', 0x40]);
        }
        bytes.extend_from_slice(&[0x81, b'A', 0x40]);
        assert!(matches!(Ggep::decode(&bytes), Err(WireError::TooMany { .. })));
    }

    #[test]
    fn ids_are_checked() {
        assert!(GgepId::new(b"").is_none());
        assert!(GgepId::new(&[b'A'; 16]).is_none());
        assert!(GgepId::new(b"A\0").is_none());
        assert_eq!(GgepId::new(b"GTKGV").unwrap().as_bytes(), b"GTKGV");
        assert_eq!(GgepId::new(&[b'X', 1]).unwrap().to_string(), "X\\x01");
    }

    #[test]
    fn insert_get_remove_work_by_id() {
        let mut ggep = Ggep::new();
        ggep.insert(GgepId::HASH, vec![1]);
        ggep.insert(GgepId::HASH, vec![2]);
        assert_eq!(ggep.extensions.len(), 1);
        assert_eq!(ggep.get("H"), Some(&[2][..]));
        assert_eq!(ggep.remove(GgepId::HASH).map(|e| e.data), Some(vec![2]));
        assert!(ggep.is_empty());
    }
}
