//! Creating objects: checking and defaulting the body, then storing it under a free name.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crd::{crd_status, is_crd};
use super::handle::Store;
use super::object::{Stored, meta_str, metadata_mut};
use super::options::{Propagation, WriteOptions};
use super::state::{State, obj_key};
use crate::apiserver::clock::format_time;
use crate::apiserver::conversion;
use crate::apiserver::errors::ApiError;
use crate::apiserver::resources::{ResourceDef, Subresource, View};
use crate::apiserver::validation::{apply_create_defaults, validate};

impl Store {
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
            body = conversion::events_v1_to_core(&body);
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
        let stored = st.put(&key, obj, self.history());
        if self.owners_all_gone(&st, &stored.value, &ns) {
            // The garbage collector deletes an object whose owners are all gone: one created
            // after its owner was deleted (an executor its driver asked for just before it
            // died, say) does not outlive it.
            self.delete_locked(&mut st, def, &key, Propagation::Background);
        }
        Ok(stored)
    }

    /// Whether `obj` (in `namespace`) names owners and none of them exists, by UID or by name.
    /// (The real garbage collector goes by UID alone; by name too, an object whose recorded
    /// owner UID came from another cluster, as in replayed traffic, is kept while an owner of
    /// that name exists. An owner of an unknown kind counts as existing.)
    fn owners_all_gone(&self, st: &State, obj: &Value, namespace: &str) -> bool {
        let owners = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        !owners.is_empty()
            && owners.iter().all(|o| {
                let field = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
                if st.uids.contains_key(field("uid")) {
                    return false;
                }
                match self.resource_for(field("apiVersion"), field("kind")) {
                    Some(def) => {
                        let ns = if def.namespaced { namespace } else { "" };
                        st.get(&obj_key(&def, ns, field("name"))).is_none()
                    }
                    None => false,
                }
            })
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
