//! The certificate authority: create a new one, or load an existing one from PEM to sign with.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::error::{CertError, Result};
use crate::pem_text::{encode_pem, parse_first_certificate, parse_private_key};
use crate::validity::Validity;

/// Common name of a CA created without an explicit one.
pub const DEFAULT_CA_COMMON_NAME: &str = "sparkgang-ca";

/// A CA certificate with its private key, ready to sign serving certificates.
///
/// The CA is self-signed, has `basicConstraints CA:TRUE, pathlen:0` (it signs leaf certificates
/// only) and key usage `keyCertSign, cRLSign`. New CAs use ECDSA P-256 keys.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    not_after: OffsetDateTime,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// Creates a new self-signed CA with a fresh ECDSA P-256 key.
    pub fn generate(common_name: &str, validity: Validity) -> Result<Self> {
        if common_name.trim().is_empty() {
            return Err(CertError::InvalidName {
                what: "CA common name",
                value: common_name.to_owned(),
                reason: "must not be empty".to_owned(),
            });
        }
        let key = KeyPair::generate().map_err(generate_error("CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before();
        params.not_after = validity.not_after();
        let certificate = params
            .self_signed(&key)
            .map_err(generate_error("CA certificate"))?;
        Ok(Self {
            cert_pem: certificate.pem(),
            cert_der: certificate.der().clone(),
            key_pem: key.serialize_pem(),
            not_after: validity.not_after(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads an existing CA from its certificate and private key in PEM.
    ///
    /// Errors call the inputs "CA certificate PEM" and "CA private key PEM"; use
    /// [`Self::from_named_pem`] to name them (for example after the files they came from).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        Self::from_named_pem(
            "CA certificate PEM",
            cert_pem,
            "CA private key PEM",
            key_pem,
        )
    }

    /// Loads an existing CA from PEM, naming each input in errors.
    ///
    /// Uses the first `CERTIFICATE` of `cert_pem` and the first private key (unencrypted PKCS#8)
    /// of `key_pem`. Checks that the certificate is a CA allowed to sign certificates and that the
    /// key belongs to it.
    pub fn from_named_pem(
        cert_input: &str,
        cert_pem: &str,
        key_input: &str,
        key_pem: &str,
    ) -> Result<Self> {
        let cert_der = parse_first_certificate(cert_input, cert_pem)?;
        let key = parse_private_key(key_input, key_pem)?;
        let bad_certificate = |reason: String| CertError::BadCertificate {
            input: cert_input.to_owned(),
            reason,
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|error| bad_certificate(error.to_string()))?;
        match parsed.basic_constraints() {
            Ok(Some(constraints)) if constraints.value.ca => {}
            Ok(_) => {
                return Err(CertError::NotCa {
                    input: cert_input.to_owned(),
                });
            }
            Err(error) => return Err(bad_certificate(error.to_string())),
        }
        match parsed.key_usage() {
            Ok(Some(usage)) if !usage.value.key_cert_sign() => {
                return Err(CertError::CaCannotSign {
                    input: cert_input.to_owned(),
                });
            }
            Ok(_) => {}
            Err(error) => return Err(bad_certificate(error.to_string())),
        }
        if key.public_key_raw() != parsed.public_key().subject_public_key.data.as_ref() {
            return Err(CertError::KeyMismatch {
                cert_input: cert_input.to_owned(),
                key_input: key_input.to_owned(),
            });
        }
        let not_after = parsed.validity().not_after.to_datetime();
        let key_pem = key.serialize_pem();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|error| bad_certificate(error.to_string()))?;
        Ok(Self {
            cert_pem: encode_pem("CERTIFICATE", &cert_der),
            cert_der,
            key_pem,
            not_after,
            issuer,
        })
    }

    /// The CA certificate in PEM: what clients trust (`ca.crt`, the webhook's `caBundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key in PEM (PKCS#8). Keep it secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The last instant at which the CA certificate is valid.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .field("not_after", &self.not_after)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

pub(crate) fn generate_error(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::Generate { what, source }
}
