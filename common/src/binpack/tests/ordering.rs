//! Node ordering: palantir's `nodesorting_test.go` vectors and sparkgang's deterministic ties.

use super::*;

/// A node with available (cpu cores, memory bytes) in `zone`.
fn at(name: &str, cpu: i64, memory: i64, zone: &str) -> CandidateNode {
    node(name, cpu, memory, 0, zone)
}

fn ordered(nodes: &[CandidateNode]) -> Vec<String> {
    names(nodes, &priority_order(nodes))
}

#[test]
fn resources_sorting_is_memory_then_cpu() {
    // TestResourcesSorting
    let base = at("base", 1, 1, "z");
    let more_memory = at("more-memory", 1, 2, "z");
    let more_cpu = at("more-cpu", 2, 1, "z");
    assert_eq!(
        ordered(&[more_memory.clone(), base.clone()]),
        ["base", "more-memory"]
    );
    assert_eq!(
        ordered(&[more_cpu.clone(), base.clone()]),
        ["base", "more-cpu"]
    );
    // Memory outranks cpu.
    assert_eq!(
        ordered(&[more_memory, more_cpu]),
        ["more-cpu", "more-memory"]
    );
}

#[test]
fn schedule_context_sorting() {
    // TestScheduleContextSorting: zone priority, then resources, then name.
    let nodes = vec![
        at("lower", 1, 1, "roomy-zone"),
        at("more", 1, 2, "full-zone"),
        at("base2", 1, 1, "full-zone"),
        at("base1", 1, 1, "full-zone"),
        at("padding", 100, 100, "roomy-zone"),
    ];
    assert_eq!(
        ordered(&nodes),
        ["base1", "base2", "more", "lower", "padding"]
    );
}

#[test]
fn az_aware_node_sorting() {
    // TestAZAwareNodeSorting
    let nodes = vec![
        at("zone1Node1", 1, 1, "zone1"),
        at("zone1Node2", 1, 2, "zone1"),
        at("zone1Node3", 2, 1, "zone1"),
        at("zone2Node1", 1, 1, "zone2"),
    ];
    assert_eq!(
        ordered(&nodes),
        ["zone2Node1", "zone1Node1", "zone1Node3", "zone1Node2"]
    );
}

#[test]
fn az_aware_node_sorting_works_if_zone_label_is_missing() {
    // TestAZAwareNodeSortingWorksIfZoneLabelIsMissing
    let no_labels = |name: &str, cpu, memory| {
        CandidateNode::with_labels(
            name,
            BTreeMap::new(),
            res(cpu, memory, 0),
            res(cpu, memory, 0),
        )
    };
    let nodes = vec![
        no_labels("node1", 2, 1),
        no_labels("node2", 2, 2),
        no_labels("node3", 1, 1),
    ];
    assert!(nodes.iter().all(|n| n.zone == DEFAULT_ZONE));
    assert_eq!(ordered(&nodes), ["node3", "node1", "node2"]);
}

#[test]
fn ties_are_broken_by_zone_name_and_node_name() {
    // Palantir issue #231: equal zones and equal nodes sorted arbitrarily.
    let nodes = vec![
        at("b", 1, 1, "zone-b"),
        at("d", 1, 1, "zone-a"),
        at("a", 1, 1, "zone-b"),
        at("c", 1, 1, "zone-a"),
    ];
    assert_eq!(ordered(&nodes), ["c", "d", "a", "b"]);
    let mut reversed = nodes.clone();
    reversed.reverse();
    assert_eq!(ordered(&reversed), ["c", "d", "a", "b"]);
}

#[test]
fn zone_comes_from_ga_label_then_beta_label() {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    assert_eq!(
        zone_of(&labels(&[(ZONE_LABEL, "ga"), (BETA_ZONE_LABEL, "beta")])),
        "ga"
    );
    assert_eq!(zone_of(&labels(&[(BETA_ZONE_LABEL, "beta")])), "beta");
    assert_eq!(zone_of(&labels(&[("other", "x")])), DEFAULT_ZONE);
}

fn labelled(name: &str, value: Option<&str>) -> CandidateNode {
    let mut n = at(name, 1, 1, "z");
    if let Some(v) = value {
        n.labels.insert("test-label".to_owned(), v.to_owned());
    }
    n
}

