//! Liveness, readiness and the service's metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::AppState;

/// `/healthz`: the process serves requests.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz`: the store answers. Prometheus is not part of readiness: while it is down
/// the API, the gates and every hook that needs no SLI still work, and the hooks that
/// do answer 424 with the reason, which reaches Flagger's events; an unready replica
/// would only turn that into a refused connection (docs/operations.md).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.analyst.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

/// `/metrics` in Prometheus' text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Prometheus' health is shown here rather than in readiness (see `readyz`).
    let up = state.analyst.sli.ready().await.is_ok();
    state.analyst.metrics.set_sli_up(up);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.analyst.metrics.encode(),
    )
}
