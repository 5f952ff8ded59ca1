//! Vertex AI bearer tokens from Application Default Credentials
//! (`google-cloud-auth`), against local fakes only: an `authorized_user`
//! file in `GOOGLE_APPLICATION_CREDENTIALS` whose `token_uri` is a fake
//! OAuth token server on loopback, and a fake metadata server
//! (`GCE_METADATA_HOST`). The built-in endpoint requires the one token the
//! fake hands out, so a run that completes sent it. A token the library
//! renews mid-run reaches the requests that follow (seen by a recording
//! server). A token given to llmperf itself wins and leaves the fakes
//! untouched.
//!
//! The credentials are found from process-wide environment variables, so
//! these tests live in their own binary and hold one lock while they run.

use std::path::Path;
use std::sync::atomic::Ordering;

use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod fault_matrix;
mod google_fakes;
mod raw_server;
mod scoped_env;
use fault_matrix::{fast_script, quiet};
use google_fakes::{token_series, token_server};
use scoped_env::ScopedEnv;

const GOOGLE_VARIABLES: &[&str] = &[
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "GCE_METADATA_ROOT",
    "HOME",
    "GCLOUD_ACCESS_TOKEN",
    "VERTEXAI_ACCESS_TOKEN",
    "VERTEXAI_API_KEY",
    "VERTEXAI_TOKEN_COMMAND",
    "GOOGLE_CLOUD_QUOTA_PROJECT",
];

/// Clears every Google variable, points `HOME` at `home` (an empty
/// directory: no gcloud user file), then sets `vars`: until dropped, under
/// the binary's one lock.
fn google_environment(home: &Path, vars: &[(&str, String)]) -> ScopedEnv {
    let mut set = vec![("HOME", home.display().to_string())];
    set.extend(vars.iter().cloned());
    ScopedEnv::new(GOOGLE_VARIABLES, &set)
}

fn bench(endpoint: Endpoint, token: &str) -> Benchmark {
    Benchmark::new()
        .endpoint(endpoint)
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(2).requests(4))
        .builtin_script(fast_script().require_api_key(token))
}

fn vertex() -> Endpoint {
    Endpoint::kind("vertex-gemini")
        .builtin()
        .option("project", "llmperf-test")
}

fn run_into(dir: &Path, bench: &Benchmark) -> RunOutcome {
    let options = RunOptions {
        results_dir: Some(dir.to_path_buf()),
        ..quiet()
    };
    run_benchmark("google", bench, &options).expect("the run itself must succeed")
}

/// Asserts that none of `secrets` is in the files of `dir` or the
/// outcome's records (the outcome's configuration holds the built-in
/// endpoint's script, which the test gave the token).
fn assert_nothing_leaks(dir: &Path, outcome: &RunOutcome, secrets: &[&str]) {
    let mut texts = vec![("the records".to_string(), format!("{:?}", outcome.records))];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            texts.push((path.display().to_string(), text));
        }
    }
    assert!(texts.len() > 1, "the run wrote no results");
    for (what, text) in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} leaks `{secret}`");
        }
    }
}

#[test]
fn an_authorized_user_file_gets_its_token_from_its_token_uri() {
    let token = "ya29.from-the-fake-token-server";
    let (address, served) = token_server("/token", "refresh-token-0123", token);
    let home = tempfile::tempdir().unwrap();
    let key_file = home.path().join("adc.json");
    std::fs::write(
        &key_file,
        format!(
            r#"{{"type":"authorized_user","client_id":"llmperf-client","client_secret":"client-secret-4567","refresh_token":"refresh-token-0123","token_uri":"http://{address}/token"}}"#
        ),
    )
    .unwrap();
    let _env = google_environment(
        home.path(),
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            key_file.display().to_string(),
        )],
    );
    let results = tempfile::tempdir().unwrap();
    let outcome = run_into(results.path(), &bench(vertex(), token));
    assert_eq!(
        outcome.summary.summary.requests.completed,
        4,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    assert!(served.load(Ordering::SeqCst) >= 1);
    assert_nothing_leaks(
        results.path(),
        &outcome,
        &[token, "refresh-token-0123", "client-secret-4567"],
    );
}

