//! The demo's release manager: opens gates through the real API with a JWT, as
//! `verdict gate approve` would, and prints what the API answered.

use anyhow::Context;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};

use crate::domain::{CanaryName, Namespace};

/// A random HS256 secret for one demo run.
pub fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 48)
}

/// A person with a release-manager token.
#[derive(Debug)]
pub struct ReleaseManager {
    base: String,
    who: String,
    token: String,
    http: reqwest::Client,
}

impl ReleaseManager {
    pub fn new(base: &str, who: &str, token: String) -> Self {
        Self {
            base: base.to_owned(),
            who: who.to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Opens a gate (`PUT /api/v1/canaries/{ns}/{name}/gates/{gate}`) and prints the answer.
    pub async fn open(
        &self,
        namespace: &Namespace,
        name: &CanaryName,
        gate: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let path = format!("/api/v1/canaries/{namespace}/{name}/gates/{gate}");
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"state": "open", "reason": reason}))
            .send()
            .await
            .with_context(|| format!("PUT {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let label = format!("{} (API)", self.who);
        println!(
            "   {label:<25} {} {} PUT {path} open: \"{reason}\" → gate {}",
            status.as_u16(),
            if status.is_success() { "✔" } else { "✘" },
            body["state"].as_str().unwrap_or("?")
        );
        anyhow::ensure!(status.is_success(), "the API refused: {body}");
        Ok(())
    }
}
