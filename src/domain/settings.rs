//! What an analysis fixes when it opens: the canary's settings, resolved from its
//! webhook metadata and the server's defaults (`analysis::settings::resolve`), and the
//! latency boundaries chosen from the primary. Stored with the analysis as JSON and read
//! back as these types, so every replica continues an analysis with the same settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::judge::{JudgeConfig, Plan};

/// Everything an analysis needs to know about its canary, fixed when it opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanarySettings {
    /// The SLI template that reads both arms.
    pub template: String,
    /// The target workload (the canary's name unless `target` says otherwise).
    pub target: String,
    /// Flagger's apex service (`spec.service.name`, the `service` metadata key) when it is
    /// not the target's name: `{{ service }}` in the templates. Absent in settings stored
    /// before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The judge's configuration: α, margins, minimum requests, SLOs.
    pub judge: JudgeConfig,
    /// User-set latency boundary in seconds (`latencyThresholdMs`), tested beside the
    /// boundaries the plan picks from the primary's history.
    pub latency_threshold_s: Option<f64>,
    /// Absolute SLO on the canary's p95, in seconds.
    pub slo_p95_s: Option<f64>,
    /// confirm-traffic-increase holds the weight until the current step served this many
    /// canary requests.
    pub min_step_requests: u64,
    /// Template variables (`var.*` metadata keys without the prefix).
    pub variables: BTreeMap<String, String>,
    /// `gate: manual`: the rollout and promotion gates are held for every new revision
    /// until a release manager opens them. Absent in settings stored before the key
    /// existed, which means automatic.
    #[serde(default)]
    pub manual_gates: bool,
    /// `mode: shadow` records every look and decision but never blocks Flagger
    /// (docs/operations.md, "Shadow mode"). Absent in settings stored before the key
    /// existed, which means enforce.
    #[serde(default)]
    pub mode: Mode,
    /// The progressive-delivery controller that calls this analysis' hooks. Absent in
    /// settings stored before Argo Rollouts was served, which means Flagger.
    #[serde(default)]
    pub controller: Controller,
}

/// Which progressive-delivery controller asks for the verdicts of an analysis: Flagger
/// through its webhooks, or Argo Rollouts through its `web` metric provider
/// (docs/operations.md, "Argo Rollouts"). The same judge, store and API serve both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    /// Flagger's webhooks (`/flagger/<hook>`).
    #[default]
    Flagger,
    /// Argo Rollouts' web metric provider (`/argo/v1/measure`).
    Argo,
}

impl Controller {
    /// Every controller.
    pub const ALL: [Controller; 2] = [Controller::Flagger, Controller::Argo];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Controller::Flagger => "flagger",
            Controller::Argo => "argo",
        }
    }

    /// Reads a spelling back.
    pub fn parse(s: &str) -> Result<Controller, String> {
        Controller::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("{s:?} is neither \"flagger\" nor \"argo\""))
    }

    /// The controller's name for people.
    pub fn title(self) -> &'static str {
        match self {
            Controller::Flagger => "Flagger",
            Controller::Argo => "Argo Rollouts",
        }
    }
}

impl std::fmt::Display for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an analysis's answers act on Flagger or only say what they would have done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The answers decide: a regression rolls the canary back.
    #[default]
    Enforce,
    /// Every look and decision is recorded as in enforce mode, but no answer blocks
    /// Flagger; each says what enforce mode would have answered.
    Shadow,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 2] = [Mode::Enforce, Mode::Shadow];

    /// The stored and configured spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }

    /// Reads a spelling back, saying which ones exist when it is none of them.
    pub fn parse(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?} is neither \"enforce\" nor \"shadow\""))
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an analysis fixed when it opened: the canary's settings and the judge's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSettings {
    /// The canary's settings as the opening call resolved them.
    pub canary: CanarySettings,
    /// The latency boundaries and dispersion, from the primary's history
    /// (docs/statistics.md §2, §5).
    #[serde(default)]
    pub plan: Option<Plan>,
    /// Before plans: b*, seconds (analyses stored by an older verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary_s: Option<f64>,
    /// The SLO latency, seconds, when the canary set `sloP95Ms`.
    pub slo_boundary_s: Option<f64>,
}

impl AnalysisSettings {
    /// The plan the judge uses: the stored one, or, for an analysis stored before plans,
    /// one boundary at its b* and τ 0.25 (its looks carry no per-edge counts, so only
    /// looks taken after an upgrade inform the latency test).
    pub fn plan(&self) -> Plan {
        self.plan.clone().unwrap_or_else(|| match self.boundary_s {
            Some(b) => Plan::fixed(vec![b], &[(0, true)], 0.25),
            None => Plan::fixed(Vec::new(), &[], 0.25),
        })
    }
}
