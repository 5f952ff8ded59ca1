//! Token counting on the client side.
//!
//! The server's own `usage` counts are preferred; this tokenizer gives the
//! client's count (kept beside the server's so a mismatch can be flagged) and
//! sizes prompts for the token-length workload. The bundled tokenizer is
//! OpenAI's `cl100k_base` BPE, shipped inside the `tiktoken-rs` crate, so no
//! network is needed at run time. A Hugging Face `tokenizer.json` for the
//! model under test can be supplied instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Why a tokenizer could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The `tokenizer.json` file could not be read or parsed.
    #[error("cannot load tokenizer file {path}: {message} (pass a Hugging Face tokenizer.json, or omit it to use the bundled cl100k_base)")]
    Load {
        /// The file that was given.
        path: PathBuf,
        /// What the tokenizers crate said.
        message: String,
    },
}

/// Longest run of whitespace, or of anything else, counted in one piece
/// (see [`Tokenizer::count`]).
pub const LONGEST_RUN_BYTES: usize = 256;

/// Byte ranges of the runs longer than [`LONGEST_RUN_BYTES`] that are all
/// whitespace or all not whitespace, in order.
fn long_runs(text: &str) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut run_start = 0;
    let mut run_space = None;
    for (at, c) in text.char_indices() {
        let space = c.is_whitespace();
        if run_space != Some(space) {
            if at - run_start > LONGEST_RUN_BYTES {
                runs.push((run_start, at));
            }
            run_start = at;
            run_space = Some(space);
        }
    }
    if text.len() - run_start > LONGEST_RUN_BYTES {
        runs.push((run_start, text.len()));
    }
    runs
}

/// Longest piece whose count [`Tokenizer::count_piece`] remembers.
const REMEMBERED_PIECE_BYTES: usize = 32;
/// Most pieces remembered (about 4 MB at most); the memory starts over
/// when full.
const REMEMBERED_PIECES: usize = 65_536;

/// A tokenizer that counts, encodes and decodes text.
pub struct Tokenizer {
    name: String,
    inner: Inner,
    /// Counts of short pieces already seen ([`Tokenizer::count_piece`]).
    pieces: Mutex<HashMap<Box<str>, u32>>,
}

enum Inner {
    Bpe(&'static tiktoken_rs::CoreBPE),
    HuggingFace(Box<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("name", &self.name)
            .finish()
    }
}

impl Tokenizer {
    /// The bundled `cl100k_base` tokenizer, loaded once per process.
    ///
    /// ```
    /// let tokenizer = llmperf::Tokenizer::bundled();
    /// assert_eq!(tokenizer.count("hello world"), 2);
    /// ```
    pub fn bundled() -> &'static Tokenizer {
        static BUNDLED: OnceLock<Tokenizer> = OnceLock::new();
        BUNDLED.get_or_init(|| Tokenizer {
            name: "cl100k_base".to_string(),
            inner: Inner::Bpe(tiktoken_rs::cl100k_base_singleton()),
            pieces: Mutex::default(),
        })
    }

