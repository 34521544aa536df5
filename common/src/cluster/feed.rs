//! How watch events feed the state: applies, deletes, and relists that delete what they no
//! longer see. One mechanism for nodes, pods, `ResourceReservation`s,
//! `PodDisruptionBudget`s and `Queue`s.
//!
//! A relist (a watch that restarts) sends every object again between a begin and a done; what
//! memory held at the begin and the relist did not send was deleted while the watch was down
//! (palantir lost such tombstones, its quirk 21). Objects added to memory during the relist (a
//! driver a filter call brought in, say) are not in its snapshot but are not gone either.

use std::collections::HashSet;
use std::hash::Hash;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::api::queue::Queue;
use crate::api::reservation::ResourceReservation;

use super::ClusterState;
use super::budgets::BudgetKey;
use super::decision::Effect;
use super::keys::{AppKey, PodKey};

/// A watch event, as the shell's watcher delivers it (kube-runtime's `watcher::Event`).
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    Apply(T),
    Delete(T),
    /// A relist begins (`Init`).
    RelistBegin,
    /// An object of the relist (`InitApply`).
    RelistApply(T),
    /// The relist is complete (`InitDone`).
    RelistDone,
}

/// What feeding one event produced.
#[derive(Debug, Default)]
pub struct Fed {
    /// API writes to carry out.
    pub effects: Vec<Effect>,
    /// Objects that could not be read, each with why (to log; they are skipped).
    pub problems: Vec<String>,
    /// True once, when every kind has completed its first list: the state has been reconciled
    /// and may answer filter calls.
    pub synced_now: bool,
}

/// A kind of object the state is fed with.
pub trait Watched {
    type Key: Eq + Hash + Clone;
    /// Which of the kinds (for the first-sync bookkeeping).
    const KIND: usize;
    fn key(&self) -> Option<Self::Key>;
    /// The keys memory holds now.
    fn keys(state: &ClusterState) -> Vec<Self::Key>;
    fn apply(&self, state: &mut ClusterState, fed: &mut Fed);
    fn delete(key: &Self::Key, state: &mut ClusterState, fed: &mut Fed);
}

impl Watched for Node {
    type Key = String;
    const KIND: usize = 0;
    fn key(&self) -> Option<String> {
        self.metadata.name.clone()
    }
    fn keys(state: &ClusterState) -> Vec<String> {
        state.node_names()
    }
    fn apply(&self, state: &mut ClusterState, _: &mut Fed) {
        state.apply_node(self);
    }
    fn delete(key: &String, state: &mut ClusterState, _: &mut Fed) {
        state.delete_node(key);
    }
}

impl Watched for Pod {
    type Key = PodKey;
    const KIND: usize = 1;
    fn key(&self) -> Option<PodKey> {
        PodKey::of(self)
    }
    fn keys(state: &ClusterState) -> Vec<PodKey> {
        state.pod_keys()
    }
    fn apply(&self, state: &mut ClusterState, fed: &mut Fed) {
        fed.effects.extend(state.apply_pod(self));
    }
    fn delete(key: &PodKey, state: &mut ClusterState, fed: &mut Fed) {
        fed.effects.extend(state.delete_pod(key));
    }
}

impl Watched for ResourceReservation {
    type Key = AppKey;
    const KIND: usize = 2;
    fn key(&self) -> Option<AppKey> {
        Some(AppKey::new(
            self.metadata.namespace.as_deref().unwrap_or(""),
            &self.spec.app_id,
        ))
    }
    fn keys(state: &ClusterState) -> Vec<AppKey> {
        state.reservation_keys()
    }
    fn apply(&self, state: &mut ClusterState, fed: &mut Fed) {
        match state.apply_reservation(self) {
            Ok(effects) => fed.effects.extend(effects),
            Err(e) => fed.problems.push(e.to_string()),
        }
    }
    fn delete(key: &AppKey, state: &mut ClusterState, _: &mut Fed) {
        state.delete_reservation(&key.namespace, &key.app_id);
    }
}

