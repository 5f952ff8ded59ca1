//! The metrics llmperf knows by name: which family of which server fills
//! which [`Role`], read how, in which unit.
//!
//! Sources (each server's own code, where the names are defined):
//! - vLLM (V1 engine): `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger`),
//!   and the metrics design page `docs/design/metrics.md`;
//! - SGLang: `python/sglang/srt/metrics/collector.py`;
//! - TGI: `router/src/` (the `metrics` crate's Prometheus exporter: no
//!   `_total` suffix on counters; token counts are histograms);
//! - llama.cpp's server (`--metrics`): `tools/server/server-task.cpp`
//!   (`to_metrics`); its KV-cache gauge was removed in May 2025 (PR
//!   #13660) and is read where older builds still have it;
//! - NVIDIA Dynamo's frontend: `lib/runtime/src/metrics/prometheus_names.rs`.
//!
//! Not listed on purpose: TGI's `tgi_request_mean_time_per_token_duration`
//! (a per-request mean that includes the prefill, so not comparable with an
//! inter-token latency) and Triton's `nv_inference_*_duration_us` (cumulative
//! microsecond counters, not histograms). They stay in the series file.
//!
//! Where a server renamed a metric, both names are listed, the current one
//! first: a scrape uses, for each role, the first listed family it carries,
//! so a server that still emits the old name beside the new one is not
//! counted twice.

use serde::{Deserialize, Serialize};

/// What a known metric tells about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Requests being generated (in the running batch).
    RunningRequests,
    /// Requests queued, waiting to be scheduled.
    WaitingRequests,
    /// The share of the KV cache in use, 0–1.
    KvCacheUsage,
    /// Requests preempted (or retracted) to free cache.
    Preemptions,
    /// Prompt (prefill) tokens processed.
    PromptTokens,
    /// Tokens generated.
    GenerationTokens,
    /// Requests finished.
    FinishedRequests,
    /// The server's time to first token, ms.
    Ttft,
    /// The server's time between tokens, ms.
    Itl,
    /// The server's request latency, ms.
    E2e,
    /// Time requests waited in the server's queue, ms.
    QueueTime,
}

impl Role {
    /// Every role, in the order summaries list them.
    pub const ALL: [Role; 11] = [
        Role::RunningRequests,
        Role::WaitingRequests,
        Role::KvCacheUsage,
        Role::Preemptions,
        Role::PromptTokens,
        Role::GenerationTokens,
        Role::FinishedRequests,
        Role::Ttft,
        Role::Itl,
        Role::E2e,
        Role::QueueTime,
    ];

    /// The name in `summary.json` and in comparisons (`kv_cache_usage`).
    pub fn key(self) -> &'static str {
        match self {
            Role::RunningRequests => "running_requests",
            Role::WaitingRequests => "waiting_requests",
            Role::KvCacheUsage => "kv_cache_usage",
            Role::Preemptions => "preemptions",
            Role::PromptTokens => "prompt_tokens",
            Role::GenerationTokens => "generation_tokens",
            Role::FinishedRequests => "finished_requests",
            Role::Ttft => "ttft",
            Role::Itl => "itl",
            Role::E2e => "e2e",
            Role::QueueTime => "queue_time",
        }
    }

    /// How its values are summed up: a gauge, a counter or a histogram.
    pub fn shape(self) -> Shape {
        match self {
            Role::RunningRequests | Role::WaitingRequests | Role::KvCacheUsage => Shape::Gauge,
            Role::Preemptions
            | Role::PromptTokens
            | Role::GenerationTokens
            | Role::FinishedRequests => Shape::Counter,
            Role::Ttft | Role::Itl | Role::E2e | Role::QueueTime => Shape::Histogram,
        }
    }
}

/// How a role's values add up over a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A level value: mean and max over the scrapes.
    Gauge,
    /// A running total: its increase and rate.
    Counter,
    /// Observations in buckets: the increase's quantiles.
    Histogram,
}

/// How a known family's samples are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The sample named as the family.
    Gauge,
    /// The family's `_total` sample (or the bare name, as the Rust
    /// `metrics` exporter writes counters).
    Counter,
    /// The family's `_bucket`, `_sum` and `_count` samples.
    Histogram,
    /// The family's `_sum` as a counter: TGI counts tokens only as
    /// histograms of tokens per request.
    HistogramSum,
}

/// One family llmperf knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Known {
    /// The server that publishes it.
    pub server: &'static str,
    /// The family's name (no `_total`, `_bucket`, … suffix).
    pub family: &'static str,
    /// What it tells.
    pub role: Role,
    /// How its samples are read.
    pub read: Read,
    /// What a value is multiplied by: seconds to ms (1000), percent to a
    /// share (0.01), else 1.
    pub scale: f64,
}

const S: f64 = 1000.0;

