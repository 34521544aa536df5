//! Every committed real-Spark event log read back and checked against Spark's reader and the conf.
//!
//! What Spark's own reader saw is in `manifest.json` (written by `make.py`); the driver and
//! executor sizes are worked out by hand from the conf each fixture was submitted with.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sparkgang_common::Resources;
use sparkgang_sim::eventlog::nodes::{parse_nodes, read_nodes};
use sparkgang_sim::eventlog::{AppTrace, Codec, Layout, TraceState, read_dir};

const MIB: i64 = 1 << 20;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/spark-eventlogs")
}

/// What each fixture's conf asks for, computed by hand (Spark 4.3 formulas: memory + overhead,
/// overhead = explicit, else max(384 MiB, factor × memory), factor 0.1 in client mode).
struct Expected {
    driver: Resources,
    executor: Resources,
    min: u32,
    max: u32,
    dynamic: bool,
    floor: u32,
    driver_selector: &'static [(&'static str, &'static str)],
    executor_selector: &'static [(&'static str, &'static str)],
    codec: Option<Codec>,
    layout: Layout,
}

const DEFAULT_POD: Resources = Resources::new(1000, (1024 + 384) * MIB, 0);

fn expected(name: &str) -> Expected {
    let batch: &[(&str, &str)] = &[("instance-group", "batch")];
    let plain = |driver, executor, n| Expected {
        driver,
        executor,
        min: n,
        max: n,
        dynamic: false,
        floor: n,
        driver_selector: &[],
        executor_selector: &[],
        codec: None,
        layout: Layout::Single,
    };
    match name {
        // driver 2g + max(384, 204); executor 2 cores, 3g + max(384, 307); 4 instances.
        "plain" => Expected {
            driver_selector: batch,
            executor_selector: batch,
            ..plain(
                Resources::new(1000, (2048 + 384) * MIB, 0),
                Resources::new(2000, (3072 + 384) * MIB, 0),
                4,
            )
        },
        // driver 2 cores, 4g + 409; executor 3500m request, 8g + explicit 1g;
        // initial max(min 1, initial 3) = 3, max 8.
        "zstd" => Expected {
            min: 3,
            max: 8,
            dynamic: true,
            floor: 1,
            driver_selector: &[
                ("instance-group", "spot"),
                ("topology.kubernetes.io/zone", "zone-a"),
            ],
            executor_selector: &[
                ("instance-group", "spot"),
                ("topology.kubernetes.io/zone", "zone-a"),
            ],
            codec: Some(Codec::Zstd),
            ..plain(
                Resources::new(2000, (4096 + 409) * MIB, 0),
                Resources::new(3500, (8192 + 1024) * MIB, 0),
                0,
            )
        },
        // driver 1g + explicit 512m; executor 2g + max(384, 0.25 × 2048 = 512); 2 instances.
        "lz4" => Expected {
            driver_selector: &[("instance-group", "drivers")],
            executor_selector: batch,
            codec: Some(Codec::Lz4),
            ..plain(
                Resources::new(1000, (1024 + 512) * MIB, 0),
                Resources::new(1000, (2048 + 512) * MIB, 0),
                2,
            )
        },
        // nothing set: Spark's defaults everywhere, 2 executors.
        "snappy" => Expected {
            codec: Some(Codec::Snappy),
            ..plain(DEFAULT_POD, DEFAULT_POD, 2)
        },
        // executor 3 cores, 5g + max(384, 512), one nvidia.com/gpu; 6 instances.
        "lzf" => Expected {
            driver_selector: &[("instance-group", "gpu")],
            executor_selector: &[("instance-group", "gpu")],
            codec: Some(Codec::Lzf),
            ..plain(DEFAULT_POD, Resources::new(3000, (5120 + 512) * MIB, 1), 6)
        },
        // executor 512m + 384; dynamic 0..2.
        "rolling" => Expected {
            min: 0,
            max: 2,
            dynamic: true,
            floor: 0,
            driver_selector: batch,
            executor_selector: batch,
            codec: Some(Codec::Zstd),
            layout: Layout::Rolling,
            ..plain(DEFAULT_POD, Resources::new(1000, (512 + 384) * MIB, 0), 0)
        },
        "killed" => Expected {
            driver_selector: batch,
            executor_selector: batch,
            ..plain(DEFAULT_POD, DEFAULT_POD, 3)
        },
        // Spark 4's defaults: rolling, zstd. Executor 4g + max(384, 409).
        "killed-rolling" => Expected {
            codec: Some(Codec::Zstd),
            layout: Layout::Rolling,
            ..plain(DEFAULT_POD, Resources::new(1000, (4096 + 409) * MIB, 0), 5)
        },
        other => panic!("no expectation for fixture {other}"),
    }
}

fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn millis(map: &Value) -> BTreeMap<String, i64> {
    map.as_object()
        .unwrap()
        .iter()
        .filter(|(id, _)| id.as_str() != "driver")
        .map(|(id, t)| (id.clone(), t.as_i64().unwrap()))
        .collect()
}

fn check(app: &AppTrace, fixture: &Value) {
    let name = fixture["name"].as_str().unwrap();
    let spark = &fixture["spark_reader"];
    let killed = fixture["killed"].as_bool().unwrap();
    let want = expected(name);

    assert_eq!(
        app.source.file_name().unwrap().to_string_lossy(),
        fixture["path"].as_str().unwrap(),
        "{name}"
    );
    assert_eq!(app.app_id, spark["app_id"].as_str().unwrap(), "{name}");
    assert_eq!(app.layout, want.layout, "{name}");
    assert_eq!(app.codec, want.codec, "{name}");
    assert_eq!(app.spark_version.as_deref(), Some("4.3.0"), "{name}");
    assert_eq!(
        app.submitted_at_ms,
        spark["submit_time_ms"].as_i64().unwrap(),
        "{name}"
    );
    assert_eq!(app.started_at_ms, spark["start_ms"].as_i64(), "{name}");
    assert_eq!(app.ended_at_ms, spark["end_ms"].as_i64(), "{name}");
    assert_eq!(
        app.events,
        spark["lines"].as_u64().unwrap(),
        "{name}: events read"
    );
    let state = if killed {
        TraceState::InProgress
    } else {
        TraceState::Completed
    };
    assert_eq!(app.state, state, "{name}");
    assert_eq!(spark["completed"].as_bool().unwrap(), !killed, "{name}");
    if killed {
        assert!(app.ended_at_ms.is_none(), "{name}");
        assert!(app.last_event_ms >= app.started_at_ms.unwrap(), "{name}");
    } else {
        assert_eq!(app.exit_code, Some(0), "{name}");
        assert_eq!(app.last_event_ms, app.ended_at_ms.unwrap(), "{name}");
    }

    let added: BTreeMap<String, i64> = app
        .executors
        .iter()
        .map(|e| (e.id.clone(), e.added_ms))
        .collect();
    let removed: BTreeMap<String, i64> = app
        .executors
        .iter()
        .filter_map(|e| e.removed_ms.map(|t| (e.id.clone(), t)))
        .collect();
    assert_eq!(
        added,
        millis(&spark["executors_added"]),
        "{name}: executors added"
    );
    assert_eq!(
        removed,
        millis(&spark["executors_removed"]),
        "{name}: executors removed"
    );

    let d = &app.demand;
    assert_eq!(d.demand.driver, want.driver, "{name}: driver");
    assert_eq!(d.demand.executor, want.executor, "{name}: executor");
    assert_eq!(
        (
            d.demand.min_executors,
            d.demand.max_executors,
            d.dynamic_allocation,
            d.dynamic_min_executors
        ),
        (want.min, want.max, want.dynamic, want.floor),
        "{name}: executor counts"
    );
    assert_eq!(
        d.driver_node_selector,
        selector(want.driver_selector),
        "{name}"
    );
    assert_eq!(
        d.executor_node_selector,
        selector(want.executor_selector),
        "{name}"
    );
    assert_eq!(
        d.app_name.as_deref(),
        Some(format!("fx-{name}").as_str()),
        "{name}"
    );
    assert_eq!(app.name, format!("fx-{name}"), "{name}");
}

#[test]
fn every_committed_fixture_reads_as_spark_saw_it() {
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir().join("manifest.json")).unwrap()).unwrap();
    let fixtures = manifest["fixtures"].as_array().unwrap();
    let logs = read_dir(&dir().join("history")).unwrap();
    assert!(logs.skipped.is_empty(), "{:#?}", logs.skipped);
    assert_eq!(logs.apps.len(), fixtures.len());
    for f in fixtures {
        let name = f["name"].as_str().unwrap();
        let app = logs
            .apps
            .iter()
            .find(|a| a.name == format!("fx-{name}"))
            .unwrap_or_else(|| panic!("fixture {name} not read"));
        check(app, f);
    }
    let order: Vec<i64> = logs.apps.iter().map(|a| a.submitted_at_ms).collect();
    assert!(order.is_sorted(), "{order:?}");
}

