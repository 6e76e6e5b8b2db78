//! HTTP calls to `/api/v1` (docs/api.md). Answers are returned as the API's JSON; the
//! server's `{error, message}` becomes [`ClientError::Api`].

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::args::{Gate, Token};
use crate::domain::CanaryRef;
/// Filters of `GET /api/v1/analyses`: the server's own query type.
pub use crate::http::api::model::AnalysisQuery;

/// Why a client verb failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No `--token` and no `VERDICT_TOKEN`.
    #[error("no token: pass --token or set VERDICT_TOKEN (verdict token mints one for tests)")]
    NoToken,
    /// Nothing answered at `--server`.
    #[error("cannot reach the verdict server at {server}: {why}")]
    Unreachable { server: String, why: String },
    /// The server refused the request; its message and status.
    #[error("{message} ({status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered something that is not the API's JSON.
    #[error("the server at {server} answered {status} with a body that is not the API's JSON")]
    BadResponse { server: String, status: u16 },
    /// The table or JSON could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The command line names no canary (checked before any request).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The process's exit code for this error (docs/api.md, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => super::exit::USAGE,
            Self::NoToken => super::exit::DENIED,
            Self::Api {
                status: 401 | 403, ..
            } => super::exit::DENIED,
            Self::Api { status: 404, .. } => super::exit::NOT_FOUND,
            _ => super::exit::ERROR,
        }
    }
}

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub target: Option<CanaryRef>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A client of one server, as one caller.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    authorization: HeaderValue,
    http: reqwest::Client,
}

/// How long one call may take; the API answers from the store, so this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A backtest reads many analyses or many Prometheus readings (both bounded).
const BACKTEST_TIMEOUT: Duration = Duration::from_secs(600);

impl ApiClient {
    /// A client of `server` (e.g. `http://127.0.0.1:8080`) sending `token`.
    pub fn new(server: &str, token: Option<&Token>) -> Result<Self, ClientError> {
        let token = token.ok_or(ClientError::NoToken)?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            // Token's parser admits printable ASCII only, which is always a valid value.
            .map_err(|_| ClientError::NoToken)?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("verdict-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Unreachable {
                server: server.to_owned(),
                why: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            authorization,
            http,
        })
    }

    /// `GET /api/v1/analyses`.
    pub async fn list_analyses(&self, query: &AnalysisQuery) -> Result<Value, ClientError> {
        let mut params = Vec::new();
        push(&mut params, "namespace", query.namespace.as_deref());
        push(&mut params, "name", query.name.as_deref());
        push(&mut params, "outcome", query.outcome.as_deref());
        push(&mut params, "mode", query.mode.as_deref());
        push(&mut params, "controller", query.controller.as_deref());
        push(&mut params, "origin", query.origin.as_deref());
        push(&mut params, "since", query.since.as_deref());
        push(
            &mut params,
            "limit",
            query.limit.map(|l| l.to_string()).as_deref(),
        );
        push(&mut params, "cursor", query.cursor.as_deref());
        self.call(Method::GET, "/api/v1/analyses", &params, None)
            .await
    }

    /// `GET /api/v1/analyses/{id}`.
    pub async fn analysis(&self, id: i64) -> Result<Value, ClientError> {
        self.call(Method::GET, &format!("/api/v1/analyses/{id}"), &[], None)
            .await
    }

    /// `GET /api/v1/analyses/{id}/backtest?set=k=v,…`.
    pub async fn backtest(&self, id: i64, set: &[(String, String)]) -> Result<Value, ClientError> {
        let params = [("set", settings(set))];
        let path = format!("/api/v1/analyses/{id}/backtest");
        self.call(Method::GET, &path, &params, None).await
    }

    /// `GET /api/v1/canaries/{namespace}/{name}`.
    pub async fn canary(&self, canary: &CanaryRef) -> Result<Value, ClientError> {
        self.call(Method::GET, &canary_path(canary), &[], None)
            .await
    }

    /// `PUT /api/v1/canaries/{namespace}/{name}/gates/{gate}`; `state` is `open` or `held`.
    pub async fn set_gate(
        &self,
        canary: &CanaryRef,
        gate: Gate,
        state: &str,
        reason: &str,
    ) -> Result<Value, ClientError> {
        let path = format!("{}/gates/{}", canary_path(canary), gate.as_str());
        let body = json!({"state": state, "reason": reason});
        self.call(Method::PUT, &path, &[], Some(body)).await
    }

    /// `POST /api/v1/canaries/{namespace}/{name}/rollback`.
    pub async fn rollback(&self, canary: &CanaryRef, reason: &str) -> Result<Value, ClientError> {
        let path = format!("{}/rollback", canary_path(canary));
        self.call(Method::POST, &path, &[], Some(json!({"reason": reason})))
            .await
    }

    /// `GET /api/v1/audit`.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Value, ClientError> {
        let mut params = Vec::new();
        if let Some(target) = &query.target {
            push(&mut params, "namespace", Some(target.namespace.as_str()));
            push(&mut params, "name", Some(target.name.as_str()));
        }
        push(
            &mut params,
            "limit",
            query.limit.map(|l| l.to_string()).as_deref(),
        );
        push(&mut params, "cursor", query.cursor.as_deref());
        self.call(Method::GET, "/api/v1/audit", &params, None).await
    }

    /// `GET /api/v1/backtest`: every analysis started since `since` replayed under one
    /// configuration (`set`) or several (`compare`).
    pub async fn backtest_history(
        &self,
        since: &str,
        namespace: Option<&str>,
        set: &[(String, String)],
        compare: &[Vec<(String, String)>],
    ) -> Result<Value, ClientError> {
        let mut params = vec![("since", since.to_owned())];
        push(&mut params, "namespace", namespace);
        if !set.is_empty() {
            params.push(("set", settings(set)));
        }
        if !compare.is_empty() {
            let groups: Vec<String> = compare.iter().map(|g| settings(g)).collect();
            params.push(("compare", groups.join(";")));
        }
        self.send(
            Method::GET,
            "/api/v1/backtest",
            &params,
            None,
            BACKTEST_TIMEOUT,
        )
        .await
    }

    /// `POST /api/v1/backtest/window`.
    pub async fn backtest_window(&self, body: Value) -> Result<Value, ClientError> {
        self.send(
            Method::POST,
            "/api/v1/backtest/window",
            &[],
            Some(body),
            BACKTEST_TIMEOUT,
        )
        .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&'static str, String)],
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        self.send(method, path, params, body, REQUEST_TIMEOUT).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(&'static str, String)],
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout)
            .header(AUTHORIZATION, self.authorization.clone());
        if !params.is_empty() {
            request = request.query(params);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable(&e, timeout))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| self.unreachable(&e, timeout))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return json.ok_or_else(|| ClientError::BadResponse {
                server: self.base.clone(),
                status: status.as_u16(),
            });
        }
        Err(api_error(status, json.as_ref()))
    }

    fn unreachable(&self, e: &reqwest::Error, timeout: Duration) -> ClientError {
        let why = if e.is_timeout() {
            format!("no answer within {}s", timeout.as_secs())
        } else {
            root_cause(e)
        };
        ClientError::Unreachable {
            server: self.base.clone(),
            why,
        }
    }
}

