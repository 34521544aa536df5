//! Runs a scenario on the virtual clock (`--clock virtual`): the [`World`] driven by an
//! [`Agenda`] of events — submissions, gate look-agains, Spark drivers' allocation rounds and
//! the ends of scheduling backoffs — with a kube-scheduler round after every instant that
//! changed the cluster. No wall-clock reads: two runs write the same report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use sparkgang_common::pods::{app_id, driver_conf_map_name};
use sparkgang_common::sparkconf::ConfDemand;

use super::report::{self, Report};
use super::run::{fifo_rule, gang_record, namespaces, nodes, run_timeout};
use super::{Mode, Scenario, ScenarioError, check_expectations, expand};
use crate::deploy_config::repository_deploy_dir;
use crate::history::{AppRecord, Change, History};
use crate::kubelet::Phase;
use crate::oracle;
use crate::scheduler::Attempt;
use crate::spark::{
    self, Allocator, DriverScript, ExecutorPhase, ExecutorView, driver_demand, executor_pod,
    executor_prefix,
};
use crate::virtual_clock::{Agenda, World};

/// The history samples the cluster at most this often, as the real-time runner does; each
/// sample holds every change since the previous one.
const SAMPLE_PERIOD: Duration = Duration::from_millis(200);

/// What happens at a moment of virtual time.
enum Event {
    /// The plan's `n`th application is submitted.
    Submit(usize),
    /// The gate controller looks at a driver again.
    Gate { namespace: String, name: String },
    /// A driver's allocation round (by driver key `namespace/name`).
    Driver(String),
    /// A pod's scheduling backoff ends.
    Retry,
}

/// A running Spark driver.
struct DriverRun {
    namespace: String,
    pod: Arc<Pod>,
    app_id: String,
    demand: ConfDemand,
    prefix: String,
    allocator: Allocator,
    started: Duration,
}

/// Runs `scenario` on the virtual clock and returns its report; `duration_seconds` is virtual.
pub fn run_virtual(scenario: &Scenario, mode: Mode) -> Result<Report, ScenarioError> {
    let plan = expand(scenario)?;
    let timeout = run_timeout(scenario, &plan)?;
    let sparkgang = mode == Mode::Sparkgang;
    let overrides = scenario.extender_overrides();
    let mut world = World::new(
        &repository_deploy_dir(),
        sparkgang.then_some(&overrides),
        sparkgang,
    )?;
    let enabled = BTreeMap::from([("sparkgang.io/enabled".to_owned(), "true".to_owned())]);
    for ns in namespaces(&plan) {
        world.create_namespace(&ns, &enabled)?;
    }
    let mut history = History {
        fifo: sparkgang.then(|| fifo_rule(scenario)).flatten(),
        clock: "virtual".to_owned(),
        ..History::default()
    };
    for (node, record) in nodes(scenario)? {
        world.create_node(&node)?;
        history.nodes.push(record);
    }
    let mut agenda = Agenda::default();
    for (i, p) in plan.iter().enumerate() {
        agenda.push(p.at, Event::Submit(i));
    }
    let mut scripts: BTreeMap<String, DriverScript> = BTreeMap::new();
    let mut drivers: BTreeMap<String, DriverRun> = BTreeMap::new();
    let mut reasons: HashMap<String, String> = HashMap::new();
    let mut rejections: HashMap<String, String> = HashMap::new();
    let mut settled = 0usize;
    let mut retry_at: Option<Duration> = None;
    let mut seen_version = world.store.resource_version();
    if let Some(c) = world.sample(0.0) {
        history.changes.push(c);
    }
    let mut now = Duration::ZERO;
    let mut sampled = Duration::ZERO;
    while let Some(at) = agenda.next_time() {
        if at > timeout {
            break;
        }
        now = at;
        world.advance_to(now);
        let mut retry = false;
        while let Some(event) = agenda.pop_due(now) {
            match event {
                Event::Submit(i) => {
                    let p = &plan[i];
                    let s = &p.submission;
                    let (driver, app_id, _) = spark::identities(&s.name, p.seed);
                    scripts.insert(format!("{}/{driver}", s.namespace), p.script.clone());
                    let mut app = AppRecord {
                        name: p.name.clone(),
                        namespace: s.namespace.clone(),
                        driver: driver.clone(),
                        app_id,
                        submitted_at: now.as_secs_f64(),
                        rejected: false,
                        gang: gang_record(s),
                    };
                    match world.submit(s, p.seed) {
                        Ok(()) => {
                            if let Some(after) = world.gate(&s.namespace, &driver) {
                                agenda.push(
                                    now + after,
                                    Event::Gate {
                                        namespace: s.namespace.clone(),
                                        name: driver,
                                    },
                                );
                            }
                        }
                        Err(e) => {
                            app.rejected = true;
                            settled += 1;
                            rejections.insert(p.name.clone(), e);
                        }
                    }
                    history.apps.push(app);
                }
                Event::Gate { namespace, name } => {
                    if let Some(after) = world.gate(&namespace, &name) {
                        agenda.push(now + after, Event::Gate { namespace, name });
                    }
                }
                Event::Driver(key) => {
                    if let Some(run) = drivers.get_mut(&key) {
                        let next = driver_round(&mut world, run, now);
                        match next {
                            Some(delay) => agenda.push(now + delay, Event::Driver(key)),
                            None => {
                                drivers.remove(&key);
                                settled += 1;
                            }
                        }
                    }
                }
                Event::Retry => retry = true,
            }
        }
        let version = world.store.resource_version();
        if (version != seen_version || retry) && world.has_pods_to_schedule() {
            for (pod, attempt) in world.schedule_round() {
                match attempt {
                    Attempt::Unschedulable(message) => {
                        reasons.insert(pod, message);
                    }
                    Attempt::Bound(_) => {
                        if let Some(run) = start_driver(&world, &pod, &scripts, now) {
                            agenda.push(now + run.allocator.delay(), Event::Driver(pod.clone()));
                            drivers.insert(pod, run);
                        }
                    }
                }
            }
            seen_version = world.store.resource_version();
        }
        if let Some(end) = world.next_backoff_end()
            && retry_at.is_none_or(|r| r <= now || r > end)
        {
            agenda.push(end, Event::Retry);
            retry_at = Some(end);
        }
        let done = settled == plan.len();
        if (done || now >= sampled + SAMPLE_PERIOD)
            && let Some(c) = world.sample(now.as_secs_f64())
        {
            history.changes.push(c);
            sampled = now;
        }
        if done {
            break;
        }
    }
    // The run ends at its last instant, or at the timeout when something still waited.
    let end = if settled == plan.len() { now } else { timeout };
    let last = world.sample(end.as_secs_f64()).unwrap_or(Change {
        at: end.as_secs_f64(),
        ..Change::default()
    });
    if history.end() < last.at || !history.changes.last().is_some_and(|c| c.at == last.at) {
        history.changes.push(last);
    }
    let (apps, nodes) = report::summarise(&history, &reasons, &rejections);
    let violations = oracle::check(&history, sparkgang);
    let expectation_failures = check_expectations(scenario, &apps);
    Ok(Report {
        scenario: scenario.name.clone(),
        mode: mode.as_str().to_owned(),
        clock: "virtual".to_owned(),
        duration_seconds: end.as_secs_f64(),
        apps,
        nodes,
        violations,
        expectation_failures,
        filter: None,
        history,
    })
}

