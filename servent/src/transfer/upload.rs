//! Serving shared files to other servents, over HTTP on the Gnutella port.
//!
//! A downloader asks for content by URN (`GET /uri-res/N2R?urn:sha1:…`,
//! HUGE §6.1, or `urn:sha256:`) or the classic way, by the file's number
//! and name from a QueryHit (`GET /get/<index>/<name>`), usually with a
//! `Range` for one chunk, and asks again for the next chunk on the same
//! connection. Each answer names the content (`X-Gnutella-Content-URN`,
//! `X-Content-URN`) and other places that have it (`X-Alt`, from the
//! [`AltLocations`] mesh; firewalled ones in `X-Falt` to a requester whose
//! `X-Features` announced `fwalt`, failed ones in `X-Nalt`), and says what
//! we understand (`X-Features`). What a request says about other sources is
//! never learned: anyone can send a request, a `HEAD` costs nothing, and a
//! liar named there would be passed on to every downloader. The mesh
//! learns only from downloads that verified what a source served; a
//! request's `X-Nalt` is heard only from such a source.
//!
//! The file is found through the library's index and nowhere else: the
//! request selects an entry (by URN, or by number *and* exact name), and
//! the entry's path is what is opened. Nothing from the request ever
//! becomes part of a path, so `..`, encoded slashes, absolute paths or NUL
//! bytes can at worst fail to match. The file is opened and its length
//! compared with the index before anything is sent: a file that changed
//! since it was hashed is `404`, never served under the old URN.
//!
//! Limits keep one peer from taking the servent: [`UploadConfig::slots`]
//! bodies are sent at once (past them `503` with `Retry-After`), each
//! address has at most [`UploadConfig::per_address`] connections, a
//! connection idle between requests or a reader that stops taking bytes is
//! dropped after a timeout, and request heads are bounded by [`super::http`].
//!
//! A request head has [`HEAD_TIMEOUT`] to arrive whole, and a connection
//! counts against the connection limits only once its first head has: so
//! clients that send heads slowly cannot take the connections of clients
//! that send whole requests. Heads being read have their own budget, per
//! address ([`UploadConfig::per_address`]) and in total
//! ([`MAX_PENDING_HEADS`]); when it is full, a new connection takes the
//! place of the head that has been waiting longest.
//!
//! Every answer about a file also names its Tiger tree (`X-Thex-URI:
//! /uri-res/N2X?urn:sha1:…;ROOT`, as gtk-gnutella sends it), and that
//! target answers the tree in THEX form ([`search::thex::dime`]), so that a
//! downloader checks each chunk as it lands. The tree is computed from the
//! file when first asked for (one read, one tree at a time and outside the
//! upload slots, as gtk-gnutella serves trees), checked against the indexed
//! root, and the last [`MAX_CACHED_TREES`] are kept.

use std::collections::{HashMap, VecDeque};
use std::io::{self, SeekFrom};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_std::fs::File;
use async_std::io::{BufReader, ReadExt, SeekExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use futures::channel::oneshot;
use futures::future::{self, Either};
use futures::AsyncBufReadExt;
use search::thex::{self, dime, Root, TreeHasher};
use search::{Library, SharedFile, Urn};
use serde::Serialize;

use super::alt::{self, AltLocations, Locations};
use super::browse::{self, IdentityHook};
use super::http::{self, ContentRange, HttpError, Request, ResponseHead};
use super::partial::{self, PartialShares, RangeSet};
use super::rate::{self, RateLimit};
use super::upload_queue::{self, Admission, QueueConfig, QueuePlace, Slots, UploadQueue};
use servent_core::push::ProxyRequests;
use servent_core::USER_AGENT;

/// Bytes read from a file and written to the socket at a time: a whole
/// download chunk, so that a chunk costs one trip through the blocking
/// thread pool where async-std runs file reads (at 256 KiB, those trips
/// took about a third of the upload side's CPU time).
const BODY_BUFFER: usize = 1024 * 1024;
/// Other sources named in one `X-Alt` answer (and as many in `X-Falt` and `X-Nalt`).
const X_ALT_SOURCES: usize = 10;
/// HTTP connections served at once, whatever their addresses; this also
/// bounds the per-address table.
pub const MAX_CONNECTIONS: usize = 512;
/// Request heads read at once, whatever their addresses; past it the one
/// waiting longest is dropped.
pub const MAX_PENDING_HEADS: usize = 128;
/// How long a request head may take, from its first byte to its empty line.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection is drained of what the peer still sends,
/// so that closing does not reset the connection before our answer is read.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained from a closing connection.
const LINGER_BYTES: u64 = 64 * 1024;
/// THEX bodies kept, the most recently asked for.
pub const MAX_CACHED_TREES: usize = 16;
/// Bytes read at a time when computing a tree.
const TREE_READ: usize = 1 << 20;

/// How uploads are limited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// Bodies sent at once; past them requests get `503 Busy`.
    pub slots: usize,
    /// Connections one IP address may have open at once.
    pub per_address: usize,
    /// How long a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long sending may make no progress before the connection is dropped.
    pub stall_timeout: Duration,
    /// What `Retry-After` tells a refused downloader.
    pub retry_after: Duration,
}

impl Default for UploadConfig {
    fn default() -> UploadConfig {
        UploadConfig {
            slots: 8,
            per_address: 2,
            idle_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            retry_after: Duration::from_secs(60),
        }
    }
}

