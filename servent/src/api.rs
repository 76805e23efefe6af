//! The local JSON API on tide, under `/api/`: what the CLI and the web page
//! use to drive a running servent.
//!
//! The same server serves the web page (`/` and `/assets/…`, from the
//! `web-ui` crate). Every request passes the [`guard`] first: a `Host` that
//! names this API, an `Origin` (when sent) that is its own, changes only as
//! JSON `POST`s, and the `--api-token` on every `/api/` request when one is
//! set (it must be, off loopback). Nothing changes on a `GET`. A JSON body
//! is read only within [`MAX_BODY`] and [`BODY_TIMEOUT`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/status` | [`Status`](crate::node::Status) |
//! | `GET /api/peers` | a list of [`PeerSnapshot`](crate::node::PeerSnapshot) |
//! | `POST /api/peers` `{"addr": "IP:PORT" or "HOST:PORT"}` | `{"connecting": "IP:PORT"}` |
//! | `GET /api/shares` | the shared folders |
//! | `POST /api/shares` `{"dir": "/absolute/folder"}` | `{"dir": "…", "added": true}` (false: shared already) |
//! | `GET /api/library` | a list of [`LibraryEntry`](crate::node::LibraryEntry): shared files and their verdicts |
//! | `GET /api/trust` | a list of [`KeyEntry`](crate::trust::KeyEntry) |
//! | `POST /api/trust` `{"key": "RW…", "scope": ["SEBLINUX*"]}` | the [`KeyEntry`](crate::trust::KeyEntry) pinned |
//! | `POST /api/trust/remove` `{"key_id": "…"}` | `{"removed": "…"}` |
//! | `POST /api/searches` `{"query": "SEBLINUX"}` (`"ttl": 7` floods) | `{"id": "…"}` |
//! | `GET /api/searches/:id` | [`SearchSnapshot`](crate::node::SearchSnapshot) |
//! | `POST /api/downloads` `{"target": "urn:sha1:…" or "magnet:?…", "require_verified": false}` | `{"id": 1}` |
//! | `GET /api/downloads` | a list of [`DownloadSnapshot`](crate::transfer::download::DownloadSnapshot) |
//! | `GET /api/downloads/:id` | one [`DownloadSnapshot`](crate::transfer::download::DownloadSnapshot) |
//! | `POST /api/downloads/:id/cancel` | `{"cancelled": 1}` |
//! | `POST /api/downloads/:id/pause` | `{"paused": 1}` |
//! | `POST /api/downloads/:id/resume` | `{"resumed": 1}` |
//! | `GET /api/rates` | [`Rates`](crate::transfer::rate::Rates): the caps in bytes per second, 0 unlimited |
//! | `POST /api/rates` `{"max_upload_rate": "512K", "max_download_rate": 0}` (either, a number or a rate) | the [`Rates`](crate::transfer::rate::Rates) now |
//! | `GET /api/updates` | [`UpdaterStatus`](crate::updater::UpdaterStatus) |
//! | `POST /api/updates/run` `{"dry_run": false}` | [`PassReport`](crate::updater::PassReport) |
//! | `POST /api/install` `{"name": "SEBLINUX-base", "dry_run": false}` | a [`Decision`](crate::updater::Decision) |
//! | `POST /api/rollback` `{"name": "SEBLINUX-base"}` | a [`Decision`](crate::updater::Decision) |
//! | `POST /api/uninstall` `{"name": "SEBLINUX-base"}` | a [`Decision`](crate::updater::Decision) |

pub mod guard;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use async_std::stream::StreamExt;
use async_std::task;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use servent_core::address;
use tide::{Body, Next, Request, Response, StatusCode};

use signing_tool::KeyId;

pub use self::guard::ApiToken;
use crate::keysource;
use crate::node::{NodeError, NodeHandle};
use crate::peeraddr::PeerAddr;
use crate::transfer::download::{DownloadError, DownloadId, Keep};
use crate::transfer::rate::{self, Rates};
use crate::trust::TrustedKey;
use crate::updater::{UpdateError, Updater};
use crate::wire::Guid;

/// A request to start a search.
#[derive(Debug, Deserialize)]
pub struct SearchRequest {
    /// Keywords, or a `urn:sha1:`/`urn:sha256:`.
    pub query: String,
    /// Flood the Query this far; without it an ultrapeer widens the search
    /// dynamically until enough results come.
    pub ttl: Option<u8>,
}

#[derive(Clone)]
struct State {
    node: NodeHandle,
    updater: Option<Updater>,
    /// What every `/api/` request must carry, if anything.
    token: Option<ApiToken>,
}

