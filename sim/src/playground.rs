//! `sparkgang-sim up`: a simulated cluster that stays up for a person (or a test) to
//! `spark-submit` against: the real webhook and extender, namespace `spark` opted in as
//! `deploy/examples/spark-namespace.yaml` does, ready nodes, and Spark: either real (the
//! kubelet runs driver and executor pods as local JVMs) or simulated (drivers that "run" once
//! their executors do, for tests of scheduling alone).

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use sparkgang_common::api::explain::{
    EXPLAIN_SERVICE_NAME, EXPLAIN_SERVICE_NAMESPACE, EXPLAIN_SERVICE_PORT,
};

use crate::harness::{SimCluster, SimError, SimOptions, SparkProcesses};
use crate::spark::{self, Scripts};

/// Nodes of the playground: `count` of 8 cores and 32Gi, instance group `batch`.
pub const NODE_CPU: &str = "8";
pub const NODE_MEMORY: &str = "32Gi";

/// The bearer token of the playground's kubeconfig, and who it is.
pub const TOKEN: &str = "sparkgang-playground-token";
pub const USER: &str = "playground-admin";

/// A running playground.
pub struct Playground {
    pub cluster: SimCluster,
    /// With simulated Spark: what each driver does once it runs (by `namespace/name`;
    /// default: 1 s). Unused when Spark runs for real.
    pub scripts: Scripts,
}

impl Playground {
    /// Starts the cluster with `nodes` nodes and namespace `spark` opted in, and simulated
    /// Spark drivers.
    pub async fn start(nodes: usize) -> Result<Playground, SimError> {
        Playground::start_with(nodes, None).await
    }

    /// Starts the cluster with `nodes` nodes and namespace `spark` opted in; with `spark`,
    /// Spark's pods run as local JVMs, else drivers are simulated.
    pub async fn start_with(
        nodes: usize,
        spark: Option<SparkProcesses>,
    ) -> Result<Playground, SimError> {
        let real = spark.is_some();
        let cluster = SimCluster::start(SimOptions {
            spark_processes: spark,
            ..SimOptions::default()
        })
        .await?;
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
        // As deploy/ has it: the Service in front of the authenticated explain listener,
        // and a token that may read everything (the kubeconfig's).
        if let Some(address) = cluster.extender.as_ref().and_then(|e| e.explain_address) {
            cluster.api.service_proxies().register(
                EXPLAIN_SERVICE_NAMESPACE,
                EXPLAIN_SERVICE_NAME,
                EXPLAIN_SERVICE_PORT,
                address,
            );
        }
        let ids = cluster.api.identities();
        ids.add_token(TOKEN, USER, &["system:authenticated"]);
        ids.grant(USER, "get", "pods", None);
        ids.grant(USER, "list", "nodes", None);
        let scripts = Scripts::default();
        if !real {
            tokio::spawn(spark::run_drivers(client, scripts.clone()));
        }
        Ok(Playground { cluster, scripts })
    }

    /// The console and explain API on the extender's filter listener (open, on loopback; the
    /// API server's service proxy leads to the authenticated explain listener).
    pub fn console_url(&self) -> Option<String> {
        self.cluster
            .extender
            .as_ref()
            .map(|e| format!("http://{}/", e.filter_address))
    }

    /// A kubeconfig for this cluster, with namespace `spark` as the default. Its token means
    /// nothing to the simulated API server, which authenticates nobody; the explain listener
    /// checks it (a TokenReview) as in a real cluster.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sparkgang-playground\n  cluster:\n    \
             server: {}\ncontexts:\n- name: sparkgang-playground\n  context:\n    cluster: \
             sparkgang-playground\n    user: sparkgang-playground\n    namespace: spark\n\
             current-context: sparkgang-playground\nusers:\n- name: sparkgang-playground\n  user:\n    token: {TOKEN}\n",
            self.cluster.api.url()
        )
    }

    /// The `--master` of spark-submit for this cluster.
    pub fn spark_master(&self) -> String {
        format!("k8s://{}", self.cluster.api.url())
    }
}