/// Upload activity in numbers, for the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UploadStats {
    /// Requests answered, whatever the answer.
    pub requests: u64,
    /// Body bytes sent.
    pub bytes_sent: u64,
    /// Requests refused with `503` because slots or the address's
    /// connections were all taken.
    pub refused_busy: u64,
    /// Requests for bytes of a file offered in part (being downloaded, or
    /// seeded) that it does not offer: `416`, the asker needed none of
    /// what it has.
    pub unavailable: u64,
    /// Bodies being sent now (slots in use).
    pub uploading: usize,
    /// HTTP connections open now, counted once their first request head arrived.
    pub connections: usize,
    /// Connections whose first request head is still arriving.
    pub reading_heads: usize,
    /// Connections we opened to downloaders that asked with a PUSH.
    pub pushed: u64,
    /// Connections whose requester announced `fwalt` in `X-Features`.
    pub fwalt_requesters: u64,
    /// Push-proxy requests refused because their address asked too often.
    pub proxy_refused: u64,
}

pub use super::push::ProxyHook;

/// The upload side of a servent: its limits, what is shared, the mesh,
/// and the counters.
pub struct Uploads {
    config: UploadConfig,
    library: Arc<Library>,
    alt: Arc<AltLocations>,
    /// Whether a tree is being computed (one at a time, outside the slots).
    computing_tree: AtomicBool,
    /// The slots in use, by the length of each one's body: a queued
    /// requester's turn comes as they end.
    bodies: Mutex<Vec<u64>>,
    connections: Mutex<HashMap<IpAddr, usize>>,
    heads: Mutex<PendingHeads>,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    refused_busy: AtomicU64,
    unavailable: AtomicU64,
    pushed: AtomicU64,
    fwalt_requesters: AtomicU64,
    proxy_refused: AtomicU64,
    /// Push-proxy requests passed on lately, per requester.
    proxy_requests: Mutex<ProxyRequests>,
    /// Requesters waiting for a slot (PARQ).
    queue: Mutex<UploadQueue>,
    /// How a browse asks the node what our QueryHits say of us, once the node is up.
    identity: OnceLock<IdentityHook>,
    /// How a push-proxy request reaches the node, once the node is up.
    push_proxy: OnceLock<ProxyHook>,
    /// THEX bodies by root, the newest last.
    trees: Mutex<VecDeque<(Root, Arc<Vec<u8>>)>>,
    /// The cap all bodies share (`--max-upload-rate`).
    rate: RateLimit,
    /// Files being downloaded, offered in part, and their swarms.
    partial: Arc<PartialShares>,
}

impl Uploads {
    /// Uploads of the files in `library`, telling downloaders about the
    /// sources in `alt`.
    pub fn new(config: UploadConfig, library: Arc<Library>, alt: Arc<AltLocations>) -> Uploads {
        let queue = Mutex::new(UploadQueue::new(QueueConfig {
            retry: config.retry_after,
            lifetime: (config.retry_after * 5).max(Duration::from_secs(300)),
            ..QueueConfig::default()
        }));
        Uploads {
            config,
            library,
            alt,
            computing_tree: AtomicBool::new(false),
            bodies: Mutex::new(Vec::new()),
            connections: Mutex::new(HashMap::new()),
            heads: Mutex::new(PendingHeads::default()),
            requests: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            fwalt_requesters: AtomicU64::new(0),
            proxy_refused: AtomicU64::new(0),
            proxy_requests: Mutex::default(),
            push_proxy: OnceLock::new(),
            identity: OnceLock::new(),
            queue,
            trees: Mutex::new(VecDeque::new()),
            rate: RateLimit::default(),
            partial: Arc::default(),
        }
    }

    /// The files offered in part, and the address our downloads name.
    pub fn partial_shares(&self) -> &Arc<PartialShares> {
        &self.partial
    }

    /// Offers the files `partial` holds in part too (the downloads' own).
    pub fn with_partial_shares(self, partial: Arc<PartialShares>) -> Uploads {
        Uploads { partial, ..self }
    }

    /// The cap all uploads share, to read or change.
    pub fn rate_limit(&self) -> &RateLimit {
        &self.rate
    }

    /// The THEX body of `file`, from the cache or computed from the file;
    /// `None` if the file no longer hashes to its indexed root.
    async fn tree_body(&self, file: &SharedFile) -> io::Result<Option<Arc<Vec<u8>>>> {
        if let Some(body) = self.cached_tree(file) {
            return Ok(Some(body));
        }
        let (path, size) = (file.path.clone(), file.size);
        let tree = task::spawn_blocking(move || -> io::Result<thex::Tree> {
            use std::io::Read;
            let mut reader = std::fs::File::open(&path)?.take(size);
            let mut hasher = TreeHasher::for_depth(size, thex::served_depth(size));
            let mut buffer = vec![0; TREE_READ];
            loop {
                match reader.read(&mut buffer)? {
                    0 => return Ok(hasher.finish()),
                    read => hasher.update(&buffer[..read]),
                }
            }
        })
        .await?;
        if tree.size() != file.size || tree.root() != file.tth {
            return Ok(None);
        }
        let body = Arc::new(dime::serialize(&tree));
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        if trees.len() == MAX_CACHED_TREES {
            trees.pop_front();
        }
        trees.push_back((file.tth, body.clone()));
        Ok(Some(body))
    }

    /// The name of the shared file with this index, for the `GIV` line a PUSH asks for.
    pub fn file_name(&self, index: u32) -> Option<String> {
        self.library.by_index(index).map(|file| file.name)
    }

