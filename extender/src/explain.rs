//! The explain API and the console: `GET /api/v1/apps`, `/api/v1/apps/{namespace}/{app-id}`,
//! `/api/v1/capacity[/{group}]` (JSON, computed by `ClusterState`'s explain functions) and the
//! web console at `/`, a static page over that API with no external assets. With a
//! [`Reviewer`], callers are authenticated and see only what they may (`explain_auth`).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sparkgang_common::api::explain::{
    AppExplanation, AppList, CapacityList, EXPLAIN_API_VERSION, ErrorBody, Reason,
};
use sparkgang_common::cluster::AppKey;

use crate::Extender;
use crate::explain_auth::{Denied, Reviewer, User};

/// The console: one HTML page with its script and style inline.
const CONSOLE: &str = include_str!("console.html");

/// The explain routes, open (`reviewer` `None`) or for authenticated callers only.
pub fn router(ext: Arc<Extender>, reviewer: Option<Arc<Reviewer>>) -> Router {
    Router::new()
        .route("/", get(console))
        .route("/api/v1/apps", get(list_apps))
        .route("/api/v1/apps/{namespace}/{app_id}", get(one_app))
        .route("/api/v1/capacity", get(all_groups))
        .route("/api/v1/capacity/{group}", get(one_group))
        .with_state(Explain { ext, reviewer })
}

/// What the explain handlers share.
#[derive(Clone)]
struct Explain {
    ext: Arc<Extender>,
    reviewer: Option<Arc<Reviewer>>,
}

/// An authenticated caller and the reviewer that answers for it (`None`: open).
type Caller = Option<(Arc<Reviewer>, User)>;

impl Explain {
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        match &self.reviewer {
            None => {
                open_to(headers)?;
                Ok(None)
            }
            Some(r) => Ok(Some((r.clone(), r.authenticate(headers).await?))),
        }
    }
}

/// The open API (on loopback) answers only requests addressed to a loopback host: a web page
/// elsewhere cannot read it through a name that resolves to 127.0.0.1 (DNS rebinding).
fn open_to(headers: &HeaderMap) -> Result<(), Denied> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if matches!(name, "localhost" | "127.0.0.1" | "::1") {
        Ok(())
    } else {
        Err(Denied::Forbidden(format!(
            "the unauthenticated explain API answers requests to localhost, 127.0.0.1 or [::1] \
             only, not to Host {host:?}; use the explain listener (explain.listenAddress) with \
             a bearer token"
        )))
    }
}

/// Whether the caller may see applications of `namespace`.
async fn may_read_apps(caller: &Caller, namespace: &str) -> Result<bool, Denied> {
    match caller {
        None => Ok(true),
        Some((r, user)) => r.allowed(user, "get", "pods", Some(namespace)).await,
    }
}

/// [`may_read_apps`] asked once per namespace within one request.
struct Readable<'a> {
    caller: &'a Caller,
    known: std::collections::BTreeMap<String, bool>,
}

impl<'a> Readable<'a> {
    fn new(caller: &'a Caller) -> Self {
        Readable {
            caller,
            known: std::collections::BTreeMap::new(),
        }
    }

    /// Whether the caller may read the namespace of `ns`, or of driver `ns/name`.
    async fn may(&mut self, ns_or_driver: &str) -> Result<bool, Denied> {
        let ns = ns_or_driver.split('/').next().unwrap_or("");
        if let Some(&may) = self.known.get(ns) {
            return Ok(may);
        }
        let may = may_read_apps(self.caller, ns).await?;
        self.known.insert(ns.to_owned(), may);
        Ok(may)
    }

    /// `items` without those of namespaces the caller may not read.
    async fn keep<T>(&mut self, items: Vec<T>, ns: impl Fn(&T) -> &str) -> Result<Vec<T>, Denied> {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if self.may(ns(&item)).await? {
                kept.push(item);
            }
        }
        Ok(kept)
    }
}

