//! Row ids, one type per table, so that a decision's id can never be passed where an
//! analysis' is expected. The store assigns them; nothing else makes one up, except a
//! caller naming a row it was told about (an API path, a cursor).

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id of an existing row, as the store or a caller gave it.
            pub const fn new(id: i64) -> Self {
                Self(id)
            }

            /// The number itself.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// One analysis: one canary revision.
    AnalysisId
);
id_type!(
    /// One look of an analysis.
    LookId
);
id_type!(
    /// One recorded hook answer.
    DecisionId
);
id_type!(
    /// One Kubernetes event Flagger forwarded.
    EventId
);
id_type!(
    /// One load-test run.
    LoadRunId
);
id_type!(
    /// One audit-log row.
    AuditId
);
id_type!(
    /// One outbox row.
    OutboxId
);
