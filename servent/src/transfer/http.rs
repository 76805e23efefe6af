//! The small part of HTTP/1.1 that Gnutella peers speak to each other.
//!
//! File transfers between servents are plain HTTP on the Gnutella port: a
//! downloader sends `GET /uri-res/N2R?urn:sha1:… HTTP/1.1` with a `Range`,
//! the uploader answers `206 Partial Content` and the bytes, and both keep
//! the connection for the next chunk. This module is the codec for both
//! sides: it reads request heads (for [`super::upload`]) and response heads
//! (for the downloader), writes both, and parses the `Range` and
//! `Content-Range` headers and percent-encoded targets.
//!
//! Everything a peer sends is bounded before it is buffered: a request
//! line longer than [`MAX_REQUEST_LINE`] is refused with `414`, more than
//! [`MAX_HEADER_LINES`] header lines or [`MAX_HEADER_BYTES`] of them with
//! `431`, anything else malformed with `400`. [`HttpError::status`] is the
//! answer a server sends before closing. There is no I/O here except the
//! reading helpers, which take any [`AsyncBufRead`], so tests feed them
//! byte slices.
//!
//! Bodies are not this module's business: the caller reads or writes
//! exactly `Content-Length` bytes itself. Chunked transfer coding is not
//! spoken: Gnutella servents always send a length.

use std::fmt;
use std::io;

use futures::{AsyncBufRead, AsyncBufReadExt};

/// Longest request (or status) line accepted, without its CRLF.
pub const MAX_REQUEST_LINE: usize = 2048;
/// Most header lines in one head.
pub const MAX_HEADER_LINES: usize = 64;
/// Most bytes of header lines in one head, CRLFs included.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why a head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The other side broke the protocol or one of the limits; a server
    /// answers with `status` and closes.
    #[error("{status} {reason}")]
    Malformed {
        /// The status code a server answers with: 400, 414, 431, 505.
        status: u16,
        /// What was wrong, for logs.
        reason: &'static str,
    },
    /// The connection failed or closed before the head was complete.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

impl HttpError {
    /// The status a server answers this error with, if an answer makes
    /// sense (none when the connection is gone).
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Malformed { status, .. } => Some(*status),
            HttpError::Io(_) => None,
        }
    }

    fn bad(reason: &'static str) -> HttpError {
        HttpError::Malformed { status: 400, reason }
    }
}

