//! The I/O of one connection: accepting, dialing, the handshake over a
//! socket, and the reader and writer tasks of an established Gnutella link.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_std::channel::{self, Receiver};
use async_std::io::{self, BufReader, ReadExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::prelude::FutureExt;
use async_std::task;
use futures::channel::oneshot;
use futures::AsyncWriteExt;
use servent_core::address;
use servent_core::node::{
    Arrival, Doorway, Event as CoreEvent, Hammering, Ticket, INCOMING_HANDSHAKE_TIMEOUT, MAX_UNCLASSIFIED,
};

use super::{log, warn, Command, ConnectedPeer, Direction, Event, LinkCounters, Shared, IDLE_TIMEOUT};
use crate::compression::{Deflater, Inflater};
use crate::flow::{OutQueue, QUEUE_BYTES};
use crate::handshake::{self, FirstLine, Handshake, PeerInfo, Step, HANDSHAKE_TIMEOUT, MAX_LINE};
use crate::transfer::{self, http};
use crate::wire::{self, Message, Payload, HEADER_LEN};

/// How long an outgoing TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepts connections until cancelled; each is served on its own task.
/// The core's rules decide which are served: an address that hammers is
/// cut off at once, and at most [`MAX_UNCLASSIFIED`] wait for their first
/// line (a few per address), the one waiting longest giving way to a new one.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut hammering = Hammering::default();
    let doorway = Arc::new(Mutex::new(Doorway::with_capacity(MAX_UNCLASSIFIED)));
    loop {
        let (stream, remote) = match listener.accept().await {
            // Listening on [::], an IPv4 peer comes as ::ffff:a.b.c.d: every rule reads it as IPv4.
            Ok((stream, remote)) => (stream, address::canonical(remote)),
            Err(e) => {
                // Out of descriptors or similar: wait rather than spin.
                warn(format_args!("accept failed: {e}"));
                task::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !hammering.allow(remote.ip(), Instant::now()) {
            continue;
        }
        let (evict, evicted) = oneshot::channel();
        let (ticket, dropped) = lock(&doorway).enter(remote.ip(), evict);
        // Dropping its sender tells the connection waiting longest to go.
        drop(dropped);
        let waiting = Waiting { doorway: doorway.clone(), ticket, evicted };
        task::spawn(serve_incoming(stream, remote, waiting, shared.clone()));
    }
}

/// A connection's place in the doorway, until its first line comes.
struct Waiting {
    doorway: Arc<Mutex<Doorway<oneshot::Sender<()>>>>,
    ticket: Ticket,
    evicted: oneshot::Receiver<()>,
}

/// Incoming handshakes under way, each with the means to cut it when the
/// core says it stalled and gave way ([`servent_core::node::Action::GiveWay`]).
#[derive(Default)]
pub(super) struct InFlight(Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>);

impl InFlight {
    /// Registers the handshake from `remote` until the returned place is
    /// dropped; the receiver ends when it is cut.
    fn enter(&self, remote: SocketAddr) -> (Registered<'_>, oneshot::Receiver<()>) {
        let (cut, cut_off) = oneshot::channel();
        lock(&self.0).insert(remote, cut);
        (Registered { in_flight: self, remote }, cut_off)
    }

    /// Cuts the handshake from `remote`, if it is still under way.
    pub(super) fn cut(&self, remote: SocketAddr) {
        // Dropping the sender ends the handshake's race.
        drop(lock(&self.0).remove(&remote));
    }
}

/// A handshake's place in [`InFlight`], given up when dropped.
struct Registered<'a> {
    in_flight: &'a InFlight,
    remote: SocketAddr,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.in_flight.0).remove(&self.remote);
    }
}

