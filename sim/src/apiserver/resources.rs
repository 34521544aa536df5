//! The resource table: every served resource as data (group, version, plural, kind, scope, subresources).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// A subresource the server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subresource {
    /// `status`: GET/PUT/PATCH that change only `.status`.
    Status,
    /// `binding` (pods): POST a `Binding` to set `spec.nodeName`.
    Binding,
    /// `eviction` (pods): POST an `Eviction` to delete the pod unless a
    /// PodDisruptionBudget forbids it (`super::eviction`).
    Eviction,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "status" => Some(Subresource::Status),
            "binding" => Some(Subresource::Binding),
            "eviction" => Some(Subresource::Eviction),
            _ => None,
        }
    }
}

/// Which names an object of a resource may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Label1035,
}

/// How objects are presented on this endpoint when the storage is shared with another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// As stored.
    Native,
    /// `events.k8s.io/v1` Event over the core/v1 Event storage (fields renamed as the real
    /// server converts them).
    EventsV1,
}

/// Which storage holds a resource's objects: `(group, plural)`. Two endpoints may share one.
pub type StorageKey = (String, String);

/// One served resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// Field selectors accepted besides `metadata.name` and `metadata.namespace`.
    pub fields: Vec<String>,
    pub name_rule: NameRule,
    pub storage: StorageKey,
    pub view: View,
    /// A CRD version's `additionalPrinterColumns` (raw), for server-side printing; `None` for
    /// built-in resources.
    pub printer_columns: Option<Vec<Value>>,
}

impl ResourceDef {
    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: Vec::new(),
            fields: Vec::new(),
            name_rule: NameRule::Subdomain,
            storage: (group.to_owned(), plural.to_owned()),
            view: View::Native,
            printer_columns: None,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn sub(mut self, subs: &[Subresource]) -> Self {
        self.subresources = subs.to_vec();
        self
    }

    fn fields(mut self, fields: &[&str]) -> Self {
        self.fields = fields.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `resourcereservations.sparkgang.io`, as error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// Is `field` usable in a field selector on this resource?
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || field == "metadata.namespace"
            || self.fields.iter().any(|f| f == field)
    }

    pub fn verbs() -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// Every resource the server serves, indexed for path lookups.
#[derive(Debug, Clone, Default)]
pub struct ResourceTable {
    defs: Vec<Arc<ResourceDef>>,
    by_path: BTreeMap<(String, String, String), usize>,
}

impl ResourceTable {
    /// The built-in resources (core, coordination, networking, events, apiextensions).
    pub fn builtin() -> Self {
        use Subresource::{Binding, Eviction, Status};
        let mut t = ResourceTable::default();
        let pods = ResourceDef::builtin("", "v1", "pods", "Pod", true)
            .short(&["po"])
            .sub(&[Status, Binding, Eviction])
            .fields(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]);
        let mut pods = pods;
        pods.categories = vec!["all".to_owned()];
        t.add(pods);
        t.add(
            ResourceDef::builtin("", "v1", "nodes", "Node", false)
                .short(&["no"])
                .sub(&[Status])
                .fields(&["spec.unschedulable"]),
        );
        t.add(ResourceDef::builtin("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]));
        t.add(ResourceDef::builtin("", "v1", "secrets", "Secret", true).fields(&["type"]));
        t.add(
            ResourceDef::builtin("", "v1", "serviceaccounts", "ServiceAccount", true)
                .short(&["sa"]),
        );
        t.add(
            ResourceDef::builtin("", "v1", "services", "Service", true)
                .short(&["svc"])
                .sub(&[Status])
                .names(NameRule::Label1035),
        );
        t.add(
            ResourceDef::builtin("", "v1", "events", "Event", true)
                .short(&["ev"])
                .fields(&[
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ]),
        );
        t.add(
            ResourceDef::builtin("", "v1", "namespaces", "Namespace", false)
                .short(&["ns"])
                .sub(&[Status])
                .fields(&["status.phase"])
                .names(NameRule::Label),
        );
        t.add(
            ResourceDef::builtin(
                "",
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                true,
            )
            .short(&["pvc"])
            .sub(&[Status]),
        );
        t.add(ResourceDef::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
        ));
        t.add(
            ResourceDef::builtin(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
            )
            .short(&["netpol"]),
        );
        t.add(
            ResourceDef::builtin(
                "scheduling.k8s.io",
                "v1",
                "priorityclasses",
                "PriorityClass",
                false,
            )
            .short(&["pc"]),
        );
        t.add(
            ResourceDef::builtin(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
            )
            .short(&["pdb"])
            .sub(&[Status]),
        );
        let mut events =
            ResourceDef::builtin("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]);
        events.storage = (String::new(), "events".to_owned());
        events.view = View::EventsV1;
        t.add(events);
        t.add(
            ResourceDef::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
            )
            .short(&["crd", "crds"])
            .sub(&[Status]),
        );
        t
    }

    /// Adds (or replaces, by group/version/plural) a resource.
    pub fn add(&mut self, def: ResourceDef) {
        let key = (def.group.clone(), def.version.clone(), def.plural.clone());
        if let Some(&i) = self.by_path.get(&key) {
            self.defs[i] = Arc::new(def);
        } else {
            self.by_path.insert(key, self.defs.len());
            self.defs.push(Arc::new(def));
        }
    }

    /// The resource served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.by_path
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .map(|&i| self.defs[i].clone())
    }

    /// The resource with this `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.api_version() == api_version && d.kind == kind)
            .cloned()
    }

    /// Every resource, in registration order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.defs.iter()
    }

    /// Groups (in registration order, core `""` first) → versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, versions)) => {
                    if !versions.contains(&d.version) {
                        versions.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        out
    }

    /// Registers the served versions of a `CustomResourceDefinition` (as JSON).
    pub fn add_crd(&mut self, crd: &Value) -> Result<Vec<Arc<ResourceDef>>, String> {
        let defs = defs_from_crd(crd)?;
        for d in &defs {
            self.add(d.clone());
        }
        Ok(defs
            .iter()
            .filter_map(|d| self.lookup(&d.group, &d.version, &d.plural))
            .collect())
    }

    /// Removes a CRD's resources (group + plural, every version).
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        let kept: Vec<Arc<ResourceDef>> = self
            .defs
            .iter()
            .filter(|d| !(d.group == group && d.plural == plural))
            .cloned()
            .collect();
        self.defs.clear();
        self.by_path.clear();
        for d in kept {
            self.add((*d).clone());
        }
    }
}

/// The resources a `CustomResourceDefinition` serves, one per served version.
pub fn defs_from_crd(crd: &Value) -> Result<Vec<ResourceDef>, String> {
    let spec = crd.get("spec").ok_or("the CRD has no spec")?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let group = s(spec.get("group")).ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = s(names.get("plural")).ok_or("spec.names.plural is required")?;
    let kind = s(names.get("kind")).ok_or("spec.names.kind is required")?;
    let singular = s(names.get("singular")).unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(format!(
                "spec.scope must be Namespaced or Cluster, not {other:?}"
            ));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let version = s(v.get("name")).ok_or("spec.versions[].name is required")?;
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push(Subresource::Status);
        }
        let fields = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDef {
            group: group.clone(),
            version,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            subresources,
            fields,
            name_rule: NameRule::Subdomain,
            storage: (group.clone(), plural.clone()),
            view: View::Native,
            printer_columns: Some(
                v.get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
        });
    }
    if out.is_empty() {
        return Err("the CRD serves no version".to_owned());
    }
    Ok(out)
}