#[test]
fn rolling_fixture_rolled_and_executors_came_and_went() {
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir().join("manifest.json")).unwrap()).unwrap();
    let rolling = manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "rolling")
        .unwrap();
    let files = rolling["spark_reader"]["files"].as_array().unwrap();
    assert!(files.len() >= 3, "rolled only into {files:?}");
    let logs = read_dir(&dir().join("history")).unwrap();
    let app = logs.apps.iter().find(|a| a.name == "fx-rolling").unwrap();
    assert!(app.executors.iter().any(|e| e.removed_ms.is_some()));
    assert!(app.executors.len() > 2, "{:?}", app.executors);
    assert_eq!(
        app.fallbacks,
        ["not set, Spark's defaults apply: spark.driver.cores=1, spark.driver.memory=1g"]
    );
}

#[test]
fn killed_fixtures_say_how_their_logs_end() {
    let logs = read_dir(&dir().join("history")).unwrap();
    let snappy = logs.apps.iter().find(|a| a.name == "fx-snappy").unwrap();
    assert!(
        snappy
            .fallbacks
            .iter()
            .any(|f| f.starts_with("not set, Spark's defaults apply: spark.driver.cores=1")),
        "{:?}",
        snappy.fallbacks
    );
    // Spark 4's defaults (rolling + zstd), killed: Spark closes a zstd frame at every flush of
    // an event log, so the file is a run of complete frames and reads without a break.
    let killed_rolling = logs
        .apps
        .iter()
        .find(|a| a.name == "fx-killed-rolling")
        .unwrap();
    assert_eq!(killed_rolling.state, TraceState::InProgress);
    assert_eq!(
        killed_rolling.fallbacks,
        [
            "not set, Spark's defaults apply: spark.driver.cores=1, spark.driver.memory=1g, spark.executor.cores=1"
        ]
    );
    let frames = fs::read(
        killed_rolling
            .source
            .join(format!("events_1_{}.zstd", killed_rolling.app_id)),
    )
    .unwrap()
    .windows(4)
    .filter(|w| *w == [0x28, 0xB5, 0x2F, 0xFD])
    .count();
    assert!(frames > 1, "{frames} zstd frame magic(s)");
}

#[test]
fn nodes_fixture_reads_allocatable_labels_and_taints() {
    let nodes = read_nodes(&dir().join("nodes.json")).unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["batch-1", "batch-2", "gpu-1"]);
    assert_eq!(
        nodes[0].allocatable,
        Resources::new(7910, 28_631_040 * 1024, 0)
    );
    assert_eq!(nodes[2].allocatable.gpus, 4);
    assert_eq!(nodes[0].labels["instance-group"], "batch");
    assert_eq!(nodes[2].taints.len(), 1);
    assert_eq!(nodes[2].taints[0].key, "nvidia.com/gpu");
    assert!(nodes[1].unschedulable);
}

#[test]
fn malformed_nodes_are_named() {
    let gpus = sparkgang_common::GpuResourceNames::default();
    let p = Path::new("NODES.json");
    let err = |text: &str| {
        parse_nodes(text.as_bytes(), p, &gpus)
            .unwrap_err()
            .to_string()
    };
    assert!(err("[").contains("NODES.json is not JSON"));
    assert!(err(r#"{"kind":"PodList","items":[]}"#).contains("kind `PodList`"));
    let bad_cpu = r#"{"kind":"List","items":[
        {"kind":"Node","metadata":{"name":"a"},"status":{"allocatable":{"cpu":"4"}}},
        {"kind":"Node","metadata":{"name":"b"},"status":{"allocatable":{"cpu":"four"}}}]}"#;
    let e = err(bad_cpu);
    assert!(e.starts_with("NODES.json item 1 (b): allocatable"), "{e}");
    let dup = r#"{"kind":"List","items":[
        {"kind":"Node","metadata":{"name":"a"},"status":{"allocatable":{"cpu":"4"}}},
        {"kind":"Node","metadata":{"name":"a"},"status":{"allocatable":{"cpu":"4"}}}]}"#;
    assert!(err(dup).contains("item 1 (a): same name as item 0"));
    let no_alloc = r#"{"kind":"List","items":[{"kind":"Node","metadata":{"name":"z"}}]}"#;
    assert!(err(no_alloc).contains("item 0 (z): no status.allocatable"));
    let not_node = r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"}}]}"#;
    assert!(err(not_node).contains("item 0 (p): kind `Pod`, not Node"));
}
