//! Byte-for-byte checks of each descriptor against the specs, and properties:
//! every message round-trips, and no input makes `decode` panic.

use std::net::Ipv4Addr;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

const GUID: Guid = Guid([0x11; 16]);
const SERVENT: Guid = Guid([0x22; 16]);
const SHA1: [u8; 20] = [0xAB; 20];

/// A descriptor: header (GUID 0x11.., TTL 7, hops 1) then `payload`.
fn descriptor(payload_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x11; 16];
    bytes.extend_from_slice(&[payload_type, 7, 1]);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fn message(payload: Payload) -> Message {
    Message { guid: GUID, ttl: 7, hops: 1, payload }
}

fn ext(id: &'static str, data: &[u8]) -> GgepExtension {
    GgepExtension::new(GgepId::from_static(id), data.to_vec())
}

fn ggep(extensions: Vec<GgepExtension>) -> Ggep {
    Ggep { extensions }
}

fn sha1_urn_text() -> String {
    Urn::Sha1(SHA1).to_string()
}

fn payload_of(bytes: &[u8]) -> Payload {
    decode(bytes).expect("decodes").payload
}

#[test]
fn header_reads_a_little_endian_payload_length() {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..16].copy_from_slice(&[0x11; 16]);
    bytes[16..].copy_from_slice(&[0x80, 5, 2, 0x02, 0x01, 0, 0]);
    let header = decode_header(&bytes).unwrap();
    assert_eq!(header, Header { guid: GUID, payload_type: PayloadType::Query, ttl: 5, hops: 2, payload_len: 0x0102 });
    assert_eq!(header.encode(), bytes);
}

#[test]
fn header_refuses_a_payload_over_the_limit() {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[19..].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    assert_eq!(decode_header(&bytes), Err(WireError::PayloadTooLong(MAX_PAYLOAD as u32 + 1)));
}

#[test]
fn descriptor_must_hold_exactly_the_announced_payload() {
    let mut bytes = descriptor(0x02, &[200, 0, b'x', 0]);
    assert!(decode(&bytes).is_ok());
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(WireError::LengthMismatch { announced: 4, actual: 5 }));
    assert!(matches!(decode(&bytes[..22]), Err(WireError::Truncated { .. })));
    assert!(matches!(decode(&bytes[..25]), Err(WireError::LengthMismatch { .. })));
}

#[test]
fn empty_ping_is_a_bare_header() {
    let ping = message(Payload::Ping(Ping::default()));
    assert_eq!(ping.encode(), descriptor(0x00, &[]));
    assert_eq!(decode(&descriptor(0x00, &[])), Ok(ping));
}

#[test]
fn ping_carries_a_ggep_block() {
    let bytes = descriptor(0x00, &[0xC3, 0x83, b'S', b'C', b'P', 0x41, 0x01]);
    assert_eq!(payload_of(&bytes), Payload::Ping(Ping { ggep: ggep(vec![ext("SCP", &[1])]) }));
}

#[test]
fn pong_ip_is_in_network_order_and_integers_little_endian() {
    let payload = [0xCA, 0x18, 192, 168, 1, 2, 0x01, 0, 0, 0, 0x00, 0x01, 0, 0];
    let pong = Pong { port: 6346, ip: Ipv4Addr::new(192, 168, 1, 2), files: 1, kbytes: 256, ggep: Ggep::new() };
    assert_eq!(payload_of(&descriptor(0x01, &payload)), Payload::Pong(pong.clone()));
    assert_eq!(message(Payload::Pong(pong)).encode(), descriptor(0x01, &payload));
}

