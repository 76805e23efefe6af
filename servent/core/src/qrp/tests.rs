use super::*;

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

fn receive_all(receiver: &mut TableReceiver, payloads: &[&str]) -> Result<bool, QrpError> {
    let mut completed = false;
    for payload in payloads {
        completed = receiver.receive(RouteTableUpdate::decode(&hex(payload))?)?;
    }
    Ok(completed)
}

fn slots_set(table: &RouteTable) -> Vec<u32> {
    table.set_slots().collect()
}

#[test]
fn hash_matches_the_specs_reference_vectors() {
    // doc/gnutella/QRP, appendix A.
    let vectors: &[(&str, u8, u32)] = &[
        ("", 13, 0),
        ("eb", 13, 6791),
        ("ebc", 13, 7082),
        ("ebck", 13, 6698),
        ("ebckl", 13, 3179),
        ("ebcklm", 13, 3235),
        ("ebcklme", 13, 6438),
        ("ebcklmen", 13, 1062),
        ("ebcklmenq", 13, 3527),
        ("", 16, 0),
        ("n", 16, 65003),
        ("nd", 16, 54193),
        ("ndf", 16, 4953),
        ("ndfl", 16, 58201),
        ("ndfla", 16, 34830),
        ("ndflal", 16, 36910),
        ("ndflale", 16, 34586),
        ("ndflalem", 16, 37658),
        ("ndflaleme", 16, 45559),
        ("ol2j34lj", 10, 318),
        ("asdfas23", 10, 503),
        ("9um3o34fd", 10, 758),
        ("a234d", 10, 281),
        ("a3f", 10, 767),
        ("3nja9", 10, 581),
        ("2459345938032343", 10, 146),
        ("7777a88a8a8a8", 10, 342),
        ("asdfjklkj3k", 10, 861),
        ("adfk32l", 10, 1011),
        ("zzzzzzzzzzz", 10, 944),
    ];
    for &(word, bits, slot) in vectors {
        assert_eq!(hash(word, bits), slot, "hash({word:?}, {bits})");
    }
}

#[test]
fn hash_ignores_case() {
    assert_eq!(hash("3NJA9", 10), 581);
    assert_eq!(hash("3nJa9", 10), 581);
}

#[test]
fn non_ascii_characters_fold_their_low_byte_as_deployed() {
    // 'é' is U+00E9: LimeWire and gtk-gnutella fold 0xE9, not its UTF-8
    // bytes C3 A9; 'É' lowercases to it first.
    let expected = (0x65u32 | 0xE9 << 8).wrapping_mul(GOLDEN_RATIO_32) >> 16;
    assert_eq!(hash("eé", 16), expected);
    assert_eq!(hash("EÉ", 16), expected);
}

#[test]
fn names_are_cut_into_lowercased_words_at_punctuation() {
    let cut: Vec<String> = words("Free_Software-Song (v1.2).OGG").collect();
    assert_eq!(cut, ["free", "software", "song", "v1", "2", "ogg"]);
}

#[test]
fn a_word_brings_its_prefixes_down_to_four_bytes_at_most_five_cut() {
    assert_eq!(word_and_prefixes("testing").collect::<Vec<_>>(), ["testing", "testin", "testi", "test"]);
    assert_eq!(word_and_prefixes("test").collect::<Vec<_>>(), ["test"]);
    assert_eq!(word_and_prefixes("ab").collect::<Vec<_>>(), ["ab"]);
    assert_eq!(
        word_and_prefixes("abcdefghij").collect::<Vec<_>>(),
        ["abcdefghij", "abcdefghi", "abcdefgh", "abcdefg", "abcdef", "abcde"]
    );
}

#[test]
fn a_table_of_file_names_routes_queries_for_their_words_only() {
    let table = RouteTable::from_library(["Free Software Song.ogg", "gnu-manifesto.txt"], []);
    let routes = |criteria: &str| table.routes(&QueryKeys::new(criteria, &[]));
    assert!(routes("software"));
    assert!(routes("FREE song"));
    assert!(routes("manifesto"));
    assert!(routes("soft"), "prefixes of shared words are in the table");
    assert!(!routes("kernel"));
    assert!(!routes("free kernel"), "one or two words must all be present");
    assert!(routes("free software kernel"), "two thirds of three words suffice");
    assert!(!routes("free kernel linux"));
    assert!(routes("a software"), "words under three bytes are not looked up");
}

