//! Admission as kube-apiserver does it: the `MutatingWebhookConfiguration` from `deploy/`
//! decides which writes go to the webhook (rules, `objectSelector`, `namespaceSelector`); the
//! `AdmissionReview` goes over HTTPS, verified against the CA; the JSON Patch is applied;
//! `failurePolicy` and `timeoutSeconds` are honoured; a denial reaches the client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use sparkgang_common::labels::selector_matches;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::apiserver::{AdmissionHook, AdmissionRequest, AdmissionVerdict, Operation, Store};

/// Where the webhook's Service really is (the simulator's stand-in for Service routing), and
/// the CA its certificate chains to (the stand-in for cert-manager's CA injection).
#[derive(Clone)]
pub struct WebhookEndpoint {
    pub address: SocketAddr,
    pub ca_pem: String,
}

/// Sends admission reviews to the webhooks of one `MutatingWebhookConfiguration`.
#[derive(Clone)]
pub struct WebhookDispatcher(Arc<Dispatcher>);

struct Dispatcher {
    config: MutatingWebhookConfiguration,
    endpoint: WebhookEndpoint,
    tls: TlsConnector,
    store: Store,
    next_uid: AtomicU64,
}

impl WebhookDispatcher {
    pub fn new(
        config: MutatingWebhookConfiguration,
        endpoint: WebhookEndpoint,
        store: Store,
    ) -> Result<Self, String> {
        let client = sparkgang_certs::client_config_trusting(&endpoint.ca_pem)
            .map_err(|e| format!("webhook CA: {e}"))?;
        Ok(WebhookDispatcher(Arc::new(Dispatcher {
            config,
            endpoint,
            tls: TlsConnector::from(Arc::new(client)),
            store,
            next_uid: AtomicU64::new(1),
        })))
    }
}

impl Dispatcher {
    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if let Some(def) = self.store.resource("", "v1", "namespaces")
            && let Some(ns) = self.store.get(&def, "", namespace)
            && let Some(l) = ns
                .value
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
        {
            for (k, v) in l {
                if let Some(v) = v.as_str() {
                    labels.insert(k.clone(), v.to_owned());
                }
            }
        }
        labels.insert(
            "kubernetes.io/metadata.name".to_owned(),
            namespace.to_owned(),
        );
        labels
    }

    async fn call(
        &self,
        hook: &MutatingWebhook,
        request: &AdmissionRequest,
        object: &Value,
    ) -> Result<Reply, String> {
        let uid = format!(
            "00000000-0000-4000-8000-{:012x}",
            self.next_uid.fetch_add(1, Ordering::Relaxed)
        );
        let review = if request.resource == "pods" && request.operation == Operation::Create {
            sparkgang_admission::review_client::pod_create_review(
                &request.namespace,
                &uid,
                object,
                request.dry_run,
            )
        } else {
            generic_review(request, &uid, object)
        };
        let service = hook.client_config.service.as_ref();
        let path = service
            .and_then(|s| s.path.clone())
            .unwrap_or_else(|| "/".to_owned());
        let server_name = service
            .map(|s| format!("{}.{}.svc", s.name, s.namespace))
            .unwrap_or_else(|| "localhost".to_owned());
        let timeout = Duration::from_secs(hook.timeout_seconds.unwrap_or(10).clamp(1, 30) as u64);
        let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
        let call = async {
            let tcp = TcpStream::connect(self.endpoint.address)
                .await
                .map_err(|e| format!("dial tcp {}: {e}", self.endpoint.address))?;
            let name = ServerName::try_from(server_name.clone()).map_err(|e| e.to_string())?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            let (status, bytes) = sparkgang_testing::http::post_json(
                tls,
                &server_name,
                &format!("{path}?timeout={}s", timeout.as_secs()),
                body,
            )
            .await?;
            if !status.is_success() {
                return Err(format!(
                    "the server responded {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            let decoded = sparkgang_admission::review_client::decode_response(&bytes)?;
            if decoded.uid != uid {
                return Err(format!("expected response.uid={uid}, got {}", decoded.uid));
            }
            Ok(Reply {
                allowed: decoded.allowed,
                status: decoded.status,
                patch: decoded.patch,
            })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "context deadline exceeded ({}s)",
                timeout.as_secs()
            )),
        }
    }
}