/// Header fields in the order received or inserted; names compare without
/// regard to case, as HTTP wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sets header `name` to `value`, replacing any values it had.
    pub fn insert(&mut self, name: &str, value: impl ToString) {
        self.remove(name);
        self.append(name, value);
    }

    /// Adds a value for header `name`, keeping those it had.
    pub fn append(&mut self, name: &str, value: impl ToString) {
        self.fields.push((name.to_string(), value.to_string()));
    }

    /// Removes every value of header `name`.
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Every `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether the comma-separated values of `name` include `token`
    /// (any case), as in `Connection: keep-alive, TE`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// `Content-Length`, if present; several different values, or one that
    /// is not a number, are malformed.
    pub fn content_length(&self) -> Result<Option<u64>, HttpError> {
        let mut length = None;
        for value in self.get_all("Content-Length").flat_map(|v| v.split(',')) {
            let parsed = parse_decimal(value.trim()).ok_or(HttpError::bad("bad Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HttpError::bad("conflicting Content-Length"));
            }
            length = Some(parsed);
        }
        Ok(length)
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for (name, value) in self.iter() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// A request head: `GET /target HTTP/1.1` and its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target as sent, still percent-encoded.
    pub target: String,
    /// `(1, 1)` for HTTP/1.1.
    pub version: (u8, u8),
    /// The header fields.
    pub headers: Headers,
}

impl Request {
    /// An HTTP/1.1 request with no headers yet.
    pub fn new(method: &str, target: &str) -> Request {
        Request { method: method.to_string(), target: target.to_string(), version: (1, 1), headers: Headers::new() }
    }

    /// Whether the client wants the connection kept after the answer:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }

    /// The head as bytes, ending with the empty line.
    pub fn encode(&self) -> Vec<u8> {
        let (major, minor) = self.version;
        let mut out = format!("{} {} HTTP/{major}.{minor}\r\n", self.method, self.target).into_bytes();
        self.headers.write_to(&mut out);
        out
    }
}

/// A response head: `HTTP/1.1 206 Partial Content` and its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// `(1, 1)` for HTTP/1.1.
    pub version: (u8, u8),
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
}

impl ResponseHead {
    /// An HTTP/1.1 response with the usual reason phrase and no headers yet.
    pub fn new(status: u16) -> ResponseHead {
        ResponseHead { version: (1, 1), status, reason: reason_phrase(status).to_string(), headers: Headers::new() }
    }

    /// Changes the status, and the reason phrase with it.
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
        self.reason = reason_phrase(status).to_string();
    }

    /// Whether the server keeps the connection after this answer (same
    /// rules as [`Request::keep_alive`]).
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }

    /// The head as bytes, ending with the empty line.
    pub fn encode(&self) -> Vec<u8> {
        let (major, minor) = self.version;
        let mut out = format!("HTTP/{major}.{minor} {} {}\r\n", self.status, self.reason).into_bytes();
        self.headers.write_to(&mut out);
        out
    }
}

fn keep_alive(version: (u8, u8), headers: &Headers) -> bool {
    if headers.has_token("Connection", "close") {
        return false;
    }
    version >= (1, 1) || headers.has_token("Connection", "keep-alive")
}

/// The usual reason phrase of the statuses this servent sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Reads one line ending in LF, without its CRLF, refusing (with
/// `InvalidData`) a line of more than `limit` bytes before buffering more
/// than that; `UnexpectedEof` if the connection closes first.
///
/// The one line reader of HTTP on the Gnutella port: the node reads a
/// connection's first line with it too, since an HTTP request line may be
/// longer than a handshake line.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, limit: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-line"));
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        // Room for the CR and LF, which are not part of the limit.
        if line.len() + taken > limit + 1 + usize::from(done) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("line longer than {limit} bytes")));
        }
        line.extend_from_slice(&available[..taken]);
        reader.consume_unpin(taken);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > limit {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("line longer than {limit} bytes")));
            }
            return Ok(line);
        }
    }
}

/// Reads the headers of a request whose request line `first_line` has
/// been read already (without its CRLF), up to the empty line.
pub async fn read_request_head<R: AsyncBufRead + Unpin>(
    first_line: Vec<u8>,
    reader: &mut R,
) -> Result<Request, HttpError> {
    if first_line.len() > MAX_REQUEST_LINE {
        return Err(HttpError::Malformed { status: 414, reason: "request line too long" });
    }
    let (method, target, version) = parse_request_line(&first_line)?;
    let headers = read_headers(reader).await?;
    Ok(Request { method, target, version, headers })
}

/// Reads a request line and its headers: the next request on a kept-alive
/// connection.
pub async fn read_request<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Request, HttpError> {
    let line = read_line(reader, MAX_REQUEST_LINE).await.map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => HttpError::Malformed { status: 414, reason: "request line too long" },
        _ => HttpError::Io(e),
    })?;
    read_request_head(line, reader).await
}

/// Reads a response's status line and headers, up to the empty line; the
/// body, if any, is left in `reader`.
pub async fn read_response_head<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<ResponseHead, HttpError> {
    let line = read_line(reader, MAX_REQUEST_LINE).await.map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => HttpError::bad("status line too long"),
        _ => HttpError::Io(e),
    })?;
    let (version, status, reason) = parse_status_line(&line)?;
    let headers = read_headers(reader).await?;
    Ok(ResponseHead { version, status, reason, headers })
}

/// Reads header lines up to the empty one, within the header limits.
/// Continuation lines (starting with a space or tab) extend the previous
/// value, as old Gnutella servents fold long alternate-location lists.
async fn read_headers<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Headers, HttpError> {
    let too_large = HttpError::Malformed { status: 431, reason: "header block too large" };
    let mut headers = Headers::new();
    let mut budget = MAX_HEADER_BYTES;
    for _ in 0..=MAX_HEADER_LINES {
        let line = read_line(reader, budget.saturating_sub(2)).await.map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => HttpError::Malformed { status: 431, reason: "header block too large" },
            _ => HttpError::Io(e),
        })?;
        budget = budget.saturating_sub(line.len() + 2);
        if line.is_empty() {
            return Ok(headers);
        }
        let line = std::str::from_utf8(&line).map_err(|_| HttpError::bad("header line is not UTF-8"))?;
        // Checked on the whole line, so that a folded continuation cannot
        // smuggle a CR or NUL into a value we may echo.
        if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(HttpError::bad("control character in a header line"));
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.fields.last_mut().ok_or(HttpError::bad("continuation before any header"))?;
            let more = line.trim();
            if !value.is_empty() && !more.is_empty() {
                value.push(' ');
            }
            value.push_str(more);
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::bad("header line without a colon"))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(HttpError::bad("bad header name"));
        }
        headers.append(name, value.trim());
    }
    Err(too_large)
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, (u8, u8)), HttpError> {
    let line = std::str::from_utf8(line).map_err(|_| HttpError::bad("request line is not UTF-8"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::bad("request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(HttpError::bad("bad method"));
    }
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(HttpError::bad("bad request target"));
    }
    Ok((method.to_string(), target.to_string(), parse_version(version)?))
}

fn parse_status_line(line: &[u8]) -> Result<((u8, u8), u16, String), HttpError> {
    let line = std::str::from_utf8(line).map_err(|_| HttpError::bad("status line is not UTF-8"))?;
    let (version, rest) = line.split_once(' ').ok_or(HttpError::bad("status line without a status"))?;
    let version = parse_version(version)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::bad("bad status code"));
    }
    let status = code.parse().ok().filter(|code| (100..600).contains(code)).ok_or(HttpError::bad("bad status code"))?;
    if reason.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(HttpError::bad("control character in the reason phrase"));
    }
    Ok((version, status, reason.to_string()))
}

/// `HTTP/1.1` → `(1, 1)`; one digit each, as HTTP/1.x writes it.
fn parse_version(text: &str) -> Result<(u8, u8), HttpError> {
    let digits = text.strip_prefix("HTTP/").ok_or(HttpError::bad("bad HTTP version"))?.as_bytes();
    match digits {
        [major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9'] => match (major - b'0', minor - b'0') {
            (1, minor) => Ok((1, minor)),
            _ => Err(HttpError::Malformed { status: 505, reason: "only HTTP/1.x is spoken" }),
        },
        _ => Err(HttpError::bad("bad HTTP version")),
    }
}

/// The characters of an HTTP token (methods, header names), RFC 9110 5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A decimal `u64`: digits only (no sign, no spaces), not overflowing.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One range of a `Range: bytes=…` header, before the length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`: from `a` to `b`, both included.
    FromTo(u64, u64),
    /// `bytes=a-`: from `a` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The bytes `start..end` this range means in a body of `len` bytes,
    /// or `None` when none of them exists (answered with `416`). A range
    /// reaching past the end is cut at the end, as HTTP says.
    pub fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::FromTo(start, last) if start < len => Some((start, last.min(len - 1) + 1)),
            ByteRange::From(start) if start < len => Some((start, len)),
            ByteRange::Suffix(n) if n > 0 && len > 0 => Some((len - n.min(len), len)),
            _ => None,
        }
    }
}

