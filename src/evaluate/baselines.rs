//! The judges verdict is compared with, built from their published descriptions.
//!
//! Each one sees the same simulated looks as verdict and answers, look by look,
//! continue, roll back or promote. None of them is used by the service.

use statrs::distribution::{ContinuousCDF, Normal};

use crate::judge::latency::Bucket;

use super::{LookData, Step};

/// Prometheus' `histogram_quantile`: linear interpolation inside the bucket holding
/// the rank, the lower edge of the first bucket taken as 0, and the highest finite
/// bound returned when the rank falls in `+Inf`. `None` without observations.
///
/// This is what Flagger and Kayenta queries see; it can be off by tens of percent,
/// which is part of what the comparison shows.
pub(crate) fn histogram_quantile(q: f64, buckets: &[Bucket]) -> Option<f64> {
    let total = buckets.last()?.count;
    if total <= 0.0 || buckets.len() < 2 {
        return None;
    }
    let rank = q * total;
    let idx = buckets.iter().position(|b| b.count >= rank)?;
    if buckets[idx].le.is_infinite() {
        return Some(buckets[buckets.len() - 2].le);
    }
    let (lower, below) = if idx == 0 {
        (0.0, 0.0)
    } else {
        (buckets[idx - 1].le, buckets[idx - 1].count)
    };
    let inside = buckets[idx].count - below;
    if inside <= 0.0 {
        return Some(buckets[idx].le);
    }
    Some(lower + (buckets[idx].le - lower) * (rank - below) / inside)
}

/// Standard normal quantile.
fn z_quantile(p: f64) -> f64 {
    Normal::new(0.0, 1.0).map_or(f64::NAN, |n| n.inverse_cdf(p))
}

/// Flagger's built-in checks as a Canary usually configures them: each interval, on the
/// canary alone, success rate ≥ `min_success_rate` and p95 (via `histogram_quantile`)
/// ≤ `max_p95_s`; an interval with any failed check (or no canary data) adds one failed
/// check, and the canary is rolled back when failed checks reach `threshold`.
#[derive(Debug, Clone)]
pub(crate) struct FlaggerThresholds {
    pub min_success_rate: f64,
    pub max_p95_s: f64,
    pub threshold: u32,
    failed: u32,
}

impl FlaggerThresholds {
    pub(crate) fn new(min_success_rate: f64, max_p95_s: f64, threshold: u32) -> Self {
        Self {
            min_success_rate,
            max_p95_s,
            threshold,
            failed: 0,
        }
    }

    pub(crate) fn observe(&mut self, look: &LookData<'_>) -> Step {
        let canary = look.canary;
        let check_failed = if canary.requests == 0 {
            // Flagger treats "no values found" as a failed check.
            true
        } else {
            let success = 1.0 - canary.errors as f64 / canary.requests as f64;
            let p95 = histogram_quantile(0.95, &look.canary_buckets).unwrap_or(f64::INFINITY);
            success < self.min_success_rate || p95 > self.max_p95_s
        };
        if check_failed {
            self.failed += 1;
        }
        if self.failed >= self.threshold {
            Step::Rollback
        } else {
            Step::Continue
        }
    }
}

/// Kayenta's Mann-Whitney classifier on per-interval points, re-run on all points so far
/// at every look and failing fast: a metric is "High" when the lower end of the
/// two-sided confidence interval for the canary − primary location shift (Hodges–Lehmann)
/// exceeds `tolerance` × the primary's mean. Metrics: per-interval error rate and p95.
#[derive(Debug, Clone)]
pub(crate) struct KayentaMannWhitney {
    z: f64,
    tolerance: f64,
    canary_errors: Vec<f64>,
    primary_errors: Vec<f64>,
    canary_p95: Vec<f64>,
    primary_p95: Vec<f64>,
    scratch: Vec<f64>,
}

