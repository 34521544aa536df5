//! The HTTP surface: `POST /filter` (and `/predicates`), health, readiness and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sparkgang_common::api::extender::{ExtenderArgs, ExtenderFilterResult};
use sparkgang_common::pods::spark_role;
use tracing::{debug, info};

use crate::Extender;
use crate::metrics::DecisionLabels;

/// Largest filter request accepted (a full `Nodes` list of a large cluster stays below).
const MAX_BODY: usize = 64 << 20;

/// Routes of the filter listener (kube-scheduler's side).
pub fn filter_router(ext: Arc<Extender>) -> Router {
    Router::new()
        .route("/filter", post(filter))
        .route("/predicates", post(filter))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ext)
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
    if let Ok(guard) = ext.state.lock()
        && let Some(state) = guard.as_ref()
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
/// in `FailedNodes`; only unusable requests (400) and an extender that is not ready (503) are
/// errors, which kube-scheduler retries with backoff.
async fn filter(State(ext): State<Arc<Extender>>, body: Bytes) -> Response {
    let started = Instant::now();
    let args: ExtenderArgs = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("the request body is not kube-scheduler ExtenderArgs JSON: {e}"),
            );
        }
    };
    let Some(pod) = args.pod.as_ref() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "ExtenderArgs has no Pod".to_owned(),
        );
    };
    let candidates = args.candidate_names();
    let now = ext.clock.now();
    let decision = {
        let Ok(mut guard) = ext.state.lock() else {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "state lock poisoned".to_owned(),
            );
        };
        match guard.as_mut() {
            Some(state) if ext.not_ready_reason().is_none() => state.filter(pod, &candidates, now),
            _ => {
                let why = ext
                    .not_ready_reason()
                    .unwrap_or_else(|| "not ready".to_owned());
                return plain(StatusCode::SERVICE_UNAVAILABLE, why);
            }
        }
    };
    ext.submit(decision.effects.iter().cloned());
    let role = spark_role(pod).map_or("other", |r| r.as_str());
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
            ExtenderFilterResult::nodes(vec![node.clone()])
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
            ExtenderFilterResult::all_failed(&candidates, &decision.message)
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
