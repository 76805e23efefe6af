//! The Gnutella 0.6 connection handshake, as a state machine over lines.
//!
//! Before any binary message flows, two servents agree on a Gnutella link in
//! three steps of HTTP-like text. Each step is a first line, header lines
//! `Name: value`, and an empty line; every line ends with CRLF:
//!
//! ```text
//! initiator                              responder
//! GNUTELLA CONNECT/0.6                                      (step 1)
//! User-Agent: Seblinux/0.1.0
//! X-Ultrapeer: True
//! Accept-Encoding: deflate
//!
//!                                        GNUTELLA/0.6 200 OK (step 2)
//!                                        User-Agent: gtk-gnutella/1.2.2
//!                                        Accept-Encoding: deflate
//!                                        Content-Encoding: deflate
//!
//! GNUTELLA/0.6 200 OK                                       (step 3)
//! Content-Encoding: deflate
//!
//! [binary messages, both ways]
//! ```
//!
//! A responder that does not want the link answers step 1 with another code,
//! `GNUTELLA/0.6 503 Full` here, often with `X-Try-Ultrapeers` (addresses
//! worth trying instead), and closes. An initiator may likewise refuse in step
//! 3 with a code other than 200. Header names are case-insensitive; a line
//! that starts with a space or a tab continues the previous header.
//!
//! Compression is negotiated per direction: a side that can inflate says
//! `Accept-Encoding: deflate`; the other side, if it chooses to compress,
//! answers `Content-Encoding: deflate` (the responder in step 2, the initiator
//! in step 3). Each direction's deflate stream starts right after the
//! sender's last handshake header block: the initiator compresses after step
//! 3, the responder after step 2 (it sends nothing until step 3 arrives).
//!
//! [`Handshake`] does no I/O. The node writes the bytes it is given and feeds
//! it one line at a time, without its CRLF; it gets back a [`Step`]: more
//! lines needed, bytes to write, or the end (an established link with what
//! was learnt of the peer in [`PeerInfo`], or a refusal). Bytes that follow
//! the last empty line of the peer's final block already belong to the binary
//! (possibly compressed) stream.
//!
//! # Getting along with gtk-gnutella
//! What gtk-gnutella 1.2 (`src/core/nodes.c`, `src/lib/header.c`) does, and
//! what we do about it:
//! - It refuses peers without `User-Agent` (403 "No vendor string supplied")
//!   and treats a peer without `X-Ultrapeer` as a legacy "normal" node, which
//!   an ultrapeer refuses: we always send both, `X-Ultrapeer: True`.
//! - As an ultrapeer it refuses uncompressed ultrapeers once it has enough of
//!   them (403 "Gnet connection not compressed"), and it refuses leaves that
//!   cannot inflate: with `deflate` on we always offer `Accept-Encoding`.
//!   It BYEs a peer that compresses when it had not offered to inflate; we
//!   only send `Content-Encoding: deflate` to a peer that offered, and we
//!   refuse a peer that compresses unasked ([`HandshakeError::UnexpectedEncoding`]).
//! - As a leaf it only accepts ultrapeers with `X-Degree` of at least 16 and
//!   `X-Dynamic-Querying` (403 "High Outdegree and Dynamic Querying
//!   Required"). As an ultrapeer we send both, with `X-Query-Routing` and
//!   `X-Ultrapeer-Query-Routing`; roles, `X-Ultrapeer-Needed` and the other
//!   capability headers are in [`roles`]. Without `X-Degree` and
//!   `X-Max-TTL` it assumes 8 and 7.
//! - It folds long `X-Try-Ultrapeers` lines with CRLF and a tab, and joins
//!   repeated headers with ", ": we fold continuations into one space and read
//!   every occurrence of the address lists.
//! - It takes our address from `Node`, `Listen-IP` or `X-My-Address` and only
//!   trusts ports of 1024 and above; it reports what it sees of us in
//!   `Remote-IP`, which we return as [`PeerInfo::remote_ip`].
//! - As a responder it reads nothing but headers until step 3: anything we
//!   sent early would be "Extra HELLO data". As an initiator it sends nothing
//!   until it has our step 2. It closes 0.4 connects silently; so do we.
//! - It sends its Messages Supported only when our handshake carries
//!   `Vendor-Message`, which we send ([`roles`]).

