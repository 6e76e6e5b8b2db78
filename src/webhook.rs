//! Flagger's webhook contract, in one place, as both sides see it: the payload Flagger
//! sends to every hook (its `CanaryWebhookPayload`), the hooks and phases it names, what a
//! hook can answer ([`Outcome`], with the status code Flagger reads for it), the one
//! refusal type, Flagger's rule that only 200, 201 and 202 pass, and a client that calls
//! verdict's hooks as Flagger does (fluxcd/flagger pkg/controller/webhook.go,
//! scheduler.go). The server reads the payload (`http::flagger`), the analysis decides an
//! [`Outcome`]; `verdict demo` and the integration tests play Flagger with the client.
//! What each hook answers is in the README, "How it answers Flagger".

use std::collections::BTreeMap;
use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::domain::{AnalysisId, Mode};

/// Flagger's webhook payload. Flagger always sends the name and namespace; the rest is
/// empty where it has nothing to say (no checksum before a revision exists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The canary's name.
    pub name: String,
    /// The canary's namespace.
    pub namespace: String,
    /// Flagger's phase of the canary (`Progressing`, `Succeeded`, …; see [`Phase`]).
    #[serde(default)]
    pub phase: String,
    /// The revision checksum.
    #[serde(default)]
    pub checksum: String,
    /// The webhook's metadata, verbatim from the Canary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// The webhook types of Flagger that verdict serves, by URL path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// May a new revision start? (the rollout gate)
    ConfirmRollout,
    /// Opens the analysis after a preflight.
    PreRollout,
    /// One look per interval: the statistical verdict.
    Rollout,
    /// May the canary's weight go up?
    ConfirmTrafficIncrease,
    /// May the canary be promoted? (the promotion gate and the evidence)
    ConfirmPromotion,
    /// Should Flagger roll back now?
    Rollback,
    /// The rollout ended; closes the analysis.
    PostRollout,
    /// A Kubernetes event Flagger forwards.
    Event,
    /// Starts the built-in load generator.
    LoadTest,
}

impl Hook {
    /// Every hook, in the order Flagger meets them.
    pub const ALL: [Hook; 9] = [
        Hook::ConfirmRollout,
        Hook::PreRollout,
        Hook::Rollout,
        Hook::ConfirmTrafficIncrease,
        Hook::ConfirmPromotion,
        Hook::Rollback,
        Hook::PostRollout,
        Hook::Event,
        Hook::LoadTest,
    ];

    /// The URL path segment (`/flagger/<hook>`), also recorded with each decision.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::ConfirmRollout => "confirm-rollout",
            Hook::PreRollout => "pre-rollout",
            Hook::Rollout => "rollout",
            Hook::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Hook::ConfirmPromotion => "confirm-promotion",
            Hook::Rollback => "rollback",
            Hook::PostRollout => "post-rollout",
            Hook::Event => "event",
            Hook::LoadTest => "load-test",
        }
    }

    /// Reads a path segment back; `None` for a hook verdict does not serve.
    pub fn parse(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// Hooks that belong to one revision and so need its checksum.
    pub fn needs_checksum(self) -> bool {
        !matches!(self, Hook::ConfirmRollout | Hook::Event | Hook::LoadTest)
    }
}

/// Flagger's phase of a canary (`CanaryPhase` in Flagger's API), as the payload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Flagger promoted the canary.
    Succeeded,
    /// Flagger rolled the canary back.
    Failed,
    /// Any other phase (`Progressing`, `Promoting`, `Initialized`, …, or none), verbatim.
    Other(String),
}

impl Phase {
    /// The payload's phase.
    pub fn parse(s: &str) -> Phase {
        match s {
            "Succeeded" => Phase::Succeeded,
            "Failed" => Phase::Failed,
            other => Phase::Other(other.to_owned()),
        }
    }

