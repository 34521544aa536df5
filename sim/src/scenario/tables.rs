//! What `sparkgang-sim demo`, `run` and `judge` print: one row an application, a legend that
//! says what each column means, and the run's verdict lines.

use super::Report;

/// Under each run's table: what its columns and its last lines mean.
pub const LEGEND: &str = concat!(
    "  state      completed: the driver succeeded · running: the driver holds a node when the\n",
    "             run stopped · pending: never placed · rejected: the API refused the driver\n",
    "  wait       submission → driver placed on a node (sparkgang places a driver only once its\n",
    "             executors fit too)\n",
    "  executors  executors placed / the application's minimum; `running` with 0/4 is a driver\n",
    "             holding a node while waiting for executors that cannot fit: starved\n",
    "  completed  seconds from the start of the run when the driver succeeded\n",
    "  peak cpu held: the most CPU that pods and reservations held at once; high is good only\n",
    "             when the holders run, not when drivers wait (see the side-by-side summary)",
);

/// The table of a run: one row an application, then the peak CPU held, the extender's filter
/// figures, and every broken invariant and expectation.
pub fn run_table(r: &Report) -> String {
    let mut out = format!(
        "{:<12} {:<10} {:>8} {:>10} {:>10} {:<12}\n",
        "app", "state", "wait", "executors", "completed", "driver node"
    );
    for a in &r.apps {
        let wait = a
            .driver_scheduled_at
            .map_or("-".to_owned(), |t| format!("{:.1}s", t - a.submitted_at));
        let placed = a.executors.iter().filter(|e| e.node.is_some()).count();
        let done = a
            .completed_at
            .map_or("-".to_owned(), |t| format!("{t:.1}s"));
        out.push_str(&format!(
            "{:<12} {:<10} {:>8} {:>10} {:>10} {:<12}\n",
            a.name,
            a.final_state,
            wait,
            format!("{placed}/{}", a.min_executors.max(placed as u32)),
            done,
            a.driver_node.as_deref().unwrap_or("-")
        ));
    }
    let (cpu, alloc): (i64, i64) = r.nodes.iter().fold((0, 0), |(c, a), n| {
        (c + n.peak_cpu_milli, a + n.allocatable_cpu_milli)
    });
    if alloc > 0 {
        out.push_str(&format!(
            "peak cpu held (pods + reservations): {:.0}% of the cluster\n",
            100.0 * cpu as f64 / alloc as f64
        ));
    }
    for q in &r.queues {
        out.push_str(&format!(
            "queue {:<10} (weight {}): held {:.1}% of what the group's queues held, {:.1}% of \
             the group; dominant share {:.2} (time averages; peak {} cores)\n",
            q.name,
            q.weight,
            100.0 * q.time_averaged_share_of_allocated,
            100.0 * q.time_averaged_group_share,
            q.time_averaged_dominant_share,
            q.timeline.iter().map(|s| s.cpu_milli).max().unwrap_or(0) as f64 / 1000.0
        ));
    }
    if let Some(f) = &r.filter {
        out.push_str(&format!(
            "extender: {} filter calls ({:.1}/s over the run), mean {:.2} ms, p50 <= {} ms, p99 <= {} ms\n",
            f.calls, f.calls_per_second, f.mean_ms, f.p50_at_most_ms, f.p99_at_most_ms
        ));
    }
    for v in &r.violations {
        out.push_str(&format!("VIOLATION: {v}\n"));
    }
    for f in &r.expectation_failures {
        out.push_str(&format!("EXPECTATION FAILED: {f}\n"));
    }
    out
}

/// The demo's last lines: what to try after it.
pub const WHERE_NEXT: &str = "\
Where to go next
  sparkgang-sim run sim/scenarios/fifo-blocks-younger.yaml     one scenario; every file in
      sim/scenarios/ is one (format: docs/scenarios.md); add --default-scheduler to compare
  sparkgang-sim run FILE --report report.json --history history.json
  sparkgang-sim judge history.json       print and judge a recorded run again, without running it
  sparkgang-sim up                       the playground: a simulated cluster that stays up, to spark-submit to
  README.md, \"Install on a cluster\"      the same servers on kind, k3d or a managed cluster
(from a clone: `cargo run -p sparkgang-sim -- run …`, `-- judge …`, `-- up`)";