mod roles;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use roles::{rfc822, Admission, Role, MODERN_DEGREE};

use crate::wire::Guid;

/// Longest handshake line accepted, in bytes, counting its CRLF.
pub const MAX_LINE: usize = 1024;
/// Most lines in one header block, continuations included.
pub const MAX_HEADERS: usize = 64;
/// Time allowed for the whole exchange; the node enforces it.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most addresses kept from a peer's `X-Try-Ultrapeers` and `X-Try` headers.
pub const MAX_TRY_RECEIVED: usize = 20;
/// Most addresses we send in `X-Try-Ultrapeers`.
pub const MAX_TRY_SENT: usize = 10;
/// Port assumed for an address listed without one, as gtk-gnutella does.
const DEFAULT_PORT: u16 = 6346;
/// Bytes of an offending line quoted in an error.
const QUOTED_BYTES: usize = 64;

const CONNECT_PREFIX: &[u8] = b"GNUTELLA CONNECT/";
const STATUS_PREFIX: &[u8] = b"GNUTELLA/";
const HTTP_METHODS: [&[u8]; 9] =
    [b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS", b"DELETE", b"TRACE", b"CONNECT", b"PATCH"];
/// Headers that may carry the peer's listening address, in order of trust.
const LISTEN_HEADERS: [&str; 5] = ["Listen-IP", "X-Listen-IP", "Node", "X-Node", "X-My-Address"];

/// What we say about ourselves in a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Sent as `User-Agent`, e.g. "Seblinux/0.1.0".
    pub user_agent: String,
    /// Our listening address, sent as `Listen-IP` (an IPv4 address peers can reach).
    pub listen: Option<SocketAddr>,
    /// Highest TTL we accept, sent as `X-Max-TTL`.
    pub max_ttl: u8,
    /// Whether we offer to inflate and agree to deflate (`Accept-Encoding: deflate`).
    pub deflate: bool,
    /// The part we play now.
    pub role: Role,
    /// Ultrapeer links we keep, sent as `X-Degree` when an ultrapeer.
    pub degree: u32,
    /// Whether an ultrapeer's `X-Ultrapeer-Needed: False` makes us its leaf.
    pub may_become_leaf: bool,
    /// Whether, as an ultrapeer, we exchange last-hop route tables with
    /// ultrapeers (`X-Ultrapeer-Query-Routing`), so that a query on its
    /// last hop goes only where a table matches: on, as deployed; off in
    /// a flat test network whose floods go to the end of their TTL.
    pub ultrapeer_query_routing: bool,
    /// Our servent GUID, sent as `GUID`.
    pub guid: Option<Guid>,
    /// When we started, in seconds since the Unix epoch, sent as `X-Live-Since`.
    pub live_since: Option<u64>,
}

/// Which protocol a connection on the shared listening port speaks, by its first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstLine {
    /// `GNUTELLA CONNECT/<version>`: hand it to [`Handshake::accept`], first line included.
    GnutellaConnect,
    /// An HTTP request line (`GET `, `HEAD `, …): for the transfer side.
    Http,
    /// Anything else.
    Unknown,
}

/// Tells apart the protocols that share the listening port, from the first line (without CRLF).
pub fn classify_first_line(line: &[u8]) -> FirstLine {
    if line.starts_with(CONNECT_PREFIX) {
        FirstLine::GnutellaConnect
    } else if HTTP_METHODS
        .iter()
        .any(|method| line.strip_prefix(*method).is_some_and(|rest| rest.first() == Some(&b' ')))
    {
        FirstLine::Http
    } else {
        FirstLine::Unknown
    }
}

