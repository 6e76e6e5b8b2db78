//! The analysis service: every rule of verdict, independent of HTTP.
//!
//! Flagger's hooks ([`Analyst::handle`]) read SLIs through [`SliSource`], ask the
//! [`judge`](crate::judge) and write every answer to the [`Store`] before it is
//! returned. A release manager's actions ([`Analyst::set_gate`],
//! [`Analyst::request_rollback`]) and what the API shows ([`Analyst::canary`],
//! [`Analyst::analysis`], …) go through the same service, so the hooks and the API
//! apply one set of rules. The service holds no state of its own: the judge is rebuilt
//! from the stored looks on every call, and each look keeps the counters it read, so a
//! restart or a second replica continues an analysis with identical results. What a hook
//! can answer is Flagger's contract, [`crate::webhook`].
//!
//! The HTTP layer parses a call, calls one method here and shapes the answer; it never
//! reaches the store itself.

mod answer;
mod backtest;
mod backtest_history;
mod backtest_outcome;
mod backtest_record;
mod backtest_window;
mod canary;
mod error;
mod events;
pub mod gates;
mod history;
mod hooks;
mod judging;
mod look;
mod opening;
mod overview;
pub mod settings;
mod shadow;
mod succession;

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::domain::{AnalysisKey, AnalysisSettings, Controller, Millis, Mode};
use crate::sli::SliSource;
use crate::store::{Analysis, Milestone, MilestoneKind, Store};
use crate::telemetry::Metrics;

pub use backtest::{Backtest, BacktestLook};
pub use backtest_history::{
    ConfigurationResult, Ending, Flip, HistoryBacktest, HistoryQuery, Skipped,
    MAX_BACKTEST_ANALYSES, MAX_CONFIGURATIONS,
};
pub use backtest_outcome::{Outcome as BacktestOutcome, Tally};
pub use backtest_window::{
    ArmFigures, WindowBacktest, WindowLook, WindowQuery, WindowRun, MAX_WINDOW_LOOKS,
};
pub use canary::CanaryView;
pub use error::ServiceError;
pub use history::AnalysisRecord;
pub use overview::{weight_at, weight_in, CanaryNow};

use crate::webhook::{Answer, Hook, Phase, Refusal};

/// A validated hook call.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// Which hook Flagger called.
    pub hook: Hook,
    /// The canary revision it is about (checksum `none` for hooks that may come first).
    pub key: AnalysisKey,
    /// Flagger's phase of the canary.
    pub phase: Phase,
    /// The webhook's metadata, the token removed.
    pub metadata: HashMap<String, String>,
    /// The call's `x-request-id`, recorded with the answer.
    pub request_id: String,
    /// Enforce or shadow: [`Analyst::handle`] sets it from the analysis (or the
    /// metadata and defaults before one opens); callers pass the default.
    pub mode: Mode,
    /// Who calls: Flagger's webhooks, or Argo Rollouts' measurement (always the rollout
    /// hook), whose answers are recorded with the status Argo gets.
    pub controller: Controller,
}

/// The analysis service. Cheap to clone.
#[derive(Clone)]
pub struct Analyst {
    store: Store,
    sli: Arc<dyn SliSource>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// Whether anything reads the outbox; without a reader no milestone is written,
    /// since an outbox nobody empties would only grow.
    milestones: bool,
    /// Work that outlives a request (event storage); shutdown waits for it.
    background: TaskTracker,
}

impl std::fmt::Debug for Analyst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyst")
            .field("milestones", &self.milestones)
            .finish_non_exhaustive()
    }
}

impl Analyst {
    /// The service over a migrated store and an SLI source. `milestones`: whether a
    /// reader of the outbox runs (then milestones are written beside the answers).
    pub fn new(
        store: Store,
        sli: Arc<dyn SliSource>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        milestones: bool,
    ) -> Self {
        Self {
            store,
            sli,
            config,
            metrics,
            milestones,
            background: TaskTracker::new(),
        }
    }

    /// What keeps the service from answering: the store not answering, in one sentence;
    /// empty when it answers (readiness).
    ///
    /// The SLI source is not part of it: while Prometheus is down the API, the gates and
    /// every hook that needs no SLI still work, and the hooks that do answer 424 with the
    /// reason, which reaches Flagger's events; an unready replica would turn that into a
    /// refused connection. [`Analyst::check_sli`] shows Prometheus' health instead.
    pub async fn unready_dependencies(&self) -> Vec<String> {
        self.store
            .ping()
            .await
            .err()
            .map(|e| e.to_string())
            .into_iter()
            .collect()
    }

    /// Asks the SLI source whether it answers and records the outcome in the
    /// `verdict_prometheus_up` gauge (called at each scrape of `/metrics`).
    pub async fn check_sli(&self) -> bool {
        let up = self.sli.ready().await.is_ok();
        self.metrics.set_sli_up(up);
        up
    }

    /// Stops taking background work and waits for what is running (shutdown; the caller
    /// bounds the wait).
    pub async fn finish_background(&self) {
        self.background.close();
        self.background.wait().await;
    }

    /// A milestone of `analysis`, when milestones are written.
    fn milestone(
        &self,
        kind: MilestoneKind,
        analysis: &Analysis,
        detail: &str,
        time: Millis,
    ) -> Option<Milestone> {
        self.milestones.then(|| {
            Milestone::new(kind, analysis.canary(), detail, time).of(
                analysis.id,
                analysis.key.checksum.clone(),
                analysis.controller,
            )
        })
    }
}

/// The settings an analysis fixed when it opened; a 424 naming the analysis when this
/// verdict cannot read them.
fn settings_of(analysis: &Analysis) -> Result<&AnalysisSettings, Refusal> {
    analysis
        .settings
        .as_ref()
        .map_err(|e| Refusal::dependency(e.to_string()))
}

/// Why a failed analysis failed, as stored with its status.
fn failure_reason(analysis: &Analysis) -> &str {
    analysis
        .status_reason
        .as_deref()
        .unwrap_or("regression established")
}

/// A running live Flagger analysis of `test/podinfo` whose settings are not read, for the
/// unit tests of rules that look only at its key, status and times.
#[cfg(test)]
pub(crate) fn unread_analysis(id: i64, started_at: crate::domain::Millis) -> Analysis {
    use crate::domain::{AnalysisId, AnalysisKey, CanaryName, Checksum, Namespace};
    Analysis {
        id: AnalysisId::new(id),
        key: AnalysisKey {
            namespace: Namespace::parse("test").expect("ns"),
            name: CanaryName::parse("podinfo").expect("name"),
            checksum: Checksum::parse("abc123").expect("checksum"),
        },
        settings: Err(crate::store::UnreadableSettings {
            id: AnalysisId::new(id),
            json: "{}".into(),
            error: "not needed".into(),
        }),
        status: crate::store::AnalysisStatus::Running,
        status_reason: None,
        mode: crate::domain::Mode::Enforce,
        controller: crate::domain::Controller::Flagger,
        origin: crate::store::Origin::Live,
        baseline: None,
        started_at,
        finished_at: None,
    }
}
