//! sparkgang's own behaviour: algorithm names, fixed quirks, failure reasons, single executors.

use super::*;

#[test]
fn algorithm_names_round_trip() {
    for algorithm in BinpackAlgorithm::ALL {
        assert_eq!(algorithm.name().parse::<BinpackAlgorithm>(), Ok(algorithm));
        assert_eq!(algorithm.to_string(), algorithm.name());
        let yaml = serde_yaml::to_string(&algorithm).unwrap();
        assert_eq!(yaml.trim(), algorithm.name());
        assert_eq!(
            serde_yaml::from_str::<BinpackAlgorithm>(&yaml).unwrap(),
            algorithm
        );
    }
    assert!(BinpackAlgorithm::SingleAzTightlyPack.is_single_az());
    assert!(!BinpackAlgorithm::AzAwareTightlyPack.is_single_az());
    assert!(BinpackAlgorithm::MinimalFragmentation.minimises_fragmentation());
}

#[test]
fn unknown_algorithm_lists_accepted_names() {
    let err = "tightly_pack".parse::<BinpackAlgorithm>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown bin-packing algorithm \"tightly_pack\"; accepted: tightly-pack, distribute-evenly, \
         minimal-fragmentation, az-aware-tightly-pack, single-az-tightly-pack, \
         single-az-minimal-fragmentation"
    );
    let err = serde_yaml::from_str::<BinpackAlgorithm>("\"\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("accepted: tightly-pack"), "{err}");
}

#[test]
fn single_az_packs_even_when_every_efficiency_is_zero() {
    // Palantir quirk 10: schedulable 0 everywhere makes every efficiency 0 and palantir then
    // returned "no capacity".
    let nodes = vec![
        CandidateNode::new("a", "z1", res(4, 4, 0), Resources::ZERO),
        CandidateNode::new("b", "z2", res(4, 4, 0), Resources::ZERO),
    ];
    for algorithm in [
        BinpackAlgorithm::SingleAzTightlyPack,
        BinpackAlgorithm::SingleAzMinimalFragmentation,
    ] {
        let p = pack(
            algorithm,
            &nodes,
            &["a", "b"],
            res(0, 0, 0),
            res(0, 0, 0),
            2,
        )
        .unwrap();
        assert_eq!(p.driver_node, 0, "{algorithm}");
        assert_eq!(p.executor_nodes, [0, 0], "{algorithm}");
    }
}

#[test]
fn single_az_needs_executor_candidates_in_the_drivers_zone() {
    // As palantir (lib v0.15.0): a zone without executor candidates is skipped even for 0
    // executors, since the application's later executors must stay in the driver's zone.
    let nodes = vec![
        node("cordoned", 4, 4, 0, "z1"),
        node("other", 4, 4, 0, "z2"),
    ];
    let request = PackingRequest {
        nodes: &nodes,
        driver_order: &[0],
        executor_order: &[1],
        driver: res(1, 1, 0),
        executor: res(1, 1, 0),
        executor_count: 0,
    };
    for algorithm in BinpackAlgorithm::ALL {
        let result = algorithm.pack(&request);
        if algorithm.is_single_az() {
            let err = result.unwrap_err();
            assert_eq!(
                err,
                PackingFailure::OnlyZonesWithoutExecutorCandidates {
                    zones: vec!["z1".to_owned()]
                },
                "{algorithm}"
            );
            assert!(err.to_string().contains("(z1)"), "{err}");
        } else {
            // az-aware falls back to packing across zones.
            assert_eq!(result.unwrap().driver_node, 0, "{algorithm}");
        }
    }
    // A zone with executor candidates is used even when it comes later.
    let both = PackingRequest {
        driver_order: &[0, 1],
        ..request
    };
    for algorithm in BinpackAlgorithm::ALL {
        let p = algorithm.pack(&both).unwrap();
        let zone_aware =
            algorithm.is_single_az() || algorithm == BinpackAlgorithm::AzAwareTightlyPack;
        let expected = if zone_aware { 1 } else { 0 };
        assert_eq!(p.driver_node, expected, "{algorithm}");
    }
    // With executors, the zone has none to offer.
    let request = PackingRequest {
        executor_count: 1,
        ..request
    };
    assert!(matches!(
        BinpackAlgorithm::SingleAzTightlyPack.pack(&request),
        Err(PackingFailure::ExecutorsDoNotFit { placeable: 0, .. })
    ));
    assert!(BinpackAlgorithm::TightlyPack.pack(&request).is_ok());
}

