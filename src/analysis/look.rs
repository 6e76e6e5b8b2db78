//! The rollout hook: settings → the previous look's counters → Prometheus → judge → one
//! store transaction → answer.

use super::answer::Reply;
use super::judging::{self, Verdict};
use super::{failure_reason, settings_of, Analyst, Answer, HookCall, Refusal};
use crate::domain::{now_millis, AnalysisSettings, Controller, Millis};
use crate::sli::{Counters, Increments};
use crate::store::{
    Analysis, AnalysisStatus, LookInsert, LookRow, Milestone, MilestoneKind, NewLook, StatusChange,
};
use crate::telemetry::LookCounts;
use crate::webhook::Outcome;

/// The end of the last look's window (or the analysis' start): where the next one begins.
fn last_window_end(analysis: &Analysis, looks: &[LookRow]) -> Millis {
    looks
        .last()
        .map(|l| l.look.window_end)
        .unwrap_or(analysis.started_at)
}

/// The counters the next look is differenced against: the last look's, or the reading
/// taken when the analysis opened. `None` for an analysis opened before counters were
/// kept (and whose last look has none).
fn previous_counters(analysis: &Analysis, looks: &[LookRow]) -> Result<Option<Counters>, Refusal> {
    let stored = match looks.last() {
        Some(last) if last.look.counters.is_some() => last.look.counters.as_deref(),
        _ => analysis.baseline.as_deref(),
    };
    stored
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                Refusal::dependency(format!(
                    "the stored counters of analysis {} do not read: {e}",
                    analysis.id
                ))
            })
        })
        .transpose()
}

/// A sample time for people, e.g. `2026-12-02T03:04:05.678Z`.
pub(super) fn clock_time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Counters as stored with a look or an analysis.
pub(super) fn encode_counters(counters: &Counters) -> Result<String, Refusal> {
    serde_json::to_string(counters)
        .map_err(|e| Refusal::dependency(format!("could not encode the counters: {e}")))
}

