//! Tiger tree hashes (TTH) and their THEX serialization, the way deployed
//! Gnutella servents (gtk-gnutella, LimeWire, Shareaza) name and check content.
//!
//! A file is cut into *blocks* of [`BLOCK_SIZE`] bytes (the last one shorter;
//! an empty file is one empty block). Each block is a leaf, hashed with Tiger
//! over a `0x00` byte and the block; two neighbours hash to their parent with
//! Tiger over a `0x01` byte, the left one and the right one. A level with an
//! odd number of nodes promotes its last node unchanged. The single node at
//! the top is the *root*, `urn:tree:tiger/:ROOT` in base32.
//!
//! A servent does not keep every leaf: a [`Tree`] keeps the nodes of one
//! level, its *base*, where each node covers a *segment* of
//! `BLOCK_SIZE << height` bytes. Given a root it trusts, a downloader checks
//! each segment of data against its base node ([`Tree::check`]) as soon as it
//! lands, and so knows which source lied. [`dime`] writes and reads the tree
//! in THEX's wire form (DIME records: an XML description, then the nodes
//! breadth first), byte for byte as gtk-gnutella 1.2.3 serves it.
//!
//! Nothing here does I/O: bytes in, hashes out. Every length read from the
//! network is bounded before it is used.

#![warn(missing_docs)]

pub mod dime;

use std::fmt;

use tiger::{Digest, Tiger};

/// Bytes per leaf of the tree.
pub const BLOCK_SIZE: u64 = 1024;
/// Bytes in a node of the tree (a Tiger digest).
pub const NODE_SIZE: usize = 24;
/// Deepest tree this crate builds or accepts: 2^16 base nodes, 1.5 MiB.
pub const MAX_DEPTH: u32 = 16;
/// The deepest tree served: segments of 1 MiB or less for files up to 16 GiB,
/// and at most 2^14 base nodes (384 KiB) on the wire.
const MAX_SERVED_DEPTH: u32 = 14;
/// The largest segment a served tree aims for, `BLOCK_SIZE << 10` (1 MiB).
const SERVED_SEGMENT_HEIGHT: u32 = 10;

/// One node of a tree: a Tiger digest.
pub type Node = [u8; NODE_SIZE];

/// The root of a Tiger tree: the content's TTH.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Root(pub Node);

impl Root {
    /// The root in base32 (RFC 4648, no padding), 39 characters, as in
    /// `urn:tree:tiger/:` and `urn:bitprint:`.
    pub fn to_base32(&self) -> String {
        base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &self.0)
    }

    /// Reads a root from its base32 form (either case); `None` unless it is
    /// exactly 39 base32 characters.
    pub fn from_base32(text: &str) -> Option<Root> {
        if text.len() != 39 {
            return None;
        }
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &text.to_ascii_uppercase())?;
        Some(Root(bytes.try_into().ok()?))
    }
}

impl Root {
    /// The root as a URN, `urn:tree:tiger/:BASE32`.
    pub fn urn(&self) -> String {
        format!("urn:tree:tiger/:{self}")
    }

    /// Reads `urn:tree:tiger/:BASE32` (or `urn:tree:tiger:BASE32`), case-insensitively.
    pub fn from_urn(text: &str) -> Option<Root> {
        let lower = text.trim().to_ascii_lowercase();
        let base32 = lower.strip_prefix("urn:tree:tiger/:").or_else(|| lower.strip_prefix("urn:tree:tiger:"))?;
        Root::from_base32(base32)
    }
}

/// A root travels in JSON as its base32 text.
impl serde::Serialize for Root {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Root {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Root, D::Error> {
        let text = String::deserialize(deserializer)?;
        Root::from_base32(&text).ok_or_else(|| serde::de::Error::custom("not a base32 Tiger tree root"))
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root({self})")
    }
}

/// The hash of one leaf: Tiger over `0x00` and the block.
pub fn leaf(block: &[u8]) -> Node {
    let mut tiger = Tiger::new();
    tiger.update([0u8]);
    tiger.update(block);
    tiger.finalize().into()
}

/// The hash of an inner node: Tiger over `0x01`, the left child and the right one.
pub fn inner(left: &Node, right: &Node) -> Node {
    let mut tiger = Tiger::new();
    tiger.update([1u8]);
    tiger.update(left);
    tiger.update(right);
    tiger.finalize().into()
}

/// Leaves of a file of `size` bytes (an empty file has one, empty).
pub fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE).max(1)
}

