//! The explain API's wire types (`GET /api/v1/apps`, `/api/v1/apps/{ns}/{app-id}`,
//! `/api/v1/capacity`): what the extender answers and what the console and `kubectl sparkgang`
//! read. Resources are [`Resources`] (millicores, bytes, GPUs); times are RFC 3339 strings.

use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// The namespace and name of the Service in front of the explain API: `kubectl sparkgang`
/// reaches it through the API server's service proxy there.
pub const EXPLAIN_SERVICE_NAMESPACE: &str = "sparkgang-system";
pub const EXPLAIN_SERVICE_NAME: &str = "sparkgang-extender";
/// The Service's port name. kube-apiserver's proxy picks the endpoint port by name, so a proxy
/// path without it would find none for a named port.
pub const EXPLAIN_SERVICE_PORT: &str = "http-explain";

/// The version of these types; answers carry it as `apiVersion`.
pub const EXPLAIN_API_VERSION: &str = "sparkgang.io/explain/v1";

/// Where an application is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// The driver still carries the scheduling gate: its demand is being read.
    Gated,
    /// The driver waits for its gang to be placed.
    Pending,
    /// The gang has its reservation; the driver is not bound yet.
    Reserved,
    /// The driver is bound to its node.
    Running,
    /// The driver finished, or left with its executors.
    Completed,
    /// The driver is being evicted for a higher-priority gang.
    Preempted,
}

impl AppState {
    pub const ALL: [AppState; 6] = [
        AppState::Gated,
        AppState::Pending,
        AppState::Reserved,
        AppState::Running,
        AppState::Completed,
        AppState::Preempted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Gated => "gated",
            AppState::Pending => "pending",
            AppState::Reserved => "reserved",
            AppState::Running => "running",
            AppState::Completed => "completed",
            AppState::Preempted => "preempted",
        }
    }
}

/// An error answer of the explain API: `{"error": "..."}`, saying what was wrong and what is
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// What a gang asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemandView {
    pub driver: Resources,
    pub executor: Resources,
    pub min_executors: u32,
    pub max_executors: u32,
    /// The driver and the minimum of executors together: what placement reserves.
    pub total: Resources,
}

/// An application's executors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorCounts {
    /// Executor slots in the reservation.
    pub reserved: usize,
    /// Slots an executor pod is bound to.
    pub bound: usize,
    /// Soft reservations (dynamic allocation above the minimum).
    pub soft: usize,
}

/// One row of `GET /api/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    pub namespace: String,
    pub app_id: String,
    /// The driver pod's name, while it exists.
    pub driver: Option<String>,
    pub instance_group: Option<String>,
    /// Its queue (`docs/queues.md`), when it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    pub state: AppState,
    pub priority: i32,
    /// The driver's `creationTimestamp`.
    pub submitted: Option<String>,
    /// When this extender placed the gang (unknown for gangs placed before it started).
    pub placed: Option<String>,
    /// The gang demand; `None` while unknown (gated, or unreadable).
    pub demand: Option<DemandView>,
    pub executors: ExecutorCounts,
    /// 1-based place in its instance group's queue (its queue's, with queues), for pending and
    /// gated drivers.
    pub queue_position: Option<usize>,
    /// Drivers in that queue.
    pub queue_length: Option<usize>,
    /// Scheduled by sparkgang (`spec.schedulerName`); other Spark apps are listed but not
    /// explained.
    pub scheduled_by_sparkgang: bool,
}

/// The answer of `GET /api/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppList {
    pub api_version: String,
    pub items: Vec<AppSummary>,
}

/// A driver ahead in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedApp {
    pub app_id: String,
    /// `namespace/name` of the driver.
    pub driver: String,
    pub priority: i32,
    /// Seconds since the driver was created.
    pub pending_seconds: u64,
}

/// The driver at the head of the queue that holds this one back (FIFO).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    pub app_id: String,
    /// `namespace/name` of its driver.
    pub driver: String,
    pub priority: i32,
    /// It is ahead for its higher priority (otherwise: for its age).
    pub higher_priority: bool,
    pub pending_seconds: u64,
    /// Seconds a driver waits before FIFO holds others back for it (`enforceAfter`).
    pub enforce_after_seconds: u64,
    /// Why it does not fit.
    pub why: String,
}

/// Free room in one zone of the eligible nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneRoom {
    pub zone: String,
    /// Eligible nodes in the zone that take executors (ready, not cordoned).
    pub nodes: usize,
    /// Their free resources, after the drivers ahead in the queue take theirs.
    pub free: Resources,
    /// How many of the gang's executors fit there, node by node.
    pub executors_fit: u64,
    /// The driver fits on at least one of them.
    pub driver_fits: bool,
}

/// How far a gang falls short of the free capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shortfall {
    pub requested_executors: usize,
    /// The most executors that fit together with the driver (0 when the driver fits nowhere).
    pub placeable_executors: usize,
    pub driver_fits: bool,
    /// The gang's total (driver and minimum executors).
    pub needs: Resources,
    /// Free on the eligible nodes, after the drivers ahead take theirs.
    pub free: Resources,
    /// `needs` − `free` where positive: zero everywhere when the room exists in total but
    /// not in the shapes the gang needs.
    pub short: Resources,
    /// What drivers ahead in the queue that fit take first.
    pub taken_by_drivers_ahead: Resources,
    pub zones: Vec<ZoneRoom>,
}

