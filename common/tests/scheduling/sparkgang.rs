//! What palantir never tested: FIFO blocking and enforcement age, its FIFO quirks fixed,
//! release on driver completion, executor replacement by a new id, write-through and
//! restart recovery.

use std::time::Duration;

use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::binpack::BinpackAlgorithm::*;
use sparkgang_common::cluster::{ClusterState, Effect, FifoPolicy, FilterOutcome, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};

use crate::harness::*;

fn gang(driver_cpu: i64, executor_cpu: i64, executors: u32) -> GangDemand {
    GangDemand {
        driver: Resources::new(driver_cpu * 1000, 1 << 20, 0),
        executor: Resources::new(executor_cpu * 1000, 1 << 20, 0),
        min_executors: executors,
        max_executors: executors,
    }
}

fn fifo_config(enforce_after: Duration) -> SchedulerConfig {
    SchedulerConfig {
        binpack: TightlyPack,
        fifo: FifoPolicy {
            enabled: true,
            enforce_after,
            ..Default::default()
        },
        ..SchedulerConfig::default()
    }
}

/// An older driver that does not fit blocks younger ones only once it is old enough.
#[test]
fn fifo_blocks_younger_drivers_after_the_enforcement_age() {
    let mut c = Cluster::with_config(fifo_config(Duration::from_secs(60)), &[node("n1", "z1")]);
    let mut filler = app("filler", gang(4, 0, 0), 0);
    created_at(&mut filler.driver, "2026-01-01T00:00:00Z");
    c.place(&mut filler.driver, &["n1"]);
    let mut big = app("big", gang(6, 0, 0), 0);
    created_at(&mut big.driver, "2026-01-01T00:59:30Z");
    c.state.apply_pod(&big.driver);
    let mut small = app("small", gang(1, 1, 1), 0);
    created_at(&mut small.driver, "2026-01-01T00:59:40Z");
    // big has waited 30s < 60s: it does not block yet.
    c.place(&mut small.driver, &["n1"]);
    c.advance(Duration::from_secs(31));
    let mut small2 = app("small2", gang(1, 0, 0), 0);
    created_at(&mut small2.driver, "2026-01-01T00:59:50Z");
    let d = c.expect(
        &mut small2.driver,
        &["n1"],
        FilterOutcome::FailureEarlierDriver,
    );
    assert!(d.message.contains("big"), "{}", d.message);
    assert!(d.effects.contains(&Effect::EnsureDemand(
        sparkgang_common::cluster::PodKey::new(NS, name(&small2.driver))
    )));
}

/// Per-instance-group enforcement ages override the default.
#[test]
fn fifo_enforcement_age_per_instance_group() {
    let mut config = fifo_config(Duration::from_secs(3600));
    config
        .fifo
        .enforce_after_by_group
        .insert(GROUP.to_owned(), Duration::ZERO);
    let mut c = Cluster::with_config(config, &[node("n1", "z1")]);
    let mut filler = app("filler", gang(4, 0, 0), 0);
    c.place(&mut filler.driver, &["n1"]);
    let mut big = app("big", gang(6, 0, 0), 0);
    created_at(&mut big.driver, "2026-01-01T00:59:59Z");
    c.state.apply_pod(&big.driver);
    let mut small = app("small", gang(1, 0, 0), 0);
    created_at(&mut small.driver, "2026-01-01T01:00:00Z");
    c.expect(
        &mut small.driver,
        &["n1"],
        FilterOutcome::FailureEarlierDriver,
    );
}

/// Palantir quirk 1 fixed: FIFO subtracts all of an older driver's executors, not one per
/// node, so a younger app cannot take what the older one needs.
#[test]
fn fifo_accounts_for_the_whole_footprint_of_older_drivers() {
    let mut c = Cluster::with_config(fifo_config(Duration::ZERO), &[node("n1", "z1")]);
    let mut older = app("older", gang(1, 2, 3), 3);
    created_at(&mut older.driver, "2026-01-01T00:00:00Z");
    c.state.apply_pod(&older.driver);
    let mut younger = app("younger", gang(1, 1, 1), 1);
    created_at(&mut younger.driver, "2026-01-01T00:00:10Z");
    // older takes 7 of 8 cpus; younger needs 2.
    let d = c.expect(&mut younger.driver, &["n1"], FilterOutcome::FailureFit);
    assert!(d.message.contains("younger"), "{}", d.message);
    c.place(&mut older.driver, &["n1"]);
}

