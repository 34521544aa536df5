//! No node holds more than it has: neither the pods bound to it nor what the extender holds
//! there.

use std::collections::{BTreeMap, BTreeSet};

use sparkgang_common::resources::Resources;

use super::Violation;
use crate::history::History;

/// At every sample, per node: the requests of the pods bound there and not finished fit its
/// allocatable, and so does what the extender held there. Each (node, culprit) is reported once.
pub fn no_over_commit(history: &History) -> Vec<Violation> {
    let allocatable: BTreeMap<&str, Resources> = history
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.allocatable))
        .collect();
    let mut out = Vec::new();
    let mut reported: BTreeSet<(String, &'static str)> = BTreeSet::new();
    history.replay(|state| {
        let mut bound: BTreeMap<&str, (Resources, Vec<&str>)> = BTreeMap::new();
        for p in state.pods.values().filter(|p| p.holds_room()) {
            let Some(n) = p.node.as_deref() else { continue };
            let e = bound.entry(n).or_default();
            e.0 += p.requests;
            e.1.push(p.name.as_str());
        }
        for (node, a) in &allocatable {
            let mut check = |what: &'static str, used: Resources, detail: String| {
                if !fits(used, *a) && reported.insert(((*node).to_owned(), what)) {
                    out.push(Violation {
                        invariant: "no_over_commit",
                        at: state.at,
                        message: format!(
                            "node {node} over-committed by {what}{detail}: {used} of {a}"
                        ),
                    });
                }
            };
            if let Some((used, who)) = bound.get(node) {
                check("its pods", *used, format!(" ({})", who.join(", ")));
            }
            if let Some(held) = state.held.get(*node) {
                check("the extender's reservations and pods", *held, String::new());
            }
        }
    });
    out
}

/// `used` fits in `allocatable`, dimension by dimension (written out here rather than taken
/// from the code under test).
fn fits(used: Resources, allocatable: Resources) -> bool {
    used.cpu_milli <= allocatable.cpu_milli
        && used.memory_bytes <= allocatable.memory_bytes
        && used.gpus <= allocatable.gpus
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::build::*;

    #[test]
    fn pods_that_fit_pass() {
        let a = app("a", 0.0, 3, 2);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(
                1.0,
                vec![
                    driver(&a, Some("n1"), "Running"),
                    executor(&a, 1, Some("n1"), "Running"),
                    executor(&a, 2, Some("n1"), "Running"),
                    executor(&a, 3, Some("n1"), "Running"),
                ],
                vec![],
            )],
        );
        assert_eq!(no_over_commit(&h), vec![]);
    }

    #[test]
    fn one_pod_too_many_is_caught_once() {
        let a = app("a", 0.0, 4, 2);
        let pods = vec![
            driver(&a, Some("n1"), "Running"),
            executor(&a, 1, Some("n1"), "Running"),
            executor(&a, 2, Some("n1"), "Running"),
            executor(&a, 3, Some("n1"), "Running"),
            executor(&a, 4, Some("n1"), "Running"),
        ];
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(1.0, pods.clone(), vec![]), at(2.0, pods, vec![])],
        );
        let v = no_over_commit(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("node n1 over-committed by its pods"));
        assert_eq!(v[0].at, 1.0);
    }

    #[test]
    fn finished_pods_hold_nothing() {
        let a = app("a", 0.0, 4, 2);
        let h = history(
            vec![node("n1", 8)],
            vec![a.clone()],
            vec![at(
                1.0,
                vec![
                    driver(&a, Some("n1"), "Succeeded"),
                    executor(&a, 1, Some("n1"), "Running"),
                    executor(&a, 2, Some("n1"), "Running"),
                    executor(&a, 3, Some("n1"), "Running"),
                    executor(&a, 4, Some("n1"), "Failed"),
                ],
                vec![],
            )],
        );
        assert_eq!(no_over_commit(&h), vec![]);
    }

    #[test]
    fn the_extender_holding_too_much_is_caught() {
        let mut s = at(1.0, vec![], vec![]);
        s.held.insert("n1".into(), cpu(9));
        let h = history(vec![node("n1", 8)], vec![], vec![s]);
        let v = no_over_commit(&h);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("the extender's reservations"));
    }
}
