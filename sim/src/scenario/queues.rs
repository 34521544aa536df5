//! Queues in scenarios: the `queues:` key (the `Queue` objects created before the run) and
//! the report's per-queue figures — allocation and dominant share over time, and their time
//! averages — recomputed from what the run saw (reservations and pods in the API), not from
//! the extender's own accounting.

use std::collections::BTreeMap;

use serde::Serialize;
use sparkgang_common::resources::Resources;

use super::ScenarioError;
use crate::history::{History, QueueRecord, State};
use crate::oracle::queues::{apps_by_id, held_by_queue, limits};

/// The API object of a scenario's queue.
pub fn queue_object(q: &QueueRecord) -> serde_json::Value {
    let mut spec = serde_json::json!({"instanceGroup": q.instance_group, "weight": q.weight});
    if !q.guaranteed.is_empty() {
        spec["guaranteed"] = serde_json::json!(q.guaranteed);
    }
    if !q.max.is_empty() {
        spec["max"] = serde_json::json!(q.max);
    }
    if let Some(p) = &q.parent {
        spec["parent"] = serde_json::json!(p);
    }
    if !q.namespaces.is_empty() {
        spec["namespaces"] = serde_json::json!(q.namespaces);
    }
    serde_json::json!({"apiVersion": "sparkgang.io/v1", "kind": "Queue",
        "metadata": {"name": q.name}, "spec": spec})
}

/// One point of a queue's timeline: what it held from `at` on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSample {
    /// Seconds from the start of the run.
    pub at: f64,
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    /// The largest of held ÷ guaranteed over the resources the guarantee names, ÷ weight.
    pub dominant_share: f64,
}

/// A queue over the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReport {
    pub name: String,
    pub instance_group: String,
    pub weight: u32,
    /// The dominant share averaged over the run's duration (time-weighted).
    pub time_averaged_dominant_share: f64,
    /// What the queue held as a fraction of its instance group's allocatable (the larger of
    /// cpu and memory), averaged over the run's duration.
    pub time_averaged_group_share: f64,
    /// What the queue held as a fraction of what all the queues of its instance group held
    /// (cpu), averaged over the time anything was held: its part of the group in use.
    pub time_averaged_share_of_allocated: f64,
    /// Only the points where what it held changed.
    pub timeline: Vec<QueueSample>,
}

