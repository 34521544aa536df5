//! Reads one found log line by line and extracts its application's trace.
//!
//! Only the events that matter are parsed as JSON (`SparkListenerLogStart`, `ApplicationStart`,
//! `ApplicationEnd`, `EnvironmentUpdate`, `ExecutorAdded`, `ExecutorRemoved`, `JobStart`,
//! `JobEnd`); the others are recognised by their `{"Event":"…"` prefix and counted. A line that
//! is not an event is skipped and counted; when the first line of a log is not an event the log
//! is not a Spark event log and is skipped whole.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use sparkgang_common::resources::GpuResourceNames;
use sparkgang_common::sparkconf::{ConfDemand, SparkConf, keys};

use super::codec::open;
use super::discover::FoundLog;
use super::{AppTrace, ExecutorSpan, Skipped, TraceState};

/// Sizing keys whose absence means Spark's default, listed per app when the log does not set them.
const DEFAULTED: [(&str, &str); 5] = [
    ("spark.driver.cores", "1"),
    ("spark.driver.memory", "1g"),
    ("spark.executor.cores", "1"),
    ("spark.executor.memory", "1g"),
    (keys::INSTANCES, "2 (without dynamic allocation)"),
];

#[derive(Deserialize)]
struct LogStart {
    #[serde(rename = "Spark Version")]
    version: Option<String>,
}

#[derive(Deserialize)]
struct AppStart {
    #[serde(rename = "App Name")]
    name: Option<String>,
    #[serde(rename = "App ID")]
    id: Option<String>,
    #[serde(rename = "App Attempt ID")]
    attempt: Option<String>,
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "User")]
    user: Option<String>,
}

#[derive(Deserialize)]
struct AppEnd {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "ExitCode")]
    exit_code: Option<i32>,
}

#[derive(Deserialize)]
struct EnvUpdate {
    #[serde(rename = "Spark Properties")]
    properties: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct ExecInfo {
    #[serde(rename = "Host")]
    host: Option<String>,
    #[serde(rename = "Total Cores")]
    cores: Option<u32>,
}

#[derive(Deserialize)]
struct ExecAdded {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "Executor ID")]
    id: String,
    #[serde(rename = "Executor Info")]
    info: Option<ExecInfo>,
}

#[derive(Deserialize)]
struct ExecRemoved {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "Executor ID")]
    id: String,
    #[serde(rename = "Removed Reason")]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct JobTimes {
    #[serde(rename = "Submission Time")]
    submitted: Option<i64>,
    #[serde(rename = "Completion Time")]
    completed: Option<i64>,
}

/// What the lines of a log said so far.
#[derive(Default)]
struct Facts {
    spark_version: Option<String>,
    start: Option<AppStart>,
    end: Option<AppEnd>,
    properties: Option<BTreeMap<String, String>>,
    env_updates: u32,
    executors: Vec<ExecutorSpan>,
    last_ms: Option<i64>,
    events: u64,
    bad_lines: u64,
    first_bad: Option<String>,
    notes: Vec<String>,
}

impl Facts {
    fn saw(&mut self, ms: i64) {
        self.last_ms = Some(self.last_ms.map_or(ms, |m| m.max(ms)));
    }

