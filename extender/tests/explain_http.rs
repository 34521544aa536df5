//! The explain API and console over real HTTP, against the real router around a real state:
//! the answers' shapes, each error's status and words, and the page itself.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use sparkgang_common::api::explain::{
    AppExplanation, AppList, AppState, CapacityList, ErrorBody, Reason,
};
use sparkgang_common::cluster::{ClusterState, FifoPolicy, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};
use sparkgang_extender::Extender;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::server::filter_router;
use sparkgang_testing::http;
use tokio::net::{TcpListener, TcpStream};

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i}"), "labels": {"instance-group": "batch"}},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn driver(app: &str, executors: u32) -> Pod {
    let demand = GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(4000, 4 << 30, 0),
        min_executors: executors,
        max_executors: executors,
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": "spark", "uid": app,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {"sparkgang.io/demand": serde_json::to_string(&demand).unwrap()}},
        "spec": {"schedulerName": "spark-scheduler", "nodeSelector": {"instance-group": "batch"},
            "containers": [{"name": "driver"}]}
    }))
    .unwrap()
}

async fn serve() -> SocketAddr {
    let mut state = ClusterState::new(SchedulerConfig {
        fifo: FifoPolicy {
            enabled: true,
            ..FifoPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    for i in 0..3 {
        state.apply_node(&node(i));
    }
    state.apply_pod(&driver("huge", 40));
    state.apply_pod(&driver("small", 1));
    let (ext, _effects) = Extender::standalone(state, Arc::new(SystemClock));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, filter_router(ext)).into_future());
    addr
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (status, body) = http::request(stream, Method::GET, "localhost", path, Vec::new())
        .await
        .unwrap();
    (status, body.to_vec())
}

async fn error_of(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let (status, body) = get(addr, path).await;
    let e: ErrorBody = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not an error body ({e}): {body:?}"));
    (status, e.error)
}

#[tokio::test]
async fn apps_are_listed_and_explained() {
    let addr = serve().await;
    let (status, body) = get(addr, "/api/v1/apps?namespace=spark").await;
    assert_eq!(status, StatusCode::OK);
    let list: AppList = serde_json::from_slice(&body).unwrap();
    let ids: Vec<(&str, AppState)> = list
        .items
        .iter()
        .map(|a| (a.app_id.as_str(), a.state))
        .collect();
    assert_eq!(
        ids,
        [("huge", AppState::Pending), ("small", AppState::Pending)]
    );
    let (_, body) = get(addr, "/api/v1/apps?namespace=elsewhere").await;
    assert!(
        serde_json::from_slice::<AppList>(&body)
            .unwrap()
            .items
            .is_empty()
    );

    let (status, body) = get(addr, "/api/v1/apps/spark/huge").await;
    assert_eq!(status, StatusCode::OK);
    let e: AppExplanation = serde_json::from_slice(&body).unwrap();
    assert!(
        matches!(&e.reason, Reason::NeverFits { never_fits } if never_fits.needs.cpu_milli == 161_000),
        "{:?}",
        e.reason
    );
    assert!(e.message.contains("can never fit"), "{}", e.message);
    // The wire form names the kind.
    let raw: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(raw["reason"]["kind"], "never-fits");

    let (status, body) = get(addr, "/api/v1/capacity").await;
    assert_eq!(status, StatusCode::OK);
    let c: CapacityList = serde_json::from_slice(&body).unwrap();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].allocatable.cpu_milli, 24_000);
    assert_eq!(c.groups[0].queue.len(), 2);
    let (_, body) = get(addr, "/api/v1/capacity/batch").await;
    let c: CapacityList = serde_json::from_slice(&body).unwrap();
    assert_eq!(c.groups[0].node_list.as_ref().map(Vec::len), Some(3));
}

#[tokio::test]
async fn errors_say_what_was_wrong() {
    let addr = serve().await;
    let (status, why) = error_of(addr, "/api/v1/apps/spark/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        why.contains("no Spark application nope in namespace spark"),
        "{why}"
    );
    let (status, why) = error_of(addr, "/api/v1/apps?ns=spark").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(why.contains("namespace=NAME"), "{why}");
    let (status, why) = error_of(addr, "/api/v1/capacity/gpu").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(why.contains("instance group gpu"), "{why}");
}

/// The open API answers only requests addressed to a loopback name: a page of another site
/// whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing.
#[tokio::test]
async fn the_open_api_refuses_other_hosts() {
    let addr = serve().await;
    for host in ["evil.example", "evil.example:8484", "10.0.0.1:8484"] {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (status, body) = http::request(stream, Method::GET, host, "/api/v1/apps", Vec::new())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
        let e: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert!(
            e.error.contains("localhost, 127.0.0.1 or [::1]"),
            "{}",
            e.error
        );
    }
    for host in ["localhost", "127.0.0.1:8484", "[::1]:8484"] {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (status, _) = http::request(stream, Method::GET, host, "/api/v1/apps", Vec::new())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn the_console_is_one_page_without_external_assets() {
    let addr = serve().await;
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("<title>sparkgang console</title>"));
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(!page.contains(external), "the console refers to {external}");
    }
}
