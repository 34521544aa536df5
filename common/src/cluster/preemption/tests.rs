//! Preemption plans on a scripted cluster: two full nodes, lower-priority gangs running.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::api::GANG_DEMAND_ANNOTATION;
use crate::cluster::{AppKey, ClusterState, PodKey, PreemptionPolicy, SchedulerConfig, Timestamp};
use crate::{GangDemand, Resources};

use super::VictimKind;

fn t(second: u32) -> Timestamp {
    format!("2026-01-01T00:{:02}:{:02}Z", second / 60, second % 60)
        .parse()
        .unwrap()
}

/// A driver of `app` created at `second` whose gang is 1 cpu + 2 executors of 3 cpu.
fn driver(app: &str, priority: i32, second: u32) -> serde_json::Value {
    let demand = GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(3000, 2 << 30, 0),
        min_executors: 2,
        max_executors: 2,
    };
    json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": "spark",
            "uid": format!("uid-{app}"),
            "creationTimestamp": t(second).to_string(),
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).unwrap()}},
        "spec": {"schedulerName": "spark-scheduler", "priority": priority,
            "containers": [{"name": "driver",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    })
}

/// The decision waits for (or starts) a preemption: `failure-preempting`.
fn assert_preempting(d: &crate::cluster::Decision) {
    assert_eq!(
        d.outcome,
        crate::cluster::FilterOutcome::FailurePreempting,
        "{}",
        d.message
    );
}

fn pod(v: &serde_json::Value) -> Pod {
    serde_json::from_value(v.clone()).unwrap()
}

