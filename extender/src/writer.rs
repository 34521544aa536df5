//! Carries out the effects of decisions: reservation writes with optimistic concurrency and
//! retries, `Demand` objects, and "exceeds capacity" reports.
//!
//! Writes for one application are serialised and coalesced: a write always sends the latest
//! in-memory reservation, so ten quick decisions for one app may become one request.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use sparkgang_common::api::MAX_EVENT_NOTE_BYTES;
use sparkgang_common::api::demand::Demand;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::{AppKey, Effect, PodKey, demand_object_name};
use sparkgang_common::text::truncate_bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::Extender;
use crate::metrics::ReasonLabels;

/// How effects reach the writer.
pub type EffectSender = mpsc::UnboundedSender<Effect>;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub attempts: u32,
    pub demands: bool,
}

/// How many writes may be in flight at once (for different objects; effects on one object —
/// a reservation, or a pod's Demand and condition — are always one at a time, in order).
const CONCURRENT_WRITES: usize = 8;

/// The object an effect writes: effects on one object run one at a time, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Reservation(AppKey),
    Pod(PodKey),
}

fn target(effect: &Effect) -> Target {
    match effect {
        Effect::SyncReservation(app) => Target::Reservation(app.clone()),
        Effect::EnsureDemand(pod)
        | Effect::DeleteDemand(pod)
        | Effect::ReportExceedsCapacity { pod, .. }
        | Effect::ReportPreemption { pod, .. }
        | Effect::Evict { pod, .. } => Target::Pod(pod.clone()),
    }
}

/// What the writer remembers across effects.
#[derive(Default)]
struct Published {
    demands: HashSet<PodKey>,
    reported: HashSet<PodKey>,
    /// The last preemption decision reported per driver: only a change is reported again.
    preemption: std::collections::HashMap<PodKey, String>,
}

/// Runs until the channel closes.
pub async fn run(
    client: Client,
    ext: Arc<Extender>,
    mut effects: mpsc::UnboundedReceiver<Effect>,
    settings: WriterSettings,
    recorder: Recorder,
) {
    let mut queue: VecDeque<Effect> = VecDeque::new();
    let mut queued: HashSet<Effect> = HashSet::new();
    // Objects with a write in flight, by task id so a panicking task still frees its object.
    let mut in_flight: HashSet<Target> = HashSet::new();
    let mut tasks_by_id: std::collections::HashMap<tokio::task::Id, Target> =
        std::collections::HashMap::new();
    // Effects whose object was busy: run after it, in arrival order.
    let mut parked: VecDeque<Effect> = VecDeque::new();
    let published = Arc::new(std::sync::Mutex::new(Published::default()));
    let mut tasks: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    let mut open = true;
    loop {
        while tasks.len() < CONCURRENT_WRITES {
            let Some(effect) = queue.pop_front() else {
                break;
            };
            queued.remove(&effect);
            let t = target(&effect);
            if in_flight.contains(&t) {
                if !parked.contains(&effect) {
                    parked.push_back(effect);
                }
                continue;
            }
            in_flight.insert(t.clone());
            let (client, ext, settings, recorder, published) = (
                client.clone(),
                ext.clone(),
                settings.clone(),
                recorder.clone(),
                published.clone(),
            );
            let handle = tasks.spawn(async move {
                carry_out(&client, &ext, &settings, &recorder, &published, &effect).await;
            });
            tasks_by_id.insert(handle.id(), t);
        }
        if !open && tasks.is_empty() && queue.is_empty() && parked.is_empty() {
            return;
        }
        tokio::select! {
            done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match &done {
                    Some(Ok((id, ()))) => Some(*id),
                    Some(Err(e)) => {
                        warn!(error = %e, "a write task failed");
                        Some(e.id())
                    }
                    None => None,
                };
                if let Some(t) = id.and_then(|id| tasks_by_id.remove(&id)) {
                    in_flight.remove(&t);
                    // The object is free: its parked effects go first, in order.
                    let (mine, others): (VecDeque<Effect>, VecDeque<Effect>) =
                        parked.drain(..).partition(|e| target(e) == t);
                    parked = others;
                    for e in mine.into_iter().rev() {
                        if queued.insert(e.clone()) {
                            queue.push_front(e);
                        }
                    }
                }
            }
            received = effects.recv(), if open => match received {
                Some(effect) => {
                    if queued.insert(effect.clone()) {
                        queue.push_back(effect);
                    }
                }
                None => open = false,
            },
        }
    }
}

