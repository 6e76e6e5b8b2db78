//! The outbox: domain milestones written beside the decisions and audit rows they
//! describe, in the same transaction, for a reader outside the request path to deliver
//! later. The reader is the Grafana annotation worker (`crate::grafana`), which alone
//! knows what an annotation looks like; nothing is written when no reader runs.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::sql::Write;
use super::{Store, StoreError};
use crate::domain::{now_millis, AnalysisId, CanaryRef, Checksum, Controller, Millis, OutboxId};

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
    /// The controller that asked for its verdicts; absent in milestones written before
    /// Argo Rollouts was served, which were Flagger's.
    #[serde(default)]
    pub controller: Controller,
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
    /// `kind` happened to `canary` at `time`; `detail` says why or what (may be empty).
    pub fn new(kind: MilestoneKind, canary: CanaryRef, detail: &str, time: Millis) -> Self {
        Self {
            kind,
            canary,
            analysis: None,
            actor: None,
            detail: detail.to_owned(),
            time,
            since: None,
        }
    }

    /// It belongs to analysis `id` of revision `checksum`, judged for `controller`.
    pub fn of(self, id: AnalysisId, checksum: Checksum, controller: Controller) -> Self {
        Self {
            analysis: Some(MilestoneAnalysis {
                id,
                checksum,
                controller,
            }),
            ..self
        }
    }

    /// A person did it.
    pub fn by(self, actor: &str) -> Self {
        Self {
            actor: Some(actor.to_owned()),
            ..self
        }
    }

    /// It closes a span that began at `since`.
    pub fn since(self, since: Millis) -> Self {
        Self {
            since: Some(since),
            ..self
        }
    }

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

/// An outbox row's `kind` and `payload` columns, as stored.
#[derive(Debug, FromRow)]
pub struct StoredEntry {
    kind: String,
    payload: String,
}

impl TryFrom<StoredEntry> for OutboxEntry {
    type Error = serde_json::Error;

    fn try_from(stored: StoredEntry) -> Result<Self, serde_json::Error> {
        if stored.kind == MILESTONE {
            return serde_json::from_str(&stored.payload).map(OutboxEntry::Milestone);
        }
        Ok(OutboxEntry::Other {
            kind: stored.kind,
            payload: stored.payload,
        })
    }
}

/// One outbox row: what it holds and its delivery state.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct OutboxRow {
    /// The store's id.
    pub id: OutboxId,
    /// The milestone (or an earlier verdict's row).
    #[sqlx(flatten, try_from = "StoredEntry")]
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

impl Store {
    /// Puts one milestone in the outbox on its own (for what records no decision or
    /// audit row). Returns its id, or `None` when it was already there.
    pub async fn enqueue_milestone(
        &self,
        milestone: &Milestone,
    ) -> Result<Option<OutboxId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = tx.insert_milestone(milestone).await?;
        tx.commit().await?;
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
        let mut tx = self.begin_write().await?;
        let mut claimed: Vec<OutboxRow> = sqlx::query_as(
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
        .bind(limit)
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await?;
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
        self.settle(
            "UPDATE outbox SET delivered_at = $1, external_id = $2, claimed_until = NULL, \
             last_error = NULL WHERE id = $3 AND delivered_at IS NULL",
            at,
            external_id,
            id,
        )
        .await
    }

    /// Releases a claimed row after a failed attempt; it is due again at `retry_at`.
    pub async fn outbox_failed(
        &self,
        id: OutboxId,
        error: &str,
        retry_at: Millis,
    ) -> Result<(), StoreError> {
        self.settle(
            "UPDATE outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 \
             WHERE id = $3 AND delivered_at IS NULL",
            retry_at,
            Some(error),
            id,
        )
        .await
        .map(|_| ())
    }

    /// Ends a delivery attempt of row `id` with `sql`, which sets a time (`$1`) and a
    /// text (`$2`); false when the row was delivered already.
    async fn settle(
        &self,
        sql: &'static str,
        time: Millis,
        text: Option<&str>,
        id: OutboxId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(time)
            .bind(text)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() == 1)
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
        let oldest = "SELECT * FROM outbox ORDER BY id LIMIT $1";
        self.all(sqlx::query_as(oldest).bind(limit)).await
    }
}

impl Write<'_> {
    /// Inserts a milestone inside this transaction, so that it exists exactly when the
    /// decision (or audit row) beside it does. A milestone already in the outbox (see
    /// [`Milestone::once_key`]) is skipped: `None`.
    async fn insert_milestone(
        &mut self,
        milestone: &Milestone,
    ) -> Result<Option<OutboxId>, StoreError> {
        let payload = serde_json::to_string(milestone)
            .map_err(|e| StoreError::Query(format!("encoding a milestone: {e}")))?;
        let now = now_millis();
        sqlx::query_scalar(
            "INSERT INTO outbox (kind, payload, created_at, next_attempt_at, dedup_key) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        )
        .bind(MILESTONE)
        .bind(payload)
        .bind(now)
        .bind(now)
        .bind(milestone.once_key())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(|e| self.store.err(e))
    }

    /// Inserts the milestones of a decision or of a person's action.
    pub(super) async fn insert_milestones(
        &mut self,
        milestones: impl IntoIterator<Item = &Milestone>,
    ) -> Result<(), StoreError> {
        for milestone in milestones {
            self.insert_milestone(milestone).await?;
        }
        Ok(())
    }
}
