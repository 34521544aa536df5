//! Binding a pod to a node (`pods/binding`) and the pod conditions it sets.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::handle::Store;
use super::object::{Stored, metadata_mut};
use super::options::WriteOptions;
use super::state::obj_key;
use crate::apiserver::clock::format_time;
use crate::apiserver::errors::{self, ApiError};

impl Store {
    /// Binds a pod to a node (`pods/binding`): sets `spec.nodeName` and the `PodScheduled`
    /// condition. 409 when the pod is already bound or still has scheduling gates.
    pub fn bind(
        &self,
        namespace: &str,
        pod: &str,
        node: &str,
        annotations: Option<&Map<String, Value>>,
        opts: &WriteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        let table = self.table();
        let def = table
            .lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                pod,
                vec![errors::required("target.name", "")],
            ));
        }
        let now = format_time(self.shared.clock.now());
        let key = obj_key(&def, namespace, pod);
        let mut st = self.lock();
        let Some(current) = st.get(&key).cloned() else {
            return Err(ApiError::not_found("pods", pod).details(pod, "", "pods"));
        };
        let bound = current
            .value
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !bound.is_empty() {
            return Err(ApiError::conflict(
                "pods/binding",
                pod,
                &format!("pod {pod} is already assigned to node {bound:?}"),
            ));
        }
        if current
            .value
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(ApiError::conflict(
                "pods/binding",
                pod,
                &format!("pod {pod} has non-empty .spec.schedulingGates"),
            ));
        }
        if current
            .value
            .pointer("/metadata/deletionTimestamp")
            .is_some()
        {
            return Err(ApiError::conflict(
                "pods/binding",
                pod,
                &format!("pod {pod} is being deleted, cannot be assigned to a host"),
            ));
        }
        let mut new = current.value.clone();
        new["spec"]["nodeName"] = json!(node);
        if let Some(a) = annotations.filter(|a| !a.is_empty()) {
            let meta = metadata_mut(&mut new);
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = ann.as_object_mut() {
                for (k, v) in a {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        set_condition(&mut new, "PodScheduled", "True", &now);
        if opts.dry_run {
            return Ok(Arc::new(Stored::new(new)));
        }
        Ok(st.put(&key, new, self.history()))
    }
}

/// Sets (or replaces) a pod condition of `type_`.
pub fn set_condition(pod: &mut Value, type_: &str, status: &str, now: &str) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let status_obj = pod["status"].as_object_mut().expect("object");
    let conditions = status_obj
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let list = conditions.as_array_mut().expect("array");
    let cond =
        json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) => *c = cond,
        None => list.push(cond),
    }
}
