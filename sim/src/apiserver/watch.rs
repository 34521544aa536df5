//! Watches: a cursor over one resource's event history, with selectors, bookmarks, timeouts and 410 Gone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::errors::ApiError;
use super::resources::ResourceDef;
use super::selectors::Selectors;
use super::store::{ChangeEvent, EventType, Store, Stored, needs_view, view_of};

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Events after this resourceVersion (replayed from history when older than now).
    After(u64),
    /// Synthetic `ADDED` events for the current objects first (`resourceVersion` unset or
    /// `"0"`, or `sendInitialEvents=true`), then changes.
    Snapshot,
}

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchParams {
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub start: WatchStart,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: end the snapshot with a bookmark annotated
    /// `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    pub bookmark_interval: Duration,
    pub timeout: Duration,
}

/// An object in a watch event: stored (its cached JSON is reused) or converted.
#[derive(Debug, Clone)]
pub enum WatchObject {
    Stored(Arc<Stored>),
    Value(Value),
}

impl WatchObject {
    pub fn to_value(&self) -> Value {
        match self {
            WatchObject::Stored(s) => s.value.clone(),
            WatchObject::Value(v) => v.clone(),
        }
    }

    /// JSON encoding.
    pub fn json(&self) -> bytes::Bytes {
        match self {
            WatchObject::Stored(s) => s.json(),
            WatchObject::Value(v) => bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        }
    }
}

/// One item of a watch stream.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Event(EventType, WatchObject),
    /// A `BOOKMARK` at this resourceVersion (`true`: marks the end of the initial events).
    Bookmark(u64, bool),
    /// An `ERROR` event (410 Expired when the history no longer covers the watch).
    Error(ApiError),
}

