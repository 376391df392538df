//! TLS (issue 14): the `amqps` listener with TLS 1.2 and 1.3, client certificate checks
//! (`verify_peer`, `fail_if_no_peer_cert`), SASL EXTERNAL with each `ssl_cert_login_from`, and
//! RabbitMQ's refusals. Certificates are made by rcgen at test time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::tls::{BOTH, CLIENT_DN, Files, TlsAmqp, client_config, tls_connect};
use warren_broker::PasswordHash;
use warren_codec::Method;
use warren_server::ServerHandle;
use warren_server::config::Config;
use warren_server::tls::options::{CertLoginFrom, SanType};

/// A server with `amqps` on a free port over `files`, EXTERNAL enabled.
async fn start_tls(
    files: &Files,
    verify_peer: bool,
    fail: bool,
    tweak: impl FnOnce(&mut Config),
) -> ServerHandle {
    let options = files.options(verify_peer, fail);
    common::start_with(|c| {
        c.ssl_enabled = true;
        c.ssl_port = 0;
        c.ssl_options = options;
        c.auth_mechanisms = vec!["PLAIN".into(), "AMQPLAIN".into(), "EXTERNAL".into()];
        tweak(c);
    })
    .await
}

fn add_user(server: &ServerHandle, name: &str) {
    let b = server.broker();
    b.put_user_live(name, Some(PasswordHash::new("pw")), vec![])
        .unwrap();
    b.set_permissions_live(name, "/", [".*", ".*", ".*"])
        .unwrap();
}

