//! The HTML report as a reader gets it: real runs written to disk, rendered
//! by `llmperf report`, then read back by a strict HTML/SVG reader (figures
//! equal to the summary's, charts present, endpoint text escaped) and loaded
//! by headless Chromium from disk (no console message, nothing fetched), with
//! a screenshot left in `target/llmperf-screenshots/` for review.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Workload};

mod fault_matrix;
mod markup;
mod raw_server;

use fault_matrix::fast_script;
use markup::Element;

/// The benchmark id the runs are stored under, and its page's file name.
const ID: &str = "chat/faults";
const PAGE: &str = "chat__faults.html";

/// Text an endpoint could send that must never become markup.
const HOSTILE: &str = "<script>alert(1)</script> <img src=x onerror=alert(2)>";

fn llmperf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llmperf"));
    for var in ["OPENAI_API_BASE", "OPENAI_API_KEY", "LLMPERF_MODEL"] {
        command.env_remove(var);
    }
    command
}

/// Runs `bench` as benchmark [`ID`], storing it as `<root>/<id>/new/`.
fn run_into(root: &Path, bench: &Benchmark) -> RunOutcome {
    let options = RunOptions {
        results_dir: Some(root.join(ID).join("new")),
        mode: llmperf::results::RunMode::Test,
        ..RunOptions::default()
    };
    run_benchmark(ID, bench, &options).expect("the run itself must succeed")
}

/// 12 validated requests against the built-in endpoint: a cross-over on
/// its 4th, 8th and 12th request and a 500 on its 5th and 10th.
fn run_with_faults(root: &Path) -> RunOutcome {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::validation_only())
        .load(Load::closed(2).requests(12))
        .validate(true)
        .builtin_script(
            fast_script()
                .fault(Fault::CrossOver, FaultSchedule::Every(4))
                .fault(Fault::Status(500), FaultSchedule::Every(5)),
        );
    let outcome = run_into(root, &bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.failed, 2, "{:?}", summary.requests);
    assert_eq!(summary.validation.as_ref().map(|v| v.cross_overs), Some(3));
    outcome
}