/// The driver stand-in starts when its pod runs: it reads its `spark.properties` as Spark
/// does. `None` for executors, and for a driver whose properties are missing or invalid (as in
/// real time, such a driver never allocates).
fn start_driver(
    world: &World,
    key: &str,
    scripts: &BTreeMap<String, DriverScript>,
    now: Duration,
) -> Option<DriverRun> {
    let (namespace, name) = key.split_once('/')?;
    let pod = world.pod(namespace, name)?;
    let role = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("spark-role"));
    if role.map(String::as_str) != Some("driver") {
        return None;
    }
    let map = pod.spec.as_ref().and_then(driver_conf_map_name)?;
    let properties = world.spark_properties(namespace, map)?;
    let demand = match driver_demand(&properties) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(driver = key, error = %e, "driver simulation failed");
            return None;
        }
    };
    let app_id = app_id(&pod).unwrap_or_default().to_owned();
    let script = scripts.get(key).cloned().unwrap_or(DriverScript {
        runtime: Duration::from_secs(1),
        ..DriverScript::default()
    });
    Some(DriverRun {
        namespace: namespace.to_owned(),
        prefix: executor_prefix(&demand, &app_id),
        allocator: Allocator::new(&demand, &script),
        app_id,
        demand,
        pod,
        started: now,
    })
}

/// One allocation round of a running driver, carried out at once; when the next is due, or
/// `None` when the application ended (its executors deleted, its driver succeeded).
fn driver_round(world: &mut World, run: &mut DriverRun, now: Duration) -> Option<Duration> {
    let executors = world.executors_of(&run.namespace, &run.app_id);
    let views: Vec<ExecutorView> = executors
        .iter()
        .map(|e| ExecutorView {
            name: e.metadata.name.clone().unwrap_or_default(),
            phase: ExecutorPhase::of(e.status.as_ref().and_then(|s| s.phase.as_deref())),
        })
        .collect();
    let round = run.allocator.round(now.saturating_sub(run.started), &views);
    for name in &round.delete {
        world.delete_pod(&run.namespace, name);
    }
    for name in &round.kill {
        world.set_phase(&run.namespace, name, Phase::Failed(137));
    }
    if round.finished {
        for e in world.executors_of(&run.namespace, &run.app_id) {
            world.delete_pod(&run.namespace, e.metadata.name.as_deref().unwrap_or(""));
        }
        let name = run.pod.metadata.name.clone().unwrap_or_default();
        world.set_phase(&run.namespace, &name, Phase::Succeeded);
        return None;
    }
    for id in round.create {
        let pod = executor_pod(&run.pod, &run.demand, id, &run.prefix);
        let created = serde_json::to_value(&pod)
            .map_err(|e| e.to_string())
            .and_then(|v| world.create_pod(&run.namespace, v).map(|_| ()));
        if let Err(e) = created {
            tracing::warn!(error = %e, app = run.app_id.as_str(), "cannot create executor");
        }
    }
    Some(run.allocator.delay())
}