#[test]
fn the_metadata_server_gives_the_token_when_no_file_does() {
    let token = "ya29.from-the-fake-metadata-server";
    let (address, served) = token_server(
        "/computeMetadata/v1/instance/service-accounts/default/token",
        "Metadata-Flavor: Google",
        token,
    );
    let home = tempfile::tempdir().unwrap();
    let _env = google_environment(home.path(), &[("GCE_METADATA_HOST", address)]);
    let results = tempfile::tempdir().unwrap();
    let outcome = run_into(results.path(), &bench(vertex(), token));
    assert_eq!(
        outcome.summary.summary.requests.completed,
        4,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    assert!(served.load(Ordering::SeqCst) >= 1);
    assert_nothing_leaks(results.path(), &outcome, &[token]);
}

/// The library renews a token that has less than four minutes left every
/// ten seconds (google-cloud-auth's `token_cache.rs`), and llmperf copies
/// the current one every second: a run of fourteen seconds starts with the
/// metadata server's first token (a minute's) and ends with its second.
#[test]
fn a_token_renewed_by_the_library_reaches_the_requests_of_a_running_benchmark() {
    let (first, second) = ("ya29.first-token-a-minute", "ya29.second-token-an-hour");
    let (address, served) = token_series(
        "/computeMetadata/v1/instance/service-accounts/default/token",
        "Metadata-Flavor: Google",
        vec![(first, 60), (second, 3600)],
    );
    let home = tempfile::tempdir().unwrap();
    let _env = google_environment(home.path(), &[("GCE_METADATA_HOST", address)]);
    let (base, seen, _server) =
        raw_server::recording_server(usize::MAX, raw_server::chat_answer("renewed", "stop"));
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("vertex-openai")
                .base_url(base)
                .model("google/gemini-2.0-flash")
                .option("project", "llmperf-test"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(
            Load::rate(4.0)
                .arrival(llmperf::spec::Arrival::Constant)
                .duration(std::time::Duration::from_secs(14)),
        )
        // The recording server would answer a scrape of /metrics too.
        .server_metrics(llmperf::spec::ServerMetrics::off());
    let results = tempfile::tempdir().unwrap();
    let outcome = run_into(results.path(), &bench);
    let requests = seen.lock().unwrap().clone();
    let bearers: Vec<String> = requests
        .iter()
        .flat_map(|request| raw_server::header_values(request, "authorization"))
        .collect();
    assert_eq!(bearers.len(), requests.len(), "every request has a token");
    assert!(requests.len() >= 40, "{} requests", requests.len());
    assert_eq!(
        outcome.summary.summary.requests.completed as usize,
        requests.len()
    );
    let tokens: Vec<&str> = bearers
        .iter()
        .map(|bearer| bearer.strip_prefix("Bearer ").unwrap_or(bearer))
        .collect();
    assert!(
        tokens.iter().all(|t| *t == first || *t == second),
        "{tokens:?}"
    );
    // In order: the first token, then only the second.
    let switched = tokens.iter().position(|t| *t == second).expect("renewed");
    assert!(switched > 0 && tokens[..switched].iter().all(|t| *t == first));
    assert!(tokens[switched..].iter().all(|t| *t == second));
    assert!(served.load(Ordering::SeqCst) >= 2);
    assert_nothing_leaks(results.path(), &outcome, &[first, second]);
}

#[test]
fn a_token_given_to_llmperf_wins_over_application_default_credentials() {
    let (address, served) = token_server("/", "", "ya29.never-asked-for");
    let home = tempfile::tempdir().unwrap();
    let _env = google_environment(home.path(), &[("GCE_METADATA_HOST", address)]);
    let results = tempfile::tempdir().unwrap();
    let outcome = run_into(
        results.path(),
        &bench(vertex().option("access_token", "ya29.given"), "ya29.given"),
    );
    assert_eq!(outcome.summary.summary.requests.completed, 4);
    assert_eq!(served.load(Ordering::SeqCst), 0);
}

#[test]
fn a_refused_refresh_token_is_one_clear_unauthorized_error_without_secrets() {
    // The fake answers only a refresh token this file does not hold.
    let (address, served) = token_server("/token", "some-other-refresh-token", "ya29.x");
    let home = tempfile::tempdir().unwrap();
    let key_file = home.path().join("adc.json");
    std::fs::write(
        &key_file,
        format!(
            r#"{{"type":"authorized_user","client_id":"llmperf-client","client_secret":"client-secret-89ab","refresh_token":"revoked-refresh-token-cdef","token_uri":"http://{address}/token"}}"#
        ),
    )
    .unwrap();
    let _env = google_environment(
        home.path(),
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            key_file.display().to_string(),
        )],
    );
    let results = tempfile::tempdir().unwrap();
    let outcome = run_into(results.path(), &bench(vertex(), "ya29.x"));
    assert_eq!(fault_matrix::errors(&outcome, "unauthorized"), 4);
    assert_eq!(served.load(Ordering::SeqCst), 0);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(
        message.contains("Application Default Credentials gave no token"),
        "{message}"
    );
    assert!(
        message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{message}"
    );
    assert_nothing_leaks(
        results.path(),
        &outcome,
        &["revoked-refresh-token-cdef", "client-secret-89ab"],
    );
}
