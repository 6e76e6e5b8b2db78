//! The store owns all state: analyses, looks, decisions, events.
//!
//! One schema for Postgres (production) and SQLite (embedded default). Replicas
//! hold no state that matters: every hook can land on any replica.
//!
//! Idempotency lives here, in unique keys and transactions:
//! - one analysis per `(namespace, name, checksum)`;
//! - one look per `(analysis_id, seq)`: two replicas that compute look `seq` at the
//!   same moment both try to insert it; one wins, the other gets the winner's row.

mod analysis;
mod audit;
mod decision;
mod event;
mod gate;
mod load_run;
mod look;
mod outbox;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{AnalysisKey, Millis};
use crate::judge::ArmLook;

/// Store failures. At the webhook every one of them is a 424: never answer a verdict
/// that could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or cannot take the write now (connection
    /// refused, pool timeout, SQLite lock held past the busy timeout).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database answered but refused the statement (constraint, bad value).
    #[error("store query failed: {0}")]
    Query(String),
    /// Applying the schema migrations failed.
    #[error("store migration failed: {0}")]
    Migration(String),
    /// The database URL names no supported backend (the password is never shown).
    #[error("invalid database URL {0:?}: expected postgres://… or sqlite://…")]
    BadUrl(String),
}

/// Lifecycle of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisStatus {
    /// Looks are being taken.
    Running,
    /// A regression was established; the rollback hook answers 200 from now on.
    Failed,
    /// Flagger reported the rollout Succeeded (post-rollout).
    Succeeded,
    /// Flagger reported the rollout Failed (post-rollout) without verdict having failed it.
    Aborted,
}

impl AnalysisStatus {
    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Failed => "failed",
            Self::Succeeded => "succeeded",
            Self::Aborted => "aborted",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "failed" => Self::Failed,
            "succeeded" => Self::Succeeded,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }
}

/// What is needed to open an analysis.
#[derive(Debug, Clone)]
pub struct NewAnalysis {
    pub key: AnalysisKey,
    /// Resolved per-canary settings (JSON): template, target, judge config, b*.
    pub settings: String,
    pub started_at: Millis,
}

/// One analysis: one canary revision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub id: i64,
    pub key: AnalysisKey,
    pub settings: String,
    pub status: AnalysisStatus,
    /// The reason of the failing verdict or of the end.
    pub status_reason: Option<String>,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
}

/// One look: the counts of both arms over one window and the judge's assessment after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewLook {
    pub analysis_id: i64,
    /// 1, 2, 3, … within the analysis.
    pub seq: i64,
    pub window_start: Millis,
    pub window_end: Millis,
    pub canary: ArmLook,
    pub primary: ArmLook,
    /// `pass`, `fail` or `wait`.
    pub verdict: String,
    pub reason: String,
    /// The judge's evidence after this look (JSON).
    pub evidence: String,
}

/// A stored look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookRow {
    pub id: i64,
    pub look: NewLook,
    pub created_at: Millis,
}

/// Every webhook answer (and, later, every API answer that changes something).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDecision {
    pub analysis_id: Option<i64>,
    pub namespace: String,
    pub name: String,
    pub checksum: String,
    /// The hook path segment, e.g. `rollout`.
    pub hook: String,
    /// `pass`, `fail`, `wait`, `ok`, `error`.
    pub verdict: String,
    pub status_code: i64,
    pub reason: String,
    /// Evidence JSON, when the answer rests on evidence.
    pub evidence: Option<String>,
    pub request_id: String,
    pub created_at: Millis,
    /// Grafana annotations to put in the outbox in the same transaction as this decision
    /// (empty when Grafana is off). Write-only: decisions read back carry none.
    #[serde(skip)]
    pub annotations: Vec<NewAnnotation>,
}

