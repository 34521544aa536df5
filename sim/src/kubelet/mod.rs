//! The kubelet simulator: pods bound to a node start running (their status says so), pods
//! can be made to finish (succeed or fail) on request, and a pod being deleted gracefully stops
//! after the simulated stop time (at most its grace period) and is removed. With a
//! [`ProcessRuntime`], Spark driver and executor pods run for real, as local JVMs.

pub mod host;
pub mod pod_status;
pub mod processes;
pub mod spawn;

pub use processes::{ProcessOptions, ProcessRuntime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use std::collections::HashSet;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use serde_json::json;
use sparkgang_common::pods::node_name;
use tracing::warn;

/// Starts every bound pod that is still `Pending`, and stops every running pod marked for
/// deletion after `stop` (at most its grace period): its containers exit 143 (SIGTERM), then it
/// is removed (a delete with grace 0, as the kubelet's). Pods that `processes` runs (Spark's
/// driver and executor containers) are handed to it instead. Runs until the watch ends.
pub async fn run(client: Client, stop: Duration, processes: Option<ProcessRuntime>) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut stopping: HashSet<String> = HashSet::new();
    let mut stops = tokio::task::JoinSet::new();
    // The uids of a relist: pods deleted while the watch was down send no event.
    let mut relisted: HashSet<String> = HashSet::new();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(watcher::Event::Init) => {
                relisted.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(pod)) => {
                relisted.extend(pod.metadata.uid.clone());
                pod
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(p) = &processes {
                    p.resync(std::mem::take(&mut relisted));
                }
                continue;
            }
            Ok(watcher::Event::Apply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                // Gone: no event of this uid comes again.
                if let Some(uid) = &pod.metadata.uid {
                    stopping.remove(uid);
                }
                if let Some(p) = &processes
                    && ProcessRuntime::runs(&pod)
                {
                    p.deleted(pod);
                }
                continue;
            }
            Err(_) => continue,
        };
        if let Some(p) = &processes
            && ProcessRuntime::runs(&pod)
        {
            p.applied(pod);
            continue;
        }
        if let Some(grace) = pod.metadata.deletion_grace_period_seconds
            && node_name(&pod).is_some()
            && let Some(uid) = pod.metadata.uid.clone()
            && stopping.insert(uid)
        {
            let wait = stop.min(Duration::from_secs(grace.max(0) as u64));
            stops.spawn(terminate(client.clone(), pod, wait));
            continue;
        }
        while stops.try_join_next().is_some() {}
        let pending = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending");
        if node_name(&pod).is_some()
            && pending
            && pod.metadata.deletion_timestamp.is_none()
            && let Err(e) = set_phase(&client, &pod, Phase::Running).await
        {
            warn!(error = %e, pod = pod.metadata.name.as_deref().unwrap_or(""), "cannot start pod");
        }
    }
}

/// Stops a pod being deleted after `wait`, then removes it.
async fn terminate(client: Client, pod: Pod, wait: Duration) {
    tokio::time::sleep(wait).await;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    if !finished && let Err(e) = set_phase(&client, &pod, Phase::Failed(143)).await {
        warn!(error = %e, pod = name, "cannot stop pod");
    }
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let mut params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    if let Some(uid) = &pod.metadata.uid {
        params.preconditions = Some(Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        });
    }
    if let Err(e) = api.delete(name, &params).await {
        warn!(error = %e, pod = name, "cannot remove a stopped pod");
    }
}

/// A phase a pod can be moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Succeeded,
    /// Failed with this exit code (137: killed).
    Failed(i32),
}

/// Patches the pod's status as its kubelet would.
pub async fn set_phase(client: &Client, pod: &Pod, phase: Phase) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let patch = status_patch(pod, phase, Timestamp::now());
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The merge patch of a pod's status that moves it to `phase` at `now`: the same in real and
/// virtual time.
pub fn status_patch(pod: &Pod, phase: Phase, now: Timestamp) -> serde_json::Value {
    let containers: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let now = now.to_string();
    let (phase_text, state, ready) = match phase {
        Phase::Running => ("Running", json!({"running": {"startedAt": now}}), true),
        Phase::Succeeded => (
            "Succeeded",
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}),
            false,
        ),
        Phase::Failed(code) => (
            "Failed",
            json!({"terminated": {"exitCode": code, "reason": "Error", "finishedAt": now}}),
            false,
        ),
    };
    let statuses: Vec<_> = containers
        .iter()
        .map(|c| {
            json!({"name": c, "image": "apache/spark", "imageID": "", "ready": ready,
                   "restartCount": 0, "started": ready, "state": state})
        })
        .collect();
    json!({"status": {
        "phase": phase_text,
        "podIP": "10.0.0.1",
        "startTime": now,
        "containerStatuses": statuses,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now}],
    }})
}
