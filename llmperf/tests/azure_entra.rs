//! Azure OpenAI with a Microsoft Entra ID bearer token instead of an
//! `api-key`, from each source `azure_identity` offers, against local
//! fakes only:
//!
//! - a managed identity endpoint on loopback (`IDENTITY_ENDPOINT` /
//!   `IDENTITY_HEADER`, as App Service and Container Apps provide);
//! - a fake Entra ID authority over HTTPS on loopback (`AZURE_AUTHORITY_HOST`,
//!   trusted through `SSL_CERT_FILE`; see `entra_authority`) for a service
//!   principal's secret and for workload identity's federated token;
//! - a fake `az` first on `PATH` for the Azure CLI.
//!
//! A fake Azure OpenAI server, or the built-in endpoint, answers only
//! requests that carry the token as `Authorization: Bearer`.
//!
//! IMDS (a VM's managed identity, `--option entra=managed` with no
//! `IDENTITY_ENDPOINT`) is not tested: azure_identity's address for it,
//! `http://169.254.169.254`, is a constant no variable overrides.
//!
//! The credential is found from process-wide environment variables, so
//! these tests live in their own binary and hold one lock while they run.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmperf::run::RunOutcome;
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod entra_authority;
mod fault_matrix;
mod raw_server;
mod scoped_env;
mod tls_server;
use scoped_env::ScopedEnv;

const AZURE_VARIABLES: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_API_BASE",
    "AZURE_OPENAI_ENTRA",
    // The roots azure_core's HTTPS trusts.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Clears [`AZURE_VARIABLES`] and sets `vars` (which may name others,
/// such as `PATH`): until dropped, under the binary's one lock.
fn azure_environment(vars: &[(&str, String)]) -> ScopedEnv {
    ScopedEnv::new(AZURE_VARIABLES, vars)
}

/// A fake managed identity endpoint: answers `token` (an hour's) to
/// requests carrying `x-identity-header: {secret}`. Counts its answers.
fn managed_identity(secret: &'static str, token: &'static str) -> (String, Arc<AtomicUsize>) {
    slow_managed_identity(secret, token, Duration::ZERO)
}

/// [`managed_identity`] answering each request `delay` after reading it
/// (a slow token service).
fn slow_managed_identity(
    secret: &'static str,
    token: &'static str,
    delay: Duration,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = raw_server::read_request(&mut stream) else {
                continue;
            };
            if !request
                .to_ascii_lowercase()
                .contains(&format!("x-identity-header: {secret}"))
            {
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            std::thread::sleep(delay);
            count.fetch_add(1, Ordering::SeqCst);
            let expires_on = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 3600;
            let body = format!(
                r#"{{"access_token":"{token}","expires_on":"{expires_on}","resource":"https://cognitiveservices.azure.com","token_type":"Bearer"}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, served)
}

/// A fake Azure OpenAI server: a chat answer to requests with
/// `Authorization: Bearer {token}` and no `api-key`, 401 to the others.
fn azure_openai(token: &'static str) -> String {
    let (url, _thread) = raw_server::spawn(usize::MAX, move |mut socket| {
        let Some(request) = raw_server::read_request(&mut socket) else {
            return;
        };
        let lower = request.to_ascii_lowercase();
        let answer = if lower.contains(&format!("authorization: bearer {token}"))
            && !lower.contains("api-key:")
        {
            raw_server::chat_answer("hello from azure", "stop")
        } else {
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 38\r\n\r\n{\"error\":{\"message\":\"no bearer token\"}}".to_string()
        };
        let _ = socket.write_all(answer.as_bytes());
    });
    url
}

/// `requests` requests (closed loop, one at a time) to `endpoint`.
fn bench(endpoint: Endpoint, requests: u64) -> Benchmark {
    Benchmark::new()
        .endpoint(endpoint)
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(
            Load::closed(1)
                .requests(requests)
                .stall_timeout(Duration::from_secs(5)),
        )
}

/// Runs `bench`, writing its results to a directory of their own.
fn run_keeping_results(bench: &Benchmark) -> (RunOutcome, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let outcome = fault_matrix::run_into(results.path(), bench);
    (outcome, results)
}

fn assert_all_completed(outcome: &RunOutcome, requests: u64) {
    assert_eq!(
        outcome.summary.summary.requests.completed,
        requests,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
}

fn assert_nothing_leaks(dir: &Path, texts: &[String], secrets: &[&str]) {
    let mut all: Vec<(String, String)> = texts
        .iter()
        .map(|t| ("the records".to_string(), t.clone()))
        .collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            all.push((path.display().to_string(), text));
        }
    }
    assert!(all.len() > 1, "the run wrote no results");
    for (what, text) in &all {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} leaks `{secret}`");
        }
    }
}

