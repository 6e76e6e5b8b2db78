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
use serde::Deserialize;

use crate::http::api::error::ApiError;
use crate::http::api::model::{
    CanariesNow, CanariesQuery, CanaryNowView, GateOut, GateStateBody, JudgeState,
};
use crate::http::AppState;

/// The page's query: the API's filters, and which page of how many rows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    namespace: Option<String>,
    outcome: Option<String>,
    /// 1, 2, …
    page: Option<usize>,
    /// Rows per page, 1–1000 (default 100): a short page paints at once however many
    /// canaries are in flight.
    per: Option<usize>,
}

/// The default rows per page.
const PER_PAGE: usize = 100;

/// One page of the overview: the rows to show, the page, the pages and the total.
struct Shown {
    now: CanariesNow,
    page: usize,
    pages: usize,
    total: usize,
    per: usize,
}

async fn shown(state: &AppState, q: &PageQuery) -> Result<Shown, ApiError> {
    let per = match q.per {
        None => PER_PAGE,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(n) => return Err(ApiError::invalid(format!("per: {n} is outside 1–1000"))),
    };
    let api = CanariesQuery {
        namespace: super::filled(q.namespace.clone()),
        outcome: super::filled(q.outcome.clone()),
        ..CanariesQuery::default()
    };
    let mut now = canaries_now(state, &api).await?;
    let total = now.items.len();
    let pages = total.div_ceil(per).max(1);
    let page = q.page.unwrap_or(1);
    if page == 0 || page > pages {
        return Err(ApiError::invalid(format!(
            "page: {page} is outside 1–{pages}"
        )));
    }
    now.items = now
        .items
        .into_iter()
        .skip((page - 1) * per)
        .take(per)
        .collect();
    Ok(Shown {
        now,
        page,
        pages,
        total,
        per,
    })
}

/// The page.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return layout::error_page(&e.into()),
    };
    let shown = match shown(&state, &q).await {
        Ok(shown) => shown,
        Err(e) => return layout::error_page(&e),
    };
    let namespace = super::filled(q.namespace.clone());
    let outcome = super::filled(q.outcome.clone());
    let link = |page: usize| {
        let mut url = format!("/ui?page={page}&per={}", shown.per);
        for (k, v) in [("namespace", &namespace), ("outcome", &outcome)] {
            if let Some(v) = v {
                url.push_str(&format!("&{k}={v}"));
            }
        }
        url
    };
    let body = html! {
        h1 { "Canaries now" }
        form.filters method="get" action="/ui" aria-label="Filter canaries" {
            label { "Namespace " input type="text" name="namespace" value=[namespace.as_deref()] placeholder="all" pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" ; }
            label { "Outcome "
                select name="outcome" {
                    option value="" { "any" }
                    @for o in ["running", "failed", "succeeded", "aborted"] {
                        option value=(o) selected[outcome.as_deref() == Some(o)] { (o) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (shown.total) @if shown.total == 1 { " canary" } @else { " canaries" } " running or ended since " (shown.now.recent_since)
            @if shown.pages > 1 { "; page " (shown.page) " of " (shown.pages) }
            ". " span id="refreshed" aria-live="polite" { "Refreshes every 5 s." } }
        div.scroll {
            table.canaries {
                caption.visually-hidden { "Canaries with a running or recent analysis" }
                thead { tr {
                    th scope="col" { "Canary" } th scope="col" { "Revision" } th scope="col" { "Analysis" }
                    th scope="col" { "Weight" } th scope="col" { "Looks" } th scope="col" { "Judge" }
                    th scope="col" { "Rollout gate" } th scope="col" { "Promotion gate" }
                } }
                (table_body(&shown.now))
            }
        }
        @if shown.pages > 1 {
            nav.pages aria-label="Pages" {
                @if shown.page > 1 { a rel="prev" href=(link(shown.page - 1)) { "← Previous" } }
                @if shown.page < shown.pages { a rel="next" href=(link(shown.page + 1)) { "Next →" } }
            }
        }
    };
    layout::page("Canaries now", Some(&session.0), body).into_response()
}

/// The table's body alone, for the refresh.
pub async fn rows(
    State(state): State<AppState>,
    _session: Session,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return layout::error_page(&e.into()),
    };
    match shown(&state, &q).await {
        Ok(shown) => table_body(&shown.now).into_response(),
        Err(e) => layout::error_page(&e),
    }
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
            td { (badge(judge)) " " (reason(c.reason.as_deref().unwrap_or("no look yet"))) }
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
            " " (self::reason(&format!("{}: {reason}", g.actor.as_deref().unwrap_or("someone"))))
        }
    }
}

/// The characters of a reason the list shows: two lines of its column hold fewer, and a
/// browser lays out (shapes) all the text it is given, hidden or not — for 1 000 rows of
/// 400-character reasons that is most of a page's first paint. The analysis page has the
/// whole reason.
const SHOWN_CHARS: usize = 160;

/// A reason as the list shows it: at most [`SHOWN_CHARS`] characters, the whole text in
/// its tooltip when it was cut.
fn reason(text: &str) -> Markup {
    match clip(text, SHOWN_CHARS) {
        Some(shown) => html! { span.reason title=(text) { (shown) "…" } },
        None => html! { span.reason { (text) } },
    }
}

/// The first `max` characters of `text`, or `None` when it is not longer.
fn clip(text: &str, max: usize) -> Option<&str> {
    text.char_indices().nth(max).map(|(cut, _)| &text[..cut])
}

/// A checksum's first characters.
pub fn short(checksum: &str) -> &str {
    checksum.get(..10).unwrap_or(checksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_clipped_on_a_character_and_keep_their_whole_text_in_the_tooltip() {
        assert_eq!(clip("short", 160), None);
        assert_eq!(clip("ééé", 3), None);
        assert_eq!(clip("éééé", 3), Some("ééé"));
        let long = format!("<b>{}", "ü".repeat(300));
        let html = reason(&long).into_string();
        assert_eq!(
            html,
            format!(
                "<span class=\"reason\" title=\"&lt;b&gt;{}\">&lt;b&gt;{}…</span>",
                "ü".repeat(300),
                "ü".repeat(157)
            )
        );
        assert_eq!(
            reason("<i>x</i>").into_string(),
            "<span class=\"reason\">&lt;i&gt;x&lt;/i&gt;</span>"
        );
    }
}
