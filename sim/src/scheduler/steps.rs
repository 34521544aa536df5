//! kube-scheduler's loop for one profile as pure steps over a snapshot: which pods to try, in
//! which order, the in-tree filters, what the extender's answer means, and the backoff. The
//! real-time shell ([`super::run`]) and the virtual clock drive the same core; time is passed
//! in as an offset from the start of the run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use sparkgang_common::api::extender::ExtenderFilterResult;
use sparkgang_common::pods::{is_finished, node_name, scheduler_name};
use sparkgang_common::resources::{GpuResourceNames, Resources, pod_requests};

use super::Attempt;
use super::cache::{Cache, NodeSet};

/// What the core needs of the scheduler's configuration.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub scheduler_name: String,
    pub gpus: GpuResourceNames,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Default)]
struct Backoff {
    attempts: u32,
    until: Option<Duration>,
}

/// The scheduler's own bookkeeping between rounds.
pub struct SchedulerCore {
    settings: CoreSettings,
    backoff: HashMap<String, Backoff>,
    /// Pods bound by this scheduler and not yet seen bound in a snapshot, by uid. Like
    /// kube-scheduler's assumed pods, their requests count on their node (in the cache) until a
    /// snapshot shows the pod bound, finished or gone.
    assumed: HashSet<String>,
    /// Each pod's effective requests by uid (a pod's requests never change).
    requests: HashMap<String, Resources>,
    cache: Cache,
}

/// One round: the nodes as parsed and the pods to try in order.
pub struct Round {
    nodes: Arc<NodeSet>,
    pub queue: Vec<Arc<Pod>>,
}

/// A pod through the in-tree filters.
pub struct Filtered {
    pub requests: Resources,
    /// Positions in the round's nodes of those that passed, in the snapshot's order.
    candidates: Vec<usize>,
    reasons: BTreeMap<String, usize>,
}

impl Filtered {
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The names of the nodes that passed (what a `nodeCacheCapable` extender is asked about).
    pub fn names<'r>(&self, round: &'r Round) -> Vec<&'r str> {
        self.candidates
            .iter()
            .map(|&i| &*round.nodes.get(i).name)
            .collect()
    }

    /// The nodes that passed, as objects (what any other extender is asked about).
    pub fn nodes<'r>(&self, round: &'r Round) -> Vec<&'r Node> {
        self.candidates
            .iter()
            .map(|&i| &*round.nodes.get(i).node)
            .collect()
    }
}

/// `namespace/name`.
pub fn pod_key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

impl SchedulerCore {
    pub fn new(settings: CoreSettings) -> SchedulerCore {
        SchedulerCore {
            cache: Cache::new(settings.gpus.clone()),
            settings,
            backoff: HashMap::new(),
            assumed: HashSet::new(),
            requests: HashMap::new(),
        }
    }

    fn requests_of(&mut self, pod: &Pod) -> Resources {
        let gpus = &self.settings.gpus;
        let compute = || {
            pod.spec
                .as_ref()
                .and_then(|s| pod_requests(s, gpus).ok())
                .unwrap_or_default()
        };
        match &pod.metadata.uid {
            Some(uid) => *self.requests.entry(uid.clone()).or_insert_with(compute),
            None => compute(),
        }
    }

    /// Starts a round over a full snapshot at `now`: usage per node (bound, unfinished pods and
    /// assumed bindings) and the queue — ours, unbound, not gated, not backing off — by
    /// priority, then creation time, then name.
    pub fn begin(&mut self, pods: &[Arc<Pod>], nodes: &[Arc<Node>], now: Duration) -> Round {
        let mut waiting: Vec<Arc<Pod>> = Vec::new();
        let mut present: HashSet<&str> = HashSet::new();
        for p in pods {
            let Some(uid) = p.metadata.uid.as_deref() else {
                continue;
            };
            if is_finished(p) {
                continue;
            }
            match node_name(p) {
                Some(n) => {
                    let r = self.requests_of(p);
                    self.cache.hold(uid, n, r);
                    present.insert(uid);
                }
                None => {
                    waiting.push(p.clone());
                    if self.assumed.contains(uid) {
                        present.insert(uid);
                    }
                }
            }
        }
        // What holds nothing any more: finished, gone, or an assumption the snapshot ended.
        self.cache.retain(&present);
        // Forget the requests of pods gone, once there are more entries than pods.
        if self.requests.len() > pods.len() {
            let present: HashSet<&str> = pods
                .iter()
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect();
            self.requests
                .retain(|uid, _| present.contains(uid.as_str()));
        }
        self.begin_with(nodes, &waiting, now)
    }

