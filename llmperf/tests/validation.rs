//! Validation that does not lie, over real sockets: on by default for
//! generated prompts, room for every answer, a cut answer reported as
//! truncated (never as a mismatch, never as another request's number),
//! cross-overs out of goodput.

use std::io::Write;
use std::thread;

use llmperf::record::ValidationOutcome;
use llmperf::spec::ServerMetrics;
use llmperf::validate::Task;
use llmperf::workload::answer_room;
use llmperf::{Benchmark, Dataset, Endpoint, Fault, FaultSchedule, Load, Tokenizer, Workload};

mod fault_matrix;
mod raw_server;
use fault_matrix::{fast_script, run};

#[test]
fn generated_prompts_are_validated_by_default_and_every_answer_gets_room() {
    // The README's default workload: 150±80 output tokens, so some draws
    // are tiny; the plan still leaves room for each answer.
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .load(Load::closed(4).requests(40))
        .builtin_script(fast_script());
    let outcome = run(&bench);
    assert!(outcome.summary.config.validate);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!(
        (
            validation.validated,
            validation.passed,
            validation.truncated
        ),
        (40, 40, 0),
        "{validation:?}"
    );
    let plans = llmperf::workload::plan_requests(
        bench.workload_spec(),
        true,
        40,
        llmperf::spec::DEFAULT_SEED,
        Tokenizer::bundled(),
    )
    .unwrap();
    for plan in &plans {
        let task = plan.task.as_ref().expect("a task");
        let room = answer_room(task, Tokenizer::bundled());
        assert!(
            plan.max_tokens.unwrap() >= room,
            "{:?} < {room}",
            plan.max_tokens
        );
        assert!(
            plan.prompt.contains("Begin your reply with"),
            "{}",
            plan.prompt
        );
    }
    // The answer opens the reply and the reply goes on: outputs keep their
    // planned length (the built-in endpoint fills up to max_tokens).
    for (record, plan) in outcome.records.iter().zip(&plans) {
        assert_eq!(record.max_tokens, plan.max_tokens);
        assert_eq!(record.output_tokens(), plan.max_tokens.unwrap());
    }
}

#[test]
fn validation_can_be_turned_off_and_is_off_for_datasets_unless_asked_for() {
    let off = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script())
        .validate(false);
    let outcome = run(&off);
    assert!(!outcome.summary.config.validate);
    assert!(outcome.summary.summary.validation.is_none());
    assert!(outcome.records.iter().all(|r| r.validation.is_none()));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.jsonl");
    std::fs::write(
        &path,
        "{\"prompt\": \"Hello there\", \"max_tokens\": 4}\n".repeat(3),
    )
    .unwrap();
    let dataset = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::dataset(
            Dataset::jsonl(&path).sample(llmperf::Sampling::WithReplacement),
        ))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    assert!(run(&dataset).summary.summary.validation.is_none());
    let asked = run(&dataset.validate(true));
    let validation = asked.summary.summary.validation.expect("validated");
    assert_eq!(validation.passed, 2, "{validation:?}");
}

/// A server that answers each request with the first half of its
/// validation answer, then `finish_reason: "length"` (a model cut by its
/// token limit mid-number).
fn cutting_server(requests: usize) -> (String, thread::JoinHandle<()>) {
    raw_server::spawn(requests, |mut socket| {
        let Some(request) = raw_server::read_request(&mut socket) else {
            return;
        };
        let task = Task::parse(&request).expect("a validated prompt");
        let answer = task.answer();
        let half: String = answer.chars().take(answer.chars().count() / 2).collect();
        let _ = socket.write_all(raw_server::chat_answer(&half, "length").as_bytes());
    })
}

