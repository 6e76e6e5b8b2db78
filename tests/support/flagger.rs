//! Flagger's side of the webhook contract, as the tests play it: the payload Flagger
//! sends (`CanaryWebhookPayload`), `POST /flagger/<hook>`, and Flagger's rule that only
//! 200, 201 and 202 pass. Raw bodies are for what Flagger itself could never send.

use std::collections::BTreeMap;

use serde::Serialize;

/// Flagger's webhook payload.
#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    /// The canary's name.
    pub name: String,
    /// The canary's namespace.
    pub namespace: String,
    /// Flagger's phase of the canary.
    pub phase: String,
    /// The revision checksum.
    pub checksum: String,
    /// The webhook's metadata, verbatim.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// What a hook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReply {
    /// The HTTP status.
    pub status: u16,
    /// The body without its trailing newline.
    pub body: String,
}

impl HookReply {
    /// Flagger's rule: only 200, 201 and 202 pass.
    pub fn passed(&self) -> bool {
        matches!(self.status, 200..=202)
    }
}

/// Calls the hooks of one server.
#[derive(Debug, Clone)]
pub struct FlaggerClient {
    base: String,
    http: reqwest::Client,
}

impl FlaggerClient {
    /// A client of the server at `base`, e.g. `http://127.0.0.1:41234`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Calls a hook with `payload` as Flagger does; panics only when the server cannot
    /// be reached.
    pub async fn call(&self, hook: &str, payload: &Payload) -> HookReply {
        self.try_call(hook, payload)
            .await
            .unwrap_or_else(|e| panic!("calling {hook}: {e}"))
    }

    /// Calls a hook; an error when no answer came (nothing listens, the connection was
    /// cut).
    pub async fn try_call(&self, hook: &str, payload: &Payload) -> reqwest::Result<HookReply> {
        let response = self.request(hook).json(payload).send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok(HookReply {
            status,
            body: body.trim_end().to_owned(),
        })
    }

    /// POSTs raw bytes as JSON to a hook.
    pub async fn post_raw(&self, hook: &str, body: impl Into<reqwest::Body>) -> HookReply {
        let request = self
            .request(hook)
            .header("content-type", "application/json")
            .body(body);
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("posting to {hook}: {e}"));
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        HookReply {
            status,
            body: body.trim_end().to_owned(),
        }
    }

    fn request(&self, hook: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/flagger/{hook}", self.base))
    }
}
