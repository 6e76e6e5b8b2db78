//! The analysis service: what each Flagger hook does, independent of HTTP.
//!
//! It reads SLIs through [`SliSource`], asks the [`judge`](crate::judge) and writes
//! every answer to the [`Store`] before it is returned. It holds no state of its own:
//! the judge is rebuilt from the stored looks on every call, so a restart or a second
//! replica continues an analysis with identical results.

pub mod gates;
mod hooks;
mod look;
pub mod settings;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::{now_millis, AnalysisKey, Millis};
use crate::grafana::{self, Outcome};
use crate::judge::{latency, Assessment, Judge};
use crate::sli::{SliError, SliSource, SliTarget};
use crate::store::{
    Analysis, LookRow, NewAnalysis, NewAnnotation, NewDecision, StatusChange, Store, StoreError,
};
use crate::telemetry::Metrics;

pub use hooks::Hook;
use settings::CanarySettings;

/// A validated hook call.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub hook: Hook,
    pub key: AnalysisKey,
    pub phase: String,
    pub metadata: HashMap<String, String>,
    pub request_id: String,
}

/// A hook's answer: the status Flagger sees and the one-line reason in the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    /// `pass`, `fail`, `wait`, `ok` or `error`: the outcome label of metrics and decisions.
    pub verdict: &'static str,
    pub reason: String,
}

/// A call that could not be answered with a verdict; maps to a 4xx.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
    /// Whether a decision row should record this refusal (dependency failures yes,
    /// malformed calls no: they never reached an analysis).
    pub record: bool,
}

impl Refusal {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
            record: false,
        }
    }

    pub fn dependency(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FAILED_DEPENDENCY,
            reason: reason.into(),
            record: true,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal {
            status: StatusCode::FAILED_DEPENDENCY,
            reason: e.to_string(),
            // The store is what failed; trying to record there is pointless.
            record: false,
        }
    }
}

impl From<SliError> for Refusal {
    fn from(e: SliError) -> Self {
        match e {
            SliError::UnknownTemplate(_) | SliError::Template { .. } => {
                Refusal::bad_request(e.to_string())
            }
            _ => Refusal::dependency(e.to_string()),
        }
    }
}

/// An answer about to be recorded: one decision row.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    analysis_id: Option<i64>,
    verdict: &'static str,
    status: StatusCode,
    reason: String,
    evidence: Option<String>,
    /// Written to the outbox with the decision.
    annotations: Vec<NewAnnotation>,
}

impl Reply {
    fn new(
        analysis_id: Option<i64>,
        verdict: &'static str,
        status: StatusCode,
        reason: String,
    ) -> Self {
        Self {
            analysis_id,
            verdict,
            status,
            reason,
            evidence: None,
            annotations: Vec::new(),
        }
    }

    fn with_annotations(mut self, annotations: impl IntoIterator<Item = NewAnnotation>) -> Self {
        self.annotations.extend(annotations);
        self
    }

    fn with_evidence(mut self, evidence: Option<String>) -> Self {
        self.evidence = evidence;
        self
    }
}

/// What an analysis fixed when it opened: the canary's settings and the latency boundaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSettings {
    pub canary: CanarySettings,
    /// b*, seconds: requests above it count as slow in the comparison test.
    pub boundary_s: Option<f64>,
    /// The SLO latency, seconds, when the canary set `sloP95Ms`.
    pub slo_boundary_s: Option<f64>,
}

/// The analysis service.
#[derive(Clone)]
pub struct Analyst {
    pub store: Arc<dyn Store>,
    pub sli: Arc<dyn SliSource>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Analyst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyst").finish_non_exhaustive()
    }
}