const fn known(server: &'static str, family: &'static str, role: Role, read: Read) -> Known {
    let scale = match read {
        Read::Histogram => S,
        _ => 1.0,
    };
    Known {
        server,
        family,
        role,
        read,
        scale,
    }
}

/// Every family llmperf knows, the preferred first within a server's role.
pub const KNOWN: &[Known] = &[
    // vLLM
    known(
        "vllm",
        "vllm:num_requests_running",
        Role::RunningRequests,
        Read::Gauge,
    ),
    known(
        "vllm",
        "vllm:num_requests_waiting",
        Role::WaitingRequests,
        Read::Gauge,
    ),
    known(
        "vllm",
        "vllm:kv_cache_usage_perc",
        Role::KvCacheUsage,
        Read::Gauge,
    ),
    known(
        "vllm",
        "vllm:gpu_cache_usage_perc",
        Role::KvCacheUsage,
        Read::Gauge,
    ),
    known(
        "vllm",
        "vllm:num_preemptions",
        Role::Preemptions,
        Read::Counter,
    ),
    known(
        "vllm",
        "vllm:prompt_tokens",
        Role::PromptTokens,
        Read::Counter,
    ),
    known(
        "vllm",
        "vllm:generation_tokens",
        Role::GenerationTokens,
        Read::Counter,
    ),
    known(
        "vllm",
        "vllm:request_success",
        Role::FinishedRequests,
        Read::Counter,
    ),
    known(
        "vllm",
        "vllm:time_to_first_token_seconds",
        Role::Ttft,
        Read::Histogram,
    ),
    known(
        "vllm",
        "vllm:inter_token_latency_seconds",
        Role::Itl,
        Read::Histogram,
    ),
    known(
        "vllm",
        "vllm:time_per_output_token_seconds",
        Role::Itl,
        Read::Histogram,
    ),
    known(
        "vllm",
        "vllm:e2e_request_latency_seconds",
        Role::E2e,
        Read::Histogram,
    ),
    known(
        "vllm",
        "vllm:request_queue_time_seconds",
        Role::QueueTime,
        Read::Histogram,
    ),
    // SGLang
    known(
        "sglang",
        "sglang:num_running_reqs",
        Role::RunningRequests,
        Read::Gauge,
    ),
    known(
        "sglang",
        "sglang:num_queue_reqs",
        Role::WaitingRequests,
        Read::Gauge,
    ),
    known(
        "sglang",
        "sglang:token_usage",
        Role::KvCacheUsage,
        Read::Gauge,
    ),
    known(
        "sglang",
        "sglang:num_retracted_requests",
        Role::Preemptions,
        Read::Counter,
    ),
    known(
        "sglang",
        "sglang:prompt_tokens",
        Role::PromptTokens,
        Read::Counter,
    ),
    known(
        "sglang",
        "sglang:generation_tokens",
        Role::GenerationTokens,
        Read::Counter,
    ),
    known(
        "sglang",
        "sglang:num_requests",
        Role::FinishedRequests,
        Read::Counter,
    ),
    known(
        "sglang",
        "sglang:time_to_first_token_seconds",
        Role::Ttft,
        Read::Histogram,
    ),
    known(
        "sglang",
        "sglang:inter_token_latency_seconds",
        Role::Itl,
        Read::Histogram,
    ),
    known(
        "sglang",
        "sglang:time_per_output_token_seconds",
        Role::Itl,
        Read::Histogram,
    ),
    known(
        "sglang",
        "sglang:e2e_request_latency_seconds",
        Role::E2e,
        Read::Histogram,
    ),
    known(
        "sglang",
        "sglang:queue_time_seconds",
        Role::QueueTime,
        Read::Histogram,
    ),
    // TGI
    known(
        "tgi",
        "tgi_batch_current_size",
        Role::RunningRequests,
        Read::Gauge,
    ),
    known("tgi", "tgi_queue_size", Role::WaitingRequests, Read::Gauge),
    known(
        "tgi",
        "tgi_request_input_length",
        Role::PromptTokens,
        Read::HistogramSum,
    ),
    known(
        "tgi",
        "tgi_request_generated_tokens",
        Role::GenerationTokens,
        Read::HistogramSum,
    ),
    known(
        "tgi",
        "tgi_request_success",
        Role::FinishedRequests,
        Read::Counter,
    ),
    known("tgi", "tgi_request_duration", Role::E2e, Read::Histogram),
    known(
        "tgi",
        "tgi_request_queue_duration",
        Role::QueueTime,
        Read::Histogram,
    ),
    // llama.cpp
    known(
        "llama.cpp",
        "llamacpp:requests_processing",
        Role::RunningRequests,
        Read::Gauge,
    ),
    known(
        "llama.cpp",
        "llamacpp:requests_deferred",
        Role::WaitingRequests,
        Read::Gauge,
    ),
    known(
        "llama.cpp",
        "llamacpp:kv_cache_usage_ratio",
        Role::KvCacheUsage,
        Read::Gauge,
    ),
    known(
        "llama.cpp",
        "llamacpp:prompt_tokens",
        Role::PromptTokens,
        Read::Counter,
    ),
    known(
        "llama.cpp",
        "llamacpp:tokens_predicted",
        Role::GenerationTokens,
        Read::Counter,
    ),
    // NVIDIA Dynamo's frontend
    known(
        "dynamo",
        "dynamo_frontend_inflight_requests",
        Role::RunningRequests,
        Read::Gauge,
    ),
    known(
        "dynamo",
        "dynamo_frontend_queued_requests",
        Role::WaitingRequests,
        Read::Gauge,
    ),
    known(
        "dynamo",
        "dynamo_frontend_input_sequence_tokens",
        Role::PromptTokens,
        Read::HistogramSum,
    ),
    known(
        "dynamo",
        "dynamo_frontend_output_tokens",
        Role::GenerationTokens,
        Read::Counter,
    ),
    known(
        "dynamo",
        "dynamo_frontend_requests",
        Role::FinishedRequests,
        Read::Counter,
    ),
    known(
        "dynamo",
        "dynamo_frontend_time_to_first_token_seconds",
        Role::Ttft,
        Read::Histogram,
    ),
    known(
        "dynamo",
        "dynamo_frontend_inter_token_latency_seconds",
        Role::Itl,
        Read::Histogram,
    ),
    known(
        "dynamo",
        "dynamo_frontend_request_duration_seconds",
        Role::E2e,
        Read::Histogram,
    ),
];