/// What the node does after feeding a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Feed the next line.
    Continue,
    /// Write these bytes, then go on feeding lines.
    Write(Vec<u8>),
    /// Write these bytes (maybe none); the link is up and binary messages follow.
    Established {
        /// Our last handshake bytes.
        write: Vec<u8>,
        /// What the peer told us.
        peer: PeerInfo,
    },
    /// Write these bytes (maybe none), then close.
    Refused {
        /// Our refusal, if the refusal is ours.
        write: Vec<u8>,
        /// The status code, e.g. 503.
        code: u16,
        /// The status text, e.g. "Full".
        reason: String,
        /// Addresses the peer suggested, for the host cache.
        try_ultrapeers: Vec<SocketAddr>,
    },
}

/// What the peer said about itself and about us during the handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
    /// Whether it acts as an ultrapeer (`X-Ultrapeer: True`).
    pub ultrapeer: bool,
    /// Its listening address (`Listen-IP`, `Node` or `X-My-Address`), IPv4 only.
    pub listen: Option<SocketAddr>,
    /// Our address as it sees it (`Remote-IP`).
    pub remote_ip: Option<IpAddr>,
    /// Addresses from its `X-Try-Ultrapeers` and `X-Try`, at most [`MAX_TRY_RECEIVED`].
    pub try_ultrapeers: Vec<SocketAddr>,
    /// The peer compresses what it sends us: inflate what follows the handshake.
    pub deflate_in: bool,
    /// We compress what we send it.
    pub deflate_out: bool,
    /// Every header it sent, in order, continuations folded in.
    pub headers: Vec<(String, String)>,
    /// We answered its `X-Ultrapeer-Needed: False` by becoming its leaf:
    /// the node now plays a leaf and drops its other links but to ultrapeers.
    pub demoted: bool,
}

impl PeerInfo {
    /// The value of header `name` (case-insensitive); the last one when repeated,
    /// so that a responder sees step 3 override step 1.
    pub fn header(&self, name: &str) -> Option<&str> {
        last_value(&self.headers, name)
    }

    /// Everything but the compression flags, which depend on the step.
    fn from_headers(headers: Vec<(String, String)>) -> PeerInfo {
        let ultrapeer = is_ultrapeer(&headers);
        let listen = LISTEN_HEADERS.iter().find_map(|name| {
            let mut found = Vec::new();
            values(&headers, name).for_each(|value| parse_addresses(value, &mut found, 1));
            found.pop()
        });
        PeerInfo {
            user_agent: last_value(&headers, "User-Agent").map(str::to_owned),
            ultrapeer,
            listen,
            remote_ip: last_value(&headers, "Remote-IP")
                .or_else(|| last_value(&headers, "X-Remote-IP"))
                .and_then(parse_ip),
            try_ultrapeers: try_ultrapeers(&headers),
            deflate_in: false,
            deflate_out: false,
            headers,
            demoted: false,
        }
    }
}

/// Whether headers come from an ultrapeer.
fn is_ultrapeer(headers: &[(String, String)]) -> bool {
    match last_value(headers, "X-Ultrapeer") {
        Some(value) => value.eq_ignore_ascii_case("true"),
        // BearShare sends only X-Ultrapeer-Needed, and only from ultrapeers.
        None => last_value(headers, "X-Ultrapeer-Needed").is_some(),
    }
}

/// Why a handshake failed; the node closes the connection without writing anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A line longer than [`MAX_LINE`].
    #[error("handshake line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A header block of more than [`MAX_HEADERS`] lines.
    #[error("more than {MAX_HEADERS} lines in a handshake header block")]
    TooManyHeaders,
    /// The first line is not `GNUTELLA CONNECT/<version>` (quoted, truncated, escaped).
    #[error("not a Gnutella handshake: \"{0}\"")]
    NotGnutella(String),
    /// A connect below 0.6, e.g. `GNUTELLA CONNECT/0.4`.
    #[error("Gnutella {major}.{minor} is not spoken here (0.6 only)")]
    UnsupportedVersion {
        /// Major version the peer asked for.
        major: u32,
        /// Minor version the peer asked for.
        minor: u32,
    },
    /// A status line that is not `GNUTELLA/<version> <code> <reason>` (quoted, truncated, escaped).
    #[error("malformed handshake status line: \"{0}\"")]
    BadStatus(String),
    /// The peer compresses with something we did not offer to inflate (its `Content-Encoding`).
    #[error("peer sends Content-Encoding \"{0}\", which we did not offer to accept")]
    UnexpectedEncoding(String),
    /// A line fed after the handshake ended.
    #[error("handshake already finished")]
    Finished,
}

