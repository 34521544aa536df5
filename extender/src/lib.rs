//! sparkgang-extender: the kube-scheduler extender that places Spark applications as gangs.
//!
//! The binary is a thin shell around [`start`]; the simulator and tests start the same server
//! in-process. Decisions are made by `sparkgang_common::cluster::ClusterState`; this crate
//! translates HTTP, watches and API writes.

pub mod api_calls;
pub mod clock;
pub mod cluster_metrics;
pub mod config;
pub mod explain;
pub mod explain_auth;
pub mod freshness;
pub mod gate;
pub mod input;
pub mod json_depth;
pub mod leader;
pub mod metrics;
pub mod preempt;
pub mod queue_metrics;
pub mod queue_status;
pub mod server;
pub mod term;
pub mod watch;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long requests in flight get to finish when a listener stops.
const GRACE: Duration = Duration::from_secs(10);

use sparkgang_common::cluster::{ClusterState, Effect};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info};

use crate::clock::SharedClock;
use crate::config::ExtenderConfig;
use crate::freshness::{Freshness, Watched};
use crate::metrics::Metrics;

/// What the HTTP handlers and background tasks share.
pub struct Extender {
    /// The cluster state; `None` while this replica does not lead.
    pub state: Mutex<Option<ClusterState>>,
    pub metrics: Metrics,
    pub clock: SharedClock,
    /// The current term's writer; `None` between terms (effects are then dropped: the next
    /// term rebuilds them from the API).
    effects: Mutex<Option<mpsc::UnboundedSender<Effect>>>,
    leading: AtomicBool,
    synced: AtomicBool,
    freshness: Mutex<Freshness>,
    /// With leader election: when the lease was last renewed, and how old that may get
    /// before this replica stops deciding (`renewDeadline`).
    lease: Mutex<Option<(Instant, Duration)>>,
}

impl Extender {
    fn new(metrics: Metrics, clock: SharedClock) -> Extender {
        Extender {
            state: Mutex::new(None),
            metrics,
            clock,
            effects: Mutex::new(None),
            leading: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            freshness: Mutex::default(),
            lease: Mutex::new(None),
        }
    }

    /// Why filter calls cannot be answered now, if they cannot.
    pub fn not_ready_reason(&self) -> Option<String> {
        let now = Instant::now();
        if !self.leading.load(Ordering::Acquire) {
            return Some("not the leader: waiting for the lease".to_owned());
        }
        if let Ok(Some((renewed, deadline))) = self.lease.lock().as_deref()
            && now.saturating_duration_since(*renewed) > *deadline
        {
            return Some(format!(
                "the lease was last renewed {:.1}s ago, past renewDeadline {deadline:?}: not deciding",
                now.saturating_duration_since(*renewed).as_secs_f64()
            ));
        }
        if !self.synced.load(Ordering::Acquire) {
            return Some("caches not synced yet".to_owned());
        }
        self.freshness
            .lock()
            .ok()
            .and_then(|f| f.not_ready_reason(now))
    }

    /// Runs `f` on the state when this replica may decide (it leads, its caches are synced
    /// and fresh); otherwise says why not. Every handler that reads or decides goes through it.
    pub fn decide<R>(&self, f: impl FnOnce(&mut ClusterState) -> R) -> Result<R, NotDeciding> {
        let Ok(mut guard) = self.state.lock() else {
            return Err(NotDeciding::Poisoned);
        };
        match guard.as_mut() {
            Some(state) if self.not_ready_reason().is_none() => Ok(f(state)),
            _ => Err(NotDeciding::NotReady(
                self.not_ready_reason()
                    .unwrap_or_else(|| "not ready".to_owned()),
            )),
        }
    }

