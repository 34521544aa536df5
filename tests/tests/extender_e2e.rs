//! The real extender against the simulated API: restart recovery (nothing lost or
//! double-booked), executor replacement, the gate-timeout path, leader election, and the API
//! calls it makes (which `deploy/`'s RBAC must grant).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use sparkgang_common::GpuResourceNames;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::resources::{Resources, node_allocatable, pod_requests};
use sparkgang_extender::api_calls::API_CALLS;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::config::ExtenderConfig;
use sparkgang_sim::apiserver::RequestLog;
use sparkgang_sim::harness::{EXTENDER_USER_AGENT, SimCluster, SimOptions, config_with_agent};
use sparkgang_sim::kubelet::{Phase, set_phase};
use sparkgang_sim::spark::{self, DriverScript, Scripts, Submission};

use sparkgang_tests::testbed::{self, bound_slots};
use sparkgang_tests::wait::eventually;

async fn setup(options: SimOptions, nodes: usize) -> (SimCluster, Scripts) {
    testbed::start(options, nodes).await
}

fn submission(name: &str, executors: u32) -> Submission {
    Submission {
        namespace: "spark".into(),
        name: name.into(),
        conf: BTreeMap::from([
            ("spark.executor.instances".to_owned(), executors.to_string()),
            ("spark.executor.cores".to_owned(), "2".to_owned()),
            ("spark.executor.memory".to_owned(), "4g".to_owned()),
        ]),
        annotations: BTreeMap::new(),
    }
}

