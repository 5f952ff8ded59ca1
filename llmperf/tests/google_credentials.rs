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
//! A service-account key makes no token request: the library signs its own
//! JWT, which a recording server checks against the test key. Workload
//! identity federation (`external_account`) exchanges a subject token file
//! at a fake STS, then optionally at a fake IAM `generateAccessToken`. A
//! proxy trap catches any request for googleapis.com. A key file that is
//! not JSON, or of an unknown type, is one clear `unauthorized` error.
//!
//! The credentials are found from process-wide environment variables, so
//! these tests live in their own binary and hold one lock while they run.

use std::path::Path;
use std::sync::atomic::Ordering;

use llmperf::run::RunOutcome;
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod fault_matrix;
use fault_matrix::run_into;
mod google_fakes;
mod raw_server;
mod scoped_env;
use fault_matrix::fast_script;
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

/// A service-account key file as the Cloud console downloads it, signed
/// with the test key; its `token_uri` is Google's own.
fn service_account_key(key_id: &str, client_email: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "llmperf-test",
        "private_key_id": key_id,
        "private_key": google_fakes::TEST_KEY_PEM,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// The tokens of the `Authorization: Bearer` headers of `requests`, one
/// per request (a request without one fails the test).
fn bearer_tokens(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            let values = raw_server::header_values(request, "authorization");
            let [value] = &values[..] else {
                panic!("{} authorization headers", values.len());
            };
            value
                .strip_prefix("Bearer ")
                .unwrap_or_else(|| panic!("not a bearer token"))
                .to_string()
        })
        .collect()
}

/// google-cloud-auth makes no token request for a service-account key
/// with scopes: it signs a JWT with the key (`kid` the key id, `iss` and
/// `sub` the client email, `scope` cloud-platform, an hour's life) and
/// sends that as the access token (`credentials/service_account.rs`,
/// `ServiceAccountTokenGenerator::generate`). The key's `token_uri` is
/// never called: the proxy trap catches any request for googleapis.com.
#[test]
fn a_service_account_key_signs_its_own_token_and_calls_no_token_service() {
    let (key_id, client_email) = (
        "0123456789abcdef0123456789abcdef01234567",
        "llmperf-bench@llmperf-test.iam.gserviceaccount.com",
    );
    let home = tempfile::tempdir().unwrap();
    let key_file = home.path().join("service-account.json");
    std::fs::write(&key_file, service_account_key(key_id, client_email)).unwrap();
    let trap = google_fakes::ProxyTrap::start();
    let mut vars = trap.variables();
    vars.push((
        "GOOGLE_APPLICATION_CREDENTIALS",
        key_file.display().to_string(),
    ));
    let _env = google_environment(home.path(), &vars);
    let (base, seen, _server) =
        raw_server::recording_server(usize::MAX, raw_server::chat_answer("signed", "stop"));
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("vertex-openai")
                .base_url(base)
                .model("google/gemini-2.0-flash")
                .option("project", "llmperf-test"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(2).requests(4))
        .server_metrics(llmperf::spec::ServerMetrics::off());
    let results = tempfile::tempdir().unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let outcome = run_into(results.path(), &bench);
    assert_eq!(
        outcome.summary.summary.requests.completed,
        4,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    let tokens = bearer_tokens(&seen.lock().unwrap());
    assert_eq!(tokens.len(), 4);
    for token in &tokens {
        let (header, claims) = google_fakes::verified_jwt(token).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key_id})
        );
        assert_eq!(claims["iss"], client_email);
        assert_eq!(claims["sub"], client_email);
        assert_eq!(claims["scope"], google_fakes::CLOUD_PLATFORM);
        // Scopes or an audience, never both.
        assert!(claims["aud"].is_null(), "{claims}");
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(iat <= started + 1, "issued {iat}, run started {started}");
        assert!(
            (3600..=3700).contains(&(exp - started)),
            "expires {}s after the run started",
            exp - started
        );
    }
    assert_eq!(
        trap.caught(),
        Vec::<String>::new(),
        "requests left loopback"
    );
    let signature = tokens[0].rsplit('.').next().unwrap();
    let key_line = google_fakes::TEST_KEY_PEM.lines().nth(5).unwrap();
    assert_nothing_leaks(
        results.path(),
        &outcome,
        &[tokens[0].as_str(), signature, key_line],
    );
}