/// A case of EXTERNAL refused: its name, `verify_peer`, and the server's settings.
type Refusal = (&'static str, bool, fn(&mut Config));

const REFUSED_EXTERNAL: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile.";

fn refusal_text(m: Option<Method>) -> String {
    match m {
        Some(Method::ConnectionClose(c)) => {
            assert_eq!(c.reply_code, 403);
            c.reply_text.to_string()
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
}

#[tokio::test]
async fn amqps_speaks_tls_1_2_and_1_3_and_offers_external_only_there() {
    let files = Files::new();
    let server = start_tls(&files, false, false, |_| {}).await;
    let addr = server.ssl_addr().unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let stream = tls_connect(addr, client_config(&files.ca.der, None, &[version]))
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        let mut amqp = TlsAmqp::new(stream);
        let (offered, reply) = amqp.login("PLAIN", b"\0guest\0guest").await;
        assert_eq!(offered, "AMQPLAIN PLAIN EXTERNAL");
        assert!(matches!(reply, Some(Method::ConnectionTune(_))));
        assert!(amqp.open().await, "guest opens / over {version:?}");
    }
    // The plain listener beside it does not offer EXTERNAL, and drops a client that picks it
    // (RabbitMQ: "invalid authentication mechanism 'EXTERNAL'", socket closed).
    let mut raw = common::Raw::connect(&server).await;
    raw.write(&warren_codec::PROTOCOL_HEADER).await;
    match raw.method().await {
        Method::ConnectionStart(s) => assert_eq!(s.mechanisms.as_bytes(), b"AMQPLAIN PLAIN"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn lapin_connects_over_amqps_verifying_the_server() {
    let files = Files::new();
    let server = start_tls(&files, false, false, |_| {}).await;
    let url = format!(
        "amqps://guest:guest@localhost:{}/%2f",
        server.ssl_addr().unwrap().port()
    );
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: Some(files.ca.pem.clone()),
    };
    let conn =
        lapin::Connection::connect_with_config(&url, lapin::ConnectionProperties::default(), tls)
            .await
            .expect("lapin over TLS");
    let ch = conn.create_channel().await.unwrap();
    let q = common::declare_queue(&ch, "over-tls").await.unwrap();
    ch.basic_publish(
        "",
        q.name().as_str(),
        Default::default(),
        b"secret",
        Default::default(),
    )
    .await
    .unwrap();
    let got = ch
        .basic_get("over-tls", Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.data, b"secret");
    // A client that trusts another CA refuses the server.
    let other = common::tls::Ca::new("Other CA");
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: Some(other.pem.clone()),
    };
    assert!(
        lapin::Connection::connect_with_config(&url, lapin::ConnectionProperties::default(), tls)
            .await
            .is_err()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn external_logs_in_the_user_named_by_the_certificate() {
    let files = Files::new();
    let client = files.ca.client();
    let cases: [(CertLoginFrom, SanType, u32, &str); 5] = [
        (CertLoginFrom::DistinguishedName, SanType::Dns, 0, CLIENT_DN),
        (CertLoginFrom::CommonName, SanType::Dns, 0, "tls-client"),
        (
            CertLoginFrom::SubjectAlternativeName,
            SanType::Dns,
            0,
            "client.example",
        ),
        (
            CertLoginFrom::SubjectAlternativeName,
            SanType::Dns,
            1,
            "second.example",
        ),
        (
            CertLoginFrom::SubjectAlternativeName,
            SanType::Email,
            0,
            "c@example.com",
        ),
    ];
    for (from, san_type, index, user) in cases {
        let server = start_tls(&files, true, false, |c| {
            c.ssl_cert_login_from = from;
            c.ssl_cert_login_san_type = san_type;
            c.ssl_cert_login_san_index = index;
        })
        .await;
        let addr = server.ssl_addr().unwrap();
        let config = client_config(&files.ca.der, Some(&client), BOTH);
        // Before the user exists: refused with RabbitMQ's text.
        let mut amqp = TlsAmqp::new(tls_connect(addr, config.clone()).await.unwrap());
        let (_, reply) = amqp.login("EXTERNAL", b"").await;
        assert_eq!(refusal_text(reply), REFUSED_EXTERNAL, "{from:?} {user}");
        add_user(&server, user);
        let mut amqp = TlsAmqp::new(tls_connect(addr, config).await.unwrap());
        let (_, reply) = amqp.login("EXTERNAL", b"").await;
        assert!(
            matches!(reply, Some(Method::ConnectionTune(_))),
            "{from:?}: {reply:?}"
        );
        assert!(amqp.open().await);
        let listed = server.broker();
        assert!(listed.user(user).is_some());
        server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn external_is_refused_without_a_certificate_a_name_or_peer_verification() {
    let files = Files::new();
    let client = files.ca.client();
    // verify_peer without fail_if_no_peer_cert: a client without a certificate gets in with
    // PLAIN but not with EXTERNAL.
    let server = start_tls(&files, true, false, |c| {
        c.ssl_cert_login_from = CertLoginFrom::CommonName
    })
    .await;
    add_user(&server, "tls-client");
    let addr = server.ssl_addr().unwrap();
    let anonymous = client_config(&files.ca.der, None, BOTH);
    let mut amqp = TlsAmqp::new(tls_connect(addr, anonymous.clone()).await.unwrap());
    let (offered, reply) = amqp.login("EXTERNAL", b"").await;
    assert_eq!(offered, "AMQPLAIN PLAIN EXTERNAL");
    assert_eq!(refusal_text(reply), REFUSED_EXTERNAL);
    let mut amqp = TlsAmqp::new(tls_connect(addr, anonymous).await.unwrap());
    let (_, reply) = amqp.login("PLAIN", b"\0guest\0guest").await;
    assert!(matches!(reply, Some(Method::ConnectionTune(_))));
    // A certificate signed by another CA fails the TLS handshake.
    let rogue = common::tls::Ca::new("Rogue CA").client();
    assert!(
        tls_connect(addr, client_config(&files.ca.der, Some(&rogue), BOTH))
            .await
            .is_err()
    );
    server.shutdown().await.unwrap();

    // EXTERNAL refused although the certificate verified: (case, verify_peer, settings).
    // A SAN type the certificate lacks is "no name found"; under verify_none a certificate is
    // not asked for and EXTERNAL is "unsafe".
    let refusals: [Refusal; 2] = [
        ("SAN type the certificate lacks", true, |c| {
            c.ssl_cert_login_from = CertLoginFrom::SubjectAlternativeName;
            c.ssl_cert_login_san_type = SanType::Uri;
        }),
        ("verify_none", false, |c| {
            c.ssl_cert_login_from = CertLoginFrom::CommonName
        }),
    ];
    for (case, verify_peer, settings) in refusals {
        let server = start_tls(&files, verify_peer, false, settings).await;
        add_user(&server, "tls-client");
        let addr = server.ssl_addr().unwrap();
        let mut amqp = TlsAmqp::new(
            tls_connect(addr, client_config(&files.ca.der, Some(&client), BOTH))
                .await
                .unwrap(),
        );
        assert_eq!(
            refusal_text(amqp.login("EXTERNAL", b"").await.1),
            REFUSED_EXTERNAL,
            "{case}"
        );
        server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn fail_if_no_peer_cert_refuses_a_client_without_one() {
    let files = Files::new();
    let server = start_tls(&files, true, true, |_| {}).await;
    let addr = server.ssl_addr().unwrap();
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let anonymous = client_config(&files.ca.der, None, versions);
        assert!(tls_connect(addr, anonymous).await.is_err(), "{versions:?}");
        let client = files.ca.client();
        let with_cert = client_config(&files.ca.der, Some(&client), versions);
        let mut amqp = TlsAmqp::new(tls_connect(addr, with_cert).await.unwrap());
        let (_, reply) = amqp.login("PLAIN", b"\0guest\0guest").await;
        assert!(matches!(reply, Some(Method::ConnectionTune(_))));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn external_not_configured_is_not_offered_and_picking_it_closes_the_socket() {
    let files = Files::new();
    let server = start_tls(&files, true, false, |c| {
        c.auth_mechanisms = vec!["PLAIN".into(), "AMQPLAIN".into()];
    })
    .await;
    let client = files.ca.client();
    let config = client_config(&files.ca.der, Some(&client), BOTH);
    let mut amqp = TlsAmqp::new(
        tls_connect(server.ssl_addr().unwrap(), config)
            .await
            .unwrap(),
    );
    let (offered, reply) = amqp.login("EXTERNAL", b"").await;
    assert_eq!(offered, "AMQPLAIN PLAIN");
    assert!(reply.is_none(), "{reply:?}");
    server.shutdown().await.unwrap();
}
