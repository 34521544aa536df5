//! Denials for every annotation error class, bad HTTP requests, health, metrics and start-up
//! errors — all against the real HTTPS server.

mod support;

use hyper::StatusCode;
use serde_json::{Value, json};
use sparkgang_admission::review_client::decode_response;
use support::*;

fn driver_with_annotations(annotations: Value) -> Value {
    let mut p = fixture_pods("cluster-static.requests.jsonl").remove(0);
    p.pod["metadata"]["annotations"] = annotations;
    review_for(&p, "deny-uid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_annotation_error_class_is_denied_with_key_value_and_accepted_forms() {
    let server = TestServer::start().await;
    // (reason label, annotations, words the message must contain)
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "bad_quantity",
            json!({"spark-driver-cpu": "lots"}),
            vec!["spark-driver-cpu", "\"lots\"", "Kubernetes quantity"],
        ),
        (
            "bad_quantity",
            json!({"spark-executor-mem": "4 gigs"}),
            vec!["spark-executor-mem", "\"4 gigs\"", "Spark size"],
        ),
        (
            "bad_boolean",
            json!({"spark-dynamic-allocation-enabled": "yes"}),
            vec!["spark-dynamic-allocation-enabled", "\"yes\"", "Go boolean"],
        ),
        (
            "bad_count",
            json!({"spark-executor-count": "many"}),
            vec!["spark-executor-count", "\"many\"", "whole number"],
        ),
        (
            "negative",
            json!({"spark-executor-cpu": "-2"}),
            vec!["spark-executor-cpu", "\"-2\"", "negative"],
        ),
        (
            "too_large",
            json!({"spark-executor-count": "3000000000"}),
            vec!["spark-executor-count", "\"3000000000\"", "too large"],
        ),
        (
            "min_greater_than_max",
            json!({"spark-dynamic-allocation-enabled": "true",
            "spark-dynamic-allocation-min-executor-count": "5",
            "spark-dynamic-allocation-max-executor-count": "2"}),
            vec![
                "spark-dynamic-allocation-min-executor-count",
                "\"5\"",
                "\"2\"",
                "min ≤ max",
            ],
        ),
        (
            "bad_count",
            json!({"spark-executor-nvidia.com/gpu": "one"}),
            vec!["spark-executor-nvidia.com/gpu", "\"one\""],
        ),
    ];
    for (reason, annotations, words) in &cases {
        let answer = server
            .review(&driver_with_annotations(annotations.clone()))
            .await;
        assert_eq!(answer.uid, "deny-uid");
        assert!(!answer.allowed, "{reason}: allowed");
        assert_eq!(answer.patch, None);
        let (code, message) = answer.status.clone().unwrap();
        assert_eq!(code, 400, "{reason}");
        assert!(message.starts_with("sparkgang: "), "{message}");
        for w in words {
            assert!(message.contains(w), "{reason}: {message:?} lacks {w:?}");
        }
    }
    // Several errors are reported together.
    let answer = server
        .review(&driver_with_annotations(
            json!({"spark-driver-cpu": "x", "spark-driver-mem": "y"}),
        ))
        .await;
    let (_, message) = answer.status.unwrap();
    assert!(
        message.contains("spark-driver-cpu") && message.contains("spark-driver-mem"),
        "{message}"
    );

    // Executors' annotations are not read (palantir reads only the driver's).
    let mut e = fixture_pods("cluster-static.executors.jsonl").remove(0);
    e.pod["metadata"]["annotations"] = json!({"spark-driver-cpu": "lots"});
    assert!(server.review(&review_for(&e, "x")).await.allowed);

    let metrics = server.metrics_text().await;
    for reason in [
        "bad_quantity",
        "bad_boolean",
        "bad_count",
        "negative",
        "too_large",
        "min_greater_than_max",
    ] {
        assert!(
            metrics.contains(&format!(
                "sparkgang_admission_denials_total{{reason=\"{reason}\"}}"
            )),
            "{reason} missing from\n{metrics}"
        );
    }
    assert!(
        metrics
            .contains("sparkgang_admission_requests_total{role=\"driver\",outcome=\"denied\"} 9"),
        "{metrics}"
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_object_that_is_not_a_pod_is_denied_not_an_error() {
    let server = TestServer::start().await;
    let mut review = driver_with_annotations(Value::Null);
    review["request"]["object"]["spec"]["volumes"] = json!("not a list");
    let answer = server.review(&review).await;
    assert!(!answer.allowed);
    let (code, message) = answer.status.unwrap();
    assert_eq!(code, 400);
    assert!(
        message.starts_with("sparkgang: request.object is not a Pod"),
        "{message}"
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_4xx_with_a_message() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let good = serde_json::to_vec(&driver_with_annotations(Value::Null)).unwrap();
    let cases: Vec<(Option<&str>, Vec<u8>, StatusCode, &str)> = vec![
        (Some("application/json"), b"{not json".to_vec(), StatusCode::BAD_REQUEST, "not an AdmissionReview"),
        (Some("application/json"), b"".to_vec(), StatusCode::BAD_REQUEST, "not an AdmissionReview"),
        (Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}"#.to_vec(),
            StatusCode::BAD_REQUEST, "v1beta1"),
        (Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"ConversionReview","request":{"uid":"u"}}"#.to_vec(),
            StatusCode::BAD_REQUEST, "ConversionReview"),
        (Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            StatusCode::BAD_REQUEST, "no request"),
        (Some("application/json"), br#"[1,2,3]"#.to_vec(), StatusCode::BAD_REQUEST, "not an AdmissionReview"),
        (Some("text/plain"), good.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        (None, good.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        (Some("application/json"), vec![b' '; 3 * 1024 * 1024 + 1], StatusCode::PAYLOAD_TOO_LARGE, "larger than"),
    ];
    for (content_type, body, want, words) in cases {
        let (status, text) = client
            .request("POST", "/mutate", content_type, body)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&text);
        assert_eq!(status, want, "{content_type:?}: {text}");
        assert!(
            text.starts_with("sparkgang: ") && text.contains(words),
            "{text}"
        );
    }
    // The 413 closed that connection.
    let mut client = server.client().await;
    // Charset parameters and case are fine; exactly 3 MiB is accepted.
    let (status, _) = client
        .post("/mutate", "Application/JSON; charset=utf-8", good.clone())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let mut padded = good.clone();
    padded.resize(3 * 1024 * 1024, b' ');
    let (status, body) = client
        .post("/mutate", "application/json", padded)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(decode_response(&body).unwrap().allowed);

    let (status, _) = client
        .request("GET", "/mutate", None, vec![])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    for path in ["/healthz", "/readyz"] {
        let (status, body) = client.request("GET", path, None, vec![]).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok\n"[..]));
    }
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains(
            "sparkgang_admission_requests_total{role=\"other\",outcome=\"bad_request\"} 9"
        ),
        "{metrics}"
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_report_requests_latency_patches_and_certificate_expiry() {
    let server = TestServer::start().await;
    let p = fixture_pods("cluster-static.requests.jsonl").remove(0);
    server.review(&review_for(&p, "u")).await;
    let text = server.metrics_text().await;
    for want in [
        "sparkgang_admission_requests_total{role=\"driver\",outcome=\"patched\"} 1",
        "sparkgang_admission_request_duration_seconds_count{role=\"driver\"} 1",
        "sparkgang_admission_patches_total{kind=\"scheduler_name\"} 1",
        "sparkgang_admission_patches_total{kind=\"scheduling_gate\"} 1",
        "sparkgang_admission_patches_total{kind=\"conf_map_annotation\"} 1",
        "sparkgang_admission_patches_total{kind=\"app_id_label\"} 1",
        "sparkgang_admission_patches_total{kind=\"instance_group\"} 1",
        // TestPki certificates end 2099-12-31T23:59:59Z.
        "sparkgang_admission_certificate_expiry_timestamp_seconds 4102444799",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_server_speaks_tls_1_2_and_1_3_only_and_h2() {
    let server = TestServer::start().await;
    let addr = server.server.tls_addr();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            for c in sparkgang_certs::parse_certificates("ca", server.pki.ca_cert_pem()).unwrap() {
                r.add(c).unwrap();
            }
            r
        };
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.protocol_version(), Some(version.version));
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
        // A review over HTTP/2.
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let body = serde_json::to_vec(&driver_with_annotations(Value::Null)).unwrap();
        let req = hyper::Request::post(format!("https://localhost:{}/mutate", addr.port()))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(decode_response(&body).unwrap().patch.is_some());
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_up_errors_name_the_files() {
    let pki = sparkgang_certs::TestPki::localhost().unwrap();
    let other = sparkgang_certs::TestPki::localhost().unwrap();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to_dir(dir.path()).unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");

    let missing = dir.path().join("missing.key");
    let e = sparkgang_admission::start(test_config(&cert, &missing))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");

    let wrong_key = dir.path().join("other.key");
    std::fs::write(&wrong_key, other.key_pem()).unwrap();
    let e = sparkgang_admission::start(test_config(&cert, &wrong_key))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&cert.display().to_string()) && e.contains(&wrong_key.display().to_string()),
        "{e}"
    );
    assert!(e.contains("does not belong"), "{e}");

    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "hello").unwrap();
    let e = sparkgang_admission::start(test_config(&garbage, &key))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&garbage.display().to_string()), "{e}");

    let e = sparkgang_admission::start(test_config(&key, &key))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls.key") && e.contains("CERTIFICATE"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_readyz_fails_while_mutate_still_answers_for_the_delay() {
    let TestServer {
        server,
        client_config,
        dir: _dir,
        ..
    } = TestServer::start_with(|c| c.shutdown_delay = std::time::Duration::from_millis(600)).await;
    let addr = server.tls_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_until(async {
        let _ = stopped.await;
    }));
    let mut client = Client::connect(addr, client_config.clone()).await.unwrap();
    assert_eq!(
        client
            .request("GET", "/readyz", None, vec![])
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
    stop.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(
        client
            .request("GET", "/readyz", None, vec![])
            .await
            .unwrap()
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // New connections are still served during the delay.
    let mut fresh = Client::connect(addr, client_config.clone()).await.unwrap();
    let body = serde_json::to_vec(&driver_with_annotations(Value::Null)).unwrap();
    let (status, _) = fresh
        .post("/mutate", "application/json", body)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    drop((client, fresh));
    serving.await.unwrap().unwrap();
    assert!(Client::connect(addr, client_config).await.is_err());
}
