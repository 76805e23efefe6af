//! The Gnutella 0.6 codec, with no I/O at all.
//!
//! # Descriptors
//! Servents talk over a TCP stream of *descriptors* (messages). Every
//! descriptor is a 23-byte header followed by its payload:
//!
//! ```text
//! offset size field
//!      0   16 GUID: the message's identity, the key of every routing table
//!     16    1 payload type: 0x00 Ping, 0x01 Pong, 0x02 Bye, 0x30 route-table
//!             update, 0x31/0x32 vendor messages, 0x40 Push, 0x80 Query,
//!             0x81 QueryHit
//!     17    1 TTL: hops left to travel
//!     18    1 hops: hops travelled so far
//!     19    4 payload length, little-endian
//! ```
//!
//! The stream has no other framing: a reader takes 23 bytes, [`decode_header`]
//! tells how many payload bytes follow (refusing more than [`MAX_PAYLOAD`]),
//! then [`decode_payload`] reads them. [`decode`] does both on a whole
//! descriptor.
//!
//! # Byte order
//! Integers are little-endian (ports, file indexes, sizes, speeds, counts),
//! as in the Gnutella 0.4 spec and Wireshark's `packet-gnutella.c`. Three
//! exceptions: IPv4 addresses are in network order (`192.168.0.1` is
//! `C0 A8 00 01`), the Query flags are read big-endian (see [`QueryFlags`]),
//! and GGEP lengths are written most significant chunk first.
//!
//! # Extensions
//! Pings, Pongs and Pushes may end with GGEP blocks ([`ggep`]). Queries and
//! QueryHit results carry an *extension area* after a NUL-terminated string:
//! HUGE URNs (`urn:sha1:...`), GGEP blocks and XML, separated by `0x1C`.
//! GGEP blocks are parsed by their structure, not by looking for
//! separators, because their data may hold `0x1C` and NUL bytes. A QueryHit
//! ends with an optional trailer (vendor code, flags, GGEP) and the
//! responding servent's GUID.
//!
//! # Limits
//! Every length and count read from the network is checked against the
//! constants below; [`decode`] returns a [`WireError`] instead, and never
//! panics. [`Message::encode`] writes what [`decode`] reads back, provided the
//! message respects the same limits ([`Message::encoded_len`] tells the size).
//!
//! # Choices where the specs leave room
//! - Query extensions are written `urn 0x1C urn 0x1C GGEP` and closed by one
//!   NUL, as LimeWire does; gtk-gnutella (`src/core/extensions.c`) accepts a
//!   single separator before the end but drops queries with two in a row.
//! - GGEP data holding a NUL is COBS-encoded in Query and result extension
//!   areas, because gtk-gnutella cuts a result's extension area at the first
//!   NUL (`get_results_set` in `src/core/search.c`), and the GGEP spec asks
//!   for it. Elsewhere data is written as it is.
//! - GGEP `"H"` (binary SHA-1) and, in results, `"LF"` (64-bit size) are
//!   interpreted: they are moved into `urns` and `size` and do not appear in
//!   the exposed `ggep`; the encoder writes URNs as HUGE text and `"LF"` when
//!   a size needs it.
//! - A decoded Query or QueryHit keeps the payload it arrived with
//!   ([`Original`]) and is written back with exactly those bytes: what we
//!   relay leaves us as it came, TTL and hops aside, whatever extensions it
//!   carries (an `"H"` bitprint, XML, GGEP we do not know, a missing or
//!   extra NUL). Only what we build ourselves is encoded from the fields.
//! - Malformed GGEP in a Query, result, Ping, Pong or Push is an error (the
//!   message is dropped). In the QueryHit trailer's private area, where
//!   BearShare wrote its own data, a block that does not parse is ignored.

pub mod ggep;
mod hit;
pub mod ipp;
pub mod vendor;

#[cfg(test)]
pub(crate) mod samples;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

pub use ggep::{Ggep, GgepExtension, GgepId};
pub use hit::split_results;
pub use search::Urn;

use ggep::{decode_block_into, Style, GGEP_MAGIC};

