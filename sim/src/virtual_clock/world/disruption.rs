//! Priorities and disruption in the virtual world: `PriorityClass`es and
//! `PodDisruptionBudget`s as the scenario creates them, and evictions for preemption.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Deserialize;
use serde_json::{Value, json};
use sparkgang_common::GpuResourceNames;
use sparkgang_common::cluster::WatchEvent;
use sparkgang_common::resources::pod_requests;

use super::World;
use super::api;
use crate::apiserver::eviction;
use crate::apiserver::resources::Subresource;
use crate::harness::SimError;

impl World {
    /// Stores a `scheduling.k8s.io/v1` `PriorityClass` (the API server's Priority plugin reads
    /// it when pods are created).
    pub fn create_priority_class(&mut self, class: Value) -> Result<(), SimError> {
        let def = self
            .store
            .resource("scheduling.k8s.io", "v1", "priorityclasses")
            .ok_or_else(|| api("the PriorityClass resource is not served"))?;
        self.store.create(&def, "", class).map_err(api)?;
        Ok(())
    }

    /// Stores a `policy/v1` `PodDisruptionBudget` with `status` (what the disruption
    /// controller would write; the Eviction API spends it), and tells the extender.
    pub fn create_disruption_budget(
        &mut self,
        budget: Value,
        status: Value,
    ) -> Result<(), SimError> {
        let def = self
            .store
            .resource("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| api("the PodDisruptionBudget resource is not served"))?;
        let namespace = budget
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let created = self.store.create(&def, &namespace, budget).map_err(api)?;
        self.store
            .modify(
                &def,
                Some(Subresource::Status),
                &namespace,
                created.name(),
                |b| {
                    b["status"] = status.clone();
                },
            )
            .map_err(api)?;
        self.feed_budgets(&namespace);
        Ok(())
    }

    /// Feeds the extender the budgets of `namespace` as stored now (after an eviction spent
    /// one, as its watch would).
    pub(super) fn feed_budgets(&mut self, namespace: &str) {
        let Some(ext) = self.extender.as_mut() else {
            return;
        };
        let Some(def) = self.store.resource("policy", "v1", "poddisruptionbudgets") else {
            return;
        };
        let Ok(listed) = self.store.list(
            &def,
            Some(namespace),
            &crate::apiserver::selectors::Selectors::default(),
            None,
            None,
        ) else {
            return;
        };
        for stored in &listed.items {
            match PodDisruptionBudget::deserialize(&stored.value) {
                Ok(b) => {
                    ext.feed.budget(&mut ext.state, WatchEvent::Apply(b));
                }
                Err(e) => tracing::warn!(error = %e, "unreadable PodDisruptionBudget"),
            }
        }
    }

    /// The pods evicted for preemption so far (`namespace/name`), sorted.
    pub fn preempted(&self) -> Vec<crate::history::Preempted> {
        self.preempted
            .iter()
            .map(|(pod, (message, at, requests))| {
                crate::history::Preempted::from_message(pod.clone(), message, *at, *requests)
            })
            .collect()
    }

    /// Evicts a pod for preemption as the extender's writer does: `DisruptionTarget`
    /// (`PreemptionByScheduler`), then the Eviction API's budget check, then the delete. A
    /// refusal by a PodDisruptionBudget leaves the pod (the writer tries again in real time;
    /// the virtual clock does not yet).
    pub(super) fn evict(&mut self, namespace: &str, name: &str, message: &str) {
        let now = crate::apiserver::clock::format_time(self.timestamp());
        let condition = json!({"type": "DisruptionTarget", "status": "True",
            "reason": "PreemptionByScheduler", "message": message, "lastTransitionTime": now});
        let Ok(marked) = self.store.modify(
            &self.pods,
            Some(Subresource::Status),
            namespace,
            name,
            |p| {
                let conditions = &mut p["status"]["conditions"];
                if !conditions.is_array() {
                    *conditions = json!([]);
                }
                if let Some(list) = conditions.as_array_mut() {
                    list.retain(|c| c["type"] != "DisruptionTarget");
                    list.push(condition.clone());
                }
            },
        ) else {
            return;
        };
        self.pod_changed(&marked);
        let at = self.now().as_secs_f64();
        let requests = Pod::deserialize(&marked.value)
            .ok()
            .and_then(|p| p.spec)
            .and_then(|sp| pod_requests(&sp, &GpuResourceNames::default()).ok())
            .unwrap_or_default();
        self.preempted
            .entry(format!("{namespace}/{name}"))
            .or_insert_with(|| (message.to_owned(), at, requests));
        if let Err(e) = eviction::admit_eviction(&self.store, namespace, name, &marked.value) {
            tracing::warn!(error = %e, pod = name, "eviction refused");
            return;
        }
        self.feed_budgets(namespace);
        self.delete_pod(namespace, name);
    }
}
