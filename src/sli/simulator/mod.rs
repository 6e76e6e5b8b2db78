//! A seeded traffic simulator: canary and primary arms with Prometheus-style counters.
//!
//! Used by `verdict evaluate` (thousands of simulated canaries), by `verdict demo`
//! (through [`SimulatedSli`], an [`SliSource`]) and by tests. Every draw comes from a
//! seeded RNG, so a seed reproduces a run exactly.
//!
//! Per interval the cost does not depend on the request rate: request counts are one
//! Poisson draw per arm, errors one binomial, and the latency histogram a multinomial
//! drawn as sequential binomials over the bucket probabilities — never one draw per request.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson, StandardNormal};

use crate::judge::latency::Bucket;

/// z of the primary's p80, the pivot of latency noise and warm-up.
const PIVOT_Z: f64 = 0.841_621_233_572_914_3;

/// Prometheus client libraries' default histogram buckets (seconds); `+Inf` is implied.
pub const PROMETHEUS_DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a simulation setting was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("simulator: {field}: {why}")]
pub struct InvalidSimulation {
    /// The offending setting.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
}

fn invalid(field: &'static str, why: impl Into<String>) -> InvalidSimulation {
    InvalidSimulation {
        field,
        why: why.into(),
    }
}

/// How the total request rate varies over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrafficPattern {
    /// A constant rate.
    Steady,
    /// `rate · (1 + amplitude · sin(2π t / period + phase))`.
    Diurnal {
        /// Relative swing, in `[0, 1)`.
        amplitude: f64,
        /// Period in simulated seconds (a day is 86 400).
        period_s: f64,
        /// Phase in radians at simulated time 0.
        phase: f64,
    },
}

/// Log-normal request latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    /// Median latency in seconds.
    pub median_s: f64,
    /// Standard deviation of the log latency.
    pub sigma: f64,
}

/// A tail-only latency regression: a fraction of canary requests are `factor`× slower.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailRegression {
    /// Fraction of canary requests affected, in `[0, 1]`.
    pub fraction: f64,
    /// How many times slower the affected requests are.
    pub factor: f64,
}

/// What both arms share: traffic, baseline error rate, baseline latency, histogram layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Requests per second over both arms together.
    pub total_rps: f64,
    /// How the total rate varies.
    pub pattern: TrafficPattern,
    /// Standard deviation of the log-normal per-interval multiplicative noise applied,
    /// independently per arm, to the request rate and to the error probability
    /// (0 = Poisson/binomial counts only). Models bursty, overdispersed traffic.
    pub noise_sd: f64,
    /// Standard deviation of a log-normal per-interval factor (mean 1) applied,
    /// independently per arm, to the share of requests slower than the primary's p80
    /// latency — and so to the share above every boundary at or above it (0 = none).
    /// Models looks whose latency tail swells and shrinks (GC, noisy neighbours).
    pub latency_noise_sd: f64,
    /// The primary's error probability per request.
    pub base_error_rate: f64,
    /// The primary's latency distribution.
    pub latency: LatencyModel,
    /// Finite histogram upper bounds in seconds, strictly increasing; `+Inf` is implied.
    pub bucket_bounds: Vec<f64>,
}

impl Workload {
    /// Issue 3's reference workload: 50 requests/s, 0.5 % errors, latency log-normal with
    /// median 50 ms and σ 0.6, Prometheus' default buckets, steady and noise-free.
    pub fn reference() -> Self {
        Self {
            total_rps: 50.0,
            pattern: TrafficPattern::Steady,
            noise_sd: 0.0,
            latency_noise_sd: 0.0,
            base_error_rate: 0.005,
            latency: LatencyModel {
                median_s: 0.050,
                sigma: 0.6,
            },
            bucket_bounds: PROMETHEUS_DEFAULT_BUCKETS.to_vec(),
        }
    }

