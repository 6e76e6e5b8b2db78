//! The judge: pure statistics. Counts in, evidence and verdict out.
//!
//! No IO, no clock, no async. Everything here is deterministic so that replaying
//! the stored looks of an analysis reproduces its decisions exactly (restarts and
//! second replicas continue an analysis with identical results).
//!
//! SKELETON: the public shapes below are the contract the service codes against;
//! the statistics are built in this module (issue 3).

pub mod latency;

use serde::{Deserialize, Serialize};

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
    pub canary: ArmLook,
    pub primary: ArmLook,
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
}

impl JudgeConfig {
    /// The defaults the evaluation benchmark supports (see docs/statistics.md).
    pub fn recommended() -> Self {
        Self {
            alpha: 0.01,
            error_margin: 0.2,
            latency_margin: 0.2,
            promotion_margin: 0.5,
            min_canary_requests: 1000,
            slo_error_rate: None,
            slo_slow_fraction: None,
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
        Ok(())
    }
}

/// Why a [`JudgeConfig`] was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {why}")]
pub struct InvalidConfig {
    pub field: &'static str,
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
    pub verdict: Verdict,
    pub reason: String,
    pub evidence: Evidence,
}

/// Evidence after the looks observed so far. Stored as JSON with every look and decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub looks: u32,
    pub canary: ArmLook,
    pub primary: ArmLook,
}

/// The sequential judge of one analysis.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    evidence: Evidence,
}

impl Judge {
    pub fn new(config: JudgeConfig) -> Result<Self, InvalidConfig> {
        Ok(Self {
            config,
            evidence: Evidence::default(),
        })
    }

    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// Adds one look's increments.
    pub fn observe(&mut self, look: &Look) {
        self.evidence.looks += 1;
        self.evidence.canary.requests += look.canary.requests;
        self.evidence.primary.requests += look.primary.requests;
    }

    /// The verdict after the looks observed so far.
    pub fn assess(&self) -> Assessment {
        Assessment {
            verdict: Verdict::Wait,
            reason: "SKELETON: judge not built".into(),
            evidence: self.evidence.clone(),
        }
    }
}
