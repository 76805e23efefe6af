use super::*;

fn ours(deflate: bool) -> Config {
    Config {
        user_agent: "Seblinux/0.1.0".to_owned(),
        listen: Some(addr("192.0.2.1:6346")),
        max_ttl: 7,
        deflate,
        role: Role::Ultrapeer,
        degree: 30,
        may_become_leaf: false,
        ultrapeer_query_routing: true,
        guid: None,
        live_since: None,
    }
}

fn theirs(deflate: bool) -> Config {
    Config { listen: Some(addr("198.51.100.2:6347")), max_ttl: 5, ..ours(deflate) }
}

fn leaf() -> Config {
    Config { role: Role::Leaf, listen: Some(addr("198.51.100.7:6346")), ..ours(true) }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The lines of CRLF-terminated handshake bytes.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut found = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.windows(2).position(|pair| pair == b"\r\n") {
        found.push(&rest[..end]);
        rest = &rest[end + 2..];
    }
    assert!(rest.is_empty(), "bytes after the last CRLF: {rest:?}");
    found
}

/// Feeds every line; all but the last must ask for more.
fn feed(machine: &mut Handshake, bytes: &[u8]) -> Step {
    let all = lines(bytes);
    let (last, before) = all.split_last().expect("no line to feed");
    for line in before {
        assert_eq!(machine.on_line(line), Ok(Step::Continue), "line {:?}", line.escape_ascii().to_string());
    }
    machine.on_line(last).unwrap()
}

fn written(step: Step) -> Vec<u8> {
    match step {
        Step::Write(bytes) => bytes,
        other => panic!("expected bytes to write, got {other:?}"),
    }
}

fn established(step: Step) -> (Vec<u8>, PeerInfo) {
    match step {
        Step::Established { write, peer } => (write, peer),
        other => panic!("expected an established link, got {other:?}"),
    }
}

/// Runs the three steps between two of our machines; returns (initiator's view, responder's view).
fn exchange(initiator: &Config, responder: &Config) -> (PeerInfo, PeerInfo) {
    let (mut a, hello) = Handshake::connect(initiator, addr("198.51.100.2:6347"));
    let mut b = Handshake::accept(responder, addr("192.0.2.1:40000"), Admission::Accept, Vec::new());
    let response = written(feed(&mut b, &hello));
    let (ack, a_sees) = established(feed(&mut a, &response));
    let (nothing, b_sees) = established(feed(&mut b, &ack));
    assert!(nothing.is_empty());
    (a_sees, b_sees)
}

/// A responder that has just received the initiator's CONNECT line.
fn responder_after_connect() -> Handshake {
    let mut machine = Handshake::accept(&ours(true), addr("203.0.113.9:51000"), Admission::Accept, Vec::new());
    assert_eq!(machine.on_line(b"GNUTELLA CONNECT/0.6"), Ok(Step::Continue));
    machine
}

/// An initiator that has just received a 200 status line.
fn initiator_after_200() -> Handshake {
    let (mut machine, _) = Handshake::connect(&ours(true), addr("203.0.113.9:6346"));
    assert_eq!(machine.on_line(b"GNUTELLA/0.6 200 OK"), Ok(Step::Continue));
    machine
}

#[test]
fn connect_request_bytes_are_exact() {
    let (_, hello) = Handshake::connect(&ours(true), addr("198.51.100.2:6347"));
    assert_eq!(
        String::from_utf8(hello).unwrap(),
        "GNUTELLA CONNECT/0.6\r\n\
         User-Agent: Seblinux/0.1.0\r\n\
         X-Ultrapeer: True\r\n\
         Listen-IP: 192.0.2.1:6346\r\n\
         Remote-IP: 198.51.100.2\r\n\
         GGEP: 0.5\r\n\
         Pong-Caching: 0.1\r\n\
         X-Query-Routing: 0.2\r\n\
         X-Ultrapeer-Query-Routing: 0.1\r\n\
         X-Degree: 30\r\n\
         X-Dynamic-Querying: 0.1\r\n\
         X-Max-TTL: 7\r\n\
         Bye-Packet: 0.1\r\n\
         Vendor-Message: 0.2\r\n\
         X-Requeries: False\r\n\
         Accept-Encoding: deflate\r\n\
         \r\n"
    );
}

#[test]
fn connect_request_without_deflate_or_listen_address_omits_those_headers() {
    let config = Config { listen: None, ..ours(false) };
    let (_, hello) = Handshake::connect(&config, addr("198.51.100.2:6347"));
    let hello = String::from_utf8(hello).unwrap();
    assert!(!hello.contains("Accept-Encoding"));
    assert!(!hello.contains("Listen-IP"));
    assert!(hello.ends_with("Bye-Packet: 0.1\r\nVendor-Message: 0.2\r\nX-Requeries: False\r\n\r\n"));
}

