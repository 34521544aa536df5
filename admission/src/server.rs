//! The HTTPS server (`/mutate`, `/healthz`, `/readyz`), the metrics server, and their lifecycle.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::AdmissionConfig;
use crate::drivers::DriverReader;
use crate::metrics::{Metrics, ReviewOutcome};
use crate::mutation::{ApiReads, DriverClass, MESSAGE_PREFIX, MutationConfig, QueueLookup};
use crate::queues::QueueReader;
use crate::review;
use crate::tls::{CertReloader, TlsError};
use sparkgang_serve::{Listener, Tls};

/// The largest AdmissionReview body accepted (the API server's own limit is 3 MiB objects).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How long in-flight requests get to finish at shutdown.
pub const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(10);

/// What the request handlers share.
#[derive(Debug)]
pub struct AppState {
    pub mutation: MutationConfig,
    pub metrics: Arc<Metrics>,
    /// False once shutdown has begun: `/readyz` then fails while `/mutate` still answers.
    pub ready: AtomicBool,
    /// Reads executors' drivers for their priority class; `None` without API access.
    pub drivers: Option<DriverReader>,
    /// Reads the queues drivers name; `None` without API access or with `checkQueues: false`.
    pub queues: Option<QueueReader>,
}

impl AppState {
    pub fn new(mutation: MutationConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_drivers(mutation, metrics, None)
    }

    pub fn with_drivers(
        mutation: MutationConfig,
        metrics: Arc<Metrics>,
        drivers: Option<DriverReader>,
    ) -> Arc<Self> {
        Arc::new(AppState {
            mutation,
            metrics,
            ready: AtomicBool::new(true),
            drivers,
            queues: None,
        })
    }
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: key {key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {address} ({what}): {cause}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        cause: std::io::Error,
    },
}

/// A server that stopped on its own.
#[derive(Debug, thiserror::Error)]
#[error("the {what} server failed: {cause}")]
pub struct ServeError {
    pub what: &'static str,
    pub cause: std::io::Error,
}

/// The routes of the HTTPS port: `POST /mutate`, `GET /healthz`, `GET /readyz`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(ok))
        .route("/readyz", get(readyz))
        .with_state(state)
        // A last resort: the handlers do not panic on any input (see the property tests).
        .layer(CatchPanicLayer::new())
}

/// The routes of the metrics port: `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
        .layer(CatchPanicLayer::new())
}

async fn ok() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ok\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        metrics.encode(),
    )
        .into_response()
}

fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        message + "\n",
    )
        .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

async fn mutate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let metrics = &state.metrics;
    let bad = |status: StatusCode, message: String| {
        metrics.review(None, ReviewOutcome::bad_request, started.elapsed());
        tracing::debug!(status = status.as_u16(), %message, "rejected a /mutate request");
        plain(status, message)
    };
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        let given = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{MESSAGE_PREFIX}content type {given:?} is not application/json"),
        );
    }
    let too_large = || format!("{MESSAGE_PREFIX}the body is larger than {MAX_BODY_BYTES} bytes");
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = match read_body(body, declared).await {
        BodyRead::Complete(bytes) => bytes,
        BodyRead::TooLarge => {
            let mut response = bad(StatusCode::PAYLOAD_TOO_LARGE, too_large());
            if parts.version < axum::http::Version::HTTP_2 {
                // The rest of the body was not read: this connection cannot be reused.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
        }
        BodyRead::Failed(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("{MESSAGE_PREFIX}cannot read the body: {e}"),
            );
        }
    };
    let parsed = match review::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e.message),
    };
    let driver = match (&state.drivers, parsed.driver_to_look_up()) {
        (Some(reader), Some((namespace, name))) => {
            reader.priority_class(namespace, name, metrics).await
        }
        _ => DriverClass::Unknown,
    };
    let queue = match (&state.queues, parsed.queue_to_check()) {
        (Some(reader), Some(name)) if !name.trim().is_empty() => reader.lookup(name, metrics).await,
        _ => QueueLookup::Unknown,
    };
    let answer = review::answer(&state.mutation, parsed, &ApiReads { driver, queue });
    metrics.review(answer.role, answer.outcome, started.elapsed());
    if let Some(reason) = answer.denial_reason {
        metrics.denial(reason);
        tracing::info!(reason, pod = %answer.subject, "denied a pod");
    }
    if !answer.patch_kinds.is_empty() {
        metrics.patches(answer.patch_kinds.iter().copied());
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(answer.body),
    )
        .into_response()
}

