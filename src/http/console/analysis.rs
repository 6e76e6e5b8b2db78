//! One analysis: its state, the gates and the actions a release manager may take, the
//! charts of both arms per look and of the evidence over the looks, and the tables
//! behind them: looks, the decision log, Flagger's events and load runs.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::canaries::{gate, short};
use super::chart::render;
use super::evidence;
use super::layout::{self, badge};
use super::session::Session;
use crate::domain::AnalysisId;
use crate::http::api::error::ApiError;
use crate::http::api::model::{AnalysisDetail, CanaryState, GateStateBody};
use crate::http::api::params;
use crate::http::AppState;

/// The page.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<i64>, PathRejection>,
) -> Response {
    match load(&state, path).await {
        Ok((detail, canary)) => {
            let title = format!("{}/{}", detail.analysis.namespace, detail.analysis.name);
            let body = body(&state, &session, &detail, &canary);
            layout::page(&title, Some(&session.0), body).into_response()
        }
        Err(e) => layout::error_page(&e),
    }
}

async fn load(
    state: &AppState,
    path: Result<Path<i64>, PathRejection>,
) -> Result<(AnalysisDetail, CanaryState), ApiError> {
    let Path(id) = path?;
    let record = state.analyst.analysis(AnalysisId::new(id)).await?;
    // A recorded backtest's canary may be one verdict never analysed live.
    let (canary, _) = state
        .analyst
        .canary_as_is(&record.analysis.canary())
        .await?;
    Ok((AnalysisDetail::from(&record), CanaryState::from(&canary)))
}

fn body(state: &AppState, session: &Session, d: &AnalysisDetail, c: &CanaryState) -> Markup {
    let a = &d.analysis;
    let latest = c.latest_analysis.as_ref().is_some_and(|l| l.id == a.id);
    let backtest = a.origin == "backtest";
    let weights = evidence::weights(d);
    let boundaries = evidence::boundaries(d);
    html! {
        h1 { (a.namespace) "/" (a.name) " " (badge(&a.status)) }
        dl.facts {
            dt { "Revision" } dd { code { (a.checksum) } }
            dt { "Controller" } dd { (super::canaries::controller(&a.controller)) }
            @if backtest {
                dt { "Origin" } dd { "recorded backtest of a window of Prometheus history: no hook, gate or overview reads it" }
            }
            dt { "Started" } dd { (a.started_at) }
            @if let Some(end) = &a.finished_at { dt { "Ended" } dd { (end) } }
            @if let Some(reason) = &a.status_reason { dt { "Why" } dd.reason { (reason) } }
            @if let Some(alpha) = d.settings.pointer("/canary/judge/alpha").and_then(|v| v.as_f64()) {
                dt { "α (false-rollback budget)" } dd { (alpha) }
            }
            @for (key, label) in [("/canary/judge/error_margin", "Error margin"), ("/canary/judge/latency_margin", "Latency margin"), ("/canary/judge/promotion_margin", "Promotion margin")] {
                @if let Some(m) = d.settings.pointer(key).and_then(|v| v.as_f64()) {
                    dt { (label) } dd { (format!("{:.0} %", m * 100.0)) }
                }
            }
            @if !boundaries.is_empty() {
                dt { "Latency boundaries tested" } dd { @for (i, b) in boundaries.iter().enumerate() { @if i > 0 { ", " } (evidence::ms(b.le_s)) } }
            }
            dt { "Rollout gate" } dd { (gate(&c.gates.rollout)) }
            dt { "Promotion gate" } dd { (gate(&c.gates.promotion)) }
            @if let Some(link) = grafana_link(state, d) {
                dt { "Grafana" } dd { a href=(link) rel="noopener noreferrer" { "Canary dashboard" } }
            }
        }
        @if backtest {
            p.notice { "A recorded backtest, not a live analysis; the gates above are the canary's now." }
        } @else if !latest {
            p.notice { "A newer analysis of this canary exists; the gates above are the canary's now." }
        }
        @if session.0.role.can_act() && latest && a.status == "running" {
            (actions(d, c))
        }
        section aria-labelledby="traffic" {
            h2 id="traffic" { "Canary and primary, per look" }
            div.charts { @for ch in evidence::traffic(d) { (render(&ch)) } }
        }
        section aria-labelledby="evidence" {
            h2 id="evidence" { "Evidence over time" }
            p.muted { "A regression is established when a regression test's e-value crosses its line; promotion needs each promotion test across 1/α and the band below the promotion limit. See docs/console.md." }
            div.charts {
                (render(&evidence::e_values(d)))
                @for ch in evidence::ratio_bands(d) { (render(&ch)) }
            }
        }
        section aria-labelledby="looks" {
            h2 id="looks" { "Looks" }
            div.scroll { table {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Window end" } th scope="col" { "Weight" }
                    th scope="col" { "Canary req / err" } th scope="col" { "Primary req / err" }
                    @for b in &boundaries { th scope="col" { "> " (evidence::ms(b.le_s)) " (c / p)" } }
                    th scope="col" { "Judge" } th scope="col" { "Reason" }
                } }
                tbody {
                    @for (l, w) in d.looks.iter().zip(&weights) {
                        tr {
                            td.num { (l.seq) } td { (l.window_end) }
                            td.num { @match w { Some(w) => { (w) " %" } None => { "–" } } }
                            td.num { (l.canary.requests) " / " (l.canary.errors) }
                            td.num { (l.primary.requests) " / " (l.primary.errors) }
                            @for b in &boundaries {
                                td.num { (count(l.canary.slower.get(b.edge))) " / " (count(l.primary.slower.get(b.edge))) }
                            }
                            td { (badge(&l.verdict)) } td.reason { (l.reason) }
                        }
                    }
                }
            } }
        }
        section aria-labelledby="decisions" {
            h2 id="decisions" { "Decision log" }
            div.scroll { table id="decision-log" {
                thead { tr { th scope="col" { "At" } th scope="col" { "Hook" } th scope="col" { "Status" } th scope="col" { "Verdict" } th scope="col" { "Reason" } } }
                tbody {
                    @for x in &d.decisions {
                        tr { td { (x.created_at) } td { (x.hook) } td.num { (x.status_code) } td { (badge(&x.verdict)) } td.reason { (x.reason) } }
                    }
                }
            } }
        }
        section aria-labelledby="events" {
            h2 id="events" { "Flagger's events" }
            @if d.events.is_empty() { p.muted { "None received (add verdict's event webhook to the Canary)." } }
            @else { div.scroll { table {
                thead { tr { th scope="col" { "Received" } th scope="col" { "Type" } th scope="col" { "Phase" } th scope="col" { "Message" } } }
                tbody { @for e in &d.events { tr { td { (e.received_at) } td { (e.event_type) } td { (e.phase) } td.reason { (e.message) } } } }
            } } }
        }
        section aria-labelledby="loads" {
            h2 id="loads" { "Load runs" }
            @if d.load_runs.is_empty() { p.muted { "None." } }
            @else { div.scroll { table {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Started" } th scope="col" { "Status" } th scope="col" { "Requests" } th scope="col" { "Latency" } } }
                tbody { @for r in &d.load_runs { tr {
                    td { code { (short(&r.run_id)) } } td { (r.started_at) } td { (badge(&r.status)) }
                    td.num { @match r.requests { Some(n) => { (n) } None => { "–" } } }
                    td { @match &r.latency { Some(l) => { code { (l.to_string()) } } None => { "–" } } }
                } } }
            } } }
        }
    }
}

