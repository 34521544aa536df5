//! The `sparkgang-certs` binary: files, modes, renewal, Secret YAML, caBundle and bad input.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use common::{PONG, exchange_over_tls};
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sparkgang_certs::client_config_trusting;
use time::{Duration, OffsetDateTime};

const SERVICE: &str = "sparkgang-webhook";
const NAMESPACE: &str = "sparkgang-system";
const SERVER_NAME: &str = "sparkgang-webhook.sparkgang-system.svc";

fn sparkgang_certs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparkgang-certs"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the binary and expects success; returns its stdout.
fn succeed(args: &[&str]) -> String {
    let output = sparkgang_certs(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the binary and expects failure with exit code 1; returns its stderr.
fn fail(args: &[&str]) -> String {
    let output = sparkgang_certs(args);
    assert_eq!(output.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8(output.stderr).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn create_ca(dir: &Path) {
    succeed(&["ca", "--out-dir", path_text(dir)]);
}

fn issue_serving(ca_dir: &Path, out_dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "serving",
        "--ca-dir",
        path_text(ca_dir),
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--out-dir",
        path_text(out_dir),
    ];
    args.extend_from_slice(extra);
    succeed(&args);
}

/// Serves `cert_pem`/`key_pem` and connects with a client trusting only `ca_pem`.
async fn handshake_with(cert_pem: &[u8], key_pem: &[u8], ca_pem: &str, server_name: &str) {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let answer =
        exchange_over_tls(server, client_config_trusting(ca_pem).unwrap(), server_name).await;
    assert_eq!(answer.as_deref(), Ok(PONG), "server name {server_name}");
}

#[tokio::test]
async fn ca_and_serving_write_pem_files_with_private_keys_mode_0600() {
    let work = tempfile::tempdir().unwrap();
    let ca_dir = work.path().join("ca");
    let tls_dir = work.path().join("tls");

    let stdout = succeed(&["ca", "--out-dir", path_text(&ca_dir)]);
    assert!(
        stdout.contains("ca.crt") && stdout.contains("ca.key"),
        "{stdout}"
    );
    assert_eq!(mode_of(&ca_dir.join("ca.key")), 0o600);
    assert_eq!(mode_of(&ca_dir.join("ca.crt")), 0o644);
    let ca_pem = fs::read_to_string(ca_dir.join("ca.crt")).unwrap();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    let ca_key = fs::read_to_string(ca_dir.join("ca.key")).unwrap();
    assert!(ca_key.starts_with("-----BEGIN PRIVATE KEY-----\n"));

    issue_serving(
        &ca_dir,
        &tls_dir,
        &["--ip", "127.0.0.1", "--dns", "localhost"],
    );
    assert_eq!(mode_of(&tls_dir.join("tls.key")), 0o600);
    assert_eq!(mode_of(&tls_dir.join("tls.crt")), 0o644);
    assert_eq!(fs::read_to_string(tls_dir.join("ca.crt")).unwrap(), ca_pem);
    let mut leftovers: Vec<_> = fs::read_dir(&tls_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["ca.crt", "tls.crt", "tls.key"],
        "no temporary files left"
    );

    let first_cert = fs::read(tls_dir.join("tls.crt")).unwrap();
    let first_key = fs::read(tls_dir.join("tls.key")).unwrap();
    for server_name in [SERVER_NAME, "localhost", "127.0.0.1"] {
        handshake_with(&first_cert, &first_key, &ca_pem, server_name).await;
    }

    // Renewal: run it again with the same CA; the old ca.crt still verifies the new pair.
    issue_serving(&ca_dir, &tls_dir, &["--days", "30"]);
    let renewed_cert = fs::read(tls_dir.join("tls.crt")).unwrap();
    let renewed_key = fs::read(tls_dir.join("tls.key")).unwrap();
    assert_ne!(renewed_cert, first_cert);
    assert_ne!(renewed_key, first_key);
    assert_eq!(mode_of(&tls_dir.join("tls.key")), 0o600);
    handshake_with(&renewed_cert, &renewed_key, &ca_pem, SERVER_NAME).await;

    let der = CertificateDer::from_pem_slice(&renewed_cert).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let days_left = parsed.validity().not_after.to_datetime() - OffsetDateTime::now_utc();
    assert!(
        days_left <= Duration::days(30) && days_left > Duration::days(29),
        "--days 30 gave {days_left}"
    );
}

#[test]
fn an_existing_ca_is_kept_unless_forced() {
    let work = tempfile::tempdir().unwrap();
    create_ca(work.path());
    let original = fs::read_to_string(work.path().join("ca.crt")).unwrap();

    let stderr = fail(&["ca", "--out-dir", path_text(work.path())]);
    assert!(
        stderr.contains(path_text(&work.path().join("ca.crt"))),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        fs::read_to_string(work.path().join("ca.crt")).unwrap(),
        original
    );

    succeed(&["ca", "--out-dir", path_text(work.path()), "--force"]);
    assert_ne!(
        fs::read_to_string(work.path().join("ca.crt")).unwrap(),
        original
    );
    assert_eq!(mode_of(&work.path().join("ca.key")), 0o600);
}

#[tokio::test]
async fn secret_prints_a_tls_secret_whose_data_is_a_working_key_pair() {
    let work = tempfile::tempdir().unwrap();
    create_ca(work.path());
    let ca_pem = fs::read_to_string(work.path().join("ca.crt")).unwrap();
    let yaml = succeed(&[
        "secret",
        "--ca-dir",
        path_text(work.path()),
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--secret-name",
        "sparkgang-webhook-tls",
    ]);

    let secret: Secret = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("sparkgang-webhook-tls")
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some(NAMESPACE));
    let data = secret.data.unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(data["ca.crt"].0, ca_pem.as_bytes());
    assert!(CertificateDer::from_pem_slice(&data["tls.crt"].0).is_ok());
    assert!(PrivateKeyDer::from_pem_slice(&data["tls.key"].0).is_ok());
    handshake_with(&data["tls.crt"].0, &data["tls.key"].0, &ca_pem, SERVER_NAME).await;
    handshake_with(
        &data["tls.crt"].0,
        &data["tls.key"].0,
        &ca_pem,
        "sparkgang-webhook.sparkgang-system.svc.cluster.local",
    )
    .await;
}

#[test]
fn ca_bundle_is_the_base64_of_ca_crt() {
    let work = tempfile::tempdir().unwrap();
    create_ca(work.path());
    let ca_pem = fs::read(work.path().join("ca.crt")).unwrap();
    let stdout = succeed(&["secret", "--ca-dir", path_text(work.path()), "--ca-bundle"]);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(stdout.trim_end())
        .unwrap();
    assert_eq!(decoded, ca_pem);
    assert_eq!(stdout.lines().count(), 1);
}

#[test]
fn a_missing_ca_directory_fails_and_names_it() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("no-such-ca");
    let out = work.path().join("out");
    let stderr = fail(&[
        "serving",
        "--ca-dir",
        path_text(&missing),
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--out-dir",
        path_text(&out),
    ]);
    assert!(stderr.contains(path_text(&missing)), "{stderr}");
    assert!(!out.exists(), "nothing is written on failure");

    let stderr = fail(&["secret", "--ca-dir", path_text(&missing), "--ca-bundle"]);
    assert!(stderr.contains(path_text(&missing)), "{stderr}");
}

#[test]
fn garbage_pem_fails_and_names_the_file() {
    for broken_file in ["ca.crt", "ca.key"] {
        let work = tempfile::tempdir().unwrap();
        create_ca(work.path());
        let broken_path = work.path().join(broken_file);
        fs::write(&broken_path, "not a certificate at all\n").unwrap();
        let stderr = fail(&[
            "secret",
            "--ca-dir",
            path_text(work.path()),
            "--service",
            SERVICE,
            "--namespace",
            NAMESPACE,
            "--secret-name",
            "tls",
        ]);
        assert!(stderr.contains(path_text(&broken_path)), "{stderr}");
        assert!(stderr.contains("not valid PEM"), "{stderr}");
    }
}

#[test]
fn a_key_that_does_not_match_the_ca_fails() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    create_ca(first.path());
    create_ca(second.path());
    fs::copy(second.path().join("ca.key"), first.path().join("ca.key")).unwrap();
    let stderr = fail(&["secret", "--ca-dir", path_text(first.path()), "--ca-bundle"]);
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(
        stderr.contains(path_text(&first.path().join("ca.key"))),
        "{stderr}"
    );
}

