//! The scheduler simulator: kube-scheduler's scheduling loop for one profile, as a client of
//! the API server — a priority/creation-time queue with backoff, the in-tree filters that
//! matter here (resources fit, node selector and required affinity, taints, cordons), then the
//! extender of the `KubeSchedulerConfiguration`, binding, and `FailedScheduling` events.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use sparkgang_common::api::extender::{ExtenderArgs, ExtenderFilterResult};
use sparkgang_common::resources::{GpuResourceNames, Resources};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::deploy_config::SchedulerExtender;

mod cache;
pub mod steps;

pub use steps::{CoreSettings, SchedulerCore, pod_key};

/// What the simulated kube-scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// The profile's `schedulerName`: only pods naming it are scheduled.
    pub scheduler_name: String,
    /// The extender to call after the in-tree filters, if any.
    pub extender: Option<SchedulerExtender>,
    pub gpus: GpuResourceNames,
    /// kube-scheduler's `podInitialBackoffSeconds` / `podMaxBackoffSeconds` (defaults 1 / 10).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// One scheduling attempt's result for a pod, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Bound(String),
    Unschedulable(String),
}

/// Observes attempts (the scenario runner records pending reasons).
pub type AttemptObserver = Arc<dyn Fn(&Pod, &Attempt) + Send + Sync>;

/// Runs the scheduling loop until the task is dropped.
pub async fn run(client: Client, settings: SchedulerSettings, observer: Option<AttemptObserver>) {
    let wake = Arc::new(Notify::new());
    let (pods, pods_writer) = reflector::store::<Pod>();
    let (nodes, nodes_writer) = reflector::store::<Node>();
    let pod_wake = wake.clone();
    let pod_events = reflector::reflector(
        pods_writer,
        watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(move |_| {
        pod_wake.notify_one();
        futures::future::ready(())
    });
    let node_wake = wake.clone();
    let node_events = reflector::reflector(
        nodes_writer,
        watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(move |_| {
        node_wake.notify_one();
        futures::future::ready(())
    });
    tokio::spawn(pod_events);
    tokio::spawn(node_events);
    if pods.wait_until_ready().await.is_err() || nodes.wait_until_ready().await.is_err() {
        warn!("scheduler: watches ended before syncing");
        return;
    }
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: settings.scheduler_name.clone(),
            instance: None,
        },
    );
    let mut core = SchedulerCore::new(CoreSettings {
        scheduler_name: settings.scheduler_name.clone(),
        gpus: settings.gpus.clone(),
        initial_backoff: settings.initial_backoff,
        max_backoff: settings.max_backoff,
    });
    let origin = Instant::now();
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        schedule_round(
            &client,
            &settings,
            &pods,
            &nodes,
            &recorder,
            &mut core,
            origin,
            observer.as_ref(),
        )
        .await;
    }
}

/// One round over the watch caches: the core decides, this shell calls the extender, binds
/// and publishes `FailedScheduling` events.
#[allow(clippy::too_many_arguments)]
async fn schedule_round(
    client: &Client,
    settings: &SchedulerSettings,
    pods: &Store<Pod>,
    nodes: &Store<Node>,
    recorder: &Recorder,
    core: &mut SchedulerCore,
    origin: Instant,
    observer: Option<&AttemptObserver>,
) {
    let mut round = core.begin(&pods.state(), &nodes.state(), origin.elapsed());
    let queue = std::mem::take(&mut round.queue);
    for pod in queue {
        let (requests, attempt) = match core.filter(&round, &pod) {
            Err(message) => (Resources::default(), Attempt::Unschedulable(message)),
            Ok(filtered) => {
                let requests = filtered.requests;
                let answer = match (&settings.extender, filtered.is_empty()) {
                    (Some(ext), false) => {
                        let (nodes, names) = (filtered.nodes(&round), filtered.names(&round));
                        Some(call_extender(ext, &pod, &nodes, &names).await)
                    }
                    _ => None,
                };
                let cache_capable = settings
                    .extender
                    .as_ref()
                    .is_some_and(|e| e.node_cache_capable);
                let attempt = match core.choose(&round, filtered, answer, cache_capable) {
                    Ok(node) => bind(client, &pod, node).await,
                    Err(message) => Attempt::Unschedulable(message),
                };
                (requests, attempt)
            }
        };
        core.record(&pod, requests, &attempt, origin.elapsed());
        if let Attempt::Unschedulable(message) = &attempt {
            publish_failure(recorder, &pod, message).await;
        }
        if let Some(o) = observer {
            o(&pod, &attempt);
        }
    }
}

/// Binds through `pods/binding`, as kube-scheduler does.
async fn bind(client: &Client, pod: &Pod, node: String) -> Attempt {
    let binding = Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(node.clone()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    match api
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            debug!(pod = name.as_str(), node = node.as_str(), "bound");
            Attempt::Bound(node)
        }
        Err(e) => Attempt::Unschedulable(format!("binding rejected: {e}")),
    }
}

/// POSTs `ExtenderArgs` to `<urlPrefix>/<filterVerb>` as kube-scheduler does.
async fn call_extender(
    ext: &SchedulerExtender,
    pod: &Pod,
    feasible: &[&Node],
    names: &[&str],
) -> Result<ExtenderFilterResult, String> {
    let args = ExtenderArgs {
        pod: Some(pod.clone()),
        nodes: (!ext.node_cache_capable).then(|| k8s_openapi::List {
            items: feasible.iter().map(|n| (*n).clone()).collect(),
            ..Default::default()
        }),
        node_names: ext
            .node_cache_capable
            .then(|| names.iter().map(|n| n.to_string()).collect()),
    };
    let body = serde_json::to_vec(&args).map_err(|e| e.to_string())?;
    let url = format!(
        "{}/{}",
        ext.url_prefix.trim_end_matches('/'),
        ext.filter_verb
    );
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("extender URL {url}: {e}"))?;
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .ok_or_else(|| format!("extender URL {url} has no host"))?;
    let call = async {
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("failed filter with extender at URL {url}: {e}"))?;
        let (status, bytes) =
            sparkgang_testing::http::post_json(stream, &authority, uri.path(), body).await?;
        if !status.is_success() {
            return Err(format!(
                "failed filter with extender at URL {url}, code {}",
                status.as_u16()
            ));
        }
        let result: ExtenderFilterResult =
            serde_json::from_slice(&bytes).map_err(|e| format!("extender response: {e}"))?;
        if !result.error.is_empty() {
            return Err(result.error);
        }
        Ok(result)
    };
    match tokio::time::timeout(ext.http_timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "failed filter with extender at URL {url}: timeout after {:?}",
            ext.http_timeout
        )),
    }
}

async fn publish_failure(recorder: &Recorder, pod: &Pod, message: &str) {
    let reference = ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let mut note = message.to_owned();
    note.truncate(1024);
    let event = Event {
        type_: EventType::Warning,
        reason: "FailedScheduling".to_owned(),
        note: Some(note),
        action: "Scheduling".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        warn!(error = %e, "cannot publish FailedScheduling event");
    }
}
