//! The scheduler simulator: kube-scheduler's scheduling loop for one profile, as a client of
//! the API server — a priority/creation-time queue with backoff, the in-tree filters that
//! matter here (resources fit, node selector and required affinity, taints, cordons), then the
//! extender of the `KubeSchedulerConfiguration`, binding, and `FailedScheduling` events.

use std::collections::{BTreeMap, HashMap};
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
use sparkgang_common::affinity::{
    is_cordoned, is_ready, required_node_match, tolerates_node_taints,
};
use sparkgang_common::api::extender::{ExtenderArgs, ExtenderFilterResult};
use sparkgang_common::pods::{is_finished, node_name, scheduler_name};
use sparkgang_common::resources::{GpuResourceNames, Resources, node_allocatable, pod_requests};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::deploy_config::SchedulerExtender;

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

#[derive(Default)]
struct Backoff {
    attempts: u32,
    until: Option<Instant>,
}

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
    let mut memory = Memory::default();
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
            &mut memory,
            observer.as_ref(),
        )
        .await;
    }
}

/// What a round knows of a node: parsed once per round, not once per pod and node.
struct NodeInfo {
    node: Arc<Node>,
    name: String,
    allocatable: Resources,
    /// Why no pod may go there whatever it asks (not ready, cordoned).
    unusable: Option<&'static str>,
}

impl NodeInfo {
    fn new(node: &Arc<Node>, gpus: &GpuResourceNames) -> NodeInfo {
        NodeInfo {
            node: node.clone(),
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: node_allocatable(node, gpus).unwrap_or_default(),
            unusable: if !is_ready(node) {
                Some("node(s) were not ready")
            } else if is_cordoned(node) {
                Some("node(s) were unschedulable")
            } else {
                None
            },
        }
    }
}

/// The scheduler's own bookkeeping between rounds.
#[derive(Default)]
struct Memory {
    backoff: HashMap<String, Backoff>,
    /// Bindings made but not yet seen by the watch: pod uid → (node, requests). Like
    /// kube-scheduler's assumed pods, an entry ends when the watch shows the pod bound, or
    /// when the pod is gone or finished (it may run and be deleted before a round sees it bound).
    assumed: HashMap<String, (String, Resources)>,
    /// Each pod's effective requests by uid (a pod's requests never change).
    requests: HashMap<String, Resources>,
}

impl Memory {
    fn requests(&mut self, pod: &Pod, gpus: &GpuResourceNames) -> Resources {
        let compute = || {
            pod.spec
                .as_ref()
                .and_then(|s| pod_requests(s, gpus).ok())
                .unwrap_or_default()
        };
        match &pod.metadata.uid {
            Some(uid) => *self.requests.entry(uid.clone()).or_insert_with(compute),
            None => compute(),
        }
    }
}

async fn schedule_round(
    client: &Client,
    settings: &SchedulerSettings,
    pods: &Store<Pod>,
    nodes: &Store<Node>,
    recorder: &Recorder,
    memory: &mut Memory,
    observer: Option<&AttemptObserver>,
) {
    let all_pods = pods.state();
    let nodes: Vec<NodeInfo> = nodes
        .state()
        .iter()
        .map(|n| NodeInfo::new(n, &settings.gpus))
        .collect();
    let mut used: HashMap<String, Resources> = HashMap::new();
    let mut live = std::collections::HashSet::new();
    for p in &all_pods {
        let Some(uid) = &p.metadata.uid else { continue };
        if node_name(p).is_some() || is_finished(p) {
            memory.assumed.remove(uid);
        } else {
            live.insert(uid.clone());
        }
        if let Some(n) = node_name(p)
            && !is_finished(p)
        {
            let r = memory.requests(p, &settings.gpus);
            *used.entry(n.to_owned()).or_default() += r;
        }
    }
    memory.assumed.retain(|uid, _| live.contains(uid));
    let present: std::collections::HashSet<&str> = all_pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    memory
        .requests
        .retain(|uid, _| present.contains(uid.as_str()));
    for (node, r) in memory.assumed.values() {
        *used.entry(node.clone()).or_default() += *r;
    }
    let now = Instant::now();
    let mut queue: Vec<&Arc<Pod>> = all_pods
        .iter()
        .filter(|p| {
            scheduler_name(p) == settings.scheduler_name
                && node_name(p).is_none()
                && p.metadata.deletion_timestamp.is_none()
                && !is_finished(p)
                && p.spec
                    .as_ref()
                    .and_then(|s| s.scheduling_gates.as_ref())
                    .is_none_or(|g| g.is_empty())
                && p.metadata
                    .uid
                    .as_ref()
                    .is_some_and(|u| !memory.assumed.contains_key(u))
        })
        .filter(|p| {
            let key = pod_key(p);
            memory
                .backoff
                .get(&key)
                .and_then(|b| b.until)
                .is_none_or(|until| until <= now)
        })
        .collect();
    queue.sort_by_key(|p| {
        (
            std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            pod_key(p),
        )
    });
    for pod in queue {
        let requests = memory.requests(pod, &settings.gpus);
        let attempt = schedule_one(client, settings, pod, requests, &nodes, &used).await;
        let key = pod_key(pod);
        match &attempt {
            Attempt::Bound(node) => {
                memory.backoff.remove(&key);
                *used.entry(node.clone()).or_default() += requests;
                if let Some(uid) = &pod.metadata.uid {
                    memory.assumed.insert(uid.clone(), (node.clone(), requests));
                }
            }
            Attempt::Unschedulable(message) => {
                let b = memory.backoff.entry(key).or_default();
                b.attempts += 1;
                let delay = settings
                    .initial_backoff
                    .saturating_mul(1 << (b.attempts - 1).min(16))
                    .min(settings.max_backoff);
                b.until = Some(Instant::now() + delay);
                publish_failure(recorder, pod, message).await;
            }
        }
        if let Some(o) = observer {
            o(pod, &attempt);
        }
    }
}

