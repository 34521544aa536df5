//! FIFO per instance group: a younger driver waits while an older, enforced driver cannot fit.
//!
//! The queue of pending drivers is simulated in creation order against the current free
//! capacity: each older driver that fits takes its (simulated) place, so the drivers behind it
//! see less; one that does not fit takes nothing. The simulation is cached per instance group
//! and only recomputed when capacity or the queue changed, and only as far as the driver being
//! decided (palantir re-packed every older driver on every call, and under-counted what each
//! took: its quirks 1 and 2, both fixed here).

use std::collections::HashMap;

use crate::resources::Resources;

use super::Timestamp;
use super::keys::PodKey;
use super::nodes::NodeIdx;

/// The simulated outcome of one older driver.
#[derive(Debug, Clone)]
pub(super) struct PlannedDriver {
    pub key: PodKey,
    pub created: Timestamp,
    pub app_id: String,
    /// What it would take per node if it fits; `None` if it does not fit now.
    pub takes: Option<Vec<(NodeIdx, Resources)>>,
    /// Why it does not fit (empty when it fits).
    pub why: String,
    /// The state epoch it was simulated at.
    pub computed_at: u64,
    /// It held a reservation when simulated (and so took nothing more).
    pub reserved: bool,
    /// Its gang could not fit its nodes even empty (it takes nothing and blocks nobody), as
    /// of node shape epoch `shape_epoch`.
    pub never_fits: bool,
    pub shape_epoch: u64,
}

/// The simulated queue of one instance group.
#[derive(Debug, Clone, Default)]
pub(super) struct FifoPlan {
    /// Simulated drivers, oldest first (a prefix of the queue, as last seen).
    pub drivers: Vec<PlannedDriver>,
}

/// Cached plans by instance group.
#[derive(Debug, Default)]
pub(super) struct FifoPlans {
    pub plans: HashMap<String, FifoPlan>,
}

/// What FIFO says about a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FifoVerdict {
    /// Go ahead; older drivers that fit will take these resources first.
    Clear(Vec<(NodeIdx, Resources)>),
    /// An older driver must be placed first.
    Blocked(String),
}
