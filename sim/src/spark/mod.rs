//! The Spark simulator: what `spark-submit` and a running Spark driver do to the API.
//!
//! [`submit`] creates the driver pod and then its `spark.properties` ConfigMap, in the order
//! the real spark-submit does (the webhook sees the driver before the ConfigMap exists).
//! [`run_driver`] behaves like Spark's executor allocator once the driver runs: executor pods
//! named, labelled, owned and sized as Spark 4.x makes them, created in batches of
//! `spark.kubernetes.allocation.batch.size` every `batch.delay`, replaced with new ids when they
//! die, and deleted when the application ends after its runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use sparkgang_common::GpuResourceNames;
use sparkgang_common::pods::app_id;
use sparkgang_common::properties::write_properties;
use sparkgang_common::quantities::{format_cpu_millis, format_memory_bytes};
use sparkgang_common::sparkconf::{ConfDemand, SparkConf};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::kubelet::{Phase, set_phase};

pub mod allocator;
pub mod install;
pub mod launch;

pub use allocator::{Allocator, ExecutorPhase, ExecutorView, Round};

/// One application to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    pub namespace: String,
    /// `spark.app.name`; also the prefix of pod names.
    pub name: String,
    /// Spark conf on top of the defaults spark-submit writes.
    pub conf: BTreeMap<String, String>,
    /// Driver annotations (`spark.kubernetes.driver.annotation.*`).
    pub annotations: BTreeMap<String, String>,
}

/// What the driver does once running.
#[derive(Debug, Clone, Default)]
pub struct DriverScript {
    /// How long the application runs once its minimum executors run.
    pub runtime: Duration,
    /// At each offset from the start of the run, kill this many running executors.
    pub kill_executors: Vec<(Duration, u32)>,
    /// Dynamic allocation: at each offset, the executor target becomes this.
    pub scale_to: Vec<(Duration, u32)>,
}

