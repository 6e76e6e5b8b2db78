//! The Grafana annotation outbox: rows written beside the decisions they describe,
//! delivered later by [`crate::grafana`], so a Grafana outage never touches a webhook.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::sql::{col, SqlStore};
use super::{NewAnnotation, OutboxRow, StoreError};
use crate::domain::{now_millis, Millis};

/// The `kind` of annotation rows (the table could carry other deliveries later).
pub(super) const KIND: &str = "grafana_annotation";

const COLUMNS: &str = "id, payload, dedup_key, created_at, attempts, next_attempt_at, \
     delivered_at, external_id, last_error";

/// Inserts one annotation on the caller's connection, inside its transaction, so the
/// annotation exists exactly when the decision (or audit row) beside it does. A row
/// whose `dedup_key` is already in the outbox is skipped: `None`.
pub(super) async fn insert(
    store: &SqlStore,
    conn: &mut AnyConnection,
    annotation: &NewAnnotation,
) -> Result<Option<i64>, StoreError> {
    let payload = serde_json::to_string(annotation)
        .map_err(|e| StoreError::Query(format!("encoding an annotation: {e}")))?;
    let now = now_millis();
    let row = sqlx::query(
        "INSERT INTO outbox (kind, payload, created_at, next_attempt_at, dedup_key) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(KIND)
    .bind(payload)
    .bind(now)
    .bind(now)
    .bind(annotation.dedup_key.as_deref())
    .fetch_optional(conn)
    .await
    .map_err(|e| store.err(e))?;
    row.map(|r| col(&r, "id")).transpose()
}

/// Inserts every annotation of a decision inside the caller's transaction.
pub(super) async fn insert_all(
    store: &SqlStore,
    conn: &mut AnyConnection,
    annotations: &[NewAnnotation],
) -> Result<(), StoreError> {
    for annotation in annotations {
        insert(store, conn, annotation).await?;
    }
    Ok(())
}

/// [`super::Store::enqueue_annotation`]: one annotation in its own transaction.
pub(super) async fn enqueue(
    store: &SqlStore,
    annotation: &NewAnnotation,
) -> Result<Option<i64>, StoreError> {
    let mut tx = store.begin_write().await?;
    let id = insert(store, &mut tx, annotation).await?;
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(id)
}

/// [`super::Store::claim_annotations`].
///
/// One conditional UPDATE both picks and leases the rows. The condition is repeated
/// outside the sub-select on purpose: on Postgres a concurrent claimer blocks on the row
/// lock and then re-checks the outer WHERE against the committed lease, so it skips the
/// row instead of claiming it twice; SQLite serialises writers, which gives the same.
pub(super) async fn claim(
    store: &SqlStore,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!(
        "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM outbox \
                      WHERE kind = $4 AND delivered_at IS NULL AND next_attempt_at <= $2 \
                        AND (claimed_until IS NULL OR claimed_until <= $2) \
                      ORDER BY id LIMIT $3) \
           AND delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $2) \
         RETURNING {COLUMNS}"
    );
    let mut tx = store.begin_write().await?;
    let rows = sqlx::query(&sql)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .bind(KIND)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| store.err(e))?;
    tx.commit().await.map_err(|e| store.err(e))?;
    let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    // RETURNING gives no order; deliver oldest first.
    claimed.sort_by_key(|r| r.id);
    Ok(claimed)
}

/// [`super::Store::annotation_delivered`].
pub(super) async fn delivered(
    store: &SqlStore,
    id: i64,
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
    .execute(&store.pool)
    .await
    .map_err(|e| store.err(e))?;
    Ok(done.rows_affected() == 1)
}

/// [`super::Store::annotation_failed`].
pub(super) async fn failed(
    store: &SqlStore,
    id: i64,
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
    .execute(&store.pool)
    .await
    .map_err(|e| store.err(e))?;
    Ok(())
}

/// [`super::Store::outbox_backlog`].
pub(super) async fn backlog(store: &SqlStore) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS backlog FROM outbox WHERE kind = $1 AND delivered_at IS NULL",
    )
    .bind(KIND)
    .fetch_one(&store.pool)
    .await
    .map_err(|e| store.err(e))?;
    col(&row, "backlog")
}

/// [`super::Store::outbox`].
pub(super) async fn list(store: &SqlStore, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE kind = $1 ORDER BY id LIMIT $2");
    let rows = sqlx::query(&sql)
        .bind(KIND)
        .bind(limit)
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.err(e))?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<OutboxRow, StoreError> {
    let id: i64 = col(row, "id")?;
    let payload: String = col(row, "payload")?;
    let mut annotation: NewAnnotation = serde_json::from_str(&payload).map_err(|e| {
        StoreError::Query(format!("outbox row {id} has an unreadable payload: {e}"))
    })?;
    annotation.dedup_key = col(row, "dedup_key")?;
    Ok(OutboxRow {
        id,
        annotation,
        created_at: col(row, "created_at")?,
        attempts: col(row, "attempts")?,
        next_attempt_at: col(row, "next_attempt_at")?,
        delivered_at: col(row, "delivered_at")?,
        external_id: col(row, "external_id")?,
        last_error: col(row, "last_error")?,
    })
}
