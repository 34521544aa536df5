//! Kubernetes names: the DNS-1123 label and subdomain rules the API server enforces on object
//! names, namespaces and label prefixes.

/// The longest DNS-1123 label (a namespace, a label name without its prefix).
pub const MAX_LABEL_LEN: usize = 63;
/// The longest DNS-1123 subdomain (most object names).
pub const MAX_SUBDOMAIN_LEN: usize = 253;

/// A DNS-1123 label: 1 to 63 characters of lower-case letters, digits and `-`, starting and
/// ending with a letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: 1 to 253 characters of dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SUBDOMAIN_LEN && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "a-b", "0", "spark-1", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        for ok in [
            "spark-drv-15ca85a213adb269-conf-map",
            "a.b-c",
            "sparkgang.io",
        ] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "Bad_Name", "-a", "a..b", ".a", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }
}
