//! Packing efficiency: how full nodes are after a placement (palantir `efficiency.go`, §6.7).

use super::node::CandidateNode;
use crate::resources::Resources;

/// How full one node is once `reserved` is added: used ÷ schedulable per resource, where
/// used = schedulable − available + reserved.
///
/// Palantir converted cpu to whole cores rounding up (`Quantity.Value()`) before dividing;
/// sparkgang divides millicores exactly. Both agree whenever the amounts are whole cores, as in
/// every palantir test vector; for fractional cpu sparkgang's figure is the accurate one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackingEfficiency {
    pub cpu: f64,
    pub memory: f64,
    /// `None` on a node without schedulable GPUs (palantir wrote 0 there and left such nodes
    /// out of the GPU average).
    pub gpu: Option<f64>,
}

impl PackingEfficiency {
    /// The fullest resource: max(cpu, memory, gpu).
    pub fn max(&self) -> f64 {
        self.cpu.max(self.memory).max(self.gpu.unwrap_or(0.0))
    }
}

/// The packing efficiency of `node` once `reserved` more is placed on it.
pub fn node_packing_efficiency(node: &CandidateNode, reserved: Resources) -> PackingEfficiency {
    let used =
        |sched: i64, avail: i64, res: i64| i128::from(sched) - i128::from(avail) + i128::from(res);
    let ratio = |used: i128, denominator: i64| used as f64 / denominator as f64;
    let s = node.schedulable;
    let a = node.available;
    // Palantir divided by max(1, schedulable) in whole cores and bytes.
    let cpu_denominator = if s.cpu_milli == 0 { 1000 } else { s.cpu_milli };
    let memory_denominator = if s.memory_bytes == 0 {
        1
    } else {
        s.memory_bytes
    };
    PackingEfficiency {
        cpu: ratio(
            used(s.cpu_milli, a.cpu_milli, reserved.cpu_milli),
            cpu_denominator,
        ),
        memory: ratio(
            used(s.memory_bytes, a.memory_bytes, reserved.memory_bytes),
            memory_denominator,
        ),
        gpu: (s.gpus != 0).then(|| ratio(used(s.gpus, a.gpus, reserved.gpus), s.gpus)),
    }
}

/// The mean packing efficiency over a list of nodes (a node listed k times counts k times).
///
/// cpu, memory and max are arithmetic means over all entries; gpu is the mean over entries
/// with GPUs, or 1.0 when none has any (palantir's convention). An empty list is all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AveragePackingEfficiency {
    pub cpu: f64,
    pub memory: f64,
    pub gpu: f64,
    /// The mean of each entry's [`PackingEfficiency::max`]; what single-zone packing compares.
    pub max: f64,
}

impl AveragePackingEfficiency {
    /// The average of `efficiencies`.
    pub fn of(efficiencies: impl IntoIterator<Item = PackingEfficiency>) -> Self {
        let mut mean = EfficiencyMean::default();
        for e in efficiencies {
            mean.add(&e, 1);
        }
        mean.finish()
    }
}

/// A running weighted mean of [`PackingEfficiency`] values.
#[derive(Debug, Default)]
pub(super) struct EfficiencyMean {
    cpu: f64,
    memory: f64,
    gpu: f64,
    gpu_weight: f64,
    max: f64,
    weight: f64,
}

impl EfficiencyMean {
    /// Counts `e` `weight` times.
    pub(super) fn add(&mut self, e: &PackingEfficiency, weight: usize) {
        let w = weight as f64;
        self.cpu += e.cpu * w;
        self.memory += e.memory * w;
        if let Some(gpu) = e.gpu {
            self.gpu += gpu * w;
            self.gpu_weight += w;
        }
        self.max += e.max() * w;
        self.weight += w;
    }

    pub(super) fn finish(&self) -> AveragePackingEfficiency {
        if self.weight == 0.0 {
            return AveragePackingEfficiency::default();
        }
        AveragePackingEfficiency {
            cpu: self.cpu / self.weight,
            memory: self.memory / self.weight,
            gpu: if self.gpu_weight == 0.0 {
                1.0
            } else {
                self.gpu / self.gpu_weight
            },
            max: self.max / self.weight,
        }
    }
}

/// What single-zone packing compares between zones (palantir's `chooseBestResult`): the mean
/// of [`PackingEfficiency::max`] over the list `[driver node, executor nodes…]` (a node with k
/// executors counts k times, plus once for the driver), summed entry by entry in that order as
/// palantir does, so equal zones compare equal bit for bit.
///
/// Each node's efficiency includes the driver (on its node) and `counted_executor` per executor
/// placed there. Palantir's tightly-pack records its executors in the reservations it averages,
/// its minimal fragmentation does not: pass the executor request for the former and
/// [`Resources::ZERO`] for the latter (see `docs/palantir-quirks.md`, "Bin-packing parity").
pub(super) fn zone_score(
    nodes: &[CandidateNode],
    driver_node: usize,
    driver: Resources,
    executor_nodes: &[usize],
    counted_executor: Resources,
) -> f64 {
    use std::collections::BTreeMap;

    let mut reserved: BTreeMap<usize, Resources> = BTreeMap::new();
    reserved.insert(driver_node, driver);
    for &n in executor_nodes {
        *reserved.entry(n).or_insert(Resources::ZERO) += counted_executor;
    }
    let max_of: BTreeMap<usize, f64> = reserved
        .into_iter()
        .filter_map(|(n, r)| {
            nodes
                .get(n)
                .map(|node| (n, node_packing_efficiency(node, r).max()))
        })
        .collect();
    let entries = std::iter::once(&driver_node).chain(executor_nodes);
    let sum: f64 = entries
        .clone()
        .map(|n| max_of.get(n).copied().unwrap_or(0.0))
        .sum();
    sum / entries.count().max(1) as f64
}
