//! A large cluster snapshot for scheduling benchmarks: 5,000 nodes in 4 zones, 100,000 running
//! pods (80,000 of other schedulers, 2,000 Spark apps of 1 driver + 9 executors placed by the
//! real decisions), and 500 pending drivers older than the one being decided (FIFO on); a
//! tenth of that when run as a test.

#![allow(dead_code)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use sparkgang_common::api::GANG_DEMAND_ANNOTATION;
use sparkgang_common::cluster::{ClusterState, FifoPolicy, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};

pub const FOREIGN_PODS_PER_NODE: usize = 16;
pub const EXECUTORS_PER_APP: usize = 9;

/// Full size under `cargo bench` (which passes `--bench`); a tenth under `cargo test`, where
/// benchmarks run once as smoke tests in a debug build.
fn scale() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        10
    } else {
        1
    }
}

pub fn nodes() -> usize {
    500 * scale()
}

pub fn running_apps() -> usize {
    200 * scale()
}

pub fn pending_drivers() -> usize {
    50 * scale()
}

fn quantities(pairs: &[(&str, String)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
        .collect()
}

pub fn node(i: usize) -> Node {
    let labels = BTreeMap::from([
        ("instance-group".to_owned(), "batch".to_owned()),
        (
            "topology.kubernetes.io/zone".to_owned(),
            format!("zone-{}", i % 4),
        ),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(format!("node-{i:05}")),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            allocatable: Some(quantities(&[
                ("cpu", "64".to_owned()),
                ("memory", "256Gi".to_owned()),
            ])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".to_owned(),
                status: "True".to_owned(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(1_790_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn pod(namespace: &str, name: &str, cpu: &str, memory: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(at(0)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".to_owned(),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities(&[
                        ("cpu", cpu.to_owned()),
                        ("memory", memory.to_owned()),
                    ])),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

pub fn running(mut p: Pod, node: &str) -> Pod {
    if let Some(s) = p.spec.as_mut() {
        s.node_name = Some(node.to_owned());
    }
    p.status = Some(PodStatus {
        phase: Some("Running".to_owned()),
        ..PodStatus::default()
    });
    p
}

pub fn demand(executors: u32) -> GangDemand {
    GangDemand {
        driver: Resources::new(1000, 4 << 30, 0),
        executor: Resources::new(4000, 16 << 30, 0),
        min_executors: executors,
        max_executors: executors,
    }
}

/// A driver of app `app`, created at `created` (seconds), asking for `demand`.
pub fn driver(app: &str, created: i64, demand: &GangDemand) -> Pod {
    let mut p = pod("spark", &format!("{app}-driver"), "1", "4Gi");
    p.metadata.creation_timestamp = Some(at(created));
    p.metadata.labels = Some(BTreeMap::from([
        ("spark-role".to_owned(), "driver".to_owned()),
        ("spark-app-id".to_owned(), app.to_owned()),
    ]));
    p.metadata.annotations = Some(BTreeMap::from([(
        GANG_DEMAND_ANNOTATION.to_owned(),
        serde_json::to_string(demand).unwrap_or_default(),
    )]));
    if let Some(s) = p.spec.as_mut() {
        s.scheduler_name = Some("spark-scheduler".to_owned());
        s.node_selector = Some(BTreeMap::from([(
            "instance-group".to_owned(),
            "batch".to_owned(),
        )]));
    }
    p
}

pub fn executor(app: &str, i: usize) -> Pod {
    let mut p = pod("spark", &format!("{app}-exec-{i}"), "4", "16Gi");
    p.metadata.labels = Some(BTreeMap::from([
        ("spark-role".to_owned(), "executor".to_owned()),
        ("spark-app-id".to_owned(), app.to_owned()),
    ]));
    p.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: format!("{app}-driver"),
        uid: format!("uid-{app}-driver"),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    if let Some(s) = p.spec.as_mut() {
        s.scheduler_name = Some("spark-scheduler".to_owned());
    }
    p
}

pub fn node_names() -> Vec<String> {
    (0..nodes()).map(|i| format!("node-{i:05}")).collect()
}

pub fn now() -> Timestamp {
    Timestamp::from_second(1_790_100_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The snapshot, FIFO on or off. `blocked_head`: the oldest pending driver cannot fit the free capacity (but
/// could fit the empty cluster), so FIFO blocks everything behind it.
pub fn build(fifo: bool, blocked_head: bool) -> ClusterState {
    build_scenario(&Scenario {
        nodes: nodes(),
        running_apps: running_apps(),
        pending_drivers: pending_drivers(),
        app_demand: demand(EXECUTORS_PER_APP as u32),
        pending_demand: demand(8),
        driver_memory: "4Gi",
        executor_requests: ("4", "16Gi"),
        fifo,
        blocked_head,
    })
}

/// A snapshot of any size and shape (same node, foreign-pod and zone layout as [`build`]).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub nodes: usize,
    /// Running Spark applications, placed by the real decisions.
    pub running_apps: usize,
    /// Pending drivers older than the decided one.
    pub pending_drivers: usize,
    /// The gang of each running application (its executor count is the number of executors).
    pub app_demand: GangDemand,
    /// The gang of each pending driver.
    pub pending_demand: GangDemand,
    /// The memory request of every driver pod (its cpu request is 1).
    pub driver_memory: &'static str,
    /// The cpu and memory requests of every executor pod.
    pub executor_requests: (&'static str, &'static str),
    pub fifo: bool,
    pub blocked_head: bool,
}

/// The workload of the palantir comparison: 64-cpu/256Gi nodes in 4 zones with running pods
/// (16 foreign pods of 2 cpu/8Gi per node, and one running Spark application per 2.5 nodes),
/// 500 older pending drivers each 1 cpu/1Gi + 4 × 2 cpu/4Gi executors, FIFO on,
/// tightly-pack (the default algorithm).
pub fn palantir_workload(nodes: usize) -> Scenario {
    Scenario {
        nodes,
        running_apps: nodes * 2 / 5,
        pending_drivers: 500,
        app_demand: small_demand(4),
        pending_demand: small_demand(4),
        driver_memory: "1Gi",
        executor_requests: ("2", "4Gi"),
        fifo: true,
        blocked_head: false,
    }
}

/// Driver 1 cpu/1Gi, executors 2 cpu/4Gi.
pub fn small_demand(executors: u32) -> GangDemand {
    GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(2000, 4 << 30, 0),
        min_executors: executors,
        max_executors: executors,
    }
}

/// The names of the first `n` nodes, as kube-scheduler offers them.
pub fn names_of(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i:05}")).collect()
}

/// A driver like [`driver`] whose pod requests 1 cpu and `memory`.
pub fn driver_sized(app: &str, created: i64, demand: &GangDemand, memory: &str) -> Pod {
    let mut p = driver(app, created, demand);
    if let Some(s) = p.spec.as_mut() {
        s.containers[0].resources = Some(ResourceRequirements {
            requests: Some(quantities(&[
                ("cpu", "1".to_owned()),
                ("memory", memory.to_owned()),
            ])),
            ..ResourceRequirements::default()
        });
    }
    p
}

/// An executor like [`executor`] whose pod requests `(cpu, memory)`.
pub fn executor_sized(app: &str, i: usize, (cpu, memory): (&str, &str)) -> Pod {
    let mut p = executor(app, i);
    if let Some(s) = p.spec.as_mut() {
        s.containers[0].resources = Some(ResourceRequirements {
            requests: Some(quantities(&[
                ("cpu", cpu.to_owned()),
                ("memory", memory.to_owned()),
            ])),
            ..ResourceRequirements::default()
        });
    }
    p
}

/// Builds `scenario`.
pub fn build_scenario(scenario: &Scenario) -> ClusterState {
    let mut state = ClusterState::new(SchedulerConfig {
        fifo: FifoPolicy {
            enabled: scenario.fifo,
            ..FifoPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    let names = names_of(scenario.nodes);
    for i in 0..scenario.nodes {
        state.apply_node(&node(i));
    }
    for (n, name) in names.iter().enumerate() {
        for k in 0..FOREIGN_PODS_PER_NODE {
            let p = pod("default", &format!("web-{n}-{k}"), "2", "8Gi");
            state.apply_pod(&running(p, name));
        }
    }
    // Running Spark apps, placed by the real decisions (created long ago, in order).
    let app_demand = scenario.app_demand;
    for a in 0..scenario.running_apps {
        let app = format!("running-{a:04}");
        let mut d = driver_sized(&app, a as i64, &app_demand, scenario.driver_memory);
        let decision = state.filter(&d, &names, now());
        let Some(node) = decision.node else {
            panic!("setup: {app} did not fit: {}", decision.message);
        };
        d = running(d, &node);
        state.apply_pod(&d);
        for e in 0..app_demand.min_executors as usize {
            let ex = executor_sized(&app, e, scenario.executor_requests);
            let decision = state.filter(&ex, &names, now());
            let Some(node) = decision.node else {
                panic!("setup: {app} executor {e}: {}", decision.message);
            };
            state.apply_pod(&running(ex, &node));
        }
    }
    // Pending drivers, older than the decided one.
    for p in 0..scenario.pending_drivers {
        let gang = if scenario.blocked_head && p == 0 {
            // More than is free (about a quarter of the cluster), less than the cluster.
            GangDemand {
                executor: Resources::new(32_000, 128 << 30, 0),
                min_executors: (scenario.nodes * 4 / 5) as u32,
                max_executors: (scenario.nodes * 4 / 5) as u32,
                ..scenario.pending_demand
            }
        } else {
            scenario.pending_demand
        };
        state.apply_pod(&driver_sized(
            &format!("pending-{p:03}"),
            10_000 + p as i64,
            &gang,
            scenario.driver_memory,
        ));
    }
    state
}
