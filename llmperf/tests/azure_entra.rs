//! Azure OpenAI with a Microsoft Entra ID bearer token instead of an
//! `api-key`, against local fakes only: a managed identity endpoint on
//! loopback (`IDENTITY_ENDPOINT` / `IDENTITY_HEADER`, as App Service and
//! Container Apps provide) hands out the token, and a fake Azure OpenAI
//! server answers only requests that carry it as `Authorization: Bearer`.
//!
//! The credential is found from process-wide environment variables, so
//! these tests live in their own binary and hold one lock while they run.

use std::ffi::OsString;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod fault_matrix;
mod raw_server;

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
];

struct AzureEnvironment {
    saved: Vec<(&'static str, Option<OsString>)>,
    _lock: MutexGuard<'static, ()>,
}

impl AzureEnvironment {
    fn new(vars: &[(&str, String)]) -> AzureEnvironment {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let saved = AZURE_VARIABLES
            .iter()
            .map(|name| (*name, std::env::var_os(name)))
            .collect();
        for name in AZURE_VARIABLES {
            std::env::remove_var(name);
        }
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        AzureEnvironment { saved, _lock: lock }
    }
}

impl Drop for AzureEnvironment {
    fn drop(&mut self) {
        for (name, value) in &self.saved {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// A fake managed identity endpoint: answers `token` (an hour's) to
/// requests carrying `x-identity-header: {secret}`. Counts its answers.
fn managed_identity(secret: &'static str, token: &'static str) -> (String, Arc<AtomicUsize>) {
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
    let _env = AzureEnvironment::new(&[
        ("IDENTITY_ENDPOINT", endpoint),
        ("IDENTITY_HEADER", secret.to_string()),
    ]);
    let base = azure_openai(token);
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("azure-openai")
                .base_url(base)
                .model("gpt-4o"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(
            Load::closed(1)
                .requests(3)
                .stall_timeout(Duration::from_secs(5)),
        );
    let results = tempfile::tempdir().unwrap();
    let options = RunOptions {
        results_dir: Some(results.path().to_path_buf()),
        ..fault_matrix::quiet()
    };
    let outcome = run_benchmark("azure", &bench, &options).unwrap();
    assert_eq!(
        outcome.summary.summary.requests.completed,
        3,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    assert!(served.load(Ordering::SeqCst) >= 1);
    assert_nothing_leaks(
        results.path(),
        &[format!("{:?}", outcome.records)],
        &[token, secret],
    );
}

#[test]
fn a_refusing_identity_endpoint_is_one_clear_unauthorized_error() {
    let (endpoint, served) = managed_identity("the-right-header", "never-given");
    let _env = AzureEnvironment::new(&[
        ("IDENTITY_ENDPOINT", endpoint),
        (
            "IDENTITY_HEADER",
            "a-wrong-identity-header-89ab".to_string(),
        ),
    ]);
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("azure-openai")
                .base_url("http://127.0.0.1:9")
                .model("gpt-4o"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2));
    let outcome = fault_matrix::run(&bench);
    assert_eq!(fault_matrix::errors(&outcome, "unauthorized"), 2);
    assert_eq!(served.load(Ordering::SeqCst), 0);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("Microsoft Entra ID"), "{message}");
    assert!(
        !message.contains("a-wrong-identity-header-89ab"),
        "{message}"
    );
}