    /// The total request rate at simulated time `t_s`.
    pub fn rate_at(&self, t_s: f64) -> f64 {
        match self.pattern {
            TrafficPattern::Steady => self.total_rps,
            TrafficPattern::Diurnal {
                amplitude,
                period_s,
                phase,
            } => {
                let angle = std::f64::consts::TAU * t_s / period_s + phase;
                self.total_rps * (1.0 + amplitude * angle.sin())
            }
        }
    }

    fn validate(&self) -> Result<(), InvalidSimulation> {
        if !(self.total_rps.is_finite() && self.total_rps >= 0.0) {
            return Err(invalid(
                "total_rps",
                format!("must be ≥ 0, got {}", self.total_rps),
            ));
        }
        if let TrafficPattern::Diurnal {
            amplitude,
            period_s,
            phase,
        } = self.pattern
        {
            if !(0.0..1.0).contains(&amplitude) {
                return Err(invalid(
                    "amplitude",
                    format!("must be in [0, 1), got {amplitude}"),
                ));
            }
            if !(period_s.is_finite() && period_s > 0.0 && phase.is_finite()) {
                return Err(invalid("period", "must be a positive number of seconds"));
            }
        }
        for (field, sd) in [
            ("noise_sd", self.noise_sd),
            ("latency_noise_sd", self.latency_noise_sd),
        ] {
            if !(sd.is_finite() && (0.0..=3.0).contains(&sd)) {
                return Err(invalid(field, format!("must be in [0, 3], got {sd}")));
            }
        }
        check_probability("base_error_rate", self.base_error_rate)?;
        check_latency(&self.latency)?;
        if self.bucket_bounds.is_empty() {
            return Err(invalid("bucket_bounds", "need at least one finite bound"));
        }
        let increasing = self.bucket_bounds.windows(2).all(|w| w[0] < w[1]);
        let finite = self.bucket_bounds.iter().all(|b| b.is_finite() && *b > 0.0);
        if !(increasing && finite) {
            return Err(invalid(
                "bucket_bounds",
                "must be positive, finite and strictly increasing",
            ));
        }
        Ok(())
    }
}

fn check_probability(field: &'static str, p: f64) -> Result<(), InvalidSimulation> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be in [0, 1], got {p}")))
    }
}

fn check_latency(latency: &LatencyModel) -> Result<(), InvalidSimulation> {
    if !(latency.median_s.is_finite() && latency.median_s > 0.0) {
        return Err(invalid(
            "latency median",
            format!("must be > 0, got {}", latency.median_s),
        ));
    }
    if !(latency.sigma.is_finite() && latency.sigma > 0.0) {
        return Err(invalid(
            "latency sigma",
            format!("must be > 0, got {}", latency.sigma),
        ));
    }
    Ok(())
}

/// A canary that is slower below some latency and unchanged above it: every request
/// faster than `up_to_s` takes `factor`× as long, but at most `up_to_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyShift {
    /// How many times slower the affected requests are (> 1).
    pub factor: f64,
    /// Latency (seconds) above which nothing changes.
    pub up_to_s: f64,
}

/// A canary whose slow share is multiplied for its first seconds (JIT, cold caches).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warmup {
    /// Simulated seconds after the start during which the canary is slower.
    pub until_s: f64,
    /// Factor on the canary's share of requests slower than the primary's p80.
    pub slow_factor: f64,
}

/// How the canary differs from the primary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanaryEffect {
    /// Canary error probability = base × this (capped at 1).
    pub error_ratio: f64,
    /// Multiplies every canary request's latency (1 = unchanged).
    pub latency_shift: f64,
    /// With `latency_shift`: the quantile of the primary's latency the shift leaves in
    /// place (the log-normal's σ is adjusted), e.g. 0.99 for "median ×1.3, p99 unchanged".
    pub shift_pivot_quantile: Option<f64>,
    /// Optional tail-only regression on top of the shift.
    pub tail: Option<TailRegression>,
    /// Optional regression confined below a latency.
    pub body: Option<BodyShift>,
    /// Optional slower start.
    pub warmup: Option<Warmup>,
    /// Multiplies the canary's share of traffic (1 = its weight; 0 = it gets nothing).
    pub traffic_share: f64,
}

