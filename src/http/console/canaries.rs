//! Canaries now: every canary with a running or recent analysis, filtered by namespace
//! and outcome; the table refreshes itself (the script fetches [`rows`] every few
//! seconds) and reads the same without JavaScript.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::layout::{self, badge};
use super::session::Session;
use crate::http::api::canaries::canaries_now;
use crate::http::api::model::{CanariesNow, CanariesQuery, CanaryNowView, GateOut, GateStateBody, JudgeState};
use crate::http::AppState;

/// The page.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<CanariesQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => filters(q),
        Err(e) => return layout::error_page(&e.into()),
    };
    let now = match canaries_now(&state, &q).await {
        Ok(now) => now,
        Err(e) => return layout::error_page(&e),
    };
    let body = html! {
        h1 { "Canaries now" }
        form.filters method="get" action="/ui" aria-label="Filter canaries" {
            label { "Namespace " input type="text" name="namespace" value=[q.namespace.as_deref()] placeholder="all" pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" ; }
            label { "Outcome "
                select name="outcome" {
                    option value="" { "any" }
                    @for o in ["running", "failed", "succeeded", "aborted"] {
                        option value=(o) selected[q.outcome.as_deref() == Some(o)] { (o) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (now.items.len()) " canaries running or ended since " (now.recent_since) ". "
            span id="refreshed" aria-live="polite" { "Refreshes every 5 s." } }
        div.scroll {
            table.canaries {
                caption.visually-hidden { "Canaries with a running or recent analysis" }
                thead { tr {
                    th scope="col" { "Canary" } th scope="col" { "Revision" } th scope="col" { "Analysis" }
                    th scope="col" { "Weight" } th scope="col" { "Looks" } th scope="col" { "Judge" }
                    th scope="col" { "Rollout gate" } th scope="col" { "Promotion gate" }
                } }
                (table_body(&now))
            }
        }
    };
    layout::page("Canaries now", Some(&session.0), body).into_response()
}

/// The table's body alone, for the refresh.
pub async fn rows(
    State(state): State<AppState>,
    _session: Session,
    query: Result<Query<CanariesQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => filters(q),
        Err(e) => return layout::error_page(&e.into()),
    };
    match canaries_now(&state, &q).await {
        Ok(now) => table_body(&now).into_response(),
        Err(e) => layout::error_page(&e),
    }
}

/// The query with the form's empty fields dropped.
fn filters(mut q: CanariesQuery) -> CanariesQuery {
    q.namespace = super::filled(q.namespace);
    q.outcome = super::filled(q.outcome);
    q.recent = super::filled(q.recent);
    q
}

fn table_body(now: &CanariesNow) -> Markup {
    html! {
        tbody id="canary-rows" {
            @if now.items.is_empty() {
                tr { td colspan="8" { "No canary is running or ended recently." } }
            }
            @for c in &now.items { (row(c)) }
        }
    }
}

fn row(c: &CanaryNowView) -> Markup {
    let judge = match c.judge {
        JudgeState::Waiting => "waiting",
        JudgeState::Regression => "evidence of regression",
        JudgeState::Ready => "ready to promote",
    };
    html! {
        tr {
            th scope="row" { a href={ "/ui/analyses/" (c.analysis.id) } { (c.namespace) "/" (c.name) } }
            td { code { (short(&c.analysis.checksum)) } }
            td { (badge(&c.analysis.status)) }
            td.num { @match c.weight { Some(w) => { (w) " %" } None => { "–" } } }
            td.num { (c.looks) }
            td { (badge(judge)) " " span.reason { (c.reason.as_deref().unwrap_or("no look yet")) } }
            td { (gate(&c.gates.rollout)) }
            td { (gate(&c.gates.promotion)) }
        }
    }
}

/// A gate's state with who holds it and why.
pub fn gate(g: &GateOut) -> Markup {
    let state = match g.state {
        GateStateBody::Open => "open",
        GateStateBody::Held => "held",
    };
    html! {
        (badge(state))
        @if g.manual { " " span.muted { "manual" } }
        @if let (GateStateBody::Held, Some(reason)) = (g.state, g.reason.as_deref()) {
            " " span.reason { (g.actor.as_deref().unwrap_or("someone")) ": " (reason) }
        }
    }
}

/// A checksum's first characters.
pub fn short(checksum: &str) -> &str {
    checksum.get(..10).unwrap_or(checksum)
}
