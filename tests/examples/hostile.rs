//! A load test of the servers against hostile connections (issue "hardened servers"): the webhook
//! or the extender's `/filter` listener runs in a child process, as its binary runs it; this
//! process opens N connections that hold a slot without using it, keeps sending ordinary requests
//! on one keep-alive connection meanwhile, and reports the child's peak memory, the ordinary
//! requests' latency while the hostile ones are held, the share the server closed by itself
//! within 60 s, and the child's memory afterwards.
//!
//! ```text
//! cargo run --release -p sparkgang-tests --example hostile -- webhook --connections 5000
//! cargo run --release -p sparkgang-tests --example hostile -- extender --connections 5000
//! ```
//!
//! The mix, a quarter each: idle after the handshake (TLS for the webhook; a bare connection
//! for the plain-HTTP extender), half a request header (slowloris), the HTTP/2 preface and
//! nothing more, TCP without TLS (the webhook) or a second idle kind (the extender).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use sparkgang_admission::review_client::pod_create_review;
use sparkgang_certs::TestPki;
use sparkgang_testing::fixtures;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Per kind of hostile connection, those still open when the hold ended; and connects that
/// failed.
static STILL_OPEN: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
static CONNECT_FAILED: AtomicUsize = AtomicUsize::new(0);

/// How long the hostile connections are held and closures counted.
const HOLD: Duration = Duration::from_secs(60);
/// How long after the hold the memory is read again.
const SETTLE: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve-webhook") => serve_webhook(&args[1]),
        Some("serve-extender") => serve_extender(),
        Some(which @ ("webhook" | "extender")) => {
            let connections = match args.iter().position(|a| a == "--connections") {
                Some(i) => args
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--connections takes a number"))?,
                None => 5000,
            };
            attack(which, connections)
        }
        _ => anyhow::bail!(
            "usage: hostile webhook|extender [--connections N]   (N hostile connections, default 5000)"
        ),
    }
}

/// The child: the webhook as its binary runs it, with the certificates in `dir`.
fn serve_webhook(dir: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dir = std::path::Path::new(dir);
        let mut config = sparkgang_admission::AdmissionConfig::with_tls_files(
            dir.join("tls.crt"),
            dir.join("tls.key"),
        );
        config.tls_listen_address = "127.0.0.1:0".parse()?;
        config.metrics_listen_address = "127.0.0.1:0".parse()?;
        let server = sparkgang_admission::start(config).await?;
        println!("LISTENING {}", server.tls_addr());
        server.serve_until(std::future::pending()).await?;
        Ok(())
    })
}

/// The child: the extender's `/filter` listener as `start` serves it, over 500 nodes.
fn serve_extender() -> anyhow::Result<()> {
    use sparkgang_common::cluster::{ClusterState, SchedulerConfig};
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut state = ClusterState::new(SchedulerConfig::default());
        for i in 0..500 {
            let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("node-{i}"), "labels": {"instance-group": "batch"}},
                "status": {"allocatable": {"cpu": "64", "memory": "256Gi"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))?;
            state.apply_node(&node);
        }
        let clock = Arc::new(sparkgang_extender::clock::SystemClock);
        let (ext, _effects) = sparkgang_extender::Extender::standalone(state, clock);
        let limits = sparkgang_serve::Limits::default();
        let app = sparkgang_extender::server::filter_router(ext.clone())
            .layer(sparkgang_serve::body_read_timeout(&limits));
        let listener = sparkgang_serve::bind("127.0.0.1:0".parse()?, limits.backlog())?;
        println!("LISTENING {}", listener.local_addr()?);
        let listener = sparkgang_serve::Listener {
            listener,
            tls: sparkgang_serve::Tls::Plain,
            limits,
            stats: ext.metrics.connections.clone(),
        };
        sparkgang_serve::serve(listener, app, std::future::pending(), Duration::from_secs(1))
            .await?;
        Ok(())
    })
}

