//! `PackingFailure`: why a gang does not fit, and by how much.

use std::fmt;

use crate::resources::Resources;

/// One of the resources sparkgang packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceDimension {
    Cpu,
    Memory,
    Gpus,
}

impl ResourceDimension {
    pub const ALL: [ResourceDimension; 3] = [
        ResourceDimension::Cpu,
        ResourceDimension::Memory,
        ResourceDimension::Gpus,
    ];

    /// This dimension of `r`.
    pub fn of(self, r: &Resources) -> i64 {
        match self {
            ResourceDimension::Cpu => r.cpu_milli,
            ResourceDimension::Memory => r.memory_bytes,
            ResourceDimension::Gpus => r.gpus,
        }
    }
}

impl fmt::Display for ResourceDimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceDimension::Cpu => "cpu",
            ResourceDimension::Memory => "memory",
            ResourceDimension::Gpus => "GPUs",
        })
    }
}

/// Why no packing was found. The `Display` text is meant for the scheduler's failure message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackingFailure {
    /// The driver had no candidate node at all.
    #[error("no candidate node for the driver")]
    NoDriverCandidates,

    /// The driver alone fits on none of its candidates.
    #[error(
        "the driver ({driver}) fits on none of the {candidates} candidate nodes{}; most free on any candidate: {most_available}",
        short_text(short_in, " (not enough ", " on any)", "")
    )]
    DriverDoesNotFit {
        /// What the driver requests.
        driver: Resources,
        /// How many driver candidates were considered.
        candidates: usize,
        /// The per-dimension maximum of the candidates' available resources.
        most_available: Resources,
        /// The dimensions in which no candidate alone has enough; empty when every dimension
        /// is available somewhere but never all on the same node.
        short_in: Vec<ResourceDimension>,
    },

    /// The driver fits, but never together with all executors.
    #[error(
        "the driver fits, but at most {placeable} of {requested} executors ({executor} each) fit with it (driver on {driver_node}{}){}",
        zone.as_ref().map(|z| format!(" in zone {z}")).unwrap_or_default(),
        short_text(short_in, ": not enough ", "", ": enough of each resource in total, but not together on the same nodes")
    )]
    ExecutorsDoNotFit {
        requested: usize,
        /// The most executors that fit with the driver on any of its candidates.
        placeable: usize,
        /// What one executor requests.
        executor: Resources,
        /// The driver node that came closest (first in order among equals).
        driver_node: String,
        /// For single-zone algorithms, the zone that came closest.
        zone: Option<String>,
        /// With the driver on `driver_node`, the dimensions in which the executor candidates
        /// cannot hold `requested` executors even counting that dimension alone.
        short_in: Vec<ResourceDimension>,
    },

    /// Single-zone packing of a gang without executors: the driver fits only in zones that
    /// have no executor candidates, where the application could never get executors.
    #[error(
        "the driver fits only in zones without executor candidates ({}); single-zone packing keeps an application's executors in its driver's zone",
        zones.join(", ")
    )]
    OnlyZonesWithoutExecutorCandidates {
        /// The zones, in driver priority order.
        zones: Vec<String>,
    },
}

impl PackingFailure {
    /// Executors that did not fit (0 when the driver itself did not fit).
    pub fn missing_executors(&self) -> usize {
        match self {
            PackingFailure::ExecutorsDoNotFit {
                requested,
                placeable,
                ..
            } => requested.saturating_sub(*placeable),
            _ => 0,
        }
    }

    /// Roughly how much more room would be needed: for executors, the missing executors'
    /// requests; for the driver, what it requests beyond the most any candidate offers, per
    /// dimension.
    pub fn missing_resources(&self) -> Resources {
        match self {
            PackingFailure::NoDriverCandidates
            | PackingFailure::OnlyZonesWithoutExecutorCandidates { .. } => Resources::ZERO,
            PackingFailure::DriverDoesNotFit {
                driver,
                most_available,
                ..
            } => Resources::new(
                (driver.cpu_milli - most_available.cpu_milli).max(0),
                (driver.memory_bytes - most_available.memory_bytes).max(0),
                (driver.gpus - most_available.gpus).max(0),
            ),
            PackingFailure::ExecutorsDoNotFit { executor, .. } => {
                executor.times(i64::try_from(self.missing_executors()).unwrap_or(i64::MAX))
            }
        }
    }
}

fn short_text(dims: &[ResourceDimension], prefix: &str, suffix: &str, when_empty: &str) -> String {
    if dims.is_empty() {
        return when_empty.to_owned();
    }
    let names: Vec<String> = dims.iter().map(ToString::to_string).collect();
    let listed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    };
    format!("{prefix}{listed}{suffix}")
}
