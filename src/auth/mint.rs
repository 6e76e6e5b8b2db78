//! Minting HS256 tokens from the configured secret (`verdict token`), for set-up and
//! tests; production tokens come from an identity provider.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Map, Value};

use super::settings::{JwtAlgorithm, JwtSettings};
use super::{check_subject, key, AuthError, Role};

/// Longest lifetime a minted token may have.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Mints an HS256 token with `sub`, the role claim, `iss`, `aud`, `iat` and
/// `exp = now + ttl`. Refused when the configured algorithm is not HS256 (verdict never
/// holds an RSA private key), when no key is configured, or for an unusable subject or ttl.
pub fn mint(
    jwt: &JwtSettings,
    role: Role,
    subject: &str,
    ttl: Duration,
) -> Result<String, AuthError> {
    if jwt.algorithm != JwtAlgorithm::Hs256 {
        return Err(AuthError::CannotMint(format!(
            "jwt.algorithm is {}; verdict mints HS256 tokens only (RS256 and ES256 tokens come from your identity provider)",
            jwt.algorithm.as_str()
        )));
    }
    check_subject(subject).map_err(AuthError::CannotMint)?;
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(AuthError::CannotMint(
            "the lifetime must be at least 1s and at most 366 days".into(),
        ));
    }
    let secret = match key::load(jwt).map_err(|e| AuthError::CannotMint(e.to_string()))? {
        Some(key::Key::Hmac(secret)) => secret,
        // Cannot happen with HS256 configured; an error all the same, not a panic.
        Some(key::Key::Public(_) | key::Key::Jwks(_)) => {
            return Err(AuthError::CannotMint(
                "the configured key is a public key, which cannot sign".into(),
            ))
        }
        None => return Err(AuthError::NotConfigured),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AuthError::CannotMint("the system clock is before 1970".into()))?
        .as_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(subject));
    claims.insert("iss".into(), json!(jwt.issuer));
    claims.insert("aud".into(), json!(jwt.audience));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + ttl.as_secs()));
    claims.insert(jwt.role_claim.clone(), Value::from(role.as_str()));
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .map_err(|e| AuthError::CannotMint(e.to_string()))
}
