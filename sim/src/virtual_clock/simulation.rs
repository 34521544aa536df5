//! The discrete-event loop over a [`World`]: an [`Agenda`] of submissions, gate look-agains,
//! Spark drivers' allocation rounds and the ends of scheduling backoffs, and a kube-scheduler
//! round after every instant that changed the cluster while a pod waits. Scenarios and replays
//! drive it; what each submission is stays theirs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use sparkgang_common::pods::{app_id, driver_conf_map_name};
use sparkgang_common::sparkconf::ConfDemand;

use super::{Agenda, World};
use crate::kubelet::Phase;
use crate::scheduler::Attempt;
use crate::spark::{
    Allocator, DriverScript, ExecutorView, Submission, driver_demand, executor_pod, executor_prefix,
};

/// What happens at a moment of virtual time.
enum Event {
    /// The caller's `n`th submission is due.
    Submit(usize),
    /// The gate controller looks at a driver again.
    Gate { namespace: String, name: String },
    /// A driver's allocation round (by driver key `namespace/name`).
    Driver(String),
    /// A pod's scheduling backoff ends.
    Retry,
    /// Pods being deleted stop.
    Terminate,
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
    /// When its next round is due (an agenda entry at another time is stale).
    wake: Duration,
}

impl DriverRun {
    /// The first allocation tick (`started + k × delay`) after `now`.
    fn next_tick(&self, now: Duration) -> Duration {
        let delay = self.allocator.delay().max(Duration::from_millis(1));
        let since = now.saturating_sub(self.started);
        let k = since.as_nanos() / delay.as_nanos() + 1;
        self.started + delay * u32::try_from(k).unwrap_or(u32::MAX)
    }
}

/// What happened at one instant.
#[derive(Debug, Default)]
pub struct Happened {
    pub at: Duration,
    /// The submissions due (the caller's indices), in order; the caller submits them with
    /// [`Simulation::submit`] before the scheduler's round.
    pub due: Vec<usize>,
    /// Scheduling attempts, by pod key.
    pub attempts: Vec<(String, Attempt)>,
    /// Drivers (`namespace/name`) whose application ended: executors deleted, driver succeeded.
    pub finished: Vec<String>,
}

/// The cluster and everything waiting to happen in it.
pub struct Simulation {
    pub world: World,
    agenda: Agenda<Event>,
    scripts: BTreeMap<String, DriverScript>,
    drivers: BTreeMap<String, DriverRun>,
    /// Driver key by `namespace/app-id`.
    by_app: BTreeMap<String, String>,
    retry_at: Option<Duration>,
    /// When a [`Event::Terminate`] is on the agenda.
    terminate_at: Option<Duration>,
    /// A backoff ended at this instant: the round runs even if nothing changed.
    retry_due: bool,
    seen_version: u64,
}

impl Simulation {
    pub fn new(world: World) -> Simulation {
        Simulation {
            seen_version: world.store.resource_version(),
            world,
            agenda: Agenda::default(),
            scripts: BTreeMap::new(),
            drivers: BTreeMap::new(),
            by_app: BTreeMap::new(),
            retry_at: None,
            terminate_at: None,
            retry_due: false,
        }
    }

    /// The caller's submission `index` is due at `at`.
    pub fn plan(&mut self, at: Duration, index: usize) {
        self.agenda.push(at, Event::Submit(index));
    }

    /// When the next event is due; `None` when nothing will ever happen again.
    pub fn next_time(&self) -> Option<Duration> {
        self.agenda.next_time()
    }

    /// spark-submit now: the driver and its ConfigMap, through the webhook; the gate looks at
    /// the driver at once; once it runs, the driver follows `script`. The API's refusal, if any.
    pub fn submit(
        &mut self,
        s: &Submission,
        seed: u64,
        script: DriverScript,
    ) -> Result<(), String> {
        let (driver, _, _) = crate::spark::identities(&s.name, seed);
        self.scripts
            .insert(format!("{}/{driver}", s.namespace), script);
        self.world.submit(s, seed)?;
        if let Some(after) = self.world.gate(&s.namespace, &driver) {
            let at = self.world.now() + after;
            self.agenda.push(
                at,
                Event::Gate {
                    namespace: s.namespace.clone(),
                    name: driver,
                },
            );
        }
        Ok(())
    }

