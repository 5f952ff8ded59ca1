//! Load flags shared by `llmperf run`: how many requests, at what
//! concurrency or rate, for how long, and when to stop.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::registry::AUTO_SWEEP_MAX_CONCURRENCY;
use crate::spec::{Arrival, Load, Slo, SpecError, Warmup};

/// `--arrival` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalArg {
    /// Exponential gaps (independent users).
    Poisson,
    /// Equal gaps.
    Constant,
    /// Gamma gaps with shape --burstiness.
    Gamma,
}

/// `--rate` values: one rate, a list (a sweep), or `auto`.
#[derive(Debug, Clone, PartialEq)]
pub enum RateArg {
    /// Rates in requests per second.
    Rates(Vec<f64>),
    /// The automatic sweep.
    Auto,
}

fn parse_rate(text: &str) -> Result<RateArg, String> {
    if text.trim() == "auto" {
        return Ok(RateArg::Auto);
    }
    text.split(',')
        .map(|part| {
            part.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or_else(|| {
                    format!("`{part}` is not a positive rate: write requests per second, a list (1,2,4,8) or auto")
                })
        })
        .collect::<Result<Vec<f64>, String>>()
        .map(RateArg::Rates)
}

fn parse_warmup(text: &str) -> Result<Warmup, String> {
    match text.trim().parse::<u64>() {
        Ok(requests) => Ok(Warmup::Requests { requests }),
        Err(_) => humantime::parse_duration(text.trim())
            .map(|duration| Warmup::Duration { duration })
            .map_err(|_| {
                format!("`{text}` is neither a number of requests (10) nor a duration (30s)")
            }),
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.trim().strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (text.trim(), 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .map(|x| x / scale)
        .filter(|x| (0.0..=1.0).contains(x))
        .ok_or_else(|| format!("`{text}` is not a share: write 0.1 or 10%"))
}

/// A duration: `500ms`, `2s`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return std::time::Duration::try_from_secs_f64(seconds)
            .map_err(|e| format!("`{text}`: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 500ms, 2s, 1m"))
}

/// A whole number of 1 or more (a flag's value).
pub(crate) fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of 1 or more")),
    }
}

/// How requests are sent, as flags.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Measured requests per level (default 10; with --duration, a cap: 5,000,000 for a closed loop, what the schedule holds up to 10,000,000 for --rate).
    #[arg(long, short = 'r', value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Requests in flight (closed loop); a list (1,4,16,64) runs a concurrency sweep. Default 1.
    #[arg(long, short = 'c', value_delimiter = ',', value_parser = parse_positive)]
    pub concurrency: Vec<usize>,
    /// Open loop: requests per second on a schedule, whatever the endpoint does; a list (1,2,4,8) runs a rate sweep; `auto` sweeps from the synchronous to the maximum rate.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<RateArg>,
    /// Gaps between open-loop sends.
    #[arg(long, value_enum)]
    pub arrival: Option<ArrivalArg>,
    /// Gamma shape for --arrival gamma (1 = Poisson, <1 burstier, >1 more even); implies gamma.
    #[arg(long)]
    pub burstiness: Option<f64>,
    /// Open loop: most requests in flight; overdue sends wait (counted as queued), never dropped.
    #[arg(long, value_parser = parse_positive)]
    pub max_in_flight: Option<usize>,
    /// Open loop: rise linearly from 0 to the rate over this time.
    #[arg(long, value_parser = parse_duration)]
    pub ramp_up: Option<Duration>,
    /// Open-loop levels of --rate auto.
    #[arg(long, default_value_t = 5, value_parser = parse_positive)]
    pub auto_rates: usize,
    /// Stop sending measured requests after this long, per level (e.g. 60s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Leave out of the statistics the first N requests (10) or those sent in the first DURATION (30s) of each level.
    #[arg(long, value_parser = parse_warmup)]
    pub warmup: Option<Warmup>,
    /// Send N more requests after the measured ones so those end under load; left out of the statistics.
    #[arg(long, default_value_t = 0)]
    pub cooldown: u64,
    /// Stop early (exit 1) after this many failed requests.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_errors: Option<u64>,
    /// Stop early (exit 1) once this share of finished requests failed (0.1 or 10%; from 20 finished on).
    #[arg(long, value_parser = parse_share)]
    pub max_error_rate: Option<f64>,
    /// Service-level objectives, e.g. ttft_p99=2s,tpot_p50=50ms (default: ttft_p95=3s, the overload rule); a sweep's knee is the best level meeting them.
    #[arg(long)]
    pub slo: Option<String>,
    /// Pause per slot after each request (e.g. 500ms, 2s; a bare number is seconds).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub sleep: Duration,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "90s")]
    pub timeout: Duration,
    /// Longest silence allowed inside a stream (default: none).
    #[arg(long, value_parser = parse_duration)]
    pub stall_timeout: Option<Duration>,
    /// Largest event a stream may send (e.g. 1MiB, 512KiB, 4MB; a bare number is bytes): a longer one ends the request as event_too_large.
    #[arg(long, value_parser = parse_size, default_value = "1MiB")]
    pub max_event_size: usize,
}