/// How much of an oversized body is read and thrown away so that the client, still sending,
/// receives the 413 instead of a reset connection; beyond it (or after [`DRAIN_TIME`]) the
/// connection is simply closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

enum BodyRead {
    Complete(Bytes),
    TooLarge,
    Failed(String),
}

/// Reads at most [`MAX_BODY_BYTES`]; a single-frame body is returned without copying.
async fn read_body(mut body: Body, declared: Option<u64>) -> BodyRead {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    if declared.is_none_or(|n| n <= MAX_BODY_BYTES as u64) {
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => return BodyRead::Failed(e.to_string()),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    total += data.len() as u64;
                    if total > MAX_BODY_BYTES as u64 {
                        break;
                    }
                    frames.push(data);
                }
            }
        }
        if total <= MAX_BODY_BYTES as u64 {
            return BodyRead::Complete(match frames.len() {
                1 => frames.pop().unwrap_or_default(),
                _ => {
                    let mut all = BytesMut::with_capacity(total as usize);
                    for f in frames {
                        all.extend_from_slice(&f);
                    }
                    all.freeze()
                }
            });
        }
    }
    // Too large: drain (bounded in bytes and time), then answer 413.
    let drain = async {
        while total < DRAIN_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        total += data.len() as u64;
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    BodyRead::TooLarge
}

/// A running webhook: both servers and the certificate reloader.
#[derive(Debug)]
pub struct RunningServer {
    tls_addr: SocketAddr,
    metrics_addr: SocketAddr,
    metrics: Arc<Metrics>,
    state: Arc<AppState>,
    shutdown_delay: Duration,
    stop: watch::Sender<bool>,
    tls_task: JoinHandle<std::io::Result<()>>,
    metrics_task: JoinHandle<std::io::Result<()>>,
    reload_task: JoinHandle<()>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // Either a `true` was sent or the sender is gone: both mean stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Validates `config`, loads the certificate, binds both ports and starts serving on the
/// current tokio runtime, without API access (executors do not inherit their driver's
/// priority class). Use port 0 in the listen addresses to let the OS choose, then read
/// [`RunningServer::tls_addr`] and [`RunningServer::metrics_addr`].
pub async fn start(config: AdmissionConfig) -> Result<RunningServer, StartError> {
    start_with_api(config, None).await
}

/// [`start`], reading executors' drivers through `api` when `executorPriorityFromDriver` is
/// on, and the queues drivers name when `checkQueues` is.
pub async fn start_with_api(
    config: AdmissionConfig,
    api: Option<kube::Client>,
) -> Result<RunningServer, StartError> {
    config
        .validate()
        .map_err(|(key, message)| StartError::Config { key, message })?;
    let metrics = Arc::new(Metrics::new());
    let (reloader, pair) =
        CertReloader::load(&config.tls_cert_file, &config.tls_key_file, metrics.clone())?;

    let bind = |what: &'static str, address: SocketAddr| {
        std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(|l| l.local_addr().map(|a| (l, a)))
            .map_err(|cause| StartError::Bind {
                what,
                address,
                cause,
            })
    };
    let tls_listener =
        sparkgang_serve::bind(config.tls_listen_address, config.connections.backlog()).map_err(
            |cause| StartError::Bind {
                what: "tlsListenAddress",
                address: config.tls_listen_address,
                cause,
            },
        )?;
    let tls_addr = tls_listener
        .local_addr()
        .map_err(|cause| StartError::Bind {
            what: "tlsListenAddress",
            address: config.tls_listen_address,
            cause,
        })?;
    let (metrics_listener, metrics_addr) =
        bind("metricsListenAddress", config.metrics_listen_address)?;

    let (stop, stop_rx) = watch::channel(false);
    let drivers = api
        .clone()
        .filter(|_| config.executor_priority_from_driver)
        .map(DriverReader::new);
    let queues = api.filter(|_| config.check_queues).map(QueueReader::new);
    let state = Arc::new(AppState {
        mutation: MutationConfig::from(&config),
        metrics: metrics.clone(),
        ready: AtomicBool::new(true),
        drivers,
        queues,
    });
    let rustls = reloader.rustls_config();
    let listener = Listener {
        listener: tls_listener,
        tls: Tls::Rustls(Arc::new(move || rustls.get_inner())),
        limits: config.connections,
        stats: metrics.connections().clone(),
    };
    let app = router(state.clone()).layer(sparkgang_serve::body_read_timeout(&config.connections));
    let tls_stop = stopped(stop_rx.clone());
    let tls_task = tokio::spawn(sparkgang_serve::serve(
        listener,
        app,
        tls_stop,
        GRACEFUL_SHUTDOWN,
    ));

