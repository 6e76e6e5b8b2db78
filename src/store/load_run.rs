//! Load runs: what the load-test hook generated, from start to end.

use sqlx::any::AnyRow;

use super::sql::{col, SqlStore};
use super::{LoadRunOutcome, LoadRunRow, NewLoadRun, StoreError};

const COLUMNS: &str = "id, run_id, namespace, name, spec_checksum, spec, status, started_at, \
     ended_at, requests, status_counts, latency, errors";

/// Records a run as started (status `running`) and returns its row id.
pub(super) async fn start(store: &SqlStore, run: &NewLoadRun) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO load_run (run_id, namespace, name, spec_checksum, spec, status, started_at) \
         VALUES ($1, $2, $3, $4, $5, 'running', $6) RETURNING id",
    )
    .bind(run.run_id.as_str())
    .bind(run.namespace.as_str())
    .bind(run.name.as_str())
    .bind(run.spec_checksum.as_str())
    .bind(run.spec.as_str())
    .bind(run.started_at)
    .fetch_one(&store.pool)
    .await
    .map_err(|e| store.err(e))?;
    col(&row, "id")
}

/// Records how a run ended. A run that was never started is an error.
pub(super) async fn finish(
    store: &SqlStore,
    run_id: &str,
    outcome: &LoadRunOutcome,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE load_run SET status = $2, ended_at = $3, requests = $4, status_counts = $5, \
         latency = $6, errors = $7 WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(outcome.status.as_str())
    .bind(outcome.ended_at)
    .bind(outcome.requests)
    .bind(outcome.status_counts.as_str())
    .bind(outcome.latency.as_str())
    .bind(outcome.errors.as_str())
    .execute(&store.pool)
    .await
    .map_err(|e| store.err(e))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Query(format!("no load run {run_id} to finish")));
    }
    Ok(())
}

/// Runs of one canary, oldest first.
pub(super) async fn of_canary(
    store: &SqlStore,
    namespace: &str,
    name: &str,
) -> Result<Vec<LoadRunRow>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM load_run WHERE namespace = $1 AND name = $2 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(namespace)
        .bind(name)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<LoadRunRow, StoreError> {
    let ended_at: Option<i64> = col(row, "ended_at")?;
    let status: String = col(row, "status")?;
    Ok(LoadRunRow {
        id: col(row, "id")?,
        run: NewLoadRun {
            run_id: col::<Option<String>>(row, "run_id")?.unwrap_or_default(),
            namespace: col(row, "namespace")?,
            name: col(row, "name")?,
            spec_checksum: col(row, "spec_checksum")?,
            spec: col(row, "spec")?,
            started_at: col(row, "started_at")?,
        },
        outcome: ended_at
            .map(|ended_at| -> Result<LoadRunOutcome, StoreError> {
                Ok(LoadRunOutcome {
                    status: status.clone(),
                    ended_at,
                    requests: col(row, "requests")?,
                    status_counts: col(row, "status_counts")?,
                    latency: col(row, "latency")?,
                    errors: col(row, "errors")?,
                })
            })
            .transpose()?,
    })
}
