//! Choosing victims: the least a preemptor needs, soft reservations before whole gangs.
//!
//! Pure over plain data: the candidates (what evicting each frees, per node) and a `fits`
//! oracle (does the preemptor's gang pack with this much freed?). Candidates are tried soft
//! reservations first (lowest priority, then most recently started), then whole gangs in the
//! same order, each added until the gang fits; then every chosen candidate, most valuable first
//! (whole gangs before soft reservations, higher priority and older first), is given back if
//! the gang still fits without it. What is left is minimal: no single victim can be spared.

use std::collections::{BTreeMap, BTreeSet};

use crate::resources::Resources;

use super::super::Timestamp;
use super::super::keys::AppKey;
use super::super::nodes::NodeIdx;

/// What a candidate is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VictimKind {
    /// One executor above its application's dynamic-allocation minimum (a soft reservation):
    /// Spark survives losing it.
    Soft { pod: String },
    /// The whole application: driver, executors and reservation.
    Gang,
}

/// One candidate for eviction, of an application of lower priority than the preemptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub app: AppKey,
    pub priority: i32,
    /// When the application started (its driver did): the most recent goes first.
    pub started: Timestamp,
    pub kind: VictimKind,
    /// What evicting it frees, per node (a gang's includes its soft reservations).
    pub frees: Vec<(NodeIdx, Resources)>,
    /// The PodDisruptionBudgets its pods fall under (index into the allowed disruptions), and
    /// how many of its pods each.
    pub disruptions: Vec<(usize, u32)>,
}

impl Candidate {
    fn is_gang(&self) -> bool {
        self.kind == VictimKind::Gang
    }
}

/// Why no set of candidates is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoVictims {
    /// Even every candidate together does not make room.
    NotEnough,
    /// Room needs `needed` whole gangs; the budget allows `allowed` now.
    OverBudget { needed: usize, allowed: usize },
}

/// The order candidates are tried in: soft before gangs; lower priority, then more recently
/// started, then by application and pod (a total order: the plan never depends on input order).
fn try_order(c: &Candidate) -> impl Ord + '_ {
    (
        c.is_gang(),
        c.priority,
        std::cmp::Reverse(c.started),
        &c.app,
        &c.kind,
    )
}

/// The indices of the chosen candidates (in try order), or why there are none. `fits` is asked
/// with what the chosen candidates free per node (each node once, in node order); at most
/// `gang_budget` whole gangs are chosen, and the chosen pods under each PodDisruptionBudget
/// number at most its `disruptions_allowed` (a candidate that would exceed one is passed over;
/// a budget missing from the slice allows none).
pub fn choose_victims(
    candidates: &[Candidate],
    mut fits: impl FnMut(&[(NodeIdx, Resources)]) -> bool,
    gang_budget: usize,
    disruptions_allowed: &[u32],
) -> Result<Vec<usize>, NoVictims> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| try_order(&candidates[a]).cmp(&try_order(&candidates[b])));

    // Add in try order until the gang fits. A gang replaces the soft reservations of its own
    // application chosen before it (its frees include theirs). What the first m candidates
    // free only grows with m, so the shortest prefix that fits is searched for: a few fit
    // tests (each a packing of the gang) instead of one per candidate, and two when even every
    // candidate together is not enough.
    let accepted = accepted(candidates, &order, disruptions_allowed);
    let chosen_after = |m: usize| -> Vec<usize> {
        let tried = || {
            order[..m]
                .iter()
                .zip(&accepted)
                .filter(|(_, a)| **a)
                .map(|(&i, _)| i)
        };
        let gangs: BTreeSet<&AppKey> = tried()
            .filter(|&i| candidates[i].is_gang())
            .map(|i| &candidates[i].app)
            .collect();
        tried()
            .filter(|&i| candidates[i].is_gang() || !gangs.contains(&candidates[i].app))
            .collect()
    };
    let mut fits_after = |m: usize| fits(&freed(candidates, &chosen_after(m)));
    // Galloping search: the empty prefix, the first candidate, then (when even all of them
    // are enough) prefixes doubling in length, and bisection in the last step. Usually one or
    // two victims suffice and that costs what trying them in turn would.
    let n = order.len();
    let high = if fits_after(0) {
        0
    } else if n == 0 {
        return Err(NoVictims::NotEnough);
    } else if fits_after(1) {
        1
    } else if n == 1 || !fits_after(n) {
        return Err(NoVictims::NotEnough);
    } else {
        // The prefix of `low` does not fit; the prefix of `high` does once the loop ends (the
        // prefix of n does).
        let (mut low, mut high) = (1, 2.min(n));
        while high < n && !fits_after(high) {
            low = high;
            high = (high * 2).min(n);
        }
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if fits_after(mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        high
    };
    let mut chosen = chosen_after(high);

    // Give back what is not needed, most valuable first: the last added went in because the
    // ones before did not suffice, so try sparing from the end.
    let mut k = chosen.len();
    while k > 0 {
        k -= 1;
        let spared = chosen.remove(k);
        if !fits(&freed(candidates, &chosen)) {
            chosen.insert(k, spared);
        }
    }

    let gangs = chosen.iter().filter(|&&i| candidates[i].is_gang()).count();
    if gangs > gang_budget {
        return Err(NoVictims::OverBudget {
            needed: gangs,
            allowed: gang_budget,
        });
    }
    Ok(chosen)
}

/// Whether the greedy takes each candidate of `order` (by position) when it comes to it: a
/// candidate that would take a disruption budget past what it allows, together with those
/// taken before (a gang in place of its own application's soft reservations), is passed over.
/// Soft reservations come before every gang in `order`.
fn accepted(candidates: &[Candidate], order: &[usize], allowed: &[u32]) -> Vec<bool> {
    let mut used: BTreeMap<usize, u32> = BTreeMap::new();
    let mut soft_used: BTreeMap<&AppKey, Vec<(usize, u32)>> = BTreeMap::new();
    order
        .iter()
        .map(|&i| {
            let c = &candidates[i];
            let mut tentative = used.clone();
            if c.is_gang() {
                for &(b, n) in soft_used.get(&c.app).into_iter().flatten() {
                    if let Some(u) = tentative.get_mut(&b) {
                        *u = u.saturating_sub(n);
                    }
                }
            }
            for &(b, n) in &c.disruptions {
                *tentative.entry(b).or_default() += n;
            }
            let ok = tentative
                .iter()
                .all(|(&b, &n)| n <= allowed.get(b).copied().unwrap_or(0));
            if ok {
                used = tentative;
                if !c.is_gang() {
                    soft_used
                        .entry(&c.app)
                        .or_default()
                        .extend(c.disruptions.iter().copied());
                }
            }
            ok
        })
        .collect()
}

/// What `chosen` frees, per node, in node order.
pub fn freed(candidates: &[Candidate], chosen: &[usize]) -> Vec<(NodeIdx, Resources)> {
    let mut per_node: BTreeMap<NodeIdx, Resources> = BTreeMap::new();
    for &i in chosen {
        for &(n, r) in &candidates[i].frees {
            *per_node.entry(n).or_default() += r;
        }
    }
    per_node.into_iter().collect()
}

#[cfg(test)]
mod tests;
