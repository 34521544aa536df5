//! Every scenario under `sim/scenarios/` runs with the real webhook and extender: its
//! expectations and the invariants (no node over-committed, nothing reserved once all apps
//! completed, no gang deadlock, FIFO order where enabled) must hold.

use std::path::PathBuf;

use sparkgang_sim::scenario::{self, Mode, Scenario};

/// Scenarios run in real time on a 2-core machine: one at a time, so that one run's load does
/// not change another's timing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(file: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let s = Scenario::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let report = scenario::run(&s, Mode::Sparkgang).await.unwrap();
    assert!(
        report.passed(),
        "{file}: violations {:?}, expectations {:?}\n{}",
        report.violations,
        report.expectation_failures,
        serde_json::to_string_pretty(&report.apps).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo() {
    run("demo.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_blocks_younger() {
    run("fifo-blocks-younger.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_allocation() {
    run("dynamic-allocation.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_replacement() {
    run("executor-replacement.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_and_instance_groups() {
    run("gpu-and-instance-groups.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_scheduler_alone_starves_the_demo() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.yaml");
    let mut s = Scenario::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    s.timeout = Some("20s".into());
    let report = scenario::run(&s, Mode::DefaultScheduler).await.unwrap();
    let starved = report
        .apps
        .iter()
        .filter(|a| {
            a.final_state == "running" && a.peak_running_executors < a.min_executors as usize
        })
        .count();
    assert!(
        starved > 0,
        "expected drivers starved of executors without sparkgang"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_1000_apps_on_500_nodes() {
    run("scale-1000-apps.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_enforce_after_age() {
    run("fifo-enforce-after-age.yaml").await;
}
