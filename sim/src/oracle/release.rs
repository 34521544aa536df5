//! Reservations released: a finished driver gives its room back.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::history::History;

/// How long after its driver is seen finished an application's reservation may remain (the
/// extender sees the completion through its watch, then deletes the object).
pub const RELEASE_GRACE: f64 = 5.0;

/// Once a driver is seen `Succeeded` or `Failed`, its application's reservation is gone within
/// [`RELEASE_GRACE`] (not counting API outages towards the extender), and none is left at the
/// end of the run.
pub fn reservations_released(history: &History) -> Vec<Violation> {
    let mut finished: BTreeMap<String, f64> = BTreeMap::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    let end = history.end();
    let apps = super::accepted_apps(history);
    history.replay(|state| {
        for (a, driver, reservation) in &apps {
            let driver = state.pods.get(driver);
            if driver.is_some_and(|p| p.is_finished()) && !finished.contains_key(&a.name) {
                finished.insert(a.name.clone(), state.at);
            }
            let Some(done) = finished.get(&a.name) else {
                continue;
            };
            let held = state.reservations.contains_key(reservation);
            let late = state.at > history.due_after(*done, RELEASE_GRACE) || state.at >= end;
            if held && late && reported.insert(a.name.clone()) {
                out.push(Violation {
                    invariant: "reservations_released",
                    at: state.at,
                    message: format!(
                        "{} still holds its reservation {:.1}s after its driver finished at {done:.1}s",
                        a.name,
                        state.at - done
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
    fn released_soon_after_completion_passes() {
        let a = app("a", 0.0, 1, 2);
        let r = reservation(&a, "n1", &["n1"]);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![
                at(
                    1.0,
                    vec![driver(&a, Some("n1"), "Running")],
                    vec![r.clone()],
                ),
                at(2.0, vec![driver(&a, Some("n1"), "Succeeded")], vec![r]),
                at(2.5, vec![driver(&a, Some("n1"), "Succeeded")], vec![]),
            ],
        );
        assert_eq!(reservations_released(&h), vec![]);
    }

    #[test]
    fn kept_past_the_grace_is_caught() {
        let a = app("a", 0.0, 1, 2);
        let r = reservation(&a, "n1", &["n1"]);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![
                at(2.0, vec![driver(&a, Some("n1"), "Failed")], vec![r.clone()]),
                at(8.0, vec![driver(&a, Some("n1"), "Failed")], vec![r.clone()]),
                at(9.0, vec![driver(&a, Some("n1"), "Failed")], vec![r]),
            ],
        );
        let v = reservations_released(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, 8.0);
    }

    #[test]
    fn an_outage_extends_the_grace_by_its_length_and_no_more() {
        let a = app("a", 0.0, 1, 2);
        let r = reservation(&a, "n1", &["n1"]);
        let states = |released_at: f64| {
            vec![
                at(2.0, vec![driver(&a, Some("n1"), "Failed")], vec![r.clone()]),
                at(
                    released_at - 0.5,
                    vec![driver(&a, Some("n1"), "Failed")],
                    vec![r.clone()],
                ),
                at(released_at, vec![driver(&a, Some("n1"), "Failed")], vec![]),
            ]
        };
        let with_outage = |h: History| with_outage(h, "api-hang", 3.0, 11.0);
        // Due at 2 + 5 + 8 (the outage) = 15.
        let in_time = with_outage(history(vec![node("n1", 8)], vec![a.clone()], states(15.0)));
        assert_eq!(reservations_released(&in_time), vec![]);
        let late = with_outage(history(vec![node("n1", 8)], vec![a.clone()], states(16.0)));
        let v = reservations_released(&late);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, 15.5);
    }

    #[test]
    fn left_at_the_end_is_caught() {
        let a = app("a", 0.0, 1, 2);
        let r = reservation(&a, "n1", &["n1"]);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(2.0, vec![driver(&a, Some("n1"), "Succeeded")], vec![r])],
        );
        assert_eq!(reservations_released(&h).len(), 1);
    }

    #[test]
    fn a_running_driver_keeps_its_reservation() {
        let a = app("a", 0.0, 1, 2);
        let r = reservation(&a, "n1", &["n1"]);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(20.0, vec![driver(&a, Some("n1"), "Running")], vec![r])],
        );
        assert_eq!(reservations_released(&h), vec![]);
    }
}