#[test]
fn an_answer_cut_by_its_token_limit_is_truncated_not_a_mismatch() {
    let (url, server) = cutting_server(6);
    // The raw server answers every request as the benchmark's: no /metrics.
    let bench = Benchmark::new()
        .server_metrics(ServerMetrics::off())
        .endpoint(Endpoint::openai_chat().base_url(&url).model("cut"))
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(6));
    let outcome = run(&bench);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!(
        (
            validation.truncated,
            validation.mismatches,
            validation.cross_overs
        ),
        (6, 0, 0),
        "{validation:?}"
    );
    assert_eq!(validation.truncated_requests.len(), 6);
    server.join().unwrap();
}

#[test]
fn a_stream_that_breaks_mid_answer_is_truncated_and_a_cross_over_is_never_good() {
    // Disconnects cut every third answer at half its tokens.
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(9))
        .builtin_script(fast_script().fault(Fault::Disconnect, FaultSchedule::Every(3)));
    let outcome = run(&bench);
    let broken: Vec<_> = outcome.records.iter().filter(|r| !r.ok).collect();
    assert_eq!(broken.len(), 3);
    for record in broken {
        if let Some(validation) = &record.validation {
            assert_eq!(
                validation.outcome,
                ValidationOutcome::Truncated,
                "{record:?}"
            );
        }
    }
    let validation = outcome.summary.summary.validation.clone().unwrap();
    assert_eq!((validation.mismatches, validation.cross_overs), (0, 0));

    let crossed = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(8))
        .builtin_script(fast_script().fault(Fault::CrossOver, FaultSchedule::Every(4)));
    let outcome = run(&crossed);
    let level = &outcome.summary.levels[0];
    assert_eq!(level.summary.validation.as_ref().unwrap().cross_overs, 2);
    assert_eq!(level.summary.requests.completed, 8);
    assert_eq!(level.slo.good_requests, 6, "cross-overs are not goodput");
    assert_eq!(outcome.summary.cross_overs(), 2);
}

/// A server that answers every chat request with the first line of its
/// last message (it repeats the prompt and ignores the instruction).
fn echo_server(requests: usize) -> (String, thread::JoinHandle<()>) {
    raw_server::spawn(requests, |mut socket| {
        let Some(body) =
            raw_server::read_request(&mut socket).and_then(|r| raw_server::json_body(&r))
        else {
            return;
        };
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap();
        let line = last["content"]
            .as_str()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let _ = socket.write_all(raw_server::chat_answer(&line, "stop").as_bytes());
    })
}

#[test]
fn a_number_the_prompt_itself_states_is_not_a_cross_over() {
    // The validation numbers come from their own random stream: plan once
    // to learn them, then write a dataset whose one prompt states the
    // numbers of requests 0 and 1.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.jsonl");
    let dataset =
        || Workload::dataset(Dataset::jsonl(&path).sample(llmperf::Sampling::WithReplacement));
    std::fs::write(&path, "{\"prompt\": \"placeholder\"}\n").unwrap();
    let plans = llmperf::workload::plan_requests(
        &dataset(),
        true,
        4,
        llmperf::spec::DEFAULT_SEED,
        Tokenizer::bundled(),
    )
    .unwrap();
    let number = |i: usize| plans[i].task.as_ref().unwrap().number;
    let prompt = format!("Numbers: {} and {}", number(0), number(1));
    std::fs::write(
        &path,
        format!("{}\n", serde_json::json!({"prompt": prompt})),
    )
    .unwrap();
    let (url, server) = echo_server(4);
    // The raw server answers every request as the benchmark's: no /metrics.
    let bench = Benchmark::new()
        .server_metrics(ServerMetrics::off())
        .endpoint(Endpoint::openai_chat().base_url(&url).model("echo"))
        .workload(dataset())
        .load(Load::closed(1).requests(4))
        .validate(true);
    let outcome = run(&bench);
    let validation = outcome.summary.summary.validation.clone().unwrap();
    // Requests 0 and 1 find their own number in the echo; 2 and 3 find
    // others' numbers, which their own prompt states: wrong, not crossed.
    assert_eq!(
        (
            validation.passed,
            validation.mismatches,
            validation.cross_overs
        ),
        (2, 2, 0),
        "{validation:?}"
    );
    server.join().unwrap();
}
