//! Prompts and lengths, planned before the clock starts.
//!
//! [`plan_requests`] turns a [`Workload`] and a seed into one
//! [`RequestPlan`] per request: the same seed always gives the same prompts,
//! lengths and validation numbers. All tokenizing happens here, before the
//! run, never on the streaming path.

pub mod corpus;
pub mod tokenizer;

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::spec::{PromptScheme, Workload};
use crate::validate::{Direction, Task};
use tokenizer::Tokenizer;

/// One request, fully decided before the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPlan {
    /// Index of the request in the run (0-based).
    pub id: u64,
    /// The prompt (the user message for chat endpoints).
    pub prompt: String,
    /// `max_tokens` to send, if any.
    pub max_tokens: Option<u32>,
    /// Ask the server to ignore EOS (`ignore_eos`, `min_tokens = max_tokens`).
    pub ignore_eos: bool,
    /// The validation task embedded in the prompt, if validated.
    pub task: Option<Task>,
    /// Prompt tokens by the client's tokenizer.
    pub input_tokens_client: u32,
}

/// The preamble of a token-length prompt; the corpus text follows it.
const TOKEN_LENGTH_PREAMBLE: &str =
    "Here are lines of Shakespeare's sonnets. Continue writing lines in the same style.\n\n";

/// Plans `count` requests for `workload` from `seed`.
///
/// ```
/// use llmperf::{workload::plan_requests, Tokenizer, Workload};
/// let workload = Workload::token_lengths(100, 10, 20, 5);
/// let a = plan_requests(&workload, true, 3, 7, Tokenizer::bundled());
/// let b = plan_requests(&workload, true, 3, 7, Tokenizer::bundled());
/// assert_eq!(a, b);
/// assert!(a.iter().all(|plan| plan.task.is_some()));
/// ```
pub fn plan_requests(
    workload: &Workload,
    validate: bool,
    count: u64,
    seed: u64,
    tokenizer: &Tokenizer,
) -> Vec<RequestPlan> {
    // Separate streams for lengths, text and validation numbers, so that
    // turning validation on, or asking for more requests, leaves the other
    // draws of every request as they were.
    let stream = |n: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(n);
        rng
    };
    let (mut lengths, mut text, mut numbers) = (stream(0), stream(1), stream(2));
    let validate = validate || workload.prompts == PromptScheme::ValidationOnly;
    let tasks = if validate {
        distinct_tasks(&mut numbers, count)
    } else {
        Vec::new()
    };
    let corpus = CorpusTokens::new(tokenizer);
    (0..count)
        .map(|id| {
            let task = tasks.get(id as usize).cloned();
            let instruction = task.as_ref().map(Task::instruction);
            let (prompt, planned_max) = match &workload.prompts {
                PromptScheme::Lines {
                    min_lines,
                    max_lines,
                    req_lines,
                } => (
                    lines_prompt(&mut text, *min_lines, *max_lines, *req_lines),
                    None,
                ),
                PromptScheme::TokenLengths {
                    mean_input_tokens,
                    stddev_input_tokens,
                    mean_output_tokens,
                    stddev_output_tokens,
                } => {
                    let input = draw_length(&mut lengths, *mean_input_tokens, *stddev_input_tokens);
                    let output =
                        draw_length(&mut lengths, *mean_output_tokens, *stddev_output_tokens);
                    let reserved = instruction
                        .as_deref()
                        .map_or(0, |text| tokenizer.count(text) as u32 + 1);
                    let body = corpus.text(&mut text, input.saturating_sub(reserved));
                    (body, Some(output))
                }
                PromptScheme::ValidationOnly => (String::new(), None),
            };
            let prompt = match instruction {
                Some(instruction) if prompt.is_empty() => instruction,
                Some(instruction) => format!("{prompt}\n{instruction}"),
                None => prompt,
            };
            let max_tokens = match (planned_max, workload.max_tokens) {
                (Some(planned), Some(cap)) => Some(planned.min(cap)),
                (planned, cap) => planned.or(cap),
            };
            RequestPlan {
                id,
                input_tokens_client: tokenizer.count(&prompt) as u32,
                prompt,
                max_tokens,
                ignore_eos: workload.ignore_eos,
                task,
            }
        })
        .collect()
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

