//! Planning a response: every byte it will send and when, as offsets from
//! the admission instant. All tokenizing and formatting happens here, before
//! the request is admitted, so the body's hot loop only sleeps and sends.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::generate::{self, FinishReason, Output, Spec, MAX_OUTPUT_TOKENS};
use super::openai::{self, Formatter, TokenKind, Usage};
use super::request::{Api, GenerationRequest};
use super::stream_format::{self, Schedule, StreamFormat};
use super::{anthropic, tgi, together};
use crate::spec::{Fault, Script};
use crate::validate::Task;
use crate::workload::tokenizer::Tokenizer;

/// The latest offset planned; keeps `Instant + offset` far from overflow
/// whatever the script says.
const MAX_OFFSET: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a response body ends once its frames are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// A clean end of the body.
    Finish,
    /// Abort the connection: the client sees a body error.
    Abort,
    /// Send nothing more, then abort after [`STALL_LIMIT`](super::body::STALL_LIMIT).
    Stall,
}

/// One planned response.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    /// When the status line and headers go out.
    pub(crate) head_at: Duration,
    /// Body frames, each sent at its offset (or at once, if that is past).
    pub(crate) frames: Vec<(Duration, Bytes)>,
    /// When the body ends, the way `end` says.
    pub(crate) end_at: Duration,
    pub(crate) end: End,
    /// The body is one known block (sent with `content-length`).
    pub(crate) whole: bool,
    /// Bytes sent as fast as the connection takes them once the frames are
    /// out (the hostile faults), before the end.
    pub(crate) tail: Option<Tail>,
    /// When the first generated event is due (the server's own time to
    /// first token, as scheduled); how late it went out is counted apart.
    pub(crate) first_event: Option<Duration>,
}

/// A run of identical chunks after a response's frames, then its last frames.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub(crate) chunk: Bytes,
    /// How many times `chunk` is sent; `None`: until the client goes away
    /// (at most [`STALL_LIMIT`](super::body::STALL_LIMIT)).
    pub(crate) repeat: Option<u64>,
    /// Frames sent after the run.
    pub(crate) then: Vec<Bytes>,
}

/// Whether `fault` changes this request at all; one that does not is not
/// injected (nor counted), so the next rule may match instead.
pub(crate) fn applies(fault: Fault, api: Api, request: &GenerationRequest, has_task: bool) -> bool {
    match fault {
        Fault::CrossOver => has_task,
        Fault::MissingDone => request.stream,
        Fault::EndlessLine | Fault::HugeEvent { .. } | Fault::EventFlood { .. } => {
            request.stream && matches!(api, Api::Chat | Api::Completions)
        }
        _ => true,
    }
}

/// One token event: where it starts in the token sequence, what it carries.
pub(crate) struct TokenEvent {
    pub(crate) tokens_before: usize,
    pub(crate) tokens: usize,
    pub(crate) kind: TokenKind,
    pub(crate) text: String,
}

