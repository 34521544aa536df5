//! Gangs: a driver starts only with its executors' room reserved, and a running driver is not
//! left below its minimum executors while it holds that room.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::history::History;

/// How long after a driver is seen bound its reservation may take to appear in the API: the
/// extender decides in memory and writes the object right after, while kube-scheduler binds.
/// Time in API outages towards the extender does not count (it holds the room in memory and
/// writes once the API answers again), as for the release invariant.
pub const RESERVATION_WRITE_GRACE: f64 = 2.0;

/// How long a running driver may stay below its minimum executors while holding its
/// reservation before that counts as a starved gang.
pub const STARVATION_LIMIT: f64 = 30.0;

/// Every driver that was bound had, by [`RESERVATION_WRITE_GRACE`] after it was first seen
/// bound (not counting outages), a reservation with its driver slot on its node and at least
/// its minimum executor slots.
pub fn gang_reserved_before_driver(history: &History) -> Vec<Violation> {
    // Per app: (first seen bound: time and node), and whether a complete reservation was seen
    // in time.
    let mut bound: BTreeMap<String, (f64, String, f64)> = BTreeMap::new();
    let mut complete: BTreeSet<String> = BTreeSet::new();
    let apps = super::accepted_apps(history);
    history.replay(|state| {
        for (a, driver, reservation) in &apps {
            if !bound.contains_key(&a.name)
                && let Some(node) = state.pods.get(driver).and_then(|p| p.node.clone())
            {
                let due = history.due_after(state.at, RESERVATION_WRITE_GRACE);
                bound.insert(a.name.clone(), (state.at, node, due));
            }
            let Some((_, node, due)) = bound.get(&a.name) else {
                continue;
            };
            if state.at > *due || complete.contains(&a.name) {
                continue;
            }
            if state.reservations.get(reservation).is_some_and(|r| {
                r.slots.get("driver") == Some(node)
                    && r.executor_slots() >= a.gang.min_executors as usize
            }) {
                complete.insert(a.name.clone());
            }
        }
    });
    bound
        .into_iter()
        .filter(|(name, _)| !complete.contains(name))
        .map(|(name, (at, node, _))| Violation {
            invariant: "gang_reserved_before_driver",
            at,
            message: format!(
                "driver of {name} was bound to {node} without a reservation of the driver slot \
                 there and its minimum executors (none seen within {RESERVATION_WRITE_GRACE}s)"
            ),
        })
        .collect()
}

