//! Updates: computed against one version of an object, committed only if it is still current.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crd::is_crd;
use super::handle::Store;
use super::object::{Stored, meta_str, metadata_mut, view_of};
use super::options::{Propagation, WriteOptions};
use super::state::obj_key;
use crate::apiserver::conversion;
use crate::apiserver::errors::ApiError;
use crate::apiserver::resources::{ResourceDef, Subresource, View};
use crate::apiserver::validation::{spec_changed, validate};

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

impl Store {
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
            body = conversion::events_v1_to_core(&body);
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
        // A uid in the body is a precondition, as kube-apiserver has it: a kubelet's status
        // patch of one pod never lands on another of the same name.
        let body_uid = meta_str(&body, "uid");
        let old_uid = meta_str(&old.value, "uid");
        if !body_uid.is_empty() && body_uid != old_uid {
            return Err(ApiError::conflict(
                &def.qualified(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {old_uid}"
                ),
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
}