async fn carry_out(
    client: &Client,
    ext: &Extender,
    settings: &WriterSettings,
    recorder: &Recorder,
    published: &std::sync::Mutex<Published>,
    effect: &Effect,
) {
    let remember = |f: &dyn Fn(&mut Published) -> bool| {
        published.lock().map(|mut p| f(&mut p)).unwrap_or(false)
    };
    match effect {
        Effect::SyncReservation(app) => {
            sync_reservation(client, ext, app, settings.attempts).await;
        }
        Effect::EnsureDemand(pod) if settings.demands => {
            if !remember(&|p| p.demands.contains(pod)) && publish_demand(client, ext, pod).await {
                remember(&|p| p.demands.insert(pod.clone()));
            }
        }
        Effect::DeleteDemand(pod) if settings.demands => {
            if remember(&|p| p.demands.remove(pod)) {
                delete_demand(client, ext, pod).await;
            }
        }
        Effect::EnsureDemand(_) | Effect::DeleteDemand(_) => {}
        Effect::ReportExceedsCapacity { pod, message } => {
            if remember(&|p| p.reported.insert(pod.clone())) {
                report_exceeds_capacity(client, ext, recorder, pod, message).await;
            }
        }
        Effect::Evict {
            pod,
            preemptor,
            message,
        } => {
            evict(client, ext, recorder, pod, preemptor, message).await;
        }
        Effect::ReportPreemption {
            pod,
            message,
            dry_run,
            gangs,
            soft,
            priority,
        } => {
            if remember(&|p| {
                p.preemption.insert(pod.clone(), message.clone()).as_ref() != Some(message)
            }) {
                ext.metrics
                    .count_preemption(*priority, *dry_run, *gangs, *soft);
                info!(pod = %pod, priority, dry_run, gangs, soft, decision = %message, "preemption");
                let reason = match (gangs + soft, dry_run) {
                    (0, _) => "PreemptionNotPossible",
                    (_, true) => "WouldPreempt",
                    _ => "Preempting",
                };
                publish_pod_event(
                    ext,
                    recorder,
                    pod,
                    EventType::Normal,
                    reason,
                    "Preempting",
                    message,
                )
                .await;
            }
        }
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// How a failed write is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The object's version moved on (409): take the server's version and write again.
    Conflict,
    /// Gone (404): create it again.
    Gone,
    /// The API refused the content (400, 422): retrying cannot help.
    Refused,
    /// No answer, or a server error: the write may or may not have landed.
    Unknown,
}

fn classify(e: &kube::Error) -> Failure {
    match status_code(e) {
        Some(409) => Failure::Conflict,
        Some(404) => Failure::Gone,
        Some(400 | 422) => Failure::Refused,
        _ => Failure::Unknown,
    }
}

/// The wait before attempt `n + 1`: 50 ms doubling for the first `quick` attempts, then 5 s.
fn retry_wait(n: u32, quick: u32) -> Duration {
    if n < quick {
        Duration::from_millis(50u64 << n.min(6)).min(Duration::from_secs(5))
    } else {
        Duration::from_secs(5)
    }
}

/// Makes the API object of `app`'s reservation match memory, for as long as this replica
/// leads. Memory is the truth: a failing API is retried (quickly `attempts` times, then every
/// 5 s), never taken for "absent". A write whose answer was lost (timeout, transport error,
/// 5xx) is read back before anything is sent again, so it is never applied twice. Only a
/// write the API refuses (400, 422) makes memory take the API's object instead.
pub async fn sync_reservation(client: &Client, ext: &Extender, app: &AppKey, attempts: u32) {
    let api: Api<ResourceReservation> = Api::namespaced(client.clone(), &app.namespace);
    let name = app.reservation_name();
    let mut failures = 0u32;
    let mut unknown = false;
    loop {
        if failures > 0 {
            tokio::time::sleep(retry_wait(failures - 1, attempts)).await;
        }
        if unknown {
            // Did the write whose answer was lost land? Read it back before writing again.
            match api.get_opt(&name).await {
                Ok(current) => {
                    let rv = current
                        .as_ref()
                        .and_then(|c| c.metadata.resource_version.clone());
                    let Some(landed) = ext.with_state(|s| {
                        let landed = s.reservation_matches(app, current.as_ref());
                        if landed {
                            let desired = s.reservation_object(app).1;
                            s.reservation_written(app, desired, rv.clone());
                        } else {
                            s.adopt_resource_version(app, rv.clone());
                        }
                        landed
                    }) else {
                        return;
                    };
                    if landed {
                        ext.metrics.count_write("resourcereservation", "reconciled");
                        info!(app = %app, "a reservation write whose answer was lost had landed");
                        return;
                    }
                    unknown = false;
                }
                Err(e) => {
                    failures += 1;
                    warn!(app = %app, error = %e, "cannot read the reservation back; retrying");
                    continue;
                }
            }
        }
        let Some((object, desired)) = ext.with_state(|s| s.reservation_object(app)) else {
            return;
        };
        let result = match &object {
            None => match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(None),
                Err(e) if status_code(&e) == Some(404) => Ok(None),
                Err(e) => Err(e),
            },
            Some(o) if o.metadata.resource_version.is_some() => api
                .replace(&name, &PostParams::default(), o)
                .await
                .map(|r| r.metadata.resource_version),
            Some(o) => api
                .create(&PostParams::default(), o)
                .await
                .map(|r| r.metadata.resource_version),
        };
        let kind = if object.is_none() { "delete" } else { "write" };
        let e = match result {
            Ok(rv) => {
                ext.metrics.count_write("resourcereservation", "ok");
                ext.with_state(|s| s.reservation_written(app, desired, rv));
                return;
            }
            Err(e) => e,
        };
        failures += 1;
        let failure = classify(&e);
        ext.metrics.count_write("resourcereservation", "error");
        ext.metrics
            .api_write_retries
            .get_or_create(&ReasonLabels {
                reason: status_code(&e).map_or("transport".to_owned(), |c| c.to_string()),
            })
            .inc();
        warn!(app = %app, attempt = failures, kind, ?failure, error = %e, "reservation write failed");
        match failure {
            // Someone else's version (or our create raced the watch): read the server's
            // object; if it already holds our content we are done, else write over it.
            Failure::Conflict | Failure::Unknown => unknown = true,
            Failure::Gone => {
                ext.with_state(|s| s.adopt_resource_version(app, None));
            }
            Failure::Refused => {
                take_api_object(&api, ext, app, &name).await;
                return;
            }
        }
    }
}

