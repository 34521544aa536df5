//! Driver decisions: gang admission with FIFO, and the driver's reservation.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::affinity;
use crate::api::reservation::{DRIVER_SLOT, executor_slot_name};
use crate::binpack::{self, Packing, PackingFailure, PackingRequest, PackingResult};
use crate::gang_demand::GangDemand;
use crate::pods::SparkRole;
use crate::resources::Resources;

use super::apps::{AppReservation, Slot};
use super::config::SchedulerConfig;
use super::decision::{Decision, Effect, FilterOutcome};
use super::fifo::{FifoBlock, FifoVerdict, PlannedDriver, QueuePosition};
use super::keys::{AppKey, PodKey};
use super::nodes::{NodeIdx, PackingView};
use super::pod_entry::PodEntry;
use super::preemption::Preemption;
use super::{ClusterState, Timestamp};
use crate::api::explain::Blocker;

/// The nodes one driver placement allows, as a list and as a mask by node index.
#[derive(Debug, Default)]
pub(super) struct EligibleNodes {
    pub list: Vec<NodeIdx>,
    pub mask: Vec<bool>,
}

/// What the decision code concludes about a pending driver's gang.
pub(super) struct PendingGang {
    pub app: AppKey,
    pub demand: GangDemand,
    pub group: Option<String>,
    pub eligible: Arc<EligibleNodes>,
    /// What the drivers ahead in the queue that fit take first, per node.
    pub taken: Vec<(NodeIdx, Resources)>,
    pub verdict: GangVerdict,
}

/// Where a pending gang stands.
pub(super) enum GangVerdict {
    /// It could not fit its nodes even if they were empty: it waits on its own, whatever is
    /// ahead of it in the queue (and holds back nobody).
    NeverFits,
    /// A driver ahead in the queue must be placed first.
    Blocked(Box<FifoBlock>),
    /// It fits: this packing.
    Fits(Packing),
    /// It does not fit now.
    DoesNotFit(PackingFailure),
}

/// The failure message of a gang that does not fit now (`failure`) or never (`None`): the
/// `FailedScheduling` text.
pub(super) fn fit_failure_message(gang: &PendingGang, failure: Option<&PackingFailure>) -> String {
    let group_text = gang
        .group
        .as_deref()
        .map_or_else(String::new, |g| format!(" in instance group {g}"));
    match failure {
        None => format!(
            "application {} can never fit{group_text}: even with every node empty, {}",
            gang.app.app_id,
            gang_text(&gang.demand)
        ),
        Some(failure) => format!(
            "application {} does not fit{group_text}: {} — {failure}",
            gang.app.app_id,
            gang_text(&gang.demand)
        ),
    }
}

/// The ordered candidates of one packing.
struct Candidates {
    driver: Vec<NodeIdx>,
    executor: Vec<NodeIdx>,
}

impl ClusterState {
    /// Decides one kube-scheduler filter call: where `pod` goes among `candidates`.
    ///
    /// A pod the state has not seen yet (kube-scheduler can be ahead of our watch) is added
    /// first. On success the node is one of `candidates`; on failure the message says why.
    ///
    /// `candidates` are node names (`String`s, or `&str`s borrowed from a request body).
    pub fn filter<S: AsRef<str>>(
        &mut self,
        pod: &Pod,
        candidates: &[S],
        now: Timestamp,
    ) -> Decision {
        let Some(key) = PodKey::of(pod) else {
            return Decision::failure(FilterOutcome::FailureNonSparkPod, "the pod has no name");
        };
        let mut effects = Vec::new();
        if !self.pods.contains_key(&key) {
            effects = self.apply_pod(pod);
        }
        let role = self.pods.get(&key).and_then(|p| p.role);
        let decision = match role {
            Some(SparkRole::Driver) => {
                let decision = self.filter_driver(&key, candidates, now);
                self.remember_decision(&key, &decision, now);
                decision
            }
            Some(SparkRole::Executor) => self.filter_executor(&key, candidates),
            None => Decision::failure(
                FilterOutcome::FailureNonSparkPod,
                "not a Spark pod: sparkgang schedules pods labelled spark-role=driver or spark-role=executor",
            ),
        };
        decision.with_effects(effects)
    }

