//! `POST /flagger/<hook>`: parse and check the call, hand it to the analysis service,
//! answer with a status Flagger understands and a one-line reason (the contract is
//! [`crate::webhook`]).

use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::analysis::HookCall;
use crate::domain::{AnalysisKey, CanaryName, Checksum, Namespace};
use crate::webhook::{Answer, Hook, Outcome, Payload, Phase, Refusal};

/// Flagger's payloads are tiny; anything larger is not Flagger.
pub const MAX_BODY: usize = 64 * 1024;

/// Handles one hook call and counts it.
pub async fn hook(
    State(state): State<AppState>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some(kind) = Hook::parse(&hook) else {
        let known: Vec<&str> = Hook::ALL.iter().map(|h| h.as_str()).collect();
        state
            .metrics
            .hook_call("unknown", Outcome::Rejected.as_str(), started.elapsed());
        return Refusal::not_found(format!(
            "unknown hook {hook:?}; verdict serves {}",
            known.join(", ")
        ))
        .into_response();
    };
    let result = handle(&state, kind, &headers, body).await;
    let (outcome, response) = match result {
        Ok(answer) => (answer.outcome, answer.into_response()),
        Err(e) => {
            tracing::info!(hook = kind.as_str(), status = e.status.as_u16(), reason = %e.reason, "hook refused");
            (e.outcome(), e.into_response())
        }
    };
    state
        .metrics
        .hook_call(kind.as_str(), outcome.as_str(), started.elapsed());
    response
}

async fn handle(
    state: &AppState,
    kind: Hook,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, Refusal> {
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Refusal::bad_request(format!("request body over {} KiB", MAX_BODY / 1024)))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::bad_request(format!("invalid Flagger payload: {e}")))?;
    // serde maps a JSON array onto a struct's fields in order; Flagger sends an object.
    if !value.is_object() {
        return Err(Refusal::bad_request(
            "invalid Flagger payload: expected a JSON object",
        ));
    }
    let payload: Payload = serde_json::from_value(value)
        .map_err(|e| Refusal::bad_request(format!("invalid Flagger payload: {e}")))?;
    let call = check(state, kind, headers, payload)?;
    if kind == Hook::LoadTest {
        return start_load(state, call).await;
    }
    tracing::debug!(hook = kind.as_str(), canary = %call.key, "hook call");
    state.analyst.handle(&call).await
}

/// Validates names, the token and the namespace allow-list.
fn check(
    state: &AppState,
    kind: Hook,
    headers: &HeaderMap,
    mut payload: Payload,
) -> Result<HookCall, Refusal> {
    let namespace =
        Namespace::parse(&payload.namespace).map_err(|e| Refusal::bad_request(e.to_string()))?;
    let name = CanaryName::parse(&payload.name).map_err(|e| Refusal::bad_request(e.to_string()))?;
    let checksum = if payload.checksum.is_empty() && !kind.needs_checksum() {
        Checksum::parse(Checksum::NONE).map_err(|e| Refusal::bad_request(e.to_string()))?
    } else if payload.checksum.is_empty() {
        return Err(Refusal::bad_request(format!(
            "missing checksum: Flagger sends one from pre-rollout on ({} hook)",
            kind.as_str()
        )));
    } else {
        Checksum::parse(&payload.checksum).map_err(|e| Refusal::bad_request(e.to_string()))?
    };
    if payload.phase.len() > 64 {
        return Err(Refusal::bad_request("phase is longer than 64 characters"));
    }

    if let Some(expected) = &state.webhook_token {
        let offered = payload
            .metadata
            .get("token")
            .cloned()
            .or_else(|| basic_password(headers));
        let ok = offered
            .map(|o| bool::from(o.as_bytes().ct_eq(expected.expose_secret().as_bytes())))
            .unwrap_or(false);
        if !ok {
            return Err(Refusal::forbidden(
                "wrong or missing webhook token (metadata.token or basic auth in the webhook URL)",
            ));
        }
    }
    // The token is a secret: it is never stored or logged.
    payload.metadata.remove("token");

    if let Some(allow) = &state.namespace_allow {
        if !allow.is_match(namespace.as_str()) {
            return Err(Refusal::forbidden(format!(
                "namespace {namespace} is not allowed by this verdict's namespace_allow"
            )));
        }
    }

    Ok(HookCall {
        hook: kind,
        key: AnalysisKey {
            namespace,
            name,
            checksum,
        },
        phase: Phase::parse(&payload.phase),
        metadata: payload.metadata.into_iter().collect(),
        request_id: request_id(headers),
        mode: crate::domain::Mode::default(),
        controller: crate::domain::Controller::Flagger,
    })
}

/// The password of an `Authorization: Basic` header (Flagger sends the URL's userinfo so).
fn basic_password(headers: &HeaderMap) -> Option<String> {
    use headers::authorization::{Authorization, Basic};
    use headers::HeaderMapExt;
    let basic = headers.typed_get::<Authorization<Basic>>()?;
    Some(basic.password().to_owned())
}

pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(64)
        .collect()
}

/// `load-test`: starts (or keeps) the canary's load run and answers 202 at once. The
/// metadata is a hey-style `cmd` (parsed, never executed) or explicit keys.
async fn start_load(state: &AppState, call: HookCall) -> Result<Answer, Refusal> {
    use crate::loadgen::{LoadError, LoadSpec, StartOutcome};
    let spec = LoadSpec::from_metadata(&call.metadata)
        .map_err(|e| Refusal::bad_request(format!("load test: {e}")))?;
    let canary = (call.key.namespace.clone(), call.key.name.clone());
    let outcome = state.loads.start(canary, spec).await.map_err(|e| match e {
        LoadError::Invalid(_) => Refusal::bad_request(format!("load test: {e}")),
        LoadError::OverCap(_) | LoadError::ShuttingDown => {
            Refusal::conflict(format!("load test: {e}"))
        }
        LoadError::Record(_) => Refusal::dependency(format!("load test: {e}")),
    })?;
    let reason = match outcome {
        StartOutcome::Started { run_id } => format!("load run {run_id} started"),
        StartOutcome::AlreadyRunning { run_id } => {
            format!("load run {run_id} is already running this spec")
        }
        StartOutcome::Replaced { run_id, stopped } => {
            format!("load run {run_id} started; run {stopped} (previous spec) stopped")
        }
    };
    Ok(Answer::new(Hook::LoadTest, Outcome::Ok, reason))
}
