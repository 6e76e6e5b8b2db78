//! The judge: pure statistics. Counts in, evidence and verdict out.
//!
//! No IO, no clock, no async. Everything here is deterministic so that replaying
//! the stored looks of an analysis reproduces its decisions exactly (restarts and
//! second replicas continue an analysis with identical results).
//!
//! The method (DESIGN.md §5, docs/statistics.md): each metric — errors, and requests
//! slower than the boundary b* — is tested with a mixture e-process on the canary's share
//! of each look's events, which stays valid however often it is looked at and however
//! traffic shares and baseline rates move between looks. The fail tests share α
//! (Bonferroni); promotion needs an anytime-valid upper bound on the canary/primary ratio
//! within the promotion margin.

pub mod eprocess;
mod format;
pub mod latency;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use eprocess::{rate_log_e, rate_upper_bound, RatioProcess};
use format::{count, num, pct, ratio};

/// One arm's increments during one look (since the previous look).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmLook {
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests slower than the analysis' latency boundary b*.
    pub slow: u64,
    /// Requests slower than the absolute SLO latency (only used for the canary; 0 when no SLO).
    pub slo_slow: u64,
}

/// Both arms' increments during one look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Look {
    /// The canary workload's increments.
    pub canary: ArmLook,
    /// The primary (baseline) workload's increments over the same window.
    pub primary: ArmLook,
}

/// The dispersion τ the evaluation benchmark supports (see docs/statistics.md).
pub const DEFAULT_DISPERSION: f64 = 0.25;

/// Below this many events (both arms together) a metric's ratio is not estimable and
/// promotion rests on the canary's own rate bound instead (docs/statistics.md).
pub const FEW_EVENTS: u64 = 10;

fn default_dispersion() -> f64 {
    DEFAULT_DISPERSION
}

/// Settings of one analysis. Validated by [`JudgeConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Overall false-rollback budget shared by all fail tests (e.g. 0.01).
    pub alpha: f64,
    /// Tolerated relative increase of the canary's error rate before it counts as a regression (e.g. 0.2 = 20 %).
    pub error_margin: f64,
    /// Tolerated relative increase of the canary's slow fraction (requests above b*).
    pub latency_margin: f64,
    /// Promotion needs the upper confidence bound of canary/primary to be at most 1 + this.
    pub promotion_margin: f64,
    /// No promotion before the canary served this many requests.
    pub min_canary_requests: u64,
    /// Optional absolute guard on the canary's own error rate.
    pub slo_error_rate: Option<f64>,
    /// Optional absolute guard on the canary's fraction of requests above the SLO latency
    /// (0.05 when the SLO is "p95 below X ms").
    pub slo_slow_fraction: Option<f64>,
    /// Assumed standard deviation τ of per-look noise on the log canary/primary ratio
    /// (overdispersion: bursts, a bad pod, client clusters). Each look's evidence is
    /// discounted by 1 / (1 + τ² · information); 0 trusts the binomial model fully.
    #[serde(default = "default_dispersion")]
    pub dispersion: f64,
}

impl JudgeConfig {
    /// The defaults the evaluation benchmark supports (see docs/statistics.md).
    pub fn recommended() -> Self {
        Self {
            alpha: 0.01,
            error_margin: 0.1,
            latency_margin: 0.2,
            promotion_margin: 1.0,
            min_canary_requests: 1000,
            slo_error_rate: None,
            slo_slow_fraction: None,
            dispersion: DEFAULT_DISPERSION,
        }
    }

    /// Refuses values the statistics cannot honour, naming the field.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !(self.alpha > 0.0 && self.alpha <= 0.5) {
            return Err(InvalidConfig {
                field: "alpha",
                why: format!("must be in (0, 0.5], got {}", self.alpha),
            });
        }
        for (field, value) in [
            ("error_margin", self.error_margin),
            ("latency_margin", self.latency_margin),
            ("promotion_margin", self.promotion_margin),
        ] {
            // Margins above 19 would put the null beyond the confidence lattice (≈ 20).
            if !(value.is_finite() && (0.0..=19.0).contains(&value)) {
                return Err(InvalidConfig {
                    field,
                    why: format!("must be a finite number in [0, 19], got {value}"),
                });
            }
        }
        for (field, value) in [
            ("slo_error_rate", self.slo_error_rate),
            ("slo_slow_fraction", self.slo_slow_fraction),
        ] {
            if let Some(v) = value {
                if !(v > 0.0 && v < 1.0) {
                    return Err(InvalidConfig {
                        field,
                        why: format!("must be a rate in (0, 1), got {v}"),
                    });
                }
            }
        }
        if !(self.dispersion.is_finite() && (0.0..=2.0).contains(&self.dispersion)) {
            return Err(InvalidConfig {
                field: "dispersion",
                why: format!("must be in [0, 2], got {}", self.dispersion),
            });
        }
        Ok(())
    }

    /// How many fail tests share α.
    fn fail_tests(&self) -> u32 {
        2 + u32::from(self.slo_error_rate.is_some()) + u32::from(self.slo_slow_fraction.is_some())
    }
}

