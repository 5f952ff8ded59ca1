//! The bootstrap over requests: a confidence interval for each change, and
//! a p-value for "no change".
//!
//! A resample draws each side's requests with replacement (as many as the
//! side has) and records how often each request was drawn; every statistic
//! of that resample is computed from those counts, so one draw serves all
//! metrics and keeps their correlation (a slow request is slow in TTFT and
//! E2E at once).
//! - The interval resamples each side on its own and takes percentiles of
//!   the change (the percentile bootstrap).
//! - The p-value resamples both sides from the pooled requests, which is
//!   the null hypothesis made concrete (both runs drew from one
//!   distribution): it is the share of null changes at least as large as
//!   the one observed, `(1 + hits) / (1 + resamples)`.
//!
//! The resamples run in fixed chunks, each drawing from its own ChaCha8
//! stream of the caller's seed, spread over the machine's cores: the same
//! two results always give the same verdicts, on any machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::samples::{ITL_POINTS_PER_REQUEST, ITL_SHARES};

/// One value of a request, with its weight in a weighted quantile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    value: f64,
    request: u32,
    weight: f64,
}

/// One side's data for one statistic.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// Values sorted ascending; `totals[r]` is request `r`'s whole weight
    /// (1 for a request with a value, 0 without).
    Points {
        points: Vec<Point>,
        totals: Vec<f64>,
    },
    /// Per request numerator and denominator.
    Ratio { num: Vec<f64>, den: Vec<f64> },
}

impl Data {
    /// One value per request (`None`: the request has none).
    pub(crate) fn values(values: &[Option<f64>]) -> Data {
        Data::weighted(values.iter().map(|v| match v {
            Some(v) if v.is_finite() => vec![*v],
            _ => Vec::new(),
        }))
    }

    /// Several values per request, each request's values together weighing
    /// `totals[r]` (the points stand for that many observations). A request
    /// with more observations than points was thinned to one point per
    /// share of [`ITL_SHARES`], and each point weighs its share.
    pub(crate) fn points(per_request: &[Vec<f64>], totals: &[u32]) -> Data {
        let Data::Points { mut points, .. } = Data::weighted(per_request.iter().cloned()) else {
            unreachable!("weighted builds points")
        };
        // `weighted` drops non-finite values; index points per request again.
        let mut seen = vec![0usize; per_request.len()];
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| (points[i].request, i));
        let finite: Vec<usize> = per_request
            .iter()
            .map(|values| values.iter().filter(|v| v.is_finite()).count())
            .collect();
        for i in order {
            let r = points[i].request as usize;
            let total = f64::from(totals.get(r).copied().unwrap_or(0));
            let n = finite[r];
            points[i].weight = if n == ITL_POINTS_PER_REQUEST && total > n as f64 {
                let k = seen[r];
                (ITL_SHARES[k + 1] - ITL_SHARES[k]) * total
            } else {
                total / n.max(1) as f64
            };
            seen[r] += 1;
        }
        let totals = per_request
            .iter()
            .enumerate()
            .map(|(r, _)| f64::from(totals.get(r).copied().unwrap_or(0)))
            .collect();
        Data::Points { points, totals }
    }

    fn weighted(per_request: impl Iterator<Item = Vec<f64>>) -> Data {
        let mut points = Vec::new();
        let mut totals = Vec::new();
        for (request, values) in per_request.enumerate() {
            let finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
            totals.push(if finite.is_empty() { 0.0 } else { 1.0 });
            let weight = 1.0 / finite.len().max(1) as f64;
            points.extend(finite.into_iter().map(|value| Point {
                value,
                request: request as u32,
                weight,
            }));
        }
        points.sort_by(|a, b| a.value.total_cmp(&b.value));
        Data::Points { points, totals }
    }

    /// Per request numerator and denominator.
    pub(crate) fn ratio(num: Vec<f64>, den: Vec<f64>) -> Data {
        Data::Ratio { num, den }
    }

    /// Both sides' requests as one population (`other`'s requests after
    /// this side's), for the null distribution.
    fn pooled(&self, other: &Data) -> Data {
        match (self, other) {
            (
                Data::Points { points, totals },
                Data::Points {
                    points: other_points,
                    totals: other_totals,
                },
            ) => {
                let offset = totals.len() as u32;
                let mut all: Vec<Point> = points.clone();
                all.extend(other_points.iter().map(|p| Point {
                    request: p.request + offset,
                    ..*p
                }));
                all.sort_by(|a, b| a.value.total_cmp(&b.value));
                let mut all_totals = totals.clone();
                all_totals.extend_from_slice(other_totals);
                Data::Points {
                    points: all,
                    totals: all_totals,
                }
            }
            (Data::Ratio { num, den }, Data::Ratio { num: n2, den: d2 }) => Data::Ratio {
                num: num.iter().chain(n2).copied().collect(),
                den: den.iter().chain(d2).copied().collect(),
            },
            _ => unreachable!("both sides of a statistic hold the same kind of data"),
        }
    }
}

