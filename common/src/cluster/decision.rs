//! What a filter call decides: the outcome, the node, the message, and the writes to make.

use super::keys::{AppKey, PodKey};

/// How a filter call ended; the values are the metric labels (palantir's outcome names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterOutcome {
    /// A driver got a new reservation.
    Success,
    /// The pod already had its place (driver with a reservation, executor bound to a slot).
    SuccessAlreadyBound,
    /// An executor took a free slot on one of the candidates.
    SuccessReservedSlot,
    /// An executor took a free slot that was moved to a candidate node.
    SuccessRescheduled,
    /// An executor above the minimum got a soft reservation.
    SuccessExtraExecutor,
    /// The gang does not fit the free capacity right now.
    FailureFit,
    /// The gang could not fit its instance group even if it were empty.
    FailureExceedsCapacity,
    /// An older driver of the same instance group must be placed first.
    FailureEarlierDriver,
    /// No free slot for this executor and no room for one more.
    FailureUnbound,
    /// The pod is not a Spark driver or executor.
    FailureNonSparkPod,
    /// The pod's demand or application is unknown.
    FailureUnknownDemand,
    /// The reserved node is not among kube-scheduler's candidates.
    FailureReservedNodeUnavailable,
    /// An executor whose driver has no reservation (not placed yet, or not by sparkgang).
    FailureDriverNotPlaced,
    /// Lower-priority pods are being evicted for this driver's gang; its places are held.
    FailurePreempting,
    /// The gang's queue holds it back: at its max, its cohort full, or no usable queue.
    FailureQueue,
}

impl FilterOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOutcome::Success => "success",
            FilterOutcome::SuccessAlreadyBound => "success-already-bound",
            FilterOutcome::SuccessReservedSlot => "success-reserved-slot",
            FilterOutcome::SuccessRescheduled => "success-rescheduled",
            FilterOutcome::SuccessExtraExecutor => "success-scheduled-extra-executor",
            FilterOutcome::FailureFit => "failure-fit",
            FilterOutcome::FailureExceedsCapacity => "failure-exceeds-capacity",
            FilterOutcome::FailureEarlierDriver => "failure-earlier-driver",
            FilterOutcome::FailureUnbound => "failure-unbound",
            FilterOutcome::FailureNonSparkPod => "failure-non-spark-pod",
            FilterOutcome::FailureUnknownDemand => "failure-unknown-demand",
            FilterOutcome::FailureReservedNodeUnavailable => "failure-reserved-node-unavailable",
            FilterOutcome::FailureDriverNotPlaced => "failure-driver-not-placed",
            FilterOutcome::FailurePreempting => "failure-preempting",
            FilterOutcome::FailureQueue => "failure-queue",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(
            self,
            FilterOutcome::Success
                | FilterOutcome::SuccessAlreadyBound
                | FilterOutcome::SuccessReservedSlot
                | FilterOutcome::SuccessRescheduled
                | FilterOutcome::SuccessExtraExecutor
        )
    }

    /// Every outcome, for metric pre-registration and docs.
    pub const ALL: [FilterOutcome; 15] = [
        FilterOutcome::Success,
        FilterOutcome::SuccessAlreadyBound,
        FilterOutcome::SuccessReservedSlot,
        FilterOutcome::SuccessRescheduled,
        FilterOutcome::SuccessExtraExecutor,
        FilterOutcome::FailureFit,
        FilterOutcome::FailureExceedsCapacity,
        FilterOutcome::FailureEarlierDriver,
        FilterOutcome::FailureUnbound,
        FilterOutcome::FailureNonSparkPod,
        FilterOutcome::FailureUnknownDemand,
        FilterOutcome::FailureReservedNodeUnavailable,
        FilterOutcome::FailureDriverNotPlaced,
        FilterOutcome::FailurePreempting,
        FilterOutcome::FailureQueue,
    ];
}

/// A write the caller must carry out after a decision or event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Make the API object of this application's reservation match memory: create or replace
    /// it with [`super::ClusterState::reservation_object`], or delete it when that is `None`.
    SyncReservation(AppKey),
    /// Publish (or refresh) a `Demand` for this pending pod: it does not fit.
    EnsureDemand(PodKey),
    /// The pod found room: its `Demand`, if any, can go.
    DeleteDemand(PodKey),
    /// Tell the user (pod condition `PodExceedsClusterCapacity` and a Warning event) that this
    /// driver's gang cannot fit its nodes even when they are empty.
    ReportExceedsCapacity { pod: PodKey, message: String },
    /// Evict `pod` through the Eviction API, for the gang of driver `preemptor`: set its
    /// `DisruptionTarget` condition (reason `PreemptionByScheduler`, `message`), evict, and
    /// publish a `Preempted` event on it.
    Evict {
        pod: PodKey,
        preemptor: PodKey,
        message: String,
    },
    /// Tell the user (a Normal event on the driver, a log line, the preemption metrics) what
    /// preemption decided for this pending driver: `victims` whole gangs and `soft` executors
    /// chosen, or (both 0) why nothing can be evicted.
    ReportPreemption {
        pod: PodKey,
        message: String,
        dry_run: bool,
        gangs: usize,
        soft: usize,
        priority: i32,
    },
}

/// The answer to one filter call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: FilterOutcome,
    /// The chosen node on success (always one of the candidates).
    pub node: Option<String>,
    /// Why, in one sentence; the failure message shown in `FailedScheduling` events.
    pub message: String,
    pub effects: Vec<Effect>,
}

impl Decision {
    pub fn success(outcome: FilterOutcome, node: impl Into<String>, effects: Vec<Effect>) -> Self {
        let node = node.into();
        Decision {
            outcome,
            message: format!("placed on {node}"),
            node: Some(node),
            effects,
        }
    }

    pub fn failure(outcome: FilterOutcome, message: impl Into<String>) -> Self {
        Decision {
            outcome,
            node: None,
            message: message.into(),
            effects: Vec::new(),
        }
    }

    pub fn with_effects(mut self, effects: Vec<Effect>) -> Self {
        self.effects.extend(effects);
        self
    }
}
