//! The `llmperf` binary, as a user runs it.

use std::process::Command;

fn llmperf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llmperf"));
    // Keep the user's endpoint settings out of these runs.
    for var in ["OPENAI_API_BASE", "OPENAI_API_KEY", "LLMPERF_MODEL"] {
        command.env_remove(var);
    }
    command
}

#[test]
fn run_against_the_built_in_endpoint_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let output = llmperf()
        .current_dir(dir.path())
        .args([
            "run",
            "--mock",
            "-r",
            "6",
            "-c",
            "3",
            "--mean-output-tokens",
            "20",
        ])
        .args([
            "--stddev-output-tokens",
            "0",
            "--validate",
            "--results-dir",
            "out",
        ])
        .args(["--extra-body", r#"{"temperature": 0}"#, "--color", "never"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ttft"), "{stdout}");
    assert!(stdout.contains("validation 6/6 passed"), "{stdout}");
    let summary = llmperf::results::read_summary(&dir.path().join("out/summary.json")).unwrap();
    assert_eq!(summary.summary.requests.completed, 6);
    assert_eq!(summary.config.extra_body["temperature"], 0);
    let lines = std::fs::read_to_string(dir.path().join("out/requests.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 6);
}

#[test]
fn bad_flags_get_a_one_line_error_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["run", "--mock", "-c", "0"], "--concurrency"),
        (
            &["run", "--mock", "--min-lines", "9", "--max-lines", "2"],
            "--min-lines <= --max-lines",
        ),
        (&["run", "--mock", "--extra-body", "[1]"], "JSON object"),
        (&["run", "-r", "2"], "--base-url"),
    ];
    for (args, expected) in cases {
        let output = llmperf()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreadable_env_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "OPENAI_API_BASE = \"unterminated\n",
    )
    .unwrap();
    let output = llmperf()
        .current_dir(dir.path())
        .args(["run", "--mock", "-r", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(".env"), "{stderr}");
}

#[test]
fn list_apis_names_the_openai_kinds() {
    let output = llmperf().arg("list-apis").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("openai-chat"));
    assert!(stdout.contains("openai-completions"));
}
