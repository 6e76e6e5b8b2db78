//! The rollout hook: take one look, judge, record, answer.

use axum::http::StatusCode;

use super::answer::Reply;
use super::judging::{self, Verdict};
use super::{failure_reason, settings_of, Analyst, Answer, HookCall, Refusal};
use crate::domain::{now_millis, AnalysisSettings, Millis};
use crate::store::{
    Analysis, AnalysisStatus, LookInsert, LookRow, Milestone, MilestoneKind, NewLook, StatusChange,
};
use crate::telemetry::LookCounts;

/// How a judge's verdict is answered on the rollout hook.
fn status_of(verdict: Verdict) -> (StatusCode, &'static str) {
    match verdict {
        Verdict::Fail => (StatusCode::UNPROCESSABLE_ENTITY, "fail"),
        Verdict::Pass => (StatusCode::OK, "pass"),
        Verdict::Wait => (StatusCode::OK, "wait"),
    }
}

/// The end of the last look's window (or the analysis' start): where the next one begins.
fn last_window_end(analysis: &Analysis, looks: &[LookRow]) -> Millis {
    looks
        .last()
        .map(|l| l.look.window_end)
        .unwrap_or(analysis.started_at)
}

impl Analyst {
    /// `rollout`: 200 while there is no evidence of regression, 422 with the reason once
    /// one is established (and on every later call for the revision), 424 when the SLIs
    /// cannot be read (no look is recorded then).
    pub(super) async fn rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        let (analysis, created) = self.find_or_open(call).await?;
        let settings = settings_of(&analysis)?;
        // The call that opened the analysis marks its start, whatever it answers.
        let started: Vec<Milestone> = created
            .then(|| self.milestone(MilestoneKind::Started, &analysis, "", analysis.started_at))
            .flatten()
            .into_iter()
            .collect();
        let id = Some(analysis.id);
        if analysis.status == AnalysisStatus::Failed {
            let reason = failure_reason(&analysis).to_owned();
            return self
                .say(call, id, "fail", StatusCode::UNPROCESSABLE_ENTITY, reason)
                .await;
        }
        if analysis.status != AnalysisStatus::Running {
            let reason = format!(
                "analysis already ended ({}); no new look taken",
                analysis.status.as_str()
            );
            return self.say(call, id, "ok", StatusCode::OK, reason).await;
        }

        let looks = self.store.looks(analysis.id).await?;
        let start = last_window_end(&analysis, &looks);
        let now = now_millis();
        let gap = i64::try_from(self.config.defaults.min_look_gap.as_millis()).unwrap_or(i64::MAX);
        if now - start < gap {
            // A retry or a duplicate: answer from what is stored, take no new look.
            return self
                .replay_answer(call, &analysis, settings, &looks, started)
                .await;
        }

        let window = self
            .sli
            .window(&self.sli_target(settings, call)?, start, now)
            .await?;
        let (canary, primary) = judging::tallies(settings, &window);
        let next = judging::NextLook {
            canary,
            primary,
            window_end: now,
        };
        let judgement = judging::judge(settings, analysis.started_at, &looks, Some(&next))?;
        let evidence = judgement.look_evidence(&window)?;
        let judging::NextLook {
            canary, primary, ..
        } = next;
        let (status, verdict) = status_of(judgement.verdict());
        let reason = judgement.reason().to_owned();
        let new_look = NewLook {
            analysis_id: analysis.id,
            seq: i64::try_from(looks.len()).unwrap_or(i64::MAX) + 1,
            window_start: start,
            window_end: now,
            canary,
            primary,
            verdict: verdict.to_owned(),
            reason: reason.clone(),
            evidence: evidence.clone(),
        };
        let change = (judgement.verdict() == Verdict::Fail).then(|| StatusChange {
            status: AnalysisStatus::Failed,
            reason: reason.clone(),
            at: now,
        });
        // The look that fails the analysis is the one regression milestone: the status
        // change and the look are written together, so only one look ever carries it.
        let regression = change
            .as_ref()
            .and_then(|c| self.milestone(MilestoneKind::Regression, &analysis, &c.reason, now));
        let (decision, answer) = Reply::new(Some(analysis.id), verdict, status, reason)
            .with_evidence(Some(evidence))
            .with_milestones(started.iter().cloned().chain(regression))
            .record_of(call);
        let inserted = self
            .store
            .record_look(&new_look, &decision, change.as_ref())
            .await
            .inspect_err(|_| self.metrics.store_error("record_look"))?;
        match inserted {
            LookInsert::Inserted(_) => {
                self.count_look(call, settings, &new_look);
                Ok(answer)
            }
            // Another replica or a concurrent duplicate took this look first: answer as it did.
            LookInsert::Exists(winner) => self.answer_from_look(call, &winner, started).await,
        }
    }

    /// Adds a recorded look's counts to the look metrics: the numbers the judge saw,
    /// whichever provider's template read them, so one dashboard serves every mesh.
    fn count_look(&self, call: &HookCall, settings: &AnalysisSettings, look: &NewLook) {
        for (arm, tally) in [("canary", &look.canary), ("primary", &look.primary)] {
            let slower = judging::slower_than_boundaries(settings, tally);
            self.metrics.look_recorded(
                call.key.namespace.as_str(),
                call.key.name.as_str(),
                LookCounts {
                    arm,
                    requests: tally.requests,
                    errors: tally.errors,
                    slower: &slower,
                },
            );
        }
    }

    /// Answers a repeated call from the last stored look.
    async fn replay_answer(
        &self,
        call: &HookCall,
        analysis: &Analysis,
        settings: &AnalysisSettings,
        looks: &[LookRow],
        milestones: Vec<Milestone>,
    ) -> Result<Answer, Refusal> {
        if let Some(last) = looks.last() {
            return self.answer_from_look(call, last, milestones).await;
        }
        let judgement = judging::judge(settings, analysis.started_at, looks, None)?;
        let reason = format!(
            "no look yet (the first one is taken at least {} after the analysis opened); {}",
            humantime::format_duration(self.config.defaults.min_look_gap),
            judgement.reason()
        );
        let reply = Reply::new(Some(analysis.id), "wait", StatusCode::OK, reason)
            .with_milestones(milestones);
        self.answer(call, reply, None).await
    }

    async fn answer_from_look(
        &self,
        call: &HookCall,
        look: &LookRow,
        milestones: Vec<Milestone>,
    ) -> Result<Answer, Refusal> {
        let (status, verdict) = match look.look.verdict.as_str() {
            "fail" => (StatusCode::UNPROCESSABLE_ENTITY, "fail"),
            "pass" => (StatusCode::OK, "pass"),
            _ => (StatusCode::OK, "wait"),
        };
        let reply = Reply::new(
            Some(look.look.analysis_id),
            verdict,
            status,
            look.look.reason.clone(),
        )
        .with_evidence(Some(look.look.evidence.clone()))
        .with_milestones(milestones);
        self.answer(call, reply, None).await
    }
}