impl Watched for PodDisruptionBudget {
    type Key = BudgetKey;
    const KIND: usize = 3;
    fn key(&self) -> Option<BudgetKey> {
        Some((
            self.metadata.namespace.clone().unwrap_or_default(),
            self.metadata.name.clone()?,
        ))
    }
    fn keys(state: &ClusterState) -> Vec<BudgetKey> {
        state.budget_keys()
    }
    fn apply(&self, state: &mut ClusterState, _: &mut Fed) {
        state.apply_budget(self);
    }
    fn delete(key: &BudgetKey, state: &mut ClusterState, _: &mut Fed) {
        state.delete_budget(key);
    }
}

impl Watched for Queue {
    type Key = String;
    const KIND: usize = 4;
    fn key(&self) -> Option<String> {
        self.metadata.name.clone()
    }
    fn keys(state: &ClusterState) -> Vec<String> {
        state.queue_names()
    }
    fn apply(&self, state: &mut ClusterState, _: &mut Fed) {
        state.apply_queue(self);
    }
    fn delete(key: &String, state: &mut ClusterState, _: &mut Fed) {
        state.delete_queue(key);
    }
}

/// One kind's relist in progress: what memory held when it began, and what it has sent.
#[derive(Debug)]
struct Relist<K> {
    before: HashSet<K>,
    seen: HashSet<K>,
}

/// The relists in progress of the five kinds, and which kinds have completed a first list.
#[derive(Debug, Default)]
pub struct Feed {
    nodes: Option<Relist<String>>,
    pods: Option<Relist<PodKey>>,
    reservations: Option<Relist<AppKey>>,
    budgets: Option<Relist<BudgetKey>>,
    queues: Option<Relist<String>>,
    listed: [bool; 5],
}

impl Feed {
    pub fn node(&mut self, state: &mut ClusterState, event: WatchEvent<Node>) -> Fed {
        let done = feed(&mut self.nodes, state, event);
        self.finish::<Node>(state, done)
    }

    pub fn pod(&mut self, state: &mut ClusterState, event: WatchEvent<Pod>) -> Fed {
        let done = feed(&mut self.pods, state, event);
        self.finish::<Pod>(state, done)
    }

    pub fn reservation(
        &mut self,
        state: &mut ClusterState,
        event: WatchEvent<ResourceReservation>,
    ) -> Fed {
        let done = feed(&mut self.reservations, state, event);
        self.finish::<ResourceReservation>(state, done)
    }

    pub fn budget(
        &mut self,
        state: &mut ClusterState,
        event: WatchEvent<PodDisruptionBudget>,
    ) -> Fed {
        let done = feed(&mut self.budgets, state, event);
        self.finish::<PodDisruptionBudget>(state, done)
    }

    pub fn queue(&mut self, state: &mut ClusterState, event: WatchEvent<Queue>) -> Fed {
        let done = feed(&mut self.queues, state, event);
        self.finish::<Queue>(state, done)
    }

    /// True once every kind has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.listed.iter().all(|l| *l)
    }

    fn finish<T: Watched>(&mut self, state: &mut ClusterState, done: (Fed, bool)) -> Fed {
        let (mut fed, relist_done) = done;
        if relist_done && !std::mem::replace(&mut self.listed[T::KIND], true) && self.is_synced() {
            fed.effects.extend(state.reconcile());
            fed.synced_now = true;
        }
        fed
    }
}

/// Feeds one event of one kind; true when it completed a relist.
fn feed<T: Watched>(
    relist: &mut Option<Relist<T::Key>>,
    state: &mut ClusterState,
    event: WatchEvent<T>,
) -> (Fed, bool) {
    let mut fed = Fed::default();
    match event {
        WatchEvent::Apply(object) | WatchEvent::RelistApply(object) => {
            if let (Some(r), Some(key)) = (relist.as_mut(), object.key()) {
                r.seen.insert(key);
            }
            object.apply(state, &mut fed);
        }
        WatchEvent::Delete(object) => {
            if let Some(key) = object.key() {
                T::delete(&key, state, &mut fed);
            }
        }
        WatchEvent::RelistBegin => {
            *relist = Some(Relist {
                before: T::keys(state).into_iter().collect(),
                seen: HashSet::new(),
            });
        }
        WatchEvent::RelistDone => {
            if let Some(r) = relist.take() {
                for key in r.before.difference(&r.seen) {
                    T::delete(key, state, &mut fed);
                }
            }
            return (fed, true);
        }
    }
    (fed, false)
}
