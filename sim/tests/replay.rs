//! `sparkgang-sim replay` over real Spark event logs (the committed fixtures) and generated
//! ones: every application is replayed under each configuration and kube-scheduler alone,
//! broken logs are named and skipped, the reports are deterministic, the HTML is self-contained,
//! and kube-scheduler alone starves gangs that sparkgang runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sparkgang_sim::eventlog::{self, nodes::parse_nodes};
use sparkgang_sim::replay::{self, Configuration, synthetic};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/spark-eventlogs")
}

fn replay_cli(eventlogs: &Path, nodes: &Path, out: &Path, tag: &str) -> (String, String, String) {
    let report = out.join(format!("{tag}.json"));
    let html = out.join(format!("{tag}.html"));
    let run = Command::new(env!("CARGO_BIN_EXE_sparkgang-sim"))
        .arg("replay")
        .arg("--eventlogs")
        .arg(eventlogs)
        .arg("--nodes")
        .arg(nodes)
        .args([
            "--compare",
            "binpack=tightly-pack,distribute-evenly",
            "--report",
        ])
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("sparkgang-sim runs");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "replay failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (read(&report), read(&html), stdout)
}

#[test]
fn the_fixtures_replay_under_each_configuration_and_kube_scheduler_alone() {
    let out = tempfile::tempdir().expect("a temporary directory");
    // The committed History Server directory, plus a file that is no event log.
    let dir = out.path().join("history");
    std::fs::create_dir(&dir).expect("dir");
    for entry in std::fs::read_dir(fixtures().join("history")).expect("fixtures") {
        let entry = entry.expect("entry");
        let to = dir.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir(&to).expect("dir");
            for f in std::fs::read_dir(entry.path()).expect("rolling") {
                let f = f.expect("file");
                std::fs::copy(f.path(), to.join(f.file_name())).expect("copy");
            }
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
    std::fs::write(dir.join("local-1796539999999.zstd"), b"not zstd at all").expect("garbage");
    let nodes = fixtures().join("replay-nodes.json");
    let (json, html, stdout) = replay_cli(&dir, &nodes, out.path(), "first");
    let report: serde_json::Value = serde_json::from_str(&json).expect("a JSON report");

    let apps = eventlog::read_dir(&dir).expect("logs").apps.len();
    assert_eq!(report["applications"], apps);
    let names: Vec<&str> = report["configurations"]
        .as_array()
        .expect("configurations")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "binpack=tightly-pack",
            "binpack=distribute-evenly",
            "kube-scheduler alone"
        ]
    );
    for c in report["configurations"].as_array().expect("configurations") {
        assert_eq!(
            c["apps"].as_array().map(Vec::len),
            Some(apps),
            "{}",
            c["name"]
        );
        let s = &c["summary"];
        let started = s["started"].as_u64().unwrap_or(0);
        let never = s["never_started"].as_u64().unwrap_or(0);
        assert_eq!(started + never, apps as u64, "{}", c["name"]);
        assert!(!c["utilisation"].as_array().expect("points").is_empty());
    }
    // The garbage file is named, with its reason, in both reports.
    let skipped = report["skipped"].as_array().expect("skipped");
    assert!(
        skipped.iter().any(|s| s["source"]
            .as_str()
            .unwrap_or("")
            .ends_with("local-1796539999999.zstd")),
        "{skipped:?}"
    );
    assert!(html.contains("local-1796539999999.zstd"));
    assert!(stdout.contains("kube-scheduler alone"), "{stdout}");

    // Self-contained: charts inline, nothing fetched from elsewhere.
    assert!(
        html.matches("<svg").count() >= 2 * names.len(),
        "two charts per configuration"
    );
    for outside in ["<script", "<link", " src=", "url(", "@import", "<img"] {
        assert!(
            !html.contains(outside),
            "the page refers to something outside it: {outside}"
        );
    }

    // Deterministic: a second run writes the same bytes.
    let (json2, html2, _) = replay_cli(&dir, &nodes, out.path(), "second");
    assert!(json == json2, "two replays wrote different JSON reports");
    assert!(html == html2, "two replays wrote different HTML reports");
}

/// Gangs that need most of a node each, submitted faster than they finish: kube-scheduler
/// alone places drivers that then wait for executors that do not fit; sparkgang places a
/// driver only with its executors.
#[test]
fn kube_scheduler_alone_starves_what_sparkgang_runs() {
    let out = tempfile::tempdir().expect("a temporary directory");
    let workload = synthetic::Workload {
        apps: 12,
        window: Duration::from_secs(10),
        runtime: (Duration::from_secs(60), Duration::from_secs(60)),
        executors: (3, 3),
        executor_cores: vec![6],
        memory_per_core_gib: 2,
        ..synthetic::Workload::default()
    };
    synthetic::write_eventlogs(out.path(), &workload).expect("logs written");
    let nodes_text = serde_json::to_vec(&synthetic::nodes_json(4, 8, 32, "batch")).expect("json");
    let nodes =
        parse_nodes(&nodes_text, Path::new("nodes.json"), &Default::default()).expect("nodes");
    let logs = eventlog::read_dir(out.path()).expect("logs");
    assert_eq!(logs.apps.len(), 12, "{:?}", logs.skipped);
    let configurations = [
        Configuration {
            name: "sparkgang".into(),
            overrides: Some(serde_yaml::Value::Mapping(Default::default())),
        },
        Configuration::kube_scheduler_alone(),
    ];
    let report = replay::replay(
        "generated",
        &logs,
        &nodes,
        &configurations,
        Some(Duration::from_secs(1200)),
        2,
        &|_| {},
    )
    .expect("replayed");
    let [with, alone] = &report.configurations[..] else {
        panic!("two configurations");
    };
    // Each gang: a 1-core driver and 3 executors of 6 cores, on 4 nodes of 8 cores. sparkgang
    // runs one gang at a time (12 × 60 s, within the 1,200 s horizon). Alone, kube-scheduler
    // places the 12 drivers first, 3 a node, and no 6-core executor fits beside them.
    assert_eq!(with.summary.completed, 12, "{:?}", with.summary);
    assert_eq!(with.summary.never_started, 0);
    assert!(
        alone.summary.never_started > 0,
        "kube-scheduler alone should starve some gangs: {:?}",
        alone.summary
    );
    assert!(alone.summary.completed < with.summary.completed);
}
