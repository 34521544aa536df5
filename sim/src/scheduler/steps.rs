//! kube-scheduler's loop for one profile as pure steps over a snapshot: which pods to try, in
//! which order, the in-tree filters, what the extender's answer means, and the backoff. The
//! real-time shell ([`super::run`]) and the virtual clock drive the same core; time is passed
//! in as an offset from the start of the run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use sparkgang_common::affinity::{
    is_cordoned, is_ready, required_node_match, tolerates_node_taints,
};
use sparkgang_common::api::extender::ExtenderFilterResult;
use sparkgang_common::pods::{is_finished, node_name, scheduler_name};
use sparkgang_common::resources::{GpuResourceNames, Resources, node_allocatable, pod_requests};

use super::Attempt;

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

/// What a round knows of a node: parsed once per version of the node, not once per pod.
struct NodeInfo {
    node: Arc<Node>,
    name: Arc<str>,
    allocatable: Resources,
    /// Why no pod may go there whatever it asks (not ready, cordoned).
    unusable: Option<&'static str>,
}

impl NodeInfo {
    fn new(node: &Arc<Node>, gpus: &GpuResourceNames) -> NodeInfo {
        NodeInfo {
            node: node.clone(),
            name: Arc::from(node.metadata.name.as_deref().unwrap_or_default()),
            allocatable: node_allocatable(node, gpus).unwrap_or_default(),
            unusable: if !is_ready(node) {
                Some("node(s) were not ready")
            } else if is_cordoned(node) {
                Some("node(s) were unschedulable")
            } else {
                None
            },
        }
    }
}

/// The scheduler's own bookkeeping between rounds.
pub struct SchedulerCore {
    settings: CoreSettings,
    backoff: HashMap<String, Backoff>,
    /// Bindings made but not yet seen in a snapshot: pod uid → (node, requests). Like
    /// kube-scheduler's assumed pods, an entry ends when a snapshot shows the pod bound, or
    /// when the pod is gone or finished.
    assumed: HashMap<String, (String, Resources)>,
    /// Each pod's effective requests by uid (a pod's requests never change).
    requests: HashMap<String, Resources>,
    /// Nodes as parsed, by name, with the resourceVersion parsed.
    node_infos: HashMap<String, (Option<String>, Arc<NodeInfo>)>,
    /// The last round's node list (reused while the nodes are the same objects).
    node_list: Vec<Arc<NodeInfo>>,
}

/// One round: the nodes as parsed, what is used on them, and the pods to try in order.
pub struct Round {
    nodes: Vec<Arc<NodeInfo>>,
    used: HashMap<String, Resources>,
    pub queue: Vec<Arc<Pod>>,
}

/// A pod through the in-tree filters.
pub struct Filtered {
    pub requests: Resources,
    /// Nodes that passed, and their names (what the extender is asked about).
    pub feasible: Vec<Arc<Node>>,
    pub candidates: Vec<Arc<str>>,
    reasons: BTreeMap<String, usize>,
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
            settings,
            backoff: HashMap::new(),
            assumed: HashMap::new(),
            requests: HashMap::new(),
            node_infos: HashMap::new(),
            node_list: Vec::new(),
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

    /// Starts a round over a snapshot at `now`: usage per node (bound, unfinished pods and
    /// assumed bindings) and the queue — ours, unbound, not gated, not backing off — by
    /// priority, then creation time, then name.
    pub fn begin(&mut self, pods: &[Arc<Pod>], nodes: &[Arc<Node>], now: Duration) -> Round {
        let mut used: HashMap<String, Resources> = HashMap::new();
        let mut waiting: Vec<Arc<Pod>> = Vec::new();
        for p in pods {
            if p.metadata.uid.is_none() || is_finished(p) {
                continue;
            }
            match node_name(p) {
                Some(n) => {
                    let r = self.requests_of(p);
                    *used.entry(n.to_owned()).or_default() += r;
                }
                None => waiting.push(p.clone()),
            }
        }
        // Forget the requests of pods gone, once there are more entries than pods.
        if self.requests.len() > pods.len() {
            let present: HashSet<&str> = pods
                .iter()
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect();
            self.requests
                .retain(|uid, _| present.contains(uid.as_str()));
        }
        self.begin_with(nodes, used, &waiting, now)
    }

