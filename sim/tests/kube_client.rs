//! The real kube-rs 5 client against the in-memory API server, over HTTP.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use serde_json::json;
use sparkgang_common::api::reservation::{
    ReservationSlot, ResourceReservation, ResourceReservationSpec, ResourceReservationStatus,
};

fn pod(name: &str) -> Pod {
    serde_json::from_value(common::pod_json(name, json!({"spark-role": "driver"}))).unwrap()
}

fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other:?}"),
    }
}

fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.reason.clone(),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test]
async fn discovery_finds_builtin_and_crd_resources() {
    let server = common::server().await;
    let client = common::client(&server);
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_owned()).collect();
    assert!(groups.contains(&"sparkgang.io".to_owned()), "{groups:?}");
    let sg = discovery.get("sparkgang.io").expect("sparkgang.io");
    let (rr, caps) = sg
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.kind == "ResourceReservation")
        .expect("ResourceReservation");
    assert_eq!(rr.plural, "resourcereservations");
    assert_eq!(rr.api_version, "sparkgang.io/v1");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let (demand, caps) = sg
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.kind == "Demand")
        .expect("Demand");
    assert_eq!(demand.plural, "demands");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "demands/status" || s.plural == "status")
    );
    let core = discovery.get("").expect("core group");
    let kinds: Vec<String> = core
        .recommended_resources()
        .into_iter()
        .map(|(r, _)| r.kind)
        .collect();
    for k in ["Pod", "Node", "ConfigMap", "Service", "Event", "Namespace"] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    // Aggregated discovery too.
    let agg = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(agg.has_group("sparkgang.io"));
    assert!(agg.has_group("coordination.k8s.io"));
    let info = client.apiserver_version().await.expect("version");
    assert_eq!(info.major, "1");
}

#[tokio::test]
async fn pods_create_get_list_replace_delete() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let created = pods
        .create(&PostParams::default(), &pod("p1"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("spark"));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    let status = created.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("Burstable"));

    // 409 AlreadyExists
    let e = pods
        .create(&PostParams::default(), &pod("p1"))
        .await
        .unwrap_err();
    assert_eq!((code(&e), reason(&e).as_str()), (409, "AlreadyExists"));

    // generateName
    let mut g = pod("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("exec-".to_owned());
    let generated = pods.create(&PostParams::default(), &g).await.unwrap();
    let gname = generated.metadata.name.clone().unwrap();
    assert!(gname.starts_with("exec-") && gname.len() == 10, "{gname}");

    let got = pods.get("p1").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(list.metadata.resource_version.is_some());
    let all: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    // replace with the current resourceVersion works, a stale one is 409 Conflict
    let mut fresh = got.clone();
    fresh
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("x".into(), "1".into());
    let replaced = pods
        .replace("p1", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        got.metadata.resource_version
    );
    let e = pods
        .replace("p1", &PostParams::default(), &got)
        .await
        .unwrap_err();
    assert_eq!((code(&e), reason(&e).as_str()), (409, "Conflict"));
    // replace of a missing object: 404
    let mut missing = got.clone();
    missing.metadata.name = Some("nope".into());
    missing.metadata.resource_version = None;
    let e = pods
        .replace("nope", &PostParams::default(), &missing)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 404);

    // label selector list
    let sel = pods
        .list(&ListParams::default().labels("x=1"))
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 1);
    let sel = pods
        .list(&ListParams::default().labels("spark-role in (driver),x!=1"))
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 1);
    assert_eq!(sel.items[0].metadata.name.as_deref(), Some(gname.as_str()));
    // paging
    let page = pods.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let token = page.metadata.continue_.clone().expect("continue");
    let rest = pods
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_ne!(rest.items[0].metadata.name, page.items[0].metadata.name);
    assert!(rest.metadata.continue_.is_none());

    // delete: returns the object, then 404
    let deleted = pods.delete("p1", &DeleteParams::default()).await.unwrap();
    assert!(deleted.left().is_some());
    let e = pods.get("p1").await.unwrap_err();
    assert_eq!((code(&e), reason(&e).as_str()), (404, "NotFound"));
    let e = pods
        .delete("p1", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(code(&e), 404);
}

