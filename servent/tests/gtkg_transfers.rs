//! Transfers with gtk-gnutella 1.2.3 (see `common::gtkg`): files larger
//! than the 512 KiB it answers a connection's first range with, byte for
//! byte, in both directions. Skipped with a printed reason where gtk-gnutella cannot be built,
//! except in CI.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{share, start_with, varied_bytes, wait_indexed};
use servent::transfer::alt::AltLocations;
use servent::transfer::download::{DownloadRequest, DownloadState, Downloads, DownloadsConfig, Keep};
use servent::trust::SharedTrust;

/// How long gtk-gnutella may take to hash a file or answer on loopback.
const GTKG_PATIENCE: Duration = Duration::from_secs(120);

/// Waits until gtk-gnutella answers a `HEAD` for `urn` with a success:
/// until then it is still hashing the file and would answer `404`.
async fn wait_servable(gtkg: &Gtkg, urn: &str) {
    let deadline = Instant::now() + GTKG_PATIENCE;
    loop {
        if head_status(gtkg.addr, urn).await.is_some_and(|status| (200..300).contains(&status)) {
            return;
        }
        assert!(Instant::now() < deadline, "gtk-gnutella never served {urn}\n{}", gtkg.diagnose());
        task::sleep(Duration::from_millis(500)).await;
    }
}

async fn head_status(addr: SocketAddr, urn: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("HEAD /uri-res/N2R?{urn} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    async_std::io::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("gtk-gnutella listens on IPv4 here"),
    }
}

/// Downloads `len` bytes shared by gtk-gnutella and checks them.
fn download_from_gtk_gnutella(len: usize) {
    let theirs = varied_bytes(len);
    // gtk-gnutella shares only files whose extension it knows (`scan_extensions`).
    let name = format!("SEBLINUX-gtkg-{len}.iso");
    let Some(gtkg) = Gtkg::start(&[(&name, &theirs)], Options::default()) else { return };
    gtkg.wait_shared(1, GTKG_PATIENCE);
    let (digests, _) = search::hash_reader(&theirs[..]).unwrap();
    let sha1 = digests.sha1_urn();
    task::block_on(async {
        wait_servable(&gtkg, &sha1.to_string()).await;
        let dir = tempfile::tempdir().unwrap();
        let config = DownloadsConfig::new(dir.path().join("partial"), dir.path().join("downloads"));
        let downloads = Downloads::spawn(config, Arc::new(AltLocations::new()), SharedTrust::default(), |_| {});
        let id = downloads
            .start(DownloadRequest {
                urns: vec![sha1, digests.sha256_urn()],
                name: name.clone(),
                size: len as u64,
                sources: vec![v4(gtkg.addr)],
                signature: None,
                keep: Keep::NotFake,
            })
            .await
            .unwrap();
        let done = async_std::future::timeout(GTKG_PATIENCE, downloads.wait(id)).await;
        let done = done.unwrap_or_else(|_| {
            let now = task::block_on(downloads.get(id)).unwrap();
            panic!("the download from gtk-gnutella did not end: {now:#?}\n{}", gtkg.diagnose())
        });
        let done = done.unwrap();
        assert_eq!(done.state, DownloadState::Complete, "{done:#?}\n{}", gtkg.diagnose());
        let path = done.path.clone().unwrap();
        assert!(std::fs::read(&path).unwrap() == theirs, "{} differs from gtk-gnutella's file", path.display());
        let source = &done.sources[0];
        assert_eq!((source.bytes, source.errors), (len as u64, 0), "{done:#?}");
    });
}

#[test]
fn a_file_of_several_mebibytes_comes_from_gtk_gnutella_byte_identical() {
    download_from_gtk_gnutella(6 * 1024 * 1024 + 12_345);
}

#[test]
fn a_100_mib_file_comes_from_gtk_gnutella_byte_identical() {
    download_from_gtk_gnutella(100 * 1024 * 1024);
}

#[test]
fn gtk_gnutella_downloads_a_100_mib_file_from_us_byte_identical() {
    let len = 100 * 1024 * 1024;
    let ours = varied_bytes(len);
    // It downloads (and shares) only names with an extension it knows.
    let name = "SEBLINUX-ours-100mib.iso";
    let Some(gtkg) = Gtkg::start(&[], Options::default()) else { return };
    task::block_on(async {
        let files = share(&[(name, &ours)]);
        let node = start_with(&[], Some(files.path()), |_| {}).await;
        let hashing = Instant::now() + GTKG_PATIENCE;
        while node.library().totals().0 < 1 {
            assert!(Instant::now() < hashing, "our servent did not index the 100 MiB file");
            task::sleep(Duration::from_millis(200)).await;
        }
        wait_indexed(&node, "seblinux", 1).await;
        let query = search::Query { words: "seblinux".into(), urns: Vec::new(), limit: 1 };
        let file = node.library().search(&query).unwrap().remove(0);
        let source = format!("http://{}/uri-res/N2R?{}", node.listen_addr(), file.sha1);
        let magnet = format!("magnet:?xt={}&dn={name}&xl={len}&xs={source}", file.sha1);
        let answer = gtkg.shell(&format!("download add \"{magnet}\""));
        assert!(!answer.contains("could not"), "{answer}");
        let done = gtkg.completed(name);
        // 100 MiB over loopback, then its own SHA-1 check before it moves the file.
        gtkg.wait_until("its 100 MiB download from us", GTKG_PATIENCE * 3, || done.exists());
        assert!(std::fs::read(&done).unwrap() == ours, "its copy differs from ours");
        assert!(node.uploads().snapshot().bytes_sent >= len as u64);
        node.shutdown().await;
    });
}