    fn bad(&mut self, file: &str, line_no: u64, why: String) {
        self.bad_lines += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(format!("{file} line {line_no}: {why}"));
        }
    }

    /// Takes one complete line.
    fn line(&mut self, line: &[u8], file: &str, line_no: u64) {
        let Some(kind) = event_name(line) else {
            self.bad(file, line_no, "not a JSON event".to_owned());
            return;
        };
        self.events += 1;
        let parse_err = match &*kind {
            "SparkListenerLogStart" => {
                parse(line).map(|e: LogStart| self.spark_version = e.version)
            }
            "SparkListenerApplicationStart" => parse(line).map(|e: AppStart| {
                self.saw(e.timestamp);
                if self.start.is_none() {
                    self.start = Some(e);
                }
            }),
            "SparkListenerApplicationEnd" => parse(line).map(|e: AppEnd| {
                self.saw(e.timestamp);
                self.end = Some(e);
            }),
            "SparkListenerEnvironmentUpdate" => parse(line).map(|e: EnvUpdate| {
                self.env_updates += 1;
                if self.properties.is_none() {
                    self.properties = e.properties.map(stringify);
                }
            }),
            "SparkListenerExecutorAdded" => parse(line).map(|e: ExecAdded| self.added(e)),
            "SparkListenerExecutorRemoved" => parse(line).map(|e: ExecRemoved| self.removed(e)),
            "SparkListenerJobStart" | "SparkListenerJobEnd" => parse(line).map(|e: JobTimes| {
                if let Some(t) = e.submitted.or(e.completed) {
                    self.saw(t);
                }
            }),
            _ => Ok(()),
        };
        if let Err(e) = parse_err {
            self.events -= 1;
            self.bad(file, line_no, format!("{kind} does not parse: {e}"));
        }
    }

    fn added(&mut self, e: ExecAdded) {
        self.saw(e.timestamp);
        if e.id == "driver" {
            return; // local mode's in-driver executor: not an executor pod
        }
        if self.executors.iter().any(|x| x.id == e.id) {
            self.notes
                .push(format!("executor {} added twice: the second ignored", e.id));
            return;
        }
        let (host, cores) = e.info.map_or((None, None), |i| (i.host, i.cores));
        self.executors.push(ExecutorSpan {
            id: e.id,
            host,
            cores,
            added_ms: e.timestamp,
            removed_ms: None,
            removed_reason: None,
        });
    }

    fn removed(&mut self, e: ExecRemoved) {
        self.saw(e.timestamp);
        if e.id == "driver" {
            return;
        }
        match self.executors.iter_mut().find(|x| x.id == e.id) {
            Some(x) if x.removed_ms.is_none() => {
                x.removed_ms = Some(e.timestamp);
                x.removed_reason = e.reason;
            }
            Some(_) => self.notes.push(format!(
                "executor {} removed twice: the second ignored",
                e.id
            )),
            None => self.notes.push(format!(
                "executor {} removed but never added: ignored",
                e.id
            )),
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(line)
}

fn stringify(map: BTreeMap<String, Value>) -> BTreeMap<String, String> {
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// The `Event` of a line: from Spark's `{"Event":"…"` prefix (no allocation), else by parsing
/// the line.
fn event_name(line: &[u8]) -> Option<Cow<'_, str>> {
    const PREFIX: &[u8] = b"{\"Event\":\"";
    if let Some(rest) = line.strip_prefix(PREFIX)
        && let Some(end) = rest.iter().take(200).position(|&b| b == b'"')
        && line.last() == Some(&b'}')
    {
        return std::str::from_utf8(&rest[..end]).ok().map(Cow::Borrowed);
    }
    match serde_json::from_slice::<Value>(line).ok()? {
        Value::Object(m) => m.get("Event")?.as_str().map(|s| Cow::Owned(s.to_owned())),
        _ => None,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads the lines of one file into `facts`; returns why reading stopped early, if it did.
fn read_file(reader: Box<dyn Read>, file: &str, facts: &mut Facts) -> Option<String> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut line = Vec::with_capacity(16 * 1024);
    let mut line_no = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return None,
            Ok(_) => {
                line_no += 1;
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if !line.is_empty() {
                        facts.line(&line, file, line_no);
                    }
                } else if event_name(&line).is_some() {
                    facts.line(&line, file, line_no);
                } else {
                    facts.notes.push(format!(
                        "{file}: the last line ({} bytes, no newline) is cut: dropped",
                        line.len()
                    ));
                }
            }
            Err(e) => {
                // Keep a cut line's complete part out: it cannot be parsed.
                return Some(format!("{file}: {e} (after {line_no} lines)"));
            }
        }
    }
}

