//! Who may call the release-manager API: JWT bearer tokens (docs/api.md, "Authentication").
//!
//! A token is verified against one configured key, or the identity provider's key set by
//! `kid`, and one pinned algorithm ([`Verifier`]);
//! its subject and role become a [`Principal`]. [`mint`] makes HS256 tokens from the
//! configured secret for set-up and tests (`verdict token`).

use serde::{Deserialize, Serialize};

mod jwks;
mod key;
mod mint;
mod settings;
mod verify;

#[cfg(test)]
mod jwks_tests;
#[cfg(test)]
mod tests;

pub use mint::mint;
pub use settings::{JwtAlgorithm, JwtSettings};
pub use verify::{bearer_token, Verifier};

/// What a caller may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads analyses and canary state.
    Viewer,
    /// Also opens and holds gates and requests rollbacks.
    ReleaseManager,
    /// Everything, including the audit log.
    Admin,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::ReleaseManager, Role::Admin];

    /// The spelling in tokens, audit rows and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::ReleaseManager => "release-manager",
            Self::Admin => "admin",
        }
    }

    /// Reads the spelling back (exactly; roles are not case-folded).
    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the role may change something: open or hold a gate, request a rollback.
    pub fn can_act(self) -> bool {
        matches!(self, Self::ReleaseManager | Self::Admin)
    }

    /// Whether the role may read the audit log.
    pub fn is_admin(self) -> bool {
        self == Self::Admin
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who called: the verified token's subject and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: recorded as the actor of every change.
    pub subject: String,
    /// What the token allows.
    pub role: Role,
}

/// Why a token was refused (or could not be minted).
///
/// [`AuthError::UnknownRole`] is the only 403 case; every other refusal is 401. Messages
/// are one sentence, say what is wrong, and never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer token: send the header `Authorization: Bearer <JWT>`")]
    Missing,
    /// Not a JWT, or a JWT whose parts do not decode.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `exp` is further in the past than the allowed clock skew.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is further in the future than the allowed clock skew.
    #[error("the token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    /// The signature does not match the configured key.
    #[error("the token's signature does not match the configured key")]
    BadSignature,
    /// The token's `kid` names no key of the identity provider's key set.
    #[error("the token's key id (kid) is not among the identity provider's keys")]
    UnknownKey,
    /// The identity provider's key set could not be fetched, and no key is held.
    #[error("the identity provider's keys could not be fetched: {0}")]
    KeysUnavailable(String),
    /// Signed with an algorithm other than the configured one.
    #[error("token signed with {got}, this server accepts {expected} only")]
    WrongAlgorithm {
        /// The token's `alg`.
        got: String,
        /// The configured algorithm.
        expected: &'static str,
    },
    /// `alg: none`: an unsigned token.
    #[error("alg none refused: unsigned tokens are never accepted")]
    AlgNone,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer (iss) is not the one this server accepts")]
    WrongIssuer,
    /// `aud` does not name the configured audience.
    #[error("the token's audience (aud) does not include this server")]
    WrongAudience,
    /// A required claim is absent (or not of the expected type).
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    /// The role claim names no role verdict knows.
    #[error("the token's role {0:?} is not one of viewer, release-manager, admin")]
    UnknownRole(String),
    /// Minting: no `jwt.key` (or `jwt.key_file`) is configured.
    #[error("no JWT key is configured: set jwt.key (VERDICT_JWT__KEY) or jwt.key_file")]
    NotConfigured,
    /// Minting: the configuration or the request does not allow a token.
    #[error("cannot mint a token: {0}")]
    CannotMint(String),
}

impl AuthError {
    /// Whether the caller is known but not allowed (403) rather than unauthenticated (401).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::UnknownRole(_))
    }
}

/// Longest subject accepted: it is stored as the actor of every audit row.
const MAX_SUBJECT_LEN: usize = 256;

/// Checks a subject: not empty, bounded, printable (it ends up in logs and audit rows).
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.trim().is_empty() {
        return Err("the subject (sub) is empty".into());
    }
    if subject.chars().count() > MAX_SUBJECT_LEN {
        return Err(format!(
            "the subject (sub) is longer than {MAX_SUBJECT_LEN} characters"
        ));
    }
    if subject.chars().any(char::is_control) {
        return Err("the subject (sub) contains control characters".into());
    }
    Ok(())
}
