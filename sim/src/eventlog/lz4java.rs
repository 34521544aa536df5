//! lz4-java's `LZ4BlockOutputStream` format (Spark's `.lz4` event logs), decoded block by block.
//!
//! Each block: the magic `LZ4Block` (8 bytes); a token byte whose high nibble is the method
//! (`0x10` stored, `0x20` LZ4) and low nibble the level (block size `1 << (10 + level)`); the
//! compressed and the decompressed length (little-endian `i32`); the checksum (little-endian,
//! XXH32 of the decompressed bytes with seed `0x9747b28c`, masked to 28 bits as lz4-java's
//! `StreamingXXHash32.asChecksum` does). A stored block with both lengths 0 ends a stream; another
//! stream may follow (Spark reads concatenated streams), and input ending at a block boundary
//! without that end mark is accepted as lz4-java's reader does.

use std::io::{self, Read};

use twox_hash::XxHash32;

use super::stream::{BlockDecoder, corrupt, read_blocks, read_full, truncated};

const MAGIC: &[u8; 8] = b"LZ4Block";
const HEADER_LEN: usize = 8 + 1 + 4 + 4 + 4;
const METHOD_RAW: u8 = 0x10;
const METHOD_LZ4: u8 = 0x20;
/// lz4-java's `DEFAULT_SEED`.
pub(crate) const CHECKSUM_SEED: u32 = 0x9747_b28c;

/// The checksum lz4-java writes for a block's decompressed bytes.
pub(crate) fn block_checksum(data: &[u8]) -> u32 {
    XxHash32::oneshot(CHECKSUM_SEED, data) & 0x0FFF_FFFF
}

/// Decodes an lz4-java block stream.
pub struct Lz4BlockReader<R> {
    inner: R,
    /// Bytes of the input consumed so far (for messages).
    offset: u64,
    block: u64,
    out: Vec<u8>,
    pos: usize,
    compressed: Vec<u8>,
    done: bool,
}

impl<R: Read> Lz4BlockReader<R> {
    pub fn new(inner: R) -> Self {
        Lz4BlockReader {
            inner,
            offset: 0,
            block: 0,
            out: Vec::new(),
            pos: 0,
            compressed: Vec::new(),
            done: false,
        }
    }

    /// Decodes the next block into `out`; `false` at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        loop {
            let at = self.offset;
            let mut header = [0u8; HEADER_LEN];
            let got = read_full(&mut self.inner, &mut header)?;
            self.offset += got as u64;
            if got == 0 {
                return Ok(false);
            }
            if got < HEADER_LEN {
                return Err(truncated(format!(
                    "lz4: block {} header at byte {at} is cut after {got} of {HEADER_LEN} bytes",
                    self.block
                )));
            }
            if &header[..8] != MAGIC {
                return Err(corrupt(format!(
                    "lz4: no LZ4Block magic at byte {at} (block {}): not lz4-java's block stream",
                    self.block
                )));
            }
            let token = header[8];
            let method = token & 0xF0;
            let level = u32::from(token & 0x0F);
            let max_block = 1usize << (10 + level);
            let le = |i: usize| {
                i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            let (clen, dlen, check) = (le(9), le(13), le(17) as u32);
            let block = self.block;
            let bad = |what: String| corrupt(format!("lz4: block {block} at byte {at}: {what}"));
            let (Ok(clen), Ok(dlen)) = (usize::try_from(clen), usize::try_from(dlen)) else {
                return Err(bad(format!(
                    "negative length (compressed {clen}, decompressed {dlen})"
                )));
            };
            if method != METHOD_RAW && method != METHOD_LZ4 {
                return Err(bad(format!("unknown method byte {token:#04x}")));
            }
            if dlen > max_block || clen > max_block + max_block / 255 + 16 {
                return Err(bad(format!(
                    "lengths {clen}/{dlen} exceed the block size {max_block} of level {level}"
                )));
            }
            if method == METHOD_RAW && clen != dlen {
                return Err(bad(format!("stored block with lengths {clen} ≠ {dlen}")));
            }
            self.block += 1;
            if dlen == 0 {
                if clen != 0 || check != 0 || method != METHOD_RAW {
                    return Err(bad("malformed end-of-stream block".to_owned()));
                }
                // End of one stream; another may follow.
                continue;
            }
            self.compressed.resize(clen, 0);
            let got = read_full(&mut self.inner, &mut self.compressed)?;
            self.offset += got as u64;
            if got < clen {
                return Err(truncated(format!(
                    "lz4: block {} at byte {at} is cut: its header says {clen} compressed bytes, the input ends after {got}",
                    self.block - 1
                )));
            }
            self.out.resize(dlen, 0);
            if method == METHOD_RAW {
                self.out.copy_from_slice(&self.compressed);
            } else {
                match lz4_flex::block::decompress_into(&self.compressed, &mut self.out) {
                    Ok(n) if n == dlen => {}
                    Ok(n) => {
                        return Err(corrupt(format!(
                            "lz4: block {} at byte {at} decodes to {n} bytes, its header says {dlen}",
                            self.block - 1
                        )));
                    }
                    Err(e) => {
                        return Err(corrupt(format!(
                            "lz4: block {} at byte {at} does not decode: {e}",
                            self.block - 1
                        )));
                    }
                }
            }
            let actual = block_checksum(&self.out);
            if actual != check {
                return Err(corrupt(format!(
                    "lz4: block {} at byte {at}: checksum {actual:#09x} ≠ {check:#09x} in its header",
                    self.block - 1
                )));
            }
            self.pos = 0;
            return Ok(true);
        }
    }
}

impl<R: Read> BlockDecoder for Lz4BlockReader<R> {
    fn next_block(&mut self) -> io::Result<bool> {
        Lz4BlockReader::next_block(self)
    }

    fn served(&mut self) -> (&mut Vec<u8>, &mut usize, &mut bool) {
        (&mut self.out, &mut self.pos, &mut self.done)
    }
}

impl<R: Read> Read for Lz4BlockReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_blocks(self, buf)
    }
}
