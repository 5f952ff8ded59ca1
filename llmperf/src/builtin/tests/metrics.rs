//! `GET /metrics` over real sockets: each style's figures against what the
//! clients received.

use std::time::Duration;

use serde_json::json;

use super::*;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses an exposition line by line, failing on any line that is not a
/// `# HELP`/`# TYPE` comment, blank, or `name{labels} value`.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "{line}"
            );
            let name = comment[5..].split(' ').next().unwrap();
            assert!(is_metric_name(name), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            value => value.parse().unwrap_or_else(|_| panic!("{line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let labels = inner
                    .split("\",")
                    .map(|pair| {
                        let (label, quoted) =
                            pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                        assert!(is_metric_name(label) && !label.contains(':'), "{line}");
                        (label.to_string(), quoted.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(is_metric_name(name), "{line}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples named `name` whose labels include `having`.
fn value(samples: &[Sample], name: &str, having: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            having
                .iter()
                .all(|(l, v)| s.labels.iter().any(|(sl, sv)| sl == l && sv == v))
        })
        .collect();
    assert!(!matching.is_empty(), "no {name} {having:?}");
    matching.iter().map(|s| s.value).sum()
}

/// Checks `name`'s buckets are cumulative and end at `+Inf` = `_count`;
/// returns the count.
fn histogram_count(samples: &[Sample], name: &str) -> f64 {
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == format!("{name}_bucket"))
        .map(|s| {
            let le = &s.labels.iter().find(|(l, _)| l == "le").unwrap().1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s.value)
        })
        .collect();
    assert!(buckets.len() > 1, "{name} has buckets");
    for pair in buckets.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{name} bounds ascend: {pair:?}");
        assert!(pair[0].1 <= pair[1].1, "{name} is cumulative: {pair:?}");
    }
    let (last_le, last) = *buckets.last().unwrap();
    assert_eq!(last_le, f64::INFINITY, "{name} ends at +Inf");
    let count = value(samples, &format!("{name}_count"), &[]);
    assert_eq!(last, count, "{name}: +Inf equals _count");
    count
}

async fn get_metrics(server: &Server) -> (u16, String, String) {
    let response = reqwest::get(format!("{}/metrics", server.root_url()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

async fn scrape(server: &Server) -> Vec<Sample> {
    let (status, content_type, text) = get_metrics(server).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&text)
}

/// Scrapes until `holds` (at most 500 tries, 2 ms apart); returns the
/// samples it held on.
async fn scrape_until(server: &Server, holds: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    for _ in 0..500 {
        let samples = scrape(server).await;
        if holds(&samples) {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the metrics never reached the expected state");
}

/// The running and waiting gauges of a style.
fn running_waiting(style: MetricsStyle) -> (&'static str, &'static str) {
    match style {
        MetricsStyle::Sglang => ("sglang:num_running_reqs", "sglang:num_queue_reqs"),
        MetricsStyle::Tgi => ("tgi_batch_current_size", "tgi_queue_size"),
        MetricsStyle::LlamaCpp => ("llamacpp:requests_processing", "llamacpp:requests_deferred"),
        _ => ("vllm:num_requests_running", "vllm:num_requests_waiting"),
    }
}

/// Streams one chat request to its end; returns its usage (prompt,
/// completion tokens).
async fn stream_one(server: &Server) -> (f64, f64) {
    let (start, response) = post(server, "/chat/completions", &chat("hi", json!({}))).await;
    let sse = read_sse(response, start, Duration::from_secs(5)).await;
    assert!(sse.done(), "{sse:?}");
    let usage = sse.usage();
    (
        usage["prompt_tokens"].as_f64().unwrap(),
        usage["completion_tokens"].as_f64().unwrap(),
    )
}

#[tokio::test]
async fn each_style_counts_what_the_clients_received() {
    for style in [
        MetricsStyle::Vllm,
        MetricsStyle::Sglang,
        MetricsStyle::Tgi,
        MetricsStyle::LlamaCpp,
    ] {
        let server = Server::start(
            Script::new()
                .ttft(Duration::from_millis(10))
                .inter_token(Duration::from_millis(2))
                .output_tokens(12)
                .concurrency_limit(2)
                .metrics(style),
        )
        .unwrap();
        // Five at once against two slots (three wait), then one alone.
        let (a, b, c, d, e) = tokio::join!(
            stream_one(&server),
            stream_one(&server),
            stream_one(&server),
            stream_one(&server),
            stream_one(&server)
        );
        let f = stream_one(&server).await;
        let usages = [a, b, c, d, e, f];
        let n = usages.len() as f64;
        let prompt: f64 = usages.iter().map(|u| u.0).sum();
        let completion: f64 = usages.iter().map(|u| u.1).sum();
        let (running, waiting) = running_waiting(style);
        let m = scrape_until(&server, |m| {
            value(m, running, &[]) == 0.0 && value(m, waiting, &[]) == 0.0
        })
        .await;
        let model = [("model_name", "test-model")];
        match style {
            MetricsStyle::Vllm => {
                let engine = [("model_name", "test-model"), ("engine", "0")];
                assert_eq!(
                    value(&m, "vllm:generation_tokens_total", &engine),
                    completion
                );
                assert_eq!(value(&m, "vllm:prompt_tokens_total", &engine), prompt);
                let finished = value(
                    &m,
                    "vllm:request_success_total",
                    &[("finished_reason", "stop")],
                ) + value(
                    &m,
                    "vllm:request_success_total",
                    &[("finished_reason", "length")],
                );
                assert_eq!(finished, n);
                assert_eq!(
                    value(
                        &m,
                        "vllm:request_success_total",
                        &[("finished_reason", "abort")]
                    ),
                    0.0
                );
                assert_eq!(histogram_count(&m, "vllm:time_to_first_token_seconds"), n);
                assert_eq!(
                    histogram_count(&m, "vllm:inter_token_latency_seconds"),
                    completion - n
                );
                assert_eq!(histogram_count(&m, "vllm:e2e_request_latency_seconds"), n);
                assert_eq!(histogram_count(&m, "vllm:request_queue_time_seconds"), n);
                assert_eq!(value(&m, "vllm:num_preemptions_total", &engine), 0.0);
                assert_eq!(value(&m, "vllm:kv_cache_usage_perc", &engine), 0.0);
            }
            MetricsStyle::Sglang => {
                assert_eq!(
                    value(&m, "sglang:generation_tokens_total", &model),
                    completion
                );
                assert_eq!(value(&m, "sglang:prompt_tokens_total", &model), prompt);
                assert_eq!(value(&m, "sglang:num_requests_total", &model), n);
                assert_eq!(histogram_count(&m, "sglang:time_to_first_token_seconds"), n);
                assert_eq!(histogram_count(&m, "sglang:e2e_request_latency_seconds"), n);
                assert_eq!(histogram_count(&m, "sglang:queue_time_seconds"), n);
                let scheduler = [("engine_type", "unified"), ("tp_rank", "0")];
                assert_eq!(value(&m, "sglang:token_usage", &scheduler), 0.0);
            }
            MetricsStyle::Tgi => {
                assert_eq!(
                    value(&m, "tgi_request_generated_tokens_sum", &[]),
                    completion
                );
                assert_eq!(value(&m, "tgi_request_input_length_sum", &[]), prompt);
                assert_eq!(value(&m, "tgi_request_success", &[]), n);
                assert_eq!(value(&m, "tgi_request_count", &[]), n);
                assert_eq!(histogram_count(&m, "tgi_request_duration"), n);
                assert_eq!(histogram_count(&m, "tgi_request_queue_duration"), n);
                assert_eq!(
                    histogram_count(&m, "tgi_request_mean_time_per_token_duration"),
                    n
                );
                assert!(
                    !m.iter().any(|s| s.name.ends_with("_total")),
                    "TGI has no _total"
                );
            }
            _ => {
                assert_eq!(
                    value(&m, "llamacpp:tokens_predicted_total", &[]),
                    completion
                );
                assert_eq!(value(&m, "llamacpp:prompt_tokens_total", &[]), prompt);
                assert!(
                    !m.iter().any(|s| s.name.ends_with("_bucket")),
                    "no histograms"
                );
            }
        }
        assert!(
            m.iter().all(|s| s.name.starts_with(match style {
                MetricsStyle::Vllm => "vllm:",
                MetricsStyle::Sglang => "sglang:",
                MetricsStyle::Tgi => "tgi_",
                _ => "llamacpp:",
            })),
            "{style:?} uses only its own names"
        );
    }
}

#[tokio::test]
async fn mid_stream_running_stays_within_the_limit_and_the_excess_waits() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(20))
            .inter_token(Duration::from_millis(40))
            .output_tokens(8)
            .concurrency_limit(2),
    )
    .unwrap();
    let held = async {
        tokio::join!(
            stream_one(&server),
            stream_one(&server),
            stream_one(&server),
            stream_one(&server),
            stream_one(&server)
        )
    };
    let watched = async {
        let (mut most_running, mut most_waiting) = (0.0, 0.0);
        let mut full = None;
        for _ in 0..400 {
            let m = scrape(&server).await;
            let running = value(&m, "vllm:num_requests_running", &[]);
            let waiting = value(&m, "vllm:num_requests_waiting", &[]);
            assert!(running <= 2.0, "running {running} within the limit");
            assert!(running + waiting <= 5.0);
            if running == 2.0 && waiting == 3.0 {
                full = Some(value(&m, "vllm:kv_cache_usage_perc", &[]));
            }
            most_running = f64::max(most_running, running);
            most_waiting = f64::max(most_waiting, waiting);
            let finished = value(&m, "vllm:request_success_total", &[]);
            if finished == 5.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (most_running, most_waiting, full)
    };
    let (_, (most_running, most_waiting, full)) = tokio::join!(held, watched);
    assert_eq!((most_running, most_waiting), (2.0, 3.0));
    assert_eq!(full, Some(1.0), "both slots in use: usage 1");
    let m = scrape_until(&server, |m| {
        value(m, "vllm:num_requests_running", &[]) == 0.0
    })
    .await;
    assert_eq!(value(&m, "vllm:num_requests_waiting", &[]), 0.0);
    assert_eq!(value(&m, "vllm:kv_cache_usage_perc", &[]), 0.0);
    // Two went at once; two waited for one request's length (20 + 7 × 40
    // ms), the last for two: about 1.2 s of queueing in all.
    assert_eq!(histogram_count(&m, "vllm:request_queue_time_seconds"), 5.0);
    let queued = value(&m, "vllm:request_queue_time_seconds_sum", &[]);
    assert!((1.0..3.0).contains(&queued), "{queued} s queued");
}

#[tokio::test]
async fn a_stream_cut_by_a_fault_counts_only_the_tokens_it_sent() {
    let server = faulty(Fault::Disconnect);
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 20})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(sse.error.is_some());
    let received = sse.content().len() as f64;
    assert_eq!(received, 10.0);
    let m = scrape_until(&server, |m| {
        value(
            m,
            "vllm:request_success_total",
            &[("finished_reason", "abort")],
        ) == 1.0
    })
    .await;
    assert_eq!(value(&m, "vllm:generation_tokens_total", &[]), received);
    assert_eq!(
        value(
            &m,
            "vllm:request_success_total",
            &[("finished_reason", "stop")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "vllm:request_success_total",
            &[("finished_reason", "length")]
        ),
        0.0
    );
    assert_eq!(histogram_count(&m, "vllm:time_to_first_token_seconds"), 1.0);
    assert_eq!(histogram_count(&m, "vllm:e2e_request_latency_seconds"), 0.0);
    assert_eq!(value(&m, "vllm:num_requests_running", &[]), 0.0);
}

#[tokio::test]
async fn off_is_a_404_and_not_prometheus_an_html_page() {
    let off = Server::start(Script::new().metrics(MetricsStyle::Off)).unwrap();
    let (status, _, _) = get_metrics(&off).await;
    assert_eq!(status, 404);
    let page = Server::start(Script::new().metrics(MetricsStyle::NotPrometheus)).unwrap();
    let (status, content_type, text) = get_metrics(&page).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
}

#[tokio::test]
async fn metrics_need_no_api_key_and_name_the_default_model_before_any_request() {
    let server = Server::start(Script::new().require_api_key("sk-test")).unwrap();
    let m = scrape(&server).await;
    assert_eq!(
        value(
            &m,
            "vllm:num_requests_running",
            &[("model_name", "llmperf-builtin")]
        ),
        0.0
    );
    assert_eq!(histogram_count(&m, "vllm:time_to_first_token_seconds"), 0.0);
    let v1 = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .unwrap();
    assert_eq!(v1.status(), 404, "served at the root only, as vLLM does");
}

#[tokio::test]
async fn reasoning_grouped_events_whole_bodies_and_other_protocols_count_their_usage() {
    let server = Server::start(
        Script::new()
            .ttft(Duration::from_millis(5))
            .inter_token(Duration::from_millis(1))
            .tokens_per_event(3)
            .reasoning_tokens(4)
            .keep_alive(true),
    )
    .unwrap();
    // Streamed: 4 reasoning + 7 content tokens (the limit counts both) in
    // events of up to 3.
    let (start, response) = post(
        &server,
        "/chat/completions",
        &chat("hi", json!({"max_tokens": 11})),
    )
    .await;
    let sse = read_sse(response, start, Duration::from_secs(2)).await;
    let streamed = sse.usage()["completion_tokens"].as_f64().unwrap();
    assert_eq!(streamed, 11.0);
    // Not streamed: the whole body carries every token at once.
    let (_, response) = post(
        &server,
        "/chat/completions",
        &json!({"model": "test-model", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 5}),
    )
    .await;
    let whole: Value = response.json().await.unwrap();
    let whole = whole["usage"]["completion_tokens"].as_f64().unwrap();
    // TGI's own stream, which puts the ending on its last token event.
    let (start, response) = post(
        &server,
        "/generate_stream",
        &json!({"inputs": "hi", "parameters": {"max_new_tokens": 6}}),
    )
    .await;
    let tgi = read_sse(response, start, Duration::from_secs(2)).await;
    assert!(tgi.error.is_none(), "{tgi:?}");
    let m = scrape_until(&server, |m| {
        value(m, "vllm:num_requests_running", &[]) == 0.0
            && value(m, "vllm:request_success_total", &[]) == 3.0
    })
    .await;
    assert_eq!(
        value(&m, "vllm:generation_tokens_total", &[]),
        streamed + whole + 6.0
    );
    // One first token per request; the streamed requests' later events
    // are inter-token gaps: reasoning never shares an event with content,
    // so chat's are 3+1 and 3+3+1 tokens (4 gaps), TGI's 3+3 (1 gap).
    assert_eq!(histogram_count(&m, "vllm:time_to_first_token_seconds"), 3.0);
    assert_eq!(
        histogram_count(&m, "vllm:inter_token_latency_seconds"),
        4.0 + 1.0
    );
}
