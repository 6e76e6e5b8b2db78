//! Analyses: one per canary revision, keyed by (namespace, name, checksum).

use sqlx::any::AnyRow;

use super::sql::{col, Conditions, SqlStore};
use super::{
    audit, outbox, Analysis, AnalysisFilter, AnalysisStatus, NewAnalysis, NewAnnotation, NewAudit,
    RollbackRequest, StatusChange, StoreError,
};
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
    let sql = format!(
        "SELECT {COLUMNS} FROM analysis WHERE namespace = $1 AND name = $2 AND checksum = $3"
    );
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

/// [`super::Store::list_analyses`]: the filters that are given, ANDed; newest first.
pub(super) async fn list(
    store: &SqlStore,
    f: &AnalysisFilter,
) -> Result<Vec<Analysis>, StoreError> {
    let mut w = Conditions::default();
    if let Some(namespace) = &f.namespace {
        w.text("namespace =", namespace);
    }
    if let Some(name) = &f.name {
        w.text("name =", name);
    }
    if let Some(status) = f.status {
        w.text("status =", status.as_str());
    }
    if let Some(since) = f.since {
        w.int("started_at >=", since);
    }
    if let Some(before) = f.before_id {
        w.int("id <", before);
    }
    let limit = w.limit(f.limit)?;
    let sql = format!(
        "SELECT {COLUMNS} FROM analysis{} ORDER BY id DESC {limit}",
        w.where_clause()
    );
    let rows = w
        .query(&sql)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

/// The most recently opened analysis of a canary, any revision.
pub(super) async fn latest(
    store: &SqlStore,
    namespace: &str,
    name: &str,
) -> Result<Option<Analysis>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM analysis WHERE namespace = $1 AND name = $2 \
         ORDER BY id DESC LIMIT 1"
    );
    let row = sqlx::query(&sql)
        .bind(namespace)
        .bind(name)
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    row.as_ref().map(from_row).transpose()
}

/// [`super::Store::request_rollback`].
///
/// The status test sits in the UPDATE itself, not in a read before it: a look failing
/// the analysis, Flagger's post-rollout hook or a second request at the same moment
/// cannot slip between the check and the write, so of two requests exactly one is
/// recorded. (`sql::apply_status` updates unconditionally, so it does not fit here.)
pub(super) async fn request_rollback(
    store: &SqlStore,
    analysis_id: i64,
    change: &StatusChange,
    audit: &NewAudit,
    annotation: Option<&NewAnnotation>,
) -> Result<RollbackRequest, StoreError> {
    if change.status != AnalysisStatus::Failed {
        return Err(StoreError::Query(format!(
            "a rollback request fails analysis {analysis_id}, but the change asks for status {}",
            change.status.as_str()
        )));
    }
    let sql = format!(
        "UPDATE analysis SET status = $1, status_reason = $2, finished_at = $3 \
         WHERE id = $4 AND status = $5 RETURNING {COLUMNS}"
    );
    let mut tx = store.begin_write().await?;
    let updated = sqlx::query(&sql)
        .bind(AnalysisStatus::Failed.as_str())
        .bind(change.reason.as_str())
        .bind(change.at)
        .bind(analysis_id)
        .bind(AnalysisStatus::Running.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| store.err(e))?;
    let Some(row) = updated else {
        // Nothing was written; say why, then end the transaction without a write.
        let current = sqlx::query(&format!("SELECT {COLUMNS} FROM analysis WHERE id = $1"))
            .bind(analysis_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| store.err(e))?;
        tx.rollback().await.map_err(|e| store.err(e))?;
        return Ok(match current {
            Some(row) => RollbackRequest::NotRunning(from_row(&row)?),
            None => RollbackRequest::Missing,
        });
    };
    let failed = from_row(&row)?;
    audit::insert(store, &mut tx, audit).await?;
    if let Some(annotation) = annotation {
        outbox::insert(store, &mut tx, annotation).await?;
    }
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(RollbackRequest::Recorded(failed))
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
    let status = AnalysisStatus::parse(&status).ok_or_else(|| {
        StoreError::Query(format!("stored analysis status {status:?} is unknown"))
    })?;
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
