//! The audit log (admins): every manual action, newest first, filtered by canary, a page
//! at a time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout;
use super::session::Session;
use crate::http::api::audit::audit_page;
use crate::http::api::error::ApiError;
use crate::http::api::model::AuditQuery;
use crate::http::AppState;

/// The page.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let result = async {
        session.require_admin("read the audit log")?;
        let Query(mut q) = query?;
        q.namespace = super::filled(q.namespace);
        q.name = super::filled(q.name);
        q.cursor = super::filled(q.cursor);
        let page = audit_page(&state, &q).await?;
        Ok::<_, ApiError>((q, page))
    }
    .await;
    let (q, page) = match result {
        Ok(found) => found,
        Err(e) => return layout::error_page(&e),
    };
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/ui/audit" aria-label="Filter the audit log" {
            label { "Namespace " input type="text" name="namespace" value=[q.namespace.as_deref()]; }
            label { "Canary " input type="text" name="name" value=[q.name.as_deref()]; }
            button type="submit" { "Filter" }
        }
        div.scroll { table id="audit-log" {
            thead { tr { th scope="col" { "At" } th scope="col" { "Actor" } th scope="col" { "Role" } th scope="col" { "Action" } th scope="col" { "Canary" } th scope="col" { "Reason" } } }
            tbody {
                @if page.items.is_empty() { tr { td colspan="6" { "No action recorded." } } }
                @for e in &page.items {
                    tr { td { (e.at) } td { (e.actor) } td { (e.role) } td { code { (e.action) } } td { (e.target) } td.reason { (e.reason) } }
                }
            }
        } }
        @if let Some(cursor) = &page.next_cursor {
            p { a href={ "/ui/audit?cursor=" (cursor)
                @if let (Some(ns), Some(n)) = (&q.namespace, &q.name) { "&namespace=" (ns) "&name=" (n) } } { "Older →" } }
        }
    };
    layout::page("Audit log", Some(&session.0), body).into_response()
}
