//! THEX on the wire: what `/uri-res/N2X?urn:sha1:…` answers.
//!
//! The body is a DIME message of two records. The first, of media type
//! `text/xml`, describes the tree: the file's size, the segment size (1024),
//! the digest (Tiger, 24 bytes), and the serialized tree's depth, type
//! (`…/thex/breadthfirst`) and id. The second, typed by that URI and carrying
//! that id, holds the nodes breadth first, root first. A DIME record is a
//! 12-byte header (version 1 and the begin/end flags, the type format, then
//! the big-endian lengths of options, id, type and data), followed by each
//! of those fields padded to 4 bytes.
//!
//! [`serialize`] writes what gtk-gnutella 1.2.3 writes (its `thex_upload.c`,
//! `dime.c`), down to the CRLFs of the XML and the id it derives from the
//! root. [`parse`] reads any servent's answer: at most [`MAX_BODY`] bytes
//! and [`MAX_RECORDS`] records, the XML only scanned for the few attributes
//! that must match the file, the tree record found by its type.

use crate::{full_depth, Root, Tree, TreeError};

/// Largest THEX body read.
pub const MAX_BODY: usize = 2 << 20;
/// Most DIME records read from one body.
pub const MAX_RECORDS: usize = 8;
/// The type of the tree record.
pub const TREE_TYPE: &str = "http://open-content.net/spec/thex/breadthfirst";
/// The digest algorithm named in the description.
pub const TIGER_ALGORITHM: &str = "http://open-content.net/spec/digest/tiger";
const DOCTYPE: &str = "http://open-content.net/spec/thex/thex.dtd";

const VERSION: u8 = 1;
const HEADER: usize = 12;
const MESSAGE_BEGIN: u8 = 1 << 2;
const MESSAGE_END: u8 = 1 << 1;
const TYPE_MEDIA: u8 = 1;
const TYPE_URI: u8 = 2;

/// The id gtk-gnutella gives the tree record: a UUID made of the root's
/// first 16 bytes.
fn tree_id(root: &Root) -> String {
    let b = &root.0;
    let le32 = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let le16 = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    format!("uuid:{:08x}-{:04x}-{:04x}-{:04x}-{:08x}{:04x}", le32(0), le16(4), le16(6), le16(8), le32(10), le16(14))
}

fn record(out: &mut Vec<u8>, flags: u8, type_format: u8, id: &[u8], kind: &[u8], data: &[u8]) {
    out.push(VERSION << 3 | flags);
    out.push(type_format << 4);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
    out.extend_from_slice(&(kind.len() as u16).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for field in [id, kind, data] {
        out.extend_from_slice(field);
        out.resize(out.len() + field.len().next_multiple_of(4) - field.len(), 0);
    }
}

/// The THEX body for `tree`, as gtk-gnutella serves it.
pub fn serialize(tree: &Tree) -> Vec<u8> {
    let root = tree.root();
    let id = tree_id(&root);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <!DOCTYPE hashtree SYSTEM \"{DOCTYPE}\">\r\n\
         <hashtree>\r\n\
         <file size=\"{}\" segmentsize=\"1024\"/>\r\n\
         <digest algorithm=\"{TIGER_ALGORITHM}\" outputsize=\"24\"/>\r\n\
         <serializedtree depth=\"{}\" type=\"{TREE_TYPE}\" uri=\"{id}\"/>\r\n\
         </hashtree>\r\n",
        tree.size(),
        tree.depth(),
    );
    let mut out = Vec::new();
    record(&mut out, MESSAGE_BEGIN, TYPE_MEDIA, b"", b"text/xml", xml.as_bytes());
    record(&mut out, MESSAGE_END, TYPE_URI, id.as_bytes(), TREE_TYPE.as_bytes(), &tree.breadth_first());
    out
}

/// One DIME record's type and data.
struct Record<'a> {
    kind: &'a [u8],
    data: &'a [u8],
}

fn records(mut body: &[u8]) -> Result<Vec<Record<'_>>, TreeError> {
    let mut out = Vec::new();
    loop {
        if out.len() == MAX_RECORDS {
            return Err(TreeError::Envelope("too many records"));
        }
        if body.len() < HEADER {
            return Err(TreeError::Envelope("truncated record header"));
        }
        if body[0] >> 3 != VERSION {
            return Err(TreeError::Envelope("not DIME version 1"));
        }
        if out.is_empty() && body[0] & MESSAGE_BEGIN == 0 {
            return Err(TreeError::Envelope("no message-begin flag"));
        }
        let last = body[0] & MESSAGE_END != 0;
        let be16 = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]) as usize;
        let lengths = [be16(2), be16(4), be16(6), u32::from_be_bytes([body[8], body[9], body[10], body[11]]) as usize];
        let mut rest = &body[HEADER..];
        let mut fields = [&rest[..0]; 4];
        for (field, length) in fields.iter_mut().zip(lengths) {
            let padded = length.checked_next_multiple_of(4).ok_or(TreeError::Envelope("record too long"))?;
            if rest.len() < padded {
                return Err(TreeError::Envelope("truncated record"));
            }
            *field = &rest[..length];
            rest = &rest[padded..];
        }
        out.push(Record { kind: fields[2], data: fields[3] });
        body = rest;
        if last {
            return Ok(out);
        }
    }
}

