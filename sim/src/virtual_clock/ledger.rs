//! The room pods hold in the virtual cluster, kept as pods change: what is allocated now
//! against what the nodes have, and each pod's start and end of holding room, for reports
//! (utilisation over time, executors granted over time) that need no history replay.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use sparkgang_common::pods::{is_finished, node_name};
use sparkgang_common::resources::{GpuResourceNames, Resources, pod_requests};

/// A pod started or stopped holding room on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomChange {
    /// `namespace/name`.
    pub pod: String,
    /// `spark-role` (`driver`, `executor`) and `spark-app-selector`.
    pub role: String,
    pub app_id: String,
    /// True: bound and not finished from now on; false: finished or deleted.
    pub holds: bool,
    pub requests: Resources,
}

/// Allocated and allocatable room, and the changes since they were last taken.
#[derive(Debug, Default)]
pub struct Ledger {
    allocated: Resources,
    /// What bound, unfinished pods request, per node.
    by_node: HashMap<String, Resources>,
    capacity: Resources,
    changes: Vec<RoomChange>,
    /// `namespace/app-id` of applications an executor of which stopped holding room.
    executors_stopped: Vec<String>,
}

fn holds_room(pod: &Pod) -> bool {
    node_name(pod).is_some() && !is_finished(pod)
}

impl Ledger {
    /// A node joined with `allocatable`.
    pub fn add_node(&mut self, allocatable: Resources) {
        self.capacity += allocatable;
    }

    /// A pod changed from `old` to `new` (`None`: did not exist / deleted).
    pub fn update(&mut self, key: &str, old: Option<&Pod>, new: Option<&Pod>) {
        let before = old.is_some_and(holds_room);
        let after = new.is_some_and(holds_room);
        if before == after {
            return;
        }
        let Some(pod) = new.or(old) else { return };
        let requests = pod
            .spec
            .as_ref()
            .and_then(|s| pod_requests(s, &GpuResourceNames::default()).ok())
            .unwrap_or_default();
        let node = node_name(pod).unwrap_or_default().to_owned();
        if after {
            self.allocated += requests;
            *self.by_node.entry(node).or_default() += requests;
        } else {
            self.allocated -= requests;
            if let Some(used) = self.by_node.get_mut(&node) {
                *used -= requests;
            }
        }
        let label = |k: &str| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(k).cloned())
                .unwrap_or_default()
        };
        if !after && label("spark-role") == "executor" {
            let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
            self.executors_stopped
                .push(format!("{namespace}/{}", label("spark-app-selector")));
        }
        self.changes.push(RoomChange {
            pod: key.to_owned(),
            role: label("spark-role"),
            app_id: label("spark-app-selector"),
            holds: after,
            requests,
        });
    }

    /// What bound pods that are not finished request, in total.
    pub fn allocated(&self) -> Resources {
        self.allocated
    }

    /// What bound, unfinished pods request on each node (kube-scheduler's cache of it).
    pub fn by_node(&self) -> &HashMap<String, Resources> {
        &self.by_node
    }

    /// What the nodes have, in total.
    pub fn capacity(&self) -> Resources {
        self.capacity
    }

    /// `namespace/app-id` of the applications that lost an executor since the last call.
    pub fn take_executors_stopped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.executors_stopped)
    }

    /// The changes since the last call, in the order they happened.
    pub fn take_changes(&mut self) -> Vec<RoomChange> {
        std::mem::take(&mut self.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "e1", "namespace": "spark",
                "labels": {"spark-role": "executor", "spark-app-selector": "app-1"}},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]},
            "status": {"phase": phase}
        }))
        .expect("a pod")
    }

    #[test]
    fn room_is_held_from_binding_until_the_pod_finishes_or_goes() {
        let mut l = Ledger::default();
        let pending = pod(None, "Pending");
        let running = pod(Some("n1"), "Running");
        let failed = pod(Some("n1"), "Failed");
        l.update("spark/e1", None, Some(&pending));
        assert_eq!(l.allocated(), Resources::default(), "not bound yet");
        l.update("spark/e1", Some(&pending), Some(&running));
        assert_eq!(l.allocated().cpu_milli, 2000);
        assert_eq!(l.by_node()["n1"].cpu_milli, 2000);
        l.update("spark/e1", Some(&running), Some(&running));
        assert_eq!(l.allocated().cpu_milli, 2000, "no change, counted once");
        l.update("spark/e1", Some(&running), Some(&failed));
        assert_eq!(l.allocated(), Resources::default());
        assert_eq!(l.by_node()["n1"], Resources::default());
        l.update("spark/e1", Some(&failed), None);
        let changes = l.take_changes();
        assert_eq!(
            changes.iter().map(|c| c.holds).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(changes[0].app_id, "app-1");
        assert_eq!(changes[0].role, "executor");
        assert!(l.take_changes().is_empty());
    }
}
