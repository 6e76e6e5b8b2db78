//! A canary's state, its gates and rollback requests: each handler parses the call,
//! asks the analysis service, and shapes its answer.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody, NoValidToken, NothingChanged};
use super::model::{
    rfc3339, AnalysisSummary, CanariesNow, CanariesQuery, CanaryNowView, CanaryState, GateChange,
    GateOut, GateParam, RollbackAnswer, RollbackBody,
};
use super::params;
use crate::domain::now_millis;
use crate::http::AppState;
use crate::store::{GateKind, OverviewFilter};

/// The most canaries one overview lists.
const MAX_CANARIES: i64 = 2000;

/// Canaries now: every canary whose latest analysis is running or ended recently.
#[utoipa::path(
    get,
    path = "/api/v1/canaries",
    operation_id = "listCanaries",
    tag = "canaries",
    params(CanariesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Each canary's latest analysis, newest look, weight and gates", body = CanariesNow),
        NoValidToken,
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<CanariesQuery>, QueryRejection>,
) -> Result<Json<CanariesNow>, ApiError> {
    let Query(q) = query?;
    let answer = canaries_now(&state, &q).await?;
    Ok(Json(answer))
}

/// The overview `q` asks for; the console's canaries page shows the same.
pub async fn canaries_now(state: &AppState, q: &CanariesQuery) -> Result<CanariesNow, ApiError> {
    let recent = params::recent(q.recent.as_deref())?;
    let limit = match q.limit {
        None => 1000,
        Some(n) if (1..=MAX_CANARIES).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "limit: {n} is outside 1–{MAX_CANARIES}"
            )))
        }
    };
    let recent_since = now_millis() - i64::try_from(recent.as_millis()).unwrap_or(i64::MAX);
    let filter = OverviewFilter {
        recent_since,
        namespace: q.namespace.as_deref().map(params::namespace).transpose()?,
        status: params::outcome(q.outcome.as_deref())?,
        limit,
    };
    let canaries = state.analyst.canaries_now(&filter).await?;
    Ok(CanariesNow {
        items: canaries.iter().map(CanaryNowView::from).collect(),
        recent_since: rfc3339(recent_since),
    })
}

/// The canary's latest analysis and both gates.
#[utoipa::path(
    get,
    path = "/api/v1/canaries/{namespace}/{name}",
    operation_id = "getCanary",
    tag = "canaries",
    params(
        ("namespace" = String, Path, description = "The canary's namespace"),
        ("name" = String, Path, description = "The canary's name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The canary now", body = CanaryState),
        NoValidToken,
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 404, description = "verdict has never seen this canary", body = ErrorBody),
        (status = 422, description = "Not a Kubernetes name", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<CanaryState>, ApiError> {
    let Path((namespace, name)) = path?;
    let canary = params::canary(&namespace, &name)?;
    let view = state.analyst.canary(&canary).await?;
    Ok(Json(CanaryState::from(&view)))
}

/// Open or hold a gate.
#[utoipa::path(
    put,
    path = "/api/v1/canaries/{namespace}/{name}/gates/{gate}",
    operation_id = "setGate",
    tag = "canaries",
    params(
        ("namespace" = String, Path, description = "The canary's namespace"),
        ("name" = String, Path, description = "The canary's name"),
        ("gate" = GateParam, Path, description = "`rollout` or `promotion`"),
    ),
    request_body = GateChange,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The gate as the hooks now see it", body = GateOut),
        NoValidToken,
        (status = 403, description = "The role may not change gates", body = ErrorBody),
        (status = 404, description = "Promotion gate of a canary without analysis", body = ErrorBody),
        (status = 409, description = "Promotion gate of a finished analysis", body = ErrorBody),
        (status = 422, description = "Invalid body or path", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn set_gate(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String, GateParam)>, PathRejection>,
    body: Result<Json<GateChange>, JsonRejection>,
) -> Result<Json<GateOut>, ApiError> {
    caller.require_act("change gates")?;
    let Path((namespace, name, gate)) = path?;
    let canary = params::canary(&namespace, &name)?;
    let Json(change) = body?;
    let reason = params::reason(&change.reason)?;
    let kind = match gate {
        GateParam::Rollout => GateKind::Rollout,
        GateParam::Promotion => GateKind::Promotion,
    };
    let view = state
        .analyst
        .set_gate(&canary, kind, change.state.into(), &caller.0, &reason)
        .await?;
    Ok(Json(GateOut::from(&view)))
}

/// Ask for a rollback of the canary's running analysis.
#[utoipa::path(
    post,
    path = "/api/v1/canaries/{namespace}/{name}/rollback",
    operation_id = "requestRollback",
    tag = "canaries",
    params(
        ("namespace" = String, Path, description = "The canary's namespace"),
        ("name" = String, Path, description = "The canary's name"),
    ),
    request_body = RollbackBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The analysis, now failed: the rollback hook answers 200", body = RollbackAnswer),
        NoValidToken,
        (status = 403, description = "The role may not request rollbacks", body = ErrorBody),
        (status = 404, description = "The canary has no analysis", body = ErrorBody),
        (status = 409, description = "The latest analysis is not running", body = ErrorBody),
        (status = 422, description = "Invalid body or path", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<RollbackBody>, JsonRejection>,
) -> Result<Json<RollbackAnswer>, ApiError> {
    caller.require_act("request rollbacks")?;
    let Path((namespace, name)) = path?;
    let canary = params::canary(&namespace, &name)?;
    let Json(body) = body?;
    let reason = params::reason(&body.reason)?;
    let analysis = state
        .analyst
        .request_rollback(&canary, &caller.0, &reason)
        .await?;
    Ok(Json(RollbackAnswer {
        analysis: AnalysisSummary::from(&analysis),
    }))
}
