//! Launch plans of the pods a real spark-submit 4.3.0 created (fixtures/spark-4.3.0), and the
//! errors of pods that cannot be started.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use sparkgang_testing::fixtures;

use super::{
    EXECUTOR_BACKEND, HeapPolicy, Installation, LaunchError, PodContext, Role, launch, spark_memory,
};

fn install() -> Installation {
    Installation {
        spark_home: PathBuf::from("/venv/pyspark"),
        java: PathBuf::from("/usr/lib/jvm/java-17/bin/java"),
        python: PathBuf::from("/venv/bin/python"),
    }
}

/// The driver pod and its ConfigMaps (name → data) of the static capture.
fn driver_capture() -> (Pod, BTreeMap<String, BTreeMap<String, String>>) {
    let lines = fixtures::jsonl(fixtures::SPARK, "cluster-static.requests.jsonl");
    let body = |kind: &str| -> Value {
        lines
            .iter()
            .map(|l| &l["body"])
            .find(|b| b["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in the capture"))
    };
    let pod: Pod = serde_json::from_value(body("Pod")).unwrap();
    let cm = body("ConfigMap");
    let data: BTreeMap<String, String> = serde_json::from_value(cm["data"].clone()).unwrap();
    let name = cm["metadata"]["name"].as_str().unwrap().to_owned();
    (pod, BTreeMap::from([(name, data)]))
}

/// The first executor pod of the static capture, as the API server stores it (the POST body
/// names no namespace: the path does), and its ConfigMap. The driver's ConfigMap of executor
/// files is not in the capture: an empty one stands in (its keys become files).
fn executor_capture() -> (Pod, BTreeMap<String, BTreeMap<String, String>>) {
    let lines = fixtures::jsonl(fixtures::SPARK, "cluster-static.executors.jsonl");
    let mut body = lines
        .iter()
        .map(|l| &l["body"])
        .find(|b| b["kind"] == "Pod")
        .cloned()
        .expect("an executor pod");
    body["metadata"]["namespace"] = json!("spark");
    let pod: Pod = serde_json::from_value(body).unwrap();
    let map = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find_map(|v| v.config_map.as_ref()))
        .map(|c| c.name.clone())
        .expect("the executor's ConfigMap volume");
    let data = BTreeMap::from([("log4j2.properties".to_owned(), "# test\n".to_owned())]);
    (pod, BTreeMap::from([(map, data)]))
}

fn cx<'a>(
    pod: &'a Pod,
    maps: &'a BTreeMap<String, BTreeMap<String, String>>,
    dir: &'a Path,
) -> PodContext<'a> {
    PodContext {
        pod,
        ip: Ipv4Addr::new(127, 0, 0, 7),
        api_server: "http://127.0.0.1:41000",
        dir,
        config_maps: maps,
    }
}

/// The value after `flag` in `args`.
fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn the_driver_runs_spark_submit_in_client_mode_on_its_own_address() {
    let (pod, maps) = driver_capture();
    let dir = PathBuf::from("/pods/spark/pi");
    let l = launch(&install(), &cx(&pod, &maps, &dir), HeapPolicy::default()).unwrap();
    assert_eq!(l.role, Role::Driver);
    assert_eq!(l.program, PathBuf::from("/venv/pyspark/bin/spark-submit"));
    let confs = after(&l.args, "--conf");
    for want in [
        "spark.driver.bindAddress=127.0.0.7",
        "spark.executorEnv.SPARK_DRIVER_POD_IP=127.0.0.7",
        "spark.driver.host=127.0.0.7",
        "spark.kubernetes.driver.master=http://127.0.0.1:41000",
    ] {
        assert!(confs.contains(&want), "{want} missing from {:?}", l.args);
    }
    assert_eq!(after(&l.args, "--deploy-mode"), ["client"]);
    // The ConfigMap volume at /opt/spark/conf is the pod's own directory, with its item.
    let conf = "/pods/spark/pi/mounts/opt/spark/conf";
    assert_eq!(
        after(&l.args, "--properties-file"),
        [format!("{conf}/spark.properties").as_str()]
    );
    let (path, text) = &l.files[0];
    assert_eq!(path, &PathBuf::from(format!("{conf}/spark.properties")));
    assert!(text.contains("spark.kubernetes.driver.pod.name=pi-app-817565a213adafa7-driver"));
    // The image's application jar is under the local SPARK_HOME, still a local:// resource.
    assert!(
        l.args
            .contains(&"local:///venv/pyspark/examples/jars/spark-examples.jar".to_owned()),
        "{:?}",
        l.args
    );
    assert_eq!(
        after(&l.args, "--class"),
        ["org.apache.spark.examples.SparkPi"]
    );
    assert_eq!(l.args.last().map(String::as_str), Some("100"));
    // spark.driver.memory=1g in the capture: a quarter, but at least 512 MiB.
    assert_eq!(after(&l.args, "--driver-memory"), ["512m"]);
    // The environment: fieldRefs resolved, paths local.
    assert_eq!(l.env["SPARK_DRIVER_BIND_ADDRESS"], "127.0.0.7");
    assert_eq!(l.env["SPARK_CONF_DIR"], conf);
    assert!(l.env["SPARK_LOCAL_DIRS"].starts_with("/pods/spark/pi/mounts/var/data/spark-"));
    assert_eq!(l.env["SPARK_HOME"], "/venv/pyspark");
    assert_eq!(l.env["SPARK_LOCAL_IP"], "127.0.0.7");
    assert_eq!(l.env["JAVA_HOME"], "/usr/lib/jvm/java-17");
    assert_eq!(
        l.env["PYSPARK_PYTHON"], "/venv/bin/python",
        "the pod names none"
    );
    assert_eq!(l.cwd, PathBuf::from("/pods/spark/pi/work"));
    assert!(l.dirs.contains(&PathBuf::from(conf)));
}

