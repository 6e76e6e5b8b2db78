//! Counters read at one instant, and the exact counts between two such readings.
//!
//! Each look reads every arm's cumulative counters per series (per process: the queries
//! sum within one scrape target, whose series reset together) and keeps them; the counts
//! of a look are the differences to the previous look's counters, series by series
//! (docs/operations.md, "Where the counts come from"):
//!
//! - `v_now − v_prev` when the counter did not go down;
//! - `v_now` when it went down: the process restarted and counts from 0 again;
//! - `v_now` for a series the previous reading did not have (a new pod, a first 5xx);
//! - nothing for a series that is gone.
//!
//! The sum over series is then exactly what Prometheus scraped between the two readings:
//! whole numbers, no extrapolation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ArmCounts, ArmPair};
use crate::domain::Millis;
use crate::judge::latency::Bucket;

/// One counter per series: the series' key (its grouping labels, `k=v,…`) → value.
pub type SeriesValues = BTreeMap<String, f64>;

/// One arm's cumulative counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmCounters {
    /// The newest sample time (Unix ms) of the arm's request series; `None` when the arm
    /// has no series (a canary that has not served yet).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<Millis>,
    /// Requests per series.
    #[serde(rename = "r", default)]
    pub requests: SeriesValues,
    /// Failed requests per series.
    #[serde(rename = "e", default)]
    pub errors: SeriesValues,
    /// Cumulative latency buckets: boundary in seconds (`+Inf` as `inf`) → per series.
    #[serde(rename = "b", default)]
    pub buckets: BTreeMap<String, SeriesValues>,
}

/// Both arms' counters read at the same instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// When they were read (the queries' evaluation time, Unix ms).
    #[serde(rename = "at")]
    pub read_at: Millis,
    pub canary: ArmCounters,
    pub primary: ArmCounters,
}

/// What two readings say about the time between them.
#[derive(Debug, Clone, PartialEq)]
pub enum Increments {
    /// Counts of both arms between the two readings.
    Counts(ArmPair),
    /// Prometheus has no sample of this arm newer than at the previous reading (it scrapes
    /// less often than verdict looks): the look carries no evidence.
    NoNewSample {
        arm: &'static str,
        sampled_at: Millis,
    },
}

impl Counters {
    /// The counts since `previous`, or why there are none.
    pub fn since(&self, previous: &Counters) -> Increments {
        for (arm, now, before) in [
            ("canary", &self.canary, &previous.canary),
            ("primary", &self.primary, &previous.primary),
        ] {
            if let (Some(now), Some(before)) = (now.sampled_at, before.sampled_at) {
                if now <= before {
                    return Increments::NoNewSample {
                        arm,
                        sampled_at: now,
                    };
                }
            }
        }
        Increments::Counts(ArmPair {
            canary: self.canary.since(&previous.canary),
            primary: self.primary.since(&previous.primary),
        })
    }
}

impl ArmCounters {
    /// This arm's counts since `previous`, series by series.
    pub fn since(&self, previous: &ArmCounters) -> ArmCounts {
        let mut buckets: Vec<Bucket> = self
            .buckets
            .iter()
            .filter_map(|(le, series)| {
                let before = previous.buckets.get(le);
                Some(Bucket {
                    le: parse_le_key(le)?,
                    count: increase(series, before),
                })
            })
            .collect();
        buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
        ArmCounts {
            requests: increase(&self.requests, Some(&previous.requests)),
            errors: increase(&self.errors, Some(&previous.errors)),
            buckets,
        }
    }

    /// The number of stored values (series × kinds), for sizing.
    pub fn len(&self) -> usize {
        self.requests.len()
            + self.errors.len()
            + self.buckets.values().map(BTreeMap::len).sum::<usize>()
    }

