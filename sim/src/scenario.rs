//! Scenarios: a cluster, a workload and expectations in YAML (`docs/scenarios.md`), run
//! through the simulated cluster with the real webhook and extender, checked against
//! invariants, and reported as JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sparkgang_common::GpuResourceNames;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::durations::parse_duration;
use sparkgang_common::resources::{Resources, node_allocatable, pod_requests};
use tokio::time::Instant;

use crate::cluster::{SimCluster, SimOptions};
use crate::scheduler::{Attempt, AttemptObserver};
use crate::spark::{self, DriverScript, Scripts, Submission};

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Extender config overrides (keys of docs/extender.md; `fifo: true` is short for
    /// `fifo: {enabled: true}`).
    #[serde(default)]
    pub config: serde_yaml::Mapping,
    pub nodes: Vec<NodeGroup>,
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Longest the run may take (default: last submission + 60s).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `count` nodes named `<name>-0` … (or one node named `name`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub name: String,
    #[serde(default)]
    pub count: Option<u32>,
    pub cpu: String,
    pub memory: String,
    #[serde(default)]
    pub gpu: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One application, or `count` identical ones named `<name>-0` ….
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default = "zero")]
    pub submit_at: String,
    /// Seconds between the submissions of a `count` group.
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub conf: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// How long the app runs once its minimum executors run.
    #[serde(default = "default_runtime")]
    pub runtime: String,
    #[serde(default)]
    pub kill_executors: Vec<KillSpec>,
    /// Dynamic allocation: executor target changes.
    #[serde(default)]
    pub scale: Vec<ScaleSpec>,
}

fn zero() -> String {
    "0s".to_owned()
}
fn default_namespace() -> String {
    "spark".to_owned()
}
fn default_runtime() -> String {
    "5s".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSpec {
    pub at: String,
    pub count: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    pub at: String,
    pub executors: u32,
}

/// What must hold at the end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub app: String,
    #[serde(default)]
    pub driver_scheduled_within: Option<String>,
    #[serde(default)]
    pub driver_scheduled_after: Option<String>,
    /// `completed`, `running`, `pending` or `rejected`.
    #[serde(default)]
    pub final_state: Option<String>,
    #[serde(default)]
    pub reason_contains: Option<String>,
}

/// One executor's placement.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutorReport {
    pub name: String,
    pub node: Option<String>,
    /// Seconds from the start of the run.
    pub scheduled_at: Option<f64>,
}

/// One application's story.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    pub name: String,
    pub submitted_at: f64,
    pub driver_scheduled_at: Option<f64>,
    pub driver_node: Option<String>,
    pub executors: Vec<ExecutorReport>,
    pub completed_at: Option<f64>,
    /// `completed`, `running`, `pending` or `rejected`.
    pub final_state: String,
    pub last_pending_reason: Option<String>,
    /// Executors the app started with (its gang's minimum).
    pub min_executors: u32,
    /// The most executors it ever had running at once.
    pub peak_running_executors: usize,
}

/// Per node: the peak of what pods and reservations held, against allocatable.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub allocatable_cpu_milli: i64,
    pub allocatable_memory_bytes: i64,
    pub peak_cpu_milli: i64,
    pub peak_memory_bytes: i64,
}

/// The JSON report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub mode: String,
    pub duration_seconds: f64,
    pub apps: Vec<AppReport>,
    pub nodes: Vec<NodeReport>,
    pub violations: Vec<String>,
    pub expectation_failures: Vec<String>,
    /// The extender's filter calls over the run (sparkgang mode).
    pub filter: Option<FilterStats>,
}

/// The extender's filter calls, from its own metrics.
#[derive(Debug, Clone, Serialize)]
pub struct FilterStats {
    pub calls: u64,
    pub calls_per_second: f64,
    pub mean_ms: f64,
    /// Upper bounds of the histogram buckets holding the 50th and 99th percentiles.
    pub p50_at_most_ms: f64,
    pub p99_at_most_ms: f64,
}

