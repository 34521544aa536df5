//! `POST /filter` over real HTTP with the bytes kube-scheduler sends (Go-encoded, PascalCase,
//! `null`s), against the real router around a real scheduling state.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};
use sparkgang_common::api::extender::ExtenderFilterResult;
use sparkgang_common::cluster::{ClusterState, Effect, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};
use sparkgang_extender::Extender;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::server::{filter_router, metrics_router};
use sparkgang_testing::{fixtures, http};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;

fn fixture(name: &str) -> Value {
    let text = fixtures::read(fixtures::KUBE_SCHEDULER_WIRE, name);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn node(name: &str, cpu: &str, memory: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"instance-group": "batch", "topology.kubernetes.io/zone": "z1"}},
        "status": {"allocatable": {"cpu": cpu, "memory": memory},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

/// The demand the gate controller computes for the fixture app (1 cpu / 1408Mi driver,
/// 8 executors of 2 cpu / 4505Mi).
fn pi_demand() -> String {
    serde_json::to_string(&GangDemand {
        driver: Resources::new(1000, 1408 << 20, 0),
        executor: Resources::new(2000, 4505 << 20, 0),
        min_executors: 8,
        max_executors: 8,
    })
    .unwrap()
}

fn with_demand(mut args: Value) -> Value {
    args["Pod"]["metadata"]["annotations"] = json!({"sparkgang.io/demand": pi_demand()});
    args
}

struct Served {
    filter: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    ext: Arc<Extender>,
    effects: UnboundedReceiver<Effect>,
}

async fn serve(nodes: &[Node]) -> Served {
    let mut state = ClusterState::new(SchedulerConfig::default());
    for n in nodes {
        state.apply_node(n);
    }
    let (ext, effects) = Extender::standalone(state, Arc::new(SystemClock));
    let filter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = Served {
        filter: filter.local_addr().unwrap(),
        metrics: metrics.local_addr().unwrap(),
        ext: ext.clone(),
        effects,
    };
    tokio::spawn(axum::serve(filter, filter_router(ext.clone())).into_future());
    tokio::spawn(axum::serve(metrics, metrics_router(ext)).into_future());
    served
}

async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (status, body) = http::request(stream, method, "127.0.0.1", path, body)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn filter(addr: std::net::SocketAddr, args: &Value) -> ExtenderFilterResult {
    let (status, body) = call(addr, "POST", "/filter", serde_json::to_vec(args).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("\"NodeNames\"") && body.contains("\"FailedNodes\""),
        "{body}"
    );
    serde_json::from_str(&body).unwrap()
}

fn candidates(args: &Value) -> Vec<String> {
    serde_json::from_value(args["NodeNames"].clone()).unwrap()
}

#[tokio::test]
async fn driver_goes_to_exactly_one_candidate() {
    let s = serve(&[
        node("node-a", "16", "64Gi"),
        node("node-b", "16", "64Gi"),
        node("node-c", "16", "64Gi"),
    ])
    .await;
    let args = with_demand(fixture("filter-args.driver.json"));
    let result = filter(s.filter, &args).await;
    let chosen = result.node_names.expect("NodeNames");
    assert_eq!(chosen.len(), 1);
    assert!(candidates(&args).contains(&chosen[0]));
    assert!(result.failed_nodes.is_none());
    assert_eq!(result.error, "");
    // A reservation write was queued.
    let mut effects = s.effects;
    let first = effects.recv().await.unwrap();
    assert!(matches!(first, Effect::SyncReservation(_)), "{first:?}");
    // Asking again (kube-scheduler retries after a failed bind) gives the same node.
    let again = filter(s.filter, &args).await;
    assert_eq!(again.node_names, Some(chosen));
}

#[tokio::test]
async fn failure_names_every_candidate() {
    let s = serve(&[
        node("node-a", "4", "8Gi"),
        node("node-b", "4", "8Gi"),
        node("node-c", "4", "8Gi"),
    ])
    .await;
    let args = with_demand(fixture("filter-args.driver.json"));
    let result = filter(s.filter, &args).await;
    assert!(result.node_names.is_none());
    let failed = result.failed_nodes.expect("FailedNodes");
    assert_eq!(
        failed.keys().cloned().collect::<Vec<_>>(),
        candidates(&args)
    );
    let message = failed.values().next().unwrap();
    assert!(failed.values().all(|m| m == message));
    assert!(message.contains("can never fit"), "{message}");
}

#[tokio::test]
async fn executor_takes_its_reserved_slot() {
    let s = serve(&[
        node("node-a", "16", "64Gi"),
        node("node-b", "16", "64Gi"),
        node("node-c", "16", "64Gi"),
    ])
    .await;
    let executor = fixture("filter-args.executor.json");
    // No reservation for its app yet.
    let result = filter(s.filter, &executor).await;
    let failed = result.failed_nodes.expect("FailedNodes");
    assert!(
        failed.values().all(|m| m.contains("has no reservation")),
        "{failed:?}"
    );
    // Its driver (same app id) is placed first.
    let mut driver = with_demand(fixture("filter-args.driver.json"));
    let app = executor["Pod"]["metadata"]["labels"]["spark-app-selector"].clone();
    driver["Pod"]["metadata"]["labels"]["spark-app-id"] = app.clone();
    driver["Pod"]["metadata"]["labels"]["spark-app-selector"] = app;
    filter(s.filter, &driver)
        .await
        .node_names
        .expect("driver placed");
    let result = filter(s.filter, &executor).await;
    let chosen = result.node_names.expect("executor placed");
    assert_eq!(chosen.len(), 1);
    assert!(candidates(&executor).contains(&chosen[0]));
}

#[tokio::test]
async fn predicates_alias_and_nodes_list_without_node_cache() {
    let s = serve(&[node("node-a", "32", "128Gi")]).await;
    let args = with_demand(fixture("filter-args.driver.nodes-not-cache-capable.json"));
    let (status, body) = call(
        s.filter,
        "POST",
        "/predicates",
        serde_json::to_vec(&args).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result: ExtenderFilterResult = serde_json::from_str(&body).unwrap();
    // kube-scheduler reads `NodeNames` only from a nodeCacheCapable extender; asked with
    // `Nodes`, the answer must be `Nodes` too, or every node counts as filtered out.
    let names: Option<Vec<String>> = result.nodes.map(|l| {
        l.items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect()
    });
    assert_eq!(names, Some(vec!["node-a".to_owned()]));
    assert_eq!(result.node_names, None);
}

#[tokio::test]
async fn nulls_and_bad_bodies() {
    let s = serve(&[node("node-a", "16", "64Gi")]).await;
    let mut args = with_demand(fixture("filter-args.driver.json"));
    // No candidates at all is not a filter call kube-scheduler makes (tests/input.rs has the
    // other refusals).
    args["NodeNames"] = Value::Null;
    let no_candidates = serde_json::to_vec(&args).unwrap();
    // An empty list is: every candidate (none) fails.
    args["NodeNames"] = json!([]);
    let result = filter(s.filter, &args).await;
    assert!(result.node_names.is_none());
    assert_eq!(result.failed_nodes.map(|f| f.len()), Some(0));
    for (body, expect) in [
        (b"not json".to_vec(), "not kube-scheduler ExtenderArgs JSON"),
        (b"{\"NodeNames\": [\"a\"]}".to_vec(), "no Pod"),
        (b"[]".to_vec(), "not kube-scheduler ExtenderArgs JSON"),
        (no_candidates, "neither NodeNames nor Nodes"),
    ] {
        let (status, text) = call(s.filter, "POST", "/filter", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains(expect), "{text}");
    }
    let (status, _) = call(s.filter, "GET", "/filter", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn non_spark_pods_are_refused_with_a_reason() {
    let s = serve(&[node("node-a", "16", "64Gi")]).await;
    let mut args = fixture("filter-args.driver.json");
    args["Pod"]["metadata"]["labels"] = json!({"app": "web"});
    let result = filter(s.filter, &args).await;
    let failed = result.failed_nodes.unwrap();
    assert!(failed["node-a"].contains("not a Spark pod"), "{failed:?}");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = serve(&[node("node-a", "32", "128Gi")]).await;
    filter(s.filter, &with_demand(fixture("filter-args.driver.json"))).await;
    for addr in [s.filter, s.metrics] {
        assert_eq!(
            call(addr, "GET", "/healthz", Vec::new()).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(addr, "GET", "/readyz", Vec::new()).await.0,
            StatusCode::OK
        );
    }
    let (status, text) = call(s.metrics, "GET", "/metrics", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"sparkgang_extender_decisions_total{role="driver",outcome="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("sparkgang_extender_filter_duration_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("sparkgang_extender_reservations 1"), "{text}");
    drop(s.ext);
}