/// Settings as the API takes them: `k=v,k=v`.
fn settings(set: &[(String, String)]) -> String {
    let pairs: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

fn canary_path(canary: &CanaryRef) -> String {
    // Both parts are DNS-1123 labels: nothing in them needs escaping in a path.
    format!("/api/v1/canaries/{}/{}", canary.namespace, canary.name)
}

fn push(params: &mut Vec<(&'static str, String)>, key: &'static str, value: Option<&str>) {
    if let Some(v) = value {
        params.push((key, v.to_owned()));
    }
}

/// The server's `{error, message}`, or a sentence naming the status when the body is
/// something else (a proxy's error page, say).
fn api_error(status: StatusCode, body: Option<&Value>) -> ClientError {
    let field = |k: &str| body.and_then(|b| b.get(k)).and_then(Value::as_str);
    let message = match field("message") {
        Some(m) if !m.trim().is_empty() => m.to_owned(),
        _ => format!(
            "the server answered {} without an error message",
            status.canonical_reason().unwrap_or("an error")
        ),
    };
    ClientError::Api {
        status: status.as_u16(),
        code: field("error").unwrap_or("").to_owned(),
        message,
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which says more than
/// reqwest's "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_the_servers_message_and_status() {
        let body = json!({"error": "forbidden", "message": "the role viewer may not hold gates"});
        let err = api_error(StatusCode::FORBIDDEN, Some(&body));
        assert_eq!(err.to_string(), "the role viewer may not hold gates (403)");
        let ClientError::Api { code, .. } = err else {
            panic!("not an API error");
        };
        assert_eq!(code, "forbidden");

        let err = api_error(StatusCode::BAD_GATEWAY, None);
        assert_eq!(
            err.to_string(),
            "the server answered Bad Gateway without an error message (502)"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let server = format!("http://127.0.0.1:{port}");
        let token: Token = "a.b.c".parse().expect("token");
        let client = ApiClient::new(&server, Some(&token)).expect("client");
        let err = client.analysis(1).await.expect_err("nothing listens");
        let text = err.to_string();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{text}");
        assert!(text.contains(&server), "{text}");
    }

    #[test]
    fn a_missing_token_is_refused_before_any_request() {
        let err = ApiClient::new("http://127.0.0.1:1", None).expect_err("no token");
        assert!(matches!(err, ClientError::NoToken));
    }
}