/// Palantir quirk 2 fixed: an older driver that already holds its reservation (placed, not
/// yet bound) is not packed a second time on top of it.
#[test]
fn fifo_does_not_repack_reserved_older_drivers() {
    let mut c = Cluster::with_config(fifo_config(Duration::ZERO), &[node("n1", "z1")]);
    let older = app("older", gang(1, 2, 2), 2);
    c.state.apply_pod(&older.driver);
    let d = c.state.filter(&older.driver, &["n1".to_owned()], c.now);
    assert_eq!(d.outcome, FilterOutcome::Success, "{}", d.message);
    // Not bound yet: still pending in the API. 5 of 8 cpus are reserved.
    let mut younger = app("younger", gang(1, 1, 2), 2);
    created_at(&mut younger.driver, "2026-01-01T00:00:10Z");
    c.place(&mut younger.driver, &["n1"]);
    c.assert_no_overcommit();
}

/// Palantir #118 fixed: a completed driver releases its reservation at once.
#[test]
fn completed_driver_releases_its_reservation() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1")]);
    let mut a = app("a", gang(2, 2, 3), 3);
    c.place(&mut a.driver, &["n1"]);
    for i in 0..3 {
        let mut e = a.exec(i).clone();
        c.place(&mut e, &["n1"]);
    }
    let mut b = app("b", gang(4, 2, 2), 0);
    c.expect(&mut b.driver, &["n1"], FilterOutcome::FailureFit);
    let effects = c.terminate(&mut a.driver);
    assert_eq!(effects, vec![Effect::SyncReservation(a.key())]);
    assert!(c.state.reservation(&a.key()).is_none());
    assert!(c.state.reservation_object(&a.key()).0.is_none());
    // The executors still run until Spark stops them; their pods count until then.
    for i in 0..3 {
        let mut e = a.exec(i).clone();
        c.terminate(&mut e);
    }
    c.place(&mut b.driver, &["n1"]);
    c.assert_no_overcommit();
}

/// Spark replaces a lost executor with a new id and name: it takes the freed slot.
#[test]
fn replacement_executor_with_a_new_id_takes_the_freed_slot() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1"), node("n2", "z1")]);
    let mut a = app("a", gang(1, 3, 3), 3);
    c.place(&mut a.driver, &["n1", "n2"]);
    let mut execs = a.executors.clone();
    for e in &mut execs {
        c.place(e, &["n1", "n2"]);
    }
    let lost = sparkgang_common::cluster::PodKey::new(NS, name(&execs[1]));
    c.state.delete_pod(&lost);
    let mut new = executor_pod("a", &name(&a.driver), 7, &Resources::new(3000, 1 << 20, 0));
    let d = c.expect(&mut new, &["n1", "n2"], FilterOutcome::SuccessReservedSlot);
    assert_eq!(d.effects[0], Effect::SyncReservation(a.key()));
    assert_eq!(c.reserved_executors(&a).len(), 3);
    assert!(c.reserved_executors(&a).contains(&name(&new)));
    c.assert_no_overcommit();
}

/// Palantir quirk 4 fixed: the reserved node is returned only if it is a candidate.
#[test]
fn reserved_driver_node_must_be_a_candidate() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1"), node("n2", "z1")]);
    let a = app("a", gang(1, 1, 1), 1);
    c.state.apply_pod(&a.driver);
    let first = c
        .state
        .filter(&a.driver, &["n1".to_owned(), "n2".to_owned()], c.now);
    let reserved = first.node.clone().unwrap();
    let other = if reserved == "n1" { "n2" } else { "n1" };
    let again = c.state.filter(&a.driver, &[other.to_owned()], c.now);
    assert_eq!(again.outcome, FilterOutcome::FailureReservedNodeUnavailable);
    assert!(again.node.is_none());
    assert!(again.message.contains(&reserved), "{}", again.message);
    let ok = c
        .state
        .filter(&a.driver, std::slice::from_ref(&reserved), c.now);
    assert_eq!(ok.outcome, FilterOutcome::SuccessAlreadyBound);
}

/// Palantir quirk 5 fixed: executors never take the driver's slot, even when the reservation
/// does not say who holds it.
#[test]
fn executors_never_take_the_driver_slot() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1")]);
    let a = app("a", gang(1, 1, 1), 3);
    c.state.apply_pod(&a.driver);
    c.state.filter(&a.driver, &["n1".to_owned()], c.now);
    let (Some(mut rr), _) = c.state.reservation_object(&a.key()) else {
        panic!("no reservation")
    };
    rr.status.as_mut().unwrap().pods.clear();
    let mut fresh = Cluster::new(TightlyPack, &[node("n1", "z1")]);
    fresh.state.apply_pod(&a.driver);
    fresh.state.apply_reservation(&rr).unwrap();
    let mut e0 = a.exec(0).clone();
    let mut e1 = a.exec(1).clone();
    fresh.place(&mut e0, &["n1"]);
    fresh.expect(&mut e1, &["n1"], FilterOutcome::FailureUnbound);
}

