//! Real Spark computing on the simulated cluster: the real `spark-submit --deploy-mode
//! cluster` (PyPI `pyspark`, Java 17) against the playground, whose kubelet runs the driver and
//! executor pods as local JVMs. The job goes through the webhook, the gate, the extender's
//! reservation and real executors; its result is in the driver's log.
//!
//! Needs `spark-submit`: `scripts/test.sh` installs pyspark into `.cache/venv` and sets
//! `SPARKGANG_SPARK_SUBMIT`; without it the tests say so and pass only when
//! `SPARKGANG_REQUIRE_SPARK` is unset (CI sets it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_sim::harness::SparkProcesses;
use sparkgang_sim::playground::Playground;
use sparkgang_sim::spark::launch::{HeapPolicy, Installation};
use sparkgang_tests::spark_submit::spark_submit;
use sparkgang_tests::wait::eventually;

/// One real Spark application at a time: each runs three JVMs on a machine of two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a real job may take on a loaded CI machine (JVM start-ups included).
const JOB: Duration = Duration::from_secs(240);

/// The sum of the squares of 1..n, by the formula (the job adds them one by one).
fn sum_of_squares(n: u128) -> u128 {
    n * (n + 1) * (2 * n + 1) / 6
}

/// The playground with Spark run for real by the local installation of `submit`.
async fn playground(submit: &Path) -> Playground {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let install = Installation::from_spark_submit(submit).expect("the local Spark");
    Playground::start_with(
        2,
        Some(SparkProcesses {
            install,
            heap: HeapPolicy::default(),
            jvms_per_node: 3,
        }),
    )
    .await
    .expect("the playground starts")
}

