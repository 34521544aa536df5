//! The HTTP front: parses Kubernetes REST paths and queries, calls the pipeline, encodes JSON, streams watches.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use super::errors::{ApiError, success_status};
use super::faults::{FaultKind, Faults};
use super::hooks::{Hooks, RequestRecord};
use super::ops::{Api, Caller};
use super::patch::{PatchType, parse_body};
use super::resources::{ResourceDef, Subresource};
use super::responses::{error_response, json_response, not_found_path, value_response};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::store::{DeleteOptions, Propagation, Store, Stored, WriteOptions, needs_view, view_of};
use super::watch::{Watch, WatchParams, WatchStart};
use super::{discovery, table};

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub bookmark_interval: Duration,
    /// Watch timeout when the client gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    pub max_body_bytes: usize,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub api: Api,
    pub store: Store,
    pub hooks: Arc<Hooks>,
    pub settings: Arc<HttpSettings>,
    pub address: SocketAddr,
    pub faults: Faults,
    pub proxies: super::proxy::ServiceProxies,
    pub identities: super::reviews::Identities,
    pub logs: super::container_logs::ContainerLogs,
}

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .fallback(handle)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
}

fn object_response(code: u16, def: &ResourceDef, s: &Stored) -> Response {
    if needs_view(def, &s.value) {
        value_response(code, &view_of(def, &s.value))
    } else {
        json_response(code, s.json())
    }
}

/// The parsed query string (last value of a repeated key wins; empty keys ignored).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: &str) -> Self {
        Query(
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    fn number(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "{k}: invalid value {s:?}: must be a non-negative integer"
                ))
            }),
        }
    }
}

/// A resource request: which resource, namespace, name and subresource.
struct Target {
    def: Arc<ResourceDef>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch_path: bool,
}

enum Route {
    Health,
    Version,
    CoreVersions,
    CoreResources,
    Groups,
    Group(String),
    GroupResources(String, String),
    Resource(Target),
}

fn parse_route(store: &Store, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez", ..] => return Ok(Route::Health),
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::CoreVersions),
        ["api", "v1"] => return Ok(Route::CoreResources),
        ["apis"] => return Ok(Route::Groups),
        ["apis", g] => return Ok(Route::Group((*g).to_owned())),
        ["apis", g, v] => return Ok(Route::GroupResources((*g).to_owned(), (*v).to_owned())),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, third, rest @ ..] if *third != "status" && *third != "finalize" => {
            (Some((*ns).to_owned()), {
                let mut v = vec![*third];
                v.extend_from_slice(rest);
                v
            })
        }
        _ => (None, rest.to_vec()),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [r] => (*r, None, None),
        [r, n] => (*r, Some((*n).to_owned()), None),
        [r, n, s] => (*r, Some((*n).to_owned()), Some((*s).to_owned())),
        _ => return Err(not_found_path()),
    };
    let def = store
        .resource(group, version, resource)
        .ok_or_else(not_found_path)?;
    if namespace.is_some() && !def.namespaced {
        return Err(not_found_path());
    }
    if name.as_deref() == Some("") || namespace.as_deref() == Some("") {
        return Err(not_found_path());
    }
    if let Some(s) = &sub
        && !Subresource::parse(s).is_some_and(|s| def.has(s))
    {
        return Err(not_found_path());
    }
    Ok(Route::Resource(Target {
        def,
        namespace,
        name,
        sub,
        watch_path,
    }))
}

async fn handle(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    // A watch over WebSocket (fabric8, Spark's client); any other request is plain HTTP.
    let ws = ws.ok();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(ticket) = app.faults.hold(user_agent.as_deref()) else {
        return serve(app, method, uri, headers, body, ws).await;
    };
    // Held until the hang ends, then served in arrival order even if the client has gone:
    // a write the client gave up on lands late.
    let held = tokio::spawn(async move {
        ticket.turn().await;
        serve(app, method, uri, headers, body, ws).await
    });
    match held.await {
        Ok(r) => r,
        Err(e) => error_response(&ApiError::new(500, "InternalError", e.to_string())),
    }
}

/// The answer of an injected `api-5xx` or `api-409` fault, if one is in force.
fn injected_error(faults: &Faults, method: &Method, user_agent: Option<&str>) -> Option<ApiError> {
    if faults.is_active(FaultKind::Api5xx, user_agent) {
        return Some(ApiError::new(
            500,
            "InternalError",
            "an error on the server (\"simulated fault: api-5xx\") has prevented the request from succeeding",
        ));
    }
    let write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    (write && faults.is_active(FaultKind::Api409, user_agent)).then(|| {
        ApiError::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your \
             changes to the latest version and try again (simulated fault: api-409)",
        )
    })
}

