//! A source written by hand that serves a file's tree and only some of its
//! chunks, as a partial source says (PFSP): `X-Available-Ranges` in every
//! answer, `416` for a range outside them.

use std::net::{SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::sync::Arc;

use async_std::io::prelude::BufReadExt;
use async_std::io::{BufReader, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use search::thex::{dime, Tree};
use servent::transfer::download::plan::CHUNK_SIZE;

/// Serves `bytes` on a new port, holding only the chunks numbered `chunks`.
pub async fn source(bytes: Arc<Vec<u8>>, chunks: Range<u64>) -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(addr) = listener.local_addr().unwrap() else { unreachable!("bound on IPv4") };
    let thex = Arc::new(dime::serialize(&Tree::of(&bytes)));
    let size = bytes.len() as u64;
    let has = (chunks.start * CHUNK_SIZE)..(chunks.end * CHUNK_SIZE).min(size);
    task::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            task::spawn(serve(stream, bytes.clone(), thex.clone(), has.clone()));
        }
    });
    addr
}

async fn serve(stream: TcpStream, bytes: Arc<Vec<u8>>, thex: Arc<Vec<u8>>, has: Range<u64>) {
    let size = bytes.len() as u64;
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream;
    // gtk-gnutella drops a source whose answers name no `Server`.
    let available = format!("Server: stingy\r\nX-Available-Ranges: bytes {}-{}", has.start, has.end - 1);
    loop {
        let Some((target, range)) = read_request(&mut reader).await else { return };
        let reply = match range {
            Some((start, end)) if target.contains("/uri-res/N2R") && has.start <= start && end <= has.end => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Length: {}\r\n\
                     {available}\r\n\r\n",
                    end - 1,
                    end - start
                );
                [head.into_bytes(), bytes[start as usize..end as usize].to_vec()].concat()
            }
            Some(_) => format!(
                "HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\n\
                 Content-Length: 0\r\n{available}\r\n\r\n"
            )
            .into_bytes(),
            None if target.contains("/uri-res/N2X") => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", thex.len());
                [head.as_bytes(), &thex[..]].concat()
            }
            None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        };
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Reads one request head: its first line and its range (end exclusive).
pub async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Option<(u64, u64)>)> {
    let (mut target, mut range) = (String::new(), None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some((target, range));
        }
        if target.is_empty() {
            target = line.to_string();
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = value.split_once('-').unwrap();
            range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap() + 1));
        }
    }
}
