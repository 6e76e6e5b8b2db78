//! The web console for release managers (`/ui`, see docs/console.md): server-rendered
//! HTML over the same service calls and JSON shapes as `/api/v1`, with charts drawn as
//! SVG on the server, one small script that refreshes the canaries table, and every
//! asset embedded in the binary.
//!
//! Rendering on the server keeps every table and chart readable without JavaScript and
//! the first paint of a long list fast; `maud` escapes every interpolated value, so a
//! name, reason or Flagger event text is always shown as text.

mod actions;
mod analysis;
mod assets;
mod audit;
mod canaries;
mod chart;
mod evidence;
mod headers;
mod layout;
mod session;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;

/// Where the console lives.
pub const BASE: &str = "/ui";

/// The console's routes, each answer with the console's security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to(BASE) }))
        .route(BASE, get(canaries::page))
        .route("/ui/canaries/rows", get(canaries::rows))
        .route("/ui/analyses/{id}", get(analysis::page))
        .route(
            "/ui/canaries/{namespace}/{name}/gates/{gate}",
            post(actions::gate),
        )
        .route(
            "/ui/canaries/{namespace}/{name}/rollback",
            post(actions::rollback),
        )
        .route("/ui/audit", get(audit::page))
        .route("/ui/sign-in", get(session::form).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(layout::not_found))
        .layer(axum::middleware::from_fn(headers::secure))
}

/// A form field left empty is a filter not given.
fn filled(field: Option<String>) -> Option<String> {
    field.filter(|f| !f.trim().is_empty())
}