impl WatchItem {
    /// The JSON line sent to clients (newline included).
    pub fn to_line(&self, def: &ResourceDef) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        match self {
            WatchItem::Event(t, obj) => {
                out.extend_from_slice(b"{\"type\":\"");
                out.extend_from_slice(t.as_str().as_bytes());
                out.extend_from_slice(b"\",\"object\":");
                out.extend_from_slice(&obj.json());
                out.push(b'}');
            }
            WatchItem::Bookmark(rv, initial_end) => {
                let mut meta = json!({"resourceVersion": rv.to_string()});
                if *initial_end {
                    meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                let line = json!({"type": "BOOKMARK", "object": {
                    "kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}});
                out.extend_from_slice(&serde_json::to_vec(&line).unwrap_or_default());
            }
            WatchItem::Error(e) => {
                let line = json!({"type": "ERROR", "object": e.to_status()});
                out.extend_from_slice(&serde_json::to_vec(&line).unwrap_or_default());
            }
        }
        out.push(b'\n');
        out
    }
}

const BATCH: usize = 512;

/// An open watch. `next()` yields items until the timeout, a 410, or a disconnect.
pub struct Watch {
    store: Store,
    def: Arc<ResourceDef>,
    params: WatchParams,
    cursor: u64,
    /// Everything up to this resourceVersion has been delivered (for bookmarks).
    synced: u64,
    pending: VecDeque<WatchItem>,
    changes: tokio::sync::watch::Receiver<u64>,
    expire: tokio::sync::watch::Receiver<u64>,
    disconnect: tokio::sync::watch::Receiver<u64>,
    deadline: Instant,
    next_bookmark: Instant,
    done: bool,
}

impl Watch {
    /// Opens a watch. The initial snapshot (if any) is taken now.
    pub fn open(
        store: Store,
        def: Arc<ResourceDef>,
        params: WatchParams,
    ) -> Result<Watch, ApiError> {
        let changes = store.subscribe(&def.storage);
        let mut expire = store.expire_signal();
        let mut disconnect = store.disconnect_signal();
        expire.mark_unchanged();
        disconnect.mark_unchanged();
        let now = Instant::now();
        store.watch_opened();
        let mut w = Watch {
            changes,
            expire,
            disconnect,
            deadline: now + params.timeout,
            next_bookmark: now + params.bookmark_interval,
            cursor: 0,
            synced: 0,
            pending: VecDeque::new(),
            done: false,
            store,
            def,
            params,
        };
        match w.params.start {
            WatchStart::After(rv) => {
                w.cursor = rv;
                w.synced = rv;
            }
            WatchStart::Snapshot => {
                let list = w.store.list(
                    &w.def,
                    w.params.namespace.as_deref(),
                    &w.params.selectors,
                    None,
                    None,
                )?;
                for item in list.items {
                    let obj = w.present(item, None);
                    w.pending.push_back(WatchItem::Event(EventType::Added, obj));
                }
                w.cursor = list.resource_version;
                w.synced = list.resource_version;
                if w.params.initial_events_end && w.params.bookmarks {
                    w.pending
                        .push_back(WatchItem::Bookmark(list.resource_version, true));
                }
            }
        }
        Ok(w)
    }

    fn present(&self, s: Arc<Stored>, rv: Option<u64>) -> WatchObject {
        if rv.is_none() && !needs_view(&self.def, &s.value) {
            return WatchObject::Stored(s);
        }
        let mut v = view_of(&self.def, &s.value).into_owned();
        if let Some(rv) = rv {
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
        }
        WatchObject::Value(v)
    }

    fn in_scope(&self, obj: &Stored) -> bool {
        match &self.params.namespace {
            Some(ns) if self.def.namespaced && !ns.is_empty() => obj.namespace() == ns,
            _ => true,
        }
    }

    fn passes(&self, obj: &Stored) -> bool {
        self.in_scope(obj) && self.params.selectors.matches(&obj.value)
    }

    /// The item a watcher with these selectors sees for one change (as the real watch
    /// cache does: leaving the selection is a `DELETED` of the previous state).
    fn translate(&self, e: &ChangeEvent) -> Option<WatchItem> {
        match e.kind {
            EventType::Added => self
                .passes(&e.object)
                .then(|| WatchItem::Event(EventType::Added, self.present(e.object.clone(), None))),
            EventType::Deleted => self.passes(&e.object).then(|| {
                WatchItem::Event(EventType::Deleted, self.present(e.object.clone(), None))
            }),
            EventType::Modified => {
                let cur = self.passes(&e.object);
                let old = e.prev.as_ref().is_some_and(|p| self.passes(p));
                match (old, cur) {
                    (true, true) => Some(WatchItem::Event(
                        EventType::Modified,
                        self.present(e.object.clone(), None),
                    )),
                    (false, true) => Some(WatchItem::Event(
                        EventType::Added,
                        self.present(e.object.clone(), None),
                    )),
                    (true, false) => e.prev.as_ref().map(|p| {
                        WatchItem::Event(EventType::Deleted, self.present(p.clone(), Some(e.rv)))
                    }),
                    (false, false) => None,
                }
            }
        }
    }

    fn fill(&mut self) {
        self.changes.borrow_and_update();
        match self
            .store
            .read_events(&self.def.storage, self.cursor, BATCH)
        {
            Err(horizon) => {
                self.pending
                    .push_back(WatchItem::Error(ApiError::expired(format!(
                        "too old resource version: {} ({})",
                        self.cursor, horizon
                    ))));
                self.done = true;
            }
            Ok((events, caught_up)) => {
                for e in &events {
                    self.cursor = e.rv;
                    if let Some(item) = self.translate(e) {
                        self.pending.push_back(item);
                    }
                }
                if let Some(rv) = caught_up {
                    self.synced = rv.max(self.cursor);
                } else {
                    self.synced = self.cursor;
                }
            }
        }
    }

    /// The next item, or `None` when the watch has ended.
    pub async fn next(&mut self) -> Option<WatchItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            self.fill();
            if !self.pending.is_empty() {
                continue;
            }
            if self.done {
                return None;
            }
            let bookmarks = self.params.bookmarks;
            tokio::select! {
                r = self.changes.changed() => {
                    if r.is_err() {
                        // The resource's storage is gone (CRD deleted): end.
                        self.done = true;
                    }
                }
                _ = self.expire.changed() => {
                    self.pending.push_back(WatchItem::Error(ApiError::expired(format!(
                        "too old resource version: {} (history expired)", self.cursor
                    ))));
                    self.done = true;
                }
                _ = self.disconnect.changed() => {
                    self.done = true;
                }
                () = tokio::time::sleep_until(self.deadline) => {
                    self.done = true;
                }
                () = tokio::time::sleep_until(self.next_bookmark), if bookmarks => {
                    self.next_bookmark = Instant::now() + self.params.bookmark_interval;
                    self.fill();
                    if self.pending.is_empty() && !self.done {
                        self.pending.push_back(WatchItem::Bookmark(self.synced, false));
                    }
                }
            }
        }
    }

    /// The next items: at least one (waiting for it), plus whatever else is ready, at most
    /// `max`; `None` when the watch has ended. Lets the HTTP layer write bursts as one chunk.
    pub async fn next_batch(&mut self, max: usize) -> Option<Vec<WatchItem>> {
        let first = self.next().await?;
        let mut out = vec![first];
        if self.pending.is_empty() && !self.done {
            self.fill();
        }
        while out.len() < max {
            match self.pending.pop_front() {
                Some(i) => out.push(i),
                None => break,
            }
        }
        Some(out)
    }

    /// The watch as a stream of items.
    pub fn into_stream(self) -> impl futures::Stream<Item = WatchItem> + Send {
        futures::stream::unfold(self, |mut w| async move { w.next().await.map(|i| (i, w)) })
    }

    pub fn def(&self) -> &Arc<ResourceDef> {
        &self.def
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.store.watch_closed();
    }
}
