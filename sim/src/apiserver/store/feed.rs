//! What watches read: per-resource change logs and notifications, and the signals ending watches.

use std::sync::Arc;

use super::handle::Store;
use super::state::ChangeEvent;
use crate::apiserver::resources::StorageKey;

impl Store {
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
}
