//! Extension points: admission hooks (mutate or deny writes) and request observers (which calls were made).

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;

use super::errors::ApiError;

/// The operation being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

impl Operation {
    /// `CREATE` / `UPDATE`, as in `AdmissionReview`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
        }
    }
}

/// What an admission hook is asked about; the fields of an `AdmissionReview` request.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    pub operation: Operation,
    /// Group, version, resource (plural) of the endpoint called.
    pub group: String,
    pub version: String,
    pub resource: String,
    /// `Some("status")`, `Some("binding")`, … for subresource writes.
    pub subresource: Option<String>,
    pub kind: String,
    pub namespace: String,
    /// Empty on create with `generateName` (as webhooks see it).
    pub name: String,
    /// The object to be stored (defaults applied).
    pub object: Value,
    /// The stored object, on update.
    pub old_object: Option<Value>,
    pub dry_run: bool,
    /// `User-Agent` of the HTTP request (`None` for in-process calls).
    pub user_agent: Option<String>,
}

/// An admission hook's answer.
#[derive(Debug, Clone)]
pub enum AdmissionVerdict {
    /// Store the object as it is.
    Allow,
    /// Store this object instead (the mutated `request.object`).
    Mutate(Value),
    /// Refuse the write; the client gets this error as a `Status`.
    Deny(ApiError),
}

impl AdmissionVerdict {
    /// A denial with `code` (`reason` derived from it) and `message`.
    pub fn deny(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        AdmissionVerdict::Deny(ApiError::new(code, reason, message))
    }
}

/// Called on every CREATE and UPDATE (PUT, PATCH, apply, status and binding writes
/// included) before the object is validated and stored. Hooks run in the order they were
/// added; each sees the previous one's mutation. Create a hook from a closure with
/// [`admission_fn`].
pub trait AdmissionHook: Send + Sync + 'static {
    fn admit(&self, request: AdmissionRequest) -> BoxFuture<'static, AdmissionVerdict>;
}

struct FnHook<F>(F);

impl<F, Fut> AdmissionHook for FnHook<F>
where
    F: Fn(AdmissionRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AdmissionVerdict> + Send + 'static,
{
    fn admit(&self, request: AdmissionRequest) -> BoxFuture<'static, AdmissionVerdict> {
        Box::pin((self.0)(request))
    }
}

/// An admission hook from an async closure.
pub fn admission_fn<F, Fut>(f: F) -> Arc<dyn AdmissionHook>
where
    F: Fn(AdmissionRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AdmissionVerdict> + Send + 'static,
{
    Arc::new(FnHook(f))
}

/// One HTTP request as the server understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    /// The RBAC verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource paths (discovery) the lower-case method.
    pub verb: String,
    /// `None` for non-resource paths (`/api`, `/apis/...` discovery, `/version`).
    pub group: Option<String>,
    pub version: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user_agent: Option<String>,
    /// The HTTP status of the response (200 for a watch that started).
    pub code: u16,
}

/// Sees every request after it has been answered (watches: once started).
pub trait RequestObserver: Send + Sync + 'static {
    fn observe(&self, request: &RequestRecord);
}

impl<F> RequestObserver for F
where
    F: Fn(&RequestRecord) + Send + Sync + 'static,
{
    fn observe(&self, request: &RequestRecord) {
        self(request)
    }
}

/// A request observer that keeps every record (for tests of which calls a binary made).
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
}

impl RequestLog {
    pub fn new() -> Arc<Self> {
        Arc::new(RequestLog::default())
    }

    /// Every record so far, oldest first.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Distinct `(verb, group, resource[/subresource])` triples seen, sorted: the shape of
    /// an RBAC rule list.
    pub fn verbs_by_resource(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = self
            .records()
            .into_iter()
            .filter_map(|r| {
                let resource = r.resource?;
                let resource = match r.subresource {
                    Some(s) => format!("{resource}/{s}"),
                    None => resource,
                };
                Some((r.verb, r.group.unwrap_or_default(), resource))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl RequestObserver for RequestLog {
    fn observe(&self, request: &RequestRecord) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
    }
}

/// The hooks of a server; changeable while it runs.
#[derive(Default)]
pub struct Hooks {
    admission: std::sync::RwLock<Vec<Arc<dyn AdmissionHook>>>,
    observers: std::sync::RwLock<Vec<Arc<dyn RequestObserver>>>,
}

impl Hooks {
    pub fn add_admission(&self, hook: Arc<dyn AdmissionHook>) {
        self.admission
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    pub fn clear_admission(&self) {
        self.admission
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn add_observer(&self, observer: Arc<dyn RequestObserver>) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    pub(crate) fn admission_hooks(&self) -> Vec<Arc<dyn AdmissionHook>> {
        self.admission
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn observe(&self, record: &RequestRecord) {
        let observers = self
            .observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for o in observers {
            o.observe(record);
        }
    }

    /// Runs the admission hooks in order on `request`; the object to store, or the denial.
    pub async fn admit(&self, mut request: AdmissionRequest) -> Result<Value, ApiError> {
        for hook in self.admission_hooks() {
            match hook.admit(request.clone()).await {
                AdmissionVerdict::Allow => {}
                AdmissionVerdict::Mutate(v) => request.object = v,
                AdmissionVerdict::Deny(e) => return Err(e),
            }
        }
        Ok(request.object)
    }
}