/// Reads one log into a trace, or says why it gives none.
pub fn read_log(found: &FoundLog, gpus: &GpuResourceNames) -> Result<AppTrace, Skipped> {
    let skip = |reason: String| Skipped {
        source: found.source.clone(),
        reason,
    };
    let mut facts = Facts::default();
    let mut fallbacks = found.notes.clone();
    for (i, f) in found.files.iter().enumerate() {
        let name = file_name(&f.path);
        let reader = match open(&f.path, f.codec) {
            Ok(r) => r,
            Err(e) => {
                if i == 0 {
                    return Err(skip(format!("{name}: cannot open: {e}")));
                }
                fallbacks.push(format!(
                    "{name}: cannot open ({e}): this and later files not read"
                ));
                break;
            }
        };
        let events_before = facts.events;
        let bad_before = facts.bad_lines;
        let stopped = read_file(reader, &name, &mut facts);
        if facts.events == events_before && facts.bad_lines > bad_before && i == 0 {
            return Err(skip(format!(
                "not a Spark event log: {}",
                facts.first_bad.take().unwrap_or_default()
            )));
        }
        if let Some(why) = stopped {
            if facts.events == 0 {
                return Err(skip(format!("nothing readable: {why}")));
            }
            let expected = found.in_progress && i + 1 == found.files.len();
            fallbacks.push(format!(
                "{why}; {} events read before it{}",
                facts.events,
                if expected {
                    " (an in-progress log ends like this)"
                } else {
                    ""
                }
            ));
            if i + 1 < found.files.len() {
                fallbacks.push(format!(
                    "{} later file(s) not read",
                    found.files.len() - i - 1
                ));
            }
            break;
        }
    }
    if facts.events == 0 {
        return Err(skip("no events in the log".to_owned()));
    }
    if facts.bad_lines > 0 {
        fallbacks.push(format!(
            "{} line(s) were not events and were skipped; first: {}",
            facts.bad_lines,
            facts.first_bad.clone().unwrap_or_default()
        ));
    }
    fallbacks.append(&mut facts.notes);
    build(found, facts, fallbacks, gpus).map_err(skip)
}

