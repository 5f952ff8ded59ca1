//! The endpoint as a client sees it: real sockets, reqwest, wall-clock
//! timing. Bounds are generous enough for a busy 2-core machine and tight
//! enough to catch a wrong schedule.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::validate::{Direction, Task};

const MS: Duration = Duration::from_millis(1);

/// One SSE event as the client received it.
#[derive(Debug)]
struct Event {
    /// Since the request was sent.
    at: Duration,
    /// The `data:` payload, if any.
    data: Option<String>,
    /// The comment text, for `: ...` lines.
    comment: Option<String>,
    /// The event's bytes as received, separator included.
    raw: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().unwrap()).unwrap()
    }
    fn is_done(&self) -> bool {
        self.data.as_deref() == Some("[DONE]")
    }
    fn chat_content(&self) -> Option<String> {
        let json: Value = serde_json::from_str(self.data.as_deref()?).ok()?;
        Some(json["choices"][0]["delta"]["content"].as_str()?.to_string())
    }
}

/// A response stream read to its end (or to an error, or to silence).
#[derive(Debug)]
struct Sse {
    events: Vec<Event>,
    /// The body error that ended the stream, if it did not end cleanly.
    error: Option<String>,
    /// The stream went silent for longer than the read timeout.
    silent: bool,
}

impl Sse {
    /// Content events of a chat stream (non-empty content).
    fn content(&self) -> Vec<(Duration, String)> {
        self.events
            .iter()
            .filter_map(|e| Some((e.at, e.chat_content().filter(|c| !c.is_empty())?)))
            .collect()
    }
    fn content_text(&self) -> String {
        self.content().into_iter().map(|(_, text)| text).collect()
    }
    fn done(&self) -> bool {
        self.events.iter().any(Event::is_done)
    }
    fn usage(&self) -> Value {
        let usage = self.events.iter().rev().find_map(|e| {
            let json: Value = serde_json::from_str(e.data.as_deref()?).ok()?;
            json.get("usage").cloned()
        });
        usage.expect("a usage chunk")
    }
}

fn chat(prompt: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "test-model",
        "messages": [{ "role": "user", "content": prompt }],
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    merge(&mut body, extra);
    body
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
}

async fn post(server: &Server, path: &str, body: &Value) -> (Instant, reqwest::Response) {
    let start = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .json(body)
        .send()
        .await
        .unwrap();
    (start, response)
}