/// A Grafana annotation waiting in the outbox. Serialised, it is the body of Grafana's
/// `POST /api/annotations` without the dashboard (added at delivery from configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAnnotation {
    /// When it happened (Unix ms).
    pub time: Millis,
    /// The end of a region annotation (Unix ms); `None` for a point in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_end: Option<Millis>,
    pub tags: Vec<String>,
    pub text: String,
    /// At most one outbox row per key, ever: an annotation whose key is already in the
    /// outbox is not written again. `None` for annotations that may repeat.
    #[serde(skip)]
    pub dedup_key: Option<String>,
}

/// One outbox row: an annotation and its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub annotation: NewAnnotation,
    pub created_at: Millis,
    /// Delivery attempts started so far (counted when a worker claims the row).
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub delivered_at: Option<Millis>,
    /// Grafana's id of the annotation, once delivered.
    pub external_id: Option<String>,
    pub last_error: Option<String>,
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRow {
    pub id: i64,
    pub decision: NewDecision,
}

/// A Kubernetes event Flagger forwarded to the event hook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    pub namespace: String,
    pub name: String,
    pub checksum: String,
    pub phase: String,
    pub event_type: String,
    pub message: String,
    /// Flagger's own timestamp (Unix ms), when it sent one.
    pub event_time: Option<Millis>,
    /// The whole metadata map (JSON).
    pub metadata: String,
    pub received_at: Millis,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub event: NewEvent,
}

/// A load run as it starts (the load-test hook).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewLoadRun {
    /// The generator's id of the run (a UUID).
    pub run_id: String,
    pub namespace: String,
    pub name: String,
    pub spec_checksum: String,
    /// The run's specification (JSON).
    pub spec: String,
    pub started_at: Millis,
}

/// How a load run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadRunOutcome {
    /// `completed` or `stopped`.
    pub status: String,
    pub ended_at: Millis,
    pub requests: i64,
    /// Answers by HTTP status (JSON object).
    pub status_counts: String,
    /// Latency percentiles (JSON object).
    pub latency: String,
    /// Requests without an answer, by kind (JSON object).
    pub errors: String,
}

/// A stored load run; `outcome` is `None` while it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadRunRow {
    pub id: i64,
    pub run: NewLoadRun,
    pub outcome: Option<LoadRunOutcome>,
}

/// One of a canary's two manual gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Checked by confirm-rollout: may a new revision start rolling out?
    Rollout,
    /// Checked by confirm-promotion: may the canary be promoted?
    Promotion,
}

impl GateKind {
    pub const ALL: [GateKind; 2] = [GateKind::Rollout, GateKind::Promotion];

    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollout => "rollout",
            Self::Promotion => "promotion",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Whether a gate lets its hook pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    Open,
    Held,
}

impl GateState {
    /// The stored (and serialised) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Held => "held",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "held" => Self::Held,
            _ => return None,
        })
    }
}

/// A gate as a person last set it. One row per (namespace, name, kind); a canary whose
/// gate has no row has never been touched by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRow {
    pub namespace: String,
    pub name: String,
    pub kind: GateKind,
    pub state: GateState,
    /// Who set it (the JWT subject).
    pub actor: String,
    pub reason: String,
    pub updated_at: Millis,
}

/// A manual action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAudit {
    /// The JWT subject.
    pub actor: String,
    /// The role the token carried: `viewer`, `release-manager` or `admin`.
    pub role: String,
    /// What was done, e.g. `gate.promotion.open`, `gate.rollout.hold`, `rollback`.
    pub action: String,
    /// What it was done to: `namespace/name`.
    pub target: String,
    pub reason: String,
    pub at: Millis,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub audit: NewAudit,
}

/// Which analyses to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisFilter {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: Option<AnalysisStatus>,
    /// Only analyses started at or after this time.
    pub since: Option<Millis>,
    /// The cursor: only analyses with an id below this one.
    pub before_id: Option<i64>,
    /// At most this many rows (the caller bounds it).
    pub limit: i64,
}

