//! The kubelet's process runtime: Spark driver and executor pods run as local JVMs, started
//! from the launch plans of [`crate::spark::launch`] with the local PyPI `pyspark` and Java 17,
//! whatever their image. Each pod gets a loopback address as its pod IP and a directory of its
//! own (its volumes and working directory); its stdout and stderr go to the API server's
//! `pods/log`. The pod's status follows the process: `Running` with its address when it
//! starts, `Succeeded` or `Failed` with its exit code when it ends. Deleting the pod stops the
//! process as a kubelet stops a container: SIGTERM to every process of the pod, SIGKILL after
//! the grace period.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use sparkgang_common::pods::node_name;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::host::{Full, Host};
use crate::apiserver::container_logs::{ContainerLogs, LogWriter, Stream};
use crate::spark::launch::{self, HeapPolicy, Installation, LaunchError, PodContext};

/// How often pods that wait (for their ConfigMap, for room under the cap) try again.
const RETRY: Duration = Duration::from_millis(250);
/// How long the output of a pod's other processes may take to drain once its main process
/// and the rest of its process group are gone.
const DRAIN: Duration = Duration::from_secs(5);

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
        let runtime = Runtime {
            client,
            host: Host::new(options.jvms_per_node),
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
        pid: u32,
        ip: Ipv4Addr,
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
                    Some(Msg::Deleted(pod)) => self.deleted(&pod),
                    Some(Msg::Exited { uid, code }) => self.exited(&uid, code).await,
                    Some(Msg::GraceOver { uid }) => self.grace_over(&uid),
                    Some(Msg::Shutdown(done)) => {
                        self.kill_all();
                        let _ = done.send(());
                        return;
                    }
                    None => break,
                },
                _ = retry.tick() => self.start_waiting().await,
            }
        }
        self.kill_all();
    }

    /// The kubelet is gone: so are its containers.
    fn kill_all(&self) {
        for entry in self.pods.values() {
            if let State::Running { pid, .. } = entry.state {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }

    async fn applied(&mut self, pod: Pod) {
        let uid = uid(&pod);
        if pod.metadata.deletion_timestamp.is_some() {
            self.deleting(pod).await;
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
    async fn deleting(&mut self, pod: Pod) {
        let uid = uid(&pod);
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        match self.pods.get_mut(&uid) {
            Some(Entry {
                state: State::Running { pid, stopping, .. },
                ..
            }) if !*stopping => {
                *stopping = true;
                info!(pod = ?key(&pod), grace, "stopping the pod's processes (SIGTERM)");
                signal_group(*pid, libc::SIGTERM);
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
    fn deleted(&mut self, pod: &Pod) {
        let uid = uid(pod);
        let (namespace, name) = key(pod);
        match self.pods.get_mut(&uid) {
            Some(Entry {
                state: State::Running { pid, gone, .. },
                ..
            }) => {
                *gone = true;
                signal_group(*pid, libc::SIGKILL);
            }
            Some(_) | None => {
                self.pods.remove(&uid);
                self.options.logs.remove(&namespace, &name, &uid);
                let _ = std::fs::remove_dir_all(pod_dir(&self.options.dir, pod));
            }
        }
    }

    fn grace_over(&mut self, uid: &str) {
        if let Some(Entry {
            state: State::Running { pid, .. },
            pod,
        }) = self.pods.get(uid)
        {
            info!(pod = ?key(pod), "grace period over: SIGKILL");
            signal_group(*pid, libc::SIGKILL);
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
            pid,
        } = entry.state
        else {
            return;
        };
        self.host.release(node, ip);
        entry.state = State::Ended { removing: false };
        let pod = entry.pod.clone();
        info!(pod = ?key(&pod), code, "the pod's process ended");
        if gone {
            self.deleted(&pod);
        } else {
            let patch = ended_status(&pod, ip, pid, started, code, Timestamp::now());
            if let Err(e) = patch_status(&self.client, &pod, &patch).await {
                warn!(pod = ?key(&pod), error = %e, "cannot record the end of the pod's process");
            }
            if stopping {
                self.remove(uid, &pod);
            }
        }
        self.start_waiting().await;
    }

    async fn start_waiting(&mut self) {
        let waiting: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Waiting { .. }))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in waiting {
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
        let config_maps = match config_maps(&self.client, &pod).await {
            Ok(c) => c,
            Err(e) => return self.waits(uid, "ContainerCreating", e.to_string()).await,
        };
        let ip = match self.host.admit(&node) {
            Ok(ip) => ip,
            Err(full @ (Full::Node { .. } | Full::Addresses)) => {
                return self.waits(uid, "SparkgangJvmCap", full.to_string()).await;
            }
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
        match spawn(&self.options, &pod, &dir, plan, self.tx.clone()) {
            Ok(pid) => {
                info!(pod = ?key(&pod), %ip, pid, node, "started the pod's process");
                if let Some(e) = self.pods.get_mut(uid) {
                    e.state = State::Running {
                        pid,
                        ip,
                        node,
                        started,
                        stopping: false,
                        gone: false,
                    };
                }
                let patch = running_status(&pod, ip, pid, started);
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
                let patch = start_error_status(&pod, &message, started);
                if let Err(e) = patch_status(&self.client, &pod, &patch).await {
                    warn!(pod = ?key(&pod), error = %e, "cannot record the pod's failure");
                }
            }
        }
    }

    /// The pod waits for `reason`: said once in its status (as a container `waiting` state).
    async fn waits(&mut self, uid: &str, reason: &str, message: String) {
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let State::Waiting { reported } = &mut entry.state else {
            return;
        };
        let now = (reason.to_owned(), message.clone());
        if reported.as_ref() == Some(&now) {
            return;
        }
        *reported = Some(now);
        let patch = waiting_status(&entry.pod, reason, &message);
        if let Err(e) = patch_status(&self.client, &entry.pod, &patch).await {
            warn!(pod = ?key(&entry.pod), error = %e, "cannot record why the pod waits");
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
    let uid = uid(pod);
    root.join(namespace)
        .join(format!("{name}-{}", &uid[..uid.len().min(8)]))
}

/// Writes the plan's files, starts its process in a process group of its own, and a task that
/// copies its output to the pod's log and reports its exit. Returns its pid.
fn spawn(
    options: &ProcessOptions,
    pod: &Pod,
    dir: &Path,
    plan: launch::Launch,
    tx: mpsc::UnboundedSender<Msg>,
) -> std::io::Result<u32> {
    for d in &plan.dirs {
        std::fs::create_dir_all(d)?;
    }
    for (path, text) in &plan.files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    let (namespace, name) = key(pod);
    let uid = uid(pod);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let log = Arc::new(options.logs.create(
        &namespace,
        &name,
        &uid,
        &container,
        &dir.join(format!("{container}.log")),
    )?);
    let mut env = plan.env.clone();
    env.entry("HOME".to_owned())
        .or_insert_with(|| plan.cwd.to_string_lossy().into_owned());
    let mut child = tokio::process::Command::new(&plan.program)
        .args(&plan.args)
        .env_clear()
        .envs(&env)
        .current_dir(&plan.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        // If the simulator itself goes, its processes go too.
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process ended before it had an id"))?;
    let out = child
        .stdout
        .take()
        .map(|o| pump(o, Stream::Stdout, log.clone()));
    let err = child
        .stderr
        .take()
        .map(|e| pump(e, Stream::Stderr, log.clone()));
    tokio::spawn(async move {
        let code = match child.wait().await {
            Ok(status) => exit_code(status),
            Err(e) => {
                warn!(pid, error = %e, "cannot wait for a pod's process");
                128
            }
        };
        // A container ends with its main process: so do the others of its group.
        signal_group(pid, libc::SIGKILL);
        let drain = async {
            if let Some(o) = out {
                let _ = o.await;
            }
            if let Some(e) = err {
                let _ = e.await;
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
        log.finish();
        let _ = tx.send(Msg::Exited { uid, code });
    });
    Ok(pid)
}

/// Copies `reader`'s lines to the log until it ends.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    stream: Stream,
    log: Arc<LogWriter>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    if let Err(e) = log.line(stream, line, Timestamp::now()) {
                        warn!(error = %e, "cannot write a pod's log");
                        break;
                    }
                }
            }
        }
    })
}

/// The exit code as a container runtime reports it: 128 + the signal when killed.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(128)
}

/// Sends `signal` to every process of the group led by `pid`.
fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory effects; a negative pid names the process group the
    // runtime made for this pod (`process_group(0)`), and a group already gone is ESRCH.
    unsafe {
        libc::kill(-pgid, signal);
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
        match api.delete(&name, &params).await {
            Ok(_) => {}
            // Already gone (a delete with grace 0 by someone else).
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => warn!(pod = name.as_str(), error = %e, "cannot remove a stopped pod"),
        }
    });
}

async fn patch_status(
    client: &Client,
    pod: &Pod,
    patch: &serde_json::Value,
) -> Result<(), kube::Error> {
    let (namespace, name) = key(pod);
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
}

fn container_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

fn image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The status of a pod whose container waits for `reason`.
pub fn waiting_status(pod: &Pod, reason: &str, message: &str) -> serde_json::Value {
    json!({"status": {
        "phase": "Pending",
        "containerStatuses": [{
            "name": container_name(pod), "image": image(pod), "imageID": "", "ready": false,
            "restartCount": 0, "started": false,
            "state": {"waiting": {"reason": reason, "message": message}},
        }],
    }})
}

/// The status of a pod whose process `pid` runs at `ip` since `started`.
pub fn running_status(pod: &Pod, ip: Ipv4Addr, pid: u32, started: Timestamp) -> serde_json::Value {
    let now = started.to_string();
    json!({"status": {
        "phase": "Running",
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "containerStatuses": [{
            "name": container_name(pod), "image": image(pod), "imageID": "",
            "containerID": format!("process://{pid}"), "ready": true, "restartCount": 0,
            "started": true, "state": {"running": {"startedAt": now}},
        }],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }})
}

/// The status of a pod whose process ended with `code` at `finished`.
pub fn ended_status(
    pod: &Pod,
    ip: Ipv4Addr,
    pid: u32,
    started: Timestamp,
    code: i32,
    finished: Timestamp,
) -> serde_json::Value {
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let finished = finished.to_string();
    json!({"status": {
        "phase": phase,
        "podIP": ip.to_string(),
        "containerStatuses": [{
            "name": container_name(pod), "image": image(pod), "imageID": "",
            "containerID": format!("process://{pid}"), "ready": false, "restartCount": 0,
            "started": false, "state": {"terminated": {
                "exitCode": code, "reason": reason, "startedAt": started.to_string(),
                "finishedAt": finished, "containerID": format!("process://{pid}")}},
        }],
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": finished}],
    }})
}

/// The status of a pod whose process could not be started.
pub fn start_error_status(pod: &Pod, message: &str, at: Timestamp) -> serde_json::Value {
    let at = at.to_string();
    json!({"status": {
        "phase": "Failed",
        "message": message,
        "containerStatuses": [{
            "name": container_name(pod), "image": image(pod), "imageID": "", "ready": false,
            "restartCount": 0, "started": false, "state": {"terminated": {
                "exitCode": 128, "reason": "StartError", "message": message,
                "startedAt": at, "finishedAt": at}},
        }],
    }})
}