/// Levels below the root of the full tree of a file of `size` bytes.
pub fn full_depth(size: u64) -> u32 {
    let blocks = block_count(size);
    blocks.next_power_of_two().trailing_zeros()
}

/// The depth gtk-gnutella serves (and expects) for a file of `size` bytes:
/// one more level at each doubling from 256 KiB to 64 MiB, then at 256 MiB
/// and 1 GiB (its `tt_good_depth`).
pub fn good_depth(size: u64) -> u32 {
    const THRESHOLDS: [u64; 11] =
        [256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20, 256 << 20, 1 << 30];
    THRESHOLDS.iter().take_while(|&&threshold| size >= threshold).count() as u32
}

/// The depth of the trees we serve for a file of `size` bytes: gtk-gnutella's
/// (so that its servents read ours as their own), deepened where that keeps
/// segments at 1 MiB or less, so that each downloaded chunk can be checked.
pub fn served_depth(size: u64) -> u32 {
    let full = full_depth(size);
    good_depth(size).max(full.saturating_sub(SERVED_SEGMENT_HEIGHT)).min(MAX_SERVED_DEPTH).min(full)
}

/// Nodes at `height` above the leaves of a file of `size` bytes.
fn count_at_height(size: u64, height: u32) -> u64 {
    let blocks = block_count(size);
    if height >= 64 {
        return 1;
    }
    blocks.div_ceil(1 << height)
}

/// Computes a tree over data fed in pieces of any size, keeping the nodes at
/// one height as its base.
#[derive(Clone)]
pub struct TreeHasher {
    /// Height of the base nodes kept.
    height: u32,
    /// Subtrees not yet joined, with their heights, decreasing.
    stack: Vec<(Node, u32)>,
    /// The block being filled.
    block: Vec<u8>,
    /// Bytes fed so far.
    size: u64,
    /// Base nodes finished so far.
    base: Vec<Node>,
}

impl Default for TreeHasher {
    fn default() -> TreeHasher {
        TreeHasher::root_only()
    }
}

impl TreeHasher {
    /// A hasher that keeps no base worth the name: only the root.
    pub fn root_only() -> TreeHasher {
        TreeHasher::with_height(64)
    }

    /// A hasher for a file of `size` bytes that keeps the base of the tree at `depth`.
    pub fn for_depth(size: u64, depth: u32) -> TreeHasher {
        TreeHasher::with_height(full_depth(size).saturating_sub(depth))
    }

    fn with_height(height: u32) -> TreeHasher {
        TreeHasher {
            height,
            stack: Vec::new(),
            block: Vec::with_capacity(BLOCK_SIZE as usize),
            size: 0,
            base: Vec::new(),
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        if !self.block.is_empty() {
            let wanted = (BLOCK_SIZE as usize - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..wanted]);
            data = &data[wanted..];
            if self.block.len() < BLOCK_SIZE as usize {
                return;
            }
            let node = leaf(&self.block);
            self.block.clear();
            self.push(node);
        }
        // A final full block stays buffered: only `finish` knows it is the last.
        while data.len() > BLOCK_SIZE as usize {
            let (block, rest) = data.split_at(BLOCK_SIZE as usize);
            self.push(leaf(block));
            data = rest;
        }
        self.block.extend_from_slice(data);
    }

