//! The on-disk layout (`ca.crt`/`ca.key`, `tls.crt`/`tls.key`/`ca.crt`): loading and writing it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::authority::CertificateAuthority;
use crate::error::{CertError, Result};
use crate::serving::ServingCertificate;

/// File name of a CA certificate (in a CA directory and next to a serving certificate).
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of a CA private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of a serving certificate, as in a `kubernetes.io/tls` Secret.
pub const TLS_CERT_FILE: &str = "tls.crt";
/// File name of a serving private key, as in a `kubernetes.io/tls` Secret.
pub const TLS_KEY_FILE: &str = "tls.key";

/// Unix permissions of private key files.
pub const PRIVATE_KEY_MODE: u32 = 0o600;
/// Unix permissions of certificate files.
pub const CERTIFICATE_MODE: u32 = 0o644;

/// What [`write_ca`] does when the directory already holds a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingCa {
    /// Fail with [`CertError::CaAlreadyExists`] (the default: replacing a CA breaks every
    /// certificate it signed).
    Refuse,
    /// Replace it.
    Overwrite,
}

/// Reads a text file; the error names the file.
pub fn read_text_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CertError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Loads the CA in `dir` (`ca.crt` and `ca.key`), checking it as
/// [`CertificateAuthority::from_named_pem`] does; errors name the files.
pub fn load_ca(dir: &Path) -> Result<CertificateAuthority> {
    if !dir.is_dir() {
        return Err(CertError::MissingDirectory {
            path: dir.to_owned(),
        });
    }
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_pem = read_text_file(&cert_path)?;
    let key_pem = read_text_file(&key_path)?;
    CertificateAuthority::from_named_pem(
        &cert_path.display().to_string(),
        &cert_pem,
        &key_path.display().to_string(),
        &key_pem,
    )
}

/// Writes `ca.crt` (mode 0644) and `ca.key` (mode 0600) into `dir`, creating it if needed.
/// Returns the paths written.
pub fn write_ca(
    dir: &Path,
    ca: &CertificateAuthority,
    existing: ExistingCa,
) -> Result<Vec<PathBuf>> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if existing == ExistingCa::Refuse {
        for path in [&cert_path, &key_path] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(CertError::CaAlreadyExists { path: path.clone() });
            }
        }
    }
    create_dir(dir)?;
    write_file_replacing(&key_path, ca.key_pem(), PRIVATE_KEY_MODE)?;
    write_file_replacing(&cert_path, ca.cert_pem(), CERTIFICATE_MODE)?;
    Ok(vec![cert_path, key_path])
}

/// Writes `tls.crt`, `tls.key` (mode 0600) and `ca.crt` into `dir`, creating it if needed and
/// replacing earlier files (renewal). Returns the paths written.
pub fn write_serving(
    dir: &Path,
    serving: &ServingCertificate,
    ca_cert_pem: &str,
) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let cert_path = dir.join(TLS_CERT_FILE);
    let key_path = dir.join(TLS_KEY_FILE);
    let ca_path = dir.join(CA_CERT_FILE);
    write_file_replacing(&ca_path, ca_cert_pem, CERTIFICATE_MODE)?;
    write_file_replacing(&key_path, serving.key_pem(), PRIVATE_KEY_MODE)?;
    write_file_replacing(&cert_path, serving.cert_pem(), CERTIFICATE_MODE)?;
    Ok(vec![cert_path, key_path, ca_path])
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| CertError::WriteFile {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `contents` to a temporary file in the same directory, created with `mode`, then
/// renames it over `path`, so readers see either the old file or the whole new one.
fn write_file_replacing(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let write_error = |source| CertError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary_path = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    match fs::remove_file(&temporary_path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(write_error(error)),
    }
    let result = write_new_file(&temporary_path, contents, mode)
        .and_then(|()| fs::rename(&temporary_path, path));
    if result.is_err() {
        // Best effort: the error that matters is the one returned below.
        let _ = fs::remove_file(&temporary_path);
    }
    result.map_err(write_error)
}

fn write_new_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // The umask may have narrowed the mode at creation; set it exactly.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
