//! Scrapes in, the known roles' values out: one [`Tracker`] follows every
//! metrics source of a run, scrape by scrape, whether the scrapes arrive
//! live (the run's scraper) or are read back from `server_metrics.jsonl`
//! (the HTML report), so both see the same figures.
//!
//! Each source's series are numbered as they first appear
//! ([`Tracker::intern`]); a scrape is then one value per series number.
//! Cumulative series (counter totals, histogram buckets, sums and counts)
//! are followed through resets: a value below the last one means the
//! server restarted and counted from zero again. A series that first
//! appears after its source's first scrape counts from zero (client
//! libraries create a labelled series on its first increment), so its
//! first value is all increase.

use std::collections::{BTreeMap, HashMap};

use super::exposition::Exposition;
use super::known::{recognise, Part, Role, Shape, KNOWN};
use super::{ScrapeLine, SeriesDef};

/// A cumulative series followed through resets.
#[derive(Debug, Clone, Copy, Default)]
struct Cumulative {
    last: Option<f64>,
    /// Increase since the source's first scrape.
    total: f64,
}

impl Cumulative {
    fn observe(&mut self, value: f64, counts_from_zero: bool) {
        if !value.is_finite() {
            return;
        }
        self.total += match self.last {
            None if counts_from_zero => value.max(0.0),
            None => 0.0,
            Some(last) if value < last => value.max(0.0),
            Some(last) => value - last,
        };
        self.last = Some(value);
    }
}

/// One source's series.
#[derive(Debug, Default)]
struct Source {
    ids: HashMap<SeriesDef, u32>,
    /// Per series: the known family (an index into [`KNOWN`]) and part.
    meanings: Vec<Option<(usize, Part)>>,
    cumulative: Vec<Cumulative>,
    /// Per series: its value in the latest scrape.
    latest: Vec<Option<f64>>,
    scraped: bool,
    /// Whether the latest scrape of this source succeeded.
    up: bool,
}

/// A histogram's cumulative buckets (upper bound in ms, count), sum (ms)
/// and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Upper bound, and observations at or below it, ascending.
    pub bounds: Vec<(f64, f64)>,
    /// Sum of the observations, ms.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

/// The known roles' values after one scrape round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    /// When, on the run's clock (µs after its start).
    pub t_us: u64,
    /// Gauges over the sources that answered (summed; KV-cache usage averaged).
    pub gauges: BTreeMap<Role, f64>,
    /// Counter totals since each source's first scrape, summed.
    pub counters: BTreeMap<Role, f64>,
    /// Histograms since each source's first scrape, summed.
    pub histograms: BTreeMap<Role, Buckets>,
    /// The family read for each role (the first source's).
    pub families: BTreeMap<Role, &'static str>,
    /// Sources that answered this round, of all.
    pub up: usize,
}

/// Follows every source of a run.
#[derive(Debug, Default)]
pub struct Tracker {
    sources: Vec<Source>,
}

impl Tracker {
    /// A tracker of `sources` sources (numbered from 0).
    pub fn new(sources: usize) -> Tracker {
        Tracker {
            sources: (0..sources).map(|_| Source::default()).collect(),
        }
    }

    fn source(&mut self, source: usize) -> &mut Source {
        if source >= self.sources.len() {
            self.sources.resize_with(source + 1, Source::default);
        }
        &mut self.sources[source]
    }

    /// The number of `def` in `source`, and whether it is new (numbers
    /// count up from 0 in order of first appearance).
    pub fn intern(&mut self, source: usize, def: &SeriesDef) -> (u32, bool) {
        let state = self.source(source);
        if let Some(id) = state.ids.get(def) {
            return (*id, false);
        }
        let id = state.meanings.len() as u32;
        state.ids.insert(def.clone(), id);
        let le = def.labels.get("le").map(String::as_str);
        state.meanings.push(recognise(&def.name, le));
        state.cumulative.push(Cumulative::default());
        state.latest.push(None);
        (id, true)
    }

