//! An in-memory Kubernetes API server on loopback HTTP, speaking the wire protocol kube-rs and fabric8 use.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sparkgang_sim::apiserver::{ServerConfig, start};
//! let server = start(ServerConfig::default().with_crd_dir("deploy/crds")?).await?;
//! let url = server.url(); // http://127.0.0.1:<port>: point kube-rs / fabric8 at it
//! let pods = server.store().resource("", "v1", "pods").unwrap();
//! println!("{} pods", server.store().count(&pods));
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layers: [`store`] (objects, resourceVersions, history, GC; synchronous), [`ops`] (the
//! write pipeline with [`hooks`] for admission), [`http`] (REST paths, JSON, watch
//! streams), with [`resources`] the data-driven resource table. See `docs/simulator.md`.

pub mod clock;
pub mod container_logs;
pub mod conversion;
pub mod discovery;
pub mod errors;
pub mod eviction;
mod extras;
pub mod faults;
pub mod hooks;
pub mod http;
pub mod logs;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod priority;
pub mod proxy;
pub mod resources;
mod responses;
pub mod reviews;
pub mod selectors;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;
mod watch_response;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use errors::ApiError;
pub use faults::{Clients, FaultKind, Faults};
pub use hooks::{
    AdmissionHook, AdmissionRequest, AdmissionVerdict, Hooks, Operation, RequestLog,
    RequestObserver, RequestRecord, admission_fn,
};
pub use ops::{Api, Caller};
pub use patch::PatchType;
pub use resources::{ResourceDef, ResourceTable, Subresource};
pub use selectors::{FieldSelector, LabelSelector, Selectors};
pub use store::{DeleteOptions, Propagation, Store, StoreConfig, Stored, WriteOptions};
pub use watch::{Watch, WatchItem, WatchParams, WatchStart};

/// How to start the server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port (see [`ApiServer::address`]).
    pub bind: SocketAddr,
    pub clock: SharedClock,
    /// CustomResourceDefinitions to serve from the start (JSON form).
    pub crds: Vec<Value>,
    /// Events kept per resource for resuming watches; older resourceVersions get 410 Gone.
    pub history: usize,
    /// Running pods are deleted gracefully, for their kubelet to finish
    /// ([`StoreConfig::graceful_pod_deletion`]).
    pub graceful_pod_deletion: bool,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK when idle.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds` (the real server: 30–60 min).
    pub default_watch_timeout: Duration,
    pub max_body_bytes: usize,
    pub admission: Vec<Arc<dyn AdmissionHook>>,
    pub observers: Vec<Arc<dyn RequestObserver>>,
    /// What each connection may do (`sparkgang-serve`): slow, idle and surplus clients are let
    /// go as by the extender and the webhook; a watch in progress is never idle.
    pub limits: sparkgang_serve::Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Arc::new(SystemClock),
            crds: Vec::new(),
            history: StoreConfig::default().history,
            graceful_pod_deletion: false,
            bookmark_interval: Duration::from_secs(10),
            default_watch_timeout: Duration::from_secs(1800),
            max_body_bytes: 16 << 20,
            admission: Vec::new(),
            observers: Vec::new(),
            limits: sparkgang_serve::Limits::default(),
        }
    }
}

/// Every document of a (multi-document) YAML text, as JSON values.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

impl ServerConfig {
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves the CustomResourceDefinitions in a YAML text (one or more documents).
    pub fn with_crd_yaml(mut self, yaml: &str) -> Result<Self, serde_yaml::Error> {
        self.crds.extend(
            yaml_documents(yaml)?.into_iter().filter(|d| {
                d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            }),
        );
        Ok(self)
    }

    /// Serves every CustomResourceDefinition in the `*.yaml` / `*.yml` files of `dir`
    /// (e.g. the repository's `deploy/crds`).
    pub fn with_crd_dir(mut self, dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p)?;
            self = self.with_crd_yaml(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", p.display()),
                )
            })?;
        }
        Ok(self)
    }

    pub fn with_history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    pub fn with_bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    pub fn with_admission(mut self, hook: Arc<dyn AdmissionHook>) -> Self {
        self.admission.push(hook);
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observers.push(observer);
        self
    }
}

/// A running API server.
pub struct ApiServer {
    address: SocketAddr,
    store: Store,
    api: Api,
    hooks: Arc<Hooks>,
    faults: Faults,
    proxies: proxy::ServiceProxies,
    identities: reviews::Identities,
    logs: container_logs::ContainerLogs,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the server: binds `config.bind`, registers the CRDs, serves until
/// [`ApiServer::shutdown`] (or drop).
pub async fn start(config: ServerConfig) -> std::io::Result<ApiServer> {
    let mut table = ResourceTable::builtin();
    for crd in &config.crds {
        table.add_crd(crd).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad CRD: {e}"))
        })?;
    }
    let store = Store::new(
        table,
        config.clock.clone(),
        StoreConfig {
            history: config.history,
            graceful_pod_deletion: config.graceful_pod_deletion,
        },
    );
    // The CRDs are also objects, as on a real cluster.
    if let Some(def) = store.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions") {
        for crd in &config.crds {
            let mut crd = crd.clone();
            if let Some(m) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            if let Err(e) = store.create(&def, "", crd)
                && e.code != 409
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad CRD: {e}"),
                ));
            }
        }
    }
    let hooks = Arc::new(Hooks::default());
    for h in config.admission {
        hooks.add_admission(h);
    }
    for o in config.observers {
        hooks.add_observer(o);
    }
    let api = Api::new(store.clone(), hooks.clone());
    let faults = Faults::default();
    let proxies = proxy::ServiceProxies::default();
    let identities = reviews::Identities::default();
    let logs = container_logs::ContainerLogs::default();
    let listener = sparkgang_serve::bind(config.bind, config.limits.backlog())?;
    let address = listener.local_addr()?;
    let state = http::AppState {
        api: api.clone(),
        store: store.clone(),
        hooks: hooks.clone(),
        settings: Arc::new(http::HttpSettings {
            bookmark_interval: config.bookmark_interval,
            default_watch_timeout: config.default_watch_timeout,
            max_body_bytes: config.max_body_bytes,
        }),
        address,
        faults: faults.clone(),
        proxies: proxies.clone(),
        identities: identities.clone(),
        logs: logs.clone(),
    };
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let app = http::router(state).layer(sparkgang_serve::body_read_timeout(&config.limits));
    let listener = sparkgang_serve::Listener {
        listener,
        tls: sparkgang_serve::Tls::Plain,
        limits: config.limits,
        stats: Arc::default(),
    };
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) =
            sparkgang_serve::serve(listener, app, shutdown, Duration::from_secs(5)).await
        {
            tracing::warn!(error = %e, "the API server stopped with an error");
        }
    });
    tracing::info!(%address, "in-memory API server listening");
    Ok(ApiServer {
        address,
        store,
        api,
        hooks,
        faults,
        proxies,
        identities,
        logs,
        stop,
        task: Some(task),
    })
}

impl ApiServer {
    /// The bound address (`127.0.0.1:<port>`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`: the `cluster_url` / `spark.master` `k8s://` target.
    /// Bearer tokens and grants that `TokenReview` and `SubjectAccessReview` answer from.
    pub fn identities(&self) -> &reviews::Identities {
        &self.identities
    }

    /// The output of pods that run as local processes, for `pods/log`.
    pub fn container_logs(&self) -> &container_logs::ContainerLogs {
        &self.logs
    }

    /// Service backends for the `services/proxy` subresource.
    pub fn service_proxies(&self) -> &proxy::ServiceProxies {
        &self.proxies
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The objects, for in-process inspection and writes without admission.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The API pipeline in process (admission hooks included).
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The hooks; add admission hooks and observers while the server runs.
    pub fn hooks(&self) -> &Arc<Hooks> {
        &self.hooks
    }

    /// The faults this server injects ([`faults`]): make it hang, fail or drop watches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Adds an admission hook (runs after the ones added before).
    pub fn add_admission_hook(&self, hook: Arc<dyn AdmissionHook>) {
        self.hooks.add_admission(hook);
    }

    /// Adds a request observer.
    pub fn add_observer(&self, observer: Arc<dyn RequestObserver>) {
        self.hooks.add_observer(observer);
    }

    /// Stops serving: ends open watches, closes connections, waits (at most 5 s).
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn stop_now(&self) {
        self.store.disconnect_watches();
        let _ = self.stop.send(true);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.stop_now();
        }
    }
}