impl CanaryEffect {
    /// An identical canary (A/A).
    pub fn none() -> Self {
        Self {
            error_ratio: 1.0,
            latency_shift: 1.0,
            shift_pivot_quantile: None,
            tail: None,
            body: None,
            warmup: None,
            traffic_share: 1.0,
        }
    }

    fn validate(&self) -> Result<(), InvalidSimulation> {
        if !(self.error_ratio.is_finite() && self.error_ratio >= 0.0) {
            return Err(invalid(
                "error_ratio",
                format!("must be ≥ 0, got {}", self.error_ratio),
            ));
        }
        if !(self.latency_shift.is_finite() && self.latency_shift > 0.0) {
            return Err(invalid(
                "latency_shift",
                format!("must be > 0, got {}", self.latency_shift),
            ));
        }
        if let Some(tail) = self.tail {
            check_probability("tail fraction", tail.fraction)?;
            if !(tail.factor.is_finite() && tail.factor > 0.0) {
                return Err(invalid(
                    "tail factor",
                    format!("must be > 0, got {}", tail.factor),
                ));
            }
        }
        if let Some(q) = self.shift_pivot_quantile {
            if !(q > 0.5 && q < 1.0) {
                return Err(invalid(
                    "shift pivot",
                    format!("must be in (0.5, 1), got {q}"),
                ));
            }
        }
        if let Some(b) = self.body {
            if !(b.factor.is_finite()
                && b.factor >= 1.0
                && b.up_to_s.is_finite()
                && b.up_to_s > 0.0)
            {
                return Err(invalid("body shift", "factor ≥ 1 and a positive latency"));
            }
        }
        if let Some(w) = self.warmup {
            if !(w.until_s.is_finite()
                && w.until_s >= 0.0
                && w.slow_factor.is_finite()
                && w.slow_factor > 0.0)
            {
                return Err(invalid("warmup", "a duration ≥ 0 and a factor > 0"));
            }
        }
        if !(self.traffic_share.is_finite() && (0.0..=1.0).contains(&self.traffic_share)) {
            return Err(invalid(
                "traffic_share",
                format!("must be in [0, 1], got {}", self.traffic_share),
            ));
        }
        Ok(())
    }
}

/// Canary weights per look as Flagger moves them: step `i` uses `steps[i]`, and the
/// last step is held afterwards (Flagger's `stepWeights` up to `maxWeight`).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightSchedule {
    steps: Vec<f64>,
}

impl WeightSchedule {
    /// A schedule of canary weights (fractions in `[0, 1]`), at least one step.
    pub fn new(steps: Vec<f64>) -> Result<Self, InvalidSimulation> {
        if steps.is_empty() {
            return Err(invalid("weights", "need at least one step"));
        }
        for w in &steps {
            check_probability("weight", *w)?;
        }
        Ok(Self { steps })
    }

    /// Issue 3's reference schedule: 5/10/20/30/50 % then held at 50 %.
    pub fn flagger_reference() -> Self {
        Self {
            steps: vec![0.05, 0.10, 0.20, 0.30, 0.50],
        }
    }

    /// The canary weight at look `look` (0-based).
    pub fn weight(&self, look: usize) -> f64 {
        let last = self.steps.len() - 1;
        self.steps[look.min(last)]
    }
}

/// One arm's counts during one interval. `buckets[i]` counts requests in bucket `i`
/// alone (not cumulative); the last entry is the `+Inf` overflow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArmIncrement {
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Per-bucket (non-cumulative) latency counts, `bounds.len() + 1` entries.
    pub buckets: Vec<u64>,
}

