//! Inter-request cross-over validation.
//!
//! Each validated request carries its own random number and asks the model to
//! convert it between digits and English words. The response is then searched,
//! tolerantly, for every number it states:
//!
//! - the request's own number appears → [`Outcome::Pass`];
//! - otherwise a number of another request of the same run appears →
//!   [`Outcome::CrossOver`]: the endpoint delivered someone else's response;
//! - otherwise, when the answer was cut short ([`Ending`]: by its token
//!   limit, or a stream that broke) before it had room for its number, or
//!   inside a number → [`Outcome::Truncated`]: it may have been on its way
//!   to the right number;
//! - otherwise → [`Outcome::Mismatch`]: the model simply got it wrong.
//!
//! In a cut answer the number it ends inside may be incomplete
//! ("forty-eight thousand tw…" on the way to 48,213), so it never counts as
//! another request's: a partial number is not a cross-over. Only the
//! opening of an answer that was asked to open with its number is searched
//! for other requests' numbers ([`CROSS_OVER_WINDOW_BYTES`]): what the reply
//! goes on to say is the model's own text, which may hold any number. Only
//! the first [`VALIDATED_TEXT_BYTES`] of an answer are read at all.
//!
//! The instruction comes in two forms ([`Reply`]): a correctness run asks
//! for the number alone; any other prompt asks for it to open the reply,
//! which then goes on with the prompt's own task, so validating does not
//! shorten the outputs a workload plans.
//!
//! ```
//! use llmperf::validate::{check, Direction, Ending, Outcome, Reply, Task};
//!
//! let task = Task { number: 48_213, direction: Direction::DigitsToWords, reply: Reply::Only };
//! let prompt = format!("Tell me a story.\n\n{}", task.instruction());
//! assert_eq!(Task::parse(&prompt), Some(task.clone()));
//! assert_eq!(task.answer(), "forty-eight thousand two hundred thirteen");
//!
//! let run = [48_213, 48_000, 77_001];
//! let is_other = |n| run.contains(&n);
//! let reply = "Sure! Forty-Eight Thousand, Two Hundred and Thirteen.";
//! assert_eq!(check(&task, reply, Ending::Finished, is_other), Outcome::Pass);
//! let reply = "seventy-seven thousand one";
//! assert_eq!(check(&task, reply, Ending::Finished, is_other), Outcome::CrossOver { other_number: 77_001 });
//! assert_eq!(check(&task, "I don't know", Ending::Finished, is_other), Outcome::Mismatch);
//! // Cut by its token limit on the way to the answer: not another request's 48,000.
//! assert_eq!(check(&task, "forty-eight thousand tw", Ending::CutLate, is_other), Outcome::Truncated);
//! ```

/// Marks the instruction inside a prompt so [`Task::parse`] can find it again.
const MARKER: &str = "[llmperf-check]";

#[rustfmt::skip]
const SMALL: [&str; 20] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
/// Largest first, so [`number_to_words`] can walk them in order; covers all of `u64`.
const SCALES: [(u64, &str); 6] = [
    (1_000_000_000_000_000_000, "quintillion"),
    (1_000_000_000_000_000, "quadrillion"),
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1_000, "thousand"),
];
/// Characters allowed between digit groups of one number: "48,213", "48 213" (plain, no-break,
/// thin or narrow no-break space).
const GROUP_SEPARATORS: [char; 5] = [',', ' ', '\u{A0}', '\u{2009}', '\u{202F}'];

/// Bytes of an answer read for its number (the instruction asks for the
/// number first; a longer answer is not read further).
pub const VALIDATED_TEXT_BYTES: usize = 64 * 1024;

/// Bytes at the start of an answer asked to open with its number
/// ([`Reply::First`]) that are searched for another request's number.
pub const CROSS_OVER_WINDOW_BYTES: usize = 512;

/// How an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// By itself (end of sequence, a stop sequence).
    Finished,
    /// Cut short (its token limit, a stream that broke) after it had room
    /// for its number: only a number it ends inside may be incomplete.
    CutLate,
    /// Cut short before it had room for its number.
    CutEarly,
}