    /// Lets push-proxy requests (`/gnutella/push-proxy`) reach the node through `hook`.
    pub fn set_push_proxy(&self, hook: ProxyHook) {
        let _ = self.push_proxy.set(hook);
    }

    /// Lets browse requests (`GET /`) ask the node for our identity through `hook`.
    pub fn set_identity(&self, hook: IdentityHook) {
        let _ = self.identity.set(hook);
    }

    /// The hook push-proxy requests go through, once set.
    pub(crate) fn push_proxy(&self) -> Option<&ProxyHook> {
        self.push_proxy.get()
    }

    /// Counts a connection opened for a PUSH.
    /// Whether a push-proxy request from `requester` is passed on now
    /// (its budget, [`ProxyRequests`]); a refusal is counted.
    pub(crate) fn allow_proxy_request(&self, requester: IpAddr) -> bool {
        let allowed =
            self.proxy_requests.lock().unwrap_or_else(PoisonError::into_inner).allow(requester, Instant::now());
        if !allowed {
            self.proxy_refused.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    pub(crate) fn count_push(&self) {
        self.pushed.fetch_add(1, Ordering::Relaxed);
    }

    /// The THEX body of `file` if it costs no reading: cached, or the tree
    /// a download of it holds.
    fn cached_tree(&self, file: &SharedFile) -> Option<Arc<Vec<u8>>> {
        let trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = trees.iter().find(|(root, _)| *root == file.tth).map(|(_, body)| body.clone());
        cached.or_else(|| self.partial.tree_body(&file.tth))
    }

    /// The download mesh these uploads read and feed.
    pub fn alt_locations(&self) -> &Arc<AltLocations> {
        &self.alt
    }

    /// The counters now.
    pub fn snapshot(&self) -> UploadStats {
        let connections = self.lock_connections().values().sum();
        UploadStats {
            requests: self.requests.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            pushed: self.pushed.load(Ordering::Relaxed),
            fwalt_requesters: self.fwalt_requesters.load(Ordering::Relaxed),
            proxy_refused: self.proxy_refused.load(Ordering::Relaxed),
            uploading: self.bodies().len(),
            connections,
            reading_heads: self.heads.lock().unwrap_or_else(PoisonError::into_inner).queue.len(),
        }
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts are updated in single statements: nothing is half-done.
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a connection from `ip`, unless it has too many already.
    fn open_connection(&self, ip: IpAddr) -> Option<ConnectionGuard<'_>> {
        let mut connections = self.lock_connections();
        let total: usize = connections.values().sum();
        let count = connections.entry(ip).or_insert(0);
        if *count >= self.config.per_address || total >= MAX_CONNECTIONS {
            if *count == 0 {
                connections.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(ConnectionGuard { uploads: self, ip })
    }

    /// Admits a connection from `ip` to send its first request head,
    /// unless its address has too many heads under way; when all
    /// [`MAX_PENDING_HEADS`] are taken, the oldest is dropped. The receiver
    /// resolves when this head is dropped in turn.
    fn begin_head(&self, ip: IpAddr) -> Option<(HeadGuard<'_>, oneshot::Receiver<()>)> {
        let mut heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        if heads.queue.iter().filter(|head| head.ip == ip).count() >= self.config.per_address {
            return None;
        }
        if heads.queue.len() >= MAX_PENDING_HEADS {
            heads.queue.pop_front();
        }
        heads.next += 1;
        let (evict, evicted) = oneshot::channel();
        let id = heads.next;
        heads.queue.push_back(PendingHead { id, ip, _evict: evict });
        Some((HeadGuard { uploads: self, id }, evicted))
    }

    /// Whether `request` for `len` bytes is served now, by the PARQ queue's
    /// rules: a slot, or how long to wait and its place in the queue, if it
    /// has one.
    /// A free slot is taken before the queue decides (and given back unless
    /// it serves): partial-file and THEX requests take slots without the
    /// queue, and one taking the last between the queue's `Serve` (which
    /// ends the place) and the slot left a bare `503` and no place.
    fn admit(&self, request: upload_queue::Request, len: u64) -> Result<SlotGuard<'_>, (Duration, Option<QueuePlace>)> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, cap) = (self.slots(), self.rate.rate());
        let body = rate::slot_time(self.turnover(len), cap, total);
        let slot = self.take_slot(len);
        let free = match slot {
            Some(_) => total.saturating_sub(self.bodies().len()) + 1,
            None => 0,
        };
        match queue.admit(request, Slots { free, total, body }, Instant::now(), rand::random()) {
            Admission::Serve => slot.ok_or((self.config.retry_after, None)),
            Admission::Queued(place) => Err((place.retry, Some(place))),
            Admission::TooEarly { retry } | Admission::Full { retry } => Err((retry, None)),
        }
    }

    /// The slots bodies may use now: the configured ones, fewer under an
    /// upload cap ([`rate::upload_slots`]).
    fn slots(&self) -> usize {
        rate::upload_slots(self.config.slots, self.rate.rate())
    }

    /// The body length by which the slots turn over: the shortest of the
    /// bodies in them (the first to end; a place further back comes back
    /// early at worst, and is told again), or, with none, the asker's own
    /// `len`.
    fn turnover(&self, len: u64) -> u64 {
        self.bodies().iter().min().copied().unwrap_or(len)
    }

    /// The slots in use, by body length.
    fn bodies(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.bodies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes an upload slot for a body of `len` bytes, if one is free.
    fn take_slot(&self, len: u64) -> Option<SlotGuard<'_>> {
        let slots = self.slots();
        let mut bodies = self.bodies();
        if bodies.len() >= slots {
            return None;
        }
        bodies.push(len);
        Some(SlotGuard { uploads: self, len })
    }

    /// Takes the one tree computation, unless another runs: trees are
    /// computed outside the upload slots, one at a time.
    fn take_tree_computation(&self) -> Option<TreeGuard<'_>> {
        self.computing_tree.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok()?;
        Some(TreeGuard { uploads: self })
    }
}

/// One counted connection; uncounted when dropped.
struct ConnectionGuard<'a> {
    uploads: &'a Uploads,
    ip: IpAddr,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        let mut connections = self.uploads.lock_connections();
        if let Some(count) = connections.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                connections.remove(&self.ip);
            }
        }
    }
}