    /// Whether no series was read at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sum over series of each series' increase since `before` (see the module doc).
pub fn increase(now: &SeriesValues, before: Option<&SeriesValues>) -> f64 {
    now.iter()
        .map(|(key, &v)| match before.and_then(|b| b.get(key)) {
            Some(&prev) if v >= prev => v - prev,
            // Went down (a restart) or is new: it counted from 0.
            _ => v,
        })
        .sum()
}

/// The key under which a bucket boundary (seconds) is stored.
pub fn le_key(le_seconds: f64) -> String {
    if le_seconds.is_infinite() {
        "inf".to_owned()
    } else {
        // `{}` prints the shortest text that reads back to the same f64.
        format!("{le_seconds}")
    }
}

fn parse_le_key(key: &str) -> Option<f64> {
    match key {
        "inf" => Some(f64::INFINITY),
        other => other.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pairs: &[(&str, f64)]) -> SeriesValues {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn arm(t: Option<Millis>, requests: &[(&str, f64)], errors: &[(&str, f64)]) -> ArmCounters {
        ArmCounters {
            sampled_at: t,
            requests: series(requests),
            errors: series(errors),
            buckets: BTreeMap::new(),
        }
    }

    #[test]
    fn increments_are_differences_per_series_with_resets_and_new_series() {
        let before = series(&[("pod=a", 100.0), ("pod=b", 50.0), ("pod=gone", 7.0)]);
        // a grew by 20, b restarted and counted 3 since, c is new with 4.
        let now = series(&[("pod=a", 120.0), ("pod=b", 3.0), ("pod=c", 4.0)]);
        assert_eq!(increase(&now, Some(&before)), 27.0);
        assert_eq!(increase(&now, None), 127.0);
        assert_eq!(increase(&series(&[]), Some(&before)), 0.0);
    }

    #[test]
    fn a_first_error_series_counts_from_zero() {
        let before = arm(Some(1_000), &[("i=x", 10.0)], &[]);
        let now = arm(Some(16_000), &[("i=x", 25.0)], &[("i=x", 2.0)]);
        let counts = now.since(&before);
        assert_eq!((counts.requests, counts.errors), (15.0, 2.0));
    }

    #[test]
    fn buckets_are_differenced_per_boundary_and_sorted() {
        let mut before = ArmCounters::default();
        before
            .buckets
            .insert(le_key(0.025), series(&[("i=x", 10.0)]));
        before
            .buckets
            .insert(le_key(f64::INFINITY), series(&[("i=x", 12.0)]));
        let mut now = before.clone();
        now.buckets.insert(le_key(0.025), series(&[("i=x", 15.0)]));
        now.buckets
            .insert(le_key(f64::INFINITY), series(&[("i=x", 20.0)]));
        now.buckets.insert(le_key(0.1), series(&[("i=x", 18.0)]));
        let counts = now.since(&before);
        let got: Vec<(f64, f64)> = counts.buckets.iter().map(|b| (b.le, b.count)).collect();
        assert_eq!(got, [(0.025, 5.0), (0.1, 18.0), (f64::INFINITY, 8.0)]);
    }

    #[test]
    fn no_newer_sample_is_no_evidence_not_an_error() {
        let previous = Counters {
            read_at: 10_000,
            canary: arm(Some(9_000), &[("i=x", 10.0)], &[]),
            primary: arm(Some(9_500), &[("i=y", 10.0)], &[]),
        };
        let stale = Counters {
            read_at: 14_000,
            canary: arm(Some(9_000), &[("i=x", 10.0)], &[]),
            primary: arm(Some(13_000), &[("i=y", 30.0)], &[]),
        };
        assert_eq!(
            stale.since(&previous),
            Increments::NoNewSample {
                arm: "canary",
                sampled_at: 9_000
            }
        );
        // A canary without any series yet is not stale: it has served nothing.
        let fresh = Counters {
            read_at: 20_000,
            canary: ArmCounters::default(),
            primary: arm(Some(19_000), &[("i=y", 40.0)], &[]),
        };
        match fresh.since(&previous) {
            Increments::Counts(pair) => {
                assert_eq!(pair.canary.requests, 0.0);
                assert_eq!(pair.primary.requests, 30.0);
            }
            other => panic!("expected counts, got {other:?}"),
        }
    }

    #[test]
    fn counters_round_trip_through_json_compactly() {
        let mut c = Counters {
            read_at: 1,
            canary: arm(Some(2), &[("instance=a:1,job=j", 3.0)], &[]),
            primary: ArmCounters::default(),
        };
        c.canary.buckets.insert(
            le_key(f64::INFINITY),
            series(&[("instance=a:1,job=j", 3.0)]),
        );
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Counters>(&text).unwrap(), c);
        assert!(!text.contains("sampled_at"), "{text}");
        assert_eq!(parse_le_key("inf"), Some(f64::INFINITY));
        assert_eq!(parse_le_key("0.25"), Some(0.25));
        assert_eq!(parse_le_key("NaN"), None);
    }
}
