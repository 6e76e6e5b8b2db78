//! Load runs started by Flagger's `load-test` hook: at most one per canary and spec, within
//! server-wide caps, each recorded through a [`RunSink`], all stopped on shutdown.
//!
//! Flagger calls the hook on every analysis tick, so the same request arrives again and again
//! while a run is going: that is acknowledged, not started twice. A different spec for the same
//! canary (the Canary resource was edited) replaces the old run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::engine::Prepared;
use super::policy::LoadPolicy;
use super::result::LoadResult;
use super::spec::{LoadSpec, SpecError};
use crate::domain::{now_millis, CanaryName, Millis, Namespace};

/// Which canary a run belongs to.
pub type CanaryKey = (Namespace, CanaryName);

/// Why a sink could not record a run.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// One run as recorded when it starts (the store's `load_run` row without the outcome).
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Unique per run.
    pub id: Uuid,
    /// The canary's namespace.
    pub namespace: Namespace,
    /// The canary's name.
    pub name: CanaryName,
    /// [`LoadSpec::checksum`] of `spec`.
    pub spec_checksum: String,
    /// What runs.
    pub spec: LoadSpec,
    /// Wall clock when it was accepted.
    pub started_at: Millis,
}

/// Where runs are recorded; the store implements it, tests use [`MemorySink`].
#[async_trait]
pub trait RunSink: Send + Sync + std::fmt::Debug {
    /// Called before the run sends anything. An error refuses the run
    /// ([`LoadError::Record`]): no run happens that is not in the store.
    async fn run_started(&self, run: &RunRecord) -> Result<(), SinkError>;
    /// Called once when the run has ended, whether completed or stopped. An error is logged.
    async fn run_finished(&self, run: &RunRecord, result: &LoadResult) -> Result<(), SinkError>;
}

/// What [`LoadManager::start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new run started.
    Started {
        /// The new run.
        run_id: Uuid,
    },
    /// The same spec is already running for this canary; nothing new started.
    AlreadyRunning {
        /// The run that goes on.
        run_id: Uuid,
    },
    /// The canary had a run with another spec; it was told to stop and the new one started.
    Replaced {
        /// The new run.
        run_id: Uuid,
        /// The run that was stopped.
        stopped: Uuid,
    },
}

/// Why a run was not started. Each message is one human line; the hook answers with it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The spec cannot be run or is outside the policy (the hook answers 400).
    #[error("{0}")]
    Invalid(#[from] SpecError),
    /// Starting it would exceed a server-wide cap (the hook answers 409).
    #[error("{0}")]
    OverCap(String),
    /// The server is shutting down (the hook answers 409: Flagger asks again next tick).
    #[error("the load generator is shutting down")]
    ShuttingDown,
    /// The run could not be recorded, so it was not started (the hook answers 424).
    #[error("could not record the load run: {0}")]
    Record(String),
}

/// A run going on, as [`LoadManager::active`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveRun {
    /// Whose run.
    pub canary: CanaryKey,
    /// The run.
    pub run_id: Uuid,
    /// Its spec's checksum.
    pub spec_checksum: String,
    /// Its share of the total-rate cap.
    pub max_rate: f64,
}

#[derive(Debug)]
struct Active {
    id: Uuid,
    checksum: String,
    rate: f64,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    runs: HashMap<CanaryKey, Active>,
    closed: bool,
}

