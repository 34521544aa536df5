//! Tests of `mutate_pod`: one scripted pod each, and the patch or denial it gets.

use super::*;
use serde_json::json;
use sparkgang_common::GangDemand;

fn pod(v: Value) -> Pod {
    parse_pod(&v.to_string()).unwrap()
}

fn allow(m: Mutation) -> (Vec<PatchOp>, Vec<String>) {
    match m.verdict {
        Verdict::Allow {
            patch, warnings, ..
        } => (patch, warnings),
        Verdict::Deny { message, .. } => panic!("denied: {message}"),
    }
}

fn apply(p: &Pod, ops: &[PatchOp]) -> Pod {
    let mut doc = serde_json::to_value(p).unwrap();
    for op in ops {
        let target = &op.path;
        let (parent, last) = target.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        if parent.is_empty() {
            doc.as_object_mut().unwrap().insert(last, op.value.clone());
            continue;
        }
        let node = doc.pointer_mut(parent).unwrap();
        match node {
            Value::Array(a) if last == "-" => a.push(op.value.clone()),
            Value::Object(o) => {
                o.insert(last, op.value.clone());
            }
            _ => panic!("bad target {target}"),
        }
    }
    parse_pod(&doc.to_string()).unwrap()
}

fn driver() -> Value {
    json!({"metadata": {"name": "d", "labels": {"spark-role": "driver", "spark-app-selector": "spark-1"}},
           "spec": {"containers": [{"name": "c"}], "volumes": [
               {"name": "spark-conf-volume-driver", "configMap": {"name": "spark-drv-1-conf-map"}}]}})
}

