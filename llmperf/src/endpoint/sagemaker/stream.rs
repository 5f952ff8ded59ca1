//! SageMaker's response stream: `application/vnd.amazon.eventstream`
//! frames ([`FrameDecoder`]) whose `PayloadPart` events carry the
//! container's own stream, cut anywhere, which the shared
//! [`TgiDecoder`] reassembles and decodes; `exception` and `error`
//! messages and undefined event types are errors (see the
//! [module docs](super)).

use std::time::Instant;

use serde_json::Value;

use crate::endpoint::framing::eventstream::{header_str, FrameDecoder};
use crate::endpoint::wire::tgi::TgiDecoder;
use crate::endpoint::{
    excerpt, ErrorKind, RequestError, StreamDecoder, StreamEvent, TimedEvent, QUOTED_CHARS,
};

/// Decodes SageMaker's event stream and the container output inside it.
///
/// The container's format is recognized from its first bytes (a JSON line
/// starts with `{`, SSE with `data:`, `event:` or a `:` comment), so one
/// decoder serves both whatever the `format` setting asked for.
#[derive(Default)]
pub struct SageMakerDecoder {
    frames: FrameDecoder,
    /// The container's own stream, reassembled from the payload parts.
    payload: TgiDecoder,
    /// The framing broke: nothing after it can be trusted or resynchronized.
    broken: bool,
}

impl SageMakerDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        SageMakerDecoder::default()
    }

    fn message(
        &mut self,
        message: &aws_smithy_types::event_stream::Message,
        at: Instant,
        out: &mut Vec<TimedEvent>,
    ) {
        let (kind, text) = match header_str(message, ":message-type") {
            Some("event") => match header_str(message, ":event-type") {
                Some("PayloadPart") => return self.payload.feed(message.payload(), at, out),
                other => (
                    ErrorKind::UnknownEvent,
                    format!(
                        "unknown SageMaker event type `{}`",
                        excerpt(other.unwrap_or("(none)"), 60)
                    ),
                ),
            },
            Some("exception") => {
                let kind = header_str(message, ":exception-type").unwrap_or("(no type)");
                (
                    ErrorKind::StreamError,
                    format!(
                        "{}: {}",
                        excerpt(kind, 60),
                        exception_message(message.payload())
                    ),
                )
            }
            Some("error") => (
                ErrorKind::StreamError,
                format!(
                    "{}: {}",
                    excerpt(header_str(message, ":error-code").unwrap_or("error"), 60),
                    excerpt(
                        header_str(message, ":error-message").unwrap_or(""),
                        QUOTED_CHARS
                    )
                ),
            ),
            other => (
                ErrorKind::UnknownEvent,
                format!(
                    "unknown event-stream message type `{}`",
                    excerpt(other.unwrap_or("(none)"), 60)
                ),
            ),
        };
        // The container's missing final event is then no news.
        self.payload.error_reported();
        out.push(TimedEvent {
            at,
            event: StreamEvent::Error(RequestError::new(kind, text)),
        });
    }
}

/// The `Message` (or `message`) of an exception payload, else its text.
fn exception_message(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let message = parsed.as_ref().and_then(|value| {
        let get = |key: &str| value.get(key).and_then(Value::as_str);
        let message = get("Message").or_else(|| get("message"))?;
        Some(match get("ErrorCode").or_else(|| get("errorCode")) {
            Some(code) => format!("{message} ({code})"),
            None => message.to_string(),
        })
    });
    excerpt(
        message.as_deref().unwrap_or_else(|| text.trim()),
        QUOTED_CHARS,
    )
}

