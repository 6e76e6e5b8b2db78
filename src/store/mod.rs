//! The store owns all state: analyses, looks, decisions, events, load runs, gates, the
//! audit log and the outbox.
//!
//! One schema for Postgres (production) and SQLite (embedded default), one
//! implementation over sqlx's Any driver ([`Store`]); each entity module holds one
//! table's types and queries. Replicas hold no state that matters: every hook can land
//! on any replica.
//!
//! Idempotency lives here, in unique keys and transactions:
//! - one analysis per `(namespace, name, checksum)`;
//! - one look per `(analysis_id, seq)`: two replicas that compute look `seq` at the
//!   same moment both try to insert it; one wins, the other gets the winner's row;
//! - one outbox row per milestone of an analysis;
//! - a recorded backtest in one transaction: complete or absent.
//!
//! Rows come back typed: ids are the domain's id types, canaries are [`CanaryRef`]s,
//! names are re-validated on the way out, an analysis' settings are
//! [`AnalysisSettings`](crate::domain::AnalysisSettings).

mod analysis;
mod audit;
mod backtest;
mod codec;
mod decision;
mod event;
mod gate;
mod load_run;
mod look;
mod outbox;
mod overview;
mod sql;

pub use analysis::{
    Analysis, AnalysisFilter, AnalysisStatus, NewAnalysis, Origin, RollbackRequest, StatusChange,
    UnreadableSettings,
};
pub use audit::{AuditFilter, AuditRow, ManualAction, NewAudit};
pub use backtest::NewBacktest;
pub use decision::{DecisionRow, NewDecision};
pub use event::{EventRow, NewEvent};
pub use gate::{GateKind, GateRow, GateState};
pub use load_run::{LoadRunOutcome, LoadRunRow, NewLoadRun};
pub use look::{ArmTally, LookInsert, LookRow, NewLook};
pub use outbox::{Milestone, MilestoneAnalysis, MilestoneKind, OutboxEntry, OutboxRow};
pub use overview::{EventText, GateModeRow, LatestLook, OverviewFilter};
pub use sql::Store;

#[cfg(doc)]
use crate::domain::CanaryRef;

/// Store failures. At the webhook every one of them is a 424: never answer a verdict
/// that could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or cannot take the write now (connection
    /// refused, pool timeout, SQLite lock held past the busy timeout).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database answered but refused the statement (constraint, bad value), or a
    /// stored value could not be read back.
    #[error("store query failed: {0}")]
    Query(String),
    /// Applying the schema migrations failed.
    #[error("store migration failed: {0}")]
    Migration(String),
    /// The database URL names no supported backend (the password is never shown).
    #[error("invalid database URL {0:?}: expected postgres://… or sqlite://…")]
    BadUrl(String),
}

/// Checks a database URL exactly as [`connect`] reads it, without connecting, so that
/// configuration refuses at start-up what the store would refuse later.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    sql::check_url(url)
}

/// Connects to the store named by `url`, choosing the backend from its scheme:
/// `postgres://…` / `postgresql://…`, or `sqlite://path` (the file is created when
/// missing; WAL journal, busy timeout so concurrent writers wait instead of failing).
///
/// Does not migrate: call [`Store::migrate`] (start-up and `verdict migrate` do).
/// An unknown scheme, an empty SQLite path or `:memory:` (one database per pooled
/// connection would silently split the state) is [`StoreError::BadUrl`]; a server that
/// cannot be reached is [`StoreError::Unavailable`].
pub async fn connect(url: &str) -> Result<Store, StoreError> {
    Store::connect(url).await
}
