//! `AdmissionReview` (`admission.k8s.io/v1`) in and out: request bytes → response bytes.
//!
//! kube-rs' `AdmissionResponse` writes `patch` as an array of numbers; the API server wants a
//! base64 string, so the response is written here with its own types.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::metrics::ReviewOutcome;
use k8s_openapi::api::core::v1::Pod;

use crate::mutation::{
    self, ApiReads, MESSAGE_PREFIX, Mutation, MutationConfig, PatchKind, Role, Verdict,
};

/// The only `apiVersion` accepted and answered.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The only `kind` accepted and answered.
pub const KIND: &str = "AdmissionReview";
/// `status.code` of a denial: the pod as sent is malformed (HTTP 400 Bad Request).
pub const DENIAL_CODE: u16 = 400;

/// A request body that is not a usable AdmissionReview: answered with HTTP 400 and `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadReview {
    pub message: String,
}

impl BadReview {
    fn new(message: impl Into<String>) -> Self {
        BadReview {
            message: format!("{MESSAGE_PREFIX}{}", message.into()),
        }
    }
}

/// A review answered: the response body and what the metrics need.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The JSON `AdmissionReview` response.
    pub body: Vec<u8>,
    pub role: Option<Role>,
    pub outcome: ReviewOutcome,
    /// For denials, the error class.
    pub denial_reason: Option<&'static str>,
    /// For patches, what they change.
    pub patch_kinds: Vec<PatchKind>,
    /// `namespace/name` of the object under review, for logs (`name` is empty for
    /// `generateName` creates).
    pub subject: String,
}

#[derive(Deserialize)]
struct ReviewIn<'a> {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    uid: String,
    #[serde(default)]
    resource: Option<GroupVersionResource>,
    #[serde(default)]
    sub_resource: Option<String>,
    operation: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    /// Read (to reject a malformed request) but not needed: the webhook has no side effects,
    /// so a dry run gets exactly the same answer.
    #[serde(default)]
    #[allow(dead_code)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
struct GroupVersionResource {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resource: String,
}

#[derive(Serialize)]
struct ReviewOut<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Serialize)]
struct StatusOut<'a> {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: &'a str,
}

/// Answers one `AdmissionReview` request body, knowing nothing of an executor's driver.
///
/// Only `CREATE` of `pods` (core group, no subresource) is looked at; everything else is
/// allowed untouched. A body that is not an `admission.k8s.io/v1` `AdmissionReview` with a
/// `request` is a [`BadReview`]. Never panics on any input.
pub fn review(config: &MutationConfig, body: &[u8]) -> Result<Answer, BadReview> {
    Ok(answer(config, parse(body)?, &ApiReads::default()))
}

/// A decoded review request, and the pod under review when it is a pod `CREATE`.
pub struct Review<'a> {
    request: RequestIn<'a>,
    pod: Option<Result<Pod, String>>,
}

impl Review<'_> {
    /// The namespace and name of the driver whose priority class the executor under review
    /// inherits, when it names none of its own ([`mutation::driver_to_look_up`]): the shell
    /// reads it and passes it to [`answer`].
    pub fn driver_to_look_up(&self) -> Option<(&str, &str)> {
        let pod = self.pod.as_ref()?.as_ref().ok()?;
        let driver = mutation::driver_to_look_up(pod)?;
        Some((self.request.namespace.as_deref().unwrap_or(""), driver))
    }

    /// The queue a driver under review names ([`mutation::queue_to_check`]): the shell reads
    /// it and passes what it found to [`answer`].
    pub fn queue_to_check(&self) -> Option<&str> {
        mutation::queue_to_check(self.pod.as_ref()?.as_ref().ok()?)
    }
}