    /// As Flagger spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Other(s) => s,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hook answered: the label of decisions, looks and metrics, and with the hook
/// the status code Flagger reads ([`Outcome::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The statistics (or the step's traffic) let the canary go on.
    Pass,
    /// A regression, or an analysis that failed.
    Fail,
    /// Not yet: more evidence, a gate held, no rollback requested.
    Wait,
    /// A hook that judges nothing did its job (opened, closed, accepted).
    Ok,
    /// A dependency failed (424); no verdict was given.
    Error,
    /// The call itself was refused (400, 403, 404, 409); nothing was decided.
    Rejected,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 6] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::Wait,
        Outcome::Ok,
        Outcome::Error,
        Outcome::Rejected,
    ];

    /// The stored and exported spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Wait => "wait",
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
        }
    }

    /// Reads a stored spelling back.
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The status Flagger gets for this outcome of `hook` (README, "How it answers
    /// Flagger"). Flagger passes a gate on 200-202 only, and a failed rollout check
    /// counts towards its rollback; the rollback hook is the other way round: 200 means
    /// "roll back now". Refusals carry their own status ([`Refusal`]).
    pub fn status(self, hook: Hook) -> StatusCode {
        match (hook, self) {
            (Hook::Rollback, Outcome::Fail) => StatusCode::OK,
            (Hook::Rollback, Outcome::Wait) => StatusCode::CONFLICT,
            (Hook::Rollout, Outcome::Fail) => StatusCode::UNPROCESSABLE_ENTITY,
            (Hook::Rollout, _) => StatusCode::OK,
            (Hook::Event | Hook::LoadTest, Outcome::Ok) => StatusCode::ACCEPTED,
            (_, Outcome::Pass | Outcome::Ok) => StatusCode::OK,
            (_, Outcome::Wait | Outcome::Fail) => StatusCode::PRECONDITION_FAILED,
            (_, Outcome::Error) => StatusCode::FAILED_DEPENDENCY,
            (_, Outcome::Rejected) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A hook's answer: the outcome, the status Flagger sees and the one-line reason, with
/// what the answer was recorded with (Flagger reads only the status and the reason; Argo
/// Rollouts' measurement shows the rest, [`crate::argo`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What was decided.
    pub outcome: Outcome,
    /// The status code of `outcome` for the hook called.
    pub status: StatusCode,
    /// One line for people: Flagger puts it into a Kubernetes event.
    pub reason: String,
    /// The analysis it belongs to, if any.
    pub analysis: Option<AnalysisId>,
    /// The number of the look it was drawn from (0 before the first look), when it was
    /// drawn from the looks.
    pub look: Option<i64>,
    /// The evidence recorded with it (JSON), if any.
    pub evidence: Option<String>,
    /// The mode of the analysis it answers for (a shadow answer never blocks).
    pub mode: Mode,
}

impl Answer {
    /// The answer of `hook` with `outcome`, its status from the contract.
    pub fn new(hook: Hook, outcome: Outcome, reason: impl Into<String>) -> Self {
        Self {
            outcome,
            status: outcome.status(hook),
            reason: one_line(reason.into()),
            analysis: None,
            look: None,
            evidence: None,
            mode: Mode::Enforce,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.reason)).into_response()
    }
}

/// A call that could not be answered with a verdict: a 4xx Flagger does not retry
/// (never 429 or 5xx, whose bodies Flagger drops) and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 403, 404, 409 or 424.
    pub status: StatusCode,
    /// Why, in one bounded line.
    pub reason: String,
    /// Whether a decision row records it: dependency failures yes; malformed calls no,
    /// they never reached an analysis; a failed store cannot record anything.
    pub record: bool,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>, record: bool) -> Self {
        Self {
            status,
            reason: one_line(reason.into()),
            record,
        }
    }

    /// 400: the call itself is wrong; nothing is recorded.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, false)
    }

    /// 403: wrong token or namespace not allowed.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, false)
    }

    /// 404: a hook verdict does not serve.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason, false)
    }

    /// 409: the call conflicts with what runs (a load run over its cap, shutting down).
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, reason, false)
    }

    /// 424: a dependency (Prometheus, the settings) failed; the refusal is recorded.
    pub fn dependency(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FAILED_DEPENDENCY, reason, true)
    }

    /// 424 that is not recorded: the store itself failed.
    pub fn store_failed(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FAILED_DEPENDENCY, reason, false)
    }

    /// The outcome it is counted as.
    pub fn outcome(&self) -> Outcome {
        if self.status == StatusCode::FAILED_DEPENDENCY {
            Outcome::Error
        } else {
            Outcome::Rejected
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.reason)).into_response()
    }
}