#[test]
fn a_table_routes_a_query_by_its_sha1_urn() {
    let urn: Urn = "urn:sha1:PLSTHIPQGSSZTS5FJUPAKUZWUGYQYPFB".parse().unwrap();
    let other: Urn = "urn:sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
    let table = RouteTable::from_library(["song.ogg"], [&urn]);
    assert!(table.routes(&QueryKeys::new("", &[urn])));
    assert!(!table.routes(&QueryKeys::new("", &[other])));
    assert!(table.routes(&QueryKeys::new("song", &[other])), "the words still count when the URN misses");
}

#[test]
fn spec_examples_reset_then_8_bit_patches_set_and_clear_slots() {
    // doc/gnutella/QRP, appendix B, example 1: "test" (slot 2) added, a
    // word at slot 6 added, then "test" removed.
    let mut receiver = TableReceiver::default();
    assert!(receive_all(&mut receiver, &["0 8 0 0 0 7", "1 1 1 0 8 0 0 fa 0 0 0 0 0"]).unwrap());
    let mut expected = RouteTable::new(3);
    expected.insert_name("test");
    assert_eq!(receiver.table(), Some(&expected));
    assert!(receive_all(&mut receiver, &["1 1 1 0 8 0 0 0 0 0 0 fa 0"]).unwrap());
    assert_eq!(slots_set(receiver.table().unwrap()), [2, 6]);
    assert!(receive_all(&mut receiver, &["1 1 1 0 8 0 0 6 0 0 0 0 0"]).unwrap());
    assert_eq!(slots_set(receiver.table().unwrap()), [6]);
}

#[test]
fn spec_examples_4_bit_patches_plain_split_and_compressed_agree() {
    let examples: &[&[&str]] = &[
        &["0 8 0 0 0 7", "1 1 1 0 4 0 a0 0 0"],
        &["0 8 0 0 0 7", "1 1 2 0 4 0 a0", "1 2 2 0 4 0 0"],
        &["0 8 0 0 0 7", "1 1 1 1 4 78 9c 63 58 c0 c0 0 0 1 e4 0 a1"],
        &["0 8 0 0 0 7", "1 1 2 1 4 78 9c 63 58 c0 c0 0 0 1 e4", "1 2 2 1 4 0 a1"],
    ];
    for example in examples {
        let mut receiver = TableReceiver::default();
        assert!(receive_all(&mut receiver, example).unwrap(), "{example:?}");
        assert_eq!(slots_set(receiver.table().unwrap()), [2], "{example:?}");
    }
    let mut receiver = TableReceiver::default();
    receive_all(&mut receiver, examples[3]).unwrap();
    receive_all(&mut receiver, &["1 1 2 1 4 78 9c 63 60 60 58 0 0 0 a4", "1 2 2 1 4 0 a1"]).unwrap();
    assert_eq!(slots_set(receiver.table().unwrap()), [2, 6]);
    receive_all(&mut receiver, &["1 1 2 1 4 78 9c 63 48 60 60 0 0 1 24", "1 2 2 1 4 0 61"]).unwrap();
    assert_eq!(slots_set(receiver.table().unwrap()), [6]);
}

#[test]
fn one_bit_patches_flip_slots_high_bit_first() {
    let mut receiver = TableReceiver::default();
    receive_all(&mut receiver, &["0 10 0 0 0 1", "1 1 1 0 1 81 01"]).unwrap();
    assert_eq!(slots_set(receiver.table().unwrap()), [0, 7, 15]);
    receive_all(&mut receiver, &["1 1 1 0 1 80 00"]).unwrap();
    assert_eq!(slots_set(receiver.table().unwrap()), [7, 15]);
}

