//! `preemption_rules`: every pod evicted for preemption was of lower priority than the driver it
//! was evicted for, and an application loses either its whole gang or only executors above its
//! minimum.
//!
//! Priorities are the pods' `spec.priority` as the API server resolved them (an application's
//! is its driver's); the preemptor is the driver named in the victim's `DisruptionTarget`
//! message. A gang whose driver was evicted must have nothing left running at the end of the
//! run (no half-owned gang); an application whose driver was not evicted must keep at least its
//! minimum executors running when its evicted executors went.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, PodRecord};

use super::Violation;

const INVARIANT: &str = "preemption_rules";

/// See the module documentation.
pub fn preemption_rules(history: &History) -> Vec<Violation> {
    if history.preempted.is_empty() {
        return Vec::new();
    }
    // Every pod as last seen, and when it was last seen (the last state holding it).
    let mut seen: BTreeMap<String, (f64, PodRecord)> = BTreeMap::new();
    // Per application: the most executors seen running at once while any of its evicted
    // executors was still there.
    let evicted: BTreeSet<&str> = history.preempted.iter().map(|p| p.pod.as_str()).collect();
    let mut running_before: BTreeMap<String, usize> = BTreeMap::new();
    let last = history.replay(|state| {
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        let mut victim_present: BTreeSet<&str> = BTreeSet::new();
        for (key, p) in &state.pods {
            seen.insert(key.clone(), (state.at, p.clone()));
            if p.role == "executor" && p.phase == "Running" && p.node.is_some() {
                *running.entry(p.app_id.as_str()).or_default() += 1;
            }
            if evicted.contains(key.as_str()) {
                victim_present.insert(p.app_id.as_str());
            }
        }
        for app in victim_present {
            let n = running.get(app).copied().unwrap_or(0);
            let best = running_before.entry(app.to_owned()).or_default();
            *best = (*best).max(n);
        }
    });
    let end = last.at;
    let driver_of: BTreeMap<&str, &PodRecord> = seen
        .values()
        .filter(|(_, p)| p.role == "driver")
        .map(|(_, p)| (p.app_id.as_str(), p))
        .collect();
    let mut out = Vec::new();
    let mut victims_by_app: BTreeMap<&str, Vec<&PodRecord>> = BTreeMap::new();
    for pre in &history.preempted {
        let Some((at, victim)) = seen.get(&pre.pod) else {
            continue;
        };
        let victim_priority = driver_of
            .get(victim.app_id.as_str())
            .map_or(victim.priority, |d| d.priority);
        match seen.get(&pre.by) {
            None => out.push(Violation {
                invariant: INVARIANT,
                at: *at,
                message: format!(
                    "{} was evicted for preemption, but its preemptor {:?} is not a pod of the run",
                    pre.pod, pre.by
                ),
            }),
            Some((_, by)) if by.priority <= victim_priority => out.push(Violation {
                invariant: INVARIANT,
                at: *at,
                message: format!(
                    "{} (application priority {victim_priority}) was evicted for {} of priority {}: \
                     a victim must have a lower priority",
                    pre.pod, pre.by, by.priority
                ),
            }),
            Some(_) => {}
        }
        victims_by_app
            .entry(victim.app_id.as_str())
            .or_default()
            .push(victim);
    }
    for (app, victims) in victims_by_app {
        let driver_evicted = victims.iter().any(|v| v.role == "driver");
        if driver_evicted {
            // The whole gang goes: nothing of it may still run at the end.
            for (key, p) in &last.pods {
                if p.app_id == app && !p.is_finished() {
                    out.push(Violation {
                        invariant: INVARIANT,
                        at: end,
                        message: format!(
                            "the driver of application {app} was evicted for preemption, but \
                             {key} still runs: a gang is preempted whole"
                        ),
                    });
                }
            }
        } else {
            let min = history
                .apps
                .iter()
                .find(|a| a.app_id == app)
                .map_or(0, |a| a.gang.min_executors as usize);
            let had = running_before.get(app).copied().unwrap_or(0);
            if had.saturating_sub(victims.len()) < min {
                out.push(Violation {
                    invariant: INVARIANT,
                    at: end,
                    message: format!(
                        "{} executors of application {app} were evicted while {had} ran: that \
                         leaves fewer than its minimum of {min} (only executors above the \
                         minimum may be preempted without the whole gang)",
                        victims.len()
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Preempted;
    use crate::oracle::build::{app, at, driver, executor, history, node};

    fn with_priority(mut p: PodRecord, priority: i32) -> PodRecord {
        p.priority = priority;
        p
    }

    fn preempted(pod: &PodRecord, by: &PodRecord) -> Preempted {
        Preempted {
            pod: pod.key(),
            by: by.key(),
            at: 1.0,
            requests: pod.requests,
        }
    }

    /// low (priority 10) runs with two executors, urgent (1000) is pending; the scripted
    /// `after` pods are what is left once the evictions `victims` happened.
    fn run(
        low_priority: i32,
        victims: &[&str],
        after: impl Fn(&PodRecord, &[PodRecord]) -> Vec<PodRecord>,
    ) -> Vec<Violation> {
        let low = app("low", 0.0, 1, 2);
        let urgent = app("urgent", 5.0, 1, 2);
        let low_driver = with_priority(driver(&low, Some("n-0"), "Running"), low_priority);
        let low_executors: Vec<PodRecord> = (1..=2)
            .map(|i| with_priority(executor(&low, i, Some("n-0"), "Running"), low_priority))
            .collect();
        let urgent_pending = with_priority(driver(&urgent, None, "Pending"), 1000);
        let mut before = vec![low_driver.clone(), urgent_pending.clone()];
        before.extend(low_executors.iter().cloned());
        let mut later = after(&low_driver, &low_executors);
        later.push(with_priority(driver(&urgent, Some("n-0"), "Running"), 1000));
        let mut h = history(
            vec![node("n-0", 8)],
            vec![low.clone(), urgent],
            vec![at(1.0, before, vec![]), at(9.0, later, vec![])],
        );
        let everyone: Vec<PodRecord> = std::iter::once(low_driver.clone())
            .chain(low_executors.iter().cloned())
            .collect();
        h.preempted = everyone
            .iter()
            .filter(|p| victims.contains(&p.name.as_str()))
            .map(|p| preempted(p, &urgent_pending))
            .collect();
        h.preempted.sort_by(|a, b| a.pod.cmp(&b.pod));
        preemption_rules(&h)
    }

    #[test]
    fn a_whole_lower_priority_gang_is_fine() {
        let v = run(
            10,
            &["low-driver", "low-exec-1", "low-exec-2"],
            |_, _| vec![],
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn an_equal_priority_victim_is_caught() {
        let v = run(
            1000,
            &["low-driver", "low-exec-1", "low-exec-2"],
            |_, _| vec![],
        );
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v[0].message.contains("a victim must have a lower priority"),
            "{v:?}"
        );
    }

    #[test]
    fn half_a_gang_left_running_is_caught() {
        let v = run(10, &["low-driver", "low-exec-1"], |_, e| vec![e[1].clone()]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("low-exec-2 still runs"), "{v:?}");
    }

    /// Executors without the driver: fine above the minimum (1 of 2 here), caught below it.
    #[test]
    fn executors_alone_only_above_the_minimum() {
        let v = run(10, &["low-exec-2"], |d, e| vec![d.clone(), e[0].clone()]);
        assert!(v.is_empty(), "{v:?}");
        let v = run(10, &["low-exec-1", "low-exec-2"], |d, _| vec![d.clone()]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("fewer than its minimum of 1"),
            "{v:?}"
        );
    }

    #[test]
    fn a_preemptor_that_is_not_in_the_run_is_caught() {
        let low = app("low", 0.0, 1, 2);
        let d = driver(&low, Some("n-0"), "Running");
        let mut h = history(
            vec![node("n-0", 8)],
            vec![low],
            vec![at(1.0, vec![d.clone()], vec![])],
        );
        h.preempted = vec![Preempted {
            pod: d.key(),
            by: "spark/ghost-driver".into(),
            at: 1.0,
            requests: d.requests,
        }];
        let v = preemption_rules(&h);
        assert!(
            v.iter()
                .any(|v| v.message.contains("is not a pod of the run")),
            "{v:?}"
        );
    }
}
