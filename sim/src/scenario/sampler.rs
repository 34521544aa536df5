//! Samples of the cluster for a scenario's history, read from watch-fed stores: taking one
//! costs no API request, so recording a run does not load the cluster it records.

use std::collections::{HashMap, HashSet};

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
use crate::history::{PodRecord, ReservationRecord, State, held_by_node};

/// Pods and reservations as the watches deliver them, and the extender's own usage per node.
pub struct Sampler {
    pods: Store<Pod>,
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
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .default_backoff()
                .for_each(|_| futures::future::ready(()));
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
            reservations,
            extender: cluster.extender.as_ref().map(|e| e.extender.clone()),
            requests: HashMap::new(),
            tasks,
        }
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
