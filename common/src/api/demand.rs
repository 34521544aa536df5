//! `Demand`: capacity a pending Spark application needs, published for cluster autoscalers.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Capacity that a pending driver (with its minimum executors) or executor could not find.
/// Named `demand-<pod>` and owned by that pod; deleted once the pod is placed.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "sparkgang.io",
    version = "v1",
    kind = "Demand",
    plural = "demands",
    shortname = "dem",
    namespaced,
    status = "DemandStatus",
    printcolumn = r#"{"name":"Instance Group","type":"string","jsonPath":".spec.instanceGroup"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DemandSpec {
    /// The instance group whose nodes should grow.
    pub instance_group: String,
    /// Groups of identical pods that need room.
    pub units: Vec<DemandUnit>,
    /// When true, every unit must land in one zone.
    #[serde(default)]
    pub enforce_single_zone_scheduling: bool,
    /// The zone the units must land in, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `count` pods of the same size.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemandUnit {
    /// Canonical quantities: `cpu`, `memory` and the GPU resource name.
    pub resources: BTreeMap<String, String>,
    pub count: u32,
    /// Which pods this unit stands for, so an autoscaler can de-duplicate.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_names_by_namespace: BTreeMap<String, Vec<String>>,
}

/// Written by the autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemandStatus {
    /// `pending`, `fulfilled` or `cannot-fulfill`.
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilled_zone: Option<String>,
}
