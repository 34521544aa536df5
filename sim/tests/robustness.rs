//! Malformed requests get a 4xx `Status`, never a panic or a 5xx; table cases plus generated ones.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use serde_json::{Value, json};

fn assert_status(r: &common::Raw, code: u16, what: &str) {
    assert_eq!(
        r.status,
        code,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let s = r.json();
    assert_eq!(s["kind"], "Status", "{what}");
    assert_eq!(s["apiVersion"], "v1", "{what}");
    assert_eq!(s["status"], "Failure", "{what}");
    assert_eq!(s["code"], code, "{what}");
    assert!(
        s["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}"
    );
    assert!(s["reason"].is_string(), "{what}");
}

#[tokio::test]
async fn bad_requests_get_statuses() {
    let server = common::server().await;
    let a = server.address();
    let pods = "/api/v1/namespaces/spark/pods";
    let pod = common::pod_json("p", json!({}));
    assert_eq!(common::post_json(a, pods, &pod).await.status, 201);
    let j = Some("application/json");
    type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("POST", pods.into(), j, b"not json".to_vec(), 400),
        ("POST", pods.into(), j, b"[1,2]".to_vec(), 400),
        ("POST", pods.into(), j, Vec::new(), 400),
        ("POST", pods.into(), j, br#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"x"}}"#.to_vec(), 400),
        ("POST", pods.into(), j, br#"{"apiVersion":"v2","kind":"Pod","metadata":{"name":"x"}}"#.to_vec(), 400),
        ("POST", pods.into(), j, serde_json::to_vec(&common::pod_json("Bad_Name", json!({}))).unwrap(), 422),
        ("POST", pods.into(), j, br#"{"apiVersion":"v1","kind":"Pod","metadata":{},"spec":{"containers":[{"name":"c"}]}}"#.to_vec(), 422),
        ("POST", pods.into(), j, serde_json::to_vec(&common::pod_json("l", json!({"bad key!": "x"}))).unwrap(), 422),
        ("POST", pods.into(), j, serde_json::to_vec(&common::pod_json("l", json!({"k": "bad value!"}))).unwrap(), 422),
        ("POST", pods.into(), j, br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nospec"}}"#.to_vec(), 422),
        ("POST", pods.into(), j, br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"rv","resourceVersion":"5"},"spec":{"containers":[{"name":"c"}]}}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/other/pods".into(), j, br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","namespace":"spark"},"spec":{"containers":[{"name":"c"}]}}"#.to_vec(), 400),
        ("POST", pods.into(), Some("application/vnd.kubernetes.protobuf"), b"\x00\x01".to_vec(), 415),
        ("POST", "/api/v1/pods".into(), j, serde_json::to_vec(&pod).unwrap(), 404),
        ("POST", "/api/v1/namespaces/spark/services".into(), j, br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"1svc"}}"#.to_vec(), 422),
        ("GET", format!("{pods}?labelSelector=a%20in%20(b"), None, Vec::new(), 400),
        ("GET", format!("{pods}?labelSelector=%3Db"), None, Vec::new(), 400),
        ("GET", format!("{pods}?fieldSelector=foo"), None, Vec::new(), 400),
        ("GET", format!("{pods}?fieldSelector=spec.foo%3Dx"), None, Vec::new(), 400),
        ("GET", format!("{pods}?limit=abc"), None, Vec::new(), 400),
        ("GET", format!("{pods}?continue=garbage"), None, Vec::new(), 400),
        ("GET", format!("{pods}?watch=true&resourceVersion=abc"), None, Vec::new(), 400),
        ("GET", format!("{pods}?watch=true&timeoutSeconds=-1"), None, Vec::new(), 400),
        ("GET", format!("{pods}?watch=true&sendInitialEvents=true"), None, Vec::new(), 422),
        ("GET", format!("{pods}?dryRun=Some"), None, Vec::new(), 200),
        ("GET", "/api/v1/foos".into(), None, Vec::new(), 404),
        ("GET", "/api/v2/pods".into(), None, Vec::new(), 404),
        ("GET", "/apis/nope.io/v1/things".into(), None, Vec::new(), 404),
        ("GET", "/apis/nope.io".into(), None, Vec::new(), 404),
        ("GET", "/apis/nope.io/v1".into(), None, Vec::new(), 404),
        // A pod that has not started has no log yet (kube-apiserver answers the same).
        ("GET", format!("{pods}/p/log"), None, Vec::new(), 400),
        ("GET", format!("{pods}/missing/log"), None, Vec::new(), 404),
        ("GET", format!("{pods}/p/log?container=nope"), None, Vec::new(), 400),
        ("GET", format!("{pods}/p/status/extra"), None, Vec::new(), 404),
        ("GET", "/api/v1/nodes/n/binding".into(), None, Vec::new(), 404),
        ("GET", "/api/v1/namespaces/spark/nodes".into(), None, Vec::new(), 404),
        ("GET", format!("{pods}/missing"), None, Vec::new(), 404),
        ("GET", "/nothing/here".into(), None, Vec::new(), 404),
        ("POST", "/version".into(), j, b"{}".to_vec(), 405),
        ("PATCH", format!("{pods}/p"), Some("text/plain"), b"{}".to_vec(), 415),
        ("PATCH", format!("{pods}/p"), None, b"{}".to_vec(), 415),
        ("PATCH", format!("{pods}/p"), Some("application/json-patch+json"), b"{}".to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/json-patch+json"), br#"[{"op":"explode"}]"#.to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/json-patch+json"), br#"[{"op":"remove","path":"/nope"}]"#.to_vec(), 422),
        ("PATCH", format!("{pods}/p"), Some("application/json-patch+json"), br#"[{"op":"replace","path":"","value":7}]"#.to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/merge-patch+json"), b"[1]".to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/merge-patch+json"), b"{".to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/merge-patch+json"), Vec::new(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/merge-patch+json"), br#"{"metadata":{"name":"q"}}"#.to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/merge-patch+json"), br#"{"metadata":{"resourceVersion":"1"}}"#.to_vec(), 409),
        ("PATCH", format!("{pods}/p"), Some("application/merge-patch+json"), br#"{"metadata":{"labels":{"a":{"b":1}}}}"#.to_vec(), 422),
        ("PATCH", format!("{pods}/p"), Some("application/strategic-merge-patch+json"), br#"{"spec":{"containers":[{"image":"x"}]}}"#.to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/strategic-merge-patch+json"), b"\"str\"".to_vec(), 400),
        ("PATCH", format!("{pods}/p"), Some("application/apply-patch+yaml"), br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#.to_vec(), 422),
        ("PATCH", format!("{pods}/p?fieldManager=t"), Some("application/apply-patch+yaml"), br#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"p"}}"#.to_vec(), 400),
        ("PATCH", format!("{pods}/p?fieldManager=t"), Some("application/apply-patch+yaml"), b"a: [b".to_vec(), 400),
        ("PATCH", format!("{pods}/p?fieldManager=t"), Some("application/apply-patch+yaml"), b"- 1".to_vec(), 400),
        ("PATCH", format!("{pods}/missing"), Some("application/merge-patch+json"), b"{}".to_vec(), 404),
        ("PATCH", format!("{pods}/p/binding"), Some("application/merge-patch+json"), b"{}".to_vec(), 405),
        ("PATCH", pods.into(), Some("application/merge-patch+json"), b"{}".to_vec(), 405),
        ("PUT", format!("{pods}/p"), j, serde_json::to_vec(&common::pod_json("q", json!({}))).unwrap(), 400),
        ("PUT", format!("{pods}/p"), j, b"nope".to_vec(), 400),
        ("PUT", format!("{pods}/missing"), j, serde_json::to_vec(&common::pod_json("missing", json!({}))).unwrap(), 404),
        ("PUT", format!("{pods}/p/binding"), j, b"{}".to_vec(), 405),
        ("PUT", pods.into(), j, b"{}".to_vec(), 405),
        ("DELETE", format!("{pods}/p"), j, b"garbage".to_vec(), 400),
        ("DELETE", format!("{pods}/p"), j, b"[]".to_vec(), 400),
        ("DELETE", format!("{pods}/p?propagationPolicy=Bogus"), None, Vec::new(), 400),
        ("DELETE", format!("{pods}/p"), j, br#"{"preconditions":{"uid":"other"}}"#.to_vec(), 409),
        ("DELETE", format!("{pods}/p"), j, br#"{"preconditions":{"resourceVersion":"1"}}"#.to_vec(), 409),
        ("DELETE", format!("{pods}/p/status"), None, Vec::new(), 405),
        ("DELETE", format!("{pods}?labelSelector=in%20%28"), None, Vec::new(), 400),
        ("POST", format!("{pods}/missing/binding"), j, br#"{"target":{"name":"n"}}"#.to_vec(), 404),
        ("POST", format!("{pods}/p/binding"), j, br#"{"target":{"name":""}}"#.to_vec(), 422),
        ("POST", format!("{pods}/p/binding"), j, br#"{"target":{"kind":"Pod","name":"n"}}"#.to_vec(), 422),
        ("POST", format!("{pods}/p/binding"), j, br#"{"metadata":{"name":"other"},"target":{"name":"n"}}"#.to_vec(), 400),
        ("POST", format!("{pods}/p"), j, b"{}".to_vec(), 405),
        ("POST", format!("{pods}/p/status"), j, b"{}".to_vec(), 405),
        ("OPTIONS", pods.into(), None, Vec::new(), 405),
        ("POST", format!("{pods}?dryRun=Maybe"), j, serde_json::to_vec(&common::pod_json("dry", json!({}))).unwrap(), 400),
        ("POST", "/apis/sparkgang.io/v1/namespaces/spark/resourcereservations".into(), j, br#"{"apiVersion":"sparkgang.io/v1","kind":"ResourceReservation","metadata":{"name":"UPPER"}}"#.to_vec(), 422),
    ];
    for (method, path, ct, body, code) in cases {
        let what = format!("{method} {path} {}", String::from_utf8_lossy(&body));
        let r = common::raw(a, method, &path, ct, body).await;
        if code == 200 {
            assert_eq!(r.status, 200, "{what}");
            continue;
        }
        assert_status(&r, code, &what);
    }
    // The invalid-name Status lists the cause, as kubectl shows it.
    let r = common::post_json(a, pods, &common::pod_json("Bad_Name", json!({}))).await;
    let s = r.json();
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(s["details"]["kind"], "Pod");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
    // dryRun stores nothing.
    let r = common::post_json(
        a,
        &format!("{pods}?dryRun=All"),
        &common::pod_json("dry", json!({})),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(common::get(a, &format!("{pods}/dry")).await.status, 404);
    // The pod survived every bad request.
    assert_eq!(common::get(a, &format!("{pods}/p")).await.status, 200);
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9_./~-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_owned()),
                    Just("spec".to_owned()),
                    Just("status".to_owned()),
                    Just("name".to_owned()),
                    Just("op".to_owned()),
                    Just("path".to_owned()),
                    Just("value".to_owned()),
                    Just("labels".to_owned()),
                    Just("containers".to_owned()),
                    Just("schedulingGates".to_owned()),
                    Just("$patch".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE"]);
    let path = prop::sample::select(vec![
        "/api/v1/namespaces/spark/pods",
        "/api/v1/namespaces/spark/pods/p",
        "/api/v1/namespaces/spark/pods/p/status",
        "/api/v1/namespaces/spark/pods/p/binding",
        "/api/v1/nodes",
        "/api/v1/nodes/n",
        "/api/v1/namespaces/spark/configmaps/c",
        "/apis/sparkgang.io/v1/namespaces/spark/resourcereservations/r",
        "/apis/events.k8s.io/v1/namespaces/spark/events",
        "/apis/coordination.k8s.io/v1/namespaces/spark/leases/l",
        "/api/v1/namespaces/x%2Fy/pods",
        "/api/v1/namespaces",
    ]);
    let query = prop::collection::vec(
        (
            prop::sample::select(vec![
                "labelSelector",
                "fieldSelector",
                "limit",
                "continue",
                "resourceVersion",
                "dryRun",
                "fieldManager",
                "propagationPolicy",
                "timeoutSeconds",
            ]),
            "[a-z0-9=!,() .%-]{0,10}",
        ),
        0..3,
    );
    let ct = prop::sample::select(vec![
        None,
        Some("application/json"),
        Some("application/json-patch+json"),
        Some("application/merge-patch+json"),
        Some("application/strategic-merge-patch+json"),
        Some("application/apply-patch+yaml"),
        Some("application/yaml"),
        Some("text/plain"),
    ]);
    let body = prop_oneof![
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
        any_json().prop_map(|v| {
            let mut pod = common::pod_json("p", json!({}));
            pod["spec"] = v;
            serde_json::to_vec(&pod).unwrap()
        }),
    ];
    (method, path, query, ct, body).prop_map(|(method, path, query, content_type, body)| {
        let q: Vec<String> = query
            .into_iter()
            .map(|(k, v)| {
                let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
                format!("{k}={v}")
            })
            .collect();
        let path = if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", q.join("&"))
        };
        Case {
            method,
            path,
            content_type,
            body,
        }
    })
}

static OK: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

async fn check(addr: SocketAddr, c: &Case) -> Result<(), String> {
    // A watch stays open: never ask for one here.
    if c.path.contains("watch") {
        return Ok(());
    }
    let r = common::raw(addr, c.method, &c.path, c.content_type, c.body.clone()).await;
    if r.status < 400 {
        OK.fetch_add(1, Ordering::Relaxed);
    } else {
        REFUSED.fetch_add(1, Ordering::Relaxed);
    }
    if r.status >= 500 {
        return Err(format!(
            "{c:?} → {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    if r.status >= 400 {
        let s: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("{c:?} → {} not JSON: {e}", r.status))?;
        if s["kind"] != "Status" || s["code"] != r.status {
            return Err(format!("{c:?} → {} {s}", r.status));
        }
    }
    Ok(())
}

#[test]
fn generated_requests_never_fail_the_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(common::server());
    let addr = server.address();
    rt.block_on(async {
        // Objects for the requests to hit.
        common::post_json(
            addr,
            "/api/v1/namespaces/spark/pods",
            &common::pod_json("p", json!({})),
        )
        .await;
        common::post_json(
            addr,
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}),
        )
        .await;
    });
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 400,
        failure_persistence: None,
        ..Default::default()
    });
    runner
        .run(&case(), |c| {
            rt.block_on(check(addr, &c))
                .map_err(proptest::test_runner::TestCaseError::fail)
        })
        .unwrap();
    let (ok, refused) = (OK.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed));
    eprintln!("generated requests: {ok} accepted, {refused} refused");
    assert!(ok > 20 && refused > 100, "{ok} accepted, {refused} refused");
    // Still serving.
    let r = rt.block_on(common::get(addr, "/api/v1/namespaces/spark/pods"));
    assert_eq!(r.status, 200);
    drop(server);
}