const WORKLOAD_POOL_PROVIDER: &str =
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/llmperf-pool/providers/llmperf-provider";

/// An `external_account` file (workload identity federation) whose subject
/// token is the file `subject_token_file` and whose token exchange is at
/// `token_url`; through `impersonation_url` when given.
fn external_account(
    subject_token_file: &Path,
    token_url: &str,
    impersonation_url: Option<&str>,
) -> String {
    let mut file = serde_json::json!({
        "type": "external_account",
        "audience": WORKLOAD_POOL_PROVIDER,
        "subject_token_type": google_fakes::JWT_TOKEN_TYPE,
        "token_url": token_url,
        "credential_source": {"file": subject_token_file.display().to_string()},
        "universe_domain": "googleapis.com",
    });
    if let Some(url) = impersonation_url {
        file["service_account_impersonation_url"] = url.into();
    }
    file.to_string()
}

/// An OIDC token as Kubernetes projects it into a pod (a JWT, no trailing
/// newline); its content is all that matters here.
const SUBJECT_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YmVuY2g6bGxtcGVyZiJ9.subject-token-signature";

/// google-cloud-auth takes an `external_account` file's `token_url` as it
/// is (no https or googleapis.com check: `credentials/external_account.rs`,
/// `ExternalAccountFile`), so a fake STS on loopback gets the RFC 8693
/// exchange of the subject token file, and the token it answers is the one
/// every request sends (the built-in endpoint requires it).
#[test]
fn workload_identity_federation_exchanges_the_subject_token_file_at_its_token_url() {
    let token = "ya29.from-the-fake-sts";
    let (token_url, sts) = google_fakes::sts(
        google_fakes::Exchange {
            audience: WORKLOAD_POOL_PROVIDER.to_string(),
            subject_token: SUBJECT_TOKEN.to_string(),
            scope: google_fakes::CLOUD_PLATFORM,
        },
        token,
    );
    let (outcome, trap, results) = run_with_external_account(&token_url, None, token);
    assert_eq!(
        outcome.summary.summary.requests.completed,
        4,
        "{:?}; the STS refused: {:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref()),
        sts.refused()
    );
    assert!(sts.issued() >= 1);
    assert_eq!(sts.refused(), Vec::<String>::new());
    assert_eq!(
        trap.caught(),
        Vec::<String>::new(),
        "requests left loopback"
    );
    assert_nothing_leaks(results.path(), &outcome, &[token, SUBJECT_TOKEN]);
}

/// Runs the built-in endpoint, which requires `token`, with
/// `GOOGLE_APPLICATION_CREDENTIALS` naming an `external_account` file (its
/// subject token in a file beside it) and a proxy trap for requests that
/// leave loopback. The outcome, the trap and the results directory.
fn run_with_external_account(
    token_url: &str,
    impersonation_url: Option<&str>,
    token: &str,
) -> (RunOutcome, google_fakes::ProxyTrap, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let subject_token_file = home.path().join("token");
    std::fs::write(&subject_token_file, SUBJECT_TOKEN).unwrap();
    let key_file = home.path().join("external-account.json");
    std::fs::write(
        &key_file,
        external_account(&subject_token_file, token_url, impersonation_url),
    )
    .unwrap();
    let trap = google_fakes::ProxyTrap::start();
    let mut vars = trap.variables();
    vars.push((
        "GOOGLE_APPLICATION_CREDENTIALS",
        key_file.display().to_string(),
    ));
    let _env = google_environment(home.path(), &vars);
    let results = tempfile::tempdir().unwrap();
    let outcome = run_into(results.path(), &bench(vertex(), token));
    (outcome, trap, results)
}

