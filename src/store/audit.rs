//! The audit log: every manual action, written in the transaction of the change it
//! records, so the log never misses a change nor shows one that did not happen.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::sql::{col, Conditions, SqlStore};
use super::{AuditFilter, AuditRow, NewAudit, StoreError};

const COLUMNS: &str = "id, actor, role, action, target, reason, at";

/// Inserts one audit row on the caller's connection (inside its transaction).
pub(super) async fn insert(
    store: &SqlStore,
    conn: &mut AnyConnection,
    a: &NewAudit,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO audit (actor, role, action, target, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(a.actor.as_str())
    .bind(a.role.as_str())
    .bind(a.action.as_str())
    .bind(a.target.as_str())
    .bind(a.reason.as_str())
    .bind(a.at)
    .fetch_one(conn)
    .await
    .map_err(|e| store.err(e))?;
    col(&row, "id")
}

/// [`super::Store::audit`]: newest first, optionally one target, below the cursor.
pub(super) async fn list(store: &SqlStore, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
    let mut w = Conditions::default();
    if let Some(target) = &f.target {
        w.text("target =", target);
    }
    if let Some(before) = f.before_id {
        w.int("id <", before);
    }
    let limit = w.limit(f.limit)?;
    let sql = format!(
        "SELECT {COLUMNS} FROM audit{} ORDER BY id DESC {limit}",
        w.where_clause()
    );
    let rows = w
        .query(&sql)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: col(row, "id")?,
        audit: NewAudit {
            actor: col(row, "actor")?,
            role: col(row, "role")?,
            action: col(row, "action")?,
            target: col(row, "target")?,
            reason: col(row, "reason")?,
            at: col(row, "at")?,
        },
    })
}
