//! The API's one error type: JSON `{"error": code, "message": text}` with the status
//! the contract in `docs/api.md` gives each case.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::analysis::ServiceError;
use crate::auth::AuthError;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthenticated`, `forbidden`, `not_found`, `conflict`,
    /// `invalid_request`, `failed_dependency`, `api_disabled`, `unavailable` or `internal`.
    #[schema(example = "forbidden")]
    pub error: &'static str,
    /// One sentence for people.
    #[schema(example = "role viewer may not change gates; release-manager or admin may")]
    pub message: String,
}

/// The 401 of every endpoint that takes a token, documented once.
#[derive(Debug, IntoResponses)]
pub enum NoValidToken {
    /// No valid token
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
}

/// The 500 and 503 of every endpoint that reads the store (nothing changed in either),
/// documented once.
#[derive(Debug, IntoResponses)]
pub enum NothingChanged {
    /// The store refused the request; nothing changed
    #[response(status = 500)]
    Refused(ErrorBody),
    /// The API is off (no JWT key) or the store is unreachable; nothing changed
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// An API call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the caller reads.
    pub body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
            },
        }
    }

    /// 401: no usable token.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: the role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such analysis or canary.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the action conflicts with the canary's state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422: a malformed or invalid body, path or query parameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 503: no JWT key is configured, so nobody can be authenticated.
    pub fn disabled() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_disabled",
            "the API is off: configure jwt.key (or jwt.key_file) to turn it on",
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if e.is_forbidden() {
            Self::forbidden(e.to_string())
        } else {
            Self::unauthenticated(e.to_string())
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(message) => Self::not_found(message),
            ServiceError::Conflict(message) => Self::conflict(message),
            ServiceError::Invalid(message) => Self::invalid(message),
            ServiceError::Dependency(message) => {
                Self::new(StatusCode::FAILED_DEPENDENCY, "failed_dependency", message)
            }
            ServiceError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store cannot be reached; nothing was changed, try again",
            ),
            // The database's own text stays in the server's log.
            ServiceError::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the store refused the request; nothing was changed (details in the server log)",
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::invalid(format!("body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::invalid(format!("query: {}", e.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::invalid(format!("path: {}", e.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