/// Why a [`JudgeConfig`] was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {why}")]
pub struct InvalidConfig {
    /// The refused field, as named in [`JudgeConfig`].
    pub field: &'static str,
    /// What is wrong with it, with the value.
    pub why: String,
}

/// What the judge concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Positive evidence that the canary is not worse: may be promoted.
    Pass,
    /// A regression is established.
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

/// Evidence after the looks observed so far. Stored as JSON with every look and decision.
///
/// Unbounded or undefined quantities are `None` (JSON `null`), never infinities or NaN.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Looks observed (including uninformative ones).
    pub looks: u32,
    /// The canary's totals over all looks.
    pub canary: ArmLook,
    /// The primary's totals over all looks.
    pub primary: ArmLook,
    /// Overall false-rollback budget.
    pub alpha: f64,
    /// Share of α given to each fail test (Bonferroni).
    pub alpha_per_test: f64,
    /// Error-rate comparison.
    pub error: RatioEvidence,
    /// Slow-request (latency) comparison.
    pub latency: RatioEvidence,
    /// Latency boundary b* in seconds, when the caller told the judge.
    pub latency_boundary_s: Option<f64>,
    /// Absolute guard on the canary's error rate, when configured.
    pub slo_error: Option<SloEvidence>,
    /// Absolute guard on the canary's slow fraction, when configured.
    pub slo_latency: Option<SloEvidence>,
    /// Promotion waits for at least this many canary requests.
    pub min_canary_requests: u64,
    /// Rough estimate of further canary requests before promotion could pass; `None` when
    /// passed, failed, or when more traffic alone is not expected to help.
    pub canary_requests_needed: Option<u64>,
}

/// One metric's canary-versus-primary evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioEvidence {
    /// Canary events / canary requests; `None` without canary requests.
    pub canary_rate: Option<f64>,
    /// Primary events / primary requests; `None` without primary requests.
    pub primary_rate: Option<f64>,
    /// Looks where both arms served requests and at least one event happened.
    pub informative_looks: u32,
    /// Tolerated relative increase m; the fail test's null is ratio ≤ 1 + m.
    pub margin: f64,
    /// Current e-value of "canary/primary ratio > 1 + m" (capped at 1e300).
    pub e_value: f64,
    /// Largest e-value so far.
    pub max_e_value: f64,
    /// Anytime-valid p-value, min over looks of 1 / e-value.
    pub p_value: f64,
    /// The e-value at which the test fails: 1 / alpha_per_test.
    pub threshold: f64,
    /// The e-value has reached the threshold at some look (a regression is established).
    pub crossed: bool,
    /// Ratio of highest (tempered) likelihood on the reporting lattice.
    pub ratio_estimate: Option<f64>,
    /// Anytime-valid one-sided (1 − α) lower bound on the ratio (0 when below the lattice).
    pub ratio_lower: f64,
    /// Anytime-valid one-sided (1 − α) upper bound on the ratio; `None` when unbounded.
    pub ratio_upper: Option<f64>,
    /// Promotion needs `ratio_upper` ≤ this (1 + promotion_margin).
    pub promotion_limit: f64,
    /// Fewer than [`FEW_EVENTS`] events in both arms: promotion rests on `canary_rate_upper`.
    pub few_events: bool,
    /// Anytime-valid (1 − α) upper bound on the canary's own rate.
    pub canary_rate_upper: Option<f64>,
    /// The bound `canary_rate_upper` must reach in the few-events rule: the SLO when one is
    /// configured, otherwise (1 + promotion_margin) × the primary's own upper bound.
    pub rate_limit: Option<f64>,
    /// Positive evidence that the canary is not worse on this metric.
    pub non_inferior: bool,
}

/// The absolute SLO guard on one canary rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloEvidence {
    /// The SLO rate θ_slo.
    pub slo_rate: f64,
    /// Canary events counted against it.
    pub canary_events: u64,
    /// Canary requests.
    pub canary_requests: u64,
    /// Current e-value of "canary rate > θ_slo" (capped at 1e300).
    pub e_value: f64,
    /// Anytime-valid p-value.
    pub p_value: f64,
    /// 1 / alpha_per_test.
    pub threshold: f64,
    /// The SLO breach is established.
    pub crossed: bool,
}