struct Reply {
    allowed: bool,
    status: Option<(u16, String)>,
    patch: Option<Value>,
}

fn generic_review(request: &AdmissionRequest, uid: &str, object: &Value) -> Value {
    let gvk = json!({"group": request.group, "version": request.version, "kind": request.kind});
    let gvr =
        json!({"group": request.group, "version": request.version, "resource": request.resource});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "subResource": request.subresource,
            "name": request.name, "namespace": request.namespace,
            "operation": request.operation.as_str(),
            "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object, "oldObject": request.old_object,
            "dryRun": request.dry_run,
        }
    })
}

/// True when a rule of `hook` covers this request.
fn rules_match(hook: &MutatingWebhook, r: &AdmissionRequest) -> bool {
    let any = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == "*" || x == v))
    };
    let resource = match &r.subresource {
        Some(sub) => format!("{}/{sub}", r.resource),
        None => r.resource.clone(),
    };
    hook.rules.iter().flatten().any(|rule| {
        rule.operations
            .as_ref()
            .is_some_and(|ops| ops.iter().any(|o| o == "*" || o == r.operation.as_str()))
            && any(&rule.api_groups, &r.group)
            && any(&rule.api_versions, &r.version)
            && any(&rule.resources, &resource)
    })
}

fn object_labels(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl AdmissionHook for WebhookDispatcher {
    fn admit(&self, request: AdmissionRequest) -> BoxFuture<'static, AdmissionVerdict> {
        let me = self.0.clone();
        Box::pin(async move {
            let hooks: Vec<MutatingWebhook> = me.config.webhooks.clone().unwrap_or_default();
            let namespace_labels = me.namespace_labels(&request.namespace);
            let mut object = request.object.clone();
            let mut changed = false;
            for hook in &hooks {
                let labels = object_labels(&object);
                let old_labels = request.old_object.as_ref().map(object_labels);
                let object_selected = selector_matches(hook.object_selector.as_ref(), &labels)
                    || old_labels
                        .is_some_and(|l| selector_matches(hook.object_selector.as_ref(), &l));
                if !rules_match(hook, &request)
                    || !object_selected
                    || !selector_matches(hook.namespace_selector.as_ref(), &namespace_labels)
                {
                    continue;
                }
                let fail = hook.failure_policy.as_deref() != Some("Ignore");
                match me.call(hook, &request, &object).await {
                    Ok(reply) if !reply.allowed => {
                        let (code, message) = reply.status.unwrap_or((403, String::new()));
                        return AdmissionVerdict::deny(
                            if code == 0 { 403 } else { code },
                            format!(
                                "admission webhook \"{}\" denied the request: {message}",
                                hook.name
                            ),
                        );
                    }
                    Ok(reply) => {
                        if let Some(p) = reply.patch {
                            match serde_json::from_value::<json_patch::Patch>(p) {
                                Ok(patch) => {
                                    if let Err(e) = json_patch::patch(&mut object, &patch) {
                                        return AdmissionVerdict::deny(
                                            500,
                                            format!(
                                                "Internal error occurred: admission webhook \"{}\" returned an unusable patch: {e}",
                                                hook.name
                                            ),
                                        );
                                    }
                                    changed = true;
                                }
                                Err(e) => {
                                    return AdmissionVerdict::deny(
                                        500,
                                        format!(
                                            "Internal error occurred: admission webhook \"{}\" returned an unusable patch: {e}",
                                            hook.name
                                        ),
                                    );
                                }
                            }
                        }
                    }
                    Err(e) if fail => {
                        return AdmissionVerdict::deny(
                            500,
                            format!(
                                "Internal error occurred: failed calling webhook \"{}\": failed to call webhook: Post \"https://{}\": {e}",
                                hook.name, me.endpoint.address
                            ),
                        );
                    }
                    Err(_) => {}
                }
            }
            if changed {
                AdmissionVerdict::Mutate(object)
            } else {
                AdmissionVerdict::Allow
            }
        })
    }
}
