//! Placing one executor outside a gang packing (an executor whose slot must move, or an extra
//! dynamic-allocation executor; palantir `rescheduleExecutor`, §8.4 step 6).

use super::algorithm::BinpackAlgorithm;
use super::capacity::executor_capacity;
use super::node::CandidateNode;
use crate::resources::Resources;

/// The first node in `order` on which one executor fits: fullest first, as tightly-pack does.
pub fn first_fitting_node(
    nodes: &[CandidateNode],
    order: &[usize],
    executor: Resources,
) -> Option<usize> {
    order
        .iter()
        .copied()
        .find(|&i| nodes.get(i).is_some_and(|n| executor.fits_in(&n.available)))
}

/// The minimal-fragmentation choice for one executor: among nodes in `order` with room for at
/// least one, prefer a node that already hosts executors of the same application
/// (`hosts_app_executors`, by node index), then the smallest capacity for such executors,
/// then the earliest in `order`.
///
/// Palantir subtracted the nodes' overhead a second time here (its quirk 3); this takes
/// `available` as given.
pub fn least_fragmenting_node(
    nodes: &[CandidateNode],
    order: &[usize],
    executor: Resources,
    hosts_app_executors: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(bool, i64, usize)> = None;
    for &i in order {
        let Some(node) = nodes.get(i) else { continue };
        let capacity = executor_capacity(node.available, Resources::ZERO, executor);
        if capacity < 1 {
            continue;
        }
        let hosts = hosts_app_executors(i);
        let better = match best {
            None => true,
            Some((best_hosts, best_capacity, _)) => {
                (hosts && !best_hosts) || (hosts == best_hosts && capacity < best_capacity)
            }
        };
        if better {
            best = Some((hosts, capacity, i));
        }
    }
    best.map(|(_, _, i)| i)
}

impl BinpackAlgorithm {
    /// Where one more executor goes under this algorithm: [`least_fragmenting_node`] for the
    /// minimal-fragmentation algorithms, else [`first_fitting_node`]. `order` should be the
    /// ordered executor candidates (restricted to the application's zone for single-zone
    /// algorithms when so configured).
    pub fn place_executor(
        self,
        nodes: &[CandidateNode],
        order: &[usize],
        executor: Resources,
        hosts_app_executors: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.minimises_fragmentation() {
            least_fragmenting_node(nodes, order, executor, hosts_app_executors)
        } else {
            first_fitting_node(nodes, order, executor)
        }
    }
}
