//! The identity provider's JSON Web Key Set (`jwt.jwks_url`): public keys by `kid`,
//! fetched when the first token arrives, fetched again in the background once older than
//! `jwt.jwks_refresh`, and at once for a `kid` it does not hold — at most once per
//! `jwt.jwks_min_refresh`, so made-up key ids cannot flood the identity provider.
//!
//! Only keys that can verify the configured algorithm are kept (RSA of 2048 bits or more
//! for RS256, P-256 for ES256; never a symmetric `oct` key, whose secret the set would
//! publish). A failed fetch keeps the keys already held and admits nothing new: a token
//! whose key is not held is refused, whatever the reason.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::DecodingKey;

use super::settings::JwtAlgorithm;
use super::AuthError;

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set read; real ones are a few KiB.
const MAX_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;

/// The key set of one URL, shared by every request.
pub(crate) struct Jwks {
    url: String,
    algorithm: JwtAlgorithm,
    refresh: Duration,
    min_refresh: Duration,
    http: reqwest::Client,
    held: RwLock<Held>,
    /// One fetch at a time; callers that waited for it use its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Held {
    keys: HashMap<String, DecodingKey>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch last started, successful or not (the rate limit counts from here).
    attempted: Option<Instant>,
    /// Why the last fetch failed, while no later one succeeded.
    failure: Option<String>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .field("algorithm", &self.algorithm.as_str())
            .field("refresh", &self.refresh)
            .field("min_refresh", &self.min_refresh)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// A key set for `algorithm` (RS256 or ES256) at `url`; nothing is fetched yet.
    pub(crate) fn new(
        url: &str,
        algorithm: JwtAlgorithm,
        refresh: Duration,
        min_refresh: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("verdict/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            algorithm,
            refresh,
            min_refresh,
            http,
            held: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The key a token names by `kid`.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Result<DecodingKey, AuthError> {
        let (known, stale, may_fetch) = {
            let held = self.read();
            let now = Instant::now();
            (
                held.keys.get(kid).cloned(),
                held.fetched.is_none_or(|t| now - t >= self.refresh),
                held.attempted.is_none_or(|t| now - t >= self.min_refresh),
            )
        };
        if let Some(key) = known {
            if stale && may_fetch {
                // The known keys keep verifying while the set is fetched again.
                let this = Arc::clone(self);
                tokio::spawn(async move { this.refresh().await });
            }
            return Ok(key);
        }
        if may_fetch {
            self.refresh().await;
        } else {
            // A fetch may be under way (the one that made this a too-early retry): wait
            // for it, so concurrent first tokens all see its keys.
            drop(self.fetching.lock().await);
        }
        let held = self.read();
        match (held.keys.get(kid), &held.failure) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(why)) if held.fetched.is_none() => {
                Err(AuthError::KeysUnavailable(why.clone()))
            }
            (None, _) => Err(AuthError::UnknownKey),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        // A panic while holding the lock cannot leave the map half-written (it is replaced
        // whole), so a poisoned lock's data is still good.
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Held> {
        self.held.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches the set unless a fetch started within `min_refresh` (another caller's,
    /// which this one may have waited for).
    async fn refresh(&self) {
        let _one = self.fetching.lock().await;
        {
            let mut held = self.write();
            if held
                .attempted
                .is_some_and(|t| t.elapsed() < self.min_refresh)
            {
                return;
            }
            held.attempted = Some(Instant::now());
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "fetched the identity provider's keys");
                let mut held = self.write();
                held.keys = keys;
                held.fetched = Some(Instant::now());
                held.failure = None;
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "could not fetch the identity provider's keys; keeping the ones held");
                self.write().failure = Some(why);
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .http
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {} answered {status}", self.url));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BYTES as u64)
        {
            return Err(format!("the key set is larger than {MAX_BYTES} bytes"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the key set: {e}"))?;
        if body.len() > MAX_BYTES {
            return Err(format!("the key set is larger than {MAX_BYTES} bytes"));
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("the answer is not a JSON Web Key Set: {e}"))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = usable(jwk, self.algorithm)?;
                Some((kid, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(format!(
                "the key set holds no {} signing key with a kid",
                self.algorithm.as_str()
            ));
        }
        Ok(keys)
    }
}

/// The key, if it may verify `algorithm` tokens: a signing key (no other `use`), of the
/// algorithm's type and strength, and not declared for another algorithm.
fn usable(jwk: &Jwk, algorithm: JwtAlgorithm) -> Option<DecodingKey> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if let Some(declared) = jwk.common.key_algorithm {
        if declared.to_string() != algorithm.as_str() {
            return None;
        }
    }
    let fits = match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::RSA(rsa), JwtAlgorithm::Rs256) => URL_SAFE_NO_PAD
            .decode(rsa.n.trim_end_matches('='))
            .is_ok_and(|n| {
                let leading = n.iter().take_while(|b| **b == 0).count();
                (n.len() - leading) * 8 >= MIN_RSA_BITS
            }),
        (AlgorithmParameters::EllipticCurve(ec), JwtAlgorithm::Es256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    };
    if !fits {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok()
}