/// Plans the response to generation request number `index` (1-based).
/// `task` is the task to answer (already swapped for a cross-over), `fault`
/// an applicable fault other than `Status`.
pub(crate) fn plan(
    script: &Script,
    api: Api,
    request: &GenerationRequest,
    task: Option<Task>,
    fault: Option<Fault>,
    index: u64,
) -> Timeline {
    if let Api::SageMaker { lmi } = api {
        return super::sagemaker::plan(script, lmi, request, task, fault, index);
    }
    if let Api::Vertex(vertex) = api {
        return super::vertex::plan(script, vertex, request, task, fault, index);
    }
    // One independent stream of the seeded generator per request, so a
    // request's words and jitter do not depend on what ran concurrently.
    let mut rng = ChaCha8Rng::seed_from_u64(script.seed);
    rng.set_stream(index);

    let prompt_tokens = Tokenizer::bundled().count(&request.prompt);
    let spec = Spec {
        max_tokens: request
            .max_tokens
            .unwrap_or(script.output_tokens)
            .min(MAX_OUTPUT_TOKENS),
        // The completions API has no field for reasoning.
        reasoning_tokens: match api {
            // Anthropic streams them as thinking blocks.
            Api::Chat | Api::Anthropic => script.reasoning_tokens.min(MAX_OUTPUT_TOKENS),
            // TGI's generate_stream has no field for reasoning either.
            Api::Completions
            | Api::Tgi
            | Api::TogetherInference
            | Api::SageMaker { .. }
            | Api::Vertex(_) => 0,
        },
        task,
        fill: request.fill,
        long_words: script.long_words,
    };
    let output = generate::generate(&spec, &mut rng);
    let usage = Usage {
        prompt_tokens,
        completion_tokens: output.reasoning.len() + output.content.len(),
        reasoning_tokens: output.reasoning.len(),
    };
    let first = clamp(
        script.ttft.saturating_add(
            script
                .ttft_per_prompt_token
                .saturating_mul(u32::try_from(prompt_tokens).unwrap_or(u32::MAX)),
        ),
    );
    let events = token_events(&output, script.tokens_per_event.max(1) as usize);
    let offsets: Vec<Duration> = events
        .iter()
        .map(|event| {
            let at = first.saturating_add(
                script
                    .inter_token
                    .saturating_mul(u32::try_from(event.tokens_before).unwrap_or(u32::MAX)),
            );
            clamp(jittered(at, script.jitter, &mut rng))
        })
        .collect();
    // The finish chunk (and a whole response) goes out with the last token
    // event; a response without tokens ends when its first token would have
    // come.
    let last = offsets.iter().copied().max().unwrap_or(first);
    let total_tokens = usage.completion_tokens;

    // Other protocols: the same schedule and faults in their own format.
    let other: Option<Box<dyn StreamFormat>> = match api {
        // SageMaker and Vertex are planned by their own modules (see above).
        Api::Chat | Api::Completions | Api::SageMaker { .. } | Api::Vertex(_) => None,
        Api::Tgi => Some(Box::new(tgi::TgiFormat::new(prompt_tokens, script.crlf))),
        Api::TogetherInference => Some(Box::new(together::TogetherFormat::new(index, script.crlf))),
        Api::Anthropic => Some(Box::new(anthropic::AnthropicFormat::new(
            index,
            &request.model,
            prompt_tokens,
            script.crlf,
        ))),
    };
    if let Some(mut format) = other {
        let schedule = Schedule {
            output: &output,
            usage,
            include_usage: request.include_usage,
            events: &events,
            offsets: &offsets,
            first,
            last,
            keep_alive: script.keep_alive,
        };
        return stream_format::timeline(format.as_mut(), &schedule, fault);
    }

    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let id = match api {
        Api::Chat => format!("chatcmpl-builtin-{index}"),
        _ => format!("cmpl-builtin-{index}"),
    };
    let formatter = Formatter::new(api, &id, &request.model, created, script.crlf);

    if !request.stream {
        return whole_response(&formatter, &output, usage, fault, &events, &offsets, last);
    }

    let mut frames: Vec<(Duration, Bytes)> = Vec::with_capacity(events.len() + 5);
    if api == Api::Chat {
        // Real servers send the role as soon as they start on a request.
        frames.push((Duration::ZERO, formatter.role_chunk()));
    }
    if let Some(timeline) = hostile(&formatter, fault, frames.clone(), first, usage) {
        return timeline;
    }
    if script.keep_alive {
        let first_event = offsets.first().copied().unwrap_or(first);
        frames.push((first_event / 2, formatter.keep_alive()));
    }
    let half = total_tokens / 2;
    // Faults that cut the stream keep the events wholly in the first half.
    let kept = events
        .iter()
        .take_while(|event| event.tokens_before + event.tokens <= half)
        .count();
    let cut = |frames: &mut Vec<(Duration, Bytes)>| {
        for (event, at) in events.iter().zip(&offsets).take(kept) {
            frames.push((*at, formatter.token_chunk(event.kind, &event.text)));
        }
        // The fault strikes when the next event would have been sent.
        offsets.get(kept).copied().unwrap_or(last)
    };
    let stream = |frames, end_at, end| Timeline {
        status: StatusCode::OK,
        content_type: "text/event-stream",
        head_at: Duration::ZERO,
        frames,
        end_at,
        end,
        whole: false,
        tail: None,
        first_event: offsets.first().copied(),
    };
    match fault {
        Some(Fault::Disconnect) => {
            let at = cut(&mut frames);
            return stream(frames, at, End::Abort);
        }
        Some(Fault::Stall) => {
            let at = cut(&mut frames);
            return stream(frames, at, End::Stall);
        }
        Some(Fault::StreamError) => {
            let at = cut(&mut frames);
            frames.push((at, formatter.stream_error()));
            return stream(frames, at, End::Finish);
        }
        _ => {}
    }
    let malformed_after = (fault == Some(Fault::MalformedEvent)).then_some(events.len() / 2);
    if malformed_after == Some(0) {
        frames.push((Duration::ZERO, formatter.malformed()));
    }
    for (i, (event, at)) in events.iter().zip(&offsets).enumerate() {
        frames.push((*at, formatter.token_chunk(event.kind, &event.text)));
        if malformed_after == Some(i + 1) {
            frames.push((*at, formatter.malformed()));
        }
    }
    frames.push((last, formatter.finish_chunk(output.finish_reason)));
    if request.include_usage {
        frames.push((last, formatter.usage_chunk(usage)));
    }
    if fault != Some(Fault::MissingDone) {
        frames.push((last, formatter.done()));
    }
    stream(frames, last, End::Finish)
}

