//! The audit log: every manual action, written in the transaction of the change it
//! records, so the log never misses a change nor shows one that did not happen.

use sqlx::FromRow;

use super::sql::{Conditions, Write};
use super::{Milestone, Store, StoreError};
use crate::domain::{AuditId, CanaryRef, Millis};

/// A manual action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct NewAudit {
    /// The JWT subject.
    pub actor: String,
    /// The role the token carried: `viewer`, `release-manager` or `admin`.
    pub role: String,
    /// What was done, e.g. `gate.promotion.open`, `gate.rollout.hold`, `rollback`.
    pub action: String,
    /// The canary it was done to (stored as `namespace/name`).
    pub target: CanaryRef,
    /// Why, as the person said.
    pub reason: String,
    /// When.
    pub at: Millis,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct AuditRow {
    /// The store's id.
    pub id: AuditId,
    /// The action.
    #[sqlx(flatten)]
    pub audit: NewAudit,
}

/// What a person did, as it is recorded with the change it made: the audit row and,
/// when milestones are written, its milestone.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualAction {
    /// The audit row.
    pub audit: NewAudit,
    /// The milestone for the outbox; `None` when nothing reads the outbox.
    pub milestone: Option<Milestone>,
}

/// Which audit rows to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only actions on this canary.
    pub target: Option<CanaryRef>,
    /// The cursor: only rows with an id below this one.
    pub before: Option<AuditId>,
    /// At most this many rows (the caller bounds it).
    pub limit: i64,
}

impl Store {
    /// Audit rows matching `filter`, newest first.
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut w = Conditions::default();
        if let Some(target) = &f.target {
            w.text("target =", &target.to_string());
        }
        let listing = w.newest_first("audit", f.before.map(AuditId::get), f.limit)?;
        self.all(listing.query()).await
    }
}

impl Write<'_> {
    /// Records a person's action inside this transaction: its audit row and its
    /// milestone.
    pub(super) async fn record_action(&mut self, action: &ManualAction) -> Result<(), StoreError> {
        let a = &action.audit;
        sqlx::query(
            "INSERT INTO audit (actor, role, action, target, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(a.actor.as_str())
        .bind(a.role.as_str())
        .bind(a.action.as_str())
        .bind(&a.target)
        .bind(a.reason.as_str())
        .bind(a.at)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| self.store.err(e))?;
        self.insert_milestones(&action.milestone).await
    }
}
