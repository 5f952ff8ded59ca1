//! The HTML report's server figures, as a reader gets them (beside
//! `html_report.rs`): stored results with a `server_metrics.jsonl` written
//! as a run writes it — two vLLM replicas scraped every 250 ms, numbered and
//! digested by the run's own code — rendered by `llmperf report` and read
//! back by the strict HTML/SVG reader; one without the file, one whose file
//! is corrupt in its middle.

use std::path::{Path, PathBuf};
use std::process::Command;

use llmperf::baseline::synthetic::Synthetic;
use llmperf::metrics::server::{Exposition, ServerDigest, Tracker, Window};
use llmperf::record::RequestRecord;
use llmperf::report::html::{render_page, HtmlOptions, ServerTimeline, StoredResult};
use llmperf::results::{
    write_summary, RecordWriter, ScrapeLine, ScrapeWriter, SummaryFile, SERVER_METRICS_FILE,
};

mod markup;

use markup::Element;

/// The scrape interval of the stored runs.
const SCRAPE_US: u64 = 250_000;
/// The replicas scraped.
const SOURCES: [&str; 2] = [
    "http://10.0.0.1:8000/metrics",
    "http://10.0.0.2:8000/metrics",
];
/// The second replica's scrape that fails.
const FAILED_ROUND: u64 = 6;

/// Replica `source`'s metrics at round `round`. Summed over both: running
/// peaks at 10 (round 5), waiting at 6 (round 7), KV-cache usage at 80%
/// (round 9); 150 tokens are generated a round (600 tokens/s); each round
/// adds TTFTs of which a quarter are ≤ 80 ms, three quarters ≤ 100 ms and
/// all ≤ 200 ms (so p50 ≈ 90 ms in 80–100 ms, p99 ≈ 196 ms in 100–200 ms).
fn vllm_metrics(source: usize, round: u64) -> String {
    let r = round as f64;
    let (running, waiting, kv, tokens) = match source {
        0 => (
            (round % 4) as f64,
            0.0,
            if round == 9 { 0.9 } else { 0.5 },
            1000.0 + 100.0 * r,
        ),
        _ => (
            if round == 5 { 9.0 } else { 2.0 },
            if round == 7 { 6.0 } else { 1.0 },
            if round == 9 { 0.7 } else { 0.3 },
            5000.0 + 50.0 * r,
        ),
    };
    let ttft = "vllm:time_to_first_token_seconds";
    format!(
        "# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"m\"}} {running}\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{model_name=\"m\"}} {waiting}\n\
         # TYPE vllm:kv_cache_usage_perc gauge\n\
         vllm:kv_cache_usage_perc{{model_name=\"m\"}} {kv}\n\
         # TYPE vllm:generation_tokens counter\n\
         vllm:generation_tokens_total{{model_name=\"m\"}} {tokens}\n\
         # TYPE {ttft} histogram\n\
         {ttft}_bucket{{le=\"0.08\",model_name=\"m\"}} {}\n\
         {ttft}_bucket{{le=\"0.1\",model_name=\"m\"}} {}\n\
         {ttft}_bucket{{le=\"0.2\",model_name=\"m\"}} {}\n\
         {ttft}_bucket{{le=\"+Inf\",model_name=\"m\"}} {}\n\
         {ttft}_sum{{model_name=\"m\"}} {}\n\
         {ttft}_count{{model_name=\"m\"}} {}\n",
        r,
        3.0 * r,
        4.0 * r,
        4.0 * r,
        0.4 * r,
        4.0 * r,
    )
}

/// Scrapes both replicas every `interval_us` from the level's first send to
/// past its end, writing `server_metrics.jsonl` into `dir` and digesting
/// the level as the run's scraper does: its digest, and the rounds.
fn write_scrapes(dir: &Path, interval_us: u64, end_us: u64) -> (ServerDigest, u64) {
    let mut writer = ScrapeWriter::create(dir).unwrap();
    let mut tracker = Tracker::new(SOURCES.len());
    let mut window = Window::default();
    let rounds = end_us / interval_us + 2;
    for round in 0..rounds {
        let t_us = round * interval_us;
        let mut failed = 0;
        for (source, url) in SOURCES.iter().enumerate() {
            let mut line = ScrapeLine {
                round,
                source: source as u32,
                t_us,
                level: Some(0),
                url: (round == 0).then(|| url.to_string()),
                duration_ms: Some(1.0),
                new: Vec::new(),
                values: Vec::new(),
                error: None,
            };
            if source == 1 && round == FAILED_ROUND {
                tracker.failed(source);
                failed += 1;
                line.error = Some("no answer within 2s".to_string());
            } else {
                let exposition = Exposition::parse(&vllm_metrics(source, round));
                let (values, new) = tracker.number(source, &exposition);
                tracker.observe(source, &values);
                line.new = new;
                line.values = values;
            }
            writer.write(&line).unwrap();
        }
        window.add(tracker.point(t_us), failed);
    }
    let sources: Vec<String> = SOURCES.iter().map(|s| s.to_string()).collect();
    (window.digest(&sources).expect("scrapes answered"), rounds)
}

