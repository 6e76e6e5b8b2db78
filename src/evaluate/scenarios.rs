//! The evaluation's scenarios, each a variation of the reference workload.

use super::scrape::{CountPath, ScrapeSettings};
use crate::sli::simulator::{
    BodyShift, CanaryEffect, TailRegression, TrafficPattern, Warmup, Workload,
};

/// One row of the evaluation table.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short identifier, matched by `--scenario`.
    pub id: String,
    /// What differs from the reference workload, for the table.
    pub label: String,
    /// Traffic, base error rate and latency.
    pub workload: Workload,
    /// What the canary does differently.
    pub effect: CanaryEffect,
    /// Draw the diurnal phase per run, so runs start at every time of "day".
    pub random_phase: bool,
    /// The canary should be rolled back (a rollback is a detection, not a false rollback).
    pub regression: bool,
    /// The judge's `sloErrorRate` for this scenario, when it tests the SLO guard.
    pub slo_error_rate: Option<f64>,
    /// Counts read through a simulated Prometheus instead of exactly (src/evaluate/scrape.rs).
    pub scrape: Option<ScrapeSettings>,
}

impl Scenario {
    /// Whether the canary is worse than the primary (a rollback is a detection, not a
    /// false rollback).
    pub fn is_regression(&self) -> bool {
        self.regression
    }
}

fn scenario(id: &str, label: &str, workload: Workload, effect: CanaryEffect) -> Scenario {
    let e = &effect;
    let regression = e.error_ratio > 1.0
        || e.latency_shift > 1.0
        || e.tail.is_some()
        || e.body.is_some()
        || e.traffic_share == 0.0;
    Scenario {
        id: id.to_owned(),
        label: label.to_owned(),
        workload,
        effect,
        random_phase: false,
        regression,
        slo_error_rate: None,
        scrape: None,
    }
}

fn errors(ratio: f64) -> CanaryEffect {
    CanaryEffect {
        error_ratio: ratio,
        ..CanaryEffect::none()
    }
}

fn latency(shift: f64) -> CanaryEffect {
    CanaryEffect {
        latency_shift: shift,
        ..CanaryEffect::none()
    }
}

fn with_base(rate: f64) -> Workload {
    Workload {
        base_error_rate: rate,
        ..Workload::reference()
    }
}

/// All scenarios, in table order.
pub fn all() -> Vec<Scenario> {
    let reference = Workload::reference;
    let noisy = |sd: f64| Workload {
        noise_sd: sd,
        ..reference()
    };
    let low = || Workload {
        total_rps: 5.0,
        ..reference()
    };
    let mut diurnal = scenario(
        "aa-diurnal",
        "A/A diurnal (±60 %, 1 h period)",
        Workload {
            // A compressed day: one analysis (30 min) sees half a period, so traffic and
            // shares move a lot between looks.
            pattern: TrafficPattern::Diurnal {
                amplitude: 0.6,
                period_s: 3600.0,
                phase: 0.0,
            },
            ..reference()
        },
        CanaryEffect::none(),
    );
    diurnal.random_phase = true;
    let mut out = vec![
        scenario("aa-steady", "A/A steady", reference(), CanaryEffect::none()),
        diurnal,
        scenario(
            "aa-noise-0.25",
            "A/A overdispersed sd 0.25",
            noisy(0.25),
            CanaryEffect::none(),
        ),
        scenario(
            "aa-noise-0.5",
            "A/A overdispersed sd 0.5",
            noisy(0.5),
            CanaryEffect::none(),
        ),
        scenario(
            "aa-low",
            "A/A low traffic 5 req/s",
            low(),
            CanaryEffect::none(),
        ),
    ];
    for base in [0.001, 0.01] {
        for ratio in [1.5, 2.0, 3.0] {
            out.push(scenario(
                &format!("err-{ratio}x-{}%", base * 100.0),
                &format!("errors ×{ratio} at {}%", base * 100.0),
                with_base(base),
                errors(ratio),
            ));
        }
    }
    out.push(scenario(
        "err-2x-0.5%",
        "errors ×2 at 0.5%",
        reference(),
        errors(2.0),
    ));
    out.push(scenario(
        "err-2x-0.5%-low",
        "errors ×2 at 0.5%, 5 req/s",
        low(),
        errors(2.0),
    ));
    for shift in [1.1, 1.2, 1.5] {
        out.push(scenario(
            &format!("lat-x{shift}"),
            &format!("latency ×{shift}"),
            reference(),
            latency(shift),
        ));
    }
    out.push(scenario(
        "lat-p95-1.2x-below-b",
        "p95 ×1.2, unchanged above 250 ms",
        reference(),
        CanaryEffect {
            body: Some(BodyShift {
                factor: 1.2,
                up_to_s: 0.25,
            }),
            ..CanaryEffect::none()
        },
    ));
    out.push(scenario(
        "lat-median-1.3x",
        "median ×1.3, p99 unchanged",
        reference(),
        CanaryEffect {
            latency_shift: 1.3,
            shift_pivot_quantile: Some(0.99),
            ..CanaryEffect::none()
        },
    ));
    out.push(scenario(
        "tail-5%-x4",
        "tail: 5% of requests ×4",
        reference(),
        CanaryEffect {
            tail: Some(TailRegression {
                fraction: 0.05,
                factor: 4.0,
            }),
            ..CanaryEffect::none()
        },
    ));
    out.extend(real_traffic());
    out.extend(scraped());
    out
}

