//! `POST /preempt`: kube-scheduler's preemption, taken over for Spark pods, guarded for others.
//!
//! kube-scheduler sends `ExtenderPreemptionArgs` (`NodeNameToMetaVictims` when the extender is
//! `nodeCacheCapable`, else `NodeNameToVictims` with whole pods) and reads back
//! `ExtenderPreemptionResult.NodeNameToMetaVictims`. With preemption on, a Spark pod of ours
//! gets no candidates: for a driver the extender makes its own gang plan instead
//! (`ClusterState::preempt_for_kube_scheduler`). Other pods keep the candidates whose victims
//! include no Spark pod (`ClusterState::guard_preemption`). This module decodes, checks and
//! answers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use sparkgang_common::api::extender::{ExtenderPreemptionResult, MetaPod, MetaVictims, Victims};
use sparkgang_common::cluster::GuardedCandidates;
use tracing::info;

use crate::Extender;
use crate::input::{self, Rejection, in_field};

const WHAT: &str = "ExtenderPreemptionArgs";

/// One kube-scheduler preemption call: the candidates whose victims include no Spark pod,
/// victims unchanged; 4xx for unusable requests, 503 when not ready (as `/filter`).
pub async fn preempt(State(ext): State<Arc<Extender>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match input::read_json_body(&parts.headers, body, WHAT).await {
        Ok(b) => b,
        Err(r) => return r.answer("preempt", parts.version),
    };
    let (pod, candidates) = match PreemptArgs::parse(&body) {
        Ok(r) => r,
        Err(r) => return r.answer("preempt", parts.version),
    };
    let offered = candidates.len();
    let mut taken_over = None;
    let guarded = ext.decide(|state| {
        // A Spark pod of ours is preempted for by the extender's gang plan, never pod by pod:
        // kube-scheduler gets no candidates.
        match state.preempt_for_kube_scheduler(&pod, ext.clock.now()) {
            Some(decision) => {
                taken_over = Some(decision);
                GuardedCandidates::default()
            }
            None => state.guard_preemption(candidates),
        }
    });
    let guarded = match guarded {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    if let Some(decision) = taken_over {
        info!(
            pod = pod_name,
            namespace,
            offered,
            outcome = decision.outcome.as_str(),
            decision = decision.message.as_str(),
            "kube-scheduler's preemption taken over by the gang plan"
        );
        ext.submit(decision.effects);
    }
    for (node, uids) in &guarded.withheld {
        info!(
            pod = pod_name,
            namespace,
            node = node.as_str(),
            spark_victims = ?uids,
            "preemption withheld: a victim is a Spark pod"
        );
    }
    info!(
        pod = pod_name,
        namespace,
        offered,
        allowed = guarded.allowed.len(),
        "preemption candidates"
    );
    let result = ExtenderPreemptionResult {
        node_name_to_meta_victims: Some(guarded.allowed),
    };
    match serde_json::to_vec(&result) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `ExtenderPreemptionArgs` as kube-scheduler sends it (Go's keys in any case, `null` for
/// unset fields), each field's decoding error named by the field.
#[derive(Default)]
struct PreemptArgs {
    pod: Option<Pod>,
    victims: Option<BTreeMap<String, Victims>>,
    meta_victims: Option<BTreeMap<String, MetaVictims>>,
}

impl PreemptArgs {
    /// Decodes and checks a body whose size, content type and depth were checked already:
    /// the pod (with a name and namespace) and the candidates, node → victims by UID.
    fn parse(body: &[u8]) -> Result<(Pod, BTreeMap<String, MetaVictims>), Rejection> {
        let args: PreemptArgs = serde_json::from_slice(body).map_err(|e| {
            Rejection::bad_request(format!("the body is not kube-scheduler {WHAT} JSON: {e}"))
        })?;
        input::require_pod(args.pod.as_ref(), WHAT)?;
        let candidates = match (args.meta_victims, args.victims) {
            (Some(_), Some(_)) => {
                return Err(Rejection::bad_request(format!(
                    "{WHAT} has both NodeNameToMetaVictims and NodeNameToVictims; kube-scheduler \
                     sends one of them"
                )));
            }
            (Some(meta), None) => {
                for (node, victims) in &meta {
                    for (i, p) in victims.pods.iter().flatten().enumerate() {
                        if p.uid.is_empty() {
                            return Err(Rejection::bad_request(format!(
                                "NodeNameToMetaVictims[{node:?}].Pods[{i}] has no UID"
                            )));
                        }
                    }
                }
                meta
            }
            (None, Some(full)) => to_meta_victims(full)?,
            (None, None) => {
                return Err(Rejection::bad_request(format!(
                    "{WHAT} has neither NodeNameToMetaVictims nor NodeNameToVictims \
                     (kube-scheduler sends NodeNameToMetaVictims when the extender is \
                     nodeCacheCapable, else NodeNameToVictims)"
                )));
            }
        };
        Ok((args.pod.unwrap_or_default(), candidates))
    }
}

/// Whole victim pods to victims by UID, as kube-scheduler converts them for a
/// `nodeCacheCapable` extender.
fn to_meta_victims(
    full: BTreeMap<String, Victims>,
) -> Result<BTreeMap<String, MetaVictims>, Rejection> {
    full.into_iter()
        .map(|(node, victims)| {
            let pods = victims
                .pods
                .map(|pods| {
                    pods.into_iter()
                        .enumerate()
                        .map(|(i, p)| match p.metadata.uid {
                            Some(uid) if !uid.is_empty() => Ok(MetaPod { uid }),
                            _ => Err(Rejection::bad_request(format!(
                                "NodeNameToVictims[{node:?}].Pods[{i}] has no metadata.uid"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            Ok((
                node,
                MetaVictims {
                    pods,
                    num_pdb_violations: victims.num_pdb_violations,
                },
            ))
        })
        .collect()
}

impl<'de> Deserialize<'de> for PreemptArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PreemptArgs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (ExtenderPreemptionArgs)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PreemptArgs, A::Error> {
                let mut out = PreemptArgs::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key.eq_ignore_ascii_case("Pod") {
                        out.pod = map.next_value().map_err(in_field("Pod"))?;
                    } else if key.eq_ignore_ascii_case("NodeNameToVictims") {
                        out.victims = map.next_value().map_err(in_field("NodeNameToVictims"))?;
                    } else if key.eq_ignore_ascii_case("NodeNameToMetaVictims") {
                        out.meta_victims = map
                            .next_value()
                            .map_err(in_field("NodeNameToMetaVictims"))?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(Pod, BTreeMap<String, MetaVictims>), String> {
        PreemptArgs::parse(body.as_bytes()).map_err(|r| r.message)
    }

    const POD: &str = r#""Pod":{"metadata":{"name":"p","namespace":"ns"}}"#;

    #[test]
    fn meta_victims_and_whole_victims_read_alike() {
        let meta = format!(
            r#"{{{POD},"NodeNameToVictims":null,"NodeNameToMetaVictims":{{"a":{{"Pods":[{{"UID":"u1"}},{{"uid":"u2"}}],"NumPDBViolations":1}},"b":{{"Pods":null,"NumPDBViolations":0}}}}}}"#
        );
        let full = format!(
            r#"{{{POD},"nodenametovictims":{{"a":{{"Pods":[{{"metadata":{{"uid":"u1","name":"x"}}}},{{"metadata":{{"uid":"u2"}}}}],"NumPDBViolations":1}},"b":{{"Pods":null,"NumPDBViolations":0}}}}}}"#
        );
        let (pod, from_meta) = parse(&meta).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(parse(&full).unwrap().1, from_meta);
        let uids: Vec<&str> = from_meta["a"]
            .pods
            .iter()
            .flatten()
            .map(|p| p.uid.as_str())
            .collect();
        assert_eq!(uids, ["u1", "u2"]);
        assert_eq!(from_meta["a"].num_pdb_violations, 1);
        assert_eq!(from_meta["b"].pods, None);
    }

    #[test]
    fn unusable_arguments_are_named() {
        for (body, want) in [
            (
                r#"{"NodeNameToMetaVictims":{}}"#.to_owned(),
                "ExtenderPreemptionArgs has no Pod",
            ),
            (
                format!("{{{POD}}}"),
                "has neither NodeNameToMetaVictims nor NodeNameToVictims",
            ),
            (
                format!(r#"{{{POD},"NodeNameToMetaVictims":{{}},"NodeNameToVictims":{{}}}}"#),
                "has both NodeNameToMetaVictims and NodeNameToVictims",
            ),
            (
                format!(r#"{{{POD},"NodeNameToMetaVictims":{{"a":{{"Pods":[{{"UID":""}}]}}}}}}"#),
                r#"NodeNameToMetaVictims["a"].Pods[0] has no UID"#,
            ),
            (
                format!(
                    r#"{{{POD},"NodeNameToVictims":{{"a":{{"Pods":[{{"metadata":{{"uid":"u"}}}},{{"metadata":{{}}}}]}}}}}}"#
                ),
                r#"NodeNameToVictims["a"].Pods[1] has no metadata.uid"#,
            ),
            (
                format!(r#"{{{POD},"NodeNameToMetaVictims":{{"a":{{"Pods":"x"}}}}}}"#),
                "not kube-scheduler ExtenderPreemptionArgs JSON: NodeNameToMetaVictims: invalid type",
            ),
            (
                r#"{"Pod":{"metadata":{"name":"p"}},"NodeNameToMetaVictims":{}}"#.to_owned(),
                "ExtenderPreemptionArgs.Pod has no metadata.namespace",
            ),
        ] {
            let message = parse(&body).unwrap_err();
            assert!(message.contains(want), "{body}: {message}");
        }
    }
}
