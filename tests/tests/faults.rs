//! The extender against a misbehaving API server (the simulator's fault injection): a write
//! whose answer was lost is read back, not repeated; a hung API makes the leader stop
//! deciding and it recovers without a restart; dropped watches lose no event; a leader that
//! shuts down hands over at once.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_common::cluster::{ClusterState, SchedulerConfig};
use sparkgang_common::{GangDemand, Resources};
use sparkgang_extender::Extender;
use sparkgang_extender::clock::SystemClock;
use sparkgang_extender::config::ExtenderConfig;
use sparkgang_extender::writer::sync_reservation;
use sparkgang_sim::apiserver::{self, Clients, FaultKind, RequestLog, ServerConfig};
use sparkgang_sim::deploy_config::repository_deploy_dir;
use sparkgang_sim::harness::{EXTENDER_USER_AGENT, SimOptions, client_for, config_with_agent};
use sparkgang_sim::spark;
use sparkgang_testing::{fixtures, http};
use sparkgang_tests::testbed::{self, bound_slots};
use sparkgang_tests::wait::eventually;

fn extender_agent() -> Clients {
    Clients::UserAgent(EXTENDER_USER_AGENT.to_owned())
}

async fn api_server() -> apiserver::ApiServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    apiserver::start(
        ServerConfig::default()
            .with_crd_dir(repository_deploy_dir().join("crds"))
            .unwrap(),
    )
    .await
    .unwrap()
}

/// `GET path` on `addr`: status and body as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> (StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, body) = http::request(stream, Method::GET, "extender", path, Vec::new())
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A state with three nodes in which the fixture driver has just been placed: the driver pod
/// exists in the API server (it owns the reservation: without it the garbage collector would
/// take the reservation at once), its reservation in memory only.
async fn state_with_a_placed_driver(
    api: &apiserver::ApiServer,
) -> (ClusterState, sparkgang_common::cluster::AppKey) {
    let mut state = ClusterState::new(SchedulerConfig::default());
    let mut names = Vec::new();
    for i in 0..3 {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("n{i}"), "labels": {"instance-group": "batch",
                "topology.kubernetes.io/zone": "z1"}},
            "status": {"allocatable": {"cpu": "32", "memory": "128Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        state.apply_node(&node);
        names.push(format!("n{i}"));
    }
    let args: Value = serde_json::from_str(&fixtures::read(
        fixtures::KUBE_SCHEDULER_WIRE,
        "filter-args.driver.json",
    ))
    .unwrap();
    let mut pod: Pod = serde_json::from_value(args["Pod"].clone()).unwrap();
    let demand = GangDemand {
        driver: Resources::new(1000, 1408 << 20, 0),
        executor: Resources::new(2000, 4505 << 20, 0),
        min_executors: 2,
        max_executors: 2,
    };
    pod.metadata.annotations = Some(
        [(
            "sparkgang.io/demand".to_owned(),
            serde_json::to_string(&demand).unwrap(),
        )]
        .into(),
    );
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    pod.metadata.creation_timestamp = None;
    let pod = Api::<Pod>::namespaced(client_for(api).unwrap(), &namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let decision = state.filter(&pod, &names, k8s_openapi::jiff::Timestamp::now());
    assert!(
        decision.node.is_some(),
        "the driver is placed: {decision:?}"
    );
    let app = state
        .reservation_keys()
        .pop()
        .expect("a reservation in memory");
    (state, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_is_read_back_not_repeated() {
    let api = api_server().await;
    let log = RequestLog::new();
    api.add_observer(log.clone());
    let (state, app) = state_with_a_placed_driver(&api).await;
    let (ext, _effects) = Extender::standalone(state, Arc::new(SystemClock));
    let mut config = config_with_agent(&api, EXTENDER_USER_AGENT).unwrap();
    config.read_timeout = Some(Duration::from_millis(300));
    let client = kube::Client::try_from(config).unwrap();

    // The API server holds the create (and every read) for 2 s, then serves them in order:
    // the create lands after the extender gave up waiting for its answer.
    api.faults()
        .inject(FaultKind::ApiHang, extender_agent(), Duration::from_secs(2));
    tokio::time::timeout(
        Duration::from_secs(30),
        sync_reservation(&client, &ext, &app, 5),
    )
    .await
    .expect("the write settles once the API answers again");

    let creates: Vec<u16> = log
        .records()
        .iter()
        .filter(|r| r.verb == "create" && r.resource.as_deref() == Some("resourcereservations"))
        .map(|r| r.code)
        .collect();
    assert_eq!(creates, [201], "one create, never a second one");
    let reservations: Api<ResourceReservation> =
        Api::namespaced(client_for(&api).unwrap(), &app.namespace);
    let stored = reservations.get(&app.reservation_name()).await.unwrap();
    assert_eq!(
        ext.with_state(|s| s.reservation_matches(&app, Some(&stored))),
        Some(true),
        "the API holds what memory holds"
    );
    let metrics = ext.metrics.encode();
    assert!(
        metrics.contains(
            "sparkgang_extender_api_writes_total{kind=\"resourcereservation\",result=\"reconciled\"} 1"
        ),
        "the landed write was recognised:\n{metrics}"
    );
    api.shutdown().await;
}

fn short_timeouts(leader_election: bool) -> serde_yaml::Value {
    serde_yaml::from_str(&format!(
        "{{leaderElection: {{enabled: {leader_election}, leaseNamespace: sparkgang-system,
          leaseDuration: 4s, renewInterval: 300ms, renewDeadline: 2s}},
          apiServer: {{requestTimeout: 1s, watchTimeout: 2s, staleStepDownAfter: 3s}}}}"
    ))
    .unwrap()
}