/// Reads SSE events until the body ends, fails, or is silent for `silence`.
async fn read_sse(mut response: reqwest::Response, start: Instant, silence: Duration) -> Sse {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let (error, silent) = loop {
        match tokio::time::timeout(silence, response.chunk()).await {
            Err(_) => break (None, true),
            Ok(Err(error)) => break (Some(format!("{error:?}")), false),
            Ok(Ok(None)) => break (None, false),
            Ok(Ok(Some(bytes))) => {
                let at = start.elapsed();
                buffer.push_str(std::str::from_utf8(&bytes).unwrap());
                while let Some((end, separator)) = [
                    buffer.find("\r\n\r\n").map(|i| (i, 4)),
                    buffer.find("\n\n").map(|i| (i, 2)),
                ]
                .into_iter()
                .flatten()
                .min()
                {
                    let raw: String = buffer.drain(..end + separator).collect();
                    let mut event = Event {
                        at,
                        data: None,
                        comment: None,
                        raw: raw.clone(),
                    };
                    for line in raw.lines() {
                        if let Some(data) = line.strip_prefix("data: ") {
                            event.data = Some(data.to_string());
                        } else if let Some(comment) = line.strip_prefix(':') {
                            event.comment = Some(comment.trim().to_string());
                        }
                    }
                    events.push(event);
                }
            }
        }
    };
    Sse {
        events,
        error,
        silent,
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn within(actual: Duration, low_ms: u64, high_ms: u64) -> bool {
    actual >= Duration::from_millis(low_ms) && actual <= Duration::from_millis(high_ms)
}

fn task(number: u64) -> Task {
    Task {
        number,
        direction: Direction::DigitsToWords,
        reply: crate::validate::Reply::Only,
    }
}

#[tokio::test]
async fn chat_stream_follows_the_script() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(50))
            .inter_token(Duration::from_millis(5)),
    )
    .unwrap();
    let prompt = "Tell me about the sea.";
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat(prompt, json!({"max_tokens": 20})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(sse.error.is_none() && !sse.silent, "{sse:?}");

    let role = sse.events[0].json();
    assert_eq!(role["object"], "chat.completion.chunk");
    assert_eq!(role["model"], "test-model");
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    assert!(
        sse.events[0].at < 25 * MS,
        "role at once: {:?}",
        sse.events[0].at
    );

    let content = sse.content();
    assert_eq!(content.len(), 20);
    assert!(within(content[0].0, 50, 65), "ttft {:?}", content[0].0);
    let gaps: Vec<Duration> = content.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let itl = median(gaps);
    assert!(within(itl, 4, 6), "median inter-token latency {itl:?}");
    assert!(
        within(content[19].0, 145, 170),
        "last token at {:?} (deadlines must not drift)",
        content[19].0
    );

    let last = sse.events.last().unwrap();
    assert!(last.is_done(), "[DONE] comes last");
    let finish = sse.events.iter().find_map(|e| {
        let json: Value = serde_json::from_str(e.data.as_deref()?).ok()?;
        json["choices"][0]["finish_reason"]
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(finish.as_deref(), Some("length"));
    let usage = sse.usage();
    let tokenizer = Tokenizer::bundled();
    assert_eq!(usage["prompt_tokens"], tokenizer.count(prompt));
    assert_eq!(usage["completion_tokens"], 20);
    assert_eq!(usage["total_tokens"], tokenizer.count(prompt) + 20);
    assert_eq!(
        tokenizer.count(&sse.content_text()),
        20,
        "client count agrees"
    );
    let stats = server.stats();
    assert_eq!(
        (stats.requests, stats.faults_injected, stats.max_in_flight),
        (1, 0, 1)
    );
    // The role chunk, 20 content events, the finish and usage chunks, [DONE].
    assert_eq!(stats.frames_sent, 24);
    assert!(stats.send_lateness_p50_us <= stats.send_lateness_p99_us);
    assert!(stats.send_lateness_max_us < 50_000, "{stats:?}");
    // The first content event's lateness is counted apart (a bucket's
    // upper bound, so at least 10 µs once counted).
    assert!(
        (10..50_000).contains(&stats.first_event_lateness_p50_us),
        "{stats:?}"
    );
}

#[tokio::test]
async fn completions_stream_has_the_completions_shape() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(5))
            .inter_token(Duration::from_millis(1))
            .output_tokens(12),
    )
    .unwrap();
    let body = json!({"model": "m", "prompt": ["one", "two"], "stream": true});
    // Also without the /v1 prefix.
    let start = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("http://{}/completions", server.addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    let chunks: Vec<Value> = sse
        .events
        .iter()
        .filter(|e| !e.is_done())
        .map(Event::json)
        .collect();
    assert_eq!(
        chunks.len(),
        13,
        "12 tokens and a finish chunk, no role, no usage"
    );
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(Tokenizer::bundled().count(&text), 12);
    assert_eq!(chunks[12]["choices"][0]["finish_reason"], "length");
    assert!(sse.events.last().unwrap().is_done());
}

#[tokio::test]
async fn non_streaming_response_comes_whole_after_the_scripted_time() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(40))
            .inter_token(Duration::from_millis(2))
            .reasoning_tokens(3),
    )
    .unwrap();
    // The limit counts reasoning too: 3 reasoning + 10 content tokens.
    let body = chat("hi", json!({"stream": false, "max_completion_tokens": 13}));
    let (start, response) = post(&server, "/chat/completions", &body).await;
    let headers_at = start.elapsed();
    let json: Value = response.json().await.unwrap();
    // 3 reasoning + 10 content tokens: the last at 40 + 12 × 2 ms.
    assert!(within(headers_at, 64, 90), "{headers_at:?}");
    assert_eq!(json["object"], "chat.completion");
    let message = &json["choices"][0]["message"];
    assert_eq!(
        Tokenizer::bundled().count(message["content"].as_str().unwrap()),
        10
    );
    assert_eq!(
        Tokenizer::bundled().count(message["reasoning_content"].as_str().unwrap()),
        3
    );
    assert_eq!(json["usage"]["completion_tokens"], 13);
    assert_eq!(
        json["usage"]["completion_tokens_details"]["reasoning_tokens"],
        3
    );

    let body = json!({"prompt": "hi", "max_tokens": 4});
    let (_, response) = post(&server, "/completions", &body).await;
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["object"], "text_completion");
    assert_eq!(
        json["usage"]["completion_tokens"], 4,
        "no reasoning on completions"
    );
}