/// No running driver stays below its minimum running executors for more than
/// [`STARVATION_LIMIT`] of the run's clock while its reservation exists.
pub fn no_starved_gang(history: &History) -> Vec<Violation> {
    let apps = super::accepted_apps(history);
    let mut since: BTreeMap<&str, f64> = BTreeMap::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    history.replay(|state| {
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for p in state.pods.values() {
            if p.role == "executor" && p.phase == "Running" && p.node.is_some() {
                *running.entry(p.app_id.as_str()).or_default() += 1;
            }
        }
        for (a, driver, reservation) in &apps {
            let driver_running = state.pods.get(driver).is_some_and(|p| p.phase == "Running");
            let reserved = state.reservations.contains_key(reservation);
            let have = running.get(a.app_id.as_str()).copied().unwrap_or(0);
            let min = a.gang.min_executors as usize;
            if !(driver_running && reserved && have < min) {
                since.remove(a.name.as_str());
                continue;
            }
            let first = *since.entry(a.name.as_str()).or_insert(state.at);
            if state.at - first > STARVATION_LIMIT && reported.insert(a.name.as_str()) {
                out.push(Violation {
                    invariant: "no_starved_gang",
                    at: state.at,
                    message: format!(
                        "{} ran with {have} of {min} executors for {:.0}s (since {first:.1}s) \
                         while holding its reservation",
                        a.name,
                        state.at - first
                    ),
                });
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::build::*;

    #[test]
    fn a_driver_bound_with_its_reservation_passes() {
        let a = app("a", 0.0, 2, 2);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![
                at(0.5, vec![driver(&a, None, "Pending")], vec![]),
                // The reservation's write may land just after the bind.
                at(1.0, vec![driver(&a, Some("n1"), "Pending")], vec![]),
                at(
                    1.2,
                    vec![driver(&a, Some("n1"), "Running")],
                    vec![reservation(&a, "n1", &["n1", "n1"])],
                ),
            ],
        );
        assert_eq!(gang_reserved_before_driver(&h), vec![]);
    }

    /// The API failing the extender just after a bind delays the write by the outage, and
    /// no more.
    #[test]
    fn an_outage_delays_the_reservation_by_its_length_and_no_more() {
        let a = app("a", 0.0, 2, 2);
        let states = |written_at: f64| {
            vec![
                at(1.0, vec![driver(&a, Some("n1"), "Running")], vec![]),
                at(
                    written_at,
                    vec![driver(&a, Some("n1"), "Running")],
                    vec![reservation(&a, "n1", &["n1", "n1"])],
                ),
            ]
        };
        let with_outage = |h: History| with_outage(h, "api-5xx", 1.1, 9.1);
        // Due at 1 + 2 + 8 (the outage) = 11.
        let in_time = with_outage(history(vec![node("n1", 8)], vec![a.clone()], states(11.0)));
        assert_eq!(gang_reserved_before_driver(&in_time), vec![]);
        let late = with_outage(history(vec![node("n1", 8)], vec![a.clone()], states(11.5)));
        assert_eq!(gang_reserved_before_driver(&late).len(), 1);
        let no_outage = history(vec![node("n1", 8)], vec![a.clone()], states(11.0));
        assert_eq!(gang_reserved_before_driver(&no_outage).len(), 1);
    }

    #[test]
    fn a_driver_bound_without_a_reservation_is_caught() {
        let a = app("a", 0.0, 2, 2);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![
                at(1.0, vec![driver(&a, Some("n1"), "Running")], vec![]),
                at(5.0, vec![driver(&a, Some("n1"), "Running")], vec![]),
            ],
        );
        let v = gang_reserved_before_driver(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, 1.0);
    }

    #[test]
    fn a_reservation_short_of_the_minimum_or_elsewhere_is_caught() {
        let short = app("short", 0.0, 3, 2);
        let elsewhere = app("elsewhere", 0.0, 1, 2);
        let h = history(
            vec![node("n1", 8), node("n2", 8)],
            vec![short.clone(), elsewhere.clone()],
            vec![at(
                1.0,
                vec![
                    driver(&short, Some("n1"), "Running"),
                    driver(&elsewhere, Some("n1"), "Running"),
                ],
                vec![
                    reservation(&short, "n1", &["n1", "n2"]),
                    reservation(&elsewhere, "n2", &["n2"]),
                ],
            )],
        );
        assert_eq!(gang_reserved_before_driver(&h).len(), 2);
    }

    #[test]
    fn a_gang_that_gets_its_executors_is_not_starved() {
        let a = app("a", 0.0, 2, 2);
        let r = reservation(&a, "n1", &["n1", "n1"]);
        let mut states = vec![];
        for t in 0..20 {
            states.push(at(
                f64::from(t),
                vec![driver(&a, Some("n1"), "Running")],
                vec![r.clone()],
            ));
        }
        states.push(at(
            20.0,
            vec![
                driver(&a, Some("n1"), "Running"),
                executor(&a, 1, Some("n1"), "Running"),
                executor(&a, 2, Some("n1"), "Running"),
            ],
            vec![r],
        ));
        let h = history(vec![node("n1", 8)], vec![a], states);
        assert_eq!(no_starved_gang(&h), vec![]);
    }

    #[test]
    fn a_gang_below_its_minimum_for_too_long_is_caught_once() {
        let a = app("a", 0.0, 2, 2);
        let r = reservation(&a, "n1", &["n1", "n1"]);
        let states = (0..40)
            .map(|t| {
                at(
                    f64::from(t),
                    vec![
                        driver(&a, Some("n1"), "Running"),
                        executor(&a, 1, Some("n1"), "Running"),
                        executor(&a, 2, None, "Pending"),
                    ],
                    vec![r.clone()],
                )
            })
            .collect();
        let h = history(vec![node("n1", 8)], vec![a], states);
        let v = no_starved_gang(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("1 of 2 executors"));
        assert_eq!(v[0].at, 31.0);
    }
}
