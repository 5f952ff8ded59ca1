//! The terminal block printed for each benchmark, in criterion's spirit.

use std::fmt::Write as _;

use crate::metrics::server::{Role, ServerDigest};
use crate::metrics::{LevelResult, Stats, Summary, SweepSummary};
use crate::results::SummaryFile;
use crate::spec::{trim_float, Level, Load};

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    on: bool,
}

impl Palette {
    /// Colours on or off.
    pub fn new(on: bool) -> Self {
        Palette { on }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Bold.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Red (failures).
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Green (passes).
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Yellow (warnings).
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// Milliseconds for people: `812 µs`, `12.3 ms`, `4.21 s`.
pub fn format_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "-".to_string()
    } else if ms < 1.0 {
        format!("{:.0} µs", ms * 1e3)
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

fn latency_line(out: &mut String, label: &str, stats: Option<&Stats>) {
    if let Some(s) = stats {
        let _ = writeln!(
            out,
            "  {label:<10} p50 {:>10}  p90 {:>10}  p99 {:>10}  mean {:>10}  (n={})",
            format_ms(s.p50),
            format_ms(s.p90),
            format_ms(s.p99),
            format_ms(s.mean),
            s.count
        );
    }
}

/// One line for `--quiet`: TTFT p50, throughput, requests.
pub fn one_line(file: &SummaryFile) -> String {
    let summary = &file.summary;
    let ttft = summary
        .ttft_ms
        .map_or("-".to_string(), |s| format_ms(s.p50));
    let mut line = format!(
        "{}: ttft p50 {ttft}, {:.1} output tok/s, {} of {} ok",
        file.benchmark,
        summary.throughput.output_tokens_per_s,
        summary.requests.completed,
        summary.requests.total
    );
    if let Some(v) = &summary.validation {
        line.push_str(&format!(", {} cross-overs", v.cross_overs));
    }
    if let Some(sweep) = &file.sweep {
        let knee = file
            .levels
            .iter()
            .find(|l| Some(l.index) == sweep.knee)
            .map_or("none".to_string(), |l| l.level.label());
        line.push_str(&format!(" (knee {knee} of {} levels)", file.levels.len()));
    }
    if file.summary.send.client_fell_behind {
        line.push_str(" (client fell behind)");
    }
    for level in &file.levels {
        if let Some(message) = level.stop.message() {
            line.push_str(&format!(" ({}: {message})", level.level.label()));
        }
    }
    if file.interrupted {
        line.push_str(" (interrupted)");
    }
    line
}

/// The load in a few words: `concurrency 4`, `poisson 20 req/s, cap 8`,
/// `sweep of 5 levels`.
fn describe_load(load: &Load, levels: usize) -> String {
    if load.sweep.is_some() {
        return format!("sweep of {levels} levels");
    }
    describe_level(&load.single_level())
}

fn describe_level(level: &Level) -> String {
    match level {
        Level::Concurrency { concurrency } => format!("concurrency {concurrency}"),
        Level::Rate(rate) => {
            let mut text = format!("{} {}", rate.arrival.label(), level.label());
            if let Some(cap) = rate.max_in_flight {
                text.push_str(&format!(", at most {cap} in flight"));
            }
            if let Some(ramp) = rate.ramp_up {
                text.push_str(&format!(
                    ", ramp-up {}",
                    format_ms(ramp.as_secs_f64() * 1e3)
                ));
            }
            text
        }
    }
}

/// What a shard's or a merge's result says about its shards: which shard
/// it is, or how many were merged, how far apart they started, and which
/// are missing. Shared with the HTML report.
pub fn shard_lines(file: &SummaryFile) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(shard) = &file.shard {
        lines.push(format!(
            "shard {}/{}: the load above is the whole run's, this process drove its share; `llmperf merge` joins the shards",
            shard.index, shard.count
        ));
        if let Some(late) = shard.ready_late_ms {
            lines.push(format!(
                "ready {late:.0} ms after --start-at: it started late, and its load overlapped the other shards' less"
            ));
        }
    }
    if let Some(merged) = &file.merged {
        let spread = merged
            .shards
            .iter()
            .map(|s| s.first_send_offset_ms)
            .fold(0.0, f64::max);
        lines.push(format!(
            "merged from {} of {} shards, whose first requests went out within {spread:.0} ms of each other by their clocks (latencies are each machine's own; only the throughput window relies on the clocks agreeing)",
            merged.shards.len(),
            merged.count
        ));
        if !merged.missing.is_empty() {
            let missing: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
            lines.push(format!(
                "shards {} of {} missing: the figures are of the rest, and the load was less than the configuration says",
                missing.join(", "),
                merged.count
            ));
        }
        let late: Vec<String> = merged
            .shards
            .iter()
            .filter_map(|s| {
                s.ready_late_ms
                    .map(|ms| format!("{} by {ms:.0} ms", s.index))
            })
            .collect();
        if !late.is_empty() {
            lines.push(format!("late for --start-at: shard {}", late.join(", ")));
        }
    }
    lines
}

/// Warmup and cooldown failures, which the figures leave out: `None`
/// when there were none. Shared with the HTML report.
pub fn excluded_failures_text(requests: &crate::metrics::RequestCounts) -> Option<String> {
    let failed: u64 = requests.excluded_errors_by_kind.values().sum();
    (failed > 0).then(|| {
        let kinds: Vec<String> = requests
            .excluded_errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        format!(
            "{failed} of the {} warmup and cooldown requests failed ({})",
            requests.warmup + requests.cooldown,
            kinds.join(", ")
        )
    })
}

/// The block for one run: latencies, throughput, errors, validation; for
/// a sweep, the curve across levels first, then the knee level's block.
pub fn render(file: &SummaryFile, palette: Palette) -> String {
    let config = &file.config;
    let mut out = String::new();
    // config.base_url is stored without credentials (spec::display_url).
    let endpoint = if config.builtin_endpoint {
        format!("built-in endpoint {}", config.base_url)
    } else {
        config.base_url.clone()
    };
    let _ = writeln!(
        out,
        "{}  {} · {} · {} · {}",
        palette.bold(&file.benchmark),
        config.endpoint_kind,
        config.model,
        endpoint,
        describe_load(&config.load, file.levels.len())
    );
    for line in shard_lines(file) {
        let _ = writeln!(out, "  {}", palette.yellow(&line));
    }
    if config.tls.insecure {
        let _ = writeln!(
            out,
            "  {}",
            palette.yellow(
                "insecure: the server's certificate was NOT verified (--insecure); anyone on the path could read and change this traffic"
            )
        );
    }
    let headline = file.levels.iter().find(|l| l.index == file.headline_level);
    if let Some(sweep) = &file.sweep {
        render_curve(&mut out, sweep, palette);
        match headline {
            Some(level) if sweep.knee.is_some() => {
                let _ = writeln!(
                    out,
                    "  {} {} ({}): the highest throughput meeting every objective",
                    palette.bold("knee"),
                    level.level.label(),
                    describe_level(&level.level)
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  {}",
                    palette.yellow(
                        "no level met the objectives; figures below are of the first level"
                    )
                );
            }
        }
    }
    render_summary(&mut out, file, &file.summary, palette);
    if let Some(level) = headline {
        render_level_notes(&mut out, level, file.sweep.is_none(), palette);
    }
    for level in &file.levels {
        if let Some(message) = level.stop.message() {
            let _ = writeln!(
                out,
                "  {}",
                palette.red(&format!("{}: {message}", level.level.label()))
            );
        }
        for note in &level.notes {
            let _ = writeln!(
                out,
                "  {}",
                palette.yellow(&format!("{}: {note}", level.level.label()))
            );
        }
    }
    if file.interrupted {
        let _ = writeln!(
            out,
            "  {}",
            palette.yellow("interrupted before all requests ran")
        );
    }
    out
}

/// New and reused connections, what connecting took, re-sent requests, in
/// one sentence (`None` when no request got a connection).
pub fn connections_text(c: &crate::metrics::ConnectionStats) -> Option<String> {
    if c.requests == 0 {
        return None;
    }
    let mut line = format!(
        "{} new for {} requests ({:.0}%)",
        c.new_connections,
        c.requests,
        c.new_share * 100.0
    );
    if let Some(connect) = &c.connect_ms {
        line.push_str(&format!(
            " · connect p50 {} p99 {}",
            format_ms(connect.p50),
            format_ms(connect.p99)
        ));
    }
    if let Some(tls) = &c.tls_ms {
        line.push_str(&format!(
            " · TLS p50 {} p99 {}",
            format_ms(tls.p50),
            format_ms(tls.p99)
        ));
    }
    // What was negotiated: `TLS 1.3 (http/1.1)`; each version's count when
    // connections differ.
    let counted = |counts: &std::collections::BTreeMap<String, u64>| {
        let mut names = counts.iter().map(|(name, n)| match counts.len() {
            1 => name.clone(),
            _ => format!("{name} ×{n}"),
        });
        let first = names.next();
        first.map(|first| names.fold(first, |all, next| format!("{all}, {next}")))
    };
    if let Some(versions) = counted(&c.tls_versions) {
        line.push_str(&format!(" · {versions}"));
        if let Some(alpn) = counted(&c.alpn) {
            line.push_str(&format!(" ({alpn})"));
        }
    }
    if c.resent > 0 {
        line.push_str(&format!(
            " · {} re-sent on a new connection (the server had closed a kept one)",
            c.resent
        ));
    }
    Some(line)
}

/// Which output counts are client estimates, in one sentence (`None` when
/// the server counted every one).
pub fn estimates_text(summary: &Summary, tokenizer: &str) -> Option<String> {
    let counts = &summary.token_counts;
    (counts.client_estimated_requests > 0).then(|| {
        format!(
            "output counts of {} of {} requests are client estimates (the server sent no usage): {} counted one token per event, {} re-tokenised with {tokenizer}",
            counts.client_estimated_requests,
            summary.requests.completed,
            counts.counted_by_events,
            counts
                .client_estimated_requests
                .saturating_sub(counts.counted_by_events),
        )
    })
}

fn opt_ms(value: Option<f64>) -> String {
    value.map_or("-".to_string(), format_ms)
}

fn render_curve(out: &mut String, sweep: &SweepSummary, palette: Palette) {
    let slos: Vec<String> = sweep.slos.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "  objectives {}", slos.join(", "));
    // The server's queue and cache per level, when it published them.
    let waiting = sweep.curve.iter().any(|p| p.server_waiting_max.is_some());
    let cache = sweep
        .curve
        .iter()
        .any(|p| p.server_kv_cache_usage_max.is_some());
    let mut head = format!(
        "  {:<14} {:>9} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7}",
        "level",
        "sent/s",
        "ok/s",
        "tok/s",
        "ttft p50",
        "ttft p99",
        "tpot p50",
        "e2e p99",
        "goodput",
        "errors"
    );
    if waiting {
        head.push_str(&format!(" {:>9}", "wait max"));
    }
    if cache {
        head.push_str(&format!(" {:>7}", "kv max"));
    }
    let _ = writeln!(out, "{head}  SLO");
    for point in &sweep.curve {
        let verdict = if point.met_slos {
            palette.green("met")
        } else {
            palette.red("missed")
        };
        let knee = if sweep.knee == Some(point.level) {
            "  ◀ knee"
        } else {
            ""
        };
        let mut line = format!(
            "  {:<14} {:>9} {:>8.2} {:>9.1} {:>10} {:>10} {:>10} {:>10} {:>8.2} {:>6.1}%",
            point.label,
            point
                .achieved_rate_per_s
                .map_or("-".to_string(), |r| format!("{r:.2}")),
            point.completed_per_s,
            point.output_tokens_per_s,
            opt_ms(point.ttft_p50_ms),
            opt_ms(point.ttft_p99_ms),
            opt_ms(point.tpot_p50_ms),
            opt_ms(point.e2e_p99_ms),
            point.goodput_per_s,
            point.error_rate * 100.0,
        );
        if waiting {
            let value = point.server_waiting_max.map_or("-".to_string(), trim_float);
            line.push_str(&format!(" {value:>9}"));
        }
        if cache {
            let value = point
                .server_kv_cache_usage_max
                .map_or("-".to_string(), |u| format!("{:.0}%", u * 100.0));
            line.push_str(&format!(" {value:>7}"));
        }
        let _ = writeln!(out, "{line}  {verdict}{knee}");
    }
}

