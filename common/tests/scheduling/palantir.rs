//! The scenarios of palantir's extender tests (reference spec §15.1 items 1–6 and 8), on the
//! same cluster shapes and with the same expectations.

use std::collections::BTreeMap;

use sparkgang_common::binpack::BinpackAlgorithm::*;
use sparkgang_common::cluster::FilterOutcome;

use crate::harness::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// TestScheduler: a static gang schedules; a third executor finds no slot; once an executor
/// dies, a new one takes its slot.
#[test]
fn static_gang_then_replacement_of_a_dead_executor() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut app = static_app("2-executor-app", 2);
    let all = ["node1", "node2"];
    c.place(&mut app.driver, &all);
    let mut e0 = app.exec(0).clone();
    let mut e1 = app.exec(1).clone();
    c.place(&mut e0, &all);
    c.place(&mut e1, &all);
    let mut extra = executor_pod(
        "2-executor-app",
        &name(&app.driver),
        99,
        &sparkgang_common::Resources::new(1000, 1, 0),
    );
    extra.metadata.name = Some("newly-requested-exec".into());
    c.expect(&mut extra, &all, FilterOutcome::FailureUnbound);
    c.terminate(&mut e0);
    c.place(&mut extra, &all);
    assert_eq!(
        c.reserved_executors(&app),
        vec![name(&e1), "newly-requested-exec".to_owned()]
    );
    c.assert_no_overcommit();
}

/// TestMinimalFragmentation: an executor whose slot is on a node not offered is moved; an
/// extra executor goes to the node already hosting the app's executors.
#[test]
fn minimal_fragmentation_moves_slots_and_groups_extra_executors() {
    let mut c = Cluster::new(
        SingleAzMinimalFragmentation,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut s = static_app("static", 2);
    assert_eq!(c.place(&mut s.driver, &["node1"]), "node1");
    for i in 0..2 {
        let mut e = s.exec(i).clone();
        assert_eq!(c.place(&mut e, &["node1"]), "node1");
    }
    let mut d = dynamic_app("dynamic", 1, 2);
    // node1's only GPU is taken by the static driver.
    assert_eq!(c.place(&mut d.driver, &["node1", "node2"]), "node2");
    let mut e0 = d.exec(0).clone();
    let decision = c.schedule(&mut e0, &["node2"]);
    assert_eq!(decision.node.as_deref(), Some("node2"));
    let mut e1 = d.exec(1).clone();
    assert_eq!(c.place(&mut e1, &["node1", "node2"]), "node2");
    c.assert_no_overcommit();
}

/// TestMinimalFragmentationEdgeCase: the extra executor goes to the node with the smallest
/// capacity for it, even though the other node sorts first.
#[test]
fn minimal_fragmentation_prefers_smallest_capacity() {
    use sparkgang_common::{GangDemand, Resources};
    let mut c = Cluster::new(
        SingleAzMinimalFragmentation,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut s = app(
        "static",
        GangDemand {
            driver: Resources::new(1000, 4, 0),
            executor: Resources::new(1000, 1, 0),
            min_executors: 0,
            max_executors: 0,
        },
        0,
    );
    c.place(&mut s.driver, &["node1"]);
    let mut d = app(
        "dynamic",
        GangDemand {
            driver: Resources::new(4000, 1, 0),
            executor: Resources::new(3000, 1, 0),
            min_executors: 0,
            max_executors: 1,
        },
        1,
    );
    c.place(&mut d.driver, &["node2"]);
    let mut e = d.exec(0).clone();
    assert_eq!(c.place(&mut e, &["node1", "node2"]), "node2");
}

/// TestDynamicAllocationScheduling "creates a reservation when under min executor count" and
/// "creates a soft reservation for an executor over min executor count".
#[test]
fn dynamic_allocation_reserves_min_then_soft_reserves() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut d = dynamic_app("dyn", 1, 3);
    let all = ["node1", "node2"];
    c.place(&mut d.driver, &all);
    let mut e0 = d.exec(0).clone();
    c.place(&mut e0, &all);
    assert_eq!(c.reserved_executors(&d), vec![name(&e0)]);
    assert!(c.soft(&d).is_empty());
    let mut e1 = d.exec(1).clone();
    let dec = c.expect(&mut e1, &all, FilterOutcome::SuccessExtraExecutor);
    assert_eq!(dec.node.as_deref(), Some("node1"));
    assert_eq!(c.reserved_executors(&d), vec![name(&e0)]);
    assert_eq!(c.soft(&d), map(&[(&name(&e1), "node1")]));
}

/// "soft reservations are created on full nodes first".
#[test]
fn soft_reservations_go_to_the_fullest_node() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut d = dynamic_app("dyn", 1, 2);
    c.place(&mut d.driver, &["node2"]);
    let mut e0 = d.exec(0).clone();
    assert_eq!(c.place(&mut e0, &["node2"]), "node2");
    let mut e1 = d.exec(1).clone();
    assert_eq!(c.place(&mut e1, &["node1", "node2"]), "node2");
    assert_eq!(c.reserved_executors(&d), vec![name(&e0)]);
    assert_eq!(c.soft(&d), map(&[(&name(&e1), "node2")]));
}

