//! The FIFO walk of a lane: its pending drivers simulated in order against the free capacity
//! (after what lanes ahead in the fair order take), each that fits taking its place, up to the
//! first enforced driver that does not fit — or does not fit its queue's limits.

use crate::resources::Resources;

use super::driver::{gang_text, ordered_candidates, request};
use super::fifo::{
    FifoBlock, FifoVerdict, Lane, PlannedDriver, QueuePosition, Taken, seed_fingerprint, total,
};
use super::keys::PodKey;
use super::nodes::NodeIdx;
use super::pod_entry::PodEntry;
use super::queues::QueueVerdict;
use super::{ClusterState, Timestamp};
use crate::api::explain::Blocker;

impl ClusterState {
    /// The FIFO walk of `lane` up to (not including) queue position `bound`, or over the
    /// whole lane (`None`), after what other lanes take first (`seed`, per node).
    ///
    /// The cached plan is revalidated, not rebuilt: an older driver's simulated placement is
    /// kept while it still fits the current capacity (after the drivers before it); only
    /// drivers whose placement no longer fits, whose reservation state changed, or that did
    /// not fit at an older epoch (or after other lanes took differently) are simulated again.
    /// The walk stops at the first enforced driver that does not fit.
    ///
    /// Before the plan's `changed_from` position no driver joined or left the lane or changed
    /// reservation state since the last walk, so there the plan is walked on its own (no
    /// queue, pod or reservation lookups): each driver's placement is checked against the
    /// current capacity only. From there on, each lane driver is matched with the plan as
    /// before.
    pub(super) fn walk_fifo_plan(
        &mut self,
        lane: &Lane,
        bound: Option<&QueuePosition>,
        seed: &[(NodeIdx, Resources)],
        now: Timestamp,
    ) -> FifoVerdict {
        let epoch = self.plan_epoch;
        let shape_epoch = self.nodes.shape_epoch;
        let mut plan = self.fifo.plans.remove(lane).unwrap_or_default();
        let mut taken = std::mem::take(&mut self.fifo.taken);
        taken.reset(self.nodes.candidates().len());
        taken.add(seed);
        let fingerprint = seed_fingerprint(seed);
        let seed_unchanged = plan.seed == fingerprint;
        plan.seed = fingerprint;
        // What the lane's drivers walked so far take in all (its queue's simulated share).
        let mut own = Resources::ZERO;
        let group = lane.group.as_str();
        let enforce_after = self.config.fifo.enforce_after(group).as_secs_f64();
        let before_bound = |at: &QueuePosition| bound.is_none_or(|b| at < b);
        let mut prefix_unchanged = seed_unchanged;
        let mut blocked_at: Option<usize> = None;
        // Accounts for planned driver `d`; true when it blocks the walk.
        let account = |d: &PlannedDriver, taken: &mut Taken, own: &mut Resources| match &d.takes {
            Some(t) => {
                taken.add(t);
                *own += total(t);
                false
            }
            None => now.duration_since(d.at.created).as_secs_f64() >= enforce_after,
        };

        // The unchanged prefix: the plan alone.
        let mut i = 0;
        if !self.fifo.shared_app_ids {
            while let Some(d) = plan.drivers.get(i) {
                if !before_bound(&d.at) || plan.changed_from.as_ref().is_some_and(|c| &d.at >= c) {
                    break;
                }
                let reusable = (!d.never_fits || d.shape_epoch == shape_epoch)
                    && match &d.takes {
                        Some(t) => self.takes_still_fit(t, &taken),
                        None => seed_unchanged && d.seed == fingerprint && d.computed_at == epoch,
                    };
                if !reusable {
                    break;
                }
                if account(d, &mut taken, &mut own) {
                    blocked_at = Some(i);
                    break;
                }
                i += 1;
            }
        }

        // The rest: lane driver by lane driver.
        if blocked_at.is_none() {
            use std::ops::Bound::{Excluded, Unbounded};
            let end = match bound {
                Some(b) => Excluded(b.clone()),
                None => Unbounded,
            };
            let mut start = match i.checked_sub(1).and_then(|j| plan.drivers.get(j)) {
                Some(d) => Excluded(d.at.clone()),
                None => Unbounded,
            };
            // One lane driver at a time (the walk often stops early: no copy of the rest).
            while let Some(at) = self
                .pending_drivers
                .get(lane)
                .and_then(|q| q.range((start.clone(), end.clone())).next().cloned())
            {
                start = Excluded(at.clone());
                let k = &at.key;
                let reserved = self.driver_has_reservation(k);
                let reusable = plan.drivers.get(i).is_some_and(|d| {
                    d.at.key == *k
                        && d.reserved == reserved
                        && (!d.never_fits || d.shape_epoch == shape_epoch)
                        && match &d.takes {
                            Some(t) => self.takes_still_fit(t, &taken),
                            None => {
                                prefix_unchanged && d.seed == fingerprint && d.computed_at == epoch
                            }
                        }
                });
                if !reusable {
                    plan.drivers.truncate(i);
                    prefix_unchanged = false;
                    let changes = self.nodes.after_taking(&taken.per_node());
                    let mut planned =
                        self.simulate_driver(&at, lane, own, &changes, epoch, reserved, now);
                    planned.seed = fingerprint;
                    self.fifo.simulations += 1;
                    plan.drivers.push(planned);
                }
                let Some(d) = plan.drivers.get(i) else { break };
                if account(d, &mut taken, &mut own) {
                    blocked_at = Some(i);
                    break;
                }
                i += 1;
            }
        }

        // Everything before where the walk ended is verified now; plan entries from the
        // first one the walk did not reach are not (some may be drivers that left the queue).
        let walked = blocked_at.map_or(i, |b| b + 1);
        if let Some(changed) = plan.changed_from.take() {
            let reached = match blocked_at.and_then(|b| plan.drivers.get(b)) {
                Some(d) => Some(d.at.clone()),
                None => bound.cloned(),
            };
            let mut from = match reached {
                Some(r) => changed.max(r),
                None => changed,
            };
            if let Some(d) = plan.drivers.get(walked) {
                from = from.min(d.at.clone());
            }
            // Without a bound the whole lane was walked: nothing before the end changed.
            plan.changed_from =
                (bound.is_some() || blocked_at.is_some() || walked < plan.drivers.len())
                    .then_some(from);
        }
        let verdict = match blocked_at.and_then(|b| plan.drivers.get(b)) {
            Some(d) => {
                let age = now.duration_since(d.at.created).as_secs_f64();
                let group_text = match (&lane.queue, group.is_empty()) {
                    (Some(q), true) => format!(" of queue {q}"),
                    (Some(q), false) => format!(" of queue {q} (instance group {group})"),
                    (None, true) => String::new(),
                    (None, false) => format!(" of instance group {group}"),
                };
                let higher_priority = bound.is_some_and(|me| d.at.priority() > me.priority());
                let ahead = if higher_priority {
                    format!(
                        "application {} of higher priority {}",
                        d.app_id,
                        d.at.priority()
                    )
                } else {
                    format!("the older application {}", d.app_id)
                };
                FifoVerdict::Blocked(Box::new(FifoBlock {
                    message: format!(
                        "waiting for {ahead} (driver {}, pending {:.0}s){group_text}, which must be placed first but does not fit: {}",
                        d.at.key, age, d.why
                    ),
                    blocker: Blocker {
                        app_id: d.app_id.clone(),
                        driver: d.at.key.to_string(),
                        priority: d.at.priority(),
                        higher_priority,
                        pending_seconds: age.max(0.0) as u64,
                        enforce_after_seconds: enforce_after as u64,
                        why: d.why.clone(),
                    },
                    queue_limited: d.queue_limited,
                    taken: taken.per_node(),
                }))
            }
            None => FifoVerdict::Clear(taken.per_node()),
        };
        self.fifo.plans.insert(lane.clone(), plan);
        self.fifo.taken = taken;
        verdict
    }

