//! The HTTP surfaces: Flagger hooks, the release-manager API, health, metrics.

pub mod api;
pub mod error;
pub mod flagger;
pub mod health;

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use axum::Router;
use secrecy::SecretString;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::analysis::Analyst;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub analyst: Analyst,
    /// Background work (event storage) that shutdown waits for.
    pub tasks: TaskTracker,
    pub namespace_allow: Option<Arc<regex::Regex>>,
    pub webhook_token: Option<Arc<SecretString>>,
    /// The load-test hook's runs.
    pub loads: Arc<crate::loadgen::LoadManager>,
    /// Checks the API's bearer tokens; `None` turns the API off (503).
    pub verifier: Option<Arc<crate::auth::Verifier>>,
}

/// The whole router with request ids and one span per request.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/flagger/{hook}", post(flagger::hook))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(api::router())
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let path = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), route = path, request_id = id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