/// Sending against the schedule and the objectives of one level.
fn render_level_notes(out: &mut String, level: &LevelResult, with_slos: bool, palette: Palette) {
    let send = &level.summary.send;
    if let Level::Rate(_) = level.level {
        let mut line = format!(
            "  sending    offered {} req/s · achieved {} req/s",
            send.offered_rate_per_s
                .map_or("-".to_string(), |r| format!("{r:.2}")),
            send.achieved_rate_per_s
                .map_or("-".to_string(), |r| format!("{r:.2}")),
        );
        if let Some(lag) = &send.send_lag_ms {
            line.push_str(&format!(
                " · send lag p50 {} p99 {}",
                format_ms(lag.p50),
                format_ms(lag.p99)
            ));
        }
        if send.queued_requests > 0 {
            let wait = send.queue_wait_ms.map_or(f64::NAN, |w| w.p50);
            line.push_str(&format!(
                " · {} queued at the in-flight cap (wait p50 {})",
                send.queued_requests,
                format_ms(wait)
            ));
        }
        let _ = writeln!(out, "{line}");
        latency_line(out, "ttft*", send.ttft_from_scheduled_ms.as_ref());
        latency_line(out, "e2e*", send.e2e_from_scheduled_ms.as_ref());
        let _ = writeln!(out, "             (* from the scheduled send)");
    }
    if let Some(server) = &level.server {
        render_server(out, server);
    }
    if send.client_fell_behind {
        let _ = writeln!(
            out,
            "  {}",
            palette.yellow(&format!(
                "the client fell behind its schedule: its own send lag p90 is {} (over {}; p99 {}); latency from the actual send understates what users on this schedule saw",
                opt_ms(send.client_lag_ms.map(|s| s.p90)),
                format_ms(crate::metrics::send::CLIENT_LAG_LIMIT_MS),
                opt_ms(send.client_lag_ms.map(|s| s.p99))
            ))
        );
    }
    if with_slos {
        for check in &level.slo.checks {
            let verdict = if check.met {
                palette.green("met")
            } else {
                palette.red("missed")
            };
            let _ = writeln!(
                out,
                "  objective  {} : {} {verdict}",
                check.slo,
                opt_ms(check.observed_ms)
            );
        }
        let _ = writeln!(
            out,
            "  goodput    {:.2} requests/s met every objective ({} requests)",
            level.slo.goodput_per_s, level.slo.good_requests
        );
    }
}

