//! What Prometheus 2.42 answers about one counter series, for the scrape model of
//! `verdict evaluate` (docs/statistics.md, "Counts from Prometheus"):
//!
//! - [`increase`]: `increase(x[range])` at a time, with Prometheus' extrapolation to the
//!   window's edges (promql/functions.go `extrapolatedRate` in Prometheus 2.42);
//! - [`latest`]: an instant query of the raw counter (the newest sample at or before the
//!   time, within the 5-minute look-back);
//! - [`counter_increment`]: the per-series differencing of two such readings.
//!
//! A series is its samples as (Unix milliseconds, value), sorted by time.

/// One scraped sample: (Unix milliseconds, value).
pub type Sample = (i64, f64);

/// Prometheus' default look-back of an instant query (`--query.lookback-delta`).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A query Prometheus would refuse, or a series it could not hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// A range selector of zero or negative length.
    #[error("the range of increase() must be above 0 ms, got {0} ms")]
    EmptyRange(i64),
    /// Samples out of time order (Prometheus refuses out-of-order samples).
    #[error("samples must be in strictly increasing time order (at {0} ms)")]
    Unordered(i64),
}

/// Checks that a series is in strictly increasing time order.
pub fn check_series(series: &[Sample]) -> Result<(), QueryError> {
    match series.windows(2).find(|w| w[1].0 <= w[0].0) {
        Some(w) => Err(QueryError::Unordered(w[1].0)),
        None => Ok(()),
    }
}

/// The samples a range selector `[range]` evaluated at `at` selects: those with
/// `at − range ≤ t ≤ at` (Prometheus 2.x includes both ends; 3.0 made the start open).
pub fn in_range(series: &[Sample], at_ms: i64, range_ms: i64) -> &[Sample] {
    let start = at_ms - range_ms;
    let first = series.partition_point(|s| s.0 < start);
    let end = series.partition_point(|s| s.0 <= at_ms);
    &series[first..end.max(first)]
}

/// `increase(x[range])` evaluated at `at` on one counter series, exactly as Prometheus
/// 2.42 computes it; `Ok(None)` where Prometheus returns no sample (fewer than two samples
/// in the range).
///
/// The rules, in Prometheus' order:
/// 1. the raw increase is last − first, plus the value before every drop (a counter reset);
/// 2. the first and last samples' distances to the range's edges are measured, and the
///    average spacing of the samples in the range;
/// 3. a counter that went up is not extrapolated below zero: the distance to the start is
///    at most `sampled interval × first value / raw increase`;
/// 4. each edge within 1.1 × the average spacing is extrapolated to all the way; a farther
///    edge only by half the average spacing (the series is taken to start or end there);
/// 5. the raw increase is scaled by (sampled interval + both extensions) / sampled interval.
pub fn increase(series: &[Sample], at_ms: i64, range_ms: i64) -> Result<Option<f64>, QueryError> {
    if range_ms <= 0 {
        return Err(QueryError::EmptyRange(range_ms));
    }
    let samples = in_range(series, at_ms, range_ms);
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Ok(None);
    };
    if samples.len() < 2 {
        return Ok(None);
    }
    check_series(samples)?;
    let mut result = last.1 - first.1;
    for pair in samples.windows(2) {
        if pair[1].1 < pair[0].1 {
            result += pair[0].1;
        }
    }
    let range_start = at_ms - range_ms;
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (at_ms - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (samples.len() - 1) as f64;
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut extrapolate_to = sampled;
    extrapolate_to += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    extrapolate_to += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    Ok(Some(result * (extrapolate_to / sampled)))
}

/// The newest sample at or before `at` within the look-back, as an instant query of the
/// raw counter returns it; `None` when the series has none.
pub fn latest(series: &[Sample], at_ms: i64) -> Option<Sample> {
    let end = series.partition_point(|s| s.0 <= at_ms);
    let sample = *series.get(end.checked_sub(1)?)?;
    (sample.0 > at_ms - LOOKBACK_MS).then_some(sample)
}