/// One side of a handshake: feed it the peer's lines, write what it returns.
#[derive(Debug)]
pub struct Handshake {
    config: Config,
    remote: SocketAddr,
    state: State,
}

/// Where the exchange stands. A side reads a first line (CONNECT or status)
/// then a header block; `Reading…` states hold what came so far.
#[derive(Debug)]
enum State {
    /// Initiator, step 1 sent: waiting for the status line of step 2.
    AwaitingResponse,
    /// Initiator: reading the headers of step 2.
    ReadingResponse(Status, HeaderBlock),
    /// Responder: waiting for `GNUTELLA CONNECT/0.6`.
    AwaitingConnect(Welcome),
    /// Responder: reading the headers of step 1.
    ReadingConnect(Welcome, HeaderBlock),
    /// Responder, step 2 sent: waiting for the status line of step 3.
    AwaitingAck(Welcomed),
    /// Responder: reading the headers of step 3.
    ReadingAck(Welcomed, Status, HeaderBlock),
    /// Established, refused or failed.
    Finished,
}

/// What the responder will answer step 1 with.
#[derive(Debug)]
struct Welcome {
    admission: Admission,
    try_ultrapeers: Vec<SocketAddr>,
}

/// What the responder keeps from step 1 and 2 until step 3 arrives.
#[derive(Debug)]
struct Welcomed {
    connect: Vec<(String, String)>,
    deflate_out: bool,
}

impl Handshake {
    /// Initiator: returns the machine and the bytes of step 1 to write.
    pub fn connect(config: &Config, remote: SocketAddr) -> (Handshake, Vec<u8>) {
        let mut request = String::from("GNUTELLA CONNECT/0.6\r\n");
        write_own_headers(&mut request, config, remote);
        request.push_str("\r\n");
        let machine = Handshake { config: config.clone(), remote, state: State::AwaitingResponse };
        (machine, request.into_bytes())
    }

    /// Responder: nothing to write until the initiator's headers arrive.
    ///
    /// `try_ultrapeers` goes with a 200 answer; a 503 sends those of [`Admission::Full`].
    pub fn accept(
        config: &Config,
        remote: SocketAddr,
        admission: Admission,
        try_ultrapeers: Vec<SocketAddr>,
    ) -> Handshake {
        Handshake {
            config: config.clone(),
            remote,
            state: State::AwaitingConnect(Welcome { admission, try_ultrapeers }),
        }
    }