/// A stored one-level result: 40 synthetic requests (6 tokens each, one
/// after another), with the server's scrapes every `interval_us` when
/// given. Returns the directory and the number of scrape rounds.
fn store(root: &Path, id: &str, interval_us: Option<u64>) -> (PathBuf, u64) {
    let dir = root.join(id).join("new");
    let synthetic = Synthetic::new(40, 100.0, 3);
    let records = synthetic.records();
    let mut writer = RecordWriter::create(&dir).unwrap();
    for record in &records {
        writer.write(record).unwrap();
    }
    let mut result: SummaryFile = synthetic.baseline("x").result;
    result.benchmark = id.to_string();
    let mut rounds = 0;
    if let Some(interval_us) = interval_us {
        let end_us = records.iter().map(|r| r.end_us).max().unwrap();
        let (mut digest, n) = write_scrapes(&dir, interval_us, end_us);
        let received: u64 = records
            .iter()
            .map(|r: &RequestRecord| u64::from(r.output_tokens()))
            .sum();
        digest.compare_with(&result.levels[0].summary, received);
        result.levels[0].server = Some(digest);
        rounds = n;
    }
    write_summary(&dir, &result).unwrap();
    (dir, rounds)
}

/// `llmperf report <results> --out <out>`, which must succeed: its stderr.
fn report(results: &Path, out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_llmperf"))
        .arg("report")
        .arg(results)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "llmperf report failed: {stderr}");
    stderr
}

fn read_page(path: &Path) -> Element {
    let html = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    markup::parse(&html).unwrap_or_else(|e| panic!("{} is not well-formed: {e}", path.display()))
}

fn captions(page: &Element) -> Vec<String> {
    page.find_all("figcaption")
        .into_iter()
        .map(|c| c.text())
        .collect()
}

/// The chart whose caption starts with `title`.
fn figure<'a>(page: &'a Element, title: &str) -> &'a Element {
    page.find_all("figure")
        .into_iter()
        .find(|f| {
            f.children_named("figcaption")
                .first()
                .is_some_and(|c| c.text().starts_with(title))
        })
        .unwrap_or_else(|| panic!("no chart {title:?}: {:?}", captions(page)))
}

/// The cells of the row of `table` (by class) whose first cell is `first`.
fn row(page: &Element, class: &str, first: &str) -> Vec<String> {
    let table = page
        .find_all("table")
        .into_iter()
        .find(|t| t.attr("class") == Some(class))
        .unwrap_or_else(|| panic!("no {class} table"));
    let row = table
        .find_all("tr")
        .into_iter()
        .find(|tr| {
            tr.children_named("td")
                .first()
                .is_some_and(|td| td.text() == first)
        })
        .unwrap_or_else(|| panic!("no {first:?} row in the {class} table"));
    row.children_named("td")
        .iter()
        .map(|td| td.text())
        .collect()
}

fn svg_texts(figure: &Element) -> Vec<String> {
    figure
        .find_all("text")
        .into_iter()
        .map(|t| t.text().trim().to_string())
        .collect()
}