#[test]
fn pong_with_ggep_keeps_it() {
    let mut payload = vec![0xCA, 0x18, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    payload.extend_from_slice(&[0xC3, 0x82, b'D', b'U', 0x42, 0x10, 0x0E]);
    let Payload::Pong(pong) = payload_of(&descriptor(0x01, &payload)) else { panic!("not a pong") };
    assert_eq!(pong.ggep.get("DU"), Some(&[0x10, 0x0E][..]));
}

#[test]
fn pong_shorter_than_fourteen_bytes_is_truncated() {
    assert!(matches!(decode(&descriptor(0x01, &[0; 13])), Err(WireError::Truncated { .. })));
}

#[test]
fn bye_keeps_its_reason_and_headers() {
    let text = b"200 Shutting Down\r\nServer: gtk-gnutella/1.2\r\n\r\n";
    let mut payload = vec![200, 0];
    payload.extend_from_slice(text);
    payload.push(0);
    let bye = Bye { code: 200, reason: String::from_utf8(text.to_vec()).unwrap() };
    assert_eq!(payload_of(&descriptor(0x02, &payload)), Payload::Bye(bye.clone()));
    assert_eq!(message(Payload::Bye(bye)).encode(), descriptor(0x02, &payload));
}

#[test]
fn bye_without_nul_is_read_and_a_long_reason_is_cut() {
    let mut payload = vec![0xF6, 0x01];
    payload.extend_from_slice(&[b'x'; MAX_BYE_REASON + 10]);
    let Payload::Bye(bye) = payload_of(&descriptor(0x02, &payload)) else { panic!("not a bye") };
    assert_eq!(bye.code, 502);
    assert_eq!(bye.reason.len(), MAX_BYE_REASON);
}

#[test]
fn query_flags_we_send_are_marked_with_ggep_h() {
    assert_eq!(QueryFlags::default().to_wire(), [0x88, 0x00]);
    let flags = QueryFlags::default().with(QueryFlags::OOB_REPLY, true).with(QueryFlags::FIREWALLED, true);
    assert_eq!(flags.to_wire(), [0xCC, 0x00]);
    assert!(flags.is_firewalled() && flags.wants_oob_reply() && flags.accepts_ggep_h());
    assert!(!flags.with(QueryFlags::FIREWALLED, false).is_firewalled());
}

#[test]
fn query_flags_are_read_big_endian() {
    // gtk-gnutella's own queries: mark, XML, leaf-guided, GGEP "H".
    let flags = QueryFlags::from_wire([0xB8, 0x00]);
    assert!(flags.is_marked() && flags.wants_xml() && flags.is_leaf_guided() && flags.accepts_ggep_h());
    assert!(!flags.is_firewalled() && !flags.wants_oob_reply());
    assert_eq!(flags.legacy_min_speed(), None);
}

#[test]
fn legacy_query_speed_is_read_little_endian_and_kept() {
    let mut payload = vec![0x50, 0x00];
    payload.extend_from_slice(b"old\0");
    let Payload::Query(query) = payload_of(&descriptor(0x80, &payload)) else { panic!("not a query") };
    assert_eq!(query.flags.legacy_min_speed(), Some(80));
    assert!(!query.flags.is_firewalled());
    assert_eq!(message(Payload::Query(query)).encode(), descriptor(0x80, &payload));
}

#[test]
fn query_is_flags_criteria_nul_urns_ggep_and_a_final_nul() {
    let query = Query {
        flags: QueryFlags::default(),
        criteria: "SEBLINUX".into(),
        urns: vec![Urn::Sha1(SHA1)],
        ggep: ggep(vec![ext("M", &[0x04])]),
        original: Default::default(),
    };
    let mut payload = vec![0x88, 0x00];
    payload.extend_from_slice(b"SEBLINUX\0");
    payload.extend_from_slice(sha1_urn_text().as_bytes());
    payload.extend_from_slice(&[0x1C, 0xC3, 0x81, b'M', 0x41, 0x04, 0x00]);
    assert_eq!(message(Payload::Query(query.clone())).encode(), descriptor(0x80, &payload));
    assert_eq!(payload_of(&descriptor(0x80, &payload)), Payload::Query(query));
}

#[test]
fn query_without_extensions_has_no_final_nul() {
    let query = Query {
        flags: QueryFlags::default(),
        criteria: "abc".into(),
        urns: vec![],
        ggep: Ggep::new(),
        original: Default::default(),
    };
    assert_eq!(message(Payload::Query(query)).encode(), descriptor(0x80, b"\x88\x00abc\0"));
}

#[test]
fn query_ggep_holding_separators_and_nuls_is_parsed_by_structure() {
    // Another servent's raw (not COBS-encoded) GGEP data: 1C 00 1C 00.
    let mut payload = b"\x88\x00abc\0".to_vec();
    payload.extend_from_slice(sha1_urn_text().as_bytes());
    payload.extend_from_slice(&[0x1C, 0xC3, 0x82, b'X', b'Y', 0x44, 0x1C, 0x00, 0x1C, 0x00, 0x00]);
    let Payload::Query(query) = payload_of(&descriptor(0x80, &payload)) else { panic!("not a query") };
    assert_eq!(query.urns, vec![Urn::Sha1(SHA1)]);
    assert_eq!(query.ggep, ggep(vec![ext("XY", &[0x1C, 0x00, 0x1C, 0x00])]));
    // Built by us, we COBS-encode such data: nothing after the criteria is NUL but the last byte.
    let ours = Query { original: Default::default(), ..query.clone() };
    let encoded = message(Payload::Query(ours)).encode();
    let extensions = &encoded[HEADER_LEN + 6..];
    assert_eq!(extensions.iter().position(|&b| b == 0), Some(extensions.len() - 1));
    assert_eq!(payload_of(&encoded), Payload::Query(query));
}

#[test]
fn query_skips_bare_urn_xml_and_unknown_extensions() {
    let mut payload = b"\x88\x00abc\0urn:\x1C<audio title=\"\xC3\x87a\"/>\x1Cjunk\x1C".to_vec();
    payload.extend_from_slice(sha1_urn_text().as_bytes());
    payload.extend_from_slice(b"\x1Curn:tree:tiger/:ABCD\0");
    let Payload::Query(query) = payload_of(&descriptor(0x80, &payload)) else { panic!("not a query") };
    assert_eq!(query.urns, vec![Urn::Sha1(SHA1)]);
    assert!(query.ggep.is_empty());
}

#[test]
fn query_ggep_h_becomes_a_urn() {
    let mut payload = b"\x88\x00\0\xC3\x81H\x55\x01".to_vec();
    payload.extend_from_slice(&SHA1);
    let Payload::Query(query) = payload_of(&descriptor(0x80, &payload)) else { panic!("not a query") };
    assert_eq!(query.urns, vec![Urn::Sha1(SHA1)]);
    assert!(query.ggep.is_empty());
}

#[test]
fn criteria_limit_holds_after_invalid_utf8_is_replaced() {
    let mut payload = b"\x88\x00".to_vec();
    payload.extend_from_slice(&[0xFF; 100]);
    payload.push(0);
    assert!(matches!(decode(&descriptor(0x80, &payload)), Err(WireError::TooLong { .. })));
    let mut bye = vec![200, 0];
    bye.extend_from_slice(&[0xFF; MAX_BYE_REASON]);
    let Payload::Bye(bye) = payload_of(&descriptor(0x02, &bye)) else { panic!("not a bye") };
    assert_eq!(bye.reason, "\u{FFFD}".repeat(MAX_BYE_REASON / 3));
}

#[test]
fn query_limits_are_enforced() {
    let mut long = b"\x88\x00".to_vec();
    long.extend_from_slice(&[b'a'; MAX_CRITERIA + 1]);
    long.push(0);
    assert!(matches!(decode(&descriptor(0x80, &long)), Err(WireError::TooLong { .. })));
    assert!(matches!(decode(&descriptor(0x80, b"\x88\x00abc")), Err(WireError::Truncated { .. })));
    let mut many = b"\x88\x00\0".to_vec();
    for i in 0..=MAX_URNS as u8 {
        many.extend_from_slice(Urn::Sha1([i; 20]).to_string().as_bytes());
        many.push(0x1C);
    }
    assert!(matches!(decode(&descriptor(0x80, &many)), Err(WireError::TooMany { .. })));
}

/// A hit with one result (index 3, 1000 bytes, "a.iso", a SHA-1 URN), our
/// trailer saying busy and GGEP "BH", then the servent GUID.
fn hit_bytes() -> Vec<u8> {
    let mut p = vec![1, 0xCA, 0x18, 10, 0, 0, 7, 0x40, 0, 0, 0];
    p.extend_from_slice(&[3, 0, 0, 0, 0xE8, 0x03, 0, 0]);
    p.extend_from_slice(b"a.iso\0");
    p.extend_from_slice(sha1_urn_text().as_bytes());
    p.push(0);
    p.extend_from_slice(b"SEBL\x02");
    // First byte: busy and GGEP meaningful; second: busy, GGEP present.
    p.extend_from_slice(&[0x24, 0x24]);
    p.extend_from_slice(&[0xC3, 0x82, b'B', b'H', 0x40]);
    p.extend_from_slice(&SERVENT.0);
    p
}

fn hit() -> QueryHit {
    QueryHit {
        port: 6346,
        ip: Ipv4Addr::new(10, 0, 0, 7),
        speed: 64,
        results: vec![QueryResult {
            index: 3,
            size: 1000,
            name: "a.iso".into(),
            urns: vec![Urn::Sha1(SHA1)],
            ggep: Ggep::new(),
        }],
        trailer: Some(Trailer::ours(
            TrailerFlags { busy: Some(true), ..TrailerFlags::default() },
            ggep(vec![ext("BH", &[])]),
        )),
        servent_guid: SERVENT,
        original: Default::default(),
    }
}

#[test]
fn query_hit_with_trailer_matches_the_layout() {
    assert_eq!(message(Payload::QueryHit(hit())).encode(), descriptor(0x81, &hit_bytes()));
    assert_eq!(payload_of(&descriptor(0x81, &hit_bytes())), Payload::QueryHit(hit()));
}

#[test]
fn trailer_push_flag_sits_in_the_swapped_byte() {
    // LimeWire's trailer: 4 open bytes (flags, controls, XML size), a chat
    // byte, GGEP, XML and a NUL in the private area.
    let mut p = vec![0, 0xCA, 0x18, 10, 0, 0, 7, 0, 0, 0, 0];
    p.extend_from_slice(b"LIME\x04");
    p.extend_from_slice(&[0x01 | 0x1C | 0x20, 0x01 | 0x08 | 0x20, 0x01, 0x00]);
    p.extend_from_slice(&[0x01, 0xC3, 0x82, b'B', b'H', 0x40]);
    p.extend_from_slice(&[0x00]);
    p.extend_from_slice(&SERVENT.0);
    let Payload::QueryHit(hit) = payload_of(&descriptor(0x81, &p)) else { panic!("not a hit") };
    let trailer = hit.trailer.unwrap();
    assert_eq!(&trailer.vendor, b"LIME");
    assert_eq!(
        trailer.flags,
        TrailerFlags { push: Some(true), busy: Some(false), uploaded: Some(true), speed_measured: Some(false) }
    );
    assert_eq!(trailer.ggep, ggep(vec![ext("BH", &[])]));
}

#[test]
fn trailer_flags_round_trip_with_push_swapped() {
    let trailer = Trailer::ours(
        TrailerFlags { push: Some(true), busy: None, uploaded: Some(false), speed_measured: None },
        Ggep::new(),
    );
    let mut out = Vec::new();
    trailer.write(&mut out);
    assert_eq!(out, [b'S', b'E', b'B', b'L', 2, 0x01 | 0x08 | 0x20, 0x01]);
}

#[test]
fn garbage_between_results_and_guid_is_no_trailer() {
    let mut p = vec![0, 0xCA, 0x18, 10, 0, 0, 7, 0, 0, 0, 0, 1, 2, 3];
    p.extend_from_slice(&SERVENT.0);
    let Payload::QueryHit(hit) = payload_of(&descriptor(0x81, &p)) else { panic!("not a hit") };
    assert_eq!(hit.trailer, None);
    assert_eq!(hit.servent_guid, SERVENT);
}

#[test]
fn hit_with_fewer_results_than_announced_is_refused() {
    let mut p = hit_bytes();
    p[0] = 2;
    assert!(decode(&descriptor(0x81, &p)).is_err());
    assert!(matches!(decode(&descriptor(0x81, &[0; 26])), Err(WireError::Truncated { .. })));
}

#[test]
fn large_file_size_travels_in_lf_without_a_nul_in_the_extensions() {
    let size = 5 << 30;
    let result = QueryResult { index: 1, size, name: "big".into(), urns: vec![], ggep: Ggep::new() };
    let mut out = Vec::new();
    result.write(&mut out);
    // Size field 0xFFFFFFFF, then "LF" = 00 00 00 40 01, COBS-encoded.
    let expected = [
        &[1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..],
        b"big\0",
        &[0xC3, 0xC2, b'L', b'F', 0x46, 0x01, 0x01, 0x01, 0x03, 0x40, 0x01, 0x00],
    ]
    .concat();
    assert_eq!(out, expected);
    let decoded = QueryResult::decode(&mut Reader::new(&out)).unwrap();
    assert_eq!(decoded, result);
}

#[test]
fn raw_lf_from_another_servent_is_read_by_structure() {
    let bytes = [
        &[1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..],
        b"big\0",
        &[0xC3, 0x82, b'L', b'F', 0x45, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00],
    ]
    .concat();
    let decoded = QueryResult::decode(&mut Reader::new(&bytes)).unwrap();
    assert_eq!(decoded.size, 5 << 30);
    assert!(decoded.ggep.is_empty());
}

#[test]
fn ggep_h_sha1_and_bitprint_in_results_become_urns() {
    let mut sha1_h = vec![0x01];
    sha1_h.extend_from_slice(&SHA1);
    let mut bitprint = vec![0x02];
    bitprint.extend_from_slice(&[0xCD; 20]);
    bitprint.extend_from_slice(&[0xEE; 24]);
    let tth = search::thex::Root([0xEE; 24]);
    for (data, sha1, root) in [(sha1_h, SHA1, None), (bitprint, [0xCD; 20], Some(tth))] {
        let mut bytes = vec![1, 0, 0, 0, 10, 0, 0, 0];
        bytes.extend_from_slice(b"f\0");
        ggep::write_block(&mut bytes, &[&ext("H", &data)], ggep::Style::NulFree);
        bytes.push(0);
        let decoded = QueryResult::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(decoded.urns, vec![Urn::Sha1(sha1)]);
        assert_eq!(decoded.tth(), root, "the bitprint's Tiger tree root is kept");
        assert_eq!(decoded.ggep.get(GgepId::HASH), None);
    }
    // LimeWire's and our own "TT" reads the same; a short one is no root.
    let mut bytes = vec![1, 0, 0, 0, 10, 0, 0, 0];
    bytes.extend_from_slice(b"f\0");
    ggep::write_block(&mut bytes, &[&ext("TT", &[0xEE; 24])], ggep::Style::NulFree);
    bytes.push(0);
    assert_eq!(QueryResult::decode(&mut Reader::new(&bytes)).unwrap().tth(), Some(tth));
    let mut bytes = vec![1, 0, 0, 0, 10, 0, 0, 0];
    bytes.extend_from_slice(b"f\0");
    ggep::write_block(&mut bytes, &[&ext("TT", &[0xEE; 23])], ggep::Style::NulFree);
    bytes.push(0);
    assert_eq!(QueryResult::decode(&mut Reader::new(&bytes)).unwrap().tth(), None);
}

#[test]
fn result_without_its_final_nul_is_truncated() {
    let bytes = [&[1, 0, 0, 0, 10, 0, 0, 0][..], b"f\0urn:"].concat();
    assert!(matches!(QueryResult::decode(&mut Reader::new(&bytes)), Err(WireError::Truncated { .. })));
}

/// The payload of `message` once relayed: TTL down, hops up, encoded again.
fn relayed_payload(bytes: &[u8]) -> Vec<u8> {
    let mut message = decode(bytes).expect("decodes");
    message.ttl -= 1;
    message.hops += 1;
    let relayed = message.encode();
    assert_eq!(&relayed[16..19], &[bytes[16], 6, 2], "type, TTL and hops");
    relayed[HEADER_LEN..].to_vec()
}

#[test]
fn relayed_gtk_gnutella_hit_keeps_its_bitprint_byte_for_byte() {
    let payload = samples::gtk_gnutella_hit();
    let Payload::QueryHit(hit) = payload_of(&descriptor(0x81, &payload)) else { panic!("not a hit") };
    let result = &hit.results[0];
    assert_eq!(result.urns, vec![Urn::Sha1(samples::SHA1)]);
    assert_eq!(result.tth(), Some(search::thex::Root(samples::TTH)));
    assert_eq!(&hit.trailer.as_ref().unwrap().vendor, b"GTKG");
    assert_eq!(relayed_payload(&descriptor(0x81, &payload)), payload);
}

#[test]
fn relayed_query_keeps_unknown_extensions_and_adds_no_nul() {
    let payload = samples::unusual_query();
    let Payload::Query(query) = payload_of(&descriptor(0x80, &payload)) else { panic!("not a query") };
    assert_eq!(query.criteria, "linux tar");
    assert_eq!(query.urns, vec![Urn::Sha1(samples::SHA1)]);
    assert!(query.flags.is_leaf_guided());
    assert_eq!(relayed_payload(&descriptor(0x80, &payload)), payload);
}

#[test]
fn a_query_we_build_from_a_received_one_is_encoded_from_its_fields() {
    let Payload::Query(query) = payload_of(&descriptor(0x80, &samples::unusual_query())) else { panic!() };
    let ours = Query { criteria: "other".into(), original: Default::default(), ..query };
    let Payload::Query(read) = payload_of(&message(Payload::Query(ours.clone())).encode()) else { panic!() };
    assert_eq!(read.criteria, "other");
    assert_eq!(read, ours);
}

#[test]
fn push_is_guid_index_ip_port() {
    let mut payload = SERVENT.0.to_vec();
    payload.extend_from_slice(&[9, 0, 0, 0, 192, 0, 2, 1, 0xCA, 0x18]);
    let push = Push { servent_guid: SERVENT, index: 9, ip: Ipv4Addr::new(192, 0, 2, 1), port: 6346, ggep: Ggep::new() };
    assert_eq!(payload_of(&descriptor(0x40, &payload)), Payload::Push(push.clone()));
    assert_eq!(message(Payload::Push(push)).encode(), descriptor(0x40, &payload));
    assert!(matches!(decode(&descriptor(0x40, &payload[..25])), Err(WireError::Truncated { .. })));
}

#[test]
fn route_table_vendor_and_unknown_messages_stay_opaque() {
    for kind in [0x30, 0x31, 0x32, 0x99] {
        let bytes = descriptor(kind, &[1, 2, 3]);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.payload, Payload::Opaque { payload_type: kind, bytes: vec![1, 2, 3] });
        assert_eq!(u8::from(decoded.payload_type()), kind);
        assert_eq!(decoded.encode(), bytes);
    }
    assert_eq!(PayloadType::from(0x31), PayloadType::Vendor);
    assert_eq!(PayloadType::from(0x99), PayloadType::Unknown(0x99));
}

