//! Renewing from a CA on disk keeps old CA bundles valid; loading a broken CA fails clearly.

mod common;

use std::fs;
use std::path::Path;

use common::{PONG, exchange_over_tls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
use sparkgang_certs::{
    CA_CERT_FILE, CA_KEY_FILE, CertError, CertificateAuthority, ExistingCa, ServingIdentity,
    Validity, client_config_trusting, load_ca, server_config, service_server_name, write_ca,
};
use time::OffsetDateTime;

const SERVICE: &str = "sparkgang-webhook";
const NAMESPACE: &str = "sparkgang-system";

fn webhook_identity() -> ServingIdentity {
    ServingIdentity::for_service(SERVICE, NAMESPACE).unwrap()
}

/// Writes a fresh CA into `dir` and returns it.
fn ca_on_disk(dir: &Path, now: OffsetDateTime) -> CertificateAuthority {
    let ca = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now)).unwrap();
    write_ca(dir, &ca, ExistingCa::Refuse).unwrap();
    ca
}

#[tokio::test]
async fn a_certificate_renewed_from_the_ca_on_disk_verifies_with_the_old_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let original_ca = ca_on_disk(dir.path(), now);
    let old_bundle = original_ca.cert_pem().to_owned();
    let first = original_ca
        .issue_serving(&webhook_identity(), Validity::serving_default(now))
        .unwrap();

    // Later, in another process: load the CA from its files and renew.
    let reloaded_ca = load_ca(dir.path()).unwrap();
    assert_eq!(reloaded_ca.cert_pem(), old_bundle);
    assert_eq!(reloaded_ca.not_after(), original_ca.not_after());
    let renewed = reloaded_ca
        .issue_serving(&webhook_identity(), Validity::for_days(now, 90).unwrap())
        .unwrap();
    assert_ne!(renewed.cert_pem(), first.cert_pem());
    assert_ne!(renewed.key_pem(), first.key_pem());
    let (_, first_parsed) = x509_parser::parse_x509_certificate(first.cert_der()).unwrap();
    let (_, renewed_parsed) = x509_parser::parse_x509_certificate(renewed.cert_der()).unwrap();
    assert_ne!(first_parsed.raw_serial(), renewed_parsed.raw_serial());
    assert_eq!(
        first_parsed.issuer().as_raw(),
        renewed_parsed.issuer().as_raw()
    );

    for serving in [&first, &renewed] {
        let answer = exchange_over_tls(
            server_config(serving).unwrap(),
            client_config_trusting(&old_bundle).unwrap(),
            &service_server_name(SERVICE, NAMESPACE),
        )
        .await;
        assert_eq!(answer.as_deref(), Ok(PONG));
    }
}

#[test]
fn a_serving_certificate_may_not_outlive_its_ca() {
    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::generate("short-lived", Validity::for_days(now, 30).unwrap())
        .unwrap();
    let error = ca
        .issue_serving(&webhook_identity(), Validity::for_days(now, 31).unwrap())
        .unwrap_err();
    assert!(matches!(error, CertError::OutlivesCa { .. }), "{error:?}");
    assert!(error.to_string().contains("fewer days"), "{error}");
    assert!(
        ca.issue_serving(&webhook_identity(), Validity::for_days(now, 30).unwrap())
            .is_ok()
    );
}

#[test]
fn an_existing_ca_is_not_overwritten_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let first = ca_on_disk(dir.path(), now);
    let second = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now)).unwrap();
    let error = write_ca(dir.path(), &second, ExistingCa::Refuse).unwrap_err();
    assert!(
        matches!(error, CertError::CaAlreadyExists { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(CA_CERT_FILE), "{error}");
    assert_eq!(load_ca(dir.path()).unwrap().cert_pem(), first.cert_pem());

    write_ca(dir.path(), &second, ExistingCa::Overwrite).unwrap();
    assert_eq!(load_ca(dir.path()).unwrap().cert_pem(), second.cert_pem());
}

/// Writes `ca.crt` and `ca.key` with the given contents and returns the load error.
fn load_error(cert_pem: &str, key_pem: &str) -> (CertError, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(CA_CERT_FILE), cert_pem).unwrap();
    fs::write(dir.path().join(CA_KEY_FILE), key_pem).unwrap();
    let error = load_ca(dir.path()).unwrap_err();
    (error, dir)
}