/// Length of the descriptor header.
pub const HEADER_LEN: usize = 23;
/// Largest payload accepted or produced (gtk-gnutella's limit too).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest query criteria string, in bytes.
pub const MAX_CRITERIA: usize = 256;
/// Most results one QueryHit may carry (the count is one byte).
pub const MAX_RESULTS: usize = 255;
/// Longest file name in a QueryHit result, in bytes.
pub const MAX_NAME: usize = 1024;
/// Most URNs accepted in one query or result.
pub const MAX_URNS: usize = 8;
/// Longest reason in a Bye; longer ones are cut.
pub const MAX_BYE_REASON: usize = 512;
/// Most GGEP extensions in one extension area.
pub const MAX_GGEP_EXTENSIONS: usize = 32;
/// Most GGEP data bytes in one extension area, after COBS and deflate are undone.
pub const MAX_GGEP_DATA: usize = 64 * 1024;
/// Most results [`split_results`] puts in one QueryHit (gtk-gnutella's
/// `QHIT_MAX_RESULTS`: LimeWire dislikes more than 10).
pub const HIT_RESULTS: usize = 10;
/// Payload size [`QueryHit::split`] aims to stay under: hits travel many hops
/// and servents drop large ones.
pub const HIT_PAYLOAD: usize = 4 * 1024;
/// Our vendor code in QueryHit trailers.
pub const OUR_VENDOR: [u8; 4] = *b"SEBL";

/// Separates HUGE extensions ("GEM" separator).
const HUGE_SEPARATOR: u8 = 0x1C;
/// Fixed part of a QueryHit payload: count, port, IPv4, speed.
const HIT_HEADER_LEN: usize = 11;
/// Bytes of the servent GUID closing a QueryHit.
const GUID_LEN: usize = 16;
/// Fixed part of a Pong: port, IPv4, files, kbytes.
const PONG_LEN: usize = 14;
/// Fixed part of a Push: servent GUID, index, IPv4, port.
const PUSH_LEN: usize = 26;

/// Why bytes are not a descriptor we accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The header announces a payload over [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes is over the limit of {max} bytes", max = MAX_PAYLOAD)]
    PayloadTooLong(u32),
    /// The header's payload length and the bytes given differ.
    #[error("header announces {announced} payload bytes, {actual} given")]
    LengthMismatch {
        /// Length in the header.
        announced: u32,
        /// Bytes actually given.
        actual: usize,
    },
    /// The data stops before `what` is complete.
    #[error("truncated {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// `what` breaks the format.
    #[error("malformed {what}")]
    Malformed {
        /// The field being read.
        what: &'static str,
    },
    /// `what` is longer than its limit.
    #[error("{what} longer than {limit} bytes")]
    TooLong {
        /// The field being read.
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// More `what` than the limit.
    #[error("more than {limit} {what}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

/// A 16-byte message or servent identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// A fresh random GUID, marked as modern servents mark theirs (byte 8 = 0xFF, byte 15 = 0).
    pub fn random() -> Guid {
        Guid::from_rng(&mut rand::thread_rng())
    }

    /// A fresh GUID drawn from `rng`, marked as [`Guid::random`] marks it:
    /// with a seeded generator, the same seed gives the same GUIDs.
    pub fn from_rng(rng: &mut impl rand::RngCore) -> Guid {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        bytes[8] = 0xFF;
        bytes[15] = 0;
        Guid(bytes)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Guid {
    type Err = WireError;

    /// Parses 32 hex digits, in either case (as in a `GIV` line).
    fn from_str(text: &str) -> Result<Guid, WireError> {
        let bad = WireError::Malformed { what: "GUID hex" };
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad);
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad.clone())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad.clone())?;
        }
        Ok(Guid(bytes))
    }
}

/// The payload type byte of a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// 0x00: are you there, who else is there?
    Ping,
    /// 0x01: a servent's address and library size.
    Pong,
    /// 0x02: the sender closes the connection, and says why.
    Bye,
    /// 0x30: Query Routing Protocol table update.
    RouteTable,
    /// 0x31: vendor-specific message.
    Vendor,
    /// 0x32: standard vendor message.
    StandardVendor,
    /// 0x40: asks a firewalled servent to connect out and upload.
    Push,
    /// 0x80: a search.
    Query,
    /// 0x81: search results.
    QueryHit,
    /// Any other byte.
    Unknown(u8),
}

impl From<u8> for PayloadType {
    fn from(byte: u8) -> PayloadType {
        match byte {
            0x00 => PayloadType::Ping,
            0x01 => PayloadType::Pong,
            0x02 => PayloadType::Bye,
            0x30 => PayloadType::RouteTable,
            0x31 => PayloadType::Vendor,
            0x32 => PayloadType::StandardVendor,
            0x40 => PayloadType::Push,
            0x80 => PayloadType::Query,
            0x81 => PayloadType::QueryHit,
            other => PayloadType::Unknown(other),
        }
    }
}