/// Why a gang can never fit its nodes, even empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NeverFits {
    /// Nodes known (present) in the cluster.
    pub nodes: usize,
    /// Of them, the nodes whose labels the driver's nodeSelector and required affinity accept.
    pub matching_selector: usize,
    /// Of those, the nodes whose taints the driver tolerates: the eligible nodes.
    pub eligible: usize,
    /// Per-resource maximum of the eligible nodes' allocatable.
    pub largest_node: Resources,
    /// The eligible nodes' allocatable in all.
    pub total_allocatable: Resources,
    pub needs: Resources,
    /// In words: selector, taints, or sizes.
    pub why: String,
}

/// What holds a gang back in its queue (`docs/queues.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueHold {
    pub queue: String,
    /// The resource at its limit (`cpu`, `memory`, `gpus`), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// What the queue (or its cohort) holds of it, what the gang asks, and the limit, as
    /// canonical quantities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The gang alone is over the queue's `max`: it can never be placed for this queue.
    #[serde(default)]
    pub never: bool,
    /// 1-based place of the driver in its queue, and how many drivers wait in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_length: Option<usize>,
}

/// Why an application is where it is, as data. `kind` names the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Reason {
    /// The driver's demand is still being read from its `spark.properties`.
    Gated {
        /// Seconds since the driver was created.
        for_seconds: u64,
    },
    /// The demand cannot be known (unreadable annotations or Spark conf).
    UnknownDemand { why: String },
    /// Drivers ahead in the queue must be placed first.
    WaitingBehind {
        blocker: Blocker,
        /// Every driver ahead of it in the queue, first first (at most 20).
        ahead: Vec<QueuedApp>,
        /// How many drivers are ahead in all.
        ahead_count: usize,
    },
    /// The gang does not fit the free capacity now.
    Capacity { shortfall: Shortfall },
    /// The gang could not fit its nodes even if they were empty.
    NeverFits { never_fits: NeverFits },
    /// Its queue would go over its `max` (or the gang alone is over it: `never`).
    QueueAtMax { hold: QueueHold },
    /// Its queue is over its guarantee and its cohort has not that much unused guarantee to
    /// lend now.
    QueueCohortFull { hold: QueueHold },
    /// Its queue does not exist, or its spec is not valid (`why`).
    QueueUnusable { hold: QueueHold, why: String },
    /// The gang fits now: kube-scheduler places it at its next attempt.
    Fits,
    /// Its room is held while pods evicted for it leave.
    Preempting { node: String },
    /// Placed: the reservation holds its places.
    Placed { driver_node: String },
    /// The driver has finished.
    Completed,
    /// The driver is being evicted for a higher-priority gang.
    Preempted,
    /// The driver is not scheduled by sparkgang (another `schedulerName`).
    NotScheduledBySparkgang,
}

impl Reason {
    /// The `kind`, as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Gated { .. } => "gated",
            Reason::UnknownDemand { .. } => "unknown-demand",
            Reason::WaitingBehind { .. } => "waiting-behind",
            Reason::Capacity { .. } => "capacity",
            Reason::NeverFits { .. } => "never-fits",
            Reason::QueueAtMax { .. } => "queue-at-max",
            Reason::QueueCohortFull { .. } => "queue-cohort-full",
            Reason::QueueUnusable { .. } => "queue-unusable",
            Reason::Fits => "fits",
            Reason::Preempting { .. } => "preempting",
            Reason::Placed { .. } => "placed",
            Reason::Completed => "completed",
            Reason::Preempted => "preempted",
            Reason::NotScheduledBySparkgang => "not-scheduled-by-sparkgang",
        }
    }
}

/// The last filter call kube-scheduler made for the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastDecision {
    /// The outcome label (`failure-fit`, `success`, ...), as in the decision metrics.
    pub outcome: String,
    pub message: String,
    pub at: String,
}

/// One reserved place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    /// `driver`, `executor-1`, ...
    pub name: String,
    pub node: String,
    pub resources: Resources,
    /// The pod bound to it.
    pub pod: Option<String>,
}

/// The answer of `GET /api/v1/apps/{namespace}/{app-id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppExplanation {
    pub api_version: String,
    pub app: AppSummary,
    /// The reason in words: the decision code's own message.
    pub message: String,
    /// The reason as data.
    pub reason: Reason,
    pub last_decision: Option<LastDecision>,
    /// Reservation slots, when placed.
    pub slots: Vec<SlotView>,
    /// Soft reservations: executor pod → node.
    pub soft: Vec<SlotView>,
}

/// One node's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    pub name: String,
    pub zone: String,
    pub ready: bool,
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// Bound pods that no reservation accounts for.
    pub allocated: Resources,
    /// Reservation slots and soft reservations.
    pub reserved: Resources,
    /// What is left (negative parts as 0).
    pub free: Resources,
}

/// One instance group's capacity and queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupCapacity {
    /// The instance group (`""`: nodes without the instance-group label).
    pub name: String,
    pub nodes: usize,
    pub allocatable: Resources,
    pub allocated: Resources,
    pub reserved: Resources,
    /// Free on nodes that take pods (ready, not cordoned).
    pub free: Resources,
    /// (allocated + reserved) ÷ allocatable, per resource: cpu and memory, 0 to 1.
    pub cpu_used: f64,
    pub memory_used: f64,
    /// Pending drivers in queue order.
    pub queue: Vec<QueuedApp>,
    /// Per node, when asked for (`/api/v1/capacity/{group}`).
    pub node_list: Option<Vec<NodeCapacity>>,
}

/// The answer of `GET /api/v1/capacity[/{group}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityList {
    pub api_version: String,
    pub groups: Vec<GroupCapacity>,
}
