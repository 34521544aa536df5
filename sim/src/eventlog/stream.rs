//! Helpers shared by the block decoders: full reads, error kinds, and their one `read` loop.

use std::io::{self, Read};

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A corrupt stream.
pub(super) fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A stream that ends inside a block.
pub(super) fn truncated(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg)
}

/// Serves `buf[pos..]` into `out`; the shared tail of the block decoders' `read`.
pub(super) fn serve(buf: &[u8], pos: &mut usize, out: &mut [u8]) -> usize {
    let n = (buf.len() - *pos).min(out.len());
    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
    *pos += n;
    n
}

/// A decoder of a stream of compressed blocks: each decodes its next block into its buffer.
pub(super) trait BlockDecoder {
    /// Decodes the next block into the buffer of [`BlockDecoder::served`]; `false` at the end.
    fn next_block(&mut self) -> io::Result<bool>;
    /// The decoded block, how much of it was served, and whether the stream has ended.
    fn served(&mut self) -> (&mut Vec<u8>, &mut usize, &mut bool);
}

/// The `read` of every block decoder: serves the decoded block, decoding the next one when it
/// is used up; after an error the stream ends (and the error is returned once).
pub(super) fn read_blocks(d: &mut impl BlockDecoder, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    loop {
        let (out, pos, done) = d.served();
        if *pos < out.len() {
            break;
        }
        if *done {
            return Ok(0);
        }
        match d.next_block() {
            Ok(true) => {}
            Ok(false) => *d.served().2 = true,
            Err(e) => {
                let (out, pos, done) = d.served();
                *done = true;
                out.clear();
                *pos = 0;
                return Err(e);
            }
        }
    }
    let (out, pos, _) = d.served();
    Ok(serve(out, pos, buf))
}
