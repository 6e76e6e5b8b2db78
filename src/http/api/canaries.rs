//! A canary's state, its gates and rollback requests. Every change is one store
//! transaction with its audit row (and its Grafana annotation, when Grafana is on).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::Json;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::model::{
    AnalysisSummary, CanaryState, GateChange, GateOut, GateParam, Gates, RollbackAnswer,
    RollbackBody,
};
use super::params;
use crate::analysis::gates::{self, GateView};
use crate::analysis::StoredSettings;
use crate::domain::now_millis;
use crate::grafana::{self, Outcome};
use crate::http::AppState;
use crate::store::{
    Analysis, AnalysisStatus, GateKind, GateRow, GateState, NewAudit, RollbackRequest, StatusChange,
};

/// Whether the canary's gates are manual: as a hook call last recorded it, or as its
/// latest analysis fixed it at pre-rollout.
async fn manual(
    state: &AppState,
    namespace: &str,
    name: &str,
    latest: Option<&Analysis>,
) -> Result<(bool, bool), ApiError> {
    let recorded = state.analyst.store.gate_mode(namespace, name).await?;
    let from_analysis = latest
        .and_then(|a| serde_json::from_str::<StoredSettings>(&a.settings).ok())
        .is_some_and(|s| s.canary.manual_gates);
    Ok((recorded == Some(true) || from_analysis, recorded.is_some()))
}

