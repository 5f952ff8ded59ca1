//! Plans a workload's requests one at a time, in plan order.
//!
//! A [`Planner`] holds what every request draws from (the random streams,
//! the corpus, a dataset, the shared prefix) and makes the next request
//! when asked, so a run keeps only the requests it is about to send: a
//! million planned requests cost no more memory than ten. The plans are
//! the same, request for request, as planning them all at once
//! ([`super::plan_workload`]).

use std::sync::{Arc, Mutex, PoisonError};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::corpus::CorpusTokens;
use super::dataset::{DatasetDrafts, DatasetReport};
use super::message::{count_tokens, flatten, Message};
use super::tokenizer::Tokenizer;
use super::{
    answer_room, append_instruction, draw_length, lines_prompt, Draft, RequestPlan, Turn,
    WorkloadError,
};
use crate::shard::Shard;
use crate::spec::{PromptScheme, Workload};
use crate::validate::{Direction, Reply, Task};

/// Runs up to this many validated requests draw five- and six-digit
/// numbers; larger ones draw from a range a hundred times wider.
const SIX_DIGIT_TASKS: u64 = 500_000;

/// Validation number → request id, of every request planned so far: what
/// a response that states another request's number is checked against.
/// The planner adds to it as it plans; readers may be on other threads.
#[derive(Debug, Clone, Default)]
pub struct Numbers(Arc<Mutex<std::collections::HashMap<u64, u64>>>);

impl Numbers {
    /// The request that was given `number`, if one was.
    pub fn request_of(&self, number: u64) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&number)
            .copied()
    }

    /// How many numbers were given.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no number was given.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that request `id` was given `number`.
    pub fn insert(&self, number: u64, id: u64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(number, id);
    }
}

impl FromIterator<(u64, u64)> for Numbers {
    /// Numbers of `(number, request id)` pairs.
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(pairs: I) -> Numbers {
        Numbers(Arc::new(Mutex::new(pairs.into_iter().collect())))
    }
}

/// Makes a workload's requests one at a time from the seed: see the
/// [module](self).
pub struct Planner<'t> {
    workload: Workload,
    shard: Shard,
    tokenizer: &'t Tokenizer,
    /// Output and input lengths (stream 0).
    lengths: ChaCha8Rng,
    /// Generated text (stream 1).
    text: ChaCha8Rng,
    tasks: Option<Tasks>,
    corpus: Option<CorpusTokens<'t>>,
    dataset: Option<DatasetDrafts>,
    prefix: Option<String>,
    numbers: Numbers,
    /// The next request's index, and how many are planned.
    next: u64,
    count: u64,
}

impl<'t> Planner<'t> {
    /// A planner of `count` requests of `workload` from `seed`, for `shard`
    /// of the run, with a dataset's report of entries kept and dropped.
    /// Opening a dataset is the only step that can fail, and it happens here.
    pub fn new(
        workload: &Workload,
        validate: bool,
        count: u64,
        seed: u64,
        shard: Shard,
        tokenizer: &'t Tokenizer,
    ) -> Result<(Planner<'t>, Option<DatasetReport>), WorkloadError> {
        // Separate streams for lengths, text, validation numbers, dataset
        // sampling and the shared prefix, so that turning validation on, or
        // asking for more requests, leaves the other draws as they were. A
        // shard draws its own (shard 0 the run's), except the dataset's
        // order and the shared prefix, which every shard shares.
        let shared = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(n);
            rng
        };
        let stream = |n: u64| shared(shard.stream(n));
        let validation_only = workload.prompts == PromptScheme::ValidationOnly;
        let tasks = (validate || validation_only).then(|| Tasks {
            rng: stream(2),
            largest: if count.saturating_mul(u64::from(shard.count)) <= SIX_DIGIT_TASKS {
                999_999
            } else {
                99_999_999
            },
            // A correctness run asks for the number alone; any other
            // prompt asks for it to open a reply that goes on with the
            // prompt's own task.
            reply: if validation_only {
                Reply::Only
            } else {
                Reply::First
            },
            shard,
        });
        // Tokenizing the corpus takes a moment: only when something needs it.
        let needs_corpus = matches!(workload.prompts, PromptScheme::TokenLengths { .. })
            || workload.shared_prefix_tokens.is_some();
        let corpus = needs_corpus.then(|| CorpusTokens::new(tokenizer));
        let (dataset, report) = match &workload.prompts {
            PromptScheme::Dataset(dataset) => {
                let (drafts, report) = DatasetDrafts::open(
                    dataset,
                    workload.turns,
                    count,
                    (shard, &mut shared(3), stream(3)),
                    tokenizer,
                )?;
                (Some(drafts), Some(report))
            }
            _ => (None, None),
        };
        let prefix = match (&corpus, workload.shared_prefix_tokens) {
            (Some(corpus), Some(tokens)) => Some(corpus.exact_text(&mut shared(4), tokens)),
            _ => None,
        };
        let planner = Planner {
            workload: workload.clone(),
            shard,
            tokenizer,
            lengths: stream(0),
            text: stream(1),
            tasks,
            corpus,
            dataset,
            prefix,
            numbers: Numbers::default(),
            next: 0,
            count,
        };
        Ok((planner, report))
    }

    /// The validation numbers of the requests planned so far (shared:
    /// it fills as planning goes on).
    pub fn numbers(&self) -> Numbers {
        self.numbers.clone()
    }

    /// Requests this planner makes in all.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// What request `index` adds to its conversation, before the
    /// validation task and the shared prefix.
    fn draft(&mut self, index: u64, task: Option<&Task>) -> Option<Draft> {
        if let Some(dataset) = &mut self.dataset {
            return dataset.next(self.tokenizer);
        }
        let workload = &self.workload;
        let (prompt, planned_max) = match &workload.prompts {
            PromptScheme::Lines {
                min_lines,
                max_lines,
                req_lines,
            } => (
                lines_prompt(&mut self.text, *min_lines, *max_lines, *req_lines),
                None,
            ),
            PromptScheme::TokenLengths {
                mean_input_tokens,
                stddev_input_tokens,
                mean_output_tokens,
                stddev_output_tokens,
            } => {
                let input =
                    draw_length(&mut self.lengths, *mean_input_tokens, *stddev_input_tokens);
                let output = draw_length(
                    &mut self.lengths,
                    *mean_output_tokens,
                    *stddev_output_tokens,
                );
                // The validation instruction is part of the drawn length.
                let reserved = task.map_or(0, |task| {
                    self.tokenizer.count(&task.instruction()) as u32 + 1
                });
                let body = match &self.corpus {
                    Some(corpus) => corpus.text(&mut self.text, input.saturating_sub(reserved)),
                    None => String::new(),
                };
                (body, Some(output))
            }
            PromptScheme::ValidationOnly | PromptScheme::Dataset(_) => (String::new(), None),
        };
        let turns = u64::from(workload.turns.max(1));
        Some(Draft {
            messages: vec![Message::user(prompt)],
            planned_max,
            turn: (turns > 1).then_some(Turn {
                conversation: index / turns,
                index: (index % turns) as u32,
            }),
        })
    }
}

