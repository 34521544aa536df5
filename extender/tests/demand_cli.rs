//! `sparkgang-extender demand` run as a process on spark.properties captured from Spark 4.3.0.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sparkgang_testing::fixtures;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sparkgang-demand-cli-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Request bodies of a capture in fixtures/spark-4.3.0.
fn capture(file: &str) -> Vec<Value> {
    fixtures::jsonl(fixtures::SPARK, file)
        .into_iter()
        .map(|request| request["body"].clone())
        .collect()
}

fn spark_properties(app: &str) -> String {
    capture(&format!("{app}.requests.jsonl"))
        .into_iter()
        .find(|b| b["kind"] == "ConfigMap")
        .and_then(|b| b["data"]["spark.properties"].as_str().map(str::to_owned))
        .unwrap()
}

fn driver_pod(app: &str) -> Value {
    capture(&format!("{app}.requests.jsonl"))
        .into_iter()
        .find(|b| b["kind"] == "Pod")
        .unwrap()
}

fn run(args: &[&Path], flags: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparkgang-extender"));
    cmd.arg("demand");
    for (flag, path) in flags.iter().zip(args) {
        cmd.arg(flag).arg(path);
    }
    cmd.output().unwrap()
}

fn run_ok(args: &[&Path], flags: &[&str]) -> Value {
    let out = run(args, flags);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn static_app_demand_from_captured_properties() {
    let dir = TempDir::new("static");
    let props = dir.write("spark.properties", &spark_properties("cluster-static"));
    let v = run_ok(&[&props], &["--spark-properties"]);
    assert_eq!(v["source"], "spark-conf");
    assert_eq!(v["driver"]["cpuMilli"], 1000);
    assert_eq!(v["driver"]["memoryBytes"], 1408_i64 << 20);
    assert_eq!(v["driver"]["quantities"]["memory"], "1408Mi");
    assert_eq!(v["driver"]["quantities"]["cpu"], "1");
    assert_eq!(v["executor"]["cpuMilli"], 2000);
    assert_eq!(v["executor"]["quantities"]["memory"], "4505Mi");
    assert_eq!(v["executor"]["gpus"], 0);
    assert_eq!(v["minExecutors"], 8);
    assert_eq!(v["maxExecutors"], 8);
    assert_eq!(v["dynamicAllocation"], false);
    assert_eq!(v["gangTotal"]["cpuMilli"], 1000 + 8 * 2000);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert_eq!(v["appName"], "pi-app");
}

#[test]
fn dynamic_gpu_app_with_its_driver_pod_in_json_and_yaml() {
    let dir = TempDir::new("dynamic");
    let props = dir.write("spark.properties", &spark_properties("cluster-dynamic-gpu"));
    let pod = driver_pod("cluster-dynamic-gpu");
    let json_pod = dir.write("driver.json", &serde_json::to_string(&pod).unwrap());
    let yaml_pod = dir.write("driver.yaml", &serde_yaml::to_string(&pod).unwrap());
    for pod_file in [&json_pod, &yaml_pod] {
        let v = run_ok(&[&props, pod_file], &["--spark-properties", "--driver-pod"]);
        assert_eq!(v["driver"]["quantities"]["memory"], "3456Mi");
        assert_eq!(v["driver"]["gpus"], 1);
        assert_eq!(v["driver"]["quantities"]["nvidia.com/gpu"], "1");
        assert_eq!(v["executor"]["quantities"]["cpu"], "3500m");
        assert_eq!(v["executor"]["quantities"]["memory"], "9Gi");
        assert_eq!(v["minExecutors"], 2);
        assert_eq!(v["maxExecutors"], 10);
        assert_eq!(v["dynamicAllocation"], true);
        let warnings = v["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .as_str()
                .unwrap()
                .contains("spark-executor-count=3 ignored"),
            "{warnings:?}"
        );
    }
    // Counting a different resource as GPUs drops the driver's nvidia.com/gpu.
    let out = run(&[&props], &["--spark-properties"]);
    assert!(out.status.success());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparkgang-extender"));
    let out = cmd
        .args([
            "demand",
            "--gpu-resource",
            "amd.com/gpu",
            "--spark-properties",
        ])
        .arg(&props)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["driver"]["gpus"], 0);
    assert_eq!(v["driver"]["quantities"]["amd.com/gpu"], "0");
}

#[test]
fn malformed_properties_fail_naming_the_key_and_the_file() {
    let dir = TempDir::new("malformed");
    let text = spark_properties("cluster-static")
        .replace("spark.executor.memory=4g", "spark.executor.memory=4gib");
    let props = dir.write("bad.properties", &text);
    let out = run(&[&props], &["--spark-properties"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spark.executor.memory"), "{stderr}");
    assert!(stderr.contains("\"4gib\""), "{stderr}");
    assert!(stderr.contains("Spark size"), "{stderr}");
    assert!(stderr.contains("bad.properties"), "{stderr}");
    assert!(out.stdout.is_empty());

    let bad_escape = dir.write("escape.properties", "a=1\nb=\\u12x4\n");
    let out = run(&[&bad_escape], &["--spark-properties"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("escape.properties"),
        "{stderr}"
    );

    let missing = dir.0.join("absent.properties");
    let out = run(&[&missing], &["--spark-properties"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.properties"));
}

#[test]
fn invalid_driver_annotations_fail_naming_the_key() {
    let dir = TempDir::new("annotations");
    let props = dir.write("spark.properties", &spark_properties("cluster-static"));
    let mut pod = driver_pod("cluster-static");
    pod["metadata"]["annotations"] =
        serde_json::json!({"spark-driver-mem": "lots", "spark-executor-mem": "4g"});
    let pod_file = dir.write("driver.json", &pod.to_string());
    let out = run(
        &[&props, &pod_file],
        &["--spark-properties", "--driver-pod"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spark-driver-mem")
            && stderr.contains("\"lots\"")
            && stderr.contains("driver.json"),
        "{stderr}"
    );

    // A normalisable annotation is accepted, with a warning; Spark's larger executor wins.
    pod["metadata"]["annotations"] = serde_json::json!({"spark-executor-mem": "4g"});
    let pod_file = dir.write("driver.json", &pod.to_string());
    let v = run_ok(
        &[&props, &pod_file],
        &["--spark-properties", "--driver-pod"],
    );
    assert_eq!(v["executor"]["quantities"]["memory"], "4505Mi");
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("rewritten to 4Gi"), "{warnings:?}");
    assert!(
        warnings[1].contains("spark-executor-mem (4Gi) is below"),
        "{warnings:?}"
    );
}