/// How the answer is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// "Reply with the words only": the number is the whole answer (a
    /// correctness run, [`Workload::validation_only`](crate::Workload::validation_only)).
    Only,
    /// "Begin your reply with …, then continue": the number opens a reply
    /// that goes on with the prompt's own task (every other prompt).
    First,
}

/// Which way the model must convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The prompt states digits; the model answers in English words.
    DigitsToWords,
    /// The prompt states English words; the model answers in digits.
    WordsToDigits,
}

/// One request's validation task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Task {
    /// The number this request must get back.
    pub number: u64,
    /// Which way the model must convert it.
    pub direction: Direction,
    /// Whether the number is the whole answer or opens it.
    pub reply: Reply,
}

impl Task {
    /// The instruction text appended to a prompt, starting with the marker [`Task::parse`] looks for.
    pub fn instruction(&self) -> String {
        match (self.reply, self.direction) {
            (Reply::Only, Direction::DigitsToWords) => format!(
                "{MARKER} Write the number {} in English words. Reply with the words only.",
                self.number
            ),
            (Reply::Only, Direction::WordsToDigits) => format!(
                "{MARKER} Write \"{}\" as a number in digits. Reply with the digits only.",
                number_to_words(self.number)
            ),
            (Reply::First, Direction::DigitsToWords) => format!(
                "{MARKER} Begin your reply with the number {} written in English words, on a line of its own; then go on with the rest of your reply.",
                self.number
            ),
            (Reply::First, Direction::WordsToDigits) => format!(
                "{MARKER} Begin your reply with \"{}\" written as a number in digits, on a line of its own; then go on with the rest of your reply.",
                number_to_words(self.number)
            ),
        }
    }

    /// Finds the task in a full prompt text, which may surround the instruction with other
    /// text or JSON-escape its quotes. With several markers the last well-formed one wins,
    /// since the instruction is appended to the prompt. `None` when there is no well-formed task.
    pub fn parse(prompt: &str) -> Option<Task> {
        let candidates: Vec<&str> = prompt.split(MARKER).skip(1).collect();
        candidates.into_iter().rev().find_map(parse_instruction)
    }

    /// The answer a perfect model would give: words for
    /// [`Direction::DigitsToWords`], digits for [`Direction::WordsToDigits`].
    pub fn answer(&self) -> String {
        match self.direction {
            Direction::DigitsToWords => number_to_words(self.number),
            Direction::WordsToDigits => self.number.to_string(),
        }
    }
}

/// Parses the text right after one marker.
fn parse_instruction(text: &str) -> Option<Task> {
    let text = text.trim_start();
    let (reply, text, words_end, digits_end) = match text.strip_prefix("Begin your reply with ") {
        Some(rest) => (
            Reply::First,
            rest,
            " written in English words",
            " written as a number in digits",
        ),
        None => (
            Reply::Only,
            text.strip_prefix("Write ")?,
            " in English words",
            " as a number in digits",
        ),
    };
    if let Some(rest) = text.strip_prefix("the number ") {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number = rest.get(..end)?.parse().ok()?;
        let well_formed = rest.get(end..)?.starts_with(words_end);
        return well_formed.then_some(Task {
            number,
            direction: Direction::DigitsToWords,
            reply,
        });
    }
    // A JSON-escaped prompt shows the quotes as `\"`.
    let rest = text.strip_prefix('\\').unwrap_or(text).strip_prefix('"')?;
    let (words, tail) = rest.split_once('"')?;
    let words = words.strip_suffix('\\').unwrap_or(words);
    if !tail.starts_with(digits_end) {
        return None;
    }
    // Only exactly what `instruction` writes counts as well-formed.
    let [number] = numbers_in(words)[..] else {
        return None;
    };
    (number_to_words(number) == words).then_some(Task {
        number,
        direction: Direction::WordsToDigits,
        reply,
    })
}

