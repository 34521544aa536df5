//! The demo's side-by-side figures of one run, computed from its recorded history alone:
//! applications completed, drivers starved of executors, waits, makespan, and the CPU that
//! placed drivers held while they waited for their executors.

use std::collections::{BTreeMap, HashMap};

use crate::history::History;

/// What a person compares between two runs of the same workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub applications: usize,
    /// Drivers that succeeded by the end of the run.
    pub completed: usize,
    /// Drivers running at the end of the run with fewer executors running than their minimum:
    /// they hold a node and wait for executors that do not come.
    pub starved_drivers: usize,
    /// Mean seconds from submission until the application ran with its minimum of executors,
    /// over the applications that got there; `None` when none did.
    pub mean_wait_seconds: Option<f64>,
    /// Applications that never ran with their minimum of executors.
    pub never_started: usize,
    /// Seconds from the first submission to the last completion, when every application
    /// completed.
    pub makespan_seconds: Option<f64>,
    /// Seconds the run lasted (its last sample).
    pub run_seconds: f64,
    /// The most CPU (millicores) that running drivers held at once while they had fewer
    /// executors running than their minimum.
    pub peak_waiting_driver_cpu_milli: i64,
    /// The same, integrated over the run: millicore-seconds.
    pub waiting_driver_cpu_milli_seconds: f64,
    /// Allocatable CPU of the cluster (millicores).
    pub cluster_cpu_milli: i64,
}

impl Outcome {
    /// The figures of the run recorded in `history`.
    pub fn of(history: &History) -> Outcome {
        /// One application's timeline.
        #[derive(Default)]
        struct Timeline {
            running_with_executors_at: Option<f64>,
            completed_at: Option<f64>,
            starved_at_end: bool,
        }
        let drivers: HashMap<String, usize> = history
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("{}/{}", a.namespace, a.driver), i))
            .collect();
        let mut timelines: Vec<Timeline> =
            history.apps.iter().map(|_| Timeline::default()).collect();
        let mut peak = 0_i64;
        let mut integral = 0.0;
        let mut previous: Option<(f64, i64)> = None;
        history.replay(|state| {
            let mut running_executors: BTreeMap<&str, u32> = BTreeMap::new();
            for p in state.pods.values() {
                if p.role == "executor" && p.phase == "Running" && p.node.is_some() {
                    *running_executors.entry(p.app_id.as_str()).or_default() += 1;
                }
            }
            let mut waiting_cpu = 0_i64;
            for (key, p) in &state.pods {
                let Some(&i) = drivers.get(key) else {
                    continue;
                };
                let app = &history.apps[i];
                let t = &mut timelines[i];
                if p.phase == "Succeeded" && t.completed_at.is_none() {
                    t.completed_at = Some(state.at);
                }
                if p.node.is_none() || p.is_finished() {
                    continue;
                }
                let executors = running_executors
                    .get(app.app_id.as_str())
                    .copied()
                    .unwrap_or(0);
                if executors >= app.gang.min_executors {
                    t.running_with_executors_at.get_or_insert(state.at);
                } else {
                    waiting_cpu += p.requests.cpu_milli;
                }
            }
            if let Some((at, cpu)) = previous {
                integral += cpu as f64 * (state.at - at);
            }
            previous = Some((state.at, waiting_cpu));
            peak = peak.max(waiting_cpu);
        });
        let last = history.replay(|_| {});
        for (key, &i) in &drivers {
            let app = &history.apps[i];
            if let Some(p) = last.pods.get(key)
                && p.phase == "Running"
                && p.node.is_some()
            {
                let executors = last
                    .pods
                    .values()
                    .filter(|e| {
                        e.role == "executor"
                            && e.app_id == app.app_id
                            && e.phase == "Running"
                            && e.node.is_some()
                    })
                    .count();
                timelines[i].starved_at_end = executors < app.gang.min_executors as usize;
            }
        }
        let waits: Vec<f64> = history
            .apps
            .iter()
            .zip(&timelines)
            .filter_map(|(a, t)| t.running_with_executors_at.map(|at| at - a.submitted_at))
            .collect();
        let completed = timelines
            .iter()
            .filter(|t| t.completed_at.is_some())
            .count();
        let first_submission = history
            .apps
            .iter()
            .map(|a| a.submitted_at)
            .min_by(f64::total_cmp);
        let last_completion = timelines
            .iter()
            .filter_map(|t| t.completed_at)
            .max_by(f64::total_cmp);
        let makespan = match (first_submission, last_completion) {
            (Some(first), Some(last)) if completed == history.apps.len() => Some(last - first),
            _ => None,
        };
        Outcome {
            applications: history.apps.len(),
            completed,
            starved_drivers: timelines.iter().filter(|t| t.starved_at_end).count(),
            mean_wait_seconds: (!waits.is_empty())
                .then(|| waits.iter().sum::<f64>() / waits.len() as f64),
            never_started: history.apps.len() - waits.len(),
            makespan_seconds: makespan,
            run_seconds: history.end(),
            peak_waiting_driver_cpu_milli: peak,
            waiting_driver_cpu_milli_seconds: integral,
            cluster_cpu_milli: history.nodes.iter().map(|n| n.allocatable.cpu_milli).sum(),
        }
    }
}