/// The request heads being read, oldest first.
#[derive(Default)]
struct PendingHeads {
    next: u64,
    queue: VecDeque<PendingHead>,
}

struct PendingHead {
    id: u64,
    ip: IpAddr,
    /// Dropped to make room: the connection's reader then gives up.
    _evict: oneshot::Sender<()>,
}

/// One head being read; forgotten when dropped.
struct HeadGuard<'a> {
    uploads: &'a Uploads,
    id: u64,
}

impl Drop for HeadGuard<'_> {
    fn drop(&mut self) {
        let mut heads = self.uploads.heads.lock().unwrap_or_else(PoisonError::into_inner);
        heads.queue.retain(|head| head.id != self.id);
    }
}

/// One upload slot in use; freed when dropped.
struct SlotGuard<'a> {
    uploads: &'a Uploads,
    /// The length of its body.
    len: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut bodies = self.uploads.bodies();
        if let Some(index) = bodies.iter().position(|&len| len == self.len) {
            bodies.swap_remove(index);
        }
    }
}

/// The tree computation, given back when dropped.
struct TreeGuard<'a> {
    uploads: &'a Uploads,
}

impl Drop for TreeGuard<'_> {
    fn drop(&mut self) {
        self.uploads.computing_tree.store(false, Ordering::Release);
    }
}

/// Serves requests on one connection until the client is done, something
/// fails or a limit is hit. `first_line` is the request line the node has
/// read already.
pub(super) async fn serve_connection(
    uploads: &Uploads,
    remote: SocketAddr,
    first_line: Vec<u8>,
    mut reader: BufReader<TcpStream>,
    mut stream: TcpStream,
) {
    let mut connection = None;
    let mut first = Some(first_line);
    // `X-Features` comes once a connection (gtk-gnutella sends it on the first request).
    let mut fwalt = false;
    loop {
        let head = match first.take() {
            Some(line) => {
                let Some((_pending, evicted)) = uploads.begin_head(remote.ip()) else { break };
                let read = async_std::future::timeout(HEAD_TIMEOUT, http::read_request_head(line, &mut reader));
                match future::select(Box::pin(read), evicted).await {
                    Either::Left((head, _)) => head.ok(),
                    Either::Right(_) => None,
                }
            }
            None => match async_std::future::timeout(uploads.config.idle_timeout, reader.fill_buf()).await {
                Ok(Ok(more)) if !more.is_empty() => {
                    async_std::future::timeout(HEAD_TIMEOUT, http::read_request(&mut reader)).await.ok()
                }
                _ => None,
            },
        };
        if head.as_ref().is_some_and(Result::is_ok) && connection.is_none() {
            connection = uploads.open_connection(remote.ip());
        }
        let request = match head {
            Some(Ok(request)) => request,
            Some(Err(HttpError::Malformed { status, .. })) => {
                uploads.requests.fetch_add(1, Ordering::Relaxed);
                let _ = send_head(&mut stream, &plain_head(status, false), uploads.config.stall_timeout).await;
                break;
            }
            // Gone, failed or idle too long: nothing to answer.
            Some(Err(HttpError::Io(_))) | None => break,
        };
        uploads.requests.fetch_add(1, Ordering::Relaxed);
        if connection.is_none() {
            uploads.refused_busy.fetch_add(1, Ordering::Relaxed);
            let mut head = plain_head(503, false);
            head.headers.insert("Retry-After", uploads.config.retry_after.as_secs());
            let _ = send_head(&mut stream, &head, uploads.config.stall_timeout).await;
            break;
        }
        if !fwalt && alt::announces(request.headers.get("X-Features"), alt::FWALT) {
            fwalt = true;
            uploads.fwalt_requesters.fetch_add(1, Ordering::Relaxed);
        }
        let exchange = Exchange { uploads, remote, request: &request, fwalt };
        match exchange.answer(&mut stream).await {
            Ok(true) => continue,
            Ok(false) | Err(_) => break,
        }
    }
    drop(connection);
    linger(reader, stream).await;
}

/// Answers a request with `status` and closes: what the node does with a
/// first line too long to be anything but an oversized HTTP request line.
pub(super) async fn refuse(status: u16, reader: BufReader<TcpStream>, mut stream: TcpStream) {
    // A few bytes into an empty send buffer: waiting long would mean a dead peer.
    let _ = send_head(&mut stream, &plain_head(status, false), LINGER).await;
    linger(reader, stream).await;
}

