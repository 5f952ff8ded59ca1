//! A fake Microsoft Entra ID authority on loopback, over HTTPS because
//! `azure_identity` refuses an authority host that is not `https://`: a
//! test certificate authority made at test time (rcgen) signs the server's
//! certificate for `127.0.0.1`, and its PEM file is what the test trusts
//! through `SSL_CERT_FILE` (azure_core's reqwest takes its roots from the
//! platform verifier, which reads that variable on Linux).
//!
//! `POST /{tenant}/oauth2/v2.0/token` answers an hour's `token`; every
//! request's path and form fields are kept for the test to check.
//!
//! Included by test files with `mod entra_authority;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// One token request the authority received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The request target, e.g. `/my-tenant/oauth2/v2.0/token`.
    pub path: String,
    /// The `application/x-www-form-urlencoded` body, decoded.
    pub form: Vec<(String, String)>,
}

impl TokenRequest {
    /// The value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A running fake authority.
pub struct FakeAuthority {
    /// `https://127.0.0.1:PORT`: what `AZURE_AUTHORITY_HOST` names.
    pub url: String,
    /// The test CA's certificate: what `SSL_CERT_FILE` names.
    pub ca_pem: PathBuf,
    /// Every token request, in order.
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    _dir: tempfile::TempDir,
}

impl FakeAuthority {
    /// The token requests received so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves the token endpoint until the test process ends, one request per
/// connection (`Connection: close`), each connection on its own thread.
pub fn serve(token: &'static str) -> FakeAuthority {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "llmperf test Entra authority CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    server_params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca_pem = dir.path().join("entra-ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { return };
            let config = Arc::clone(&config);
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                socket
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, socket);
                let Some(request) = read_request(&mut tls) else {
                    return;
                };
                log.lock().unwrap().push(request);
                let body = format!(
                    r#"{{"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":"{token}"}}"#
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                if tls.write_all(answer.as_bytes()).is_ok() {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            });
        }
    });
    FakeAuthority {
        url,
        ca_pem,
        requests,
        _dir: dir,
    }
}

/// Reads one request (head and `Content-Length` body); `None` when the
/// connection or its handshake failed first.
fn read_request(stream: &mut impl Read) -> Option<TokenRequest> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1)?.to_string();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    // A form body is a query string: let the URL parser decode it.
    let mut decoder = reqwest::Url::parse("https://form.invalid/").unwrap();
    decoder.set_query(Some(&String::from_utf8_lossy(&body)));
    let form = decoder.query_pairs().into_owned().collect();
    Some(TokenRequest { path, form })
}
