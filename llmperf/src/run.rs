//! One benchmark run, start to finish.
//!
//! Resolve the endpoint (starting the built-in one when nothing is
//! configured), plan every request from the seed, drive the load, turn
//! each finished exchange into a record on a collector thread (which also
//! appends it to `requests.jsonl` and moves the progress bar), then
//! summarize and write `summary.json`. Used by the `cargo bench` harness
//! and by `llmperf run` alike.

use std::collections::HashMap;
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
use crate::results::{self, Environment, RecordWriter, ResultsError, SummaryFile, ToolInfo};
use crate::spec::{Benchmark, BenchmarkConfig, SpecError};
use crate::workload::tokenizer::{Tokenizer, TokenizerError};
use crate::workload::{plan_requests, RequestPlan};

/// Model name used against the built-in endpoint when none is set.
pub const BUILTIN_MODEL: &str = "llmperf-mock";

/// How to run (as opposed to what: that is the [`Benchmark`]).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to write `summary.json` and `requests.jsonl` (nothing written when unset).
    pub results_dir: Option<PathBuf>,
    /// Show a live progress bar (on a terminal).
    pub progress: bool,
    /// `bench`, `test` or `run`, recorded in the environment.
    pub mode: String,
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

fn resolve(bench: &Benchmark) -> Result<Resolved, RunError> {
    let spec = &bench.endpoint;
    let kind = endpoint::find(&spec.kind).ok_or_else(|| {
        let known: Vec<&str> = endpoint::kinds().map(|k| k.name()).collect();
        SpecError::new(format!(
            "unknown endpoint kind `{}`: use one of {}",
            spec.kind,
            known.join(", ")
        ))
    })?;
    let prefix = spec.env_prefix.to_ascii_uppercase();
    let base_env = format!("{prefix}_API_BASE");
    let key_env = format!("{prefix}_API_KEY");
    let configured = if spec.builtin {
        None
    } else {
        spec.base_url.clone().or_else(|| env_var(&base_env))
    };
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
            (server.base_url(), Some(server), spec.api_key.clone())
        }
    };
    let model = match (&spec.model, &mock) {
        (Some(model), _) => model.clone(),
        (None, _) if env_var("LLMPERF_MODEL").is_some() => env_var("LLMPERF_MODEL").unwrap_or_default(),
        (None, Some(_)) => BUILTIN_MODEL.to_string(),
        (None, None) => {
            return Err(SpecError::new(format!(
                "no model for {base_url}: set it with .model(\"…\") in the spec, --model, or LLMPERF_MODEL"
            ))
            .into())
        }
    };
    Ok(Resolved {
        kind,
        target: Target {
            base_url: base_url.trim_end_matches('/').to_string(),
            model,
            api_key,
            api_key_env: key_env,
            extra_body: bench.extra_body.clone(),
        },
        mock,
    })
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
    let plans: Arc<Vec<RequestPlan>> = Arc::new(plan_requests(
        &bench.workload,
        bench.validate,
        bench.load.requests,
        bench.seed,
        tokenizer,
    ));
    let numbers: HashMap<u64, u64> = plans
        .iter()
        .filter_map(|p| p.task.as_ref().map(|t| (t.number, p.id)))
        .collect();
    let config = BenchmarkConfig {
        endpoint_kind: resolved.kind.name().to_string(),
        base_url: resolved.target.base_url.clone(),
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
    let collector = {
        let plans = Arc::clone(&plans);
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("llmperf-collector".into())
            .spawn(move || -> Result<Vec<RequestRecord>, ResultsError> {
                let context = RecordContext {
                    t0,
                    tokenizer,
                    numbers,
                };
                let mut records = Vec::with_capacity(plans.len());
                let mut failed = 0u64;
                for finished in receiver {
                    let record = RequestRecord::from_exchange(
                        &plans[finished.index],
                        finished.scheduled_at,
                        &finished.exchange,
                        &context,
                    );
                    if let Some(writer) = writer.as_mut() {
                        writer.write(&record)?;
                    }
                    if let Some(bar) = &progress {
                        failed += u64::from(!record.ok);
                        bar.set_message(format!("{failed} errors"));
                        bar.inc(1);
                    }
                    records.push(record);
                }
                Ok(records)
            })
            .map_err(|source| RunError::Start {
                what: "the collector thread",
                source,
            })?
    };

    let stop = Arc::new(AtomicBool::new(false));
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
                    eprintln!("\ninterrupted: finishing the requests in flight (Ctrl-C again to abort)");
                    driver.await;
                }
            }
        } else {
            driver.await;
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let mut records = match collector.join() {
        Ok(result) => result?,
        Err(_) => Vec::new(),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    records.sort_by_key(|r| r.id);
    let summary = SummaryFile {
        schema_version: results::SCHEMA_VERSION,
        tool: ToolInfo::default(),
        benchmark: id.to_string(),
        started_at,
        interrupted: stop.load(Ordering::Relaxed),
        config,
        environment: Environment::current(&options.mode),
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
    let mut builder = reqwest::Client::builder()
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
