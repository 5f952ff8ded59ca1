//! Prompts and lengths, planned from the seed.
//!
//! A [`Planner`] makes a [`Workload`]'s requests one at a time, in plan
//! order; [`plan_requests`] makes them all at once. The same seed always
//! gives the same messages, lengths and validation numbers. Prompts are
//! generated from the bundled corpus or read from a [dataset] file; a
//! [shared prefix](Workload::shared_prefix) and [multi-turn
//! conversations](Workload::multi_turn) work with either. All tokenizing
//! happens here, on the planner's thread during a run
//! ([`crate::load::Feed`]), never on the streaming path (except
//! [`continue_conversation`], which a multi-turn driver calls between two
//! turns of one conversation).

pub mod conversation;
pub mod corpus;
pub mod dataset;
pub mod message;
pub mod planner;
pub mod tokenizer;

use std::path::PathBuf;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

pub use conversation::{continue_conversation, Turn};
pub use dataset::DatasetReport;
pub use message::{count_tokens, flatten, Message, Role};
pub use planner::{Numbers, Planner};

use crate::shard::Shard;
use crate::spec::Workload;
use crate::validate::Task;
use tokenizer::Tokenizer;

/// One request, fully decided before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPlan {
    /// Index of the request in the run (0-based): its place in the plan vector.
    pub id: u64,
    /// The full list of messages to send (a plain prompt is one user
    /// message). Chat protocols send them as messages; a later turn of a
    /// conversation holds only its own new messages until
    /// [`continue_conversation`] adds the history (see [`turn`](Self::turn)).
    pub messages: Vec<Message>,
    /// The messages as one text ([`flatten`]), for completion-style
    /// protocols (TGI, OpenAI completions, Together's legacy inference,
    /// SageMaker `inputs`).
    pub prompt: String,
    /// `max_tokens` to send, if any.
    pub max_tokens: Option<u32>,
    /// Ask the server to ignore EOS (`ignore_eos`, `min_tokens = max_tokens`).
    pub ignore_eos: bool,
    /// The validation task embedded in the (last user) message, if validated.
    pub task: Option<Task>,
    /// Tokens in the messages' contents by the client's tokenizer
    /// ([`count_tokens`]: without the chat template or role labels).
    pub input_tokens_client: u32,
    /// Where the request sits in a multi-turn conversation; `None` for a
    /// request that stands alone.
    ///
    /// The contract with the load driver: the plans of one conversation
    /// are consecutive in the plan vector, turn index 0, 1, … n-1 (the
    /// last conversation of a run may be cut short). Turn 0 is sent as it
    /// is. A later turn's `messages` hold only what the turn adds (its new
    /// user message); it must be sent after the previous turn has ended,
    /// as `continue_conversation(next, previous_as_sent, actual_answer,
    /// tokenizer)`, so that it carries the model's actual answer. What to
    /// do with the rest of a conversation whose turn failed is the
    /// driver's choice.
    pub turn: Option<Turn>,
}

impl RequestPlan {
    /// A plan sending `messages`, with its prompt and token count derived,
    /// no `max_tokens`, no validation, standing alone.
    ///
    /// ```
    /// use llmperf::workload::{Message, RequestPlan};
    /// let plan = RequestPlan::new(0, vec![Message::user("hello world")], llmperf::Tokenizer::bundled());
    /// assert_eq!((plan.prompt.as_str(), plan.input_tokens_client), ("hello world", 2));
    /// ```
    pub fn new(id: u64, messages: Vec<Message>, tokenizer: &Tokenizer) -> Self {
        RequestPlan {
            id,
            prompt: flatten(&messages),
            input_tokens_client: count_tokens(&messages, tokenizer),
            messages,
            max_tokens: None,
            ignore_eos: false,
            task: None,
            turn: None,
        }
    }
}

/// A four-message conversation (system, user, assistant, user), for the
/// endpoint kinds' body tests.
#[cfg(test)]
pub(crate) fn test_conversation() -> RequestPlan {
    RequestPlan::new(
        0,
        vec![
            Message::system("S"),
            Message::user("U1"),
            Message::assistant("A1"),
            Message::user("U2"),
        ],
        Tokenizer::bundled(),
    )
}

