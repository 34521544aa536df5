//! A scenario run's report: what each application and node went through, the broken
//! invariants and expectations, and the extender's filter figures.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sparkgang_common::resources::Resources;

use crate::history::History;
use crate::oracle::Violation;

/// One executor's placement.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutorReport {
    pub name: String,
    pub node: Option<String>,
    /// Seconds from the start of the run.
    pub scheduled_at: Option<f64>,
}

/// One application's story.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    pub name: String,
    pub submitted_at: f64,
    pub driver_scheduled_at: Option<f64>,
    pub driver_node: Option<String>,
    pub executors: Vec<ExecutorReport>,
    pub completed_at: Option<f64>,
    /// `completed`, `running`, `pending` or `rejected`.
    pub final_state: String,
    pub last_pending_reason: Option<String>,
    /// Executors the app started with (its gang's minimum).
    pub min_executors: u32,
    /// The most executors it ever had running at once.
    pub peak_running_executors: usize,
}

/// Per node: the peak of what pods and reservations held, against allocatable.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub allocatable_cpu_milli: i64,
    pub allocatable_memory_bytes: i64,
    pub peak_cpu_milli: i64,
    pub peak_memory_bytes: i64,
}

/// The JSON report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub mode: String,
    /// `real` or `virtual` (`--clock`); a virtual run's durations are virtual seconds.
    pub clock: String,
    pub duration_seconds: f64,
    pub apps: Vec<AppReport>,
    pub nodes: Vec<NodeReport>,
    /// Broken invariants (`crate::oracle`).
    pub violations: Vec<Violation>,
    pub expectation_failures: Vec<String>,
    /// The extender's filter calls over the run (sparkgang mode).
    pub filter: Option<FilterStats>,
    /// Each preemption, by preemptor, in time order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preemptions: Vec<PreemptionReport>,
    /// Each queue of the scenario: its timeline and time-averaged shares.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<super::queues::QueueReport>,
    /// What the run saw, for the oracles and for a closer look (`--history`).
    #[serde(skip)]
    pub history: History,
}

/// The pods evicted for one preemptor, and the room they held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreemptionReport {
    /// When the first victim was seen marked, in seconds from the start of the run.
    pub at: f64,
    /// The preemptor's driver, `namespace/name`.
    pub preemptor: String,
    /// The victim pods, `namespace/name`, sorted.
    pub victims: Vec<String>,
    /// What the victims requested, together.
    pub reclaimed: Resources,
}

/// The preemptions of a run, grouped by preemptor, from the evicted pods and their requests.
pub fn preemptions(history: &History) -> Vec<PreemptionReport> {
    if history.preempted.is_empty() {
        return Vec::new();
    }
    let mut by: BTreeMap<&str, PreemptionReport> = BTreeMap::new();
    for p in &history.preempted {
        let entry = by.entry(p.by.as_str()).or_insert_with(|| PreemptionReport {
            at: p.at,
            preemptor: p.by.clone(),
            victims: Vec::new(),
            reclaimed: Resources::ZERO,
        });
        entry.at = entry.at.min(p.at);
        entry.victims.push(p.pod.clone());
        entry.reclaimed += p.requests;
    }
    let mut out: Vec<PreemptionReport> = by.into_values().collect();
    for r in &mut out {
        r.victims.sort();
    }
    out.sort_by(|a, b| {
        a.at.total_cmp(&b.at)
            .then_with(|| a.preemptor.cmp(&b.preemptor))
    });
    out
}

/// The extender's filter calls, from its own metrics.
#[derive(Debug, Clone, Serialize)]
pub struct FilterStats {
    pub calls: u64,
    pub calls_per_second: f64,
    pub mean_ms: f64,
    /// Upper bounds of the histogram buckets holding the 50th and 99th percentiles.
    pub p50_at_most_ms: f64,
    pub p99_at_most_ms: f64,
}

/// Reads `filter_duration_seconds` from the extender's Prometheus text.
pub fn filter_stats(metrics: &str, seconds: f64) -> Option<FilterStats> {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        if let Some(rest) =
            line.strip_prefix("sparkgang_extender_filter_duration_seconds_bucket{le=\"")
        {
            let le = rest
                .split('"')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::INFINITY);
            buckets.push((le, value(line)?));
        } else if line.starts_with("sparkgang_extender_filter_duration_seconds_count") {
            count = value(line)?;
        } else if line.starts_with("sparkgang_extender_filter_duration_seconds_sum") {
            sum = value(line)?;
        }
    }
    if count == 0.0 {
        return None;
    }
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|(_, c)| *c >= q * count)
            .map_or(f64::INFINITY, |(le, _)| le * 1000.0)
    };
    Some(FilterStats {
        calls: count as u64,
        calls_per_second: count / seconds.max(0.001),
        mean_ms: sum / count * 1000.0,
        p50_at_most_ms: quantile(0.5),
        p99_at_most_ms: quantile(0.99),
    })
}

