//! Property tests: no packing overcommits a node, places the wrong number of executors or uses
//! a node that is not a candidate, and the algorithms agree on feasibility where they must.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
struct Cluster {
    nodes: Vec<CandidateNode>,
    offered_for_driver: Vec<bool>,
}

fn arb_resources(
    max_cpu_milli: i64,
    max_memory: i64,
    max_gpus: i64,
) -> impl Strategy<Value = Resources> {
    // cpu in quarter cores; a little negative availability happens on overcommitted nodes.
    (-1..=max_cpu_milli / 250, -1..=max_memory, 0..=max_gpus)
        .prop_map(|(cpu, memory, gpus)| Resources::new(cpu * 250, memory, gpus))
}

fn arb_node(i: usize) -> impl Strategy<Value = CandidateNode> {
    (
        0..3usize,
        arb_resources(16_000, 32, 2),
        arb_resources(4_000, 8, 1),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(zone, available, used, ready, unschedulable)| {
            let mut node = CandidateNode::new(
                format!("n{i}"),
                format!("z{zone}"),
                available,
                available + used,
            );
            node.ready = ready;
            node.unschedulable = unschedulable;
            node
        })
}

fn arb_cluster() -> impl Strategy<Value = Cluster> {
    (1..=7usize)
        .prop_flat_map(|n| {
            let nodes: Vec<_> = (0..n).map(arb_node).collect();
            (nodes, prop::collection::vec(prop::bool::weighted(0.8), n))
        })
        .prop_map(|(nodes, offered_for_driver)| Cluster {
            nodes,
            offered_for_driver,
        })
}

fn arb_demand() -> impl Strategy<Value = (Resources, Resources, usize)> {
    let pod = (0..=16i64, 0..=8i64, 0..=1i64).prop_map(|(q, m, g)| Resources::new(q * 250, m, g));
    (pod.clone(), pod, 0..=6usize)
}

/// Can `count` executors go on `executors` with the driver on `driver`? By enumeration.
fn brute_force_fits(
    nodes: &[CandidateNode],
    driver: usize,
    executors: &[usize],
    d: Resources,
    e: Resources,
    count: usize,
) -> bool {
    fn place(
        nodes: &[CandidateNode],
        rest: &[usize],
        driver: usize,
        d: Resources,
        e: Resources,
        remaining: usize,
    ) -> bool {
        let Some((&first, rest)) = rest.split_first() else {
            return remaining == 0;
        };
        let base = if first == driver { d } else { Resources::ZERO };
        (0..=remaining)
            .take_while(|&k| k == 0 || (base + e.times(k as i64)).fits_in(&nodes[first].available))
            .any(|k| place(nodes, rest, driver, d, e, remaining - k))
    }
    d.fits_in(&nodes[driver].available) && place(nodes, executors, driver, d, e, count)
}

/// The most executors (up to `count`) that fit with the driver on `driver`, node by node.
fn most_executors(
    nodes: &[CandidateNode],
    driver: usize,
    executors: &[usize],
    d: Resources,
    e: Resources,
    count: usize,
) -> usize {
    executors
        .iter()
        .map(|&n| {
            let base = if n == driver { d } else { Resources::ZERO };
            (1..=count)
                .take_while(|&k| (base + e.times(k as i64)).fits_in(&nodes[n].available))
                .count()
        })
        .sum::<usize>()
        .min(count)
}

