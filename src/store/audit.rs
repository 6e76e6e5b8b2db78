//! The audit log: every manual action, written in the transaction of the change it
//! records, so the log never misses a change nor shows one that did not happen.

use sqlx::{AnyConnection, FromRow};

use super::sql::{Conditions, Returned};
use super::{Store, StoreError};
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
        if let Some(before) = f.before {
            w.int("id <", before.get());
        }
        let listing = w.newest_first("audit", f.limit)?;
        self.all(&self.pool, listing.query()).await
    }
}

/// Inserts one audit row on the caller's connection (inside its transaction).
pub(super) async fn insert(
    store: &Store,
    conn: &mut AnyConnection,
    a: &NewAudit,
) -> Result<AuditId, StoreError> {
    let insert = sqlx::query_as(
        "INSERT INTO audit (actor, role, action, target, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(a.actor.as_str())
    .bind(a.role.as_str())
    .bind(a.action.as_str())
    .bind(&a.target)
    .bind(a.reason.as_str())
    .bind(a.at);
    let Returned { id } = store.one(conn, insert).await?;
    Ok(id)
}
