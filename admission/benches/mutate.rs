//! The mutate path without HTTP: AdmissionReview bytes in → AdmissionReview response bytes out,
//! for the real pods spark-submit created (target: ≤ 20 µs for a driver).
//!
//! `cargo bench -p sparkgang-admission --bench mutate`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use sparkgang_admission::review_client::{decode_response, pod_create_review};
use sparkgang_admission::{MutationConfig, review};
use sparkgang_testing::fixtures;

fn fixture_pod(file: &str) -> Value {
    fixtures::jsonl(fixtures::SPARK, file)
        .into_iter()
        .find(|v| v["method"] == "POST" && v["path"].as_str().is_some_and(|p| p.ends_with("/pods")))
        .map(|v| v["body"].clone())
        .expect("a pod in the fixture")
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn bench(c: &mut Criterion) {
    let config = MutationConfig {
        default_instance_group: Some("general".into()),
        ..MutationConfig::default()
    };
    let driver = pod_create_review(
        "spark",
        "uid",
        &fixture_pod("cluster-static.requests.jsonl"),
        false,
    );
    let driver_bytes = bytes(&driver);
    // The same driver after the webhook ran (reinvocation): no patch.
    let answer = decode_response(&review(&config, &driver_bytes).unwrap().body).unwrap();
    let mut patched = driver["request"]["object"].clone();
    let ops: json_patch::Patch = serde_json::from_value(answer.patch.unwrap()).unwrap();
    json_patch::patch(&mut patched, &ops).unwrap();
    let mut again = driver.clone();
    again["request"]["object"] = patched;
    let again_bytes = bytes(&again);
    let executor_bytes = bytes(&pod_create_review(
        "spark",
        "uid",
        &fixture_pod("cluster-static.executors.jsonl"),
        false,
    ));
    let dynamic_driver_bytes = bytes(&pod_create_review(
        "spark",
        "uid",
        &fixture_pod("cluster-dynamic-gpu.requests.jsonl"),
        false,
    ));

    let mut group = c.benchmark_group("review");
    for (name, body) in [
        ("driver cluster-static (patched)", &driver_bytes),
        (
            "driver cluster-dynamic-gpu (patched)",
            &dynamic_driver_bytes,
        ),
        ("driver already mutated (no patch)", &again_bytes),
        ("executor cluster-static (patched)", &executor_bytes),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| review(black_box(&config), black_box(body)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