    /// Feeds one line, without its CRLF (a lone trailing CR is dropped too).
    ///
    /// An error ends the handshake: close the connection.
    pub fn on_line(&mut self, line: &[u8]) -> Result<Step, HandshakeError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let state = std::mem::replace(&mut self.state, State::Finished);
        if line.len() + 2 > MAX_LINE {
            return Err(HandshakeError::LineTooLong);
        }
        let (next, step) = self.advance(state, line)?;
        self.state = next;
        Ok(step)
    }

    fn advance(&self, state: State, line: &[u8]) -> Result<(State, Step), HandshakeError> {
        use State::*;
        let more = Step::Continue;
        Ok(match state {
            AwaitingResponse => (ReadingResponse(parse_status(line)?, HeaderBlock::default()), more),
            ReadingResponse(status, mut block) => match block.push(line)? {
                false => (ReadingResponse(status, block), more),
                true => (Finished, self.finish_response(status, block.headers)?),
            },
            AwaitingConnect(welcome) => {
                check_connect_line(line)?;
                (ReadingConnect(welcome, HeaderBlock::default()), more)
            }
            ReadingConnect(welcome, mut block) => match block.push(line)? {
                false => (ReadingConnect(welcome, block), more),
                true => self.respond(welcome, block.headers),
            },
            AwaitingAck(welcomed) => (ReadingAck(welcomed, parse_status(line)?, HeaderBlock::default()), more),
            ReadingAck(welcomed, status, mut block) => match block.push(line)? {
                false => (ReadingAck(welcomed, status, block), more),
                true => (Finished, self.finish_ack(welcomed, status, block.headers)?),
            },
            Finished => return Err(HandshakeError::Finished),
        })
    }

    /// Initiator: step 2 is complete; answer it with step 3 or report the refusal.
    fn finish_response(&self, status: Status, headers: Vec<(String, String)>) -> Result<Step, HandshakeError> {
        if status.code != 200 {
            return Ok(refused(Vec::new(), status, &headers));
        }
        let demoted = match roles::reply(&self.config, &headers, is_ultrapeer(&headers)) {
            roles::Reply::Refuse(code, reason) => {
                let write = format!("GNUTELLA/0.6 {code} {reason}\r\n\r\n").into_bytes();
                return Ok(refused(write, Status { code, reason: reason.to_owned() }, &headers));
            }
            roles::Reply::BecomeLeaf => true,
            roles::Reply::Accept => false,
        };
        let deflate_in = incoming_deflate(&headers, self.config.deflate)?;
        let deflate_out = self.config.deflate && offers_deflate(&headers);
        let mut ack = String::from("GNUTELLA/0.6 200 OK\r\n");
        if demoted {
            roles::write_role_header(&mut ack, Role::Leaf);
        }
        if deflate_out {
            ack.push_str("Content-Encoding: deflate\r\n");
        }
        ack.push_str("\r\n");
        let peer = PeerInfo { deflate_in, deflate_out, demoted, ..PeerInfo::from_headers(headers) };
        Ok(Step::Established { write: ack.into_bytes(), peer })
    }

    /// Responder: step 1 is complete; answer with step 2, or with 503 when full.
    fn respond(&self, welcome: Welcome, connect: Vec<(String, String)>) -> (State, Step) {
        let mut response = String::new();
        match roles::answer(self.config.role, welcome.admission, is_ultrapeer(&connect)) {
            roles::Answer::Refuse(code, reason, try_ultrapeers) => {
                response.push_str(&format!("GNUTELLA/0.6 {code} {reason}\r\n"));
                push_header(&mut response, "User-Agent", &self.config.user_agent);
                let remote_ip = canonical(self.remote.ip()).to_string();
                push_header(&mut response, "Remote-IP", &remote_ip);
                push_try_ultrapeers(&mut response, &try_ultrapeers);
                response.push_str("\r\n");
                let status = Status { code, reason: reason.to_owned() };
                (State::Finished, refused(response.into_bytes(), status, &connect))
            }
            roles::Answer::Welcome { leaf_wanted } => {
                let deflate_out = self.config.deflate && offers_deflate(&connect);
                response.push_str("GNUTELLA/0.6 200 OK\r\n");
                write_own_headers(&mut response, &self.config, self.remote);
                if leaf_wanted {
                    push_header(&mut response, "X-Ultrapeer-Needed", "False");
                }
                if deflate_out {
                    response.push_str("Content-Encoding: deflate\r\n");
                }
                push_try_ultrapeers(&mut response, &welcome.try_ultrapeers);
                response.push_str("\r\n");
                let welcomed = Welcomed { connect, deflate_out };
                (State::AwaitingAck(welcomed), Step::Write(response.into_bytes()))
            }
        }
    }

    /// Responder: step 3 is complete; the link is up unless the initiator refused.
    fn finish_ack(
        &self,
        welcomed: Welcomed,
        status: Status,
        ack: Vec<(String, String)>,
    ) -> Result<Step, HandshakeError> {
        let mut headers = welcomed.connect;
        if status.code != 200 {
            headers.extend(ack);
            return Ok(refused(Vec::new(), status, &headers));
        }
        let deflate_in = incoming_deflate(&ack, self.config.deflate)?;
        headers.extend(ack);
        let peer = PeerInfo { deflate_in, deflate_out: welcomed.deflate_out, ..PeerInfo::from_headers(headers) };
        Ok(Step::Established { write: Vec::new(), peer })
    }
}

