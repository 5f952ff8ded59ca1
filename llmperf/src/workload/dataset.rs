//! Dataset files: JSONL prompts and message lists, ShareGPT conversations.
//!
//! - **JSONL** ([`DatasetFormat::Jsonl`]): one JSON object a line (blank
//!   lines are skipped), either `{"prompt": "…"}` (sent as one user
//!   message) or `{"messages": [{"role": "system"|"user"|"assistant",
//!   "content": "…"}, …]}` (sent as it is, so it may hold a history or
//!   few-shot turns), each with an optional `"max_tokens": N`. Other fields
//!   are ignored. An entry is one request.
//! - **ShareGPT** ([`DatasetFormat::ShareGpt`]): a JSON array of
//!   `{"conversations": [{"from": "human", "value": "…"}, {"from": "gpt",
//!   "value": "…"}, …]}` (or one such object a line), as in the
//!   `ShareGPT_V3` files of vLLM's benchmark. `from` is `human` or `user`,
//!   `gpt`, `assistant`, `chatgpt`, `bard` or `bing` (the model), or
//!   `system`. Each turn is the messages up to a model reply; the reply's
//!   token count is that turn's output length, as in vLLM, unless the entry
//!   has its own `max_tokens` (the workload's `max_tokens` caps either).
//!   Model messages before the first human one are skipped, and an entry
//!   without a human message is dropped. Without multi-turn only the
//!   first turn is sent; with [`Workload::multi_turn`](crate::Workload::multi_turn)
//!   up to that many turns, the replies replaced at run time by the
//!   model's actual answers (see [`super::continue_conversation`]).
//!
//! Every problem with the file is an error naming the file and the line:
//! a missing file, text that is not UTF-8, a line that is not JSON of the
//! expected shape, an unknown role, an empty message list.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::message::{count_tokens, Message, Role};
use super::tokenizer::Tokenizer;
use super::{Draft, Turn, WorkloadError};
use crate::shard::Shard;
use crate::spec::{Dataset, DatasetFormat, Sampling};

/// What loading a dataset read, kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatasetReport {
    /// Entries in the file.
    pub entries: u64,
    /// Entries that passed every filter.
    pub kept: u64,
    /// Entries dropped for having no user (human) message.
    pub without_user_turn: u64,
    /// Entries dropped for a first request under the minimum input tokens.
    pub under_min_input: u64,
    /// Entries dropped for a first request over the maximum input tokens.
    pub over_max_input: u64,
    /// Entries dropped for a turn over the maximum output tokens.
    pub over_max_output: u64,
}

impl DatasetReport {
    /// Entries dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.without_user_turn + self.under_min_input + self.over_max_input + self.over_max_output
    }
}

impl fmt::Display for DatasetReport {
    /// `20 entries, 12 kept, 8 dropped (3 with no user turn, 5 over the maximum input tokens)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entries, {} kept, {} dropped",
            self.entries,
            self.kept,
            self.dropped()
        )?;
        let reasons: Vec<String> = [
            (self.without_user_turn, "with no user turn"),
            (self.under_min_input, "under the minimum input tokens"),
            (self.over_max_input, "over the maximum input tokens"),
            (self.over_max_output, "over the maximum output tokens"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, reason)| format!("{count} {reason}"))
        .collect();
        if !reasons.is_empty() {
            write!(f, " ({})", reasons.join(", "))?;
        }
        Ok(())
    }
}

/// The format of the file at `path`, guessed from its start: a JSON array,
/// or a first object with a `conversations` list, is ShareGPT; anything
/// else is JSONL (whose loader then names what is wrong).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use llmperf::{workload::dataset::guess_format, DatasetFormat};
/// let path = dir.path().join("prompts.jsonl");
/// std::fs::write(&path, "{\"prompt\": \"Hi\"}\n").unwrap();
/// assert_eq!(guess_format(&path).unwrap(), DatasetFormat::Jsonl);
/// ```
pub fn guess_format(path: &Path) -> Result<DatasetFormat, WorkloadError> {
    let read_error = |error| WorkloadError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(read_error)? == 0 {
            return Ok(DatasetFormat::Jsonl);
        }
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        if text.starts_with('[') {
            return Ok(DatasetFormat::ShareGpt);
        }
        let sharegpt = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|value| value.get("conversations").is_some());
        return Ok(if sharegpt {
            DatasetFormat::ShareGpt
        } else {
            DatasetFormat::Jsonl
        });
    }
}

