//! The kubelet's process runtime: Spark driver and executor pods run as local JVMs, started
//! from the launch plans of [`crate::spark::launch`] with the local PyPI `pyspark` and Java 17,
//! whatever their image. Each pod gets a loopback address as its pod IP and a directory of its
//! own (its volumes and working directory); its stdout and stderr go to the API server's
//! `pods/log`. The pod's status follows the process: `Running` with its address when it
//! starts, `Succeeded` or `Failed` with its exit code when it ends. Deleting the pod stops the
//! process as a kubelet stops a container: SIGTERM to its main process, SIGKILL to all of them
//! after the grace period.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use sparkgang_common::pods::node_name;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::host::Host;
use super::pod_status;
use super::spawn::{Process, spawn};
use crate::apiserver::container_logs::ContainerLogs;
use crate::spark::launch::{self, HeapPolicy, Installation, LaunchError, PodContext, Role};

/// How often pods that wait (for their ConfigMap, for room under the cap) try again.
const RETRY: Duration = Duration::from_millis(250);
/// Attempts of one API call before the runtime gives up on it (and logs why).
const ATTEMPTS: u32 = 6;

/// What the runtime needs.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    pub install: Installation,
    pub heap: HeapPolicy,
    /// At most this many JVMs at once on each node; others wait, and say so in their status.
    pub jvms_per_node: usize,
    /// Where each pod's directory is made (`<dir>/<namespace>/<pod>-<uid>`).
    pub dir: PathBuf,
    /// The API server the drivers talk to, e.g. `http://127.0.0.1:41234`.
    pub api_server: String,
    /// Where the processes' output is registered for `pods/log`.
    pub logs: ContainerLogs,
}

/// A handle on the runtime's task; the kubelet hands it the pods it runs.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    tx: mpsc::UnboundedSender<Msg>,
}

#[derive(Debug)]
enum Msg {
    /// The pod as it is now.
    Applied(Box<Pod>),
    /// The pod is gone from the API.
    Deleted(Box<Pod>),
    /// After a relist, the uids of every pod there is: the others are gone.
    Resync(HashSet<String>),
    Exited {
        uid: String,
        code: i32,
    },
    GraceOver {
        uid: String,
    },
    /// Kill every process and stop.
    Shutdown(tokio::sync::oneshot::Sender<()>),
}

impl ProcessRuntime {
    /// Starts the runtime's task.
    pub fn start(client: Client, options: ProcessOptions) -> ProcessRuntime {
        let (tx, rx) = mpsc::unbounded_channel();
        // Simulators on one machine (a playground and a test run) give addresses from
        // different places.
        let start = std::net::Ipv4Addr::new(127, 0, (std::process::id() % 250) as u8 + 1, 2);
        let runtime = Runtime {
            client,
            host: Host::starting_at(options.jvms_per_node, start),
            options: Arc::new(options),
            pods: HashMap::new(),
            tx: tx.clone(),
        };
        tokio::spawn(runtime.run(rx));
        ProcessRuntime { tx }
    }

    /// Whether this runtime runs `pod`: its container runs Spark's entrypoint.
    pub fn runs(pod: &Pod) -> bool {
        launch::role_of(pod).is_some()
    }

    /// Kills every process the runtime started (SIGKILL to each pod's process group) and stops
    /// the runtime, as a node going away.
    pub async fn shutdown(&self) {
        let (done, stopped) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).is_ok() {
            let _ = stopped.await;
        }
    }

    pub(super) fn applied(&self, pod: Pod) {
        let _ = self.tx.send(Msg::Applied(Box::new(pod)));
    }

    pub(super) fn deleted(&self, pod: Pod) {
        let _ = self.tx.send(Msg::Deleted(Box::new(pod)));
    }

    pub(super) fn resync(&self, uids: HashSet<String>) {
        let _ = self.tx.send(Msg::Resync(uids));
    }
}

/// A pod the runtime has taken.
#[derive(Debug)]
struct Entry {
    pod: Pod,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not started: the last reason reported in its status.
    Waiting { reported: Option<(String, String)> },
    Running {
        process: Process,
        ip: std::net::Ipv4Addr,
        node: String,
        started: Timestamp,
        stopping: bool,
        gone: bool,
    },
    /// The process has ended (or never will start); the pod stays until deleted, and
    /// `removing` once the kubelet has deleted it.
    Ended { removing: bool },
}

