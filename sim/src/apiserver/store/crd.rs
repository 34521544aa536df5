//! CustomResourceDefinitions as objects: their status, (un)registering the resources they serve.

use std::sync::Arc;

use serde_json::{Value, json};

use super::handle::Store;
use super::state::{ObjKey, State};
use crate::apiserver::errors::ApiError;
use crate::apiserver::resources::ResourceDef;

impl Store {
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

    pub(super) fn unregister_crd(&self, st: &mut State, crd: &Value) {
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
}

pub(super) fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

pub(super) fn crd_status(crd: &Value) -> Value {
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