/// The child's resident memory now, in MiB.
fn rss_mib(child: &Child) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Kills the child when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn attack(which: &str, connections: usize) -> anyhow::Result<()> {
    let pki = TestPki::localhost()?;
    let dir = tempfile::tempdir()?;
    pki.write_to_dir(dir.path())?;
    let me = std::env::current_exe()?;
    let mut command = Command::new(me);
    if which == "webhook" {
        command.arg("serve-webhook").arg(dir.path());
    } else {
        command.arg("serve-extender");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("LISTENING ")
        .ok_or_else(|| anyhow::anyhow!("the server said {line:?}"))?
        .parse()?;
    let tls = (which == "webhook").then(|| {
        Arc::new(tokio_rustls::TlsConnector::from(Arc::new(
            pki.client_config().expect("client config"),
        )))
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let probe = Probe::connect(addr, tls.clone(), which).await?;
        let idle_before = probe_for(&probe, Duration::from_secs(3)).await;
        let rss_idle = rss_mib(&server.0);

        let closed_in_time = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut held = Vec::new();
        for i in 0..connections {
            let kind = i % 4;
            let tls = tls.clone();
            let closed = closed_in_time.clone();
            held.push(tokio::spawn(async move {
                hostile(addr, tls, kind, started, closed).await;
            }));
        }
        let mut peak = rss_mib(&server.0);
        let mut latencies = Vec::new();
        while started.elapsed() < HOLD {
            let t = Instant::now();
            probe.call().await?;
            latencies.push(t.elapsed());
            peak = peak.max(rss_mib(&server.0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closed = closed_in_time.load(Ordering::Relaxed);
        let still_open: Vec<usize> = STILL_OPEN.iter().map(|n| n.load(Ordering::Relaxed)).collect();
        let failed = CONNECT_FAILED.load(Ordering::Relaxed);
        for h in &held {
            h.abort();
        }
        tokio::time::sleep(SETTLE).await;
        let rss_after = rss_mib(&server.0);
        let (p50, p99) = percentiles(latencies);
        let (idle_p50, idle_p99) = percentiles(idle_before);
        println!(
            "{which}: {connections} hostile connections; memory idle {rss_idle:.1} MiB, peak {peak:.1} MiB, \
             {settle}s after {rss_after:.1} MiB; closed by the server within {hold}s: {closed} ({share:.1} %); \
             still open by kind (idle, half header, h2 preface, bare TCP) {still_open:?}, connects failed {failed}; \
             probe latency while held p50 {p50:?} p99 {p99:?} (quiet: p50 {idle_p50:?} p99 {idle_p99:?})",
            settle = SETTLE.as_secs(),
            hold = HOLD.as_secs(),
            share = 100.0 * closed as f64 / connections as f64,
        );
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

async fn probe_for(probe: &Probe, d: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < d {
        let t = Instant::now();
        if probe.call().await.is_ok() {
            out.push(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

/// One hostile connection of `kind`; counts itself when the server closes it within the hold.
async fn hostile(
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::TlsConnector>>,
    kind: usize,
    started: Instant,
    closed: Arc<AtomicUsize>,
) {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        CONNECT_FAILED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    const HALF: &[u8] = b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-";
    let first: &[u8] = match kind {
        0 => b"",
        1 => HALF,
        2 => PREFACE,
        _ => b"",
    };
    let ended = match (tls, kind) {
        (Some(tls), 0..=2) => {
            let Ok(name) = ServerName::try_from("localhost") else {
                return;
            };
            let Ok(mut stream) = tls.connect(name, tcp).await else {
                // Refused during the handshake: closed by the server.
                if started.elapsed() <= HOLD {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
                return;
            };
            let _ = stream.write_all(first).await;
            drain(&mut stream).await
        }
        (_, _) => {
            let mut tcp = tcp;
            let _ = tcp.write_all(first).await;
            drain(&mut tcp).await
        }
    };
    if ended && started.elapsed() <= HOLD {
        closed.fetch_add(1, Ordering::Relaxed);
    } else {
        STILL_OPEN[kind].fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads until the server closes the connection (true) or the hold is over (false).
async fn drain<S: AsyncReadExt + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + HOLD + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// An ordinary client on one keep-alive connection: kube-apiserver calling the webhook, or
/// kube-scheduler calling the extender.
struct Probe {
    sender: tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    path: &'static str,
    body: Vec<u8>,
}

impl Probe {
    async fn connect(
        addr: SocketAddr,
        tls: Option<Arc<tokio_rustls::TlsConnector>>,
        which: &str,
    ) -> anyhow::Result<Probe> {
        let tcp = TcpStream::connect(addr).await?;
        let sender = match tls {
            Some(tls) => {
                let stream = tls.connect(ServerName::try_from("localhost")?, tcp).await?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        let (path, body) = if which == "webhook" {
            let pod = fixtures::jsonl(fixtures::SPARK, "cluster-static.requests.jsonl")
                .into_iter()
                .find(|v| {
                    v["method"] == "POST"
                        && v["path"].as_str().is_some_and(|p| p.ends_with("/pods"))
                })
                .map(|v| v["body"].clone())
                .ok_or_else(|| anyhow::anyhow!("no pod in the fixture"))?;
            let review = pod_create_review("spark", "probe", &pod, false);
            ("/mutate", serde_json::to_vec(&review)?)
        } else {
            let args: Value = serde_json::from_str(&fixtures::read(
                fixtures::KUBE_SCHEDULER_WIRE,
                "filter-args.driver.json",
            ))?;
            ("/filter", serde_json::to_vec(&args)?)
        };
        Ok(Probe {
            sender: tokio::sync::Mutex::new(sender),
            path,
            body,
        })
    }

    async fn call(&self) -> anyhow::Result<()> {
        let mut sender = self.sender.lock().await;
        sender.ready().await?;
        let request = hyper::Request::post(self.path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(self.body.clone())))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        anyhow::ensure!(status.is_success(), "{} answered {status}", self.path);
        Ok(())
    }
}