struct Runtime {
    client: Client,
    options: Arc<ProcessOptions>,
    host: Host,
    pods: HashMap<String, Entry>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Drop for Runtime {
    /// The kubelet is gone (its task dropped, the simulator stopping or panicking): so are
    /// its containers.
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl Runtime {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut retry = tokio::time::interval(RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Applied(pod)) => self.applied(*pod).await,
                    Some(Msg::Deleted(pod)) => self.gone(&uid(&pod)),
                    Some(Msg::Resync(there)) => {
                        let missing: Vec<String> =
                            self.pods.keys().filter(|u| !there.contains(*u)).cloned().collect();
                        for uid in missing {
                            self.gone(&uid);
                        }
                    }
                    Some(Msg::Exited { uid, code }) => self.exited(&uid, code).await,
                    Some(Msg::GraceOver { uid }) => self.grace_over(&uid),
                    Some(Msg::Shutdown(done)) => {
                        self.kill_all();
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                _ = retry.tick() => self.start_waiting().await,
            }
        }
    }

    fn kill_all(&self) {
        for entry in self.pods.values() {
            if let State::Running { process, .. } = &entry.state {
                process.kill();
            }
        }
    }

    async fn applied(&mut self, pod: Pod) {
        let uid = uid(&pod);
        if pod.metadata.deletion_timestamp.is_some() {
            self.deleting(pod);
            return;
        }
        if let Some(entry) = self.pods.get_mut(&uid) {
            entry.pod = pod;
            return;
        }
        let pending = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending");
        if node_name(&pod).is_none() || !pending {
            return;
        }
        self.pods.insert(
            uid.clone(),
            Entry {
                pod,
                state: State::Waiting { reported: None },
            },
        );
        self.try_start(&uid).await;
    }