impl From<PayloadType> for u8 {
    fn from(kind: PayloadType) -> u8 {
        match kind {
            PayloadType::Ping => 0x00,
            PayloadType::Pong => 0x01,
            PayloadType::Bye => 0x02,
            PayloadType::RouteTable => 0x30,
            PayloadType::Vendor => 0x31,
            PayloadType::StandardVendor => 0x32,
            PayloadType::Push => 0x40,
            PayloadType::Query => 0x80,
            PayloadType::QueryHit => 0x81,
            PayloadType::Unknown(byte) => byte,
        }
    }
}

/// The fixed header of every descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message's identity.
    pub guid: Guid,
    /// What the payload is.
    pub payload_type: PayloadType,
    /// Hops left to travel.
    pub ttl: u8,
    /// Hops travelled so far.
    pub hops: u8,
    /// Bytes of payload that follow.
    pub payload_len: u32,
}

impl Header {
    /// The header's 23 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (guid, rest) = out.split_at_mut(16);
        guid.copy_from_slice(&self.guid.0);
        rest[0] = self.payload_type.into();
        rest[1] = self.ttl;
        rest[2] = self.hops;
        rest[3..].copy_from_slice(&self.payload_len.to_le_bytes());
        out
    }
}

/// Reads a descriptor header, refusing payloads over [`MAX_PAYLOAD`].
pub fn decode_header(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
    let mut r = Reader::new(bytes);
    let header = Header {
        guid: r.guid("header GUID")?,
        payload_type: r.u8("payload type")?.into(),
        ttl: r.u8("TTL")?,
        hops: r.u8("hops")?,
        payload_len: r.u32_le("payload length")?,
    };
    if header.payload_len as usize > MAX_PAYLOAD {
        return Err(WireError::PayloadTooLong(header.payload_len));
    }
    Ok(header)
}

/// Decodes the payload announced by `header`; `payload` must be exactly `payload_len` bytes.
pub fn decode_payload(header: &Header, payload: &[u8]) -> Result<Message, WireError> {
    if payload.len() != header.payload_len as usize {
        return Err(WireError::LengthMismatch { announced: header.payload_len, actual: payload.len() });
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::PayloadTooLong(header.payload_len));
    }
    let payload = match header.payload_type {
        PayloadType::Ping => Payload::Ping(Ping::decode(payload)?),
        PayloadType::Pong => Payload::Pong(Pong::decode(payload)?),
        PayloadType::Bye => Payload::Bye(Bye::decode(payload)?),
        PayloadType::Query => Payload::Query(Query::decode(payload)?),
        PayloadType::QueryHit => Payload::QueryHit(QueryHit::decode(payload)?),
        PayloadType::Push => Payload::Push(Push::decode(payload)?),
        other => Payload::Opaque { payload_type: other.into(), bytes: payload.to_vec() },
    };
    Ok(Message { guid: header.guid, ttl: header.ttl, hops: header.hops, payload })
}

/// Decodes one whole descriptor: header and exactly `payload_len` bytes of payload.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let (head, payload) = bytes.split_at_checked(HEADER_LEN).ok_or(WireError::Truncated { what: "header" })?;
    let head: &[u8; HEADER_LEN] = head.try_into().map_err(|_| WireError::Truncated { what: "header" })?;
    decode_payload(&decode_header(head)?, payload)
}

/// A whole descriptor: its routing fields and its decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message's identity.
    pub guid: Guid,
    /// Hops left to travel.
    pub ttl: u8,
    /// Hops travelled so far.
    pub hops: u8,
    /// What it carries.
    pub payload: Payload,
}

impl Message {
    /// A new message from us: hops 0.
    pub fn new(guid: Guid, ttl: u8, payload: Payload) -> Message {
        Message { guid, ttl, hops: 0, payload }
    }

