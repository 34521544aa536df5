//! The HTTP surface: `POST /filter` (and `/predicates`), `POST /preempt`, the explain API and
//! console, health, readiness and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use sparkgang_common::api::extender::ExtenderFilterResult;
use sparkgang_common::cluster::PodKey;
use sparkgang_common::pods::spark_role;
use tracing::{debug, info};

use crate::Extender;
use crate::input::{self, Rejection, in_field};
use crate::metrics::DecisionLabels;
use crate::preempt::preempt;

/// Routes of the filter listener (kube-scheduler's side), with the open explain API.
pub fn filter_router(ext: Arc<Extender>) -> Router {
    filter_router_with(ext, true)
}

/// Routes of the filter listener; the unauthenticated explain API only with `explain` (a
/// listener on loopback).
pub fn filter_router_with(ext: Arc<Extender>, explain: bool) -> Router {
    let router = Router::new()
        .route("/filter", post(filter))
        .route("/predicates", post(filter))
        .route("/preempt", post(preempt))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ext.clone());
    if explain {
        router.merge(crate::explain::router(ext, None))
    } else {
        router
    }
}

/// Routes of the metrics listener (Prometheus and the kubelet).
pub fn metrics_router(ext: Arc<Extender>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ext)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(ext): State<Arc<Extender>>) -> Response {
    match ext.not_ready_reason() {
        None => (StatusCode::OK, "ready").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(ext): State<Arc<Extender>>) -> Response {
    if let Ok(mut guard) = ext.state.lock()
        && let Some(state) = guard.as_mut()
    {
        ext.metrics.observe_state(state);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ext.metrics.encode(),
    )
        .into_response()
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// One kube-scheduler filter call. Scheduling failures are answered 200 with every candidate
/// in `FailedNodes`; only unusable requests (4xx, see [`input`]) and an extender that is not
/// ready (503) are errors, which kube-scheduler retries with backoff.
async fn filter(State(ext): State<Arc<Extender>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match input::read_json_body(&parts.headers, body, "ExtenderArgs").await {
        Ok(b) => b,
        Err(r) => return r.answer("filter", parts.version),
    };
    let started = Instant::now();
    let request = match FilterArgs::parse(&body) {
        Ok(r) => r,
        Err(r) => return r.answer("filter", parts.version),
    };
    let pod = &request.pod;
    let candidates: Vec<&str> = request.candidates.iter().map(|n| n.0.as_ref()).collect();
    let now = ext.clock.now();
    let key = PodKey::of(pod);
    let decided = ext.decide(|state| {
        let d = state.filter(pod, &candidates, now);
        let placed_now = key.as_ref().and_then(|k| state.placed_at_of_pod(k)) == Some(now);
        let queue = key.as_ref().and_then(|k| state.queue_of_pod(k));
        (d, placed_now, queue)
    });
    let (decision, placed_now, queue) = match decided {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    ext.submit(decision.effects.iter().cloned());
    let role = spark_role(pod).map_or("other", |r| r.as_str());
    if placed_now
        && role == "driver"
        && decision.outcome.is_success()
        && let Some(created) = pod.metadata.creation_timestamp.as_ref()
    {
        let waited = now.duration_since(created.0).as_secs_f64().max(0.0);
        ext.metrics.cluster.driver_wait_seconds.observe(waited);
        if let Some(queue) = queue {
            ext.metrics
                .queues
                .wait_seconds
                .get_or_create(&crate::queue_metrics::QueueLabels { queue })
                .observe(waited);
        }
    }
    ext.metrics
        .decisions
        .get_or_create(&DecisionLabels {
            role: role.to_owned(),
            outcome: decision.outcome.as_str().to_owned(),
        })
        .inc();
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let result = match &decision.node {
        Some(node) => {
            info!(
                pod = pod_name,
                namespace,
                role,
                node = node.as_str(),
                outcome = decision.outcome.as_str(),
                "placed"
            );
            if request.as_nodes {
                ExtenderFilterResult::node_objects(vec![node.clone()])
            } else {
                ExtenderFilterResult::nodes(vec![node.clone()])
            }
        }
        None => {
            debug!(
                pod = pod_name,
                namespace,
                role,
                outcome = decision.outcome.as_str(),
                message = decision.message.as_str(),
                "not placed"
            );
            ExtenderFilterResult {
                failed_nodes: Some(
                    candidates
                        .iter()
                        .map(|n| (n.to_string(), decision.message.clone()))
                        .collect(),
                ),
                ..Default::default()
            }
        }
    };
    let body = match serde_json::to_vec(&result) {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    ext.metrics
        .filter_seconds
        .observe(started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What the filter handler reads of kube-scheduler's `ExtenderArgs` (see
/// [`sparkgang_common::api::extender::ExtenderArgs`], which this decodes the same way: Go's
/// PascalCase keys in any case, `null` for unset fields): the pod, and the candidate names.
/// Of `Nodes` (sent when the extender is not `nodeCacheCapable`) only each item's
/// `metadata.name` is read; the rest of every node is skipped unparsed. Names borrow from
/// the body unless they contain escapes.
#[derive(Default)]
struct FilterArgs<'a> {
    pod: Option<Pod>,
    nodes: Option<Vec<Name<'a>>>,
    node_names: Option<Vec<Name<'a>>>,
}

/// A filter request that passed every check: a pod with a name and namespace, and the
/// candidate names (`NodeNames`, else those of `Nodes`).
struct FilterRequest<'a> {
    pod: Pod,
    candidates: Vec<Name<'a>>,
    /// The candidates came as `Nodes` (the extender is not `nodeCacheCapable`): kube-scheduler
    /// then reads the answer's `Nodes` and ignores its `NodeNames`.
    as_nodes: bool,
}

impl<'a> FilterArgs<'a> {
    /// Decodes and checks a body whose size, content type and depth were checked already.
    fn parse(body: &'a [u8]) -> Result<FilterRequest<'a>, Rejection> {
        let args: FilterArgs<'a> = serde_json::from_slice(body).map_err(|e| {
            Rejection::bad_request(format!(
                "the body is not kube-scheduler ExtenderArgs JSON: {e}"
            ))
        })?;
        input::require_pod(args.pod.as_ref(), "ExtenderArgs")?;
        let as_nodes = args.node_names.is_none();
        let candidates = match (args.node_names, args.nodes) {
            (Some(names), _) | (None, Some(names)) => names,
            (None, None) => {
                return Err(Rejection::bad_request(
                    "ExtenderArgs has neither NodeNames nor Nodes (kube-scheduler sends \
                     NodeNames when the extender is nodeCacheCapable, else Nodes)",
                ));
            }
        };
        Ok(FilterRequest {
            pod: args.pod.unwrap_or_default(),
            candidates,
            as_nodes,
        })
    }

    /// The candidate node names, from `NodeNames` or else from `Nodes`.
    #[cfg(test)]
    fn candidate_names(&self) -> Vec<&str> {
        match (&self.node_names, &self.nodes) {
            (Some(names), _) | (None, Some(names)) => names.iter().map(|n| n.0.as_ref()).collect(),
            (None, None) => Vec::new(),
        }
    }
}

/// A string that borrows from the body when it can.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for FilterArgs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FilterArgs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (ExtenderArgs)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilterArgs<'de>, A::Error> {
                let mut out = FilterArgs::default();
                while let Some(key) = map.next_key::<Name<'de>>()? {
                    let key = key.0.as_ref();
                    if key.eq_ignore_ascii_case("Pod") {
                        out.pod = map.next_value().map_err(in_field("Pod"))?;
                    } else if key.eq_ignore_ascii_case("Nodes") {
                        out.nodes = map
                            .next_value::<Option<NodeListNames<'de>>>()
                            .map_err(in_field("Nodes"))?
                            .map(|l| l.0);
                    } else if key.eq_ignore_ascii_case("NodeNames") {
                        out.node_names = map.next_value().map_err(in_field("NodeNames"))?;
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

/// The `metadata.name` of each item of a `v1.NodeList` (items without one are left out).
struct NodeListNames<'a>(Vec<Name<'a>>);

impl<'de> Deserialize<'de> for NodeListNames<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeListNames<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NodeList")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NodeListNames<'de>, A::Error> {
                let mut names = Vec::new();
                while let Some(key) = map.next_key::<Name<'de>>()? {
                    if key.0 == "items" {
                        let items: Option<Vec<NamedObject<'de>>> = map.next_value()?;
                        names = items
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|o| o.0)
                            .collect();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(NodeListNames(names))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object's `metadata.name`, everything else skipped.
struct NamedObject<'a>(Option<Name<'a>>);

impl<'de> Deserialize<'de> for NamedObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = NamedObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NamedObject<'de>, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<Name<'de>>()? {
                    if key.0 == "metadata" {
                        name = map.next_value::<Option<Metadata<'de>>>()?.and_then(|m| m.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(NamedObject(name))
            }
        }
        d.deserialize_map(Object)
    }
}

