//! Argo Rollouts' `web` metric provider contract, in one place, as both sides see it
//! (argoproj/argo-rollouts `metricproviders/webmetric/webmetric.go`,
//! `utils/evaluate/evaluate.go`): the parameters of one measurement
//! ([`MeasureParams`], from the AnalysisTemplate's `{{args.*}}`), the [`Decision`] the
//! template's conditions read through `jsonPath: "{$.decision}"`, the JSON body
//! ([`Measurement`]), the status codes Argo reads ([`status_of`]: 200 for every decision,
//! so that the conditions decide; 503 when no verdict could be given, Argo's Error path),
//! and a client that measures as Argo's web provider does ([`provider`]; the tests').
//!
//! The server reads the parameters (`http::argo`); the analysis service takes the look
//! exactly as for Flagger's `rollout` hook. Operators' view: docs/operations.md,
//! "Argo Rollouts".

pub mod provider;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::domain::{AnalysisKey, CanaryName, Checksum, Mode, Namespace};
use crate::webhook::Outcome;

/// Where Argo's web provider sends its measurements (`GET` or `POST`).
pub const PATH: &str = "/argo/v1/measure";

/// The hook name decisions answered to Argo are recorded (and counted) under.
pub const HOOK: &str = "argo-measure";

/// The template variable that holds the canary's `rollouts-pod-template-hash`
/// (`{{ variables.canary_hash }}` in the `argo-*` SLI templates).
pub const CANARY_HASH_VARIABLE: &str = "canary_hash";

/// The template variable that holds the stable pods' `rollouts-pod-template-hash`.
pub const STABLE_HASH_VARIABLE: &str = "stable_hash";

/// The parameters every measurement must carry, as the AnalysisTemplate names them.
pub const REQUIRED: [&str; 4] = ["namespace", "rollout", "canaryHash", "stableHash"];

/// One measurement's parameters, parsed: the analysis it is a look of, the stable pods it
/// is compared with, and the metadata keys Flagger's hooks also take (template, alpha,
/// margins, `var.*`, …), resolved by `analysis::settings`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureParams {
    /// The analysis: `(namespace, rollout, canaryHash)`.
    pub key: AnalysisKey,
    /// The stable pods' `rollouts-pod-template-hash`.
    pub stable_hash: Checksum,
    /// The remaining parameters, with the hashes added as template variables
    /// (`var.canary_hash`, `var.stable_hash`).
    pub metadata: BTreeMap<String, String>,
}

/// Why a measurement's parameters were refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A required parameter is absent or empty.
    #[error("missing parameter {0}: the AnalysisTemplate passes it from {{{{args.*}}}} (docs/operations.md, \"Argo Rollouts\")")]
    Missing(&'static str),
    /// The same parameter twice (query and body, or twice in the query).
    #[error("parameter {0} given twice")]
    Duplicate(String),
    /// A value that is not a Kubernetes name or a pod-template hash.
    #[error("parameter {key}: {why}")]
    Invalid {
        /// The parameter.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// A parameter verdict fills itself, or one that must not travel in a URL.
    #[error("parameter {key} is not accepted: {why}")]
    Refused {
        /// The parameter.
        key: String,
        /// Why.
        why: &'static str,
    },
    /// A JSON body that is not an object of strings, numbers and booleans.
    #[error("invalid JSON body: {0}")]
    Body(String),
}

impl MeasureParams {
    /// Parses the parameters of the query string and of a JSON body (`POST`) together; a
    /// name given in both is refused.
    pub fn parse(
        query: Vec<(String, String)>,
        body: Option<&[u8]>,
    ) -> Result<MeasureParams, ParamsError> {
        let mut all: BTreeMap<String, String> = BTreeMap::new();
        let body_pairs = match body {
            Some(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => body_params(bytes)?,
            _ => Vec::new(),
        };
        for (key, value) in query.into_iter().chain(body_pairs) {
            if all.contains_key(&key) {
                return Err(ParamsError::Duplicate(key));
            }
            all.insert(key, value);
        }
        let mut take = |key: &'static str| -> Result<String, ParamsError> {
            match all.remove(key).map(|v| v.trim().to_owned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(ParamsError::Missing(key)),
            }
        };
        let invalid = |key: &str, why: String| ParamsError::Invalid {
            key: key.to_owned(),
            why,
        };
        let (namespace, rollout, canary, stable) = (
            take("namespace")?,
            take("rollout")?,
            take("canaryHash")?,
            take("stableHash")?,
        );
        let namespace =
            Namespace::parse(&namespace).map_err(|e| invalid("namespace", e.why.into()))?;
        let name = CanaryName::parse(&rollout).map_err(|e| invalid("rollout", e.why.into()))?;
        let checksum = parse_hash("canaryHash", &canary)?;
        let stable_hash = parse_hash("stableHash", &stable)?;
        if checksum == stable_hash {
            return Err(invalid(
                "canaryHash",
                format!("equals stableHash ({stable}): the rollout has no canary to judge (is the analysis running after promotion?)"),
            ));
        }
        for (key, why) in [
            (
                "token",
                "send the webhook token as `Authorization: Bearer <token>`, never in the URL or body",
            ),
            ("var.canary_hash", "verdict sets it from canaryHash"),
            ("var.stable_hash", "verdict sets it from stableHash"),
        ] {
            if all.contains_key(key) {
                return Err(ParamsError::Refused {
                    key: key.to_owned(),
                    why,
                });
            }
        }
        let mut metadata = all;
        metadata.insert(
            format!("var.{CANARY_HASH_VARIABLE}"),
            checksum.as_str().to_owned(),
        );
        metadata.insert(
            format!("var.{STABLE_HASH_VARIABLE}"),
            stable_hash.as_str().to_owned(),
        );
        Ok(MeasureParams {
            key: AnalysisKey {
                namespace,
                name,
                checksum,
            },
            stable_hash,
            metadata,
        })
    }
}

/// A `rollouts-pod-template-hash`: Argo writes a short lower-case alphanumeric string
/// (`rand.SafeEncodeString` of a hash); 1-63 characters of `[a-z0-9]` are accepted, what
/// a label value of that shape can be.
fn parse_hash(key: &'static str, value: &str) -> Result<Checksum, ParamsError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let invalid = |why: String| ParamsError::Invalid {
        key: key.to_owned(),
        why,
    };
    if !ok {
        return Err(invalid(format!(
            "{:?} is not a rollouts-pod-template-hash (1-63 characters of [a-z0-9]); pass it with valueFrom.podTemplateHashValue",
            value.chars().take(80).collect::<String>()
        )));
    }
    Checksum::parse(value).map_err(|e| invalid(e.why.into()))
}

