//! The `Store` handle: its settings, the state it shares between clones, and its simple reads.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::json;

use super::object::{Stored, metadata_mut};
use super::state::{ObjKey, State, obj_key};
use crate::apiserver::clock::{SharedClock, format_time};
use crate::apiserver::resources::{ResourceDef, ResourceTable};
use crate::apiserver::validation::{DefaultsState, apply_create_defaults};

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Events kept per resource for watches that resume from a resourceVersion.
    pub history: usize,
    /// Deleting a pod bound to a node that has not finished marks it (`deletionTimestamp`,
    /// `deletionGracePeriodSeconds`) for its kubelet to stop and remove, as kube-apiserver
    /// does; off, such a pod is removed at once (a kubelet that stops pods instantly).
    pub graceful_pod_deletion: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: 20_000,
            graceful_pod_deletion: false,
        }
    }
}

/// What every clone of a [`Store`] shares.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) table: RwLock<Arc<ResourceTable>>,
    pub(super) clock: SharedClock,
    pub(super) config: StoreConfig,
    /// Bumped by [`Store::expire_history`]: open watches end with 410 Gone.
    pub(super) expire: tokio::sync::watch::Sender<u64>,
    /// Bumped by [`Store::disconnect_watches`]: open watches end quietly.
    pub(super) disconnect: tokio::sync::watch::Sender<u64>,
    pub(super) open_watches: std::sync::atomic::AtomicUsize,
    /// [`StoreConfig::graceful_pod_deletion`], which a simulation may turn on after creating
    /// the store.
    pub(super) graceful: std::sync::atomic::AtomicBool,
}

/// The cluster's objects. Cheap to clone; every clone sees the same objects. The methods
/// behave as the API server does (defaults, validation, optimistic concurrency, watch events,
/// garbage collection) except that they run no admission hook: use
/// [`crate::apiserver::ops::Api`] for that.
#[derive(Clone)]
pub struct Store {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

/// The default namespaces every cluster has.
const DEFAULT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Store {
    pub fn new(table: ResourceTable, clock: SharedClock, config: StoreConfig) -> Self {
        let seed = RandomState::new().build_hasher().finish();
        let graceful = config.graceful_pod_deletion;
        let store = Store {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    rv: 0,
                    collections: HashMap::new(),
                    uids: HashMap::new(),
                    dependents: HashMap::new(),
                    defaults: DefaultsState::default(),
                    rng: seed,
                }),
                table: RwLock::new(Arc::new(table)),
                clock,
                config,
                expire: tokio::sync::watch::Sender::new(0),
                disconnect: tokio::sync::watch::Sender::new(0),
                open_watches: std::sync::atomic::AtomicUsize::new(0),
                graceful: std::sync::atomic::AtomicBool::new(graceful),
            }),
        };
        for ns in DEFAULT_NAMESPACES {
            let mut st = store.lock();
            store.ensure_namespace(&mut st, ns);
        }
        store
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn history(&self) -> usize {
        self.shared.config.history.max(1)
    }

    /// The resource table (a snapshot; CRDs created later are in later snapshots).
    pub fn table(&self) -> Arc<ResourceTable> {
        self.shared
            .table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The resource served at `group/version/plural` (`""` is the core group).
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.table().lookup(group, version, plural)
    }

    /// The resource for an `apiVersion` and `kind`.
    pub fn resource_for(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.table().by_kind(api_version, kind)
    }

    /// Turns graceful pod deletion on or off ([`StoreConfig::graceful_pod_deletion`]).
    pub fn set_graceful_pod_deletion(&self, on: bool) {
        self.shared
            .graceful
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn graceful_pod_deletion(&self) -> bool {
        self.shared
            .graceful
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The clock the store stamps objects with.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// One object, as stored.
    pub fn get(&self, def: &ResourceDef, namespace: &str, name: &str) -> Option<Arc<Stored>> {
        let key = obj_key(def, namespace, name);
        self.lock().get(&key).cloned()
    }

    /// How many objects of `def` there are (all namespaces).
    pub fn count(&self, def: &ResourceDef) -> usize {
        self.lock()
            .collections
            .get(&def.storage)
            .map_or(0, |c| c.objects.len())
    }

    pub(super) fn ensure_namespace(&self, st: &mut State, ns: &str) {
        let key = ObjKey {
            storage: (String::new(), "namespaces".to_owned()),
            namespace: String::new(),
            name: ns.to_owned(),
        };
        if ns.is_empty() || st.get(&key).is_some() {
            return;
        }
        let table = self.table();
        let Some(def) = table.lookup("", "v1", "namespaces") else {
            return;
        };
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        apply_create_defaults(&def, &mut obj, &mut st.defaults);
        let uid = st.new_uid();
        let meta = metadata_mut(&mut obj);
        meta.insert("uid".into(), json!(uid));
        meta.insert(
            "creationTimestamp".into(),
            json!(format_time(self.shared.clock.now())),
        );
        st.put(&key, obj, self.history());
    }
}