/// No node holds more than it has: running pods plus reservation slots that no running pod
/// of their app fills.
async fn assert_no_overcommit(cluster: &SimCluster) {
    let gpus = GpuResourceNames::default();
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let rrs: Api<ResourceReservation> = Api::all(cluster.client.clone());
    let pods = pods.list(&ListParams::default()).await.unwrap().items;
    let mut held: HashMap<String, Resources> = HashMap::new();
    let mut running: HashMap<(String, String), String> = HashMap::new();
    for p in &pods {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if let (Some(node), false) = (
            p.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase == "Succeeded" || phase == "Failed",
        ) {
            *held.entry(node.clone()).or_default() +=
                pod_requests(p.spec.as_ref().unwrap(), &gpus).unwrap();
            running.insert(
                (
                    p.metadata.namespace.clone().unwrap(),
                    p.metadata.name.clone().unwrap(),
                ),
                node,
            );
        }
    }
    for rr in rrs.list(&ListParams::default()).await.unwrap().items {
        let ns = rr.metadata.namespace.clone().unwrap();
        let status = rr.status.clone().unwrap_or_default();
        for (slot, s) in &rr.spec.reservations {
            let filled = status
                .pods
                .get(slot)
                .and_then(|p| running.get(&(ns.clone(), p.clone())))
                .is_some_and(|n| *n == s.node);
            if !filled {
                *held.entry(s.node.clone()).or_default() +=
                    Resources::from_quantities(&s.resources, &gpus).unwrap();
            }
        }
    }
    for n in nodes.list(&ListParams::default()).await.unwrap().items {
        let name = n.metadata.name.clone().unwrap();
        let used = held.get(&name).copied().unwrap_or_default();
        assert!(
            used.fits_in(&node_allocatable(&n, &gpus).unwrap()),
            "node {name} over-committed: {used}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_nothing_and_double_books_nothing() {
    let (mut cluster, scripts) = setup(SimOptions::default(), 3).await;
    let client = cluster.client.clone();
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let (a_driver, a_id, _) = spark::identities("alpha", 1);
    scripts.lock().unwrap().insert(
        format!("spark/{a_driver}"),
        DriverScript {
            runtime: Duration::from_secs(60),
            ..DriverScript::default()
        },
    );
    spark::submit(&client, &submission("alpha", 4), 1)
        .await
        .unwrap();
    let before = bound_slots(&reservations, &a_id, 5).await;
    let slots_before = reservations.get(&a_id).await.unwrap().spec.reservations;

    cluster.restart_extender().await.unwrap();

    // Its reservation is intact after the restart.
    let after = reservations.get(&a_id).await.unwrap();
    assert_eq!(after.spec.reservations, slots_before);
    // An executor dies; Spark replaces it with a new id, which takes the freed slot.
    let victim = before["executor-2"].clone();
    let pod = pods.get(&victim).await.unwrap();
    set_phase(&client, &pod, Phase::Failed(137)).await.unwrap();
    let replaced = eventually(
        "a replacement executor in the freed slot",
        Duration::from_secs(30),
        || {
            let reservations = reservations.clone();
            let a_id = a_id.clone();
            let victim = victim.clone();
            async move {
                let pods = reservations.get(&a_id).await.ok()?.status?.pods;
                (pods.len() == 5 && !pods.values().any(|p| *p == victim)).then_some(pods)
            }
        },
    )
    .await;
    assert_ne!(replaced["executor-2"], victim);
    // A second application fits only in what is really free.
    let (_, b_id, _) = spark::identities("beta", 2);
    spark::submit(&client, &submission("beta", 3), 2)
        .await
        .unwrap();
    bound_slots(&reservations, &b_id, 4).await;
    assert_no_overcommit(&cluster).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_timeout_ungates_with_the_default_demand_and_says_so() {
    let overrides = serde_yaml::from_str(
        "{gateTimeout: 1s, defaultDemand: {driver: {cpu: '1', memory: 2Gi}, executor: {cpu: '1', memory: 2Gi}, minExecutors: 1, maxExecutors: 1}}",
    )
    .unwrap();
    let (cluster, _) = setup(
        SimOptions {
            extender_overrides: Some(overrides),
            ..SimOptions::default()
        },
        1,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "spark");
    // A driver whose ConfigMap never comes.
    let driver: Pod = serde_json::from_value(json!({
        "metadata": {"name": "lonely-driver", "labels": {"spark-role": "driver", "spark-app-selector": "spark-lonely"}},
        "spec": {"containers": [{"name": "spark-kubernetes-driver", "image": "apache/spark",
                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                 "volumes": [{"name": "spark-conf-volume-driver", "configMap": {"name": "spark-drv-never-conf-map"}}]}
    }))
    .unwrap();
    let admitted = pods.create(&PostParams::default(), &driver).await.unwrap();
    assert!(
        admitted
            .spec
            .unwrap()
            .scheduling_gates
            .unwrap_or_default()
            .iter()
            .any(|g| g.name == "sparkgang.io/spark-conf")
    );
    let ungated = eventually("the gate to be removed", Duration::from_secs(15), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("lonely-driver").await.ok()?;
            p.spec.as_ref()?.scheduling_gates.is_none().then_some(p)
        }
    })
    .await;
    let demand = &ungated.metadata.annotations.unwrap()["sparkgang.io/demand"];
    assert!(demand.contains("\"minExecutors\":1"), "{demand}");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(cluster.client.clone(), "spark");
    let warned = eventually("a Warning event", Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("GangDemandFallback")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some("lonely-driver")
                })
        }
    })
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    assert!(warned.note.unwrap_or_default().contains("did not appear"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extender_calls_only_what_its_rbac_grants() {
    let (cluster, scripts) = setup(SimOptions::default(), 2).await;
    let log = RequestLog::new();
    cluster.api.add_observer(log.clone());
    let reservations: Api<ResourceReservation> = Api::namespaced(cluster.client.clone(), "spark");
    let (driver, id, _) = spark::identities("calls", 3);
    scripts.lock().unwrap().insert(
        format!("spark/{driver}"),
        DriverScript {
            runtime: Duration::from_millis(500),
            ..DriverScript::default()
        },
    );
    spark::submit(&cluster.client, &submission("calls", 2), 3)
        .await
        .unwrap();
    bound_slots(&reservations, &id, 3).await;
    eventually("the release", Duration::from_secs(20), || {
        let reservations = reservations.clone();
        let id = id.clone();
        async move {
            reservations
                .get_opt(&id)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    let used: Vec<_> = log
        .records()
        .into_iter()
        .filter(|r| r.user_agent.as_deref() == Some(EXTENDER_USER_AGENT) && r.resource.is_some())
        .collect();
    assert!(!used.is_empty(), "no extender requests recorded");
    for r in used {
        let group = r.group.clone().unwrap_or_default();
        let resource = match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource.clone().unwrap_or_default()),
            None => r.resource.clone().unwrap_or_default(),
        };
        let granted = API_CALLS.iter().any(|c| {
            c.group == group && c.resource == resource && c.verbs.contains(&r.verb.as_str())
        });
        assert!(
            granted,
            "the extender called {} {group}/{resource} ({} {}), which API_CALLS does not list",
            r.verb, r.method, r.path
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_serves_and_a_follower_takes_over() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = sparkgang_sim::apiserver::start(
        sparkgang_sim::apiserver::ServerConfig::default()
            .with_crd_dir(sparkgang_sim::deploy_config::repository_deploy_dir().join("crds"))
            .unwrap(),
    )
    .await
    .unwrap();
    let config = ExtenderConfig::from_yaml(
        "{filterListenAddress: '127.0.0.1:0', metricsListenAddress: '127.0.0.1:0', leaderElection: {enabled: true, leaseNamespace: sparkgang-system, leaseDuration: 2s, renewInterval: 200ms, renewDeadline: 1s}}",
        "test",
    )
    .unwrap();
    let start = |identity: &str| {
        let config = config.clone();
        let kube = config_with_agent(&api, EXTENDER_USER_AGENT).unwrap();
        let identity = identity.to_owned();
        async move {
            sparkgang_extender::start(config, kube, Arc::new(SystemClock), identity)
                .await
                .unwrap()
        }
    };
    let first = start("replica-a").await;
    let second = start("replica-b").await;
    let ready = |r: &sparkgang_extender::Running| r.extender.not_ready_reason().is_none();
    eventually("one replica to lead", Duration::from_secs(10), || {
        let one = ready(&first) || ready(&second);
        async move { one.then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        ready(&first) != ready(&second),
        "exactly one replica serves"
    );
    let (leader, follower) = if ready(&first) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(
        follower
            .extender
            .not_ready_reason()
            .unwrap()
            .contains("not the leader")
    );
    leader.kill();
    eventually("the follower to take over", Duration::from_secs(10), || {
        let now = ready(&follower);
        async move { now.then_some(()) }
    })
    .await;
    follower.kill();
    api.shutdown().await;
}

/// With `demands.enabled`, a driver that does not fit publishes a `Demand` for autoscalers,
/// and the Demand goes once the driver is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demands_are_published_while_a_gang_waits() {
    let overrides = serde_yaml::from_str("{demands: {enabled: true}}").unwrap();
    let (cluster, scripts) = setup(
        SimOptions {
            extender_overrides: Some(overrides),
            ..SimOptions::default()
        },
        1,
    )
    .await;
    let client = cluster.client.clone();
    let (first, first_id, _) = spark::identities("first", 21);
    scripts.lock().unwrap().insert(
        format!("spark/{first}"),
        DriverScript {
            runtime: Duration::from_secs(3),
            ..DriverScript::default()
        },
    );
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    spark::submit(&client, &submission("first", 3), 21)
        .await
        .unwrap();
    bound_slots(&reservations, &first_id, 4).await;
    let (second, _, _) = spark::identities("second", 22);
    // An autoscaler needs to know which group to grow: the driver names its instance group.
    let mut waiting = submission("second", 3);
    waiting.conf.insert(
        "spark.kubernetes.node.selector.instance-group".to_owned(),
        "batch".to_owned(),
    );
    spark::submit(&client, &waiting, 22).await.unwrap();
    let demands: Api<sparkgang_common::api::demand::Demand> =
        Api::namespaced(client.clone(), "spark");
    let demand_name = format!("demand-{second}");
    let demand = eventually(
        "a Demand for the waiting driver",
        Duration::from_secs(20),
        || {
            let demands = demands.clone();
            let name = demand_name.clone();
            async move { demands.get_opt(&name).await.ok().flatten() }
        },
    )
    .await;
    assert_eq!(demand.spec.instance_group, "batch");
    assert_eq!(demand.spec.units.iter().map(|u| u.count).sum::<u32>(), 4);
    // The first application completes; the second is placed and its Demand deleted.
    eventually("the Demand to be deleted", Duration::from_secs(40), || {
        let demands = demands.clone();
        let name = demand_name.clone();
        async move { demands.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    cluster.stop().await;
}