/// One dataset entry: a conversation of one or more turns.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    turns: Vec<EntryTurn>,
}

/// One request's worth of an entry.
#[derive(Debug, Clone, PartialEq)]
struct EntryTurn {
    /// The messages the turn adds (the first turn: everything sent).
    messages: Vec<Message>,
    /// The entry's own `max_tokens`.
    max_tokens: Option<u32>,
    /// The recorded model reply (ShareGPT), whose length is the output length.
    reply: Option<String>,
}

impl EntryTurn {
    /// The planned output length: the entry's `max_tokens`, else the
    /// recorded reply's tokens (at least 1), else none.
    fn output_tokens(&self, tokenizer: &Tokenizer) -> Option<u32> {
        self.max_tokens.or_else(|| {
            self.reply.as_deref().map(|reply| {
                u32::try_from(tokenizer.count(reply))
                    .unwrap_or(u32::MAX)
                    .max(1)
            })
        })
    }
}

/// Why an entry is dropped.
enum Dropped {
    WithoutUserTurn,
    UnderMinInput,
    OverMaxInput,
    OverMaxOutput,
}

/// A dataset's requests, drafted one at a time in plan order: the file is
/// loaded, filtered and (without replacement) put in order when it is
/// opened; entries are drawn and their turns dealt out as requests are
/// asked for.
pub(crate) struct DatasetDrafts {
    entries: Vec<Entry>,
    /// The entries kept by the filters.
    kept: Vec<usize>,
    /// Without replacement: this shard's entries in the order they are
    /// sent (empty with replacement).
    order: Vec<usize>,
    sampling: Sampling,
    /// Draws entries with replacement.
    rng: ChaCha8Rng,
    /// Whether requests are turns of conversations.
    multi_turn: bool,
    /// How many entries of `order` were drawn.
    drawn: usize,
    /// The entry being dealt out and its next turn.
    current: Option<(usize, usize)>,
    /// The current entry's conversation number.
    conversation: u64,
}

impl DatasetDrafts {
    /// Loads `dataset`, keeps up to `turns` turns of each entry and filters
    /// them; `count` requests must fit in it when it is sampled without
    /// replacement.
    pub(crate) fn open(
        dataset: &Dataset,
        turns: u32,
        count: u64,
        (shard, order_rng, rng): (Shard, &mut ChaCha8Rng, ChaCha8Rng),
        tokenizer: &Tokenizer,
    ) -> Result<(DatasetDrafts, DatasetReport), WorkloadError> {
        let text = read(&dataset.path)?;
        let mut entries = parse(&text, dataset.format, &dataset.path)?;
        drop(text);
        let mut report = DatasetReport {
            entries: entries.len() as u64,
            ..DatasetReport::default()
        };
        let mut kept = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter_mut().enumerate() {
            entry.turns.truncate(turns.max(1) as usize);
            match filter(entry, dataset, tokenizer) {
                None => kept.push(index),
                Some(Dropped::WithoutUserTurn) => report.without_user_turn += 1,
                Some(Dropped::UnderMinInput) => report.under_min_input += 1,
                Some(Dropped::OverMaxInput) => report.over_max_input += 1,
                Some(Dropped::OverMaxOutput) => report.over_max_output += 1,
            }
        }
        report.kept = kept.len() as u64;
        if kept.is_empty() {
            return Err(WorkloadError::EmptyDataset {
                path: dataset.path.clone(),
                report,
            });
        }
        let order: Vec<usize> = match dataset.sampling {
            Sampling::WithoutReplacement => {
                // One order for every shard, dealt out in turn.
                let mut order = kept.clone();
                order.shuffle(order_rng);
                order
                    .into_iter()
                    .skip(shard.index as usize)
                    .step_by(shard.count as usize)
                    .collect()
            }
            Sampling::WithReplacement => Vec::new(),
        };
        if dataset.sampling == Sampling::WithoutReplacement {
            let available: u64 = order.iter().map(|&i| entries[i].turns.len() as u64).sum();
            if available < count {
                return Err(WorkloadError::TooFewEntries {
                    path: dataset.path.clone(),
                    report,
                    available,
                    requests: count,
                });
            }
        }
        let drafts = DatasetDrafts {
            entries,
            kept,
            order,
            sampling: dataset.sampling,
            rng,
            multi_turn: turns > 1,
            drawn: 0,
            current: None,
            conversation: 0,
        };
        Ok((drafts, report))
    }

