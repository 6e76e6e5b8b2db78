//! Liveness, readiness and the service's metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::AppState;
#[cfg(doc)]
use crate::analysis::Analyst;

/// `/healthz`: the process serves requests.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz`: the store answers ([`Analyst::unready_dependencies`]). Prometheus is not part of readiness: while it is down
/// the API, the gates and every hook that needs no SLI still work, and the hooks that
/// do answer 424 with the reason, which reaches Flagger's events; an unready replica
/// would only turn that into a refused connection (docs/operations.md).
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
    // Prometheus' health is shown here rather than in readiness (see `readyz`).
    state.analyst.check_sli().await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
