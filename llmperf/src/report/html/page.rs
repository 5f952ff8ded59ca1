//! The data a benchmark's page and its index row show: figures formatted
//! for people, and the charts drawn from the records.

use serde_json::{json, Value};

use super::server::{self, ServerRound, ServerSeries};
use super::{HtmlOptions, StoredResult};
use crate::baseline::{figures, Comparison, Verdict};
use crate::load::Phase;
use crate::metrics::server::Role;
use crate::metrics::{inter_token_latencies_ms, LevelResult, Stats};
use crate::record::RequestRecord;
use crate::report::charts::{self, ChartStyle, SweepCurve, SweepLevel};
use crate::report::comparison::{format_change, format_value};
use crate::report::terminal::format_ms;
use crate::spec::trim_float;

/// Points drawn in a scatter; more are downsampled, and the chart says so.
pub const SCATTER_POINTS: usize = 2_000;
/// Runs of at most this many requests a level get a request timeline.
pub const GANTT_REQUESTS: usize = 200;
/// Inter-token latencies drawn in the distribution; more are thinned
/// (every k-th gap of every request), and the caption says so.
pub const ITL_SAMPLES: usize = 500_000;
/// Bins of the output-tokens-per-second timeline, at most.
const RATE_BINS: f64 = 100.0;

fn ms_row(name: &str, stats: Option<&Stats>) -> Option<Value> {
    stats.map(|s| {
        json!({
            "metric": name,
            "count": s.count,
            "mean": format_ms(s.mean),
            "p50": format_ms(s.p50),
            "p90": format_ms(s.p90),
            "p95": format_ms(s.p95),
            "p99": format_ms(s.p99),
            "min": format_ms(s.min),
            "max": format_ms(s.max),
            // The exact figure, for readers and tests that check them.
            "p50_ms": s.p50,
        })
    })
}

fn marks(stats: Option<&Stats>) -> Vec<(&'static str, f64)> {
    stats.map_or_else(Vec::new, |s| {
        vec![("p50", s.p50), ("p90", s.p90), ("p99", s.p99)]
    })
}

fn chart(title: &str, drawn: Result<String, charts::ChartError>, note: Option<String>) -> Value {
    match drawn {
        Ok(svg) => json!({"title": title, "svg": svg, "note": note}),
        Err(error) => json!({"title": title, "svg": null, "note": format!("not drawn: {error}")}),
    }
}

pub(super) fn seconds(us: u64, origin: u64) -> f64 {
    us.saturating_sub(origin) as f64 / 1e6
}