/// Starts, deduplicates, caps and stops hook-driven load runs.
#[derive(Debug)]
pub struct LoadManager {
    policy: LoadPolicy,
    sink: Arc<dyn RunSink>,
    state: Arc<Mutex<State>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl LoadManager {
    /// A manager enforcing `policy` and recording runs in `sink`. Runs are spawned on the
    /// current tokio runtime.
    pub fn new(policy: LoadPolicy, sink: Arc<dyn RunSink>) -> Self {
        Self {
            policy,
            sink,
            state: Arc::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &LoadPolicy {
        &self.policy
    }

    /// Starts `spec` for `canary` unless the same spec already runs for it; a different spec
    /// replaces the canary's current run. Returns once the run is recorded as started, without
    /// waiting for it. Nothing starts when this returns an error.
    pub async fn start(
        &self,
        canary: CanaryKey,
        spec: LoadSpec,
    ) -> Result<StartOutcome, LoadError> {
        let spec = self.policy.check(&canary.0, spec)?;
        let prepared = Prepared::new(&spec)?;
        let rate = spec.max_rate().ok_or_else(|| {
            LoadError::OverCap(
                "the load test has no rate limit; set -q (per worker) or rps so it fits the server's rate cap"
                    .to_string(),
            )
        })?;
        let checksum = spec.checksum();
        let id = Uuid::new_v4();
        let stop = self.shutdown.child_token();
        let replaced = {
            let mut state = self.lock();
            if state.closed {
                return Err(LoadError::ShuttingDown);
            }
            if let Some(current) = state.runs.get(&canary) {
                if current.checksum == checksum {
                    return Ok(StartOutcome::AlreadyRunning { run_id: current.id });
                }
            }
            // Caps count every other run; the canary's own run is about to be replaced.
            let others = state.runs.iter().filter(|(k, _)| **k != canary);
            let (count, total) =
                others.fold((0usize, 0.0f64), |(n, r), (_, a)| (n + 1, r + a.rate));
            if count + 1 > self.policy.max_concurrent_runs {
                return Err(LoadError::OverCap(format!(
                    "{count} load runs are already going, the server's limit is {}",
                    self.policy.max_concurrent_runs
                )));
            }
            if total + rate > self.policy.max_total_rps {
                return Err(LoadError::OverCap(format!(
                    "this run's {rate} requests/s with the {total} already running would exceed the server's limit of {} requests/s",
                    self.policy.max_total_rps
                )));
            }
            let old = state.runs.insert(
                canary.clone(),
                Active {
                    id,
                    checksum: checksum.clone(),
                    rate,
                    stop: stop.clone(),
                },
            );
            old.map(|old| {
                old.stop.cancel();
                old.id
            })
        };
        let record = RunRecord {
            id,
            namespace: canary.0.clone(),
            name: canary.1.clone(),
            spec_checksum: checksum,
            spec,
            started_at: now_millis(),
        };
        if let Err(e) = self.sink.run_started(&record).await {
            self.forget(&canary, id);
            return Err(LoadError::Record(e.to_string()));
        }
        tracing::info!(canary = %format!("{}/{}", canary.0, canary.1), run = %id, "load run started");
        let state = Arc::clone(&self.state);
        let sink = Arc::clone(&self.sink);
        let max_duration = self.policy.max_duration;
        self.tasks.spawn(async move {
            let result = run_bounded(&prepared, stop, max_duration).await;
            remove_if_current(&state, &canary, id);
            if let Err(e) = sink.run_finished(&record, &result).await {
                tracing::warn!(run = %id, error = %e, "could not record the end of a load run");
            }
        });
        Ok(match replaced {
            Some(stopped) => StartOutcome::Replaced {
                run_id: id,
                stopped,
            },
            None => StartOutcome::Started { run_id: id },
        })
    }

    /// Stops the canary's run, if any; returns its id. It is recorded as stopped when it ends.
    pub fn stop(&self, canary: &CanaryKey) -> Option<Uuid> {
        let active = self.lock().runs.remove(canary)?;
        active.stop.cancel();
        Some(active.id)
    }

    /// The runs going on now.
    pub fn active(&self) -> Vec<ActiveRun> {
        self.lock()
            .runs
            .iter()
            .map(|(k, a)| ActiveRun {
                canary: k.clone(),
                run_id: a.id,
                spec_checksum: a.checksum.clone(),
                max_rate: a.rate,
            })
            .collect()
    }

    /// Refuses new runs, stops every run and waits until each has been recorded as finished.
    pub async fn shutdown(&self) {
        self.lock().closed = true;
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, canary: &CanaryKey, id: Uuid) {
        remove_if_current(&self.state, canary, id);
    }
}

/// Runs to the end, but never past the policy's longest duration (a run bounded only by a
/// request count against a slow target could otherwise go on for hours).
async fn run_bounded(prepared: &Prepared, stop: CancellationToken, limit: Duration) -> LoadResult {
    let guard = stop.clone();
    let timer = tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(limit) => guard.cancel(),
            () = guard.cancelled() => {}
        }
    });
    let result = prepared.run(stop.clone()).await;
    // Ends the timer task if the run finished on its own.
    stop.cancel();
    let _ = timer.await;
    result
}

fn remove_if_current(state: &Mutex<State>, canary: &CanaryKey, id: Uuid) {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.runs.get(canary).is_some_and(|a| a.id == id) {
        state.runs.remove(canary);
    }
}

/// What a [`MemorySink`] saw.
#[derive(Debug, Clone)]
pub enum SinkEvent {
    /// `run_started`.
    Started(RunRecord),
    /// `run_finished`.
    Finished(RunRecord, LoadResult),
}

/// A [`RunSink`] that keeps events in memory, for tests and `verdict demo`.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<SinkEvent>>,
    changed: Notify,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far, in order.
    pub fn events(&self) -> Vec<SinkEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs started so far.
    pub fn started(&self) -> Vec<RunRecord> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                SinkEvent::Started(r) => Some(r),
                SinkEvent::Finished(..) => None,
            })
            .collect()
    }

    /// Runs finished so far, with their results.
    pub fn finished(&self) -> Vec<(RunRecord, LoadResult)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                SinkEvent::Finished(r, res) => Some((r, res)),
                SinkEvent::Started(_) => None,
            })
            .collect()
    }

    /// Waits until at least `count` runs have finished.
    pub async fn wait_finished(&self, count: usize) {
        loop {
            let notified = self.changed.notified();
            if self.finished().len() >= count {
                return;
            }
            notified.await;
        }
    }

    fn push(&self, event: SinkEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
        self.changed.notify_waiters();
    }
}

#[async_trait]
impl RunSink for MemorySink {
    async fn run_started(&self, run: &RunRecord) -> Result<(), SinkError> {
        self.push(SinkEvent::Started(run.clone()));
        Ok(())
    }

    async fn run_finished(&self, run: &RunRecord, result: &LoadResult) -> Result<(), SinkError> {
        self.push(SinkEvent::Finished(run.clone(), result.clone()));
        Ok(())
    }
}
