//! Server-side printing, as kube-apiserver answers `Accept: application/json;as=Table;
//! g=meta.k8s.io;v=v1` (what `kubectl get` asks for): a `meta.k8s.io/v1` Table. Pods get
//! kubectl's columns (NAME, READY, STATUS, RESTARTS, AGE; `-o wide` adds IP, NODE, NOMINATED
//! NODE and READINESS GATES); custom resources get their CRD's `additionalPrinterColumns` (or
//! NAME and AGE). Each row carries the object's metadata, or the object (`includeObject`).
//! Other built-in resources are answered as they are; kubectl prints those itself.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::SharedClock;
use super::resources::ResourceDef;
use super::watch_response::Events;

/// Which columns a Table has.
#[derive(Debug, Clone)]
pub enum Columns {
    Pods,
    /// A CRD's `additionalPrinterColumns` (raw).
    Custom(Arc<Vec<Value>>),
}

/// How to print a resource: its columns and what each row carries.
#[derive(Debug, Clone)]
pub struct Printer {
    pub columns: Columns,
    pub include: Include,
}

/// How to answer with a Table, when the client asks for one and the resource is printed here
/// (pods and custom resources).
pub fn printed(
    def: &ResourceDef,
    accept: &str,
    include_object: Option<&str>,
) -> Result<Option<Printer>, String> {
    let columns = match &def.printer_columns {
        _ if !wants_table(accept) => return Ok(None),
        _ if def.group.is_empty() && def.plural == "pods" => Columns::Pods,
        Some(custom) => Columns::Custom(Arc::new(custom.clone())),
        None => return Ok(None),
    };
    let include = Include::parse(include_object)?;
    Ok(Some(Printer { columns, include }))
}

/// The Table of `objects` at `now`; `headers: false` leaves the column definitions out (the
/// events of a watch after the first).
pub fn table(
    printer: &Printer,
    objects: &[&Value],
    now: Timestamp,
    resource_version: &str,
    headers: bool,
) -> Value {
    match &printer.columns {
        Columns::Pods => pods(objects, now, resource_version, headers, printer.include),
        Columns::Custom(columns) => custom_table(
            columns,
            objects,
            now,
            resource_version,
            headers,
            printer.include,
        ),
    }
}

/// A watch's events with their objects as Tables (the first with the columns).
pub fn watch_events(events: Events, clock: SharedClock, printer: Printer) -> Events {
    let mut first = true;
    Box::pin(events.map(move |batch| {
        let now = clock.now();
        let lines = batch
            .iter()
            .map(|l| watch_event(l, now, first, &printer))
            .collect();
        first = false;
        lines
    }))
}

/// Whether the client asked for a Table (kubectl lists it first, before plain JSON).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// kubectl's columns for pods; priority 1 shows with `-o wide`.
fn columns() -> Value {
    let column = |name: &str, kind: &str, format: &str, priority: u8, description: &str| {
        json!({"name": name, "type": kind, "format": format, "priority": priority,
               "description": description})
    };
    json!([
        column(
            "Name",
            "string",
            "name",
            0,
            "Name must be unique within a namespace."
        ),
        column(
            "Ready",
            "string",
            "",
            0,
            "The aggregate readiness state of this pod for accepting traffic."
        ),
        column(
            "Status",
            "string",
            "",
            0,
            "The aggregate status of the containers in this pod."
        ),
        column(
            "Restarts",
            "string",
            "",
            0,
            "The number of times the containers in this pod have been restarted."
        ),
        column("Age", "string", "", 0, "Time since the pod was created."),
        column("IP", "string", "", 1, "The pod's IP address."),
        column("Node", "string", "", 1, "The node the pod is bound to."),
        column(
            "Nominated Node",
            "string",
            "",
            1,
            "The node preemption made room on."
        ),
        column(
            "Readiness Gates",
            "string",
            "",
            1,
            "The pod's readiness gates."
        ),
    ])
}

