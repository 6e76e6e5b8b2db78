//! Looks: both arms' counts over one window and the judge's assessment after it.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::sql::{Select, Write};
use super::{NewDecision, StatusChange, Store, StoreError};
use crate::domain::{now_millis, AnalysisId, LookId, Millis};

/// One arm's counts over a look's window, as stored: what the judge was shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArmTally {
    /// Requests served.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Of which slower than each latency edge of the analysis' plan, in the plan's order
    /// (`<arm>_slower`, a JSON array; looks stored before plans have none).
    pub slower: Vec<u64>,
}

impl ArmTally {
    /// Requests and errors checked to fit BIGINT, and the slower counts as JSON.
    fn columns(&self, arm: &str) -> Result<(i64, i64, String), StoreError> {
        let to_db = |field: &str, value: u64| {
            i64::try_from(value).map_err(|_| {
                StoreError::Query(format!(
                    "{arm} {field} count {value} is larger than the store can hold"
                ))
            })
        };
        let slower = serde_json::to_string(&self.slower)
            .map_err(|e| StoreError::Query(format!("{arm} slower counts: {e}")))?;
        Ok((
            to_db("requests", self.requests)?,
            to_db("errors", self.errors)?,
            slower,
        ))
    }

    /// The arm's `<arm>_requests`, `<arm>_errors` and `<arm>_slower` columns.
    fn from_columns(row: &AnyRow, arm: &str) -> sqlx::Result<Self> {
        let count = |field: &str| -> sqlx::Result<u64> {
            let column = format!("{arm}_{field}");
            let value: i64 = row.try_get(column.as_str())?;
            u64::try_from(value).map_err(|_| sqlx::Error::ColumnDecode {
                index: column.clone(),
                source: format!("stored {column} is negative: {value}").into(),
            })
        };
        let column = format!("{arm}_slower");
        let slower: String = row.try_get(column.as_str())?;
        let slower = serde_json::from_str(&slower).map_err(|e| sqlx::Error::ColumnDecode {
            index: column.clone(),
            source: format!("stored {column} is not a list of counts: {e}").into(),
        })?;
        Ok(Self {
            requests: count("requests")?,
            errors: count("errors")?,
            slower,
        })
    }
}

/// One look: the counts of both arms over one window and the judge's assessment after it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLook {
    /// The analysis.
    pub analysis_id: AnalysisId,
    /// 1, 2, 3, … within the analysis.
    pub seq: i64,
    /// The window's start.
    pub window_start: Millis,
    /// The window's end.
    pub window_end: Millis,
    /// The canary's counts.
    pub canary: ArmTally,
    /// The primary's counts.
    pub primary: ArmTally,
    /// `pass`, `fail` or `wait`.
    pub verdict: String,
    /// The judge's one-line reason.
    pub reason: String,
    /// The judge's evidence after this look (JSON).
    pub evidence: String,
    /// Both arms' counters per series as this look read them (JSON, opaque here): the
    /// next look's counts are the differences to them. `None` in looks stored before.
    pub counters: Option<String>,
}

impl FromRow<'_, AnyRow> for NewLook {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            analysis_id: row.try_get("analysis_id")?,
            seq: row.try_get("seq")?,
            window_start: row.try_get("window_start")?,
            window_end: row.try_get("window_end")?,
            canary: ArmTally::from_columns(row, "canary")?,
            primary: ArmTally::from_columns(row, "primary")?,
            verdict: row.try_get("verdict")?,
            reason: row.try_get("reason")?,
            evidence: row.try_get("evidence")?,
            counters: row.try_get("counters")?,
        })
    }
}

/// A stored look.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct LookRow {
    /// The store's id.
    pub id: LookId,
    /// The look.
    #[sqlx(flatten)]
    pub look: NewLook,
    /// When it was written.
    pub created_at: Millis,
}

/// Result of [`Store::record_look`].
#[derive(Debug, Clone, PartialEq)]
pub enum LookInsert {
    /// This call inserted the look (and its decision, and the status change if any).
    Inserted(LookRow),
    /// Another call inserted look `seq` first; nothing was written. Here is that look.
    Exists(LookRow),
}

impl Store {
    /// The looks of an analysis, ordered by `seq`, each with its counters.
    pub async fn looks(&self, analysis_id: AnalysisId) -> Result<Vec<LookRow>, StoreError> {
        let of_analysis = "SELECT * FROM look WHERE analysis_id = $1 ORDER BY seq";
        self.all(sqlx::query_as(of_analysis).bind(analysis_id))
            .await
    }