#[tokio::test]
async fn validation_prompt_is_answered_then_stops() {
    let server = Server::start(Script::new().ttft(MS).inter_token(MS)).unwrap();
    let task = task(4821);
    let prompt = format!("You are a careful assistant.\n{}", task.instruction());
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat(&prompt, json!({"max_tokens": 100})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert_eq!(sse.content_text(), task.answer());
    let answer_tokens = Tokenizer::bundled().count(&task.answer());
    assert_eq!(sse.content().len(), answer_tokens, "one event per token");
    assert_eq!(sse.usage()["completion_tokens"], answer_tokens);
    let finish: Vec<Value> = sse
        .events
        .iter()
        .filter(|e| !e.is_done())
        .map(|e| e.json()["choices"][0]["finish_reason"].clone())
        .filter(|reason| !reason.is_null())
        .collect();
    assert_eq!(finish, [json!("stop")]);
}

#[tokio::test]
async fn ignore_eos_and_min_tokens_fill_to_max_tokens() {
    let server = Server::start(Script::new().ttft(MS).inter_token(Duration::ZERO)).unwrap();
    let task = task(77);
    let answer = task.answer();
    for extra in [
        json!({"max_tokens": 30, "ignore_eos": true}),
        json!({"max_tokens": 30, "min_tokens": 30}),
    ] {
        let (start, response) = post(
            &server,
            "/chat/completions",
            &chat(&task.instruction(), extra),
        )
        .await;
        let sse = read_sse(response, start, Duration::from_secs(2)).await;
        let text = sse.content_text();
        assert!(text.starts_with(&answer), "{text:?}");
        assert_eq!(sse.usage()["completion_tokens"], 30);
        assert_eq!(Tokenizer::bundled().count(&text), 30);
    }
    // Fewer tokens allowed than the answer has: cut, finish_reason length.
    let body = chat(
        &task.instruction(),
        json!({"max_tokens": 1, "stream": false}),
    );
    let (_, response) = post(&server, "/chat/completions", &body).await;
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], "length");
    assert_eq!(json["usage"]["completion_tokens"], 1);
    assert!(answer.starts_with(json["choices"][0]["message"]["content"].as_str().unwrap()));
}

#[tokio::test]
async fn keep_alive_crlf_reasoning_and_grouped_tokens() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(40))
            .inter_token(Duration::from_millis(4))
            .tokens_per_event(3)
            .reasoning_tokens(2)
            .keep_alive(true)
            .crlf(true),
    )
    .unwrap();
    let (start, response) = post(
        &server,
        "/chat/completions",
        // The limit counts reasoning too: 2 reasoning + 9 content tokens.
        &chat("hi", json!({"max_tokens": 11})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(sse.events.iter().all(|e| e.raw.ends_with("\r\n\r\n")));
    let keep_alive = &sse.events[1];
    assert_eq!(keep_alive.comment.as_deref(), Some("keep-alive"));
    assert!(
        within(keep_alive.at, 15, 35),
        "halfway to the first token: {:?}",
        keep_alive.at
    );
    let reasoning: Vec<&Event> = sse
        .events
        .iter()
        .filter(|e| {
            e.data
                .as_deref()
                .is_some_and(|d| d.contains("reasoning_content"))
        })
        .collect();
    assert_eq!(reasoning.len(), 1, "2 reasoning tokens fit one event of 3");
    assert!(within(reasoning[0].at, 40, 55), "reasoning starts at ttft");
    let content = sse.content();
    assert_eq!(content.len(), 3, "9 content tokens in events of 3");
    // Content starts 2 reasoning tokens later; each event of 3 tokens 12 ms
    // after the one before (absolute deadlines: 48, 60, 72 ms).
    for (i, (at, _)) in content.iter().enumerate() {
        let nominal = 48 + 12 * i as u64;
        assert!(within(*at, nominal, nominal + 15), "event {i} at {at:?}");
    }
    assert_eq!(sse.usage()["completion_tokens"], 11);
    assert_eq!(
        sse.usage()["completion_tokens_details"]["reasoning_tokens"],
        2
    );
}

#[tokio::test]
async fn prefill_cost_scales_with_prompt_tokens() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(10))
            .ttft_per_prompt_token(Duration::from_millis(1))
            .output_tokens(1),
    )
    .unwrap();
    let prompt = " the".repeat(60);
    assert_eq!(Tokenizer::bundled().count(&prompt), 60);
    let (start, response) = post(&server, "/chat/completions", &chat(&prompt, json!({}))).await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    let ttft = sse.content()[0].0;
    assert!(within(ttft, 70, 90), "10 ms + 60 × 1 ms: {ttft:?}");
}