    /// A pod as a watch delivers it, for a caller that keeps the snapshot itself as
    /// kube-scheduler's cache does: a bound pod holds its requests on its node until it
    /// finishes or is [forgotten](Self::forget).
    pub fn observe(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        if is_finished(pod) {
            self.forget(uid);
        } else if let Some(node) = node_name(pod) {
            let r = self.requests_of(pod);
            self.cache.hold(uid, node, r);
        }
    }

    /// [`SchedulerCore::begin`] for a caller that keeps the snapshot itself and feeds pods to
    /// [`SchedulerCore::observe`]: `waiting` is every pod that is neither bound nor finished.
    pub fn begin_with(
        &mut self,
        nodes: &[Arc<Node>],
        waiting: &[Arc<Pod>],
        now: Duration,
    ) -> Round {
        self.cache.set_nodes(nodes);
        // An assumption ends when a snapshot shows the pod bound, finished or gone.
        if !self.assumed.is_empty() {
            let uids: HashSet<&str> = waiting
                .iter()
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect();
            self.assumed.retain(|uid| uids.contains(uid.as_str()));
        }
        // A pod bound, finished or gone leaves the queue, and its backoff with it.
        if !self.backoff.is_empty() {
            let keys: HashSet<String> = waiting.iter().map(|p| pod_key(p)).collect();
            self.backoff.retain(|key, _| keys.contains(key));
        }
        let mut queue: Vec<Arc<Pod>> = waiting
            .iter()
            .filter(|p| {
                scheduler_name(p) == self.settings.scheduler_name
                    && node_name(p).is_none()
                    && p.metadata.deletion_timestamp.is_none()
                    && !is_finished(p)
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.scheduling_gates.as_ref())
                        .is_none_or(|g| g.is_empty())
                    && p.metadata
                        .uid
                        .as_ref()
                        .is_some_and(|u| !self.assumed.contains(u))
            })
            .filter(|p| self.is_due(&pod_key(p), now))
            .cloned()
            .collect();
        queue.sort_by_cached_key(|p| {
            (
                std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                pod_key(p),
            )
        });
        Round {
            nodes: self.cache.nodes().clone(),
            queue,
        }
    }

    /// The in-tree filters for one pod of the round: readiness and cordons, node selector and
    /// required affinity, taints, resources.
    pub fn filter(&mut self, round: &Round, pod: &Pod) -> Result<Filtered, String> {
        let requests = self.requests_of(pod);
        let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
        let eligible = self.cache.eligibility(spec);
        let mut candidates = Vec::with_capacity(eligible.nodes.len());
        let mut short = [0usize; 3];
        for &i in &eligible.nodes {
            let free = round.nodes.get(i).allocatable - self.cache.used(i);
            match insufficient(&requests, &free) {
                Some(r) => short[r] += 1,
                None => candidates.push(i),
            }
        }
        let mut reasons: BTreeMap<String, usize> = eligible
            .reasons
            .iter()
            .map(|(r, n)| ((*r).to_owned(), *n))
            .collect();
        for (r, n) in INSUFFICIENT.iter().zip(short) {
            if n > 0 {
                reasons.insert((*r).to_owned(), n);
            }
        }
        Ok(Filtered {
            requests,
            candidates,
            reasons,
        })
    }

    /// Forgets what the core remembers of a pod that is gone or finished (its requests, and
    /// what it held on its node).
    pub fn forget(&mut self, uid: &str) {
        self.requests.remove(uid);
        self.cache.release(uid);
    }

    /// The node to bind to after the extender's answer (`None`: no extender), or why none.
    /// As kube-scheduler, the answer's `NodeNames` count only for a `nodeCacheCapable`
    /// extender; otherwise its `Nodes` do.
    pub fn choose(
        &self,
        round: &Round,
        filtered: Filtered,
        extender: Option<Result<ExtenderFilterResult, String>>,
        node_cache_capable: bool,
    ) -> Result<String, String> {
        let Filtered {
            mut candidates,
            mut reasons,
            ..
        } = filtered;
        match extender {
            None => {}
            Some(Err(e)) => return Err(e),
            Some(Ok(result)) => {
                let failed = result
                    .failed_nodes
                    .iter()
                    .flatten()
                    .chain(result.failed_and_unresolvable_nodes.iter().flatten())
                    .map(|(_, m)| m);
                for m in failed {
                    *reasons.entry(m.clone()).or_default() += 1;
                }
                let chosen = match (node_cache_capable, result.node_names, result.nodes) {
                    (true, Some(names), _) => names,
                    (_, _, Some(nodes)) => nodes
                        .items
                        .into_iter()
                        .filter_map(|n| n.metadata.name)
                        .collect(),
                    _ => Vec::new(),
                };
                let mut offered = Vec::with_capacity(chosen.len());
                for name in &chosen {
                    match round.nodes.index_of(name) {
                        Some(i) if candidates.binary_search(&i).is_ok() => offered.push(i),
                        _ => {
                            return Err(format!(
                                "extender claims a filtered node {name} which is not found in the input node list"
                            ));
                        }
                    }
                }
                candidates = offered;
            }
        }
        candidates
            .iter()
            .map(|&i| &round.nodes.get(i).name)
            .min()
            .map(|n| n.to_string())
            .ok_or_else(|| unavailable(round, &reasons))
    }

    /// Why the pod cannot go anywhere when the extender turned down every candidate with one
    /// `message`: the words [`SchedulerCore::choose`] would say for that answer.
    pub fn refuse(&self, round: &Round, filtered: Filtered, message: &str) -> String {
        let Filtered {
            candidates,
            mut reasons,
            ..
        } = filtered;
        if !candidates.is_empty() {
            *reasons.entry(message.to_owned()).or_default() += candidates.len();
        }
        unavailable(round, &reasons)
    }

    /// Records an attempt's outcome at `now`: a binding is assumed and uses its node from now
    /// on; a failure backs off (initial doubling to max).
    pub fn record(&mut self, pod: &Pod, requests: Resources, attempt: &Attempt, now: Duration) {
        let key = pod_key(pod);
        match attempt {
            Attempt::Bound(node) => {
                self.backoff.remove(&key);
                if let Some(uid) = &pod.metadata.uid {
                    self.cache.hold(uid, node, requests);
                    self.assumed.insert(uid.clone());
                }
            }
            Attempt::Unschedulable(_) => {
                let b = self.backoff.entry(key).or_default();
                b.attempts += 1;
                let delay = self
                    .settings
                    .initial_backoff
                    .saturating_mul(1 << (b.attempts - 1).min(16))
                    .min(self.settings.max_backoff);
                b.until = Some(now + delay);
            }
        }
    }

    /// Whether the pod `namespace/name` is out of backoff at `now` (or never failed).
    pub fn is_due(&self, key: &str, now: Duration) -> bool {
        self.backoff
            .get(key)
            .and_then(|b| b.until)
            .is_none_or(|until| until <= now)
    }

    /// When the next pod comes out of backoff after `now`, if any waits.
    pub fn next_backoff_end(&self, now: Duration) -> Option<Duration> {
        self.backoff
            .values()
            .filter_map(|b| b.until)
            .filter(|until| *until > now)
            .min()
    }
}