fn hex(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    let mut out = String::new();
    while out.len() < len {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(len);
    out
}

/// The driver pod name, app id and ConfigMap name spark-submit would use for `name` and a
/// unique `seed`.
pub fn identities(name: &str, seed: u64) -> (String, String, String) {
    let prefix = format!("{name}-{}", hex(seed, 16));
    (
        format!("{prefix}-driver"),
        format!("spark-{}", hex(seed ^ 0xabcd, 32)),
        format!("spark-drv-{}-conf-map", hex(seed ^ 0x1234, 16)),
    )
}

/// What spark-submit creates for one application, before the API server has seen it: the
/// driver pod and its `spark.properties` ConfigMap (owned by the driver once it exists).
#[derive(Debug, Clone)]
pub struct SubmittedObjects {
    pub driver: Pod,
    pub config_map: ConfigMap,
}

/// Why spark-submit would refuse a submission before creating anything.
#[derive(Debug, thiserror::Error)]
#[error("spark-submit refuses the conf: {0}")]
pub struct SubmitError(String);

/// The objects spark-submit creates for `s` and a unique `seed`: the same in real and virtual
/// time.
pub fn submitted_objects(s: &Submission, seed: u64) -> Result<SubmittedObjects, SubmitError> {
    let (driver_name, app_id, conf_map) = identities(&s.name, seed);
    let mut conf = BTreeMap::from([
        ("spark.app.name".to_owned(), s.name.clone()),
        ("spark.app.id".to_owned(), app_id.clone()),
        ("spark.submit.deployMode".to_owned(), "cluster".to_owned()),
        ("spark.kubernetes.namespace".to_owned(), s.namespace.clone()),
        (
            "spark.kubernetes.driver.pod.name".to_owned(),
            driver_name.clone(),
        ),
        (
            "spark.kubernetes.resource.type".to_owned(),
            "java".to_owned(),
        ),
        (
            "spark.kubernetes.memoryOverheadFactor".to_owned(),
            "0.1".to_owned(),
        ),
    ]);
    conf.extend(s.conf.clone());
    let spark = SparkConf::from(conf.clone());
    let demand = spark
        .demand(&GpuResourceNames::default())
        .map_err(|e| SubmitError(e.to_string()))?;
    let mut labels = BTreeMap::from([
        ("spark-app-selector".to_owned(), app_id.clone()),
        ("spark-app-name".to_owned(), s.name.clone()),
        ("spark-role".to_owned(), "driver".to_owned()),
        ("spark-version".to_owned(), "4.3.0".to_owned()),
    ]);
    labels.extend(spark.prefixed_map("spark.kubernetes.driver.label."));
    let mut annotations = spark.prefixed_map("spark.kubernetes.driver.annotation.");
    annotations.extend(s.annotations.clone());
    let d = &demand.demand.driver;
    let limits = limits(d);
    let driver: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": driver_name, "namespace": s.namespace, "labels": labels,
                      "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": demand.driver_node_selector,
            "containers": [{
                "name": "spark-kubernetes-driver", "image": "apache/spark:4.0.0",
                "args": ["driver", "--properties-file", "/opt/spark/conf/spark.properties",
                         "--class", "org.apache.spark.examples.SparkPi", "spark-internal"],
                "resources": {"requests": {"cpu": format_cpu_millis(d.cpu_milli),
                                           "memory": format_memory_bytes(d.memory_bytes)},
                              "limits": limits},
                "volumeMounts": [{"name": "spark-conf-volume-driver", "mountPath": "/opt/spark/conf"}]
            }],
            "volumes": [{"name": "spark-conf-volume-driver", "configMap": {"name": conf_map,
                "items": [{"key": "spark.properties", "path": "spark.properties", "mode": 420}]}}]
        }
    }))
    .map_err(|e| SubmitError(e.to_string()))?;
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(conf_map),
            namespace: Some(s.namespace.clone()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "spark.properties".to_owned(),
            write_properties(conf.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    Ok(SubmittedObjects { driver, config_map })
}

/// Creates the driver pod, then its ConfigMap (owned by the driver), as spark-submit does.
/// Returns the created driver (as admitted: the webhook may have changed it) or the API's
/// error (a denial).
pub async fn submit(client: &Client, s: &Submission, seed: u64) -> Result<Pod, kube::Error> {
    let SubmittedObjects {
        driver,
        mut config_map,
    } = submitted_objects(s, seed).map_err(|e| kube::Error::Service(e.to_string().into()))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &s.namespace);
    let created = pods.create(&PostParams::default(), &driver).await?;
    config_map.metadata.owner_references = Some(vec![owner(&created)]);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &s.namespace);
    maps.create(&PostParams::default(), &config_map).await?;
    Ok(created)
}

/// Spark's container limits: memory equal to the request, GPUs as limits only.
fn limits(r: &sparkgang_common::Resources) -> serde_json::Value {
    let mut limits = serde_json::Map::new();
    limits.insert("memory".into(), json!(format_memory_bytes(r.memory_bytes)));
    if r.gpus > 0 {
        limits.insert("nvidia.com/gpu".into(), json!(r.gpus.to_string()));
    }
    serde_json::Value::Object(limits)
}

fn owner(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        ..OwnerReference::default()
    }
}

/// The executor pod Spark creates for executor `id`.
pub fn executor_pod(driver: &Pod, demand: &ConfDemand, id: u64, prefix: &str) -> Pod {
    let app_id = app_id(driver).unwrap_or_default();
    let app_name = demand.app_name.clone().unwrap_or_default();
    let e = &demand.demand.executor;
    let limits = limits(e);
    let name = format!("{prefix}-exec-{id}");
    let mut pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": driver.metadata.namespace,
            "labels": {"spark-app-selector": app_id, "spark-role": "executor",
                       "spark-exec-id": id.to_string(), "spark-app-name": app_name,
                       "spark-version": "4.3.0", "spark-exec-resourceprofile-id": "0"}},
        "spec": {
            "restartPolicy": "Never",
            "hostname": name,
            "nodeSelector": demand.executor_node_selector,
            "containers": [{"name": "spark-kubernetes-executor", "image": "apache/spark:4.0.0",
                "args": ["executor"],
                "resources": {"requests": {"cpu": format_cpu_millis(e.cpu_milli),
                                           "memory": format_memory_bytes(e.memory_bytes)},
                              "limits": limits}}]
        }
    }))
    .unwrap_or_default();
    pod.metadata.owner_references = Some(vec![owner(driver)]);
    // spark.kubernetes.executor.label.*, under Spark's own labels.
    if let Some(labels) = pod.metadata.labels.as_mut() {
        for (k, v) in &demand.executor_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    pod
}

