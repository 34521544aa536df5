//! Kubernetes output: a `kubernetes.io/tls` Secret manifest and the webhook `caBundle`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use crate::error::Result;
use crate::files::{CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
use crate::names::{check_namespace, check_object_name};
use crate::serving::ServingCertificate;

/// The Secret type kubelet and cert-manager use for TLS key pairs.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The label put on Secrets rendered by this crate.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "sparkgang-certs");

/// The base64 of the CA certificate PEM: the `caBundle` of a webhook configuration.
pub fn ca_bundle(ca_cert_pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_cert_pem)
}

/// A `kubernetes.io/tls` Secret manifest (YAML) holding `tls.crt`, `tls.key` and `ca.crt`
/// (base64 in `data`), after checking the Secret name and namespace.
pub fn tls_secret_manifest(
    secret_name: &str,
    namespace: &str,
    serving: &ServingCertificate,
    ca_cert_pem: &str,
) -> Result<String> {
    check_object_name("Secret name", secret_name)?;
    check_namespace(namespace)?;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let secret = TlsSecret {
        api_version: "v1",
        kind: "Secret",
        metadata: Metadata {
            name: secret_name,
            namespace,
            labels: BTreeMap::from([MANAGED_BY_LABEL]),
        },
        secret_type: TLS_SECRET_TYPE,
        data: BTreeMap::from([
            (CA_CERT_FILE, encode(ca_cert_pem)),
            (TLS_CERT_FILE, encode(serving.cert_pem())),
            (TLS_KEY_FILE, encode(serving.key_pem())),
        ]),
    };
    Ok(serde_yaml::to_string(&secret)?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TlsSecret<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    #[serde(rename = "type")]
    secret_type: &'static str,
    data: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: BTreeMap<&'static str, &'static str>,
}
