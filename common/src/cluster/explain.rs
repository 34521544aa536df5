//! The explain API over the state: each application's state and the reason for it, computed
//! by the decision code itself ([`ClusterState::assess_pending`], FIFO's blocker, the capacity
//! check), and each instance group's capacity and queue.

use std::collections::{BTreeMap, HashMap};

use crate::affinity;
use crate::api::explain::{
    AppExplanation, AppState, AppSummary, DemandView, EXPLAIN_API_VERSION, ExecutorCounts,
    GroupCapacity, LastDecision, NeverFits, NodeCapacity, QueuedApp, Reason, Shortfall, SlotView,
    ZoneRoom,
};
use crate::binpack::PackingFailure;
use crate::gang_demand::GangDemand;
use crate::resources::Resources;

use super::apps::AppEntry;
use super::driver::{GangVerdict, PendingGang, fit_failure_message};
use super::fifo::QueuePosition;
use super::keys::{AppKey, PodKey};
use super::pod_entry::PodEntry;
use super::queues::HoldKind;
use super::{ClusterState, Timestamp};

/// At most this many drivers ahead are listed in a `waiting-behind` reason.
const AHEAD_LISTED: usize = 20;

impl ClusterState {
    /// Every application the state knows (of `namespace`, if given), by namespace and app id.
    pub fn app_summaries(&self, namespace: Option<&str>) -> Vec<AppSummary> {
        let mut apps: Vec<(&AppKey, &AppEntry)> = self
            .apps
            .iter()
            .filter(|(k, _)| namespace.is_none_or(|n| k.namespace == n))
            .collect();
        apps.sort_by(|a, b| a.0.cmp(b.0));
        // Queue positions in one pass per queue (not one walk per application).
        let mut positions: HashMap<&PodKey, (usize, usize)> = HashMap::new();
        for q in self.pending_drivers.values() {
            for (i, at) in q.iter().enumerate() {
                positions.insert(&at.key, (i + 1, q.len()));
            }
        }
        apps.into_iter()
            .map(|(k, e)| {
                let at = e.driver.as_ref().and_then(|d| positions.get(d)).copied();
                self.summary(k, e, at)
            })
            .collect()
    }

    /// One application with the reason for its state, in words and in data; `None` when the
    /// state does not know it.
    pub fn explain_app(&mut self, app: &AppKey, now: Timestamp) -> Option<AppExplanation> {
        let entry = self.apps.get(app)?;
        let position = entry
            .driver
            .as_ref()
            .and_then(|d| self.queue_position_of(d));
        let summary = self.summary(app, entry, position);
        let last_decision =
            entry
                .last_decision
                .as_ref()
                .map(|(outcome, message, at)| LastDecision {
                    outcome: outcome.as_str().to_owned(),
                    message: message.clone(),
                    at: at.to_string(),
                });
        let slots: Vec<SlotView> = entry
            .reservation
            .iter()
            .flat_map(|r| r.slots.iter())
            .map(|(name, s)| SlotView {
                name: name.clone(),
                node: s.node.clone(),
                resources: s.resources,
                pod: s.pod.clone(),
            })
            .collect();
        let soft: Vec<SlotView> = entry
            .soft
            .iter()
            .map(|(pod, s)| SlotView {
                name: pod.clone(),
                node: s.node.clone(),
                resources: s.resources,
                pod: Some(pod.clone()),
            })
            .collect();
        let driver = entry.driver.clone();
        let (reason, message) = self.reason(app, driver.as_ref(), &summary, now);
        Some(AppExplanation {
            api_version: EXPLAIN_API_VERSION.to_owned(),
            app: summary,
            message,
            reason,
            last_decision,
            slots,
            soft,
        })
    }

    /// Capacity and queue of each instance group (only `group`, if given; with the per-node
    /// list then), by name.
    pub fn capacity(&self, group: Option<&str>, now: Timestamp) -> Vec<GroupCapacity> {
        self.groups(group, Some(now))
    }

    /// Each instance group's figures without its queue (the metrics' share of
    /// [`ClusterState::capacity`]: no per-driver work on every scrape).
    pub fn group_totals(&self) -> Vec<GroupCapacity> {
        self.groups(None, None)
    }

