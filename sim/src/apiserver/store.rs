//! The object store: JSON objects per resource, one global resourceVersion, bounded watch history, owner GC.
//!
//! Every write runs under one mutex (like etcd, writes are serialised) and appends exactly one
//! event per changed object to its resource's history; watchers read that history with their
//! own cursor (see `watch.rs`), so fan-out costs one `Arc` clone per event and watcher. Objects
//! are kept as `Arc<Stored>`, which caches its JSON encoding: a list of 10,000 pods or an event
//! sent to five watchers is serialised once.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::clock::{SharedClock, format_time};
use super::errors::ApiError;
use super::resources::{ResourceDef, ResourceTable, StorageKey, Subresource, View};
use super::selectors::Selectors;
use super::validation::{DefaultsState, apply_create_defaults, spec_changed, validate};

/// An object as stored, with its JSON encoding computed once on first use.
#[derive(Debug)]
pub struct Stored {
    pub value: Value,
    json: OnceLock<Bytes>,
}

impl Stored {
    pub fn new(value: Value) -> Self {
        Stored {
            value,
            json: OnceLock::new(),
        }
    }

    /// The object's JSON encoding (cached).
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&self.value).unwrap_or_default()))
            .clone()
    }

    pub fn name(&self) -> &str {
        meta_str(&self.value, "name")
    }

    pub fn namespace(&self) -> &str {
        meta_str(&self.value, "namespace")
    }

    pub fn uid(&self) -> &str {
        meta_str(&self.value, "uid")
    }

    /// `metadata.resourceVersion` as a number (0 when absent).
    pub fn resource_version(&self) -> u64 {
        meta_str(&self.value, "resourceVersion")
            .parse()
            .unwrap_or(0)
    }
}

fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

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