#[test]
fn a_result_with_server_metrics_shows_the_server_beside_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (stored, rounds) = store(&results, "chat/server", Some(SCRAPE_US));
    store(&results, "chat/plain", None);
    let out = dir.path().join("report");
    report(&results, &out);

    // The rounds as the report reads them back.
    let timeline = ServerTimeline::read(&stored.join(SERVER_METRICS_FILE)).unwrap();
    assert_eq!(timeline.rounds.len() as u64, rounds);
    let peak = timeline
        .rounds
        .iter()
        .filter_map(|r| r.running)
        .fold(0.0, f64::max);
    assert_eq!(peak, 10.0);
    let failed = &timeline.rounds[FAILED_ROUND as usize];
    assert_eq!(
        failed.up, 1,
        "the second replica missed round {FAILED_ROUND}"
    );
    assert_eq!(
        failed.running,
        Some((FAILED_ROUND % 4) as f64),
        "the first's alone"
    );

    let page = read_page(&out.join("chat__server.html"));
    // Distributions (3), scatters (2), in flight, KV cache, tokens/s, requests.
    assert_eq!(page.find_all("svg").len(), 9, "{:?}", captions(&page));
    let flight = svg_texts(figure(&page, "Requests in flight: client and server"));
    for series in ["client in flight", "server running", "server waiting"] {
        assert!(flight.contains(&series.to_string()), "{series}: {flight:?}");
    }
    // The peak running (10) sets the top of the requests axis.
    assert!(flight.contains(&"10".to_string()), "{flight:?}");
    let kv = svg_texts(figure(&page, "KV-cache usage"));
    assert!(
        kv.contains(&"percent".to_string()) && kv.contains(&"80".to_string()),
        "{kv:?}"
    );
    let tokens = svg_texts(figure(&page, "Output tokens per second"));
    assert!(
        tokens.contains(&"server generated tokens/s".to_string()),
        "{tokens:?}"
    );
    assert!(
        tokens.iter().any(|t| t.starts_with("tokens/s (")),
        "the client's: {tokens:?}"
    );

    // The digest's table: the metric read and the figures.
    let running = row(&page, "server", "running requests");
    assert_eq!(running[1], "vllm:num_requests_running");
    assert_eq!(running[3], "10", "the peak: 1 + 9 at round 5");
    assert_eq!(row(&page, "server", "waiting requests")[3], "6");
    assert_eq!(row(&page, "server", "KV-cache usage")[3], "80.0%");
    let generated = row(&page, "server", "generated tokens");
    assert_eq!(generated[1], "vllm:generation_tokens");
    assert_eq!(generated[2], (150 * (rounds - 1)).to_string());
    assert_eq!(generated[3], "600.0/s");
    let observed = 4 * 2 * (rounds - 1);
    let ttft = row(&page, "server", &format!("TTFT ({observed} observed)"));
    assert_eq!(ttft[2], "≈ 90 ms (80–100 ms)");
    assert_eq!(ttft[4], "≈ 196 ms (100–200 ms)");
    let text = page.text();
    assert!(
        text.contains(&format!("vllm · 2 sources scraped · {rounds} scrapes")),
        "{text}"
    );
    assert!(text.contains(" · 1 failed scrape") && !text.contains("failed scrapes"));
    let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("{what}"));
    assert!(
        at("running requests") < at("waiting requests")
            && at("waiting requests") < at("KV-cache usage"),
        "gauges in the summaries' order"
    );

    // Client vs server: the client's p50 less the server's 90 ms estimate.
    let client_p50 = std::fs::read_to_string(stored.join("summary.json")).unwrap();
    let client_p50 = serde_json::from_str::<SummaryFile>(&client_p50)
        .unwrap()
        .summary
        .ttft_ms
        .unwrap()
        .p50;
    let versus = row(&page, "versus", "TTFT p50");
    assert_eq!(versus[2], "≈ 90 ms");
    assert_eq!(versus[3], "80–100 ms");
    assert_eq!(versus[4], format!("{:+.1} ms", client_p50 - 90.0));
    let tokens = row(
        &page,
        "versus",
        "output tokens (received by the client / generated by the server)",
    );
    assert_eq!(tokens[1], (40 * 6).to_string());
    assert_eq!(tokens[2], (150 * (rounds - 1)).to_string());
    assert!(text.contains("what the network, any gateway or proxy"));

    // A result from before server metrics renders as it did.
    let plain = read_page(&out.join("chat__plain.html"));
    assert_eq!(plain.find_all("svg").len(), 8, "{:?}", captions(&plain));
    figure(&plain, "Requests in flight");
    let plain_text = plain.text();
    for absent in [
        "Server metrics",
        "Client vs server",
        "server running",
        "KV-cache",
    ] {
        assert!(!plain_text.contains(absent), "{absent}");
    }
}

#[test]
fn a_corrupt_server_metrics_file_is_said_on_its_page_and_the_rest_renders() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (stored, _) = store(&results, "chat/server", Some(SCRAPE_US));
    let path = stored.join(SERVER_METRICS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = "{\"round\": 2, \"source\": oops";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("report");
    let stderr = report(&results, &out);
    assert!(stderr.contains("server metrics left out"), "{stderr}");

    let page = read_page(&out.join("chat__server.html"));
    let text = page.text();
    assert!(
        text.contains("The server metrics beside this result are unreadable"),
        "{text}"
    );
    assert!(text.contains("line 5"), "names the line: {text}");
    // The charts are the client's alone; the digest (summary.json) stays.
    assert_eq!(page.find_all("svg").len(), 8, "{:?}", captions(&page));
    figure(&page, "Requests in flight");
    assert!(!text.contains("server running"));
    assert_eq!(row(&page, "server", "running requests")[3], "10");
}

#[test]
fn a_long_runs_server_series_keep_the_page_bounded() {
    // 6,000 and 24,000 rounds over the same few seconds: past a few per
    // pixel column, more rounds draw no more points.
    let dir = tempfile::tempdir().unwrap();
    let size = |id: &str, interval_us: u64| {
        let (stored, rounds) = store(dir.path(), id, Some(interval_us));
        let result = StoredResult::read(&stored).unwrap();
        assert_eq!(result.server.as_ref().unwrap().rounds.len() as u64, rounds);
        (
            render_page(&result, &HtmlOptions::default()).unwrap().len(),
            rounds,
        )
    };
    let (plain, _) = {
        let (stored, _) = store(dir.path(), "chat/plain", None);
        let result = StoredResult::read(&stored).unwrap();
        (
            render_page(&result, &HtmlOptions::default()).unwrap().len(),
            0,
        )
    };
    let (dense, dense_rounds) = size("chat/dense", 1_000);
    let (denser, denser_rounds) = size("chat/denser", 250);
    assert!(
        denser_rounds >= 4 * dense_rounds - 8,
        "{dense_rounds} {denser_rounds}"
    );
    let (added, more) = (dense - plain, denser as f64 / dense as f64);
    assert!(more < 1.1, "{dense} bytes, then {denser} bytes");
    assert!(added < 600 << 10, "the server's series added {added} bytes");
}
