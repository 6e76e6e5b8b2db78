//! A hook's answer: the status Flagger sees, the reason in the body, and the decision
//! row that records it before it is sent.

use axum::http::StatusCode;

use super::{settings, shadow, Analyst, HookCall};
use crate::domain::{now_millis, AnalysisId, Mode};
use crate::sli::SliError;
use crate::store::{Milestone, NewDecision, StatusChange, StoreError};
use crate::webhook::{Answer, Hook, Outcome, Refusal};

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        // The store is what failed; trying to record there is pointless.
        Refusal::store_failed(e.to_string())
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
    outcome: Outcome,
    /// Set for a refusal, which carries its own status; otherwise the outcome's.
    status: Option<StatusCode>,
    reason: String,
    evidence: Option<String>,
    /// Written to the outbox with the decision.
    milestones: Vec<Milestone>,
}

impl Reply {
    pub(super) fn new(
        analysis_id: Option<AnalysisId>,
        outcome: Outcome,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            analysis_id,
            outcome,
            status: None,
            reason: reason.into(),
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
        let mut answer = Answer::new(call.hook, self.outcome, self.reason);
        if let Some(status) = self.status {
            answer.status = status;
        } else if call.mode == Mode::Shadow {
            // The verdict stays the decision's; Flagger gets the status that lets it go
            // on, and the reason says what enforce mode would have answered.
            if let Some((status, reason)) = shadow::answer(call.hook, self.outcome, &answer.reason)
            {
                answer = Answer {
                    status,
                    ..Answer::new(call.hook, self.outcome, reason)
                };
            }
        }
        let decision = NewDecision {
            analysis_id: self.analysis_id,
            key: call.key.clone(),
            hook: call.hook.as_str().to_owned(),
            verdict: self.outcome.as_str().to_owned(),
            status_code: i64::from(answer.status.as_u16()),
            reason: answer.reason.clone(),
            evidence: self.evidence,
            request_id: call.request_id.clone(),
            created_at: now_millis(),
            milestones: self.milestones,
        };
        (decision, answer)
    }
}

impl Analyst {
    /// Runs one hook call. Every answer with a verdict is in the store before it
    /// returns; an event is accepted at once and stored in the background.
    pub async fn handle(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let call = &HookCall {
            mode: self.mode_of(call).await?,
            ..call.clone()
        };
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
            // A shadow analysis never blocks Flagger, not even when verdict cannot judge
            // (Prometheus or the store down, settings it cannot use): the refusal is
            // recorded as such, and Flagger gets the status that lets it go on.
            Err(refusal) if call.mode == Mode::Shadow && shadow::never_refuses(call.hook) => {
                tracing::warn!(
                    hook = call.hook.as_str(),
                    canary = %call.key,
                    status = refusal.status.as_u16(),
                    reason = %refusal.reason,
                    "shadow analysis could not judge; Flagger is let go on"
                );
                let answer = shadow::instead_of(call.hook, &refusal);
                self.record_refusal(call, refusal.outcome(), answer.status, &answer.reason)
                    .await;
                Ok(answer)
            }
            Err(refusal) if refusal.record => {
                self.record_refusal(call, refusal.outcome(), refusal.status, &refusal.reason)
                    .await;
                Err(refusal)
            }
            other => other,
        }
    }

    /// The mode `call` is answered in: an open analysis keeps the mode it opened with,
    /// so all its hooks agree even when only some webhooks carry the `mode` key; before
    /// it opens, the call's `mode` metadata or `defaults.mode`. A bad value is a 400.
    async fn mode_of(&self, call: &HookCall) -> Result<Mode, Refusal> {
        let asked = settings::mode_of(&call.metadata, &self.config)
            .map_err(|e| Refusal::bad_request(e.to_string()))?;
        if !shadow::applies_to(call.hook) {
            return Ok(asked);
        }
        match self.store.find_analysis(&call.key).await {
            Ok(open) => Ok(open.map_or(asked, |a| a.mode)),
            // The store is down: the call's own `mode` (or the default) decides, so a
            // shadow webhook still never blocks Flagger; the hook then fails on the store.
            Err(_) => Ok(asked),
        }
    }

    /// Records a refused call (`status`: what Flagger got); if even that fails the
    /// answer stays what it was.
    async fn record_refusal(
        &self,
        call: &HookCall,
        outcome: Outcome,
        status: StatusCode,
        reason: &str,
    ) {
        let analysis_id = self
            .store
            .find_analysis(&call.key)
            .await
            .ok()
            .flatten()
            .map(|a| a.id);
        let mut reply = Reply::new(analysis_id, outcome, reason);
        reply.status = Some(status);
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
        outcome: Outcome,
        reason: impl Into<String>,
    ) -> Result<Answer, Refusal> {
        let reply = Reply::new(analysis_id, outcome, reason);
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