    fn push(&mut self, node: Node) {
        let mut top = (node, 0);
        loop {
            if top.1 == self.height {
                self.base.push(top.0);
            }
            match self.stack.last() {
                Some(&(left, height)) if height == top.1 => {
                    self.stack.pop();
                    top = (inner(&left, &top.0), height + 1);
                }
                _ => break,
            }
        }
        self.stack.push(top);
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root alone.
    pub fn finish_root(self) -> Root {
        self.finish().root()
    }

    /// The tree of everything fed.
    pub fn finish(mut self) -> Tree {
        if !self.block.is_empty() || self.size == 0 {
            let node = leaf(&self.block);
            self.push(node);
        }
        // Join the partial subtrees of the last segment into its base node.
        let mut last: Option<Node> = None;
        while let Some(&(node, height)) = self.stack.last() {
            if height >= self.height {
                break;
            }
            self.stack.pop();
            last = Some(match last {
                None => node,
                Some(right) => inner(&node, &right),
            });
        }
        if let Some(node) = last {
            self.base.push(node);
        }
        let height = self.height.min(full_depth(self.size));
        Tree { size: self.size, height, base: self.base }
    }
}

/// The nodes of one level of a file's tree, enough to check every segment of
/// the file and to compute the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    size: u64,
    height: u32,
    base: Vec<Node>,
}

/// A segment whose data does not hash to its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset of the segment's first byte.
    pub start: u64,
    /// Offset just past its last byte.
    pub end: u64,
}

impl Tree {
    /// The tree of `data`, kept at the depth we serve.
    pub fn of(data: &[u8]) -> Tree {
        let mut hasher = TreeHasher::for_depth(data.len() as u64, served_depth(data.len() as u64));
        hasher.update(data);
        hasher.finish()
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Levels between the root and the base.
    pub fn depth(&self) -> u32 {
        full_depth(self.size) - self.height
    }

    /// Bytes covered by each base node (the last one may cover fewer).
    pub fn segment_size(&self) -> u64 {
        BLOCK_SIZE << self.height
    }

    /// The base nodes, left to right.
    pub fn base(&self) -> &[Node] {
        &self.base
    }

    /// Every level from the root down to the base.
    pub fn levels(&self) -> Vec<Vec<Node>> {
        let mut levels = vec![self.base.clone()];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().expect("a level");
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => inner(left, right),
                    [alone] => *alone,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(above);
        }
        levels.reverse();
        levels
    }

    /// The root.
    pub fn root(&self) -> Root {
        Root(self.levels()[0][0])
    }

    /// Checks `data`, the file's bytes from `start`, against the tree: `start`
    /// must be on a segment boundary, and `data` must cover whole segments
    /// (the last segment of the file may be short). The first bad segment is
    /// the error; data not covering whole segments is a mismatch too.
    pub fn check(&self, start: u64, data: &[u8]) -> Result<(), Mismatch> {
        let segment = self.segment_size();
        let end = start + data.len() as u64;
        let whole = Mismatch { start, end };
        if !start.is_multiple_of(segment) || end > self.size || (!end.is_multiple_of(segment) && end != self.size) {
            return Err(whole);
        }
        for (i, piece) in data.chunks(segment as usize).enumerate() {
            let offset = start + i as u64 * segment;
            let mut hasher = TreeHasher::root_only();
            hasher.update(piece);
            let node = hasher.finish_root().0;
            let index = (offset / segment) as usize;
            if self.base.get(index) != Some(&node) {
                return Err(Mismatch { start: offset, end: offset + piece.len() as u64 });
            }
        }
        Ok(())
    }

    /// Takes the nodes of a breadth-first serialized tree (root first) of a
    /// file of `size` bytes, and keeps its deepest complete level if the
    /// nodes hash up to `root`. Trees deeper than [`MAX_DEPTH`] are read down
    /// to that depth.
    pub fn from_breadth_first(size: u64, root: &Root, nodes: &[u8]) -> Result<Tree, TreeError> {
        if nodes.len() < NODE_SIZE || !nodes.len().is_multiple_of(NODE_SIZE) {
            return Err(TreeError::BadLength(nodes.len()));
        }
        if nodes[..NODE_SIZE] != root.0 {
            return Err(TreeError::OtherRoot);
        }
        let count = (nodes.len() / NODE_SIZE) as u64;
        let full = full_depth(size);
        // Find the deepest level whose nodes are all there.
        let mut depth = 0;
        let mut above = 0u64;
        let mut through = 1u64;
        while depth < full.min(MAX_DEPTH) {
            let next = count_at_height(size, full - depth - 1);
            if through + next > count {
                break;
            }
            above = through;
            through += next;
            depth += 1;
        }
        let height = full - depth;
        let width = count_at_height(size, height);
        let base = nodes[above as usize * NODE_SIZE..(above + width) as usize * NODE_SIZE]
            .chunks(NODE_SIZE)
            .map(|node| node.try_into().expect("a node"))
            .collect();
        let tree = Tree { size, height, base };
        if tree.root() != *root {
            return Err(TreeError::Inconsistent);
        }
        Ok(tree)
    }

