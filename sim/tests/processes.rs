//! The kubelet's process runtime, pod by pod: what a pod's status, log and deletion do while
//! its process runs. The Spark installation here is a stand-in whose `spark-submit` and `java`
//! are shell scripts that behave as the pod's env `BEHAVIOUR` says (finish, fail, wait for
//! SIGTERM, ignore it), so that every path is taken in a second and none depends on a JVM's
//! timing. Real Spark on the same runtime: tests/tests/real_spark_jobs.rs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use serde_json::json;
use sparkgang_sim::harness::{SimCluster, SimOptions, SparkProcesses};
use sparkgang_sim::spark::launch::{HeapPolicy, Installation};
use sparkgang_testing::wait::eventually;

const WAIT: Duration = Duration::from_secs(30);

/// What the stand-in `spark-submit` and `java` do, by `$BEHAVIOUR`.
const SCRIPT: &str = r#"#!/usr/bin/env bash
echo "started: $(basename "$0") $*"
echo "on stderr" >&2
case "$BEHAVIOUR" in
  fail) echo "failing with 3"; exit 3 ;;
  wait-for-term)
    trap 'echo "got TERM"; exit 143' TERM
    echo ready
    while true; do sleep 0.05; done ;;
  ignore-term)
    trap 'echo "ignoring TERM"' TERM
    echo ready
    while true; do sleep 0.05; done ;;
  *) echo "done"; exit 0 ;;
esac
"#;

/// A stand-in installation in `dir`.
fn installation(dir: &Path) -> Installation {
    let home = dir.join("spark");
    for d in ["bin", "jars", "python/lib"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    let write_script = |path: &PathBuf| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, SCRIPT).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_script(&home.join("bin/spark-submit"));
    let java = dir.join("jdk/bin/java");
    std::fs::create_dir_all(java.parent().unwrap()).unwrap();
    write_script(&java);
    Installation {
        spark_home: home,
        java,
        python: PathBuf::from("/usr/bin/python3"),
    }
}

struct Fixture {
    cluster: SimCluster,
    pods: Api<Pod>,
    _dir: tempfile::TempDir,
}

async fn start(jvms_per_node: usize) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cluster = SimCluster::start(SimOptions {
        webhook: false,
        extender: false,
        spark_processes: Some(SparkProcesses {
            install: installation(dir.path()),
            heap: HeapPolicy::default(),
            jvms_per_node,
        }),
        ..SimOptions::default()
    })
    .await
    .expect("the cluster starts");
    let pods = Api::namespaced(cluster.client.clone(), "default");
    Fixture {
        cluster,
        pods,
        _dir: dir,
    }
}

/// A driver pod bound to `node` that mounts ConfigMap `conf-<name>`, as Spark makes them.
fn driver(name: &str, node: &str, behaviour: &str, grace: i64) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"spark-role": "driver"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": grace,
            "containers": [{
                "name": "spark-kubernetes-driver", "image": "apache/spark:4.0.0",
                "args": ["driver", "--properties-file", "/opt/spark/conf/spark.properties",
                         "--class", "org.example.Main", "spark-internal"],
                "env": [{"name": "BEHAVIOUR", "value": behaviour},
                        {"name": "SPARK_DRIVER_BIND_ADDRESS",
                         "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "volumeMounts": [{"name": "conf", "mountPath": "/opt/spark/conf"}],
            }],
            "volumes": [{"name": "conf", "configMap": {"name": format!("conf-{name}")}}],
        }
    }))
    .unwrap()
}

/// An executor pod bound to `node`, with the env Spark's entrypoint needs.
fn executor(name: &str, node: &str, behaviour: &str) -> Pod {
    let env = [
        ("BEHAVIOUR", behaviour),
        ("SPARK_EXECUTOR_MEMORY", "1g"),
        (
            "SPARK_DRIVER_URL",
            "spark://CoarseGrainedScheduler@127.0.0.2:7078",
        ),
        ("SPARK_EXECUTOR_ID", "1"),
        ("SPARK_EXECUTOR_CORES", "1"),
        ("SPARK_APPLICATION_ID", "spark-1"),
        ("SPARK_RESOURCE_PROFILE_ID", "0"),
    ];
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"spark-role": "executor"}},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "spark-kubernetes-executor", "image": "apache/spark:4.0.0",
                "args": ["executor"],
                "env": env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            }],
        }
    }))
    .unwrap()
}

