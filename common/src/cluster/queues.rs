//! Queues in the cluster state: the Queue objects, which queue each driver belongs to, what
//! each queue holds, and the queue checks of the decisions — admission of a gang, the fair
//! order of a group's queues, executors above the minimum, and which victims reclaim may take.
//! Without Queue objects (and without `sparkgang.io/queue` labels) none of this applies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::api::explain::QueueHold;
use crate::api::queue::{QUEUE_LABEL, Queue, QueueStatus};
use crate::gang_demand::GangDemand;
use crate::queues::share::{self, Admission, Limit, quantity};
use crate::queues::{QueueError, QueueIndex, QueueLimits};
use crate::resources::Resources;

use super::fifo::{FifoBlock, FifoVerdict, Lane, QueuePosition};
use super::keys::AppKey;
use super::nodes::NodeIdx;
use super::pod_entry::PodEntry;
use super::{ClusterState, Timestamp};

/// How long a lane's next gang has waited, as an order: higher priority, then older, first.
type Waiting = (i32, Timestamp);

/// What a queue holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueUsage {
    /// Its placed gangs' reservations and its executors above the minimum.
    pub allocated: Resources,
    /// Of which executors above the dynamic-allocation minimum (soft reservations).
    pub extra: Resources,
    /// Applications holding a reservation.
    pub running: u32,
}

/// The queue state kept beside the rest: the index, and what each queue holds — kept
/// incrementally: each application's charge is taken back and made again when its
/// reservation, its soft reservations or its driver change ([`ClusterState::recharge`]).
#[derive(Debug, Default)]
pub(super) struct QueueBook {
    pub index: QueueIndex,
    usage: BTreeMap<String, QueueUsage>,
    /// What each application adds to its queue's usage now.
    charges: HashMap<AppKey, (String, QueueUsage)>,
    /// `usage` as last handed out (dropped when it changes).
    shared: Option<Arc<BTreeMap<String, QueueUsage>>>,
}

impl QueueBook {
    pub fn new(index: QueueIndex) -> Self {
        QueueBook {
            index,
            ..QueueBook::default()
        }
    }
}

impl QueueUsage {
    fn add(&mut self, other: &QueueUsage) {
        self.allocated = self.allocated.saturating_add(&other.allocated);
        self.extra = self.extra.saturating_add(&other.extra);
        self.running += other.running;
    }

    fn take(&mut self, other: &QueueUsage) {
        self.allocated -= other.allocated;
        self.extra -= other.extra;
        self.running = self.running.saturating_sub(other.running);
    }
}

/// What a gang's queue says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum QueueVerdict {
    Admitted,
    /// The gang alone is over its queue's `max`.
    NeverFits {
        message: String,
        hold: QueueHold,
    },
    /// Not now: the queue is at its max, its cohort full, or it is not usable.
    Limited {
        message: String,
        hold: QueueHold,
        kind: HoldKind,
    },
}

/// Which limit holds a gang back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldKind {
    AtMax,
    CohortFull,
    Unusable,
}

fn hold(queue: &str, limit: Option<&Limit>, never: bool) -> QueueHold {
    QueueHold {
        queue: queue.to_owned(),
        resource: limit.map(|l| l.resource.to_owned()),
        used: limit.map(|l| quantity(l.resource, l.used)),
        asked: limit.map(|l| quantity(l.resource, l.asked)),
        limit: limit.map(|l| quantity(l.resource, l.limit)),
        never,
        position: None,
        queue_length: None,
    }
}

/// "0.50", or "Inf" for a queue holding what it has no guarantee for.
pub fn share_text(share: f64) -> String {
    if share.is_finite() {
        format!("{share:.2}")
    } else {
        "Inf".to_owned()
    }
}

/// Whom a preemption may take victims from (`docs/queues.md`, "Reclaim").
#[derive(Debug, Clone, Default)]
pub(super) struct VictimScope {
    /// The preemptor's queue (`None`: no queue semantics; priority alone decides).
    pub queue: Option<String>,
    /// The preemptor's gang fits within its queue's guarantee: it may take back room that
    /// queues over their guarantee borrowed, whatever their priority.
    pub reclaim: bool,
    /// Queues holding more than their guarantee.
    pub over_guarantee: BTreeSet<String>,
    /// The preemptor's queue is at a limit itself: only its own lower-priority applications
    /// are candidates, and the victims must also bring the queue back within its limits.
    pub queue_room: Option<QueueRoom>,
}

