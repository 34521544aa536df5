//! Helpers shared by the block decoders: full reads, error kinds, serving a decoded block.

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
