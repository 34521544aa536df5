//! compress-lzf's chunk format (Spark's `.lzf` event logs) and the LZF decompressor.
//!
//! Each chunk: `Z` `V`, a type byte, then for type 0 (stored) a big-endian `u16` length and the
//! bytes, for type 1 (compressed) the big-endian `u16` compressed and decompressed lengths and
//! the LZF data. No checksum, no end mark. The `lzf` crate is deprecated, and the decoder is
//! twenty lines, so it lives here.

use std::io::{self, Read};

use super::stream::{BlockDecoder, corrupt, read_blocks, read_full, truncated};

/// Decompresses one LZF block (liblzf's `lzf_decompress`) into `out`, which must end up exactly
/// `expected` bytes long.
pub(crate) fn decompress(input: &[u8], expected: usize, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    out.reserve(expected);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lit = input
                .get(ip..ip + run)
                .ok_or_else(|| format!("literal run of {run} bytes at {ip} passes the end"))?;
            out.extend_from_slice(lit);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip).ok_or("back-reference length cut")?);
                ip += 1;
            }
            let low = usize::from(*input.get(ip).ok_or("back-reference offset cut")?);
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let start = out
                .len()
                .checked_sub(back)
                .ok_or_else(|| format!("back-reference {back} bytes before the start"))?;
            for i in start..start + len + 2 {
                out.push(out[i]);
            }
        }
        if out.len() > expected {
            return Err(format!("decodes past the {expected} bytes its header says"));
        }
    }
    if out.len() != expected {
        return Err(format!(
            "decodes to {} bytes, its header says {expected}",
            out.len()
        ));
    }
    Ok(())
}

/// Decodes a compress-lzf chunk stream.
pub struct LzfReader<R> {
    inner: R,
    offset: u64,
    chunk: u64,
    out: Vec<u8>,
    pos: usize,
    compressed: Vec<u8>,
    done: bool,
}

impl<R: Read> LzfReader<R> {
    pub fn new(inner: R) -> Self {
        LzfReader {
            inner,
            offset: 0,
            chunk: 0,
            out: Vec::new(),
            pos: 0,
            compressed: Vec::new(),
            done: false,
        }
    }

    fn read_exactly(&mut self, buf_len: usize, at: u64, what: &str) -> io::Result<()> {
        self.compressed.resize(buf_len, 0);
        let got = read_full(&mut self.inner, &mut self.compressed)?;
        self.offset += got as u64;
        if got < buf_len {
            return Err(truncated(format!(
                "lzf: chunk {} at byte {at} is cut in its {what}: {got} of {buf_len} bytes",
                self.chunk
            )));
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        let at = self.offset;
        let mut head = [0u8; 3];
        let got = read_full(&mut self.inner, &mut head)?;
        self.offset += got as u64;
        if got == 0 {
            return Ok(false);
        }
        if got < 3 {
            return Err(truncated(format!(
                "lzf: chunk {} header at byte {at} is cut after {got} bytes",
                self.chunk
            )));
        }
        if &head[..2] != b"ZV" {
            return Err(corrupt(format!(
                "lzf: no ZV chunk signature at byte {at} (chunk {}): not a compress-lzf stream",
                self.chunk
            )));
        }
        match head[2] {
            0 => {
                self.read_exactly(2, at, "header")?;
                let len = usize::from(u16::from_be_bytes([self.compressed[0], self.compressed[1]]));
                self.read_exactly(len, at, "data")?;
                self.out.clear();
                self.out.extend_from_slice(&self.compressed);
            }
            1 => {
                self.read_exactly(4, at, "header")?;
                let c = &self.compressed;
                let clen = usize::from(u16::from_be_bytes([c[0], c[1]]));
                let dlen = usize::from(u16::from_be_bytes([c[2], c[3]]));
                self.read_exactly(clen, at, "data")?;
                decompress(&self.compressed, dlen, &mut self.out).map_err(|e| {
                    corrupt(format!(
                        "lzf: chunk {} at byte {at} does not decode: {e}",
                        self.chunk
                    ))
                })?;
            }
            t => {
                return Err(corrupt(format!(
                    "lzf: chunk {} at byte {at} has unknown type {t}",
                    self.chunk
                )));
            }
        }
        self.chunk += 1;
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read> BlockDecoder for LzfReader<R> {
    fn next_block(&mut self) -> io::Result<bool> {
        LzfReader::next_chunk(self)
    }

    fn served(&mut self) -> (&mut Vec<u8>, &mut usize, &mut bool) {
        (&mut self.out, &mut self.pos, &mut self.done)
    }
}

impl<R: Read> Read for LzfReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_blocks(self, buf)
    }
}
