//! kube-apiserver's built-in `Priority` admission plugin: a pod's `priorityClassName` becomes its `spec.priority`.
//!
//! As `plugin/pkg/admission/priority/admission.go` does, on pod CREATE:
//! - without `priorityClassName`, the `globalDefault` class applies (its name is written to
//!   the pod), or priority 0 when there is none;
//! - a `priorityClassName` that names no `PriorityClass` is refused (403 Forbidden);
//! - a pod that already carries a `spec.priority` (or `spec.preemptionPolicy`) different
//!   from what the class gives is refused: the integer must not be provided;
//! - `spec.priority` and `spec.preemptionPolicy` are then set from the class.
//!
//! On UPDATE a priority the stored pod had is kept when the new object drops it.
//!
//! The plugin runs before the mutating webhooks and again after them when one of them changed
//! the pod (kube-apiserver's reinvocation of in-tree plugins). A webhook that adds a
//! `priorityClassName` to a pod the first pass already gave `spec.priority` therefore has to
//! remove `spec.priority` and `spec.preemptionPolicy` too, or the second pass refuses the pod:
//! [`admit_pod`] is what catches a webhook that forgets.

use std::collections::BTreeMap;

use serde_json::Value;

use super::errors::ApiError;

/// `PreemptLowerPriority`, the policy of a class that sets none.
pub const DEFAULT_PREEMPTION_POLICY: &str = "PreemptLowerPriority";

/// One `scheduling.k8s.io/v1` `PriorityClass`, as the plugin reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityClass {
    pub value: i32,
    pub global_default: bool,
    pub preemption_policy: Option<String>,
}

impl PriorityClass {
    /// From a stored object; `None` when it has no integer `value` (validation refuses those).
    pub fn from_object(object: &Value) -> Option<(String, PriorityClass)> {
        let name = object.pointer("/metadata/name")?.as_str()?.to_owned();
        let value = i32::try_from(object.get("value")?.as_i64()?).ok()?;
        Some((
            name,
            PriorityClass {
                value,
                global_default: object
                    .get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                preemption_policy: object
                    .get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
        ))
    }
}

/// The classes of a cluster, by name.
pub type PriorityClasses = BTreeMap<String, PriorityClass>;

fn forbidden(name: &str, message: String) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("pods \"{name}\" is forbidden: {message}"),
    )
}

/// Resolves the priority of `pod` being created, in place; the refusal kube-apiserver would
/// answer otherwise.
pub fn admit_pod_create(pod: &mut Value, classes: &PriorityClasses) -> Result<(), ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let class_name = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (priority, policy) = if class_name.is_empty() {
        // If several classes claim to be the default, the one with the highest value wins, as
        // in the real plugin.
        match classes
            .iter()
            .filter(|(_, c)| c.global_default)
            .max_by_key(|(_, c)| c.value)
        {
            Some((n, c)) => {
                spec.insert("priorityClassName".into(), Value::String(n.clone()));
                (c.value, c.preemption_policy.clone())
            }
            None => (0, None),
        }
    } else {
        match classes.get(&class_name) {
            Some(c) => (c.value, c.preemption_policy.clone()),
            None => {
                return Err(forbidden(
                    &name,
                    format!("no PriorityClass with name {class_name} was found"),
                ));
            }
        }
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != i64::from(priority)
    {
        return Err(forbidden(
            &name,
            format!(
                "the integer value of priority ({given}) must not be provided in pod spec; \
                 priority admission controller computed {priority} from the given PriorityClass name"
            ),
        ));
    }
    let policy = policy.unwrap_or_else(|| DEFAULT_PREEMPTION_POLICY.to_owned());
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && given != policy
    {
        return Err(forbidden(
            &name,
            format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; \
                 priority admission controller computed {policy} from the given PriorityClass name"
            ),
        ));
    }
    spec.insert("priority".into(), Value::from(priority));
    spec.insert("preemptionPolicy".into(), Value::String(policy));
    Ok(())
}

/// On UPDATE: a priority the stored pod has is kept when `pod` drops it.
pub fn admit_pod_update(pod: &mut Value, old: &Value) {
    for field in ["priority", "preemptionPolicy"] {
        if let Some(kept) = old.pointer(&format!("/spec/{field}"))
            && let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut)
            && spec.get(field).is_none_or(Value::is_null)
        {
            spec.insert(field.into(), kept.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn classes() -> PriorityClasses {
        [
            json!({"metadata": {"name": "high"}, "value": 1000}),
            json!({"metadata": {"name": "low"}, "value": 10, "preemptionPolicy": "Never"}),
        ]
        .iter()
        .filter_map(PriorityClass::from_object)
        .collect()
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn a_class_name_resolves_to_its_value_and_policy() {
        let mut p = pod(json!({"priorityClassName": "low"}));
        admit_pod_create(&mut p, &classes()).unwrap();
        assert_eq!(p["spec"]["priority"], 10);
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");
    }

    #[test]
    fn no_class_and_no_default_is_zero() {
        let mut p = pod(json!({}));
        admit_pod_create(&mut p, &classes()).unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["preemptionPolicy"], DEFAULT_PREEMPTION_POLICY);
        assert!(p["spec"].get("priorityClassName").is_none());
    }

    #[test]
    fn the_global_default_is_named_on_the_pod() {
        let mut c = classes();
        c.get_mut("low").unwrap().global_default = true;
        let mut p = pod(json!({}));
        admit_pod_create(&mut p, &c).unwrap();
        assert_eq!(p["spec"]["priorityClassName"], "low");
        assert_eq!(p["spec"]["priority"], 10);
    }

    #[test]
    fn an_unknown_class_is_forbidden() {
        let mut p = pod(json!({"priorityClassName": "urgent"}));
        let e = admit_pod_create(&mut p, &classes()).unwrap_err();
        assert_eq!(e.code, 403);
        assert!(
            e.message
                .contains("no PriorityClass with name urgent was found"),
            "{}",
            e.message
        );
    }

    /// The trap of issue 15: the first pass gave priority 0; a webhook then adds a class but
    /// keeps `spec.priority`, and the second pass refuses the pod. Removing both fields lets it
    /// resolve.
    #[test]
    fn a_class_added_after_the_first_pass_needs_the_old_priority_removed() {
        let mut p = pod(json!({}));
        admit_pod_create(&mut p, &classes()).unwrap();
        p["spec"]["priorityClassName"] = json!("high");
        let mut kept = p.clone();
        let e = admit_pod_create(&mut kept, &classes()).unwrap_err();
        assert!(
            e.message
                .contains("the integer value of priority (0) must not be provided"),
            "{}",
            e.message
        );
        let spec = p["spec"].as_object_mut().unwrap();
        spec.remove("priority");
        spec.remove("preemptionPolicy");
        admit_pod_create(&mut p, &classes()).unwrap();
        assert_eq!(p["spec"]["priority"], 1000);
    }

    #[test]
    fn an_update_keeps_the_stored_priority() {
        let old = pod(json!({"priority": 1000, "preemptionPolicy": "PreemptLowerPriority"}));
        let mut new = pod(json!({"nodeName": "n"}));
        admit_pod_update(&mut new, &old);
        assert_eq!(new["spec"]["priority"], 1000);
    }
}