impl fmt::Display for ByteRange {
    /// The value of a `Range` header asking for this range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::FromTo(start, last) => write!(f, "bytes={start}-{last}"),
            ByteRange::From(start) => write!(f, "bytes={start}-"),
            ByteRange::Suffix(n) => write!(f, "bytes=-{n}"),
        }
    }
}

/// Parses a `Range` header value: `bytes=a-b`, `bytes=a-` or `bytes=-n`.
///
/// Of a list of ranges (`bytes=0-9,20-29`) only the first is taken: the
/// answer is then a plain `206` whose `Content-Range` says what was sent,
/// never a multipart body, which no Gnutella downloader asks for. A range
/// that is not well formed (`a > b`, not a number, another unit) is
/// malformed, answered with `400` rather than ignored, since a downloader
/// asking for a chunk must not get a whole file it did not expect.
pub fn parse_range(value: &str) -> Result<ByteRange, HttpError> {
    let bad = || HttpError::bad("bad Range");
    let (unit, ranges) = value.trim().split_once('=').ok_or_else(bad)?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Err(bad());
    }
    let first = ranges.split(',').map(str::trim).find(|r| !r.is_empty()).ok_or_else(bad)?;
    let (start, last) = first.split_once('-').ok_or_else(bad)?;
    let (start, last) = (start.trim(), last.trim());
    match (start.is_empty(), last.is_empty()) {
        (true, false) => Ok(ByteRange::Suffix(parse_decimal(last).ok_or_else(bad)?)),
        (false, true) => Ok(ByteRange::From(parse_decimal(start).ok_or_else(bad)?)),
        (false, false) => {
            let (start, last) = (parse_decimal(start).ok_or_else(bad)?, parse_decimal(last).ok_or_else(bad)?);
            if start > last {
                return Err(bad());
            }
            Ok(ByteRange::FromTo(start, last))
        }
        (true, true) => Err(bad()),
    }
}

