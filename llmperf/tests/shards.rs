//! Sharded runs as a scheduler runs them: separate `llmperf run --shard I/N`
//! processes against one built-in endpoint in its own process, then
//! `llmperf merge`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use llmperf::metrics::Summary;
use llmperf::record::{RequestRecord, ValidationOutcome};
use llmperf::results::{read_records, read_summary};

fn llmperf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llmperf"));
    for var in [
        "OPENAI_API_BASE",
        "OPENAI_API_KEY",
        "LLMPERF_MODEL",
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        command.env_remove(var);
    }
    command
}

/// `llmperf builtin` in its own process, killed on drop.
struct Endpoint {
    child: Child,
    base_url: String,
    /// Its stdout, kept open so its prints never meet a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Endpoint {
    fn start(args: &[&str]) -> Endpoint {
        let mut child = llmperf()
            .args(["builtin", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let base_url = first
            .trim()
            .rsplit(' ')
            .next()
            .expect("the endpoint prints its URL")
            .to_string();
        assert!(base_url.starts_with("http://127.0.0.1:"), "{first}");
        Endpoint {
            child,
            base_url,
            _stdout: stdout,
        }
    }

    /// `/v1/builtin/stats`, read with a plain HTTP/1.0 request.
    fn stats(&self) -> serde_json::Value {
        let address = self
            .base_url
            .trim_start_matches("http://")
            .trim_end_matches("/v1");
        let mut socket = TcpStream::connect(address).unwrap();
        socket
            .write_all(b"GET /v1/builtin/stats HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn succeeded(output: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

/// The shard command lines of one run against `base_url`.
fn shard_command(base_url: &str, shard: &str, dir: &Path, extra: &[&str]) -> Command {
    let mut command = llmperf();
    command
        .args([
            "run",
            "--base-url",
            base_url,
            "-m",
            "m",
            "--name",
            "sharded",
        ])
        .args(["--shard", shard, "--results-dir"])
        .arg(dir)
        .args(["-q", "--color", "never"])
        .args(extra);
    command
}

fn records(dir: &Path) -> Vec<RequestRecord> {
    read_records(&dir.join("requests.jsonl")).unwrap()
}

#[test]
fn four_shard_processes_merge_into_the_run_the_flags_describe() {
    let endpoint = Endpoint::start(&["--ttft", "50ms", "--inter-token", "5ms"]);
    let dir = tempfile::tempdir().unwrap();
    // Every shard prepares, then starts at the same instant.
    let start = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(4));
    let load = [
        "-c",
        "8",
        "-r",
        "48",
        "--mean-output-tokens",
        "48",
        "--stddev-output-tokens",
        "0",
        "--start-at",
    ];
    let children: Vec<Child> = (0..4)
        .map(|i| {
            let mut command = shard_command(
                &endpoint.base_url,
                &format!("{i}/4"),
                &dir.path().join(format!("shard-{i}")),
                &load,
            );
            command
                .arg(start.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        succeeded(&child.wait_with_output().unwrap());
    }
    // Each shard drove 2 of the 8 in flight; together they reached 8.
    assert_eq!(endpoint.stats()["max_in_flight"], 8, "{}", endpoint.stats());
    assert_eq!(endpoint.stats()["requests"], 48);
    let shard = read_summary(&dir.path().join("shard-1/summary.json")).unwrap();
    let info = shard.shard.as_ref().expect("a shard says so");
    assert_eq!((info.index, info.count), (1, 4));
    assert_eq!(shard.config.load.concurrency, 8, "the whole run's config");
    assert_eq!(shard.summary.requests.completed, 12);

    let out = dir.path().join("merged");
    let output = llmperf()
        .arg("merge")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .args(["--color", "never"])
        .output()
        .unwrap();
    let text = succeeded(&output);
    assert!(text.contains("merged from 4 of 4 shards"), "{text}");
    let merged = read_summary(&out.join("summary.json")).unwrap();
    assert_eq!(merged.summary.requests.completed, 48);
    assert_eq!(merged.levels[0].level.label(), "c=8");
    let validation = merged.summary.validation.as_ref().expect("validated");
    assert_eq!((validation.passed, validation.cross_overs), (48, 0));
    let info = merged.merged.as_ref().expect("merge info");
    assert_eq!(info.shards.len(), 4);
    assert!(info.missing.is_empty());

    // The merged percentiles are those of all records pooled, not an
    // average of the shards'.
    let mut pooled: Vec<RequestRecord> = (0..4)
        .flat_map(|i| records(&dir.path().join(format!("shard-{i}"))))
        .collect();
    pooled.sort_by_key(|r| r.id);
    let ids: Vec<u64> = pooled.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        (0..48).collect::<Vec<_>>(),
        "ids are unique across shards"
    );
    let numbers: std::collections::HashSet<u64> = pooled
        .iter()
        .map(|r| r.validation.as_ref().unwrap().expected)
        .collect();
    assert_eq!(
        numbers.len(),
        48,
        "validation numbers are distinct across shards"
    );
    let all = Summary::of(&pooled);
    assert_eq!(merged.summary.ttft_ms, all.ttft_ms);
    assert_eq!(merged.summary.e2e_ms, all.e2e_ms);
    assert_eq!(
        merged.summary.inter_token_latency_ms,
        all.inter_token_latency_ms
    );
    assert_eq!(merged.summary.tpot_ms, all.tpot_ms);
    assert_eq!(records(&out).len(), 48);

    // Each shard numbers its connections from 1: merged, no two shards share one.
    let mut owners = std::collections::HashMap::new();
    for record in records(&out) {
        let connection = record.connection.expect("a connection").id;
        assert_eq!(
            *owners.entry(connection).or_insert(record.id % 4),
            record.id % 4
        );
    }
    // Merging again beside the first merge leaves that one out; merging
    // into the shards' parent itself is refused.
    let again = llmperf()
        .arg("merge")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("merged-again"))
        .args(["-q"])
        .output()
        .unwrap();
    succeeded(&again);
    let into_parent = llmperf()
        .arg("merge")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(into_parent.status.code(), Some(2));

    // The merge is a result like any other.
    succeeded(&llmperf().arg("report").arg(&out).output().unwrap());
    let pages: String = std::fs::read_dir(out.join("report"))
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.unwrap().path()).ok())
        .collect();
    assert!(
        pages.contains("merged from 4 of 4 shards"),
        "the HTML page says so"
    );
    succeeded(
        &llmperf()
            .arg("compare")
            .arg(&out)
            .arg(&out)
            .args(["--color", "never"])
            .output()
            .unwrap(),
    );
    let export = succeeded(
        &llmperf()
            .arg("export")
            .arg(&out)
            .args(["--format", "json"])
            .output()
            .unwrap(),
    );
    assert!(export.contains("\"id\":\"sharded\""), "{export}");
}

#[test]
fn an_answer_crossing_between_shards_is_found_at_merge() {
    // The fifth request the endpoint receives is answered with the
    // previous request's number: shard 0 sends four, then shard 1's first
    // gets shard 0's last answer.
    let endpoint = Endpoint::start(&[
        "--ttft",
        "5ms",
        "--inter-token",
        "1ms",
        "--fault",
        "cross-over:every=5",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let flags = ["-c", "2", "-r", "8", "--validate-only"];
    for i in 0..2 {
        let shard_dir = dir.path().join(format!("shard-{i}"));
        succeeded(
            &shard_command(&endpoint.base_url, &format!("{i}/2"), &shard_dir, &flags)
                .output()
                .unwrap(),
        );
    }
    // Shard 1 alone cannot know whose number it got: a mismatch.
    let alone = read_summary(&dir.path().join("shard-1/summary.json")).unwrap();
    let validation = alone.summary.validation.as_ref().unwrap();
    assert_eq!((validation.mismatches, validation.cross_overs), (1, 0));

    let out = dir.path().join("merged");
    let merge = |extra: &[&str]| {
        llmperf()
            .arg("merge")
            .arg(dir.path().join("shard-0"))
            .arg(dir.path().join("shard-1"))
            .arg("--out")
            .arg(&out)
            .args(["--color", "never"])
            .args(extra)
            .output()
            .unwrap()
    };
    let output = merge(&[]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a cross-over fails the merge"
    );
    let merged = read_summary(&out.join("summary.json")).unwrap();
    let validation = merged.summary.validation.as_ref().unwrap();
    assert_eq!((validation.cross_overs, validation.mismatches), (1, 0));
    let crossed: Vec<RequestRecord> = records(&out)
        .into_iter()
        .filter(|r| {
            r.validation
                .as_ref()
                .is_some_and(|v| v.outcome == ValidationOutcome::CrossOver)
        })
        .collect();
    // Shard 1's first request (id 1) got shard 0's last one's (id 6).
    assert_eq!(crossed.len(), 1);
    assert_eq!(crossed[0].id, 1);
    assert_eq!(
        crossed[0].validation.as_ref().unwrap().other_request_id,
        Some(6)
    );
    succeeded(&merge(&["--allow-cross-overs"]));
}

#[test]
fn the_merge_of_one_shard_is_that_shard() {
    let endpoint = Endpoint::start(&["--ttft", "5ms", "--inter-token", "1ms", "--jitter", "1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("only");
    succeeded(
        &shard_command(
            &endpoint.base_url,
            "0/1",
            &shard,
            &["-c", "3", "-r", "20", "--mean-output-tokens", "16"],
        )
        .output()
        .unwrap(),
    );
    let out = dir.path().join("merged");
    succeeded(
        &llmperf()
            .arg("merge")
            .arg(&shard)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap(),
    );
    let alone = read_summary(&shard.join("summary.json")).unwrap();
    let merged = read_summary(&out.join("summary.json")).unwrap();
    assert_eq!(merged.summary, alone.summary);
    assert_eq!(merged.levels, alone.levels);
    let mut written = records(&shard);
    written.sort_by_key(|r| r.id);
    assert_eq!(records(&out), written);
}

#[test]
fn shards_that_do_not_belong_together_are_refused() {
    let endpoint = Endpoint::start(&["--ttft", "2ms", "--inter-token", "1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, shard: &str, extra: &[&str]| {
        let shard_dir = dir.path().join(name);
        let mut flags = vec!["-c", "2", "-r", "4", "--mean-output-tokens", "8"];
        flags.extend_from_slice(extra);
        succeeded(
            &shard_command(&endpoint.base_url, shard, &shard_dir, &flags)
                .output()
                .unwrap(),
        );
        shard_dir
    };
    let a = run("a", "0/2", &[]);
    let b = run("b", "1/2", &["--seed", "9"]);
    let twin = run("twin", "0/2", &[]);
    let merge = |dirs: &[&Path], extra: &[&str]| {
        let output = llmperf()
            .arg("merge")
            .args(dirs)
            .arg("--out")
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, error) = merge(&[&a, &b], &[]);
    assert_eq!(code, Some(2));
    assert!(error.contains("different configurations (seed)"), "{error}");
    let (code, error) = merge(&[&a, &twin], &[]);
    assert_eq!(code, Some(2));
    assert!(error.contains("are both shard 0/2"), "{error}");
    let (code, error) = merge(&[&a], &[]);
    assert_eq!(code, Some(2));
    assert!(error.contains("shard 1/2 missing"), "{error}");
    let (code, _) = merge(&[&a], &["--allow-partial"]);
    assert_eq!(code, Some(0));
    let partial = read_summary(&dir.path().join("out/summary.json")).unwrap();
    assert_eq!(partial.merged.unwrap().missing, [1]);

    // More shards than requests in flight would leave one idle.
    let output = llmperf()
        .args(["run", "--builtin", "-c", "2", "-r", "4", "--shard", "0/3"])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(error.contains("run at most 2 shards"), "{error}");
    // A Kubernetes pod knows its index, not the count.
    let output = llmperf()
        .args(["run", "--builtin", "-c", "2", "-r", "4", "--shard", "auto"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("pass --shards N"), "{error}");
}
