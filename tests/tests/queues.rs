//! Queues (issue 18, docs/queues.md) end to end: each rule as a scenario in real time and on
//! the virtual clock, the fair-share figures over two simulated hours, and a Queue applied with
//! the real kubectl to the playground whose status the extender's leader keeps up to date.

use std::collections::BTreeMap;
use std::time::Duration;

use sparkgang_sim::playground::Playground;
use sparkgang_sim::scenario::Mode;
use sparkgang_sim::scenario::queues::QueueReport;
use sparkgang_sim::spark::{self, Submission};
use sparkgang_testing::kubectl::kubectl;
use sparkgang_tests::scenarios::{check, load, run_and_check, run_virtual};
use sparkgang_tests::wait::eventually;

fn queue<'r>(queues: &'r [QueueReport], name: &str) -> &'r QueueReport {
    queues
        .iter()
        .find(|q| q.name == name)
        .unwrap_or_else(|| panic!("no queue {name} in the report"))
}

fn peak_cpu(q: &QueueReport, until: f64) -> i64 {
    q.timeline
        .iter()
        .filter(|s| s.at <= until)
        .map(|s| s.cpu_milli)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_at_its_max_holds_its_gangs_and_one_over_it_never_fits() {
    for r in run_and_check("queue-max.yaml").await {
        let etl = queue(&r.queues, "etl");
        assert!(
            peak_cpu(etl, f64::MAX) <= 12_000,
            "{} clock: {etl:?}",
            r.clock
        );
        let app = |n: &str| r.apps.iter().find(|a| a.name == n).expect("the app");
        let (first, second) = (app("etl-first"), app("etl-second"));
        assert!(
            second.driver_scheduled_at >= first.completed_at,
            "{} clock: etl-second placed at {:?}, before etl-first completed at {:?}",
            r.clock,
            second.driver_scheduled_at,
            first.completed_at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_queues_guarantee_is_lent_and_taken_back_in_one_round_of_reclaim() {
    for r in run_and_check("queue-borrow-reclaim.yaml").await {
        let (etl, ml) = (queue(&r.queues, "etl"), queue(&r.queues, "ml"));
        // Lent: before ml's demand (at 9 s) etl holds more than its 16 guaranteed cores.
        assert_eq!(peak_cpu(etl, 8.9), 28_000, "{} clock: {etl:?}", r.clock);
        // Taken back: one preemption per ml gang (one round each), and ml then holds both
        // gangs (14 of its 16 cores) at once.
        assert_eq!(
            r.preemptions.len(),
            2,
            "{} clock: {:?}",
            r.clock,
            r.preemptions
        );
        assert_eq!(peak_cpu(ml, f64::MAX), 14_000, "{} clock: {ml:?}", r.clock);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_with_the_lower_share_goes_first() {
    run_and_check("queue-fair-order.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_above_the_minimum_stay_within_the_queue_and_unknown_queues_are_refused() {
    for r in run_and_check("queue-dynamic-allocation.yaml").await {
        let app = |n: &str| r.apps.iter().find(|a| a.name == n).expect("the app");
        assert_eq!(
            app("elastic").peak_running_executors,
            5,
            "{} clock: (12 - 1) / 2 cores",
            r.clock
        );
        let refused = app("misnamed")
            .last_pending_reason
            .clone()
            .unwrap_or_default();
        assert!(
            refused.contains("names a queue that does not exist; the queues are: etl"),
            "{} clock: {refused}",
            r.clock
        );
    }
}

/// The figures, on the virtual clock (two hours of cluster time each; the numbers are
/// in docs/benchmarks.md): each queue's time-averaged part of what the group's queues hold.
#[test]
fn fair_shares_over_two_hours_match_the_weights() {
    for (file, expected) in [
        ("queue-fair-share.yaml", [("red", 0.5), ("blue", 0.5)]),
        (
            "queue-weighted-share.yaml",
            [("heavy", 2.0 / 3.0), ("light", 1.0 / 3.0)],
        ),
    ] {
        let r = run_virtual(&load(file), Mode::Sparkgang);
        check(&r);
        for (name, share) in expected {
            let got = queue(&r.queues, name).time_averaged_share_of_allocated;
            assert!(
                (got - share).abs() <= 0.05,
                "{file}: queue {name} held {got:.3} of the group's allocation on average, \
                 expected {share:.3} ± 0.05"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_applied_with_kubectl_gets_its_status_from_the_extender() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = Playground::start(2).await.expect("the playground starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, p.kubeconfig()).expect("the kubeconfig is written");
    let file = dir.path().join("queue.yaml");
    std::fs::write(
        &file,
        "apiVersion: sparkgang.io/v1\nkind: Queue\nmetadata:\n  name: analytics\nspec:\n  \
         instanceGroup: batch\n  guaranteed: {cpu: \"8\"}\n  max: {cpu: \"12\"}\n",
    )
    .expect("the queue is written");
    let applied = kubectl(&config, &["apply", "-f", file.to_str().expect("utf-8")]).await;
    assert!(
        applied.contains("queue.sparkgang.io/analytics created"),
        "{applied}"
    );

    let (driver, _, _) = spark::identities("report", 7);
    let conf = BTreeMap::from([
        ("spark.executor.instances".to_owned(), "2".to_owned()),
        ("spark.executor.cores".to_owned(), "2".to_owned()),
        (
            "spark.kubernetes.driver.label.sparkgang.io/queue".to_owned(),
            "analytics".to_owned(),
        ),
    ]);
    p.scripts.lock().expect("the scripts").insert(
        format!("spark/{driver}"),
        spark::DriverScript {
            runtime: Duration::from_secs(120),
            ..spark::DriverScript::default()
        },
    );
    let s = Submission {
        namespace: "spark".to_owned(),
        name: "report".to_owned(),
        conf,
        annotations: BTreeMap::new(),
    };
    spark::submit(&p.cluster.client, &s, 7)
        .await
        .expect("the driver is admitted");
    // The leader writes the status (every 5 s by default): 1 running application holding
    // the driver's core and two executors of 2 (5 of 8 guaranteed cores: 0.625, printed
    // rounded half to even).
    let status = eventually("the queue's status", Duration::from_secs(60), || {
        let config = config.clone();
        async move {
            let text = kubectl(
                &config,
                &[
                    "get",
                    "queue",
                    "analytics",
                    "-o",
                    "jsonpath={.status.runningApplications} {.status.allocated.cpu} \
                     {.status.dominantShare} {.status.pendingApplications}",
                ],
            )
            .await;
            (text == "1 5 0.62 0").then_some(text)
        }
    })
    .await;
    assert_eq!(status, "1 5 0.62 0");
    let table = kubectl(&config, &["get", "queues"]).await;
    assert!(
        table.contains("CPU") && table.contains("SHARE") && table.contains("0.62"),
        "{table}"
    );

    // A second driver naming a queue that does not exist is refused by the webhook.
    let bad = Submission {
        name: "typo".to_owned(),
        conf: BTreeMap::from([(
            "spark.kubernetes.driver.label.sparkgang.io/queue".to_owned(),
            "analytcs".to_owned(),
        )]),
        ..s
    };
    let refused = spark::submit(&p.cluster.client, &bad, 8)
        .await
        .expect_err("the webhook refuses it")
        .to_string();
    assert!(
        refused.contains("names a queue that does not exist; the queues are: analytics"),
        "{refused}"
    );
}