/// A `Content-Range` header: which bytes a `206` carries, or (for `416`)
/// only the full length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// The bytes `start..end` sent; `None` for `bytes */len`.
    pub range: Option<(u64, u64)>,
    /// The full length, if the sender knows it (`None` for `/*`).
    pub total: Option<u64>,
}

impl fmt::Display for ContentRange {
    /// The header value: `bytes a-b/len`, `bytes */len`, `bytes a-b/*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes ")?;
        match self.range {
            Some((start, end)) => write!(f, "{start}-{}", end.saturating_sub(1))?,
            None => f.write_str("*")?,
        }
        match self.total {
            Some(total) => write!(f, "/{total}"),
            None => f.write_str("/*"),
        }
    }
}

/// Parses a `Content-Range` value (`bytes a-b/len`, `bytes */len`,
/// `bytes a-b/*`), refusing ranges that are empty, reversed or reach
/// past the length.
pub fn parse_content_range(value: &str) -> Result<ContentRange, HttpError> {
    let bad = || HttpError::bad("bad Content-Range");
    let rest = value.trim();
    let (unit, rest) = rest.split_once(' ').ok_or_else(bad)?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return Err(bad());
    }
    let (range, total) = rest.trim().split_once('/').ok_or_else(bad)?;
    let total = match total.trim() {
        "*" => None,
        total => Some(parse_decimal(total).ok_or_else(bad)?),
    };
    let range = match range.trim() {
        "*" if total.is_some() => None,
        range => {
            let (start, last) = range.split_once('-').ok_or_else(bad)?;
            let (start, last) = (parse_decimal(start).ok_or_else(bad)?, parse_decimal(last).ok_or_else(bad)?);
            if start > last || total.is_some_and(|t| last >= t) {
                return Err(bad());
            }
            Some((start, last.checked_add(1).ok_or_else(bad)?))
        }
    };
    Ok(ContentRange { range, total })
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits, or bytes
/// that are not UTF-8 once decoded, are malformed. `+` stays `+`: this is
/// for paths, not forms.
pub fn percent_decode(text: &str) -> Result<String, HttpError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(HttpError::bad("truncated percent escape"))?;
            let digit = |b: u8| (b as char).to_digit(16);
            match (digit(hex[0]), digit(hex[1])) {
                (Some(high), Some(low)) => decoded.push((high * 16 + low) as u8),
                _ => return Err(HttpError::bad("bad percent escape")),
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| HttpError::bad("decoded target is not UTF-8"))
}

