//! `GET /metrics`: the endpoint's own counts ([`Served`](super::state::Served))
//! in the Prometheus text format, under one real server's names, labels,
//! units and buckets ([`MetricsStyle`]).
//!
//! | figure | vLLM (V1) | SGLang | TGI | llama.cpp |
//! | --- | --- | --- | --- | --- |
//! | running | `vllm:num_requests_running` | `sglang:num_running_reqs` | `tgi_batch_current_size` | `llamacpp:requests_processing` |
//! | waiting | `vllm:num_requests_waiting` | `sglang:num_queue_reqs` | `tgi_queue_size` | `llamacpp:requests_deferred` |
//! | slots in use (KV cache) | `vllm:kv_cache_usage_perc` | `sglang:token_usage` | — | `llamacpp:kv_cache_usage_ratio` |
//! | preemptions (always 0) | `vllm:num_preemptions_total` | `sglang:num_retracted_requests_total` | — | — |
//! | prompt tokens | `vllm:prompt_tokens_total` | `sglang:prompt_tokens_total` | `tgi_request_input_length` (histogram) | `llamacpp:prompt_tokens_total` |
//! | generated tokens | `vllm:generation_tokens_total` | `sglang:generation_tokens_total` | `tgi_request_generated_tokens` (histogram) | `llamacpp:tokens_predicted_total` |
//! | requests | `vllm:request_success_total{finished_reason}` | `sglang:num_requests_total`, `sglang:num_aborted_requests_total` | `tgi_request_count`, `tgi_request_success` | — |
//! | TTFT | `vllm:time_to_first_token_seconds` | `sglang:time_to_first_token_seconds` | — | — |
//! | inter-token | `vllm:inter_token_latency_seconds` | `sglang:inter_token_latency_seconds` | `tgi_request_mean_time_per_token_duration` (per request) | — |
//! | end to end | `vllm:e2e_request_latency_seconds` | `sglang:e2e_request_latency_seconds` | `tgi_request_duration` | — |
//! | queue | `vllm:request_queue_time_seconds` | `sglang:queue_time_seconds` | `tgi_request_queue_duration` | — |
//!
//! Sources:
//! - vLLM: `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger`): labels
//!   `model_name` and `engine`, the buckets below, `finished_reason` from
//!   `FINISH_REASON_STRINGS` in `vllm/v1/engine/__init__.py`. Current vLLM
//!   no longer emits `vllm:gpu_cache_usage_perc` (deprecated in 0.9, then
//!   removed) and hides `vllm:time_per_output_token_seconds` (deprecated
//!   in 0.11 for `vllm:inter_token_latency_seconds`), so neither is served.
//!   prometheus_client writes counters' `# TYPE` under the `_total` name
//!   and numbers Go-style (`3.0`, `8.128902e+06`).
//! - SGLang: `python/sglang/srt/metrics/collector.py`
//!   (`SchedulerMetricsCollector`, `TokenizerMetricsCollector`) and the
//!   scheduler's labels (`model_name`, `engine_type`, `tp_rank`, `pp_rank`,
//!   `moe_ep_rank`). prometheus_client (vLLM's and SGLang's) writes each
//!   sample's labels sorted by name.
//! - TGI: `router/src/server.rs` (the `metrics` calls, the buckets set on
//!   `PrometheusBuilder`) and `docs/source/reference/metrics.md`; the
//!   `metrics-exporter-prometheus` crate writes counters as integers
//!   without a `_total` suffix, no labels, a blank line between families.
//! - llama.cpp: `tools/server/server.cpp` (`handle_metrics`): every name
//!   `llamacpp:`-prefixed, no labels, numbers as C++ streams print a
//!   double (6 significant digits). `kv_cache_usage_ratio` is from the
//!   releases of 2024–mid 2025 (later ones dropped it).

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::body::ResponseBody;
use super::exposition::{Exposition, Numbers};
use super::histogram::HistogramSnapshot;
use super::protocol::openai_error;
use super::request::DEFAULT_MODEL;
use super::state::State;
use crate::spec::MetricsStyle;

