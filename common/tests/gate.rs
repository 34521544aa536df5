//! The Spark-conf gate's plan, without I/O: wait for the conf, read it, fall back after the
//! timeout, and the one patch that releases the driver.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sparkgang_common::demand_decision::DemandRules;
use sparkgang_common::gate::{GatePlan, GateRules, plan_ungate};
use sparkgang_common::{GangDemand, GpuResourceNames, Resources};

const CREATED: &str = "2026-01-01T00:00:00Z";

fn driver(gates: &[&str]) -> Pod {
    let gates: Vec<_> = gates.iter().map(|g| json!({"name": g})).collect();
    serde_json::from_value(json!({
        "metadata": {"name": "d", "namespace": "spark", "creationTimestamp": CREATED,
                     "labels": {"spark-role": "driver", "spark-app-id": "spark-1"},
                     "annotations": {"sparkgang.io/spark-conf-map": "spark-drv-1-conf-map"}},
        "spec": {"schedulingGates": gates,
                 "containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1408Mi"}}}]}
    }))
    .expect("a pod")
}

fn at(seconds: i64) -> Timestamp {
    CREATED.parse::<Timestamp>().unwrap() + Duration::from_secs(seconds as u64)
}

fn plan(pod: &Pod, conf: Option<&str>, now: Timestamp, default: Option<GangDemand>) -> GatePlan {
    let gpus = GpuResourceNames::default();
    plan_ungate(
        pod,
        conf,
        now,
        &GateRules {
            timeout: Duration::from_secs(30),
            demand: DemandRules {
                gpus: &gpus,
                default,
            },
        },
    )
}

#[test]
fn a_driver_without_our_gate_is_left_alone() {
    assert_eq!(plan(&driver(&[]), None, at(100), None), GatePlan::Nothing);
    assert_eq!(
        plan(&driver(&["other"]), None, at(100), None),
        GatePlan::Nothing
    );
}

#[test]
fn before_the_timeout_the_gate_waits_for_the_conf() {
    let GatePlan::LookAgainIn(after) =
        plan(&driver(&["sparkgang.io/spark-conf"]), None, at(10), None)
    else {
        panic!("expected to wait");
    };
    assert!(
        after > Duration::ZERO && after <= Duration::from_secs(1),
        "{after:?}"
    );
}

#[test]
fn a_readable_conf_releases_the_driver_with_its_demand() {
    let pod = driver(&["sparkgang.io/spark-conf", "other"]);
    let conf = "spark.executor.instances=3\n";
    let GatePlan::Ungate(u) = plan(&pod, Some(conf), at(1), None) else {
        panic!("expected to ungate");
    };
    assert_eq!(u.reason, "conf-read");
    assert!(!u.event.warning);
    assert_eq!(u.event.reason, "GangDemandComputed");
    let recorded: GangDemand = serde_json::from_str(u.recorded.as_deref().unwrap()).unwrap();
    assert_eq!((recorded.min_executors, recorded.max_executors), (3, 3));
    // 1g + 384m of overhead, Spark's defaults.
    assert_eq!(recorded.executor, Resources::new(1000, 1408 << 20, 0));
    assert_eq!(
        u.patch,
        vec![
            json!({"op": "test", "path": "/spec/schedulingGates",
                   "value": [{"name": "sparkgang.io/spark-conf"}, {"name": "other"}]}),
            json!({"op": "replace", "path": "/spec/schedulingGates", "value": [{"name": "other"}]}),
            json!({"op": "add", "path": "/metadata/annotations/sparkgang.io~1demand",
                   "value": u.recorded.clone().unwrap()}),
        ]
    );
}

#[test]
fn after_the_timeout_the_default_is_used_and_a_warning_says_why() {
    let default = GangDemand {
        driver: Resources::new(1000, 1 << 30, 0),
        executor: Resources::new(1000, 1 << 30, 0),
        min_executors: 1,
        max_executors: 1,
    };
    let pod = driver(&["sparkgang.io/spark-conf"]);
    let GatePlan::Ungate(u) = plan(&pod, None, at(31), Some(default)) else {
        panic!("expected to ungate");
    };
    assert_eq!(u.reason, "timeout");
    assert!(u.event.warning);
    assert_eq!(u.event.reason, "GangDemandFallback");
    assert!(
        u.event.note.contains("did not appear within 30s"),
        "{}",
        u.event.note
    );
    assert_eq!(
        u.patch[1],
        json!({"op": "remove", "path": "/spec/schedulingGates"})
    );
}

#[test]
fn an_unusable_conf_without_a_fallback_releases_the_driver_without_a_demand() {
    let pod = driver(&["sparkgang.io/spark-conf"]);
    let GatePlan::Ungate(u) = plan(&pod, Some("spark.executor.instances=lots\n"), at(1), None)
    else {
        panic!("expected to ungate");
    };
    assert_eq!(u.reason, "conf-invalid");
    assert_eq!(u.event.reason, "GangDemandUnknown");
    assert!(
        u.event.note.contains("spark.executor.instances"),
        "{}",
        u.event.note
    );
    assert_eq!(u.recorded, None);
    assert_eq!(u.patch.len(), 2);
}
