//! Load runs: what the load-test hook generated, from start to end.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::{Store, StoreError};
use crate::domain::{CanaryRef, LoadRunId, Millis};

/// A load run as it starts (the load-test hook).
#[derive(Debug, Clone, PartialEq)]
pub struct NewLoadRun {
    /// The generator's id of the run (a UUID).
    pub run_id: String,
    /// The canary whose load-test hook started it.
    pub canary: CanaryRef,
    /// Identifies the spec: a repeated call with the same one keeps the run.
    pub spec_checksum: String,
    /// The run's specification (JSON).
    pub spec: String,
    /// When it started.
    pub started_at: Millis,
}

/// How a load run ended.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct LoadRunOutcome {
    /// `completed` or `stopped`.
    pub status: String,
    /// When it ended.
    pub ended_at: Millis,
    /// Requests sent.
    pub requests: i64,
    /// Answers by HTTP status (JSON object).
    pub status_counts: String,
    /// Latency percentiles (JSON object).
    pub latency: String,
    /// Requests without an answer, by kind (JSON object).
    pub errors: String,
}

/// A stored load run; `outcome` is `None` while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRunRow {
    /// The store's id.
    pub id: LoadRunId,
    /// The run as it started.
    pub run: NewLoadRun,
    /// How it ended, once it has.
    pub outcome: Option<LoadRunOutcome>,
}

impl FromRow<'_, AnyRow> for LoadRunRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let ended_at: Option<Millis> = row.try_get("ended_at")?;
        Ok(Self {
            id: row.try_get("id")?,
            run: NewLoadRun {
                // Rows from before run ids were recorded have none.
                run_id: row
                    .try_get::<Option<String>, _>("run_id")?
                    .unwrap_or_default(),
                canary: CanaryRef::from_row(row)?,
                spec_checksum: row.try_get("spec_checksum")?,
                spec: row.try_get("spec")?,
                started_at: row.try_get("started_at")?,
            },
            outcome: ended_at
                .map(|_| LoadRunOutcome::from_row(row))
                .transpose()?,
        })
    }
}

impl Store {
    /// Records a load run as started (status `running`); an error means the run must
    /// not start.
    pub async fn start_load_run(&self, run: &NewLoadRun) -> Result<LoadRunId, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO load_run (run_id, namespace, name, spec_checksum, spec, status, \
             started_at) VALUES ($1, $2, $3, $4, $5, 'running', $6) RETURNING id",
        )
        .bind(run.run_id.as_str())
        .bind(&run.canary.namespace)
        .bind(&run.canary.name)
        .bind(run.spec_checksum.as_str())
        .bind(run.spec.as_str())
        .bind(run.started_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))
    }

    /// Records how a load run ended. A run that was never started is an error.
    pub async fn finish_load_run(
        &self,
        run_id: &str,
        outcome: &LoadRunOutcome,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE load_run SET status = $2, ended_at = $3, requests = $4, \
             status_counts = $5, latency = $6, errors = $7 WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(outcome.status.as_str())
        .bind(outcome.ended_at)
        .bind(outcome.requests)
        .bind(outcome.status_counts.as_str())
        .bind(outcome.latency.as_str())
        .bind(outcome.errors.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Query(format!("no load run {run_id} to finish")));
        }
        Ok(())
    }

    /// Load runs of a canary, oldest first.
    pub async fn load_runs(&self, canary: &CanaryRef) -> Result<Vec<LoadRunRow>, StoreError> {
        self.of_canary("load_run", canary).await
    }
}
