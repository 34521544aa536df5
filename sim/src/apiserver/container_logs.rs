//! Container logs of pods that run as local processes: the kubelet writes each line of the
//! process's stdout and stderr to a file in the CRI logging format (`<RFC 3339 time>
//! <stdout|stderr> F <line>`, as containerd writes under `/var/log/pods`), registered by pod, and
//! `pods/log` reads them with kube-apiserver's options (`follow`, `timestamps`, `tailLines`,
//! `sinceSeconds`, `sinceTime`, `limitBytes`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

/// How often a followed log that has not ended looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One registered log: the pod's uid (a pod re-created under the same name has a new one),
/// its container, its file, and whether the process has ended.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub uid: String,
    pub container: String,
    pub path: PathBuf,
    done: watch::Receiver<bool>,
}

impl LogFile {
    /// Whether the process has ended (nothing more will be written).
    pub fn ended(&self) -> bool {
        *self.done.borrow() || self.done.has_changed().is_err()
    }
}

/// Log files by `(namespace, pod)`.
#[derive(Debug, Clone, Default)]
pub struct ContainerLogs(Arc<Mutex<HashMap<(String, String), LogFile>>>);

impl ContainerLogs {
    /// Creates `path` (empty) as the log of `container` of pod `namespace/name` (uid `uid`),
    /// replacing any earlier one of that name, and returns its writer.
    pub fn create(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        path: &Path,
    ) -> std::io::Result<LogWriter> {
        let file = std::fs::File::create(path)?;
        let (done, ended) = watch::channel(false);
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                (namespace.to_owned(), name.to_owned()),
                LogFile {
                    uid: uid.to_owned(),
                    container: container.to_owned(),
                    path: path.to_owned(),
                    done: ended,
                },
            );
        }
        Ok(LogWriter {
            file: Mutex::new(file),
            done,
        })
    }

    /// The log of pod `namespace/name`, if one was registered.
    pub fn get(&self, namespace: &str, name: &str) -> Option<LogFile> {
        self.0
            .lock()
            .ok()?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Forgets pod `namespace/name`'s log if it is still the one of `uid` (the pod is gone).
    pub fn remove(&self, namespace: &str, name: &str, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            let key = (namespace.to_owned(), name.to_owned());
            if m.get(&key).is_some_and(|f| f.uid == uid) {
                m.remove(&key);
            }
        }
    }
}

/// Appends a process's lines to its log file.
#[derive(Debug)]
pub struct LogWriter {
    file: Mutex<std::fs::File>,
    done: watch::Sender<bool>,
}

impl LogWriter {
    /// Appends one line (without its newline) read from `stream` at `now`.
    pub fn line(&self, stream: Stream, line: &[u8], now: Timestamp) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let record = format!("{} {} F {text}\n", now, stream.name());
        match self.file.lock() {
            Ok(mut f) => f.write_all(record.as_bytes()),
            Err(_) => Err(std::io::Error::other("log writer poisoned")),
        }
    }

    /// Marks the log complete: followers stop once they have read it all.
    pub fn finish(&self) {
        let _ = self.done.send(true);
    }
}

impl Drop for LogWriter {
    /// A log nobody writes to any more is complete (a process that never started included).
    fn drop(&mut self) {
        self.finish();
    }
}

/// The options of `pods/log` that shape the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this.
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<usize>,
}

/// A CRI log record: its time and the line as the process wrote it.
fn parse_record(record: &str) -> Option<(&str, &str)> {
    let (time, rest) = record.split_once(' ')?;
    let (_stream, rest) = rest.split_once(' ')?;
    let (_tag, line) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((time, line))
}

