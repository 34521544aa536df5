//! Criterion benchmarks of preemption planning (`ClusterState::plan_preemption`), which a
//! pending driver that does not fit runs in its filter call: 1,000 nodes of 8 cpu, each full
//! with one running gang of priority 10 (a 1-cpu driver and two 3-cpu executors), 1,000
//! candidates. `cargo bench -p sparkgang-common --bench preemption`.
//!
//! - `plan-found`: a priority-1000 gang of the same shape: the youngest gang is the victim.
//! - `no-plan`: the preemptor needs more than all lower-priority gangs free together (400
//!   nodes are held by gangs of equal priority): every candidate is tried and none suffices.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use sparkgang_common::GangDemand;
use sparkgang_common::Resources;
use sparkgang_common::api::GANG_DEMAND_ANNOTATION;
use sparkgang_common::cluster::{
    ClusterState, PodKey, PreemptionPolicy, SchedulerConfig, Timestamp,
};

const NODES: usize = 1_000;

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + second).expect("a valid time")
}

fn gang(executors: u32) -> GangDemand {
    GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(3000, 2 << 30, 0),
        min_executors: executors,
        max_executors: executors,
    }
}

fn driver(app: &str, priority: i32, second: i64, demand: &GangDemand) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
            "uid": format!("uid-{app}"), "creationTimestamp": t(second).to_string(),
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(demand).expect("json")}},
        "spec": {"schedulerName": "spark-scheduler", "priority": priority,
            "containers": [{"name": "driver",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    }))
    .expect("a pod")
}

/// Every node full with one running gang; the first `equal` gangs have the preemptor's
/// priority (never victims), the others priority 10, started one second apart.
fn full_cluster(equal: usize) -> (ClusterState, Vec<String>) {
    let mut s = ClusterState::new(SchedulerConfig {
        preemption: PreemptionPolicy {
            enabled: true,
            max_victims_per_minute: usize::MAX,
            ..PreemptionPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    let names: Vec<String> = (0..NODES).map(|i| format!("node-{i}")).collect();
    for n in &names {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": n},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a node");
        s.apply_node(&node);
    }
    for i in 0..NODES {
        let priority = if i < equal { 1000 } else { 10 };
        let mut d = driver(&format!("app-{i}"), priority, i as i64, &gang(2));
        let placed = s.filter(&d, &names, t(i as i64));
        let node = placed.node.expect("an empty node takes the gang");
        if let Some(spec) = d.spec.as_mut() {
            spec.node_name = Some(node);
        }
        d.status = serde_json::from_value(
            json!({"phase": "Running", "startTime": t(i as i64).to_string()}),
        )
        .ok();
        s.apply_pod(&d);
    }
    (s, names)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("preemption");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));

    let (mut state, _) = full_cluster(0);
    let urgent = driver("urgent", 1000, 5_000, &gang(2));
    state.apply_pod(&urgent);
    let key = PodKey::new("spark", "urgent-driver");
    group.bench_function("plan-found/1000-candidates", |b| {
        b.iter(|| {
            let plan = state.plan_preemption(&key, t(6_000)).expect("a plan");
            assert_eq!(plan.victims.len(), 1);
        })
    });

    // 600 lower-priority gangs free 600 nodes; the preemptor needs 700 nodes' worth.
    let (mut state, _) = full_cluster(400);
    let big = driver("big", 1000, 5_000, &gang(2 * 700 - 1));
    state.apply_pod(&big);
    let key = PodKey::new("spark", "big-driver");
    group.bench_function("no-plan/600-candidates", |b| {
        b.iter(|| {
            let err = state.plan_preemption(&key, t(6_000)).expect_err("no plan");
            assert!(err.contains("would not be enough"), "{err}");
        })
    });
    group.finish();
}

criterion_group!(preemption, benches);
criterion_main!(preemption);