#[test]
fn random_guid_is_marked_as_modern() {
    let guid = Guid::random();
    assert_eq!((guid.0[8], guid.0[15]), (0xFF, 0));
    assert_ne!(Guid::random(), guid);
}

#[test]
fn guid_shows_as_hex_and_parses_back() {
    let guid = Guid([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0xFE, 0xFF]);
    assert_eq!(guid.to_string(), "000102030405060708090A0B0C0DFEFF");
    assert_eq!(format!("{guid:?}"), guid.to_string());
    assert_eq!("000102030405060708090a0b0c0dfeff".parse::<Guid>(), Ok(guid));
    assert!("00".parse::<Guid>().is_err());
    assert!("+00102030405060708090a0b0c0dfeff".parse::<Guid>().is_err());
    assert!("é00102030405060708090a0b0c0dfef".parse::<Guid>().is_err());
}

#[test]
fn split_keeps_hits_small_and_complete() {
    let result = |i: u32| QueryResult {
        index: i,
        size: 1,
        name: format!("file-{i:03}.txt"),
        urns: vec![Urn::Sha1([i as u8; 20])],
        ggep: Ggep::new(),
    };
    let big = QueryHit { results: (0..25).map(result).collect(), ..hit() };
    let hits = big.clone().split(HIT_PAYLOAD);
    assert_eq!(hits.iter().map(|h| h.results.len()).collect::<Vec<_>>(), [10, 10, 5]);
    let hits = big.clone().split(500);
    assert!(hits.len() > 3);
    for piece in &hits {
        assert!(message(Payload::QueryHit(piece.clone())).encoded_len() - HEADER_LEN <= 500);
        assert_eq!(piece.trailer, big.trailer);
    }
    let rejoined: Vec<_> = hits.into_iter().flat_map(|h| h.results).collect();
    assert_eq!(rejoined, big.results);
    assert!(QueryHit { results: vec![], ..hit() }.split(HIT_PAYLOAD).is_empty());
}

