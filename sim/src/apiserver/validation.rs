//! The rules the real API server enforces that matter here: names, defaults, pod and ConfigMap update rules.

use serde_json::{Map, Value, json};
use sparkgang_common::names::{is_dns1123_label as is_label, is_dns1123_subdomain};

use super::errors::{ApiError, Cause, forbidden, invalid_value, required};
use super::resources::{NameRule, ResourceDef};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// RFC 1123 subdomain.
pub fn is_subdomain(s: &str) -> bool {
    is_dns1123_subdomain(s)
}

/// Problems with `name` under `rule`, as causes on `field`.
pub fn name_causes(rule: NameRule, name: &str, field: &str) -> Vec<Cause> {
    let (ok, msg, max) = match rule {
        NameRule::Subdomain => (is_subdomain(name), SUBDOMAIN_MSG, 253),
        NameRule::Label => (is_label(name), LABEL_MSG, 63),
        NameRule::Label1035 => (
            is_label(name) && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase()),
            LABEL1035_MSG,
            63,
        ),
    };
    let mut causes = Vec::new();
    if name.len() > max {
        causes.push(invalid_value(
            field,
            name,
            &format!("must be no more than {max} characters"),
        ));
    } else if !ok {
        causes.push(invalid_value(field, name, msg));
    }
    causes
}

