//! Criterion benchmarks of the explain API's computations, which run under the state lock
//! that filter calls take: 1,000 nodes of 8 cpu, each holding one placed gang of 7 cpu, and
//! 1,000 pending drivers of the same shape behind them (FIFO on, so the first pending driver
//! holds back the rest). `cargo bench -p sparkgang-common --bench explain`.
//!
//! - `explain/capacity`: the first pending driver (a shortfall over 1,000 nodes).
//! - `explain/waiting-behind`: the last (the FIFO walk, then the 999 drivers ahead).
//! - `app-list`: `GET /api/v1/apps` over 2,000 applications.
//! - `capacity`: `GET /api/v1/capacity` (every node, the queue of 1,000).
//! - `scrape`: what each `/metrics` scrape computes from the state (pending by reason, group
//!   totals, cross-zone gangs).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use sparkgang_common::GangDemand;
use sparkgang_common::Resources;
use sparkgang_common::api::GANG_DEMAND_ANNOTATION;
use sparkgang_common::api::explain::Reason;
use sparkgang_common::cluster::{AppKey, ClusterState, FifoPolicy, SchedulerConfig, Timestamp};

const NODES: usize = 1_000;

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + second).expect("a valid time")
}

fn driver(app: &str, second: i64) -> Pod {
    let demand = GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(3000, 2 << 30, 0),
        min_executors: 2,
        max_executors: 2,
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
            "uid": format!("uid-{app}"), "creationTimestamp": t(second).to_string(),
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).expect("json")}},
        "spec": {"schedulerName": "spark-scheduler",
            "containers": [{"name": "driver",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    }))
    .expect("a pod")
}

fn cluster() -> ClusterState {
    let mut s = ClusterState::new(SchedulerConfig {
        fifo: FifoPolicy {
            enabled: true,
            ..FifoPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    let names: Vec<String> = (0..NODES).map(|i| format!("node-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": n, "labels": {"topology.kubernetes.io/zone": format!("z{}", i % 3)}},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a node");
        s.apply_node(&node);
    }
    for i in 0..NODES {
        let mut d = driver(&format!("placed-{i}"), i as i64);
        let placed = s.filter(&d, &names, t(i as i64));
        // Bound and running, as kube-scheduler and the kubelet make it.
        if let Some(spec) = d.spec.as_mut() {
            spec.node_name = Some(placed.node.expect("an empty node takes the gang"));
        }
        d.status = serde_json::from_value(json!({"phase": "Running"})).ok();
        s.apply_pod(&d);
    }
    for i in 0..NODES {
        s.apply_pod(&driver(&format!("pending-{i:04}"), 2_000 + i as i64));
    }
    s
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("explain");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let mut state = cluster();
    let now = t(4_000);
    let first = AppKey::new("spark", "pending-0000");
    let last = AppKey::new("spark", format!("pending-{:04}", NODES - 1));
    group.bench_function("explain/capacity", |b| {
        b.iter(|| {
            let e = state.explain_app(&first, now).expect("known");
            assert!(
                matches!(e.reason, Reason::Capacity { .. }),
                "{:?}",
                e.reason
            );
        })
    });
    group.bench_function("explain/waiting-behind", |b| {
        b.iter(|| {
            let e = state.explain_app(&last, now).expect("known");
            assert!(
                matches!(e.reason, Reason::WaitingBehind { .. }),
                "{:?}",
                e.reason
            );
        })
    });
    group.bench_function("app-list/2000", |b| {
        b.iter(|| assert_eq!(state.app_summaries(None).len(), 2 * NODES))
    });
    group.bench_function("capacity/1000-nodes", |b| {
        b.iter(|| assert_eq!(state.capacity(None, now)[0].queue.len(), NODES))
    });
    group.bench_function("scrape", |b| {
        b.iter(|| {
            let pending: usize = state.pending_by_reason().values().sum();
            assert_eq!(pending, NODES);
            assert_eq!(state.group_totals()[0].nodes, NODES);
            state.cross_zone_gangs()
        })
    });
    group.finish();
}

criterion_group!(explain, benches);
criterion_main!(explain);
