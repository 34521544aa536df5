//! Scenarios: a cluster, a workload and expectations in YAML (`docs/scenarios.md`), run
//! through the simulated cluster with the real webhook and extender, checked against
//! invariants, and reported as JSON.

pub mod queues;
mod report;
mod run;
mod run_virtual;
mod sampler;
pub mod summary;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use sparkgang_common::durations::parse_duration;

use crate::apiserver::{Clients, FaultKind};
use crate::harness::EXTENDER_USER_AGENT;
use crate::spark::{DriverScript, Submission};

pub use report::{AppReport, ExecutorReport, FilterStats, NodeReport, Report, filter_stats};
pub use run::run;
pub use run_virtual::run_virtual;

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
    /// `PriorityClass`es created before the run: `[{name: high, value: 1000}]`.
    #[serde(default)]
    pub priority_classes: Vec<PriorityClassSpec>,
    /// `PodDisruptionBudget`s created before the run:
    /// `[{name: keep-b, selector: {spark-app-name: b}, disruptions_allowed: 0}]`.
    #[serde(default)]
    pub disruption_budgets: Vec<DisruptionBudgetSpec>,
    /// `Queue`s created before the run (`docs/queues.md`):
    /// `[{name: etl, instance_group: batch, guaranteed: {cpu: "32"}, max: {cpu: "64"},
    /// weight: 1, parent: org}]`.
    #[serde(default)]
    pub queues: Vec<crate::history::QueueRecord>,
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Longest the run may take (default: last submission + 60s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// API server faults during the run (`docs/scenarios.md`, "Faults").
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// How long a pod deleted while running takes to stop (at most its grace period): until
    /// then it is terminating and holds its room. Default: deleted pods go at once.
    #[serde(default)]
    pub pod_termination: Option<String>,
}

impl Scenario {
    /// [`Scenario::pod_termination`], parsed.
    pub fn pod_termination(&self) -> Result<Option<std::time::Duration>, ScenarioError> {
        self.pod_termination
            .as_deref()
            .map(|d| duration("pod_termination", d))
            .transpose()
    }
}

/// `{at: 10s, kind: api-hang, for: 20s, clients: extender}`: from `at` after the start, for
/// `for`, the API server misbehaves as `kind` says towards `clients`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub at: String,
    /// `api-hang`, `api-5xx`, `api-409` or `drop-watches`.
    pub kind: String,
    #[serde(rename = "for")]
    pub lasts: String,
    /// `extender` (the default: requests with the extender's User-Agent) or `all`.
    #[serde(default)]
    pub clients: Option<String>,
}

/// A fault of a scenario, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFault {
    pub at: Duration,
    pub kind: FaultKind,
    pub lasts: Duration,
    pub clients: Clients,
}

impl FaultSpec {
    fn plan(&self) -> Result<PlannedFault, ScenarioError> {
        let kind = self
            .kind
            .parse::<FaultKind>()
            .map_err(|e| ScenarioError::Invalid(format!("faults.kind: {e}")))?;
        let clients = match self.clients.as_deref() {
            None | Some("extender") => Clients::UserAgent(EXTENDER_USER_AGENT.to_owned()),
            Some("all") => Clients::All,
            Some(other) => {
                return Err(ScenarioError::Invalid(format!(
                    "faults.clients: unknown value {other:?}; accepted: extender, all"
                )));
            }
        };
        Ok(PlannedFault {
            at: duration("faults.at", &self.at)?,
            kind,
            lasts: duration("faults.for", &self.lasts)?,
            clients,
        })
    }
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

/// A `PriorityClass` of the scenario's cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityClassSpec {
    pub name: String,
    pub value: i32,
    #[serde(default)]
    pub global_default: bool,
}

impl PriorityClassSpec {
    /// The API object.
    pub fn object(&self) -> serde_json::Value {
        serde_json::json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": self.name}, "value": self.value,
            "globalDefault": self.global_default})
    }
}