fn path_in(dir: &tempfile::TempDir, file: &str) -> String {
    dir.path().join(file).display().to_string()
}

#[test]
fn loading_names_the_file_that_is_wrong() {
    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now)).unwrap();
    let other_key = KeyPair::generate().unwrap().serialize_pem();

    let (error, dir) = load_error("this is not PEM\n", ca.key_pem());
    assert!(matches!(error, CertError::NotPem { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path_in(&dir, CA_CERT_FILE)),
        "{error}"
    );

    let (error, dir) = load_error(ca.cert_pem(), "garbage");
    assert!(matches!(error, CertError::NotPem { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path_in(&dir, CA_KEY_FILE)),
        "{error}"
    );

    let (error, dir) = load_error(ca.key_pem(), ca.key_pem());
    assert!(
        matches!(error, CertError::NoCertificate { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&path_in(&dir, CA_CERT_FILE)),
        "{error}"
    );

    let (error, dir) = load_error(ca.cert_pem(), ca.cert_pem());
    assert!(matches!(error, CertError::NoPrivateKey { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path_in(&dir, CA_KEY_FILE)),
        "{error}"
    );

    let (error, dir) = load_error(ca.cert_pem(), &other_key);
    assert!(matches!(error, CertError::KeyMismatch { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path_in(&dir, CA_KEY_FILE)), "{message}");
    assert!(message.contains(&path_in(&dir, CA_CERT_FILE)), "{message}");

    let truncated = ca.cert_pem().replace("-----END CERTIFICATE-----", "");
    let (error, _) = load_error(&truncated, ca.key_pem());
    assert!(matches!(error, CertError::NotPem { .. }), "{error:?}");
}

#[test]
fn a_serving_certificate_is_not_accepted_as_a_ca() {
    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now)).unwrap();
    let serving = ca
        .issue_serving(&webhook_identity(), Validity::serving_default(now))
        .unwrap();
    let (error, dir) = load_error(serving.cert_pem(), serving.key_pem());
    assert!(matches!(error, CertError::NotCa { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path_in(&dir, CA_CERT_FILE)),
        "{error}"
    );
}

#[test]
fn a_ca_whose_key_usage_forbids_signing_is_rejected() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let certificate = params.self_signed(&key).unwrap();
    let error =
        CertificateAuthority::from_pem(&certificate.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(error, CertError::CaCannotSign { .. }), "{error:?}");
    assert!(error.to_string().contains("CA certificate PEM"), "{error}");
}

#[test]
fn a_missing_ca_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca");
    let error = load_ca(&missing).unwrap_err();
    assert!(
        matches!(error, CertError::MissingDirectory { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no-such-ca"), "{error}");

    fs::create_dir(&missing).unwrap();
    let error = load_ca(&missing).unwrap_err();
    assert!(matches!(error, CertError::ReadFile { .. }), "{error:?}");
    assert!(error.to_string().contains(CA_CERT_FILE), "{error}");
}

#[test]
fn invalid_service_and_dns_names_are_rejected_before_signing() {
    for (service, namespace) in [("Webhook", "ns"), ("webhook", "ns.x"), ("", "ns")] {
        let error = ServingIdentity::for_service(service, namespace).unwrap_err();
        assert!(matches!(error, CertError::InvalidName { .. }), "{error:?}");
    }
    let error = webhook_identity()
        .with_dns_names(&["under_score.example"])
        .unwrap_err();
    assert!(error.to_string().contains("under_score.example"), "{error}");

    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now)).unwrap();
    let error = ca
        .issue_serving(&ServingIdentity::default(), Validity::serving_default(now))
        .unwrap_err();
    assert!(matches!(error, CertError::NoSubjectNames), "{error:?}");
}