/// The side-by-side table of two outcomes, one line a figure, with what each line means.
pub fn side_by_side(left: (&str, &Outcome), right: (&str, &Outcome)) -> String {
    let rows: Vec<(&str, String, String, &str)> = vec![
        (
            "applications completed",
            format!("{}/{}", left.1.completed, left.1.applications),
            format!("{}/{}", right.1.completed, right.1.applications),
            "more is better",
        ),
        (
            "drivers starved at the end",
            left.1.starved_drivers.to_string(),
            right.1.starved_drivers.to_string(),
            "running, fewer executors than they need",
        ),
        (
            "mean wait for executors",
            wait(left.1),
            wait(right.1),
            "submission → running with its executors",
        ),
        (
            "makespan",
            makespan(left.1),
            makespan(right.1),
            "first submission → last completion",
        ),
        (
            "cpu held by waiting drivers",
            held_over_run(left.1),
            held_over_run(right.1),
            "core-seconds drivers held without executors",
        ),
        (
            "  … at the peak",
            held(left.1),
            held(right.1),
            "cores, % of the cluster",
        ),
    ];
    let mut out = format!(
        "{:<28} {:>16} {:>16}   {}\n",
        "", left.0, right.0, "what it means"
    );
    for (name, l, r, meaning) in rows {
        out.push_str(&format!("{name:<28} {l:>16} {r:>16}   {meaning}\n"));
    }
    out
}

fn wait(o: &Outcome) -> String {
    match (o.mean_wait_seconds, o.never_started) {
        (Some(w), 0) => format!("{w:.1}s"),
        (Some(w), n) => format!("{w:.1}s, {n} never"),
        (None, _) => "never".to_owned(),
    }
}

fn makespan(o: &Outcome) -> String {
    o.makespan_seconds.map_or_else(
        || format!("> {:.0}s (stopped)", o.run_seconds),
        |m| format!("{m:.1}s"),
    )
}

fn held(o: &Outcome) -> String {
    let cores = o.peak_waiting_driver_cpu_milli as f64 / 1000.0;
    if o.cluster_cpu_milli > 0 {
        format!(
            "{cores:.1} cores ({:.0}%)",
            100.0 * o.peak_waiting_driver_cpu_milli as f64 / o.cluster_cpu_milli as f64
        )
    } else {
        format!("{cores:.1} cores")
    }
}

fn held_over_run(o: &Outcome) -> String {
    format!("{:.0} core-s", o.waiting_driver_cpu_milli_seconds / 1000.0)
}

#[cfg(test)]
mod tests {
    use sparkgang_common::resources::Resources;

    use super::*;
    use crate::history::{AppRecord, Change, GangRecord, NodeRecord, PodRecord};

    fn cpu(milli: i64) -> Resources {
        Resources {
            cpu_milli: milli,
            ..Resources::default()
        }
    }

    fn pod(name: &str, role: &str, app: &str, node: Option<&str>, phase: &str) -> PodRecord {
        PodRecord {
            namespace: "spark".into(),
            name: name.into(),
            role: role.into(),
            app_id: app.into(),
            node: node.map(str::to_owned),
            phase: phase.into(),
            requests: cpu(if role == "driver" { 2000 } else { 1000 }),
            priority: 0,
        }
    }