fn build(
    found: &FoundLog,
    facts: Facts,
    mut fallbacks: Vec<String>,
    gpus: &GpuResourceNames,
) -> Result<AppTrace, String> {
    let props = match facts.properties {
        Some(p) => p,
        None => {
            fallbacks.push(
                "no SparkListenerEnvironmentUpdate: driver and executor sizes and counts are Spark's defaults"
                    .to_owned(),
            );
            BTreeMap::new()
        }
    };
    if facts.env_updates > 1 {
        fallbacks.push(format!(
            "{} SparkListenerEnvironmentUpdate events: the first one's properties used",
            facts.env_updates
        ));
    }
    let start = facts.start;
    let submit_time = props.get("spark.app.submitTime");
    let submitted_at_ms = match (submit_time.map(|s| s.trim().parse::<i64>()), &start) {
        (Some(Ok(t)), _) => t,
        (bad, Some(s)) => {
            fallbacks.push(match bad {
                Some(Err(_)) => format!(
                    "spark.app.submitTime={:?} is not a time: submission = application start",
                    submit_time.map_or("", String::as_str)
                ),
                _ => "no spark.app.submitTime: submission = application start".to_owned(),
            });
            s.timestamp
        }
        (_, None) => {
            return Err(
                "no SparkListenerApplicationStart and no spark.app.submitTime: submission time unknown"
                    .to_owned(),
            );
        }
    };
    if start.is_none() {
        fallbacks.push("no SparkListenerApplicationStart: start time unknown".to_owned());
    }
    let app_id = start
        .as_ref()
        .and_then(|s| s.id.clone())
        .or_else(|| props.get(keys::APP_ID).cloned())
        .unwrap_or_else(|| {
            fallbacks.push(format!(
                "no App ID in the log: the id `{}` is taken from the file name",
                found.name_app_id
            ));
            found.name_app_id.clone()
        });
    let name = start
        .as_ref()
        .and_then(|s| s.name.clone())
        .or_else(|| props.get(keys::APP_NAME).cloned())
        .unwrap_or_else(|| app_id.clone());
    let unset: Vec<String> = DEFAULTED
        .iter()
        .filter(|(k, _)| !props.is_empty() && !props.contains_key(*k))
        .filter(|(k, _)| {
            *k != keys::INSTANCES || props.get(keys::DA_ENABLED).map(String::as_str) != Some("true")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !unset.is_empty() {
        fallbacks.push(format!(
            "not set, Spark's defaults apply: {}",
            unset.join(", ")
        ));
    }
    let (demand, conf) = demand(props, gpus, &mut fallbacks);
    if demand.dynamic_allocation
        && demand.demand.max_executors == sparkgang_common::sparkconf::UNBOUNDED_EXECUTORS
    {
        fallbacks.push(
            "dynamic allocation without spark.dynamicAllocation.maxExecutors: no upper bound"
                .to_owned(),
        );
    }
    let state = if found.in_progress {
        TraceState::InProgress
    } else {
        TraceState::Completed
    };
    if state == TraceState::Completed && facts.end.is_none() {
        fallbacks
            .push("completed log without SparkListenerApplicationEnd: end time unknown".to_owned());
    }
    let mut executors = facts.executors;
    executors.sort_by(|a, b| (a.added_ms, &a.id).cmp(&(b.added_ms, &b.id)));
    Ok(AppTrace {
        app_id,
        attempt_id: start.as_ref().and_then(|s| s.attempt.clone()),
        name,
        user: start.as_ref().and_then(|s| s.user.clone()),
        spark_version: facts.spark_version,
        source: found.source.clone(),
        layout: found.layout,
        codec: found.files.first().and_then(|f| f.codec),
        submitted_at_ms,
        started_at_ms: start.as_ref().map(|s| s.timestamp),
        ended_at_ms: facts.end.as_ref().map(|e| e.timestamp),
        exit_code: facts.end.as_ref().and_then(|e| e.exit_code),
        last_event_ms: facts
            .last_ms
            .unwrap_or(submitted_at_ms)
            .max(submitted_at_ms),
        state,
        demand,
        conf,
        executors,
        events: facts.events,
        fallbacks,
    })
}

/// The Spark properties that size, count, place or name an application's pods (what
/// `SparkConf::demand` and Spark's Kubernetes backend read); the rest of a conf is not kept.
pub const SHAPING_PREFIXES: &[&str] = &[
    "spark.app.name",
    "spark.driver.",
    "spark.executor.",
    "spark.dynamicAllocation.",
    "spark.kubernetes.",
    "spark.memory.",
    "spark.unsafe.",
];

/// `SparkConf::demand`; a key Spark would reject is dropped (so Spark's default applies) and
/// named in `fallbacks`, until the conf is accepted.
/// Also returns the accepted properties that shape pods ([`SHAPING_PREFIXES`]), to submit the
/// application again.
fn demand(
    props: BTreeMap<String, String>,
    gpus: &GpuResourceNames,
    fallbacks: &mut Vec<String>,
) -> (ConfDemand, BTreeMap<String, String>) {
    let mut props = props;
    loop {
        let conf = SparkConf::from(props.clone());
        match conf.demand(gpus) {
            Ok(d) => {
                props.retain(|k, _| SHAPING_PREFIXES.iter().any(|p| k.starts_with(p)));
                return (d, props);
            }
            Err(e) => {
                let key = e.key().to_owned();
                fallbacks.push(format!("{e}: {key} ignored, Spark's default used"));
                if props.remove(&key).is_none() {
                    // The error names a key that is not set (cannot happen with Spark's
                    // checks); fall back to an empty conf rather than loop.
                    fallbacks.push("the conf was dropped whole: Spark's defaults used".to_owned());
                    props.clear();
                }
            }
        }
    }
}
