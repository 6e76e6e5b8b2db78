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
/// correction for repetition: one-sided at α/2 for errors and α/2 for requests above b*.
#[derive(Debug, Clone)]
pub(crate) struct RepeatedZTest {
    z_crit: f64,
    canary: [u64; 3],
    primary: [u64; 3],
}

impl RepeatedZTest {
    pub(crate) fn new(alpha: f64) -> Self {
        Self {
            z_crit: z_quantile(1.0 - alpha / 2.0),
            canary: [0; 3],
            primary: [0; 3],
        }
    }

    pub(crate) fn observe(&mut self, look: &LookData<'_>) -> Step {
        self.canary[0] += look.canary.requests;
        self.canary[1] += look.canary.errors;
        self.canary[2] += look.canary_slow;
        self.primary[0] += look.primary.requests;
        self.primary[1] += look.primary.errors;
        self.primary[2] += look.primary_slow;
        let (nc, np) = (self.canary[0] as f64, self.primary[0] as f64);
        if nc == 0.0 || np == 0.0 {
            return Step::Continue;
        }
        for event in [1, 2] {
            let (xc, xp) = (self.canary[event] as f64, self.primary[event] as f64);
            let pooled = (xc + xp) / (nc + np);
            if pooled <= 0.0 || pooled >= 1.0 {
                continue;
            }
            let se = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / np)).sqrt();
            if (xc / nc - xp / np) / se > self.z_crit {
                return Step::Rollback;
            }
        }
        Step::Continue
    }
}

/// Which events an [`OracleSprt`] tests, and against which alternative ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OracleMetric {
    /// `true`: errors; `false`: requests above b*.
    pub errors: bool,
    /// The alternative canary/primary rate ratio (the true one when the canary regresses).
    pub psi: f64,
    /// This metric's share of α.
    pub alpha: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SprtState {
    Open(f64),
    AcceptedNull,
}

/// Wald's SPRT of ratio 1 against the true ratio, on the canary's share of each look's
/// events (the same conditional-binomial likelihood verdict uses, but with the
/// alternative known): the practical limit for looks to detection at level α.
#[derive(Debug, Clone)]
pub(crate) struct OracleSprt {
    metrics: Vec<(OracleMetric, SprtState)>,
    beta: f64,
}

impl OracleSprt {
    /// `beta` is the accepted miss rate for each metric's lower boundary.
    pub(crate) fn new(metrics: Vec<OracleMetric>, beta: f64) -> Self {
        Self {
            metrics: metrics
                .into_iter()
                .map(|m| (m, SprtState::Open(0.0)))
                .collect(),
            beta,
        }
    }

    pub(crate) fn observe(&mut self, look: &LookData<'_>) -> Step {
        let (nc, np) = (look.canary.requests as f64, look.primary.requests as f64);
        let mut all_accepted = true;
        for (metric, state) in &mut self.metrics {
            let SprtState::Open(llr) = state else {
                continue;
            };
            if nc > 0.0 && np > 0.0 {
                let (xc, xp) = if metric.errors {
                    (look.canary.errors, look.primary.errors)
                } else {
                    (look.canary_slow, look.primary_slow)
                };
                let theta0 = nc / (nc + np);
                let theta1 = nc * metric.psi / (nc * metric.psi + np);
                *llr += xc as f64 * (theta1 / theta0).ln()
                    + xp as f64 * ((1.0 - theta1) / (1.0 - theta0)).ln();
            }
            if *llr >= ((1.0 - self.beta) / metric.alpha).ln() {
                return Step::Rollback;
            }
            if *llr <= (self.beta / (1.0 - metric.alpha)).ln() {
                *state = SprtState::AcceptedNull;
            } else {
                all_accepted = false;
            }
        }
        if all_accepted {
            Step::Promote
        } else {
            Step::Continue
        }
    }
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
            canary_slow: canary.buckets.get(2).copied().unwrap_or(0),
            primary_slow: primary.buckets.get(2).copied().unwrap_or(0),
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
        let mut z = RepeatedZTest::new(0.01);
        let same = arm(10_000, 50, 0);
        assert_eq!(z.observe(&look(&same, &same)), Step::Continue);
        let mut z = RepeatedZTest::new(0.01);
        let worse = arm(10_000, 150, 0);
        assert_eq!(z.observe(&look(&worse, &same)), Step::Rollback);
    }

    #[test]
    fn sprt_promotes_identical_arms_and_fails_a_tripled_rate() {
        let metric = OracleMetric {
            errors: true,
            psi: 3.0,
            alpha: 0.01,
        };
        let (canary, primary) = (arm(1000, 10, 0), arm(1000, 10, 0));
        let mut sprt = OracleSprt::new(vec![metric], 0.05);
        let steps: Vec<Step> = (0..10)
            .map(|_| sprt.observe(&look(&canary, &primary)))
            .collect();
        assert_eq!(steps.last(), Some(&Step::Promote));
        let worse = arm(1000, 30, 0);
        let mut sprt = OracleSprt::new(vec![metric], 0.05);
        let steps: Vec<Step> = (0..10)
            .map(|_| sprt.observe(&look(&worse, &primary)))
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
