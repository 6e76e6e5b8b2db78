//! Analyses: one per canary revision, keyed by (namespace, name, checksum).

use sqlx::any::AnyRow;

use super::sql::{col, SqlStore};
use super::{Analysis, AnalysisStatus, NewAnalysis, StoreError};
use crate::domain::{AnalysisKey, CanaryName, Checksum, Namespace};

const COLUMNS: &str =
    "id, namespace, name, checksum, settings, status, status_reason, started_at, finished_at";

/// Inserts the analysis unless its key exists, then reads whichever row holds the key.
///
/// `ON CONFLICT DO NOTHING` makes the insert race-free: of two identical calls at the
/// same moment exactly one inserts (Postgres makes the other wait for the winner's
/// commit; SQLite serialises writers), and the loser reads the winner's row.
pub(super) async fn open(
    store: &SqlStore,
    new: &NewAnalysis,
) -> Result<(Analysis, bool), StoreError> {
    let sql = format!(
        "INSERT INTO analysis (namespace, name, checksum, settings, status, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (namespace, name, checksum) DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let inserted = sqlx::query(&sql)
        .bind(new.key.namespace.as_str())
        .bind(new.key.name.as_str())
        .bind(new.key.checksum.as_str())
        .bind(new.settings.as_str())
        .bind(AnalysisStatus::Running.as_str())
        .bind(new.started_at)
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    if let Some(row) = inserted {
        return Ok((from_row(&row)?, true));
    }
    match find(store, &new.key).await? {
        Some(existing) => Ok((existing, false)),
        // Only possible if the row was deleted between the two statements.
        None => Err(StoreError::Query(format!(
            "analysis {} conflicted on insert but could not be read back",
            new.key
        ))),
    }
}

/// The analysis of one canary revision, if it was opened.
pub(super) async fn find(
    store: &SqlStore,
    key: &AnalysisKey,
) -> Result<Option<Analysis>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM analysis WHERE namespace = $1 AND name = $2 AND checksum = $3");
    let row = sqlx::query(&sql)
        .bind(key.namespace.as_str())
        .bind(key.name.as_str())
        .bind(key.checksum.as_str())
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    row.as_ref().map(from_row).transpose()
}

/// The analysis with this id, if any.
pub(super) async fn get(store: &SqlStore, id: i64) -> Result<Option<Analysis>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM analysis WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    row.as_ref().map(from_row).transpose()
}

/// Rebuilds an analysis, re-validating the identifiers: a row written by anything but
/// this code (a manual fix, a future migration) must not smuggle an invalid name into
/// PromQL.
fn from_row(row: &AnyRow) -> Result<Analysis, StoreError> {
    let invalid = |e: crate::domain::InvalidName| StoreError::Query(format!("stored {e}"));
    let key = AnalysisKey {
        namespace: Namespace::parse(&col::<String>(row, "namespace")?).map_err(invalid)?,
        name: CanaryName::parse(&col::<String>(row, "name")?).map_err(invalid)?,
        checksum: Checksum::parse(&col::<String>(row, "checksum")?).map_err(invalid)?,
    };
    let status: String = col(row, "status")?;
    let status = AnalysisStatus::parse(&status)
        .ok_or_else(|| StoreError::Query(format!("stored analysis status {status:?} is unknown")))?;
    Ok(Analysis {
        id: col(row, "id")?,
        key,
        settings: col(row, "settings")?,
        status,
        status_reason: col(row, "status_reason")?,
        started_at: col(row, "started_at")?,
        finished_at: col(row, "finished_at")?,
    })
}