#[test]
fn single_az_minimal_fragmentation_prefers_zones_already_in_use() {
    // As palantir (lib v0.15.0): minimal fragmentation compares zones by how full their chosen
    // nodes were before the executors (driver included), tightly packing by how full they are
    // after. "fresh" ends full but was empty; "busy" was half used and ends at 3/4.
    let nodes = vec![
        node_with_totals("fresh", 4, 4, 4, 4, 0, 0, "z1"),
        node_with_totals("busy", 8, 16, 8, 16, 0, 0, "z2"),
    ];
    let place = |algorithm: BinpackAlgorithm| {
        let p = pack(
            algorithm,
            &nodes,
            &["fresh", "busy"],
            res(1, 1, 0),
            res(1, 1, 0),
            3,
        )
        .unwrap();
        (p.driver_node_name(&nodes).unwrap().to_owned(), p)
    };
    let (tightly, packing) = place(BinpackAlgorithm::SingleAzTightlyPack);
    assert_eq!(tightly, "fresh");
    assert_eq!(packing.efficiency.max, 1.0);
    let (minimal, packing) = place(BinpackAlgorithm::SingleAzMinimalFragmentation);
    assert_eq!(minimal, "busy");
    assert_eq!(packing.executor_nodes, [1, 1, 1]);
    // The packing's own efficiency still counts its executors: 12 of 16 used.
    assert_eq!(packing.efficiency.max, 0.75);
}

#[test]
fn failure_when_the_driver_fits_nowhere() {
    let nodes = vec![node("n1", 2, 3, 1, "z"), node("n2", 8, 2, 0, "z")];
    let err = pack(
        BinpackAlgorithm::TightlyPack,
        &nodes,
        &["n1", "n2"],
        res(2, 4, 0),
        res(1, 1, 0),
        1,
    )
    .unwrap_err();
    assert_eq!(
        err,
        PackingFailure::DriverDoesNotFit {
            driver: res(2, 4, 0),
            candidates: 2,
            most_available: res(8, 3, 1),
            short_in: vec![ResourceDimension::Memory],
        }
    );
    assert_eq!(err.missing_resources(), Resources::new(0, 1, 0));
    assert_eq!(err.missing_executors(), 0);
    assert!(
        err.to_string().contains("(not enough memory on any)"),
        "{err}"
    );

    // Every dimension exists somewhere, never together.
    let err = pack(
        BinpackAlgorithm::TightlyPack,
        &nodes,
        &["n1", "n2"],
        res(3, 3, 0),
        res(1, 1, 0),
        1,
    )
    .unwrap_err();
    assert!(
        matches!(&err, PackingFailure::DriverDoesNotFit { short_in, .. } if short_in.is_empty()),
        "{err:?}"
    );

    let err = pack(
        BinpackAlgorithm::TightlyPack,
        &nodes,
        &[],
        res(1, 1, 0),
        res(1, 1, 0),
        1,
    )
    .unwrap_err();
    assert_eq!(err, PackingFailure::NoDriverCandidates);
}