    /// Keeps a driver's last decision for the explain API, and when its gang was placed.
    fn remember_decision(&mut self, key: &PodKey, decision: &Decision, now: Timestamp) {
        let Some(app) = self.pods.get(key).and_then(|p| p.app.as_ref()) else {
            return;
        };
        if let Some(entry) = self.apps.get_mut(app) {
            // Placed: a new reservation, or one taken by preemption whose victims have left.
            let preempted_for = entry
                .last_decision
                .as_ref()
                .is_some_and(|(o, _, _)| *o == FilterOutcome::FailurePreempting);
            if decision.outcome == FilterOutcome::Success
                || (decision.outcome == FilterOutcome::SuccessAlreadyBound && preempted_for)
            {
                entry.placed_at = Some(now);
            }
            entry.last_decision = Some((decision.outcome, decision.message.clone(), now));
        }
    }

    fn filter_driver<S: AsRef<str>>(
        &mut self,
        key: &PodKey,
        candidates: &[S],
        now: Timestamp,
    ) -> Decision {
        let Some(pod) = self.pods.get(key) else {
            return Decision::failure(FilterOutcome::FailureUnknownDemand, "unknown pod");
        };
        let Some(app) = pod.app.clone() else {
            return Decision::failure(
                FilterOutcome::FailureUnknownDemand,
                "the driver has neither a spark-app-id nor a spark-app-selector label",
            );
        };
        if let Some(node) = self.reservation(&app).and_then(|r| r.driver_node()) {
            if let Some(short) = self.overcommitted(node)
                && self.pods_leaving(&app, node)
            {
                // Its places are held while the pods they were taken from leave (preemption):
                // binding now would put more on the node than it has. (A node over-committed
                // only by pods that stay, say ones another scheduler put there, does not hold
                // the driver back: that is as before preemption.)
                let left = self.evictions_left(&app);
                return Decision::failure(
                    FilterOutcome::FailurePreempting,
                    format!(
                        "application {} has its places held on node {node}, which pods being \
                         evicted for it still occupy ({short} over); waiting for them to leave",
                        app.app_id
                    ),
                )
                .with_effects(left);
            }
            return if candidates.iter().any(|c| c.as_ref() == node) {
                Decision::success(FilterOutcome::SuccessAlreadyBound, node, Vec::new())
            } else {
                Decision::failure(
                    FilterOutcome::FailureReservedNodeUnavailable,
                    format!(
                        "application {} has its driver reserved on node {node}, which is not among \
                         the {} nodes kube-scheduler offered; waiting for {node}",
                        app.app_id,
                        candidates.len()
                    ),
                )
            };
        }
        let offered = self.nodes.offered_mask(candidates);
        let gang = match self.assess_pending(key, app, Some(&offered), now) {
            Ok(gang) => gang,
            Err(why) => return Decision::failure(FilterOutcome::FailureUnknownDemand, why),
        };
        match &gang.verdict {
            GangVerdict::Blocked(block) => {
                Decision::failure(FilterOutcome::FailureEarlierDriver, block.message.clone())
                    .with_effects(vec![Effect::EnsureDemand(key.clone())])
            }
            GangVerdict::Fits(packing) => {
                self.reserve(key, &gang.app, gang.group.clone(), &gang.demand, packing)
            }
            GangVerdict::NeverFits | GangVerdict::DoesNotFit(_) => {
                let failure = match &gang.verdict {
                    GangVerdict::DoesNotFit(f) => Some(f),
                    _ => None,
                };
                let exceeds = failure.is_none();
                let outcome = if exceeds {
                    FilterOutcome::FailureExceedsCapacity
                } else {
                    FilterOutcome::FailureFit
                };
                let message = fit_failure_message(&gang, failure);
                let mut effects = vec![Effect::EnsureDemand(key.clone())];
                let (app, group, demand) = (gang.app, gang.group, gang.demand);
                let message = match self.preempt(key, &app, group, &demand, outcome, now) {
                    Preemption::Acted(preempting) => return preempting,
                    Preemption::Report(text, effect) => {
                        effects.push(*effect);
                        format!("{message}; {text}")
                    }
                    Preemption::None => message,
                };
                if exceeds {
                    effects.push(Effect::ReportExceedsCapacity {
                        pod: key.clone(),
                        message: message.clone(),
                    });
                }
                Decision::failure(outcome, message).with_effects(effects)
            }
        }
    }