/// The Prometheus text format's content type, as prometheus_client sends it.
const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// vLLM's `vllm:time_to_first_token_seconds` buckets.
const VLLM_TTFT: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's `vllm:inter_token_latency_seconds` buckets.
const VLLM_ITL: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's `request_latency_buckets` (end to end, queue).
const VLLM_REQUEST: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// SGLang's default `sglang:time_to_first_token_seconds` buckets.
const SGLANG_TTFT: &[f64] = &[
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0,
    400.0,
];
/// SGLang's default `sglang:inter_token_latency_seconds` buckets.
const SGLANG_ITL: &[f64] = &[
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080,
    0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
];
/// SGLang's default `sglang:e2e_request_latency_seconds` buckets.
const SGLANG_E2E: &[f64] = &[
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0,
    400.0, 600.0, 1200.0, 1800.0, 2400.0,
];
/// SGLang's `sglang:queue_time_seconds` buckets.
const SGLANG_QUEUE: &[f64] = &[
    0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0,
    80.0, 90.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1200.0,
    1400.0, 1600.0, 1800.0, 2000.0, 2500.0, 3000.0,
];
/// The token limits TGI's length buckets are cut from (its router makes 100
/// even buckets up to `--max-input-tokens` and `--max-total-tokens`); the
/// values of a TGI started with `--max-input-tokens 4095 --max-total-tokens 4096`.
const TGI_MAX_INPUT_TOKENS: f64 = 4095.0;
const TGI_MAX_TOTAL_TOKENS: f64 = 4096.0;

/// Each histogram's bounds for one style (a style without the histogram
/// gets vLLM's, never shown).
pub(crate) struct Buckets {
    pub(crate) time_to_first_token: Vec<f64>,
    pub(crate) inter_token_latency: Vec<f64>,
    pub(crate) e2e_latency: Vec<f64>,
    pub(crate) queue_time: Vec<f64>,
    pub(crate) mean_time_per_token: Vec<f64>,
    pub(crate) input_length: Vec<f64>,
    pub(crate) generated_tokens: Vec<f64>,
}

impl Buckets {
    pub(crate) fn of(style: MetricsStyle) -> Buckets {
        let vllm = Buckets {
            time_to_first_token: VLLM_TTFT.to_vec(),
            inter_token_latency: VLLM_ITL.to_vec(),
            e2e_latency: VLLM_REQUEST.to_vec(),
            queue_time: VLLM_REQUEST.to_vec(),
            mean_time_per_token: VLLM_ITL.to_vec(),
            input_length: Vec::new(),
            generated_tokens: Vec::new(),
        };
        match style {
            MetricsStyle::Sglang => Buckets {
                time_to_first_token: SGLANG_TTFT.to_vec(),
                inter_token_latency: SGLANG_ITL.to_vec(),
                e2e_latency: SGLANG_E2E.to_vec(),
                queue_time: SGLANG_QUEUE.to_vec(),
                ..vllm
            },
            MetricsStyle::Tgi => {
                // router/src/server.rs: 35 bounds, 0.0001 × 1.5^k seconds.
                let mut durations = Vec::with_capacity(35);
                let mut value = 0.0001;
                for _ in 0..35 {
                    value *= 1.5;
                    durations.push(value);
                }
                let even = |max: f64| (0..100).map(|x| max / 100.0 * (x + 1) as f64).collect();
                Buckets {
                    e2e_latency: durations.clone(),
                    queue_time: durations.clone(),
                    mean_time_per_token: durations,
                    input_length: even(TGI_MAX_INPUT_TOKENS),
                    generated_tokens: even(TGI_MAX_TOTAL_TOKENS),
                    ..vllm
                }
            }
            _ => vllm,
        }
    }
}

/// The answer to `GET /metrics`.
pub(crate) fn response(state: &State) -> Response<ResponseBody> {
    let style = state.script.metrics;
    let text = match style {
        MetricsStyle::Off => {
            return openai_error(
                StatusCode::NOT_FOUND,
                "this server has no metrics (the script's metrics style is `off`)",
                "invalid_request_error",
                Value::Null,
            )
        }
        MetricsStyle::NotPrometheus => {
            return with_type(NOT_PROMETHEUS_PAGE.into(), "text/html; charset=utf-8")
        }
        _ => render(style, &Figures::now(state)),
    };
    with_type(text, CONTENT_TYPE_PROMETHEUS)
}

/// A gateway's catch-all page.
const NOT_PROMETHEUS_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n\
     <body><h1>Welcome</h1><p>This gateway serves its application here.</p></body></html>\n";

