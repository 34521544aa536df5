//! Executor decisions: a slot already held, a free reserved slot, a moved slot, or a soft
//! reservation under dynamic allocation. Slots belong to the application, not to an executor
//! id: Spark replaces lost executors with new ids and names.

use crate::binpack::{BinpackAlgorithm, zone_of};
use crate::gang_demand::GangDemand;
use crate::resources::Resources;

use super::ClusterState;
use super::apps::SoftSlot;
use super::decision::{Decision, Effect, FilterOutcome};
use super::keys::{AppKey, PodKey};
use super::nodes::NodeIdx;

impl ClusterState {
    /// The gang demand of an application, from its driver.
    pub(super) fn app_demand(&self, app: &AppKey) -> Option<GangDemand> {
        let driver = self.apps.get(app)?.driver.as_ref()?;
        self.pods.get(driver)?.driver.as_ref()?.demand.clone().ok()
    }

    /// How many more soft reservations the application may take: `(max − min)` minus those
    /// it holds (palantir's rule), zero for static allocation.
    pub(super) fn free_soft_spots(&self, app: &AppKey) -> usize {
        let Some(demand) = self.app_demand(app) else {
            return 0;
        };
        let extra = demand.max_executors.saturating_sub(demand.min_executors) as usize;
        let held = self.apps.get(app).map_or(0, |a| a.soft.len());
        extra.saturating_sub(held)
    }