/// What a queue at a limit must free for a gang: the queues, what each holds, the gang.
#[derive(Debug, Clone)]
pub(super) struct QueueRoom {
    index: QueueIndex,
    queue: String,
    held: BTreeMap<String, Resources>,
    gang: Resources,
}

impl QueueRoom {
    /// Whether the gang is admitted once the queue holds `freed` less.
    pub fn admits_after_freeing(&self, freed: Resources) -> bool {
        let mut held = self.held.clone();
        let mine = held.entry(self.queue.clone()).or_default();
        *mine = mine.excess_over(&freed);
        matches!(
            share::admit(&self.index, &self.queue, &held, &self.gang),
            Admission::Admit { .. }
        )
    }
}

impl VictimScope {
    /// May an application of `victim_queue` at `victim_priority` be evicted for a preemptor at
    /// `priority`? Within a queue (or without queues) by priority only; from another queue
    /// only to reclaim, and only from a queue over its guarantee.
    pub fn allows(&self, victim_queue: Option<&str>, victim_priority: i32, priority: i32) -> bool {
        if self.queue_room.is_some() {
            return victim_queue == self.queue.as_deref() && victim_priority < priority;
        }
        match (self.queue.as_deref(), victim_queue) {
            (Some(mine), Some(theirs)) if mine != theirs => {
                self.reclaim && self.over_guarantee.contains(theirs)
            }
            _ => victim_priority < priority,
        }
    }
}

impl ClusterState {
    /// A Queue was created or changed. Its status changing (the leader's own writes) or a
    /// relist sending it again changes nothing.
    pub fn apply_queue(&mut self, queue: &Queue) {
        let Some(name) = queue.metadata.name.as_deref() else {
            return;
        };
        if self.queues.index.apply(name, &queue.spec) {
            self.requeue();
        }
    }

    /// A Queue was deleted.
    pub fn delete_queue(&mut self, name: &str) {
        if self.queues.index.get(name).is_some() {
            self.queues.index.delete(name);
            self.requeue();
        }
    }

    /// The Queue objects held, by name.
    pub fn queue_names(&self) -> Vec<String> {
        self.queues
            .index
            .names()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    }

    /// The queues, validated.
    pub fn queue_index(&self) -> &QueueIndex {
        &self.queues.index
    }

    /// The queue of a driver: its `sparkgang.io/queue` label (even one naming no queue: its
    /// decisions then say so), else the queue listing its namespace, else the default queue.
    pub(super) fn resolve_queue(&self, entry: &PodEntry) -> Option<String> {
        if let Some(label) = entry.labels.get(QUEUE_LABEL) {
            return Some(label.clone());
        }
        if self.queues.index.is_empty() {
            return None;
        }
        self.queues
            .index
            .queue_of(&entry.key.namespace, None)
            .ok()
            .flatten()
            .map(str::to_owned)
    }

    /// The queues changed: every driver's queue is resolved again and the lanes rebuilt.
    fn requeue(&mut self) {
        let keys: Vec<_> = self
            .pods
            .iter()
            .filter(|(_, p)| p.driver.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let queue = self.pods.get(&key).and_then(|p| self.resolve_queue(p));
            if let Some(d) = self.pods.get_mut(&key).and_then(|p| p.driver.as_mut()) {
                d.queue = queue;
            }
        }
        self.pending_drivers.clear();
        for p in self.pods.values().filter(|p| p.is_pending_driver()) {
            self.pending_drivers
                .entry(p.lane())
                .or_default()
                .insert(p.queue_position());
        }
        self.fifo.plans.clear();
        self.plan_epoch += 1;
        self.queues.usage.clear();
        self.queues.charges.clear();
        self.queues.shared = None;
        let apps: Vec<AppKey> = self.apps.keys().cloned().collect();
        for app in apps {
            self.recharge(&app);
        }
    }

    /// What `app` adds to its queue's usage now: its reservation's slots and its soft
    /// reservations, when its driver belongs to a queue.
    fn charge_of(&self, app: &AppKey) -> Option<(String, QueueUsage)> {
        let entry = self.apps.get(app)?;
        let queue = entry
            .driver
            .as_ref()
            .and_then(|d| self.pods.get(d))
            .and_then(|p| p.driver.as_ref())
            .and_then(|d| d.queue.as_ref())?;
        if entry.reservation.is_none() && entry.soft.is_empty() {
            return None;
        }
        let mut u = QueueUsage::default();
        if let Some(r) = &entry.reservation {
            u.running = 1;
            for s in r.slots.values() {
                u.allocated += s.resources;
            }
        }
        for s in entry.soft.values() {
            u.allocated += s.resources;
            u.extra += s.resources;
        }
        Some((queue.clone(), u))
    }