/// English words for `n` (all of `u64`): lowercase, hyphenated tens-units, no "and", no commas,
/// e.g. "forty-eight thousand two hundred thirteen".
pub fn number_to_words(n: u64) -> String {
    if n == 0 {
        return SMALL[0].to_string();
    }
    let mut parts = Vec::new();
    let mut rest = n;
    for (scale, name) in SCALES {
        if rest >= scale {
            push_below_thousand(rest / scale, &mut parts);
            parts.push(name.to_string());
            rest %= scale;
        }
    }
    if rest > 0 {
        push_below_thousand(rest, &mut parts);
    }
    parts.join(" ")
}

/// Appends the words for `1..=999`.
fn push_below_thousand(n: u64, parts: &mut Vec<String>) {
    let (hundreds, rest) = ((n / 100) as usize, (n % 100) as usize);
    if hundreds > 0 {
        parts.push(format!("{} hundred", SMALL[hundreds]));
    }
    match rest {
        0 => {}
        1..=19 => parts.push(SMALL[rest].to_string()),
        _ if rest % 10 == 0 => parts.push(TENS[rest / 10].to_string()),
        _ => parts.push(format!("{}-{}", TENS[rest / 10], SMALL[rest % 10])),
    }
}

/// Every number a response text states, in order of appearance.
///
/// Digit runs may use thousands separators ("48,213"); a run that overflows `u64` is skipped.
/// English word numbers are parsed greedily as the longest well-formed phrase, tolerant of
/// case, hyphens vs spaces, "and" after "hundred"/"thousand", "a hundred", and a comma after a
/// scale word ("Forty-Eight Thousand, Two Hundred and Thirteen"). Numbers that cannot continue
/// each other stay separate: "5 and 7" → `[5, 7]`, "forty two, seventeen" → `[42, 17]`.
pub fn numbers_in(text: &str) -> Vec<u64> {
    scan(text).0
}

/// Every number `text` states, and whether the last one may still have
/// been growing when the text ended: nothing but commas, "and" or "a" after
/// it ("forty-eight thousand", "48,").
fn scan(text: &str) -> (Vec<u64>, bool) {
    let tokens = tokenize(text);
    let mut numbers = Vec::new();
    let mut last_end = None;
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        if let Token::Number(n) = token {
            numbers.push(*n);
            i += 1;
            last_end = Some(i);
        } else if let Some((n, end)) = word_number(&tokens, i) {
            numbers.push(n);
            i = end;
            last_end = Some(i);
        } else {
            i += 1;
        }
    }
    let open = last_end.is_some_and(|end| {
        tokens[end..].iter().all(|t| {
            matches!(t, Token::Comma) || matches!(t, Token::Word(w) if w == "and" || w == "a")
        })
    });
    (numbers, open)
}

#[derive(Debug)]
enum Token {
    Word(String),
    Number(u64),
    Comma,
    /// Anything that ends a word number: other punctuation, symbols, overflowing digits.
    Break,
}

/// Splits into lowercase words, digit runs, commas and breaks; whitespace and hyphens only
/// separate words, so "forty-two" and "forty two" read the same.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_ascii_digit() {
            let (value, end) = digit_run(&chars, i);
            tokens.push(value.map_or(Token::Break, Token::Number));
            i = end;
        } else if c.is_alphabetic() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_alphabetic()) {
                i += 1;
            }
            let word: String = chars.get(start..i).unwrap_or_default().iter().collect();
            tokens.push(Token::Word(word.to_lowercase()));
        } else {
            if c == ',' {
                tokens.push(Token::Comma);
            } else if !(c.is_whitespace()
                || matches!(c, '-' | '\u{2010}' | '\u{2011}' | '\u{2013}'))
            {
                tokens.push(Token::Break);
            }
            i += 1;
        }
    }
    tokens
}