/// Decodes a request body; [`BadReview`] when it is not an `admission.k8s.io/v1`
/// `AdmissionReview` with a `request`.
pub fn parse(body: &[u8]) -> Result<Review<'_>, BadReview> {
    let input: ReviewIn<'_> = match serde_json::from_slice(body) {
        Ok(input) => input,
        Err(e) => {
            // Say what is wrong with the envelope first, if that is what is wrong.
            if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
                check_envelope(envelope.api_version.as_deref(), envelope.kind.as_deref())?;
                return Err(BadReview::new(format!(
                    "request is not an admission request: {e}"
                )));
            }
            return Err(BadReview::new(format!(
                "the body is not an AdmissionReview: {e}"
            )));
        }
    };
    check_envelope(input.api_version.as_deref(), input.kind.as_deref())?;
    let request = input
        .request
        .ok_or_else(|| BadReview::new("the AdmissionReview has no request"))?;
    let is_pod = request
        .resource
        .as_ref()
        .is_some_and(|r| r.group.is_empty() && r.resource == "pods")
        && request.sub_resource.as_deref().unwrap_or("").is_empty();
    let pod = (is_pod && request.operation == "CREATE").then(|| match request.object {
        None => Err("request.object is missing".to_owned()),
        Some(raw) => {
            mutation::parse_pod(raw.get()).map_err(|e| format!("request.object is not a Pod: {e}"))
        }
    });
    Ok(Review { request, pod })
}

/// The answer to a decoded review, with what the shell read of an executor's driver.
pub fn answer(config: &MutationConfig, review: Review<'_>, reads: &ApiReads) -> Answer {
    let Review { request, pod } = review;
    let namespace = request.namespace.as_deref().unwrap_or("");
    let mutation = pod.map(|pod| match pod {
        Ok(pod) => mutation::mutate_pod_with_reads(config, namespace, &pod, reads),
        Err(why) => invalid_object(&why),
    });
    let mut answer = respond(&request.uid, mutation);
    if answer.role.is_some() || answer.denial_reason.is_some() {
        answer.subject = format!(
            "{}/{}",
            request.namespace.as_deref().unwrap_or(""),
            request.name.as_deref().unwrap_or("")
        );
    }
    answer
}

/// The envelope alone, to explain a body whose `request` does not decode.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

fn check_envelope(api_version: Option<&str>, kind: Option<&str>) -> Result<(), BadReview> {
    if api_version != Some(API_VERSION) {
        return Err(BadReview::new(format!(
            "apiVersion {api_version:?} is not supported; send {API_VERSION:?} (admissionReviewVersions: [v1])"
        )));
    }
    if kind != Some(KIND) {
        return Err(BadReview::new(format!("kind {kind:?} is not {KIND:?}")));
    }
    Ok(())
}

fn invalid_object(message: &str) -> Mutation {
    Mutation {
        role: None,
        verdict: Verdict::Deny {
            reason: "invalid-object",
            message: format!("{MESSAGE_PREFIX}{message}"),
            warnings: Vec::new(),
        },
    }
}

fn respond(uid: &str, mutation: Option<Mutation>) -> Answer {
    let Some(Mutation { role, verdict }) = mutation else {
        return Answer {
            body: encode(ResponseOut {
                uid,
                allowed: true,
                status: None,
                patch: None,
                patch_type: None,
                warnings: &[],
            }),
            role: None,
            outcome: ReviewOutcome::ignored,
            denial_reason: None,
            patch_kinds: Vec::new(),
            subject: String::new(),
        };
    };
    match verdict {
        Verdict::Allow {
            patch,
            warnings,
            kinds,
            ignored,
        } => {
            let (patch, patch_type, outcome) = if patch.is_empty() {
                let outcome = if ignored {
                    ReviewOutcome::ignored
                } else {
                    ReviewOutcome::unchanged
                };
                (None, None, outcome)
            } else {
                // Serialising plain strings and maps cannot fail.
                let json = serde_json::to_vec(&patch).unwrap_or_default();
                let b64 = base64::engine::general_purpose::STANDARD.encode(json);
                (Some(b64), Some("JSONPatch"), ReviewOutcome::patched)
            };
            Answer {
                body: encode(ResponseOut {
                    uid,
                    allowed: true,
                    status: None,
                    patch,
                    patch_type,
                    warnings: &warnings,
                }),
                role,
                outcome,
                denial_reason: None,
                patch_kinds: kinds,
                subject: String::new(),
            }
        }
        Verdict::Deny {
            reason,
            message,
            warnings,
        } => Answer {
            body: encode(ResponseOut {
                uid,
                allowed: false,
                status: Some(StatusOut {
                    status: "Failure",
                    code: DENIAL_CODE,
                    reason: "BadRequest",
                    message: &message,
                }),
                patch: None,
                patch_type: None,
                warnings: &warnings,
            }),
            role,
            outcome: ReviewOutcome::denied,
            denial_reason: Some(reason),
            patch_kinds: Vec::new(),
            subject: String::new(),
        },
    }
}

