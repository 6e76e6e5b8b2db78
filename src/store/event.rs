//! Events: the Kubernetes events Flagger forwards to the event hook.

use sqlx::any::AnyRow;

use super::sql::{col, SqlStore};
use super::{EventRow, NewEvent, StoreError};

const COLUMNS: &str = "id, namespace, name, checksum, phase, event_type, message, \
     event_time, metadata, received_at";

/// Stores one event and returns its id.
pub(super) async fn record(store: &SqlStore, e: &NewEvent) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO event (namespace, name, checksum, phase, event_type, message, \
         event_time, metadata, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(e.namespace.as_str())
    .bind(e.name.as_str())
    .bind(e.checksum.as_str())
    .bind(e.phase.as_str())
    .bind(e.event_type.as_str())
    .bind(e.message.as_str())
    .bind(e.event_time)
    .bind(e.metadata.as_str())
    .bind(e.received_at)
    .fetch_one(&store.pool)
    .await
    .map_err(|err| store.err(err))?;
    col(&row, "id")
}

/// Events of one canary in the order they were received.
pub(super) async fn list(
    store: &SqlStore,
    namespace: &str,
    name: &str,
) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM event WHERE namespace = $1 AND name = $2 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(namespace)
        .bind(name)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        id: col(row, "id")?,
        event: NewEvent {
            namespace: col(row, "namespace")?,
            name: col(row, "name")?,
            checksum: col(row, "checksum")?,
            phase: col(row, "phase")?,
            event_type: col(row, "event_type")?,
            message: col(row, "message")?,
            event_time: col(row, "event_time")?,
            metadata: col(row, "metadata")?,
            received_at: col(row, "received_at")?,
        },
    })
}