    /// What the decision code concludes about the gang of pending driver `key` (one without a
    /// reservation): whether it could fit its nodes at all, then FIFO, then a packing with the
    /// driver on an `offered` node (`None`: any node that takes pods). `Err` says why its
    /// demand is unknown. The filter acts on this; the explain API reports it.
    pub(super) fn assess_pending(
        &mut self,
        key: &PodKey,
        app: AppKey,
        offered: Option<&[bool]>,
        now: Timestamp,
    ) -> Result<PendingGang, String> {
        let Some(pod) = self.pods.get(key) else {
            return Err("unknown pod".to_owned());
        };
        let demand = match pod.driver.as_ref().map(|d| d.demand.clone()) {
            Some(Ok(d)) => d,
            Some(Err(why)) => return Err(why),
            None => return Err("not a driver".to_owned()),
        };
        let group = pod.instance_group.clone();
        let position = pod.queue_position();
        let eligible = self.eligible_nodes(key);
        // Cached per placement and demand: a gang that can never fit is told so at once, not
        // after the drivers ahead of it (FIFO lets it hold back nobody either).
        if self.gang_exceeds_capacity(&eligible, &demand) {
            return Ok(PendingGang {
                app,
                demand,
                group,
                eligible,
                taken: Vec::new(),
                verdict: GangVerdict::NeverFits,
            });
        }

        let taken = if self.config.fifo.enabled {
            match self.fifo_verdict(group.as_deref().unwrap_or(""), &position, now) {
                FifoVerdict::Clear(taken) => taken,
                FifoVerdict::Blocked(block) => {
                    return Ok(PendingGang {
                        app,
                        demand,
                        group,
                        eligible,
                        taken: Vec::new(),
                        verdict: GangVerdict::Blocked(block),
                    });
                }
            }
        } else {
            Vec::new()
        };

        let changes = self.nodes.after_taking(&taken);
        let sorted = self.fullest_first_among(&eligible);
        let algorithm = self.config.binpack;
        let result = self.nodes.with_available_zoned(&changes, |view| {
            let order = ordered_candidates(&self.config, view, &sorted, |i| match offered {
                Some(mask) => mask.get(i).copied().unwrap_or(false),
                None => view.nodes[i].accepts_executors(),
            });
            algorithm.pack(&request(view.nodes, &order, &demand))
        });
        let verdict = match result {
            Ok(packing) => GangVerdict::Fits(packing),
            Err(failure) => GangVerdict::DoesNotFit(failure),
        };
        Ok(PendingGang {
            app,
            demand,
            group,
            eligible,
            taken,
            verdict,
        })
    }

    /// Writes the reservation of a driver that fits.
    pub(super) fn reserve(
        &mut self,
        key: &PodKey,
        app: &AppKey,
        group: Option<String>,
        demand: &GangDemand,
        packing: &Packing,
    ) -> Decision {
        let name_of = |i: NodeIdx| self.nodes.entry(i).name.clone();
        let driver_node = name_of(packing.driver_node);
        let mut slots = BTreeMap::new();
        slots.insert(
            DRIVER_SLOT.to_owned(),
            Slot {
                node: driver_node.clone(),
                resources: demand.driver,
                pod: Some(key.name.clone()),
            },
        );
        for (n, &i) in packing.executor_nodes.iter().enumerate() {
            slots.insert(
                executor_slot_name(n + 1),
                Slot {
                    node: name_of(i),
                    resources: demand.executor,
                    pod: None,
                },
            );
        }
        let uid = self
            .pods
            .get(key)
            .map(|p| p.uid.clone())
            .unwrap_or_default();
        self.set_reservation(
            app,
            Some(AppReservation {
                slots,
                instance_group: group,
                driver_name: key.name.clone(),
                driver_uid: uid,
                resource_version: None,
                preempting: Vec::new(),
            }),
        );
        self.mark_changed(app);
        Decision::success(
            FilterOutcome::Success,
            driver_node,
            vec![
                Effect::SyncReservation(app.clone()),
                Effect::DeleteDemand(key.clone()),
            ],
        )
    }

    /// The nodes the driver's `nodeSelector`, required node affinity and tolerations allow,
    /// cached per placement until a node changes shape.
    pub(super) fn eligible_nodes(&mut self, key: &PodKey) -> Arc<EligibleNodes> {
        let Some(info) = self.pods.get(key).and_then(|p| p.driver.as_ref()) else {
            return Arc::new(EligibleNodes::default());
        };
        let epoch = self.nodes.shape_epoch;
        if let Some((e, nodes)) = self.eligible.get(&info.placement_signature)
            && *e == epoch
        {
            return nodes.clone();
        }
        let mut eligible = EligibleNodes {
            list: Vec::new(),
            mask: vec![false; self.nodes.candidates().len()],
        };
        for i in self.nodes.present_indices() {
            let m = &self.nodes.entry(i).matcher;
            if affinity::required_node_match(&info.placement, m)
                && affinity::tolerates_node_taints(&info.placement, m)
            {
                eligible.list.push(i);
                eligible.mask[i] = true;
            }
        }
        let eligible = Arc::new(eligible);
        self.eligible
            .insert(info.placement_signature.clone(), (epoch, eligible.clone()));
        eligible
    }

