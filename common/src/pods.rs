//! What a pod says about Spark: its role, application, instance group, driver and conf ConfigMap.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Label Spark puts on every pod it creates: `driver` or `executor`.
pub const SPARK_ROLE_LABEL: &str = "spark-role";
/// Label Spark puts on every pod of an application (`spark-<32 hex>`).
pub const SPARK_APP_SELECTOR_LABEL: &str = "spark-app-selector";
/// The palantir-compatible application label; injected by the webhook from `spark-app-selector`.
pub const SPARK_APP_ID_LABEL: &str = "spark-app-id";
/// Label Spark puts on executors: the executor id, increasing, never reused.
pub const SPARK_EXEC_ID_LABEL: &str = "spark-exec-id";
/// Volume through which the driver mounts its `spark.properties` ConfigMap (Spark ≥ 3.1).
pub const DRIVER_CONF_VOLUME: &str = "spark-conf-volume-driver";
/// The same volume before Spark 3.1.
pub const LEGACY_DRIVER_CONF_VOLUME: &str = "spark-conf-volume";

/// A Spark pod's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SparkRole {
    Driver,
    Executor,
}

impl SparkRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SparkRole::Driver => "driver",
            SparkRole::Executor => "executor",
        }
    }
}

fn labels(pod: &Pod) -> Option<&BTreeMap<String, String>> {
    pod.metadata.labels.as_ref()
}

/// The pod's `spark-role`, if it is a Spark driver or executor.
pub fn spark_role(pod: &Pod) -> Option<SparkRole> {
    match labels(pod)?.get(SPARK_ROLE_LABEL)?.as_str() {
        "driver" => Some(SparkRole::Driver),
        "executor" => Some(SparkRole::Executor),
        _ => None,
    }
}

/// The application id: `spark-app-id`, else `spark-app-selector`.
pub fn app_id(pod: &Pod) -> Option<&str> {
    let l = labels(pod)?;
    l.get(SPARK_APP_ID_LABEL)
        .or_else(|| l.get(SPARK_APP_SELECTOR_LABEL))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// The instance group of a pod (palantir's rule): the first required node-affinity expression on
/// `label` with exactly one value (operator ignored), else `nodeSelector[label]`.
pub fn instance_group<'a>(spec: &'a PodSpec, label: &str) -> Option<&'a str> {
    if let Some(selector) = crate::affinity::required_node_selector(spec) {
        for term in &selector.node_selector_terms {
            for expr in term.match_expressions.iter().flatten() {
                if expr.key == label
                    && let Some([value]) = expr.values.as_deref()
                {
                    return Some(value.as_str());
                }
            }
        }
    }
    spec.node_selector
        .as_ref()
        .and_then(|s| s.get(label))
        .map(String::as_str)
}

/// An executor's driver: its controller ownerReference of kind `Pod`.
pub fn owning_driver(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "Pod")
}

/// The name of the ConfigMap holding the driver's `spark.properties`.
pub fn driver_conf_map_name(spec: &PodSpec) -> Option<&str> {
    let volumes = spec.volumes.as_ref()?;
    [DRIVER_CONF_VOLUME, LEGACY_DRIVER_CONF_VOLUME]
        .iter()
        .find_map(|wanted| volumes.iter().find(|v| v.name == *wanted))
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.as_str())
        .filter(|n| !n.is_empty())
}

/// True when the pod will never run again: phase `Succeeded`/`Failed`, or every container has
/// terminated (palantir's rule, which also catches pods whose phase has not caught up).
pub fn is_finished(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return true;
    }
    match status.container_statuses.as_deref() {
        Some(cs) if !cs.is_empty() => cs
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some())),
        _ => false,
    }
}

/// True once the pod is being deleted.
pub fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The node a pod is bound to, if any.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The pod's scheduler name (`default-scheduler` when unset, as the API server defaults it).
pub fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or("default-scheduler")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn role_and_app_id() {
        let p = pod(
            json!({"metadata": {"labels": {"spark-role": "driver", "spark-app-selector": "spark-1"}}}),
        );
        assert_eq!(spark_role(&p), Some(SparkRole::Driver));
        assert_eq!(app_id(&p), Some("spark-1"));
        let p = pod(
            json!({"metadata": {"labels": {"spark-role": "executor", "spark-app-selector": "spark-1", "spark-app-id": "mine"}}}),
        );
        assert_eq!(spark_role(&p), Some(SparkRole::Executor));
        assert_eq!(app_id(&p), Some("mine"));
        let p = pod(json!({"metadata": {"labels": {"spark-role": "other"}}}));
        assert_eq!(spark_role(&p), None);
        assert_eq!(app_id(&p), None);
    }

    #[test]
    fn instance_group_prefers_single_valued_affinity_then_node_selector() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [],
            "nodeSelector": {"instance-group": "from-selector"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [
                    {"key": "instance-group", "operator": "In", "values": ["a", "b"]},
                    {"key": "other", "operator": "In", "values": ["x"]}
                ]},
                {"matchExpressions": [{"key": "instance-group", "operator": "In", "values": ["batch"]}]}
            ]}}}
        }))
        .unwrap();
        assert_eq!(instance_group(&spec, "instance-group"), Some("batch"));
        assert_eq!(instance_group(&spec, "other"), Some("x"));
        let spec: PodSpec = serde_json::from_value(
            json!({"containers": [], "nodeSelector": {"instance-group": "sel"}}),
        )
        .unwrap();
        assert_eq!(instance_group(&spec, "instance-group"), Some("sel"));
        assert_eq!(instance_group(&spec, "missing"), None);
    }

    #[test]
    fn driver_conf_map_from_volume() {
        let spec: PodSpec = serde_json::from_value(json!({"containers": [], "volumes": [
            {"name": "spark-local-dir-1", "emptyDir": {}},
            {"name": "spark-conf-volume-driver", "configMap": {"name": "spark-drv-15ca85a213adb269-conf-map"}}
        ]}))
        .unwrap();
        assert_eq!(
            driver_conf_map_name(&spec),
            Some("spark-drv-15ca85a213adb269-conf-map")
        );
        let spec: PodSpec = serde_json::from_value(json!({"containers": []})).unwrap();
        assert_eq!(driver_conf_map_name(&spec), None);
    }

    #[test]
    fn owning_driver_is_the_controller_pod() {
        let p = pod(json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"},
            {"apiVersion": "v1", "kind": "Pod", "name": "drv", "uid": "2", "controller": true}
        ]}}));
        assert_eq!(owning_driver(&p).map(|o| o.name.as_str()), Some("drv"));
    }

    #[test]
    fn finished_pods() {
        assert!(is_finished(&pod(json!({"status": {"phase": "Succeeded"}}))));
        assert!(is_finished(&pod(
            json!({"status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1}}}
            ]}})
        )));
        assert!(!is_finished(&pod(json!({"status": {"phase": "Running"}}))));
        assert!(!is_finished(&pod(json!({}))));
    }
}
