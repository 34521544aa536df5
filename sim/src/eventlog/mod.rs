//! Spark event logs as a History Server directory holds them, read into per-application traces.
//!
//! [`read_dir`] lists a directory ([`discover`]), decodes each log ([`codec`]: plain, zstd, lz4,
//! snappy, lzf), reads it line by line ([`extract`]) and returns one [`AppTrace`] per application
//! plus a [`Skipped`] entry, with its reason, for everything it could not use. Broken input never
//! aborts the read: a log that is partly readable becomes a trace whose `fallbacks` say what was
//! missing or cut; a log with nothing usable becomes a `Skipped`. [`nodes`] reads
//! `kubectl get nodes -o json`. The formats and rules are described in `docs/eventlogs.md`.

pub mod codec;
pub mod discover;
pub mod extract;
mod lz4java;
mod lzf;
pub mod nodes;
mod snappyjava;
mod stream;
mod zstd;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sparkgang_common::resources::GpuResourceNames;
use sparkgang_common::sparkconf::ConfDemand;

pub use codec::Codec;
pub use discover::{FoundLog, LogFile, discover};
pub use extract::read_log;

/// How a log is laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One file `<app>[.<codec>][.inprogress]`.
    Single,
    /// A directory `eventlog_v2_<app>/` of `events_<N>_<app>` files.
    Rolling,
}

/// Whether the application had finished when the log was taken, as the History Server tells it
/// from the name (`.inprogress`, `appstatus_<app>.inprogress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceState {
    Completed,
    /// Still running, or killed before it could rename its log.
    InProgress,
}

/// One executor's life: `SparkListenerExecutorAdded` to `SparkListenerExecutorRemoved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpan {
    pub id: String,
    pub host: Option<String>,
    /// `Total Cores` of the executor as it registered.
    pub cores: Option<u32>,
    pub added_ms: i64,
    /// `None`: still there when the log ends (Spark logs no removal at application end).
    pub removed_ms: Option<i64>,
    pub removed_reason: Option<String>,
}

/// One application, as its event log tells it. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppTrace {
    /// `App ID` of `SparkListenerApplicationStart` (else `spark.app.id`, else the file name).
    pub app_id: String,
    /// `App Attempt ID`, for applications retried by their cluster manager.
    pub attempt_id: Option<String>,
    /// `App Name` (else `spark.app.name`, else the app id).
    pub name: String,
    pub user: Option<String>,
    /// `Spark Version` of `SparkListenerLogStart`.
    pub spark_version: Option<String>,
    /// The log file, or the rolling log directory.
    pub source: PathBuf,
    pub layout: Layout,
    /// The codec of the (first) file; `None` for plain text.
    pub codec: Option<Codec>,
    /// When spark-submit ran: `spark.app.submitTime`, else the application start.
    pub submitted_at_ms: i64,
    /// `Timestamp` of `SparkListenerApplicationStart` (the SparkContext's start).
    pub started_at_ms: Option<i64>,
    /// `Timestamp` of `SparkListenerApplicationEnd`.
    pub ended_at_ms: Option<i64>,
    /// `ExitCode` of `SparkListenerApplicationEnd` (Spark 3.4+).
    pub exit_code: Option<i32>,
    /// The latest time any read event carries: where an unfinished log leaves off.
    pub last_event_ms: i64,
    pub state: TraceState,
    /// Driver and executor sizes, executor counts and node selectors, by `SparkConf::demand`
    /// from the `Spark Properties` of `SparkListenerEnvironmentUpdate`.
    pub demand: ConfDemand,
    /// The accepted Spark properties that shape its pods (`extract::SHAPING_PREFIXES`): what
    /// a replay submits again.
    #[serde(skip)]
    pub conf: BTreeMap<String, String>,
    /// Executors in the order they were added (the local-mode `driver` executor is left out).
    pub executors: Vec<ExecutorSpan>,
    /// Lines read as events.
    pub events: u64,
    /// What was missing, cut or invalid, and what was used instead.
    pub fallbacks: Vec<String>,
}

impl AppTrace {
    /// `instance-group` (or another label) of the executors' node selector.
    pub fn executor_label(&self, key: &str) -> Option<&str> {
        self.demand
            .executor_node_selector
            .get(key)
            .map(String::as_str)
    }

    /// The node selector of the executors (`spark.kubernetes.node.selector.*` overlaid with the
    /// executor-specific keys).
    pub fn node_selector(&self) -> &BTreeMap<String, String> {
        &self.demand.executor_node_selector
    }
}

/// A directory entry that gave no application, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub source: PathBuf,
    pub reason: String,
}

/// What a History Server directory held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLogs {
    /// By submission time, then application id.
    pub apps: Vec<AppTrace>,
    /// By path.
    pub skipped: Vec<Skipped>,
}

/// The only failure of [`read_dir`]: the directory itself cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("cannot list the event log directory {}: {source}", path.display())]
    ListDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Reads every event log in `dir` (GPUs counted as `nvidia.com/gpu`).
pub fn read_dir(dir: &Path) -> Result<EventLogs, EventLogError> {
    read_dir_with(dir, &GpuResourceNames::default())
}

/// Reads every event log in `dir`, counting the extended resources in `gpus` as GPUs.
pub fn read_dir_with(dir: &Path, gpus: &GpuResourceNames) -> Result<EventLogs, EventLogError> {
    let (found, mut skipped) = discover(dir).map_err(|source| EventLogError::ListDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut apps: Vec<AppTrace> = Vec::new();
    for log in &found {
        match read_log(log, gpus) {
            Ok(app) => apps.push(app),
            Err(s) => skipped.push(s),
        }
    }
    dedup(&mut apps, &mut skipped);
    apps.sort_by(|a, b| {
        (a.submitted_at_ms, &a.app_id, &a.attempt_id).cmp(&(
            b.submitted_at_ms,
            &b.app_id,
            &b.attempt_id,
        ))
    });
    skipped.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(EventLogs { apps, skipped })
}

/// Keeps one trace per application attempt: a completed log over an in-progress one (a leftover
/// of a rename), then the one with more events.
fn dedup(apps: &mut Vec<AppTrace>, skipped: &mut Vec<Skipped>) {
    let rank = |a: &AppTrace| (a.state == TraceState::Completed, a.events);
    let mut best: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
    for (i, a) in apps.iter().enumerate() {
        let key = (a.app_id.clone(), a.attempt_id.clone());
        match best.get(&key) {
            Some(&j) if rank(&apps[j]) >= rank(a) => {}
            _ => {
                best.insert(key, i);
            }
        }
    }
    let mut keep = vec![false; apps.len()];
    for &i in best.values() {
        keep[i] = true;
    }
    let mut kept = Vec::with_capacity(best.len());
    for (i, a) in std::mem::take(apps).into_iter().enumerate() {
        if keep[i] {
            kept.push(a);
        } else {
            skipped.push(Skipped {
                reason: format!(
                    "another log of application {} was kept (a completed one, or one with more events)",
                    a.app_id
                ),
                source: a.source,
            });
        }
    }
    *apps = kept;
}