    /// The tree breadth first, root first, as THEX serializes it.
    pub fn breadth_first(&self) -> Vec<u8> {
        self.levels().into_iter().flatten().flatten().collect()
    }
}

/// Why a serialized tree was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeError {
    /// Its length is not a whole, non-zero number of nodes.
    BadLength(usize),
    /// Its first node is not the root expected.
    OtherRoot,
    /// Its nodes do not hash up to its root.
    Inconsistent,
    /// Its THEX envelope is malformed or describes another file.
    Envelope(&'static str),
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::BadLength(len) => write!(f, "a tree of {len} bytes is not a whole number of nodes"),
            TreeError::OtherRoot => f.write_str("the tree has another root"),
            TreeError::Inconsistent => f.write_str("the tree's nodes do not hash to its root"),
            TreeError::Envelope(why) => write!(f, "bad THEX envelope: {why}"),
        }
    }
}

impl std::error::Error for TreeError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_of(data: &[u8]) -> String {
        let mut hasher = TreeHasher::root_only();
        hasher.update(data);
        hasher.finish_root().to_base32()
    }

    /// Reference: every leaf, then level by level with promotion.
    fn reference_root(data: &[u8]) -> Node {
        let mut level: Vec<Node> =
            if data.is_empty() { vec![leaf(&[])] } else { data.chunks(BLOCK_SIZE as usize).map(leaf).collect() };
        while level.len() > 1 {
            level =
                level.chunks(2).map(|pair| if pair.len() == 2 { inner(&pair[0], &pair[1]) } else { pair[0] }).collect();
        }
        level[0]
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1024) as u8).collect()
    }

    #[test]
    fn published_test_vectors() {
        assert_eq!(root_of(b""), "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ");
        assert_eq!(root_of(b"\0"), "VK54ZIEEVTWNAUI5D5RDFIL37LX2IQNSTAXFKSA");
        assert_eq!(root_of(&[b'A'; 1024]), "L66Q4YVNAFWVS23X2HJIRA5ZJ7WXR3F26RSASFA");
        assert_eq!(root_of(&[b'A'; 1025]), "PZMRYHGY6LTBEH63ZWAHDORHSYTLO4LEFUIKHWY");
    }

    #[test]
    fn streaming_in_any_pieces_matches_the_reference() {
        for len in [0, 1, 1023, 1024, 1025, 2048, 3 * 1024 + 5, 7 * 1024, 100_000] {
            let data = pattern(len);
            let expected = reference_root(&data);
            for piece in [1, 7, 1024, 1500, 4096, len.max(1)] {
                let mut hasher = TreeHasher::root_only();
                data.chunks(piece).for_each(|chunk| hasher.update(chunk));
                assert_eq!(hasher.finish_root().0, expected, "len {len} piece {piece}");
            }
        }
    }

    #[test]
    fn every_depth_keeps_a_base_that_hashes_to_the_root() {
        for len in [0, 1, 1024, 5000, 9 * 1024, 33 * 1024 + 1, 300_000] {
            let data = pattern(len);
            let expected = Root(reference_root(&data));
            for depth in 0..=full_depth(len as u64) + 1 {
                let mut hasher = TreeHasher::for_depth(len as u64, depth);
                data.chunks(999).for_each(|chunk| hasher.update(chunk));
                let tree = hasher.finish();
                assert_eq!(tree.root(), expected, "len {len} depth {depth}");
                assert_eq!(tree.base().len() as u64, count_at_height(len as u64, tree.height));
                assert!(tree.check(0, &data).is_ok());
            }
        }
    }

    #[test]
    fn depths_follow_gtk_gnutella() {
        assert_eq!(good_depth(0), 0);
        assert_eq!(good_depth((256 << 10) - 1), 0);
        assert_eq!(good_depth(256 << 10), 1);
        assert_eq!(good_depth(50 << 20), 8);
        assert_eq!(good_depth(1 << 30), 11);
        assert_eq!(full_depth(0), 0);
        assert_eq!(full_depth(1024), 0);
        assert_eq!(full_depth(1025), 1);
        assert_eq!(full_depth(50 << 20), 16);
        assert_eq!(served_depth(50 << 20), 8);
        assert_eq!(served_depth(4 << 30), 12, "4 GiB: 1 MiB segments");
        assert_eq!(served_depth(1 << 40), MAX_SERVED_DEPTH);
    }

    #[test]
    fn a_changed_byte_is_caught_in_its_segment_only() {
        let data = pattern(40 * 1024 + 10);
        let mut hasher = TreeHasher::for_depth(data.len() as u64, 3);
        hasher.update(&data);
        let tree = hasher.finish();
        assert_eq!(tree.segment_size(), 8 * 1024);
        let mut bad = data.clone();
        bad[17 * 1024] ^= 1;
        assert_eq!(tree.check(0, &bad), Err(Mismatch { start: 16 * 1024, end: 24 * 1024 }));
        assert!(tree.check(8 * 1024, &bad[8 * 1024..16 * 1024]).is_ok());
        assert!(tree.check(40 * 1024, &data[40 * 1024..]).is_ok(), "the short last segment");
        assert!(tree.check(4 * 1024, &data[4 * 1024..12 * 1024]).is_err(), "off a boundary");
        assert!(tree.check(0, &data[..100]).is_err(), "part of a segment");
    }

    #[test]
    fn breadth_first_round_trips_and_lies_are_refused() {
        let data = pattern(70_000);
        let mut hasher = TreeHasher::for_depth(data.len() as u64, 4);
        hasher.update(&data);
        let tree = hasher.finish();
        let root = tree.root();
        let nodes = tree.breadth_first();
        assert_eq!(Tree::from_breadth_first(data.len() as u64, &root, &nodes), Ok(tree.clone()));
        // A shallower tree (only its top levels) is read at its own depth.
        let top = &nodes[..3 * NODE_SIZE];
        let shallow = Tree::from_breadth_first(data.len() as u64, &root, top).expect("the top levels");
        assert_eq!(shallow.depth(), 1);
        assert!(shallow.check(0, &data).is_ok());

        let mut forged = nodes.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(Tree::from_breadth_first(data.len() as u64, &root, &forged), Err(TreeError::Inconsistent));
        assert_eq!(Tree::from_breadth_first(data.len() as u64, &Root([9; 24]), &nodes), Err(TreeError::OtherRoot));
        assert_eq!(Tree::from_breadth_first(data.len() as u64, &root, &nodes[..30]), Err(TreeError::BadLength(30)));
        assert_eq!(Tree::from_breadth_first(data.len() as u64, &root, &[]), Err(TreeError::BadLength(0)));
    }

    #[test]
    fn base32_round_trips() {
        let root = Root([0xA5; 24]);
        assert_eq!(Root::from_base32(&root.to_base32()), Some(root));
        assert_eq!(Root::from_base32(&root.to_base32().to_lowercase()), Some(root));
        assert_eq!(Root::from_base32("TOOSHORT"), None);
        assert_eq!(Root::from_base32(&"1".repeat(39)), None);
        assert_eq!(Root::from_urn(&root.urn()), Some(root));
        assert_eq!(Root::from_urn(&format!("URN:TREE:TIGER:{root}")), Some(root));
        assert_eq!(Root::from_urn(&format!("urn:sha1:{root}")), None);
        let json = serde_json::to_string(&root).unwrap();
        assert_eq!(json, format!("\"{root}\""));
        assert_eq!(serde_json::from_str::<Root>(&json).unwrap(), root);
        assert!(serde_json::from_str::<Root>("\"nope\"").is_err());
    }
}