/// Closes our side, then reads (and drops) what the peer still sends for a
/// moment: closing a socket with unread bytes resets the connection, which
/// can destroy our last answer before the peer has read it.
async fn linger(mut reader: BufReader<TcpStream>, stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = futures::io::sink();
    let _ = async_std::io::timeout(LINGER, async_std::io::copy((&mut reader).take(LINGER_BYTES), &mut sink)).await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// One request and what is needed to answer it.
struct Exchange<'a> {
    uploads: &'a Uploads,
    remote: SocketAddr,
    request: &'a Request,
    /// Whether the requester announced `fwalt`: it is told firewalled sources.
    fwalt: bool,
}

/// What a request target names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `/uri-res/N2R?urn:…`.
    Urn(Urn),
    /// `/uri-res/N2X?urn:…`, optionally followed by `;ROOT`: the file's tree.
    Tree(Urn),
    /// `/get/<index>/<name>`, the name decoded.
    Indexed { index: u32, name: String },
}

impl Exchange<'_> {
    /// Answers the request; `Ok(true)` if the connection may serve another.
    async fn answer(&self, stream: &mut TcpStream) -> io::Result<bool> {
        let uploads = self.uploads;
        let stall = uploads.config.stall_timeout;
        let request = self.request;
        let is_head = match request.method.as_str() {
            "GET" => false,
            "HEAD" => true,
            // The request may carry a body we do not know how to skip.
            _ => return send_head(stream, &plain_head(501, false), stall).await.map(|()| false),
        };
        // A GET with a body cannot be framed by us: answer, then close.
        let has_body = request.headers.get("Transfer-Encoding").is_some()
            || !matches!(request.headers.content_length(), Ok(None | Some(0)));
        let keep = request.keep_alive() && !has_body;
        if let Some(status) = super::push::proxy_request(uploads, request, self.remote.ip()).await {
            return send_head(stream, &plain_head(status, keep), stall).await.map(|()| keep);
        }
        if let Some(identity) = uploads.identity.get().filter(|_| browse::is_browse(request)) {
            let Ok(identity) = identity().recv().await else { return Ok(false) };
            let mut head = plain_head(200, keep);
            let body = browse::answer(request, &mut head, uploads.library.files(), identity);
            send_head(stream, &head, stall).await?;
            if !is_head {
                write_all(stream, &body, stall).await?;
            }
            return Ok(keep);
        }
        let (file, available) = match parse_target(&request.target).map(|target| target.and_then(|t| self.find(&t))) {
            Ok(Some(found)) => found,
            Ok(None) => return send_head(stream, &plain_head(404, keep), stall).await.map(|()| keep),
            Err(error) => {
                let status = error.status().unwrap_or(400);
                return send_head(stream, &plain_head(status, keep), stall).await.map(|()| keep);
            }
        };
        uploads.partial.note_downloader(&file, self.remote.ip(), request.headers.get("X-Node"));
        if let (Some(value), IpAddr::V4(reporter)) = (request.headers.get("X-Nalt"), self.remote.ip()) {
            let failed = alt::parse_x_alt(value);
            for urn in [file.sha1, file.sha256] {
                uploads.alt.apply_nalt(&urn, reporter, &failed);
            }
        }
        if matches!(parse_target(&request.target), Ok(Some(Target::Tree(_)))) {
            return self.answer_tree(stream, &file, is_head, keep).await;
        }
        let mut head = self.file_head(200, &file, keep);
        if let Some(available) = &available {
            head.headers.insert("X-Available-Ranges", available.to_header());
        }
        let range = match request.headers.get("Range").map(http::parse_range).transpose() {
            Ok(range) => range,
            Err(_) => {
                head.set_status(400);
                return send_head(stream, &head, stall).await.map(|()| keep);
            }
        };
        let opened = match available {
            Some(_) => File::open(&file.path).await.ok(),
            None => open_indexed(&file).await,
        };
        let Some(mut opened) = opened else {
            head.set_status(404);
            return send_head(stream, &head, stall).await.map(|()| keep);
        };
        let (start, end) = match range {
            None => (0, file.size),
            Some(range) => match range.resolve(file.size) {
                Some(bytes) => {
                    head.set_status(206);
                    head.headers.insert("Content-Range", ContentRange { range: Some(bytes), total: Some(file.size) });
                    bytes
                }
                None => {
                    head.set_status(416);
                    head.headers.insert("Content-Range", ContentRange { range: None, total: Some(file.size) });
                    return send_head(stream, &head, stall).await.map(|()| keep);
                }
            },
        };
        let (start, end) = match &available {
            Some(available) => match partial::restrict(&mut head, (start, end), available, file.size) {
                Some(bytes) => bytes,
                None => {
                    uploads.unavailable.fetch_add(1, Ordering::Relaxed);
                    return send_head(stream, &head, stall).await.map(|()| keep);
                }
            },
            None => (start, end),
        };
        head.headers.insert("Content-Length", end - start);
        if is_head || start == end {
            return send_head(stream, &head, stall).await.map(|()| keep);
        }
        let returned = request.headers.get("X-Queued").and_then(upload_queue::returned_id);
        // A file offered in part is not queued for (PARQ): its downloaders
        // have the swarm to turn to, and a place kept for one that went
        // elsewhere (or finished) would hold a free slot from the others.
        let admitted = match available {
            Some(_) => uploads.take_slot(end - start).ok_or((uploads.config.retry_after, None)),
            None => {
                let request =
                    upload_queue::Request { addr: self.remote.ip(), urn: file.sha1, id: returned, persistent: keep };
                uploads.admit(request, end - start)
            }
        };
        let _slot = match admitted {
            Ok(slot) => slot,
            Err((retry, place)) => {
                uploads.refused_busy.fetch_add(1, Ordering::Relaxed);
                head.set_status(503);
                head.headers.insert("Content-Length", 0);
                head.headers.remove("Content-Range");
                let retry = partial::retry_after(retry, available.is_some());
                head.headers.insert("Retry-After", retry.as_secs().max(1));
                if let Some(place) = place {
                    head.headers.insert("X-Queued", place.x_queued(uploads.slots()));
                }
                // The head of the queue asks again on this connection.
                let keep_open = place.is_some_and(|p| p.keep_open);
                if !keep_open {
                    head.headers.insert("Connection", "close");
                }
                send_head(stream, &head, stall).await?;
                return Ok(keep_open);
            }
        };
        uploads.partial.served(&file, start, end);
        send_head(stream, &head, stall).await?;
        send_body(uploads, &mut opened, stream, start, end).await?;
        Ok(keep)
    }

    /// Answers a request for `file`'s tree with its THEX body.
    async fn answer_tree(
        &self,
        stream: &mut TcpStream,
        file: &SharedFile,
        is_head: bool,
        keep: bool,
    ) -> io::Result<bool> {
        let uploads = self.uploads;
        let stall = uploads.config.stall_timeout;
        // A tree costs no upload slot, as gtk-gnutella serves them
        // (`uploads.c`, `upload_request_special`): a crowd fetching a new
        // release asks for it all at once, and gtk-gnutella asks for it as
        // soon as an answer names it (`X-Thex-URI`, a `503` that queues it
        // too); refused, it holds every download it has from us for the
        // `Retry-After`, its queued place included, past when the queue
        // expects it back. A tree at hand is a few KiB; computing one reads
        // the whole file, so one is computed at a time.
        let body = match uploads.cached_tree(file) {
            Some(body) => Some(body),
            None => {
                let Some(_computing) = uploads.take_tree_computation() else {
                    uploads.refused_busy.fetch_add(1, Ordering::Relaxed);
                    let mut head = plain_head(503, false);
                    head.headers.insert("Retry-After", uploads.config.retry_after.as_secs());
                    send_head(stream, &head, stall).await?;
                    return Ok(false);
                };
                uploads.tree_body(file).await?
            }
        };
        let Some(body) = body else {
            return send_head(stream, &plain_head(404, keep), stall).await.map(|()| keep);
        };
        let mut head = self.file_head(200, file, keep);
        head.headers.insert("Content-Type", "application/dime");
        head.headers.insert("Content-Length", body.len());
        send_head(stream, &head, stall).await?;
        if !is_head {
            rate::write_paced(&uploads.rate, stream, &body, stall).await?;
            uploads.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        Ok(keep)
    }

    /// The shared file a target names, found through the index only, or
    /// a file being downloaded and its available bytes.
    fn find(&self, target: &Target) -> Option<(SharedFile, Option<RangeSet>)> {
        let library = &self.uploads.library;
        let shared = match target {
            Target::Urn(urn) | Target::Tree(urn) => library.by_urn(urn),
            Target::Indexed { index, name } => library.by_index(*index).filter(|file| file.name == *name),
        };
        let (file, available) = match (shared, target) {
            // A seeded file is seeded however it is asked for.
            (Some(file), _) => {
                let seeding = self.uploads.partial.seeding(&file);
                (file, seeding)
            }
            (None, Target::Urn(urn) | Target::Tree(urn)) => {
                self.uploads.partial.find(urn).map(|(file, available)| (file, Some(available)))?
            }
            (None, Target::Indexed { .. }) => return None,
        };
        // HUGE §6.2.1: a downloader may say which content it expects, and a
        // file that is not it must not be served in its place.
        let expected: Vec<Urn> = self
            .request
            .headers
            .get_all("X-Gnutella-Content-URN")
            .chain(self.request.headers.get_all("X-Content-URN"))
            .flat_map(|value| value.split(','))
            .filter_map(|urn| urn.parse().ok())
            .collect();
        let matches = expected.is_empty() || expected.iter().any(|urn| *urn == file.sha1 || *urn == file.sha256);
        matches.then_some((file, available))
    }

    /// Up to [`X_ALT_SOURCES`] other sources of `file`, never the requester:
    /// the address it says it listens on (`X-Node`), or, if it does not
    /// say, any address of its IP.
    fn other_sources(&self, file: &SharedFile) -> Vec<SocketAddrV4> {
        let headers = &self.request.headers;
        let requester = headers
            .get("X-Node")
            .or_else(|| headers.get("X-Listen-IP"))
            .or_else(|| headers.get("Listen-IP"))
            .and_then(|value| alt::parse_x_alt(value).first().copied());
        let is_requester = |addr: &SocketAddrV4| match requester {
            // The swarm knows it by the IP its requests come from.
            Some(requester) => {
                *addr == requester || (IpAddr::V4(*addr.ip()) == self.remote.ip() && addr.port() == requester.port())
            }
            None => IpAddr::V4(*addr.ip()) == self.remote.ip(),
        };
        let mut sources = Vec::new();
        let verified = [file.sha1, file.sha256].map(|urn| self.uploads.alt.get(&urn, alt::MAX_SOURCES_PER_URN));
        for addrs in [self.uploads.partial.swarm(file)].into_iter().chain(verified) {
            for addr in addrs {
                if !is_requester(&addr) && !sources.contains(&addr) && sources.len() < X_ALT_SOURCES {
                    sources.push(addr);
                }
            }
        }
        sources
    }

    /// The head of an answer about `file`, with its URNs and other sources.
    fn file_head(&self, status: u16, file: &SharedFile, keep: bool) -> ResponseHead {
        let mut head = plain_head(status, keep);
        head.headers.insert("Content-Type", "application/binary");
        head.headers.insert("Accept-Ranges", "bytes");
        head.headers.insert("X-Gnutella-Content-URN", file.sha1);
        head.headers.insert("X-Content-URN", file.sha256);
        head.headers.insert("X-Thex-URI", format!("/uri-res/N2X?{};{}", file.sha1, file.tth));
        head.headers.insert("X-Features", alt::OUR_FEATURES);
        let mesh = &self.uploads.alt;
        let mut locations = Locations { direct: self.other_sources(file), ..Locations::default() };
        for urn in [file.sha1, file.sha256] {
            for location in mesh.firewalled(&urn, X_ALT_SOURCES) {
                if !locations.firewalled.iter().any(|l| l.servent == location.servent) {
                    locations.firewalled.push(location);
                }
            }
            for addr in mesh.failed_sources(&urn, X_ALT_SOURCES) {
                if !locations.failed.contains(&addr) {
                    locations.failed.push(addr);
                }
            }
        }
        locations.firewalled.truncate(X_ALT_SOURCES);
        locations.failed.truncate(X_ALT_SOURCES);
        locations.insert_into(&mut head.headers, self.fwalt);
        head
    }
}

