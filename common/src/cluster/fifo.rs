//! The queue per instance group: a driver waits while one ahead of it (of higher priority, or of
//! equal priority and older) is enforced and cannot fit.
//!
//! The queue of pending drivers is simulated in queue order against the current free
//! capacity: each older driver that fits takes its (simulated) place, so the drivers behind it
//! see less; one that does not fit takes nothing. The simulation is cached per instance group
//! and only recomputed when capacity or the queue changed, and only as far as the driver being
//! decided (palantir re-packed every older driver on every call, and under-counted what each
//! took: its quirks 1 and 2, both fixed here).

use std::cmp::Reverse;
use std::collections::HashMap;

use crate::api::explain::Blocker;
use crate::resources::Resources;

use super::Timestamp;
use super::keys::PodKey;
use super::nodes::NodeIdx;

/// The pending drivers that are ordered among themselves: those of one instance group (`""`
/// for drivers without one) and, when Queue objects exist, of one queue of it. Lanes of a
/// group sort together (by queue), so a group's lanes are one range.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Lane {
    pub group: String,
    pub queue: Option<String>,
}

impl Lane {
    /// The first lane of `group` (for ranges over a group's lanes).
    pub fn first_of(group: &str) -> Lane {
        Lane {
            group: group.to_owned(),
            queue: None,
        }
    }
}

/// A pending driver's place in its instance group's queue: higher priority first, then older
/// first (FIFO within a priority), then by name so that the order is total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct QueuePosition {
    pub rank: Reverse<i32>,
    pub created: Timestamp,
    pub key: PodKey,
}

impl QueuePosition {
    pub fn new(priority: i32, created: Timestamp, key: PodKey) -> Self {
        QueuePosition {
            rank: Reverse(priority),
            created,
            key,
        }
    }

    pub fn priority(&self) -> i32 {
        self.rank.0
    }
}

/// The simulated outcome of one driver ahead in the queue.
#[derive(Debug, Clone)]
pub(super) struct PlannedDriver {
    pub at: QueuePosition,
    pub app_id: String,
    /// What it would take per node if it fits; `None` if it does not fit now.
    pub takes: Option<Vec<(NodeIdx, Resources)>>,
    /// Why it does not fit (empty when it fits).
    pub why: String,
    /// The state epoch it was simulated at.
    pub computed_at: u64,
    /// It held a reservation when simulated (and so took nothing more).
    pub reserved: bool,
    /// It does not fit its queue's limits (not the capacity): it holds back its own queue,
    /// not other queues.
    pub queue_limited: bool,
    /// The fingerprint of what other lanes took when it was simulated.
    pub seed: u64,
    /// Its gang could not fit its nodes even empty (it takes nothing and blocks nobody), as
    /// of node shape epoch `shape_epoch`.
    pub never_fits: bool,
    pub shape_epoch: u64,
}

/// The simulated queue of one instance group.
#[derive(Debug, Clone, Default)]
pub(super) struct FifoPlan {
    /// Simulated drivers, oldest first (a prefix of the queue, as last seen).
    pub drivers: Vec<PlannedDriver>,
    /// The first queue position where a driver joined or left the
    /// queue, or gained or lost its reservation, since the plan was last walked past it
    /// (`None`: no such change). Before it, `drivers` still matches the queue driver for
    /// driver, so the walk needs no lookups there.
    pub changed_from: Option<QueuePosition>,
    /// What other lanes took before this one at the last walk (a fingerprint): a driver that
    /// did not fit then is simulated again when it differs.
    pub seed: u64,
}

/// Cached plans by lane.
#[derive(Debug, Default)]
pub(super) struct FifoPlans {
    pub plans: HashMap<Lane, FifoPlan>,
    /// Two driver pods claimed one application at some point: a reservation change can then
    /// not be traced to one queue position, so plans are always checked driver by driver.
    pub shared_app_ids: bool,
    /// Older drivers simulated since the state was created (diagnostics and tests).
    pub simulations: u64,
    /// What the drivers walked so far take, per node (reused between walks).
    pub taken: Taken,
}

impl FifoPlans {
    /// A driver at `at` in `lane` joined or left it, or its reservation appeared or
    /// disappeared.
    pub fn changed(&mut self, lane: &Lane, at: &QueuePosition) {
        if let Some(plan) = self.plans.get_mut(lane)
            && plan.changed_from.as_ref().is_none_or(|c| at < c)
        {
            plan.changed_from = Some(at.clone());
        }
    }
}