/// A size in bytes: `1048576`, `512KiB`, `1MiB`, `4MB`, `1KB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size: write e.g. 1MiB, 512KiB or 4MB"
            ))
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&bytes| bytes >= 1024)
        .ok_or_else(|| {
            format!("`{text}` is not a size of at least 1KiB: write e.g. 1MiB, 512KiB or 4MB")
        })
}

impl LoadArgs {
    /// The load these flags describe, or why they cannot work together.
    pub fn load(&self) -> Result<Load, SpecError> {
        let open_only = self.arrival.is_some()
            || self.burstiness.is_some()
            || self.max_in_flight.is_some()
            || self.ramp_up.is_some();
        let mut load = match (&self.rate, &self.concurrency[..]) {
            (None, []) => Load::closed(1),
            (None, [concurrency]) => Load::closed(*concurrency),
            (None, levels) => Load::concurrency_sweep(levels.iter().copied()),
            (Some(RateArg::Auto), []) => Load::auto_sweep(self.auto_rates, AUTO_SWEEP_MAX_CONCURRENCY),
            (Some(RateArg::Auto), [concurrency]) => Load::auto_sweep(self.auto_rates, *concurrency),
            (Some(RateArg::Rates(rates)), []) if rates.len() == 1 => Load::rate(rates[0]),
            (Some(RateArg::Rates(rates)), []) => Load::rate_sweep(rates.iter().copied()),
            (Some(_), _) => {
                return Err(SpecError::new(
                    "--rate and --concurrency choose different loads: cap an open loop with --max-in-flight (with --rate auto, one --concurrency sets the max-throughput level)",
                ))
            }
        };
        if !self.sleep.is_zero() && self.rate.is_some() {
            return Err(SpecError::new(
                "--sleep pauses a closed loop's slots between requests and does nothing to an open loop: drop it, or lower --rate to send less often",
            ));
        }
        if open_only && load.rate.is_none() {
            return Err(SpecError::new(
                "--arrival, --burstiness, --max-in-flight and --ramp-up shape an open loop: add --rate R",
            ));
        }
        let arrival =
            match (self.arrival, self.burstiness) {
                (None | Some(ArrivalArg::Poisson), None) => Arrival::Poisson,
                (Some(ArrivalArg::Constant), None) => Arrival::Constant,
                (None | Some(ArrivalArg::Gamma), Some(burstiness)) => Arrival::Gamma { burstiness },
                (Some(ArrivalArg::Gamma), None) => return Err(SpecError::new(
                    "--arrival gamma needs --burstiness B (1 = Poisson, <1 burstier, >1 more even)",
                )),
                (Some(_), Some(_)) => return Err(SpecError::new(
                    "--burstiness applies to gamma arrivals: drop --arrival or use --arrival gamma",
                )),
            };
        load = load.arrival(arrival);
        if let Some(cap) = self.max_in_flight {
            load = load.max_in_flight(cap);
        }
        if let Some(ramp) = self.ramp_up {
            load = load.ramp_up(ramp);
        }
        if let Some(duration) = self.duration {
            load = load.duration(duration);
        }
        if let Some(requests) = self.requests {
            load = load.requests(requests);
        }
        load.warmup = self.warmup;
        load = load
            .cooldown_requests(self.cooldown)
            .timeout(self.timeout)
            .sleep(self.sleep)
            .max_event_size(self.max_event_size);
        if let Some(errors) = self.max_errors {
            load = load.max_errors(errors);
        }
        if let Some(share) = self.max_error_rate {
            load = load.max_error_rate(share);
        }
        if let Some(stall) = self.stall_timeout {
            load = load.stall_timeout(stall);
        }
        Ok(load)
    }