/// Our end of a connection, an IPv4-mapped address as IPv4 ([`address::canonical`]).
fn local_addr(stream: &TcpStream) -> io::Result<SocketAddr> {
    stream.local_addr().map(address::canonical)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve_incoming(stream: TcpStream, remote: SocketAddr, waiting: Waiting, shared: Arc<Shared>) {
    let accepted = Instant::now();
    let mut reader = BufReader::new(stream.clone());
    let read = async {
        Some(io::timeout(INCOMING_HANDSHAKE_TIMEOUT, http::read_line(&mut reader, http::MAX_REQUEST_LINE)).await)
    };
    let evicted = async {
        let _ = waiting.evicted.await;
        None
    };
    let first = read.race(evicted).await;
    lock(&waiting.doorway).leave(waiting.ticket);
    let first = match first {
        Some(Ok(line)) => line,
        // Only an HTTP request line may be this long: refuse it the HTTP way.
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            return transfer::refuse(414, reader, stream).await
        }
        Some(Err(_)) | None => return,
    };
    // A neighbour connecting back for our TCP Connect Back: `\n\n`, then it closes.
    if first.is_empty() {
        let arrival = CoreEvent::Incoming { remote: remote.ip(), arrival: Arrival::ConnectBack };
        let _ = shared.events.send(Event::Core(arrival)).await;
        return;
    }
    match handshake::classify_first_line(&first) {
        FirstLine::GnutellaConnect => {
            // Registered before the core may name it, so a cut is never missed.
            let (registered, cut_off) = shared.handshakes.enter(remote);
            let (reply, answer) = channel::bounded(1);
            let admit = Command::Admit { remote, reply };
            if shared.events.send(Event::Command(admit)).await.is_err() {
                return;
            }
            let Ok((admission, try_ultrapeers)) = answer.recv().await else { return };
            let Ok(local) = local_addr(&stream) else { return };
            let machine = Handshake::accept(&shared.handshake_config(local), remote, admission, try_ultrapeers);
            let exchange = run_handshake(machine, Some(first), &mut reader, &stream);
            let cut = async {
                let _ = cut_off.await;
                Err(HandshakeFailure { reason: "stalled, gave way to a newer one".into(), try_hosts: Vec::new() })
            };
            let left = INCOMING_HANDSHAKE_TIMEOUT.saturating_sub(accepted.elapsed());
            let ended = async_std::future::timeout(left, exchange.race(cut)).await;
            drop(registered);
            let reason = match ended {
                Ok(Ok(info)) => return run_link(stream, reader, remote, info, Direction::Incoming, None, shared).await,
                Ok(Err(failure)) => failure.reason,
                Err(_) => "timed out".to_string(),
            };
            warn(format_args!("handshake with {remote} failed: {reason}"));
            let _ = shared.events.send(Event::Core(CoreEvent::HandshakeFailed { remote })).await;
        }
        FirstLine::Http => transfer::serve(&shared.uploads, remote, first, reader, stream).await,
        FirstLine::Unknown => shared.pushes.accept(&first, reader, stream).await,
    }
}

/// Connects to `addr`, shakes hands, and runs the link; failures are
/// reported to the pump with whatever hosts the peer suggested.
pub(super) async fn dial(addr: SocketAddrV4, shared: Arc<Shared>) {
    let remote = SocketAddr::V4(addr);
    let attempt = async {
        let stream = io::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
            .await
            .map_err(|e| HandshakeFailure { reason: e.to_string(), try_hosts: Vec::new() })?;
        let mut reader = BufReader::new(stream.clone());
        let local = local_addr(&stream).map_err(HandshakeFailure::io)?;
        let (machine, hello) = Handshake::connect(&shared.handshake_config(local), remote);
        (&stream).write_all(&hello).await.map_err(HandshakeFailure::io)?;
        let info = run_handshake(machine, None, &mut reader, &stream).await?;
        Ok::<_, HandshakeFailure>((stream, reader, info))
    };
    match async_std::future::timeout(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT, attempt).await {
        Ok(Ok((stream, reader, info))) => {
            run_link(stream, reader, remote, info, Direction::Outgoing, Some(addr), shared).await;
        }
        Ok(Err(failure)) => {
            warn(format_args!("cannot connect to {addr}: {}", failure.reason));
            let _ = shared.events.send(Event::Core(CoreEvent::DialFailed { addr, try_hosts: failure.try_hosts })).await;
        }
        Err(_) => {
            warn(format_args!("cannot connect to {addr}: timed out"));
            let _ = shared.events.send(Event::Core(CoreEvent::DialFailed { addr, try_hosts: Vec::new() })).await;
        }
    }
}