/// The charts of one level, from its records and the server's rounds
/// while it ran.
fn level_charts(
    level: &LevelResult,
    records: &[&RequestRecord],
    server: &[ServerRound],
) -> Vec<Value> {
    let style = ChartStyle::default();
    let s = &level.summary;
    let measured: Vec<&RequestRecord> = records
        .iter()
        .copied()
        .filter(|r| r.phase == Phase::Measured)
        .collect();
    let ok: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.ok).collect();
    let mut out = Vec::new();
    let ttft: Vec<f64> = ok.iter().filter_map(|r| r.metrics.ttft_ms).collect();
    out.push(chart(
        "Time to first token",
        charts::distribution(
            "Time to first token",
            "ms",
            &ttft,
            &marks(s.ttft_ms.as_ref()),
            &style,
        ),
        None,
    ));
    // One sample per token after the first event (what the summary counts).
    let gaps: usize = ok
        .iter()
        .map(|r| {
            crate::metrics::tokens_per_event(r)
                .iter()
                .skip(1)
                .map(|&c| c as usize)
                .sum::<usize>()
        })
        .sum();
    let every = gaps.div_ceil(ITL_SAMPLES).max(1);
    let itl: Vec<f64> = ok
        .iter()
        .flat_map(|r| inter_token_latencies_ms(r).into_iter().step_by(every))
        .collect();
    out.push(chart(
        "Inter-token latency",
        charts::distribution(
            "Inter-token latency",
            "ms",
            &itl,
            &marks(s.inter_token_latency_ms.as_ref()),
            &style,
        ),
        (every > 1).then(|| {
            format!(
                "every {every}th sample of each request drawn ({} of {gaps}); the marked percentiles are of all",
                itl.len()
            )
        }),
    ));
    let tpot: Vec<f64> = ok.iter().filter_map(|r| r.metrics.tpot_ms).collect();
    out.push(chart(
        "Time per output token, per request",
        charts::distribution(
            "Time per output token",
            "ms",
            &tpot,
            &marks(s.tpot_ms.as_ref()),
            &style,
        ),
        None,
    ));
    let scatter = |title: &str, x: &str, y: &str, points: Vec<(f64, f64)>| match charts::scatter(
        title,
        x,
        y,
        &points,
        SCATTER_POINTS,
        &style,
    ) {
        Ok(drawn) => {
            let note = (drawn.shown < drawn.total).then(|| {
                format!(
                    "{} of {} requests shown, evenly spaced by rank of x",
                    drawn.shown, drawn.total
                )
            });
            chart(title, Ok(drawn.svg), note)
        }
        Err(error) => chart(title, Err(error), None),
    };
    out.push(scatter(
        "End-to-end latency vs output tokens",
        "output tokens",
        "E2E (ms)",
        ok.iter()
            .map(|r| (f64::from(r.output_tokens()), r.metrics.e2e_ms))
            .collect(),
    ));
    out.push(scatter(
        "Time to first token vs input tokens",
        "input tokens",
        "TTFT (ms)",
        ok.iter()
            .filter_map(|r| r.metrics.ttft_ms.map(|t| (f64::from(r.input_tokens()), t)))
            .collect(),
    ));
    // The run over time: requests in flight, output tokens per second.
    if let Some(origin) = records.iter().map(|r| r.sent_us).min() {
        let mut events: Vec<(u64, i64)> = records
            .iter()
            .flat_map(|r| [(r.sent_us, 1), (r.end_us, -1)])
            .collect();
        events.sort();
        let mut in_flight = 0i64;
        let mut flight = vec![(0.0, 0.0)];
        for (t, step) in events {
            in_flight += step;
            flight.push((seconds(t, origin), in_flight as f64));
        }
        let end = records.iter().map(|r| r.end_us).max().unwrap_or(origin);
        // Bins of a round width giving at most RATE_BINS of them: 1 s for a
        // run of 100 s, 10 ms for one under a second.
        let span_s = seconds(end, origin).max(1e-3);
        let width_s = [
            0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        ]
        .into_iter()
        .find(|w| span_s / w <= RATE_BINS)
        .unwrap_or(span_s / RATE_BINS);
        let bins = (span_s / width_s).ceil() as usize + 1;
        let mut tokens = vec![0.0; bins];
        for r in records.iter().filter(|r| r.ok) {
            let counts = crate::metrics::tokens_per_event(r);
            for (t, n) in r.content_events_us.iter().zip(counts) {
                let bin = (seconds(*t, origin) / width_s) as usize;
                if let Some(slot) = tokens.get_mut(bin) {
                    *slot += f64::from(n);
                }
            }
        }
        let rate: Vec<(f64, f64)> = tokens
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as f64 * width_s, n / width_s))
            .collect();
        let rate_label = format!("tokens/s ({} s bins)", crate::spec::trim_float(width_s));
        let warmup_end = records
            .iter()
            .filter(|r| r.phase != Phase::Warmup)
            .map(|r| r.sent_us)
            .min();
        let shaded: Vec<(&str, f64, f64)> =
            match (records.iter().any(|r| r.phase == Phase::Warmup), warmup_end) {
                (true, Some(t)) => vec![("warmup", 0.0, seconds(t, origin))],
                _ => Vec::new(),
            };
        // The server's rounds on the same axis: same origin, same shading.
        let server = ServerSeries::of(server, origin);
        if server.running.is_empty() && server.waiting.is_empty() {
            out.push(chart(
                "Requests in flight",
                charts::timeline(
                    "Requests in flight",
                    &[("in flight", &flight[..])],
                    &shaded,
                    "requests",
                    &style,
                ),
                None,
            ));
        } else {
            let title = "Requests in flight: client and server";
            let series: Vec<(&str, &[(f64, f64)])> = [
                ("client in flight", &flight[..]),
                ("server running", &server.running[..]),
                ("server waiting", &server.waiting[..]),
            ]
            .into_iter()
            .filter(|(_, points)| !points.is_empty())
            .collect();
            out.push(chart(
                title,
                charts::timeline(title, &series, &shaded, "requests", &style),
                Some(
                    "the server's gauges as scraped, summed over its sources; the client's count changes at each send and end"
                        .to_string(),
                ),
            ));
        }
        if !server.kv_percent.is_empty() {
            out.push(chart(
                "KV-cache usage",
                charts::timeline(
                    "KV-cache usage",
                    &[("KV cache in use", &server.kv_percent[..])],
                    &shaded,
                    "percent",
                    &style,
                ),
                Some("as scraped, averaged over the server's sources".to_string()),
            ));
        }
        let mut tokens_series = vec![(rate_label.as_str(), &rate[..])];
        if !server.tokens_per_s.is_empty() {
            tokens_series.push(("server generated tokens/s", &server.tokens_per_s[..]));
        }
        out.push(chart(
            "Output tokens per second",
            charts::timeline(
                "Output tokens per second",
                &tokens_series,
                &shaded,
                "tokens/s",
                &style,
            ),
            (tokens_series.len() > 1).then(|| {
                "the client's tokens as they arrived; the server's from its generated-token counter between scrapes, drawn from the earlier one"
                    .to_string()
            }),
        ));
        if records.len() <= GANTT_REQUESTS {
            let bars: Vec<(f64, f64, f64)> = records
                .iter()
                .map(|r| {
                    (
                        seconds(r.sent_us, origin),
                        r.first_token_us.map_or(f64::NAN, |t| seconds(t, origin)),
                        seconds(r.end_us, origin),
                    )
                })
                .collect();
            out.push(chart(
                "Requests: send, first token, end",
                charts::request_gantt("Requests", &bars, &style),
                None,
            ));
        }
    }
    out
}