/// Which metric a ratio test is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Error,
    Latency,
}

/// The sequential judge of one analysis.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    looks: u32,
    canary: ArmLook,
    primary: ArmLook,
    latency_boundary_s: Option<f64>,
    error: RatioProcess,
    latency: RatioProcess,
    /// Largest log e-values of the SLO guards so far (crossing is permanent).
    slo_error_max_log_e: f64,
    slo_slow_max_log_e: f64,
}

/// exp, capped so that JSON can always encode it.
fn capped_exp(log: f64) -> f64 {
    log.min(690.0).exp()
}

impl Judge {
    /// A judge with no looks yet; refuses an invalid configuration.
    pub fn new(config: JudgeConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(Self {
            error: RatioProcess::new(1.0 + config.error_margin, config.dispersion),
            latency: RatioProcess::new(1.0 + config.latency_margin, config.dispersion),
            config,
            looks: 0,
            canary: ArmLook::default(),
            primary: ArmLook::default(),
            latency_boundary_s: None,
            slo_error_max_log_e: 0.0,
            slo_slow_max_log_e: 0.0,
        })
    }

    /// Records the latency boundary b* (seconds) so reasons and evidence can name it.
    /// Purely descriptive: the judge only ever sees the slow counts.
    pub fn with_latency_boundary(mut self, seconds: f64) -> Self {
        self.latency_boundary_s = seconds.is_finite().then_some(seconds);
        self
    }

    /// The analysis' settings.
    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// Adds one look's increments.
    pub fn observe(&mut self, look: &Look) {
        let (c, p) = (&look.canary, &look.primary);
        self.looks += 1;
        add(&mut self.canary, c);
        add(&mut self.primary, p);
        self.error
            .observe(c.requests, p.requests, c.errors, p.errors);
        self.latency.observe(c.requests, p.requests, c.slow, p.slow);
        // The SLO guards are one-sample tests on the canary's running totals; they are
        // evaluated at every look because crossing at any look is what Ville's bound covers.
        if let Some(slo) = self.config.slo_error_rate {
            let l = rate_log_e(self.canary.errors, self.canary.requests, slo);
            self.slo_error_max_log_e = self.slo_error_max_log_e.max(l);
        }
        if let Some(slo) = self.config.slo_slow_fraction {
            let l = rate_log_e(self.canary.slo_slow, self.canary.requests, slo);
            self.slo_slow_max_log_e = self.slo_slow_max_log_e.max(l);
        }
    }

    fn alpha_per_test(&self) -> f64 {
        self.config.alpha / f64::from(self.config.fail_tests())
    }

    fn ratio_evidence(&self, metric: Metric) -> RatioEvidence {
        let cfg = &self.config;
        let (process, margin, c_events, p_events, slo) = match metric {
            Metric::Error => (
                &self.error,
                cfg.error_margin,
                self.canary.errors,
                self.primary.errors,
                cfg.slo_error_rate,
            ),
            Metric::Latency => (
                &self.latency,
                cfg.latency_margin,
                self.canary.slow,
                self.primary.slow,
                None,
            ),
        };
        let rate =
            |events: u64, requests: u64| (requests > 0).then(|| events as f64 / requests as f64);
        let threshold = 1.0 / self.alpha_per_test();
        let interval = process.interval(cfg.alpha);
        let promotion_limit = 1.0 + cfg.promotion_margin;
        let few_events = c_events + p_events < FEW_EVENTS;
        let canary_rate_upper = rate_upper_bound(c_events, self.canary.requests, cfg.alpha);
        let rate_limit = match slo {
            Some(slo) => Some(slo),
            None => rate_upper_bound(p_events, self.primary.requests, cfg.alpha)
                .map(|u| u * promotion_limit),
        };
        let non_inferior = if few_events {
            matches!((canary_rate_upper, rate_limit), (Some(u), Some(l)) if u <= l)
        } else {
            interval.upper.is_some_and(|u| u <= promotion_limit)
        };
        RatioEvidence {
            canary_rate: rate(c_events, self.canary.requests),
            primary_rate: rate(p_events, self.primary.requests),
            informative_looks: process.informative_looks(),
            margin,
            e_value: capped_exp(process.log_e()),
            max_e_value: capped_exp(process.max_log_e()),
            p_value: (-process.max_log_e()).exp().min(1.0),
            threshold,
            crossed: process.max_log_e() >= threshold.ln(),
            ratio_estimate: interval.estimate,
            ratio_lower: interval.lower,
            ratio_upper: interval.upper,
            promotion_limit,
            few_events,
            canary_rate_upper,
            rate_limit,
            non_inferior,
        }
    }

