//! The node table: allocatable, usage and the bin-packing view of every node, by stable index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::affinity;
use crate::binpack::{CandidateNode, zone_of};
use crate::resources::{GpuResourceNames, Resources, node_allocatable};

use super::Timestamp;

/// What is held on a node, by kind of holder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Bound, unfinished pods that no reservation accounts for (and the part of covered pods
    /// that exceeds their slot).
    pub pods: Resources,
    /// The part of `pods` from pods not scheduled by sparkgang (not ours to reorganise).
    pub foreign_pods: Resources,
    /// Reservation slots placed here, bound or not.
    pub reserved: Resources,
    /// Soft reservations (executors above the minimum) placed here.
    pub soft: Resources,
}

/// One node.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub name: String,
    /// False for a node only known from a pod or slot that names it (or one that was deleted).
    pub present: bool,
    pub allocatable: Resources,
    pub usage: NodeUsage,
    pub created: Option<Timestamp>,
    /// Name, labels and taints: what affinity and toleration checks read.
    pub(super) matcher: Node,
}

impl NodeEntry {
    /// Allocatable minus everything held on the node.
    pub fn available(&self) -> Resources {
        self.allocatable - self.usage.pods - self.usage.reserved - self.usage.soft
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.matcher.metadata.labels.as_ref()
    }
}

/// Index of a node in the table; stable for the node's lifetime.
pub type NodeIdx = usize;

/// All nodes, with the bin-packing view kept in step.
#[derive(Debug, Default)]
pub struct NodeTable {
    entries: Vec<NodeEntry>,
    candidates: Vec<CandidateNode>,
    by_name: HashMap<String, NodeIdx, BuildHasherDefault<NameHasher>>,
    /// Every node, fullest first: (available memory, available cpu, name, index), kept in step
    /// with usage so decisions never sort all nodes.
    fullest_first: BTreeSet<OrderKey>,
    order_keys: Vec<OrderKey>,
    /// The last list of candidate names asked about, and which nodes it offered.
    offered: OfferedCache,
    /// Each node's zone as a small id (equal ids exactly for equal zone names), and the ids.
    zone_ids: Vec<u32>,
    zone_numbers: HashMap<String, u32>,
    /// Bumped when a node appears, disappears, or changes labels, taints or readiness.
    pub(super) shape_epoch: u64,
}

/// The bin-packing view of every node and the zone id of each.
#[derive(Clone, Copy)]
pub struct PackingView<'a> {
    pub nodes: &'a [CandidateNode],
    pub zone_ids: &'a [u32],
    pub zone_count: usize,
}

type OrderKey = (i64, i64, Arc<str>, NodeIdx);

/// The names of the last candidate list (concatenated, with where each ends) and the node
/// each named, the mask and positions of those nodes, and how many names the table knew then.
#[derive(Debug, Default)]
struct OfferedCache {
    names: String,
    ends: Vec<usize>,
    index: Vec<Option<NodeIdx>>,
    mask: Vec<bool>,
    /// By node index: its last position in the list (`usize::MAX`: not in it).
    position: Vec<usize>,
    known: usize,
}

