//! A small cluster to tell scheduling stories with: nodes, Spark apps, a clock.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sparkgang_common::api::GANG_DEMAND_ANNOTATION;
use sparkgang_common::binpack::BinpackAlgorithm;
use sparkgang_common::cluster::{
    AppKey, ClusterState, Decision, Effect, FilterOutcome, SchedulerConfig,
};
use sparkgang_common::{GangDemand, Resources};

pub const NS: &str = "namespace";
pub const GROUP: &str = "batch-medium-priority";

/// A node like palantir's test nodes: 8 cpu, 8Gi, 1 GPU, in `zone`.
pub fn node(name: &str, zone: &str) -> Node {
    node_with(name, zone, "8", "8Gi", "1")
}

pub fn node_with(name: &str, zone: &str, cpu: &str, memory: &str, gpus: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "instance-group": GROUP, "test": "something", "topology.kubernetes.io/zone": zone}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap()
}

/// One Spark application: a driver and its executor pods (not yet created in the cluster).
pub struct App {
    pub id: String,
    pub driver: Pod,
    pub executors: Vec<Pod>,
}

impl App {
    pub fn key(&self) -> AppKey {
        AppKey::new(NS, &self.id)
    }
    pub fn exec(&self, i: usize) -> &Pod {
        &self.executors[i]
    }
}

fn cores(c: i64) -> i64 {
    c * 1000
}

/// palantir's `StaticAllocationSparkPods(id, n)`: driver 1 cpu / 1 byte / 1 GPU, executors
/// 1 cpu / 1 byte, `n` of them.
pub fn static_app(id: &str, n: u32) -> App {
    app(
        id,
        GangDemand {
            driver: Resources::new(cores(1), 1, 1),
            executor: Resources::new(cores(1), 1, 0),
            min_executors: n,
            max_executors: n,
        },
        n as usize,
    )
}

/// palantir's `DynamicAllocationSparkPods(id, min, max)`: creates `max` executor pods.
pub fn dynamic_app(id: &str, min: u32, max: u32) -> App {
    app(
        id,
        GangDemand {
            driver: Resources::new(cores(1), 1, 1),
            executor: Resources::new(cores(1), 1, 0),
            min_executors: min,
            max_executors: max,
        },
        max as usize,
    )
}

/// An app with any demand and `pods` executor pods sized as the demand says.
pub fn app(id: &str, demand: GangDemand, pods: usize) -> App {
    let driver_name = format!("{id}-spark-driver");
    let annotations: BTreeMap<String, String> = [(
        GANG_DEMAND_ANNOTATION.to_owned(),
        serde_json::to_string(&demand).unwrap(),
    )]
    .into();
    let driver = serde_json::from_value(json!({
        "metadata": {"name": driver_name, "namespace": NS, "uid": format!("uid-{driver_name}"),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"spark-role": "driver", "spark-app-id": id},
            "annotations": annotations},
        "spec": {
            "schedulerName": "spark-scheduler",
            "containers": [{"name": "driver", "resources": {"requests": requests(&demand.driver)}}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "instance-group", "operator": "In", "values": [GROUP]}]}]}}}
        }
    }))
    .unwrap();
    let executors = (0..pods)
        .map(|i| executor_pod(id, &driver_name, i, &demand.executor))
        .collect();
    App {
        id: id.to_owned(),
        driver,
        executors,
    }
}

pub fn executor_pod(id: &str, driver_name: &str, i: usize, size: &Resources) -> Pod {
    let name = format!("{id}-spark-exec-{i}");
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-01T00:00:01Z",
            "labels": {"spark-role": "executor", "spark-app-id": id},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": driver_name,
                "uid": format!("uid-{driver_name}"), "controller": true}]},
        "spec": {
            "schedulerName": "spark-scheduler",
            "containers": [{"name": "executor", "resources": {"requests": requests(size)}}]
        }
    }))
    .unwrap()
}