fn check_packing(
    algorithm: BinpackAlgorithm,
    request: &PackingRequest<'_>,
    packing: &Packing,
) -> Result<(), TestCaseError> {
    let nodes = request.nodes;
    prop_assert!(
        request.driver_order.contains(&packing.driver_node),
        "{algorithm}: driver not a candidate"
    );
    prop_assert_eq!(
        packing.executor_nodes.len(),
        request.executor_count,
        "{}",
        algorithm
    );
    let mut placed = vec![Resources::ZERO; nodes.len()];
    placed[packing.driver_node] += request.driver;
    for &n in &packing.executor_nodes {
        prop_assert!(
            request.executor_order.contains(&n),
            "{algorithm}: executor on a non-candidate"
        );
        placed[n] += request.executor;
        if algorithm.is_single_az() {
            prop_assert_eq!(
                &nodes[n].zone,
                &nodes[packing.driver_node].zone,
                "{}: left the zone",
                algorithm
            );
        }
    }
    for (node, placed) in nodes.iter().zip(&placed) {
        if *placed != Resources::ZERO {
            prop_assert!(
                placed.fits_in(&node.available),
                "{algorithm}: {} overcommitted",
                node.name
            );
        }
    }
    prop_assert_eq!(
        packing
            .reserved_per_node()
            .into_iter()
            .map(|(_, r)| r)
            .sum::<Resources>(),
        request.driver + request.executor.times(request.executor_count as i64)
    );
    prop_assert!(packing.efficiency.max.is_finite());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn packings_are_valid_and_algorithms_agree(cluster in arb_cluster(), (driver, executor, count) in arb_demand()) {
        let nodes = &cluster.nodes;
        let ordering = order_nodes(nodes, |n| {
            let i = nodes.iter().position(|m| m.name == n.name).unwrap_or(0);
            cluster.offered_for_driver[i]
        }, None, None);
        let request = PackingRequest {
            nodes,
            driver_order: &ordering.driver,
            executor_order: &ordering.executor,
            driver,
            executor,
            executor_count: count,
        };
        let result = |a: BinpackAlgorithm| a.pack(&request);
        for algorithm in BinpackAlgorithm::ALL {
            if let Ok(packing) = result(algorithm) {
                check_packing(algorithm, &request, &packing)?;
            }
        }

        // Across zones: feasible exactly when some driver candidate admits all executors.
        let fits = ordering.driver.iter().any(|&d| brute_force_fits(nodes, d, &ordering.executor, driver, executor, count));
        let tightly = result(BinpackAlgorithm::TightlyPack);
        prop_assert_eq!(tightly.is_ok(), fits);
        // The three distributions share the driver loop and fit exactly when capacities add up.
        for algorithm in [BinpackAlgorithm::DistributeEvenly, BinpackAlgorithm::MinimalFragmentation] {
            let other = result(algorithm);
            prop_assert_eq!(other.as_ref().ok().map(|p| p.driver_node), tightly.as_ref().ok().map(|p| p.driver_node), "{}", algorithm);
        }
        prop_assert_eq!(result(BinpackAlgorithm::AzAwareTightlyPack).is_ok(), fits);

        // Single zone: feasible exactly when some driver candidate admits all executors of its zone.
        let fits_in_a_zone = ordering.driver.iter().any(|&d| {
            let same_zone: Vec<usize> = ordering.executor.iter().copied().filter(|&n| nodes[n].zone == nodes[d].zone).collect();
            // A zone without executor candidates never takes a gang, even without executors.
            !same_zone.is_empty() && brute_force_fits(nodes, d, &same_zone, driver, executor, count)
        });
        prop_assert_eq!(result(BinpackAlgorithm::SingleAzTightlyPack).is_ok(), fits_in_a_zone);
        prop_assert_eq!(result(BinpackAlgorithm::SingleAzMinimalFragmentation).is_ok(), fits_in_a_zone);
        if fits_in_a_zone {
            prop_assert!(fits);
        }

        // Failure reasons are accurate.
        match tightly {
            Err(PackingFailure::NoDriverCandidates) => prop_assert!(ordering.driver.is_empty()),
            Err(PackingFailure::DriverDoesNotFit { candidates, short_in, most_available, .. }) => {
                prop_assert_eq!(candidates, ordering.driver.len());
                prop_assert!(ordering.driver.iter().all(|&d| !driver.fits_in(&nodes[d].available)));
                for dim in short_in {
                    prop_assert!(dim.of(&driver) > dim.of(&most_available));
                }
            }
            Err(PackingFailure::ExecutorsDoNotFit { placeable, requested, driver_node, .. }) => {
                prop_assert_eq!(requested, count);
                let best = ordering.driver.iter()
                    .filter(|&&d| driver.fits_in(&nodes[d].available))
                    .map(|&d| most_executors(nodes, d, &ordering.executor, driver, executor, count))
                    .max();
                prop_assert_eq!(Some(placeable), best);
                prop_assert!(placeable < count);
                let d = nodes.iter().position(|n| n.name == driver_node).unwrap();
                prop_assert_eq!(most_executors(nodes, d, &ordering.executor, driver, executor, count), placeable);
            }
            Err(e @ PackingFailure::OnlyZonesWithoutExecutorCandidates { .. }) => {
                return Err(TestCaseError::fail(format!("only single-zone packing skips zones: {e}")));
            }
            Ok(_) => {}
        }
    }

    #[test]
    fn one_executor_placement_is_a_fitting_candidate(cluster in arb_cluster(), (_, executor, _) in arb_demand(), hosts in prop::collection::vec(any::<bool>(), 7)) {
        let nodes = &cluster.nodes;
        let ordering = order_nodes(nodes, |_| true, None, None);
        let hosts_app = |i: usize| hosts.get(i).copied().unwrap_or(false);
        let first = first_fitting_node(nodes, &ordering.executor, executor);
        let least = least_fragmenting_node(nodes, &ordering.executor, executor, hosts_app);
        prop_assert_eq!(first.is_some(), least.is_some());
        for chosen in [first, least].into_iter().flatten() {
            prop_assert!(ordering.executor.contains(&chosen));
            prop_assert!(executor.fits_in(&nodes[chosen].available));
        }
        if let Some(least) = least {
            let capacity = |i: usize| executor_capacity(nodes[i].available, Resources::ZERO, executor);
            for &other in &ordering.executor {
                if capacity(other) >= 1 {
                    prop_assert!(hosts_app(least) || !hosts_app(other));
                    if hosts_app(least) == hosts_app(other) {
                        prop_assert!(capacity(least) <= capacity(other));
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Numbering zones changes nothing in the node order.
    #[test]
    fn zoned_priority_order_is_the_presorted_order(cluster in arb_cluster()) {
        let nodes = &cluster.nodes;
        let mut sorted: Vec<usize> = (0..nodes.len()).collect();
        sorted.sort_by_key(|&i| {
            let n = &nodes[i];
            (n.available.memory_bytes, n.available.cpu_milli, n.name.clone(), i)
        });
        // Ids in order of first appearance in the node slice (any numbering must do).
        let mut zones: Vec<&str> = Vec::new();
        let ids: Vec<u32> = nodes
            .iter()
            .map(|n| match zones.iter().position(|z| *z == n.zone) {
                Some(z) => z as u32,
                None => {
                    zones.push(&n.zone);
                    (zones.len() - 1) as u32
                }
            })
            .collect();
        prop_assert_eq!(
            priority_order_presorted_zoned(nodes, sorted.iter().copied(), &ids, zones.len()),
            priority_order_presorted(nodes, sorted.iter().copied())
        );
    }
}
