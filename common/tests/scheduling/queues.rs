//! Queues on the pure core (`docs/queues.md`): a queue's max, borrowing within a cohort, the
//! fair order of a group's queues, executors above the minimum, reclaim, and a queue that
//! does not exist. Four 8-cpu nodes (32 cpu); gangs of 1-cpu drivers and 1-cpu executors.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use sparkgang_common::api::queue::{QUEUE_LABEL, Queue, QueueSpec};
use sparkgang_common::binpack::BinpackAlgorithm;
use sparkgang_common::cluster::{
    Effect, FifoPolicy, FilterOutcome, PodKey, PreemptionPolicy, SchedulerConfig,
};
use sparkgang_common::{GangDemand, Resources};

use super::harness::*;

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
    NODES
        .iter()
        .enumerate()
        .map(|(i, n)| node_with(n, &format!("z{}", i % 2), "8", "64Gi", "0"))
        .collect()
}

fn cluster() -> Cluster {
    Cluster::new(BinpackAlgorithm::TightlyPack, &nodes())
}

/// The same nodes, preemption on, FIFO on or off.
fn preempting_cluster(fifo: bool) -> Cluster {
    Cluster::with_config(
        SchedulerConfig {
            preemption: PreemptionPolicy {
                enabled: true,
                ..PreemptionPolicy::default()
            },
            fifo: FifoPolicy {
                enabled: fifo,
                ..FifoPolicy::default()
            },
            ..SchedulerConfig::default()
        },
        &nodes(),
    )
}

/// A queue of the nodes' instance group, with `guaranteed` and `max` cpu (cores; 0: none).
fn queue(name: &str, guaranteed: u32, max: u32, weight: u32, parent: Option<&str>) -> Queue {
    let cpu = |c: u32| -> BTreeMap<String, String> {
        if c == 0 {
            BTreeMap::new()
        } else {
            [("cpu".to_owned(), c.to_string())].into()
        }
    };
    Queue::new(
        name,
        QueueSpec {
            instance_group: GROUP.to_owned(),
            guaranteed: cpu(guaranteed),
            max: cpu(max),
            weight,
            parent: parent.map(str::to_owned),
            namespaces: Vec::new(),
        },
    )
}

/// An application of queue `q` (its driver labelled as spark-submit would label it): a
/// 1-cpu driver and `min`..=`max` executors of 1 cpu.
fn queued_app(id: &str, q: &str, min: u32, max: u32) -> App {
    let mut a = app(
        id,
        GangDemand {
            driver: Resources::new(1000, 1 << 30, 0),
            executor: Resources::new(1000, 1 << 30, 0),
            min_executors: min,
            max_executors: max,
        },
        max as usize,
    );
    a.driver
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(QUEUE_LABEL.to_owned(), q.to_owned());
    a
}

/// Places the driver and its minimum executors.
fn run(c: &mut Cluster, a: &mut App, min: usize) {
    c.place(&mut a.driver, &NODES);
    for e in a.executors.iter_mut().take(min) {
        c.place(e, &NODES);
    }
}

/// What queues hold, kept incrementally, equals a recount from scratch (changing a Queue
/// recounts every application; changing it back restores it).
fn assert_usage_recounts(c: &mut Cluster, q: &Queue) {
    let kept = c.state.queue_usage();
    let mut changed = q.clone();
    changed.spec.weight += 1;
    c.state.apply_queue(&changed);
    c.state.apply_queue(q);
    assert_eq!(*kept, *c.state.queue_usage());
}

fn with_priority(p: &mut Pod, priority: i32) {
    p.spec.get_or_insert_with(Default::default).priority = Some(priority);
}

