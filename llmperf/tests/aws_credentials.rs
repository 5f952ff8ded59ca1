//! SageMaker requests signed with what the AWS SDK's default credential
//! chain finds, against local fakes only: a profile chosen with `--option
//! profile=` from shared files given by `AWS_SHARED_CREDENTIALS_FILE` /
//! `AWS_CONFIG_FILE`; container credentials from a fake agent on loopback
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) whose credentials expire during
//! the run and are renewed; web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`
//! and `AWS_ROLE_ARN`) exchanged at a fake STS (`AWS_ENDPOINT_URL_STS`),
//! renewed too; IAM Identity Center profiles whose cached token (under
//! `HOME`) a fake portal (`AWS_ENDPOINT_URL_SSO`) exchanges for role
//! credentials, and an expired one. The built-in endpoint verifies each
//! SigV4 signature against its test key pair, so a run that completes was
//! signed with the right keys; where the session token matters, a relay in
//! front of it shows which one each request carried. The instance metadata
//! service (IMDSv2) is a fake on loopback too
//! (`AWS_EC2_METADATA_SERVICE_ENDPOINT`), renewed likewise, or gone; every
//! other test switches it off (`AWS_EC2_METADATA_DISABLED`): nothing
//! leaves the machine.
//!
//! The chain reads process-wide environment variables, so these tests live
//! in their own binary and hold one lock while they run. Chains are kept
//! per profile and region for the life of the process, so each test uses
//! a profile or region of its own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use llmperf::builtin::Server;
use llmperf::endpoint::sagemaker::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use llmperf::run::RunOutcome;
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

mod aws_fakes;
mod fault_matrix;
use fault_matrix::run_into;
mod raw_server;
mod scoped_env;
use aws_fakes::{
    container_session_token, imds_metadata_token, imds_session_token, sso_session_token,
    sts_session_token, Relay,
};
use fault_matrix::{errors, fast_script};
use scoped_env::ScopedEnv;

/// Every variable the chain reads; each test starts from none of them.
const AWS_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SSO",
    "AWS_ENDPOINT_URL_SSO_OIDC",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "HOME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "SAGEMAKER_PROFILE",
    "SAGEMAKER_REGION",
    "SAGEMAKER_API_BASE",
];

/// Clears every AWS variable, switches off the instance metadata service,
/// points the shared files into `dir` (absent unless the test writes them)
/// and `HOME` at it (so the SSO token cache is `dir/.aws/sso/cache`), then
/// sets `vars`: until dropped, under the binary's one lock.
fn aws_environment(dir: &Path, vars: &[(&str, String)]) -> ScopedEnv {
    let mut set = vec![
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_CONFIG_FILE", dir.join("config").display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("credentials").display().to_string(),
        ),
        ("HOME", dir.display().to_string()),
    ];
    set.extend(vars.iter().cloned());
    ScopedEnv::new(AWS_VARIABLES, &set)
}

/// The built-in endpoint's SageMaker path, credentials left to the chain.
fn sagemaker() -> Endpoint {
    Endpoint::kind("sagemaker")
        .builtin()
        .option("endpoint_name", "llmperf-tgi")
}

/// Asserts that none of `secrets`, nor any SigV4 signature, is in the
/// files of `dir` or in `outcome`.
fn assert_nothing_leaks(dir: &Path, outcome: &RunOutcome, secrets: &[&str]) {
    let mut texts = vec![("the outcome".to_string(), format!("{outcome:?}"))];
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
        for marker in ["Signature=", "AWS4-HMAC-SHA256", "X-Amz-Security-Token"] {
            assert!(
                !text.contains(marker),
                "{what} holds a signature ({marker})"
            );
        }
    }
}

