//! The one error type of the Flagger hooks: each case maps to a 4xx Flagger will not
//! retry (never 429 or 5xx, whose bodies Flagger drops) and a one-line human reason.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A hook call that did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    /// A 4xx Flagger does not retry.
    pub status: StatusCode,
    /// One line, at most about 1000 bytes.
    pub reason: String,
}

impl HookError {
    /// A refusal with `status`; the reason is made one bounded line.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        // One line, bounded: Flagger puts the body into a Kubernetes event.
        let reason = reason.replace(['\n', '\r'], " ");
        let reason = if reason.len() > 1000 {
            let mut cut = 1000;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}…", &reason[..cut])
        } else {
            reason
        };
        Self { status, reason }
    }

    /// 400: the call itself is wrong; nothing is recorded.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 403: wrong token or namespace not allowed.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    /// 424: a dependency (Prometheus, the store) failed; no verdict was given.
    pub fn dependency(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FAILED_DEPENDENCY, reason)
    }
}

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.reason)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_bounded_line() {
        let e = HookError::bad_request(format!("a\nb{}", "é".repeat(2000)));
        assert!(!e.reason.contains('\n'));
        assert!(e.reason.len() <= 1004);
    }
}