fn level_context(
    level: &LevelResult,
    records: &[&RequestRecord],
    server_rounds: &[ServerRound],
    tokenizer: &str,
    options: &HtmlOptions,
) -> Value {
    let s = &level.summary;
    let rows: Vec<Value> = [
        ("TTFT", s.ttft_ms.as_ref()),
        ("ITL", s.inter_token_latency_ms.as_ref()),
        ("TPOT", s.tpot_ms.as_ref()),
        ("E2E", s.e2e_ms.as_ref()),
        ("Inter-event", s.inter_event_latency_ms.as_ref()),
        ("First reasoning", s.time_to_first_reasoning_ms.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, stats)| ms_row(name, stats))
    .collect();
    let counted = |map: &std::collections::BTreeMap<String, u64>| -> Vec<Value> {
        map.iter()
            .map(|(k, v)| json!({"name": k, "count": v}))
            .collect()
    };
    let validation = s.validation.as_ref().map(|v| {
        let issues: Vec<Value> = v
            .cross_over_requests
            .iter()
            .map(|i| (i, "cross-over"))
            .chain(v.mismatch_requests.iter().map(|i| (i, "mismatch")))
            .chain(v.truncated_requests.iter().map(|i| (i, "truncated")))
            .map(|(i, kind)| {
                json!({
                    "kind": kind,
                    "request_id": i.request_id,
                    "expected": i.expected,
                    "found": i.found,
                    "other_request_id": i.other_request_id,
                    "excerpt": i.excerpt,
                })
            })
            .collect();
        json!({
            "validated": v.validated,
            "passed": v.passed,
            "cross_overs": v.cross_overs,
            "mismatches": v.mismatches,
            "truncated": v.truncated,
            "issues": issues,
        })
    });
    // A few failed requests' messages, as the endpoint sent them (escaped).
    let failures: Vec<Value> = records
        .iter()
        .filter(|r| !r.ok && r.phase == Phase::Measured)
        .filter_map(|r| r.error.as_ref().map(|e| (r.id, e)))
        .take(10)
        .map(|(id, e)| json!({"request_id": id, "kind": e.kind.as_str(), "message": e.message}))
        .collect();
    let slo: Vec<Value> = level
        .slo
        .checks
        .iter()
        .map(|c| {
            json!({
                "objective": c.slo.to_string(),
                "observed": c.observed_ms.map_or("unbounded".to_string(), format_ms),
                "met": c.met,
            })
        })
        .collect();
    json!({
        "index": level.index,
        "label": level.level.label(),
        "stop": level.stop.message().unwrap_or_else(|| "completed".to_string()),
        "rows": rows,
        "requests": {
            "total": s.requests.total,
            "completed": s.requests.completed,
            "failed": s.requests.failed,
            "error_rate": format!("{:.2}%", s.requests.error_rate * 100.0),
            "warmup": s.requests.warmup,
            "cooldown": s.requests.cooldown,
        },
        "throughput": {
            "window": format!("{:.2} s", s.throughput.window_s),
            "output_tokens_per_s": format!("{:.1}", s.throughput.output_tokens_per_s),
            "total_tokens_per_s": format!("{:.1}", s.throughput.total_tokens_per_s),
            "requests_per_minute": format!("{:.1}", s.throughput.requests_per_minute),
        },
        "errors_by_kind": counted(&s.requests.errors_by_kind),
        "errors_by_status": counted(&s.requests.errors_by_status),
        "failures": failures,
        "validation": validation,
        "slo": slo,
        "goodput": format!("{:.2} requests/s", level.slo.goodput_per_s),
        "connections": crate::report::terminal::connections_text(&s.connections),
        "notes": level
            .notes
            .iter()
            .cloned()
            .chain(crate::report::terminal::estimates_text(s, tokenizer))
            .chain(crate::report::terminal::excluded_failures_text(&s.requests))
            .collect::<Vec<String>>(),
        "charts": if options.noplot || records.is_empty() {
            Vec::new()
        } else {
            level_charts(level, records, server_rounds)
        },
        "server": level.server.as_ref().map(server::digest_context),
    })
}