async fn serve(
    app: AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    ws: Option<WebSocketUpgrade>,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut record = RequestRecord {
        method: method.as_str().to_owned(),
        path: path.clone(),
        query: query.clone(),
        verb: method.as_str().to_lowercase(),
        group: None,
        version: None,
        resource: None,
        subresource: None,
        namespace: None,
        name: None,
        user_agent: user_agent.clone(),
        code: 0,
    };
    let extras = super::extras::Extras {
        store: &app.store,
        identities: &app.identities,
        logs: &app.logs,
        proxies: &app.proxies,
    };
    if let Some(r) = extras.serve(&method, &path, &query, &headers, &body).await {
        return r;
    }
    let q = Query::parse(&query);
    let caller = Caller { user_agent };
    let injected = injected_error(&app.faults, &method, caller.user_agent.as_deref());
    let response = match injected {
        Some(e) => Err(e),
        None => {
            route(
                &app,
                &method,
                &path,
                &q,
                &headers,
                body,
                &caller,
                &mut record,
                ws,
            )
            .await
        }
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    record.code = response.status().as_u16();
    tracing::debug!(method = %record.method, path = %record.path, code = record.code, "request");
    app.hooks.observe(&record);
    response
}

#[allow(clippy::too_many_arguments)]
async fn route(
    app: &AppState,
    method: &Method,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    caller: &Caller,
    record: &mut RequestRecord,
    ws: Option<WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = parse_route(&app.store, path)?;
    let Route::Resource(target) = route else {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {path}"
            )));
        }
        let table = app.store.table();
        let aggregated = discovery::wants_aggregated(accept);
        let doc = match route {
            Route::Health => {
                return Ok((StatusCode::OK, "ok").into_response());
            }
            Route::Version => discovery::version(),
            Route::CoreVersions if aggregated => {
                return Ok(aggregated_response(discovery::aggregated(&table, true)));
            }
            Route::CoreVersions => discovery::core_versions(&app.address.to_string()),
            Route::CoreResources => {
                discovery::resource_list(&table, "", "v1").ok_or_else(not_found_path)?
            }
            Route::Groups if aggregated => {
                return Ok(aggregated_response(discovery::aggregated(&table, false)));
            }
            Route::Groups => discovery::group_list(&table),
            Route::Group(g) => discovery::group(&table, &g).ok_or_else(not_found_path)?,
            Route::GroupResources(g, v) => {
                discovery::resource_list(&table, &g, &v).ok_or_else(not_found_path)?
            }
            Route::Resource(_) => unreachable!("handled above"),
        };
        return Ok(value_response(200, &doc));
    };
    let def = target.def.clone();
    let sub = target.sub.as_deref().and_then(Subresource::parse);
    record.group = Some(def.group.clone());
    record.version = Some(def.version.clone());
    record.resource = Some(def.plural.clone());
    record.subresource = target.sub.clone();
    record.namespace = target.namespace.clone();
    record.name = target.name.clone();
    let ns = target.namespace.clone().unwrap_or_default();
    if def.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(not_found_path());
    }
    let name = target.name.clone();
    let is_watch = target.watch_path || q.flag("watch");
    let printed =
        table::printed(&def, accept, q.get("includeObject")).map_err(ApiError::bad_request)?;
    let set_verb = |record: &mut RequestRecord, v: &str| record.verb = v.to_owned();
    match (method.clone(), name) {
        (Method::GET, None) if is_watch => {
            set_verb(record, "watch");
            let mut events = watch(app, &def, target.namespace.as_deref(), q, caller)?;
            if let Some(printer) = printed {
                events = table::watch_events(events, app.store.clock().clone(), printer);
            }
            Ok(super::watch_response::respond(events, ws))
        }
        (Method::GET, None) => {
            set_verb(record, "list");
            list(app, &def, target.namespace.as_deref(), q, printed)
        }
        (Method::GET, Some(name)) => {
            set_verb(record, "get");
            if let Some(only_create) =
                sub.filter(|s| matches!(s, Subresource::Binding | Subresource::Eviction))
            {
                return Err(ApiError::method_not_allowed(format!(
                    "{} supports only create",
                    only_create.name()
                )));
            }
            let obj = app.store.get(&def, &ns, &name).ok_or_else(|| {
                ApiError::not_found(&def.qualified(), &name).details(&name, &def.group, &def.plural)
            })?;
            if let Some(printer) = printed.filter(|_| sub.is_none()) {
                let rv = obj.value["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("");
                let now = app.store.clock().now();
                return Ok(value_response(
                    200,
                    &table::table(&printer, &[&obj.value], now, rv, true),
                ));
            }
            Ok(object_response(200, &def, &obj))
        }
        (Method::POST, None) => {
            set_verb(record, "create");
            if def.namespaced && target.namespace.is_none() {
                return Err(not_found_path());
            }
            let obj = decode_body(headers, &body)?;
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
            };
            let created = app.api.create(&def, &ns, obj, &opts, caller).await?;
            Ok(object_response(201, &def, &created))
        }
        (Method::POST, Some(name)) if sub == Some(Subresource::Binding) => {
            set_verb(record, "create");
            let binding = decode_body(headers, &body)?;
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
            };
            app.api.bind(&ns, &name, &binding, &opts, caller).await?;
            Ok(value_response(201, &success_status(201, None)))
        }
        (Method::POST, Some(name)) if sub == Some(Subresource::Eviction) => {
            set_verb(record, "create");
            let eviction = decode_body(headers, &body)?;
            let options = eviction
                .get("deleteOptions")
                .filter(|o| !o.is_null())
                .map(|o| o.to_string())
                .unwrap_or_default();
            let mut opts = delete_options(q, options.as_bytes())?;
            opts.dry_run |= q.dry_run()?;
            app.api.evict(&ns, &name, &eviction, &opts, caller).await?;
            Ok(value_response(201, &success_status(201, None)))
        }
        (Method::PUT, Some(name)) => {
            set_verb(record, "update");
            if let Some(only_create) =
                sub.filter(|s| matches!(s, Subresource::Binding | Subresource::Eviction))
            {
                return Err(ApiError::method_not_allowed(format!(
                    "{} supports only create",
                    only_create.name()
                )));
            }
            let obj = decode_body(headers, &body)?;
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
            };
            let updated = app
                .api
                .update(&def, sub, &ns, &name, obj, &opts, caller)
                .await?;
            Ok(object_response(200, &def, &updated))
        }
        (Method::PATCH, Some(name)) => {
            set_verb(record, "patch");
            if let Some(only_create) =
                sub.filter(|s| matches!(s, Subresource::Binding | Subresource::Eviction))
            {
                return Err(ApiError::method_not_allowed(format!(
                    "{} supports only create",
                    only_create.name()
                )));
            }
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            if body.is_empty() {
                return Err(ApiError::bad_request("the patch body is empty"));
            }
            let patch = parse_body(kind, &body)?;
            let opts = WriteOptions {
                dry_run: q.dry_run()?,
            };
            let patched = app
                .api
                .patch(
                    &def,
                    sub,
                    &ns,
                    &name,
                    kind,
                    &patch,
                    q.get("fieldManager"),
                    &opts,
                    caller,
                )
                .await?;
            let code = if patched.created { 201 } else { 200 };
            Ok(object_response(code, &def, &patched.object))
        }
        (Method::DELETE, Some(name)) => {
            set_verb(record, "delete");
            if sub.is_some() {
                return Err(ApiError::method_not_allowed(
                    "subresources cannot be deleted",
                ));
            }
            let opts = delete_options(q, &body)?;
            let deleted = app.api.delete(&def, &ns, &name, &opts).await?;
            let pending = deleted
                .value
                .pointer("/metadata/deletionTimestamp")
                .is_some()
                && app.store.get(&def, &ns, &name).is_some();
            Ok(object_response(
                if pending { 202 } else { 200 },
                &def,
                &deleted,
            ))
        }
        (Method::DELETE, None) => {
            set_verb(record, "deletecollection");
            let opts = delete_options(q, &body)?;
            let selectors = selectors(&def, q)?;
            let deleted = app.store.delete_collection(
                &def,
                target.namespace.as_deref(),
                &selectors,
                &opts,
            )?;
            let rv = app.store.resource_version();
            Ok(json_response(200, list_body(&def, &deleted, rv, None)))
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

fn aggregated_response(doc: Value) -> Response {
    let mut r = value_response(200, &doc);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED),
    );
    r
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or("").trim();
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let v = match base {
        "application/json" | "" | "*/*" => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding the body as JSON: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            serde_yaml::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding the body as YAML: {e}"))
            })?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    if !parsed.is_null() && !parsed.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be an object"));
    }
    let policy = q.get("propagationPolicy").map(str::to_owned).or_else(|| {
        parsed
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    opts.grace_period_seconds = match q.get("gracePeriodSeconds") {
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: {v:?} is not an integer"))
        })?),
        None => parsed.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let orphan = q.flag("orphanDependents")
        || parsed.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    opts.propagation = match policy.as_deref() {
        None | Some("") => {
            if orphan {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        }
        Some("Background" | "Foreground") => Propagation::Background,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    opts.precondition_uid = parsed
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    opts.precondition_resource_version = parsed
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body_dry = parsed
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("All")));
    opts.dry_run = q.dry_run()? || body_dry;
    Ok(opts)
}

