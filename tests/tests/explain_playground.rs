//! "Why is my Spark app pending?" in the playground, the three ways a user asks it: the explain
//! API, `kubectl sparkgang` (run by the real kubectl, as a plugin on PATH, through the API
//! server's service proxy) and the console in a real headless Chromium.
//!
//! The cluster: 3 nodes of 8 cores. `long` runs with 1 + 5 × 4 cores; `second` (1 + 4 × 4)
//! then does not fit the 3 cores left, though it would fit the empty group, so FIFO holds
//! `third` (1 + 1 × 1, which would fit) behind it; `huge` (1 + 40 × 4) can never fit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::{Method, StatusCode};
use sparkgang_common::api::explain::{AppExplanation, Reason};
use sparkgang_sim::playground::Playground;
use sparkgang_sim::spark::{self, DriverScript, Submission};
use sparkgang_testing::http;
use sparkgang_tests::bins::workspace_bin;
use sparkgang_tests::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);

struct App {
    driver: String,
    app_id: String,
}

async fn submit(p: &Playground, name: &str, seed: u64, executors: u32, cores: u32) -> App {
    let (driver, app_id, _) = spark::identities(name, seed);
    let conf = BTreeMap::from([
        ("spark.executor.instances".to_owned(), executors.to_string()),
        ("spark.executor.cores".to_owned(), cores.to_string()),
        ("spark.executor.memory".to_owned(), "2g".to_owned()),
        (
            "spark.kubernetes.node.selector.instance-group".to_owned(),
            "batch".to_owned(),
        ),
    ]);
    let s = Submission {
        namespace: "spark".to_owned(),
        name: name.to_owned(),
        conf,
        annotations: BTreeMap::new(),
    };
    spark::submit(&p.cluster.client, &s, seed)
        .await
        .unwrap_or_else(|e| panic!("submitting {name}: {e}"));
    App { driver, app_id }
}

fn extender(p: &Playground) -> SocketAddr {
    p.cluster
        .extender
        .as_ref()
        .expect("the playground runs the extender")
        .filter_address
}

async fn explain(addr: SocketAddr, app: &App) -> Option<AppExplanation> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let path = format!("/api/v1/apps/spark/{}", app.app_id);
    let (status, body) = http::request(stream, Method::GET, "localhost", &path, Vec::new())
        .await
        .ok()?;
    (status == StatusCode::OK).then(|| serde_json::from_slice(&body).expect("an explanation"))
}

/// Waits until `app`'s reason has `kind`.
async fn reason(addr: SocketAddr, app: &App, kind: &str) -> AppExplanation {
    eventually(&format!("{} to be {kind}", app.driver), WAIT, || async {
        explain(addr, app).await.filter(|e| e.reason.kind() == kind)
    })
    .await
}

