//! The `sparkgang-extender` binary on SIGTERM, against the simulated API server: it stops
//! accepting, answers the filter call in flight, releases its Lease and exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sparkgang_sim::apiserver::{self, ServerConfig};
use sparkgang_sim::deploy_config::repository_deploy_dir;
use sparkgang_sim::harness::client_for;
use sparkgang_testing::fixtures;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 50 ms until it gives a value; panics naming `what` after `limit`.
async fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_call_in_flight_releases_the_lease_and_exits_0() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = apiserver::start(
        ServerConfig::default()
            .with_crd_dir(repository_deploy_dir().join("crds"))
            .unwrap(),
    )
    .await
    .unwrap();
    let dir =
        Scratch(std::env::temp_dir().join(format!("sparkgang-sigterm-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: sim, cluster: {{server: '{}'}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: sim, user: u}}}}]\n\
             current-context: c\n",
            api.url()
        ),
    )
    .unwrap();
    let config = dir.0.join("extender.yaml");
    // A 30 s lease: without the release, it would still be held long after the exit.
    std::fs::write(
        &config,
        "filterListenAddress: 127.0.0.1:0\nmetricsListenAddress: 127.0.0.1:0\n\
         leaderElection: {enabled: true, leaseNamespace: sparkgang-system, leaseDuration: 30s,\n\
           renewInterval: 200ms, renewDeadline: 20s}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparkgang-extender"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info")
        .env("POD_NAME", "the-leader")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The JSON log line "listening" names both addresses; the rest of the log is drained.
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let mut seen = Vec::new();
    let filter: SocketAddr = until("the listening log line", Duration::from_secs(30), || {
        seen.extend(rx.try_iter());
        seen.iter().find_map(|v| {
            let f = &v["fields"];
            (f["message"] == "listening")
                .then(|| f["filter_address"].as_str().and_then(|s| s.parse().ok()))?
        })
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client_for(&api).unwrap(), "sparkgang-system");
    let holder = || async {
        leases
            .get_opt("sparkgang-extender")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while holder().await.as_deref() != Some("the-leader") {
        assert!(tokio::time::Instant::now() < deadline, "never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A filter call is in flight: headers and half the body sent.
    let body =
        fixtures::read(fixtures::KUBE_SCHEDULER_WIRE, "filter-args.driver.json").into_bytes();
    let mut call = TcpStream::connect(filter).await.unwrap();
    let head = format!(
        "POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    call.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    call.write_all(&body[..half]).await.unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // It stops accepting...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(filter).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...but answers the call in flight.
    call.write_all(&body[half..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), call.read_to_end(&mut answer))
        .await
        .expect("the call in flight is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the call in flight gets its decision:\n{answer}"
    );

    let exit = until("the process to exit", Duration::from_secs(30), || {
        child.try_wait().ok().flatten()
    })
    .await;
    assert!(exit.success(), "exit status {exit}");
    assert_eq!(holder().await, None, "the lease was released");
    api.shutdown().await;
}