#[test]
fn only_objects_are_pods() {
    assert!(parse_pod(r#"{"metadata": {}, "spec": []}"#).is_err());
    assert!(parse_pod(r#"[{}, {}]"#).is_err());
    assert!(parse_pod(r#"{"metadata": null, "spec": null, "status": 3}"#).is_ok());
}

#[test]
fn escapes_pointer_tokens() {
    assert_eq!(
        escape_pointer_token("sparkgang.io/demand"),
        "sparkgang.io~1demand"
    );
    assert_eq!(escape_pointer_token("a~b/c"), "a~0b~1c");
}

#[test]
fn clips_long_warnings_on_char_boundaries() {
    let w = clip_warning("é".repeat(300));
    assert_eq!(w.chars().count(), MAX_WARNING_CHARS);
    assert!(w.ends_with('…'));
    assert_eq!(clip_warning("short".into()), "short");
}

#[test]
fn non_spark_pods_are_ignored() {
    let m = mutate_pod(
        &MutationConfig::default(),
        "ns",
        &pod(json!({"metadata": {"name": "x"}, "spec": {}})),
    );
    assert_eq!(m.role, None);
    assert!(allow(m.clone()).0.is_empty());
}

#[test]
fn client_mode_executors_are_ignored() {
    let m = mutate_pod(
        &MutationConfig::default(),
        "ns",
        &pod(json!({"metadata": {"labels": {"spark-role": "executor"}}, "spec": {}})),
    );
    assert_eq!(m.role, Some(Role::Executor));
    assert!(
        matches!(m.verdict, Verdict::Allow { ref patch, ignored: true, .. } if patch.is_empty())
    );
}

#[test]
fn driver_gets_everything_and_second_run_is_empty() {
    let config = MutationConfig {
        default_instance_group: Some("batch".into()),
        ..MutationConfig::default()
    };
    let p = pod(driver());
    let m = mutate_pod(&config, "spark", &p);
    let (ops, _) = allow(m.clone());
    let out = apply(&p, &ops);
    let spec = out.spec.as_ref().unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("spark-scheduler"));
    assert_eq!(
        spec.node_selector.as_ref().unwrap()["instance-group"],
        "batch"
    );
    assert_eq!(
        spec.scheduling_gates.as_ref().unwrap()[0].name,
        SPARK_CONF_GATE
    );
    assert_eq!(
        out.metadata.labels.as_ref().unwrap()["spark-app-id"],
        "spark-1"
    );
    assert_eq!(
        out.metadata.annotations.as_ref().unwrap()[CONF_MAP_ANNOTATION],
        "spark-drv-1-conf-map"
    );
    let again = mutate_pod(&config, "spark", &out);
    assert_eq!(allow(again).0, vec![]);
}

#[test]
fn namespace_default_wins_and_existing_group_is_kept() {
    let mut config = MutationConfig {
        default_instance_group: Some("batch".into()),
        ..MutationConfig::default()
    };
    config
        .default_instance_group_by_namespace
        .insert("ml".into(), "gpu".into());
    let p = pod(driver());
    let out = apply(&p, &allow(mutate_pod(&config, "ml", &p)).0);
    assert_eq!(
        out.spec.unwrap().node_selector.unwrap()["instance-group"],
        "gpu"
    );

    let mut v = driver();
    v["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "instance-group", "operator": "In", "values": ["mine"]}]}]}}});
    let p = pod(v);
    let (ops, _) = allow(mutate_pod(&config, "ml", &p));
    assert!(
        ops.iter().all(|o| !o.path.contains("nodeSelector")),
        "{ops:?}"
    );
}

#[test]
fn foreign_scheduler_is_left_alone_unless_overwriting() {
    let mut v = driver();
    v["spec"]["schedulerName"] = json!("volcano");
    let p = pod(v);
    let m = mutate_pod(&MutationConfig::default(), "spark", &p);
    let (ops, warnings) = allow(m.clone());
    assert!(ops.is_empty());
    assert!(warnings[0].contains("\"volcano\""), "{warnings:?}");
    let config = MutationConfig {
        overwrite_scheduler_name: true,
        ..MutationConfig::default()
    };
    let (ops, _) = allow(mutate_pod(&config, "spark", &p));
    assert!(
        ops.iter()
            .any(|o| o.op == Op::Replace && o.path == "/spec/schedulerName")
    );
}

#[test]
fn default_scheduler_is_replaced() {
    let mut v = driver();
    v["spec"]["schedulerName"] = json!("default-scheduler");
    let (ops, _) = allow(mutate_pod(&MutationConfig::default(), "spark", &pod(v)));
    assert!(
        ops.iter()
            .any(|o| o.op == Op::Replace && o.path == "/spec/schedulerName")
    );
}

#[test]
fn existing_gates_are_appended_to() {
    let mut v = driver();
    v["spec"]["schedulingGates"] = json!([{"name": "other"}]);
    let p = pod(v);
    let (ops, _) = allow(mutate_pod(&MutationConfig::default(), "spark", &p));
    let out = apply(&p, &ops);
    let names: Vec<_> = out
        .spec
        .unwrap()
        .scheduling_gates
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["other", SPARK_CONF_GATE]);
}

#[test]
fn no_conf_volume_means_no_gate_and_a_warning() {
    let mut v = driver();
    v["spec"]["volumes"] = json!([]);
    let (ops, warnings) = allow(mutate_pod(&MutationConfig::default(), "spark", &pod(v)));
    assert!(ops.iter().all(|o| !o.path.contains("schedulingGates")));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("spark-conf-volume-driver")),
        "{warnings:?}"
    );
}

#[test]
fn gate_off_means_no_gate() {
    let config = MutationConfig {
        spark_conf_gate: false,
        ..MutationConfig::default()
    };
    let (ops, _) = allow(mutate_pod(&config, "spark", &pod(driver())));
    assert!(
        ops.iter()
            .all(|o| !o.path.contains("schedulingGates") && !o.path.contains("annotations"))
    );
}

#[test]
fn valid_demand_annotation_skips_the_gate() {
    let demand = GangDemand {
        driver: sparkgang_common::Resources::new(1000, 1 << 30, 0),
        executor: sparkgang_common::Resources::new(2000, 4 << 30, 0),
        min_executors: 2,
        max_executors: 2,
    };
    let mut v = driver();
    v["metadata"]["annotations"] =
        json!({GANG_DEMAND_ANNOTATION: serde_json::to_string(&demand).unwrap()});
    let (ops, _) = allow(mutate_pod(
        &MutationConfig::default(),
        "spark",
        &pod(v.clone()),
    ));
    assert!(ops.iter().all(|o| !o.path.contains("schedulingGates")));
    v["metadata"]["annotations"] = json!({GANG_DEMAND_ANNOTATION: "nope"});
    let (ops, warnings) = allow(mutate_pod(&MutationConfig::default(), "spark", &pod(v)));
    assert!(ops.iter().any(|o| o.path.contains("schedulingGates")));
    assert!(warnings.iter().any(|w| w.contains("malformed")));
}

#[test]
fn missing_spec_is_added_first() {
    let p = pod(json!({"metadata": {"labels": {"spark-role": "driver"}}}));
    let (ops, _) = allow(mutate_pod(&MutationConfig::default(), "spark", &p));
    assert_eq!(ops[0].path, "/spec");
    let out = apply(&p, &ops);
    assert_eq!(
        out.spec.unwrap().scheduler_name.as_deref(),
        Some("spark-scheduler")
    );
}

/// Applies `ops` as the API server does (RFC 6902, through `json-patch`).
fn patched(p: &Value, ops: &[PatchOp]) -> Value {
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::to_value(ops).unwrap()).unwrap();
    let mut doc = p.clone();
    json_patch::patch(&mut doc, &patch).unwrap();
    doc
}

fn with_priority_defaults() -> MutationConfig {
    MutationConfig {
        default_priority_class: Some("batch".into()),
        default_priority_class_by_namespace: [("urgent-team".to_owned(), "high".to_owned())].into(),
        ..MutationConfig::default()
    }
}

/// A driver labelled from spark-submit gets that class; the priority the API server's first
/// pass resolved (0, no class) is removed so that its second pass resolves the new class.
#[test]
fn a_priority_class_label_becomes_the_class_and_drops_the_resolved_priority() {
    let mut d = driver();
    d["metadata"]["labels"]["sparkgang.io/priority-class"] = json!("high");
    d["spec"]["priority"] = json!(0);
    d["spec"]["preemptionPolicy"] = json!("PreemptLowerPriority");
    let (ops, warnings) = allow(mutate_pod(&with_priority_defaults(), "ns", &pod(d.clone())));
    assert!(warnings.is_empty(), "{warnings:?}");
    let out = patched(&d, &ops);
    assert_eq!(out["spec"]["priorityClassName"], "high");
    assert!(out["spec"].get("priority").is_none(), "{out}");
    assert!(out["spec"].get("preemptionPolicy").is_none(), "{out}");
    // Reinvoked on its own result (after the API server resolved it again): nothing to do.
    let mut again = out.clone();
    again["spec"]["priority"] = json!(1000);
    let (ops, _) = allow(mutate_pod(&with_priority_defaults(), "ns", &pod(again)));
    assert!(!ops.iter().any(|o| o.path.contains("riority")), "{ops:?}");
}

/// Without a label: the namespace's default, else the global one; a pod that names a class
/// keeps it; executors follow the same rules (their label comes from
/// `spark.kubernetes.executor.label.sparkgang.io/priority-class`).
#[test]
fn default_priority_classes_by_namespace_and_a_named_class_kept() {
    let config = with_priority_defaults();
    let class_of = |ns: &str, p: Value| {
        let (ops, _) = allow(mutate_pod(&config, ns, &pod(p.clone())));
        patched(&p, &ops)["spec"]["priorityClassName"].clone()
    };
    assert_eq!(class_of("urgent-team", driver()), "high");
    assert_eq!(class_of("elsewhere", driver()), "batch");
    let mut named = driver();
    named["spec"]["priorityClassName"] = json!("low");
    assert_eq!(class_of("urgent-team", named), "low");
    let executor = json!({"metadata": {"name": "e", "labels": {"spark-role": "executor",
            "spark-app-selector": "spark-1", "sparkgang.io/priority-class": "high"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "d", "uid": "u",
                "controller": true}]},
        "spec": {"containers": [{"name": "c"}]}});
    assert_eq!(class_of("elsewhere", executor), "high");
    // No default anywhere: nothing is added.
    let (ops, _) = allow(mutate_pod(&MutationConfig::default(), "ns", &pod(driver())));
    assert!(!ops.iter().any(|o| o.path.contains("riority")), "{ops:?}");
}

/// A label that contradicts a class from a pod template wins, and says so.
#[test]
fn a_label_overriding_a_template_class_warns() {
    let mut d = driver();
    d["metadata"]["labels"]["sparkgang.io/priority-class"] = json!("high");
    d["spec"]["priorityClassName"] = json!("low");
    d["spec"]["priority"] = json!(10);
    let (ops, warnings) = allow(mutate_pod(
        &MutationConfig::default(),
        "ns",
        &pod(d.clone()),
    ));
    let out = patched(&d, &ops);
    assert_eq!(out["spec"]["priorityClassName"], "high");
    assert!(out["spec"].get("priority").is_none());
    assert!(
        warnings[0].contains("replaces priorityClassName \"low\""),
        "{warnings:?}"
    );
}

/// An executor that names no class inherits its driver's (read by the shell): its own label
/// or class still wins; a failed read falls back to the namespace default with a warning.
#[test]
fn an_executor_inherits_its_drivers_class() {
    let config = with_priority_defaults();
    let executor = |labels: Value, class: Option<&str>| {
        let mut e = json!({"metadata": {"name": "e", "labels": labels,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "drv",
                    "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c"}], "priority": 0}});
        if let Some(c) = class {
            e["spec"]["priorityClassName"] = json!(c);
        }
        e
    };
    let plain = executor(json!({"spark-role": "executor"}), None);
    assert_eq!(driver_to_look_up(&pod(plain.clone())), Some("drv"));
    let run = |e: &Value, driver: DriverClass| {
        let (ops, warnings) = allow(mutate_pod_with_reads(
            &config,
            "elsewhere",
            &pod(e.clone()),
            &ApiReads {
                driver,
                ..ApiReads::default()
            },
        ));
        let out = patched(e, &ops);
        (
            out["spec"]["priorityClassName"].clone(),
            out["spec"].get("priority").cloned(),
            warnings,
        )
    };
    let (class, priority, warnings) = run(&plain, DriverClass::Known(Some("urgent".into())));
    assert_eq!(class, "urgent");
    assert_eq!(
        priority, None,
        "the resolved priority goes so the API server resolves again"
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    // A driver without a class, or none read: the namespace's default, as for any pod.
    assert_eq!(run(&plain, DriverClass::Known(None)).0, "batch");
    assert_eq!(run(&plain, DriverClass::Unknown).0, "batch");
    let (class, _, warnings) = run(&plain, DriverClass::Failed("403 Forbidden".into()));
    assert_eq!(class, "batch");
    assert!(
        warnings.iter().any(|w| w.contains("403 Forbidden")),
        "{warnings:?}"
    );
    // Its own label, or its own class, is not looked up and wins.
    let labelled = executor(
        json!({"spark-role": "executor", "sparkgang.io/priority-class": "low"}),
        None,
    );
    assert_eq!(driver_to_look_up(&pod(labelled.clone())), None);
    assert_eq!(
        run(&labelled, DriverClass::Known(Some("urgent".into()))).0,
        "low"
    );
    let named = executor(json!({"spark-role": "executor"}), Some("mine"));
    assert_eq!(driver_to_look_up(&pod(named.clone())), None);
    assert_eq!(
        run(&named, DriverClass::Known(Some("urgent".into()))).0,
        "mine"
    );
    // Drivers and client-mode executors are never looked up.
    assert_eq!(driver_to_look_up(&pod(driver())), None);
    let client_mode = json!({"metadata": {"labels": {"spark-role": "executor"}}, "spec": {}});
    assert_eq!(driver_to_look_up(&pod(client_mode)), None);
}

