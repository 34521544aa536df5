//! The full HTTP path of one driver filter call, beside the decision alone: a kube-scheduler
//! `POST /filter` body through the extender's real router (`tower::ServiceExt::oneshot`),
//! JSON decoding and encoding included, on the palantir-comparison workload at 5,000 nodes
//! (`common/benches/support/snapshot.rs`, `palantir_workload`).
//!
//! Two bodies, as kube-scheduler sends them (Go encoding: PascalCase envelope, `null`s):
//! - `nodeCacheCapable: true` (the deployed configuration): `NodeNames` (5,000 names);
//! - `nodeCacheCapable: false`: `Nodes`, a `v1.NodeList` of 5,000 full nodes shaped like a
//!   kubelet's (labels, annotations, conditions, addresses, nodeInfo, images).
//!
//! `cargo bench -p sparkgang-extender --bench filter_http`

#[path = "../../common/benches/support/snapshot.rs"]
mod snapshot;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sparkgang_common::cluster::PodKey;
use sparkgang_extender::Extender;
use sparkgang_extender::clock::Clock;
use sparkgang_extender::server::filter_router;
use tower::ServiceExt;

use snapshot::*;

struct Fixed(Timestamp);

impl Clock for Fixed {
    fn now(&self) -> Timestamp {
        self.0
    }
}

fn report(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label:<62} n={:<5} p50={:>9.1?} p99={:>9.1?}",
        samples.len(),
        pct(0.50),
        pct(0.99),
    );
    pct(0.50)
}

/// The real spark-submit driver of `fixtures/kube-scheduler-wire` as the young driver of the
/// workload (its app id, creation time and gang demand).
fn young_driver_json() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/kube-scheduler-wire/filter-args.driver.json"
    );
    let text = std::fs::read_to_string(path).expect("the wire fixture");
    let mut args: Value = serde_json::from_str(&text).expect("fixture JSON");
    let mut pod = args["Pod"].take();
    let created = driver("young", 50_000, &small_demand(4))
        .metadata
        .creation_timestamp;
    pod["metadata"]["name"] = json!("young-driver");
    pod["metadata"]["uid"] = json!("uid-young-driver");
    pod["metadata"]["creationTimestamp"] = serde_json::to_value(created).expect("time");
    pod["metadata"]["labels"]["spark-app-id"] = json!("young");
    pod["metadata"]["labels"]["spark-app-selector"] = json!("young");
    pod["metadata"]["annotations"] = json!({
        sparkgang_common::api::GANG_DEMAND_ANNOTATION:
            serde_json::to_string(&small_demand(4)).expect("demand"),
    });
    pod
}

/// One node as kube-scheduler's informer holds it (managedFields already stripped), encoded
/// as Go encodes `v1.Node`: about 4 KiB.
fn full_node(i: usize) -> String {
    let zone = i % 4;
    let images: Vec<String> = (0..12)
        .map(|k| {
            format!(
                r#"{{"names":["registry.example.com/team-{k}/service-{k}@sha256:{:064x}","registry.example.com/team-{k}/service-{k}:v1.{k}.{}"],"sizeBytes":{}}}"#,
                i * 31 + k,
                i % 7,
                100_000_000 + k * 7_654_321
            )
        })
        .collect();
    format!(
        r#"{{"metadata":{{"name":"node-{i:05}","uid":"0f5a{i:08x}-1b2c-4d3e-8f90-a1b2c3d4e5f6","resourceVersion":"{rv}","creationTimestamp":"2026-11-01T10:00:00Z","labels":{{"beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/instance-type":"m6i.16xlarge","beta.kubernetes.io/os":"linux","failure-domain.beta.kubernetes.io/region":"eu-west-1","failure-domain.beta.kubernetes.io/zone":"zone-{zone}","instance-group":"batch","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"node-{i:05}","kubernetes.io/os":"linux","node.kubernetes.io/instance-type":"m6i.16xlarge","topology.kubernetes.io/region":"eu-west-1","topology.kubernetes.io/zone":"zone-{zone}","topology.ebs.csi.aws.com/zone":"zone-{zone}"}},"annotations":{{"alpha.kubernetes.io/provided-node-ip":"10.0.{a}.{b}","csi.volume.kubernetes.io/nodeid":"{{\"ebs.csi.aws.com\":\"i-0{i:016x}\"}}","node.alpha.kubernetes.io/ttl":"0","volumes.kubernetes.io/controller-managed-attach-detach":"true"}}}},"spec":{{"podCIDR":"100.64.{a}.0/24","podCIDRs":["100.64.{a}.0/24"],"providerID":"aws:///eu-west-1{zone}/i-0{i:016x}"}},"status":{{"capacity":{{"cpu":"64","ephemeral-storage":"524275692Ki","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"263921580Ki","pods":"110"}},"allocatable":{{"cpu":"64","ephemeral-storage":"483173670641","hugepages-1Gi":"0","hugepages-2Mi":"0","memory":"256Gi","pods":"110"}},"conditions":[{{"type":"MemoryPressure","status":"False","lastHeartbeatTime":"2026-12-06T10:00:00Z","lastTransitionTime":"2026-11-01T10:00:30Z","reason":"KubeletHasSufficientMemory","message":"kubelet has sufficient memory available"}},{{"type":"DiskPressure","status":"False","lastHeartbeatTime":"2026-12-06T10:00:00Z","lastTransitionTime":"2026-11-01T10:00:30Z","reason":"KubeletHasNoDiskPressure","message":"kubelet has no disk pressure"}},{{"type":"PIDPressure","status":"False","lastHeartbeatTime":"2026-12-06T10:00:00Z","lastTransitionTime":"2026-11-01T10:00:30Z","reason":"KubeletHasSufficientPID","message":"kubelet has sufficient PID available"}},{{"type":"Ready","status":"True","lastHeartbeatTime":"2026-12-06T10:00:00Z","lastTransitionTime":"2026-11-01T10:01:00Z","reason":"KubeletReady","message":"kubelet is posting ready status"}}],"addresses":[{{"type":"InternalIP","address":"10.0.{a}.{b}"}},{{"type":"InternalDNS","address":"ip-10-0-{a}-{b}.eu-west-1.compute.internal"}},{{"type":"Hostname","address":"ip-10-0-{a}-{b}.eu-west-1.compute.internal"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":10250}}}},"nodeInfo":{{"machineID":"ec2{i:029x}","systemUUID":"ec2{i:029x}","bootID":"{i:08x}-5e6f-4a7b-8c9d-0e1f2a3b4c5d","kernelVersion":"6.1.109-118.189.amzn2023.x86_64","osImage":"Amazon Linux 2023.6.20241010","containerRuntimeVersion":"containerd://1.7.22","kubeletVersion":"v1.33.1-eks-1234567","kubeProxyVersion":"v1.33.1-eks-1234567","operatingSystem":"linux","architecture":"amd64"}},"images":[{images}]}}}}"#,
        rv = 1_000_000 + i,
        a = (i / 250) % 256,
        b = i % 250,
        images = images.join(",")
    )
}

