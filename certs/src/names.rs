//! Checks for Kubernetes object names and DNS names before they go into a certificate or manifest.

use crate::error::{CertError, Result};

/// Checks a Service name: an RFC 1035 label (lowercase letters, digits and `-`, starting with a
/// letter, at most 63 characters), as Kubernetes requires.
pub fn check_service_name(name: &str) -> Result<()> {
    check_label("service name", name, true, false)
}

/// Checks a namespace name: an RFC 1123 label (at most 63 characters).
pub fn check_namespace(name: &str) -> Result<()> {
    check_label("namespace", name, false, false)
}

/// Checks an object name such as a Secret's: an RFC 1123 subdomain (at most 253 characters).
pub fn check_object_name(what: &'static str, name: &str) -> Result<()> {
    check_length(what, name, 253)?;
    name.split('.')
        .try_for_each(|label| check_label(what, label, false, false))
        .map_err(|error| relabel(error, name))
}

/// Checks a DNS name for a subjectAltName: dot-separated labels of letters, digits and `-`, at
/// most 253 characters, optionally starting with a `*.` wildcard label.
pub fn check_dns_name(name: &str) -> Result<()> {
    const WHAT: &str = "DNS name";
    check_length(WHAT, name, 253)?;
    let rest = name.strip_prefix("*.").unwrap_or(name);
    rest.split('.')
        .try_for_each(|label| check_label(WHAT, label, false, true))
        .map_err(|error| relabel(error, name))
}

fn check_length(what: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(what, value, "must not be empty".to_owned()));
    }
    if value.len() > max {
        return Err(invalid(
            what,
            value,
            format!(
                "is {} characters long, at most {max} are allowed",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn check_label(
    what: &'static str,
    label: &str,
    must_start_with_letter: bool,
    allow_uppercase: bool,
) -> Result<()> {
    check_length(what, label, 63)?;
    let allowed = |c: char| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || (allow_uppercase && c.is_ascii_uppercase())
    };
    if let Some(bad) = label.chars().find(|&c| !allowed(c)) {
        let case = if allow_uppercase { "" } else { "lowercase " };
        return Err(invalid(
            what,
            label,
            format!("contains {bad:?}; only {case}letters, digits and '-' are allowed"),
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(invalid(
            what,
            label,
            "must start and end with a letter or digit".to_owned(),
        ));
    }
    if must_start_with_letter && !label.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(invalid(what, label, "must start with a letter".to_owned()));
    }
    Ok(())
}

fn invalid(what: &'static str, value: &str, reason: String) -> CertError {
    CertError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    }
}

/// Reports a label error against the whole name, keeping the label in the reason.
fn relabel(error: CertError, whole: &str) -> CertError {
    match error {
        CertError::InvalidName {
            what,
            value,
            reason,
        } if value != whole => CertError::InvalidName {
            what,
            value: whole.to_owned(),
            reason: format!("label {value:?} {reason}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_rfc_1035() {
        assert!(check_service_name("sparkgang-webhook").is_ok());
        assert!(check_service_name("1webhook").is_err());
        assert!(check_service_name("Webhook").is_err());
        assert!(check_service_name("web.hook").is_err());
        assert!(check_service_name("").is_err());
        assert!(check_service_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn namespaces_follow_rfc_1123() {
        assert!(check_namespace("1spark").is_ok());
        assert!(check_namespace("spark-").is_err());
    }

    #[test]
    fn dns_names_allow_a_leading_wildcard_and_uppercase() {
        assert!(check_dns_name("localhost").is_ok());
        assert!(check_dns_name("*.example.COM").is_ok());
        assert!(check_dns_name("a..b").is_err());
        assert!(check_dns_name("a.*.b").is_err());
        let error = check_dns_name("good.bad_label").unwrap_err().to_string();
        assert!(error.contains("\"good.bad_label\""), "{error}");
        assert!(error.contains("\"bad_label\""), "{error}");
    }

    #[test]
    fn object_names_are_subdomains() {
        assert!(check_object_name("Secret name", "sparkgang-webhook-tls").is_ok());
        assert!(check_object_name("Secret name", "a.b").is_ok());
        assert!(check_object_name("Secret name", "A").is_err());
    }
}