/// Both gates as the hooks see them, from the canary's gate rows.
fn views(rows: &[GateRow], manual: bool, latest: Option<&Analysis>) -> (GateView, GateView) {
    let rollout = gates::rollout_gate(gates::row_of(rows, GateKind::Rollout), manual, latest);
    let promotion_row = gates::row_of(rows, GateKind::Promotion);
    let promotion = match latest {
        Some(a) => gates::promotion_gate(promotion_row, manual, a),
        // Nothing to promote yet: show what a person last set.
        None => gates::as_set(GateKind::Promotion, promotion_row, false),
    };
    (rollout, promotion)
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
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Unknown role", body = ErrorBody),
        (status = 404, description = "verdict has never seen this canary", body = ErrorBody),
        (status = 422, description = "Not a Kubernetes name", body = ErrorBody),
        (status = 500, description = "The store refused the request; nothing changed", body = ErrorBody),
        (status = 503, description = "The API is off (no JWT key) or the store is unreachable; nothing changed", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<CanaryState>, ApiError> {
    let Path((namespace, name)) = path?;
    let (ns, name) = params::canary(&namespace, &name)?;
    let latest = state
        .analyst
        .store
        .latest_analysis(ns.as_str(), name.as_str())
        .await?;
    let rows = state
        .analyst
        .store
        .gates(ns.as_str(), name.as_str())
        .await?;
    let (manual, mode_recorded) =
        manual(&state, ns.as_str(), name.as_str(), latest.as_ref()).await?;
    let (rollout, promotion) = views(&rows, manual, latest.as_ref());
    if latest.is_none() && rows.is_empty() && !mode_recorded {
        return Err(ApiError::not_found(format!(
            "verdict has no analysis and no gate for {ns}/{name}"
        )));
    }
    Ok(Json(CanaryState {
        namespace: ns.to_string(),
        name: name.to_string(),
        latest_analysis: latest.as_ref().map(AnalysisSummary::from),
        gates: Gates {
            rollout: GateOut::from(&rollout),
            promotion: GateOut::from(&promotion),
        },
    }))
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
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The role may not change gates", body = ErrorBody),
        (status = 404, description = "Promotion gate of a canary without analysis", body = ErrorBody),
        (status = 409, description = "Promotion gate of a finished analysis", body = ErrorBody),
        (status = 422, description = "Invalid body or path", body = ErrorBody),
        (status = 500, description = "The store refused the request; nothing changed", body = ErrorBody),
        (status = 503, description = "The API is off (no JWT key) or the store is unreachable; nothing changed", body = ErrorBody),
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
    let (ns, name) = params::canary(&namespace, &name)?;
    let Json(change) = body?;
    let reason = params::reason(&change.reason)?;
    let kind = match gate {
        GateParam::Rollout => GateKind::Rollout,
        GateParam::Promotion => GateKind::Promotion,
    };
    let store = &state.analyst.store;
    let latest = store.latest_analysis(ns.as_str(), name.as_str()).await?;
    // Everything the answer needs is read before the write: once the change commits,
    // the call must not fail (a 503 would say that nothing changed).
    let mut rows = store.gates(ns.as_str(), name.as_str()).await?;
    let (manual, _) = manual(&state, ns.as_str(), name.as_str(), latest.as_ref()).await?;
    if kind == GateKind::Promotion {
        match &latest {
            None => {
                return Err(ApiError::not_found(format!(
                    "{ns}/{name} has no analysis whose promotion could be gated"
                )))
            }
            Some(a) if a.status != AnalysisStatus::Running => {
                return Err(ApiError::conflict(format!(
                    "analysis {} of {ns}/{name} has finished ({}); its promotion can no longer be gated",
                    a.id,
                    a.status.as_str()
                )))
            }
            Some(_) => {}
        }
    }
    let now = now_millis();
    let state_to: GateState = change.state.into();
    let verb = match state_to {
        GateState::Open => "open",
        GateState::Held => "hold",
    };
    let principal = &caller.0;
    let row = GateRow {
        namespace: ns.to_string(),
        name: name.to_string(),
        kind,
        state: state_to,
        actor: principal.subject.clone(),
        reason: reason.clone(),
        updated_at: now,
    };
    let audit = NewAudit {
        actor: principal.subject.clone(),
        role: principal.role.as_str().to_owned(),
        action: format!("gate.{}.{verb}", kind.as_str()),
        target: format!("{ns}/{name}"),
        reason: reason.clone(),
        at: now,
    };
    let annotation = state.analyst.config.grafana.enabled().then(|| {
        let outcome = match state_to {
            GateState::Open => Outcome::GateOpened,
            GateState::Held => Outcome::GateHeld,
        };
        grafana::manual_action(
            outcome,
            ns.as_str(),
            name.as_str(),
            &principal.subject,
            &format!("{} gate: {reason}", kind.as_str()),
            now,
        )
    });
    let stored = store.set_gate(&row, &audit, annotation.as_ref()).await?;
    tracing::info!(actor = %principal.subject, action = %audit.action, target = %audit.target, "gate changed");
    rows.retain(|r| r.kind != kind);
    rows.push(stored);
    let (rollout, promotion) = views(&rows, manual, latest.as_ref());
    let view = match kind {
        GateKind::Rollout => rollout,
        GateKind::Promotion => promotion,
    };
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
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The role may not request rollbacks", body = ErrorBody),
        (status = 404, description = "The canary has no analysis", body = ErrorBody),
        (status = 409, description = "The latest analysis is not running", body = ErrorBody),
        (status = 422, description = "Invalid body or path", body = ErrorBody),
        (status = 500, description = "The store refused the request; nothing changed", body = ErrorBody),
        (status = 503, description = "The API is off (no JWT key) or the store is unreachable; nothing changed", body = ErrorBody),
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
    let (ns, name) = params::canary(&namespace, &name)?;
    let Json(body) = body?;
    let reason = params::reason(&body.reason)?;
    let store = &state.analyst.store;
    let latest = store
        .latest_analysis(ns.as_str(), name.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{ns}/{name} has no analysis to roll back")))?;
    let principal = &caller.0;
    let now = now_millis();
    let change = StatusChange {
        status: AnalysisStatus::Failed,
        reason: format!("rollback requested by {}: {reason}", principal.subject),
        at: now,
    };
    let audit = NewAudit {
        actor: principal.subject.clone(),
        role: principal.role.as_str().to_owned(),
        action: "rollback".to_owned(),
        target: format!("{ns}/{name}"),
        reason: reason.clone(),
        at: now,
    };
    let annotation = state.analyst.config.grafana.enabled().then(|| {
        grafana::manual_action(
            Outcome::RollbackRequested,
            ns.as_str(),
            name.as_str(),
            &principal.subject,
            &reason,
            now,
        )
    });
    match store
        .request_rollback(latest.id, &change, &audit, annotation.as_ref())
        .await?
    {
        RollbackRequest::Recorded(analysis) => {
            tracing::info!(actor = %principal.subject, analysis = analysis.id, "rollback requested");
            Ok(Json(RollbackAnswer {
                analysis: AnalysisSummary::from(&analysis),
            }))
        }
        RollbackRequest::NotRunning(analysis) => Err(ApiError::conflict(format!(
            "analysis {} of {ns}/{name} is {}, not running: nothing to roll back",
            analysis.id,
            analysis.status.as_str()
        ))),
        RollbackRequest::Missing => Err(ApiError::not_found(format!(
            "analysis {} of {ns}/{name} no longer exists",
            latest.id
        ))),
    }
}
