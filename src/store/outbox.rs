//! The outbox: domain milestones written beside the decisions and audit rows they
//! describe, in the same transaction, for a reader outside the request path to deliver
//! later. The reader is the Grafana annotation worker (`crate::grafana`), which alone
//! knows what an annotation looks like; nothing is written when no reader runs.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::sql::Returned;
use super::{Store, StoreError};
use crate::domain::{now_millis, AnalysisId, CanaryRef, Checksum, Millis, OutboxId};

/// The `kind` of the rows this verdict writes.
const MILESTONE: &str = "milestone";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MilestoneKind {
    /// An analysis was opened (pre-rollout or the first rollout call).
    Started,
    /// The analysis established a regression (the rollout hook's first 422).
    Regression,
    /// confirm-promotion answered 200.
    Promoted,
    /// The rollback hook answered 200, or Flagger ended the rollout Failed.
    RolledBack,
    /// Flagger ended the rollout Succeeded.
    Succeeded,
    /// A release manager opened a gate.
    GateOpened,
    /// A release manager held a gate.
    GateHeld,
    /// A release manager asked for a rollback.
    RollbackRequested,
}

impl MilestoneKind {
    /// The kind's stable spelling (stored, and part of the once-only key).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Regression => "regression",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled-back",
            Self::Succeeded => "succeeded",
            Self::GateOpened => "gate-opened",
            Self::GateHeld => "gate-held",
            Self::RollbackRequested => "rollback-requested",
        }
    }
}

/// The analysis (one revision) a milestone belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneAnalysis {
    /// The analysis.
    pub id: AnalysisId,
    /// Its revision.
    pub checksum: Checksum,
}

/// A moment in a canary's life worth marking beside its metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Milestone {
    /// What happened.
    pub kind: MilestoneKind,
    /// To which canary.
    pub canary: CanaryRef,
    /// The analysis it belongs to; `None` for a person's action on the canary.
    pub analysis: Option<MilestoneAnalysis>,
    /// Who did it, for a person's action.
    pub actor: Option<String>,
    /// The reason or evidence in one line; may be empty.
    pub detail: String,
    /// When it happened.
    pub time: Millis,
    /// For a milestone that closes a span (a rollout that succeeded), when the span
    /// began.
    pub since: Option<Millis>,
}

impl Milestone {
    /// The key that lets a milestone into the outbox once: an analysis reaches each of
    /// its milestones once however often Flagger repeats a hook or however many replicas
    /// answer it (both "rolled back" paths share one). A person's actions may repeat.
    fn once_key(&self) -> Option<String> {
        self.analysis
            .as_ref()
            .map(|a| format!("analysis/{}/{}", a.id, self.kind.as_str()))
    }
}

/// What an outbox row holds.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxEntry {
    /// A milestone.
    Milestone(Milestone),
    /// A row of another kind: written by an earlier verdict before the outbox held
    /// milestones. Its reader decides what to do with the payload.
    Other {
        /// The row's `kind`.
        kind: String,
        /// The payload as stored.
        payload: String,
    },
}

/// One outbox row: what it holds and its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// The store's id.
    pub id: OutboxId,
    /// The milestone (or an earlier verdict's row).
    pub entry: OutboxEntry,
    /// When it was written.
    pub created_at: Millis,
    /// Delivery attempts started so far (counted when a reader claims the row).
    pub attempts: i64,
    /// When it may be claimed next.
    pub next_attempt_at: Millis,
    /// When it was delivered.
    pub delivered_at: Option<Millis>,
    /// The receiver's id of what was delivered.
    pub external_id: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl FromRow<'_, AnyRow> for OutboxRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let id: OutboxId = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let payload: String = row.try_get("payload")?;
        let entry = if kind == MILESTONE {
            let milestone =
                serde_json::from_str(&payload).map_err(|e| sqlx::Error::ColumnDecode {
                    index: "payload".into(),
                    source: format!("outbox row {id} holds an unreadable milestone: {e}").into(),
                })?;
            OutboxEntry::Milestone(milestone)
        } else {
            OutboxEntry::Other { kind, payload }
        };
        Ok(Self {
            id,
            entry,
            created_at: row.try_get("created_at")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            delivered_at: row.try_get("delivered_at")?,
            external_id: row.try_get("external_id")?,
            last_error: row.try_get("last_error")?,
        })
    }
}