#[test]
fn the_executor_runs_the_backend_with_the_entrypoint_arguments() {
    let (pod, maps) = executor_capture();
    let dir = PathBuf::from("/pods/spark/exec-1");
    let l = launch(&install(), &cx(&pod, &maps, &dir), HeapPolicy::default()).unwrap();
    assert_eq!(l.role, Role::Executor);
    assert_eq!(l.program, PathBuf::from("/usr/lib/jvm/java-17/bin/java"));
    // SPARK_JAVA_OPT_0 .. _24 in numeric order (10 after 9, not after 1).
    let opts: Vec<&String> = l
        .args
        .iter()
        .take_while(|a| !a.starts_with("-Xms"))
        .collect();
    assert_eq!(opts.len(), 25, "{opts:?}");
    assert_eq!(opts[0], "-Djava.net.preferIPv6Addresses=false");
    assert_eq!(opts[1], "-XX:+IgnoreUnrecognizedVMOptions");
    assert_eq!(
        opts[10],
        "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED"
    );
    // SPARK_EXECUTOR_MEMORY=4096m: a quarter.
    assert!(l.args.contains(&"-Xms1024m".to_owned()) && l.args.contains(&"-Xmx1024m".to_owned()));
    let cp = after(&l.args, "-cp")[0];
    assert!(
        cp.starts_with("/pods/spark/exec-1/mounts/opt/spark/conf:/venv/pyspark/jars/*:"),
        "{cp}"
    );
    assert!(l.args.contains(&EXECUTOR_BACKEND.to_owned()));
    assert_eq!(
        after(&l.args, "--driver-url"),
        ["spark://CoarseGrainedScheduler@127.0.0.1:7078"]
    );
    assert_eq!(after(&l.args, "--executor-id"), ["1"]);
    assert_eq!(after(&l.args, "--cores"), ["2"]);
    assert_eq!(after(&l.args, "--hostname"), ["127.0.0.7"]);
    assert_eq!(after(&l.args, "--resourceProfileId"), ["0"]);
    assert_eq!(
        after(&l.args, "--podName"),
        [pod.metadata.name.as_deref().unwrap()]
    );
    assert!(after(&l.args, "--app-id")[0].starts_with("spark-"));
    // A ConfigMap volume without items: each key is a file.
    assert_eq!(
        l.files,
        [(
            PathBuf::from("/pods/spark/exec-1/mounts/opt/spark/conf/log4j2.properties"),
            "# test\n".to_owned()
        )]
    );
}

#[test]
fn pods_that_cannot_start_say_why() {
    let (pod, maps) = driver_capture();
    let dir = PathBuf::from("/pods/x");
    let none = BTreeMap::new();
    let err = launch(&install(), &cx(&pod, &none, &dir), HeapPolicy::default()).unwrap_err();
    assert!(
        matches!(&err, LaunchError::MissingConfigMap { name, .. } if name.starts_with("spark-drv-")),
        "{err}"
    );

    let mut v = serde_json::to_value(&pod).unwrap();
    v["spec"]["containers"][0]["args"] = json!(["sleep", "10"]);
    let sleeper: Pod = serde_json::from_value(v).unwrap();
    let err = launch(
        &install(),
        &cx(&sleeper, &maps, &dir),
        HeapPolicy::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("only `driver` and `executor`"),
        "{err}"
    );

    let (executor, maps) = executor_capture();
    let mut v = serde_json::to_value(executor).unwrap();
    let env = v["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    env.retain(|e| e["name"] != "SPARK_DRIVER_URL");
    env.push(json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}));
    let broken: Pod = serde_json::from_value(v.clone()).unwrap();
    let err = launch(&install(), &cx(&broken, &maps, &dir), HeapPolicy::default()).unwrap_err();
    assert!(
        matches!(err, LaunchError::UnsupportedEnv { ref name, .. } if name == "TOKEN"),
        "{err}"
    );
    v["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["name"] != "TOKEN");
    let broken: Pod = serde_json::from_value(v).unwrap();
    let err = launch(&install(), &cx(&broken, &maps, &dir), HeapPolicy::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pod spark/{}: the executor entrypoint needs env SPARK_DRIVER_URL",
            broken.metadata.name.as_deref().unwrap()
        )
    );
}

#[test]
fn spark_memory_reads_as_spark_writes_it() {
    assert_eq!(spark_memory("4096m"), "4096Mi");
    assert_eq!(spark_memory("4g"), "4Gi");
    assert_eq!(spark_memory("1024"), "1024Mi");
    assert_eq!(spark_memory("512k"), "512Ki");
    let heap = HeapPolicy::default();
    assert_eq!(heap.heap_mib(4 << 30), 1024);
    assert_eq!(heap.heap_mib(1 << 30), 512);
}
