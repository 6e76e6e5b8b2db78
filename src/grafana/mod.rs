//! Grafana annotations: the one place that knows Grafana.
//!
//! The analysis service writes domain milestones to the store's outbox in the same
//! transaction as the decision or audit row they describe (and only while this module's
//! worker runs, i.e. `grafana.url` is set). [`annotation`] says what each milestone
//! looks like on a dashboard; the [`Worker`] claims outbox rows and delivers them to
//! Grafana's `POST /api/annotations`. A Grafana outage therefore delays annotations but
//! never a webhook answer, and loses nothing.

pub mod annotation;
mod worker;

pub use annotation::{annotation, Annotation, TAG};
pub use worker::{retry_delay, Worker, WorkerError};

/// The uid of `dashboards/canary-analysis.json`, the dashboard of one canary.
pub const CANARY_DASHBOARD_UID: &str = "verdict-canary";