/// A refusal carrying what we write and the peer's suggested addresses.
fn refused(write: Vec<u8>, status: Status, headers: &[(String, String)]) -> Step {
    Step::Refused { write, code: status.code, reason: status.reason, try_ultrapeers: try_ultrapeers(headers) }
}

/// The headers both sides send about themselves, in the order we send them.
fn write_own_headers(out: &mut String, config: &Config, remote: SocketAddr) {
    push_header(out, "User-Agent", &config.user_agent);
    roles::write_role_header(out, config.role);
    if let Some(listen) = config.listen {
        push_header(out, "Listen-IP", &listen.to_string());
    }
    push_header(out, "Remote-IP", &canonical(remote.ip()).to_string());
    push_header(out, "GGEP", "0.5");
    push_header(out, "Pong-Caching", "0.1");
    roles::write_capability_headers(out, config);
    if config.deflate {
        push_header(out, "Accept-Encoding", "deflate");
    }
}

/// Appends `name: value` and CRLF; control characters in the value become spaces
/// so that a configured string can never end the line early.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.extend(value.chars().map(|c| if c.is_control() { ' ' } else { c }));
    out.push_str("\r\n");
}

/// `X-Try-Ultrapeers` with the IPv4 addresses of `addresses`, if there are any.
fn push_try_ultrapeers(out: &mut String, addresses: &[SocketAddr]) {
    let listed: Vec<String> = addresses
        .iter()
        .filter(|address| address.is_ipv4() && address.port() != 0)
        .take(MAX_TRY_SENT)
        .map(SocketAddr::to_string)
        .collect();
    if !listed.is_empty() {
        push_header(out, "X-Try-Ultrapeers", &listed.join(", "));
    }
}

/// An IPv4 address seen through an IPv6 socket, written as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The lines of one header block, folded into `(name, value)` pairs.
#[derive(Debug, Default)]
struct HeaderBlock {
    headers: Vec<(String, String)>,
    lines: usize,
    /// The last header line was malformed: its continuations are dropped with it.
    skipping: bool,
}

impl HeaderBlock {
    /// Adds one line; returns whether it was the empty line that ends the block.
    ///
    /// Malformed lines are skipped, as gtk-gnutella does, but still count.
    fn push(&mut self, line: &[u8]) -> Result<bool, HandshakeError> {
        if line.is_empty() {
            return Ok(true);
        }
        self.lines += 1;
        if self.lines > MAX_HEADERS {
            return Err(HandshakeError::TooManyHeaders);
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            let more = text.trim();
            match self.headers.last_mut() {
                Some((_, value)) if !self.skipping && !more.is_empty() => {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(more);
                }
                _ => {}
            }
            return Ok(false);
        }
        match text.split_once(':') {
            Some((name, value)) if is_header_name(name.trim_end()) => {
                self.headers.push((name.trim_end().to_owned(), value.trim().to_owned()));
                self.skipping = false;
            }
            _ => self.skipping = true,
        }
        Ok(false)
    }
}

/// A field name: visible ASCII, no spaces.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Every value of header `name`, case-insensitively, in order.
fn values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(field, _)| field.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// The last value of header `name`, case-insensitively.
fn last_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().rev().find(|(field, _)| field.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// The peer's suggestions from all its `X-Try-Ultrapeers` then `X-Try` headers.
fn try_ultrapeers(headers: &[(String, String)]) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for name in ["X-Try-Ultrapeers", "X-Try"] {
        values(headers, name).for_each(|value| parse_addresses(value, &mut found, MAX_TRY_RECEIVED));
    }
    found
}

/// Adds the IPv4 `ip[:port]` entries of a comma-separated list to `out`, up to
/// `limit` distinct ones. Junk entries are skipped; anything after an address
/// (gtk-gnutella allows it) is ignored; a missing port means 6346.
fn parse_addresses(list: &str, out: &mut Vec<SocketAddr>, limit: usize) {
    for entry in list.split(',') {
        if out.len() >= limit {
            return;
        }
        let Some(address) = entry.split_whitespace().next().and_then(parse_ipv4_address) else {
            continue;
        };
        if !out.contains(&address) {
            out.push(address);
        }
    }
}

