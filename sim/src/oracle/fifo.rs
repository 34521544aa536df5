//! FIFO per instance group, judged on what was placeable: a younger application must not take
//! the room an older one, already enforced and able to fit, is waiting for.

use std::collections::BTreeMap;

use sparkgang_common::resources::Resources;

use super::Violation;
use crate::history::{AppRecord, GangRecord, History, NodeRecord};

/// How long after a younger driver an older one may still be placed without that counting as
/// a jump: kube-scheduler retries an unschedulable pod after at most 10 s of backoff, so an
/// older driver that fits may be tried again only that much later.
pub const BACKOFF_SLACK: f64 = 11.0;

/// `creationTimestamp` has a resolution of one second, and FIFO can only know a driver's age
/// from it: of two drivers submitted less than this apart, neither is known to be older (the
/// extender orders such ties by name, as the API gives it nothing better).
pub const CREATION_RESOLUTION: f64 = 1.0;

/// When the run enabled FIFO: no driver of an instance group (apps with the same node
/// selector) was placed while one ahead of it in the queue, which could fit the group, had
/// waited at least `enforceAfter`, and was not placed within [`BACKOFF_SLACK`] after. Ahead
/// means of higher priority (the drivers' `spec.priority`), or of equal priority and older:
/// submitted at least [`CREATION_RESOLUTION`] earlier.
pub fn fifo_order(history: &History) -> Vec<Violation> {
    let Some(rule) = history.fifo else {
        return Vec::new();
    };
    let mut placed: BTreeMap<&str, f64> = BTreeMap::new();
    let mut priority: BTreeMap<&str, i32> = BTreeMap::new();
    let drivers: Vec<(&AppRecord, String)> = history
        .apps
        .iter()
        .map(|a| (a, format!("{}/{}", a.namespace, a.driver)))
        .collect();
    history.replay(|state| {
        for (a, key) in &drivers {
            if let Some(p) = state.pods.get(key) {
                priority.insert(a.name.as_str(), p.priority);
                if p.node.is_some() {
                    placed.entry(a.name.as_str()).or_insert(state.at);
                }
            }
        }
    });
    let candidates: Vec<&AppRecord> = history
        .apps
        .iter()
        .filter(|a| {
            !a.rejected
                && can_ever_fit(&a.gang, &history.nodes)
                && within_queue_max(a, &history.queues)
        })
        .collect();
    let mut out = Vec::new();
    for young in history.apps.iter().filter(|a| !a.rejected) {
        let Some(&at) = placed.get(young.name.as_str()) else {
            continue;
        };
        for old in &candidates {
            let enforced = old.submitted_at + rule.enforce_after_seconds <= at;
            // With queues, FIFO holds within a queue (across queues the fair order decides).
            let same_group =
                old.gang.node_selector == young.gang.node_selector && old.queue == young.queue;
            let old_placed = placed.get(old.name.as_str()).copied();
            let rank = |a: &AppRecord| priority.get(a.name.as_str()).copied().unwrap_or(0);
            let ahead = rank(old) > rank(young)
                || (rank(old) == rank(young)
                    && young.submitted_at - old.submitted_at >= CREATION_RESOLUTION);
            if !ahead
                || !same_group
                || !enforced
                || old_placed.is_some_and(|t| t <= at + BACKOFF_SLACK)
            {
                continue;
            }
            out.push(Violation {
                invariant: "fifo_order",
                at,
                message: format!(
                    "{} was placed at {at:.1}s while {} (ahead of it: priority {}, submitted at {:.1}s, able to fit) waited until {}",
                    young.name,
                    old.name,
                    rank(old),
                    old.submitted_at,
                    old_placed.map_or("the end".to_owned(), |t| format!("{t:.1}s"))
                ),
            });
        }
    }
    out
}

/// Whether the gang (driver and minimum executors) is within its queue's `max` alone: a gang
/// over it can never be placed for its queue, and holds back nobody.
fn within_queue_max(app: &AppRecord, queues: &[crate::history::QueueRecord]) -> bool {
    let Some(q) = app
        .queue
        .as_deref()
        .and_then(|name| queues.iter().find(|q| q.name == name))
    else {
        return true;
    };
    let Ok(limits) = super::queues::limits(q) else {
        return true;
    };
    let gang = app.gang.driver + app.gang.executor.times(i64::from(app.gang.min_executors));
    super::queues::over(&gang, &limits.max).is_none()
}

