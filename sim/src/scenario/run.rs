//! Runs a scenario through the simulated cluster in real time, recording its [`History`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use sparkgang_common::GpuResourceNames;
use sparkgang_common::durations::parse_duration;
use sparkgang_common::resources::node_allocatable;
use sparkgang_common::sparkconf::SparkConf;
use tokio::time::Instant;

use super::report::{self, Report, filter_stats};
use super::sampler::Sampler;
use super::{Mode, Planned, Scenario, ScenarioError, check_expectations, duration, expand};
use crate::harness::{SimCluster, SimOptions};
use crate::history::{
    AppRecord, FifoRule, GangRecord, History, NodeRecord, Outage, PodRecord, State,
};
use crate::oracle;
use crate::scheduler::{Attempt, AttemptObserver};
use crate::spark::{self, Scripts, Submission};

/// Runs a scenario and returns its report.
pub async fn run(scenario: &Scenario, mode: Mode) -> Result<Report, ScenarioError> {
    let plan = expand(scenario)?;
    let timeout = run_timeout(scenario, &plan)?;
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
    let pod_termination = scenario.pod_termination()?;
    let options = match mode {
        Mode::Sparkgang => SimOptions {
            extender_overrides: Some(scenario.extender_overrides()),
            observer: Some(observer),
            pod_termination,
            ..SimOptions::default()
        },
        Mode::DefaultScheduler => SimOptions {
            webhook: false,
            extender: false,
            scheduler_name: Some("default-scheduler".to_owned()),
            observer: Some(observer),
            pod_termination,
            ..SimOptions::default()
        },
    };
    let cluster = SimCluster::start(options).await?;
    let client = cluster.client.clone();
    let scripts = Scripts::default();
    let drivers_task = tokio::spawn(spark::run_drivers(client.clone(), scripts.clone()));
    let mut sampler = Sampler::start(&cluster).await;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces(&plan) {
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": ns,
            "labels": {"sparkgang.io/enabled": "true"}}}))
        .map_err(|e| ScenarioError::Invalid(e.to_string()))?;
        ns_api.create(&PostParams::default(), &object).await?;
    }
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    for class in &scenario.priority_classes {
        let object = serde_json::from_value(class.object())
            .map_err(|e| ScenarioError::Invalid(format!("priority_classes: {e}")))?;
        classes.create(&PostParams::default(), &object).await?;
    }
    for budget in &scenario.disruption_budgets {
        let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &budget.namespace);
        let object = serde_json::from_value(budget.object())
            .map_err(|e| ScenarioError::Invalid(format!("disruption_budgets: {e}")))?;
        api.create(&PostParams::default(), &object).await?;
        api.patch_status(
            &budget.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": budget.status()})),
        )
        .await?;
    }
    let queue_api: Api<sparkgang_common::api::queue::Queue> = Api::all(client.clone());
    for queue in &scenario.queues {
        let object = serde_json::from_value(super::queues::queue_object(queue))
            .map_err(|e| ScenarioError::Invalid(format!("queues: {e}")))?;
        queue_api.create(&PostParams::default(), &object).await?;
    }
    let node_api: Api<Node> = Api::all(client.clone());
    let mut node_records = Vec::new();
    for (node, record) in nodes(scenario)? {
        node_api.create(&PostParams::default(), &node).await?;
        node_records.push(record);
    }

    let start = Instant::now();
    // Faults hit the sparkgang run only: the default scheduler has no extender to hit.
    let faults_task = (mode == Mode::Sparkgang).then(|| {
        let faults = cluster.api.faults().clone();
        let planned = scenario.planned_faults();
        tokio::spawn(async move {
            for f in planned.unwrap_or_default() {
                tokio::time::sleep_until(start + f.at).await;
                faults.inject(f.kind, f.clients, f.lasts);
            }
        })
    });
    let mut history = History {
        nodes: node_records,
        apps: Vec::new(),
        preempted: Vec::new(),
        fifo: (mode == Mode::Sparkgang)
            .then(|| fifo_rule(scenario))
            .flatten(),
        changes: Vec::new(),
        outages: match mode {
            Mode::Sparkgang => scenario
                .planned_faults()?
                .iter()
                .map(|f| Outage {
                    kind: f.kind.to_string(),
                    from: f.at.as_secs_f64(),
                    until: (f.at + f.lasts).as_secs_f64(),
                })
                .collect(),
            Mode::DefaultScheduler => Vec::new(),
        },
        clock: "real".to_owned(),
        queues: scenario.queues.clone(),
    };
    let mut rejections: HashMap<String, String> = HashMap::new();
    let mut last_state = State::default();
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
            let gang = gang_record(&p.submission);
            let mut app = AppRecord {
                queue: p.queue.clone(),
                name: p.name.clone(),
                namespace: p.submission.namespace.clone(),
                driver,
                app_id,
                submitted_at: start.elapsed().as_secs_f64(),
                rejected: false,
                gang,
            };
            if let Err(e) = spark::submit(&client, &p.submission, p.seed).await {
                app.rejected = true;
                rejections.insert(p.name.clone(), e.to_string());
            }
            history.apps.push(app);
        }
        let state = sampler.sample(start);
        history.preempted = sampler.preempted(start);
        let done = pending.peek().is_none() && all_finished(&history, &state);
        history.record(&mut last_state, state);
        if done || start.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Completed drivers release their reservations through the extender's watch: give that
    // its grace before the last sample, which the release oracle judges strictly.
    let release_by = Instant::now() + Duration::from_secs_f64(oracle::RELEASE_GRACE);
    loop {
        let state = sampler.sample(start);
        history.preempted = sampler.preempted(start);
        let released = !all_finished(&history, &state) || state.reservations.is_empty();
        history.record(&mut last_state, state);
        if released || Instant::now() >= release_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reasons = reasons.lock().map(|r| r.clone()).unwrap_or_default();
    let (apps, nodes) = report::summarise(&history, &reasons, &rejections);
    let violations = oracle::check(&history, mode == Mode::Sparkgang);
    let expectation_failures = check_expectations(scenario, &apps);
    let elapsed = start.elapsed().as_secs_f64();
    let filter = cluster
        .extender
        .as_ref()
        .and_then(|e| filter_stats(&e.extender.metrics.encode(), elapsed));
    drivers_task.abort();
    if let Some(t) = faults_task {
        t.abort();
    }
    cluster.api.faults().clear();
    cluster.stop().await;
    Ok(Report {
        queues: scenario.queue_reports(&history, elapsed)?,
        scenario: scenario.name.clone(),
        mode: mode.as_str().to_owned(),
        clock: "real".to_owned(),
        duration_seconds: elapsed,
        apps,
        nodes,
        violations,
        expectation_failures,
        filter,
        preemptions: report::preemptions(&history),
        history,
    })
}

