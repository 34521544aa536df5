//! Scenario runs for the suites: one at a time, a short verdict on failure, the full report
//! and history written to a file.

use std::path::PathBuf;

use sparkgang_sim::scenario::{self, Mode, Report, Scenario};

/// Scenarios run in real time on a 2-core machine: one at a time, so that one run's load does
/// not change another's timing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reads `sim/scenarios/<file>`.
pub fn load(file: &str) -> Scenario {
    let path = crate::repo_root().join("sim/scenarios").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Scenario::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `scenario` (alone) and returns its report.
pub async fn run(scenario: &Scenario, mode: Mode) -> Report {
    let _turn = ONE_AT_A_TIME.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    scenario::run(scenario, mode)
        .await
        .unwrap_or_else(|e| panic!("{}: cannot run: {e}", scenario.name))
}

/// Runs `sim/scenarios/<file>` with sparkgang; fails with a short verdict (the first
/// violations and expectation failures, and their counts) and the path of the full report.
pub async fn run_and_check(file: &str) -> Report {
    let report = run(&load(file), Mode::Sparkgang).await;
    if !report.passed() {
        let path = write_report(&report);
        panic!(
            "{}\nfull report and history: {}",
            report.verdict(5),
            path.display()
        );
    }
    report
}

/// Writes the report and its history as JSON under `target/scenario-reports/`.
pub fn write_report(report: &Report) -> PathBuf {
    let dir = crate::repo_root().join("target/scenario-reports");
    let path = dir.join(format!("{}.json", report.scenario));
    let body = serde_json::json!({"report": report, "history": report.history});
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&body).unwrap_or_default()));
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", path.display());
    }
    path
}