struct Collection {
    objects: BTreeMap<(String, String), Arc<Stored>>,
    log: VecDeque<Arc<ChangeEvent>>,
    /// Events with `rv <= horizon` may have been dropped from `log`.
    horizon: u64,
    notify: tokio::sync::watch::Sender<u64>,
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

struct State {
    rv: u64,
    collections: HashMap<StorageKey, Collection>,
    uids: HashMap<String, ObjKey>,
    /// owner uid → objects whose ownerReferences name it.
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    defaults: DefaultsState,
    rng: u64,
}

impl State {
    fn collection(&mut self, key: &StorageKey) -> &mut Collection {
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

    fn new_uid(&mut self) -> String {
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

    fn random_suffix(&mut self) -> String {
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

    fn get(&self, key: &ObjKey) -> Option<&Arc<Stored>> {
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
    fn put(&mut self, key: &ObjKey, mut obj: Value, history: usize) -> Arc<Stored> {
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
    fn remove(&mut self, key: &ObjKey, history: usize) -> Option<Arc<Stored>> {
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

/// How dependents of a deleted object are treated (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted (synchronously, right after the owner). `Foreground` is
    /// treated the same way.
    #[default]
    Background,
    /// Dependents lose their ownerReference to the deleted object and stay.
    Orphan,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and return the result, store nothing.
    pub dry_run: bool,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

/// An update computed against one version of an object, to be committed if that version is
/// still current.
#[derive(Debug, Clone)]
pub struct PreparedUpdate {
    pub old: Arc<Stored>,
    pub new: Value,
    /// The client pinned `metadata.resourceVersion`: a concurrent change is a 409, not a retry.
    pub pinned: bool,
}

/// The outcome of committing an update.
#[derive(Debug)]
pub enum UpdateOutcome {
    Done(Arc<Stored>),
    /// The object changed since it was read (and the client did not pin a version): retry.
    Retry,
}

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Events kept per resource for watches that resume from a resourceVersion.
    pub history: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { history: 20_000 }
    }
}

struct Shared {
    state: Mutex<State>,
    table: RwLock<Arc<ResourceTable>>,
    clock: SharedClock,
    config: StoreConfig,
    /// Bumped by [`Store::expire_history`]: open watches end with 410 Gone.
    expire: tokio::sync::watch::Sender<u64>,
    /// Bumped by [`Store::disconnect_watches`]: open watches end quietly.
    disconnect: tokio::sync::watch::Sender<u64>,
    open_watches: std::sync::atomic::AtomicUsize,
}

/// The cluster's objects. Cheap to clone; every clone sees the same objects. The methods
/// behave as the API server does (defaults, validation, optimistic concurrency, watch events,
/// garbage collection) except that they run no admission hook: use
/// [`super::ops::Api`] for that.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

fn obj_key(def: &ResourceDef, ns: &str, name: &str) -> ObjKey {
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

/// `metadata` of `v` as a mutable map (created when absent).
pub fn metadata_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = Value::Object(Map::new());
    }
    v["metadata"].as_object_mut().expect("object")
}

/// The default namespaces every cluster has.
const DEFAULT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Store {
    pub fn new(table: ResourceTable, clock: SharedClock, config: StoreConfig) -> Self {
        let seed = RandomState::new().build_hasher().finish();
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
            }),
        };
        for ns in DEFAULT_NAMESPACES {
            let mut st = store.lock();
            store.ensure_namespace(&mut st, ns);
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn history(&self) -> usize {
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

    /// Registers a CustomResourceDefinition's resources (JSON or YAML text).
    pub fn register_crd(&self, crd: &Value) -> Result<(), ApiError> {
        let mut table = self.shared.table.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**table).clone();
        next.add_crd(crd).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("CustomResourceDefinition is invalid: {e}"),
            )
        })?;
        *table = Arc::new(next);
        Ok(())
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

    /// Objects of `def` (in `namespace`, or all namespaces) matching `selectors`, in
    /// namespace/name order, paged by `limit` / `continue_token`.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        selectors: &Selectors,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListResult, ApiError> {
        let namespace = namespace.filter(|n| def.namespaced && !n.is_empty());
        let (cont_rv, start) = match continue_token {
            Some(t) if !t.is_empty() => {
                let (rv, ns, name) = parse_continue(t)?;
                (Some(rv), Some((ns, name)))
            }
            _ => (None, None),
        };
        let st = self.lock();
        let Some(coll) = st.collections.get(&def.storage) else {
            return Ok(ListResult {
                items: Vec::new(),
                resource_version: st.rv,
                continue_token: None,
            });
        };
        if let Some(rv) = cont_rv
            && rv < coll.horizon
        {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        let list_rv = cont_rv.unwrap_or(st.rv);
        // A name pinned by the field selector: no scan.
        if let (Some(ns), Some(name)) = (
            namespace.or(if def.namespaced { None } else { Some("") }),
            selectors.fields.pinned_name(),
        ) {
            let items = coll
                .objects
                .get(&(ns.to_owned(), name.to_owned()))
                .filter(|o| selectors.matches(&o.value))
                .cloned()
                .into_iter()
                .collect();
            return Ok(ListResult {
                items,
                resource_version: list_rv,
                continue_token: None,
            });
        }
        let lower = match (&start, namespace) {
            (Some((ns, name)), _) => Bound::Excluded((ns.clone(), name.clone())),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for ((ns, _), obj) in coll.objects.range((lower, Bound::Unbounded)) {
            if namespace.is_some_and(|n| n != ns) {
                break;
            }
            if !selectors.matches(&obj.value) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(obj.clone());
        }
        let continue_token = if more {
            items
                .last()
                .map(|last| format!("{list_rv}/{}/{}", last.namespace(), last.name()))
        } else {
            None
        };
        Ok(ListResult {
            items,
            resource_version: list_rv,
            continue_token,
        })
    }

    fn ensure_namespace(&self, st: &mut State, ns: &str) {
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

    /// Checks and defaults a create body (before admission): `apiVersion`/`kind`,
    /// `metadata.namespace` from the path, no `resourceVersion`, the create-time defaults.
    pub fn prepare_create(
        &self,
        def: &ResourceDef,
        namespace: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a create must be a {} object",
                def.kind
            )));
        }
        if def.view == View::EventsV1 {
            body = super::conversion::events_v1_to_core(&body);
        }
        let expected_api_version = if def.view == View::EventsV1 {
            "v1".to_owned()
        } else {
            def.api_version()
        };
        check_type_meta(&mut body, &expected_api_version, &def.kind)?;
        let meta = metadata_mut(&mut body);
        if def.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if !def.group.is_empty() && def.has(Subresource::Status) {
            // Custom resources with a status subresource ignore status on create.
            if let Some(m) = body.as_object_mut() {
                m.remove("status");
            }
        }
        let mut st = self.lock();
        apply_create_defaults(def, &mut body, &mut st.defaults);
        Ok(body)
    }

