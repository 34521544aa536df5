//! PEM text in and out: parsing certificates and keys with errors that name the input, and encoding.

use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{CertError, Result};

/// The first `CERTIFICATE` section of `pem_text`; `input` names the text in errors.
pub fn parse_first_certificate(input: &str, pem_text: &str) -> Result<CertificateDer<'static>> {
    require_pem_sections(input, pem_text)?;
    match CertificateDer::pem_slice_iter(pem_text.as_bytes()).next() {
        Some(Ok(certificate)) => Ok(certificate),
        Some(Err(error)) => Err(not_pem(input, &error)),
        None => Err(CertError::NoCertificate {
            input: input.to_owned(),
            found: section_labels(pem_text),
        }),
    }
}

/// Every `CERTIFICATE` section of `pem_text` (a CA bundle may hold several); at least one.
pub fn parse_certificates(input: &str, pem_text: &str) -> Result<Vec<CertificateDer<'static>>> {
    require_pem_sections(input, pem_text)?;
    let certificates = CertificateDer::pem_slice_iter(pem_text.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| not_pem(input, &error))?;
    if certificates.is_empty() {
        return Err(CertError::NoCertificate {
            input: input.to_owned(),
            found: section_labels(pem_text),
        });
    }
    Ok(certificates)
}

/// The first private key section of `pem_text` as an rcgen key pair; `input` names the text in
/// errors.
pub fn parse_private_key(input: &str, pem_text: &str) -> Result<KeyPair> {
    require_pem_sections(input, pem_text)?;
    let private_key = match PrivateKeyDer::from_pem_slice(pem_text.as_bytes()) {
        Ok(private_key) => private_key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(CertError::NoPrivateKey {
                input: input.to_owned(),
                found: section_labels(pem_text),
            });
        }
        Err(error) => return Err(not_pem(input, &error)),
    };
    KeyPair::try_from(&private_key).map_err(|error| CertError::UnusableKey {
        input: input.to_owned(),
        reason: match private_key {
            PrivateKeyDer::Pkcs8(_) => error.to_string(),
            PrivateKeyDer::Sec1(_) => "a SEC1 \"EC PRIVATE KEY\"".to_owned(),
            PrivateKeyDer::Pkcs1(_) => "a PKCS#1 \"RSA PRIVATE KEY\"".to_owned(),
            _ => "an unknown key format".to_owned(),
        },
    })
}

fn require_pem_sections(input: &str, pem_text: &str) -> Result<()> {
    if pem_text.lines().any(|line| line.starts_with("-----BEGIN ")) {
        Ok(())
    } else {
        Err(CertError::NotPem {
            input: input.to_owned(),
            reason: "no \"-----BEGIN ...-----\" line".to_owned(),
        })
    }
}

fn not_pem(input: &str, error: &rustls_pki_types::pem::Error) -> CertError {
    CertError::NotPem {
        input: input.to_owned(),
        reason: error.to_string(),
    }
}

/// The labels of the PEM sections in `pem_text`, for error messages.
fn section_labels(pem_text: &str) -> String {
    let labels: Vec<&str> = pem_text
        .lines()
        .filter_map(|line| line.strip_prefix("-----BEGIN "))
        .map(|rest| rest.trim_end().trim_end_matches('-'))
        .collect();
    if labels.is_empty() {
        "nothing".to_owned()
    } else {
        labels.join(", ")
    }
}

/// Encodes DER bytes as one PEM section with the given label (for example `CERTIFICATE`), with
/// 64-character lines and a trailing newline.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_pem_and_names_the_input() {
        let error = parse_first_certificate("/tmp/ca.crt", "hello").unwrap_err();
        assert!(matches!(error, CertError::NotPem { .. }), "{error:?}");
        assert!(error.to_string().contains("/tmp/ca.crt"), "{error}");
    }

    #[test]
    fn a_key_is_not_a_certificate() {
        let key = KeyPair::generate().unwrap().serialize_pem();
        let error = parse_first_certificate("key.pem", &key).unwrap_err();
        assert!(
            matches!(error, CertError::NoCertificate { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("PRIVATE KEY"), "{error}");
    }

    #[test]
    fn broken_base64_is_not_pem() {
        let text = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let error = parse_first_certificate("ca.crt", text).unwrap_err();
        assert!(matches!(error, CertError::NotPem { .. }), "{error:?}");
    }

    #[test]
    fn encoded_pem_parses_back() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let text = encode_pem("CERTIFICATE", &der);
        assert_eq!(parse_first_certificate("x", &text).unwrap().as_ref(), der);
    }
}