#[test]
fn the_previous_table_stays_in_force_until_a_sequence_completes() {
    let mut receiver = TableReceiver::default();
    assert!(!receive_all(&mut receiver, &["0 8 0 0 0 7", "1 1 2 0 4 0 a0"]).unwrap());
    assert_eq!(receiver.table(), None, "no table before the sequence ends");
    receive_all(&mut receiver, &["1 2 2 0 4 0 0"]).unwrap();
    assert_eq!(slots_set(receiver.table().unwrap()), [2]);
    receive_all(&mut receiver, &["0 8 0 0 0 7", "1 1 2 0 4 0 0"]).unwrap();
    assert_eq!(slots_set(receiver.table().unwrap()), [2], "the old table is kept while the new one arrives");
}

#[test]
fn our_updates_rebuild_our_table_at_the_receiver_from_scratch_and_by_patch() {
    let first = RouteTable::from_library(["Free Software Song.ogg"], []);
    let updates = first.updates_from(None);
    assert!(matches!(updates[0], RouteTableUpdate::Reset { table_length: 65536, infinity: LOCAL_INFINITY }));
    let mut receiver = TableReceiver::default();
    for update in updates {
        let decoded = RouteTableUpdate::decode(&update.encode()).unwrap();
        assert_eq!(decoded, update);
        receiver.receive(decoded).unwrap();
    }
    assert_eq!(receiver.table(), Some(&first));

    let second = RouteTable::from_library(["gnu-manifesto.txt"], []);
    let patch = second.updates_from(Some(&first));
    assert!(patch.iter().all(|u| matches!(u, RouteTableUpdate::Patch { entry_bits: 4, .. })));
    for update in patch {
        receiver.receive(update).unwrap();
    }
    assert_eq!(receiver.table(), Some(&second));
    assert!(second.updates_from(Some(&second)).is_empty(), "nothing is sent when nothing changed");
}

#[test]
fn a_large_table_is_split_into_several_patch_messages() {
    let names: Vec<String> = (0..20_000).map(|i| format!("file{i} word{}", i * 7919)).collect();
    let table = RouteTable::from_library(names.iter().map(String::as_str), []);
    let updates = table.updates_from(None);
    assert!(updates.len() > 2, "{} messages", updates.len());
    assert!(updates.iter().all(|u| u.encode().len() <= PATCH_HEADER_LEN + PATCH_CHUNK));
    let mut receiver = TableReceiver::default();
    for update in updates {
        receiver.receive(update).unwrap();
    }
    assert_eq!(receiver.table(), Some(&table));
}

#[test]
fn merged_tables_of_different_sizes_keep_every_word() {
    let mut small = RouteTable::new(14);
    small.insert_name("alpha");
    let mut large = RouteTable::new(18);
    large.insert_name("omega");
    let mut merged = RouteTable::default();
    merged.merge(&small);
    merged.merge(&large);
    for word in ["alpha", "omega"] {
        assert!(merged.routes(&QueryKeys::new(word, &[])), "{word}");
    }
    assert!(!merged.routes(&QueryKeys::new("gamma", &[])));
    let mut back = RouteTable::new(14);
    back.merge(&merged);
    assert!(back.routes(&QueryKeys::new("omega", &[])));
}

#[test]
fn malformed_updates_are_errors() {
    let decode = |text: &str| RouteTableUpdate::decode(&hex(text));
    assert_eq!(decode(""), Err(QrpError::Truncated));
    assert_eq!(decode("0 8 0 0"), Err(QrpError::Truncated));
    assert_eq!(decode("0 c 0 0 0 7"), Err(QrpError::TableLength(12)));
    assert_eq!(decode("0 0 0 0 1 7"), Err(QrpError::TableLength(1 << 24)), "over our bound");
    assert_eq!(decode("0 8 0 0 0 0"), Err(QrpError::Infinity));
    assert_eq!(decode("2 0"), Err(QrpError::UnknownVariant(2)));
    assert_eq!(decode("1 1 1 2 4"), Err(QrpError::Compressor(2)));
    assert_eq!(decode("1 1 1 0 3"), Err(QrpError::EntryBits(3)));
    assert_eq!(decode("1 2 1 0 4"), Err(QrpError::SequenceSize { seq_no: 2, seq_size: 1 }));
    assert_eq!(decode("1 0 1 0 4"), Err(QrpError::SequenceSize { seq_no: 0, seq_size: 1 }));
}

