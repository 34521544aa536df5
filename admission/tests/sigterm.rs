//! The `sparkgang-admission` binary on SIGTERM: `/readyz` fails at once, `/mutate` is still
//! answered for `shutdownDelay`, then it stops accepting, answers the review in flight and
//! exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde_json::json;
use sparkgang_admission::review_client::pod_create_review;
use sparkgang_certs::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn tls(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").expect("a DNS name"), tcp)
        .await
}

/// `GET /readyz` on a fresh connection: the status line's code.
async fn readyz(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Option<u16> {
    let mut s = tls(addr, config).await.ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_answers_the_review_in_flight_and_exits_0() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch(std::env::temp_dir().join(format!(
        "sparkgang-admission-sigterm-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let pki = TestPki::for_service("sparkgang-webhook", "sparkgang-system").unwrap();
    pki.write_to_dir(&dir.0).unwrap();
    let client = Arc::new(pki.client_config().unwrap());
    let config = dir.0.join("admission.yaml");
    std::fs::write(
        &config,
        format!(
            "tlsListenAddress: 127.0.0.1:0\nmetricsListenAddress: 127.0.0.1:0\n\
             tlsCertFile: {}\ntlsKeyFile: {}\nshutdownDelay: 1s\n\
             executorPriorityFromDriver: false\n\
             checkQueues: false\n",
            dir.0.join("tls.crt").display(),
            dir.0.join("tls.key").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparkgang-admission"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let https: SocketAddr = loop {
        let found = rx.try_iter().find_map(|v| {
            let f = &v["fields"];
            (f["message"] == "sparkgang-admission is serving")
                .then(|| f["https"].as_str().and_then(|s| s.parse().ok()))?
        });
        if let Some(a) = found {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(readyz(https, &client).await, Some(200));

    // A review is in flight: headers and half the body sent.
    let pod = json!({"metadata": {"name": "p", "labels": {"spark-role": "driver"}},
                     "spec": {"containers": [{"name": "c"}]}});
    let body = serde_json::to_vec(&pod_create_review("spark", "uid-1", &pod, false)).unwrap();
    let mut call = tls(https, &client).await.unwrap();
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    call.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    call.write_all(&body[..half]).await.unwrap();
    call.flush().await.unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Readiness fails at once (the API server's endpoints drop the pod) while it still serves...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while readyz(https, &client).await != Some(503) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz did not fail after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...then stops accepting after shutdownDelay...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(https).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after SIGTERM and shutdownDelay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...but answers the review in flight.
    call.write_all(&body[half..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), call.read_to_end(&mut answer))
        .await
        .expect("the review in flight is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"uid\":\"uid-1\""),
        "the review in flight gets its answer:\n{answer}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(e) = child.try_wait().unwrap() {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit}");
}