/// The largest JSON body an API request may carry: every request of the
/// table above fits in a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// How long a request body has to arrive in full once its route reads it.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the API and the page on `listener` until the servent stops; the
/// update routes answer when there is an `updater`; with a `token`, every
/// API request must present it.
///
/// Each connection is read through a [`Connection`], so that a route
/// refusing a body (over [`MAX_BODY`], or not in full within
/// [`BODY_TIMEOUT`]) closes it instead of reading the rest.
pub async fn serve(
    node: NodeHandle,
    updater: Option<Updater>,
    listener: TcpListener,
    token: Option<ApiToken>,
) -> io::Result<()> {
    let app = app(State { node, updater, token });
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        match stream {
            Ok(stream) => {
                task::spawn(serve_connection(app.clone(), stream));
            }
            // Out of file descriptors, or a connection reset before it was
            // accepted: wait a moment rather than spin, then go on.
            Err(_) => task::sleep(Duration::from_millis(50)).await,
        }
    }
    Ok(())
}

/// Serves the requests of one connection until it closes or is cut.
async fn serve_connection(app: tide::Server<State>, stream: TcpStream) {
    // Read as IPv4 when IPv4-mapped (the API on `[::]` reached over IPv4),
    // so that the guard's loopback and Host checks see one form.
    let local_addr = stream.local_addr().ok().map(address::canonical);
    let peer_addr = stream.peer_addr().ok().map(address::canonical);
    let connection = Connection { stream, cut: Cut::default() };
    let cut = connection.cut.clone();
    let served = async_h1::accept(connection, |mut req| {
        let (app, cut) = (app.clone(), cut.clone());
        async move {
            req.set_local_addr(local_addr);
            req.set_peer_addr(peer_addr);
            req.ext_mut().insert(cut.clone());
            let mut res: tide::http::Response = app.respond(req).await?;
            if cut.is_cut() {
                res.insert_header("Connection", "close");
            }
            Ok(res)
        }
    })
    .await;
    // A client that goes away mid-request is no error of ours.
    drop(served);
}

/// Set by a route that refuses to read the rest of a request body: the
/// connection then reads as ended and closes after the answer.
#[derive(Clone, Default)]
struct Cut(Arc<AtomicBool>);