/// A `PodDisruptionBudget` of the scenario's cluster, selecting pods by labels, with the
/// status the disruption controller would write (the simulator has no disruption controller:
/// `disruptions_allowed` is what the Eviction API spends).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisruptionBudgetSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// `matchLabels` of its selector (Spark labels every pod `spark-app-name: <app name>`).
    pub selector: BTreeMap<String, String>,
    pub disruptions_allowed: u32,
}

impl DisruptionBudgetSpec {
    /// The API object.
    pub fn object(&self) -> serde_json::Value {
        serde_json::json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"selector": {"matchLabels": self.selector}}})
    }

    /// Its `status`, as the disruption controller would write it.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({"disruptionsAllowed": self.disruptions_allowed,
            "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
            "observedGeneration": 1})
    }
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
    /// The `PriorityClass` its driver and executors ask for, as a plain spark-submit does:
    /// `--conf spark.kubernetes.driver.label.sparkgang.io/priority-class=<class>` (executors
    /// inherit the driver's class through the webhook).
    #[serde(default)]
    pub priority_class: Option<String>,
    /// The queue it belongs to, as a plain spark-submit names it:
    /// `--conf spark.kubernetes.driver.label.sparkgang.io/queue=<queue>`.
    #[serde(default)]
    pub queue: Option<String>,
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

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario: {0}")]
    Invalid(String),
    #[error(transparent)]
    Cluster(#[from] crate::harness::SimError),
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
}

fn duration(field: &str, s: &str) -> Result<Duration, ScenarioError> {
    parse_duration(s).map_err(|e| ScenarioError::Invalid(format!("{field}: {e}")))
}

impl Scenario {
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario =
            serde_yaml::from_str(text).map_err(|e| ScenarioError::Invalid(e.to_string()))?;
        s.planned_faults()?;
        Ok(s)
    }

    /// The faults, checked, in the order they start.
    pub fn planned_faults(&self) -> Result<Vec<PlannedFault>, ScenarioError> {
        let mut out = self
            .faults
            .iter()
            .map(FaultSpec::plan)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|f| f.at);
        Ok(out)
    }

    /// The nodes' instance-group label (the extender's `instanceGroupLabel`).
    pub fn instance_group_label(&self) -> String {
        self.config
            .get("instanceGroupLabel")
            .and_then(|v| v.as_str())
            .unwrap_or("instance-group")
            .to_owned()
    }

    /// The per-queue figures of a run of `duration` seconds that saw `history`.
    fn queue_reports(
        &self,
        history: &crate::history::History,
        duration: f64,
    ) -> Result<Vec<queues::QueueReport>, ScenarioError> {
        queues::queue_reports(
            &self.queues,
            history,
            duration,
            &self.instance_group_label(),
        )
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

impl Mode {
    /// As reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sparkgang => "sparkgang",
            Mode::DefaultScheduler => "default-scheduler",
        }
    }
}

/// An app instance to submit.
struct Planned {
    name: String,
    at: Duration,
    submission: Submission,
    script: DriverScript,
    seed: u64,
    queue: Option<String>,
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
        let mut conf = a.conf.clone();
        if let Some(class) = &a.priority_class {
            // The driver's label only: executors inherit its class through the webhook.
            conf.insert(
                "spark.kubernetes.driver.label.sparkgang.io/priority-class".to_owned(),
                class.clone(),
            );
        }
        if let Some(queue) = &a.queue {
            conf.insert(
                "spark.kubernetes.driver.label.sparkgang.io/queue".to_owned(),
                queue.clone(),
            );
        }
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
                    conf: conf.clone(),
                    annotations: a.annotations.clone(),
                },
                script: script.clone(),
                seed: ((i as u64) << 20) + u64::from(k) + 1,
                queue: a.queue.clone(),
                name,
            });
        }
    }
    out.sort_by_key(|p| p.at);
    Ok(out)
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