    /// The eligible nodes, fullest first by current availability (no sorting: the node table
    /// keeps this order).
    pub(super) fn fullest_first_among(&self, eligible: &EligibleNodes) -> Vec<NodeIdx> {
        self.nodes
            .fullest_first()
            .filter(|&i| eligible.mask.get(i).copied().unwrap_or(false))
            .collect()
    }

    /// True when the gang could not fit its nodes even if they were empty. Cached per
    /// placement and demand until a node changes shape.
    fn gang_exceeds_capacity(
        &mut self,
        eligible: &Arc<EligibleNodes>,
        demand: &GangDemand,
    ) -> bool {
        // Eligible sets live in `self.eligible` for their whole shape epoch, so within an
        // epoch the address names the set.
        let key = (Arc::as_ptr(eligible) as usize, *demand);
        let epoch = self.nodes.shape_epoch;
        if let Some(&(e, exceeds)) = self.exceeds_capacity.get(&key)
            && e == epoch
        {
            return exceeds;
        }
        let exceeds = self.pack_on_empty_nodes(eligible, demand);
        if self.exceeds_capacity.len() > 10_000 {
            self.exceeds_capacity.clear();
        }
        self.exceeds_capacity.insert(key, (epoch, exceeds));
        exceeds
    }

    /// Packs `demand` on the `eligible` nodes with each node's available resources raised by
    /// `extra` (what evicting some pods would free), nodes ordered afresh by that
    /// availability. Preemption asks this of candidate victim sets.
    pub(super) fn pack_with_freed(
        &mut self,
        eligible: &EligibleNodes,
        demand: &GangDemand,
        extra: &[(NodeIdx, Resources)],
    ) -> PackingResult {
        let changes: Vec<(NodeIdx, Resources)> = extra
            .iter()
            .filter(|(i, _)| eligible.mask.get(*i).copied().unwrap_or(false))
            .map(|&(i, r)| (i, self.nodes.candidates()[i].available + r))
            .collect();
        let algorithm = self.config.binpack;
        self.nodes.with_available_zoned(&changes, |view| {
            let sorted = binpack::priority_order_among(view.nodes, &eligible.list);
            let order = ordered_candidates(&self.config, view, &sorted, |i| {
                view.nodes[i].accepts_executors()
            });
            algorithm.pack(&request(view.nodes, &order, demand))
        })
    }

    fn pack_on_empty_nodes(&mut self, eligible: &EligibleNodes, demand: &GangDemand) -> bool {
        let changes: Vec<(NodeIdx, Resources)> = eligible
            .list
            .iter()
            .map(|&i| (i, self.nodes.entry(i).allocatable))
            .collect();
        let algorithm = self.config.binpack;
        let result: PackingResult = self.nodes.with_available_zoned(&changes, |view| {
            // On empty nodes the fullest-first order is by allocatable: order them afresh.
            let sorted = binpack::priority_order_among(view.nodes, &eligible.list);
            let order = ordered_candidates(&self.config, view, &sorted, |_| true);
            algorithm.pack(&request(view.nodes, &order, demand))
        });
        result.is_err()
    }

    /// Whether the driver at queue position `me` may go ahead, and what the drivers ahead of it
    /// in its group's queue that fit will take first.
    ///
    /// The cached plan is revalidated, not rebuilt: an older driver's simulated placement is
    /// kept while it still fits the current capacity (after the drivers before it); only
    /// drivers whose placement no longer fits, whose reservation state changed, or that did
    /// not fit at an older epoch are simulated again. The walk stops at the first enforced
    /// driver that does not fit.
    fn fifo_verdict(&mut self, group: &str, me: &QueuePosition, now: Timestamp) -> FifoVerdict {
        self.walk_fifo_plan(group, Some(me), now)
    }

    /// The FIFO walk of `group` up to (not including) queue position `bound`, or over the
    /// whole queue (`None`).
    ///
    /// Before the plan's `changed_from` position no driver joined or left the queue or changed
    /// reservation state since the last walk, so there the plan is walked on its own (no
    /// queue, pod or reservation lookups): each driver's placement is checked against the
    /// current capacity only. From there on, each queue driver is matched with the plan as
    /// before.
    pub(super) fn walk_fifo_plan(
        &mut self,
        group: &str,
        bound: Option<&QueuePosition>,
        now: Timestamp,
    ) -> FifoVerdict {
        let epoch = self.plan_epoch;
        let shape_epoch = self.nodes.shape_epoch;
        let mut plan = self.fifo.plans.remove(group).unwrap_or_default();
        let mut taken = std::mem::take(&mut self.fifo.taken);
        taken.reset(self.nodes.candidates().len());
        let enforce_after = self.config.fifo.enforce_after(group).as_secs_f64();
        let before_bound = |at: &QueuePosition| bound.is_none_or(|b| at < b);
        let mut prefix_unchanged = true;
        let mut blocked_at: Option<usize> = None;
        // Accounts for planned driver `d`; true when it blocks the walk.
        let account = |d: &PlannedDriver, taken: &mut super::fifo::Taken| match &d.takes {
            Some(t) => {
                taken.add(t);
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
                        None => d.computed_at == epoch,
                    };
                if !reusable {
                    break;
                }
                if account(d, &mut taken) {
                    blocked_at = Some(i);
                    break;
                }
                i += 1;
            }
        }

