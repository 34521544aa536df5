//! The gang guard on kube-scheduler's pod-by-pod preemption: no node whose victims include a Spark pod.
//!
//! kube-scheduler preempts pod by pod; taking one pod of a gang leaves the rest of the gang
//! holding its reservation without being able to run. Until the extender chooses victims by
//! whole gangs, a candidate node is kept only if none of its victims is a pod this state knows
//! as a Spark driver or executor; kept nodes keep their victims unchanged (kube-scheduler looks
//! every returned UID up on its node, so they must be exactly the ones it sent).

use std::collections::{BTreeMap, HashSet};

use crate::api::extender::MetaVictims;

use super::ClusterState;

/// What is left of kube-scheduler's preemption candidates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardedCandidates {
    /// Nodes where preempting the victims takes no Spark pod, with their victims unchanged.
    pub allowed: BTreeMap<String, MetaVictims>,
    /// Nodes withheld, each with the UIDs of the Spark pods among its victims.
    pub withheld: BTreeMap<String, Vec<String>>,
}

/// The rule, over any test of "this UID is a pod of a gang": a node stays a candidate only if
/// none of its victims is one. A node without victims has none to protect and stays.
pub fn guard_candidates(
    candidates: BTreeMap<String, MetaVictims>,
    is_gang_pod: impl Fn(&str) -> bool,
) -> GuardedCandidates {
    let mut out = GuardedCandidates::default();
    for (node, victims) in candidates {
        let gang: Vec<String> = victims
            .pods
            .iter()
            .flatten()
            .filter(|p| is_gang_pod(&p.uid))
            .map(|p| p.uid.clone())
            .collect();
        if gang.is_empty() {
            out.allowed.insert(node, victims);
        } else {
            out.withheld.insert(node, gang);
        }
    }
    out
}

impl ClusterState {
    /// Of `uids`, those of pods this state knows as Spark drivers or executors (by their
    /// `spark-role`), in one pass over the pods: preemption is rare, and an index by UID would
    /// cost every pod event. An empty UID matches nothing.
    pub fn spark_pod_uids<'a>(&self, uids: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
        let wanted: HashSet<&str> = uids.into_iter().filter(|u| !u.is_empty()).collect();
        if wanted.is_empty() {
            return HashSet::new();
        }
        self.pods
            .values()
            .filter(|p| p.role.is_some() && wanted.contains(p.uid.as_str()))
            .map(|p| p.uid.clone())
            .collect()
    }

    /// kube-scheduler's preemption candidates (node → victims by UID), less every node where a
    /// victim is a Spark driver or executor of this state ([`guard_candidates`]).
    pub fn guard_preemption(&self, candidates: BTreeMap<String, MetaVictims>) -> GuardedCandidates {
        let spark = self.spark_pod_uids(
            candidates
                .values()
                .flat_map(|v| v.pods.iter().flatten())
                .map(|p| p.uid.as_str()),
        );
        guard_candidates(candidates, |uid| spark.contains(uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::extender::MetaPod;
    use crate::cluster::SchedulerConfig;
    use k8s_openapi::api::core::v1::Pod;

    fn victims(uids: &[&str], pdb: i64) -> MetaVictims {
        MetaVictims {
            pods: Some(
                uids.iter()
                    .map(|u| MetaPod {
                        uid: (*u).to_owned(),
                    })
                    .collect(),
            ),
            num_pdb_violations: pdb,
        }
    }

    fn candidates(nodes: &[(&str, &[&str])]) -> BTreeMap<String, MetaVictims> {
        nodes
            .iter()
            .map(|(n, uids)| ((*n).to_owned(), victims(uids, 1)))
            .collect()
    }

    #[test]
    fn a_node_with_a_gang_victim_is_withheld_the_others_kept_unchanged() {
        let input = candidates(&[
            ("a", &["web-1", "web-2"]),
            ("b", &["web-3", "exec-1"]),
            ("c", &["driver-1"]),
            ("d", &[]),
        ]);
        let gang = ["exec-1", "driver-1"];
        let out = guard_candidates(input.clone(), |u| gang.contains(&u));
        assert_eq!(out.allowed.keys().collect::<Vec<_>>(), ["a", "d"]);
        assert_eq!(out.allowed["a"], input["a"]);
        assert_eq!(out.allowed["d"], input["d"]);
        assert_eq!(out.withheld["b"], ["exec-1"]);
        assert_eq!(out.withheld["c"], ["driver-1"]);
    }

    #[test]
    fn no_gang_pods_keeps_everything_and_null_victims_stay_null() {
        let mut input = candidates(&[("a", &["x"]), ("b", &["y", "z"])]);
        input.insert(
            "c".to_owned(),
            MetaVictims {
                pods: None,
                num_pdb_violations: 0,
            },
        );
        let out = guard_candidates(input.clone(), |_| false);
        assert_eq!(out.allowed, input);
        assert!(out.withheld.is_empty());
    }

    fn pod(name: &str, uid: &str, role: Option<&str>) -> Pod {
        let mut labels = serde_json::Map::new();
        if let Some(role) = role {
            labels.insert("spark-role".into(), role.into());
            labels.insert("spark-app-selector".into(), "spark-1".into());
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels},
            "spec": {"nodeName": "a", "containers": []}
        }))
        .unwrap()
    }

    #[test]
    fn the_state_protects_its_spark_drivers_and_executors_by_uid() {
        let mut state = ClusterState::new(SchedulerConfig::default());
        state.apply_pod(&pod("driver", "u-driver", Some("driver")));
        state.apply_pod(&pod("exec", "u-exec", Some("executor")));
        state.apply_pod(&pod("web", "u-web", None));
        state.apply_pod(&pod("no-uid", "", Some("executor")));
        assert_eq!(
            state.spark_pod_uids(["u-driver", "u-web", "u-exec", "u-unknown", ""]),
            HashSet::from(["u-driver".to_owned(), "u-exec".to_owned()])
        );
        let out = state.guard_preemption(candidates(&[
            ("a", &["u-web"]),
            ("b", &["u-web", "u-exec"]),
            ("c", &["u-driver"]),
            // Unknown to the state: not a gang pod it could protect.
            ("d", &["u-unknown"]),
            // An empty UID does not match the pod whose UID is unknown.
            ("e", &[""]),
        ]));
        assert_eq!(out.allowed.keys().collect::<Vec<_>>(), ["a", "d", "e"]);
        assert_eq!(out.withheld.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(out.withheld["b"], ["u-exec"]);
    }
}