    /// [`SchedulerCore::begin`] for a caller that keeps the snapshot itself, as
    /// kube-scheduler's cache does: `used` per node by bound, unfinished pods, and `waiting`,
    /// every pod that is neither bound nor finished.
    pub fn begin_with(
        &mut self,
        nodes: &[Arc<Node>],
        mut used: HashMap<String, Resources>,
        waiting: &[Arc<Pod>],
        now: Duration,
    ) -> Round {
        let nodes = self.node_infos(nodes);
        let uids: HashSet<&str> = waiting
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        // An assumption ends when a snapshot shows the pod bound, finished or gone.
        self.assumed.retain(|uid, _| uids.contains(uid.as_str()));
        // A pod bound, finished or gone leaves the queue, and its backoff with it.
        if !self.backoff.is_empty() {
            let keys: HashSet<String> = waiting.iter().map(|p| pod_key(p)).collect();
            self.backoff.retain(|key, _| keys.contains(key));
        }
        for (node, r) in self.assumed.values() {
            *used.entry(node.clone()).or_default() += *r;
        }
        let pods = waiting;
        let mut queue: Vec<Arc<Pod>> = pods
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
                        .is_some_and(|u| !self.assumed.contains_key(u))
            })
            .filter(|p| {
                self.backoff
                    .get(&pod_key(p))
                    .and_then(|b| b.until)
                    .is_none_or(|until| until <= now)
            })
            .cloned()
            .collect();
        queue.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                pod_key(p),
            )
        });
        Round { nodes, used, queue }
    }

    /// The in-tree filters for one pod of the round: readiness and cordons, node selector and
    /// required affinity, taints, resources.
    pub fn filter(&mut self, round: &Round, pod: &Pod) -> Result<Filtered, String> {
        let requests = self.requests_of(pod);
        let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
        let mut in_tree: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut feasible = Vec::new();
        let mut candidates = Vec::new();
        for n in &round.nodes {
            let reason = if let Some(r) = n.unusable {
                Some(r)
            } else if !required_node_match(spec, &n.node) {
                Some("node(s) didn't match Pod's node affinity/selector")
            } else if !tolerates_node_taints(spec, &n.node) {
                Some("node(s) had untolerated taint")
            } else {
                let free = n.allocatable - round.used.get(&*n.name).copied().unwrap_or_default();
                insufficient(&requests, &free)
            };
            match reason {
                Some(r) => *in_tree.entry(r).or_default() += 1,
                None => {
                    feasible.push(n.node.clone());
                    candidates.push(n.name.clone());
                }
            }
        }
        let reasons = in_tree
            .into_iter()
            .map(|(r, n)| (r.to_owned(), n))
            .collect();
        Ok(Filtered {
            requests,
            feasible,
            candidates,
            reasons,
        })
    }

    /// The nodes as parsed, each once per version; the whole list again when it is the same.
    fn node_infos(&mut self, nodes: &[Arc<Node>]) -> Vec<Arc<NodeInfo>> {
        let same = self.node_list.len() == nodes.len()
            && self
                .node_list
                .iter()
                .zip(nodes)
                .all(|(info, n)| Arc::ptr_eq(&info.node, n));
        if same {
            return self.node_list.clone();
        }
        let gpus = &self.settings.gpus;
        let cache = &mut self.node_infos;
        if cache.len() > nodes.len() {
            cache.clear();
        }
        let list: Vec<Arc<NodeInfo>> = nodes
            .iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let version = &n.metadata.resource_version;
                match cache.get(&name) {
                    Some((v, info)) if v == version && version.is_some() => info.clone(),
                    _ => {
                        let info = Arc::new(NodeInfo::new(n, gpus));
                        cache.insert(name, (version.clone(), info.clone()));
                        info
                    }
                }
            })
            .collect();
        self.node_list = list.clone();
        list
    }

    /// Forgets what the core remembers of a pod that is gone or finished (its requests).
    pub fn forget(&mut self, uid: &str) {
        self.requests.remove(uid);
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
                if let Some(bad) = chosen
                    .iter()
                    .find(|n| !candidates.iter().any(|c| **c == ***n))
                {
                    return Err(format!(
                        "extender claims a filtered node {bad} which is not found in the input node list"
                    ));
                }
                candidates = chosen.into_iter().map(Arc::from).collect();
            }
        }
        candidates
            .into_iter()
            .min()
            .map(|n| n.to_string())
            .ok_or_else(|| {
                let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                format!(
                    "0/{} nodes are available: {}.",
                    round.nodes.len(),
                    parts.join(", ")
                )
            })
    }

    /// Records an attempt's outcome at `now`: a binding is assumed and uses its node for the
    /// rest of the round; a failure backs off (initial doubling to max).
    pub fn record(
        &mut self,
        round: &mut Round,
        pod: &Pod,
        requests: Resources,
        attempt: &Attempt,
        now: Duration,
    ) {
        let key = pod_key(pod);
        match attempt {
            Attempt::Bound(node) => {
                self.backoff.remove(&key);
                *round.used.entry(node.clone()).or_default() += requests;
                if let Some(uid) = &pod.metadata.uid {
                    self.assumed.insert(uid.clone(), (node.clone(), requests));
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

fn insufficient(requests: &Resources, free: &Resources) -> Option<&'static str> {
    if requests.cpu_milli > free.cpu_milli {
        Some("Insufficient cpu")
    } else if requests.memory_bytes > free.memory_bytes {
        Some("Insufficient memory")
    } else if requests.gpus > free.gpus {
        Some("Insufficient nvidia.com/gpu")
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
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
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
    fn failures_back_off_doubling_to_the_maximum() {
        let mut c = core();
        let nodes = [node("a")];
        let p = pod();
        for (attempt, wait) in [(1u64, 1u64), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10)] {
            let now = Duration::from_secs(100 * attempt);
            let mut round = c.begin(std::slice::from_ref(&p), &nodes, now);
            assert_eq!(round.queue.len(), 1, "attempt {attempt} is due");
            c.record(
                &mut round,
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