#[tokio::test]
async fn status_faults_answer_with_an_openai_error() {
    let server = Server::start(
        Script::new()
            .fault(Fault::Status(429), FaultSchedule::Every(2))
            .fault(Fault::Status(503), FaultSchedule::Every(1)),
    )
    .unwrap();
    let (_, first) = post(&server, "/chat/completions", &chat("hi", json!({}))).await;
    assert_eq!(first.status(), 503);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], 503);
    assert!(body["error"]["message"].as_str().unwrap().contains("503"));
    let (_, second) = post(&server, "/chat/completions", &chat("hi", json!({}))).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(server.stats().faults_injected, 2);
    assert_eq!(server.stats().max_in_flight, 0, "never admitted");
}

fn faulty(fault: Fault) -> Server {
    Server::start(
        Script::new()
            .ttft(Duration::from_millis(10))
            .inter_token(Duration::from_millis(2))
            .fault(fault, FaultSchedule::Every(1)),
    )
    .unwrap()
}

#[tokio::test]
async fn disconnect_fault_breaks_the_body_after_half() {
    let server = faulty(Fault::Disconnect);
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(
        sse.error.is_some(),
        "a body error, not a clean end: {sse:?}"
    );
    assert_eq!(sse.content().len(), 10);
    assert!(!sse.done());
    assert_eq!(server.stats().faults_injected, 1);
}

#[tokio::test]
async fn malformed_event_fault_sends_invalid_json_mid_stream() {
    let server = faulty(Fault::MalformedEvent);
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    let bad = sse
        .events
        .iter()
        .position(|e| e.data.as_deref() == Some(r#"{"choices": ["#))
        .expect("the malformed event");
    let before = sse.events[..bad]
        .iter()
        .filter(|e| e.chat_content().is_some_and(|c| !c.is_empty()));
    assert_eq!(before.count(), 10, "in the middle");
    assert_eq!(sse.content().len(), 20, "otherwise normal");
    assert!(sse.done() && sse.error.is_none());
}

#[tokio::test]
async fn stall_fault_goes_silent_after_half_until_the_client_leaves() {
    let server = faulty(Fault::Stall);
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    // The read gives up after 300 ms without a byte.
    let sse = read_sse(response, start, Duration::from_millis(300)).await;
    assert!(sse.silent, "{sse:?}");
    assert_eq!(sse.content().len(), 10);
    assert!(!sse.done());
    assert_eq!(server.state.in_flight(), 1);
    // The client dropped the response: the server notices and frees the slot.
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.state.in_flight() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        server.state.in_flight(),
        0,
        "a stall ends when the client goes away"
    );
}

#[tokio::test]
async fn stream_error_fault_ends_with_an_error_event() {
    let server = faulty(Fault::StreamError);
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(sse.error.is_none() && !sse.silent, "a clean end: {sse:?}");
    let last = sse.events.last().unwrap().json();
    assert_eq!(
        last,
        json!({"error": {"message": "injected stream error", "type": "server_error", "code": 500}})
    );
    assert_eq!(sse.content().len(), 10);
    assert!(!sse.done());
}

#[tokio::test]
async fn missing_done_fault_ends_without_done() {
    let server = faulty(Fault::MissingDone);
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(sse.error.is_none() && !sse.silent);
    assert_eq!(sse.content().len(), 20);
    assert_eq!(sse.usage()["completion_tokens"], 20);
    assert!(!sse.done());
    // Not applicable without a stream: not injected, not counted.
    let (_, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"stream": false})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.stats().faults_injected, 1);
}

