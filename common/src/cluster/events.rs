//! Feeding the state: node, pod and reservation events, and the incremental usage accounting.

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::api::reservation::ResourceReservation;
use crate::pods::SparkRole;
use crate::resources::Resources;

use super::ClusterState;
use super::apps::{AppReservation, SoftSlot};
use super::decision::Effect;
use super::keys::{AppKey, PodKey};
use super::pod_entry::PodEntry;

/// A watched object the state cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ResourceReservation {namespace}/{name} is unreadable: {reason}")]
pub struct UnreadableReservation {
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

/// True when resourceVersion `seen` is at least `awaited`: equal, or both numeric (as etcd's
/// are) and not older.
fn resource_version_at_least(seen: Option<&str>, awaited: &str) -> bool {
    match seen {
        None => false,
        Some(s) if s == awaited => true,
        Some(s) => match (s.parse::<u64>(), awaited.parse::<u64>()) {
            (Ok(a), Ok(b)) => a >= b,
            _ => false,
        },
    }
}

impl ClusterState {
    /// A node was added or changed.
    pub fn apply_node(&mut self, node: &Node) {
        if self.nodes.apply(node, &self.config.gpus).is_some() {
            self.plan_epoch += 1;
        }
    }

    /// A node was deleted.
    pub fn delete_node(&mut self, name: &str) {
        self.nodes.remove(name);
        self.plan_epoch += 1;
    }

    /// A pod was added or changed. Returns writes to make (a finished driver releases its
    /// reservation; an executor bound outside our decisions is adopted into a free slot).
    pub fn apply_pod(&mut self, pod: &Pod) -> Vec<Effect> {
        let Some(mut entry) = PodEntry::from_pod(pod, &self.config) else {
            return Vec::new();
        };
        let key = entry.key.clone();
        if entry.driver.is_some() {
            let queue = self.resolve_queue(&entry);
            if let Some(d) = entry.driver.as_mut() {
                d.queue = queue;
            }
        }
        let mut effects = Vec::new();
        let replaced = self.pods.get(&key).is_some_and(|old| {
            !old.uid.is_empty() && !entry.uid.is_empty() && old.uid != entry.uid
        });
        if replaced {
            effects.extend(self.delete_pod(&key));
        }
        let previous = self.pods.remove(&key);
        if let Some(prev) = &previous {
            entry.counted = prev.counted;
            self.unindex_pending(prev);
        }
        if let Some(app) = &entry.app {
            let a = self.apps.entry(app.clone()).or_default();
            match entry.role {
                Some(SparkRole::Driver) => {
                    if a.driver.as_ref().is_some_and(|d| *d != key) {
                        self.fifo.shared_app_ids = true;
                    }
                    a.driver = Some(key.clone());
                }
                Some(SparkRole::Executor) => {
                    a.executors.insert(key.clone());
                }
                None => {}
            }
        }
        let newly_bound =
            entry.node.is_some() && previous.as_ref().is_none_or(|p| p.node != entry.node);
        let role = entry.role;
        let app = entry.app.clone();
        let driver_done = role == Some(SparkRole::Driver) && (entry.finished || entry.deleting);
        let executor_done = role == Some(SparkRole::Executor) && entry.finished;
        self.index_pending(&entry);
        self.pods.insert(key.clone(), entry);

        if let Some(app) = app {
            if role == Some(SparkRole::Driver) {
                // Its application's charge follows the driver's queue.
                self.recharge(&app);
            }
            if driver_done {
                effects.extend(self.release_app(&app));
            } else if executor_done {
                self.set_soft(&app, &key.name, None);
            } else if newly_bound && role == Some(SparkRole::Executor) {
                effects.extend(self.adopt_executor(&app, &key));
            }
        }
        self.refresh_pod_usage(&key);
        effects
    }

