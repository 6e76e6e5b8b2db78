//! The worker that delivers the outbox to Grafana's `POST /api/annotations`.
//!
//! Delivery is at most once per row in every case but one: a row is claimed under a
//! lease (a conditional UPDATE, so two replicas never send the same row), marked
//! delivered with Grafana's id after a 2xx, and never claimed again. Only when Grafana
//! stores an annotation but its answer is lost (timeout, connection cut) is the row
//! retried and the annotation shown twice: Grafana's API has no idempotency key.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::annotation::{annotation, Annotation};
use crate::config::GrafanaSettings;
use crate::domain::{now_millis, Millis};
use crate::store::{OutboxEntry, OutboxRow, Store};
use crate::telemetry::Metrics;

/// The outbox kind of rows written by verdict before the outbox held milestones: the
/// annotation itself as the payload. Delivered as they are.
const EARLIER_ANNOTATION: &str = "grafana_annotation";

/// The body Grafana's `POST /api/annotations` takes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AnnotationBody<'a, A: Serialize> {
    #[serde(flatten)]
    annotation: &'a A,
    #[serde(rename = "dashboardUID", skip_serializing_if = "Option::is_none")]
    dashboard_uid: Option<&'a str>,
}

/// What Grafana answers on success: `{"id": 1, "message": "Annotation added"}`.
#[derive(Debug, Deserialize)]
struct Created {
    id: Option<serde_json::Value>,
}

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("grafana unreachable: {0}")]
    Transport(String),
    #[error("grafana answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("outbox rows of kind {0:?} are not annotations")]
    NotAnAnnotation(String),
}

/// Delivers the outbox to Grafana until cancelled.
#[derive(Debug)]
pub struct Worker {
    store: Store,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    endpoint: String,
    /// Shown as `[REDACTED]` by `Debug`.
    token: SecretString,
    settings: GrafanaSettings,
}

/// Why a worker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Annotations are off.
    #[error("configuration key `grafana.url` is not set")]
    Disabled,
    /// Grafana needs a service-account token.
    #[error("configuration key `grafana.token` is not set")]
    NoToken,
    /// The HTTP client could not be built.
    #[error("building the Grafana HTTP client: {0}")]
    Client(String),
}

impl Worker {
    /// A worker for the configured Grafana; [`WorkerError::Disabled`] without a URL.
    pub fn new(
        settings: &GrafanaSettings,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WorkerError> {
        let url = settings.url.as_deref().ok_or(WorkerError::Disabled)?;
        let token = settings.token.clone().ok_or(WorkerError::NoToken)?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| WorkerError::Client(e.to_string()))?;
        Ok(Self {
            store,
            metrics,
            http,
            endpoint: format!("{}/api/annotations", url.trim_end_matches('/')),
            token,
            settings: settings.clone(),
        })
    }

