//! `SchedulerConfig`: the knobs of the scheduling core, in domain terms.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::binpack::{BinpackAlgorithm, LabelPriority};
use crate::gang_demand::GangDemand;
use crate::resources::GpuResourceNames;

/// How the scheduling core behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// The scheduler name pods must carry to be ours (`spark-scheduler`).
    pub scheduler_name: String,
    /// Node and pod label naming the instance group.
    pub instance_group_label: String,
    pub binpack: BinpackAlgorithm,
    pub fifo: FifoPolicy,
    pub preemption: PreemptionPolicy,
    pub gpus: GpuResourceNames,
    /// Used for drivers whose demand is known neither from their conf nor annotations.
    pub default_demand: Option<GangDemand>,
    pub driver_node_priority: Option<LabelPriority>,
    pub executor_node_priority: Option<LabelPriority>,
    /// With a single-AZ algorithm, keep executors above the minimum in the app's zone.
    pub dynamic_executors_in_same_zone: bool,
    /// The queue of applications whose driver names none and whose namespace no queue lists
    /// (`docs/queues.md`); `None`: such applications are outside queues.
    pub default_queue: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "spark-scheduler".to_owned(),
            instance_group_label: "instance-group".to_owned(),
            binpack: BinpackAlgorithm::TightlyPack,
            fifo: FifoPolicy::default(),
            preemption: PreemptionPolicy::default(),
            gpus: GpuResourceNames::default(),
            default_demand: None,
            driver_node_priority: None,
            executor_node_priority: None,
            dynamic_executors_in_same_zone: false,
            default_queue: None,
        }
    }
}

/// First-in-first-out admission of drivers within an instance group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FifoPolicy {
    pub enabled: bool,
    /// An older driver that does not fit blocks younger ones only once it is this old.
    pub enforce_after: Duration,
    /// Per instance group override of `enforce_after`.
    pub enforce_after_by_group: BTreeMap<String, Duration>,
}

impl FifoPolicy {
    /// The enforcement age for drivers of `group`.
    pub fn enforce_after(&self, group: &str) -> Duration {
        self.enforce_after_by_group
            .get(group)
            .copied()
            .unwrap_or(self.enforce_after)
    }
}

/// When a pending gang may evict lower-priority work (`docs/priorities.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreemptionPolicy {
    pub enabled: bool,
    /// A gang running for less than this is never a victim (soft reservations may be).
    pub min_runtime: Duration,
    /// At most this many whole gangs are preempted in any minute.
    pub max_victims_per_minute: usize,
    /// Decide and report, evict nothing.
    pub dry_run: bool,
}

impl Default for PreemptionPolicy {
    fn default() -> Self {
        PreemptionPolicy {
            enabled: false,
            min_runtime: Duration::ZERO,
            max_victims_per_minute: 10,
            dry_run: false,
        }
    }
}
