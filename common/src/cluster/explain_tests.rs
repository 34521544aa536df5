//! The explain API over scripted clusters: one test per reason, figures recomputed by hand.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::api::GANG_DEMAND_ANNOTATION;
use crate::api::explain::{AppState, Reason};
use crate::cluster::{AppKey, ClusterState, FifoPolicy, SchedulerConfig, Timestamp};
use crate::{GangDemand, Resources};

const GI: i64 = 1 << 30;

fn node(name: &str, group: &str, cpu: &str, taint: bool) -> Node {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"instance-group": group,
            "topology.kubernetes.io/zone": "z1"}},
        "status": {"allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]}
    });
    if taint {
        n["spec"] =
            json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]});
    }
    serde_json::from_value(n).unwrap()
}

/// A driver of app `app`, created `second` seconds after 00:00, asking for a 1-cpu driver and
/// `executors` executors of `executor_cpu` cores each, in instance group `group`.
fn driver(app: &str, second: u32, executors: u32, executor_cpu: i64, group: &str) -> Value {
    let demand = GangDemand {
        driver: Resources::new(1000, GI, 0),
        executor: Resources::new(executor_cpu * 1000, 2 * GI, 0),
        min_executors: executors,
        max_executors: executors,
    };
    json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
            "uid": format!("uid-{app}"),
            "creationTimestamp": format!("2026-01-01T00:00:{second:02}Z"),
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).unwrap()}},
        "spec": {"schedulerName": "spark-scheduler", "nodeSelector": {"instance-group": group},
            "containers": [{"name": "driver",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    })
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

/// A pod of another scheduler holding `cpu` cores on `node`.
fn occupant(name: &str, node: &str, cpu: &str) -> Pod {
    pod(json!({
        "metadata": {"name": name, "namespace": "other", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "c",
            "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
        "status": {"phase": "Running"}
    }))
}

fn cluster(nodes: usize, cpu: &str, fifo: bool) -> ClusterState {
    let mut s = ClusterState::new(SchedulerConfig {
        fifo: FifoPolicy {
            enabled: fifo,
            ..FifoPolicy::default()
        },
        ..SchedulerConfig::default()
    });
    for i in 0..nodes {
        s.apply_node(&node(&format!("node-{i}"), "batch", cpu, false));
    }
    s
}

fn now() -> Timestamp {
    "2026-01-01T00:01:00Z".parse().unwrap()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

fn app(id: &str) -> AppKey {
    AppKey::new("spark", id)
}

/// The capacity reason: 3 nodes of 8 cores, 6 of each taken by another scheduler's pods,
/// leave 2 free per node (6 in all); the gang needs 1 + 4 × 2 = 9 cores.
#[test]
fn a_gang_larger_than_the_free_room_names_capacity_and_the_shortfall() {
    let mut s = cluster(3, "8", false);
    for i in 0..3 {
        s.apply_pod(&occupant(&format!("busy-{i}"), &format!("node-{i}"), "6"));
    }
    let d = pod(driver("short", 0, 4, 2, "batch"));
    s.apply_pod(&d);
    let e = s.explain_app(&app("short"), now()).unwrap();
    assert_eq!(e.app.state, AppState::Pending);
    assert_eq!(e.app.queue_position, Some(1));
    let Reason::Capacity { shortfall } = &e.reason else {
        panic!("{:?}", e.reason)
    };
    assert_eq!(shortfall.needs.cpu_milli, 9000);
    assert_eq!(shortfall.free.cpu_milli, 6000);
    assert_eq!(shortfall.short.cpu_milli, 3000);
    assert_eq!(shortfall.short.memory_bytes, 0);
    assert_eq!(shortfall.requested_executors, 4);
    // The driver takes 1 of one node's 2 free cores, leaving room for one executor on each
    // of the other two.
    assert_eq!(shortfall.placeable_executors, 2);
    assert!(shortfall.driver_fits);
    assert_eq!(shortfall.zones.len(), 1);
    assert_eq!(shortfall.zones[0].zone, "z1");
    assert_eq!(shortfall.zones[0].executors_fit, 3);
    // The words are the decision's own: what the filter call answers.
    let decision = s.filter(&d, &names(3), now());
    assert_eq!(e.message, decision.message);
    assert!(
        e.message.contains("does not fit in instance group batch"),
        "{}",
        e.message
    );
    let again = s.explain_app(&app("short"), now()).unwrap();
    let last = again.last_decision.unwrap();
    assert_eq!(last.outcome, "failure-fit");
    assert_eq!(last.message, decision.message);
}

/// The example: 40 executors of 4 cores on 3 nodes of 8 can never fit.
#[test]
fn a_gang_larger_than_its_instance_group_can_never_fit_and_says_by_how_much() {
    let mut s = cluster(3, "8", true);
    let d = pod(driver("huge", 0, 40, 4, "batch"));
    s.apply_pod(&d);
    let e = s.explain_app(&app("huge"), now()).unwrap();
    let Reason::NeverFits { never_fits } = &e.reason else {
        panic!("{:?}", e.reason)
    };
    assert_eq!(never_fits.nodes, 3);
    assert_eq!(never_fits.matching_selector, 3);
    assert_eq!(never_fits.eligible, 3);
    assert_eq!(never_fits.needs.cpu_milli, 161_000);
    assert_eq!(never_fits.total_allocatable.cpu_milli, 24_000);
    assert_eq!(never_fits.largest_node.cpu_milli, 8_000);
    assert!(never_fits.why.contains("in all"), "{}", never_fits.why);
    assert!(
        e.message.contains("can never fit in instance group batch"),
        "{}",
        e.message
    );
    let decision = s.filter(&d, &names(3), now());
    assert!(
        e.message.starts_with(&decision.message),
        "{} / {}",
        e.message,
        decision.message
    );
}

#[test]
fn a_selector_that_matches_no_node_is_named() {
    let mut s = cluster(3, "8", false);
    s.apply_pod(&pod(driver("lost", 0, 1, 1, "gpu")));
    let e = s.explain_app(&app("lost"), now()).unwrap();
    let Reason::NeverFits { never_fits } = &e.reason else {
        panic!("{:?}", e.reason)
    };
    assert_eq!((never_fits.matching_selector, never_fits.eligible), (0, 0));
    assert!(
        never_fits.why.contains("nodeSelector"),
        "{}",
        never_fits.why
    );
}

#[test]
fn taints_the_driver_does_not_tolerate_are_named() {
    let mut s = cluster(0, "8", false);
    s.apply_node(&node("tainted", "batch", "8", true));
    s.apply_pod(&pod(driver("untolerated", 0, 1, 1, "batch")));
    let e = s.explain_app(&app("untolerated"), now()).unwrap();
    let Reason::NeverFits { never_fits } = &e.reason else {
        panic!("{:?}", e.reason)
    };
    assert_eq!((never_fits.matching_selector, never_fits.eligible), (1, 0));
    assert!(never_fits.why.contains("taints"), "{}", never_fits.why);
}

#[test]
fn an_executor_larger_than_any_node_is_named() {
    let mut s = cluster(3, "8", false);
    s.apply_pod(&pod(driver("wide", 0, 1, 12, "batch")));
    let e = s.explain_app(&app("wide"), now()).unwrap();
    let Reason::NeverFits { never_fits } = &e.reason else {
        panic!("{:?}", e.reason)
    };
    assert!(
        never_fits.why.contains("one executor"),
        "{}",
        never_fits.why
    );
}

/// FIFO: an older app that does not fit holds back a younger one that would; the younger
/// one's reason names it, with its age.
#[test]
fn a_driver_behind_an_older_one_names_it() {
    let mut s = cluster(3, "8", true);
    // The older gang, 1 + 5 × 4 = 21 cores, fits the empty group (a gang that never fits
    // blocks nobody) but not the 18 cores left beside a 6-core occupant.
    s.apply_pod(&occupant("busy", "node-0", "6"));
    s.apply_pod(&pod(driver("older", 0, 5, 4, "batch")));
    s.apply_pod(&pod(driver("younger", 30, 1, 1, "batch")));
    let e = s.explain_app(&app("younger"), now()).unwrap();
    assert_eq!(e.app.queue_position, Some(2));
    assert_eq!(e.app.queue_length, Some(2));
    let Reason::WaitingBehind {
        blocker,
        ahead,
        ahead_count,
    } = &e.reason
    else {
        panic!("{:?}", e.reason)
    };
    assert_eq!(blocker.app_id, "older");
    assert_eq!(blocker.driver, "spark/older-driver");
    assert!(!blocker.higher_priority);
    assert_eq!(blocker.pending_seconds, 60);
    assert_eq!(*ahead_count, 1);
    assert_eq!(ahead[0].app_id, "older");
    assert!(
        e.message.contains("the older application older"),
        "{}",
        e.message
    );
    let decision = s.filter(&pod(driver("younger", 30, 1, 1, "batch")), &names(3), now());
    assert_eq!(e.message, decision.message);
}

#[test]
fn a_driver_behind_a_higher_priority_one_says_so() {
    let mut s = cluster(3, "8", true);
    s.apply_pod(&occupant("busy", "node-0", "6"));
    let mut urgent = driver("urgent", 50, 5, 4, "batch");
    urgent["spec"]["priority"] = json!(1000);
    s.apply_pod(&pod(urgent));
    s.apply_pod(&pod(driver("routine", 10, 1, 1, "batch")));
    let e = s.explain_app(&app("routine"), now()).unwrap();
    let Reason::WaitingBehind { blocker, .. } = &e.reason else {
        panic!("{:?}", e.reason)
    };
    assert_eq!(
        (blocker.app_id.as_str(), blocker.priority),
        ("urgent", 1000)
    );
    assert!(blocker.higher_priority);
    assert!(e.message.contains("higher priority 1000"), "{}", e.message);
}

#[test]
fn a_gated_driver_waits_for_its_spark_conf() {
    let mut s = cluster(3, "8", true);
    let mut d = driver("gated", 0, 1, 1, "batch");
    d["spec"]["schedulingGates"] = json!([{"name": "sparkgang.io/spark-conf"}]);
    s.apply_pod(&pod(d));
    let e = s.explain_app(&app("gated"), now()).unwrap();
    assert_eq!(e.app.state, AppState::Gated);
    assert_eq!(e.reason, Reason::Gated { for_seconds: 60 });
}

#[test]
fn a_driver_without_a_demand_says_why() {
    let mut s = cluster(3, "8", false);
    let mut d = driver("nodemand", 0, 1, 1, "batch");
    d["metadata"]["annotations"] = json!({});
    s.apply_pod(&pod(d));
    let e = s.explain_app(&app("nodemand"), now()).unwrap();
    assert!(
        matches!(e.reason, Reason::UnknownDemand { .. }),
        "{:?}",
        e.reason
    );
    assert_eq!(e.app.demand, None);
}

/// A gang that fits before kube-scheduler asks; then placed, bound, and finished.
#[test]
fn a_gang_goes_from_fits_to_placed_to_running_to_completed() {
    let mut s = cluster(3, "8", true);
    let d = driver("happy", 0, 2, 2, "batch");
    s.apply_pod(&pod(d.clone()));
    let e = s.explain_app(&app("happy"), now()).unwrap();
    assert_eq!(e.reason, Reason::Fits);
    assert_eq!(e.app.demand.unwrap().total.cpu_milli, 5000);

    let decision = s.filter(&pod(d.clone()), &names(3), now());
    let node = decision.node.clone().unwrap();
    let e = s.explain_app(&app("happy"), now()).unwrap();
    assert_eq!(e.app.state, AppState::Reserved);
    assert_eq!(
        e.reason,
        Reason::Placed {
            driver_node: node.clone()
        }
    );
    assert_eq!(e.app.executors.reserved, 2);
    assert_eq!(e.app.executors.bound, 0);
    assert_eq!(e.slots.len(), 3);
    assert_eq!(e.app.placed.as_deref(), Some("2026-01-01T00:01:00Z"));
    assert_eq!(e.app.queue_position, None);

    let mut bound = d.clone();
    bound["spec"]["nodeName"] = json!(node);
    bound["status"] = json!({"phase": "Running"});
    s.apply_pod(&pod(bound.clone()));
    assert_eq!(
        s.explain_app(&app("happy"), now()).unwrap().app.state,
        AppState::Running
    );

    bound["status"] = json!({"phase": "Succeeded"});
    s.apply_pod(&pod(bound));
    let e = s.explain_app(&app("happy"), now()).unwrap();
    assert_eq!(
        (e.app.state, e.reason),
        (AppState::Completed, Reason::Completed)
    );
}

#[test]
fn apps_are_listed_by_namespace_and_capacity_by_group() {
    let mut s = cluster(3, "8", true);
    s.apply_node(&node("gpu-0", "gpu", "16", false));
    s.apply_pod(&occupant("busy", "node-0", "6"));
    s.apply_pod(&pod(driver("a", 0, 5, 4, "batch")));
    s.apply_pod(&pod(driver("b", 1, 1, 1, "batch")));
    let mut elsewhere = driver("c", 2, 1, 1, "batch");
    elsewhere["metadata"]["namespace"] = json!("team-b");
    s.apply_pod(&pod(elsewhere));
    let all: Vec<String> = s
        .app_summaries(None)
        .into_iter()
        .map(|a| a.app_id)
        .collect();
    assert_eq!(all, ["a", "b", "c"]);
    let spark: Vec<String> = s
        .app_summaries(Some("spark"))
        .into_iter()
        .map(|a| a.app_id)
        .collect();
    assert_eq!(spark, ["a", "b"]);

    let groups = s.capacity(None, now());
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["batch", "gpu"]);
    let batch = &groups[0];
    assert_eq!(batch.nodes, 3);
    assert_eq!(batch.allocatable.cpu_milli, 24_000);
    assert_eq!(batch.allocated.cpu_milli, 6_000);
    assert_eq!(batch.free.cpu_milli, 18_000);
    assert!((batch.cpu_used - 0.25).abs() < 1e-9);
    let queued: Vec<&str> = batch.queue.iter().map(|q| q.app_id.as_str()).collect();
    assert_eq!(queued, ["a", "b", "c"]);
    assert!(batch.node_list.is_none());
    let one = s.capacity(Some("gpu"), now());
    assert_eq!(one.len(), 1);
    let nodes = one[0].node_list.as_ref().unwrap();
    assert_eq!(nodes[0].name, "gpu-0");
    assert_eq!(nodes[0].free.cpu_milli, 16_000);
}

#[test]
fn pending_drivers_are_counted_by_their_last_decision() {
    let mut s = cluster(3, "8", true);
    let huge = pod(driver("huge", 0, 40, 4, "batch"));
    s.apply_pod(&huge);
    s.apply_pod(&pod(driver("quiet", 1, 1, 1, "batch")));
    let mut gated = driver("gated", 2, 1, 1, "batch");
    gated["spec"]["schedulingGates"] = json!([{"name": "sparkgang.io/spark-conf"}]);
    s.apply_pod(&pod(gated));
    s.filter(&huge, &names(3), now());
    let counts = s.pending_by_reason();
    let key = |r: &str| ("batch".to_owned(), r.to_owned());
    assert_eq!(counts.get(&key("failure-exceeds-capacity")), Some(&1));
    assert_eq!(counts.get(&key("not-asked-yet")), Some(&1));
    assert_eq!(counts.get(&key("gated")), Some(&1));
    assert_eq!(counts.values().sum::<usize>(), 3);
}

/// One gang packed into one zone, one spread over two (each node of 8 cores takes one
/// executor of 6: three executors need three nodes).
#[test]
fn gangs_spanning_zones_are_counted() {
    let mut s = cluster(0, "8", false);
    for (name, zone) in [("a-0", "za"), ("a-1", "za"), ("b-0", "zb")] {
        let mut n = serde_json::to_value(node(name, "batch", "8", false)).unwrap();
        n["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!(zone);
        s.apply_node(&serde_json::from_value(n).unwrap());
    }
    let nodes = ["a-0", "a-1", "b-0"].map(str::to_owned);
    let small = pod(driver("small", 0, 1, 1, "batch"));
    assert!(s.filter(&small, &nodes, now()).node.is_some());
    assert_eq!(s.cross_zone_gangs(), 0);
    let wide = pod(driver("wide", 1, 3, 6, "batch"));
    let placed = s.filter(&wide, &nodes, now());
    assert!(placed.node.is_some(), "{}", placed.message);
    assert_eq!(s.cross_zone_gangs(), 1);
}

#[test]
fn a_driver_another_scheduler_placed_is_not_called_completed() {
    let mut s = cluster(3, "8", false);
    let mut d = driver("theirs", 0, 1, 1, "batch");
    d["spec"]["schedulerName"] = json!("default-scheduler");
    d["spec"]["nodeName"] = json!("node-0");
    d["status"] = json!({"phase": "Running"});
    s.apply_pod(&pod(d));
    let e = s.explain_app(&app("theirs"), now()).unwrap();
    assert_eq!(e.app.state, AppState::Running);
    assert_eq!(e.reason, Reason::NotScheduledBySparkgang);
}
