//! Bandwidth caps over real TCP: `--max-upload-rate` holds for all uploads
//! together, `--max-download-rate` for all downloads together, and the API
//! reads and changes both.
//!
//! Only lower bounds on time are asserted (a capped transfer of N bytes at
//! R bytes per second takes at least 0.8 N/R): a loaded machine makes a
//! transfer slower, never faster, so no test depends on timing luck.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use common::{share, start, start_with, varied_bytes, wait_indexed, PATIENCE};
use futures::future::join_all;
use servent::api;
use servent::transfer::download::{DownloadRequest, DownloadState, Downloads, DownloadsConfig, Keep};
use servent::transfer::http;
use servent::transfer::rate::{RateLimit, Rates};
use servent::trust::SharedTrust;

const NAME: &str = "SEBLINUX-rate-1.0.img";
const KIB: u64 = 1024;

/// Fetches the whole file by URN on a new connection; its body length.
async fn fetch_whole(addr: SocketAddr, urn: &str) -> usize {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /uri-res/N2R?{urn} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let head = http::read_response_head(&mut reader).await.unwrap();
    assert_eq!(head.status, 200);
    let mut body = Vec::new();
    async_std::io::timeout(PATIENCE, reader.read_to_end(&mut body)).await.unwrap();
    body.len()
}

#[test]
fn capped_uploads_share_the_cap_over_real_tcp() {
    task::block_on(async {
        let rate = 256 * KIB;
        let bytes = varied_bytes(512 * KIB as usize);
        let folder = share(&[(NAME, &bytes)]);
        let node = start_with(&[], Some(folder.path()), |config| {
            config.rates = Rates { max_upload_rate: rate, max_download_rate: 0 };
        })
        .await;
        wait_indexed(&node, "seblinux", 1).await;
        let urn = node.library().files()[0].sha1.to_string();
        let addr = node.listen_addr();
        // Two downloaders at once: 1 MiB in all, at 256 KiB/s together.
        let began = Instant::now();
        let lengths = join_all([fetch_whole(addr, &urn), fetch_whole(addr, &urn)]).await;
        let took = began.elapsed();
        assert_eq!(lengths, [bytes.len(), bytes.len()]);
        let least = Duration::from_secs_f64(2.0 * bytes.len() as f64 / rate as f64 * 0.8);
        assert!(took >= least, "2 × 512 KiB at 256 KiB/s took {took:?}, less than {least:?}");
        node.shutdown().await;
    });
}

#[test]
fn capped_downloads_read_no_faster_than_the_cap() {
    task::block_on(async {
        let rate = 512 * KIB;
        let bytes = varied_bytes(2 * 1024 * KIB as usize + 77);
        let folder = share(&[(NAME, &bytes)]);
        let source = start(&[], Some(folder.path())).await;
        wait_indexed(&source, "seblinux", 1).await;
        let SocketAddr::V4(source_addr) = source.listen_addr() else { panic!("IPv4") };
        let dir = tempfile::tempdir().unwrap();
        let config = DownloadsConfig {
            rate: Arc::new(RateLimit::new(rate)),
            ..DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"))
        };
        let downloads = Downloads::spawn(config, Arc::default(), SharedTrust::default(), |_| {});
        let (digests, _) = search::hash_reader(&bytes[..]).unwrap();
        let request = DownloadRequest {
            urns: vec![digests.sha1_urn(), digests.sha256_urn()],
            name: NAME.into(),
            size: bytes.len() as u64,
            sources: vec![SocketAddrV4::new(*source_addr.ip(), source_addr.port())],
            signature: None,
            keep: Keep::NotFake,
        };
        let began = Instant::now();
        let id = downloads.start(request).await.unwrap();
        let done = async_std::future::timeout(PATIENCE, downloads.wait(id)).await.unwrap().unwrap();
        let took = began.elapsed();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}");
        let least = Duration::from_secs_f64(bytes.len() as f64 / rate as f64 * 0.8);
        assert!(took >= least, "2 MiB at 512 KiB/s took {took:?}, less than {least:?}");
        downloads.shutdown().await;
        source.shutdown().await;
    });
}

/// Sends `method path` with a JSON body to the API; the status and body.
async fn call(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(api).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let head = http::read_response_head(&mut reader).await.unwrap();
    let mut text = Vec::new();
    reader.read_to_end(&mut text).await.unwrap();
    (head.status, serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null))
}

#[test]
fn the_api_shows_and_sets_the_caps_and_refuses_nonsense() {
    task::block_on(async {
        let node = start_with(&[], None, |config| {
            config.rates = Rates { max_upload_rate: 512 * KIB, max_download_rate: 0 };
        })
        .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        task::spawn(api::serve(node.clone(), None, listener, None));
        let (status, rates) = call(addr, "GET", "/api/rates", "").await;
        assert_eq!(status, 200);
        assert_eq!(rates, serde_json::json!({ "max_upload_rate": 524288, "max_download_rate": 0 }));
        let (status, rates) = call(addr, "POST", "/api/rates", r#"{"max_download_rate": "2M"}"#).await;
        assert_eq!(status, 200, "{rates}");
        assert_eq!(rates, serde_json::json!({ "max_upload_rate": 524288, "max_download_rate": 2097152 }));
        let (status, _) = call(addr, "POST", "/api/rates", r#"{"max_upload_rate": 0}"#).await;
        assert_eq!(status, 200);
        assert_eq!(node.rates(), Rates { max_upload_rate: 0, max_download_rate: 2 << 20 });
        for nonsense in [
            r#"{"max_upload_rate": "fast"}"#,
            r#"{"max_upload_rate": -1}"#,
            r#"{"max_download_rate": 18446744073709551615}"#,
            r#"{"max_download_rate": "99999G"}"#,
        ] {
            let (status, _) = call(addr, "POST", "/api/rates", nonsense).await;
            assert_eq!(status, 400, "{nonsense}");
        }
        assert_eq!(node.rates(), Rates { max_upload_rate: 0, max_download_rate: 2 << 20 });
        node.shutdown().await;
    });
}

#[test]
fn run_takes_the_caps_as_rates_and_refuses_nonsense() {
    use servent::cli::RunArgs;
    use structopt::StructOpt;
    let args = RunArgs::from_iter(["run", "--max-upload-rate", "512K", "--max-download-rate", "2M"]);
    let rates = args.config().unwrap().rates;
    assert_eq!(rates, Rates { max_upload_rate: 512 * KIB, max_download_rate: 2 << 20 });
    assert_eq!(RunArgs::from_iter(["run"]).config().unwrap().rates, Rates::default());
    for nonsense in ["fast", "-1", "1.5M", "99999G"] {
        assert!(RunArgs::from_iter_safe(["run", "--max-upload-rate", nonsense]).is_err(), "{nonsense}");
    }
}
