//! The real `spark-submit` (PyPI `pyspark`, Java 17) in cluster mode against the simulated
//! cluster: its driver pod is admitted by the real webhook and gated, the ConfigMap it applies
//! is read by the real extender's gate controller, the gang is reserved and placed.
//!
//! Needs `spark-submit`: `scripts/test.sh` installs pyspark into `.cache/venv` and sets
//! `SPARKGANG_SPARK_SUBMIT`; without it the test says so and passes only when
//! `SPARKGANG_REQUIRE_SPARK` is unset (CI sets it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::ListParams;
use sparkgang_common::GangDemand;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_sim::harness::{SimCluster, SimOptions};
use sparkgang_sim::spark::{self, DriverScript, Scripts};

use sparkgang_tests::spark_submit::spark_submit;
use sparkgang_tests::testbed::{add_nodes, bound_slots, executors_of, opt_in_namespace};
use sparkgang_tests::wait::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_spark_submit_in_cluster_mode_becomes_a_gang() {
    let Some(submit) = spark_submit() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = SimCluster::start(SimOptions::default())
        .await
        .expect("cluster starts");
    let client = cluster.client.clone();
    let scripts = Scripts::default();
    tokio::spawn(spark::run_drivers(client.clone(), scripts.clone()));
    opt_in_namespace(&client).await;
    add_nodes(&client, 3).await;
    let master = format!("k8s://{}", cluster.api.url());
    // spark-submit finds SPARK_HOME through the `python` of its environment: the venv's.
    let bin = submit.parent().map(PathBuf::from).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = tokio::process::Command::new(&submit)
        .env("PATH", path)
        .args([
            "--master",
            &master,
            "--deploy-mode",
            "cluster",
            "--name",
            "pi-real",
            "--class",
            "org.apache.spark.examples.SparkPi",
            "--conf",
            "spark.kubernetes.namespace=spark",
            "--conf",
            "spark.kubernetes.container.image=apache/spark:4.0.0",
            "--conf",
            "spark.executor.instances=3",
            "--conf",
            "spark.executor.cores=2",
            "--conf",
            "spark.executor.memory=2g",
            "--conf",
            "spark.kubernetes.submission.waitAppCompletion=false",
            "local:///opt/spark/examples/jars/spark-examples.jar",
            "10",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("spark-submit runs");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "spark-submit failed:\n{log}");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let driver = pods
        .list(&ListParams::default().labels("spark-role=driver"))
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no driver pod after spark-submit:\n{log}"));
    let name = driver.metadata.name.clone().unwrap();
    let labels = driver.metadata.labels.clone().unwrap();
    assert_eq!(
        labels.get("spark-app-id"),
        labels.get("spark-app-selector"),
        "the webhook added spark-app-id"
    );
    assert_eq!(
        driver.spec.as_ref().unwrap().scheduler_name.as_deref(),
        Some("spark-scheduler")
    );
    // spark-submit applied the ConfigMap with spark.properties (server-side apply).
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "spark");
    let conf_map = sparkgang_common::pods::driver_conf_map_name(driver.spec.as_ref().unwrap())
        .unwrap()
        .to_owned();
    let cm = maps.get(&conf_map).await.unwrap();
    assert!(cm.data.unwrap()["spark.properties"].contains("spark.executor.instances=3"));
    scripts.lock().unwrap().insert(
        format!("spark/{name}"),
        DriverScript {
            runtime: Duration::from_secs(1),
            ..DriverScript::default()
        },
    );
    // The gate controller computed the demand Spark itself will ask for and ungated the driver.
    let placed = eventually("the driver to be placed", Duration::from_secs(30), || {
        let pods = pods.clone();
        let name = name.clone();
        async move {
            let p = pods.get(&name).await.ok()?;
            p.spec.as_ref()?.node_name.as_ref()?;
            Some(p)
        }
    })
    .await;
    let demand: GangDemand =
        serde_json::from_str(&placed.metadata.annotations.unwrap()["sparkgang.io/demand"]).unwrap();
    assert_eq!(demand.min_executors, 3);
    assert_eq!(demand.executor.cpu_milli, 2000);
    assert_eq!(demand.executor.memory_bytes, 2432 << 20);
    let app = labels["spark-app-selector"].clone();
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let rr = eventually("the reservation", Duration::from_secs(10), || {
        let reservations = reservations.clone();
        let app = app.clone();
        async move { reservations.get(&app).await.ok() }
    })
    .await;
    assert_eq!(rr.spec.reservations.len(), 4);
    let bound = bound_slots(&reservations, &app, 4).await;
    assert_eq!(bound["driver"], name);
    cluster.stop().await;
}