    /// The next request: the current entry's next turn, or the first turn
    /// of the next entry drawn. `None` once an ordered dataset is used up.
    pub(crate) fn next(&mut self, tokenizer: &Tokenizer) -> Option<Draft> {
        let (entry, position) = match self.current {
            Some((entry, position)) if position < self.entries[entry].turns.len() => {
                (entry, position)
            }
            current => {
                let entry = match self.sampling {
                    Sampling::WithoutReplacement => {
                        let entry = *self.order.get(self.drawn)?;
                        self.drawn += 1;
                        entry
                    }
                    Sampling::WithReplacement => self.kept[self.rng.gen_range(0..self.kept.len())],
                };
                if current.is_some() {
                    self.conversation += 1;
                }
                (entry, 0)
            }
        };
        self.current = Some((entry, position + 1));
        let turn = &self.entries[entry].turns[position];
        Some(Draft {
            messages: turn.messages.clone(),
            planned_max: turn.output_tokens(tokenizer),
            turn: self.multi_turn.then_some(Turn {
                conversation: self.conversation,
                index: position as u32,
            }),
        })
    }
}

/// Why `entry` must go, if it must; tokenizes only for the filters set.
fn filter(entry: &Entry, dataset: &Dataset, tokenizer: &Tokenizer) -> Option<Dropped> {
    let Some(first) = entry.turns.first() else {
        return Some(Dropped::WithoutUserTurn);
    };
    if dataset.min_input_tokens.is_some() || dataset.max_input_tokens.is_some() {
        let input = count_tokens(&first.messages, tokenizer);
        if dataset.min_input_tokens.is_some_and(|min| input < min) {
            return Some(Dropped::UnderMinInput);
        }
        if dataset.max_input_tokens.is_some_and(|max| input > max) {
            return Some(Dropped::OverMaxInput);
        }
    }
    if let Some(max) = dataset.max_output_tokens {
        let too_long = entry.turns.iter().any(|turn| {
            turn.output_tokens(tokenizer)
                .is_some_and(|output| output > max)
        });
        if too_long {
            return Some(Dropped::OverMaxOutput);
        }
    }
    None
}

/// The file's text, without a byte-order mark.
fn read(path: &Path) -> Result<String, WorkloadError> {
    let bytes = std::fs::read(path).map_err(|error| WorkloadError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let line = line_at(error.as_bytes(), valid);
        WorkloadError::Parse {
            path: path.to_path_buf(),
            line,
            message: "the text is not UTF-8".to_string(),
        }
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The 1-based line holding byte `offset` of `text`.
fn line_at(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// The byte offset of `part`, a slice of `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// Every entry of `text`.
fn parse(text: &str, format: DatasetFormat, path: &Path) -> Result<Vec<Entry>, WorkloadError> {
    let located = |part: &str, line_in_part: usize, message: String| WorkloadError::Parse {
        path: path.to_path_buf(),
        line: line_at(text.as_bytes(), offset_in(text, part)) + line_in_part.saturating_sub(1),
        message,
    };
    let json_error =
        |part: &str, error: serde_json::Error| located(part, error.line(), json_message(&error));
    if format == DatasetFormat::ShareGpt && text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|error| json_error(text, error))?;
        return items
            .into_iter()
            .map(|item| sharegpt_entry(item.get(), &located, &json_error))
            .collect();
    }
    let mut entries = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        entries.push(match format {
            DatasetFormat::Jsonl => jsonl_entry(line, &located, &json_error)?,
            DatasetFormat::ShareGpt => sharegpt_entry(line, &located, &json_error)?,
        });
    }
    Ok(entries)
}

/// A serde_json error without its position (the caller names the line)
/// but with the column, which only means something within one line.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    let kind = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
        _ => "unexpected JSON",
    };
    if error.column() > 0 {
        format!("{kind}: {message} (column {})", error.column())
    } else {
        format!("{kind}: {message}")
    }
}

#[derive(Deserialize)]
#[serde(expecting = "a JSON object with `prompt` or `messages`")]
struct JsonlEntry {
    prompt: Option<String>,
    messages: Option<Vec<JsonlMessage>>,
    max_tokens: Option<u32>,
    conversations: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(expecting = "a message object with `role` and `content`")]