/// `spark-submit --deploy-mode cluster` of tests/spark-jobs/squares.py with 2 executors of one
/// core, as a user types it; waits for the application to end (Spark's default).
async fn submit_squares(p: &Playground, submit: &Path, name: &str, args: [&str; 3]) -> Output {
    let job = sparkgang_tests::repo_root().join("tests/spark-jobs/squares.py");
    // spark-submit finds SPARK_HOME through the `python` of its environment: the venv's.
    let bin = submit.parent().map(PathBuf::from).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = tokio::process::Command::new(submit);
    command
        .env("PATH", path)
        .args(["--master", &p.spark_master(), "--deploy-mode", "cluster"])
        .args(["--name", name])
        .args(["--conf", "spark.kubernetes.namespace=spark"])
        .args([
            "--conf",
            "spark.kubernetes.container.image=apache/spark:4.0.0",
        ])
        .args(["--conf", "spark.executor.instances=2"])
        .args(["--conf", "spark.executor.cores=1"])
        .args(["--conf", "spark.executor.memory=1g"])
        .arg(format!("local://{}", job.display()))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command.output().await.expect("spark-submit runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The driver pod of application `name`, once spark-submit has created it.
async fn driver_of(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(
        &format!("the driver of {name}"),
        Duration::from_secs(60),
        || async move {
            let selector = format!("spark-role=driver,spark-app-name={name}");
            pods.list(&ListParams::default().labels(&selector))
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        },
    )
    .await
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// The reservation's executor slots and the pods bound to them, once `want` executors run
/// (phase `Running`, as the kubelet reports a started JVM).
async fn running_executors(
    pods: &Api<Pod>,
    reservations: &Api<ResourceReservation>,
    app: &str,
    want: usize,
    not: &BTreeSet<String>,
) -> (ResourceReservation, BTreeMap<String, Pod>) {
    eventually(
        &format!("{want} executors of {app} running in its reserved slots"),
        JOB,
        || async move {
            let rr = reservations.get(app).await.ok()?;
            let mut running = BTreeMap::new();
            let bound = rr.status.as_ref()?.pods.clone();
            for (slot, pod) in bound.iter().filter(|(s, _)| s.as_str() != "driver") {
                if not.contains(pod) {
                    continue;
                }
                let p = pods.get_opt(pod).await.ok()??;
                if phase(&p) == Some("Running") {
                    running.insert(slot.clone(), p);
                }
            }
            (running.len() == want).then_some((rr, running))
        },
    )
    .await
}

/// Memory in use on the machine (MemTotal - MemAvailable, bytes; 0 where there is no
/// /proc/meminfo).
fn memory_in_use() -> u64 {
    let used = || -> Option<u64> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = info.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        };
        Some((field("MemTotal:")?.saturating_sub(field("MemAvailable:")?)) * 1024)
    };
    used().unwrap_or(0)
}

/// The peak of [`memory_in_use`], sampled every 250 ms until `stop`.
fn sample_memory() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<u64>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut peak = 0;
        while !*stopped.borrow() {
            peak = peak.max(memory_in_use());
            let _ = tokio::time::timeout(Duration::from_millis(250), stopped.changed()).await;
        }
        peak
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyspark_job_computes_on_executors_in_their_reserved_slots() {
    let Some(submit) = spark_submit() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let p = playground(&submit).await;
    let client = p.cluster.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let before = memory_in_use();
    let (stop_sampling, peak) = sample_memory();
    let started = Instant::now();
    let n: u128 = 200_000;
    let n_text = n.to_string();
    let submitted = submit_squares(&p, &submit, "squares", [&n_text, "8", "0.5"]);
    let observed = async {
        let driver = driver_of(&pods, "squares").await;
        let app = driver.metadata.labels.as_ref().expect("labels")["spark-app-selector"].clone();
        let none = BTreeSet::new();
        let (rr, executors) = running_executors(&pods, &reservations, &app, 2, &none).await;
        (driver, rr, executors)
    };
    let (output, (driver, rr, executors)) = tokio::join!(submitted, observed);
    let wall = started.elapsed();
    let _ = stop_sampling.send(true);
    let peak = peak.await.unwrap_or(0);
    assert!(
        output.status.success(),
        "spark-submit failed:\n{}",
        text(&output)
    );
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    eprintln!(
        "real PySpark job: spark-submit to the end of the application in {:.1} s; memory in use \
         on the machine {:.2} GiB before, {:.2} GiB at the peak (+{:.2} GiB)",
        wall.as_secs_f64(),
        gib(before),
        gib(peak),
        gib(peak.saturating_sub(before))
    );

    // Both executors ran as JVMs on the nodes of the slots reserved for them.
    let driver_name = driver.metadata.name.clone().expect("a name");
    assert_eq!(
        rr.status.as_ref().map(|s| &s.pods["driver"]),
        Some(&driver_name)
    );
    let mut addresses = BTreeSet::new();
    for (slot, executor) in &executors {
        let reserved = &rr.spec.reservations[slot].node;
        assert_eq!(node(executor), Some(reserved.as_str()), "{slot}");
        let status = executor.status.as_ref().expect("a status");
        let ip: std::net::Ipv4Addr = status.pod_ip.as_deref().expect("an IP").parse().unwrap();
        assert!(ip.is_loopback() && ip.octets()[3] > 1, "{ip}");
        assert!(addresses.insert(ip), "each pod has its own address");
        let id = status.container_statuses.as_ref().expect("containers")[0]
            .container_id
            .clone()
            .unwrap_or_default();
        assert!(id.starts_with("process://"), "{id}");
    }

    // The result, in the driver's log (pods/log), against the formula.
    let log = pods
        .logs(&driver_name, &LogParams::default())
        .await
        .expect("the driver's log");
    let expected = format!("sum of squares of 1..{n} = {}", sum_of_squares(n));
    assert!(
        log.contains(&expected),
        "no `{expected}` in the driver's log:\n{log}"
    );
    let done = pods.get(&driver_name).await.expect("the driver");
    assert_eq!(phase(&done), Some("Succeeded"));

    // The gang is released, and Spark's deleted executors are stopped and gone.
    let app = &rr.metadata.name.clone().expect("a name");
    let reservations = &reservations;
    eventually("the reservation to be released", JOB, || async move {
        reservations
            .get_opt(app)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("the executors to be gone", JOB, || async {
        let selector = format!("spark-role=executor,spark-app-selector={app}");
        let left = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    p.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_is_replaced_in_the_slot_it_freed() {
    let Some(submit) = spark_submit() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let p = playground(&submit).await;
    let client = p.cluster.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let n: u128 = 120_000;
    // 16 tasks of 3 s on 2 one-core executors: after the kill, 30 s of work or more is left
    // for the one that lives, while Spark replaces the other (its JVM starts in about 5 s).
    let n_text = n.to_string();
    let submitted = submit_squares(&p, &submit, "killed", [&n_text, "16", "3"]);
    let acted = async {
        let driver = driver_of(&pods, "killed").await;
        let driver_name = driver.metadata.name.clone().expect("a name");
        let app = driver.metadata.labels.as_ref().expect("labels")["spark-app-selector"].clone();
        let (_, executors) =
            running_executors(&pods, &reservations, &app, 2, &BTreeSet::new()).await;
        // Midway: tasks run on the executors.
        eventually("tasks to run", JOB, || {
            let pods = pods.clone();
            let driver_name = driver_name.clone();
            async move {
                let log = pods.logs(&driver_name, &LogParams::default()).await.ok()?;
                log.contains("Finished task").then_some(())
            }
        })
        .await;
        let (slot, victim) = executors.into_iter().next().expect("an executor");
        let victim_name = victim.metadata.name.clone().expect("a name");
        let id = victim
            .status
            .as_ref()
            .expect("a status")
            .container_statuses
            .as_ref()
            .expect("containers")[0]
            .container_id
            .clone()
            .expect("a container id");
        let pid = id.strip_prefix("process://").expect("a process id");
        // The JVM dies, as if the kernel's OOM killer took it.
        let killed = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "kill -KILL {pid}");
        // Spark asks for a new executor; the extender gives it the slot the dead one freed.
        let others = BTreeSet::from([victim_name.clone()]);
        let replaced = eventually(&format!("a new executor in slot {slot}"), JOB, || {
            let reservations = reservations.clone();
            let pods = pods.clone();
            let (app, slot, others) = (app.clone(), slot.clone(), others.clone());
            async move {
                let rr = reservations.get(&app).await.ok()?;
                let pod = rr.status.as_ref()?.pods.get(&slot)?.clone();
                if others.contains(&pod) {
                    return None;
                }
                let p = pods.get_opt(&pod).await.ok()??;
                (phase(&p) == Some("Running")).then_some((rr, p))
            }
        })
        .await;
        (driver_name, slot, victim, replaced)
    };
    let (output, (driver_name, slot, victim, (rr, replacement))) = tokio::join!(submitted, acted);
    assert!(
        output.status.success(),
        "spark-submit failed:\n{}",
        text(&output)
    );
    assert_eq!(
        node(&replacement),
        Some(rr.spec.reservations[&slot].node.as_str()),
        "the replacement runs on the node of the freed slot"
    );
    assert_ne!(replacement.metadata.name, victim.metadata.name);
    let log = pods
        .logs(&driver_name, &LogParams::default())
        .await
        .expect("the driver's log");
    // Spark read the exit code from the pod's status, as the kubelet reported it.
    assert!(
        log.contains("exited with exit code 137"),
        "the driver did not see the executor's exit code 137:\n{log}"
    );
    let expected = format!("sum of squares of 1..{n} = {}", sum_of_squares(n));
    assert!(
        log.contains(&expected),
        "no `{expected}` in the driver's log:\n{log}"
    );
    p.cluster.stop().await;
}