fn selectors(def: &ResourceDef, q: &Query) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), def)?,
    })
}

/// `{"kind":"PodList",...,"items":[...]}` from stored objects, reusing their cached JSON.
fn list_body(def: &ResourceDef, items: &[Arc<Stored>], rv: u64, cont: Option<&str>) -> Bytes {
    let mut meta = serde_json::json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = Value::from(c);
    }
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        Value::from(def.list_kind()),
        Value::from(def.api_version()),
        meta
    );
    let mut encoded = Vec::with_capacity(items.len());
    let mut size = head.len() + 2;
    for item in items {
        let b = if needs_view(def, &item.value) {
            Bytes::from(serde_json::to_vec(&view_of(def, &item.value)).unwrap_or_default())
        } else {
            item.json()
        };
        size += b.len() + 1;
        encoded.push(b);
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(head.as_bytes());
    for (i, b) in encoded.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

fn list(
    app: &AppState,
    def: &Arc<ResourceDef>,
    namespace: Option<&str>,
    q: &Query,
    printed: Option<table::Printer>,
) -> Result<Response, ApiError> {
    let selectors = selectors(def, q)?;
    let limit = q
        .number("limit")?
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    if let (Some("Exact"), Some(rv)) = (q.get("resourceVersionMatch"), q.get("resourceVersion")) {
        let current = app.store.resource_version().to_string();
        if rv != current {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({current})"
            )));
        }
    }
    let result = app
        .store
        .list(def, namespace, &selectors, limit, q.get("continue"))?;
    if let Some(printer) = printed {
        let pods: Vec<&Value> = result.items.iter().map(|i| &i.value).collect();
        let rv = result.resource_version.to_string();
        let mut t = table::table(&printer, &pods, app.store.clock().now(), &rv, true);
        if let Some(c) = &result.continue_token {
            t["metadata"]["continue"] = Value::from(c.as_str());
        }
        return Ok(value_response(200, &t));
    }
    Ok(json_response(
        200,
        list_body(
            def,
            &result.items,
            result.resource_version,
            result.continue_token.as_deref(),
        ),
    ))
}

