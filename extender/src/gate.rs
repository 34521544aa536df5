//! The gate controller (the shell of `sparkgang_common::gate`): reads a gated driver's
//! `spark.properties`, writes its gang demand as the `sparkgang.io/demand` annotation and removes
//! the `sparkgang.io/spark-conf` gate, in one patch. A driver whose ConfigMap never comes is
//! ungated after `gateTimeout` anyway, with the annotations or the default demand, and a Warning
//! event says so: no pod is stranded silently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use serde_json::Value;
use sparkgang_common::cluster::PodKey;
use sparkgang_common::demand_decision::DemandRules;
use sparkgang_common::gate::{self, GatePlan, GateRules};
use sparkgang_common::{GangDemand, GpuResourceNames};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Extender;
use crate::metrics::ReasonLabels;

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

/// Reads the driver and its Spark conf, asks the gate's plan what to do, and does it.
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
    if !gate::is_gated(&pod) {
        return Next::Done;
    }
    let spark_properties = match gate::conf_map_of(&pod) {
        Some(name) => read_spark_properties(client, key, &name).await,
        None => None,
    };
    let rules = GateRules {
        timeout: settings.timeout,
        demand: DemandRules {
            gpus: &settings.gpus,
            default: settings.default_demand,
        },
    };
    let plan = match gate::plan_ungate(&pod, spark_properties.as_deref(), ext.clock.now(), &rules) {
        GatePlan::Nothing => return Next::Done,
        GatePlan::LookAgainIn(after) => return Next::RetryIn(after),
        GatePlan::Ungate(plan) => plan,
    };
    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(plan.patch)) {
        Ok(p) => p,
        Err(e) => {
            warn!(pod = %key, error = %e, "cannot build the gate patch");
            return Next::Done;
        }
    };
    if let Err(e) = pods
        .patch(
            &key.name,
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        warn!(pod = %key, error = %e, "cannot remove the scheduling gate; retrying");
        return Next::RetryIn(Duration::from_millis(500));
    }
    ext.metrics
        .gate_removals
        .get_or_create(&ReasonLabels {
            reason: plan.reason.to_owned(),
        })
        .inc();
    info!(
        pod = %key,
        reason = plan.reason,
        demand = plan.recorded.as_deref().unwrap_or("none"),
        "scheduling gate removed"
    );
    let reference = ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: if plan.event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: plan.event.reason.to_owned(),
        note: Some(plan.event.note),
        action: "Ungate".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        warn!(pod = %key, error = %e, "cannot publish event");
    }
    Next::Done
}

/// The `spark.properties` of ConfigMap `name`, if it exists and has them.
async fn read_spark_properties(client: &Client, key: &PodKey, name: &str) -> Option<String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &key.namespace);
    match maps.get_opt(name).await {
        Ok(found) => found.and_then(|cm| cm.data.and_then(|mut d| d.remove("spark.properties"))),
        Err(e) => {
            warn!(pod = %key, configmap = name, error = %e, "cannot read the Spark conf");
            None
        }
    }
}
