//! The transport's TLS client configuration, made from the spec's
//! [`Tls`] settings when the run starts, and the words for a TLS failure.
//!
//! Trust is the union of the web PKI roots (compiled in, so a minimal
//! container with no certificate bundle still reaches public endpoints),
//! the platform's store as `rustls-native-certs` reads it (or, when
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` are set, the certificates they name
//! instead of the platform's store, as OpenSSL does), and every `--ca-cert`
//! file. `insecure` replaces verification with a verifier that accepts any
//! certificate but still checks the handshake's signatures.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::spec::{ClientCert, Tls};

/// The environment variables that replace the platform's store.
const CERT_ENV: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The client configuration `tls` asks for; `Err` names the file or
/// variable that cannot be used (never the content of a key).
pub(crate) fn client_config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    // The files are checked even when `insecure` will not use them: a
    // wrong path is better reported now than on the day it matters.
    let roots = roots(&tls.ca_certs)?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let (chain, key) = client_identity(client)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "client certificate {} with key {}: {e}",
                    client.cert.display(),
                    client.key.display()
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The web PKI roots, the platform's (or `SSL_CERT_*`'s) and `ca_files`'.
fn roots(ca_files: &[std::path::PathBuf]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let from_env: Vec<String> = CERT_ENV
        .iter()
        .filter_map(|name| {
            let value = std::env::var_os(name).filter(|v| !v.is_empty())?;
            Some(format!("{name}={}", Path::new(&value).display()))
        })
        .collect();
    if !from_env.is_empty() {
        // The user named these: a broken one is an error, not a shrug.
        if let Some(error) = native.errors.first() {
            return Err(format!("{}: {error}", from_env.join(", ")));
        }
        if native.certs.is_empty() {
            return Err(format!(
                "{}: no PEM certificate found there",
                from_env.join(", ")
            ));
        }
    }
    // The platform's store may be missing or partly unreadable (a minimal
    // image): the web PKI roots still apply.
    roots.add_parsable_certificates(native.certs);
    for path in ca_files {
        for (n, cert) in ca_file(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!(
                    "CA file {} (--ca-cert): certificate {} cannot be a trust anchor: {e}",
                    path.display(),
                    n + 1
                )
            })?;
        }
    }
    Ok(roots)
}

/// Every certificate of a PEM file; at least one.
fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = format!("CA file {} (--ca-cert)", path.display());
    let bytes = std::fs::read(path).map_err(|e| format!("{what}: cannot read it: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{what}: holds no certificate (expected PEM blocks: -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// The client's certificate chain and private key. Errors name the paths,
/// never what the key file holds.
fn client_identity(
    client: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cert_what = format!(
        "client certificate {} (--client-cert)",
        client.cert.display()
    );
    let bytes =
        std::fs::read(&client.cert).map_err(|e| format!("{cert_what}: cannot read it: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_what}: not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "{cert_what}: holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        ));
    }
    let key_what = format!("client key {} (--client-key)", client.key.display());
    let key = PrivateKeyDer::from_pem_file(&client.key).map_err(|e| match e {
        pem::Error::Io(e) => format!("{key_what}: cannot read it: {e}"),
        pem::Error::NoItemsFound => format!(
            "{key_what}: holds no private key (expected PEM: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)"
        ),
        // Other errors may quote the file: say only that it is not PEM.
        _ => format!("{key_what}: not valid PEM"),
    })?;
    Ok((chain, key))
}

/// The negotiated protocol version as results write it: `TLS 1.3`.
pub(crate) fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
        other => format!("{other:?}"),
    }
}

/// The rustls error inside an I/O error from a TLS stream, if that is what
/// it is.
pub(crate) fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What went wrong with TLS to `host`, and the fix: the flag to pass.
pub(crate) fn explain(error: &rustls::Error, host: &str, client: Option<&ClientCert>) -> String {
    let insecure_hint = "or --insecure (Endpoint::insecure) for a test server";
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the certificate of {host} is signed by a certificate authority that is not trusted here: \
             pass --ca-cert FILE (Endpoint::ca_cert) with that authority's PEM certificate, {insecure_hint}"
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => format!(
            "the certificate of {host} was issued for {}, not for {host}: \
             use a name it was issued for in the URL, {insecure_hint}",
            issued_for(presented)
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
            "the certificate of {host} is not valid for that name: use a name it was issued for, {insecure_hint}"
        ),
        rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => {
            format!(
                "the certificate of {host} expired at {} (the time here is {}): \
                 give the server a renewed certificate (or set this machine's clock right), {insecure_hint}",
                utc(*not_after),
                utc(*time)
            )
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
            time,
            not_before,
        }) => format!(
            "the certificate of {host} is not valid before {} (the time here is {}): \
             is this machine's clock right?",
            utc(*not_before),
            utc(*time)
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::NotValidYet,
        ) => format!(
            "the certificate of {host} is expired or not yet valid ({error}); is this machine's clock right?"
        ),
        rustls::Error::InvalidCertificate(_) => {
            format!("the certificate of {host} was refused: {error}")
        }
        rustls::Error::AlertReceived(alert) => match (alert, client) {
            (AlertDescription::CertificateRequired, None) => format!(
                "{host} requires a client certificate: pass --client-cert FILE --client-key FILE (Endpoint::client_cert)"
            ),
            (
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::AccessDenied
                | AlertDescription::HandshakeFailure,
                Some(client),
            ) => format!(
                "{host} refused the client certificate {} ({error})",
                client.cert.display()
            ),
            (AlertDescription::HandshakeFailure, None) => format!(
                "{host} ended the handshake ({error}); if it requires a client certificate, pass --client-cert FILE --client-key FILE"
            ),
            _ => format!("{host} ended the TLS session: {error}"),
        },
        _ => format!("TLS with {host}: {error}"),
    }
}

/// Names shown of a certificate that is not valid for the host asked for.
const NAMES_SHOWN: usize = 4;

/// The names a certificate was issued for, as a sentence (`a, b or c`);
/// `presented` holds them as rustls writes them (`DnsName("a")`,
/// `IpAddress(192.0.2.1)`). A certificate may name hundreds of hosts:
/// the first few are shown, and how many more.
fn issued_for(presented: &[String]) -> String {
    let mut names: Vec<String> = presented
        .iter()
        .take(NAMES_SHOWN)
        .map(|name| {
            let bare = name
                .strip_prefix("DnsName(\"")
                .and_then(|n| n.strip_suffix("\")"))
                .or_else(|| {
                    name.strip_prefix("IpAddress(")
                        .and_then(|n| n.strip_suffix(')'))
                })
                .unwrap_or(name);
            // The server wrote these: no control character reaches a terminal.
            let shown: String = bare
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            crate::error::excerpt(&shown, 80)
        })
        .collect();
    if presented.len() > NAMES_SHOWN {
        names.push(format!("{} more", presented.len() - NAMES_SHOWN));
    }
    match names.split_last() {
        None => "no host name".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A certificate's time as `2021-01-01T00:00:00Z` (seconds since 1970
/// past the year 9999, which RFC 3339 cannot write).
fn utc(time: UnixTime) -> String {
    const YEAR_10000: u64 = 253_402_300_800;
    let seconds = time.as_secs();
    match std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds)) {
        Some(at) if seconds < YEAR_10000 => humantime::format_rfc3339_seconds(at).to_string(),
        _ => format!("{seconds} s after 1970"),
    }
}

/// `insecure`: any certificate is accepted; the handshake's signatures are
/// still checked (they prove the peer holds the key of the certificate it
/// sent, whatever that certificate is).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.pem");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_an_error_naming_it() {
        let missing = Tls {
            ca_certs: vec!["/nonexistent/ca.pem".into()],
            ..Tls::default()
        };
        let error = client_config(&missing).err().unwrap();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        assert!(error.contains("cannot read it"), "{error}");

        let (_dir, empty) = written("just some text\n");
        let error = client_config(&Tls {
            ca_certs: vec![empty.clone()],
            ..Tls::default()
        })
        .err()
        .unwrap();
        assert!(error.contains(&empty.display().to_string()), "{error}");
        assert!(error.contains("holds no certificate"), "{error}");
    }

    #[test]
    fn a_key_file_error_names_the_path_and_never_its_content() {
        let (_cert_dir, cert) =
            written("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let (_key_dir, key) = written(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==%%%\n-----END PRIVATE KEY-----\n",
        );
        let error = client_identity(&ClientCert {
            cert,
            key: key.clone(),
        })
        .err()
        .unwrap();
        assert!(error.contains(&key.display().to_string()), "{error}");
        assert!(!error.contains("c2VjcmV0"), "{error}");
    }

    #[test]
    fn a_certificate_for_other_names_lists_a_few_of_them_without_control_characters() {
        let names = |presented: &[&str]| {
            let presented: Vec<String> = presented.iter().map(|n| n.to_string()).collect();
            explain(
                &rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("llm.internal").unwrap().to_owned(),
                    presented,
                }),
                "llm.internal",
                None,
            )
        };
        let one = names(&["DnsName(\"other.example\")"]);
        assert!(
            one.starts_with(
                "the certificate of llm.internal was issued for other.example, not for llm.internal:"
            ),
            "{one}"
        );
        let many = names(&[
            "DnsName(\"a.example\")",
            "IpAddress(192.0.2.1)",
            "DnsName(\"*.b.example\")",
            "DnsName(\"c\u{1b}[31m.example\")",
            "DnsName(\"d.example\")",
            "DnsName(\"e.example\")",
        ]);
        assert!(
            many.contains(
                "issued for a.example, 192.0.2.1, *.b.example, c?[31m.example or 2 more,"
            ),
            "{many}"
        );
        assert!(names(&[]).contains("issued for no host name"));
    }

    #[test]
    fn an_expired_certificate_says_when_and_a_time_past_9999_still_formats() {
        let at = |seconds: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        let expired = explain(
            &rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                time: at(1_767_225_600),
                not_after: at(1_609_459_200),
            }),
            "llm.internal",
            None,
        );
        assert!(
            expired.starts_with(
                "the certificate of llm.internal expired at 2021-01-01T00:00:00Z (the time here is 2026-01-01T00:00:00Z)"
            ),
            "{expired}"
        );
        assert_eq!(utc(at(u64::MAX)), format!("{} s after 1970", u64::MAX));
    }

    #[test]
    fn an_unknown_issuer_names_the_ca_flag_and_a_demanded_client_certificate_names_its_flags() {
        let unknown = explain(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "llm.internal",
            None,
        );
        assert!(unknown.contains("--ca-cert FILE"), "{unknown}");
        assert!(unknown.contains("--insecure"), "{unknown}");
        let demanded = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            "llm.internal",
            None,
        );
        assert!(
            demanded.contains("--client-cert FILE --client-key FILE"),
            "{demanded}"
        );
    }
}
