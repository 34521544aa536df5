//! The Spark-conf gate: when and how a gated driver is released, as a plan the gate controller
//! carries out (read the pod and its ConfigMap, then patch, count and tell as planned).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::api::{
    CONF_MAP_ANNOTATION, GANG_DEMAND_ANNOTATION, MAX_EVENT_NOTE_BYTES, SPARK_CONF_GATE,
};
use crate::demand_decision::{
    DecidedDemand, DemandError, DemandInputs, DemandRules, decide_gang_demand,
};
use crate::pods::driver_conf_map_name;
use crate::resources::pod_requests;
use crate::sparkconf::SparkConf;

/// The configuration of the gate.
#[derive(Debug, Clone, Copy)]
pub struct GateRules<'a> {
    /// How long a driver waits for its ConfigMap before it is released without it.
    pub timeout: Duration,
    pub demand: DemandRules<'a>,
}

/// What to do with one gated driver now.
#[derive(Debug, Clone, PartialEq)]
pub enum GatePlan {
    /// The driver no longer carries the gate (or is gone): nothing to do.
    Nothing,
    /// Its Spark conf has not appeared yet: look again after this long.
    LookAgainIn(Duration),
    /// Release it.
    Ungate(Ungate),
}

/// How to release one driver: one JSON patch, a metric reason and an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Ungate {
    /// JSON Patch operations: test the gates as read, remove ours, record the demand.
    pub patch: Vec<Value>,
    /// The demand recorded as `sparkgang.io/demand`, if one could be decided.
    pub recorded: Option<String>,
    /// Why the gate is removed: `conf-read`, `conf-invalid` or `timeout` (a metric label).
    pub reason: &'static str,
    pub event: GateEvent,
}

/// The event published on the driver when its gate is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateEvent {
    pub warning: bool,
    /// `GangDemandComputed`, `GangDemandFallback` or `GangDemandUnknown`.
    pub reason: &'static str,
    pub note: String,
}

/// True when the pod still carries the `sparkgang.io/spark-conf` gate.
pub fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|gates| gates.iter().any(|g| g.name == SPARK_CONF_GATE))
}

/// The ConfigMap holding the driver's `spark.properties`: as recorded at admission, else as
/// mounted.
pub fn conf_map_of(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONF_MAP_ANNOTATION).cloned())
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(driver_conf_map_name)
                .map(str::to_owned)
        })
}

/// Decides what to do with a gated driver, given the text of its `spark.properties` when the
/// ConfigMap was found (`None`: not found, or not readable yet) and the time now.
pub fn plan_ungate(
    pod: &Pod,
    spark_properties: Option<&str>,
    now: Timestamp,
    rules: &GateRules<'_>,
) -> GatePlan {
    if !is_gated(pod) {
        return GatePlan::Nothing;
    }
    let conf_map = conf_map_of(pod);
    let requests = pod
        .spec
        .as_ref()
        .and_then(|s| pod_requests(s, rules.demand.gpus).ok());
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let decide = |conf| {
        decide_gang_demand(
            &DemandInputs {
                annotations,
                driver_requests: requests,
                spark_conf: conf,
            },
            &rules.demand,
        )
    };
    let (decided, reason, problem) = match spark_properties {
        Some(text) => match SparkConf::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|c| c.demand(rules.demand.gpus).map_err(|e| e.to_string()))
        {
            Ok(conf) => (decide(Some(&conf)), "conf-read", None),
            Err(e) => (
                decide(None),
                "conf-invalid",
                Some(format!(
                    "spark.properties of {} is unusable: {e}",
                    conf_map.as_deref().unwrap_or_default()
                )),
            ),
        },
        None => {
            let waited = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|created| now.duration_since(created.0).as_secs_f64().max(0.0))
                .unwrap_or(f64::MAX);
            let timeout = rules.timeout.as_secs_f64();
            if waited < timeout {
                let left = (timeout - waited).clamp(0.05, 1.0);
                return GatePlan::LookAgainIn(Duration::from_secs_f64(left));
            }
            (
                decide(None),
                "timeout",
                Some(format!(
                    "the Spark conf ConfigMap {} did not appear within {}s",
                    conf_map.as_deref().unwrap_or("(none recorded)"),
                    rules.timeout.as_secs()
                )),
            )
        }
    };
    let recorded = decided
        .as_ref()
        .ok()
        .and_then(|d| serde_json::to_string(&d.demand).ok());
    GatePlan::Ungate(Ungate {
        patch: ungate_patch(pod, recorded.as_deref()),
        event: gate_event(&decided, problem.as_deref()),
        recorded,
        reason,
    })
}

/// Test the gates as read (so a concurrent change fails the patch), drop ours, record the demand.
fn ungate_patch(pod: &Pod, recorded: Option<&str>) -> Vec<Value> {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_deref())
        .unwrap_or_default();
    let as_read: Vec<Value> = gates.iter().map(|g| json!({"name": g.name})).collect();
    let remaining: Vec<Value> = gates
        .iter()
        .filter(|g| g.name != SPARK_CONF_GATE)
        .map(|g| json!({"name": g.name}))
        .collect();
    let mut ops = vec![json!({"op": "test", "path": "/spec/schedulingGates", "value": as_read})];
    if remaining.is_empty() {
        ops.push(json!({"op": "remove", "path": "/spec/schedulingGates"}));
    } else {
        ops.push(json!({"op": "replace", "path": "/spec/schedulingGates", "value": remaining}));
    }
    if let Some(d) = recorded {
        if pod.metadata.annotations.is_none() {
            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {GANG_DEMAND_ANNOTATION: d}}));
        } else {
            ops.push(json!({"op": "add", "path": "/metadata/annotations/sparkgang.io~1demand", "value": d}));
        }
    }
    ops
}

fn gate_event(decided: &Result<DecidedDemand, DemandError>, problem: Option<&str>) -> GateEvent {
    let (warning, reason, note) = match (decided, problem) {
        (Ok(m), None) => (
            false,
            "GangDemandComputed",
            format!(
                "gang demand from spark.properties: driver {} + {}..{} executors of {}",
                m.demand.driver, m.demand.min_executors, m.demand.max_executors, m.demand.executor
            ),
        ),
        (Ok(m), Some(p)) => (
            true,
            "GangDemandFallback",
            format!(
                "{p}; using {:?} demand: driver {} + {}..{} executors of {}",
                m.source,
                m.demand.driver,
                m.demand.min_executors,
                m.demand.max_executors,
                m.demand.executor
            ),
        ),
        (Err(e), p) => (
            true,
            "GangDemandUnknown",
            format!(
                "{}{e}; the driver cannot be gang scheduled until it has spark-driver-*/spark-executor-* annotations or the extender has a default demand",
                p.map(|p| format!("{p}; ")).unwrap_or_default()
            ),
        ),
    };
    GateEvent {
        warning,
        reason,
        note: crate::text::truncate_bytes(&note, MAX_EVENT_NOTE_BYTES).to_owned(),
    }
}
