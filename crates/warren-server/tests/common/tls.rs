//! TLS test fixtures: certificates made at test time with rcgen (a CA, a server certificate for
//! `localhost`/127.0.0.1, client certificates), written as PEM files into a fresh directory, and
//! a small AMQP-over-TLS client built on tokio-rustls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use warren_codec::{
    ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue, Frame,
    FrameDecoder, LongStr, Method, PROTOCOL_HEADER, ShortStr, encode_method,
};

/// A certificate authority that signs test certificates.
pub struct Ca {
    pub pem: String,
    pub der: CertificateDer<'static>,
    key: KeyPair,
    params: CertificateParams,
}

/// A certificate and its key, as PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl Ca {
    /// A new CA named `cn`.
    pub fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            key,
            params,
        }
    }

    /// A certificate with `subject` (type, value pairs in certificate order) and `sans`.
    pub fn issue(&self, subject: &[(DnType, &str)], sans: Vec<SanType>) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.issue(
            &[(DnType::CommonName, "localhost")],
            vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
        )
    }

    /// The client certificate of the tests: `C=US, O=Acme, Inc., CN=tls-client` (RabbitMQ's DN:
    /// `CN=tls-client,O=Acme\, Inc.,C=US`), SANs `client.example`, `c@example.com`.
    pub fn client(&self) -> Leaf {
        self.issue(
            &[
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Acme, Inc."),
                (DnType::CommonName, "tls-client"),
            ],
            vec![
                SanType::DnsName("client.example".try_into().unwrap()),
                SanType::DnsName("second.example".try_into().unwrap()),
                SanType::Rfc822Name("c@example.com".try_into().unwrap()),
            ],
        )
    }
}

/// The DN RabbitMQ derives from [`Ca::client`]'s subject.
pub const CLIENT_DN: &str = "CN=tls-client,O=Acme\\, Inc.,C=US";

/// PEM files in a fresh directory: `ca.pem`, `server.pem`, `server.key`.
pub struct Files {
    pub dir: PathBuf,
    pub ca: Ca,
}

impl Files {
    pub fn new() -> Files {
        let dir = super::fresh_data_dir().with_extension("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("Warren Test CA");
        let files = Files { dir, ca };
        std::fs::write(files.path("ca.pem"), &files.ca.pem).unwrap();
        files.write_server(&files.ca.server());
        files
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Replaces `server.pem` and `server.key`.
    pub fn write_server(&self, leaf: &Leaf) {
        std::fs::write(self.path("server.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(self.path("server.key"), &leaf.key_pem).unwrap();
    }

    /// `ssl_options` for these files.
    pub fn options(
        &self,
        verify_peer: bool,
        fail_if_no_peer_cert: bool,
    ) -> warren_server::tls::options::SslOptions {
        use warren_server::tls::options::{SslOptions, Verify};
        SslOptions {
            cacertfile: self.path("ca.pem"),
            certfile: self.path("server.pem"),
            keyfile: self.path("server.key"),
            verify: if verify_peer {
                Verify::VerifyPeer
            } else {
                Verify::VerifyNone
            },
            fail_if_no_peer_cert,
            ..SslOptions::default()
        }
    }
}

/// A rustls client trusting `ca`, presenting `identity` when given, limited to `versions`.
pub fn client_config(
    ca: &CertificateDer<'static>,
    identity: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::try_from(leaf.key_der.clone()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Both TLS versions.
pub const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Opens a TLS session to `addr` as `localhost`; the handshake's error when it fails.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    // A TLS 1.3 server refuses a missing client certificate after the client's handshake has
    // finished: a first read surfaces it. Nothing is sent before the AMQP header, so a short
    // wait for a read error tells the two apart.
    let mut probe = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut probe)).await {
        Ok(Err(e)) => Err(e),
        Ok(Ok(0)) => Err(std::io::Error::other("closed by the server")),
        _ => Ok(tls),
    }
}

/// An AMQP client over TLS, frame by frame.
pub struct TlsAmqp {
    pub stream: TlsStream<TcpStream>,
    inbuf: BytesMut,
    decoder: FrameDecoder,
}

impl TlsAmqp {
    pub fn new(stream: TlsStream<TcpStream>) -> TlsAmqp {
        TlsAmqp {
            stream,
            inbuf: BytesMut::new(),
            decoder: FrameDecoder::new(0),
        }
    }

    pub async fn send(&mut self, method: impl Into<Method>) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, 0, &method.into());
        self.stream.write_all(&buf).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next method, or `None` when the server closed (5 s limit).
    pub async fn method(&mut self) -> Option<Method> {
        let read = async {
            loop {
                if let Some(f) = self.decoder.decode(&mut self.inbuf).unwrap() {
                    match f {
                        Frame::Method { method, .. } => return Some(method),
                        _ => continue,
                    }
                }
                match self.stream.read_buf(&mut self.inbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the server answered in time")
    }

    /// Sends the header; answers `connection.start` with `mechanism` and `response`; returns the
    /// mechanisms the server offered and what it answered (`None`: the socket closed).
    pub async fn login(&mut self, mechanism: &str, response: &[u8]) -> (String, Option<Method>) {
        self.stream.write_all(&PROTOCOL_HEADER).await.unwrap();
        self.stream.flush().await.unwrap();
        let Some(Method::ConnectionStart(start)) = self.method().await else {
            panic!("expected connection.start");
        };
        let mut caps = FieldTable::new();
        caps.insert("authentication_failure_close", FieldValue::Bool(true));
        let mut props = FieldTable::new();
        props.insert("capabilities", caps);
        self.send(ConnectionStartOk {
            client_properties: props,
            mechanism: ShortStr::from(mechanism),
            response: LongStr::from(response),
            locale: ShortStr::from("en_US"),
        })
        .await;
        let offered = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
        (offered, self.method().await)
    }

    /// After `connection.tune`: tune-ok and open `/`; true when open-ok comes.
    pub async fn open(&mut self) -> bool {
        self.send(ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        })
        .await;
        self.send(ConnectionOpen {
            virtual_host: "/".into(),
        })
        .await;
        matches!(self.method().await, Some(Method::ConnectionOpenOk(_)))
    }
}