#[test]
fn oversized_result_goes_alone() {
    let huge = QueryResult { index: 0, size: 1, name: "x".repeat(900), urns: vec![], ggep: Ggep::new() };
    let small = QueryResult { name: "y".into(), ..huge.clone() };
    let groups = split_results(vec![small.clone(), huge.clone(), small.clone()], 100);
    assert_eq!(groups, vec![vec![small.clone()], vec![huge], vec![small]]);
}

fn urn() -> impl Strategy<Value = Urn> {
    prop_oneof![any::<[u8; 20]>().prop_map(Urn::Sha1), any::<[u8; 32]>().prop_map(Urn::Sha256)]
}

fn urns() -> impl Strategy<Value = Vec<Urn>> {
    vec(urn(), 0..=MAX_URNS).prop_map(|mut urns| {
        let mut seen = Vec::new();
        urns.retain(|u| {
            if seen.contains(u) {
                false
            } else {
                seen.push(*u);
                true
            }
        });
        urns
    })
}

/// GGEP extensions this codec does not interpret (it moves "H" and "LF").
fn any_ggep() -> impl Strategy<Value = Ggep> {
    let id = vec(1u8..=255, 1..=15).prop_filter_map("interpreted ID", |b| {
        GgepId::new(&b).filter(|id| ![GgepId::HASH, GgepId::LARGE_FILE].contains(id))
    });
    let extension = (id, vec(any::<u8>(), 0..80), any::<bool>()).prop_map(|(id, data, compressed)| GgepExtension {
        id,
        data,
        compressed,
    });
    vec(extension, 0..4).prop_map(|extensions| Ggep { extensions })
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn guid() -> impl Strategy<Value = Guid> {
    any::<[u8; 16]>().prop_map(Guid)
}

fn result() -> impl Strategy<Value = QueryResult> {
    (any::<u32>(), any::<u64>(), "[^\u{0}]{0,100}", urns(), any_ggep())
        .prop_map(|(index, size, name, urns, ggep)| QueryResult { index, size, name, urns, ggep })
}

fn trailer() -> impl Strategy<Value = Trailer> {
    let flag = || proptest::option::of(any::<bool>());
    (any::<[u8; 4]>(), flag(), flag(), flag(), flag(), any_ggep()).prop_map(
        |(vendor, push, busy, uploaded, speed_measured, ggep)| Trailer {
            vendor,
            flags: TrailerFlags { push, busy, uploaded, speed_measured },
            ggep,
        },
    )
}

fn any_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        any_ggep().prop_map(|ggep| Payload::Ping(Ping { ggep })),
        (any::<u16>(), ipv4(), any::<u32>(), any::<u32>(), any_ggep())
            .prop_map(|(port, ip, files, kbytes, ggep)| Payload::Pong(Pong { port, ip, files, kbytes, ggep })),
        (any::<u16>(), "[^\u{0}]{0,100}").prop_map(|(code, reason)| Payload::Bye(Bye { code, reason })),
        (any::<u16>(), "[^\u{0}]{0,60}", urns(), any_ggep()).prop_map(|(flags, criteria, urns, ggep)| Payload::Query(
            Query { flags: QueryFlags::from_raw(flags), criteria, urns, ggep, original: Default::default() }
        )),
        (any::<u16>(), ipv4(), any::<u32>(), vec(result(), 0..4), proptest::option::of(trailer()), guid()).prop_map(
            |(port, ip, speed, results, trailer, servent_guid)| Payload::QueryHit(QueryHit {
                port,
                ip,
                speed,
                results,
                trailer,
                servent_guid,
                original: Default::default()
            })
        ),
        (guid(), any::<u32>(), ipv4(), any::<u16>(), any_ggep()).prop_map(|(servent_guid, index, ip, port, ggep)| {
            Payload::Push(Push { servent_guid, index, ip, port, ggep })
        }),
        (any::<u8>(), vec(any::<u8>(), 0..200))
            .prop_filter("decoded payload types", |(kind, _)| matches!(
                PayloadType::from(*kind),
                PayloadType::RouteTable | PayloadType::Vendor | PayloadType::StandardVendor | PayloadType::Unknown(_)
            ))
            .prop_map(|(payload_type, bytes)| Payload::Opaque { payload_type, bytes }),
    ]
}