#[test]
fn without_a_key_a_managed_identity_token_is_sent_as_bearer() {
    let token = "entra-token-from-the-managed-identity-0123";
    let secret = "identity-header-secret-4567";
    let (endpoint, served) = managed_identity(secret, token);
    let _env = azure_environment(&[
        ("IDENTITY_ENDPOINT", endpoint),
        ("IDENTITY_HEADER", secret.to_string()),
    ]);
    let base = azure_openai(token);
    let (outcome, results) = run_keeping_results(&bench(
        Endpoint::kind("azure-openai")
            .base_url(base)
            .model("gpt-4o"),
        3,
    ));
    assert_all_completed(&outcome, 3);
    assert!(served.load(Ordering::SeqCst) >= 1);
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[token, secret],
    );
}

/// The first token is fetched before the run's clock starts: an open loop's
/// first requests go out on schedule, not after the token service's 800 ms.
#[test]
fn a_slow_token_service_delays_the_start_of_a_run_not_its_first_requests() {
    let token = "entra-token-from-a-slow-identity-endpoint-77aa";
    let secret = "identity-header-secret-slow-0011";
    let (endpoint, served) = slow_managed_identity(secret, token, Duration::from_millis(800));
    let _env = azure_environment(&[
        ("IDENTITY_ENDPOINT", endpoint),
        ("IDENTITY_HEADER", secret.to_string()),
    ]);
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("azure-openai")
                .base_url(azure_openai(token))
                .model("gpt-4o"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(
            Load::rate(20.0)
                .arrival(llmperf::spec::Arrival::Constant)
                .requests(4),
        );
    let (outcome, _results) = run_keeping_results(&bench);
    assert_all_completed(&outcome, 4);
    assert_eq!(served.load(Ordering::SeqCst), 1);
    for record in &outcome.records {
        let lag = record.sent_us.saturating_sub(record.scheduled_us);
        assert!(
            lag < 400_000,
            "request {} went out {lag} µs late",
            record.id
        );
    }
}

#[test]
fn a_refusing_identity_endpoint_is_one_clear_unauthorized_error() {
    let (endpoint, served) = managed_identity("the-right-header", "never-given");
    let _env = azure_environment(&[
        ("IDENTITY_ENDPOINT", endpoint),
        (
            "IDENTITY_HEADER",
            "a-wrong-identity-header-89ab".to_string(),
        ),
    ]);
    let outcome = fault_matrix::run(&bench(
        Endpoint::kind("azure-openai")
            .base_url("http://127.0.0.1:9")
            .model("gpt-4o"),
        2,
    ));
    assert_eq!(fault_matrix::errors(&outcome, "unauthorized"), 2);
    assert_eq!(served.load(Ordering::SeqCst), 0);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("Microsoft Entra ID"), "{message}");
    assert!(
        !message.contains("a-wrong-identity-header-89ab"),
        "{message}"
    );
}

const TENANT: &str = "contoso-tenant-7f3a";
const CLIENT_ID: &str = "llmperf-benchmark-client-id";

/// The fields every Entra ID token request carries for Azure OpenAI.
fn assert_token_request(request: &entra_authority::TokenRequest) {
    assert_eq!(request.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(request.field("client_id"), Some(CLIENT_ID));
    assert_eq!(request.field("grant_type"), Some("client_credentials"));
    assert_eq!(
        request.field("scope"),
        Some("https://cognitiveservices.azure.com/.default")
    );
}

#[test]
fn a_service_principal_secret_is_exchanged_at_the_authority_for_a_bearer_token() {
    let token = "entra-token-for-the-service-principal-cdef";
    let secret = "service-principal-client-secret-2468";
    let authority = entra_authority::serve(token);
    let _env = azure_environment(&[
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        ("AZURE_CLIENT_SECRET", secret.to_string()),
        ("AZURE_AUTHORITY_HOST", authority.url.clone()),
        ("SSL_CERT_FILE", authority.ca_pem.display().to_string()),
    ]);
    let base = azure_openai(token);
    let (outcome, results) = run_keeping_results(&bench(
        Endpoint::kind("azure-openai")
            .base_url(base)
            .model("gpt-4o"),
        3,
    ));
    assert_all_completed(&outcome, 3);
    // One request: the credential caches the token for its hour.
    let requests = authority.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_token_request(&requests[0]);
    assert_eq!(requests[0].field("client_secret"), Some(secret));
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[token, secret],
    );
}