/// Two 8-cpu nodes, each filled by one running gang of priority 10 (`old` started at 0 s,
/// `young` at 30 s), with `policy`.
fn full_cluster(policy: PreemptionPolicy) -> (ClusterState, Vec<String>) {
    let mut s = ClusterState::new(SchedulerConfig {
        preemption: policy,
        ..SchedulerConfig::default()
    });
    let names: Vec<String> = (0..2).map(|i| format!("node-{i}")).collect();
    for n in &names {
        s.apply_node(
            &serde_json::from_value(json!({
                "metadata": {"name": n},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                    "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .unwrap(),
        );
    }
    for (app, second) in [("old", 0), ("young", 30)] {
        let mut d = driver(app, 10, second);
        let node = s
            .filter(&pod(&d), &names, t(second))
            .node
            .expect("fits an empty node");
        d["spec"]["nodeName"] = json!(node);
        d["status"] = json!({"phase": "Running", "startTime": t(second).to_string()});
        s.apply_pod(&pod(&d));
    }
    (s, names)
}

fn enabled() -> PreemptionPolicy {
    PreemptionPolicy {
        enabled: true,
        ..PreemptionPolicy::default()
    }
}

#[test]
fn the_youngest_lower_priority_gang_is_the_victim() {
    let (mut s, names) = full_cluster(enabled());
    let urgent = pod(&driver("urgent", 1000, 60));
    s.config.preemption.enabled = false;
    assert!(
        s.filter(&urgent, &names, t(60)).node.is_none(),
        "the cluster is full"
    );
    s.config.preemption.enabled = true;
    let key = PodKey::new("spark", "urgent-driver");
    let plan = s.plan_preemption(&key, t(61)).expect("a plan");
    assert_eq!(plan.victims.len(), 1, "{}", plan.victims_text());
    let v = &plan.victims[0];
    assert_eq!(v.app, AppKey::new("spark", "young"));
    assert_eq!(v.kind, VictimKind::Gang);
    assert_eq!(v.pods, [PodKey::new("spark", "young-driver")]);
    // The gang goes where the victim was.
    let young_node = s
        .reservation(&AppKey::new("spark", "young"))
        .and_then(|r| r.driver_node())
        .unwrap()
        .to_owned();
    let idx = s.nodes.index_of(&young_node).unwrap();
    assert_eq!(plan.placement.driver_node, idx);
    assert_eq!(
        plan.victims_text(),
        "the gang of driver spark/young-driver (application young, priority 10)"
    );
}

#[test]
fn equal_priority_never_preempts() {
    let (mut s, _) = full_cluster(enabled());
    s.apply_pod(&pod(&driver("peer", 10, 60)));
    let err = s
        .plan_preemption(&PodKey::new("spark", "peer-driver"), t(61))
        .unwrap_err();
    assert!(err.contains("would not be enough"), "{err}");
}

#[test]
fn a_gang_younger_than_min_runtime_is_spared() {
    let (mut s, _) = full_cluster(PreemptionPolicy {
        min_runtime: Duration::from_secs(45),
        ..enabled()
    });
    s.apply_pod(&pod(&driver("urgent", 1000, 60)));
    let key = PodKey::new("spark", "urgent-driver");
    // At 61 s only `old` has run for 45 s.
    let plan = s.plan_preemption(&key, t(61)).expect("a plan");
    assert_eq!(plan.victims[0].app, AppKey::new("spark", "old"));
    // Under a longer minimum, neither.
    s.config.preemption.min_runtime = Duration::from_secs(3600);
    let err = s.plan_preemption(&key, t(61)).unwrap_err();
    assert!(
        err.contains("2 lower-priority gangs ran for less than minRuntime 3600s"),
        "{err}"
    );
}

/// A victim already terminating is room on its way: planning again (after a restart, say)
/// chooses no second victim.
#[test]
fn room_already_being_freed_needs_no_extra_victim() {
    let (mut s, _) = full_cluster(enabled());
    s.apply_pod(&pod(&driver("urgent", 1000, 60)));
    let key = PodKey::new("spark", "urgent-driver");
    let first = s.plan_preemption(&key, t(61)).expect("a plan");
    assert_eq!(first.victims[0].app, AppKey::new("spark", "young"));
    let mut young = driver("young", 10, 30);
    let node = s
        .reservation(&AppKey::new("spark", "young"))
        .and_then(|r| r.driver_node())
        .unwrap()
        .to_owned();
    young["spec"]["nodeName"] = json!(node);
    young["metadata"]["deletionTimestamp"] = json!(t(62).to_string());
    young["status"] = json!({"phase": "Running", "startTime": t(30).to_string()});
    s.apply_pod(&pod(&young));
    let again = s.plan_preemption(&key, t(63)).expect("a plan");
    assert!(again.victims.is_empty(), "{}", again.victims_text());
}

#[test]
fn the_budget_per_minute_holds() {
    let (mut s, _) = full_cluster(PreemptionPolicy {
        max_victims_per_minute: 1,
        ..enabled()
    });
    s.apply_pod(&pod(&driver("urgent", 1000, 60)));
    let key = PodKey::new("spark", "urgent-driver");
    let plan = s.plan_preemption(&key, t(61)).expect("a plan");
    s.record_preemption(&plan, t(61));
    let err = s.plan_preemption(&key, t(90)).unwrap_err();
    assert!(err.contains("allows 0 now"), "{err}");
    assert!(s.plan_preemption(&key, t(122)).is_ok(), "a minute later");
}

/// In dry run a driver that does not fit is told what preemption would evict, and the report
/// effect carries it; with preemption off, nothing is said.
#[test]
fn dry_run_reports_in_the_failure_message_and_evicts_nothing() {
    let (mut s, names) = full_cluster(PreemptionPolicy {
        dry_run: true,
        ..enabled()
    });
    let urgent = pod(&driver("urgent", 1000, 60));
    let d = s.filter(&urgent, &names, t(61));
    assert!(d.node.is_none());
    assert!(
        d.message.ends_with(
            "; preemption would evict the gang of driver spark/young-driver (application young, \
             priority 10) (dry run: nothing is evicted)"
        ),
        "{}",
        d.message
    );
    assert!(
        d.effects.iter().any(|e| matches!(
            e,
            crate::cluster::Effect::ReportPreemption {
                dry_run: true,
                gangs: 1,
                soft: 0,
                priority: 1000,
                ..
            }
        )),
        "{:?}",
        d.effects
    );
    // Nothing changed: both gangs keep their reservations, the preemptor has none.
    for app in ["old", "young"] {
        assert!(s.reservation(&AppKey::new("spark", app)).is_some());
    }
    assert!(s.reservation(&AppKey::new("spark", "urgent")).is_none());

    let (mut off, names) = full_cluster(PreemptionPolicy::default());
    let d = off.filter(&urgent, &names, t(61));
    assert!(!d.message.contains("preemption"), "{}", d.message);
    assert!(
        !d.effects
            .iter()
            .any(|e| matches!(e, crate::cluster::Effect::ReportPreemption { .. }))
    );
}

/// A driver of equal priority hears why preemption cannot help.
#[test]
fn the_reason_says_why_nothing_can_be_evicted() {
    let (mut s, names) = full_cluster(PreemptionPolicy {
        dry_run: true,
        ..enabled()
    });
    let d = s.filter(&pod(&driver("peer", 10, 60)), &names, t(61));
    assert!(
        d.message.contains(
            "preemption cannot make room: evicting every lower-priority gang and soft \
             reservation on its 2 eligible nodes would not be enough"
        ),
        "{}",
        d.message
    );
}

/// Preemption carried out: the preemptor's places are reserved at once (held), every pod of
/// the victim is evicted, the driver waits while its node is over-committed by the victim and
/// is placed on the held node once the victim is gone.
#[test]
fn the_room_is_held_and_the_driver_binds_once_the_victim_is_gone() {
    let (mut s, names) = full_cluster(enabled());
    let urgent = pod(&driver("urgent", 1000, 60));
    let d = s.filter(&urgent, &names, t(61));
    assert_preempting(&d);
    assert!(
        d.message
            .contains("preempting the gang of driver spark/young-driver"),
        "{}",
        d.message
    );
    let urgent_app = AppKey::new("spark", "urgent");
    let held = s
        .reservation(&urgent_app)
        .and_then(|r| r.driver_node())
        .expect("the room is held")
        .to_owned();
    assert!(
        d.effects
            .contains(&crate::cluster::Effect::SyncReservation(urgent_app.clone()))
    );
    let evicted: Vec<&PodKey> = d
        .effects
        .iter()
        .filter_map(|e| match e {
            crate::cluster::Effect::Evict { pod, .. } => Some(pod),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, [&PodKey::new("spark", "young-driver")]);
    // The victim is still there: the driver waits, and nobody else gets its room.
    let d = s.filter(&urgent, &names, t(62));
    assert_preempting(&d);
    assert!(
        d.message.contains(&format!("held on node {held}")),
        "{}",
        d.message
    );
    let other = pod(&driver("other", 1000, 62));
    s.config.preemption.enabled = false;
    assert!(
        s.filter(&other, &names, t(62)).node.is_none(),
        "the held room is not given away"
    );
    // The victim's driver is gone (its executors were never created here).
    s.delete_pod(&PodKey::new("spark", "young-driver"));
    let d = s.filter(&urgent, &names, t(63));
    assert_eq!(d.node.as_deref(), Some(held.as_str()), "{}", d.message);
}

/// kube-scheduler asks about its own preemption for a driver that fits no node by its
/// accounting: the extender makes its gang plan instead (the same as a filter call would);
/// executors and foreign pods are not taken over; with preemption off nothing is.
#[test]
fn kube_scheduler_preemption_is_taken_over_for_drivers() {
    let (mut s, _) = full_cluster(enabled());
    let d = s
        .preempt_for_kube_scheduler(&pod(&driver("urgent", 1000, 60)), t(61))
        .expect("taken over");
    assert_preempting(&d);
    assert!(d.effects.iter().any(
        |e| matches!(e, crate::cluster::Effect::Evict { pod, .. } if pod.name == "young-driver")
    ));
    let web: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
        "spec": {"containers": [{"name": "c"}]}
    }))
    .unwrap();
    assert!(s.preempt_for_kube_scheduler(&web, t(62)).is_none());
    let (mut off, _) = full_cluster(PreemptionPolicy::default());
    assert!(
        off.preempt_for_kube_scheduler(&pod(&driver("urgent", 1000, 60)), t(61))
            .is_none()
    );
}

/// A reserved driver waits only for pods on their way out: a node over-committed by a pod
/// that stays (another scheduler's, say) does not hold it back, one that is terminating does.
#[test]
fn only_pods_on_their_way_out_hold_a_reserved_driver_back() {
    let (mut s, names) = full_cluster(PreemptionPolicy::default());
    let node = s
        .reservation(&AppKey::new("spark", "old"))
        .and_then(|r| r.driver_node())
        .unwrap()
        .to_owned();
    let mut old = driver("old", 10, 0);
    old["spec"]["nodeName"] = json!(node);
    let mut web = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
        "spec": {"nodeName": node, "containers": [{"name": "c",
            "resources": {"requests": {"cpu": "4"}}}]},
        "status": {"phase": "Running"}
    });
    s.apply_pod(&pod(&web));
    let d = s.filter(&pod(&old), &names, t(70));
    assert_eq!(d.node.as_deref(), Some(node.as_str()), "{}", d.message);
    web["metadata"]["deletionTimestamp"] = json!(t(71).to_string());
    s.apply_pod(&pod(&web));
    let d = s.filter(&pod(&old), &names, t(72));
    assert_preempting(&d);
}

