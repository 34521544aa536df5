//! A small HTTPS load generator for the webhook: N concurrent keep-alive connections POST a
//! fixture AdmissionReview to `/mutate` for D seconds, then report requests/s and latency
//! percentiles. Loopback only; bounded in connections and time.
//!
//! ```text
//! cargo run --release -p sparkgang-admission --example loadgen -- \
//!     --addr 127.0.0.1:8443 --ca /tmp/pki/ca.crt --connections 32 --duration 10s
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use sparkgang_admission::review_client::{decode_response, pod_create_review};
use sparkgang_common::durations::parse_duration;
use sparkgang_testing::fixtures;
use tokio_rustls::TlsConnector;

const MAX_CONNECTIONS: usize = 1024;
const MAX_DURATION: Duration = Duration::from_secs(300);

#[derive(Debug, Parser)]
#[command(about = "HTTPS load generator for sparkgang-admission (loopback only)")]
struct Args {
    /// The webhook's HTTPS address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// PEM CA bundle to trust (only this).
    #[arg(long)]
    ca: PathBuf,
    /// TLS server name to verify.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Concurrent keep-alive connections (at most 1024).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long to send after the warm-up (at most 300s), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before measuring, e.g. 1s.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Client runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Fixture file whose first pod POST is sent (wrapped in an AdmissionReview).
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Namespace of the review.
    #[arg(long, default_value = "spark")]
    namespace: String,
}

fn fixture_body(args: &Args) -> anyhow::Result<Vec<u8>> {
    let path = args
        .fixture
        .clone()
        .unwrap_or_else(|| fixtures::path(fixtures::SPARK, "cluster-static.requests.jsonl"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read fixture {}", path.display()))?;
    let pod = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["method"] == "POST" && v["path"].as_str().is_some_and(|p| p.ends_with("/pods")))
        .map(|v| v["body"].clone())
        .with_context(|| format!("no pod POST in {}", path.display()))?;
    Ok(serde_json::to_vec(&pod_create_review(
        &args.namespace,
        "0b7c6d1e-loadgen",
        &pod,
        false,
    ))?)
}

struct Worker {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn worker(
    addr: SocketAddr,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
    measure_from: Instant,
    until: Instant,
) -> Worker {
    let mut w = Worker {
        latencies_us: Vec::with_capacity(1 << 16),
        errors: 0,
        first_error: None,
    };
    let fail = |w: &mut Worker, e: String| {
        w.errors += 1;
        w.first_error.get_or_insert(e);
    };
    'connections: while Instant::now() < until {
        let tcp = match tokio::net::TcpStream::connect(addr).await {
            Ok(t) => t,
            Err(e) => {
                fail(&mut w, format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let stream = match TlsConnector::from(tls.clone())
            .connect(server_name.clone(), tcp)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                fail(&mut w, format!("TLS handshake: {e}"));
                continue;
            }
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => {
                    fail(&mut w, format!("HTTP handshake: {e}"));
                    continue;
                }
            };
        tokio::spawn(conn);
        while Instant::now() < until {
            let req = hyper::Request::post("/mutate")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .expect("request");
            let started = Instant::now();
            if let Err(e) = sender.ready().await {
                fail(&mut w, format!("connection: {e}"));
                continue 'connections;
            }
            let result = match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.into_body().collect().await {
                        Ok(_) if status.is_success() => Ok(()),
                        Ok(_) => Err(format!("HTTP {status}")),
                        Err(e) => Err(format!("body: {e}")),
                    }
                }
                Err(e) => Err(format!("request: {e}")),
            };
            let elapsed = started.elapsed();
            match result {
                Ok(()) if started >= measure_from => w
                    .latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)),
                Ok(()) => {}
                Err(e) => {
                    fail(&mut w, e);
                    continue 'connections;
                }
            }
        }
    }
    w
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        bail!(
            "--addr {} is not a loopback address; this tool only loads local servers",
            args.addr
        );
    }
    ensure!(
        (1..=MAX_CONNECTIONS).contains(&args.connections),
        "--connections must be 1..={MAX_CONNECTIONS}"
    );
    ensure!(
        args.duration <= MAX_DURATION && args.warmup <= MAX_DURATION,
        "--duration and --warmup must be at most {MAX_DURATION:?}"
    );
    ensure!((1..=64).contains(&args.threads), "--threads must be 1..=64");
    let ca = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("cannot read {}", args.ca.display()))?;
    let mut tls = sparkgang_certs::client_config_trusting(&ca)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = Arc::new(tls);
    let server_name = ServerName::try_from(args.server_name.clone())?;
    let body = Bytes::from(fixture_body(&args)?);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // One request first: the answer must be a valid AdmissionReview response with a patch.
        let sanity = check_one(args.addr, server_name.clone(), tls.clone(), body.clone()).await?;
        println!("sanity: {sanity}");

        let start = Instant::now();
        let measure_from = start + args.warmup;
        let until = measure_from + args.duration;
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| {
                tokio::spawn(worker(
                    args.addr,
                    server_name.clone(),
                    tls.clone(),
                    body.clone(),
                    measure_from,
                    until,
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for t in tasks {
            let w = t.await?;
            latencies.extend(w.latencies_us);
            errors += w.errors;
            if first_error.is_none() {
                first_error = w.first_error;
            }
        }
        let measured = until.saturating_duration_since(measure_from).as_secs_f64();
        latencies.sort_unstable();
        println!(
            "connections {} | threads {} | body {} bytes | measured {:.1}s after {:.1}s warm-up",
            args.connections,
            args.threads,
            body.len(),
            measured,
            args.warmup.as_secs_f64()
        );
        println!(
            "requests {} | errors {} | {:.0} reviews/s",
            latencies.len(),
            errors,
            latencies.len() as f64 / measured
        );
        println!(
            "latency ms: p50 {:.3} | p90 {:.3} | p99 {:.3} | p99.9 {:.3} | max {:.3}",
            percentile(&latencies, 50.0),
            percentile(&latencies, 90.0),
            percentile(&latencies, 99.0),
            percentile(&latencies, 99.9),
            latencies.last().map_or(0.0, |m| f64::from(*m) / 1000.0)
        );
        if let Some(e) = first_error {
            println!("first error: {e}");
        }
        anyhow::Ok(())
    })
}

async fn check_one(
    addr: SocketAddr,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
) -> anyhow::Result<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = TlsConnector::from(tls).connect(server_name, tcp).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let resp = sender.send_request(req).await?;
    ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    let bytes = resp.into_body().collect().await?.to_bytes();
    let answer = decode_response(&bytes).map_err(anyhow::Error::msg)?;
    ensure!(answer.allowed, "the review was denied: {:?}", answer.status);
    let ops = answer.patch.map_or(0, |p| p.as_array().map_or(0, Vec::len));
    Ok(format!("allowed with a {ops}-operation patch"))
}