/// Reads `filter_duration_seconds` from the extender's Prometheus text.
pub fn filter_stats(metrics: &str, seconds: f64) -> Option<FilterStats> {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        if let Some(rest) =
            line.strip_prefix("sparkgang_extender_filter_duration_seconds_bucket{le=\"")
        {
            let le = rest
                .split('"')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::INFINITY);
            buckets.push((le, value(line)?));
        } else if line.starts_with("sparkgang_extender_filter_duration_seconds_count") {
            count = value(line)?;
        } else if line.starts_with("sparkgang_extender_filter_duration_seconds_sum") {
            sum = value(line)?;
        }
    }
    if count == 0.0 {
        return None;
    }
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|(_, c)| *c >= q * count)
            .map_or(f64::INFINITY, |(le, _)| le * 1000.0)
    };
    Some(FilterStats {
        calls: count as u64,
        calls_per_second: count / seconds.max(0.001),
        mean_ms: sum / count * 1000.0,
        p50_at_most_ms: quantile(0.5),
        p99_at_most_ms: quantile(0.99),
    })
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.expectation_failures.is_empty()
    }
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario: {0}")]
    Invalid(String),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::SimError),
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
}

fn duration(field: &str, s: &str) -> Result<Duration, ScenarioError> {
    parse_duration(s).map_err(|e| ScenarioError::Invalid(format!("{field}: {e}")))
}

impl Scenario {
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        serde_yaml::from_str(text).map_err(|e| ScenarioError::Invalid(e.to_string()))
    }

    /// The extender overrides, with `fifo: <bool>` expanded.
    fn extender_overrides(&self) -> serde_yaml::Value {
        let mut m = self.config.clone();
        if let Some(serde_yaml::Value::Bool(b)) = m.get("fifo").cloned() {
            let mut f = serde_yaml::Mapping::new();
            f.insert("enabled".into(), b.into());
            m.insert("fifo".into(), serde_yaml::Value::Mapping(f));
        }
        serde_yaml::Value::Mapping(m)
    }
}

/// How to run: with sparkgang, or the default scheduler alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sparkgang,
    DefaultScheduler,
}

/// An app instance to submit.
struct Planned {
    name: String,
    at: Duration,
    submission: Submission,
    script: DriverScript,
    seed: u64,
}

fn expand(s: &Scenario) -> Result<Vec<Planned>, ScenarioError> {
    let mut out = Vec::new();
    for (i, a) in s.apps.iter().enumerate() {
        let at = duration("submit_at", &a.submit_at)?;
        let every = a
            .every
            .as_deref()
            .map(|e| duration("every", e))
            .transpose()?
            .unwrap_or_default();
        let script = DriverScript {
            runtime: duration("runtime", &a.runtime)?,
            kill_executors: a
                .kill_executors
                .iter()
                .map(|k| Ok((duration("kill_executors.at", &k.at)?, k.count)))
                .collect::<Result<_, ScenarioError>>()?,
            scale_to: a
                .scale
                .iter()
                .map(|k| Ok((duration("scale.at", &k.at)?, k.executors)))
                .collect::<Result<_, ScenarioError>>()?,
        };
        let n = a.count.unwrap_or(1);
        for k in 0..n {
            let name = if a.count.is_some() {
                format!("{}-{k}", a.name)
            } else {
                a.name.clone()
            };
            out.push(Planned {
                at: at + every * k,
                submission: Submission {
                    namespace: a.namespace.clone(),
                    name: name.clone(),
                    conf: a.conf.clone(),
                    annotations: a.annotations.clone(),
                },
                script: script.clone(),
                seed: ((i as u64) << 20) + u64::from(k) + 1,
                name,
            });
        }
    }
    out.sort_by_key(|p| p.at);
    Ok(out)
}

#[derive(Default)]
struct Track {
    submitted_at: f64,
    driver: String,
    namespace: String,
    app_id: String,
    /// The gang's minimum executors, from the app's Spark conf.
    min_executors: u32,
    rejected: Option<String>,
}

