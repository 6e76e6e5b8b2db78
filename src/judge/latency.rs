//! Latency histograms: counting requests above a boundary, and percentiles for people.
//!
//! Counts arrive from Prometheus' `increase()`, so they are real numbers that may be
//! slightly non-integer, non-monotone across buckets or even negative after a counter
//! reset. Everything here tolerates that: counts are made monotone (as
//! `histogram_quantile` does), and integer results are rounded and clamped at 0.

use serde::{Deserialize, Serialize};

/// One cumulative histogram bucket: `count` requests took at most `le` seconds.
/// `le` is `f64::INFINITY` for the `+Inf` bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub le: f64,
    pub count: f64,
}

/// Finite, sorted, monotone buckets and the total (the `+Inf` count, or the largest count).
/// `None` when there is nothing usable or the total is not positive.
fn normalise(buckets: &[Bucket]) -> Option<(Vec<Bucket>, f64)> {
    let mut sorted: Vec<Bucket> = buckets
        .iter()
        .filter(|b| !b.le.is_nan() && b.count.is_finite())
        .copied()
        .collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| a.le.total_cmp(&b.le));
    let mut running = 0.0_f64;
    for b in &mut sorted {
        running = running.max(b.count.max(0.0));
        b.count = running;
    }
    let total = running;
    (total > 0.0).then_some((sorted, total))
}

/// Requests certainly slower than `boundary`: the total minus the cumulative count of the
/// smallest bucket with `le ≥ boundary`. A user-set boundary between two bucket edges is
/// thus rounded up to the next edge (a request counts as slow only when it is certainly
/// above that edge). Rounded to the nearest integer, at least 0; 0 for empty buckets or
/// when no finite bucket reaches the boundary.
pub fn count_above(buckets: &[Bucket], boundary: f64) -> u64 {
    if boundary.is_nan() {
        return 0;
    }
    let Some((sorted, total)) = normalise(buckets) else {
        return 0;
    };
    match sorted.iter().find(|b| b.le >= boundary && b.le.is_finite()) {
        Some(b) => (total - b.count).round().max(0.0) as u64,
        None => 0,
    }
}

/// An interpolated quantile estimate in the style of Prometheus' `histogram_quantile`,
/// for people only; never used for decisions (interpolation inside a bucket can be off
/// by tens of percent). Linear inside the bucket holding the rank, from 0 for the first
/// bucket; the largest finite boundary when the rank falls in `+Inf`. `None` without
/// data or for `q` outside [0, 1].
pub fn quantile_estimate(buckets: &[Bucket], q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let (sorted, total) = normalise(buckets)?;
    let rank = q * total;
    let mut prev_le = 0.0_f64;
    let mut prev_count = 0.0_f64;
    let mut last_finite = None;
    for b in &sorted {
        if !b.le.is_finite() {
            break;
        }
        if b.count >= rank {
            let lower = if b.le <= 0.0 { b.le } else { prev_le.min(b.le) };
            let width = b.count - prev_count;
            if width <= 0.0 {
                return Some(b.le);
            }
            return Some(lower + (b.le - lower) * (rank - prev_count) / width);
        }
        prev_le = b.le;
        prev_count = b.count;
        last_finite = Some(b.le);
    }
    last_finite
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus' default buckets with cumulative counts.
    fn buckets(counts: [f64; 12]) -> Vec<Bucket> {
        let les = [
            0.005,
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1.0,
            2.5,
            5.0,
            10.0,
            f64::INFINITY,
        ];
        les.iter()
            .zip(counts)
            .map(|(&le, count)| Bucket { le, count })
            .collect()
    }

    // 1000 requests: 500 by 50 ms, 900 by 100 ms, 990 by 250 ms, 1000 by 500 ms.
    fn sample() -> Vec<Bucket> {
        buckets([
            0.0, 0.0, 100.0, 500.0, 900.0, 990.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0,
        ])
    }

    #[test]
    fn quantile_beyond_finite_buckets_gives_the_largest_finite_edge() {
        let mut c = [0.0; 12];
        c[11] = 10.0;
        assert_eq!(quantile_estimate(&buckets(c), 0.95), Some(10.0));
    }

    #[test]
    fn count_above_rounds_a_threshold_up_to_the_next_edge() {
        let b = sample();
        assert_eq!(count_above(&b, 0.1), 100);
        assert_eq!(count_above(&b, 0.25), 10);
        // 0.2 is not an edge: the next edge is 0.25.
        assert_eq!(count_above(&b, 0.2), 10);
        assert_eq!(count_above(&b, 0.0), 1000);
        assert_eq!(count_above(&b, 20.0), 0);
        assert_eq!(count_above(&[], 0.1), 0);
        assert_eq!(count_above(&b, f64::NAN), 0);
    }

    #[test]
    fn count_above_tolerates_increase_artefacts() {
        // Extrapolated, slightly non-monotone, one negative count after a reset.
        let b = buckets([
            -0.2, 0.0, 99.6, 500.4, 899.7, 990.2, 1000.3, 1000.1, 1000.3, 1000.3, 1000.3, 1000.3,
        ]);
        // total 1000.3 − 990.2 = 10.1 → 10.
        assert_eq!(count_above(&b, 0.25), 10);
        // 1000.3 (max so far) − 1000.3 = 0 at 0.5 even though 1.0 reads 1000.1.
        assert_eq!(count_above(&b, 1.0), 0);
    }

    #[test]
    fn quantile_interpolates_like_histogram_quantile() {
        let b = sample();
        // p50 rank 500 lands exactly on le 0.05: 0.025 + 0.025 · 400/400 = 0.05.
        assert!((quantile_estimate(&b, 0.5).unwrap_or(f64::NAN) - 0.05).abs() < 1e-12);
        // p95: 0.1 + 0.15 · (950 − 900)/(990 − 900) = 0.18333.
        let p95 = quantile_estimate(&b, 0.95).unwrap_or(f64::NAN);
        assert!((p95 - 0.183_333_333).abs() < 1e-6, "{p95}");
        // p5 rank 50 in the first non-empty bucket (0.01, 0.025]: 0.01 + 0.015 · 50/100.
        let p5 = quantile_estimate(&b, 0.05).unwrap_or(f64::NAN);
        assert!((p5 - 0.0175).abs() < 1e-12, "{p5}");
        assert_eq!(quantile_estimate(&b, 1.5), None);
        assert_eq!(quantile_estimate(&[], 0.5), None);
    }
}