/// Escapes everything but unreserved characters (RFC 3986), so that any
/// file name can travel in a `/get/<index>/<name>` path.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::task;

    fn request(bytes: &[u8]) -> Result<Request, HttpError> {
        task::block_on(read_request(&mut futures::io::Cursor::new(bytes.to_vec())))
    }

    fn response(bytes: &[u8]) -> Result<ResponseHead, HttpError> {
        task::block_on(read_response_head(&mut futures::io::Cursor::new(bytes.to_vec())))
    }

    fn status(result: Result<impl fmt::Debug, HttpError>) -> Option<u16> {
        result.expect_err("must be refused").status()
    }

    #[test]
    fn request_head_is_parsed_with_case_insensitive_headers() {
        let req = request(b"GET /uri-res/N2R?urn:sha1:X HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\nX-Alt: 1.2.3.4\r\nx-alt: 5.6.7.8:9\r\n\r\nrest")
            .unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/uri-res/N2R?urn:sha1:X");
        assert_eq!(req.version, (1, 1));
        assert_eq!(req.headers.get("RANGE"), Some("bytes=0-9"));
        assert_eq!(req.headers.get_all("X-ALT").collect::<Vec<_>>(), ["1.2.3.4", "5.6.7.8:9"]);
        assert!(req.keep_alive());
    }

    #[test]
    fn request_round_trips_through_encode() {
        let mut req = Request::new("HEAD", "/get/1/a%20b");
        req.headers.insert("Range", ByteRange::From(5));
        assert_eq!(request(&req.encode()).unwrap(), req);
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        assert!(!request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().keep_alive());
        assert!(!request(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive());
        assert!(request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().keep_alive());
    }

    #[test]
    fn bare_lf_lines_are_accepted() {
        assert_eq!(request(b"GET / HTTP/1.1\nA: b\n\n").unwrap().headers.get("a"), Some("b"));
    }

    #[test]
    fn folded_header_lines_extend_the_previous_value() {
        let req = request(b"GET / HTTP/1.1\r\nAlt-Location: http://a/\r\n  http://b/\r\n\r\n").unwrap();
        assert_eq!(req.headers.get("alt-location"), Some("http://a/ http://b/"));
    }

    #[test]
    fn status_outside_100_to_599_and_empty_continuations_are_handled() {
        assert_eq!(status(response(b"HTTP/1.1 006 Odd\r\n\r\n")), Some(400));
        assert_eq!(status(response(b"HTTP/1.1 600 Odd\r\n\r\n")), Some(400));
        let req = request(b"GET / HTTP/1.1\r\nX-Alt: 1.2.3.4:1\r\n  \r\n\r\n").unwrap();
        assert_eq!(req.headers.get("x-alt"), Some("1.2.3.4:1"));
    }

    #[test]
    fn folded_line_cannot_smuggle_a_control_character() {
        // Found by tests/fuzz.rs: a CR inside a continuation reached the value.
        assert_eq!(status(request(b"GET / HTTP/1.1\r\nX-Alt: 1.2.3.4:1\r\n 5.6.7.8:9\r;X: y\r\n\r\n")), Some(400));
        assert_eq!(status(response(b"HTTP/1.1 200 OK\r\nX-Queue: 1\r\n\t\0\r\n\r\n")), Some(400));
    }

    #[test]
    fn request_line_at_the_limit_passes_and_one_byte_more_is_414() {
        let target = format!("/{}", "a".repeat(MAX_REQUEST_LINE - "GET  HTTP/1.1".len() - 1));
        let line = format!("GET {target} HTTP/1.1");
        assert_eq!(line.len(), MAX_REQUEST_LINE);
        assert!(request(format!("{line}\r\n\r\n").as_bytes()).is_ok());
        assert_eq!(status(request(format!("{line}a\r\n\r\n").as_bytes())), Some(414));
        assert_eq!(status(request(&vec![b'G'; MAX_REQUEST_LINE * 4])), Some(414));
    }

    #[test]
    fn already_read_request_line_is_bounded_too() {
        let line = vec![b'a'; MAX_REQUEST_LINE + 1];
        let result = task::block_on(read_request_head(line, &mut futures::io::Cursor::new(b"\r\n".to_vec())));
        assert_eq!(status(result), Some(414));
    }

    #[test]
    fn too_many_header_lines_is_431() {
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADER_LINES {
            bytes.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        let mut fine = bytes.clone();
        fine.extend_from_slice(b"\r\n");
        assert!(request(&fine).is_ok());
        bytes.extend_from_slice(b"One-Too-Many: v\r\n\r\n");
        assert_eq!(status(request(&bytes)), Some(431));
    }

    #[test]
    fn too_many_header_bytes_is_431() {
        let value = "v".repeat(MAX_HEADER_BYTES / 4);
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..4 {
            bytes.extend_from_slice(format!("H{i}: {value}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        assert_eq!(status(request(&bytes)), Some(431));
        let endless = [b"GET / HTTP/1.1\r\nH: ".as_slice(), &vec![b'v'; MAX_HEADER_BYTES * 2]].concat();
        assert_eq!(status(request(&endless)), Some(431));
    }

    #[test]
    fn malformed_requests_are_400() {
        for bytes in [
            b"GET /\r\n\r\n".as_slice(),
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET / HTTP/x\r\n\r\n",
            b"GET / HTTP/1.10\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
            b"GET / HTTP/1.1\r\n: v\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded first\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(status(request(bytes)), Some(400), "{}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(status(request(b"GET / HTTP/2.0\r\n\r\n")), Some(505));
    }

    #[test]
    fn connection_closed_mid_head_is_io() {
        assert!(matches!(request(b"GET / HTTP/1.1\r\nHost: a\r\n"), Err(HttpError::Io(_))));
        assert!(matches!(request(b""), Err(HttpError::Io(_))));
    }

    #[test]
    fn response_head_is_parsed_and_body_left_unread() {
        let bytes = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/10\r\nContent-Length: 4\r\n\r\nbody";
        let mut reader = futures::io::Cursor::new(bytes.to_vec());
        let head = task::block_on(read_response_head(&mut reader)).unwrap();
        assert_eq!((head.status, head.reason.as_str(), head.version), (206, "Partial Content", (1, 1)));
        assert_eq!(head.headers.content_length().unwrap(), Some(4));
        let range = parse_content_range(head.headers.get("content-range").unwrap()).unwrap();
        assert_eq!(range, ContentRange { range: Some((0, 4)), total: Some(10) });
        assert_eq!(&reader.get_ref()[reader.position() as usize..], b"body");
        assert!(head.keep_alive());
    }

    #[test]
    fn response_round_trips_through_encode() {
        let mut head = ResponseHead::new(503);
        head.headers.insert("Retry-After", 30);
        assert_eq!(response(&head.encode()).unwrap(), head);
        assert_eq!(response(b"HTTP/1.0 200\r\n\r\n").unwrap().reason, "");
    }

    #[test]
    fn malformed_responses_are_refused() {
        for bytes in [
            b"HTTP/1.1 20 OK\r\n\r\n".as_slice(),
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ] {
            let result = response(bytes).and_then(|head| head.headers.content_length().map(|_| head));
            assert!(result.is_err(), "{}", String::from_utf8_lossy(bytes));
        }
        let conflicting = response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").unwrap();
        assert!(conflicting.headers.content_length().is_err());
    }

    #[test]
    fn ranges_parse_in_their_three_forms() {
        assert_eq!(parse_range("bytes=0-9").unwrap(), ByteRange::FromTo(0, 9));
        assert_eq!(parse_range(" Bytes = 5 - ").unwrap(), ByteRange::From(5));
        assert_eq!(parse_range("bytes=-7").unwrap(), ByteRange::Suffix(7));
        assert_eq!(parse_range("bytes=10-19, 30-39").unwrap(), ByteRange::FromTo(10, 19));
        for range in [ByteRange::FromTo(1, 2), ByteRange::From(3), ByteRange::Suffix(4)] {
            assert_eq!(parse_range(&range.to_string()).unwrap(), range);
        }
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for value in [
            "bytes=9-0",
            "bytes=-",
            "bytes=",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2-3",
            "items=0-1",
            "0-1",
            "bytes=0-99999999999999999999999",
        ] {
            assert!(parse_range(value).is_err(), "{value}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_length() {
        assert_eq!(ByteRange::FromTo(0, 9).resolve(100), Some((0, 10)));
        assert_eq!(ByteRange::FromTo(90, 200).resolve(100), Some((90, 100)));
        assert_eq!(ByteRange::FromTo(99, 99).resolve(100), Some((99, 100)));
        assert_eq!(ByteRange::FromTo(100, 100).resolve(100), None);
        assert_eq!(ByteRange::From(99).resolve(100), Some((99, 100)));
        assert_eq!(ByteRange::From(100).resolve(100), None);
        assert_eq!(ByteRange::Suffix(10).resolve(100), Some((90, 100)));
        assert_eq!(ByteRange::Suffix(1000).resolve(100), Some((0, 100)));
        assert_eq!(ByteRange::Suffix(0).resolve(100), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
        assert_eq!(ByteRange::Suffix(5).resolve(0), None);
    }

    #[test]
    fn ranges_near_u64_max_do_not_overflow() {
        let range = parse_range("bytes=0-18446744073709551615").unwrap();
        assert_eq!(range.resolve(u64::MAX), Some((0, u64::MAX)));
        assert_eq!(range.resolve(10), Some((0, 10)));
        assert_eq!(ByteRange::From(u64::MAX).resolve(u64::MAX), None);
        assert_eq!(ByteRange::Suffix(u64::MAX).resolve(u64::MAX), Some((0, u64::MAX)));
        assert!(parse_content_range("bytes 0-18446744073709551615/*").is_err());
    }

    #[test]
    fn content_ranges_parse_and_print() {
        for (text, parsed) in [
            ("bytes 0-0/1", ContentRange { range: Some((0, 1)), total: Some(1) }),
            ("bytes */100", ContentRange { range: None, total: Some(100) }),
            ("bytes 5-9/*", ContentRange { range: Some((5, 10)), total: None }),
        ] {
            assert_eq!(parse_content_range(text).unwrap(), parsed);
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["bytes 9-5/10", "bytes 0-10/10", "bytes */*", "bytes 0-1", "bits 0-1/2", "bytes -1-2/3"] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%20b%2Fc+d").unwrap(), "a b/c+d");
        assert_eq!(percent_decode("%2e%2E").unwrap(), "..");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        for bad in ["%", "%2", "%zz", "a%g0", "%ff"] {
            assert!(percent_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_encoding_round_trips() {
        let name = "SEBLINUX iso/2.0 100%é?.img";
        let encoded = percent_encode(name);
        assert!(!encoded.contains(['/', ' ', '?']));
        assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        assert_eq!(percent_decode(&encoded).unwrap(), name);
    }
}
