//! Dataset workloads end to end: JSONL and ShareGPT files written to a temp
//! dir, run against the built-in endpoint over real HTTP with chat,
//! Anthropic, Gemini and completion-style kinds. Each request must reach
//! the server with the dataset's `max_tokens` (the server generates exactly
//! that many tokens) and every message (the server's prompt token count is
//! that of all the messages it read).

mod fault_matrix;

use std::path::{Path, PathBuf};

use llmperf::record::RequestRecord;
use llmperf::workload::{plan_requests, Message, RequestPlan, Role};
use llmperf::{Benchmark, Dataset, Endpoint, Load, Sampling, Tokenizer, Workload};

const SEED: u64 = 11;

const JSONL: &str = r#"{"prompt": "Write a haiku about the sea.", "max_tokens": 12}
{"prompt": "List three prime numbers.", "max_tokens": 7}

{"messages": [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Capital of Spain?"}], "max_tokens": 5}
{"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again, louder."}], "max_tokens": 9}
{"prompt": "Name a colour.", "max_tokens": 3, "id": "ignored"}
"#;

/// Replies of 6, 5 and 10 tokens (by the bundled tokenizer, checked below)
/// set each request's output length.
const SHAREGPT: &str = r#"[
  {"id": "x1", "conversations": [
    {"from": "human", "value": "What is the tallest mountain?"},
    {"from": "gpt", "value": "Mount Everest is the tallest."},
    {"from": "human", "value": "How tall?"},
    {"from": "gpt", "value": "About 8,849 metres."}
  ]},
  {"id": "x2", "conversations": [
    {"from": "system", "value": "You are terse."},
    {"from": "human", "value": "Is water wet?"},
    {"from": "gpt", "value": "Yes, it is."}
  ]},
  {"id": "x3", "conversations": [
    {"from": "human", "value": "Count to five."},
    {"from": "gpt", "value": "One, two, three, four, five."}
  ]},
  {"id": "x4", "conversations": [{"from": "gpt", "value": "A reply to nothing is dropped."}]}
]"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the dataset");
    path
}

/// The built-in endpoint's prompt for chat-style bodies: every content, one a line.
fn joined(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|message| message.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The built-in endpoint's prompt for an Anthropic body: the top-level system text
/// (system messages joined by a blank line), then the other messages.
fn anthropic_prompt(messages: &[Message]) -> String {
    let (system, turns): (Vec<Message>, Vec<Message>) = messages
        .iter()
        .cloned()
        .partition(|message| message.role == Role::System);
    let turns = joined(&turns);
    if system.is_empty() {
        return turns;
    }
    let system: Vec<&str> = system.iter().map(|m| m.content.as_str()).collect();
    format!("{}\n{turns}", system.join("\n\n"))
}

/// Runs `workload` against `endpoint` and checks every record against the
/// plan for its id: the plan's (dataset's) `max_tokens` was sent and
/// generated, and the server counted `server_prompt(plan)`'s tokens.
fn run_and_check(
    endpoint: Endpoint,
    workload: Workload,
    requests: u64,
    server_prompt: impl Fn(&RequestPlan) -> String,
) -> Vec<RequestRecord> {
    let bench = Benchmark::new()
        .endpoint(endpoint.clone())
        .workload(workload.clone())
        .load(Load::closed(2).requests(requests))
        .seed(SEED)
        .builtin_script(fault_matrix::fast_script());
    let outcome = fault_matrix::run(&bench);
    let kind = endpoint.kind_name();
    let tokenizer = Tokenizer::bundled();
    let plans = plan_requests(&workload, false, requests, SEED, tokenizer).expect("plans");
    assert_eq!(outcome.records.len() as u64, requests, "{kind}");
    for (record, plan) in outcome.records.iter().zip(&plans) {
        assert_eq!(record.id, plan.id);
        assert!(record.ok, "{kind}: {:?}", record.error);
        assert!(
            plan.max_tokens.is_some(),
            "{kind}: every entry sets a length"
        );
        assert_eq!(record.max_tokens, plan.max_tokens, "{kind}");
        assert_eq!(record.output_tokens_server, plan.max_tokens, "{kind}");
        let expected = tokenizer.count(&server_prompt(plan)) as u32;
        assert_eq!(
            record.input_tokens_server,
            Some(expected),
            "{kind}: {plan:?}"
        );
        assert_eq!(
            record.input_tokens_client, plan.input_tokens_client,
            "{kind}"
        );
    }
    outcome.records
}

/// The `max_tokens` of the records, smallest first.
fn lengths(records: &[RequestRecord]) -> Vec<u32> {
    let mut lengths: Vec<u32> = records.iter().filter_map(|r| r.max_tokens).collect();
    lengths.sort_unstable();
    lengths
}

#[test]
fn a_jsonl_dataset_sends_its_messages_and_lengths_with_every_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "prompts.jsonl", JSONL);
    let workload = Workload::dataset(Dataset::jsonl(&path));

    let records = run_and_check(
        Endpoint::openai_chat().builtin(),
        workload.clone(),
        5,
        |plan| joined(&plan.messages),
    );
    assert_eq!(
        lengths(&records),
        [3, 5, 7, 9, 12],
        "each entry once, with its own max_tokens"
    );

    run_and_check(
        Endpoint::kind("anthropic").builtin(),
        workload.clone(),
        5,
        |plan| anthropic_prompt(&plan.messages),
    );
    run_and_check(
        Endpoint::kind("vertex-gemini").builtin(),
        workload.clone(),
        5,
        |plan| joined(&plan.messages),
    );
    // Completion-style kinds get the flattened conversation.
    let records = run_and_check(Endpoint::kind("tgi").builtin(), workload, 5, |plan| {
        plan.prompt.clone()
    });
    assert_eq!(records.len(), 5);
}

