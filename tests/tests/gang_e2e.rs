//! End to end through the simulated cluster: a plain spark-submit is admitted by the real
//! webhook (configured by deploy/), gated, its demand read by the real extender's gate
//! controller, placed as a gang by the simulated kube-scheduler calling the real extender
//! (deploy/'s KubeSchedulerConfiguration), its executors take their reserved slots, and the
//! completed driver releases everything.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use sparkgang_common::api::reservation::ResourceReservation;
use sparkgang_sim::harness::{SimCluster, SimOptions};
use sparkgang_sim::spark::{self, DriverScript, Scripts, Submission};

use sparkgang_tests::testbed::{self, bound_executors_of, bound_slots, conf};
use sparkgang_tests::wait::eventually;

async fn setup(nodes: usize) -> (SimCluster, Scripts) {
    testbed::start(SimOptions::default(), nodes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_gang_from_plain_spark_submit() {
    let (cluster, scripts) = setup(3).await;
    let client = cluster.client.clone();
    let submission = Submission {
        namespace: "spark".into(),
        name: "pi".into(),
        conf: conf(&[
            ("spark.executor.instances", "4"),
            ("spark.executor.cores", "2"),
            ("spark.executor.memory", "4g"),
        ]),
        annotations: BTreeMap::new(),
    };
    let (driver_name, app_id, _) = spark::identities("pi", 7);
    scripts.lock().unwrap().insert(
        format!("spark/{driver_name}"),
        DriverScript {
            runtime: Duration::from_secs(2),
            ..DriverScript::default()
        },
    );
    let admitted = spark::submit(&client, &submission, 7)
        .await
        .expect("submitted");
    // The webhook set the scheduler, the app-id label and the gate.
    let spec = admitted.spec.as_ref().unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("spark-scheduler"));
    assert!(
        spec.scheduling_gates
            .iter()
            .flatten()
            .any(|g| g.name == "sparkgang.io/spark-conf"),
        "{spec:?}"
    );
    assert_eq!(
        admitted.metadata.labels.as_ref().unwrap()["spark-app-id"],
        app_id
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "spark");
    let reservations: Api<ResourceReservation> = Api::namespaced(client.clone(), "spark");
    // The gate controller read spark.properties and removed the gate; the driver was placed.
    let driver = eventually("the driver to be bound", Duration::from_secs(20), || {
        let pods = pods.clone();
        let name = driver_name.clone();
        async move {
            let p = pods.get(&name).await.ok()?;
            p.spec.as_ref()?.node_name.as_ref()?;
            Some(p)
        }
    })
    .await;
    let demand = driver.metadata.annotations.as_ref().unwrap()["sparkgang.io/demand"].clone();
    assert!(demand.contains("\"minExecutors\":4"), "{demand}");
    let rr = eventually("the reservation", Duration::from_secs(10), || {
        let reservations = reservations.clone();
        let app_id = app_id.clone();
        async move { reservations.get(&app_id).await.ok() }
    })
    .await;
    assert_eq!(rr.spec.reservations.len(), 5);
    assert_eq!(
        rr.spec.reservations["driver"].node,
        driver.spec.as_ref().unwrap().node_name.clone().unwrap()
    );
    // Every executor Spark creates lands on a reserved slot.
    let bound = bound_slots(&reservations, &app_id, 5).await;
    let executors = bound_executors_of(&client, &app_id, 4).await;
    for e in &executors {
        let name = e.metadata.name.clone().unwrap();
        let (slot, _) = bound
            .iter()
            .find(|(_, p)| **p == name)
            .expect("executor holds a slot");
        assert_eq!(
            e.spec.as_ref().unwrap().node_name.as_deref(),
            Some(rr.spec.reservations[slot].node.as_str()),
            "{name} runs where {slot} was reserved"
        );
    }
    // The application completes; its reservation is released.
    eventually(
        "the reservation to be released",
        Duration::from_secs(30),
        || {
            let reservations = reservations.clone();
            let app_id = app_id.clone();
            async move {
                reservations
                    .get_opt(&app_id)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    let finished = pods.get(&driver_name).await.unwrap();
    assert_eq!(finished.status.unwrap().phase.as_deref(), Some("Succeeded"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_annotation_is_rejected_at_submit() {
    let (cluster, _) = setup(1).await;
    let submission = Submission {
        namespace: "spark".into(),
        name: "bad".into(),
        conf: BTreeMap::new(),
        annotations: BTreeMap::from([("spark-executor-mem".to_owned(), "lots".to_owned())]),
    };
    let err = spark::submit(&cluster.client, &submission, 9)
        .await
        .expect_err("the webhook denies it");
    let text = err.to_string();
    assert!(
        text.contains("spark-executor-mem") && text.contains("lots"),
        "{text}"
    );
    cluster.stop().await;
}

/// A plain spark-submit chooses its priority with a driver label: the webhook names the class
/// and drops the priority the API server's Priority plugin resolved before it, so that the
/// plugin's second pass resolves the class (a webhook that kept `spec.priority` would have the
/// pod refused). A class that does not exist is refused by the API server, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_label_sets_the_priority_class() {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let (cluster, _) = setup(1).await;
    let classes: Api<PriorityClass> = Api::all(cluster.client.clone());
    let high: PriorityClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "high"}, "value": 1000}))
    .unwrap();
    classes
        .create(&kube::api::PostParams::default(), &high)
        .await
        .expect("class created");
    let submission = |name: &str, class: &str| Submission {
        namespace: "spark".into(),
        name: name.into(),
        conf: conf(&[(
            "spark.kubernetes.driver.label.sparkgang.io/priority-class",
            class,
        )]),
        annotations: BTreeMap::new(),
    };
    let admitted = spark::submit(&cluster.client, &submission("urgent", "high"), 11)
        .await
        .expect("submitted");
    let spec = admitted.spec.as_ref().unwrap();
    assert_eq!(spec.priority_class_name.as_deref(), Some("high"));
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );

    let err = spark::submit(&cluster.client, &submission("lost", "nope"), 12)
        .await
        .expect_err("an unknown class is refused");
    assert!(
        err.to_string()
            .contains("no PriorityClass with name nope was found"),
        "{err}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_that_cannot_fit_waits_with_a_reason() {
    let (cluster, _) = setup(1).await;
    let submission = Submission {
        namespace: "spark".into(),
        name: "huge".into(),
        conf: conf(&[
            ("spark.executor.instances", "20"),
            ("spark.executor.cores", "2"),
        ]),
        annotations: BTreeMap::new(),
    };
    let (driver_name, _, _) = spark::identities("huge", 11);
    spark::submit(&cluster.client, &submission, 11)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "spark");
    let condition = eventually(
        "the exceeds-capacity condition",
        Duration::from_secs(20),
        || {
            let pods = pods.clone();
            let name = driver_name.clone();
            async move {
                let p = pods.get(&name).await.ok()?;
                p.status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodExceedsClusterCapacity" && c.status == "True")
            }
        },
    )
    .await;
    assert!(
        condition
            .message
            .unwrap_or_default()
            .contains("can never fit")
    );
    let driver = pods.get(&driver_name).await.unwrap();
    assert!(driver.spec.unwrap().node_name.is_none());
    cluster.stop().await;
}

/// cert-manager renews the webhook's certificate while Spark pods keep coming: every pod is
/// admitted, and the webhook serves the new certificate without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_certificate_rotation_under_load() {
    let (cluster, _) = setup(2).await;
    let client = cluster.client.clone();
    let submitter = tokio::spawn(async move {
        let mut admitted = 0;
        for seed in 100..130u64 {
            let s = Submission {
                namespace: "spark".into(),
                name: format!("load-{seed}"),
                conf: conf(&[("spark.executor.instances", "0")]),
                annotations: BTreeMap::new(),
            };
            spark::submit(&client, &s, seed)
                .await
                .expect("admitted during rotation");
            admitted += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        admitted
    });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.rotate_webhook_certificate().unwrap();
    }
    assert_eq!(submitter.await.unwrap(), 30);
    let metrics = cluster.webhook.as_ref().unwrap().metrics().encode();
    let reloads: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("sparkgang_admission_certificate_reloads_total{result=\"success\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        reloads >= 1.0,
        "the webhook reloaded its certificate: {metrics}"
    );
    cluster.stop().await;
}
