//! Who may use the API and the page: the rules every request passes before
//! any route sees it.
//!
//! The danger is a browser: any page it shows, from any site, can make it
//! send requests to `127.0.0.1`. The rules, checked in this order:
//!
//! 1. `Host` names this API: the address the connection came in on, or
//!    `localhost` with its port. A site that rebinds its own name to
//!    `127.0.0.1` (DNS rebinding) still sends its own name, and is refused.
//!    A request target in absolute form (`GET http://host/…`) must name the
//!    same host, since HTTP says it overrides `Host`.
//! 2. With a token (required when the API listens off loopback), every
//!    request under `/api/` carries `Authorization: Bearer TOKEN`. The page
//!    and its assets are the same static files for everyone and hold no
//!    data, so they load without it; the page sends the token it is given.
//! 3. An `Origin`, when the browser sends one, is this API's own
//!    (`http://` and the `Host`): another site's page can neither change
//!    anything here nor read an answer.
//! 4. `GET` and `HEAD` only read; `POST` is the only way to change anything
//!    and carries `Content-Type: application/json`, which no cross-site
//!    form can send (and a cross-site `fetch` only after a CORS preflight,
//!    which is never granted). Other methods are refused.
//!
//! [`check`] is the decision, a pure function of the request's head.

use std::fmt;

use tide::StatusCode;

/// A secret every API request must carry, as `Authorization: Bearer …`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

/// The shortest token accepted: long enough that guessing is hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

impl ApiToken {
    /// A token of at least [`MIN_TOKEN_LEN`] visible ASCII characters
    /// (what fits in a header and a URL unchanged).
    pub fn new(text: &str) -> Result<ApiToken, String> {
        if text.len() < MIN_TOKEN_LEN {
            return Err(format!("--api-token must be at least {MIN_TOKEN_LEN} characters long"));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("--api-token must be visible ASCII characters only, no spaces".into());
        }
        Ok(ApiToken(text.to_string()))
    }

    /// Whether an `Authorization` header value presents this token. Takes
    /// the same time whatever the value, so timing tells nothing of it.
    fn presented_in(&self, authorization: &str) -> bool {
        let Some((scheme, presented)) = authorization.trim().split_once(' ') else { return false };
        let (expected, presented) = (self.0.as_bytes(), presented.trim().as_bytes());
        let differences =
            expected.iter().zip(presented.iter().chain(std::iter::repeat(&0))).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        scheme.eq_ignore_ascii_case("bearer") && expected.len() == presented.len() && differences == 0
    }
}

/// Never printed: a token in a log is a token given away.
impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

/// What [`check`] reads of a request. A header sent more than once is
/// given as [`Head::REPEATED`], which matches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Head<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// `host:port` of the request's URL: the `Host` header's, unless the
    /// request line gave an absolute URL.
    pub target: Option<&'a str>,
    /// The address the connection came in on, `ip:port`.
    pub local_addr: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
}

impl Head<'_> {
    /// Stands for a header sent more than once.
    pub const REPEATED: &'static str = "\n";
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `Host` is not this API's address.
    #[error("request for another host refused")]
    ForeignHost,
    /// No token, or the wrong one.
    #[error("this API needs its token: Authorization: Bearer TOKEN")]
    Token,
    /// `Origin` is another site's.
    #[error("request from another site's page refused")]
    ForeignOrigin,
    /// A change not sent as a JSON `POST`.
    #[error("a POST must carry Content-Type: application/json")]
    NotJson,
    /// A method other than `GET`, `HEAD` and `POST`.
    #[error("only GET, HEAD and POST are answered")]
    Method,
}

impl Refusal {
    /// The status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Token => StatusCode::Unauthorized,
            Refusal::Method => StatusCode::MethodNotAllowed,
            Refusal::ForeignHost | Refusal::ForeignOrigin | Refusal::NotJson => StatusCode::Forbidden,
        }
    }
}

/// Whether a request with this head may go on to its route.
pub fn check(head: &Head<'_>, token: Option<&ApiToken>) -> Result<(), Refusal> {
    let host = head.host.map(str::to_ascii_lowercase).ok_or(Refusal::ForeignHost)?;
    let local = head.local_addr.ok_or(Refusal::ForeignHost)?;
    let port = local.rsplit_once(':').map(|(_, port)| port).ok_or(Refusal::ForeignHost)?;
    if host != local && host != format!("localhost:{port}") {
        return Err(Refusal::ForeignHost);
    }
    if head.target.is_some_and(|target| !target.eq_ignore_ascii_case(&host)) {
        return Err(Refusal::ForeignHost);
    }
    let api = head.path == "/api" || head.path.starts_with("/api/");
    if let Some(token) = token.filter(|_| api) {
        if !head.authorization.is_some_and(|value| token.presented_in(value)) {
            return Err(Refusal::Token);
        }
    }
    if head.origin.is_some_and(|origin| !origin.eq_ignore_ascii_case(&format!("http://{host}"))) {
        return Err(Refusal::ForeignOrigin);
    }
    match head.method {
        "GET" | "HEAD" => Ok(()),
        "POST" if head.content_type.is_some_and(is_json) => Ok(()),
        "POST" => Err(Refusal::NotJson),
        _ => Err(Refusal::Method),
    }
}

