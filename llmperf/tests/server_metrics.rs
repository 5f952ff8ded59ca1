//! The server's own metrics, scraped during runs over real loopback HTTP:
//! what the built-in endpoint served (under each server's names) comes
//! back in the series file and the digest, a missing or foreign metrics
//! endpoint is a note and never a failure, and a metrics endpoint that
//! hangs or restarts is handled as real ones are.

use std::io::Write;
use std::time::Duration;

use llmperf::builtin::Server;
use llmperf::metrics::server::{Role, ServerDigest, Tracker};
use llmperf::results::{read_scrapes, RunMode, SERVER_METRICS_FILE};
use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Load, MetricsStyle, Script, Workload};

mod raw_server;

const SLOTS: usize = 2;
const CLIENTS: usize = 6;

/// Short answers from a server with [`SLOTS`] slots, so requests queue.
fn script(style: MetricsStyle) -> Script {
    Script::new()
        .ttft(Duration::from_millis(40))
        .inter_token(Duration::from_millis(4))
        .concurrency_limit(SLOTS)
        .metrics(style)
}

fn bench(script: Script, requests: u64) -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(40, 0, 12, 0))
        .load(Load::closed(CLIENTS).requests(requests))
        .builtin_script(script)
        .server_metrics(ServerMetrics::default().interval(Duration::from_millis(50)))
}

fn run(bench: &Benchmark) -> (RunOutcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        mode: RunMode::Test,
        ..RunOptions::default()
    };
    let outcome = run_benchmark("server/metrics", bench, &options).expect("the run runs");
    assert!(outcome.any_ok);
    (outcome, dir)
}

fn digest(outcome: &RunOutcome) -> &ServerDigest {
    let level = &outcome.summary.levels[0];
    level
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("no server digest; notes: {:?}", level.notes))
}

/// Output tokens the client received over every request.
fn received(outcome: &RunOutcome) -> u64 {
    outcome
        .records
        .iter()
        .map(|r| u64::from(r.output_tokens()))
        .sum()
}

#[test]
fn the_collected_series_match_what_the_builtin_endpoint_served() {
    let (outcome, dir) = run(&bench(script(MetricsStyle::Vllm), 30));
    let server = digest(&outcome);
    assert_eq!(server.servers, ["vllm"]);
    assert!(server.scrapes >= 3, "{server:?}");
    assert_eq!(server.failed_scrapes, 0);

    // The queue: never more running than the slots, the rest waiting.
    let running = server.gauge(Role::RunningRequests).unwrap();
    let waiting = server.gauge(Role::WaitingRequests).unwrap();
    assert_eq!(running.metric, "vllm:num_requests_running");
    assert_eq!(running.max, SLOTS as f64, "{running:?}");
    assert!(
        waiting.max >= 1.0 && waiting.max <= (CLIENTS - SLOTS) as f64,
        "{waiting:?}"
    );
    // The built-in endpoint's cache usage is the share of slots in use.
    assert_eq!(server.gauge(Role::KvCacheUsage).unwrap().max, 1.0);
    assert_eq!(server.counter(Role::Preemptions).unwrap().increase, 0.0);
    assert_eq!(
        server.counter(Role::FinishedRequests).unwrap().increase,
        30.0
    );

    // Every token the client received, counted by the server too.
    let generated = server.counter(Role::GenerationTokens).unwrap();
    assert_eq!(generated.increase, received(&outcome) as f64);
    let versus = server.versus_client.as_ref().unwrap();
    let tokens = versus.generation_tokens.as_ref().unwrap();
    assert_eq!(tokens.difference, 0.0, "{tokens:?}");

    // The client's TTFT starts before the server's and ends after it.
    let ttft_mean = versus
        .latency
        .iter()
        .find(|p| p.role == "ttft" && p.quantile == "mean")
        .unwrap();
    assert!(ttft_mean.difference_ms >= 0.0, "{ttft_mean:?}");
    assert_eq!(server.histogram(Role::Ttft).unwrap().count, 30.0);

    // Scrape by scrape, as stored: running never above the slots, and
    // running plus waiting never above the clients.
    let lines = read_scrapes(&dir.path().join(SERVER_METRICS_FILE)).unwrap();
    assert!(lines.len() as u64 >= server.scrapes);
    let mut tracker = Tracker::new(1);
    let mut peak = 0.0f64;
    for line in &lines {
        assert_eq!(line.error, None);
        tracker.take(line);
        let point = tracker.point(line.t_us);
        let running = point.gauges[&Role::RunningRequests];
        let waiting = point.gauges[&Role::WaitingRequests];
        assert!(running <= SLOTS as f64, "{point:?}");
        assert!(running + waiting <= CLIENTS as f64, "{point:?}");
        peak = peak.max(running);
    }
    assert_eq!(peak, SLOTS as f64);
    // The first line names its source; times are on the run's clock.
    assert!(lines[0].url.as_deref().unwrap().ends_with("/metrics"));
    assert!(lines.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    let last_end = outcome.records.iter().map(|r| r.end_us).max().unwrap();
    assert!(lines.last().unwrap().t_us >= last_end);
}

#[test]
fn each_servers_names_are_recognised() {
    for (style, name) in [
        (MetricsStyle::Sglang, "sglang"),
        (MetricsStyle::Tgi, "tgi"),
        (MetricsStyle::LlamaCpp, "llama.cpp"),
    ] {
        let (outcome, _dir) = run(&bench(script(style), 8));
        let server = digest(&outcome);
        assert_eq!(server.servers, [name]);
        let generated = server.counter(Role::GenerationTokens).unwrap();
        assert_eq!(
            generated.increase,
            received(&outcome) as f64,
            "{name}: {generated:?}"
        );
        let running = server.gauge(Role::RunningRequests).unwrap();
        assert!(running.max <= SLOTS as f64, "{name}: {running:?}");
    }
}

#[test]
fn a_missing_or_foreign_metrics_endpoint_is_a_note_not_a_failure() {
    for (style, why) in [
        (MetricsStyle::Off, "HTTP 404"),
        (MetricsStyle::NotPrometheus, "HTML"),
    ] {
        let (outcome, dir) = run(&bench(script(style), 6));
        let level = &outcome.summary.levels[0];
        assert_eq!(level.summary.requests.failed, 0);
        assert_eq!(level.server, None);
        let note = level
            .notes
            .iter()
            .find(|n| n.starts_with("no server metrics at http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("{:?}", level.notes));
        assert!(note.contains(why), "{note}");
        // One attempt, recorded, then no more.
        let lines = read_scrapes(&dir.path().join(SERVER_METRICS_FILE)).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].error.as_deref().unwrap().contains(why));
    }
}

#[test]
fn turned_off_nothing_is_scraped() {
    let bench = bench(script(MetricsStyle::Vllm), 4).server_metrics(ServerMetrics::off());
    let (outcome, dir) = run(&bench);
    assert_eq!(outcome.summary.levels[0].server, None);
    assert!(!dir.path().join(SERVER_METRICS_FILE).exists());
    let recorded = outcome.summary.config.server_metrics.as_ref().unwrap();
    assert!(!recorded.enabled);
}

#[test]
fn sources_add_up_and_credentials_stay_out_of_results() {
    // One server named twice, as two replicas: every counter doubles, and
    // the comparison with the client says so rather than hiding it.
    let server = Server::start(script(MetricsStyle::Vllm)).unwrap();
    let root = server.root_url();
    let metrics = format!("{root}/metrics");
    let with_password = metrics.replace("http://", "http://user:hunter2@");
    let bench = bench(script(MetricsStyle::Vllm), 8)
        .endpoint(Endpoint::openai_chat().base_url(format!("{root}/v1")))
        .model("llmperf-builtin")
        .server_metrics(
            ServerMetrics::default()
                .url(&metrics)
                .url(&with_password)
                .interval(Duration::from_millis(50)),
        );
    let (outcome, dir) = run(&bench);
    let digest = digest(&outcome);
    assert_eq!(digest.sources.len(), 2);
    let client = received(&outcome) as f64;
    let generated = digest.counter(Role::GenerationTokens).unwrap();
    assert_eq!(generated.increase, 2.0 * client);
    let tokens = digest
        .versus_client
        .as_ref()
        .unwrap()
        .generation_tokens
        .as_ref()
        .unwrap();
    assert_eq!(tokens.difference, client);
    for file in ["summary.json", SERVER_METRICS_FILE] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!text.contains("hunter2"), "{file} holds the password");
    }
}