/// Memory is ahead of the API: watch events older than our own write do not undo it.
#[test]
fn stale_watch_events_do_not_undo_decisions() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1")]);
    let mut a = app("a", gang(1, 1, 2), 2);
    c.place(&mut a.driver, &["n1"]);
    let (Some(mut v1), written) = c.state.reservation_object(&a.key()) else {
        panic!()
    };
    v1.metadata.resource_version = Some("10".into());
    c.state
        .reservation_written(&a.key(), written, Some("10".into()));
    c.state.apply_reservation(&v1).unwrap();
    let mut e0 = a.exec(0).clone();
    c.place(&mut e0, &["n1"]);
    // The write of the binding is still in flight: the v1 event arrives again.
    c.state.apply_reservation(&v1).unwrap();
    assert_eq!(c.reserved_executors(&a), vec![name(&e0)]);
    let (Some(v2), written) = c.state.reservation_object(&a.key()) else {
        panic!()
    };
    c.state
        .reservation_written(&a.key(), written, Some("12".into()));
    // An event from before our write (rv 11) is ignored; ours (rv 12) is accepted.
    let mut stale = v1.clone();
    stale.metadata.resource_version = Some("11".into());
    c.state.apply_reservation(&stale).unwrap();
    assert_eq!(c.reserved_executors(&a), vec![name(&e0)]);
    let mut current = v2.clone();
    current.metadata.resource_version = Some("12".into());
    c.state.apply_reservation(&current).unwrap();
    assert_eq!(c.reserved_executors(&a), vec![name(&e0)]);
    // Now an external change (rv 13) is taken as the truth.
    let mut external: ResourceReservation = current.clone();
    external.metadata.resource_version = Some("13".into());
    external
        .status
        .as_mut()
        .unwrap()
        .pods
        .retain(|k, _| k == "driver");
    c.state.apply_reservation(&external).unwrap();
    assert!(c.reserved_executors(&a).is_empty());
}

/// A restarted extender rebuilds everything from nodes, pods and reservation objects, and
/// recreates the reservation of a running driver whose write was lost.
#[test]
fn restart_recovers_reservations_and_usage() {
    let nodes = [node("n1", "z1"), node("n2", "z1")];
    let mut c = Cluster::new(TightlyPack, &nodes);
    let mut a = app("a", gang(1, 2, 3), 3);
    c.place(&mut a.driver, &["n1", "n2"]);
    let mut a_execs = a.executors.clone();
    for e in a_execs.iter_mut().take(2) {
        c.place(e, &["n1", "n2"]);
    }
    let mut b = app("b", gang(1, 1, 2), 2);
    c.place(&mut b.driver, &["n1", "n2"]);
    let mut b_execs = b.executors.clone();
    for e in &mut b_execs {
        c.place(e, &["n1", "n2"]);
    }
    let (Some(rr_a), _) = c.state.reservation_object(&a.key()) else {
        panic!()
    };
    // Restart: b's reservation write was lost.
    let mut r = ClusterState::new(c.state.config().clone());
    for n in &nodes {
        r.apply_node(n);
    }
    for p in [
        &a.driver,
        &a_execs[0],
        &a_execs[1],
        &a_execs[2],
        &b.driver,
        &b_execs[0],
        &b_execs[1],
    ] {
        r.apply_pod(p);
    }
    r.apply_reservation(&rr_a).unwrap();
    let effects = r.reconcile();
    assert_eq!(effects, vec![Effect::SyncReservation(b.key())]);
    for (before, after) in c
        .state
        .nodes()
        .zip(["n1", "n2"].map(|n| r.node(n).unwrap()))
    {
        let before = c.state.node(&after.name).unwrap_or(before);
        assert_eq!(before.available(), after.available(), "{}", after.name);
    }
    let rb = r.reservation(&b.key()).unwrap();
    let mut bound: Vec<_> = rb
        .executor_slots()
        .filter_map(|(_, s)| s.pod.clone())
        .collect();
    bound.sort();
    assert_eq!(bound, vec![name(&b_execs[0]), name(&b_execs[1])]);
    // The third executor of a still finds its slot after the restart.
    let mut c2 = Cluster {
        state: r,
        now: c.now,
    };
    let mut e = a_execs[2].clone();
    c2.expect(&mut e, &["n1", "n2"], FilterOutcome::SuccessReservedSlot);
    c2.assert_no_overcommit();
}

