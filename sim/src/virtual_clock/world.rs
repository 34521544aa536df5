//! The simulated cluster in one process, for virtual time: the API server's store on a manual
//! clock, and each component's decision code called directly — the webhook's `review`, the
//! gate's `plan_ungate`, the extender's `Feed` and `filter` with its effects written at once,
//! kube-scheduler's `SchedulerCore`, a kubelet that starts bound pods, Spark's `Allocator`.
//! No HTTP, TLS or watches: every change is seen at once. Each method is one thing a component
//! does; the event loop decides when.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use sparkgang_admission::MutationConfig;
use sparkgang_admission::mutation::{ApiReads, DriverClass, QueueLookup};
use sparkgang_admission::review;
use sparkgang_admission::review_client::{decode_response, pod_create_review};
use sparkgang_common::api::extender::ExtenderFilterResult;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::{AppKey, ClusterState, Effect, Feed, WatchEvent};
use sparkgang_common::demand_decision::DemandRules;
use sparkgang_common::gate::{self, GatePlan, GateRules};
use sparkgang_common::labels::selector_matches;
use sparkgang_common::pods;
use sparkgang_common::resources::node_allocatable;
use sparkgang_common::{GangDemand, GpuResourceNames};

mod disruption;
mod queues;
mod termination;

use super::ledger::Ledger;
use crate::apiserver::priority;
use crate::apiserver::{
    Clock, DeleteOptions, ManualClock, ResourceDef, ResourceTable, ServerConfig, Store,
    StoreConfig, Stored, Subresource, WriteOptions,
};
use crate::deploy_config::{SchedulerDeployment, load_webhook_configuration};
use crate::harness::{SimError, extender_config, load_admission_config};
use crate::history::{Change, PodRecord, ReservationRecord, State, held_by_node};
use crate::kubelet::{Phase, status_patch};
use crate::scheduler::{Attempt, CoreSettings, SchedulerCore, pod_key};
use crate::spark::{Submission, submitted_objects};

/// The extender's side: its state, the feed that keeps it, the gate's rules.
struct ExtenderSide {
    state: ClusterState,
    feed: Feed,
    gate_timeout: Duration,
    gpus: GpuResourceNames,
    default_demand: Option<GangDemand>,
}

/// The cluster and its components, in one process.
pub struct World {
    clock: Arc<ManualClock>,
    origin: Timestamp,
    pub store: Store,
    pods: Arc<ResourceDef>,
    nodes: Arc<ResourceDef>,
    config_maps: Arc<ResourceDef>,
    /// The ConfigMap each submitted driver (`namespace/name`) owns, by the driver.
    driver_config_maps: BTreeMap<String, String>,
    /// Pods evicted for preemption (`namespace/name`), with the message saying for whom.
    preempted: BTreeMap<String, (String, f64, sparkgang_common::Resources)>,
    /// How long a pod deleted while running takes to stop (`None`: at once).
    pod_termination: Option<Duration>,
    /// Pods being deleted, and when each stops.
    terminating: Vec<(Duration, String, String)>,
    namespaces: Arc<ResourceDef>,
    reservations: Arc<ResourceDef>,
    /// The webhook's configuration, the namespaces its registration selects, and whether it
    /// reads executors' drivers (`executorPriorityFromDriver`).
    webhook: Option<(MutationConfig, Option<LabelSelector>, bool)>,
    /// The webhook checks that the queue a driver names exists (`checkQueues`).
    checks_queues: bool,
    extender: Option<ExtenderSide>,
    scheduler: SchedulerCore,
    uids: u64,
    /// Pods and nodes as a watch cache holds them, parsed once per change.
    pod_cache: BTreeMap<String, Arc<Pod>>,
    node_cache: Vec<Arc<Node>>,
    /// Pods the scheduler may have to place: not bound, not finished.
    unbound: BTreeSet<String>,
    /// Executor pod keys by `namespace/app-id` (what a driver lists by label).
    executors: BTreeMap<String, BTreeSet<String>>,
    /// Reservations as stored, as recorded.
    reservation_records: BTreeMap<String, ReservationRecord>,
    /// What changed since the last sample, and what that sample held.
    touched_pods: BTreeSet<String>,
    touched_reservations: BTreeSet<String>,
    recorded: State,
    ledger: Ledger,
}

