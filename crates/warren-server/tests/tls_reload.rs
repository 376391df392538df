//! TLS files checked at start (missing, not PEM, a key that does not match), certificates
//! replaced while running (the file watcher and `POST /api/warren/tls/reload`: new connections
//! get the new certificate, open ones carry on), and HTTPS for the management API and
//! Prometheus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::tls::{BOTH, Files, TlsAmqp, client_config, tls_connect};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_codec::Method;
use warren_server::Server;
use warren_server::config::Config;

fn tls_config(files: &Files) -> Config {
    Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        management_port: 0,
        prometheus_port: 0,
        data_dir: common::fresh_data_dir(),
        ssl_enabled: true,
        ssl_port: 0,
        ssl_options: files.options(false, false),
        ..Config::default()
    }
}

async fn bind_error(config: Config) -> String {
    match Server::bind(config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start_with_the_file_named() {
    let files = Files::new();
    let mut config = tls_config(&files);
    config.ssl_options.certfile = files.path("missing.pem");
    let e = bind_error(config).await;
    assert!(e.contains("missing.pem") && e.contains("amqps"), "{e}");

    std::fs::write(files.path("garbage.pem"), "not a certificate\n").unwrap();
    let mut config = tls_config(&files);
    config.ssl_options.certfile = files.path("garbage.pem");
    let e = bind_error(config).await;
    assert!(
        e.contains("garbage.pem") && e.contains("no PEM certificate"),
        "{e}"
    );

    // A key of another certificate.
    let other = files.ca.server();
    std::fs::write(files.path("other.key"), &other.key_pem).unwrap();
    let mut config = tls_config(&files);
    config.ssl_options.keyfile = files.path("other.key");
    let e = bind_error(config).await;
    assert!(
        e.contains("other.key") && e.contains("does not match"),
        "{e}"
    );

    // verify_peer without a CA file is refused when the configuration is checked.
    let mut config = tls_config(&files);
    config.ssl_options = files.options(true, false);
    config.ssl_options.cacertfile = Default::default();
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("ssl_options.cacertfile"), "{e}");
}

/// The serial of the certificate the server presents to a new connection.
async fn served_cert(addr: std::net::SocketAddr, files: &Files) -> Vec<u8> {
    let tls = tls_connect(addr, client_config(&files.ca.der, None, BOTH))
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn changed_files_are_picked_up_by_new_connections_while_open_ones_carry_on() {
    let files = Files::new();
    let mut config = tls_config(&files);
    config.ssl_cert_reload_interval = 100;
    let server = Server::bind(config).await.unwrap().spawn();
    let addr = server.ssl_addr().unwrap();
    let first = served_cert(addr, &files).await;
    // An open connection, logged in, before the change.
    let mut open = TlsAmqp::new(
        tls_connect(addr, client_config(&files.ca.der, None, BOTH))
            .await
            .unwrap(),
    );
    let (_, reply) = open.login("PLAIN", b"\0guest\0guest").await;
    assert!(matches!(reply, Some(Method::ConnectionTune(_))));

    let renewed = files.ca.server();
    files.write_server(&renewed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while served_cert(addr, &files).await == first {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_cert(addr, &files).await, renewed.der.to_vec());
    // The connection opened before goes on.
    assert!(open.open().await);

    // A broken key file is refused; the server keeps the last good certificate.
    std::fs::write(files.path("server.key"), "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(served_cert(addr, &files).await, renewed.der.to_vec());
    server.shutdown().await.unwrap();
}

/// One HTTPS request; the status code and body.
async fn https(
    addr: std::net::SocketAddr,
    files: &Files,
    method: &str,
    path: &str,
) -> (u16, String) {
    let connector = tokio_rustls::TlsConnector::from(client_config(&files.ca.der, None, BOTH));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // guest:guest
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn management_and_prometheus_serve_https_and_reload_on_request() {
    let files = Files::new();
    let mut config = tls_config(&files);
    config.ssl_cert_reload_interval = 0;
    for o in [&mut config.management_ssl, &mut config.prometheus_ssl] {
        o.enabled = true;
        o.port = 0;
        o.certfile = files.path("server.pem");
        o.keyfile = files.path("server.key");
    }
    let server = Server::bind(config).await.unwrap();
    let (mgmt, prom) = (
        server.management_ssl_addr().unwrap(),
        server.prometheus_ssl_addr().unwrap(),
    );
    let server = server.spawn();
    let (status, body) = https(mgmt, &files, "GET", "/api/overview").await;
    assert_eq!(status, 200, "{body}");
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    let protocols: Vec<&str> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["protocol"].as_str())
        .collect();
    for p in ["amqp", "amqp/ssl", "https", "https/prometheus"] {
        assert!(protocols.contains(&p), "{p} in {protocols:?}");
    }
    let (status, body) = https(prom, &files, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("rabbitmq_connections"), "{body}");

    // Reload on request: the new certificate is served at once, on all three listeners.
    let renewed = files.ca.server();
    files.write_server(&renewed);
    let (status, body) = https(mgmt, &files, "POST", "/api/warren/tls/reload").await;
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        reply["reloaded"],
        serde_json::json!(["amqps", "management", "prometheus"])
    );
    for addr in [server.ssl_addr().unwrap(), mgmt, prom] {
        assert_eq!(served_cert(addr, &files).await, renewed.der.to_vec());
    }
    // A broken file: 400 with the reason, and the last good certificate stays.
    std::fs::write(files.path("server.pem"), "garbage").unwrap();
    let (status, body) = https(mgmt, &files, "POST", "/api/warren/tls/reload").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("server.pem"), "{body}");
    assert_eq!(served_cert(mgmt, &files).await, renewed.der.to_vec());
    server.shutdown().await.unwrap();
}
