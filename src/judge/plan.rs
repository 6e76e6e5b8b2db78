//! What an analysis fixes when it opens, from the primary's history: the latency
//! boundaries it tests and each metric's dispersion (docs/statistics.md §3, §5).
//!
//! Pure: the caller reads the history (per-interval counts of the primary over the
//! look-back) and stores the plan with the analysis, so every replica and every replay
//! judges with the same plan.

use serde::{Deserialize, Serialize};

use super::config::{Dispersion, JudgeConfig};
use super::dispersion;
use super::latency::{count_above, quantile_estimate, Bucket};

/// One interval of the primary's history (counts may be extrapolated reals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryInterval {
    /// Requests served.
    pub requests: f64,
    /// Requests that failed.
    pub errors: f64,
    /// Cumulative latency histogram of the interval.
    pub buckets: Vec<Bucket>,
}

/// A boundary whose "share of requests slower than it" is compared between the arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boundary {
    /// Index into [`Plan::edges`].
    pub edge: usize,
    /// The boundary in seconds (= `edges[edge]`), for people reading the plan.
    pub le_s: f64,
    /// Share of the primary's requests above it over the look-back (`None` in plans not
    /// made from a history).
    pub primary_fraction: Option<f64>,
    /// Per-arm dispersion τ of that share.
    pub dispersion: f64,
    /// Promotion needs this boundary's promotion test too. Only boundaries where the
    /// primary has at least [`PROMOTION_MIN_FRACTION`] slow requests: a rarer event would
    /// make promotion wait for traffic no rollout has.
    pub promotion: bool,
}

/// Where the dispersion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum DispersionSource {
    /// The canary's metadata or the server's configuration fixed it.
    Configured,
    /// Measured on this many intervals of the primary's history.
    Measured { intervals: u32 },
    /// The history was too short to measure it: the default was used.
    Unmeasured { intervals: u32 },
}

/// The primary's look-back, summarised for reasons and the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrimaryProfile {
    /// Requests in the look-back.
    pub requests: f64,
    /// Its error rate; `None` without requests.
    pub error_rate: Option<f64>,
    /// Interpolated percentiles (seconds), for people only.
    pub p50_s: Option<f64>,
    pub p95_s: Option<f64>,
    pub p99_s: Option<f64>,
}

/// What an analysis fixed when it opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Finite latency bucket edges in seconds, ascending: `ArmLook::slower` counts the
    /// requests above each.
    pub edges: Vec<f64>,
    /// The latency boundaries tested (fail: all; promotion: those marked).
    pub boundaries: Vec<Boundary>,
    /// The edge of the absolute latency SLO, when one is configured.
    pub slo_edge: Option<usize>,
    /// Per-arm dispersion τ of the error rate.
    pub error_dispersion: f64,
    /// Per-arm dispersion τ of the share above the SLO latency.
    pub slo_latency_dispersion: f64,
    /// How the dispersion was obtained.
    pub dispersion_source: DispersionSource,
    /// The primary's look-back.
    pub primary: PrimaryProfile,
}

/// A boundary with fewer slow requests in the primary than this is never needed for
/// promotion (it still fails a canary that regresses there).
pub const PROMOTION_MIN_FRACTION: f64 = 0.01;

/// The body of the distribution tested for latency: between the primary's p40 and p99
/// (an edge at the median, which a noisy look-back may put a little above or below it,
/// belongs to the body either way).
const BODY: std::ops::RangeInclusive<f64> = PROMOTION_MIN_FRACTION..=0.6;

/// At most this many body boundaries, spread over the body (targets in slow fraction).
const BODY_TARGETS: [f64; 4] = [0.5, 0.15, 0.04, 0.01];

/// Why a plan could not be made.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// A configured latency lies beyond every finite bucket edge.
    #[error(
        "{what} {ms} ms is above every latency bucket of the primary (largest {largest_ms} ms)"
    )]
    BeyondBuckets {
        /// Which setting.
        what: &'static str,
        /// Its value.
        ms: f64,
        /// The largest finite bucket edge.
        largest_ms: f64,
    },
    /// The histogram has no finite bucket edge although a latency setting needs one.
    #[error("{what} needs a latency histogram, but the primary's has no finite bucket")]
    NoBuckets {
        /// Which setting.
        what: &'static str,
    },
}

