//! `queue_max`: no queue ever held more than its `max`. And what a queue holds, recomputed from
//! the run's reservations and pods (its own arithmetic, not the extender's): each reservation
//! of its applications — the driver slot at the driver's size, each executor slot at the
//! executor's — plus, per application, the executors running beyond its executor slots (above
//! the dynamic-allocation minimum). A reservation whose driver has finished, is gone, or was
//! evicted is left out: the extender releases it then, and its API object may lag. An
//! application's queue is its label's (`AppRecord::queue`), else the first queue (by name)
//! listing its namespace. Reclaim (`preemption_rules`) and the report's shares use it.

use std::collections::BTreeMap;

use sparkgang_common::quantities::{parse_count, parse_cpu_millis, parse_memory_bytes};
use sparkgang_common::resources::Resources;

use super::Violation;
use crate::history::{AppRecord, History, QueueRecord, State};

const INVARIANT: &str = "queue_max";

/// A queue's limits per resource (cpu millicores, memory bytes, GPUs); `None`: not named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub guaranteed: [Option<i64>; 3],
    pub max: [Option<i64>; 3],
}

fn parse(
    field: &str,
    q: &QueueRecord,
    list: &BTreeMap<String, String>,
) -> Result<[Option<i64>; 3], String> {
    let mut out = [None; 3];
    for (k, v) in list {
        let bad = |e: String| format!("queues.{}.{field}.{k}: {e}", q.name);
        match k.as_str() {
            "cpu" => out[0] = Some(parse_cpu_millis(v).map_err(|e| bad(e.to_string()))?),
            "memory" => out[1] = Some(parse_memory_bytes(v).map_err(|e| bad(e.to_string()))?),
            _ => out[2] = Some(parse_count(v).map_err(|e| bad(e.to_string()))?),
        }
    }
    Ok(out)
}

/// The limits of `q`, or which quantity is unreadable.
pub fn limits(q: &QueueRecord) -> Result<Limits, String> {
    Ok(Limits {
        guaranteed: parse("guaranteed", q, &q.guaranteed)?,
        max: parse("max", q, &q.max)?,
    })
}

fn dims(r: &Resources) -> [i64; 3] {
    [r.cpu_milli, r.memory_bytes, r.gpus]
}

/// The first resource where `held` is over `limit`, as `(index, held, limit)`.
pub fn over(held: &Resources, limit: &[Option<i64>; 3]) -> Option<(usize, i64, i64)> {
    dims(held)
        .into_iter()
        .zip(limit)
        .enumerate()
        .find_map(|(i, (h, l))| l.filter(|l| h > *l).map(|l| (i, h, l)))
}

/// The name of resource index `i` of [`over`].
pub fn resource_name(i: usize) -> &'static str {
    ["cpu", "memory", "gpus"][i]
}

/// The run's view of its applications: by `(namespace, app id)`, each with its queue, and the
/// pods evicted for preemption (`namespace/name` → when seen).
pub struct Apps<'h> {
    by_id: BTreeMap<(&'h str, &'h str), (&'h AppRecord, Option<&'h str>)>,
    evicted: BTreeMap<&'h str, f64>,
}

/// See [`Apps`].
pub fn apps_by_id(history: &History) -> Apps<'_> {
    let mut queues: Vec<&QueueRecord> = history.queues.iter().collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let by_id = history
        .apps
        .iter()
        .map(|a| {
            let queue = a.queue.as_deref().or_else(|| {
                queues
                    .iter()
                    .find(|q| q.namespaces.contains(&a.namespace))
                    .map(|q| q.name.as_str())
            });
            ((a.namespace.as_str(), a.app_id.as_str()), (a, queue))
        })
        .collect();
    let evicted = history
        .preempted
        .iter()
        .map(|p| (p.pod.as_str(), p.at))
        .collect();
    Apps { by_id, evicted }
}

impl Apps<'_> {
    /// The queue of application `app_id` of `namespace`.
    pub fn queue_of(&self, namespace: &str, app_id: &str) -> Option<&str> {
        self.by_id.get(&(namespace, app_id)).and_then(|(_, q)| *q)
    }
}

