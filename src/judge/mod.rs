//! The judge: pure statistics. Counts in, evidence and verdict out.
//!
//! No IO, no clock, no async. Everything here is deterministic so that replaying the
//! stored looks of an analysis reproduces its decisions exactly (restarts and second
//! replicas continue an analysis with identical results).
//!
//! The method (docs/statistics.md): when an analysis opens, a [`Plan`] fixes the latency
//! boundaries to test and each metric's dispersion, measured on the primary's history.
//! At every look each metric — errors, and requests slower than each boundary — feeds
//! tempered mixture e-processes on the canary's share of the look's events: a fail test
//! ("ratio > 1 + margin") and a promotion test ("ratio < 1 + promotion margin"), both
//! valid however often they are looked at. Fail tests share α (errors, the latency
//! family, each SLO guard); promotion needs every promotion test to reject at α. An
//! analysis that cannot decide within its budget ends by `on_inconclusive`, and a canary
//! that gets no traffic fails.

pub mod config;
mod decide;
pub mod dispersion;
pub mod eprocess;
pub mod evidence;
mod format;
pub mod latency;
pub mod plan;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use config::{Budget, Dispersion, InvalidConfig, JudgeConfig, OnInconclusive};
use eprocess::{LogE, MeanProcess, RateProcess, RatioProcess, NEGLIGIBLE_MIXTURE};
pub use evidence::Evidence;
use evidence::{
    ArmTotals, BoundaryEvidence, BudgetEvidence, DispersionEvidence, FamilyEvidence, Percentiles,
    RateEvidence, RatioEvidence,
};
use latency::{quantile_estimate, Bucket};
pub use plan::{HistoryInterval, Plan, PlanError};

/// One arm's increments during one look (since the previous look).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmLook {
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests slower than each of the plan's edges ([`Plan::edges`], same order).
    pub slower: Vec<u64>,
}

/// Both arms' increments during one look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Look {
    /// The canary workload's increments.
    pub canary: ArmLook,
    /// The primary (baseline) workload's increments over the same window.
    pub primary: ArmLook,
    /// Time from the analysis' opening to the end of this look, milliseconds (for the
    /// time budget; 0 when unknown).
    pub elapsed_ms: u64,
}

/// What the judge concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Positive evidence that the canary is not worse: may be promoted.
    Pass,
    /// A regression is established, the canary gets no traffic, or the budget ran out.
    Fail,
    /// Not enough evidence either way yet.
    Wait,
}

/// Verdict, a one-sentence human reason with the numbers, and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The conclusion.
    pub verdict: Verdict,
    /// One sentence with the numbers behind the verdict.
    pub reason: String,
    /// Everything the verdict rests on.
    pub evidence: Evidence,
}

/// The sequential judge of one analysis.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    plan: Plan,
    looks: u32,
    canary: ArmTotals,
    primary: ArmTotals,
    elapsed_ms: u64,
    no_traffic_streak: u32,
    error: RatioProcess,
    latency: Vec<RatioProcess>,
    /// The latency family's fail test: the mean of the boundaries' e-values.
    latency_family: LogE,
    /// "Canary error rate < negligible rate"; `None` when turned off.
    negligible: Option<RateProcess>,
    /// The promotion test of errors: the ratio test, mixed with the negligible-rate test
    /// when that one takes part.
    error_promotion: LogE,
    slo_error: Option<MeanProcess>,
    slo_latency: Option<MeanProcess>,
}

/// exp, capped so that JSON can always encode it.
fn capped_exp(log: f64) -> f64 {
    log.min(690.0).exp()
}

/// ln(½ eᵃ + ½ eᵇ).
fn log_mean2(a: f64, b: f64) -> f64 {
    eprocess::log_sum_exp([a, b].into_iter()) - std::f64::consts::LN_2
}

fn add(total: &mut ArmTotals, look: &ArmLook, edges: usize) {
    total.requests = total.requests.saturating_add(look.requests);
    total.errors = total.errors.saturating_add(look.errors);
    total.slower.resize(edges, 0);
    for (t, s) in total.slower.iter_mut().zip(&look.slower) {
        *t = t.saturating_add(*s);
    }
}

fn slower_at(arm: &ArmLook, edge: usize) -> u64 {
    arm.slower.get(edge).copied().unwrap_or(0).min(arm.requests)
}