    /// A pod was deleted.
    pub fn delete_pod(&mut self, key: &PodKey) -> Vec<Effect> {
        let Some(entry) = self.pods.remove(key) else {
            return Vec::new();
        };
        self.unindex_pending(&entry);
        if let Some((idx, amount, foreign)) = entry.counted {
            self.add_pod_usage(idx, amount, foreign, false);
        }
        let mut effects = vec![Effect::DeleteDemand(key.clone())];
        if let Some(app) = &entry.app {
            if let Some(a) = self.apps.get_mut(app) {
                match entry.role {
                    Some(SparkRole::Driver) if a.driver.as_ref() == Some(key) => a.driver = None,
                    Some(SparkRole::Executor) => {
                        a.executors.remove(key);
                    }
                    _ => {}
                }
            }
            match entry.role {
                Some(SparkRole::Driver) => {
                    effects.extend(self.release_app(app));
                    self.recharge(app);
                }
                Some(SparkRole::Executor) => {
                    self.set_soft(app, &key.name, None);
                    // Slots that named this pod are free now; nothing to recount.
                }
                None => {}
            }
            self.forget_app_if_empty(app);
        }
        effects
    }

    /// A `ResourceReservation` was added or changed in the API.
    ///
    /// While our own write for the application is outstanding, or until the watch has caught
    /// up with it, events for it are stale and ignored: memory is ahead of the API.
    pub fn apply_reservation(
        &mut self,
        rr: &ResourceReservation,
    ) -> Result<Vec<Effect>, UnreadableReservation> {
        let namespace = rr.metadata.namespace.clone().unwrap_or_default();
        let app = AppKey::new(&namespace, &rr.spec.app_id);
        let entry = self.apps.entry(app.clone()).or_default();
        if entry.sync.has_unwritten_changes() {
            return Ok(Vec::new());
        }
        if let Some(awaited) = &entry.sync.awaiting {
            if !resource_version_at_least(rr.metadata.resource_version.as_deref(), awaited) {
                return Ok(Vec::new());
            }
            entry.sync.awaiting = None;
        }
        let reservation = AppReservation::from_object(rr, &self.config.gpus).map_err(|reason| {
            UnreadableReservation {
                namespace,
                name: rr.metadata.name.clone().unwrap_or_default(),
                reason,
            }
        })?;
        self.set_reservation(&app, Some(reservation));
        // A reservation whose driver already finished is released at once (palantir #118).
        let driver_done = self
            .apps
            .get(&app)
            .and_then(|a| a.driver.as_ref())
            .and_then(|d| self.pods.get(d))
            .is_some_and(|d| d.finished || d.deleting);
        if driver_done {
            return Ok(self.release_app(&app));
        }
        Ok(Vec::new())
    }

    /// A `ResourceReservation` was deleted in the API.
    pub fn delete_reservation(&mut self, namespace: &str, app_id: &str) {
        let app = AppKey::new(namespace, app_id);
        let Some(entry) = self.apps.get_mut(&app) else {
            return;
        };
        if entry.sync.has_unwritten_changes() {
            return;
        }
        entry.sync.awaiting = None;
        self.set_reservation(&app, None);
        self.forget_app_if_empty(&app);
    }

    /// The API object the reservation of `app` should have (`None`: it should not exist), and
    /// the change counter to report back to [`ClusterState::reservation_written`].
    pub fn reservation_object(&self, app: &AppKey) -> (Option<ResourceReservation>, u64) {
        match self.apps.get(app) {
            Some(a) => (
                a.reservation
                    .as_ref()
                    .map(|r| r.to_object(app, &self.config.gpus)),
                a.sync.desired,
            ),
            None => (None, 0),
        }
    }

    /// Whether the API's object (`None`: absent) already says what memory says: then a write
    /// whose answer was lost has landed and must not be sent again.
    pub fn reservation_matches(&self, app: &AppKey, current: Option<&ResourceReservation>) -> bool {
        match (self.reservation_object(app).0, current) {
            (None, None) => true,
            (Some(ours), Some(theirs)) => {
                let preempting = |rr: &ResourceReservation| {
                    rr.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(crate::api::PREEMPTING_ANNOTATION))
                        .cloned()
                };
                ours.spec == theirs.spec
                    && ours.status == theirs.status
                    && preempting(&ours) == preempting(theirs)
            }
            _ => false,
        }
    }

    /// The write of change `desired` succeeded; `resource_version` is the object's new one
    /// (`None` after a delete).
    pub fn reservation_written(
        &mut self,
        app: &AppKey,
        desired: u64,
        resource_version: Option<String>,
    ) {
        if let Some(a) = self.apps.get_mut(app) {
            a.sync.written = a.sync.written.max(desired);
            if let Some(r) = a.reservation.as_mut() {
                r.resource_version = resource_version.clone();
            }
            a.sync.awaiting = resource_version;
        }
        self.forget_app_if_empty(app);
    }

