//! What the built-in endpoint "generates": the answer to a validation task,
//! then filler words, as a list of token texts.
//!
//! Filler words are chosen so that the client's tokenizer agrees with the
//! server's `completion_tokens`: each is exactly one `cl100k_base` token with
//! its leading space, and the tokenizer's pre-split puts every ` word` in a
//! piece of its own, so n words are exactly n tokens.

use rand::Rng;

use crate::validate::Task;
use crate::workload::tokenizer::Tokenizer;

/// Common English words, each with a leading space, each exactly one
/// `cl100k_base` token, and none a number word (" one" after an answer of
/// "forty" would read as 41); both checked by tests.
#[rustfmt::skip]
pub(crate) const VOCABULARY: &[&str] = &[
    " the", " of", " and", " to", " in", " a", " is", " that", " for", " it", " as", " was",
    " with", " be", " by", " on", " not", " he", " this", " are", " or", " his", " from", " at",
    " which", " but", " have", " an", " had", " they", " you", " were", " their",
    " all", " we", " can", " her", " has", " there", " been", " if", " more", " when", " will",
    " would", " who", " so", " no", " time", " people", " world", " water", " light", " day",
    " year", " way", " good", " new", " first", " last", " long", " great", " little", " own",
    " other", " old", " right", " big", " high", " small", " large", " next", " early",
    " young", " important", " few", " public", " same", " able", " house", " city", " river",
    " tree", " road", " book", " story", " music", " color", " food", " night", " morning",
    " song", " school", " family", " friend", " home", " place", " hand", " part", " child",
    " eye", " woman", " man", " life", " work", " state", " system", " program", " question",
    " number", " point", " group", " problem", " fact", " country", " week", " company",
    " case", " word", " line", " name", " side", " head", " market", " table", " field",
    " door", " garden", " window", " letter", " paper", " summer", " winter", " spring", " sea",
    " sun", " moon", " star", " stone", " fire", " wind", " rain", " snow", " green", " blue",
    " red", " white", " black", " under", " over", " after", " before", " between", " through",
    " during", " without", " again", " always", " never", " often", " still", " together",
    " very",
];

/// Words the server counts as one token each that `cl100k_base` splits
/// into several (checked by a test), none a number word: what a model with
/// another vocabulary streams, one token per event.
#[rustfmt::skip]
pub(crate) const LONG_WORDS: &[&str] = &[
    " photosynthesis", " bioluminescence", " lighthouses", " quixotically",
    " zephyrlike", " xylophonist", " juxtapositional", " perspicacious",
    " sesquipedalian", " antediluvian", " mellifluously", " quintessential",
];

/// Most tokens one response generates: bounds the memory and time a single
/// request can take (every event is formatted up front).
pub(crate) const MAX_OUTPUT_TOKENS: u32 = 131_072;

/// Why generation stopped, as OpenAI's `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinishReason {
    /// Hit `max_tokens`.
    Length,
    /// Finished the answer (an end-of-sequence token).
    Stop,
}

impl FinishReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop => "stop",
        }
    }
}

/// The tokens of one response, each as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    /// Streamed as `reasoning_content` before the content.
    pub(crate) reasoning: Vec<String>,
    /// The answer (if any), then filler.
    pub(crate) content: Vec<String>,
    pub(crate) finish_reason: FinishReason,
}

/// What to generate for one request.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Content tokens at most (already capped at [`MAX_OUTPUT_TOKENS`]).
    pub(crate) max_tokens: u32,
    /// Reasoning tokens before the content.
    pub(crate) reasoning_tokens: u32,
    /// The validation task whose answer the content starts with.
    pub(crate) task: Option<Task>,
    /// Keep generating filler after the answer up to `max_tokens`
    /// (`ignore_eos` or `min_tokens` was set), as a real server does when it
    /// ignores the end-of-sequence token.
    pub(crate) fill: bool,
    /// Filler from [`LONG_WORDS`]: one token each for the server, several
    /// for `cl100k_base` (a model with another vocabulary).
    pub(crate) long_words: bool,
}

