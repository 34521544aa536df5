//! The preemption plan of a pending driver, over the cluster state: candidates, the fit test, the victims.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::binpack::Packing;
use crate::resources::Resources;

use super::super::budgets::{BudgetKey, Covered};
use super::super::decision::{Decision, Effect, FilterOutcome};
use super::super::keys::{AppKey, PodKey};
use super::super::nodes::NodeIdx;
use super::super::{ClusterState, Timestamp};
use super::choose::{Candidate, NoVictims, VictimKind, choose_victims, freed};

/// One application the plan evicts from: a whole gang, or one soft-reserved executor.
#[derive(Debug, Clone, PartialEq)]
pub struct Victim {
    pub app: AppKey,
    pub priority: i32,
    pub kind: VictimKind,
    /// The pods to evict: for a gang its driver and every unfinished executor.
    pub pods: Vec<PodKey>,
    /// What it frees per node (by name), on the preemptor's nodes.
    pub frees_on: Vec<(String, Resources)>,
}

/// What a preemption does: evict `victims`, then the preemptor's gang goes to `placement`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreemptionPlan {
    pub preemptor: AppKey,
    pub driver: PodKey,
    pub priority: i32,
    pub victims: Vec<Victim>,
    /// Where the gang goes once the victims (and pods already terminating) are gone.
    pub placement: Packing,
}

