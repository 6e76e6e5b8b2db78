//! Records hook-started load runs in the store.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};

use super::manager::{RunRecord, RunSink, SinkError};
use super::result::LoadResult;
use crate::domain::CanaryRef;
use crate::store::{LoadRunOutcome, NewLoadRun, Store};

/// A [`RunSink`] over the [`Store`]: a run starts only once its row is written, and its
/// end is written with retries so a brief store outage does not lose the result.
pub struct StoreSink {
    store: Store,
}

impl std::fmt::Debug for StoreSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSink").finish_non_exhaustive()
    }
}

impl StoreSink {
    /// Records runs in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait]
impl RunSink for StoreSink {
    async fn run_started(&self, run: &RunRecord) -> Result<(), SinkError> {
        let new = NewLoadRun {
            run_id: run.id.to_string(),
            canary: CanaryRef {
                namespace: run.namespace.clone(),
                name: run.name.clone(),
            },
            spec_checksum: run.spec_checksum.clone(),
            spec: serde_json::to_string(&run.spec)?,
            started_at: run.started_at,
        };
        self.store.start_load_run(&new).await?;
        Ok(())
    }

    async fn run_finished(&self, run: &RunRecord, result: &LoadResult) -> Result<(), SinkError> {
        let outcome = LoadRunOutcome {
            status: if result.stopped {
                "stopped"
            } else {
                "completed"
            }
            .to_owned(),
            ended_at: result.ended_at,
            requests: i64::try_from(result.requests).unwrap_or(i64::MAX),
            status_counts: serde_json::to_string(&result.status_counts)?,
            latency: serde_json::to_string(&result.latency)?,
            errors: serde_json::to_string(&result.errors)?,
        };
        let run_id = run.id.to_string();
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(6)
            .with_jitter();
        (|| async { self.store.finish_load_run(&run_id, &outcome).await })
            .retry(policy)
            .await?;
        Ok(())
    }
}
