//! Watches: kube-rs watcher and reflector against the server, and the raw watch protocol.

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(common::pod_json(name, labels)).unwrap()
}

fn name_of<K: kube::Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

/// The next item of a kube watcher, as a short description.
async fn next_event<S>(stream: &mut S) -> String
where
    S: futures::Stream<Item = Result<Event<Pod>, watcher::Error>> + Unpin,
{
    let item = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("stream continues");
    match item {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(p)) => format!("InitApply {}", name_of(&p)),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(p)) => {
            let v = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("v").cloned())
                .unwrap_or_default();
            format!("Apply {} {v}", name_of(&p))
        }
        Ok(Event::Delete(p)) => format!("Delete {}", name_of(&p)),
        Err(e) => format!("Error {e}"),
    }
}

#[tokio::test]
async fn kube_watcher_sees_changes_in_order_and_relists_after_410() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    pods.create(&PostParams::default(), &pod("before", json!({})))
        .await
        .unwrap();
    let mut stream = watcher::watcher(pods.clone(), watcher::Config::default()).boxed();
    assert_eq!(next_event(&mut stream).await, "Init");
    assert_eq!(next_event(&mut stream).await, "InitApply before");
    assert_eq!(next_event(&mut stream).await, "InitDone");

    pods.create(&PostParams::default(), &pod("a", json!({"v": "1"})))
        .await
        .unwrap();
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
    )
    .await
    .unwrap();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(next_event(&mut stream).await, "Apply a 1");
    assert_eq!(next_event(&mut stream).await, "Apply a 2");
    assert_eq!(next_event(&mut stream).await, "Delete a");

    // The history expires: the open watch gets 410 Gone and the watcher relists.
    pods.create(&PostParams::default(), &pod("b", json!({"v": "1"})))
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await, "Apply b 1");
    server.store().expire_history();
    let e = next_event(&mut stream).await;
    assert!(e.starts_with("Error") && e.contains("xpired"), "{e}");
    assert_eq!(next_event(&mut stream).await, "Init");
    let mut relisted = vec![next_event(&mut stream).await, next_event(&mut stream).await];
    relisted.sort();
    assert_eq!(relisted, ["InitApply b", "InitApply before"]);
    assert_eq!(next_event(&mut stream).await, "InitDone");
    pods.create(&PostParams::default(), &pod("c", json!({"v": "1"})))
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await, "Apply c 1");

    // Streaming lists (sendInitialEvents) work too.
    let mut streaming =
        watcher::watcher(pods.clone(), watcher::Config::default().streaming_lists()).boxed();
    assert_eq!(next_event(&mut streaming).await, "Init");
    let mut initial = Vec::new();
    for _ in 0..3 {
        initial.push(next_event(&mut streaming).await);
    }
    initial.sort();
    assert_eq!(initial, ["InitApply b", "InitApply before", "InitApply c"]);
    assert_eq!(next_event(&mut streaming).await, "InitDone");
    pods.delete("c", &DeleteParams::default()).await.unwrap();
    assert_eq!(next_event(&mut streaming).await, "Delete c");
}

#[tokio::test]
async fn reflector_store_converges_through_expiry() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::all(client.clone());
    let spark: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(pods, watcher::Config::default().page_size(7)).default_backoff(),
    )
    .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        // Errors (the 410) are retried by the watcher: keep polling.
        while stream.next().await.is_some() {}
    });
    for i in 0..30 {
        spark
            .create(
                &PostParams::default(),
                &pod(&format!("p{i}"), json!({"i": i.to_string()})),
            )
            .await
            .unwrap();
        if i == 15 {
            server.store().expire_history();
        }
    }
    for i in 0..10 {
        spark
            .delete(&format!("p{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for i in 10..20 {
        spark
            .patch(
                &format!("p{i}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
            )
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = reader.state();
        let touched = state
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("touched"))
            })
            .count();
        if state.len() == 20 && touched == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector did not converge: {} objects, {touched} touched",
            state.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Same resourceVersions as the server.
    let def = server.store().resource("", "v1", "pods").unwrap();
    for p in reader.state() {
        let stored = server
            .store()
            .get(&def, "spark", p.metadata.name.as_deref().unwrap())
            .unwrap();
        assert_eq!(
            p.metadata.resource_version.as_deref(),
            stored.value["metadata"]["resourceVersion"].as_str()
        );
    }
    task.abort();
}

