//! The script: what the built-in endpoint does with each request (timing,
//! output size, faults). Plain data with a builder, so a benchmark can record
//! the script it ran against next to its results.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the built-in endpoint does with each request.
///
/// A builder: start from [`Script::new`] (the defaults below) and chain
/// the setters. Serialized (e.g. into a results file) with durations as
/// fractional milliseconds in fields named `*_ms`; fields missing from JSON
/// take their defaults.
///
/// | setting | default |
/// | --- | --- |
/// | `ttft` | 100 ms |
/// | `inter_token` | 10 ms |
/// | `jitter` | 0 |
/// | `tokens_per_event` | 1 |
/// | `ttft_per_prompt_token` | 0 |
/// | `concurrency_limit` | none |
/// | `output_tokens` | 128 |
/// | `reasoning_tokens` | 0 |
/// | `keep_alive`, `crlf` | off |
/// | `seed` | 0 |
/// | faults, API key | none |
/// | `server_threads` | 1 |
/// | `connections` | keep-alive |
/// | `omit_usage`, `long_words` | off |
/// | `metrics` | vLLM's names |
///
/// ```
/// use std::time::Duration;
/// use llmperf::builtin::{Fault, FaultSchedule, Script};
///
/// let script = Script::new()
///     .ttft(Duration::from_millis(50))
///     .inter_token(Duration::from_millis(5))
///     .output_tokens(64)
///     .fault(Fault::Status(503), FaultSchedule::Every(10));
/// let json = serde_json::to_value(&script).unwrap();
/// assert_eq!(json["ttft_ms"], 50.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Script {
    #[serde(rename = "ttft_ms", with = "crate::spec::duration_ms")]
    pub(crate) ttft: Duration,
    #[serde(rename = "inter_token_ms", with = "crate::spec::duration_ms")]
    pub(crate) inter_token: Duration,
    #[serde(rename = "jitter_ms", with = "crate::spec::duration_ms")]
    pub(crate) jitter: Duration,
    pub(crate) tokens_per_event: u32,
    #[serde(rename = "ttft_per_prompt_token_ms", with = "crate::spec::duration_ms")]
    pub(crate) ttft_per_prompt_token: Duration,
    pub(crate) concurrency_limit: Option<usize>,
    pub(crate) output_tokens: u32,
    pub(crate) reasoning_tokens: u32,
    pub(crate) keep_alive: bool,
    pub(crate) crlf: bool,
    pub(crate) seed: u64,
    /// Read from a script file but never written out, so a results file
    /// that records the script does not record a key.
    #[serde(skip_serializing)]
    pub(crate) api_key: Option<String>,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) server_threads: usize,
    pub(crate) connections: Connections,
    pub(crate) omit_usage: bool,
    pub(crate) long_words: bool,
    /// Left out when default, so results recorded before `/metrics`
    /// existed compare equal to new ones (`baseline::differences`).
    #[serde(skip_serializing_if = "is_default_metrics")]
    pub(crate) metrics: MetricsStyle,
}

fn is_default_metrics(style: &MetricsStyle) -> bool {
    *style == MetricsStyle::default()
}

impl Default for Script {
    fn default() -> Self {
        Script {
            ttft: Duration::from_millis(100),
            inter_token: Duration::from_millis(10),
            jitter: Duration::ZERO,
            tokens_per_event: 1,
            ttft_per_prompt_token: Duration::ZERO,
            concurrency_limit: None,
            output_tokens: 128,
            reasoning_tokens: 0,
            keep_alive: false,
            crlf: false,
            seed: 0,
            api_key: None,
            faults: Vec::new(),
            server_threads: 1,
            connections: Connections::KeepAlive,
            omit_usage: false,
            long_words: false,
            metrics: MetricsStyle::Vllm,
        }
    }
}

impl Script {
    /// The default script (see the table on [`Script`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Time from admission (request body read and a concurrency slot
    /// acquired) to the first content token event.
    pub fn ttft(mut self, d: Duration) -> Self {
        self.ttft = d;
        self
    }

    /// Time per token after the first.
    pub fn inter_token(mut self, d: Duration) -> Self {
        self.inter_token = d;
        self
    }

