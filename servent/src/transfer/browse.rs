//! Browse host: a servent's shared files, asked as gtk-gnutella and
//! LimeWire ask them (`GET /` with `Accept: application/x-gnutella-packets`)
//! and answered as a stream of QueryHit descriptors, deflated when the
//! request accepts `deflate` ([`answer`]); the client reads them as if a
//! search had brought them ([`browse`]).
//!
//! The request is HTTP/1.0 without `Accept-Encoding`, so that the answer is
//! plain descriptors up to the end of the connection (gtk-gnutella's
//! `uploads.c` sends chunks only to HTTP/1.1 and deflates only when asked).
//! Everything read is bounded: descriptors are read one by one as they
//! come and checked by the wire codec, [`MAX_BROWSE_BYTES`] in all,
//! [`MAX_BROWSE_FILES`] kept, within [`BROWSE_TIMEOUT`]; a malformed one
//! refuses the answer at once, an endless one at the byte bound.

use std::net::SocketAddr;
use std::time::Duration;

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use std::net::SocketAddrV4;

use async_std::channel::Receiver;
use servent_core::compression::Deflater;
use servent_core::searches::MAX_RESULTS_PER_SEARCH;
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

/// Bytes of descriptors read from one browsed servent at most: an answer
/// announcing or sending more is refused.
pub const MAX_BROWSE_BYTES: usize = 16 << 20;
/// Files kept from one browse at most, as many as a search keeps
/// ([`MAX_RESULTS_PER_SEARCH`]); descriptors past them are
/// checked and counted against [`MAX_BROWSE_BYTES`], not decoded.
pub const MAX_BROWSE_FILES: usize = MAX_RESULTS_PER_SEARCH;
/// How long browsing another servent may take, from connecting to the
/// last byte: a servent that trickles or stalls is given up on then.
pub const BROWSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The QueryHits of a browse answer, as its descriptors are read.
#[derive(Default)]
struct Hits {
    hits: Vec<QueryHit>,
    files: usize,
}

impl Hits {
    /// Decodes one descriptor; keeps it if it is a QueryHit, until as many
    /// files as a browse keeps are read (then the rest is only counted).
    fn take(&mut self, header: &wire::Header, payload: &[u8]) -> Result<(), String> {
        if self.files >= MAX_BROWSE_FILES {
            return Ok(());
        }
        if let Payload::QueryHit(hit) = wire::decode_payload(header, payload).map_err(|e| e.to_string())?.payload {
            self.files += hit.results.len();
            self.hits.push(hit);
        }
        Ok(())
    }
}

/// Why a body ending inside a descriptor is refused.
const CUT: &str = "a descriptor cut short";

/// Reads the QueryHits of a browse answer's body as its descriptors come,
/// back to back, until its end. Other descriptors are skipped; files past
/// [`MAX_BROWSE_FILES`] are not kept. The answer is refused at the first
/// malformed descriptor, at an end inside one, and past
/// [`MAX_BROWSE_BYTES`].
pub async fn read_hits<R: async_std::io::Read + Unpin>(body: &mut R) -> Result<Vec<QueryHit>, Refusal> {
    let (mut hits, mut read) = (Hits::default(), 0);
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        let got = read_up_to(body, &mut header).await?;
        if got == 0 {
            break;
        }
        if got < HEADER_LEN {
            return Err(Refusal::Malformed(CUT.into()));
        }
        let header = wire::decode_header(&header).map_err(|e| Refusal::Malformed(e.to_string()))?;
        read += HEADER_LEN + header.payload_len as usize;
        if read > MAX_BROWSE_BYTES {
            return Err(Refusal::TooLarge);
        }
        payload.resize(header.payload_len as usize, 0);
        if read_up_to(body, &mut payload).await? < payload.len() {
            return Err(Refusal::Malformed(CUT.into()));
        }
        hits.take(&header, &payload).map_err(Refusal::Malformed)?;
    }
    Ok(hits.hits)
}

/// Fills `buffer` from `body` unless it ends first; how many bytes came.
async fn read_up_to<R: async_std::io::Read + Unpin>(body: &mut R, buffer: &mut [u8]) -> Result<usize, Refusal> {
    let mut got = 0;
    while got < buffer.len() {
        match body.read(&mut buffer[got..]).await.map_err(|e| Refusal::Io(e.to_string()))? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Why a browse answer's body is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// It is larger than [`MAX_BROWSE_BYTES`].
    #[error("more than {} MiB", MAX_BROWSE_BYTES >> 20)]
    TooLarge,
    /// A descriptor does not decode, or the body ends inside one.
    #[error("malformed descriptors: {0}")]
    Malformed(String),
    /// Reading it failed.
    #[error("{0}")]
    Io(String),
}

/// Browses the servent at `addr`: its QueryHits, or why not. The answer is
/// refused as soon as it shows it is not descriptors, is larger than
/// [`MAX_BROWSE_BYTES`] or is malformed, and when it does not end within
/// `timeout`.
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
        let announced = head.headers.get("Content-Length").and_then(|l| l.trim().parse::<u64>().ok());
        if announced.is_some_and(|length| length > MAX_BROWSE_BYTES as u64) {
            return Err(format!("{addr} answered a browse with {}", Refusal::TooLarge));
        }
        let mut body = (&mut reader).take(announced.unwrap_or(u64::MAX));
        read_hits(&mut body).await.map_err(|refusal| match refusal {
            Refusal::Io(why) => format!("browsing {addr}: {why}"),
            refusal => format!("{addr} answered a browse with {refusal}"),
        })
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

    fn read(body: &[u8]) -> Result<Vec<QueryHit>, Refusal> {
        async_std::task::block_on(read_hits(&mut &body[..]))
    }

    #[test]
    fn hits_back_to_back_are_read_and_a_cut_one_is_an_error() {
        let mut body = hit(1).encode();
        body.extend(hit(2).encode());
        let hits = read(&body).unwrap();
        assert_eq!(hits.iter().map(|h| h.results[0].name.as_str()).collect::<Vec<_>>(), ["file1.tar", "file2.tar"]);
        assert!(matches!(read(&body[..body.len() - 3]), Err(Refusal::Malformed(_))));
        assert!(matches!(read(&body[..5]), Err(Refusal::Malformed(_))));
        assert!(matches!(read(&[0xFF; 40]), Err(Refusal::Malformed(_))), "garbage is no descriptor");
        assert_eq!(read(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn more_than_the_bound_in_bytes_is_refused() {
        let one = hit(1).encode();
        let fit = MAX_BROWSE_BYTES / one.len();
        let body: Vec<u8> = one.iter().copied().cycle().take((fit + 1) * one.len()).collect();
        assert!(matches!(read(&body), Err(Refusal::TooLarge)));
        assert!(read(&body[..fit * one.len()]).is_ok());
    }

    #[test]
    fn files_past_the_bound_are_not_kept_but_the_rest_is_still_checked() {
        let body: Vec<u8> = (0..MAX_BROWSE_FILES + 5).flat_map(|n| hit(n as u8).encode()).collect();
        assert_eq!(read(&body).unwrap().len(), MAX_BROWSE_FILES);
        let mut cut = body.clone();
        cut.truncate(body.len() - 1);
        assert!(read(&cut).is_err(), "a cut descriptor past the bound still refuses the answer");
    }
}
