//! What-if replay (`sparkgang-sim replay`): the applications of a Spark History Server
//! directory submitted again, at their original pace, to a cluster of real nodes, once per
//! compared sparkgang configuration and once with kube-scheduler alone, on the virtual clock.
//! docs/replay.md.

mod html;
mod report;
mod run;
pub mod synthetic;
mod workload;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use html::render_html;
pub use report::{
    AppOutcome, ConfigurationReport, ExecutorCount, Percentiles, ReplayReport, Summary,
    UtilisationPoint,
};
pub use run::run_configuration;
pub use workload::{Arrival, DEFAULT_NAMESPACE, DEFAULT_RUNTIME, arrivals, pod_name_prefix};

use crate::eventlog::EventLogs;
use crate::eventlog::nodes::ClusterNode;
use crate::harness::SimError;

/// One way of scheduling the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// As reports name it: `sparkgang`, `binpack=tightly-pack`, `kube-scheduler alone`.
    pub name: String,
    /// Extender config overrides on top of `deploy/`'s (`None`: no webhook and no extender,
    /// drivers placed alone by kube-scheduler: the starvation baseline).
    pub overrides: Option<serde_yaml::Value>,
}

impl Configuration {
    /// The baseline every replay includes.
    pub fn kube_scheduler_alone() -> Configuration {
        Configuration {
            name: "kube-scheduler alone".to_owned(),
            overrides: None,
        }
    }
}

/// How long a replay may run on the virtual clock when not told: the span of the submissions,
/// plus twice the longest application, plus ten minutes.
pub fn default_horizon(arrivals: &[Arrival]) -> Duration {
    let span = arrivals.iter().map(|a| a.at).max().unwrap_or_default();
    let longest = arrivals
        .iter()
        .map(|a| a.script.runtime)
        .max()
        .unwrap_or_default();
    span + longest * 2 + Duration::from_secs(600)
}

/// What a replay tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum ReplayEvent<'a> {
    /// `done` of `total` applications have been submitted under `configuration`.
    Submitted {
        configuration: &'a str,
        done: usize,
        total: usize,
    },
    /// `configuration` has been replayed in `wall` of wall-clock time.
    Finished {
        configuration: &'a str,
        wall: Duration,
    },
}

/// Replays `logs` on `nodes` with each configuration, `jobs` configurations at a time (each
/// on its own thread: runs share nothing but their input, and each is deterministic, so the
/// report does not depend on `jobs`); `progress` hears how each goes.
pub fn replay(
    source: &str,
    logs: &EventLogs,
    nodes: &[ClusterNode],
    configurations: &[Configuration],
    horizon: Option<Duration>,
    jobs: usize,
    progress: &(dyn Fn(ReplayEvent<'_>) + Sync),
) -> Result<ReplayReport, SimError> {
    let (arrivals, assumed) = arrivals(&logs.apps);
    let horizon = horizon.unwrap_or_else(|| default_horizon(&arrivals));
    let results: Vec<Mutex<Option<Result<ConfigurationReport, SimError>>>> =
        configurations.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, configurations.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = configurations.get(i) else {
                        break;
                    };
                    let started = Instant::now();
                    let result =
                        run_configuration(c, &arrivals, nodes, horizon, &mut |done, total| {
                            progress(ReplayEvent::Submitted {
                                configuration: &c.name,
                                done,
                                total,
                            })
                        });
                    progress(ReplayEvent::Finished {
                        configuration: &c.name,
                        wall: started.elapsed(),
                    });
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let mut out = Vec::new();
    for slot in results {
        let result =
            slot.into_inner().ok().flatten().ok_or_else(|| {
                SimError::Replay("a replay thread stopped before its report".into())
            })?;
        out.push(result?);
    }
    Ok(ReplayReport {
        eventlogs: source.to_owned(),
        nodes: nodes.len(),
        applications: arrivals.len(),
        horizon_seconds: horizon.as_secs_f64(),
        skipped: logs.skipped.clone(),
        assumed,
        configurations: out,
    })
}
