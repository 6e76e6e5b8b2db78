//! `GET /api/v1/audit`: every manual action, newest first (admins only).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody, NoValidToken, NothingChanged};
use super::model::{AuditEntry, AuditPage, AuditQuery};
use super::params;
use crate::domain::AuditId;
use crate::http::AppState;
use crate::store::AuditFilter;

/// The audit log.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "listAudit",
    tag = "audit",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        NoValidToken,
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require_admin("read the audit log")?;
    let Query(q) = query?;
    Ok(Json(audit_page(&state, &q).await?))
}

/// The page of the audit log `q` asks for; the console's audit page shows the same.
pub async fn audit_page(state: &AppState, q: &AuditQuery) -> Result<AuditPage, ApiError> {
    let target = match (q.namespace.as_deref(), q.name.as_deref()) {
        (Some(ns), Some(name)) => Some(params::canary(ns, name)?),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "namespace and name: give both or neither",
            ))
        }
    };
    let limit = params::limit(q.limit)?;
    let filter = AuditFilter {
        target,
        before: params::cursor(q.cursor.as_deref())?.map(AuditId::new),
        limit: limit + 1,
    };
    let rows = state.analyst.audit_log(&filter).await?;
    let (rows, next_cursor) = params::page(rows, limit, |r| r.id.get());
    Ok(AuditPage {
        items: rows.iter().map(AuditEntry::from).collect(),
        next_cursor,
    })
}