#[test]
fn patches_out_of_order_or_place_are_errors() {
    let run = |payloads: &[&str]| receive_all(&mut TableReceiver::default(), payloads);
    assert_eq!(run(&["1 1 1 0 4 0 0 0 0"]), Err(QrpError::PatchBeforeReset));
    assert_eq!(run(&["0 8 0 0 0 7", "1 2 2 0 4 0 0"]), Err(QrpError::Sequence { expected: 1, got: 2 }));
    assert_eq!(
        run(&["0 8 0 0 0 7", "1 1 3 0 4 0 0", "1 3 3 0 4 0 0"]),
        Err(QrpError::Sequence { expected: 2, got: 3 })
    );
    assert_eq!(run(&["0 8 0 0 0 7", "1 1 3 0 4 0", "1 2 2 0 4 0"]), Err(QrpError::SequenceChanged));
    assert_eq!(run(&["0 8 0 0 0 7", "1 1 2 0 4 0", "1 2 2 0 8 0"]), Err(QrpError::SequenceChanged));
}

#[test]
fn a_patch_longer_than_its_table_is_an_error() {
    let mut receiver = TableReceiver::default();
    assert_eq!(receive_all(&mut receiver, &["0 8 0 0 0 7", "1 1 1 0 4 0 0 0 0 0"]), Err(QrpError::Overflow(8)));
}

#[test]
fn a_compressed_patch_that_inflates_past_its_table_is_an_error() {
    // A zlib bomb: 1 MiB of zeros for a 64 Ki-slot table (32 KiB at 4 bits).
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
    let bomb = encoder.finish().unwrap();
    let mut receiver = TableReceiver::default();
    receiver.receive(RouteTableUpdate::Reset { table_length: 65536, infinity: 2 }).unwrap();
    let patch =
        RouteTableUpdate::Patch { seq_no: 1, seq_size: 1, compressor: Compressor::Zlib, entry_bits: 4, data: bomb };
    assert_eq!(receiver.receive(patch), Err(QrpError::Overflow(65536)));
}

#[test]
fn a_corrupt_or_unfinished_zlib_stream_is_an_error() {
    let mut receiver = TableReceiver::default();
    let corrupt = receive_all(&mut receiver, &["0 8 0 0 0 7", "1 1 1 1 4 ff ff ff ff"]);
    assert!(matches!(corrupt, Err(QrpError::Inflate(_))), "{corrupt:?}");
    let mut receiver = TableReceiver::default();
    let unfinished = receive_all(&mut receiver, &["0 8 0 0 0 7", "1 1 1 1 4 78 9c 63 58 c0 c0 0 0"]);
    assert!(matches!(unfinished, Err(QrpError::Inflate(_))), "{unfinished:?}");
}

#[test]
fn a_sparse_table_received_is_kept_compact_and_answers_and_patches_the_same() {
    let leaf = RouteTable::from_library(["Free Software Song.ogg", "gnu-manifesto.txt"], []);
    let mut receiver = TableReceiver::default();
    for update in leaf.updates_from(None) {
        receiver.receive(update).unwrap();
    }
    let kept = receiver.table().unwrap();
    assert_eq!(kept, &leaf);
    assert!(kept.memory() * 20 < leaf.memory(), "{} bytes kept for a {}-byte bitmap", kept.memory(), leaf.memory());
    for words in ["free software", "manifesto", "linux kernel"] {
        let keys = QueryKeys::new(words, &[]);
        assert_eq!(kept.routes(&keys), leaf.routes(&keys), "{words}");
    }
    let grown = RouteTable::from_library(["Free Software Song.ogg", "gnu-manifesto.txt", "kernel.tar"], []);
    assert_eq!(grown.updates_from(Some(kept)), grown.updates_from(Some(&leaf)), "the same patch from either");
    // A patch on the compact table makes a bitmap again, then compact again.
    for update in grown.updates_from(Some(kept)) {
        receiver.receive(update).unwrap();
    }
    assert_eq!(receiver.table().unwrap(), &grown);
    assert!(receiver.table().unwrap().routes(&QueryKeys::new("kernel", &[])));
    let mut union = RouteTable::default();
    union.merge(receiver.table().unwrap());
    assert_eq!(union, grown);
}
