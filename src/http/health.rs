//! Liveness, readiness and the service's metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::AppState;

/// `/healthz`: the process serves requests.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz`: the store and the SLI source answer.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let problems = state.analyst.unready_dependencies().await;
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

/// `/metrics` in Prometheus' text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
