//! Deflate on Gnutella links, with no I/O.
//!
//! A link negotiated with `Content-Encoding: deflate` carries one endless
//! zlib stream per direction. The sender compresses each batch of
//! descriptors and ends it with a *sync flush*, so that the receiver can
//! inflate everything sent so far without waiting for more. The receiver
//! inflates what arrives in bounded steps, so a small compressed input can
//! never make it hold more than [`INFLATE_STEP`] new bytes at once, and
//! over the whole link it may not make more than [`MAX_INFLATE_RATIO`]
//! times what arrived (plus [`INFLATE_ALLOWANCE`]): a deflate bomb, which
//! costs its sender nothing and the receiver a core, ends the link.
//!
//! (Written on flate2 directly: async-compression 0.4.52's decoder treats
//! zlib's harmless "no progress possible yet" as an error, "unexpected
//! BufError", which dropped healthy compressed links whenever a TCP segment
//! ended inside a deflate block.)

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most bytes one [`Inflater::inflate`] call produces.
pub const INFLATE_STEP: usize = 64 * 1024;
/// Most plain bytes a link may inflate per compressed byte received, over
/// its life: Gnutella traffic compresses a few times, zeros a thousand.
pub const MAX_INFLATE_RATIO: u64 = 64;
/// Plain bytes a link may inflate beyond the ratio, for its first batches.
pub const INFLATE_ALLOWANCE: u64 = 1 << 20;

/// What went wrong in a deflate stream.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The peer sent bytes that are not a valid zlib stream.
    #[error("bad deflate stream: {0}")]
    Corrupt(#[from] flate2::DecompressError),
    /// The peer ended its deflate stream, which a link never does.
    #[error("deflate stream ended")]
    Ended,
    /// The stream inflates past [`MAX_INFLATE_RATIO`]: a deflate bomb.
    #[error("deflate stream inflates {out} bytes from {input}")]
    Bomb {
        /// Compressed bytes received.
        input: u64,
        /// Plain bytes they made.
        out: u64,
    },
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
        // Called with no input too: output zlib still holds from the last
        // call (cut at the step) comes out first.
        while produced < INFLATE_STEP {
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
            let (input, out) = (self.stream.total_in(), self.stream.total_out());
            if out > input.saturating_mul(MAX_INFLATE_RATIO).saturating_add(INFLATE_ALLOWANCE) {
                return Err(CompressionError::Bomb { input, out });
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
    fn a_stream_inflating_past_the_ratio_is_an_error() {
        let mut deflater = Deflater::default();
        let mut wire = Vec::new();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..8 {
            deflater.deflate(&zeros, &mut wire).unwrap();
        }
        let mut inflater = Inflater::default();
        let mut input = &wire[..];
        let mut made = 0u64;
        let error = loop {
            let mut out = Vec::new();
            match inflater.inflate(input, &mut out) {
                Ok(used) => {
                    input = &input[used..];
                    made += out.len() as u64;
                    assert!(used > 0 || !out.is_empty(), "the bomb was inflated whole: {made} bytes");
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(error, CompressionError::Bomb { .. }), "{error}");
        assert!(made <= INFLATE_ALLOWANCE + MAX_INFLATE_RATIO * wire.len() as u64);
        // Bytes that compress as descriptors do pass.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let text: Vec<u8> = (0..4 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'a' + (state % 16) as u8
            })
            .collect();
        let mut wire = Vec::new();
        Deflater::default().deflate(&text, &mut wire).unwrap();
        assert!(inflate_all(&mut Inflater::default(), &wire) == text, "inflated wrong");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut inflater = Inflater::default();
        assert!(inflater.inflate(b"\xFF\xFF\xFF\xFF not zlib at all", &mut Vec::new()).is_err());
    }
}