#[tokio::test]
async fn crossover_fault_answers_with_another_requests_number() {
    let server = Server::start(
        Script::new()
            .ttft(MS)
            .inter_token(Duration::ZERO)
            .fault(Fault::CrossOver, FaultSchedule::Every(2)),
    )
    .unwrap();
    let ask = |number| chat(&task(number).instruction(), json!({"stream": false}));
    let answer = |json: Value| {
        json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (_, first) = post(&server, "/chat/completions", &ask(111)).await;
    assert_eq!(answer(first.json().await.unwrap()), task(111).answer());
    let (_, second) = post(&server, "/chat/completions", &ask(222)).await;
    assert_eq!(
        answer(second.json().await.unwrap()),
        task(111).answer(),
        "request 1's number"
    );
    // A prompt without a task is not crossed (and the rule waits for the next even request).
    let (_, third) = post(&server, "/chat/completions", &ask(333)).await;
    assert_eq!(answer(third.json().await.unwrap()), task(333).answer());
    assert_eq!(server.stats().faults_injected, 1);

    let fresh = Server::start(
        Script::new()
            .ttft(MS)
            .fault(Fault::CrossOver, FaultSchedule::Every(1)),
    )
    .unwrap();
    let (_, alone) = post(&fresh, "/chat/completions", &ask(41)).await;
    assert_eq!(
        answer(alone.json().await.unwrap()),
        task(42).answer(),
        "none seen: number + 1"
    );
}

#[tokio::test]
async fn every_third_request_is_faulted() {
    let server = Server::start(
        Script::new()
            .ttft(MS)
            .output_tokens(2)
            .fault(Fault::Status(500), FaultSchedule::Every(3)),
    )
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..9 {
        let (_, response) = post(
            &server,
            "/chat/completions",
            &chat("hi", json!({"stream": false})),
        )
        .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 500, 200, 200, 500, 200, 200, 500]);
    let stats = server.stats();
    assert_eq!((stats.requests, stats.faults_injected), (9, 3));
}

#[tokio::test]
async fn concurrency_limit_queues_the_excess() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(50))
            .inter_token(Duration::from_millis(5))
            .output_tokens(10)
            .concurrency_limit(2),
    )
    .unwrap();
    let one = || async {
        let (start, response) = post(&server, "/chat/completions", &chat("hi", json!({}))).await;
        let sse = read_sse(response, start, Duration::from_secs(2)).await;
        assert!(sse.done());
        sse.content()[0].0
    };
    // All four in flight at once (joined in one task, so no 'static needed).
    let (a, b, c, d) = tokio::join!(one(), one(), one(), one());
    let mut ttfts = vec![a, b, c, d];
    ttfts.sort();
    // Two start at once; two wait for a slot (≈ 50 + 9 × 5 ms) first.
    assert!(ttfts[..2].iter().all(|t| within(*t, 50, 80)), "{ttfts:?}");
    assert!(ttfts[2..].iter().all(|t| within(*t, 140, 200)), "{ttfts:?}");
    assert_eq!(server.stats().max_in_flight, 2);
    assert_eq!(server.stats().requests, 4);
}