    /// The descriptor's bytes, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the descriptor's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let header_at = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        self.payload.write(out);
        let payload_len = u32::try_from(out.len() - header_at - HEADER_LEN).unwrap_or(u32::MAX);
        let header =
            Header { guid: self.guid, payload_type: self.payload_type(), ttl: self.ttl, hops: self.hops, payload_len };
        if let Some(slot) = out.get_mut(header_at..header_at + HEADER_LEN) {
            slot.copy_from_slice(&header.encode());
        }
    }

    /// The payload type byte this message is sent with.
    pub fn payload_type(&self) -> PayloadType {
        self.payload.payload_type()
    }

    /// How many bytes [`Message::encode`] produces, header included.
    pub fn encoded_len(&self) -> usize {
        let mut count = Count(0);
        self.payload.write(&mut count);
        HEADER_LEN + count.0
    }
}

/// What a descriptor carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// 0x00.
    Ping(Ping),
    /// 0x01.
    Pong(Pong),
    /// 0x02.
    Bye(Bye),
    /// 0x80.
    Query(Query),
    /// 0x81.
    QueryHit(QueryHit),
    /// 0x40.
    Push(Push),
    /// Route-table updates, vendor messages and unknown types: carried as
    /// they are, not interpreted. Never holds one of the types above.
    Opaque {
        /// The payload type byte.
        payload_type: u8,
        /// The payload.
        bytes: Vec<u8>,
    },
}

impl Payload {
    /// The payload type byte this payload is sent with.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Ping(_) => PayloadType::Ping,
            Payload::Pong(_) => PayloadType::Pong,
            Payload::Bye(_) => PayloadType::Bye,
            Payload::Query(_) => PayloadType::Query,
            Payload::QueryHit(_) => PayloadType::QueryHit,
            Payload::Push(_) => PayloadType::Push,
            Payload::Opaque { payload_type, .. } => PayloadType::from(*payload_type),
        }
    }

    fn write<O: Out>(&self, out: &mut O) {
        match self {
            Payload::Ping(ping) => ping.ggep.write(out, Style::Raw),
            Payload::Pong(pong) => pong.write(out),
            Payload::Bye(bye) => bye.write(out),
            Payload::Query(query) => query.write(out),
            Payload::QueryHit(hit) => hit.write(out),
            Payload::Push(push) => push.write(out),
            Payload::Opaque { bytes, .. } => out.put(bytes),
        }
    }
}

/// Are you there? Empty, or a GGEP block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ping {
    /// GGEP extensions (e.g. "SCP" asking for cached hosts).
    pub ggep: Ggep,
}

impl Ping {
    fn decode(payload: &[u8]) -> Result<Ping, WireError> {
        Ok(Ping { ggep: parse_extensions(payload, Terminator::End)?.0.ggep })
    }
}

/// A servent's address and library size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pong {
    /// Port it listens on.
    pub port: u16,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// Files it shares.
    pub files: u32,
    /// Kilobytes it shares.
    pub kbytes: u32,
    /// GGEP extensions (e.g. "UP", "DU", "IPP").
    pub ggep: Ggep,
}

impl Pong {
    fn decode(payload: &[u8]) -> Result<Pong, WireError> {
        if payload.len() < PONG_LEN {
            return Err(WireError::Truncated { what: "pong" });
        }
        let mut r = Reader::new(payload);
        Ok(Pong {
            port: r.u16_le("pong port")?,
            ip: r.ipv4("pong IP")?,
            files: r.u32_le("pong files")?,
            kbytes: r.u32_le("pong kbytes")?,
            ggep: parse_extensions(r.rest(), Terminator::End)?.0.ggep,
        })
    }

    fn write<O: Out>(&self, out: &mut O) {
        out.put(&self.port.to_le_bytes());
        out.put(&self.ip.octets());
        out.put(&self.files.to_le_bytes());
        out.put(&self.kbytes.to_le_bytes());
        self.ggep.write(out, Style::Raw);
    }
}

/// The sender closes the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bye {
    /// SMTP-like code: 2xx normal, 4xx the receiver misbehaved, 5xx the sender's trouble.
    pub code: u16,
    /// Why, possibly followed by CRLF-separated headers (gtk-gnutella's
    /// `doc/gnutella/bye`); cut at [`MAX_BYE_REASON`] bytes.
    pub reason: String,
}

impl Bye {
    fn decode(payload: &[u8]) -> Result<Bye, WireError> {
        let mut r = Reader::new(payload);
        let code = r.u16_le("bye code")?;
        let raw = r.rest().split(|&b| b == 0).next().unwrap_or(&[]);
        let mut reason = String::from_utf8_lossy(raw.get(..MAX_BYE_REASON).unwrap_or(raw)).into_owned();
        // Replacement characters may have made it longer than the bytes it came from.
        let cut = (0..=MAX_BYE_REASON.min(reason.len())).rev().find(|&at| reason.is_char_boundary(at)).unwrap_or(0);
        reason.truncate(cut);
        Ok(Bye { code, reason })
    }

