//! The HTTP surfaces: Flagger hooks, Argo Rollouts' measurements, the release-manager
//! API, health, metrics.

pub mod api;
pub mod argo;
pub mod console;
pub mod flagger;
pub mod health;

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use axum::Router;
use secrecy::SecretString;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::analysis::Analyst;
use crate::auth::Verifier;
use crate::loadgen::LoadManager;
use crate::telemetry::Metrics;

/// Shared state of every handler: the services it calls and how callers are checked.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Every rule of the hooks and of the release-manager API.
    pub analyst: Analyst,
    /// The load-test hook's runs.
    pub loads: Arc<LoadManager>,
    /// Counted per hook call and served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// A namespace must match it entirely; `None` allows every namespace.
    pub namespace_allow: Option<Arc<regex::Regex>>,
    /// The token Canaries must send; `None` requires none.
    pub webhook_token: Option<Arc<SecretString>>,
    /// Checks the API's bearer tokens; `None` turns the API off (503).
    pub verifier: Option<Arc<Verifier>>,
    /// The Grafana canary dashboard the console links to (`<grafana.url>/d/<uid>`), when
    /// `grafana.url` is set.
    pub grafana_dashboard: Option<Arc<str>>,
}

/// The whole router with request ids and one span per request.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/flagger/{hook}", post(flagger::hook))
        .route(crate::argo::PATH, get(argo::measure).post(argo::measure))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(api::router())
        .merge(console::router())
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