/// With `service_account_impersonation_url`, the STS token is asked for
/// the IAM scope only and exchanged again, at that URL (a second fake), for
/// the service account's cloud-platform token: the one requests send. The
/// STS token never reaches Vertex.
#[test]
fn workload_identity_federation_impersonates_a_service_account_with_the_exchanged_token() {
    let (sts_token, token) = ("ya29.sts-token-for-iam-only", "ya29.service-account-token");
    let (token_url, sts) = google_fakes::sts(
        google_fakes::Exchange {
            audience: WORKLOAD_POOL_PROVIDER.to_string(),
            subject_token: SUBJECT_TOKEN.to_string(),
            scope: google_fakes::IAM_SCOPE,
        },
        sts_token,
    );
    let (impersonation_url, iam) = google_fakes::impersonation(
        "llmperf-bench@llmperf-test.iam.gserviceaccount.com",
        sts_token,
        token,
    );
    let (outcome, trap, results) =
        run_with_external_account(&token_url, Some(&impersonation_url), token);
    assert_eq!(
        outcome.summary.summary.requests.completed,
        4,
        "{:?}; the STS refused: {:?}; IAM refused: {:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref()),
        sts.refused(),
        iam.refused()
    );
    assert!(sts.issued() >= 1 && iam.issued() >= 1);
    assert_eq!(sts.refused(), Vec::<String>::new());
    assert_eq!(iam.refused(), Vec::<String>::new());
    assert_eq!(
        trap.caught(),
        Vec::<String>::new(),
        "requests left loopback"
    );
    assert_nothing_leaks(results.path(), &outcome, &[token, sts_token, SUBJECT_TOKEN]);
}

/// Runs the built-in endpoint with `GOOGLE_APPLICATION_CREDENTIALS`
/// naming a file that holds `contents`; every request must fail as
/// `unauthorized`, all with one message, which is returned.
fn run_with_unusable_key_file(contents: &str) -> (String, RunOutcome, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let key_file = home.path().join("key.json");
    std::fs::write(&key_file, contents).unwrap();
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
    let messages: std::collections::BTreeSet<&str> = outcome
        .records
        .iter()
        .map(|record| record.error.as_ref().unwrap().message.as_str())
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = messages.into_iter().next().unwrap().to_string();
    assert!(
        message.contains("Application Default Credentials gave no token"),
        "{message}"
    );
    assert!(
        message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{message}"
    );
    (message, outcome, results)
}

/// A PEM private key where the JSON key file belongs (a common mix-up).
#[test]
fn a_key_file_that_is_not_json_is_one_clear_unauthorized_error_without_secrets() {
    let (message, outcome, results) = run_with_unusable_key_file(google_fakes::TEST_KEY_PEM);
    assert!(
        message.contains("cannot parse the credentials file"),
        "{message}"
    );
    let key_line = google_fakes::TEST_KEY_PEM.lines().nth(1).unwrap();
    assert_nothing_leaks(results.path(), &outcome, &[key_line, "PRIVATE KEY"]);
}

/// A misspelt `type`: the library names the type it does not know.
#[test]
fn a_key_file_of_an_unknown_type_is_one_clear_unauthorized_error_without_secrets() {
    let key = service_account_key(
        "0123456789abcdef",
        "llmperf@llmperf-test.iam.gserviceaccount.com",
    )
    .replace(r#""type":"service_account""#, r#""type":"service-account""#);
    assert!(key.contains("service-account"));
    let (message, outcome, results) = run_with_unusable_key_file(&key);
    assert!(
        message.contains("unknown or invalid credentials type service-account"),
        "{message}"
    );
    let key_line = google_fakes::TEST_KEY_PEM.lines().nth(1).unwrap();
    assert_nothing_leaks(results.path(), &outcome, &[key_line, "PRIVATE KEY"]);
}

/// A subject token file in JSON whose `subject_token_field_name` is not in
/// it: the error must not quote the file. Fails today: google-cloud-auth
/// quotes the whole file in its error (`external_account_sources/
/// file_sourced.rs`: "failed to read subject token field `…` as string,
/// body=<…>"), and adc.rs passes the library's error on as it is, so the
/// token lands in every request's error and the results files.
#[test]
fn a_subject_token_file_without_its_field_leaks_nothing() {
    let home = tempfile::tempdir().unwrap();
    let subject_token_file = home.path().join("token.json");
    std::fs::write(
        &subject_token_file,
        format!(r#"{{"id_token":"{SUBJECT_TOKEN}"}}"#),
    )
    .unwrap();
    let mut file: serde_json::Value = serde_json::from_str(&external_account(
        &subject_token_file,
        "http://127.0.0.1:9/v1/token",
        None,
    ))
    .unwrap();
    file["credential_source"]["format"] =
        serde_json::json!({"type": "json", "subject_token_field_name": "access_token"});
    let (message, outcome, results) = run_with_unusable_key_file(&file.to_string());
    assert!(message.contains("access_token"), "{message}");
    assert_nothing_leaks(results.path(), &outcome, &[SUBJECT_TOKEN]);
}
