//! Server-side printing of pods, as kube-apiserver answers `Accept: application/json;as=Table;
//! g=meta.k8s.io;v=v1` (what `kubectl get pods` asks for): a `meta.k8s.io/v1` Table with
//! kubectl's columns (NAME, READY, STATUS, RESTARTS, AGE; `-o wide` adds IP and NODE), each row
//! with the pod's metadata. Other resources are answered as they are; kubectl prints those
//! itself.

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::SharedClock;
use super::resources::ResourceDef;
use super::watch_response::Events;

/// Whether to answer with a Table of kubectl's columns: pods, when the client asks for one.
pub fn printed(def: &ResourceDef, accept: &str) -> bool {
    def.group.is_empty() && def.plural == "pods" && wants_table(accept)
}

/// A pod watch's events with their objects as Tables (the first with the columns).
pub fn watch_events(events: Events, clock: SharedClock) -> Events {
    let mut first = true;
    Box::pin(events.map(move |batch| {
        let now = clock.now();
        let lines = batch.iter().map(|l| watch_event(l, now, first)).collect();
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
    ])
}

/// The Table of `pods` at `now`; `headers: false` leaves the column definitions out (the
/// events of a watch after the first).
pub fn pods(pods: &[&Value], now: Timestamp, resource_version: &str, headers: bool) -> Value {
    let rows: Vec<Value> = pods.iter().map(|p| row(p, now)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": if headers { columns() } else { json!([]) },
        "rows": rows,
    })
}

/// The event of a pod watch with its object as a one-row Table; other events (errors,
/// bookmarks) as they are.
pub fn watch_event(line: &Bytes, now: Timestamp, headers: bool) -> Bytes {
    let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
        return line.clone();
    };
    let object = &event["object"];
    if object["kind"] != "Pod" || event["type"] == "BOOKMARK" {
        return line.clone();
    }
    let rv = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    event["object"] = pods(&[object], now, &rv, headers);
    let mut out = serde_json::to_vec(&event).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn row(pod: &Value, now: Timestamp) -> Value {
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
    let mut metadata = pod["metadata"].clone();
    if let Some(m) = metadata.as_object_mut() {
        m.remove("managedFields");
    }
    json!({
        "cells": [
            pod["metadata"]["name"], format!("{ready}/{containers}"), status(pod),
            restarts.to_string(), age, none(&pod["status"]["podIP"]), none(&pod["spec"]["nodeName"]),
        ],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": metadata},
    })
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

/// kubectl's age: `42s`, `3m7s`, `25m`, `5h12m`, `30h`, `3d4h`, `12d`, `2y30d`.
pub fn human_age(now: Timestamp, then: Timestamp) -> String {
    let s = now.as_second().saturating_sub(then.as_second()).max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => format!("{d}d{}h", h % 24),
        _ if d < 730 => format!("{d}d"),
        _ => format!("{}y{}d", d / 365, d % 365),
    }
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
        let t = pods(&[&p], at("2026-12-07T12:00:00Z"), "7", true);
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 7);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["d", "1/1", "Running", "0", "60s", "127.0.0.2", "node-0"])
        );
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
        let e: Value =
            serde_json::from_slice(&watch_event(&event, at("2026-12-07T12:00:00Z"), false))
                .unwrap();
        assert_eq!(e["object"]["kind"], "Table");
        assert_eq!(e["object"]["columnDefinitions"], json!([]));
        assert_eq!(e["object"]["rows"][0]["cells"][0], "d");
    }
}
