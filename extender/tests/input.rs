//! What `/filter` and `/preempt` refuse, over real HTTP against the real router: each
//! malformed body gets its own status and a message naming what was wrong; and what
//! `/preempt` keeps of kube-scheduler's candidates (no node whose victims include a Spark pod).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use sparkgang_common::api::extender::ExtenderPreemptionResult;
use sparkgang_common::cluster::{ClusterState, SchedulerConfig};
use sparkgang_extender::Extender;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::input::{MAX_BODY_BYTES, MAX_JSON_DEPTH};
use sparkgang_extender::server::filter_router;
use sparkgang_testing::fixtures;
use tokio::net::{TcpListener, TcpStream};

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"instance-group": "batch"}},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

/// A running pod on `node`; `role` makes it a Spark pod of application `spark-1`.
fn pod(name: &str, uid: &str, node: &str, role: Option<&str>) -> Value {
    let mut labels = json!({"app": "web"});
    if let Some(role) = role {
        labels = json!({"spark-role": role, "spark-app-selector": "spark-1"});
    }
    json!({
        "metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels},
        "spec": {"nodeName": node, "schedulerName": "spark-scheduler",
                 "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": "Running"}
    })
}

/// The extender, ready, with three nodes: a Spark driver on node-b, a Spark executor on
/// node-c, and web pods on every node.
async fn serve() -> (SocketAddr, Arc<Extender>) {
    let mut state = ClusterState::new(SchedulerConfig::default());
    for n in ["node-a", "node-b", "node-c"] {
        state.apply_node(&node(n));
    }
    for p in [
        pod("web-a", "u-web-a", "node-a", None),
        pod("web-b", "u-web-b", "node-b", None),
        pod("web-c", "u-web-c", "node-c", None),
        pod("driver", "u-driver", "node-b", Some("driver")),
        pod("exec-1", "u-exec-1", "node-c", Some("executor")),
    ] {
        state.apply_pod(&serde_json::from_value::<Pod>(p).unwrap());
    }
    let (ext, _effects) = Extender::standalone(state, Arc::new(SystemClock));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, filter_router(ext.clone())).into_future());
    (addr, ext)
}