/// A fast hash for node names (the `FxHash` mix, 8 bytes at a time): names come from the
/// API server, not from untrusted clients, and a filter call looks up every candidate.
#[derive(Default)]
pub struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl NodeTable {
    pub fn get_by_name(&self, name: &str) -> Option<&NodeEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    pub fn index_of(&self, name: &str) -> Option<NodeIdx> {
        self.by_name.get(name).copied()
    }

    pub fn entry(&self, idx: NodeIdx) -> &NodeEntry {
        &self.entries[idx]
    }

    pub fn iter(&self) -> impl Iterator<Item = &NodeEntry> {
        self.entries.iter().filter(|e| e.present)
    }

    /// Indices of present nodes.
    pub fn present_indices(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.present)
            .map(|(i, _)| i)
    }

    /// The bin-packing view of every node, indexed like the table.
    pub fn candidates(&self) -> &[CandidateNode] {
        &self.candidates
    }

    /// Node indices, fullest first by current availability (memory, then cpu, then name).
    pub fn fullest_first(&self) -> impl Iterator<Item = NodeIdx> + Clone + '_ {
        self.fullest_first.iter().map(|k| k.3)
    }

    /// Which nodes the names `offered` (kube-scheduler's candidates) are, as a mask by node
    /// index. kube-scheduler usually offers the same list call after call, so the last
    /// answer is kept while the list and the set of known names are the same.
    pub fn offered_mask<S: AsRef<str>>(&mut self, offered: &[S]) -> Vec<bool> {
        self.remember_offered(offered);
        self.offered.mask.clone()
    }

    /// Makes `offered` the remembered candidate list (see [`Self::offered_mask`]).
    ///
    /// A new list is usually the last one with a few nodes gone or back (kube-scheduler keeps
    /// its node order and drops the nodes that stop fitting). So it is walked against the last
    /// one: a name equal to the last list's next name reuses that node's index, and only the
    /// other names are looked up, which resynchronises the walk past any nodes that dropped out.
    pub fn remember_offered<S: AsRef<str>>(&mut self, offered: &[S]) {
        let old = &self.offered;
        let name_at = |j: usize| {
            let start = j.checked_sub(1).map_or(0, |k| old.ends[k]);
            old.names.get(start..old.ends[j])
        };
        let same = old.known == self.by_name.len()
            && old.ends.len() == offered.len()
            && offered
                .iter()
                .enumerate()
                .all(|(j, name)| name_at(j) == Some(name.as_ref()));
        if same {
            return;
        }
        let mut cache = OfferedCache {
            names: String::with_capacity(old.names.len()),
            ends: Vec::with_capacity(offered.len()),
            index: Vec::with_capacity(offered.len()),
            mask: vec![false; self.candidates.len()],
            position: vec![usize::MAX; self.candidates.len()],
            known: self.by_name.len(),
        };
        let mut next = 0;
        for (p, name) in offered.iter().enumerate() {
            let name = name.as_ref();
            let reused = (next < old.ends.len() && name_at(next) == Some(name))
                .then(|| old.index[next])
                .flatten();
            let index = match reused {
                Some(i) => {
                    next += 1;
                    Some(i)
                }
                None => {
                    let found = self.by_name.get(name).copied();
                    // Resynchronise after the node's place in the last list, if it was there.
                    if let Some(q) = found.and_then(|i| old.position.get(i).copied())
                        && q != usize::MAX
                        && q >= next
                    {
                        next = q + 1;
                    }
                    found
                }
            };
            if let Some(i) = index {
                cache.mask[i] = true;
                cache.position[i] = p;
            }
            cache.names.push_str(name);
            cache.ends.push(cache.names.len());
            cache.index.push(index);
        }
        self.offered = cache;
    }

    /// The (last) position of node `name` in the remembered candidate list, if it is there.
    pub fn offered_position(&self, name: &str) -> Option<usize> {
        let i = *self.by_name.get(name)?;
        self.offered
            .position
            .get(i)
            .copied()
            .filter(|&p| p != usize::MAX)
    }

    /// The index of `name`, creating a placeholder (not present) entry when it is unknown.
    pub fn index_or_placeholder(&mut self, name: &str) -> NodeIdx {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let i = self.entries.len();
        let matcher = Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        self.entries.push(NodeEntry {
            name: name.to_owned(),
            present: false,
            allocatable: Resources::ZERO,
            usage: NodeUsage::default(),
            created: None,
            matcher,
        });
        let mut c = CandidateNode::new(name, "", Resources::ZERO, Resources::ZERO);
        c.ready = false;
        c.unschedulable = true;
        self.candidates.push(c);
        let zone = self.zone_number("");
        self.zone_ids.push(zone);
        self.by_name.insert(name.to_owned(), i);
        let key: OrderKey = (0, 0, Arc::from(name), i);
        self.fullest_first.insert(key.clone());
        self.order_keys.push(key);
        i
    }

    /// Adds or replaces a node. Returns its index.
    pub fn apply(&mut self, node: &Node, gpus: &GpuResourceNames) -> Option<NodeIdx> {
        let name = node.metadata.name.as_deref()?;
        let i = self.index_or_placeholder(name);
        let allocatable = node_allocatable(node, gpus).unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let ready = affinity::is_ready(node);
        let cordoned = affinity::is_cordoned(node);
        let matcher = Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: node.spec.as_ref().and_then(|s| s.taints.clone()),
                unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable),
                ..NodeSpec::default()
            }),
            status: None,
        };
        let e = &mut self.entries[i];
        // Allocatable counts as shape: "could this gang ever fit" depends on it.
        let shape_changed = !e.present
            || e.allocatable != allocatable
            || e.matcher != matcher
            || self.candidates[i].ready != ready
            || self.candidates[i].unschedulable != cordoned;
        e.present = true;
        e.allocatable = allocatable;
        e.created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
        e.matcher = matcher;
        let zone = self.zone_number(zone_of(&labels));
        self.zone_ids[i] = zone;
        let c = &mut self.candidates[i];
        c.zone = zone_of(&labels).to_owned();
        c.labels = labels;
        c.ready = ready;
        c.unschedulable = cordoned;
        if shape_changed {
            self.shape_epoch += 1;
        }
        self.refresh(i);
        Some(i)
    }

    /// The id of zone `name`, numbering it if it is new.
    fn zone_number(&mut self, name: &str) -> u32 {
        if let Some(&z) = self.zone_numbers.get(name) {
            return z;
        }
        let z = u32::try_from(self.zone_numbers.len()).unwrap_or(u32::MAX);
        self.zone_numbers.insert(name.to_owned(), z);
        z
    }

    /// Marks a node deleted; usage recorded against it stays until its pods and slots go.
    pub fn remove(&mut self, name: &str) {
        if let Some(&i) = self.by_name.get(name) {
            let e = &mut self.entries[i];
            if e.present {
                e.present = false;
                e.allocatable = Resources::ZERO;
                self.candidates[i].ready = false;
                self.candidates[i].unschedulable = true;
                self.shape_epoch += 1;
                self.refresh(i);
            }
        }
    }

    /// Changes a node's usage and keeps its bin-packing view in step.
    pub fn update_usage(&mut self, i: NodeIdx, change: impl FnOnce(&mut NodeUsage)) {
        change(&mut self.entries[i].usage);
        self.refresh(i);
    }

    fn refresh(&mut self, i: NodeIdx) {
        let e = &self.entries[i];
        let c = &mut self.candidates[i];
        c.available = e.available();
        c.schedulable = e.allocatable - e.usage.foreign_pods;
        let old = &self.order_keys[i];
        if (old.0, old.1) != (c.available.memory_bytes, c.available.cpu_milli) {
            self.fullest_first.remove(old);
            let key: OrderKey = (
                c.available.memory_bytes,
                c.available.cpu_milli,
                old.2.clone(),
                i,
            );
            self.fullest_first.insert(key.clone());
            self.order_keys[i] = key;
        }
    }
}

