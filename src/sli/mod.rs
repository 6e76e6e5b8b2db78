//! Sources of service-level indicators: Prometheus (real) and a simulator.
//!
//! The HTTP layer only sees [`SliSource`]; it never knows which one it has.

pub mod counters;
pub mod prometheus;
pub mod simulator;
pub mod templates;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{CanaryName, Millis, Namespace};
use crate::judge::latency::Bucket;
pub use counters::{ArmCounters, Counters, Increments};

/// Which workloads to query, and with which template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliTarget {
    pub namespace: Namespace,
    /// The canary's target workload; the primary is `<target>-primary`.
    pub target: CanaryName,
    /// Name of the SLI template (a file in `metric-templates/` without `.yaml`).
    pub template: String,
    /// The apex service and the `{{ variables.x }}` values, already validated.
    pub variables: templates::TemplateVariables,
}

/// Counts of one arm between two readings of its counters (see [`counters`]): whole
/// numbers from Prometheus, kept as `f64` because the plan's history is shared with the
/// simulator and the judge's bucket type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmCounts {
    pub requests: f64,
    pub errors: f64,
    /// Cumulative latency buckets (`sum by (le)`), sorted by `le`, ending with `+Inf`.
    pub buckets: Vec<Bucket>,
}

/// Counts of both arms between the same two readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmPair {
    pub canary: ArmCounts,
    pub primary: ArmCounts,
}

/// Why an SLI query failed. Every case is a 424 at the webhook.
#[derive(Debug, thiserror::Error)]
pub enum SliError {
    #[error("Prometheus unreachable: {0}")]
    Unreachable(String),
    #[error("Prometheus did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Prometheus query failed: {0}")]
    Query(String),
    #[error("no data for the {arm} ({detail})")]
    NoData { arm: &'static str, detail: String },
    #[error("unknown SLI template {0:?}")]
    UnknownTemplate(String),
    #[error("template {template:?}: {why}")]
    Template { template: String, why: String },
}

/// Anything that can answer "how many requests, errors and how slow, per arm, so far".
#[async_trait]
pub trait SliSource: Send + Sync + 'static {
    /// Both arms' cumulative counters per series as they stood at `at` (Unix
    /// milliseconds): the last sample of each series at or before `at`. Both arms are
    /// queried concurrently. A look's counts are the difference of two readings
    /// ([`counters::Counters::since`]).
    async fn counters(&self, target: &SliTarget, at: Millis) -> Result<Counters, SliError>;

    /// The primary's counts over `lookback` ending at `end`, one entry per `step`-long
    /// interval, oldest first, by the same differencing as the looks: the history an analysis' plan is made from (latency
    /// boundaries and dispersion, docs/statistics.md §3 and §5). Intervals without data
    /// are left out.
    async fn primary_history(
        &self,
        target: &SliTarget,
        end: Millis,
        lookback: Duration,
        step: Duration,
    ) -> Result<Vec<ArmCounts>, SliError>;

    /// Whether the source answers at all (readiness).
    async fn ready(&self) -> Result<(), SliError>;

    /// Checks that a template exists and renders for this target (preflight and metadata validation).
    fn check_template(&self, target: &SliTarget) -> Result<(), SliError>;
}
