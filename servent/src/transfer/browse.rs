//! Browse host: a servent's shared files, asked as gtk-gnutella and
//! LimeWire ask them (`GET /` with `Accept: application/x-gnutella-packets`)
//! and answered as a stream of QueryHit descriptors, deflated when the
//! request accepts `deflate` ([`answer`]); the client reads them as if a
//! search had brought them ([`browse`]).
//!
//! The request is HTTP/1.0 without `Accept-Encoding`, so that the answer is
//! plain descriptors up to the end of the connection (gtk-gnutella's
//! `uploads.c` sends chunks only to HTTP/1.1 and deflates only when asked).
//! Everything read is bounded: [`MAX_BROWSE_BYTES`] in all, descriptors
//! checked by the wire codec, only QueryHits kept.

use std::net::SocketAddr;
use std::time::Duration;

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use std::net::SocketAddrV4;

use async_std::channel::Receiver;
use servent_core::compression::Deflater;
use servent_core::wire::{self, Guid, Message, Payload, QueryHit, HEADER_LEN};

use super::http::{self, Request, ResponseHead};

/// What our QueryHits say of us, asked of the node for each browse:
/// servent GUID, address, whether firewalled, push proxies.
pub type Identity = (Guid, SocketAddrV4, bool, Vec<SocketAddrV4>);
/// How a browse request asks the node for our [`Identity`].
pub type IdentityHook = Box<dyn Fn() -> Receiver<Identity> + Send + Sync>;

/// Whether a request is a browse of our files: `GET /` accepting descriptors.
pub fn is_browse(request: &Request) -> bool {
    request.target == "/"
        && request
            .headers
            .get("Accept")
            .is_some_and(|a| a.split(',').any(|t| t.trim().eq_ignore_ascii_case("application/x-gnutella-packets")))
}

/// The answer to a browse: the body listing `files` as QueryHits from
/// `identity`, deflated if the request accepts it, its headers set on `head`.
pub fn answer(
    request: &Request,
    head: &mut ResponseHead,
    files: Vec<search::SharedFile>,
    identity: Identity,
) -> Vec<u8> {
    let (guid, advertised, firewalled, proxies) = identity;
    let mut body = Vec::new();
    for hit in servent_core::node::query_hits(files, advertised, guid, firewalled, &proxies) {
        let message = Message { guid: Guid::random(), ttl: 1, hops: 0, payload: Payload::QueryHit(hit) };
        body.extend(message.encode());
    }
    head.headers.insert("Content-Type", "application/x-gnutella-packets");
    if request.headers.has_token("Accept-Encoding", "deflate") {
        let mut deflated = Vec::new();
        if Deflater::default().deflate(&body, &mut deflated).is_ok() {
            head.headers.insert("Content-Encoding", "deflate");
            body = deflated;
        }
    }
    head.headers.insert("Content-Length", body.len());
    body
}

/// Bytes of descriptors read from one browsed servent at most.
pub const MAX_BROWSE_BYTES: usize = 16 << 20;

/// Reads the QueryHits of a browse answer's body: descriptors back to
/// back. Other descriptors are skipped; a malformed one ends the list.
pub fn read_hits(body: &[u8]) -> Result<Vec<QueryHit>, String> {
    let mut hits = Vec::new();
    let mut rest = body;
    while rest.len() >= HEADER_LEN {
        let header: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().map_err(|_| "short header".to_string())?;
        let length = HEADER_LEN + wire::decode_header(&header).map_err(|e| e.to_string())?.payload_len as usize;
        let Some(bytes) = rest.get(..length) else { return Err("a descriptor cut short".into()) };
        if let Payload::QueryHit(hit) = wire::decode(bytes).map_err(|e| e.to_string())?.payload {
            hits.push(hit);
        }
        rest = &rest[length..];
    }
    if rest.is_empty() {
        Ok(hits)
    } else {
        Err("a descriptor cut short".into())
    }
}

/// Browses the servent at `addr`: its QueryHits, or why not.
pub async fn browse(addr: SocketAddr, timeout: Duration) -> Result<Vec<QueryHit>, String> {
    let ask = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!(
            "GET / HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {}\r\nAccept: application/x-gnutella-packets\r\nConnection: close\r\n\r\n",
            crate::config::USER_AGENT
        );
        (&stream).write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let head = http::read_response_head(&mut reader).await.map_err(|e| format!("{addr}: {e}"))?;
        if head.status != 200 {
            return Err(format!("{addr} answered {} to a browse", head.status));
        }
        let packets = head.headers.get("Content-Type").is_some_and(|t| t.contains("application/x-gnutella-packets"));
        if !packets || head.headers.get("Content-Encoding").is_some() {
            return Err(format!("{addr} does not answer a browse with descriptors"));
        }
        let mut body = Vec::new();
        (&mut reader).take(MAX_BROWSE_BYTES as u64).read_to_end(&mut body).await.map_err(|e| e.to_string())?;
        read_hits(&body)
    };
    async_std::future::timeout(timeout, ask).await.map_err(|_| format!("browsing {addr} timed out"))?
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use servent_core::wire::{Guid, Message, QueryResult};

    use super::*;

    fn hit(n: u8) -> Message {
        let result = QueryResult {
            index: 1,
            size: 10,
            name: format!("file{n}.tar"),
            urns: Vec::new(),
            ggep: Default::default(),
        };
        let hit = QueryHit {
            port: 6346,
            ip: Ipv4Addr::LOCALHOST,
            speed: 1,
            results: vec![result],
            trailer: None,
            servent_guid: Guid([n; 16]),
            original: Default::default(),
        };
        Message { guid: Guid([n; 16]), ttl: 1, hops: 0, payload: Payload::QueryHit(hit) }
    }

    #[test]
    fn hits_back_to_back_are_read_and_a_cut_one_is_an_error() {
        let mut body = hit(1).encode();
        body.extend(hit(2).encode());
        let hits = read_hits(&body).unwrap();
        assert_eq!(hits.iter().map(|h| h.results[0].name.as_str()).collect::<Vec<_>>(), ["file1.tar", "file2.tar"]);
        assert!(read_hits(&body[..body.len() - 3]).is_err());
        assert!(read_hits(&[0xFF; 40]).is_err(), "garbage is no descriptor");
        assert_eq!(read_hits(&[]).unwrap(), Vec::new());
    }
}
