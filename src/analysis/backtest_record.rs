//! Recording a window backtest (`verdict backtest … --record`): the run becomes an
//! analysis of origin `backtest` with its looks and the decisions the rollout hook would
//! have recorded (the same [`Reply`] code), stored in one transaction by
//! [`crate::store::Store::record_backtest`]. Its checksum is `backtest-<from>-<to>-<id>`
//! with a fresh id, so it never collides with a live revision and recording the same
//! window again makes a second analysis; the hooks, the canary view and the overview
//! never read it (docs/operations.md, "Backtests").

use super::answer::Reply;
use super::backtest_outcome::{Ending, Outcome as RunOutcome};
use super::backtest_window::{service_error, TakenLook, WindowQuery, WindowRun};
use super::look::encode_counters;
use super::{Analyst, HookCall, ServiceError};
use crate::domain::{AnalysisKey, AnalysisSettings, Checksum, Millis};
use crate::sli::Counters;
use crate::store::{Analysis, AnalysisStatus, NewAnalysis, NewBacktest, NewLook, StatusChange};
use crate::webhook::{Hook, Outcome, Phase};

impl Analyst {
    /// Stores `run` (judged under `settings`, opened with `baseline`) as a backtest
    /// analysis, all or nothing.
    pub(super) async fn record_window(
        &self,
        query: &WindowQuery,
        settings: AnalysisSettings,
        baseline: &Counters,
        run: &WindowRun,
        taken: &[TakenLook],
    ) -> Result<Analysis, ServiceError> {
        let recording = uuid::Uuid::new_v4().simple().to_string();
        let checksum = format!("backtest-{}-{}-{recording}", query.from, query.to);
        let key = AnalysisKey {
            namespace: query.namespace.clone(),
            name: query.target.clone(),
            checksum: Checksum::try_from(checksum)
                .map_err(|e| ServiceError::Invalid(e.to_string()))?,
        };
        // The call the rollout hook would have answered at each look.
        let call = HookCall {
            hook: Hook::Rollout,
            key: key.clone(),
            phase: Phase::Other("Progressing".into()),
            metadata: query.metadata.clone(),
            request_id: format!("backtest-{recording}"),
            mode: settings.canary.mode,
            controller: settings.canary.controller,
        };
        let looks = taken
            .iter()
            .map(|t| {
                let outcome = Outcome::parse(t.verdict).ok_or_else(|| {
                    ServiceError::Invalid(format!("look {} has verdict {:?}", t.seq, t.verdict))
                })?;
                let (mut decision, _) = Reply::new(None, outcome, t.reason.clone())
                    .with_evidence(Some(t.evidence.clone()))
                    .record_of(&call);
                decision.created_at = t.at;
                let look = NewLook {
                    // Set by the store once the analysis has its id.
                    analysis_id: crate::domain::AnalysisId::new(0),
                    seq: t.seq,
                    window_start: t.window_start,
                    window_end: t.at,
                    canary: t.look.canary.clone(),
                    primary: t.look.primary.clone(),
                    verdict: t.verdict.to_owned(),
                    reason: t.reason.clone(),
                    evidence: t.evidence.clone(),
                    counters: Some(encode_counters(&t.counters).map_err(service_error)?),
                };
                Ok((look, decision))
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let backtest = NewBacktest {
            analysis: NewAnalysis {
                key,
                settings,
                started_at: query.from,
                baseline: Some(encode_counters(baseline).map_err(service_error)?),
            },
            looks,
            end: end_of(
                &run.outcome,
                &taken
                    .iter()
                    .map(|t| (t.seq, t.at, t.reason.as_str()))
                    .collect::<Vec<_>>(),
                query.to,
            ),
        };
        Ok(self.store.record_backtest(&backtest).await?)
    }
}

/// How a recorded run ends: failed at its failing look, succeeded when it would have been
/// promoted, aborted when undecided at the window's end. `looks` are the looks taken as
/// `(seq, time, reason)`.
fn end_of(outcome: &RunOutcome, looks: &[(i64, Millis, &str)], to: Millis) -> StatusChange {
    let deciding = looks.iter().find(|(seq, _, _)| Some(*seq) == outcome.look);
    match outcome.ending {
        Ending::RolledBack => StatusChange {
            status: AnalysisStatus::Failed,
            reason: deciding.map_or_else(String::new, |(_, _, reason)| (*reason).to_owned()),
            at: deciding.map_or(to, |(_, at, _)| *at),
        },
        Ending::Promoted => StatusChange {
            status: AnalysisStatus::Succeeded,
            reason: format!(
                "backtest: would have been promoted from look {}",
                outcome.look.unwrap_or_default()
            ),
            at: looks.last().map_or(to, |(_, at, _)| *at),
        },
        Ending::Undecided => StatusChange {
            status: AnalysisStatus::Aborted,
            reason: format!(
                "backtest: undecided at the window's end after {} looks",
                looks.len()
            ),
            at: to,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::backtest_outcome::outcome;

    #[test]
    fn a_run_ends_failed_promoted_or_aborted() {
        let looks = [(1, 10, "wait"), (2, 20, "fail: regression")];
        let o = outcome([(1, "wait"), (2, "fail")]);
        let end = end_of(&o, &looks, 99);
        assert_eq!(
            (end.status, end.reason.as_str(), end.at),
            (AnalysisStatus::Failed, "fail: regression", 20)
        );
        let looks = [(1, 10, "wait"), (2, 20, "pass"), (3, 30, "pass")];
        let end = end_of(
            &outcome([(1, "wait"), (2, "pass"), (3, "pass")]),
            &looks,
            99,
        );
        assert_eq!((end.status, end.at), (AnalysisStatus::Succeeded, 30));
        assert!(
            end.reason.contains("promoted from look 2"),
            "{}",
            end.reason
        );
        let end = end_of(
            &outcome([(1, "wait"), (2, "pass"), (3, "wait")]),
            &looks,
            99,
        );
        assert_eq!((end.status, end.at), (AnalysisStatus::Aborted, 99));
        assert!(end.reason.contains("after 3 looks"), "{}", end.reason);
    }
}