#[test]
fn label_priority_sorting() {
    // TestLabelPrioritySorting
    let priority = |values: &[&str]| LabelPriority {
        label_name: "test-label".to_owned(),
        label_values_descending_priority: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    let cases = [
        (
            "sorts when extra label values",
            priority(&["best", "good"]),
            vec![
                labelled("node1", Some("worst")),
                labelled("node2", Some("good")),
                labelled("node3", Some("best")),
            ],
            ["node1", "node3", "node2"],
            ["node3", "node2", "node1"],
        ),
        (
            "sorts when there are extra nodes with no labels set",
            priority(&["best", "good"]),
            vec![
                labelled("node1", None),
                labelled("node2", Some("good")),
                labelled("node3", Some("best")),
            ],
            ["node2", "node3", "node1"],
            ["node3", "node2", "node1"],
        ),
        (
            "sorts when all nodes have values with priorities set",
            priority(&["best", "better", "good"]),
            vec![
                labelled("node1", Some("better")),
                labelled("node2", Some("good")),
                labelled("node3", Some("best")),
            ],
            ["node1", "node2", "node3"],
            ["node3", "node1", "node2"],
        ),
    ];
    for (name, priority, nodes, start, expected) in cases {
        let mut order = indices(&nodes, &start);
        apply_label_priority(&mut order, &nodes, &priority);
        assert_eq!(names(&nodes, &order), expected, "{name}");
    }
}

#[test]
fn label_priority_keeps_unlisted_nodes_in_order() {
    let nodes = vec![
        labelled("a", None),
        labelled("b", Some("other")),
        labelled("c", Some("best")),
        labelled("d", None),
    ];
    let priority = LabelPriority {
        label_name: "test-label".to_owned(),
        label_values_descending_priority: vec!["best".to_owned()],
    };
    let mut order = vec![3, 1, 0, 2];
    apply_label_priority(&mut order, &nodes, &priority);
    assert_eq!(names(&nodes, &order), ["c", "d", "b", "a"]);
}

#[test]
fn driver_and_executor_candidates() {
    let mut nodes = vec![
        at("full", 1, 1, "z"),
        at("cordoned", 2, 2, "z"),
        at("not-ready", 3, 3, "z"),
        at("empty", 8, 8, "z"),
    ];
    nodes[1].unschedulable = true;
    nodes[2].ready = false;
    nodes[0].labels.insert("tier".to_owned(), "slow".to_owned());
    nodes[3].labels.insert("tier".to_owned(), "fast".to_owned());
    // kube-scheduler offered everything but "empty" for the driver.
    let ordering = order_nodes(&nodes, |n| n.name != "empty", None, None);
    assert_eq!(
        names(&nodes, &ordering.driver),
        ["full", "cordoned", "not-ready"]
    );
    assert_eq!(names(&nodes, &ordering.executor), ["full", "empty"]);

    let fast_first = LabelPriority {
        label_name: "tier".to_owned(),
        label_values_descending_priority: vec!["fast".to_owned()],
    };
    let ordering = order_nodes(&nodes, |_| true, None, Some(&fast_first));
    assert_eq!(
        names(&nodes, &ordering.driver),
        ["full", "cordoned", "not-ready", "empty"]
    );
    assert_eq!(names(&nodes, &ordering.executor), ["empty", "full"]);
}

#[test]
fn label_priority_config_uses_palantir_keys() {
    let yaml = "label-name: tier\nlabel-values-descending-priority: [fast, slow]\n";
    let p: LabelPriority = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(p.label_name, "tier");
    assert_eq!(p.label_values_descending_priority, ["fast", "slow"]);
    assert!(serde_yaml::from_str::<LabelPriority>("label-name: tier\nvalues: []\n").is_err());
}

#[test]
fn ordering_a_subset_ranks_zones_by_that_subset() {
    let nodes = vec![
        at("a1", 1, 1, "a"),
        at("a-huge", 100, 100, "a"),
        at("b1", 2, 2, "b"),
        at("b2", 2, 2, "b"),
    ];
    // Over all nodes zone b is fuller; without a-huge zone a is.
    assert_eq!(ordered(&nodes), ["b1", "b2", "a1", "a-huge"]);
    assert_eq!(
        names(&nodes, &priority_order_among(&nodes, &[3, 0, 2])),
        ["a1", "b1", "b2"]
    );
    // Out-of-range and repeated indices are dropped.
    assert_eq!(
        names(&nodes, &priority_order_among(&nodes, &[2, 9, 2, 0])),
        ["a1", "b1"]
    );
}