/// What each row carries besides its cells (`includeObject`: kubectl asks for `Object` to
/// sort by a field of the pod, else gets `Metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    /// The `includeObject` query parameter; anything else is a 400 naming what is accepted.
    pub fn parse(value: Option<&str>) -> Result<Include, String> {
        match value {
            None | Some("" | "Metadata") => Ok(Include::Metadata),
            Some("None") => Ok(Include::None),
            Some("Object") => Ok(Include::Object),
            Some(other) => Err(format!(
                "includeObject: {other:?} is not one of None, Metadata or Object"
            )),
        }
    }
}

/// The Table of `pods` at `now`.
pub fn pods(
    pods: &[&Value],
    now: Timestamp,
    resource_version: &str,
    headers: bool,
    include: Include,
) -> Value {
    let rows: Vec<Value> = pods.iter().map(|p| row(p, now, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": if headers { columns() } else { json!([]) },
        "rows": rows,
    })
}

/// The event of a watch with its object as a one-row Table; other events (errors, bookmarks)
/// as they are.
pub fn watch_event(line: &Bytes, now: Timestamp, headers: bool, printer: &Printer) -> Bytes {
    let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
        return line.clone();
    };
    let object = &event["object"];
    if matches!(event["type"].as_str(), Some("BOOKMARK" | "ERROR")) {
        return line.clone();
    }
    let rv = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    event["object"] = table(printer, &[object], now, &rv, headers);
    let mut out = serde_json::to_vec(&event).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn row(pod: &Value, now: Timestamp, include: Include) -> Value {
    let cells = pod_cells(pod, now);
    with_object(cells, pod, include)
}

/// A row: its cells, and the object's metadata or the object as `include` says.
fn with_object(cells: Value, object: &Value, include: Include) -> Value {
    let mut metadata = object["metadata"].clone();
    if let Some(m) = metadata.as_object_mut() {
        m.remove("managedFields");
    }
    match include {
        Include::None => json!({"cells": cells}),
        Include::Metadata => json!({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}}),
        Include::Object => json!({"cells": cells, "object": object}),
    }
}

fn pod_cells(pod: &Value, now: Timestamp) -> Value {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let containers = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    let age = pod["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map_or_else(|| "<unknown>".to_owned(), |t| human_age(now, t));
    let none = |v: &Value| v.as_str().unwrap_or("<none>").to_owned();
    let gates = match pod["spec"]["readinessGates"].as_array() {
        Some(g) if !g.is_empty() => {
            let conditions = pod["status"]["conditions"].as_array();
            let met = g
                .iter()
                .filter(|gate| {
                    conditions
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == gate["conditionType"] && c["status"] == "True")
                })
                .count();
            format!("{met}/{}", g.len())
        }
        _ => "<none>".to_owned(),
    };
    json!([
        pod["metadata"]["name"],
        format!("{ready}/{containers}"),
        status(pod),
        restarts.to_string(),
        age,
        none(&pod["status"]["podIP"]),
        none(&pod["spec"]["nodeName"]),
        none(&pod["status"]["nominatedNodeName"]),
        gates,
    ])
}

/// The STATUS column as kubectl words it: a deleted pod is `Terminating`, a container's
/// waiting or terminated reason wins over the phase, a gated pod is `SchedulingGated`.
pub fn status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".to_owned();
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let reason = statuses.iter().rev().find_map(|c| {
        let state = &c["state"];
        state["waiting"]["reason"]
            .as_str()
            .or_else(|| state["terminated"]["reason"].as_str())
            .map(str::to_owned)
            .or_else(|| {
                let t = &state["terminated"];
                t.is_object().then(|| match t["signal"].as_i64() {
                    Some(s) if s != 0 => format!("Signal:{s}"),
                    _ => format!("ExitCode:{}", t["exitCode"]),
                })
            })
    });
    let gated = pod["spec"]["schedulingGates"]
        .as_array()
        .is_some_and(|g| !g.is_empty());
    match reason {
        Some(r) => r,
        None if gated && phase == "Pending" => "SchedulingGated".to_owned(),
        None => pod["status"]["reason"].as_str().unwrap_or(phase).to_owned(),
    }
}

