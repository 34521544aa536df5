//! Deletes: preconditions, finalizers, a namespace's contents, garbage collection of dependents.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};

use super::crd::is_crd;
use super::handle::Store;
use super::object::{Stored, meta_str, metadata_mut};
use super::options::{DeleteOptions, Propagation};
use super::state::{ObjKey, State, obj_key};
use crate::apiserver::clock::format_time;
use crate::apiserver::errors::ApiError;
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::selectors::Selectors;

impl Store {
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
        if self.graceful_pod_deletion()
            && opts.grace_period_seconds != Some(0)
            && let Some(grace) = termination_grace(def, &current.value, opts)
        {
            // A running pod is marked for its kubelet, which stops it and removes it
            // (a delete with grace 0); it holds its node's room until then.
            if current
                .value
                .pointer("/metadata/deletionTimestamp")
                .is_some()
            {
                return Ok(current);
            }
            let deadline = self.shared.clock.now() + std::time::Duration::from_secs(grace);
            let mut v = current.value.clone();
            let meta = metadata_mut(&mut v);
            meta.insert("deletionTimestamp".into(), json!(format_time(deadline)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            return Ok(st.put(&key, v, self.history()));
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
    pub(super) fn delete_locked(
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
}

/// The grace period of a pod that must terminate before it goes: bound to a node and not
/// finished (`gracePeriodSeconds`, else its `terminationGracePeriodSeconds`, else 30 s).
/// `None` for other objects and for pods that can go at once.
fn termination_grace(def: &ResourceDef, pod: &Value, opts: &DeleteOptions) -> Option<u64> {
    if !(def.group.is_empty() && def.plural == "pods") {
        return None;
    }
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let grace = opts
        .grace_period_seconds
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    Some(grace.max(1) as u64)
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
