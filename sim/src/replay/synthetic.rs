//! A documented generator of workloads to replay: Spark event logs (plain single files, as
//! Spark 3.x writes them by default) of applications with seeded random sizes, counts,
//! submission times and runtimes, and the `kubectl get nodes -o json` of a uniform instance
//! group. For tests and benchmarks; `cargo run --example gen_workload` writes one.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

/// The shape of a generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub apps: usize,
    /// Submissions are spread uniformly at random over this window.
    pub window: Duration,
    /// Each application runs a uniform random time in this range once started.
    pub runtime: (Duration, Duration),
    /// Executors per application: uniform in this range.
    pub executors: (u32, u32),
    /// Cores per executor: one of these, uniformly.
    pub executor_cores: Vec<u32>,
    /// GiB of executor memory per core (`spark.executor.memory`).
    pub memory_per_core_gib: u32,
    /// `spark.kubernetes.node.selector.instance-group`.
    pub instance_group: String,
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            apps: 100,
            window: Duration::from_secs(600),
            runtime: (Duration::from_secs(60), Duration::from_secs(600)),
            executors: (2, 8),
            executor_cores: vec![1, 2, 4],
            memory_per_core_gib: 4,
            instance_group: "batch".to_owned(),
            seed: 1,
        }
    }
}

/// splitmix64: the same numbers for the same seed, everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
}

/// The first submission of every generated workload (2026-11-30T00:00:00Z), in ms.
const EPOCH_MS: u64 = 1_796_083_200_000;

/// Writes one event log per application into `dir` (created if missing).
pub fn write_eventlogs(dir: &Path, w: &Workload) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(w.seed);
    let window_ms = u64::try_from(w.window.as_millis()).unwrap_or(u64::MAX);
    let runtime_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    for i in 0..w.apps {
        let submit = EPOCH_MS + rng.between(0, window_ms);
        let start = submit + rng.between(1_000, 5_000);
        let runtime = rng.between(runtime_ms(w.runtime.0), runtime_ms(w.runtime.1));
        let executors = rng.between(u64::from(w.executors.0), u64::from(w.executors.1));
        let pick = rng.next() % w.executor_cores.len().max(1) as u64;
        let cores = w
            .executor_cores
            .get(usize::try_from(pick).unwrap_or(0))
            .copied()
            .unwrap_or(1);
        let id = format!("spark-gen-{:06}", i);
        let props = json!({
            "spark.app.name": format!("gen-{}", i % 50),
            "spark.app.id": id,
            "spark.app.submitTime": submit.to_string(),
            "spark.master": "k8s://https://kubernetes.default.svc",
            "spark.submit.deployMode": "cluster",
            "spark.driver.cores": "1",
            "spark.driver.memory": "2g",
            "spark.executor.instances": executors.to_string(),
            "spark.executor.cores": cores.to_string(),
            "spark.executor.memory": format!("{}g", cores * w.memory_per_core_gib),
            "spark.kubernetes.node.selector.instance-group": w.instance_group,
        });
        let mut lines = vec![
            json!({"Event": "SparkListenerLogStart", "Spark Version": "4.3.0"}),
            json!({"Event": "SparkListenerEnvironmentUpdate", "Spark Properties": props}),
            json!({"Event": "SparkListenerApplicationStart", "App Name": format!("gen-{}", i % 50),
                   "App ID": id, "Timestamp": start, "User": "gen"}),
        ];
        for e in 1..=executors {
            lines.push(json!({"Event": "SparkListenerExecutorAdded", "Timestamp": start + 2_000,
                "Executor ID": e.to_string(),
                "Executor Info": {"Host": format!("10.0.{}.{}", i % 250, e), "Total Cores": cores}}));
        }
        lines.push(
            json!({"Event": "SparkListenerApplicationEnd", "Timestamp": start + runtime,
                          "ExitCode": 0}),
        );
        let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join(&id))?);
        for l in lines {
            writeln!(file, "{l}")?;
        }
        file.flush()?;
    }
    Ok(())
}

/// `kubectl get nodes -o json` of `count` ready nodes named `<group>-<n>`.
pub fn nodes_json(count: usize, cpu: u32, memory_gib: u32, group: &str) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (0..count)
        .map(|n| {
            let name = format!("{group}-{n}");
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                    "instance-group": group, "topology.kubernetes.io/zone": "zone-a"}},
                "spec": {},
                "status": {"allocatable": {"cpu": cpu.to_string(), "memory": format!("{memory_gib}Gi"),
                                           "pods": "110"},
                           "conditions": [{"type": "Ready", "status": "True"}]}})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}