fn encode(response: ResponseOut<'_>) -> Vec<u8> {
    let review = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response,
    };
    // Only strings, booleans and numbers: cannot fail.
    serde_json::to_vec(&review).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
            .unwrap()
    }

    fn pod_request(operation: &str, object: Value) -> Value {
        json!({"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
               "resource": {"group": "", "version": "v1", "resource": "pods"},
               "namespace": "spark", "operation": operation, "object": object, "dryRun": false})
    }

    fn answer(b: &[u8]) -> (Answer, Value) {
        let a = review(&MutationConfig::default(), b).unwrap();
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        (a, v)
    }

    #[test]
    fn patch_is_a_base64_string_and_uid_is_echoed() {
        let object = json!({"metadata": {"labels": {"spark-role": "driver", "spark-app-selector": "spark-1"}}, "spec": {"containers": []}});
        let (a, v) = answer(&body(pod_request("CREATE", object)));
        assert_eq!(a.outcome, ReviewOutcome::patched);
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], KIND);
        assert_eq!(v["response"]["uid"], "u-1");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&patch).unwrap();
        assert!(
            ops.as_array()
                .unwrap()
                .iter()
                .any(|o| o["path"] == "/spec/schedulerName")
        );
    }

    #[test]
    fn other_operations_and_resources_are_allowed_without_patch() {
        let object = json!({"metadata": {"labels": {"spark-role": "driver"}}, "spec": {}});
        for req in [
            pod_request("UPDATE", object.clone()),
            pod_request("DELETE", Value::Null),
            json!({"uid": "u-1", "resource": {"group": "", "version": "v1", "resource": "configmaps"}, "operation": "CREATE", "object": object}),
            json!({"uid": "u-1", "resource": {"group": "", "version": "v1", "resource": "pods"}, "subResource": "status", "operation": "CREATE", "object": object}),
            json!({"uid": "u-1", "resource": {"group": "apps", "version": "v1", "resource": "pods"}, "operation": "CREATE", "object": object}),
        ] {
            let (a, v) = answer(&body(req));
            assert_eq!(a.outcome, ReviewOutcome::ignored);
            assert_eq!(v["response"], json!({"uid": "u-1", "allowed": true}));
        }
    }

    #[test]
    fn bad_envelopes_are_bad_reviews() {
        for (b, want) in [
            (b"not json".to_vec(), "not an AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#.to_vec(), "v1beta1"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Other","request":{}}"#.to_vec(), "Other"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), "no request"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#.to_vec(), "uid"),
        ] {
            let e = review(&MutationConfig::default(), &b).unwrap_err();
            assert!(e.message.starts_with(MESSAGE_PREFIX) && e.message.contains(want), "{}", e.message);
        }
    }

    #[test]
    fn an_object_that_is_not_a_pod_is_denied() {
        let (a, v) = answer(&body(pod_request(
            "CREATE",
            json!({"metadata": {"labels": 3}}),
        )));
        assert_eq!(a.outcome, ReviewOutcome::denied);
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 400);
        assert!(
            v["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with(MESSAGE_PREFIX)
        );
    }
}
