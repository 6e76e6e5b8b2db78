//! The evidence behind a verdict, stored as JSON with every look and decision.
//!
//! Unbounded or undefined quantities are `None` (JSON `null`), never infinities or NaN.

use serde::{Deserialize, Serialize};

use super::config::OnInconclusive;
use super::plan::DispersionSource;

/// One arm's totals over the looks so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmTotals {
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests slower than each edge of the plan.
    pub slower: Vec<u64>,
}

/// Interpolated percentiles of one arm's latency over the analysis (seconds), for people
/// only: never used for decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_s: Option<f64>,
    pub p95_s: Option<f64>,
    pub p99_s: Option<f64>,
}

/// One metric's canary-versus-primary tests: the fail test, the promotion test and the
/// confidence sequence of the ratio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioEvidence {
    /// Canary events / canary requests; `None` without canary requests.
    pub canary_rate: Option<f64>,
    /// Primary events / primary requests; `None` without primary requests.
    pub primary_rate: Option<f64>,
    /// Looks where both arms served requests and at least one event happened.
    pub informative_looks: u32,
    /// Dispersion τ of the log ratio the tests were tempered with.
    pub dispersion: f64,
    /// Tempered information about the log ratio gathered so far (Σ κ x θ(1 − θ)).
    pub information: f64,
    /// Tolerated relative increase m; the fail test's null is ratio ≤ 1 + m.
    pub margin: f64,
    /// Current e-value of "ratio > 1 + m" (capped at 1e300).
    pub e_value: f64,
    /// Largest such e-value so far.
    pub max_e_value: f64,
    /// Anytime-valid p-value of the fail test, min over looks of 1 / e-value.
    pub p_value: f64,
    /// The e-value at which the fail test rejects (for a latency boundary: of the family).
    pub threshold: f64,
    /// The fail test has rejected at some look: a regression is established.
    pub crossed: bool,
    /// Promotion needs a test to reject "ratio ≥ this" (1 + promotion margin).
    pub promotion_limit: f64,
    /// Current e-value of "ratio < promotion_limit".
    pub promotion_e_value: f64,
    /// The promotion test has rejected "ratio ≥ promotion_limit" at some look.
    pub promotion_passed: bool,
    /// Ratio of highest (tempered) likelihood on the reporting lattice.
    pub ratio_estimate: Option<f64>,
    /// Anytime-valid one-sided (1 − α) lower bound on the ratio (0 when below the lattice).
    pub ratio_lower: f64,
    /// Anytime-valid one-sided (1 − α) upper bound on the ratio; `None` when unbounded.
    pub ratio_upper: Option<f64>,
}

/// One latency boundary's comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundaryEvidence {
    /// The boundary, seconds.
    pub le_s: f64,
    /// The primary's share above it over the look-back, when the analysis opened.
    pub primary_lookback_fraction: Option<f64>,
    /// Whether promotion needs this boundary.
    pub promotion: bool,
    /// The tests on the share of requests above it.
    #[serde(flatten)]
    pub ratio: RatioEvidence,
}

/// The latency family: the mean of the boundaries' fail e-values, one test at its share of α.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FamilyEvidence {
    /// Current e-value (mean over boundaries).
    pub e_value: f64,
    /// Largest so far.
    pub max_e_value: f64,
    /// 1 / alpha_per_test.
    pub threshold: f64,
    /// The family has rejected: a latency regression is established.
    pub crossed: bool,
}

/// A one-sample test of the canary's own rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateEvidence {
    /// The tested rate.
    pub rate: f64,
    /// Canary events counted against it.
    pub canary_events: u64,
    /// Canary requests.
    pub canary_requests: u64,
    /// Current e-value (capped at 1e300).
    pub e_value: f64,
    /// Anytime-valid p-value.
    pub p_value: f64,
    /// The e-value at which it rejects.
    pub threshold: f64,
    /// It has rejected at some look.
    pub crossed: bool,
}

/// Looks, time and traffic used against the analysis' budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetEvidence {
    /// Looks allowed.
    pub max_looks: u32,
    /// Time allowed since the analysis opened, milliseconds.
    pub max_duration_ms: Option<u64>,
    /// Time since the analysis opened at the last look, milliseconds.
    pub elapsed_ms: u64,
    /// What happens when the budget runs out undecided.
    pub on_inconclusive: OnInconclusive,
    /// The budget ran out without a decision.
    pub exhausted: bool,
    /// Consecutive looks so far in which the canary served nothing while the primary did.
    pub no_traffic_looks: u32,
    /// Such looks that fail the canary.
    pub no_traffic_limit: u32,
}

/// Where the dispersion came from, and its per-arm values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispersionEvidence {
    /// Per-arm τ of the error rate.
    pub error: f64,
    /// Per-arm τ of the share above each latency boundary, in boundary order.
    pub latency: Vec<f64>,
    /// Configured, measured, or unmeasured.
    #[serde(flatten)]
    pub source: DispersionSource,
}

/// Evidence after the looks observed so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Looks observed (including uninformative ones).
    pub looks: u32,
    /// The canary's totals over all looks.
    pub canary: ArmTotals,
    /// The primary's totals over all looks.
    pub primary: ArmTotals,
    /// The plan's latency edges (seconds), which `slower` counts refer to.
    pub edges: Vec<f64>,
    /// Canary percentiles over the analysis.
    pub canary_latency: Percentiles,
    /// Primary percentiles over the analysis.
    pub primary_latency: Percentiles,
    /// Overall false-rollback budget (also each promotion test's level).
    pub alpha: f64,
    /// Share of α given to each fail test (Bonferroni).
    pub alpha_per_test: f64,
    /// Error-rate comparison.
    pub error: RatioEvidence,
    /// "Canary error rate < negligible rate", the other way to pass errors for promotion.
    pub negligible_error: Option<RateEvidence>,
    /// Latency comparisons, one per boundary.
    pub latency: Vec<BoundaryEvidence>,
    /// The latency family's fail test.
    pub latency_family: FamilyEvidence,
    /// Absolute guard on the canary's error rate, when configured.
    pub slo_error: Option<RateEvidence>,
    /// Absolute guard on the canary's share above the SLO latency, when configured.
    pub slo_latency: Option<RateEvidence>,
    /// The dispersion every test was tempered with.
    pub dispersion: DispersionEvidence,
    /// Promotion waits for at least this many canary requests.
    pub min_canary_requests: u64,
    /// Every promotion test has passed and the canary served enough requests.
    pub promotion_ready: bool,
    /// Rough estimate of further canary requests before promotion could pass; `None` when
    /// passed, failed, or when more traffic alone is not expected to help.
    pub canary_requests_needed: Option<u64>,
    /// The same as looks at the information each look has carried so far.
    pub looks_needed: Option<u32>,
    /// Budget and traffic.
    pub budget: BudgetEvidence,
}
