//! The pending shortfall: `Demand` objects for the capacity a pending pod could not find, read
//! by cluster autoscalers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::APP_ID_LABEL;
use crate::api::demand::{Demand, DemandSpec, DemandUnit};
use crate::pods::SparkRole;
use crate::resources::Resources;

use super::ClusterState;
use super::keys::PodKey;

/// The name of the `Demand` of a pod.
pub fn demand_object_name(pod: &str) -> String {
    let mut name = format!("demand-{pod}");
    name.truncate(253);
    name
}

impl ClusterState {
    /// The `Demand` to publish for a pending pod that does not fit: a driver asks for itself
    /// and its minimum executors, an executor for itself. Pods without an instance group get
    /// none (an autoscaler would not know which nodes to add).
    pub fn demand_object(&self, key: &PodKey) -> Option<Demand> {
        let pod = self.pods.get(key)?;
        let group = pod.instance_group.clone()?;
        let gpu = self.config.gpus.primary();
        let unit = |r: &Resources, count: u32, names: bool| DemandUnit {
            resources: r.to_quantities(gpu),
            count,
            pod_names_by_namespace: if names {
                BTreeMap::from([(key.namespace.clone(), vec![key.name.clone()])])
            } else {
                BTreeMap::new()
            },
        };
        let units = match pod.role? {
            SparkRole::Driver => {
                let demand = pod.driver.as_ref()?.demand.clone().ok()?;
                let mut units = vec![unit(&demand.driver, 1, true)];
                if demand.min_executors > 0 {
                    units.push(unit(&demand.executor, demand.min_executors, false));
                }
                units
            }
            SparkRole::Executor => {
                let size = pod
                    .app
                    .as_ref()
                    .and_then(|a| self.app_demand(a))
                    .map_or(pod.requests, |d| d.executor.max(&pod.requests));
                vec![unit(&size, 1, true)]
            }
        };
        let labels = pod
            .app
            .as_ref()
            .map(|a| BTreeMap::from([(APP_ID_LABEL.to_owned(), a.app_id.clone())]));
        Some(Demand {
            metadata: ObjectMeta {
                name: Some(demand_object_name(&key.name)),
                namespace: Some(key.namespace.clone()),
                labels,
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Pod".to_owned(),
                    name: key.name.clone(),
                    uid: pod.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: DemandSpec {
                instance_group: group,
                units,
                enforce_single_zone_scheduling: self.config.binpack.is_single_az(),
                zone: None,
            },
            status: None,
        })
    }
}
