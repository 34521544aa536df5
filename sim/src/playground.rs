//! `sparkgang-sim up`: a simulated cluster that stays up for a person (or a test) to
//! `spark-submit` against: the real webhook and extender, namespace `spark` opted in as
//! `deploy/examples/spark-namespace.yaml` does, ready nodes, and Spark drivers that run once
//! their executors do.

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::harness::{SimCluster, SimError, SimOptions};
use crate::spark::{self, Scripts};

/// Nodes of the playground: `count` of 8 cores and 32Gi, instance group `batch`.
pub const NODE_CPU: &str = "8";
pub const NODE_MEMORY: &str = "32Gi";

/// A running playground.
pub struct Playground {
    pub cluster: SimCluster,
    /// What each driver does once it runs (by `namespace/name`; default: 1 s).
    pub scripts: Scripts,
}

impl Playground {
    /// Starts the cluster with `nodes` nodes and namespace `spark` opted in.
    pub async fn start(nodes: usize) -> Result<Playground, SimError> {
        let cluster = SimCluster::start(SimOptions::default()).await?;
        let client = cluster.client.clone();
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {
            "name": "spark", "labels": {"sparkgang.io/enabled": "true"}}}))
        .map_err(|e| SimError::Client(e.to_string()))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| SimError::Client(format!("creating namespace spark: {e}")))?;
        let api: Api<Node> = Api::all(client.clone());
        for i in 0..nodes {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": format!("node-{i}"), "labels": {
                    "instance-group": "batch", "topology.kubernetes.io/zone": "z1"}},
                "status": {"allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .map_err(|e| SimError::Client(e.to_string()))?;
            api.create(&PostParams::default(), &node)
                .await
                .map_err(|e| SimError::Client(format!("creating node-{i}: {e}")))?;
        }
        let scripts = Scripts::default();
        tokio::spawn(spark::run_drivers(client, scripts.clone()));
        Ok(Playground { cluster, scripts })
    }

    /// The `--master` of spark-submit for this cluster.
    pub fn spark_master(&self) -> String {
        format!("k8s://{}", self.cluster.api.url())
    }
}
