//! gtk-gnutella 1.2.3 (see `common::gtkg`) in our PARQ upload queue
//! (`transfer/upload_queue.rs`): past our only upload slot it is given a
//! place (`503` with `X-Queued`), comes back by its own timers, keeps its
//! place against a requester that comes back sooner to a free slot, and
//! gets the file.
//!
//! How it comes back (its `downloads.c`): at the head of our queue, our
//! `503` keeps the connection (a turn within 20 s) and it asks again on it
//! (its log: `position 1 out of 2` two seconds later), its tree download
//! waiting meanwhile (`Max. number of downloads for this host reached`).
//! Further back, a `503` with `X-Queued` on a connection we close makes
//! its source "passively queued"
//! (`download_queue_v`), which `download_pickup_queued` starts again after
//! the latest of our `Retry-After`, 20 s since the answer
//! (`download_retry_timeout_min`, the `timeout_delay` `download_retry`
//! gives a closed connection), the server's hold (`DOWNLOAD_SERVER_HOLD`,
//! 15 s, or a refusal's `Retry-After`) and 12 s since it last connected to
//! us (`DOWNLOAD_CONNECT_DELAY`). Our answer's `X-Thex-URI` also makes it
//! start a second download from us, the file's tree
//! (`download_handle_thex_uri_header`), which goes first when the hold
//! ends: it serves trees outside its upload slots (`uploads.c`,
//! `upload_request_special`), and a `503` for it holds every download
//! from us for its `Retry-After`.
//!
//! That tree download is why the test runs on public-looking addresses
//! (`common::netns`, root): unlike the magnet's source (`SOCK_F_FORCE`), it
//! is dialled only at a routable address (`download_start`,
//! `host_is_valid`); on loopback it sends a PUSH instead, finds no route,
//! and holds the server for `download_retry_refused_delay`, 180 s: the
//! queued file is not asked for again within its place's lifetime (seen
//! with a hand-written queueing server on loopback too).
//!
//! Skipped with a printed reason where gtk-gnutella cannot be built, or
//! without root, except in CI.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use common::gtkg::{Gtkg, Options};
use common::{netns, share, start_with, varied_bytes, wait_indexed, PATIENCE};
use servent::transfer::http::{self, ResponseHead};
use servent::transfer::parq::QueueTicket;
use servent::transfer::rate::Rates;
use servent_core::node::MAX_CONNECTS_PER_MINUTE;
use socket2::{Domain, SockAddr, Socket, Type};

/// The file gtk-gnutella fetches: 1 MiB, which it asks for in one request
/// (no `Range`), so that one turn in the queue gives it the whole file.
const NAME: &str = "SEBLINUX-parq-1.0.iso";
const LEN: usize = 1 << 20;
/// The file whose body holds the only slot while its downloader reads
/// nothing: larger than the socket buffers on loopback take.
const HOLDER_NAME: &str = "SEBLINUX-holder-1.0.iso";
const HOLDER_LEN: usize = 16 << 20;
/// What the other requester fetches meanwhile: small, so that what we
/// sent before its turn tells whether gtk-gnutella's body went first.
const OTHER_NAME: &str = "SEBLINUX-notes-1.0.txt";
const OTHER_LEN: usize = 4096;
/// Our upload cap: the holder's body would take a second at it, which is
/// what the queue tells (`Retry-After`), and it ends within a second once
/// the holder reads.
const CAP: u64 = 16 << 20;
/// The least time between two requests of the other requester, whatever
/// `Retry-After` says: ours cuts off an address that connects more often
/// (and we close after a `503`).
const POLL: Duration = Duration::from_secs(60 / MAX_CONNECTS_PER_MINUTE as u64);
/// gtk-gnutella's address: public range, no bogon (see `gtkg_udp.rs`).
const THEIRS: Ipv4Addr = Ipv4Addr::new(23, 1, 0, 1);
/// Our servent's; connections to it leave from gtk-gnutella's.
const OURS: Ipv4Addr = Ipv4Addr::new(23, 2, 0, 2);
/// The downloader holding our only slot, and the other requester.
const HOLDER: Ipv4Addr = Ipv4Addr::new(23, 3, 0, 3);
const OTHER: Ipv4Addr = Ipv4Addr::new(23, 4, 0, 4);
/// How long gtk-gnutella may take to come back and fetch the file.
const GTKG_PATIENCE: Duration = Duration::from_secs(120);

