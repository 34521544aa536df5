//! The explain listener as deploy/ runs it (authentication: kubernetes), in the playground:
//! tokens are checked with TokenReviews and each caller sees only the namespaces where a
//! SubjectAccessReview lets them get pods, and capacity only if they may list nodes. The
//! simulated API server answers the reviews from registered tokens and grants.

use std::net::SocketAddr;

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use sparkgang_common::api::explain::AppList;
use sparkgang_sim::playground::{self, Playground};
use sparkgang_tests::wait::eventually;
use std::time::Duration;

/// A driver with its demand in annotations, in `namespace`.
fn driver(namespace: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-driver"), "namespace": namespace,
            "labels": {"spark-role": "driver", "spark-app-id": app},
            "annotations": {"spark-driver-cpu": "1", "spark-driver-mem": "1g",
                "spark-executor-cpu": "1", "spark-executor-mem": "1g",
                "spark-executor-count": "1"}},
        "spec": {"containers": [{"name": "driver", "image": "apache/spark:4.0.0"}]}
    }))
    .unwrap()
}

/// `GET path` with `headers`; the status and the body as JSON (`Null` if not JSON).
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = sender
        .send_request(request.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_see_only_what_the_api_server_lets_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = Playground::start(2).await.expect("the playground starts");
    let client = p.cluster.client.clone();
    let team: Namespace = serde_json::from_value(json!({"metadata": {"name": "team-b",
        "labels": {"sparkgang.io/enabled": "true"}}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &team)
        .await
        .unwrap();
    for (ns, app) in [("spark", "mine"), ("team-b", "theirs")] {
        Api::<Pod>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &driver(ns, app))
            .await
            .unwrap();
    }
    let ids = p.cluster.api.identities();
    ids.add_token("alice-token", "alice", &["system:authenticated"]);
    ids.grant("alice", "get", "pods", Some("spark"));
    ids.add_token("nobody-token", "nobody", &["system:authenticated"]);
    let addr = p
        .cluster
        .extender
        .as_ref()
        .and_then(|e| e.explain_address)
        .expect("the explain listener");

    // The admin sees both applications, once the extender knows them.
    let admin = bearer(playground::TOKEN);
    let all = eventually("both apps to be known", Duration::from_secs(30), || {
        let admin = admin.clone();
        async move {
            let (status, body) = get(addr, "/api/v1/apps", &[("authorization", &admin)]).await;
            let list: AppList = serde_json::from_value(body).ok()?;
            (status == StatusCode::OK && list.items.len() == 2).then_some(list)
        }
    })
    .await;
    assert_eq!(all.items.len(), 2);

    // No token, or one the API server does not know: 401, with what to send.
    let (status, body) = get(addr, "/api/v1/apps", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("bearer token is required"),
        "{body}"
    );
    let (status, body) = get(
        addr,
        "/api/v1/apps",
        &[("authorization", &bearer("forged"))],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("not accepted"),
        "{body}"
    );

    // alice may get pods in spark only: her list holds one app, the other is forbidden.
    let alice = bearer("alice-token");
    let (status, body) = get(addr, "/api/v1/apps", &[("authorization", &alice)]).await;
    assert_eq!(status, StatusCode::OK);
    let list: AppList = serde_json::from_value(body).unwrap();
    let ids: Vec<&str> = list.items.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["mine"]);
    let (status, _) = get(
        addr,
        "/api/v1/apps/spark/mine",
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(
        addr,
        "/api/v1/apps/team-b/theirs",
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("alice may not get pods in namespace team-b"),
        "{body}"
    );
    let (status, _) = get(
        addr,
        "/api/v1/apps?namespace=team-b",
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Capacity needs list nodes.
    let (status, body) = get(addr, "/api/v1/capacity", &[("authorization", &alice)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"].as_str().unwrap().contains("list nodes"),
        "{body}"
    );
    let (status, _) = get(addr, "/api/v1/capacity", &[("authorization", &admin)]).await;
    assert_eq!(status, StatusCode::OK);

    // The header the plugin uses through the service proxy works as well.
    let (status, _) = get(
        addr,
        "/api/v1/apps/spark/mine",
        &[("x-sparkgang-authorization", &alice)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A user with no grants sees nothing.
    let (status, body) = get(
        addr,
        "/api/v1/apps",
        &[("authorization", &bearer("nobody-token"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
    p.cluster.stop().await;
}

/// An application of `spark` waiting behind one of `analytics`: a caller who may read only
/// `spark` learns that it waits, and how many are ahead, but not the other team's application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_of_another_namespace_is_not_named() {
    use sparkgang_common::api::explain::{AppExplanation, Reason};
    use sparkgang_sim::spark::{self, DriverScript, Submission};
    use std::collections::BTreeMap;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = Playground::start(2).await.expect("the playground starts");
    let client = p.cluster.client.clone();
    let analytics: Namespace = serde_json::from_value(json!({"metadata": {"name": "analytics",
        "labels": {"sparkgang.io/enabled": "true"}}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &analytics)
        .await
        .unwrap();
    let addr = p
        .cluster
        .extender
        .as_ref()
        .and_then(|e| e.explain_address)
        .expect("the explain listener");
    let ids = p.cluster.api.identities();
    ids.add_token("alice-token", "alice", &["system:authenticated"]);
    ids.grant("alice", "get", "pods", Some("spark"));
    let alice = bearer("alice-token");
    let admin = bearer(playground::TOKEN);

    // 2 nodes of 8 cores. filler (spark) runs with 1 + 8 x 1; blocker (analytics) needs
    // 1 + 10 x 1 and fits the empty group, not the 7 cores left; waiter (spark) needs 1 + 1 x 1,
    // which would fit, but FIFO holds it behind blocker. (On a tie of creation seconds the
    // queue orders by namespace: analytics first.)
    let submit = |namespace: &str, name: &str, seed: u64, executors: u32| {
        let s = Submission {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            conf: BTreeMap::from([
                ("spark.executor.instances".to_owned(), executors.to_string()),
                ("spark.executor.cores".to_owned(), "1".to_owned()),
                ("spark.executor.memory".to_owned(), "1g".to_owned()),
            ]),
            annotations: BTreeMap::new(),
        };
        let client = client.clone();
        async move {
            spark::submit(&client, &s, seed).await.expect("submitted");
            spark::identities(&s.name, seed).1
        }
    };
    let explain = |ns: &'static str, app: String, token: String, kind: &'static str| async move {
        eventually(
            &format!("{app} to be {kind}"),
            Duration::from_secs(60),
            || {
                let (app, token) = (app.clone(), token.clone());
                async move {
                    let (status, body) = get(
                        addr,
                        &format!("/api/v1/apps/{ns}/{app}"),
                        &[("authorization", &token)],
                    )
                    .await;
                    let e: AppExplanation = serde_json::from_value(body).ok()?;
                    (status == StatusCode::OK && e.reason.kind() == kind).then_some(e)
                }
            },
        )
        .await
    };
    let (filler_driver, _, _) = spark::identities("filler", 11);
    if let Ok(mut scripts) = p.scripts.lock() {
        scripts.insert(
            format!("spark/{filler_driver}"),
            DriverScript {
                runtime: Duration::from_secs(3600),
                ..DriverScript::default()
            },
        );
    }
    let filler = submit("spark", "filler", 11, 8).await;
    explain("spark", filler, admin.clone(), "placed").await;
    let blocker = submit("analytics", "blocker", 12, 10).await;
    explain("analytics", blocker.clone(), admin.clone(), "capacity").await;
    let waiter = submit("spark", "waiter", 13, 1).await;

    let seen = explain("spark", waiter.clone(), admin.clone(), "waiting-behind").await;
    let Reason::WaitingBehind { blocker: b, .. } = &seen.reason else {
        unreachable!()
    };
    assert_eq!(b.app_id, blocker);
    let hidden = explain("spark", waiter, alice, "waiting-behind").await;
    let Reason::WaitingBehind {
        blocker: b,
        ahead,
        ahead_count,
    } = &hidden.reason
    else {
        unreachable!()
    };
    assert_ne!(b.app_id, blocker);
    assert!(!b.driver.contains("analytics"), "{}", b.driver);
    assert!(!hidden.message.contains(&blocker), "{}", hidden.message);
    assert!(!hidden.message.contains("analytics/"), "{}", hidden.message);
    assert!(ahead.iter().all(|q| !q.driver.starts_with("analytics/")));
    assert!(*ahead_count >= 1);
    p.cluster.stop().await;
}