struct JsonlMessage {
    role: String,
    content: String,
}

type Located<'a> = dyn Fn(&str, usize, String) -> WorkloadError + 'a;
type JsonError<'a> = dyn Fn(&str, serde_json::Error) -> WorkloadError + 'a;

/// One JSONL line.
fn jsonl_entry(
    line: &str,
    located: &Located,
    json_error: &JsonError,
) -> Result<Entry, WorkloadError> {
    let entry: JsonlEntry = serde_json::from_str(line).map_err(|error| json_error(line, error))?;
    let fail = |message: String| Err(located(line, 1, message));
    if entry.max_tokens == Some(0) {
        return fail("`max_tokens` is 0: give 1 or more, or leave it out".to_string());
    }
    let messages = match (entry.prompt, entry.messages) {
        (Some(_), Some(_)) => {
            return fail("has both `prompt` and `messages`: keep one".to_string());
        }
        (Some(prompt), None) => vec![Message::user(prompt)],
        (None, Some(raw)) => {
            if raw.is_empty() {
                return fail("`messages` is empty: give at least one user message".to_string());
            }
            let mut messages = Vec::with_capacity(raw.len());
            for message in raw {
                let role = match message.role.as_str() {
                    "system" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    other => {
                        return fail(format!(
                            "unknown role `{other}`: use system, user or assistant"
                        ))
                    }
                };
                messages.push(Message::new(role, message.content));
            }
            if !messages.iter().any(|message| message.role == Role::User) {
                return fail("`messages` has no user message".to_string());
            }
            messages
        }
        (None, None) if entry.conversations.is_some() => {
            return fail(
                "has `conversations` but no `prompt` or `messages`: this looks like ShareGPT (--dataset-format sharegpt)"
                    .to_string(),
            );
        }
        (None, None) => {
            return fail("has neither `prompt` nor `messages`".to_string());
        }
    };
    Ok(Entry {
        turns: vec![EntryTurn {
            messages,
            max_tokens: entry.max_tokens,
            reply: None,
        }],
    })
}

#[derive(Deserialize)]
#[serde(expecting = "a ShareGPT entry: an object with a `conversations` list")]
struct ShareGptEntry<'a> {
    #[serde(borrow)]
    conversations: Option<Vec<&'a RawValue>>,
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
#[serde(expecting = "a ShareGPT message: an object with `from` and `value`")]
struct ShareGptMessage {
    from: String,
    value: String,
}

/// One ShareGPT entry (the text of one array item or one line).
fn sharegpt_entry(
    raw: &str,
    located: &Located,
    json_error: &JsonError,
) -> Result<Entry, WorkloadError> {
    let entry: ShareGptEntry = serde_json::from_str(raw).map_err(|error| json_error(raw, error))?;
    let Some(conversation) = entry.conversations else {
        return Err(located(
            raw,
            1,
            "the entry has no `conversations` list".to_string(),
        ));
    };
    if entry.max_tokens == Some(0) {
        return Err(located(
            raw,
            1,
            "`max_tokens` is 0: give 1 or more, or leave it out".to_string(),
        ));
    }
    let mut messages = Vec::with_capacity(conversation.len());
    for item in conversation {
        let message: ShareGptMessage =
            serde_json::from_str(item.get()).map_err(|error| json_error(item.get(), error))?;
        let role = match message.from.as_str() {
            "human" | "user" => Role::User,
            "gpt" | "assistant" | "chatgpt" | "bard" | "bing" => Role::Assistant,
            "system" => Role::System,
            other => {
                return Err(located(
                    item.get(),
                    1,
                    format!("unknown role `{other}` in `from`: use human, gpt or system"),
                ))
            }
        };
        messages.push(Message::new(role, message.value));
    }
    Ok(Entry {
        turns: split_turns(messages, entry.max_tokens),
    })
}

