//! The built-in load generator: hey's job without a shell, with results (webhooks/README.md, "Metadata of the load-test hook").
//!
//! - [`spec`]: what a run does, parsed from a hey `cmd` or explicit hook metadata;
//! - [`policy`]: what hook-started runs may target and how much load they may add;
//! - [`engine`]: the HTTP client (closed and open model, HDR latencies);
//! - [`manager`]: one run per canary and spec, caps, recording, shutdown;
//! - [`cli`]: `verdict load URL`, hey's flags.

pub mod cli;
mod conn;
pub mod engine;
pub mod manager;
pub mod policy;
pub mod result;
mod shell;
pub mod spec;
pub mod store_sink;

pub use cli::LoadArgs;
pub use engine::{run, Prepared};
pub use manager::{
    ActiveRun, CanaryKey, LoadError, LoadManager, MemorySink, RunRecord, RunSink, SinkError,
    SinkEvent, StartOutcome,
};
pub use policy::LoadPolicy;
pub use result::{ErrorKind, Latency, LoadResult};
pub use spec::{parse_hey_cmd, Header, LoadSpec, Model, SpecError};
