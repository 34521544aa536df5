//! Every test vector of palantir's `k8s-spark-scheduler-lib` (reference spec §15.2).

use super::*;

/// Expected outcome: `None` = no fit; else the driver node and, if given, executors per node.
type Expected = Option<(&'static str, Option<&'static [(&'static str, usize)]>)>;

struct Case {
    name: &'static str,
    driver: Resources,
    executor: Resources,
    count: usize,
    nodes: Vec<CandidateNode>,
    order: &'static [&'static str],
    expected: Expected,
}

fn check(algorithm: BinpackAlgorithm, cases: Vec<Case>) {
    for case in cases {
        let result = pack(
            algorithm,
            &case.nodes,
            case.order,
            case.driver,
            case.executor,
            case.count,
        );
        match (case.expected, result) {
            (None, Err(_)) => {}
            (None, Ok(p)) => panic!("{algorithm} / {}: expected no fit, got {p:?}", case.name),
            (Some(_), Err(e)) => panic!("{algorithm} / {}: expected a fit, got: {e}", case.name),
            (Some((driver, expected_counts)), Ok(p)) => {
                assert_eq!(
                    case.nodes[p.driver_node].name, driver,
                    "{algorithm} / {}: driver",
                    case.name
                );
                assert_eq!(
                    p.executor_nodes.len(),
                    case.count,
                    "{algorithm} / {}",
                    case.name
                );
                if let Some(expected_counts) = expected_counts {
                    let expected: BTreeMap<String, usize> = expected_counts
                        .iter()
                        .map(|&(n, c)| (n.to_owned(), c))
                        .collect();
                    assert_eq!(
                        counts(&case.nodes, &p),
                        expected,
                        "{algorithm} / {}: executors",
                        case.name
                    );
                }
            }
        }
    }
}

fn z1(nodes: &[(&str, i64, i64, i64)]) -> Vec<CandidateNode> {
    nodes
        .iter()
        .map(|&(n, c, m, g)| node(n, c, m, g, "zone1"))
        .collect()
}

/// The vectors shared by tightly-pack and minimal-fragmentation (`pack_tightly_test.go`).
fn shared_cases() -> Vec<Case> {
    vec![
        Case {
            name: "driver memory does not fit",
            driver: res(2, 4, 1),
            executor: res(1, 1, 0),
            count: 1,
            nodes: z1(&[("n1", 2, 3, 1)]),
            order: &["n1"],
            expected: None,
        },
        Case {
            name: "application perfectly fits",
            driver: res(1, 2, 1),
            executor: res(1, 1, 1),
            count: 40,
            nodes: z1(&[("n1", 13, 14, 13), ("n2", 12, 12, 12), ("n3", 16, 16, 16)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", Some(&[("n1", 12), ("n2", 12), ("n3", 16)]))),
        },
        Case {
            name: "executor cpu do not fit",
            driver: res(1, 1, 0),
            executor: res(1, 2, 1),
            count: 8,
            nodes: z1(&[("n1", 8, 20, 8)]),
            order: &["n1"],
            expected: None,
        },
        Case {
            name: "Fits when cluster has more nodes than executors",
            driver: res(1, 2, 1),
            executor: res(2, 3, 2),
            count: 2,
            nodes: z1(&[("n1", 8, 20, 8), ("n2", 8, 20, 8), ("n3", 8, 20, 8)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", None)),
        },
        executor_gpu_does_not_fit(),
    ]
}

fn executor_gpu_does_not_fit() -> Case {
    Case {
        name: "executor gpu does not fit",
        driver: res(1, 1, 1),
        executor: res(1, 1, 1),
        count: 4,
        nodes: vec![
            node("n1_z1", 4, 4, 4, "z1"),
            node("n1_z2", 128, 128, 0, "z2"),
        ],
        order: &["n1_z1", "n1_z2"],
        expected: None,
    }
}

#[test]
fn tightly_pack() {
    let mut cases = vec![
        Case {
            name: "application fits",
            driver: res(1, 3, 1),
            executor: res(2, 5, 1),
            count: 2,
            nodes: z1(&[("n1", 5, 10, 2), ("n2", 4, 5, 1)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n1", 1), ("n2", 1)]))),
        },
        Case {
            name: "tightly packs",
            driver: res(1, 3, 1),
            executor: res(2, 5, 1),
            count: 5,
            nodes: z1(&[("n1", 11, 28, 6), ("n2", 10, 20, 6)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n1", 5)]))),
        },
    ];
    cases.extend(shared_cases());
    check(BinpackAlgorithm::TightlyPack, cases);
}

#[test]
fn distribute_evenly() {
    let cases = vec![
        Case {
            name: "application fits",
            driver: res(1, 3, 1),
            executor: res(2, 5, 1),
            count: 2,
            nodes: z1(&[("n1", 5, 10, 3), ("n2", 4, 5, 3)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n1", 1), ("n2", 1)]))),
        },
        Case {
            name: "driver memory does not fit",
            driver: res(2, 4, 1),
            executor: res(1, 1, 1),
            count: 1,
            nodes: z1(&[("n1", 2, 3, 2)]),
            order: &["n1"],
            expected: None,
        },
        Case {
            name: "application perfectly fits",
            driver: res(1, 2, 1),
            executor: res(1, 1, 1),
            count: 40,
            nodes: z1(&[("n1", 13, 14, 13), ("n2", 12, 12, 12), ("n3", 16, 16, 16)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", Some(&[("n1", 12), ("n2", 12), ("n3", 16)]))),
        },
        Case {
            name: "executor cpu do not fit",
            driver: res(1, 1, 0),
            executor: res(1, 2, 1),
            count: 8,
            nodes: z1(&[("n1", 8, 20, 8)]),
            order: &["n1"],
            expected: None,
        },
        Case {
            name: "Fits when cluster has more nodes than executors",
            driver: res(1, 2, 1),
            executor: res(2, 3, 1),
            count: 2,
            nodes: z1(&[("n1", 8, 20, 8), ("n2", 8, 20, 8), ("n3", 8, 20, 8)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", None)),
        },
        executor_gpu_does_not_fit(),
    ];
    check(BinpackAlgorithm::DistributeEvenly, cases);
}

#[test]
fn distribute_evenly_rotates_in_order() {
    let nodes = z1(&[("n1", 8, 20, 8), ("n2", 8, 20, 8), ("n3", 2, 20, 8)]);
    let p = pack(
        BinpackAlgorithm::DistributeEvenly,
        &nodes,
        &["n1", "n2", "n3"],
        res(1, 1, 0),
        res(1, 1, 0),
        7,
    )
    .unwrap();
    // n3 takes 2 executors and then leaves the rotation.
    assert_eq!(
        names(&nodes, &p.executor_nodes),
        ["n1", "n2", "n3", "n1", "n2", "n3", "n1"]
    );
}

/// Vectors of `az_aware_pack_tightly_test.go` and `single_az_pack_tightly_test.go`.
fn zone_cases(single_az: bool) -> Vec<Case> {
    vec![
        Case {
            name: "picks the first zone when application fits entirely in either of the zones",
            driver: res(1, 3, 1),
            executor: res(2, 5, 2),
            count: 2,
            nodes: vec![
                node("n1_z1", 4, 5, 4, "z1"),
                node("n1_z2", 4, 8, 4, "z2"),
                node("n2_z1", 6, 15, 6, "z1"),
                node("n2_z2", 6, 20, 6, "z2"),
            ],
            order: &["n1_z1", "n1_z2", "n2_z1", "n2_z2"],
            expected: Some(("n1_z1", Some(&[("n2_z1", 2)]))),
        },
        Case {
            name: "picks the zone where application fits entirely",
            driver: res(1, 3, 1),
            executor: res(2, 5, 1),
            count: 2,
            nodes: vec![
                node("n1_z1", 4, 5, 1, "z1"),
                node("n1_z2", 4, 8, 2, "z2"),
                node("n2_z2", 6, 20, 10, "z2"),
            ],
            order: &["n1_z1", "n1_z2", "n2_z2"],
            expected: Some(("n1_z2", Some(&[("n1_z2", 1), ("n2_z2", 1)]))),
        },
        Case {
            name: if single_az {
                "Does not schedule if application does not fit entirely in one zone"
            } else {
                "falls back to cross zone allocation if application does not fit entirely in one zone"
            },
            driver: res(1, 1, 1),
            executor: res(2, 1, 1),
            count: 2,
            nodes: vec![
                node("n1_z1", 4, 5, 1, "z1"),
                node("n2_z1", 4, 6, 1, "z1"),
                node("n1_z2", 4, 7, 1, "z2"),
                node("n2_z2", 6, 7, 0, "z2"),
            ],
            order: &["n1_z1", "n2_z1", "n1_z2", "n2_z2"],
            expected: if single_az {
                None
            } else {
                Some(("n1_z1", Some(&[("n2_z1", 1), ("n1_z2", 1)])))
            },
        },
        executor_gpu_does_not_fit(),
    ]
}

#[test]
fn az_aware_tightly_pack() {
    check(BinpackAlgorithm::AzAwareTightlyPack, zone_cases(false));
}

#[test]
fn single_az_tightly_pack() {
    let mut cases = zone_cases(true);
    cases.push(Case {
        name: "prefer AZ with better packing",
        driver: res(1, 0, 0),
        executor: res(0, 0, 0),
        count: 0,
        nodes: vec![
            node_with_totals("n1_z1", 0, 10, 0, 0, 0, 0, "z1"),
            node_with_totals("n2_z1", 0, 10, 0, 0, 0, 0, "z1"),
            node_with_totals("n3_z1", 10, 10, 0, 0, 0, 0, "z1"),
            node_with_totals("n1_z2", 9, 10, 0, 0, 0, 0, "z2"),
            node_with_totals("n2_z2", 10, 10, 0, 0, 0, 0, "z2"),
            node_with_totals("n3_z2", 10, 10, 0, 0, 0, 0, "z2"),
        ],
        order: &["n1_z1", "n2_z1", "n3_z1", "n1_z2", "n2_z2", "n3_z2"],
        expected: Some(("n1_z2", Some(&[]))),
    });
    cases.push(Case {
        name: "prefer AZ with better packing per chosen nodes over higher cluster and higher avg AZ packings",
        driver: res(1, 4, 0),
        executor: res(4, 1, 0),
        count: 3,
        nodes: vec![
            node_with_totals("n1_z1", 3, 4, 6, 10, 0, 0, "z1"),
            node_with_totals("n2_z1", 3, 10, 3, 10, 0, 0, "z1"),
            node_with_totals("n3_z1", 16, 16, 16, 16, 0, 0, "z1"),
            node_with_totals("n1_z3", 6, 10, 6, 10, 0, 0, "z3"),
            node_with_totals("n2_z3", 10, 10, 4, 10, 0, 0, "z3"),
            node_with_totals("n3_z3", 9, 10, 9, 10, 0, 0, "z3"),
        ],
        order: &["n1_z1", "n2_z1", "n3_z1", "n1_z3", "n2_z3", "n3_z3"],
        expected: Some(("n1_z3", Some(&[("n1_z3", 1), ("n2_z3", 2)]))),
    });
    check(BinpackAlgorithm::SingleAzTightlyPack, cases);
}

#[test]
fn single_az_efficiencies_are_weighted_by_pods() {
    // The last case above: zone z1 averages 0.7625 over [n1_z1, n3_z1 ×3], zone z3 0.85 over
    // [n1_z3 ×2, n2_z3 ×2].
    let nodes = vec![
        node_with_totals("n1_z1", 3, 4, 6, 10, 0, 0, "z1"),
        node_with_totals("n2_z1", 3, 10, 3, 10, 0, 0, "z1"),
        node_with_totals("n3_z1", 16, 16, 16, 16, 0, 0, "z1"),
    ];
    let p = pack(
        BinpackAlgorithm::TightlyPack,
        &nodes,
        &["n1_z1", "n2_z1", "n3_z1"],
        res(1, 4, 0),
        res(4, 1, 0),
        3,
    )
    .unwrap();
    assert!(
        (p.efficiency.max - 0.7625).abs() < 1e-9,
        "{:?}",
        p.efficiency
    );
    let nodes = vec![
        node_with_totals("n1_z3", 6, 10, 6, 10, 0, 0, "z3"),
        node_with_totals("n2_z3", 10, 10, 4, 10, 0, 0, "z3"),
        node_with_totals("n3_z3", 9, 10, 9, 10, 0, 0, "z3"),
    ];
    let p = pack(
        BinpackAlgorithm::TightlyPack,
        &nodes,
        &["n1_z3", "n2_z3", "n3_z3"],
        res(1, 4, 0),
        res(4, 1, 0),
        3,
    )
    .unwrap();
    assert!((p.efficiency.max - 0.85).abs() < 1e-9, "{:?}", p.efficiency);
}

#[test]
fn minimal_fragmentation() {
    let small = |nodes: &[(&str, i64, i64, i64)]| z1(nodes);
    let mut cases = vec![
        Case {
            name: "application fits",
            driver: res(1, 3, 1),
            executor: res(2, 5, 1),
            count: 2,
            nodes: small(&[("n1", 5, 10, 2), ("n2", 4, 5, 1)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n1", 1), ("n2", 1)]))),
        },
        Case {
            name: "when not fitting on a single node, executors are first fitted on nodes with the most available resources",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[("n1", 5, 25, 6), ("n2", 9, 24, 6)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n1", 1), ("n2", 4)]))),
        },
        Case {
            name: "successfully fits executor-less applications",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 0,
            nodes: small(&[("n1", 5, 25, 6), ("n2", 5, 25, 6)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[]))),
        },
        Case {
            name: "successfully fits executor-less applications, and accounts for existing reservations",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 1,
            nodes: small(&[("n1", 5, 25, 6), ("n2", 5, 25, 6)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n1", 1)]))),
        },
        Case {
            name: "executors fits perfectly on a single node",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[("n1", 10, 25, 6), ("n2", 5, 25, 6), ("n3", 20, 25, 6)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", Some(&[("n3", 5)]))),
        },
        Case {
            name: "executors would fit on a single node, but we consider this too wasteful and revert to fragmenting",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[("n1", 10, 25, 6), ("n2", 5, 25, 6), ("n3", 100, 100, 6)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", Some(&[("n1", 4), ("n2", 1)]))),
        },
        Case {
            name: "executors fit on the smallest nodes that can accommodate all of them",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[("n1", 200, 500, 6), ("n2", 100, 250, 6)]),
            order: &["n1", "n2"],
            expected: Some(("n1", Some(&[("n2", 5)]))),
        },
        Case {
            name: "consider 'empty' nodes when the app can't fit on 'non-empty' ones",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[
                ("n1", 1, 3, 6),
                ("n2", 8, 10, 6),
                ("n3", 20, 25, 6),
                ("n4", 20, 25, 6),
                ("n5", 20, 25, 6),
            ]),
            order: &["n1", "n2", "n3", "n4", "n5"],
            expected: Some(("n1", Some(&[("n3", 5)]))),
        },
        Case {
            name: "when available resources are equal, prefer nodes according to the requested priorities",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[
                ("n1", 1, 3, 6),
                ("n2", 8, 10, 6),
                ("n3", 20, 25, 6),
                ("n4", 20, 25, 6),
                ("n5", 20, 25, 6),
            ]),
            order: &["n1", "n2", "n3", "n4", "n5"],
            expected: Some(("n1", Some(&[("n3", 5)]))),
        },
        Case {
            name: "picks the smallest node that fits the remaining executors",
            driver: res(1, 3, 0),
            executor: res(2, 5, 0),
            count: 5,
            nodes: small(&[("n1", 6, 30, 6), ("n2", 3, 30, 6), ("n3", 8, 30, 6)]),
            order: &["n1", "n2", "n3"],
            expected: Some(("n1", Some(&[("n2", 1), ("n3", 4)]))),
        },
        Case {
            name: "driver fits but not executors",
            driver: res(2, 3, 1),
            executor: res(1, 1, 0),
            count: 1,
            nodes: small(&[("n1", 2, 3, 1)]),
            order: &["n1"],
            expected: None,
        },
    ];
    cases.extend(shared_cases());
    check(BinpackAlgorithm::MinimalFragmentation, cases);
}

#[test]
fn single_packing_efficiency() {
    let n1 = node_with_totals("n1", 6, 10, 8, 10, 1, 1, "zone1");
    let e = node_packing_efficiency(&n1, res(1, 1, 1));
    assert!((e.cpu - 0.5).abs() < 1e-4);
    assert!((e.memory - 0.3).abs() < 1e-4);
    assert_eq!(e.gpu, Some(1.0));
    assert!((e.max() - 1.0).abs() < 1e-4);
}

#[test]
fn multi_packing_efficiency() {
    for (gpus, reserved_gpus, expected_gpu, expected_max) in [
        ([2, 0, 2], [2, 0, 1], 0.75, (1.0 + 0.7 + 0.9) / 3.0),
        ([0, 0, 0], [0, 0, 0], 1.0, 0.7),
    ] {
        let nodes: Vec<CandidateNode> = (0..3)
            .map(|i| {
                node_with_totals(
                    &format!("n{}", i + 1),
                    10,
                    10,
                    10,
                    10,
                    gpus[i],
                    gpus[i],
                    "zone1",
                )
            })
            .collect();
        let reserved = [
            res(5, 5, reserved_gpus[0]),
            res(2, 7, reserved_gpus[1]),
            res(9, 2, reserved_gpus[2]),
        ];
        let average = AveragePackingEfficiency::of(
            nodes
                .iter()
                .zip(reserved)
                .map(|(n, r)| node_packing_efficiency(n, r)),
        );
        assert!(
            (average.cpu - (0.5 + 0.2 + 0.9) / 3.0).abs() < 1e-4,
            "{average:?}"
        );
        assert!(
            (average.memory - (0.5 + 0.7 + 0.2) / 3.0).abs() < 1e-4,
            "{average:?}"
        );
        assert!((average.gpu - expected_gpu).abs() < 1e-4, "{average:?}");
        assert!((average.max - expected_max).abs() < 1e-4, "{average:?}");
    }
}

#[test]
fn empty_efficiency_list_is_zero() {
    assert_eq!(
        AveragePackingEfficiency::of([]),
        AveragePackingEfficiency::default()
    );
}

#[test]
fn capacity_against_single_dimension() {
    use super::super::capacity::capacity_in_dimension;
    assert_eq!(capacity_in_dimension(2, 1, 0), i64::MAX);
    assert_eq!(capacity_in_dimension(2, 0, 1), 2);
    assert_eq!(capacity_in_dimension(3, 1, 2), 1);
    assert_eq!(capacity_in_dimension(2, 3, 1), 0);
}

#[test]
fn node_capacity() {
    let executor = Resources::new(1, 1, 1);
    let cases = [
        (
            "no available resources",
            Resources::ZERO,
            Resources::ZERO,
            0,
        ),
        (
            "available resources fit exactly",
            executor,
            Resources::ZERO,
            1,
        ),
        (
            "capacity is limited by cpu",
            Resources::new(3, 4, 4),
            Resources::ZERO,
            3,
        ),
        (
            "capacity is limited by memory",
            Resources::new(4, 3, 4),
            Resources::ZERO,
            3,
        ),
        (
            "capacity is limited by gpu",
            Resources::new(4, 4, 3),
            Resources::ZERO,
            3,
        ),
        (
            "does not fit due to existing reserved resources",
            executor,
            Resources::new(1, 0, 0),
            0,
        ),
    ];
    for (name, available, reserved, expected) in cases {
        assert_eq!(
            executor_capacity(available, reserved, executor),
            expected,
            "{name}"
        );
    }
}
