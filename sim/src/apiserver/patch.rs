//! PATCH bodies: RFC 6902 JSON patch, RFC 7386 merge patch, strategic merge (the fields used) and apply.
//!
//! Strategic merge patch follows the Kubernetes rules for the lists that carry a merge key in
//! the API types this project touches (see [`merge_key`]); every other list is replaced and
//! every map is merged as in a JSON merge patch. Directives: `$patch: delete` / `replace` on map
//! entries and list items, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` and
//! `$retainKeys` (the last two accepted and ignored).

use serde_json::{Map, Value};

use super::errors::ApiError;

/// The patch types the server accepts (by `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Parses a patch body: JSON for every type, and YAML (a superset) for apply.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the apply patch is not UTF-8"))?;
            serde_yaml::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Applies `patch` (already parsed) of type `kind` to `target`.
pub fn apply_patch(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                ApiError::bad_request(format!("the JSON patch is not a list of operations: {e}"))
            })?;
            let mut out = target.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch cannot be applied: {e}"),
                )
            })?;
            Ok(out)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut out = target.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let mut out = target.clone();
            strategic_merge(&mut out, patch, "")?;
            Ok(out)
        }
    }
}

/// The merge key of a list field, given the field name and the parent field name, for the
/// lists with `patchStrategy: merge` in the Kubernetes types used here. `None`: replace.
pub fn merge_key(parent: &str, field: &str, sample: Option<&Value>) -> Option<&'static str> {
    let has = |k: &str| sample.is_some_and(|s| s.get(k).is_some());
    match field {
        "conditions" => Some("type"),
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "schedulingGates"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses"
            if parent == "status" =>
        {
            Some("name")
        }
        "ports" => {
            if has("containerPort") {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        "topologySpreadConstraints" => Some("topologyKey"),
        "addresses" if parent == "status" => Some("type"),
        "taints" if parent == "spec" && !has("name") => Some("key"),
        _ => None,
    }
}

/// Lists of scalars merged as sets (`patchStrategy: merge` on primitives).
fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn strategic_merge(target: &mut Value, patch: &Value, parent: &str) -> Result<(), ApiError> {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = pmap.clone();
        p.remove("$patch");
        *target = Value::Object(strip_directives(p));
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tmap = target.as_object_mut().expect("object");
    for (key, pv) in pmap {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (tmap.get_mut(field), pv.as_array()) {
                items.retain(|x| !del.contains(x));
            }
            continue;
        }
        match pv {
            Value::Null => {
                tmap.remove(key);
            }
            Value::Object(po) if po.get("$patch").and_then(Value::as_str) == Some("delete") => {
                tmap.remove(key);
            }
            Value::Object(_) => {
                let slot = tmap.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, pv, key)?;
            }
            Value::Array(pitems) => {
                let sample = pitems.iter().find(|x| x.is_object());
                let existing = tmap.get(key).and_then(Value::as_array).cloned();
                let merged = match (existing, merge_key(parent, key, sample)) {
                    (Some(old), Some(mk)) => merge_list(old, pitems, mk, key)?,
                    (Some(old), None) if is_set_list(key) => {
                        let mut out = old;
                        for x in pitems {
                            if !out.contains(x) {
                                out.push(x.clone());
                            }
                        }
                        out
                    }
                    _ => pitems
                        .iter()
                        .filter(|x| x.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .map(|x| match x {
                            Value::Object(m) => Value::Object(strip_directives(m.clone())),
                            other => other.clone(),
                        })
                        .collect(),
                };
                tmap.insert(key.clone(), Value::Array(merged));
            }
            other => {
                tmap.insert(key.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    for v in m.values_mut() {
        if let Value::Object(inner) = v {
            *inner = strip_directives(std::mem::take(inner));
        }
    }
    m
}

fn merge_list(
    mut old: Vec<Value>,
    patch: &[Value],
    key: &str,
    field: &str,
) -> Result<Vec<Value>, ApiError> {
    if patch.len() == 1 && patch[0].get("$patch").and_then(Value::as_str) == Some("replace") {
        return Ok(Vec::new());
    }
    for item in patch {
        let Some(obj) = item.as_object() else {
            return Err(ApiError::bad_request(format!(
                "the strategic merge patch list {field:?} must hold objects with the merge key {key:?}"
            )));
        };
        let Some(kv) = obj.get(key) else {
            return Err(ApiError::bad_request(format!(
                "an item of {field:?} in the strategic merge patch has no merge key {key:?}"
            )));
        };
        let pos = old.iter().position(|o| o.get(key) == Some(kv));
        if obj.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                old.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => strategic_merge(&mut old[i], item, field)?,
            None => old.push(Value::Object(strip_directives(obj.clone()))),
        }
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_merge_by_type() {
        let pod = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False"},
            {"type": "Ready", "status": "False"}]}});
        let patch = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "X", "status": "True"}]}});
        let out = apply_patch(PatchType::Strategic, &pod, &patch).unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True"},
                   {"type": "Ready", "status": "False"},
                   {"type": "X", "status": "True"}])
        );
        assert_eq!(out["status"]["phase"], "Pending");
    }

    #[test]
    fn containers_by_name_and_delete_directive() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                         "schedulingGates": [{"name": "g1"}, {"name": "g2"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}],
                           "schedulingGates": [{"name": "g1", "$patch": "delete"}]}});
        let out = apply_patch(PatchType::Strategic, &pod, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][1]["image"], "z");
        assert_eq!(out["spec"]["containers"][0]["image"], "x");
        assert_eq!(out["spec"]["schedulingGates"], json!([{"name": "g2"}]));
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let p = json!({"metadata": {"labels": {"a": null, "c": "3"}}});
        let out = apply_patch(PatchType::Strategic, &o, &p).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn other_lists_replace() {
        let o = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let p = json!({"spec": {"tolerations": [{"key": "b"}]}});
        let out = apply_patch(PatchType::Strategic, &o, &p).unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "b"}]));
    }

    #[test]
    fn bad_patches_are_errors() {
        let o = json!({"a": 1});
        assert!(apply_patch(PatchType::Json, &o, &json!({"op": "add"})).is_err());
        assert!(
            apply_patch(
                PatchType::Json,
                &o,
                &json!([{"op": "remove", "path": "/zz"}])
            )
            .is_err()
        );
        assert!(apply_patch(PatchType::Merge, &o, &json!([1])).is_err());
        assert!(
            apply_patch(
                PatchType::Strategic,
                &json!({"spec": {"containers": [{"name": "a"}]}}),
                &json!({"spec": {"containers": [{"image": "x"}]}})
            )
            .is_err()
        );
    }
}
