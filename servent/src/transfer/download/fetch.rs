//! One source's worker: chunk after chunk over one HTTP/1.1 connection.
//!
//! A worker asks its download for a chunk, sends
//! `GET /uri-res/N2R?urn:sha1:… HTTP/1.1` with `Range: bytes=a-b` on its
//! kept-alive connection, checks the answer's head against what it asked
//! and reads exactly the announced bytes, never one more, into memory. Only
//! the download writes to disk, and only chunks the plan accepts, so a
//! worker that lost a race, or a source that lied, never touches the file.
//!
//! HTTP lets a source answer a range request with a shorter `206`
//! (gtk-gnutella caps a connection's first answer at 512 KiB, later ones by
//! bandwidth): the bytes are kept and the rest of the chunk is asked for
//! again on the same connection, up to [`MAX_REQUESTS_PER_CHUNK`] times.
//! A `503` naming a queue place (PARQ's `X-Queued`, LimeWire's `X-Queue`)
//! gives the chunk back and the worker waits its turn, the connection kept
//! when the source keeps it, and asks again after `Retry-After` with the
//! queue ID it was given; a bare `503`, `409` (gtk-gnutella: "Already
//! downloading this file") or `429` parks the source for its `Retry-After`.
//!
//! Anything else wrong costs the source one error and this chunk only: a
//! status other than `206` (or `200` for a one-chunk file), a
//! `Content-Range` outside the range asked for or a `Content-Length` other
//! than it announces, a head or body that stalls for longer than the I/O
//! timeout, a connection closed early, or bytes beyond the body. After any
//! failure the worker ends; the download decides when the source gets
//! another one. `404` (or a different URN) drops it. Sources named in
//! `X-Alt` and the older alternate-location headers are passed on.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use async_std::channel::Sender;
use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use futures::channel::oneshot;
use futures::{AsyncBufReadExt, FutureExt};

use search::Urn;
use servent_core::address::DialRule;

use super::plan::{ChunkRange, PARTIAL_RECHECK};
use crate::transfer::alt::{
    announces, parse_alternate_locations, parse_x_alt, parse_x_falt, Locations, FWALT, OUR_FEATURES,
    OUR_FEATURES_WITHOUT_FWALT,
};
use crate::transfer::http::{self, ByteRange, HttpError, Request, ResponseHead};
use crate::transfer::parq::{self, QueueTicket};
use crate::transfer::partial::RangeSet;
use crate::transfer::push::{is_push_only, Pushes};
use crate::transfer::rate::RateLimit;

/// Bytes read between two progress reports.
const PROGRESS_STEP: u64 = 64 * 1024;
/// Socket read buffer: large enough that a 1 MiB chunk is a few reads.
const READ_BUFFER: usize = 64 * 1024;
/// `Retry-After` assumed when a busy source gives none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Sources passed on from one response's headers at most.
const MAX_LEARNED: usize = 32;
/// Requests one chunk may take when a source answers shorter ranges: a
/// 1 MiB chunk in pieces of 16 KiB on average at worst.
pub(super) const MAX_REQUESTS_PER_CHUNK: usize = 64;
/// `416` answers in a row (a partial source without the chunks asked for)
/// after which the worker leaves the source alone for a while.
const MAX_REFUSALS: u32 = 3;
/// Longest body of a refusal read (and thrown away) to keep its connection.
const MAX_REFUSAL_BODY: u64 = 64 * 1024;

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
    /// The source queued us: the chunk goes back, and the worker asks for
    /// another once its turn to ask again comes.
    Queued { source: SocketAddrV4, ticket: QueueTicket },
    /// Other sources named by this one.
    Learned { addrs: Vec<SocketAddrV4> },
    /// Locations this source says failed (`X-Nalt`).
    Failed { source: SocketAddrV4, addrs: Vec<SocketAddrV4> },
    /// What the source has (`X-Available-Ranges`), `None` for the whole file.
    Available { source: SocketAddrV4, ranges: Option<RangeSet> },
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
    /// The source refused us for now, with its words; try again after this long.
    Busy(Duration, String),
    /// The source does not have the file.
    NotFound(String),
}

