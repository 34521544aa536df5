//! kube-scheduler's cache: the nodes, parsed once per version and indexed; what every bound
//! (or assumed) pod holds on its node; and, per pod shape, the nodes that pass the filters that
//! do not depend on usage (readiness, cordons, node selector and affinity, taints).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PodSpec};
use sparkgang_common::affinity::{
    is_cordoned, is_ready, required_node_match, required_node_selector, tolerates_node_taints,
};
use sparkgang_common::resources::{GpuResourceNames, Resources, node_allocatable};

/// What the scheduler knows of a node: parsed once per version of the node, not once per pod.
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: Arc<str>,
    pub allocatable: Resources,
    /// Why no pod may go there whatever it asks (not ready, cordoned).
    pub unusable: Option<&'static str>,
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

/// One list of nodes in the snapshot's order, with each node's position by name.
#[derive(Default)]
pub struct NodeSet {
    list: Vec<Arc<NodeInfo>>,
    by_name: HashMap<Arc<str>, usize>,
}

impl NodeSet {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn get(&self, i: usize) -> &NodeInfo {
        &self.list[i]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

/// The nodes one pod shape may use whatever their usage, and how many each static filter
/// turned away (kube-scheduler's reasons, counted).
pub struct Eligibility {
    pub nodes: Vec<usize>,
    pub reasons: Vec<(&'static str, usize)>,
}

/// The cache; see the module's comment.
pub struct Cache {
    gpus: GpuResourceNames,
    /// Nodes as parsed, by name, with the resourceVersion parsed.
    parsed: HashMap<String, (Option<String>, Arc<NodeInfo>)>,
    nodes: Arc<NodeSet>,
    /// What each bound or assumed pod holds: uid → (node, requests).
    holding: HashMap<String, (Arc<str>, Resources)>,
    /// The sum of the holdings on each node of `nodes`, by position.
    used: Vec<Resources>,
    /// Eligibility by pod shape (see [`shape_key`]), for the current `nodes`.
    eligibility: HashMap<String, Arc<Eligibility>>,
}

impl Cache {
    pub fn new(gpus: GpuResourceNames) -> Cache {
        Cache {
            gpus,
            parsed: HashMap::new(),
            nodes: Arc::default(),
            holding: HashMap::new(),
            used: Vec::new(),
            eligibility: HashMap::new(),
        }
    }

    pub fn nodes(&self) -> &Arc<NodeSet> {
        &self.nodes
    }

    /// What the holdings use on the node at position `i`.
    pub fn used(&self, i: usize) -> Resources {
        self.used.get(i).copied().unwrap_or_default()
    }

    /// Takes the snapshot's nodes; the same objects in the same order change nothing.
    pub fn set_nodes(&mut self, nodes: &[Arc<Node>]) {
        let same = self.nodes.list.len() == nodes.len()
            && self
                .nodes
                .list
                .iter()
                .zip(nodes)
                .all(|(info, n)| Arc::ptr_eq(&info.node, n));
        if same {
            return;
        }
        if self.parsed.len() > nodes.len() {
            self.parsed.clear();
        }
        let mut set = NodeSet::default();
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let version = &n.metadata.resource_version;
            let info = match self.parsed.get(&name) {
                Some((v, info))
                    if v == version && version.is_some() && Arc::ptr_eq(&info.node, n) =>
                {
                    info.clone()
                }
                Some((v, info)) if v == version && version.is_some() => Arc::new(NodeInfo {
                    node: n.clone(),
                    name: info.name.clone(),
                    allocatable: info.allocatable,
                    unusable: info.unusable,
                }),
                _ => Arc::new(NodeInfo::new(n, &self.gpus)),
            };
            self.parsed.insert(name, (version.clone(), info.clone()));
            set.by_name.insert(info.name.clone(), set.list.len());
            set.list.push(info);
        }
        self.nodes = Arc::new(set);
        self.eligibility.clear();
        self.recount();
    }

    /// Records that pod `uid` holds `requests` on `node` (again: no change).
    pub fn hold(&mut self, uid: &str, node: &str, requests: Resources) {
        if let Some((held_on, held)) = self.holding.get(uid) {
            if **held_on == *node && *held == requests {
                return;
            }
            self.release(uid);
        }
        let name = match self.nodes.index_of(node) {
            Some(i) => {
                self.used[i] += requests;
                self.nodes.list[i].name.clone()
            }
            None => Arc::from(node),
        };
        self.holding.insert(uid.to_owned(), (name, requests));
    }

