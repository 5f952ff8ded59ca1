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
//! Included by test files with `mod entra_authority;` beside
//! `mod tls_server;` (the HTTPS server and the test CA).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::tls_server::{self, TestPki};

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

    /// The request's target and form, from its text (head and body).
    fn parse(request: &str) -> TokenRequest {
        let path = request.split(' ').nth(1).unwrap_or("").to_string();
        let body = request.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        // A form body is a query string: let the URL parser decode it.
        let mut decoder = reqwest::Url::parse("https://form.invalid/").unwrap();
        decoder.set_query(Some(body));
        let form = decoder.query_pairs().into_owned().collect();
        TokenRequest { path, form }
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
    _pki: TestPki,
}

impl FakeAuthority {
    /// The token requests received so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves the token endpoint until the test process ends, one request per
/// connection (`Connection: close`), answering each with an hour's `token`.
pub fn serve(token: &'static str) -> FakeAuthority {
    let pki = TestPki::new();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    let url = tls_server::serve_requests(&pki, tls_server::Setup::default(), move |request| {
        log.lock().unwrap().push(TokenRequest::parse(request));
        let body = format!(
            r#"{{"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":"{token}"}}"#
        );
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    });
    FakeAuthority {
        url,
        ca_pem: pki.ca_pem.clone(),
        requests,
        _pki: pki,
    }
}