    /// Runs `f` on the state; `None` before the state exists.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut ClusterState) -> R) -> Option<R> {
        let mut guard = self.state.lock().ok()?;
        guard.as_mut().map(f)
    }

    /// Queues effects for the writer of the current term.
    pub fn submit(&self, effects: impl IntoIterator<Item = Effect>) {
        let Ok(writer) = self.effects.lock() else {
            return;
        };
        if let Some(tx) = writer.as_ref() {
            for e in effects {
                // A closed channel means the term is ending; the next one rebuilds from the API.
                let _ = tx.send(e);
            }
        }
    }

    /// An extender around a ready state, leading and synced, without watches or API writes:
    /// effects go to the returned receiver. For tests and benchmarks of the HTTP path.
    pub fn standalone(
        state: ClusterState,
        clock: SharedClock,
    ) -> (Arc<Extender>, mpsc::UnboundedReceiver<Effect>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ext = Extender::new(Metrics::new(), clock);
        if let Ok(mut s) = ext.state.lock() {
            *s = Some(state);
        }
        if let Ok(mut e) = ext.effects.lock() {
            *e = Some(tx);
        }
        ext.leading.store(true, Ordering::Release);
        ext.synced.store(true, Ordering::Release);
        (Arc::new(ext), rx)
    }

    pub(crate) fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    pub(crate) fn watch_delivering(&self, w: Watched) {
        if let Ok(mut f) = self.freshness.lock() {
            f.delivering(w);
        }
        self.metrics.cache_stale(w, false);
    }

    pub(crate) fn watch_failed(&self, w: Watched, why: String) {
        if let Ok(mut f) = self.freshness.lock() {
            f.failed(w, why, Instant::now());
        }
        self.metrics.cache_stale(w, true);
    }

    /// How long the longest-stale cache has been stale (zero when all are fresh).
    pub(crate) fn stale_for(&self) -> Duration {
        self.freshness
            .lock()
            .ok()
            .and_then(|f| f.stale(Instant::now()).map(|(_, d, _)| d))
            .unwrap_or_default()
    }

    pub(crate) fn lease_renewed(&self, at: Instant, deadline: Duration) {
        if let Ok(mut l) = self.lease.lock() {
            *l = Some((at, deadline));
        }
    }
}

/// Why [`Extender::decide`] did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDeciding {
    /// A thread panicked holding the state lock.
    Poisoned,
    /// Not leading, not synced, or a cache is stale: the reason.
    NotReady(String),
}

impl axum::response::IntoResponse for NotDeciding {
    fn into_response(self) -> axum::response::Response {
        use axum::http::StatusCode;
        match self {
            NotDeciding::Poisoned => {
                (StatusCode::INTERNAL_SERVER_ERROR, "state lock poisoned").into_response()
            }
            NotDeciding::NotReady(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
        }
    }
}

/// A running extender.
pub struct Running {
    pub filter_address: SocketAddr,
    pub metrics_address: SocketAddr,
    /// The explain listener, when configured (`explain.listenAddress`).
    pub explain_address: Option<SocketAddr>,
    pub extender: Arc<Extender>,
    listeners: Vec<JoinHandle<()>>,
    stop_listeners: tokio::sync::watch::Sender<bool>,
    stop_terms: tokio::sync::watch::Sender<bool>,
    main: JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Waits until the extender stops (after [`Running::shutdown`], or a failure).
    pub async fn wait(self) -> Result<(), StartError> {
        match self.main.await {
            Ok(r) => r,
            Err(e) => Err(StartError::Task(e.to_string())),
        }
    }

    /// Stops cleanly, as on SIGTERM: the listeners stop accepting and answer the requests in
    /// flight (up to 10 s), queued writes finish, and the lease is released so a follower
    /// leads at once.
    pub async fn shutdown(self) -> Result<(), StartError> {
        let _ = self.stop_listeners.send(true);
        for l in self.listeners {
            let _ = l.await;
        }
        let _ = self.stop_terms.send(true);
        match self.main.await {
            Ok(r) => r,
            Err(e) => Err(StartError::Task(e.to_string())),
        }
    }

    /// Stops every task at once, like a crash: in-flight writes are lost, the lease is kept
    /// until it expires.
    pub fn kill(self) {
        self.main.abort();
        for l in self.listeners {
            l.abort();
        }
    }
}

/// Why the extender could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
    #[error("a task failed: {0}")]
    Task(String),
}