#[tokio::test]
async fn four_patch_types_on_pods() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();

    let p = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"merge": "yes"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.as_ref().unwrap()["merge"], "yes");

    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/annotations", "value": {"sparkgang.io/demand": "x"}},
        {"op": "replace", "path": "/metadata/labels/merge", "value": "json"}
    ]))
    .unwrap();
    let p = pods
        .patch("p", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.as_ref().unwrap()["merge"], "json");
    assert_eq!(
        p.metadata.annotations.as_ref().unwrap()["sparkgang.io/demand"],
        "x"
    );

    let p = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"strategic": "1"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:2"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.as_ref().unwrap()["strategic"], "1");
    let containers = &p.spec.as_ref().unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("busybox:2"));
    assert!(
        containers[0].resources.is_some(),
        "merged by name, not replaced"
    );

    let p = pods
        .patch(
            "p",
            &PatchParams::apply("tests").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": {"applied": "1"}}})),
        )
        .await
        .unwrap();
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["applied"], "1");
    assert_eq!(labels["strategic"], "1");

    // Apply creates when absent.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "spark");
    let cm = cms
        .patch(
            "applied-cm",
            &PatchParams::apply("fabric8").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied-cm"}, "data": {"k": "v"}})),
        )
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
    // A JSON patch whose test fails is refused.
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/name", "value": "q"}]))
            .unwrap();
    let e = pods
        .patch("p", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 422);
    // Patch of a missing object: 404.
    let e = pods
        .patch("zz", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 404);
}

#[tokio::test]
async fn binding_and_status_subresources() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();

    // spec.nodeName cannot be changed by an update.
    let e = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeName": "n1"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 422);

    let binding = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "p"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let status: serde_json::Value = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            "p",
            &PostParams::default(),
            &binding,
        )
        .await
        .unwrap();
    assert_eq!(status["status"], "Success");
    let bound = pods.get("p").await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("n1")
    );
    let conds = bound.status.as_ref().unwrap().conditions.clone().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    // Binding again: 409.
    let e = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            "p",
            &PostParams::default(),
            &binding,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);

    // Status patch (strategic, conditions merged by type) changes only status.
    let patched = pods
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({
                "metadata": {"labels": {"ignored": "yes"}},
                "status": {"phase": "Running", "conditions": [
                {"type": "PodExceedsClusterCapacity", "status": "True", "reason": "GangExceedsCapacity"}]}})),
        )
        .await
        .unwrap();
    let st = patched.status.as_ref().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let types: Vec<&str> = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, ["PodScheduled", "PodExceedsClusterCapacity"]);
    assert!(
        patched
            .metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("ignored"))
    );
    let got = pods.get_status("p").await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Running"));
    // An update of the main resource does not change status.
    let mut p = pods.get("p").await.unwrap();
    p.status.as_mut().unwrap().phase = Some("Failed".into());
    let r = pods.replace("p", &PostParams::default(), &p).await.unwrap();
    assert_eq!(r.status.unwrap().phase.as_deref(), Some("Running"));
    // replace_status works with the typed object.
    let mut p = pods.get("p").await.unwrap();
    p.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let r = pods
        .replace_status("p", &PostParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(r.status.unwrap().phase.as_deref(), Some("Succeeded"));

    // field selector on spec.nodeName / status.phase
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1,status.phase!=Failed"))
        .await
        .unwrap();
    assert_eq!(on_n1.items.len(), 1);
    let e = pods
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 400);
}

#[tokio::test]
async fn scheduling_gates_can_only_be_removed() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client, "spark");
    let mut p = pod("gated");
    p.spec.as_mut().unwrap().scheduling_gates =
        Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
            name: "sparkgang.io/spark-conf".into(),
        }]);
    pods.create(&PostParams::default(), &p).await.unwrap();

    // Adding a gate: 422 Invalid.
    let e = pods
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"schedulingGates": [{"name": "other"}]}})),
        )
        .await
        .unwrap_err();
    assert_eq!((code(&e), reason(&e).as_str()), (422, "Invalid"));
    if let kube::Error::Api(s) = &e {
        assert!(
            s.message.contains("only deletion is allowed"),
            "{}",
            s.message
        );
    }
    // Binding a gated pod: 409.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "gated"},
        "target": {"kind": "Node", "name": "n1"}});
    let e = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            "gated",
            &PostParams::default(),
            &binding,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);

    // Removing (JSON patch, as the extender's gate controller does) is fine.
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/annotations", "value": {"sparkgang.io/demand": "{}"}},
        {"op": "remove", "path": "/spec/schedulingGates"}
    ]))
    .unwrap();
    let p = pods
        .patch("gated", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap();
    assert!(
        p.spec
            .unwrap()
            .scheduling_gates
            .is_none_or(|g| g.is_empty())
    );
    // And adding one back is refused.
    let e = pods
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedulingGates": [{"name": "again"}]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 422);
    // Creating with a gate and a node name: 422.
    let mut both = pod("both");
    let spec = both.spec.as_mut().unwrap();
    spec.node_name = Some("n1".into());
    spec.scheduling_gates = Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
        name: "g".into(),
    }]);
    let e = pods
        .create(&PostParams::default(), &both)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 422);
}

