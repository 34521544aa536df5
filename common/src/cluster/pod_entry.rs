//! `PodEntry`: what the state keeps of one pod (small: the state holds every pod of the cluster).

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::demand::GangDemand;
use crate::pods::{self, SparkRole};
use crate::resources::{Resources, pod_requests};

use super::apps::AppKey;
use super::config::SchedulerConfig;
use super::nodes::NodeIdx;
use super::{Timestamp, driver};

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(pod: &Pod) -> Option<Self> {
        Some(PodKey::new(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref()?,
        ))
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

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
    /// Scheduled by our scheduler (`spec.schedulerName`).
    pub ours: bool,
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
                demand: driver::driver_demand(pod, requests, config),
                gated: spec
                    .scheduling_gates
                    .as_ref()
                    .is_some_and(|g| !g.is_empty()),
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
            ours,
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

    /// Holds resources on a node: bound and not finished.
    pub fn is_active_on_node(&self) -> bool {
        self.node.is_some() && !self.finished
    }
}