    fn write<O: Out>(&self, out: &mut O) {
        out.put(&self.code.to_le_bytes());
        out.put(until_nul(&self.reason));
        out.put_u8(0);
    }
}

/// The 2-byte field that opens a Query: once a minimum speed, now flags.
///
/// Modern servents read it big-endian and set bit 15 (`0x8000`) to say the
/// other bits are flags (gtk-gnutella's `doc/gnutella/min_speed` and
/// `QUERY_F_*` in `src/core/search.h`); gtk-gnutella drops queries without
/// that mark. Without it the field is a legacy little-endian minimum speed.
/// The raw value is kept so a forwarded query is unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryFlags(u16);

impl QueryFlags {
    /// The other bits are flags, not a speed.
    pub const MARK: u16 = 0x8000;
    /// The querying servent is firewalled: firewalled servents should not answer.
    pub const FIREWALLED: u16 = 0x4000;
    /// XML metadata is wanted in the hits.
    pub const XML: u16 = 0x2000;
    /// A leaf-guided dynamic query: the leaf reports how many hits it kept.
    pub const LEAF_GUIDED: u16 = 0x1000;
    /// GGEP "H" binary hashes are understood in the hits.
    pub const GGEP_H: u16 = 0x0800;
    /// Hits may be sent out of band, over UDP.
    pub const OOB_REPLY: u16 = 0x0400;

    /// Flags from the value as read big-endian.
    pub const fn from_raw(raw: u16) -> QueryFlags {
        QueryFlags(raw)
    }

    /// The value as read big-endian.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Flags from the two bytes on the wire.
    pub const fn from_wire(bytes: [u8; 2]) -> QueryFlags {
        QueryFlags(u16::from_be_bytes(bytes))
    }

    /// The two bytes on the wire.
    pub const fn to_wire(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// Whether bit 15 says the field holds flags.
    pub const fn is_marked(self) -> bool {
        self.0 & Self::MARK != 0
    }

    /// The minimum speed in kB/s of a legacy query, read little-endian; `None` when marked.
    pub const fn legacy_min_speed(self) -> Option<u16> {
        if self.is_marked() {
            None
        } else {
            Some(u16::from_le_bytes(self.to_wire()))
        }
    }

    /// Whether the querying servent is firewalled.
    pub const fn is_firewalled(self) -> bool {
        self.has(Self::FIREWALLED)
    }

    /// Whether XML metadata is wanted.
    pub const fn wants_xml(self) -> bool {
        self.has(Self::XML)
    }

    /// Whether this is a leaf-guided dynamic query.
    pub const fn is_leaf_guided(self) -> bool {
        self.has(Self::LEAF_GUIDED)
    }

    /// Whether GGEP "H" is understood in hits.
    pub const fn accepts_ggep_h(self) -> bool {
        self.has(Self::GGEP_H)
    }

    /// Whether hits may be sent out of band.
    pub const fn wants_oob_reply(self) -> bool {
        self.has(Self::OOB_REPLY)
    }

    /// The same flags with `flag` (one of the constants) set or cleared; marks the field.
    pub const fn with(self, flag: u16, on: bool) -> QueryFlags {
        let marked = self.0 | Self::MARK;
        QueryFlags(if on { marked | flag } else { marked & !flag })
    }

    const fn has(self, flag: u16) -> bool {
        self.is_marked() && self.0 & flag != 0
    }
}

impl Default for QueryFlags {
    /// What we send: marked, GGEP "H" understood (bytes `0x88 0x00`).
    fn default() -> QueryFlags {
        QueryFlags(Self::MARK | Self::GGEP_H)
    }
}

impl fmt::Debug for QueryFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryFlags({:#06x})", self.0)
    }
}

/// A search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Speed/flags field.
    pub flags: QueryFlags,
    /// Keywords, at most [`MAX_CRITERIA`] bytes; invalid UTF-8 is replaced.
    pub criteria: String,
    /// Content asked for by hash (HUGE URNs and GGEP "H").
    pub urns: Vec<Urn>,
    /// Other GGEP extensions.
    pub ggep: Ggep,
    /// The payload it arrived with, written back when it is relayed.
    pub original: Original,
}

