//! Recovery: after a restart or a leader change, make memory and the API agree again.
//!
//! Reservations are the source of truth, but writes can be lost (a crash between a decision
//! and its write) and pods can be bound while nobody listened. `reconcile` releases what
//! finished drivers still hold, gives running drivers without a reservation one (palantir §10),
//! and adopts executors that run outside any slot.

use std::collections::BTreeMap;

use crate::api::reservation::{DRIVER_SLOT, executor_slot_name};
use crate::binpack;
use crate::pods::SparkRole;

use super::ClusterState;
use super::apps::{AppReservation, Slot, SoftSlot};
use super::decision::Effect;
use super::keys::{AppKey, PodKey};

impl ClusterState {
    /// Brings reservations in line with the pods; call once all watches have synced.
    pub fn reconcile(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut apps: Vec<AppKey> = self.apps.keys().cloned().collect();
        apps.sort();
        for app in apps {
            let Some(a) = self.apps.get(&app) else {
                continue;
            };
            let driver = a.driver.as_ref().and_then(|k| self.pods.get(k));
            let driver_gone = driver.is_none_or(|d| d.finished || d.deleting);
            if a.reservation.is_some() && driver_gone {
                effects.extend(self.release_app(&app));
                continue;
            }
            let running_driver = driver.filter(|d| d.ours && d.is_active_on_node());
            if a.reservation.is_none()
                && let Some(d) = running_driver
            {
                let key = d.key.clone();
                effects.extend(self.rebuild_reservation(&app, &key));
            }
            let executors: Vec<PodKey> = self
                .apps
                .get(&app)
                .map(|a| a.executors.iter().cloned().collect())
                .unwrap_or_default();
            for e in executors {
                if self
                    .pods
                    .get(&e)
                    .is_some_and(|p| p.is_active_on_node() && p.role == Some(SparkRole::Executor))
                {
                    effects.extend(self.adopt_running_executor(&app, &e));
                }
            }
        }
        effects.sort();
        effects.dedup();
        effects
    }

    fn adopt_running_executor(&mut self, app: &AppKey, key: &PodKey) -> Vec<Effect> {
        let covered = self.apps.get(app).is_some_and(|a| {
            a.soft.contains_key(&key.name)
                || a.reservation
                    .as_ref()
                    .is_some_and(|r| r.slot_of_pod(&key.name).is_some())
        });
        if covered {
            return Vec::new();
        }
        self.adopt_executor(app, key)
    }

    /// A running driver without a reservation: its slot where it runs, executor slots where
    /// its executors run (up to the minimum), the rest packed onto free capacity, and soft
    /// reservations for executors above the minimum.
    fn rebuild_reservation(&mut self, app: &AppKey, driver: &PodKey) -> Vec<Effect> {
        let Some(d) = self.pods.get(driver) else {
            return Vec::new();
        };
        let Some(demand) = d.driver.as_ref().and_then(|i| i.demand.clone().ok()) else {
            return Vec::new();
        };
        let Some(driver_node) = d.node.clone() else {
            return Vec::new();
        };
        let group = d.instance_group.clone();
        let uid = d.uid.clone();
        let mut running: Vec<(String, String)> = self
            .apps
            .get(app)
            .map(|a| {
                a.executors
                    .iter()
                    .filter_map(|k| self.pods.get(k))
                    .filter(|p| p.is_active_on_node())
                    .filter_map(|p| p.node.clone().map(|n| (p.key.name.clone(), n)))
                    .collect()
            })
            .unwrap_or_default();
        running.sort();
        let min = demand.min_executors as usize;
        let mut slots = BTreeMap::new();
        slots.insert(
            DRIVER_SLOT.to_owned(),
            Slot {
                node: driver_node,
                resources: demand.driver,
                pod: Some(driver.name.clone()),
            },
        );
        let bound = running.len().min(min);
        for (n, (pod, node)) in running.iter().take(bound).enumerate() {
            slots.insert(
                executor_slot_name(n + 1),
                Slot {
                    node: node.clone(),
                    resources: demand.executor,
                    pod: Some(pod.clone()),
                },
            );
        }
        // Free capacity for the slots still missing: first fit in node priority order.
        let eligible = self.eligible_nodes(driver);
        let sorted = self.fullest_first_among(&eligible);
        let nodes = self.nodes.candidates();
        let order: Vec<usize> = binpack::priority_order_presorted(nodes, sorted.iter().copied())
            .into_iter()
            .filter(|&i| nodes[i].accepts_executors())
            .collect();
        let mut available: Vec<_> = order.iter().map(|&i| (i, nodes[i].available)).collect();
        for n in bound..min {
            let Some((i, avail)) = available
                .iter_mut()
                .find(|(_, a)| demand.executor.fits_in(a))
            else {
                break;
            };
            *avail -= demand.executor;
            slots.insert(
                executor_slot_name(n + 1),
                Slot {
                    node: self.nodes.entry(*i).name.clone(),
                    resources: demand.executor,
                    pod: None,
                },
            );
        }
        self.set_reservation(
            app,
            Some(AppReservation {
                slots,
                instance_group: group,
                driver_name: driver.name.clone(),
                driver_uid: uid,
                resource_version: None,
                preempting: Vec::new(),
            }),
        );
        self.mark_changed(app);
        let extra = demand.max_executors.saturating_sub(demand.min_executors) as usize;
        for (pod, node) in running.into_iter().skip(bound).take(extra) {
            self.set_soft(
                app,
                &pod,
                Some(SoftSlot {
                    node,
                    resources: demand.executor,
                }),
            );
        }
        vec![Effect::SyncReservation(app.clone())]
    }
}