impl KayentaMannWhitney {
    /// `confidence` two-sided (0.98 in the comparison), `tolerance` relative (0.25).
    pub(crate) fn new(confidence: f64, tolerance: f64) -> Self {
        Self {
            z: z_quantile(1.0 - (1.0 - confidence) / 2.0),
            tolerance,
            canary_errors: Vec::new(),
            primary_errors: Vec::new(),
            canary_p95: Vec::new(),
            primary_p95: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn observe(&mut self, look: &LookData<'_>) -> Step {
        // An interval without requests gives no point (Kayenta drops NaN values).
        if look.canary.requests > 0 {
            self.canary_errors
                .push(look.canary.errors as f64 / look.canary.requests as f64);
            if let Some(p) = histogram_quantile(0.95, &look.canary_buckets) {
                self.canary_p95.push(p);
            }
        }
        if look.primary.requests > 0 {
            self.primary_errors
                .push(look.primary.errors as f64 / look.primary.requests as f64);
            if let Some(p) = histogram_quantile(0.95, &look.primary_buckets) {
                self.primary_p95.push(p);
            }
        }
        let high = |canary: &[f64], primary: &[f64], scratch: &mut Vec<f64>| {
            let Some((lower, _)) = shift_interval(canary, primary, self.z, scratch) else {
                return false;
            };
            let baseline = primary.iter().sum::<f64>() / primary.len() as f64;
            lower > self.tolerance * baseline.abs()
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let fail = high(&self.canary_errors, &self.primary_errors, &mut scratch)
            || high(&self.canary_p95, &self.primary_p95, &mut scratch);
        self.scratch = scratch;
        if fail {
            Step::Rollback
        } else {
            Step::Continue
        }
    }
}

/// The distribution-free confidence interval for the location shift `x − y` from the
/// Mann-Whitney statistic: order statistics `k` and `mn + 1 − k` of the pairwise
/// differences, with `k` from the normal approximation of U (no tie correction).
/// `None` when the samples are too small for the requested confidence.
pub(crate) fn shift_interval(
    x: &[f64],
    y: &[f64],
    z: f64,
    scratch: &mut Vec<f64>,
) -> Option<(f64, f64)> {
    let (m, n) = (x.len() as f64, y.len() as f64);
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let k = (m * n / 2.0 - z * (m * n * (m + n + 1.0) / 12.0).sqrt()).floor();
    if k < 1.0 {
        return None;
    }
    scratch.clear();
    scratch.extend(x.iter().flat_map(|a| y.iter().map(move |b| a - b)));
    let k = k as usize;
    let len = scratch.len();
    let lower = *scratch.select_nth_unstable_by(k - 1, f64::total_cmp).1;
    let upper = *scratch.select_nth_unstable_by(len - k, f64::total_cmp).1;
    Some((lower, upper))
}

/// A two-proportion z-test on the cumulative counts, repeated at every look with no
/// correction for repetition: one-sided at α/2 for errors and α/2 shared by verdict's
/// latency boundaries.
#[derive(Debug, Clone)]
pub(crate) struct RepeatedZTest {
    z_errors: f64,
    z_latency: f64,
    /// requests, errors, then requests above each boundary.
    canary: Vec<u64>,
    primary: Vec<u64>,
}

impl RepeatedZTest {
    pub(crate) fn new(alpha: f64, boundaries: usize) -> Self {
        Self {
            z_errors: z_quantile(1.0 - alpha / 2.0),
            z_latency: z_quantile(1.0 - alpha / 2.0 / boundaries.max(1) as f64),
            canary: vec![0; 2 + boundaries],
            primary: vec![0; 2 + boundaries],
        }
    }

    pub(crate) fn observe(&mut self, look: &LookData<'_>) -> Step {
        let add = |total: &mut Vec<u64>, requests: u64, errors: u64, slower: &[u64]| {
            total[0] += requests;
            total[1] += errors;
            for (t, s) in total[2..].iter_mut().zip(slower) {
                *t += s;
            }
        };
        add(
            &mut self.canary,
            look.canary.requests,
            look.canary.errors,
            &look.canary_slower,
        );
        add(
            &mut self.primary,
            look.primary.requests,
            look.primary.errors,
            &look.primary_slower,
        );
        let (nc, np) = (self.canary[0] as f64, self.primary[0] as f64);
        if nc == 0.0 || np == 0.0 {
            return Step::Continue;
        }
        for event in 1..self.canary.len() {
            let (xc, xp) = (self.canary[event] as f64, self.primary[event] as f64);
            let pooled = (xc + xp) / (nc + np);
            if pooled <= 0.0 || pooled >= 1.0 {
                continue;
            }
            let se = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / np)).sqrt();
            let z_crit = if event == 1 {
                self.z_errors
            } else {
                self.z_latency
            };
            if (xc / nc - xp / np) / se > z_crit {
                return Step::Rollback;
            }
        }
        Step::Continue
    }
}

/// Which events an oracle test counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OracleEvents {
    /// Errors.
    Errors,
    /// Requests above verdict's latency boundary with this index.
    Slower(usize),
}

