//! The gate controller: reads a gated driver's `spark.properties`, writes its gang demand as
//! the `sparkgang.io/demand` annotation and removes the `sparkgang.io/spark-conf` gate, in one
//! patch. A driver whose ConfigMap never comes is ungated after `gateTimeout` anyway, with the
//! annotations or the default demand, and a Warning event says so: no pod is stranded silently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use serde_json::{Value, json};
use sparkgang_common::annotations::PartialDemand;
use sparkgang_common::api::{CONF_MAP_ANNOTATION, DEMAND_ANNOTATION, SPARK_CONF_GATE};
use sparkgang_common::cluster::PodKey;
use sparkgang_common::demand::{MergedDemand, merge_demand};
use sparkgang_common::pods::driver_conf_map_name;
use sparkgang_common::resources::pod_requests;
use sparkgang_common::sparkconf::SparkConf;
use sparkgang_common::{GangDemand, GpuResourceNames};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Extender;
use crate::metrics::ReasonLabels;
use crate::writer::truncate;

/// Settings of the gate controller.
#[derive(Debug, Clone)]
pub struct GateSettings {
    pub timeout: Duration,
    pub gpus: GpuResourceNames,
    pub default_demand: Option<GangDemand>,
}

/// What to do with one gated driver now.
enum Next {
    Done,
    RetryIn(Duration),
}

/// Runs until the channel closes.
pub async fn run(
    client: Client,
    ext: Arc<Extender>,
    mut gated: mpsc::UnboundedReceiver<PodKey>,
    settings: GateSettings,
    recorder: Recorder,
) {
    let mut due: HashMap<PodKey, Instant> = HashMap::new();
    loop {
        let next_due = due.values().min().copied();
        let received = match next_due {
            Some(at) => tokio::select! {
                k = gated.recv() => Some(k),
                _ = tokio::time::sleep_until(at) => None,
            },
            None => Some(gated.recv().await),
        };
        match received {
            Some(Some(key)) => {
                due.entry(key).or_insert_with(Instant::now);
            }
            Some(None) => return,
            None => {}
        }
        let now = Instant::now();
        let ready: Vec<PodKey> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ready {
            due.remove(&key);
            match ungate(&client, &ext, &key, &settings, &recorder).await {
                Next::Done => {}
                Next::RetryIn(d) => {
                    due.insert(key, Instant::now() + d);
                }
            }
        }
    }
}

