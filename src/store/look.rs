//! Looks: both arms' counts over one window and the judge's assessment after it.

use sqlx::any::AnyRow;

use super::decision;
use super::sql::{apply_status, col, SqlStore};
use super::{LookInsert, LookRow, NewDecision, NewLook, StatusChange, StoreError};
use crate::domain::now_millis;
use crate::judge::ArmLook;

const COLUMNS: &str = "id, analysis_id, seq, window_start, window_end, \
     canary_requests, canary_errors, canary_slower, \
     primary_requests, primary_errors, primary_slower, \
     verdict, reason, evidence, created_at";

/// Records look `seq` with its decision and optional status change, all or nothing.
///
/// The unique key (analysis_id, seq) decides races between replicas and retries: the
/// insert does nothing on a conflict, and then the transaction is rolled back so the
/// loser's decision and status change are not written either.
pub(super) async fn record(
    store: &SqlStore,
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
    let counts = Counts::of(new)?;
    let created_at = now_millis();
    let mut tx = store.begin_write().await?;

    let sql = format!(
        "INSERT INTO look (analysis_id, seq, window_start, window_end, \
         canary_requests, canary_errors, canary_slower, canary_slow, canary_slo_slow, \
         primary_requests, primary_errors, primary_slower, primary_slow, primary_slo_slow, \
         verdict, reason, evidence, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9, $10, 0, 0, $11, $12, $13, $14) \
         ON CONFLICT (analysis_id, seq) DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let mut query = sqlx::query(&sql)
        .bind(new.analysis_id)
        .bind(new.seq)
        .bind(new.window_start)
        .bind(new.window_end);
    for (requests, errors, slower) in counts.0 {
        query = query.bind(requests).bind(errors).bind(slower);
    }
    let inserted = query
        .bind(new.verdict.as_str())
        .bind(new.reason.as_str())
        .bind(new.evidence.as_str())
        .bind(created_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| store.err(e))?;

    let Some(row) = inserted else {
        let sql = format!("SELECT {COLUMNS} FROM look WHERE analysis_id = $1 AND seq = $2");
        let existing = sqlx::query(&sql)
            .bind(new.analysis_id)
            .bind(new.seq)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| store.err(e))?;
        tx.rollback().await.map_err(|e| store.err(e))?;
        return match existing {
            Some(row) => Ok(LookInsert::Exists(from_row(&row)?)),
            None => Err(StoreError::Query(format!(
                "look {} of analysis {} conflicted on insert but could not be read back",
                new.seq, new.analysis_id
            ))),
        };
    };
    let look = from_row(&row)?;

    let answer = NewDecision {
        analysis_id: Some(new.analysis_id),
        ..decision.clone()
    };
    decision::insert(store, &mut tx, &answer).await?;
    super::outbox::insert_all(store, &mut tx, &answer.annotations).await?;
    if let Some(change) = status {
        apply_status(store, &mut tx, new.analysis_id, change).await?;
    }
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(LookInsert::Inserted(look))
}

/// The looks of an analysis in `seq` order.
pub(super) async fn list(store: &SqlStore, analysis_id: i64) -> Result<Vec<LookRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM look WHERE analysis_id = $1 ORDER BY seq");
    let rows = sqlx::query(&sql)
        .bind(analysis_id)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

/// Each arm's requests, errors (checked to fit BIGINT) and slower counts (JSON), canary first.
struct Counts([(i64, i64, String); 2]);

impl Counts {
    fn of(look: &NewLook) -> Result<Self, StoreError> {
        let arm = |name: &str, a: &ArmLook| -> Result<(i64, i64, String), StoreError> {
            Ok((
                to_db(name, "requests", a.requests)?,
                to_db(name, "errors", a.errors)?,
                serde_json::to_string(&a.slower)
                    .map_err(|e| StoreError::Query(format!("{name} slower counts: {e}")))?,
            ))
        };
        Ok(Self([arm("canary", &look.canary)?, arm("primary", &look.primary)?]))
    }
}

fn to_db(arm: &str, field: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Query(format!(
            "{arm} {field} count {value} is larger than the store can hold"
        ))
    })
}

fn arm_from_row(row: &AnyRow, arm: &str) -> Result<ArmLook, StoreError> {
    let count = |field: &str| -> Result<u64, StoreError> {
        let name = format!("{arm}_{field}");
        let value: i64 = col(row, &name)?;
        u64::try_from(value)
            .map_err(|_| StoreError::Query(format!("stored {name} is negative: {value}")))
    };
    let name = format!("{arm}_slower");
    let slower: String = col(row, &name)?;
    Ok(ArmLook {
        requests: count("requests")?,
        errors: count("errors")?,
        slower: serde_json::from_str(&slower)
            .map_err(|e| StoreError::Query(format!("stored {name} is not a list of counts: {e}")))?,
    })
}

fn from_row(row: &AnyRow) -> Result<LookRow, StoreError> {
    Ok(LookRow {
        id: col(row, "id")?,
        look: NewLook {
            analysis_id: col(row, "analysis_id")?,
            seq: col(row, "seq")?,
            window_start: col(row, "window_start")?,
            window_end: col(row, "window_end")?,
            canary: arm_from_row(row, "canary")?,
            primary: arm_from_row(row, "primary")?,
            verdict: col(row, "verdict")?,
            reason: col(row, "reason")?,
            evidence: col(row, "evidence")?,
        },
        created_at: col(row, "created_at")?,
    })
}