/// Bytes of one chunk of a hostile run.
const HOSTILE_CHUNK_BYTES: usize = 64 * 1024;

/// The hostile faults: a line that never ends, one giant content event, a
/// flood of one-token events; `None` for any other fault.
fn hostile(
    formatter: &Formatter,
    fault: Option<Fault>,
    mut frames: Vec<(Duration, Bytes)>,
    first: Duration,
    usage: Usage,
) -> Option<Timeline> {
    // A content event cut where its text goes.
    let marked = formatter.token_chunk(TokenKind::Content, "\u{1}");
    let marker = b"\\u0001";
    let at = marked.windows(marker.len()).position(|w| w == marker)?;
    let (open, close) = (marked.slice(..at), marked.slice(at + marker.len()..));
    let filler = Bytes::from(vec![b'a'; HOSTILE_CHUNK_BYTES]);
    let tail = match fault? {
        Fault::EndlessLine => {
            frames.push((first, open));
            Tail {
                chunk: filler,
                repeat: None,
                then: Vec::new(),
            }
        }
        Fault::HugeEvent { bytes } => {
            frames.push((first, open));
            Tail {
                chunk: filler,
                repeat: Some(bytes.div_ceil(HOSTILE_CHUNK_BYTES as u64)),
                then: vec![
                    close,
                    formatter.finish_chunk(FinishReason::Length),
                    formatter.done(),
                ],
            }
        }
        Fault::EventFlood { events } => {
            let event = formatter.token_chunk(TokenKind::Content, " the");
            let per_chunk = (HOSTILE_CHUNK_BYTES / event.len().max(1)).max(1) as u64;
            let chunk: Vec<u8> = event.repeat(per_chunk as usize);
            // The whole chunks, then the events left over one by one.
            let mut then: Vec<Bytes> = (0..events % per_chunk).map(|_| event.clone()).collect();
            then.push(formatter.finish_chunk(FinishReason::Length));
            then.push(formatter.usage_chunk(Usage {
                completion_tokens: usize::try_from(events).unwrap_or(usize::MAX),
                reasoning_tokens: 0,
                ..usage
            }));
            then.push(formatter.done());
            Tail {
                chunk: Bytes::from(chunk),
                repeat: Some(events / per_chunk),
                then,
            }
        }
        _ => return None,
    };
    Some(Timeline {
        status: StatusCode::OK,
        content_type: "text/event-stream",
        head_at: Duration::ZERO,
        frames,
        end_at: first,
        end: End::Finish,
        whole: false,
        tail: Some(tail),
        first_event: None,
    })
}

