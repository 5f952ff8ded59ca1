//! An HTTPS server on loopback for the TLS tests: a test certificate
//! authority made at test time (rcgen), server certificates it signs (for
//! `127.0.0.1` and `localhost`; or for another name; or expired), a client
//! certificate for mutual TLS, and a rustls server answering every request
//! with a streamed OpenAI chat answer (one request per connection, so every
//! request shows a handshake) and, when asked, `GET /metrics` with a small
//! Prometheus page.
//!
//! Included by test files with `mod tls_server;`.

#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
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
    ca: Certificate,
    ca_key: KeyPair,
}

/// The certificate a server presents; the CA signed each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerCertificate {
    /// For `127.0.0.1` and `localhost`, valid now.
    #[default]
    Valid,
    /// For `other.example` only, valid now.
    OtherName,
    /// For `127.0.0.1` and `localhost`, valid only during 2020.
    Expired,
}

/// How a server differs from the plain one [`serve`] starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Refuse a client without a certificate the CA signed.
    pub require_client_cert: bool,
    /// Offer TLS 1.2 only (otherwise 1.3 and 1.2).
    pub tls12_only: bool,
    /// The certificate presented.
    pub certificate: ServerCertificate,
    /// Answer `GET /metrics` with [`exposition`] (otherwise every request
    /// gets a chat answer).
    pub metrics: bool,
}

impl TestPki {
    /// A new CA and a client certificate it signed; server certificates
    /// are signed as servers start.
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
            ca,
            ca_key,
            dir,
        }
    }

    /// A server certificate signed by the CA, and its key.
    fn server_identity(
        &self,
        which: ServerCertificate,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = match which {
            ServerCertificate::OtherName => {
                vec![SanType::DnsName("other.example".try_into().unwrap())]
            }
            ServerCertificate::Valid | ServerCertificate::Expired => vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ],
        };
        if which == ServerCertificate::Expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    /// The server's rustls configuration for `setup`.
    fn server_config(&self, setup: Setup) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider));
        let builder = if setup.tls12_only {
            builder.with_protocol_versions(&[&rustls::version::TLS12])
        } else {
            builder.with_safe_default_protocol_versions()
        }
        .unwrap();
        let builder = if setup.require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let (cert, key) = self.server_identity(setup.certificate);
        let mut config = builder.with_single_cert(vec![cert], key).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// A running HTTPS server.
pub struct TlsServer {
    /// `https://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// Chat requests read in full and answered (a refused handshake
    /// answers none); counted as the answer is sent, so a client holding
    /// its answer finds it counted.
    pub answered: Arc<AtomicU64>,
    /// `GET /metrics` requests answered (with [`Setup::metrics`]).
    pub scrapes: Arc<AtomicU64>,
}

/// Serves HTTPS with `pki`'s server certificate until the test process
/// ends: every connection gets its own thread and one streamed chat answer.
pub fn serve(pki: &TestPki, require_client_cert: bool) -> TlsServer {
    serve_with(
        pki,
        Setup {
            require_client_cert,
            ..Setup::default()
        },
    )
}

/// Serves HTTPS as `setup` says until the test process ends: every
/// connection gets its own thread and one answer.
pub fn serve_with(pki: &TestPki, setup: Setup) -> TlsServer {
    let answered = Arc::new(AtomicU64::new(0));
    let scrapes = Arc::new(AtomicU64::new(0));
    let (chats, metrics) = (Arc::clone(&answered), Arc::clone(&scrapes));
    let origin = serve_requests(pki, setup, move |request| {
        if setup.metrics && request.starts_with("GET /metrics ") {
            let n = chats.load(Ordering::SeqCst);
            metrics.fetch_add(1, Ordering::SeqCst);
            metrics_answer(&exposition(n))
        } else {
            chats.fetch_add(1, Ordering::SeqCst);
            raw_server::chat_answer("Hello over TLS", "stop")
        }
    });
    TlsServer {
        base_url: format!("{origin}/v1"),
        answered,
        scrapes,
    }
}

/// Serves HTTPS as `setup` says until the test process ends, answering
/// each connection's one request (head and body, as text) with what
/// `answer` makes of it; each connection on a thread of its own. Returns
/// `https://127.0.0.1:PORT`.
pub fn serve_requests(
    pki: &TestPki,
    setup: Setup,
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> String {
    let config = Arc::new(pki.server_config(setup));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("https://{}", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { return };
            let config = Arc::clone(&config);
            let answer = Arc::clone(&answer);
            std::thread::spawn(move || {
                socket
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, socket);
                // A refused handshake ends here (rustls has sent its alert).
                let Some(request) = raw_server::read_request(&mut tls) else {
                    return;
                };
                let _ = tls.write_all(answer(&request).as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    origin
}

/// A vLLM-style Prometheus page: `finished` successful requests, none
/// running.
pub fn exposition(finished: u64) -> String {
    format!(
        "# TYPE vllm:request_success_total counter\n\
         vllm:request_success_total{{finished_reason=\"stop\",model_name=\"m\"}} {finished}.0\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"m\"}} 0.0\n"
    )
}

fn metrics_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}