/// A real Spark driver process (PySpark in client mode, acting as the driver pod it names)
/// creates the executor pods itself, as in cluster mode: they are admitted by the webhook and
/// take the slots reserved for the driver's gang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_spark_driver_creates_executors_that_take_reserved_slots() {
    let Some(submit) = spark_submit() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = SimCluster::start(SimOptions::default())
        .await
        .expect("cluster starts");
    let client = cluster.client.clone();
    opt_in_namespace(&client).await;
    add_nodes(&client, 2).await;
    // The driver pod and its ConfigMap, as spark-submit creates them; placed as a gang.
    let executors_conf = [
        ("spark.executor.instances", "2"),
        ("spark.executor.cores", "1"),
        ("spark.executor.memory", "1g"),
    ];
    let submission = spark::Submission {
        namespace: "spark".into(),
        name: "pyspark-pi".into(),
        conf: executors_conf
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: BTreeMap::new(),
    };
    let driver = spark::submit(&client, &submission, 42).await.unwrap();
    let name = driver.metadata.name.clone().unwrap();
    let app_id = driver.metadata.labels.as_ref().unwrap()["spark-app-selector"].clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    eventually("the driver to be placed", Duration::from_secs(30), || {
        let pods = pods.clone();
        let name = name.clone();
        async move { pods.get(&name).await.ok()?.spec?.node_name }
    })
    .await;
    // The real driver: Spark's executor allocator, acting as that pod.
    let dir = std::env::temp_dir().join(format!("sparkgang-pyspark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("pi.py");
    std::fs::write(
        &script,
        "from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.getOrCreate()\n\
         print(spark.sparkContext.parallelize(range(100), 2).count())\n",
    )
    .unwrap();
    let bin = submit.parent().map(PathBuf::from).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let master = format!("k8s://{}", cluster.api.url());
    let mut args: Vec<String> = vec![
        "--master".into(),
        master,
        "--deploy-mode".into(),
        "client".into(),
        "--conf".into(),
        "spark.kubernetes.namespace=spark".into(),
        "--conf".into(),
        format!("spark.kubernetes.driver.pod.name={name}"),
        "--conf".into(),
        format!("spark.app.id={app_id}"),
        "--conf".into(),
        "spark.kubernetes.container.image=apache/spark:4.0.0".into(),
        "--conf".into(),
        "spark.driver.host=127.0.0.1".into(),
    ];
    for (k, v) in executors_conf {
        args.push("--conf".into());
        args.push(format!("{k}={v}"));
    }
    args.push(script.display().to_string());
    let mut child = tokio::process::Command::new(&submit)
        .env("PATH", path)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spark-submit starts");
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let bound = bound_slots(&reservations, &app_id, 3).await;
    let executors = executors_of(&client, &app_id).await;
    assert!(
        executors.len() >= 2,
        "Spark created {} executors",
        executors.len()
    );
    for e in &executors {
        let owner = &e.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.name, name, "executors are owned by the driver pod");
        assert_eq!(
            e.spec.as_ref().unwrap().scheduler_name.as_deref(),
            Some("spark-scheduler")
        );
    }
    assert!(bound.values().any(|p| {
        executors
            .iter()
            .any(|e| e.metadata.name.as_deref() == Some(p.as_str()))
    }));
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    cluster.stop().await;
}