impl ArmIncrement {
    /// Cumulative buckets in Prometheus' layout (`le` sorted, ending with `+Inf`).
    pub fn cumulative(&self, bounds: &[f64]) -> Vec<Bucket> {
        let mut total = 0u64;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                total += count;
                Bucket {
                    le: bounds.get(i).copied().unwrap_or(f64::INFINITY),
                    count: total as f64,
                }
            })
            .collect()
    }

    /// Adds another increment (same bucket layout).
    pub fn add(&mut self, other: &ArmIncrement) {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }
}

/// Both arms' counts during one interval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interval {
    /// The canary's counts.
    pub canary: ArmIncrement,
    /// The primary's counts.
    pub primary: ArmIncrement,
}

/// An arm's per-request probabilities, precomputed once.
#[derive(Debug, Clone)]
struct ArmModel {
    error_p: f64,
    /// P(latency ≤ bound) per finite bound.
    cdf: Vec<f64>,
    /// P(latency ≤ the primary's p80): the pivot of latency noise and warm-up.
    cdf_pivot: f64,
    /// Probability of each bucket alone (`bounds.len() + 1` entries, summing to 1).
    bucket_p: Vec<f64>,
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)
}

/// P(latency ≤ b) for a log-normal with the given median and σ.
fn lognormal_cdf(b: f64, median: f64, sigma: f64) -> f64 {
    normal_cdf((b / median).ln() / sigma)
}

/// Bucket probabilities from a cdf at the bounds.
fn bucket_probabilities(cdf: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut bucket_p = Vec::new();
    let mut below = 0.0;
    for c in cdf {
        bucket_p.push((c - below).max(0.0));
        below = c.max(below);
    }
    bucket_p.push((1.0 - below).max(0.0));
    bucket_p
}

impl ArmModel {
    fn new(error_p: f64, bounds: &[f64], pivot: f64, cdf: impl Fn(f64) -> f64) -> Self {
        let cdf_at: Vec<f64> = bounds.iter().map(|b| cdf(*b)).collect();
        Self {
            error_p,
            bucket_p: bucket_probabilities(cdf_at.iter().copied()),
            cdf: cdf_at,
            cdf_pivot: cdf(pivot),
        }
    }

    /// Bucket probabilities with the share slower than the pivot multiplied by `factor`
    /// (capped so it stays a probability); the share below the pivot shrinks to match.
    fn scaled_buckets(&self, factor: f64) -> std::borrow::Cow<'_, [f64]> {
        let above_pivot = 1.0 - self.cdf_pivot;
        if factor == 1.0 || above_pivot <= 0.0 {
            return std::borrow::Cow::Borrowed(&self.bucket_p);
        }
        let f = factor.min(1.0 / above_pivot);
        let below_scale = if self.cdf_pivot > 0.0 {
            (1.0 - f * above_pivot) / self.cdf_pivot
        } else {
            1.0
        };
        std::borrow::Cow::Owned(bucket_probabilities(self.cdf.iter().map(|&c| {
            if c >= self.cdf_pivot {
                1.0 - f * (1.0 - c)
            } else {
                c * below_scale
            }
        })))
    }

    /// P(latency > `boundary`), exact when `boundary` is one of the bucket bounds.
    fn exceedance(&self, bounds: &[f64], boundary: f64) -> f64 {
        bounds
            .iter()
            .zip(&self.bucket_p)
            .filter(|(b, _)| **b > boundary)
            .map(|(_, p)| p)
            .sum::<f64>()
            + self.bucket_p.last().copied().unwrap_or(0.0)
    }
}

/// The simulator of one canary next to its primary.
#[derive(Debug, Clone)]
pub struct Simulator {
    workload: Workload,
    effect: CanaryEffect,
    canary: ArmModel,
    primary: ArmModel,
    rng: StdRng,
}