    fn driver_has_reservation(&self, key: &PodKey) -> bool {
        self.pods
            .get(key)
            .and_then(|p| p.app.as_ref())
            .is_some_and(|a| self.reservation(a).is_some())
    }

    /// True when a simulated placement still fits the current capacity after `before`.
    fn takes_still_fit(&self, takes: &[(NodeIdx, Resources)], before: &Taken) -> bool {
        let nodes = self.nodes.candidates();
        takes.iter().all(|&(n, r)| {
            nodes
                .get(n)
                .is_some_and(|c| c.accepts_executors() && (r + before.on(n)).fits_in(&c.available))
        })
    }

    /// Where an older pending driver of `lane` would go now, after `taken` (`changes`), its
    /// queue holding `own` more than its reservations (what the drivers before it in the lane
    /// take).
    #[allow(clippy::too_many_arguments)]
    fn simulate_driver(
        &mut self,
        at: &QueuePosition,
        lane: &Lane,
        own: Resources,
        changes: &[(NodeIdx, Resources)],
        epoch: u64,
        reserved: bool,
        now: Timestamp,
    ) -> PlannedDriver {
        let key = &at.key;
        let pod: Option<&PodEntry> = self.pods.get(key);
        let app_id = pod
            .and_then(|p| p.app.as_ref())
            .map(|a| a.app_id.clone())
            .unwrap_or_default();
        let gated = pod.and_then(|p| p.driver.as_ref()).is_some_and(|d| d.gated);
        let demand = pod
            .and_then(|p| p.driver.as_ref())
            .and_then(|d| d.demand.clone().ok());
        let mut planned = PlannedDriver {
            at: at.clone(),
            app_id,
            takes: Some(Vec::new()),
            why: String::new(),
            computed_at: epoch,
            reserved,
            queue_limited: false,
            seed: 0,
            never_fits: false,
            shape_epoch: self.nodes.shape_epoch,
        };
        // An older driver still gated has its demand read right now (milliseconds, at most
        // the gate timeout): younger drivers wait for it, or FIFO would depend on which
        // ConfigMap the gate controller reads first.
        if gated && !reserved {
            planned.takes = None;
            planned.why = "its demand is still being read from its spark.properties".to_owned();
            return planned;
        }
        // A driver that already holds its reservation is counted by it (palantir quirk 2); one
        // whose demand is unknown cannot be simulated and blocks nobody.
        let Some(demand) = demand.filter(|_| !reserved) else {
            return planned;
        };
        if let Some(queue) = &lane.queue {
            match self.queue_verdict(queue, &demand, own, now) {
                QueueVerdict::Admitted => {}
                // It waits on its own and holds back nobody (as a gang over capacity).
                QueueVerdict::NeverFits { .. } => {
                    planned.never_fits = true;
                    return planned;
                }
                QueueVerdict::Limited { message, .. } => {
                    planned.takes = None;
                    planned.queue_limited = true;
                    planned.why = message;
                    return planned;
                }
            }
        }
        let eligible = self.eligible_nodes(key);
        let sorted = self.fullest_first_among(&eligible);
        let algorithm = self.config.binpack;
        let result = self.nodes.with_available_zoned(changes, |view| {
            let order = ordered_candidates(&self.config, view, &sorted, |i| {
                view.nodes[i].accepts_executors()
            });
            algorithm.pack(&request(view.nodes, &order, &demand))
        });
        match result {
            Ok(p) => planned.takes = Some(p.reserved_per_node()),
            // A gang that could not fit even on empty nodes would block its queue forever;
            // it waits on its own (with `failure-exceeds-capacity`) instead.
            Err(_) if self.gang_exceeds_capacity(&eligible, &demand) => planned.never_fits = true,
            Err(why) => {
                planned.takes = None;
                planned.why = format!("{} — {why}", gang_text(&demand));
            }
        }
        planned
    }
}