/// What the download hands a worker.
#[derive(Debug)]
pub(super) enum Assignment {
    /// Fetch this chunk, telling the source about these other sources.
    Fetch { chunk: ChunkRange, alt: Locations },
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
    /// How firewalled sources are reached.
    pub pushes: Option<Arc<Pushes>>,
    /// The cap all downloads share.
    pub rate: Arc<RateLimit>,
    /// Where we listen, told to sources (`X-Node`) so that they pass us on
    /// as a partial source; `None` when we offer nothing.
    pub x_node: Option<String>,
    /// The address our connections leave from: the one we listen on, when
    /// it is a particular one (a test network's node has its own loopback
    /// address, and a multi-homed host its chosen one).
    pub local: Option<Ipv4Addr>,
    /// The node's dial rule: sources an answer names that it refuses are not learned.
    pub dial: DialRule,
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
    let mut worker = Worker { source, job, events, connection: None, ticket: None, refusals: 0, fwalt: false };
    let (reply, mut answer) = oneshot::channel();
    if events.send(WorkerEvent::Ask { source, reply }).await.is_err() {
        return WorkerEnd::Stopped;
    }
    loop {
        let (chunk, alt) = match answer.await {
            Ok(Assignment::Fetch { chunk, alt }) => (chunk, alt),
            Ok(Assignment::Stop) | Err(_) => return WorkerEnd::Stopped,
        };
        let (next, next_answer) = oneshot::channel();
        answer = next_answer;
        match worker.fetch_chunk(chunk, &alt).await {
            Ok(data) => {
                let index = chunk.index;
                if events.send(WorkerEvent::Chunk { source, index, data, next }).await.is_err() {
                    return WorkerEnd::Stopped;
                }
            }
            Err(Interrupt::Queued(ticket)) => {
                let retry = ticket.retry;
                worker.ticket = Some(ticket.clone());
                if events.send(WorkerEvent::Queued { source, ticket }).await.is_err() {
                    return WorkerEnd::Stopped;
                }
                // Our place is kept if we ask again after `Retry-After`
                // (never sooner: gtk-gnutella bans who does) and within
                // its lifetime.
                async_std::task::sleep(retry).await;
                if events.send(WorkerEvent::Ask { source, reply: next }).await.is_err() {
                    return WorkerEnd::Stopped;
                }
            }
            Err(Interrupt::Unavailable) => {
                if events.send(WorkerEvent::Ask { source, reply: next }).await.is_err() {
                    return WorkerEnd::Stopped;
                }
            }
            Err(Interrupt::End(end)) => return end,
        }
    }
}

/// Why a chunk was not fetched.
#[derive(Debug)]
enum Interrupt {
    /// The source queued us, here.
    Queued(QueueTicket),
    /// The source does not have the chunk (`416` with the ranges it has,
    /// which it had not told before): ask for another.
    Unavailable,
    /// The worker ends.
    End(WorkerEnd),
}

impl From<WorkerEnd> for Interrupt {
    fn from(end: WorkerEnd) -> Interrupt {
        Interrupt::End(end)
    }
}

/// A worker's state between chunks.
struct Worker<'a> {
    source: SocketAddrV4,
    job: &'a Job,
    events: &'a Reporter,
    /// The kept-alive connection, if any.
    connection: Option<Connection>,
    /// Our place in the source's queue, sent back until it serves us.
    ticket: Option<QueueTicket>,
    /// `416` answers in a row.
    refusals: u32,
    /// Whether the source announced `fwalt` (in its `X-Features`, sent once a connection).
    fwalt: bool,
}

/// A kept-alive connection to a source.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Requests answered on it so far.
    answered: u32,
}

impl Connection {
    /// Connects to `source`, or, when its hit said it is firewalled, asks
    /// it with a PUSH to connect to us.
    async fn open(source: SocketAddrV4, job: &Job) -> Result<Connection, WorkerEnd> {
        let mut pushed = None;
        if let Some(pushes) = job.pushes.as_ref().filter(|p| p.firewalled(source)) {
            match pushes.connect(source, &job.urn, job.io_timeout).await {
                Ok((reader, writer)) => {
                    let _ = writer.set_nodelay(true);
                    return Ok(Connection { reader, writer, answered: 0 });
                }
                // A servent may say it is firewalled and be reachable all the same.
                Err(why) => pushed = Some(why),
            }
        }
        if is_push_only(source) {
            return Err(WorkerEnd::Failed(pushed.unwrap_or_else(|| "known only by its GUID".into())));
        }
        let stream = connect(source, job.local, job.io_timeout).await.map_err(|e| {
            WorkerEnd::Failed(match &pushed {
                Some(why) => format!("{why}, and cannot connect: {e}"),
                None => format!("cannot connect: {e}"),
            })
        })?;
        let _ = stream.set_nodelay(true);
        Ok(Connection { reader: BufReader::with_capacity(READ_BUFFER, stream.clone()), writer: stream, answered: 0 })
    }
}

