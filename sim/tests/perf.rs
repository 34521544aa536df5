//! Scale: 10,000 pods listed over HTTP, several watchers fed by thousands of changes.
//! Prints timings (`cargo test -p sparkgang-sim --release --test perf -- --nocapture`); the
//! asserted bounds are loose enough for a debug build on a busy 2-core machine.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use sparkgang_sim::apiserver::Subresource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pods_and_five_watchers() {
    let server = common::server().await;
    let store = server.store().clone();
    let addr = server.address();
    let pods = store.resource("", "v1", "pods").unwrap();

    let t = Instant::now();
    for i in 0..10_000 {
        let role = if i % 10 == 0 { "driver" } else { "executor" };
        let mut p = common::pod_json(
            &format!("app-{}-{role}-{i}", i / 10),
            json!({"spark-app-selector": format!("app-{}", i / 10), "spark-role": role}),
        );
        p["spec"]["nodeSelector"] = json!({"instance-group": "batch"});
        store.create(&pods, "spark", p).unwrap();
    }
    let create = t.elapsed();

    let t = Instant::now();
    let all = common::get(addr, "/api/v1/pods").await;
    let list_all = t.elapsed();
    assert_eq!(all.status, 200);
    let bytes = all.body.len();
    let t = Instant::now();
    let parsed = all.json();
    let parse = t.elapsed();
    assert_eq!(parsed["items"].as_array().unwrap().len(), 10_000);

    let t = Instant::now();
    let again = common::get(addr, "/api/v1/pods").await;
    let list_cached = t.elapsed();
    assert_eq!(again.body.len(), bytes);

    let t = Instant::now();
    let one_app = common::get(
        addr,
        "/api/v1/namespaces/spark/pods?labelSelector=spark-app-selector%3Dapp-7%2Cspark-role%3Dexecutor",
    )
    .await;
    let list_selected = t.elapsed();
    assert_eq!(one_app.json()["items"].as_array().unwrap().len(), 9);

    let t = Instant::now();
    let page = common::get(addr, "/api/v1/pods?limit=500").await;
    let list_page = t.elapsed();
    assert_eq!(page.json()["items"].as_array().unwrap().len(), 500);

    // Five watchers from now, one with a selector.
    let rv = store.resource_version();
    let mut watchers = Vec::new();
    for _ in 0..5 {
        watchers.push(
            common::watch(
                addr,
                &format!("/api/v1/pods?watch=true&resourceVersion={rv}"),
            )
            .await,
        );
    }
    let mut selective = common::watch(
        addr,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}&labelSelector=spark-role%3Ddriver"),
    )
    .await;
    let t = Instant::now();
    let changes = 2_000;
    for i in 0..changes {
        let name = {
            let role = if i % 10 == 0 { "driver" } else { "executor" };
            format!("app-{}-{role}-{i}", i / 10)
        };
        store
            .modify(&pods, Some(Subresource::Status), "spark", &name, |p| {
                p["status"]["phase"] = json!("Running");
            })
            .unwrap();
    }
    let write = t.elapsed();
    for w in &mut watchers {
        for n in 0..changes {
            let line = w
                .next(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("event {n}"));
            assert_eq!(line["type"], "MODIFIED");
        }
    }
    for _ in 0..changes / 10 {
        let line = selective.next(Duration::from_secs(20)).await.unwrap();
        assert_eq!(line["object"]["metadata"]["labels"]["spark-role"], "driver");
    }
    let fanout = t.elapsed();

    // The server's side alone: five in-process watchers (no HTTP, no client parsing).
    let rv = store.resource_version();
    let mut inproc = Vec::new();
    for _ in 0..5 {
        inproc.push(
            sparkgang_sim::apiserver::Watch::open(
                store.clone(),
                pods.clone(),
                sparkgang_sim::apiserver::WatchParams {
                    namespace: None,
                    selectors: Default::default(),
                    start: sparkgang_sim::apiserver::WatchStart::After(rv),
                    bookmarks: false,
                    initial_events_end: false,
                    bookmark_interval: Duration::from_secs(60),
                    timeout: Duration::from_secs(60),
                },
            )
            .unwrap(),
        );
    }
    let t = Instant::now();
    for i in 0..changes {
        let role = if i % 10 == 0 { "driver" } else { "executor" };
        let name = format!("app-{}-{role}-{i}", i / 10);
        store
            .modify(&pods, None, "spark", &name, |p| {
                p["metadata"]["labels"]["seen"] = json!("yes");
            })
            .unwrap();
    }
    for w in &mut inproc {
        let mut n = 0;
        while n < changes {
            let batch = w.next_batch(1024).await.unwrap();
            for item in &batch {
                // What the HTTP layer does per event: the JSON line.
                std::hint::black_box(item.to_line(&pods));
            }
            n += batch.len();
        }
    }
    let inproc_fanout = t.elapsed();

    eprintln!(
        "10,000 pods: create {create:?} ({:.1} µs each); list all {list_all:?} ({} MB, client parse {parse:?}), again (encodings cached) {list_cached:?}; \
         list by selector {list_selected:?}; page of 500 {list_page:?}; \
         {changes} status writes {write:?}, delivered to 5+1 HTTP watchers in {fanout:?} \
         (client parsing included); {changes} writes + 5 in-process watchers encoding every line {inproc_fanout:?}",
        create.as_secs_f64() * 1e6 / 10_000.0,
        bytes / 1_000_000,
    );
    assert!(list_all < Duration::from_secs(5), "{list_all:?}");
    assert!(list_selected < Duration::from_secs(1), "{list_selected:?}");
    assert!(fanout < Duration::from_secs(30), "{fanout:?}");
}