/// Reads digits from `start`, joining thousands groups ("1,234,567") but only when every group
/// after the first has exactly three digits and all use the same separator, so "1,2,3" and
/// "5 10" stay separate numbers.
/// Returns the value (`None` on overflow) and the index after the run.
fn digit_run(chars: &[char], start: usize) -> (Option<u64>, usize) {
    let is_digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let mut value = Some(0u64);
    let mut i = start;
    let mut read_digits = |i: &mut usize| {
        while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
            value = value.and_then(|v| v.checked_mul(10)?.checked_add(u64::from(d)));
            *i += 1;
        }
    };
    read_digits(&mut i);
    let separator = chars.get(i).filter(|c| GROUP_SEPARATORS.contains(c));
    if i - start <= 3 {
        while separator.is_some()
            && chars.get(i) == separator
            && (i + 1..=i + 3).all(is_digit)
            && !is_digit(i + 4)
        {
            i += 1;
            read_digits(&mut i);
        }
    }
    (value, i)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Word {
    Zero,
    /// 1..=19
    Small(u64),
    /// 20, 30, ..., 90
    Tens(u64),
    Hundred,
    Scale(u64),
    A,
    And,
}

fn word_kind(word: &str) -> Option<Word> {
    let word = if word == "fourty" { "forty" } else { word }; // common misspelling
    match word {
        "zero" => Some(Word::Zero),
        "a" => Some(Word::A),
        "and" => Some(Word::And),
        "hundred" => Some(Word::Hundred),
        _ => {
            let position = |table: &[&str]| table.iter().position(|w| *w == word);
            if let Some(n) = position(&SMALL[1..]) {
                Some(Word::Small(n as u64 + 1))
            } else if let Some(n) = position(&TENS[2..]) {
                Some(Word::Tens(n as u64 * 10 + 20))
            } else {
                SCALES
                    .iter()
                    .find(|(_, name)| *name == word)
                    .map(|(value, _)| Word::Scale(*value))
            }
        }
    }
}

/// A word number under construction: `total` holds finished scale groups ("forty-eight
/// thousand"), `group` the part below the next scale ("two hundred thirteen").
struct Phrase {
    total: u64,
    group: u64,
    /// Scales must descend ("million ... thousand"); a repeated or larger scale starts anew.
    last_scale: u64,
}

impl Phrase {
    /// Adds a word if the phrase stays well-formed; `false` means the phrase ends before it.
    fn push(&mut self, word: Word) -> bool {
        // The last two digits of the group tell which words may still follow:
        // a unit fits after nothing or after a bare tens word ("forty" + "two").
        let (tens, units) = (self.group % 100 / 10, self.group % 10);
        let low = self.group % 100;
        match word {
            Word::Small(n) if low == 0 || (n < 10 && tens >= 2 && units == 0) => self.group += n,
            Word::Tens(n) if low == 0 => self.group += n,
            // "twelve hundred" is good English too.
            Word::Hundred if (1..=99).contains(&self.group) => self.group *= 100,
            Word::Scale(scale) if self.group > 0 && scale < self.last_scale => {
                let total = self
                    .group
                    .checked_mul(scale)
                    .and_then(|g| g.checked_add(self.total));
                match total {
                    Some(total) => {
                        *self = Phrase {
                            total,
                            group: 0,
                            last_scale: scale,
                        }
                    }
                    None => return false,
                }
            }
            _ => return false,
        }
        true
    }
}

