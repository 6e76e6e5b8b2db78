//! A canary as a release manager sees and steers it: its latest analysis and both gates
//! as the hooks see them, opening and holding a gate, asking for a rollback.
//!
//! Every change is one store transaction with its audit row (and its milestone, when
//! milestones are written), so the audit log never misses a change.

use super::{gates, Analyst, HookCall, Refusal, ServiceError};
use crate::auth::Principal;
use crate::domain::{now_millis, CanaryRef};
use crate::store::{
    Analysis, AnalysisStatus, GateKind, GateRow, GateState, ManualAction, Milestone, MilestoneKind,
    NewAudit, RollbackRequest, StatusChange,
};
use gates::GateView;

/// A canary now: its latest analysis and both gates as the hooks see them.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryView {
    /// The canary.
    pub canary: CanaryRef,
    /// Its most recently opened analysis.
    pub latest: Option<Analysis>,
    /// The gate confirm-rollout checks.
    pub rollout: GateView,
    /// The gate confirm-promotion checks.
    pub promotion: GateView,
}

/// Both gates as the hooks see them, from the canary's gate rows, its recorded gate
/// mode and its latest analysis.
pub(super) fn views(
    rows: &[GateRow],
    mode: Option<bool>,
    latest: Option<&Analysis>,
) -> (GateView, GateView) {
    let settings = latest.and_then(|a| a.settings.as_ref().ok());
    let rollout = gates::rollout_gate(
        gates::row_of(rows, GateKind::Rollout),
        gates::manual(GateKind::Rollout, mode, settings),
        latest,
    );
    let promotion_row = gates::row_of(rows, GateKind::Promotion);
    let promotion = match latest {
        Some(a) => gates::promotion_gate(
            promotion_row,
            gates::manual(GateKind::Promotion, mode, settings),
            a,
        ),
        // Nothing to promote yet: show what a person last set.
        None => gates::as_set(GateKind::Promotion, promotion_row, false),
    };
    (rollout, promotion)
}

impl Analyst {
    /// The canary's gate mode: what this call says when it carries the `gate` key
    /// (recorded, so that the other hooks and the API agree: each Flagger webhook
    /// carries its own metadata, so the key may be on some of verdict's hooks only),
    /// otherwise what a call last recorded.
    pub(super) async fn gate_mode_of(&self, call: &HookCall) -> Result<Option<bool>, Refusal> {
        let canary = call.key.canary();
        let recorded = self.store.gate_mode(&canary).await?;
        if !call.metadata.contains_key("gate") {
            return Ok(recorded);
        }
        let manual = self.resolve_settings(call)?.manual_gates;
        if recorded != Some(manual) {
            self.store
                .set_gate_mode(&canary, manual, now_millis())
                .await?;
        }
        Ok(Some(manual))
    }

    /// The canary's latest analysis and both gates; not found when verdict has seen
    /// neither an analysis, a gate nor a gate mode of it.
    pub async fn canary(&self, canary: &CanaryRef) -> Result<CanaryView, ServiceError> {
        let (view, seen) = self.canary_as_is(canary).await?;
        if !seen {
            return Err(ServiceError::NotFound(format!(
                "verdict has no analysis and no gate for {canary}"
            )));
        }
        Ok(view)
    }

    /// The canary's latest live analysis and both gates, also for a canary verdict has
    /// seen nothing of (the bool says whether it has): a recorded backtest's page shows
    /// its canary's gates as they stand.
    pub async fn canary_as_is(
        &self,
        canary: &CanaryRef,
    ) -> Result<(CanaryView, bool), ServiceError> {
        let latest = self.store.latest_analysis(canary).await?;
        let rows = self.store.gates(canary).await?;
        let mode = self.store.gate_mode(canary).await?;
        let seen = latest.is_some() || !rows.is_empty() || mode.is_some();
        let (rollout, promotion) = views(&rows, mode, latest.as_ref());
        let view = CanaryView {
            canary: canary.clone(),
            latest,
            rollout,
            promotion,
        };
        Ok((view, seen))
    }