    /// The objectives given with --slo (empty: the default rule applies).
    pub fn slos(&self) -> Result<Vec<Slo>, SpecError> {
        self.slo.as_deref().map_or(Ok(Vec::new()), Slo::parse_list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Sweep;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn load(args: &[&str]) -> Result<Load, String> {
        let cli = Cli::try_parse_from(std::iter::once("llmperf").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.load.load().map_err(|e| e.to_string())
    }

    #[test]
    fn lists_run_sweeps_and_rates_run_open_loops() {
        let sweep = load(&["-c", "1,4,16,64"]).unwrap();
        assert_eq!(
            sweep.sweep,
            Some(Sweep::Concurrency {
                levels: vec![1, 4, 16, 64]
            })
        );
        let open = load(&[
            "--rate",
            "20",
            "--burstiness",
            "0.5",
            "--max-in-flight",
            "8",
        ])
        .unwrap();
        let rate = open.rate.unwrap();
        assert_eq!(rate.arrival, Arrival::Gamma { burstiness: 0.5 });
        assert_eq!(rate.max_in_flight, Some(8));
        let rates = load(&["--rate", "1,2,4", "--arrival", "constant"]).unwrap();
        assert_eq!(
            rates.sweep,
            Some(Sweep::Rates {
                levels: vec![1.0, 2.0, 4.0]
            })
        );
        let auto = load(&["--rate", "auto", "-c", "32", "--auto-rates", "3"]).unwrap();
        assert_eq!(
            auto.sweep,
            Some(Sweep::Auto {
                rates: 3,
                max_concurrency: 32
            })
        );
    }

    #[test]
    fn durations_warmups_and_stop_conditions_parse() {
        let timed = load(&[
            "--rate",
            "5",
            "--duration",
            "60s",
            "--warmup",
            "10s",
            "--max-error-rate",
            "10%",
        ])
        .unwrap();
        assert_eq!(timed.duration, Some(Duration::from_secs(60)));
        assert_eq!(
            timed.warmup,
            Some(Warmup::Duration {
                duration: Duration::from_secs(10)
            })
        );
        assert_eq!(timed.max_error_rate, Some(0.1));
        assert!(
            timed.requests > 10_000,
            "the schedule decides: {}",
            timed.requests
        );
        let closed = load(&["--duration", "1m", "--warmup", "5", "-r", "300"]).unwrap();
        assert_eq!(closed.requests, 300);
        assert_eq!(closed.warmup, Some(Warmup::Requests { requests: 5 }));
    }

    #[test]
    fn flags_that_do_not_go_together_say_what_to_do() {
        assert!(load(&["--max-in-flight", "4"])
            .unwrap_err()
            .contains("add --rate"));
        assert!(load(&["--rate", "5", "-c", "4"])
            .unwrap_err()
            .contains("--max-in-flight"));
        assert!(load(&["--rate", "5", "--arrival", "gamma"])
            .unwrap_err()
            .contains("--burstiness"));
        assert!(load(&["--rate", "fast"])
            .unwrap_err()
            .contains("positive rate"));
        assert!(load(&["--max-error-rate", "2"])
            .unwrap_err()
            .contains("10%"));
        assert!(load(&["--warmup", "soon"]).unwrap_err().contains("30s"));
        assert!(load(&["--rate", "5", "--sleep", "1s"])
            .unwrap_err()
            .contains("lower --rate"));
        assert!(load(&["--rate", "auto", "--sleep", "1s"]).is_err());
        assert!(load(&["-c", "4", "--sleep", "1s"]).is_ok());
    }

    #[test]
    fn sizes_parse_with_units_and_refuse_tiny_or_unknown_ones() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("4MB"), Ok(4_000_000));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert!(parse_size("12").is_err());
        assert!(parse_size("1 parsec").is_err());
        assert_eq!(
            load(&["--max-event-size", "2MiB"]).unwrap().max_event_bytes,
            2 << 20
        );
    }
}

/// How results are compared with a baseline and reported: flags shared by
/// `cargo bench --` and `llmperf compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Relative changes within ± this are noise, e.g. 0.05 or 5% [default: the benchmark's, else 5%].
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    pub noise_threshold: Option<f64>,
    /// A change is significant below this p-value (Holm-adjusted over a level's metrics) [default: the benchmark's, else 0.05].
    #[arg(long, value_name = "P")]
    pub significance_level: Option<f64>,
    /// Confidence level of the change intervals.
    #[arg(long, value_name = "LEVEL", default_value_t = crate::baseline::compare::DEFAULT_CONFIDENCE_LEVEL)]
    pub confidence_level: f64,
    /// Bootstrap resamples per comparison.
    #[arg(long, value_name = "N", default_value_t = crate::baseline::compare::DEFAULT_NRESAMPLES)]
    pub nresamples: usize,
    /// Exit non-zero when any metric regressed against the baseline (validation cross-overs always fail it).
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Gate only on these metrics (repeatable or comma-separated; `*` matches any run of characters), e.g. ttft_*,server.kv_cache_usage_max [default: the benchmark's, else every client metric; server.* figures are informational unless named].
    #[arg(long, value_name = "METRIC", value_delimiter = ',')]
    pub gate: Vec<String>,
    /// Output: terminal, json (one message per benchmark per line), github-smaller / github-bigger (github-action-benchmark), bencher (Bencher Metric Format).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "terminal")]
    pub output_format: crate::report::export::OutputFormat,
}

impl CompareArgs {
    /// The settings for a benchmark with `policy`: flags first, then the
    /// benchmark's own, then the defaults; out-of-range values are errors.
    pub fn settings(
        &self,
        policy: &crate::spec::RegressionPolicy,
    ) -> Result<crate::baseline::CompareSettings, SpecError> {
        let defaults = crate::baseline::CompareSettings::default();
        let settings = crate::baseline::CompareSettings {
            noise_threshold: self
                .noise_threshold
                .or(policy.noise_threshold)
                .unwrap_or(defaults.noise_threshold),
            significance_level: self
                .significance_level
                .or(policy.significance_level)
                .unwrap_or(defaults.significance_level),
            confidence_level: self.confidence_level,
            nresamples: self.nresamples,
            gate: if self.gate.is_empty() {
                policy.gate.clone()
            } else {
                self.gate.clone()
            },
        };
        settings.check().map_err(SpecError::new)?;
        Ok(settings)
    }