/// A JSON body's parameters: an object whose values are strings, numbers or booleans
/// (Argo's `jsonBody` may write `alpha: 0.05`).
fn body_params(bytes: &[u8]) -> Result<Vec<(String, String)>, ParamsError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ParamsError::Body(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ParamsError::Body("expected a JSON object".into()));
    };
    map.into_iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(ParamsError::Body(format!(
                        "{key}: expected a string, number or boolean, got {other}"
                    )))
                }
            };
            Ok((key, text))
        })
        .collect()
}

/// What the measurement says; the AnalysisTemplate's conditions read it
/// (`successCondition: result == "pass"`, `failureCondition: result == "fail"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The judge established that the canary is not worse: Successful.
    Pass,
    /// A regression is established (now or at an earlier look): Failed, which aborts the
    /// rollout.
    Fail,
    /// No verdict yet (the first call records the baseline; too little traffic; a shadow
    /// analysis' regression): Inconclusive, counted against `inconclusiveLimit`.
    Continue,
}

impl Decision {
    /// The decision Argo reads for a verdict `outcome` of an analysis in `mode`: a shadow
    /// analysis never answers `fail` (its reason says it would have).
    pub fn of(outcome: Outcome, mode: Mode) -> Decision {
        match (outcome, mode) {
            (Outcome::Pass, _) => Decision::Pass,
            (Outcome::Fail, Mode::Enforce) => Decision::Fail,
            _ => Decision::Continue,
        }
    }

    /// As the body spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Fail => "fail",
            Decision::Continue => "continue",
        }
    }
}

/// The body of a 200 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What Argo's conditions read (`jsonPath: "{$.decision}"`).
    pub decision: Decision,
    /// One line for people (Argo shows the measurement's value, verdict keeps the reason).
    pub reason: String,
    /// The analysis' id in verdict's API and console.
    pub analysis: Option<i64>,
    /// The look the answer was drawn from (0 before the first look); `null` when it was
    /// not drawn from a look (an analysis that had already failed).
    pub look: Option<i64>,
    /// The evidence recorded with the answer (the look's, or the judge's over the stored
    /// looks); `null` when there is none.
    pub evidence: Option<serde_json::Value>,
}

/// The body of every other answer: Argo counts it as an Error measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure (the status' meaning): `bad_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `conflict` or `unavailable`.
    pub error: String,
    /// Why, in one line.
    pub reason: String,
}

/// The status Argo gets for an answer with `outcome`: 200 for every verdict (Argo's
/// conditions decide, never its Error path); 503 when no verdict could be given
/// (Prometheus or the store failed: an Error measurement, retried at the next interval
/// until `consecutiveErrorLimit`); 400 for a refused call.
pub fn status_of(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Pass | Outcome::Fail | Outcome::Wait | Outcome::Ok => StatusCode::OK,
        Outcome::Error => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::Rejected => StatusCode::BAD_REQUEST,
    }
}