/// The User-Agent of the extender's API requests (in the API server's audit log).
pub const USER_AGENT: &str = concat!("sparkgang-extender/", env!("CARGO_PKG_VERSION"));

/// The two clients: every request times out after `requestTimeout`; watches have no read
/// timeout (the watch loop judges their silence); neither retries on its own. Both send [`USER_AGENT`] unless `kube`
/// names another.
fn clients(mut kube: kube::Config, config: &ExtenderConfig) -> Result<term::Clients, StartError> {
    if !kube
        .headers
        .iter()
        .any(|(name, _)| name == axum::http::header::USER_AGENT)
    {
        kube.headers.push((
            axum::http::header::USER_AGENT,
            axum::http::HeaderValue::from_static(USER_AGENT),
        ));
    }
    let timeout = config.api_server.request_timeout;
    // kube-rs retries 429, 503 and 504 by itself by default, up to 15 times with backoff up
    // to 1000 s: a call could outlast `requestTimeout` by minutes, and an eviction that a
    // PodDisruptionBudget refuses (429) would hang its writer task. The extender retries
    // writes itself (writer.rs) and watches back off on their own.
    kube.default_retry = false;
    kube.connect_timeout = Some(timeout);
    kube.write_timeout = Some(timeout);
    let mut requests = kube.clone();
    requests.read_timeout = Some(timeout);
    requests.reset_reader_on_write = true;
    let mut watches = kube;
    watches.read_timeout = None;
    let build =
        |c: kube::Config| kube::Client::try_from(c).map_err(|e| StartError::Client(e.to_string()));
    Ok(term::Clients {
        requests: build(requests)?,
        watches: build(watches)?,
    })
}