    /// Uniform ±`d` added to each token event's deadline, drawn from the
    /// seeded generator (deadlines never move before admission).
    pub fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }

    /// Tokens carried by each SSE event; an event with `k` tokens comes
    /// `k * inter_token` after the previous one. `0` is taken as `1`.
    pub fn tokens_per_event(mut self, n: u32) -> Self {
        self.tokens_per_event = n.max(1);
        self
    }

    /// Extra time to first token per prompt token (a prefill cost), counted
    /// with the bundled `cl100k_base` tokenizer.
    pub fn ttft_per_prompt_token(mut self, d: Duration) -> Self {
        self.ttft_per_prompt_token = d;
        self
    }

    /// At most `n` requests are generated at once; later ones queue for a
    /// slot, and their time to first token includes the wait. `0` is taken
    /// as `1` (a limit of zero would hang every request).
    pub fn concurrency_limit(mut self, n: usize) -> Self {
        self.concurrency_limit = Some(n.max(1));
        self
    }

    /// Content tokens generated when a request sets no `max_tokens` (or
    /// `max_completion_tokens`).
    pub fn output_tokens(mut self, n: u32) -> Self {
        self.output_tokens = n;
        self
    }

    /// Reasoning tokens streamed as `delta.reasoning_content` before the
    /// content (chat only), starting at the time to first token; content then
    /// starts `n * inter_token` later. They are counted in
    /// `completion_tokens` and `completion_tokens_details.reasoning_tokens`,
    /// and, as real servers count them, within a request's `max_tokens`:
    /// the content gets what the reasoning leaves of it (a request without
    /// one gets the script's output tokens on top of the reasoning).
    pub fn reasoning_tokens(mut self, n: u32) -> Self {
        self.reasoning_tokens = n;
        self
    }

    /// Send the SSE comment `: keep-alive` before the first token (halfway
    /// between admission and the first token), as proxies and some servers
    /// do; a client must skip it and not count it as a token.
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// Use `\r\n` line endings in the SSE stream (allowed by the SSE spec,
    /// and sent by some servers).
    pub fn crlf(mut self, on: bool) -> Self {
        self.crlf = on;
        self
    }

    /// Seed of the generator behind filler words, jitter and probabilistic
    /// faults; the same seed gives the same outputs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Answer 401 (in the protocol's error shape) unless the request carries
    /// `key` where its protocol puts it: `Authorization: Bearer <key>` on
    /// the OpenAI, TGI, Together and Vertex paths, `x-api-key` on
    /// Anthropic's, `api-key` or `Authorization: Bearer` (where an Entra ID
    /// token goes) on Azure OpenAI's. SageMaker's path checks its SigV4
    /// signature instead.
    pub fn require_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Inject `fault` on the requests `schedule` picks. May be called several
    /// times; for each request the first rule whose schedule fires wins.
    pub fn fault(mut self, fault: Fault, schedule: FaultSchedule) -> Self {
        self.faults.push(FaultRule { fault, schedule });
        self
    }

    /// How connections are kept or closed (default: HTTP/1.1 keep-alive);
    /// see [`Connections`](Connections).
    ///
    /// ```
    /// use llmperf::builtin::{Connections, Script};
    /// // As llama.cpp's llama-server: promise keep-alive, close after each stream.
    /// let script = Script::new().connections(Connections::CloseAfterResponse);
    /// # let _ = script;
    /// ```
    pub fn connections(mut self, connections: Connections) -> Self {
        self.connections = connections;
        self
    }

    /// Never send `usage`, even when asked (`stream_options.include_usage`),
    /// as llama-cpp-python's server, older vLLM and TGI releases and many
    /// proxies do: the client must count tokens itself. OpenAI-format
    /// streams (chat, completions, Azure, Together's inference API).
    pub fn omit_usage(mut self, on: bool) -> Self {
        self.omit_usage = on;
        self
    }

    /// Generate words that are one token each for this server but several
    /// for the client's `cl100k_base` (a model with another vocabulary), one
    /// per event: re-tokenising the text over-counts, the event count does not.
    pub fn long_words(mut self, on: bool) -> Self {
        self.long_words = on;
        self
    }

    /// How `GET /metrics` answers: the endpoint's own counts under one real
    /// server's Prometheus names ([`MetricsStyle`]; default vLLM's), no
    /// metrics at all, or a page that is not Prometheus text.
    ///
    /// ```
    /// use llmperf::builtin::{MetricsStyle, Script};
    /// let script = Script::new().metrics(MetricsStyle::Sglang);
    /// let json = serde_json::to_value(&script).unwrap();
    /// assert_eq!(json["metrics"], "sglang");
    /// ```
    pub fn metrics(mut self, style: MetricsStyle) -> Self {
        self.metrics = style;
        self
    }

    /// Worker threads of the server's own runtime (default 1; `0` is taken
    /// as `1`). More threads help only with many concurrent streams.
    pub fn server_threads(mut self, n: usize) -> Self {
        self.server_threads = n.max(1);
        self
    }
}

