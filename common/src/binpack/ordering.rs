//! The node priority order (§5): fullest zone first, then fullest node first.

use serde::{Deserialize, Serialize};

use super::node::CandidateNode;

/// Configured preference for nodes by the value of one label (palantir's
/// `driver-prioritized-node-label` / `executor-prioritized-node-label`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LabelPriority {
    /// The label whose value ranks nodes.
    pub label_name: String,
    /// Values from most to least preferred; nodes with another value or without the label
    /// come after all listed values.
    pub label_values_descending_priority: Vec<String>,
}

/// Driver and executor candidates, as indices into the node slice, in priority order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeOrdering {
    /// The ordered nodes that kube-scheduler offered for the driver.
    pub driver: Vec<usize>,
    /// The ordered nodes that are ready and not cordoned.
    pub executor: Vec<usize>,
}

/// Orders all nodes: [`priority_order_among`] every index of `nodes`.
pub fn priority_order(nodes: &[CandidateNode]) -> Vec<usize> {
    let all: Vec<usize> = (0..nodes.len()).collect();
    priority_order_among(nodes, &all)
}

/// Orders the nodes `among` (indices into `nodes`, e.g. those matching the driver's node
/// affinity) as palantir's `getNodeNamesInPriorityOrder` does, made deterministic.
///
/// Zones are ranked by the total available resources of their nodes in `among`, ascending
/// (memory first, then cpu; GPUs ignored), so the fullest zone comes first; equal zones by zone
/// name. Nodes are ordered by (zone rank, available memory, available cpu, name), ascending:
/// fullest node first. Palantir left ties of zones and of nodes to an unstable sort (its issue
/// #231); here the zone name and the node name (then the index, for duplicate names) decide.
/// Indices out of range are dropped, and so are repeated indices.
pub fn priority_order_among(nodes: &[CandidateNode], among: &[usize]) -> Vec<usize> {
    let mut fullest_first: Vec<(i64, i64, &str, usize)> = among
        .iter()
        .filter_map(|&i| {
            nodes.get(i).map(|n| {
                (
                    n.available.memory_bytes,
                    n.available.cpu_milli,
                    n.name.as_str(),
                    i,
                )
            })
        })
        .collect();
    fullest_first.sort_unstable();
    fullest_first.dedup_by_key(|k| k.3);
    priority_order_presorted(nodes, fullest_first.iter().map(|k| k.3))
}

/// [`priority_order_among`] for nodes already sorted fullest first — by (available memory,
/// available cpu, name, index) ascending, as a caller that keeps its nodes in that order
/// incrementally can supply them — without sorting again: zones are ranked by their totals
/// over these nodes and the nodes are grouped by zone rank, keeping their order. O(n).
pub fn priority_order_presorted(
    nodes: &[CandidateNode],
    fullest_first: impl Iterator<Item = usize> + Clone,
) -> Vec<usize> {
    // Zones in order of first appearance, with their totals.
    let mut zones: Vec<(&str, i128, i128)> = Vec::new();
    let mut hint = 0;
    let mut zone_of_member: Vec<(usize, usize)> = Vec::new();
    for i in fullest_first {
        let Some(node) = nodes.get(i) else { continue };
        let z = match zones.get(hint) {
            Some((name, ..)) if *name == node.zone => hint,
            _ => match zones.iter().position(|(name, ..)| *name == node.zone) {
                Some(z) => z,
                None => {
                    zones.push((&node.zone, 0, 0));
                    zones.len() - 1
                }
            },
        };
        hint = z;
        if let Some((_, memory, cpu)) = zones.get_mut(z) {
            *memory += i128::from(node.available.memory_bytes);
            *cpu += i128::from(node.available.cpu_milli);
        }
        zone_of_member.push((i, z));
    }
    let mut by_fullness: Vec<usize> = (0..zones.len()).collect();
    by_fullness.sort_by_key(|&z| zones.get(z).map(|&(name, memory, cpu)| (memory, cpu, name)));
    let mut zone_rank = vec![0usize; zones.len()];
    for (rank, &z) in by_fullness.iter().enumerate() {
        if let Some(r) = zone_rank.get_mut(z) {
            *r = rank;
        }
    }
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); zones.len()];
    for (i, z) in zone_of_member {
        if let Some(b) = zone_rank.get(z).and_then(|&r| buckets.get_mut(r)) {
            b.push(i);
        }
    }
    buckets.concat()
}