impl Store {
    /// Puts one milestone in the outbox on its own (for what records no decision or
    /// audit row). Returns its id, or `None` when it was already there.
    pub async fn enqueue_milestone(
        &self,
        milestone: &Milestone,
    ) -> Result<Option<OutboxId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = insert(self, &mut tx, milestone).await?;
        self.commit(tx).await?;
        Ok(id)
    }

    /// Claims up to `limit` undelivered rows that are due at `now` and not leased by
    /// another reader, leasing them until `lease_until` and counting an attempt. Two
    /// readers never claim the same row while its lease runs. Oldest first.
    ///
    /// One conditional UPDATE both picks and leases the rows. The condition is repeated
    /// outside the sub-select on purpose: on Postgres a concurrent claimer blocks on the
    /// row lock and then re-checks the outer WHERE against the committed lease, so it
    /// skips the row instead of claiming it twice; SQLite serialises writers, which
    /// gives the same.
    pub async fn claim_outbox(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let claim = sqlx::query_as(
            "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox \
                          WHERE delivered_at IS NULL AND next_attempt_at <= $2 \
                            AND (claimed_until IS NULL OR claimed_until <= $2) \
                          ORDER BY id LIMIT $3) \
               AND delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $2) \
             RETURNING *",
        )
        .bind(lease_until)
        .bind(now)
        .bind(limit);
        let mut tx = self.begin_write().await?;
        let mut claimed: Vec<OutboxRow> = self.all(&mut *tx, claim).await?;
        self.commit(tx).await?;
        // RETURNING gives no order; deliver oldest first.
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    /// Marks a row delivered with the receiver's id. False when it already was.
    pub async fn outbox_delivered(
        &self,
        id: OutboxId,
        external_id: Option<&str>,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET delivered_at = $1, external_id = $2, claimed_until = NULL, \
             last_error = NULL WHERE id = $3 AND delivered_at IS NULL",
        )
        .bind(at)
        .bind(external_id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases a claimed row after a failed attempt; it is due again at `retry_at`.
    pub async fn outbox_failed(
        &self,
        id: OutboxId,
        error: &str,
        retry_at: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 \
             WHERE id = $3 AND delivered_at IS NULL",
        )
        .bind(retry_at)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// How many rows are not yet delivered.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// The outbox, oldest first, at most `limit` rows (operators and tests).
    pub async fn outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let query = sqlx::query_as("SELECT * FROM outbox ORDER BY id LIMIT $1").bind(limit);
        self.all(&self.pool, query).await
    }
}

/// Inserts milestones on the caller's connection, inside its transaction, so that each
/// exists exactly when the decision (or audit row) beside it does. A milestone already
/// in the outbox (see [`Milestone::once_key`]) is skipped: `None`.
pub(super) async fn insert(
    store: &Store,
    conn: &mut AnyConnection,
    milestone: &Milestone,
) -> Result<Option<OutboxId>, StoreError> {
    let payload = serde_json::to_string(milestone)
        .map_err(|e| StoreError::Query(format!("encoding a milestone: {e}")))?;
    let now = now_millis();
    let insert = sqlx::query_as(
        "INSERT INTO outbox (kind, payload, created_at, next_attempt_at, dedup_key) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(MILESTONE)
    .bind(payload)
    .bind(now)
    .bind(now)
    .bind(milestone.once_key());
    let inserted: Option<Returned<OutboxId>> = store.optional(conn, insert).await?;
    Ok(inserted.map(|r| r.id))
}

/// Inserts every milestone of a decision or audit row inside the caller's transaction.
pub(super) async fn insert_all(
    store: &Store,
    conn: &mut AnyConnection,
    milestones: impl IntoIterator<Item = &Milestone>,
) -> Result<(), StoreError> {
    for milestone in milestones {
        insert(store, conn, milestone).await?;
    }
    Ok(())
}