/// What the driver reads of its `spark.properties`: its demand, as Spark sizes its pods.
pub fn driver_demand(properties: &str) -> Result<ConfDemand, String> {
    SparkConf::parse(properties)
        .map_err(|e| e.to_string())?
        .demand(&GpuResourceNames::default())
        .map_err(|e| e.to_string())
}

/// Spark names executors `<app name>-<random per application>-exec-<id>`: the prefix, stable
/// per application.
pub fn executor_prefix(demand: &ConfDemand, app_id: &str) -> String {
    let per_app = app_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "{}-{}",
        demand
            .app_name
            .clone()
            .unwrap_or_else(|| "spark".to_owned()),
        hex(per_app, 16)
    )
}

/// Runs a driver (already `Running`) to completion: allocates executors like Spark, follows
/// the script, then deletes its executors and succeeds.
pub async fn run_driver(
    client: Client,
    driver: Pod,
    script: DriverScript,
) -> Result<(), kube::Error> {
    let namespace = driver.metadata.namespace.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let conf_map = driver
        .spec
        .as_ref()
        .and_then(sparkgang_common::pods::driver_conf_map_name)
        .unwrap_or_default()
        .to_owned();
    // The kubelet starts the driver container only once its ConfigMap volume exists; without
    // the gate (the default scheduler alone) the pod can be bound before spark-submit creates it.
    let mut waited = 0;
    let config_map = loop {
        match maps.get_opt(&conf_map).await? {
            Some(cm) => break cm,
            None if waited < 600 => {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => {
                return Err(kube::Error::Service(
                    format!("ConfigMap {conf_map} never appeared").into(),
                ));
            }
        }
    };
    let text = config_map
        .data
        .and_then(|d| d.get("spark.properties").cloned())
        .unwrap_or_default();
    let demand = driver_demand(&text).map_err(|e| kube::Error::Service(e.to_string().into()))?;
    let app_id = app_id(&driver).unwrap_or_default().to_owned();
    let prefix = executor_prefix(&demand, &app_id);
    let selector = format!("spark-app-selector={app_id},spark-role=executor");
    let mut allocator = Allocator::new(&demand, &script);
    let started = Instant::now();
    // The driver's JVM starts its SparkContext before the allocator's first round.
    tokio::time::sleep(allocator.delay()).await;
    let driver_name = driver.metadata.name.clone().unwrap_or_default();
    loop {
        // An evicted or deleted driver is a killed JVM: the application ends there, and its
        // executors go with it (garbage collected through their owner reference).
        let alive = pods
            .get_opt(&driver_name)
            .await?
            .is_some_and(|d| d.metadata.deletion_timestamp.is_none());
        if !alive {
            debug!(
                app = app_id.as_str(),
                "the driver pod is gone: the application ends"
            );
            return Ok(());
        }
        let executors = pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        let views: Vec<ExecutorView> = executors.iter().map(ExecutorView::of).collect();
        let round = allocator.round(started.elapsed(), &views);
        for name in &round.delete {
            // Spark removes lost executors and replaces them with new ids.
            let _ = pods.delete(name, &DeleteParams::default()).await;
        }
        for name in &round.kill {
            let Some(e) = executors
                .iter()
                .find(|e| e.metadata.name.as_deref() == Some(name.as_str()))
            else {
                continue;
            };
            let (client, e) = (client.clone(), e.clone());
            tokio::spawn(async move {
                if let Err(err) = set_phase(&client, &e, Phase::Failed(137)).await {
                    warn!(error = %err, "cannot kill executor");
                }
            });
        }
        if round.finished {
            break;
        }
        for id in round.create {
            let pod = executor_pod(&driver, &demand, id, &prefix);
            match pods.create(&PostParams::default(), &pod).await {
                Ok(_) => debug!(executor = id, app = app_id.as_str(), "executor created"),
                Err(e) => warn!(error = %e, app = app_id.as_str(), "cannot create executor"),
            }
        }
        tokio::time::sleep(allocator.delay()).await;
    }
    // The application ends: Spark deletes its executors, the driver succeeds.
    let _ = pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await;
    set_phase(&client, &driver, Phase::Succeeded).await
}

/// Scripts by driver pod name (`namespace/name`), for [`run_drivers`].
pub type Scripts =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, DriverScript>>>;

/// Starts [`run_driver`] for every driver that starts running (with its script, or a 1 s
/// runtime when none was registered); runs until the watch ends.
pub async fn run_drivers(client: Client, scripts: Scripts) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher;
    let api: Api<Pod> = Api::all(client.clone());
    let mut started = std::collections::HashSet::new();
    let mut events = watcher::watcher(api, watcher::Config::default().labels("spark-role=driver"))
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = events.next().await {
        let Ok(pod) = event else { continue };
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        if !running || !started.insert(key.clone()) {
            continue;
        }
        let script = scripts
            .lock()
            .ok()
            .and_then(|s| s.get(&key).cloned())
            .unwrap_or(DriverScript {
                runtime: Duration::from_secs(1),
                ..DriverScript::default()
            });
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = run_driver(client, pod, script).await {
                warn!(driver = key.as_str(), error = %e, "driver simulation failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_objects_are_what_spark_submit_makes() {
        let s = Submission {
            namespace: "spark".into(),
            name: "pi".into(),
            conf: BTreeMap::from([
                ("spark.driver.memory".to_owned(), "2g".to_owned()),
                ("spark.driver.cores".to_owned(), "2".to_owned()),
            ]),
            annotations: BTreeMap::new(),
        };
        let objects = submitted_objects(&s, 7).expect("a valid conf");
        let (driver_name, app_id, conf_map) = identities("pi", 7);
        assert_eq!(
            objects.driver.metadata.name.as_deref(),
            Some(driver_name.as_str())
        );
        let requests = objects
            .driver
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].resources.as_ref())
            .and_then(|r| r.requests.clone())
            .unwrap_or_default();
        // 2 GiB plus Spark's overhead: max(384 MiB, 10 % of 2048 MiB) = 384 MiB.
        assert_eq!(requests["memory"].0, "2432Mi");
        assert_eq!(requests["cpu"].0, "2");
        assert_eq!(objects.config_map.metadata.name, Some(conf_map));
        let properties = &objects.config_map.data.unwrap_or_default()["spark.properties"];
        assert!(
            properties.contains(&format!("spark.app.id={app_id}")),
            "{properties}"
        );
        let refused = submitted_objects(
            &Submission {
                conf: BTreeMap::from([("spark.driver.memory".to_owned(), "lots".to_owned())]),
                ..s
            },
            8,
        );
        assert!(refused.is_err());
    }

    /// `spark.kubernetes.executor.label.*` reaches every executor pod; Spark's own labels win.
    #[test]
    fn executor_labels_come_from_the_conf() {
        let s = Submission {
            namespace: "spark".into(),
            name: "pi".into(),
            conf: BTreeMap::from([
                (
                    "spark.kubernetes.executor.label.sparkgang.io/priority-class".to_owned(),
                    "high".to_owned(),
                ),
                (
                    "spark.kubernetes.executor.label.spark-role".to_owned(),
                    "impostor".to_owned(),
                ),
            ]),
            annotations: BTreeMap::new(),
        };
        let objects = submitted_objects(&s, 7).expect("a valid conf");
        let properties = &objects.config_map.data.unwrap_or_default()["spark.properties"];
        let demand = driver_demand(properties).expect("a demand");
        let executor = executor_pod(&objects.driver, &demand, 1, "pi-exec");
        let labels = executor.metadata.labels.unwrap_or_default();
        assert_eq!(labels["sparkgang.io/priority-class"], "high");
        assert_eq!(labels["spark-role"], "executor");
    }
}