/// Why a workload could not be planned (a dataset that cannot be used).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The dataset file could not be read.
    #[error("cannot read dataset {}: {error} (check the path given to --dataset)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a source, so it is shown once).
        error: std::io::Error,
    },
    /// A line of the dataset is not what its format expects.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// No entry is left after the filters.
    #[error("dataset {} has no entry to send: {report}; widen or drop the filters (--min-input-tokens, --max-input-tokens), or check --dataset-format", path.display())]
    EmptyDataset {
        /// The file.
        path: PathBuf,
        /// What was read and dropped.
        report: DatasetReport,
    },
    /// Sampling without replacement ran out of entries.
    #[error("dataset {} ({report}) gives {available} requests without repeating an entry, fewer than the {requests} asked for: lower --requests or sample with replacement (--sampling with-replacement)", path.display())]
    TooFewEntries {
        /// The file.
        path: PathBuf,
        /// What was read and dropped.
        report: DatasetReport,
        /// Requests the kept entries make.
        available: u64,
        /// Requests asked for.
        requests: u64,
    },
}

/// A run's plans, and what planning read from a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    /// One plan per request, by id.
    pub requests: Vec<RequestPlan>,
    /// Entries read, kept and dropped, for a dataset workload.
    pub dataset: Option<DatasetReport>,
}

/// One request's messages before the validation task and the shared
/// prefix are added.
pub(crate) struct Draft {
    /// What the request adds to its conversation.
    pub(crate) messages: Vec<Message>,
    /// The planned output length, before the workload's cap.
    pub(crate) planned_max: Option<u32>,
    pub(crate) turn: Option<Turn>,
}

/// Plans `count` requests for `workload` from `seed`.
///
/// ```
/// use llmperf::{workload::plan_requests, Tokenizer, Workload};
/// let workload = Workload::token_lengths(100, 10, 20, 5);
/// let a = plan_requests(&workload, true, 3, 7, Tokenizer::bundled()).unwrap();
/// let b = plan_requests(&workload, true, 3, 7, Tokenizer::bundled()).unwrap();
/// assert_eq!(a, b);
/// assert!(a.iter().all(|plan| plan.task.is_some()));
/// ```
pub fn plan_requests(
    workload: &Workload,
    validate: bool,
    count: u64,
    seed: u64,
    tokenizer: &Tokenizer,
) -> Result<Vec<RequestPlan>, WorkloadError> {
    plan_workload(
        workload,
        validate,
        count,
        seed,
        crate::shard::WHOLE,
        tokenizer,
    )
    .map(|plan| plan.requests)
}

/// [`plan_requests`], with the dataset's report of entries kept and dropped.
pub fn plan_workload(
    workload: &Workload,
    validate: bool,
    count: u64,
    seed: u64,
    shard: Shard,
    tokenizer: &Tokenizer,
) -> Result<WorkloadPlan, WorkloadError> {
    let (planner, dataset) = Planner::new(workload, validate, count, seed, shard, tokenizer)?;
    Ok(WorkloadPlan {
        requests: planner.collect(),
        dataset,
    })
}

/// Appends a validation instruction to the last user message (on a line of
/// its own), or sends it as a new user message when there is none.
fn append_instruction(messages: &mut Vec<Message>, instruction: &str) {
    match messages
        .iter_mut()
        .rev()
        .find(|message| message.role == Role::User)
    {
        Some(message) if message.content.is_empty() => message.content = instruction.to_string(),
        Some(message) => {
            message.content.push('\n');
            message.content.push_str(instruction);
        }
        None => messages.push(Message::user(instruction)),
    }
}

/// A length from N(mean, stddev), at least 1.
fn draw_length(rng: &mut ChaCha8Rng, mean: u32, stddev: u32) -> u32 {
    if stddev == 0 {
        return mean.max(1);
    }
    match Normal::new(f64::from(mean), f64::from(stddev)) {
        Ok(normal) => normal.sample(rng).round().max(1.0) as u32,
        Err(_) => mean.max(1),
    }
}

/// Tokens a validated request's `max_tokens` leaves beyond its answer's
/// own (a preamble, a line break).
pub const VALIDATION_ROOM_TOKENS: u32 = 8;

