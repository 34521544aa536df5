//! Feeds the cluster state from list+watch of nodes, pods, `ResourceReservation`s,
//! `PodDisruptionBudget`s (which preemption respects) and `Queue`s, and
//! keeps [`Freshness`] honest: every list and watch start has a timeout, the server ends each
//! watch after `watchTimeout` (the extender re-watches from where it was), and a watch that
//! stays silent past `watchTimeout + requestTimeout` is dead: its cache is stale until it has
//! been listed again. Events are translated for [`Feed`] (which holds the relist rules) and
//! applied under the state's lock; drivers waiting at the gate go to the gate controller.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, ListParams, WatchEvent as ApiEvent, WatchParams};
use kube::core::Resource;
use serde::de::DeserializeOwned;
use sparkgang_common::api::queue::Queue;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::{Fed, Feed, PodKey, WatchEvent};
use sparkgang_common::gate;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::Extender;
use crate::freshness::Watched;

/// Timeouts of the list+watch loops.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Longest a list page or a watch start may take.
    pub request_timeout: Duration,
    /// The server ends each watch after this long (`timeoutSeconds`).
    pub watch_timeout: Duration,
}

impl WatchSettings {
    /// How long a watch may go without a byte before it is declared dead.
    pub fn silence_limit(&self) -> Duration {
        self.watch_timeout + self.request_timeout
    }
}

/// Objects per list page.
const PAGE: u32 = 500;

/// One event of one of the five watches (boxed: the objects are large and of unequal size).
enum Item {
    Node(WatchEvent<Box<Node>>),
    Pod(WatchEvent<Box<Pod>>),
    Reservation(WatchEvent<Box<ResourceReservation>>),
    Budget(WatchEvent<Box<PodDisruptionBudget>>),
    Queue(WatchEvent<Box<Queue>>),
}

/// Runs until the task is aborted (at the end of a leadership term). `gated` receives drivers
/// that wait for their demand.
pub async fn run(
    client: Client,
    ext: Arc<Extender>,
    gated: mpsc::UnboundedSender<PodKey>,
    settings: WatchSettings,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut followers = tokio::task::JoinSet::new();
    followers.spawn(follow(
        Api::<Node>::all(client.clone()),
        Watched::Nodes,
        Item::Node,
        ext.clone(),
        tx.clone(),
        settings,
    ));
    followers.spawn(follow(
        Api::<Pod>::all(client.clone()),
        Watched::Pods,
        Item::Pod,
        ext.clone(),
        tx.clone(),
        settings,
    ));
    followers.spawn(follow(
        Api::<ResourceReservation>::all(client.clone()),
        Watched::Reservations,
        Item::Reservation,
        ext.clone(),
        tx.clone(),
        settings,
    ));
    followers.spawn(follow(
        Api::<PodDisruptionBudget>::all(client.clone()),
        Watched::Budgets,
        Item::Budget,
        ext.clone(),
        tx.clone(),
        settings,
    ));
    followers.spawn(follow(
        Api::<Queue>::all(client),
        Watched::Queues,
        Item::Queue,
        ext.clone(),
        tx,
        settings,
    ));
    let mut feed = Feed::default();
    // The followers hold the senders and loop forever; dropping `followers` (abort) ends them.
    while let Some(item) = rx.recv().await {
        handle(&ext, &gated, &mut feed, item);
    }
}

/// Why one list+watch round ended.
enum Ended {
    /// The server closed the watch (its timeout, or a dropped connection): re-watch from here.
    Closed,
    /// The resourceVersion is gone, or the watch fell silent: list again.
    Relist(String),
    /// A request failed: back off, then re-watch (or list, if the version is gone by then).
    Failed(String),
}

/// Lists and watches one resource forever, sending its events on `tx` and its health to
/// the extender's freshness.
async fn follow<K>(
    api: Api<K>,
    watched: Watched,
    wrap: fn(WatchEvent<Box<K>>) -> Item,
    ext: Arc<Extender>,
    tx: mpsc::UnboundedSender<Item>,
    settings: WatchSettings,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut version: Option<String> = None;
    let mut backoff = Backoff::default();
    loop {
        let ended = match version.clone() {
            None => match list(&api, watched, wrap, &tx, settings).await {
                Ok(rv) => {
                    version = Some(rv);
                    ext.watch_delivering(watched);
                    backoff.reset();
                    continue;
                }
                Err(why) => Ended::Failed(why),
            },
            Some(rv) => watch(&api, watched, wrap, &ext, &tx, settings, &rv, &mut version).await,
        };
        match ended {
            Ended::Closed => {
                debug!(resource = %watched, "watch ended; watching again");
            }
            Ended::Relist(why) => {
                warn!(resource = %watched, why, "listing again");
                ext.watch_failed(watched, why);
                version = None;
            }
            Ended::Failed(why) => {
                let wait = backoff.next();
                warn!(resource = %watched, why, retry_in = ?wait, "list or watch failed");
                ext.watch_failed(watched, why);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A full list, page by page, sent as one relist; returns the list's resourceVersion.
async fn list<K>(
    api: &Api<K>,
    watched: Watched,
    wrap: fn(WatchEvent<Box<K>>) -> Item,
    tx: &mpsc::UnboundedSender<Item>,
    settings: WatchSettings,
) -> Result<String, String>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    let version = loop {
        let page = match tokio::time::timeout(settings.request_timeout, api.list(&params)).await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => return Err(format!("list failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "list did not answer within {:?}",
                    settings.request_timeout
                ));
            }
        };
        items.extend(page.items.into_iter().map(Box::new));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => {
                break page
                    .metadata
                    .resource_version
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| "the list has no resourceVersion".to_owned())?;
            }
        }
    };
    debug!(resource = %watched, objects = items.len(), "listed");
    let _ = tx.send(wrap(WatchEvent::RelistBegin));
    for o in items {
        let _ = tx.send(wrap(WatchEvent::RelistApply(o)));
    }
    let _ = tx.send(wrap(WatchEvent::RelistDone));
    Ok(version)
}