impl Report {
    /// A report rebuilt from a recorded history (`sparkgang-sim judge`): the applications and
    /// nodes, and the invariants judged again. A history with reservations is judged as a
    /// sparkgang run. Expectations, pending reasons and filter figures are not recorded in a
    /// history, so there are none.
    pub fn from_history(scenario: String, history: History) -> Report {
        let with_reservations = history
            .changes
            .iter()
            .any(|c| !c.reservations.is_empty() || !c.held.is_empty());
        let (apps, nodes) = summarise(&history, &HashMap::new(), &HashMap::new());
        Report {
            clock: history.clock.clone(),
            scenario,
            mode: if with_reservations {
                "sparkgang"
            } else {
                "default-scheduler"
            }
            .to_owned(),
            duration_seconds: history.end(),
            apps,
            nodes,
            violations: crate::oracle::check(&history, with_reservations),
            queues: Vec::new(),
            expectation_failures: Vec::new(),
            filter: None,
            preemptions: preemptions(&history),
            history,
        }
    }

    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.expectation_failures.is_empty()
    }

    /// A short verdict: passed, or how many invariants and expectations failed and the first
    /// `shown` of each, one line apiece.
    pub fn verdict(&self, shown: usize) -> String {
        if self.passed() {
            return format!("{}: passed in {:.1}s", self.scenario, self.duration_seconds);
        }
        let mut out = format!(
            "{}: {} violation(s), {} expectation failure(s) in {:.1}s",
            self.scenario,
            self.violations.len(),
            self.expectation_failures.len(),
            self.duration_seconds
        );
        for v in self.violations.iter().take(shown) {
            out.push_str(&format!("\n  violation: {v}"));
        }
        if self.violations.len() > shown {
            out.push_str(&format!(
                "\n  … and {} more violation(s)",
                self.violations.len() - shown
            ));
        }
        for f in self.expectation_failures.iter().take(shown) {
            out.push_str(&format!("\n  expectation: {f}"));
        }
        if self.expectation_failures.len() > shown {
            out.push_str(&format!(
                "\n  … and {} more expectation failure(s)",
                self.expectation_failures.len() - shown
            ));
        }
        out
    }
}

/// The per-application and per-node parts of a report, read off the history.
pub(crate) fn summarise(
    history: &History,
    reasons: &HashMap<String, String>,
    rejections: &HashMap<String, String>,
) -> (Vec<AppReport>, Vec<NodeReport>) {
    /// A pod over the whole run.
    #[derive(Default)]
    struct Seen {
        name: String,
        app_id: String,
        role: String,
        bound: Option<(f64, String)>,
        finished: Option<f64>,
    }
    let mut pods: BTreeMap<String, Seen> = BTreeMap::new();
    let mut peak_running: HashMap<String, usize> = HashMap::new();
    let mut peaks: BTreeMap<String, Resources> = BTreeMap::new();
    let last = history.replay(|state| {
        let mut running: HashMap<&str, usize> = HashMap::new();
        let mut used: BTreeMap<&str, Resources> = BTreeMap::new();
        for (key, p) in &state.pods {
            if !pods.contains_key(key) {
                pods.insert(
                    key.clone(),
                    Seen {
                        name: p.name.clone(),
                        app_id: p.app_id.clone(),
                        role: p.role.clone(),
                        ..Seen::default()
                    },
                );
            }
            let Some(seen) = pods.get_mut(key) else {
                continue;
            };
            if let (None, Some(n)) = (&seen.bound, &p.node) {
                seen.bound = Some((state.at, n.clone()));
            }
            if seen.finished.is_none() && p.is_finished() {
                seen.finished = Some(state.at);
            }
            if p.role == "executor" && p.phase == "Running" && p.node.is_some() {
                *running.entry(p.app_id.as_str()).or_default() += 1;
            }
            if let (true, Some(n)) = (p.holds_room(), &p.node) {
                *used.entry(n.as_str()).or_default() += p.requests;
            }
        }
        for (app, n) in running {
            let peak = peak_running.entry(app.to_owned()).or_default();
            *peak = (*peak).max(n);
        }
        for n in &history.nodes {
            let pods = used.get(n.name.as_str()).copied().unwrap_or_default();
            let held = state.held.get(&n.name).copied().unwrap_or_default();
            let peak = peaks.entry(n.name.clone()).or_default();
            *peak = peak.max(&pods.max(&held));
        }
    });
    let mut executors_of: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in pods.values().filter(|s| s.role == "executor") {
        executors_of.entry(s.app_id.as_str()).or_default().push(s);
    }
    let apps = history
        .apps
        .iter()
        .map(|a| {
            let key = format!("{}/{}", a.namespace, a.driver);
            let driver = pods.get(&key);
            let executors = executors_of
                .get(a.app_id.as_str())
                .into_iter()
                .flatten()
                .map(|s| ExecutorReport {
                    name: s.name.clone(),
                    node: s.bound.as_ref().map(|(_, n)| n.clone()),
                    scheduled_at: s.bound.as_ref().map(|(t, _)| *t),
                })
                .collect();
            let final_state = if a.rejected {
                "rejected"
            } else {
                match last.pods.get(&key).map(|p| p.phase.as_str()) {
                    Some("Succeeded") => "completed",
                    _ if history.was_preempted(&key) => "preempted",
                    Some("Running") => "running",
                    _ => "pending",
                }
            };
            AppReport {
                name: a.name.clone(),
                submitted_at: a.submitted_at,
                driver_scheduled_at: driver.and_then(|d| d.bound.as_ref().map(|(t, _)| *t)),
                driver_node: driver.and_then(|d| d.bound.as_ref().map(|(_, n)| n.clone())),
                executors,
                completed_at: driver.and_then(|d| d.finished),
                final_state: final_state.to_owned(),
                last_pending_reason: rejections
                    .get(&a.name)
                    .cloned()
                    .or_else(|| reasons.get(&key).cloned()),
                min_executors: a.gang.min_executors,
                peak_running_executors: peak_running.get(&a.app_id).copied().unwrap_or(0),
            }
        })
        .collect();
    let nodes = history
        .nodes
        .iter()
        .map(|n| {
            let peak = peaks.get(&n.name).copied().unwrap_or_default();
            NodeReport {
                name: n.name.clone(),
                allocatable_cpu_milli: n.allocatable.cpu_milli,
                allocatable_memory_bytes: n.allocatable.memory_bytes,
                peak_cpu_milli: peak.cpu_milli,
                peak_memory_bytes: peak.memory_bytes,
            }
        })
        .collect();
    (apps, nodes)
}
