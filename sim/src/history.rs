//! What a scenario run saw, as plain data: the nodes, the applications submitted, and the
//! cluster's pods and reservations sampled over time (only what changed is kept). The oracles
//! (`crate::oracle`) judge a run from this alone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::ClusterState;
use sparkgang_common::resources::Resources;

/// A recorded run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub nodes: Vec<NodeRecord>,
    pub apps: Vec<AppRecord>,
    /// FIFO per instance group, when the run enabled it.
    pub fifo: Option<FifoRule>,
    /// Samples in time order, each holding only what changed since the previous one.
    pub changes: Vec<Change>,
    /// API server faults injected towards the extender (seconds from the start).
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// The clock the run was on: `real` or `virtual` (histories from before it say nothing:
    /// real).
    #[serde(default = "real_clock")]
    pub clock: String,
    /// Pods evicted for preemption, sorted by pod: they carried `DisruptionTarget` with
    /// reason `PreemptionByScheduler`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preempted: Vec<Preempted>,
    /// The `Queue`s of the run, as created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueRecord>,
}

/// A `Queue` as created (`docs/queues.md`); the scenario key `queues:` is a list of these:
/// `{name: etl, instance_group: batch, guaranteed: {cpu: "32"}, max: {cpu: "64"}, weight: 1,
/// parent: org}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRecord {
    pub name: String,
    pub instance_group: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guaranteed: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Applications of these namespaces belong to the queue without naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

fn one() -> u32 {
    1
}

/// A pod evicted for preemption, and the driver it was evicted for (both `namespace/name`;
/// `by` is empty when the condition's message named none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preempted {
    pub pod: String,
    pub by: String,
    /// Seconds from the start of the run when the pod was first seen marked.
    #[serde(default)]
    pub at: f64,
    /// The pod's requests (what its eviction frees), as seen then: a victim may come and go
    /// between two samples.
    #[serde(default)]
    pub requests: Resources,
}

impl Preempted {
    /// From a pod's key, its `DisruptionTarget` message, which the extender writes as
    /// "… for the gang of driver <namespace>/<name> (priority N)", when it was seen, and its
    /// requests.
    pub fn from_message(pod: String, message: &str, at: f64, requests: Resources) -> Preempted {
        let by = message
            .split_once("driver ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        Preempted {
            pod,
            by,
            at,
            requests,
        }
    }
}

fn real_clock() -> String {
    "real".to_owned()
}

/// A window in which the API server misbehaved towards the extender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub kind: String,
    pub from: f64,
    pub until: f64,
}

impl History {
    /// Whether pod `key` (`namespace/name`) was evicted for preemption.
    pub fn was_preempted(&self, key: &str) -> bool {
        self.preempted
            .binary_search_by(|p| p.pod.as_str().cmp(key))
            .is_ok()
    }

    /// `due` seconds after `from`, not counting time spent in outages: the clock of work only
    /// the extender can do (it cannot write while the API fails it).
    pub fn due_after(&self, from: f64, due: f64) -> f64 {
        let mut windows: Vec<(f64, f64)> = self.outages.iter().map(|o| (o.from, o.until)).collect();
        windows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut at = from + due;
        for (start, end) in windows {
            if start < at && end > from {
                at += end - start.max(from);
            }
        }
        at
    }
}

/// A node as created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub allocatable: Resources,
    pub labels: BTreeMap<String, String>,
}

/// An application as submitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The scenario's name for it.
    pub name: String,
    pub namespace: String,
    /// Driver pod name.
    pub driver: String,
    pub app_id: String,
    /// Seconds from the start of the run.
    pub submitted_at: f64,
    /// The API refused the driver.
    pub rejected: bool,
    /// The queue it names (scenario `apps[].queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    pub gang: GangRecord,
}

/// What the application asks for, as the submitter computed it from its Spark conf.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GangRecord {
    pub driver: Resources,
    pub executor: Resources,
    pub min_executors: u32,
    /// The driver's and executors' node selector.
    pub node_selector: BTreeMap<String, String>,
}