impl Query {
    /// A query for `criteria` with default flags and nothing else, as tests build them.
    #[cfg(test)]
    pub(crate) fn words(criteria: &str) -> Query {
        Query {
            flags: QueryFlags::default(),
            criteria: criteria.into(),
            urns: vec![],
            ggep: Default::default(),
            original: Default::default(),
        }
    }

    fn decode(payload: &[u8]) -> Result<Query, WireError> {
        let mut r = Reader::new(payload);
        let flags = QueryFlags::from_wire(r.array("query flags")?);
        let criteria = text(r.nul_terminated(MAX_CRITERIA, "query criteria")?, MAX_CRITERIA, "query criteria")?;
        let (mut ext, _) = parse_extensions(r.rest(), Terminator::End)?;
        ext.absorb_hashes()?;
        Ok(Query { flags, criteria, urns: ext.urns, ggep: ext.ggep, original: Original::of(payload) })
    }

    fn write<O: Out>(&self, out: &mut O) {
        if let Some(bytes) = self.original.bytes() {
            out.put(bytes);
            return;
        }
        out.put(&self.flags.to_wire());
        out.put(until_nul(&self.criteria));
        out.put_u8(0);
        let ggep: Vec<&GgepExtension> = self.ggep.extensions.iter().filter(|e| e.id != GgepId::HASH).collect();
        if write_extensions(out, &self.urns, &ggep) {
            out.put_u8(0);
        }
    }
}

/// Search results from one servent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryHit {
    /// Port to download from.
    pub port: u16,
    /// IPv4 address to download from.
    pub ip: Ipv4Addr,
    /// Upload speed in kb/s.
    pub speed: u32,
    /// The matching files; at most [`MAX_RESULTS`] are sent.
    pub results: Vec<QueryResult>,
    /// Vendor code, flags and GGEP ("EQHD"), when present.
    pub trailer: Option<Trailer>,
    /// The responding servent: the key that routes Pushes to it.
    pub servent_guid: Guid,
    /// The payload it arrived with, written back when it is relayed.
    pub original: Original,
}

/// The payload bytes a Query or QueryHit arrived with; none for one we build.
///
/// Relaying writes them back instead of encoding the fields, so that what
/// we do not keep or understand passes untouched. They are the fields'
/// own source, so they take no part in comparisons; and since changing a
/// field of a received message does not change them, a message we alter
/// is built anew (or given `Original::default()`).
#[derive(Clone, Default)]
pub struct Original(Option<Arc<[u8]>>);

impl Original {
    /// The bytes of a payload just decoded.
    fn of(payload: &[u8]) -> Original {
        Original(Some(payload.into()))
    }

    /// The bytes it arrived with, if it arrived.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

impl PartialEq for Original {
    fn eq(&self, _: &Original) -> bool {
        true
    }
}

impl Eq for Original {}

impl fmt::Debug for Original {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(bytes) => write!(f, "Original({} bytes)", bytes.len()),
            None => f.write_str("Original(none)"),
        }
    }
}

/// One matching file in a QueryHit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryResult {
    /// The file's index, used in `/get/<index>/<name>` and Pushes.
    pub index: u32,
    /// The size in bytes; sizes of 4 GiB and more travel in GGEP "LF".
    pub size: u64,
    /// The file name, at most [`MAX_NAME`] bytes; invalid UTF-8 is replaced.
    pub name: String,
    /// Content hashes (HUGE URNs and GGEP "H").
    pub urns: Vec<Urn>,
    /// Other GGEP extensions (e.g. "ALT", our signature).
    pub ggep: Ggep,
}

/// The QueryHit trailer ("extended QueryHit descriptor").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// The responding servent's vendor code, e.g. `GTKG`, `LIME`, [`OUR_VENDOR`].
    pub vendor: [u8; 4],
    /// The open-data flags.
    pub flags: TrailerFlags,
    /// GGEP extensions of the private area (e.g. "BH", "PUSH", "GTKGV").
    pub ggep: Ggep,
}

impl Trailer {
    /// A trailer with our vendor code.
    pub fn ours(flags: TrailerFlags, ggep: Ggep) -> Trailer {
        Trailer { vendor: OUR_VENDOR, flags, ggep }
    }
}

