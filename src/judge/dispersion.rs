//! Measuring a service's extra-binomial dispersion from the primary's history
//! (docs/statistics.md §5).
//!
//! Model: in interval i an arm serves n_i requests of which x_i are events (errors, or
//! requests above a latency boundary), with x_i | f_i ~ Binomial(n_i, p · f_i) and the
//! per-interval factor f_i log-normal with mean 1 and log-sd τ (bursts, a bad pod, a
//! client cluster). Then
//!
//! ```text
//! E[Σ (x_i − n_i p̂)²] = p(1 − p)(N − 1) + p² s² (Σ n_i² − Σ n_i² / N),   s² = Var f = e^{τ²} − 1
//! ```
//!
//! with N = Σ n_i and p̂ = Σ x_i / N, which gives the method-of-moments estimate of s²
//! (clipped at 0) and τ = √ln(1 + s²).

/// Fewer intervals with traffic than this and τ is not estimated.
pub const MIN_INTERVALS: usize = 6;

/// The smallest τ ever used when it is measured: a hedge against what the look-back does
/// not show (a short look-back, a quiet hour).
pub const FLOOR: f64 = 0.05;

/// τ assumed when the history is too short to measure it.
pub const UNMEASURED: f64 = 0.25;

/// The largest τ an estimate may give (a broken series should not stop every test).
pub const CEILING: f64 = 2.0;

/// The method-of-moments τ from per-interval (requests, events); `None` with fewer than
/// [`MIN_INTERVALS`] intervals that served requests. Not floored: see [`FLOOR`].
pub fn estimate(intervals: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let points: Vec<(f64, f64)> = intervals
        .filter(|(n, x)| n.is_finite() && x.is_finite() && *n >= 1.0)
        .map(|(n, x)| (n, x.clamp(0.0, n)))
        .collect();
    if points.len() < MIN_INTERVALS {
        return None;
    }
    let total: f64 = points.iter().map(|(n, _)| n).sum();
    let events: f64 = points.iter().map(|(_, x)| x).sum();
    let p = events / total;
    if p <= 0.0 || p >= 1.0 {
        // No events (or nothing but events): nothing to measure; the tests gather no
        // information from such a metric anyway until events appear.
        return Some(0.0);
    }
    let residual: f64 = points.iter().map(|(n, x)| (x - n * p).powi(2)).sum();
    let sum_sq: f64 = points.iter().map(|(n, _)| n * n).sum();
    let spread = sum_sq - sum_sq / total;
    if spread <= 0.0 {
        return Some(0.0);
    }
    let s2 = ((residual - p * (1.0 - p) * (total - 1.0)) / (p * p * spread)).max(0.0);
    Some(s2.ln_1p().sqrt().min(CEILING))
}

/// τ as the tests use it: the estimate floored at [`FLOOR`], or [`UNMEASURED`].
pub fn measured(intervals: impl Iterator<Item = (f64, f64)>) -> (f64, bool) {
    match estimate(intervals) {
        Some(t) => (t.max(FLOOR), true),
        None => (UNMEASURED, false),
    }
}

/// τ of the log canary/primary ratio when each arm has per-look noise τ independently.
pub fn of_ratio(per_arm: f64) -> f64 {
    per_arm * std::f64::consts::SQRT_2
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Binomial, Distribution, StandardNormal};

    fn history(seed: u64, tau: f64, n: u64, p: f64, intervals: usize) -> Vec<(f64, f64)> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..intervals)
            .map(|_| {
                let z: f64 = rng.sample(StandardNormal);
                let f = (tau * z - tau * tau / 2.0).exp();
                let x = Binomial::new(n, (p * f).min(1.0)).map_or(0, |d| d.sample(&mut rng));
                (n as f64, x as f64)
            })
            .collect()
    }

    #[test]
    fn recovers_the_noise_it_was_given() {
        for (tau, p) in [(0.5, 0.005), (0.4, 0.12), (0.25, 0.01)] {
            let mut estimates: Vec<f64> = (0..200)
                .map(|s| estimate(history(s, tau, 3000, p, 60).into_iter()).unwrap_or(f64::NAN))
                .collect();
            estimates.sort_by(f64::total_cmp);
            let median = estimates[100];
            assert!(
                (median - tau).abs() < 0.1 * tau + 0.03,
                "τ {tau} at p {p}: median estimate {median}"
            );
        }
    }

    #[test]
    fn binomial_noise_alone_measures_near_zero() {
        let mut estimates: Vec<f64> = (0..200)
            .map(|s| estimate(history(s, 0.0, 3000, 0.005, 60).into_iter()).unwrap_or(f64::NAN))
            .collect();
        estimates.sort_by(f64::total_cmp);
        assert!(estimates[100] < 0.08, "{}", estimates[100]);
        assert!(estimates.iter().all(|t| (0.0..=CEILING).contains(t)));
    }

    #[test]
    fn short_or_empty_histories_are_not_measured() {
        assert_eq!(estimate([(100.0, 1.0); 5].into_iter()), None);
        assert_eq!(estimate([(0.0, 0.0); 60].into_iter()), None);
        assert_eq!(estimate([(100.0, 0.0); 60].into_iter()), Some(0.0));
        assert_eq!(measured([(100.0, 1.0); 3].into_iter()), (UNMEASURED, false));
        assert_eq!(measured([(100.0, 0.0); 60].into_iter()), (FLOOR, true));
        // NaN and negative counts are ignored or clamped, never propagated.
        let odd = [(f64::NAN, 1.0), (100.0, -3.0), (100.0, 250.0)];
        assert!(estimate(odd.into_iter().cycle().take(30)).is_some_and(f64::is_finite));
    }
}
