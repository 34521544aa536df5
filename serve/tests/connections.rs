//! Hostile and ordinary clients against a real listener: each kind of connection that holds a
//! slot without using it is closed by the server, for the reason the stats name; ordinary
//! requests are served throughout; shutdown lets a request in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use sparkgang_serve::{CloseReason, Limits, Listener, ServeStats, Tls, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

/// Limits short enough for a test; the defaults are checked in the unit tests.
fn limits() -> Limits {
    Limits {
        max_connections: 8,
        tls_handshake_timeout: Duration::from_millis(400),
        header_read_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

/// `/` answers at once; `/slow` says it has started, then answers after 800 ms; `/stream`
/// sends `first`, is silent for 1.5 s (longer than the idle timeout), then sends `second`.
fn app(started: Arc<Notify>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(move || async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slow"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::unfold(0, |n| async move {
                    match n {
                        0 => Some((Ok::<_, std::io::Error>("first"), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                            Some((Ok("second"), 2))
                        }
                        _ => None,
                    }
                });
                axum::body::Body::from_stream(chunks)
            }),
        )
}

struct Running {
    addr: SocketAddr,
    slow_started: Arc<Notify>,
    stats: Arc<ServeStats>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(tls: Tls, limits: Limits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ServeStats::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let slow_started = Arc::new(Notify::new());
    let task = tokio::spawn(serve(
        Listener {
            listener,
            tls,
            limits,
            stats: stats.clone(),
        },
        app(slow_started.clone()),
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    Running {
        addr,
        slow_started,
        stats,
        stop: Some(stop),
        task,
    }
}

/// Reads until the server closes the connection; how long that took. Fails after 10 s.
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue, // an h2 SETTINGS frame, a 408: keep reading to the end
            Err(_) => panic!("the server kept the connection open for 10 s"),
        }
    }
}

async fn get_ok(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_connection_that_never_asks_is_closed() {
    let server = start(Tls::Plain, limits()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_by_server(&mut idle).await;
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(server.stats.closed(CloseReason::NoFirstRequest), 1);
}

#[tokio::test]
async fn half_a_request_header_is_closed() {
    let server = start(Tls::Plain, limits()).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-")
        .await
        .unwrap();
    closed_by_server(&mut slow).await;
    assert_eq!(server.stats.open(), 0);
}

#[tokio::test]
async fn an_http2_preface_and_nothing_more_is_closed() {
    let server = start(Tls::Plain, limits()).await;
    let mut h2 = TcpStream::connect(server.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    closed_by_server(&mut h2).await;
    assert_eq!(server.stats.closed(CloseReason::NoFirstRequest), 1);
}

#[tokio::test]
async fn tcp_without_a_tls_handshake_is_closed() {
    let pki = sparkgang_certs::TestPki::localhost().unwrap();
    let config = Arc::new(pki.server_config().unwrap());
    let server = start(Tls::Rustls(Arc::new(move || config.clone())), limits()).await;
    let mut bare = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut bare).await;
    assert_eq!(server.stats.closed(CloseReason::TlsHandshake), 1);
}

#[tokio::test]
async fn a_keep_alive_connection_is_served_then_closed_when_idle() {
    let server = start(Tls::Plain, limits()).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        let response = get_ok(&mut client, "/").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    // A request longer than the first-request and idle timeouts is not cut.
    let response = get_ok(&mut client, "/slow").await;
    assert!(response.contains("slow"), "{response}");
    // Closed when idle (by the watchdog or by HTTP/1's wait for the next request's headers,
    // whichever notices first), never before the idle timeout.
    let idle_for = closed_by_server(&mut client).await;
    assert!(idle_for >= Duration::from_millis(500), "{idle_for:?}");
    assert_eq!(server.stats.open(), 0);
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_others_still_served() {
    let limits = Limits {
        max_connections: 3,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..limits()
    };
    let server = start(Tls::Plain, limits).await;
    let mut served = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_ok(&mut served, "/").await.starts_with("HTTP/1.1 200"));
    let _idle: Vec<TcpStream> = vec![
        TcpStream::connect(server.addr).await.unwrap(),
        TcpStream::connect(server.addr).await.unwrap(),
    ];
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_by_server(&mut over).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(server.stats.closed(CloseReason::OverCapacity), 1);
    // The connection that was in first is still served.
    assert!(get_ok(&mut served, "/").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_stops_accepting() {
    let mut server = start(Tls::Plain, limits()).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // Stop once the request is in flight.
    server.slow_started.notified().await;
    server.stop.take().unwrap().send(()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = client.read(&mut buf).await.unwrap();
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.contains("slow"), "{response}");
    server.task.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn a_long_quiet_response_is_not_an_idle_connection() {
    let server = start(Tls::Plain, limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the response ends")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.contains("first") && text.contains("second"),
        "the whole stream arrives although it was silent longer than the idle timeout:\n{text}"
    );
    assert_eq!(server.stats.closed(CloseReason::Idle), 0);
}
