//! Who is signed in to the console: the API's bearer token, pasted once on the sign-in
//! page and kept in a cookie the page's scripts cannot read (`HttpOnly`), that no other
//! site's request carries (`SameSite=Strict`) and that only the console receives
//! (`Path=/ui`). The token is verified on every request exactly as the API verifies it.
//!
//! The seam for single sign-on: when an identity provider's login is added, its
//! callback sets this same cookie and [`form`] redirects to the provider instead of
//! asking for a token; nothing else in the console changes.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::layout;
use crate::auth::Principal;
use crate::http::api::error::ApiError;
use crate::http::AppState;

/// The cookie that carries the token.
const COOKIE_NAME: &str = "verdict_console";

/// The signed-in person of a console page.
#[derive(Debug, Clone)]
pub struct Session(pub Principal);

/// The token in the console's cookie, if the request carries one.
fn token_of(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(verifier) = state.verifier.as_ref() else {
            return Err(layout::error_page(&ApiError::disabled()));
        };
        let Some(token) = token_of(parts) else {
            return Err(Redirect::to("/ui/sign-in").into_response());
        };
        match verifier.verify(token).await {
            Ok(principal) => Ok(Session(principal)),
            // An expired or revoked token: sign in again, and forget the old one.
            Err(e) => Err(sign_in_page(Some(&ApiError::from(e).body.message), true)),
        }
    }
}

impl Session {
    /// Refuses a person whose role may not act (the buttons are not shown to them either).
    pub fn require_act(&self, what: &str) -> Result<(), ApiError> {
        crate::http::api::caller::Caller(self.0.clone()).require_act(what)
    }

    /// Refuses a person who is not an admin.
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        crate::http::api::caller::Caller(self.0.clone()).require_admin(what)
    }
}

/// The sign-in page.
pub async fn form() -> Response {
    sign_in_page(None, false)
}

fn sign_in_page(problem: Option<&str>, forget: bool) -> Response {
    let page = layout::page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Paste an API token (" code { "verdict token --role release-manager --subject you" } " makes one). It is kept in a cookie that scripts cannot read and that only this console receives." }
            @if let Some(problem) = problem {
                p.notice.bad role="alert" { (problem) }
            }
            form.stack method="post" action="/ui/sign-in" {
                label for="token" { "Token" }
                textarea id="token" name="token" rows="4" required autocomplete="off" spellcheck="false" {}
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut response = page.into_response();
    if problem.is_some() {
        *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
    }
    if forget {
        response.headers_mut().insert(SET_COOKIE, cookie(""));
    }
    response
}

/// The sign-in form's body.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

/// Checks the token as the API would and keeps it in the cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let Some(verifier) = state.verifier.as_ref() else {
        return layout::error_page(&ApiError::disabled());
    };
    let token = match &form {
        Ok(Form(f)) => f.token.trim(),
        Err(e) => return sign_in_page(Some(&e.body_text()), false),
    };
    // A JWT is three base64url parts: nothing that could break out of the cookie.
    let cookie_safe = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if token.is_empty() || !cookie_safe {
        return sign_in_page(Some("that is not a token: paste the JWT itself"), false);
    }
    match verifier.verify(token).await {
        Ok(_) => {
            let mut response = Redirect::to(super::BASE).into_response();
            response.headers_mut().insert(SET_COOKIE, cookie(token));
            response
        }
        Err(e) => sign_in_page(Some(&ApiError::from(e).body.message), false),
    }
}

/// Forgets the token.
pub async fn sign_out() -> Response {
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().insert(SET_COOKIE, cookie(""));
    response
}

/// The session cookie holding `token`; an empty token expires it.
fn cookie(token: &str) -> HeaderValue {
    let expiry = if token.is_empty() { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/ui; HttpOnly; SameSite=Strict{expiry}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("verdict_console=; Path=/ui; Max-Age=0"))
}
