//! deploy/grafana's dashboard queries only metrics the extender exports: every `sparkgang_*`
//! name in a query or template is among the families `/metrics` serves (counters with
//! `_total`, histograms with `_bucket`, `_sum`, `_count`), scraped from a running extender
//! with nodes, a placed gang, a pending one, an API write and a preemption.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use sparkgang_common::cluster::{ClusterState, FifoPolicy, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};
use sparkgang_extender::Extender;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::server::{filter_router, metrics_router};
use sparkgang_testing::{fixtures, http};
use tokio::net::{TcpListener, TcpStream};

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i}"), "labels": {"instance-group": "batch"}},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn driver(app: &str, executors: u32) -> Value {
    let demand = GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(2000, 2 << 30, 0),
        min_executors: executors,
        max_executors: executors,
    };
    json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": "spark", "uid": app,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {"sparkgang.io/demand": serde_json::to_string(&demand).unwrap()}},
        "spec": {"schedulerName": "spark-scheduler", "nodeSelector": {"instance-group": "batch"},
            "containers": [{"name": "driver"}]}
    })
}

/// The metric names `/metrics` text exposes, with the suffixes of each family's type.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

/// Every string a dashboard's panels and templates query (`expr`, `query`, `definition`).
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains('(') => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// `sparkgang_*` names the dashboard queries that are not in `exported`.
fn unknown_metrics(dashboard: &Value, exported: &BTreeSet<String>) -> BTreeSet<String> {
    let mut qs = Vec::new();
    queries(dashboard, &mut qs);
    let mut unknown = BTreeSet::new();
    for q in qs {
        let mut rest = q.as_str();
        while let Some(at) = rest.find("sparkgang_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            if !exported.contains(name) {
                unknown.insert(name.to_owned());
            }
            rest = &tail[end..];
        }
    }
    unknown
}

async fn scrape() -> String {
    let mut state = ClusterState::new(SchedulerConfig {
        fifo: FifoPolicy {
            enabled: true,
            ..FifoPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    for i in 0..2 {
        state.apply_node(&node(i));
    }
    state.apply_pod(&serde_json::from_value::<Pod>(driver("waiting", 40)).unwrap());
    let (ext, _effects) = Extender::standalone(state, Arc::new(SystemClock));
    // Families that appear once their event happens, counted as the writer and the
    // preemption report count them (the standalone extender has no writer).
    ext.metrics.count_write("reservation", "created");
    ext.metrics.count_preemption(1000, false, 1, 0);
    let filter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (f, m) = (filter.local_addr().unwrap(), metrics.local_addr().unwrap());
    tokio::spawn(axum::serve(filter, filter_router(ext.clone())).into_future());
    tokio::spawn(axum::serve(metrics, metrics_router(ext)).into_future());
    // A gang that is placed: decisions, wait time and a reservation.
    let args = json!({"Pod": driver("placed", 2), "NodeNames": ["node-0", "node-1"]});
    let (status, _) = http::post_json(
        TcpStream::connect(f).await.unwrap(),
        "localhost",
        "/filter",
        serde_json::to_vec(&args).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, body) = http::request(
        TcpStream::connect(m).await.unwrap(),
        Method::GET,
        "localhost",
        "/metrics",
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body.to_vec()).unwrap()
}

fn dashboard() -> Value {
    let path = fixtures::repo_root().join("deploy/grafana/sparkgang-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[tokio::test]
async fn every_dashboard_query_names_an_exported_metric() {
    let text = scrape().await;
    let exported = exported(&text);
    let dashboard = dashboard();
    assert_eq!(unknown_metrics(&dashboard, &exported), BTreeSet::new());
    let mut qs = Vec::new();
    queries(&dashboard, &mut qs);
    assert!(qs.len() >= 15, "{} queries", qs.len());
    // The new gauges carry the state's figures: 2 nodes of 8 cores, 5 of them reserved.
    assert!(
        text.contains(
            "sparkgang_extender_group_capacity{instance_group=\"batch\",resource=\"cpu\",kind=\"allocatable\"} 16.0"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "sparkgang_extender_group_capacity{instance_group=\"batch\",resource=\"cpu\",kind=\"reserved\"} 5.0"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "sparkgang_extender_pending_apps{instance_group=\"batch\",reason=\"not-asked-yet\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("sparkgang_extender_driver_wait_seconds_count 1"),
        "{text}"
    );
}

/// The check fails on a dashboard that queries a metric nobody exports, or a counter
/// without its `_total`.
#[test]
fn a_query_of_a_metric_not_exported_is_caught() {
    let exported = exported(
        "# TYPE sparkgang_extender_decisions counter\n# TYPE sparkgang_extender_reservations gauge\n",
    );
    let broken = json!({"panels": [{"targets": [
        {"expr": "sum(rate(sparkgang_extender_decisions_total[5m])) + sparkgang_extender_reservations"},
        {"expr": "sparkgang_extender_nope"},
        {"expr": "rate(sparkgang_extender_decisions[5m])"}
    ]}]});
    let unknown: Vec<String> = unknown_metrics(&broken, &exported).into_iter().collect();
    assert_eq!(
        unknown,
        ["sparkgang_extender_decisions", "sparkgang_extender_nope"]
    );
}
