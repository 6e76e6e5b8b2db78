//! The hooks other than `rollout`: gates on promotion, traffic increase and rollback,
//! the opening and closing of an analysis.

use super::answer::Reply;
use super::gates;
use super::judging::{self, Verdict};
use super::{failure_reason, settings_of, Analyst, Answer, HookCall, Refusal};
use crate::domain::now_millis;
use crate::store::{Analysis, AnalysisStatus, GateKind, MilestoneKind, StatusChange};
use crate::webhook::{Outcome, Phase};

impl Analyst {
    /// `confirm-rollout`: the rollout gate. Open unless a release manager held it, or
    /// the canary asked for `gate: manual` and nobody opened it for this revision. The
    /// checksum Flagger sends here may still be the previous revision's, so no analysis
    /// is touched.
    pub(super) async fn confirm_rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        self.resolve_settings(call)?;
        let canary = call.key.canary();
        let mode = self.gate_mode_of(call).await?;
        let rows = self.store.gates(&canary).await?;
        let latest = self.store.latest_analysis(&canary).await?;
        let gate = gates::rollout_gate(
            gates::row_of(&rows, GateKind::Rollout),
            gates::manual(GateKind::Rollout, mode, None),
            latest.as_ref(),
        );
        let reply = if gate.is_open() {
            Reply::new(None, Outcome::Ok, "rollout gate open")
        } else {
            Reply::new(
                None,
                Outcome::Wait,
                format!(
                    "{}; open it with `verdict gate approve {canary} --gate rollout`",
                    gate.held_because()
                ),
            )
        };
        self.answer(call, reply, None).await
    }

    /// `pre-rollout`: preflight and open the analysis. Idempotent.
    pub(super) async fn pre_rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        if call.metadata.contains_key("gate") {
            self.gate_mode_of(call).await?;
        }
        let (analysis, created) = self.find_or_open(call).await?;
        let stored = settings_of(&analysis)?;
        let reason = format!(
            "analysis {} {}: template {}, α {}, {}",
            analysis.id,
            if created { "opened" } else { "already open" },
            stored.canary.template,
            stored.canary.judge.alpha,
            judging::describe(&stored.plan()),
        );
        let started = created
            .then(|| self.milestone(MilestoneKind::Started, &analysis, "", analysis.started_at))
            .flatten();
        let reply = Reply::new(Some(analysis.id), Outcome::Ok, reason).with_milestones(started);
        self.answer(call, reply, None).await
    }

    /// `confirm-promotion`: 200 only with positive evidence that the canary is not worse.
    pub(super) async fn confirm_promotion(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let Some(analysis) = self.existing(call).await? else {
            let reason = "no analysis for this revision yet: is verdict's rollout hook configured?";
            return self.say(call, None, Outcome::Wait, reason).await;
        };
        if analysis.status == AnalysisStatus::Failed {
            return self
                .refuse_failed(call, &analysis, "will not promote")
                .await;
        }
        let settings = settings_of(&analysis)?;
        let looks = self.store.looks_to_judge(analysis.id).await?;
        let judgement = judging::judge(settings, analysis.started_at, &looks, None)?;
        let mode = self.gate_mode_of(call).await?;
        let rows = self.store.gates(&analysis.canary()).await?;
        let row = gates::row_of(&rows, GateKind::Promotion);
        let gate = gates::promotion_gate(
            row,
            gates::manual(GateKind::Promotion, mode, Some(settings)),
            &analysis,
        );
        let assessed = judgement.reason();
        // `onInconclusive: hold`: out of budget, only a person ends it. Opening the
        // promotion gate during this analysis is that decision (docs/statistics.md §7).
        let decided_by = row.filter(|r| {
            judgement.held_for_a_person()
                && r.state == crate::store::GateState::Open
                && r.updated_at >= analysis.started_at
        });
        let (outcome, reason) = match (judgement.verdict(), gate.is_open()) {
            (Verdict::Pass, true) => (Outcome::Pass, assessed.to_owned()),
            (Verdict::Wait, true) if decided_by.is_some() => {
                let r = decided_by.map_or(("", ""), |r| (r.actor.as_str(), r.reason.as_str()));
                (
                    Outcome::Pass,
                    format!("promoted by {}'s decision: {}; {assessed}", r.0, r.1),
                )
            }
            (Verdict::Pass, false) => (
                Outcome::Wait,
                format!("{}; the statistics pass: {assessed}", gate.held_because()),
            ),
            (v, open) => {
                let reason = if open {
                    assessed.to_owned()
                } else {
                    format!("{assessed}; {}", gate.held_because())
                };
                (judging::outcome_of(v), reason)
            }
        };
        let promotes = outcome == Outcome::Pass;
        // Only the first promotion of an analysis enters the outbox (the dedup key).
        let promoted = promotes
            .then(|| self.milestone(MilestoneKind::Promoted, &analysis, assessed, now_millis()))
            .flatten();
        let reply = Reply::new(Some(analysis.id), outcome, reason)
            .with_evidence(judgement.evidence())
            .with_milestones(promoted);
        if !promotes {
            return self.answer(call, reply, None).await;
        }
        // A promotion is recorded only while the analysis runs: a rollback request that
        // committed since it was read wins, and the answer says why.
        if let Some(answer) = self.answer_if_running(call, reply).await? {
            return Ok(answer);
        }
        match self.store.get_analysis(analysis.id).await? {
            Some(now) => self.refuse_failed(call, &now, "will not promote").await,
            None => Err(Refusal::dependency(format!(
                "analysis {} disappeared while answering",
                analysis.id
            ))),
        }
    }

    /// `confirm-traffic-increase`: hold the weight until the current step has served
    /// `minStepRequests` canary requests; never raise it after a regression.
    pub(super) async fn confirm_traffic_increase(
        &self,
        call: &HookCall,
    ) -> Result<Answer, Refusal> {
        let settings = self.resolve_settings(call)?;
        let Some(analysis) = self.store.find_analysis(&call.key).await? else {
            let reason = "no analysis yet: first step";
            return self.say(call, None, Outcome::Ok, reason).await;
        };
        if analysis.status == AnalysisStatus::Failed {
            return self.refuse_failed(call, &analysis, "hold weight").await;
        }
        // Flagger sends each webhook its own metadata: a minimum set on this webhook
        // alone wins over the settings fixed when the analysis opened.
        let needed = if call.metadata.contains_key("minStepRequests") {
            settings.min_step_requests
        } else {
            settings_of(&analysis)?.canary.min_step_requests
        };
        // The current step began at the last increase verdict confirmed.
        let step_start = self
            .store
            .decisions(analysis.id)
            .await?
            .iter()
            .rev()
            .find(|d| d.decision.hook == call.hook.as_str() && d.decision.status_code == 200)
            .map(|d| d.decision.created_at)
            .unwrap_or(analysis.started_at);
        let served: u64 = self
            .store
            .looks_to_judge(analysis.id)
            .await?
            .iter()
            .filter(|l| l.look.window_end > step_start)
            .map(|l| l.look.canary.requests)
            .sum();
        let id = Some(analysis.id);
        if served >= needed {
            let reason =
                format!("step served {served} canary requests (minimum {needed}): raise weight");
            self.say(call, id, Outcome::Pass, reason).await
        } else {
            let reason =
                format!("hold weight: this step served {served} canary requests, needs {needed}");
            self.say(call, id, Outcome::Wait, reason).await
        }
    }

    /// `rollback`: 200 means "roll back now", as soon as a regression is established.
    pub(super) async fn rollback(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let analysis = self.existing(call).await?;
        match analysis {
            Some(a) if a.status == AnalysisStatus::Failed => {
                let reason = format!("roll back: {}", failure_reason(&a));
                let rolled_back =
                    self.milestone(MilestoneKind::RolledBack, &a, &reason, now_millis());
                let reply =
                    Reply::new(Some(a.id), Outcome::Fail, reason).with_milestones(rolled_back);
                self.answer(call, reply, None).await
            }
            other => {
                let id = other.map(|a| a.id);
                let reason = "no rollback requested";
                self.say(call, id, Outcome::Wait, reason).await
            }
        }
    }

    /// `post-rollout`: closes the analysis with Flagger's outcome.
    pub(super) async fn post_rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let analysis = self.existing(call).await?;
        let Some(analysis) = analysis else {
            let reason = format!(
                "rollout ended ({}) with no analysis for this revision",
                call.phase
            );
            return self.say(call, None, Outcome::Ok, reason).await;
        };
        let now = now_millis();
        let change = match (&call.phase, analysis.status) {
            (_, AnalysisStatus::Failed | AnalysisStatus::Succeeded | AnalysisStatus::Aborted) => {
                None
            }
            (Phase::Succeeded, _) => Some(StatusChange {
                status: AnalysisStatus::Succeeded,
                reason: "Flagger promoted the canary".into(),
                at: now,
            }),
            (phase, _) => Some(StatusChange {
                status: AnalysisStatus::Aborted,
                reason: format!(
                    "Flagger ended the rollout in phase {phase} without a verdict of regression"
                ),
                at: now,
            }),
        };
        let reason = format!(
            "rollout ended ({}); analysis {} is {}",
            call.phase,
            analysis.id,
            change
                .as_ref()
                .map(|c| c.status)
                .unwrap_or(analysis.status)
                .as_str()
        );
        // Succeeded closes the whole analysis (a span since it started); Failed is the
        // rollback moment, shared with the rollback hook's milestone so it is marked once.
        let ended = match &call.phase {
            Phase::Succeeded => self
                .milestone(MilestoneKind::Succeeded, &analysis, "", now)
                .map(|m| m.since(analysis.started_at)),
            Phase::Failed => {
                let why = change
                    .as_ref()
                    .map(|c| c.reason.as_str())
                    .or(analysis.status_reason.as_deref())
                    .unwrap_or("");
                self.milestone(MilestoneKind::RolledBack, &analysis, why, now)
            }
            Phase::Other(_) => None,
        };
        let reply = Reply::new(Some(analysis.id), Outcome::Ok, reason).with_milestones(ended);
        self.answer(call, reply, change.as_ref()).await
    }
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
        self.say(call, Some(analysis.id), Outcome::Fail, reason)
            .await
    }
}
