//! The accept loop: the connection cap, TLS with its handshake timeout, HTTP/1 or HTTP/2 with
//! their limits, the watchdog of each connection, and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::Service;
use tracing::{debug, warn};

use crate::activity::{Activity, Watched};
use crate::limits::Limits;
use crate::stats::{CloseReason, ServeStats};

/// Where TLS server configurations come from: asked once per connection, so a certificate
/// rotation applies to the next handshake.
pub type TlsSource = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// Plain HTTP, or TLS.
#[derive(Clone)]
pub enum Tls {
    Plain,
    Rustls(TlsSource),
}

/// A bound listener and how to serve it.
pub struct Listener {
    pub listener: TcpListener,
    pub tls: Tls,
    pub limits: Limits,
    /// Shared with whoever reports on the listener (metrics, load tests).
    pub stats: Arc<ServeStats>,
}

/// Binds `address` with a listen backlog of `backlog` connections (at most the kernel's
/// `somaxconn`): a burst of connections waits in the kernel for the accept loop instead of
/// being dropped and retried by the clients seconds later.
pub fn bind(address: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets requests in
/// flight finish within `grace`, closes what remains and returns.
pub async fn serve(
    listener: Listener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let Listener {
        listener,
        tls,
        limits,
        stats,
    } = listener;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let trimmer = tokio::spawn(trim_after_bursts(stats.clone()));
    let (closing, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: not fatal.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        stats.on_accept();
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.record_closed(CloseReason::OverCapacity);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            tls: tls.clone(),
            app: app.clone(),
            limits,
            stats: stats.clone(),
            closing: closing_rx.clone(),
            grace,
            _slot: slot,
        };
        tokio::spawn(connection.run(stream));
    }
    drop(listener);
    trimmer.abort();
    let _ = closing.send(true);
    // Every connection holds a slot until it ends: all slots back means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace + Duration::from_secs(1), slots.acquire_many(all)).await;
    Ok(())
}

/// One accepted connection and what it needs.
struct Connection {
    peer: SocketAddr,
    tls: Tls,
    app: Router,
    limits: Limits,
    stats: Arc<ServeStats>,
    closing: watch::Receiver<bool>,
    grace: Duration,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        self.stats.on_open();
        let stats = self.stats.clone();
        match self.tls.clone() {
            Tls::Plain => self.http(stream).await,
            Tls::Rustls(source) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(source());
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(self.limits.tls_handshake_timeout, handshake).await {
                    Ok(Ok(tls)) => self.http(tls).await,
                    Ok(Err(e)) => {
                        debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                        self.stats.record_closed(CloseReason::TlsHandshake);
                    }
                    Err(_) => {
                        debug!(peer = %self.peer, "TLS handshake timed out");
                        self.stats.record_closed(CloseReason::TlsHandshake);
                    }
                }
            }
        }
        stats.on_close();
    }

    async fn http<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = Watched {
            io,
            activity: activity.clone(),
        };
        let app = self.app.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = requests.request();
            let mut app = app.clone();
            async move {
                // The request stays in flight until its response body has been sent or dropped:
                // a long response (a watch stream) is not an idle connection.
                let response = app.call(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _in_flight = &in_flight;
                        frame
                    }))
                }))
            }
        });
        let limits = self.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .max_buf_size(limits.max_header_bytes)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(limits.http2_max_header_list_size)
            .keep_alive_interval(limits.idle_timeout / 2)
            .keep_alive_timeout(limits.header_read_timeout);
        // With upgrades: the simulated API server serves watches over WebSocket.
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    debug!(peer = %self.peer, error = %e, "connection ended with an error");
                }
            }
            reason = activity.expired(limits.header_read_timeout, limits.idle_timeout) => {
                debug!(peer = %self.peer, reason = reason.as_str(), "closing the connection");
                self.stats.record_closed(reason);
            }
            () = closed(&mut self.closing) => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(self.grace, connection).await;
            }
        }
    }
}

/// Resolves once the server is closing.
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// How many connections must have closed since the last trim before the next one.
const TRIM_AFTER_CLOSED: u64 = 256;

/// Gives the memory of closed connections back to the system. glibc keeps what a burst of
/// connections freed in its per-thread arenas, so without this the process stays at its peak
/// (a hostile burst would leave the webhook near its memory limit for good).
async fn trim_after_bursts(stats: Arc<ServeStats>) {
    // Every connection accepted and not open has closed (or is about to start: a hint is enough).
    let closed = || stats.accepted().saturating_sub(stats.open());
    let mut at_last_trim = closed();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = closed();
        if now.saturating_sub(at_last_trim) >= TRIM_AFTER_CLOSED {
            release_free_memory();
            at_last_trim = now;
        }
    }
}

fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; it only returns the allocator's free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