#[test]
fn an_authority_whose_certificate_is_not_trusted_is_the_sdks_error_not_a_timeout() {
    let secret = "service-principal-secret-untrusted-9753";
    let authority = entra_authority::serve("never-handed-out");
    // No SSL_CERT_FILE: the platform's store does not know the test CA.
    let _env = azure_environment(&[
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        ("AZURE_CLIENT_SECRET", secret.to_string()),
        ("AZURE_AUTHORITY_HOST", authority.url.clone()),
    ]);
    let outcome = fault_matrix::run(&bench(
        Endpoint::kind("azure-openai")
            .base_url("http://127.0.0.1:9")
            .model("gpt-4o"),
        2,
    ));
    assert_eq!(fault_matrix::errors(&outcome, "unauthorized"), 2);
    assert!(authority.requests().is_empty(), "no form was read");
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("Microsoft Entra ID"), "{message}");
    assert!(
        message.to_ascii_lowercase().contains("certificate"),
        "{message}"
    );
    assert!(!message.contains("no answer"), "{message}");
    assert!(!format!("{:?}", outcome.records).contains(secret));
}

#[test]
fn an_authority_host_without_https_is_refused_before_the_secret_is_sent() {
    let secret = "client-secret-never-sent-in-clear-1357";
    let (plain, seen, _thread) = raw_server::recording_server(
        1,
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n".to_string(),
    );
    let plain = plain.trim_end_matches("/v1").to_string();
    let _env = azure_environment(&[
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        ("AZURE_CLIENT_SECRET", secret.to_string()),
        ("AZURE_AUTHORITY_HOST", plain),
    ]);
    let outcome = fault_matrix::run(&bench(
        Endpoint::kind("azure-openai")
            .base_url("http://127.0.0.1:9")
            .model("gpt-4o"),
        2,
    ));
    assert_eq!(fault_matrix::errors(&outcome, "unauthorized"), 2);
    assert!(seen.lock().unwrap().is_empty(), "the authority was asked");
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("HTTPS"), "{message}");
    assert!(!format!("{:?}", outcome.records).contains(secret));
}

