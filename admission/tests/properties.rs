//! Properties over the router (`tower::ServiceExt::oneshot`): random pods and random bodies never
//! get a 5xx or a panic; every patch applies with json-patch; the webhook on its own output gives
//! no patch; warnings stay under 120 characters.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sparkgang_admission::metrics::Metrics;
use sparkgang_admission::review_client::{decode_response, pod_create_review};
use sparkgang_admission::server::AppState;
use sparkgang_admission::{AdmissionConfig, MutationConfig, router};
use tower::ServiceExt;

fn app() -> axum::Router {
    let mut config = AdmissionConfig::with_tls_files("unused.crt", "unused.key");
    config.default_instance_group = Some("general".into());
    config
        .default_instance_group_by_namespace
        .insert("spark".into(), "spark-pool".into());
    router(AppState::new(
        MutationConfig::from(&config),
        Arc::new(Metrics::new()),
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn post(
    app: &axum::Router,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::post("/mutate");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

fn string_from(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(options).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9./~_-]{0,12}",
        1 => any::<String>(),
    ]
}

fn string_map(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        8 => proptest::collection::btree_map(string_from(keys), string_from(values), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())),
        1 => arb_json(),
    ]
}

const LABEL_KEYS: &[&str] = &[
    "spark-role",
    "spark-app-selector",
    "spark-app-id",
    "team",
    "instance-group",
    "a.io/b",
];
const LABEL_VALUES: &[&str] = &["driver", "executor", "", "spark-1", "spark-2", "batch"];
const ANNOTATION_KEYS: &[&str] = &[
    "spark-driver-cpu",
    "spark-driver-mem",
    "spark-driver-nvidia.com/gpu",
    "spark-executor-cpu",
    "spark-executor-mem",
    "spark-executor-nvidia.com/gpu",
    "spark-executor-count",
    "spark-dynamic-allocation-enabled",
    "spark-dynamic-allocation-min-executor-count",
    "spark-dynamic-allocation-max-executor-count",
    "sparkgang.io/demand",
    "sparkgang.io/spark-conf-map",
    "x~y",
];
const ANNOTATION_VALUES: &[&str] = &[
    "1",
    "2",
    "500m",
    "4g",
    "512m",
    "0m",
    "1408Mi",
    "4Gi",
    "-1",
    "1e20",
    "3000000000",
    "true",
    "false",
    "yes",
    "",
    "2.5",
    "1k",
    "spark-drv-1-conf-map",
    r#"{"driver":{"cpuMilli":1000,"memoryBytes":1},"executor":{"cpuMilli":1,"memoryBytes":1},"minExecutors":1,"maxExecutors":2}"#,
];
const SCHEDULERS: &[&str] = &["", "default-scheduler", "spark-scheduler", "volcano"];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_owner_refs() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        3 => (any::<bool>(), proptest::sample::select(&["Pod", "ReplicaSet"][..])).prop_map(|(controller, kind)| {
            json!([{"apiVersion": "v1", "kind": kind, "name": "drv", "uid": "u-1", "controller": controller}])
        }),
    ]
}

fn arb_spec() -> impl Strategy<Value = Value> {
    let volumes = prop_oneof![
        Just(Value::Null),
        string_from(&["spark-drv-1-conf-map", ""]).prop_map(|name| json!([
            {"name": "spark-local-dir-1", "emptyDir": {}},
            {"name": "spark-conf-volume-driver", "configMap": {"name": name}}
        ])),
        Just(json!([{"name": "spark-conf-volume", "configMap": {"name": "legacy-conf"}}])),
        Just(json!([])),
    ];
    let affinity = prop_oneof![
        3 => Just(Value::Null),
        1 => proptest::collection::vec(string_from(&["batch", "gpu"]), 0..3).prop_map(|values| json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "instance-group", "operator": "In", "values": values}]}]}}
        })),
    ];
    let gates = prop_oneof![
        Just(Value::Null),
        Just(json!([])),
        Just(json!([{"name": "other"}])),
        Just(json!([{"name": "sparkgang.io/spark-conf"}])),
    ];
    let spec = (
        proptest::option::of(string_from(SCHEDULERS)),
        string_map(&["instance-group", "zone"], &["batch", "a", ""]),
        affinity,
        volumes,
        gates,
    )
        .prop_map(|(scheduler, node_selector, affinity, volumes, gates)| {
            let mut spec = Map::new();
            spec.insert("containers".into(), json!([{"name": "c", "image": "i"}]));
            if let Some(s) = scheduler {
                spec.insert("schedulerName".into(), Value::String(s));
            }
            for (k, v) in [
                ("nodeSelector", node_selector),
                ("affinity", affinity),
                ("volumes", volumes),
                ("schedulingGates", gates),
            ] {
                if !v.is_null() {
                    spec.insert(k.into(), v);
                }
            }
            Value::Object(spec)
        });
    prop_oneof![8 => spec, 1 => Just(Value::Null), 1 => arb_json()]
}

