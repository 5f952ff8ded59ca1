//! The `llmperf` command: ad-hoc runs, the built-in endpoint, listings.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use llmperf::builtin::Server;
use llmperf::cli::parse_duration;
use llmperf::harness::{load_dotenv, ColorChoice};
use llmperf::load::Stop;
use llmperf::report::export::GateOutcome;
use llmperf::report::reporter::{Compared, Reporter, Terminal};
use llmperf::report::stdout;
use llmperf::report::terminal::Palette;
use llmperf::results::RunMode;
use llmperf::run::{run_benchmark, RunOptions};
use llmperf::shard::Shard;
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, MetricsStyle, Script, Workload};

/// Benchmark streaming LLM endpoints: TTFT, inter-token latency, throughput, cross-over validation.
#[derive(Debug, Parser)]
#[command(name = "llmperf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one benchmark from flags (reads .env; OPENAI_API_BASE / OPENAI_API_KEY by default).
    Run(Box<RunArgs>),
    /// Serve the built-in endpoint (OpenAI chat/completions streaming with scripted timing and faults).
    #[command(alias = "mock")]
    Builtin(BuiltinArgs),
    /// Compare two results, each a baseline file, a summary.json or a results directory (exits 1 on a gated regression).
    Compare(CompareCmd),
    /// Print stored results in a machine format: every summary.json and baseline file under the given paths, as one JSON value.
    Export(ExportCmd),
    /// Render the HTML report of stored results: an index and one page per benchmark.
    Report(ReportCmd),
    /// Merge the shards of one run (llmperf run --shard I/N) into one result that compare, report, export and baselines take as one run's (exits 1 as run does: every request failed, a stop condition, a cross-over).
    Merge(MergeCmd),
    /// List the endpoint kinds this build knows (--api values).
    ListApis,
}

#[derive(Debug, Args)]
struct ReportCmd {
    /// Results: a directory of benchmarks (target/llmperf) or one run's directory (llmperf run --results-dir).
    results: PathBuf,
    /// Where the report goes (default: RESULTS/report).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Templates replacing the built-in ones of the same names (base.html, index.html, benchmark.html, style.css).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Skip the charts.
    #[arg(long)]
    noplot: bool,
}