/// FIFO as configured: an older driver blocks younger ones once it waited `enforce_after`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FifoRule {
    pub enforce_after_seconds: f64,
}

/// A pod at one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    /// `spark-role`: `driver` or `executor`.
    pub role: String,
    /// `spark-app-selector`.
    pub app_id: String,
    pub node: Option<String>,
    pub phase: String,
    pub requests: Resources,
    /// `spec.priority`, as the API server resolved it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl PodRecord {
    /// A pod as recorded, with its effective requests (computed once by the caller).
    pub fn of(p: &Pod, requests: Resources) -> PodRecord {
        let labels = p.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k).cloned()).unwrap_or_default();
        PodRecord {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            role: label("spark-role"),
            app_id: label("spark-app-selector"),
            node: p.spec.as_ref().and_then(|sp| sp.node_name.clone()),
            phase: p
                .status
                .as_ref()
                .and_then(|st| st.phase.clone())
                .unwrap_or_default(),
            requests,
            priority: p.spec.as_ref().and_then(|sp| sp.priority).unwrap_or(0),
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn is_finished(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }

    /// Bound and not finished: holds room on its node.
    pub fn holds_room(&self) -> bool {
        self.node.is_some() && !self.is_finished()
    }
}

/// A `ResourceReservation` at one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReservationRecord {
    pub namespace: String,
    pub app_id: String,
    /// Slot name (`driver`, `executor-N`) → node.
    pub slots: BTreeMap<String, String>,
    /// Slot name → the pod holding it.
    pub pods: BTreeMap<String, String>,
}

impl ReservationRecord {
    pub fn of(rr: &ResourceReservation) -> ReservationRecord {
        ReservationRecord {
            namespace: rr.metadata.namespace.clone().unwrap_or_default(),
            app_id: rr.spec.app_id.clone(),
            slots: rr
                .spec
                .reservations
                .iter()
                .map(|(slot, r)| (slot.clone(), r.node.clone()))
                .collect(),
            pods: rr
                .status
                .as_ref()
                .map(|s| s.pods.clone())
                .unwrap_or_default(),
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.app_id)
    }

    pub fn executor_slots(&self) -> usize {
        self.slots.keys().filter(|s| s.as_str() != "driver").count()
    }
}

/// Per node, what the extender holds there: slots, soft reservations and pods no slot covers.
/// Its memory is ahead of its API objects, whose writes follow.
///
/// Room that victims of a preemption still hold while they are evicted is left out: it is
/// promised to the preemptor, whose reservation is counted (the preemptor binds only once the
/// victims are gone, which the bound-pods check sees).
pub fn held_by_node(state: &ClusterState) -> BTreeMap<String, Resources> {
    let releasing = state.releasing_by_node();
    state
        .nodes()
        .map(|n| {
            let held = n.usage.reserved + n.usage.soft + n.usage.pods;
            let going = releasing.get(&n.name).copied().unwrap_or_default();
            (n.name.clone(), held - going)
        })
        .collect()
}

/// What changed at one sample time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Seconds from the start of the run.
    pub at: f64,
    /// Pods new or changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodRecord>,
    /// Keys (`namespace/name`) of pods gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods_gone: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<ReservationRecord>,
    /// Keys (`namespace/app-id`) of reservations gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations_gone: Vec<String>,
    /// Per node, what the extender held there (slots, soft reservations, pods no slot covers)
    /// where that changed; empty when the run had no extender.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<(String, Resources)>,
}

/// The cluster at one sample time, rebuilt from the changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub at: f64,
    pub pods: BTreeMap<String, PodRecord>,
    pub reservations: BTreeMap<String, ReservationRecord>,
    pub held: BTreeMap<String, Resources>,
}