impl Analyst {
    /// Runs one hook call. Every answer with a verdict is in the store before it returns.
    pub async fn handle(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let result = match call.hook {
            Hook::ConfirmRollout => self.confirm_rollout(call).await,
            Hook::PreRollout => self.pre_rollout(call).await,
            Hook::Rollout => self.rollout(call).await,
            Hook::ConfirmTrafficIncrease => self.confirm_traffic_increase(call).await,
            Hook::ConfirmPromotion => self.confirm_promotion(call).await,
            Hook::Rollback => self.rollback(call).await,
            Hook::PostRollout => self.post_rollout(call).await,
            Hook::Event | Hook::LoadTest => Err(Refusal::bad_request(
                "events and load tests are not analysis hooks",
            )),
        };
        match result {
            Err(refusal) if refusal.record => {
                // Record the failed call; if even that fails the answer stays the refusal.
                let analysis_id = self
                    .store
                    .find_analysis(&call.key)
                    .await
                    .ok()
                    .flatten()
                    .map(|a| a.id);
                let decision = self.decision(
                    call,
                    analysis_id,
                    "error",
                    refusal.status,
                    &refusal.reason,
                    None,
                );
                if let Err(e) = self.store.record_decision(&decision, None).await {
                    self.metrics.store_error("record_decision");
                    tracing::warn!(error = %e, "could not record a refused hook call");
                }
                Err(refusal)
            }
            other => other,
        }
    }

    /// Builds the decision row for an answer.
    fn decision(
        &self,
        call: &HookCall,
        analysis_id: Option<i64>,
        verdict: &str,
        status: StatusCode,
        reason: &str,
        evidence: Option<String>,
    ) -> NewDecision {
        NewDecision {
            analysis_id,
            namespace: call.key.namespace.to_string(),
            name: call.key.name.to_string(),
            checksum: call.key.checksum.to_string(),
            hook: call.hook.as_str().to_owned(),
            verdict: verdict.to_owned(),
            status_code: i64::from(status.as_u16()),
            reason: reason.to_owned(),
            evidence,
            request_id: call.request_id.clone(),
            created_at: now_millis(),
            annotations: Vec::new(),
        }
    }

    /// The annotation of an analysis milestone, or `None` when Grafana is off (then
    /// nothing is written: an outbox without a reader would only grow).
    fn milestone(
        &self,
        outcome: Outcome,
        call: &HookCall,
        analysis_id: i64,
        detail: &str,
        time: Millis,
        time_end: Option<Millis>,
    ) -> Option<NewAnnotation> {
        self.config
            .grafana
            .enabled()
            .then(|| grafana::milestone(outcome, &call.key, analysis_id, detail, time, time_end))
    }

    /// The decision row of a reply and the answer it becomes once recorded.
    fn record_of(&self, call: &HookCall, reply: Reply) -> (NewDecision, Answer) {
        let decision = NewDecision {
            annotations: reply.annotations,
            ..self.decision(
                call,
                reply.analysis_id,
                reply.verdict,
                reply.status,
                &reply.reason,
                reply.evidence,
            )
        };
        let answer = Answer {
            status: reply.status,
            verdict: reply.verdict,
            reason: reply.reason,
        };
        (decision, answer)
    }

    /// Records a decision (and optional status change) and turns it into the answer.
    async fn answer(
        &self,
        call: &HookCall,
        reply: Reply,
        change: Option<&StatusChange>,
    ) -> Result<Answer, Refusal> {
        let (decision, answer) = self.record_of(call, reply);
        self.store
            .record_decision(&decision, change)
            .await
            .inspect_err(|_| self.metrics.store_error("record_decision"))?;
        Ok(answer)
    }

    /// Like [`Self::answer`] for an answer that lets the canary go further: recorded only
    /// while the analysis is still running. `None` when it ended in the meantime (a
    /// rollback request committed first); nothing was recorded then.
    async fn answer_if_running(
        &self,
        call: &HookCall,
        reply: Reply,
    ) -> Result<Option<Answer>, Refusal> {
        let (decision, answer) = self.record_of(call, reply);
        let recorded = self
            .store
            .record_decision_if_running(&decision)
            .await
            .inspect_err(|_| self.metrics.store_error("record_decision"))?;
        Ok(recorded.map(|_| answer))
    }

    fn resolve_settings(&self, call: &HookCall) -> Result<CanarySettings, Refusal> {
        settings::resolve(&call.key.name, &call.metadata, &self.config)
            .map_err(|e| Refusal::bad_request(e.to_string()))
    }

