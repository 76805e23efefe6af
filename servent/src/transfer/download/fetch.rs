//! One source's worker: chunk after chunk over one HTTP/1.1 connection.
//!
//! A worker asks its download for a chunk, sends
//! `GET /uri-res/N2R?urn:sha1:… HTTP/1.1` with `Range: bytes=a-b` on its
//! kept-alive connection, checks the answer's head against what it asked
//! and reads exactly the chunk's bytes, never one more, into memory. Only
//! the download writes to disk, and only chunks the plan accepts, so a
//! worker that lost a race, or a source that lied, never touches the file.
//!
//! Anything wrong costs the source one error and this chunk only: a status
//! other than `206` (or `200` for a one-chunk file), a `Content-Range` or
//! `Content-Length` other than the one asked for, a head or body that
//! stalls for longer than the I/O timeout, a connection closed early, or
//! bytes beyond the body. After any failure the worker ends; the download
//! decides whether the source gets another one. `503` parks the source for
//! its `Retry-After`; `404` (or a different URN) drops it. Sources named in
//! `X-Alt` and the older alternate-location headers are passed on.

use std::net::SocketAddrV4;
use std::time::Duration;

use async_std::channel::Sender;
use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use futures::channel::oneshot;
use futures::{AsyncBufReadExt, FutureExt};

use search::Urn;

use super::plan::ChunkRange;
use crate::transfer::alt::{format_x_alt, parse_alternate_locations, parse_x_alt};
use crate::transfer::http::{self, ByteRange, ContentRange, HttpError, Request, ResponseHead};

/// Bytes read between two progress reports.
const PROGRESS_STEP: u64 = 64 * 1024;
/// Socket read buffer: large enough that a 1 MiB chunk is a few reads.
const READ_BUFFER: usize = 64 * 1024;
/// `Retry-After` assumed when a busy source gives none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Sources passed on from one response's headers at most.
const MAX_LEARNED: usize = 32;

/// What a worker tells its download.
#[derive(Debug)]
pub(super) enum WorkerEvent {
    /// The worker wants its next chunk.
    Ask { source: SocketAddrV4, reply: oneshot::Sender<Assignment> },
    /// Bytes of the current chunk received so far.
    Progress { source: SocketAddrV4, index: usize, received: u64 },
    /// A whole chunk, and where to send the worker's next chunk: it asks at
    /// once, so that it can send its next request while this one is written.
    Chunk { source: SocketAddrV4, index: usize, data: Vec<u8>, next: oneshot::Sender<Assignment> },
    /// Other sources named by this one.
    Learned { addrs: Vec<SocketAddrV4> },
    /// How the worker ended; it sends nothing after this.
    Ended { source: SocketAddrV4, end: WorkerEnd },
}

/// Why a worker stopped.
#[derive(Debug)]
pub(super) enum WorkerEnd {
    /// Told to stop, or nothing left to do.
    Stopped,
    /// The source failed (its chunk, if any, with it).
    Failed(String),
    /// The source is busy; try again after this long.
    Busy(Duration),
    /// The source does not have the file.
    NotFound(String),
}

/// What the download hands a worker.
#[derive(Debug)]
pub(super) enum Assignment {
    /// Fetch this chunk, telling the source about these other sources.
    Fetch { chunk: ChunkRange, alt: Vec<SocketAddrV4> },
    /// Stop.
    Stop,
}

/// What a worker needs to know.
#[derive(Clone, Debug)]
pub(super) struct Job {
    /// The URN asked for in the request.
    pub urn: Urn,
    /// The file size, which every `Content-Range` must repeat.
    pub size: u64,
    /// Connect, head and per-read timeout: a source silent for this long
    /// has stalled.
    pub io_timeout: Duration,
    /// Our `User-Agent`.
    pub user_agent: String,
}

