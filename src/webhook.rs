//! Flagger's webhook contract as both sides see it: the payload Flagger sends to every
//! hook (its `CanaryWebhookPayload`), Flagger's rule that only 200, 201 and 202 pass, and
//! a client that calls verdict's hooks as Flagger does. The server reads the payload
//! (`http::flagger`); `verdict demo` and the integration tests play Flagger with the
//! client. What each hook answers is in the README, "How it answers Flagger".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Flagger's webhook payload. Flagger always sends the name and namespace; the rest is
/// empty where it has nothing to say (no checksum before a revision exists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The canary's name.
    pub name: String,
    /// The canary's namespace.
    pub namespace: String,
    /// Flagger's phase of the canary (`Progressing`, `Succeeded`, …).
    #[serde(default)]
    pub phase: String,
    /// The revision checksum.
    #[serde(default)]
    pub checksum: String,
    /// The webhook's metadata, verbatim from the Canary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
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