/// Connects to `source` within `timeout`, from `local` when given (bound
/// before connecting, on the blocking pool).
pub(super) async fn connect(source: SocketAddrV4, local: Option<Ipv4Addr>, timeout: Duration) -> io::Result<TcpStream> {
    let Some(local) = local else { return async_std::io::timeout(timeout, TcpStream::connect(source)).await };
    let stream = async_std::task::spawn_blocking(move || -> io::Result<std::net::TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(local, 0)).into())?;
        socket.connect_timeout(&SocketAddr::V4(source).into(), timeout)?;
        Ok(socket.into())
    })
    .await?;
    stream.set_nonblocking(true)?;
    Ok(TcpStream::from(stream))
}

/// What the head of an answer to a range request means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// It serves bytes from the start asked for up to this offset (the
    /// end asked for, or short of it).
    Serves(u64),
    /// It queued us.
    Queued(QueueTicket),
    /// It does not have those bytes (`416`, partial file sharing).
    Unavailable,
}

impl Worker<'_> {
    /// Fetches one chunk, in as many requests as the source wants (shorter
    /// `206` answers), reusing the kept-alive connection.
    async fn fetch_chunk(&mut self, chunk: ChunkRange, alt: &Locations) -> Result<Vec<u8>, Interrupt> {
        let len = usize::try_from(chunk.len()).map_err(|_| WorkerEnd::Failed("chunk too large".into()))?;
        let mut data = vec![0; len];
        let mut filled = 0u64;
        let mut requests = 0;
        while filled < chunk.len() {
            if requests == MAX_REQUESTS_PER_CHUNK {
                let why = format!("answered {requests} ranges for one chunk, {filled} of {len} bytes");
                return Err(WorkerEnd::Failed(why).into());
            }
            requests += 1;
            let want = ChunkRange { index: chunk.index, start: chunk.start + filled, end: chunk.end };
            let (mut conn, head) = self.ask(want, alt).await?;
            self.fwalt |= announces(head.headers.get("X-Features"), FWALT);
            let mut learned = learned_sources(&head);
            learned.retain(|source| self.job.dial.allows(*source));
            // Firewalled sources are of use only while a GIV can reach us.
            if let Some(pushes) = self.job.pushes.as_ref().filter(|p| p.can_use_fwalt()) {
                let firewalled = head.headers.get_all("X-Falt").flat_map(parse_x_falt).take(MAX_LEARNED);
                learned.extend(pushes.learn_firewalled(&firewalled.collect::<Vec<_>>(), *self.source.ip()));
                learned.truncate(MAX_LEARNED);
            }
            if !learned.is_empty() {
                let _ = self.events.send(WorkerEvent::Learned { addrs: learned }).await;
            }
            let failed: Vec<SocketAddrV4> =
                head.headers.get_all("X-Nalt").flat_map(parse_x_alt).take(MAX_LEARNED).collect();
            if !failed.is_empty() {
                let _ = self.events.send(WorkerEvent::Failed { source: self.source, addrs: failed }).await;
            }
            let available = available_ranges(&head, self.job.size);
            if let Some(ranges) = &available {
                let (source, ranges) = (self.source, ranges.clone());
                let _ = self.events.send(WorkerEvent::Available { source, ranges }).await;
            }
            let end = match check_head(&head, self.job, want) {
                Ok(Answer::Serves(end)) => end,
                Ok(Answer::Unavailable) => {
                    // A refusal that names the refused bytes among those it
                    // has contradicts itself: a lie. (What a partial source
                    // has may change between answers: a seed offers fewer.)
                    let claimed = available.as_ref().is_some_and(|told| match told {
                        Some(ranges) => ranges.contains(want.start, want.end),
                        None => true,
                    });
                    if claimed || filled > 0 {
                        let why = format!("answered 416 for bytes {}-{} it says it has", want.start, want.end - 1);
                        return Err(WorkerEnd::Failed(why).into());
                    }
                    // Never a tight loop: it is asked again later.
                    self.refusals += 1;
                    if self.refusals >= MAX_REFUSALS {
                        let why = "has none of what we asked for now".to_string();
                        return Err(WorkerEnd::Busy(PARTIAL_RECHECK, why).into());
                    }
                    self.keep_after_refusal(conn, &head).await;
                    return Err(Interrupt::Unavailable);
                }
                Ok(Answer::Queued(ticket)) => {
                    self.keep_after_refusal(conn, &head).await;
                    return Err(Interrupt::Queued(ticket));
                }
                Err(end) => return Err(end.into()),
            };
            self.ticket = None;
            self.refusals = 0;
            let part = &mut data[(want.start - chunk.start) as usize..(end - chunk.start) as usize];
            let at = (self.source, chunk.index, filled);
            read_body(&mut conn, part, at, self.job, self.events).await?;
            filled = end - chunk.start;
            // An HTTP/1.1 source says nothing until asked: bytes already
            // waiting (looked at without waiting) are more than it
            // announced, so the chunk is not trusted. Bytes that arrive
            // later break the next answer's head instead.
            match conn.reader.fill_buf().now_or_never() {
                Some(Ok(extra)) if !extra.is_empty() => {
                    let why = format!("sent more than the {} bytes announced", end - want.start);
                    return Err(WorkerEnd::Failed(why).into());
                }
                // Closed or broken after a complete body: the bytes are
                // good, the connection is not.
                Some(_) => continue,
                None => {}
            }
            conn.answered += 1;
            if head.keep_alive() {
                self.connection = Some(conn);
            }
        }
        Ok(data)
    }

    /// Sends the request for `want` on the kept-alive connection (or a new
    /// one) and reads the answer's head.
    async fn ask(&mut self, want: ChunkRange, alt: &Locations) -> Result<(Connection, ResponseHead), WorkerEnd> {
        let (source, timeout) = (self.source, self.job.io_timeout);
        let request = build_request(source, self.job, want, alt, self.fwalt, self.ticket.as_ref());
        let mut conn = match self.connection.take() {
            Some(conn) => conn,
            None => Connection::open(source, self.job).await?,
        };
        let head = match exchange(&mut conn, &request, timeout).await {
            Ok(head) => head,
            // A kept-alive connection the source closed while we were idle
            // (or queued) is no fault of the source: once more on a fresh one.
            Err(HttpError::Io(_)) if conn.answered > 0 => {
                conn = Connection::open(source, self.job).await?;
                exchange(&mut conn, &request, timeout).await.map_err(|e| head_failure(&e))?
            }
            Err(e) => return Err(head_failure(&e)),
        };
        Ok((conn, head))
    }

    /// Keeps the connection of a refusal the source keeps alive, once its
    /// (short) body is read: a queued client asks again on it.
    async fn keep_after_refusal(&mut self, mut conn: Connection, head: &ResponseHead) {
        let Ok(Some(length)) = head.headers.content_length() else { return };
        if length > MAX_REFUSAL_BODY || !head.keep_alive() {
            return;
        }
        let (mut body, mut sink) = ((&mut conn.reader).take(length), async_std::io::sink());
        let read = async_std::io::timeout(self.job.io_timeout, async_std::io::copy(&mut body, &mut sink)).await;
        if read.is_ok_and(|n| n == length) {
            conn.answered += 1;
            self.connection = Some(conn);
        }
    }
}

