//! `GET|POST /argo/v1/measure`: one measurement of Argo Rollouts' `web` metric provider.
//! Parse and check the call, hand it to the analysis service as the rollout hook of the
//! analysis `(namespace, rollout, canaryHash)`, answer in JSON (the contract is
//! [`crate::argo`]).

use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::flagger::{request_id, MAX_BODY};
use super::AppState;
use crate::analysis::HookCall;
use crate::argo::{self, Decision, Failure, MeasureParams, Measurement};
use crate::domain::{Controller, Mode};
use crate::webhook::{one_line, Answer, Hook, Outcome, Phase};

/// Handles one measurement and counts it (as hook `argo-measure`).
pub async fn measure(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = match handle(&state, &method, &uri, &headers, body).await {
        Ok(answer) => (answer.outcome, answered(answer)),
        Err(refused) => {
            tracing::info!(status = refused.status.as_u16(), reason = %refused.reason, "Argo measurement refused");
            (refused.outcome(), refused.into_response())
        }
    };
    state
        .metrics
        .hook_call(argo::HOOK, outcome.as_str(), started.elapsed());
    response
}

/// A call that got no verdict: the status Argo reads as an Error, and why.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    reason: String,
}

impl Refused {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: one_line(reason.into()),
        }
    }

    fn outcome(&self) -> Outcome {
        if self.status.is_server_error() {
            Outcome::Error
        } else {
            Outcome::Rejected
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = Failure {
            error: argo::failure_kind(self.status).to_owned(),
            reason: self.reason,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

async fn handle(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, Refused> {
    let bad = |reason: String| Refused::new(StatusCode::BAD_REQUEST, reason);
    check_token(state, headers)?;
    let Query(query) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| bad(format!("invalid query string: {e}")))?;
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| bad(format!("request body over {} KiB", MAX_BODY / 1024)))?;
    let body = (method == Method::POST).then_some(&bytes[..]);
    if method != Method::POST && !bytes.is_empty() {
        return Err(bad(
            "a GET measurement carries its parameters in the query string; send a body with POST"
                .into(),
        ));
    }
    let params = MeasureParams::parse(query, body).map_err(|e| bad(e.to_string()))?;
    if let Some(allow) = &state.namespace_allow {
        if !allow.is_match(params.key.namespace.as_str()) {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                format!(
                    "namespace {} is not allowed by this verdict's namespace_allow",
                    params.key.namespace
                ),
            ));
        }
    }
    let call = HookCall {
        hook: Hook::Rollout,
        key: params.key,
        phase: Phase::Other(String::new()),
        metadata: params.metadata.into_iter().collect(),
        request_id: request_id(headers),
        mode: Mode::default(),
        controller: Controller::Argo,
    };
    tracing::debug!(canary = %call.key, "Argo measurement");
    state
        .analyst
        .handle(&call)
        .await
        .map_err(|r| Refused::new(argo::refusal_status(r.status), r.reason))
}

/// `Authorization: Bearer <webhook token>`, compared in constant time, when the server
/// has a webhook token: 401 without one, 403 for a wrong one.
fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    use headers::authorization::{Authorization, Bearer};
    use headers::HeaderMapExt;
    let Some(expected) = &state.webhook_token else {
        return Ok(());
    };
    let Some(offered) = headers.typed_get::<Authorization<Bearer>>() else {
        return Err(Refused::new(
            StatusCode::UNAUTHORIZED,
            "missing webhook token: add the header `Authorization: Bearer <token>` to the AnalysisTemplate's web provider",
        ));
    };
    let ok: bool = offered
        .token()
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if ok {
        Ok(())
    } else {
        Err(Refused::new(StatusCode::FORBIDDEN, "wrong webhook token"))
    }
}

/// The 200 JSON of a verdict.
fn answered(answer: Answer) -> Response {
    let evidence = answer
        .evidence
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let body = Measurement {
        decision: Decision::of(answer.outcome, answer.mode),
        reason: answer.reason,
        analysis: answer.analysis.map(|id| id.get()),
        look: answer.look,
        evidence,
    };
    (answer.status, Json(body)).into_response()
}
