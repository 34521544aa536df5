//! One configuration's replay: the arrivals fed to a [`Simulation`] until everything settled or
//! the horizon, and what each application went through, read from the [`World`]'s ledger as it
//! happens (no history is kept: a replay may hold 100,000 applications).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::Configuration;
use super::report::{
    AppOutcome, ConfigurationReport, ExecutorCount, Percentiles, Summary, UtilisationPoint,
};
use super::workload::Arrival;
use crate::deploy_config::repository_deploy_dir;
use crate::eventlog::nodes::ClusterNode;
use crate::harness::SimError;
use crate::scheduler::Attempt;
use crate::spark::identities;
use crate::virtual_clock::{Simulation, World};

/// At most this many utilisation points per configuration.
const UTILISATION_POINTS: u32 = 2000;

/// The node as the cluster had it, without what the API server sets (uid, resourceVersion,
/// times); `Ready` when its conditions say nothing.
fn node_object(n: &ClusterNode) -> Result<Node, SimError> {
    let status = n.node.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.clone())
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .unwrap_or_else(|| json!([{"type": "Ready", "status": "True"}]));
    serde_json::from_value(json!({
        "metadata": {"name": n.name, "labels": n.labels},
        "spec": {"taints": n.node.spec.as_ref().and_then(|s| s.taints.clone()),
                 "unschedulable": n.unschedulable},
        "status": {"allocatable": status.and_then(|s| s.allocatable.clone()),
                   "conditions": conditions}
    }))
    .map_err(|e| SimError::Client(format!("node {}: {e}", n.name)))
}

/// What one application went through, as it happens.
#[derive(Default)]
struct Story {
    driver_at: Option<Duration>,
    driver_running: bool,
    started_at: Option<Duration>,
    completed_at: Option<Duration>,
    running: u32,
    executors: Vec<ExecutorCount>,
}