/// How long the run may take: the scenario's `timeout`, or a minute after the last
/// submission and the last fault.
pub(super) fn run_timeout(
    scenario: &Scenario,
    plan: &[Planned],
) -> Result<Duration, ScenarioError> {
    let last = plan.iter().map(|p| p.at).max().unwrap_or_default();
    Ok(match &scenario.timeout {
        Some(t) => duration("timeout", t)?,
        None => {
            let faults_over = scenario
                .planned_faults()?
                .iter()
                .map(|f| f.at + f.lasts)
                .max()
                .unwrap_or_default();
            last.max(faults_over) + Duration::from_secs(60)
        }
    })
}

/// The namespaces the plan submits to, each once, in order.
pub(super) fn namespaces(plan: &[Planned]) -> Vec<String> {
    let mut out: Vec<String> = plan
        .iter()
        .map(|p| p.submission.namespace.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The scenario's nodes, and each as the history records it.
pub(super) fn nodes(scenario: &Scenario) -> Result<Vec<(Node, NodeRecord)>, ScenarioError> {
    let mut out = Vec::new();
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
            let record = NodeRecord {
                name: name.clone(),
                allocatable: node_allocatable(&node, &GpuResourceNames::default())
                    .unwrap_or_default(),
                labels: g.labels.clone(),
            };
            out.push((node, record));
        }
    }
    Ok(out)
}

/// Whether every submitted driver has finished (or was refused).
fn all_finished(history: &History, state: &State) -> bool {
    history.apps.iter().all(|a| {
        let driver = format!("{}/{}", a.namespace, a.driver);
        a.rejected
            || history.was_preempted(&driver)
            || state.pods.get(&driver).is_some_and(PodRecord::is_finished)
    })
}

/// FIFO as the scenario configures it (`fifo: true`, or `fifo: {enabled, enforceAfter}`).
pub(super) fn fifo_rule(s: &Scenario) -> Option<FifoRule> {
    let enforce_after = |m: &serde_yaml::Mapping| {
        m.get("enforceAfter")
            .and_then(serde_yaml::Value::as_str)
            .and_then(|d| parse_duration(d).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    };
    match s.config.get("fifo") {
        Some(serde_yaml::Value::Bool(true)) => Some(FifoRule::default()),
        Some(serde_yaml::Value::Mapping(m))
            if m.get("enabled") == Some(&serde_yaml::Value::Bool(true)) =>
        {
            Some(FifoRule {
                enforce_after_seconds: enforce_after(m),
            })
        }
        _ => None,
    }
}

/// The gang the submission asks for, from its Spark conf as spark-submit would write it.
pub(super) fn gang_record(s: &Submission) -> GangRecord {
    let conf = SparkConf::from(s.conf.clone());
    match conf.demand(&GpuResourceNames::default()) {
        Ok(d) => GangRecord {
            driver: d.demand.driver,
            executor: d.demand.executor,
            min_executors: d.demand.min_executors,
            node_selector: d.driver_node_selector.clone().into_iter().collect(),
        },
        Err(_) => GangRecord::default(),
    }
}
