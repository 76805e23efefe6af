//! Deflate on Gnutella links, with no I/O.
//!
//! A link negotiated with `Content-Encoding: deflate` carries one endless
//! zlib stream per direction. The sender compresses each batch of
//! descriptors and ends it with a *sync flush*, so that the receiver can
//! inflate everything sent so far without waiting for more. The receiver
//! inflates what arrives in bounded steps, so a small compressed input can
//! never make it hold more than [`INFLATE_STEP`] new bytes at once.
//!
//! (Written on flate2 directly: async-compression 0.4.52's decoder treats
//! zlib's harmless "no progress possible yet" as an error, "unexpected
//! BufError", which dropped healthy compressed links whenever a TCP segment
//! ended inside a deflate block.)

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most bytes one [`Inflater::inflate`] call produces.
pub const INFLATE_STEP: usize = 64 * 1024;

/// What went wrong in a deflate stream.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The peer sent bytes that are not a valid zlib stream.
    #[error("bad deflate stream: {0}")]
    Corrupt(#[from] flate2::DecompressError),
    /// The peer ended its deflate stream, which a link never does.
    #[error("deflate stream ended")]
    Ended,
    /// Compressing failed (never expected).
    #[error("deflate failed: {0}")]
    Compress(#[from] flate2::CompressError),
}

/// The receiving end of a compressed link.
pub struct Inflater {
    stream: Decompress,
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater { stream: Decompress::new(true) }
    }
}

impl Inflater {
    /// Inflates from `input` into `out`, at most [`INFLATE_STEP`] bytes;
    /// returns how many input bytes were used. Zero used and nothing
    /// produced means more input is needed.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, CompressionError> {
        let mut chunk = [0u8; 16 * 1024];
        let mut used = 0;
        let mut produced = 0;
        while used < input.len() && produced < INFLATE_STEP {
            let (in_before, out_before) = (self.stream.total_in(), self.stream.total_out());
            let room = (INFLATE_STEP - produced).min(chunk.len());
            let status = self.stream.decompress(&input[used..], &mut chunk[..room], FlushDecompress::None)?;
            let consumed = (self.stream.total_in() - in_before) as usize;
            let made = (self.stream.total_out() - out_before) as usize;
            out.extend_from_slice(&chunk[..made]);
            used += consumed;
            produced += made;
            if status == Status::StreamEnd {
                return Err(CompressionError::Ended);
            }
            // BufError, or Ok without progress: the rest of a block is still
            // on its way.
            if consumed == 0 && made == 0 {
                break;
            }
        }
        Ok(used)
    }
}

/// The sending end of a compressed link.
pub struct Deflater {
    stream: Compress,
}

impl Default for Deflater {
    fn default() -> Deflater {
        Deflater { stream: Compress::new(Compression::default(), true) }
    }
}

impl Deflater {
    /// Compresses `input` and sync-flushes, appending to `out`: the peer
    /// can inflate all of it as soon as it arrives.
    pub fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        let mut chunk = [0u8; 16 * 1024];
        let mut used = 0;
        loop {
            let (in_before, out_before) = (self.stream.total_in(), self.stream.total_out());
            self.stream.compress(&input[used..], &mut chunk, FlushCompress::Sync)?;
            used += (self.stream.total_in() - in_before) as usize;
            let made = (self.stream.total_out() - out_before) as usize;
            out.extend_from_slice(&chunk[..made]);
            // Done once all input is in and the flush did not fill the chunk.
            if used == input.len() && made < chunk.len() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(inflater: &mut Inflater, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let before = out.len();
            let used = inflater.inflate(input, &mut out).unwrap();
            input = &input[used..];
            if used == 0 && out.len() == before {
                return out;
            }
        }
    }

    #[test]
    fn each_flushed_batch_inflates_at_once_even_split_byte_by_byte() {
        let mut deflater = Deflater::default();
        let mut inflater = Inflater::default();
        for batch in [b"first batch of descriptors".as_slice(), b"second", &[0u8; 5000]] {
            let mut wire = Vec::new();
            deflater.deflate(batch, &mut wire).unwrap();
            let mut got = Vec::new();
            for byte in &wire {
                got.extend(inflate_all(&mut inflater, std::slice::from_ref(byte)));
            }
            assert_eq!(got, batch);
        }
    }

    #[test]
    fn a_bomb_is_inflated_in_bounded_steps() {
        let mut deflater = Deflater::default();
        let mut wire = Vec::new();
        deflater.deflate(&vec![0u8; 10 * INFLATE_STEP], &mut wire).unwrap();
        let mut inflater = Inflater::default();
        let mut out = Vec::new();
        inflater.inflate(&wire, &mut out).unwrap();
        assert_eq!(out.len(), INFLATE_STEP);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut inflater = Inflater::default();
        assert!(inflater.inflate(b"\xFF\xFF\xFF\xFF not zlib at all", &mut Vec::new()).is_err());
    }
}