#[test]
fn response_bytes_are_exact() {
    let (_, hello) = Handshake::connect(&ours(true), addr("198.51.100.2:6347"));
    let suggested = vec![addr("203.0.113.5:6346"), addr("[2001:db8::1]:6346"), addr("203.0.113.6:6347")];
    let mut responder = Handshake::accept(&theirs(true), addr("192.0.2.1:40000"), Admission::Accept, suggested);
    let response = written(feed(&mut responder, &hello));
    assert_eq!(
        String::from_utf8(response).unwrap(),
        "GNUTELLA/0.6 200 OK\r\n\
         User-Agent: Seblinux/0.1.0\r\n\
         X-Ultrapeer: True\r\n\
         Listen-IP: 198.51.100.2:6347\r\n\
         Remote-IP: 192.0.2.1\r\n\
         GGEP: 0.5\r\n\
         Pong-Caching: 0.1\r\n\
         X-Query-Routing: 0.2\r\n\
         X-Ultrapeer-Query-Routing: 0.1\r\n\
         X-Degree: 30\r\n\
         X-Dynamic-Querying: 0.1\r\n\
         X-Max-TTL: 5\r\n\
         Bye-Packet: 0.1\r\n\
         Vendor-Message: 0.2\r\n\
         X-Requeries: False\r\n\
         Accept-Encoding: deflate\r\n\
         Content-Encoding: deflate\r\n\
         X-Try-Ultrapeers: 203.0.113.5:6346, 203.0.113.6:6347\r\n\
         \r\n"
    );
}