#[test]
fn a_sharegpt_dataset_takes_its_output_lengths_from_the_recorded_replies() {
    let tokenizer = Tokenizer::bundled();
    let replies = [
        "Mount Everest is the tallest.",
        "Yes, it is.",
        "One, two, three, four, five.",
    ];
    let reply_tokens: Vec<u32> = replies.iter().map(|r| tokenizer.count(r) as u32).collect();
    assert_eq!(reply_tokens, [6, 5, 10]);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "sharegpt.json", SHAREGPT);
    let workload = Workload::dataset(Dataset::sharegpt(&path));
    let records = run_and_check(
        Endpoint::openai_chat().builtin(),
        workload.clone(),
        3,
        |plan| joined(&plan.messages),
    );
    assert_eq!(
        lengths(&records),
        [5, 6, 10],
        "the first turn's reply of each kept entry"
    );

    // Anthropic: the entry's system message and a shared prefix both go to
    // the top-level `system`; the server counts them with the messages.
    let prefixed = workload.clone().shared_prefix(24);
    run_and_check(
        Endpoint::kind("anthropic").builtin(),
        prefixed.clone(),
        3,
        |plan| anthropic_prompt(&plan.messages),
    );
    let plans = plan_requests(&prefixed, false, 3, SEED, tokenizer).expect("plans");
    let terse = plans
        .iter()
        .find(|plan| plan.messages.len() == 3)
        .expect("the entry with its own system message");
    assert_eq!(tokenizer.count(&terse.messages[0].content), 24);
    assert_eq!(terse.messages[1], Message::system("You are terse."));

    // Completions get the flattened conversation, labels and all.
    run_and_check(
        Endpoint::openai_completions().builtin(),
        workload,
        3,
        |plan| plan.prompt.clone(),
    );
    assert!(terse
        .prompt
        .contains("System: You are terse.\n\nUser: Is water wet?\n\nAssistant:"));
}

#[test]
fn sampling_with_replacement_runs_more_requests_than_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "prompts.jsonl", JSONL);
    let workload =
        Workload::dataset(Dataset::jsonl(&path).sample(Sampling::WithReplacement)).max_tokens(8);
    let records = run_and_check(Endpoint::openai_chat().builtin(), workload, 12, |plan| {
        joined(&plan.messages)
    });
    // The workload's max_tokens caps each entry's own.
    assert!(lengths(&records).iter().all(|&n| n <= 8));
    assert!(lengths(&records).contains(&8));
}

#[test]
fn a_dataset_that_cannot_be_used_fails_the_run_with_the_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        dir.path(),
        "bad.jsonl",
        "{\"prompt\": \"ok\"}\n{\"prompt\": 5}\n",
    );
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::dataset(Dataset::jsonl(&path)))
        .requests(1);
    let error = llmperf::run::run_benchmark("bad", &bench, &fault_matrix::quiet())
        .expect_err("a bad line fails the run");
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{}:2:", path.display())),
        "{shown}"
    );

    let small = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::dataset(Dataset::jsonl(write(
            dir.path(),
            "one.jsonl",
            "{\"prompt\": \"a\"}\n",
        ))))
        .requests(2);
    let error = llmperf::run::run_benchmark("small", &small, &fault_matrix::quiet())
        .expect_err("too few entries without replacement");
    assert!(
        error.to_string().contains("--sampling with-replacement"),
        "{error}"
    );
}

/// The `llmperf` binary with the user's endpoint settings kept out.
fn llmperf() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_llmperf"));
    for var in ["OPENAI_API_BASE", "OPENAI_API_KEY", "LLMPERF_MODEL"] {
        command.env_remove(var);
    }
    command
}

#[test]
fn the_cli_runs_a_dataset_guessing_its_format_and_records_the_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "sharegpt.json", SHAREGPT);
    let output = llmperf()
        .current_dir(dir.path())
        .args(["run", "--builtin", "-r", "4", "--dataset", "sharegpt.json"])
        .args([
            "--turns",
            "2",
            "--shared-prefix-tokens",
            "16",
            "--min-input-tokens",
            "2",
        ])
        .args(["--results-dir", "out", "--quiet"])
        .output()
        .expect("run llmperf");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary =
        llmperf::results::read_summary(&dir.path().join("out/summary.json")).expect("summary");
    assert_eq!(summary.summary.requests.completed, 4);
    let workload = &summary.config.workload;
    assert_eq!(
        workload.prompts,
        llmperf::spec::PromptScheme::Dataset(
            Dataset::sharegpt("sharegpt.json").min_input_tokens(2)
        )
    );
    assert_eq!(
        (workload.turns, workload.shared_prefix_tokens),
        (2, Some(16))
    );
}

#[test]
fn the_cli_names_the_file_and_line_of_a_bad_dataset() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "chat.jsonl",
        "{\"prompt\": \"a\"}\n{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n",
    );
    let output = llmperf()
        .current_dir(dir.path())
        .args(["run", "--builtin", "-r", "2", "--dataset", "chat.jsonl"])
        .output()
        .expect("run llmperf");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("chat.jsonl:2: unknown role `robot`"),
        "{stderr}"
    );
}