async fn config_map(f: &Fixture, name: &str) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": format!("conf-{name}")},
        "data": {"spark.properties": "spark.driver.memory=1g\n"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(f.cluster.client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

/// Driver `name` on node-a, behaving as `behaviour`, once its process runs and has said
/// "ready" (its SIGTERM trap is set).
async fn ready_driver(f: &Fixture, name: &str, behaviour: &str, grace: i64) {
    config_map(f, name).await;
    f.pods
        .create(
            &PostParams::default(),
            &driver(name, "node-a", behaviour, grace),
        )
        .await
        .unwrap();
    pod_when(f, name, "running", |p| phase(p) == "Running").await;
    eventually(&format!("{name}'s process to be ready"), WAIT, || async {
        let log = f.pods.logs(name, &LogParams::default()).await.ok()?;
        log.contains("ready").then_some(())
    })
    .await;
}

/// The pod once `check` holds for it.
async fn pod_when(f: &Fixture, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    eventually(&format!("{name}: {what}"), WAIT, || async {
        f.pods.get_opt(name).await.ok()?.filter(|p| check(p))
    })
    .await
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn waiting(p: &Pod) -> Option<(String, String)> {
    let w = p.status.as_ref()?.container_statuses.as_ref()?[0]
        .state
        .as_ref()?
        .waiting
        .clone()?;
    Some((w.reason?, w.message?))
}

fn exit_code(p: &Pod) -> Option<i32> {
    let state = p.status.as_ref()?.container_statuses.as_ref()?[0]
        .state
        .clone()?;
    Some(state.terminated?.exit_code)
}

/// Every version of pod `name` from now until it is deleted; returns once the watch has its
/// first list (so no later change is missed).
async fn versions_until_deleted(f: &Fixture, name: &str) -> tokio::task::JoinHandle<Vec<Pod>> {
    use kube::runtime::watcher;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(f.pods.clone(), config).boxed();
    let (listed, ready) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut listed = Some(listed);
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => seen.push(p),
                Ok(watcher::Event::InitDone) => {
                    if let Some(l) = listed.take() {
                        let _ = l.send(());
                    }
                }
                Ok(watcher::Event::Delete(_)) => break,
                _ => {}
            }
        }
        seen
    });
    let _ = tokio::time::timeout(WAIT, ready).await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_waits_for_its_config_map_runs_on_its_own_address_and_succeeds() {
    let f = start(3).await;
    f.pods
        .create(
            &PostParams::default(),
            &driver("d1", "node-a", "finish", 30),
        )
        .await
        .unwrap();
    let p = pod_when(&f, "d1", "waiting for its ConfigMap", |p| {
        waiting(p).is_some_and(|(r, _)| r == "ContainerCreating")
    })
    .await;
    assert_eq!(phase(&p), "Pending");
    let (_, message) = waiting(&p).unwrap();
    assert!(
        message.contains("configmap \"conf-d1\" not found"),
        "{message}"
    );

    config_map(&f, "d1").await;
    let p = pod_when(&f, "d1", "succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(exit_code(&p), Some(0));
    let ip: std::net::Ipv4Addr = p
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ip.is_loopback() && ip != std::net::Ipv4Addr::LOCALHOST,
        "{ip}"
    );

    // The log is the process's stdout and stderr: spark-submit in client mode on the pod's
    // address, with the properties written where the ConfigMap was mounted.
    let log = f.pods.logs("d1", &LogParams::default()).await.unwrap();
    // stdout and stderr are two pipes: their lines interleave as they come, as a kubelet's.
    let first = log
        .lines()
        .find(|l| l.starts_with("started: "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(first.starts_with("started: spark-submit --conf"), "{log}");
    assert!(
        first.contains(&format!("spark.driver.bindAddress={ip}")),
        "{first}"
    );
    assert!(first.contains("--deploy-mode client"), "{first}");
    assert!(
        log.contains("on stderr\n") && log.contains("done\n"),
        "{log}"
    );
    let props = first
        .split_whitespace()
        .skip_while(|a| *a != "--properties-file")
        .nth(1)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(props).unwrap(),
        "spark.driver.memory=1g\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        timestamps: true,
        ..LogParams::default()
    };
    let last = f.pods.logs("d1", &tail).await.unwrap();
    assert_eq!(last.lines().count(), 1, "{last}");
    let stamp = last.split_whitespace().next().unwrap();
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{last}"
    );
    assert!(
        log.ends_with(&format!("{}\n", &last[stamp.len() + 1..].trim_end())),
        "{log}"
    );
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_process_fails_its_pod_with_its_exit_code() {
    let f = start(3).await;
    f.pods
        .create(&PostParams::default(), &executor("e1", "node-a", "fail"))
        .await
        .unwrap();
    let p = pod_when(&f, "e1", "failed", |p| phase(p) == "Failed").await;
    assert_eq!(exit_code(&p), Some(3));
    let log = f.pods.logs("e1", &LogParams::default()).await.unwrap();
    assert!(
        log.contains("KubernetesExecutorBackend --driver-url spark://CoarseGrainedScheduler@"),
        "{log}"
    );
    assert!(
        log.contains("-Xmx512m"),
        "1g at a quarter is under the floor: {log}"
    );
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_stops_its_process_and_a_follower_sees_the_end() {
    let f = start(3).await;
    ready_driver(&f, "d2", "wait-for-term", 30).await;
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = f.pods.log_stream("d2", &follow).await.unwrap().lines();
    let versions = versions_until_deleted(&f, "d2").await;
    f.pods.delete("d2", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while let Some(line) = lines.next().await {
        seen.push(line.unwrap());
    }
    // The stream ended with the process, after what it said on SIGTERM (bash may then add
    // "Terminated" for its `sleep`, killed by the same signal).
    assert!(seen.iter().any(|l| l == "got TERM"), "{seen:?}");
    let versions = tokio::time::timeout(WAIT, versions)
        .await
        .expect("d2 removed")
        .unwrap();
    let ended = versions.iter().find_map(exit_code);
    assert_eq!(ended, Some(143), "the process's own exit code on SIGTERM");
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_pod_stops_as_a_deleted_one() {
    // The extender preempts through pods/eviction: the process stops as on a delete.
    let f = start(3).await;
    ready_driver(&f, "d8", "wait-for-term", 30).await;
    let versions = versions_until_deleted(&f, "d8").await;
    f.pods
        .evict("d8", &kube::api::EvictParams::default())
        .await
        .unwrap();
    let versions = tokio::time::timeout(WAIT, versions)
        .await
        .expect("d8 removed")
        .unwrap();
    assert_eq!(versions.iter().find_map(exit_code), Some(143));
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let f = start(3).await;
    ready_driver(&f, "d3", "ignore-term", 1).await;
    let versions = versions_until_deleted(&f, "d3").await;
    f.pods.delete("d3", &DeleteParams::default()).await.unwrap();
    let versions = tokio::time::timeout(WAIT, versions)
        .await
        .expect("d3 removed")
        .unwrap();
    let ended = versions
        .iter()
        .find(|p| exit_code(p).is_some())
        .expect("the end of the process recorded before the pod is removed");
    assert_eq!(
        exit_code(ended),
        Some(137),
        "SIGKILL after the grace period"
    );
    assert!(ended.metadata.deletion_timestamp.is_some());
    let log = versions.len();
    assert!(log >= 2, "{log} versions");
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_over_the_cap_of_a_node_wait_and_say_why() {
    let f = start(1).await;
    config_map(&f, "d4").await;
    f.pods
        .create(
            &PostParams::default(),
            &driver("d4", "node-a", "wait-for-term", 30),
        )
        .await
        .unwrap();
    pod_when(&f, "d4", "running", |p| phase(p) == "Running").await;
    f.pods
        .create(&PostParams::default(), &executor("e4", "node-a", "finish"))
        .await
        .unwrap();
    f.pods
        .create(&PostParams::default(), &executor("e5", "node-b", "finish"))
        .await
        .unwrap();
    let p = pod_when(&f, "e4", "waiting for room", |p| waiting(p).is_some()).await;
    let (reason, message) = waiting(&p).unwrap();
    assert_eq!(reason, "SparkgangJvmCap");
    assert!(
        message.contains("node node-a already runs 1 JVMs, the cap per node (1)"),
        "{message}"
    );
    pod_when(&f, "e5", "done on another node", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    f.pods.delete("d4", &DeleteParams::default()).await.unwrap();
    pod_when(&f, "e4", "started once d4 ended", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_cannot_start_says_why() {
    let f = start(3).await;
    let mut bad = executor("e6", "node-a", "finish");
    if let Some(env) = bad.spec.as_mut().unwrap().containers[0].env.as_mut() {
        env.retain(|e| e.name != "SPARK_DRIVER_URL");
    }
    f.pods.create(&PostParams::default(), &bad).await.unwrap();
    let p = pod_when(&f, "e6", "refused", |p| waiting(p).is_some()).await;
    assert_eq!(
        waiting(&p),
        Some((
            "CreateContainerConfigError".to_owned(),
            "pod default/e6: the executor entrypoint needs env SPARK_DRIVER_URL".to_owned()
        ))
    );
    f.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pods_prints_the_processes_state() {
    let f = start(1).await;
    config_map(&f, "d7").await;
    f.pods
        .create(
            &PostParams::default(),
            &driver("d7", "node-a", "wait-for-term", 30),
        )
        .await
        .unwrap();
    f.pods
        .create(&PostParams::default(), &executor("e7", "node-a", "finish"))
        .await
        .unwrap();
    let d7 = pod_when(&f, "d7", "running", |p| phase(p) == "Running").await;
    pod_when(&f, "e7", "waiting for room", |p| waiting(p).is_some()).await;
    let kubeconfig = f._dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\nusers:\n- name: u\n  user: {{}}\n",
            f.cluster.api.url()
        ),
    )
    .unwrap();
    // kubectl asks for a Table and prints the server's columns (scripts/test.sh needs kubectl).
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "pods", "-o", "wide", "--sort-by=.metadata.name"])
        .output()
        .await
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0].join(" "),
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
    );
    let ip = d7.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_eq!(
        [rows[1][0], rows[1][1], rows[1][2], rows[1][5], rows[1][6]],
        ["d7", "1/1", "Running", ip.as_str(), "node-a"]
    );
    assert_eq!(
        [rows[2][0], rows[2][1], rows[2][2], rows[2][5]],
        ["e7", "0/1", "SparkgangJvmCap", "<none>"]
    );
    // Sorting by a field of the pod makes kubectl ask for whole objects in the rows.
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "pods", "--sort-by=.status.phase", "--no-headers"])
        .output()
        .await
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["e7", "d7"], "Pending sorts before Running");
    f.cluster.stop().await;
}