/// A non-streaming response: the whole body at the time the last token
/// would have been generated (or a fault at half time).
fn whole_response(
    formatter: &Formatter,
    output: &Output,
    usage: Usage,
    fault: Option<Fault>,
    events: &[TokenEvent],
    offsets: &[Duration],
    last: Duration,
) -> Timeline {
    let half_at = offsets.get(events.len() / 2).copied().unwrap_or(last);
    let json = |status, head_at, body: Bytes| Timeline {
        status,
        content_type: "application/json",
        head_at,
        end_at: head_at,
        frames: vec![(head_at, body)],
        end: End::Finish,
        whole: true,
        tail: None,
        first_event: None,
    };
    let broken = |end| Timeline {
        status: StatusCode::OK,
        content_type: "application/json",
        head_at: half_at,
        frames: Vec::new(),
        end_at: half_at,
        end,
        whole: false,
        tail: None,
        first_event: None,
    };
    match fault {
        // The connection drops at half time; hyper closes it before the
        // buffered head is flushed, so the client sees no response at all.
        Some(Fault::Disconnect) => broken(End::Abort),
        Some(Fault::Stall) => broken(End::Stall),
        Some(Fault::StreamError) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            half_at,
            openai::stream_error_body(),
        ),
        Some(Fault::MalformedEvent) => json(
            StatusCode::OK,
            last,
            Bytes::from_static(openai::MALFORMED_JSON.as_bytes()),
        ),
        _ => json(StatusCode::OK, last, formatter.full_response(output, usage)),
    }
}

/// Groups the tokens into events of `per_event` tokens, reasoning first;
/// an event never mixes reasoning and content.
pub(crate) fn token_events(output: &Output, per_event: usize) -> Vec<TokenEvent> {
    let mut events =
        Vec::with_capacity((output.reasoning.len() + output.content.len()) / per_event + 2);
    let mut tokens_before = 0;
    for (kind, tokens) in [
        (TokenKind::Reasoning, &output.reasoning),
        (TokenKind::Content, &output.content),
    ] {
        for chunk in tokens.chunks(per_event) {
            events.push(TokenEvent {
                tokens_before,
                tokens: chunk.len(),
                kind,
                text: chunk.concat(),
            });
            tokens_before += chunk.len();
        }
    }
    events
}

/// `at` moved by a uniform draw from ±`jitter`, never before zero.
pub(crate) fn jittered(at: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return at;
    }
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    let shift = rng.gen_range(0..=nanos.saturating_mul(2));
    if shift >= nanos {
        at.saturating_add(Duration::from_nanos(shift - nanos))
    } else {
        at.saturating_sub(Duration::from_nanos(nanos - shift))
    }
}