    /// Whether regressions fail the run for a benchmark with `policy`.
    pub fn gate(&self, policy: &crate::spec::RegressionPolicy) -> bool {
        self.fail_on_regression || policy.fail_on_regression
    }
}

/// How requests reach the endpoint, beyond its kind and URL: extra
/// headers and query parameters, a proxy, TLS trust and identity. Shared
/// by `llmperf run` and `cargo bench --` (where they apply to every
/// benchmark's endpoint).
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// An extra header on every request, 'NAME: VALUE' (repeatable), replacing one the kind sets (Authorization included). ${VAR} in the value reads the environment variable VAR when the run starts ($${ for a literal ${), so keys stay out of shell history; results record the value as given, or *** for a name that suggests a secret (authorization, *key*, *token*, *secret*, *auth*, cookie).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// An extra query parameter on every request URL, NAME=VALUE (repeatable), e.g. api-version=2024-10-21, replacing one of the same name; ${VAR} as in --header; results record the name, the value as ***.
    #[arg(long = "query", value_name = "NAME=VALUE")]
    pub query: Vec<String>,
    /// Send every request through this http:// proxy, http://HOST:PORT or http://USER:PASSWORD@HOST:PORT, instead of what HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY say (HTTPS through a CONNECT tunnel); ${VAR} as in --header. Never used for the built-in endpoint.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
}

