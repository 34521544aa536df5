//! zstd frames (Spark's `.zstd` event logs) decoded block by block with `ruzstd`, cut frames kept.
//!
//! Spark (zstd-jni) closes a frame at every flush of an event log, so a log is a run of frames.
//!
//! A frame still being written (an `.inprogress` log, a killed application) has no last block.
//! `ruzstd` hands out decoded bytes only once they leave the frame's window (up to megabytes),
//! so a plain streaming decode of such a frame would lose its tail, often everything. When a
//! frame breaks, this reader decodes again the frame's complete blocks followed by an empty last
//! block, and so returns every byte of every complete block before reporting the break.
//! Skippable frames are skipped; concatenated frames are read in order. The compressed file is
//! held in memory (one file at a time), the decompressed data is not.

use std::io::{self, Read};

use ruzstd::decoding::errors::FrameDecoderError;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::stream::{corrupt, serve, truncated};

const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// A raw block of size 0 with the last-block bit.
const EMPTY_LAST_BLOCK: [u8; 3] = [0x01, 0x00, 0x00];

/// Decodes the zstd frames of an in-memory file.
pub struct ZstdReader {
    data: Vec<u8>,
    /// Start of the current frame, and the input position after its last complete block.
    frame_start: usize,
    cursor: usize,
    decoder: FrameDecoder,
    in_frame: bool,
    /// Bytes of the current frame handed out so far.
    emitted: usize,
    frame_no: u64,
    out: Vec<u8>,
    pos: usize,
    /// An error to report once `out` is drained.
    pending_error: Option<io::Error>,
    done: bool,
}

impl ZstdReader {
    pub fn new(mut inner: impl Read) -> io::Result<Self> {
        let mut data = Vec::new();
        inner.read_to_end(&mut data)?;
        Ok(ZstdReader {
            data,
            frame_start: 0,
            cursor: 0,
            decoder: FrameDecoder::new(),
            in_frame: false,
            emitted: 0,
            frame_no: 0,
            out: Vec::new(),
            pos: 0,
            pending_error: None,
            done: false,
        })
    }

    /// Starts the frame at `cursor`; `false` at the end of the input.
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            let rest = &self.data[self.cursor..];
            if rest.is_empty() {
                return Ok(false);
            }
            let at = self.cursor;
            if rest.len() >= 8 && rest[0] & 0xF0 == 0x50 && rest[1..4] == [0x2A, 0x4D, 0x18] {
                // A skippable frame: magic 0x184D2A5?, then a little-endian length.
                let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
                if rest.len() - 8 < len {
                    return Err(truncated(format!(
                        "zstd: skippable frame at byte {at} is cut: {len} bytes announced, {} present",
                        rest.len() - 8
                    )));
                }
                self.cursor += 8 + len;
                continue;
            }
            if rest.len() < 4 || rest[..4] != MAGIC {
                if MAGIC.starts_with(rest) {
                    return Err(truncated(format!(
                        "zstd: frame {} at byte {at} is cut inside its magic number",
                        self.frame_no
                    )));
                }
                return Err(corrupt(format!(
                    "zstd: no zstd magic number at byte {at} (frame {}): not a zstd stream",
                    self.frame_no
                )));
            }
            let mut src = rest;
            if let Err(e) = self.decoder.reset(&mut src) {
                let msg = format!("zstd: frame {} header at byte {at}: {e}", self.frame_no);
                return Err(match e {
                    FrameDecoderError::ReadFrameHeaderError(_) => truncated(msg),
                    _ => corrupt(msg),
                });
            }
            self.frame_start = at;
            self.cursor = at + (rest.len() - src.len());
            self.in_frame = true;
            self.emitted = 0;
            return Ok(true);
        }
    }

    /// Decodes the next block of the current frame into `out`.
    fn next_block(&mut self) -> io::Result<()> {
        let mut src = &self.data[self.cursor..];
        let before = src.len();
        match self
            .decoder
            .decode_blocks(&mut src, BlockDecodingStrategy::UptoBlocks(1))
        {
            Ok(finished) => {
                self.cursor += before - src.len();
                if finished {
                    self.out = self.decoder.collect().unwrap_or_default();
                    if let (Some(want), Some(got)) = (
                        self.decoder.get_checksum_from_data(),
                        self.decoder.get_calculated_checksum(),
                    ) && want != got
                    {
                        self.pending_error = Some(corrupt(format!(
                            "zstd: frame {} at byte {}: content checksum {got:#010x} ≠ {want:#010x}",
                            self.frame_no, self.frame_start
                        )));
                    }
                    self.in_frame = false;
                    self.frame_no += 1;
                } else {
                    self.out = self.decoder.collect().unwrap_or_default();
                }
                self.emitted += self.out.len();
                self.pos = 0;
                Ok(())
            }
            Err(e) => {
                let broken_at = self.cursor;
                // A slice's `read_exact` past its end empties it: the input ran out.
                let cut = src.is_empty();
                let msg = format!(
                    "zstd: frame {} at byte {} breaks in the block at byte {broken_at} ({e}); \
                     kept its {} complete blocks",
                    self.frame_no,
                    self.frame_start,
                    self.decoder.blocks_decoded()
                );
                self.out = self.salvage()?;
                self.pos = 0;
                self.pending_error = Some(if cut { truncated(msg) } else { corrupt(msg) });
                self.done = true;
                Ok(())
            }
        }
    }

    /// The bytes of the current frame's complete blocks not yet handed out, decoded from the
    /// frame closed with an empty last block.
    fn salvage(&mut self) -> io::Result<Vec<u8>> {
        let mut closed = self.data[self.frame_start..self.cursor].to_vec();
        closed.extend_from_slice(&EMPTY_LAST_BLOCK);
        // The frame header descriptor: bit 2 = content checksum follows the last block.
        if closed.get(4).is_some_and(|d| d & 0x04 != 0) {
            closed.extend_from_slice(&[0; 4]);
        }
        let mut decoder = FrameDecoder::new();
        let mut src = closed.as_slice();
        let decoded = decoder
            .reset(&mut src)
            .and_then(|()| decoder.decode_blocks(&mut src, BlockDecodingStrategy::All));
        match decoded {
            Ok(_) => {
                let all = decoder.collect().unwrap_or_default();
                Ok(all
                    .get(self.emitted..)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default())
            }
            Err(e) => Err(corrupt(format!(
                "zstd: frame {} at byte {}: its complete blocks do not decode again: {e}",
                self.frame_no, self.frame_start
            ))),
        }
    }

    fn fill(&mut self) -> io::Result<bool> {
        while self.pos == self.out.len() {
            if let Some(e) = self.pending_error.take() {
                self.done = true;
                return Err(e);
            }
            if self.done {
                return Ok(false);
            }
            if !self.in_frame && !self.start_frame()? {
                self.done = true;
                return Ok(false);
            }
            self.next_block()?;
        }
        Ok(true)
    }
}

impl Read for ZstdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.fill() {
            Ok(true) => Ok(serve(&self.out, &mut self.pos, buf)),
            Ok(false) => Ok(0),
            Err(e) => {
                self.done = true;
                self.out.clear();
                self.pos = 0;
                Err(e)
            }
        }
    }
}
