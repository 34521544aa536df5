//! Runs a scenario on the virtual clock (`--clock virtual`): its submissions fed to a
//! [`Simulation`], its history sampled as the real-time runner samples it, and judged by the
//! same oracles. No wall-clock reads: two runs write the same report.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::report::{self, Report};
use super::run::{fifo_rule, gang_record, namespaces, nodes, run_timeout};
use super::{Mode, Scenario, ScenarioError, check_expectations, expand};
use crate::deploy_config::repository_deploy_dir;
use crate::history::{AppRecord, Change, History};
use crate::oracle;
use crate::scheduler::Attempt;
use crate::spark;
use crate::virtual_clock::{Simulation, World};

/// The history samples the cluster at most this often, as the real-time runner does; each
/// sample holds every change since the previous one.
const SAMPLE_PERIOD: Duration = Duration::from_millis(200);

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
    world.set_pod_termination(scenario.pod_termination()?);
    let enabled = BTreeMap::from([("sparkgang.io/enabled".to_owned(), "true".to_owned())]);
    for ns in namespaces(&plan) {
        world.create_namespace(&ns, &enabled)?;
    }
    let mut history = History {
        fifo: sparkgang.then(|| fifo_rule(scenario)).flatten(),
        clock: "virtual".to_owned(),
        queues: scenario.queues.clone(),
        ..History::default()
    };
    for class in &scenario.priority_classes {
        world.create_priority_class(class.object())?;
    }
    for budget in &scenario.disruption_budgets {
        world.create_disruption_budget(budget.object(), budget.status())?;
    }
    for queue in &scenario.queues {
        world.create_queue(super::queues::queue_object(queue))?;
    }
    for (node, record) in nodes(scenario)? {
        world.create_node(&node)?;
        history.nodes.push(record);
    }
    let mut sim = Simulation::new(world);
    for (i, p) in plan.iter().enumerate() {
        sim.plan(p.at, i);
    }
    let mut reasons: HashMap<String, String> = HashMap::new();
    let mut rejections: HashMap<String, String> = HashMap::new();
    let mut settled = 0usize;
    if let Some(c) = sim.world.sample(0.0) {
        history.changes.push(c);
    }
    let mut now = Duration::ZERO;
    let mut sampled = Duration::ZERO;
    while sim.next_time().is_some_and(|t| t <= timeout) {
        let Some(mut happened) = sim.begin_instant() else {
            break;
        };
        now = happened.at;
        for &i in &happened.due {
            let p = &plan[i];
            let s = &p.submission;
            let (driver, app_id, _) = spark::identities(&s.name, p.seed);
            let mut app = AppRecord {
                queue: p.queue.clone(),
                name: p.name.clone(),
                namespace: s.namespace.clone(),
                driver,
                app_id,
                submitted_at: now.as_secs_f64(),
                rejected: false,
                gang: gang_record(s),
            };
            if let Err(e) = sim.submit(s, p.seed, p.script.clone()) {
                app.rejected = true;
                settled += 1;
                rejections.insert(p.name.clone(), e);
            }
            history.apps.push(app);
        }
        sim.settle(&mut happened);
        settled += happened.finished.len();
        for (pod, attempt) in happened.attempts {
            if let Attempt::Unschedulable(message) = attempt {
                reasons.insert(pod, message);
            }
        }
        let done = settled == plan.len();
        if (done || now >= sampled + SAMPLE_PERIOD)
            && let Some(c) = sim.world.sample(now.as_secs_f64())
        {
            history.changes.push(c);
            sampled = now;
        }
        if done {
            break;
        }
    }
    history.preempted = sim.world.preempted();
    // The run ends at its last instant, or at the timeout when something still waited.
    let end = if settled == plan.len() { now } else { timeout };
    let last = sim.world.sample(end.as_secs_f64()).unwrap_or(Change {
        at: end.as_secs_f64(),
        ..Change::default()
    });
    if history.end() < last.at || !history.changes.last().is_some_and(|c| c.at == last.at) {
        history.changes.push(last);
    }
    let ((apps, nodes), violations) = std::thread::scope(|s| {
        let judged = s.spawn(|| oracle::check(&history, sparkgang));
        let summary = report::summarise(&history, &reasons, &rejections);
        let violations = judged
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (summary, violations)
    });
    let expectation_failures = check_expectations(scenario, &apps);
    Ok(Report {
        queues: scenario.queue_reports(&history, end.as_secs_f64())?,
        scenario: scenario.name.clone(),
        mode: mode.as_str().to_owned(),
        clock: "virtual".to_owned(),
        duration_seconds: end.as_secs_f64(),
        apps,
        nodes,
        violations,
        expectation_failures,
        filter: None,
        preemptions: report::preemptions(&history),
        history,
    })
}