fn pod_key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

/// Filters, asks the extender, binds.
async fn schedule_one(
    client: &Client,
    settings: &SchedulerSettings,
    pod: &Pod,
    requests: Resources,
    nodes: &[NodeInfo],
    used: &HashMap<String, Resources>,
) -> Attempt {
    let Some(spec) = pod.spec.as_ref() else {
        return Attempt::Unschedulable("pod has no spec".to_owned());
    };
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible: Vec<&Node> = Vec::new();
    for n in nodes {
        let reason = if let Some(r) = n.unusable {
            Some(r)
        } else if !required_node_match(spec, &n.node) {
            Some("node(s) didn't match Pod's node affinity/selector")
        } else if !tolerates_node_taints(spec, &n.node) {
            Some("node(s) had untolerated taint")
        } else {
            let free = n.allocatable - used.get(&n.name).copied().unwrap_or_default();
            insufficient(&requests, &free)
        };
        match reason {
            Some(r) => match reasons.get_mut(r) {
                Some(count) => *count += 1,
                None => {
                    reasons.insert(r.to_owned(), 1);
                }
            },
            None => feasible.push(&n.node),
        }
    }
    let mut candidates: Vec<String> = feasible
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    if let (Some(ext), false) = (&settings.extender, candidates.is_empty()) {
        match call_extender(ext, pod, &feasible, &candidates).await {
            Ok(result) => {
                let failed: Vec<&String> = result
                    .failed_nodes
                    .iter()
                    .flatten()
                    .chain(result.failed_and_unresolvable_nodes.iter().flatten())
                    .map(|(_, m)| m)
                    .collect();
                for m in failed {
                    *reasons.entry(m.clone()).or_default() += 1;
                }
                let chosen = result.node_names.unwrap_or_default();
                if let Some(bad) = chosen.iter().find(|n| !candidates.contains(n)) {
                    return Attempt::Unschedulable(format!(
                        "extender claims a filtered node {bad} which is not found in the input node list"
                    ));
                }
                candidates = chosen;
            }
            Err(e) => return Attempt::Unschedulable(e),
        }
    }
    let Some(node) = candidates.into_iter().min() else {
        let total = nodes.len();
        let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        return Attempt::Unschedulable(format!(
            "0/{total} nodes are available: {}.",
            parts.join(", ")
        ));
    };
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

fn insufficient(requests: &Resources, free: &Resources) -> Option<&'static str> {
    if requests.cpu_milli > free.cpu_milli {
        Some("Insufficient cpu")
    } else if requests.memory_bytes > free.memory_bytes {
        Some("Insufficient memory")
    } else if requests.gpus > free.gpus {
        Some("Insufficient nvidia.com/gpu")
    } else {
        None
    }
}

/// POSTs `ExtenderArgs` to `<urlPrefix>/<filterVerb>` as kube-scheduler does.
async fn call_extender(
    ext: &SchedulerExtender,
    pod: &Pod,
    feasible: &[&Node],
    names: &[String],
) -> Result<ExtenderFilterResult, String> {
    let args = ExtenderArgs {
        pod: Some(pod.clone()),
        nodes: (!ext.node_cache_capable).then(|| k8s_openapi::List {
            items: feasible.iter().map(|n| (*n).clone()).collect(),
            ..Default::default()
        }),
        node_names: ext.node_cache_capable.then(|| names.to_vec()),
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