/// An executor whose free slot is on a node that pods being evicted still over-commit waits
/// for them, as the driver does; once they are gone it takes the slot.
#[test]
fn an_executor_slot_waits_for_pods_leaving_its_node() {
    let (mut s, names) = full_cluster(PreemptionPolicy::default());
    let node = s
        .reservation(&AppKey::new("spark", "old"))
        .and_then(|r| r.driver_node())
        .unwrap()
        .to_owned();
    let web = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web",
            "deletionTimestamp": t(71).to_string()},
        "spec": {"nodeName": node, "containers": [{"name": "c",
            "resources": {"requests": {"cpu": "4"}}}]},
        "status": {"phase": "Running"}
    });
    s.apply_pod(&pod(&web));
    let exec = pod(&json!({
        "metadata": {"name": "old-exec-1", "namespace": "spark", "uid": "u-old-exec-1",
            "creationTimestamp": t(72).to_string(),
            "labels": {"spark-role": "executor", "spark-app-id": "old"}},
        "spec": {"schedulerName": "spark-scheduler", "priority": 10,
            "containers": [{"name": "executor",
                "resources": {"requests": {"cpu": "3", "memory": "2Gi"}}}]}
    }));
    s.apply_pod(&exec);
    let d = s.filter(&exec, &names, t(72));
    assert_preempting(&d);
    assert!(
        d.message
            .contains(&format!("executor slot held on node {node}")),
        "{}",
        d.message
    );
    s.delete_pod(&PodKey::new("default", "web"));
    let d = s.filter(&exec, &names, t(73));
    assert_eq!(d.node.as_deref(), Some(node.as_str()), "{}", d.message);
}