#[test]
fn a_queue_at_its_max_holds_its_next_gang_without_asking_for_nodes() {
    let mut c = cluster();
    c.state.apply_queue(&queue("etl", 0, 6, 1, None));
    let mut a = queued_app("a", "etl", 3, 3);
    run(&mut c, &mut a, 3);
    let mut b = queued_app("b", "etl", 3, 3);
    let d = c.expect(&mut b.driver, &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message
            .starts_with("queue etl is at its max: cpu 4/6 (asks 4)"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("1 of 1 waiting in queue etl"),
        "{}",
        d.message
    );
    // Held by its queue, not by capacity: no Demand for the autoscaler.
    assert!(
        d.effects
            .contains(&Effect::DeleteDemand(PodKey::new(NS, name(&b.driver))))
    );
    assert!(
        !d.effects
            .iter()
            .any(|e| matches!(e, Effect::EnsureDemand(_)))
    );

    assert_usage_recounts(&mut c, &queue("etl", 0, 6, 1, None));
    c.terminate(&mut a.driver);
    assert_usage_recounts(&mut c, &queue("etl", 0, 6, 1, None));
    c.place(&mut b.driver, &NODES);
    assert_usage_recounts(&mut c, &queue("etl", 0, 6, 1, None));
}

#[test]
fn a_gang_over_its_queues_max_never_fits_and_holds_back_nobody() {
    let mut c = cluster();
    c.state.apply_queue(&queue("etl", 0, 6, 1, None));
    let mut big = queued_app("big", "etl", 7, 7);
    let d = c.expect(&mut big.driver, &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message
            .starts_with("queue etl can never hold the gang: cpu 0/6 (asks 8)"),
        "{}",
        d.message
    );
    // Younger, smaller, same queue: not held back by the gang that can never be placed.
    let mut small = queued_app("small", "etl", 2, 2);
    created_at(&mut small.driver, "2026-01-01T00:00:30Z");
    c.place(&mut small.driver, &NODES);
}

#[test]
fn a_queue_borrows_its_cohorts_unused_guarantee_and_no_more() {
    let mut c = cluster();
    c.state.apply_queue(&queue("etl", 8, 0, 1, Some("org")));
    c.state.apply_queue(&queue("ml", 8, 0, 1, Some("org")));
    // 8 within etl's guarantee, then 8 more lent by ml, which uses none of its 8.
    let mut a = queued_app("a", "etl", 7, 7);
    run(&mut c, &mut a, 7);
    let mut b = queued_app("b", "etl", 7, 7);
    run(&mut c, &mut b, 7);
    let mut third = queued_app("c", "etl", 7, 7);
    let d = c.expect(&mut third.driver, &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message.starts_with(
            "queue etl is over its guarantee and the queues of org have no unused guarantee to \
             lend: cpu 16/16 (asks 8)"
        ),
        "{}",
        d.message
    );
    let usage = c.state.queue_usage();
    assert_eq!(usage["etl"].allocated.cpu_milli, 16_000);
    assert_eq!(usage["etl"].running, 2);
}

#[test]
fn the_queue_with_the_lower_share_goes_first() {
    let mut c = cluster();
    // No parent, each guaranteed the whole group: capacity alone limits them.
    c.state.apply_queue(&queue("a", 32, 0, 1, None));
    c.state.apply_queue(&queue("b", 32, 0, 1, None));
    // a holds 16 cpu (share 0.5), b 8 (share 0.25): 8 cpu are free.
    for i in 0..2 {
        let mut x = queued_app(&format!("a{i}"), "a", 7, 7);
        run(&mut c, &mut x, 7);
    }
    let mut b0 = queued_app("b0", "b", 7, 7);
    run(&mut c, &mut b0, 7);
    // b's next gang (16 cpu) does not fit; a's (4 cpu) would, but b goes first.
    let mut b1 = queued_app("b1", "b", 15, 15);
    created_at(&mut b1.driver, "2026-01-01T00:00:10Z");
    c.expect(&mut b1.driver, &NODES, FilterOutcome::FailureFit);
    let mut a2 = queued_app("a2", "a", 3, 3);
    created_at(&mut a2.driver, "2026-01-01T00:00:05Z");
    let d = c.expect(&mut a2.driver, &NODES, FilterOutcome::FailureEarlierDriver);
    assert!(
        d.message.starts_with(
            "queue b (share 0.25) goes before queue a (share 0.50) in the fair order of \
             instance group batch-medium-priority: waiting for the older application b1"
        ),
        "{}",
        d.message
    );
    // Once b's gang is smaller than the free room, both go: b's first in the simulation.
    c.state.delete_pod(&PodKey::new(NS, name(&b1.driver)));
    c.place(&mut a2.driver, &NODES);
    c.assert_no_overcommit();
}

#[test]
fn an_executor_above_the_minimum_waits_while_its_queue_is_at_max() {
    let mut c = cluster();
    c.state.apply_queue(&queue("etl", 0, 4, 1, None));
    let mut a = queued_app("a", "etl", 1, 4);
    run(&mut c, &mut a, 1);
    // Driver + 1 executor = 2 of 4: two more executors fit the queue, the third does not.
    c.expect(
        &mut a.executors[1],
        &NODES,
        FilterOutcome::SuccessExtraExecutor,
    );
    c.expect(
        &mut a.executors[2],
        &NODES,
        FilterOutcome::SuccessExtraExecutor,
    );
    let d = c.expect(&mut a.executors[3], &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message
            .contains("an executor above the minimum waits: queue etl is at its max: cpu 4/4"),
        "{}",
        d.message
    );
    assert_eq!(c.state.queue_usage()["etl"].extra.cpu_milli, 2000);
    assert_usage_recounts(&mut c, &queue("etl", 0, 4, 1, None));
    // Executors that finish give their room back to the queue.
    c.terminate(&mut a.executors[1]);
    assert_eq!(c.state.queue_usage()["etl"].extra.cpu_milli, 1000);
    assert_usage_recounts(&mut c, &queue("etl", 0, 4, 1, None));
}

#[test]
fn a_label_naming_no_queue_is_answered_with_the_queues_there_are() {
    let mut c = cluster();
    c.state.apply_queue(&queue("etl", 0, 0, 1, None));
    c.state.apply_queue(&queue("ml", 0, 0, 1, None));
    let mut a = queued_app("a", "nope", 1, 1);
    let d = c.expect(&mut a.driver, &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message
            .starts_with("queue \"nope\" does not exist; the queues are: etl, ml"),
        "{}",
        d.message
    );
    // Created afterwards, it is used at once.
    c.state.apply_queue(&queue("nope", 0, 0, 1, None));
    c.place(&mut a.driver, &NODES);
}

#[test]
fn reclaim_takes_back_what_another_queue_borrowed_and_only_that() {
    let mut c = preempting_cluster(true);
    c.state.apply_queue(&queue("etl", 16, 0, 1, Some("org")));
    c.state.apply_queue(&queue("ml", 16, 0, 1, Some("org")));
    // ml is idle: etl fills the group, 16 of it borrowed. Same priority everywhere.
    let mut etl: Vec<App> = (0..4)
        .map(|i| {
            let mut a = queued_app(&format!("etl{i}"), "etl", 7, 7);
            created_at(&mut a.driver, &format!("2026-01-01T00:00:0{i}Z"));
            a
        })
        .collect();
    for a in &mut etl {
        run(&mut c, a, 7);
        c.advance(Duration::from_secs(1));
    }
    // etl's own next gang of the same priority waits: its cohort lends no more, and its
    // own gangs go only for a higher priority.
    let mut etl_more = queued_app("etl-more", "etl", 7, 7);
    let d = c.expect(&mut etl_more.driver, &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message.contains("no unused guarantee to lend"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("preemption cannot make room"),
        "{}",
        d.message
    );
    c.state.delete_pod(&PodKey::new(NS, name(&etl_more.driver)));

    // ml's gang is within its guarantee: it takes back the most recent borrowed gang.
    let mut ml = queued_app("ml0", "ml", 7, 7);
    let d = c.expect(&mut ml.driver, &NODES, FilterOutcome::FailurePreempting);
    assert!(d.message.contains("etl3"), "{}", d.message);
    assert!(
        !d.message.contains("etl0") && !d.message.contains("etl1"),
        "{}",
        d.message
    );
}

#[test]
fn within_a_queue_only_priority_preempts() {
    let mut c = preempting_cluster(false);
    c.state.apply_queue(&queue("etl", 32, 0, 1, None));
    let mut low: Vec<App> = (0..4)
        .map(|i| queued_app(&format!("low{i}"), "etl", 7, 7))
        .collect();
    for a in &mut low {
        run(&mut c, a, 7);
    }
    // The queue is at its guarantee (and has no parent): a gang of equal priority waits.
    let mut same = queued_app("same", "etl", 7, 7);
    let d = c.expect(&mut same.driver, &NODES, FilterOutcome::FailureQueue);
    assert!(
        d.message.contains("preemption cannot make room"),
        "{}",
        d.message
    );
    // A higher-priority one preempts one of its queue's own gangs, which frees both the
    // queue's room and the nodes'.
    let mut high = queued_app("high", "etl", 7, 7);
    with_priority(&mut high.driver, 100);
    let d = c.expect(&mut high.driver, &NODES, FilterOutcome::FailurePreempting);
    assert_eq!(
        d.message.matches("the gang of driver").count(),
        1,
        "{}",
        d.message
    );
}