impl Simulator {
    /// Validates the settings and seeds the RNG.
    pub fn new(
        workload: Workload,
        effect: CanaryEffect,
        seed: u64,
    ) -> Result<Self, InvalidSimulation> {
        workload.validate()?;
        effect.validate()?;
        let lat = workload.latency;
        // The primary's p80: latency noise and warm-up scale the share above it (20 %), so
        // a factor up to 5 keeps it a probability.
        let pivot = lat.median_s * (lat.sigma * PIVOT_Z).exp();
        let primary = ArmModel::new(
            workload.base_error_rate,
            &workload.bucket_bounds,
            pivot,
            |b| lognormal_cdf(b, lat.median_s, lat.sigma),
        );
        let shifted = lat.median_s * effect.latency_shift;
        // "Median ×k, quantile q unchanged": σ' keeps the q-quantile where it was.
        let sigma = match effect.shift_pivot_quantile {
            Some(q) => {
                let z = statrs::distribution::ContinuousCDF::inverse_cdf(
                    &statrs::distribution::Normal::standard(),
                    q,
                );
                let kept = lat.median_s * (lat.sigma * z).exp();
                ((kept / shifted).ln() / z).max(1e-3)
            }
            None => lat.sigma,
        };
        let (tail_fraction, tail_factor) =
            effect.tail.map_or((0.0, 1.0), |t| (t.fraction, t.factor));
        let body = effect.body;
        let canary_error = (workload.base_error_rate * effect.error_ratio).min(1.0);
        let canary = ArmModel::new(canary_error, &workload.bucket_bounds, pivot, |b| {
            // Below the body's limit a request is slower by the body factor, so it is at
            // most b when it used to be at most b / factor; above it nothing changes.
            let at = match body {
                Some(s) if b < s.up_to_s => b / s.factor,
                _ => b,
            };
            (1.0 - tail_fraction) * lognormal_cdf(at, shifted, sigma)
                + tail_fraction * lognormal_cdf(at, shifted * tail_factor, sigma)
        });
        Ok(Self {
            workload,
            effect,
            canary,
            primary,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The shared workload.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The canary's effect.
    pub fn effect(&self) -> &CanaryEffect {
        &self.effect
    }

    /// True per-request error probabilities `(canary, primary)` before noise.
    pub fn error_rates(&self) -> (f64, f64) {
        (self.canary.error_p, self.primary.error_p)
    }

    /// True probabilities `(canary, primary)` that a request is slower than `boundary`
    /// (exact when `boundary` is a bucket bound).
    pub fn exceedance(&self, boundary: f64) -> (f64, f64) {
        let bounds = &self.workload.bucket_bounds;
        (
            self.canary.exceedance(bounds, boundary),
            self.primary.exceedance(bounds, boundary),
        )
    }

    /// Simulates `dt_s` seconds starting at simulated time `t_s` with the canary at
    /// `canary_weight` (the primary gets the rest).
    pub fn interval(&mut self, t_s: f64, dt_s: f64, canary_weight: f64) -> Interval {
        let weight = canary_weight.clamp(0.0, 1.0);
        let dt = dt_s.max(0.0);
        // The rate at the interval's midpoint: intervals are short against the diurnal period.
        let total = self.workload.rate_at(t_s + dt / 2.0) * dt;
        let warm = match self.effect.warmup {
            Some(w) if t_s + dt / 2.0 < w.until_s => w.slow_factor,
            _ => 1.0,
        };
        let noise = Noise {
            counts_sd: self.workload.noise_sd,
            latency_sd: self.workload.latency_noise_sd,
        };
        let canary = draw_arm(
            &mut self.rng,
            &self.canary,
            total * weight * self.effect.traffic_share,
            noise,
            warm,
        );
        let primary = draw_arm(
            &mut self.rng,
            &self.primary,
            total * (1.0 - weight),
            noise,
            1.0,
        );
        Interval { canary, primary }
    }
}

/// A log-normal multiplicative factor with mean 1 (so noise changes the variance of
/// the counts, not their expected value).
fn noise_factor(rng: &mut StdRng, sd: f64) -> f64 {
    if sd == 0.0 {
        return 1.0;
    }
    let z: f64 = rng.sample(StandardNormal);
    (sd * z - sd * sd / 2.0).exp()
}

fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    match Poisson::new(mean) {
        Ok(d) => {
            let x: f64 = d.sample(rng);
            x.max(0.0) as u64
        }
        Err(_) => 0,
    }
}

/// A Binomial(n, p) draw, with the edges (n = 0, p ≤ 0, p ≥ 1) exact.
pub(crate) fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).map_or(0, |d| d.sample(rng))
}