/// Pods per arm in the scrape scenarios, each scraped at its own phase.
pub const SCRAPE_PODS: u32 = 2;

/// The reference workload read through Prometheus with a 30 s and a 15 s scrape: the old
/// `increase()` path (no target: it shows the problem of issue 10) and per-series
/// differencing (docs/statistics.md, "Counts from Prometheus").
fn scraped() -> Vec<Scenario> {
    let through = |mut s: Scenario, interval_s: u32, path: CountPath| {
        s.scrape = Some(ScrapeSettings {
            interval_s,
            pods_per_arm: SCRAPE_PODS,
            path,
        });
        s
    };
    let reference = Workload::reference;
    let mut out = Vec::new();
    for interval_s in [30, 15] {
        out.extend([
            through(
                scenario(
                    &format!("aa-scrape-{interval_s}s-increase"),
                    &format!("A/A, {interval_s} s scrape, counts by increase() (old path)"),
                    reference(),
                    CanaryEffect::none(),
                ),
                interval_s,
                CountPath::Increase,
            ),
            through(
                scenario(
                    &format!("aa-scrape-{interval_s}s"),
                    &format!("A/A, {interval_s} s scrape, counts by differencing"),
                    reference(),
                    CanaryEffect::none(),
                ),
                interval_s,
                CountPath::Difference,
            ),
            through(
                scenario(
                    &format!("err-2x-0.5%-scrape-{interval_s}s"),
                    &format!("errors ×2 at 0.5%, {interval_s} s scrape, counts by differencing"),
                    reference(),
                    errors(2.0),
                ),
                interval_s,
                CountPath::Difference,
            ),
        ]);
    }
    out
}

/// What real traffic does that the reference workload does not: bursts on both arms,
/// latency tails that swell and shrink, a canary at its SLO, one that gets no traffic, one
/// that warms up.
fn real_traffic() -> Vec<Scenario> {
    let reference = Workload::reference;
    let mut slo = scenario(
        "slo-at-limit-noise-0.5",
        "canary mean error rate at the 1% SLO, noise sd 0.5, primary 5% better",
        Workload {
            noise_sd: 0.5,
            base_error_rate: 0.01 / 1.05,
            ..reference()
        },
        CanaryEffect {
            error_ratio: 1.05,
            ..CanaryEffect::none()
        },
    );
    // At the SLO and within the error margin: not a regression the judge should act on.
    slo.regression = false;
    slo.slo_error_rate = Some(0.01);
    let mut warmup = scenario(
        "canary-warmup",
        "canary slow share ×2 for 3 looks, then equal",
        reference(),
        CanaryEffect {
            warmup: Some(Warmup {
                until_s: 180.0,
                slow_factor: 2.0,
            }),
            ..CanaryEffect::none()
        },
    );
    warmup.regression = false;
    vec![
        scenario(
            "aa-bursty",
            "A/A bursty (noise sd 0.4 on errors and latency, each arm)",
            Workload {
                noise_sd: 0.4,
                latency_noise_sd: 0.4,
                ..reference()
            },
            CanaryEffect::none(),
        ),
        scenario(
            "aa-latency-noise-0.5",
            "A/A latency noise sd 0.5",
            Workload {
                latency_noise_sd: 0.5,
                ..reference()
            },
            CanaryEffect::none(),
        ),
        slo,
        scenario(
            "no-traffic",
            "canary gets no traffic",
            reference(),
            CanaryEffect {
                traffic_share: 0.0,
                ..CanaryEffect::none()
            },
        ),
        warmup,
    ]
}

/// The scenarios whose id contains any of `filters` (all when empty).
pub fn select(filters: &[String]) -> Result<Vec<Scenario>, String> {
    let every = all();
    if filters.is_empty() {
        return Ok(every);
    }
    let chosen: Vec<Scenario> = every
        .iter()
        .filter(|s| filters.iter().any(|f| s.id.contains(f.as_str())))
        .cloned()
        .collect();
    if chosen.is_empty() {
        let ids: Vec<&str> = every.iter().map(|s| s.id.as_str()).collect();
        return Err(format!(
            "no scenario matches {filters:?}; scenarios are: {}",
            ids.join(", ")
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_regressions_are_marked() {
        let all = all();
        let mut ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        assert!(all
            .iter()
            .filter(|s| s.id.starts_with("aa-"))
            .all(|s| !s.is_regression()));
        let not_aa_nor_regression: Vec<&str> = all
            .iter()
            .filter(|s| !s.id.starts_with("aa-") && !s.is_regression())
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            not_aa_nor_regression,
            vec!["slo-at-limit-noise-0.5", "canary-warmup"]
        );
        assert!(all.iter().any(|s| s.id == "err-1.5x-0.1%"));
    }

    #[test]
    fn filter_matches_substrings_and_refuses_unknown_names() {
        let lat = select(&["lat-".to_owned()]).unwrap_or_default();
        assert_eq!(lat.len(), 5);
        assert!(select(&["nope".to_owned()]).is_err());
        assert_eq!(select(&[]).map(|v| v.len()), Ok(all().len()));
    }
}
