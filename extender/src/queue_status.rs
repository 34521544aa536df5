//! The leader writes each Queue's `status` (what it holds, what waits in it, its dominant
//! share, its applications, why its spec cannot be used): computed from the state every
//! `queues.statusInterval`, patched only where it changed since the last write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use sparkgang_common::api::queue::{Queue, QueueStatus};
use tracing::{debug, warn};

use crate::Extender;

/// The field manager of the status writes.
const MANAGER: &str = "sparkgang-extender";

/// The statuses among `now` that differ from what was last written (`written`).
pub fn changed(
    written: &BTreeMap<String, QueueStatus>,
    now: Vec<(String, QueueStatus)>,
) -> Vec<(String, QueueStatus)> {
    now.into_iter()
        .filter(|(name, status)| written.get(name) != Some(status))
        .collect()
}

/// Runs for the term: every `interval`, patches the status of the queues whose status changed.
pub async fn run(client: Client, ext: Arc<Extender>, interval: Duration) {
    let api: Api<Queue> = Api::all(client);
    let params = PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let mut written: BTreeMap<String, QueueStatus> = BTreeMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if ext.not_ready_reason().is_some() {
            continue;
        }
        let Some(now) = ext.with_state(|s| s.queue_statuses()) else {
            continue;
        };
        written.retain(|name, _| now.iter().any(|(n, _)| n == name));
        for (name, status) in changed(&written, now) {
            // A merge patch leaves out what it does not name: name what is now absent (an
            // error fixed, a share that no longer exists) as null.
            let mut patch = serde_json::json!({"status": status});
            if let Some(s) = patch.get_mut("status").and_then(|s| s.as_object_mut()) {
                for key in ["allocated", "pending", "dominantShare", "error"] {
                    s.entry(key).or_insert(serde_json::Value::Null);
                }
            }
            match api
                .patch_status(&name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    debug!(queue = %name, "queue status written");
                    ext.metrics.count_write("queue-status", "ok");
                    written.insert(name, status);
                }
                Err(e) => {
                    // Tried again at the next tick (the entry stays unwritten).
                    warn!(queue = %name, error = %e, "cannot write a queue's status");
                    ext.metrics.count_write("queue-status", "failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(running: u32) -> QueueStatus {
        QueueStatus {
            running_applications: running,
            ..QueueStatus::default()
        }
    }

    #[test]
    fn only_statuses_that_changed_are_written_again() {
        let written = BTreeMap::from([("a".to_owned(), status(1)), ("b".to_owned(), status(2))]);
        let now = vec![
            ("a".to_owned(), status(1)),
            ("b".to_owned(), status(3)),
            ("c".to_owned(), status(0)),
        ];
        let names: Vec<String> = changed(&written, now).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "c"]);
    }
}
