//! `GET /api/v1/analyses` and `GET /api/v1/analyses/{id}`: what verdict decided and why.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody, NoValidToken, NothingChanged};
use super::model::{
    AnalysisDetail, AnalysisPage, AnalysisQuery, AnalysisSummary, BacktestQuery, BacktestView,
};
use super::params;
use crate::domain::AnalysisId;
use crate::http::AppState;
use crate::store::AnalysisFilter;

/// List analyses, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/analyses",
    operation_id = "listAnalyses",
    tag = "analyses",
    params(AnalysisQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of analyses", body = AnalysisPage),
        NoValidToken,
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<AnalysisQuery>, QueryRejection>,
) -> Result<Json<AnalysisPage>, ApiError> {
    let Query(q) = query?;
    let status = params::outcome(q.outcome.as_deref())?;
    let limit = params::limit(q.limit)?;
    let filter = AnalysisFilter {
        namespace: q.namespace.as_deref().map(params::namespace).transpose()?,
        name: q.name.as_deref().map(params::name).transpose()?,
        status,
        since: q
            .since
            .as_deref()
            .map(|s| params::time("since", s))
            .transpose()?,
        mode: params::mode(q.mode.as_deref())?,
        controller: params::controller(q.controller.as_deref())?,
        origin: params::origin(q.origin.as_deref())?,
        before: params::cursor(q.cursor.as_deref())?.map(AnalysisId::new),
        // One more than asked tells whether another page follows.
        limit: limit + 1,
    };
    let rows = state.analyst.analyses(&filter).await?;
    let (rows, next_cursor) = params::page(rows, limit, |a| a.id.get());
    Ok(Json(AnalysisPage {
        items: rows.iter().map(AnalysisSummary::from).collect(),
        next_cursor,
    }))
}

/// One analysis with its looks, decisions and the canary's load runs during it.
#[utoipa::path(
    get,
    path = "/api/v1/analyses/{id}",
    operation_id = "getAnalysis",
    tag = "analyses",
    params(("id" = i64, Path, description = "Analysis id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The analysis and its evidence", body = AnalysisDetail),
        NoValidToken,
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 404, description = "No such analysis", body = ErrorBody),
        (status = 422, description = "The id is not a number", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<AnalysisDetail>, ApiError> {
    let Path(id) = id?;
    let record = state.analyst.analysis(AnalysisId::new(id)).await?;
    Ok(Json(AnalysisDetail::from(&record)))
}

/// Replays an analysis' stored looks through the judge with changed settings (a read:
/// nothing is written).
#[utoipa::path(
    get,
    path = "/api/v1/analyses/{id}/backtest",
    operation_id = "backtestAnalysis",
    tag = "analyses",
    params(("id" = i64, Path, description = "Analysis id"), BacktestQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Old and new verdict per look", body = BacktestView),
        NoValidToken,
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 404, description = "No such analysis", body = ErrorBody),
        (status = 409, description = "The analysis' settings are unreadable", body = ErrorBody),
        (status = 422, description = "Unknown or invalid setting", body = ErrorBody),
        NothingChanged,
    )
)]
pub async fn backtest(
    State(state): State<AppState>,
    _caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    query: Result<Query<BacktestQuery>, QueryRejection>,
) -> Result<Json<BacktestView>, ApiError> {
    let Path(id) = id?;
    let Query(q) = query?;
    let set = params::settings(q.set.as_deref())?;
    let replay = state.analyst.backtest(AnalysisId::new(id), &set).await?;
    Ok(Json(BacktestView::from(&replay)))
}