/// Resources taken per node by the drivers walked so far: a dense table by node index, and
/// the nodes touched (so resetting costs what was taken, not the node count).
#[derive(Debug, Default)]
pub(super) struct Taken {
    per_node: Vec<Resources>,
    touched_mark: Vec<bool>,
    touched: Vec<NodeIdx>,
}

impl Taken {
    /// Empties the table, sized for `nodes` nodes.
    pub fn reset(&mut self, nodes: usize) {
        for &n in &self.touched {
            self.per_node[n] = Resources::ZERO;
            self.touched_mark[n] = false;
        }
        self.touched.clear();
        if self.per_node.len() < nodes {
            self.per_node.resize(nodes, Resources::ZERO);
            self.touched_mark.resize(nodes, false);
        }
    }

    /// What is taken on node `n` so far.
    pub fn on(&self, n: NodeIdx) -> Resources {
        self.per_node.get(n).copied().unwrap_or_default()
    }

    /// Adds one driver's takes.
    pub fn add(&mut self, takes: &[(NodeIdx, Resources)]) {
        for &(n, r) in takes {
            if n >= self.per_node.len() {
                self.per_node.resize(n + 1, Resources::ZERO);
                self.touched_mark.resize(n + 1, false);
            }
            self.per_node[n] += r;
            if !self.touched_mark[n] {
                self.touched_mark[n] = true;
                self.touched.push(n);
            }
        }
    }

    /// `(node, taken)` for every node something was taken from, in order of first take.
    pub fn per_node(&self) -> Vec<(NodeIdx, Resources)> {
        self.touched
            .iter()
            .map(|&n| (n, self.per_node[n]))
            .collect()
    }
}

/// A fingerprint of what other lanes took (`seed` of [`FifoPlan`]).
pub(super) fn seed_fingerprint(seed: &[(NodeIdx, Resources)]) -> u64 {
    use std::hash::{Hash, Hasher};
    if seed.is_empty() {
        return 0;
    }
    let mut sorted = seed.to_vec();
    sorted.sort_unstable_by_key(|&(n, _)| n);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    h.finish() | 1
}

/// The total of per-node takes.
pub(super) fn total(takes: &[(NodeIdx, Resources)]) -> Resources {
    takes.iter().fold(Resources::ZERO, |acc, &(_, r)| acc + r)
}

/// What FIFO says about a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FifoVerdict {
    /// Go ahead; older drivers that fit will take these resources first (per node).
    Clear(Vec<(NodeIdx, Resources)>),
    /// An older driver must be placed first.
    Blocked(Box<FifoBlock>),
}