/// The longest well-formed word number starting at `start`: its value and the token index after it.
fn word_number(tokens: &[Token], start: usize) -> Option<(u64, usize)> {
    let word_at = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => word_kind(w),
        _ => None,
    };
    let mut phrase = Phrase {
        total: 0,
        group: 0,
        last_scale: u64::MAX,
    };
    let mut i = start;
    match word_at(i)? {
        Word::Zero => return Some((0, i + 1)),
        // "a hundred", "a thousand": the article stands for one.
        Word::A if matches!(word_at(i + 1), Some(Word::Hundred | Word::Scale(_))) => {
            phrase.group = 1;
            i += 1;
        }
        Word::Small(_) | Word::Tens(_) => {}
        _ => return None,
    }
    let mut best = None;
    let mut previous = None;
    while let Some(token) = tokens.get(i) {
        let after_scale = matches!(previous, Some(Word::Scale(_)));
        let after_hundred_or_scale = after_scale || previous == Some(Word::Hundred);
        match (token, word_at(i)) {
            // Tentative: kept only if a number word follows, since `best` is not advanced.
            (Token::Comma, _) if after_scale => {}
            (_, Some(Word::And)) if after_hundred_or_scale => previous = Some(Word::And),
            // After "and" only the small part may follow ("hundred and five").
            (_, Some(Word::Hundred | Word::Scale(_))) if previous == Some(Word::And) => break,
            (_, Some(word)) if phrase.push(word) => {
                previous = Some(word);
                best = phrase.total.checked_add(phrase.group).map(|n| (n, i + 1));
            }
            _ => break,
        }
        i += 1;
    }
    best
}

/// Outcome of checking one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The response states this request's number.
    Pass,
    /// The response states the number of another request of the run, and not this one's.
    CrossOver {
        /// The first stated number that belongs to another request.
        other_number: u64,
    },
    /// The response was cut short (its token limit, a broken stream) and
    /// states neither this request's number nor, leaving out a number it
    /// may have been in the middle of, another request's.
    Truncated,
    /// The response states neither this request's number nor another request's.
    Mismatch,
}

/// Whether `number` could be a validation task's: from 10,000 on, never a
/// multiple of 1,000 (see `distinct_tasks` in the workload).
pub fn could_be_task_number(number: u64) -> bool {
    number >= 10_000 && !number.is_multiple_of(1_000)
}

/// Checks one response against its task (see the module docs). `cut`: the
/// response was cut short, by its token limit or a stream that broke.
/// `is_other` says whether a number belongs to another request of the same
/// run. Pass if the expected number is among [`numbers_in`]`(response)`,
/// else CrossOver if a stated number satisfies `is_other` (in a cut
/// response, not the one it may have ended inside), else Truncated if cut,
/// else Mismatch.
pub fn check(
    task: &Task,
    response: &str,
    ending: Ending,
    is_other: impl Fn(u64) -> bool,
) -> Outcome {
    let read = prefix(response, VALIDATED_TEXT_BYTES);
    // Reading stopped early: the text read may end inside a number too.
    let cut = ending != Ending::Finished || read.len() < response.len();
    let (stated, _) = scan(read);
    if stated.contains(&task.number) {
        return Outcome::Pass;
    }
    // Where another request's number would be: the whole answer asked to be
    // the number alone, the opening of one asked to open with it.
    let window = match task.reply {
        Reply::Only => read,
        Reply::First => prefix(read, CROSS_OVER_WINDOW_BYTES),
    };
    // A cut text may end inside a word ("…thousand tw") or a number.
    let window_cut = cut || window.len() < read.len();
    let window = if window_cut {
        without_last_word(window)
    } else {
        window
    };
    let (mut candidates, open) = scan(window);
    if window_cut && open {
        candidates.pop();
    }
    if let Some(other_number) = candidates.into_iter().find(|&n| is_other(n)) {
        return Outcome::CrossOver { other_number };
    }
    let (_, ends_open) = scan(without_last_word(suffix(response, 256)));
    match ending {
        Ending::CutEarly => Outcome::Truncated,
        Ending::CutLate if ends_open => Outcome::Truncated,
        _ => Outcome::Mismatch,
    }
}

/// `text` without the word it ends inside, if it ends inside one (the
/// word may be cut short).
fn without_last_word(text: &str) -> &str {
    text.trim_end_matches(char::is_alphabetic)
}