/// Current and baseline CDFs of TTFT and E2E per compared level, when the
/// baseline can still be read from where it was compared.
fn overlays(c: &Comparison, result: &StoredResult) -> Vec<Value> {
    // The baseline as it was when compared, kept beside the comparison
    // (a baseline file may have been replaced since).
    let copy = result.dir.join(super::BASELINE_COPY_FILE);
    if !copy.exists() {
        return Vec::new();
    }
    let baseline = match crate::baseline::Baseline::read(&copy) {
        Ok(baseline) => baseline,
        Err(error) => {
            return vec![json!({"title": "Baseline distributions", "svg": null,
                "note": format!("the baseline's copy is unreadable: {error}")})]
        }
    };
    let style = ChartStyle::default();
    let mut out = Vec::new();
    for level in &c.levels {
        let Some(samples) = baseline.samples.get(level.baseline_index as usize) else {
            continue;
        };
        let current: Vec<&RequestRecord> = result
            .records
            .iter()
            .filter(|r| r.level == level.current_index && r.phase == Phase::Measured && r.ok)
            .collect();
        let base_ttft: Vec<f64> = samples.ttft_ms.iter().flatten().copied().collect();
        let cur_ttft: Vec<f64> = current.iter().filter_map(|r| r.metrics.ttft_ms).collect();
        let base_e2e: Vec<f64> = samples
            .e2e_ms
            .iter()
            .zip(&samples.ok)
            .filter(|(_, ok)| **ok)
            .map(|(e, _)| *e)
            .collect();
        let cur_e2e: Vec<f64> = current.iter().map(|r| r.metrics.e2e_ms).collect();
        for (name, base, cur) in [
            ("TTFT", &base_ttft, &cur_ttft),
            ("E2E", &base_e2e, &cur_e2e),
        ] {
            let title = format!("{name} at {}: current and baseline", level.level);
            out.push(chart(
                &title,
                charts::cdf_overlay(
                    &title,
                    "ms",
                    &[("current", &cur[..]), (baseline.name.as_str(), &base[..])],
                    &style,
                ),
                None,
            ));
        }
    }
    out
}