/// A fault the built-in endpoint can inject into a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this HTTP status and an OpenAI-style JSON error body
    /// `{"error":{"message","type","code"}}`; 429 also sends `retry-after: 1`.
    /// A number that is not a valid status is sent as 500.
    Status(u16),
    /// Stream half the tokens, then abort the connection: the client sees a
    /// body or connection error, not a clean end.
    Disconnect,
    /// One event with invalid JSON (`data: {"choices": [`) in the middle of
    /// an otherwise normal stream. A non-streaming response's whole body is
    /// that invalid JSON.
    MalformedEvent,
    /// Stream half the tokens, then send nothing more, until the client goes
    /// away or 10 minutes pass (then the connection is aborted).
    Stall,
    /// Answer a validation prompt with another request's number: the most
    /// recent validated number this server saw from a different request, or
    /// the prompt's number + 1 if there is none. No effect (and not counted)
    /// on a prompt without a validation task.
    CrossOver,
    /// After half the tokens, send `data: {"error":{"message":"injected
    /// stream error","type":"server_error","code":500}}` and end the stream
    /// without `[DONE]`. A non-streaming response becomes a 500 error.
    StreamError,
    /// A normal stream that ends without `data: [DONE]`. No effect (and not
    /// counted) on a non-streaming response.
    MissingDone,
    /// Hostile: a line that never ends. After the role chunk, the start of
    /// a content event, then `a` as fast as the connection takes it, never
    /// a newline, until the client goes away (at most 10 minutes).
    /// Streaming OpenAI chat and completions only (elsewhere it does not
    /// apply and is not counted).
    EndlessLine,
    /// Hostile: one content event of this many bytes of text (`llmperf builtin
    /// --fault huge-event` sends 50 MiB), then a normal end. Streaming
    /// OpenAI chat and completions only.
    HugeEvent {
        /// Bytes of text in the event (rounded up to 64 KiB).
        bytes: u64,
    },
    /// Hostile: this many one-token content events as fast as the
    /// connection takes them (`--fault event-flood` sends 2,000,000), then
    /// the finish reason, usage and `[DONE]`. Streaming OpenAI chat and
    /// completions only.
    EventFlood {
        /// Content events sent.
        events: u64,
    },
}

/// Which generation requests a [`Fault`] is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultSchedule {
    /// The n-th, 2n-th, … generation request the server receives (1-based,
    /// counting every request on a generation route). `Every(0)` never fires.
    Every(u64),
    /// Each request independently with this probability (clamped to 0..=1),
    /// drawn from the seeded generator in arrival order.
    Probability(f64),
}

/// One `fault(...)` call of the script.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct FaultRule {
    pub(crate) fault: Fault,
    pub(crate) schedule: FaultSchedule,
}

/// Durations as fractional milliseconds, the unit people script latencies in.
/// How the built-in endpoint treats connections ([`Script::connections`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connections {
    /// Kept open between requests (HTTP/1.1 keep-alive).
    #[default]
    KeepAlive,
    /// As llama.cpp's `llama-server`: every response advertises
    /// `Connection: keep-alive` and `Keep-Alive: timeout=5, max=100`, and
    /// the connection is closed right after the response ends (2 ms later,
    /// the server's own clean-up); a request that arrives on it meanwhile is
    /// not answered. A client that sends its next request at once meets a
    /// closed connection; one that waits finds it closed (a race, as with
    /// the real server: sometimes, not always).
    CloseAfterResponse,
    /// The same promise, the race lost every time: the connection stays
    /// open after a response, and a second request on it is not answered:
    /// the connection is closed as it arrives.
    CloseOnReuse,
    /// `Connection: close` on every response: nothing is reused.
    AnnounceClose,
    /// Honest limits, as Apache sends them: `Keep-Alive: timeout=T, max=N`
    /// with `max` counting down the requests the connection may still
    /// carry. A request past the last allowed one, or after more than `T`
    /// seconds idle, is not answered: the connection is closed as it arrives.
    Limited {
        /// Requests one connection serves.
        max_requests: u32,
        /// Seconds a connection may sit idle.
        idle_timeout_s: u32,
    },
}

