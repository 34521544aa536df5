//! Serving certificates verify against their CA in a real rustls handshake, and only then.

mod common;

use std::net::IpAddr;

use common::{PONG, exchange_over_tls};
use sparkgang_certs::{
    CertificateAuthority, ServingIdentity, TestPki, Validity, client_config_trusting,
    server_config, service_dns_names, service_server_name,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{GeneralName, X509Certificate};

const SERVICE: &str = "sparkgang-webhook";
const NAMESPACE: &str = "sparkgang-system";

fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

/// A CA and a serving certificate for the webhook Service (plus 127.0.0.1), valid from now.
fn webhook_pki(now: OffsetDateTime) -> (CertificateAuthority, sparkgang_certs::ServingCertificate) {
    let ca = CertificateAuthority::generate("sparkgang-ca", Validity::ca_default(now)).unwrap();
    let identity = ServingIdentity::for_service(SERVICE, NAMESPACE)
        .unwrap()
        .with_ip_addresses(&[loopback()]);
    let serving = ca
        .issue_serving(&identity, Validity::serving_default(now))
        .unwrap();
    (ca, serving)
}

#[tokio::test]
async fn client_trusting_only_the_ca_completes_a_handshake_for_every_service_name() {
    let (ca, serving) = webhook_pki(OffsetDateTime::now_utc());
    let [short_name, cluster_local_name] = service_dns_names(SERVICE, NAMESPACE);
    assert_eq!(short_name, service_server_name(SERVICE, NAMESPACE));
    assert_eq!(short_name, "sparkgang-webhook.sparkgang-system.svc");
    for server_name in [short_name, cluster_local_name, "127.0.0.1".to_owned()] {
        let answer = exchange_over_tls(
            server_config(&serving).unwrap(),
            client_config_trusting(ca.cert_pem()).unwrap(),
            &server_name,
        )
        .await;
        assert_eq!(answer.as_deref(), Ok(PONG), "server name {server_name}");
    }
}

#[tokio::test]
async fn client_trusting_a_different_ca_rejects_the_certificate() {
    let now = OffsetDateTime::now_utc();
    let (_, serving) = webhook_pki(now);
    // A CA with another name: no issuer is found at all.
    let unrelated_ca =
        CertificateAuthority::generate("someone-else", Validity::ca_default(now)).unwrap();
    // A CA with the same name (say, a re-created one) but another key: the signature fails.
    let (namesake_ca, _) = webhook_pki(now);
    for (other_ca, expected) in [
        (&unrelated_ca, "UnknownIssuer"),
        (&namesake_ca, "BadSignature"),
    ] {
        let error = exchange_over_tls(
            server_config(&serving).unwrap(),
            client_config_trusting(other_ca.cert_pem()).unwrap(),
            &service_server_name(SERVICE, NAMESPACE),
        )
        .await
        .unwrap_err();
        assert!(error.contains(expected), "{error}");
    }
}

#[tokio::test]
async fn a_server_name_not_in_the_certificate_is_rejected() {
    let (ca, serving) = webhook_pki(OffsetDateTime::now_utc());
    for wrong_name in [
        "other-webhook.sparkgang-system.svc",
        "sparkgang-webhook.other-namespace.svc",
        "sparkgang-webhook",
        "localhost",
    ] {
        let error = exchange_over_tls(
            server_config(&serving).unwrap(),
            client_config_trusting(ca.cert_pem()).unwrap(),
            wrong_name,
        )
        .await
        .unwrap_err();
        assert!(
            error.contains("not valid for name"),
            "{wrong_name}: {error}"
        );
    }
}

#[tokio::test]
async fn an_expired_certificate_is_rejected() {
    let long_ago = OffsetDateTime::now_utc() - Duration::days(400);
    let pki = TestPki::with_validity(
        &["localhost"],
        &[],
        Validity::for_days(long_ago, 30).unwrap(),
    )
    .unwrap();
    let error = exchange_over_tls(
        pki.server_config().unwrap(),
        pki.client_config().unwrap(),
        "localhost",
    )
    .await
    .unwrap_err();
    assert!(error.contains("certificate expired"), "{error}");
}

#[tokio::test]
async fn test_pki_serves_localhost_and_its_reissued_certificate_too() {
    let pki = TestPki::localhost().unwrap();
    for server_name in ["localhost", "127.0.0.1"] {
        let answer = exchange_over_tls(
            pki.server_config().unwrap(),
            pki.client_config().unwrap(),
            server_name,
        )
        .await;
        assert_eq!(answer.as_deref(), Ok(PONG), "server name {server_name}");
    }
    let reissued = pki.reissue().unwrap();
    assert_ne!(reissued.key_pem(), pki.key_pem());
    let answer = exchange_over_tls(
        server_config(&reissued).unwrap(),
        pki.client_config().unwrap(),
        "localhost",
    )
    .await;
    assert_eq!(answer.as_deref(), Ok(PONG));
}

#[tokio::test]
async fn test_pki_for_a_service_answers_to_the_service_and_loopback_names() {
    let pki = TestPki::for_service(SERVICE, NAMESPACE).unwrap();
    for server_name in [
        "sparkgang-webhook.sparkgang-system.svc",
        "sparkgang-webhook.sparkgang-system.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ] {
        let answer = exchange_over_tls(
            pki.server_config().unwrap(),
            pki.client_config().unwrap(),
            server_name,
        )
        .await;
        assert_eq!(answer.as_deref(), Ok(PONG), "server name {server_name}");
    }
}

#[test]
fn certificates_carry_the_agreed_extensions_and_validity() {
    let now = OffsetDateTime::now_utc();
    let (ca, serving) = webhook_pki(now);
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(serving.cert_der()).unwrap();

    assert!(ca_cert.is_ca());
    let ca_usage = ca_cert.key_usage().unwrap().unwrap().value;
    assert!(ca_usage.key_cert_sign() && ca_usage.crl_sign());
    assert!(!ca_usage.digital_signature());
    assert_eq!(ca_cert.subject(), ca_cert.issuer(), "the CA is self-signed");
    assert_days(&ca_cert, now, 3650);

    assert!(!leaf.is_ca());
    let leaf_usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(leaf_usage.digital_signature() && leaf_usage.key_encipherment());
    assert!(!leaf_usage.key_cert_sign());
    let extended_usage = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(extended_usage.server_auth);
    assert!(!extended_usage.client_auth && !extended_usage.any);
    assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
    assert_days(&leaf, now, 365);
    assert_eq!(
        leaf.subject().to_string(),
        "CN=sparkgang-webhook.sparkgang-system.svc"
    );
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => (*dns).to_owned(),
            GeneralName::IPAddress(bytes) => format!("ip:{bytes:?}"),
            other => format!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "sparkgang-webhook.sparkgang-system.svc",
            "sparkgang-webhook.sparkgang-system.svc.cluster.local",
            "ip:[127, 0, 0, 1]",
        ]
    );
    // ECDSA P-256 keys by default.
    for certificate in [&ca_cert, &leaf] {
        let algorithm = &certificate.public_key().algorithm;
        assert_eq!(algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
        let curve = algorithm.parameters.as_ref().unwrap().as_oid().unwrap();
        assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");
    }
}

fn assert_days(certificate: &X509Certificate<'_>, now: OffsetDateTime, days: i64) {
    let validity = certificate.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    assert!(not_before <= now && now - not_before <= Duration::minutes(6));
    assert!((not_after - (now + Duration::days(days))).abs() <= Duration::seconds(1));
}
