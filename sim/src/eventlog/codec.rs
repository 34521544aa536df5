//! The compression codecs Spark names in event-log file suffixes, and a decoding reader for each.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use super::lz4java::Lz4BlockReader;
use super::lzf::LzfReader;
use super::snappyjava::SnappyStreamReader;
use super::zstd::ZstdReader;

/// A codec of `spark.eventLog.compression.codec`, as the short name Spark puts in file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// `.zstd`: zstd-jni frames (Spark 4's default codec).
    Zstd,
    /// `.lz4`: lz4-java's `LZ4BlockOutputStream` (magic `LZ4Block`), not the LZ4 frame format.
    Lz4,
    /// `.snappy`: snappy-java's `SnappyOutputStream` (magic `\x82SNAPPY\0`), not the framing format.
    Snappy,
    /// `.lzf`: compress-lzf chunks (`ZV`).
    Lzf,
}

impl Codec {
    /// Every codec, in suffix order.
    pub const ALL: [Codec; 4] = [Codec::Lz4, Codec::Lzf, Codec::Snappy, Codec::Zstd];

    /// The codec a file-name suffix names (`zstd`, `lz4`, `snappy`, `lzf`), like Spark's
    /// `CompressionCodec.shortCompressionCodecNames`.
    pub fn from_suffix(suffix: &str) -> Option<Codec> {
        match suffix {
            "zstd" => Some(Codec::Zstd),
            "lz4" => Some(Codec::Lz4),
            "snappy" => Some(Codec::Snappy),
            "lzf" => Some(Codec::Lzf),
            _ => None,
        }
    }

    /// The short name, as in file names.
    pub fn suffix(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::Snappy => "snappy",
            Codec::Lzf => "lzf",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

/// Opens `path` and returns its decoded bytes as a stream. Decoding errors surface from `read`
/// as `io::Error`s whose message names the codec and the byte offset; a stream cut short
/// (an `.inprogress` log, a copy interrupted) gives `UnexpectedEof` after every complete block.
pub fn open(path: &Path, codec: Option<Codec>) -> io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    let buffered = BufReader::with_capacity(64 * 1024, file);
    Ok(match codec {
        None => Box::new(buffered),
        Some(Codec::Lz4) => Box::new(Lz4BlockReader::new(buffered)),
        Some(Codec::Snappy) => Box::new(SnappyStreamReader::new(buffered)),
        Some(Codec::Lzf) => Box::new(LzfReader::new(buffered)),
        Some(Codec::Zstd) => Box::new(ZstdReader::new(buffered)?),
    })
}