/// `kubectl sparkgang ARGS` with the playground's kubeconfig and the plugin on PATH.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let plugin = workspace_bin("kubectl-sparkgang");
    let dir = plugin.parent().map(PathBuf::from).unwrap_or_default();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new("kubectl")
        .arg("sparkgang")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_app_is_explained_by_the_api_the_plugin_and_the_console() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = Playground::start(3).await.expect("the playground starts");
    let addr = extender(&p);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, p.kubeconfig()).unwrap();

    let (long_driver, _, _) = spark::identities("long", 1);
    if let Ok(mut scripts) = p.scripts.lock() {
        scripts.insert(
            format!("spark/{long_driver}"),
            DriverScript {
                runtime: Duration::from_secs(3600),
                ..DriverScript::default()
            },
        );
    }
    let long = submit(&p, "long", 1, 5, 4).await;
    let placed = reason(addr, &long, "placed").await;
    assert_eq!(placed.app.executors.reserved, 5);
    let second = submit(&p, "second", 2, 4, 4).await;
    let capacity = reason(addr, &second, "capacity").await;
    let Reason::Capacity { shortfall } = &capacity.reason else {
        unreachable!()
    };
    // 1 + 4 × 4 cores needed; 24 − 21 = 3 free.
    assert_eq!(shortfall.needs.cpu_milli, 17_000);
    assert_eq!(shortfall.free.cpu_milli, 3_000);
    assert_eq!(shortfall.short.cpu_milli, 14_000);
    let third = submit(&p, "third", 3, 1, 1).await;
    let behind = reason(addr, &third, "waiting-behind").await;
    let Reason::WaitingBehind { blocker, .. } = &behind.reason else {
        unreachable!()
    };
    assert_eq!(blocker.app_id, second.app_id);
    assert!(
        behind.message.contains(&second.app_id),
        "{}",
        behind.message
    );
    let huge = submit(&p, "huge", 4, 40, 4).await;
    let never = reason(addr, &huge, "never-fits").await;
    let Reason::NeverFits { never_fits } = &never.reason else {
        unreachable!()
    };
    assert_eq!(never_fits.eligible, 3);
    assert_eq!(never_fits.total_allocatable.cpu_milli, 24_000);

    // The plugin, through the real kubectl and the API server's service proxy.
    let (ok, out, err) = kubectl(&kubeconfig, &["why", &huge.driver, "-n", "spark"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("can never fit"), "{out}");
    assert!(out.contains("Cause:") && out.contains("capacity"), "{out}");
    let (ok, out, err) = kubectl(&kubeconfig, &["why", &third.driver]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("Blocked by:    {}", second.app_id)),
        "{out}"
    );
    let (ok, out, err) = kubectl(&kubeconfig, &["why", &huge.app_id, "-o", "json"]).await;
    assert!(ok, "{err}");
    let e: AppExplanation = serde_json::from_str(&out).expect("-o json is the API's JSON");
    assert_eq!(e.reason.kind(), "never-fits");
    let (ok, out, err) = kubectl(&kubeconfig, &["apps", "-A"]).await;
    assert!(ok, "{err}");
    for app in [&long, &second, &third, &huge] {
        assert!(out.contains(&app.app_id), "{out}");
    }
    let (ok, out, err) = kubectl(&kubeconfig, &["capacity", "batch"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("node-2") && out.contains("24/96Gi"), "{out}");
    let (ok, _, err) = kubectl(&kubeconfig, &["why", "nope", "-n", "spark"]).await;
    assert!(!ok);
    assert!(err.contains("no Spark application or pod nope"), "{err}");
    let (ok, _, err) = kubectl(&kubeconfig, &["apps", "--url", "http://127.0.0.1:1"]).await;
    assert!(!ok);
    assert!(err.contains("cannot reach the explain API"), "{err}");

    // The console, in a real browser.
    let url = format!("{}#app=spark/{}", p.console_url().unwrap(), huge.app_id);
    console(&url, &huge).await;
    p.cluster.stop().await;
}

/// The console's detail view of `app`, rendered by headless Chromium, names the reason; a
/// screenshot is kept in the target directory.
async fn console(url: &str, app: &App) {
    let Some(chromium) = chromium() else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let args = |mode: &str| {
        vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=5000".to_owned(),
            "--window-size=1400,900".to_owned(),
            mode.to_owned(),
            url.to_owned(),
        ]
    };
    let dom = eventually("the console to show the reason", WAIT, || {
        let args = args("--dump-dom");
        let chromium = chromium.clone();
        async move {
            let out = tokio::process::Command::new(&chromium)
                .args(&args)
                .output()
                .await
                .expect("chromium runs");
            let dom = String::from_utf8_lossy(&out.stdout).into_owned();
            dom.contains("data-kind=\"never-fits\"").then_some(dom)
        }
    })
    .await;
    assert!(dom.contains("can never fit"), "{dom}");
    assert!(dom.contains(&app.app_id), "{dom}");
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    let _ = std::fs::remove_file(&shot);
    let status = tokio::process::Command::new(&chromium)
        .args(args(&format!("--screenshot={}", shot.display())))
        .output()
        .await
        .expect("chromium runs")
        .status;
    assert!(status.success());
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("console screenshot: {}", shot.display());
}

/// Debian's `chromium` (SPARKGANG_CHROMIUM, else on PATH); `None` (skipped) when missing and
/// the run does not require it.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var("SPARKGANG_CHROMIUM")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            std::env::var("PATH").ok().and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("chromium"))
                    .find(|c| c.exists())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("SPARKGANG_REQUIRE_CHROMIUM").is_err(),
            "chromium not found: scripts/test.sh installs Debian's chromium"
        );
        eprintln!("SKIPPED: chromium not found (scripts/test.sh installs it)");
    }
    found
}
