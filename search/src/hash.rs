//! Content hashing: SHA-1, SHA-256 and the Tiger tree root (TTH) of a file
//! (and, for a download that carries a signature, its BLAKE2b prehash) in
//! one read pass.
//!
//! Every shared file needs all three: SHA-1 because Gnutella's HUGE URNs
//! use it, the TTH because deployed servents check chunks against it (the
//! bitprint, THEX), SHA-256 because every security decision does. The file
//! is read once, in large chunks. Past the first chunk the digests run on
//! threads of their own: the reading thread updates SHA-1 and hands each
//! chunk to a SHA-256 thread and a Tiger tree thread (and to a thread for
//! the caller's extra digest, if any), so a large file hashes at about the
//! speed of the slowest digest rather than at the speed of all added up.
//! Small files, the common case, stay on the calling thread.
//!
//! The `sha1` and `sha2` crates pick the CPU's SHA extensions at run time.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread;

use sha1::{Digest, Sha1};
use sha2::Sha256;

use thex::{Root, TreeHasher};

use crate::Urn;

/// Bytes read at a time: large enough that system calls and channel hand-offs
/// cost nothing next to hashing.
const CHUNK: usize = 1 << 20;
/// Chunks allocated per pipelined hash, which bounds its memory: one being
/// read, one being hashed by the slowest digest, and two queued between them.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The digests of some content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digests {
    /// SHA-1, for Gnutella's `urn:sha1:`.
    pub sha1: [u8; 20],
    /// SHA-256, for `urn:sha256:` and signatures.
    pub sha256: [u8; 32],
    /// The Tiger tree root, for `urn:tree:tiger/:` and the bitprint.
    pub tth: Root,
}

impl Digests {
    /// The content's `urn:sha1:`.
    pub fn sha1_urn(&self) -> Urn {
        Urn::Sha1(self.sha1)
    }

    /// The content's `urn:sha256:`.
    pub fn sha256_urn(&self) -> Urn {
        Urn::Sha256(self.sha256)
    }

    /// The content's `urn:bitprint:SHA1.TTH`, as gtk-gnutella names files.
    pub fn bitprint(&self) -> String {
        format!("urn:bitprint:{}.{}", self.sha1_urn().base32(), self.tth)
    }
}

/// Hashes a file with SHA-1, SHA-256 and the Tiger tree in one read pass.
pub fn hash_file(path: &Path) -> io::Result<Digests> {
    Ok(hash_reader(File::open(path)?)?.0)
}

/// Hashes everything `reader` gives with SHA-1, SHA-256 and the Tiger tree
/// in one pass, and says how many bytes that was.
pub fn hash_reader(reader: impl Read) -> io::Result<(Digests, u64)> {
    hash_reader_with(reader, None)
}

/// A digest the caller computes in the same pass (a signature's prehash),
/// fed every chunk in order.
pub type AlsoFeed<'a> = &'a mut (dyn FnMut(&[u8]) + Send);

/// Like [`hash_reader`], and feeds every chunk to `also` as well, in the
/// same read pass (on a thread of its own past the first chunk).
pub fn hash_reader_with(mut reader: impl Read, mut also: Option<AlsoFeed<'_>>) -> io::Result<(Digests, u64)> {
    // Most shared files are far smaller than a chunk: read the first chunk
    // into a buffer that grows with what comes rather than zeroing 1 MiB.
    let mut first = Vec::new();
    let len = reader.by_ref().take(CHUNK as u64).read_to_end(&mut first)?;
    if len < CHUNK {
        let mut tree = TreeHasher::root_only();
        tree.update(&first[..len]);
        let digests = Digests {
            sha1: Sha1::digest(&first[..len]).into(),
            sha256: Sha256::digest(&first[..len]).into(),
            tth: tree.finish_root(),
        };
        if let Some(also) = also.as_mut() {
            also(&first[..len]);
        }
        return Ok((digests, len as u64));
    }
    hash_pipelined(reader, first, also)
}

/// A chunk shared by the threads that digest it, and how much of it is data.
type Shared = Arc<(Vec<u8>, usize)>;