impl PreemptionPlan {
    /// "the gang of driver spark/etl-driver (application spark-1f…, priority 10), executor
    /// spark/ml-exec-5 (application spark-9a…, priority 0)".
    pub fn victims_text(&self) -> String {
        self.victims
            .iter()
            .map(|v| {
                let what = match (&v.kind, v.pods.first()) {
                    (VictimKind::Gang, Some(driver)) => format!("the gang of driver {driver}"),
                    (VictimKind::Gang, None) => "the gang".to_owned(),
                    (VictimKind::Soft { pod }, _) => {
                        format!("executor {}/{pod}", v.app.namespace)
                    }
                };
                format!(
                    "{what} (application {}, priority {})",
                    v.app.app_id, v.priority
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whole gangs preempted recently, for the victims-per-minute budget, and what victims being
/// evicted still hold.
#[derive(Debug, Default)]
pub(in crate::cluster) struct PreemptionLog {
    gangs: VecDeque<Timestamp>,
    /// Victims whose pods may not all be gone yet.
    releasing: Vec<Releasing>,
}

/// One victim of a preemption: its pods, and what it holds per node until they are gone.
#[derive(Debug)]
struct Releasing {
    pods: Vec<PodKey>,
    frees_on: Vec<(String, Resources)>,
}

/// What preemption does for a pending driver whose gang does not fit.
#[derive(Debug)]
pub(in crate::cluster) enum Preemption {
    /// It acted: the driver's places are held and its victims are being evicted.
    Acted(Decision),
    /// Words for the failure message, and the report (dry run, or no victims make room).
    Report(String, Box<Effect>),
    /// Preemption is off or does not apply.
    None,
}

impl PreemptionLog {
    /// Gangs preempted in the minute before `now`.
    fn in_last_minute(&mut self, now: Timestamp) -> usize {
        while let Some(&t) = self.gangs.front() {
            if now.duration_since(t).as_secs_f64() >= 60.0 {
                self.gangs.pop_front();
            } else {
                break;
            }
        }
        self.gangs.len()
    }
}

impl ClusterState {
    /// The victims whose eviction lets the pending driver `key` fit, and where its gang then
    /// goes; or, in words, why there are none. Changes nothing: the caller executes the plan
    /// and then calls [`ClusterState::record_preemption`].
    ///
    /// Candidates are applications of lower priority than the driver's with room on its
    /// eligible nodes: each soft reservation (executors above the dynamic-allocation minimum),
    /// and each whole gang with a reservation that has run for at least `minRuntime`. Pods
    /// already terminating count as freed (they are going: a plan made again after a restart
    /// chooses no extra victims for room that is already on its way).
    pub fn plan_preemption(
        &mut self,
        key: &PodKey,
        now: Timestamp,
    ) -> Result<PreemptionPlan, String> {
        let Some(pod) = self.pods.get(key) else {
            return Err(format!("driver {key} is unknown"));
        };
        let Some(app) = pod.app.clone() else {
            return Err(format!("driver {key} has no application id"));
        };
        let Some(Ok(demand)) = pod.driver.as_ref().map(|d| d.demand.clone()) else {
            return Err(format!("the gang demand of driver {key} is not known"));
        };
        let priority = pod.priority;
        let scope = self.victim_scope(key, &demand);
        let eligible = self.eligible_nodes(key);
        let on_eligible = |n: NodeIdx| eligible.mask.get(n).copied().unwrap_or(false);
        let min_runtime = self.config.preemption.min_runtime;

        let mut candidates = Vec::new();
        let mut pods_of: BTreeMap<AppKey, Vec<PodKey>> = BTreeMap::new();
        let mut too_young = 0usize;
        let mut protected = 0usize;
        let mut budgets = BudgetIndex::default();
        for (app_key, entry) in &self.apps {
            let Some(driver) = entry.driver.as_ref().and_then(|d| self.pods.get(d)) else {
                continue;
            };
            let victim_queue = driver.driver.as_ref().and_then(|d| d.queue.as_deref());
            if !scope.allows(victim_queue, driver.priority, priority)
                || driver.finished
                || driver.deleting
            {
                continue;
            }
            let started = driver.started.unwrap_or(driver.created);
            for (pod_name, slot) in &entry.soft {
                if let Some(n) = self.nodes.index_of(&slot.node).filter(|&n| on_eligible(n)) {
                    let pod = PodKey::new(&app_key.namespace, pod_name);
                    let Some(disruptions) = budgets.of(self, std::slice::from_ref(&pod)) else {
                        protected += 1;
                        continue;
                    };
                    candidates.push(Candidate {
                        app: app_key.clone(),
                        priority: driver.priority,
                        started,
                        kind: VictimKind::Soft {
                            pod: pod_name.clone(),
                        },
                        frees: vec![(n, slot.resources)],
                        disruptions,
                    });
                }
            }
            let Some(reservation) = &entry.reservation else {
                continue;
            };
            if elapsed(started, now) < min_runtime {
                too_young += 1;
                continue;
            }
            let members: Vec<&super::super::PodEntry> = std::iter::once(driver)
                .chain(entry.executors.iter().filter_map(|e| self.pods.get(e)))
                .filter(|p| !p.finished)
                .collect();
            let mut frees: Vec<(NodeIdx, Resources)> = reservation
                .slots
                .values()
                .map(|s| (s.node.as_str(), s.resources))
                .chain(entry.soft.values().map(|s| (s.node.as_str(), s.resources)))
                .filter_map(|(node, r)| self.nodes.index_of(node).map(|n| (n, r)))
                .chain(
                    members
                        .iter()
                        .filter_map(|p| p.counted.map(|(n, r, _)| (n, r))),
                )
                .filter(|&(n, _)| on_eligible(n))
                .collect();
            frees.sort_by_key(|&(n, _)| n);
            if frees.is_empty() {
                continue;
            }
            let pods: Vec<PodKey> = members.iter().map(|p| p.key.clone()).collect();
            // Pods already terminating pass the Eviction API without a budget.
            let evicted: Vec<PodKey> = members
                .iter()
                .filter(|p| !p.deleting)
                .map(|p| p.key.clone())
                .collect();
            let Some(disruptions) = budgets.of(self, &evicted) else {
                protected += 1;
                continue;
            };
            pods_of.insert(app_key.clone(), pods);
            candidates.push(Candidate {
                app: app_key.clone(),
                priority: driver.priority,
                started,
                kind: VictimKind::Gang,
                frees,
                disruptions,
            });
        }
        let going = self.terminating_on(&eligible.mask);

        let allowed = self
            .config
            .preemption
            .max_victims_per_minute
            .saturating_sub(self.preemption_log.in_last_minute(now));
        let with_going = |chosen: &[(NodeIdx, Resources)]| {
            let mut all: BTreeMap<NodeIdx, Resources> = going.iter().copied().collect();
            for &(n, r) in chosen {
                *all.entry(n).or_default() += r;
            }
            all.into_iter().collect::<Vec<_>>()
        };
        let room = scope.queue_room.clone();
        let chosen = {
            let fits = |f: &[(NodeIdx, Resources)]| {
                let freed = f.iter().fold(Resources::ZERO, |acc, &(_, r)| acc + r);
                if room
                    .as_ref()
                    .is_some_and(|r| !r.admits_after_freeing(freed))
                {
                    return false;
                }
                let extra = with_going(f);
                self.pack_with_freed(&eligible, &demand, &extra).is_ok()
            };
            choose_victims(&candidates, fits, allowed, &budgets.allowed)
        };
        let chosen = match chosen {
            Ok(c) => c,
            Err(NoVictims::NotEnough) => {
                let young = if too_young > 0 {
                    format!(
                        " ({too_young} lower-priority gang{} ran for less than minRuntime {}s)",
                        if too_young == 1 { "" } else { "s" },
                        min_runtime.as_secs()
                    )
                } else {
                    String::new()
                };
                let budgeted = if protected > 0 {
                    format!(
                        " ({protected} lower-priority gang{} or executor{} protected by \
                         PodDisruptionBudgets that allow too few evictions)",
                        if protected == 1 { "" } else { "s" },
                        if protected == 1 { "" } else { "s" },
                    )
                } else {
                    String::new()
                };
                return Err(format!(
                    "preemption cannot make room: evicting every lower-priority gang and soft \
                     reservation on its {} eligible nodes would not be enough{young}{budgeted}",
                    eligible.list.len()
                ));
            }
            Err(NoVictims::OverBudget { needed, allowed }) => {
                return Err(format!(
                    "preemption would need {needed} gangs, and the budget of {} per minute \
                     allows {allowed} now",
                    self.config.preemption.max_victims_per_minute
                ));
            }
        };
        let extra = with_going(&freed(&candidates, &chosen));
        let placement = self
            .pack_with_freed(&eligible, &demand, &extra)
            .map_err(|e| format!("the chosen victims no longer make room: {e}"))?;
        let victims = chosen
            .iter()
            .map(|&i| {
                let c = &candidates[i];
                Victim {
                    app: c.app.clone(),
                    priority: c.priority,
                    kind: c.kind.clone(),
                    pods: match &c.kind {
                        VictimKind::Gang => pods_of.get(&c.app).cloned().unwrap_or_default(),
                        VictimKind::Soft { pod } => vec![PodKey::new(&c.app.namespace, pod)],
                    },
                    frees_on: c
                        .frees
                        .iter()
                        .map(|&(n, r)| (self.nodes.entry(n).name.clone(), r))
                        .collect(),
                }
            })
            .collect();
        Ok(PreemptionPlan {
            preemptor: app,
            driver: key.clone(),
            priority,
            victims,
            placement,
        })
    }

    /// Records that `plan` was carried out at `now` (for the victims-per-minute budget).
    pub fn record_preemption(&mut self, plan: &PreemptionPlan, now: Timestamp) {
        for v in &plan.victims {
            if v.kind == VictimKind::Gang {
                self.preemption_log.gangs.push_back(now);
            }
        }
    }

    /// What is already on its way out, per node, on the nodes of `mask`: pods terminating, and
    /// the executors and reservations of applications whose driver is terminating or gone.
    fn terminating_on(&self, mask: &[bool]) -> Vec<(NodeIdx, Resources)> {
        let mut per_node: BTreeMap<NodeIdx, Resources> = BTreeMap::new();
        let mut add = |n: NodeIdx, r: Resources| {
            if mask.get(n).copied().unwrap_or(false) {
                *per_node.entry(n).or_default() += r;
            }
        };
        // An application whose driver is terminating or gone goes whole: garbage collection
        // takes its executors, and its reservation goes with the driver.
        // (Executors with no driver and no reservation run in client mode: they stay.)
        let app_going = |entry: &super::super::apps::AppEntry| match entry.driver.as_ref() {
            None => entry.reservation.is_some(),
            Some(d) => self.pods.get(d).is_none_or(|d| d.deleting && !d.finished),
        };
        for p in self.pods.values().filter(|p| !p.finished) {
            let going = p.deleting
                || (p.role == Some(crate::pods::SparkRole::Executor)
                    && p.app
                        .as_ref()
                        .and_then(|a| self.apps.get(a))
                        .is_some_and(app_going));
            if going && let Some((n, r, _)) = p.counted {
                add(n, r);
            }
        }
        for entry in self.apps.values() {
            if !app_going(entry) {
                continue;
            }
            let slots = entry.reservation.iter().flat_map(|r| r.slots.values());
            for (node, r) in slots
                .map(|s| (&s.node, s.resources))
                .chain(entry.soft.values().map(|s| (&s.node, s.resources)))
            {
                if let Some(n) = self.nodes.index_of(node) {
                    add(n, r);
                }
            }
        }
        per_node.into_iter().collect()
    }
}

/// The PodDisruptionBudgets a plan's candidates fall under, numbered as met.
#[derive(Debug, Default)]
struct BudgetIndex {
    keys: Vec<BudgetKey>,
    /// `status.disruptionsAllowed` of each, by number.
    allowed: Vec<u32>,
}

impl BudgetIndex {
    /// How many of `pods` fall under each budget; `None` when they cannot all be evicted: a
    /// pod under several budgets (the Eviction API refuses it), or more pods under one budget
    /// than it allows.
    fn of(&mut self, state: &ClusterState, pods: &[PodKey]) -> Option<Vec<(usize, u32)>> {
        let mut used: BTreeMap<usize, u32> = BTreeMap::new();
        for pod in pods {
            match state.budgets_covering(pod) {
                Covered::None => {}
                Covered::Several => return None,
                Covered::One(key) => {
                    let i = match self.keys.iter().position(|k| k == key) {
                        Some(i) => i,
                        None => {
                            self.keys.push(key.clone());
                            self.allowed
                                .push(state.budget(key).map_or(0, |b| b.disruptions_allowed));
                            self.keys.len() - 1
                        }
                    };
                    *used.entry(i).or_default() += 1;
                }
            }
        }
        used.iter()
            .all(|(&i, &n)| n <= self.allowed[i])
            .then(|| used.into_iter().collect())
    }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_secs_f64(now.duration_since(since).as_secs_f64().max(0.0))
}

impl ClusterState {
    /// Preemption for the pending driver `key` whose gang does not fit (`outcome`
    /// failure-fit): the decision when it acts (its places are reserved where the plan puts
    /// them, held while the victims are evicted), or the words and report for its failure
    /// message (dry run, or no victims make room).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::cluster) fn preempt(
        &mut self,
        key: &PodKey,
        app: &AppKey,
        group: Option<String>,
        demand: &crate::GangDemand,
        outcome: FilterOutcome,
        now: Timestamp,
    ) -> Preemption {
        let policy = &self.config.preemption;
        // Capacity, or a queue at its limit (its own lower-priority gangs may go).
        if !policy.enabled
            || !matches!(
                outcome,
                FilterOutcome::FailureFit | FilterOutcome::FailureQueue
            )
        {
            return Preemption::None;
        }
        let dry_run = policy.dry_run;
        let priority = self.pods.get(key).map_or(0, |p| p.priority);
        let report = |text: String, gangs: usize, soft: usize| {
            let text = if dry_run {
                format!("{text} (dry run: nothing is evicted)")
            } else {
                text
            };
            Effect::ReportPreemption {
                pod: key.clone(),
                message: text,
                dry_run,
                gangs,
                soft,
                priority,
            }
        };
        let plan = match self.plan_preemption(key, now) {
            Ok(plan) => plan,
            Err(why) => {
                let effect = report(why, 0, 0);
                return Preemption::Report(message_of(&effect), Box::new(effect));
            }
        };
        if plan.victims.is_empty() {
            let eligible = self.eligible_nodes(key);
            if self.pack_with_freed(&eligible, demand, &[]).is_ok() {
                // It fits the free room as it is: what holds it back is the order (older
                // gangs, or queues before its own, take that room first), not capacity.
                return Preemption::None;
            }
        }
        let gangs = plan
            .victims
            .iter()
            .filter(|v| v.kind == VictimKind::Gang)
            .count();
        let soft = plan.victims.len() - gangs;
        let text = if plan.victims.is_empty() {
            "its room is being freed by pods already terminating".to_owned()
        } else if dry_run {
            format!("preemption would evict {}", plan.victims_text())
        } else {
            format!("preempting {}", plan.victims_text())
        };
        let effect = report(text, gangs, soft);
        if dry_run {
            return Preemption::Report(message_of(&effect), Box::new(effect));
        }
        // Hold the room: the reservation goes where the plan puts the gang, now, so no other
        // application can take what the victims free; the driver binds once it is free.
        let reserved = self.reserve(key, app, group, demand, &plan.placement);
        let victims: Vec<String> = plan
            .victims
            .iter()
            .flat_map(|v| &v.pods)
            .filter_map(|p| self.pods.get(p))
            .map(|p| format!("{}/{}", p.key, p.uid))
            .collect();
        if let Some(r) = self.apps.get_mut(app).and_then(|a| a.reservation.as_mut()) {
            r.preempting = victims;
        }
        let mut effects = reserved.effects;
        let reason = format!(
            "sparkgang: preempted for the gang of driver {} (priority {})",
            plan.driver, plan.priority
        );
        for v in &plan.victims {
            for pod in &v.pods {
                effects.push(Effect::Evict {
                    pod: pod.clone(),
                    preemptor: plan.driver.clone(),
                    message: reason.clone(),
                });
            }
        }
        self.record_preemption(&plan, now);
        let pods = &self.pods;
        self.preemption_log.releasing.retain(|r| {
            r.pods
                .iter()
                .any(|p| pods.get(p).is_some_and(|p| !p.finished))
        });
        for v in &plan.victims {
            self.preemption_log.releasing.push(Releasing {
                pods: v.pods.clone(),
                frees_on: v.frees_on.clone(),
            });
        }
        let message = format!(
            "application {}: {}; its places are held until they are gone",
            app.app_id,
            message_of(&effect)
        );
        effects.push(effect);
        Preemption::Acted(
            Decision::failure(FilterOutcome::FailurePreempting, message).with_effects(effects),
        )
    }

    /// The evictions still to make for reservations taken by preemption: every recorded
    /// victim pod that is still there (same UID), not finished and not terminating. A leader
    /// calls it once its caches are synced (the previous one may have died between writing a
    /// reservation and evicting), and a held driver's filter call asks again.
    pub fn resume_preemptions(&self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (app, entry) in &self.apps {
            let Some(r) = entry
                .reservation
                .as_ref()
                .filter(|r| !r.preempting.is_empty())
            else {
                continue;
            };
            effects.extend(self.victims_left(app, r));
        }
        effects
    }

    /// The evictions still to make for `app`'s reservation `r`.
    fn victims_left(&self, app: &AppKey, r: &super::super::AppReservation) -> Vec<Effect> {
        let preemptor = PodKey::new(&app.namespace, &r.driver_name);
        let priority = self.pods.get(&preemptor).map_or(0, |p| p.priority);
        let message = format!(
            "sparkgang: preempted for the gang of driver {preemptor} (priority {priority})"
        );
        r.preempting
            .iter()
            .filter_map(|v| {
                let (key, uid) = recorded_victim(v)?;
                let p = self.pods.get(&key)?;
                (p.uid == uid && !p.finished && !p.deleting).then(|| Effect::Evict {
                    pod: key,
                    preemptor: preemptor.clone(),
                    message: message.clone(),
                })
            })
            .collect()
    }

    /// The evictions still to make for the reservation of `app`, if it was taken by
    /// preemption.
    pub(in crate::cluster) fn evictions_left(&self, app: &AppKey) -> Vec<Effect> {
        self.reservation(app)
            .map(|r| self.victims_left(app, r))
            .unwrap_or_default()
    }

    /// Whether pods are on their way out that `app`'s held room waits for: a victim recorded
    /// on its reservation that is still there, or any pod terminating on `node`.
    pub(in crate::cluster) fn pods_leaving(&self, app: &AppKey, node: &str) -> bool {
        let recorded = self.reservation(app).is_some_and(|r| {
            r.preempting
                .iter()
                .filter_map(|v| recorded_victim(v))
                .any(|(key, uid)| {
                    self.pods
                        .get(&key)
                        .is_some_and(|p| p.uid == uid && !p.finished)
                })
        });
        recorded
            || self
                .pods
                .values()
                .any(|p| p.deleting && !p.finished && p.node.as_deref() == Some(node))
    }

    /// What victims of preemption whose pods are not all gone still hold, per node: room
    /// already promised to their preemptors. (What the extender holds less this fits every
    /// node, as the simulator's capacity oracle checks.)
    pub fn releasing_by_node(&self) -> BTreeMap<String, Resources> {
        let mut out: BTreeMap<String, Resources> = BTreeMap::new();
        for r in &self.preemption_log.releasing {
            let present = r
                .pods
                .iter()
                .any(|p| self.pods.get(p).is_some_and(|p| !p.finished));
            if present {
                for (node, r) in &r.frees_on {
                    *out.entry(node.clone()).or_default() += *r;
                }
            }
        }
        out
    }

    /// How far node `name` is over-committed (usage above allocatable, as "cpu 2, memory
    /// 1Gi"), or `None` when it is not: the room of a preemption is still held by the pods
    /// it evicts.
    pub(in crate::cluster) fn overcommitted(&self, name: &str) -> Option<String> {
        let node = self.nodes.get_by_name(name)?;
        let available = node.available();
        let over = Resources::new(
            (-available.cpu_milli).max(0),
            (-available.memory_bytes).max(0),
            (-available.gpus).max(0),
        );
        (over != Resources::ZERO).then(|| over.to_string())
    }
}

/// A victim as recorded on a reservation (`namespace/name/uid`): the pod and its UID.
fn recorded_victim(v: &str) -> Option<(PodKey, &str)> {
    let (pod, uid) = v.rsplit_once('/')?;
    let (namespace, name) = pod.split_once('/')?;
    Some((PodKey::new(namespace, name), uid))
}

fn message_of(effect: &Effect) -> String {
    match effect {
        Effect::ReportPreemption { message, .. } => message.clone(),
        _ => String::new(),
    }
}

impl ClusterState {
    /// kube-scheduler found no node for `pod` and asks (its preempt verb) whether it may
    /// evict lower-priority pods on some nodes, pod by pod. With preemption on, a Spark pod of
    /// ours is never preempted for that way: for a driver, the gang-safe preemption of a filter
    /// call is made instead, over every node, and its decision returned (the caller carries
    /// out its effects and gives kube-scheduler no candidates); an executor waits for its slot
    /// (a decision without effects). `None` for other pods, or with preemption off: then
    /// kube-scheduler's candidates are only guarded ([`super::super::guard_candidates`]).
    pub fn preempt_for_kube_scheduler(
        &mut self,
        pod: &k8s_openapi::api::core::v1::Pod,
        now: Timestamp,
    ) -> Option<Decision> {
        if !self.config.preemption.enabled {
            return None;
        }
        let key = PodKey::of(pod)?;
        let mut effects = Vec::new();
        if !self.pods.contains_key(&key) {
            effects = self.apply_pod(pod);
        }
        let entry = self.pods.get(&key)?;
        if !entry.ours {
            return None;
        }
        match entry.role? {
            crate::pods::SparkRole::Executor => Some(
                Decision::failure(
                    FilterOutcome::FailureUnbound,
                    "an executor takes a slot of its application's reservation; it is not \
                     preempted for pod by pod",
                )
                .with_effects(effects),
            ),
            crate::pods::SparkRole::Driver => {
                let nodes = self.node_names();
                Some(self.filter(pod, &nodes, now).with_effects(effects))
            }
        }
    }
}