/// `llmperf report <results> --out <out> <extra…>`, which must succeed.
fn report(results: &Path, out: &Path, extra: &[&str]) {
    let output = report_output(results, out, extra);
    assert!(
        output.status.success(),
        "llmperf report failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn report_output(results: &Path, out: &Path, extra: &[&str]) -> Output {
    llmperf()
        .arg("report")
        .arg(results)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Reads and parses a generated page; malformed markup fails the test.
fn read_page(path: &Path) -> (String, Element) {
    let html = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc = markup::parse(&html)
        .unwrap_or_else(|e| panic!("{} is not well-formed: {e}", path.display()));
    (html, doc)
}

/// The `data-ms` of the p50 cell in the summary table's row `metric`.
fn p50_cell_ms(doc: &Element, metric: &str) -> f64 {
    let table = doc
        .find_all("table")
        .into_iter()
        .find(|t| t.attr("class") == Some("summary"))
        .expect("a summary table");
    let row = table
        .find_all("tr")
        .into_iter()
        .find(|tr| {
            tr.children_named("td")
                .first()
                .is_some_and(|td| td.text() == metric)
        })
        .unwrap_or_else(|| panic!("no {metric} row"));
    let cells = row.children_named("td");
    let ms = cells[2].attr("data-ms").expect("the p50 cell's data-ms");
    ms.parse()
        .unwrap_or_else(|e| panic!("data-ms {ms:?} is not a number: {e}"))
}

/// Every `src`/`href` in the page that would fetch from the network, or any
/// attribute naming an event handler.
fn remote_references(doc: &Element) -> Vec<String> {
    let mut found = Vec::new();
    for element in doc.descendants() {
        for (name, value) in &element.attrs {
            let remote = ["http:", "https:", "//"]
                .iter()
                .any(|p| value.trim_start().to_ascii_lowercase().starts_with(p));
            if matches!(name.as_str(), "src" | "href" | "xlink:href") && remote {
                found.push(format!("<{} {name}={value:?}>", element.name));
            }
            if name.starts_with("on") {
                found.push(format!("<{} {name}>", element.name));
            }
        }
    }
    found
}

#[test]
fn the_index_links_each_benchmark_and_its_page_shows_the_summarys_figures_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let outcome = run_with_faults(&results);
    let out = dir.path().join("report");
    report(&results, &out, &[]);

    let (_, index) = read_page(&out.join("index.html"));
    let rows = index.by_id("benchmarks").expect("the table").find_all("tr");
    assert_eq!(rows.len(), 2, "a header and one benchmark");
    let link = &rows[1].find_all("a")[0];
    assert_eq!(link.attr("href"), Some(PAGE));
    assert_eq!(link.text(), ID);
    assert!(out.join(PAGE).is_file());

    let (html, page) = read_page(&out.join(PAGE));
    let summary = &outcome.summary.summary;
    let stored = llmperf::results::read_summary(&results.join(ID).join("new/summary.json"))
        .unwrap()
        .summary;
    let ttft_p50 = summary.ttft_ms.as_ref().expect("ttft").p50;
    assert_eq!(stored.ttft_ms.as_ref().unwrap().p50, ttft_p50);
    assert_eq!(p50_cell_ms(&page, "TTFT"), ttft_p50, "exact, not rounded");
    assert_eq!(
        p50_cell_ms(&page, "E2E"),
        summary.e2e_ms.as_ref().unwrap().p50
    );
    // The index's headline TTFT p50 is the page's, as people read it.
    let ttft_row = page
        .find_all("tr")
        .into_iter()
        .find(|tr| {
            tr.children_named("td")
                .first()
                .is_some_and(|td| td.text() == "TTFT")
        })
        .unwrap();
    let shown = ttft_row.children_named("td")[2].text();
    assert_eq!(rows[1].children_named("td")[5].text(), shown);

    // One level of at most 200 requests: TTFT, ITL and TPOT distributions,
    // two scatters, in flight (client and the built-in endpoint's running
    // and waiting, from its /metrics), its KV-cache usage, tokens/s (client
    // and server) and the request timeline.
    let figures = page.find_all("figure");
    let svgs = page.find_all("svg");
    assert_eq!(
        svgs.len(),
        9,
        "{:?}",
        figures.iter().map(|f| f.text()).collect::<Vec<_>>()
    );
    for figure in &figures {
        let svg = figure.children_named("svg");
        assert_eq!(
            svg.len(),
            1,
            "a figure without its chart: {}",
            figure.text()
        );
        assert!(svg[0].attr("viewBox").is_some() || svg[0].attr("width").is_some());
        assert!(
            svg[0].descendants().len() > 10,
            "an empty chart: {}",
            figure.text()
        );
    }

    // The faults are listed: three cross-overs, both 500s.
    let validation = page
        .find_all("table")
        .into_iter()
        .find(|t| t.attr("class") == Some("validation"))
        .expect("the validation issues");
    let cross_overs = validation
        .find_all("tr")
        .into_iter()
        .filter(|tr| {
            tr.children_named("td")
                .first()
                .is_some_and(|td| td.text() == "cross-over")
        })
        .count();
    assert_eq!(cross_overs, 3);
    assert!(page.text().contains("server_error"), "errors by kind");
    assert!(page.text().contains("Connections:"), "connections line");
    assert!(page.text().contains("HTTP 500"));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert_eq!(remote_references(&page), Vec::<String>::new());
    assert_eq!(remote_references(&index), Vec::<String>::new());
}

#[test]
fn noplot_renders_the_figures_without_charts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let outcome = run_with_faults(&results);
    let out = dir.path().join("report");
    report(&results, &out, &["--noplot"]);
    let (_, page) = read_page(&out.join(PAGE));
    assert_eq!(page.find_all("svg").len(), 0);
    assert_eq!(page.find_all("figure").len(), 0);
    assert!(page.text().contains("Charts skipped (--noplot)."));
    let ttft_p50 = outcome.summary.summary.ttft_ms.unwrap().p50;
    assert_eq!(p50_cell_ms(&page, "TTFT"), ttft_p50);
}

/// Serves OpenAI chat streams on loopback, one connection per request
/// (`connection: close`): the 2nd request gets a 500 whose message is
/// [`HOSTILE`], every other one a stream answering [`HOSTILE`].
fn hostile_endpoint() -> String {
    let mut served = 0;
    let (url, _thread) = raw_server::spawn(usize::MAX, move |mut socket| {
        let _ = raw_server::read_request(&mut socket);
        served += 1;
        let response = if served == 2 {
            let body = serde_json::json!({"error": {"message": HOSTILE, "type": "server_error"}})
                .to_string();
            format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            raw_server::sse_response(&[
                serde_json::json!({"choices": [{"index": 0, "delta": {"content": HOSTILE}}]}),
                serde_json::json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 1}}),
            ])
        };
        let _ = socket.write_all(response.as_bytes());
    });
    url
}