    /// The pod is being deleted gracefully.
    fn deleting(&mut self, pod: Pod) {
        let uid = uid(&pod);
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        match self.pods.get_mut(&uid) {
            Some(Entry {
                state: State::Running {
                    process, stopping, ..
                },
                pod: stored,
            }) if !*stopping => {
                *stopping = true;
                *stored = pod;
                info!(pod = ?key(stored), grace, "stopping the pod's process (SIGTERM)");
                process.terminate();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(grace)).await;
                    let _ = tx.send(Msg::GraceOver { uid });
                });
            }
            // Never started, or already ended: nothing to stop; removed once.
            Some(Entry {
                state: State::Waiting { .. } | State::Ended { removing: false },
                ..
            }) => self.remove(&uid, &pod),
            Some(_) => {}
            // Bound before the runtime saw it (a restart), and deleted.
            None if node_name(&pod).is_some() => {
                self.pods.insert(
                    uid.clone(),
                    Entry {
                        pod: pod.clone(),
                        state: State::Ended { removing: false },
                    },
                );
                self.remove(&uid, &pod);
            }
            None => {}
        }
    }

    /// Deletes the pod whose containers have stopped (once).
    fn remove(&mut self, uid: &str, pod: &Pod) {
        if let Some(entry) = self.pods.get_mut(uid) {
            entry.state = State::Ended { removing: true };
            remove_pod(self.client.clone(), pod);
        }
    }

    /// The pod is gone from the API (deleted at once, or removed after it stopped).
    fn gone(&mut self, uid: &str) {
        match self.pods.get_mut(uid) {
            Some(Entry {
                state: State::Running { process, gone, .. },
                ..
            }) => {
                *gone = true;
                process.kill();
            }
            Some(_) => {
                if let Some(entry) = self.pods.remove(uid) {
                    let (namespace, name) = key(&entry.pod);
                    self.options.logs.remove(&namespace, &name, uid);
                    let _ = std::fs::remove_dir_all(pod_dir(&self.options.dir, &entry.pod));
                }
            }
            None => {}
        }
    }

    fn grace_over(&mut self, uid: &str) {
        if let Some(Entry {
            state: State::Running { process, .. },
            pod,
        }) = self.pods.get(uid)
        {
            info!(pod = ?key(pod), "grace period over: SIGKILL");
            process.kill();
        }
    }

    async fn exited(&mut self, uid: &str, code: i32) {
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let State::Running {
            ip,
            ref node,
            started,
            stopping,
            gone,
            ref process,
        } = entry.state
        else {
            return;
        };
        let pid = process.pid;
        self.host.release(node, ip);
        entry.state = State::Ended { removing: false };
        let pod = entry.pod.clone();
        info!(pod = ?key(&pod), code, "the pod's process ended");
        if gone {
            self.gone(uid);
        } else {
            let patch = pod_status::ended(&pod, ip, pid, started, code, Timestamp::now());
            if let Err(e) = patch_status(&self.client, &pod, &patch).await {
                warn!(pod = ?key(&pod), error = %e, "cannot record the end of the pod's process");
            }
            if stopping {
                self.remove(uid, &pod);
            }
        }
        self.start_waiting().await;
    }

    /// Tries the waiting pods again: executors first (their drivers wait for them), then in
    /// the order they were created.
    async fn start_waiting(&mut self) {
        let mut waiting: Vec<(bool, Option<Timestamp>, String)> = self
            .pods
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Waiting { .. }))
            .map(|(uid, e)| {
                let driver = launch::role_of(&e.pod) == Some(Role::Driver);
                let created = e.pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
                (driver, created, uid.clone())
            })
            .collect();
        waiting.sort();
        for (_, _, uid) in waiting {
            self.try_start(&uid).await;
        }
    }

    /// Starts the pod's process if it can; else reports why it waits.
    async fn try_start(&mut self, uid: &str) {
        let Some(entry) = self.pods.get(uid) else {
            return;
        };
        let pod = entry.pod.clone();
        let node = node_name(&pod).unwrap_or_default().to_owned();
        let driver = launch::role_of(&pod) == Some(Role::Driver);
        if let Err(full) = self.host.room(&node, driver) {
            return self.waits(uid, "SparkgangJvmCap", full.to_string()).await;
        }
        let config_maps = match config_maps(&self.client, &pod).await {
            Ok(c) => c,
            Err(e) => return self.waits(uid, "ContainerCreating", e.to_string()).await,
        };
        let ip = match self.host.admit(&node, driver) {
            Ok(ip) => ip,
            Err(full) => return self.waits(uid, "SparkgangJvmCap", full.to_string()).await,
        };
        let dir = pod_dir(&self.options.dir, &pod);
        let cx = PodContext {
            pod: &pod,
            ip,
            api_server: &self.options.api_server,
            dir: &dir,
            config_maps: &config_maps,
        };
        let plan = match launch::launch(&self.options.install, &cx, self.options.heap) {
            Ok(p) => p,
            Err(e) => {
                self.host.release(&node, ip);
                let reason = match e {
                    LaunchError::MissingConfigMap { .. }
                    | LaunchError::MissingConfigMapKey { .. } => "ContainerCreating",
                    _ => "CreateContainerConfigError",
                };
                return self.waits(uid, reason, e.to_string()).await;
            }
        };
        let started = Timestamp::now();
        let (namespace, name) = key(&pod);
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let tx = self.tx.clone();
        let exited_uid = uid.to_owned();
        let spawned = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                let path = dir.join(format!("{container}.log"));
                self.options
                    .logs
                    .create(&namespace, &name, uid, &container, &path)
            })
            .and_then(|log| {
                spawn(&plan, Arc::new(log), move |code| {
                    let _ = tx.send(Msg::Exited {
                        uid: exited_uid,
                        code,
                    });
                })
            });
        match spawned {
            Ok(process) => {
                let pid = process.pid;
                info!(pod = ?key(&pod), %ip, pid, node, "started the pod's process");
                if let Some(e) = self.pods.get_mut(uid) {
                    e.state = State::Running {
                        process,
                        ip,
                        node,
                        started,
                        stopping: false,
                        gone: false,
                    };
                }
                let patch = pod_status::running(&pod, ip, pid, started);
                if let Err(e) = patch_status(&self.client, &pod, &patch).await {
                    warn!(pod = ?key(&pod), error = %e, "cannot record the pod's start");
                }
            }
            Err(e) => {
                self.host.release(&node, ip);
                if let Some(entry) = self.pods.get_mut(uid) {
                    entry.state = State::Ended { removing: false };
                }
                let message = format!("starting the process: {e}");
                warn!(pod = ?key(&pod), error = %message, "cannot start the pod's process");
                let patch = pod_status::start_error(&pod, &message, started);
                if let Err(e) = patch_status(&self.client, &pod, &patch).await {
                    warn!(pod = ?key(&pod), error = %e, "cannot record the pod's failure");
                }
            }
        }
    }

    /// The pod waits for `reason`: said in its status once (again if the patch failed).
    async fn waits(&mut self, uid: &str, reason: &str, message: String) {
        let Some(entry) = self.pods.get(uid) else {
            return;
        };
        let State::Waiting { reported } = &entry.state else {
            return;
        };
        let now = (reason.to_owned(), message.clone());
        if reported.as_ref() == Some(&now) {
            return;
        }
        let pod = entry.pod.clone();
        let patch = pod_status::waiting(&pod, reason, &message);
        match patch_status(&self.client, &pod, &patch).await {
            Ok(()) => {
                if let Some(Entry {
                    state: State::Waiting { reported },
                    ..
                }) = self.pods.get_mut(uid)
                {
                    *reported = Some(now);
                }
            }
            Err(e) => warn!(pod = ?key(&pod), error = %e, "cannot record why the pod waits"),
        }
    }
}