    /// Claims and delivers due rows until `stop` is cancelled. The request in flight
    /// then completes; rows claimed but not yet sent are released at once, so another replica (or the next start)
    /// need not wait for the lease to run out.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(endpoint = %self.endpoint, "grafana annotation worker started");
        let lease = millis(self.settings.lease);
        let batch = i64::from(self.settings.batch);
        while !stop.is_cancelled() {
            self.refresh_backlog().await;
            let now = now_millis();
            let claimed = match self.store.claim_outbox(now, now + lease, batch).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim annotations");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
                continue;
            }
            let mut rows = claimed.into_iter();
            // A request in flight is finished (it is bounded by `grafana.timeout`):
            // abandoning it could leave an annotation Grafana stored but we never marked.
            for row in rows.by_ref() {
                let result = self.send(&row).await;
                self.settle(&row, result).await;
                if stop.is_cancelled() {
                    break;
                }
            }
            for row in rows {
                self.release(&row).await;
            }
        }
        self.refresh_backlog().await;
        tracing::info!("grafana annotation worker stopped");
    }

    async fn refresh_backlog(&self) {
        match self.store.outbox_backlog().await {
            Ok(n) => self.metrics.set_outbox_backlog(n),
            Err(e) => tracing::warn!(error = %e, "could not count the outbox backlog"),
        }
    }

    /// Sends one row's annotation; Grafana's id on success.
    async fn send(&self, row: &OutboxRow) -> Result<Option<String>, DeliveryError> {
        let dashboard_uid = self.settings.dashboard_uid.as_deref();
        let request = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.token.expose_secret());
        let request = match &row.entry {
            OutboxEntry::Milestone(milestone) => request.json(&AnnotationBody::<Annotation> {
                annotation: &annotation(milestone),
                dashboard_uid,
            }),
            OutboxEntry::Other { kind, payload } if kind == EARLIER_ANNOTATION => {
                let earlier: Value = serde_json::from_str(payload)
                    .map_err(|_| DeliveryError::NotAnAnnotation(kind.clone()))?;
                request.json(&AnnotationBody {
                    annotation: &earlier,
                    dashboard_uid,
                })
            }
            OutboxEntry::Other { kind, .. } => {
                return Err(DeliveryError::NotAnAnnotation(kind.clone()))
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(DeliveryError::Status {
                status: status.as_u16(),
                body: text.chars().take(200).collect(),
            });
        }
        // A 2xx means Grafana stored it: never send it again, even if the body is odd.
        Ok(serde_json::from_str::<Created>(&text)
            .ok()
            .and_then(|c| c.id)
            .map(|id| match id {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }))
    }

    async fn settle(&self, row: &OutboxRow, result: Result<Option<String>, DeliveryError>) {
        match result {
            Ok(external_id) => {
                self.metrics.annotation_delivery("delivered");
                if external_id.is_none() {
                    tracing::warn!(row = %row.id, "grafana accepted an annotation without an id");
                }
                if let Err(e) = self
                    .store
                    .outbox_delivered(row.id, external_id.as_deref(), now_millis())
                    .await
                {
                    // The lease keeps other workers off it until it expires; then it is
                    // sent again (a duplicate) — better than losing it.
                    tracing::warn!(row = %row.id, error = %e, "could not mark an annotation delivered");
                }
            }
            Err(e) => {
                self.metrics.annotation_delivery("failed");
                let delay = retry_delay(&self.settings, row.attempts);
                tracing::warn!(row = %row.id, attempts = row.attempts, retry_in = ?delay, error = %e,
                    "annotation not delivered");
                let retry_at = now_millis() + millis(delay);
                if let Err(e) = self
                    .store
                    .outbox_failed(row.id, &e.to_string(), retry_at)
                    .await
                {
                    tracing::warn!(row = %row.id, error = %e, "could not reschedule an annotation");
                }
            }
        }
    }

    async fn release(&self, row: &OutboxRow) {
        let note = "not sent: verdict was stopping";
        if let Err(e) = self.store.outbox_failed(row.id, note, now_millis()).await {
            tracing::warn!(row = %row.id, error = %e, "could not release an annotation");
        }
    }
}

/// The delay before retry number `attempts` (1 after the first failure): exponential
/// from `retry_min`, capped at `retry_max`, with up to 100 % jitter so that rows that
/// failed together (a Grafana outage) do not all come back at the same instant.
pub fn retry_delay(settings: &GrafanaSettings, attempts: i64) -> Duration {
    let n = usize::try_from(attempts.max(1) - 1).unwrap_or(0).min(64);
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(settings.retry_min)
        .with_max_delay(settings.retry_max)
        .without_max_times()
        .build()
        .nth(n)
        .unwrap_or(settings.retry_max)
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CanaryRef;
    use crate::store::{Milestone, MilestoneKind};

    #[test]
    fn retry_delays_grow_and_stay_within_jittered_bounds() {
        let settings = GrafanaSettings {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..GrafanaSettings::default()
        };
        for (attempt, base_ms) in [
            (1, 100u64),
            (2, 200),
            (3, 400),
            (5, 1600),
            (6, 2000),
            (40, 2000),
        ] {
            let d = retry_delay(&settings, attempt);
            let base = Duration::from_millis(base_ms);
            assert!(
                d >= base && d <= base * 2,
                "attempt {attempt}: {d:?} outside [{base:?}, {:?}]",
                base * 2
            );
        }
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| retry_delay(&settings, 3)).collect();
        assert!(spread.len() > 1, "jitter spreads retries: {spread:?}");
    }

    #[test]
    fn the_body_is_grafanas_shape() {
        let m = Milestone {
            kind: MilestoneKind::GateHeld,
            canary: CanaryRef::parse("test/podinfo").expect("canary"),
            analysis: None,
            actor: Some("alice".into()),
            detail: "freeze".into(),
            time: 1_000,
            since: None,
        };
        let body = AnnotationBody {
            annotation: &annotation(&m),
            dashboard_uid: Some("verdict-canary"),
        };
        let json = serde_json::to_value(&body).expect("json");
        assert_eq!(json["time"], 1_000);
        assert_eq!(json["dashboardUID"], "verdict-canary");
        assert_eq!(json["tags"][2], "gate-held");
        assert!(json.get("timeEnd").is_none());
        let earlier: Value = serde_json::json!({"time": 5, "tags": ["verdict"], "text": "t"});
        let json = serde_json::to_value(AnnotationBody {
            annotation: &earlier,
            dashboard_uid: None,
        })
        .expect("json");
        assert_eq!(
            json, earlier,
            "an earlier verdict's row is sent as it was stored"
        );
    }
}
