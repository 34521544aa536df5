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
use super::fifo::{FifoBlock, FifoVerdict, total};
use super::keys::{AppKey, PodKey};
use super::nodes::{NodeIdx, PackingView};
use super::preemption::Preemption;
use super::queues::{HoldKind, QueueVerdict};
use super::{ClusterState, Timestamp};
use crate::api::explain::QueueHold;

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
    /// Its queue holds it back (`never`: the gang alone is over the queue's max).
    QueueHeld {
        message: String,
        hold: QueueHold,
        kind: HoldKind,
    },
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
pub(super) struct Candidates {
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
                // Behind a gang its queue holds back, more nodes would not help.
                let demand = if block.queue_limited {
                    Effect::DeleteDemand(key.clone())
                } else {
                    Effect::EnsureDemand(key.clone())
                };
                Decision::failure(FilterOutcome::FailureEarlierDriver, block.message.clone())
                    .with_effects(vec![demand])
            }
            GangVerdict::Fits(packing) => {
                self.reserve(key, &gang.app, gang.group.clone(), &gang.demand, packing)
            }
            // Held by its queue, not by capacity: no Demand asks the autoscaler for nodes. At
            // its max or its cohort full, the queue's own lower-priority gangs may be preempted.
            GangVerdict::QueueHeld {
                message,
                hold,
                kind,
            } => {
                let mut effects = vec![Effect::DeleteDemand(key.clone())];
                let mut message = message.clone();
                if !hold.never && *kind != HoldKind::Unusable {
                    let outcome = FilterOutcome::FailureQueue;
                    let (app, group, demand) = (gang.app.clone(), gang.group.clone(), gang.demand);
                    match self.preempt(key, &app, group, &demand, outcome, now) {
                        Preemption::Acted(preempting) => return preempting,
                        Preemption::Report(text, effect) => {
                            effects.push(*effect);
                            message = format!("{message}; {text}");
                        }
                        Preemption::None => {}
                    }
                }
                Decision::failure(FilterOutcome::FailureQueue, message).with_effects(effects)
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
        let lane = pod.lane();
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

        let pending = |verdict| PendingGang {
            app: app.clone(),
            demand,
            group: group.clone(),
            eligible: eligible.clone(),
            taken: Vec::new(),
            verdict,
        };
        // Its queue first: a gang its queue cannot take now waits for the queue, whatever is
        // ahead of it (and asks the autoscaler for nothing).
        if let Some(queue) = &lane.queue {
            match self.queue_verdict(queue, &demand, Resources::ZERO, now) {
                QueueVerdict::Admitted => {}
                QueueVerdict::NeverFits { message, hold } => {
                    return Ok(pending(GangVerdict::QueueHeld {
                        message,
                        hold,
                        kind: HoldKind::AtMax,
                    }));
                }
                QueueVerdict::Limited {
                    message,
                    mut hold,
                    kind,
                } => {
                    let mut message = message;
                    if let Some((at, of)) = self.lane_position(&lane, &position) {
                        hold.position = Some(at);
                        hold.queue_length = Some(of);
                        message = format!(
                            "{message}; the driver is {at} of {of} waiting in queue {queue}"
                        );
                    }
                    return Ok(pending(GangVerdict::QueueHeld {
                        message,
                        hold,
                        kind,
                    }));
                }
            }
        }

        // FIFO within its lane, after the lanes of queues that go before its queue.
        let (taken, own) = if self.config.fifo.enabled {
            let seed = match self.fair_seed(&lane, now) {
                Ok(seed) => seed,
                Err(block) => return Ok(pending(GangVerdict::Blocked(block))),
            };
            match self.walk_fifo_plan(&lane, Some(&position), &seed, now) {
                FifoVerdict::Clear(taken) => {
                    let own = total(&taken).excess_over(&total(&seed));
                    (taken, own)
                }
                FifoVerdict::Blocked(block) => return Ok(pending(GangVerdict::Blocked(block))),
            }
        } else {
            (Vec::new(), Resources::ZERO)
        };
        if let Some(queue) = &lane.queue
            && let QueueVerdict::Limited {
                message,
                mut hold,
                kind,
            } = self.queue_verdict(queue, &demand, own, now)
        {
            let mut message = message;
            if let Some((at, of)) = self.lane_position(&lane, &position) {
                hold.position = Some(at);
                hold.queue_length = Some(of);
                message = format!("{message}; the driver is {at} of {of} waiting in queue {queue}");
            }
            return Ok(pending(GangVerdict::QueueHeld {
                message,
                hold,
                kind,
            }));
        }

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
    pub(super) fn gang_exceeds_capacity(
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
}

/// Orders eligible nodes given fullest first (palantir's node priority: fullest zone, then
/// fullest node) into driver candidates (those `offered`)
/// and executor candidates (ready, not cordoned), with the configured label priorities.
pub(super) fn ordered_candidates(
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

pub(super) fn request<'a>(
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