    pub(super) fn filter_executor<S: AsRef<str>>(
        &mut self,
        key: &PodKey,
        candidates: &[S],
    ) -> Decision {
        let Some(pod) = self.pods.get(key) else {
            return Decision::failure(FilterOutcome::FailureUnknownDemand, "unknown pod");
        };
        let Some(app) = pod.app.clone() else {
            return Decision::failure(
                FilterOutcome::FailureUnknownDemand,
                "the executor has neither a spark-app-id nor a spark-app-selector label",
            );
        };
        let requests = pod.requests;
        // Where each node is among the candidates (the list is remembered between calls).
        self.nodes.remember_offered(candidates);
        let Some(res) = self.reservation(&app).cloned() else {
            return Decision::failure(
                FilterOutcome::FailureDriverNotPlaced,
                format!(
                    "application {} has no reservation: its driver has not been placed by \
                     sparkgang yet (client-mode executors are not gang scheduled)",
                    app.app_id
                ),
            );
        };
        let demand = self.app_demand(&app);
        let executor = demand.map_or(requests, |d| d.executor);

        // 1. The pod already holds a slot or a soft reservation.
        if let Some((slot, s)) = res.slot_of_pod(&key.name) {
            if self.nodes.offered_position(&s.node).is_some() {
                return Decision::success(
                    FilterOutcome::SuccessAlreadyBound,
                    s.node.clone(),
                    Vec::new(),
                );
            }
            // Its node is no longer offered: give the slot up and look again.
            let mut r = res.clone();
            if let Some(s) = r.slots.get_mut(slot) {
                s.pod = None;
            }
            self.set_reservation(&app, Some(r));
            self.mark_changed(&app);
        }
        let res = self.reservation(&app).cloned().unwrap_or(res);
        if let Some(node) = self
            .apps
            .get(&app)
            .and_then(|a| a.soft.get(&key.name))
            .map(|s| s.node.clone())
        {
            if self.nodes.offered_position(&node).is_some() {
                return Decision::success(FilterOutcome::SuccessAlreadyBound, node, Vec::new());
            }
            self.set_soft(&app, &key.name, None);
        }

        // 2. A free slot on an offered node (the first in kube-scheduler's order).
        let free: Vec<(String, String)> = res
            .executor_slots()
            .filter(|(_, s)| self.slot_is_free(&app.namespace, s.pod.as_deref(), &s.node))
            .map(|(name, s)| (name.clone(), s.node.clone()))
            .collect();
        // A slot whose node pods are still leaving for it (preemption) waits for them: binding
        // now would put more on the node than it has.
        let waiting =
            |node: &str| self.overcommitted(node).is_some() && self.pods_leaving(&app, node);
        if let Some((slot, node)) = free
            .iter()
            .filter(|(_, node)| !waiting(node))
            .filter_map(|(slot, node)| self.nodes.offered_position(node).map(|p| (p, slot, node)))
            .min()
            .map(|(_, slot, node)| (slot.clone(), node.clone()))
        {
            return self.bind_slot(&app, &slot, &node, key, FilterOutcome::SuccessReservedSlot);
        }
        if let Some((_, node)) = free.iter().find(|(_, node)| waiting(node)) {
            let short = self.overcommitted(node).unwrap_or_default();
            return Decision::failure(
                FilterOutcome::FailurePreempting,
                format!(
                    "application {} has an executor slot held on node {node}, which pods being \
                     evicted for it still occupy ({short} over); waiting for them to leave",
                    app.app_id
                ),
            )
            .with_effects(self.evictions_left(&app));
        }

        // 3. A free slot elsewhere: move it to an offered node with room.
        if let Some((slot, from)) = free.first().cloned() {
            let from_idx = self.nodes.index_of(&from);
            return match self.place_one_executor(&app, candidates, executor, from_idx) {
                Some(node) => {
                    self.bind_slot(&app, &slot, &node, key, FilterOutcome::SuccessRescheduled)
                }
                None => Decision::failure(
                    FilterOutcome::FailureFit,
                    format!(
                        "application {} has a free executor slot on {from}, which was not offered, \
                         and no offered node has room for an executor ({executor})",
                        app.app_id
                    ),
                ),
            };
        }

        // 4. Dynamic allocation: a soft reservation above the minimum.
        let seen = self
            .apps
            .get(&app)
            .is_some_and(|a| a.soft_seen.contains(&key.name));
        let spots = self.free_soft_spots(&app);
        if spots > 0 && !seen {
            // Above the minimum, only while its queue has room (and first to be reclaimed).
            let driver = self.apps.get(&app).and_then(|a| a.driver.clone());
            if let Err(why) = self.admit_extra_executor(driver.as_ref(), executor.max(&requests)) {
                return Decision::failure(
                    FilterOutcome::FailureQueue,
                    format!("application {}: {why}", app.app_id),
                )
                .with_effects(vec![Effect::DeleteDemand(key.clone())]);
            }
            return match self.place_one_executor(&app, candidates, executor, None) {
                Some(node) => {
                    self.set_soft(
                        &app,
                        &key.name,
                        Some(SoftSlot {
                            node: node.clone(),
                            resources: executor.max(&requests),
                        }),
                    );
                    Decision::success(
                        FilterOutcome::SuccessExtraExecutor,
                        node,
                        vec![Effect::DeleteDemand(key.clone())],
                    )
                }
                None => Decision::failure(
                    FilterOutcome::FailureFit,
                    format!(
                        "application {} may grow by {spots} executor{} but no offered node has room \
                         for one ({executor})",
                        app.app_id,
                        if spots == 1 { "" } else { "s" }
                    ),
                )
                .with_effects(vec![Effect::EnsureDemand(key.clone())]),
            };
        }
        let (min, max) = demand.map_or((0, 0), |d| (d.min_executors, d.max_executors));
        Decision::failure(
            FilterOutcome::FailureUnbound,
            format!(
                "application {} has no free executor slot: all {} reserved slots are taken{}",
                app.app_id,
                res.executor_slots().count(),
                if max > min {
                    format!(" and it already runs its maximum of {max} executors")
                } else {
                    String::new()
                }
            ),
        )
    }