impl NodeTable {
    /// Runs `f` over the bin-packing view with the `available` resources of some nodes changed
    /// (`(node, new available)`), then restores them. Lets a decision simulate what others
    /// will take without copying the node table.
    pub fn with_available<R>(
        &mut self,
        changes: &[(NodeIdx, Resources)],
        f: impl FnOnce(&[CandidateNode]) -> R,
    ) -> R {
        self.with_available_zoned(changes, |view| f(view.nodes))
    }

    /// [`Self::with_available`], with the zone ids of the nodes.
    pub fn with_available_zoned<R>(
        &mut self,
        changes: &[(NodeIdx, Resources)],
        f: impl FnOnce(PackingView<'_>) -> R,
    ) -> R {
        let saved: Vec<(NodeIdx, Resources)> = changes
            .iter()
            .filter_map(|&(i, _)| self.candidates.get(i).map(|c| (i, c.available)))
            .collect();
        for &(i, available) in changes {
            if let Some(c) = self.candidates.get_mut(i) {
                c.available = available;
            }
        }
        let result = f(PackingView {
            nodes: &self.candidates,
            zone_ids: &self.zone_ids,
            zone_count: self.zone_numbers.len(),
        });
        for (i, available) in saved.into_iter().rev() {
            self.candidates[i].available = available;
        }
        result
    }

    /// The `available` each node would have after `taken`, which names each node at most
    /// once (as [`super::fifo::Taken::per_node`] does).
    pub fn after_taking(&self, taken: &[(NodeIdx, Resources)]) -> Vec<(NodeIdx, Resources)> {
        taken
            .iter()
            .filter_map(|&(i, r)| self.candidates.get(i).map(|c| (i, c.available - r)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 7] = ["n0", "n1", "n2", "n3", "n4", "n5", "ghost"];

    /// What `remember_offered` must end with, computed the plain way: the mask of known nodes
    /// offered, and each known name's last position in the list.
    fn expected(table: &NodeTable, offered: &[&str]) -> (Vec<bool>, Vec<Option<usize>>) {
        let mut mask = vec![false; table.candidates().len()];
        for name in offered {
            if let Some(i) = table.index_of(name) {
                mask[i] = true;
            }
        }
        let positions = NAMES
            .iter()
            .map(|n| {
                let known = table.index_of(n).is_some();
                offered.iter().rposition(|o| o == n).filter(|_| known)
            })
            .collect();
        (mask, positions)
    }

    #[test]
    fn a_changed_candidate_list_is_remembered_as_if_read_afresh() {
        let mut table = NodeTable::default();
        for i in 0..6 {
            table.index_or_placeholder(&format!("n{i}"));
        }
        let lists: [&[&str]; 9] = [
            &["n0", "n1", "n2", "n3", "n4", "n5"],
            &["n0", "n2", "n3", "n5"],
            &["n0", "n1", "n2", "n3", "n4", "n5"],
            &["n5", "n4", "n3"],
            &["ghost", "n4", "n4", "n1"],
            &["n1", "ghost"],
            &[],
            &["n3"],
            &["n0", "n2", "n3", "n5"],
        ];
        for (step, list) in lists.iter().enumerate() {
            if step == 6 {
                // A name the table did not know becomes known: the lists must see it.
                table.index_or_placeholder("ghost");
            }
            let mask = table.offered_mask(list);
            let (want_mask, want_positions) = expected(&table, list);
            assert_eq!(mask, want_mask, "mask after list {step}: {list:?}");
            let positions: Vec<Option<usize>> =
                NAMES.iter().map(|n| table.offered_position(n)).collect();
            assert_eq!(
                positions, want_positions,
                "positions after list {step}: {list:?}"
            );
        }
    }
}
