//! Scenario runs for the suites: one at a time, a short verdict on failure, the full report
//! and history written to a file; every real-time run is run again on the virtual clock and
//! must end in the same states.

use std::collections::BTreeMap;
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

/// Runs `scenario` on the virtual clock (`--clock virtual`).
pub fn run_virtual(scenario: &Scenario, mode: Mode) -> Report {
    scenario::run_virtual(scenario, mode)
        .unwrap_or_else(|e| panic!("{}: cannot run on the virtual clock: {e}", scenario.name))
}

/// Each application's final state (`completed`, `running`, `pending`, `rejected`) by name.
pub fn final_states(report: &Report) -> BTreeMap<String, String> {
    report
        .apps
        .iter()
        .map(|a| (a.name.clone(), a.final_state.clone()))
        .collect()
}

/// Runs `sim/scenarios/<file>` with sparkgang in real time, then on the virtual clock: both
/// must pass (expectations and invariants) and every application must end in the same state.
/// Fails with a short verdict (the first violations and expectation failures, and their
/// counts) and the path of the full report.
pub async fn run_and_check(file: &str) -> [Report; 2] {
    let scenario = load(file);
    let report = run(&scenario, Mode::Sparkgang).await;
    check(&report);
    let virtual_run = run_virtual(&scenario, Mode::Sparkgang);
    check(&virtual_run);
    assert_same_final_states(&report, &virtual_run);
    [report, virtual_run]
}

/// Panics with the verdict and where the full report is when `report` did not pass.
pub fn check(report: &Report) {
    if !report.passed() {
        let path = write_report(report);
        panic!(
            "{} ({} clock)\n{}\nfull report and history: {}",
            report.scenario,
            report.clock,
            report.verdict(5),
            path.display()
        );
    }
}

/// Both clocks ended with every application in the same state.
pub fn assert_same_final_states(real: &Report, virtual_run: &Report) {
    let (a, b) = (final_states(real), final_states(virtual_run));
    let differ: Vec<String> = a
        .iter()
        .filter(|(name, state)| b.get(*name) != Some(*state))
        .map(|(name, state)| {
            format!(
                "{name}: {state} in real time, {} in virtual time",
                b.get(name).map_or("absent", String::as_str)
            )
        })
        .collect();
    assert!(
        differ.is_empty() && a.len() == b.len(),
        "{}: the clocks disagree: {}",
        real.scenario,
        differ.join("; ")
    );
}

/// Writes the report and its history as JSON under `target/scenario-reports/`.
pub fn write_report(report: &Report) -> PathBuf {
    let dir = crate::repo_root().join("target/scenario-reports");
    let path = dir.join(format!("{}-{}.json", report.scenario, report.clock));
    let body = serde_json::json!({"report": report, "history": report.history});
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&body).unwrap_or_default()));
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", path.display());
    }
    path
}
