//! The vocabulary every layer shares: validated names, typed ids, the settings an
//! analysis fixes when it opens, and time. No IO and no layer's concerns live here.

mod ids;
mod names;
mod settings;

use std::borrow::Cow;

pub use ids::{AnalysisId, AuditId, DecisionId, EventId, LoadRunId, LookId, OutboxId};
pub use names::{AnalysisKey, CanaryName, CanaryRef, Checksum, InvalidName, Namespace};
pub use settings::{AnalysisSettings, CanarySettings, Controller, Mode};

/// A value refused with the key it came from: a configuration key (`jwt.key`) or a
/// webhook metadata key (`alpha`). Each caller wraps it in its own error, which says
/// where keys of that kind live.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct InvalidValue {
    /// The key, as the user wrote it.
    pub key: Cow<'static, str>,
    /// What is wrong with its value, in one sentence.
    pub why: String,
}

/// Refuses the value of `key`, saying why.
pub fn invalid(key: impl Into<Cow<'static, str>>, why: impl Into<String>) -> InvalidValue {
    InvalidValue {
        key: key.into(),
        why: why.into(),
    }
}

/// Milliseconds since the Unix epoch; the one time representation in the store.
pub type Millis = i64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