/// The built-in endpoint, reached through a [`Relay`] that shows how each
/// request was signed, and the SageMaker endpoint pointing at it
/// (credentials left to the chain).
fn relayed_builtin(script: Script) -> (Server, Relay, Endpoint) {
    let server = Server::start(script).unwrap();
    let relay = Relay::start(server.addr());
    let endpoint = Endpoint::kind("sagemaker")
        .base_url(&relay.url)
        .model("llmperf-tgi");
    (server, relay, endpoint)
}

/// The session token of each request the relay saw, after checking that
/// each was signed with the test access key id.
fn session_tokens(relay: &Relay) -> Vec<String> {
    relay
        .signed()
        .into_iter()
        .map(|signed| {
            assert_eq!(signed.access_key_id, TEST_ACCESS_KEY_ID);
            signed.session_token.expect("a session token")
        })
        .collect()
}

/// The issue number `N` of each session token `{prefix}N`, checking that
/// the fake issued it (`N` at most `issued`).
fn issue_numbers(tokens: &[String], prefix: &str, issued: usize) -> Vec<usize> {
    tokens
        .iter()
        .map(|token| {
            token
                .strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=issued).contains(n))
                .unwrap_or_else(|| panic!("`{token}` was not issued ({issued} were)"))
        })
        .collect()
}

/// Asserts that the credentials requests signed with, in the order they
/// were sent, moved on at least once and never back: renewed during the
/// run and used from then on.
fn assert_renewed_mid_run(numbers: &[usize]) {
    assert!(
        numbers.windows(2).all(|pair| pair[0] <= pair[1]),
        "{numbers:?}"
    );
    assert!(
        numbers.first() < numbers.last(),
        "never renewed: {numbers:?}"
    );
}

#[test]
fn the_profile_option_picks_which_keys_of_the_shared_files_sign() {
    let dir = tempfile::tempdir().unwrap();
    let wrong_secret = "wrong-profile-secret-0123456789";
    std::fs::write(
        dir.path().join("credentials"),
        format!(
            "[bench]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\naws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n\n\
             [other]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\naws_secret_access_key = {wrong_secret}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config"),
        "[profile bench]\nregion = eu-north-1\n\n[profile other]\nregion = eu-north-1\n",
    )
    .unwrap();
    let _env = aws_environment(dir.path(), &[]);
    let bench = Benchmark::new()
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(2).requests(4))
        .builtin_script(fast_script());

    let results = tempfile::tempdir().unwrap();
    let right = run_into(
        results.path(),
        &bench
            .clone()
            .endpoint(sagemaker().option("profile", "bench")),
    );
    assert_eq!(right.summary.summary.requests.completed, 4);
    assert_nothing_leaks(results.path(), &right, &[]);

    let results = tempfile::tempdir().unwrap();
    let wrong = run_into(
        results.path(),
        &bench.endpoint(sagemaker().option("profile", "other")),
    );
    assert_eq!(errors(&wrong, "unauthorized"), 4);
    let message = &wrong.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("signature we calculated"), "{message}");
    assert!(message.contains("AWS_PROFILE"), "{message}");
    assert_nothing_leaks(results.path(), &wrong, &[wrong_secret]);
}

/// A profile's `credential_process` (a program printing credentials as
/// JSON, as SSO helpers and vaults do) signs the requests.
#[test]
fn a_credential_process_signs_with_what_it_prints() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let session_token = "process-session-token-5b1e";
    let program = dir.path().join("credentials.sh");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"{TEST_ACCESS_KEY_ID}\", \
             \"SecretAccessKey\": \"{TEST_SECRET_ACCESS_KEY}\", \"SessionToken\": \"{session_token}\", \
             \"Expiration\": \"2099-01-01T00:00:00Z\"}}'\n",
            dir.path().join("calls").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config"),
        format!(
            "[profile vault]\nregion = sa-east-1\ncredential_process = {} --role bench\n",
            program.display()
        ),
    )
    .unwrap();
    let _env = aws_environment(dir.path(), &[]);
    let (_server, relay, endpoint) = relayed_builtin(fast_script());
    let results = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(endpoint.option("profile", "vault"))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(2).requests(4));
    let outcome = run_into(results.path(), &bench);
    assert_eq!(
        outcome.summary.summary.requests.completed,
        4,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    assert_eq!(session_tokens(&relay), vec![session_token.to_string(); 4]);
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert!(calls.lines().all(|line| line == "--role bench"), "{calls}");
    assert_nothing_leaks(
        results.path(),
        &outcome,
        &[session_token, TEST_SECRET_ACCESS_KEY],
    );
}