/// What each queue held in `state` (see the module documentation).
pub fn held_by_queue(state: &State, apps: &Apps<'_>) -> BTreeMap<String, Resources> {
    let mut running: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for p in state.pods.values() {
        if p.role == "executor"
            && p.node.is_some()
            && matches!(p.phase.as_str(), "Pending" | "Running")
        {
            *running
                .entry((p.namespace.as_str(), p.app_id.as_str()))
                .or_default() += 1;
        }
    }
    let mut held: BTreeMap<String, Resources> = BTreeMap::new();
    for r in state.reservations.values() {
        let id = (r.namespace.as_str(), r.app_id.as_str());
        let Some(&(app, Some(queue))) = apps.by_id.get(&id) else {
            continue;
        };
        let driver = format!("{}/{}", app.namespace, app.driver);
        let released = match state.pods.get(&driver) {
            None => true,
            Some(d) => d.is_finished(),
        } || apps
            .evicted
            .get(driver.as_str())
            .is_some_and(|t| *t <= state.at);
        if released {
            continue;
        }
        let executor_slots = r.slots.keys().filter(|s| s.as_str() != "driver").count() as i64;
        let beyond = (running.get(&id).copied().unwrap_or(0) - executor_slots).max(0);
        let h = held.entry(queue.to_owned()).or_default();
        *h += app.gang.executor.times(executor_slots + beyond);
        if r.slots.contains_key("driver") {
            *h += app.gang.driver;
        }
    }
    held
}

/// See the module documentation.
pub fn queue_max(history: &History) -> Vec<Violation> {
    if history.queues.is_empty() {
        return Vec::new();
    }
    let apps = apps_by_id(history);
    let limits: Vec<(&QueueRecord, Limits)> = history
        .queues
        .iter()
        .filter_map(|q| limits(q).ok().map(|l| (q, l)))
        .collect();
    let mut out = Vec::new();
    // One finding per queue: the first sample over its max.
    let mut reported: Vec<&str> = Vec::new();
    history.replay(|state| {
        let held = held_by_queue(state, &apps);
        for (q, l) in &limits {
            let h = held.get(&q.name).copied().unwrap_or_default();
            if let Some((i, h, max)) = over(&h, &l.max)
                && !reported.contains(&q.name.as_str())
            {
                reported.push(q.name.as_str());
                out.push(Violation {
                    invariant: INVARIANT,
                    at: state.at,
                    message: format!(
                        "queue {} held {} {h} with a max of {max}",
                        q.name,
                        resource_name(i)
                    ),
                });
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::build::*;

    fn queue(name: &str, max_cores: i64) -> QueueRecord {
        QueueRecord {
            name: name.into(),
            instance_group: "batch".into(),
            max: [("cpu".to_owned(), max_cores.to_string())].into(),
            weight: 1,
            ..QueueRecord::default()
        }
    }

    fn in_queue(mut a: AppRecord, q: &str) -> AppRecord {
        a.queue = Some(q.into());
        a
    }

    /// Two apps of queue etl (1-core driver, 2 executors of 2 cores: 5 cores each).
    fn run(max_cores: i64, extra_executor: bool) -> History {
        let a = in_queue(app("a", 0.0, 2, 2), "etl");
        let b = in_queue(app("b", 1.0, 2, 2), "etl");
        let mut pods = vec![
            driver(&a, Some("n0"), "Running"),
            executor(&a, 1, Some("n0"), "Running"),
            executor(&a, 2, Some("n0"), "Running"),
            driver(&b, Some("n1"), "Running"),
        ];
        if extra_executor {
            pods.push(executor(&a, 3, Some("n1"), "Running"));
        }
        let states = vec![at(
            2.0,
            pods,
            vec![
                reservation(&a, "n0", &["n0", "n0"]),
                reservation(&b, "n1", &["n1", "n1"]),
            ],
        )];
        let mut h = history(vec![node("n0", 8), node("n1", 8)], vec![a, b], states);
        h.queues = vec![queue("etl", max_cores)];
        h
    }

    #[test]
    fn a_queue_within_its_max_is_fine() {
        assert_eq!(queue_max(&run(10, false)), vec![]);
    }

    #[test]
    fn a_queue_over_its_max_is_caught() {
        let v = queue_max(&run(9, false));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].message, "queue etl held cpu 10000 with a max of 9000");
    }

    #[test]
    fn executors_beyond_the_slots_count_against_the_queue() {
        let h = run(10, true);
        let held = held_by_queue(&h.replay(|_| {}), &apps_by_id(&h));
        assert_eq!(held["etl"].cpu_milli, 12_000);
        assert_eq!(queue_max(&h).len(), 1);
    }
}