/// The server's own metrics over a level, and the client's figures beside them.
fn render_server(out: &mut String, server: &ServerDigest) {
    let sources = match server.sources.len() {
        1 => server.sources[0].clone(),
        n => format!("{n} sources"),
    };
    let servers = if server.servers.is_empty() {
        "no known metrics".to_string()
    } else {
        server.servers.join(", ")
    };
    let mut head = format!(
        "  server     {servers} · {sources} · {} scrapes over {:.1} s",
        server.scrapes, server.window_s
    );
    if server.failed_scrapes > 0 {
        head.push_str(&format!(" ({} failed)", server.failed_scrapes));
    }
    let _ = writeln!(out, "{head}");
    let mut state = Vec::new();
    for (role, name) in [
        (Role::RunningRequests, "running"),
        (Role::WaitingRequests, "waiting"),
    ] {
        if let Some(g) = server.gauge(role) {
            state.push(format!(
                "{name} mean {:.1} max {}",
                g.mean,
                trim_float(g.max)
            ));
        }
    }
    if let Some(g) = server.gauge(Role::KvCacheUsage) {
        state.push(format!(
            "kv cache mean {:.0}% max {:.0}%",
            g.mean * 100.0,
            g.max * 100.0
        ));
    }
    if let Some(c) = server.counter(Role::Preemptions) {
        state.push(format!("preemptions {}", trim_float(c.increase)));
    }
    if !state.is_empty() {
        let _ = writeln!(out, "             {}", state.join(" · "));
    }
    let mut tokens = Vec::new();
    if let Some(c) = server.counter(Role::GenerationTokens) {
        let mut text = format!(
            "generated {} tokens ({:.1}/s)",
            trim_float(c.increase),
            c.rate_per_s
        );
        if let Some(pair) = server
            .versus_client
            .as_ref()
            .and_then(|v| v.generation_tokens.as_ref())
        {
            text.push_str(&format!("; the client received {}", pair.client));
            if pair.difference != 0.0 {
                text.push_str(&format!(
                    ", {} {} than the server counted",
                    trim_float(pair.difference.abs()),
                    if pair.difference > 0.0 {
                        "fewer"
                    } else {
                        "more"
                    }
                ));
            }
        }
        tokens.push(text);
    }
    if let Some(c) = server.counter(Role::PromptTokens) {
        tokens.push(format!("prompt {} tokens", trim_float(c.increase)));
    }
    if !tokens.is_empty() {
        let _ = writeln!(out, "             {}", tokens.join(" · "));
    }
    let Some(versus) = &server.versus_client else {
        return;
    };
    for role in ["ttft", "itl", "e2e"] {
        let pairs: Vec<String> = versus
            .latency
            .iter()
            .filter(|p| p.role == role && (p.quantile == "mean" || p.quantile == "p99"))
            .map(|p| {
                if p.quantile == "mean" {
                    return format!(
                        "mean {} vs client {} ({:+.1} ms)",
                        format_ms(p.server.ms),
                        format_ms(p.client_ms),
                        p.difference_ms
                    );
                }
                let bucket = match p.server.high_ms {
                    Some(high) => format!("{}–{}", trim_float(p.server.low_ms), trim_float(high)),
                    None => format!("over {}", trim_float(p.server.low_ms)),
                };
                let difference = if p.within_bucket {
                    "inside the bucket".to_string()
                } else {
                    format!("{:+.1} ms", p.difference_ms)
                };
                format!(
                    "{} ≈{} ({bucket} ms) vs client {} ({difference})",
                    p.quantile,
                    format_ms(p.server.ms),
                    format_ms(p.client_ms),
                )
            })
            .collect();
        if !pairs.is_empty() {
            let mut line = format!("  server {role:<5}{}", pairs.join(" · "));
            if role == "ttft" && versus.client_ttft_is_first_reasoning {
                line.push_str(" (client: to the first reasoning token)");
            }
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The figures of one summary: latencies, throughput, errors, validation.
fn render_summary(out: &mut String, file: &SummaryFile, summary: &Summary, palette: Palette) {
    let config = &file.config;
    latency_line(out, "ttft", summary.ttft_ms.as_ref());
    latency_line(out, "itl", summary.inter_token_latency_ms.as_ref());
    latency_line(out, "tpot", summary.tpot_ms.as_ref());
    latency_line(out, "e2e", summary.e2e_ms.as_ref());
    latency_line(
        out,
        "reasoning",
        summary.time_to_first_reasoning_ms.as_ref(),
    );
    let t = &summary.throughput;
    let _ = writeln!(
        out,
        "  throughput {:.1} output tok/s · {:.1} total tok/s · {:.1} requests/min over {:.2} s",
        t.output_tokens_per_s, t.total_tokens_per_s, t.requests_per_minute, t.window_s
    );
    let r = &summary.requests;
    let failed = if r.failed > 0 {
        let kinds: Vec<String> = r
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        palette.red(&format!(
            "{} failed ({:.1}%: {})",
            r.failed,
            r.error_rate * 100.0,
            kinds.join(", ")
        ))
    } else {
        "0 failed".to_string()
    };
    let mut excluded = String::new();
    if r.warmup + r.cooldown > 0 {
        excluded = format!(
            " (not counted: {} warmup, {} cooldown)",
            r.warmup, r.cooldown
        );
    }
    if let Some(text) = excluded_failures_text(r) {
        excluded.push_str(&format!(" · {}", palette.red(&text)));
    }
    let _ = writeln!(out, "  requests   {} ok, {}{excluded}", r.completed, failed);
    if let Some(text) = connections_text(&summary.connections) {
        let _ = writeln!(out, "  connections {text}");
    }
    let limits = &summary.output_limits;
    if limits.ended_early > 0 || limits.exceeded > 0 || limits.unknown > 0 {
        let reasons: Vec<String> = limits
            .finish_reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let mut exceeded = if limits.exceeded > 0 {
            palette.red(&format!(
                ", {} over it (max_tokens not honoured)",
                limits.exceeded
            ))
        } else {
            String::new()
        };
        if limits.unknown > 0 {
            exceeded.push_str(&format!(
                ", {} unknown (no server count, no finish reason)",
                limits.unknown
            ));
        }
        let _ = writeln!(
            out,
            "  max_tokens {} of {} requests ended before their max_tokens{exceeded} · finish reasons: {}",
            limits.ended_early,
            limits.requests_with_max_tokens,
            reasons.join(", ")
        );
    }
    if summary.overload.overloaded {
        let _ = writeln!(
            out,
            "  {}",
            palette.yellow(&format!(
                "overloaded: {:.1}% of requests took over 3 s to the first token",
                summary.overload.share_over_threshold * 100.0
            ))
        );
    }
    if let Some(text) = estimates_text(summary, &config.tokenizer) {
        let _ = writeln!(out, "  tokens     {}", palette.yellow(&text));
    }
    if summary.token_counts.mismatched_requests > 0 {
        let _ = writeln!(
            out,
            "  tokens     {} requests where the server's and the client's ({}) token counts differ (mean output difference {:.1}%)",
            summary.token_counts.mismatched_requests,
            config.tokenizer,
            summary.token_counts.mean_output_relative_difference * 100.0
        );
    }
    if let Some(v) = &summary.validation {
        let verdict = if v.cross_overs > 0 {
            palette.red(&format!("{} CROSS-OVERS", v.cross_overs))
        } else if v.mismatches > 0 {
            palette.yellow(&format!("{} mismatches", v.mismatches))
        } else if v.truncated == 0 {
            palette.green("all correct")
        } else {
            palette.green("no wrong answer")
        };
        let truncated = if v.truncated > 0 {
            format!(
                ", {} cut short before the number (token limit or a broken stream)",
                v.truncated
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  validation {}/{} passed, {}{truncated}",
            v.passed, v.validated, verdict
        );
        for issue in v.cross_over_requests.iter().take(5) {
            let _ = writeln!(
                out,
                "    request {} (expected {}) got request {}'s answer: {:?}",
                issue.request_id,
                issue.expected,
                issue
                    .other_request_id
                    .map_or("?".to_string(), |id| id.to_string()),
                issue.excerpt
            );
        }
    }
}