/// A vLLM-style exposition with the given generated-token total.
fn exposition(tokens: u64) -> String {
    format!(
        "# TYPE vllm:generation_tokens_total counter\n\
         vllm:generation_tokens_total{{model_name=\"m\"}} {tokens}.0\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"m\"}} 1.0\n"
    )
}

#[test]
fn a_restarted_server_counts_from_zero_and_a_hanging_one_is_given_up() {
    // The first source restarts after its second scrape (its counter falls
    // from 1000 to 30; the level's window opens at its first or second
    // scrape): the digest counts 30, not -970. The second never
    // answers, and is given up after one scrape's timeout.
    let scrapes = std::sync::atomic::AtomicU64::new(0);
    let (restarting, _thread) = raw_server::spawn(usize::MAX, move |mut socket| {
        while raw_server::read_request(&mut socket).is_some() {
            let n = scrapes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = exposition(if n < 2 { 1000 } else { 30 });
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if socket.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    });
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_url = format!("http://{}/metrics", hanging.local_addr().unwrap());
    let bench = bench(script(MetricsStyle::Off), 4).server_metrics(
        ServerMetrics::default()
            .url(restarting.replace("/v1", "/metrics"))
            .url(&hanging_url)
            .interval(Duration::from_millis(50)),
    );
    let (outcome, _dir) = run(&bench);
    let level = &outcome.summary.levels[0];
    let digest = digest(&outcome);
    assert_eq!(
        digest.counter(Role::GenerationTokens).unwrap().increase,
        30.0
    );
    assert!(
        level
            .notes
            .iter()
            .any(|n| n.contains(&hanging_url) && n.contains("no answer within 2s")),
        "{:?}",
        level.notes
    );
    drop(hanging);
}

#[test]
fn a_reasoning_models_first_token_is_its_first_reasoning_token_on_both_sides() {
    // vLLM counts reasoning tokens as output: its TTFT ends at the first
    // reasoning token, and the client's figure beside it must too (its
    // TTFT proper ends 8 reasoning tokens, 32 ms, later).
    let (outcome, _dir) = run(&bench(script(MetricsStyle::Vllm).reasoning_tokens(8), 8));
    let versus = digest(&outcome).versus_client.clone().unwrap();
    assert!(versus.client_ttft_is_first_reasoning);
    let mean = versus
        .latency
        .iter()
        .find(|p| p.role == "ttft" && p.quantile == "mean")
        .unwrap();
    assert!(
        (0.0..20.0).contains(&mean.difference_ms),
        "{mean:?}: the client's first reasoning token against the server's first token"
    );
}
