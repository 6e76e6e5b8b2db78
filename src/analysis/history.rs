//! What verdict decided and why, for people: analyses, one analysis with its evidence,
//! and the audit log of manual actions.

use super::{Analyst, ServiceError};
use crate::domain::{now_millis, AnalysisId};
use crate::store::{
    Analysis, AnalysisFilter, AuditFilter, AuditRow, DecisionRow, EventRow, LoadRunRow, LookRow,
};

/// One analysis with everything it rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRecord {
    /// The analysis.
    pub analysis: Analysis,
    /// Its looks, by `seq`.
    pub looks: Vec<LookRow>,
    /// Its hook answers, oldest first.
    pub decisions: Vec<DecisionRow>,
    /// The canary's load runs that overlapped the analysis, oldest first.
    pub load_runs: Vec<LoadRunRow>,
    /// Flagger's events about the canary received while the analysis ran, oldest first.
    pub events: Vec<EventRow>,
}

impl Analyst {
    /// Analyses matching `filter`, newest first.
    pub async fn analyses(&self, filter: &AnalysisFilter) -> Result<Vec<Analysis>, ServiceError> {
        Ok(self.store.list_analyses(filter).await?)
    }

    /// One analysis with its looks, decisions and the canary's load runs during it.
    pub async fn analysis(&self, id: AnalysisId) -> Result<AnalysisRecord, ServiceError> {
        let analysis = self
            .store
            .get_analysis(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no analysis {id}")))?;
        let looks = self.store.looks(id).await?;
        let decisions = self.store.decisions(id).await?;
        let end = analysis.finished_at.unwrap_or_else(now_millis);
        let load_runs = self
            .store
            .load_runs(&analysis.canary())
            .await?
            .into_iter()
            .filter(|r| {
                let run_end = r.outcome.as_ref().map_or(i64::MAX, |o| o.ended_at);
                r.run.started_at <= end && run_end >= analysis.started_at
            })
            .collect();
        let events = self
            .store
            .events(&analysis.canary())
            .await?
            .into_iter()
            .filter(|e| (analysis.started_at..=end).contains(&e.event.received_at))
            .collect();
        Ok(AnalysisRecord {
            analysis,
            looks,
            decisions,
            load_runs,
            events,
        })
    }

    /// Audit rows matching `filter`, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, ServiceError> {
        Ok(self.store.audit(filter).await?)
    }
}