/// Why a handshake did not end in a link.
struct HandshakeFailure {
    reason: String,
    try_hosts: Vec<SocketAddr>,
}

impl HandshakeFailure {
    fn io(e: std::io::Error) -> HandshakeFailure {
        HandshakeFailure { reason: e.to_string(), try_hosts: Vec::new() }
    }
}

/// Feeds the handshake machine line by line until it settles.
async fn run_handshake(
    mut machine: Handshake,
    first: Option<Vec<u8>>,
    reader: &mut BufReader<TcpStream>,
    stream: &TcpStream,
) -> Result<PeerInfo, HandshakeFailure> {
    let mut pending = first;
    loop {
        let line = match pending.take() {
            Some(line) => line,
            None => http::read_line(reader, MAX_LINE).await.map_err(HandshakeFailure::io)?,
        };
        let step =
            machine.on_line(&line).map_err(|e| HandshakeFailure { reason: e.to_string(), try_hosts: Vec::new() })?;
        match step {
            Step::Continue => {}
            Step::Write(bytes) => {
                let mut writer = stream;
                writer.write_all(&bytes).await.map_err(HandshakeFailure::io)?;
            }
            Step::Established { write, peer } => {
                let mut writer = stream;
                writer.write_all(&write).await.map_err(HandshakeFailure::io)?;
                return Ok(peer);
            }
            Step::Refused { write, code, reason, try_ultrapeers } => {
                let mut writer = stream;
                let _ = writer.write_all(&write).await;
                return Err(HandshakeFailure { reason: format!("{code} {reason}"), try_hosts: try_ultrapeers });
            }
        }
    }
}

/// Runs an established link: starts its writer, tells the pump, then
/// reads descriptors until the peer goes or breaks a rule.
async fn run_link(
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    remote: SocketAddr,
    info: PeerInfo,
    direction: Direction,
    dialed: Option<SocketAddrV4>,
    shared: Arc<Shared>,
) {
    let way = match direction {
        Direction::Incoming => "incoming",
        Direction::Outgoing => "outgoing",
    };
    let role = if info.ultrapeer { "ultrapeer" } else { "leaf" };
    let agent = info.user_agent.as_deref().unwrap_or("no User-Agent");
    let heard = info.listen.filter(|l| *l != remote).map(|l| format!(", listening on {l}")).unwrap_or_default();
    log(format_args!("{remote} connected ({way}, {role}, {agent}{heard})"));
    let id = shared.next_peer_id();
    let local = match local_addr(&stream) {
        Ok(local) => local,
        Err(_) => return,
    };
    let queue = Arc::new(Mutex::new(OutQueue::new(QUEUE_BYTES)));
    let (wake, woken) = channel::bounded(1);
    let counters = Arc::new(LinkCounters::default());
    let deflater = info.deflate_out.then(Deflater::default);
    let writer =
        task::spawn(write_loop(deflater, stream.clone(), queue.clone(), woken, counters.clone(), shared.clone()));
    let inflater = info.deflate_in.then(Inflater::default);
    let connected =
        ConnectedPeer { id, addr: remote, local, info, direction, dialed, stream, queue, wake, counters, writer };
    if shared.events.send(Event::Connected(Box::new(connected))).await.is_err() {
        return;
    }
    let event = match read_loop(id, reader, inflater, &shared).await {
        Ok(()) => return,
        Err(ReadEnd::Closed(reason)) => CoreEvent::Closed { peer: id, reason },
        Err(ReadEnd::Malformed(error)) => CoreEvent::Malformed { peer: id, error },
    };
    let _ = shared.events.send(Event::Core(event)).await;
}

enum ReadEnd {
    Closed(String),
    Malformed(String),
}

