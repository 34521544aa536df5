//! Certificates for sparkgang's TLS servers: a CA, serving certificates for Kubernetes Services
//! signed by it, the files and Secret manifests that carry them, and [`TestPki`] for tests.
//!
//! Keys are ECDSA P-256 (rcgen with the ring backend). Nothing here reads the clock: callers
//! pass `now` to [`Validity::for_days`] or give explicit bounds.
//!
//! ```
//! # fn main() -> Result<(), sparkgang_certs::CertError> {
//! use sparkgang_certs::{CertificateAuthority, ServingIdentity, Validity};
//! let now = time::OffsetDateTime::now_utc();
//! let ca = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now))?;
//! let identity = ServingIdentity::for_service("sparkgang-webhook", "sparkgang-system")?
//!     .with_ip_addresses(&["127.0.0.1".parse().unwrap()]);
//! let serving = ca.issue_serving(&identity, Validity::serving_default(now))?;
//! // Renewal: load the same CA again and issue another certificate.
//! let same_ca = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem())?;
//! let renewed = same_ca.issue_serving(&identity, Validity::for_days(now, 90)?)?;
//! # let _ = (serving, renewed);
//! # Ok(())
//! # }
//! ```

mod authority;
mod error;
mod files;
mod instant;
mod names;
mod pem_text;
mod secret;
mod serving;
mod test_pki;
mod tls;
mod validity;

pub use authority::{CertificateAuthority, DEFAULT_CA_COMMON_NAME};
pub use error::{CertError, Result};
pub use files::{
    CA_CERT_FILE, CA_KEY_FILE, CERTIFICATE_MODE, ExistingCa, PRIVATE_KEY_MODE, TLS_CERT_FILE,
    TLS_KEY_FILE, load_ca, read_text_file, write_ca, write_serving,
};
pub use instant::format_instant;
pub use names::{check_dns_name, check_namespace, check_object_name, check_service_name};
pub use pem_text::{encode_pem, parse_certificates, parse_first_certificate};
pub use secret::{MANAGED_BY_LABEL, TLS_SECRET_TYPE, ca_bundle, tls_secret_manifest};
pub use serving::{ServingCertificate, ServingIdentity, service_dns_names, service_server_name};
pub use test_pki::{LOCALHOST_DNS_NAMES, LOCALHOST_IP_ADDRESSES, TestPki};
pub use tls::{client_config_trusting, server_config};
pub use validity::{
    CLOCK_SKEW_ALLOWANCE, DEFAULT_CA_DAYS, DEFAULT_SERVING_DAYS, MAX_DAYS, Validity,
};
