//! The demo's Flagger: it plays Flagger's side of the webhook contract (README, "How it
//! answers Flagger"): the same paths, the same payload, and only 200/201/202 count as
//! success. The integration tests have their own (tests/support/flagger.rs).

use std::collections::BTreeMap;

use serde::Serialize;

/// Flagger's webhook payload (`CanaryWebhookPayload`).
#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub checksum: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// What a hook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReply {
    pub status: u16,
    pub body: String,
}

impl HookReply {
    /// Flagger's rule: only 200, 201 and 202 pass.
    pub fn passed(&self) -> bool {
        matches!(self.status, 200..=202)
    }
}

/// Calls `POST {base}/flagger/<hook>` like Flagger does.
#[derive(Debug, Clone)]
pub struct FlaggerClient {
    base: String,
    http: reqwest::Client,
}

impl FlaggerClient {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, hook: &str, payload: &Payload) -> anyhow::Result<HookReply> {
        let response = self
            .http
            .post(format!("{}/flagger/{hook}", self.base))
            .json(payload)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?.trim_end().to_owned();
        Ok(HookReply { status, body })
    }
}