impl Judge {
    /// A judge with no looks yet; refuses an invalid configuration.
    pub fn new(config: JudgeConfig, plan: Plan) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let ratio = |margin: f64, tau: f64| {
            RatioProcess::new(
                1.0 + margin,
                1.0 + config.promotion_margin,
                dispersion::of_ratio(tau),
            )
        };
        Ok(Self {
            error: ratio(config.error_margin, plan.error_dispersion),
            latency: plan
                .boundaries
                .iter()
                .map(|b| ratio(config.latency_margin, b.dispersion))
                .collect(),
            // The negligible-rate test takes part only for a primary whose own error rate
            // over the look-back was below that rate (or is unknown): otherwise an equal
            // canary could never pass it, and mixing it in would halve the ratio test's
            // evidence for nothing (docs/statistics.md §6).
            negligible: (config.negligible_error_rate > 0.0
                && plan
                    .primary
                    .error_rate
                    .is_none_or(|r| r < config.negligible_error_rate))
            .then(|| {
                RateProcess::new(
                    config.negligible_error_rate,
                    plan.error_dispersion,
                    NEGLIGIBLE_MIXTURE,
                    false,
                )
            }),
            slo_error: config.slo_error_rate.map(MeanProcess::new),
            slo_latency: config
                .slo_slow_fraction
                .filter(|_| plan.slo_edge.is_some())
                .map(MeanProcess::new),
            canary: ArmTotals {
                slower: vec![0; plan.edges.len()],
                ..ArmTotals::default()
            },
            primary: ArmTotals {
                slower: vec![0; plan.edges.len()],
                ..ArmTotals::default()
            },
            config,
            plan,
            looks: 0,
            elapsed_ms: 0,
            no_traffic_streak: 0,
            latency_family: LogE::default(),
            error_promotion: LogE::default(),
        })
    }

    /// The analysis' settings.
    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// The analysis' plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Adds one look's increments.
    pub fn observe(&mut self, look: &Look) {
        let (c, p) = (&look.canary, &look.primary);
        self.looks += 1;
        self.elapsed_ms = self.elapsed_ms.max(look.elapsed_ms);
        let edges = self.plan.edges.len();
        add(&mut self.canary, c, edges);
        add(&mut self.primary, p, edges);
        if c.requests == 0 && p.requests > 0 {
            self.no_traffic_streak += 1;
        } else if c.requests > 0 {
            self.no_traffic_streak = 0;
        }
        let c_errors = c.errors.min(c.requests);
        self.error
            .observe(c.requests, p.requests, c_errors, p.errors.min(p.requests));
        for (process, boundary) in self.latency.iter_mut().zip(&self.plan.boundaries) {
            process.observe(
                c.requests,
                p.requests,
                slower_at(c, boundary.edge),
                slower_at(p, boundary.edge),
            );
        }
        if !self.latency.is_empty() {
            let mean = eprocess::log_sum_exp(self.latency.iter().map(|p| p.fail().now))
                - (self.latency.len() as f64).ln();
            self.latency_family.record(mean);
        }
        if let Some(n) = &mut self.negligible {
            n.observe(c_errors, c.requests);
        }
        let ratio = self.error.promotion().now;
        self.error_promotion.record(match &self.negligible {
            Some(n) => log_mean2(ratio, n.log_e().now),
            None => ratio,
        });
        if let Some(s) = &mut self.slo_error {
            s.observe(c_errors, c.requests);
        }
        if let (Some(s), Some(edge)) = (&mut self.slo_latency, self.plan.slo_edge) {
            s.observe(slower_at(c, edge), c.requests);
        }
    }

    fn ratio_evidence(
        &self,
        process: &RatioProcess,
        events: (u64, u64),
        promotion: LogE,
    ) -> RatioEvidence {
        let rate =
            |events: u64, requests: u64| (requests > 0).then(|| events as f64 / requests as f64);
        let interval = process.interval(self.config.alpha);
        let threshold = 1.0 / self.config.alpha_per_test();
        RatioEvidence {
            canary_rate: rate(events.0, self.canary.requests),
            primary_rate: rate(events.1, self.primary.requests),
            informative_looks: process.informative_looks(),
            dispersion: process.dispersion(),
            information: process.information(),
            margin: process.fail_null() - 1.0,
            e_value: capped_exp(process.fail().now),
            max_e_value: capped_exp(process.fail().max),
            p_value: (-process.fail().max).exp().min(1.0),
            threshold,
            crossed: process.fail().crossed(self.config.alpha_per_test()),
            promotion_limit: process.promotion_null(),
            promotion_e_value: capped_exp(promotion.now),
            promotion_passed: promotion.crossed(self.config.alpha),
            ratio_estimate: interval.estimate,
            ratio_lower: interval.lower,
            ratio_upper: interval.upper,
        }
    }

    fn rate_evidence(&self, rate: f64, log_e: LogE, events: u64, alpha: f64) -> RateEvidence {
        RateEvidence {
            rate,
            canary_events: events,
            canary_requests: self.canary.requests,
            e_value: capped_exp(log_e.now),
            p_value: (-log_e.max).exp().min(1.0),
            threshold: 1.0 / alpha,
            crossed: log_e.crossed(alpha),
        }
    }

    fn percentiles(arm: &ArmTotals, edges: &[f64]) -> Percentiles {
        let total = arm.requests as f64;
        let buckets: Vec<Bucket> = edges
            .iter()
            .zip(&arm.slower)
            .map(|(le, s)| Bucket {
                le: *le,
                count: total - *s as f64,
            })
            .chain(std::iter::once(Bucket {
                le: f64::INFINITY,
                count: total,
            }))
            .collect();
        let q = |p| {
            if edges.is_empty() {
                None
            } else {
                quantile_estimate(&buckets, p)
            }
        };
        Percentiles {
            p50_s: q(0.5),
            p95_s: q(0.95),
            p99_s: q(0.99),
        }
    }

    /// The evidence after the looks observed so far.
    pub fn evidence(&self) -> Evidence {
        let cfg = &self.config;
        let error = self.ratio_evidence(
            &self.error,
            (self.canary.errors, self.primary.errors),
            self.error_promotion,
        );
        let latency: Vec<BoundaryEvidence> = self
            .latency
            .iter()
            .zip(&self.plan.boundaries)
            .map(|(process, b)| BoundaryEvidence {
                le_s: b.le_s,
                primary_lookback_fraction: b.primary_fraction,
                promotion: b.promotion,
                ratio: self.ratio_evidence(
                    process,
                    (
                        self.canary.slower.get(b.edge).copied().unwrap_or(0),
                        self.primary.slower.get(b.edge).copied().unwrap_or(0),
                    ),
                    process.promotion(),
                ),
            })
            .collect();
        let latency_family = FamilyEvidence {
            e_value: capped_exp(self.latency_family.now),
            max_e_value: capped_exp(self.latency_family.max),
            threshold: 1.0 / cfg.alpha_per_test(),
            crossed: self.latency_family.crossed(cfg.alpha_per_test()),
        };
        let slo_latency_events = self
            .plan
            .slo_edge
            .and_then(|e| self.canary.slower.get(e).copied())
            .unwrap_or(0);
        let budget = &cfg.budget;
        let mut evidence = Evidence {
            looks: self.looks,
            canary: self.canary.clone(),
            primary: self.primary.clone(),
            edges: self.plan.edges.clone(),
            canary_latency: Self::percentiles(&self.canary, &self.plan.edges),
            primary_latency: Self::percentiles(&self.primary, &self.plan.edges),
            alpha: cfg.alpha,
            alpha_per_test: cfg.alpha_per_test(),
            error,
            negligible_error: self
                .negligible
                .as_ref()
                .map(|n| self.rate_evidence(n.theta0(), n.log_e(), self.canary.errors, cfg.alpha)),
            latency,
            latency_family,
            slo_error: self.slo_error.as_ref().map(|s| {
                let alpha = cfg.alpha_per_test();
                self.rate_evidence(s.theta0(), s.log_e(), self.canary.errors, alpha)
            }),
            slo_latency: self.slo_latency.as_ref().map(|s| {
                let alpha = cfg.alpha_per_test();
                self.rate_evidence(s.theta0(), s.log_e(), slo_latency_events, alpha)
            }),
            dispersion: DispersionEvidence {
                error: self.plan.error_dispersion,
                latency: self.plan.boundaries.iter().map(|b| b.dispersion).collect(),
                source: self.plan.dispersion_source,
            },
            min_canary_requests: cfg.min_canary_requests,
            promotion_ready: false,
            canary_requests_needed: None,
            looks_needed: None,
            budget: BudgetEvidence {
                max_looks: budget.max_looks,
                max_duration_ms: budget.max_duration_ms,
                elapsed_ms: self.elapsed_ms,
                on_inconclusive: budget.on_inconclusive,
                exhausted: false,
                no_traffic_looks: self.no_traffic_streak,
                no_traffic_limit: budget.no_traffic_looks,
            },
        };
        decide::complete(&mut evidence);
        evidence
    }

    /// The verdict after the looks observed so far.
    pub fn assess(&self) -> Assessment {
        let evidence = self.evidence();
        let (verdict, reason) = decide::decide(&evidence);
        Assessment {
            verdict,
            reason,
            evidence,
        }
    }

    /// Only the verdict, without building reasons (the evaluation's hot path).
    pub fn verdict(&self) -> Verdict {
        decide::verdict_only(self)
    }
}