fn with_type(text: String, content_type: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::now(Bytes::from(text)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Everything `/metrics` shows, read at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    pub(crate) model: String,
    pub(crate) requests: u64,
    pub(crate) running: usize,
    pub(crate) waiting: usize,
    /// Running over the concurrency limit (0 without one), 0–1.
    pub(crate) slot_usage: f64,
    pub(crate) prompt_tokens: u64,
    pub(crate) generation_tokens: u64,
    pub(crate) finished_stop: u64,
    pub(crate) finished_length: u64,
    pub(crate) aborted: u64,
    pub(crate) time_to_first_token: HistogramSnapshot,
    pub(crate) inter_token_latency: HistogramSnapshot,
    pub(crate) e2e_latency: HistogramSnapshot,
    pub(crate) queue_time: HistogramSnapshot,
    pub(crate) mean_time_per_token: HistogramSnapshot,
    pub(crate) input_length: HistogramSnapshot,
    pub(crate) generated_per_request: HistogramSnapshot,
}

impl Figures {
    fn now(state: &State) -> Figures {
        use std::sync::atomic::Ordering::Relaxed;
        let served = &state.served;
        Figures {
            model: state.model().unwrap_or_else(|| DEFAULT_MODEL.to_string()),
            requests: state.requests(),
            running: state.running(),
            waiting: served.waiting(),
            slot_usage: state.slot_usage(),
            prompt_tokens: served.prompt_tokens.load(Relaxed),
            generation_tokens: served.generation_tokens.load(Relaxed),
            finished_stop: served.finished_stop.load(Relaxed),
            finished_length: served.finished_length.load(Relaxed),
            aborted: served.aborted.load(Relaxed),
            time_to_first_token: served.time_to_first_token.snapshot(),
            inter_token_latency: served.inter_token_latency.snapshot(),
            e2e_latency: served.e2e_latency.snapshot(),
            queue_time: served.queue_time.snapshot(),
            mean_time_per_token: served.mean_time_per_token.snapshot(),
            input_length: served.input_length.snapshot(),
            generated_per_request: served.generated_per_request.snapshot(),
        }
    }
}

/// `figures` in `style`'s exposition (a Prometheus style, not `Off` or
/// `NotPrometheus`, which render as vLLM's).
pub(crate) fn render(style: MetricsStyle, figures: &Figures) -> String {
    match style {
        MetricsStyle::Sglang => sglang(figures),
        MetricsStyle::Tgi => tgi(figures),
        MetricsStyle::LlamaCpp => llama_cpp(figures),
        _ => vllm(figures),
    }
}

fn vllm(f: &Figures) -> String {
    let mut out = Exposition::new(Numbers::Python, true);
    let labels = [("model_name", f.model.as_str()), ("engine", "0")];
    let gauge = |out: &mut Exposition, name, help, value| {
        out.family(name, "gauge", help);
        out.sample(name, &labels, value);
    };
    gauge(
        &mut out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        f.running as f64,
    );
    gauge(
        &mut out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        f.waiting as f64,
    );
    gauge(
        &mut out,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        f.slot_usage,
    );
    let counter = |out: &mut Exposition, name, help, value: u64| {
        out.family(name, "counter", help);
        out.sample(name, &labels, value as f64);
    };
    counter(
        &mut out,
        "vllm:num_preemptions_total",
        "Cumulative number of preemption from the engine.",
        0,
    );
    counter(
        &mut out,
        "vllm:prompt_tokens_total",
        "Number of prefill tokens processed.",
        f.prompt_tokens,
    );
    counter(
        &mut out,
        "vllm:generation_tokens_total",
        "Number of generation tokens processed.",
        f.generation_tokens,
    );
    let name = "vllm:request_success_total";
    out.family(name, "counter", "Count of successfully processed requests.");
    for (reason, value) in [
        ("stop", f.finished_stop),
        ("length", f.finished_length),
        ("abort", f.aborted),
        ("error", 0),
        ("repetition", 0),
    ] {
        let labels = [
            ("model_name", f.model.as_str()),
            ("engine", "0"),
            ("finished_reason", reason),
        ];
        out.sample(name, &labels, value as f64);
    }
    for (name, help, snapshot) in [
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &f.time_to_first_token,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &f.inter_token_latency,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &f.e2e_latency,
        ),
        (
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &f.queue_time,
        ),
    ] {
        out.histogram(name, help, &labels, snapshot);
    }
    out.text
}

