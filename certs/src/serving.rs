//! Serving certificates: the names a TLS server answers to, and issuing its certificate from a CA.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::authority::{CertificateAuthority, generate_error};
use crate::error::{CertError, Result};
use crate::names::{check_dns_name, check_namespace, check_service_name};
use crate::validity::Validity;

/// The DNS names under which the API server reaches a Service: `<svc>.<ns>.svc` and
/// `<svc>.<ns>.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> [String; 2] {
    let server_name = service_server_name(service, namespace);
    let fully_qualified = format!("{server_name}.cluster.local");
    [server_name, fully_qualified]
}

/// The name the API server puts in TLS SNI when it calls a webhook Service: `<svc>.<ns>.svc`.
pub fn service_server_name(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc")
}

/// The subject alternative names of a serving certificate: DNS names and IP addresses, in
/// order, without duplicates. The first DNS name (else the first address) is the common name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingIdentity {
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
}

impl ServingIdentity {
    /// The names of a Kubernetes Service (see [`service_dns_names`]), after checking that
    /// `service` and `namespace` are valid Kubernetes names.
    pub fn for_service(service: &str, namespace: &str) -> Result<Self> {
        check_service_name(service)?;
        check_namespace(namespace)?;
        Self::for_names(&service_dns_names(service, namespace), &[])
    }

    /// Arbitrary DNS names and IP addresses (for example `localhost` and `127.0.0.1` in tests).
    pub fn for_names<S: AsRef<str>>(dns_names: &[S], ip_addresses: &[IpAddr]) -> Result<Self> {
        Self::default()
            .with_dns_names(dns_names)
            .map(|identity| identity.with_ip_addresses(ip_addresses))
    }

    /// Adds DNS names (checked; duplicates are skipped).
    pub fn with_dns_names<S: AsRef<str>>(mut self, dns_names: &[S]) -> Result<Self> {
        for name in dns_names {
            let name = name.as_ref();
            check_dns_name(name)?;
            if !self.dns_names.iter().any(|known| known == name) {
                self.dns_names.push(name.to_owned());
            }
        }
        Ok(self)
    }

    /// Adds IP addresses (duplicates are skipped).
    pub fn with_ip_addresses(mut self, ip_addresses: &[IpAddr]) -> Self {
        for address in ip_addresses {
            if !self.ip_addresses.contains(address) {
                self.ip_addresses.push(*address);
            }
        }
        self
    }

    /// The DNS names, in order.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The IP addresses, in order.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// The subject common name: the first DNS name, else the first IP address.
    pub fn common_name(&self) -> Option<String> {
        self.dns_names
            .first()
            .cloned()
            .or_else(|| self.ip_addresses.first().map(IpAddr::to_string))
    }

    fn subject_alt_names(&self) -> Result<Vec<SanType>> {
        let dns = self.dns_names.iter().map(|name| {
            name.as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|error: rcgen::Error| CertError::InvalidName {
                    what: "DNS name",
                    value: name.clone(),
                    reason: error.to_string(),
                })
        });
        let ips = self
            .ip_addresses
            .iter()
            .map(|ip| Ok(SanType::IpAddress(*ip)));
        dns.chain(ips).collect()
    }
}

/// A serving certificate (leaf, signed by a [`CertificateAuthority`]) with its private key.
pub struct ServingCertificate {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    key_der: PrivatePkcs8KeyDer<'static>,
    validity: Validity,
}

impl ServingCertificate {
    /// The certificate in PEM (`tls.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key in PEM, PKCS#8 (`tls.key`). Keep it secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The certificate chain a TLS server presents: just the leaf (clients hold the CA).
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone()]
    }

    /// The private key in DER, as rustls takes it.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// When the certificate is valid.
    pub fn validity(&self) -> Validity {
        self.validity
    }
}

impl fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("validity", &self.validity)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

impl CertificateAuthority {
    /// Issues a serving certificate for `identity` with a fresh ECDSA P-256 key: key usage
    /// `digitalSignature, keyEncipherment`, extended key usage `serverAuth`, not a CA.
    ///
    /// Renewal is calling this again (on a CA loaded with [`CertificateAuthority::from_pem`]):
    /// the new certificate verifies with the same CA bundle. Fails if the certificate would
    /// outlive the CA.
    pub fn issue_serving(
        &self,
        identity: &ServingIdentity,
        validity: Validity,
    ) -> Result<ServingCertificate> {
        if validity.not_after() > self.not_after() {
            return Err(CertError::OutlivesCa {
                requested_not_after: validity.not_after(),
                ca_not_after: self.not_after(),
            });
        }
        let common_name = identity.common_name().ok_or(CertError::NoSubjectNames)?;
        let key = KeyPair::generate().map_err(generate_error("serving key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = identity.subject_alt_names()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before();
        params.not_after = validity.not_after();
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(generate_error("serving certificate"))?;
        Ok(ServingCertificate {
            cert_pem: certificate.pem(),
            cert_der: certificate.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
            validity,
        })
    }
}