#[derive(Debug, Args)]
struct MergeCmd {
    /// The shards' results directories, or a directory holding them (each subdirectory with a summary.json).
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Where the merged summary.json and requests.jsonl go.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Merge even with shards missing or unfinished; the result names the missing ones.
    #[arg(long)]
    allow_partial: bool,
    /// Exit 0 even when a response answered another request (a cross-over is reported either way).
    #[arg(long)]
    allow_cross_overs: bool,
    /// Print one line.
    #[arg(long, short)]
    quiet: bool,
    /// Colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Debug, Args)]
struct CompareCmd {
    /// The baseline: a baseline file (benches/baselines/<id>/<name>.json), a summary.json, or a results directory.
    baseline: PathBuf,
    /// The result to judge against it, in any of the same forms.
    current: PathBuf,
    #[command(flatten)]
    compare: llmperf::cli::CompareArgs,
    /// Colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Debug, Args)]
struct ExportCmd {
    /// Results to export: directories are searched (summary.json files, except previous runs, and baseline files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The format: json (one message per result per line), github-smaller, github-bigger, bencher.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: llmperf::report::export::OutputFormat,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Endpoint kind (see `llmperf list-apis`).
    #[arg(long, default_value = "openai-chat")]
    api: String,
    /// Base URL, e.g. http://127.0.0.1:8000/v1 (default: ${PREFIX}_API_BASE).
    #[arg(long)]
    base_url: Option<String>,
    /// Environment variable prefix for the base URL and key (TOGETHER reads TOGETHER_API_BASE/TOGETHER_API_KEY; default: the kind's own).
    #[arg(long)]
    env_prefix: Option<String>,
    /// A kind-specific setting, KEY=VALUE (repeatable), e.g. project=my-project for Vertex AI.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_option)]
    options: Vec<(String, String)>,
    /// Run against a built-in endpoint started for this run (default script: TTFT 100 ms, 10 ms per token).
    #[arg(long, alias = "builtin", conflicts_with = "base_url")]
    builtin: bool,
    /// Model name (default: LLMPERF_MODEL; `llmperf-builtin` with --builtin).
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// Name of the run in results and output.
    #[arg(long, default_value = "run")]
    name: String,
    #[command(flatten)]
    load: llmperf::cli::LoadArgs,
    /// Cap on output tokens per request.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Classic prompts: fewest sonnet lines (selects the line scheme).
    #[arg(long)]
    min_lines: Option<u32>,
    /// Classic prompts: most sonnet lines (selects the line scheme).
    #[arg(long)]
    max_lines: Option<u32>,
    /// Classic prompts: lines asked back (selects the line scheme).
    #[arg(long)]
    req_lines: Option<u32>,
    /// Token-length prompts: mean input tokens.
    #[arg(long, default_value_t = 550)]
    mean_input_tokens: u32,
    /// Token-length prompts: standard deviation of input tokens.
    #[arg(long, default_value_t = 150)]
    stddev_input_tokens: u32,
    /// Token-length prompts: mean output tokens.
    #[arg(long, default_value_t = 150)]
    mean_output_tokens: u32,
    /// Token-length prompts: standard deviation of output tokens.
    #[arg(long, default_value_t = 80)]
    stddev_output_tokens: u32,
    /// Ask the server to ignore EOS (ignore_eos, min_tokens), as vLLM/SGLang/TGI support.
    #[arg(long)]
    ignore_eos: bool,
    /// Seed for prompts, lengths and validation numbers.
    #[arg(long, default_value_t = llmperf::spec::DEFAULT_SEED)]
    seed: u64,
    /// Check every answer (number ↔ words) and detect cross-overs: the default for generated prompts; with --dataset it must be asked for.
    #[arg(long, conflicts_with = "no_validate")]
    validate: bool,
    /// Do not validate: prompts carry no validation line.
    #[arg(long)]
    no_validate: bool,
    /// Exit 0 even when a response answered another request (a cross-over is reported either way).
    #[arg(long)]
    allow_cross_overs: bool,
    /// Send only validation prompts (a correctness run).
    #[arg(long)]
    validate_only: bool,
    /// A Hugging Face tokenizer.json for client-side counts (default: bundled cl100k_base).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Prompts from a dataset file instead of generated ones: JSONL ({"prompt": …} or {"messages": […]}, each with an optional "max_tokens") or ShareGPT.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["min_lines", "max_lines", "req_lines", "validate_only", "mean_input_tokens", "stddev_input_tokens", "mean_output_tokens", "stddev_output_tokens"])]
    dataset: Option<PathBuf>,
    /// The dataset's format, jsonl or sharegpt (default: guessed; a JSON array or objects with "conversations" are ShareGPT).
    #[arg(long, value_name = "FORMAT", requires = "dataset")]
    dataset_format: Option<llmperf::DatasetFormat>,
    /// How dataset entries are picked from the seed: without-replacement (each at most once; too few is an error) or with-replacement.
    #[arg(long, value_name = "SAMPLING", requires = "dataset", default_value_t = llmperf::Sampling::WithoutReplacement)]
    sampling: llmperf::Sampling,
    /// Drop dataset entries whose first request has fewer tokens.
    #[arg(long, value_name = "N", requires = "dataset")]
    min_input_tokens: Option<u32>,
    /// Drop dataset entries whose first request has more tokens.
    #[arg(long, value_name = "N", requires = "dataset")]
    max_input_tokens: Option<u32>,
    /// Drop dataset entries with a turn asking for more output tokens (--max-tokens caps instead).
    #[arg(long, value_name = "N", requires = "dataset")]
    max_output_tokens: Option<u32>,
    /// Send a system prompt of exactly N tokens, the same for every request, before each conversation (prefix caching).
    #[arg(long, value_name = "N")]
    shared_prefix_tokens: Option<u32>,
    /// Turns per conversation (generated prompts), or most turns kept of each ShareGPT conversation.
    #[arg(long, value_name = "N")]
    turns: Option<u32>,
    /// Extra JSON object merged into every request body, e.g. '{"temperature":0}'.
    #[arg(long)]
    extra_body: Option<String>,
    /// Write DIR/summary.json and DIR/requests.jsonl (and DIR/server_metrics.jsonl, the server's metrics scrape by scrape).
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Scrape this Prometheus metrics endpoint during the run (repeatable: one per replica behind a gateway). Default: /metrics at the base URL's origin, except for managed clouds; a missing one is a note, not an error.
    #[arg(
        long = "server-metrics",
        value_name = "URL",
        conflicts_with = "no_server_metrics"
    )]
    server_metrics: Vec<String>,
    /// Do not scrape the server's metrics.
    #[arg(long)]
    no_server_metrics: bool,
    /// Time between scrapes of the server's metrics (at least 20ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "250ms")]
    server_metrics_interval: std::time::Duration,
    /// Run shard I (from 0) of N: this process drives its share of the load the other flags describe (see docs/sharding.md); `auto` reads the index, and on Slurm the count, from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID.
    #[arg(long, value_name = "I/N|auto")]
    shard: Option<String>,
    /// The shard count, where the environment gives only the index (a Kubernetes Indexed Job); implies --shard auto.
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// Prepare, then start sending at this wall-clock time (RFC 3339, e.g. 2026-12-03T10:00:00Z), so that shards start together.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    start_at: Option<std::time::SystemTime>,
    /// Threads that send the requests and read their streams (default: one per two cores, at least one; one thread reads tens of thousands of events per second).
    #[arg(long, value_name = "N", env = "LLMPERF_CLIENT_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    client_threads: Option<u16>,
    #[command(flatten)]
    connect: llmperf::cli::ConnectArgs,
    /// Print one line.
    #[arg(long, short)]
    quiet: bool,
    /// Colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Debug, Args)]
struct BuiltinArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, short, default_value_t = 0)]
    port: u16,
    /// Time to first content token.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    ttft: Duration,
    /// Time per token after the first.
    #[arg(long, value_parser = parse_duration, default_value = "10ms")]
    inter_token: Duration,
    /// Uniform ± jitter on every event.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    jitter: Duration,
    /// Tokens per SSE event.
    #[arg(long, default_value_t = 1)]
    tokens_per_event: u32,
    /// Extra TTFT per prompt token (prefill).
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    ttft_per_prompt_token: Duration,
    /// Requests served at once; more wait in a queue.
    #[arg(long)]
    concurrency_limit: Option<usize>,
    /// Output tokens when a request sets no max_tokens.
    #[arg(long, default_value_t = 128)]
    output_tokens: u32,
    /// Reasoning tokens streamed before the content.
    #[arg(long, default_value_t = 0)]
    reasoning_tokens: u32,
    /// Require this key (401 otherwise): as Bearer, or in the protocol's own header (Azure's api-key, Anthropic's x-api-key).
    #[arg(long)]
    api_key: Option<String>,
    /// Inject a fault: KIND:every=N or KIND:p=P; KIND is 500 (any status), disconnect, malformed, stall, cross-over, stream-error, missing-done, or a hostile one: endless-line, huge-event (50 MiB), event-flood (2,000,000 events). Repeatable.
    #[arg(long, value_parser = parse_fault)]
    fault: Vec<(Fault, FaultSchedule)>,
    /// Seed for jitter, filler text and probabilistic faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How connections are kept or closed: keep-alive, close-after-response (llama.cpp: advertise keep-alive, close after each response), close-on-reuse (a second request on a connection is not answered), announce-close (Connection: close), or limited:max=N,timeout=S (Keep-Alive limits).
    #[arg(long, value_parser = parse_connections, default_value = "keep-alive")]
    connections: llmperf::builtin::Connections,
    /// Never send usage, even when asked (as llama-cpp-python's server and many proxies).
    #[arg(long)]
    omit_usage: bool,
    /// Words of one server token each that cl100k_base splits into several (a model with another vocabulary).
    #[arg(long)]
    long_words: bool,
    /// What GET /metrics serves (no API key needed): the endpoint's own counts (running and waiting requests, tokens, TTFT and latency histograms) under one real server's Prometheus names, or no metrics at all.
    #[arg(long, value_enum, default_value_t = MetricsStyleArg::Vllm)]
    metrics_style: MetricsStyleArg,
}

