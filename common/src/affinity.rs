//! Which nodes a pod may use: `nodeSelector`, required node affinity, taints and tolerations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// The pod's `requiredDuringSchedulingIgnoredDuringExecution` node selector, if any.
pub fn required_node_selector(spec: &PodSpec) -> Option<&NodeSelector> {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
}

fn node_labels(node: &Node) -> Option<&BTreeMap<String, String>> {
    node.metadata.labels.as_ref()
}

/// True when the node satisfies the pod's `nodeSelector` and its required node affinity
/// (`requiredDuringSchedulingIgnoredDuringExecution`), as kube-scheduler's NodeAffinity filter.
pub fn required_node_match(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node_labels(node).unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    match required_node_selector(spec) {
        None => true,
        // Terms are ORed; an empty term list matches nothing (API validation forbids it anyway).
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name)),
    }
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|e| requirement_matches(e, labels.get(&e.key).map(String::as_str)))
        && fields.iter().all(|f| {
            let value = (f.key == "metadata.name").then_some(name);
            requirement_matches(f, value)
        })
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), values) else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else {
                return false;
            };
            if req.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// True when every `NoSchedule`/`NoExecute` taint of the node is tolerated by the pod.
pub fn tolerates_node_taints(spec: &PodSpec, node: &Node) -> bool {
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerations.iter().any(|tol| tolerates(tol, t)))
}

fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => {
            key == taint.key
                && tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// True when the node is marked unschedulable (`spec.unschedulable`).
pub fn is_cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

/// True when the node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }
    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(
            json!({"metadata": {"name": "n1", "labels": {"instance-group": "batch", "size": "8"}}}),
        );
        assert!(required_node_match(&spec(json!({"containers": []})), &n));
        assert!(required_node_match(
            &spec(json!({"containers": [], "nodeSelector": {"instance-group": "batch"}})),
            &n
        ));
        assert!(!required_node_match(
            &spec(json!({"containers": [], "nodeSelector": {"instance-group": "other"}})),
            &n
        ));
        let aff = |exprs: serde_json::Value| {
            spec(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}}))
        };
        assert!(required_node_match(
            &aff(json!([{"key": "instance-group", "operator": "In", "values": ["batch"]}])),
            &n
        ));
        assert!(!required_node_match(
            &aff(json!([{"key": "instance-group", "operator": "NotIn", "values": ["batch"]}])),
            &n
        ));
        assert!(required_node_match(
            &aff(json!([{"key": "gpu", "operator": "DoesNotExist"}])),
            &n
        ));
        assert!(!required_node_match(
            &aff(json!([{"key": "gpu", "operator": "Exists"}])),
            &n
        ));
        assert!(required_node_match(
            &aff(json!([{"key": "size", "operator": "Gt", "values": ["4"]}])),
            &n
        ));
        assert!(!required_node_match(
            &aff(json!([{"key": "size", "operator": "Lt", "values": ["4"]}])),
            &n
        ));
        let by_name = spec(json!({"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
        ]}}}}));
        assert!(required_node_match(&by_name, &n));
    }

    #[test]
    fn taints_need_tolerations() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "dedicated", "value": "spark", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"}
        ]}}));
        assert!(!tolerates_node_taints(&spec(json!({"containers": []})), &n));
        assert!(tolerates_node_taints(
            &spec(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "spark", "effect": "NoSchedule"}]})),
            &n
        ));
        assert!(tolerates_node_taints(
            &spec(json!({"containers": [], "tolerations": [{"operator": "Exists"}]})),
            &n
        ));
        assert!(!tolerates_node_taints(
            &spec(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "value": "other"}]})),
            &n
        ));
    }

    #[test]
    fn readiness_and_cordon() {
        let n = node(
            json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(is_ready(&n));
        assert!(is_cordoned(&n));
        assert!(!is_ready(&node(json!({"metadata": {"name": "n"}}))));
    }
}