    /// Loads a Hugging Face `tokenizer.json` from disk (no network).
    pub fn from_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|error| TokenizerError::Load {
                path: path.to_path_buf(),
                message: error.to_string(),
            })?;
        Ok(Tokenizer {
            name: path.display().to_string(),
            inner: Inner::HuggingFace(Box::new(tokenizer)),
            pieces: Mutex::default(),
        })
    }

    /// The tokenizer of `path`, loaded once per process and shared after
    /// (a run's records are finished on another thread, and a process may
    /// run many benchmarks with the same file).
    pub fn shared(path: &Path) -> Result<&'static Tokenizer, TokenizerError> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, &'static Tokenizer>>> = OnceLock::new();
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tokenizer) = loaded.get(path) {
            return Ok(tokenizer);
        }
        // Leaked on purpose: one tokenizer per distinct file for the process's life.
        let tokenizer: &'static Tokenizer = Box::leak(Box::new(Tokenizer::from_file(path)?));
        loaded.insert(path.to_path_buf(), tokenizer);
        Ok(tokenizer)
    }

    /// A short name for results: `cl100k_base` or the file's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match &self.inner {
            Inner::Bpe(bpe) => bpe.encode_ordinary(text),
            Inner::HuggingFace(tokenizer) => tokenizer
                .encode(text, false)
                .map(|encoding| encoding.get_ids().to_vec())
                // An encoding failure on odd text is counted as no tokens
                // rather than aborting a run; the server's count still stands.
                .unwrap_or_default(),
        }
    }

    /// Number of tokens in `text`, in time linear in its length whatever it
    /// holds: a run of more than [`LONGEST_RUN_BYTES`] bytes without a
    /// change between whitespace and the rest (a 50 MB "word", a megabyte of
    /// spaces, but also a paragraph of a script written without spaces) is
    /// counted in pieces of that size, since a byte-pair merge over one such
    /// piece takes time quadratic in its length. Such runs are estimated (a
    /// piece boundary can split a token: about one token more per 256 bytes
    /// at most); other text is counted exactly.
    ///
    /// ```
    /// let tokenizer = llmperf::Tokenizer::bundled();
    /// let word = "a".repeat(1_000_000);
    /// let started = std::time::Instant::now();
    /// assert!(tokenizer.count(&word) > 1_000);
    /// assert!(started.elapsed() < std::time::Duration::from_secs(20));
    /// ```
    pub fn count(&self, text: &str) -> usize {
        self.count_runs(text)
    }

    /// [`Tokenizer::count`] of one stream event's text: the same figure,
    /// remembered for short pieces, since a stream's events are mostly one
    /// word each and words repeat (a run counts every event of every
    /// response; the byte-pair encoder's regex costs far more than a lookup).
    pub fn count_piece(&self, piece: &str) -> u32 {
        if piece.len() > REMEMBERED_PIECE_BYTES {
            return self.count_runs(piece) as u32;
        }
        let mut pieces = self.pieces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&count) = pieces.get(piece) {
            return count;
        }
        let count = self.count_runs(piece) as u32;
        if pieces.len() >= REMEMBERED_PIECES {
            pieces.clear();
        }
        pieces.insert(piece.into(), count);
        count
    }

    fn count_runs(&self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        let mut total = 0;
        let mut plain_start = 0;
        for (start, end) in long_runs(text) {
            if plain_start < start {
                total += self.encode(&text[plain_start..start]).len();
            }
            let mut piece_start = start;
            while piece_start < end {
                let mut piece_end = (piece_start + LONGEST_RUN_BYTES).min(end);
                while !text.is_char_boundary(piece_end) {
                    piece_end += 1;
                }
                total += self.encode(&text[piece_start..piece_end]).len();
                piece_start = piece_end;
            }
            plain_start = end;
        }
        if plain_start < text.len() {
            total += self.encode(&text[plain_start..]).len();
        }
        total
    }

    /// Text of the given token ids; ids that do not decode are dropped, and
    /// a token that ends inside a UTF-8 character is replaced lossily.
    pub fn decode(&self, ids: &[u32]) -> String {
        match &self.inner {
            Inner::Bpe(bpe) => match bpe.decode_bytes(ids) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => String::new(),
            },
            Inner::HuggingFace(tokenizer) => tokenizer.decode(ids, false).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_tokenizer_counts_known_text() {
        let tokenizer = Tokenizer::bundled();
        assert_eq!(tokenizer.count(""), 0);
        assert_eq!(tokenizer.count("hello world"), 2);
        let ids = tokenizer.encode("From fairest creatures we desire increase,");
        assert_eq!(
            tokenizer.decode(&ids),
            "From fairest creatures we desire increase,"
        );
    }

    #[test]
    fn a_remembered_piece_counts_as_counting_it_afresh() {
        let tokenizer = Tokenizer::bundled();
        let pieces = [
            " hello",
            " hello",
            "",
            " 12345",
            "ü",
            " antidisestablishmentarianism",
            " a much longer piece of text than thirty-two bytes, counted afresh",
        ];
        for round in 0..2 {
            for piece in pieces {
                assert_eq!(
                    tokenizer.count_piece(piece) as usize,
                    tokenizer.count(piece),
                    "{piece:?} in round {round}"
                );
            }
        }
    }

    #[test]
    fn giant_runs_are_counted_in_pieces_and_normal_text_exactly() {
        let tokenizer = Tokenizer::bundled();
        let text =
            "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.";
        assert_eq!(tokenizer.count(text), tokenizer.encode(text).len());
        let long = format!("{text} {} {text}{}", "x".repeat(1000), " ".repeat(600));
        let runs = long_runs(&long);
        assert_eq!(runs.len(), 2, "{runs:?}");
        let expected = tokenizer.encode(&format!("{text} ")).len()
            + (0..1000)
                .step_by(LONGEST_RUN_BYTES)
                .map(|i| tokenizer.count(&"x".repeat((1000 - i).min(LONGEST_RUN_BYTES))))
                .sum::<usize>()
            + tokenizer.encode(&format!(" {text}")).len()
            + (0..600)
                .step_by(LONGEST_RUN_BYTES)
                .map(|i| {
                    tokenizer
                        .encode(&" ".repeat((600 - i).min(LONGEST_RUN_BYTES)))
                        .len()
                })
                .sum::<usize>();
        assert_eq!(tokenizer.count(&long), expected);
        // Multi-byte characters are never cut.
        assert!(tokenizer.count(&"é".repeat(5000)) > 0);
    }

    #[test]
    fn missing_tokenizer_file_is_a_clear_error() {
        let error = Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json"))
            .expect_err("a missing file must not load");
        assert!(error.to_string().contains("/nonexistent/tokenizer.json"));
    }
}