#[test]
fn exchange_with_deflate_compresses_both_ways() {
    let (initiator_sees, responder_sees) = exchange(&ours(true), &theirs(true));
    for peer in [&initiator_sees, &responder_sees] {
        assert!(peer.deflate_in && peer.deflate_out, "{peer:?}");
        assert!(peer.ultrapeer);
        assert_eq!(peer.user_agent.as_deref(), Some("Seblinux/0.1.0"));
    }
    assert_eq!(initiator_sees.listen, Some(addr("198.51.100.2:6347")));
    assert_eq!(initiator_sees.remote_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(responder_sees.listen, Some(addr("192.0.2.1:6346")));
    assert_eq!(responder_sees.remote_ip, Some("198.51.100.2".parse().unwrap()));
    assert_eq!(responder_sees.header("content-encoding"), Some("deflate"));
}

#[test]
fn exchange_without_deflate_sends_plain_both_ways() {
    let (initiator_sees, responder_sees) = exchange(&ours(false), &theirs(false));
    for peer in [initiator_sees, responder_sees] {
        assert!(!peer.deflate_in && !peer.deflate_out, "{peer:?}");
        assert_eq!(peer.header("Accept-Encoding"), None);
    }
}

#[test]
fn exchange_where_only_one_side_deflates_stays_plain() {
    let (initiator_sees, responder_sees) = exchange(&ours(true), &theirs(false));
    for peer in [initiator_sees, responder_sees] {
        assert!(!peer.deflate_in && !peer.deflate_out, "{peer:?}");
    }
}

#[test]
fn compression_is_negotiated_per_direction() {
    // The responder can inflate but chooses not to compress: only we compress.
    let mut initiator = initiator_after_200();
    let (ack, peer) = established(feed(&mut initiator, b"Accept-Encoding: deflate\r\n\r\n"));
    assert_eq!(ack, b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n");
    assert!(peer.deflate_out && !peer.deflate_in);

    // The responder compresses but cannot inflate: only it compresses.
    let mut initiator = initiator_after_200();
    let (ack, peer) = established(feed(&mut initiator, b"Content-Encoding: deflate\r\n\r\n"));
    assert_eq!(ack, b"GNUTELLA/0.6 200 OK\r\n\r\n");
    assert!(peer.deflate_in && !peer.deflate_out);
}

#[test]
fn responder_compresses_only_for_an_initiator_that_accepts_deflate() {
    let mut responder = responder_after_connect();
    let response = written(feed(&mut responder, b"User-Agent: Old/1.0\r\n\r\n"));
    let response = String::from_utf8(response).unwrap();
    assert!(response.contains("Accept-Encoding: deflate\r\n"));
    assert!(!response.contains("Content-Encoding"));
    let (_, peer) = established(feed(&mut responder, b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n"));
    assert!(peer.deflate_in && !peer.deflate_out);
}

#[test]
fn compression_we_did_not_offer_to_accept_is_an_error() {
    let (mut initiator, _) = Handshake::connect(&ours(false), addr("203.0.113.9:6346"));
    let result = lines(b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n")
        .into_iter()
        .map(|line| initiator.on_line(line))
        .last()
        .unwrap();
    assert_eq!(result, Err(HandshakeError::UnexpectedEncoding("deflate".to_owned())));

    let mut initiator = initiator_after_200();
    assert_eq!(initiator.on_line(b"Content-Encoding: gzip"), Ok(Step::Continue));
    assert_eq!(initiator.on_line(b""), Err(HandshakeError::UnexpectedEncoding("gzip".to_owned())));
}

#[test]
fn full_responder_writes_503_with_try_ultrapeers_and_refuses() {
    let (_, hello) = Handshake::connect(&ours(true), addr("198.51.100.2:6347"));
    let full = Admission::Full { try_ultrapeers: vec![addr("203.0.113.5:6346"), addr("203.0.113.6:6347")] };
    let mut responder = Handshake::accept(&theirs(true), addr("192.0.2.1:40000"), full, Vec::new());
    let Step::Refused { write, code, reason, try_ultrapeers } = feed(&mut responder, &hello) else {
        panic!("a full responder must refuse");
    };
    assert_eq!(
        String::from_utf8(write).unwrap(),
        "GNUTELLA/0.6 503 Full\r\n\
         User-Agent: Seblinux/0.1.0\r\n\
         Remote-IP: 192.0.2.1\r\n\
         X-Try-Ultrapeers: 203.0.113.5:6346, 203.0.113.6:6347\r\n\
         \r\n"
    );
    assert_eq!((code, reason.as_str()), (503, "Full"));
    assert!(try_ultrapeers.is_empty(), "the initiator suggested nobody");
    assert_eq!(responder.on_line(b"GNUTELLA/0.6 200 OK"), Err(HandshakeError::Finished));
}

#[test]
fn initiator_refused_with_503_reports_the_suggested_ultrapeers() {
    let (mut initiator, hello) = Handshake::connect(&ours(true), addr("198.51.100.2:6347"));
    let full = Admission::Full { try_ultrapeers: vec![addr("203.0.113.5:6346"), addr("203.0.113.6:6347")] };
    let mut responder = Handshake::accept(&theirs(true), addr("192.0.2.1:40000"), full, Vec::new());
    let Step::Refused { write: refusal, .. } = feed(&mut responder, &hello) else { panic!("expected a 503") };
    assert_eq!(
        feed(&mut initiator, &refusal),
        Step::Refused {
            write: Vec::new(),
            code: 503,
            reason: "Full".to_owned(),
            try_ultrapeers: vec![addr("203.0.113.5:6346"), addr("203.0.113.6:6347")],
        }
    );
}

#[test]
fn initiator_refusing_in_step_three_ends_the_responder_handshake() {
    let mut responder = responder_after_connect();
    written(feed(&mut responder, b"X-Ultrapeer: True\r\n\r\n"));
    let step = feed(
        &mut responder,
        b"GNUTELLA/0.6 403 Gnet connection not compressed\r\nContent-Encoding: gzip\r\nX-Try: 203.0.113.7:6346\r\n\r\n",
    );
    assert_eq!(
        step,
        Step::Refused {
            write: Vec::new(),
            code: 403,
            reason: "Gnet connection not compressed".to_owned(),
            try_ultrapeers: vec![addr("203.0.113.7:6346")],
        }
    );
}

#[test]
fn continuation_lines_are_folded_into_the_previous_header() {
    let mut initiator = initiator_after_200();
    let (_, peer) = established(feed(
        &mut initiator,
        b"X-Try-Ultrapeers: 203.0.113.1:6346,\r\n\t203.0.113.2:6346,\r\n    203.0.113.3:6346\r\nUser-Agent: Folded\r\n \r\n  Servent/2\r\n\r\n",
    ));
    assert_eq!(peer.header("X-Try-Ultrapeers"), Some("203.0.113.1:6346, 203.0.113.2:6346, 203.0.113.3:6346"));
    assert_eq!(peer.try_ultrapeers.len(), 3);
    assert_eq!(peer.user_agent.as_deref(), Some("Folded Servent/2"));
}

#[test]
fn header_names_are_case_insensitive() {
    let mut responder = responder_after_connect();
    let response = written(feed(
        &mut responder,
        b"user-agent: lower/1\r\nX-ULTRAPEER: true\r\naccept-encoding: Deflate\r\nlisten-ip: 198.51.100.7:6346\r\nREMOTE-IP: 192.0.2.1\r\n\r\n",
    ));
    assert!(String::from_utf8(response).unwrap().contains("Content-Encoding: deflate\r\n"));
    let (_, peer) = established(feed(&mut responder, b"GNUTELLA/0.6 200 OK\r\ncontent-encoding: DEFLATE\r\n\r\n"));
    assert_eq!(peer.user_agent.as_deref(), Some("lower/1"));
    assert!(peer.ultrapeer && peer.deflate_in && peer.deflate_out);
    assert_eq!(peer.listen, Some(addr("198.51.100.7:6346")));
    assert_eq!(peer.remote_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(peer.header("User-Agent"), Some("lower/1"));
}

#[test]
fn line_too_long_is_an_error() {
    let mut responder = responder_after_connect();
    let longest = format!("X-Filler: {}", "a".repeat(MAX_LINE - 2 - "X-Filler: ".len()));
    assert_eq!(responder.on_line(longest.as_bytes()), Ok(Step::Continue));
    let too_long = format!("{longest}a");
    assert_eq!(responder.on_line(too_long.as_bytes()), Err(HandshakeError::LineTooLong));
    assert_eq!(responder.on_line(b""), Err(HandshakeError::Finished));
}

#[test]
fn too_many_headers_is_an_error() {
    let mut responder = responder_after_connect();
    for n in 0..MAX_HEADERS {
        assert_eq!(responder.on_line(format!("X-Filler-{n}: x").as_bytes()), Ok(Step::Continue));
    }
    assert_eq!(responder.on_line(b" one continuation too many"), Err(HandshakeError::TooManyHeaders));
}

#[test]
fn binary_first_line_is_not_gnutella() {
    let mut responder = Handshake::accept(&ours(true), addr("203.0.113.9:51000"), Admission::Accept, Vec::new());
    let garbage: Vec<u8> = (0u8..=255).cycle().skip(200).take(300).collect();
    let Err(HandshakeError::NotGnutella(quoted)) = responder.on_line(&garbage) else {
        panic!("binary must not pass for a handshake");
    };
    assert!(quoted.starts_with("\\xc8\\xc9"), "{quoted}");
    assert!(quoted.ends_with("..."));
    assert!(quoted.is_ascii() && quoted.len() < 4 * QUOTED_BYTES + 4);
}

#[test]
fn gnutella_0_4_connect_is_refused() {
    let mut responder = Handshake::accept(&ours(true), addr("203.0.113.9:51000"), Admission::Accept, Vec::new());
    assert_eq!(
        responder.on_line(b"GNUTELLA CONNECT/0.4"),
        Err(HandshakeError::UnsupportedVersion { major: 0, minor: 4 })
    );
}

#[test]
fn later_protocol_versions_are_answered_at_0_6() {
    let mut responder = Handshake::accept(&ours(true), addr("203.0.113.9:51000"), Admission::Accept, Vec::new());
    let response = written(feed(&mut responder, b"GNUTELLA CONNECT/0.7\r\n\r\n"));
    assert!(response.starts_with(b"GNUTELLA/0.6 200 OK\r\n"));
}

#[test]
fn malformed_status_lines_are_errors() {
    let malformed: [&[u8]; 5] =
        [b"GNUTELLA OK", b"GNUTELLA/0.6 OK", b"GNUTELLA/x.6 200 OK", b"HTTP/1.1 200 OK", b"GNUTELLA/0.6 2000 OK"];
    for line in malformed {
        let (mut initiator, _) = Handshake::connect(&ours(true), addr("203.0.113.9:6346"));
        assert!(matches!(initiator.on_line(line), Err(HandshakeError::BadStatus(_))), "{line:?}");
    }
    let (mut initiator, _) = Handshake::connect(&ours(true), addr("203.0.113.9:6346"));
    assert_eq!(initiator.on_line(b"GNUTELLA/0.6 200"), Ok(Step::Continue), "the reason is optional");
}

#[test]
fn malformed_and_non_utf8_header_lines_are_skipped_without_harm() {
    let mut initiator = initiator_after_200();
    let (_, peer) = established(feed(
        &mut initiator,
        b"no colon here\r\n continuation of the junk\r\nBad Name: x\r\nUser-Agent: caf\xe9\xff/1\r\n\r\n",
    ));
    assert_eq!(peer.headers, vec![("User-Agent".to_owned(), "caf\u{fffd}\u{fffd}/1".to_owned())]);
}

#[test]
fn try_ultrapeers_skip_junk_entries_and_keep_at_most_twenty() {
    let mut initiator = initiator_after_200();
    let (_, peer) = established(feed(
        &mut initiator,
        b"X-Try-Ultrapeers: 203.0.113.1:6346, junk,203.0.113.2 , 0.0.0.0:6346, 203.0.113.3:0, 224.0.0.1:6346, \
          203.0.113.4:6348 extra, [2001:db8::1]:6346, 203.0.113.1:6346, 300.1.1.1:6346, 203.0.113.5:99999,,\r\n\
          X-Try: 198.51.100.9:6346\r\n\r\n",
    ));
    assert_eq!(
        peer.try_ultrapeers,
        vec![addr("203.0.113.1:6346"), addr("203.0.113.2:6346"), addr("203.0.113.4:6348"), addr("198.51.100.9:6346")]
    );

    let many: Vec<String> = (1..=30).map(|n| format!("10.0.0.{n}:6346")).collect();
    let mut initiator = initiator_after_200();
    let block = format!("X-Try-Ultrapeers: {}\r\n\r\n", many.join(","));
    let (_, peer) = established(feed(&mut initiator, block.as_bytes()));
    assert_eq!(peer.try_ultrapeers.len(), MAX_TRY_RECEIVED);
    assert_eq!(peer.try_ultrapeers[19], addr("10.0.0.20:6346"));
}

#[test]
fn we_send_at_most_ten_ipv4_try_ultrapeers() {
    let suggested: Vec<SocketAddr> = (1..=15).map(|n| addr(&format!("10.0.0.{n}:6346"))).collect();
    let mut responder = Handshake::accept(&ours(true), addr("203.0.113.9:51000"), Admission::Accept, suggested);
    let response = written(feed(&mut responder, b"GNUTELLA CONNECT/0.6\r\n\r\n"));
    let response = String::from_utf8(response).unwrap();
    let line = response.lines().find(|line| line.starts_with("X-Try-Ultrapeers: ")).unwrap();
    assert_eq!(line.matches(':').count(), 1 + MAX_TRY_SENT);
    assert!(line.ends_with("10.0.0.10:6346"));
}

#[test]
fn remote_ip_of_an_ipv4_mapped_peer_is_written_as_ipv4() {
    let (_, hello) = Handshake::connect(&ours(false), addr("[::ffff:203.0.113.9]:6346"));
    assert!(String::from_utf8(hello).unwrap().contains("Remote-IP: 203.0.113.9\r\n"));
}

#[test]
fn classify_first_line_tells_protocols_apart() {
    assert_eq!(classify_first_line(b"GNUTELLA CONNECT/0.6"), FirstLine::GnutellaConnect);
    assert_eq!(classify_first_line(b"GNUTELLA CONNECT/0.4"), FirstLine::GnutellaConnect);
    assert_eq!(classify_first_line(b"GET /uri-res/N2R?urn:sha1:ABC HTTP/1.1"), FirstLine::Http);
    assert_eq!(classify_first_line(b"HEAD /get/1/a.iso HTTP/1.1"), FirstLine::Http);
    assert_eq!(classify_first_line(b"OPTIONS * HTTP/1.1"), FirstLine::Http);
    assert_eq!(classify_first_line(b"GETTING /"), FirstLine::Unknown);
    assert_eq!(classify_first_line(b"get / HTTP/1.1"), FirstLine::Unknown);
    assert_eq!(classify_first_line(b"GNUTELLA/0.6 200 OK"), FirstLine::Unknown);
    assert_eq!(classify_first_line(b"\x00\x01\x02"), FirstLine::Unknown);
    assert_eq!(classify_first_line(b""), FirstLine::Unknown);
}

#[test]
fn a_trailing_carriage_return_is_tolerated() {
    let mut responder = Handshake::accept(&ours(true), addr("203.0.113.9:51000"), Admission::Accept, Vec::new());
    assert_eq!(responder.on_line(b"GNUTELLA CONNECT/0.6\r"), Ok(Step::Continue));
    assert!(matches!(responder.on_line(b"\r"), Ok(Step::Write(_))));
}

// What gtk-gnutella 1.2 writes, following the formats in its src/core/nodes.c
// (node_init_outgoing, node_process_handshake_header, send_error) and the
// folding of src/lib/header.c; the values are made up.

const GTKG_CONNECT: &[u8] = b"GNUTELLA CONNECT/0.6\r\n\
Node: 198.51.100.20:6346\r\n\
Remote-IP: 192.0.2.1\r\n\
User-Agent: gtk-gnutella/1.2.2 (2022-02-25; GTK2; Linux x86_64)\r\n\
Pong-Caching: 0.1\r\n\
Bye-Packet: 0.1\r\n\
GGEP: 0.5\r\n\
GUID: 5A1E3C0F9B2D4E6F8091A2B3C4D5E6F7\r\n\
Vendor-Message: 0.2\r\n\
X-Query-Routing: 0.2\r\n\
X-Requeries: False\r\n\
Upgrade: TLS/1.0\r\n\
Accept-Encoding: deflate\r\n\
X-Token: ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVm\r\n\
X-Live-Since: Tue, 01 Mar 2022 09:00:00 +0000\r\n\
X-Ultrapeer: True\r\n\
X-Ultrapeer-Query-Routing: 0.1\r\n\
X-Degree: 32\r\n\
X-Max-TTL: 4\r\n\
X-Dynamic-Querying: 0.1\r\n\
X-Ext-Probes: 0.1\r\n\
X-Guess: 0.2\r\n\
X-Features: tls/1.0, browse/1.0, hsep/0.2, IP/6.4, sflag/0.1, fwalt/0.1,\r\n\
\tggep-h/0.1, dht/1.0\r\n\
\r\n";

const GTKG_WELCOME: &[u8] = b"GNUTELLA/0.6 200 OK\r\n\
User-Agent: gtk-gnutella/1.2.2 (2022-02-25; GTK2; Linux x86_64)\r\n\
Pong-Caching: 0.1\r\n\
Bye-Packet: 0.1\r\n\
GGEP: 0.5\r\n\
GUID: 5A1E3C0F9B2D4E6F8091A2B3C4D5E6F7\r\n\
Vendor-Message: 0.2\r\n\
Remote-IP: 192.0.2.1\r\n\
X-Ultrapeer: True\r\n\
X-Requeries: False\r\n\
Accept-Encoding: deflate\r\n\
Content-Encoding: deflate\r\n\
X-Ultrapeer-Needed: True\r\n\
X-Query-Routing: 0.1\r\n\
X-Ultrapeer-Query-Routing: 0.1\r\n\
X-Degree: 32\r\n\
X-Max-TTL: 4\r\n\
X-Dynamic-Querying: 0.1\r\n\
X-Ext-Probes: 0.1\r\n\
X-Guess: 0.2\r\n\
X-Live-Since: Tue, 01 Mar 2022 09:00:00 +0000\r\n\
X-Features: tls/1.0, browse/1.0, hsep/0.2, IP/6.4, sflag/0.1, fwalt/0.1,\r\n\
\tggep-h/0.1, dht/1.0\r\n\
\r\n";

const GTKG_BUSY: &[u8] = b"GNUTELLA/0.6 503 Too many ultra connections (8 max)\r\n\
User-Agent: gtk-gnutella/1.2.2 (2022-02-25; GTK2; Linux x86_64)\r\n\
Remote-IP: 192.0.2.1\r\n\
X-Ultrapeer: True\r\n\
X-Try-Ultrapeers: 198.51.100.11:6346, 198.51.100.12:6346, 198.51.100.13:7000,\r\n\
\t203.0.113.14:6346, 203.0.113.15:6348\r\n\
\r\n";

#[test]
fn gtk_gnutella_welcome_is_parsed() {
    let (mut initiator, _) = Handshake::connect(&ours(true), addr("198.51.100.20:6346"));
    let (ack, peer) = established(feed(&mut initiator, GTKG_WELCOME));
    assert_eq!(ack, b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n");
    assert_eq!(peer.user_agent.as_deref(), Some("gtk-gnutella/1.2.2 (2022-02-25; GTK2; Linux x86_64)"));
    assert!(peer.ultrapeer && peer.deflate_in && peer.deflate_out);
    assert_eq!(peer.remote_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(peer.listen, None, "its welcome does not repeat the address we dialled");
    assert!(peer.try_ultrapeers.is_empty());
    assert_eq!(peer.header("x-max-ttl"), Some("4"));
    assert_eq!(
        peer.header("X-Features"),
        Some("tls/1.0, browse/1.0, hsep/0.2, IP/6.4, sflag/0.1, fwalt/0.1, ggep-h/0.1, dht/1.0")
    );
    assert_eq!(peer.headers.len(), 21);
}

#[test]
fn gtk_gnutella_connect_is_accepted() {
    let mut responder = Handshake::accept(&ours(true), addr("198.51.100.20:41234"), Admission::Accept, Vec::new());
    let response = String::from_utf8(written(feed(&mut responder, GTKG_CONNECT))).unwrap();
    assert!(response.contains("Remote-IP: 198.51.100.20\r\n"));
    assert!(response.contains("Content-Encoding: deflate\r\n"));
    assert!(!response.contains("Connection: Upgrade"), "no TLS upgrade offered back");
    let (nothing, peer) =
        established(feed(&mut responder, b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n"));
    assert!(nothing.is_empty());
    assert_eq!(peer.listen, Some(addr("198.51.100.20:6346")));
    assert!(peer.ultrapeer && peer.deflate_in && peer.deflate_out);
    assert_eq!(peer.remote_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(peer.header("Content-Encoding"), Some("deflate"), "step 3 headers are kept too");
}

#[test]
fn gtk_gnutella_503_yields_its_folded_try_list() {
    let (mut initiator, _) = Handshake::connect(&ours(true), addr("198.51.100.20:6346"));
    assert_eq!(
        feed(&mut initiator, GTKG_BUSY),
        Step::Refused {
            write: Vec::new(),
            code: 503,
            reason: "Too many ultra connections (8 max)".to_owned(),
            try_ultrapeers: vec![
                addr("198.51.100.11:6346"),
                addr("198.51.100.12:6346"),
                addr("198.51.100.13:7000"),
                addr("203.0.113.14:6346"),
                addr("203.0.113.15:6348"),
            ],
        }
    );
}

#[test]
fn gtk_gnutella_node_header_gives_the_ipv4_listen_address() {
    let mut responder = responder_after_connect();
    written(feed(&mut responder, b"Node: 198.51.100.20:6346, [2001:db8::20]:6346\r\n\r\n"));
    let (_, peer) = established(feed(&mut responder, b"GNUTELLA/0.6 200 OK\r\n\r\n"));
    assert_eq!(peer.listen, Some(addr("198.51.100.20:6346")));
}

#[test]
fn step_three_overrides_step_one() {
    let mut responder = responder_after_connect();
    written(feed(&mut responder, b"X-Ultrapeer: True\r\n\r\n"));
    let (_, peer) = established(feed(&mut responder, b"GNUTELLA/0.6 200 OK\r\nX-Ultrapeer: False\r\n\r\n"));
    assert!(!peer.ultrapeer);
}

// A gtk-gnutella 1.2 leaf's CONNECT (node_init_outgoing in leaf mode: it
// sends the "bogus" ultrapeer headers LimeWire wants even as a leaf).
const GTKG_LEAF_CONNECT: &[u8] = b"GNUTELLA CONNECT/0.6\r\n\
Node: 198.51.100.30:6346\r\n\
Remote-IP: 192.0.2.1\r\n\
User-Agent: gtk-gnutella/1.2.3 (2024-05-01; GTK2; Linux x86_64)\r\n\
Pong-Caching: 0.1\r\n\
Bye-Packet: 0.1\r\n\
GGEP: 0.5\r\n\
GUID: 5A1E3C0F9B2D4E6F8091A2B3C4D5E6F8\r\n\
Vendor-Message: 0.2\r\n\
X-Query-Routing: 0.2\r\n\
X-Requeries: False\r\n\
Accept-Encoding: deflate\r\n\
X-Live-Since: Tue, 01 Mar 2022 09:00:00 +0000\r\n\
X-Ultrapeer: False\r\n\
X-Dynamic-Querying: 0.1\r\n\
X-Ultrapeer-Query-Routing: 0.1\r\n\
X-Degree: 32\r\n\
X-Max-TTL: 4\r\n\
\r\n";

/// The status line of what a responder writes.
fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(lines(bytes)[0]).into_owned()
}

#[test]
fn our_ultrapeer_claims_what_a_gtk_gnutella_leaf_requires() {
    let (_, hello) = Handshake::connect(&ours(true), addr("198.51.100.30:6346"));
    let mut leaf_side = Handshake::accept(&leaf(), addr("192.0.2.1:40000"), Admission::Accept, Vec::new());
    assert_eq!(status_line(&written(feed(&mut leaf_side, &hello))), "GNUTELLA/0.6 200 OK");
    let (_, us) = established(feed(&mut leaf_side, b"GNUTELLA/0.6 200 OK\r\n\r\n"));
    assert_eq!(us.role(), Role::Ultrapeer);
    assert!(us.degree().unwrap() >= MODERN_DEGREE, "gtk-gnutella leaves want X-Degree >= 16");
    assert!(us.dynamic_querying());
    assert_eq!(us.query_routing(), Some((0, 2)));
    assert!(us.ultrapeer_query_routing());
    assert_eq!(us.max_ttl(), Some(7));
    assert!(us.bye_packet());
}

#[test]
fn guid_and_live_since_are_sent_as_gtk_gnutella_parses_them() {
    let guid: Guid = "5A1E3C0F9B2D4E6F8091A2B3C4D5E6F7".parse().unwrap();
    let config = Config { guid: Some(guid), live_since: Some(1_796_587_091), ..ours(true) };
    let (_, hello) = Handshake::connect(&config, addr("198.51.100.2:6347"));
    let hello = String::from_utf8(hello).unwrap();
    assert!(hello.contains("GUID: 5A1E3C0F9B2D4E6F8091A2B3C4D5E6F7\r\n"), "{hello}");
    assert!(hello.contains("X-Live-Since: Sun, 06 Dec 2026 19:58:11 GMT\r\n"), "{hello}");
    assert_eq!(rfc822(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(rfc822(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

#[test]
fn a_leaf_sends_no_ultrapeer_capabilities() {
    let (_, hello) = Handshake::connect(&leaf(), addr("198.51.100.2:6347"));
    let hello = String::from_utf8(hello).unwrap();
    assert!(hello.contains("X-Ultrapeer: False\r\n"));
    assert!(hello.contains("X-Query-Routing: 0.2\r\n"));
    for absent in ["X-Degree", "X-Dynamic-Querying", "X-Ultrapeer-Query-Routing"] {
        assert!(!hello.contains(absent), "{absent} in {hello}");
    }
}

#[test]
fn an_ultrapeer_of_a_flat_network_states_no_last_hop_tables_and_is_read_so() {
    let flat = Config { ultrapeer_query_routing: false, ..ours(true) };
    let (_, hello) = Handshake::connect(&flat, addr("198.51.100.2:6347"));
    let text = String::from_utf8(hello.clone()).unwrap();
    assert!(text.contains("X-Ultrapeer: True\r\n") && text.contains("X-Dynamic-Querying: 0.1\r\n"), "{text}");
    assert!(!text.contains("X-Ultrapeer-Query-Routing"), "{text}");
    let mut other = Handshake::accept(&theirs(true), addr("192.0.2.1:40000"), Admission::Accept, Vec::new());
    assert_eq!(status_line(&written(feed(&mut other, &hello))), "GNUTELLA/0.6 200 OK");
    let (_, peer) = established(feed(&mut other, b"GNUTELLA/0.6 200 OK\r\n\r\n"));
    assert_eq!(peer.role(), Role::Ultrapeer);
    assert!(!peer.ultrapeer_query_routing(), "its peers send it no last-hop table, nor filter by one");
}

#[test]
fn a_gtk_gnutella_leaf_is_welcomed_by_our_ultrapeer_and_seen_as_a_qrp_leaf() {
    let mut responder = Handshake::accept(&ours(true), addr("198.51.100.30:41000"), Admission::Accept, Vec::new());
    let response = written(feed(&mut responder, GTKG_LEAF_CONNECT));
    assert_eq!(status_line(&response), "GNUTELLA/0.6 200 OK");
    let response = String::from_utf8(response).unwrap();
    assert!(response.contains("X-Degree: 30\r\nX-Dynamic-Querying: 0.1\r\n"));
    let (_, peer) = established(feed(&mut responder, b"GNUTELLA/0.6 200 OK\r\nContent-Encoding: deflate\r\n\r\n"));
    assert_eq!(peer.role(), Role::Leaf);
    assert_eq!(peer.query_routing(), Some((0, 2)));
    assert!(!peer.dynamic_querying(), "a leaf's X-Dynamic-Querying means nothing");
    assert!(!peer.ultrapeer_query_routing());
    assert_eq!(peer.guid(), Some("5A1E3C0F9B2D4E6F8091A2B3C4D5E6F8".parse().unwrap()));
}

#[test]
fn an_ultrapeer_without_leaf_slots_refuses_a_leaf() {
    let admission = Admission::UltrapeersOnly { try_ultrapeers: vec![addr("203.0.113.5:6346")] };
    let mut responder = Handshake::accept(&ours(true), addr("198.51.100.30:41000"), admission, Vec::new());
    match feed(&mut responder, GTKG_LEAF_CONNECT) {
        Step::Refused { write, code: 503, reason, .. } => {
            assert_eq!(reason, "Too many leaves");
            assert!(String::from_utf8(write).unwrap().contains("X-Try-Ultrapeers: 203.0.113.5:6346\r\n"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn our_leaf_accepts_ultrapeers_only() {
    let mut from_leaf = Handshake::accept(&leaf(), addr("198.51.100.30:41000"), Admission::Accept, Vec::new());
    assert!(matches!(feed(&mut from_leaf, GTKG_LEAF_CONNECT), Step::Refused { code: 503, .. }));
    let mut from_ultrapeer = Handshake::accept(&leaf(), addr("198.51.100.20:41000"), Admission::Accept, Vec::new());
    assert_eq!(status_line(&written(feed(&mut from_ultrapeer, GTKG_CONNECT))), "GNUTELLA/0.6 200 OK");
}

#[test]
fn our_leaf_refuses_a_non_ultrapeer_in_step_three() {
    let (mut initiator, _) = Handshake::connect(&leaf(), addr("198.51.100.30:6346"));
    match feed(&mut initiator, b"GNUTELLA/0.6 200 OK\r\nX-Ultrapeer: False\r\n\r\n") {
        Step::Refused { write, code: 503, .. } => {
            assert_eq!(write, b"GNUTELLA/0.6 503 Shielded leaf node\r\n\r\n");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (mut initiator, _) = Handshake::connect(&leaf(), addr("198.51.100.20:6346"));
    let (_, peer) = established(feed(&mut initiator, GTKG_WELCOME));
    assert_eq!(peer.role(), Role::Ultrapeer);
    assert!(!peer.demoted);
}

#[test]
fn an_ultrapeer_without_ultrapeer_slots_asks_an_ultrapeer_to_be_its_leaf() {
    let admission = Admission::LeavesOnly { try_ultrapeers: Vec::new() };
    let mut responder = Handshake::accept(&ours(true), addr("198.51.100.20:41000"), admission, Vec::new());
    let response = String::from_utf8(written(feed(&mut responder, GTKG_CONNECT))).unwrap();
    assert!(response.starts_with("GNUTELLA/0.6 200 OK\r\n"));
    assert!(response.contains("X-Ultrapeer-Needed: False\r\n"));
    let mut for_leaf = Handshake::accept(
        &ours(true),
        addr("198.51.100.30:41000"),
        Admission::LeavesOnly { try_ultrapeers: Vec::new() },
        Vec::new(),
    );
    let response = String::from_utf8(written(feed(&mut for_leaf, GTKG_LEAF_CONNECT))).unwrap();
    assert!(!response.contains("X-Ultrapeer-Needed"), "a leaf is simply welcome");
}

#[test]
fn a_configured_ultrapeer_declines_to_become_a_leaf_with_403() {
    let (mut initiator, _) = Handshake::connect(&ours(true), addr("198.51.100.20:6346"));
    let welcome = b"GNUTELLA/0.6 200 OK\r\nX-Ultrapeer: True\r\nX-Ultrapeer-Needed: False\r\n\r\n";
    match feed(&mut initiator, welcome) {
        Step::Refused { write, code: 403, .. } => {
            assert_eq!(write, b"GNUTELLA/0.6 403 Not becoming a leaf node\r\n\r\n")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_ultrapeer_that_may_become_a_leaf_honours_x_ultrapeer_needed_false() {
    let config = Config { may_become_leaf: true, ..ours(true) };
    let asking = Handshake::accept(
        &ours(true),
        addr("192.0.2.1:40000"),
        Admission::LeavesOnly { try_ultrapeers: Vec::new() },
        Vec::new(),
    );
    let (mut initiator, hello) = Handshake::connect(&config, addr("198.51.100.2:6347"));
    let mut responder = asking;
    let response = written(feed(&mut responder, &hello));
    let (ack, peer) = established(feed(&mut initiator, &response));
    assert!(peer.demoted && peer.wants_leaves());
    assert!(String::from_utf8(ack.clone()).unwrap().contains("X-Ultrapeer: False\r\n"));
    let (_, seen_by_responder) = established(feed(&mut responder, &ack));
    assert_eq!(seen_by_responder.role(), Role::Leaf, "step 3 tells the responder it has a new leaf");
}