/// A head with only what every answer carries; `Content-Length: 0` until
/// there is a body.
fn plain_head(status: u16, keep: bool) -> ResponseHead {
    let mut head = ResponseHead::new(status);
    head.headers.insert("Server", USER_AGENT);
    head.headers.insert("Content-Length", 0);
    head.headers.insert("Connection", if keep { "keep-alive" } else { "close" });
    head
}

/// Parses a request target into what it names; malformed targets (bad
/// escapes, NUL, an index that is not a number) are errors, targets of
/// another shape name nothing.
fn parse_target(target: &str) -> Result<Option<Target>, HttpError> {
    let bad = |reason| HttpError::Malformed { status: 400, reason };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if path.eq_ignore_ascii_case("/uri-res/N2R") {
        let urn = http::percent_decode(query.unwrap_or_default())?;
        return Ok(urn.parse().ok().map(Target::Urn));
    }
    if path.eq_ignore_ascii_case("/uri-res/N2X") {
        let urn = http::percent_decode(query.unwrap_or_default())?;
        // gtk-gnutella names the root after the URN: `urn:sha1:…;ROOT`.
        let urn = urn.split(';').next().unwrap_or_default();
        return Ok(urn.parse().ok().map(Target::Tree));
    }
    let Some(rest) = path.strip_prefix("/get/") else { return Ok(None) };
    let (index, name) = rest.split_once('/').ok_or(bad("no file name after /get/<index>"))?;
    if index.is_empty() || index.len() > 10 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("bad file index"));
    }
    let index = index.parse().map_err(|_| bad("bad file index"))?;
    let name = http::percent_decode(name)?;
    if name.contains('\0') {
        return Err(bad("NUL in a file name"));
    }
    Ok(Some(Target::Indexed { index, name }))
}

