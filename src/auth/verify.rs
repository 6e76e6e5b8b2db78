//! Verifying bearer tokens: one key (or the identity provider's key set, by `kid`), one
//! pinned algorithm, issuer and audience checked.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

use super::jwks::Jwks;
use super::settings::JwtSettings;
use super::{check_subject, key, AuthError, Principal, Role};
use crate::domain::InvalidValue;

/// Longest token looked at; real ones are well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest role value repeated in an error message.
const MAX_SHOWN_ROLE: usize = 40;

/// Verifies bearer tokens against the configured key. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    key: KeySource,
    algorithm_name: &'static str,
    validation: Validation,
    role_claim: String,
}

/// Where the verifying key comes from.
enum KeySource {
    /// `jwt.key` or `jwt.key_file`.
    Configured(DecodingKey),
    /// `jwt.jwks_url`: the key the token's `kid` names.
    Jwks(Arc<Jwks>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs and panics.
        f.debug_struct("Verifier")
            .field("algorithm", &self.inner.algorithm_name)
            .field("issuer", &self.inner.validation.iss)
            .field("audience", &self.inner.validation.aud)
            .field("leeway_secs", &self.inner.validation.leeway)
            .field("role_claim", &self.inner.role_claim)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds the verifier of the `[jwt]` settings; `None` when no key is configured (the
    /// API is then off). This is the one check of the key: [`JwtSettings::validate`] calls it.
    pub fn from_config(jwt: &JwtSettings) -> Result<Option<Verifier>, InvalidValue> {
        let Some(key) = key::load(jwt)? else {
            return Ok(None);
        };
        let key = match key {
            key::Key::Hmac(secret) => KeySource::Configured(DecodingKey::from_secret(&secret)),
            key::Key::Public(key) => KeySource::Configured(key),
            key::Key::Jwks(set) => KeySource::Jwks(set),
        };
        let mut validation = Validation::new(jwt.algorithm.algorithm());
        validation.set_issuer(&[&jwt.issuer]);
        validation.set_audience(&[&jwt.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = jwt.leeway.as_secs();
        Ok(Some(Verifier {
            inner: Arc::new(Inner {
                key,
                algorithm_name: jwt.algorithm.as_str(),
                validation,
                role_claim: jwt.role_claim.clone(),
            }),
        }))
    }

    /// Verifies the token (the text after `Bearer `) and names its caller. With a key set,
    /// this may fetch it (see [`Jwks`]); nothing unverified ever passes.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(format!(
                "it is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = check_header(token, inner.algorithm_name)?;
        let fetched;
        let key = match &inner.key {
            KeySource::Configured(key) => key,
            KeySource::Jwks(set) => {
                let kid = header.kid.as_deref().ok_or_else(|| {
                    AuthError::Malformed(
                        "the token names no key id (kid), which the identity provider's key set needs"
                            .into(),
                    )
                })?;
                fetched = set.key(kid).await?;
                &fetched
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &inner.validation)
            .map_err(|e| refusal(e.kind(), inner.algorithm_name))?;
        let claims = data.claims;

        let subject = match claims.get("sub") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(AuthError::MissingClaim("sub".into())),
        };
        check_subject(&subject).map_err(AuthError::Malformed)?;
        let role = match claims.get(&inner.role_claim) {
            None | Some(Value::Null) => {
                return Err(AuthError::MissingClaim(inner.role_claim.clone()))
            }
            Some(Value::String(s)) => Role::parse(s)
                .ok_or_else(|| AuthError::UnknownRole(s.chars().take(MAX_SHOWN_ROLE).collect()))?,
            Some(_) => {
                return Err(AuthError::Malformed(format!(
                    "the `{}` claim must be a string",
                    inner.role_claim
                )))
            }
        };
        Ok(Principal { subject, role })
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> &'static str {
        self.inner.algorithm_name
    }
}

/// The token of an `Authorization` header value: `Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let Some(value) = header else {
        return Err(AuthError::Missing);
    };
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(
            "the Authorization header must use the Bearer scheme".into(),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

/// Reads the header before any cryptography, to say precisely why a token signed the
/// wrong way is refused.
fn check_header(token: &str, expected: &'static str) -> Result<jsonwebtoken::Header, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        // jsonwebtoken's Algorithm has no `none`, so an unsigned token fails to decode as
        // an unknown variant: name it, since it is the attack an operator wants to see.
        ErrorKind::Json(json)
            if json
                .to_string()
                .to_ascii_lowercase()
                .contains("variant `none`") =>
        {
            AuthError::AlgNone
        }
        ErrorKind::Json(json) if json.to_string().contains("unknown variant") => {
            AuthError::WrongAlgorithm {
                got: "an unknown algorithm".into(),
                expected,
            }
        }
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => AuthError::Malformed(
            "the header is not a JWT header (a JSON object naming its alg)".into(),
        ),
        ErrorKind::Base64(_) => AuthError::Malformed("the header is not base64url".into()),
        _ => AuthError::Malformed("expected three base64url parts separated by dots".into()),
    })?;
    let alg = format!("{:?}", header.alg);
    if alg != expected {
        return Err(AuthError::WrongAlgorithm { got: alg, expected });
    }
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: extensions a recipient does not understand must be refused.
        return Err(AuthError::Malformed(
            "the header lists critical extensions (crit), which this server does not support"
                .into(),
        ));
    }
    Ok(header)
}

/// Maps jsonwebtoken's refusal to ours.
fn refusal(kind: &ErrorKind, expected: &'static str) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::Malformed(format!("the `{claim}` claim is not a number of seconds"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::WrongAlgorithm {
                got: "another algorithm".into(),
                expected,
            }
        }
        ErrorKind::Base64(_) => AuthError::Malformed("a part is not base64url".into()),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("the claims are not a JSON object".into())
        }
        ErrorKind::InvalidToken => AuthError::Malformed("not a JWT".into()),
        // Key errors cannot happen with a key checked at start-up; refuse like a forgery.
        _ => AuthError::BadSignature,
    }
}