#[test]
fn a_profile_that_does_not_exist_is_a_clear_unauthorized_error() {
    let dir = tempfile::tempdir().unwrap();
    let _env = aws_environment(dir.path(), &[]);
    let bench = Benchmark::new()
        .endpoint(sagemaker().option("profile", "nowhere"))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    let outcome = fault_matrix::run(&bench);
    assert_eq!(errors(&outcome, "unauthorized"), 2);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("found no credentials"), "{message}");
    assert!(message.contains("profile `nowhere`"), "{message}");
}

/// Nine requests, one at a time, each 300 ms to its first token (about
/// 2.7 s in all), through a relay to the built-in endpoint, with the
/// `profile` option if given; all of them must complete. The outcome, the
/// relay and the results directory.
fn nine_requests_of_300_ms(profile: Option<&str>) -> (RunOutcome, Relay, tempfile::TempDir) {
    let (_server, relay, mut endpoint) = relayed_builtin(
        Script::new()
            .ttft(Duration::from_millis(300))
            .inter_token(Duration::from_millis(1)),
    );
    if let Some(profile) = profile {
        endpoint = endpoint.option("profile", profile);
    }
    let results = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(endpoint)
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(9));
    let outcome = run_into(results.path(), &bench);
    assert_eq!(
        outcome.summary.summary.requests.completed,
        9,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    (outcome, relay, results)
}

#[test]
fn container_credentials_expiring_mid_run_are_renewed_and_every_request_is_signed() {
    let auth = "container-authorization-token-abcdef";
    // Credentials live 2 s: renewed after 1 s, unusable after 2 s. The run
    // lasts about 2.7 s.
    let (url, agent) = aws_fakes::container_agent(auth, Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let _env = aws_environment(
        dir.path(),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", auth.to_string()),
            ("AWS_REGION", "ap-southeast-2".to_string()),
        ],
    );
    let (outcome, relay, results) = nine_requests_of_300_ms(None);
    assert_eq!(agent.refused(), Vec::<String>::new());
    let numbers = issue_numbers(
        &session_tokens(&relay),
        "container-session-token-",
        agent.issued(),
    );
    assert_renewed_mid_run(&numbers);
    let tokens: Vec<String> = (1..=agent.issued()).map(container_session_token).collect();
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.extend([auth, TEST_SECRET_ACCESS_KEY]);
    assert_nothing_leaks(results.path(), &outcome, &secrets);
}

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/llmperf-bench";
const ROLE_SESSION_NAME: &str = "llmperf-bench-pod";
/// What a projected service account token file holds (no newline).
const WEB_IDENTITY_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YmVuY2gifQ.c2lnbmF0dXJl";