    /// Writes for `app` could not succeed: take the API's object (`None`: it does not exist)
    /// as the truth, whatever memory said, and give running executors that lost their slot
    /// with it a free one again (the writes that returns).
    pub fn reset_reservation_from_api(
        &mut self,
        app: &AppKey,
        rr: Option<&ResourceReservation>,
    ) -> Result<Vec<Effect>, UnreadableReservation> {
        let reservation = rr
            .map(|rr| {
                AppReservation::from_object(rr, &self.config.gpus).map_err(|reason| {
                    UnreadableReservation {
                        namespace: app.namespace.clone(),
                        name: rr.metadata.name.clone().unwrap_or_default(),
                        reason,
                    }
                })
            })
            .transpose()?;
        let entry = self.apps.entry(app.clone()).or_default();
        entry.sync.written = entry.sync.desired;
        entry.sync.awaiting = None;
        self.set_reservation(app, reservation);
        // Executors bound meanwhile may have lost their slot with the memory that was reset.
        let executors: Vec<PodKey> = self
            .apps
            .get(app)
            .map(|a| a.executors.iter().cloned().collect())
            .unwrap_or_default();
        let mut effects = Vec::new();
        for e in executors {
            if self.pods.get(&e).is_some_and(|p| p.is_active_on_node()) {
                effects.extend(self.adopt_executor(app, &e));
            }
        }
        self.forget_app_if_empty(app);
        Ok(effects)
    }

    /// Applications with changes not yet written, for a writer that restarts.
    pub fn unwritten_reservations(&self) -> Vec<AppKey> {
        self.apps
            .iter()
            .filter(|(_, a)| a.sync.has_unwritten_changes())
            .map(|(k, _)| k.clone())
            .collect()
    }

    // ---- internal bookkeeping ------------------------------------------------------------

    /// Releases everything an application holds (its driver finished or went away).
    pub(super) fn release_app(&mut self, app: &AppKey) -> Vec<Effect> {
        let Some(a) = self.apps.get(app) else {
            return Vec::new();
        };
        let had_reservation = a.reservation.is_some();
        let soft: Vec<String> = a.soft.keys().cloned().collect();
        for pod in soft {
            self.set_soft(app, &pod, None);
        }
        if !had_reservation {
            return Vec::new();
        }
        self.set_reservation(app, None);
        self.mark_changed(app);
        vec![Effect::SyncReservation(app.clone())]
    }

    /// Records that the reservation of `app` changed in memory and must be written.
    pub(super) fn mark_changed(&mut self, app: &AppKey) {
        let a = self.apps.entry(app.clone()).or_default();
        a.sync.desired += 1;
        a.sync.awaiting = None;
    }

    /// Replaces the reservation of `app`, moving its slots' usage between nodes.
    pub(super) fn set_reservation(&mut self, app: &AppKey, new: Option<AppReservation>) {
        let a = self.apps.entry(app.clone()).or_default();
        let old = std::mem::replace(&mut a.reservation, new);
        if old.is_some() != a.reservation.is_some()
            && let Some(p) = a.driver.as_ref().and_then(|d| self.pods.get(d))
            && p.is_pending_driver()
        {
            // Its driver's place in the FIFO plan changes (it is counted by its reservation).
            self.fifo.changed(&p.lane(), &p.queue_position());
        }
        let new_slots: Vec<(String, Resources)> = a
            .reservation
            .iter()
            .flat_map(|r| r.slots.values().map(|s| (s.node.clone(), s.resources)))
            .collect();
        for slot in old.iter().flat_map(|r| r.slots.values()) {
            let i = self.nodes.index_or_placeholder(&slot.node);
            self.nodes.update_usage(i, |u| u.reserved -= slot.resources);
        }
        for (node, resources) in new_slots {
            let i = self.nodes.index_or_placeholder(&node);
            self.nodes.update_usage(i, |u| u.reserved += resources);
        }
        self.plan_epoch += 1;
        self.recharge(app);
        self.refresh_app_usage(app);
    }