#[test]
fn failure_names_the_limiting_dimension() {
    // Palantir's "executor gpu does not fit": the driver fits on n1_z1, 3 of 4 executors fit.
    let nodes = vec![
        node("n1_z1", 4, 4, 4, "z1"),
        node("n1_z2", 128, 128, 0, "z2"),
    ];
    for algorithm in [
        BinpackAlgorithm::TightlyPack,
        BinpackAlgorithm::DistributeEvenly,
        BinpackAlgorithm::MinimalFragmentation,
        BinpackAlgorithm::AzAwareTightlyPack,
    ] {
        let err = pack(
            algorithm,
            &nodes,
            &["n1_z1", "n1_z2"],
            res(1, 1, 1),
            res(1, 1, 1),
            4,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PackingFailure::ExecutorsDoNotFit {
                requested: 4,
                placeable: 3,
                executor: res(1, 1, 1),
                driver_node: "n1_z1".to_owned(),
                zone: None,
                short_in: vec![ResourceDimension::Gpus],
            },
            "{algorithm}"
        );
        assert_eq!(err.missing_executors(), 1);
        assert_eq!(err.missing_resources(), res(1, 1, 1));
    }
    let err = pack(
        BinpackAlgorithm::SingleAzTightlyPack,
        &nodes,
        &["n1_z1", "n1_z2"],
        res(1, 1, 1),
        res(1, 1, 1),
        4,
    )
    .unwrap_err();
    assert!(
        matches!(&err, PackingFailure::ExecutorsDoNotFit { placeable: 3, zone: Some(z), .. } if z == "z1"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the driver fits, but at most 3 of 4 executors (cpu 1, memory 1, gpus 1 each) fit with it \
         (driver on n1_z1 in zone z1): not enough cpu, memory and GPUs"
    );
}

#[test]
fn failure_by_fragmentation_has_no_limiting_dimension() {
    // 2 executors of (2 cpu, 2 bytes): n1 has the cpu, n2 the memory.
    let nodes = vec![node("n1", 4, 1, 0, "z"), node("n2", 1, 4, 0, "z")];
    let err = pack(
        BinpackAlgorithm::TightlyPack,
        &nodes,
        &["n1", "n2"],
        res(0, 0, 0),
        res(2, 2, 0),
        2,
    )
    .unwrap_err();
    assert!(
        matches!(&err, PackingFailure::ExecutorsDoNotFit { placeable: 0, short_in, .. } if short_in.is_empty())
    );
    assert!(
        err.to_string().ends_with("not together on the same nodes"),
        "{err}"
    );
}

#[test]
fn invalid_and_repeated_indices() {
    let nodes = vec![node("n1", 2, 2, 0, "z"), node("n2", 2, 2, 0, "z")];
    let request = PackingRequest {
        nodes: &nodes,
        driver_order: &[7, 1],
        executor_order: &[9, 0, 0, 1, 0],
        driver: res(1, 1, 0),
        executor: res(1, 1, 0),
        executor_count: 3,
    };
    for algorithm in BinpackAlgorithm::ALL {
        let p = algorithm.pack(&request).unwrap();
        assert_eq!(p.driver_node, 1, "{algorithm}");
        let mut executors = p.executor_nodes.clone();
        executors.sort_unstable();
        assert_eq!(executors, [0, 0, 1], "{algorithm}");
    }
    let request = PackingRequest {
        executor_count: 4,
        ..request
    };
    for algorithm in BinpackAlgorithm::ALL {
        assert!(algorithm.pack(&request).is_err(), "{algorithm}");
    }
}

#[test]
fn packing_summaries() {
    let nodes = vec![
        node_with_totals("n1", 4, 4, 8, 8, 0, 0, "z"),
        node_with_totals("n2", 4, 4, 8, 8, 0, 0, "z"),
        node_with_totals("idle", 4, 4, 8, 8, 0, 0, "z"),
    ];
    let p = pack(
        BinpackAlgorithm::DistributeEvenly,
        &nodes,
        &["n2", "n1"],
        res(1, 2, 0),
        res(1, 1, 0),
        3,
    )
    .unwrap();
    assert_eq!(p.driver_node_name(&nodes), Some("n2"));
    assert_eq!(p.executor_node_names(&nodes), ["n2", "n1", "n2"]);
    assert_eq!(p.executors_per_node(), [(1, 2), (0, 1)]);
    assert_eq!(
        p.reserved_per_node(),
        [(1, res(3, 4, 0)), (0, res(1, 1, 0))]
    );
    // [n2 ×3 (cpu 3/4, memory 4/8), n1 (cpu 1/4, memory 1/8)]
    assert!(
        (p.efficiency.cpu - (3.0 * 0.75 + 0.25) / 4.0).abs() < 1e-9,
        "{:?}",
        p.efficiency
    );
    assert!(
        (p.efficiency.max - (3.0 * 0.75 + 0.25) / 4.0).abs() < 1e-9,
        "{:?}",
        p.efficiency
    );
    assert_eq!(p.efficiency.gpu, 1.0);
    // Over every node: n2 0.75, n1 0.25, idle 0.
    let cluster = p.cluster_efficiency(&nodes);
    assert!((cluster.cpu - 1.0 / 3.0).abs() < 1e-9, "{cluster:?}");
}

#[test]
fn fractional_cpu_efficiency_is_exact() {
    let n = CandidateNode::new(
        "n",
        "z",
        Resources::new(4000, 0, 0),
        Resources::new(4000, 0, 0),
    );
    let e = node_packing_efficiency(&n, Resources::new(500, 0, 0));
    assert_eq!(e.cpu, 0.125);
}

/// Extender `TestMinimalFragmentation`: the node already hosting the app's executor wins.
#[test]
fn one_executor_prefers_nodes_with_the_apps_executors() {
    let nodes = vec![node("node1", 5, 5, 0, "z1"), node("node2", 6, 6, 0, "z1")];
    let order = [0, 1];
    let on_node2 = |i: usize| i == 1;
    assert_eq!(
        least_fragmenting_node(&nodes, &order, res(1, 1, 0), on_node2),
        Some(1)
    );
    assert_eq!(
        least_fragmenting_node(&nodes, &order, res(1, 1, 0), |_| false),
        Some(0)
    );
    assert_eq!(first_fitting_node(&nodes, &order, res(1, 1, 0)), Some(0));
    assert_eq!(
        BinpackAlgorithm::SingleAzMinimalFragmentation.place_executor(
            &nodes,
            &order,
            res(1, 1, 0),
            on_node2
        ),
        Some(1)
    );
    assert_eq!(
        BinpackAlgorithm::SingleAzTightlyPack.place_executor(
            &nodes,
            &order,
            res(1, 1, 0),
            on_node2
        ),
        Some(0)
    );
    assert_eq!(
        least_fragmenting_node(&nodes, &order, res(7, 1, 0), |_| true),
        None
    );
    assert_eq!(first_fitting_node(&nodes, &order, res(7, 1, 0)), None);
}

/// Extender `TestMinimalFragmentationEdgeCase` (PR #236): node1 is first in order (less free
/// memory) but takes 2 such executors, node2 only 1: the smallest capacity wins.
#[test]
fn one_executor_goes_to_the_smallest_capacity() {
    // 8 cpu / 8 GiB nodes; node1 holds a driver (1 cpu, 4 bytes), node2 one (4 cpu, 1 byte).
    let gib = 1 << 30;
    let nodes = vec![
        CandidateNode::new(
            "node1",
            "z1",
            Resources::new(7000, 8 * gib - 4, 1),
            Resources::new(8000, 8 * gib, 1),
        ),
        CandidateNode::new(
            "node2",
            "z1",
            Resources::new(4000, 8 * gib - 1, 1),
            Resources::new(8000, 8 * gib, 1),
        ),
    ];
    let ordering = order_nodes(&nodes, |_| true, None, None);
    assert_eq!(names(&nodes, &ordering.executor), ["node1", "node2"]);
    let executor = Resources::new(3000, 1, 0);
    assert_eq!(
        least_fragmenting_node(&nodes, &ordering.executor, executor, |_| false),
        Some(1)
    );
    assert_eq!(
        first_fitting_node(&nodes, &ordering.executor, executor),
        Some(0)
    );
}
