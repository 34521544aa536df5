//! The write pipeline with admission: what every HTTP write goes through, callable in-process too.
//!
//! Order, as in kube-apiserver: decode → defaults → admission hooks (mutating) → defaults
//! again → validation → optimistic-concurrency commit. Admission runs outside the store lock;
//! if the object changed meanwhile, an unpinned update (PATCH, PUT without
//! `resourceVersion`) is recomputed and admitted again, a pinned one gets 409.

use std::sync::Arc;

use serde_json::{Value, json};

use super::errors::ApiError;
use super::hooks::{AdmissionRequest, Hooks, Operation};
use super::patch::{PatchType, apply_patch};
use super::priority;
use super::resources::{ResourceDef, Subresource};
use super::store::{
    DeleteOptions, PreparedUpdate, Store, Stored, UpdateOutcome, WriteOptions, metadata_mut,
};

/// Who is calling (passed to admission hooks).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user_agent: Option<String>,
}

/// The API as clients see it, in process: the same pipeline as the HTTP server, admission
/// hooks included. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    store: Store,
    hooks: Arc<Hooks>,
}

/// The result of a patch: the object, and whether an apply patch created it.
#[derive(Debug)]
pub struct Patched {
    pub object: Arc<Stored>,
    pub created: bool,
}

impl Api {
    pub fn new(store: Store, hooks: Arc<Hooks>) -> Self {
        Api { store, hooks }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cluster's `PriorityClass`es (few: read on every pod create, as the plugin's lister).
    fn priority_classes(&self) -> priority::PriorityClasses {
        priority_classes(&self.store)
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        operation: Operation,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        object: &Value,
        old: Option<&Value>,
        dry_run: bool,
        caller: &Caller,
    ) -> AdmissionRequest {
        AdmissionRequest {
            operation,
            group: def.group.clone(),
            version: def.version.clone(),
            resource: def.plural.clone(),
            subresource: subresource.map(|s| s.name().to_owned()),
            kind: object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or(&def.kind)
                .to_owned(),
            namespace: namespace.to_owned(),
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            object: object.clone(),
            old_object: old.cloned(),
            dry_run,
            user_agent: caller.user_agent.clone(),
        }
    }

