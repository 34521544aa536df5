//! Samples of the cluster for a scenario's history, read from watch-fed stores: taking one
//! costs no API request, so recording a run does not load the cluster it records.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use sparkgang_common::GpuResourceNames;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::resources::{Resources, pod_requests};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::harness::SimCluster;
use crate::history::{PodRecord, Preempted, ReservationRecord, State, held_by_node};

/// A pod first seen marked for preemption: the condition's message, when, and its requests.
type Marked = (String, Instant, Resources);

/// Pods and reservations as the watches deliver them, and the extender's own usage per node.
pub struct Sampler {
    pods: Store<Pod>,
    /// Pods seen with `DisruptionTarget` for preemption (`namespace/name`), and its message.
    preempted: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Marked>>>,
    reservations: Option<Store<ResourceReservation>>,
    extender: Option<std::sync::Arc<sparkgang_extender::Extender>>,
    /// Each pod's requests by uid (they never change).
    requests: HashMap<String, Resources>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sampler {
    /// Starts the watches and waits for their first listing.
    pub async fn start(cluster: &SimCluster) -> Sampler {
        let mut tasks = Vec::new();
        let (pods, writer) = reflector::store::<Pod>();
        let api: Api<Pod> = Api::all(cluster.client.clone());
        let preempted = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let seen = preempted.clone();
        // Every event, not only the latest state: an evicted pod carries its condition for
        // a moment before it is deleted, often between two samples.
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .default_backoff()
                .for_each(move |event| {
                    if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = &event
                        && let Some(message) = preempted_by_scheduler(p)
                        && let Ok(mut seen) = seen.lock()
                    {
                        seen.entry(format!(
                            "{}/{}",
                            p.metadata.namespace.as_deref().unwrap_or(""),
                            p.metadata.name.as_deref().unwrap_or("")
                        ))
                        .or_insert_with(|| {
                            let requests = p
                                .spec
                                .as_ref()
                                .and_then(|sp| pod_requests(sp, &GpuResourceNames::default()).ok())
                                .unwrap_or_default();
                            (message, Instant::now(), requests)
                        });
                    }
                    futures::future::ready(())
                });
        tasks.push(tokio::spawn(stream));
        let reservations = if cluster.extender.is_some() {
            let (store, writer) = reflector::store::<ResourceReservation>();
            let api: Api<ResourceReservation> = Api::all(cluster.client.clone());
            let stream =
                reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                    .default_backoff()
                    .for_each(|_| futures::future::ready(()));
            tasks.push(tokio::spawn(stream));
            let _ = store.wait_until_ready().await;
            Some(store)
        } else {
            None
        };
        let _ = pods.wait_until_ready().await;
        Sampler {
            pods,
            preempted,
            reservations,
            extender: cluster.extender.as_ref().map(|e| e.extender.clone()),
            requests: HashMap::new(),
            tasks,
        }
    }

    /// The pods evicted for preemption so far, sorted, with when they were first seen marked
    /// (seconds since `start`).
    pub fn preempted(&self, start: Instant) -> Vec<Preempted> {
        self.preempted
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(pod, (message, seen, requests))| {
                        let at = seen.saturating_duration_since(start).as_secs_f64();
                        Preempted::from_message(pod.clone(), message, at, *requests)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cluster now, at seconds since `start`.
    pub fn sample(&mut self, start: Instant) -> State {
        let gpus = GpuResourceNames::default();
        let mut state = State {
            at: start.elapsed().as_secs_f64(),
            ..State::default()
        };
        let mut present = HashSet::new();
        for p in self.pods.state() {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let requests = *self.requests.entry(uid.clone()).or_insert_with(|| {
                p.spec
                    .as_ref()
                    .and_then(|sp| pod_requests(sp, &gpus).ok())
                    .unwrap_or_default()
            });
            present.insert(uid);
            let record = PodRecord::of(&p, requests);
            state.pods.insert(record.key(), record);
        }
        self.requests.retain(|uid, _| present.contains(uid));
        for rr in self.reservations.iter().flat_map(|s| s.state()) {
            let record = ReservationRecord::of(&rr);
            state.reservations.insert(record.key(), record);
        }
        state.held = self
            .extender
            .as_ref()
            .and_then(|e| e.with_state(|st| held_by_node(st)))
            .unwrap_or_default();
        state
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The message of a `DisruptionTarget=True` condition with reason `PreemptionByScheduler`.
fn preempted_by_scheduler(p: &Pod) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())?
        .iter()
        .find(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("PreemptionByScheduler")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}