/// kubectl's age (apimachinery's `duration.HumanDuration`): `42s`, `3m7s`, `3m`, `25m`,
/// `5h12m`, `30h`, `3d4h`, `12d`, `2y30d`, `9y`.
pub fn human_age(now: Timestamp, then: Timestamp) -> String {
    let s = now.as_second() - then.as_second();
    if s < -1 {
        return "<invalid>".to_owned();
    }
    let s = s.max(0);
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / 24 / 365);
    let two = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => two(m, "m", s % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => two(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => two(d, "d", h % 24, "h"),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => two(y, "y", d % 365, "d"),
        _ => format!("{y}y"),
    }
}

// Custom resources, as kube-apiserver prints them from a CRD version's
// `additionalPrinterColumns`: NAME, then each column's `jsonPath` value (a `date` column as an
// age, a missing value empty for kubectl's `<none>`); NAME and AGE when the CRD names none.

/// The columns: NAME, then the CRD's (or AGE).
fn definitions(columns: &[Value]) -> Vec<Value> {
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "priority": 0, "description": "Name must be unique within a namespace."})];
    if columns.is_empty() {
        defs.push(
            json!({"name": "Age", "type": "date", "format": "", "priority": 0,
            "description": "Time since the object was created."}),
        );
    }
    for c in columns {
        defs.push(json!({
            "name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
            "description": c.get("description").cloned().unwrap_or(json!("")),
        }));
    }
    defs
}

/// The value at a CRD column's `jsonPath` (`.spec.a.b`, `.status.list[0].x`; other JSONPath
/// forms are not evaluated and print empty).
pub fn at_path<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = object;
    for part in path.trim().trim_start_matches('.').split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (part, None),
        };
        if !key.is_empty() {
            v = v.get(key)?;
        }
        if let Some(i) = index {
            v = v.get(i)?;
        }
    }
    (!v.is_null()).then_some(v)
}

fn cell(object: &Value, column: &Value, now: Timestamp) -> Value {
    let path = column["jsonPath"].as_str().unwrap_or("");
    let Some(value) = at_path(object, path) else {
        return Value::Null;
    };
    match (column["type"].as_str(), value.as_str()) {
        (Some("date"), Some(t)) => t
            .parse::<Timestamp>()
            .map_or_else(|_| value.clone(), |t| json!(human_age(now, t))),
        _ => value.clone(),
    }
}