fn budget(
    name: &str,
    app: &str,
    allowed: i32,
) -> k8s_openapi::api::policy::v1::PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "spark"},
        "spec": {"selector": {"matchLabels": {"spark-app-id": app}}},
        "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1,
            "expectedPods": 1}
    }))
    .unwrap()
}

#[test]
fn a_gang_whose_disruption_budget_allows_nothing_is_spared_for_an_older_one() {
    let (mut s, _) = full_cluster(enabled());
    s.apply_budget(&budget("keep-young", "young", 0));
    s.apply_pod(&pod(&driver("urgent", 1000, 60)));
    let key = PodKey::new("spark", "urgent-driver");
    let plan = s.plan_preemption(&key, t(61)).expect("a plan");
    let victims: Vec<&AppKey> = plan.victims.iter().map(|v| &v.app).collect();
    assert_eq!(victims, [&AppKey::new("spark", "old")]);
    // Once the budget allows the disruption, the youngest is the victim again.
    s.apply_budget(&budget("keep-young", "young", 1));
    let plan = s.plan_preemption(&key, t(61)).expect("a plan");
    assert_eq!(plan.victims[0].app, AppKey::new("spark", "young"));
    // Two budgets over one pod: the Eviction API refuses it, so it is never a victim.
    s.apply_budget(&budget("keep-young-too", "young", 5));
    s.apply_budget(&budget("keep-old", "old", 0));
    let err = s.plan_preemption(&key, t(61)).unwrap_err();
    assert!(
        err.contains("2 lower-priority gangs or executors protected by PodDisruptionBudgets"),
        "{err}"
    );
    s.delete_budget(&("spark".to_owned(), "keep-old".to_owned()));
    let plan = s.plan_preemption(&key, t(61)).expect("a plan");
    assert_eq!(plan.victims[0].app, AppKey::new("spark", "old"));
}