/// A connection to `to` from `from` (another host: one address holds one
/// place per file in our queue).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(from), 0))).unwrap();
    socket.connect(&SockAddr::from(to)).unwrap();
    TcpStream::from(std::net::TcpStream::from(socket))
}

/// Sends a `GET` of `urn` as a queueing downloader does (`X-Queue`, and
/// the place it holds, if any) and reads the answer's head.
async fn request(stream: TcpStream, urn: &str, place: Option<&QueueTicket>) -> (ResponseHead, BufReader<TcpStream>) {
    let mut text = format!("GET /uri-res/N2R?{urn} HTTP/1.1\r\nHost: test\r\nX-Queue: 1.0\r\nConnection: close\r\n");
    if let Some(queued) = place.and_then(QueueTicket::x_queued) {
        text.push_str(&format!("X-Queued: {queued}\r\n"));
    }
    text.push_str("\r\n");
    let mut writer = stream.clone();
    writer.write_all(text.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let head = async_std::future::timeout(PATIENCE, http::read_response_head(&mut reader)).await;
    (head.expect("an answer in time").expect("a well-formed answer"), reader)
}

/// The body of an answer, `Content-Length` bytes.
async fn body(head: &ResponseHead, reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let length = head.headers.content_length().unwrap().expect("a Content-Length");
    let mut body = vec![0; usize::try_from(length).unwrap()];
    async_std::io::timeout(PATIENCE, reader.read_exact(&mut body)).await.unwrap();
    body
}

/// A `503`'s `Retry-After`.
fn retry_after(head: &ResponseHead) -> Duration {
    let retry = head.headers.get("Retry-After").and_then(|r| r.parse().ok());
    Duration::from_secs(retry.unwrap_or_else(|| panic!("no Retry-After in {head:?}")))
}

/// Its place in our queue, from a `503` (`None` for a bare refusal).
fn place(head: &ResponseHead) -> Option<QueueTicket> {
    QueueTicket::from_headers(head.headers.get("X-Queued"), None, Some(retry_after(head)))
}

/// What gtk-gnutella's log says of its queue: each place we gave it, each
/// download of ours it put back, and why.
fn requeued(gtkg: &Gtkg) -> String {
    gtkg.log().lines().filter(|line| line.contains("queued")).collect::<Vec<_>>().join("\n")
}

#[test]
fn gtk_gnutella_queued_past_our_only_slot_keeps_its_place_and_gets_the_file() {
    let addresses = [(OURS, Some(THEIRS)), (THEIRS, None), (HOLDER, None), (OTHER, None)];
    if !netns::enter("gtk_gnutella_queued_past_our_only_slot_keeps_its_place_and_gets_the_file", &addresses) {
        return;
    }
    let ours = varied_bytes(LEN);
    let held = varied_bytes(HOLDER_LEN);
    let notes = vec![b'n'; OTHER_LEN];
    let Some(mut gtkg) = Gtkg::start(&[], Options::default()) else { return };
    gtkg.move_to(THEIRS);
    // It logs each place it is given (`parq.c`, parq_download_parse_queue_status)
    // and each time it puts a download of ours back in its queue, and why.
    gtkg.set("parq_debug", "1");
    gtkg.set("download_debug", "1");
    task::block_on(async {
        let files = share(&[(NAME, &ours), (HOLDER_NAME, &held), (OTHER_NAME, &notes)]);
        let node = start_with(&[], Some(files.path()), |c| {
            c.listen = SocketAddr::from((OURS, 0));
            c.uploads.slots = 1;
            c.rates = Rates { max_upload_rate: CAP, max_download_rate: 0 };
            // The holder reads nothing for a while.
            c.uploads.stall_timeout = GTKG_PATIENCE;
        })
        .await;
        wait_indexed(&node, "seblinux", 3).await;
        let urn = |name: &str| node.library().files().into_iter().find(|f| f.name == name).unwrap().sha1.to_string();
        let addr = node.listen_addr();

        // A downloader takes the only slot, and reads nothing for now.
        let (holder_head, mut holder) = request(connect_from(HOLDER, addr), &urn(HOLDER_NAME), None).await;
        assert_eq!(holder_head.status, 200, "{holder_head:?}");

        // gtk-gnutella asks for the file and is queued: its log says so.
        let sha1 = urn(NAME);
        let magnet = format!("magnet:?xt={sha1}&dn={NAME}&xl={LEN}&xs=http://{addr}/uri-res/N2R?{sha1}");
        let answer = gtkg.shell(&format!("download add \"{magnet}\""));
        assert!(!answer.contains("could not"), "{answer}");
        let queued = |log: &str| {
            log.lines().any(|l| l.contains(NAME) && l.contains("queued (version: 1.0, position 1 out of 1"))
        };
        gtkg.wait_until("it to be queued by us at position 1", PATIENCE, || queued(&gtkg.log()));
        let gtkg_queued = Instant::now();
        assert!(node.uploads().snapshot().refused_busy >= 1);

        // Another host asks: its place is behind gtk-gnutella's.
        let (head, _) = request(connect_from(OTHER, addr), &urn(OTHER_NAME), None).await;
        let mut ticket = place(&head).unwrap_or_else(|| panic!("the other requester was not queued: {head:?}"));
        let mut asked = Instant::now();
        assert_eq!((head.status, ticket.position, ticket.length), (503, 2, Some(2)), "{head:?}");

        // The slot stays busy until gtk-gnutella has asked again (on its
        // open connection; for the file's tree instead if its connection
        // closed): the holder's, gtk-gnutella's, the other's and that one.
        gtkg.wait_until("its next request", GTKG_PATIENCE, || node.uploads().snapshot().requests >= 4);
        // The holder reads its body: the slot frees, and the other
        // requester, back as often as it may, finds it free.
        assert!(body(&holder_head, &mut holder).await == held, "the holder's copy differs");

        // The other requester is served only once gtk-gnutella, back in
        // time, has had its turn: its whole body was sent before.
        let deadline = Instant::now() + GTKG_PATIENCE;
        let mut answers = Vec::new();
        let sent_before_its_turn = loop {
            task::sleep((asked + ticket.retry.max(POLL)).saturating_duration_since(Instant::now())).await;
            asked = Instant::now();
            let (head, mut reader) = request(connect_from(OTHER, addr), &urn(OTHER_NAME), Some(&ticket)).await;
            let sent = node.uploads().snapshot().bytes_sent;
            let at = gtkg_queued.elapsed().as_secs_f32();
            answers.push(format!("{at:.1} s: {} {:?}", head.status, head.headers.get("X-Queued")));
            if head.status == 200 {
                assert!(body(&head, &mut reader).await == notes, "the other requester's copy differs");
                break sent;
            }
            assert_eq!(head.status, 503, "{head:?}");
            match place(&head) {
                Some(place) => ticket = place,
                // Too early: refused, its place kept.
                None => ticket.retry = retry_after(&head),
            }
            assert!(
                Instant::now() < deadline,
                "the other requester was never served: {answers:?}\n{}",
                requeued(&gtkg)
            );
        };
        // Before its turn: the holder's body, gtk-gnutella's, a tree (a few
        // KiB), and a few KiB of its own at most.
        assert!(
            sent_before_its_turn >= (HOLDER_LEN + LEN) as u64,
            "the other requester was served before gtk-gnutella came back for its place \
             ({sent_before_its_turn} bytes sent by then; its answers {answers:?}); its queue:\n{}",
            requeued(&gtkg)
        );

        // gtk-gnutella has the whole file, byte for byte.
        let done = gtkg.completed(NAME);
        gtkg.wait_until("its download from us", GTKG_PATIENCE, || done.exists());
        assert!(std::fs::read(&done).unwrap() == ours, "its copy differs from ours");
        node.shutdown().await;
    });
}
