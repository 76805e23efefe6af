//! Fetching a file's Tiger tree (THEX) from one source, and checking it
//! against the root the download trusts.
//!
//! The tree is asked for at `/uri-res/N2X?urn:sha1:…`, where gtk-gnutella
//! and we serve it (and which our `X-Thex-URI` names). The answer must be
//! `200`, at most [`dime::MAX_BODY`] bytes, read within the I/O timeout,
//! and a THEX body for this size whose nodes hash up to the root: a source
//! cannot make the download check chunks against a tree of its choosing.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use async_std::io::{BufReader, ReadExt, WriteExt};
use search::thex::{dime, Root, Tree};
use search::Urn;

use crate::transfer::http::{self, Request};

/// Fetches and checks the tree of the file `urn` (of `size` bytes, root
/// `root`) from `source`; the error says why it could not.
pub(super) async fn fetch(
    source: SocketAddrV4,
    urn: Urn,
    size: u64,
    root: Root,
    (timeout, local): (Duration, Option<Ipv4Addr>),
    user_agent: &str,
) -> Result<Tree, String> {
    let body = async_std::io::timeout(timeout, body(source, (timeout, local), urn, user_agent))
        .await
        .map_err(|e| e.to_string())?;
    dime::parse(&body, size, &root).map_err(|e| e.to_string())
}

async fn body(
    source: SocketAddrV4,
    (timeout, local): (Duration, Option<Ipv4Addr>),
    urn: Urn,
    user_agent: &str,
) -> std::io::Result<Vec<u8>> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let stream = super::fetch::connect(source, local, timeout).await?;
    let mut request = Request::new("GET", &format!("/uri-res/N2X?{urn}"));
    request.headers.insert("Host", source);
    request.headers.insert("User-Agent", user_agent);
    request.headers.insert("Connection", "close");
    (&stream).write_all(&request.encode()).await?;
    let mut reader = BufReader::new(stream);
    let head = http::read_response_head(&mut reader).await.map_err(|e| invalid(e.to_string()))?;
    if head.status != 200 {
        return Err(invalid(format!("answered {} {}", head.status, head.reason)));
    }
    let length = match head.headers.content_length() {
        Ok(Some(length)) if length <= dime::MAX_BODY as u64 => length,
        Ok(Some(length)) => return Err(invalid(format!("a tree of {length} bytes is too large"))),
        _ => return Err(invalid("no Content-Length".into())),
    };
    let mut body = Vec::with_capacity(length as usize);
    reader.take(length).read_to_end(&mut body).await?;
    if body.len() as u64 != length {
        return Err(invalid("the tree ended early".into()));
    }
    Ok(body)
}
