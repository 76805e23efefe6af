//! The servent's web page: search with verdict badges, downloads with
//! progress, the library, the trust store, the peers and the updater, in a
//! browser.
//!
//! The page is plain HTML, CSS and JavaScript with no build step, compiled
//! into the binary with `include_str!`; [`mount`] adds the routes that serve
//! it (`/` and `/assets/…`) to a tide server. Everything the page shows it
//! reads from the servent's JSON API under `/api/`, the same API the command
//! line uses, so this crate knows nothing of the servent's types.
//!
//! What it is not: it does not serve or guard the API, and it does not check
//! who is asking. The server it is mounted on decides that for every route,
//! these included (the servent's `api` module: `Host`, `Origin`, JSON
//! `POST`s, the token). The page asks for nothing outside its own origin,
//! and its `Content-Security-Policy` tells the browser to refuse anything
//! else.
//!
//! ```no_run
//! let mut app = tide::new();
//! web_ui::mount(&mut app);
//! ```
#![warn(missing_docs)]

use tide::http::mime::{self, Mime};
use tide::{Body, Response, StatusCode};

/// One file of the page, as served.
struct Asset {
    /// The path it is served at.
    path: &'static str,
    /// Its media type.
    mime: fn() -> Mime,
    /// Its bytes.
    body: &'static str,
}

/// The page's files: what `index.html` links to, and nothing else.
static ASSETS: &[Asset] = &[
    Asset { path: "/", mime: || mime::HTML, body: include_str!("../assets/index.html") },
    Asset { path: "/assets/app.js", mime: || mime::JAVASCRIPT, body: include_str!("../assets/app.js") },
    Asset { path: "/assets/style.css", mime: || mime::CSS, body: include_str!("../assets/style.css") },
    Asset { path: "/assets/icon.svg", mime: || mime::SVG, body: include_str!("../assets/icon.svg") },
];

/// What the browser may load or send from the page: its own files and
/// its own API, nothing from elsewhere, and no framing by other sites.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Adds the page's routes to `app`: `GET /` (the page) and `GET /assets/…`.
pub fn mount<State: Clone + Send + Sync + 'static>(app: &mut tide::Server<State>) {
    for asset in ASSETS {
        app.at(asset.path).get(move |_| async move { Ok(response(asset)) });
    }
}

fn response(asset: &Asset) -> Response {
    let mut body = Body::from_string(asset.body.to_string());
    body.set_mime((asset.mime)());
    Response::builder(StatusCode::Ok)
        .body(body)
        // A new servent version brings a new page: always ask.
        .header("Cache-Control", "no-cache")
        .header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .header("X-Content-Type-Options", "nosniff")
        .header("X-Frame-Options", "DENY")
        // The address may carry `?token=` on the first load.
        .header("Referrer-Policy", "no-referrer")
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tide::http::{Method, Request, Url};

    async fn get(path: &str) -> tide::http::Response {
        let mut app = tide::new();
        mount(&mut app);
        let request = Request::new(Method::Get, Url::parse("http://127.0.0.1:6347").unwrap().join(path).unwrap());
        app.respond(request).await.unwrap()
    }

    /// The values of every `src="…"` and `href="…"` in `html`.
    fn links(html: &str) -> Vec<&str> {
        ["src=\"", "href=\""]
            .iter()
            .flat_map(|attr| html.split(attr).skip(1).filter_map(|rest| rest.split('"').next()))
            .collect()
    }

    #[test]
    fn every_file_the_page_links_to_is_served_with_its_type() {
        async_std::task::block_on(async {
            let page = get("/").await;
            assert_eq!(page.status(), StatusCode::Ok);
            assert_eq!(page.content_type().unwrap().essence(), "text/html");
            assert_eq!(page["Content-Security-Policy"].as_str(), CONTENT_SECURITY_POLICY);
            let html = include_str!("../assets/index.html");
            let files: Vec<&str> = links(html).into_iter().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(files, ["/assets/app.js", "/assets/style.css", "/assets/icon.svg"]);
            for (path, essence) in files.iter().zip(["application/javascript", "text/css", "image/svg+xml"]) {
                let mut response = get(path).await;
                assert_eq!(response.status(), StatusCode::Ok, "{path}");
                assert_eq!(response.content_type().unwrap().essence(), essence, "{path}");
                assert_eq!(response["X-Content-Type-Options"].as_str(), "nosniff");
                let body = response.body_string().await.unwrap();
                assert_eq!(ASSETS.iter().find(|a| a.path == *path).unwrap().body, body);
            }
            assert_eq!(get("/assets/nothing.js").await.status(), StatusCode::NotFound);
        });
    }

    #[test]
    fn the_page_names_no_other_site() {
        for asset in ASSETS {
            // An XML namespace is a name, not an address to load.
            let body = asset.body.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            for outside in ["http://", "https://", "ws://", "wss://", "\"//", "'//", "(//", "`//"] {
                assert!(!body.contains(outside), "{} mentions {outside}", asset.path);
            }
        }
    }
}
