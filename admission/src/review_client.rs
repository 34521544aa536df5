//! The API server's side of the wire: AdmissionReview requests for pod CREATE, and reading the
//! answers (base64 patch decoded). For the simulator, the load generator and tests.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::review::{API_VERSION, KIND};

/// An `AdmissionReview` for the CREATE of `pod` in `namespace`, as kube-apiserver sends it:
/// kind/resource/requestKind/requestResource, the pod name, a service-account `userInfo`,
/// `dryRun`, `options` (CreateOptions) and the object with its namespace filled in.
pub fn pod_create_review(namespace: &str, uid: &str, pod: &Value, dry_run: bool) -> Value {
    let mut object = pod.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("namespace".into(), Value::String(namespace.into()));
    }
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": format!("system:serviceaccount:{namespace}:spark"),
                "uid": "8a3c1f4e-2b7d-4e59-9c61-0d2f5e8b7a10",
                "groups": [
                    "system:serviceaccounts",
                    format!("system:serviceaccounts:{namespace}"),
                    "system:authenticated"
                ]
            },
            "object": object,
            "oldObject": null,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The parts of an `AdmissionReview` response the API server acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewResponse {
    pub uid: String,
    pub allowed: bool,
    /// `status.code` and `status.message` of a denial.
    pub status: Option<(u16, String)>,
    /// The decoded JSON Patch (an array of operations), if any.
    pub patch: Option<Value>,
    pub warnings: Vec<String>,
}

/// Reads a response body as the API server would: `apiVersion`/`kind` must be
/// `admission.k8s.io/v1` `AdmissionReview`, `patch` must be base64 of a JSON array with
/// `patchType: JSONPatch`.
pub fn decode_response(body: &[u8]) -> Result<ReviewResponse, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["apiVersion"] != API_VERSION || v["kind"] != KIND {
        return Err(format!(
            "expected webhook response of {API_VERSION}, Kind={KIND}, got {}/{}",
            v["apiVersion"], v["kind"]
        ));
    }
    let r = &v["response"];
    let uid = r["uid"].as_str().ok_or("response.uid missing")?.to_owned();
    let allowed = r["allowed"].as_bool().ok_or("response.allowed missing")?;
    let status = r.get("status").filter(|s| !s.is_null()).map(|s| {
        (
            s["code"].as_u64().unwrap_or(0) as u16,
            s["message"].as_str().unwrap_or("").to_owned(),
        )
    });
    let patch = match r.get("patch").filter(|p| !p.is_null()) {
        None => None,
        Some(p) => {
            let text = p.as_str().ok_or("response.patch is not a base64 string")?;
            if r["patchType"] != "JSONPatch" {
                return Err(format!("patchType {} is not \"JSONPatch\"", r["patchType"]));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("response.patch is not base64: {e}"))?;
            let ops: Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("patch is not JSON: {e}"))?;
            if !ops.is_array() {
                return Err("patch is not a JSON array".into());
            }
            Some(ops)
        }
    };
    let warnings = r["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(ReviewResponse {
        uid,
        allowed,
        status,
        patch,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::MutationConfig;

    #[test]
    fn round_trip_through_review() {
        let pod = json!({"metadata": {"name": "p", "labels": {"spark-role": "driver"}}, "spec": {"containers": []}});
        let req = pod_create_review("spark", "uid-7", &pod, true);
        assert_eq!(req["request"]["object"]["metadata"]["namespace"], "spark");
        let answer = crate::review::review(
            &MutationConfig::default(),
            &serde_json::to_vec(&req).unwrap(),
        )
        .unwrap();
        let r = decode_response(&answer.body).unwrap();
        assert_eq!(r.uid, "uid-7");
        assert!(r.allowed);
        assert!(
            r.patch
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["path"] == "/spec/schedulerName")
        );
    }
}