fn watch(
    app: &AppState,
    def: &Arc<ResourceDef>,
    namespace: Option<&str>,
    q: &Query,
    caller: &Caller,
) -> Result<super::watch_response::Events, ApiError> {
    let selectors = selectors(def, q)?;
    let bookmarks = q.flag("allowWatchBookmarks");
    let initial = q.flag("sendInitialEvents");
    if initial && !bookmarks {
        return Err(ApiError::invalid(
            "ListOptions.meta.k8s.io",
            "",
            vec![super::errors::forbidden(
                "sendInitialEvents",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let start =
        if initial {
            WatchStart::Snapshot
        } else {
            match q.get("resourceVersion") {
                None | Some("" | "0") => WatchStart::Snapshot,
                Some(rv) => WatchStart::After(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?),
            }
        };
    let timeout = match q.number("timeoutSeconds")? {
        Some(s) => Duration::from_secs(s),
        None => app.settings.default_watch_timeout,
    };
    let params = WatchParams {
        namespace: namespace.map(str::to_owned),
        selectors,
        start,
        bookmarks,
        initial_events_end: initial,
        bookmark_interval: app.settings.bookmark_interval,
        timeout,
    };
    let w = Watch::open(app.store.clone(), def.clone(), params)?;
    let def = def.clone();
    // Bursts of events go out together (one write, or one message each without a flush in
    // between). Faults: a hang holds events back; `drop-watches` ends the stream.
    let faults = app.faults.clone();
    let agent = caller.user_agent.clone();
    let dropped = {
        let (faults, agent) = (faults.clone(), agent.clone());
        async move { faults.watch_dropped(agent.as_deref()).await }
    };
    let stream = futures::stream::unfold(w, move |mut w| {
        let (def, faults, agent) = (def.clone(), faults.clone(), agent.clone());
        async move {
            let batch = w.next_batch(256).await?;
            faults.hang_over(agent.as_deref()).await;
            let lines: Vec<Bytes> = batch
                .iter()
                .map(|item| Bytes::from(item.to_line(&def)))
                .collect();
            Some((lines, w))
        }
    })
    .take_until(Box::pin(dropped));
    Ok(Box::pin(stream))
}
