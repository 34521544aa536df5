//! `PodEntry`: what the state keeps of one pod (small: the state holds every pod of the cluster).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::demand_decision::{DemandInputs, DemandRules, decide_gang_demand};
use crate::gang_demand::GangDemand;
use crate::pods::{self, SparkRole};
use crate::resources::{Resources, pod_requests};

use super::Timestamp;
use super::config::SchedulerConfig;
use super::keys::{AppKey, PodKey};
use super::nodes::NodeIdx;

static NO_ANNOTATIONS: BTreeMap<String, String> = BTreeMap::new();

/// What a driver brings beyond any pod: where it may run and what its gang needs.
#[derive(Debug, Clone)]
pub struct DriverInfo {
    /// `nodeSelector`, `affinity` and `tolerations` of the driver; they decide the nodes of
    /// the whole gang.
    pub placement: PodSpec,
    /// `placement` as a string: drivers with the same one share their eligible nodes.
    pub placement_signature: String,
    /// The gang demand, or why it is unknown.
    pub demand: Result<GangDemand, String>,
    /// Still carries scheduling gates: not yet schedulable, not in the FIFO queue.
    pub gated: bool,
    /// Its queue (`docs/queues.md`): resolved by the state when the pod is applied.
    pub queue: Option<String>,
}

/// One pod.
#[derive(Debug, Clone)]
pub struct PodEntry {
    pub key: PodKey,
    pub uid: String,
    pub role: Option<SparkRole>,
    pub app: Option<AppKey>,
    pub node: Option<String>,
    pub requests: Resources,
    pub finished: bool,
    pub deleting: bool,
    pub created: Timestamp,
    /// `status.startTime`: when the kubelet accepted it (`None` before).
    pub started: Option<Timestamp>,
    /// `spec.priority`, as the API server resolved it from the pod's `PriorityClass` (0 when
    /// absent, as Kubernetes without a global default class). A driver's is its application's.
    pub priority: i32,
    /// Scheduled by our scheduler (`spec.schedulerName`).
    pub ours: bool,
    /// `metadata.labels`, for the PodDisruptionBudgets that select the pod.
    pub labels: BTreeMap<String, String>,
    pub instance_group: Option<String>,
    pub driver: Option<Box<DriverInfo>>,
    /// What this pod currently adds to its node's `pods` usage (node, amount, foreign).
    pub(super) counted: Option<(NodeIdx, Resources, bool)>,
}

impl PodEntry {
    pub fn from_pod(pod: &Pod, config: &SchedulerConfig) -> Option<PodEntry> {
        let key = PodKey::of(pod)?;
        let empty = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty);
        let role = pods::spark_role(pod);
        let app = pods::app_id(pod).map(|id| AppKey::new(&key.namespace, id));
        let ours = pods::scheduler_name(pod) == config.scheduler_name;
        let requests = pod_requests(spec, &config.gpus).unwrap_or_default();
        let driver = (role == Some(SparkRole::Driver)).then(|| {
            let placement = PodSpec {
                node_selector: spec.node_selector.clone(),
                affinity: spec.affinity.clone(),
                tolerations: spec.tolerations.clone(),
                ..PodSpec::default()
            };
            Box::new(DriverInfo {
                placement_signature: serde_json::to_string(&placement).unwrap_or_default(),
                placement,
                demand: decide_gang_demand(
                    &DemandInputs {
                        annotations: pod.metadata.annotations.as_ref().unwrap_or(&NO_ANNOTATIONS),
                        driver_requests: Some(requests),
                        spark_conf: None,
                    },
                    &DemandRules {
                        gpus: &config.gpus,
                        default: config.default_demand,
                    },
                )
                .map(|d| d.demand)
                .map_err(|e| e.to_string()),
                gated: spec
                    .scheduling_gates
                    .as_ref()
                    .is_some_and(|g| !g.is_empty()),
                queue: None,
            })
        });
        Some(PodEntry {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            role,
            app,
            node: pods::node_name(pod).map(str::to_owned),
            requests,
            finished: pods::is_finished(pod),
            deleting: pods::is_deleting(pod),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            started: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0),
            priority: spec.priority.unwrap_or(0),
            ours,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            instance_group: pods::instance_group(spec, &config.instance_group_label)
                .map(str::to_owned),
            driver,
            counted: None,
            key,
        })
    }

    /// A driver of ours that still waits for a node (FIFO queue member), gated or not.
    pub fn is_pending_driver(&self) -> bool {
        self.ours
            && self.node.is_none()
            && !self.finished
            && !self.deleting
            && self.driver.is_some()
    }

    /// Its place in its instance group's queue (meaningful for pending drivers).
    pub(super) fn queue_position(&self) -> super::fifo::QueuePosition {
        super::fifo::QueuePosition::new(self.priority, self.created, self.key.clone())
    }

    /// The lane of its queue position: its instance group and queue.
    pub(super) fn lane(&self) -> super::fifo::Lane {
        super::fifo::Lane {
            group: self.instance_group.clone().unwrap_or_default(),
            queue: self.driver.as_ref().and_then(|d| d.queue.clone()),
        }
    }

    /// Holds resources on a node: bound and not finished.
    pub fn is_active_on_node(&self) -> bool {
        self.node.is_some() && !self.finished
    }
}