impl Cut {
    fn cut(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_cut(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// An API connection: a TCP stream whose reads end once it is [`Cut`],
/// which stops the HTTP server from draining a refused body.
#[derive(Clone)]
struct Connection {
    stream: TcpStream,
    cut: Cut,
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.cut.is_cut() {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// Reads a request's JSON body of the shape `expected` describes, within
/// [`MAX_BODY`] and [`BODY_TIMEOUT`]: a declared length over the limit is
/// refused (413) before a byte of the body is read, a body that grows past
/// it (chunked) when it does, and one that trickles is cut (408); either
/// way the connection closes.
async fn body_json<T: DeserializeOwned>(req: &mut Request<State>, expected: &str) -> tide::Result<T> {
    let cut = req.ext::<Cut>().cloned().unwrap_or_default();
    let refuse = |status, why: String| {
        cut.cut();
        tide::Error::from_str(status, why)
    };
    let too_large = || format!("request body over {MAX_BODY} bytes");
    if req.len().is_some_and(|len| len > MAX_BODY) {
        return Err(refuse(StatusCode::PayloadTooLarge, too_large()));
    }
    let mut bytes = Vec::new();
    let mut body = req.take_body().take(MAX_BODY as u64 + 1);
    match async_std::future::timeout(BODY_TIMEOUT, body.read_to_end(&mut bytes)).await {
        Err(_) => {
            let why = format!("request body not received within {} s", BODY_TIMEOUT.as_secs());
            return Err(refuse(StatusCode::RequestTimeout, why));
        }
        Ok(Err(e)) => return Err(refuse(StatusCode::BadRequest, format!("reading the request body: {e}"))),
        Ok(Ok(_)) if bytes.len() > MAX_BODY => return Err(refuse(StatusCode::PayloadTooLarge, too_large())),
        Ok(Ok(_)) => {}
    }
    serde_json::from_slice(&bytes).map_err(|e| bad_request(format!("expected {{\"{expected}\": …}}: {e}")))
}

/// The routes of the API and the page, behind the guard.
fn app(state: State) -> tide::Server<State> {
    let mut app = tide::with_state(state);
    // Errors leave as `{"error": "…"}`, so clients can show one clear line.
    app.with(tide::utils::After(|mut res: Response| async move {
        if let Some(message) = res.error().map(|e| e.to_string()) {
            res.set_body(Body::from_json(&serde_json::json!({ "error": message }))?);
        }
        Ok(res)
    }));
    app.with(admit);
    web_ui::mount(&mut app);
    app.at("/api/status")
        .get(|req: Request<State>| async move { json(&req.state().node.status().await.map_err(unavailable)?) });
    app.at("/api/peers")
        .get(|req: Request<State>| async move { json(&req.state().node.peers().await.map_err(unavailable)?) });
    app.at("/api/peers").post(|mut req: Request<State>| async move {
        let request: PeerRequest = body_json(&mut req, "addr").await?;
        // A name is checked by looking it up now, then kept and looked up
        // again by the node as a `--peer` name is.
        let peer = PeerAddr::parse(&request.addr).map_err(bad_request)?;
        let addrs = peer.resolve().await.map_err(bad_request)?;
        let node = &req.state().node;
        match peer {
            PeerAddr::Ip(addr) => node.connect(addr).await,
            PeerAddr::Name(host, port) => node.connect_name(host, port, addrs.clone()).await,
        }
        .map_err(unavailable)?;
        json(&serde_json::json!({ "connecting": addrs[0].to_string() }))
    });
    app.at("/api/shares").get(|req: Request<State>| async move { json(&req.state().node.shared_folders()) });
    app.at("/api/shares").post(|mut req: Request<State>| async move {
        let request: ShareRequest = body_json(&mut req, "dir").await?;
        let added = req.state().node.share_folder(&request.dir).map_err(bad_request)?;
        json(&serde_json::json!({ "dir": request.dir, "added": added }))
    });
    // A POST, as every request that makes the servent act: a page elsewhere
    // could make the user's browser GET it, and so probe the user's LAN.
    app.at("/api/browse").post(|mut req: Request<State>| async move {
        let request: BrowseRequest = body_json(&mut req, "addr").await?;
        let addr: SocketAddr = request.addr.parse().map_err(|_| bad_request("not an IP:PORT".into()))?;
        match req.state().node.browse(addr).await {
            Ok(results) => json(&results),
            Err(NodeError::Browse(why)) => Err(tide::Error::from_str(StatusCode::BadGateway, why)),
            Err(e) => Err(unavailable(e)),
        }
    });
    app.at("/api/library").get(|req: Request<State>| async move { json(&req.state().node.library_entries()) });
    app.at("/api/trust").get(|req: Request<State>| async move { json(&req.state().node.trusted_keys()) });
    app.at("/api/trust").post(|mut req: Request<State>| async move {
        let request: TrustRequest = body_json(&mut req, "key").await?;
        let mut resolved = keysource::resolve(&request.key).await.map_err(bad_request)?;
        resolved.trusted.scope.extend(request.scope);
        let TrustedKey { key, scope } = resolved.trusted;
        match req.state().node.trust_key(key, scope).await {
            Ok(entry) => json(&entry),
            Err(NodeError::Trust(e)) => Err(bad_request(e.to_string())),
            Err(e) => Err(unavailable(e)),
        }
    });
    app.at("/api/trust/remove").post(|mut req: Request<State>| async move {
        let request: DistrustRequest = body_json(&mut req, "key_id").await?;
        let id: KeyId = request.key_id.parse().map_err(|e| bad_request(format!("{}: {e}", request.key_id)))?;
        match req.state().node.distrust_key(id).await {
            Ok(true) => json(&serde_json::json!({ "removed": request.key_id })),
            Ok(false) => Err(tide::Error::from_str(StatusCode::NotFound, format!("key {id} is not trusted"))),
            Err(NodeError::Trust(e)) => Err(bad_request(e.to_string())),
            Err(e) => Err(unavailable(e)),
        }
    });
    app.at("/api/searches").post(|mut req: Request<State>| async move {
        let request: SearchRequest = body_json(&mut req, "query").await?;
        match req.state().node.search(&request.query, request.ttl).await {
            Ok(id) => json(&serde_json::json!({ "id": id.to_string() })),
            Err(NodeError::BadSearch(why)) => Err(bad_request(why)),
            Err(e) => Err(unavailable(e)),
        }
    });
    app.at("/api/searches/:id").get(|req: Request<State>| async move {
        let id: Guid = req.param("id")?.parse().map_err(|_| bad_request("not a search id".into()))?;
        match req.state().node.search_results(id).await.map_err(unavailable)? {
            Some(snapshot) => json(&snapshot),
            None => Err(tide::Error::from_str(StatusCode::NotFound, "no such search")),
        }
    });
    app.at("/api/downloads").get(|req: Request<State>| async move {
        let downloads = req.state().node.downloads().map_err(unavailable)?;
        json(&downloads.list().await.map_err(|e| unavailable(e.into()))?)
    });
    app.at("/api/downloads").post(|mut req: Request<State>| async move {
        let request: DownloadRequest = body_json(&mut req, "target").await?;
        let keep = if request.require_verified { Keep::Verified } else { Keep::NotFake };
        match req.state().node.download(&request.target, keep).await {
            Ok(id) => json(&serde_json::json!({ "id": id })),
            Err(
                e @ (NodeError::BadTarget(_)
                | NodeError::NotFound(_)
                | NodeError::Download(_)
                | NodeError::Fake { .. }
                | NodeError::NotVerified { .. }),
            ) => Err(bad_request(e.to_string())),
            Err(e) => Err(unavailable(e)),
        }
    });
    app.at("/api/downloads/:id").get(|req: Request<State>| async move {
        let id: DownloadId = req.param("id")?.parse().map_err(|_| bad_request("not a download id".into()))?;
        let downloads = req.state().node.downloads().map_err(unavailable)?;
        match downloads.get(id).await {
            Ok(snapshot) => json(&snapshot),
            Err(e) => Err(tide::Error::from_str(StatusCode::NotFound, e.to_string())),
        }
    });
    app.at("/api/downloads/:id/cancel").post(|req| control(req, Control::Cancel));
    app.at("/api/downloads/:id/pause").post(|req| control(req, Control::Pause));
    app.at("/api/downloads/:id/resume").post(|req| control(req, Control::Resume));
    app.at("/api/rates").get(|req: Request<State>| async move { json(&req.state().node.rates()) });
    app.at("/api/rates").post(|mut req: Request<State>| async move {
        let request: RatesRequest = body_json(&mut req, "max_upload_rate").await?;
        let node = &req.state().node;
        let now = node.rates();
        let rates = Rates {
            max_upload_rate: request
                .max_upload_rate
                .map_or(Ok(now.max_upload_rate), RateValue::bytes)
                .map_err(bad_request)?,
            max_download_rate: request
                .max_download_rate
                .map_or(Ok(now.max_download_rate), RateValue::bytes)
                .map_err(bad_request)?,
        };
        node.set_rates(rates.check().map_err(bad_request)?);
        json(&node.rates())
    });
    app.at("/api/updates").get(|req: Request<State>| async move { json(&updater_of(&req)?.status()) });
    app.at("/api/updates/run").post(|mut req: Request<State>| async move {
        let request: UpdateRequest = body_json(&mut req, "dry_run").await?;
        json(&updater_of(&req)?.pass(request.dry_run).await.map_err(update_error)?)
    });
    app.at("/api/install").post(|mut req: Request<State>| async move {
        let request: PackageRequest = body_json(&mut req, "name").await?;
        json(&updater_of(&req)?.install(&request.name, request.dry_run).await.map_err(update_error)?)
    });
    app.at("/api/rollback").post(|mut req: Request<State>| async move {
        let request: PackageRequest = body_json(&mut req, "name").await?;
        json(&updater_of(&req)?.rollback(&request.name).await.map_err(update_error)?)
    });
    app.at("/api/uninstall").post(|mut req: Request<State>| async move {
        let request: PackageRequest = body_json(&mut req, "name").await?;
        json(&updater_of(&req)?.uninstall(&request.name).await.map_err(update_error)?)
    });
    app
}

/// What the user can do to a running download.
#[derive(Clone, Copy)]
enum Control {
    Cancel,
    Pause,
    Resume,
}

async fn control(req: Request<State>, what: Control) -> tide::Result {
    let id: DownloadId = req.param("id")?.parse().map_err(|_| bad_request("not a download id".into()))?;
    let downloads = req.state().node.downloads().map_err(unavailable)?;
    let (done, answer) = match what {
        Control::Cancel => (downloads.cancel(id).await, "cancelled"),
        Control::Pause => (downloads.pause(id).await, "paused"),
        Control::Resume => (downloads.resume(id).await, "resumed"),
    };
    match done {
        Ok(()) => json(&serde_json::json!({ answer: id })),
        Err(e) => {
            let status = match e {
                DownloadError::Unknown(_) => StatusCode::NotFound,
                DownloadError::Ended(_) => StatusCode::Conflict,
                _ => StatusCode::ServiceUnavailable,
            };
            Err(tide::Error::from_str(status, e.to_string()))
        }
    }
}

/// A request for an update pass.
#[derive(Debug, Deserialize)]
pub struct UpdateRequest {
    /// Say what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A request about one package.
#[derive(Debug, Deserialize)]
pub struct PackageRequest {
    /// The package's signed name.
    pub name: String,
    /// Say what would change, change nothing (install only).
    #[serde(default)]
    pub dry_run: bool,
}

fn updater_of(req: &Request<State>) -> tide::Result<&Updater> {
    req.state()
        .updater
        .as_ref()
        .ok_or_else(|| tide::Error::from_str(StatusCode::NotFound, "this servent has no updater"))
}

fn update_error(e: UpdateError) -> tide::Error {
    let status = match e {
        UpdateError::Busy => StatusCode::Conflict,
        UpdateError::Install(_) => StatusCode::BadRequest,
        UpdateError::Node(_) => StatusCode::ServiceUnavailable,
    };
    tide::Error::from_str(status, e.to_string())
}

/// A request to pin a publisher key.
#[derive(Debug, Deserialize)]
pub struct TrustRequest {
    /// An `RW…` key line, a `.pub` file, or an `https://` page showing the key
    /// (with an optional `#SCOPE,…`).
    pub key: String,
    /// Package names the key may publish (exact, or prefixes ending in `*`);
    /// none: any name no other key's scope claims.
    #[serde(default)]
    pub scope: Vec<String>,
}

/// A request to unpin a key.
#[derive(Debug, Deserialize)]
pub struct DistrustRequest {
    /// Its key id, 16 hex digits.
    pub key_id: String,
}

/// A request to share one more folder.
#[derive(Debug, Deserialize)]
pub struct ShareRequest {
    /// Its absolute path on the servent's machine.
    pub dir: std::path::PathBuf,
}

/// A request to change the caps; a cap left out stays as it is.
#[derive(Debug, Deserialize)]
pub struct RatesRequest {
    /// All uploads together.
    pub max_upload_rate: Option<RateValue>,
    /// All downloads together.
    pub max_download_rate: Option<RateValue>,
}

/// A cap as a number of bytes per second or as the command line writes it (`512K`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RateValue {
    /// Bytes per second.
    Bytes(u64),
    /// `512K`, `2M`, `0`…
    Text(String),
}

impl RateValue {
    /// Bytes per second.
    fn bytes(self) -> Result<u64, String> {
        match self {
            RateValue::Bytes(bytes) => Ok(bytes),
            RateValue::Text(text) => rate::parse_rate(&text),
        }
    }
}

/// A request to connect to a servent.
#[derive(Debug, Deserialize)]
pub struct PeerRequest {
    /// `IP:PORT` or `HOST:PORT`.
    pub addr: String,
}

/// A request to list another servent's files.
#[derive(Debug, Deserialize)]
pub struct BrowseRequest {
    /// `IP:PORT`.
    pub addr: String,
}

/// A request to download.
#[derive(Debug, Deserialize)]
pub struct DownloadRequest {
    /// A `urn:sha1:`, a `urn:sha256:` or a `magnet:` link.
    pub target: String,
    /// Keep the file only if it is verified under a trusted key.
    #[serde(default)]
    pub require_verified: bool,
}

/// The middleware in front of every route: [`guard::check`] on the
/// request's head. The raw `Host` header is read, never tide's
/// `Request::host`, which believes `X-Forwarded-Host`.
fn admit<'a>(req: Request<State>, next: Next<'a, State>) -> Pin<Box<dyn Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let header = |name: &str| {
            req.header(name).map(|values| match values.iter().count() {
                1 => values.as_str(),
                _ => guard::Head::REPEATED,
            })
        };
        let method = req.method().to_string();
        let url = req.url();
        let target = url.host_str().zip(url.port_or_known_default()).map(|(host, port)| format!("{host}:{port}"));
        let head = guard::Head {
            method: &method,
            path: url.path(),
            target: target.as_deref(),
            local_addr: req.local_addr(),
            host: header("Host"),
            origin: header("Origin"),
            content_type: header("Content-Type"),
            authorization: header("Authorization"),
        };
        if let Err(refusal) = guard::check(&head, req.state().token.as_ref()) {
            let mut refused = Response::from(tide::Error::from_str(refusal.status(), refusal.to_string()));
            if refusal == guard::Refusal::Token {
                refused.insert_header("WWW-Authenticate", "Bearer");
            }
            return Ok(refused);
        }
        Ok(next.run(req).await)
    })
}

fn json<T: serde::Serialize>(value: &T) -> tide::Result {
    Ok(Response::builder(StatusCode::Ok).body(Body::from_json(value)?).build())
}

fn bad_request(why: String) -> tide::Error {
    tide::Error::from_str(StatusCode::BadRequest, why)
}

fn unavailable(e: NodeError) -> tide::Error {
    tide::Error::from_str(StatusCode::ServiceUnavailable, e.to_string())
}