/// A conversation cut into turns: each turn is the messages up to a model
/// reply (consecutive replies join into one). Model messages before any
/// user message are skipped; a trailing user message is a last turn
/// without a reply.
fn split_turns(messages: Vec<Message>, max_tokens: Option<u32>) -> Vec<EntryTurn> {
    let mut turns: Vec<EntryTurn> = Vec::new();
    let mut pending: Vec<Message> = Vec::new();
    for message in messages {
        if message.role != Role::Assistant {
            pending.push(message);
            continue;
        }
        if pending.iter().any(|m| m.role == Role::User) {
            turns.push(EntryTurn {
                messages: std::mem::take(&mut pending),
                max_tokens,
                reply: Some(message.content),
            });
        } else if pending.is_empty() {
            // A second reply in a row belongs to the turn before.
            if let Some(reply) = turns.last_mut().and_then(|turn| turn.reply.as_mut()) {
                reply.push_str("\n\n");
                reply.push_str(&message.content);
            }
        }
        // A reply after only system messages answers nothing: skipped.
    }
    if pending.iter().any(|m| m.role == Role::User) {
        turns.push(EntryTurn {
            messages: pending,
            max_tokens,
            reply: None,
        });
    }
    turns
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use rand::SeedableRng;

    fn tokenizer() -> &'static Tokenizer {
        Tokenizer::bundled()
    }

    /// `text` written to a fresh file, and the directory keeping it alive.
    fn file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write dataset");
        (dir, path)
    }

    fn parse_text(text: &str, format: DatasetFormat) -> Result<Vec<Entry>, WorkloadError> {
        parse(text, format, Path::new("data.jsonl"))
    }

    /// The error's line and message, for a parse error.
    fn parse_error(text: &str, format: DatasetFormat) -> (usize, String) {
        match parse_text(text, format) {
            Err(WorkloadError::Parse { line, message, .. }) => (line, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    fn drafts_of(
        dataset: &Dataset,
        turns: u32,
        count: u64,
        seed: u64,
    ) -> Result<(Vec<Draft>, DatasetReport), WorkloadError> {
        let (mut order, rng) = (
            ChaCha8Rng::seed_from_u64(seed),
            ChaCha8Rng::seed_from_u64(seed),
        );
        let (mut source, report) = DatasetDrafts::open(
            dataset,
            turns,
            count,
            (crate::shard::WHOLE, &mut order, rng),
            tokenizer(),
        )?;
        let drafts = (0..count).map_while(|_| source.next(tokenizer())).collect();
        Ok((drafts, report))
    }

    /// The first message's content of each draft.
    fn firsts(drafts: &[Draft]) -> Vec<String> {
        drafts
            .iter()
            .map(|draft| draft.messages[0].content.clone())
            .collect()
    }

    #[test]
    fn jsonl_reads_prompts_and_message_lists_with_their_max_tokens() {
        let text = "{\"prompt\": \"Hi\", \"max_tokens\": 7, \"id\": 1}\n\n\
            {\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U\"}, {\"role\": \"assistant\", \"content\": \"A\"}, {\"role\": \"user\", \"content\": \"U2\"}]}\r\n";
        let entries = parse_text(text, DatasetFormat::Jsonl).unwrap();
        assert_eq!(entries.len(), 2, "the blank line is skipped");
        assert_eq!(entries[0].turns[0].messages, vec![Message::user("Hi")]);
        assert_eq!(entries[0].turns[0].max_tokens, Some(7));
        let second = &entries[1].turns;
        assert_eq!(second.len(), 1, "a JSONL entry is one request");
        assert_eq!(
            second[0].messages,
            vec![
                Message::system("S"),
                Message::user("U"),
                Message::assistant("A"),
                Message::user("U2")
            ]
        );
        assert_eq!(second[0].max_tokens, None);
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let good = "{\"prompt\": \"a\"}\n";
        let cases = [
            (
                format!("{good}{good}{{\"prompt\": \"b\"\n"),
                3,
                "not valid JSON",
            ),
            (
                format!("{good}\n{{\"nothing\": 1}}\n"),
                3,
                "neither `prompt` nor `messages`",
            ),
            (
                format!("{good}{{\"messages\": [{{\"role\": \"bot\", \"content\": \"x\"}}]}}\n"),
                2,
                "unknown role `bot`",
            ),
            ("{\"messages\": []}\n".to_string(), 1, "`messages` is empty"),
            (
                format!("{good}{{\"prompt\": \"a\", \"messages\": []}}\n"),
                2,
                "both",
            ),
            (
                format!("{good}{{\"prompt\": \"a\", \"max_tokens\": -3}}\n"),
                2,
                "-3",
            ),
            (
                format!("{good}{{\"prompt\": \"a\", \"max_tokens\": 0}}\n"),
                2,
                "`max_tokens` is 0",
            ),
            ("[1, 2]\n".to_string(), 1, "unexpected JSON"),
            (
                format!("{good}{{\"messages\": [{{\"role\": \"system\", \"content\": \"x\"}}]}}\n"),
                2,
                "no user message",
            ),
            (
                "{\"conversations\": []}\n".to_string(),
                1,
                "--dataset-format sharegpt",
            ),
        ];
        for (text, line, needle) in cases {
            let (got_line, message) = parse_error(&text, DatasetFormat::Jsonl);
            assert_eq!(got_line, line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message}");
        }
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        let (_dir, path) = file("bad.jsonl", "{\"prompt\": \"a\"}\n{oops\n");
        let error = drafts_of(&Dataset::jsonl(&path), 1, 1, 1).err().unwrap();
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!("{}:2: not valid JSON", path.display())),
            "{shown}"
        );

        let missing = drafts_of(&Dataset::jsonl("/nonexistent/data.jsonl"), 1, 1, 1)
            .err()
            .unwrap();
        assert!(matches!(missing, WorkloadError::Read { .. }), "{missing:?}");
        assert!(
            missing.to_string().contains("/nonexistent/data.jsonl"),
            "{missing}"
        );

        let (_dir, latin1) = file(
            "latin1.jsonl",
            "{\"prompt\": \"a\"}\n{\"prompt\": \"caf\u{e9}\"}\n",
        );
        let mut bytes = std::fs::read(&latin1).unwrap();
        let at = bytes.iter().position(|&b| b == 0xc3).unwrap();
        bytes.splice(at..at + 2, [0xe9]);
        std::fs::write(&latin1, bytes).unwrap();
        let error = drafts_of(&Dataset::jsonl(&latin1), 1, 1, 1).err().unwrap();
        assert!(
            error.to_string().contains(":2: the text is not UTF-8"),
            "{error}"
        );
    }

    const SHAREGPT: &str = r#"[
  {
    "id": "a",
    "conversations": [
      {"from": "human", "value": "What is the capital of France?"},
      {"from": "gpt", "value": "Paris is the capital of France."},
      {"from": "human", "value": "And of Italy?"},
      {"from": "gpt", "value": "Rome."}
    ]
  },
  {"id": "b", "conversations": [{"from": "gpt", "value": "Hello!"}]},
  {
    "id": "c",
    "conversations": [
      {"from": "system", "value": "Answer in French."},
      {"from": "gpt", "value": "skipped: it answers nothing"},
      {"from": "human", "value": "Hi"},
      {"from": "gpt", "value": "Bonjour"},
      {"from": "gpt", "value": "ça va ?"},
      {"from": "human", "value": "Bye"}
    ]
  }
]"#;

    #[test]
    fn sharegpt_splits_conversations_into_turns_with_their_replies() {
        let entries = parse_text(SHAREGPT, DatasetFormat::ShareGpt).unwrap();
        assert_eq!(entries.len(), 3);
        let first = &entries[0].turns;
        assert_eq!(first.len(), 2);
        assert_eq!(
            first[0].messages,
            vec![Message::user("What is the capital of France?")]
        );
        assert_eq!(
            first[0].reply.as_deref(),
            Some("Paris is the capital of France.")
        );
        assert_eq!(first[1].messages, vec![Message::user("And of Italy?")]);
        assert_eq!(first[0].output_tokens(tokenizer()), Some(7));
        assert!(
            entries[1].turns.is_empty(),
            "no human message: nothing to send"
        );
        let third = &entries[2].turns;
        assert_eq!(
            third[0].messages,
            vec![Message::system("Answer in French."), Message::user("Hi")]
        );
        assert_eq!(third[0].reply.as_deref(), Some("Bonjour\n\nça va ?"));
        assert_eq!(third[1].messages, vec![Message::user("Bye")]);
        assert_eq!(third[1].reply, None);
        assert_eq!(third[1].output_tokens(tokenizer()), None);
    }

    #[test]
    fn sharegpt_reads_one_entry_a_line_too_and_an_entry_max_tokens_wins() {
        let text = "{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello there, friend\"}], \"max_tokens\": 3}\n";
        let entries = parse_text(text, DatasetFormat::ShareGpt).unwrap();
        assert_eq!(entries[0].turns[0].output_tokens(tokenizer()), Some(3));
    }

    #[test]
    fn sharegpt_errors_name_the_line_of_the_entry_or_message() {
        let unknown = SHAREGPT.replace(
            "\"from\": \"gpt\", \"value\": \"Rome.\"",
            "\"from\": \"robot\", \"value\": \"Rome.\"",
        );
        let (line, message) = parse_error(&unknown, DatasetFormat::ShareGpt);
        assert_eq!(line, 8, "{message}");
        assert!(message.contains("unknown role `robot`"), "{message}");

        let no_list = "[\n  {\"id\": 1},\n  {\"id\": 2, \"conversation\": []}\n]";
        let (line, message) = parse_error(no_list, DatasetFormat::ShareGpt);
        assert_eq!(line, 2, "{message}");
        assert!(message.contains("no `conversations`"), "{message}");

        let value =
            "[\n  {\"conversations\": [\n    {\"from\": \"human\", \"value\": null}\n  ]}\n]";
        let (line, message) = parse_error(value, DatasetFormat::ShareGpt);
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("null"), "{message}");

        let broken = "[\n  {\"conversations\": []},\n  {\"conversations\": [}\n]";
        let (line, message) = parse_error(broken, DatasetFormat::ShareGpt);
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("not valid JSON"), "{message}");
    }

    #[test]
    fn formats_are_guessed_from_the_first_entry() {
        for (text, format) in [
            ("[\n{\"conversations\": []}]", DatasetFormat::ShareGpt),
            ("\n{\"conversations\": []}\n", DatasetFormat::ShareGpt),
            ("{\"prompt\": \"a\"}\n", DatasetFormat::Jsonl),
            ("\u{feff}{\"messages\": []}\n", DatasetFormat::Jsonl),
            ("", DatasetFormat::Jsonl),
        ] {
            let (_dir, path) = file("data", text);
            assert_eq!(guess_format(&path).unwrap(), format, "{text:?}");
        }
        assert!(guess_format(Path::new("/nonexistent/x.json")).is_err());
    }

    /// `n` JSONL prompts `p0`… of 1 to 30 words, with `max_tokens` 10×(i+1).
    fn numbered(n: usize) -> String {
        (0..n)
            .map(|i| {
                let words = vec!["word"; i % 30].join(" ");
                format!(
                    "{{\"prompt\": \"p{i} {words}\", \"max_tokens\": {}}}\n",
                    10 * (i + 1)
                )
            })
            .collect()
    }

    #[test]
    fn filters_drop_entries_outside_and_count_them() {
        let (_dir, path) = file("data.jsonl", &numbered(60));
        // Entry i's input tokens, as the filter counts them.
        let input = |i: usize| {
            tokenizer().count(&format!("p{i} {}", vec!["word"; i % 30].join(" "))) as u32
        };
        let dataset = Dataset::jsonl(&path)
            .input_tokens_between(5, 20)
            .max_output_tokens(400);
        let (drafts, report) = drafts_of(&dataset, 1, 10, 1).unwrap();
        let expected_under = (0..60).filter(|&i| input(i) < 5).count() as u64;
        let expected_over = (0..60).filter(|&i| input(i) > 20).count() as u64;
        let expected_output = (0..60)
            .filter(|&i| (5..=20).contains(&input(i)) && 10 * (i + 1) > 400)
            .count() as u64;
        assert!(expected_under > 0 && expected_over > 0 && expected_output > 0);
        assert_eq!(report.entries, 60);
        assert_eq!(report.under_min_input, expected_under);
        assert_eq!(report.over_max_input, expected_over);
        assert_eq!(report.over_max_output, expected_output);
        assert_eq!(report.kept + report.dropped(), 60);
        for draft in &drafts {
            let tokens = count_tokens(&draft.messages, tokenizer());
            assert!((5..=20).contains(&tokens), "{tokens}");
            assert!(draft.planned_max.is_some_and(|max| max <= 400));
        }
        let shown = report.to_string();
        assert!(
            shown.starts_with(&format!("60 entries, {} kept", report.kept)),
            "{shown}"
        );
        assert!(shown.contains("under the minimum input tokens"), "{shown}");
    }

    #[test]
    fn a_dataset_emptied_by_its_filters_is_an_error_with_the_counts() {
        let (_dir, path) = file("data.jsonl", &numbered(5));
        let error = drafts_of(&Dataset::jsonl(&path).min_input_tokens(1000), 1, 1, 1)
            .err()
            .unwrap();
        assert!(
            matches!(error, WorkloadError::EmptyDataset { report, .. } if report.under_min_input == 5)
        );
        assert!(
            error
                .to_string()
                .contains("5 under the minimum input tokens"),
            "{error}"
        );
        let (_dir, empty) = file("empty.jsonl", "\n\n");
        let error = drafts_of(&Dataset::jsonl(&empty), 1, 1, 1).err().unwrap();
        assert!(error.to_string().contains("0 entries"), "{error}");
    }

    #[test]
    fn sampling_without_replacement_is_seeded_and_never_repeats() {
        let (_dir, path) = file("data.jsonl", &numbered(50));
        let dataset = Dataset::jsonl(&path);
        let (a, _) = drafts_of(&dataset, 1, 50, 7).unwrap();
        let (b, _) = drafts_of(&dataset, 1, 50, 7).unwrap();
        let (c, _) = drafts_of(&dataset, 1, 50, 8).unwrap();
        assert_eq!(firsts(&a), firsts(&b));
        assert_ne!(firsts(&a), firsts(&c));
        let unique: std::collections::HashSet<String> = firsts(&a).into_iter().collect();
        assert_eq!(unique.len(), 50, "every entry once");
        assert_ne!(
            firsts(&a)[..5],
            firsts(&numbered_drafts(5))[..5],
            "shuffled, not in file order"
        );

        let error = drafts_of(&dataset, 1, 51, 7).err().unwrap();
        assert!(
            matches!(
                error,
                WorkloadError::TooFewEntries {
                    available: 50,
                    requests: 51,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("--sampling with-replacement"),
            "{error}"
        );
    }

    /// The first `n` prompts in file order.
    fn numbered_drafts(n: usize) -> Vec<Draft> {
        (0..n)
            .map(|i| Draft {
                messages: vec![Message::user(format!(
                    "p{i} {}",
                    vec!["word"; i % 30].join(" ")
                ))],
                planned_max: None,
                turn: None,
            })
            .collect()
    }

    #[test]
    fn sampling_with_replacement_is_seeded_and_may_repeat() {
        let (_dir, path) = file("data.jsonl", &numbered(5));
        let dataset = Dataset::jsonl(&path).sample(Sampling::WithReplacement);
        let (a, _) = drafts_of(&dataset, 1, 40, 3).unwrap();
        let (b, _) = drafts_of(&dataset, 1, 40, 3).unwrap();
        assert_eq!(a.len(), 40);
        assert_eq!(firsts(&a), firsts(&b));
        let unique: std::collections::HashSet<String> = firsts(&a).into_iter().collect();
        assert_eq!(
            unique.len(),
            5,
            "40 draws from 5 entries reach them all, with repeats"
        );
        // Each draft keeps its entry's own max_tokens.
        for draft in &a {
            let i: usize = draft.messages[0].content[1..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(draft.planned_max, Some(10 * (i as u32 + 1)));
        }
    }

    #[test]
    fn multi_turn_sharegpt_makes_consecutive_turns_of_each_conversation() {
        let (_dir, path) = file("sharegpt.json", SHAREGPT);
        let dataset = Dataset::sharegpt(&path);
        let (single, report) = drafts_of(&dataset, 1, 2, 1).unwrap();
        assert_eq!((report.kept, report.without_user_turn), (2, 1));
        assert!(single.iter().all(|draft| draft.turn.is_none()));

        let (drafts, _) = drafts_of(&dataset, 8, 4, 1).unwrap();
        let turns: Vec<(u64, u32)> = drafts
            .iter()
            .map(|draft| draft.turn.map(|t| (t.conversation, t.index)).unwrap())
            .collect();
        assert_eq!(turns, [(0, 0), (0, 1), (1, 0), (1, 1)]);
        for pair in drafts.chunks(2) {
            // A later turn holds only its own new user message.
            assert_eq!(pair[1].messages.len(), 1);
            assert_eq!(pair[1].messages[0].role, Role::User);
        }
        // Two conversations of two turns make 4 requests, not 5.
        let error = drafts_of(&dataset, 8, 5, 1).err().unwrap();
        assert!(
            matches!(error, WorkloadError::TooFewEntries { available: 4, .. }),
            "{error:?}"
        );
        // With a cap of one turn each conversation gives one request.
        let (capped, _) = drafts_of(&dataset, 1, 2, 1).unwrap();
        assert_eq!(capped.len(), 2);
    }
}