        // The rest: queue driver by queue driver.
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
            // One queue driver at a time (the walk often stops early: no copy of the rest).
            while let Some(at) = self
                .pending_drivers
                .get(group)
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
                            None => prefix_unchanged && d.computed_at == epoch,
                        }
                });
                if !reusable {
                    plan.drivers.truncate(i);
                    prefix_unchanged = false;
                    let changes = self.nodes.after_taking(&taken.per_node());
                    let planned = self.simulate_driver(&at, &changes, epoch, reserved);
                    self.fifo.simulations += 1;
                    plan.drivers.push(planned);
                }
                let Some(d) = plan.drivers.get(i) else { break };
                if account(d, &mut taken) {
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
            // Without a bound the whole queue was walked: nothing before the end changed.
            plan.changed_from =
                (bound.is_some() || blocked_at.is_some() || walked < plan.drivers.len())
                    .then_some(from);
        }
        let verdict = match blocked_at.and_then(|b| plan.drivers.get(b)) {
            Some(d) => {
                let age = now.duration_since(d.at.created).as_secs_f64();
                let group_text = if group.is_empty() {
                    String::new()
                } else {
                    format!(" of instance group {group}")
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
                }))
            }
            None => FifoVerdict::Clear(taken.per_node()),
        };
        self.fifo.plans.insert(group.to_owned(), plan);
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
    fn takes_still_fit(&self, takes: &[(NodeIdx, Resources)], before: &super::fifo::Taken) -> bool {
        let nodes = self.nodes.candidates();
        takes.iter().all(|&(n, r)| {
            nodes
                .get(n)
                .is_some_and(|c| c.accepts_executors() && (r + before.on(n)).fits_in(&c.available))
        })
    }

    /// Where an older pending driver would go now, after `taken`.
    fn simulate_driver(
        &mut self,
        at: &QueuePosition,
        changes: &[(NodeIdx, Resources)],
        epoch: u64,
        reserved: bool,
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

/// Orders eligible nodes given fullest first (palantir's node priority: fullest zone, then
/// fullest node) into driver candidates (those `offered`)
/// and executor candidates (ready, not cordoned), with the configured label priorities.
fn ordered_candidates(
    config: &SchedulerConfig,
    view: PackingView<'_>,
    fullest_first: &[NodeIdx],
    offered: impl Fn(NodeIdx) -> bool,
) -> Candidates {
    let nodes = view.nodes;
    let order = binpack::priority_order_presorted_zoned(
        nodes,
        fullest_first.iter().copied(),
        view.zone_ids,
        view.zone_count,
    );
    let mut c = Candidates {
        driver: order.iter().copied().filter(|&i| offered(i)).collect(),
        executor: order
            .iter()
            .copied()
            .filter(|&i| nodes[i].accepts_executors())
            .collect(),
    };
    if let Some(p) = &config.driver_node_priority {
        binpack::apply_label_priority(&mut c.driver, nodes, p);
    }
    if let Some(p) = &config.executor_node_priority {
        binpack::apply_label_priority(&mut c.executor, nodes, p);
    }
    c
}

fn request<'a>(
    nodes: &'a [binpack::CandidateNode],
    order: &'a Candidates,
    demand: &GangDemand,
) -> PackingRequest<'a> {
    PackingRequest {
        nodes,
        driver_order: &order.driver,
        executor_order: &order.executor,
        driver: demand.driver,
        executor: demand.executor,
        executor_count: demand.min_executors as usize,
    }
}

/// "driver (cpu 1, memory 1408Mi) + 8 executors (cpu 2, memory 4505Mi each)".
pub(super) fn gang_text(d: &GangDemand) -> String {
    format!(
        "driver ({}) + {} executor{} ({} each)",
        d.driver,
        d.min_executors,
        if d.min_executors == 1 { "" } else { "s" },
        d.executor
    )
}