impl Analyst {
    /// `rollout`: 200 while there is no evidence of regression, 422 with the reason once
    /// one is established (and on every later call for the revision), 424 when the SLIs
    /// cannot be read (no look is recorded then).
    pub(super) async fn rollout(&self, call: &HookCall) -> Result<Answer, Refusal> {
        // Settings: the analysis of this revision, opened here (with its baseline
        // reading) when Flagger has no pre-rollout hook.
        let (analysis, created) = self.find_or_open(call).await?;
        if call.controller == Controller::Argo {
            // Argo says when a rollout ended only through the next revision's calls.
            self.end_earlier_revisions(call, &analysis).await?;
        }
        let settings = settings_of(&analysis)?;
        // The call that opened the analysis marks its start, whatever it answers.
        let started: Vec<Milestone> = created
            .then(|| self.milestone(MilestoneKind::Started, &analysis, "", analysis.started_at))
            .flatten()
            .into_iter()
            .collect();
        let id = Some(analysis.id);
        match analysis.status {
            AnalysisStatus::Running => {}
            AnalysisStatus::Failed => {
                let reason = failure_reason(&analysis).to_owned();
                return self.say(call, id, Outcome::Fail, reason).await;
            }
            ended => {
                let reason = format!(
                    "analysis already ended ({}); no new look taken",
                    ended.as_str()
                );
                return self.say(call, id, Outcome::Ok, reason).await;
            }
        }

        // The previous look's counters.
        let looks = self.store.looks_to_judge(analysis.id).await?;
        let previous = previous_counters(&analysis, &looks)?;
        let start = last_window_end(&analysis, &looks);
        let now = now_millis();
        let gap = i64::try_from(self.config.defaults.min_look_gap.as_millis()).unwrap_or(i64::MAX);
        if now - start < gap {
            // A retry, a duplicate, or the call that just opened the analysis: answer from
            // what is stored, take no new look.
            return self
                .answer_without_look(call, &analysis, settings, &looks, None, started)
                .await;
        }

        // Prometheus: both arms' counters now, and the counts since the previous look.
        let counters = self
            .sli
            .counters(&self.sli_target(settings, call)?, now)
            .await?;
        let Some(previous) = previous else {
            let baseline = encode_counters(&counters)?;
            self.store.record_baseline(analysis.id, &baseline).await?;
            let reason = "baseline counters recorded (this analysis was opened before verdict kept them); the next call takes the first look";
            return self.say(call, id, Outcome::Wait, reason).await;
        };
        let window = match counters.since(&previous) {
            Increments::Counts(window) => window,
            Increments::NoNewSample { arm, sampled_at } => {
                let why = format!(
                    "no look: Prometheus has no sample of the {arm} newer than at the previous look (last scraped at {}); this call carries no evidence",
                    clock_time(sampled_at)
                );
                return self
                    .answer_without_look(call, &analysis, settings, &looks, Some(why), started)
                    .await;
            }
        };

        // The judge: the stored looks, then this one.
        let (canary, primary) = judging::tallies(settings, &window);
        let next = judging::NextLook {
            canary,
            primary,
            window_end: now,
        };
        let judgement = judging::judge(settings, analysis.started_at, &looks, Some(&next))?;
        let outcome = judging::outcome_of(judgement.verdict());
        let reason = judgement.reason().to_owned();
        let evidence = judgement.look_evidence(&window)?;
        let new_look = NewLook {
            analysis_id: analysis.id,
            seq: i64::try_from(looks.len()).unwrap_or(i64::MAX) + 1,
            window_start: start,
            window_end: now,
            canary: next.canary,
            primary: next.primary,
            verdict: outcome.as_str().to_owned(),
            reason: reason.clone(),
            evidence: evidence.clone(),
            counters: Some(encode_counters(&counters)?),
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
        let (decision, answer) = Reply::new(id, outcome, reason)
            .with_evidence(Some(evidence))
            .with_look(new_look.seq)
            .with_milestones(started.iter().cloned().chain(regression))
            .record_of(call);

        // One store transaction: the look, its decision, the status change.
        let inserted = self
            .store
            .record_look(&new_look, &decision, change.as_ref())
            .await
            .inspect_err(|_| self.metrics.store_error("record_look"))?;

        // The answer.
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

    /// Answers a call that takes no look: from the last stored look, or, before the first
    /// one or when Prometheus had nothing new (`why`), with the judgement of the stored
    /// looks.
    async fn answer_without_look(
        &self,
        call: &HookCall,
        analysis: &Analysis,
        settings: &AnalysisSettings,
        looks: &[LookRow],
        why: Option<String>,
        milestones: Vec<Milestone>,
    ) -> Result<Answer, Refusal> {
        if let (None, Some(last)) = (&why, looks.last()) {
            return self.answer_from_look(call, last, milestones).await;
        }
        let judgement = judging::judge(settings, analysis.started_at, looks, None)?;
        let why = why.unwrap_or_else(|| {
            format!(
                "no look yet (the first one is taken at least {} after the analysis opened)",
                humantime::format_duration(self.config.defaults.min_look_gap)
            )
        });
        let reason = format!("{why}; {}", judgement.reason());
        let reply = Reply::new(
            Some(analysis.id),
            judging::outcome_of(judgement.verdict()),
            reason,
        )
        .with_evidence(judgement.evidence())
        .with_look(looks.last().map_or(0, |l| l.look.seq))
        .with_milestones(milestones);
        self.answer(call, reply, None).await
    }

    async fn answer_from_look(
        &self,
        call: &HookCall,
        look: &LookRow,
        milestones: Vec<Milestone>,
    ) -> Result<Answer, Refusal> {
        let outcome = Outcome::parse(&look.look.verdict).ok_or_else(|| {
            Refusal::dependency(format!(
                "look {} of analysis {} has an unknown verdict {:?}",
                look.look.seq, look.look.analysis_id, look.look.verdict
            ))
        })?;
        let reply = Reply::new(
            Some(look.look.analysis_id),
            outcome,
            look.look.reason.clone(),
        )
        .with_evidence(Some(look.look.evidence.clone()))
        .with_look(look.look.seq)
        .with_milestones(milestones);
        self.answer(call, reply, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(baseline: Option<&str>) -> Analysis {
        Analysis {
            baseline: baseline.map(str::to_owned),
            ..crate::analysis::unread_analysis(7, 0)
        }
    }

    #[test]
    fn previous_counters_come_from_the_baseline_and_bad_json_is_a_424() {
        let stored = Counters {
            read_at: 5,
            ..Counters::default()
        };
        let text = encode_counters(&stored).expect("encode");
        let found = previous_counters(&analysis(Some(&text)), &[]).expect("reads");
        assert_eq!(found, Some(stored));
        assert_eq!(previous_counters(&analysis(None), &[]).expect("none"), None);
        let broken = previous_counters(&analysis(Some("{not json")), &[]).unwrap_err();
        assert_eq!(broken.status.as_u16(), 424);
        assert!(broken.reason.contains("analysis 7"), "{}", broken.reason);
    }
}