/// Replays `arrivals` under `configuration` until every application completed or `horizon`.
pub fn run_configuration(
    configuration: &Configuration,
    arrivals: &[Arrival],
    nodes: &[ClusterNode],
    horizon: Duration,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ConfigurationReport, SimError> {
    let sparkgang = configuration.overrides.is_some();
    let mut world = World::new(
        &repository_deploy_dir(),
        configuration.overrides.as_ref(),
        sparkgang,
    )?;
    let mut namespaces: Vec<&str> = arrivals
        .iter()
        .map(|a| a.submission.namespace.as_str())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let enabled = BTreeMap::from([("sparkgang.io/enabled".to_owned(), "true".to_owned())]);
    for ns in namespaces {
        world.create_namespace(ns, &enabled)?;
    }
    for n in nodes {
        world.create_node(&node_object(n)?)?;
    }
    let capacity = world.ledger().capacity();
    // The applications by the app id their pods carry in this run.
    let mut by_app_id: HashMap<String, usize> = HashMap::new();
    for (i, a) in arrivals.iter().enumerate() {
        by_app_id.insert(identities(&a.submission.name, a.seed).1, i);
    }
    let mut stories: Vec<Story> = arrivals.iter().map(|_| Story::default()).collect();
    let mut reasons: Vec<Option<String>> = vec![None; arrivals.len()];
    let mut drivers: HashMap<String, usize> = HashMap::new();
    let mut sim = Simulation::new(world);
    for (i, a) in arrivals.iter().enumerate() {
        sim.plan(a.at, i);
    }
    let period = (horizon / UTILISATION_POINTS).max(Duration::from_secs(1));
    let mut utilisation: Vec<UtilisationPoint> = Vec::new();
    let share = |used: i64, of: i64| if of > 0 { used as f64 / of as f64 } else { 0.0 };
    let (mut submitted, mut settled) = (0usize, 0usize);
    let mut last_point: Option<Duration> = None;
    while sim.next_time().is_some_and(|t| t <= horizon) {
        let Some(mut happened) = sim.begin_instant() else {
            break;
        };
        let now = happened.at;
        for &i in &happened.due {
            let a = &arrivals[i];
            let (driver, _, _) = identities(&a.submission.name, a.seed);
            drivers.insert(format!("{}/{driver}", a.submission.namespace), i);
            if let Err(e) = sim.submit(&a.submission, a.seed, a.script.clone()) {
                reasons[i] = Some(format!("refused: {e}"));
                settled += 1;
            }
            submitted += 1;
        }
        sim.settle(&mut happened);
        for (pod, attempt) in &happened.attempts {
            if let (Attempt::Unschedulable(m), Some(&i)) = (attempt, drivers.get(pod)) {
                reasons[i] = Some(m.clone());
            }
        }
        for change in sim.world.ledger().take_changes() {
            let Some(&i) = by_app_id.get(&change.app_id) else {
                continue;
            };
            let story = &mut stories[i];
            match (change.role.as_str(), change.holds) {
                ("driver", true) => {
                    story.driver_at.get_or_insert(now);
                    story.driver_running = true;
                }
                ("driver", false) => {
                    story.driver_running = false;
                    if story.completed_at.is_none() {
                        story.completed_at = Some(now);
                        settled += 1;
                    }
                }
                ("executor", holds) => {
                    story.running = if holds {
                        story.running + 1
                    } else {
                        story.running.saturating_sub(1)
                    };
                    let at_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
                    match story.executors.last_mut() {
                        Some(last) if last.at_ms == at_ms => last.running = story.running,
                        _ => story.executors.push(ExecutorCount {
                            at_ms,
                            running: story.running,
                        }),
                    }
                }
                _ => {}
            }
            if story.started_at.is_none()
                && story.driver_running
                && story.running >= arrivals[i].min_executors
            {
                story.started_at = Some(now);
            }
        }
        // A finished application's objects go, as a cleanup controller would remove them.
        for key in &happened.finished {
            if let Some((namespace, name)) = key.split_once('/') {
                sim.world.remove_application(namespace, name);
            }
            drivers.remove(key);
        }
        if last_point.is_none_or(|t| now >= t + period) {
            let used = sim.world.ledger().allocated();
            utilisation.push(UtilisationPoint {
                at: now.as_secs_f64(),
                cpu: share(used.cpu_milli, capacity.cpu_milli),
                memory: share(used.memory_bytes, capacity.memory_bytes),
            });
            last_point = Some(now);
        }
        progress(submitted, arrivals.len());
        if settled == arrivals.len() {
            break;
        }
    }
    progress(submitted, arrivals.len());
    Ok(report(
        configuration,
        arrivals,
        stories,
        reasons,
        utilisation,
        horizon,
        settled == arrivals.len(),
    ))
}

/// The configuration's report from what its applications went through.
fn report(
    configuration: &Configuration,
    arrivals: &[Arrival],
    stories: Vec<Story>,
    reasons: Vec<Option<String>>,
    utilisation: Vec<UtilisationPoint>,
    horizon: Duration,
    all_settled: bool,
) -> ConfigurationReport {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let apps: Vec<AppOutcome> = arrivals
        .iter()
        .zip(stories)
        .zip(reasons)
        .map(|((a, s), reason)| AppOutcome {
            app_id: a.app_id.clone(),
            name: a.name.clone(),
            submitted_at: a.at.as_secs_f64(),
            driver_scheduled_at: secs(s.driver_at),
            started_at: secs(s.started_at),
            wait_seconds: s.started_at.map(|t| (t.saturating_sub(a.at)).as_secs_f64()),
            completed_at: secs(s.completed_at),
            executors: s.executors,
            last_pending_reason: reason,
        })
        .collect();
    let waits: Vec<f64> = apps.iter().filter_map(|a| a.wait_seconds).collect();
    let never_started: Vec<String> = apps
        .iter()
        .filter(|a| a.started_at.is_none())
        .map(|a| a.app_id.clone())
        .collect();
    let makespan = if all_settled {
        apps.iter()
            .filter_map(|a| a.completed_at)
            .fold(0.0, f64::max)
    } else {
        horizon.as_secs_f64()
    };
    let (cpu, memory) = time_weighted_means(&utilisation, makespan);
    ConfigurationReport {
        name: configuration.name.clone(),
        sparkgang: configuration.overrides.is_some(),
        summary: Summary {
            applications: apps.len(),
            started: waits.len(),
            completed: apps.iter().filter(|a| a.completed_at.is_some()).count(),
            never_started: never_started.len(),
            wait_seconds: Percentiles::of(&waits),
            makespan_seconds: makespan,
            mean_cpu_utilisation: cpu,
            mean_memory_utilisation: memory,
        },
        never_started,
        utilisation,
        apps,
    }
}

/// The mean of a step function (each point holds until the next) from 0 to `until`.
fn time_weighted_means(points: &[UtilisationPoint], until: f64) -> (f64, f64) {
    if until <= 0.0 {
        return (0.0, 0.0);
    }
    let (mut cpu, mut memory) = (0.0, 0.0);
    for (i, p) in points.iter().enumerate() {
        let end = points.get(i + 1).map_or(until, |n| n.at).min(until);
        let span = (end - p.at).max(0.0);
        cpu += p.cpu * span;
        memory += p.memory * span;
    }
    (cpu / until, memory / until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_means_weigh_each_level_by_how_long_it_held() {
        let p = |at, cpu| UtilisationPoint {
            at,
            cpu,
            memory: cpu / 2.0,
        };
        // 0.5 for 2 s, then 1.0 for 2 s: 0.75 over 4 s.
        let (cpu, memory) = time_weighted_means(&[p(0.0, 0.5), p(2.0, 1.0)], 4.0);
        assert!((cpu - 0.75).abs() < 1e-9, "{cpu}");
        assert!((memory - 0.375).abs() < 1e-9, "{memory}");
        // Points past the end do not count.
        let (cpu, _) = time_weighted_means(&[p(0.0, 0.5), p(2.0, 1.0), p(9.0, 1.0)], 2.0);
        assert!((cpu - 0.5).abs() < 1e-9, "{cpu}");
        assert_eq!(time_weighted_means(&[], 0.0), (0.0, 0.0));
    }
}
