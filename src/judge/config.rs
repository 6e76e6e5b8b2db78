//! The settings of one analysis' judge, validated before any look is judged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Per-look dispersion τ: measured from the primary's history when the analysis opens
/// (`auto`), or a fixed value. τ is the standard deviation of one arm's per-look noise on
/// the log of its rate (0.4 ≈ "this service's per-minute error rate swings ±40 %").
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Dispersion {
    /// Estimated from the primary's look-back (docs/statistics.md §5).
    #[default]
    Auto,
    /// A fixed τ ≥ 0 (0 trusts the binomial model fully).
    Fixed(f64),
}

impl Dispersion {
    /// Parses `auto` or a number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        text.parse::<f64>()
            .map(Self::Fixed)
            .map_err(|_| format!("must be `auto` or a number, got {text:?}"))
    }
}

impl std::fmt::Display for Dispersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(t) => write!(f, "{t}"),
        }
    }
}

impl Serialize for Dispersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Fixed(t) => s.serialize_f64(*t),
        }
    }
}

impl<'de> Deserialize<'de> for Dispersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(t) => Ok(Self::Fixed(t)),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// What happens when an analysis runs out of looks (or time) without a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInconclusive {
    /// Fail the analysis: the canary is rolled back ("no decision after N looks").
    #[default]
    Rollback,
    /// Keep waiting; only a release manager's decision ends it.
    Hold,
}

impl OnInconclusive {
    /// Parses `rollback` or `hold`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "rollback" => Ok(Self::Rollback),
            "hold" => Ok(Self::Hold),
            other => Err(format!("must be `rollback` or `hold`, got {other:?}")),
        }
    }

    /// The metadata spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Hold => "hold",
        }
    }
}

/// How long an analysis may take before it must end (docs/statistics.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Looks after which an undecided analysis ends by `on_inconclusive`.
    pub max_looks: u32,
    /// Time since the analysis opened after which it ends likewise (milliseconds).
    pub max_duration_ms: Option<u64>,
    /// What an undecided analysis does when the budget runs out.
    pub on_inconclusive: OnInconclusive,
    /// Consecutive looks in which the canary served nothing while the primary served
    /// traffic before the canary fails with "receives no traffic".
    pub no_traffic_looks: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_looks: 60,
            max_duration_ms: None,
            on_inconclusive: OnInconclusive::Rollback,
            no_traffic_looks: 3,
        }
    }
}

fn default_negligible_error_rate() -> f64 {
    JudgeConfig::recommended().negligible_error_rate
}

/// Settings of one analysis. Validated by [`JudgeConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Overall false-rollback budget shared by all fail tests (e.g. 0.01); also the level
    /// of each promotion test.
    pub alpha: f64,
    /// Tolerated relative increase of the canary's error rate before it counts as a
    /// regression (0.1 = 10 %).
    pub error_margin: f64,
    /// Tolerated relative increase of the canary's share of requests above each latency
    /// boundary.
    pub latency_margin: f64,
    /// Promotion needs a test to reject "canary/primary ratio ≥ 1 + this" on every metric.
    pub promotion_margin: f64,
    /// No promotion before the canary served this many requests.
    pub min_canary_requests: u64,
    /// Optional absolute guard on the canary's own error rate.
    pub slo_error_rate: Option<f64>,
    /// Optional absolute guard on the canary's fraction of requests above the SLO latency
    /// (0.05 when the SLO is "p95 below X ms").
    pub slo_slow_fraction: Option<f64>,
    /// Per-look dispersion τ of each arm's rates.
    #[serde(default)]
    pub dispersion: Dispersion,
    /// An error rate the canary provably stays below is never a reason to wait: promotion
    /// on errors also passes when a test rejects "canary error rate ≥ this" (0 turns it
    /// off). This is what lets a service with almost no errors be promoted, where no
    /// ratio can be bounded.
    #[serde(default = "default_negligible_error_rate")]
    pub negligible_error_rate: f64,
    /// Looks, time and traffic an analysis may use before it must end.
    #[serde(default)]
    pub budget: Budget,
}

impl JudgeConfig {
    /// The defaults the evaluation benchmark supports (docs/statistics.md §8).
    pub fn recommended() -> Self {
        Self {
            alpha: 0.01,
            error_margin: 0.1,
            latency_margin: 0.2,
            promotion_margin: 0.65,
            min_canary_requests: 1000,
            slo_error_rate: None,
            slo_slow_fraction: None,
            dispersion: Dispersion::Auto,
            negligible_error_rate: 0.0005,
            budget: Budget::default(),
        }
    }

    /// Refuses values the statistics cannot honour, naming the field.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &'static str, why: String| Err(InvalidConfig { field, why });
        if !(self.alpha > 0.0 && self.alpha <= 0.5) {
            return bad("alpha", format!("must be in (0, 0.5], got {}", self.alpha));
        }
        for (field, value) in [
            ("error_margin", self.error_margin),
            ("latency_margin", self.latency_margin),
            ("promotion_margin", self.promotion_margin),
        ] {
            // Margins above 19 would put the null beyond the reporting lattice (≈ 21).
            if !(value.is_finite() && (0.0..=19.0).contains(&value)) {
                return bad(
                    field,
                    format!("must be a finite number in [0, 19], got {value}"),
                );
            }
        }
        for (field, value) in [
            ("slo_error_rate", self.slo_error_rate),
            ("slo_slow_fraction", self.slo_slow_fraction),
        ] {
            if let Some(v) = value {
                if !(v > 0.0 && v < 1.0) {
                    return bad(field, format!("must be a rate in (0, 1), got {v}"));
                }
            }
        }
        if let Dispersion::Fixed(t) = self.dispersion {
            if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                return bad(
                    "dispersion",
                    format!("must be `auto` or in [0, 2], got {t}"),
                );
            }
        }
        if !(self.negligible_error_rate.is_finite()
            && (0.0..0.5).contains(&self.negligible_error_rate))
        {
            return bad(
                "negligible_error_rate",
                format!(
                    "must be a rate in [0, 0.5), got {}",
                    self.negligible_error_rate
                ),
            );
        }
        let b = &self.budget;
        if !(1..=100_000).contains(&b.max_looks) {
            return bad(
                "max_looks",
                format!("must be in [1, 100000], got {}", b.max_looks),
            );
        }
        if b.max_duration_ms == Some(0) {
            return bad("max_duration", "must be above 0".into());
        }
        if !(1..=1000).contains(&b.no_traffic_looks) {
            return bad(
                "no_traffic_looks",
                format!("must be in [1, 1000], got {}", b.no_traffic_looks),
            );
        }
        Ok(())
    }

    /// How many fail tests share α: errors, the latency family, and each SLO guard.
    pub(crate) fn fail_tests(&self) -> u32 {
        2 + u32::from(self.slo_error_rate.is_some()) + u32::from(self.slo_slow_fraction.is_some())
    }

    /// The level of each fail test (Bonferroni over [`Self::fail_tests`]).
    pub fn alpha_per_test(&self) -> f64 {
        self.alpha / f64::from(self.fail_tests())
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
