//! An HTTPS server on loopback for the TLS tests: a test certificate
//! authority made at test time (rcgen), a server certificate it signed for
//! `127.0.0.1` and `localhost`, a client certificate for mutual TLS, and a
//! rustls server answering every request with a streamed OpenAI chat answer
//! (one request per connection, so every request shows a handshake).
//!
//! Included by test files with `mod tls_server;`.

#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

// Its own copy of raw_server, so a test file can include this module alone;
// one that includes both compiles raw_server twice, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../raw_server/mod.rs"]
mod raw_server;

/// A test CA and the certificates it signed, written as PEM files.
pub struct TestPki {
    /// Holds the files.
    pub dir: tempfile::TempDir,
    /// The CA's certificate (what `--ca-cert` names).
    pub ca_pem: PathBuf,
    /// A client certificate signed by the CA, and its key (PKCS#8).
    pub client_cert_pem: PathBuf,
    pub client_key_pem: PathBuf,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl TestPki {
    /// A new CA, a server certificate for 127.0.0.1/localhost and a client
    /// certificate.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "llmperf test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        server_params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "llmperf test client");
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestPki {
            ca_pem: write("ca.pem", ca.pem()),
            client_cert_pem: write("client.pem", client.pem()),
            client_key_pem: write("client-key.pem", client_key.serialize_pem()),
            ca_der: ca.der().clone(),
            server_der: server.der().clone(),
            server_key_der: server_key.serialize_der(),
            dir,
        }
    }

    /// The server's rustls configuration; with `require_client_cert`, a
    /// client must present a certificate signed by the CA.
    fn server_config(&self, require_client_cert: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let mut config = builder
            .with_single_cert(vec![self.server_der.clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// A running HTTPS server.
pub struct TlsServer {
    /// `https://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// Requests answered (a refused handshake answers none).
    pub answered: Arc<AtomicU64>,
}

/// Serves HTTPS with `pki`'s server certificate until the test process
/// ends: every connection gets its own thread and one streamed chat answer.
pub fn serve(pki: &TestPki, require_client_cert: bool) -> TlsServer {
    let config = Arc::new(pki.server_config(require_client_cert));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("https://{}/v1", listener.local_addr().unwrap());
    let answered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&answered);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { return };
            let config = Arc::clone(&config);
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                socket
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, socket);
                // A refused handshake ends here (rustls has sent its alert).
                if raw_server::read_request(&mut tls).is_none() {
                    return;
                }
                let answer = raw_server::chat_answer("Hello over TLS", "stop");
                if tls.write_all(answer.as_bytes()).is_ok() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsServer { base_url, answered }
}
