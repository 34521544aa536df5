//! Every driver and executor pod captured from a real Spark 4.3.0 spark-submit, wrapped in an
//! AdmissionReview as kube-apiserver sends it, POSTed over HTTPS to the real server; the returned
//! patch applied with json-patch must give exactly the expected pod, and a second review of that
//! pod must give no patch.

mod support;

use serde_json::{Value, json};
use sparkgang_admission::review_client::pod_create_review;
use support::*;

const GATE: &str = "sparkgang.io/spark-conf";
const CONF_MAP_ANNOTATION: &str = "sparkgang.io/spark-conf-map";

/// What the test server must do to each fixture, written out by hand per file.
struct Expect {
    /// The driver's conf ConfigMap (drivers only).
    conf_map: Option<&'static str>,
    /// The instance group the pod ends up with.
    instance_group: Option<&'static str>,
    /// Whether the webhook touches the pod at all.
    mutated: bool,
}

fn expectation(file: &str, role: &str) -> Expect {
    match (file, role) {
        ("cluster-static.requests.jsonl", "driver") => Expect {
            conf_map: Some("spark-drv-15ca85a213adb269-conf-map"),
            instance_group: Some(SPARK_NAMESPACE_GROUP),
            mutated: true,
        },
        ("cluster-dynamic-gpu.requests.jsonl", "driver") => Expect {
            conf_map: Some("spark-drv-f01b01a213ae260a-conf-map"),
            // spark.kubernetes.node.selector.instance-group=batch: kept.
            instance_group: Some("batch"),
            mutated: true,
        },
        ("cluster-static.executors.jsonl", "executor") => Expect {
            conf_map: None,
            instance_group: Some(SPARK_NAMESPACE_GROUP),
            mutated: true,
        },
        ("cluster-dynamic-gpu.executors.jsonl", "executor") => Expect {
            conf_map: None,
            instance_group: Some("batch"),
            mutated: true,
        },
        // Client mode: no driver pod, no ownerReference: left to the default scheduler.
        ("client-executors-gpu.requests.jsonl", "executor") => Expect {
            conf_map: None,
            instance_group: Some("batch"),
            mutated: false,
        },
        other => panic!("no expectation for {other:?}"),
    }
}