    /// Numbers a parsed exposition's samples: their values by series
    /// number, and the series new in it (in number order).
    pub fn number(
        &mut self,
        source: usize,
        exposition: &Exposition,
    ) -> (Vec<Option<f64>>, Vec<SeriesDef>) {
        let mut values = vec![None; self.source(source).meanings.len()];
        let mut new = Vec::new();
        for sample in &exposition.samples {
            let def = SeriesDef {
                name: sample.name.clone(),
                labels: sample.labels.iter().cloned().collect(),
                kind: exposition.family(&sample.name).1,
            };
            let (id, is_new) = self.intern(source, &def);
            if is_new {
                new.push(def);
            }
            let slot = id as usize;
            if values.len() <= slot {
                values.resize(slot + 1, None);
            }
            values[slot] = Some(sample.value).filter(|v| !v.is_nan());
        }
        (values, new)
    }

    /// Takes one scrape of `source`: a value per series number (`None`:
    /// absent from this scrape).
    pub fn observe(&mut self, source: usize, values: &[Option<f64>]) {
        let state = self.source(source);
        let first = !state.scraped;
        for (id, meaning) in state.meanings.iter().enumerate() {
            let value = values.get(id).copied().flatten();
            state.latest[id] = value;
            let (Some((index, part)), Some(value)) = (meaning, value) else {
                continue;
            };
            let cumulative =
                KNOWN[*index].role.shape() != Shape::Gauge || !matches!(part, Part::Value);
            if cumulative {
                state.cumulative[id].observe(value, !first);
            }
        }
        state.scraped = true;
        state.up = true;
    }

    /// Takes one line of `server_metrics.jsonl`: its new series, then its
    /// values (or its failure). Reading a file's lines in order rebuilds
    /// what the run's tracker saw.
    pub fn take(&mut self, line: &ScrapeLine) {
        let source = line.source as usize;
        for def in &line.new {
            self.intern(source, def);
        }
        match line.error {
            Some(_) => self.failed(source),
            None => self.observe(source, &line.values),
        }
    }

    /// Marks a failed scrape of `source`: its gauges are left out of the
    /// round; its counters keep their totals.
    pub fn failed(&mut self, source: usize) {
        let state = self.source(source);
        state.up = false;
        state.latest.iter_mut().for_each(|v| *v = None);
    }

    /// The roles' values after the latest round.
    pub fn point(&self, t_us: u64) -> Point {
        let mut point = Point {
            t_us,
            ..Point::default()
        };
        let mut usage: Vec<f64> = Vec::new();
        for state in &self.sources {
            point.up += usize::from(state.up);
            for role in Role::ALL {
                // The first listed family of this role the source carries.
                // Gauges count where the source answered; totals stay.
                let present = |id: usize| match role.shape() {
                    Shape::Gauge => state.latest[id].is_some(),
                    _ => state.cumulative[id].last.is_some(),
                };
                let Some(family) = state
                    .meanings
                    .iter()
                    .enumerate()
                    .filter(|(id, _)| present(*id))
                    .filter_map(|(_, m)| m.filter(|(i, _)| KNOWN[*i].role == role))
                    .map(|(index, _)| index)
                    .min()
                else {
                    continue;
                };
                let known = &KNOWN[family];
                point.families.entry(role).or_insert(known.family);
                let series =
                    state.meanings.iter().enumerate().filter_map(|(id, m)| {
                        m.filter(|(i, _)| *i == family).map(|(_, p)| (id, p))
                    });
                match role.shape() {
                    Shape::Gauge => {
                        let values: Vec<f64> = series
                            .filter_map(|(id, _)| state.latest[id])
                            .map(|v| v * known.scale)
                            .collect();
                        if values.is_empty() {
                            continue;
                        }
                        let sum: f64 = values.iter().sum();
                        if role == Role::KvCacheUsage {
                            usage.push(sum / values.len() as f64);
                        } else {
                            *point.gauges.entry(role).or_insert(0.0) += sum;
                        }
                    }
                    Shape::Counter => {
                        let total: f64 = series
                            .map(|(id, _)| state.cumulative[id].total * known.scale)
                            .sum();
                        *point.counters.entry(role).or_insert(0.0) += total;
                    }
                    Shape::Histogram => {
                        let buckets = point.histograms.entry(role).or_default();
                        for (id, part) in series {
                            let total = state.cumulative[id].total;
                            match part {
                                Part::Bucket(le) => add_bucket(buckets, le * known.scale, total),
                                Part::Sum => buckets.sum += total * known.scale,
                                Part::Count => buckets.count += total,
                                Part::Value => {}
                            }
                        }
                    }
                }
            }
        }
        if !usage.is_empty() {
            point.gauges.insert(
                Role::KvCacheUsage,
                usage.iter().sum::<f64>() / usage.len() as f64,
            );
        }
        point
    }
}