/// Whether the gang (driver and minimum executors) fits the nodes its selector allows when
/// they are empty: some node takes the driver, and the executors that fit on every node (the
/// driver's node less the driver) add up to the minimum. Exact for identical executors; its
/// own arithmetic, independent of the bin packing it judges.
pub fn can_ever_fit(gang: &GangRecord, nodes: &[NodeRecord]) -> bool {
    let group: Vec<&NodeRecord> = nodes
        .iter()
        .filter(|n| {
            gang.node_selector
                .iter()
                .all(|(k, v)| n.labels.get(k) == Some(v))
        })
        .collect();
    let need = u64::from(gang.min_executors);
    let everywhere: u64 = group
        .iter()
        .map(|n| executors_in(n.allocatable, gang.executor))
        .fold(0, u64::saturating_add);
    group.iter().any(|d| {
        let left = minus(d.allocatable, gang.driver);
        let fits_driver = left.cpu_milli >= 0 && left.memory_bytes >= 0 && left.gpus >= 0;
        let total = everywhere - executors_in(d.allocatable, gang.executor)
            + executors_in(left, gang.executor);
        fits_driver && total >= need
    })
}

fn minus(a: Resources, b: Resources) -> Resources {
    Resources {
        cpu_milli: a.cpu_milli - b.cpu_milli,
        memory_bytes: a.memory_bytes - b.memory_bytes,
        gpus: a.gpus - b.gpus,
    }
}