/// The per-queue report of a run of `duration` seconds: `label` is the nodes' instance-group
/// label.
pub fn queue_reports(
    specs: &[QueueRecord],
    history: &History,
    duration: f64,
    label: &str,
) -> Result<Vec<QueueReport>, ScenarioError> {
    let apps = apps_by_id(history);
    let mut out = Vec::new();
    let mut states: Vec<(f64, BTreeMap<String, Resources>)> = Vec::new();
    let mut state = State::default();
    for c in &history.changes {
        state.apply(c);
        states.push((c.at, held_by_queue(&state, &apps)));
    }
    for q in specs {
        let guaranteed = limits(q).map_err(ScenarioError::Invalid)?.guaranteed;
        let group = history
            .nodes
            .iter()
            .filter(|n| n.labels.get(label) == Some(&q.instance_group))
            .fold(Resources::ZERO, |acc, n| acc + n.allocatable);
        let share = |h: &Resources| -> f64 {
            let named: Vec<f64> = [h.cpu_milli, h.memory_bytes, h.gpus]
                .into_iter()
                .zip(guaranteed)
                .filter_map(|(v, g)| g.map(|g| (v, g)))
                .filter(|(v, _)| *v > 0)
                .map(|(v, g)| {
                    if g > 0 {
                        v as f64 / g as f64
                    } else {
                        f64::INFINITY
                    }
                })
                .collect();
            let holds = *h != Resources::ZERO;
            let s = if guaranteed.iter().all(Option::is_none) {
                if holds { f64::INFINITY } else { 0.0 }
            } else {
                named.into_iter().fold(0.0, f64::max)
            };
            s / f64::from(q.weight.max(1))
        };
        let of_group = |h: &Resources| -> f64 {
            let frac = |v: i64, of: i64| if of > 0 { v as f64 / of as f64 } else { 0.0 };
            frac(h.cpu_milli, group.cpu_milli).max(frac(h.memory_bytes, group.memory_bytes))
        };
        let siblings: Vec<&str> = specs
            .iter()
            .filter(|s| s.instance_group == q.instance_group)
            .map(|s| s.name.as_str())
            .collect();
        let mut timeline: Vec<QueueSample> = Vec::new();
        let (mut dominant, mut group_share) = (0.0, 0.0);
        let (mut of_allocated, mut busy) = (0.0, 0.0);
        for (i, (at, held)) in states.iter().enumerate() {
            let h = held.get(&q.name).copied().unwrap_or_default();
            let until = states
                .get(i + 1)
                .map_or(duration, |(t, _)| *t)
                .min(duration);
            let span = (until - at).max(0.0);
            let s = share(&h);
            let all: i64 = siblings
                .iter()
                .filter_map(|n| held.get(*n))
                .map(|r| r.cpu_milli)
                .sum();
            if span > 0.0 {
                dominant += if s.is_finite() { s * span } else { 0.0 };
                group_share += of_group(&h) * span;
                if all > 0 {
                    of_allocated += h.cpu_milli as f64 / all as f64 * span;
                    busy += span;
                }
            }
            let sample = QueueSample {
                at: *at,
                cpu_milli: h.cpu_milli,
                memory_bytes: h.memory_bytes,
                dominant_share: s,
            };
            if timeline.last().is_none_or(|l| {
                l.cpu_milli != sample.cpu_milli || l.memory_bytes != sample.memory_bytes
            }) {
                timeline.push(sample);
            }
        }
        let avg = |v: f64| if duration > 0.0 { v / duration } else { 0.0 };
        out.push(QueueReport {
            name: q.name.clone(),
            instance_group: q.instance_group.clone(),
            weight: q.weight,
            time_averaged_dominant_share: avg(dominant),
            time_averaged_group_share: avg(group_share),
            time_averaged_share_of_allocated: if busy > 0.0 { of_allocated / busy } else { 0.0 },
            timeline,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{AppRecord, Change, GangRecord, NodeRecord, PodRecord, ReservationRecord};

    fn app(id: &str, queue: &str) -> AppRecord {
        AppRecord {
            name: id.to_owned(),
            namespace: "spark".to_owned(),
            driver: format!("{id}-driver"),
            app_id: id.to_owned(),
            queue: Some(queue.to_owned()),
            gang: GangRecord {
                driver: Resources::new(1000, 1 << 30, 0),
                executor: Resources::new(2000, 2 << 30, 0),
                min_executors: 1,
                node_selector: BTreeMap::new(),
            },
            ..AppRecord::default()
        }
    }

    fn driver(id: &str) -> PodRecord {
        PodRecord {
            namespace: "spark".to_owned(),
            name: format!("{id}-driver"),
            role: "driver".to_owned(),
            app_id: id.to_owned(),
            node: Some("n1".to_owned()),
            phase: "Running".to_owned(),
            requests: Resources::new(1000, 1 << 30, 0),
            priority: 0,
        }
    }

    fn reservation(id: &str, executors: usize) -> ReservationRecord {
        let mut slots = BTreeMap::from([("driver".to_owned(), "n1".to_owned())]);
        for i in 1..=executors {
            slots.insert(format!("executor-{i}"), "n1".to_owned());
        }
        ReservationRecord {
            namespace: "spark".to_owned(),
            app_id: id.to_owned(),
            slots,
            pods: BTreeMap::new(),
        }
    }

    fn spec(name: &str, cpu: &str, weight: u32) -> QueueRecord {
        QueueRecord {
            name: name.to_owned(),
            instance_group: "batch".to_owned(),
            guaranteed: [("cpu".to_owned(), cpu.to_owned())].into(),
            max: BTreeMap::new(),
            weight,
            parent: None,
            namespaces: Vec::new(),
        }
    }

    /// Queue a holds 3 cpu for the first 10 s of 20; b holds 5 cpu for the last 10 s.
    fn history() -> History {
        History {
            nodes: vec![NodeRecord {
                name: "n1".to_owned(),
                allocatable: Resources::new(10_000, 40 << 30, 0),
                labels: [("instance-group".to_owned(), "batch".to_owned())].into(),
            }],
            apps: vec![app("a1", "a"), app("b1", "b")],
            changes: vec![
                Change {
                    at: 0.0,
                    pods: vec![driver("a1")],
                    reservations: vec![reservation("a1", 1)],
                    ..Change::default()
                },
                Change {
                    at: 10.0,
                    pods: vec![driver("b1")],
                    reservations: vec![reservation("b1", 2)],
                    reservations_gone: vec!["spark/a1".to_owned()],
                    ..Change::default()
                },
            ],
            ..History::default()
        }
    }

    #[test]
    fn shares_are_averaged_over_time_from_the_reservations_seen() {
        let specs = [spec("a", "6", 1), spec("b", "5", 2)];
        let r = queue_reports(&specs, &history(), 20.0, "instance-group").unwrap();
        // a: 3 of 6 cpu (0.5) for half the run → 0.25; of the group's 10 cpu: 0.3 → 0.15.
        assert!(
            (r[0].time_averaged_dominant_share - 0.25).abs() < 1e-9,
            "{r:?}"
        );
        assert!(
            (r[0].time_averaged_group_share - 0.15).abs() < 1e-9,
            "{r:?}"
        );
        // b: 5 of 5 cpu, weight 2 (0.5) for half the run → 0.25; memory 5 of 40 Gi < cpu 0.5.
        assert!(
            (r[1].time_averaged_dominant_share - 0.25).abs() < 1e-9,
            "{r:?}"
        );
        assert!(
            (r[1].time_averaged_group_share - 0.25).abs() < 1e-9,
            "{r:?}"
        );
        assert_eq!(
            r[0].timeline
                .iter()
                .map(|s| (s.at, s.cpu_milli))
                .collect::<Vec<_>>(),
            [(0.0, 3000), (10.0, 0)]
        );
    }

    #[test]
    fn a_misreported_reservation_changes_the_figures() {
        // The oracle-like check must be able to fail: count b1 with one slot fewer.
        let mut h = history();
        h.changes[1].reservations = vec![reservation("b1", 1)];
        let specs = [spec("a", "6", 1), spec("b", "5", 2)];
        let r = queue_reports(&specs, &h, 20.0, "instance-group").unwrap();
        assert!(
            (r[1].time_averaged_dominant_share - 0.25).abs() > 0.01,
            "{r:?}"
        );
    }
}