/// At most the last `bytes` of `text`, cut at a character boundary.
fn suffix(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// At most the first `bytes` of `text`, cut at a character boundary.
fn prefix(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers (Knuth's MMIX LCG), so samples need no `rand`.
    fn lcg(seed: u64) -> impl Iterator<Item = u64> {
        std::iter::successors(Some(seed), |x| {
            Some(
                x.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            )
        })
        .map(|x| x >> 11)
    }

    fn task(number: u64, direction: Direction) -> Task {
        Task {
            number,
            direction,
            reply: Reply::Only,
        }
    }

    fn with_commas(n: u64) -> String {
        let reversed: Vec<char> = n.to_string().chars().rev().collect();
        let groups: Vec<String> = reversed
            .chunks(3)
            .map(|g| g.iter().rev().collect())
            .collect();
        groups.into_iter().rev().collect::<Vec<_>>().join(",")
    }

    #[test]
    fn words_follow_the_documented_style() {
        let cases = [
            (0, "zero"),
            (13, "thirteen"),
            (40, "forty"),
            (105, "one hundred five"),
            (48_213, "forty-eight thousand two hundred thirteen"),
            (1_000_001, "one million one"),
            (999_999_999_999, "nine hundred ninety-nine billion nine hundred ninety-nine million nine hundred ninety-nine thousand nine hundred ninety-nine"),
        ];
        for (n, words) in cases {
            assert_eq!(number_to_words(n), words);
        }
        assert!(number_to_words(u64::MAX).starts_with("eighteen quintillion four hundred"));
    }

    #[test]
    fn every_number_round_trips_through_words_and_digits() {
        let small = 0..=10_000;
        let sampled = lcg(42).take(20_000).map(|x| x % 1_000_000_000);
        let huge = lcg(7).take(2_000).chain([u64::MAX, 10u64.pow(18)]);
        for n in small.chain(sampled).chain(huge) {
            let words = number_to_words(n);
            assert_eq!(numbers_in(&words), [n], "{words}");
            assert_eq!(numbers_in(&words.to_uppercase().replace('-', " ")), [n]);
            assert_eq!(numbers_in(&n.to_string()), [n]);
            assert_eq!(numbers_in(&with_commas(n)), [n]);
        }
    }

    #[test]
    fn word_numbers_are_read_tolerantly() {
        let cases: [(&str, &[u64]); 16] = [
            (
                "Sure! The answer is: Forty-Eight Thousand, Two Hundred and Thirteen.",
                &[48_213],
            ),
            ("one hundred and five", &[105]),
            ("a hundred", &[100]),
            ("A thousand and one nights", &[1_001]),
            ("twelve hundred", &[1_200]),
            ("fourty two", &[42]),
            ("5 and 7", &[5, 7]),
            ("five and seven", &[5, 7]),
            ("forty two, seventeen", &[42, 17]),
            ("one two three", &[1, 2, 3]),
            ("one hundred, five", &[100, 5]),
            ("two hundred and thousand", &[200]),
            ("a thousand and then some", &[1_000]),
            ("48,213 or 1,2,3 or 12,3456", &[48_213, 1, 2, 3, 12, 3_456]),
            (
                "48 213, 1 2 3, 1,234 567, 1\u{202F}000\u{202F}000",
                &[48_213, 1, 2, 3, 1_234, 567, 1_000_000],
            ),
            ("it is 48213.", &[48_213]),
        ];
        for (text, expected) in cases {
            assert_eq!(numbers_in(text), expected, "{text}");
        }
    }

    #[test]
    fn odd_input_never_panics() {
        let cases: [(&str, &[u64]); 11] = [
            ("", &[]),
            ("99999999999999999999999999 and 3", &[3]),
            ("18446744073709551615", &[u64::MAX]),
            ("thousand thousand", &[]),
            ("one thousand thousand", &[1_000]),
            ("and and a a hundred", &[100]),
            ("nineteen quintillion", &[19]),
            ("zero zero", &[0, 0]),
            ("٤٢ 🎉 forty‐two ñ", &[42]),
            ("one hundred hundred", &[100]),
            (",,,---...", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(numbers_in(text), expected, "{text}");
        }
        // Pseudo-random soup of the tricky pieces.
        let pieces: Vec<&str> = "a|and|hundred|thousand|,|-|9|999,|zero|é|\"|[llmperf-check]| "
            .split('|')
            .collect();
        for seed in 0..2_000 {
            let soup: String = lcg(seed)
                .take(30)
                .map(|x| pieces[(x % pieces.len() as u64) as usize])
                .collect();
            numbers_in(&soup);
            Task::parse(&soup);
        }
    }

    #[test]
    fn instructions_parse_back_for_both_directions() {
        for (number, direction) in lcg(1).take(500).map(|x| x % 999_000 + 1_000).zip(
            [Direction::DigitsToWords, Direction::WordsToDigits]
                .into_iter()
                .cycle(),
        ) {
            let task = Task {
                number,
                direction,
                reply: Reply::Only,
            };
            let plain = task.instruction();
            let embedded =
                format!("System: be brief.\nUser: summarise this text...\n{plain}\nThanks!");
            let json_escaped = format!("{{\"content\":\"{}\"}}", plain.replace('"', "\\\""));
            for prompt in [plain.clone(), embedded, json_escaped] {
                assert_eq!(Task::parse(&prompt), Some(task.clone()), "{prompt}");
            }
            assert_eq!(numbers_in(&task.answer()), [number]);
        }
    }

    #[test]
    fn answers_match_the_direction() {
        let task = task(48_213, Direction::WordsToDigits);
        assert!(task
            .instruction()
            .contains("\"forty-eight thousand two hundred thirteen\""));
        assert_eq!(task.answer(), "48213");
        let task = Task {
            direction: Direction::DigitsToWords,
            ..task
        };
        assert_eq!(task.answer(), "forty-eight thousand two hundred thirteen");
    }

    #[test]
    fn the_last_well_formed_instruction_wins() {
        let first = task(1_111, Direction::DigitsToWords);
        let second = task(2_222, Direction::WordsToDigits);
        let prompt = format!(
            "{} {} [llmperf-check] junk",
            first.instruction(),
            second.instruction()
        );
        assert_eq!(Task::parse(&prompt), Some(second));
    }

    #[test]
    fn garbage_prompts_have_no_task() {
        let garbage = [
            "",
            "Write the number 5 in English words.",
            "[llmperf-check]",
            "[llmperf-check] Write the number  in English words.",
            "[llmperf-check] Write the number 99999999999999999999999 in English words.",
            "[llmperf-check] Write the number 12 in French words.",
            "[llmperf-check] Write \"forty-two apples\" as a number in digits.",
            "[llmperf-check] Write \"Forty Two\" as a number in digits.",
            "[llmperf-check] Write \"forty-two as a number in digits.",
            "[llmperf-check] Write \"forty-two\" in Roman numerals.",
        ];
        for prompt in garbage {
            assert_eq!(Task::parse(prompt), None, "{prompt}");
        }
    }

    #[test]
    fn check_tells_pass_cross_over_and_mismatch_apart() {
        let task = task(48_213, Direction::DigitsToWords);
        let run = [48_213, 77_001, 1_234];
        let is_other = |n| run.contains(&n) && n != task.number;
        let cross = |other_number| Outcome::CrossOver { other_number };
        let cases = [
            ("forty-eight thousand two hundred thirteen", Outcome::Pass),
            (
                "48213 is forty-eight thousand two hundred thirteen",
                Outcome::Pass,
            ),
            ("Not 1,234 but 48,213.", Outcome::Pass),
            ("Seventy-Seven Thousand and One", cross(77_001)),
            ("7 then 1234 then 77001", cross(1_234)),
            ("forty-eight thousand two hundred twelve", Outcome::Mismatch),
            ("", Outcome::Mismatch),
        ];
        for (response, expected) in cases {
            assert_eq!(
                check(&task, response, Ending::Finished, is_other),
                expected,
                "{response}"
            );
        }
    }

    #[test]
    fn a_cut_answer_is_truncated_and_the_number_it_ends_in_is_not_a_cross_over() {
        let task = task(48_213, Direction::DigitsToWords);
        // 48,000 and 48,200 belong to other requests of the run.
        let run = [48_213, 48_000, 48_200, 77_001, 482];
        let is_other = |n| run.contains(&n) && n != task.number;
        // Cut after room for the answer: truncated only inside a number.
        let cases = [
            ("forty-eight thousand", Outcome::Truncated),
            ("Forty-eight thousand,", Outcome::Truncated),
            ("forty-eight thousand tw", Outcome::Truncated),
            ("forty-eight thousand two hundred", Outcome::Truncated),
            ("forty-eight thousand two hundred and", Outcome::Truncated),
            ("482", Outcome::Truncated),
            ("48,", Outcome::Truncated),
            (
                "forty-eight thousand two hundred thirteen and then",
                Outcome::Pass,
            ),
            // Room enough and no number: the model got it wrong.
            ("The number you asked for is a fine one", Outcome::Mismatch),
            // A complete number of another request before the cut is one.
            (
                "seventy-seven thousand one. And then forty",
                Outcome::CrossOver {
                    other_number: 77_001,
                },
            ),
            (
                "forty-eight thousand. The rest",
                Outcome::CrossOver {
                    other_number: 48_000,
                },
            ),
        ];
        for (response, expected) in cases {
            assert_eq!(
                check(&task, response, Ending::CutLate, is_other),
                expected,
                "{response}"
            );
        }
        // Cut before it had room: whatever it says, it may have been on its way.
        assert_eq!(
            check(&task, "The number is", Ending::CutEarly, is_other),
            Outcome::Truncated
        );
        // Not cut: a number at the end is complete.
        assert_eq!(
            check(&task, "forty-eight thousand", Ending::Finished, is_other),
            Outcome::CrossOver {
                other_number: 48_000
            }
        );
    }

    #[test]
    fn both_reply_forms_parse_back_and_only_the_start_of_an_answer_is_read() {
        for direction in [Direction::DigitsToWords, Direction::WordsToDigits] {
            for reply in [Reply::Only, Reply::First] {
                let task = Task {
                    number: 905_017,
                    direction,
                    reply,
                };
                let prompt = format!("Some text.\n{}", task.instruction());
                assert_eq!(Task::parse(&prompt), Some(task.clone()), "{prompt}");
                let escaped = serde_json::to_string(&prompt).unwrap();
                assert_eq!(Task::parse(&escaped), Some(task), "{escaped}");
            }
        }
        let task = task(48_213, Direction::WordsToDigits);
        let late = format!("{}48213", "é".repeat(VALIDATED_TEXT_BYTES));
        assert_eq!(
            check(&task, &late, Ending::Finished, |_| false),
            Outcome::Mismatch
        );
        let early = format!("48213 {}", "é".repeat(VALIDATED_TEXT_BYTES));
        assert_eq!(
            check(&task, &early, Ending::Finished, |_| false),
            Outcome::Pass
        );
    }

    #[test]
    fn a_reply_asked_to_open_with_its_number_is_searched_for_others_only_at_its_opening() {
        let task = Task {
            number: 48_213,
            direction: Direction::DigitsToWords,
            reply: Reply::First,
        };
        let is_other = |n| n == 77_001;
        // What the reply goes on to say is the model's own text.
        let later = format!(
            "Shall I compare thee.\n{} In 77001 ships sailed.",
            "Words. ".repeat(80)
        );
        assert_eq!(
            check(&task, &later, Ending::Finished, is_other),
            Outcome::Mismatch
        );
        let opening = "seventy-seven thousand one\nShall I compare thee";
        assert_eq!(
            check(&task, opening, Ending::Finished, is_other),
            Outcome::CrossOver {
                other_number: 77_001
            }
        );
        // Its own number anywhere in what is read is a pass.
        let own = format!("{later} forty-eight thousand two hundred thirteen");
        assert_eq!(
            check(&task, &own, Ending::Finished, is_other),
            Outcome::Pass
        );
    }
}
