//! The explain API and the console: `GET /api/v1/apps`, `/api/v1/apps/{namespace}/{app-id}`,
//! `/api/v1/capacity[/{group}]` (JSON, computed by `ClusterState`'s explain functions) and the
//! web console at `/`, a static page over that API with no external assets.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sparkgang_common::api::explain::{AppList, CapacityList, EXPLAIN_API_VERSION};
use sparkgang_common::cluster::AppKey;

use crate::Extender;

/// The console: one HTML page with its script and style inline.
const CONSOLE: &str = include_str!("console.html");

/// The explain routes, to merge into a listener's router.
pub fn routes() -> Router<Arc<Extender>> {
    Router::new()
        .route("/", get(console))
        .route("/api/v1/apps", get(list_apps))
        .route("/api/v1/apps/{namespace}/{app_id}", get(one_app))
        .route("/api/v1/capacity", get(all_groups))
        .route("/api/v1/capacity/{group}", get(one_group))
}

/// An error answer: `{"error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

fn error(status: StatusCode, error: String) -> Response {
    (status, axum::Json(ErrorBody { error })).into_response()
}

async fn console() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CONSOLE,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    namespace: Option<String>,
}

async fn list_apps(
    State(ext): State<Arc<Extender>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let namespace = match params {
        Ok(Query(p)) => p.namespace,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{e}; the accepted parameter is namespace=NAME"),
            );
        }
    };
    match ext.decide(|state| state.app_summaries(namespace.as_deref())) {
        Ok(items) => axum::Json(AppList {
            api_version: EXPLAIN_API_VERSION.to_owned(),
            items,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn one_app(
    State(ext): State<Arc<Extender>>,
    Path((namespace, app_id)): Path<(String, String)>,
) -> Response {
    let now = ext.clock.now();
    let key = AppKey::new(&namespace, &app_id);
    match ext.decide(|state| state.explain_app(&key, now)) {
        Ok(Some(e)) => axum::Json(e).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!(
                "sparkgang knows no Spark application {app_id} in namespace {namespace}: the \
                 id is the driver's spark-app-id label (or spark-app-selector); GET \
                 /api/v1/apps?namespace={namespace} lists the known ones"
            ),
        ),
        Err(e) => e.into_response(),
    }
}

async fn all_groups(State(ext): State<Arc<Extender>>) -> Response {
    capacity(&ext, None)
}

async fn one_group(State(ext): State<Arc<Extender>>, Path(group): Path<String>) -> Response {
    capacity(&ext, Some(group))
}

fn capacity(ext: &Extender, group: Option<String>) -> Response {
    let now = ext.clock.now();
    match ext.decide(|state| state.capacity(group.as_deref(), now)) {
        Ok(groups) if groups.is_empty() && group.is_some() => error(
            StatusCode::NOT_FOUND,
            format!(
                "no node and no pending driver is in instance group {}; GET /api/v1/capacity \
                 lists the groups",
                group.unwrap_or_default()
            ),
        ),
        Ok(groups) => axum::Json(CapacityList {
            api_version: EXPLAIN_API_VERSION.to_owned(),
            groups,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}
