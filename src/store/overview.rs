//! The canaries-now overview in a few queries, not a few per canary: the latest analysis
//! of every canary that is running or ended recently, the newest look of each, every
//! hand-set gate and gate mode, and each canary's latest canary weight from Flagger's
//! events.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::sql::Select;
use super::{Analysis, AnalysisStatus, GateRow, Store, StoreError};
use crate::domain::{AnalysisId, CanaryRef, Millis, Namespace};

/// Which canaries the overview lists.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewFilter {
    /// Canaries whose latest analysis is running, or started or ended at or after this.
    pub recent_since: Millis,
    /// Only this namespace.
    pub namespace: Option<Namespace>,
    /// Only canaries whose latest analysis is in this state.
    pub status: Option<AnalysisStatus>,
    /// At most this many canaries (by namespace and name).
    pub limit: i64,
}

/// The newest look of an analysis: how many looks it has and what the judge said last.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestLook {
    /// The analysis.
    pub analysis_id: AnalysisId,
    /// Looks so far (the newest look's `seq`).
    pub seq: i64,
    /// `pass`, `fail` or `wait`.
    pub verdict: String,
    /// The judge's one-line reason.
    pub reason: String,
}

impl FromRow<'_, AnyRow> for LatestLook {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            analysis_id: row.try_get("analysis_id")?,
            seq: row.try_get("seq")?,
            verdict: row.try_get("verdict")?,
            reason: row.try_get("reason")?,
        })
    }
}

/// A canary's recorded gate mode (`gate: manual` or not).
#[derive(Debug, Clone, PartialEq)]
pub struct GateModeRow {
    /// The canary.
    pub canary: CanaryRef,
    /// Whether its gates are manual.
    pub manual: bool,
}

impl FromRow<'_, AnyRow> for GateModeRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            canary: CanaryRef::from_row(row)?,
            manual: row.try_get::<i64, _>("manual")? != 0,
        })
    }
}

/// A Flagger event's text, for the weights it names.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct EventText {
    /// The canary.
    #[sqlx(flatten)]
    pub canary: CanaryRef,
    /// The event's text.
    pub message: String,
    /// When verdict received it.
    pub received_at: Millis,
}

/// The analyses the overview shows, as a condition on table alias `a`: each canary's
/// latest live analysis (a recorded backtest is never a canary's now).
const LATEST_RECENT: &str = "a.id = (SELECT MAX(b.id) FROM analysis b \
     WHERE b.namespace = a.namespace AND b.name = a.name AND b.origin = 'live') \
     AND (a.status = 'running' OR a.started_at >= $1 OR a.finished_at >= $1)";

impl Store {
    /// The latest analysis of each canary matching `f`, by namespace and name.
    pub async fn overview_analyses(&self, f: &OverviewFilter) -> Result<Vec<Analysis>, StoreError> {
        let mut sql = format!("SELECT a.* FROM analysis a WHERE {LATEST_RECENT}");
        if f.namespace.is_some() {
            sql.push_str(" AND a.namespace = $2");
        }
        if f.status.is_some() {
            sql.push_str(if f.namespace.is_some() {
                " AND a.status = $3"
            } else {
                " AND a.status = $2"
            });
        }
        sql.push_str(&format!(" ORDER BY a.namespace, a.name LIMIT {}", f.limit));
        let mut q: Select<'_, Analysis> = sqlx::query_as(&sql).bind(f.recent_since);
        if let Some(ns) = &f.namespace {
            q = q.bind(ns.as_str().to_owned());
        }
        if let Some(status) = f.status {
            q = q.bind(status.as_str());
        }
        self.all(q).await
    }

    /// The newest look of every analysis the overview since `recent_since` can show.
    pub async fn overview_looks(
        &self,
        recent_since: Millis,
    ) -> Result<Vec<LatestLook>, StoreError> {
        let sql = format!(
            "SELECT l.analysis_id, l.seq, l.verdict, l.reason FROM look l \
             JOIN (SELECT m.analysis_id, MAX(m.seq) AS seq FROM look m \
                   JOIN analysis a ON a.id = m.analysis_id WHERE {LATEST_RECENT} \
                   GROUP BY m.analysis_id) n \
             ON l.analysis_id = n.analysis_id AND l.seq = n.seq"
        );
        self.all(sqlx::query_as(&sql).bind(recent_since)).await
    }

    /// Every gate ever set by hand.
    pub async fn all_gates(&self) -> Result<Vec<GateRow>, StoreError> {
        self.all(sqlx::query_as("SELECT * FROM gate ORDER BY id"))
            .await
    }

    /// Every recorded gate mode.
    pub async fn all_gate_modes(&self) -> Result<Vec<GateModeRow>, StoreError> {
        self.all(sqlx::query_as(
            "SELECT namespace, name, manual FROM gate_mode",
        ))
        .await
    }

    /// Flagger's events naming a canary weight received at or after `since`, oldest
    /// first.
    pub async fn weight_events(&self, since: Millis) -> Result<Vec<EventText>, StoreError> {
        self.all(
            sqlx::query_as(
                "SELECT namespace, name, message, received_at FROM event \
                 WHERE received_at >= $1 AND message LIKE '%weight%' ORDER BY id",
            )
            .bind(since),
        )
        .await
    }
}