/// How a statistic is computed from a side's data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Estimator {
    /// The q quantiles (ascending) of one value per request, interpolated
    /// as the summary's percentiles are (type 7).
    Quantiles(Vec<f64>),
    /// For each q (ascending), the weighted quantile: points sit at the
    /// middle of their weight, interpolated between (pooled inter-token
    /// latencies).
    WeightedQuantiles(Vec<f64>),
    /// `scale × Σ num / Σ den` over the drawn requests.
    Ratio,
}

impl Estimator {
    /// How many values it gives.
    fn outputs(&self) -> usize {
        match self {
            Estimator::Quantiles(qs) | Estimator::WeightedQuantiles(qs) => qs.len(),
            Estimator::Ratio => 1,
        }
    }
}

/// How the change between two values is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// `current / baseline − 1`.
    Relative,
    /// `current − baseline`.
    Absolute,
}

impl ChangeKind {
    pub(crate) fn of(self, baseline: f64, current: f64) -> Option<f64> {
        let change = match self {
            ChangeKind::Relative if baseline > 0.0 => current / baseline - 1.0,
            ChangeKind::Relative => return None,
            ChangeKind::Absolute => current - baseline,
        };
        change.is_finite().then_some(change)
    }
}

/// A statistic compared across two sides.
#[derive(Debug, Clone)]
pub(crate) struct Statistic {
    pub(crate) estimator: Estimator,
    pub(crate) change: ChangeKind,
    pub(crate) baseline: Data,
    pub(crate) current: Data,
    /// Factors of a ratio on each side (Little's law: mean requests in
    /// flight), taken as known: they scale the change and its interval;
    /// the null distribution uses one factor for both draws.
    pub(crate) scales: (f64, f64),
}

/// What the bootstrap says about one statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Test {
    /// The change between the two whole samples.
    pub(crate) change: f64,
    /// The confidence interval of the change.
    pub(crate) interval: (f64, f64),
    /// The p-value of "no change".
    pub(crate) p_value: f64,
}

/// Resampling settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resampling {
    pub(crate) resamples: usize,
    pub(crate) confidence_level: f64,
    pub(crate) seed: u64,
}

