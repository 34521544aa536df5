//! What the store's lock guards: objects per resource, change logs, the uid and owner indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::object::{Stored, meta_str};
use crate::apiserver::resources::{ResourceDef, StorageKey};
use crate::apiserver::validation::DefaultsState;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, at one resourceVersion. For `Deleted`, `object` is the last state with the
/// deletion's resourceVersion; for `Modified`, `prev` is the state before.
#[derive(Debug)]
pub struct ChangeEvent {
    pub rv: u64,
    pub kind: EventType,
    pub object: Arc<Stored>,
    pub prev: Option<Arc<Stored>>,
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub storage: StorageKey,
    pub namespace: String,
    pub name: String,
}

/// Where `name` in `ns` of `def` lives (cluster-scoped resources ignore `ns`).
pub(super) fn obj_key(def: &ResourceDef, ns: &str, name: &str) -> ObjKey {
    ObjKey {
        storage: def.storage.clone(),
        namespace: if def.namespaced {
            ns.to_owned()
        } else {
            String::new()
        },
        name: name.to_owned(),
    }
}

/// One resource's objects and its change log.
pub(super) struct Collection {
    pub(super) objects: BTreeMap<(String, String), Arc<Stored>>,
    pub(super) log: VecDeque<Arc<ChangeEvent>>,
    /// Events with `rv <= horizon` may have been dropped from `log`.
    pub(super) horizon: u64,
    pub(super) notify: tokio::sync::watch::Sender<u64>,
}

impl Collection {
    fn new() -> Self {
        Collection {
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            horizon: 0,
            notify: tokio::sync::watch::Sender::new(0),
        }
    }
}

pub(super) struct State {
    pub(super) rv: u64,
    pub(super) collections: HashMap<StorageKey, Collection>,
    pub(super) uids: HashMap<String, ObjKey>,
    /// owner uid → objects whose ownerReferences name it.
    pub(super) dependents: HashMap<String, BTreeSet<ObjKey>>,
    pub(super) defaults: DefaultsState,
    pub(super) rng: u64,
}

impl State {
    pub(super) fn collection(&mut self, key: &StorageKey) -> &mut Collection {
        self.collections
            .entry(key.clone())
            .or_insert_with(Collection::new)
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn new_uid(&mut self) -> String {
        let a = self.next_random();
        let b = self.next_random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    pub(super) fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut r = self.next_random();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                r /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    pub(super) fn get(&self, key: &ObjKey) -> Option<&Arc<Stored>> {
        self.collections
            .get(&key.storage)
            .and_then(|c| c.objects.get(&(key.namespace.clone(), key.name.clone())))
    }

    fn reindex(&mut self, key: &ObjKey, old: Option<&Value>, new: Option<&Value>) {
        let owners = |v: Option<&Value>| -> Vec<String> {
            v.and_then(|v| v.pointer("/metadata/ownerReferences"))
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = |v: Option<&Value>| v.map(|v| meta_str(v, "uid").to_owned());
        if let Some(u) = uid(old).filter(|u| !u.is_empty())
            && new.is_none()
        {
            self.uids.remove(&u);
        }
        if let Some(u) = uid(new).filter(|u| !u.is_empty()) {
            self.uids.insert(u, key.clone());
        }
        let (before, after) = (owners(old), owners(new));
        for o in before.iter().filter(|o| !after.contains(o)) {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
        for o in after.iter().filter(|o| !before.contains(o)) {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    /// Stores `obj` at a new resourceVersion and records the event.
    pub(super) fn put(&mut self, key: &ObjKey, mut obj: Value, history: usize) -> Arc<Stored> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let stored = Arc::new(Stored::new(obj));
        let coll = self.collection(&key.storage);
        let prev = coll
            .objects
            .insert((key.namespace.clone(), key.name.clone()), stored.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        push_event(
            coll,
            ChangeEvent {
                rv,
                kind,
                object: stored.clone(),
                prev: prev.clone(),
            },
            history,
        );
        self.reindex(key, prev.as_ref().map(|p| &p.value), Some(&stored.value));
        stored
    }

    /// Removes an object, recording a `Deleted` event.
    pub(super) fn remove(&mut self, key: &ObjKey, history: usize) -> Option<Arc<Stored>> {
        let coll = self.collections.get_mut(&key.storage)?;
        let old = coll
            .objects
            .remove(&(key.namespace.clone(), key.name.clone()))?;
        self.rv += 1;
        let rv = self.rv;
        let mut last = old.value.clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let deleted = Arc::new(Stored::new(last));
        let coll = self.collection(&key.storage);
        push_event(
            coll,
            ChangeEvent {
                rv,
                kind: EventType::Deleted,
                object: deleted.clone(),
                prev: Some(old.clone()),
            },
            history,
        );
        self.reindex(key, Some(&old.value), None);
        Some(deleted)
    }
}

fn push_event(coll: &mut Collection, event: ChangeEvent, history: usize) {
    let rv = event.rv;
    coll.log.push_back(Arc::new(event));
    while coll.log.len() > history {
        if let Some(e) = coll.log.pop_front() {
            coll.horizon = e.rv;
        }
    }
    coll.notify.send_replace(rv);
}