/// One SPRT of the oracle: `null` against the true ratio `truth`, at level `alpha`, each
/// look's likelihood ratio tempered for the true per-look noise `dispersion` of the log
/// ratio (without it an SPRT is not valid on bursty traffic, so it would not be a fair
/// limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OracleTest {
    pub events: OracleEvents,
    pub null: f64,
    pub truth: f64,
    pub alpha: f64,
    pub dispersion: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SprtState {
    Open(f64),
    /// Decided for the truth (regression found, or not worse shown).
    Truth,
    /// Decided for the null.
    Null,
}

/// Wald's SPRTs of the null verdict tests against the true ratio, on the canary's share
/// of each look's events (the same conditional-binomial likelihood verdict uses, with the
/// alternative known): the practical limit for looks to a correct decision at verdict's
/// levels. On a regression it rolls back when any test finds the truth; otherwise it
/// promotes when every test has.
#[derive(Debug, Clone)]
pub(crate) struct OracleSprt {
    tests: Vec<(OracleTest, SprtState)>,
    beta: f64,
    regression: bool,
}

impl OracleSprt {
    pub(crate) fn new(tests: Vec<OracleTest>, beta: f64, regression: bool) -> Self {
        Self {
            tests: tests
                .into_iter()
                .map(|t| (t, SprtState::Open(0.0)))
                .collect(),
            beta,
            regression,
        }
    }

    pub(crate) fn observe(&mut self, look: &LookData<'_>) -> Step {
        let (nc, np) = (look.canary.requests as f64, look.primary.requests as f64);
        for (test, state) in &mut self.tests {
            let SprtState::Open(llr) = state else {
                continue;
            };
            if nc > 0.0 && np > 0.0 {
                let (xc, xp) = match test.events {
                    OracleEvents::Errors => (look.canary.errors, look.primary.errors),
                    OracleEvents::Slower(i) => (
                        look.canary_slower.get(i).copied().unwrap_or(0),
                        look.primary_slower.get(i).copied().unwrap_or(0),
                    ),
                };
                let theta0 = nc * test.null / (nc * test.null + np);
                let theta1 = nc * test.truth / (nc * test.truth + np);
                let kappa =
                    crate::judge::eprocess::temper((xc + xp) as f64, theta0, test.dispersion);
                *llr += kappa
                    * (xc as f64 * (theta1 / theta0).ln()
                        + xp as f64 * ((1.0 - theta1) / (1.0 - theta0)).ln());
            }
            if *llr >= ((1.0 - self.beta) / test.alpha).ln() {
                *state = SprtState::Truth;
            } else if *llr <= (self.beta / (1.0 - test.alpha)).ln() {
                *state = SprtState::Null;
            }
        }
        let decided = |want: SprtState| self.tests.iter().filter(|(_, s)| *s == want).count();
        if self.regression {
            if decided(SprtState::Truth) > 0 {
                return Step::Rollback;
            }
            if !self.tests.is_empty() && decided(SprtState::Null) == self.tests.len() {
                return Step::Promote;
            }
        } else if !self.tests.is_empty() && decided(SprtState::Truth) == self.tests.len() {
            return Step::Promote;
        }
        Step::Continue
    }
}

/// Kullback–Leibler divergence per event of the canary's share at ratio `truth` from the
/// share at `null`, with equal traffic.
fn share_kl(truth: f64, null: f64) -> f64 {
    let (t1, t0) = (truth / (1.0 + truth), null / (1.0 + null));
    t1 * (t1 / t0).ln() + (1.0 - t1) * ((1.0 - t1) / (1.0 - t0)).ln()
}

