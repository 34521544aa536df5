//! The `pods/eviction` subresource: a delete that PodDisruptionBudgets may refuse.
//!
//! As kube-apiserver's eviction REST handler does (`pkg/registry/core/pod/storage/eviction.go`):
//! - a pod already terminating, or finished (`Succeeded` / `Failed`), is deleted without
//!   looking at budgets;
//! - a pod matched by more than one `PodDisruptionBudget` of its namespace is refused (500);
//! - a pod matched by one whose `status.disruptionsAllowed` is 0 is refused with
//!   `429 TooManyRequests` and the cause `DisruptionBudget`; otherwise the budget's
//!   `disruptionsAllowed` goes down by one and the pod is recorded in its `disruptedPods`;
//! - the pod gets the condition `DisruptionTarget` (reason `EvictionByEvictionAPI`) unless it
//!   already has one (kube-scheduler's preemption sets `PreemptionByScheduler` first), then is
//!   deleted.
//!
//! The simulator has no disruption controller: a budget's `status` is what was written to it,
//! and evictions spend it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::{Value, json};

use super::clock::format_time;
use super::errors::{ApiError, Cause, Details};
use super::resources::{ResourceDef, Subresource};
use super::selectors::Selectors;
use super::store::{DeleteOptions, Store, Stored};
use sparkgang_common::labels::selector_matches;

/// Evicts pod `name` of `namespace`; the deleted (or marked) pod.
pub fn evict(
    store: &Store,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Arc<Stored>, ApiError> {
    let pods = store
        .resource("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pod = store
        .get(&pods, namespace, name)
        .ok_or_else(|| ApiError::not_found("pods", name).details(name, "", "pods"))?;
    admit_eviction(store, namespace, name, &pod.value)?;
    if !opts.dry_run {
        mark_disruption_target(store, &pods, namespace, name)?;
    }
    store.delete(&pods, namespace, name, opts)
}

/// The budget check of an eviction of `pod` (stored as `namespace/name`): `Ok` when it may
/// go (and the budget that allowed it is spent), the 429 or 500 refusal otherwise.
pub fn admit_eviction(
    store: &Store,
    namespace: &str,
    name: &str,
    pod: &Value,
) -> Result<(), ApiError> {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some();
    if terminating || phase == "Succeeded" || phase == "Failed" {
        return Ok(());
    }
    spend_budget(store, namespace, name, pod)
}

fn spend_budget(store: &Store, namespace: &str, name: &str, pod: &Value) -> Result<(), ApiError> {
    let Some(pdbs) = store.resource("policy", "v1", "poddisruptionbudgets") else {
        return Ok(());
    };
    let labels: BTreeMap<String, String> = pod
        .pointer("/metadata/labels")
        .and_then(|l| BTreeMap::deserialize(l).ok())
        .unwrap_or_default();
    let listed = store.list(&pdbs, Some(namespace), &Selectors::default(), None, None)?;
    let matching: Vec<&Arc<Stored>> = listed
        .items
        .iter()
        .filter(|b| {
            // policy/v1: an absent selector matches no pod, an empty one every pod.
            b.value
                .pointer("/spec/selector")
                .and_then(|s| LabelSelector::deserialize(s).ok())
                .is_some_and(|s| selector_matches(Some(&s), &labels))
        })
        .collect();
    let budget = match matching.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let status = budget.value.get("status");
    let allowed = status
        .and_then(|s| s.get("disruptionsAllowed"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if allowed <= 0 {
        let desired = status
            .and_then(|s| s.get("desiredHealthy"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let current = status
            .and_then(|s| s.get("currentHealthy"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
        );
        e.details = Some(Box::new(Details {
            causes: vec![Cause {
                reason: "DisruptionBudget".to_owned(),
                message: format!(
                    "The disruption budget {} needs {desired} healthy pods and has {current} currently",
                    budget.name()
                ),
                field: String::new(),
            }],
            ..Details::default()
        }));
        return Err(e);
    }
    let now = format_time(store.clock().now());
    store.modify(
        &pdbs,
        Some(Subresource::Status),
        namespace,
        budget.name(),
        |b| {
            let status = &mut b["status"];
            status["disruptionsAllowed"] = json!(allowed - 1);
            status["disruptedPods"][name] = json!(now);
        },
    )?;
    Ok(())
}

fn mark_disruption_target(
    store: &Store,
    pods: &ResourceDef,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    let now = format_time(store.clock().now());
    store.modify(pods, Some(Subresource::Status), namespace, name, |p| {
        let conditions = &mut p["status"]["conditions"];
        if !conditions.is_array() {
            *conditions = json!([]);
        }
        if let Some(list) = conditions.as_array_mut()
            && !list
                .iter()
                .any(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionTarget"))
        {
            list.push(json!({"type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                "lastTransitionTime": now}));
        }
    })?;
    Ok(())
}
