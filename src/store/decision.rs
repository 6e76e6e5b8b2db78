//! Decisions: every webhook answer, with or without an analysis.

use sqlx::FromRow;

use super::sql::Write;
use super::{Milestone, StatusChange, Store, StoreError};
use crate::domain::{AnalysisId, AnalysisKey, CanaryRef, DecisionId, Millis};

/// One webhook answer, as recorded.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct NewDecision {
    /// The analysis it belongs to; `None` for answers that belong to none (e.g. a
    /// refused confirm-rollout before the analysis is opened).
    pub analysis_id: Option<AnalysisId>,
    /// The canary revision the call named (checksum `none` when Flagger sent none).
    #[sqlx(flatten)]
    pub key: AnalysisKey,
    /// The hook path segment, e.g. `rollout`.
    pub hook: String,
    /// `pass`, `fail`, `wait`, `ok`, `error`.
    pub verdict: String,
    /// The HTTP status Flagger received.
    pub status_code: i64,
    /// The one-line reason Flagger received.
    pub reason: String,
    /// Evidence JSON, when the answer rests on evidence.
    pub evidence: Option<String>,
    /// The call's `x-request-id`.
    pub request_id: String,
    /// When it was answered.
    pub created_at: Millis,
    /// Milestones to put in the outbox in the same transaction as this decision (none
    /// when nothing reads the outbox). Write-only: decisions read back carry none.
    #[sqlx(skip)]
    pub milestones: Vec<Milestone>,
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct DecisionRow {
    /// The store's id.
    pub id: DecisionId,
    /// The answer.
    #[sqlx(flatten)]
    pub decision: NewDecision,
}

impl Store {
    /// Records a decision that took no new look, and its status change in the same
    /// transaction, so an analysis never shows a status without the answer that set it.
    pub async fn record_decision(
        &self,
        decision: &NewDecision,
        status: Option<&StatusChange>,
    ) -> Result<DecisionId, StoreError> {
        let analysis_id = match (status, decision.analysis_id) {
            (Some(_), None) => {
                return Err(StoreError::Query(format!(
                    "a status change needs an analysis, but the {} decision for {} has none",
                    decision.hook, decision.key
                )))
            }
            (_, id) => id,
        };
        let mut tx = self.begin_write().await?;
        let id = tx.insert_decision(decision).await?;
        if let (Some(change), Some(analysis_id)) = (status, analysis_id) {
            tx.apply_status(analysis_id, change).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Records a decision only while its analysis is running, atomically with that check:
    /// `None` (nothing written) when the analysis has ended, e.g. a rollback request
    /// committed first. For answers that let a canary go further (promotion).
    ///
    /// The no-op update takes the analysis row's lock (Postgres) inside the write
    /// transaction (SQLite's is exclusive anyway), so a rollback request either commits
    /// before (and this writes nothing) or waits until this decision is in.
    pub async fn record_decision_if_running(
        &self,
        decision: &NewDecision,
    ) -> Result<Option<DecisionId>, StoreError> {
        let Some(analysis_id) = decision.analysis_id else {
            return Err(StoreError::Query(format!(
                "the {} decision for {} names no analysis to check",
                decision.hook, decision.key
            )));
        };
        let mut tx = self.begin_write().await?;
        let running =
            sqlx::query("UPDATE analysis SET status = status WHERE id = $1 AND status = 'running'")
                .bind(analysis_id)
                .execute(&mut *tx.tx)
                .await
                .map_err(|e| self.err(e))?
                .rows_affected()
                == 1;
        if !running {
            tx.abandon().await?;
            return Ok(None);
        }
        let id = tx.insert_decision(decision).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Decisions of an analysis, oldest first.
    pub async fn decisions(&self, analysis_id: AnalysisId) -> Result<Vec<DecisionRow>, StoreError> {
        let of_analysis = "SELECT * FROM decision WHERE analysis_id = $1 ORDER BY id";
        self.all(sqlx::query_as(of_analysis).bind(analysis_id))
            .await
    }

    /// Decisions recorded for a canary (any revision, or none), oldest first: also the
    /// answers that had no analysis (e.g. refused calls).
    pub async fn decisions_for(&self, canary: &CanaryRef) -> Result<Vec<DecisionRow>, StoreError> {
        self.of_canary("decision", canary).await
    }
}

impl Write<'_> {
    /// Inserts one decision and its milestones inside this transaction.
    pub(super) async fn insert_decision(
        &mut self,
        d: &NewDecision,
    ) -> Result<DecisionId, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO decision (analysis_id, namespace, name, checksum, hook, verdict, \
             status_code, reason, evidence, request_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(d.analysis_id)
        .bind(&d.key.namespace)
        .bind(&d.key.name)
        .bind(&d.key.checksum)
        .bind(d.hook.as_str())
        .bind(d.verdict.as_str())
        .bind(d.status_code)
        .bind(d.reason.as_str())
        .bind(d.evidence.as_deref())
        .bind(d.request_id.as_str())
        .bind(d.created_at)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(|e| self.store.err(e))?;
        self.insert_milestones(&d.milestones).await?;
        Ok(id)
    }
}