/// `--metrics-style`: [`MetricsStyle`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MetricsStyleArg {
    /// vLLM V1 (vllm:num_requests_running, vllm:time_to_first_token_seconds, …).
    Vllm,
    /// SGLang (sglang:num_running_reqs, sglang:time_to_first_token_seconds, …).
    Sglang,
    /// Hugging Face TGI (tgi_queue_size, tgi_request_duration, …; no TTFT histogram).
    Tgi,
    /// llama.cpp llama-server (llamacpp:requests_processing, llamacpp:tokens_predicted_total, …; no histograms).
    LlamaCpp,
    /// No metrics: GET /metrics is a 404.
    Off,
    /// A gateway's catch-all page: GET /metrics is a 200 text/html page.
    NotPrometheus,
}

impl From<MetricsStyleArg> for MetricsStyle {
    fn from(arg: MetricsStyleArg) -> Self {
        match arg {
            MetricsStyleArg::Vllm => MetricsStyle::Vllm,
            MetricsStyleArg::Sglang => MetricsStyle::Sglang,
            MetricsStyleArg::Tgi => MetricsStyle::Tgi,
            MetricsStyleArg::LlamaCpp => MetricsStyle::LlamaCpp,
            MetricsStyleArg::Off => MetricsStyle::Off,
            MetricsStyleArg::NotPrometheus => MetricsStyle::NotPrometheus,
        }
    }
}

fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    llmperf::shard::parse_start_at(text).map_err(|e| e.to_string())
}

/// The shard `--shard` and `--shards` name, reading the scheduler's
/// environment (`lookup`) for `auto`.
fn shard_of(
    shard: Option<&str>,
    shards: Option<u32>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Shard>> {
    let from_env = |count| Shard::from_env(&lookup, count);
    Ok(match (shard, shards) {
        (None, None) => None,
        (Some("auto"), count) | (None, count @ Some(_)) => Some(from_env(count)?),
        (Some(text), count) => {
            let shard = Shard::parse(text)?;
            if count.is_some_and(|count| count != shard.count) {
                bail!(
                    "--shard {text} and --shards {} disagree",
                    count.unwrap_or(0)
                );
            }
            Some(shard)
        }
    })
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{text}` is not KEY=VALUE, e.g. region=us-east-1")),
    }
}

fn parse_connections(text: &str) -> Result<llmperf::builtin::Connections, String> {
    use llmperf::builtin::Connections;
    let usage = "write keep-alive, close-after-response, close-on-reuse, announce-close or limited:max=N,timeout=S";
    match text {
        "keep-alive" => Ok(Connections::KeepAlive),
        "close-after-response" => Ok(Connections::CloseAfterResponse),
        "close-on-reuse" => Ok(Connections::CloseOnReuse),
        "announce-close" => Ok(Connections::AnnounceClose),
        _ => {
            let settings = text
                .strip_prefix("limited:")
                .ok_or_else(|| format!("`{text}`: {usage}"))?;
            let (mut max, mut timeout) = (None, None);
            for setting in settings.split(',') {
                let number =
                    |value: &str| {
                        value.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                            format!("`{value}` is not a positive whole number: {usage}")
                        })
                    };
                match setting.split_once('=') {
                    Some(("max", value)) => max = Some(number(value)?),
                    Some(("timeout", value)) => timeout = Some(number(value)?),
                    _ => return Err(format!("`{setting}`: {usage}")),
                }
            }
            Ok(Connections::Limited {
                max_requests: max.unwrap_or(100),
                idle_timeout_s: timeout.unwrap_or(5),
            })
        }
    }
}

fn parse_fault(text: &str) -> Result<(Fault, FaultSchedule), String> {
    let usage = "write KIND:every=N or KIND:p=P, e.g. 500:every=10 or disconnect:p=0.05";
    let (kind, schedule) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: {usage}"))?;
    let fault = match kind {
        "disconnect" => Fault::Disconnect,
        "malformed" => Fault::MalformedEvent,
        "stall" => Fault::Stall,
        "cross-over" | "crossover" => Fault::CrossOver,
        "stream-error" => Fault::StreamError,
        "missing-done" => Fault::MissingDone,
        "endless-line" => Fault::EndlessLine,
        "huge-event" => Fault::HugeEvent {
            bytes: 50 * 1024 * 1024,
        },
        "event-flood" => Fault::EventFlood { events: 2_000_000 },
        status => Fault::Status(
            status
                .parse::<u16>()
                .ok()
                .filter(|s| (400..=599).contains(s))
                .ok_or_else(|| {
                    format!("`{kind}` is not a fault kind or an HTTP error status: {usage}")
                })?,
        ),
    };
    let schedule = if let Some(n) = schedule.strip_prefix("every=") {
        FaultSchedule::Every(
            n.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("`{n}` is not a positive whole number: {usage}"))?,
        )
    } else if let Some(p) = schedule.strip_prefix("p=") {
        FaultSchedule::Probability(
            p.parse::<f64>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| format!("`{p}` is not a probability between 0 and 1: {usage}"))?,
        )
    } else {
        return Err(format!("`{schedule}`: {usage}"));
    };
    Ok((fault, schedule))
}

fn main() -> ExitCode {
    stdout::own();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Builtin(args) => builtin(args),
        Command::Compare(args) => compare(args),
        Command::Export(args) => export(args),
        Command::Report(args) => report(args),
        Command::Merge(args) => merge(args),
        Command::ListApis => {
            for kind in llmperf::endpoint::kinds() {
                stdout::line(&format!("{:<20} {}", kind.name(), kind.about().description));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    load_dotenv().map_err(anyhow::Error::msg)?;
    let mut endpoint = Endpoint::kind(&args.api);
    if let Some(prefix) = &args.env_prefix {
        endpoint = endpoint.env_prefix(prefix);
    }
    for (key, value) in &args.options {
        endpoint = endpoint.option(key, value);
    }
    endpoint = args.connect.apply(endpoint)?;
    if let Some(url) = &args.base_url {
        endpoint = endpoint.base_url(url);
    }
    if args.builtin {
        endpoint = endpoint.builtin();
    } else if llmperf::endpoint::configured_endpoint(&endpoint)?.is_none() {
        let prefix = llmperf::endpoint::env_prefix(&endpoint)?;
        bail!(
            "no endpoint for --api {}: pass --base-url URL, set {prefix}_API_BASE (or {prefix}_API_KEY for a provider with a public URL; a .env file works), or pass --builtin to try the built-in endpoint",
            args.api
        );
    }
    if let Some(model) = &args.model {
        endpoint = endpoint.model(model);
    }
    let lines = args.min_lines.is_some() || args.max_lines.is_some() || args.req_lines.is_some();
    let mut workload = if args.validate_only {
        Workload::validation_only()
    } else if lines {
        let min = args.min_lines.unwrap_or(2);
        Workload::lines(
            min,
            args.max_lines.unwrap_or(min.max(8)),
            args.req_lines.unwrap_or(4),
        )
    } else {
        Workload::token_lengths(
            args.mean_input_tokens,
            args.stddev_input_tokens,
            args.mean_output_tokens,
            args.stddev_output_tokens,
        )
    };
    if let Some(max_tokens) = args.max_tokens {
        workload = workload.max_tokens(max_tokens);
    }
    workload = workload.ignore_eos(args.ignore_eos);
    if let Some(path) = &args.tokenizer {
        workload = workload.tokenizer(path);
    }
    // Datasets, the shared prefix and conversations.
    if let Some(path) = &args.dataset {
        let format = match args.dataset_format {
            Some(format) => format,
            None => llmperf::workload::dataset::guess_format(path)?,
        };
        let mut dataset = llmperf::Dataset::new(path, format).sample(args.sampling);
        if let Some(min) = args.min_input_tokens {
            dataset = dataset.min_input_tokens(min);
        }
        if let Some(max) = args.max_input_tokens {
            dataset = dataset.max_input_tokens(max);
        }
        if let Some(max) = args.max_output_tokens {
            dataset = dataset.max_output_tokens(max);
        }
        workload.prompts = llmperf::spec::PromptScheme::Dataset(dataset);
    }
    if let Some(tokens) = args.shared_prefix_tokens {
        workload = workload.shared_prefix(tokens);
    }
    if let Some(turns) = args.turns {
        workload = workload.multi_turn(turns);
    }
    let load = args.load.load()?;
    let mut bench = Benchmark::new()
        .endpoint(endpoint)
        .workload(workload)
        .load(load)
        .seed(args.seed)
        .fail_on_cross_over(!args.allow_cross_overs);
    if args.validate || args.no_validate {
        bench = bench.validate(args.validate);
    }
    let mut server_metrics = if args.no_server_metrics {
        ServerMetrics::off()
    } else {
        ServerMetrics::default()
    };
    for url in &args.server_metrics {
        server_metrics = server_metrics.url(url);
    }
    bench = bench.server_metrics(server_metrics.interval(args.server_metrics_interval));
    for slo in args.load.slos()? {
        bench = bench.slo(slo);
    }
    if let Some(extra) = &args.extra_body {
        let value: serde_json::Value = serde_json::from_str(extra)
            .with_context(|| format!("--extra-body is not valid JSON: {extra}"))?;
        let serde_json::Value::Object(fields) = value else {
            bail!("--extra-body must be a JSON object, e.g. '{{\"temperature\": 0}}'");
        };
        for (key, value) in fields {
            bench = bench.extra_body(key, value);
        }
    }
    let options = RunOptions {
        results_dir: args.results_dir.clone(),
        progress: !args.quiet && std::io::stderr().is_terminal(),
        mode: RunMode::Run,
        handle_interrupt: true,
        shard: shard_of(args.shard.as_deref(), args.shards, |name| {
            std::env::var(name).ok()
        })?,
        start_at: args.start_at,
        client_threads: args.client_threads.map(usize::from),
        // Records go to requests.jsonl as requests end; memory stays flat.
        drop_records: true,
    };
    let outcome = run_benchmark(&args.name, &bench, &options)?;
    show(&outcome.summary, args.quiet, args.color);
    match &outcome.summary_path {
        Some(path) => eprintln!("results: {}", path.display()),
        None if !args.quiet => {
            eprintln!("(pass --results-dir DIR to keep summary.json and requests.jsonl)")
        }
        None => {}
    }
    if !outcome.any_ok {
        // Why, in the words that name the fix (a `tls` error names the flag).
        if let Some(error) = &outcome.first_failure {
            eprintln!("the first failure ({}): {}", error.kind, error.message);
        }
    }
    Ok(verdict(
        &outcome.summary,
        outcome.any_ok,
        bench.fails_on_cross_over(),
    ))
}

/// Prints a result: its whole block, or one line.
fn show(summary: &llmperf::results::SummaryFile, quiet: bool, color: ColorChoice) {
    Terminal::new(Palette::new(color.enabled()), quiet).result(summary);
}

/// How a run (or a merge of one) exits: 1 when every request failed, a
/// stop condition ended it, or a response answered another request and
/// that fails it (`fails_on_cross_over`).
fn verdict(
    summary: &llmperf::results::SummaryFile,
    any_ok: bool,
    fails_on_cross_over: bool,
) -> ExitCode {
    if !any_ok {
        let requests: u64 = summary
            .levels
            .iter()
            .map(|l| {
                let counts = &l.summary.requests;
                counts.total + counts.warmup + counts.cooldown
            })
            .sum();
        eprintln!("error: all {requests} requests failed");
        return ExitCode::FAILURE;
    }
    if summary
        .levels
        .iter()
        .any(|l| matches!(l.stop, Stop::MaxErrors { .. } | Stop::MaxErrorRate { .. }))
    {
        // The stop condition's message is in the block above.
        return ExitCode::FAILURE;
    }
    let cross_overs = summary.cross_overs();
    if cross_overs > 0 && fails_on_cross_over {
        eprintln!(
            "error: {cross_overs} response(s) answered another request (cross-overs): the endpoint mixed up responses; --allow-cross-overs exits 0 anyway"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn merge(args: MergeCmd) -> Result<ExitCode> {
    let dirs = llmperf::merge::find_shards(&args.shards, &args.out)?;
    let (summary, records) = llmperf::merge::merge(&dirs, args.allow_partial)?;
    let path = llmperf::merge::write(&args.out, &summary, &records)?;
    show(&summary, args.quiet, args.color);
    eprintln!("results: {}", path.display());
    Ok(verdict(
        &summary,
        records.iter().any(|r| r.ok),
        !args.allow_cross_overs,
    ))
}

fn compare(args: CompareCmd) -> Result<ExitCode> {
    let baseline = llmperf::baseline::Baseline::load(&args.baseline)?;
    let current = llmperf::baseline::Baseline::load(&args.current)?;
    let policy = current.result.config.regression.clone();
    let settings = args.compare.settings(&policy)?;
    let comparison = llmperf::baseline::compare(&baseline, &current, &settings);
    let gate = GateOutcome {
        enabled: args.compare.gate(&policy),
        failures: comparison.gate_failures(),
    };
    let palette = Palette::new(args.color.enabled());
    let mut reporter = args.compare.output_format.reporter(palette, false);
    reporter.note(&palette.bold(&current.result.benchmark));
    reporter.compared(Compared {
        file: &current.result,
        comparison: Some(&comparison),
        gate: &gate,
        results_dir: None,
    });
    reporter.finish();
    if gate.fails() {
        eprintln!("error: regressed: {}", gate.failures.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(args: ExportCmd) -> Result<ExitCode> {
    // Each result with where it was found, to tell apart results of one name.
    let mut results = Vec::new();
    for path in &args.paths {
        if path.is_file() {
            results.push((llmperf::baseline::Baseline::load(path)?, path.clone()));
            continue;
        }
        if !path.is_dir() {
            bail!(
                "{} is neither a results directory nor a file",
                path.display()
            );
        }
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry.with_context(|| format!("cannot search {}", path.display()))?;
            let file = entry.path();
            let in_previous = file
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|name| name == "previous");
            if entry.file_name() == llmperf::results::SUMMARY_FILE {
                if !in_previous {
                    let dir = file.parent().unwrap_or(file).to_path_buf();
                    results.push((llmperf::baseline::Baseline::load(file)?, dir));
                }
            } else if entry.file_name() == llmperf::report::html::BASELINE_COPY_FILE {
                // A compared run's copy of its baseline, not a result.
            } else if file.extension().is_some_and(|e| e == "json")
                && !llmperf::baseline::is_baseline_file(file)
            {
                let parses = std::fs::read_to_string(file)
                    .is_ok_and(|t| serde_json::from_str::<serde_json::Value>(&t).is_ok());
                if !parses {
                    eprintln!("warning: skipped {}: not a JSON file", file.display());
                }
            } else if file.extension().is_some_and(|e| e == "json") {
                // A bad baseline is an error, not a gap in the dashboard.
                let mut baseline = llmperf::baseline::Baseline::read(file)?;
                // Several baselines of one benchmark stay apart.
                baseline.result.benchmark =
                    format!("{} ({})", baseline.result.benchmark, baseline.name);
                results.push((baseline, file.to_path_buf()));
            }
        }
    }
    if results.is_empty() {
        bail!("no results under {}: run `cargo bench` (results go to target/llmperf) or pass a results directory", args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    // Runs of one name (`llmperf run --name`, several results directories)
    // are told apart by where they were found.
    let mut named: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (result, _) in &results {
        *named.entry(result.result.benchmark.clone()).or_default() += 1;
    }
    let files: Vec<llmperf::results::SummaryFile> = results
        .into_iter()
        .map(|(mut result, found)| {
            if named.get(&result.result.benchmark).is_some_and(|&n| n > 1) {
                result.result.benchmark =
                    format!("{} ({})", result.result.benchmark, found.display());
            }
            result.result
        })
        .collect();
    let mut reporter = args.format.reporter(Palette::new(false), false);
    for file in &files {
        reporter.result(file);
        reporter.compared(Compared {
            file,
            comparison: None,
            gate: &GateOutcome::default(),
            results_dir: None,
        });
    }
    reporter.finish();
    Ok(ExitCode::SUCCESS)
}

fn report(args: ReportCmd) -> Result<ExitCode> {
    let out = args.out.unwrap_or_else(|| args.results.join("report"));
    let options = llmperf::report::html::HtmlOptions {
        templates: args.templates,
        noplot: args.noplot,
    };
    let pages = llmperf::report::html::render_report(&args.results, &out, &options)?;
    stdout::line(&format!(
        "report: {} ({} benchmark page(s))",
        pages.index.display(),
        pages.pages.len()
    ));
    Ok(ExitCode::SUCCESS)
}

fn builtin(args: BuiltinArgs) -> Result<ExitCode> {
    let mut script = Script::new()
        .ttft(args.ttft)
        .inter_token(args.inter_token)
        .jitter(args.jitter)
        .tokens_per_event(args.tokens_per_event)
        .ttft_per_prompt_token(args.ttft_per_prompt_token)
        .output_tokens(args.output_tokens)
        .reasoning_tokens(args.reasoning_tokens)
        .seed(args.seed)
        .connections(args.connections)
        .omit_usage(args.omit_usage)
        .long_words(args.long_words)
        .metrics(args.metrics_style.into());
    if let Some(limit) = args.concurrency_limit {
        script = script.concurrency_limit(limit);
    }
    if let Some(key) = args.api_key {
        script = script.require_api_key(key);
    }
    for (fault, schedule) in args.fault {
        script = script.fault(fault, schedule);
    }
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let server =
        Server::start_on(address, script).with_context(|| format!("cannot serve on {address}"))?;
    stdout::line(&format!(
        "llmperf built-in endpoint serving on {}",
        server.base_url()
    ));
    stdout::line(&format!(
        "try: llmperf run --base-url {} -m llmperf-builtin -r 20 -c 4",
        server.base_url()
    ));
    server.wait();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod deploy_examples;
