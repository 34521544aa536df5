//! Replays every request the real spark-submit / Spark driver (fabric8 7.6.1) sent, as raw HTTP,
//! and checks each gets the 2xx the real API server gives and that the objects are stored.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sparkgang_testing::fixtures;

fn fixtures() -> PathBuf {
    fixtures::dir(fixtures::SPARK)
}

struct Request {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Option<Value>,
}

fn load(file: &str) -> Vec<Request> {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fixture line is JSON");
            Request {
                method: v["method"].as_str().unwrap().to_owned(),
                path: v["path"].as_str().unwrap().to_owned(),
                content_type: v["content_type"].as_str().map(str::to_owned),
                body: v.get("body").filter(|b| !b.is_null()).cloned(),
            }
        })
        .collect()
}

/// Replays `requests`; returns the open watches (kept to check what they saw).
async fn replay(
    server: &sparkgang_sim::apiserver::ApiServer,
    requests: &[Request],
    rewrite: &dyn Fn(&str) -> String,
) -> Vec<common::WatchLines> {
    let addr = server.address();
    let mut watches = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let is_watch = r.path.contains("watch=true");
        if is_watch {
            let w = common::watch(addr, &r.path).await;
            assert_eq!(w.status, 200, "request {i}: {} {}", r.method, r.path);
            watches.push(w);
            continue;
        }
        let body = r
            .body
            .as_ref()
            .map(|b| rewrite(&b.to_string()).into_bytes())
            .unwrap_or_default();
        let resp = common::raw(addr, &r.method, &r.path, r.content_type.as_deref(), body).await;
        assert!(
            (200..300).contains(&resp.status),
            "request {i}: {} {} → {} {}",
            r.method,
            r.path,
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
        let v = resp.json();
        let expected = match r.method.as_str() {
            "POST" => 201,
            "PATCH" => 201, // each apply creates its object in these captures
            _ => 200,
        };
        assert_eq!(
            resp.status, expected,
            "request {i}: {} {}",
            r.method, r.path
        );
        if r.method == "POST" || r.method == "PATCH" {
            let sent = r.body.as_ref().unwrap();
            assert_eq!(v["kind"], sent["kind"]);
            assert_eq!(v["metadata"]["name"], sent["metadata"]["name"]);
            assert_eq!(v["metadata"]["namespace"], "spark");
            assert!(v["metadata"]["uid"].is_string());
            assert!(v["metadata"]["resourceVersion"].is_string());
        }
    }
    watches
}

fn get(
    server: &sparkgang_sim::apiserver::ApiServer,
    plural: &str,
    group: &str,
    name: &str,
) -> Option<Value> {
    let def = server.store().resource(group, "v1", plural).unwrap();
    server
        .store()
        .get(&def, "spark", name)
        .map(|s| s.value.clone())
}

