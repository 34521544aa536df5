//! A simulated cluster to test against: a namespace opted in to the webhook, some nodes, the
//! Spark driver stand-in, and what the tests read back (slots, executors).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_sim::harness::{SimCluster, SimOptions};
use sparkgang_sim::spark::{self, Scripts};

use crate::wait::eventually;

/// Namespace `spark`, opted in to the webhook (`sparkgang.io/enabled=true`).
pub async fn opt_in_namespace(client: &kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "spark",
                "labels": {"sparkgang.io/enabled": "true"}}}))
            .unwrap(),
        )
        .await
        .unwrap();
}

/// `count` ready nodes `node-0` … of 8 cores / 32Gi in instance group `batch`.
pub async fn add_nodes(client: &kube::Client, count: usize) {
    let api: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("node-{i}"), "labels": {
                "instance-group": "batch", "topology.kubernetes.io/zone": "z1"}},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        api.create(&PostParams::default(), &node).await.unwrap();
    }
}

/// A simulated cluster with `nodes` nodes, namespace `spark` opted in, and Spark drivers
/// that run the scripts registered in the returned [`Scripts`].
pub async fn start(options: SimOptions, nodes: usize) -> (SimCluster, Scripts) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = SimCluster::start(options).await.expect("cluster starts");
    let scripts = Scripts::default();
    tokio::spawn(spark::run_drivers(cluster.client.clone(), scripts.clone()));
    opt_in_namespace(&cluster.client).await;
    add_nodes(&cluster.client, nodes).await;
    (cluster, scripts)
}

/// A Spark conf from pairs.
pub fn conf(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Waits until `want` slots of `app`'s reservation hold a pod; slot name → pod name.
pub async fn bound_slots(
    reservations: &Api<ResourceReservation>,
    app: &str,
    want: usize,
) -> BTreeMap<String, String> {
    eventually(
        &format!("{want} pods bound to {app}'s slots"),
        Duration::from_secs(90),
        || {
            let reservations = reservations.clone();
            let app = app.to_owned();
            async move {
                let pods = reservations.get(&app).await.ok()?.status?.pods;
                (pods.len() == want).then_some(pods)
            }
        },
    )
    .await
}

/// The executor pods of application `app_id` in `spark`, once `want` of them are bound to a
/// node. A reservation names a slot's pod when the extender answers the filter call, before
/// kube-scheduler's binding: reading the pods right after [`bound_slots`] can see them unbound.
pub async fn bound_executors_of(client: &kube::Client, app_id: &str, want: usize) -> Vec<Pod> {
    eventually(
        &format!("{want} executors of {app_id} bound to nodes"),
        Duration::from_secs(30),
        || async move {
            let executors = executors_of(client, app_id).await;
            let bound = executors
                .iter()
                .filter(|e| e.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
                .count();
            (bound >= want).then_some(executors)
        },
    )
    .await
}

/// The executor pods of application `app_id` in `spark`.
pub async fn executors_of(client: &kube::Client, app_id: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    pods.list(
        &ListParams::default().labels(&format!("spark-app-selector={app_id},spark-role=executor")),
    )
    .await
    .unwrap()
    .items
}