fn queued_driver(queue: &str) -> Pod {
    let mut d = driver();
    d["metadata"]["labels"]["sparkgang.io/queue"] = json!(queue);
    pod(d)
}

fn with_queue(queue: QueueLookup) -> ApiReads {
    ApiReads {
        queue,
        ..ApiReads::default()
    }
}

#[test]
fn a_driver_naming_a_queue_that_does_not_exist_is_refused_with_the_queues_there_are() {
    let config = MutationConfig::default();
    let missing = with_queue(QueueLookup::Missing {
        known: vec!["adhoc".into(), "etl".into()],
    });
    let m = mutate_pod_with_reads(&config, "spark", &queued_driver("etl2"), &missing);
    match m.verdict {
        Verdict::Deny {
            reason, message, ..
        } => {
            assert_eq!(reason, "unknown-queue");
            assert_eq!(
                message,
                "sparkgang: label sparkgang.io/queue=\"etl2\" names a queue that does not exist; \
                 the queues are: adhoc, etl"
            );
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    let none = with_queue(QueueLookup::Missing { known: vec![] });
    let m = mutate_pod_with_reads(&config, "spark", &queued_driver("etl"), &none);
    assert!(
        matches!(&m.verdict, Verdict::Deny { message, .. } if message.ends_with("there are none (kubectl get queues)")),
        "{m:?}"
    );
    let empty = mutate_pod_with_reads(&config, "spark", &queued_driver(" "), &ApiReads::default());
    assert!(matches!(
        empty.verdict,
        Verdict::Deny {
            reason: "unknown-queue",
            ..
        }
    ));
}

#[test]
fn an_existing_queue_or_one_not_read_is_admitted() {
    let config = MutationConfig::default();
    let d = queued_driver("etl");
    allow(mutate_pod_with_reads(
        &config,
        "spark",
        &d,
        &with_queue(QueueLookup::Exists),
    ));
    allow(mutate_pod_with_reads(
        &config,
        "spark",
        &d,
        &ApiReads::default(),
    ));
    let (_, warnings) = allow(mutate_pod_with_reads(
        &config,
        "spark",
        &d,
        &with_queue(QueueLookup::Failed("503 Service Unavailable".into())),
    ));
    assert!(
        warnings
            .iter()
            .any(|w| w == "sparkgang: queue \"etl\" not checked (503 Service Unavailable)"),
        "{warnings:?}"
    );
    // Executors inherit their driver's queue: never checked.
    assert_eq!(queue_to_check(&d), Some("etl"));
    let mut e = queued_driver("etl");
    e.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("spark-role".into(), "executor".into());
    assert_eq!(queue_to_check(&e), None);
}
