//! Finds the event logs in a Spark History Server directory: single files and rolling directories.
//!
//! Names as Spark's `EventLogFileWriters` writes them:
//! - single file: `<app>[.<codec>][.inprogress]`;
//! - rolling: a directory `eventlog_v2_<app>/` holding `events_<N>_<app>[.<codec>][.compact]`
//!   (read in `N` order, from the last `.compact` file on, as the History Server does) and a
//!   zero-byte `appstatus_<app>[.inprogress]`.
//!
//! `<app>` is the sanitized application id, with `_<attempt>` for a retried attempt. Names
//! starting with `.` (Hadoop's `.crc` files) are ignored, as the History Server does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::codec::Codec;
use super::{Layout, Skipped};

/// Suffix of a log still being written (or whose application died).
pub const IN_PROGRESS: &str = ".inprogress";
/// Suffix of a rolling part that the History Server compacted.
pub const COMPACTED: &str = ".compact";
/// Prefix of a rolling log directory.
pub const ROLLING_DIR_PREFIX: &str = "eventlog_v2_";
const EVENTS_PREFIX: &str = "events_";
const APPSTATUS_PREFIX: &str = "appstatus_";

/// One file of a log, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    pub codec: Option<Codec>,
}

/// A log found in the directory, not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLog {
    /// The file, or the rolling directory.
    pub source: PathBuf,
    pub layout: Layout,
    /// The application id (and attempt) as the name gives it.
    pub name_app_id: String,
    /// The name says the application had not finished (`.inprogress`).
    pub in_progress: bool,
    pub files: Vec<LogFile>,
    /// What discovery had to assume or leave out.
    pub notes: Vec<String>,
}

/// The codec a suffix names, or why the name is not a Spark event log name.
fn codec_of(name: &str, suffix: &str) -> Result<Codec, String> {
    Codec::from_suffix(suffix).ok_or_else(|| {
        format!(
            "unknown compression codec suffix `.{suffix}` in `{name}` (Spark writes .zstd, .lz4, .snappy or .lzf)"
        )
    })
}

/// Splits a single-file log name into application id, codec and in-progress flag.
pub fn parse_single_name(name: &str) -> Result<(String, Option<Codec>, bool), String> {
    let (base, in_progress) = match name.strip_suffix(IN_PROGRESS) {
        Some(b) => (b, true),
        None => (name, false),
    };
    // Spark sanitizes application ids to hold no `.`, so the last `.` starts the codec.
    match base.rsplit_once('.') {
        None => Ok((base.to_owned(), None, in_progress)),
        Some((app, suffix)) => Ok((app.to_owned(), Some(codec_of(name, suffix)?), in_progress)),
    }
}

/// Lists `dir` and sorts what it holds into logs to read and entries to skip.
pub fn discover(dir: &Path) -> io::Result<(Vec<FoundLog>, Vec<Skipped>)> {
    let mut entries: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        entries.push((name, path, is_dir));
    }
    entries.sort();
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (name, path, is_dir) in entries {
        if name.starts_with('.') {
            continue;
        }
        let result = if is_dir {
            match name.strip_prefix(ROLLING_DIR_PREFIX) {
                Some(app) => rolling(&path, app),
                None => Err(format!(
                    "directory `{name}` is not a rolling event log (its name does not start with `{ROLLING_DIR_PREFIX}`)"
                )),
            }
        } else {
            parse_single_name(&name).map(|(app, codec, in_progress)| FoundLog {
                source: path.clone(),
                layout: Layout::Single,
                name_app_id: app,
                in_progress,
                files: vec![LogFile {
                    path: path.clone(),
                    codec,
                }],
                notes: Vec::new(),
            })
        };
        match result {
            Ok(log) => found.push(log),
            Err(reason) => skipped.push(Skipped {
                source: path,
                reason,
            }),
        }
    }
    Ok((found, skipped))
}

/// One `events_<N>_…` file of a rolling directory.
struct Part {
    index: u64,
    compacted: bool,
    file: LogFile,
}

fn rolling(dir: &Path, app: &str) -> Result<FoundLog, String> {
    let dir_name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let listing = fs::read_dir(dir).map_err(|e| format!("cannot list `{dir_name}`: {e}"))?;
    let mut names: Vec<String> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| format!("cannot list `{dir_name}`: {e}"))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let mut notes = Vec::new();
    let mut status: Option<bool> = None;
    let mut parts: Vec<Part> = Vec::new();
    for name in names {
        if name.starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        if let Some(rest) = name.strip_prefix(APPSTATUS_PREFIX) {
            let in_progress = rest.ends_with(IN_PROGRESS);
            // Two status files (a rename caught half-way): the finished one wins.
            status = Some(status.map_or(in_progress, |p| p && in_progress));
        } else if let Some(rest) = name.strip_prefix(EVENTS_PREFIX) {
            let Some((index, tail)) = rest.split_once('_') else {
                notes.push(format!("ignored `{name}`: no `_` after its index"));
                continue;
            };
            let Ok(index) = index.parse::<u64>() else {
                notes.push(format!("ignored `{name}`: `{index}` is not an index"));
                continue;
            };
            let (tail, compacted) = match tail.strip_suffix(COMPACTED) {
                Some(t) => (t, true),
                None => (tail, false),
            };
            let codec = match tail.rsplit_once('.') {
                None => None,
                Some((_, suffix)) => Some(codec_of(&name, suffix)?),
            };
            parts.push(Part {
                index,
                compacted,
                file: LogFile { path, codec },
            });
        } else {
            notes.push(format!(
                "ignored `{name}`: not an events_ or appstatus_ file"
            ));
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "rolling event log directory `{dir_name}` holds no `{EVENTS_PREFIX}<N>_<app>` file"
        ));
    }
    parts.sort_by_key(|p| (p.index, !p.compacted));
    parts.dedup_by(|later, earlier| {
        let same = later.index == earlier.index;
        if same {
            notes.push(format!(
                "two files with index {}: read `{}`, ignored `{}`",
                earlier.index,
                earlier.file.path.display(),
                later.file.path.display()
            ));
        }
        same
    });
    if let Some(last_compact) = parts.iter().rposition(|p| p.compacted)
        && last_compact > 0
    {
        notes.push(format!(
            "{} file(s) before the compacted events_{} ignored, as the History Server does",
            last_compact, parts[last_compact].index
        ));
        parts.drain(..last_compact);
    }
    let mut expected = parts[0].index;
    for p in &parts {
        if p.index != expected {
            notes.push(format!(
                "events_{expected}…events_{} are missing: their events are not read",
                p.index - 1
            ));
        }
        expected = p.index + 1;
    }
    if !parts[0].compacted && parts[0].index != 1 {
        notes.push(format!(
            "the first file is events_{}, not events_1: earlier events are not read",
            parts[0].index
        ));
    }
    let in_progress = match status {
        Some(p) => p,
        None => {
            notes.push(format!(
                "no `{APPSTATUS_PREFIX}{app}` file: taken as still in progress"
            ));
            true
        }
    };
    Ok(FoundLog {
        source: dir.to_path_buf(),
        layout: Layout::Rolling,
        name_app_id: app.to_owned(),
        in_progress,
        files: parts.into_iter().map(|p| p.file).collect(),
        notes,
    })
}
