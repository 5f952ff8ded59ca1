//! One benchmark run, start to finish.
//!
//! Resolve the endpoint (starting the built-in one when nothing is
//! configured), plan every request from the seed, drive the load, turn
//! each finished exchange into a record on a collector thread (which also
//! appends it to `requests.jsonl` and moves the progress bar), then
//! summarize and write `summary.json`. Used by the `cargo bench` harness
//! and by `llmperf run` alike.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use crate::endpoint::reader::{self, Exchange, Limits};
use crate::endpoint::{self, EndpointKind, Target};
use crate::load;
use crate::metrics::Summary;
use crate::mock::{MockServer, MockStats};
use crate::record::{RecordContext, RequestRecord};
use crate::results::{
    self, Environment, RecordWriter, ResultsError, RunMode, SummaryFile, ToolInfo,
};
use crate::spec::{Benchmark, BenchmarkConfig, Endpoint, SpecError};
use crate::workload::tokenizer::{Tokenizer, TokenizerError};
use crate::workload::{plan_workload, RequestPlan, WorkloadError};

/// Model name used against the built-in endpoint when none is set.
pub const BUILTIN_MODEL: &str = "llmperf-mock";

/// How to run (as opposed to what: that is the [`Benchmark`]).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to write `summary.json` and `requests.jsonl` (nothing written when unset).
    pub results_dir: Option<PathBuf>,
    /// Show a live progress bar (on a terminal).
    pub progress: bool,
    /// What started the run, recorded in the environment.
    pub mode: RunMode,
    /// Stop on Ctrl-C, keeping what finished.
    pub handle_interrupt: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The summary as written.
    pub summary: SummaryFile,
    /// Every record, ordered by request id.
    pub records: Vec<RequestRecord>,
    /// Counters of the built-in endpoint, when it served the run.
    pub mock_stats: Option<MockStats>,
    /// Where `summary.json` was written.
    pub summary_path: Option<PathBuf>,
}