impl Iterator for Planner<'_> {
    type Item = RequestPlan;

    /// The next request in plan order; `None` after `count` of them (or
    /// when an ordered dataset runs out, which opening it rules out).
    fn next(&mut self) -> Option<RequestPlan> {
        if self.next >= self.count {
            return None;
        }
        let index = self.next;
        let numbers = &self.numbers;
        let task = self.tasks.as_mut().map(|tasks| tasks.next(numbers));
        let draft = self.draft(index, task.as_ref())?;
        self.next += 1;
        let id = self.shard.request_id(index);
        let mut messages = draft.messages;
        if let Some(task) = &task {
            append_instruction(&mut messages, &task.instruction());
            self.numbers.insert(task.number, id);
        }
        let opens_conversation = draft.turn.is_none_or(|turn| turn.index == 0);
        if let (Some(prefix), true) = (&self.prefix, opens_conversation) {
            messages.insert(0, Message::system(prefix.clone()));
        }
        let max_tokens = match (draft.planned_max, self.workload.max_tokens) {
            (Some(planned), Some(cap)) => Some(planned.min(cap)),
            (planned, cap) => planned.or(cap),
        };
        // A validated request gets room for its answer, whatever length
        // was drawn or capped.
        let max_tokens = match &task {
            Some(task) => max_tokens.map(|m| m.max(answer_room(task, self.tokenizer))),
            None => max_tokens,
        };
        Some(RequestPlan {
            id,
            prompt: flatten(&messages),
            input_tokens_client: count_tokens(&messages, self.tokenizer),
            messages,
            max_tokens,
            ignore_eos: self.workload.ignore_eos,
            task,
            turn: draft.turn.map(|turn| Turn {
                conversation: self.shard.request_id(turn.conversation),
                ..turn
            }),
        })
    }
}

/// Validation tasks with distinct numbers, so a wrong answer names exactly
/// one other request. Numbers start at 10,000 and are never a multiple of
/// 1,000: years and round figures, the numbers text is full of, are never
/// a request's number.
///
/// A shard keeps the numbers that leave its index when divided by the
/// shard count, so no two shards share one (see [`crate::shard`]).
struct Tasks {
    rng: ChaCha8Rng,
    largest: u64,
    reply: Reply,
    shard: Shard,
}

impl Tasks {
    /// A task whose number is none of `given`'s.
    fn next(&mut self, given: &Numbers) -> Task {
        loop {
            let number = self.rng.gen_range(10_000..=self.largest);
            if !crate::validate::could_be_task_number(number)
                || !self.shard.owns_number(number)
                || given.request_of(number).is_some()
            {
                continue;
            }
            let direction = if self.rng.gen_bool(0.5) {
                Direction::DigitsToWords
            } else {
                Direction::WordsToDigits
            };
            return Task {
                number,
                direction,
                reply: self.reply,
            };
        }
    }
}