    /// `POST` a new object.
    pub async fn create(
        &self,
        def: &ResourceDef,
        namespace: &str,
        body: Value,
        opts: &WriteOptions,
        caller: &Caller,
    ) -> Result<Arc<Stored>, ApiError> {
        let mut obj = self.store.prepare_create(def, namespace, body)?;
        let pod = is_pod(def);
        if pod {
            priority::admit_pod_create(&mut obj, &self.priority_classes())?;
        }
        let first_pass = pod.then(|| obj.clone());
        let req = self.request(
            Operation::Create,
            def,
            None,
            namespace,
            &obj,
            None,
            opts.dry_run,
            caller,
        );
        let mut obj = self.hooks.admit(req).await?;
        if first_pass.is_some_and(|before| before != obj) {
            // A webhook changed the pod: in-tree plugins run again (reinvocation).
            priority::admit_pod_create(&mut obj, &self.priority_classes())?;
        }
        self.store.commit_create(def, obj, opts)
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_with(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        name: &str,
        opts: &WriteOptions,
        caller: &Caller,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Stored>, ApiError> {
        loop {
            let prepared = self
                .store
                .prepare_update(def, subresource, namespace, name, &change)?;
            let req = self.request(
                Operation::Update,
                def,
                subresource,
                namespace,
                &prepared.new,
                Some(&prepared.old.value),
                opts.dry_run,
                caller,
            );
            let mut new = self.hooks.admit(req).await?;
            if is_pod(def) {
                priority::admit_pod_update(&mut new, &prepared.old.value);
            }
            let prepared = PreparedUpdate { new, ..prepared };
            match self.store.commit_update(def, subresource, prepared, opts)? {
                UpdateOutcome::Done(s) => return Ok(s),
                UpdateOutcome::Retry => continue,
            }
        }
    }

    /// `PUT`: replace the object (or its status).
    #[allow(clippy::too_many_arguments)]
    pub async fn update(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        name: &str,
        body: Value,
        opts: &WriteOptions,
        caller: &Caller,
    ) -> Result<Arc<Stored>, ApiError> {
        self.update_with(def, subresource, namespace, name, opts, caller, |_| {
            Ok(body.clone())
        })
        .await
    }

    /// `PATCH` with any of the four patch types. An apply patch creates the object when it
    /// does not exist (`field_manager` is required for apply, as on the real server).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        def: &ResourceDef,
        subresource: Option<Subresource>,
        namespace: &str,
        name: &str,
        kind: PatchType,
        patch: &Value,
        field_manager: Option<&str>,
        opts: &WriteOptions,
        caller: &Caller,
    ) -> Result<Patched, ApiError> {
        if kind == PatchType::Apply {
            check_apply(def, namespace, name, patch, field_manager)?;
        }
        loop {
            if kind == PatchType::Apply
                && subresource.is_none()
                && self.store.get(def, namespace, name).is_none()
            {
                let mut body = patch.clone();
                metadata_mut(&mut body).insert("name".into(), json!(name));
                match self.create(def, namespace, body, opts, caller).await {
                    Ok(object) => {
                        return Ok(Patched {
                            object,
                            created: true,
                        });
                    }
                    // Created concurrently: patch it instead.
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            }
            let result = self
                .update_with(def, subresource, namespace, name, opts, caller, |cur| {
                    apply_patch(kind, cur, patch)
                })
                .await;
            match result {
                Ok(object) => {
                    return Ok(Patched {
                        object,
                        created: false,
                    });
                }
                // Deleted between the existence check and the update: apply creates.
                Err(e) if e.code == 404 && kind == PatchType::Apply && subresource.is_none() => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `DELETE` one object (no admission: hooks see CREATE and UPDATE only).
    pub async fn delete(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        self.store.delete(def, namespace, name, opts)
    }

    /// `POST pods/<name>/eviction` with an `Eviction` body (`policy/v1`): the pod is deleted
    /// unless its PodDisruptionBudget refuses (429).
    pub async fn evict(
        &self,
        namespace: &str,
        pod: &str,
        eviction: &Value,
        opts: &DeleteOptions,
        caller: &Caller,
    ) -> Result<Arc<Stored>, ApiError> {
        let body_name = eviction
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !body_name.is_empty() && body_name != pod {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {pod} != {body_name}"
            )));
        }
        // Admission sees the Eviction as a CREATE of pods/eviction, as webhooks do.
        let def = self
            .store
            .resource("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let mut object = eviction.clone();
        object["apiVersion"] = json!("policy/v1");
        object["kind"] = json!("Eviction");
        metadata_mut(&mut object).insert("name".into(), json!(pod));
        metadata_mut(&mut object).insert("namespace".into(), json!(namespace));
        let req = self.request(
            Operation::Create,
            &def,
            Some(Subresource::Eviction),
            namespace,
            &object,
            None,
            opts.dry_run,
            caller,
        );
        self.hooks.admit(req).await?;
        super::eviction::evict(&self.store, namespace, pod, opts)
    }

    /// `POST pods/<name>/binding` with a `Binding` body.
    pub async fn bind(
        &self,
        namespace: &str,
        pod: &str,
        binding: &Value,
        opts: &WriteOptions,
        caller: &Caller,
    ) -> Result<Arc<Stored>, ApiError> {
        let body_name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !body_name.is_empty() && body_name != pod {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({pod})"
            )));
        }
        if let Some(kind) = binding.pointer("/target/kind").and_then(Value::as_str)
            && !kind.is_empty()
            && kind != "Node"
        {
            return Err(ApiError::invalid(
                "Binding",
                pod,
                vec![super::errors::invalid_value(
                    "target.kind",
                    kind,
                    "must be empty or 'Node'",
                )],
            ));
        }
        let def = self
            .store
            .resource("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let mut object = binding.clone();
        object["apiVersion"] = json!("v1");
        object["kind"] = json!("Binding");
        metadata_mut(&mut object).insert("name".into(), json!(pod));
        metadata_mut(&mut object).insert("namespace".into(), json!(namespace));
        let req = self.request(
            Operation::Create,
            &def,
            Some(Subresource::Binding),
            namespace,
            &object,
            None,
            opts.dry_run,
            caller,
        );
        let admitted = self.hooks.admit(req).await?;
        let node = admitted
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let annotations = admitted
            .pointer("/metadata/annotations")
            .and_then(Value::as_object);
        self.store.bind(namespace, pod, node, annotations, opts)
    }
}

fn check_apply(
    def: &ResourceDef,
    namespace: &str,
    name: &str,
    patch: &Value,
    field_manager: Option<&str>,
) -> Result<(), ApiError> {
    if field_manager.is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "PatchOptions.meta.k8s.io",
            "",
            vec![super::errors::required(
                "fieldManager",
                "is required for apply patch",
            )],
        ));
    }
    if !patch.is_object() {
        return Err(ApiError::bad_request("an apply patch must be an object"));
    }
    let av = patch
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = patch.get("kind").and_then(Value::as_str).unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "apiVersion and kind are required in an apply patch",
        ));
    }
    let expected = if def.view == super::resources::View::EventsV1 {
        "events.k8s.io/v1".to_owned()
    } else {
        def.api_version()
    };
    if av != expected || kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the apply patch is a {av}, Kind={kind}, not a {expected}, Kind={}",
            def.kind
        )));
    }
    let body_name = patch
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = patch
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if def.namespaced && !body_ns.is_empty() && body_ns != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn is_pod(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "pods"
}

/// The `PriorityClass`es stored in `store` (none when the resource is not served).
pub fn priority_classes(store: &Store) -> priority::PriorityClasses {
    let Some(def) = store.resource("scheduling.k8s.io", "v1", "priorityclasses") else {
        return priority::PriorityClasses::new();
    };
    store
        .list(
            &def,
            None,
            &super::selectors::Selectors::default(),
            None,
            None,
        )
        .map(|l| {
            l.items
                .iter()
                .filter_map(|o| priority::PriorityClass::from_object(&o.value))
                .collect()
        })
        .unwrap_or_default()
}