/// Runs a scenario and returns its report.
pub async fn run(scenario: &Scenario, mode: Mode) -> Result<Report, ScenarioError> {
    let plan = expand(scenario)?;
    let last = plan.iter().map(|p| p.at).max().unwrap_or_default();
    let timeout = match &scenario.timeout {
        Some(t) => duration("timeout", t)?,
        None => last + Duration::from_secs(60),
    };
    let reasons: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let sink = reasons.clone();
    let observer: AttemptObserver = Arc::new(move |pod: &Pod, attempt: &Attempt| {
        if let (Attempt::Unschedulable(m), Ok(mut r)) = (attempt, sink.lock()) {
            let key = format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or("")
            );
            r.insert(key, m.clone());
        }
    });
    let options = match mode {
        Mode::Sparkgang => SimOptions {
            extender_overrides: Some(scenario.extender_overrides()),
            observer: Some(observer),
            ..SimOptions::default()
        },
        Mode::DefaultScheduler => SimOptions {
            webhook: false,
            extender: false,
            scheduler_name: Some("default-scheduler".to_owned()),
            observer: Some(observer),
            ..SimOptions::default()
        },
    };
    let cluster = SimCluster::start(options).await?;
    let client = cluster.client.clone();
    let scripts = Scripts::default();
    let drivers_task = tokio::spawn(spark::run_drivers(client.clone(), scripts.clone()));
    let mut namespaces: Vec<String> = plan
        .iter()
        .map(|p| p.submission.namespace.clone())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &namespaces {
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": ns,
            "labels": {"sparkgang.io/enabled": "true"}}}))
        .map_err(|e| ScenarioError::Invalid(e.to_string()))?;
        ns_api.create(&PostParams::default(), &object).await?;
    }
    let node_api: Api<Node> = Api::all(client.clone());
    for g in &scenario.nodes {
        let names: Vec<String> = match g.count {
            Some(n) => (0..n).map(|i| format!("{}-{i}", g.name)).collect(),
            None => vec![g.name.clone()],
        };
        for name in names {
            let mut allocatable = json!({"cpu": g.cpu, "memory": g.memory, "pods": "110"});
            if g.gpu > 0 {
                allocatable["nvidia.com/gpu"] = json!(g.gpu.to_string());
            }
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": g.labels},
                "status": {"allocatable": allocatable,
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .map_err(|e| ScenarioError::Invalid(format!("node {name}: {e}")))?;
            node_api.create(&PostParams::default(), &node).await?;
        }
    }

    let start = Instant::now();
    let mut tracks: BTreeMap<String, Track> = BTreeMap::new();
    let mut timeline = Timeline::default();
    let mut peaks: HashMap<String, Resources> = HashMap::new();
    let mut violations: Vec<String> = Vec::new();
    let mut stuck_since: HashMap<String, Instant> = HashMap::new();
    let mut pending = plan.into_iter().peekable();
    loop {
        let now = start.elapsed();
        while let Some(p) = pending.peek() {
            if p.at > now {
                break;
            }
            let Some(p) = pending.next() else { break };
            let (driver, app_id, _) = spark::identities(&p.submission.name, p.seed);
            if let Ok(mut s) = scripts.lock() {
                s.insert(
                    format!("{}/{driver}", p.submission.namespace),
                    p.script.clone(),
                );
            }
            let min_executors =
                sparkgang_common::sparkconf::SparkConf::from(p.submission.conf.clone())
                    .demand(&GpuResourceNames::default())
                    .map(|d| d.demand.min_executors)
                    .unwrap_or(0);
            let mut track = Track {
                submitted_at: start.elapsed().as_secs_f64(),
                driver,
                namespace: p.submission.namespace.clone(),
                app_id,
                min_executors,
                ..Track::default()
            };
            if let Err(e) = spark::submit(&client, &p.submission, p.seed).await {
                track.rejected = Some(e.to_string());
            }
            tracks.insert(p.name.clone(), track);
        }
        let snapshot = Sample::take(&client, start).await?;
        // Reservations as the extender holds them (memory is ahead of the API objects, whose
        // writes follow asynchronously), pods as the API has them.
        let held: HashMap<String, Resources> = cluster
            .extender
            .as_ref()
            .and_then(|e| {
                e.extender.with_state(|st| {
                    st.nodes()
                        .map(|n| {
                            (
                                n.name.clone(),
                                n.usage.reserved + n.usage.soft + n.usage.pods,
                            )
                        })
                        .collect()
                })
            })
            .unwrap_or_default();
        check_capacity(&snapshot, &held, &mut peaks, &mut violations);
        check_deadlock(&snapshot, &tracks, &mut stuck_since, &mut violations);
        timeline.record(&snapshot);
        let done = pending.peek().is_none()
            && tracks.values().all(|t| {
                t.rejected.is_some()
                    || snapshot
                        .pods
                        .get(&format!("{}/{}", t.namespace, t.driver))
                        .is_some_and(|p| p.phase == "Succeeded" || p.phase == "Failed")
            });
        if done || start.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let final_sample = Sample::take(&client, start).await?;
    timeline.record(&final_sample);
    let reasons = reasons.lock().map(|r| r.clone()).unwrap_or_default();
    let mut apps = Vec::new();
    for (name, t) in &tracks {
        let key = format!("{}/{}", t.namespace, t.driver);
        let d = timeline.pods.get(&key);
        let executors: Vec<ExecutorReport> = timeline
            .pods
            .values()
            .filter(|p| p.app_id == t.app_id && p.role == "executor")
            .map(|p| ExecutorReport {
                name: p.name.clone(),
                node: p.node.clone(),
                scheduled_at: p.first_bound,
            })
            .collect();
        let final_state = if t.rejected.is_some() {
            "rejected"
        } else {
            match final_sample.pods.get(&key).map(|p| p.phase.as_str()) {
                Some("Succeeded") => "completed",
                Some("Running") => "running",
                _ => "pending",
            }
        };
        apps.push(AppReport {
            name: name.clone(),
            submitted_at: t.submitted_at,
            driver_scheduled_at: d.and_then(|p| p.first_bound),
            driver_node: d.and_then(|p| p.node.clone()),
            executors,
            completed_at: d.and_then(|p| p.finished_at),
            final_state: final_state.to_owned(),
            last_pending_reason: t.rejected.clone().or_else(|| reasons.get(&key).cloned()),
            min_executors: t.min_executors,
            peak_running_executors: timeline.peak_running.get(&t.app_id).copied().unwrap_or(0),
        });
    }
    // Invariant: nothing reserved once every app completed.
    if apps
        .iter()
        .all(|a| a.final_state == "completed" || a.final_state == "rejected")
        && mode == Mode::Sparkgang
    {
        let rrs: Api<ResourceReservation> = Api::all(client.clone());
        let left = rrs.list(&ListParams::default()).await?.items;
        if !left.is_empty() {
            violations.push(format!(
                "{} reservation(s) left after every application completed",
                left.len()
            ));
        }
    }
    if mode == Mode::Sparkgang && scenario_fifo(scenario) {
        check_fifo(&apps, scenario, &mut violations);
    }
    let nodes = final_sample
        .allocatable
        .iter()
        .map(|(n, a)| NodeReport {
            name: n.clone(),
            allocatable_cpu_milli: a.cpu_milli,
            allocatable_memory_bytes: a.memory_bytes,
            peak_cpu_milli: peaks.get(n).map_or(0, |p| p.cpu_milli),
            peak_memory_bytes: peaks.get(n).map_or(0, |p| p.memory_bytes),
        })
        .collect();
    let expectation_failures = check_expectations(scenario, &apps);
    let elapsed = start.elapsed().as_secs_f64();
    let filter = cluster
        .extender
        .as_ref()
        .and_then(|e| filter_stats(&e.extender.metrics.encode(), elapsed));
    drivers_task.abort();
    cluster.stop().await;
    Ok(Report {
        scenario: scenario.name.clone(),
        mode: match mode {
            Mode::Sparkgang => "sparkgang",
            Mode::DefaultScheduler => "default-scheduler",
        }
        .to_owned(),
        duration_seconds: elapsed,
        apps,
        nodes,
        violations,
        expectation_failures,
        filter,
    })
}

fn scenario_fifo(s: &Scenario) -> bool {
    match s.config.get("fifo") {
        Some(serde_yaml::Value::Bool(b)) => *b,
        Some(serde_yaml::Value::Mapping(m)) => {
            m.get("enabled") == Some(&serde_yaml::Value::Bool(true))
        }
        _ => false,
    }
}

/// FIFO, seen from outside: a younger driver placed while an older, enforced one (waiting at
/// least `enforceAfter`) was pending must not leave the older one waiting long after (longer
/// than kube-scheduler's maximum backoff of 10s), or never placed: that means the older one did
/// not fit when the younger took room.
fn check_fifo(apps: &[AppReport], s: &Scenario, violations: &mut Vec<String>) {
    const SLACK: f64 = 11.0;
    // An older driver blocks younger ones only once it is `fifo.enforceAfter` old.
    let enforce_after = match s.config.get("fifo") {
        Some(serde_yaml::Value::Mapping(m)) => m
            .get("enforceAfter")
            .and_then(serde_yaml::Value::as_str)
            .and_then(|d| parse_duration(d).ok())
            .map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    };
    for young in apps {
        let Some(placed) = young.driver_scheduled_at else {
            continue;
        };
        for old in apps {
            if old.submitted_at >= young.submitted_at
                || old.submitted_at + enforce_after > placed
                || old.final_state == "rejected"
                || old.driver_scheduled_at.is_some_and(|t| t <= placed + SLACK)
            {
                continue;
            }
            violations.push(format!(
                "FIFO: {} was placed at {placed:.1}s while the older {} waited until {}",
                young.name,
                old.name,
                old.driver_scheduled_at
                    .map_or("the end".to_owned(), |t| format!("{t:.1}s"))
            ));
        }
    }
}

fn check_expectations(s: &Scenario, apps: &[AppReport]) -> Vec<String> {
    let by_name: HashMap<&str, &AppReport> = apps.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut failures = Vec::new();
    for e in &s.expect {
        let Some(app) = by_name.get(e.app.as_str()) else {
            failures.push(format!("{}: no such app", e.app));
            continue;
        };
        if let Some(within) = &e.driver_scheduled_within {
            let limit = parse_duration(within)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            match app.driver_scheduled_at {
                Some(t) if t - app.submitted_at <= limit => {}
                Some(t) => failures.push(format!(
                    "{}: driver scheduled {:.1}s after submission, expected within {within}",
                    e.app,
                    t - app.submitted_at
                )),
                None => failures.push(format!(
                    "{}: driver never scheduled, expected within {within}",
                    e.app
                )),
            }
        }
        if let Some(after) = &e.driver_scheduled_after {
            let other = by_name
                .get(after.as_str())
                .and_then(|a| a.driver_scheduled_at);
            match (app.driver_scheduled_at, other) {
                (Some(t), Some(o)) if t >= o => {}
                (t, o) => failures.push(format!(
                    "{}: driver scheduled at {t:?}, expected after {after} (at {o:?})",
                    e.app
                )),
            }
        }
        if let Some(state) = &e.final_state
            && &app.final_state != state
        {
            failures.push(format!(
                "{}: final state {}, expected {state}",
                e.app, app.final_state
            ));
        }
        if let Some(text) = &e.reason_contains
            && !app
                .last_pending_reason
                .as_deref()
                .unwrap_or("")
                .contains(text.as_str())
        {
            failures.push(format!(
                "{}: last pending reason {:?} does not contain {text:?}",
                e.app, app.last_pending_reason
            ));
        }
    }
    failures
}

/// One pod as sampled.
#[derive(Debug, Clone)]
struct PodSample {
    name: String,
    role: String,
    app_id: String,
    node: Option<String>,
    phase: String,
    requests: Resources,
    first_bound: Option<f64>,
    finished_at: Option<f64>,
}

/// The cluster at one moment.
#[derive(Debug, Clone, Default)]
struct Sample {
    pods: HashMap<String, PodSample>,
    allocatable: BTreeMap<String, Resources>,
    /// App ids holding a reservation.
    reservations: std::collections::HashSet<String>,
    peak_running: HashMap<String, usize>,
}

impl Sample {
    async fn take(client: &kube::Client, start: Instant) -> Result<Sample, kube::Error> {
        let at = start.elapsed().as_secs_f64();
        let gpus = GpuResourceNames::default();
        let mut s = Sample::default();
        let nodes: Api<Node> = Api::all(client.clone());
        for n in nodes.list(&ListParams::default()).await?.items {
            s.allocatable.insert(
                n.metadata.name.clone().unwrap_or_default(),
                node_allocatable(&n, &gpus).unwrap_or_default(),
            );
        }
        let pods: Api<Pod> = Api::all(client.clone());
        for p in pods.list(&ListParams::default()).await?.items {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            let key = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or("")
            );
            let phase = p
                .status
                .as_ref()
                .and_then(|st| st.phase.clone())
                .unwrap_or_default();
            let node = p.spec.as_ref().and_then(|sp| sp.node_name.clone());
            let role = labels.get("spark-role").cloned().unwrap_or_default();
            let app_id = labels
                .get("spark-app-selector")
                .cloned()
                .unwrap_or_default();
            if node.is_some() && role == "executor" && phase == "Running" {
                *s.peak_running.entry(app_id.clone()).or_default() += 1;
            }
            s.pods.insert(
                key,
                PodSample {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    role,
                    app_id,
                    first_bound: node.as_ref().map(|_| at),
                    finished_at: (phase == "Succeeded" || phase == "Failed").then_some(at),
                    node,
                    phase,
                    requests: p
                        .spec
                        .as_ref()
                        .and_then(|sp| pod_requests(sp, &gpus).ok())
                        .unwrap_or_default(),
                },
            );
        }
        let rrs: Api<ResourceReservation> = Api::all(client.clone());
        if let Ok(list) = rrs.list(&ListParams::default()).await {
            for rr in list.items {
                s.reservations.insert(rr.spec.app_id.clone());
            }
        }
        Ok(s)
    }
}