#[tokio::test]
async fn raw_watch_with_selectors_reports_objects_leaving_the_selection() {
    let server = common::server().await;
    let addr = server.address();
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client, "spark");
    let mut w = common::watch(
        addr,
        "/api/v1/namespaces/spark/pods?watch=true&labelSelector=spark-role%3Dexecutor%2Cspark-exec-inactive%21%3Dtrue",
    )
    .await;
    assert_eq!(w.status, 200);
    pods.create(
        &PostParams::default(),
        &pod("e1", json!({"spark-role": "executor"})),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("d1", json!({"spark-role": "driver"})),
    )
    .await
    .unwrap();
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"spark-exec-inactive": v}}}));
    pods.patch("e1", &PatchParams::default(), &label("true"))
        .await
        .unwrap();
    pods.patch("e1", &PatchParams::default(), &label("false"))
        .await
        .unwrap();
    pods.patch("e1", &PatchParams::default(), &label("no"))
        .await
        .unwrap();
    pods.delete("e1", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let line = w.next(WAIT).await.expect("event");
        seen.push(common::ev(&line));
        if seen.len() == 2 {
            // The DELETED of an object leaving the selection carries the event's resourceVersion.
            assert_eq!(
                line["object"]["metadata"]["labels"]["spark-exec-inactive"],
                json!(null)
            );
        }
    }
    let expected: Vec<(String, String)> = [
        ("ADDED", "e1"),
        ("DELETED", "e1"),
        ("ADDED", "e1"),
        ("MODIFIED", "e1"),
        ("DELETED", "e1"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(seen, expected);

    // Field selector: a pod enters spec.nodeName=n1 by binding.
    let mut w = common::watch(
        addr,
        "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dn1",
    )
    .await;
    pods.create(&PostParams::default(), &pod("b1", json!({})))
        .await
        .unwrap();
    let r = common::post_json(
        addr,
        "/api/v1/namespaces/spark/pods/b1/binding",
        &json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b1"}, "target": {"kind": "Node", "name": "n1"}}),
    )
    .await;
    assert_eq!(r.status, 201);
    let line = w.next(WAIT).await.expect("event");
    assert_eq!(common::ev(&line), ("ADDED".to_owned(), "b1".to_owned()));
    assert_eq!(line["object"]["spec"]["nodeName"], "n1");
}

#[tokio::test]
async fn raw_watch_resume_bookmarks_timeouts_and_gone() {
    let server = common::server_with(
        common::config()
            .with_history(10)
            .with_bookmark_interval(Duration::from_millis(100)),
    )
    .await;
    let addr = server.address();
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let path = "/api/v1/namespaces/spark/configmaps";
    let first = common::post_json(addr, path, &cm("c0")).await;
    assert_eq!(first.status, 201);
    let rv0: u64 = first.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for i in 1..5 {
        assert_eq!(
            common::post_json(addr, path, &cm(&format!("c{i}")))
                .await
                .status,
            201
        );
    }
    // Resume after rv0: the four later creations are replayed, in order.
    let mut w = common::watch(addr, &format!("{path}?watch=true&resourceVersion={rv0}")).await;
    for i in 1..5 {
        let line = w.next(WAIT).await.expect("replayed event");
        assert_eq!(common::ev(&line), ("ADDED".to_owned(), format!("c{i}")));
    }
    // No resourceVersion: synthetic ADDED for what exists.
    let mut w = common::watch(addr, &format!("{path}?watch=true")).await;
    for i in 0..5 {
        let line = w.next(WAIT).await.expect("initial event");
        assert_eq!(common::ev(&line), ("ADDED".to_owned(), format!("c{i}")));
    }
    // sendInitialEvents: then a bookmark that ends the initial events.
    let mut w = common::watch(
        addr,
        &format!("{path}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion="),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(w.next(WAIT).await.unwrap()["type"], "ADDED");
    }
    let bm = w.next(WAIT).await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // Periodic bookmarks carry the current resourceVersion.
    let current = server.store().resource_version();
    let mut w = common::watch(
        addr,
        &format!("{path}?watch=true&allowWatchBookmarks=true&resourceVersion={current}"),
    )
    .await;
    let bm = w.next(WAIT).await.expect("bookmark");
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(bm["object"]["kind"], "ConfigMap");
    assert_eq!(
        bm["object"]["metadata"]["resourceVersion"],
        current.to_string()
    );
    // timeoutSeconds ends the stream.
    let mut w = common::watch(
        addr,
        &format!("{path}?watch=true&timeoutSeconds=1&resourceVersion={current}"),
    )
    .await;
    let start = std::time::Instant::now();
    assert!(w.ended_within(Duration::from_secs(3)).await);
    assert!(start.elapsed() >= Duration::from_millis(900));
    // Past the history (10 events kept): 410 Gone as an ERROR event.
    for i in 5..20 {
        assert_eq!(
            common::post_json(addr, path, &cm(&format!("c{i}")))
                .await
                .status,
            201
        );
    }
    let mut w = common::watch(addr, &format!("{path}?watch=true&resourceVersion={rv0}")).await;
    assert_eq!(w.status, 200);
    let line = w.next(WAIT).await.expect("error event");
    assert_eq!(line["type"], "ERROR");
    assert_eq!(line["object"]["kind"], "Status");
    assert_eq!(line["object"]["code"], 410);
    assert_eq!(line["object"]["reason"], "Expired");
    assert!(w.ended_within(WAIT).await);
    // A continue token from before the horizon is 410 too.
    let r = common::get(addr, &format!("{path}?limit=1&continue={rv0}/spark/c0")).await;
    assert_eq!(r.status, 410);
    // Watch other objects of other types is unaffected by a busy type.
    let r = common::get(addr, &format!("{path}?limit=3")).await;
    let body = r.json();
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    assert!(body["metadata"]["continue"].is_string());
}

#[tokio::test]
async fn in_process_watch_sees_store_writes() {
    use sparkgang_sim::apiserver::{Selectors, Watch, WatchItem, WatchParams, WatchStart};
    let server = common::server().await;
    let store = server.store().clone();
    let def = store.resource("", "v1", "configmaps").unwrap();
    let mut w = Watch::open(
        store.clone(),
        def.clone(),
        WatchParams {
            namespace: Some("spark".into()),
            selectors: Selectors::default(),
            start: WatchStart::After(store.resource_version()),
            bookmarks: false,
            initial_events_end: false,
            bookmark_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        },
    )
    .unwrap();
    store
        .create(
            &def,
            "spark",
            json!({"metadata": {"name": "x"}, "data": {"a": "1"}}),
        )
        .unwrap();
    store
        .modify(&def, None, "spark", "x", |cm| cm["data"]["a"] = json!("2"))
        .unwrap();
    store
        .delete(&def, "spark", "x", &Default::default())
        .unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap() {
            WatchItem::Event(t, o) => kinds.push((t.as_str(), o.to_value()["data"]["a"].clone())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        kinds,
        [
            ("ADDED", json!("1")),
            ("MODIFIED", json!("2")),
            ("DELETED", json!("2"))
        ]
    );
    // Typed view through kube-rs agrees.
    let client = common::client(&server);
    let cms: Api<ConfigMap> = Api::namespaced(client, "spark");
    assert!(cms.get_opt("x").await.unwrap().is_none());
}

/// fabric8 (the client inside Spark's driver) opens every watch as a WebSocket upgrade, as
/// kube-apiserver allows: each event is one text message with the JSON of one line of the HTTP
/// stream. The request is the one the real driver sent (docs/notes/real-spark-research.md).
#[tokio::test]
async fn a_watch_over_websocket_sends_one_message_per_event() {
    use tokio_tungstenite::tungstenite::Message;
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client, "spark");
    pods.create(
        &PostParams::default(),
        &pod("before", json!({"spark-role": "executor"})),
    )
    .await
    .unwrap();
    let url = format!(
        "ws://{}/api/v1/namespaces/spark/pods?allowWatchBookmarks=true&labelSelector=spark-role%3Dexecutor&watch=true",
        server.address()
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgraded");
    assert_eq!(response.status(), 101);
    let mut next = async || -> serde_json::Value {
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("a message in time")
                .expect("the socket stays open")
                .expect("a valid frame");
            if let Message::Text(text) = msg {
                return serde_json::from_str(&text).expect("one JSON event per message");
            }
        }
    };
    let first = next().await;
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "before");
    pods.create(
        &PostParams::default(),
        &pod("after", json!({"spark-role": "executor"})),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("driver", json!({"spark-role": "driver"})),
    )
    .await
    .unwrap();
    pods.delete("after", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = next().await;
        if e["type"] != "BOOKMARK" {
            seen.push(format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(seen, ["ADDED after", "DELETED after"]);
}