    /// Adds, moves or removes the soft reservation of executor `pod` of `app`.
    pub(super) fn set_soft(&mut self, app: &AppKey, pod: &str, new: Option<SoftSlot>) {
        let Some(a) = self.apps.get_mut(app) else {
            return;
        };
        let old = match &new {
            Some(s) => {
                a.soft_seen.insert(pod.to_owned());
                a.soft.insert(pod.to_owned(), s.clone())
            }
            None => a.soft.remove(pod),
        };
        if old == new {
            return;
        }
        if let Some(o) = old {
            let i = self.nodes.index_or_placeholder(&o.node);
            self.nodes.update_usage(i, |u| u.soft -= o.resources);
        }
        if let Some(n) = new {
            let i = self.nodes.index_or_placeholder(&n.node);
            self.nodes.update_usage(i, |u| u.soft += n.resources);
        }
        self.plan_epoch += 1;
        self.recharge(app);
        self.refresh_pod_usage(&PodKey::new(&app.namespace, pod));
    }

    /// Recomputes what each pod of `app` adds to its node (coverage by slots changed).
    pub(super) fn refresh_app_usage(&mut self, app: &AppKey) {
        let Some(a) = self.apps.get(app) else {
            return;
        };
        let pods: Vec<PodKey> = a.driver.iter().chain(a.executors.iter()).cloned().collect();
        for p in pods {
            self.refresh_pod_usage(&p);
        }
    }

    /// What of this pod's requests its reservation (slot or soft slot on its node) covers.
    fn coverage(&self, pod: &PodEntry) -> Resources {
        let (Some(app), Some(node)) = (&pod.app, &pod.node) else {
            return Resources::ZERO;
        };
        let Some(a) = self.apps.get(app) else {
            return Resources::ZERO;
        };
        if let Some(s) = a.soft.get(&pod.key.name)
            && &s.node == node
        {
            return s.resources;
        }
        a.reservation
            .as_ref()
            .and_then(|r| r.slot_of_pod(&pod.key.name))
            .filter(|(_, s)| &s.node == node)
            .map_or(Resources::ZERO, |(_, s)| s.resources)
    }

    /// Brings a pod's contribution to node usage in line with its current state.
    pub(super) fn refresh_pod_usage(&mut self, key: &PodKey) {
        let Some(pod) = self.pods.get(key) else {
            return;
        };
        let desired = match (&pod.node, pod.finished) {
            (Some(node), false) => {
                let amount = pod.requests.excess_over(&self.coverage(pod));
                let foreign = !pod.ours;
                Some((node.clone(), amount, foreign))
            }
            _ => None,
        };
        let current = pod.counted;
        let desired = desired.map(|(node, amount, foreign)| {
            (self.nodes.index_or_placeholder(&node), amount, foreign)
        });
        if current == desired {
            return;
        }
        if let Some((i, amount, foreign)) = current {
            self.add_pod_usage(i, amount, foreign, false);
        }
        if let Some((i, amount, foreign)) = desired {
            self.add_pod_usage(i, amount, foreign, true);
        }
        if let Some(p) = self.pods.get_mut(key) {
            p.counted = desired;
        }
    }

    fn add_pod_usage(&mut self, i: usize, amount: Resources, foreign: bool, add: bool) {
        self.nodes.update_usage(i, |u| {
            if add {
                u.pods += amount;
                if foreign {
                    u.foreign_pods += amount;
                }
            } else {
                u.pods -= amount;
                if foreign {
                    u.foreign_pods -= amount;
                }
            }
        });
        self.plan_epoch += 1;
    }