#[tokio::test]
async fn nodes_configmaps_leases() {
    let server = common::server().await;
    let client = common::client(&server);
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n-0", "labels": {"instance-group": "batch"}},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}, "capacity": {"cpu": "8", "memory": "32Gi"}}}))
    .unwrap();
    let created = nodes.create(&PostParams::default(), &node).await.unwrap();
    assert!(created.metadata.namespace.is_none());
    assert_eq!(created.status.unwrap().allocatable.unwrap()["cpu"].0, "8");
    let n = nodes
        .patch(
            "n-0",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    let l = nodes
        .list(&ListParams::default().fields("spec.unschedulable=true"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let l = nodes
        .list(&ListParams::default().labels("instance-group=batch"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let n = nodes
        .patch_status(
            "n-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"allocatable": {"cpu": "4"}}})),
        )
        .await
        .unwrap();
    assert_eq!(n.status.unwrap().allocatable.unwrap()["cpu"].0, "4");
    nodes.delete("n-0", &DeleteParams::default()).await.unwrap();
    assert!(nodes.get_opt("n-0").await.unwrap().is_none());

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "spark");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "conf"},
        "data": {"spark.properties": "spark.executor.instances=2\n"}, "immutable": true}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let got = cms.get("conf").await.unwrap();
    assert_eq!(
        got.data.as_ref().unwrap()["spark.properties"],
        "spark.executor.instances=2\n"
    );
    // Immutable ConfigMap: data cannot change (422), labels can.
    let e = cms
        .patch(
            "conf",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "y"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 422);
    cms.patch(
        "conf",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .unwrap();
    cms.delete("conf", &DeleteParams::default()).await.unwrap();

    // Leases: create, then replace with optimistic concurrency (the extender's leader election).
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("sparkgang-extender".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut held = leases.get("sparkgang-extender").await.unwrap();
    let stale = held.clone();
    held.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let renewed = leases
        .replace("sparkgang-extender", &PostParams::default(), &held)
        .await
        .unwrap();
    assert_eq!(renewed.spec.unwrap().holder_identity.as_deref(), Some("b"));
    let e = leases
        .replace("sparkgang-extender", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);
    let e = leases
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);
}

fn reservation(name: &str, owner: &Pod) -> ResourceReservation {
    let mut reservations = BTreeMap::new();
    reservations.insert(
        "driver".to_owned(),
        ReservationSlot {
            node: "n-0".into(),
            resources: BTreeMap::from([("cpu".to_owned(), "1".to_owned())]),
        },
    );
    let mut rr = ResourceReservation::new(
        name,
        ResourceReservationSpec {
            app_id: name.into(),
            instance_group: None,
            reservations,
        },
    );
    rr.metadata.owner_references = Some(vec![owner_ref(owner)]);
    rr
}

fn owner_ref(owner: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: owner.metadata.name.clone().unwrap(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

#[tokio::test]
async fn resource_reservations_with_status_in_the_main_object() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let driver = pods
        .create(&PostParams::default(), &pod("drv"))
        .await
        .unwrap();
    let rrs: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let mut rr = reservation("spark-app-1", &driver);
    rr.status = Some(ResourceReservationStatus::summarise(
        &rr.spec,
        BTreeMap::new(),
    ));
    let created = rrs.create(&PostParams::default(), &rr).await.unwrap();
    assert_eq!(created.status.as_ref().unwrap().state, "Reserved");
    // No status subresource: status written with the main object via replace.
    let mut next = created.clone();
    next.status = Some(ResourceReservationStatus::summarise(
        &next.spec,
        BTreeMap::from([("driver".to_owned(), "drv".to_owned())]),
    ));
    let replaced = rrs
        .replace("spark-app-1", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_eq!(replaced.status.as_ref().unwrap().state, "Bound");
    assert_eq!(replaced.metadata.generation, Some(2));
    let e = rrs
        .replace("spark-app-1", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);
    // the status endpoint does not exist for this CRD
    let e = rrs.get_status("spark-app-1").await.unwrap_err();
    assert_eq!(code(&e), 404);
    // all four patch types
    let p = rrs
        .patch(
            "spark-app-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"instanceGroup": "batch"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.instance_group.as_deref(), Some("batch"));
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/instanceGroup", "value": "gpu"}]))
    .unwrap();
    let p = rrs
        .patch(
            "spark-app-1",
            &PatchParams::default(),
            &Patch::Json::<()>(jp),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.instance_group.as_deref(), Some("gpu"));
    let p = rrs
        .patch(
            "spark-app-1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.unwrap()["a"], "b");
    let p = rrs
        .patch(
            "spark-app-1",
            &PatchParams::apply("tests").force(),
            &Patch::Apply(json!({"apiVersion": "sparkgang.io/v1", "kind": "ResourceReservation",
                "metadata": {"name": "spark-app-1"}, "spec": {"appId": "spark-app-1", "reservations": {}}})),
        )
        .await
        .unwrap();
    assert!(
        p.spec.reservations.contains_key("driver"),
        "apply merges maps"
    );
    let list = rrs.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    rrs.delete("spark-app-1", &DeleteParams::default())
        .await
        .unwrap();
    assert!(rrs.get_opt("spark-app-1").await.unwrap().is_none());

    // Demands have a status subresource: status is ignored on the main resource.
    let demands: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "spark",
        &kube::api::ApiResource {
            group: "sparkgang.io".into(),
            version: "v1".into(),
            api_version: "sparkgang.io/v1".into(),
            kind: "Demand".into(),
            plural: "demands".into(),
        },
    );
    let d: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "sparkgang.io/v1", "kind": "Demand",
        "metadata": {"name": "d1"}, "spec": {"x": 1}, "status": {"phase": "set-by-client"}}))
    .unwrap();
    let created = demands.create(&PostParams::default(), &d).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is not set on create"
    );
    let s = demands
        .patch_status(
            "d1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Fulfilled"}})),
        )
        .await
        .unwrap();
    assert_eq!(s.data["status"]["phase"], "Fulfilled");
    let after = demands
        .patch(
            "d1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "ignored"}, "spec": {"x": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(after.data["status"]["phase"], "Fulfilled");
    assert_eq!(after.data["spec"]["x"], 2);
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn deleting_the_driver_collects_its_configmap_reservation_and_executors() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let driver = pods
        .create(&PostParams::default(), &pod("drv"))
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "spark");
    let mut cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "spark-drv-conf-map"}, "data": {"a": "b"}}),
    )
    .unwrap();
    cm.metadata.owner_references = Some(vec![owner_ref(&driver)]);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let rrs: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    rrs.create(&PostParams::default(), &reservation("app", &driver))
        .await
        .unwrap();
    let mut exec = pod("drv-exec-1");
    exec.metadata.owner_references = Some(vec![owner_ref(&driver)]);
    let exec = pods.create(&PostParams::default(), &exec).await.unwrap();
    // A ConfigMap owned by the executor: collected transitively.
    let mut cm2: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "exec-owned"}})).unwrap();
    cm2.metadata.owner_references = Some(vec![owner_ref(&exec)]);
    cms.create(&PostParams::default(), &cm2).await.unwrap();
    // A ConfigMap with a second, living owner survives (losing the dead reference).
    let other = pods
        .create(&PostParams::default(), &pod("other"))
        .await
        .unwrap();
    let mut shared: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "shared"}})).unwrap();
    shared.metadata.owner_references = Some(vec![owner_ref(&driver), owner_ref(&other)]);
    cms.create(&PostParams::default(), &shared).await.unwrap();

    pods.delete("drv", &DeleteParams::background())
        .await
        .unwrap();
    assert!(cms.get_opt("spark-drv-conf-map").await.unwrap().is_none());
    assert!(rrs.get_opt("app").await.unwrap().is_none());
    assert!(pods.get_opt("drv-exec-1").await.unwrap().is_none());
    assert!(cms.get_opt("exec-owned").await.unwrap().is_none());
    let shared = cms.get("shared").await.unwrap();
    assert_eq!(shared.metadata.owner_references.unwrap().len(), 1);

    // Orphan propagation keeps dependents.
    let mut cm3: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "orphaned"}})).unwrap();
    cm3.metadata.owner_references = Some(vec![owner_ref(&other)]);
    cms.create(&PostParams::default(), &cm3).await.unwrap();
    pods.delete("other", &DeleteParams::orphan()).await.unwrap();
    let orphan = cms.get("orphaned").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .is_none_or(|r| r.is_empty())
    );

    // An executor created after its driver is gone (Spark asked for it just before the driver
    // died) is collected at once, as the garbage collector does with owners that do not exist.
    let mut late = pod("drv-exec-2");
    late.metadata.owner_references = Some(vec![owner_ref(&driver)]);
    let created = pods.create(&PostParams::default(), &late).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("drv-exec-2"));
    assert!(pods.get_opt("drv-exec-2").await.unwrap().is_none());
}

