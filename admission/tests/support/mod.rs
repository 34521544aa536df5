//! Shared by the integration tests: a real webhook on 127.0.0.1 with `TestPki` certificates, a
//! real HTTPS client (tokio-rustls + hyper) that trusts only the test CA, and the fixtures.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use sparkgang_admission::review_client::{ReviewResponse, decode_response, pod_create_review};
use sparkgang_admission::{AdmissionConfig, RunningServer};
use sparkgang_certs::TestPki;
use sparkgang_testing::fixtures;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The test server's per-namespace default instance group (fixtures run in `spark`).
pub const SPARK_NAMESPACE_GROUP: &str = "spark-pool";
/// The test server's global default instance group.
pub const GLOBAL_GROUP: &str = "general";

/// A running webhook plus what a client needs to reach it.
pub struct TestServer {
    pub server: RunningServer,
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
    pub client_config: Arc<rustls::ClientConfig>,
}

/// The configuration every test server uses, with certificate files in `dir`.
pub fn test_config(cert: &Path, key: &Path) -> AdmissionConfig {
    let mut config = AdmissionConfig::with_tls_files(cert, key);
    config.tls_listen_address = "127.0.0.1:0".parse().unwrap();
    config.metrics_listen_address = "127.0.0.1:0".parse().unwrap();
    config.default_instance_group = Some(GLOBAL_GROUP.into());
    config
        .default_instance_group_by_namespace
        .insert("spark".into(), SPARK_NAMESPACE_GROUP.into());
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut AdmissionConfig)) -> TestServer {
        let pki = TestPki::localhost().expect("test PKI");
        let dir = tempfile::tempdir().unwrap();
        pki.write_to_dir(dir.path()).unwrap();
        let mut config = test_config(&dir.path().join("tls.crt"), &dir.path().join("tls.key"));
        adjust(&mut config);
        let server = sparkgang_admission::start(config)
            .await
            .expect("server starts");
        let client_config = Arc::new(pki.client_config().unwrap());
        TestServer {
            server,
            pki,
            dir,
            client_config,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.server.tls_addr(), self.client_config.clone())
            .await
            .expect("TLS connection")
    }

    /// POSTs `review` to `/mutate` on a fresh connection and decodes the answer.
    pub async fn review(&self, review: &Value) -> ReviewResponse {
        let mut client = self.client().await;
        let (status, body) = client
            .post(
                "/mutate",
                "application/json",
                serde_json::to_vec(review).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        decode_response(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
    }

    /// `GET /metrics` over plain HTTP.
    pub async fn metrics_text(&self) -> String {
        let tcp = TcpStream::connect(self.server.metrics_addr())
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get("/metrics")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// One keep-alive HTTPS connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The leaf certificate the server presented.
    pub peer_certificate: CertificateDer<'static>,
}

impl Client {
    pub async fn connect(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Client, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let peer_certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no peer certificate")?
            .clone()
            .into_owned();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Client {
            sender,
            peer_certificate,
        })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.request("POST", path, Some(content_type), body).await
    }
}

/// The serial number (hex) of a DER certificate.
pub fn serial_of(der: &CertificateDer<'_>) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.tbs_certificate.raw_serial_as_string()
}

/// A pod POSTed by Spark in a fixture file: its namespace (from the URL) and body.
#[derive(Debug, Clone)]
pub struct FixturePod {
    pub file: &'static str,
    pub namespace: String,
    pub pod: Value,
}

impl FixturePod {
    pub fn name(&self) -> &str {
        self.pod["metadata"]["name"].as_str().unwrap()
    }
    pub fn role(&self) -> &str {
        self.pod["metadata"]["labels"]["spark-role"]
            .as_str()
            .unwrap()
    }
}

/// Every pod created (POST `/api/v1/namespaces/<ns>/pods`) in a fixture file.
pub fn fixture_pods(file: &'static str) -> Vec<FixturePod> {
    fixtures::jsonl(fixtures::SPARK, file)
        .into_iter()
        .filter_map(|v| {
            let path = v["path"].as_str()?;
            let ns = path
                .strip_prefix("/api/v1/namespaces/")?
                .strip_suffix("/pods")?;
            (v["method"] == "POST").then(|| FixturePod {
                file,
                namespace: ns.to_owned(),
                pod: v["body"].clone(),
            })
        })
        .collect()
}

/// Every fixture file with pods in it.
pub const FIXTURE_FILES: [&str; 5] = [
    "cluster-static.requests.jsonl",
    "cluster-dynamic-gpu.requests.jsonl",
    "cluster-static.executors.jsonl",
    "cluster-dynamic-gpu.executors.jsonl",
    "client-executors-gpu.requests.jsonl",
];

/// The AdmissionReview the API server sends for a fixture pod.
pub fn review_for(p: &FixturePod, uid: &str) -> Value {
    pod_create_review(&p.namespace, uid, &p.pod, false)
}

/// Applies a decoded JSON Patch with the json-patch crate.
pub fn apply_patch(doc: &Value, patch: &Value) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone()).expect("RFC 6902 patch");
    let mut out = doc.clone();
    json_patch::patch(&mut out, &patch).expect("patch applies");
    out
}