/// `application/json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "127.0.0.1:6347";

    fn get(path: &str) -> Head<'_> {
        Head { method: "GET", path, target: Some(LOCAL), local_addr: Some(LOCAL), host: Some(LOCAL), ..Head::default() }
    }

    fn post(path: &str) -> Head<'_> {
        Head { method: "POST", content_type: Some("application/json"), ..get(path) }
    }

    fn token() -> ApiToken {
        ApiToken::new("s3cret-s3cret-s3cret").unwrap()
    }

    #[test]
    fn own_address_and_localhost_are_answered() {
        assert_eq!(check(&get("/api/status"), None), Ok(()));
        let localhost = Head { host: Some("localhost:6347"), target: Some("localhost:6347"), ..get("/") };
        assert_eq!(check(&localhost, None), Ok(()));
        assert_eq!(check(&Head { host: Some("LocalHost:6347"), ..localhost }, None), Ok(()));
    }

    #[test]
    fn another_host_name_is_refused_even_on_the_right_socket() {
        for host in [Some("evil.example"), Some("evil.example:6347"), Some("localhost:80"), Some("127.0.0.1"), None] {
            assert_eq!(check(&Head { host, ..get("/api/status") }, None), Err(Refusal::ForeignHost), "{host:?}");
            assert_eq!(check(&Head { host, ..get("/") }, None), Err(Refusal::ForeignHost), "{host:?}");
        }
        let repeated = Head { host: Some(Head::REPEATED), ..get("/api/status") };
        assert_eq!(check(&repeated, None), Err(Refusal::ForeignHost));
        // `GET http://evil.example/api/status` with our own `Host`.
        let absolute = Head { target: Some("evil.example:80"), ..get("/api/status") };
        assert_eq!(check(&absolute, None), Err(Refusal::ForeignHost));
    }

    #[test]
    fn the_address_the_connection_came_in_on_is_the_host() {
        let lan = Head {
            local_addr: Some("192.0.2.10:6347"),
            host: Some("192.0.2.10:6347"),
            target: Some("192.0.2.10:6347"),
            ..get("/")
        };
        assert_eq!(check(&lan, None), Ok(()));
        let elsewhere = Head { host: Some("192.0.2.11:6347"), ..lan };
        assert_eq!(check(&elsewhere, None), Err(Refusal::ForeignHost));
        let ipv6 =
            Head { local_addr: Some("[::1]:6347"), host: Some("[::1]:6347"), target: Some("[::1]:6347"), ..get("/") };
        assert_eq!(check(&ipv6, None), Ok(()));
    }

    #[test]
    fn a_post_from_another_sites_page_is_refused() {
        let ours = Head { origin: Some("http://127.0.0.1:6347"), ..post("/api/downloads") };
        assert_eq!(check(&ours, None), Ok(()));
        for origin in ["http://evil.example", "null", "https://127.0.0.1:6347", "http://127.0.0.1:6348", Head::REPEATED]
        {
            let foreign = Head { origin: Some(origin), ..post("/api/downloads") };
            assert_eq!(check(&foreign, None), Err(Refusal::ForeignOrigin), "{origin}");
        }
        let read = Head { origin: Some("http://evil.example"), ..get("/api/library") };
        assert_eq!(check(&read, None), Err(Refusal::ForeignOrigin));
    }

    #[test]
    fn changes_are_json_posts_only() {
        assert_eq!(check(&post("/api/searches"), None), Ok(()));
        let charset = Head { content_type: Some("Application/JSON; charset=utf-8"), ..post("/api/searches") };
        assert_eq!(check(&charset, None), Ok(()));
        for content_type in
            [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data")]
        {
            let form = Head { content_type, ..post("/api/searches") };
            assert_eq!(check(&form, None), Err(Refusal::NotJson), "{content_type:?}");
        }
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
            let other = Head { method, ..post("/api/downloads/1") };
            assert_eq!(check(&other, None), Err(Refusal::Method), "{method}");
        }
    }

    #[test]
    fn with_a_token_every_api_request_carries_it_and_the_page_loads_without() {
        let token = token();
        assert_eq!(check(&get("/api/status"), Some(&token)), Err(Refusal::Token));
        assert_eq!(check(&get("/"), Some(&token)), Ok(()));
        assert_eq!(check(&get("/assets/app.js"), Some(&token)), Ok(()));
        let good = Head { authorization: Some("Bearer s3cret-s3cret-s3cret"), ..post("/api/downloads") };
        assert_eq!(check(&good, Some(&token)), Ok(()));
        assert_eq!(check(&Head { authorization: Some("bearer s3cret-s3cret-s3cret"), ..good }, Some(&token)), Ok(()));
        for wrong in ["Bearer s3cret-s3cret-s3cre", "Bearer s3cret-s3cret-s3cret2", "Basic s3cret-s3cret-s3cret", ""] {
            let head = Head { authorization: Some(wrong), ..good };
            assert_eq!(check(&head, Some(&token)), Err(Refusal::Token), "{wrong}");
        }
        let foreign_host = Head { host: Some("evil.example"), ..good };
        assert_eq!(check(&foreign_host, Some(&token)), Err(Refusal::ForeignHost));
    }

    #[test]
    fn tokens_are_long_visible_and_never_printed() {
        assert!(ApiToken::new("short").unwrap_err().contains("at least 16"));
        assert!(ApiToken::new("with a space in it ok").unwrap_err().contains("no spaces"));
        assert_eq!(format!("{:?}", token()), "ApiToken(…)");
    }

    #[test]
    fn refusals_are_answered_with_their_status() {
        assert_eq!(Refusal::ForeignHost.status(), StatusCode::Forbidden);
        assert_eq!(Refusal::ForeignOrigin.status(), StatusCode::Forbidden);
        assert_eq!(Refusal::NotJson.status(), StatusCode::Forbidden);
        assert_eq!(Refusal::Token.status(), StatusCode::Unauthorized);
        assert_eq!(Refusal::Method.status(), StatusCode::MethodNotAllowed);
    }
}
