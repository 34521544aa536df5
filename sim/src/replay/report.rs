//! A replay's JSON report: per configuration, each application's story and the figures over
//! all of them. Every time is in seconds from the first submission, on the virtual clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::eventlog::Skipped;

/// The whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The event-log directory, as given.
    pub eventlogs: String,
    pub nodes: usize,
    /// Applications replayed (logs that gave one).
    pub applications: usize,
    /// How long each configuration ran at most.
    pub horizon_seconds: f64,
    /// Logs that gave no application, and why.
    pub skipped: Vec<Skipped>,
    /// Per application id: what its log lacked and what was assumed instead.
    pub assumed: BTreeMap<String, Vec<String>>,
    pub configurations: Vec<ConfigurationReport>,
}

/// One configuration's run.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigurationReport {
    pub name: String,
    /// False for kube-scheduler alone.
    pub sparkgang: bool,
    pub summary: Summary,
    /// Applications whose driver and minimum executors never ran together before the horizon.
    pub never_started: Vec<String>,
    /// Allocated share of the cluster's cpu and memory over time.
    pub utilisation: Vec<UtilisationPoint>,
    pub apps: Vec<AppOutcome>,
}

/// The figures of one configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub applications: usize,
    /// Driver and minimum executors ran together.
    pub started: usize,
    pub completed: usize,
    pub never_started: usize,
    /// From submission until the driver and its minimum executors run, over started apps.
    pub wait_seconds: Percentiles,
    /// From the first submission to the last completion (the horizon when some never
    /// completed).
    pub makespan_seconds: f64,
    /// Time-weighted mean of the allocated share, until the makespan.
    pub mean_cpu_utilisation: f64,
    pub mean_memory_utilisation: f64,
}

/// Nearest-rank percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl Percentiles {
    /// Of `values` (any order).
    pub fn of(values: &[f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            // Nearest rank: the smallest value with at least q of all at or below it.
            let n = sorted.len();
            let k = ((q * n as f64).ceil() as usize).clamp(1, n);
            sorted[k - 1]
        };
        Percentiles {
            p50: Some(rank(0.50)),
            p90: Some(rank(0.90)),
            p99: Some(rank(0.99)),
            max: sorted.last().copied(),
            mean: Some(sorted.iter().sum::<f64>() / sorted.len() as f64),
        }
    }
}

/// The allocated share of the cluster at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UtilisationPoint {
    pub at: f64,
    pub cpu: f64,
    pub memory: f64,
}

/// How many executors an application had running from a time on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExecutorCount {
    /// Milliseconds from the first submission.
    pub at_ms: u64,
    pub running: u32,
}

/// One application under one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct AppOutcome {
    pub app_id: String,
    pub name: String,
    pub submitted_at: f64,
    pub driver_scheduled_at: Option<f64>,
    /// Driver and minimum executors running together.
    pub started_at: Option<f64>,
    /// `started_at - submitted_at`.
    pub wait_seconds: Option<f64>,
    pub completed_at: Option<f64>,
    /// Executors granted over time: every change of the running count.
    pub executors: Vec<ExecutorCount>,
    /// Why it waited last, as kube-scheduler was told (empty when it never waited).
    pub last_pending_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&values);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max),
            (Some(50.0), Some(90.0), Some(99.0), Some(100.0))
        );
        assert_eq!(p.mean, Some(50.5));
        let one = Percentiles::of(&[7.0]);
        assert_eq!((one.p50, one.p99), (Some(7.0), Some(7.0)));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        let p = Percentiles::of(&[3.0, 1.0, 2.0]);
        assert_eq!((p.p50, p.p90), (Some(2.0), Some(3.0)));
    }
}