/// A reservation whose driver is gone is released by reconciliation.
#[test]
fn reconcile_releases_reservations_of_gone_drivers() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1")]);
    let mut a = app("a", gang(1, 1, 1), 1);
    c.place(&mut a.driver, &["n1"]);
    let (Some(rr), _) = c.state.reservation_object(&a.key()) else {
        panic!()
    };
    let mut r = ClusterState::new(c.state.config().clone());
    r.apply_node(&node("n1", "z1"));
    r.apply_reservation(&rr).unwrap();
    assert_eq!(r.reconcile(), vec![Effect::SyncReservation(a.key())]);
    assert!(r.reservation(&a.key()).is_none());
    assert_eq!(
        r.node("n1").unwrap().available(),
        r.node("n1").unwrap().allocatable
    );
}

/// Pods of other schedulers count, and the extender never over-commits a node with them.
#[test]
fn foreign_pods_count_as_usage() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1")]);
    let foreign: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "w"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {"cpu": "6"}}}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    c.state.apply_pod(&foreign);
    let mut a = app("a", gang(1, 1, 2), 2);
    let d = c.expect(&mut a.driver, &["n1"], FilterOutcome::FailureFit);
    assert!(d.message.contains("does not fit"), "{}", d.message);
    c.state
        .delete_pod(&sparkgang_common::cluster::PodKey::new("default", "web"));
    c.place(&mut a.driver, &["n1"]);
}

/// An older driver whose demand is still being read (gated) holds younger ones back, so the
/// FIFO order does not depend on which ConfigMap the gate controller reads first.
#[test]
fn fifo_waits_for_older_gated_drivers() {
    let mut c = Cluster::with_config(fifo_config(Duration::ZERO), &[node("n1", "z1")]);
    let mut older = app("older", gang(1, 1, 1), 1);
    created_at(&mut older.driver, "2026-01-01T00:00:00Z");
    older.driver.spec.as_mut().unwrap().scheduling_gates =
        Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
            name: "sparkgang.io/spark-conf".into(),
        }]);
    c.state.apply_pod(&older.driver);
    let mut younger = app("younger", gang(1, 1, 1), 1);
    created_at(&mut younger.driver, "2026-01-01T00:00:10Z");
    let d = c.expect(
        &mut younger.driver,
        &["n1"],
        FilterOutcome::FailureEarlierDriver,
    );
    assert!(d.message.contains("still being read"), "{}", d.message);
    // Ungated: both fit, older first.
    older.driver.spec.as_mut().unwrap().scheduling_gates = None;
    c.state.apply_pod(&older.driver);
    c.place(&mut younger.driver, &["n1"]);
    c.place(&mut older.driver, &["n1"]);
}

/// An executor that ends up on another node than its slot's (kube-scheduler bound it
/// elsewhere) is adopted into a slot on its node and released from the old one: one slot per
/// executor, and its node's usage counts it once.
#[test]
fn an_executor_never_holds_two_slots() {
    let mut c = Cluster::new(TightlyPack, &[node("n1", "z1"), node("n2", "z1")]);
    let mut a = app("a", gang(1, 3, 4), 4);
    c.place(&mut a.driver, &["n1", "n2"]);
    let reservation = c.state.reservation(&a.key()).unwrap().clone();
    let mut e = a.exec(0).clone();
    let d = c
        .state
        .filter(&e, &["n1".to_owned(), "n2".to_owned()], c.now);
    let chosen = d.node.unwrap();
    let other = reservation
        .executor_slots()
        .map(|(_, s)| s.node.clone())
        .find(|n| *n != chosen)
        .expect("slots on both nodes");
    // Bound elsewhere than decided.
    e.spec.as_mut().unwrap().node_name = Some(other.clone());
    e.status = Some(serde_json::from_value(serde_json::json!({"phase": "Running"})).unwrap());
    c.state.apply_pod(&e);
    let r = c.state.reservation(&a.key()).unwrap();
    let holding: Vec<_> = r
        .slots
        .values()
        .filter(|s| s.pod.as_deref() == Some(name(&e).as_str()))
        .collect();
    assert_eq!(holding.len(), 1, "{r:?}");
    assert_eq!(holding[0].node, other);
    c.assert_no_overcommit();
    let n = c.state.node(&other).unwrap();
    assert_eq!(
        n.usage.pods,
        Resources::ZERO,
        "the executor is covered by its slot"
    );
}