fn sglang(f: &Figures) -> String {
    let mut out = Exposition::new(Numbers::Python, true);
    let model = f.model.as_str();
    let scheduler = [
        ("model_name", model),
        ("engine_type", "unified"),
        ("tp_rank", "0"),
        ("pp_rank", "0"),
        ("moe_ep_rank", "0"),
    ];
    let tokenizer = [("model_name", model)];
    for (name, help, value) in [
        (
            "sglang:num_running_reqs",
            "The number of running requests.",
            f.running as f64,
        ),
        (
            "sglang:num_queue_reqs",
            "The number of requests in the waiting queue.",
            f.waiting as f64,
        ),
        ("sglang:token_usage", "The token usage.", f.slot_usage),
    ] {
        out.family(name, "gauge", help);
        out.sample(name, &scheduler, value);
    }
    let name = "sglang:num_retracted_requests_total";
    out.family(name, "counter", "Total number of retracted requests.");
    out.sample(name, &scheduler, 0.0);
    for (name, help, value) in [
        (
            "sglang:prompt_tokens_total",
            "Number of prefill tokens processed.",
            f.prompt_tokens,
        ),
        (
            "sglang:generation_tokens_total",
            "Number of generation tokens processed.",
            f.generation_tokens,
        ),
        (
            "sglang:num_requests_total",
            "Number of requests processed.",
            f.finished_stop + f.finished_length,
        ),
        (
            "sglang:num_aborted_requests_total",
            "Number of requests aborted.",
            f.aborted,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &tokenizer, value as f64);
    }
    for (name, help, snapshot) in [
        (
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &f.time_to_first_token,
        ),
        (
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &f.inter_token_latency,
        ),
        (
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            &f.e2e_latency,
        ),
    ] {
        out.histogram(name, help, &tokenizer, snapshot);
    }
    out.histogram(
        "sglang:queue_time_seconds",
        "Histogram of queueing time in seconds.",
        &scheduler,
        &f.queue_time,
    );
    out.text
}

fn tgi(f: &Figures) -> String {
    let mut out = Exposition::new(Numbers::Rust, false);
    out.blank_lines = true;
    for (name, help, value) in [
        ("tgi_request_count", "Total number of requests", f.requests),
        (
            "tgi_request_success",
            "Number of successful requests",
            f.finished_stop + f.finished_length,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &[], value as f64);
    }
    for (name, help, value) in [
        ("tgi_queue_size", "Current queue size", f.waiting),
        ("tgi_batch_current_size", "Current batch size", f.running),
    ] {
        out.family(name, "gauge", help);
        out.sample(name, &[], value as f64);
    }
    for (name, help, snapshot) in [
        (
            "tgi_request_input_length",
            "Input token length per request",
            &f.input_length,
        ),
        (
            "tgi_request_generated_tokens",
            "Generated tokens per request",
            &f.generated_per_request,
        ),
        (
            "tgi_request_duration",
            "Total time spent processing the request (e2e latency)",
            &f.e2e_latency,
        ),
        (
            "tgi_request_queue_duration",
            "Time spent in the queue per request",
            &f.queue_time,
        ),
        (
            "tgi_request_mean_time_per_token_duration",
            "Mean time per token per request (inter-token latency)",
            &f.mean_time_per_token,
        ),
    ] {
        out.histogram(name, help, &[], snapshot);
    }
    out.text
}

fn llama_cpp(f: &Figures) -> String {
    let mut out = Exposition::new(Numbers::Cpp, false);
    for (kind, name, help, value) in [
        (
            "counter",
            "llamacpp:prompt_tokens_total",
            "Number of prompt tokens processed.",
            f.prompt_tokens as f64,
        ),
        (
            "counter",
            "llamacpp:tokens_predicted_total",
            "Number of generation tokens processed.",
            f.generation_tokens as f64,
        ),
        (
            "gauge",
            "llamacpp:kv_cache_usage_ratio",
            "KV-cache usage. 1 means 100 percent usage.",
            f.slot_usage,
        ),
        (
            "gauge",
            "llamacpp:requests_processing",
            "Number of requests processing.",
            f.running as f64,
        ),
        (
            "gauge",
            "llamacpp:requests_deferred",
            "Number of requests deferred.",
            f.waiting as f64,
        ),
    ] {
        out.family(name, kind, help);
        out.sample(name, &[], value);
    }
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgi_buckets_follow_its_router() {
        let buckets = Buckets::of(MetricsStyle::Tgi);
        assert_eq!(buckets.e2e_latency.len(), 35);
        assert!((buckets.e2e_latency[0] - 0.00015).abs() < 1e-12);
        assert_eq!(buckets.generated_tokens.len(), 100);
        assert_eq!(buckets.generated_tokens[99], TGI_MAX_TOTAL_TOKENS);
    }
}