/// Which part of a known family a sample is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    /// A gauge's value or a counter's total.
    Value,
    /// A histogram bucket with this upper bound (in the family's unit).
    Bucket(f64),
    /// A histogram's sum.
    Sum,
    /// A histogram's count.
    Count,
}

/// The known family a sample belongs to, and which part of it: `None`
/// for every sample llmperf does not digest (they stay in the file).
pub fn recognise(name: &str, le: Option<&str>) -> Option<(usize, Part)> {
    KNOWN.iter().enumerate().find_map(|(index, known)| {
        let rest = name.strip_prefix(known.family)?;
        let part = match (known.read, rest) {
            (Read::Gauge, "") => Part::Value,
            (Read::Counter, "" | "_total") => Part::Value,
            (Read::HistogramSum, "_sum") => Part::Value,
            (Read::Histogram, "_sum") => Part::Sum,
            (Read::Histogram, "_count") => Part::Count,
            (Read::Histogram, "_bucket") => Part::Bucket(parse_le(le?)?),
            _ => return None,
        };
        Some((index, part))
    })
}

fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        _ => le.parse().ok().filter(|v: &f64| !v.is_nan()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_family_and_names_are_unique() {
        for role in Role::ALL {
            assert!(KNOWN.iter().any(|k| k.role == role), "{role:?}");
        }
        for (i, a) in KNOWN.iter().enumerate() {
            for b in &KNOWN[i + 1..] {
                assert_ne!(a.family, b.family);
            }
            let shape_fits = matches!(
                (a.role.shape(), a.read),
                (Shape::Gauge, Read::Gauge)
                    | (Shape::Counter, Read::Counter | Read::HistogramSum)
                    | (Shape::Histogram, Read::Histogram)
            );
            assert!(shape_fits, "{a:?}");
        }
    }

    #[test]
    fn samples_are_recognised_by_part() {
        let family = |(index, part): (usize, Part)| (KNOWN[index].family, part);
        assert_eq!(
            recognise("vllm:generation_tokens_total", None).map(family),
            Some(("vllm:generation_tokens", Part::Value))
        );
        assert_eq!(
            recognise("vllm:time_to_first_token_seconds_bucket", Some("0.25")).map(family),
            Some(("vllm:time_to_first_token_seconds", Part::Bucket(0.25)))
        );
        assert_eq!(
            recognise("vllm:time_to_first_token_seconds_bucket", Some("+Inf")).map(family),
            Some((
                "vllm:time_to_first_token_seconds",
                Part::Bucket(f64::INFINITY)
            ))
        );
        assert_eq!(
            recognise("tgi_request_generated_tokens_sum", None).map(family),
            Some(("tgi_request_generated_tokens", Part::Value))
        );
        assert_eq!(
            recognise("tgi_request_generated_tokens_bucket", Some("1")),
            None
        );
        assert_eq!(recognise("vllm:num_requests_running_total", None), None);
        assert_eq!(recognise("vllm:prompt_tokens_created", None), None);
        assert_eq!(recognise("process_cpu_seconds_total", None), None);
    }
}
