//! A client that measures as Argo Rollouts' `web` metric provider does
//! (argoproj/argo-rollouts v1.9 `metricproviders/webmetric/webmetric.go` and
//! `utils/evaluate/evaluate.go`), read from an AnalysisTemplate's metric: the URL and
//! headers with `{{args.*}}` filled in, one request per measurement bounded by
//! `timeoutSeconds` (10 s by default, no retry), any status but 2xx an Error, the body's
//! value picked by `jsonPath`, then the failure condition checked first, the success
//! condition second, and neither true Inconclusive. The tests play Argo with it.
//!
//! Only what verdict's templates use is implemented: `jsonPath` of the form
//! `{$.field.path}` (or `{.field.path}`), and conditions comparing `result` with a quoted
//! string (`result == "pass"`, `result != "fail"`). Anything else is refused when the
//! metric is read, so the client never evaluates a template differently from Argo.

use std::collections::BTreeMap;
use std::time::Duration;

/// Argo's default `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A measurement's phase, as Argo records it (`AnalysisPhase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The success condition held (and the failure condition did not).
    Successful,
    /// The failure condition held.
    Failed,
    /// Both conditions set and neither held.
    Inconclusive,
    /// No value: the request failed, timed out, answered other than 2xx, or the value
    /// could not be picked or evaluated.
    Error,
}

/// One measurement: its phase, the value Argo stores, and what was received.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// How Argo counts it.
    pub phase: Phase,
    /// The picked value, JSON-encoded as Argo stores it (`"\"pass\""`); empty on Error.
    pub value: String,
    /// Argo's message for an Error.
    pub message: String,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The body as received (empty when no answer came).
    pub body: String,
}

/// Why a metric cannot be measured by this client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// The metric lacks something or uses what this client does not implement.
    #[error("web metric: {0}")]
    Unsupported(String),
    /// An `{{args.x}}` with no value.
    #[error("web metric: no value for {{{{args.{0}}}}}")]
    MissingArg(String),
}

/// A condition over `result`, as written in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    equal: bool,
    literal: String,
}

impl Condition {
    fn parse(text: &str) -> Result<Condition, MetricError> {
        let unsupported = || {
            MetricError::Unsupported(format!(
                "condition {text:?}: only `result == \"…\"` and `result != \"…\"` are implemented"
            ))
        };
        let rest = text.trim().strip_prefix("result").ok_or_else(unsupported)?;
        let (equal, rest) = if let Some(r) = rest.trim_start().strip_prefix("==") {
            (true, r.trim())
        } else if let Some(r) = rest.trim_start().strip_prefix("!=") {
            (false, r.trim())
        } else {
            return Err(unsupported());
        };
        let literal = ['"', '\'']
            .into_iter()
            .find_map(|q| rest.strip_prefix(q).and_then(|r| r.strip_suffix(q)))
            .filter(|l| !l.contains(['"', '\'', '\\']))
            .ok_or_else(unsupported)?;
        Ok(Condition {
            equal,
            literal: literal.to_owned(),
        })
    }

    /// expr compares a string with a string; any other type is never equal to one.
    fn holds(&self, result: &serde_json::Value) -> bool {
        let same = result.as_str() == Some(self.literal.as_str());
        same == self.equal
    }
}

/// One `web` metric of an AnalysisTemplate, its arguments filled in.
#[derive(Debug, Clone)]
pub struct WebMetric {
    url: String,
    method: reqwest::Method,
    headers: Vec<(String, String)>,
    json_path: Vec<String>,
    timeout: Duration,
    success: Option<Condition>,
    failure: Option<Condition>,
    http: reqwest::Client,
}