fn log_odds(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

/// The finite edges found in any interval, ascending and distinct.
fn edges_of(history: &[HistoryInterval]) -> Vec<f64> {
    let mut edges: Vec<f64> = history
        .iter()
        .flat_map(|h| h.buckets.iter().map(|b| b.le))
        .filter(|le| le.is_finite() && *le > 0.0)
        .collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    edges
}

/// The histogram's total (its `+Inf` count, or the largest count).
fn total_of(buckets: &[Bucket]) -> f64 {
    buckets
        .iter()
        .map(|b| b.count)
        .filter(|c| c.is_finite())
        .fold(0.0, f64::max)
}

/// The smallest edge at or above `seconds` (a threshold between edges is rounded up:
/// a request counts as slower only when it is certainly slower).
fn edge_at_or_above(edges: &[f64], seconds: f64, what: &'static str) -> Result<usize, PlanError> {
    let largest = *edges.last().ok_or(PlanError::NoBuckets { what })?;
    edges
        .iter()
        .position(|e| *e >= seconds * (1.0 - 1e-9))
        .ok_or(PlanError::BeyondBuckets {
            what,
            ms: seconds * 1000.0,
            largest_ms: largest * 1000.0,
        })
}

/// Picks the body boundaries: for each target slow fraction the nearest unused edge in
/// the body (log-odds distance). When the body holds no edge (coarse buckets), the one
/// edge nearest to 5 % slow.
fn body_edges(fractions: &[f64]) -> Vec<usize> {
    let candidates: Vec<usize> = (0..fractions.len())
        .filter(|&i| BODY.contains(&fractions[i]))
        .collect();
    if candidates.is_empty() {
        return (0..fractions.len())
            .filter(|&i| fractions[i] > 0.0 && fractions[i] < 1.0)
            .min_by(|&a, &b| {
                let d = |i: usize| (log_odds(fractions[i]) - log_odds(0.05)).abs();
                d(a).total_cmp(&d(b))
            })
            .into_iter()
            .collect();
    }
    let mut chosen: Vec<usize> = Vec::new();
    for target in BODY_TARGETS {
        let nearest = candidates
            .iter()
            .copied()
            .filter(|i| !chosen.contains(i))
            .min_by(|&a, &b| {
                let d = |i: usize| (log_odds(fractions[i]) - log_odds(target)).abs();
                d(a).total_cmp(&d(b))
            });
        chosen.extend(nearest);
    }
    chosen.sort_unstable();
    chosen
}

impl Plan {
    /// The plan of an analysis from the primary's per-interval history.
    ///
    /// `threshold_s` (the canary's `latencyThresholdMs`) adds a boundary; `slo_latency_s`
    /// (its `sloP95Ms`) fixes the SLO edge. Both are rounded up to the next bucket edge.
    pub fn new(
        config: &JudgeConfig,
        history: &[HistoryInterval],
        threshold_s: Option<f64>,
        slo_latency_s: Option<f64>,
    ) -> Result<Self, PlanError> {
        let edges = edges_of(history);
        let above = |h: &HistoryInterval, edge: usize| count_above(&h.buckets, edges[edge]) as f64;
        let hist_total: f64 = history.iter().map(|h| total_of(&h.buckets)).sum();
        let fractions: Vec<f64> = (0..edges.len())
            .map(|e| {
                let slow: f64 = history.iter().map(|h| above(h, e)).sum();
                if hist_total > 0.0 {
                    slow / hist_total
                } else {
                    0.0
                }
            })
            .collect();

        let mut chosen = body_edges(&fractions);
        // The tail: the first edge above the body where the primary has under 1 % slow
        // requests. A tail-only regression (a few requests much slower) shows there.
        let after = chosen.last().map_or(0, |e| e + 1);
        if let Some(tail) = (after..edges.len()).find(|&e| fractions[e] < PROMOTION_MIN_FRACTION) {
            chosen.push(tail);
        }
        if let Some(t) = threshold_s {
            let e = edge_at_or_above(&edges, t, "latencyThresholdMs")?;
            if !chosen.contains(&e) {
                chosen.push(e);
                chosen.sort_unstable();
            }
        }
        let slo_edge = slo_latency_s
            .map(|s| edge_at_or_above(&edges, s, "sloP95Ms"))
            .transpose()?;

        let intervals = history.iter().filter(|h| h.requests >= 1.0).count() as u32;
        let edges_ref = &edges;
        let hist_points = |e: usize| {
            history.iter().map(move |h| {
                (
                    total_of(&h.buckets),
                    count_above(&h.buckets, edges_ref[e]) as f64,
                )
            })
        };
        let (error_dispersion, source, measure): (f64, DispersionSource, bool) = match config
            .dispersion
        {
            Dispersion::Fixed(t) => (t, DispersionSource::Configured, false),
            Dispersion::Auto => {
                let (t, ok) = dispersion::measured(history.iter().map(|h| (h.requests, h.errors)));
                let source = if ok {
                    DispersionSource::Measured { intervals }
                } else {
                    DispersionSource::Unmeasured { intervals }
                };
                (t, source, true)
            }
        };
        let tau_at = |e: usize| {
            if measure {
                dispersion::measured(hist_points(e)).0
            } else {
                error_dispersion
            }
        };
        let boundaries = chosen
            .iter()
            .map(|&e| Boundary {
                edge: e,
                le_s: edges[e],
                primary_fraction: Some(fractions[e]),
                dispersion: tau_at(e),
                promotion: fractions[e] >= PROMOTION_MIN_FRACTION,
            })
            .collect();
        let slo_latency_dispersion = slo_edge.map_or(error_dispersion, tau_at);

        let requests: f64 = history.iter().map(|h| h.requests.max(0.0)).sum();
        let errors: f64 = history.iter().map(|h| h.errors.max(0.0)).sum();
        let merged: Vec<Bucket> = edges
            .iter()
            .enumerate()
            .map(|(e, le)| Bucket {
                le: *le,
                count: hist_total - fractions[e] * hist_total,
            })
            .chain(std::iter::once(Bucket {
                le: f64::INFINITY,
                count: hist_total,
            }))
            .collect();
        let primary = PrimaryProfile {
            requests,
            error_rate: (requests > 0.0).then(|| errors / requests),
            p50_s: quantile_estimate(&merged, 0.5),
            p95_s: quantile_estimate(&merged, 0.95),
            p99_s: quantile_estimate(&merged, 0.99),
        };
        Ok(Self {
            edges,
            boundaries,
            slo_edge,
            error_dispersion,
            slo_latency_dispersion,
            dispersion_source: source,
            primary,
        })
    }

    /// A plan with the given edges and boundaries and one fixed τ for every metric: for
    /// tests, benchmarks, and analyses stored before plans existed.
    pub fn fixed(edges: Vec<f64>, boundaries: &[(usize, bool)], dispersion: f64) -> Self {
        let boundaries = boundaries
            .iter()
            .filter(|(e, _)| *e < edges.len())
            .map(|&(edge, promotion)| Boundary {
                edge,
                le_s: edges[edge],
                primary_fraction: None,
                dispersion,
                promotion,
            })
            .collect();
        Self {
            edges,
            boundaries,
            slo_edge: None,
            error_dispersion: dispersion,
            slo_latency_dispersion: dispersion,
            dispersion_source: DispersionSource::Configured,
            primary: PrimaryProfile::default(),
        }
    }

    /// Counts of requests above each edge, from a cumulative histogram (one look's arm).
    pub fn slower(&self, buckets: &[Bucket]) -> Vec<u64> {
        self.edges
            .iter()
            .map(|e| count_above(buckets, *e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Dispersion;
    use super::*;

    const DEFAULT_LES: [f64; 11] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];

    /// A history whose every interval has 1000 requests distributed as `cdf` (share at
    /// or below each default edge).
    fn history(cdf: [f64; 11], errors: f64, intervals: usize) -> Vec<HistoryInterval> {
        let buckets: Vec<Bucket> = DEFAULT_LES
            .iter()
            .zip(cdf)
            .map(|(&le, c)| Bucket {
                le,
                count: (c * 1000.0_f64).round(),
            })
            .chain(std::iter::once(Bucket {
                le: f64::INFINITY,
                count: 1000.0,
            }))
            .collect();
        (0..intervals)
            .map(|i| HistoryInterval {
                requests: 1000.0,
                // Alternate a little so the error rate is not constant.
                errors: errors + if i % 2 == 0 { 1.0 } else { -1.0 },
                buckets: buckets.clone(),
            })
            .collect()
    }

    /// The reference latency (log-normal, median 50 ms, σ 0.6) on the default buckets.
    const REFERENCE: [f64; 11] = [
        0.0, 0.0, 0.132, 0.5, 0.876, 0.9963, 0.99994, 1.0, 1.0, 1.0, 1.0,
    ];

    #[test]
    fn reference_latency_gets_the_body_and_the_tail() {
        let plan = Plan::new(
            &JudgeConfig::recommended(),
            &history(REFERENCE, 5.0, 60),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let les: Vec<(f64, bool)> = plan
            .boundaries
            .iter()
            .map(|b| (b.le_s, b.promotion))
            .collect();
        // 25 ms has 86.8 % slow (outside the body), 50 ms 50 %, 100 ms 12.4 %, 250 ms 0.37 %.
        assert_eq!(les, vec![(0.05, true), (0.1, true), (0.25, false)]);
        assert!(plan.boundaries[1]
            .primary_fraction
            .is_some_and(|f| (f - 0.124).abs() < 1e-9));
        assert!(matches!(
            plan.dispersion_source,
            DispersionSource::Measured { intervals: 60 }
        ));
        // Constant counts: nothing but the floor.
        assert_eq!(plan.boundaries[0].dispersion, dispersion::FLOOR);
        let p95 = plan.primary.p95_s.unwrap_or(f64::NAN);
        assert!((0.1..0.25).contains(&p95), "{p95}");
    }

    #[test]
    fn coarse_buckets_fall_back_to_the_edge_nearest_five_percent() {
        // Everything between 25 ms and 100 ms, 3 % above 100 ms... and nothing in the body
        // but 100 ms: body = {100 ms}; no tail edge has < 1 % until 250 ms.
        let cdf = [0.0, 0.0, 0.0, 0.0, 0.97, 0.995, 1.0, 1.0, 1.0, 1.0, 1.0];
        let plan = Plan::new(
            &JudgeConfig::recommended(),
            &history(cdf, 5.0, 10),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let les: Vec<f64> = plan.boundaries.iter().map(|b| b.le_s).collect();
        assert_eq!(les, vec![0.1, 0.25]);
        // No edge in the body at all (0.5 % above 25 ms, 0.2 % above 50 ms): the edge
        // nearest to 5 % slow, for failing only, and the tail after it.
        let cdf = [0.0, 0.0, 0.995, 0.998, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let plan = Plan::new(
            &JudgeConfig::recommended(),
            &history(cdf, 5.0, 10),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let les: Vec<(f64, bool)> = plan
            .boundaries
            .iter()
            .map(|b| (b.le_s, b.promotion))
            .collect();
        assert_eq!(les, vec![(0.025, false), (0.05, false)]);
    }

    #[test]
    fn configured_latencies_round_up_to_an_edge_or_are_refused() {
        let config = JudgeConfig::recommended();
        let h = history(REFERENCE, 5.0, 10);
        let plan = Plan::new(&config, &h, Some(0.3), Some(0.2)).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan
            .boundaries
            .iter()
            .any(|b| b.le_s == 0.5 && !b.promotion));
        assert_eq!(plan.slo_edge.map(|e| plan.edges[e]), Some(0.25));
        let err = Plan::new(&config, &h, Some(30.0), None);
        assert!(
            matches!(err, Err(PlanError::BeyondBuckets { .. })),
            "{err:?}"
        );
        let no_buckets = vec![
            HistoryInterval {
                requests: 10.0,
                errors: 0.0,
                buckets: vec![]
            };
            10
        ];
        assert!(matches!(
            Plan::new(&config, &no_buckets, None, Some(0.2)),
            Err(PlanError::NoBuckets { .. })
        ));
        // Without a latency setting, no histogram simply means no latency boundary.
        let plan = Plan::new(&config, &no_buckets, None, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.boundaries.is_empty());
    }

    #[test]
    fn fixed_dispersion_is_used_everywhere_and_short_history_is_flagged() {
        let config = JudgeConfig {
            dispersion: Dispersion::Fixed(0.3),
            ..JudgeConfig::recommended()
        };
        let plan = Plan::new(&config, &history(REFERENCE, 5.0, 60), None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.error_dispersion, 0.3);
        assert!(plan.boundaries.iter().all(|b| b.dispersion == 0.3));
        assert_eq!(plan.dispersion_source, DispersionSource::Configured);
        let plan = Plan::new(
            &JudgeConfig::recommended(),
            &history(REFERENCE, 5.0, 3),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.error_dispersion, dispersion::UNMEASURED);
        assert_eq!(
            plan.dispersion_source,
            DispersionSource::Unmeasured { intervals: 3 }
        );
    }
}
