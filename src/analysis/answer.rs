//! A hook's answer: the status Flagger sees, the reason in the body, and the decision
//! row that records it before it is sent.

use axum::http::StatusCode;

use super::{Analyst, Hook, HookCall};
use crate::domain::{now_millis, AnalysisId};
use crate::sli::SliError;
use crate::store::{Milestone, NewDecision, StatusChange, StoreError};

/// A hook's answer: the status Flagger sees and the one-line reason in the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// 200 and 202 let Flagger go on; 4xx hold or fail the step (docs/api.md).
    pub status: StatusCode,
    /// `pass`, `fail`, `wait`, `ok` or `error`: the outcome label of metrics and decisions.
    pub verdict: &'static str,
    /// One line for people: Flagger puts it into a Kubernetes event.
    pub reason: String,
}

/// A call that could not be answered with a verdict; maps to a 4xx.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// 400 for a malformed call, 424 when a dependency failed.
    pub status: StatusCode,
    /// Why, in one line.
    pub reason: String,
    /// Whether a decision row should record this refusal (dependency failures yes,
    /// malformed calls no: they never reached an analysis).
    pub record: bool,
}

impl Refusal {
    /// 400: the call itself is wrong; nothing is recorded.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
            record: false,
        }
    }

    /// 424: Prometheus or the settings failed; the refusal is recorded.
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
pub(super) struct Reply {
    analysis_id: Option<AnalysisId>,
    verdict: &'static str,
    status: StatusCode,
    reason: String,
    evidence: Option<String>,
    /// Written to the outbox with the decision.
    milestones: Vec<Milestone>,
}

impl Reply {
    pub(super) fn new(
        analysis_id: Option<AnalysisId>,
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
            milestones: Vec::new(),
        }
    }

    pub(super) fn with_milestones(
        mut self,
        milestones: impl IntoIterator<Item = Milestone>,
    ) -> Self {
        self.milestones.extend(milestones);
        self
    }

    pub(super) fn with_evidence(mut self, evidence: Option<String>) -> Self {
        self.evidence = evidence;
        self
    }

    /// The decision row of this reply to `call`, and the answer it becomes once recorded.
    pub(super) fn record_of(self, call: &HookCall) -> (NewDecision, Answer) {
        let decision = NewDecision {
            analysis_id: self.analysis_id,
            key: call.key.clone(),
            hook: call.hook.as_str().to_owned(),
            verdict: self.verdict.to_owned(),
            status_code: i64::from(self.status.as_u16()),
            reason: self.reason.clone(),
            evidence: self.evidence,
            request_id: call.request_id.clone(),
            created_at: now_millis(),
            milestones: self.milestones,
        };
        let answer = Answer {
            status: self.status,
            verdict: self.verdict,
            reason: self.reason,
        };
        (decision, answer)
    }
}

impl Analyst {
    /// Runs one hook call. Every answer with a verdict is in the store before it
    /// returns; an event is accepted at once and stored in the background.
    pub async fn handle(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let result = match call.hook {
            Hook::ConfirmRollout => self.confirm_rollout(call).await,
            Hook::PreRollout => self.pre_rollout(call).await,
            Hook::Rollout => self.rollout(call).await,
            Hook::ConfirmTrafficIncrease => self.confirm_traffic_increase(call).await,
            Hook::ConfirmPromotion => self.confirm_promotion(call).await,
            Hook::Rollback => self.rollback(call).await,
            Hook::PostRollout => self.post_rollout(call).await,
            Hook::Event => Ok(self.accept_event(call)),
            Hook::LoadTest => Err(Refusal::bad_request(
                "load tests are run by the load generator, not the analysis",
            )),
        };
        match result {
            Err(refusal) if refusal.record => {
                self.record_refusal(call, &refusal).await;
                Err(refusal)
            }
            other => other,
        }
    }

    /// Records a refused call; if even that fails the answer stays the refusal.
    async fn record_refusal(&self, call: &HookCall, refusal: &Refusal) {
        let analysis_id = self
            .store
            .find_analysis(&call.key)
            .await
            .ok()
            .flatten()
            .map(|a| a.id);
        let reply = Reply::new(analysis_id, "error", refusal.status, refusal.reason.clone());
        let (decision, _) = reply.record_of(call);
        if let Err(e) = self.store.record_decision(&decision, None).await {
            self.metrics.store_error("record_decision");
            tracing::warn!(error = %e, "could not record a refused hook call");
        }
    }

    /// Records a decision (and optional status change) and turns it into the answer.
    pub(super) async fn answer(
        &self,
        call: &HookCall,
        reply: Reply,
        change: Option<&StatusChange>,
    ) -> Result<Answer, Refusal> {
        let (decision, answer) = reply.record_of(call);
        self.store
            .record_decision(&decision, change)
            .await
            .inspect_err(|_| self.metrics.store_error("record_decision"))?;
        Ok(answer)
    }

    /// Records a plain answer: no evidence, milestone or status change.
    pub(super) async fn say(
        &self,
        call: &HookCall,
        analysis_id: Option<AnalysisId>,
        verdict: &'static str,
        status: StatusCode,
        reason: impl Into<String>,
    ) -> Result<Answer, Refusal> {
        let reply = Reply::new(analysis_id, verdict, status, reason.into());
        self.answer(call, reply, None).await
    }

    /// Like [`Self::answer`] for an answer that lets the canary go further: recorded only
    /// while the analysis is still running. `None` when it ended in the meantime (a
    /// rollback request committed first); nothing was recorded then.
    pub(super) async fn answer_if_running(
        &self,
        call: &HookCall,
        reply: Reply,
    ) -> Result<Option<Answer>, Refusal> {
        let (decision, answer) = reply.record_of(call);
        let recorded = self
            .store
            .record_decision_if_running(&decision)
            .await
            .inspect_err(|_| self.metrics.store_error("record_decision"))?;
        Ok(recorded.map(|_| answer))
    }
}