    fn slo_evidence(&self, slo: Option<f64>, events: u64, max_log_e: f64) -> Option<SloEvidence> {
        let slo_rate = slo?;
        let threshold = 1.0 / self.alpha_per_test();
        Some(SloEvidence {
            slo_rate,
            canary_events: events,
            canary_requests: self.canary.requests,
            e_value: capped_exp(rate_log_e(events, self.canary.requests, slo_rate)),
            p_value: (-max_log_e).exp().min(1.0),
            threshold,
            crossed: max_log_e >= threshold.ln(),
        })
    }

    /// The evidence after the looks observed so far.
    pub fn evidence(&self) -> Evidence {
        let mut evidence = Evidence {
            looks: self.looks,
            canary: self.canary,
            primary: self.primary,
            alpha: self.config.alpha,
            alpha_per_test: self.alpha_per_test(),
            error: self.ratio_evidence(Metric::Error),
            latency: self.ratio_evidence(Metric::Latency),
            latency_boundary_s: self.latency_boundary_s,
            slo_error: self.slo_evidence(
                self.config.slo_error_rate,
                self.canary.errors,
                self.slo_error_max_log_e,
            ),
            slo_latency: self.slo_evidence(
                self.config.slo_slow_fraction,
                self.canary.slo_slow,
                self.slo_slow_max_log_e,
            ),
            min_canary_requests: self.config.min_canary_requests,
            canary_requests_needed: None,
        };
        evidence.canary_requests_needed = requests_needed(&evidence);
        evidence
    }

    /// The verdict after the looks observed so far.
    pub fn assess(&self) -> Assessment {
        let evidence = self.evidence();
        let (verdict, reason) = decide(&evidence, &self.config);
        Assessment {
            verdict,
            reason,
            evidence,
        }
    }
}

fn add(total: &mut ArmLook, look: &ArmLook) {
    total.requests = total.requests.saturating_add(look.requests);
    total.errors = total.errors.saturating_add(look.errors);
    total.slow = total.slow.saturating_add(look.slow);
    total.slo_slow = total.slo_slow.saturating_add(look.slo_slow);
}

/// Further canary requests before promotion could pass, roughly; `None` when no amount
/// of traffic is expected to help (the canary currently looks worse than the limit) or
/// nothing is missing.
///
/// Ratio regime: the log-width of the upper bound shrinks about like 1/√n, so
/// n_needed ≈ n · ((ln U − ln ψ̂) / (ln limit − ln ψ̂))². Few-events regime: with almost no
/// events the rate bound shrinks like 1/n, so n_needed ≈ n · U / limit.
fn requests_needed(e: &Evidence) -> Option<u64> {
    if e.error.crossed || e.latency.crossed {
        return None;
    }
    let n = e.canary.requests as f64;
    let mut needed = e.min_canary_requests.saturating_sub(e.canary.requests) as f64;
    if n == 0.0 || e.primary.requests == 0 {
        return (needed > 0.0).then_some(needed as u64);
    }
    for m in [&e.error, &e.latency] {
        if m.non_inferior {
            continue;
        }
        let total = if m.few_events {
            let (u, l) = (m.canary_rate_upper?, m.rate_limit?);
            n * u / l
        } else {
            let est = m.ratio_estimate?;
            if est >= m.promotion_limit {
                return None;
            }
            let upper = m
                .ratio_upper
                .unwrap_or(eprocess::lattice_factor(eprocess::CS_HALF_WIDTH + 1));
            let scale = (upper.ln() - est.ln()) / (m.promotion_limit.ln() - est.ln());
            n * scale * scale
        };
        needed = needed.max(total - n);
    }
    (needed > 0.0).then(|| needed.ceil() as u64)
}

