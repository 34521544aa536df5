//! Tests of bin packing: palantir's vectors, sparkgang's fixes, and properties.

mod behaviour;
mod ordering;
mod properties;
mod vectors;

use std::collections::BTreeMap;

use super::*;

/// Palantir's "infinite" schedulable resources of `CreateSchedulingMetadata`.
const UNLIMITED: i64 = i64::MAX;

/// Resources in palantir test units: whole cores, bytes, GPUs.
fn res(cpu: i64, memory: i64, gpus: i64) -> Resources {
    Resources::new(cpu * 1000, memory, gpus)
}

/// Palantir `CreateSchedulingMetadata`: available as given, schedulable unlimited.
fn node(name: &str, cpu: i64, memory: i64, gpus: i64, zone: &str) -> CandidateNode {
    CandidateNode::new(
        name,
        zone,
        res(cpu, memory, gpus),
        Resources::new(UNLIMITED, UNLIMITED, UNLIMITED),
    )
}

/// Palantir `CreateSchedulingMetadataWithTotals`.
#[allow(clippy::too_many_arguments)]
fn node_with_totals(
    name: &str,
    available_cpu: i64,
    total_cpu: i64,
    available_memory: i64,
    total_memory: i64,
    available_gpus: i64,
    total_gpus: i64,
    zone: &str,
) -> CandidateNode {
    CandidateNode::new(
        name,
        zone,
        res(available_cpu, available_memory, available_gpus),
        res(total_cpu, total_memory, total_gpus),
    )
}

/// Indices of `names` in `nodes`.
fn indices(nodes: &[CandidateNode], names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|name| nodes.iter().position(|n| n.name == *name).unwrap())
        .collect()
}

fn names(nodes: &[CandidateNode], order: &[usize]) -> Vec<String> {
    order.iter().map(|&i| nodes[i].name.clone()).collect()
}

/// Executors per node name.
fn counts(nodes: &[CandidateNode], packing: &Packing) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for &i in &packing.executor_nodes {
        *counts.entry(nodes[i].name.clone()).or_insert(0) += 1;
    }
    counts
}

/// Packs with the same order for driver and executors, as palantir's lib tests do.
fn pack(
    algorithm: BinpackAlgorithm,
    nodes: &[CandidateNode],
    order: &[&str],
    driver: Resources,
    executor: Resources,
    executor_count: usize,
) -> PackingResult {
    let order = indices(nodes, order);
    algorithm.pack(&PackingRequest {
        nodes,
        driver_order: &order,
        executor_order: &order,
        driver,
        executor,
        executor_count,
    })
}