fn count(c: Option<&u64>) -> String {
    c.map_or_else(|| "–".to_owned(), u64::to_string)
}

/// The forms of the actions on a running analysis: each asks for a reason, then for
/// confirmation on the next page.
fn actions(d: &AnalysisDetail, c: &CanaryState) -> Markup {
    let a = &d.analysis;
    let base = format!("/ui/canaries/{}/{}", a.namespace, a.name);
    let gate_form = |gate: &str, label: &str, now: GateStateBody| {
        let (to, verb) = match now {
            GateStateBody::Open => ("held", "Hold"),
            GateStateBody::Held => ("open", "Open"),
        };
        html! {
            form.action method="post" action={ (base) "/gates/" (gate) } {
                input type="hidden" name="state" value=(to);
                input type="hidden" name="analysis" value=(a.id);
                label for={ "reason-" (gate) } { (verb) " the " (label) " gate because" }
                input type="text" id={ "reason-" (gate) } name="reason" required maxlength=(params::MAX_REASON) autocomplete="off";
                button type="submit" id={ (verb.to_lowercase()) "-" (gate) } { (verb) " " (label) " gate…" }
            }
        }
    };
    html! {
        section.actions aria-labelledby="actions" {
            h2 id="actions" { "Actions" }
            div.action-forms {
                (gate_form("promotion", "promotion", c.gates.promotion.state))
                (gate_form("rollout", "rollout", c.gates.rollout.state))
                form.action.danger method="post" action={ (base) "/rollback" } {
                    input type="hidden" name="analysis" value=(a.id);
                    label for="reason-rollback" { "Roll back because" }
                    input type="text" id="reason-rollback" name="reason" required maxlength=(params::MAX_REASON) autocomplete="off";
                    button type="submit" id="request-rollback" { "Request rollback…" }
                }
            }
        }
    }
}

/// The Grafana dashboard of this canary over the analysis, when `grafana.url` is set.
fn grafana_link(state: &AppState, d: &AnalysisDetail) -> Option<String> {
    let dashboard = state.grafana_dashboard.as_deref()?;
    let a = &d.analysis;
    let from = evidence::millis(&a.started_at)?;
    let to = a
        .finished_at
        .as_deref()
        .and_then(evidence::millis)
        .map_or_else(|| "now".to_owned(), |t| t.to_string());
    Some(format!(
        "{dashboard}?var-namespace={}&var-canary={}&from={from}&to={to}",
        a.namespace, a.name
    ))
}