fn parse_ipv4_address(token: &str) -> Option<SocketAddr> {
    let (ip, port) = match token.split_once(':') {
        Some((ip, port)) => (ip, port.parse::<u16>().ok()?),
        None => (token, DEFAULT_PORT),
    };
    let ip: Ipv4Addr = ip.parse().ok()?;
    let addr = SocketAddrV4::new(ip, port);
    crate::address::usable(addr).then_some(SocketAddr::V4(addr))
}

/// `Remote-IP` holds an address, sometimes with a port.
fn parse_ip(value: &str) -> Option<IpAddr> {
    let token = value.split_whitespace().next()?;
    token.parse::<IpAddr>().or_else(|_| token.parse::<SocketAddr>().map(|address| address.ip())).ok()
}

/// Whether a list such as `Accept-Encoding` names deflate.
fn names_deflate(list: &str) -> bool {
    list.split(',')
        .filter_map(|item| item.split(';').next())
        .any(|coding| coding.trim().eq_ignore_ascii_case("deflate"))
}

/// Whether the peer can inflate what we would compress.
fn offers_deflate(headers: &[(String, String)]) -> bool {
    values(headers, "Accept-Encoding").any(names_deflate)
}

/// Whether the peer compresses what it sends; an error if it compresses in a
/// way we did not offer to accept (`offered` is our `Accept-Encoding: deflate`).
fn incoming_deflate(headers: &[(String, String)], offered: bool) -> Result<bool, HandshakeError> {
    match last_value(headers, "Content-Encoding") {
        None => Ok(false),
        Some(coding) if coding.is_empty() || coding.eq_ignore_ascii_case("identity") => Ok(false),
        Some(coding) if offered && names_deflate(coding) => Ok(true),
        Some(coding) => Err(HandshakeError::UnexpectedEncoding(quote(coding.as_bytes()))),
    }
}

/// The code and text of a `GNUTELLA/0.6 200 OK` line.
#[derive(Debug)]
struct Status {
    code: u16,
    reason: String,
}

/// Reads `GNUTELLA/<major>.<minor> <code> [reason]`; any version is accepted.
fn parse_status(line: &[u8]) -> Result<Status, HandshakeError> {
    let bad = || HandshakeError::BadStatus(quote(line));
    let rest = line.strip_prefix(STATUS_PREFIX).ok_or_else(bad)?;
    let text = String::from_utf8_lossy(rest);
    let (version, rest) = text.split_once(' ').ok_or_else(bad)?;
    parse_version(version).ok_or_else(bad)?;
    let rest = rest.trim_start();
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code = code.parse().map_err(|_| bad())?;
    Ok(Status { code, reason: reason.trim().to_owned() })
}

/// Checks `GNUTELLA CONNECT/<major>.<minor>`: 0.6 and later versions are
/// welcome (answered at 0.6, as the handshake specification asks).
fn check_connect_line(line: &[u8]) -> Result<(), HandshakeError> {
    let not_gnutella = || HandshakeError::NotGnutella(quote(line));
    let version = line.strip_prefix(CONNECT_PREFIX).ok_or_else(not_gnutella)?;
    match parse_version(String::from_utf8_lossy(version).trim()) {
        Some((0, minor)) if minor < 6 => Err(HandshakeError::UnsupportedVersion { major: 0, minor }),
        Some(_) => Ok(()),
        None => Err(not_gnutella()),
    }
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    let number = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
    };
    Some((number(major)?, number(minor)?))
}

/// The start of an offending line, printable whatever its bytes.
fn quote(line: &[u8]) -> String {
    let shown = &line[..line.len().min(QUOTED_BYTES)];
    let mut quoted = shown.escape_ascii().to_string();
    if shown.len() < line.len() {
        quoted.push_str("...");
    }
    quoted
}

#[cfg(test)]
mod tests;