    /// Binds `slot` of `app` to executor `key` on `node` (moving the slot there if needed).
    fn bind_slot(
        &mut self,
        app: &AppKey,
        slot: &str,
        node: &str,
        key: &PodKey,
        outcome: FilterOutcome,
    ) -> Decision {
        let Some(mut r) = self.reservation(app).cloned() else {
            return Decision::failure(FilterOutcome::FailureUnknownDemand, "reservation vanished");
        };
        // One slot per executor: forget any other slot that still names it.
        for s in r.slots.values_mut() {
            if s.pod.as_deref() == Some(key.name.as_str()) {
                s.pod = None;
            }
        }
        if let Some(s) = r.slots.get_mut(slot) {
            s.node = node.to_owned();
            s.pod = Some(key.name.clone());
        }
        self.set_reservation(app, Some(r));
        self.mark_changed(app);
        Decision::success(
            outcome,
            node,
            vec![
                Effect::SyncReservation(app.clone()),
                Effect::DeleteDemand(key.clone()),
            ],
        )
    }

    /// Where one executor of `app` goes among the offered nodes, by the configured algorithm.
    /// `vacating` is a node whose slot of this size moves away (its room counts as free).
    fn place_one_executor<S: AsRef<str>>(
        &mut self,
        app: &AppKey,
        candidates: &[S],
        executor: Resources,
        vacating: Option<NodeIdx>,
    ) -> Option<String> {
        let zone = self.app_zone(app);
        let mut offered = vec![false; self.nodes.candidates().len()];
        for i in candidates
            .iter()
            .filter_map(|n| self.nodes.index_of(n.as_ref()))
        {
            let e = self.nodes.entry(i);
            offered[i] = e.present
                && zone
                    .as_deref()
                    .is_none_or(|z| e.labels().map(zone_of) == Some(z));
        }
        let sorted: Vec<NodeIdx> = self.nodes.fullest_first().filter(|&i| offered[i]).collect();
        let hosts: std::collections::HashSet<NodeIdx> = self.app_executor_nodes(app);
        let changes: Vec<(NodeIdx, Resources)> = vacating
            .map(|i| (i, self.nodes.candidates()[i].available + executor))
            .into_iter()
            .collect();
        let algorithm: BinpackAlgorithm = self.config.binpack;
        let chosen = self.nodes.with_available(&changes, |nodes| {
            let order = crate::binpack::priority_order_presorted(nodes, sorted.iter().copied());
            let order: Vec<NodeIdx> = order
                .into_iter()
                .filter(|&i| nodes[i].accepts_executors())
                .collect();
            algorithm.place_executor(nodes, &order, executor, |i| hosts.contains(&i))
        });
        chosen.map(|i| self.nodes.entry(i).name.clone())
    }

    /// Nodes holding this application's executors (slots and soft reservations).
    fn app_executor_nodes(&self, app: &AppKey) -> std::collections::HashSet<NodeIdx> {
        let Some(a) = self.apps.get(app) else {
            return Default::default();
        };
        a.reservation
            .iter()
            .flat_map(|r| r.executor_slots().map(|(_, s)| s.node.as_str()))
            .chain(a.soft.values().map(|s| s.node.as_str()))
            .filter_map(|n| self.nodes.index_of(n))
            .collect()
    }

    /// The one zone an application runs in, when executors must stay there (single-AZ
    /// algorithm and `dynamic_executors_in_same_zone`); `None` lets it use any zone.
    fn app_zone(&self, app: &AppKey) -> Option<String> {
        if !(self.config.dynamic_executors_in_same_zone && self.config.binpack.is_single_az()) {
            return None;
        }
        let a = self.apps.get(app)?;
        let zones: std::collections::BTreeSet<&str> = a
            .driver
            .iter()
            .chain(a.executors.iter())
            .filter_map(|k| self.pods.get(k))
            .filter(|p| p.is_active_on_node())
            .filter_map(|p| p.node.as_deref())
            .filter_map(|n| self.nodes.get_by_name(n))
            .filter_map(|e| e.labels().map(zone_of))
            .collect();
        let mut it = zones.into_iter();
        match (it.next(), it.next()) {
            (Some(z), None) => Some(z.to_owned()),
            _ => None,
        }
    }
}
