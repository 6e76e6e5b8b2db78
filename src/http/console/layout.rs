//! The frame of every console page: head with the embedded stylesheet and script, the
//! navigation for the signed-in person's role, and error pages.

use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::assets;
use crate::auth::Principal;
use crate::http::api::error::ApiError;

/// A whole page titled `title` around `body`; `who` is the signed-in person, if any.
pub fn page(title: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · verdict" }
                link rel="stylesheet" href=(assets::CSS_PATH);
                script src=(assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "verdict" }
                    @if let Some(who) = who {
                        nav aria-label="Main" {
                            a href="/ui" { "Canaries" }
                            @if who.role.is_admin() {
                                a href="/ui/audit" { "Audit log" }
                            }
                        }
                        form.signout method="post" action="/ui/sign-out" {
                            span.who { (who.subject) " · " (who.role.as_str()) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// An error as a page with the API's status and message.
pub fn error_page(e: &ApiError) -> Response {
    let body = html! {
        h1 { "Not done" }
        p.notice.bad role="alert" { (e.body.message) }
        p { a href="/ui" { "Back to the canaries" } }
    };
    (e.status, page("Error", None, body)).into_response()
}

/// Any other path under `/ui`.
pub async fn not_found(uri: Uri) -> Response {
    error_page(&ApiError::not_found(format!(
        "the console has no page {}",
        uri.path()
    )))
}

/// A badge for an analysis state or a judge state.
pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge " (text.replace(' ', "-")) } { (text) } }
}
