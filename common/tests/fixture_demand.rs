//! The demand computed from a real `spark.properties` equals the pods Spark 4.3.0 really created.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use sparkgang_common::resources::{GpuResourceNames, Resources, pod_requests};
use sparkgang_common::sparkconf::{ConfDemand, SparkConf};
use sparkgang_testing::fixtures;

/// The method, path and JSON body of every request in a `.jsonl` capture.
fn request_bodies(file: &str) -> Vec<(String, String, Value)> {
    fixtures::jsonl(fixtures::SPARK, file)
        .into_iter()
        .map(|v| {
            let method = v["method"].as_str().unwrap().to_owned();
            let path = v["path"].as_str().unwrap().to_owned();
            (method, path, v["body"].clone())
        })
        .collect()
}

/// Pods created with `POST …/pods`, in order.
fn created_pods(file: &str) -> Vec<Pod> {
    request_bodies(file)
        .into_iter()
        .filter(|(method, path, body)| {
            method == "POST" && path.ends_with("/pods") && body["kind"] == "Pod"
        })
        .map(|(_, _, body)| serde_json::from_value(body).unwrap())
        .collect()
}

/// `data["spark.properties"]` of the ConfigMap the capture wrote.
fn spark_properties(file: &str) -> String {
    request_bodies(file)
        .into_iter()
        .find(|(_, _, body)| body["kind"] == "ConfigMap")
        .and_then(|(_, _, body)| body["data"]["spark.properties"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{file} has no ConfigMap with spark.properties"))
}

fn requests(pod: &Pod) -> Resources {
    pod_requests(pod.spec.as_ref().unwrap(), &GpuResourceNames::default()).unwrap()
}

fn role(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().unwrap()["spark-role"].as_str()
}

fn conf_demand(app: &str) -> ConfDemand {
    let text = spark_properties(&format!("{app}.requests.jsonl"));
    SparkConf::parse(&text)
        .unwrap()
        .demand(&GpuResourceNames::default())
        .unwrap()
}

/// Driver = the captured driver pod, executor = every executor pod Spark's own driver created.
fn assert_matches_capture(app: &str) -> ConfDemand {
    let demand = conf_demand(app);
    let drivers = created_pods(&format!("{app}.requests.jsonl"));
    assert_eq!(drivers.len(), 1, "{app}: one driver pod");
    assert_eq!(role(&drivers[0]), "driver");
    assert_eq!(demand.demand.driver, requests(&drivers[0]), "{app}: driver");

    let executors = created_pods(&format!("{app}.executors.jsonl"));
    assert!(!executors.is_empty(), "{app}: executor pods");
    for pod in &executors {
        assert_eq!(role(pod), "executor");
        assert_eq!(
            demand.demand.executor,
            requests(pod),
            "{app}: executor {:?}",
            pod.metadata.name
        );
        assert_eq!(
            Some(&demand.executor_node_selector),
            pod.spec
                .as_ref()
                .unwrap()
                .node_selector
                .as_ref()
                .or(Some(&Default::default())),
            "{app}: executor node selector"
        );
    }
    demand
}

#[test]
fn cluster_static_matches_the_real_pods() {
    let d = assert_matches_capture("cluster-static");
    assert_eq!(d.demand.driver, Resources::new(1000, 1408 << 20, 0));
    assert_eq!(d.demand.executor, Resources::new(2000, 4505 << 20, 0));
    // README: 8 executors (`spark.executor.instances=8`), and the driver created all 8.
    assert_eq!((d.demand.min_executors, d.demand.max_executors), (8, 8));
    assert!(!d.dynamic_allocation);
    assert_eq!(created_pods("cluster-static.executors.jsonl").len(), 8);
    assert_eq!(
        d.app_id.as_deref(),
        Some("spark-98ef78d5fcad4def8a974779f7c34080")
    );
    assert_eq!(d.namespace, "spark");
}

#[test]
fn cluster_dynamic_gpu_matches_the_real_pods() {
    let d = assert_matches_capture("cluster-dynamic-gpu");
    assert_eq!(d.demand.driver, Resources::new(2000, 3456 << 20, 1));
    assert_eq!(d.demand.executor, Resources::new(3500, 9216 << 20, 0));
    // README: 2 at start (minExecutors=2), at most 10; the driver created 2.
    assert_eq!((d.demand.min_executors, d.demand.max_executors), (2, 10));
    assert_eq!(d.dynamic_min_executors, 2);
    assert!(d.dynamic_allocation);
    assert_eq!(created_pods("cluster-dynamic-gpu.executors.jsonl").len(), 2);
    assert_eq!(
        d.driver_annotations
            .get("spark-executor-count")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        d.driver_node_selector
            .get("instance-group")
            .map(String::as_str),
        Some("batch")
    );
}

#[test]
fn client_mode_gpu_executors_match_the_conf_the_readme_describes() {
    // No ConfigMap with the app's conf in client mode: built by hand from the README.
    let conf: SparkConf = [
        ("spark.executor.instances", "3"),
        ("spark.executor.cores", "2"),
        ("spark.executor.memory", "2g"),
        ("spark.executor.resource.gpu.amount", "1"),
        ("spark.executor.resource.gpu.vendor", "nvidia.com"),
        ("spark.kubernetes.resource.type", "python"),
        ("spark.submit.deployMode", "client"),
        ("spark.kubernetes.node.selector.instance-group", "batch"),
    ]
    .into_iter()
    .collect();
    let d = conf.demand(&GpuResourceNames::default()).unwrap();
    let executors = created_pods("client-executors-gpu.requests.jsonl");
    assert_eq!(executors.len(), 3);
    assert_eq!((d.demand.min_executors, d.demand.max_executors), (3, 3));
    for pod in &executors {
        assert_eq!(role(pod), "executor");
        assert_eq!(d.demand.executor, requests(pod), "{:?}", pod.metadata.name);
        assert_eq!(
            pod.spec.as_ref().unwrap().node_selector.as_ref(),
            Some(&d.executor_node_selector)
        );
    }
    assert_eq!(d.demand.executor, Resources::new(2000, 2432 << 20, 1));
}
