//! The `llmperf` binary, as a user runs it.

use std::process::Command;

mod raw_server;
mod tls_server;

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
            "--builtin",
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
    let cases: [(&[&str], &str); 7] = [
        (&["run", "--builtin", "-c", "0"], "--concurrency"),
        (
            &["run", "--builtin", "--min-lines", "9", "--max-lines", "2"],
            "--min-lines <= --max-lines",
        ),
        (&["run", "--builtin", "--extra-body", "[1]"], "JSON object"),
        (&["run", "-r", "2"], "--base-url"),
        // The variable is named, not a placeholder.
        (
            &["run", "-m", "gpt-4o-mini", "-r", "1"],
            "set OPENAI_API_BASE",
        ),
        (
            &["run", "--api", "together", "-r", "1"],
            "TOGETHER_API_BASE",
        ),
        // --sleep pauses closed-loop slots; with --rate it would be ignored.
        (
            &["run", "--builtin", "--rate", "5", "--sleep", "1s"],
            "lower --rate",
        ),
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
        .args(["run", "--builtin", "-r", "1"])
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

#[test]
fn the_readme_first_command_validates_all_twenty_answers() {
    let dir = tempfile::tempdir().unwrap();
    let output = llmperf()
        .current_dir(dir.path())
        .args([
            "run",
            "--builtin",
            "-r",
            "20",
            "-c",
            "4",
            "--validate",
            "--color",
            "never",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("validation 20/20 passed, all correct"),
        "{stdout}"
    );
}

/// Runs a built-in endpoint in its own process; returns it and its base URL.
fn builtin_process(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = llmperf()
        .args([
            "builtin",
            "--port",
            "0",
            "--ttft",
            "5ms",
            "--inter-token",
            "1ms",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    (child, url)
}

/// `GET path` on the server behind `base_url` (`http://HOST:PORT/v1`): the
/// whole HTTP response as text.
fn http_get(base_url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let address = base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_built_in_endpoint_serves_metrics_in_the_style_asked() {
    let help = llmperf().args(["builtin", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--metrics-style"), "{help}");
    assert!(help.contains("not-prometheus"), "{help}");
    let wrong = llmperf()
        .args(["builtin", "--metrics-style", "prometheus"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("llama-cpp"));

    let (mut server, url) = builtin_process(&["--metrics-style", "tgi"]);
    let dir = tempfile::tempdir().unwrap();
    let run = llmperf()
        .current_dir(dir.path())
        .args([
            "run",
            "--base-url",
            &url,
            "-m",
            "m",
            "-r",
            "3",
            "-c",
            "1",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let metrics = http_get(&url, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("\ntgi_request_success 3\n"), "{metrics}");
    assert!(metrics.contains("\ntgi_queue_size 0\n"), "{metrics}");
    server.kill().unwrap();
    let _ = server.wait();
}

#[test]
fn a_cross_over_fails_the_run_unless_allowed() {
    let (mut server, url) = builtin_process(&["--fault", "cross-over:every=3"]);
    let run = |extra: &[&str]| {
        llmperf()
            .args(["run", "--base-url", &url, "-m", "m", "-r", "6", "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let failed = run(&[]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 response(s) answered another request"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&failed.stdout).contains("2 cross-overs"));
    let allowed = run(&["--allow-cross-overs"]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    server.kill().unwrap();
    let _ = server.wait();
}

#[test]
fn export_into_a_reader_that_stops_early_ends_quietly_and_same_named_runs_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let status = llmperf()
        .current_dir(dir.path())
        .args([
            "run",
            "--builtin",
            "-r",
            "2",
            "--mean-output-tokens",
            "4",
            "--quiet",
        ])
        .args(["--results-dir", "results/a"])
        .status()
        .unwrap();
    assert!(status.success());
    // Forty runs all named `run`: more output than a pipe holds.
    let summary = std::fs::read(dir.path().join("results/a/summary.json")).unwrap();
    for copy in 1..40 {
        let other = dir.path().join(format!("results/copy{copy:02}"));
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("summary.json"), &summary).unwrap();
    }
    // A reader that takes one line and goes away, as `| head -1` does.
    let mut export = llmperf()
        .current_dir(dir.path())
        .args(["export", "results", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    use std::io::Read;
    export
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    // The pipe is closed here; what is left cannot be written.
    let output = export.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = llmperf()
        .current_dir(dir.path())
        .args(["export", "results", "--format", "github-smaller"])
        .output()
        .unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: std::collections::BTreeSet<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .filter(|n| n.ends_with("- ttft_p50"))
        .collect();
    assert_eq!(names.len(), 40, "{names:?}");
    assert!(names.iter().any(|n| n.contains("results/a")), "{names:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_open_files_limit_is_raised_and_a_load_that_cannot_fit_is_named() {
    // Each shell lowers its limits, then runs llmperf: 100 streams with the
    // built-in endpoint in the same process need about 200 open files.
    let run = |limits: &str, load: &str| {
        let command = format!(
            "{limits}; exec \"$0\" run --builtin {load} --mean-output-tokens 4 --stddev-output-tokens 0 -q"
        );
        let output = Command::new("bash")
            .args(["-c", &command, env!("CARGO_BIN_EXE_llmperf")])
            .env_remove("OPENAI_API_BASE")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A soft limit of 128 alone: raised to the hard limit, the run fits.
    let (ok, stderr) = run("ulimit -Sn 128", "-c 100 -r 100");
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("open files"), "{stderr}");
    // A hard limit of 150: a load of up to 100 in flight is told it cannot
    // fit (one request is enough to see the warning).
    let (_, stderr) = run("ulimit -n 150", "--rate 1 --max-in-flight 100 -r 1");
    assert!(
        stderr.contains("200 connections need about 264 open files, but this process may open 150"),
        "{stderr}"
    );
}

/// `llmperf run` against a test HTTPS server, with `extra` flags and
/// environment; the output (stdout then stderr) and whether it exited 0.
fn run_over_tls(
    base_url: &str,
    extra: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (String, bool) {
    let mut command = llmperf();
    command
        .args(["run", "--base-url", base_url, "-m", "m", "-r", "2"])
        .args(["--no-validate", "--no-server-metrics", "--color", "always"])
        .args(["--mean-output-tokens", "8", "--stddev-output-tokens", "0"])
        .args(extra);
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (text, output.status.success())
}

#[test]
fn tls_flags_and_ssl_cert_file_reach_the_connection_and_insecure_is_marked_yellow() {
    let pki = tls_server::TestPki::new();
    let server = tls_server::serve(&pki, true);
    let ca = pki.ca_pem.to_str().unwrap();
    let cert = pki.client_cert_pem.to_str().unwrap();
    let key = pki.client_key_pem.to_str().unwrap();
    let client = ["--client-cert", cert, "--client-key", key];

    let (text, ok) = run_over_tls(
        &server.base_url,
        &[&["--ca-cert", ca][..], &client].concat(),
        &[],
    );
    assert!(ok, "{text}");
    assert!(text.contains("TLS 1.3 (http/1.1)"), "{text}");
    assert!(!text.contains("insecure"), "{text}");

    // SSL_CERT_FILE, as OpenSSL-based tools read it, instead of --ca-cert.
    let (text, ok) = run_over_tls(&server.base_url, &client, &[("SSL_CERT_FILE", &pki.ca_pem)]);
    assert!(ok, "{text}");

    // Without any of them: a tls error naming the flag.
    let (text, ok) = run_over_tls(&server.base_url, &client, &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("--ca-cert FILE"), "{text}");

    let (text, ok) = run_over_tls(
        &server.base_url,
        &[&["--insecure"][..], &client].concat(),
        &[],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("\u{1b}[33minsecure: the server's certificate was NOT verified"),
        "{text}"
    );

    // A key without its certificate is a flag error; a CA file holding
    // none is an error naming it, before anything is sent.
    let (text, ok) = run_over_tls(&server.base_url, &["--client-key", key], &[]);
    assert!(!ok && text.contains("--client-cert"), "{text}");
    let (text, ok) = run_over_tls(
        &server.base_url,
        &[&["--ca-cert", key][..], &client].concat(),
        &[],
    );
    assert!(!ok && text.contains("holds no certificate"), "{text}");
    assert!(!text.contains("BEGIN PRIVATE KEY"), "{text}");
}

#[test]
fn header_query_and_proxy_flags_reach_every_request_and_results_keep_no_secret() {
    let (origin, at_origin, origin_thread) =
        raw_server::recording_server(2, raw_server::chat_answer("1 one", "stop"));
    let (proxy, at_proxy, proxy_thread) = raw_server::forward_proxy(2);
    let dir = tempfile::tempdir().unwrap();
    let output = llmperf()
        .current_dir(dir.path())
        .env("LLMPERF_TEST_CLI_KEY", "cli-secret-4c1d")
        // --proxy wins over the environment, NO_PROXY included.
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .env("NO_PROXY", "127.0.0.1")
        .args([
            "run",
            "--base-url",
            &origin,
            "-m",
            "m",
            "-r",
            "2",
            "-c",
            "1",
        ])
        .args([
            "--no-validate",
            "--no-server-metrics",
            "--results-dir",
            "out",
        ])
        .args(["-H", "Authorization: Bearer ${LLMPERF_TEST_CLI_KEY}"])
        .args(["--header", "X-Team:blue"])
        .args(["--query", "api-version=2024-10-21", "--proxy", &proxy])
        .args(["--color", "never"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    origin_thread.join().unwrap();
    proxy_thread.join().unwrap();
    assert_eq!(
        at_proxy.lock().unwrap().len(),
        2,
        "both requests went through --proxy"
    );
    for request in at_origin.lock().unwrap().iter() {
        assert!(
            request.starts_with("POST /v1/chat/completions?api-version=2024-10-21 HTTP/1.1"),
            "{request}"
        );
        assert_eq!(
            raw_server::header_values(request, "authorization"),
            ["Bearer cli-secret-4c1d"]
        );
        assert_eq!(raw_server::header_values(request, "x-team"), ["blue"]);
    }
    let summary = llmperf::results::read_summary(&dir.path().join("out/summary.json")).unwrap();
    assert_eq!(summary.config.headers["authorization"], "***");
    assert_eq!(summary.config.headers["x-team"], "blue");
    assert_eq!(summary.config.query["api-version"], "***");
    assert_eq!(summary.config.proxy, Some(format!("{proxy}/")));
    let text = std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap()
        + &std::fs::read_to_string(dir.path().join("out/requests.jsonl")).unwrap()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("cli-secret-4c1d") && !text.contains("2024-10-21"));
}

#[test]
fn malformed_header_and_query_flags_are_one_line_errors_that_never_show_the_value() {
    let cases: [(&[&str], &str); 4] = [
        (&["-H", "X-Key sk-typed-4411"], "--header takes NAME: VALUE"),
        (&["-H", "X Key: sk-typed-4411"], "not a header name"),
        (&["-H", "X-Key: sk-typed-4411\r\nX-Evil: 1"], "line break"),
        (&["--query", "sk-typed-4411"], "--query takes NAME=VALUE"),
    ];
    for (flags, expected) in cases {
        let output = llmperf()
            .args(["run", "--builtin", "-r", "1"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stderr.contains("sk-typed-4411"), "{flags:?}: {stderr}");
    }
}

#[test]
fn the_built_in_endpoint_ignores_proxy_flags_and_variables() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let output = llmperf()
        .env("HTTP_PROXY", &proxy)
        .env("ALL_PROXY", &proxy)
        .args(["run", "--builtin", "-r", "2", "--proxy", &proxy, "-q"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(listener.accept().is_err(), "the proxy was used");
}