/// One line, at most about 1000 bytes: Flagger puts the body into a Kubernetes event.
pub(crate) fn one_line(reason: String) -> String {
    let reason = reason.replace(['\n', '\r'], " ");
    if reason.len() <= 1000 {
        return reason;
    }
    let mut cut = 1000;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &reason[..cut])
}

/// What a hook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReply {
    /// The HTTP status.
    pub status: u16,
    /// The one-line reason, without its trailing newline.
    pub body: String,
}

impl HookReply {
    /// Flagger's rule: only 200, 201 and 202 pass.
    pub fn passed(&self) -> bool {
        matches!(self.status, 200..=202)
    }
}

/// Calls `POST {base}/flagger/<hook>` as Flagger does.
#[derive(Debug, Clone)]
pub struct FlaggerClient {
    base: String,
    http: reqwest::Client,
}

impl FlaggerClient {
    /// A client of the server at `base`, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Calls a hook with `payload`; an error when no answer came.
    pub async fn call(&self, hook: &str, payload: &Payload) -> reqwest::Result<HookReply> {
        reply(self.http.post(self.url(hook)).json(payload)).await
    }

    /// POSTs a raw body as JSON to a hook: what Flagger itself never sends, to check
    /// that the server refuses it.
    pub async fn post_raw(
        &self,
        hook: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Result<HookReply> {
        let request = self
            .http
            .post(self.url(hook))
            .header("content-type", "application/json")
            .body(body);
        reply(request).await
    }

    fn url(&self, hook: &str) -> String {
        format!("{}/flagger/{hook}", self.base)
    }
}

async fn reply(request: reqwest::RequestBuilder) -> reqwest::Result<HookReply> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?.trim_end().to_owned();
    Ok(HookReply { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_bounded_line() {
        let e = Refusal::bad_request(format!("a\nb{}", "é".repeat(2000)));
        assert!(!e.reason.contains('\n'));
        assert!(e.reason.len() <= 1004);
    }

    #[test]
    fn outcomes_and_hooks_read_back() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        for h in Hook::ALL {
            assert_eq!(Hook::parse(h.as_str()), Some(h));
        }
        assert_eq!(Outcome::parse("maybe"), None);
        assert_eq!(Phase::parse("Succeeded"), Phase::Succeeded);
        assert_eq!(Phase::parse("Progressing").to_string(), "Progressing");
    }

    #[test]
    fn status_codes_follow_flaggers_reading() {
        use StatusCode as S;
        let table = [
            (Hook::Rollout, Outcome::Pass, S::OK),
            (Hook::Rollout, Outcome::Wait, S::OK),
            (Hook::Rollout, Outcome::Fail, S::UNPROCESSABLE_ENTITY),
            (Hook::ConfirmPromotion, Outcome::Pass, S::OK),
            (
                Hook::ConfirmPromotion,
                Outcome::Wait,
                S::PRECONDITION_FAILED,
            ),
            (
                Hook::ConfirmPromotion,
                Outcome::Fail,
                S::PRECONDITION_FAILED,
            ),
            (
                Hook::ConfirmTrafficIncrease,
                Outcome::Wait,
                S::PRECONDITION_FAILED,
            ),
            (Hook::ConfirmRollout, Outcome::Ok, S::OK),
            (Hook::Rollback, Outcome::Fail, S::OK),
            (Hook::Rollback, Outcome::Wait, S::CONFLICT),
            (Hook::Event, Outcome::Ok, S::ACCEPTED),
            (Hook::LoadTest, Outcome::Ok, S::ACCEPTED),
            (Hook::PostRollout, Outcome::Ok, S::OK),
        ];
        for (hook, outcome, status) in table {
            assert_eq!(outcome.status(hook), status, "{hook:?} {outcome:?}");
        }
        // Only Flagger's passing codes let it go on; every refusal holds it.
        let held = |s: StatusCode| !matches!(s.as_u16(), 200..=202);
        assert!(held(Refusal::dependency("x").status));
        assert!(held(Outcome::Fail.status(Hook::Rollout)));
    }
}