/// A series' increment between two readings of the raw counter: `now − previous`, or
/// `now` when the counter went down (a reset: the process restarted and counts from 0),
/// or `now` when the series did not exist at the previous reading (a new pod, a first
/// error). Exact whenever the counter was scraped at both readings and reset at most once
/// between them.
pub fn counter_increment(previous: Option<f64>, now: f64) -> f64 {
    match previous {
        Some(before) if now >= before => now - before,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// One sample every 30 s from `phase_s`, counting up by `step` each time.
    fn regular(phase_s: i64, n: usize, start: f64, step: f64) -> Vec<Sample> {
        (0..n)
            .map(|i| (1000 * (phase_s + 30 * i as i64), start + step * i as f64))
            .collect()
    }

    #[test]
    fn both_edges_within_the_threshold_are_extrapolated_all_the_way() {
        // Samples at 69 s (20) and 99 s (26) in [40 s, 100 s]: 6 over 30 s, start edge
        // 29 s away (< 33 s), end 1 s away: 6 × 60/30 = 12.
        let s = vec![(9_000, 5.0), (39_000, 10.0), (69_000, 20.0), (99_000, 26.0)];
        assert!(near(increase(&s, 100_000, 60_000).unwrap_or(None), 12.0));
        // At 69 s over [9 s, 69 s]: 3 samples, both ends are included (2.x semantics):
        // 15 over 60 s, edges 0 s away: 15.
        assert!(near(increase(&s, 69_000, 60_000).unwrap_or(None), 15.0));
    }

    #[test]
    fn a_30s_scrape_doubles_a_60s_window() {
        // The scaling issue 10 is about: with a 30 s scrape a 60 s window holds two
        // samples, and the increase between them is doubled whatever the phase.
        for phase in [1, 7, 15, 29] {
            let s = regular(phase, 6, 100.0, 30.0);
            let got = increase(&s, 120_000, 60_000).unwrap_or(None);
            assert!(near(got, 60.0), "phase {phase}: {got:?}");
        }
    }

    #[test]
    fn a_far_edge_is_extrapolated_by_half_an_interval() {
        // Samples at 50 s and 65 s in [0 s, 100 s]: spacing 15 s, threshold 16.5 s.
        // The counter at 50 s is 100, up by 10: zero is 150 s before, so the start is
        // 50 s away (≥ 16.5 s) → 7.5 s; the end is 35 s away → 7.5 s. 10 × 30/15 = 20.
        let s = vec![(50_000, 100.0), (65_000, 110.0)];
        assert!(near(increase(&s, 100_000, 100_000).unwrap_or(None), 20.0));
    }

    #[test]
    fn a_new_counter_is_not_extrapolated_below_zero() {
        // A new series: first sample 2 at 10 s, then 6 at 40 s, in [0 s, 60 s]. The zero
        // point is 30 × 2/4 = 15 s before the first sample, but the start edge is only
        // 10 s away, so 10 s it is; the end is 20 s away: 4 × (30 + 10 + 20)/30 = 8.
        let s = vec![(10_000, 2.0), (40_000, 6.0)];
        assert!(near(increase(&s, 60_000, 60_000).unwrap_or(None), 8.0));
        // First sample 3 at 25 s, then 6 at 55 s, in [0 s, 60 s]: zero is 30 × 3/3 = 30 s
        // before, the edge 25 s: extrapolated to the edge, 3 × (30 + 25 + 5)/30 = 6. The
        // three requests before the first scrape are only guessed at.
        let s = vec![(25_000, 3.0), (55_000, 6.0)];
        assert!(near(increase(&s, 60_000, 60_000).unwrap_or(None), 6.0));
        // First sample 1 at 20 s, then 11 at 50 s, in [0, 60 s]: zero 3 s before the first
        // sample (< 20 s), so the start extension is 3 s: 10 × (30 + 3 + 10)/30.
        let s = vec![(20_000, 1.0), (50_000, 11.0)];
        assert!(near(
            increase(&s, 60_000, 60_000).unwrap_or(None),
            10.0 * 43.0 / 30.0
        ));
    }

    #[test]
    fn the_zero_point_is_taken_before_the_threshold_as_in_prometheus_2_42() {
        // Samples 4 at 40 s and 10 at 55 s in [0 s, 60 s]: spacing 15 s, threshold 16.5 s.
        // The start edge is 40 s away but the zero point only 15 × 4/6 = 10 s: 2.42 takes
        // 10 s and, being under the threshold, extrapolates by it: 6 × (15 + 10 + 5)/15 =
        // 12. (Prometheus ≥ 2.51 checks the threshold first and gets 11.)
        let s = vec![(40_000, 4.0), (55_000, 10.0)];
        assert!(near(increase(&s, 60_000, 60_000).unwrap_or(None), 12.0));
    }

    /// One case checked against the real Prometheus engine: (series in whole seconds,
    /// evaluation time s, range ms).
    type EngineCase = (Vec<(i64, f64)>, i64, i64);

    /// The cases checked against the real Prometheus engine (`promtool test rules`).
    fn engine_cases() -> Vec<EngineCase> {
        vec![
            // 30 s scrape at phase 7, a 60 s window: both edges extrapolated.
            (
                vec![
                    (7, 100.0),
                    (37, 131.0),
                    (67, 158.0),
                    (97, 190.0),
                    (127, 221.0),
                ],
                120,
                60_000,
            ),
            // A new series: the zero point limits the extrapolation to the start.
            (vec![(20, 1.0), (50, 11.0)], 60, 60_000),
            // A reset.
            (
                vec![(5, 100.0), (35, 130.0), (65, 5.0), (95, 20.0)],
                100,
                100_000,
            ),
            // Both edges far: half an interval each.
            (vec![(50, 100.0), (65, 110.0)], 100, 100_000),
            // One sample in the range: no result.
            (vec![(10, 5.0), (40, 10.0)], 30, 25_000),
            // 15 s scrape, an uneven window in milliseconds as verdict renders it.
            (
                vec![
                    (3, 0.0),
                    (18, 4.0),
                    (33, 9.0),
                    (48, 13.0),
                    (63, 20.0),
                    (78, 26.0),
                ],
                80,
                61_234,
            ),
            // A sample exactly at the range's start is in the range (2.x).
            (vec![(9, 5.0), (39, 10.0), (69, 20.0)], 69, 60_000),
            // The zero point before the threshold (2.42's order).
            (vec![(40, 4.0), (55, 10.0)], 60, 60_000),
        ]
    }

    /// promtool's series notation for samples at whole seconds, one sample per second.
    fn promtool_values(samples: &[(i64, f64)]) -> String {
        let mut out = Vec::new();
        let mut next = 0;
        for (t, v) in samples {
            if *t > next {
                out.push(format!("_x{}", t - next));
            }
            out.push(format!("{v:?}"));
            next = t + 1;
        }
        out.join(" ")
    }

    #[test]
    fn increase_matches_the_prometheus_engine_bit_for_bit() {
        // scripts/test.sh installs Debian's prometheus package, which ships promtool.
        let promtool = std::env::var_os("VERDICT_TEST_PROMTOOL")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/promtool".into());
        assert!(
            promtool.is_file(),
            "promtool not found at {}: install it with `apt-get install -y prometheus` or set \
             VERDICT_TEST_PROMTOOL",
            promtool.display()
        );
        let mut series = String::new();
        let mut exprs = String::new();
        for (n, (samples, at_s, range_ms)) in engine_cases().into_iter().enumerate() {
            series.push_str(&format!(
                "      - series: 'x{{case=\"{n}\"}}'\n        values: '{}'\n",
                promtool_values(&samples)
            ));
            let ms: Vec<Sample> = samples.iter().map(|(t, v)| (t * 1000, *v)).collect();
            let expected = match increase(&ms, at_s * 1000, range_ms) {
                Ok(Some(v)) => {
                    format!("\n          - labels: '{{case=\"{n}\"}}'\n            value: {v:?}")
                }
                Ok(None) => " []".to_owned(),
                Err(e) => panic!("case {n}: {e}"),
            };
            exprs.push_str(&format!(
                "      - expr: 'increase(x{{case=\"{n}\"}}[{range_ms}ms])'\n        eval_time: {at_s}s\n        exp_samples:{expected}\n"
            ));
            if let Some((_, v)) = latest(&ms, at_s * 1000) {
                exprs.push_str(&format!(
                    "      - expr: 'x{{case=\"{n}\"}}'\n        eval_time: {at_s}s\n        exp_samples:\n          - labels: 'x{{case=\"{n}\"}}'\n            value: {v:?}\n"
                ));
            }
        }
        let file = format!(
            "evaluation_interval: 1s\ntests:\n  - interval: 1s\n    input_series:\n{series}    promql_expr_test:\n{exprs}"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let path = dir.path().join("increase.yml");
        std::fs::write(&path, &file).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let out = std::process::Command::new(&promtool)
            .arg("test")
            .arg("rules")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
        assert!(
            out.status.success(),
            "promtool disagrees:\n{}{}\n{file}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_counter_reset_adds_the_value_before_the_drop() {
        // 100 → 130 → (restart) 5 → 20: raw increase 20 − 100 + 130 = 50 over 90 s in
        // [0 s, 100 s]; edges 5 s away (< 33 s): 50 × 100/90.
        let s = vec![
            (5_000, 100.0),
            (35_000, 130.0),
            (65_000, 5.0),
            (95_000, 20.0),
        ];
        assert!(near(
            increase(&s, 100_000, 100_000).unwrap_or(None),
            50.0 * 100.0 / 90.0
        ));
    }

    #[test]
    fn fewer_than_two_samples_give_nothing() {
        let s = vec![(10_000, 5.0), (40_000, 10.0)];
        assert_eq!(increase(&s, 30_000, 25_000), Ok(None));
        assert_eq!(increase(&[], 30_000, 25_000), Ok(None));
        // A 5 s window between two 15 s scrapes holds one sample at most.
        let s = regular(0, 10, 0.0, 10.0);
        assert_eq!(increase(&s, 62_000, 5_000), Ok(None));
    }

    #[test]
    fn a_flat_counter_increases_by_zero() {
        let s = regular(3, 4, 7.0, 0.0);
        assert!(near(increase(&s, 100_000, 60_000).unwrap_or(None), 0.0));
    }

    #[test]
    fn bad_queries_are_refused() {
        let s = regular(0, 3, 0.0, 1.0);
        assert_eq!(increase(&s, 60_000, 0), Err(QueryError::EmptyRange(0)));
        assert_eq!(
            increase(&s, 60_000, -5_000),
            Err(QueryError::EmptyRange(-5_000))
        );
        let unordered = vec![(10_000, 1.0), (10_000, 2.0), (20_000, 3.0)];
        assert_eq!(
            increase(&unordered, 30_000, 30_000),
            Err(QueryError::Unordered(10_000))
        );
        assert_eq!(check_series(&unordered), Err(QueryError::Unordered(10_000)));
        assert_eq!(check_series(&s), Ok(()));
    }

    #[test]
    fn an_instant_query_reads_the_newest_sample_within_the_lookback() {
        let s = vec![(10_000, 5.0), (40_000, 10.0)];
        assert_eq!(latest(&s, 9_999), None);
        assert_eq!(latest(&s, 10_000), Some((10_000, 5.0)));
        assert_eq!(latest(&s, 39_999), Some((10_000, 5.0)));
        assert_eq!(latest(&s, 45_000), Some((40_000, 10.0)));
        // Five minutes after the last scrape the series is gone.
        assert_eq!(latest(&s, 40_000 + LOOKBACK_MS), None);
        assert_eq!(latest(&[], 0), None);
    }

    #[test]
    fn differencing_handles_resets_and_new_series() {
        assert_eq!(counter_increment(Some(100.0), 130.0), 30.0);
        assert_eq!(counter_increment(Some(130.0), 130.0), 0.0);
        // Reset: the process restarted and has counted 7 since.
        assert_eq!(counter_increment(Some(130.0), 7.0), 7.0);
        // A series that did not exist at the previous look counts from 0.
        assert_eq!(counter_increment(None, 4.0), 4.0);
    }
}