/// Generates the tokens of one response.
pub(crate) fn generate(spec: &Spec, rng: &mut impl Rng) -> Output {
    let max = spec.max_tokens as usize;
    let reasoning = filler(spec.reasoning_tokens as usize, spec.long_words, rng);
    let Some(task) = &spec.task else {
        return Output {
            reasoning,
            content: filler(max, spec.long_words, rng),
            finish_reason: FinishReason::Length,
        };
    };
    let mut content = answer_tokens(&task.answer());
    if content.len() >= max {
        // Truncated inside the answer (or exactly at its end): the server ran
        // out of budget before it could emit end-of-sequence.
        content.truncate(max);
        return Output {
            reasoning,
            content,
            finish_reason: FinishReason::Length,
        };
    }
    // Asked for the number alone, the answer ends there; asked for it
    // first, the reply goes on with the prompt's task up to the limit.
    if !spec.fill && task.reply == crate::validate::Reply::Only {
        return Output {
            reasoning,
            content,
            finish_reason: FinishReason::Stop,
        };
    }
    let more = max - content.len();
    content.extend(filler(more, spec.long_words, rng));
    Output {
        reasoning,
        content,
        finish_reason: FinishReason::Length,
    }
}

/// The answer split into its tokens, each decoded on its own (what a real
/// server streams).
fn answer_tokens(answer: &str) -> Vec<String> {
    let tokenizer = Tokenizer::bundled();
    tokenizer
        .encode(answer)
        .into_iter()
        .map(|id| tokenizer.decode(&[id]))
        .collect()
}

fn filler(n: usize, long_words: bool, rng: &mut impl Rng) -> Vec<String> {
    let words = if long_words { LONG_WORDS } else { VOCABULARY };
    (0..n)
        .map(|_| words[rng.gen_range(0..words.len())].to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::validate::Direction;

    #[test]
    fn every_vocabulary_word_is_one_token_and_words_add_up() {
        let tokenizer = Tokenizer::bundled();
        let not_one: Vec<_> = VOCABULARY
            .iter()
            .filter(|word| tokenizer.count(word) != 1)
            .collect();
        assert!(not_one.is_empty(), "not a single token: {not_one:?}");
        // Every word next to every other word, and one long run of them.
        let all: String = VOCABULARY.concat();
        assert_eq!(tokenizer.count(&all), VOCABULARY.len());
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [0, 1, 2, 17, 500] {
            let text = filler(n, false, &mut rng).concat();
            assert_eq!(tokenizer.count(&text), n, "{text:?}");
        }
    }

    #[test]
    fn every_long_word_is_several_tokens_for_the_client() {
        let tokenizer = Tokenizer::bundled();
        for word in LONG_WORDS {
            let tokens = tokenizer.count(word);
            assert!(
                (2..=4).contains(&tokens),
                "{word:?} is {tokens} cl100k_base tokens"
            );
        }
        assert_eq!(
            crate::validate::numbers_in(&LONG_WORDS.concat()),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn filler_never_changes_the_number_a_checker_reads() {
        assert_eq!(
            crate::validate::numbers_in(&VOCABULARY.concat()),
            Vec::<u64>::new()
        );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for number in [40, 100, 1_000, 48_213, 7] {
            let task = Task {
                number,
                direction: Direction::DigitsToWords,
                reply: crate::validate::Reply::Only,
            };
            let filled = generate(&spec(200, Some(task.clone()), true), &mut rng);
            let text = filled.content.concat();
            assert_eq!(crate::validate::numbers_in(&text), [number], "{text}");
        }
    }

    fn spec(max_tokens: u32, task: Option<Task>, fill: bool) -> Spec {
        Spec {
            max_tokens,
            reasoning_tokens: 0,
            task,
            fill,
            long_words: false,
        }
    }

    #[test]
    fn without_a_task_fills_to_max_tokens() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let output = generate(&spec(40, None, false), &mut rng);
        assert_eq!(output.content.len(), 40);
        assert_eq!(output.finish_reason, FinishReason::Length);
        let again = generate(&spec(40, None, false), &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(output, again, "the same seed gives the same words");
    }

    #[test]
    fn a_task_is_answered_then_stops_or_fills() {
        let task = Task {
            number: 4821,
            direction: Direction::DigitsToWords,
            reply: crate::validate::Reply::Only,
        };
        let answer = task.answer();
        let answer_len = Tokenizer::bundled().count(&answer);
        let mut rng = ChaCha8Rng::seed_from_u64(1);

        let stop = generate(&spec(100, Some(task.clone()), false), &mut rng);
        assert_eq!(stop.content.concat(), answer);
        assert_eq!(stop.finish_reason, FinishReason::Stop);

        let filled = generate(&spec(100, Some(task.clone()), true), &mut rng);
        assert_eq!(filled.content.len(), 100);
        assert!(filled.content.concat().starts_with(&answer));
        assert_eq!(filled.finish_reason, FinishReason::Length);

        let short = generate(&spec(2, Some(task), false), &mut rng);
        assert!(answer_len > 2);
        assert_eq!(short.content.len(), 2);
        assert!(answer.starts_with(&short.content.concat()));
        assert_eq!(short.finish_reason, FinishReason::Length);
    }
}
