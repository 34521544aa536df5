//! The virtual clock is deterministic: two runs of one scenario with `--clock virtual` write
//! byte-identical reports and histories (seeded randomness, ordered maps, no wall-clock reads).
//! That both clocks end in the same states is checked by the scenario suite
//! (tests/tests/scenarios.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs the CLI on the virtual clock; returns the report's and the history's bytes.
fn run_virtual(scenario: &Path, out: &Path, tag: &str) -> (Vec<u8>, Vec<u8>) {
    let report = out.join(format!("{tag}-report.json"));
    let history = out.join(format!("{tag}-history.json"));
    let run = Command::new(env!("CARGO_BIN_EXE_sparkgang-sim"))
        .arg("run")
        .arg(scenario)
        .args(["--clock", "virtual", "--report"])
        .arg(&report)
        .arg("--history")
        .arg(&history)
        .output()
        .expect("sparkgang-sim runs");
    assert!(
        run.status.success(),
        "{} failed on the virtual clock:\n{}{}",
        scenario.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (read(&report), read(&history))
}

fn assert_deterministic(scenario: &Path) {
    let out = tempfile::tempdir().expect("a temporary directory");
    let first = run_virtual(scenario, out.path(), "first");
    let second = run_virtual(scenario, out.path(), "second");
    let report: serde_json::Value = serde_json::from_slice(&first.0).expect("a JSON report");
    assert_eq!(report["clock"], "virtual");
    assert!(
        first.0 == second.0,
        "{}: two virtual runs wrote different reports",
        scenario.display()
    );
    assert!(
        first.1 == second.1,
        "{}: two virtual runs wrote different histories",
        scenario.display()
    );
}

#[test]
fn every_bundled_scenario_writes_the_same_report_twice() {
    let files: Vec<PathBuf> = scenarios()
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("scale-"))
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        assert_deterministic(&f);
    }
}

/// The scale scenario needs an optimised build to be quick; scripts/test.sh runs it with
/// `--release`.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "1,000 applications: run with --release (scripts/test.sh does)"
)]
fn the_scale_scenario_writes_the_same_report_twice() {
    let files: Vec<PathBuf> = scenarios()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("scale-"))
        .collect();
    assert!(!files.is_empty());
    for f in files {
        assert_deterministic(&f);
    }
}