    /// Moves to the next instant and carries out everything due then but the submissions, which
    /// it returns for the caller to make; then [`Simulation::settle`] finishes the instant.
    pub fn begin_instant(&mut self) -> Option<Happened> {
        let now = self.agenda.next_time()?;
        self.world.advance_to(now);
        let mut happened = Happened {
            at: now,
            ..Happened::default()
        };
        while let Some(event) = self.agenda.pop_due(now) {
            match event {
                Event::Submit(i) => happened.due.push(i),
                Event::Gate { namespace, name } => {
                    if let Some(after) = self.world.gate(&namespace, &name) {
                        self.agenda
                            .push(now + after, Event::Gate { namespace, name });
                    }
                }
                Event::Driver(key) => {
                    let Some(run) = self.drivers.get_mut(&key) else {
                        continue;
                    };
                    if run.wake != now {
                        continue;
                    }
                    match driver_round(&mut self.world, run, now) {
                        Some(wake) => {
                            run.wake = wake;
                            self.agenda.push(wake, Event::Driver(key));
                        }
                        None => {
                            let app = format!("{}/{}", run.namespace, run.app_id);
                            self.by_app.remove(&app);
                            self.drivers.remove(&key);
                            happened.finished.push(key);
                        }
                    }
                }
                Event::Retry => self.retry_due = true,
                Event::Terminate => self.world.finish_terminations(now),
            }
        }
        Some(happened)
    }

    /// Ends the instant: a scheduling round if the cluster changed (or a backoff ended) while
    /// a pod waits; drivers that start running start their allocation rounds.
    pub fn settle(&mut self, happened: &mut Happened) {
        let now = happened.at;
        let version = self.world.store.resource_version();
        let changed = version != self.seen_version || std::mem::take(&mut self.retry_due);
        if changed && self.world.has_pods_to_schedule() {
            for (pod, attempt) in self.world.schedule_round() {
                if matches!(attempt, Attempt::Bound(_))
                    && let Some(run) = start_driver(&self.world, &pod, &self.scripts, now)
                {
                    self.agenda.push(run.wake, Event::Driver(pod.clone()));
                    self.by_app
                        .insert(format!("{}/{}", run.namespace, run.app_id), pod.clone());
                    self.drivers.insert(pod.clone(), run);
                }
                happened.attempts.push((pod, attempt));
            }
        }
        self.seen_version = self.world.store.resource_version();
        // A driver resting until its script's next step sees a lost executor at its next tick,
        // as a polling driver would.
        for app in self.world.ledger().take_executors_stopped() {
            let Some(key) = self.by_app.get(&app) else {
                continue;
            };
            let Some(run) = self.drivers.get_mut(key) else {
                continue;
            };
            let tick = run.next_tick(now);
            if tick < run.wake {
                run.wake = tick;
                self.agenda.push(tick, Event::Driver(key.clone()));
            }
        }
        if let Some(end) = self.world.next_termination()
            && self.terminate_at.is_none_or(|t| t <= now || t > end)
        {
            self.agenda.push(end, Event::Terminate);
            self.terminate_at = Some(end);
        }
        if let Some(end) = self.world.next_backoff_end()
            && self.retry_at.is_none_or(|r| r <= now || r > end)
        {
            self.agenda.push(end, Event::Retry);
            self.retry_at = Some(end);
        }
    }
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
    let allocator = Allocator::new(&demand, &script);
    Some(DriverRun {
        namespace: namespace.to_owned(),
        prefix: executor_prefix(&demand, &app_id),
        wake: now + allocator.delay(),
        allocator,
        app_id,
        demand,
        pod,
        started: now,
    })
}

/// One allocation round of a running driver, carried out at once; when the next is due, or
/// `None` when the application ended (its executors deleted, its driver succeeded). Between
/// rounds with nothing to do, it rests until its script's next step (the tick a polling
/// driver would act at), unless an executor is lost first.
fn driver_round(world: &mut World, run: &mut DriverRun, now: Duration) -> Option<Duration> {
    let driver = run.pod.metadata.name.as_deref().unwrap_or("");
    if world
        .pod(&run.namespace, driver)
        .is_none_or(|d| d.metadata.deletion_timestamp.is_some())
    {
        // Evicted (preemption) or deleted: the application ends with its driver, and its
        // executors go with it, as garbage collection would take them.
        for e in world.executors_of(&run.namespace, &run.app_id) {
            world.delete_pod(&run.namespace, e.metadata.name.as_deref().unwrap_or(""));
        }
        return None;
    }
    let executors = world.executors_of(&run.namespace, &run.app_id);
    let views: Vec<ExecutorView> = executors.iter().map(|e| ExecutorView::of(e)).collect();
    let round = run.allocator.round(now.saturating_sub(run.started), &views);
    if round.is_idle()
        && let Some(due) = run.allocator.steady_until(&views)
    {
        // The first tick at or after the step, never sooner than the next.
        let step = (run.started + due).saturating_sub(Duration::from_nanos(1));
        return Some(run.next_tick(step).max(run.next_tick(now)));
    }
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
    Some(run.next_tick(now))
}
