//! The invariants a scenario run must keep, each a pure function over its recorded
//! [`History`]. They recompute what they judge from the history alone, with their own
//! arithmetic: never with the scheduling code they check.

mod capacity;
mod fifo;
mod gang;
mod preemption;
pub mod queues;
mod release;
mod slots;

use serde::Serialize;

use crate::history::History;

pub use capacity::no_over_commit;
pub use fifo::{can_ever_fit, fifo_order};
pub use gang::{gang_reserved_before_driver, no_starved_gang};
pub use preemption::preemption_rules;
pub use queues::queue_max;
pub use release::{RELEASE_GRACE, reservations_released};
pub use slots::no_double_booked_slot;

/// The applications the API accepted, each with the keys (`namespace/name`) of its driver pod
/// and of its reservation in a [`crate::history::State`].
fn accepted_apps(history: &History) -> Vec<(&crate::history::AppRecord, String, String)> {
    history
        .apps
        .iter()
        .filter(|a| !a.rejected)
        .map(|a| {
            (
                a,
                format!("{}/{}", a.namespace, a.driver),
                format!("{}/{}", a.namespace, a.app_id),
            )
        })
        .collect()
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Which invariant (the oracle's function name).
    pub invariant: &'static str,
    /// Seconds from the start of the run when it was seen.
    pub at: f64,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{} at {:.1}s] {}",
            self.invariant, self.at, self.message
        )
    }
}

/// Every invariant, in a fixed order. `with_reservations` is false for runs without the
/// extender (the default scheduler alone), where only capacity applies.
pub fn check(history: &History, with_reservations: bool) -> Vec<Violation> {
    type Oracle = fn(&History) -> Vec<Violation>;
    let oracles: &[Oracle] = if with_reservations {
        &[
            no_over_commit,
            no_double_booked_slot,
            gang_reserved_before_driver,
            no_starved_gang,
            reservations_released,
            fifo_order,
            preemption_rules,
            queue_max,
        ]
    } else {
        &[no_over_commit]
    };
    // Each oracle is a pure function of the history: judge them side by side, and keep
    // their findings in the fixed order.
    std::thread::scope(|s| {
        let judging: Vec<_> = oracles.iter().map(|o| s.spawn(|| o(history))).collect();
        judging
            .into_iter()
            .flat_map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Builders of small histories for the oracles' own tests.
#[cfg(test)]
pub(crate) mod build {
    use std::collections::BTreeMap;

    use sparkgang_common::resources::Resources;

    use crate::history::{
        AppRecord, GangRecord, History, NodeRecord, PodRecord, ReservationRecord, State,
    };

    pub fn cpu(cores: i64) -> Resources {
        Resources {
            cpu_milli: cores * 1000,
            memory_bytes: cores << 30,
            gpus: 0,
        }
    }

    pub fn node(name: &str, cores: i64) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            allocatable: cpu(cores),
            labels: BTreeMap::from([("instance-group".to_owned(), "batch".to_owned())]),
        }
    }

    /// App `name` (id `id-<name>`, driver `<name>-driver`): a 1-core driver and `count`
    /// executors of `cores` each, in instance group `batch`.
    pub fn app(name: &str, submitted_at: f64, count: u32, cores: i64) -> AppRecord {
        AppRecord {
            queue: None,
            name: name.into(),
            namespace: "spark".into(),
            driver: format!("{name}-driver"),
            app_id: format!("id-{name}"),
            submitted_at,
            rejected: false,
            gang: GangRecord {
                driver: cpu(1),
                executor: cpu(cores),
                min_executors: count,
                node_selector: BTreeMap::from([("instance-group".to_owned(), "batch".to_owned())]),
            },
        }
    }

    pub fn driver(app: &AppRecord, node: Option<&str>, phase: &str) -> PodRecord {
        PodRecord {
            namespace: app.namespace.clone(),
            name: app.driver.clone(),
            role: "driver".into(),
            app_id: app.app_id.clone(),
            node: node.map(str::to_owned),
            phase: phase.into(),
            requests: app.gang.driver,
            priority: 0,
        }
    }

    pub fn executor(app: &AppRecord, id: u32, node: Option<&str>, phase: &str) -> PodRecord {
        PodRecord {
            namespace: app.namespace.clone(),
            name: format!("{}-exec-{id}", app.name),
            role: "executor".into(),
            app_id: app.app_id.clone(),
            node: node.map(str::to_owned),
            phase: phase.into(),
            requests: app.gang.executor,
            priority: 0,
        }
    }

    /// A reservation of the driver slot and one executor slot per node given.
    pub fn reservation(
        app: &AppRecord,
        driver_node: &str,
        executors: &[&str],
    ) -> ReservationRecord {
        let mut slots = BTreeMap::from([("driver".to_owned(), driver_node.to_owned())]);
        for (i, n) in executors.iter().enumerate() {
            slots.insert(format!("executor-{}", i + 1), (*n).to_owned());
        }
        ReservationRecord {
            namespace: app.namespace.clone(),
            app_id: app.app_id.clone(),
            slots,
            pods: BTreeMap::from([("driver".to_owned(), app.driver.clone())]),
        }
    }

    /// A state at `at` holding `pods` and `reservations`.
    pub fn at(at: f64, pods: Vec<PodRecord>, reservations: Vec<ReservationRecord>) -> State {
        State {
            at,
            pods: pods.into_iter().map(|p| (p.key(), p)).collect(),
            reservations: reservations.into_iter().map(|r| (r.key(), r)).collect(),
            held: BTreeMap::new(),
        }
    }

    pub fn history(nodes: Vec<NodeRecord>, apps: Vec<AppRecord>, states: Vec<State>) -> History {
        let mut h = History {
            nodes,
            apps,
            ..History::default()
        };
        let mut last = State::default();
        for s in states {
            h.record(&mut last, s);
        }
        h
    }

    /// `h` with an API outage of `kind` towards the extender from `from` until `until`.
    pub fn with_outage(mut h: History, kind: &str, from: f64, until: f64) -> History {
        h.outages.push(crate::history::Outage {
            kind: kind.into(),
            from,
            until,
        });
        h
    }
}