    /// An executor bound to a node without our decision (after a restart, or a lost write):
    /// give it a free slot on its node, else move a free slot there, else a soft reservation
    /// if dynamic allocation allows one more, else it counts as a plain pod.
    pub(super) fn adopt_executor(&mut self, app: &AppKey, key: &PodKey) -> Vec<Effect> {
        let Some(pod) = self.pods.get(key) else {
            return Vec::new();
        };
        let Some(node) = pod.node.clone() else {
            return Vec::new();
        };
        let Some(a) = self.apps.get(app) else {
            return Vec::new();
        };
        let Some(res) = &a.reservation else {
            return Vec::new();
        };
        if res
            .slot_of_pod(&key.name)
            .is_some_and(|(_, s)| s.node == node)
            || a.soft.get(&key.name).is_some_and(|s| s.node == node)
        {
            return Vec::new();
        }
        let free: Vec<(String, String)> = res
            .executor_slots()
            .filter(|(_, s)| self.slot_is_free(&app.namespace, s.pod.as_deref(), &s.node))
            .map(|(name, s)| (name.clone(), s.node.clone()))
            .collect();
        let chosen = free
            .iter()
            .find(|(_, n)| *n == node)
            .or_else(|| free.first())
            .map(|(name, _)| name.clone());
        if let Some(slot) = chosen {
            let mut r = res.clone();
            for s in r.slots.values_mut() {
                if s.pod.as_deref() == Some(key.name.as_str()) {
                    s.pod = None;
                }
            }
            if let Some(s) = r.slots.get_mut(&slot) {
                s.node = node;
                s.pod = Some(key.name.clone());
            }
            self.set_soft(app, &key.name, None);
            self.set_reservation(app, Some(r));
            self.mark_changed(app);
            return vec![Effect::SyncReservation(app.clone())];
        }
        if self.free_soft_spots(app) > 0 {
            let executor = self
                .app_demand(app)
                .map_or(pod.requests, |d| d.executor.max(&pod.requests));
            self.set_soft(
                app,
                &key.name,
                Some(SoftSlot {
                    node,
                    resources: executor,
                }),
            );
        }
        Vec::new()
    }

    /// A slot is free when no live pod on its node holds it: no pod named, the named pod is
    /// gone or finished, or it runs on another node.
    pub(super) fn slot_is_free(&self, namespace: &str, pod: Option<&str>, node: &str) -> bool {
        let Some(name) = pod else {
            return true;
        };
        match self.pods.get(&PodKey::new(namespace, name)) {
            None => true,
            Some(p) => p.finished || p.deleting || p.node.as_deref().is_some_and(|n| n != node),
        }
    }

    fn forget_app_if_empty(&mut self, app: &AppKey) {
        if self.apps.get(app).is_some_and(|a| a.is_empty()) {
            self.apps.remove(app);
        }
    }

    fn index_pending(&mut self, pod: &PodEntry) {
        if pod.is_pending_driver() {
            let lane = pod.lane();
            self.fifo.changed(&lane, &pod.queue_position());
            self.pending_drivers
                .entry(lane)
                .or_default()
                .insert(pod.queue_position());
            self.plan_epoch += 1;
        }
    }

    fn unindex_pending(&mut self, pod: &PodEntry) {
        let lane = pod.lane();
        if let Some(q) = self.pending_drivers.get_mut(&lane)
            && q.remove(&pod.queue_position())
        {
            self.fifo.changed(&lane, &pod.queue_position());
            if q.is_empty() {
                self.pending_drivers.remove(&lane);
            }
            self.plan_epoch += 1;
        }
    }
}

impl ClusterState {
    /// The API holds `resource_version` for the reservation of `app` (read after a conflict),
    /// or no object at all (`None`): the next write replaces that version, or creates.
    pub fn adopt_resource_version(&mut self, app: &AppKey, resource_version: Option<String>) {
        if let Some(r) = self.apps.get_mut(app).and_then(|a| a.reservation.as_mut()) {
            r.resource_version = resource_version;
        }
    }

    /// Every tracked pod.
    pub fn pod_keys(&self) -> Vec<PodKey> {
        self.pods.keys().cloned().collect()
    }

    /// Every node name, present or not.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Applications with a reservation in memory.
    pub fn reservation_keys(&self) -> Vec<AppKey> {
        self.reservations().map(|(k, _)| k.clone()).collect()
    }

    /// Drivers of ours still gated (waiting for their demand).
    pub fn is_gated_driver(&self, key: &PodKey) -> bool {
        self.pods
            .get(key)
            .and_then(|p| p.driver.as_ref())
            .is_some_and(|d| d.gated)
    }
}

#[cfg(test)]
mod unit {
    use super::resource_version_at_least;

    #[test]
    fn resource_versions() {
        assert!(resource_version_at_least(Some("5"), "5"));
        assert!(resource_version_at_least(Some("12"), "9"));
        assert!(!resource_version_at_least(Some("9"), "12"));
        assert!(!resource_version_at_least(None, "1"));
        assert!(resource_version_at_least(Some("abc"), "abc"));
        assert!(!resource_version_at_least(Some("abd"), "abc"));
    }
}
