//! No double-booked slot: a reservation slot holds one pod, and a pod holds one slot.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::history::History;

/// At every sample: no live pod is named by two slots (of one reservation or of two), and
/// every pod a slot names belongs to that reservation's application. Each pod is reported once.
pub fn no_double_booked_slot(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    history.replay(|state| {
        let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in state.reservations.values() {
            for (slot, pod) in &r.pods {
                let key = format!("{}/{pod}", r.namespace);
                holders
                    .entry(key.clone())
                    .or_default()
                    .push(format!("{}:{slot}", r.app_id));
                let Some(p) = state.pods.get(&key) else {
                    continue;
                };
                if p.app_id != r.app_id && reported.insert(format!("{key} foreign")) {
                    out.push(Violation {
                        invariant: "no_double_booked_slot",
                        at: state.at,
                        message: format!(
                            "slot {slot} of {} is held by {key}, a pod of {}",
                            r.app_id, p.app_id
                        ),
                    });
                }
            }
        }
        for (pod, slots) in holders {
            let live = state.pods.get(&pod).is_some_and(|p| !p.is_finished());
            if slots.len() > 1 && live && reported.insert(pod.clone()) {
                out.push(Violation {
                    invariant: "no_double_booked_slot",
                    at: state.at,
                    message: format!(
                        "pod {pod} holds {} slots: {}",
                        slots.len(),
                        slots.join(", ")
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
    fn one_pod_per_slot_passes() {
        let a = app("a", 0.0, 2, 2);
        let mut r = reservation(&a, "n1", &["n1", "n1"]);
        r.pods.insert("executor-1".into(), "a-exec-1".into());
        r.pods.insert("executor-2".into(), "a-exec-2".into());
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(
                1.0,
                vec![
                    driver(&a, Some("n1"), "Running"),
                    executor(&a, 1, Some("n1"), "Running"),
                    executor(&a, 2, Some("n1"), "Running"),
                ],
                vec![r],
            )],
        );
        assert_eq!(no_double_booked_slot(&h), vec![]);
    }

    #[test]
    fn a_pod_in_two_slots_is_caught() {
        let a = app("a", 0.0, 2, 2);
        let mut r = reservation(&a, "n1", &["n1", "n1"]);
        r.pods.insert("executor-1".into(), "a-exec-1".into());
        r.pods.insert("executor-2".into(), "a-exec-1".into());
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(
                1.0,
                vec![
                    driver(&a, Some("n1"), "Running"),
                    executor(&a, 1, Some("n1"), "Running"),
                ],
                vec![r],
            )],
        );
        let v = no_double_booked_slot(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("holds 2 slots"));
    }

    #[test]
    fn a_pod_of_another_app_in_a_slot_is_caught() {
        let a = app("a", 0.0, 1, 2);
        let b = app("b", 0.0, 1, 2);
        let mut r = reservation(&a, "n1", &["n1"]);
        r.pods.insert("executor-1".into(), "b-exec-1".into());
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone(), b.clone()],
            vec![at(
                1.0,
                vec![
                    driver(&a, Some("n1"), "Running"),
                    executor(&b, 1, Some("n1"), "Running"),
                ],
                vec![r],
            )],
        );
        let v = no_double_booked_slot(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("a pod of id-b"));
    }
}
