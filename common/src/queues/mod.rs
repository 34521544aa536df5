//! Queues: teams' shares of an instance group. [`QueueIndex`] is a plain struct fed by the
//! `Queue` objects (apply, delete, reset) that validates them and says which queue an
//! application belongs to; [`share`] holds the decisions over it (dominant shares, the fair
//! order, whether a gang is admitted to its queue). No Queue objects: no queue semantics.

pub mod share;

use std::collections::BTreeMap;

use crate::api::queue::QueueSpec;
use crate::quantities::{parse_count, parse_cpu_millis, parse_memory_bytes};
use crate::{GpuResourceNames, Resources};

/// "No limit" in a dimension of [`QueueLimits::max`].
pub const UNLIMITED: i64 = i64::MAX;

/// A queue's spec, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimits {
    pub instance_group: String,
    /// Zero where the spec names nothing.
    pub guaranteed: Resources,
    /// Which resources `guaranteed` names (cpu, memory, gpus): only those are limited by the
    /// guarantee and the cohort, and count in the dominant share.
    pub guaranteed_named: [bool; 3],
    /// [`UNLIMITED`] where the spec names nothing.
    pub max: Resources,
    pub weight: u32,
    pub parent: Option<String>,
    pub namespaces: Vec<String>,
}

/// Why a Queue's spec cannot be used; the queue then admits nothing and says why in its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue}: spec.instanceGroup is empty; name the instance group it shares")]
    NoInstanceGroup { queue: String },
    #[error("queue {queue}: spec.{field} names {resource:?}; accepted: {accepted}")]
    UnknownResource {
        queue: String,
        field: &'static str,
        resource: String,
        accepted: String,
    },
    #[error("queue {queue}: spec.{field}.{resource} = {value:?} is not a quantity ({why})")]
    BadQuantity {
        queue: String,
        field: &'static str,
        resource: String,
        value: String,
        why: String,
    },
    #[error("queue {queue}: spec.max.{resource} is below spec.guaranteed.{resource}")]
    MaxBelowGuarantee {
        queue: String,
        resource: &'static str,
    },
    #[error("queue {queue}: spec.weight is 0; a weight of 1 or more is accepted")]
    ZeroWeight { queue: String },
    #[error("queue {queue}: spec.parent names the queue itself")]
    OwnParent { queue: String },
    #[error("queue {name:?} does not exist; the queues are: {known}")]
    NoSuchQueue { name: String, known: String },
}

fn resources(
    queue: &str,
    field: &'static str,
    list: &BTreeMap<String, String>,
    unset: i64,
    gpus: &GpuResourceNames,
) -> Result<Resources, QueueError> {
    let mut r = Resources::new(unset, unset, unset);
    for (name, value) in list {
        let bad = |why: String| QueueError::BadQuantity {
            queue: queue.to_owned(),
            field,
            resource: name.clone(),
            value: value.clone(),
            why,
        };
        match name.as_str() {
            "cpu" => r.cpu_milli = parse_cpu_millis(value).map_err(|e| bad(e.to_string()))?,
            "memory" => {
                r.memory_bytes = parse_memory_bytes(value).map_err(|e| bad(e.to_string()))?
            }
            n if gpus.contains(n) => r.gpus = parse_count(value).map_err(|e| bad(e.to_string()))?,
            _ => {
                return Err(QueueError::UnknownResource {
                    queue: queue.to_owned(),
                    field,
                    resource: name.clone(),
                    accepted: format!("cpu, memory, {}", gpus.names().join(", ")),
                });
            }
        }
    }
    Ok(r)
}

impl QueueLimits {
    /// The guarantee as a limit: [`UNLIMITED`] in the resources it does not name.
    pub fn guarantee_cap(&self) -> Resources {
        let g = &self.guaranteed;
        let cap = |named: bool, v: i64| if named { v } else { UNLIMITED };
        Resources::new(
            cap(self.guaranteed_named[0], g.cpu_milli),
            cap(self.guaranteed_named[1], g.memory_bytes),
            cap(self.guaranteed_named[2], g.gpus),
        )
    }