pub(crate) fn clamp(offset: Duration) -> Duration {
    offset.min(MAX_OFFSET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Direction;

    fn request(stream: bool, max_tokens: Option<u32>) -> GenerationRequest {
        GenerationRequest {
            model: "m".to_string(),
            prompt: "hello world".to_string(),
            max_tokens,
            stream,
            include_usage: true,
            fill: false,
        }
    }

    fn text(frames: &[(Duration, Bytes)]) -> Vec<String> {
        frames
            .iter()
            .map(|(_, bytes)| String::from_utf8(bytes.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn deadlines_follow_the_script() {
        let script = Script::new()
            .ttft(Duration::from_millis(50))
            .inter_token(Duration::from_millis(5))
            .ttft_per_prompt_token(Duration::from_millis(1))
            .tokens_per_event(3)
            .keep_alive(true);
        let timeline = plan(&script, Api::Chat, &request(true, Some(10)), None, None, 1);
        let at: Vec<u64> = timeline
            .frames
            .iter()
            .map(|(at, _)| at.as_millis() as u64)
            .collect();
        // role, keep-alive, 4 events (3+3+3+1 tokens) from 50 + 2 prompt
        // tokens, finish, usage, [DONE] with the last token.
        assert_eq!(at, [0, 26, 52, 67, 82, 97, 97, 97, 97]);
        assert_eq!(timeline.end, End::Finish);
        assert_eq!(timeline.end_at, Duration::from_millis(97));
        let frames = text(&timeline.frames);
        assert_eq!(frames[1], ": keep-alive\n\n");
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        assert!(frames[7].contains(r#""completion_tokens":10"#));
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_seeded() {
        let script = Script::new()
            .ttft(Duration::from_millis(20))
            .inter_token(Duration::from_millis(10))
            .jitter(Duration::from_millis(3))
            .seed(9);
        let offsets = |index| {
            plan(
                &script,
                Api::Completions,
                &request(true, Some(50)),
                None,
                None,
                index,
            )
            .frames
            .into_iter()
            .map(|(at, _)| at)
            .collect::<Vec<_>>()
        };
        let one = offsets(1);
        assert_eq!(one, offsets(1), "same seed and request, same deadlines");
        assert_ne!(one, offsets(2), "another request draws other jitter");
        let mut moved = 0;
        for (i, at) in one.iter().take(50).enumerate() {
            let nominal = Duration::from_millis(20 + 10 * i as u64);
            let delta = at.abs_diff(nominal);
            assert!(delta <= Duration::from_millis(3), "event {i}: {at:?}");
            moved += usize::from(!delta.is_zero());
        }
        assert!(moved > 40);
    }

    #[test]
    fn reasoning_comes_first_and_is_counted() {
        let script = Script::new()
            .ttft(Duration::from_millis(10))
            .inter_token(Duration::from_millis(1))
            .reasoning_tokens(4);
        let timeline = plan(&script, Api::Chat, &request(true, Some(3)), None, None, 1);
        let frames = text(&timeline.frames);
        assert!(frames[1..5].iter().all(|f| f.contains("reasoning_content")));
        assert!(frames[5..8]
            .iter()
            .all(|f| f.contains(r#""delta":{"content""#)));
        assert_eq!(timeline.frames[5].0, Duration::from_millis(14));
        assert!(frames[9].contains(r#""completion_tokens":7"#));
        assert!(frames[9].contains(r#""reasoning_tokens":4"#));
    }

    #[test]
    fn faults_cut_the_stream_at_half() {
        let script = Script::new();
        let cut = |fault| {
            plan(
                &script,
                Api::Chat,
                &request(true, Some(10)),
                None,
                Some(fault),
                1,
            )
        };
        let disconnect = cut(Fault::Disconnect);
        assert_eq!(disconnect.frames.len(), 1 + 5);
        assert_eq!(disconnect.end, End::Abort);
        assert_eq!(disconnect.end_at, Duration::from_millis(150));
        let stall = cut(Fault::Stall);
        assert_eq!(stall.frames.len(), 1 + 5);
        assert_eq!(
            (stall.end, stall.end_at),
            (End::Stall, Duration::from_millis(150))
        );
        let error = text(&cut(Fault::StreamError).frames);
        assert!(error.last().unwrap().contains("injected stream error"));
        assert!(!error.iter().any(|f| f.contains("[DONE]")));
        let malformed = text(&cut(Fault::MalformedEvent).frames);
        assert_eq!(malformed[6], "data: {\"choices\": [\n\n");
        assert!(malformed.last().unwrap().contains("[DONE]"));
        let missing = text(&cut(Fault::MissingDone).frames);
        assert!(missing.last().unwrap().contains("usage"));
    }

    #[test]
    fn whole_responses_come_at_the_end() {
        let script = Script::new()
            .ttft(Duration::from_millis(30))
            .inter_token(Duration::from_millis(2));
        let task = Task {
            number: 12,
            direction: Direction::DigitsToWords,
            reply: crate::validate::Reply::Only,
        };
        let timeline = plan(
            &script,
            Api::Chat,
            &request(false, None),
            Some(task.clone()),
            None,
            1,
        );
        assert!(timeline.whole);
        let body: serde_json::Value = serde_json::from_slice(&timeline.frames[0].1).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], task.answer());
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let tokens = Tokenizer::bundled().count(&task.answer());
        assert_eq!(body["usage"]["completion_tokens"], tokens);
        let expected = Duration::from_millis(30 + 2 * (tokens as u64 - 1));
        assert_eq!(timeline.head_at, expected);
    }
}