fn main() {
    // Under `cargo test` (no `--bench`) the smallest size of palantir's workload runs briefly:
    // its 500 older drivers need 500 nodes for the young one to be placed.
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 5_000 } else { 500 };
    let calls = if full { 300 } else { 3 };
    let scenario = palantir_workload(n);
    let names = names_of(n);
    let now = now();

    let pod_json = young_driver_json();
    let young: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(pod_json.clone()).expect("a Pod");
    let key = PodKey::new("spark", "young-driver");
    let mut state = build_scenario(&scenario);
    state.apply_pod(&young);
    state.prepare(now);

    let names_body =
        serde_json::to_vec(&json!({"Pod": pod_json, "Nodes": null, "NodeNames": names}))
            .expect("body");
    let nodes_body = {
        let pod = serde_json::to_string(&pod_json).expect("pod");
        let items: Vec<String> = (0..n).map(full_node).collect();
        format!(
            r#"{{"Pod":{pod},"Nodes":{{"metadata":{{}},"items":[{}]}},"NodeNames":null}}"#,
            items.join(",")
        )
        .into_bytes()
    };
    println!(
        "{n} nodes; bodies: NodeNames {} KiB, Nodes {} KiB",
        names_body.len() / 1024,
        nodes_body.len() / 1024
    );

    // The decision alone, as the handler calls it.
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        state.delete_pod(&key);
        state.apply_pod(&young);
        let start = Instant::now();
        let d = state.filter(&young, &names, now);
        samples.push(start.elapsed());
        assert!(d.node.is_some(), "{}", d.message);
    }
    let decision = report("decision alone (ClusterState::filter)", samples);

    let (ext, mut effects) = Extender::standalone(state, Arc::new(Fixed(now)));
    let router = filter_router(ext.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (label, body) in [
        (
            "POST /filter, NodeNames (nodeCacheCapable: true)",
            &names_body,
        ),
        ("POST /filter, Nodes (nodeCacheCapable: false)", &nodes_body),
    ] {
        let calls = if body.len() > 1 << 20 {
            calls / 10 + 1
        } else {
            calls
        };
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            ext.with_state(|s| {
                s.delete_pod(&key);
                s.apply_pod(&young);
            });
            while effects.try_recv().is_ok() {}
            let request = Request::post("/filter")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .expect("request");
            let start = Instant::now();
            let (status, answer) = runtime.block_on(async {
                let response = router.clone().oneshot(request).await.expect("infallible");
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                (status, bytes)
            });
            samples.push(start.elapsed());
            assert_eq!(status, StatusCode::OK);
            let answer: Value = serde_json::from_slice(&answer).expect("JSON");
            // The answer takes the request's form: NodeNames, or Nodes when asked with Nodes.
            let placed = answer["NodeNames"][0].is_string()
                || answer["Nodes"]["items"][0]["metadata"]["name"].is_string();
            assert!(placed, "{answer}");
        }
        let total = report(label, samples);
        println!(
            "{:<62} HTTP + JSON ≈ {:.1?} ({:.2}× the decision)",
            "",
            total.saturating_sub(decision),
            total.saturating_sub(decision).as_secs_f64() / decision.as_secs_f64()
        );
    }
}