/// Opens the indexed file, if it is still the file that was hashed: a
/// regular file of the indexed length (the best check short of hashing;
/// the downloader verifies the URN in the end anyway).
async fn open_indexed(file: &SharedFile) -> Option<File> {
    let opened = File::open(&file.path).await.ok()?;
    let metadata = opened.metadata().await.ok()?;
    (metadata.is_file() && metadata.len() == file.size).then_some(opened)
}

/// Writes a response head.
async fn send_head(stream: &mut TcpStream, head: &ResponseHead, stall: Duration) -> io::Result<()> {
    write_all(stream, &head.encode(), stall).await
}

/// Sends bytes `start..end` of `file`; an error leaves the body short,
/// and the caller closes the connection.
async fn send_body(uploads: &Uploads, file: &mut File, stream: &mut TcpStream, start: u64, end: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(start)).await?;
    let mut left = end - start;
    let mut buffer = vec![0; usize::try_from(left).unwrap_or(usize::MAX).min(BODY_BUFFER)];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
        let read = file.read(&mut buffer[..want]).await?;
        if read == 0 {
            // Shorter than indexed: it changed under us; the short body
            // tells the downloader, which will not get the old length.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "shared file shrank while being sent"));
        }
        rate::write_paced(&uploads.rate, stream, &buffer[..read], uploads.config.stall_timeout).await?;
        uploads.bytes_sent.fetch_add(read as u64, Ordering::Relaxed);
        left -= read as u64;
    }
    Ok(())
}

