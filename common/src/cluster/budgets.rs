//! PodDisruptionBudgets as preemption sees them: which budgets a pod falls under, and how many
//! more disruptions each allows (`status.disruptionsAllowed`, as the disruption controller
//! last wrote it; the Eviction API refuses a pod whose budget allows none).

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::labels::selector_matches;

use super::ClusterState;
use super::keys::PodKey;

/// One budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// `spec.selector`; `None` selects no pod (policy/v1).
    pub selector: Option<LabelSelector>,
    /// `status.disruptionsAllowed` (0 when the controller has not written it yet).
    pub disruptions_allowed: u32,
}

/// A budget's key: namespace and name.
pub type BudgetKey = (String, String);

/// Which budgets a pod falls under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Covered<'a> {
    None,
    One(&'a BudgetKey),
    /// More than one: the Eviction API refuses such a pod outright.
    Several,
}

impl Budget {
    pub fn of(pdb: &PodDisruptionBudget) -> Budget {
        Budget {
            selector: pdb.spec.as_ref().and_then(|s| s.selector.clone()),
            disruptions_allowed: pdb
                .status
                .as_ref()
                .map(|s| s.disruptions_allowed.max(0) as u32)
                .unwrap_or(0),
        }
    }

    fn covers(&self, labels: &BTreeMap<String, String>) -> bool {
        // policy/v1: an absent selector matches no pod, an empty one every pod.
        self.selector
            .as_ref()
            .is_some_and(|s| selector_matches(Some(s), labels))
    }
}

impl ClusterState {
    /// A budget was created or changed.
    pub fn apply_budget(&mut self, pdb: &PodDisruptionBudget) {
        let key = (
            pdb.metadata.namespace.clone().unwrap_or_default(),
            pdb.metadata.name.clone().unwrap_or_default(),
        );
        self.budgets.insert(key, Budget::of(pdb));
    }

    /// A budget is gone.
    pub fn delete_budget(&mut self, key: &BudgetKey) {
        self.budgets.remove(key);
    }

    /// The budgets memory holds.
    pub fn budget_keys(&self) -> Vec<BudgetKey> {
        self.budgets.keys().cloned().collect()
    }

    /// A budget by key.
    pub fn budget(&self, key: &BudgetKey) -> Option<&Budget> {
        self.budgets.get(key)
    }

    /// The budgets of its namespace that pod `key` falls under.
    pub fn budgets_covering(&self, key: &PodKey) -> Covered<'_> {
        let Some(pod) = self.pods.get(key) else {
            return Covered::None;
        };
        let ns = &key.namespace;
        let mut found = self
            .budgets
            .range((ns.clone(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .filter(|(_, b)| b.covers(&pod.labels))
            .map(|(k, _)| k);
        match (found.next(), found.next()) {
            (None, _) => Covered::None,
            (Some(k), None) => Covered::One(k),
            (Some(_), Some(_)) => Covered::Several,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pdb(
        ns: &str,
        name: &str,
        selector: Option<&[(&str, &str)]>,
        allowed: i32,
    ) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector: selector.map(|pairs| LabelSelector {
                    match_labels: Some(
                        pairs
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                    ),
                    match_expressions: None,
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                disruptions_allowed: allowed,
                ..PodDisruptionBudgetStatus::default()
            }),
        }
    }

    #[test]
    fn a_negative_or_missing_status_allows_nothing_and_no_selector_covers_nothing() {
        let mut b = pdb("spark", "a", None, -3);
        assert_eq!(Budget::of(&b).disruptions_allowed, 0);
        b.status = None;
        assert_eq!(Budget::of(&b).disruptions_allowed, 0);
        assert!(!Budget::of(&b).covers(&BTreeMap::new()));
        let every = pdb("spark", "all", Some(&[]), 1);
        assert!(Budget::of(&every).covers(&BTreeMap::new()));
    }
}