/// The verdict and its one-sentence reason.
fn decide(e: &Evidence, cfg: &JudgeConfig) -> (Verdict, String) {
    let confidence = format::confidence(cfg.alpha);
    if let Some(reason) = fail_reason(e, &confidence) {
        return (Verdict::Fail, reason);
    }
    if e.canary.requests == 0 {
        return (
            Verdict::Wait,
            "waiting: no canary traffic yet, so nothing can be compared".into(),
        );
    }
    if e.primary.requests == 0 {
        return (
            Verdict::Wait,
            format!(
                "waiting: the primary served no requests while the canary served {}, so there is no baseline to compare against",
                count(e.canary.requests)
            ),
        );
    }
    let needed = match e.canary_requests_needed {
        Some(n) => format!("; need ~{} more canary requests", count(round2(n))),
        None => String::new(),
    };
    let missing: Vec<String> = [(&e.error, "error-rate"), (&e.latency, "slow-request")]
        .into_iter()
        .filter(|(m, _)| !m.non_inferior)
        .map(|(m, name)| missing_evidence(m, name))
        .collect();
    if !missing.is_empty() {
        return (
            Verdict::Wait,
            format!(
                "waiting for evidence after {} canary requests: {}{needed}",
                count(e.canary.requests),
                missing.join(" and ")
            ),
        );
    }
    if e.canary.requests < e.min_canary_requests {
        return (
            Verdict::Wait,
            format!(
                "waiting: canary not worse so far but served {} of the {} requests required before promotion{needed}",
                count(e.canary.requests),
                count(e.min_canary_requests)
            ),
        );
    }
    (
        Verdict::Pass,
        format!(
            "canary not worse than primary with {confidence} confidence after {} canary requests: {} and {}",
            count(e.canary.requests),
            bound_phrase(&e.error, "error-rate"),
            bound_phrase(&e.latency, "slow-request")
        ),
    )
}

/// Rounds to two significant digits: the estimate is rough and should look it.
fn round2(n: u64) -> u64 {
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    n.div_ceil(scale) * scale
}

fn bound_phrase(m: &RatioEvidence, name: &str) -> String {
    match (
        m.few_events,
        m.ratio_upper,
        m.canary_rate_upper,
        m.rate_limit,
    ) {
        (false, Some(u), _, _) => format!(
            "{name} ratio ≤ {} (limit {})",
            ratio(u),
            ratio(m.promotion_limit)
        ),
        (true, _, Some(u), Some(l)) => format!(
            "canary {name} rate ≤ {} (limit {}, too few events for a ratio)",
            pct(u),
            pct(l)
        ),
        _ => format!("{name} not bounded"),
    }
}

fn missing_evidence(m: &RatioEvidence, name: &str) -> String {
    if m.few_events {
        return match (m.canary_rate_upper, m.rate_limit) {
            (Some(u), Some(l)) => format!(
                "too few {name} events for a ratio and the canary's {name} rate could still be {} (needs ≤ {})",
                pct(u),
                pct(l)
            ),
            _ => format!("too few {name} events to bound the canary"),
        };
    }
    let upper = m.ratio_upper.map_or("unbounded".to_owned(), ratio);
    let now = match (m.canary_rate, m.primary_rate) {
        (Some(c), Some(p)) => format!(", canary {} vs primary {}", pct(c), pct(p)),
        _ => String::new(),
    };
    format!(
        "{name} ratio could still be up to {upper} (needs ≤ {}{now})",
        ratio(m.promotion_limit)
    )
}

fn fail_reason(e: &Evidence, confidence: &str) -> Option<String> {
    let boundary = e
        .latency_boundary_s
        .map_or("above the latency boundary".to_owned(), |b| {
            format!("slower than {}", format::seconds(b))
        });
    let tests = [
        (&e.error, "error rate".to_owned(), "regression"),
        (
            &e.latency,
            format!("share of requests {boundary}"),
            "latency regression",
        ),
    ];
    for (m, what, label) in tests {
        if m.crossed {
            return Some(format!(
                "canary {what} {} vs primary {} (ratio ≥ {} with {confidence} confidence, e-value {} ≥ {}): {label}",
                m.canary_rate.map_or("n/a".to_owned(), pct),
                m.primary_rate.map_or("n/a".to_owned(), pct),
                ratio(m.ratio_lower),
                num(m.max_e_value),
                num(m.threshold),
            ));
        }
    }
    let slos = [
        (&e.slo_error, "error rate", "error-rate SLO breach"),
        (
            &e.slo_latency,
            "share of requests above the SLO latency",
            "latency SLO breach",
        ),
    ];
    for (slo, what, label) in slos {
        if let Some(s) = slo.as_ref().filter(|s| s.crossed) {
            let rate = s.canary_events as f64 / s.canary_requests.max(1) as f64;
            return Some(format!(
                "canary {what} {} is above the SLO {} (e-value {} ≥ {}, p = {}): {label}",
                pct(rate),
                pct(s.slo_rate),
                num((1.0 / s.p_value).min(1e300)),
                num(s.threshold),
                format::p_value(s.p_value),
            ));
        }
    }
    None
}