fn count(server: &sparkgang_sim::apiserver::ApiServer, plural: &str) -> usize {
    let def = server.store().resource("", "v1", plural).unwrap();
    server
        .store()
        .list(&def, Some("spark"), &Default::default(), None, None)
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn cluster_static_submission_and_its_executors() {
    let server = common::server().await;
    let requests = load("cluster-static.requests.jsonl");
    replay(&server, &requests, &|s| s.to_owned()).await;
    let driver = get(&server, "pods", "", "pi-app-817565a213adafa7-driver").expect("driver pod");
    assert_eq!(driver["status"]["phase"], "Pending");
    assert_eq!(driver["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(driver["spec"]["restartPolicy"], "Never");
    let svc = get(
        &server,
        "services",
        "",
        "pi-app-817565a213adafa7-driver-svc",
    )
    .expect("service");
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert_eq!(
        svc["metadata"]["ownerReferences"][0]["name"],
        "pi-app-817565a213adafa7-driver"
    );
    get(
        &server,
        "networkpolicies",
        "networking.k8s.io",
        "pi-app-817565a213adafa7-policy",
    )
    .expect("network policy");
    let cm = get(
        &server,
        "configmaps",
        "",
        "spark-drv-15ca85a213adb269-conf-map",
    )
    .expect("conf map");
    assert!(
        cm["data"]["spark.properties"]
            .as_str()
            .unwrap()
            .contains("spark.executor.instances=8")
    );
    assert_eq!(cm["immutable"], true);

    // Spark's own driver then creates 8 executors.
    let executors = load("cluster-static.executors.jsonl");
    replay(&server, &executors, &|s| s.to_owned()).await;
    assert_eq!(count(&server, "pods"), 9);
    let exec = get(&server, "pods", "", "pythonpi-c6d486a213c5a6d9-exec-1").expect("executor");
    // limits copied into requests by defaulting; memory with overhead as Spark computed it.
    assert_eq!(
        exec["spec"]["containers"][0]["resources"]["requests"]["memory"],
        "4505Mi"
    );

    // Applying the same objects again (a resubmission) is a 200 update, not an error.
    let addr = server.address();
    let again = &requests[1];
    let r = common::raw(
        addr,
        "PATCH",
        &again.path,
        again.content_type.as_deref(),
        again.body.as_ref().unwrap().to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn apply_patches_sent_as_yaml_documents() {
    // fabric8 serialises apply patches with its YAML mapper; the captures hold them as JSON.
    let server = common::server().await;
    let requests = load("cluster-dynamic-gpu.requests.jsonl");
    replay(&server, &requests[..1], &|s| s.to_owned()).await;
    for r in &requests[1..] {
        let yaml = format!(
            "---\n{}",
            serde_yaml::to_string(r.body.as_ref().unwrap()).unwrap()
        );
        let resp = common::raw(
            server.address(),
            "PATCH",
            &r.path,
            r.content_type.as_deref(),
            yaml.into_bytes(),
        )
        .await;
        assert_eq!(
            resp.status,
            201,
            "{}: {}",
            r.path,
            String::from_utf8_lossy(&resp.body)
        );
    }
    let cm = get(
        &server,
        "configmaps",
        "",
        "spark-drv-f01b01a213ae260a-conf-map",
    )
    .expect("conf map");
    assert!(
        cm["data"]["spark.properties"]
            .as_str()
            .unwrap()
            .contains("spark.dynamicAllocation.minExecutors=2")
    );
    get(
        &server,
        "services",
        "",
        "dyn-app-5b5d5ca213ae233b-driver-svc",
    )
    .expect("service");
}

#[tokio::test]
async fn cluster_dynamic_gpu_submission() {
    let server = common::server().await;
    replay(&server, &load("cluster-dynamic-gpu.requests.jsonl"), &|s| {
        s.to_owned()
    })
    .await;
    replay(
        &server,
        &load("cluster-dynamic-gpu.executors.jsonl"),
        &|s| s.to_owned(),
    )
    .await;
    let driver = get(&server, "pods", "", "dyn-app-5b5d5ca213ae233b-driver").expect("driver");
    // nvidia.com/gpu only under limits: defaulting makes it a request too.
    let c = &driver["spec"]["containers"][0]["resources"];
    assert_eq!(c["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(c["requests"]["nvidia.com/gpu"], "1");
    assert_eq!(driver["metadata"]["labels"]["team"], "analytics");
    assert_eq!(count(&server, "pods"), 3);
    assert_eq!(count(&server, "configmaps"), 1);
}

#[tokio::test]
async fn client_mode_executors_watches_and_cleanup() {
    let server = common::server().await;
    let requests = load("client-executors-gpu.requests.jsonl");
    // Up to the last watch, then check what the first watch saw before the cleanup.
    let cleanup_from = requests
        .iter()
        .position(|r| r.method == "DELETE")
        .expect("cleanup");
    let mut watches = replay(&server, &requests[..cleanup_from], &|s| s.to_owned()).await;
    assert!(watches.len() > 10);
    assert_eq!(count(&server, "pods"), 3);
    // The first watch (no resourceVersion, started before the executors) saw them ADDED.
    let mut first = watches.remove(0);
    let mut added = Vec::new();
    while let Some(line) = first.next(Duration::from_millis(300)).await {
        if line["type"] == "ADDED" {
            added.push(
                line["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    added.sort();
    assert_eq!(
        added,
        [
            "pythonpi-b21b30a213aeb48d-exec-1",
            "pythonpi-b21b30a213aeb48d-exec-2",
            "pythonpi-b21b30a213aeb48d-exec-3"
        ]
    );
    // A later watch (started after the executors) begins with them too (synthetic ADDED).
    let last = watches.last_mut().unwrap();
    let line = last
        .next(Duration::from_secs(2))
        .await
        .expect("initial event");
    assert_eq!(line["type"], "ADDED");

    // The cleanup: DELETE collections by label selector (services and PVCs match nothing).
    replay(&server, &requests[cleanup_from..], &|s| s.to_owned()).await;
    assert_eq!(count(&server, "pods"), 0);
    assert_eq!(count(&server, "configmaps"), 0);
    // The first watch saw the executors go.
    let mut deleted = 0;
    while let Some(line) = first.next(Duration::from_millis(300)).await {
        if line["type"] == "DELETED" {
            deleted += 1;
        }
    }
    assert_eq!(deleted, 3);
}

#[tokio::test]
async fn owner_references_of_a_real_submission_cascade() {
    // The captures reference the driver's uid on the machine they were taken on; point them at
    // the uid this server gave the driver (in memory; the fixture files stay untouched).
    let server = common::server().await;
    let requests = load("cluster-static.requests.jsonl");
    replay(&server, &requests[..1], &|s| s.to_owned()).await;
    let driver = get(&server, "pods", "", "pi-app-817565a213adafa7-driver").unwrap();
    let uid = driver["metadata"]["uid"].as_str().unwrap().to_owned();
    let rewrite = move |s: &str| {
        s.replace("ecbb6e0f-92ee-4f0a-a9ec-4f678f2a6480", &uid)
            .replace("cc17ec24-aef3-4d54-a9cc-7f0be001bfb5", &uid)
    };
    replay(&server, &requests[1..], &rewrite).await;
    replay(&server, &load("cluster-static.executors.jsonl"), &rewrite).await;
    assert_eq!(count(&server, "pods"), 9);
    let r = common::raw(
        server.address(),
        "DELETE",
        "/api/v1/namespaces/spark/pods/pi-app-817565a213adafa7-driver",
        Some("application/json"),
        json!({"propagationPolicy": "Background"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&server, "pods"), 0);
    assert_eq!(count(&server, "services"), 0);
    assert_eq!(count(&server, "configmaps"), 0);
    assert!(
        get(
            &server,
            "networkpolicies",
            "networking.k8s.io",
            "pi-app-817565a213adafa7-policy"
        )
        .is_none()
    );
}
