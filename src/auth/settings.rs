//! The `[jwt]` configuration section: which tokens the release-manager API accepts.
//!
//! It lives beside the code that uses it, so that configuration depends on auth and not
//! the other way round.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::{invalid, InvalidValue};

/// Signature algorithm the API accepts: exactly one, so a token can never choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (at least 32 bytes).
    #[serde(rename = "HS256", alias = "hs256")]
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256, verified with the identity provider's public key.
    #[serde(rename = "RS256", alias = "rs256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256, verified with the identity provider's public key.
    #[serde(rename = "ES256", alias = "es256")]
    Es256,
}

impl JwtAlgorithm {
    /// The spelling in tokens' `alg` header and in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// The same algorithm, as jsonwebtoken names it.
    pub fn algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Hs256 => jsonwebtoken::Algorithm::HS256,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// Release-manager API tokens (docs/api.md, "Authentication"). Without `key`, `key_file`
/// or `jwks_url` the API is off and answers 503.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// The one algorithm tokens may be signed with.
    pub algorithm: JwtAlgorithm,
    /// The HS256 secret, or the RS256 / ES256 public key in PEM.
    #[serde(skip_serializing)]
    pub key: Option<SecretString>,
    /// Alternatively, a file holding the key.
    pub key_file: Option<PathBuf>,
    /// Alternatively, the identity provider's JSON Web Key Set (RS256 or ES256 keys,
    /// chosen by the token's `kid`), e.g. `https://idp.example.com/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// How old the fetched key set may get before it is fetched again (in the background,
    /// while the known keys keep verifying).
    #[serde(with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// The least time between two fetches: a token with an unknown `kid` fetches the set
    /// again at most this often, so made-up key ids cannot flood the identity provider.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (one of the token's audiences).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The claim holding the role.
    pub role_claim: String,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::Hs256,
            key: None,
            key_file: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(15 * 60),
            jwks_min_refresh: Duration::from_secs(30),
            issuer: "verdict".into(),
            audience: "verdict".into(),
            leeway: Duration::from_secs(30),
            role_claim: "role".into(),
        }
    }
}

/// Claims with a meaning of their own, which cannot also hold the role.
const REGISTERED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

impl JwtSettings {
    /// Whether a key is configured (the API is on).
    pub fn enabled(&self) -> bool {
        self.key.is_some() || self.key_file.is_some() || self.jwks_url.is_some()
    }

    /// Checks every value, the key included (read and parsed exactly as the server will
    /// use it), naming the configuration key of the first one that is wrong.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.issuer.trim().is_empty() {
            return Err(invalid("jwt.issuer", "must not be empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(invalid("jwt.audience", "must not be empty"));
        }
        let claim = self.role_claim.as_str();
        if claim.is_empty() || claim.chars().any(char::is_whitespace) {
            return Err(invalid(
                "jwt.role_claim",
                "must be a claim name without spaces",
            ));
        }
        if REGISTERED_CLAIMS.contains(&claim) {
            return Err(invalid(
                "jwt.role_claim",
                format!("`{claim}` is a registered claim and cannot hold the role"),
            ));
        }
        if self.leeway > Duration::from_secs(600) {
            return Err(invalid("jwt.leeway", "must be at most 10m"));
        }
        if self.jwks_min_refresh < Duration::from_secs(1) {
            return Err(invalid("jwt.jwks_min_refresh", "must be at least 1s"));
        }
        if self.jwks_refresh < self.jwks_min_refresh {
            return Err(invalid(
                "jwt.jwks_refresh",
                "must be at least jwt.jwks_min_refresh",
            ));
        }
        // The key is read and checked exactly as the server will use it.
        super::Verifier::from_config(self)?;
        Ok(())
    }
}