#[tokio::test]
async fn finalizers_delay_deletion() {
    let server = common::server().await;
    let client = common::client(&server);
    let cms: Api<ConfigMap> = Api::namespaced(client, "spark");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "fin", "finalizers": ["sparkgang.io/test"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("fin", &DeleteParams::default()).await.unwrap();
    let marked = cms.get("fin").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    cms.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("fin").await.unwrap().is_none());
}

#[tokio::test]
async fn recorder_publishes_events() {
    let server = common::server().await;
    let client = common::client(&server);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sparkgang-extender".into(),
            instance: Some("test".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some("drv".into()),
        namespace: Some("spark".into()),
        uid: Some("1234".into()),
        ..Default::default()
    };
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: "GangExceedsCapacity".into(),
        note: Some("the gang does not fit".into()),
        action: "Scheduling".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    // The same event again: kube-rs patches the series.
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "spark");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("GangExceedsCapacity"));
    assert_eq!(e.note.as_deref(), Some("the gang does not fit"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    // The same storage through core/v1, with fields converted.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "spark");
    let list = core
        .list(&ListParams::default().fields("involvedObject.name=drv,reason=GangExceedsCapacity"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].message.as_deref(),
        Some("the gang does not fit")
    );
    assert_eq!(list.items[0].type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn namespaces_are_implicit_and_creatable() {
    let server = common::server().await;
    let client = common::client(&server);
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_owned()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let ns = nss.get("team-a").await.unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "team-a"
    );
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-b"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    // Deleting a namespace deletes what is in it.
    nss.delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
}

#[tokio::test]
async fn crds_created_through_the_api_are_served() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    // No CRDs preloaded.
    let server = common::server_with(sparkgang_sim::apiserver::ServerConfig::default()).await;
    let client = common::client(&server);
    let rrs: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    assert_eq!(
        code(&rrs.list(&ListParams::default()).await.unwrap_err()),
        404
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &ResourceReservation::crd())
        .await
        .unwrap();
    let established = created
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let driver = pods
        .create(&PostParams::default(), &pod("drv"))
        .await
        .unwrap();
    rrs.create(&PostParams::default(), &reservation("r", &driver))
        .await
        .unwrap();
    assert_eq!(
        rrs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // Deleting the CRD removes the resource and its objects.
    crds.delete(
        "resourcereservations.sparkgang.io",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        code(&rrs.list(&ListParams::default()).await.unwrap_err()),
        404
    );
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::all(client);
    let mut stream = Box::pin(kube::runtime::watcher::watcher(
        pods,
        kube::runtime::watcher::Config::default(),
    ));
    use futures::StreamExt;
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, kube::runtime::watcher::Event::Init));
    // Drain in the background so that the watch request is open.
    let drain = tokio::spawn(async move { while stream.next().await.is_some() {} });
    let log_wait = std::time::Instant::now();
    while server.store().open_watches() == 0 {
        assert!(log_wait.elapsed() < std::time::Duration::from_secs(5));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let addr = server.address();
    tokio::time::timeout(std::time::Duration::from_secs(6), server.shutdown())
        .await
        .expect("shutdown in time");
    drain.abort();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// kube-rs's `Api::evict` against the eviction subresource: a PodDisruptionBudget with no
/// disruption allowed refuses (429, cause DisruptionBudget); one that allows it is spent, and
/// the pod is marked `DisruptionTarget` and deleted (here only marked: it has a finalizer).
#[tokio::test]
async fn evictions_honour_pod_disruption_budgets() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::EvictParams;
    let server = common::server().await;
    // kube-rs retries 429 on its own by default (15 times, backing off up to 1000 s): a
    // refusal would take minutes to surface. A caller that evicts turns that off.
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut p = pod("victim");
    p.metadata.finalizers = Some(vec!["test/keep".to_owned()]);
    pods.create(&PostParams::default(), &p).await.unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "drivers"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"spark-role": "driver"}}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let set_allowed = |n: i32| {
        let pdbs = pdbs.clone();
        async move {
            let status = json!({"status": {"disruptionsAllowed": n, "desiredHealthy": 1,
                "currentHealthy": 1, "expectedPods": 1, "observedGeneration": 1}});
            pdbs.patch_status("drivers", &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    };
    set_allowed(0).await;
    let refused = pods
        .evict("victim", &EvictParams::default())
        .await
        .expect_err("the budget refuses");
    assert_eq!(code(&refused), 429);
    assert!(
        refused.to_string().contains("disruption budget"),
        "{refused}"
    );
    assert!(
        pods.get("victim")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    set_allowed(1).await;
    pods.evict("victim", &EvictParams::default())
        .await
        .expect("evicted");
    let marked = pods.get("victim").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let condition = marked
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("DisruptionTarget");
    assert_eq!(condition.reason.as_deref(), Some("EvictionByEvictionAPI"));
    let spent = pdbs.get("drivers").await.unwrap().status.unwrap();
    assert_eq!(spent.disruptions_allowed, 0);
    assert!(
        spent
            .disrupted_pods
            .unwrap_or_default()
            .contains_key("victim")
    );
    let missing = pods
        .evict("nobody", &EvictParams::default())
        .await
        .expect_err("no such pod");
    assert_eq!(code(&missing), 404);
}

/// With graceful deletion (a kubelet that takes time to stop pods), deleting a running pod
/// marks it with its grace period and keeps it until a delete with grace 0 (the kubelet's);
/// a pod bound to no node goes at once, as on kube-apiserver.
#[tokio::test]
async fn running_pods_are_deleted_gracefully() {
    let server = common::server().await;
    server.store().set_graceful_pod_deletion(true);
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let mut running = pod("running");
    running.spec.as_mut().unwrap().node_name = Some("n-1".into());
    running
        .spec
        .as_mut()
        .unwrap()
        .termination_grace_period_seconds = Some(20);
    pods.create(&PostParams::default(), &running).await.unwrap();
    pods.create(&PostParams::default(), &pod("pending"))
        .await
        .unwrap();

    pods.delete("running", &DeleteParams::default())
        .await
        .unwrap();
    let marked = pods.get("running").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(20));
    // Deleting again changes nothing; grace 0 removes it.
    pods.delete("running", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("running").await.unwrap().is_some());
    pods.delete(
        "running",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get_opt("running").await.unwrap().is_none());

    pods.delete("pending", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("pending").await.unwrap().is_none());
}

/// A uid in a patch is a precondition, as in kube-apiserver: a kubelet's status patch of a
/// deleted pod does not land on a new pod of the same name.
#[tokio::test]
async fn a_patch_naming_another_uid_is_a_conflict() {
    let server = common::server().await;
    let client = common::client(&server);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let created = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let stale = json!({"metadata": {"uid": "another-pod"}, "status": {"phase": "Running"}});
    let e = pods
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);
    assert!(
        e.to_string().contains(&format!(
            "UID in precondition: another-pod, UID in object meta: {uid}"
        )),
        "{e}"
    );
    let same = json!({"metadata": {"uid": uid}, "status": {"phase": "Running"}});
    let patched = pods
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&same))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));
}