/// kube-scheduler's FailedScheduling words: `0/N nodes are available: <count> <reason>, …`.
fn unavailable(round: &Round, reasons: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "0/{} nodes are available: {}.",
        round.nodes.len(),
        parts.join(", ")
    )
}

const INSUFFICIENT: [&str; 3] = [
    "Insufficient cpu",
    "Insufficient memory",
    "Insufficient nvidia.com/gpu",
];

/// Which of [`INSUFFICIENT`] keeps a pod with `requests` off a node with `free`, if any.
fn insufficient(requests: &Resources, free: &Resources) -> Option<usize> {
    if requests.cpu_milli > free.cpu_milli {
        Some(0)
    } else if requests.memory_bytes > free.memory_bytes {
        Some(1)
    } else if requests.gpus > free.gpus {
        Some(2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .expect("a node"),
        )
    }

    fn pod() -> Arc<Pod> {
        pod_named("p")
    }

    fn pod_named(name: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
                "spec": {"schedulerName": "s", "containers": [{"name": "c",
                    "resources": {"requests": {"cpu": "1"}}}]}
            }))
            .expect("a pod"),
        )
    }

    fn core() -> SchedulerCore {
        SchedulerCore::new(CoreSettings {
            scheduler_name: "s".into(),
            gpus: GpuResourceNames::default(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        })
    }

    #[test]
    fn node_names_count_only_from_a_node_cache_capable_extender() {
        let mut c = core();
        let nodes = [node("a"), node("b")];
        let round = c.begin(&[pod()], &nodes, Duration::ZERO);
        let answer = || {
            Some(Ok(ExtenderFilterResult {
                node_names: Some(vec!["b".into()]),
                ..Default::default()
            }))
        };
        let filtered = c.filter(&round, &pod()).expect("filtered");
        assert_eq!(c.choose(&round, filtered, answer(), true), Ok("b".into()));
        let filtered = c.filter(&round, &pod()).expect("filtered");
        let refused = c.choose(&round, filtered, answer(), false);
        assert!(refused.is_err(), "{refused:?}");
        let filtered = c.filter(&round, &pod()).expect("filtered");
        let objects = Some(Ok(ExtenderFilterResult::node_objects(vec!["a".into()])));
        assert_eq!(c.choose(&round, filtered, objects, false), Ok("a".into()));
    }

    #[test]
    fn refusing_says_what_choose_says_when_the_extender_fails_every_candidate() {
        let mut c = core();
        let nodes = [node("a"), node("b")];
        let round = c.begin(&[pod()], &nodes, Duration::ZERO);
        let filtered = c.filter(&round, &pod()).expect("filtered");
        let answer = ExtenderFilterResult::all_failed(&filtered.names(&round), "no room");
        let chosen = c.choose(&round, filtered, Some(Ok(answer)), true);
        let filtered = c.filter(&round, &pod()).expect("filtered");
        let refused = c.refuse(&round, filtered, "no room");
        assert_eq!(refused, "0/2 nodes are available: 2 no room.");
        assert_eq!(chosen, Err(refused));
    }

    #[test]
    fn a_binding_holds_its_node_until_a_snapshot_shows_the_pod_gone() {
        let mut c = core();
        let nodes = [node("a")];
        let pods: Vec<Arc<Pod>> = (0..9).map(|i| pod_named(&format!("p{i}"))).collect();
        let round = c.begin(&pods, &nodes, Duration::ZERO);
        for p in &pods[..8] {
            let filtered = c.filter(&round, p).expect("filtered");
            let requests = filtered.requests;
            let node = c.choose(&round, filtered, None, true).expect("room");
            c.record(p, requests, &Attempt::Bound(node), Duration::ZERO);
        }
        let full = c.filter(&round, &pods[8]).expect("filtered");
        assert_eq!(
            c.choose(&round, full, None, true),
            Err("0/1 nodes are available: 1 Insufficient cpu.".to_owned())
        );
        let round = c.begin(&pods[8..], &nodes, Duration::ZERO);
        let filtered = c.filter(&round, &pods[8]).expect("filtered");
        assert_eq!(c.choose(&round, filtered, None, true), Ok("a".into()));
    }

    #[test]
    fn failures_back_off_doubling_to_the_maximum() {
        let mut c = core();
        let nodes = [node("a")];
        let p = pod();
        for (attempt, wait) in [(1u64, 1u64), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10)] {
            let now = Duration::from_secs(100 * attempt);
            let round = c.begin(std::slice::from_ref(&p), &nodes, now);
            assert_eq!(round.queue.len(), 1, "attempt {attempt} is due");
            c.record(
                &p,
                Resources::default(),
                &Attempt::Unschedulable("no".into()),
                now,
            );
            let end = now + Duration::from_secs(wait);
            assert_eq!(c.next_backoff_end(now), Some(end));
            assert_eq!(c.next_backoff_end(end), None, "nothing waits past its end");
            let early = c.begin(
                std::slice::from_ref(&p),
                &nodes,
                now + Duration::from_millis(500),
            );
            assert!(early.queue.is_empty(), "backing off");
        }
    }
}