    let metrics_listener =
        tokio::net::TcpListener::from_std(metrics_listener).map_err(|cause| StartError::Bind {
            what: "metricsListenAddress",
            address: metrics_addr,
            cause,
        })?;
    let metrics_app = metrics_router(metrics.clone());
    let metrics_stop = stopped(stop_rx.clone());
    // Prometheus scrapes it: the same limits as the HTTPS listener, its own counters.
    let metrics_listener = Listener {
        listener: metrics_listener,
        tls: Tls::Plain,
        limits: config.connections,
        stats: Arc::default(),
    };
    let metrics_task = tokio::spawn(sparkgang_serve::serve(
        metrics_listener,
        metrics_app,
        metrics_stop,
        GRACEFUL_SHUTDOWN,
    ));

    let reload_task = tokio::spawn(reloader.run(config.cert_reload_interval, stopped(stop_rx)));

    tracing::info!(
        https = %tls_addr,
        metrics = %metrics_addr,
        cert = %config.tls_cert_file.display(),
        serial = %pair.serial,
        not_after = pair.not_after_unix,
        scheduler = %config.scheduler_name,
        "sparkgang-admission is serving"
    );
    Ok(RunningServer {
        tls_addr,
        metrics_addr,
        metrics,
        state,
        shutdown_delay: config.shutdown_delay,
        stop,
        tls_task,
        metrics_task,
        reload_task,
    })
}

impl RunningServer {
    /// Where the HTTPS server listens (`POST /mutate`).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// Where the metrics server listens (`GET /metrics`).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The live metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves until `shutdown` resolves or a server fails. After `shutdown`, `/readyz` fails
    /// and requests are still answered for `shutdownDelay`; then the server stops gracefully.
    pub async fn serve_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let failure = tokio::select! {
            _ = shutdown => None,
            r = &mut self.tls_task => Some(("HTTPS", r)),
            r = &mut self.metrics_task => Some(("metrics", r)),
        };
        match failure {
            None => {
                self.state.ready.store(false, Ordering::Relaxed);
                if !self.shutdown_delay.is_zero() {
                    tracing::info!(
                        delay = ?self.shutdown_delay,
                        "not ready; still answering while endpoints drop this replica"
                    );
                    tokio::time::sleep(self.shutdown_delay).await;
                }
                self.shutdown().await
            }
            Some((what, result)) => {
                let cause = match result {
                    Ok(Ok(())) => std::io::Error::other("stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(join) => std::io::Error::other(join.to_string()),
                };
                let _ = self.stop.send(true);
                Err(ServeError { what, cause })
            }
        }
    }

    /// Stops accepting connections, lets in-flight requests finish (at most
    /// [`GRACEFUL_SHUTDOWN`]) and waits for every task.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        let join =
            |what: &'static str, r: Result<std::io::Result<()>, tokio::task::JoinError>| match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(cause)) => Err(ServeError { what, cause }),
                Err(e) => Err(ServeError {
                    what,
                    cause: std::io::Error::other(e.to_string()),
                }),
            };
        let tls = join("HTTPS", self.tls_task.await);
        let metrics = join("metrics", self.metrics_task.await);
        let _ = self.reload_task.await;
        tls.and(metrics)
    }
}

/// Starts the webhook and serves until `shutdown` resolves. The binary's whole life.
pub async fn run(
    config: AdmissionConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let needs = [
        (
            "executorPriorityFromDriver",
            config.executor_priority_from_driver,
        ),
        ("checkQueues", config.check_queues),
    ];
    let on: Vec<&str> = needs
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    let api =
        match on.first() {
            Some(key) => Some(kube::Client::try_default().await.map_err(|e| {
                StartError::Config {
                    key: (*key).to_owned(),
                    message: format!(
                        "reading the API (executors' drivers, drivers' queues) needs API access \
                     (in-cluster service account or kubeconfig), and none works: {e}; set {} \
                     to false to run without",
                        on.join(" and ")
                    ),
                }
            })?),
            None => None,
        };
    let server = start_with_api(config, api).await?;
    server.serve_until(shutdown).await?;
    Ok(())
}

/// Why [`run`] returned an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}