/// The QueryHit trailer flags; `None` is "not stated".
///
/// They travel in two open-data bytes, BearShare's layout as LimeWire's
/// `QueryReply` and gtk-gnutella's `qhit.c` write it: for busy, uploaded,
/// speed and GGEP the first byte says which flags are meaningful and the
/// second holds their values; for push it is the other way round.
/// Whether GGEP is present follows from [`Trailer::ggep`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrailerFlags {
    /// Firewalled: download with a Push (bit 0x01).
    pub push: Option<bool>,
    /// All upload slots taken (bit 0x04).
    pub busy: Option<bool>,
    /// Has uploaded at least one file (bit 0x08).
    pub uploaded: Option<bool>,
    /// The speed is measured, not configured (bit 0x10).
    pub speed_measured: Option<bool>,
}

/// A firewalled servent is asked to connect to `ip:port` and upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The servent that should connect out (its QueryHit's `servent_guid`).
    pub servent_guid: Guid,
    /// The file wanted.
    pub index: u32,
    /// Where to connect.
    pub ip: Ipv4Addr,
    /// Where to connect.
    pub port: u16,
    /// GGEP extensions (e.g. "TLS").
    pub ggep: Ggep,
}

impl Push {
    fn decode(payload: &[u8]) -> Result<Push, WireError> {
        if payload.len() < PUSH_LEN {
            return Err(WireError::Truncated { what: "push" });
        }
        let mut r = Reader::new(payload);
        Ok(Push {
            servent_guid: r.guid("push servent GUID")?,
            index: r.u32_le("push index")?,
            ip: r.ipv4("push IP")?,
            port: r.u16_le("push port")?,
            ggep: parse_extensions(r.rest(), Terminator::End)?.0.ggep,
        })
    }

    fn write<O: Out>(&self, out: &mut O) {
        out.put(&self.servent_guid.0);
        out.put(&self.index.to_le_bytes());
        out.put(&self.ip.octets());
        out.put(&self.port.to_le_bytes());
        self.ggep.write(out, Style::Raw);
    }
}

