//! The colleagues' extension points: admission hooks, request observers, in-process store access.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use sparkgang_sim::apiserver::{
    AdmissionRequest, AdmissionVerdict, Caller, Operation, RequestLog, WriteOptions, admission_fn,
};

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(common::pod_json(name, labels)).unwrap()
}

/// A webhook-like hook: drivers get the spark scheduler and a label; `deny=true` is refused.
fn webhook(calls: Arc<AtomicUsize>) -> Arc<dyn sparkgang_sim::apiserver::AdmissionHook> {
    admission_fn(move |req: AdmissionRequest| {
        let calls = calls.clone();
        async move {
            if req.resource != "pods" || req.subresource.is_some() {
                return AdmissionVerdict::Allow;
            }
            calls.fetch_add(1, Ordering::SeqCst);
            let labels = &req.object["metadata"]["labels"];
            if labels["deny"] == "true" {
                return AdmissionVerdict::deny(
                    400,
                    "admission webhook \"pods.sparkgang.io\" denied the request: spark-executor-mem: \"4x\" is not a quantity",
                );
            }
            let mut obj = req.object.clone();
            if req.operation == Operation::Create {
                obj["metadata"]["labels"]["admitted"] = json!("yes");
                obj["metadata"]["labels"]["named"] = json!(if req.name.is_empty() {
                    "generated"
                } else {
                    "given"
                });
                obj["spec"]["schedulerName"] = json!("spark-scheduler");
            } else {
                // Updates see the old object.
                let old = req.old_object.as_ref().expect("old object on update");
                obj["metadata"]["labels"]["previous-rv"] =
                    old["metadata"]["resourceVersion"].clone();
            }
            AdmissionVerdict::Mutate(obj)
        }
    })
}

#[tokio::test]
async fn admission_hooks_mutate_and_deny() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = common::server_with(common::config().with_admission(webhook(calls.clone()))).await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");

    let created = pods
        .create(
            &PostParams::default(),
            &pod("drv", json!({"spark-role": "driver"})),
        )
        .await
        .unwrap();
    let labels = created.metadata.labels.clone().unwrap();
    assert_eq!(labels["admitted"], "yes");
    assert_eq!(labels["named"], "given");
    assert_eq!(
        created.spec.unwrap().scheduler_name.as_deref(),
        Some("spark-scheduler")
    );
    // generateName: the hook sees an empty name (as webhooks do).
    let mut g = pod("", json!({}));
    g.metadata.name = None;
    g.metadata.generate_name = Some("x-".into());
    let generated = pods.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(generated.metadata.labels.unwrap()["named"], "generated");

    // Denied: the client gets the hook's code and message.
    let err = pods
        .create(&PostParams::default(), &pod("bad", json!({"deny": "true"})))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert!(s.message.contains("is not a quantity"), "{}", s.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(pods.get_opt("bad").await.unwrap().is_none());

    // Updates (patch) go through the hook with the old object.
    let patched = pods
        .patch(
            "drv",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.labels.unwrap()["previous-rv"],
        created.metadata.resource_version.unwrap()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // In process: the Api runs the hooks, the Store does not.
    let def = server.store().resource("", "v1", "pods").unwrap();
    let via_api = server
        .api()
        .create(
            &def,
            "spark",
            common::pod_json("in-proc", json!({})),
            &WriteOptions::default(),
            &Caller::default(),
        )
        .await
        .unwrap();
    assert_eq!(via_api.value["metadata"]["labels"]["admitted"], "yes");
    let via_store = server
        .store()
        .create(&def, "spark", common::pod_json("raw", json!({})))
        .unwrap();
    assert!(
        via_store.value["metadata"]["labels"]
            .get("admitted")
            .is_none()
    );

    // A hook added while running applies to later requests.
    server.add_admission_hook(admission_fn(|req: AdmissionRequest| async move {
        if req.resource == "configmaps" {
            AdmissionVerdict::deny(403, "no configmaps today")
        } else {
            AdmissionVerdict::Allow
        }
    }));
    let r = common::post_json(
        server.address(),
        "/api/v1/namespaces/spark/configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "Forbidden");
}

#[tokio::test]
async fn request_log_records_verbs_resources_and_user_agents() {
    let log = RequestLog::new();
    let server = common::server_with(common::config().with_observer(log.clone())).await;
    // kube-rs 5 sends no User-Agent of its own; a binary that wants to be told apart sets one.
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.headers.push((
        hyper::header::USER_AGENT,
        hyper::header::HeaderValue::from_static("sparkgang-extender/test"),
    ));
    common::install_crypto();
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    pods.list(&ListParams::default()).await.unwrap();
    pods.get("p").await.unwrap();
    pods.patch_status(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
    let _ = pods.get("missing").await;
    let records = log.records();
    let create = records.iter().find(|r| r.verb == "create").unwrap();
    assert_eq!(create.method, "POST");
    assert_eq!(create.resource.as_deref(), Some("pods"));
    assert_eq!(create.namespace.as_deref(), Some("spark"));
    assert_eq!(create.code, 201);
    assert!(
        create
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua == "sparkgang-extender/test"),
        "{:?}",
        create.user_agent
    );
    let missing = records
        .iter()
        .find(|r| r.name.as_deref() == Some("missing"))
        .unwrap();
    assert_eq!((missing.verb.as_str(), missing.code), ("get", 404));
    let rules = log.verbs_by_resource();
    let has = |verb: &str, resource: &str| {
        rules
            .iter()
            .any(|(v, g, r)| v == verb && g.is_empty() && r == resource)
    };
    assert!(has("create", "pods"));
    assert!(has("list", "pods"));
    assert!(has("get", "pods"));
    assert!(has("patch", "pods/status"));
    // Discovery is recorded without a resource.
    let _ = client.list_api_groups().await.unwrap();
    assert!(
        log.records()
            .iter()
            .any(|r| r.path == "/apis" && r.resource.is_none())
    );
    log.clear();
    assert!(log.records().is_empty());
}

#[tokio::test]
async fn in_process_store_for_simulators() {
    let server = common::server().await;
    let store = server.store();
    let nodes = store.resource("", "v1", "nodes").unwrap();
    let pods = store.resource_for("v1", "Pod").unwrap();
    store
        .create(
            &nodes,
            "",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n-0"}}),
        )
        .unwrap();
    store
        .create(
            &pods,
            "spark",
            common::pod_json("p", json!({"spark-role": "executor"})),
        )
        .unwrap();
    // The scheduler simulator binds, the Spark simulator runs the pod.
    store
        .bind("spark", "p", "n-0", None, &WriteOptions::default())
        .unwrap();
    let running = store
        .modify(
            &pods,
            Some(sparkgang_sim::apiserver::Subresource::Status),
            "spark",
            "p",
            |p| {
                p["status"]["phase"] = json!("Running");
            },
        )
        .unwrap();
    assert_eq!(running.value["spec"]["nodeName"], "n-0");
    assert_eq!(running.value["status"]["phase"], "Running");
    // A kube-rs client sees the same.
    let client = common::client(&server);
    let api: Api<Pod> = Api::namespaced(client, "spark");
    let p = api.get("p").await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    // Selectors in process.
    let sel = sparkgang_sim::apiserver::Selectors {
        labels: sparkgang_sim::apiserver::LabelSelector::parse("spark-role=executor").unwrap(),
        fields: sparkgang_sim::apiserver::FieldSelector::parse("spec.nodeName=n-0", &pods).unwrap(),
    };
    let list = store.list(&pods, Some("spark"), &sel, None, None).unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.resource_version, store.resource_version());
    assert_eq!(store.count(&pods), 1);
}
