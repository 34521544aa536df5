//! The status a kubelet writes for a pod that runs as a local process: merge patches of
//! `pods/status`, each naming the pod's uid (a precondition: a patch of one pod never lands on
//! a new pod of the same name) and keeping the conditions the kubelet does not own
//! (`PodScheduled`).

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

fn container(pod: &Pod) -> (String, String) {
    let c = pod.spec.as_ref().and_then(|s| s.containers.first());
    (
        c.map(|c| c.name.clone()).unwrap_or_default(),
        c.and_then(|c| c.image.clone()).unwrap_or_default(),
    )
}

/// The pod's conditions other than the ones the kubelet sets, then `Ready` and
/// `ContainersReady` as `ready` says.
fn conditions(pod: &Pod, ready: bool, at: &str) -> Value {
    let mut kept: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.type_ != "Ready" && c.type_ != "ContainersReady")
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let status = if ready { "True" } else { "False" };
    for kind in ["Ready", "ContainersReady"] {
        kept.push(json!({"type": kind, "status": status, "lastTransitionTime": at}));
    }
    Value::Array(kept)
}

fn patch(pod: &Pod, status: Value) -> Value {
    json!({"metadata": {"uid": pod.metadata.uid.clone().unwrap_or_default()}, "status": status})
}

/// The pod's container waits for `reason` (the pod stays `Pending`).
pub fn waiting(pod: &Pod, reason: &str, message: &str) -> Value {
    let (name, image) = container(pod);
    patch(
        pod,
        json!({
            "phase": "Pending",
            "containerStatuses": [{
                "name": name, "image": image, "imageID": "", "ready": false,
                "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": reason, "message": message}},
            }],
        }),
    )
}

/// The pod's process `pid` runs at `ip` since `started`.
pub fn running(pod: &Pod, ip: Ipv4Addr, pid: u32, started: Timestamp) -> Value {
    let (name, image) = container(pod);
    let now = started.to_string();
    patch(
        pod,
        json!({
            "phase": "Running",
            "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "containerStatuses": [{
                "name": name, "image": image, "imageID": "",
                "containerID": format!("process://{pid}"), "ready": true, "restartCount": 0,
                "started": true, "state": {"running": {"startedAt": now}},
            }],
            "conditions": conditions(pod, true, &now),
        }),
    )
}

/// The pod's process ended with `code` at `finished`: `Succeeded` on 0, else `Failed`.
pub fn ended(
    pod: &Pod,
    ip: Ipv4Addr,
    pid: u32,
    started: Timestamp,
    code: i32,
    finished: Timestamp,
) -> Value {
    let (name, image) = container(pod);
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let finished = finished.to_string();
    patch(
        pod,
        json!({
            "phase": phase,
            "podIP": ip.to_string(),
            "containerStatuses": [{
                "name": name, "image": image, "imageID": "",
                "containerID": format!("process://{pid}"), "ready": false, "restartCount": 0,
                "started": false, "state": {"terminated": {
                    "exitCode": code, "reason": reason, "startedAt": started.to_string(),
                    "finishedAt": finished, "containerID": format!("process://{pid}")}},
            }],
            "conditions": conditions(pod, false, &finished),
        }),
    )
}

/// The pod's process could not be started (the container runtime's `StartError`, 128).
pub fn start_error(pod: &Pod, message: &str, at: Timestamp) -> Value {
    let (name, image) = container(pod);
    let at = at.to_string();
    patch(
        pod,
        json!({
            "phase": "Failed",
            "message": message,
            "containerStatuses": [{
                "name": name, "image": image, "imageID": "", "ready": false,
                "restartCount": 0, "started": false, "state": {"terminated": {
                    "exitCode": 128, "reason": "StartError", "message": message,
                    "startedAt": at, "finishedAt": at}},
            }],
            "conditions": conditions(pod, false, &at),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u-1"},
            "spec": {"containers": [{"name": "c", "image": "apache/spark:4.0.0"}]},
            "status": {"conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False"}]},
        }))
        .unwrap()
    }

    #[test]
    fn each_patch_names_the_pod_and_keeps_the_scheduler_s_condition() {
        let at: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let ip = Ipv4Addr::new(127, 0, 0, 9);
        for p in [
            running(&pod(), ip, 42, at),
            ended(&pod(), ip, 42, at, 137, at),
            start_error(&pod(), "no java", at),
        ] {
            assert_eq!(p["metadata"]["uid"], "u-1");
            let kinds: Vec<&str> = p["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["PodScheduled", "Ready", "ContainersReady"]);
        }
        assert_eq!(waiting(&pod(), "R", "m")["metadata"]["uid"], "u-1");
    }

    #[test]
    fn the_end_is_succeeded_only_on_zero_and_keeps_the_exit_code() {
        let at: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let ip = Ipv4Addr::new(127, 0, 0, 9);
        let ok = ended(&pod(), ip, 1, at, 0, at);
        assert_eq!(ok["status"]["phase"], "Succeeded");
        let killed = ended(&pod(), ip, 1, at, 137, at);
        assert_eq!(killed["status"]["phase"], "Failed");
        let t = &killed["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (t["exitCode"].as_i64(), t["reason"].as_str()),
            (Some(137), Some("Error"))
        );
        assert_eq!(
            killed["status"]["containerStatuses"][0]["containerID"],
            "process://1"
        );
    }
}