fn comparison_context(c: &Comparison, result: &StoredResult, options: &HtmlOptions) -> Value {
    let levels: Vec<Value> = c
        .levels
        .iter()
        .map(|level| {
            let metrics: Vec<Value> = level
                .metrics
                .iter()
                .filter(|m| m.baseline.is_some() || m.current.is_some())
                .map(|m| {
                    json!({
                        "metric": m.metric,
                        "baseline": format_value(m.baseline, &m.unit),
                        "current": format_value(m.current, &m.unit),
                        "change": m.change.map_or("-".to_string(), |x| format_change(x, m.change_unit)),
                        "interval": m.interval.map_or(String::new(), |[lo, hi]| {
                            format!("[{}, {}]", format_change(lo, m.change_unit), format_change(hi, m.change_unit))
                        }),
                        "verdict": m.verdict.label(),
                        "class": match m.verdict {
                            Verdict::Regressed => "regressed",
                            Verdict::Improved => "improved",
                            Verdict::Inconclusive => "inconclusive",
                            Verdict::NoChange => "same",
                        },
                        "reason": m.reason,
                    })
                })
                .collect();
            json!({"level": level.level, "metrics": metrics})
        })
        .collect();
    json!({
        "baseline": c.baseline,
        "settings": format!(
            "noise ±{}%, significance {}, {}% intervals, {} resamples",
            crate::spec::trim_float(c.settings.noise_threshold * 100.0),
            c.settings.significance_level,
            crate::spec::trim_float(c.settings.confidence_level * 100.0),
            c.settings.nresamples
        ),
        "differences": c.differences,
        "unmatched_levels": c.unmatched_levels,
        "levels": levels,
        "failures": c.gate_failures(),
        "charts": if options.noplot { Vec::new() } else { overlays(c, result) },
    })
}

/// The sweep's curves: TTFT always, TPOT and E2E when an objective is
/// about them; each with its objectives' limits and the knee.
fn sweep_charts(result: &StoredResult) -> Vec<Value> {
    use crate::spec::SloMetric;
    let Some(sweep) = result.summary.sweep.as_ref() else {
        return Vec::new();
    };
    let labels: Vec<String> = sweep.curve.iter().map(|p| p.label.clone()).collect();
    let knee = sweep
        .knee
        .and_then(|k| sweep.curve.iter().position(|p| p.level == k));
    type Pick = fn(&crate::metrics::CurvePoint) -> [Option<f64>; 2];
    let families: [(&str, &[SloMetric], Pick); 3] = [
        (
            "TTFT",
            &[SloMetric::Ttft, SloMetric::TtftFromScheduled],
            |p| [p.ttft_p50_ms, p.ttft_p99_ms],
        ),
        ("TPOT", &[SloMetric::Tpot], |p| {
            [p.tpot_p50_ms, p.tpot_p99_ms]
        }),
        ("E2E", &[SloMetric::E2e, SloMetric::E2eFromScheduled], |p| {
            [p.e2e_p50_ms, p.e2e_p99_ms]
        }),
    ];
    let mut out = Vec::new();
    for (name, metrics, pick) in families {
        let objectives: Vec<(String, f64)> = sweep
            .slos
            .iter()
            .filter(|slo| metrics.contains(&slo.metric))
            .map(|slo| (format!("SLO {slo}"), slo.limit.as_secs_f64() * 1e3))
            .collect();
        if name != "TTFT" && objectives.is_empty() {
            continue;
        }
        let latencies: Vec<[f64; 2]> = sweep
            .curve
            .iter()
            .map(|p| pick(p).map(|v| v.unwrap_or(f64::NAN)))
            .collect();
        let levels: Vec<SweepLevel> = sweep
            .curve
            .iter()
            .zip(&labels)
            .zip(&latencies)
            .map(|((p, label), lat)| SweepLevel {
                label,
                throughput: p.output_tokens_per_s,
                latencies: &lat[..],
            })
            .collect();
        let limits: Vec<(&str, f64)> = objectives.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        let title = format!("{name} against throughput, per level");
        let axis = format!("{name} (ms)");
        let drawn = charts::curve(
            &SweepCurve {
                title: &title,
                throughput_label: "output tokens/s",
                latency_label: &axis,
                percentiles: &["p50", "p99"],
                levels: &levels,
                knee,
                limits: &limits,
            },
            &ChartStyle::default(),
        );
        out.push(chart(
            &format!("Sweep: {name} against throughput"),
            drawn,
            (!objectives.is_empty()).then(|| {
                "objective lines are drawn at their limit whatever their percentile".to_string()
            }),
        ));
    }
    out
}