#[test]
fn invalid_arguments_are_rejected() {
    let work = tempfile::tempdir().unwrap();
    create_ca(work.path());
    let ca_dir = path_text(work.path());

    // Usage errors come from clap (exit code 2).
    for args in [
        vec!["secret", "--ca-dir", ca_dir, "--service", SERVICE],
        vec!["ca", "--out-dir", ca_dir, "--days", "0"],
        vec![
            "secret",
            "--ca-dir",
            ca_dir,
            "--ca-bundle",
            "--service",
            SERVICE,
        ],
        vec![
            "serving",
            "--ca-dir",
            ca_dir,
            "--service",
            SERVICE,
            "--namespace",
            NAMESPACE,
            "--out-dir",
            ca_dir,
            "--ip",
            "not-an-ip",
        ],
    ] {
        let output = sparkgang_certs(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }

    let stderr = fail(&[
        "serving",
        "--ca-dir",
        ca_dir,
        "--service",
        "Bad_Name",
        "--namespace",
        NAMESPACE,
        "--out-dir",
        ca_dir,
    ]);
    assert!(stderr.contains("Bad_Name"), "{stderr}");

    // A serving certificate may not outlive its CA.
    let short = tempfile::tempdir().unwrap();
    succeed(&["ca", "--out-dir", path_text(short.path()), "--days", "10"]);
    let stderr = fail(&[
        "serving",
        "--ca-dir",
        path_text(short.path()),
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--out-dir",
        path_text(short.path()),
    ]);
    assert!(stderr.contains("CA expires"), "{stderr}");
}