    /// Validates queue `name`'s spec.
    pub fn of(name: &str, spec: &QueueSpec, gpus: &GpuResourceNames) -> Result<Self, QueueError> {
        if spec.instance_group.trim().is_empty() {
            return Err(QueueError::NoInstanceGroup {
                queue: name.to_owned(),
            });
        }
        if spec.weight == 0 {
            return Err(QueueError::ZeroWeight {
                queue: name.to_owned(),
            });
        }
        if spec.parent.as_deref() == Some(name) {
            return Err(QueueError::OwnParent {
                queue: name.to_owned(),
            });
        }
        let guaranteed = resources(name, "guaranteed", &spec.guaranteed, 0, gpus)?;
        let max = resources(name, "max", &spec.max, UNLIMITED, gpus)?;
        for (resource, g, m) in [
            ("cpu", guaranteed.cpu_milli, max.cpu_milli),
            ("memory", guaranteed.memory_bytes, max.memory_bytes),
            ("gpus", guaranteed.gpus, max.gpus),
        ] {
            if m < g {
                return Err(QueueError::MaxBelowGuarantee {
                    queue: name.to_owned(),
                    resource,
                });
            }
        }
        let named = |n: &str| spec.guaranteed.contains_key(n);
        Ok(QueueLimits {
            instance_group: spec.instance_group.clone(),
            guaranteed,
            guaranteed_named: [
                named("cpu"),
                named("memory"),
                spec.guaranteed.keys().any(|k| gpus.contains(k)),
            ],
            max,
            weight: spec.weight,
            parent: spec.parent.clone(),
            namespaces: spec.namespaces.clone(),
        })
    }
}

/// The Queue objects, validated, and which queue an application belongs to.
#[derive(Debug, Clone, Default)]
pub struct QueueIndex {
    queues: BTreeMap<String, Result<QueueLimits, QueueError>>,
    /// The queue of applications no queue names (configurable), if any.
    default_queue: Option<String>,
    gpus: GpuResourceNames,
}

impl QueueIndex {
    /// An empty index; applications of namespaces no queue lists go to `default_queue`.
    pub fn new(default_queue: Option<String>, gpus: GpuResourceNames) -> Self {
        QueueIndex {
            queues: BTreeMap::new(),
            default_queue,
            gpus,
        }
    }

    /// A Queue was created or changed; false when its spec means what it meant before (a
    /// relist, a status write).
    pub fn apply(&mut self, name: &str, spec: &QueueSpec) -> bool {
        let limits = QueueLimits::of(name, spec, &self.gpus);
        self.queues.insert(name.to_owned(), limits.clone()) != Some(limits)
    }

    /// A Queue was deleted.
    pub fn delete(&mut self, name: &str) {
        self.queues.remove(name);
    }

    /// Every Queue, after a relist.
    pub fn reset<'a>(&mut self, queues: impl IntoIterator<Item = (&'a str, &'a QueueSpec)>) {
        self.queues.clear();
        for (name, spec) in queues {
            self.apply(name, spec);
        }
    }

    /// No queues: scheduling is by instance group alone, as without this feature.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queue `name`'s limits, or why it has none.
    pub fn get(&self, name: &str) -> Option<&Result<QueueLimits, QueueError>> {
        self.queues.get(name)
    }

    /// The valid queues.
    pub fn valid(&self) -> impl Iterator<Item = (&str, &QueueLimits)> {
        self.queues
            .iter()
            .filter_map(|(n, q)| q.as_ref().ok().map(|q| (n.as_str(), q)))
    }

    /// The queue of an application of `namespace` whose driver has `label` (the value of
    /// `sparkgang.io/queue`): the label's queue, else the first queue (by name) listing the
    /// namespace, else the default queue; `None` when there are no queues or no default.
    /// A label naming no queue is an error that lists the queues.
    pub fn queue_of(
        &self,
        namespace: &str,
        label: Option<&str>,
    ) -> Result<Option<&str>, QueueError> {
        if let Some(name) = label {
            return match self.queues.get_key_value(name) {
                Some((n, _)) => Ok(Some(n.as_str())),
                None => Err(QueueError::NoSuchQueue {
                    name: name.to_owned(),
                    known: self.known(),
                }),
            };
        }
        let listed = self.queues.iter().find(|(_, q)| {
            q.as_ref()
                .is_ok_and(|q| q.namespaces.iter().any(|n| n == namespace))
        });
        Ok(match listed {
            Some((n, _)) => Some(n.as_str()),
            None => self
                .default_queue
                .as_deref()
                .and_then(|d| self.queues.get_key_value(d))
                .map(|(n, _)| n.as_str()),
        })
    }

    /// The queues that lend to and borrow from `name`: those with its parent (itself
    /// included); a queue without a parent is a cohort of one.
    pub fn cohort(&self, name: &str) -> Vec<&str> {
        let (own, parent) = match self.queues.get_key_value(name) {
            Some((own, Ok(q))) => (own.as_str(), q.parent.as_deref()),
            _ => return Vec::new(),
        };
        match parent {
            None => vec![own],
            Some(p) => self
                .valid()
                .filter(|(_, q)| q.parent.as_deref() == Some(p))
                .map(|(n, _)| n)
                .collect(),
        }
    }

    /// Every Queue's name, valid or not.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(String::as_str)
    }

    /// The queues' names, for messages ("(none)" without any).
    pub fn known(&self) -> String {
        if self.queues.is_empty() {
            return "(none)".to_owned();
        }
        self.queues.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests;