    /// The groups; their queues as of `queues_at`, if given.
    fn groups(&self, group: Option<&str>, queues_at: Option<Timestamp>) -> Vec<GroupCapacity> {
        let label = &self.config.instance_group_label;
        let mut groups: BTreeMap<String, GroupCapacity> = BTreeMap::new();
        for i in self.nodes.present_indices() {
            let entry = self.nodes.entry(i);
            let candidate = &self.nodes.candidates()[i];
            let name = entry
                .labels()
                .and_then(|l| l.get(label))
                .cloned()
                .unwrap_or_default();
            if group.is_some_and(|g| g != name) {
                continue;
            }
            let g = groups
                .entry(name.clone())
                .or_insert_with(|| empty_group(name));
            let reserved = entry.usage.reserved + entry.usage.soft;
            let free = non_negative(entry.available());
            g.nodes += 1;
            g.allocatable += entry.allocatable;
            g.allocated += entry.usage.pods;
            g.reserved += reserved;
            if candidate.accepts_executors() {
                g.free += free;
            }
            if group.is_some() {
                g.node_list.get_or_insert_with(Vec::new).push(NodeCapacity {
                    name: entry.name.clone(),
                    zone: candidate.zone.clone(),
                    ready: candidate.ready,
                    unschedulable: candidate.unschedulable,
                    allocatable: entry.allocatable,
                    allocated: entry.usage.pods,
                    reserved,
                    free,
                });
            }
        }
        // A group's lanes (one per queue, with queues) follow each other.
        for (lane, waiting) in &self.pending_drivers {
            let Some(now) = queues_at else { break };
            let name = &lane.group;
            if group.is_some_and(|g| g != name) {
                continue;
            }
            let g = groups
                .entry(name.clone())
                .or_insert_with(|| empty_group(name.clone()));
            g.queue
                .extend(waiting.iter().map(|at| self.queued(at, now)));
        }
        let mut out: Vec<GroupCapacity> = groups.into_values().collect();
        for g in &mut out {
            let used = g.allocated + g.reserved;
            g.cpu_used = ratio(used.cpu_milli, g.allocatable.cpu_milli);
            g.memory_used = ratio(used.memory_bytes, g.allocatable.memory_bytes);
            if let Some(list) = g.node_list.as_mut() {
                list.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        out
    }

    /// When this extender placed the gang of driver `key` (its reservation was made, or its
    /// preemption completed); `None` if unknown.
    pub fn placed_at_of_pod(&self, key: &PodKey) -> Option<Timestamp> {
        let app = self.pods.get(key)?.app.as_ref()?;
        self.apps.get(app)?.placed_at
    }

    /// Pending drivers of ours by instance group (`""`: none) and reason: `gated`, the
    /// outcome of the driver's last filter call (`failure-fit`, `failure-earlier-driver`, ...),
    /// or `not-asked-yet`. Cheap enough for every scrape (no packing).
    pub fn pending_by_reason(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for entry in self.apps.values() {
            let Some(d) = entry.driver.as_ref().and_then(|k| self.pods.get(k)) else {
                continue;
            };
            if !d.ours || entry.reservation.is_some() {
                continue;
            }
            let state = self.app_state(entry, Some(d));
            if !matches!(state, AppState::Pending | AppState::Gated) {
                continue;
            }
            let reason = match (&entry.last_decision, state) {
                (_, AppState::Gated) => "gated",
                (Some((outcome, _, _)), _) => outcome.as_str(),
                (None, _) => "not-asked-yet",
            };
            *out.entry((
                d.instance_group.clone().unwrap_or_default(),
                reason.to_owned(),
            ))
            .or_insert(0) += 1;
        }
        out
    }

    /// Reservations whose slots span more than one zone.
    pub fn cross_zone_gangs(&self) -> usize {
        self.reservations()
            .filter(|(_, r)| {
                let mut zones = r.slots.values().filter_map(|s| {
                    self.nodes
                        .index_of(&s.node)
                        .map(|i| self.nodes.candidates()[i].zone.as_str())
                });
                zones.next().is_some_and(|first| zones.any(|z| z != first))
            })
            .count()
    }

    /// 1-based place of driver `key` in its lane (its group's queue, or its queue), and the
    /// lane's length. (Drivers just given a reservation stay in it until bound, within
    /// milliseconds.)
    fn queue_position_of(&self, key: &PodKey) -> Option<(usize, usize)> {
        let d = self.pods.get(key)?;
        self.lane_position(&d.lane(), &d.queue_position())
    }

    fn summary(
        &self,
        key: &AppKey,
        entry: &AppEntry,
        position: Option<(usize, usize)>,
    ) -> AppSummary {
        let driver = entry.driver.as_ref().and_then(|k| self.pods.get(k));
        let demand = driver
            .and_then(|d| d.driver.as_ref())
            .and_then(|d| d.demand.as_ref().ok())
            .map(demand_view);
        let executors = ExecutorCounts {
            reserved: entry
                .reservation
                .as_ref()
                .map_or(0, |r| r.executor_slots().count()),
            bound: entry.reservation.as_ref().map_or(0, |r| {
                r.executor_slots()
                    .filter(|(_, s)| {
                        s.pod.as_ref().is_some_and(|p| {
                            self.pods
                                .get(&PodKey::new(&key.namespace, p))
                                .is_some_and(PodEntry::is_active_on_node)
                        })
                    })
                    .count()
            }),
            soft: entry.soft.len(),
        };
        let state = self.app_state(entry, driver);
        let queue = position.filter(|_| matches!(state, AppState::Pending | AppState::Gated));
        AppSummary {
            namespace: key.namespace.clone(),
            app_id: key.app_id.clone(),
            driver: driver.map(|d| d.key.name.clone()),
            instance_group: driver.and_then(|d| d.instance_group.clone()).or_else(|| {
                entry
                    .reservation
                    .as_ref()
                    .and_then(|r| r.instance_group.clone())
            }),
            queue: driver
                .and_then(|d| d.driver.as_ref())
                .and_then(|d| d.queue.clone()),
            state,
            priority: driver.map_or(0, |d| d.priority),
            submitted: driver.map(|d| d.created.to_string()),
            placed: entry.placed_at.map(|t| t.to_string()),
            demand,
            executors,
            queue_position: queue.map(|q| q.0),
            queue_length: queue.map(|q| q.1),
            scheduled_by_sparkgang: driver.is_some_and(|d| d.ours),
        }
    }

    fn app_state(&self, entry: &AppEntry, driver: Option<&PodEntry>) -> AppState {
        let Some(d) = driver else {
            let running = entry
                .executors
                .iter()
                .any(|k| self.pods.get(k).is_some_and(PodEntry::is_active_on_node));
            return if running {
                AppState::Running
            } else {
                AppState::Completed
            };
        };
        if d.deleting && self.is_victim(d) {
            AppState::Preempted
        } else if d.finished || d.deleting {
            AppState::Completed
        } else if d.driver.as_ref().is_some_and(|i| i.gated) {
            AppState::Gated
        } else if d.node.is_some() {
            AppState::Running
        } else if entry.reservation.is_some() {
            AppState::Reserved
        } else {
            AppState::Pending
        }
    }

    /// Some reservation evicts this pod for its gang.
    fn is_victim(&self, pod: &PodEntry) -> bool {
        let id = format!("{}/{}/{}", pod.key.namespace, pod.key.name, pod.uid);
        self.reservations().any(|(_, r)| r.preempting.contains(&id))
    }

    fn reason(
        &mut self,
        app: &AppKey,
        driver: Option<&PodKey>,
        summary: &AppSummary,
        now: Timestamp,
    ) -> (Reason, String) {
        match summary.state {
            AppState::Completed => (Reason::Completed, "the driver has finished".to_owned()),
            AppState::Preempted => (
                Reason::Preempted,
                "the driver is being evicted for a higher-priority application".to_owned(),
            ),
            AppState::Gated => {
                let for_seconds = summary_age(driver.and_then(|k| self.pods.get(k)), now);
                (
                    Reason::Gated { for_seconds },
                    format!(
                        "the driver's gang demand is still being read from its spark.properties \
                         ConfigMap (scheduling gate sparkgang.io/spark-conf, {for_seconds}s so \
                         far); it joins the queue of its instance group once read"
                    ),
                )
            }
            AppState::Running | AppState::Reserved
                if !summary.scheduled_by_sparkgang && self.reservation(app).is_none() =>
            {
                (
                    Reason::NotScheduledBySparkgang,
                    "the driver was placed by another scheduler (spec.schedulerName): sparkgang \
                     holds no reservation for it"
                        .to_owned(),
                )
            }
            AppState::Running | AppState::Reserved => self.placed_reason(app, summary),
            AppState::Pending if !summary.scheduled_by_sparkgang => (
                Reason::NotScheduledBySparkgang,
                "the driver names another scheduler (spec.schedulerName): sparkgang does not \
                 place it"
                    .to_owned(),
            ),
            AppState::Pending => {
                let Some(key) = driver else {
                    return (Reason::Completed, "the driver is gone".to_owned());
                };
                match self.assess_pending(key, app.clone(), None, now) {
                    Err(why) => (
                        Reason::UnknownDemand { why: why.clone() },
                        format!("the gang demand is unknown: {why}"),
                    ),
                    Ok(gang) => self.pending_reason(key, &gang, now),
                }
            }
        }
    }

    fn placed_reason(&self, app: &AppKey, summary: &AppSummary) -> (Reason, String) {
        let Some(node) = self
            .reservation(app)
            .and_then(|r| r.driver_node())
            .map(str::to_owned)
        else {
            return (
                Reason::Completed,
                "the driver has no reservation left".to_owned(),
            );
        };
        if self.overcommitted(&node).is_some() && self.pods_leaving(app, &node) {
            let message = format!(
                "its places are held on node {node} while pods evicted for it leave; it is \
                 placed once they are gone"
            );
            return (Reason::Preempting { node }, message);
        }
        let e = summary.executors;
        let message = format!(
            "placed: driver on {node}, {} executor slots reserved ({} bound), {} soft reservations",
            e.reserved, e.bound, e.soft
        );
        (Reason::Placed { driver_node: node }, message)
    }

    fn pending_reason(
        &mut self,
        key: &PodKey,
        gang: &PendingGang,
        now: Timestamp,
    ) -> (Reason, String) {
        match &gang.verdict {
            GangVerdict::Blocked(block) => {
                let ahead: Vec<QueuedApp> = self
                    .pods
                    .get(key)
                    .map(PodEntry::queue_position)
                    .and_then(|me| {
                        let lane = self.pods.get(key)?.lane();
                        let q = self.pending_drivers.get(&lane)?;
                        Some(q.range(..me).map(|at| self.queued(at, now)).collect())
                    })
                    .unwrap_or_default();
                let ahead_count = ahead.len();
                let reason = Reason::WaitingBehind {
                    blocker: block.blocker.clone(),
                    ahead: ahead.into_iter().take(AHEAD_LISTED).collect(),
                    ahead_count,
                };
                (reason, block.message.clone())
            }
            GangVerdict::Fits(packing) => (
                Reason::Fits,
                format!(
                    "the gang fits now (driver on {}): kube-scheduler places it at its next attempt",
                    self.nodes.entry(packing.driver_node).name
                ),
            ),
            GangVerdict::NeverFits => {
                let never_fits = self.never_fits(key, gang);
                let message = format!("{}: {}", fit_failure_message(gang, None), never_fits.why);
                (Reason::NeverFits { never_fits }, message)
            }
            GangVerdict::QueueHeld {
                message,
                hold,
                kind,
            } => {
                let hold = hold.clone();
                let reason = match kind {
                    HoldKind::AtMax => Reason::QueueAtMax { hold },
                    HoldKind::CohortFull => Reason::QueueCohortFull { hold },
                    HoldKind::Unusable => Reason::QueueUnusable {
                        hold,
                        why: message.clone(),
                    },
                };
                (reason, message.clone())
            }
            GangVerdict::DoesNotFit(failure) => (
                Reason::Capacity {
                    shortfall: self.shortfall(gang, failure),
                },
                fit_failure_message(gang, Some(failure)),
            ),
        }
    }

    /// How far the gang falls short of the free room on its eligible nodes (after what the
    /// drivers ahead take), in all and per zone.
    fn shortfall(&self, gang: &PendingGang, failure: &PackingFailure) -> Shortfall {
        let demand = &gang.demand;
        let taken: BTreeMap<usize, Resources> = gang.taken.iter().copied().collect();
        let mut zones: BTreeMap<String, ZoneRoom> = BTreeMap::new();
        for &i in &gang.eligible.list {
            let c = &self.nodes.candidates()[i];
            if !c.accepts_executors() {
                continue;
            }
            let free = non_negative(c.available - taken.get(&i).copied().unwrap_or_default());
            let z = zones.entry(c.zone.clone()).or_insert_with(|| ZoneRoom {
                zone: c.zone.clone(),
                nodes: 0,
                free: Resources::ZERO,
                executors_fit: 0,
                driver_fits: false,
            });
            z.nodes += 1;
            z.free += free;
            let fit = free.capacity_for(&demand.executor);
            z.executors_fit = z
                .executors_fit
                .saturating_add(u64::try_from(fit).unwrap_or(0));
            z.driver_fits |= demand.driver.fits_in(&free);
        }
        let free: Resources = zones.values().map(|z| z.free).sum();
        let needs = demand.gang_total();
        let (placeable, driver_fits) = match failure {
            PackingFailure::ExecutorsDoNotFit { placeable, .. } => (*placeable, true),
            PackingFailure::OnlyZonesWithoutExecutorCandidates { .. } => (0, true),
            _ => (0, false),
        };
        Shortfall {
            requested_executors: demand.min_executors as usize,
            placeable_executors: placeable,
            driver_fits,
            needs,
            free,
            short: needs.shortfall(&free),
            taken_by_drivers_ahead: gang
                .taken
                .iter()
                .filter(|(i, _)| gang.eligible.mask.get(*i).copied().unwrap_or(false))
                .map(|(_, r)| *r)
                .sum(),
            zones: zones.into_values().collect(),
        }
    }

    /// Why the gang cannot fit even on empty nodes: which nodes its placement allows, and how
    /// the gang compares with them.
    fn never_fits(&self, key: &PodKey, gang: &PendingGang) -> NeverFits {
        let placement = self
            .pods
            .get(key)
            .and_then(|p| p.driver.as_ref())
            .map(|d| &d.placement);
        let mut nodes = 0;
        let mut matching = 0;
        for i in self.nodes.present_indices() {
            nodes += 1;
            let matcher = &self.nodes.entry(i).matcher;
            if placement.is_some_and(|p| affinity::required_node_match(p, matcher)) {
                matching += 1;
            }
        }
        let eligible: Vec<Resources> = gang
            .eligible
            .list
            .iter()
            .map(|&i| self.nodes.entry(i).allocatable)
            .collect();
        let largest = eligible.iter().fold(Resources::ZERO, |m, r| m.max(r));
        let total: Resources = eligible.iter().copied().sum();
        let d = &gang.demand;
        let needs = d.gang_total();
        let group = gang
            .group
            .as_deref()
            .map_or_else(String::new, |g| format!(" (instance group {g})"));
        let why = if matching == 0 {
            format!(
                "none of the {nodes} nodes matches the driver's nodeSelector and required node \
                 affinity{group}"
            )
        } else if eligible.is_empty() {
            format!(
                "the {matching} nodes that match the driver's selector{group} all have taints it \
                 does not tolerate"
            )
        } else if !d.executor.fits_in(&largest) {
            format!(
                "one executor ({}) is larger than any of the {} eligible nodes (largest \
                 allocatable: {largest})",
                d.executor,
                eligible.len()
            )
        } else if !d.driver.fits_in(&largest) {
            format!(
                "the driver ({}) is larger than any of the {} eligible nodes (largest \
                 allocatable: {largest})",
                d.driver,
                eligible.len()
            )
        } else if !needs.fits_in(&total) {
            format!(
                "the gang needs {needs} in all; its {} eligible nodes{group} have {total} \
                 allocatable in all",
                eligible.len()
            )
        } else {
            format!(
                "its {} eligible nodes{group} have {total} allocatable in all, enough for \
                 {needs}, but not in the shapes the gang needs (an executor must fit on one node)",
                eligible.len()
            )
        };
        NeverFits {
            nodes,
            matching_selector: matching,
            eligible: eligible.len(),
            largest_node: largest,
            total_allocatable: total,
            needs,
            why,
        }
    }

    fn queued(&self, at: &QueuePosition, now: Timestamp) -> QueuedApp {
        let pod = self.pods.get(&at.key);
        QueuedApp {
            app_id: pod
                .and_then(|p| p.app.as_ref())
                .map(|a| a.app_id.clone())
                .unwrap_or_default(),
            driver: at.key.to_string(),
            priority: at.priority(),
            pending_seconds: summary_age(pod, now),
        }
    }
}

fn summary_age(pod: Option<&PodEntry>, now: Timestamp) -> u64 {
    pod.map_or(0, |p| {
        now.duration_since(p.created).as_secs_f64().max(0.0) as u64
    })
}

fn demand_view(d: &GangDemand) -> DemandView {
    DemandView {
        driver: d.driver,
        executor: d.executor,
        min_executors: d.min_executors,
        max_executors: d.max_executors,
        total: d.gang_total(),
    }
}

fn empty_group(name: String) -> GroupCapacity {
    GroupCapacity {
        name,
        nodes: 0,
        allocatable: Resources::ZERO,
        allocated: Resources::ZERO,
        reserved: Resources::ZERO,
        free: Resources::ZERO,
        cpu_used: 0.0,
        memory_used: 0.0,
        queue: Vec::new(),
        node_list: None,
    }
}

fn non_negative(r: Resources) -> Resources {
    r.max(&Resources::ZERO)
}

fn ratio(used: i64, of: i64) -> f64 {
    if of <= 0 {
        0.0
    } else {
        used as f64 / of as f64
    }
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