fn forbidden(caller: &Caller, what: &str) -> Response {
    let name = caller.as_ref().map_or("", |(_, u)| u.name.as_str());
    Denied::Forbidden(format!("user {name} may not {what}")).into_response()
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
    State(x): State<Explain>,
    headers: HeaderMap,
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
    let caller = match x.caller(&headers).await {
        Ok(c) => c,
        Err(d) => return d.into_response(),
    };
    if let Some(ns) = &namespace {
        match may_read_apps(&caller, ns).await {
            Ok(true) => {}
            Ok(false) => return forbidden(&caller, &format!("get pods in namespace {ns}")),
            Err(d) => return d.into_response(),
        }
    }
    let mut items = match x
        .ext
        .decide(|state| state.app_summaries(namespace.as_deref()))
    {
        Ok(items) => items,
        Err(e) => return e.into_response(),
    };
    if caller.is_some() && namespace.is_none() {
        items = match Readable::new(&caller).keep(items, |a| &a.namespace).await {
            Ok(kept) => kept,
            Err(d) => return d.into_response(),
        };
    }
    axum::Json(AppList {
        api_version: EXPLAIN_API_VERSION.to_owned(),
        items,
    })
    .into_response()
}

async fn one_app(
    State(x): State<Explain>,
    headers: HeaderMap,
    Path((namespace, app_id)): Path<(String, String)>,
) -> Response {
    let caller = match x.caller(&headers).await {
        Ok(c) => c,
        Err(d) => return d.into_response(),
    };
    match may_read_apps(&caller, &namespace).await {
        Ok(true) => {}
        Ok(false) => return forbidden(&caller, &format!("get pods in namespace {namespace}")),
        Err(d) => return d.into_response(),
    }
    let now = x.ext.clock.now();
    let key = AppKey::new(&namespace, &app_id);
    match x.ext.decide(|state| state.explain_app(&key, now)) {
        Ok(Some(mut e)) => {
            if let Err(d) = hide_other_namespaces(&caller, &mut e).await {
                return d.into_response();
            }
            axum::Json(e).into_response()
        }
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

/// The drivers ahead in a queue can be of other namespaces: a caller sees only those of
/// namespaces it may read (the count stays), and the blocker of another one without its name.
async fn hide_other_namespaces(caller: &Caller, e: &mut AppExplanation) -> Result<(), Denied> {
    let Reason::WaitingBehind { blocker, ahead, .. } = &mut e.reason else {
        return Ok(());
    };
    if caller.is_none() {
        return Ok(());
    }
    let mut readable = Readable::new(caller);
    *ahead = readable.keep(std::mem::take(ahead), |q| &q.driver).await?;
    let may = readable.may(&blocker.driver).await?;
    if !may {
        const HIDDEN: &str = "(an application of another namespace)";
        e.message = e
            .message
            .replace(&blocker.driver, HIDDEN)
            .replace(&blocker.app_id, HIDDEN);
        blocker.app_id = HIDDEN.to_owned();
        blocker.driver = HIDDEN.to_owned();
    }
    Ok(())
}

async fn all_groups(State(x): State<Explain>, headers: HeaderMap) -> Response {
    capacity(&x, &headers, None).await
}

async fn one_group(
    State(x): State<Explain>,
    headers: HeaderMap,
    Path(group): Path<String>,
) -> Response {
    capacity(&x, &headers, Some(group)).await
}

/// Capacity is shown to callers that may list nodes; each queue only with the drivers of
/// namespaces they may read.
async fn capacity(x: &Explain, headers: &HeaderMap, group: Option<String>) -> Response {
    let caller = match x.caller(headers).await {
        Ok(c) => c,
        Err(d) => return d.into_response(),
    };
    if let Some((r, user)) = &caller {
        match r.allowed(user, "list", "nodes", None).await {
            Ok(true) => {}
            Ok(false) => return forbidden(&caller, "list nodes"),
            Err(d) => return d.into_response(),
        }
    }
    let now = x.ext.clock.now();
    let mut groups = match x.ext.decide(|state| state.capacity(group.as_deref(), now)) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    if groups.is_empty()
        && let Some(g) = group
    {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no node and no pending driver is in instance group {g}; GET /api/v1/capacity \
                 lists the groups"
            ),
        );
    }
    if caller.is_some() {
        let mut readable = Readable::new(&caller);
        for g in &mut groups {
            g.queue = match readable
                .keep(std::mem::take(&mut g.queue), |q| &q.driver)
                .await
            {
                Ok(kept) => kept,
                Err(d) => return d.into_response(),
            };
        }
    }
    axum::Json(CapacityList {
        api_version: EXPLAIN_API_VERSION.to_owned(),
        groups,
    })
    .into_response()
}