/// Per-interval noise of one draw.
#[derive(Debug, Clone, Copy)]
struct Noise {
    /// On the request rate and the error probability.
    counts_sd: f64,
    /// On the share of requests slower than the pivot.
    latency_sd: f64,
}

fn draw_arm(
    rng: &mut StdRng,
    model: &ArmModel,
    mean_requests: f64,
    noise: Noise,
    slow_factor: f64,
) -> ArmIncrement {
    let rate_noise = noise_factor(rng, noise.counts_sd);
    let error_noise = noise_factor(rng, noise.counts_sd);
    let requests = poisson(rng, mean_requests * rate_noise);
    let errors = binomial(rng, requests, (model.error_p * error_noise).min(1.0));
    let latency_factor = noise_factor(rng, noise.latency_sd) * slow_factor;
    let bucket_p = model.scaled_buckets(latency_factor);
    // Multinomial by sequential binomials: each bucket takes its conditional share of
    // the requests not yet placed.
    let mut buckets = Vec::with_capacity(bucket_p.len());
    let mut left = requests;
    let mut mass = 1.0;
    let last = bucket_p.len() - 1;
    for (i, p) in bucket_p.iter().enumerate() {
        let here = if i == last || mass <= 0.0 {
            left
        } else {
            binomial(rng, left, (p / mass).min(1.0))
        };
        buckets.push(here);
        left -= here;
        mass -= p;
    }
    ArmIncrement {
        requests,
        errors,
        buckets,
    }
}

/// A deterministic 64-bit mix (SplitMix64 finaliser), so derived seeds are stable
/// across Rust versions (unlike `DefaultHasher`).
pub fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash_str(seed: u64, s: &str) -> u64 {
    s.bytes().fold(seed, |h, byte| mix_seed(h, u64::from(byte)))
}