/// The statistic's values for a resample (`counts[r]`: how often request
/// `r` was drawn, `draws` their sum) into `out`, one per output; `None`
/// where the resample has no value. Quantiles share one walk up the
/// sorted values.
fn evaluate(
    estimator: &Estimator,
    data: &Data,
    counts: &[u32],
    draws: usize,
    scale: f64,
    out: &mut Vec<Option<f64>>,
) {
    out.clear();
    out.resize(estimator.outputs(), None);
    match (estimator, data) {
        (Estimator::Quantiles(qs), Data::Points { points, totals }) => {
            // With a value for every request, the resample's size is the draws'.
            let m: f64 = if points.len() == totals.len() {
                draws as f64
            } else {
                totals
                    .iter()
                    .zip(counts)
                    .map(|(t, &c)| t * f64::from(c))
                    .sum()
            };
            if m < 1.0 {
                return;
            }
            let ranks: Vec<f64> = qs.iter().map(|q| q * (m - 1.0)).collect();
            let mut lows: Vec<Option<f64>> = vec![None; qs.len()];
            let (mut next_low, mut next_high) = (0, 0);
            let mut seen = 0.0;
            for point in points {
                let drawn = counts[point.request as usize];
                if drawn == 0 {
                    continue;
                }
                seen += f64::from(drawn);
                while next_low < qs.len() && seen > ranks[next_low].floor() {
                    lows[next_low] = Some(point.value);
                    next_low += 1;
                }
                while next_high < qs.len() && seen > ranks[next_high].ceil() {
                    if let Some(low) = lows[next_high] {
                        let rank = ranks[next_high];
                        out[next_high] = Some(low + (point.value - low) * (rank - rank.floor()));
                    }
                    next_high += 1;
                }
                if next_high == qs.len() {
                    break;
                }
            }
        }
        (Estimator::WeightedQuantiles(qs), Data::Points { points, totals }) => {
            let total: f64 = totals
                .iter()
                .zip(counts)
                .map(|(t, &c)| t * f64::from(c))
                .sum();
            if total <= 0.0 {
                return;
            }
            // Each drawn point sits at the middle of its weight on the
            // cumulative scale; a quantile interpolates between the two
            // points around it (the Hazen rule, for weighted values).
            let mut next = 0;
            let mut cumulative = 0.0;
            let mut previous: Option<(f64, f64)> = None;
            for point in points {
                let drawn = counts[point.request as usize];
                if drawn == 0 {
                    continue;
                }
                let weight = point.weight * f64::from(drawn);
                let centre = cumulative + weight / 2.0;
                cumulative += weight;
                while next < qs.len() && qs[next] * total <= centre {
                    let target = qs[next] * total;
                    out[next] = Some(match previous {
                        Some((c, v)) if centre > c => {
                            v + (point.value - v) * (target - c) / (centre - c)
                        }
                        _ => point.value,
                    });
                    next += 1;
                }
                if next == qs.len() {
                    return;
                }
                previous = Some((centre, point.value));
            }
            // Quantiles beyond the last point's centre are the last value.
            if let Some((_, last)) = previous {
                for slot in &mut out[next..] {
                    *slot = Some(last);
                }
            }
        }
        (Estimator::Ratio, Data::Ratio { num, den }) => {
            let (mut top, mut bottom) = (0.0, 0.0);
            for ((n, d), &c) in num.iter().zip(den).zip(counts) {
                top += n * f64::from(c);
                bottom += d * f64::from(c);
            }
            out[0] = (bottom > 0.0).then(|| scale * top / bottom);
        }
        _ => {}
    }
}

fn draw(rng: &mut ChaCha8Rng, counts: &mut [u32], population: usize, draws: usize) {
    counts.fill(0);
    for _ in 0..draws {
        counts[rng.gen_range(0..population)] += 1;
    }
}

/// Resamples are split into this many chunks (threads share them out).
const CHUNKS: usize = 8;

/// One chunk's resampled changes (interval) and null-distribution counts
/// (p-value), per statistic and output.
struct Chunk {
    changes: Vec<Vec<Vec<f64>>>,
    hits: Vec<Vec<usize>>,
    trials: Vec<Vec<usize>>,
}

