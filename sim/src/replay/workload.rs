//! From event-log traces to arrivals: when each application is submitted again, with which
//! conf, and what its driver does once it runs (how long, and how many executors over time).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::eventlog::AppTrace;
use crate::spark::{DriverScript, Submission};

/// Where applications go whose conf names no namespace.
pub const DEFAULT_NAMESPACE: &str = "spark";

/// Runtime of an application whose log has neither an end nor any event after its start.
pub const DEFAULT_RUNTIME: Duration = Duration::from_secs(60);

/// Properties a replay sets itself (identity, placement of the submission, scheduler): taken
/// out of a trace's conf before it is submitted again.
const REPLAY_SETS: &[&str] = &[
    "spark.app.name",
    "spark.kubernetes.namespace",
    "spark.kubernetes.driver.pod.name",
    "spark.kubernetes.scheduler.name",
    "spark.kubernetes.driver.scheduler.name",
    "spark.kubernetes.executor.scheduler.name",
];

/// One application to submit again.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The application id in its log.
    pub app_id: String,
    pub name: String,
    /// From the first submission of the workload.
    pub at: Duration,
    pub submission: Submission,
    pub script: DriverScript,
    /// Unique in the workload: names its pods.
    pub seed: u64,
    /// Executors that must run beside the driver for the application to start computing.
    pub min_executors: u32,
}

/// A Kubernetes name from an application name: lower case letters, digits and `-`, starting
/// with a letter, at most 30 characters (pod names add a 16-character id and `-driver`).
pub fn pod_name_prefix(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(30);
    let out = out.trim_end_matches('-');
    match out.chars().next() {
        Some(c) if c.is_ascii_lowercase() => out.to_owned(),
        Some(_) => format!("app-{out}").chars().take(30).collect(),
        None => "app".to_owned(),
    }
}

/// How long the application ran once started, as its log tells: from its start (else its
/// submission) to its end (else its last event). `None` when the log says nothing.
fn runtime(t: &AppTrace) -> Option<Duration> {
    let from = t.started_at_ms.unwrap_or(t.submitted_at_ms);
    let to = t.ended_at_ms.unwrap_or(t.last_event_ms);
    u64::try_from(to - from)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// Dynamic allocation: the executor target over time from the log's executor add and remove
/// times (offsets from the start), each change once. Static applications keep their count.
fn executor_targets(t: &AppTrace) -> Vec<(Duration, u32)> {
    if !t.demand.dynamic_allocation {
        return Vec::new();
    }
    let start = t.started_at_ms.unwrap_or(t.submitted_at_ms);
    let mut steps: BTreeMap<i64, i64> = BTreeMap::new();
    for e in &t.executors {
        *steps.entry(e.added_ms - start).or_default() += 1;
        if let Some(r) = e.removed_ms {
            *steps.entry(r - start).or_default() -= 1;
        }
    }
    let mut live = 0i64;
    let mut out: Vec<(Duration, u32)> = Vec::new();
    for (at, delta) in steps {
        live += delta;
        let count = u32::try_from(live.max(0)).unwrap_or(0);
        if out.last().is_some_and(|(_, c)| *c == count) {
            continue;
        }
        out.push((Duration::from_millis(u64::try_from(at).unwrap_or(0)), count));
    }
    out
}

/// The arrivals of `traces`, in the order of their submission (ties by application id), and
/// per application what was assumed for lack of data.
pub fn arrivals(traces: &[AppTrace]) -> (Vec<Arrival>, BTreeMap<String, Vec<String>>) {
    let mut sorted: Vec<&AppTrace> = traces.iter().collect();
    sorted.sort_by(|a, b| (a.submitted_at_ms, &a.app_id).cmp(&(b.submitted_at_ms, &b.app_id)));
    let first = sorted.first().map_or(0, |t| t.submitted_at_ms);
    let mut assumed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut out = Vec::with_capacity(sorted.len());
    for (i, t) in sorted.into_iter().enumerate() {
        let mut notes = t.fallbacks.clone();
        let runtime = runtime(t).unwrap_or_else(|| {
            notes.push(format!(
                "no time between start and end in the log: runs {}s",
                DEFAULT_RUNTIME.as_secs()
            ));
            DEFAULT_RUNTIME
        });
        let mut conf = t.conf.clone();
        let namespace = conf
            .get("spark.kubernetes.namespace")
            .cloned()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        conf.retain(|k, _| !REPLAY_SETS.contains(&k.as_str()));
        let name = pod_name_prefix(&t.name);
        let at = u64::try_from(t.submitted_at_ms - first).unwrap_or(0);
        if !notes.is_empty() {
            assumed.insert(t.app_id.clone(), notes);
        }
        out.push(Arrival {
            app_id: t.app_id.clone(),
            name: t.name.clone(),
            at: Duration::from_millis(at),
            submission: Submission {
                namespace,
                name,
                conf,
                annotations: BTreeMap::new(),
            },
            script: DriverScript {
                runtime,
                kill_executors: Vec::new(),
                scale_to: executor_targets(t),
            },
            seed: i as u64 + 1,
            min_executors: t.demand.demand.min_executors,
        });
    }
    (out, assumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_name_prefixes_are_kubernetes_names() {
        assert_eq!(pod_name_prefix("Spark Pi"), "spark-pi");
        assert_eq!(pod_name_prefix("__etl__daily__"), "etl-daily");
        assert_eq!(pod_name_prefix("2024 report"), "app-2024-report");
        assert_eq!(pod_name_prefix("***"), "app");
        assert_eq!(
            pod_name_prefix("a-very-long-application-name-that-goes-on-and-on").len(),
            30
        );
        assert!(!pod_name_prefix(&format!("{}-y", "x".repeat(29))).ends_with('-'));
    }
}
