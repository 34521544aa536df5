//! Serving certificate: loading the PEM pair, and reloading it when the files change.
//!
//! The kubelet (and so cert-manager) updates a mounted Secret by swapping a `..data` symlink,
//! which per-file inotify watches miss. [`CertReloader`] instead re-reads both paths (following
//! symlinks) every interval and compares their contents. A changed pair is used only if it is
//! valid and the key matches the certificate; otherwise the old pair keeps being served (cert and
//! key are two files, so a reader can see one new and one old) and the next tick tries again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::Metrics;

/// Why a certificate/key pair cannot be served. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} file {path}: {cause}")]
    Read {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("certificate file {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("certificate file {cert} and key file {key} cannot be used together: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// A usable pair: the rustls configuration presenting it and facts about the leaf certificate.
#[derive(Debug, Clone)]
pub struct ServingPair {
    pub config: Arc<ServerConfig>,
    /// The leaf's notAfter, in Unix seconds.
    pub not_after_unix: i64,
    /// The leaf's serial number, as hex (for logs).
    pub serial: String,
}

/// Builds a TLS 1.2/1.3 server configuration (ring provider, ALPN `h2` and `http/1.1`) from PEM
/// text; the paths only name the inputs in errors.
pub fn server_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<ServingPair, TlsError> {
    let cert_err = |reason: String| TlsError::Certificate {
        path: cert_path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not valid PEM: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_err("no \"-----BEGIN CERTIFICATE-----\" section".into()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| cert_err(format!("not an X.509 certificate: {e}")))?;
    let not_after_unix = parsed.validity().not_after.timestamp();
    let serial = parsed.tbs_certificate.raw_serial_as_string();

    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key section (PKCS#8 \"PRIVATE KEY\", SEC1 \"EC PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")".into()
            }
            e => format!("not valid PEM: {e}"),
        },
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Pair {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        // Checks that the key is usable and matches the leaf's public key.
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Pair {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the private key does not belong to the certificate".into()
                }
                e => e.to_string(),
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServingPair {
        config: Arc::new(config),
        not_after_unix,
        serial,
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Read {
        what,
        path: path.to_owned(),
        cause,
    })
}

/// The two files of a serving certificate and what was last loaded from them.
#[derive(Debug)]
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    /// Contents of the pair being served.
    loaded: (Vec<u8>, Vec<u8>),
    /// Contents of the last pair that failed, so a stuck bad pair is logged once.
    last_failure: Option<(Vec<u8>, Vec<u8>)>,
    rustls: RustlsConfig,
    metrics: Arc<Metrics>,
}

/// What one [`CertReloader::check`] did.
#[derive(Debug)]
pub enum ReloadStatus {
    Unchanged,
    Reloaded(ServingPair),
    /// The files changed but cannot be used; the old pair is still served.
    Failed(TlsError),
}

impl CertReloader {
    /// Loads the pair for the first time. Errors name the file.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, ServingPair), TlsError> {
        let cert = read("certificate", cert_path)?;
        let key = read("key", key_path)?;
        let pair = server_pair(cert_path, &cert, key_path, &key)?;
        metrics.set_certificate_expiry(pair.not_after_unix);
        let reloader = CertReloader {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            loaded: (cert, key),
            last_failure: None,
            rustls: RustlsConfig::from_config(pair.config.clone()),
            metrics,
        };
        Ok((reloader, pair))
    }

    /// The axum-server handle whose configuration is swapped on reload.
    pub fn rustls_config(&self) -> RustlsConfig {
        self.rustls.clone()
    }

    /// Re-reads both files; if they changed and form a valid pair, serves it to new connections.
    pub async fn check(&mut self) -> ReloadStatus {
        let (cert_path, key_path) = (self.cert_path.clone(), self.key_path.clone());
        let read_both = tokio::task::spawn_blocking(move || {
            Ok::<_, TlsError>((read("certificate", &cert_path)?, read("key", &key_path)?))
        })
        .await;
        let contents = match read_both {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return self.failed(None, e),
            Err(join) => {
                let e = TlsError::Read {
                    what: "certificate",
                    path: self.cert_path.clone(),
                    cause: std::io::Error::other(join.to_string()),
                };
                return self.failed(None, e);
            }
        };
        if contents == self.loaded {
            self.last_failure = None;
            return ReloadStatus::Unchanged;
        }
        match server_pair(&self.cert_path, &contents.0, &self.key_path, &contents.1) {
            Ok(pair) => {
                self.rustls.reload_from_config(pair.config.clone());
                self.loaded = contents;
                self.last_failure = None;
                self.metrics.certificate_reload(true);
                self.metrics.set_certificate_expiry(pair.not_after_unix);
                tracing::info!(
                    cert = %self.cert_path.display(),
                    serial = %pair.serial,
                    not_after = pair.not_after_unix,
                    "serving a new certificate to new connections"
                );
                ReloadStatus::Reloaded(pair)
            }
            Err(e) => self.failed(Some(contents), e),
        }
    }

    fn failed(&mut self, contents: Option<(Vec<u8>, Vec<u8>)>, e: TlsError) -> ReloadStatus {
        self.metrics.certificate_reload(false);
        let repeated = contents.is_some() && contents == self.last_failure;
        if !repeated {
            tracing::warn!(error = %e, "certificate files changed but cannot be used; still serving the previous certificate, will retry");
        }
        self.last_failure = contents;
        ReloadStatus::Failed(e)
    }

    /// Checks every `interval` until `stop` resolves.
    pub async fn run(mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticks.tick() => {
                    self.check().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_files() {
        let m = Arc::new(Metrics::new());
        let e = CertReloader::load(
            Path::new("/nonexistent/tls.crt"),
            Path::new("/nonexistent/tls.key"),
            m,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/tls.crt"), "{e}");
        let e = server_pair(Path::new("c.pem"), b"hello", Path::new("k.pem"), b"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.pem") && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
    }
}
