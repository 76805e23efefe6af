//! File transfers with other servents: HTTP on the Gnutella port.
//!
//! Servents fetch files from each other over plain HTTP/1.1, on the same
//! port as Gnutella links: the node reads a connection's first line and
//! hands anything that looks like an HTTP request to [`serve`]. The pieces:
//!
//! - [`http`]: the bounded codec both sides use (request and response
//!   heads, `Range`, `Content-Range`, percent-encoding);
//! - [`upload`]: serving shared files by URN or by index and name, with
//!   ranges, keep-alive, slots and timeouts;
//! - [`alt`]: the download mesh, the other sources known per URN, which
//!   `X-Alt` headers carry in both directions;
//! - [`download`] and [`magnet`]: the other direction, fetching content
//!   named by URN or magnet link from the sources that have it;
//! - [`push`]: both directions with firewalled servents, over a connection
//!   the uploader opens with `GIV`.

pub mod alt;
pub mod browse;
pub mod download;
pub mod http;
pub mod magnet;
pub mod parq;
pub mod partial;
pub mod push;
pub mod rate;
pub mod seed;
pub mod upload;
pub mod upload_queue;

use std::net::SocketAddr;

use async_std::io::BufReader;
use async_std::net::TcpStream;

use upload::Uploads;

/// Serves HTTP requests on a connection whose first line, `request_line`,
/// the node has read already; returns when the connection is closed.
pub async fn serve(
    uploads: &Uploads,
    remote: SocketAddr,
    request_line: Vec<u8>,
    reader: BufReader<TcpStream>,
    stream: TcpStream,
) {
    upload::serve_connection(uploads, remote, request_line, reader, stream).await;
}

/// Answers `status` (`414` for a first line longer than
/// [`http::MAX_REQUEST_LINE`]) and closes the connection.
pub async fn refuse(status: u16, reader: BufReader<TcpStream>, stream: TcpStream) {
    upload::refuse(status, reader, stream).await;
}