/// The value of attribute `name` of the first element `element` in `xml`.
fn attribute<'a>(xml: &'a str, element: &str, name: &str) -> Option<&'a str> {
    let open = format!("<{element}");
    let mut from = 0;
    let tag = loop {
        let at = from + xml[from..].find(&open)?;
        let after = &xml[at + open.len()..];
        if after.starts_with(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>') {
            break &after[..after.find('>')?];
        }
        from = at + open.len();
    };
    let mut rest = tag;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim();
        let value = rest[eq + 1..].trim_start();
        let quote = value.chars().next().filter(|&c| c == '"' || c == '\'')?;
        let end = value[1..].find(quote)?;
        if key == name {
            return Some(&value[1..1 + end]);
        }
        rest = &value[end + 2..];
    }
    None
}

/// Reads a THEX body for a file of `size` bytes whose root is `root`, and
/// keeps the tree's deepest complete level; refuses anything malformed,
/// describing another file, or not hashing up to `root`.
pub fn parse(body: &[u8], size: u64, root: &Root) -> Result<Tree, TreeError> {
    if body.len() > MAX_BODY {
        return Err(TreeError::Envelope("body too large"));
    }
    let records = records(body)?;
    let xml = records
        .iter()
        .find(|record| record.kind.eq_ignore_ascii_case(b"text/xml"))
        .ok_or(TreeError::Envelope("no XML description"))?;
    let xml = std::str::from_utf8(xml.data).map_err(|_| TreeError::Envelope("XML description not UTF-8"))?;
    let checks = [
        ("file", "size", size.to_string()),
        ("file", "segmentsize", "1024".to_string()),
        ("digest", "algorithm", TIGER_ALGORITHM.to_string()),
        ("digest", "outputsize", "24".to_string()),
        ("serializedtree", "type", TREE_TYPE.to_string()),
    ];
    for (element, name, expected) in checks {
        if attribute(xml, element, name) != Some(expected.as_str()) {
            return Err(TreeError::Envelope("description of another file or tree"));
        }
    }
    let depth: u32 = attribute(xml, "serializedtree", "depth")
        .and_then(|depth| depth.parse().ok())
        .ok_or(TreeError::Envelope("no tree depth"))?;
    if depth > full_depth(size) {
        return Err(TreeError::Envelope("tree deeper than the file's"));
    }
    let nodes = records
        .iter()
        .find(|record| record.kind.eq_ignore_ascii_case(TREE_TYPE.as_bytes()))
        .ok_or(TreeError::Envelope("no tree record"))?;
    Tree::from_breadth_first(size, root, nodes.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TreeHasher;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn serialized_tree_reads_back() {
        for len in [0, 1, 1024, 300_000, 3 << 20] {
            let data = data(len);
            let tree = Tree::of(&data);
            let body = serialize(&tree);
            assert_eq!(parse(&body, len as u64, &tree.root()), Ok(tree.clone()), "len {len}");
        }
    }

    #[test]
    fn serialization_is_gtk_gnutellas() {
        // 300 000 bytes: 293 leaves, gtk-gnutella's depth 1, so the root and two nodes.
        let tree = Tree::of(&data(300_000));
        assert_eq!(tree.depth(), 1);
        let body = serialize(&tree);
        assert_eq!(&body[..10], &[0x0C, 0x10, 0, 0, 0, 0, 0, 8, 0, 0]);
        let xml_length = u16::from_be_bytes([body[10], body[11]]) as usize;
        assert_eq!(&body[12..20], b"text/xml");
        let xml = std::str::from_utf8(&body[20..20 + xml_length]).expect("XML");
        assert!(xml.ends_with("</hashtree>\r\n"));
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!DOCTYPE hashtree SYSTEM"));
        assert!(xml.contains("<file size=\"300000\" segmentsize=\"1024\"/>\r\n"));
        assert!(xml.contains("<serializedtree depth=\"1\" type=\"http://open-content.net/spec/thex/breadthfirst\""));
        let tree_record = 20 + xml_length.next_multiple_of(4);
        assert_eq!(body[tree_record], 0x0A, "version 1, message end");
        assert_eq!(body[tree_record + 1], 0x20, "a URI type");
        assert_eq!(u16::from_be_bytes([body[tree_record + 4], body[tree_record + 5]]), 41, "uuid: and 36");
        assert_eq!(body.len() - tree_record, 12 + 44 + 48 + 72);
        assert!(body.ends_with(&tree.breadth_first()));
    }

    #[test]
    fn hostile_bodies_are_refused() {
        let data = data(5000);
        let tree = Tree::of(&data);
        let root = tree.root();
        let body = serialize(&tree);
        for cut in [0, 5, 12, 40, body.len() - 1] {
            assert!(parse(&body[..cut], 5000, &root).is_err(), "cut at {cut}");
        }
        assert!(parse(&body, 5001, &root).is_err(), "another size");
        let mut huge_length = body.clone();
        huge_length[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&huge_length, 5000, &root).is_err());
        let mut no_end = body.clone();
        let second = no_end.len() - (12 + 44 + 48 + 24 * (tree.breadth_first().len() / 24));
        no_end[second] &= !MESSAGE_END;
        assert!(parse(&no_end, 5000, &root).is_err(), "records past the end");
        assert!(parse(&vec![0u8; MAX_BODY + 1], 5000, &root).is_err());
        let mut other = TreeHasher::root_only();
        other.update(b"something else");
        assert_eq!(parse(&body, 5000, &other.finish_root()), Err(TreeError::OtherRoot));
    }

    #[test]
    fn attributes_are_found_in_their_element_only() {
        let xml = "<filex size=\"1\"/><file  size='22' segmentsize=\"1024\"/>";
        assert_eq!(attribute(xml, "file", "size"), Some("22"));
        assert_eq!(attribute(xml, "file", "segmentsize"), Some("1024"));
        assert_eq!(attribute(xml, "file", "depth"), None);
        assert_eq!(attribute("<file size=\"12", "file", "size"), None);
    }
}