/// Where a worker's events go, tagged with the worker's serial number so
/// that the download can tell them from those of an earlier worker for the
/// same source that it stopped.
pub(super) struct Reporter {
    /// This worker's serial number.
    pub serial: u64,
    /// The download's event queue.
    pub events: Sender<(u64, WorkerEvent)>,
}

impl Reporter {
    /// Sends an event; `Err` when the download is gone.
    async fn send(&self, event: WorkerEvent) -> Result<(), ()> {
        self.events.send((self.serial, event)).await.map_err(|_| ())
    }
}

/// Runs the worker of `source` until it ends, then says why.
pub(super) async fn run(source: SocketAddrV4, job: Job, events: Reporter) {
    let end = work(source, &job, &events).await;
    let _ = events.send(WorkerEvent::Ended { source, end }).await;
}

async fn work(source: SocketAddrV4, job: &Job, events: &Reporter) -> WorkerEnd {
    let mut connection: Option<Connection> = None;
    let (reply, mut answer) = oneshot::channel();
    if events.send(WorkerEvent::Ask { source, reply }).await.is_err() {
        return WorkerEnd::Stopped;
    }
    loop {
        let (chunk, alt) = match answer.await {
            Ok(Assignment::Fetch { chunk, alt }) => (chunk, alt),
            Ok(Assignment::Stop) | Err(_) => return WorkerEnd::Stopped,
        };
        match fetch_chunk(source, job, &mut connection, chunk, &alt, events).await {
            Ok(data) => {
                let (next, next_answer) = oneshot::channel();
                let index = chunk.index;
                if events.send(WorkerEvent::Chunk { source, index, data, next }).await.is_err() {
                    return WorkerEnd::Stopped;
                }
                answer = next_answer;
            }
            Err(end) => return end,
        }
    }
}

/// A kept-alive connection to a source.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Requests answered on it so far.
    answered: u32,
}

