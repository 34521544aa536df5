//! snappy-java's `SnappyOutputStream` format (Spark's `.snappy` event logs), decoded chunk by chunk.
//!
//! A stream starts with a 16-byte header: the magic `\x82SNAPPY\0`, then the version and the
//! minimum compatible version (big-endian `i32`, both 1). Then chunks: a big-endian `i32` length
//! and that many bytes of raw Snappy. A second header where a chunk length is expected starts a
//! concatenated stream (snappy-java's reader accepts that too). There is no checksum and no end
//! mark: input ending at a chunk boundary is the end.

use std::io::{self, Read};

use super::stream::{BlockDecoder, corrupt, read_blocks, read_full, truncated};

const MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const HEADER_LEN: usize = 16;
/// The first four bytes of the magic, as a chunk length would read them.
const MAGIC_HEAD: u32 = 0x8253_4E41;
/// snappy-java refuses chunks above this (`SnappyInputStream.MAX_CHUNK_SIZE`, 512 MiB).
const MAX_CHUNK: usize = 512 << 20;

/// Decodes a snappy-java stream.
pub struct SnappyStreamReader<R> {
    inner: R,
    offset: u64,
    chunk: u64,
    started: bool,
    out: Vec<u8>,
    pos: usize,
    compressed: Vec<u8>,
    decoder: snap::raw::Decoder,
    done: bool,
}

impl<R: Read> SnappyStreamReader<R> {
    pub fn new(inner: R) -> Self {
        SnappyStreamReader {
            inner,
            offset: 0,
            chunk: 0,
            started: false,
            out: Vec::new(),
            pos: 0,
            compressed: Vec::new(),
            decoder: snap::raw::Decoder::new(),
            done: false,
        }
    }

    /// Reads the rest of a stream header after its first bytes `first`; `false` for an empty input.
    fn header(&mut self, first: &[u8]) -> io::Result<bool> {
        let at = self.offset - first.len() as u64;
        let mut header = [0u8; HEADER_LEN];
        header[..first.len()].copy_from_slice(first);
        let got = read_full(&mut self.inner, &mut header[first.len()..])?;
        self.offset += got as u64;
        if first.len() + got == 0 {
            return Ok(false);
        }
        if first.len() + got < HEADER_LEN {
            if header[..first.len() + got] == MAGIC[..(first.len() + got).min(8)] {
                return Err(truncated(format!(
                    "snappy: stream header at byte {at} is cut after {} of {HEADER_LEN} bytes",
                    first.len() + got
                )));
            }
            return Err(corrupt(format!(
                "snappy: no snappy-java magic at byte {at}: not a SnappyOutputStream stream"
            )));
        }
        if &header[..8] != MAGIC {
            return Err(corrupt(format!(
                "snappy: no snappy-java magic at byte {at}: not a SnappyOutputStream stream"
            )));
        }
        Ok(true)
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        if !self.started {
            self.started = true;
            if !self.header(&[])? {
                return Ok(false);
            }
        }
        loop {
            let at = self.offset;
            let mut len = [0u8; 4];
            let got = read_full(&mut self.inner, &mut len)?;
            self.offset += got as u64;
            if got == 0 {
                return Ok(false);
            }
            if got < 4 {
                return Err(truncated(format!(
                    "snappy: chunk {} length at byte {at} is cut after {got} of 4 bytes",
                    self.chunk
                )));
            }
            let raw = u32::from_be_bytes(len);
            if raw == MAGIC_HEAD {
                self.header(&len)?;
                continue;
            }
            let clen = raw as usize;
            if raw > i32::MAX as u32 || clen > MAX_CHUNK {
                return Err(corrupt(format!(
                    "snappy: chunk {} at byte {at} has an impossible length {raw}",
                    self.chunk
                )));
            }
            self.compressed.resize(clen, 0);
            let got = read_full(&mut self.inner, &mut self.compressed)?;
            self.offset += got as u64;
            if got < clen {
                return Err(truncated(format!(
                    "snappy: chunk {} at byte {at} is cut: its length says {clen} bytes, the input ends after {got}",
                    self.chunk
                )));
            }
            let chunk = self.chunk;
            self.chunk += 1;
            let bad = |e: snap::Error| {
                corrupt(format!(
                    "snappy: chunk {chunk} at byte {at} does not decode: {e}"
                ))
            };
            let dlen = snap::raw::decompress_len(&self.compressed).map_err(bad)?;
            if dlen > MAX_CHUNK {
                return Err(corrupt(format!(
                    "snappy: chunk {chunk} at byte {at} claims {dlen} decompressed bytes"
                )));
            }
            self.out.resize(dlen, 0);
            let n = self
                .decoder
                .decompress(&self.compressed, &mut self.out)
                .map_err(bad)?;
            self.out.truncate(n);
            self.pos = 0;
            if n > 0 {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> BlockDecoder for SnappyStreamReader<R> {
    fn next_block(&mut self) -> io::Result<bool> {
        SnappyStreamReader::next_chunk(self)
    }

    fn served(&mut self) -> (&mut Vec<u8>, &mut usize, &mut bool) {
        (&mut self.out, &mut self.pos, &mut self.done)
    }
}

impl<R: Read> Read for SnappyStreamReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_blocks(self, buf)
    }
}