/// "does not create any reservation for an executor over the max": a repeated request keeps
/// its soft reservation, and a fourth executor gets nothing.
#[test]
fn no_reservation_above_max() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut d = dynamic_app("dyn", 1, 3);
    let all = ["node1", "node2"];
    c.place(&mut d.driver, &all);
    let mut execs: Vec<_> = d.executors.clone();
    for e in &mut execs {
        c.place(e, &all);
    }
    // kube-scheduler asks again for exec-2 (still known as pending to it).
    let mut again = d.exec(2).clone();
    assert_eq!(
        c.expect(&mut again, &all, FilterOutcome::SuccessAlreadyBound)
            .node
            .as_deref(),
        Some("node1")
    );
    assert_eq!(c.reserved_executors(&d), vec![name(&execs[0])]);
    assert_eq!(
        c.soft(&d),
        map(&[(&name(&execs[1]), "node1"), (&name(&execs[2]), "node1")])
    );
    // A genuinely fourth executor (palantir never tested this): no slot, no soft spot.
    let mut fourth = executor_pod(
        "dyn",
        &name(&d.driver),
        3,
        &sparkgang_common::Resources::new(1000, 1, 0),
    );
    c.expect(&mut fourth, &all, FilterOutcome::FailureUnbound);
}

/// "replaces a dead executor's resource reservation before adding a new soft reservation".
#[test]
fn dead_executor_slot_is_reused_before_soft_reservations() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut d = dynamic_app("dyn", 1, 3);
    let all = ["node1", "node2"];
    c.place(&mut d.driver, &all);
    let mut e0 = d.exec(0).clone();
    let mut e1 = d.exec(1).clone();
    c.place(&mut e0, &all);
    c.place(&mut e1, &all);
    c.terminate(&mut e0);
    let mut e2 = d.exec(2).clone();
    c.place(&mut e2, &all);
    assert_eq!(c.reserved_executors(&d), vec![name(&e2)]);
    assert_eq!(c.soft(&d), map(&[(&name(&e1), "node1")]));
}

/// "schedules an executor only in the same AZ as the original application".
#[test]
fn dynamic_executors_stay_in_the_app_zone() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone2")],
    );
    let mut s = static_app("static", 1);
    c.place(&mut s.driver, &["node1"]);
    let mut se = s.exec(0).clone();
    c.place(&mut se, &["node1"]);
    let mut d = dynamic_app("dyn", 0, 2);
    assert_eq!(c.place(&mut d.driver, &["node2"]), "node2");
    let mut e0 = d.exec(0).clone();
    let mut e1 = d.exec(1).clone();
    assert_eq!(c.place(&mut e0, &["node1", "node2"]), "node2");
    assert_eq!(c.place(&mut e1, &["node1", "node2"]), "node2");
    assert_eq!(c.reserved_executors(&s), vec![name(&se)]);
    assert_eq!(
        c.soft(&d),
        map(&[(&name(&e0), "node2"), (&name(&e1), "node2")])
    );
}

/// TestUnschedulablePodMarker: a gang larger than the whole instance group is reported as
/// exceeding capacity, a small one is not.
#[test]
fn gangs_larger_than_the_instance_group_exceed_capacity() {
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut huge = static_app("huge", 100);
    let d = c.expect(
        &mut huge.driver,
        &["node1", "node2"],
        FilterOutcome::FailureExceedsCapacity,
    );
    assert!(d.message.contains("can never fit"), "{}", d.message);
    let mut small = static_app("small", 2);
    c.place(&mut small.driver, &["node1", "node2"]);
}

/// TestSchedulerFailsToScheduleWhenNotEnoughNvidiaGPUs: driver and executors need 3 GPUs, the
/// cluster has 2.
#[test]
fn not_enough_gpus() {
    use sparkgang_common::{GangDemand, Resources};
    let mut c = Cluster::new(
        SingleAzTightlyPack,
        &[node("node1", "zone1"), node("node2", "zone1")],
    );
    let mut a = app(
        "gpu",
        GangDemand {
            driver: Resources::new(1000, 1, 1),
            executor: Resources::new(1000, 1, 1),
            min_executors: 2,
            max_executors: 2,
        },
        2,
    );
    let d = c.expect(
        &mut a.driver,
        &["node1", "node2"],
        FilterOutcome::FailureExceedsCapacity,
    );
    assert!(
        d.message.contains("gpu") || d.message.contains("GPU"),
        "{}",
        d.message
    );
    for i in 0..2 {
        let mut e = a.exec(i).clone();
        c.expect(
            &mut e,
            &["node1", "node2"],
            FilterOutcome::FailureDriverNotPlaced,
        );
    }
}

/// TestIsEarliest, through the queue: equal creation times do not block each other, strictly
/// older ones do.
#[test]
fn fifo_orders_by_creation_time() {
    let mut c = Cluster::new(TightlyPack, &[node("node1", "zone1")]);
    // Each app needs the whole GPU of the node, so only one fits.
    let mut older = static_app("older", 0);
    let mut younger = static_app("younger", 0);
    created_at(&mut older.driver, "2026-01-01T00:00:00Z");
    created_at(&mut younger.driver, "2026-01-01T00:00:05Z");
    // A third app occupies the node first.
    let mut first = static_app("first", 0);
    created_at(&mut first.driver, "2025-12-31T00:00:00Z");
    c.place(&mut first.driver, &["node1"]);
    c.state.apply_pod(&older.driver);
    c.state.apply_pod(&younger.driver);
    let d = c.expect(
        &mut younger.driver,
        &["node1"],
        FilterOutcome::FailureEarlierDriver,
    );
    assert!(d.message.contains("older"), "{}", d.message);
    c.expect(&mut older.driver, &["node1"], FilterOutcome::FailureFit);
}
