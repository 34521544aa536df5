//! The error type of the library: every variant names the file or input that was wrong.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::instant::format_instant;

/// Everything that can go wrong while creating, loading, checking or writing certificates.
///
/// `input` fields hold a human-readable name of where the data came from: a file path when the
/// data was read from disk, otherwise a label such as `"CA certificate PEM"`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A directory that should hold a CA does not exist or is not a directory.
    #[error("CA directory {} does not exist or is not a directory", path.display())]
    MissingDirectory {
        /// The directory that was expected.
        path: PathBuf,
    },

    /// Writing a CA would replace an existing CA file.
    #[error("{} already exists; refusing to overwrite an existing CA", path.display())]
    CaAlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The input is not PEM text (no `-----BEGIN ...-----` section, or a broken one).
    #[error("{input} is not valid PEM: {reason}")]
    NotPem {
        /// Where the text came from.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The input is PEM but holds no `CERTIFICATE` section.
    #[error("{input} contains no CERTIFICATE PEM section (found: {found})")]
    NoCertificate {
        /// Where the text came from.
        input: String,
        /// The PEM section labels that were found instead.
        found: String,
    },

    /// The input is PEM but holds no private key section.
    #[error(
        "{input} contains no private key PEM section (found: {found}); expected an unencrypted PKCS#8 \"PRIVATE KEY\""
    )]
    NoPrivateKey {
        /// Where the text came from.
        input: String,
        /// The PEM section labels that were found instead.
        found: String,
    },

    /// The private key could not be used (wrong format or unsupported algorithm).
    #[error(
        "{input} holds a private key that cannot be used ({reason}); expected an unencrypted PKCS#8 \"PRIVATE KEY\" (ECDSA P-256/P-384, Ed25519 or RSA)"
    )]
    UnusableKey {
        /// Where the key came from.
        input: String,
        /// Why the key was rejected.
        reason: String,
    },

    /// The certificate is not a parseable X.509 certificate.
    #[error("{input} holds a certificate that cannot be parsed: {reason}")]
    BadCertificate {
        /// Where the certificate came from.
        input: String,
        /// The parser's complaint.
        reason: String,
    },

    /// The private key does not belong to the certificate.
    #[error("the private key in {key_input} does not match the certificate in {cert_input}")]
    KeyMismatch {
        /// Where the certificate came from.
        cert_input: String,
        /// Where the key came from.
        key_input: String,
    },

    /// The certificate that should be a CA lacks `basicConstraints CA:TRUE`.
    #[error("the certificate in {input} is not a CA (basicConstraints CA:TRUE is missing)")]
    NotCa {
        /// Where the certificate came from.
        input: String,
    },

    /// The CA certificate's key usage does not allow signing certificates.
    #[error(
        "the CA certificate in {input} may not sign certificates (its keyUsage lacks keyCertSign)"
    )]
    CaCannotSign {
        /// Where the certificate came from.
        input: String,
    },

    /// A serving certificate would be valid for longer than the CA that signs it.
    #[error(
        "the serving certificate would be valid until {} but its CA expires at {}; ask for fewer days or create a new CA",
        format_instant(*requested_not_after),
        format_instant(*ca_not_after)
    )]
    OutlivesCa {
        /// The requested end of validity.
        requested_not_after: OffsetDateTime,
        /// The CA's end of validity.
        ca_not_after: OffsetDateTime,
    },

    /// A validity window that is empty, reversed or out of range.
    #[error("invalid validity: {reason}")]
    InvalidValidity {
        /// What is wrong with it.
        reason: String,
    },

    /// A name that cannot be used in a certificate or a Kubernetes object.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What the name is for (for example `"service name"` or `"DNS name"`).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A certificate would have neither a DNS name nor an IP address.
    #[error("a serving certificate needs at least one DNS name or IP address")]
    NoSubjectNames,

    /// rcgen refused to build or sign a certificate.
    #[error("cannot generate the {what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },

    /// rustls refused a certificate or key while building a TLS configuration.
    #[error("cannot build a rustls configuration: {0}")]
    Rustls(#[from] rustls::Error),

    /// The Secret manifest could not be rendered.
    #[error("cannot render the Secret manifest: {0}")]
    RenderManifest(#[from] serde_yaml::Error),
}

/// The result type of this crate.
pub type Result<T, E = CertError> = std::result::Result<T, E>;
