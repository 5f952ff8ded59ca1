//! SageMaker requests signed with what the AWS SDK's default credential
//! chain finds, against local fakes only: a profile chosen with `--option
//! profile=` from shared files given by `AWS_SHARED_CREDENTIALS_FILE` /
//! `AWS_CONFIG_FILE`, and container credentials from a fake agent on
//! loopback (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) whose first credentials
//! expire during the run and are renewed. The built-in endpoint verifies
//! each SigV4 signature against its test key pair, so a run that completes
//! was signed with the right keys. The instance metadata service is
//! switched off (`AWS_EC2_METADATA_DISABLED`): nothing leaves the machine.
//!
//! The chain reads process-wide environment variables, so these tests live
//! in their own binary and hold one lock while they run.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use llmperf::endpoint::sagemaker::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{errors, fast_script, quiet};

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
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_EC2_METADATA_DISABLED",
    "SAGEMAKER_PROFILE",
    "SAGEMAKER_REGION",
    "SAGEMAKER_API_BASE",
];

/// The AWS environment of one test: set on creation, restored on drop,
/// under a lock no other test of this binary runs without.
struct AwsEnvironment {
    saved: Vec<(&'static str, Option<OsString>)>,
    _lock: MutexGuard<'static, ()>,
}

impl AwsEnvironment {
    /// Clears every AWS variable, switches off the instance metadata
    /// service and points the shared files into `dir` (absent unless the
    /// test writes them), then sets `vars`.
    fn new(dir: &Path, vars: &[(&str, String)]) -> AwsEnvironment {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let saved = AWS_VARIABLES
            .iter()
            .map(|name| (*name, std::env::var_os(name)))
            .collect();
        for name in AWS_VARIABLES {
            std::env::remove_var(name);
        }
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", dir.join("config"));
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"));
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        AwsEnvironment { saved, _lock: lock }
    }
}

impl Drop for AwsEnvironment {
    fn drop(&mut self) {
        for (name, value) in &self.saved {
            match value {
                Some(value) => std::env::set_var(name, value),
                None => std::env::remove_var(name),
            }
        }
    }
}

/// The built-in endpoint's SageMaker path, credentials left to the chain.
fn sagemaker() -> Endpoint {
    Endpoint::kind("sagemaker")
        .builtin()
        .option("endpoint_name", "llmperf-tgi")
}

fn run_into(dir: &Path, bench: &Benchmark) -> RunOutcome {
    let options = RunOptions {
        results_dir: Some(dir.to_path_buf()),
        ..quiet()
    };
    run_benchmark("aws", bench, &options).expect("the run itself must succeed")
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
    let _env = AwsEnvironment::new(dir.path(), &[]);
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

#[test]
fn a_profile_that_does_not_exist_is_a_clear_unauthorized_error() {
    let dir = tempfile::tempdir().unwrap();
    let _env = AwsEnvironment::new(dir.path(), &[]);
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

/// A fake container credentials agent (what ECS and EKS Pod Identity run)
/// on loopback: checks the authorization token, answers the test key pair
/// with a new session token each time, the first expiring after
/// `first_life`, the next ones after an hour. Counts its answers.
fn container_agent(auth: &'static str, first_life: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/v2/credentials/llmperf",
        listener.local_addr().unwrap()
    );
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                authorized |=
                    lower.starts_with("authorization:") && line.trim_end().ends_with(auth);
            }
            if !authorized {
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let life = if n == 1 {
                first_life
            } else {
                Duration::from_secs(3600)
            };
            let expiration = humantime::format_rfc3339_seconds(SystemTime::now() + life);
            let body = format!(
                r#"{{"AccessKeyId":"{TEST_ACCESS_KEY_ID}","SecretAccessKey":"{TEST_SECRET_ACCESS_KEY}","Token":"container-session-token-{n}","Expiration":"{expiration}"}}"#
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

#[test]
fn container_credentials_expiring_mid_run_are_renewed_and_every_request_is_signed() {
    let auth = "container-authorization-token-abcdef";
    // The first credentials live 3 s: renewed after about 1.5 s, unusable
    // after 3 s. The run lasts about 4.5 s.
    let (url, served) = container_agent(auth, Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let _env = AwsEnvironment::new(
        dir.path(),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", auth.to_string()),
            ("AWS_REGION", "ap-southeast-2".to_string()),
        ],
    );
    let results = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(sagemaker())
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(15))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(300))
                .inter_token(Duration::from_millis(1)),
        );
    let outcome = run_into(results.path(), &bench);
    let requests = &outcome.summary.summary.requests;
    assert_eq!(
        requests.completed,
        15,
        "{:?}",
        outcome.records.iter().find_map(|r| r.error.as_ref())
    );
    let fetched = served.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&fetched),
        "credentials fetched {fetched} times: once, then renewed before expiry"
    );
    assert_nothing_leaks(
        results.path(),
        &outcome,
        &[
            auth,
            "container-session-token-1",
            "container-session-token-2",
            TEST_SECRET_ACCESS_KEY,
        ],
    );
}
