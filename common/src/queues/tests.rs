//! The index: what a Queue's spec may say, and which queue an application belongs to.

use super::*;

fn spec(json: serde_json::Value) -> QueueSpec {
    serde_json::from_value(json).expect("a QueueSpec")
}

fn gpus() -> GpuResourceNames {
    GpuResourceNames::default()
}

#[test]
fn a_valid_spec_reads_as_limits_with_defaults() {
    let s = spec(serde_json::json!({"instanceGroup": "batch",
        "guaranteed": {"cpu": "32", "memory": "128Gi"}, "max": {"cpu": "64"}}));
    let l = QueueLimits::of("etl", &s, &gpus()).unwrap();
    assert_eq!(l.guaranteed, Resources::new(32_000, 128 << 30, 0));
    assert_eq!(l.max, Resources::new(64_000, UNLIMITED, UNLIMITED));
    assert_eq!(l.weight, 1, "the default weight");
    assert_eq!(l.parent, None);
}

#[test]
fn every_bad_spec_says_what_is_wrong_and_what_is_accepted() {
    let cases = [
        (
            serde_json::json!({"instanceGroup": ""}),
            "queue q: spec.instanceGroup is empty; name the instance group it shares",
        ),
        (
            serde_json::json!({"instanceGroup": "b", "guaranteed": {"cpus": "4"}}),
            "queue q: spec.guaranteed names \"cpus\"; accepted: cpu, memory, nvidia.com/gpu",
        ),
        (
            serde_json::json!({"instanceGroup": "b", "max": {"memory": "4g"}}),
            "queue q: spec.max.memory = \"4g\" is not a quantity",
        ),
        (
            serde_json::json!({"instanceGroup": "b", "guaranteed": {"cpu": "8"}, "max": {"cpu": "4"}}),
            "queue q: spec.max.cpu is below spec.guaranteed.cpu",
        ),
        (
            serde_json::json!({"instanceGroup": "b", "weight": 0}),
            "queue q: spec.weight is 0; a weight of 1 or more is accepted",
        ),
        (
            serde_json::json!({"instanceGroup": "b", "parent": "q"}),
            "queue q: spec.parent names the queue itself",
        ),
    ];
    for (json, want) in cases {
        let err = QueueLimits::of("q", &spec(json.clone()), &gpus()).unwrap_err();
        assert!(err.to_string().starts_with(want), "{json}: {err}");
    }
}

#[test]
fn an_application_goes_to_its_label_then_its_namespace_then_the_default() {
    let mut i = QueueIndex::new(Some("shared".into()), gpus());
    assert!(i.is_empty());
    assert_eq!(i.queue_of("etl", None), Ok(None), "no queues, no queue");
    i.apply(
        "etl",
        &spec(serde_json::json!({"instanceGroup": "b", "namespaces": ["etl", "reports"]})),
    );
    i.apply("shared", &spec(serde_json::json!({"instanceGroup": "b"})));
    i.apply("ml", &spec(serde_json::json!({"instanceGroup": "b"})));
    assert_eq!(i.queue_of("reports", None), Ok(Some("etl")));
    assert_eq!(
        i.queue_of("reports", Some("ml")),
        Ok(Some("ml")),
        "the label wins"
    );
    assert_eq!(i.queue_of("other", None), Ok(Some("shared")));
    assert_eq!(
        i.queue_of("etl", Some("analytics"))
            .unwrap_err()
            .to_string(),
        "queue \"analytics\" does not exist; the queues are: etl, ml, shared"
    );
    i.delete("shared");
    assert_eq!(i.queue_of("other", None), Ok(None), "the default is gone");
}

#[test]
fn a_cohort_is_the_queues_of_one_parent() {
    let mut i = QueueIndex::new(None, gpus());
    i.reset([
        (
            "a",
            &spec(serde_json::json!({"instanceGroup": "b", "parent": "org"})),
        ),
        (
            "b",
            &spec(serde_json::json!({"instanceGroup": "b", "parent": "org"})),
        ),
        ("c", &spec(serde_json::json!({"instanceGroup": "b"}))),
    ]);
    assert_eq!(i.cohort("a"), ["a", "b"]);
    assert_eq!(i.cohort("c"), ["c"]);
    assert!(i.cohort("missing").is_empty());
}