/// Validation tasks with distinct numbers, so a wrong answer names exactly
/// one other request.
fn distinct_tasks(rng: &mut ChaCha8Rng, count: u64) -> Vec<Task> {
    let mut seen = HashSet::new();
    let mut tasks = Vec::with_capacity(count as usize);
    while (tasks.len() as u64) < count {
        let number = rng.gen_range(1_000..=999_999u64);
        if !seen.insert(number) {
            continue;
        }
        let direction = if rng.gen_bool(0.5) {
            Direction::DigitsToWords
        } else {
            Direction::WordsToDigits
        };
        tasks.push(Task { number, direction });
    }
    tasks
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

/// The corpus as tokens, for cutting prompts of an exact token length.
struct CorpusTokens<'t> {
    tokenizer: &'t Tokenizer,
    tokens: Vec<u32>,
    preamble_tokens: u32,
}

impl<'t> CorpusTokens<'t> {
    fn new(tokenizer: &'t Tokenizer) -> Self {
        CorpusTokens {
            tokenizer,
            tokens: tokenizer.encode(&corpus::sonnet_lines().join("\n")),
            preamble_tokens: tokenizer.count(TOKEN_LENGTH_PREAMBLE) as u32,
        }
    }

    /// A prompt of about `length` tokens: the preamble, then corpus text
    /// from a random point (wrapping around); corpus text alone when the
    /// preamble would not fit.
    fn text(&self, rng: &mut ChaCha8Rng, length: u32) -> String {
        if self.tokens.is_empty() || length == 0 {
            return String::new();
        }
        let with_preamble = length > self.preamble_tokens * 2;
        let wanted = if with_preamble {
            length - self.preamble_tokens
        } else {
            length
        } as usize;
        let start = rng.gen_range(0..self.tokens.len());
        let ids: Vec<u32> = self
            .tokens
            .iter()
            .cycle()
            .skip(start)
            .take(wanted)
            .copied()
            .collect();
        let body = self.tokenizer.decode(&ids);
        if with_preamble {
            format!("{TOKEN_LENGTH_PREAMBLE}{body}")
        } else {
            body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plans_and_another_seed_does_not() {
        let workload = Workload::token_lengths(300, 50, 40, 10);
        let tokenizer = Tokenizer::bundled();
        let a = plan_requests(&workload, false, 20, 1, tokenizer);
        assert_eq!(a, plan_requests(&workload, false, 20, 1, tokenizer));
        assert_ne!(a, plan_requests(&workload, false, 20, 2, tokenizer));
    }

    #[test]
    fn turning_validation_on_keeps_every_length_and_text() {
        let workload = Workload::token_lengths(300, 50, 40, 10);
        let tokenizer = Tokenizer::bundled();
        let plain = plan_requests(&workload, false, 10, 1, tokenizer);
        let validated = plan_requests(&workload, true, 20, 1, tokenizer);
        for (a, b) in plain.iter().zip(&validated) {
            assert_eq!(a.max_tokens, b.max_tokens);
            assert!(b.prompt.starts_with(&a.prompt[..a.prompt.len() / 2]));
        }
    }

    #[test]
    fn short_prompts_are_corpus_text_not_empty() {
        let workload = Workload::token_lengths(8, 0, 5, 0);
        let plans = plan_requests(&workload, false, 5, 1, Tokenizer::bundled());
        for plan in &plans {
            assert!((6..=10).contains(&plan.input_tokens_client), "{plan:?}");
        }
    }

    #[test]
    fn token_length_prompts_have_about_the_drawn_length() {
        let workload = Workload::token_lengths(550, 0, 150, 0);
        let plans = plan_requests(&workload, false, 10, 3, Tokenizer::bundled());
        for plan in &plans {
            let diff = (i64::from(plan.input_tokens_client) - 550).abs();
            assert!(diff <= 3, "prompt of {} tokens", plan.input_tokens_client);
            assert_eq!(plan.max_tokens, Some(150));
        }
    }

    #[test]
    fn token_lengths_follow_the_normal_distribution() {
        let workload = Workload::token_lengths(550, 150, 150, 80);
        let plans = plan_requests(&workload, false, 400, 9, Tokenizer::bundled());
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
        );
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
        let plans = plan_requests(&workload, false, 3, 1, Tokenizer::bundled());
        assert!(plans.iter().all(|p| p.max_tokens == Some(100)));
    }
}