#[test]
fn workload_identity_posts_the_federated_token_file_as_its_client_assertion() {
    let token = "entra-token-for-the-workload-identity-9bd1";
    let assertion = "eyJhbGciOiJSUzI1NiJ9.kubernetes-service-account-token.c2ln";
    let authority = entra_authority::serve(token);
    let files = tempfile::tempdir().unwrap();
    let token_file = files.path().join("azure-identity-token");
    std::fs::write(&token_file, assertion).unwrap();
    let _env = azure_environment(&[
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", authority.url.clone()),
        ("SSL_CERT_FILE", authority.ca_pem.display().to_string()),
    ]);
    let base = azure_openai(token);
    let (outcome, results) = run_keeping_results(&bench(
        Endpoint::kind("azure-openai")
            .base_url(base)
            .model("gpt-4o"),
        3,
    ));
    assert_all_completed(&outcome, 3);
    let requests = authority.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_token_request(&requests[0]);
    assert_eq!(requests[0].field("client_assertion"), Some(assertion));
    assert_eq!(
        requests[0].field("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(requests[0].field("client_secret"), None);
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[token, assertion],
    );
}

/// A fake Azure CLI: an `az` shell script in a directory of its own, which
/// appends its arguments to `calls` there and runs `body`.
struct FakeAz {
    dir: tempfile::TempDir,
}

impl FakeAz {
    fn new(body: &str) -> FakeAz {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n{body}\n",
            calls.display()
        );
        let az = dir.path().join("az");
        std::fs::write(&az, script).unwrap();
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeAz { dir }
    }

    /// `PATH` with the fake first.
    fn path(&self) -> String {
        let mut dirs = vec![self.dir.path().to_path_buf()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).unwrap().into_string().unwrap()
    }

    /// The argument lists it was run with.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// The fake first on `PATH` (part of the environment that keys the
/// process's credential threads, so each test's `az` answers for it alone).
fn cli_environment(az: &FakeAz) -> ScopedEnv {
    azure_environment(&[("PATH", az.path())])
}

#[test]
fn with_entra_cli_the_azure_cli_token_is_sent_as_bearer() {
    let prefix = "entra-token-from-az-account-get-access-token";
    let expires_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    // What `az account get-access-token -o json` prints (Azure CLI 2.54+,
    // which added `expires_on`, the field azure_identity reads), with a
    // token numbered by the calls so far.
    let az = FakeAz::new(&format!(
        r#"n=$(wc -l < "$(dirname "$0")/calls" | tr -d ' ')
cat <<JSON
{{
  "accessToken": "{prefix}-$n",
  "expiresOn": "2030-01-02 03:04:05.000000",
  "expires_on": {expires_on},
  "subscription": "00000000-0000-0000-0000-000000000000",
  "tenant": "{TENANT}",
  "tokenType": "Bearer"
}}
JSON"#
    ));
    let _env = cli_environment(&az);
    let (base, seen, _server) =
        raw_server::recording_server(usize::MAX, raw_server::chat_answer("hello", "stop"));
    // Two and a half seconds of requests. The CLI has no cache: were its
    // token asked for more often than near its expiry (an hour away), the
    // requests would carry several numbers. (`az` itself may run more than
    // once: a credential thread an earlier test left behind runs whichever
    // `az` is first on PATH now.)
    let bench = bench(
        Endpoint::kind("azure-openai")
            .base_url(base)
            .model("gpt-4o")
            .option("entra", "cli"),
        1,
    )
    .server_metrics(llmperf::spec::ServerMetrics::off());
    let load = bench
        .load_spec()
        .clone()
        .duration(Duration::from_millis(2500));
    let (outcome, results) = run_keeping_results(&bench.load(load));
    let completed = outcome.summary.summary.requests.completed;
    assert!(completed >= 3, "{completed}");
    assert_all_completed(&outcome, completed);
    let bearers: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|request| raw_server::header_values(request, "authorization"))
        .collect();
    assert_eq!(bearers.len() as u64, completed);
    assert!(
        bearers[0].starts_with(&format!("Bearer {prefix}-")),
        "{}",
        bearers[0]
    );
    let distinct: std::collections::BTreeSet<&String> = bearers.iter().collect();
    assert_eq!(distinct.len(), 1, "{distinct:?}");
    let calls = az.calls();
    assert!(!calls.is_empty());
    for call in &calls {
        assert!(
            call.starts_with(
                "account get-access-token -o json --scope https://cognitiveservices.azure.com/.default"
            ),
            "{call}"
        );
    }
    let token = bearers[0].trim_start_matches("Bearer ").to_string();
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[&token],
    );
}

#[test]
fn a_logged_out_azure_cli_is_one_clear_unauthorized_error_naming_az_login() {
    // A stale token on stdout must not surface: only stderr is reported.
    let stale = "stale-token-printed-by-a-failing-az-0c2e";
    let az = FakeAz::new(&format!(
        "echo '{{\"accessToken\": \"{stale}\"}}'\n\
         echo \"ERROR: Please run 'az login' to setup account.\" >&2\n\
         exit 1"
    ));
    let _env = cli_environment(&az);
    let (outcome, results) = run_keeping_results(&bench(
        Endpoint::kind("azure-openai")
            .base_url("http://127.0.0.1:9")
            .model("gpt-4o")
            .option("entra", "cli"),
        2,
    ));
    assert_eq!(fault_matrix::errors(&outcome, "unauthorized"), 2);
    assert!(!az.calls().is_empty());
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("Microsoft Entra ID"), "{message}");
    assert!(message.contains("Please run 'az login'"), "{message}");
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[stale],
    );
}

#[test]
fn the_builtin_endpoint_takes_an_entra_token_as_its_scripted_key() {
    let token = "entra-token-the-builtin-endpoint-expects-4a6c";
    let secret = "identity-header-secret-for-the-builtin-8e0a";
    let (endpoint, served) = managed_identity(secret, token);
    let _env = azure_environment(&[
        ("IDENTITY_ENDPOINT", endpoint),
        ("IDENTITY_HEADER", secret.to_string()),
    ]);
    let (outcome, results) = run_keeping_results(
        &bench(Endpoint::kind("azure-openai").builtin(), 3)
            .builtin_script(fault_matrix::fast_script().require_api_key(token)),
    );
    assert_all_completed(&outcome, 3);
    assert!(served.load(Ordering::SeqCst) >= 1);
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[token, secret],
    );
}
