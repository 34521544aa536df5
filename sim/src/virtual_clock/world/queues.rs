//! Queues in the virtual world: the scenario's `Queue` objects, stored as the API server
//! stores them (validated against the CRD's schema) and fed to the extender as its watch would.

use serde::Deserialize;
use serde_json::Value;
use sparkgang_admission::mutation::QueueLookup;
use sparkgang_common::api::queue::Queue;
use sparkgang_common::cluster::WatchEvent;

use super::World;
use super::api;
use crate::harness::SimError;

impl World {
    /// Stores a `sparkgang.io/v1` `Queue` and tells the extender.
    pub fn create_queue(&mut self, queue: Value) -> Result<(), SimError> {
        let def = self
            .store
            .resource("sparkgang.io", "v1", "queues")
            .ok_or_else(|| api("the Queue resource is not served"))?;
        let created = self.store.create(&def, "", queue).map_err(api)?;
        let queue = Queue::deserialize(&created.value).map_err(api)?;
        if let Some(ext) = self.extender.as_mut() {
            ext.feed.queue(&mut ext.state, WatchEvent::Apply(queue));
        }
        Ok(())
    }

    /// What the webhook's read of queue `name` finds.
    pub(super) fn queue_lookup(&self, name: &str) -> QueueLookup {
        let Some(def) = self.store.resource("sparkgang.io", "v1", "queues") else {
            return QueueLookup::Failed("the Queue resource is not served".to_owned());
        };
        if self.store.get(&def, "", name).is_some() {
            return QueueLookup::Exists;
        }
        let listed = self.store.list(
            &def,
            None,
            &crate::apiserver::selectors::Selectors::default(),
            None,
            None,
        );
        match listed {
            Ok(l) => {
                let mut known: Vec<String> = l.items.iter().map(|q| q.name().to_owned()).collect();
                known.sort();
                QueueLookup::Missing { known }
            }
            Err(e) => QueueLookup::Failed(e.to_string()),
        }
    }
}
