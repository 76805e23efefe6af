//! What the integration tests share: starting servents, sharing files,
//! waiting for a condition, and a raw Gnutella 0.6 peer typed by hand.
#![allow(dead_code)]

pub mod gtkg;
pub mod netns;
pub mod process;
pub mod stingy;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use servent::config::Config;
use servent::node::{self, NodeHandle};
use servent::wire::{self, Message, HEADER_LEN};

/// How long any condition may take before a test fails. Generous: tests
/// wait for conditions, never for luck, and this only bounds a hang.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A servent on 127.0.0.1 with an ephemeral port, in-memory state, sharing
/// `share` and connecting only to `peers`: of a test network on loopback
/// (`--dial-local`), which dials the local addresses its hits, pongs and
/// `X-Alt` name. A test of what a servent outside one refuses sets
/// `dial_local` back to `false`.
pub async fn start(peers: &[SocketAddr], share: Option<&Path>) -> NodeHandle {
    start_with(peers, share, |_| {}).await
}

/// As [`start`], with the configuration adjusted by `adjust`.
pub async fn start_with(peers: &[SocketAddr], share: Option<&Path>, adjust: impl FnOnce(&mut Config)) -> NodeHandle {
    let mut config = Config {
        data_dir: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        shares: share.map(Path::to_path_buf).into_iter().collect(),
        peers: peers.to_vec(),
        discover: false,
        rescan_interval: Duration::from_millis(200),
        dial_local: true,
        ..Config::default()
    };
    adjust(&mut config);
    node::start(config).await.expect("servent starts")
}

/// Bytes that differ along the file (xorshift), so that a chunk or range
/// written at the wrong offset cannot go unnoticed.
pub fn varied_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Writes `name` with `content` into `folder`, with its `.minisig` beside
/// it, signed by `key` as SEBLINUX-base 1.0.
pub fn sign_beside(key: &signing_tool::SecretKey, folder: &Path, name: &str, content: &[u8]) {
    std::fs::write(folder.join(name), content).unwrap();
    let mut signer = signing_tool::Signer::new();
    signer.update(content);
    let meta = signing_tool::ReleaseMeta {
        name: "SEBLINUX-base".into(),
        version: "1.0".into(),
        keywords: vec!["SEBLINUX".into()],
    };
    let minisig = signer.finish(key, name, Some(&meta), 1_700_000_000).unwrap();
    std::fs::write(folder.join(format!("{name}.minisig")), minisig.to_text()).unwrap();
}

/// A folder holding these files.
pub fn share(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    dir
}

/// Waits until `condition` holds, checking every 20 ms; fails the test
/// after [`PATIENCE`] with what was awaited.
pub async fn wait_for<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_within(what, PATIENCE, condition).await
}

/// As [`wait_for`], failing after `patience`: for what waits on another
/// servent's own timers (gtk-gnutella's).
pub async fn wait_for_within<F, Fut>(what: &str, patience: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    while !condition().await {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        task::sleep(Duration::from_millis(20)).await;
    }
}

/// A Gnutella peer written by hand, byte by byte.
pub struct RawPeer {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// Connects and completes a plain 0.6 handshake, typed as the spec shows it.
pub async fn raw_peer(addr: SocketAddr) -> RawPeer {
    let mut peer = RawPeer::connect(addr).await;
    peer.send_bytes(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: RawTest/1.0\r\nX-Ultrapeer: True\r\n\r\n").await;
    let response = peer.read_headers().await;
    assert!(response.starts_with("GNUTELLA/0.6 200"), "handshake refused: {response}");
    peer.send_bytes(b"GNUTELLA/0.6 200 OK\r\n\r\n").await;
    peer
}

impl RawPeer {
    /// A bare TCP connection.
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        RawPeer { stream: TcpStream::connect(addr).await.unwrap(), buffer: Vec::new() }
    }

    /// A connection already open.
    pub fn from_stream(stream: TcpStream) -> RawPeer {
        RawPeer { stream, buffer: Vec::new() }
    }

    /// Writes bytes, failing the test if the peer is gone.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Writes bytes; false if the connection is closed.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Writes one descriptor.
    pub async fn send(&mut self, message: &Message) {
        self.send_bytes(&message.encode()).await;
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match async_std::io::timeout(PATIENCE, self.stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads a header block up to its empty line.
    pub async fn read_headers(&mut self) -> String {
        self.try_read_headers().await.expect("connection closed during the handshake")
    }

    /// Reads a header block up to its empty line; `None` if the connection
    /// closes first.
    pub async fn try_read_headers(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buffer.drain(..end + 4).collect();
                return Some(String::from_utf8_lossy(&head).into_owned());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads one descriptor.
    pub async fn receive(&mut self) -> Message {
        self.try_receive().await.expect("connection closed while waiting for a descriptor")
    }

    /// Reads one descriptor; `None` once the peer has closed the connection.
    pub async fn try_receive(&mut self) -> Option<Message> {
        loop {
            if self.buffer.len() >= HEADER_LEN {
                let header: [u8; HEADER_LEN] = self.buffer[..HEADER_LEN].try_into().unwrap();
                let length = HEADER_LEN + wire::decode_header(&header).unwrap().payload_len as usize;
                if self.buffer.len() >= length {
                    let bytes: Vec<u8> = self.buffer.drain(..length).collect();
                    return Some(wire::decode(&bytes).unwrap());
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads descriptors until one matches.
    pub async fn receive_until(&mut self, wanted: impl Fn(&Message) -> bool) -> Message {
        loop {
            let message = self.receive().await;
            if wanted(&message) {
                return message;
            }
        }
    }

    /// Reads until the peer closes the connection (whatever it sent first).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buffer)
    }

    /// Fails unless the other side closes the connection.
    pub async fn expect_closed(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match async_std::io::timeout(PATIENCE, self.stream.read(&mut chunk)).await {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => panic!("the connection stayed open"),
                Err(_) => return,
            }
        }
    }
}

/// Waits until `a` has `b` among its peers (by the address `b` listens on),
/// so that a test never mistakes some other servent's connection for it.
pub async fn wait_connected(a: &NodeHandle, b: &NodeHandle) {
    let wanted = b.listen_addr().to_string();
    wait_for(&format!("{} to connect to {wanted}", a.listen_addr()), || async {
        a.peers().await.unwrap().iter().any(|p| p.listen.map(|l| l.to_string()) == Some(wanted.clone()))
    })
    .await;
}

/// Waits until `node` finds `count` files for `words` in its own index.
pub async fn wait_indexed(node: &NodeHandle, words: &str, count: usize) {
    let query = search::Query { words: words.to_string(), urns: Vec::new(), limit: 100 };
    wait_for(&format!("{words:?} to be indexed"), || async { node.library().search(&query).unwrap().len() == count })
        .await;
}