/// The API refused memory's object: memory takes the API's, read successfully (a failed read
/// is retried, never taken for "absent").
async fn take_api_object(api: &Api<ResourceReservation>, ext: &Extender, app: &AppKey, name: &str) {
    let mut failures = 0;
    let current = loop {
        match api.get_opt(name).await {
            Ok(current) => break current,
            Err(e) => {
                warn!(app = %app, error = %e, "cannot read the refused reservation; retrying");
                failures += 1;
                tokio::time::sleep(retry_wait(failures, 0)).await;
                if ext.with_state(|_| ()).is_none() {
                    return;
                }
            }
        }
    };
    warn!(app = %app, exists = current.is_some(), "the API refused the reservation; rebuilding it from the API's object");
    let effects = ext.with_state(
        |s| match s.reset_reservation_from_api(app, current.as_ref()) {
            Ok(effects) => effects,
            Err(e) => {
                warn!(app = %app, error = %e, "cannot read the reservation from the API");
                Vec::new()
            }
        },
    );
    ext.submit(effects.into_iter().flatten());
}

async fn publish_demand(client: &Client, ext: &Extender, pod: &PodKey) -> bool {
    let Some(Some(demand)) = ext.with_state(|s| s.demand_object(pod)) else {
        return false;
    };
    let api: Api<Demand> = Api::namespaced(client.clone(), &pod.namespace);
    match api.create(&PostParams::default(), &demand).await {
        Ok(_) => {
            ext.metrics.count_write("demand", "ok");
            info!(pod = %pod, "demand published");
            true
        }
        Err(e) if status_code(&e) == Some(409) => true,
        Err(e) => {
            ext.metrics.count_write("demand", "error");
            warn!(pod = %pod, error = %e, "cannot publish demand");
            false
        }
    }
}