    fn app(name: &str, submitted_at: f64) -> AppRecord {
        AppRecord {
            queue: None,
            name: name.into(),
            namespace: "spark".into(),
            driver: format!("{name}-driver"),
            app_id: name.into(),
            submitted_at,
            rejected: false,
            gang: GangRecord {
                min_executors: 2,
                ..GangRecord::default()
            },
        }
    }

    /// Two applications on a 10-core node. `a` (submitted at 0) gets its driver placed at 1,
    /// both executors running at 3, completes at 5. `b` (submitted at 1) gets its driver placed
    /// at 2 and one executor at 3, and never a second one.
    fn history() -> History {
        let at = |t: f64, pods: Vec<PodRecord>| Change {
            at: t,
            pods,
            ..Change::default()
        };
        History {
            nodes: vec![NodeRecord {
                name: "n1".into(),
                allocatable: cpu(10_000),
                ..NodeRecord::default()
            }],
            apps: vec![app("a", 0.0), app("b", 1.0)],
            changes: vec![
                at(0.0, vec![pod("a-driver", "driver", "a", None, "Pending")]),
                at(
                    1.0,
                    vec![
                        pod("a-driver", "driver", "a", Some("n1"), "Running"),
                        pod("b-driver", "driver", "b", None, "Pending"),
                    ],
                ),
                at(
                    2.0,
                    vec![pod("b-driver", "driver", "b", Some("n1"), "Running")],
                ),
                at(
                    3.0,
                    vec![
                        pod("a-1", "executor", "a", Some("n1"), "Running"),
                        pod("a-2", "executor", "a", Some("n1"), "Running"),
                        pod("b-1", "executor", "b", Some("n1"), "Running"),
                    ],
                ),
                at(
                    5.0,
                    vec![pod("a-driver", "driver", "a", Some("n1"), "Succeeded")],
                ),
                at(8.0, vec![]),
            ],
            ..History::default()
        }
    }

    #[test]
    fn figures_of_a_hand_made_history() {
        let o = Outcome::of(&history());
        assert_eq!(o.applications, 2);
        assert_eq!(o.completed, 1);
        assert_eq!(
            o.starved_drivers, 1,
            "b runs with 1 of 2 executors at the end"
        );
        // Only a ran with its executors: 3 s after its submission.
        assert_eq!(o.mean_wait_seconds, Some(3.0));
        assert_eq!(o.never_started, 1);
        assert_eq!(o.makespan_seconds, None, "b never completed");
        assert_eq!(o.run_seconds, 8.0);
        // From 2 to 3 both drivers wait (4 cores); b waits alone from 3 to the end.
        assert_eq!(o.peak_waiting_driver_cpu_milli, 4000);
        // 1→2: a (2 cores); 2→3: a and b (4); 3→5 and 5→8: b (2): 2 + 4 + 4 + 6 = 16 core-s.
        assert_eq!(o.waiting_driver_cpu_milli_seconds, 16_000.0);
        assert_eq!(o.cluster_cpu_milli, 10_000);
    }

    #[test]
    fn makespan_when_every_application_completed() {
        let mut h = history();
        h.changes.push(Change {
            at: 9.5,
            pods: vec![pod("b-driver", "driver", "b", Some("n1"), "Succeeded")],
            ..Change::default()
        });
        let o = Outcome::of(&h);
        assert_eq!(o.completed, 2);
        assert_eq!(o.starved_drivers, 0);
        assert_eq!(o.makespan_seconds, Some(9.5));
    }

    #[test]
    fn side_by_side_shows_each_figure_of_both_runs() {
        let with = Outcome::of(&history());
        let without = Outcome::of(&History {
            nodes: history().nodes,
            ..History::default()
        });
        let table = side_by_side(("sparkgang", &with), ("default", &without));
        assert!(table.contains("1/2"), "{table}");
        assert!(table.contains("4.0 cores (40%)"), "{table}");
        assert!(table.contains("3.0s, 1 never"), "{table}");
        assert!(table.contains("> 8s (stopped)"), "{table}");
        assert!(table.contains("16 core-s"), "{table}");
        assert!(table.contains("0 core-s"), "{table}");
        assert_eq!(table.lines().count(), 7);
    }
}
