//! `Queue`: a team's share of an instance group — guaranteed and maximum resources, a weight
//! for fair sharing, an optional parent whose queues lend each other unused guarantee, and which
//! applications belong to it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label on a driver naming its queue; plain spark-submit sets it with
/// `--conf spark.kubernetes.driver.label.sparkgang.io/queue=NAME`.
pub const QUEUE_LABEL: &str = "sparkgang.io/queue";

/// A queue of one instance group. Cluster-scoped: a queue may take applications of several
/// namespaces. Without any Queue object, sparkgang schedules as before (instance groups only).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sparkgang.io",
    version = "v1",
    kind = "Queue",
    plural = "queues",
    shortname = "sq",
    status = "QueueStatus",
    printcolumn = r#"{"name":"Instance Group","type":"string","jsonPath":".spec.instanceGroup"}"#,
    printcolumn = r#"{"name":"Parent","type":"string","jsonPath":".spec.parent"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".spec.weight"}"#,
    printcolumn = r#"{"name":"CPU","type":"string","jsonPath":".status.allocated.cpu"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".status.allocated.memory"}"#,
    printcolumn = r#"{"name":"Share","type":"string","jsonPath":".status.dominantShare"}"#,
    printcolumn = r#"{"name":"Pending","type":"integer","jsonPath":".status.pendingApplications"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.runningApplications"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct QueueSpec {
    /// The instance group whose nodes this queue shares.
    pub instance_group: String,
    /// Resources the queue is entitled to (`cpu`, `memory`, a configured GPU name); lent to the
    /// other queues of its parent while unused. Absent: nothing guaranteed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guaranteed: BTreeMap<String, String>,
    /// The most the queue may hold, borrowing included. Absent: no limit but the cohort's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, String>,
    /// Fair-share weight (≥ 1): a queue of weight 2 gets twice the share of one of weight 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// The queues with the same parent form a cohort that lends and borrows unused guarantee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Applications of these namespaces belong to the queue (unless their driver's
    /// `sparkgang.io/queue` label names another).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

fn one() -> u32 {
    1
}

/// Written by the extender's leader.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// What the queue's placed gangs hold (canonical quantities).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocated: BTreeMap<String, String>,
    /// What its pending gangs ask for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, String>,
    /// The largest of allocated ÷ guaranteed over the resources, divided by the weight, as a
    /// decimal (`"0.50"`); `"Inf"` when it holds what it has no guarantee for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_share: Option<String>,
    #[serde(default)]
    pub pending_applications: u32,
    #[serde(default)]
    pub running_applications: u32,
    /// Why the spec cannot be used, when it cannot (the queue then admits nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