#[test]
fn a_hostile_answer_and_error_message_show_as_text() {
    let url = hostile_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::openai_chat()
                .base_url(url.as_str())
                .model("hostile"),
        )
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(4).timeout(Duration::from_secs(10)))
        .validate(true);
    let outcome = run_into(&results, &bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.failed, 1, "{:?}", summary.requests);
    assert_eq!(summary.validation.as_ref().map(|v| v.mismatches), Some(3));
    let out = dir.path().join("report");
    report(&results, &out, &[]);

    let (html, page) = read_page(&out.join(PAGE));
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "a raw <script"
    );
    assert!(!html.to_ascii_lowercase().contains("<img"), "a raw <img");
    assert!(html.contains("&lt;script&gt;alert(1)"), "escaped");
    assert!(
        html.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "escaped"
    );
    assert_eq!(
        page.find_all("script").len() + page.find_all("img").len(),
        0
    );
    assert_eq!(remote_references(&page), Vec::<String>::new());
    // Read as text, the excerpts and the failure message are the answer itself.
    let excerpts: Vec<String> = page
        .find_all("td")
        .into_iter()
        .filter(|td| td.attr("class") == Some("excerpt"))
        .map(|td| td.text())
        .collect();
    assert_eq!(
        excerpts.iter().filter(|e| e.as_str() == HOSTILE).count(),
        3,
        "the three mismatches' excerpts: {excerpts:?}"
    );
    assert!(
        excerpts.iter().any(|e| e != HOSTILE && e.contains(HOSTILE)),
        "the 500's message: {excerpts:?}"
    );
}

#[test]
fn a_templates_directory_replaces_the_index_and_a_broken_template_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    run_with_faults(&results);
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("index.html"),
        r#"{% extends "base.html" %}{% block content %}<p id="custom">{{ benchmarks | length }} custom row(s): {% for b in benchmarks %}<a href="{{ b.page }}">{{ b.benchmark }}</a>{% endfor %}</p>{% endblock content %}"#,
    )
    .unwrap();
    let out = dir.path().join("report");
    report(
        &results,
        &out,
        &["--templates", templates.to_str().unwrap()],
    );
    let (_, index) = read_page(&out.join("index.html"));
    let custom = index.by_id("custom").expect("the custom index");
    assert!(
        custom.text().starts_with("1 custom row(s): "),
        "{}",
        custom.text()
    );
    assert_eq!(custom.find_all("a")[0].attr("href"), Some(PAGE));
    // The other templates are still the compiled-in ones.
    let (_, page) = read_page(&out.join(PAGE));
    assert!(page.by_id("run").is_some());

    std::fs::write(
        templates.join("index.html"),
        "{% extends \"base.html\" %}{% block content %}{% for b in benchmarks %}{{ b.page }}{% endblock content %}",
    )
    .unwrap();
    let broken_out = dir.path().join("broken");
    let output = report_output(
        &results,
        &broken_out,
        &["--templates", templates.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("template"), "{stderr}");
    assert!(stderr.contains("'index.html'"), "names the file: {stderr}");
    assert!(!broken_out.join("index.html").exists());
}

// --- The browser check -------------------------------------------------

/// How long Chromium may take to load one page before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Debian's `chromium`, or a skip note (a failure under
/// `LLMPERF_REQUIRE_BROWSER=1`, as in CI).
fn chromium_or_skip() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::iter::once(PathBuf::from("/usr/bin/chromium"))
        .chain(std::env::split_paths(&path).map(|d| d.join("chromium")))
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var("LLMPERF_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "LLMPERF_REQUIRE_BROWSER=1 but chromium is not installed (neither /usr/bin/chromium nor chromium on PATH): install Debian's chromium package (`apt-get install chromium`; .ci/run does)"
        );
        eprintln!("skipped: the browser check needs headless Chromium (Debian's chromium package); set LLMPERF_REQUIRE_BROWSER=1 to make its absence a failure");
    }
    found
}

/// What Chromium did loading one page.
#[derive(Debug)]
struct BrowserLoad {
    /// The DOM after loading (`--dump-dom`).
    dom: String,
    /// Console messages (`INFO:CONSOLE…] "message", source: url (line)`).
    console: Vec<String>,
    /// `file://` URLs read, the page included.
    files: Vec<String>,
    /// Network requests the page started (from the net log; the browser's
    /// own background requests carry no initiator and are left out).
    page_requests: Vec<String>,
}

