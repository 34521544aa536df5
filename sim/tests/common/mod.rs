//! Shared test helpers: a server with the repository's CRDs, a kube-rs client for it, raw HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sparkgang_sim::apiserver::{ApiServer, ServerConfig, start};

pub fn repo_root() -> PathBuf {
    sparkgang_testing::fixtures::repo_root()
}

/// The configuration tests start from: the repository's CRDs.
pub fn config() -> ServerConfig {
    ServerConfig::default()
        .with_crd_dir(repo_root().join("deploy/crds"))
        .expect("deploy/crds")
}

pub async fn server() -> ApiServer {
    server_with(config()).await
}

pub async fn server_with(config: ServerConfig) -> ApiServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    start(config).await.expect("server starts")
}

/// kube-rs is built with rustls but no provider feature here: pick ring (once per process).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A kube-rs client pointed at the server, no authentication, default namespace `spark`.
pub fn client(server: &ApiServer) -> kube::Client {
    install_crypto();
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    config.default_namespace = "spark".to_owned();
    config.read_timeout = Some(Duration::from_secs(300));
    kube::Client::try_from(config).expect("client")
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("user-agent", "sparkgang-sim-tests");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    sender.send_request(req).await.expect("response")
}

/// Sends one request and reads the whole response.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Raw {
    let resp = send(addr, method, path, content_type, body).await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes()
        .to_vec();
    Raw {
        status,
        content_type,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Raw {
    raw(addr, "GET", path, None, Vec::new()).await
}

pub async fn post_json(addr: SocketAddr, path: &str, v: &Value) -> Raw {
    raw(
        addr,
        "POST",
        path,
        Some("application/json"),
        serde_json::to_vec(v).unwrap(),
    )
    .await
}

/// An open watch: reads JSON lines as they come.
pub struct WatchLines {
    pub status: u16,
    body: Incoming,
    buf: Vec<u8>,
    ended: bool,
}

impl WatchLines {
    /// The next event, or `None` when the stream ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Has the server closed the stream (within `wait`)?
    pub async fn ended_within(&mut self, wait: Duration) -> bool {
        while self.next(wait).await.is_some() {}
        self.ended
    }
}

pub async fn watch(addr: SocketAddr, path: &str) -> WatchLines {
    let resp = send(addr, "GET", path, None, Vec::new()).await;
    WatchLines {
        status: resp.status().as_u16(),
        body: resp.into_body(),
        buf: Vec::new(),
        ended: false,
    }
}

/// Type and object name of a watch line.
pub fn ev(line: &Value) -> (String, String) {
    (
        line["type"].as_str().unwrap_or("").to_owned(),
        line["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

/// A minimal pod.
pub fn pod_json(name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    })
}
