//! Gang bin packing: where a Spark driver and its executors go, all or nothing.
//!
//! The behaviour follows palantir's `k8s-spark-scheduler-lib` `pkg/binpack` (reference spec §5
//! and §6) with deterministic ties and the quirks noted on each item fixed. Pure and
//! deterministic: no I/O, no clock, no randomness, no hash-map iteration.
//!
//! Typical use by the extender:
//!
//! 1. build a `&[CandidateNode]` of the nodes the driver may use (available = allocatable −
//!    reservations − overhead);
//! 2. [`order_nodes`] to get the ordered driver and executor candidates (indices);
//! 3. [`BinpackAlgorithm::pack`] with a [`PackingRequest`];
//! 4. on success reserve the [`Packing`]'s nodes; on failure show the [`PackingFailure`].
//!
//! Units: cpu in millicores, memory in bytes, GPUs as a count ([`Resources`]). Node lists are
//! indices into the node slice; an index out of range is ignored, and a repeated executor
//! candidate counts once.

mod algorithm;
mod capacity;
mod efficiency;
mod executors;
mod failure;
mod gang;
mod node;
mod ordering;
mod single_executor;

#[cfg(test)]
mod tests;

pub use algorithm::{BinpackAlgorithm, UnknownBinpackAlgorithm};
pub use capacity::executor_capacity;
pub use efficiency::{AveragePackingEfficiency, PackingEfficiency, node_packing_efficiency};
pub use failure::{PackingFailure, ResourceDimension};
pub use node::{BETA_ZONE_LABEL, CandidateNode, DEFAULT_ZONE, ZONE_LABEL, zone_of};
pub use ordering::{
    LabelPriority, NodeOrdering, apply_label_priority, order_nodes, priority_order,
    priority_order_among, priority_order_presorted, priority_order_presorted_zoned,
};
pub use single_executor::{first_fitting_node, least_fragmenting_node};

use crate::resources::Resources;
use efficiency::EfficiencyMean;
use executors::Distribution;
use gang::Packer;

/// One gang to place: a driver and `executor_count` identical executors over `nodes`.
#[derive(Debug, Clone, Copy)]
pub struct PackingRequest<'a> {
    /// Every node the application may use (the driver's node affinity already applied).
    pub nodes: &'a [CandidateNode],
    /// Driver candidates in priority order, as indices into `nodes`.
    pub driver_order: &'a [usize],
    /// Executor candidates in priority order, as indices into `nodes`.
    pub executor_order: &'a [usize],
    /// What the driver requests.
    pub driver: Resources,
    /// What each executor requests.
    pub executor: Resources,
    /// How many executors must fit with the driver (the minimum, under dynamic allocation).
    pub executor_count: usize,
}

/// A gang that fits: the driver's node and one node per executor (repeats allowed).
#[derive(Debug, Clone, PartialEq)]
pub struct Packing {
    /// Index of the driver's node.
    pub driver_node: usize,
    /// Index of each executor's node, in placement order (`executor-1` first).
    pub executor_nodes: Vec<usize>,
    /// What the driver requests (copied from the request).
    pub driver_request: Resources,
    /// What each executor requests (copied from the request).
    pub executor_request: Resources,
    /// The mean efficiency over the driver's node and each executor's node (a node with k
    /// executors counts k times, plus once for the driver), with the whole gang placed: what
    /// `single-az-tightly-pack` compares between zones (minimal fragmentation compares the
    /// same nodes without the executors, as palantir does).
    pub efficiency: AveragePackingEfficiency,
}

/// The outcome of one packing.
pub type PackingResult = Result<Packing, PackingFailure>;

impl BinpackAlgorithm {
    /// Places the gang of `request`, or says why it does not fit.
    pub fn pack(self, request: &PackingRequest<'_>) -> PackingResult {
        let packer = Packer::new(request);
        match self {
            BinpackAlgorithm::TightlyPack => packer.across_zones(Distribution::TightlyPack),
            BinpackAlgorithm::DistributeEvenly => {
                packer.across_zones(Distribution::DistributeEvenly)
            }
            BinpackAlgorithm::MinimalFragmentation => {
                packer.across_zones(Distribution::MinimalFragmentation)
            }
            BinpackAlgorithm::AzAwareTightlyPack => packer
                .single_zone(Distribution::TightlyPack)
                .or_else(|_| packer.across_zones(Distribution::TightlyPack)),
            BinpackAlgorithm::SingleAzTightlyPack => packer.single_zone(Distribution::TightlyPack),
            BinpackAlgorithm::SingleAzMinimalFragmentation => {
                packer.single_zone(Distribution::MinimalFragmentation)
            }
        }
    }
}

