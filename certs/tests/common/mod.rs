//! Helpers shared by the integration tests: a real TLS handshake over loopback.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What the client sends and the server answers after the handshake.
pub const PING: &[u8] = b"ping";
pub const PONG: &[u8] = b"pong";

/// Starts a TLS server on 127.0.0.1 with `server_config`, connects to it with `client_config`
/// using `server_name` for SNI and verification, sends [`PING`] and returns what the server
/// answered. A failed handshake (on either side) returns the client's error text.
pub async fn exchange_over_tls(
    server_config: ServerConfig,
    client_config: ClientConfig,
    server_name: &str,
) -> Result<Vec<u8>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut request = [0u8; 4];
        tls.read_exact(&mut request)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(request, PING);
        tls.write_all(PONG).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    });

    let server_name = ServerName::try_from(server_name.to_owned()).unwrap();
    let connector = TlsConnector::from(Arc::new(client_config));
    let client = async move {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(PING).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Vec<u8>, String>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(20), client)
        .await
        .expect("the TLS exchange timed out");
    let server_result = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the TLS server timed out")
        .unwrap();
    match (&answer, &server_result) {
        (Ok(_), Ok(())) => answer,
        (Err(_), _) => answer,
        (Ok(_), Err(server_error)) => Err(format!("server failed: {server_error}")),
    }
}