mod source;
pub use source::{ServiceProfile, SimulatedSli, SimulatedSliConfig};

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_sim(seed: u64) -> Simulator {
        match Simulator::new(Workload::reference(), CanaryEffect::none(), seed) {
            Ok(sim) => sim,
            Err(e) => panic!("reference workload refused: {e}"),
        }
    }

    #[test]
    fn same_seed_same_counts_other_seed_other_counts() {
        let run = |seed| {
            let mut sim = reference_sim(seed);
            (0..20)
                .map(|i| sim.interval(i as f64 * 60.0, 60.0, 0.2))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn counts_have_the_configured_mean_rates() {
        let mut sim = reference_sim(3);
        let looks = 4000;
        let mut canary = ArmIncrement::default();
        let mut primary = ArmIncrement::default();
        for i in 0..looks {
            let step = sim.interval(i as f64 * 60.0, 60.0, 0.2);
            canary.add(&step.canary);
            primary.add(&step.primary);
        }
        let expected_canary = 50.0 * 0.2 * 60.0 * looks as f64;
        let rel = |got: u64, want: f64| (got as f64 - want).abs() / want;
        assert!(
            rel(canary.requests, expected_canary) < 0.01,
            "{}",
            canary.requests
        );
        assert!(rel(primary.requests, 4.0 * expected_canary) < 0.01);
        let err_rate = primary.errors as f64 / primary.requests as f64;
        assert!((err_rate - 0.005).abs() < 0.0003, "error rate {err_rate}");
        // Fraction at or below 50 ms is exactly one half for a log-normal with median 50 ms.
        let below_median =
            primary.cumulative(&PROMETHEUS_DEFAULT_BUCKETS)[3].count / primary.requests as f64;
        assert!((below_median - 0.5).abs() < 0.005, "{below_median}");
    }

    #[test]
    fn noise_and_diurnal_keep_the_mean_but_add_variance() {
        let workload = Workload {
            noise_sd: 0.5,
            pattern: TrafficPattern::Diurnal {
                amplitude: 0.5,
                period_s: 3600.0,
                phase: 0.0,
            },
            ..Workload::reference()
        };
        let mut noisy =
            Simulator::new(workload, CanaryEffect::none(), 5).unwrap_or_else(|e| panic!("{e}"));
        let mut plain = reference_sim(5);
        let looks = 6000; // a whole number of diurnal periods
        let (mut n_noisy, mut n_plain) = (Vec::new(), Vec::new());
        for i in 0..looks {
            n_noisy.push(noisy.interval(i as f64 * 60.0, 60.0, 0.5).primary.requests as f64);
            n_plain.push(plain.interval(i as f64 * 60.0, 60.0, 0.5).primary.requests as f64);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let var = |v: &[f64]| {
            let m = mean(v);
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64
        };
        assert!(
            (mean(&n_noisy) / 1500.0 - 1.0).abs() < 0.02,
            "{}",
            mean(&n_noisy)
        );
        assert!(var(&n_noisy) > 20.0 * var(&n_plain));
    }

    #[test]
    fn buckets_are_monotone_and_end_at_the_request_count() {
        let effect = CanaryEffect {
            error_ratio: 2.0,
            latency_shift: 1.3,
            tail: Some(TailRegression {
                fraction: 0.05,
                factor: 4.0,
            }),
            ..CanaryEffect::none()
        };
        let mut sim =
            Simulator::new(Workload::reference(), effect, 11).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..200 {
            let step = sim.interval(i as f64 * 60.0, 60.0, 0.3);
            for arm in [&step.canary, &step.primary] {
                let cum = arm.cumulative(&PROMETHEUS_DEFAULT_BUCKETS);
                assert_eq!(cum.len(), 12);
                assert!(cum
                    .windows(2)
                    .all(|w| w[0].count <= w[1].count && w[0].le < w[1].le));
                assert_eq!(cum[11].count, arm.requests as f64);
                assert!(cum[11].le.is_infinite());
                assert!(arm.errors <= arm.requests);
            }
        }
    }

    #[test]
    fn tail_regression_raises_only_the_tail() {
        let effect = CanaryEffect {
            tail: Some(TailRegression {
                fraction: 0.05,
                factor: 4.0,
            }),
            ..CanaryEffect::none()
        };
        let sim =
            Simulator::new(Workload::reference(), effect, 1).unwrap_or_else(|e| panic!("{e}"));
        let (canary_slow, primary_slow) = sim.exceedance(0.25);
        // 5 % of requests at median 200 ms: about a third of them are above 250 ms.
        assert!(
            canary_slow > primary_slow + 0.015,
            "{canary_slow} vs {primary_slow}"
        );
        let (canary_median, primary_median) = sim.exceedance(0.05);
        assert!((canary_median - primary_median) < 0.03);
    }

    #[test]
    fn refuses_bad_settings() {
        let bad_rate = Workload {
            base_error_rate: 1.5,
            ..Workload::reference()
        };
        assert!(Simulator::new(bad_rate, CanaryEffect::none(), 0).is_err());
        let bad_buckets = Workload {
            bucket_bounds: vec![0.1, 0.05],
            ..Workload::reference()
        };
        assert!(Simulator::new(bad_buckets, CanaryEffect::none(), 0).is_err());
        assert!(WeightSchedule::new(vec![]).is_err());
        assert!(WeightSchedule::new(vec![0.1, 1.2]).is_err());
    }

    #[test]
    fn schedule_holds_its_last_weight() {
        let s = WeightSchedule::flagger_reference();
        assert_eq!(s.weight(0), 0.05);
        assert_eq!(s.weight(4), 0.5);
        assert_eq!(s.weight(29), 0.5);
    }
}
