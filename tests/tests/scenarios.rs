//! Every scenario under `sim/scenarios/` runs with the real webhook and extender: its
//! expectations and the invariants (`sparkgang_sim::oracle`) must hold, in real time and on
//! the virtual clock, and both clocks must end with every application in the same state (the
//! agreement test of docs/virtual-time.md).

use sparkgang_sim::scenario::Mode;
use sparkgang_tests::scenarios::{assert_same_final_states, load, run, run_and_check, run_virtual};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo() {
    run_and_check("demo.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_blocks_younger() {
    run_and_check("fifo-blocks-younger.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_skips_an_app_that_can_never_fit() {
    run_and_check("fifo-impossible-app.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_allocation() {
    run_and_check("dynamic-allocation.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_replacement() {
    run_and_check("executor-replacement.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_and_instance_groups() {
    run_and_check("gpu-and-instance-groups.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_scheduler_alone_starves_the_demo() {
    let mut s = load("demo.yaml");
    s.timeout = Some("20s".into());
    let report = run(&s, Mode::DefaultScheduler).await;
    let virtual_run = run_virtual(&s, Mode::DefaultScheduler);
    for r in [&report, &virtual_run] {
        let starved = r
            .apps
            .iter()
            .filter(|a| {
                a.final_state == "running" && a.peak_running_executors < a.min_executors as usize
            })
            .count();
        assert!(
            starved > 0,
            "expected drivers starved of executors without sparkgang ({} clock)",
            r.clock
        );
    }
    assert_same_final_states(&report, &virtual_run);
}

/// 1,000 applications in real time need an optimised build: a debug build of the whole
/// simulated cluster cannot keep up with 16 submissions a second on 2 cores, and the gangs it
/// is too slow to serve would be reported as starved. `scripts/test.sh` runs this one with
/// `--release`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    debug_assertions,
    ignore = "real time at scale: run with --release (scripts/test.sh does)"
)]
async fn scale_1000_apps_on_500_nodes() {
    run_and_check("scale-1000-apps.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_enforce_after_age() {
    run_and_check("fifo-enforce-after-age.yaml").await;
}

/// Priorities and preemption in dry run: the urgent gang hears which gang would be evicted, and
/// nothing is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_dry_run() {
    run_and_check("preemption-dry-run.yaml").await;
}

/// Gang-safe preemption: the most recently started lower-priority gang is evicted whole, its
/// room held for the urgent gang; an equal-priority arrival never preempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_youngest_victim() {
    for r in run_and_check("preemption-youngest-victim.yaml").await {
        let app = |name: &str| {
            r.history
                .apps
                .iter()
                .find(|a| a.name == name)
                .unwrap_or_else(|| panic!("{name} was submitted"))
        };
        let (urgent, low_b) = (app("urgent"), app("low-b"));
        let [p] = r.preemptions.as_slice() else {
            panic!(
                "one preemption expected ({} clock): {:?}",
                r.clock, r.preemptions
            );
        };
        assert_eq!(p.preemptor, format!("spark/{}", urgent.driver));
        assert!(
            (4.0..9.0).contains(&p.at),
            "urgent arrives at 4 s and preempts at once, not at {}",
            p.at
        );
        // low-b's gang only: its driver, and whichever of its executors existed by then (in
        // real time they may still be on their way when urgent arrives).
        let driver = format!("spark/{}", low_b.driver);
        assert!(p.victims.contains(&driver), "{:?}", p.victims);
        assert!(
            p.victims.iter().all(|v| v.starts_with("spark/low-b-")),
            "{:?}",
            p.victims
        );
        // Spark's sizing, recomputed here: a driver of 1 core and executors of 3, each with
        // 1g of heap plus the 384 MiB minimum overhead.
        let executors = p.victims.len() as i64 - 1;
        assert!((0..=2).contains(&executors), "{:?}", p.victims);
        if r.clock == "virtual" {
            assert_eq!(executors, 2, "on the virtual clock low-b runs both by 4 s");
        }
        let mib = 1024 * 1024;
        assert_eq!(p.reclaimed.cpu_milli, 1000 + executors * 3000);
        assert_eq!(
            p.reclaimed.memory_bytes,
            (1 + executors) * (1024 + 384) * mib
        );
        // Only the drivers carry the class label: executors inherit the class through the
        // webhook, as the API server resolved it (1000 for high, 10 for low).
        for (app, priority) in [(urgent, 1000), (app("low-a"), 10)] {
            let executors: Vec<i32> = r
                .history
                .changes
                .iter()
                .flat_map(|c| &c.pods)
                .filter(|pod| pod.app_id == app.app_id && pod.role == "executor")
                .map(|pod| pod.priority)
                .collect();
            assert!(!executors.is_empty(), "{} ran executors", app.name);
            assert!(
                executors.iter().all(|&p| p == priority),
                "{} executors' priorities {executors:?}, want {priority} ({} clock)",
                app.name,
                r.clock
            );
        }
    }
}

/// Preemption leaves out a gang whose PodDisruptionBudget allows no disruption: the older
/// low-priority gang is evicted instead, and the protected one completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_disruption_budget() {
    for r in run_and_check("preemption-disruption-budget.yaml").await {
        let low_b = r
            .history
            .apps
            .iter()
            .find(|a| a.name == "low-b")
            .map(|a| format!("spark/{}", a.driver));
        assert!(
            r.preemptions
                .iter()
                .all(|p| p.victims.iter().all(|v| Some(v) != low_b.as_ref())),
            "the protected driver was marked for preemption ({} clock): {:?}",
            r.clock,
            r.preemptions
        );
    }
}

/// Preemption while victims take 4 s to stop: the room is held, the urgent gang binds once they
/// are gone, and no node runs more than it has at any instant (terminating pods count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_graceful_termination() {
    for r in run_and_check("preemption-graceful-termination.yaml").await {
        let [p] = r.preemptions.as_slice() else {
            panic!("one preemption ({} clock): {:?}", r.clock, r.preemptions);
        };
        let urgent = r
            .apps
            .iter()
            .find(|a| a.name == "urgent")
            .and_then(|a| a.driver_scheduled_at)
            .expect("urgent was placed");
        // Its driver binds only once the victims stopped, 4 s after they were marked.
        assert!(
            urgent >= p.at + 4.0,
            "urgent bound at {urgent} s, victims marked at {} s and stopping for 4 s ({} clock)",
            p.at,
            r.clock
        );
    }
}

/// Preemption takes executors above a lower-priority application's minimum before any gang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_soft_first() {
    run_and_check("preemption-soft-first.yaml").await;
}

// The API server misbehaving towards the extender (`faults:` in the scenario): the extender
// stops deciding while it cannot trust its caches or its lease, recovers on its own, and
// the invariants still hold: nothing double-booked, every gang served, every reservation
// released.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_hang() {
    run_and_check("fault-api-hang.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_5xx() {
    run_and_check("fault-api-5xx.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_409() {
    run_and_check("fault-api-409.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_drop_watches() {
    run_and_check("fault-drop-watches.yaml").await;
}

/// The agreement test covers every scenario: each file under `sim/scenarios/` has a test above.
#[test]
fn every_scenario_file_has_a_test() {
    // The queue scenarios have their own suite (queues.rs).
    let this = [include_str!("scenarios.rs"), include_str!("queues.rs")].concat();
    let dir = sparkgang_tests::repo_root().join("sim/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !this.contains(&format!("\"{f}\"")))
        .collect();
    assert!(!files.is_empty(), "no scenarios under {}", dir.display());
    assert!(missing.is_empty(), "scenarios without a test: {missing:?}");
}
