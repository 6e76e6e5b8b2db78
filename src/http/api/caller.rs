//! Who is calling: the bearer token verified into a [`Principal`], and the role checks.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::auth::{Principal, Role};
use crate::http::AppState;

/// The verified caller of an API endpoint.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(verifier) = state.verifier.as_ref() else {
            return Err(ApiError::disabled());
        };
        let header =
            match parts.headers.get(AUTHORIZATION) {
                None => None,
                Some(v) => Some(v.to_str().map_err(|_| {
                    ApiError::unauthenticated("the Authorization header is not ASCII")
                })?),
            };
        let token = crate::auth::bearer_token(header)?;
        Ok(Caller(verifier.verify(token).await?))
    }
}

impl Caller {
    /// Release managers and admins may change gates and ask for rollbacks.
    pub fn require_act(&self, what: &str) -> Result<(), ApiError> {
        if self.0.role.can_act() {
            Ok(())
        } else {
            Err(self.refuse(what, "release-manager or admin"))
        }
    }

    /// Only admins may read the audit log.
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.0.role.is_admin() {
            Ok(())
        } else {
            Err(self.refuse(what, Role::Admin.as_str()))
        }
    }

    fn refuse(&self, what: &str, who: &str) -> ApiError {
        ApiError::forbidden(format!(
            "role {} may not {what}; {who} may",
            self.0.role.as_str()
        ))
    }
}