#[test]
fn web_identity_credentials_from_sts_sign_every_request_and_are_renewed_mid_run() {
    // Credentials live 2 s: renewed after 1 s, unusable after 2 s. The
    // run lasts about 2.7 s.
    let (sts_url, sts) = aws_fakes::sts(
        ROLE_ARN,
        ROLE_SESSION_NAME,
        WEB_IDENTITY_TOKEN,
        Duration::from_secs(2),
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_IDENTITY_TOKEN).unwrap();
    let _env = aws_environment(
        dir.path(),
        &[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AWS_ROLE_ARN", ROLE_ARN.to_string()),
            ("AWS_ROLE_SESSION_NAME", ROLE_SESSION_NAME.to_string()),
            ("AWS_ENDPOINT_URL_STS", sts_url),
            // A region no other test uses: a chain of its own.
            ("AWS_REGION", "eu-west-3".to_string()),
        ],
    );
    let (outcome, relay, results) = nine_requests_of_300_ms(None);
    assert_eq!(sts.refused(), Vec::<String>::new(), "STS refused a request");
    let numbers = issue_numbers(&session_tokens(&relay), "sts-session-token-", sts.issued());
    assert_eq!(numbers.len(), 9);
    assert_renewed_mid_run(&numbers);
    let tokens: Vec<String> = (1..=sts.issued()).map(sts_session_token).collect();
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.extend([WEB_IDENTITY_TOKEN, TEST_SECRET_ACCESS_KEY]);
    assert_nothing_leaks(results.path(), &outcome, &secrets);
}

#[test]
fn an_sts_answer_the_sdk_cannot_read_is_an_unauthorized_error_that_quotes_none_of_it() {
    let secret = "garbled-sts-secret-access-key";
    let session_token = "garbled-sts-session-token";
    let (sts_url, sts) = aws_fakes::garbled_sts(secret, session_token);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_IDENTITY_TOKEN).unwrap();
    let _env = aws_environment(
        dir.path(),
        &[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AWS_ROLE_ARN", ROLE_ARN.to_string()),
            ("AWS_ENDPOINT_URL_STS", sts_url),
            // A region no other test uses: a chain of its own.
            ("AWS_REGION", "eu-south-1".to_string()),
        ],
    );
    let results = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(sagemaker())
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    let outcome = run_into(results.path(), &bench);
    assert_eq!(errors(&outcome, "unauthorized"), 2);
    assert!(sts.issued() >= 1, "STS was asked");
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("error parsing XML"), "{message}");
    assert_nothing_leaks(
        results.path(),
        &outcome,
        &[secret, session_token, WEB_IDENTITY_TOKEN],
    );
}

const SSO_ACCOUNT_ID: &str = "123456789012";
const SSO_ROLE_NAME: &str = "BenchRole";
const SSO_START_URL: &str = "https://llmperf-test.awsapps.com/start";
/// The SSO cache file names: SHA-1 of the session name (`sso_session`
/// profiles) or of the start URL (legacy profiles), as
/// `printf %s NAME | sha1sum` prints it.
const SSO_CACHE_SESSION: &str = "00464bc4af580b77830b40c917e94832e0b69395"; // llmperf-bench
const SSO_CACHE_START_URL: &str = "3f80da170e31f237d86faf153ba296d3079c7a1d"; // SSO_START_URL

/// Writes a config with two IAM Identity Center profiles for the same
/// account and role: `{prefix}-session` through the `[sso-session
/// llmperf-bench]` section, `{prefix}-legacy` with the `sso_*` keys of
/// its own; and, as `aws sso login` leaves it, the cached `access_token`
/// of each, expiring at `expires_at`.
fn sso_profiles(dir: &Path, prefix: &str, access_token: &str, expires_at: SystemTime) {
    std::fs::write(
        dir.join("config"),
        format!(
            "[profile {prefix}-session]\nsso_session = llmperf-bench\nsso_account_id = {SSO_ACCOUNT_ID}\n\
             sso_role_name = {SSO_ROLE_NAME}\nregion = eu-west-1\n\n\
             [profile {prefix}-legacy]\nsso_start_url = {SSO_START_URL}\nsso_region = eu-west-1\n\
             sso_account_id = {SSO_ACCOUNT_ID}\nsso_role_name = {SSO_ROLE_NAME}\nregion = eu-west-1\n\n\
             [sso-session llmperf-bench]\nsso_start_url = {SSO_START_URL}\nsso_region = eu-west-1\n\
             sso_registration_scopes = sso:account:access\n"
        ),
    )
    .unwrap();
    let cache = dir.join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let expires_at = humantime::format_rfc3339_seconds(expires_at);
    let token = format!(
        r#"{{"startUrl":"{SSO_START_URL}","region":"eu-west-1","accessToken":"{access_token}","expiresAt":"{expires_at}"}}"#
    );
    for name in [SSO_CACHE_SESSION, SSO_CACHE_START_URL] {
        std::fs::write(cache.join(format!("{name}.json")), &token).unwrap();
    }
}

