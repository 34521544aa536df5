//! Certificate rotation without restart: the kubelet's `..data` symlink swap while clients keep
//! connecting (every handshake must succeed, new connections must see the new certificate), and
//! a half-written pair (new certificate, old key) that must not be used until it is whole.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use sparkgang_certs::{ServingCertificate, TestPki, Validity};
use support::*;
use time::macros::datetime;

const RELOAD: Duration = Duration::from_millis(50);

/// Writes a Secret volume the way the kubelet does: a timestamped directory with the files,
/// `..data` → that directory (swapped atomically by renaming a new symlink over it),
/// `tls.crt` → `..data/tls.crt`, and the previous directory removed.
fn kubelet_write(dir: &Path, generation: u32, serving: &ServingCertificate) {
    use std::os::unix::fs::symlink;
    let ts = format!(
        "..2026_11_25_17_00_{generation:02}.{:09}",
        generation * 7919
    );
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("tls.crt"), serving.cert_pem()).unwrap();
    std::fs::write(dir.join(&ts).join("tls.key"), serving.key_pem()).unwrap();
    let previous = std::fs::read_link(dir.join("..data")).ok();
    symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(dir.join(previous)).unwrap();
    }
}

fn second_certificate(pki: &TestPki) -> ServingCertificate {
    let validity = Validity::new(
        datetime!(2001-01-01 00:00 UTC),
        datetime!(2098-12-31 23:59:59 UTC),
    )
    .unwrap();
    pki.ca().issue_serving(pki.identity(), validity).unwrap()
}

fn serial(serving: &ServingCertificate) -> String {
    serial_of(serving.cert_der())
}

#[derive(Default)]
struct Observed {
    /// Per client loop, the serial seen by each new connection, in order.
    serials: Vec<Vec<String>>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_swap_under_load_fails_no_handshake_and_new_connections_get_the_new_cert() {
    let pki = TestPki::localhost().unwrap();
    let new_cert = second_certificate(&pki);
    let (old_serial, new_serial) = (serial(pki.serving()), serial(&new_cert));
    assert_ne!(old_serial, new_serial);

    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, pki.serving());
    let mut config = test_config(&dir.path().join("tls.crt"), &dir.path().join("tls.key"));
    config.cert_reload_interval = RELOAD;
    let server = sparkgang_admission::start(config).await.unwrap();
    let addr = server.tls_addr();
    let client_config = Arc::new(pki.client_config().unwrap());
    let body = serde_json::to_vec(&review_for(
        &fixture_pods("cluster-static.requests.jsonl").remove(0),
        "rotation",
    ))
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Mutex::new(Observed {
        serials: vec![Vec::new(); 3],
        failures: Vec::new(),
    }));
    let mut loops = Vec::new();
    for id in 0..3 {
        let (stop, observed, client_config, body) = (
            stop.clone(),
            observed.clone(),
            client_config.clone(),
            body.clone(),
        );
        loops.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // A new connection (and TLS handshake) every time.
                let result = match Client::connect(addr, client_config.clone()).await {
                    Ok(mut client) => {
                        let s = serial_of(&client.peer_certificate);
                        match client
                            .post("/mutate", "application/json", body.clone())
                            .await
                        {
                            Ok((StatusCode::OK, _)) => Ok(s),
                            Ok((status, b)) => {
                                Err(format!("{status}: {}", String::from_utf8_lossy(&b)))
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                let mut o = observed.lock().unwrap();
                match result {
                    Ok(s) => o.serials[id].push(s),
                    Err(e) => o.failures.push(e),
                }
            }
        }));
    }

    let seen = |serial: &str| {
        observed
            .lock()
            .unwrap()
            .serials
            .iter()
            .flatten()
            .filter(|s| *s == serial)
            .count()
    };
    let wait_for = |what: &'static str, serial: String, n: usize| {
        let seen = &seen;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen(&serial) < n {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(
        "connections with the first certificate",
        old_serial.clone(),
        30,
    )
    .await;
    kubelet_write(dir.path(), 2, &new_cert);
    wait_for(
        "connections with the rotated certificate",
        new_serial.clone(),
        30,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }

    let o = std::mem::take(&mut *observed.lock().unwrap());
    assert!(
        o.failures.is_empty(),
        "failed connections: {:?}",
        o.failures
    );
    for (id, serials) in o.serials.iter().enumerate() {
        // Each loop switches once, from the old certificate to the new one, and never back.
        let switch = serials
            .iter()
            .position(|s| *s == new_serial)
            .unwrap_or(serials.len());
        assert!(
            serials[..switch].iter().all(|s| *s == old_serial),
            "loop {id}"
        );
        assert!(
            serials[switch..].iter().all(|s| *s == new_serial),
            "loop {id} went back"
        );
    }
    let total: usize = o.serials.iter().map(Vec::len).sum();
    eprintln!("{total} handshakes, none failed");

    let text = metrics_text(server.metrics_addr()).await;
    let expiry = datetime!(2098-12-31 23:59:59 UTC).unix_timestamp();
    for want in [
        format!("sparkgang_admission_certificate_expiry_timestamp_seconds {expiry}"),
        "sparkgang_admission_certificate_reloads_total{result=\"success\"} 1".to_owned(),
        "sparkgang_admission_tls_accept_errors_total 0".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want} in\n{text}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_or_broken_pair_is_not_used_until_it_is_whole() {
    let pki = TestPki::localhost().unwrap();
    let new_cert = second_certificate(&pki);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to_dir(dir.path()).unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let mut config = test_config(&cert_path, &key_path);
    config.cert_reload_interval = RELOAD;
    let server = sparkgang_admission::start(config).await.unwrap();
    let client_config = Arc::new(pki.client_config().unwrap());
    let served = || async {
        let c = Client::connect(server.tls_addr(), client_config.clone())
            .await
            .unwrap();
        serial_of(&c.peer_certificate)
    };
    let old = serial(pki.serving());

    // The new certificate arrives first; its key is not there yet.
    replace_file(&cert_path, new_cert.cert_pem());
    tokio::time::sleep(RELOAD * 6).await;
    assert_eq!(served().await, old);
    // Garbage is not used either.
    replace_file(&cert_path, "-----BEGIN CERTIFICATE-----\ntruncated");
    tokio::time::sleep(RELOAD * 6).await;
    assert_eq!(served().await, old);
    let text = metrics_text(server.metrics_addr()).await;
    assert!(
        text.contains("sparkgang_admission_certificate_reloads_total{result=\"failure\"}"),
        "{text}"
    );
    assert!(!text.contains("result=\"success\""), "{text}");

    // Now the whole new pair.
    replace_file(&cert_path, new_cert.cert_pem());
    replace_file(&key_path, new_cert.key_pem());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served().await != serial(&new_cert) {
        assert!(Instant::now() < deadline, "the new pair was never served");
        tokio::time::sleep(RELOAD).await;
    }
    server.shutdown().await.unwrap();
}

fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn metrics_text(addr: std::net::SocketAddr) -> String {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}