/// Writes all of `bytes`, failing if the peer takes nothing for `stall`.
pub(super) async fn write_all(stream: &mut TcpStream, mut bytes: &[u8], stall: Duration) -> io::Result<()> {
    while !bytes.is_empty() {
        let written = async_std::io::timeout(stall, stream.write(bytes)).await?;
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "connection closed"));
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Result<Option<Target>, HttpError> {
        parse_target(text)
    }

    #[test]
    fn urn_targets_name_content() {
        let sha1 = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB";
        let urn: Urn = sha1.parse().unwrap();
        assert_eq!(target(&format!("/uri-res/N2R?{sha1}")).unwrap(), Some(Target::Urn(urn)));
        assert_eq!(target(&format!("/uri-res/n2r?{}", sha1.to_lowercase())).unwrap(), Some(Target::Urn(urn)));
        assert_eq!(
            target("/uri-res/N2R?urn%3Asha1%3APLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB").unwrap(),
            Some(Target::Urn(urn))
        );
        assert_eq!(target("/uri-res/N2R?urn:md5:AAAA").unwrap(), None);
        assert_eq!(target(&format!("/uri-res/N2X?{sha1}")).unwrap(), Some(Target::Tree(urn)));
        assert_eq!(
            target(&format!("/uri-res/N2X?{sha1};LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ")).unwrap(),
            Some(Target::Tree(urn))
        );
        assert_eq!(target("/uri-res/N2X?urn:md5:AAAA").unwrap(), None);
        assert_eq!(target("/uri-res/N2Y?urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB").unwrap(), None);
        assert!(target("/uri-res/N2R?urn%zz").is_err());
    }

    #[test]
    fn get_targets_name_an_index_and_a_decoded_name() {
        assert_eq!(
            target("/get/7/a%20b.img").unwrap(),
            Some(Target::Indexed { index: 7, name: "a b.img".to_string() })
        );
        assert_eq!(
            target("/get/7/%2e%2e/%2e%2e/etc/passwd").unwrap(),
            Some(Target::Indexed { index: 7, name: "../../etc/passwd".to_string() })
        );
        for bad in ["/get/x/a", "/get//a", "/get/7", "/get/99999999999/a", "/get/-1/a", "/get/1/a%00b", "/get/1/%"] {
            assert!(target(bad).is_err(), "{bad}");
        }
        assert_eq!(target("/etc/passwd").unwrap(), None);
        assert_eq!(target("/").unwrap(), None);
    }

    #[test]
    fn slots_are_counted_and_freed() {
        let library = Arc::new(Library::in_memory().unwrap());
        let config = UploadConfig { slots: 1, ..UploadConfig::default() };
        let uploads = Uploads::new(config, library, Arc::new(AltLocations::new()));
        let slot = uploads.take_slot(1);
        assert!(slot.is_some());
        assert!(uploads.take_slot(1).is_none());
        assert_eq!(uploads.snapshot().uploading, 1);
        drop(slot);
        assert!(uploads.take_slot(1).is_some());
    }

    /// The one slot sends a 256 KiB chunk (uncapped: about a second at
    /// [`rate::MIN_SLOT_RATE`]); the head of the queue asks for 64 MiB. Its
    /// turn comes when the chunk is sent: it is told the shortest wait. Told
    /// what its own body would take (cut to the longest, a minute), its
    /// place, expected until then, kept the freed slot idle for that minute,
    /// whenever requesters asked for more than the slots' bodies
    /// (gtk-gnutella asks for large ranges).
    #[test]
    fn the_retry_after_follows_the_bodies_in_the_slots_not_the_askers_own_length() {
        let library = Arc::new(Library::in_memory().unwrap());
        let config = UploadConfig { slots: 1, ..UploadConfig::default() };
        let uploads = Uploads::new(config, library, Arc::new(AltLocations::new()));
        let urn = Urn::Sha1([1; 20]);
        let request =
            |addr: &str| upload_queue::Request { addr: addr.parse().unwrap(), urn, id: None, persistent: false };
        let chunk = uploads.admit(request("192.0.2.1"), 256 << 10);
        assert!(chunk.is_ok(), "the chunk takes the free slot");
        let Err((retry, Some(place))) = uploads.admit(request("192.0.2.2"), 64 << 20) else { panic!("queued") };
        assert_eq!(place.position, 1);
        assert_eq!(retry, upload_queue::MIN_RETRY, "told {retry:?} for a turn one chunk away");
    }

    /// gtk-gnutella asks for a file's tree as soon as our `503` queues it,
    /// and a refusal holds its queued download from us past its turn.
    #[test]
    fn a_tree_is_computed_while_every_slot_is_busy_one_at_a_time() {
        let library = Arc::new(Library::in_memory().unwrap());
        let config = UploadConfig { slots: 1, ..UploadConfig::default() };
        let uploads = Uploads::new(config, library, Arc::new(AltLocations::new()));
        let _body = uploads.take_slot(1).unwrap();
        let computing = uploads.take_tree_computation();
        assert!(computing.is_some(), "the only slot is busy, a tree is still computed");
        assert!(uploads.take_tree_computation().is_none(), "one tree at a time");
        assert_eq!(uploads.snapshot().uploading, 1, "a tree takes no slot");
        drop(computing);
        assert!(uploads.take_tree_computation().is_some());
    }

    #[test]
    fn connections_per_address_are_limited_and_freed() {
        let library = Arc::new(Library::in_memory().unwrap());
        let uploads = Uploads::new(UploadConfig::default(), library, Arc::new(AltLocations::new()));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = uploads.open_connection(ip);
        let second = uploads.open_connection(ip);
        assert!(first.is_some() && second.is_some());
        assert!(uploads.open_connection(ip).is_none());
        assert!(uploads.open_connection("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(uploads.open_connection(ip).is_some());
        drop(second);
        assert_eq!(uploads.snapshot().connections, 0);
    }
}