    /// Takes back what `app` was charged to its queue and charges it again as it is now
    /// (after its reservation, a soft reservation or its driver changed).
    pub(super) fn recharge(&mut self, app: &AppKey) {
        let new = self.charge_of(app);
        let old = match &new {
            Some(n) => self.queues.charges.insert(app.clone(), n.clone()),
            None => self.queues.charges.remove(app),
        };
        if old == new {
            return;
        }
        if let Some((q, u)) = old
            && let Some(total) = self.queues.usage.get_mut(&q)
        {
            total.take(&u);
            if *total == QueueUsage::default() {
                self.queues.usage.remove(&q);
            }
        }
        if let Some((q, u)) = new {
            self.queues.usage.entry(q).or_default().add(&u);
        }
        self.queues.shared = None;
        // Simulated admissions to queues depend on what they hold.
        self.plan_epoch += 1;
    }

    /// What each queue holds now.
    pub fn queue_usage(&mut self) -> Arc<BTreeMap<String, QueueUsage>> {
        if let Some(shared) = &self.queues.shared {
            return shared.clone();
        }
        let shared = Arc::new(self.queues.usage.clone());
        self.queues.shared = Some(shared.clone());
        shared
    }

    fn allocated_by_queue(&mut self, queue: &str, own: Resources) -> BTreeMap<String, Resources> {
        let mut held: BTreeMap<String, Resources> = self
            .queue_usage()
            .iter()
            .map(|(q, u)| (q.clone(), u.allocated))
            .collect();
        *held.entry(queue.to_owned()).or_default() += own;
        held
    }

    /// Whether the gang of `demand` may be placed for `queue` now, the queue holding `own`
    /// more than its reservations (what drivers ahead of it in the queue take first).
    pub(super) fn queue_verdict(
        &mut self,
        queue: &str,
        demand: &GangDemand,
        own: Resources,
        _now: Timestamp,
    ) -> QueueVerdict {
        let gang = demand.driver + demand.executor.times(i64::from(demand.min_executors));
        let held = self.allocated_by_queue(queue, own);
        self.admission_verdict(queue, &held, &gang, "the gang")
    }

    fn admission_verdict(
        &self,
        queue: &str,
        held: &BTreeMap<String, Resources>,
        asked: &Resources,
        what: &str,
    ) -> QueueVerdict {
        let index = &self.queues.index;
        match share::admit(index, queue, held, asked) {
            Admission::Admit { .. } => QueueVerdict::Admitted,
            Admission::NeverFits(l) => QueueVerdict::NeverFits {
                message: format!(
                    "queue {queue} can never hold {what}: {} is over the queue's max",
                    l.text()
                ),
                hold: hold(queue, Some(&l), true),
            },
            Admission::AtMax(l) => QueueVerdict::Limited {
                message: format!("queue {queue} is at its max: {}", l.text()),
                hold: hold(queue, Some(&l), false),
                kind: HoldKind::AtMax,
            },
            Admission::CohortFull(l) => {
                let parent = index
                    .get(queue)
                    .and_then(|q| q.as_ref().ok())
                    .and_then(|q| q.parent.clone());
                let message = match parent {
                    Some(p) => format!(
                        "queue {queue} is over its guarantee and the queues of {p} have no \
                         unused guarantee to lend: {} held by {p}'s queues",
                        l.text()
                    ),
                    None => format!(
                        "queue {queue} is at its guarantee and has no parent to borrow from: {}",
                        l.text()
                    ),
                };
                QueueVerdict::Limited {
                    message,
                    hold: hold(queue, Some(&l), false),
                    kind: HoldKind::CohortFull,
                }
            }
            Admission::Invalid(why) => QueueVerdict::Limited {
                message: format!("queue {queue} cannot be used: {why}"),
                hold: hold(queue, None, false),
                kind: HoldKind::Unusable,
            },
            Admission::Unknown => QueueVerdict::Limited {
                message: QueueError::NoSuchQueue {
                    name: queue.to_owned(),
                    known: index.known(),
                }
                .to_string(),
                hold: hold(queue, None, false),
                kind: HoldKind::Unusable,
            },
        }
    }