    /// The looks of an analysis as a hook call needs them, ordered by `seq`: only the
    /// last one carries its `counters` (the next look differences against them); the
    /// earlier looks' counters are never read again, and loading them would cost every
    /// call a few KB per look.
    pub async fn looks_to_judge(
        &self,
        analysis_id: AnalysisId,
    ) -> Result<Vec<LookRow>, StoreError> {
        let of_analysis = "SELECT id, analysis_id, seq, window_start, window_end, \
             canary_requests, canary_errors, canary_slower, \
             primary_requests, primary_errors, primary_slower, \
             verdict, reason, evidence, created_at, \
             CASE WHEN seq = (SELECT MAX(seq) FROM look WHERE analysis_id = $1) \
             THEN counters END AS counters \
             FROM look WHERE analysis_id = $1 ORDER BY seq";
        self.all(sqlx::query_as(of_analysis).bind(analysis_id))
            .await
    }

    /// In one transaction: insert the look unless `(analysis_id, seq)` exists, then the
    /// decision (with its milestones), then the status change. On a conflict nothing is
    /// written and the existing look is returned.
    ///
    /// The unique key decides races between replicas and retries: the insert does
    /// nothing on a conflict, and then the transaction is rolled back so the loser's
    /// decision and status change are not written either.
    pub async fn record_look(
        &self,
        new: &NewLook,
        decision: &NewDecision,
        status: Option<&StatusChange>,
    ) -> Result<LookInsert, StoreError> {
        if let Some(other) = decision.analysis_id.filter(|&id| id != new.analysis_id) {
            return Err(StoreError::Query(format!(
                "the decision of look {} of analysis {} names analysis {other}",
                new.seq, new.analysis_id
            )));
        }
        let mut tx = self.begin_write().await?;
        let Some(look) = tx.insert_look(new).await? else {
            let existing = "SELECT * FROM look WHERE analysis_id = $1 AND seq = $2";
            let existing = sqlx::query_as(existing).bind(new.analysis_id).bind(new.seq);
            let existing = tx.optional(existing).await?;
            tx.abandon().await?;
            return existing.map(LookInsert::Exists).ok_or_else(|| {
                StoreError::Query(format!(
                    "look {} of analysis {} conflicted on insert but could not be read back",
                    new.seq, new.analysis_id
                ))
            });
        };
        let answer = NewDecision {
            analysis_id: Some(new.analysis_id),
            ..decision.clone()
        };
        tx.insert_decision(&answer).await?;
        if let Some(change) = status {
            tx.apply_status(new.analysis_id, change).await?;
        }
        tx.commit().await?;
        Ok(LookInsert::Inserted(look))
    }
}

impl Write<'_> {
    /// Inserts a look inside this transaction unless `(analysis_id, seq)` exists: the
    /// inserted row, or `None` on a conflict (nothing written).
    pub(super) async fn insert_look(
        &mut self,
        new: &NewLook,
    ) -> Result<Option<LookRow>, StoreError> {
        let canary = new.canary.columns("canary")?;
        let primary = new.primary.columns("primary")?;
        // canary_slow / canary_slo_slow (and the primary's) are kept for rows written
        // before plans (migration 0007); new rows leave them at 0.
        let insert: Select<'_, LookRow> = sqlx::query_as(
            "INSERT INTO look (analysis_id, seq, window_start, window_end, \
             canary_requests, canary_errors, canary_slower, canary_slow, canary_slo_slow, \
             primary_requests, primary_errors, primary_slower, primary_slow, primary_slo_slow, \
             verdict, reason, evidence, counters, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9, $10, 0, 0, $11, $12, $13, $14, $15) \
             ON CONFLICT (analysis_id, seq) DO NOTHING RETURNING *",
        )
        .bind(new.analysis_id)
        .bind(new.seq)
        .bind(new.window_start)
        .bind(new.window_end);
        let insert = [canary, primary]
            .into_iter()
            .fold(insert, |query, (requests, errors, slower)| {
                query.bind(requests).bind(errors).bind(slower)
            })
            .bind(new.verdict.as_str())
            .bind(new.reason.as_str())
            .bind(new.evidence.as_str())
            .bind(new.counters.as_deref())
            .bind(now_millis());
        self.optional(insert).await
    }
}