/// Which audit rows to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only rows whose target is exactly this `namespace/name`.
    pub target: Option<String>,
    /// The cursor: only rows with an id below this one.
    pub before_id: Option<i64>,
    /// At most this many rows (the caller bounds it).
    pub limit: i64,
}

/// Result of [`Store::request_rollback`].
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackRequest {
    /// The analysis was running; it is now failed with the request as its reason, and
    /// the audit row (and annotation) are written.
    Recorded(Analysis),
    /// The analysis was not running (here it is as it stands); nothing was written.
    NotRunning(Analysis),
    /// No analysis has this id; nothing was written.
    Missing,
}

/// Result of [`Store::record_look`].
#[derive(Debug, Clone, PartialEq)]
pub enum LookInsert {
    /// This call inserted the look (and its decision, and the status change if any).
    Inserted(LookRow),
    /// Another call inserted look `seq` first; nothing was written. Here is that look.
    Exists(LookRow),
}

/// A status change to apply in the same transaction as a look.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub status: AnalysisStatus,
    pub reason: String,
    pub at: Millis,
}

/// Everything the service persists. Implemented once over sqlx for Postgres and SQLite.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Opens the analysis for `new.key`, or returns the existing one: safe under retries
    /// and concurrent identical calls. The bool is true when this call created it.
    async fn open_analysis(&self, new: &NewAnalysis) -> Result<(Analysis, bool), StoreError>;

    /// The analysis of one canary revision, if it was opened.
    async fn find_analysis(&self, key: &AnalysisKey) -> Result<Option<Analysis>, StoreError>;

    /// The analysis with this id, if any.
    async fn get_analysis(&self, id: i64) -> Result<Option<Analysis>, StoreError>;

    /// The looks of an analysis, ordered by `seq`.
    async fn looks(&self, analysis_id: i64) -> Result<Vec<LookRow>, StoreError>;

    /// In one transaction: insert the look unless `(analysis_id, seq)` exists, then the
    /// decision, then the status change. On a conflict nothing is written and the
    /// existing look is returned.
    async fn record_look(
        &self,
        look: &NewLook,
        decision: &NewDecision,
        status: Option<&StatusChange>,
    ) -> Result<LookInsert, StoreError>;

    /// Records a decision that took no new look. With a status change, both in one transaction.
    async fn record_decision(
        &self,
        decision: &NewDecision,
        status: Option<&StatusChange>,
    ) -> Result<i64, StoreError>;

    /// Records a decision only while its analysis is running, atomically with that check:
    /// `None` (nothing written) when the analysis has ended, e.g. a rollback request
    /// committed first. For answers that let a canary go further (promotion).
    async fn record_decision_if_running(
        &self,
        decision: &NewDecision,
    ) -> Result<Option<i64>, StoreError>;

    /// Decisions of an analysis, oldest first.
    async fn decisions(&self, analysis_id: i64) -> Result<Vec<DecisionRow>, StoreError>;

    /// Decisions recorded for a canary (any revision, or none), oldest first. Used by tests
    /// and the API to see answers that had no analysis (e.g. refused calls).
    async fn decisions_for(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<DecisionRow>, StoreError>;

    /// Stores a Flagger event; returns its id.
    async fn record_event(&self, event: &NewEvent) -> Result<i64, StoreError>;

    /// Events of one canary in the order they were received.
    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<EventRow>, StoreError>;

    /// Records a load run as started; an error means the run must not start.
    async fn start_load_run(&self, run: &NewLoadRun) -> Result<i64, StoreError>;

    /// Records how a load run ended.
    async fn finish_load_run(
        &self,
        run_id: &str,
        outcome: &LoadRunOutcome,
    ) -> Result<(), StoreError>;

    /// Load runs of a canary, oldest first.
    async fn load_runs(&self, namespace: &str, name: &str) -> Result<Vec<LoadRunRow>, StoreError>;

    /// Analyses matching `filter`, newest (highest id) first.
    async fn list_analyses(&self, filter: &AnalysisFilter) -> Result<Vec<Analysis>, StoreError>;

    /// The most recently opened analysis of a canary (any revision), if any.
    async fn latest_analysis(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Analysis>, StoreError>;

    /// The gates of a canary that were ever set by hand (zero, one or two rows).
    async fn gates(&self, namespace: &str, name: &str) -> Result<Vec<GateRow>, StoreError>;

    /// Whether the canary asked for `gate: manual`, as the last hook call carrying the
    /// `gate` metadata key said; `None` when none ever did.
    async fn gate_mode(&self, namespace: &str, name: &str) -> Result<Option<bool>, StoreError>;

    /// Records the canary's gate mode (a no-op when it is unchanged).
    async fn set_gate_mode(
        &self,
        namespace: &str,
        name: &str,
        manual: bool,
        at: Millis,
    ) -> Result<(), StoreError>;

    /// In one transaction: sets the gate (insert or update of its one row), writes the
    /// audit row and, when given, puts the annotation in the outbox. Returns the gate.
    async fn set_gate(
        &self,
        gate: &GateRow,
        audit: &NewAudit,
        annotation: Option<&NewAnnotation>,
    ) -> Result<GateRow, StoreError>;

    /// In one transaction, only if analysis `analysis_id` is running: marks it failed
    /// with `change` (the rollback hook then answers 200), writes the audit row and,
    /// when given, the annotation. Otherwise writes nothing and says why.
    async fn request_rollback(
        &self,
        analysis_id: i64,
        change: &StatusChange,
        audit: &NewAudit,
        annotation: Option<&NewAnnotation>,
    ) -> Result<RollbackRequest, StoreError>;

    /// Audit rows matching `filter`, newest (highest id) first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError>;

    /// Puts one annotation in the outbox on its own (for actions that record no decision).
    /// Returns its id, or `None` when its `dedup_key` is already there. Code inside the
    /// store that writes an audit row can enqueue in the same transaction with
    /// `outbox::insert` instead.
    async fn enqueue_annotation(
        &self,
        annotation: &NewAnnotation,
    ) -> Result<Option<i64>, StoreError>;

    /// Claims up to `limit` undelivered rows that are due at `now` and not leased by
    /// another worker, leasing them until `lease_until` and counting an attempt. Two
    /// workers never claim the same row while its lease runs. Oldest first.
    async fn claim_annotations(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    /// Marks a row delivered with Grafana's id. False when it was already delivered.
    async fn annotation_delivered(
        &self,
        id: i64,
        external_id: Option<&str>,
        at: Millis,
    ) -> Result<bool, StoreError>;

    /// Releases a claimed row after a failed attempt; it is due again at `retry_at`.
    async fn annotation_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Millis,
    ) -> Result<(), StoreError>;

    /// How many rows are not yet delivered.
    async fn outbox_backlog(&self) -> Result<i64, StoreError>;

    /// The outbox, oldest first, at most `limit` rows (operators and tests).
    async fn outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError>;
}

/// Whether `url` names a Postgres database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Checks a database URL exactly as [`connect`] reads it, without connecting, so that
/// configuration refuses at start-up what the store would refuse later.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    sql::parse_url(url).map(|_| ())
}

/// Connects to the store named by `url`, choosing the backend from its scheme:
/// `postgres://…` / `postgresql://…`, or `sqlite://path` (the file is created when
/// missing; WAL journal, busy timeout so concurrent writers wait instead of failing).
///
/// Does not migrate: call [`Store::migrate`] (start-up and `verdict migrate` do).
/// An unknown scheme, an empty SQLite path or `:memory:` (one database per pooled
/// connection would silently split the state) is [`StoreError::BadUrl`]; a server that
/// cannot be reached is [`StoreError::Unavailable`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = sql::SqlStore::connect(url).await?;
    Ok(Arc::new(store))
}