    /// Stores a prepared (and admitted) new object: generates the name, checks it is free,
    /// sets uid, creationTimestamp, generation and resourceVersion. Creates its namespace
    /// when missing.
    pub fn commit_create(
        &self,
        def: &ResourceDef,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        let now = format_time(self.shared.clock.now());
        let mut st = self.lock();
        apply_create_defaults(def, &mut obj, &mut st.defaults);
        let ns = meta_str(&obj, "namespace").to_owned();
        let mut name = meta_str(&obj, "name").to_owned();
        let generate = meta_str(&obj, "generateName").to_owned();
        if name.is_empty() && !generate.is_empty() {
            loop {
                let candidate = format!("{generate}{}", st.random_suffix());
                if st.get(&obj_key(def, &ns, &candidate)).is_none() {
                    name = candidate;
                    break;
                }
            }
            metadata_mut(&mut obj).insert("name".into(), json!(name));
        }
        validate(def, &obj, None)?;
        let key = obj_key(def, &ns, &name);
        if st.get(&key).is_some() {
            return Err(ApiError::already_exists(&def.qualified(), &name).details(
                &name,
                &def.group,
                &def.plural,
            ));
        }
        let uid = st.new_uid();
        let meta = metadata_mut(&mut obj);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("generation".into(), json!(1));
        if is_crd(def) {
            let crd_status = crd_status(&obj);
            obj["status"] = crd_status;
        }
        if opts.dry_run {
            return Ok(Arc::new(Stored::new(obj)));
        }
        if is_crd(def) {
            self.register_crd(&obj)?;
        }
        if def.namespaced {
            self.ensure_namespace(&mut st, &ns);
        }
        Ok(st.put(&key, obj, self.history()))
    }

    /// Creates an object as `POST` would, without admission.
    pub fn create(
        &self,
        def: &ResourceDef,
        namespace: &str,
        body: Value,
    ) -> Result<Arc<Stored>, ApiError> {
        let obj = self.prepare_create(def, namespace, body)?;
        self.commit_create(def, obj, &WriteOptions::default())
    }

