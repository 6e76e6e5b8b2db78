//! Decisions: every webhook answer, with or without an analysis.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::sql::{apply_status, col, SqlStore};
use super::{DecisionRow, NewDecision, StatusChange, StoreError};

const COLUMNS: &str = "id, analysis_id, namespace, name, checksum, hook, verdict, \
     status_code, reason, evidence, request_id, created_at";

/// Records a decision that took no new look, and its status change in the same
/// transaction, so an analysis never shows a status without the answer that set it.
pub(super) async fn record(
    store: &SqlStore,
    decision: &NewDecision,
    status: Option<&StatusChange>,
) -> Result<i64, StoreError> {
    let analysis_id = match (status, decision.analysis_id) {
        (Some(_), None) => {
            return Err(StoreError::Query(format!(
                "a status change needs an analysis, but the {} decision for {}/{} has none",
                decision.hook, decision.namespace, decision.name
            )))
        }
        (_, id) => id,
    };
    let mut tx = store.begin_write().await?;
    let id = insert(store, &mut tx, decision).await?;
    super::outbox::insert_all(store, &mut tx, &decision.annotations).await?;
    if let (Some(change), Some(analysis_id)) = (status, analysis_id) {
        apply_status(store, &mut tx, analysis_id, change).await?;
    }
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(id)
}

/// [`super::Store::record_decision_if_running`]: the no-op update takes the analysis
/// row's lock (Postgres) inside the write transaction (SQLite's is exclusive anyway), so
/// a rollback request either commits before (and this writes nothing) or waits until
/// this decision is in.
pub(super) async fn record_if_running(
    store: &SqlStore,
    decision: &NewDecision,
) -> Result<Option<i64>, StoreError> {
    let Some(analysis_id) = decision.analysis_id else {
        return Err(StoreError::Query(format!(
            "the {} decision for {}/{} names no analysis to check",
            decision.hook, decision.namespace, decision.name
        )));
    };
    let mut tx = store.begin_write().await?;
    let running =
        sqlx::query("UPDATE analysis SET status = status WHERE id = $1 AND status = 'running'")
            .bind(analysis_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| store.err(e))?
            .rows_affected()
            == 1;
    if !running {
        tx.rollback().await.map_err(|e| store.err(e))?;
        return Ok(None);
    }
    let id = insert(store, &mut tx, decision).await?;
    super::outbox::insert_all(store, &mut tx, &decision.annotations).await?;
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(Some(id))
}

/// Inserts one decision on the caller's connection (inside its transaction).
pub(super) async fn insert(
    store: &SqlStore,
    conn: &mut AnyConnection,
    d: &NewDecision,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO decision (analysis_id, namespace, name, checksum, hook, verdict, \
         status_code, reason, evidence, request_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(d.analysis_id)
    .bind(d.namespace.as_str())
    .bind(d.name.as_str())
    .bind(d.checksum.as_str())
    .bind(d.hook.as_str())
    .bind(d.verdict.as_str())
    .bind(d.status_code)
    .bind(d.reason.as_str())
    .bind(d.evidence.as_deref())
    .bind(d.request_id.as_str())
    .bind(d.created_at)
    .fetch_one(conn)
    .await
    .map_err(|e| store.err(e))?;
    col(&row, "id")
}

/// Decisions of one analysis, oldest first.
pub(super) async fn of_analysis(
    store: &SqlStore,
    analysis_id: i64,
) -> Result<Vec<DecisionRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM decision WHERE analysis_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(analysis_id)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

/// Decisions recorded for one canary, any revision or none, oldest first.
pub(super) async fn of_canary(
    store: &SqlStore,
    namespace: &str,
    name: &str,
) -> Result<Vec<DecisionRow>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM decision WHERE namespace = $1 AND name = $2 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(namespace)
        .bind(name)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<DecisionRow, StoreError> {
    Ok(DecisionRow {
        id: col(row, "id")?,
        decision: NewDecision {
            analysis_id: col(row, "analysis_id")?,
            namespace: col(row, "namespace")?,
            name: col(row, "name")?,
            checksum: col(row, "checksum")?,
            hook: col(row, "hook")?,
            verdict: col(row, "verdict")?,
            status_code: col(row, "status_code")?,
            reason: col(row, "reason")?,
            evidence: col(row, "evidence")?,
            request_id: col(row, "request_id")?,
            created_at: col(row, "created_at")?,
            annotations: Vec::new(),
        },
    })
}
