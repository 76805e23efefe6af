//! HTTP on the Gnutella port, where uploads will be served.
//!
//! Until uploads exist, every request is read (within bounds) and answered
//! properly: `404 Not Found` for `GET` and `HEAD`, `501 Not Implemented`
//! for other methods, `400`/`431` for requests that break the limits, and
//! the connection is closed.

use async_std::io::{BufReader, WriteExt};
use async_std::net::TcpStream;

use crate::handshake::{HANDSHAKE_TIMEOUT, MAX_HEADERS};
use crate::node::read_line;

/// Answers one HTTP request whose request line has been read already.
pub async fn serve(request_line: Vec<u8>, mut reader: BufReader<TcpStream>, mut stream: TcpStream) {
    let status = match async_std::io::timeout(HANDSHAKE_TIMEOUT, read_headers(&mut reader)).await {
        Ok(()) => {
            let method = request_line.split(|&b| b == b' ').next().unwrap_or_default();
            match method {
                b"GET" | b"HEAD" => "404 Not Found",
                _ => "501 Not Implemented",
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => "431 Request Header Fields Too Large",
        Err(_) => "400 Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nServer: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        crate::config::USER_AGENT
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Reads header lines up to the empty one, refusing too many or too long.
async fn read_headers(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    for _ in 0..=MAX_HEADERS {
        if read_line(reader).await?.is_empty() {
            return Ok(());
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "too many header lines"))
}