    /// Whether one more executor above the minimum (`executor`) fits the queue of `driver`'s
    /// application; `Err` says which limit it would pass.
    pub(super) fn admit_extra_executor(
        &mut self,
        driver: Option<&super::PodKey>,
        executor: Resources,
    ) -> Result<(), String> {
        let Some(queue) = driver
            .and_then(|d| self.pods.get(d))
            .and_then(|p| p.driver.as_ref())
            .and_then(|d| d.queue.clone())
        else {
            return Ok(());
        };
        let held = self.allocated_by_queue(&queue, Resources::ZERO);
        match self.admission_verdict(&queue, &held, &executor, "one more executor") {
            QueueVerdict::Admitted => Ok(()),
            QueueVerdict::NeverFits { message, .. } | QueueVerdict::Limited { message, .. } => {
                Err(format!("an executor above the minimum waits: {message}"))
            }
        }
    }

    /// A queue's weighted dominant share now (infinite for a queue that cannot be used).
    fn share_of(&mut self, queue: &str) -> f64 {
        let allocated = self
            .queue_usage()
            .get(queue)
            .map(|u| u.allocated)
            .unwrap_or_default();
        match self.queues.index.get(queue) {
            Some(Ok(limits)) => share::dominant_share(&allocated, limits),
            _ => f64::INFINITY,
        }
    }