fn requests(r: &Resources) -> serde_json::Value {
    json!({"cpu": format!("{}m", r.cpu_milli), "memory": r.memory_bytes.to_string(),
           "nvidia.com/gpu": r.gpus.to_string()})
}

/// The cluster under test, with a clock.
pub struct Cluster {
    pub state: ClusterState,
    pub now: Timestamp,
}

impl Cluster {
    pub fn new(binpack: BinpackAlgorithm, nodes: &[Node]) -> Self {
        Self::with_config(
            SchedulerConfig {
                binpack,
                fifo: sparkgang_common::cluster::FifoPolicy {
                    enabled: true,
                    ..Default::default()
                },
                dynamic_executors_in_same_zone: true,
                ..SchedulerConfig::default()
            },
            nodes,
        )
    }

    pub fn with_config(config: SchedulerConfig, nodes: &[Node]) -> Self {
        let mut state = ClusterState::new(config);
        for n in nodes {
            state.apply_node(n);
        }
        Cluster {
            state,
            now: "2026-01-01T01:00:00Z".parse().unwrap(),
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.checked_add(d).unwrap();
    }

    /// What kube-scheduler does: call the extender with `candidates`; on success bind the pod
    /// there and start it (the pod object is updated in place, as the harness of palantir).
    pub fn schedule(&mut self, pod: &mut Pod, candidates: &[&str]) -> Decision {
        let names: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
        let decision = self.state.filter(pod, &names, self.now);
        if let Some(node) = &decision.node {
            assert!(
                candidates.contains(&node.as_str()),
                "{node} not among {candidates:?}"
            );
            let spec = pod.spec.get_or_insert_with(Default::default);
            spec.node_name = Some(node.clone());
            pod.status = Some(serde_json::from_value(json!({"phase": "Running"})).unwrap());
            self.state.apply_pod(pod);
        }
        decision
    }

    /// Schedules and asserts success; returns the node.
    pub fn place(&mut self, pod: &mut Pod, candidates: &[&str]) -> String {
        let d = self.schedule(pod, candidates);
        assert!(
            d.outcome.is_success(),
            "{}: expected success, got {:?}: {}",
            pod.metadata.name.as_deref().unwrap_or(""),
            d.outcome,
            d.message
        );
        d.node.unwrap()
    }

    /// Schedules and asserts the outcome.
    pub fn expect(
        &mut self,
        pod: &mut Pod,
        candidates: &[&str],
        outcome: FilterOutcome,
    ) -> Decision {
        let d = self.schedule(pod, candidates);
        assert_eq!(d.outcome, outcome, "{}", d.message);
        d
    }

    /// All containers terminated (palantir's `TerminatePod`).
    pub fn terminate(&mut self, pod: &mut Pod) -> Vec<Effect> {
        pod.status = Some(
            serde_json::from_value(json!({"phase": "Failed", "containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 1}}}]}))
            .unwrap(),
        );
        self.state.apply_pod(pod)
    }

    /// The app's executors bound to reservation slots (pod names), excluding the driver.
    pub fn reserved_executors(&self, app: &App) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .reservation(&app.key())
            .map(|r| {
                r.executor_slots()
                    .filter_map(|(_, s)| s.pod.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Soft reservations: executor name → node.
    pub fn soft(&self, app: &App) -> BTreeMap<String, String> {
        self.state.soft_reservations(&app.key())
    }

    /// Per node: allocatable minus everything held, never negative in any dimension.
    pub fn assert_no_overcommit(&self) {
        for n in self.state.nodes() {
            let free = n.available();
            assert!(
                free.cpu_milli >= 0 && free.memory_bytes >= 0 && free.gpus >= 0,
                "node {} over-committed: {:?}",
                n.name,
                n.usage
            );
        }
    }
}

pub fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap()
}

pub fn created_at(p: &mut Pod, ts: &str) {
    p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        ts.parse().unwrap(),
    ));
}