/// Why a run could not happen (a request failing is not one of these).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec has impossible values.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The workload could not be planned (a dataset that cannot be used).
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// Results could not be written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The built-in endpoint or the runtime could not start.
    #[error("cannot start {what}: {source}")]
    Start {
        /// What failed to start.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A part of the run panicked (a bug in llmperf or a user's code).
    #[error("the run failed inside {0}; this is a bug, please report it")]
    Panicked(&'static str),
}

/// The endpoint a run talks to.
struct Resolved {
    kind: &'static dyn EndpointKind,
    target: Target,
    mock: Option<MockServer>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn find_kind(spec: &Endpoint) -> Result<&'static dyn EndpointKind, SpecError> {
    endpoint::find(&spec.kind).ok_or_else(|| {
        let known: Vec<&str> = endpoint::kinds().map(|k| k.name()).collect();
        SpecError::new(format!(
            "unknown endpoint kind `{}`: use one of {} (llmperf list-apis)",
            spec.kind,
            known.join(", ")
        ))
    })
}

/// The environment prefix in force, and the base URL the spec and the
/// environment configure (`None`: the built-in endpoint will serve).
fn configured_base_url(spec: &Endpoint, kind: &dyn EndpointKind) -> (String, Option<String>) {
    let prefix = spec
        .env_prefix
        .as_deref()
        .unwrap_or(kind.default_env_prefix())
        .to_ascii_uppercase();
    if spec.builtin {
        return (prefix, None);
    }
    let base_env = format!("{prefix}_API_BASE");
    // A provider's public URL counts as configured only with a key for it;
    // otherwise an unconfigured benchmark runs against the built-in endpoint.
    let url = spec
        .base_url
        .clone()
        .or_else(|| env_var(&base_env))
        .or_else(|| {
            (spec.api_key.is_some() || kind.credentials(&spec.options, &prefix).configured)
                .then(|| kind.default_base_url().map(str::to_string))
                .flatten()
        });
    (prefix, url)
}

/// Whether `spec` reaches a real endpoint (from the spec or the
/// environment) rather than the built-in one; `Err` for an unknown kind.
pub fn configured_endpoint(spec: &Endpoint) -> Result<Option<String>, SpecError> {
    let kind = find_kind(spec)?;
    Ok(configured_base_url(spec, kind).1)
}

fn resolve(bench: &Benchmark) -> Result<Resolved, RunError> {
    let spec = &bench.endpoint;
    let kind = find_kind(spec)?;
    let (prefix, configured) = configured_base_url(spec, kind);
    let key_env = format!("{prefix}_API_KEY");
    let (base_url, mock, api_key) = match configured {
        Some(url) => {
            let key = spec
                .api_key
                .clone()
                .or_else(|| env_var(&key_env).map(crate::spec::Secret::new));
            (url, None, key)
        }
        None => {
            let server =
                MockServer::start(bench.mock.clone()).map_err(|source| RunError::Start {
                    what: "the built-in endpoint",
                    source,
                })?;
            (
                kind.builtin_base_url(&server.root_url()),
                Some(server),
                spec.api_key.clone(),
            )
        }
    };
    let api_key_source = if spec.api_key.is_some() {
        "the API key given in the spec".to_string()
    } else {
        kind.credentials(&spec.options, &prefix).source
    };
    let model = spec
        .model
        .clone()
        .or_else(|| env_var("LLMPERF_MODEL"))
        .or_else(|| mock.as_ref().map(|_| BUILTIN_MODEL.to_string()))
        .ok_or_else(|| {
            SpecError::new(format!(
                "no model for {}: set it with .model(\"…\") in the spec, --model, or LLMPERF_MODEL",
                crate::spec::display_url(&base_url)
            ))
        })?;
    Ok(Resolved {
        kind,
        target: Target {
            base_url: base_url.trim_end_matches('/').to_string(),
            model,
            api_key,
            api_key_source,
            options: spec.options.clone(),
            env_prefix: prefix,
            extra_body: bench.extra_body.clone(),
        },
        mock,
    })
}

/// The spec's options as written into results: values of options whose
/// name says they are secret (`access_token`, `api_key`, …) are replaced
/// by `***`; a `*_command` option is a command line, kept.
fn recorded_options(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(name, value)| {
            let value = if endpoint::is_secret_setting(name) {
                "***".to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// One finished request, on its way to the collector.
struct Finished {
    index: usize,
    scheduled_at: Instant,
    exchange: Exchange,
}

/// Runs `bench` under the id `id`.
pub fn run_benchmark(
    id: &str,
    bench: &Benchmark,
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    bench.check()?;
    let tokenizer: &Tokenizer = match &bench.workload.tokenizer {
        Some(path) => Tokenizer::shared(path)?,
        None => Tokenizer::bundled(),
    };
    let resolved = resolve(bench)?;
    let planned = plan_workload(
        &bench.workload,
        bench.validate,
        bench.load.requests,
        bench.seed,
        tokenizer,
    )?;
    if let Some(report) = planned.dataset.filter(|r| r.dropped() > 0) {
        if options.mode != RunMode::Test {
            eprintln!("{id}: dataset {report}");
        }
    }
    let plans: Arc<Vec<RequestPlan>> = Arc::new(planned.requests);
    let numbers: HashMap<u64, u64> = plans
        .iter()
        .filter_map(|p| p.task.as_ref().map(|t| (t.number, p.id)))
        .collect();
    let config = BenchmarkConfig {
        endpoint_kind: resolved.kind.name().to_string(),
        base_url: crate::spec::display_url(&resolved.target.base_url),
        builtin_endpoint: resolved.mock.is_some(),
        model: resolved.target.model.clone(),
        api_key_set: resolved.target.api_key.is_some(),
        workload: bench.workload.clone(),
        load: bench.load.clone(),
        validate: bench.validate,
        seed: bench.seed,
        extra_body: bench.extra_body.clone(),
        mock: resolved.mock.as_ref().map(|_| bench.mock.clone()),
        tokenizer: tokenizer.name().to_string(),
        options: recorded_options(&bench.endpoint.options),
    };
    let mut writer = match &options.results_dir {
        Some(dir) => Some(RecordWriter::create(dir)?),
        None => None,
    };
    let client = build_client(bench, resolved.mock.is_some())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("llmperf-client")
        .build()
        .map_err(|source| RunError::Start {
            what: "the async runtime",
            source,
        })?;

    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let t0 = Instant::now();
    let progress = options
        .progress
        .then(|| progress_bar(id, bench.load.requests));
    let (sender, receiver) = mpsc::channel::<Finished>();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let plans = Arc::clone(&plans);
        let progress = progress.clone();
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("llmperf-collector".into())
            .spawn(move || -> (Vec<RequestRecord>, Option<ResultsError>) {
                let context = RecordContext {
                    t0,
                    tokenizer,
                    numbers,
                };
                let mut records = Vec::with_capacity(plans.len());
                let mut write_error = None;
                let mut failed = 0u64;
                for finished in receiver {
                    let record = RequestRecord::from_exchange(
                        &plans[finished.index],
                        finished.scheduled_at,
                        &finished.exchange,
                        &context,
                    );
                    if let Some(out) = writer.as_mut() {
                        if let Err(error) = out.write(&record) {
                            // The results cannot be kept: stop sending, and
                            // report the error once the requests in flight end.
                            stop.store(true, Ordering::Relaxed);
                            write_error = Some(error);
                            writer = None;
                        }
                    }
                    if let Some(bar) = &progress {
                        failed += u64::from(!record.ok);
                        bar.set_message(format!("{failed} errors"));
                        bar.inc(1);
                    }
                    records.push(record);
                }
                (records, write_error)
            })
            .map_err(|source| RunError::Start {
                what: "the collector thread",
                source,
            })?
    };

    let interrupted = Arc::new(AtomicBool::new(false));
    let limits = Limits {
        timeout: bench.load.timeout,
        stall_timeout: bench.load.stall_timeout,
    };
    let target = Arc::new(resolved.target);
    let kind = resolved.kind;
    runtime.block_on(async {
        let issue = {
            let plans = Arc::clone(&plans);
            let target = Arc::clone(&target);
            move |index: usize, scheduled_at: Instant| {
                let plans = Arc::clone(&plans);
                let target = Arc::clone(&target);
                let client = client.clone();
                let sender = sender.clone();
                async move {
                    let exchange =
                        reader::exchange(&client, kind, &target, &plans[index], limits).await;
                    // The collector only goes away if it failed; its error is reported below.
                    let _ = sender.send(Finished {
                        index,
                        scheduled_at,
                        exchange,
                    });
                }
            }
        };
        let driver = load::closed_loop(
            plans.len(),
            bench.load.concurrency,
            bench.load.sleep,
            Arc::clone(&stop),
            issue,
        );
        if options.handle_interrupt {
            tokio::pin!(driver);
            tokio::select! {
                () = &mut driver => {}
                _ = tokio::signal::ctrl_c() => {
                    stop.store(true, Ordering::Relaxed);
                    interrupted.store(true, Ordering::Relaxed);
                    eprintln!("\ninterrupted: finishing the requests in flight (Ctrl-C again to abort)");
                    tokio::select! {
                        () = &mut driver => {}
                        _ = tokio::signal::ctrl_c() => {
                            // requests.jsonl already holds every finished request.
                            eprintln!("aborted");
                            std::process::exit(130);
                        }
                    }
                }
            }
        } else {
            driver.await;
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let (mut records, write_error) = collector
        .join()
        .map_err(|_| RunError::Panicked("the collector thread"))?;
    if let Some(error) = write_error {
        return Err(error.into());
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    records.sort_by_key(|r| r.id);
    let summary = SummaryFile {
        schema_version: results::SCHEMA_VERSION,
        tool: ToolInfo::default(),
        benchmark: id.to_string(),
        started_at,
        interrupted: interrupted.load(Ordering::Relaxed),
        config,
        environment: Environment::current(options.mode),
        summary: Summary::of(&records),
    };
    let summary_path = match &options.results_dir {
        Some(dir) => Some(results::write_summary(dir, &summary)?),
        None => None,
    };
    let mock_stats = resolved.mock.as_ref().map(MockServer::stats);
    Ok(RunOutcome {
        summary,
        records,
        mock_stats,
        summary_path,
    })
}

fn build_client(bench: &Benchmark, builtin: bool) -> Result<reqwest::Client, RunError> {
    // HTTP/1.1, one connection per request in flight, as the common SDKs
    // do: HTTP/2 would queue requests past the server's stream limit inside
    // the client, and that wait would count as time to first token.
    let mut builder = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(bench.load.concurrency)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("llmperf/", env!("CARGO_PKG_VERSION")));
    if builtin {
        // Loopback traffic must never go through a proxy from the environment.
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| RunError::Client(e.to_string()))
}

fn progress_bar(id: &str, total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} requests, {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(id.to_string());
    bar.set_message("0 errors");
    bar
}