#[tokio::test]
async fn api_key_is_required_when_scripted() {
    let server = Server::start(Script::new().ttft(MS).require_api_key("sk-test")).unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", server.base_url());
    let body = chat("hi", json!({"stream": false, "max_tokens": 1}));
    for key in [None, Some("Bearer wrong"), Some("sk-test")] {
        let mut request = client.post(&url).json(&body);
        if let Some(key) = key {
            request = request.header("authorization", key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "invalid_api_key");
    }
    let response = client
        .post(&url)
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn azure_takes_the_scripted_key_as_api_key_or_as_a_bearer_token() {
    let server = Server::start(Script::new().ttft(MS).require_api_key("entra-token")).unwrap();
    let client = reqwest::Client::new();
    let url = format!(
        "{}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        server.root_url()
    );
    let body = chat("hi", json!({"stream": false, "max_tokens": 1}));
    let refused: [&[(&str, &str)]; 5] = [
        &[],
        &[("api-key", "wrong")],
        &[("authorization", "Bearer wrong")],
        // The key without the scheme, or under OpenAI's scheme name only.
        &[("authorization", "entra-token")],
        &[("api-key", "Bearer entra-token")],
    ];
    for headers in refused {
        let mut request = client.post(&url).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{headers:?}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "401", "{headers:?}");
    }
    let accepted: [&[(&str, &str)]; 3] = [
        &[("api-key", "entra-token")],
        &[("authorization", "Bearer entra-token")],
        // Either one right is enough, as on Azure.
        &[
            ("api-key", "stale"),
            ("authorization", "Bearer entra-token"),
        ],
    ];
    for headers in accepted {
        let mut request = client.post(&url).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{headers:?}");
    }
}

#[tokio::test]
async fn other_routes_and_bad_bodies() {
    let server = Server::start(Script::new().ttft(MS).output_tokens(1)).unwrap();
    let client = reqwest::Client::new();
    let base = server.base_url();

    let missing = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let json: Value = missing.json().await.unwrap();
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/nope"));

    let health = client
        .get(format!("http://{}/health", server.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let models: Value = client
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "llmperf-builtin");

    let wrong_method = client
        .get(format!("{base}/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);

    let bad = client
        .post(format!("{base}/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model": "m", "messages": [{"role": "user", "content": 5}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let json: Value = bad.json().await.unwrap();
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("invalid request body"), "{message}");
    assert_eq!(json["error"]["type"], "invalid_request_error");

    let no_messages = client
        .post(format!("{base}/chat/completions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_messages.status(), 400);
    let json: Value = no_messages.json().await.unwrap();
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages"));

    // The model a request names is the one /v1/models lists.
    let body = chat("hi", json!({"model": "my-model", "stream": false}));
    client
        .post(format!("{base}/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let models: Value = client
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "my-model");
}

#[tokio::test]
async fn odd_input_never_breaks_the_server() {
    // No inter-token time: one body asks for the most tokens there are.
    let script = Script::new()
        .ttft(MS)
        .inter_token(Duration::ZERO)
        .output_tokens(1);
    let server = Server::start(script).unwrap();
    let client = reqwest::Client::new();
    let base = server.base_url();
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"messages": [{"content": [{"type": "text"}]}], "max_tokens": 0, "stream": true}"#
            .to_vec(),
        br#"{"messages": [], "max_tokens": 18446744073709551615}"#.to_vec(),
        br#"{"messages": [{"content": "x"}], "stream": "yes"}"#.to_vec(),
        br#"{"prompt": [4294967295, 0]}"#.to_vec(),
        "{\"messages\": [{\"content\": \"\u{1F600}\\u0000\"}], \"max_tokens\": 3}"
            .as_bytes()
            .to_vec(),
    ];
    for body in bodies {
        for path in ["/chat/completions", "/completions"] {
            let response = client
                .post(format!("{base}{path}"))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(status == 200 || status == 400, "{status}");
            // Read to the end: streams must terminate too.
            let _ = response.bytes().await.unwrap();
        }
    }
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "still serving");
}

#[tokio::test]
async fn drop_shuts_down_promptly_mid_stream() {
    let server = faulty(Fault::Stall);
    let (_, mut response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    assert!(response.chunk().await.unwrap().is_some());
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The stalled stream ends with the server instead of hanging.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match response.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok());
}

#[tokio::test]
async fn faults_on_non_streaming_requests() {
    let body = chat("hi", json!({"stream": false, "max_tokens": 20}));

    // The connection drops before the response is complete: whether the
    // client had read the head yet is up to hyper's buffering.
    let server = faulty(Fault::Disconnect);
    let url = format!("{}/chat/completions", server.base_url());
    let result = reqwest::Client::new().post(url).json(&body).send().await;
    match result {
        Ok(response) => assert!(response.bytes().await.is_err(), "a broken body"),
        Err(error) => assert!(!error.is_status(), "{error}"),
    }

    let server = faulty(Fault::StreamError);
    let (_, response) = post(&server, "/chat/completions", &body).await;
    assert_eq!(response.status(), 500);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["message"], "injected stream error");

    let server = faulty(Fault::MalformedEvent);
    let (_, response) = post(&server, "/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"choices": ["#);

    let server = faulty(Fault::Stall);
    let (_, response) = post(&server, "/chat/completions", &body).await;
    let silent = tokio::time::timeout(Duration::from_millis(300), response.bytes()).await;
    assert!(silent.is_err(), "no body comes");
}

mod metrics;