/// Hashes `first` (a full chunk) and the rest of `reader`: SHA-1 on this
/// thread, SHA-256, the Tiger tree and `also` each on a thread of its own. Every digesting
/// thread gets each chunk and sends it back when done; the chunk is reused
/// once all have.
fn hash_pipelined(mut reader: impl Read, first: Vec<u8>, also: Option<AlsoFeed<'_>>) -> io::Result<(Digests, u64)> {
    let (give_back, spares) = mpsc::channel::<Shared>();
    let mut sha256 = Sha256::new();
    let mut tree = TreeHasher::root_only();
    let (sha1, total) = thread::scope(|scope| {
        let mut threads = vec![
            digesting(scope, "sha256", &give_back, |chunk| sha256.update(chunk))?,
            digesting(scope, "tiger tree", &give_back, |chunk| tree.update(chunk))?,
        ];
        if let Some(also) = also {
            threads.push(digesting(scope, "prehash", &give_back, also)?);
        }

        let mut sha1 = Sha1::new();
        let mut total = 0u64;
        let mut allocated = 1;
        let mut chunk = first;
        let mut len = CHUNK;
        let read = loop {
            sha1.update(&chunk[..len]);
            total += len as u64;
            let last = len < CHUNK;
            let shared = Arc::new((chunk, len));
            if threads.iter().any(|(to_thread, _)| to_thread.send(shared.clone()).is_err()) {
                break Ok(());
            }
            drop(shared);
            if last {
                break Ok(());
            }
            chunk = match reuse(&spares, false) {
                Some(spare) => spare,
                None if allocated < CHUNKS_IN_FLIGHT => {
                    allocated += 1;
                    vec![0; CHUNK]
                }
                None => reuse(&spares, true).unwrap_or_else(|| vec![0; CHUNK]),
            };
            match read_full(&mut reader, &mut chunk) {
                Ok(n) => len = n,
                Err(e) => break Err(e),
            }
        };
        let mut panicked = false;
        for (to_thread, thread) in threads {
            drop(to_thread);
            panicked |= thread.join().is_err();
        }
        if panicked {
            return Err(io::Error::other("a digest thread panicked"));
        }
        read?;
        Ok::<_, io::Error>((sha1.finalize(), total))
    })?;
    Ok((Digests { sha1: sha1.into(), sha256: sha256.finalize().into(), tth: tree.finish_root() }, total))
}

/// A thread that feeds every chunk it is sent to `digest`, then gives it back.
fn digesting<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    name: &str,
    give_back: &mpsc::Sender<Shared>,
    mut digest: impl FnMut(&[u8]) + Send + 'scope,
) -> io::Result<(mpsc::SyncSender<Shared>, thread::ScopedJoinHandle<'scope, ()>)> {
    let (to_thread, chunks) = mpsc::sync_channel::<Shared>(CHUNKS_IN_FLIGHT - 2);
    let give_back = give_back.clone();
    let thread = thread::Builder::new().name(name.into()).spawn_scoped(scope, move || {
        for chunk in chunks {
            digest(&chunk.0[..chunk.1]);
            // The reader may have stopped on an error; the chunk is then just freed.
            let _ = give_back.send(chunk);
        }
    })?;
    Ok((to_thread, thread))
}

/// A chunk every digesting thread is done with, if one is back (waiting
/// for one when `wait`).
fn reuse(spares: &mpsc::Receiver<Shared>, wait: bool) -> Option<Vec<u8>> {
    loop {
        let back = if wait { spares.recv().ok()? } else { spares.try_recv().ok()? };
        // Another thread still holds this chunk: it gives it back later.
        if let Ok((buffer, _)) = Arc::try_unwrap(back) {
            return Some(buffer);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Hands out its bytes a few at a time, as pipes and sockets do.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(4093);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn abc_matches_the_fips_test_vectors() {
        let (digests, len) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(len, 3);
        assert_eq!(hex(&digests.sha1), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&digests.sha256), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn empty_input_matches_the_known_digests() {
        let (digests, len) = hash_reader(io::empty()).unwrap();
        assert_eq!(len, 0);
        assert_eq!(digests.sha1_urn().to_string(), "urn:sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ");
        assert_eq!(hex(&digests.sha256), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(digests.tth.to_base32(), "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ");
    }

    #[test]
    fn million_a_matches_the_fips_test_vectors() {
        let data = vec![b'a'; 1_000_000];
        let (digests, _) = hash_reader(&data[..]).unwrap();
        assert_eq!(hex(&digests.sha1), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        assert_eq!(hex(&digests.sha256), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }

    #[test]
    fn pipelined_hash_equals_plain_digests_for_every_boundary() {
        for len in [CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 12345, 7 * CHUNK - 1] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (digests, total) = hash_reader(Trickle(&data)).unwrap();
            assert_eq!(total, len as u64);
            assert_eq!(digests.sha1, <[u8; 20]>::from(Sha1::digest(&data)), "{len}");
            assert_eq!(digests.sha256, <[u8; 32]>::from(Sha256::digest(&data)), "{len}");
            assert_eq!(digests.tth, thex::Tree::of(&data).root(), "{len}");
        }
    }

    #[test]
    fn extra_digest_sees_every_byte_in_order_small_or_large() {
        for len in [0, 10, CHUNK, 5 * CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let mut extra = Sha256::new();
            let mut feed = |chunk: &[u8]| extra.update(chunk);
            let (digests, total) = hash_reader_with(Trickle(&data), Some(&mut feed)).unwrap();
            assert_eq!(total, len as u64);
            assert_eq!(digests.sha1, <[u8; 20]>::from(Sha1::digest(&data)), "{len}");
            assert_eq!(<[u8; 32]>::from(extra.finalize()), digests.sha256, "{len}");
        }
    }

    #[test]
    fn read_error_past_the_first_chunk_is_returned() {
        let failing = io::repeat(7).take(2 * CHUNK as u64).chain(FailingReader);
        let err = hash_reader(failing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    struct FailingReader;

    impl Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn hash_file_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(hash_file(&path).unwrap(), hash_reader(&b"abc"[..]).unwrap().0);
        let missing = hash_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