/// The status Argo gets for a refusal the analysis service gave with `status` (Flagger's
/// statuses): a failed dependency is 503, the rest keep theirs (400, 403, 404, 409).
pub fn refusal_status(status: StatusCode) -> StatusCode {
    if status == StatusCode::FAILED_DEPENDENCY {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    }
}

/// The `error` word of a failure body for `status`.
pub fn failure_kind(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const GOOD: [(&str, &str); 4] = [
        ("namespace", "test"),
        ("rollout", "podinfo"),
        ("canaryHash", "6b8f9c7d4"),
        ("stableHash", "5c9d7f8b6"),
    ];

    #[test]
    fn the_parameters_make_the_key_and_the_hashes_become_template_variables() {
        let mut pairs = query(&GOOD);
        pairs.push(("alpha".into(), "0.01".into()));
        let p = MeasureParams::parse(pairs, None).expect("parses");
        assert_eq!(p.key.to_string(), "test/podinfo@6b8f9c7d4");
        assert_eq!(p.stable_hash.as_str(), "5c9d7f8b6");
        assert_eq!(p.metadata["alpha"], "0.01");
        assert_eq!(p.metadata["var.canary_hash"], "6b8f9c7d4");
        assert_eq!(p.metadata["var.stable_hash"], "5c9d7f8b6");
        assert!(!p.metadata.contains_key("namespace"));
    }

    #[test]
    fn a_json_body_adds_parameters_and_numbers_read_as_text() {
        let body = br#"{"alpha": 0.01, "template": "argo-istio"}"#;
        let p = MeasureParams::parse(query(&GOOD), Some(body)).expect("parses");
        assert_eq!(p.metadata["alpha"], "0.01");
        assert_eq!(p.metadata["template"], "argo-istio");
        let all_in_body = serde_json::to_vec(&serde_json::json!({
            "namespace": "test", "rollout": "podinfo", "canaryHash": "abc", "stableHash": "def"
        }))
        .expect("json");
        assert!(MeasureParams::parse(Vec::new(), Some(&all_in_body)).is_ok());
    }

    #[test]
    fn bad_parameters_are_refused_with_their_name() {
        let without = |key: &str| {
            let pairs: Vec<_> = GOOD.iter().filter(|(k, _)| *k != key).copied().collect();
            MeasureParams::parse(query(&pairs), None).unwrap_err()
        };
        for key in REQUIRED {
            let e = without(key);
            assert!(e.to_string().contains(key), "{e}");
        }
        let with = |extra: (&str, &str)| {
            let mut pairs = query(&GOOD);
            pairs.retain(|(k, _)| k != extra.0);
            pairs.push((extra.0.into(), extra.1.into()));
            MeasureParams::parse(pairs, None).unwrap_err().to_string()
        };
        assert!(with(("canaryHash", "Not_A_Hash")).contains("canaryHash"));
        assert!(with(("stableHash", "6b8f9c7d4")).contains("equals stableHash"));
        assert!(with(("rollout", "Podinfo")).contains("rollout"));
        assert!(with(("namespace", "")).contains("missing parameter namespace"));
        assert!(with(("token", "s3cret")).contains("Authorization: Bearer"));
        assert!(with(("var.canary_hash", "x")).contains("canaryHash"));
        let mut twice = query(&GOOD);
        twice.push(("alpha".into(), "0.1".into()));
        let e = MeasureParams::parse(twice, Some(br#"{"alpha": 0.2}"#)).unwrap_err();
        assert_eq!(e, ParamsError::Duplicate("alpha".into()));
        for body in [&b"[1]"[..], b"{\"alpha\": [1]}", b"not json"] {
            let e = MeasureParams::parse(query(&GOOD), Some(body)).unwrap_err();
            assert!(matches!(e, ParamsError::Body(_)), "{e}");
        }
    }

    #[test]
    fn every_verdict_is_a_200_and_only_an_enforced_regression_is_fail() {
        for outcome in [Outcome::Pass, Outcome::Fail, Outcome::Wait, Outcome::Ok] {
            assert_eq!(status_of(outcome), StatusCode::OK);
        }
        assert_eq!(status_of(Outcome::Error), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            refusal_status(StatusCode::FAILED_DEPENDENCY),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            refusal_status(StatusCode::BAD_REQUEST),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(Decision::of(Outcome::Fail, Mode::Enforce), Decision::Fail);
        assert_eq!(
            Decision::of(Outcome::Fail, Mode::Shadow),
            Decision::Continue
        );
        assert_eq!(Decision::of(Outcome::Pass, Mode::Shadow), Decision::Pass);
        assert_eq!(
            Decision::of(Outcome::Wait, Mode::Enforce),
            Decision::Continue
        );
        assert_eq!(Decision::of(Outcome::Ok, Mode::Enforce), Decision::Continue);
    }
}