    /// Pod `uid` holds nothing any more (finished, deleted, or never bound).
    pub fn release(&mut self, uid: &str) {
        if let Some((node, requests)) = self.holding.remove(uid)
            && let Some(i) = self.nodes.index_of(&node)
        {
            self.used[i] -= requests;
        }
    }

    /// Keeps only the holdings of the pods in `keep`.
    pub fn retain(&mut self, keep: &HashSet<&str>) {
        let before = self.holding.len();
        self.holding.retain(|uid, _| keep.contains(uid.as_str()));
        if self.holding.len() != before {
            self.recount();
        }
    }

    fn recount(&mut self) {
        self.used = vec![Resources::default(); self.nodes.len()];
        for (node, requests) in self.holding.values() {
            if let Some(i) = self.nodes.index_of(node) {
                self.used[i] += *requests;
            }
        }
    }

    /// The nodes a pod with this spec passes the static filters on (computed once per shape
    /// and node list).
    pub fn eligibility(&mut self, spec: &PodSpec) -> Arc<Eligibility> {
        let key = shape_key(spec);
        if let Some(e) = self.eligibility.get(&key) {
            return e.clone();
        }
        let mut nodes = Vec::new();
        let mut reasons: Vec<(&'static str, usize)> = Vec::new();
        for (i, n) in self.nodes.list.iter().enumerate() {
            let reason = if let Some(r) = n.unusable {
                r
            } else if !required_node_match(spec, &n.node) {
                "node(s) didn't match Pod's node affinity/selector"
            } else if !tolerates_node_taints(spec, &n.node) {
                "node(s) had untolerated taint"
            } else {
                nodes.push(i);
                continue;
            };
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += 1,
                None => reasons.push((reason, 1)),
            }
        }
        let e = Arc::new(Eligibility { nodes, reasons });
        self.eligibility.insert(key, e.clone());
        e
    }
}

/// What the static filters read of a pod: node selector, required node affinity, tolerations.
fn shape_key(spec: &PodSpec) -> String {
    let affinity = required_node_selector(spec);
    serde_json::to_string(&(&spec.node_selector, affinity, &spec.tolerations)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "resourceVersion": "1", "labels": labels},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .expect("a node"),
        )
    }

    fn spec(selector: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": [], "nodeSelector": selector})).expect("a spec")
    }

    fn cpu(m: i64) -> Resources {
        Resources {
            cpu_milli: m,
            ..Resources::default()
        }
    }

    #[test]
    fn holdings_follow_pods_and_survive_a_new_node_list() {
        let mut c = Cache::new(GpuResourceNames::default());
        c.set_nodes(&[node("a", json!({})), node("b", json!({}))]);
        c.hold("u1", "a", cpu(1000));
        c.hold("u1", "a", cpu(1000));
        c.hold("u2", "b", cpu(500));
        c.hold("u3", "gone", cpu(300));
        assert_eq!((c.used(0), c.used(1)), (cpu(1000), cpu(500)));
        c.hold("u1", "b", cpu(1000));
        assert_eq!((c.used(0), c.used(1)), (cpu(0), cpu(1500)));
        c.set_nodes(&[node("gone", json!({})), node("b", json!({}))]);
        assert_eq!((c.used(0), c.used(1)), (cpu(300), cpu(1500)));
        c.release("u2");
        c.release("never");
        assert_eq!(c.used(1), cpu(1000));
        c.retain(&HashSet::from(["u3"]));
        assert_eq!((c.used(0), c.used(1)), (cpu(300), cpu(0)));
    }

    #[test]
    fn eligibility_is_per_shape_and_counts_the_static_reasons() {
        let mut c = Cache::new(GpuResourceNames::default());
        c.set_nodes(&[
            node("a", json!({"group": "x"})),
            node("b", json!({"group": "y"})),
            node("c", json!({"group": "x"})),
        ]);
        let x = c.eligibility(&spec(json!({"group": "x"})));
        assert_eq!(x.nodes, vec![0, 2]);
        assert_eq!(
            x.reasons,
            vec![("node(s) didn't match Pod's node affinity/selector", 1)]
        );
        assert_eq!(c.eligibility(&spec(json!({"group": "y"}))).nodes, vec![1]);
        assert_eq!(c.eligibility(&spec(json!({}))).nodes, vec![0, 1, 2]);
        c.set_nodes(&[node("c", json!({"group": "x"}))]);
        assert_eq!(c.eligibility(&spec(json!({"group": "x"}))).nodes, vec![0]);
    }
}
