//! `TestPki`: a CA plus a serving certificate in one call, for other crates' tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use time::macros::datetime;

use crate::authority::CertificateAuthority;
use crate::error::Result;
use crate::files::write_serving;
use crate::serving::{ServingCertificate, ServingIdentity};
use crate::tls::{client_config_trusting, server_config};
use crate::validity::Validity;

/// The loopback names every [`TestPki::localhost`] certificate carries.
pub const LOCALHOST_DNS_NAMES: [&str; 1] = ["localhost"];
/// The loopback addresses every [`TestPki::localhost`] certificate carries.
pub const LOCALHOST_IP_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// A throw-away PKI for tests: a fresh CA and a serving certificate it signed.
///
/// Unless given a [`Validity`], both certificates are valid from 2000-01-01 to 2099-12-31, so
/// tests need no clock. All keys are ECDSA P-256.
///
/// ```
/// # fn main() -> Result<(), sparkgang_certs::CertError> {
/// use sparkgang_certs::TestPki;
/// let pki = TestPki::new(&["localhost"], &["127.0.0.1".parse().unwrap()])?;
/// assert!(pki.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// let server = pki.server_config()?; // rustls, ring provider
/// let client = pki.client_config()?; // trusts only pki.ca_cert_pem()
/// # let _ = (server, client);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TestPki {
    ca: CertificateAuthority,
    identity: ServingIdentity,
    validity: Validity,
    serving: ServingCertificate,
}

impl TestPki {
    /// A CA and a serving certificate for `dns_names` and `ip_addresses`.
    pub fn new(dns_names: &[&str], ip_addresses: &[IpAddr]) -> Result<Self> {
        Self::with_validity(dns_names, ip_addresses, test_validity()?)
    }

    /// Like [`Self::new`] with an explicit validity for both certificates (for expiry tests).
    pub fn with_validity(
        dns_names: &[&str],
        ip_addresses: &[IpAddr],
        validity: Validity,
    ) -> Result<Self> {
        let identity = ServingIdentity::for_names(dns_names, ip_addresses)?;
        Self::for_identity(identity, validity)
    }

    /// For a server on loopback: `localhost`, `127.0.0.1` and `::1`.
    pub fn localhost() -> Result<Self> {
        Self::new(&LOCALHOST_DNS_NAMES, &LOCALHOST_IP_ADDRESSES)
    }

    /// For a Kubernetes Service (`<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local`) that tests
    /// reach on loopback: also `localhost`, `127.0.0.1` and `::1`.
    pub fn for_service(service: &str, namespace: &str) -> Result<Self> {
        let identity = ServingIdentity::for_service(service, namespace)?
            .with_dns_names(&LOCALHOST_DNS_NAMES)?
            .with_ip_addresses(&LOCALHOST_IP_ADDRESSES);
        Self::for_identity(identity, test_validity()?)
    }

    fn for_identity(identity: ServingIdentity, validity: Validity) -> Result<Self> {
        let ca = CertificateAuthority::generate("sparkgang test CA", validity)?;
        let serving = ca.issue_serving(&identity, validity)?;
        Ok(Self {
            ca,
            identity,
            validity,
            serving,
        })
    }

    /// The CA certificate PEM (what clients trust; `ca.crt`).
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The serving certificate PEM (`tls.crt`).
    pub fn cert_pem(&self) -> &str {
        self.serving.cert_pem()
    }

    /// The serving private key PEM, PKCS#8 (`tls.key`).
    pub fn key_pem(&self) -> &str {
        self.serving.key_pem()
    }

    /// The CA, to issue more certificates.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The serving certificate and key.
    pub fn serving(&self) -> &ServingCertificate {
        &self.serving
    }

    /// The names the serving certificate is valid for.
    pub fn identity(&self) -> &ServingIdentity {
        &self.identity
    }

    /// A new serving certificate (new key) for the same names from the same CA, as a rotation
    /// would produce; clients built by [`Self::client_config`] accept it.
    pub fn reissue(&self) -> Result<ServingCertificate> {
        self.ca.issue_serving(&self.identity, self.validity)
    }

    /// A rustls server configuration (ring provider) presenting the serving certificate.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        server_config(&self.serving)
    }

    /// A rustls client configuration (ring provider) trusting only this CA.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        client_config_trusting(self.ca.cert_pem())
    }

    /// Writes `tls.crt`, `tls.key` and `ca.crt` into `dir` (as a mounted Secret would hold them).
    pub fn write_to_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        write_serving(dir, &self.serving, self.ca.cert_pem())
    }
}

/// Both test certificates' default validity: 2000-01-01 to 2099-12-31.
fn test_validity() -> Result<Validity> {
    Validity::new(
        datetime!(2000-01-01 00:00 UTC),
        datetime!(2099-12-31 23:59:59 UTC),
    )
}
