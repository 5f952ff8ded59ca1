//! How HTTPS connections are trusted and authenticated: extra certificate
//! authorities, a client certificate for mutual TLS, and the `insecure`
//! switch for self-signed test servers. Plain data: paths, never key
//! material (the transport reads the files when the run starts).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Endpoint;

/// The TLS settings of an [`Endpoint`], as written to `summary.json`
/// (`config.tls`, left out when every setting is the default).
///
/// By default a server's certificate must chain to a root of the web PKI
/// (Mozilla's list, compiled in) or of the platform's certificate store
/// (the system bundle on Linux, the keychain on macOS, the Windows store);
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`, when set, take the place of the
/// platform's store, as they do for OpenSSL-based tools. See
/// `docs/connections.md`.
///
/// ```
/// use llmperf::spec::Tls;
/// use llmperf::Endpoint;
/// let endpoint = Endpoint::openai_chat()
///     .base_url("https://llm.internal.example/v1")
///     .ca_cert("/etc/company/root-ca.pem")
///     .client_cert("client.pem", "client-key.pem");
/// assert_eq!(endpoint.tls().ca_certs.len(), 1);
/// assert!(!endpoint.tls().insecure);
/// assert!(Tls::default().is_default());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tls {
    /// PEM files of certificate authorities trusted besides the default
    /// roots (each may hold several certificates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certs: Vec<PathBuf>,
    /// The client certificate presented to servers that ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<ClientCert>,
    /// No verification of the server's certificate at all (a self-signed
    /// test server). Marked in the terminal summary and in `summary.json`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

impl Tls {
    /// Every setting is the default (no extra CA, no client certificate,
    /// verification on).
    pub fn is_default(&self) -> bool {
        self == &Tls::default()
    }
}

/// A client certificate for mutual TLS: two PEM files. Only the paths are
/// kept (and recorded); the key is read when the run starts and never
/// appears in results, logs or errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCert {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Endpoint {
    /// Trusts the certificate authorities in this PEM file besides the
    /// default roots; repeatable, and one file may hold a bundle. A file
    /// that cannot be read or holds no certificate stops the run before
    /// any request is sent.
    ///
    /// ```
    /// let endpoint = llmperf::Endpoint::openai_chat()
    ///     .ca_cert("corporate-root.pem")
    ///     .ca_cert("team-intermediate.pem");
    /// assert_eq!(endpoint.tls().ca_certs.len(), 2);
    /// ```
    pub fn ca_cert(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.tls.ca_certs.push(pem_file.into());
        self
    }

    /// Presents this client certificate (mutual TLS): the certificate chain
    /// and its private key, both PEM files. Results record the paths only.
    ///
    /// ```
    /// let endpoint = llmperf::Endpoint::openai_chat().client_cert("me.pem", "me-key.pem");
    /// let cert = endpoint.tls().client_cert.as_ref().unwrap();
    /// assert_eq!(cert.key, std::path::Path::new("me-key.pem"));
    /// ```
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client_cert = Some(ClientCert {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Skips all verification of the server's certificate, for self-signed
    /// test servers only: anyone on the path can read and change the
    /// traffic. The run is marked as insecure in the terminal and in
    /// `summary.json` (`config.tls.insecure`).
    ///
    /// ```
    /// let endpoint = llmperf::Endpoint::openai_chat().insecure(true);
    /// assert!(endpoint.tls().insecure);
    /// ```
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.tls.insecure = insecure;
        self
    }

    /// The TLS settings.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }
}