/// The least `max_tokens` a validated request is sent: its answer's tokens
/// and [`VALIDATION_ROOM_TOKENS`].
pub fn answer_room(task: &Task, tokenizer: &Tokenizer) -> u32 {
    (tokenizer.count(&task.answer()) as u32).saturating_add(VALIDATION_ROOM_TOKENS)
}

/// The classic prompt: `min..=max` random sonnet lines, asking for `req` back.
fn lines_prompt(rng: &mut ChaCha8Rng, min: u32, max: u32, req: u32) -> String {
    let lines = corpus::sonnet_lines();
    let count = rng.gen_range(min..=max.max(min));
    let mut prompt = format!(
        "Randomly stream lines from the following text. Write {req} lines back, one per line.\n\n"
    );
    for _ in 0..count {
        prompt.push_str(lines[rng.gen_range(0..lines.len())]);
        prompt.push('\n');
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_same_seed_gives_the_same_plans_and_another_seed_does_not() {
        let workload = Workload::token_lengths(300, 50, 40, 10);
        let tokenizer = Tokenizer::bundled();
        let a = plan_requests(&workload, false, 20, 1, tokenizer).unwrap();
        assert_eq!(
            a,
            plan_requests(&workload, false, 20, 1, tokenizer).unwrap()
        );
        assert_ne!(
            a,
            plan_requests(&workload, false, 20, 2, tokenizer).unwrap()
        );
    }

    #[test]
    fn turning_validation_on_keeps_every_length_and_text() {
        let workload = Workload::token_lengths(300, 50, 40, 10);
        let tokenizer = Tokenizer::bundled();
        let plain = plan_requests(&workload, false, 10, 1, tokenizer).unwrap();
        let validated = plan_requests(&workload, true, 20, 1, tokenizer).unwrap();
        for (a, b) in plain.iter().zip(&validated) {
            assert_eq!(a.max_tokens, b.max_tokens);
            assert!(b.prompt.starts_with(&a.prompt[..a.prompt.len() / 2]));
        }
    }

    #[test]
    fn short_prompts_are_corpus_text_not_empty() {
        let workload = Workload::token_lengths(8, 0, 5, 0);
        let plans = plan_requests(&workload, false, 5, 1, Tokenizer::bundled()).unwrap();
        for plan in &plans {
            assert!((6..=10).contains(&plan.input_tokens_client), "{plan:?}");
        }
    }

    #[test]
    fn token_length_prompts_have_about_the_drawn_length() {
        let workload = Workload::token_lengths(550, 0, 150, 0);
        let plans = plan_requests(&workload, false, 10, 3, Tokenizer::bundled()).unwrap();
        for plan in &plans {
            let diff = (i64::from(plan.input_tokens_client) - 550).abs();
            assert!(diff <= 3, "prompt of {} tokens", plan.input_tokens_client);
            assert_eq!(plan.max_tokens, Some(150));
        }
    }

    #[test]
    fn token_lengths_follow_the_normal_distribution() {
        let workload = Workload::token_lengths(550, 150, 150, 80);
        let plans = plan_requests(&workload, false, 400, 9, Tokenizer::bundled()).unwrap();
        let outputs: Vec<f64> = plans
            .iter()
            .map(|p| f64::from(p.max_tokens.unwrap_or(0)))
            .collect();
        let mean = outputs.iter().sum::<f64>() / outputs.len() as f64;
        // Standard error of the mean is 80/sqrt(400) = 4 (the clamp at 1 adds a little).
        assert!((mean - 150.0).abs() < 16.0, "mean output {mean}");
    }

    #[test]
    fn validated_plans_carry_distinct_numbers_in_their_prompts() {
        let plans = plan_requests(
            &Workload::lines(2, 5, 3),
            true,
            200,
            5,
            Tokenizer::bundled(),
        )
        .unwrap();
        let numbers: HashSet<u64> = plans
            .iter()
            .filter_map(|p| p.task.as_ref())
            .map(|t| t.number)
            .collect();
        assert_eq!(numbers.len(), 200);
        for plan in &plans {
            let task = plan.task.as_ref().expect("validated");
            assert_eq!(Task::parse(&plan.prompt).as_ref(), Some(task));
        }
    }

    #[test]
    fn max_tokens_caps_the_drawn_output_length() {
        let workload = Workload::token_lengths(50, 0, 300, 0).max_tokens(100);
        let plans = plan_requests(&workload, false, 3, 1, Tokenizer::bundled()).unwrap();
        assert!(plans.iter().all(|p| p.max_tokens == Some(100)));
    }
    #[test]
    fn a_plain_prompt_is_one_user_message_and_its_own_prompt_text() {
        let plans =
            plan_requests(&Workload::lines(2, 4, 1), true, 3, 1, Tokenizer::bundled()).unwrap();
        for plan in &plans {
            assert_eq!(plan.messages.len(), 1);
            assert_eq!(plan.messages[0].role, Role::User);
            assert_eq!(plan.prompt, plan.messages[0].content);
            assert_eq!(
                plan.input_tokens_client as usize,
                Tokenizer::bundled().count(&plan.prompt)
            );
            assert_eq!(plan.turn, None);
        }
    }

    #[test]
    fn the_shared_prefix_has_the_exact_length_and_is_the_same_for_every_request() {
        let tokenizer = Tokenizer::bundled();
        for tokens in [1, 37, 1000] {
            let workload = Workload::token_lengths(80, 20, 10, 0).shared_prefix(tokens);
            let plans = plan_requests(&workload, true, 6, 4, tokenizer).unwrap();
            let prefix = &plans[0].messages[0];
            assert_eq!(prefix.role, Role::System);
            assert_eq!(tokenizer.count(&prefix.content), tokens as usize);
            for plan in &plans {
                assert_eq!(&plan.messages[0], prefix);
                assert_eq!(plan.messages.len(), 2, "the prefix, then the prompt");
                assert!(plan
                    .prompt
                    .starts_with(&format!("System: {}", prefix.content)));
                let task = plan.task.as_ref().expect("validated");
                assert!(plan.messages[1].content.ends_with(&task.instruction()));
            }
            // Its own random stream: the prompts are those of a run without it.
            let plain = plan_requests(
                &Workload::token_lengths(80, 20, 10, 0),
                true,
                6,
                4,
                tokenizer,
            )
            .unwrap();
            for (with, without) in plans.iter().zip(&plain) {
                assert_eq!(with.messages[1], without.messages[0]);
                assert_eq!(
                    with.input_tokens_client,
                    without.input_tokens_client + tokens
                );
            }
        }
        let other_seed = plan_requests(
            &Workload::token_lengths(80, 20, 10, 0).shared_prefix(50),
            false,
            1,
            5,
            tokenizer,
        )
        .unwrap();
        let seed_4 = plan_requests(
            &Workload::token_lengths(80, 20, 10, 0).shared_prefix(50),
            false,
            1,
            4,
            tokenizer,
        )
        .unwrap();
        assert_ne!(other_seed[0].messages[0], seed_4[0].messages[0]);
    }

    #[test]
    fn generated_conversations_are_consecutive_turns_with_the_prefix_on_the_first() {
        let workload = Workload::token_lengths(60, 0, 10, 0)
            .shared_prefix(20)
            .multi_turn(3);
        let plans = plan_requests(&workload, true, 7, 2, Tokenizer::bundled()).unwrap();
        let turns: Vec<(u64, u32)> = plans
            .iter()
            .map(|p| p.turn.map(|t| (t.conversation, t.index)).expect("a turn"))
            .collect();
        assert_eq!(
            turns,
            [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
        );
        for plan in &plans {
            let roles: Vec<Role> = plan.messages.iter().map(|m| m.role).collect();
            match plan.turn.map(|t| t.index) {
                Some(0) => assert_eq!(roles, [Role::System, Role::User]),
                _ => assert_eq!(roles, [Role::User], "only the turn's new message"),
            }
            let task = plan.task.as_ref().expect("validated");
            assert_eq!(Task::parse(&plan.prompt).as_ref(), Some(task));
        }
    }

    /// A JSONL dataset in a temp dir.
    fn jsonl(lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prompts.jsonl");
        std::fs::write(&path, lines.join("\n")).expect("write");
        (dir, path)
    }

    #[test]
    fn dataset_plans_keep_the_entries_messages_and_max_tokens_and_validate_the_last_user_message() {
        let (_dir, path) = jsonl(&[
            r#"{"messages": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}], "max_tokens": 50}"#,
        ]);
        let workload = Workload::dataset(crate::spec::Dataset::jsonl(&path)).max_tokens(40);
        let plan = &plan_requests(&workload, true, 1, 1, Tokenizer::bundled()).unwrap()[0];
        let task = plan.task.as_ref().expect("validated");
        assert_eq!(plan.messages.len(), 4);
        assert_eq!(
            plan.messages[1].content, "Q1",
            "earlier user turns are left alone"
        );
        assert_eq!(
            plan.messages[3].content,
            format!("Q2\n{}", task.instruction())
        );
        assert_eq!(plan.max_tokens, Some(40), "the workload's cap applies");
        assert_eq!(
            plan.input_tokens_client,
            count_tokens(&plan.messages, Tokenizer::bundled())
        );
        let report = plan_workload(
            &workload,
            false,
            1,
            1,
            crate::shard::WHOLE,
            Tokenizer::bundled(),
        )
        .unwrap()
        .dataset
        .expect("a dataset report");
        assert_eq!((report.entries, report.kept), (1, 1));
    }

    #[test]
    fn a_bad_dataset_is_an_error_not_a_panic() {
        let (_dir, path) = jsonl(&[r#"{"prompt": "ok"}"#, "not json"]);
        let workload = Workload::dataset(crate::spec::Dataset::jsonl(&path));
        let error = plan_requests(&workload, false, 1, 1, Tokenizer::bundled()).unwrap_err();
        assert!(
            matches!(error, WorkloadError::Parse { line: 2, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn shards_deal_out_a_dataset_and_never_share_a_number_or_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        let lines: String = (0..12)
            .map(|i| format!("{{\"prompt\": \"entry {i}\"}}\n"))
            .collect();
        std::fs::write(&path, lines).unwrap();
        let dataset = Workload::dataset(crate::spec::Dataset::jsonl(&path));
        let plan = |workload: &Workload, index: u32, count: u64| {
            plan_workload(
                workload,
                true,
                count,
                7,
                Shard { index, count: 4 },
                Tokenizer::bundled(),
            )
            .unwrap()
            .requests
        };
        let shards: Vec<Vec<RequestPlan>> = (0..4).map(|i| plan(&dataset, i, 3)).collect();
        let entries: HashSet<String> = shards
            .iter()
            .flatten()
            .map(|p| {
                p.messages[0]
                    .content
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(entries.len(), 12, "every entry once over the shards");
        // A shard asking for more than its dealt share runs out.
        assert!(plan_workload(
            &dataset,
            false,
            4,
            7,
            Shard { index: 0, count: 4 },
            Tokenizer::bundled()
        )
        .is_err());

        let generated = Workload::lines(2, 5, 3);
        let shards: Vec<Vec<RequestPlan>> = (0..4).map(|i| plan(&generated, i, 25)).collect();
        let ids: HashSet<u64> = shards.iter().flatten().map(|p| p.id).collect();
        assert_eq!(ids, (0..100).collect::<HashSet<u64>>());
        let numbers: HashSet<u64> = shards
            .iter()
            .flatten()
            .map(|p| p.task.as_ref().unwrap().number)
            .collect();
        assert_eq!(numbers.len(), 100, "numbers distinct across shards");
        let prompts: HashSet<&str> = shards.iter().flatten().map(|p| p.prompt.as_str()).collect();
        assert_eq!(prompts.len(), 100);
        // A shared prefix is shared by every shard.
        let prefixed = Workload::lines(2, 5, 3).shared_prefix(40);
        let prefixes: HashSet<String> = (0..4)
            .map(|i| plan(&prefixed, i, 2)[0].messages[0].content.clone())
            .collect();
        assert_eq!(prefixes.len(), 1);
        // Shard 0 of 1 is the unsharded plan.
        assert_eq!(
            plan_workload(
                &generated,
                true,
                25,
                7,
                crate::shard::WHOLE,
                Tokenizer::bundled()
            )
            .unwrap()
            .requests,
            plan_requests(&generated, true, 25, 7, Tokenizer::bundled()).unwrap()
        );
    }
}