/// The answer's text for the complete records of `text` (whole lines), with `options` applied
/// except `limitBytes` and `follow`.
pub fn render(text: &str, options: &LogOptions, apply_tail: bool) -> String {
    let records: Vec<(&str, &str)> = text
        .lines()
        .filter_map(parse_record)
        .filter(|(time, _)| match &options.since {
            Some(since) => time.parse::<Timestamp>().is_ok_and(|t| t >= *since),
            None => true,
        })
        .collect();
    let skip = match options.tail_lines {
        Some(n) if apply_tail => records.len().saturating_sub(n),
        _ => 0,
    };
    let mut out = String::new();
    for (time, line) in &records[skip..] {
        if options.timestamps {
            out.push_str(time);
            out.push(' ');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The bytes of `file` from `offset` up to its last complete line, and the offset after them.
fn complete_lines(path: &Path, offset: u64) -> std::io::Result<(String, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(end);
    Ok((
        String::from_utf8_lossy(&buf).into_owned(),
        offset + end as u64,
    ))
}

/// What is left of a `limitBytes` budget after `chunk` (cut to fit).
fn within(chunk: String, budget: &mut Option<usize>) -> String {
    match budget {
        None => chunk,
        Some(left) => {
            let mut cut = chunk.len().min(*left);
            while !chunk.is_char_boundary(cut) {
                cut -= 1;
            }
            *left -= cut;
            chunk[..cut].to_owned()
        }
    }
}

/// The whole answer when not following.
pub fn read(file: &LogFile, options: &LogOptions) -> std::io::Result<String> {
    let (text, _) = complete_lines(&file.path, 0)?;
    let mut budget = options.limit_bytes;
    Ok(within(render(&text, options, true), &mut budget))
}

/// The answer when following: what is there, then each new line, until the process ends (or
/// `limitBytes` is reached).
pub fn follow(
    file: LogFile,
    options: LogOptions,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    struct State {
        file: LogFile,
        options: LogOptions,
        offset: u64,
        first: bool,
        budget: Option<usize>,
        finished: bool,
    }
    let state = State {
        budget: options.limit_bytes,
        file,
        options,
        offset: 0,
        first: true,
        finished: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.finished || s.budget == Some(0) {
                return None;
            }
            // Read "ended" before the file: lines written before the end are then all there.
            let ended = s.file.ended();
            let (text, offset) = match complete_lines(&s.file.path, s.offset) {
                Ok(x) => x,
                Err(e) => {
                    s.finished = true;
                    return Some((Err(e), s));
                }
            };
            s.offset = offset;
            let chunk = render(&text, &s.options, s.first);
            s.first = false;
            let chunk = within(chunk, &mut s.budget);
            s.finished = ended;
            if !chunk.is_empty() {
                return Some((Ok(Bytes::from(chunk)), s));
            }
            if ended {
                return None;
            }
            // Until new lines or the end; a closed channel (the writer gone) is the end, which
            // the next round sees after one more read.
            let mut done = s.file.done.clone();
            let _ = tokio::time::timeout(FOLLOW_POLL, done.wait_for(|d| *d)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn sample() -> (tempfile::TempDir, ContainerLogs, LogWriter) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let logs = ContainerLogs::default();
        let w = logs
            .create("spark", "p", "uid-1", "c", &dir.path().join("c.log"))
            .expect("created");
        for (i, (stream, line)) in [
            (Stream::Stdout, "one"),
            (Stream::Stderr, "two"),
            (Stream::Stdout, "three with spaces"),
        ]
        .into_iter()
        .enumerate()
        {
            w.line(
                stream,
                line.as_bytes(),
                at(&format!("2026-12-07T00:00:0{i}Z")),
            )
            .expect("written");
        }
        (dir, logs, w)
    }

    #[test]
    fn lines_come_back_as_written_with_the_options_applied() {
        let (_dir, logs, _w) = sample();
        let file = logs.get("spark", "p").expect("registered");
        let all = LogOptions::default();
        assert_eq!(read(&file, &all).unwrap(), "one\ntwo\nthree with spaces\n");
        let tail = LogOptions {
            tail_lines: Some(1),
            timestamps: true,
            ..all.clone()
        };
        assert_eq!(
            read(&file, &tail).unwrap(),
            "2026-12-07T00:00:02Z three with spaces\n"
        );
        let since = LogOptions {
            since: Some(at("2026-12-07T00:00:01Z")),
            ..all.clone()
        };
        assert_eq!(read(&file, &since).unwrap(), "two\nthree with spaces\n");
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..all
        };
        assert_eq!(read(&file, &limited).unwrap(), "one\ntw");
    }

    #[test]
    fn a_log_is_replaced_by_a_pod_of_the_same_name_and_removed_only_by_its_own() {
        let (dir, logs, _w) = sample();
        logs.remove("spark", "p", "another-uid");
        assert!(logs.get("spark", "p").is_some());
        let _w2 = logs
            .create("spark", "p", "uid-2", "c", &dir.path().join("c2.log"))
            .expect("created");
        assert_eq!(logs.get("spark", "p").map(|f| f.uid), Some("uid-2".into()));
        logs.remove("spark", "p", "uid-1");
        assert!(logs.get("spark", "p").is_some());
        logs.remove("spark", "p", "uid-2");
        assert!(logs.get("spark", "p").is_none());
    }

    #[tokio::test]
    async fn a_log_whose_writer_is_gone_ends_for_its_followers() {
        use futures::StreamExt;
        let (_dir, logs, w) = sample();
        let file = logs.get("spark", "p").expect("registered");
        // As when the process never started: the writer is dropped, never finished by hand.
        drop(w);
        assert!(file.ended());
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let all: Vec<_> = follow(file, options).collect().await;
        assert_eq!(all.len(), 1, "what was written, then the end");
    }

    #[tokio::test]
    async fn following_streams_new_lines_and_ends_with_the_process() {
        use futures::StreamExt;
        let (_dir, logs, w) = sample();
        let file = logs.get("spark", "p").expect("registered");
        let options = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        let mut stream = Box::pin(follow(file, options));
        let first = stream.next().await.expect("a chunk").expect("read");
        assert_eq!(first, Bytes::from("three with spaces\n"));
        w.line(Stream::Stdout, b"four", at("2026-12-07T00:00:05Z"))
            .unwrap();
        let second = stream.next().await.expect("a chunk").expect("read");
        assert_eq!(
            second,
            Bytes::from("four\n"),
            "tailLines applies only at first"
        );
        w.line(Stream::Stdout, b"five", at("2026-12-07T00:00:06Z"))
            .unwrap();
        w.finish();
        let mut rest = Vec::new();
        while let Some(chunk) = stream.next().await {
            rest.extend_from_slice(&chunk.expect("read"));
        }
        assert_eq!(rest, b"five\n", "the stream ends after the last line");
    }
}