/// How many `executor`s fit in `room` (capped so that sums cannot overflow).
fn executors_in(room: Resources, executor: Resources) -> u64 {
    const UNBOUNDED: u64 = 1 << 32;
    let per = |have: i64, each: i64| -> u64 {
        if each <= 0 {
            UNBOUNDED
        } else if have < 0 {
            0
        } else {
            ((have / each) as u64).min(UNBOUNDED)
        }
    };
    per(room.cpu_milli, executor.cpu_milli)
        .min(per(room.memory_bytes, executor.memory_bytes))
        .min(per(room.gpus, executor.gpus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::FifoRule;
    use crate::oracle::build::*;

    fn fifo(mut h: History, enforce_after: f64) -> History {
        h.fifo = Some(FifoRule {
            enforce_after_seconds: enforce_after,
        });
        h
    }

    /// `old` submitted at 0 and `young` at 1; `young` placed at 2, `old` at `old_at`.
    fn two_apps(old: AppRecord, young: AppRecord, old_at: Option<f64>, nodes: usize) -> History {
        let mut states = vec![at(2.0, vec![driver(&young, Some("n0"), "Running")], vec![])];
        if let Some(t) = old_at {
            states.push(at(
                t,
                vec![
                    driver(&young, Some("n0"), "Running"),
                    driver(&old, Some("n1"), "Running"),
                ],
                vec![],
            ));
        } else {
            states.push(at(
                60.0,
                vec![driver(&young, Some("n0"), "Running")],
                vec![],
            ));
        }
        let nodes = (0..nodes).map(|i| node(&format!("n{i}"), 8)).collect();
        history(nodes, vec![old, young], states)
    }

    #[test]
    fn a_younger_app_jumping_a_placeable_older_one_is_caught() {
        let h = fifo(
            two_apps(app("old", 0.0, 2, 4), app("young", 1.0, 1, 4), None, 3),
            0.0,
        );
        let v = fifo_order(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("while old (ahead of it"), "{v:?}");
    }

    /// `first` (submitted at 0) and `second` (at 1) with the given priorities, both pending at
    /// 1 s; `second` placed at 2 s, `first` never.
    fn by_priority(first: i32, second: i32) -> History {
        let a = app("first", 0.0, 1, 4);
        let b = app("second", 1.0, 1, 4);
        let p = |mut r: crate::history::PodRecord, priority| {
            r.priority = priority;
            r
        };
        let states = vec![
            at(
                1.0,
                vec![
                    p(driver(&a, None, "Pending"), first),
                    p(driver(&b, None, "Pending"), second),
                ],
                vec![],
            ),
            at(
                2.0,
                vec![
                    p(driver(&a, None, "Pending"), first),
                    p(driver(&b, Some("n0"), "Running"), second),
                ],
                vec![],
            ),
        ];
        fifo(
            history(
                (0..3).map(|i| node(&format!("n{i}"), 8)).collect(),
                vec![a, b],
                states,
            ),
            0.0,
        )
    }

    #[test]
    fn a_higher_priority_app_goes_before_an_older_one() {
        assert_eq!(fifo_order(&by_priority(0, 1000)), vec![]);
        // Equal priorities: FIFO.
        assert_eq!(fifo_order(&by_priority(5, 5)).len(), 1);
    }

    #[test]
    fn a_lower_priority_app_jumping_a_waiting_higher_one_is_caught() {
        let h = by_priority(1000, 0);
        let v = fifo_order(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("while first (ahead of it: priority 1000"),
            "{v:?}"
        );
    }

    #[test]
    fn apps_submitted_within_one_second_are_not_ordered() {
        // Created in what may be one second of creationTimestamp: no age to go by.
        let h = fifo(
            two_apps(app("old", 0.0, 2, 4), app("young", 0.4, 1, 4), None, 3),
            0.0,
        );
        assert_eq!(fifo_order(&h), vec![]);
    }

    #[test]
    fn an_older_app_placed_within_the_backoff_is_fine() {
        let h = fifo(
            two_apps(app("old", 0.0, 2, 4), app("young", 1.0, 1, 4), Some(9.0), 3),
            0.0,
        );
        assert_eq!(fifo_order(&h), vec![]);
    }

    #[test]
    fn an_app_that_can_never_fit_does_not_block() {
        // 40 executors of 4 cores on three 8-core nodes: never.
        let h = fifo(
            two_apps(app("huge", 0.0, 40, 4), app("small", 1.0, 1, 4), None, 3),
            0.0,
        );
        assert_eq!(fifo_order(&h), vec![]);
    }

    #[test]
    fn an_app_not_yet_enforced_does_not_block() {
        let h = fifo(
            two_apps(app("old", 0.0, 2, 4), app("young", 1.0, 1, 4), None, 3),
            8.0,
        );
        assert_eq!(fifo_order(&h), vec![]);
    }

    #[test]
    fn other_instance_groups_and_runs_without_fifo_are_not_judged() {
        let mut other = app("old", 0.0, 2, 4);
        other
            .gang
            .node_selector
            .insert("instance-group".into(), "other".into());
        let mut h = two_apps(other, app("young", 1.0, 1, 4), None, 3);
        h.nodes[1]
            .labels
            .insert("instance-group".into(), "other".into());
        assert_eq!(fifo_order(&fifo(h, 0.0)), vec![]);
        let h = two_apps(app("old", 0.0, 2, 4), app("young", 1.0, 1, 4), None, 3);
        assert_eq!(fifo_order(&h), vec![]);
    }

    #[test]
    fn can_ever_fit_counts_room_left_beside_the_driver() {
        let nodes = vec![node("n0", 8), node("n1", 8)];
        // Driver 1 core; executors of 4 cores: 1 beside the driver + 2 on the other node.
        assert!(can_ever_fit(&app("a", 0.0, 3, 4).gang, &nodes));
        assert!(!can_ever_fit(&app("a", 0.0, 4, 4).gang, &nodes));
        // An executor larger than any node.
        assert!(!can_ever_fit(&app("a", 0.0, 1, 9).gang, &nodes));
        // No executors: the driver alone.
        assert!(can_ever_fit(&app("a", 0.0, 0, 4).gang, &nodes));
        // The selector matches no node.
        let mut elsewhere = app("a", 0.0, 0, 4).gang;
        elsewhere
            .node_selector
            .insert("instance-group".into(), "gpu".into());
        assert!(!can_ever_fit(&elsewhere, &nodes));
    }
}