/// One POST with the given content type (none when `None`), as kube-scheduler sends it.
async fn post(
    addr: SocketAddr,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = Request::post(path).header("host", "127.0.0.1");
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (StatusCode, String) {
    post(
        addr,
        path,
        Some("application/json"),
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn driver_args() -> Value {
    let text = fixtures::read(fixtures::KUBE_SCHEDULER_WIRE, "filter-args.driver.json");
    serde_json::from_str(&text).unwrap()
}

/// `levels` nested arrays around `1`: valid JSON, well under serde_json's own limit of 128.
fn nested(levels: usize) -> Value {
    let text = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    serde_json::from_str(&text).unwrap()
}

/// Bodies refused by both verbs alike, with the word naming the document.
fn common_cases(
    what: &str,
    good: &Value,
) -> Vec<(Option<&'static str>, Vec<u8>, StatusCode, String)> {
    let mut deep = good.clone();
    deep["Pod"]["metadata"]["labels"] = json!({"x": nested(MAX_JSON_DEPTH)});
    vec![
        (
            Some("text/plain"),
            serde_json::to_vec(good).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            r#"content type "text/plain" is not application/json"#.to_owned(),
        ),
        (
            None,
            serde_json::to_vec(good).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "no content type; send application/json".to_owned(),
        ),
        (
            Some("application/json"),
            b" \n".to_vec(),
            StatusCode::BAD_REQUEST,
            format!("the body is empty; send kube-scheduler's {what} as JSON"),
        ),
        (
            Some("application/json"),
            b"not json".to_vec(),
            StatusCode::BAD_REQUEST,
            format!("the body is not kube-scheduler {what} JSON: expected ident"),
        ),
        (
            Some("application/json"),
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            format!("the body is not kube-scheduler {what} JSON: invalid type: sequence"),
        ),
        (
            Some("application/json"),
            serde_json::to_vec(&deep).unwrap(),
            StatusCode::BAD_REQUEST,
            format!("JSON nesting deeper than {MAX_JSON_DEPTH} levels"),
        ),
        (
            // A truncated attack body: no closers at all.
            Some("application/json"),
            vec![b'['; 100_000],
            StatusCode::BAD_REQUEST,
            format!("JSON nesting deeper than {MAX_JSON_DEPTH} levels (at byte {MAX_JSON_DEPTH})"),
        ),
    ]
}

async fn check(
    addr: SocketAddr,
    path: &str,
    cases: Vec<(Option<&'static str>, Vec<u8>, StatusCode, String)>,
) {
    for (content_type, body, want, words) in cases {
        let (status, text) = post(addr, path, content_type, body).await;
        assert_eq!(status, want, "{path} {words}: {text}");
        assert!(text.contains(&words), "{path}: {text:?} lacks {words:?}");
    }
}

#[tokio::test]
async fn filter_names_what_is_wrong_with_each_body() {
    let (addr, _ext) = serve().await;
    let good = driver_args();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let json = Some("application/json");
    let mut cases = common_cases("ExtenderArgs", &good);
    cases.extend([
        (
            json,
            with(&|v| v["NodeNames"] = json!(["node-a", 1])),
            StatusCode::BAD_REQUEST,
            "NodeNames: invalid type: integer `1`, expected a string".to_owned(),
        ),
        (
            json,
            with(&|v| v["Pod"]["metadata"]["labels"] = json!(3)),
            StatusCode::BAD_REQUEST,
            "ExtenderArgs JSON: Pod: invalid type: integer `3`".to_owned(),
        ),
        (
            json,
            with(&|v| v["Nodes"] = json!({"items": [{"metadata": {"name": 7}}]})),
            StatusCode::BAD_REQUEST,
            "ExtenderArgs JSON: Nodes: invalid type: integer `7`".to_owned(),
        ),
        (
            json,
            with(&|v| v["Pod"] = Value::Null),
            StatusCode::BAD_REQUEST,
            "ExtenderArgs has no Pod".to_owned(),
        ),
        (
            json,
            with(&|v| {
                v["Pod"]["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .retain(|k, _| k != "name")
            }),
            StatusCode::BAD_REQUEST,
            "ExtenderArgs.Pod has no metadata.name".to_owned(),
        ),
        (
            json,
            with(&|v| v["Pod"]["metadata"]["namespace"] = Value::Null),
            StatusCode::BAD_REQUEST,
            "ExtenderArgs.Pod has no metadata.namespace".to_owned(),
        ),
        (
            json,
            with(&|v| {
                v["NodeNames"] = Value::Null;
                v.as_object_mut().unwrap().remove("Nodes");
            }),
            StatusCode::BAD_REQUEST,
            "ExtenderArgs has neither NodeNames nor Nodes".to_owned(),
        ),
    ]);
    check(addr, "/filter", cases).await;

    // Brackets inside strings are not nesting, and nesting up to the cap is fine.
    let mut fine = good.clone();
    fine["NodeNames"] = json!(["node-a"]);
    fine["Pod"]["metadata"]["annotations"] = json!({"note": "[{".repeat(1000)});
    fine["Pod"]["metadata"]["labels"]["deep"] = json!("]]]}}}\"[[[");
    fine["Extra"] = nested(MAX_JSON_DEPTH - 1);
    let (status, text) = post_json(addr, "/filter", &fine).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"NodeNames\""), "{text}");
}

#[tokio::test]
async fn bodies_over_the_cap_get_413_naming_it() {
    let (addr, _ext) = serve().await;
    for path in ["/filter", "/preempt"] {
        let (status, text) = post(
            addr,
            path,
            Some("application/json"),
            vec![b' '; MAX_BODY_BYTES + 1],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {text}");
        assert_eq!(
            text,
            "the body is larger than 67108864 bytes (64 MiB), the extender's cap"
        );
    }
    // The listener still answers.
    let (status, text) = post_json(addr, "/filter", &driver_args()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

fn meta_victims(victims: &[(&str, &[&str], i64)]) -> Value {
    let map: serde_json::Map<String, Value> = victims
        .iter()
        .map(|(node, uids, pdb)| {
            let pods: Vec<Value> = uids.iter().map(|u| json!({"UID": u})).collect();
            (
                (*node).to_owned(),
                json!({"Pods": pods, "NumPDBViolations": pdb}),
            )
        })
        .collect();
    Value::Object(map)
}

fn preemptor() -> Value {
    pod("pending-driver", "u-pending", "", Some("driver"))
}

#[tokio::test]
async fn preempt_keeps_only_nodes_without_spark_victims() {
    let (addr, _ext) = serve().await;
    // nodeCacheCapable: victims by UID. node-d is unknown to the state; its victim too.
    let args = json!({
        "Pod": preemptor(),
        "NodeNameToVictims": null,
        "NodeNameToMetaVictims": meta_victims(&[
            ("node-a", &["u-web-a"], 1),
            ("node-b", &["u-web-b", "u-driver"], 0),
            ("node-c", &["u-exec-1"], 0),
            ("node-d", &["u-elsewhere"], 2),
        ]),
    });
    let (status, text) = post_json(addr, "/preempt", &args).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let result: ExtenderPreemptionResult = serde_json::from_str(&text).unwrap();
    let kept = result
        .node_name_to_meta_victims
        .expect("NodeNameToMetaVictims");
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["node-a", "node-d"]);
    // Victims unchanged, in Go's keys.
    let raw: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        raw,
        json!({"NodeNameToMetaVictims": meta_victims(&[
            ("node-a", &["u-web-a"], 1),
            ("node-d", &["u-elsewhere"], 2),
        ])})
    );

    // Not nodeCacheCapable: whole victim pods, answered by UID all the same.
    let args = json!({
        "Pod": preemptor(),
        "NodeNameToVictims": {
            "node-a": {"Pods": [pod("web-a", "u-web-a", "node-a", None)], "NumPDBViolations": 0},
            "node-c": {"Pods": [pod("web-c", "u-web-c", "node-c", None),
                                 pod("exec-1", "u-exec-1", "node-c", Some("executor"))],
                       "NumPDBViolations": 0},
        },
        "NodeNameToMetaVictims": null,
    });
    let (status, text) = post_json(addr, "/preempt", &args).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let raw: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        raw,
        json!({"NodeNameToMetaVictims": meta_victims(&[("node-a", &["u-web-a"], 0)])})
    );

    // Every node has a Spark victim: nothing to preempt.
    let args = json!({
        "Pod": preemptor(),
        "NodeNameToMetaVictims": meta_victims(&[("node-c", &["u-web-c", "u-exec-1"], 0)]),
    });
    let (status, text) = post_json(addr, "/preempt", &args).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, r#"{"NodeNameToMetaVictims":{}}"#);
}

#[tokio::test]
async fn preempt_names_what_is_wrong_with_each_body() {
    let (addr, _ext) = serve().await;
    let good = json!({
        "Pod": preemptor(),
        "NodeNameToMetaVictims": meta_victims(&[("node-a", &["u-web-a"], 0)]),
    });
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let json = Some("application/json");
    let mut cases = common_cases("ExtenderPreemptionArgs", &good);
    cases.extend([
        (
            json,
            with(&|v| v["Pod"] = Value::Null),
            StatusCode::BAD_REQUEST,
            "ExtenderPreemptionArgs has no Pod".to_owned(),
        ),
        (
            json,
            with(&|v| v["Pod"]["metadata"]["name"] = json!("")),
            StatusCode::BAD_REQUEST,
            "ExtenderPreemptionArgs.Pod has no metadata.name".to_owned(),
        ),
        (
            json,
            with(&|v| {
                v.as_object_mut().unwrap().remove("NodeNameToMetaVictims");
            }),
            StatusCode::BAD_REQUEST,
            "ExtenderPreemptionArgs has neither NodeNameToMetaVictims nor NodeNameToVictims"
                .to_owned(),
        ),
        (
            json,
            with(&|v| v["NodeNameToVictims"] = json!({})),
            StatusCode::BAD_REQUEST,
            "has both NodeNameToMetaVictims and NodeNameToVictims".to_owned(),
        ),
        (
            json,
            with(&|v| v["NodeNameToMetaVictims"]["node-a"]["Pods"][0]["UID"] = json!("")),
            StatusCode::BAD_REQUEST,
            r#"NodeNameToMetaVictims["node-a"].Pods[0] has no UID"#.to_owned(),
        ),
        (
            json,
            with(&|v| v["NodeNameToMetaVictims"]["node-a"]["NumPDBViolations"] = json!("one")),
            StatusCode::BAD_REQUEST,
            "ExtenderPreemptionArgs JSON: NodeNameToMetaVictims: invalid type: string \"one\""
                .to_owned(),
        ),
    ]);
    check(addr, "/preempt", cases).await;
    let (status, _) = post(addr, "/preempt", json, serde_json::to_vec(&good).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn both_verbs_answer_503_without_a_state() {
    let (addr, ext) = serve().await;
    // A replica that has lost its lease drops its state.
    let taken = ext.state.lock().unwrap().take();
    assert!(taken.is_some());
    let preempt = json!({
        "Pod": preemptor(),
        "NodeNameToMetaVictims": meta_victims(&[("node-a", &["u-web-a"], 0)]),
    });
    for (path, body) in [("/filter", driver_args()), ("/preempt", preempt)] {
        let (status, text) = post_json(addr, path, &body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {text}");
        assert_eq!(text, "not ready");
    }
}