impl Packing {
    fn new(request: &PackingRequest<'_>, driver_node: usize, executor_nodes: Vec<usize>) -> Self {
        let mut packing = Packing {
            driver_node,
            executor_nodes,
            driver_request: request.driver,
            executor_request: request.executor,
            efficiency: AveragePackingEfficiency::default(),
        };
        let mut mean = EfficiencyMean::default();
        for (node, weight, reserved) in packing.placements() {
            if let Some(n) = request.nodes.get(node) {
                mean.add(&node_packing_efficiency(n, reserved), weight);
            }
        }
        packing.efficiency = mean.finish();
        packing
    }

    /// `(node, pods, resources)` per distinct node, the driver's node first, then in order of
    /// first executor placement.
    fn placements(&self) -> Vec<(usize, usize, Resources)> {
        let runs = self.executors_per_node();
        let on_driver_node = runs
            .iter()
            .find(|&&(node, _)| node == self.driver_node)
            .map_or(0, |&(_, count)| count);
        let mut placements = Vec::with_capacity(runs.len() + 1);
        placements.push((
            self.driver_node,
            on_driver_node + 1,
            self.driver_request + times(self.executor_request, on_driver_node),
        ));
        placements.extend(
            runs.into_iter()
                .filter(|&(node, _)| node != self.driver_node)
                .map(|(node, count)| (node, count, times(self.executor_request, count))),
        );
        placements
    }

    /// What this packing adds to each node it uses: `(node, resources)`, the driver's node
    /// first, then in order of first executor placement.
    pub fn reserved_per_node(&self) -> Vec<(usize, Resources)> {
        self.placements()
            .into_iter()
            .map(|(node, _, r)| (node, r))
            .collect()
    }

    /// Executors per node: `(node, count)` in order of first placement.
    pub fn executors_per_node(&self) -> Vec<(usize, usize)> {
        let mut by_node: Vec<(usize, usize)> = self
            .executor_nodes
            .iter()
            .enumerate()
            .map(|(position, &node)| (node, position))
            .collect();
        by_node.sort_unstable();
        // (first position, node, count), then back to placement order.
        let mut runs: Vec<(usize, usize, usize)> = by_node
            .chunk_by(|a, b| a.0 == b.0)
            .filter_map(|run| run.first().map(|&(node, first)| (first, node, run.len())))
            .collect();
        runs.sort_unstable();
        runs.into_iter()
            .map(|(_, node, count)| (node, count))
            .collect()
    }

    /// The driver node's name.
    pub fn driver_node_name<'n>(&self, nodes: &'n [CandidateNode]) -> Option<&'n str> {
        nodes.get(self.driver_node).map(|n| n.name.as_str())
    }

    /// Each executor's node name, in placement order.
    pub fn executor_node_names<'n>(&self, nodes: &'n [CandidateNode]) -> Vec<&'n str> {
        self.executor_nodes
            .iter()
            .filter_map(|&i| nodes.get(i).map(|n| n.name.as_str()))
            .collect()
    }

    /// Palantir's `packingefficiency` gauge: the mean efficiency over every node of `nodes`
    /// with this packing's reservations added. Costs O(nodes).
    pub fn cluster_efficiency(&self, nodes: &[CandidateNode]) -> AveragePackingEfficiency {
        let mut reserved = vec![Resources::ZERO; nodes.len()];
        for (node, r) in self.reserved_per_node() {
            if let Some(slot) = reserved.get_mut(node) {
                *slot = r;
            }
        }
        AveragePackingEfficiency::of(
            nodes
                .iter()
                .zip(reserved)
                .map(|(node, r)| node_packing_efficiency(node, r)),
        )
    }
}

fn times(r: Resources, n: usize) -> Resources {
    r.times(i64::try_from(n).unwrap_or(i64::MAX))
}