    /// The lanes of queues of `group` with pending drivers, in the fair order (lowest weighted
    /// dominant share first, then the longest-waiting next gang, then by name), with their
    /// queue's share.
    fn fair_lanes(&mut self, group: &str) -> Vec<(Lane, f64)> {
        let lanes: Vec<Lane> = self
            .pending_drivers
            .range(Lane::first_of(group)..)
            .map(|(l, _)| l)
            .take_while(|l| l.group == group)
            .filter(|l| l.queue.is_some())
            .cloned()
            .collect();
        let mut keyed: Vec<(Lane, f64, Option<Waiting>)> = lanes
            .into_iter()
            .map(|l| {
                let s = self.share_of(l.queue.as_deref().unwrap_or_default());
                let head = self
                    .pending_drivers
                    .get(&l)
                    .and_then(|q| q.first())
                    .map(|at| (-at.priority(), at.created));
                (l, s, head)
            })
            .collect();
        keyed.sort_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then_with(|| a.2.cmp(&b.2))
                .then_with(|| a.0.cmp(&b.0))
        });
        keyed.into_iter().map(|(l, s, _)| (l, s)).collect()
    }

    /// Walks every lane of `group` in the fair order, each after what the lanes before it
    /// take: the plans then hold what decisions will ask (`ClusterState::prepare`).
    pub(super) fn warm_fair_lanes(&mut self, group: &str, now: Timestamp) {
        let mut seed = Vec::new();
        for (lane, _) in self.fair_lanes(group) {
            match self.walk_fifo_plan(&lane, None, &seed, now) {
                FifoVerdict::Clear(taken) => seed = taken,
                FifoVerdict::Blocked(block) => seed = block.taken,
            }
        }
    }

    /// What the lanes of queues ahead of `lane` in the fair order (lower weighted dominant
    /// share) take first, per node; `Err` when one of them is held back by capacity — its
    /// gang must be placed first.
    pub(super) fn fair_seed(
        &mut self,
        lane: &Lane,
        now: Timestamp,
    ) -> Result<Vec<(NodeIdx, Resources)>, Box<FifoBlock>> {
        let Some(mine) = lane.queue.clone() else {
            return Ok(Vec::new());
        };
        let ordered = self.fair_lanes(&lane.group);
        let Some(at) = ordered.iter().position(|(l, _)| l == lane) else {
            return Ok(Vec::new());
        };
        let my_share = ordered[at].1;
        let ahead: Vec<(Lane, f64)> = ordered.into_iter().take(at).collect();
        let mut seed = Vec::new();
        for (other, s) in ahead {
            match self.walk_fifo_plan(&other, None, &seed, now) {
                FifoVerdict::Clear(taken) => seed = taken,
                FifoVerdict::Blocked(block) if block.queue_limited => seed = block.taken,
                FifoVerdict::Blocked(mut block) => {
                    block.message = format!(
                        "queue {} (share {}) goes before queue {mine} (share {}) in the fair \
                         order of instance group {}: {}",
                        other.queue.as_deref().unwrap_or_default(),
                        share_text(s),
                        share_text(my_share),
                        if lane.group.is_empty() {
                            "(none)"
                        } else {
                            lane.group.as_str()
                        },
                        block.message
                    );
                    return Err(block);
                }
            }
        }
        Ok(seed)
    }

    /// Whom a preemption for pending driver `key` (asking `gang`) may evict.
    pub(super) fn victim_scope(&mut self, key: &super::PodKey, gang: &GangDemand) -> VictimScope {
        let Some(queue) = self
            .pods
            .get(key)
            .and_then(|p| p.driver.as_ref())
            .and_then(|d| d.queue.clone())
        else {
            return VictimScope::default();
        };
        let asked = gang.driver + gang.executor.times(i64::from(gang.min_executors));
        let all_held = self.allocated_by_queue(&queue, Resources::ZERO);
        let queue_room = (!matches!(
            share::admit(&self.queues.index, &queue, &all_held, &asked),
            Admission::Admit { .. }
        ))
        .then(|| QueueRoom {
            index: self.queues.index.clone(),
            queue: queue.clone(),
            held: all_held,
            gang: asked,
        });
        let usage = self.queue_usage();
        let held = usage.get(&queue).map(|u| u.allocated).unwrap_or_default();
        // Only a queue whose guarantee names something, and whose gang fits it, reclaims; and
        // only from the queues of its cohort (what they borrowed, they borrowed from it) that
        // hold more than their guarantee (anything, for a queue that guarantees nothing).
        let reclaim = matches!(
            self.queues.index.get(&queue),
            Some(Ok(l)) if l.guaranteed_named.iter().any(|n| *n)
                && held.saturating_add(&asked).fits_in(&l.guarantee_cap())
        );
        let cohort = self.queues.index.cohort(&queue);
        let over_guarantee = self
            .queues
            .index
            .valid()
            .filter(|(name, _)| cohort.contains(name))
            .filter(|(name, l)| {
                usage.get(*name).is_some_and(|u| {
                    let nothing = !l.guaranteed_named.iter().any(|n| *n);
                    (nothing && u.allocated != Resources::ZERO)
                        || !u.allocated.fits_in(&l.guarantee_cap())
                })
            })
            .map(|(name, _)| name.to_owned())
            .collect();
        VictimScope {
            queue: Some(queue),
            reclaim,
            over_guarantee,
            queue_room,
        }
    }

    /// 1-based place of the driver at `at` in `lane`, and the lane's length.
    pub(super) fn lane_position(&self, lane: &Lane, at: &QueuePosition) -> Option<(usize, usize)> {
        let q = self.pending_drivers.get(lane)?;
        q.contains(at).then(|| (q.range(..at).count() + 1, q.len()))
    }

    /// Each queue's status as the leader writes it: what it holds and what waits in it.
    pub fn queue_statuses(&mut self) -> Vec<(String, QueueStatus)> {
        let usage = self.queue_usage();
        let gpu = self.config.gpus.primary().to_owned();
        let mut pending: BTreeMap<String, (u32, Resources)> = BTreeMap::new();
        for (lane, drivers) in &self.pending_drivers {
            let Some(q) = &lane.queue else { continue };
            let p = pending.entry(q.clone()).or_default();
            for at in drivers {
                if self.driver_has_reservation_for_status(&at.key) {
                    continue;
                }
                p.0 += 1;
                if let Some(Ok(d)) = self
                    .pods
                    .get(&at.key)
                    .and_then(|p| p.driver.as_ref())
                    .map(|d| &d.demand)
                {
                    p.1 += d.driver + d.executor.times(i64::from(d.min_executors));
                }
            }
        }
        let names: Vec<String> = self.queue_names();
        names
            .into_iter()
            .map(|name| {
                let u = usage.get(&name).copied().unwrap_or_default();
                let (waiting, asked) = pending.get(&name).copied().unwrap_or_default();
                let mut status = QueueStatus {
                    allocated: u.allocated.to_quantities(&gpu),
                    pending: asked.to_quantities(&gpu),
                    dominant_share: None,
                    pending_applications: waiting,
                    running_applications: u.running,
                    error: None,
                };
                match self.queues.index.get(&name) {
                    Some(Ok(limits)) => {
                        status.dominant_share =
                            Some(share_text(share::dominant_share(&u.allocated, limits)));
                    }
                    Some(Err(e)) => status.error = Some(e.to_string()),
                    None => {}
                }
                (name, status)
            })
            .collect()
    }

    fn driver_has_reservation_for_status(&self, key: &super::PodKey) -> bool {
        self.pods
            .get(key)
            .and_then(|p| p.app.as_ref())
            .is_some_and(|a| self.reservation(a).is_some())
    }

    /// The queue of a driver pod, if it has one.
    pub fn queue_of_pod(&self, key: &super::PodKey) -> Option<String> {
        self.pods.get(key)?.driver.as_ref()?.queue.clone()
    }

    /// Queue `name`'s validated limits, if it has valid ones.
    pub fn queue_limits(&self, name: &str) -> Option<&QueueLimits> {
        self.queues.index.get(name).and_then(|q| q.as_ref().ok())
    }
}