impl StreamDecoder for SageMakerDecoder {
    fn buffered_bytes(&self) -> usize {
        self.frames.pending_bytes() + self.payload.buffered_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        if self.broken {
            return;
        }
        self.frames.push(bytes);
        loop {
            match self.frames.next_message() {
                Ok(Some(message)) => self.message(&message, at, out),
                Ok(None) => return,
                Err(problem) => {
                    self.broken = true;
                    out.push(TimedEvent {
                        at,
                        event: StreamEvent::Error(RequestError::new(ErrorKind::Framing, problem)),
                    });
                    return;
                }
            }
        }
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        if self.broken {
            return;
        }
        let pending = self.frames.pending_bytes();
        if pending > 0 {
            out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::Framing,
                    format!(
                        "the stream ended inside an event-stream frame ({pending} bytes of it arrived)"
                    ),
                )),
            });
            return;
        }
        self.payload.finish(at, out);
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::endpoint::{error_kinds as kinds, Usage};

    fn frame(headers: &[(&'static str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut message = Message::new(payload.to_vec());
        for (name, value) in headers {
            message = message.add_header(Header::new(
                *name,
                HeaderValue::String(value.to_string().into()),
            ));
        }
        let mut bytes = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes).unwrap();
        bytes
    }

    fn part(payload: &[u8]) -> Vec<u8> {
        frame(
            &[
                (":event-type", "PayloadPart"),
                (":content-type", "application/octet-stream"),
                (":message-type", "event"),
            ],
            payload,
        )
    }

    fn decode(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        let mut decoder = SageMakerDecoder::new();
        crate::endpoint::decode_reads(&mut decoder, pieces)
    }

    /// TGI's SSE as a SageMaker TGI container streams it (`data:` without a
    /// space, one token per event, the last with `generated_text` and
    /// `details`), cut into parts the way SageMaker cuts it: mid-line, and a
    /// part holding the end of one event and the start of the next.
    const TGI: &[&str] = &[
        r#"data:{"index":1,"token":{"id":1014,"text":" Deep","logprob":-0.05,"special":false},"generated_text":null,"details":null}"#,
        "\n\n",
        r#"data:{"index":2,"token":{"id":6975,"text":" learning","logprob":-1.2,"special":false},"generated_text":null,"details":null}"#,
        "\n\n",
        r#"data:{"index":3,"token":{"id":2,"text":"</s>","logprob":-0.01,"special":true},"generated_text":" Deep learning","details":{"finish_reason":"eos_token","generated_tokens":3,"seed":null,"input_length":7}}"#,
        "\n\n",
    ];

    fn tgi_stream() -> Vec<u8> {
        TGI.concat().into_bytes()
    }

    fn expected_tgi() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Content(" Deep".into()),
            StreamEvent::Content(" learning".into()),
            StreamEvent::Finish("eos_token".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(7),
                completion_tokens: Some(3),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ]
    }

    #[test]
    fn payload_parts_cut_mid_line_are_reassembled() {
        let stream = tgi_stream();
        // Captured shape: SageMaker cut the first event after `"text":" De`
        // and put the end of the second event with the start of the third.
        let cut1 = stream.windows(3).position(|w| w == b" De").unwrap() + 3;
        let cut2 = stream.windows(9).position(|w| w == b"\"index\":3").unwrap() + 4;
        let mut wire = part(&stream[..cut1]);
        wire.extend(part(&stream[cut1..cut2]));
        wire.extend(part(&stream[cut2..]));
        assert_eq!(decode(&[&wire]), expected_tgi());
    }

    #[test]
    fn every_split_of_parts_and_of_the_wire_decodes_the_same() {
        let stream = tgi_stream();
        for cut in 0..=stream.len() {
            let mut wire = part(&stream[..cut]);
            wire.extend(part(&stream[cut..]));
            assert_eq!(decode(&[&wire]), expected_tgi(), "payload cut at {cut}");
        }
        let mut wire = part(&stream[..40]);
        wire.extend(part(&stream[40..]));
        for cut in 0..=wire.len() {
            assert_eq!(
                decode(&[&wire[..cut], &wire[cut..]]),
                expected_tgi(),
                "wire cut at {cut}"
            );
        }
    }

    #[test]
    fn an_event_is_stamped_with_the_read_that_completed_its_line() {
        let stream = tgi_stream();
        let first_end = stream.windows(2).position(|w| w == b"\n\n").unwrap();
        let mut decoder = SageMakerDecoder::new();
        let mut out = Vec::new();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(7);
        // The first event's bytes but its blank line: nothing yet.
        decoder.feed(&part(&stream[..first_end + 1]), t0, &mut out);
        assert!(out.is_empty(), "{out:?}");
        decoder.feed(&part(&stream[first_end + 1..]), t1, &mut out);
        assert_eq!(out[0].event, StreamEvent::Content(" Deep".into()));
        assert_eq!(out[0].at, t1);
    }

    #[test]
    fn lmi_json_lines_and_their_sse_form() {
        let lines = concat!(
            r#"{"token": {"id": 304, "text": "Deep ", "log_prob": -0.05}}"#,
            "\n",
            r#"{"token": {"id": 11157, "text": " Learning", "log_prob": -1.28}}"#,
            "\n",
            r#"{"token": {"id": 5972, "text": " field.", "log_prob": -0.69}, "generated_text": "Deep Learning field.", "details": {"finish_reason": "length", "generated_tokens": 3, "inputs": "What is Deep Learning?"}}"#,
            "\n",
        );
        let expected = vec![
            StreamEvent::Content("Deep ".into()),
            StreamEvent::Content(" Learning".into()),
            StreamEvent::Content(" field.".into()),
            StreamEvent::Finish("length".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: None,
                completion_tokens: Some(3),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ];
        let bytes = lines.as_bytes();
        for cut in 0..=bytes.len() {
            let mut wire = part(&bytes[..cut]);
            wire.extend(part(&bytes[cut..]));
            assert_eq!(decode(&[&wire]), expected, "cut at {cut}");
        }
        // `output_formatter=sse`: the same lines behind `data:`.
        let sse: String = lines
            .lines()
            .map(|line| format!("data:{line}\n\n"))
            .collect();
        assert_eq!(decode(&[&part(sse.as_bytes())]), expected);
        // An error mid-stream, as LMI sends it.
        let error = r#"{"token": {"id": -1, "text": "", "log_prob": -1, "special_token": true}, "generated_text": "", "details": {"finish_reason": "error", "generated_tokens": null, "inputs": null}}"#;
        let events = decode(&[&part(format!("{error}\n").as_bytes())]);
        assert_eq!(kinds(&events), vec![ErrorKind::StreamError]);
        // Dynamic batch: `outputs`, and no end marker to miss.
        let events = decode(&[&part(
            b"{\"outputs\": [\"This\"]}\n{\"outputs\": [\" is\"]}\n",
        )]);
        assert_eq!(
            events,
            vec![
                StreamEvent::Content("This".into()),
                StreamEvent::Content(" is".into())
            ]
        );
    }

    #[test]
    fn exceptions_errors_and_unknown_events_are_named() {
        let mut wire = part(TGI[0].as_bytes());
        wire.extend(frame(
            &[
                (":exception-type", "ModelStreamError"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"Message":"Your model stream broke","ErrorCode":"StreamBroken"}"#,
        ));
        let events = decode(&[&wire]);
        let error = events
            .iter()
            .find_map(|e| match e {
                StreamEvent::Error(error) => Some(error.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(error.kind, ErrorKind::StreamError);
        assert_eq!(
            error.message,
            "ModelStreamError: Your model stream broke (StreamBroken)"
        );

        let failure = frame(
            &[
                (":exception-type", "InternalStreamFailure"),
                (":message-type", "exception"),
            ],
            br#"{"message":"internal"}"#,
        );
        let events = decode(&[&failure]);
        assert!(
            matches!(&events[0], StreamEvent::Error(e) if e.message == "InternalStreamFailure: internal")
        );

        let unknown = frame(
            &[(":event-type", "Heartbeat"), (":message-type", "event")],
            b"",
        );
        assert_eq!(kinds(&decode(&[&unknown])), vec![ErrorKind::UnknownEvent]);
        let untyped = frame(&[], b"x");
        assert_eq!(kinds(&decode(&[&untyped])), vec![ErrorKind::UnknownEvent]);

        // TGI's own error event inside the payload.
        let events = decode(&[&part(
            b"data:{\"error\":\"Request failed during generation: Server error: CUDA out of memory\",\"error_type\":\"generation\"}\n\n",
        )]);
        assert!(matches!(&events[0], StreamEvent::Error(e)
            if e.kind == ErrorKind::StreamError && e.message.contains("(generation)") && e.message.contains("CUDA")));
    }

    #[test]
    fn framing_faults_truncation_and_a_missing_end() {
        let good = part(&tgi_stream());
        let mut corrupted = good.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 0x55;
        assert_eq!(kinds(&decode(&[&corrupted])), vec![ErrorKind::Framing]);

        // Cut anywhere inside the frame: the end of the body is a framing error.
        for cut in 1..good.len() {
            let events = decode(&[&good[..cut]]);
            assert_eq!(kinds(&events), vec![ErrorKind::Framing], "cut at {cut}");
        }

        // Whole frames but no final `generated_text` event.
        let stream = tgi_stream();
        let two = stream.windows(9).position(|w| w == b"\"index\":3").unwrap() - 6;
        let events = decode(&[&part(&stream[..two])]);
        assert_eq!(kinds(&events), vec![ErrorKind::MissingDone]);
        // Malformed JSON inside a valid frame.
        let events = decode(&[&part(b"data:{\"token\": [\n\n")]);
        assert_eq!(kinds(&events), vec![ErrorKind::MalformedEvent]);
    }

    /// The container's stream is decoded by the TGI wire decoder, so its
    /// prompt counts and its shapeless and empty streams read as on TGI's
    /// own route (they did not before the two copies were merged).
    #[test]
    fn payloads_decode_as_tgi_does_prompt_counts_shapeless_events_and_an_empty_stream() {
        let last = |details: &str| {
            format!(
                "data:{{\"index\":1,\"token\":{{\"id\":1,\"text\":\" a\",\"special\":false}},\"generated_text\":\" a\",\"details\":{details}}}\n\n"
            )
        };
        for (details, prompt) in [
            (
                r#"{"finish_reason":"length","generated_tokens":1,"prompt_tokens":5}"#,
                5,
            ),
            (
                r#"{"finish_reason":"length","generated_tokens":1,"prefill":[{"id":1},{"id":2}]}"#,
                2,
            ),
        ] {
            let events = decode(&[&part(last(details).as_bytes())]);
            assert_eq!(
                events,
                vec![
                    StreamEvent::Content(" a".into()),
                    StreamEvent::Finish("length".into()),
                    StreamEvent::Usage(Usage {
                        prompt_tokens: Some(prompt),
                        completion_tokens: Some(1),
                        reasoning_tokens: None,
                    }),
                    StreamEvent::Done,
                ],
                "{details}"
            );
        }
        let shapeless = decode(&[&part(b"data:{\"hello\":1}\n\n")]);
        assert_eq!(kinds(&shapeless), vec![ErrorKind::MalformedEvent]);
        assert_eq!(kinds(&decode(&[])), vec![ErrorKind::MissingDone]);
    }

    #[test]
    fn thousands_of_random_mutations_never_panic() {
        let stream = tgi_stream();
        let mut wire = Vec::new();
        for piece in stream.chunks(37) {
            wire.extend(part(piece));
        }
        wire.extend(frame(
            &[
                (":exception-type", "ModelStreamError"),
                (":message-type", "exception"),
            ],
            br#"{"Message":"m"}"#,
        ));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
        for round in 0..4000 {
            let mut bytes = wire.clone();
            let mut only_flips = true;
            for _ in 0..rng.gen_range(1..=8) {
                match rng.gen_range(0..4) {
                    0 => {
                        let at = rng.gen_range(0..bytes.len());
                        bytes[at] ^= 1 << rng.gen_range(0..8);
                    }
                    1 => {
                        let at = rng.gen_range(0..bytes.len());
                        bytes[at] = rng.gen();
                    }
                    2 if bytes.len() > 1 => {
                        let at = rng.gen_range(1..bytes.len());
                        bytes.truncate(at);
                        only_flips = false;
                    }
                    2 => {}
                    _ => {
                        let at = rng.gen_range(0..=bytes.len());
                        let junk: Vec<u8> = (0..rng.gen_range(1..32)).map(|_| rng.gen()).collect();
                        bytes.splice(at..at, junk);
                        only_flips = false;
                    }
                }
            }
            // Fed in random pieces, as the network would.
            let mut decoder = SageMakerDecoder::new();
            let mut out = Vec::new();
            let now = Instant::now();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let take = rng.gen_range(1..=rest.len().min(64));
                let (head, tail) = rest.split_at(take);
                decoder.feed(head, now, &mut out);
                rest = tail;
            }
            decoder.finish(now, &mut out);
            if only_flips && bytes != wire {
                // Changed bytes inside frames are always caught: by a CRC,
                // an impossible length, or a frame left incomplete.
                let events: Vec<StreamEvent> = out.into_iter().map(|e| e.event).collect();
                assert!(
                    kinds(&events).contains(&ErrorKind::Framing),
                    "round {round}: {events:?}"
                );
            }
        }
    }
}
