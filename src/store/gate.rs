//! Manual gates: one row per (namespace, name, kind), as a person last set it.

use sqlx::any::AnyRow;

use super::sql::{col, SqlStore};
use super::{audit, outbox, GateKind, GateRow, GateState, NewAnnotation, NewAudit, StoreError};

const COLUMNS: &str = "namespace, name, kind, state, actor, reason, updated_at";

/// The gates of one canary that were ever set, rollout before promotion.
pub(super) async fn of_canary(
    store: &SqlStore,
    namespace: &str,
    name: &str,
) -> Result<Vec<GateRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM gate WHERE namespace = $1 AND name = $2");
    let rows = sqlx::query(&sql)
        .bind(namespace)
        .bind(name)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    let mut gates = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    gates.sort_by_key(|g| GateKind::ALL.iter().position(|k| *k == g.kind));
    Ok(gates)
}

/// [`super::Store::set_gate`]: the upsert, its audit row and its annotation commit
/// together or not at all.
///
/// The upsert is one statement on the unique key, so concurrent calls for the same gate
/// never create a second row: on Postgres the later one waits for the earlier one's
/// commit and then updates; SQLite serialises the write transactions.
pub(super) async fn set(
    store: &SqlStore,
    gate: &GateRow,
    audit: &NewAudit,
    annotation: Option<&NewAnnotation>,
) -> Result<GateRow, StoreError> {
    let sql = format!(
        "INSERT INTO gate (namespace, name, kind, state, actor, reason, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (namespace, name, kind) DO UPDATE SET \
         state = excluded.state, actor = excluded.actor, reason = excluded.reason, \
         updated_at = excluded.updated_at \
         RETURNING {COLUMNS}"
    );
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&sql)
        .bind(gate.namespace.as_str())
        .bind(gate.name.as_str())
        .bind(gate.kind.as_str())
        .bind(gate.state.as_str())
        .bind(gate.actor.as_str())
        .bind(gate.reason.as_str())
        .bind(gate.updated_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| store.err(e))?;
    let stored = from_row(&row)?;
    audit::insert(store, &mut tx, audit).await?;
    if let Some(annotation) = annotation {
        outbox::insert(store, &mut tx, annotation).await?;
    }
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(stored)
}

/// Rebuilds a gate; a kind or state this code does not know is an error naming it.
fn from_row(row: &AnyRow) -> Result<GateRow, StoreError> {
    let kind: String = col(row, "kind")?;
    let kind = GateKind::parse(&kind)
        .ok_or_else(|| StoreError::Query(format!("stored gate kind {kind:?} is unknown")))?;
    let state: String = col(row, "state")?;
    let state = GateState::parse(&state)
        .ok_or_else(|| StoreError::Query(format!("stored gate state {state:?} is unknown")))?;
    Ok(GateRow {
        namespace: col(row, "namespace")?,
        name: col(row, "name")?,
        kind,
        state,
        actor: col(row, "actor")?,
        reason: col(row, "reason")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Whether the canary asked for `gate: manual`; `None` when no hook call ever said.
pub(super) async fn mode(
    store: &SqlStore,
    namespace: &str,
    name: &str,
) -> Result<Option<bool>, StoreError> {
    let row = sqlx::query("SELECT manual FROM gate_mode WHERE namespace = $1 AND name = $2")
        .bind(namespace)
        .bind(name)
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    row.map(|r| col::<i64>(&r, "manual").map(|m| m != 0))
        .transpose()
}

/// Records the canary's gate mode; a no-op when it is already stored with that value.
pub(super) async fn set_mode(
    store: &SqlStore,
    namespace: &str,
    name: &str,
    manual: bool,
    at: crate::domain::Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO gate_mode (namespace, name, manual, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (namespace, name) DO UPDATE SET \
         manual = excluded.manual, updated_at = excluded.updated_at \
         WHERE gate_mode.manual <> excluded.manual",
    )
    .bind(namespace)
    .bind(name)
    .bind(i64::from(manual))
    .bind(at)
    .execute(&store.pool)
    .await
    .map_err(|e| store.err(e))?;
    Ok(())
}
