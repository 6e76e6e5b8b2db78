//! Events: the Kubernetes events Flagger forwards to the event hook.

use sqlx::FromRow;

use super::{Store, StoreError};
use crate::domain::{AnalysisKey, CanaryRef, EventId, Millis};

/// A Kubernetes event Flagger forwarded to the event hook.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct NewEvent {
    /// The canary revision (checksum `none` when Flagger sent none).
    #[sqlx(flatten)]
    pub key: AnalysisKey,
    /// Flagger's phase of the canary.
    pub phase: String,
    /// `Normal` or `Warning`.
    pub event_type: String,
    /// The event's text.
    pub message: String,
    /// Flagger's own timestamp (Unix ms), when it sent one.
    pub event_time: Option<Millis>,
    /// The whole metadata map (JSON).
    pub metadata: String,
    /// When verdict received it.
    pub received_at: Millis,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct EventRow {
    /// The store's id.
    pub id: EventId,
    /// The event.
    #[sqlx(flatten)]
    pub event: NewEvent,
}

impl Store {
    /// Stores a Flagger event; returns its id.
    pub async fn record_event(&self, e: &NewEvent) -> Result<EventId, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO event (namespace, name, checksum, phase, event_type, message, \
             event_time, metadata, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&e.key.namespace)
        .bind(&e.key.name)
        .bind(&e.key.checksum)
        .bind(e.phase.as_str())
        .bind(e.event_type.as_str())
        .bind(e.message.as_str())
        .bind(e.event_time)
        .bind(e.metadata.as_str())
        .bind(e.received_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|err| self.err(err))
    }

    /// Events of one canary in the order they were received.
    pub async fn events(&self, canary: &CanaryRef) -> Result<Vec<EventRow>, StoreError> {
        self.of_canary("event", canary).await
    }
}