impl ConnectArgs {
    /// `endpoint` with these settings added (a header or query parameter
    /// of the same name replaces the endpoint's; a proxy replaces its
    /// proxy). Errors name the flag and never show a value.
    pub fn apply(&self, mut endpoint: crate::Endpoint) -> Result<crate::Endpoint, SpecError> {
        for header in &self.headers {
            let (name, value) = parse_header(header)?;
            endpoint = endpoint.header(name, value);
        }
        for pair in &self.query {
            let (name, value) = parse_query(pair)?;
            endpoint = endpoint.query(name, value);
        }
        if let Some(url) = &self.proxy {
            endpoint = endpoint.proxy(url);
        }
        Ok(self.tls.apply(endpoint))
    }
}

/// `--header 'Name: value'`: split at the first colon, the value trimmed.
/// Parsed here rather than by clap, whose errors quote the whole argument:
/// these errors never show a value, which may be a key.
pub fn parse_header(text: &str) -> Result<(String, String), SpecError> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(SpecError::new(
            "--header takes NAME: VALUE, e.g. 'X-Team: blue' or 'Authorization: Bearer ${GATEWAY_KEY}' (no colon found)",
        ));
    };
    let (name, value) = (name.trim(), value.trim());
    crate::spec::check_header(name, value).map_err(|e| SpecError::new(format!("--header: {e}")))?;
    Ok((name.to_string(), value.to_string()))
}

/// `--query NAME=VALUE` (errors never show the value).
pub fn parse_query(text: &str) -> Result<(String, String), SpecError> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(SpecError::new(
            "--query takes NAME=VALUE, e.g. api-version=2024-10-21 (no = found)",
        ));
    };
    crate::spec::check_query(name, value).map_err(|e| SpecError::new(format!("--query: {e}")))?;
    Ok((name.to_string(), value.to_string()))
}

/// TLS flags of `llmperf run` and `cargo bench --`: extra trust, a client
/// certificate, `--insecure` (see [`crate::spec::Tls`]).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Also trust the certificate authorities in this PEM file (repeatable; one file may hold a bundle). Trusted by default: the web PKI roots and the platform's store (or SSL_CERT_FILE / SSL_CERT_DIR when set).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<std::path::PathBuf>,
    /// Present this client certificate (PEM chain, leaf first) to servers that ask for one (mutual TLS); needs --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1); only its path is ever recorded.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate (self-signed test servers only); the run is marked insecure in the output and in summary.json.
    #[arg(long)]
    pub insecure: bool,
}

impl TlsArgs {
    /// `endpoint` with these settings added: the CA files beside its own,
    /// the client certificate instead of its own; `--insecure` turns
    /// verification off, its absence leaves the endpoint's choice.
    pub fn apply(&self, mut endpoint: crate::Endpoint) -> crate::Endpoint {
        for path in &self.ca_certs {
            endpoint = endpoint.ca_cert(path);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            endpoint = endpoint.client_cert(cert, key);
        }
        if self.insecure {
            endpoint = endpoint.insecure(true);
        }
        endpoint
    }
}