/// Where encoders write: a buffer, or a counter when only the length matters.
trait Out {
    fn put(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, byte: u8) {
        self.put(&[byte]);
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts bytes instead of writing them.
struct Count(usize);

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// A bounds-checked cursor over received bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let (taken, rest) = self.bytes.split_at_checked(n).ok_or(WireError::Truncated { what })?;
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        self.take(N, what)?.try_into().map_err(|_| WireError::Truncated { what })
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16_le(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32_le(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn ipv4(&mut self, what: &'static str) -> Result<Ipv4Addr, WireError> {
        self.array::<4>(what).map(Ipv4Addr::from)
    }

    fn guid(&mut self, what: &'static str) -> Result<Guid, WireError> {
        self.array(what).map(Guid)
    }

    /// The bytes up to the next NUL, which is consumed too.
    fn nul_terminated(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.bytes.iter().position(|&b| b == 0).ok_or(WireError::Truncated { what })?;
        if len > max {
            return Err(WireError::TooLong { what, limit: max });
        }
        let text = self.take(len, what)?;
        self.take(1, what)?;
        Ok(text)
    }

    fn skip(&mut self, n: usize) {
        self.bytes = self.bytes.get(n..).unwrap_or(&[]);
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// What ends an extension area.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Terminator {
    /// A NUL (QueryHit results).
    Nul,
    /// The end of the payload; NUL bytes are separators (Query, Ping, Pong, Push).
    End,
}

/// What an extension area holds.
#[derive(Default)]
struct Extensions {
    urns: Vec<Urn>,
    ggep: Ggep,
}

impl Extensions {
    fn add_urn(&mut self, urn: Urn) -> Result<(), WireError> {
        if self.urns.contains(&urn) {
            return Ok(());
        }
        if self.urns.len() == MAX_URNS {
            return Err(WireError::TooMany { what: "URNs", limit: MAX_URNS });
        }
        self.urns.push(urn);
        Ok(())
    }

    /// Moves GGEP "H" hashes into `urns`: 0x01 + SHA-1, or 0x02 + SHA-1 + Tiger
    /// (bitprint, whose Tiger tree root goes to GGEP "TT" unless one is
    /// there). Other kinds are dropped.
    fn absorb_hashes(&mut self) -> Result<(), WireError> {
        while let Some(hash) = self.ggep.remove(GgepId::HASH) {
            if let [kind @ (0x01 | 0x02), rest @ ..] = hash.data.as_slice() {
                if let Some(sha1) = rest.get(..20).and_then(|d| <[u8; 20]>::try_from(d).ok()) {
                    self.add_urn(Urn::Sha1(sha1))?;
                }
                let tth = rest.get(20..44).filter(|_| *kind == 0x02);
                if let Some(tth) = tth.filter(|_| self.ggep.get(GgepId::TIGER_TREE).is_none()) {
                    self.ggep.insert(GgepId::TIGER_TREE, tth.to_vec());
                }
            }
        }
        Ok(())
    }

    /// Takes GGEP "LF" out: a size of 1 to 8 bytes, little-endian.
    fn take_large_size(&mut self) -> Option<u64> {
        let mut size = None;
        while let Some(lf) = self.ggep.remove(GgepId::LARGE_FILE) {
            if (1..=8).contains(&lf.data.len()) {
                let mut bytes = [0u8; 8];
                bytes.iter_mut().zip(&lf.data).for_each(|(b, d)| *b = *d);
                size = Some(u64::from_le_bytes(bytes));
            }
        }
        size
    }
}

/// Parses an extension area: HUGE URNs, GGEP blocks, XML and unknown tokens,
/// separated by 0x1C (and NUL when `end` is [`Terminator::End`]), following
/// the GGEP spec's "peaceful co-existence" algorithm. Returns what was found
/// and how many bytes were used, terminator included.
fn parse_extensions(bytes: &[u8], end: Terminator) -> Result<(Extensions, usize), WireError> {
    let mut ext = Extensions::default();
    let mut pos = 0;
    loop {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let Some(&first) = rest.first() else { break };
        match first {
            0 if end == Terminator::Nul => return Ok((ext, pos + 1)),
            0 | HUGE_SEPARATOR => pos += 1,
            GGEP_MAGIC => pos += decode_block_into(rest, &mut ext.ggep)?,
            _ if rest.get(..4).is_some_and(|start| start.eq_ignore_ascii_case(b"urn:")) => {
                // Base32 has no 0xC3, so a GGEP block may follow a URN unseparated.
                let len = token_len(rest, &[0, HUGE_SEPARATOR, GGEP_MAGIC]);
                let text = rest.get(..len).and_then(|t| std::str::from_utf8(t).ok()).unwrap_or("");
                // A bare "urn:" asks for URNs in the hits (we always send them);
                // URN kinds we do not know are skipped.
                if let Ok(urn) = text.parse::<Urn>() {
                    ext.add_urn(urn)?;
                }
                pos += len;
            }
            // XML and legacy text run to the next separator, whatever bytes they hold.
            _ => pos += token_len(rest, &[0, HUGE_SEPARATOR]),
        }
    }
    match end {
        Terminator::Nul => Err(WireError::Truncated { what: "result extensions" }),
        Terminator::End => Ok((ext, pos)),
    }
}

/// Length of the token at the start of `bytes`, up to one of `stops` (at least 1).
fn token_len(bytes: &[u8], stops: &[u8]) -> usize {
    bytes.iter().skip(1).position(|b| stops.contains(b)).map_or(bytes.len(), |at| at + 1)
}

/// Writes URNs as HUGE text then a GGEP block, separated by 0x1C; returns whether anything was written.
fn write_extensions<O: Out>(out: &mut O, urns: &[Urn], ggep: &[&GgepExtension]) -> bool {
    for (i, urn) in urns.iter().enumerate() {
        if i > 0 {
            out.put_u8(HUGE_SEPARATOR);
        }
        out.put(urn.to_string().as_bytes());
    }
    if !ggep.is_empty() {
        if !urns.is_empty() {
            out.put_u8(HUGE_SEPARATOR);
        }
        ggep::write_block(out, ggep, Style::NulFree);
    }
    !urns.is_empty() || !ggep.is_empty()
}

/// Received text as a `String`: invalid UTF-8 is replaced, and the limit
/// holds for the result too, so that a forwarded message stays acceptable.
fn text(raw: &[u8], max: usize, what: &'static str) -> Result<String, WireError> {
    let text = String::from_utf8_lossy(raw).into_owned();
    if text.len() > max {
        return Err(WireError::TooLong { what, limit: max });
    }
    Ok(text)
}

/// The bytes of `text` before its first NUL: a NUL would end the field early on the wire.
fn until_nul(text: &str) -> &[u8] {
    text.as_bytes().split(|&b| b == 0).next().unwrap_or(&[])
}