/// [`priority_order_presorted`] for a caller that numbers zones: `zone_ids[i]` is node `i`'s
/// zone as an id below `zone_count`, equal exactly when the zone names are equal. Same order,
/// without comparing zone names node by node. Nodes without an id are dropped, as are
/// indices out of range.
pub fn priority_order_presorted_zoned(
    nodes: &[CandidateNode],
    fullest_first: impl Iterator<Item = usize>,
    zone_ids: &[u32],
    zone_count: usize,
) -> Vec<usize> {
    // Per zone id: total available memory and cpu, and a member (for the zone's name).
    let mut totals: Vec<(i128, i128, Option<usize>)> = vec![(0, 0, None); zone_count];
    let mut members: Vec<(usize, u32)> = Vec::with_capacity(fullest_first.size_hint().0);
    for i in fullest_first {
        let (Some(node), Some(&z)) = (nodes.get(i), zone_ids.get(i)) else {
            continue;
        };
        let Some(t) = totals.get_mut(z as usize) else {
            continue;
        };
        t.0 += i128::from(node.available.memory_bytes);
        t.1 += i128::from(node.available.cpu_milli);
        t.2.get_or_insert(i);
        members.push((i, z));
    }
    let zone_name = |member: usize| nodes.get(member).map_or("", |n| n.zone.as_str());
    let mut ranked: Vec<(i128, i128, &str, usize)> = totals
        .iter()
        .enumerate()
        .filter_map(|(z, &(memory, cpu, member))| member.map(|m| (memory, cpu, zone_name(m), z)))
        .collect();
    ranked.sort_unstable();
    // Counting sort of the members by zone rank, keeping their order within a zone.
    let mut start = vec![0usize; zone_count + 1];
    let mut rank_of = vec![0usize; zone_count];
    for (rank, &(.., z)) in ranked.iter().enumerate() {
        rank_of[z] = rank;
    }
    for &(_, z) in &members {
        start[rank_of[z as usize] + 1] += 1;
    }
    for r in 1..start.len() {
        start[r] += start[r - 1];
    }
    let mut out = vec![0usize; members.len()];
    for &(i, z) in &members {
        let slot = &mut start[rank_of[z as usize]];
        out[*slot] = i;
        *slot += 1;
    }
    out
}

/// Palantir's `PotentialNodes`: driver candidates are the ordered nodes for which
/// `is_driver_candidate` holds (kube-scheduler's `NodeNames`; no readiness filter); executor
/// candidates are the ordered nodes that [accept executors](CandidateNode::accepts_executors),
/// whether or not kube-scheduler offered them for the driver. Each list is then stably re-sorted
/// by its label priority, if any.
pub fn order_nodes(
    nodes: &[CandidateNode],
    is_driver_candidate: impl Fn(&CandidateNode) -> bool,
    driver_label_priority: Option<&LabelPriority>,
    executor_label_priority: Option<&LabelPriority>,
) -> NodeOrdering {
    let order = priority_order(nodes);
    let mut ordering = NodeOrdering {
        driver: Vec::with_capacity(order.len()),
        executor: Vec::with_capacity(order.len()),
    };
    for i in order {
        let Some(node) = nodes.get(i) else { continue };
        if is_driver_candidate(node) {
            ordering.driver.push(i);
        }
        if node.accepts_executors() {
            ordering.executor.push(i);
        }
    }
    if let Some(priority) = driver_label_priority {
        apply_label_priority(&mut ordering.driver, nodes, priority);
    }
    if let Some(priority) = executor_label_priority {
        apply_label_priority(&mut ordering.executor, nodes, priority);
    }
    ordering
}

/// Stably moves nodes whose `priority.label_name` has a listed value to the front, most
/// preferred value first; nodes without a listed value keep their relative order at the end.
pub fn apply_label_priority(
    order: &mut [usize],
    nodes: &[CandidateNode],
    priority: &LabelPriority,
) {
    let rank = |i: usize| {
        nodes
            .get(i)
            .and_then(|n| n.labels.get(&priority.label_name))
            .and_then(|v| {
                priority
                    .label_values_descending_priority
                    .iter()
                    .position(|p| p == v)
            })
            .unwrap_or(usize::MAX)
    };
    order.sort_by_cached_key(|&i| rank(i));
}