#[test]
fn sso_profiles_sign_with_the_role_credentials_the_portal_exchanges_for_the_cached_token() {
    let access_token = "sso-access-token-from-aws-sso-login";
    let (portal_url, portal) = aws_fakes::sso_portal(access_token, SSO_ACCOUNT_ID, SSO_ROLE_NAME);
    let dir = tempfile::tempdir().unwrap();
    sso_profiles(
        dir.path(),
        "sso",
        access_token,
        SystemTime::now() + Duration::from_secs(8 * 3600),
    );
    let _env = aws_environment(dir.path(), &[("AWS_ENDPOINT_URL_SSO", portal_url)]);
    let (_server, relay, endpoint) = relayed_builtin(fast_script());
    let bench = Benchmark::new()
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(2).requests(4));

    // Each profile's chain asks the portal, with the cached token, for
    // credentials of its own, and signs every request of its run with them.
    let mut used = Vec::new();
    for profile in ["sso-session", "sso-legacy"] {
        let before = relay.signed().len();
        let results = tempfile::tempdir().unwrap();
        let outcome = run_into(
            results.path(),
            &bench
                .clone()
                .endpoint(endpoint.clone().option("profile", profile)),
        );
        assert_eq!(
            outcome.summary.summary.requests.completed,
            4,
            "{profile}: {:?}",
            outcome.records.iter().find_map(|r| r.error.as_ref())
        );
        assert_eq!(portal.refused(), Vec::<String>::new(), "{profile}");
        let numbers = issue_numbers(
            &session_tokens(&relay)[before..],
            "sso-session-token-",
            portal.issued(),
        );
        assert_eq!(numbers.len(), 4, "{profile}");
        assert!(numbers.iter().all(|n| *n == numbers[0]), "{numbers:?}");
        used.push(numbers[0]);
        let tokens: Vec<String> = (1..=portal.issued()).map(sso_session_token).collect();
        let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
        secrets.extend([access_token, TEST_SECRET_ACCESS_KEY]);
        assert_nothing_leaks(results.path(), &outcome, &secrets);
    }
    assert_ne!(
        used[0], used[1],
        "the two profiles' chains shared credentials"
    );
}

#[test]
fn an_expired_sso_login_is_one_clear_unauthorized_error_that_says_to_log_in_again() {
    let expired_token = "sso-access-token-expired-yesterday";
    // The portal knows only a current token: it refuses the expired one.
    let (portal_url, portal) =
        aws_fakes::sso_portal("sso-access-token-current", SSO_ACCOUNT_ID, SSO_ROLE_NAME);
    let dir = tempfile::tempdir().unwrap();
    sso_profiles(
        dir.path(),
        "expired",
        expired_token,
        SystemTime::now() - Duration::from_secs(24 * 3600),
    );
    let _env = aws_environment(dir.path(), &[("AWS_ENDPOINT_URL_SSO", portal_url)]);
    let bench = Benchmark::new()
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());

    // An `sso_session` profile: the SDK sees the expiry itself and never
    // calls the portal. A legacy profile: it sends the token, and the
    // portal refuses it.
    for (profile, why) in [
        ("expired-session", "the SSO token has expired"),
        ("expired-legacy", "Session token not found or invalid"),
    ] {
        let results = tempfile::tempdir().unwrap();
        let outcome = run_into(
            results.path(),
            &bench
                .clone()
                .endpoint(sagemaker().option("profile", profile)),
        );
        assert_eq!(errors(&outcome, "unauthorized"), 2, "{profile}");
        let messages: Vec<&str> = outcome
            .records
            .iter()
            .map(|r| r.error.as_ref().unwrap().message.as_str())
            .collect();
        assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
        let message = messages[0];
        assert!(message.contains(why), "{profile}: {message}");
        assert!(message.contains("aws sso login"), "{message}");
        assert!(
            message.contains(&format!("profile `{profile}`")),
            "{message}"
        );
        assert_nothing_leaks(results.path(), &outcome, &[expired_token]);
        if profile == "expired-session" {
            assert_eq!(portal.refused(), Vec::<String>::new());
        }
    }
    assert!(
        !portal.refused().is_empty(),
        "the legacy profile's token was sent"
    );
    assert_eq!(portal.issued(), 0);
}