fn any_message() -> impl Strategy<Value = Message> {
    (guid(), any::<u8>(), any::<u8>(), any_payload()).prop_map(|(guid, ttl, hops, payload)| Message {
        guid,
        ttl,
        hops,
        payload,
    })
}

proptest! {
    #[test]
    fn every_message_round_trips(message in any_message()) {
        let bytes = message.encode();
        prop_assert_eq!(bytes.len(), message.encoded_len());
        prop_assert_eq!(decode(&bytes), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic_decode(bytes in vec(any::<u8>(), 0..600)) {
        decodes_stably(&bytes)?;
    }

    #[test]
    fn arbitrary_payloads_of_known_types_decode_stably(
        kind in prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x40, 0x80, 0x81]),
        payload in vec(any::<u8>(), 0..600),
    ) {
        decodes_stably(&descriptor(kind, &payload))?;
    }

    #[test]
    fn corrupted_messages_decode_stably(message in any_message(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = message.encode();
        for (at, byte) in flips {
            if bytes.len() > HEADER_LEN {
                let at = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
                bytes[at] = byte;
            }
        }
        decodes_stably(&bytes)?;
    }
}

/// Whatever `decode` accepts re-encodes to a message that decodes to the same
/// thing: what we forward is what we understood, and peers accept it.
fn decodes_stably(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = decode(bytes) {
        let again = message.encode();
        if again.len() - HEADER_LEN <= MAX_PAYLOAD {
            prop_assert_eq!(decode(&again), Ok(message));
        }
    }
    Ok(())
}
