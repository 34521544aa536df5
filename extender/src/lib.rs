//! sparkgang-extender: the kube-scheduler extender that places Spark applications as gangs.
//!
//! The binary is a thin shell around [`start`]; the simulator and tests start the same server
//! in-process. Decisions are made by `sparkgang_common::cluster::ClusterState`; this crate
//! translates HTTP, watches and API writes.

pub mod api_calls;
pub mod clock;
pub mod config;
pub mod gate;
pub mod input;
pub mod json_depth;
pub mod leader;
pub mod metrics;
pub mod preempt;
pub mod server;
pub mod watch;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How long requests in flight get to finish when a listener stops.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use sparkgang_common::cluster::{ClusterState, Effect};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::clock::SharedClock;
use crate::config::ExtenderConfig;
use crate::metrics::Metrics;

/// What the HTTP handlers and background tasks share.
pub struct Extender {
    /// The cluster state; `None` until this replica leads.
    pub state: Mutex<Option<ClusterState>>,
    pub metrics: Metrics,
    pub clock: SharedClock,
    effects: mpsc::UnboundedSender<Effect>,
    leading: AtomicBool,
    synced: AtomicBool,
}

impl Extender {
    /// Why filter calls cannot be answered now, if they cannot.
    pub fn not_ready_reason(&self) -> Option<String> {
        if !self.leading.load(Ordering::Acquire) {
            Some("not the leader: waiting for the lease".to_owned())
        } else if !self.synced.load(Ordering::Acquire) {
            Some("caches not synced yet".to_owned())
        } else {
            None
        }
    }

    /// Runs `f` on the state; `None` before the state exists.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut ClusterState) -> R) -> Option<R> {
        let mut guard = self.state.lock().ok()?;
        guard.as_mut().map(f)
    }

    /// Queues effects for the writer.
    pub fn submit(&self, effects: impl IntoIterator<Item = Effect>) {
        for e in effects {
            // The writer lives as long as the extender; a closed channel means shutdown.
            let _ = self.effects.send(e);
        }
    }

    /// An extender around a ready state, leading and synced, without watches or API writes:
    /// effects go to the returned receiver. For tests and benchmarks of the HTTP path.
    pub fn standalone(
        state: ClusterState,
        clock: SharedClock,
    ) -> (Arc<Extender>, mpsc::UnboundedReceiver<Effect>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ext = Arc::new(Extender {
            state: Mutex::new(Some(state)),
            metrics: Metrics::new(),
            clock,
            effects: tx,
            leading: AtomicBool::new(true),
            synced: AtomicBool::new(true),
        });
        (ext, rx)
    }

    pub(crate) fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }
}

/// A running extender.
pub struct Running {
    pub filter_address: SocketAddr,
    pub metrics_address: SocketAddr,
    pub extender: Arc<Extender>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    main: JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Waits until the extender stops (it only stops on a lost lease).
    pub async fn wait(self) -> Result<(), StartError> {
        match self.main.await {
            Ok(r) => r,
            Err(e) => Err(StartError::Task(e.to_string())),
        }
    }

    /// Stops every task at once, like a crash: in-flight writes are lost.
    pub fn kill(self) {
        self.main.abort();
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
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
    #[error(transparent)]
    LeaseLost(#[from] leader::LeaseLost),
    #[error("a task failed: {0}")]
    Task(String),
}

/// Starts the extender: listeners first (health answers at once, readiness after leading and
/// syncing), then leader election, then watches, the writer and the gate controller.
pub async fn start(
    config: ExtenderConfig,
    client: Client,
    clock: SharedClock,
    identity: String,
) -> Result<Running, StartError> {
    let scheduler = config
        .scheduler_config()
        .map_err(|(k, m)| StartError::Config(format!("{k}: {m}")))?;
    let (effects_tx, effects_rx) = mpsc::unbounded_channel();
    let ext = Arc::new(Extender {
        state: Mutex::new(None),
        metrics: Metrics::new(),
        clock,
        effects: effects_tx,
        leading: AtomicBool::new(false),
        synced: AtomicBool::new(false),
    });
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
    let mut tasks = Vec::new();
    let filter_app = server::filter_router(ext.clone())
        .layer(sparkgang_serve::body_read_timeout(&config.connections));
    let filter_listener = sparkgang_serve::Listener {
        listener: filter_listener,
        tls: sparkgang_serve::Tls::Plain,
        limits: config.connections,
        stats: ext.metrics.connections.clone(),
    };
    tasks.push(tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = sparkgang_serve::serve(filter_listener, filter_app, forever, GRACE).await {
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
    tasks.push(tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = sparkgang_serve::serve(metrics_listener, metrics_app, forever, GRACE).await
        {
            error!(error = %e, "metrics server stopped");
        }
    }));
    info!(%filter_address, %metrics_address, "listening");

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sparkgang-extender".to_owned(),
            instance: Some(identity.clone()),
        },
    );
    let lease = config
        .leader_election
        .enabled
        .then(|| leader::LeaseSettings {
            name: config.leader_election.lease_name.clone(),
            namespace: config
                .leader_election
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_owned()),
            identity: identity.clone(),
            duration: config.leader_election.lease_duration,
            renew_interval: config.leader_election.renew_interval,
        });
    let main_ext = ext.clone();
    let tasks = Arc::new(Mutex::new(tasks));
    let spawned = tasks.clone();
    let keep = move |t: JoinHandle<()>| {
        if let Ok(mut v) = spawned.lock() {
            v.push(t);
        }
    };
    let main = tokio::spawn(async move {
        let ext = main_ext;
        if let Some(lease) = &lease {
            leader::acquire(client.clone(), lease).await;
        }
        if let Ok(mut guard) = ext.state.lock() {
            *guard = Some(ClusterState::new(scheduler.clone()));
        }
        ext.leading.store(true, Ordering::Release);
        ext.metrics.leader.set(1);
        let (gated_tx, gated_rx) = mpsc::unbounded_channel();
        keep(tokio::spawn(writer::run(
            client.clone(),
            ext.clone(),
            effects_rx,
            writer::WriterSettings {
                attempts: config.write_attempts,
                demands: config.demands.enabled,
            },
            recorder.clone(),
        )));
        keep(tokio::spawn(gate::run(
            client.clone(),
            ext.clone(),
            gated_rx,
            gate::GateSettings {
                timeout: config.gate_timeout,
                gpus: scheduler.gpus.clone(),
                default_demand: scheduler.default_demand,
            },
            recorder,
        )));
        keep(tokio::spawn(watch::run(
            client.clone(),
            ext.clone(),
            gated_tx,
        )));
        match &lease {
            Some(lease) => {
                let lost = leader::hold(client, lease).await;
                ext.leading.store(false, Ordering::Release);
                ext.metrics.leader.set(0);
                Err(StartError::LeaseLost(lost))
            }
            None => {
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    });
    Ok(Running {
        filter_address,
        metrics_address,
        extender: ext,
        tasks,
        main,
    })
}