/// The fair oracle of a simulated canary: the nulls verdict tests, the true ratios the
/// simulator knows, verdict's levels (docs/statistics.md §8).
pub(crate) fn oracle_for(
    sim: &crate::sli::simulator::Simulator,
    regression: bool,
    plan: &crate::judge::Plan,
    config: &crate::judge::JudgeConfig,
    beta: f64,
) -> OracleSprt {
    let (ce, pe) = sim.error_rates();
    let ratio = |c: f64, p: f64| if p > 0.0 { c / p } else { 1.0 };
    // The true per-look noise of the log ratio: each arm's noise, independently.
    let workload = sim.workload();
    let tau = |e: OracleEvents| {
        std::f64::consts::SQRT_2
            * match e {
                OracleEvents::Errors => workload.noise_sd,
                OracleEvents::Slower(_) => workload.latency_noise_sd,
            }
    };
    // (events, true ratio, events per request in both arms together)
    let mut metrics = vec![(OracleEvents::Errors, ratio(ce, pe), ce + pe, true)];
    for (i, b) in plan.boundaries.iter().enumerate() {
        let (cs, ps) = sim.exceedance(b.le_s);
        metrics.push((OracleEvents::Slower(i), ratio(cs, ps), cs + ps, b.promotion));
    }
    let tests = if regression {
        let margin = |e: OracleEvents| match e {
            OracleEvents::Errors => config.error_margin,
            OracleEvents::Slower(_) => config.latency_margin,
        };
        metrics
            .iter()
            .filter(|(e, truth, _, _)| *truth > 1.0 + margin(*e))
            .max_by(|a, b| {
                let info =
                    |m: &(OracleEvents, f64, f64, bool)| m.2 * share_kl(m.1, 1.0 + margin(m.0));
                info(a).total_cmp(&info(b))
            })
            .map(|(e, truth, _, _)| OracleTest {
                events: *e,
                null: 1.0 + margin(*e),
                truth: *truth,
                alpha: config.alpha_per_test(),
                dispersion: tau(*e),
            })
            .into_iter()
            .collect()
    } else {
        let limit = 1.0 + config.promotion_margin;
        metrics
            .iter()
            .filter(|(_, truth, _, needed)| *needed && *truth < limit)
            .map(|(e, truth, _, _)| OracleTest {
                events: *e,
                null: limit,
                truth: *truth,
                alpha: config.alpha,
                dispersion: tau(*e),
            })
            .collect()
    };
    OracleSprt::new(tests, beta, regression)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sli::simulator::ArmIncrement;

    fn buckets(counts: &[(f64, f64)]) -> Vec<Bucket> {
        counts
            .iter()
            .map(|&(le, count)| Bucket { le, count })
            .collect()
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let b = buckets(&[
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ]);
        // rank 95 lies in (0.5, 1.0] holding 10 requests, 5 of them below the rank.
        let q = histogram_quantile(0.95, &b).unwrap_or(f64::NAN);
        assert!((q - 0.75).abs() < 1e-12, "{q}");
        // rank 25 in the first bucket, interpolated from 0.
        let q = histogram_quantile(0.25, &b).unwrap_or(f64::NAN);
        assert!((q - 0.05).abs() < 1e-12, "{q}");
        let overflow = buckets(&[(0.1, 1.0), (0.5, 2.0), (f64::INFINITY, 10.0)]);
        assert_eq!(histogram_quantile(0.95, &overflow), Some(0.5));
        assert_eq!(
            histogram_quantile(0.95, &buckets(&[(0.1, 0.0), (f64::INFINITY, 0.0)])),
            None
        );
    }

    #[test]
    fn shift_interval_matches_hand_computation() {
        // x − y differences for x = 10..=19 and y = 0..=9: 1..=19 with multiplicities.
        let x: Vec<f64> = (10..20).map(f64::from).collect();
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        let mut scratch = Vec::new();
        let (lo, hi) =
            shift_interval(&x, &y, 1.959_964, &mut scratch).unwrap_or((f64::NAN, f64::NAN));
        // k = floor(50 − 1.96·sqrt(100·21/12)) = floor(24.07) = 24; the 24th smallest
        // difference is 7 (1+2+…+6 = 21 below 7, then 7 seven times) and symmetrically 13.
        assert_eq!((lo, hi), (7.0, 13.0));
        assert!(shift_interval(&x[..2], &y[..2], 2.326, &mut scratch).is_none());
    }

    fn look<'a>(canary: &'a ArmIncrement, primary: &'a ArmIncrement) -> LookData<'a> {
        LookData {
            canary,
            primary,
            canary_buckets: canary.cumulative(&[0.1, 1.0]),
            primary_buckets: primary.cumulative(&[0.1, 1.0]),
            canary_slower: vec![canary.buckets.get(2).copied().unwrap_or(0)],
            primary_slower: vec![primary.buckets.get(2).copied().unwrap_or(0)],
            elapsed_ms: 0,
        }
    }

    fn arm(requests: u64, errors: u64, slow: u64) -> ArmIncrement {
        ArmIncrement {
            requests,
            errors,
            buckets: vec![requests - slow, 0, slow],
        }
    }

    #[test]
    fn flagger_rolls_back_after_threshold_failed_intervals() {
        let mut f = FlaggerThresholds::new(0.99, 0.5, 3);
        let (bad, primary) = (arm(100, 2, 0), arm(100, 0, 0));
        let good = arm(100, 1, 0);
        assert_eq!(f.observe(&look(&bad, &primary)), Step::Continue);
        assert_eq!(f.observe(&look(&good, &primary)), Step::Continue);
        assert_eq!(f.observe(&look(&bad, &primary)), Step::Continue);
        // A p95 above 500 ms fails too: half the requests in +Inf report p95 = 1 s.
        let slow = arm(100, 0, 50);
        assert_eq!(f.observe(&look(&slow, &primary)), Step::Rollback);
    }

    #[test]
    fn z_test_flags_a_clear_difference_only() {
        let mut z = RepeatedZTest::new(0.01, 1);
        let same = arm(10_000, 50, 0);
        assert_eq!(z.observe(&look(&same, &same)), Step::Continue);
        let mut z = RepeatedZTest::new(0.01, 1);
        let worse = arm(10_000, 150, 0);
        assert_eq!(z.observe(&look(&worse, &same)), Step::Rollback);
    }

    #[test]
    fn sprt_promotes_identical_arms_and_fails_a_tripled_rate() {
        let promote = OracleTest {
            events: OracleEvents::Errors,
            null: 1.75,
            truth: 1.0,
            alpha: 0.01,
            dispersion: 0.0,
        };
        let (canary, primary) = (arm(1000, 10, 0), arm(1000, 10, 0));
        let mut sprt = OracleSprt::new(vec![promote], 0.05, false);
        let steps: Vec<Step> = (0..10)
            .map(|_| sprt.observe(&look(&canary, &primary)))
            .collect();
        assert_eq!(steps.last(), Some(&Step::Promote));
        let fail = OracleTest {
            events: OracleEvents::Errors,
            null: 1.1,
            truth: 3.0,
            alpha: 0.005,
            dispersion: 0.0,
        };
        let worse = arm(1000, 30, 0);
        let mut sprt = OracleSprt::new(vec![fail], 0.05, true);
        let steps: Vec<Step> = (0..10)
            .map(|_| sprt.observe(&look(&worse, &primary)))
            .collect();
        assert!(steps.contains(&Step::Rollback));
        // The same regression seen on a boundary's slow requests.
        let slow = OracleTest {
            events: OracleEvents::Slower(0),
            ..fail
        };
        let (slow_canary, slow_primary) = (arm(1000, 0, 30), arm(1000, 0, 10));
        let mut sprt = OracleSprt::new(vec![slow], 0.05, true);
        let steps: Vec<Step> = (0..10)
            .map(|_| sprt.observe(&look(&slow_canary, &slow_primary)))
            .collect();
        assert!(steps.contains(&Step::Rollback));
    }

    #[test]
    fn kayenta_needs_enough_points_then_sees_a_big_shift() {
        let mut k = KayentaMannWhitney::new(0.98, 0.25);
        let primary = arm(1000, 5, 0);
        let canary = arm(1000, 30, 0);
        let steps: Vec<Step> = (0..8)
            .map(|_| k.observe(&look(&canary, &primary)))
            .collect();
        assert_eq!(steps[0], Step::Continue, "one point per arm cannot decide");
        assert_eq!(steps.last(), Some(&Step::Rollback));
        let mut k = KayentaMannWhitney::new(0.98, 0.25);
        let steps: Vec<Step> = (0..8)
            .map(|_| k.observe(&look(&primary, &primary)))
            .collect();
        assert!(steps.iter().all(|s| *s == Step::Continue));
    }
}
