//! `ClusterState`: the extender's incremental view of nodes, Spark pods, reservations and usage,
//! and the scheduling decisions made over it.
//!
//! The state is fed by events (`apply_*` / `delete_*`) and answers filter calls with
//! [`Decision`]s. Decisions update the state first (write-through) and return [`Effect`]s — API
//! writes the caller must carry out. Time is always passed in.

mod apps;
mod budgets;
mod config;
mod decision;
mod driver;
mod events;
mod executor;
mod explain;
mod feed;
mod fifo;
mod fifo_walk;
mod keys;
mod nodes;
mod pod_entry;
pub mod preemption;
mod preemption_guard;
mod queues;
mod reconcile;
mod shortfall;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use apps::{AppReservation, Slot};
pub use budgets::{Budget, BudgetKey, Covered};
pub use config::{FifoPolicy, PreemptionPolicy, SchedulerConfig};
pub use decision::{Decision, Effect, FilterOutcome};
pub use feed::{Fed, Feed, WatchEvent, Watched};
pub use keys::{AppKey, PodKey};
pub use nodes::{NodeEntry, NodeUsage};
pub use pod_entry::PodEntry;
pub use preemption_guard::{GuardedCandidates, guard_candidates};
pub use queues::{QueueUsage, share_text};
pub use shortfall::demand_object_name;

use apps::AppEntry;
use fifo::FifoPlans;
use nodes::NodeTable;

/// Timestamps as Kubernetes stores them.
pub type Timestamp = k8s_openapi::jiff::Timestamp;

/// The extender's view of the cluster.
#[derive(Debug)]
pub struct ClusterState {
    config: SchedulerConfig,
    nodes: NodeTable,
    pods: HashMap<PodKey, PodEntry>,
    apps: HashMap<AppKey, AppEntry>,
    /// Pending drivers by lane (instance group, and queue when there are queues), in queue
    /// order (priority, then age).
    pending_drivers: BTreeMap<fifo::Lane, BTreeSet<fifo::QueuePosition>>,
    fifo: FifoPlans,
    /// Nodes a driver placement allows, by placement signature, valid at a node shape epoch.
    eligible: HashMap<String, (u64, std::sync::Arc<driver::EligibleNodes>)>,
    /// Whether a gang could fit its nodes when empty, by (eligible set, demand), valid at a
    /// node shape epoch.
    exceeds_capacity: HashMap<(usize, crate::GangDemand), (u64, bool)>,
    /// Bumped whenever available resources or the pending-driver queue change; FIFO plans
    /// computed at an older epoch are stale.
    plan_epoch: u64,
    /// Gangs preempted recently (the victims-per-minute budget).
    preemption_log: preemption::PreemptionLog,
    /// PodDisruptionBudgets, which preemption respects.
    budgets: BTreeMap<BudgetKey, Budget>,
    /// The Queue objects and what each queue holds.
    queues: queues::QueueBook,
}

impl ClusterState {
    pub fn new(config: SchedulerConfig) -> Self {
        ClusterState {
            nodes: NodeTable::default(),
            pods: HashMap::new(),
            apps: HashMap::new(),
            pending_drivers: BTreeMap::new(),
            fifo: FifoPlans::default(),
            eligible: HashMap::new(),
            exceeds_capacity: HashMap::new(),
            plan_epoch: 0,
            preemption_log: preemption::PreemptionLog::default(),
            budgets: BTreeMap::new(),
            queues: queues::QueueBook::new(crate::queues::QueueIndex::new(
                config.default_queue.clone(),
                config.gpus.clone(),
            )),
            config,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeEntry> {
        self.nodes.get_by_name(name)
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.iter()
    }

    /// A tracked pod.
    pub fn pod(&self, key: &PodKey) -> Option<&PodEntry> {
        self.pods.get(key)
    }

    /// Number of tracked pods.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The reservation of an application, if it has one.
    pub fn reservation(&self, app: &AppKey) -> Option<&AppReservation> {
        self.apps.get(app).and_then(|a| a.reservation.as_ref())
    }

    /// Every reservation.
    pub fn reservations(&self) -> impl Iterator<Item = (&AppKey, &AppReservation)> {
        self.apps
            .iter()
            .filter_map(|(k, a)| a.reservation.as_ref().map(|r| (k, r)))
    }

    /// Soft reservations of an application: executor pod name → node.
    pub fn soft_reservations(&self, app: &AppKey) -> BTreeMap<String, String> {
        self.apps
            .get(app)
            .map(|a| {
                a.soft
                    .iter()
                    .map(|(pod, s)| (pod.clone(), s.node.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Total number of soft reservations.
    pub fn soft_reservation_count(&self) -> usize {
        self.apps.values().map(|a| a.soft.len()).sum()
    }

    /// Pending drivers per instance group (`""` for drivers without one).
    pub fn pending_driver_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (lane, q) in &self.pending_drivers {
            *counts.entry(lane.group.clone()).or_default() += q.len();
        }
        counts
    }
}

impl ClusterState {
    /// Builds what decisions reuse, so that the first one after a start costs what later ones
    /// do: with FIFO on, the plan of every instance group's pending drivers (and with it the
    /// eligible nodes of their placements). Call it once the caches are synced, before
    /// answering filter calls; it changes no decision, and the plans stay incremental after.
    pub fn prepare(&mut self, now: Timestamp) {
        if !self.config.fifo.enabled {
            return;
        }
        let lanes: Vec<fifo::Lane> = self.pending_drivers.keys().cloned().collect();
        for lane in lanes.iter().filter(|l| l.queue.is_none()) {
            self.walk_fifo_plan(lane, None, &[], now);
        }
        // Queues' lanes in their fair order, each after what those before it take.
        let mut groups: Vec<&str> = lanes
            .iter()
            .filter(|l| l.queue.is_some())
            .map(|l| l.group.as_str())
            .collect();
        groups.dedup();
        for group in groups {
            self.warm_fair_lanes(group, now);
        }
    }

    /// How many older drivers FIFO has simulated since the state was created (each simulation
    /// is a packing; revalidating a cached plan simulates none).
    pub fn fifo_simulations(&self) -> u64 {
        self.fifo.simulations
    }
}