/// Runs `count` resamples of each kind.
fn resample(
    statistics: &[Statistic],
    pools: &[Data],
    observed: &[Vec<Option<f64>>],
    (nb, nc): (usize, usize),
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Chunk {
    let (mut b, mut c) = (Vec::new(), Vec::new());
    let mut changes: Vec<Vec<Vec<f64>>> = observed
        .iter()
        .map(|o| vec![Vec::with_capacity(count); o.len()])
        .collect();
    let (mut counts_b, mut counts_c) = (vec![0u32; nb], vec![0u32; nc]);
    for _ in 0..count {
        draw(rng, &mut counts_b, nb, nb);
        draw(rng, &mut counts_c, nc, nc);
        for (i, s) in statistics.iter().enumerate() {
            evaluate(&s.estimator, &s.baseline, &counts_b, nb, s.scales.0, &mut b);
            evaluate(&s.estimator, &s.current, &counts_c, nc, s.scales.1, &mut c);
            for (k, (b, c)) in b.iter().zip(&c).enumerate() {
                if let Some(change) = b.zip(*c).and_then(|(b, c)| s.change.of(b, c)) {
                    changes[i][k].push(change);
                }
            }
        }
    }
    let mut hits: Vec<Vec<usize>> = observed.iter().map(|o| vec![0; o.len()]).collect();
    let mut trials = hits.clone();
    let (mut pool_b, mut pool_c) = (vec![0u32; nb + nc], vec![0u32; nb + nc]);
    for _ in 0..count {
        draw(rng, &mut pool_b, nb + nc, nb);
        draw(rng, &mut pool_c, nb + nc, nc);
        for (i, s) in statistics.iter().enumerate() {
            // Under "no change" both draws come from one population, with one
            // scale: the sides' own factors would shift the null's centre.
            evaluate(&s.estimator, &pools[i], &pool_b, nb, 1.0, &mut b);
            evaluate(&s.estimator, &pools[i], &pool_c, nc, 1.0, &mut c);
            for (k, (b, c)) in b.iter().zip(&c).enumerate() {
                let Some(observed) = observed[i][k] else {
                    continue;
                };
                if let Some(change) = b.zip(*c).and_then(|(b, c)| s.change.of(b, c)) {
                    trials[i][k] += 1;
                    // A relative tolerance, so ties with the observed change count as hits.
                    hits[i][k] += usize::from(change.abs() >= observed.abs() * (1.0 - 1e-9));
                }
            }
        }
    }
    Chunk {
        changes,
        hits,
        trials,
    }
}

/// Runs the bootstrap for every statistic of one comparison, whose sides
/// hold `requests.0` and `requests.1` requests: per statistic, one test
/// per output (`None` where the whole sides give no change).
pub(crate) fn run(
    statistics: &[Statistic],
    requests: (usize, usize),
    settings: Resampling,
) -> Vec<Vec<Option<Test>>> {
    let (nb, nc) = requests;
    let ones_b = vec![1u32; nb];
    let ones_c = vec![1u32; nc];
    let (mut b, mut c) = (Vec::new(), Vec::new());
    // The change of each output of each statistic, between the whole sides.
    let mut observed: Vec<Vec<Option<f64>>> = Vec::with_capacity(statistics.len());
    for s in statistics {
        evaluate(&s.estimator, &s.baseline, &ones_b, nb, s.scales.0, &mut b);
        evaluate(&s.estimator, &s.current, &ones_c, nc, s.scales.1, &mut c);
        observed.push(
            b.iter()
                .zip(&c)
                .map(|(b, c)| b.zip(*c).and_then(|(b, c)| s.change.of(b, c)))
                .collect(),
        );
    }
    let shape = |fill: fn() -> Vec<f64>| -> Vec<Vec<Vec<f64>>> {
        statistics
            .iter()
            .map(|s| (0..s.estimator.outputs()).map(|_| fill()).collect())
            .collect()
    };
    if nb == 0 || nc == 0 {
        return observed.iter().map(|o| vec![None; o.len()]).collect();
    }
    let pools: Vec<Data> = statistics
        .iter()
        .map(|s| s.baseline.pooled(&s.current))
        .collect();
    // Fixed chunks, each with its own ChaCha stream, run on the cores there
    // are: the same inputs give the same numbers on any machine.
    let per_chunk = settings.resamples.div_ceil(CHUNKS);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut chunks: Vec<Chunk> = Vec::with_capacity(CHUNKS);
    for wave in (0..CHUNKS).collect::<Vec<_>>().chunks(threads) {
        let done: Vec<Chunk> = std::thread::scope(|scope| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&chunk| {
                    let (pools, observed) = (&pools, &observed);
                    let count = per_chunk.min(settings.resamples.saturating_sub(chunk * per_chunk));
                    scope.spawn(move || {
                        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
                        rng.set_stream(chunk as u64);
                        resample(statistics, pools, observed, (nb, nc), count, &mut rng)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        chunks.extend(done);
    }
    let mut changes = shape(Vec::new);
    let mut hits: Vec<Vec<usize>> = observed.iter().map(|o| vec![0; o.len()]).collect();
    let mut trials = hits.clone();
    for chunk in chunks {
        for (i, outputs) in chunk.changes.into_iter().enumerate() {
            for (k, values) in outputs.into_iter().enumerate() {
                changes[i][k].extend(values);
                hits[i][k] += chunk.hits[i][k];
                trials[i][k] += chunk.trials[i][k];
            }
        }
    }
    let tail = (1.0 - settings.confidence_level) / 2.0;
    observed
        .iter()
        .enumerate()
        .map(|(i, outputs)| {
            outputs
                .iter()
                .enumerate()
                .map(|(k, observed)| {
                    let change = (*observed)?;
                    let sorted = &mut changes[i][k];
                    if sorted.is_empty() || trials[i][k] == 0 {
                        return None;
                    }
                    sorted.sort_by(f64::total_cmp);
                    Some(Test {
                        change,
                        interval: (
                            crate::metrics::percentile(sorted, tail),
                            crate::metrics::percentile(sorted, 1.0 - tail),
                        ),
                        p_value: (1 + hits[i][k]) as f64 / (1 + trials[i][k]) as f64,
                    })
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(estimator: Estimator, data: &Data, counts: &[u32], scale: f64) -> Vec<Option<f64>> {
        let mut out = Vec::new();
        let draws = counts.iter().sum::<u32>() as usize;
        evaluate(&estimator, data, counts, draws, scale, &mut out);
        out
    }

    #[test]
    fn quantiles_from_counts_match_the_summary_percentiles() {
        let values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0];
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let qs = vec![0.0, 0.1, 0.5, 0.9, 0.99, 1.0];
        let data = Data::values(&values.iter().map(|&v| Some(v)).collect::<Vec<_>>());
        let got = one(Estimator::Quantiles(qs.clone()), &data, &[1; 6], 1.0);
        for (q, got) in qs.iter().zip(got) {
            assert_eq!(got, Some(crate::metrics::percentile(&sorted, *q)), "q={q}");
        }
        // A request drawn twice counts twice.
        let data = Data::values(&[Some(1.0), Some(2.0), Some(3.0)]);
        let median = one(Estimator::Quantiles(vec![0.5]), &data, &[0, 0, 3], 1.0);
        assert_eq!(median, vec![Some(3.0)]);
        let none = one(Estimator::Quantiles(vec![0.5]), &data, &[0, 0, 0], 1.0);
        assert_eq!(none, vec![None]);
        // Requests without a value do not count toward the rank.
        let data = Data::values(&[Some(1.0), None, Some(3.0)]);
        let median = one(Estimator::Quantiles(vec![0.5]), &data, &[1, 5, 1], 1.0);
        assert_eq!(median, vec![Some(2.0)]);
    }

    #[test]
    fn weighted_points_stand_for_their_requests_counts() {
        // Request 0: 2 points standing for 100 gaps at 1 ms; request 1: one
        // point for 1 gap at 50 ms. The pooled median is 1 ms.
        let data = Data::points(&[vec![1.0, 1.0], vec![50.0]], &[100, 1]);
        let qs = Estimator::WeightedQuantiles(vec![0.5, 0.999]);
        assert_eq!(
            one(qs.clone(), &data, &[1, 1], 1.0),
            vec![Some(1.0), Some(50.0)]
        );
        // Drawing request 1 two hundred times (weight 200 against 100) moves
        // the median between the two: centres at 75 and 200 of 300.
        let got = one(qs, &data, &[1, 200], 1.0);
        assert!(
            (got[0].unwrap() - (1.0 + 49.0 * 75.0 / 125.0)).abs() < 1e-9,
            "{got:?}"
        );
        assert_eq!(got[1], Some(50.0));
    }

    #[test]
    fn thinned_requests_keep_the_pooled_tail() {
        // Two requests of 1,000 gaps each, 0..999 ms and 1,000..1,999 ms:
        // the pooled percentiles from 16 points a request stay within 1%.
        let mut all = Vec::new();
        let mut columns = Vec::new();
        let mut counts = Vec::new();
        for r in 0..2 {
            let gaps: Vec<f64> = (0..1000).map(|g| f64::from(g + 1000 * r)).collect();
            all.extend_from_slice(&gaps);
            let (points, count) = crate::baseline::samples::itl_points(gaps);
            columns.push(points);
            counts.push(count);
        }
        let data = Data::points(&columns, &counts);
        let qs = vec![0.5, 0.9, 0.99];
        let got = one(
            Estimator::WeightedQuantiles(qs.clone()),
            &data,
            &[1, 1],
            1.0,
        );
        for (q, got) in qs.iter().zip(got) {
            let exact = crate::metrics::percentile(&all, *q);
            let got = got.unwrap();
            assert!((got / exact - 1.0).abs() < 0.01, "q={q}: {got} vs {exact}");
        }
    }

    #[test]
    fn a_ratio_scales_its_sums() {
        let data = Data::ratio(vec![10.0, 30.0], vec![1.0, 3.0]);
        assert_eq!(one(Estimator::Ratio, &data, &[1, 1], 2.0), vec![Some(20.0)]);
        assert_eq!(one(Estimator::Ratio, &data, &[0, 0], 2.0), vec![None]);
    }
}
