//! Why a release manager's request (or a read of the history) was not carried out.

use crate::store::StoreError;

/// A request the service did not carry out. Nothing was changed in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No such analysis, or verdict has never seen the canary.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with where the canary stands (a finished analysis).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (an unknown or bad setting); nothing was read.
    #[error("{0}")]
    Invalid(String),
    /// A source verdict reads (Prometheus) failed or has nothing to read; nothing was
    /// written.
    #[error("{0}")]
    Dependency(String),
    /// The store cannot be reached; trying again may work.
    #[error("the store cannot be reached")]
    Unavailable,
    /// The store refused the request (its own words are in the server's log).
    #[error("the store refused the request")]
    Internal,
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "a release-manager request failed in the store");
        match e {
            StoreError::Unavailable(_) => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}