/// What the built-in endpoint's `GET /metrics` serves ([`Script::metrics`]).
///
/// The figures are the endpoint's own truth, counted as it serves: requests
/// running (holding a concurrency slot) and waiting (for one), prompt tokens
/// (as the response's usage reports them), generated tokens (counted as
/// each event carrying them is handed to the connection, so a stream cut
/// by a fault counts only what it sent), finished requests, and latency
/// histograms in seconds measured from when the request's body was read.
/// The endpoint has no KV cache: its "KV-cache usage" is the share of
/// concurrency slots in use, running / [`Script::concurrency_limit`], and 0
/// when the script sets no limit. It never preempts; the preemption counter
/// stays 0. `docs/builtin-endpoint.md` lists each style's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsStyle {
    /// vLLM V1's names (`vllm:num_requests_running`,
    /// `vllm:time_to_first_token_seconds`, …), labels `model_name` and
    /// `engine="0"`, vLLM's histogram buckets.
    #[default]
    Vllm,
    /// SGLang's names (`sglang:num_running_reqs`, `sglang:token_usage`, …)
    /// and buckets.
    Sglang,
    /// Hugging Face TGI's names (`tgi_queue_size`, `tgi_request_duration`,
    /// …), as its Rust `metrics` exporter writes them: counters without
    /// `_total`, no labels, no time-to-first-token histogram.
    Tgi,
    /// llama.cpp `llama-server`'s names (`llamacpp:` prefix): counters and
    /// gauges only, no histograms.
    LlamaCpp,
    /// A server without metrics: `GET /metrics` is a 404.
    Off,
    /// A gateway's catch-all page: `GET /metrics` is a 200 `text/html` page,
    /// not Prometheus text.
    NotPrometheus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_durations_as_milliseconds_and_round_trips() {
        let script = Script::new()
            .ttft(Duration::from_micros(12_500))
            .inter_token(Duration::from_millis(5))
            .concurrency_limit(4)
            .fault(Fault::Status(429), FaultSchedule::Every(3))
            .fault(Fault::Stall, FaultSchedule::Probability(0.25));
        let json = serde_json::to_value(&script).unwrap();
        assert_eq!(json["ttft_ms"], 12.5);
        assert_eq!(json["inter_token_ms"], 5.0);
        assert_eq!(json["jitter_ms"], 0.0);
        assert_eq!(json["concurrency_limit"], 4);
        assert_eq!(
            json["faults"][0],
            serde_json::json!({"fault": {"status": 429}, "schedule": {"every": 3}})
        );
        assert_eq!(json["faults"][1]["fault"], "stall");
        let back: Script = serde_json::from_value(json).unwrap();
        assert_eq!(back, script);
        let keyed = Script::new().require_api_key("sk-secret");
        let json = serde_json::to_string(&keyed).unwrap();
        assert!(!json.contains("sk-secret"), "{json}");
        let read: Script = serde_json::from_str(r#"{"api_key": "k"}"#).unwrap();
        assert_eq!(read.api_key.as_deref(), Some("k"));
        assert!(serde_json::to_value(Script::new())
            .unwrap()
            .get("metrics")
            .is_none());
        let styled = Script::new().metrics(MetricsStyle::LlamaCpp);
        let json = serde_json::to_value(&styled).unwrap();
        assert_eq!(json["metrics"], "llama_cpp");
        assert_eq!(serde_json::from_value::<Script>(json).unwrap(), styled);
    }

    #[test]
    fn missing_fields_take_defaults_and_bad_durations_are_rejected() {
        let script: Script = serde_json::from_str(r#"{"ttft_ms": 20}"#).unwrap();
        assert_eq!(script.ttft, Duration::from_millis(20));
        assert_eq!(script.inter_token, Duration::from_millis(10));
        assert_eq!(script.output_tokens, 128);
        assert_eq!(script.server_threads, 1);
        assert_eq!(
            script.metrics,
            MetricsStyle::Vllm,
            "a script recorded before /metrics"
        );
        let error = serde_json::from_str::<Script>(r#"{"ttft_ms": -1}"#).unwrap_err();
        assert!(
            error.to_string().contains("-1 ms is not a duration"),
            "{error}"
        );
    }
}