/// One watch from `from`, until the server ends it or it fails; keeps `version` current.
#[allow(clippy::too_many_arguments)]
async fn watch<K>(
    api: &Api<K>,
    watched: Watched,
    wrap: fn(WatchEvent<Box<K>>) -> Item,
    ext: &Extender,
    tx: &mpsc::UnboundedSender<Item>,
    settings: WatchSettings,
    from: &str,
    version: &mut Option<String>,
) -> Ended
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let seconds = u32::try_from(settings.watch_timeout.as_secs())
        .unwrap_or(u32::MAX)
        .max(1);
    let params = WatchParams::default().timeout(seconds);
    let stream =
        match tokio::time::timeout(settings.request_timeout, api.watch(&params, from)).await {
            Ok(Ok(s)) => s,
            Ok(Err(kube::Error::Api(s))) if s.code == 410 => {
                return Ended::Relist(format!("resourceVersion {from} is gone"));
            }
            Ok(Err(e)) => return Ended::Failed(format!("watch failed to start: {e}")),
            Err(_) => {
                return Ended::Failed(format!(
                    "watch did not start within {:?}",
                    settings.request_timeout
                ));
            }
        };
    ext.watch_delivering(watched);
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = match tokio::time::timeout(settings.silence_limit(), stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Ended::Relist(format!(
                    "watch silent for {:?} although the server should end it after {:?}",
                    settings.silence_limit(),
                    settings.watch_timeout
                ));
            }
        };
        let event = match next {
            None => return Ended::Closed,
            Some(Ok(e)) => e,
            Some(Err(e)) => return Ended::Failed(format!("watch failed: {e}")),
        };
        let (object, deleted) = match event {
            ApiEvent::Added(o) | ApiEvent::Modified(o) => (o, false),
            ApiEvent::Deleted(o) => (o, true),
            ApiEvent::Bookmark(b) => {
                *version = Some(b.metadata.resource_version);
                continue;
            }
            ApiEvent::Error(s) if s.code == 410 => {
                return Ended::Relist(format!("resourceVersion gone: {}", s.message));
            }
            ApiEvent::Error(s) => {
                return Ended::Failed(format!("watch error {}: {}", s.code, s.message));
            }
        };
        if let Some(rv) = object.meta().resource_version.clone() {
            *version = Some(rv);
        }
        let object = Box::new(object);
        let _ = tx.send(wrap(if deleted {
            WatchEvent::Delete(object)
        } else {
            WatchEvent::Apply(object)
        }));
    }
}

/// Exponential backoff between failed lists and watches: 200 ms doubling to 10 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(200u64 << self.failures.min(6));
        self.failures += 1;
        wait.min(Duration::from_secs(10))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

fn unbox<K>(e: WatchEvent<Box<K>>) -> WatchEvent<K> {
    match e {
        WatchEvent::Apply(o) => WatchEvent::Apply(*o),
        WatchEvent::Delete(o) => WatchEvent::Delete(*o),
        WatchEvent::RelistBegin => WatchEvent::RelistBegin,
        WatchEvent::RelistApply(o) => WatchEvent::RelistApply(*o),
        WatchEvent::RelistDone => WatchEvent::RelistDone,
    }
}

fn handle(ext: &Extender, gated: &mpsc::UnboundedSender<PodKey>, feed: &mut Feed, item: Item) {
    let Some(fed) = ext.with_state(|state| {
        let fed = match item {
            Item::Node(e) => feed.node(state, unbox(e)),
            Item::Pod(e) => {
                let waiting = match &e {
                    WatchEvent::Apply(p) | WatchEvent::RelistApply(p) if gate::is_gated(p) => {
                        PodKey::of(p)
                    }
                    _ => None,
                };
                let fed = feed.pod(state, unbox(e));
                if let Some(key) = waiting.filter(|k| state.is_gated_driver(k)) {
                    let _ = gated.send(key);
                }
                fed
            }
            Item::Reservation(e) => feed.reservation(state, unbox(e)),
            Item::Budget(e) => feed.budget(state, unbox(e)),
            Item::Queue(e) => feed.queue(state, unbox(e)),
        };
        let mut fed = fed;
        if fed.synced_now {
            // Build the FIFO plans before turning ready, so no filter call pays for them.
            let warm = std::time::Instant::now();
            state.prepare(ext.clock.now());
            // A previous leader may have died between holding a preemptor's room and
            // evicting its victims: finish the evictions.
            fed.effects.extend(state.resume_preemptions());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_200ms_to_at_most_10s_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(
            waits,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(200));
    }
}
