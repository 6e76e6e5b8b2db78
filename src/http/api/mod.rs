//! `/api/v1`: the release-manager API (JWT bearer auth, JSON errors, OpenAPI).
//!
//! The router and the OpenAPI document come from the same `#[utoipa::path]` handlers
//! through `utoipa_axum`, so a route cannot be served without being documented; a test
//! checks the served document against the served routes.

pub mod analyses;
pub mod audit;
pub mod backtests;
pub mod caller;
pub mod canaries;
pub mod error;
pub mod model;
pub mod params;

use std::sync::OnceLock;

use axum::routing::{any, get};
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ApiError;
use crate::http::AppState;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "verdict release-manager API",
        description = "What verdict decided about each canary and why; the rollout and promotion gates; rollback requests; the audit log. See docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(openapi_json),
    components(schemas(model::GateParam)),
    modifiers(&BearerAuth),
    tags(
        (name = "analyses", description = "Analyses with their looks, decisions and load runs"),
        (name = "canaries", description = "A canary's state, gates and rollback requests"),
        (name = "audit", description = "Every manual action"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// Declares the bearer-token scheme the endpoints refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The documented routes and their document.
fn parts() -> (Router<AppState>, OpenApiDoc) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(analyses::list))
        .routes(routes!(analyses::show))
        .routes(routes!(analyses::backtest))
        .routes(routes!(backtests::history))
        .routes(routes!(backtests::window))
        .routes(routes!(canaries::list))
        .routes(routes!(canaries::show))
        .routes(routes!(canaries::set_gate))
        .routes(routes!(canaries::rollback))
        .routes(routes!(audit::list))
        .split_for_parts()
}

/// The OpenAPI document of everything under `/api/v1`.
pub fn document() -> &'static OpenApiDoc {
    static DOC: OnceLock<OpenApiDoc> = OnceLock::new();
    DOC.get_or_init(|| parts().1)
}

/// The API routes: the documented endpoints, the document itself, and a JSON 404 for
/// any other path under `/api/v1`.
pub fn router() -> Router<AppState> {
    parts()
        .0
        .route(OPENAPI_PATH, get(openapi_json))
        .route("/api/v1", any(not_found))
        .route("/api/v1/{*rest}", any(not_found))
}

/// This document (no token needed).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json() -> Json<&'static OpenApiDoc> {
    Json(document())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {}; the API is described at {OPENAPI_PATH}",
        uri.path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_endpoint_once() {
        let doc = document();
        let mut found: Vec<String> = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ] {
                if op.is_some() {
                    found.push(format!("{method} {path}"));
                }
            }
        }
        found.sort();
        assert_eq!(
            found,
            vec![
                "get /api/v1/analyses",
                "get /api/v1/analyses/{id}",
                "get /api/v1/analyses/{id}/backtest",
                "get /api/v1/audit",
                "get /api/v1/backtest",
                "get /api/v1/canaries",
                "get /api/v1/canaries/{namespace}/{name}",
                "get /api/v1/openapi.json",
                "post /api/v1/backtest/window",
                "post /api/v1/canaries/{namespace}/{name}/rollback",
                "put /api/v1/canaries/{namespace}/{name}/gates/{gate}",
            ]
        );
    }
}