fn api(e: impl std::fmt::Display) -> SimError {
    SimError::Client(e.to_string())
}

impl World {
    /// The cluster of `deploy`, with the extender's config overridden as a scenario does;
    /// without webhook and extender when `sparkgang` is false (kube-scheduler alone).
    pub fn new(
        deploy: &std::path::Path,
        overrides: Option<&serde_yaml::Value>,
        sparkgang: bool,
    ) -> Result<World, SimError> {
        let start = Timestamp::from_second(1_800_000_000).map_err(api)?;
        let clock = Arc::new(ManualClock::new(start));
        let crds = ServerConfig::default()
            .with_crd_dir(deploy.join("crds"))
            .map_err(SimError::ApiServer)?
            .crds;
        let mut table = ResourceTable::builtin();
        for crd in &crds {
            table.add_crd(crd).map_err(SimError::Client)?;
        }
        // Nothing watches in virtual time: no event history to keep for resuming watches.
        let store = Store::new(
            table,
            clock.clone(),
            StoreConfig {
                history: 1,
                graceful_pod_deletion: false,
            },
        );
        let def = |g: &str, v: &str, r: &str| {
            store
                .resource(g, v, r)
                .ok_or_else(|| SimError::Client(format!("no resource {g}/{v}/{r}")))
        };
        let deployment = SchedulerDeployment::load(deploy)?;
        let (webhook, extender, checks_queues) = if sparkgang {
            let admission = load_admission_config(deploy)?;
            let registration: MutatingWebhookConfiguration = load_webhook_configuration(deploy)?;
            let selector = registration
                .webhooks
                .as_ref()
                .and_then(|w| w.first())
                .and_then(|w| w.namespace_selector.clone());
            let config = extender_config(&deployment, overrides).map_err(SimError::Extender)?;
            let scheduler = config
                .scheduler_config()
                .map_err(|(k, m)| SimError::Extender(format!("{k}: {m}")))?;
            let mut side = ExtenderSide {
                gpus: scheduler.gpus.clone(),
                default_demand: scheduler.default_demand,
                state: ClusterState::new(scheduler),
                feed: Feed::default(),
                gate_timeout: config.gate_timeout,
            };
            // Empty relists: the caches are synced before anything exists.
            let ExtenderSide { state, feed, .. } = &mut side;
            feed.node(state, WatchEvent::RelistBegin);
            feed.node(state, WatchEvent::RelistDone);
            feed.pod(state, WatchEvent::RelistBegin);
            feed.pod(state, WatchEvent::RelistDone);
            feed.reservation(state, WatchEvent::RelistBegin);
            feed.reservation(state, WatchEvent::RelistDone);
            feed.budget(state, WatchEvent::RelistBegin);
            feed.budget(state, WatchEvent::RelistDone);
            feed.queue(state, WatchEvent::RelistBegin);
            feed.queue(state, WatchEvent::RelistDone);
            (
                Some((
                    MutationConfig::from(&admission),
                    selector,
                    admission.executor_priority_from_driver,
                )),
                Some(side),
                admission.check_queues,
            )
        } else {
            (None, None, false)
        };
        let scheduler_name = if sparkgang {
            deployment.scheduler_name().to_owned()
        } else {
            "default-scheduler".to_owned()
        };
        Ok(World {
            pods: def("", "v1", "pods")?,
            nodes: def("", "v1", "nodes")?,
            config_maps: def("", "v1", "configmaps")?,
            namespaces: def("", "v1", "namespaces")?,
            reservations: def("sparkgang.io", "v1", "resourcereservations")?,
            clock,
            origin: start,
            store,
            webhook,
            checks_queues,
            extender,
            scheduler: SchedulerCore::new(CoreSettings {
                scheduler_name,
                gpus: GpuResourceNames::default(),
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(10),
            }),
            uids: 0,
            pod_cache: BTreeMap::new(),
            node_cache: Vec::new(),
            driver_config_maps: BTreeMap::new(),
            preempted: BTreeMap::new(),
            pod_termination: None,
            terminating: Vec::new(),
            executors: BTreeMap::new(),
            unbound: BTreeSet::new(),
            reservation_records: BTreeMap::new(),
            touched_pods: BTreeSet::new(),
            touched_reservations: BTreeSet::new(),
            recorded: State::default(),
            ledger: Ledger::default(),
        })
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        Duration::try_from(self.clock.now().duration_since(self.origin)).unwrap_or_default()
    }

