//! Deleting pods in the virtual world: at once, or (with a termination time) marked and
//! stopped later, as a kubelet stops a pod's containers before the API server lets it go.

use std::time::Duration;

use serde_json::Value;

use super::World;
use crate::apiserver::DeleteOptions;
use crate::kubelet::Phase;

impl World {
    /// Deletes a pod (at once: the simulated kubelet has nothing to stop).
    /// Deletes a pod as a client would. With a termination time set
    /// ([`World::set_pod_termination`]) a running pod is marked and stops then (its room held
    /// until it is gone); otherwise, and for pods not running, it goes at once.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        if let Some(stop) = self.pod_termination {
            let key = format!("{namespace}/{name}");
            let Ok(marked) =
                self.store
                    .delete(&self.pods, namespace, name, &DeleteOptions::default())
            else {
                return;
            };
            if marked
                .value
                .pointer("/metadata/deletionTimestamp")
                .is_some()
                && self.store.get(&self.pods, namespace, name).is_some()
            {
                let grace = marked
                    .value
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                if self
                    .pod_cache
                    .get(&key)
                    .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                {
                    self.pod_changed(&marked);
                    let at = self.now() + stop.min(Duration::from_secs(grace));
                    self.terminating
                        .push((at, namespace.to_owned(), name.to_owned()));
                }
                return;
            }
        }
        self.remove_pod(namespace, name);
    }

    /// Pods whose termination is due by `now` stop (exit 143) and are removed, as their
    /// kubelet does.
    pub fn finish_terminations(&mut self, now: Duration) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.terminating)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.terminating = later;
        for (_, namespace, name) in due {
            if self.store.get(&self.pods, &namespace, &name).is_some() {
                self.set_phase(&namespace, &name, Phase::Failed(143));
            }
            self.remove_pod(&namespace, &name);
        }
    }

    /// When the next pod being deleted stops.
    pub fn next_termination(&self) -> Option<Duration> {
        self.terminating.iter().map(|(at, _, _)| *at).min()
    }

    /// Pods deleted while running stop `stop` later (at most their grace period) instead of at
    /// once (the scenario key `pod_termination`).
    pub fn set_pod_termination(&mut self, stop: Option<Duration>) {
        self.pod_termination = stop;
        self.store.set_graceful_pod_deletion(stop.is_some());
    }
}
