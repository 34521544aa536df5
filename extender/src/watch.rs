//! Feeds the cluster state from watches on nodes, pods and `ResourceReservation`s: kube's
//! watcher events, translated for [`Feed`] (which holds the relist rules), applied under the
//! state's lock; drivers waiting at the gate are handed to the gate controller.

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::{Fed, Feed, PodKey, WatchEvent};
use sparkgang_common::gate;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::Extender;

/// One event of one of the three watches (boxed: the objects are large and of unequal size).
enum Watched {
    Node(Box<Event<Node>>),
    Pod(Box<Event<Pod>>),
    Reservation(Box<Event<ResourceReservation>>),
}

fn watch<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, watcher::Config::default()).default_backoff()
}

/// kube-runtime's event as the state's feed takes it.
fn translate<K>(event: Event<K>) -> WatchEvent<K> {
    match event {
        Event::Apply(o) => WatchEvent::Apply(o),
        Event::Delete(o) => WatchEvent::Delete(o),
        Event::Init => WatchEvent::RelistBegin,
        Event::InitApply(o) => WatchEvent::RelistApply(o),
        Event::InitDone => WatchEvent::RelistDone,
    }
}

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
    let mut feed = Feed::default();
    while let Some(event) = events.next().await {
        match event {
            Ok(e) => handle(&ext, &gated, &mut feed, e),
            Err(e) => warn!(error = %e, "watch error; retrying with backoff"),
        }
    }
}

fn handle(ext: &Extender, gated: &mpsc::UnboundedSender<PodKey>, feed: &mut Feed, event: Watched) {
    let Some(fed) = ext.with_state(|state| {
        let fed = match event {
            Watched::Node(e) => feed.node(state, translate(*e)),
            Watched::Pod(e) => {
                let waiting = match e.as_ref() {
                    Event::Apply(p) | Event::InitApply(p) if gate::is_gated(p) => PodKey::of(p),
                    _ => None,
                };
                let fed = feed.pod(state, translate(*e));
                if let Some(key) = waiting.filter(|k| state.is_gated_driver(k)) {
                    let _ = gated.send(key);
                }
                fed
            }
            Watched::Reservation(e) => feed.reservation(state, translate(*e)),
        };
        if fed.synced_now {
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
        }
        fed
    }) else {
        return;
    };
    let Fed {
        effects,
        problems,
        synced_now,
    } = fed;
    for problem in problems {
        warn!(problem, "ignoring an unreadable object");
    }
    if synced_now {
        ext.set_synced();
    }
    ext.submit(effects);
}