/// Why a pod's ConfigMaps cannot be read.
#[derive(Debug, thiserror::Error)]
enum VolumeError {
    #[error("MountVolume.SetUp failed for volume {volume}: configmap {name:?} not found")]
    NotFound { volume: String, name: String },
    #[error("reading configmap {name:?}: {error}")]
    Api { name: String, error: kube::Error },
}

/// The data of the ConfigMaps the pod mounts or reads env from, by name.
async fn config_maps(
    client: &Client,
    pod: &Pod,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let spec = pod.spec.as_ref();
    let mut wanted: Vec<(String, String)> = spec
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v.name.clone(), v.config_map.as_ref()?.name.clone())))
        .collect();
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|f| f.config_map_key_ref.as_ref())
            {
                wanted.push((format!("env {}", e.name), r.name.clone()));
            }
        }
    }
    let mut maps = BTreeMap::new();
    for (volume, name) in wanted {
        if maps.contains_key(&name) {
            continue;
        }
        match api.get_opt(&name).await {
            Ok(Some(cm)) => {
                maps.insert(name, cm.data.unwrap_or_default());
            }
            Ok(None) => return Err(VolumeError::NotFound { volume, name }),
            Err(error) => return Err(VolumeError::Api { name, error }),
        }
    }
    Ok(maps)
}

/// The pod's own directory.
fn pod_dir(root: &Path, pod: &Pod) -> PathBuf {
    let (namespace, name) = key(pod);
    let uid: String = uid(pod).chars().take(8).collect();
    root.join(namespace).join(format!("{name}-{uid}"))
}

/// Whether an API error is final: the pod is gone, or is another pod now.
fn is_final(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

/// Runs `call` until it succeeds, fails for good, or has failed [`ATTEMPTS`] times (backing
/// off from 100 ms).
async fn with_retries<F, Fut>(mut call: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let mut wait = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < ATTEMPTS && !is_final(&e) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Deletes the pod (grace 0, this uid only), as the kubelet does once its containers stopped.
fn remove_pod(client: Client, pod: &Pod) {
    let (namespace, name) = key(pod);
    let uid = uid(pod);
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, &namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let deleted = with_retries(|| async { api.delete(&name, &params).await.map(|_| ()) });
        match deleted.await {
            Ok(()) => {}
            // Already gone (a delete with grace 0 by someone else), or another pod now.
            Err(e) if is_final(&e) => {}
            Err(e) => warn!(pod = name.as_str(), error = %e, "cannot remove a stopped pod"),
        }
    });
}

/// Patches the pod's status (the patch names its uid: a new pod of the same name is a 409).
async fn patch_status(
    client: &Client,
    pod: &Pod,
    patch: &serde_json::Value,
) -> Result<(), kube::Error> {
    let (namespace, name) = key(pod);
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    with_retries(|| async {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
    })
    .await
}