async fn ungate(
    client: &Client,
    ext: &Extender,
    key: &PodKey,
    settings: &GateSettings,
    recorder: &Recorder,
) -> Next {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let pod = match pods.get_opt(&key.name).await {
        Ok(Some(p)) => p,
        Ok(None) => return Next::Done,
        Err(e) => {
            warn!(pod = %key, error = %e, "cannot read gated driver");
            return Next::RetryIn(Duration::from_secs(1));
        }
    };
    let Some(gates) = pod.spec.as_ref().and_then(|s| s.scheduling_gates.clone()) else {
        return Next::Done;
    };
    if !gates.iter().any(|g| g.name == SPARK_CONF_GATE) {
        return Next::Done;
    }
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let partial = match PartialDemand::from_annotations(&annotations, &settings.gpus) {
        Ok(p) => p,
        Err(e) => {
            warn!(pod = %key, error = %e, "driver annotations unreadable; ignoring them");
            PartialDemand::default()
        }
    };
    let requests = pod
        .spec
        .as_ref()
        .and_then(|s| pod_requests(s, &settings.gpus).ok());
    let conf_map = annotations.get(CONF_MAP_ANNOTATION).cloned().or_else(|| {
        pod.spec
            .as_ref()
            .and_then(driver_conf_map_name)
            .map(str::to_owned)
    });
    let conf_text = match &conf_map {
        Some(name) => {
            let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &key.namespace);
            match maps.get_opt(name).await {
                Ok(found) => {
                    found.and_then(|cm| cm.data.and_then(|d| d.get("spark.properties").cloned()))
                }
                Err(e) => {
                    warn!(pod = %key, configmap = name.as_str(), error = %e, "cannot read the Spark conf");
                    None
                }
            }
        }
        None => None,
    };
    let (merged, reason, problem) = match conf_text {
        Some(text) => match SparkConf::parse(&text)
            .map_err(|e| e.to_string())
            .and_then(|c| c.demand(&settings.gpus).map_err(|e| e.to_string()))
        {
            Ok(conf) => (
                merge_demand(requests, &partial, Some(&conf), settings.default_demand),
                "conf-read",
                None,
            ),
            Err(e) => (
                merge_demand(requests, &partial, None, settings.default_demand),
                "conf-invalid",
                Some(format!(
                    "spark.properties of {} is unusable: {e}",
                    conf_map.unwrap_or_default()
                )),
            ),
        },
        None => {
            let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let now = ext.clock.now();
            let waited = created
                .map(|c| now.duration_since(c).as_secs_f64().max(0.0))
                .unwrap_or(f64::MAX);
            let timeout = settings.timeout.as_secs_f64();
            if waited < timeout {
                let left = Duration::from_secs_f64((timeout - waited).clamp(0.05, 1.0));
                return Next::RetryIn(left);
            }
            (
                merge_demand(requests, &partial, None, settings.default_demand),
                "timeout",
                Some(format!(
                    "the Spark conf ConfigMap {} did not appear within {}s",
                    conf_map.as_deref().unwrap_or("(none recorded)"),
                    settings.timeout.as_secs()
                )),
            )
        }
    };
    let remaining: Vec<Value> = gates
        .iter()
        .filter(|g| g.name != SPARK_CONF_GATE)
        .map(|g| json!({"name": g.name}))
        .collect();
    let gate_values: Vec<Value> = gates.iter().map(|g| json!({"name": g.name})).collect();
    let mut ops =
        vec![json!({"op": "test", "path": "/spec/schedulingGates", "value": gate_values})];
    if remaining.is_empty() {
        ops.push(json!({"op": "remove", "path": "/spec/schedulingGates"}));
    } else {
        ops.push(json!({"op": "replace", "path": "/spec/schedulingGates", "value": remaining}));
    }
    let demand_json = merged
        .as_ref()
        .ok()
        .and_then(|m: &MergedDemand| serde_json::to_string(&m.demand).ok());
    if let Some(d) = &demand_json {
        if pod.metadata.annotations.is_none() {
            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {DEMAND_ANNOTATION: d}}));
        } else {
            ops.push(json!({"op": "add", "path": "/metadata/annotations/sparkgang.io~1demand", "value": d}));
        }
    }
    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
        Ok(p) => p,
        Err(e) => {
            warn!(pod = %key, error = %e, "cannot build the gate patch");
            return Next::Done;
        }
    };
    match pods
        .patch(
            &key.name,
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => {}
        Err(e) => {
            warn!(pod = %key, error = %e, "cannot remove the scheduling gate; retrying");
            return Next::RetryIn(Duration::from_millis(500));
        }
    }
    ext.metrics
        .gate_removals
        .get_or_create(&ReasonLabels {
            reason: reason.to_owned(),
        })
        .inc();
    let reference = ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let (event_type, event_reason, note) = match (&merged, &problem) {
        (Ok(m), None) => (
            EventType::Normal,
            "GangDemandComputed",
            format!(
                "gang demand from spark.properties: driver {} + {}..{} executors of {}",
                m.demand.driver, m.demand.min_executors, m.demand.max_executors, m.demand.executor
            ),
        ),
        (Ok(m), Some(p)) => (
            EventType::Warning,
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
            EventType::Warning,
            "GangDemandUnknown",
            format!(
                "{}{e}; the driver cannot be gang scheduled until it has spark-driver-*/spark-executor-* annotations or the extender has a default demand",
                p.as_ref().map(|p| format!("{p}; ")).unwrap_or_default()
            ),
        ),
    };
    info!(pod = %key, reason, demand = demand_json.as_deref().unwrap_or("none"), "scheduling gate removed");
    let event = Event {
        type_: event_type,
        reason: event_reason.to_owned(),
        note: Some(truncate(&note, 1024)),
        action: "Ungate".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        warn!(pod = %key, error = %e, "cannot publish event");
    }
    Next::Done
}