fn add_bucket(buckets: &mut Buckets, le: f64, count: f64) {
    match buckets
        .bounds
        .binary_search_by(|(bound, _)| bound.total_cmp(&le))
    {
        Ok(at) => buckets.bounds[at].1 += count,
        Err(at) => buckets.bounds.insert(at, (le, count)),
    }
}

impl Buckets {
    /// The observations between `earlier` and `self` (bucket by bucket).
    pub fn since(&self, earlier: Option<&Buckets>) -> Buckets {
        let before = |le: f64| {
            earlier
                .and_then(|e| e.bounds.iter().find(|(b, _)| *b == le))
                .map_or(0.0, |(_, c)| *c)
        };
        Buckets {
            bounds: self
                .bounds
                .iter()
                .map(|&(le, c)| (le, (c - before(le)).max(0.0)))
                .collect(),
            sum: self.sum - earlier.map_or(0.0, |e| e.sum),
            count: self.count - earlier.map_or(0.0, |e| e.count),
        }
    }

    /// The observations counted: the `+Inf` bucket, else the count.
    pub fn observations(&self) -> f64 {
        self.bounds
            .last()
            .filter(|(le, _)| le.is_infinite())
            .map_or(self.count, |(_, c)| *c)
    }

    /// The `q` quantile, estimated as Prometheus' `histogram_quantile`
    /// does (linearly within the bucket it falls in, the first bucket
    /// starting at 0), with that bucket's bounds: `(estimate, low, high)`;
    /// `high` is infinite when it falls in the `+Inf` bucket, whose
    /// estimate is the highest finite bound. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<(f64, f64, f64)> {
        let total = self.observations();
        if total <= 0.0 || self.bounds.is_empty() {
            return None;
        }
        // Durations are never negative: a sum of 0 means every observation
        // was 0, which interpolating in the first bucket would hide.
        if self.sum == 0.0 && self.bounds.first().is_some_and(|(le, _)| *le >= 0.0) {
            return Some((0.0, 0.0, 0.0));
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let (mut low, mut below) = (0.0_f64, 0.0_f64);
        for &(le, count) in &self.bounds {
            if count >= rank && count > below {
                if le.is_infinite() {
                    return Some((low, low, le));
                }
                let start = if low > le { le } else { low };
                let estimate = start + (le - start) * (rank - below) / (count - below);
                return Some((estimate, start, le));
            }
            (low, below) = (le, count.max(below));
        }
        Some((low, low, f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(tracker: &mut Tracker, source: usize, text: &str) {
        let exposition = Exposition::parse(text);
        let (values, _) = tracker.number(source, &exposition);
        tracker.observe(source, &values);
    }

    const TYPES: &str = "# TYPE vllm:num_requests_running gauge\n\
        # TYPE vllm:generation_tokens_total counter\n\
        # TYPE vllm:time_to_first_token_seconds histogram\n";

    fn vllm(running: f64, tokens: f64, fast: f64, all: f64) -> String {
        format!(
            "{TYPES}vllm:num_requests_running{{model_name=\"m\"}} {running}\n\
             vllm:generation_tokens_total{{model_name=\"m\"}} {tokens}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"0.1\",model_name=\"m\"}} {fast}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"0.2\",model_name=\"m\"}} {all}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} {all}\n\
             vllm:time_to_first_token_seconds_sum{{model_name=\"m\"}} {}\n\
             vllm:time_to_first_token_seconds_count{{model_name=\"m\"}} {all}\n",
            0.15 * all
        )
    }

    #[test]
    fn gauges_counters_and_histograms_over_sources() {
        let mut tracker = Tracker::new(2);
        scrape(&mut tracker, 0, &vllm(1.0, 100.0, 0.0, 0.0));
        scrape(&mut tracker, 1, &vllm(2.0, 500.0, 0.0, 0.0));
        let start = tracker.point(0);
        assert_eq!(start.gauges[&Role::RunningRequests], 3.0);
        assert_eq!(
            start.counters[&Role::GenerationTokens],
            0.0,
            "the first scrape is the base"
        );
        // Source 0 restarted (its counter went down); source 1 went on.
        scrape(&mut tracker, 0, &vllm(4.0, 30.0, 1.0, 4.0));
        scrape(&mut tracker, 1, &vllm(0.0, 520.0, 2.0, 2.0));
        let end = tracker.point(1_000_000);
        assert_eq!(end.gauges[&Role::RunningRequests], 4.0);
        assert_eq!(end.counters[&Role::GenerationTokens], 30.0 + 20.0);
        assert_eq!(
            end.families[&Role::GenerationTokens],
            "vllm:generation_tokens"
        );
        let ttft = end.histograms[&Role::Ttft].since(start.histograms.get(&Role::Ttft));
        assert_eq!(
            ttft.bounds,
            vec![(100.0, 3.0), (200.0, 6.0), (f64::INFINITY, 6.0)]
        );
        assert_eq!(ttft.count, 6.0);
        assert!((ttft.sum - 0.15 * 6.0 * 1000.0).abs() < 1e-9);
        // A failed source: its gauges leave the round, its totals stay.
        tracker.failed(1);
        let partial = tracker.point(2_000_000);
        assert_eq!(partial.up, 1);
        assert_eq!(partial.gauges[&Role::RunningRequests], 4.0);
        assert_eq!(partial.counters[&Role::GenerationTokens], 50.0);
    }

    #[test]
    fn a_series_appearing_later_counts_from_zero() {
        let mut tracker = Tracker::new(1);
        scrape(
            &mut tracker,
            0,
            "vllm:request_success_total{finished_reason=\"stop\"} 5\n",
        );
        scrape(
            &mut tracker,
            0,
            "vllm:request_success_total{finished_reason=\"stop\"} 7\n\
             vllm:request_success_total{finished_reason=\"length\"} 1\n",
        );
        assert_eq!(tracker.point(0).counters[&Role::FinishedRequests], 3.0);
    }

    #[test]
    fn the_current_name_wins_over_the_old_one() {
        let mut tracker = Tracker::new(1);
        scrape(
            &mut tracker,
            0,
            "vllm:gpu_cache_usage_perc 0.5\nvllm:kv_cache_usage_perc 0.25\n",
        );
        let point = tracker.point(0);
        assert_eq!(point.gauges[&Role::KvCacheUsage], 0.25);
        assert_eq!(
            point.families[&Role::KvCacheUsage],
            "vllm:kv_cache_usage_perc"
        );
    }

    #[test]
    fn quantiles_interpolate_within_buckets_as_prometheus_does() {
        let b = Buckets {
            bounds: vec![
                (10.0, 0.0),
                (20.0, 50.0),
                (40.0, 100.0),
                (f64::INFINITY, 100.0),
            ],
            sum: 2_250.0,
            count: 100.0,
        };
        assert_eq!(b.quantile(0.5), Some((20.0, 10.0, 20.0)));
        assert_eq!(b.quantile(0.25), Some((15.0, 10.0, 20.0)));
        assert_eq!(b.quantile(0.9), Some((36.0, 20.0, 40.0)));
        let over = Buckets {
            bounds: vec![(10.0, 1.0), (f64::INFINITY, 10.0)],
            sum: 500.0,
            count: 10.0,
        };
        assert_eq!(over.quantile(0.99), Some((10.0, 10.0, f64::INFINITY)));
        assert_eq!(over.quantile(0.05), Some((5.0, 0.0, 10.0)));
        assert_eq!(Buckets::default().quantile(0.5), None);
        // No queue at all: every observation 0, not the first bucket's middle.
        let none = Buckets {
            bounds: vec![(300.0, 5.0), (f64::INFINITY, 5.0)],
            sum: 0.0,
            count: 5.0,
        };
        assert_eq!(none.quantile(0.5), Some((0.0, 0.0, 0.0)));
    }
}