async fn delete_demand(client: &Client, ext: &Extender, pod: &PodKey) {
    let api: Api<Demand> = Api::namespaced(client.clone(), &pod.namespace);
    match api
        .delete(&demand_object_name(&pod.name), &DeleteParams::default())
        .await
    {
        Ok(_) => ext.metrics.count_write("demand", "ok"),
        Err(e) if status_code(&e) == Some(404) => {}
        Err(e) => {
            ext.metrics.count_write("demand", "error");
            warn!(pod = %pod, error = %e, "cannot delete demand");
        }
    }
}

/// Sets the `PodExceedsClusterCapacity` condition and publishes a Warning event.
async fn report_exceeds_capacity(
    client: &Client,
    ext: &Extender,
    recorder: &Recorder,
    pod: &PodKey,
    message: &str,
) {
    if let Err(e) = set_condition(
        client,
        ext,
        pod,
        "PodExceedsClusterCapacity",
        "GangExceedsCapacity",
        message,
    )
    .await
    {
        warn!(pod = %pod, error = %e, "cannot set the PodExceedsClusterCapacity condition");
    }
    publish_pod_event(
        ext,
        recorder,
        pod,
        EventType::Warning,
        "GangExceedsCapacity",
        "Scheduling",
        message,
    )
    .await;
}

/// Evicts a victim of preemption as kube-scheduler does: the `DisruptionTarget` condition
/// (reason `PreemptionByScheduler`) first, then the Eviction API (so PodDisruptionBudgets hold;
/// a refusal is tried again every 5 s while this replica leads), then a `Preempted` event. A
/// pod already gone is done.
async fn evict(
    client: &Client,
    ext: &Extender,
    recorder: &Recorder,
    pod: &PodKey,
    preemptor: &PodKey,
    message: &str,
) {
    match set_condition(
        client,
        ext,
        pod,
        "DisruptionTarget",
        "PreemptionByScheduler",
        message,
    )
    .await
    {
        Ok(()) => {}
        Err(e) if status_code(&e) == Some(404) => return,
        Err(e) => {
            warn!(pod = %pod, error = %e, "cannot set the DisruptionTarget condition; evicting anyway");
        }
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let mut failures = 0u32;
    loop {
        // The term's state is gone when this replica stops leading: the next leader's
        // plan takes over.
        if ext.with_state(|_| ()).is_none() {
            return;
        }
        match api
            .evict(&pod.name, &kube::api::EvictParams::default())
            .await
        {
            Ok(_) => {
                ext.metrics.count_write("pod-eviction", "ok");
                info!(pod = %pod, preemptor = %preemptor, "evicted for preemption");
                break;
            }
            Err(e) if status_code(&e) == Some(404) => return,
            Err(e) => {
                failures += 1;
                let refused = status_code(&e) == Some(429);
                ext.metrics
                    .count_write("pod-eviction", if refused { "refused" } else { "error" });
                warn!(pod = %pod, preemptor = %preemptor, error = %e, failures,
                    "eviction not done; trying again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    publish_pod_event(
        ext,
        recorder,
        pod,
        EventType::Normal,
        "Preempted",
        "Preempting",
        message,
    )
    .await;
}

/// Sets condition `type_` (status `True`, `reason`, `message`) on `pod`, counting the write.
async fn set_condition(
    client: &Client,
    ext: &Extender,
    pod: &PodKey,
    type_: &str,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": ext.clock.now().to_string(),
    }]}});
    let written = api
        .patch_status(
            &pod.name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await;
    ext.metrics
        .count_write("pod-status", if written.is_ok() { "ok" } else { "error" });
    written.map(|_| ())
}

/// Publishes an event about `pod`.
async fn publish_pod_event(
    ext: &Extender,
    recorder: &Recorder,
    pod: &PodKey,
    type_: EventType,
    reason: &str,
    action: &str,
    message: &str,
) {
    let reference = ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: Some(pod.name.clone()),
        namespace: Some(pod.namespace.clone()),
        uid: ext
            .with_state(|s| s.pod(pod).map(|p| p.uid.clone()))
            .flatten(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate_bytes(message, MAX_EVENT_NOTE_BYTES).to_owned()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        warn!(pod = %pod, error = %e, "cannot publish event");
    }
}