/// The driver that holds a queue back, as data and in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FifoBlock {
    pub blocker: Blocker,
    pub message: String,
    /// It is held back by its queue's limits, not by capacity (it blocks only its own lane).
    pub queue_limited: bool,
    /// What the drivers before it took, seed included (per node).
    pub taken: Vec<(NodeIdx, Resources)>,
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    use crate::api::GANG_DEMAND_ANNOTATION;
    use crate::cluster::{ClusterState, FifoPolicy, PodKey, SchedulerConfig, Timestamp};
    use crate::{GangDemand, Resources};

    fn node(i: usize) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": format!("node-{i}"),
                "labels": {"topology.kubernetes.io/zone": format!("zone-{}", i % 2)}},
            "status": {"allocatable": {"cpu": "16", "memory": "64Gi"},
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    fn driver(app: &str, created_minute: u32) -> Pod {
        let demand = GangDemand {
            driver: Resources::new(1000, 1 << 30, 0),
            executor: Resources::new(2000, 4 << 30, 0),
            min_executors: 4,
            max_executors: 4,
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
                "uid": format!("uid-{app}"),
                "creationTimestamp": format!("2026-01-01T00:{created_minute:02}:00Z"),
                "labels": {"spark-role": "driver", "spark-app-id": app},
                "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).unwrap()}},
            "spec": {"schedulerName": "spark-scheduler",
                "containers": [{"name": "driver",
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
        }))
        .unwrap()
    }

    fn state(pending: u32) -> (ClusterState, Vec<String>) {
        let mut state = ClusterState::new(SchedulerConfig {
            fifo: FifoPolicy {
                enabled: true,
                ..FifoPolicy::default()
            },
            ..SchedulerConfig::default()
        });
        let names: Vec<String> = (0..16).map(|i| format!("node-{i}")).collect();
        for i in 0..16 {
            state.apply_node(&node(i));
        }
        for p in 0..pending {
            state.apply_pod(&driver(&format!("pending-{p:02}"), p));
        }
        (state, names)
    }

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    /// `prepare` builds the plan before readiness: the first decision after it simulates no
    /// older driver, and decides as a state without the warm-up does.
    #[test]
    fn the_first_decision_after_prepare_does_not_rebuild_the_plan() {
        let (mut warm, names) = state(20);
        let young = driver("young", 59);
        warm.apply_pod(&young);
        warm.prepare(now());
        // Every pending driver but the youngest is older than another one.
        assert_eq!(warm.fifo_simulations(), 21);
        let before = warm.fifo_simulations();
        let decision = warm.filter(&young, &names, now());
        assert_eq!(warm.fifo_simulations(), before, "the plan was rebuilt");

        let (mut cold, _) = state(20);
        cold.apply_pod(&young);
        let expected = cold.filter(&young, &names, now());
        assert_eq!(cold.fifo_simulations(), 20);
        assert_eq!(decision.node, expected.node);
        assert!(decision.node.is_some(), "{}", decision.message);
    }

    /// A driver leaving the middle of the queue re-simulates only the drivers after it; one
    /// that joins behind the decided driver changes nothing before it.
    #[test]
    fn queue_changes_re_simulate_from_where_they_happened() {
        let (mut s, names) = state(20);
        let young = driver("young", 59);
        s.apply_pod(&young);
        s.prepare(now());
        let base = s.fifo_simulations();
        s.delete_pod(&PodKey::new("spark", "pending-10-driver"));
        s.apply_pod(&driver("zz-later", 59));
        let decision = s.filter(&young, &names, now());
        assert!(decision.node.is_some(), "{}", decision.message);
        // pending-11 .. pending-19 are simulated again (their positions moved).
        assert_eq!(s.fifo_simulations() - base, 9);
    }
}

#[cfg(test)]
mod queue_tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use crate::api::GANG_DEMAND_ANNOTATION;
    use crate::cluster::{ClusterState, FifoPolicy, SchedulerConfig, Timestamp};
    use crate::{GangDemand, Resources};

    fn driver(app: &str, second: u32, executors: u32, node: Option<&str>, phase: &str) -> Pod {
        let demand = GangDemand {
            driver: Resources::new(1000, 1 << 30, 0),
            executor: Resources::new(4000, 2 << 30, 0),
            min_executors: executors,
            max_executors: executors,
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
                "uid": format!("uid-{app}"),
                "creationTimestamp": format!("2026-01-01T00:00:{second:02}Z"),
                "labels": {"spark-role": "driver", "spark-app-id": app},
                "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).unwrap()}},
            "spec": {"schedulerName": "spark-scheduler", "nodeName": node,
                "containers": [{"name": "driver",
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn t(s: u32) -> Timestamp {
        format!("2026-01-01T00:00:{s:02}Z").parse().unwrap()
    }

    /// A driver that left the queue (placed, then finished) does not stay in the plan of the
    /// drivers behind it (the `fifo-enforce-after-age` scenario of sim/).
    #[test]
    fn a_younger_driver_goes_once_the_older_one_is_done() {
        let mut s = ClusterState::new(SchedulerConfig {
            fifo: FifoPolicy {
                enabled: true,
                enforce_after: std::time::Duration::from_secs(8),
                ..FifoPolicy::default()
            },
            ..SchedulerConfig::default()
        });
        for i in 0..2 {
            s.apply_node(
                &serde_json::from_value(json!({
                    "metadata": {"name": format!("n-{i}"), "labels": {"topology.kubernetes.io/zone": "z1"}},
                    "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                        "conditions": [{"type": "Ready", "status": "True"}]}
                }))
                .unwrap(),
            );
        }
        let names = vec!["n-0".to_owned(), "n-1".to_owned()];
        // filler holds 9 cpu.
        let filler = driver("filler", 0, 2, None, "Pending");
        assert!(s.filter(&filler, &names, t(0)).node.is_some());
        let n = s
            .reservation(&crate::cluster::AppKey::new("spark", "filler"))
            .unwrap()
            .driver_node()
            .unwrap()
            .to_owned();
        s.apply_pod(&driver("filler", 0, 2, Some(&n), "Running"));
        let big = driver("big", 1, 3, None, "Pending");
        s.apply_pod(&big);
        let late = driver("late", 11, 1, None, "Pending");
        s.apply_pod(&late);
        let d = s.filter(&late, &names, t(12));
        assert!(d.node.is_none(), "late blocked: {}", d.message);
        let d = s.filter(&big, &names, t(13));
        assert!(d.node.is_none(), "big does not fit: {}", d.message);
        // filler completes.
        s.apply_pod(&driver("filler", 0, 2, Some(&n), "Succeeded"));
        let d = s.filter(&late, &names, t(18));
        assert!(d.node.is_none(), "late waits for big: {}", d.message);
        let d = s.filter(&big, &names, t(20));
        let bn = d.node.clone().expect("big placed");
        s.apply_pod(&driver("big", 1, 3, Some(&bn), "Running"));
        let d = s.filter(&late, &names, t(21));
        assert!(d.node.is_none(), "no room beside big: {}", d.message);
        s.apply_pod(&driver("big", 1, 3, Some(&bn), "Succeeded"));
        let d = s.filter(&late, &names, t(30));
        assert!(d.node.is_some(), "late after big: {}", d.message);
    }
}

#[cfg(test)]
mod priority_tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use crate::api::GANG_DEMAND_ANNOTATION;
    use crate::cluster::{ClusterState, FifoPolicy, SchedulerConfig, Timestamp};
    use crate::{GangDemand, Resources};

    /// A pending driver created at `second` whose gang needs `executors` × 4 cpu besides its
    /// own 1 cpu.
    fn driver(app: &str, second: u32, priority: Option<i32>, executors: u32) -> Pod {
        let demand = GangDemand {
            driver: Resources::new(1000, 1 << 30, 0),
            executor: Resources::new(4000, 2 << 30, 0),
            min_executors: executors,
            max_executors: executors,
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
                "uid": format!("uid-{app}"),
                "creationTimestamp": format!("2026-01-01T00:00:{second:02}Z"),
                "labels": {"spark-role": "driver", "spark-app-id": app},
                "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).unwrap()}},
            "spec": {"schedulerName": "spark-scheduler", "priority": priority,
                "containers": [{"name": "driver",
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
        }))
        .unwrap()
    }

    /// One 8-cpu node with 4 cpu used by another pod, FIFO enforced from the first second: a
    /// gang with one executor (5 cpu) does not fit now but would on the empty node.
    fn state() -> (ClusterState, Vec<String>) {
        let mut s = ClusterState::new(SchedulerConfig {
            fifo: FifoPolicy {
                enabled: true,
                enforce_after: std::time::Duration::ZERO,
                ..FifoPolicy::default()
            },
            ..SchedulerConfig::default()
        });
        s.apply_node(
            &serde_json::from_value(json!({
                "metadata": {"name": "n-0"},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                    "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .unwrap(),
        );
        s.apply_pod(
            &serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default", "uid": "uid-web"},
                "spec": {"nodeName": "n-0", "containers": [{"name": "web",
                    "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}]},
                "status": {"phase": "Running"}
            }))
            .unwrap(),
        );
        (s, vec!["n-0".to_owned()])
    }

    fn t(s: u32) -> Timestamp {
        format!("2026-01-01T00:00:{s:02}Z").parse().unwrap()
    }

    /// An older driver that cannot fit blocks younger ones of its priority, not a younger one
    /// of higher priority.
    #[test]
    fn a_higher_priority_driver_is_not_blocked_by_an_older_lower_one() {
        let (mut s, names) = state();
        let old_big = driver("old-big", 0, Some(10), 1); // 5 cpu: does not fit now
        s.apply_pod(&old_big);
        let same = driver("same", 1, Some(10), 0);
        let d = s.filter(&same, &names, t(5));
        assert!(d.node.is_none(), "equal priority waits: {}", d.message);
        assert!(
            d.message.contains("the older application old-big"),
            "{}",
            d.message
        );
        let urgent = driver("urgent", 2, Some(1000), 0);
        let d = s.filter(&urgent, &names, t(5));
        assert!(
            d.node.is_some(),
            "higher priority goes first: {}",
            d.message
        );
    }

    /// A younger driver of higher priority that cannot fit blocks older drivers of lower
    /// priority, and the message says why.
    #[test]
    fn a_lower_priority_driver_waits_for_a_younger_higher_one() {
        let (mut s, names) = state();
        let urgent_big = driver("urgent-big", 3, Some(1000), 1);
        s.apply_pod(&urgent_big);
        let older_low = driver("older-low", 0, None, 0);
        let d = s.filter(&older_low, &names, t(5));
        assert!(d.node.is_none(), "{}", d.message);
        assert!(
            d.message
                .contains("waiting for application urgent-big of higher priority 1000"),
            "{}",
            d.message
        );
    }

    /// Without priorities the queue is the FIFO it always was: 0 for every driver.
    #[test]
    fn no_priority_is_priority_zero() {
        let (mut s, names) = state();
        s.apply_pod(&driver("zero", 0, Some(0), 1));
        let d = s.filter(&driver("unset", 1, None, 0), &names, t(5));
        assert!(d.node.is_none(), "{}", d.message);
        assert!(
            d.message.contains("the older application zero"),
            "{}",
            d.message
        );
    }
}