/// The pod the API server should store: the object it sent plus the expected changes.
fn expected_pod(p: &FixturePod, e: &Expect) -> Value {
    let mut pod = p.pod.clone();
    pod["metadata"]["namespace"] = json!(p.namespace);
    if !e.mutated {
        return pod;
    }
    let selector = pod["metadata"]["labels"]["spark-app-selector"].clone();
    assert!(selector.is_string());
    pod["metadata"]["labels"]["spark-app-id"] = selector;
    pod["spec"]["schedulerName"] = json!("spark-scheduler");
    let group = e.instance_group.unwrap();
    if pod["spec"]["nodeSelector"].is_null() {
        pod["spec"]["nodeSelector"] = json!({});
    }
    pod["spec"]["nodeSelector"]["instance-group"] = json!(group);
    if let Some(conf_map) = e.conf_map {
        if pod["metadata"]["annotations"].is_null() {
            pod["metadata"]["annotations"] = json!({});
        }
        pod["metadata"]["annotations"][CONF_MAP_ANNOTATION] = json!(conf_map);
        pod["spec"]["schedulingGates"] = json!([{"name": GATE}]);
    }
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_pod_gets_the_expected_patch_and_a_second_review_gets_none() {
    let server = TestServer::start().await;
    let mut seen = std::collections::BTreeMap::<(&str, String), usize>::new();
    for file in FIXTURE_FILES {
        for (i, p) in fixture_pods(file).into_iter().enumerate() {
            let what = format!("{file} #{i} ({})", p.name());
            *seen.entry((file, p.role().to_owned())).or_default() += 1;
            let e = expectation(file, p.role());
            let review = review_for(&p, &format!("uid-{i}"));
            let object = review["request"]["object"].clone();
            let answer = server.review(&review).await;
            assert_eq!(answer.uid, format!("uid-{i}"), "{what}");
            assert!(answer.allowed, "{what}: {:?}", answer.status);
            assert!(answer.warnings.is_empty(), "{what}: {:?}", answer.warnings);
            let patched = match &answer.patch {
                Some(patch) => {
                    assert!(e.mutated, "{what}: unexpected patch {patch}");
                    apply_patch(&object, patch)
                }
                None => {
                    assert!(!e.mutated, "{what}: no patch");
                    object.clone()
                }
            };
            assert_eq!(patched, expected_pod(&p, &e), "{what}");

            // reinvocationPolicy: IfNeeded — the webhook on its own output changes nothing.
            let mut again = review.clone();
            again["request"]["object"] = patched.clone();
            let second = server.review(&again).await;
            assert!(second.allowed, "{what}");
            assert_eq!(second.patch, None, "{what}: second review patched");

            // A dry run gets exactly the same answer.
            let dry = pod_create_review(&p.namespace, &format!("uid-{i}"), &p.pod, true);
            assert_eq!(server.review(&dry).await, answer, "{what}: dry run differs");
        }
    }
    let counts: Vec<_> = seen
        .iter()
        .map(|((f, r), n)| format!("{f}/{r}: {n}"))
        .collect();
    assert_eq!(
        counts,
        [
            "client-executors-gpu.requests.jsonl/executor: 3",
            "cluster-dynamic-gpu.executors.jsonl/executor: 2",
            "cluster-dynamic-gpu.requests.jsonl/driver: 1",
            "cluster-static.executors.jsonl/executor: 8",
            "cluster-static.requests.jsonl/driver: 1",
        ]
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_pod_defaulted_to_default_scheduler_gets_the_scheduler_replaced() {
    let server = TestServer::start().await;
    let mut p = fixture_pods("cluster-static.requests.jsonl").remove(0);
    p.pod["spec"]["schedulerName"] = json!("default-scheduler");
    let answer = server.review(&review_for(&p, "u")).await;
    let patch = answer.patch.unwrap();
    assert!(
        patch.as_array().unwrap().contains(
            &json!({"op": "replace", "path": "/spec/schedulerName", "value": "spark-scheduler"})
        ),
        "{patch}"
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_patch_escapes_slashes_and_adds_whole_maps() {
    let server = TestServer::start().await;
    // The dynamic driver already has annotations: the conf map is added with ~1.
    let p = fixture_pods("cluster-dynamic-gpu.requests.jsonl").remove(0);
    let patch = server.review(&review_for(&p, "u")).await.patch.unwrap();
    let ops = patch.as_array().unwrap();
    assert!(
        ops.contains(
            &json!({"op": "add", "path": "/metadata/annotations/sparkgang.io~1spark-conf-map",
        "value": "spark-drv-f01b01a213ae260a-conf-map"})
        ),
        "{patch}"
    );
    assert!(
        ops.contains(
            &json!({"op": "add", "path": "/spec/schedulingGates", "value": [{"name": GATE}]})
        ),
        "{patch}"
    );
    // The static driver has none: the whole map is added.
    let p = fixture_pods("cluster-static.requests.jsonl").remove(0);
    let patch = server.review(&review_for(&p, "u")).await.patch.unwrap();
    let ops = patch.as_array().unwrap();
    assert!(
        ops.contains(&json!({"op": "add", "path": "/metadata/annotations",
        "value": {"sparkgang.io/spark-conf-map": "spark-drv-15ca85a213adb269-conf-map"}})),
        "{patch}"
    );
    assert!(
        ops.contains(&json!({"op": "add", "path": "/spec/nodeSelector",
        "value": {"instance-group": SPARK_NAMESPACE_GROUP}})),
        "{patch}"
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn complete_palantir_annotations_mean_no_gate_and_spark_sizes_are_rewritten() {
    let server = TestServer::start().await;
    let mut p = fixture_pods("cluster-static.requests.jsonl").remove(0);
    p.pod["metadata"]["annotations"] = json!({
        "spark-driver-cpu": "1", "spark-driver-mem": "1408Mi",
        "spark-executor-cpu": "2", "spark-executor-mem": "4g", "spark-executor-count": "8"
    });
    let review = review_for(&p, "u");
    let answer = server.review(&review).await;
    assert!(answer.allowed);
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].starts_with("sparkgang: ")
            && answer.warnings[0].contains("spark-executor-mem")
    );
    assert!(answer.warnings[0].chars().count() < 120);
    let patched = apply_patch(&review["request"]["object"], answer.patch.as_ref().unwrap());
    assert_eq!(
        patched["metadata"]["annotations"]["spark-executor-mem"],
        "4Gi"
    );
    assert!(patched["spec"]["schedulingGates"].is_null(), "{patched}");
    assert!(patched["metadata"]["annotations"][CONF_MAP_ANNOTATION].is_null());
    let mut again = review.clone();
    again["request"]["object"] = patched;
    let second = server.review(&again).await;
    assert_eq!(second.patch, None);
    assert!(second.warnings.is_empty());
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn another_scheduler_is_respected_with_a_warning_unless_overwriting() {
    let server = TestServer::start().await;
    let mut p = fixture_pods("cluster-static.requests.jsonl").remove(0);
    p.pod["spec"]["schedulerName"] = json!("volcano");
    let answer = server.review(&review_for(&p, "u")).await;
    assert!(answer.allowed);
    assert_eq!(answer.patch, None);
    assert!(
        answer.warnings[0].contains("volcano"),
        "{:?}",
        answer.warnings
    );
    server.server.shutdown().await.unwrap();

    let server = TestServer::start_with(|c| c.overwrite_scheduler_name = true).await;
    let answer = server.review(&review_for(&p, "u")).await;
    let patched = apply_patch(
        &review_for(&p, "u")["request"]["object"],
        answer.patch.as_ref().unwrap(),
    );
    assert_eq!(patched["spec"]["schedulerName"], "spark-scheduler");
    server.server.shutdown().await.unwrap();
}
