//! The actions of release managers and admins: hold or open a gate, request a rollback.
//! Each form posts a reason; the answer is a confirmation page, and only its confirm
//! button performs the action (through the same service call as the API) and shows the
//! result. A role that may not act is refused at both steps, whatever it posts.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::canaries::gate as gate_badge;
use super::layout;
use super::session::Session;
use crate::domain::CanaryRef;
use crate::http::api::error::ApiError;
use crate::http::api::model::{GateOut, GateParam, GateStateBody};
use crate::http::api::params;
use crate::http::AppState;
use crate::store::GateKind;

/// A gate form's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateForm {
    state: GateStateBody,
    reason: String,
    /// The analysis page to return to.
    analysis: i64,
    /// `yes` once the person confirmed.
    confirm: Option<String>,
}

/// The rollback form's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackForm {
    reason: String,
    analysis: i64,
    confirm: Option<String>,
}

/// Hold or open a gate.
pub async fn gate(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<(String, String, GateParam)>, PathRejection>,
    form: Result<Form<GateForm>, FormRejection>,
) -> Response {
    match gate_step(&state, &session, path, form).await {
        Ok(page) => layout::page("Gate", Some(&session.0), page).into_response(),
        Err(e) => layout::error_page(&e),
    }
}

async fn gate_step(
    state: &AppState,
    session: &Session,
    path: Result<Path<(String, String, GateParam)>, PathRejection>,
    form: Result<Form<GateForm>, FormRejection>,
) -> Result<Markup, ApiError> {
    session.require_act("change gates")?;
    let Path((namespace, name, gate)) = path?;
    let canary = params::canary(&namespace, &name)?;
    let Form(f) = form.map_err(|e| ApiError::invalid(e.body_text()))?;
    let reason = params::reason(&f.reason)?;
    let (kind, label) = match gate {
        GateParam::Rollout => (GateKind::Rollout, "rollout"),
        GateParam::Promotion => (GateKind::Promotion, "promotion"),
    };
    let verb = match f.state {
        GateStateBody::Open => "Open",
        GateStateBody::Held => "Hold",
    };
    let what = format!("{verb} the {label} gate of {canary}");
    if f.confirm.as_deref() != Some("yes") {
        let state_value = match f.state {
            GateStateBody::Open => "open",
            GateStateBody::Held => "held",
        };
        return Ok(confirm_page(
            &what,
            &reason,
            &format!("/ui/canaries/{namespace}/{name}/gates/{label}"),
            &[("state", state_value)],
            f.analysis,
        ));
    }
    let view = state
        .analyst
        .set_gate(&canary, kind, f.state.into(), &session.0, &reason)
        .await?;
    let out = GateOut::from(&view);
    Ok(done_page(
        &canary,
        f.analysis,
        html! {
            p.notice.good role="status" { "Done: the " (label) " gate is now " (gate_badge(&out)) }
        },
    ))
}

/// Request a rollback.
pub async fn rollback(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<RollbackForm>, FormRejection>,
) -> Response {
    match rollback_step(&state, &session, path, form).await {
        Ok(page) => layout::page("Rollback", Some(&session.0), page).into_response(),
        Err(e) => layout::error_page(&e),
    }
}

async fn rollback_step(
    state: &AppState,
    session: &Session,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<RollbackForm>, FormRejection>,
) -> Result<Markup, ApiError> {
    session.require_act("request rollbacks")?;
    let Path((namespace, name)) = path?;
    let canary = params::canary(&namespace, &name)?;
    let Form(f) = form.map_err(|e| ApiError::invalid(e.body_text()))?;
    let reason = params::reason(&f.reason)?;
    if f.confirm.as_deref() != Some("yes") {
        return Ok(confirm_page(
            &format!("Roll back {canary}"),
            &reason,
            &format!("/ui/canaries/{namespace}/{name}/rollback"),
            &[],
            f.analysis,
        ));
    }
    let analysis = state
        .analyst
        .request_rollback(&canary, &session.0, &reason)
        .await?;
    Ok(done_page(
        &canary,
        f.analysis,
        html! {
            p.notice.good role="status" {
                "Done: analysis " (analysis.id.get()) " is now " (analysis.status.as_str())
                "; Flagger's next rollback hook call answers \"roll back now\"."
            }
        },
    ))
}

/// Asks before acting: the same fields again, with `confirm=yes`.
fn confirm_page(
    what: &str,
    reason: &str,
    action: &str,
    fields: &[(&str, &str)],
    analysis: i64,
) -> Markup {
    html! {
        h1 { "Confirm" }
        p { strong { (what) } "?" }
        p { "Reason: " span.reason { (reason) } }
        form.confirm method="post" action=(action) {
            @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
            input type="hidden" name="reason" value=(reason);
            input type="hidden" name="analysis" value=(analysis);
            input type="hidden" name="confirm" value="yes";
            button type="submit" id="confirm" autofocus { "Yes, " (what.to_lowercase()) }
            " "
            a href={ "/ui/analyses/" (analysis) } { "Cancel" }
        }
    }
}

fn done_page(canary: &CanaryRef, analysis: i64, result: Markup) -> Markup {
    html! {
        h1 { (canary) }
        (result)
        p { a id="back" href={ "/ui/analyses/" (analysis) } { "Back to the analysis" } }
    }
}
