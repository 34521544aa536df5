//! Choosing victims: the least a preemptor needs, soft reservations before whole gangs.
//!
//! Pure over plain data: the candidates (what evicting each frees, per node) and a `fits`
//! oracle (does the preemptor's gang pack with this much freed?). Candidates are tried soft
//! reservations first (lowest priority, then most recently started), then whole gangs in the
//! same order, each added until the gang fits; then every chosen candidate, most valuable first
//! (whole gangs before soft reservations, higher priority and older first), is given back if
//! the gang still fits without it. What is left is minimal: no single victim can be spared.

use std::collections::BTreeMap;

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
    // application chosen before it (its frees include theirs).
    let mut chosen: Vec<usize> = Vec::new();
    let mut fitted = fits(&[]);
    for &i in &order {
        if fitted {
            break;
        }
        let c = &candidates[i];
        let mut with = chosen.clone();
        if c.is_gang() {
            with.retain(|&j| candidates[j].app != c.app);
        }
        with.push(i);
        if !within_budgets(candidates, &with, disruptions_allowed) {
            continue;
        }
        chosen = with;
        fitted = fits(&freed(candidates, &chosen));
    }
    if !fitted {
        return Err(NoVictims::NotEnough);
    }

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

/// Whether the pods of `chosen` stay within every disruption budget.
fn within_budgets(candidates: &[Candidate], chosen: &[usize], allowed: &[u32]) -> bool {
    let mut used: BTreeMap<usize, u32> = BTreeMap::new();
    for &i in chosen {
        for &(b, n) in &candidates[i].disruptions {
            *used.entry(b).or_default() += n;
        }
    }
    used.iter()
        .all(|(&b, &n)| n <= allowed.get(b).copied().unwrap_or(0))
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