    fn timestamp(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the clock to `at` (never backwards).
    pub fn advance_to(&self, at: Duration) {
        if at > self.now() {
            self.clock.advance(at - self.now());
        }
    }

    pub fn create_namespace(
        &mut self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SimError> {
        self.store
            .create(
                &self.namespaces,
                "",
                json!({"metadata": {"name": name, "labels": labels}}),
            )
            .map_err(api)?;
        Ok(())
    }

    pub fn create_node(&mut self, node: &Node) -> Result<(), SimError> {
        let stored = self
            .store
            .create(&self.nodes, "", serde_json::to_value(node).map_err(api)?)
            .map_err(api)?;
        let node = Node::deserialize(&stored.value).map_err(api)?;
        self.ledger
            .add_node(node_allocatable(&node, &GpuResourceNames::default()).unwrap_or_default());
        self.node_cache.push(Arc::new(node.clone()));
        if let Some(ext) = self.extender.as_mut() {
            let fed = ext.feed.node(&mut ext.state, WatchEvent::Apply(node));
            let effects = fed.effects;
            self.apply_effects(effects);
        }
        Ok(())
    }

    /// What the webhook does to a pod created in `namespace`: its JSON patch applied, or the
    /// denial's message.
    fn admit(&mut self, namespace: &str, pod: Value) -> Result<Value, String> {
        let Some((config, selector, reads_drivers)) = &self.webhook else {
            return Ok(pod);
        };
        let labels: BTreeMap<String, String> = self
            .store
            .get(&self.namespaces, "", namespace)
            .and_then(|n| BTreeMap::deserialize(&n.value["metadata"]["labels"]).ok())
            .unwrap_or_default();
        let mut with_name = labels;
        with_name.insert("kubernetes.io/metadata.name".into(), namespace.into());
        if !selector_matches(selector.as_ref(), &with_name) {
            return Ok(pod);
        }
        self.uids += 1;
        let request = pod_create_review(namespace, &format!("review-{}", self.uids), &pod, false);
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let parsed = review::parse(&body).map_err(|e| e.to_string())?;
        // The webhook's one API read: an executor's driver, for its priority class.
        let driver = match parsed.driver_to_look_up().filter(|_| *reads_drivers) {
            Some((ns, name)) => match self.store.get(&self.pods, ns, name) {
                Some(d) => DriverClass::Known(
                    d.value
                        .pointer("/spec/priorityClassName")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ),
                None => DriverClass::Failed(format!("driver {ns}/{name} not found")),
            },
            None => DriverClass::Unknown,
        };
        // And the queue a driver names, to refuse one that does not exist.
        let queue = match parsed
            .queue_to_check()
            .filter(|n| self.checks_queues && !n.trim().is_empty())
        {
            Some(name) => self.queue_lookup(name),
            None => QueueLookup::Unknown,
        };
        let answer = review::answer(config, parsed, &ApiReads { driver, queue });
        let response = decode_response(&answer.body)?;
        if !response.allowed {
            return Err(response.status.map(|(_, m)| m).unwrap_or_default());
        }
        let mut pod = pod;
        if let Some(patch) = response.patch {
            let patch: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| e.to_string())?;
            json_patch::patch(&mut pod, &patch).map_err(|e| e.to_string())?;
        }
        Ok(pod)
    }

    /// Creates a pod as a client would: through the webhook, then into the store.
    ///
    /// The API server's Priority plugin runs before the webhook and again after it when the
    /// webhook changed the pod, as in kube-apiserver (`apiserver::priority`).
    pub fn create_pod(&mut self, namespace: &str, pod: Value) -> Result<Arc<Stored>, String> {
        let classes = crate::apiserver::ops::priority_classes(&self.store);
        let mut pod = pod;
        priority::admit_pod_create(&mut pod, &classes).map_err(|e| e.message)?;
        let first_pass = pod.clone();
        let mut pod = self.admit(namespace, pod)?;
        if pod != first_pass {
            priority::admit_pod_create(&mut pod, &classes).map_err(|e| e.message)?;
        }
        let stored = self
            .store
            .create(&self.pods, namespace, pod)
            .map_err(|e| e.to_string())?;
        // Its owner may be gone already: then the garbage collector took it at once.
        if self
            .store
            .get(&self.pods, namespace, stored.name())
            .is_some()
        {
            self.pod_changed(&stored);
        }
        Ok(stored)
    }

    /// spark-submit: the driver pod, then its ConfigMap owned by it.
    pub fn submit(&mut self, s: &Submission, seed: u64) -> Result<(), String> {
        let objects = submitted_objects(s, seed).map_err(|e| e.to_string())?;
        let driver = serde_json::to_value(&objects.driver).map_err(|e| e.to_string())?;
        let created = self.create_pod(&s.namespace, driver)?;
        let mut map = serde_json::to_value(&objects.config_map).map_err(|e| e.to_string())?;
        map["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Pod",
            "name": created.name(), "uid": created.uid(), "controller": true}]);
        let map = self
            .store
            .create(&self.config_maps, &s.namespace, map)
            .map_err(|e| e.to_string())?;
        self.driver_config_maps.insert(
            format!("{}/{}", s.namespace, created.name()),
            map.name().to_owned(),
        );
        Ok(())
    }

    /// Deletes a finished application's driver and the ConfigMap it owns, as a cleanup
    /// controller would (spark-operator's `timeToLiveSeconds`): they hold nothing any more, and
    /// a replay of many applications would otherwise keep every one of them.
    pub fn remove_application(&mut self, namespace: &str, driver: &str) {
        self.delete_pod(namespace, driver);
        if let Some(map) = self
            .driver_config_maps
            .remove(&format!("{namespace}/{driver}"))
        {
            let _ = self.store.delete(
                &self.config_maps,
                namespace,
                &map,
                &DeleteOptions::default(),
            );
        }
    }

    /// A pod changed: the caches and the extender see it (as their watches would deliver it).
    fn pod_changed(&mut self, stored: &Stored) {
        let Ok(pod) = Pod::deserialize(&stored.value) else {
            return;
        };
        let key = format!("{}/{}", stored.namespace(), stored.name());
        self.touched_pods.insert(key.clone());
        if let Some(app) = executor_of(&pod) {
            self.executors.entry(app).or_default().insert(key.clone());
        }
        if sparkgang_common::pods::node_name(&pod).is_none()
            && !sparkgang_common::pods::is_finished(&pod)
        {
            self.unbound.insert(key.clone());
        } else {
            self.unbound.remove(&key);
        }
        self.scheduler.observe(&pod);
        let old = self.pod_cache.insert(key.clone(), Arc::new(pod.clone()));
        self.ledger.update(&key, old.as_deref(), Some(&pod));
        let Some(ext) = self.extender.as_mut() else {
            return;
        };
        let fed = ext.feed.pod(&mut ext.state, WatchEvent::Apply(pod));
        self.apply_effects(fed.effects);
    }

    /// Removes a pod at once (a delete with grace 0).
    pub(super) fn remove_pod(&mut self, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        let now = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        if self
            .store
            .delete(&self.pods, namespace, name, &now)
            .is_err()
        {
            return;
        }
        self.touched_pods.insert(key.clone());
        self.unbound.remove(&key);
        let Some(pod) = self.pod_cache.remove(&key) else {
            return;
        };
        if let Some(uid) = &pod.metadata.uid {
            self.scheduler.forget(uid);
        }
        self.ledger.update(&key, Some(&pod), None);
        if let Some(app) = executor_of(&pod)
            && let Some(keys) = self.executors.get_mut(&app)
        {
            keys.remove(&key);
            if keys.is_empty() {
                self.executors.remove(&app);
            }
        }
        if let Some(ext) = self.extender.as_mut() {
            let fed = ext
                .feed
                .pod(&mut ext.state, WatchEvent::Delete(Pod::clone(&pod)));
            self.apply_effects(fed.effects);
        }
    }

    /// The kubelet moves a pod to `phase` (the status real time's kubelet writes).
    pub fn set_phase(&mut self, namespace: &str, name: &str, phase: Phase) {
        let Some(pod) = self.pod_cache.get(&format!("{namespace}/{name}")).cloned() else {
            return;
        };
        let patch = status_patch(&pod, phase, self.timestamp());
        match self.store.modify(
            &self.pods,
            Some(Subresource::Status),
            namespace,
            name,
            |v| json_patch::merge(v, &patch),
        ) {
            Ok(updated) => self.pod_changed(&updated),
            Err(e) => tracing::warn!(error = %e, pod = name, "cannot set the pod's phase"),
        }
    }

    /// The room pods hold, and its changes.
    pub fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// A pod as the caches hold it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pod_cache.get(&format!("{namespace}/{name}")).cloned()
    }

    /// The executor pods of `app_id` in `namespace` (what the driver lists by label).
    pub fn executors_of(&self, namespace: &str, app_id: &str) -> Vec<Arc<Pod>> {
        self.executors
            .get(&format!("{namespace}/{app_id}"))
            .into_iter()
            .flatten()
            .filter_map(|k| self.pod_cache.get(k).cloned())
            .collect()
    }

    /// The `spark.properties` of a ConfigMap, if it exists.
    pub fn spark_properties(&self, namespace: &str, config_map: &str) -> Option<String> {
        self.store
            .get(&self.config_maps, namespace, config_map)
            .and_then(|cm| {
                cm.value["data"]["spark.properties"]
                    .as_str()
                    .map(str::to_owned)
            })
    }

    /// What changed since the last call, as a history sample at `at` seconds; `None` when
    /// nothing did.
    pub fn sample(&mut self, at: f64) -> Option<Change> {
        let gpus = GpuResourceNames::default();
        let mut next = State {
            at,
            pods: BTreeMap::new(),
            reservations: BTreeMap::new(),
            held: self
                .extender
                .as_ref()
                .map(|e| held_by_node(&e.state))
                .unwrap_or_default(),
        };
        let mut change = Change {
            at,
            ..Change::default()
        };
        for key in std::mem::take(&mut self.touched_pods) {
            match self.pod_cache.get(&key) {
                Some(p) => {
                    let requests = p
                        .spec
                        .as_ref()
                        .and_then(|sp| sparkgang_common::resources::pod_requests(sp, &gpus).ok())
                        .unwrap_or_default();
                    let record = PodRecord::of(p, requests);
                    if self.recorded.pods.get(&key) != Some(&record) {
                        change.pods.push(record);
                    }
                }
                None if self.recorded.pods.contains_key(&key) => change.pods_gone.push(key),
                None => {}
            }
        }
        for key in std::mem::take(&mut self.touched_reservations) {
            match self.reservation_records.get(&key) {
                Some(r) if self.recorded.reservations.get(&key) != Some(r) => {
                    change.reservations.push(r.clone())
                }
                Some(_) => {}
                None if self.recorded.reservations.contains_key(&key) => {
                    change.reservations_gone.push(key)
                }
                None => {}
            }
        }
        change.held = std::mem::take(&mut next.held)
            .into_iter()
            .filter(|(n, r)| self.recorded.held.get(n) != Some(r))
            .collect();
        let empty = change.pods.is_empty()
            && change.pods_gone.is_empty()
            && change.reservations.is_empty()
            && change.reservations_gone.is_empty()
            && change.held.is_empty();
        self.recorded.apply(&change);
        (!empty).then_some(change)
    }

    /// The extender's effects, carried out at once: reservations written (and their writes
    /// fed back, as the watch would); `Demand` objects and capacity reports are not simulated.
    fn apply_effects(&mut self, effects: Vec<Effect>) {
        let mut evictions = Vec::new();
        for effect in effects {
            match effect {
                Effect::SyncReservation(app) => self.sync_reservation(&app),
                Effect::Evict { pod, message, .. } => evictions.push((pod, message)),
                _ => {}
            }
        }
        // Executors before drivers: deleting a driver first would take its executors with it
        // through garbage collection, behind the caches' back.
        evictions.sort_by_key(|(pod, _)| {
            self.pod_cache
                .get(&format!("{}/{}", pod.namespace, pod.name))
                .is_some_and(|p| pods::spark_role(p) == Some(pods::SparkRole::Driver))
        });
        for (pod, message) in evictions {
            self.evict(&pod.namespace, &pod.name, &message);
        }
    }

    fn sync_reservation(&mut self, app: &AppKey) {
        let Some(ext) = self.extender.as_mut() else {
            return;
        };
        let (object, desired) = ext.state.reservation_object(app);
        let name = app.reservation_name();
        let existing = self.store.get(&self.reservations, &app.namespace, &name);
        let written = match (object, existing) {
            (None, None) => None,
            (None, Some(_)) => {
                let deleted = self.store.delete(
                    &self.reservations,
                    &app.namespace,
                    &name,
                    &DeleteOptions::default(),
                );
                let key = format!("{}/{}", app.namespace, app.app_id);
                self.reservation_records.remove(&key);
                self.touched_reservations.insert(key);
                ext.state.reservation_written(app, desired, None);
                // The watch delivers the deletion.
                if let Some(rr) = deleted
                    .ok()
                    .and_then(|s| ResourceReservation::deserialize(&s.value).ok())
                {
                    let fed = ext.feed.reservation(&mut ext.state, WatchEvent::Delete(rr));
                    self.apply_effects(fed.effects);
                }
                return;
            }
            (Some(o), Some(_)) => {
                let value = serde_json::to_value(&o).unwrap_or_default();
                self.store
                    .modify(&self.reservations, None, &app.namespace, &name, |v| {
                        v["spec"] = value["spec"].clone();
                        v["status"] = value["status"].clone();
                    })
                    .ok()
            }
            (Some(o), None) => {
                let mut value = serde_json::to_value(&o).unwrap_or_default();
                if let Some(m) = value["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                self.store
                    .create(&self.reservations, &app.namespace, value)
                    .ok()
            }
        };
        let rv = written.as_ref().map(|s| s.resource_version().to_string());
        ext.state.reservation_written(app, desired, rv);
        if let Some(rr) = written.and_then(|s| ResourceReservation::deserialize(&s.value).ok()) {
            let record = ReservationRecord::of(&rr);
            self.touched_reservations.insert(record.key());
            self.reservation_records.insert(record.key(), record);
            let fed = ext.feed.reservation(&mut ext.state, WatchEvent::Apply(rr));
            let more = fed.effects;
            self.apply_effects(more);
        }
    }

    /// The gate controller for one driver: released now, or when to look again.
    pub fn gate(&mut self, namespace: &str, name: &str) -> Option<Duration> {
        let ext = self.extender.as_ref()?;
        let stored = self.store.get(&self.pods, namespace, name)?;
        let pod = Pod::deserialize(&stored.value).ok()?;
        let properties =
            gate::conf_map_of(&pod).and_then(|map| self.spark_properties(namespace, &map));
        let rules = GateRules {
            timeout: ext.gate_timeout,
            demand: DemandRules {
                gpus: &ext.gpus,
                default: ext.default_demand,
            },
        };
        match gate::plan_ungate(&pod, properties.as_deref(), self.timestamp(), &rules) {
            GatePlan::Nothing => None,
            GatePlan::LookAgainIn(after) => Some(after),
            GatePlan::Ungate(plan) => {
                let patch: Result<json_patch::Patch, _> =
                    serde_json::from_value(Value::Array(plan.patch));
                if let Ok(patch) = patch
                    && let Ok(updated) = self.store.modify(&self.pods, None, namespace, name, |v| {
                        let _ = json_patch::patch(v, &patch);
                    })
                {
                    self.pod_changed(&updated);
                }
                None
            }
        }
    }

    /// One kube-scheduler round: every pod due is filtered, asked of the extender in process,
    /// bound and started (the kubelet). Returns the attempts, for reports.
    pub fn schedule_round(&mut self) -> Vec<(String, Attempt)> {
        // The snapshot kept as pods change, as kube-scheduler's cache keeps it.
        let waiting: Vec<Arc<Pod>> = self
            .unbound
            .iter()
            .filter_map(|k| self.pod_cache.get(k).cloned())
            .collect();
        let now = self.now();
        let mut round = self.scheduler.begin_with(&self.node_cache, &waiting, now);
        let queue = std::mem::take(&mut round.queue);
        let mut out = Vec::new();
        for pod in queue {
            let (requests, attempt) = match self.scheduler.filter(&round, &pod) {
                Err(message) => (Default::default(), Attempt::Unschedulable(message)),
                Ok(filtered) => {
                    let requests = filtered.requests;
                    let attempt = match self.extender.as_mut().filter(|_| !filtered.is_empty()) {
                        None => self.scheduler.choose(&round, filtered, None, true),
                        Some(ext) => {
                            let names = filtered.names(&round);
                            let decision = ext.state.filter(&pod, &names, self.clock.now());
                            let effects = decision.effects.clone();
                            self.apply_effects(effects);
                            match decision.node {
                                Some(node) => {
                                    let answer = ExtenderFilterResult::nodes(vec![node]);
                                    self.scheduler
                                        .choose(&round, filtered, Some(Ok(answer)), true)
                                }
                                None => {
                                    Err(self.scheduler.refuse(&round, filtered, &decision.message))
                                }
                            }
                        }
                    };
                    let attempt = match attempt {
                        Ok(node) => self.bind(&pod, node),
                        Err(message) => Attempt::Unschedulable(message),
                    };
                    (requests, attempt)
                }
            };
            self.scheduler.record(&pod, requests, &attempt, now);
            out.push((pod_key(&pod), attempt));
        }
        out
    }

    /// Binds, and the kubelet starts the pod at once.
    fn bind(&mut self, pod: &Pod, node: String) -> Attempt {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Err(e) = self
            .store
            .bind(&namespace, &name, &node, None, &WriteOptions::default())
        {
            return Attempt::Unschedulable(format!("binding rejected: {e}"));
        }
        if let Some(bound) = self.store.get(&self.pods, &namespace, &name) {
            self.pod_changed(&bound);
        }
        self.set_phase(&namespace, &name, Phase::Running);
        Attempt::Bound(node)
    }

    /// Whether a scheduling round now would try a pod: one is unbound and not backing off.
    pub fn has_pods_to_schedule(&self) -> bool {
        let now = self.now();
        self.unbound.iter().any(|k| self.scheduler.is_due(k, now))
    }

    /// When the next scheduling attempt is due after a backoff, if one waits.
    pub fn next_backoff_end(&self) -> Option<Duration> {
        self.scheduler.next_backoff_end(self.now())
    }

    /// The reservation of `app_id` in `namespace`, as stored.
    pub fn reservation(&self, namespace: &str, app_id: &str) -> Option<ResourceReservation> {
        let app = AppKey {
            namespace: namespace.to_owned(),
            app_id: app_id.to_owned(),
        };
        self.store
            .get(&self.reservations, namespace, &app.reservation_name())
            .and_then(|s| ResourceReservation::deserialize(&s.value).ok())
    }
}

/// `namespace/app-id` of an executor pod (by its labels `spark-role` and `spark-app-selector`).
fn executor_of(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get("spark-role").map(String::as_str) != Some("executor") {
        return None;
    }
    let app = labels.get("spark-app-selector")?;
    Some(format!(
        "{}/{app}",
        pod.metadata.namespace.as_deref().unwrap_or("")
    ))
}