    /// Opens or holds one of the canary's gates for `by`, with its audit row; returns the
    /// gate as the hooks now see it. The promotion gate needs a running analysis.
    pub async fn set_gate(
        &self,
        canary: &CanaryRef,
        kind: GateKind,
        state: GateState,
        by: &Principal,
        reason: &str,
    ) -> Result<GateView, ServiceError> {
        let latest = self.store.latest_analysis(canary).await?;
        // Everything the answer needs is read before the write: once the change commits,
        // the call must not fail (an error would say that nothing changed).
        let mut rows = self.store.gates(canary).await?;
        let mode = self.store.gate_mode(canary).await?;
        if kind == GateKind::Promotion {
            match &latest {
                None => {
                    return Err(ServiceError::NotFound(format!(
                        "{canary} has no analysis whose promotion could be gated"
                    )))
                }
                Some(a) if a.status != AnalysisStatus::Running => {
                    return Err(ServiceError::Conflict(format!(
                        "analysis {} of {canary} has finished ({}); its promotion can no longer be gated",
                        a.id,
                        a.status.as_str()
                    )))
                }
                Some(_) => {}
            }
        }
        let now = now_millis();
        let verb = match state {
            GateState::Open => "open",
            GateState::Held => "hold",
        };
        let row = GateRow {
            canary: canary.clone(),
            kind,
            state,
            actor: by.subject.clone(),
            reason: reason.to_owned(),
            updated_at: now,
        };
        let milestone = match state {
            GateState::Open => MilestoneKind::GateOpened,
            GateState::Held => MilestoneKind::GateHeld,
        };
        let detail = format!("{} gate: {reason}", kind.as_str());
        let action = self.action(
            by,
            &format!("gate.{}.{verb}", kind.as_str()),
            reason,
            Milestone::new(milestone, canary.clone(), &detail, now),
        );
        let stored = self.store.set_gate(&row, &action).await?;
        tracing::info!(actor = %by.subject, action = %action.audit.action, target = %canary, "gate changed");
        rows.retain(|r| r.kind != kind);
        rows.push(stored);
        let (rollout, promotion) = views(&rows, mode, latest.as_ref());
        Ok(match kind {
            GateKind::Rollout => rollout,
            GateKind::Promotion => promotion,
        })
    }

    /// Fails the canary's running analysis at `by`'s request, with its audit row, so the
    /// rollback hook answers 200 at Flagger's next tick. Returns the analysis, now failed.
    pub async fn request_rollback(
        &self,
        canary: &CanaryRef,
        by: &Principal,
        reason: &str,
    ) -> Result<Analysis, ServiceError> {
        let latest = self.store.latest_analysis(canary).await?.ok_or_else(|| {
            ServiceError::NotFound(format!("{canary} has no analysis to roll back"))
        })?;
        let now = now_millis();
        let change = StatusChange {
            status: AnalysisStatus::Failed,
            reason: format!("rollback requested by {}: {reason}", by.subject),
            at: now,
        };
        let milestone = Milestone::new(
            MilestoneKind::RollbackRequested,
            canary.clone(),
            reason,
            now,
        );
        let action = self.action(by, "rollback", reason, milestone);
        let request = self
            .store
            .request_rollback(latest.id, &change, &action)
            .await?;
        match request {
            RollbackRequest::Recorded(analysis) => {
                tracing::info!(actor = %by.subject, analysis = %analysis.id, "rollback requested");
                Ok(analysis)
            }
            RollbackRequest::NotRunning(analysis) => Err(ServiceError::Conflict(format!(
                "analysis {} of {canary} is {}, not running: nothing to roll back",
                analysis.id,
                analysis.status.as_str()
            ))),
            RollbackRequest::Missing => Err(ServiceError::NotFound(format!(
                "analysis {} of {canary} no longer exists",
                latest.id
            ))),
        }
    }

    /// What `by` did as it is recorded: the audit row of `action` on the milestone's
    /// canary at its time, and the milestone (by `by`) when milestones are written.
    fn action(
        &self,
        by: &Principal,
        action: &str,
        reason: &str,
        milestone: Milestone,
    ) -> ManualAction {
        ManualAction {
            audit: NewAudit {
                actor: by.subject.clone(),
                role: by.role.as_str().to_owned(),
                action: action.to_owned(),
                target: milestone.canary.clone(),
                reason: reason.to_owned(),
                at: milestone.time,
            },
            milestone: self.milestones.then(|| milestone.by(&by.subject)),
        }
    }
}
