//! Uploads under clients that send request heads slowly, over real TCP:
//! they cannot take the connections of a client that sends a whole request.

mod common;

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use common::{share, start_with, wait_for, wait_indexed, PATIENCE};
use servent::transfer::http;
use servent::transfer::upload::{HEAD_TIMEOUT, MAX_CONNECTIONS, MAX_PENDING_HEADS};

/// More slow clients than the servent has connections.
const SLOW: usize = MAX_CONNECTIONS + 88;

#[async_std::test]
async fn slow_heads_cannot_take_every_connection_from_a_whole_request() {
    let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8 ^ (i >> 12) as u8).collect();
    let folder = share(&[("SEBLINUX-slow-1.0.img", &bytes)]);
    // Every client comes from 127.0.0.1 here: a per-address limit above
    // their number makes them stand for as many different addresses.
    let node = start_with(&[], Some(folder.path()), |config| config.uploads.per_address = 2 * SLOW).await;
    wait_indexed(&node, "seblinux", 1).await;
    let target = format!("/uri-res/N2R?{}", node.library().files()[0].sha1);

    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(node.listen_addr()).await.unwrap();
        // A request line and one header, and never the empty line.
        stream.write_all(format!("GET {target} HTTP/1.1\r\nHost: slow\r\n").as_bytes()).await.unwrap();
        slow.push(stream);
    }
    wait_for("the slow heads to be read", || async {
        let stats = node.uploads().snapshot();
        stats.connections + stats.reading_heads >= MAX_PENDING_HEADS
    })
    .await;
    assert_eq!(node.uploads().snapshot().connections, 0, "a slow head counted as a connection");

    let mut honest = TcpStream::connect(node.listen_addr()).await.unwrap();
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: honest\r\nRange: bytes=1000-1999\r\nConnection: close\r\n\r\n");
    honest.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(honest);
    let head = async_std::future::timeout(PATIENCE, http::read_response_head(&mut reader))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(head.status, 206, "{head:?}");
    let mut body = Vec::new();
    reader.read_to_end(&mut body).await.unwrap();
    assert!(body == bytes[1000..2000], "the range's bytes");

    // And every slow client is dropped soon: none is ever answered.
    let last = slow.pop().unwrap();
    let mut rest = Vec::new();
    let started = std::time::Instant::now();
    let read = async_std::future::timeout(PATIENCE, (&last).read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "a slow head kept its connection past {PATIENCE:?}");
    assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() <= HEAD_TIMEOUT * 3, "dropped after {:?}", started.elapsed());
    node.shutdown().await;
}