    /// Computes an update of the current object: `change` gets the current object (in the
    /// endpoint's view) and returns the desired one (a PUT body, or the patched object).
    /// Applies the rules of the main resource or of `subresource`.
    pub fn prepare_update(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<PreparedUpdate, ApiError> {
        let old = self.get(def, namespace, name).ok_or_else(|| {
            ApiError::not_found(&def.qualified(), name).details(name, &def.group, &def.plural)
        })?;
        let current = view_of(def, &old.value);
        let mut body = change(&current)?;
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of an update must be a {} object",
                def.kind
            )));
        }
        if def.view == View::EventsV1 {
            body = super::conversion::events_v1_to_core(&body);
        }
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&body, "namespace");
        if def.namespaced && !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let body_rv = meta_str(&body, "resourceVersion").to_owned();
        let pinned = !body_rv.is_empty();
        if pinned && body_rv != meta_str(&old.value, "resourceVersion") {
            return Err(ApiError::stale(&def.qualified(), name).details(
                name,
                &def.group,
                &def.plural,
            ));
        }
        let status_separate = def.has(Subresource::Status);
        let mut new = match subresource {
            Some(Subresource::Status) => {
                let mut new = old.value.clone();
                match body.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                new
            }
            _ => {
                let mut new = body;
                let expected = old.value.get("apiVersion").cloned().unwrap_or(Value::Null);
                new["apiVersion"] = expected;
                new["kind"] = json!(def.kind);
                if status_separate {
                    match old.value.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                // Fields the client cannot change.
                let old_meta = old.value.get("metadata").cloned().unwrap_or(json!({}));
                let meta = metadata_mut(&mut new);
                for k in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "generateName",
                ] {
                    match old_meta.get(k) {
                        Some(v) => meta.insert(k.to_owned(), v.clone()),
                        None => meta.remove(k),
                    };
                }
                meta.remove("managedFields");
                meta.remove("selfLink");
                new
            }
        };
        metadata_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(meta_str(&old.value, "resourceVersion")),
        );
        if spec_changed(&old.value, &new, status_separate) {
            let g = old
                .value
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if subresource != Some(Subresource::Status) {
            validate(def, &new, Some(&old.value))?;
        }
        Ok(PreparedUpdate { old, new, pinned })
    }

    /// Commits a prepared (and admitted) update if the object is unchanged since it was read.
    /// A no-op update returns the current object without a new resourceVersion, as the real
    /// server does. Removing the last finalizer of an object being deleted deletes it.
    pub fn commit_update(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        prepared: PreparedUpdate,
        opts: &WriteOptions,
    ) -> Result<UpdateOutcome, ApiError> {
        let PreparedUpdate {
            old,
            mut new,
            pinned,
        } = prepared;
        let name = old.name().to_owned();
        let key = obj_key(def, old.namespace(), &name);
        let mut st = self.lock();
        let Some(current) = st.get(&key).cloned() else {
            return Err(ApiError::not_found(&def.qualified(), &name).details(
                &name,
                &def.group,
                &def.plural,
            ));
        };
        if !Arc::ptr_eq(&current, &old) {
            return if pinned {
                Err(ApiError::stale(&def.qualified(), &name).details(
                    &name,
                    &def.group,
                    &def.plural,
                ))
            } else {
                Ok(UpdateOutcome::Retry)
            };
        }
        if subresource != Some(Subresource::Status) {
            // Admission may have changed the object: check again.
            validate(def, &new, Some(&old.value))?;
        }
        metadata_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(meta_str(&old.value, "resourceVersion")),
        );
        if new == old.value {
            return Ok(UpdateOutcome::Done(old));
        }
        if opts.dry_run {
            return Ok(UpdateOutcome::Done(Arc::new(Stored::new(new))));
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
        if is_crd(def) {
            self.register_crd(&new)?;
        }
        let stored = st.put(&key, new, self.history());
        if finalized {
            let deleted = self.delete_locked(&mut st, def, &key, Propagation::Background);
            return Ok(UpdateOutcome::Done(deleted.unwrap_or(stored)));
        }
        Ok(UpdateOutcome::Done(stored))
    }

    /// Replaces an object as `PUT` would (main resource or `status`), without admission.
    pub fn update(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        name: &str,
        body: Value,
    ) -> Result<Arc<Stored>, ApiError> {
        loop {
            let body = body.clone();
            let prepared = self.prepare_update(def, subresource, namespace, name, |_| Ok(body))?;
            match self.commit_update(def, subresource, prepared, &WriteOptions::default())? {
                UpdateOutcome::Done(s) => return Ok(s),
                UpdateOutcome::Retry => continue,
            }
        }
    }

    /// Changes an object with a closure over its current state, retrying on concurrent
    /// changes (a read-modify-write without admission).
    pub fn modify(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(&mut Value),
    ) -> Result<Arc<Stored>, ApiError> {
        loop {
            let prepared = self.prepare_update(def, subresource, namespace, name, |cur| {
                let mut v = cur.clone();
                change(&mut v);
                Ok(v)
            })?;
            match self.commit_update(def, subresource, prepared, &WriteOptions::default())? {
                UpdateOutcome::Done(s) => return Ok(s),
                UpdateOutcome::Retry => continue,
            }
        }
    }

    /// Binds a pod to a node (`pods/binding`): sets `spec.nodeName` and the `PodScheduled`
    /// condition. 409 when the pod is already bound or still has scheduling gates.
    pub fn bind(
        &self,
        namespace: &str,
        pod: &str,
        node: &str,
        annotations: Option<&Map<String, Value>>,
        opts: &WriteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        let table = self.table();
        let def = table
            .lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                pod,
                vec![super::errors::required("target.name", "")],
            ));
        }
        let now = format_time(self.shared.clock.now());
        let key = obj_key(&def, namespace, pod);
        let mut st = self.lock();
        let Some(current) = st.get(&key).cloned() else {
            return Err(ApiError::not_found("pods", pod).details(pod, "", "pods"));
        };
        let bound = current
            .value
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !bound.is_empty() {
            return Err(ApiError::conflict(
                "pods/binding",
                pod,
                &format!("pod {pod} is already assigned to node {bound:?}"),
            ));
        }
        if current
            .value
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(ApiError::conflict(
                "pods/binding",
                pod,
                &format!("pod {pod} has non-empty .spec.schedulingGates"),
            ));
        }
        if current
            .value
            .pointer("/metadata/deletionTimestamp")
            .is_some()
        {
            return Err(ApiError::conflict(
                "pods/binding",
                pod,
                &format!("pod {pod} is being deleted, cannot be assigned to a host"),
            ));
        }
        let mut new = current.value.clone();
        new["spec"]["nodeName"] = json!(node);
        if let Some(a) = annotations.filter(|a| !a.is_empty()) {
            let meta = metadata_mut(&mut new);
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = ann.as_object_mut() {
                for (k, v) in a {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        set_condition(&mut new, "PodScheduled", "True", &now);
        if opts.dry_run {
            return Ok(Arc::new(Stored::new(new)));
        }
        Ok(st.put(&key, new, self.history()))
    }

    /// Deletes an object as `DELETE` would, cascading to its dependents (ownerReferences).
    /// An object with finalizers is only marked (`deletionTimestamp`) until they are removed.
    pub fn delete(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        let key = obj_key(def, namespace, name);
        let mut st = self.lock();
        let Some(current) = st.get(&key).cloned() else {
            return Err(ApiError::not_found(&def.qualified(), name).details(
                name,
                &def.group,
                &def.plural,
            ));
        };
        if let Some(uid) = &opts.precondition_uid
            && uid != current.uid()
        {
            return Err(ApiError::conflict(
                &def.qualified(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current.uid()
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_resource_version
            && rv != meta_str(&current.value, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &def.qualified(),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&current.value, "resourceVersion")
                ),
            ));
        }
        if opts.dry_run {
            return Ok(current);
        }
        Ok(self
            .delete_locked(&mut st, def, &key, opts.propagation)
            .unwrap_or(current))
    }

    /// Deletes every object of `def` in `namespace` that matches `selectors`.
    pub fn delete_collection(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        selectors: &Selectors,
        opts: &DeleteOptions,
    ) -> Result<Vec<Arc<Stored>>, ApiError> {
        let victims = self.list(def, namespace, selectors, None, None)?.items;
        let mut out = Vec::new();
        for v in victims {
            match self.delete(def, v.namespace(), v.name(), opts) {
                Ok(d) => out.push(d),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes (or marks, when it has finalizers) one object and collects its dependents.
    fn delete_locked(
        &self,
        st: &mut State,
        def: &ResourceDef,
        key: &ObjKey,
        propagation: Propagation,
    ) -> Option<Arc<Stored>> {
        let history = self.history();
        let now = format_time(self.shared.clock.now());
        let first = mark_or_remove(st, key, &now, history)?;
        if is_crd(def) && first.value.pointer("/metadata/deletionTimestamp").is_none() {
            self.unregister_crd(st, &first.value);
        }
        if def.storage.0.is_empty() && def.storage.1 == "namespaces" && !key.name.is_empty() {
            // Namespace deletion takes everything in it.
            let in_ns: Vec<ObjKey> = st
                .collections
                .iter()
                .flat_map(|(sk, c)| {
                    c.objects
                        .keys()
                        .filter(|(ns, _)| *ns == key.name)
                        .map(|(ns, name)| ObjKey {
                            storage: sk.clone(),
                            namespace: ns.clone(),
                            name: name.clone(),
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            for k in in_ns {
                st.remove(&k, history);
            }
        }
        // Garbage collection: dependents of the removed objects, breadth first.
        let mut queue: VecDeque<String> = VecDeque::new();
        if first.value.pointer("/metadata/deletionTimestamp").is_none() || st.get(key).is_none() {
            queue.push_back(first.uid().to_owned());
        }
        while let Some(owner_uid) = queue.pop_front() {
            let deps: Vec<ObjKey> = st
                .dependents
                .get(&owner_uid)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for dep in deps {
                let Some(obj) = st.get(&dep).cloned() else {
                    continue;
                };
                let refs = obj
                    .value
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let others_alive = refs.iter().any(|r| {
                    let u = r.get("uid").and_then(Value::as_str).unwrap_or("");
                    u != owner_uid && st.uids.contains_key(u)
                });
                if propagation == Propagation::Orphan || others_alive {
                    let mut v = obj.value.clone();
                    let kept: Vec<Value> = refs
                        .into_iter()
                        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(&owner_uid))
                        .collect();
                    let meta = metadata_mut(&mut v);
                    if kept.is_empty() {
                        meta.remove("ownerReferences");
                    } else {
                        meta.insert("ownerReferences".into(), Value::Array(kept));
                    }
                    st.put(&dep, v, history);
                } else if let Some(gone) = mark_or_remove(st, &dep, &now, history)
                    && st.get(&dep).is_none()
                {
                    queue.push_back(gone.uid().to_owned());
                }
            }
        }
        Some(first)
    }

    fn unregister_crd(&self, st: &mut State, crd: &Value) {
        let group = crd.pointer("/spec/group").and_then(Value::as_str);
        let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str);
        let (Some(group), Some(plural)) = (group, plural) else {
            return;
        };
        let storage = (group.to_owned(), plural.to_owned());
        let keys: Vec<ObjKey> = st
            .collections
            .get(&storage)
            .map(|c| {
                c.objects
                    .keys()
                    .map(|(ns, name)| ObjKey {
                        storage: storage.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for k in keys {
            st.remove(&k, self.history());
        }
        let mut table = self.shared.table.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**table).clone();
        next.remove_crd(group, plural);
        *table = Arc::new(next);
    }

    /// Watch support: the events of `storage` after `after` (at most `max`), and the global
    /// resourceVersion up to which the caller has then seen everything (when it has read to
    /// the end). `Err` when `after` is older than the kept history.
    pub(crate) fn read_events(
        &self,
        storage: &StorageKey,
        after: u64,
        max: usize,
    ) -> Result<(Vec<Arc<ChangeEvent>>, Option<u64>), u64> {
        let mut st = self.lock();
        let global = st.rv;
        let coll = st.collection(storage);
        if after < coll.horizon {
            return Err(coll.horizon);
        }
        let start = coll.log.partition_point(|e| e.rv <= after);
        let end = (start + max).min(coll.log.len());
        let events: Vec<Arc<ChangeEvent>> = coll.log.range(start..end).cloned().collect();
        let caught_up = (end == coll.log.len()).then_some(global);
        Ok((events, caught_up))
    }

    /// Watch support: a receiver that changes whenever `storage` gets an event.
    pub(crate) fn subscribe(&self, storage: &StorageKey) -> tokio::sync::watch::Receiver<u64> {
        self.lock().collection(storage).notify.subscribe()
    }

    pub(crate) fn expire_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.expire.subscribe()
    }

    pub(crate) fn disconnect_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.disconnect.subscribe()
    }

    /// Simulates the watch window moving past everyone: forgets every kept event (a watch
    /// resuming from any older resourceVersion gets 410 Gone) and ends every open watch with
    /// an `ERROR` event carrying a 410 `Expired` Status, as the real server does to a
    /// watcher that fell out of its window. Clients must relist.
    pub fn expire_history(&self) {
        let mut st = self.lock();
        let rv = st.rv;
        for c in st.collections.values_mut() {
            c.log.clear();
            c.horizon = rv;
        }
        drop(st);
        self.shared.expire.send_modify(|g| *g += 1);
    }

    /// Ends every open watch cleanly (as a load balancer or an API server restart would);
    /// clients re-watch from their last resourceVersion.
    pub fn disconnect_watches(&self) {
        self.shared.disconnect.send_modify(|g| *g += 1);
    }

    /// How many watches are open (HTTP and in-process).
    pub fn open_watches(&self) -> usize {
        self.shared
            .open_watches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn watch_opened(&self) {
        self.shared
            .open_watches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn watch_closed(&self) {
        self.shared
            .open_watches
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many objects of `def` there are (all namespaces).
    pub fn count(&self, def: &ResourceDef) -> usize {
        self.lock()
            .collections
            .get(&def.storage)
            .map_or(0, |c| c.objects.len())
    }
}

/// Marks an object with finalizers as being deleted (once), or removes it.
fn mark_or_remove(st: &mut State, key: &ObjKey, now: &str, history: usize) -> Option<Arc<Stored>> {
    let current = st.get(key).cloned()?;
    let has_finalizers = current
        .value
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if current
            .value
            .pointer("/metadata/deletionTimestamp")
            .is_some()
        {
            return Some(current);
        }
        let mut v = current.value.clone();
        let meta = metadata_mut(&mut v);
        meta.insert("deletionTimestamp".into(), json!(now));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        return Some(st.put(key, v, history));
    }
    st.remove(key, history)
}

fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

fn crd_status(crd: &Value) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ],
        "storedVersions": stored,
    })
}

/// Sets (or replaces) a pod condition of `type_`.
pub fn set_condition(pod: &mut Value, type_: &str, status: &str, now: &str) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let status_obj = pod["status"].as_object_mut().expect("object");
    let conditions = status_obj
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let list = conditions.as_array_mut().expect("array");
    let cond =
        json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) => *c = cond,
        None => list.push(cond),
    }
}

/// The object as shown on `def`'s endpoint (converted for `events.k8s.io`, `apiVersion` of
/// the endpoint's version).
pub fn view_of(def: &ResourceDef, stored: &Value) -> Value {
    match def.view {
        View::EventsV1 => super::conversion::core_to_events_v1(stored),
        View::Native => {
            let api_version = def.api_version();
            if stored.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
                stored.clone()
            } else {
                let mut v = stored.clone();
                v["apiVersion"] = json!(api_version);
                v
            }
        }
    }
}

/// Does the stored form need converting to be shown on `def`'s endpoint?
pub fn needs_view(def: &ResourceDef, stored: &Value) -> bool {
    def.view != View::Native
        || stored.get("apiVersion").and_then(Value::as_str) != Some(def.api_version().as_str())
}

fn check_type_meta(body: &mut Value, api_version: &str, kind: &str) -> Result<(), ApiError> {
    let av = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let k = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if !av.is_empty() && av != api_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({api_version})"
        )));
    }
    if !k.is_empty() && k != kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({kind})"
        )));
    }
    body["apiVersion"] = json!(api_version);
    body["kind"] = json!(kind);
    Ok(())
}

fn parse_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let mut parts = token.splitn(3, '/');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_owned();
    let name = parts.next().ok_or_else(bad)?.to_owned();
    Ok((rv, ns, name))
}