/// Decodes descriptors and hands them to the pump; returns `Ok` only when
/// the pump is gone. What it holds is bounded: one socket read, one
/// inflate step, and at most one descriptor's worth of pending bytes.
async fn read_loop(
    id: super::PeerId,
    mut source: BufReader<TcpStream>,
    mut inflater: Option<Inflater>,
    shared: &Shared,
) -> Result<(), ReadEnd> {
    let mut received = [0u8; 16 * 1024];
    // Bytes off the socket still to inflate, and plain bytes still to frame.
    let mut compressed = Vec::new();
    let mut plain = Vec::new();
    loop {
        // Every whole descriptor, then the buffer cut once: cut after each,
        // it would move what follows once per descriptor.
        let mut taken = 0;
        while let Some((message, len)) = next_message(&plain[taken..])? {
            taken += len;
            if shared.events.send(Event::Core(CoreEvent::Message { peer: id, message })).await.is_err() {
                return Ok(());
            }
        }
        plain.drain(..taken);
        // Called with nothing new too: zlib may still hold output.
        if let Some(inflater) = inflater.as_mut() {
            let before = plain.len();
            let used = inflater.inflate(&compressed, &mut plain).map_err(|e| ReadEnd::Malformed(e.to_string()))?;
            compressed.drain(..used);
            if used > 0 || plain.len() > before {
                continue;
            }
        }
        let n =
            io::timeout(IDLE_TIMEOUT, source.read(&mut received)).await.map_err(|e| ReadEnd::Closed(e.to_string()))?;
        if n == 0 {
            return Err(ReadEnd::Closed("connection closed".into()));
        }
        let target = if inflater.is_some() { &mut compressed } else { &mut plain };
        target.extend_from_slice(&received[..n]);
    }
}

/// The descriptor at the front of `plain`, if it holds a whole one, and its length.
fn next_message(plain: &[u8]) -> Result<Option<(Message, usize)>, ReadEnd> {
    let Some(header) = plain.first_chunk::<HEADER_LEN>() else { return Ok(None) };
    let head = wire::decode_header(header).map_err(|e| ReadEnd::Malformed(e.to_string()))?;
    let end = HEADER_LEN + head.payload_len as usize;
    if plain.len() < end {
        return Ok(None);
    }
    let message =
        wire::decode_payload(&head, &plain[HEADER_LEN..end]).map_err(|e| ReadEnd::Malformed(e.to_string()))?;
    Ok(Some((message, end)))
}

/// Drains the peer's queue to its socket whenever woken; once the pump
/// lets go of the link, writes what is left (a Bye, say) and closes.
async fn write_loop(
    mut deflater: Option<Deflater>,
    mut stream: TcpStream,
    queue: Arc<Mutex<OutQueue>>,
    woken: Receiver<()>,
    counters: Arc<LinkCounters>,
    shared: Arc<Shared>,
) {
    let mut plain = Vec::new();
    let mut compressed = Vec::new();
    loop {
        let open = woken.recv().await.is_ok();
        loop {
            plain.clear();
            let mut bye = false;
            if let Ok(mut queue) = queue.lock() {
                while plain.len() < 64 * 1024 {
                    let Some(message) = queue.pop() else { break };
                    let query = matches!(message.payload, Payload::Query(_));
                    bye |= matches!(message.payload, Payload::Bye(_));
                    for counters in [&*counters, &shared.sent] {
                        counters.messages.fetch_add(1, Ordering::Relaxed);
                        counters.queries.fetch_add(u64::from(query), Ordering::Relaxed);
                    }
                    message.encode_into(&mut plain);
                }
            }
            if plain.is_empty() {
                break;
            }
            let bytes = match deflater.as_mut() {
                Some(deflater) => {
                    compressed.clear();
                    if deflater.deflate(&plain, &mut compressed).is_err() {
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    &compressed
                }
                None => &plain,
            };
            if io::timeout(IDLE_TIMEOUT, stream.write_all(bytes)).await.is_err() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            if bye {
                // Nothing may follow a Bye; the peer closes its side when it
                // has read it, which ends our reader.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                return;
            }
        }
        if !open {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            return;
        }
    }
}
