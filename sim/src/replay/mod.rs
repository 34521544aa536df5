//! What-if replay (`sparkgang-sim replay`): the applications of a Spark History Server
//! directory submitted again, at their original pace, to a cluster of real nodes, once per
//! compared sparkgang configuration and once with kube-scheduler alone, on the virtual clock.
//! docs/replay.md.

mod html;
mod report;
mod run;
pub mod synthetic;
mod workload;

use std::time::Duration;

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

/// Replays `logs` on `nodes` with each configuration in turn; `progress` hears, per
/// configuration, how many applications have been submitted of how many.
pub fn replay(
    source: &str,
    logs: &EventLogs,
    nodes: &[ClusterNode],
    configurations: &[Configuration],
    horizon: Option<Duration>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<ReplayReport, SimError> {
    let (arrivals, assumed) = arrivals(&logs.apps);
    let horizon = horizon.unwrap_or_else(|| default_horizon(&arrivals));
    let mut out = Vec::new();
    for c in configurations {
        out.push(run_configuration(
            c,
            &arrivals,
            nodes,
            horizon,
            &mut |done, total| progress(&c.name, done, total),
        )?);
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
