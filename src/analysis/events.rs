//! The event hook: Flagger's Kubernetes events, answered at once and stored in the
//! background with retries, so a slow or briefly unavailable store never delays
//! Flagger's tick.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{Analyst, Answer, HookCall};
use crate::domain::now_millis;
use crate::store::NewEvent;
use crate::webhook::{Hook, Outcome};

impl Analyst {
    /// `event`: 202 at once; the event is stored by a background task that shutdown
    /// waits for.
    pub(super) fn accept_event(&self, call: &HookCall) -> Answer {
        let event = NewEvent {
            key: call.key.clone(),
            phase: call.phase.to_string(),
            event_type: call.metadata.get("eventType").cloned().unwrap_or_default(),
            message: call
                .metadata
                .get("eventMessage")
                .cloned()
                .unwrap_or_default(),
            event_time: call.metadata.get("timestamp").and_then(|t| t.parse().ok()),
            metadata: serde_json::to_string(&call.metadata).unwrap_or_else(|_| "{}".into()),
            received_at: now_millis(),
        };
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        self.background.spawn(async move {
            let policy = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(8)
                .with_jitter();
            let stored = (|| async { store.record_event(&event).await })
                .retry(policy)
                .notify(|e, after| {
                    tracing::warn!(error = %e, retry_in = ?after, "could not store a Flagger event yet");
                })
                .await;
            if let Err(e) = stored {
                metrics.store_error("record_event");
                tracing::error!(error = %e, event = ?event, "dropped a Flagger event after retries");
            }
        });
        Answer::new(Hook::Event, Outcome::Ok, "event accepted")
    }
}
