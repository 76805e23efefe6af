//! The local JSON API on tide, under `/api/`: what the CLI and the web page
//! use to drive a running servent.
//!
//! The same server serves the web page (`/` and `/assets/…`, from the
//! `web-ui` crate). Every request passes the [`guard`] first: a `Host` that
//! names this API, an `Origin` (when sent) that is its own, changes only as
//! JSON `POST`s, and the `--api-token` on every `/api/` request when one is
//! set (it must be, off loopback). Nothing changes on a `GET`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/status` | [`Status`](crate::node::Status) |
//! | `GET /api/peers` | a list of [`PeerSnapshot`](crate::node::PeerSnapshot) |
//! | `GET /api/library` | a list of shared files |
//! | `POST /api/searches` `{"query": "SEBLINUX", "ttl": 7}` | `{"id": "…"}` |
//! | `GET /api/searches/:id` | [`SearchSnapshot`](crate::node::SearchSnapshot) |
//! | `POST /api/downloads` `{"target": "urn:sha1:…" or "magnet:?…"}` | `{"id": 1}` |
//! | `GET /api/downloads` | a list of [`DownloadSnapshot`](crate::transfer::download::DownloadSnapshot) |
//! | `GET /api/downloads/:id` | one [`DownloadSnapshot`](crate::transfer::download::DownloadSnapshot) |
//! | `POST /api/downloads/:id/cancel` | `{"cancelled": 1}` |
//! | `POST /api/downloads/:id/pause` | `{"paused": 1}` |
//! | `POST /api/downloads/:id/resume` | `{"resumed": 1}` |

pub mod guard;

use std::future::Future;
use std::pin::Pin;

use async_std::net::TcpListener;
use serde::Deserialize;
use tide::{Body, Next, Request, Response, StatusCode};

pub use self::guard::ApiToken;
use crate::node::{NodeError, NodeHandle};
use crate::transfer::download::{DownloadError, DownloadId};
use crate::wire::Guid;

/// A request to start a search.
#[derive(Debug, Deserialize)]
pub struct SearchRequest {
    /// Keywords, or a `urn:sha1:`/`urn:sha256:`.
    pub query: String,
    /// How far the Query travels (defaults to the maximum).
    pub ttl: Option<u8>,
}

#[derive(Clone)]
struct State {
    node: NodeHandle,
    /// What every `/api/` request must carry, if anything.
    token: Option<ApiToken>,
}

/// Serves the API and the page on `listener` until the servent stops;
/// with a `token`, every API request must present it.
pub async fn serve(node: NodeHandle, listener: TcpListener, token: Option<ApiToken>) -> std::io::Result<()> {
    let mut app = tide::with_state(State { node, token });
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
    app.at("/api/library").get(|req: Request<State>| async move { json(&req.state().node.library().files()) });
    app.at("/api/searches").post(|mut req: Request<State>| async move {
        let request: SearchRequest =
            req.body_json().await.map_err(|e| bad_request(format!("expected {{\"query\": …}}: {e}")))?;
        let ttl = request.ttl.unwrap_or(crate::routing::DEFAULT_MAX_TTL);
        match req.state().node.search(&request.query, ttl).await {
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
        let request: DownloadRequest =
            req.body_json().await.map_err(|e| bad_request(format!("expected {{\"target\": …}}: {e}")))?;
        match req.state().node.download(&request.target).await {
            Ok(id) => json(&serde_json::json!({ "id": id })),
            Err(e @ (NodeError::BadTarget(_) | NodeError::NotFound(_) | NodeError::Download(_))) => {
                Err(bad_request(e.to_string()))
            }
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
    app.listen(listener).await
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

/// A request to download.
#[derive(Debug, Deserialize)]
pub struct DownloadRequest {
    /// A `urn:sha1:`, a `urn:sha256:` or a `magnet:` link.
    pub target: String,
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
