//! rustls configurations (ring provider) for a serving certificate and for clients of it.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::Result;
use crate::pem_text::parse_certificates;
use crate::serving::ServingCertificate;

/// A TLS 1.2/1.3 server configuration presenting `serving`, built on the ring provider (no
/// process-wide default provider needed). Set `alpn_protocols` on the result as the server needs.
pub fn server_config(serving: &ServingCertificate) -> Result<ServerConfig> {
    Ok(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(serving.cert_chain(), serving.private_key_der())?,
    )
}

/// A TLS 1.2/1.3 client configuration that trusts only the CA certificates in `ca_bundle_pem`
/// (one or more PEM `CERTIFICATE` sections), built on the ring provider.
pub fn client_config_trusting(ca_bundle_pem: &str) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for certificate in parse_certificates("CA bundle PEM", ca_bundle_pem)? {
        roots.add(certificate)?;
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