/// The instance role of the fake instance metadata service.
const INSTANCE_ROLE: &str = "llmperf-bench-instance";

/// Writes a config whose profiles `names` each name a region and no
/// credentials, as on an instance whose role is its only credential.
///
/// The instance metadata tests name such a profile because, against a
/// loopback base URL with no AWS source pointed at (a profile,
/// `AWS_PROFILE`, keys, web identity or container variables), llmperf
/// signs with the built-in endpoint's test pair without asking the chain.
fn regional_profiles(dir: &Path, names: &[&str]) {
    let config: String = names
        .iter()
        .map(|name| format!("[profile {name}]\nregion = ca-central-1\n\n"))
        .collect();
    std::fs::write(dir.join("config"), config).unwrap();
}

/// The status line the instance metadata service at `url` answers to a
/// `GET` of `path` carrying `token` (if any) as its IMDSv2 token.
fn imds_status(url: &str, path: &str, token: Option<&str>) -> String {
    let mut socket = TcpStream::connect(url.strip_prefix("http://").unwrap()).unwrap();
    let token = token
        .map(|token| format!("x-aws-ec2-metadata-token: {token}\r\n"))
        .unwrap_or_default();
    write!(socket, "GET {path} HTTP/1.1\r\nhost: imds\r\n{token}\r\n").unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn instance_credentials_from_imdsv2_sign_every_request_and_are_renewed_mid_run() {
    // Credentials live 2 s: renewed after 1 s, unusable after 2 s. The
    // run lasts about 2.7 s.
    let (url, imds) = aws_fakes::instance_metadata(INSTANCE_ROLE, Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    regional_profiles(dir.path(), &["ec2-instance"]);
    let _env = aws_environment(
        dir.path(),
        &[
            // After the default `true`: the service is on, at the fake.
            ("AWS_EC2_METADATA_DISABLED", "false".to_string()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", url.clone()),
        ],
    );
    let (outcome, relay, results) = nine_requests_of_300_ms(Some("ec2-instance"));
    // Every request the SDK made carried a live token it had asked for.
    assert_eq!(
        imds.refused(),
        Vec::<String>::new(),
        "IMDS refused a request"
    );
    let numbers = issue_numbers(
        &session_tokens(&relay),
        "imds-session-token-",
        imds.issued(),
    );
    assert_eq!(numbers.len(), 9);
    assert_renewed_mid_run(&numbers);
    let metadata_tokens: Vec<String> = (1..=imds.metadata_tokens())
        .map(imds_metadata_token)
        .collect();
    let session_tokens: Vec<String> = (1..=imds.issued()).map(imds_session_token).collect();
    let mut secrets: Vec<&str> = metadata_tokens
        .iter()
        .chain(&session_tokens)
        .map(String::as_str)
        .collect();
    secrets.push(TEST_SECRET_ACCESS_KEY);
    assert_nothing_leaks(results.path(), &outcome, &secrets);

    // The fake does insist on IMDSv2: no token, or one it never handed
    // out, is refused.
    let credentials = format!("/latest/meta-data/iam/security-credentials/{INSTANCE_ROLE}");
    for token in [None, Some("imds-metadata-token-0")] {
        assert_eq!(
            imds_status(&url, &credentials, token),
            "HTTP/1.1 401 Unauthorized"
        );
    }
    assert_eq!(imds.refused().len(), 2, "{:?}", imds.refused());
}

/// The profile named with `--option profile=` decides where the instance
/// metadata service is (`ec2_metadata_service_endpoint`, as for an
/// IPv6-only instance's `_mode`), not the default profile.
#[test]
fn the_named_profile_says_where_the_instance_metadata_service_is() {
    let (default_url, default_imds) =
        aws_fakes::instance_metadata(INSTANCE_ROLE, Duration::from_secs(3600));
    let (named_url, named_imds) =
        aws_fakes::instance_metadata(INSTANCE_ROLE, Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config"),
        format!(
            "[default]\nregion = ca-central-1\nec2_metadata_service_endpoint = {default_url}\n\n\
             [profile ec2-keyed]\nregion = ca-central-1\nec2_metadata_service_endpoint = {named_url}\n"
        ),
    )
    .unwrap();
    let _env = aws_environment(
        dir.path(),
        &[("AWS_EC2_METADATA_DISABLED", "false".to_string())],
    );
    let (_outcome, relay, _results) = nine_requests_of_300_ms(Some("ec2-keyed"));
    let numbers = issue_numbers(
        &session_tokens(&relay),
        "imds-session-token-",
        named_imds.issued(),
    );
    assert_eq!(numbers.len(), 9);
    assert_eq!(
        default_imds.issued(),
        0,
        "the default profile's service was asked"
    );
}

#[test]
fn without_instance_metadata_or_any_other_source_each_request_is_one_clear_unauthorized_error_within_seconds(
) {
    let nothing_listening = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let never_answering = aws_fakes::silent_instance_metadata();
    // Each case with a profile of its own: a chain of its own. The SDK
    // gives the service 1 s to connect and 1 s to answer and retries
    // neither: switched off or refused, the run takes about 0.2 s; never
    // answering, about 1.2 s (requests would wait 30 s for a first answer).
    let cases = [
        (
            "ec2-switched-off",
            vec![],
            "the credential provider was not enabled: IMDS disabled by AWS_EC2_METADATA_DISABLED",
        ),
        (
            "ec2-nothing-listening",
            vec![
                ("AWS_EC2_METADATA_DISABLED", "false".to_string()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", nothing_listening),
            ],
            "the credential provider was not enabled: could not communicate with IMDS",
        ),
        (
            "ec2-never-answering",
            vec![
                ("AWS_EC2_METADATA_DISABLED", "false".to_string()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", never_answering),
            ],
            "the credential provider was not enabled: could not communicate with IMDS: \
             dispatch failure: timeout: HTTP read timeout",
        ),
    ];
    let bench = Benchmark::new()
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    for (profile, vars, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        regional_profiles(dir.path(), &[profile]);
        let _env = aws_environment(dir.path(), &vars);
        let results = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let outcome = run_into(
            results.path(),
            &bench
                .clone()
                .endpoint(sagemaker().option("profile", profile)),
        );
        let took = started.elapsed();
        assert_eq!(errors(&outcome, "unauthorized"), 2, "{profile}");
        let messages: Vec<&str> = outcome
            .records
            .iter()
            .map(|r| r.error.as_ref().unwrap().message.as_str())
            .collect();
        assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
        let message = messages[0];
        assert!(
            message.contains(&format!("Ec2InstanceMetadata: {why}")),
            "{profile}: {message}"
        );
        assert!(message.contains("instance credentials"), "{message}");
        assert!(took < Duration::from_secs(5), "{profile}: {took:?}");
        assert_nothing_leaks(results.path(), &outcome, &[]);
    }
}