/// What the samples saw over the whole run.
#[derive(Debug, Default)]
struct Timeline {
    pods: BTreeMap<String, PodSample>,
    peak_running: HashMap<String, usize>,
}

impl Timeline {
    /// Keeps the first time each pod was seen bound and finished, and peaks.
    fn record(&mut self, s: &Sample) {
        for (k, p) in &s.pods {
            let entry = self.pods.entry(k.clone()).or_insert_with(|| p.clone());
            entry.first_bound = entry.first_bound.or(p.first_bound);
            entry.finished_at = entry.finished_at.or(p.finished_at);
            if p.node.is_some() {
                entry.node = p.node.clone();
            }
            entry.phase = p.phase.clone();
        }
        for (app, n) in &s.peak_running {
            let peak = self.peak_running.entry(app.clone()).or_default();
            *peak = (*peak).max(*n);
        }
    }
}

/// No node holds more than it has: the pods bound to it (from the API) must fit, and so must
/// everything the extender holds there (`held`: reservation slots, soft reservations and pods
/// no slot covers; empty without the extender).
fn check_capacity(
    s: &Sample,
    held: &HashMap<String, Resources>,
    peaks: &mut HashMap<String, Resources>,
    violations: &mut Vec<String>,
) {
    let mut pods: HashMap<&str, Resources> = HashMap::new();
    let mut who: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in s.pods.values() {
        if let Some(n) = &p.node
            && p.phase != "Succeeded"
            && p.phase != "Failed"
        {
            *pods.entry(n.as_str()).or_default() += p.requests;
            who.entry(n.as_str()).or_default().push(p.name.as_str());
        }
    }
    for (n, a) in &s.allocatable {
        let bound = pods.get(n.as_str()).copied().unwrap_or_default();
        let reserved = held.get(n).copied().unwrap_or_default();
        let peak = peaks.entry(n.clone()).or_default();
        *peak = peak.max(&bound.max(&reserved));
        let mut report = |what: &str, used: Resources| {
            let v = format!("node {n} over-committed by {what}: {used} of {a}");
            if !violations.contains(&v) {
                violations.push(v);
            }
        };
        if !bound.fits_in(a) {
            report(
                &format!(
                    "its pods ({})",
                    who.get(n.as_str())
                        .map(|w| w.join(", "))
                        .unwrap_or_default()
                ),
                bound,
            );
        }
        if !reserved.fits_in(a) {
            report("the extender's reservations and pods", reserved);
        }
    }
}

/// A running driver stuck below its minimum executors while its reservation exists.
fn check_deadlock(
    s: &Sample,
    tracks: &BTreeMap<String, Track>,
    since: &mut HashMap<String, Instant>,
    violations: &mut Vec<String>,
) {
    for (name, t) in tracks {
        let key = format!("{}/{}", t.namespace, t.driver);
        let running = s.pods.get(&key).is_some_and(|p| p.phase == "Running");
        let min = t.min_executors as usize;
        let have = s
            .pods
            .values()
            .filter(|p| p.app_id == t.app_id && p.role == "executor" && p.phase == "Running")
            .count();
        if running && have < min && s.reservations.contains(&t.app_id) {
            let first = *since.entry(name.clone()).or_insert_with(Instant::now);
            if first.elapsed() > Duration::from_secs(30) {
                let v = format!(
                    "gang deadlock: {name} ran with {have} of {min} executors for 30s while holding its reservation"
                );
                if !violations.contains(&v) {
                    violations.push(v);
                }
            }
        } else {
            since.remove(name);
        }
    }
}
