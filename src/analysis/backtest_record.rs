//! Recording a window backtest (`verdict backtest … --record`): the run becomes an
//! analysis of origin `backtest` with its looks and the decisions the rollout hook would
//! have recorded (the same [`Reply`] code), stored in one transaction by
//! [`crate::store::Store::record_backtest`]. Its checksum is `backtest-<from>-<to>-<id>`
//! with a fresh id, so it never collides with a live revision and recording the same
//! window again makes a second analysis; the hooks, the canary view and the overview
//! never read it (docs/operations.md, "Backtests").

use super::answer::Reply;
use super::backtest_outcome::Ending;
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
            end: end_of(run, taken, query.to),
        };
        Ok(self.store.record_backtest(&backtest).await?)
    }
}

/// How a recorded run ends: failed at its failing look, succeeded when it would have been
/// promoted, aborted when undecided at the window's end.
fn end_of(run: &WindowRun, taken: &[TakenLook], to: Millis) -> StatusChange {
    let at = |seq: Option<i64>| {
        taken
            .iter()
            .find(|t| Some(t.seq) == seq)
            .map_or(to, |t| t.at)
    };
    let look = run.outcome.look;
    match run.outcome.ending {
        Ending::RolledBack => StatusChange {
            status: AnalysisStatus::Failed,
            reason: taken
                .iter()
                .find(|t| Some(t.seq) == look)
                .map_or_else(String::new, |t| t.reason.clone()),
            at: at(look),
        },
        Ending::Promoted => StatusChange {
            status: AnalysisStatus::Succeeded,
            reason: format!(
                "backtest: would have been promoted from look {}",
                look.unwrap_or_default()
            ),
            at: taken.last().map_or(to, |t| t.at),
        },
        Ending::Undecided => StatusChange {
            status: AnalysisStatus::Aborted,
            reason: format!(
                "backtest: undecided at the window's end after {} looks",
                taken.len()
            ),
            at: to,
        },
    }
}