impl Connection {
    async fn open(source: SocketAddrV4, timeout: Duration) -> Result<Connection, WorkerEnd> {
        let stream = async_std::io::timeout(timeout, TcpStream::connect(source))
            .await
            .map_err(|e| WorkerEnd::Failed(format!("cannot connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection { reader: BufReader::with_capacity(READ_BUFFER, stream.clone()), writer: stream, answered: 0 })
    }
}

/// Fetches one chunk, reusing `connection` when there is one. The
/// connection is kept only when the answer was complete and clean.
async fn fetch_chunk(
    source: SocketAddrV4,
    job: &Job,
    connection: &mut Option<Connection>,
    chunk: ChunkRange,
    alt: &[SocketAddrV4],
    events: &Reporter,
) -> Result<Vec<u8>, WorkerEnd> {
    let request = build_request(source, job, chunk, alt);
    let mut conn = match connection.take() {
        Some(conn) => conn,
        None => Connection::open(source, job.io_timeout).await?,
    };
    let head = match exchange(&mut conn, &request, job.io_timeout).await {
        Ok(head) => head,
        // A kept-alive connection the source closed while we were idle is
        // no fault of the source: once more on a fresh one.
        Err(HttpError::Io(_)) if conn.answered > 0 => {
            conn = Connection::open(source, job.io_timeout).await?;
            exchange(&mut conn, &request, job.io_timeout).await.map_err(|e| head_failure(&e))?
        }
        Err(e) => return Err(head_failure(&e)),
    };
    let learned = learned_sources(&head);
    if !learned.is_empty() {
        let _ = events.send(WorkerEvent::Learned { addrs: learned }).await;
    }
    check_head(&head, job, chunk)?;
    let data = read_body(&mut conn, source, chunk, job.io_timeout, events).await?;
    // An HTTP/1.1 source says nothing until asked: bytes already waiting
    // (looked at without waiting) are more than the chunk it claimed to
    // send, so the chunk is not trusted. Bytes that arrive later break the
    // next answer's head instead.
    match conn.reader.fill_buf().now_or_never() {
        Some(Ok(extra)) if !extra.is_empty() => {
            return Err(WorkerEnd::Failed(format!("sent more than the {} bytes asked for", chunk.len())));
        }
        // Closed or broken after a complete body: the chunk is good, the
        // connection is not.
        Some(_) => return Ok(data),
        None => {}
    }
    conn.answered += 1;
    if head.keep_alive() {
        *connection = Some(conn);
    }
    Ok(data)
}

fn build_request(source: SocketAddrV4, job: &Job, chunk: ChunkRange, alt: &[SocketAddrV4]) -> Request {
    let mut request = Request::new("GET", &format!("/uri-res/N2R?{}", job.urn));
    request.headers.insert("Host", source);
    request.headers.insert("User-Agent", &job.user_agent);
    request.headers.insert("Range", ByteRange::FromTo(chunk.start, chunk.end - 1));
    if !alt.is_empty() {
        request.headers.insert("X-Alt", format_x_alt(alt));
    }
    request.headers.insert("Connection", "Keep-Alive");
    request
}

/// Sends the request and reads the answer's head.
async fn exchange(conn: &mut Connection, request: &Request, timeout: Duration) -> Result<ResponseHead, HttpError> {
    async_std::io::timeout(timeout, conn.writer.write_all(&request.encode())).await?;
    match async_std::io::timeout(timeout, async { Ok(http::read_response_head(&mut conn.reader).await) }).await {
        Ok(result) => result,
        Err(e) => Err(HttpError::Io(e)),
    }
}

fn head_failure(error: &HttpError) -> WorkerEnd {
    match error {
        HttpError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            WorkerEnd::Failed("no answer within the timeout".into())
        }
        HttpError::Io(e) => WorkerEnd::Failed(format!("connection failed before the answer: {e}")),
        HttpError::Malformed { reason, .. } => WorkerEnd::Failed(format!("malformed answer: {reason}")),
    }
}

/// Whether the head announces exactly the chunk asked for.
fn check_head(head: &ResponseHead, job: &Job, chunk: ChunkRange) -> Result<(), WorkerEnd> {
    let failed = |what: String| Err(WorkerEnd::Failed(what));
    if let Some(other) = content_urn(head).filter(|u| same_kind(u, &job.urn) && *u != job.urn) {
        return Err(WorkerEnd::NotFound(format!("serves {other} instead")));
    }
    let length = match head.headers.content_length() {
        Ok(length) => length,
        Err(_) => return failed("malformed Content-Length".into()),
    };
    match head.status {
        206 => {
            let Some(value) = head.headers.get("Content-Range") else {
                return failed("206 without Content-Range".into());
            };
            let expected = ContentRange { range: Some((chunk.start, chunk.end)), total: Some(job.size) };
            match http::parse_content_range(value) {
                Ok(range) if range == expected => {}
                Ok(range) if range.total.is_some_and(|t| t != job.size) => {
                    return Err(WorkerEnd::NotFound(format!("has a file of another size ({value})")));
                }
                Ok(_) => return failed(format!("sent Content-Range {value}, asked for {expected}")),
                Err(_) => return failed(format!("malformed Content-Range {value:?}")),
            }
        }
        200 if chunk.start == 0 && chunk.end == job.size => {}
        200 => return failed("answered 200 with the whole file to a range request".into()),
        503 => return Err(WorkerEnd::Busy(retry_after(head))),
        404 | 410 => return Err(WorkerEnd::NotFound(format!("{} {}", head.status, head.reason))),
        status => return failed(format!("answered {status} {}", head.reason)),
    }
    match length {
        Some(length) if length != chunk.len() => {
            failed(format!("announced {length} bytes for a chunk of {}", chunk.len()))
        }
        _ => Ok(()),
    }
}

/// The content URN the source says it serves, if it says so.
fn content_urn(head: &ResponseHead) -> Option<Urn> {
    ["X-Gnutella-Content-URN", "X-Content-URN"]
        .iter()
        .filter_map(|name| head.headers.get(name))
        .find_map(|value| value.split(',').find_map(|urn| urn.trim().parse().ok()))
}

fn same_kind(a: &Urn, b: &Urn) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// `Retry-After` in seconds (an HTTP date is rare among servents: the default then).
fn retry_after(head: &ResponseHead) -> Duration {
    head.headers
        .get("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

/// Sources the answer names, from `X-Alt` and the older headers.
fn learned_sources(head: &ResponseHead) -> Vec<SocketAddrV4> {
    let mut learned: Vec<SocketAddrV4> = Vec::new();
    let x_alt = head.headers.get_all("X-Alt").flat_map(parse_x_alt);
    let older = ["X-Gnutella-Alternate-Location", "Alt-Location"]
        .iter()
        .flat_map(|name| head.headers.get_all(name))
        .flat_map(parse_alternate_locations);
    for addr in x_alt.chain(older) {
        if learned.len() >= MAX_LEARNED {
            break;
        }
        if !learned.contains(&addr) {
            learned.push(addr);
        }
    }
    learned
}

/// Reads exactly the chunk's bytes, each read within the timeout.
async fn read_body(
    conn: &mut Connection,
    source: SocketAddrV4,
    chunk: ChunkRange,
    timeout: Duration,
    events: &Reporter,
) -> Result<Vec<u8>, WorkerEnd> {
    let len = usize::try_from(chunk.len()).map_err(|_| WorkerEnd::Failed("chunk too large".into()))?;
    let mut data = vec![0; len];
    let mut filled = 0;
    let mut reported = 0;
    while filled < len {
        let n = match async_std::io::timeout(timeout, conn.reader.read(&mut data[filled..])).await {
            Ok(0) => return Err(WorkerEnd::Failed(format!("closed the connection after {filled} of {len} bytes"))),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(WorkerEnd::Failed(format!("stalled after {filled} of {len} bytes")));
            }
            Err(e) => return Err(WorkerEnd::Failed(format!("failed after {filled} of {len} bytes: {e}"))),
        };
        filled += n;
        if (filled - reported) as u64 >= PROGRESS_STEP || filled == len {
            reported = filled;
            let progress = WorkerEvent::Progress { source, index: chunk.index, received: filled as u64 };
            if events.send(progress).await.is_err() {
                return Err(WorkerEnd::Stopped);
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::download::plan::CHUNK_SIZE;

    fn job() -> Job {
        Job {
            urn: "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap(),
            size: 3 * CHUNK_SIZE,
            io_timeout: Duration::from_secs(1),
            user_agent: "Test/1".into(),
        }
    }

    fn chunk(index: usize) -> ChunkRange {
        let start = index as u64 * CHUNK_SIZE;
        ChunkRange { index, start, end: start + CHUNK_SIZE }
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        let mut head = ResponseHead::new(status);
        for (name, value) in headers {
            head.headers.append(name, value);
        }
        head
    }

    fn verdict(head: &ResponseHead, chunk: ChunkRange) -> String {
        match check_head(head, &job(), chunk) {
            Ok(()) => "ok".into(),
            Err(WorkerEnd::Failed(why)) => format!("failed: {why}"),
            Err(WorkerEnd::NotFound(why)) => format!("not found: {why}"),
            Err(WorkerEnd::Busy(after)) => format!("busy {}", after.as_secs()),
            Err(WorkerEnd::Stopped) => "stopped".into(),
        }
    }

    #[test]
    fn request_asks_for_the_chunk_by_urn_and_keeps_the_connection() {
        let source: SocketAddrV4 = "10.0.0.1:6346".parse().unwrap();
        let alt = ["10.0.0.2:6346".parse().unwrap(), "10.0.0.3:7000".parse().unwrap()];
        let text = String::from_utf8(build_request(source, &job(), chunk(1), &alt).encode()).unwrap();
        assert_eq!(
            text,
            "GET /uri-res/N2R?urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB HTTP/1.1\r\nHost: 10.0.0.1:6346\r\n\
             User-Agent: Test/1\r\nRange: bytes=1048576-2097151\r\nX-Alt: 10.0.0.2,10.0.0.3:7000\r\n\
             Connection: Keep-Alive\r\n\r\n"
        );
    }

    #[test]
    fn partial_content_must_be_exactly_the_chunk() {
        let range = format!("bytes {}-{}/{}", CHUNK_SIZE, 2 * CHUNK_SIZE - 1, 3 * CHUNK_SIZE);
        let length = CHUNK_SIZE.to_string();
        assert_eq!(verdict(&head(206, &[("Content-Range", &range), ("Content-Length", &length)]), chunk(1)), "ok");
        assert_eq!(verdict(&head(206, &[("Content-Range", &range)]), chunk(1)), "ok");
        assert!(verdict(&head(206, &[("Content-Range", &range)]), chunk(2)).starts_with("failed: sent Content-Range"));
        assert!(verdict(&head(206, &[]), chunk(1)).starts_with("failed: 206 without"));
        let longer = (CHUNK_SIZE + 1).to_string();
        assert!(verdict(&head(206, &[("Content-Range", &range), ("Content-Length", &longer)]), chunk(1))
            .starts_with("failed: announced"));
        let other_size = format!("bytes {}-{}/{}", CHUNK_SIZE, 2 * CHUNK_SIZE - 1, 5 * CHUNK_SIZE);
        assert!(verdict(&head(206, &[("Content-Range", &other_size)]), chunk(1)).starts_with("not found"));
        assert!(verdict(&head(206, &[("Content-Range", "bytes x")]), chunk(1)).starts_with("failed: malformed"));
    }

    #[test]
    fn whole_file_answer_is_accepted_only_for_a_whole_file_chunk() {
        let whole = ChunkRange { index: 0, start: 0, end: 3 * CHUNK_SIZE };
        let length = (3 * CHUNK_SIZE).to_string();
        assert_eq!(verdict(&head(200, &[("Content-Length", &length)]), whole), "ok");
        assert!(verdict(&head(200, &[("Content-Length", &length)]), chunk(0)).starts_with("failed: answered 200"));
    }

    #[test]
    fn statuses_map_to_busy_gone_or_failed() {
        assert_eq!(verdict(&head(503, &[("Retry-After", "30")]), chunk(0)), "busy 30");
        assert_eq!(verdict(&head(503, &[]), chunk(0)), "busy 60");
        assert_eq!(verdict(&head(404, &[]), chunk(0)), "not found: 404 Not Found");
        assert_eq!(verdict(&head(416, &[]), chunk(0)), "failed: answered 416 Range Not Satisfiable");
        assert_eq!(verdict(&head(500, &[]), chunk(0)), "failed: answered 500 Internal Server Error");
    }

    #[test]
    fn source_serving_another_urn_is_dropped() {
        let other = "urn:sha1:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
        assert!(verdict(&head(206, &[("X-Gnutella-Content-URN", other)]), chunk(0)).starts_with("not found: serves"));
        let sha256 = format!("urn:sha256:{}", "A".repeat(52));
        let range = format!("bytes 0-{}/{}", CHUNK_SIZE - 1, 3 * CHUNK_SIZE);
        assert_eq!(verdict(&head(206, &[("X-Content-URN", &sha256), ("Content-Range", &range)]), chunk(0)), "ok");
    }

    #[test]
    fn sources_are_learnt_from_every_alternate_location_header() {
        let head = head(
            206,
            &[
                ("X-Alt", "10.0.0.2,10.0.0.3:7000"),
                ("X-Alt", "10.0.0.2:6346"),
                ("Alt-Location", "http://10.0.0.4:8000/uri-res/N2R?urn:sha1:X 2002-04-30T08:30Z"),
            ],
        );
        let learned: Vec<String> = learned_sources(&head).iter().map(ToString::to_string).collect();
        assert_eq!(learned, ["10.0.0.2:6346", "10.0.0.3:7000", "10.0.0.4:8000"]);
    }
}