/// Labels: mostly a Spark role (so most cases reach the mutation), plus random others.
fn arb_labels() -> impl Strategy<Value = Value> {
    (
        prop_oneof![4 => Just(Some("driver")), 4 => Just(Some("executor")), 1 => Just(None)],
        proptest::option::of(string_from(&["spark-1", ""])),
        string_map(LABEL_KEYS, LABEL_VALUES),
    )
        .prop_map(|(role, selector, mut labels)| {
            if let Some(map) = labels.as_object_mut() {
                if let Some(role) = role {
                    map.insert("spark-role".into(), json!(role));
                }
                if let Some(s) = selector {
                    map.insert("spark-app-selector".into(), json!(s));
                }
            }
            labels
        })
}

/// Annotations: often none, else random palantir/sparkgang keys with valid and invalid values.
fn arb_annotations() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        1 => Just(json!({"spark-driver-cpu": "1", "spark-driver-mem": "1g", "spark-executor-cpu": "2",
                         "spark-executor-mem": "4096m", "spark-executor-count": "3"})),
        3 => string_map(ANNOTATION_KEYS, ANNOTATION_VALUES),
    ]
}

fn arb_pod() -> impl Strategy<Value = Value> {
    (
        arb_labels(),
        arb_annotations(),
        arb_owner_refs(),
        arb_spec(),
    )
        .prop_map(|(labels, annotations, owners, spec)| {
            let mut metadata = Map::new();
            metadata.insert("name".into(), json!("pod-1"));
            for (k, v) in [
                ("labels", labels),
                ("annotations", annotations),
                ("ownerReferences", owners),
            ] {
                if !v.is_null() {
                    metadata.insert(k.into(), v);
                }
            }
            let mut pod = Map::new();
            pod.insert("apiVersion".into(), json!("v1"));
            pod.insert("kind".into(), json!("Pod"));
            pod.insert("metadata".into(), Value::Object(metadata));
            if !spec.is_null() {
                pod.insert("spec".into(), spec);
            }
            Value::Object(pod)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_pods_never_fail_and_patches_apply_and_are_idempotent(pod in arb_pod(), dry_run in any::<bool>()) {
        let rt = runtime();
        let app = app();
        rt.block_on(async {
            let review = pod_create_review("spark", "uid-p", &pod, dry_run);
            let (status, body) = post(&app, Some("application/json"), serde_json::to_vec(&review).unwrap()).await;
            prop_assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            let answer = decode_response(&body).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&answer.uid, "uid-p");
            for w in &answer.warnings {
                prop_assert!(w.chars().count() < 120, "warning too long: {}", w);
            }
            if !answer.allowed {
                prop_assert!(answer.patch.is_none());
                let (code, message) = answer.status.clone().unwrap();
                prop_assert_eq!(code, 400);
                prop_assert!(message.starts_with("sparkgang: "));
                return Ok(());
            }
            let Some(patch) = answer.patch else { return Ok(()) };
            let object = &review["request"]["object"];
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| TestCaseError::fail(format!("not RFC 6902: {e}: {patch}")))?;
            let mut patched = object.clone();
            json_patch::patch(&mut patched, &ops)
                .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}: {patch} to {object}")))?;
            let mut again = review.clone();
            again["request"]["object"] = patched.clone();
            let (status, body) = post(&app, Some("application/json"), serde_json::to_vec(&again).unwrap()).await;
            prop_assert_eq!(status, StatusCode::OK);
            let second = decode_response(&body).map_err(TestCaseError::fail)?;
            prop_assert!(second.allowed);
            prop_assert!(second.patch.is_none(), "not idempotent: first {} then {:?} on {}", patch, second.patch, patched);
            Ok(())
        })?;
    }

    #[test]
    fn random_bodies_never_get_a_5xx(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        request in arb_json(),
        object in arb_json(),
        content_type in proptest::option::of(string_from(&["application/json", "text/plain", "application/json; charset=utf-8"])),
    ) {
        let rt = runtime();
        let app = app();
        rt.block_on(async {
            let envelopes = [
                bytes.clone(),
                serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})).unwrap(),
                serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                    "uid": "u", "operation": "CREATE", "namespace": "spark",
                    "resource": {"group": "", "version": "v1", "resource": "pods"}, "object": object}})).unwrap(),
            ];
            for body in envelopes {
                let (status, text) = post(&app, content_type.as_deref(), body).await;
                prop_assert!(status.is_success() || status.is_client_error(), "{} {}", status, String::from_utf8_lossy(&text));
            }
            Ok(())
        })?;
    }
}

#[test]
fn an_oversized_body_without_content_length_is_413() {
    runtime().block_on(async {
        let app = app();
        let (status, text) =
            post(&app, Some("application/json"), vec![b' '; 4 * 1024 * 1024]).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            String::from_utf8_lossy(&text)
        );
    });
}