    fn sli_target(&self, stored: &StoredSettings, call: &HookCall) -> Result<SliTarget, Refusal> {
        Ok(SliTarget {
            namespace: call.key.namespace.clone(),
            target: crate::domain::CanaryName::parse(&stored.canary.target)
                .map_err(|e| Refusal::bad_request(e.to_string()))?,
            template: stored.canary.template.clone(),
            variables: crate::sli::templates::TemplateVariables {
                service: stored
                    .canary
                    .service
                    .as_deref()
                    .map(crate::domain::CanaryName::parse)
                    .transpose()
                    .map_err(|e| Refusal::bad_request(e.to_string()))?,
                custom: stored.canary.variables.clone(),
            },
        })
    }

    /// Finds the analysis of this revision, or opens it after a preflight: the template
    /// renders, Prometheus answers, and the primary has traffic to compare against.
    async fn find_or_open(&self, call: &HookCall) -> Result<(Analysis, bool), Refusal> {
        // Metadata is validated on every call, even when the analysis already exists.
        let canary = self.resolve_settings(call)?;
        if let Some(existing) = self.store.find_analysis(&call.key).await? {
            return Ok((existing, false));
        }
        let mut stored = StoredSettings {
            canary,
            boundary_s: None,
            slo_boundary_s: None,
        };
        stored.slo_boundary_s = stored.canary.slo_p95_s;
        let target = self.sli_target(&stored, call)?;
        self.sli.check_template(&target)?;
        let now = now_millis();
        let lookback = self
            .sli
            .primary_lookback(&target, now, self.config.defaults.lookback)
            .await?;
        if lookback.requests < 1.0 {
            return Err(Refusal::dependency(format!(
                "the primary {}-primary served no requests in the last {}: nothing to compare the canary against",
                target.target,
                humantime::format_duration(self.config.defaults.lookback)
            )));
        }
        stored.boundary_s = match stored.canary.latency_threshold_s {
            Some(t) => Some(t),
            None => latency::choose_boundary(&lookback.buckets, 0.95),
        };
        let new = NewAnalysis {
            key: call.key.clone(),
            settings: serde_json::to_string(&stored)
                .map_err(|e| Refusal::bad_request(format!("settings: {e}")))?,
            started_at: now,
        };
        Ok(self.store.open_analysis(&new).await?)
    }

    /// Finds the analysis of this revision without opening one.
    async fn existing(&self, call: &HookCall) -> Result<Option<Analysis>, Refusal> {
        self.resolve_settings(call)?;
        Ok(self.store.find_analysis(&call.key).await?)
    }
}

/// Why a failed analysis failed, as stored with its status.
fn failure_reason(analysis: &Analysis) -> &str {
    analysis
        .status_reason
        .as_deref()
        .unwrap_or("regression established")
}

impl Analyst {
    /// Refuses a gate (412) of an analysis that has already failed, saying why it failed.
    async fn refuse_failed(
        &self,
        call: &HookCall,
        analysis: &Analysis,
        prefix: &str,
    ) -> Result<Answer, Refusal> {
        let reason = format!("{prefix}: {}", failure_reason(analysis));
        let reply = Reply::new(
            Some(analysis.id),
            "fail",
            StatusCode::PRECONDITION_FAILED,
            reason,
        );
        self.answer(call, reply, None).await
    }
}

/// Reads an analysis' stored settings.
fn stored_settings(analysis: &Analysis) -> Result<StoredSettings, Refusal> {
    serde_json::from_str(&analysis.settings).map_err(|e| {
        Refusal::dependency(format!(
            "analysis {} has unreadable settings ({e}); was it written by a newer verdict?",
            analysis.id
        ))
    })
}

/// Rebuilds the judge from stored looks. Deterministic: the same looks give the same
/// assessment on any replica.
fn replay(stored: &StoredSettings, looks: &[LookRow]) -> Result<(Judge, Assessment), Refusal> {
    let mut judge = Judge::new(stored.canary.judge.clone())
        .map_err(|e| Refusal::bad_request(format!("settings: {e}")))?;
    for row in looks {
        judge.observe(&crate::judge::Look {
            canary: row.look.canary,
            primary: row.look.primary,
        });
    }
    let assessment = judge.assess();
    Ok((judge, assessment))
}

/// Time since the last look's window ended (or the analysis started).
fn last_window_end(analysis: &Analysis, looks: &[LookRow]) -> Millis {
    looks
        .last()
        .map(|l| l.look.window_end)
        .unwrap_or(analysis.started_at)
}
