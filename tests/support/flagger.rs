//! Flagger's side of the webhook contract, as the tests play it: verdict's own
//! [`verdict::webhook`] client, for which a server that cannot be reached is a failed
//! test, plus raw bodies for what Flagger itself could never send.

pub use verdict::webhook::{HookReply, Payload};

/// Calls the hooks of one server.
#[derive(Debug, Clone)]
pub struct Flagger(verdict::webhook::FlaggerClient);

impl Flagger {
    /// A client of the server at `base`, e.g. `http://127.0.0.1:41234`.
    pub fn new(base: impl Into<String>) -> Self {
        Self(verdict::webhook::FlaggerClient::new(base))
    }

    /// Calls a hook with `payload` as Flagger does; panics when the server cannot be
    /// reached.
    pub async fn call(&self, hook: &str, payload: &Payload) -> HookReply {
        self.try_call(hook, payload)
            .await
            .unwrap_or_else(|e| panic!("calling {hook}: {e}"))
    }

    /// Calls a hook; an error when no answer came (nothing listens, the connection was
    /// cut).
    pub async fn try_call(&self, hook: &str, payload: &Payload) -> reqwest::Result<HookReply> {
        self.0.call(hook, payload).await
    }

    /// POSTs raw bytes as JSON to a hook; panics when the server cannot be reached.
    pub async fn post_raw(&self, hook: &str, body: impl Into<reqwest::Body>) -> HookReply {
        self.0
            .post_raw(hook, body)
            .await
            .unwrap_or_else(|e| panic!("posting to {hook}: {e}"))
    }
}
