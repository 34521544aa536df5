//! `preemption_rules`: every pod evicted for preemption was of lower priority than the driver it
//! was evicted for, and an application loses either its whole gang or only executors above its
//! minimum.
//!
//! Priorities are the pods' `spec.priority` as the API server resolved them (an application's
//! is its driver's); the preemptor is the driver named in the victim's `DisruptionTarget`
//! message. With queues (`docs/queues.md`), a victim of another queue than its preemptor's
//! needs no lower priority but must be reclaimed: its queue held more than its guarantee when
//! it was evicted ([`super::queues::held_by_queue`]). A gang whose driver was evicted must have nothing left running at the end of the
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
    let reclaim = Reclaim::of(history);
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
            Some((_, by)) if reclaim.across_queues(by, victim) => {
                if let Some(why) = reclaim.not_borrowing(victim, pre.at) {
                    out.push(Violation {
                        invariant: INVARIANT,
                        at: *at,
                        message: format!(
                            "{} was evicted to reclaim room for {}, but {why}",
                            pre.pod, pre.by
                        ),
                    });
                }
            }
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

/// The queues of a run, and what each held at each sample: to judge reclaim.
struct Reclaim<'h> {
    apps: super::queues::Apps<'h>,
    guarantees: BTreeMap<&'h str, [Option<i64>; 3]>,
    /// Per application (`namespace`, app id): when its first pod was seen evicted.
    first_evicted: BTreeMap<(String, String), f64>,
    /// `(at, held by queue)` per sample.
    held: Vec<(
        f64,
        BTreeMap<String, sparkgang_common::resources::Resources>,
    )>,
}

impl<'h> Reclaim<'h> {
    fn of(history: &'h History) -> Self {
        let apps = super::queues::apps_by_id(history);
        let guarantees = history
            .queues
            .iter()
            .filter_map(|q| {
                super::queues::limits(q)
                    .ok()
                    .map(|l| (q.name.as_str(), l.guaranteed))
            })
            .collect();
        let mut held = Vec::new();
        let mut first_evicted: BTreeMap<(String, String), f64> = BTreeMap::new();
        if !history.queues.is_empty() {
            history.replay(|state| {
                held.push((state.at, super::queues::held_by_queue(state, &apps)));
                for p in &history.preempted {
                    if let Some(pod) = state.pods.get(&p.pod) {
                        let e = first_evicted
                            .entry((pod.namespace.clone(), pod.app_id.clone()))
                            .or_insert(p.at);
                        *e = e.min(p.at);
                    }
                }
            });
        }
        Reclaim {
            apps,
            guarantees,
            first_evicted,
            held,
        }
    }

    /// The preemptor and the victim belong to different queues.
    fn across_queues(&self, by: &PodRecord, victim: &PodRecord) -> bool {
        match (
            self.apps.queue_of(&by.namespace, &by.app_id),
            self.apps.queue_of(&victim.namespace, &victim.app_id),
        ) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }

    /// Why the victim's queue was not borrowing when its application was first seen evicted:
    /// it held no more than its guarantee (anything, for a queue that guarantees nothing) at
    /// the last sample before.
    fn not_borrowing(&self, victim: &PodRecord, at: f64) -> Option<String> {
        let queue = self.apps.queue_of(&victim.namespace, &victim.app_id)?;
        let guaranteed = self.guarantees.get(queue)?;
        let since = self
            .first_evicted
            .get(&(victim.namespace.clone(), victim.app_id.clone()))
            .copied()
            .unwrap_or(at);
        let held = self
            .held
            .iter()
            .take_while(|(t, _)| *t < since)
            .last()
            .and_then(|(_, h)| h.get(queue).copied())
            .unwrap_or_default();
        let nothing_guaranteed = guaranteed.iter().all(Option::is_none);
        let borrowing = if nothing_guaranteed {
            held != sparkgang_common::resources::Resources::ZERO
        } else {
            super::queues::over(&held, guaranteed).is_some()
        };
        (!borrowing)
            .then(|| format!("its queue {queue} held no more than its guarantee then ({held})"))
    }
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

    /// `etl` (guaranteed `etl_guarantee` cores) runs a 5-core gang; `ml` (another queue, equal
    /// priority) evicts it whole to reclaim.
    fn reclaim(etl_guarantee: i64) -> Vec<Violation> {
        use crate::history::QueueRecord;
        use crate::oracle::build::reservation;
        let mut etl = app("etl", 0.0, 2, 2);
        etl.queue = Some("etl".into());
        let mut ml = app("ml", 5.0, 2, 2);
        ml.queue = Some("ml".into());
        let victims = vec![
            driver(&etl, Some("n-0"), "Running"),
            executor(&etl, 1, Some("n-0"), "Running"),
            executor(&etl, 2, Some("n-0"), "Running"),
        ];
        let ml_pending = driver(&ml, None, "Pending");
        let mut before = victims.clone();
        before.push(ml_pending.clone());
        let mut h = history(
            vec![node("n-0", 8)],
            vec![etl.clone(), ml.clone()],
            vec![
                at(1.0, before, vec![reservation(&etl, "n-0", &["n-0", "n-0"])]),
                at(9.0, vec![driver(&ml, Some("n-0"), "Running")], vec![]),
            ],
        );
        let queue = |name: &str, cores: i64| QueueRecord {
            name: name.into(),
            instance_group: "batch".into(),
            guaranteed: [("cpu".to_owned(), cores.to_string())].into(),
            weight: 1,
            parent: Some("org".into()),
            ..QueueRecord::default()
        };
        h.queues = vec![queue("etl", etl_guarantee), queue("ml", 8)];
        h.preempted = victims
            .iter()
            .map(|p| Preempted {
                at: 5.0,
                ..preempted(p, &ml_pending)
            })
            .collect();
        h.preempted.sort_by(|a, b| a.pod.cmp(&b.pod));
        preemption_rules(&h)
    }

    #[test]
    fn reclaiming_from_a_queue_over_its_guarantee_needs_no_lower_priority() {
        let v = reclaim(4);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn reclaiming_from_a_queue_within_its_guarantee_is_caught() {
        let v = reclaim(5);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v[0].message
                .contains("its queue etl held no more than its guarantee then"),
            "{v:?}"
        );
    }
}