fn build_request(
    source: SocketAddrV4,
    job: &Job,
    chunk: ChunkRange,
    alt: &Locations,
    fwalt: bool,
    ticket: Option<&QueueTicket>,
) -> Request {
    let mut request = Request::new("GET", &format!("/uri-res/N2R?{}", job.urn));
    request.headers.insert("Host", source);
    request.headers.insert("User-Agent", &job.user_agent);
    request.headers.insert("Range", ByteRange::FromTo(chunk.start, chunk.end - 1));
    let fwalt_of_use = job.pushes.as_ref().is_some_and(|pushes| pushes.can_use_fwalt());
    request.headers.insert("X-Features", if fwalt_of_use { OUR_FEATURES } else { OUR_FEATURES_WITHOUT_FWALT });
    alt.insert_into(&mut request.headers, fwalt);
    // We understand remote queues (PARQ 1.0), and come back to our place.
    request.headers.insert("X-Queue", "1.0");
    if let Some(x_queued) = ticket.and_then(QueueTicket::x_queued) {
        request.headers.insert("X-Queued", x_queued);
    }
    if let Some(x_node) = &job.x_node {
        request.headers.insert("X-Node", x_node);
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

/// What the head of the answer to a request for `want` says: the bytes it
/// serves (all of `want`, or a shorter range from its start), a queue
/// place, or why the worker ends.
fn check_head(head: &ResponseHead, job: &Job, want: ChunkRange) -> Result<Answer, WorkerEnd> {
    let failed = |what: String| Err(WorkerEnd::Failed(what));
    if let Some(other) = content_urn(head).filter(|u| same_kind(u, &job.urn) && *u != job.urn) {
        return Err(WorkerEnd::NotFound(format!("serves {other} instead")));
    }
    let length = match head.headers.content_length() {
        Ok(length) => length,
        Err(_) => return failed("malformed Content-Length".into()),
    };
    let end = match head.status {
        206 => {
            let Some(value) = head.headers.get("Content-Range") else {
                return failed("206 without Content-Range".into());
            };
            match http::parse_content_range(value) {
                Ok(range) if range.total.is_some_and(|t| t != job.size) => {
                    return Err(WorkerEnd::NotFound(format!("has a file of another size ({value})")));
                }
                // From the start asked for, up to its end or short of it.
                Ok(range)
                    if range.total.is_some()
                        && matches!(range.range, Some((s, e)) if s == want.start && e <= want.end) =>
                {
                    range.range.map_or(want.end, |(_, end)| end)
                }
                Ok(_) => {
                    return failed(format!(
                        "sent Content-Range {value}, asked for bytes {}-{}",
                        want.start,
                        want.end - 1
                    ));
                }
                Err(_) => return failed(format!("malformed Content-Range {value:?}")),
            }
        }
        200 if want.start == 0 && want.end == job.size => want.end,
        200 => return failed("answered 200 with the whole file to a range request".into()),
        503 => {
            let retry = retry_after(head);
            let queued = QueueTicket::from_headers(head.headers.get("X-Queued"), head.headers.get("X-Queue"), retry);
            return match queued {
                Some(ticket) => Ok(Answer::Queued(ticket)),
                None => Err(busy(head, retry)),
            };
        }
        // gtk-gnutella: another connection of ours still fetches this file
        // (409), or we came back too soon (429): wait, never hammer.
        409 | 429 => return Err(busy(head, retry_after(head))),
        404 | 410 => return Err(WorkerEnd::NotFound(format!("{} {}", head.status, head.reason))),
        // A partial source without these bytes says which it has.
        416 if head.headers.get("X-Available-Ranges").is_some() => return Ok(Answer::Unavailable),
        status => return failed(format!("answered {status} {}", head.reason)),
    };
    match length {
        Some(length) if length != end - want.start => {
            failed(format!("announced {length} bytes for a range of {}", end - want.start))
        }
        _ => Ok(Answer::Serves(end)),
    }
}

/// A refusal that says "later": parked for its `Retry-After`.
fn busy(head: &ResponseHead, retry: Option<Duration>) -> WorkerEnd {
    let after = parq::bounded(retry.unwrap_or(DEFAULT_RETRY_AFTER));
    WorkerEnd::Busy(after, format!("{} {}", head.status, head.reason))
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

/// `Retry-After` in seconds, if given so (an HTTP date is rare among
/// servents: the caller's default then).
fn retry_after(head: &ResponseHead) -> Option<Duration> {
    head.headers.get("Retry-After").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// What a source says it has: its `X-Available-Ranges` (bounded, cut to the
/// file), `Some(None)` when a `2xx` has none (the whole file, PFSP says),
/// `None` when the answer says nothing about it.
fn available_ranges(head: &ResponseHead, size: u64) -> Option<Option<RangeSet>> {
    match head.headers.get("X-Available-Ranges") {
        Some(value) => Some(Some(RangeSet::parse_available(value, size).unwrap_or_default())),
        None if (200..300).contains(&head.status) => Some(None),
        None => None,
    }
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

/// Reads exactly `part.len()` bytes, each read within the timeout,
/// reporting the chunk's progress as (source, chunk index, bytes of the
/// chunk already in before `part`).
async fn read_body(
    conn: &mut Connection,
    part: &mut [u8],
    (source, index, before): (SocketAddrV4, usize, u64),
    job: &Job,
    events: &Reporter,
) -> Result<(), WorkerEnd> {
    let len = part.len();
    let mut filled = 0;
    let mut reported = 0;
    while filled < len {
        // What is read is paid for before the next read: the socket's
        // window then holds the sender to the cap.
        let piece = job.rate.piece(len - filled);
        let n = match async_std::io::timeout(job.io_timeout, conn.reader.read(&mut part[filled..filled + piece])).await
        {
            Ok(0) => return Err(WorkerEnd::Failed(format!("closed the connection after {filled} of {len} bytes"))),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(WorkerEnd::Failed(format!("stalled after {filled} of {len} bytes")));
            }
            Err(e) => return Err(WorkerEnd::Failed(format!("failed after {filled} of {len} bytes: {e}"))),
        };
        job.rate.pace(n).await;
        filled += n;
        if (filled - reported) as u64 >= PROGRESS_STEP || filled == len {
            reported = filled;
            let progress = WorkerEvent::Progress { source, index, received: before + filled as u64 };
            if events.send(progress).await.is_err() {
                return Err(WorkerEnd::Stopped);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::alt::FirewalledLocation;
    use servent_core::wire::Guid;

    /// A chunk of these tests' file (the worker takes whatever it is given).
    const CHUNK: u64 = 1 << 20;

    fn job() -> Job {
        Job {
            urn: "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap(),
            size: 3 * CHUNK,
            io_timeout: Duration::from_secs(1),
            user_agent: "Test/1".into(),
            pushes: None,
            rate: Arc::new(RateLimit::default()),
            x_node: None,
            local: None,
            dial: DialRule::new(true),
        }
    }

    fn chunk(index: usize) -> ChunkRange {
        let start = index as u64 * CHUNK;
        ChunkRange { index, start, end: start + CHUNK }
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
            Ok(Answer::Serves(end)) if end == chunk.end => "ok".into(),
            Ok(Answer::Serves(end)) => format!("up to {end}"),
            Ok(Answer::Queued(ticket)) => format!("queued at {} for {}", ticket.position, ticket.retry.as_secs()),
            Ok(Answer::Unavailable) => "unavailable".into(),
            Err(WorkerEnd::Failed(why)) => format!("failed: {why}"),
            Err(WorkerEnd::NotFound(why)) => format!("not found: {why}"),
            Err(WorkerEnd::Busy(after, why)) => format!("busy {} ({why})", after.as_secs()),
            Err(WorkerEnd::Stopped) => "stopped".into(),
        }
    }

    #[test]
    fn request_asks_for_the_chunk_by_urn_and_keeps_the_connection() {
        let source: SocketAddrV4 = "10.0.0.1:6346".parse().unwrap();
        let alt = Locations {
            direct: vec!["10.0.0.2:6346".parse().unwrap(), "10.0.0.3:7000".parse().unwrap()],
            ..Locations::default()
        };
        let text = String::from_utf8(build_request(source, &job(), chunk(1), &alt, false, None).encode()).unwrap();
        assert_eq!(
            text,
            "GET /uri-res/N2R?urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB HTTP/1.1\r\nHost: 10.0.0.1:6346\r\n\
             User-Agent: Test/1\r\nRange: bytes=1048576-2097151\r\nX-Features: browse/1.0\r\n\
             X-Alt: 10.0.0.2,10.0.0.3:7000\r\nX-Queue: 1.0\r\nConnection: Keep-Alive\r\n\r\n"
        );
    }

    #[test]
    fn a_partial_source_s_416_with_its_ranges_is_no_failure_and_they_are_read_bounded() {
        let unsatisfiable = format!("bytes */{}", 3 * CHUNK);
        let with_ranges = head(416, &[("Content-Range", &unsatisfiable), ("X-Available-Ranges", "bytes 0-1048575")]);
        assert_eq!(verdict(&with_ranges, chunk(1)), "unavailable");
        assert!(verdict(&head(416, &[("Content-Range", &unsatisfiable)]), chunk(1)).starts_with("failed: answered 416"));
        let ranges = available_ranges(&with_ranges, 3 * CHUNK).unwrap().unwrap();
        assert_eq!(ranges.ranges(), [(0, CHUNK)]);
        // A 2xx without the header: the whole file, as PFSP says.
        let range = format!("bytes 0-{}/{}", CHUNK - 1, 3 * CHUNK);
        assert_eq!(available_ranges(&head(206, &[("Content-Range", &range)]), 3 * CHUNK), Some(None));
        assert_eq!(available_ranges(&head(503, &[]), 3 * CHUNK), None);
        // Out of the file's bounds and overlapping: cut and merged.
        let hostile = head(416, &[("X-Available-Ranges", "bytes 0-99999999999,5-7,9-3,x")]);
        let ranges = available_ranges(&hostile, 3 * CHUNK).unwrap().unwrap();
        assert_eq!(ranges.ranges(), [(0, 3 * CHUNK)]);
    }

    #[test]
    fn requests_name_our_address_when_we_offer_partial_files() {
        let source: SocketAddrV4 = "10.0.0.1:6346".parse().unwrap();
        let job = Job { x_node: Some("10.0.0.9:6346".into()), ..job() };
        let request = build_request(source, &job, chunk(0), &Locations::default(), false, None);
        assert_eq!(request.headers.get("X-Node"), Some("10.0.0.9:6346"));
    }

    #[test]
    fn firewalled_sources_go_only_to_a_source_that_announced_fwalt_and_we_announce_it_when_we_can_use_them() {
        let source: SocketAddrV4 = "10.0.0.1:6346".parse().unwrap();
        let firewalled = FirewalledLocation { servent: Guid([7; 16]), address: None, proxies: vec![source] };
        let alt = Locations {
            firewalled: vec![firewalled],
            failed: vec!["10.0.0.5:6346".parse().unwrap()],
            ..Locations::default()
        };
        let plain = build_request(source, &job(), chunk(0), &alt, false, None);
        assert_eq!(plain.headers.get("X-Falt"), None);
        assert_eq!(plain.headers.get("X-Features"), Some("browse/1.0"), "no PUSHes: no fwalt");
        assert_eq!(plain.headers.get("X-Nalt"), Some("10.0.0.5"));
        let pushes = Arc::new(Pushes::new(|_, _, _| {}));
        let job = Job { pushes: Some(pushes.clone()), ..job() };
        let firewalled = build_request(source, &job, chunk(0), &alt, true, None);
        assert_eq!(firewalled.headers.get("X-Features"), Some("browse/1.0"), "no GIV could reach us: no fwalt");
        pushes.set_reachable(true);
        let told = build_request(source, &job, chunk(0), &alt, true, None);
        assert_eq!(told.headers.get("X-Falt"), Some("07070707070707070707070707070707;10.0.0.1:6346"));
        assert_eq!(told.headers.get("X-Features"), Some(OUR_FEATURES));
    }

    #[test]
    fn a_queued_request_names_its_place() {
        let source: SocketAddrV4 = "10.0.0.1:6346".parse().unwrap();
        let ticket = QueueTicket::from_headers(Some("position=3; ID=ab12"), None, None).unwrap();
        let request = build_request(source, &job(), chunk(0), &Locations::default(), false, Some(&ticket));
        assert_eq!(request.headers.get("X-Queued"), Some("position=3; ID=ab12"));
        assert_eq!(request.headers.get("X-Queue"), Some("1.0"));
    }

    #[test]
    fn partial_content_starts_where_asked_and_may_stop_short() {
        let range = format!("bytes {}-{}/{}", CHUNK, 2 * CHUNK - 1, 3 * CHUNK);
        let length = CHUNK.to_string();
        assert_eq!(verdict(&head(206, &[("Content-Range", &range), ("Content-Length", &length)]), chunk(1)), "ok");
        assert_eq!(verdict(&head(206, &[("Content-Range", &range)]), chunk(1)), "ok");
        assert!(verdict(&head(206, &[("Content-Range", &range)]), chunk(2)).starts_with("failed: sent Content-Range"));
        assert!(verdict(&head(206, &[]), chunk(1)).starts_with("failed: 206 without"));
        let longer = (CHUNK + 1).to_string();
        assert!(verdict(&head(206, &[("Content-Range", &range), ("Content-Length", &longer)]), chunk(1))
            .starts_with("failed: announced"));
        let other_size = format!("bytes {}-{}/{}", CHUNK, 2 * CHUNK - 1, 5 * CHUNK);
        assert!(verdict(&head(206, &[("Content-Range", &other_size)]), chunk(1)).starts_with("not found"));
        assert!(verdict(&head(206, &[("Content-Range", "bytes x")]), chunk(1)).starts_with("failed: malformed"));
        // gtk-gnutella's first answer: 512 KiB of the 1 MiB asked for.
        let short = format!("bytes 0-524287/{}", 3 * CHUNK);
        assert_eq!(
            verdict(&head(206, &[("Content-Range", &short), ("Content-Length", "524288")]), chunk(0)),
            "up to 524288"
        );
        assert!(verdict(&head(206, &[("Content-Range", &short), ("Content-Length", "524289")]), chunk(0))
            .starts_with("failed: announced"));
        let later_start = format!("bytes 1-524287/{}", 3 * CHUNK);
        assert!(verdict(&head(206, &[("Content-Range", &later_start)]), chunk(0)).starts_with("failed: sent"));
        let past_the_end = format!("bytes {}-{}/{}", CHUNK, 2 * CHUNK, 3 * CHUNK);
        assert!(verdict(&head(206, &[("Content-Range", &past_the_end)]), chunk(1)).starts_with("failed: sent"));
        let unknown_total = format!("bytes 0-{}/*", CHUNK - 1);
        assert!(verdict(&head(206, &[("Content-Range", &unknown_total)]), chunk(0)).starts_with("failed: sent"));
    }

    #[test]
    fn whole_file_answer_is_accepted_only_for_a_whole_file_chunk() {
        let whole = ChunkRange { index: 0, start: 0, end: 3 * CHUNK };
        let length = (3 * CHUNK).to_string();
        assert_eq!(verdict(&head(200, &[("Content-Length", &length)]), whole), "ok");
        assert!(verdict(&head(200, &[("Content-Length", &length)]), chunk(0)).starts_with("failed: answered 200"));
    }

    #[test]
    fn statuses_map_to_queued_busy_gone_or_failed() {
        assert_eq!(verdict(&head(503, &[("Retry-After", "30")]), chunk(0)), "busy 30 (503 Service Unavailable)");
        assert_eq!(verdict(&head(503, &[]), chunk(0)), "busy 60 (503 Service Unavailable)");
        assert_eq!(verdict(&head(503, &[("Retry-After", "0")]), chunk(0)), "busy 1 (503 Service Unavailable)");
        let queued = [("Retry-After", "20"), ("X-Queued", "position=2; length=4; lifetime=300; ID=0a1b")];
        assert_eq!(verdict(&head(503, &queued), chunk(0)), "queued at 2 for 20");
        let limewire = [("X-Queue", "position=5, pollMin=45, pollMax=120")];
        assert_eq!(verdict(&head(503, &limewire), chunk(0)), "queued at 5 for 45");
        let mut conflict = head(409, &[]);
        conflict.reason = "Already downloading this file".into();
        assert_eq!(verdict(&conflict, chunk(0)), "busy 60 (409 Already downloading this file)");
        let mut too_soon = head(429, &[("Retry-After", "90")]);
        too_soon.reason = "Minimum retry delay not honoured; removed from PARQ queue".into();
        assert!(verdict(&too_soon, chunk(0)).starts_with("busy 90 (429 Minimum retry delay"));
        assert_eq!(verdict(&head(404, &[]), chunk(0)), "not found: 404 Not Found");
        assert_eq!(verdict(&head(416, &[]), chunk(0)), "failed: answered 416 Range Not Satisfiable");
        assert_eq!(verdict(&head(500, &[]), chunk(0)), "failed: answered 500 Internal Server Error");
    }

    #[test]
    fn source_serving_another_urn_is_dropped() {
        let other = "urn:sha1:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
        assert!(verdict(&head(206, &[("X-Gnutella-Content-URN", other)]), chunk(0)).starts_with("not found: serves"));
        let sha256 = format!("urn:sha256:{}", "A".repeat(52));
        let range = format!("bytes 0-{}/{}", CHUNK - 1, 3 * CHUNK);
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