/// The page's context.
pub(super) fn context(result: &StoredResult, options: &HtmlOptions) -> Value {
    let file = &result.summary;
    let levels: Vec<Value> = file
        .levels
        .iter()
        .map(|level| {
            let records: Vec<&RequestRecord> = result
                .records
                .iter()
                .filter(|r| r.level == level.index)
                .collect();
            let rounds = result
                .server
                .as_ref()
                .map(|s| s.level(level.index))
                .unwrap_or_default();
            let mut value =
                level_context(level, &records, &rounds, &file.config.tokenizer, options);
            value["headline"] = json!(level.index == file.headline_level);
            value
        })
        .collect();
    let curve: Vec<Value> = file
        .sweep
        .as_ref()
        .map(|s| {
            s.curve
                .iter()
                .map(|p| {
                    let gauge = |role: Role| {
                        file.levels
                            .iter()
                            .find(|l| l.index == p.level)
                            .and_then(|l| l.server.as_ref())
                            .and_then(|d| d.gauge(role))
                            .map(|g| g.max)
                    };
                    json!({
                        "label": p.label,
                        "peak_waiting": gauge(Role::WaitingRequests).map_or("-".to_string(), trim_float),
                        "kv_max": gauge(Role::KvCacheUsage)
                            .map_or("-".to_string(), |share| format!("{:.1}%", share * 100.0)),
                        "completed_per_s": format!("{:.2}", p.completed_per_s),
                        "output_tokens_per_s": format!("{:.1}", p.output_tokens_per_s),
                        "ttft_p50": p.ttft_p50_ms.map_or("-".to_string(), format_ms),
                        "ttft_p99": p.ttft_p99_ms.map_or("-".to_string(), format_ms),
                        "e2e_p99": p.e2e_p99_ms.map_or("-".to_string(), format_ms),
                        "goodput_per_s": format!("{:.2}", p.goodput_per_s),
                        "error_rate": format!("{:.2}%", p.error_rate * 100.0),
                        "met": p.met_slos,
                        "knee": s.knee == Some(p.level),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let has_gauge = |role: Role| {
        file.levels
            .iter()
            .any(|l| l.server.as_ref().is_some_and(|d| d.gauge(role).is_some()))
    };
    json!({
        "title": file.benchmark,
        "generated_by": format!("llmperf {}", env!("CARGO_PKG_VERSION")),
        "benchmark": file.benchmark,
        "started_at": file.started_at,
        "interrupted": file.interrupted,
        "written_by": format!("{} {}", file.tool.name, file.tool.version),
        "environment": file.environment,
        "config": serde_json::to_string_pretty(&file.config).unwrap_or_default(),
        "endpoint": format!("{} · {} · {}", file.config.endpoint_kind, file.config.model, file.config.base_url),
        "records": result.records.len(),
        "shard_notes": crate::report::terminal::shard_lines(file),
        "levels": levels,
        "curve": curve,
        // The server's columns, when any level has them: what explains the knee.
        "curve_server": {
            "waiting": has_gauge(Role::WaitingRequests),
            "kv": has_gauge(Role::KvCacheUsage),
        },
        "sweep_charts": if options.noplot { Vec::new() } else { sweep_charts(result) },
        "comparison": result
            .comparison
            .as_ref()
            .map(|c| comparison_context(c, result, options)),
        "comparison_error": result.comparison_error,
        "server_error": result.server_error,
        "noplot": options.noplot,
    })
}

/// One benchmark's row in the index.
pub(super) fn index_row(result: &StoredResult, page: &str) -> Value {
    let file = &result.summary;
    let s = &file.summary;
    let figure = |metric: &str| {
        figures(s)
            .into_iter()
            .find(|f| f.metric == metric)
            .map_or("-".to_string(), |f| format_value(Some(f.value), &f.unit))
    };
    let verdict = match &result.comparison {
        None if result.comparison_error.is_some() => json!({
            "text": format!("comparison unreadable: {}", result.comparison_error.as_deref().unwrap_or("")),
            "class": "regressed",
        }),
        None => json!({"text": "no baseline", "class": "none"}),
        Some(c) => {
            let failures = c.gate_failures();
            if failures.is_empty() {
                json!({"text": format!("no regression vs {}", c.baseline), "class": "same"})
            } else {
                json!({"text": format!("vs {}: {}", c.baseline, failures.join(", ")), "class": "regressed"})
            }
        }
    };
    json!({
        "benchmark": file.benchmark,
        "page": page,
        "started_at": file.started_at,
        "levels": file.levels.len(),
        "ttft_p50": figure("ttft_p50"),
        "e2e_p50": figure("e2e_p50"),
        "output_tokens_per_s": figure("output_tokens_per_s"),
        "requests": s.requests.total,
        "failed": s.requests.failed,
        "cross_overs": s.validation.as_ref().map_or(0, |v| v.cross_overs),
        "verdict": verdict,
    })
}