/// Starts the extender: listeners first (health answers at once, readiness after leading and
/// syncing), then terms of leadership one after another until [`Running::shutdown`].
pub async fn start(
    config: ExtenderConfig,
    kube: kube::Config,
    clock: SharedClock,
    identity: String,
) -> Result<Running, StartError> {
    let scheduler = config
        .scheduler_config()
        .map_err(|(k, m)| StartError::Config(format!("{k}: {m}")))?;
    let clients = clients(kube, &config)?;
    let ext = Arc::new(Extender::new(Metrics::new(), clock));
    let listen = |address: SocketAddr| async move {
        TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Listen { address, source })
    };
    let filter_listener =
        sparkgang_serve::bind(config.filter_listen_address, config.connections.backlog()).map_err(
            |source| StartError::Listen {
                address: config.filter_listen_address,
                source,
            },
        )?;
    let metrics_listener = listen(config.metrics_listen_address).await?;
    let filter_address = filter_listener
        .local_addr()
        .map_err(|source| StartError::Listen {
            address: config.filter_listen_address,
            source,
        })?;
    let metrics_address = metrics_listener
        .local_addr()
        .map_err(|source| StartError::Listen {
            address: config.metrics_listen_address,
            source,
        })?;
    let (stop_listeners, stopping) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut listeners = Vec::new();
    // The unauthenticated explain API only where nobody but the pod reaches it.
    let open_explain = filter_address.ip().is_loopback();
    if !open_explain {
        tracing::warn!(
            %filter_address,
            "filterListenAddress is not loopback: the unauthenticated explain API is off on it"
        );
    }
    let filter_app = server::filter_router_with(ext.clone(), open_explain)
        .layer(sparkgang_serve::body_read_timeout(&config.connections));
    let filter_listener = sparkgang_serve::Listener {
        listener: filter_listener,
        tls: sparkgang_serve::Tls::Plain,
        limits: config.connections,
        stats: ext.metrics.connections.clone(),
    };
    let stop = until_stopped(stopping.clone());
    listeners.push(tokio::spawn(async move {
        if let Err(e) = sparkgang_serve::serve(filter_listener, filter_app, stop, GRACE).await {
            error!(error = %e, "filter server stopped");
        }
    }));
    let metrics_app = server::metrics_router(ext.clone());
    // Prometheus and the kubelet's probes: the same limits, counters of its own.
    let metrics_listener = sparkgang_serve::Listener {
        listener: metrics_listener,
        tls: sparkgang_serve::Tls::Plain,
        limits: config.connections,
        stats: Arc::default(),
    };
    let stop = until_stopped(stopping);
    listeners.push(tokio::spawn(async move {
        if let Err(e) = sparkgang_serve::serve(metrics_listener, metrics_app, stop, GRACE).await {
            error!(error = %e, "metrics server stopped");
        }
    }));
    let explain_address = match config.explain.listen_address {
        None => None,
        Some(address) => {
            let listener = listen(address).await?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Listen { address, source })?;
            let reviewer = (config.explain.authentication
                == config::ExplainAuthentication::Kubernetes)
                .then(|| {
                    Arc::new(explain_auth::Reviewer::new(
                        clients.requests.clone(),
                        config.explain.cache_ttl,
                    ))
                });
            let app = explain::router(ext.clone(), reviewer)
                .layer(sparkgang_serve::body_read_timeout(&config.connections));
            let listener = sparkgang_serve::Listener {
                listener,
                tls: sparkgang_serve::Tls::Plain,
                limits: config.connections,
                stats: Arc::default(),
            };
            let stop = until_stopped(stop_listeners.subscribe());
            listeners.push(tokio::spawn(async move {
                if let Err(e) = sparkgang_serve::serve(listener, app, stop, GRACE).await {
                    error!(error = %e, "explain server stopped");
                }
            }));
            Some(bound)
        }
    };
    info!(%filter_address, %metrics_address, ?explain_address, "listening");

    let recorder = kube::runtime::events::Recorder::new(
        clients.requests.clone(),
        kube::runtime::events::Reporter {
            controller: "sparkgang-extender".to_owned(),
            instance: Some(identity.clone()),
        },
    );
    let lease = config.lease_settings(identity);
    let settings = term::TermSettings {
        writer: writer::WriterSettings {
            attempts: config.write_attempts,
            demands: config.demands.enabled,
        },
        gate: gate::GateSettings {
            timeout: config.gate_timeout,
            gpus: scheduler.gpus.clone(),
            default_demand: scheduler.default_demand,
        },
        watch: watch::WatchSettings {
            request_timeout: config.api_server.request_timeout,
            watch_timeout: config.api_server.watch_timeout,
        },
        stale_step_down_after: config.api_server.stale_step_down_after,
        grace: GRACE,
        queue_status_interval: config.queues.status_interval,
        scheduler,
    };
    let (stop_terms, mut stopped) = tokio::sync::watch::channel(false);
    let main_ext = ext.clone();
    let main = tokio::spawn(async move {
        let ext = main_ext;
        loop {
            if let Some(lease) = &lease {
                tokio::select! {
                    () = leader::acquire(clients.requests.clone(), lease) => {}
                    _ = stopped.wait_for(|s| *s) => return Ok(()),
                }
                ext.lease_renewed(Instant::now(), lease.renew_deadline);
            }
            let why = term::serve(
                &clients,
                &ext,
                &settings,
                &recorder,
                lease.as_ref(),
                &mut stopped,
            )
            .await;
            match why {
                term::StepDown::Shutdown => {
                    if let Some(lease) = &lease {
                        leader::release(clients.requests.clone(), lease).await;
                    }
                    return Ok(());
                }
                term::StepDown::LeaseLost(lost) => {
                    error!(error = %lost, "stepped down: lease lost; campaigning again");
                }
                term::StepDown::Stale(why) => {
                    error!(why, "stepped down: caches stale; campaigning again");
                    if let Some(lease) = &lease {
                        leader::release(clients.requests.clone(), lease).await;
                        // Give a replica with a working connection the first chance.
                        tokio::time::sleep(lease.renew_interval).await;
                    }
                }
            }
        }
    });
    Ok(Running {
        filter_address,
        metrics_address,
        explain_address,
        extender: ext,
        listeners,
        stop_listeners,
        stop_terms,
        main,
    })
}
