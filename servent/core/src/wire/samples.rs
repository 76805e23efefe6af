//! Payloads as other servents write them, byte by byte, for tests that a
//! message we relay leaves us exactly as it came.

/// The SHA-1 of the file in [`gtk_gnutella_hit`].
pub const SHA1: [u8; 20] = [0x5A; 20];
/// The Tiger tree root of the file in [`gtk_gnutella_hit`].
pub const TTH: [u8; 24] = [0x3C; 24];

/// A QueryHit laid out as gtk-gnutella 1.2.3 writes one (`qhit.c`): one
/// result whose extension area is a single GGEP block with `"H"` holding
/// a bitprint (0x02, SHA-1, Tiger root) and `"CT"` (creation time), then
/// the `GTKG` trailer with GGEP `"GTKGV"` and `"BH"`, then the servent GUID.
pub fn gtk_gnutella_hit() -> Vec<u8> {
    let mut p = vec![1, 0xCA, 0x18, 127, 0, 0, 1, 0x00, 0x04, 0, 0];
    p.extend_from_slice(&[7, 0, 0, 0, 0x00, 0x00, 0x10, 0x00]);
    p.extend_from_slice(b"linux-6.1.tar\0");
    // GGEP: "H" (45 bytes: bitprint), last "CT" (4 bytes).
    p.extend_from_slice(&[0xC3, 0x01, b'H', 0x40 | 45, 0x02]);
    p.extend_from_slice(&SHA1);
    p.extend_from_slice(&TTH);
    p.extend_from_slice(&[0x82, b'C', b'T', 0x44, 0x61, 0x2A, 0x3E, 0x5F]);
    p.push(0);
    // Trailer: vendor, 2 bytes of open data (uploaded, speed, GGEP stated; uploaded, GGEP set).
    p.extend_from_slice(b"GTKG\x02\x38\x28");
    // GGEP: "GTKGV" (version 1.2.3, release), last "BH" (empty).
    p.extend_from_slice(&[0xC3, 0x05, b'G', b'T', b'K', b'G', b'V', 0x40 | 11]);
    p.extend_from_slice(&[0x01, 0x01, 0x02, 0x03, b'u', 0x66, 0x5B, 0x3A, 0x12, 0x00, 0x01]);
    p.extend_from_slice(&[0x82, b'B', b'H', 0x40]);
    p.extend_from_slice(&[0x47; 16]);
    p
}

/// A Query with what we read but do not keep as it is: flags (marked,
/// XML, leaf-guided, GGEP "H"), criteria, a bare `urn:` asking for URNs,
/// an XML block, a GGEP block with an `"H"` bitprint, an empty `"NP"`
/// and an unknown `"Z9"` holding a separator, and no final NUL.
pub fn unusual_query() -> Vec<u8> {
    let mut p = vec![0xB8, 0x00];
    p.extend_from_slice(b"linux tar\0urn:\x1C");
    p.extend_from_slice(b"<?xml version=\"1.0\"?><audios><audio title=\"linux\"/></audios>\x1C");
    p.extend_from_slice(&[0xC3, 0x01, b'H', 0x40 | 45, 0x02]);
    p.extend_from_slice(&SHA1);
    p.extend_from_slice(&TTH);
    p.extend_from_slice(&[0x02, b'N', b'P', 0x40]);
    p.extend_from_slice(&[0x82, b'Z', b'9', 0x43, 0x01, 0x1C, 0x02]);
    p
}