/// Loads `page` from disk in headless Chromium, optionally taking a
/// screenshot, and reports what it logged.
fn load_in_chromium(chromium: &Path, page: &Path, screenshot: Option<&Path>) -> BrowserLoad {
    let work = tempfile::tempdir().unwrap();
    let net_log = work.path().join("net-log.json");
    let stdout_path = work.path().join("stdout");
    let stderr_path = work.path().join("stderr");
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            // Logs each file:// load (FileURLLoader::Start: <url>).
            "--vmodule=file_url_loader_factory=1",
            "--window-size=1280,2000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.path().join("profile").display()
        ))
        .arg(format!("--log-net-log={}", net_log.display()))
        .args(screenshot.map(|p| format!("--screenshot={}", p.display())))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    // Its own process group, so a hung browser is killed with its children.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().expect("chromium starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish loading {url} in {BROWSER_TIMEOUT:?}; its log:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        status.success(),
        "chromium failed ({status}) on {url}:\n{log}"
    );
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(|l| l.split_once("] ").map_or(l, |(_, m)| m).to_string())
        .collect();
    let files = log
        .lines()
        .filter_map(|l| l.split_once("FileURLLoader::Start: "))
        .map(|(_, url)| url.trim().to_string())
        .collect();
    BrowserLoad {
        dom: std::fs::read_to_string(&stdout_path).unwrap(),
        console,
        files,
        page_requests: page_requests(&net_log),
    }
}

/// The URLs of requests a page started, from Chromium's net log: those with
/// an initiator origin (a file:// page's is `null`), unlike the browser's
/// own (`not an origin`).
fn page_requests(net_log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(net_log)
        .unwrap_or_else(|e| panic!("chromium wrote no net log at {}: {e}", net_log.display()));
    let log: serde_json::Value = serde_json::from_str(&text).expect("the net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("the net log names URL_REQUEST_START_JOB");
    log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter_map(|e| {
            let params = &e["params"];
            let initiator = params["initiator"].as_str()?;
            (initiator != "not an origin")
                .then(|| params["url"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

/// Where screenshots are left for review: `target/llmperf-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp");
    let dir = target.join("llmperf-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_loads_in_headless_chromium_with_no_console_message_and_no_fetch() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    run_with_faults(&results);
    let out = dir.path().join("report");
    report(&results, &out, &[]);

    let index = load_in_chromium(&chromium, &out.join("index.html"), None);
    let screenshot = screenshot_dir().join("chat__faults.png");
    let _ = std::fs::remove_file(&screenshot);
    let page = load_in_chromium(&chromium, &out.join(PAGE), Some(&screenshot));
    for (name, load) in [("index.html", &index), (PAGE, &page)] {
        assert_eq!(
            load.console,
            Vec::<String>::new(),
            "{name}: console messages"
        );
        assert_eq!(
            load.page_requests,
            Vec::<String>::new(),
            "{name}: network requests"
        );
        assert_eq!(
            load.files.len(),
            1,
            "{name} loads nothing but itself: {:?}",
            load.files
        );
        assert!(load.files[0].ends_with(name), "{:?}", load.files);
    }
    assert!(
        index.dom.contains(&format!("href=\"{PAGE}\"")),
        "the index rendered"
    );
    assert!(
        page.dom.contains("<svg"),
        "the page rendered with its charts"
    );
    assert!(page.dom.contains("cross-over"));

    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1280, 2000), "the window's size");
    // A blank 1280×2000 PNG compresses to a few kB; the page with its
    // tables and charts is well over 50 kB.
    assert!(
        png.len() > 50_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", screenshot.display());
}

#[test]
fn the_browser_check_sees_console_messages_fetches_and_missing_files() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    // A closed port: the request is started (and logged) and fails at once.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        format!(
            r#"<!DOCTYPE html><html><body><p>bad</p><img src="missing.png"><img src="http://127.0.0.1:{port}/x.png"><script>console.error("boom"); undefinedFunction();</script></body></html>"#
        ),
    )
    .unwrap();
    let load = load_in_chromium(&chromium, &page, None);
    assert!(
        load.console.iter().any(|m| m.starts_with("\"boom\"")),
        "{:?}",
        load.console
    );
    assert!(
        load.console
            .iter()
            .any(|m| m.contains("undefinedFunction is not defined")),
        "{:?}",
        load.console
    );
    assert_eq!(
        load.page_requests,
        [format!("http://127.0.0.1:{port}/x.png")]
    );
    assert!(
        load.files.iter().any(|f| f.ends_with("/missing.png")),
        "{:?}",
        load.files
    );
}
