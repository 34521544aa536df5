//! Executor distributions over nodes with known capacities (§6.3, §6.4, §6.9).
//!
//! Each takes the executor candidates in priority order with their capacity for executors, the
//! reduced capacity of the driver's node, and returns one node index per executor, or `None`
//! when the capacities do not add up to `count`.

use crate::resources::Resources;

/// An executor candidate and how many executors it can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub node: usize,
    pub capacity: i64,
}

/// How executors are spread over the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Distribution {
    TightlyPack,
    DistributeEvenly,
    MinimalFragmentation,
}

impl Distribution {
    /// Places `count` executors on `slots`, where `driver` (node, capacity with the driver on
    /// it) overrides the capacity of the driver's node.
    pub(super) fn place(self, slots: &[Slot], driver: Slot, count: usize) -> Option<Vec<usize>> {
        let slots = slots
            .iter()
            .map(|s| if s.node == driver.node { driver } else { *s });
        match self {
            Distribution::TightlyPack => tightly_pack(slots, count),
            Distribution::DistributeEvenly => distribute_evenly(slots, count),
            Distribution::MinimalFragmentation => minimal_fragmentation(slots, count),
        }
    }
}

impl Distribution {
    /// What one executor adds to its node in the single-zone comparison ([`super::efficiency::zone_score`]):
    /// `executor` for tightly packing, nothing for minimal fragmentation. Palantir's
    /// `minimalFragmentation` does not record its executors in the reservations that
    /// `chooseBestResult` averages, so its zones are compared as they were before the
    /// executors; sparkgang keeps that, since it prefers zones whose nodes are already in use
    /// over opening empty nodes (`docs/palantir-quirks.md`, "Bin-packing parity").
    pub(super) fn counted_in_zone_score(self, executor: Resources) -> Resources {
        match self {
            Distribution::MinimalFragmentation => Resources::ZERO,
            Distribution::TightlyPack | Distribution::DistributeEvenly => executor,
        }
    }
}

/// How many of `remaining` executors a node with room for `capacity` takes.
fn take(capacity: i64, remaining: usize) -> usize {
    usize::try_from(capacity.max(0)).map_or(remaining, |c| c.min(remaining))
}

/// Appends `node` `n` times.
fn push_n(out: &mut Vec<usize>, node: usize, n: usize) {
    out.extend(std::iter::repeat_n(node, n));
}

/// Fills each node in order before moving to the next (`tightlyPackExecutors`).
fn tightly_pack(slots: impl Iterator<Item = Slot>, count: usize) -> Option<Vec<usize>> {
    let mut out = Vec::with_capacity(count);
    for slot in slots {
        if out.len() == count {
            break;
        }
        let n = take(slot.capacity, count - out.len());
        push_n(&mut out, slot.node, n);
    }
    (out.len() == count).then_some(out)
}

/// Round-robin: one executor per node per round, in order; a node that cannot take one more
/// leaves the rotation (`distributeExecutorsEvenly`).
fn distribute_evenly(slots: impl Iterator<Item = Slot>, count: usize) -> Option<Vec<usize>> {
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return Some(out);
    }
    // Round 1 straight from the slots; nodes with room for a second executor go on rotating.
    let mut rotating: Vec<Slot> = Vec::new();
    for slot in slots {
        if slot.capacity >= 1 {
            out.push(slot.node);
            if out.len() == count {
                return Some(out);
            }
            if slot.capacity >= 2 {
                rotating.push(slot);
            }
        }
    }
    let mut round: i64 = 2;
    while !rotating.is_empty() {
        for slot in &rotating {
            out.push(slot.node);
            if out.len() == count {
                return Some(out);
            }
        }
        rotating.retain(|s| s.capacity > round);
        round += 1;
    }
    None
}

/// Palantir's `minimalFragmentation`: prefer the smallest node that takes every executor, else
/// fill the roomiest nodes first; for small apps, first try without the emptiest nodes
/// (lib PR #104).
fn minimal_fragmentation(slots: impl Iterator<Item = Slot>, count: usize) -> Option<Vec<usize>> {
    if count == 0 {
        return Some(Vec::new());
    }
    let mut by_capacity: Vec<Slot> = slots.filter(|s| s.capacity > 0).collect();
    // Stable: equal capacities keep the priority order.
    by_capacity.sort_by_key(|s| s.capacity);
    let max_capacity = by_capacity.last()?.capacity;
    let wanted = i64::try_from(count).unwrap_or(i64::MAX);
    if wanted < max_capacity {
        // "Ignore mostly empty nodes": nodes with at least halfway between `count` and the
        // largest capacity are left out of the first attempt.
        let target = ((i128::from(wanted) + i128::from(max_capacity)) / 2) as i64;
        let k = by_capacity.partition_point(|s| s.capacity < target);
        if let Some(out) = fill_smallest_fitting(&by_capacity[..k], count) {
            return Some(out);
        }
    }
    fill_smallest_fitting(&by_capacity, count)
}

/// Palantir's `internalMinimalFragmentation` over slots sorted by ascending capacity.
fn fill_smallest_fitting(sorted: &[Slot], count: usize) -> Option<Vec<usize>> {
    let mut list = sorted.to_vec();
    let mut out = Vec::with_capacity(count);
    let mut remaining = i64::try_from(count).unwrap_or(i64::MAX);
    while let Some(last) = list.last() {
        // The smallest node that takes all remaining executors, if any.
        let fitting = list.partition_point(|s| s.capacity < remaining);
        if let Some(slot) = list.get(fitting) {
            push_n(&mut out, slot.node, take(remaining, usize::MAX));
            return Some(out);
        }
        // Otherwise fill nodes of the largest capacity, in priority order, while whole ones
        // are needed. Capacities are never recomputed: consumed nodes are dropped.
        let max_capacity = last.capacity;
        let first_max = list.partition_point(|s| s.capacity < max_capacity);
        let mut next = first_max;
        while remaining >= max_capacity && next < list.len() {
            push_n(&mut out, list[next].node, take(max_capacity, usize::MAX));
            remaining -= max_capacity;
            next += 1;
        }
        if remaining == 0 {
            return Some(out);
        }
        list.drain(first_max..next);
    }
    None
}
