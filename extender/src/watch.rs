//! Feeds the cluster state from watches on nodes, pods and `ResourceReservation`s.
//!
//! A (re)list (`Init` … `InitDone`) is diffed against memory, so objects deleted while the
//! watch was down are deleted from the state too (palantir lost such tombstones, its quirk 21).

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::{AppKey, PodKey};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::Extender;

enum Watched {
    Node(Box<Event<Node>>),
    Pod(Box<Event<Pod>>),
    Reservation(Box<Event<ResourceReservation>>),
}

/// What one relist has seen so far, per kind, and what memory held when it began: only
/// those may be deleted at its end (objects added meanwhile, for example a driver a filter
/// call brought in, are not in the relist's snapshot but are not gone).
#[derive(Default)]
struct Relists {
    nodes: Option<(HashSet<String>, HashSet<String>)>,
    pods: Option<(HashSet<PodKey>, HashSet<PodKey>)>,
    reservations: Option<(HashSet<AppKey>, HashSet<AppKey>)>,
    synced: [bool; 3],
}

fn watch<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, watcher::Config::default()).default_backoff()
}

use watcher::watcher;

/// Runs until the watches end (never, unless the client is dropped). `gated` receives drivers
/// that wait for their demand.
pub async fn run(client: Client, ext: Arc<Extender>, gated: mpsc::UnboundedSender<PodKey>) {
    let nodes = watch(Api::<Node>::all(client.clone()))
        .map_ok(|e| Watched::Node(Box::new(e)))
        .boxed();
    let pods = watch(Api::<Pod>::all(client.clone()))
        .map_ok(|e| Watched::Pod(Box::new(e)))
        .boxed();
    let reservations = watch(Api::<ResourceReservation>::all(client))
        .map_ok(|e| Watched::Reservation(Box::new(e)))
        .boxed();
    let mut events = stream::select_all([nodes, pods, reservations]);
    let mut relists = Relists::default();
    while let Some(event) = events.next().await {
        match event {
            Ok(e) => handle(&ext, &gated, &mut relists, e),
            Err(e) => warn!(error = %e, "watch error; retrying with backoff"),
        }
    }
}

fn handle(
    ext: &Extender,
    gated: &mpsc::UnboundedSender<PodKey>,
    relists: &mut Relists,
    event: Watched,
) {
    let mut just_synced = false;
    let effects = ext
        .with_state(|state| {
            let mut effects = Vec::new();
            match event {
                Watched::Node(e) => match *e {
                    Event::Apply(n) => state.apply_node(&n),
                    Event::Delete(n) => state.delete_node(n.metadata.name.as_deref().unwrap_or("")),
                    Event::Init => {
                        let before = state.node_names().into_iter().collect();
                        relists.nodes = Some((before, HashSet::new()));
                    }
                    Event::InitApply(n) => {
                        if let (Some((_, seen)), Some(name)) =
                            (relists.nodes.as_mut(), &n.metadata.name)
                        {
                            seen.insert(name.clone());
                        }
                        state.apply_node(&n);
                    }
                    Event::InitDone => {
                        let (before, seen) = relists.nodes.take().unwrap_or_default();
                        for name in before.difference(&seen) {
                            state.delete_node(name);
                        }
                        just_synced |= !std::mem::replace(&mut relists.synced[0], true);
                    }
                },
                Watched::Pod(e) => match *e {
                    Event::Apply(p) | Event::InitApply(p) => {
                        if let (Some((_, seen)), Some(key)) =
                            (relists.pods.as_mut(), PodKey::of(&p))
                        {
                            seen.insert(key);
                        }
                        effects.extend(state.apply_pod(&p));
                        if let Some(key) = PodKey::of(&p)
                            && state.is_gated_driver(&key)
                            && has_our_gate(&p)
                        {
                            let _ = gated.send(key);
                        }
                    }
                    Event::Delete(p) => {
                        if let Some(key) = PodKey::of(&p) {
                            effects.extend(state.delete_pod(&key));
                        }
                    }
                    Event::Init => {
                        let before = state.pod_keys().into_iter().collect();
                        relists.pods = Some((before, HashSet::new()));
                    }
                    Event::InitDone => {
                        let (before, seen) = relists.pods.take().unwrap_or_default();
                        for key in before.difference(&seen) {
                            effects.extend(state.delete_pod(key));
                        }
                        just_synced |= !std::mem::replace(&mut relists.synced[1], true);
                    }
                },
                Watched::Reservation(e) => match *e {
                    Event::Apply(r) | Event::InitApply(r) => {
                        if let Some((_, seen)) = relists.reservations.as_mut() {
                            seen.insert(AppKey::new(
                                r.metadata.namespace.as_deref().unwrap_or(""),
                                &r.spec.app_id,
                            ));
                        }
                        match state.apply_reservation(&r) {
                            Ok(e) => effects.extend(e),
                            Err(e) => warn!(error = %e, "ignoring an unreadable reservation"),
                        }
                    }
                    Event::Delete(r) => state.delete_reservation(
                        r.metadata.namespace.as_deref().unwrap_or(""),
                        &r.spec.app_id,
                    ),
                    Event::Init => {
                        let before = state.reservation_keys().into_iter().collect();
                        relists.reservations = Some((before, HashSet::new()));
                    }
                    Event::InitDone => {
                        let (before, seen) = relists.reservations.take().unwrap_or_default();
                        for app in before.difference(&seen) {
                            state.delete_reservation(&app.namespace, &app.app_id);
                        }
                        just_synced |= !std::mem::replace(&mut relists.synced[2], true);
                    }
                },
            }
            if just_synced && relists.synced.iter().all(|s| *s) {
                effects.extend(state.reconcile());
                // Build the FIFO plans before turning ready, so no filter call pays for them.
                let warm = std::time::Instant::now();
                state.prepare(ext.clock.now());
                info!(
                    seconds = warm.elapsed().as_secs_f64(),
                    "decision state prepared"
                );
                info!(
                    nodes = state.node_names().len(),
                    pods = state.pod_count(),
                    reservations = state.reservation_keys().len(),
                    "caches synced; reconciled; serving filter calls"
                );
                ext.set_synced();
            }
            effects
        })
        .unwrap_or_default();
    ext.submit(effects);
}

fn has_our_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| {
            g.iter()
                .any(|g| g.name == sparkgang_common::api::SPARK_CONF_GATE)
        })
}