fn labels_causes(meta: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (section, check_values) in [("labels", true), ("annotations", false)] {
        let Some(m) = meta.get(section) else { continue };
        let Some(map) = m.as_object() else {
            if !m.is_null() {
                causes.push(invalid_value(
                    &format!("metadata.{section}"),
                    &m.to_string(),
                    "must be a map of strings",
                ));
            }
            continue;
        };
        for (k, v) in map {
            let key_ok = {
                let (prefix, name) = match k.split_once('/') {
                    Some((p, n)) => (Some(p), n),
                    None => (None, k.as_str()),
                };
                prefix.is_none_or(is_subdomain)
                    && !name.is_empty()
                    && name.len() <= 63
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                    && name
                        .bytes()
                        .next()
                        .is_some_and(|b| b.is_ascii_alphanumeric())
                    && name
                        .bytes()
                        .last()
                        .is_some_and(|b| b.is_ascii_alphanumeric())
            };
            if !key_ok {
                causes.push(invalid_value(
                    &format!("metadata.{section}"),
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            match v.as_str() {
                None => causes.push(invalid_value(
                    &format!("metadata.{section}"),
                    &v.to_string(),
                    "must be a string",
                )),
                Some(s) if check_values => {
                    let ok = s.len() <= 63
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                        && (s.is_empty()
                            || (s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                                && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())));
                    if !ok {
                        causes.push(invalid_value(
                            "metadata.labels",
                            s,
                            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    causes
}

/// Checks an object that is about to be stored (create or update).
pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        causes.extend(name_causes(def.name_rule, name, "metadata.name"));
    }
    if let Some(meta) = obj.get("metadata") {
        causes.extend(labels_causes(meta));
    }
    if def.group.is_empty() && def.plural == "pods" {
        causes.extend(pod_causes(obj, old));
    }
    if def.group.is_empty()
        && (def.plural == "configmaps" || def.plural == "secrets")
        && let Some(old) = old
        && old.get("immutable").and_then(Value::as_bool) == Some(true)
    {
        for field in ["data", "binaryData", "stringData"] {
            if old.get(field) != obj.get(field) {
                causes.push(forbidden(
                    field,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
            causes.push(forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&def.kind, name, causes).with_group(&def.group))
    }
}

fn gate_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .map(|gates| {
            gates
                .iter()
                .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn node_name(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn pod_causes(pod: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let gates = gate_names(pod);
    if !node_name(pod).is_empty() && !gates.is_empty() {
        // A bound pod never carries gates (create with both, or gates added after binding).
        causes.push(forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    let Some(old) = old else {
        if pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .is_none_or(|c| c.is_empty())
        {
            causes.push(required("spec.containers", ""));
        }
        return causes;
    };
    let old_gates = gate_names(old);
    if let Some(new) = gates.iter().find(|g| !old_gates.contains(g)) {
        causes.push(forbidden(
            "spec.schedulingGates",
            &format!("only deletion is allowed, but found new scheduling gate '{new}'"),
        ));
    }
    if node_name(pod) != node_name(old) {
        causes.push(forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative); spec.nodeName is set by the binding subresource",
        ));
    }
    causes
}

fn ensure_map<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = Value::Object(Map::new());
    }
    v[key].as_object_mut().expect("object")
}

/// Applies the create-time defaults the real server applies (kept minimal; see the docs).
pub fn apply_create_defaults(def: &ResourceDef, obj: &mut Value, extra: &mut DefaultsState) {
    if !def.group.is_empty() {
        return;
    }
    match def.plural.as_str() {
        "pods" => default_pod(obj),
        "namespaces" => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            ensure_map(&mut obj["metadata"], "labels")
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            ensure_map(obj, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            obj["status"] = json!({"phase": "Active"});
        }
        "services" => {
            let spec = ensure_map(obj, "spec");
            spec.entry("type").or_insert(json!("ClusterIP"));
            spec.entry("sessionAffinity").or_insert(json!("None"));
            let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
            if !external && spec.get("clusterIP").is_none_or(|v| v.as_str() == Some("")) {
                extra.service_ips += 1;
                let n = extra.service_ips;
                let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                spec.insert("clusterIP".into(), json!(ip));
            }
            if let Some(ip) = spec.get("clusterIP").cloned()
                && !spec.contains_key("clusterIPs")
                && !external
            {
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                for p in ports {
                    if let Some(pm) = p.as_object_mut() {
                        pm.entry("protocol").or_insert(json!("TCP"));
                        if let Some(port) = pm.get("port").cloned() {
                            pm.entry("targetPort").or_insert(port);
                        }
                    }
                }
            }
            obj.as_object_mut()
                .expect("object")
                .entry("status")
                .or_insert(json!({"loadBalancer": {}}));
        }
        _ => {}
    }
}

/// Counters the defaults need (cluster IPs handed out).
#[derive(Debug, Default)]
pub struct DefaultsState {
    pub service_ips: u32,
}

fn default_pod(pod: &mut Value) {
    let spec = ensure_map(pod, "spec");
    let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if empty(spec.get("schedulerName")) {
        spec.insert("schedulerName".into(), json!("default-scheduler"));
    }
    if empty(spec.get("restartPolicy")) {
        spec.insert("restartPolicy".into(), json!("Always"));
    }
    if empty(spec.get("dnsPolicy")) {
        spec.insert("dnsPolicy".into(), json!("ClusterFirst"));
    }
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("priority").or_insert(json!(0));
    spec.entry("securityContext").or_insert(json!({}));
    spec.entry("enableServiceLinks").or_insert(json!(true));
    // Requests default to limits (what makes a GPU limit count as a request).
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers {
                let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                    continue;
                };
                let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
                    continue;
                };
                let requests = res
                    .entry("requests")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(req) = requests.as_object_mut() {
                    for (k, v) in limits {
                        req.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    let qos = qos_class(pod);
    // The real server ignores a client's status on create.
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// `Guaranteed`, `Burstable` or `BestEffort`, from the containers' cpu/memory requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let req = c.pointer("/resources/requests");
        let lim = c.pointer("/resources/limits");
        for r in ["cpu", "memory"] {
            let rq = req.and_then(|m| m.get(r));
            let lm = lim.and_then(|m| m.get(r));
            if rq.is_some() || lm.is_some() {
                any = true;
            }
            if lm.is_none() || rq != lm {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Does `new` differ from `old` outside `metadata` and `status`? (bumps `metadata.generation`)
pub fn spec_changed(old: &Value, new: &Value, status_is_separate: bool) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let skip = |k: &str| {
        k == "metadata" || k == "apiVersion" || k == "kind" || (status_is_separate && k == "status")
    };
    let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip(k))
        .any(|k| o.get(k) != n.get(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_subdomain("spark-drv-15ca85a213adb269-conf-map"));
        assert!(is_subdomain("a.b-c"));
        assert!(!is_subdomain("Bad_Name"));
        assert!(!is_subdomain("-a"));
        assert!(!is_subdomain(""));
        assert!(!is_subdomain(&"a".repeat(254)));
        assert!(name_causes(NameRule::Label1035, "1abc", "metadata.name").len() == 1);
        assert!(name_causes(NameRule::Label, "a.b", "metadata.name").len() == 1);
    }

    #[test]
    fn qos() {
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
        let e = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&e), "BestEffort");
    }
}