/// Hangs the API towards the extender for 8 s: `/readyz` must fail with a reason containing
/// one of `reasons`, filter calls get 503, and afterwards the same extender (no restart)
/// leads, is ready and places a new gang. Returns its metrics after recovery.
async fn hang_and_recover(leader_election: bool, reasons: &[&str]) -> String {
    let (cluster, scripts) = testbed::start(
        SimOptions {
            extender_overrides: Some(short_timeouts(leader_election)),
            ..SimOptions::default()
        },
        3,
    )
    .await;
    let running = cluster.extender.as_ref().expect("an extender");
    let metrics = running.metrics_address;
    assert_eq!(get(metrics, "/readyz").await.0, StatusCode::OK);

    cluster
        .api
        .faults()
        .inject(FaultKind::ApiHang, extender_agent(), Duration::from_secs(8));
    let why = eventually(
        "the extender to stop deciding",
        Duration::from_secs(6),
        || async {
            let (status, body) = get(metrics, "/readyz").await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
        },
    )
    .await;
    assert!(
        reasons.iter().any(|r| why.contains(r)),
        "/readyz says why ({reasons:?}): {why}"
    );
    // Filter calls are refused while it cannot trust its state.
    let args = fixtures::read(fixtures::KUBE_SCHEDULER_WIRE, "filter-args.driver.json");
    let stream = tokio::net::TcpStream::connect(running.filter_address)
        .await
        .unwrap();
    let (status, _) = http::post_json(stream, "extender", "/filter", args.into_bytes())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    eventually(
        "the extender to decide again",
        Duration::from_secs(30),
        || async { (get(metrics, "/readyz").await.0 == StatusCode::OK).then_some(()) },
    )
    .await;
    let encoded = get(metrics, "/metrics").await.1;
    // And it decides again: a new application gets its gang.
    let (driver, id, _) = spark::identities("after", 7);
    scripts.lock().unwrap().insert(
        format!("spark/{driver}"),
        spark::DriverScript {
            runtime: Duration::from_secs(60),
            ..spark::DriverScript::default()
        },
    );
    let submission = spark::Submission {
        namespace: "spark".into(),
        name: "after".into(),
        conf: testbed::conf(&[
            ("spark.executor.instances", "2"),
            ("spark.executor.cores", "2"),
        ]),
        annotations: Default::default(),
    };
    spark::submit(&cluster.client, &submission, 7)
        .await
        .unwrap();
    let reservations: Api<ResourceReservation> = Api::namespaced(cluster.client.clone(), "spark");
    bound_slots(&reservations, &id, 3).await;
    cluster.stop().await;
    encoded
}

/// With leader election, renewals hang first: the leader stops deciding at `renewDeadline`,
/// its term ends, and it campaigns again until the API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_makes_the_leader_stop_deciding_and_it_recovers_without_a_restart() {
    hang_and_recover(true, &["renewDeadline", "not the leader", "stale"]).await;
}

/// A single replica has no lease to lose: the silent watches make its caches stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_makes_the_caches_stale_until_they_are_listed_again() {
    let metrics = hang_and_recover(false, &["stale"]).await;
    let failed = metrics
        .lines()
        .filter(|l| l.starts_with("sparkgang_extender_watch_failures_total{"))
        .any(|l| !l.ends_with(" 0"));
    assert!(failed, "the silent watches are counted:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_are_watched_again_and_lose_no_event() {
    let (cluster, _scripts) = testbed::start(
        SimOptions {
            extender_overrides: Some(short_timeouts(true)),
            ..SimOptions::default()
        },
        2,
    )
    .await;
    let running = cluster.extender.as_ref().expect("an extender");
    cluster.api.faults().inject(
        FaultKind::DropWatches,
        extender_agent(),
        Duration::from_secs(3),
    );
    // A node joins while the extender cannot watch.
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "late-node", "labels": {"instance-group": "batch"}},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let ext = running.extender.clone();
    eventually(
        "the extender to know the new node",
        Duration::from_secs(20),
        || {
            let ext = ext.clone();
            async move {
                let ready = ext.not_ready_reason().is_none();
                let known = ext
                    .with_state(|s| s.node_names().iter().any(|n| n == "late-node"))
                    .unwrap_or(false);
                (ready && known).then_some(())
            }
        },
    )
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_releases_its_lease_and_the_follower_leads_at_once() {
    let api = api_server().await;
    // The lease lasts 20 s: without a release the follower would wait that long.
    let config = ExtenderConfig::from_yaml(
        "{filterListenAddress: '127.0.0.1:0', metricsListenAddress: '127.0.0.1:0',
          leaderElection: {enabled: true, leaseNamespace: sparkgang-system, leaseDuration: 20s,
                           renewInterval: 200ms, renewDeadline: 10s}}",
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
    let ready = |r: &sparkgang_extender::Running| r.extender.not_ready_reason().is_none();
    eventually("the first replica to lead", Duration::from_secs(10), || {
        let now = ready(&first);
        async move { now.then_some(()) }
    })
    .await;
    let second = start("replica-b").await;
    let handed_over = tokio::time::Instant::now();
    first.shutdown().await.expect("a clean shutdown");
    let leases: Api<Lease> = Api::namespaced(client_for(&api).unwrap(), "sparkgang-system");
    eventually(
        "the follower to lead well before the lease would expire",
        Duration::from_secs(5),
        || {
            let now = ready(&second);
            async move { now.then_some(()) }
        },
    )
    .await;
    assert!(handed_over.elapsed() < Duration::from_secs(20));
    let lease = leases.get("sparkgang-extender").await.unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-b")
    );
    second.shutdown().await.expect("a clean shutdown");
    let lease = leases.get("sparkgang-extender").await.unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "the last leader released the lease"
    );
    api.shutdown().await;
}