/// `metadata.name`, the rest of `metadata` skipped.
struct Metadata<'a>(Option<Name<'a>>);

impl<'de> Deserialize<'de> for Metadata<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ObjectMeta")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata<'de>, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<Name<'de>>()? {
                    if key.0 == "name" {
                        name = map.next_value::<Option<Name<'de>>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Metadata(name))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Vec<String> {
        let args: FilterArgs<'_> = serde_json::from_str(body).unwrap();
        args.candidate_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The lean decoding reads the candidates as `ExtenderArgs::candidate_names` does.
    #[test]
    fn candidate_names_as_extender_args_reads_them() {
        let bodies = [
            r#"{"Pod":null,"Nodes":null,"NodeNames":["a","b\u0041"]}"#,
            r#"{"pod":null,"nodenames":null,"NODES":{"metadata":{},"items":[
                {"metadata":{"name":"n1","labels":{"x":"y"}},"status":{"images":[{"names":["i"]}]}},
                {"metadata":{"labels":{}}},
                {"kind":"Node","metadata":{"name":"n\"2"}}]}}"#,
            r#"{"Nodes":{"items":[{"metadata":{"name":"x"}}]},"NodeNames":["y"]}"#,
            r#"{"Nodes":{"items":null},"Other":[1,2,{"a":null}]}"#,
            r#"{}"#,
        ];
        for body in bodies {
            let full: sparkgang_common::api::extender::ExtenderArgs =
                serde_json::from_str(body).unwrap();
            assert_eq!(names(body), full.candidate_names(), "{body}");
        }
        assert!(serde_json::from_str::<FilterArgs<'_>>(r#"{"NodeNames":[1]}"#).is_err());
        assert!(serde_json::from_str::<FilterArgs<'_>>("[]").is_err());
    }
}