impl State {
    /// Applies one change.
    pub fn apply(&mut self, c: &Change) {
        self.at = c.at;
        for p in &c.pods {
            self.pods.insert(p.key(), p.clone());
        }
        for k in &c.pods_gone {
            self.pods.remove(k);
        }
        for r in &c.reservations {
            self.reservations.insert(r.key(), r.clone());
        }
        for k in &c.reservations_gone {
            self.reservations.remove(k);
        }
        for (n, r) in &c.held {
            self.held.insert(n.clone(), *r);
        }
    }

    /// What changed from `self` to `next`, as a [`Change`] at `next.at`.
    pub fn diff(&self, next: &State) -> Change {
        let changed = |old: Option<&PodRecord>, new: &PodRecord| old != Some(new);
        Change {
            at: next.at,
            pods: next
                .pods
                .iter()
                .filter(|(k, p)| changed(self.pods.get(*k), p))
                .map(|(_, p)| p.clone())
                .collect(),
            pods_gone: self
                .pods
                .keys()
                .filter(|k| !next.pods.contains_key(*k))
                .cloned()
                .collect(),
            reservations: next
                .reservations
                .iter()
                .filter(|(k, r)| self.reservations.get(*k) != Some(*r))
                .map(|(_, r)| r.clone())
                .collect(),
            reservations_gone: self
                .reservations
                .keys()
                .filter(|k| !next.reservations.contains_key(*k))
                .cloned()
                .collect(),
            held: next
                .held
                .iter()
                .filter(|(n, r)| self.held.get(*n) != Some(*r))
                .map(|(n, r)| (n.clone(), *r))
                .collect(),
        }
    }
}

impl History {
    /// Calls `f` with the cluster's state at every sample, in time order; returns the last.
    pub fn replay(&self, mut f: impl FnMut(&State)) -> State {
        let mut state = State::default();
        for c in &self.changes {
            state.apply(c);
            f(&state);
        }
        state
    }

    /// Appends a sample, keeping only what changed since the last one.
    pub fn record(&mut self, last: &mut State, next: State) {
        self.changes.push(last.diff(&next));
        *last = next;
    }

    /// The time of the last sample.
    pub fn end(&self) -> f64 {
        self.changes.last().map_or(0.0, |c| c.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str) -> PodRecord {
        PodRecord {
            namespace: "spark".into(),
            name: name.into(),
            role: "executor".into(),
            app_id: "a".into(),
            node: node.map(str::to_owned),
            phase: phase.into(),
            requests: Resources::default(),
            priority: 0,
        }
    }

    fn state(at: f64, pods: &[PodRecord]) -> State {
        State {
            at,
            pods: pods.iter().map(|p| (p.key(), p.clone())).collect(),
            ..State::default()
        }
    }

    #[test]
    fn replay_rebuilds_every_recorded_state() {
        let states = [
            state(0.0, &[pod("e1", None, "Pending")]),
            state(
                0.2,
                &[pod("e1", Some("n1"), "Running"), pod("e2", None, "")],
            ),
            state(0.4, &[pod("e2", Some("n2"), "Running")]),
            state(0.6, &[]),
        ];
        let mut h = History::default();
        let mut last = State::default();
        for s in &states {
            h.record(&mut last, s.clone());
        }
        // e1 is gone at 0.4: recorded as gone, not as a full list of what is left.
        assert_eq!(h.changes[2].pods_gone, vec!["spark/e1".to_owned()]);
        let mut seen = Vec::new();
        let last = h.replay(|s| seen.push(s.clone()));
        assert_eq!(seen, states.to_vec());
        assert_eq!(Some(&last), states.last());
        assert_eq!(h.end(), 0.6);
    }

    #[test]
    fn unchanged_objects_are_not_recorded_again() {
        let s = state(0.0, &[pod("e1", Some("n1"), "Running")]);
        let mut later = s.clone();
        later.at = 1.0;
        let c = s.diff(&later);
        assert!(c.pods.is_empty() && c.pods_gone.is_empty());
        assert_eq!(c.at, 1.0);
    }
}