/// The Table of custom resources `objects` at `now`, from their CRD's `columns`.
fn custom_table(
    columns: &[Value],
    objects: &[&Value],
    now: Timestamp,
    resource_version: &str,
    headers: bool,
    include: Include,
) -> Value {
    let age = [json!({"type": "date", "jsonPath": ".metadata.creationTimestamp"})];
    let shown: &[Value] = if columns.is_empty() { &age } else { columns };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(shown.iter().map(|c| cell(o, c, now)));
            with_object(Value::Array(cells), o, include)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": if headers { Value::Array(definitions(columns)) } else { json!([]) },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn kubectl_asks_for_a_table_first() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(
            "application/json, application/json;as=Table;v=v1;g=meta.k8s.io"
        ));
    }

    #[test]
    fn ages_read_as_kubectls() {
        let now = at("2026-12-07T12:00:00Z");
        for (then, want) in [
            ("2026-12-07T11:59:18Z", "42s"),
            ("2026-12-07T11:56:53Z", "3m7s"),
            ("2026-12-07T11:35:00Z", "25m"),
            ("2026-12-07T06:48:00Z", "5h12m"),
            ("2026-12-06T06:00:00Z", "30h"),
            ("2026-12-03T08:00:00Z", "4d4h"),
            ("2026-11-25T12:00:00Z", "12d"),
            ("2024-11-07T12:00:00Z", "2y30d"),
            ("2026-12-07T11:57:00Z", "3m"),
            ("2026-12-07T07:00:00Z", "5h"),
            ("2026-12-03T12:00:00Z", "4d"),
            ("2024-12-07T12:00:00Z", "2y"),
            ("2016-12-07T12:00:00Z", "10y"),
            ("2026-12-07T12:00:00Z", "0s"),
            ("2026-12-07T12:00:05Z", "<invalid>"),
        ] {
            assert_eq!(human_age(now, at(then)), want, "{then}");
        }
    }

    #[test]
    fn the_status_column_says_what_kubectl_says() {
        let pod = |v: Value| v;
        let waiting = pod(json!({"status": {"phase": "Pending", "containerStatuses": [
            {"state": {"waiting": {"reason": "ContainerCreating"}}}]}}));
        assert_eq!(status(&waiting), "ContainerCreating");
        let done = pod(
            json!({"status": {"phase": "Succeeded", "containerStatuses": [
            {"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}}),
        );
        assert_eq!(status(&done), "Completed");
        let killed = pod(json!({"status": {"phase": "Failed", "containerStatuses": [
            {"state": {"terminated": {"exitCode": 137}}}]}}));
        assert_eq!(status(&killed), "ExitCode:137");
        let gated = pod(json!({"spec": {"schedulingGates": [{"name": "g"}]}}));
        assert_eq!(status(&gated), "SchedulingGated");
        let deleting = pod(
            json!({"metadata": {"deletionTimestamp": "2026-12-07T12:00:00Z"},
                                  "status": {"phase": "Running"}}),
        );
        assert_eq!(status(&deleting), "Terminating");
        assert_eq!(status(&json!({"status": {"phase": "Running"}})), "Running");
    }

    #[test]
    fn a_row_has_kubectls_cells_and_the_pods_metadata() {
        let p = json!({
            "metadata": {"name": "d", "namespace": "spark",
                         "creationTimestamp": "2026-12-07T11:59:00Z", "managedFields": []},
            "spec": {"nodeName": "node-0", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.2", "containerStatuses": [
                {"ready": true, "restartCount": 0, "state": {"running": {}}}]},
        });
        let t = pods(
            &[&p],
            at("2026-12-07T12:00:00Z"),
            "7",
            true,
            Include::Metadata,
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "d",
                "1/1",
                "Running",
                "0",
                "60s",
                "127.0.0.2",
                "node-0",
                "<none>",
                "<none>"
            ])
        );
        let whole = pods(
            &[&p],
            at("2026-12-07T12:00:00Z"),
            "7",
            true,
            Include::Object,
        );
        assert_eq!(whole["rows"][0]["object"]["status"]["podIP"], "127.0.0.2");
        let bare = pods(&[&p], at("2026-12-07T12:00:00Z"), "7", true, Include::None);
        assert!(bare["rows"][0].get("object").is_none());
        assert!(Include::parse(Some("Everything")).is_err());
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "spark");
        assert!(
            t["rows"][0]["object"]["metadata"]
                .get("managedFields")
                .is_none()
        );
        let event = Bytes::from(
            serde_json::to_vec(&json!({"type": "MODIFIED", "object":
            {"kind": "Pod", "metadata": {"name": "d", "resourceVersion": "9"}}}))
            .unwrap(),
        );
        let e: Value = serde_json::from_slice(&watch_event(
            &event,
            at("2026-12-07T12:00:00Z"),
            false,
            &Printer {
                columns: Columns::Pods,
                include: Include::Metadata,
            },
        ))
        .unwrap();
        assert_eq!(e["object"]["kind"], "Table");
        assert_eq!(e["object"]["columnDefinitions"], json!([]));
        assert_eq!(e["object"]["rows"][0]["cells"][0], "d");
    }

    #[test]
    fn columns_read_their_paths_and_dates_read_as_ages() {
        let columns = vec![
            json!({"name": "Group", "type": "string", "jsonPath": ".spec.instanceGroup"}),
            json!({"name": "CPU", "type": "string", "jsonPath": ".status.allocated.cpu"}),
            json!({"name": "First", "type": "string", "jsonPath": ".spec.list[1].x"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let q = json!({"metadata": {"name": "etl", "creationTimestamp": "2026-12-07T11:58:00Z"},
            "spec": {"instanceGroup": "batch", "list": [{"x": 1}, {"x": 2}]}});
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let t = custom_table(&columns, &[&q], now, "3", true, Include::Metadata);
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 5);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["etl", "batch", null, 2, "2m"])
        );
        let bare = custom_table(&[], &[&q], now, "3", true, Include::None);
        assert_eq!(bare["rows"][0]["cells"], json!(["etl", "2m"]));
        assert_eq!(bare["columnDefinitions"][1]["name"], "Age");
    }
}
