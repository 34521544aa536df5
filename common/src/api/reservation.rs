//! `ResourceReservation`: the driver and executor slots held for one Spark application.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the driver's slot in `spec.reservations`.
pub const DRIVER_SLOT: &str = "driver";

/// Name of the `n`th executor slot (1-based), as palantir named them.
pub fn executor_slot_name(n: usize) -> String {
    format!("executor-{n}")
}

/// The slots reserved for one application; the object is named after the application id and
/// owned by the driver pod, so deleting the driver deletes it.
///
/// `status` is written together with `spec` in one request (the CRD has no status
/// subresource), so a slot and the pod bound to it never disagree after a crash.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "sparkgang.io",
    version = "v1",
    kind = "ResourceReservation",
    plural = "resourcereservations",
    shortname = "rr",
    namespaced,
    status = "ResourceReservationStatus",
    printcolumn = r#"{"name":"Driver","type":"string","jsonPath":".status.pods.driver"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.reservations.driver.node"}"#,
    printcolumn = r#"{"name":"Executors","type":"integer","jsonPath":".status.executors"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodes"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReservationSpec {
    /// The Spark application id (`spark-app-id`).
    pub app_id: String,
    /// The driver's instance group, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_group: Option<String>,
    /// Slot name (`driver`, `executor-1`, ...) → node and resources.
    pub reservations: BTreeMap<String, ReservationSlot>,
}

/// One reserved place: a node and the resources held on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ReservationSlot {
    pub node: String,
    /// Canonical quantities: `cpu`, `memory` and the GPU resource name.
    pub resources: BTreeMap<String, String>,
}

/// Which pod holds which slot, and a summary for `kubectl get rr`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReservationStatus {
    /// Slot name → name of the pod bound to it.
    #[serde(default)]
    pub pods: BTreeMap<String, String>,
    /// Number of executor slots.
    #[serde(default)]
    pub executors: u32,
    /// Number of distinct nodes holding slots.
    #[serde(default)]
    pub nodes: u32,
    /// `Reserved` (driver not yet placed on its slot), `Binding` (some executor slots free) or
    /// `Bound` (every slot holds a pod).
    #[serde(default)]
    pub state: String,
}

impl ResourceReservationStatus {
    /// Status for `spec` with `pods` bound: fills in the summary fields.
    pub fn summarise(spec: &ResourceReservationSpec, pods: BTreeMap<String, String>) -> Self {
        let executors = spec
            .reservations
            .keys()
            .filter(|k| k.as_str() != DRIVER_SLOT)
            .count();
        let nodes: std::collections::BTreeSet<&str> = spec
            .reservations
            .values()
            .map(|s| s.node.as_str())
            .collect();
        let bound = spec
            .reservations
            .keys()
            .filter(|k| pods.contains_key(k.as_str()))
            .count();
        let state = if !pods.contains_key(DRIVER_SLOT) {
            "Reserved"
        } else if bound < spec.reservations.len() {
            "Binding"
        } else {
            "Bound"
        };
        ResourceReservationStatus {
            pods,
            executors: u32::try_from(executors).unwrap_or(u32::MAX),
            nodes: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
            state: state.to_owned(),
        }
    }
}