impl WebMetric {
    /// The metric named `name` of an AnalysisTemplate (`spec.metrics[]`), with `args`
    /// substituted for `{{args.<name>}}` in its URL and headers, as Argo resolves them
    /// when it starts the AnalysisRun: the Rollout's arguments (`args`; the caller
    /// resolves `valueFrom`) over the template's own `value`s.
    pub fn from_template(
        template: &serde_yaml_ng::Value,
        name: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<WebMetric, MetricError> {
        let mut defaults: BTreeMap<String, String> = template["spec"]["args"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    a["name"].as_str()?.to_owned(),
                    a["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
        defaults.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
        let args = &defaults;
        let unsupported = |why: String| MetricError::Unsupported(why);
        let metric = template["spec"]["metrics"]
            .as_sequence()
            .and_then(|metrics| metrics.iter().find(|m| m["name"].as_str() == Some(name)))
            .ok_or_else(|| unsupported(format!("no metric {name:?} in spec.metrics")))?;
        let web = &metric["provider"]["web"];
        let text = |v: &serde_yaml_ng::Value| v.as_str().map(str::to_owned);
        let url = text(&web["url"]).ok_or_else(|| unsupported("provider.web.url".into()))?;
        let method = match web["method"].as_str().unwrap_or("GET") {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            other => return Err(unsupported(format!("method {other}"))),
        };
        if !web["body"].is_null() || !web["jsonBody"].is_null() {
            return Err(unsupported(
                "a request body (only query arguments are implemented)".into(),
            ));
        }
        let headers = web["headers"]
            .as_sequence()
            .map(|hs| {
                hs.iter()
                    .map(|h| match (text(&h["key"]), text(&h["value"])) {
                        (Some(k), Some(v)) => Ok((k, substitute(&v, args)?)),
                        _ => Err(unsupported("a header without key or value".into())),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let timeout = match web["timeoutSeconds"].as_u64() {
            Some(s) if s > 0 => Duration::from_secs(s),
            _ => DEFAULT_TIMEOUT,
        };
        let json_path = parse_json_path(web["jsonPath"].as_str().unwrap_or("{$}"))?;
        let condition = |key: &str| {
            metric[key]
                .as_str()
                .filter(|c| !c.trim().is_empty())
                .map(Condition::parse)
                .transpose()
        };
        Ok(WebMetric {
            url: substitute(&url, args)?,
            method,
            headers,
            json_path,
            timeout,
            success: condition("successCondition")?,
            failure: condition("failureCondition")?,
            http: reqwest::Client::new(),
        })
    }

    /// The URL with the arguments filled in.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same metric with the URL's base (scheme, host, port) replaced: the example
    /// template names the in-cluster Service, the tests the server on port 0.
    pub fn with_base(mut self, base: &str) -> WebMetric {
        if let Some(rest) = self.url.split_once("://").map(|(_, r)| r) {
            let path = rest.find('/').map_or("", |i| &rest[i..]);
            self.url = format!("{}{path}", base.trim_end_matches('/'));
        }
        self
    }

    /// The same metric with one header's value replaced (e.g. a wrong token).
    pub fn with_header(mut self, key: &str, value: &str) -> WebMetric {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.headers.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The same metric without a header (e.g. no token).
    pub fn without_header(mut self, key: &str) -> WebMetric {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self
    }

    /// The same metric with one query parameter replaced, added (`Some`) or removed
    /// (`None`): what a mistyped template would send.
    pub fn with_query(mut self, key: &str, value: Option<&str>) -> WebMetric {
        let (base, query) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let mut pairs: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
            .map(str::to_owned)
            .collect();
        if let Some(v) = value {
            pairs.push(format!("{key}={v}"));
        }
        self.url = format!("{base}?{}", pairs.join("&"));
        self
    }

    /// Takes one measurement.
    pub async fn measure(&self) -> Measured {
        let mut request = self
            .http
            .request(self.method.clone(), &self.url)
            .timeout(self.timeout);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let error = |message: String, status: Option<u16>, body: String| Measured {
            phase: Phase::Error,
            value: String::new(),
            message,
            status,
            body,
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return error(e.to_string(), None, String::new()),
        };
        let status = response.status().as_u16();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => {
                return error(
                    format!("Received no bytes in response: {e}"),
                    Some(status),
                    String::new(),
                )
            }
        };
        if !(200..300).contains(&status) {
            return error(
                format!("received non 2xx response code: {status}"),
                Some(status),
                body,
            );
        }
        // A body that is not JSON is evaluated as a string (webmetric.go).
        let data: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| serde_json::Value::String(body.clone()));
        let picked = self
            .json_path
            .iter()
            .try_fold(&data, |v, field| v.get(field));
        let Some(result) = picked else {
            return error(
                format!(
                    "Could not find JSONPath in body: {}",
                    self.json_path.join(".")
                ),
                Some(status),
                body,
            );
        };
        Measured {
            phase: self.evaluate(result),
            value: result.to_string(),
            message: String::new(),
            status: Some(status),
            body,
        }
    }

    /// evaluate.go's `EvaluateResult`: the failure condition first; with one condition
    /// missing, it is the other's negation; with none, Successful.
    fn evaluate(&self, result: &serde_json::Value) -> Phase {
        let success = self.success.as_ref().map(|c| c.holds(result));
        let failure = self.failure.as_ref().map(|c| c.holds(result));
        let (success, failure) = match (success, failure) {
            (None, None) => return Phase::Successful,
            (Some(s), None) => (s, !s),
            (None, Some(f)) => (!f, f),
            (Some(s), Some(f)) => (s, f),
        };
        if failure {
            Phase::Failed
        } else if success {
            Phase::Successful
        } else {
            Phase::Inconclusive
        }
    }
}

/// Fills `{{args.<name>}}` (spaces inside the braces trimmed, as Argo's
/// `utils/template` does).
fn substitute(text: &str, args: &BTreeMap<String, String>) -> Result<String, MetricError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find("}}")
            .ok_or_else(|| MetricError::Unsupported(format!("unclosed {{{{ in {text:?}")))?;
        let tag = rest[open + 2..open + close].trim();
        let name = tag.strip_prefix("args.").ok_or_else(|| {
            MetricError::Unsupported(format!(
                "{{{{{tag}}}}}: only {{{{args.<name>}}}} is implemented"
            ))
        })?;
        let value = args
            .get(name)
            .ok_or_else(|| MetricError::MissingArg(name.to_owned()))?;
        out.push_str(value);
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `{$.a.b}` or `{.a.b}` → `["a", "b"]`; `{$}` → `[]`.
fn parse_json_path(text: &str) -> Result<Vec<String>, MetricError> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| MetricError::Unsupported(format!("jsonPath {text:?}")))?;
    let path = inner.strip_prefix('$').unwrap_or(inner);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<String> = path
        .strip_prefix('.')
        .unwrap_or("")
        .split('.')
        .map(str::to_owned)
        .collect();
    let plain = |f: &String| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if fields.iter().all(plain) {
        Ok(fields)
    } else {
        Err(MetricError::Unsupported(format!(
            "jsonPath {text:?}: only {{$.field.path}} is implemented"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(success: Option<&str>, failure: Option<&str>) -> WebMetric {
        WebMetric {
            url: String::new(),
            method: reqwest::Method::GET,
            headers: Vec::new(),
            json_path: vec!["decision".into()],
            timeout: DEFAULT_TIMEOUT,
            success: success.map(|c| Condition::parse(c).expect("condition")),
            failure: failure.map(|c| Condition::parse(c).expect("condition")),
            http: reqwest::Client::new(),
        }
    }

    #[test]
    fn failure_is_checked_first_and_neither_is_inconclusive() {
        let m = metric(Some(r#"result == "pass""#), Some("result == 'fail'"));
        let v = |s: &str| serde_json::Value::String(s.into());
        assert_eq!(m.evaluate(&v("pass")), Phase::Successful);
        assert_eq!(m.evaluate(&v("fail")), Phase::Failed);
        assert_eq!(m.evaluate(&v("continue")), Phase::Inconclusive);
        assert_eq!(m.evaluate(&serde_json::json!(1)), Phase::Inconclusive);
        // Both true: Failed (checked first).
        let both = metric(Some(r#"result != "x""#), Some(r#"result != "y""#));
        assert_eq!(both.evaluate(&v("z")), Phase::Failed);
        // One condition: the other is its negation.
        let only_success = metric(Some(r#"result == "pass""#), None);
        assert_eq!(only_success.evaluate(&v("continue")), Phase::Failed);
        let only_failure = metric(None, Some(r#"result == "fail""#));
        assert_eq!(only_failure.evaluate(&v("continue")), Phase::Successful);
        assert_eq!(metric(None, None).evaluate(&v("fail")), Phase::Successful);
    }

    #[test]
    fn what_is_not_implemented_is_refused() {
        assert!(Condition::parse("result > 0.5").is_err());
        assert!(Condition::parse("len(result) == 1").is_err());
        assert!(parse_json_path("{$.items[0]}").is_err());
        assert_eq!(parse_json_path("{$.decision}").expect("path"), ["decision"]);
        assert_eq!(parse_json_path("{.a.b}").expect("path"), ["a", "b"]);
        assert!(parse_json_path("{$}").expect("root").is_empty());
        let args = BTreeMap::from([("ns".to_owned(), "test".to_owned())]);
        assert_eq!(
            substitute("a={{args.ns}}", &args).expect("filled"),
            "a=test"
        );
        assert_eq!(
            substitute("{{args.other}}", &args),
            Err(MetricError::MissingArg("other".into()))
        );
        assert_eq!(substitute("{{ args.ns }}", &args).expect("trimmed"), "test");
        assert!(substitute("{{ workflow.name }}", &args).is_err());
    }
}
